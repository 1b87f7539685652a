//! Every metric consentgate exports, in one place: the whole observable surface at a glance.
//! All are Prometheus counters in the default registry, served on the admin listener's `/metrics`.
//!
//! Label values are bounded: `site` comes from configuration, every other fixed label value is
//! one of an enum of [`crate::labels`] (category, consent state, action, stage, reason), and
//! cookie names seen unclassified are admitted as labels only up to [`UNKNOWN_NAME_LABELS`]
//! distinct names per site, at most [`UNKNOWN_LABELS_PER_REQUEST`] new ones per request, reset
//! on every reload (see [`count_unknown_cookie`]).

use crate::labels::{
    BlockAction, CategoryLabel, ConsentLabel, FilterStage, RewriteFailure, SetCookieAction,
    StripAction,
};
use prometheus::{
    register_int_counter_vec, register_int_gauge_vec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

/// Names of the metrics other modules read back by name (the admin `/status` totals sum them
/// from the registry), so each name is written once.
pub mod name {
    pub const REQUESTS: &str = "consentgate_requests_total";
    pub const SET_COOKIES: &str = "consentgate_set_cookie_total";
    pub const REQUEST_COOKIES_STRIPPED: &str = "consentgate_request_cookies_stripped_total";
    pub const COOKIES_EXPIRED: &str = "consentgate_cookies_expired_total";
    pub const CONSENT_ERRORS: &str = "consentgate_consent_errors_total";
    pub const CONSENT_SOURCES: &str = "consentgate_consent_sources_total";
    pub const UPSTREAM_ERRORS: &str = "consentgate_upstream_errors_total";
    // Read by the admin dashboard (src/admin/dashboard.rs).
    pub const UNKNOWN_COOKIES: &str = "consentgate_unknown_cookies_total";
    pub const FILTER_ERRORS: &str = "consentgate_filter_errors_total";
    pub const BLOCKED_REQUESTS: &str = "consentgate_blocked_requests_total";
    pub const REWRITE_FAILURES: &str = "consentgate_rewrite_failures_total";
    pub const UPSTREAM_TIMEOUTS: &str = "consentgate_upstream_timeouts_total";
    pub const UPSTREAM_HEALTHY: &str = "consentgate_upstream_healthy";
    pub const GPC_REQUESTS: &str = "consentgate_gpc_requests_total";
    /// Consent receipts (src/receipts, issue 12); the dashboard shows 0 while not registered.
    pub const RECEIPTS_WRITTEN: &str = "consentgate_receipts_written_total";
    pub const RECEIPTS_DROPPED: &str = "consentgate_receipts_dropped_total";
    pub const INVENTORY_REFUSED: &str = "consentgate_inventory_refused_total";
    /// A section of `consentgate report` (src/report.rs).
    pub const CONSENT_MODE_MISMATCHES: &str = "consentgate_consent_mode_mismatch_total";
    /// Only in a build with the `alloc-count` feature (src/alloc_count.rs, benchmarks).
    pub const ALLOCATIONS: &str = "consentgate_allocations_total";
    pub const ALLOCATED_BYTES: &str = "consentgate_allocated_bytes_total";
}

/// Requests by site and the visitor's consent state.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::REQUESTS,
        format!(
            "Requests by site and consent state ({})",
            ConsentLabel::list()
        ),
        &["site", "consent"]
    )
    .unwrap()
});

/// Response `Set-Cookie` lines by site, category and action.
pub static SET_COOKIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::SET_COOKIES,
        format!(
            "Set-Cookie lines by site, category ({}) and action ({}; would_strip in report-only)",
            CategoryLabel::list(),
            SetCookieAction::list()
        ),
        &["site", "category", "action"]
    )
    .unwrap()
});

/// Request cookies withheld from the origin.
pub static REQUEST_COOKIES_STRIPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::REQUEST_COOKIES_STRIPPED,
        format!(
            "Request cookies removed before the origin, by site, category and action ({})",
            StripAction::list()
        ),
        &["site", "category", "action"]
    )
    .unwrap()
});

/// Cookies deleted in the browser because their category has no consent (withdrawal).
pub static COOKIES_EXPIRED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::COOKIES_EXPIRED,
        "Cookies expired in the browser because consent for their category is absent or withdrawn",
        &["site", "category"]
    )
    .unwrap()
});

/// Cookie names no rule, catalogue entry or database row classifies.
pub static UNKNOWN_COOKIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::UNKNOWN_COOKIES,
        "Unclassified cookie names seen (request or response), by site and name; names past the label limit count as _other",
        &["site", "name"]
    )
    .unwrap()
});

/// Consent sources present but unreadable (they granted nothing).
pub static CONSENT_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::CONSENT_ERRORS,
        "Consent sources that could not be read (fail closed: they grant nothing), by site and format",
        &["site", "format"]
    )
    .unwrap()
});

/// Consent sources present on requests, by where they were read (`cookie`, or `header` for
/// apps) and format. Labels are bounded: sites and formats come from configuration and the
/// registry, `via` has two values.
pub static CONSENT_SOURCES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::CONSENT_SOURCES,
        "Consent sources read on requests, by site, where they were read (cookie, header) and format",
        &["site", "via", "format"]
    )
    .unwrap()
});

/// Requests whose upstream failed.
pub static UPSTREAM_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::UPSTREAM_ERRORS,
        "Requests that failed on the upstream side, by site and pingora error type",
        &["site", "error"]
    )
    .unwrap()
});

/// Filter failures that were passed through (availability fails open).
pub static FILTER_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::FILTER_ERRORS,
        format!(
            "Filter failures and their failure policy, by site and stage ({})",
            FilterStage::list()
        ),
        &["site", "stage"]
    )
    .unwrap()
});

/// Requests carrying `Sec-GPC: 1`.
pub static GPC_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::GPC_REQUESTS,
        "Requests carrying Sec-GPC: 1, by site",
        &["site"]
    )
    .unwrap()
});

/// Tracker requests answered by the proxy (or that would be, in report-only).
pub static BLOCKED_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::BLOCKED_REQUESTS,
        format!(
            "Tracker requests answered without contacting the origin, by site, category, list and action ({})",
            BlockAction::list()
        ),
        &["site", "category", "list", "action"]
    )
    .unwrap()
});

/// HTML elements rewritten so the browser does not run them.
pub static NEUTRALIZED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_neutralized_elements_total",
        "HTML elements neutralized (tracker scripts, iframes, pixels, preloads), by site, category and tag",
        &["site", "category", "tag"]
    )
    .unwrap()
});

/// HTML rewrites that failed; the rest of the body was passed through.
pub static REWRITE_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::REWRITE_FAILURES,
        format!(
            "HTML rewrites that failed and passed the rest of the body through unchanged, by site and reason ({})",
            RewriteFailure::list()
        ),
        &["site", "reason"]
    )
    .unwrap()
});

/// Requests of sites with jurisdiction rules, by the rule applied (issue 11).
pub static JURISDICTION_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_jurisdiction_requests_total",
        "Requests of sites with [[site.jurisdiction]] rules, by site, the rule applied (a configured name) and reason (matched; unknown_location: the visitor's location is unknown; no_match: no rule lists it; both take unknown_jurisdiction, else the strictest rule)",
        &["site", "jurisdiction", "reason"]
    )
    .unwrap()
});

/// Requests no site was configured for.
pub static UNROUTED: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "consentgate_unrouted_requests_total",
        "Requests whose Host matched no site (answered 421)"
    )
    .unwrap()
});

/// Configuration reloads by result.
pub static RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_config_reloads_total",
        "Configuration reloads by result (ok, error)",
        &["result"]
    )
    .unwrap()
});

// --- Request-path limits and bounded state (issue 8) ---

/// Request cookies past `[proxy] max_request_cookies`.
pub static COOKIES_OVER_LIMIT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_request_cookies_over_limit_total",
        "Request cookies past max_request_cookies: not read, and in enforce mode not forwarded to the origin, by site",
        &["site"]
    )
    .unwrap()
});

/// Expiry `Set-Cookie` lines not sent because of `[proxy] max_expiry_lines`.
pub static EXPIRY_LINES_OVER_LIMIT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_expiry_lines_over_limit_total",
        "Expiry Set-Cookie lines left out of a response because of max_expiry_lines, by site",
        &["site"]
    )
    .unwrap()
});

/// Bytes held by each site's expiry-line cache (names, lines, per-entry overhead).
pub static EXPIRY_CACHE_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "consentgate_expiry_cache_bytes",
        "Bytes held by the site's cache of expiry Set-Cookie lines (bounded; emptied on reload)",
        &["site"]
    )
    .unwrap()
});

/// Admin requests refused.
pub static ADMIN_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_admin_refused_total",
        "Admin requests refused, by reason (host, cross_site, token)",
        &["reason"]
    )
    .unwrap()
});

// --- Connections: timeouts, limits, refusals (src/connections) ---

/// Client connections open now.
pub static CONNECTIONS_OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!(
        "consentgate_connections_open",
        "Client connections open now (each holds one of max_connections slots)"
    )
    .unwrap()
});

/// Times the accept loop waited for a free connection slot.
pub static CONNECTION_LIMIT_WAITS: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "consentgate_connection_limit_waits_total",
        "New connections that waited in the accept queue because max_connections were open"
    )
    .unwrap()
});

/// Waiting connections closed to make room for new ones at the connection limit.
pub static CONNECTIONS_RECLAIMED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_connections_reclaimed_total",
        "Connections closed to free a slot for a new one while max_connections were open, by what they were waiting for (header: a request's first byte or the rest of its header, 408; keepalive: an idle kept-alive connection)",
        &["phase"]
    )
    .unwrap()
});

/// Requests refused before any site saw them.
pub static CLIENT_REFUSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_client_refusals_total",
        "Requests refused for their form, by reason (uri_too_long 414, header_too_large and too_many_headers 431, bad_chunk, missing_host, invalid_host, bad_target, ambiguous_framing, bad_content_length, bad_transfer_encoding 400, unsupported_transfer_coding 501)",
        &["reason"]
    )
    .unwrap()
});

/// Client connections cut by a timeout.
pub static CLIENT_TIMEOUTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_client_timeouts_total",
        "Client connections ended by a timeout, by phase (header: 408 or closed before any byte, keepalive: idle between requests, body: between two body reads, send: between two writes)",
        &["phase"]
    )
    .unwrap()
});

/// TLS handshakes on the `listen_tls` listeners that did not complete.
pub static TLS_HANDSHAKE_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_tls_handshake_failures_total",
        "TLS handshakes that did not complete, by reason (timeout: not done within client_header_timeout_ms, error: refused by the client or the server, e.g. no shared version or cipher; no_certificate: listen_tls without a certificate)",
        &["reason"]
    )
    .unwrap()
});

/// Origin connections that timed out, by site, upstream and phase.
pub static UPSTREAM_TIMEOUTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::UPSTREAM_TIMEOUTS,
        "Requests whose origin timed out (answered 504), by site, upstream address and phase (connect, read, write)",
        &["site", "upstream", "phase"]
    )
    .unwrap()
});

// --- end of connection metrics ---

// --- Upstream health (src/upstreams.rs); labels bounded by the configured origins ---

/// 1 while an origin takes requests, 0 while it is ejected (active check or failed connect).
pub static UPSTREAM_HEALTHY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        name::UPSTREAM_HEALTHY,
        "1 while the origin is healthy and takes requests, 0 while ejected by its health check or a failed connect, by site and upstream address",
        &["site", "upstream"]
    )
    .unwrap()
});

// --- end of upstream health metrics ---

/// Cookie names the live inventory did not take (src/inventory.rs): full, invalid, or past a
/// request's budget of new names.
pub static INVENTORY_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::INVENTORY_REFUSED,
        "Cookie names the live cookie inventory did not add (inventory full, name too long or not printable, or more new names than one request may add), by site",
        &["site"]
    )
    .unwrap()
});

/// How many distinct unknown cookie names of one site may become label values.
pub const UNKNOWN_NAME_LABELS: usize = 200;
/// How many of those one request may admit: one request cannot fill the set.
pub const UNKNOWN_LABELS_PER_REQUEST: u32 = 4;
/// Names longer than this never become labels.
pub const MAX_NAME_LABEL_LEN: usize = 64;
/// The label for names past the limits (or not printable).
pub const OTHER_NAME: &str = "_other";

/// The unknown-cookie-name labels admitted per site: at most [`UNKNOWN_NAME_LABELS`] names
/// each, first come first served, but at most [`UNKNOWN_LABELS_PER_REQUEST`] new names per
/// request, so a request stuffed with made-up names admits a few of them and real unknown
/// cookies seen later still get their own label. Emptied on every reload
/// ([`reset_unknown_cookie_labels`]), together with the series: every series is created under
/// this lock, so a reset cannot race with an admission.
static UNKNOWN_LABELS: LazyLock<RwLock<HashMap<String, SiteNameLabels>>> =
    LazyLock::new(Default::default);

struct SiteNameLabels {
    /// Admitted name -> its counter (resolved once).
    names: HashMap<Box<str>, IntCounter>,
    other: IntCounter,
}

/// Counts an unknown cookie name of `site`. `admissions` is what the current request may still
/// admit (start each request at [`UNKNOWN_LABELS_PER_REQUEST`]).
pub fn count_unknown_cookie(site: &str, name: &str, admissions: &mut u32) {
    let candidate = label_candidate(name);
    {
        let all = UNKNOWN_LABELS.read().unwrap_or_else(|e| e.into_inner());
        if let Some(labels) = all.get(site) {
            if !candidate {
                return labels.other.inc();
            }
            if let Some(c) = labels.names.get(name) {
                return c.inc();
            }
        }
    }
    let mut all = UNKNOWN_LABELS.write().unwrap_or_else(|e| e.into_inner());
    let labels = all
        .entry(site.to_string())
        .or_insert_with(|| SiteNameLabels {
            names: HashMap::new(),
            other: UNKNOWN_COOKIES.with_label_values(&[site, OTHER_NAME]),
        });
    if !candidate {
        return labels.other.inc();
    }
    if let Some(c) = labels.names.get(name) {
        return c.inc();
    }
    if labels.names.len() >= UNKNOWN_NAME_LABELS || *admissions == 0 {
        return labels.other.inc();
    }
    *admissions -= 1;
    let c = UNKNOWN_COOKIES.with_label_values(&[site, name]);
    c.inc();
    labels.names.insert(name.into(), c);
}

/// How many names of `site` are admitted as labels.
pub fn unknown_cookie_labels(site: &str) -> usize {
    UNKNOWN_LABELS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(site)
        .map_or(0, |l| l.names.len())
}

/// Whether a name may become a label at all: printable, short, no quoting needed.
pub fn label_candidate(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LABEL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// Drops every admitted label and every `consentgate_unknown_cookies_total` series: called on
/// reload, so names admitted under the old configuration do not hold the labels forever. The
/// counts restart from zero (Prometheus' `rate()` treats that as a counter reset).
pub fn reset_unknown_cookie_labels() {
    let mut all = UNKNOWN_LABELS.write().unwrap_or_else(|e| e.into_inner());
    all.clear();
    UNKNOWN_COOKIES.reset();
}

// --- end of request-path limits ---

/// Google tag beacons claiming a consent the visitor did not give (`gcs`/`gcd` against the
/// consent consentgate decided; src/consent_mode.rs), by site, tag id and action.
pub static CONSENT_MODE_MISMATCHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        name::CONSENT_MODE_MISMATCHES,
        format!(
            "Google tag beacons claiming a consent grant the visitor did not give, by site, tag id (`{OTHER_TAG}` past {TAG_ID_LABELS} ids or when not shaped like one) and action ({})",
            BlockAction::list()
        ),
        &["site", "tag", "action"]
    )
    .unwrap()
});

/// The most distinct tag ids that become `tag` labels (per process, all sites together).
pub const TAG_ID_LABELS: usize = 64;
/// The `tag` label of an id past the limit, of a malformed one, or of a beacon without `tid`.
pub const OTHER_TAG: &str = "other";

/// Tag ids admitted as labels.
static TAG_IDS: LazyLock<RwLock<std::collections::HashSet<Box<str>>>> =
    LazyLock::new(Default::default);

/// Counts a consent-mode mismatch. `tid` becomes the label only when it is shaped like a
/// Google tag id and the set of admitted ids is not full.
pub fn count_consent_mode_mismatch(site: &str, tid: Option<&str>, action: BlockAction) {
    let tid = tid.filter(|t| crate::consent_mode::tag_id_shape(t));
    let admitted = tid.filter(|t| {
        if TAG_IDS
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(*t)
        {
            return true;
        }
        let mut ids = TAG_IDS.write().unwrap_or_else(|e| e.into_inner());
        ids.contains(*t) || (ids.len() < TAG_ID_LABELS && ids.insert((*t).into()))
    });
    CONSENT_MODE_MISMATCHES
        .with_label_values(&[site, admitted.unwrap_or(OTHER_TAG), action.as_str()])
        .inc();
}

/// Forces every metric into existence so `/metrics` lists them from the start.
pub fn init() {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&SET_COOKIES);
    LazyLock::force(&REQUEST_COOKIES_STRIPPED);
    LazyLock::force(&COOKIES_EXPIRED);
    LazyLock::force(&UNKNOWN_COOKIES);
    LazyLock::force(&CONSENT_ERRORS);
    LazyLock::force(&CONSENT_SOURCES);
    LazyLock::force(&UPSTREAM_ERRORS);
    LazyLock::force(&FILTER_ERRORS);
    LazyLock::force(&GPC_REQUESTS);
    LazyLock::force(&BLOCKED_REQUESTS);
    LazyLock::force(&NEUTRALIZED);
    LazyLock::force(&REWRITE_FAILURES);
    LazyLock::force(&JURISDICTION_REQUESTS);
    LazyLock::force(&UNROUTED);
    LazyLock::force(&RELOADS);
    LazyLock::force(&COOKIES_OVER_LIMIT);
    LazyLock::force(&EXPIRY_LINES_OVER_LIMIT);
    LazyLock::force(&EXPIRY_CACHE_BYTES);
    LazyLock::force(&ADMIN_REFUSED);
    LazyLock::force(&CONNECTIONS_OPEN);
    LazyLock::force(&CONNECTION_LIMIT_WAITS);
    LazyLock::force(&CONNECTIONS_RECLAIMED);
    LazyLock::force(&CLIENT_REFUSALS);
    LazyLock::force(&CLIENT_TIMEOUTS);
    LazyLock::force(&TLS_HANDSHAKE_FAILURES);
    LazyLock::force(&UPSTREAM_TIMEOUTS);
    LazyLock::force(&UPSTREAM_HEALTHY);
    LazyLock::force(&INVENTORY_REFUSED);
    LazyLock::force(&CONSENT_MODE_MISMATCHES);
    LazyLock::force(&RECEIPTS_WRITTEN);
    LazyLock::force(&RECEIPTS_DROPPED);
    LazyLock::force(&RECEIPT_STORE_ERRORS);
}

/// Prometheus text exposition of everything registered.
pub fn render() -> String {
    use prometheus::Encoder;
    // Read before this scrape allocates anything of its own.
    #[cfg(feature = "alloc-count")]
    let (allocations, bytes) = crate::alloc_count::totals();
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut buf);
    #[cfg(feature = "alloc-count")]
    {
        use std::io::Write;
        let _ = write!(
            buf,
            "# HELP {a} Calls into the heap allocator (alloc, alloc_zeroed, realloc) since start (build feature alloc-count)\n\
             # TYPE {a} counter\n{a} {allocations}\n\
             # HELP {b} Bytes asked for by those calls since start (build feature alloc-count)\n\
             # TYPE {b} counter\n{b} {bytes}\n",
            a = name::ALLOCATIONS,
            b = name::ALLOCATED_BYTES,
        );
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Pre-resolved counters for one site, so the request path does not hash label values.
/// Arrays are indexed by the label enums of [`crate::labels`].
pub struct SiteMetrics {
    pub requests: [IntCounter; ConsentLabel::COUNT],
    pub set_cookies: [[IntCounter; SetCookieAction::COUNT]; CategoryLabel::COUNT],
    pub request_stripped: [[IntCounter; StripAction::COUNT]; CategoryLabel::COUNT],
    pub expired: [IntCounter; CategoryLabel::COUNT],
    pub gpc: IntCounter,
    pub cookies_over_limit: IntCounter,
    pub expiry_lines_over_limit: IntCounter,
    pub expiry_cache_bytes: IntGauge,
    /// Per jurisdiction rule (in order), per reason; empty for a site without rules.
    pub jurisdictions: Vec<[IntCounter; 3]>,
    /// `consentgate_consent_sources_total` per registry format (`consent::registry::FORMATS`
    /// order), per `Via`; resolved at first use, so a format never seen shows no series.
    consent_sources: Vec<[std::sync::OnceLock<IntCounter>; 2]>,
}

/// One value per label of `L`, in `L::ALL` order.
fn per_label<L: Copy, T, const N: usize>(all: &[L], f: impl Fn(L) -> T) -> [T; N] {
    std::array::from_fn(|i| f(all[i]))
}

impl SiteMetrics {
    pub fn new(site: &str) -> Self {
        let cats = CategoryLabel::ALL;
        SiteMetrics {
            requests: per_label(ConsentLabel::ALL, |c| {
                REQUESTS.with_label_values(&[site, c.as_str()])
            }),
            set_cookies: per_label(cats, |c| {
                per_label(SetCookieAction::ALL, |a| {
                    SET_COOKIES.with_label_values(&[site, c.as_str(), a.as_str()])
                })
            }),
            request_stripped: per_label(cats, |c| {
                per_label(StripAction::ALL, |a| {
                    REQUEST_COOKIES_STRIPPED.with_label_values(&[site, c.as_str(), a.as_str()])
                })
            }),
            expired: per_label(cats, |c| {
                COOKIES_EXPIRED.with_label_values(&[site, c.as_str()])
            }),
            gpc: GPC_REQUESTS.with_label_values(&[site]),
            cookies_over_limit: COOKIES_OVER_LIMIT.with_label_values(&[site]),
            expiry_lines_over_limit: EXPIRY_LINES_OVER_LIMIT.with_label_values(&[site]),
            expiry_cache_bytes: EXPIRY_CACHE_BYTES.with_label_values(&[site]),
            jurisdictions: Vec::new(),
            consent_sources: crate::consent::registry::FORMATS
                .iter()
                .map(|_| Default::default())
                .collect(),
        }
    }

    /// Counts one consent source read on a request (no label hashing after the first).
    pub fn count_consent_source(&self, site: &str, via: crate::consent::Via, format: &str) {
        let Some(slots) =
            crate::consent::registry::index(format).and_then(|i| self.consent_sources.get(i))
        else {
            return;
        };
        let via_index = match via {
            crate::consent::Via::Cookie => 0,
            crate::consent::Via::Header => 1,
        };
        slots[via_index]
            .get_or_init(|| CONSENT_SOURCES.with_label_values(&[site, via.as_str(), format]))
            .inc();
    }

    /// Resolves the jurisdiction counters for the site's rules (label values: the configured
    /// names, bounded by the file).
    pub fn with_jurisdictions(
        mut self,
        site: &str,
        j: &crate::jurisdiction::Jurisdictions,
    ) -> Self {
        use crate::jurisdiction::Reason;
        self.jurisdictions = j
            .rules
            .iter()
            .map(|r| {
                Reason::LABELS
                    .map(|reason| JURISDICTION_REQUESTS.with_label_values(&[site, &r.name, reason]))
            })
            .collect();
        self
    }

    /// Counts the rule applied to one request.
    pub fn count_jurisdiction(&self, s: crate::jurisdiction::Selected) {
        if let Some(c) = self.jurisdictions.get(s.rule) {
            c[s.reason.index()].inc();
        }
    }
}

// --- Consent receipts (issue 12; src/receipts/) ---

/// Receipts written to the store.
pub static RECEIPTS_WRITTEN: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!(
        "consentgate_receipts_written_total",
        "Consent receipts written to the receipt store"
    )
    .unwrap()
});

/// Receipts lost: the queue held `queue_capacity` receipts not yet written (`queue_full`) or
/// the writer had stopped (`writer_stopped`). A failing store drops nothing: the writer holds
/// the receipts (they count against the capacity) and retries.
pub static RECEIPTS_DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_receipts_dropped_total",
        "Consent receipts not written, by reason (queue_full, writer_stopped)",
        &["reason"]
    )
    .unwrap()
});

/// Failed store operations, by operation (connect, receipts, aggregates, purge; timeout: a job
/// not answered in time). Every failed attempt counts; the writer retries.
pub static RECEIPT_STORE_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "consentgate_receipt_store_errors_total",
        "Failed receipt store operations, by operation (connect, receipts, aggregates, purge, timeout)",
        &["op"]
    )
    .unwrap()
});

// --- end of consent receipts ---

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_labels_are_bounded() {
        // Many requests, each admitting what it may: the set stops at the limit.
        for r in 0..(UNKNOWN_NAME_LABELS + 50) {
            let mut budget = UNKNOWN_LABELS_PER_REQUEST;
            count_unknown_cookie("t", &format!("c{r}"), &mut budget);
        }
        assert_eq!(unknown_cookie_labels("t"), UNKNOWN_NAME_LABELS);
        let mut budget = UNKNOWN_LABELS_PER_REQUEST;
        count_unknown_cookie("t", "bad name", &mut budget);
        count_unknown_cookie("t", &"x".repeat(100), &mut budget);
        assert_eq!(budget, UNKNOWN_LABELS_PER_REQUEST, "not label candidates");
        let text = render();
        assert!(text.contains("consentgate_unknown_cookies_total{name=\"_other\",site=\"t\"}"));
    }

    #[test]
    fn one_request_admits_only_a_few_names() {
        let site = "one-request";
        let mut budget = UNKNOWN_LABELS_PER_REQUEST;
        for i in 0..1000 {
            count_unknown_cookie(site, &format!("u{i}"), &mut budget);
        }
        assert_eq!(
            unknown_cookie_labels(site),
            UNKNOWN_LABELS_PER_REQUEST as usize
        );
        let mut next = UNKNOWN_LABELS_PER_REQUEST;
        count_unknown_cookie(site, "real_cookie", &mut next);
        assert_eq!(
            unknown_cookie_labels(site),
            UNKNOWN_LABELS_PER_REQUEST as usize + 1
        );
    }
}
