//! Every metric consentgate exports, in one place: the whole observable surface at a glance.
//! All are Prometheus counters in the default registry, served on the admin listener's `/metrics`.
//!
//! Label values are bounded: `site` comes from configuration, `category` is one of the four
//! categories or `unknown`, `consent` is `none|partial|all|invalid|off`, and cookie names seen
//! unclassified are admitted as labels only up to [`UNKNOWN_NAME_LABELS`] distinct names per
//! site, at most [`UNKNOWN_LABELS_PER_REQUEST`] new ones per request, reset on every reload
//! (see [`count_unknown_cookie`]).

use once_cell::sync::Lazy;
use prometheus::{
    register_int_counter_vec, register_int_gauge_vec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};
use std::collections::HashMap;
use std::sync::RwLock;

/// Requests by site and the visitor's consent state.
pub static REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_requests_total",
        "Requests by site and consent state (none, partial, all, invalid, off)",
        &["site", "consent"]
    )
    .unwrap()
});

/// Response `Set-Cookie` lines by site, category and action.
pub static SET_COOKIES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_set_cookie_total",
        "Set-Cookie lines by site, category and action (kept, stripped, would_strip in report-only)",
        &["site", "category", "action"]
    )
    .unwrap()
});

/// Request cookies withheld from the origin.
pub static REQUEST_COOKIES_STRIPPED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_request_cookies_stripped_total",
        "Request cookies removed before the origin, by site, category and action (stripped, would_strip)",
        &["site", "category", "action"]
    )
    .unwrap()
});

/// Cookies deleted in the browser because their category has no consent (withdrawal).
pub static COOKIES_EXPIRED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_cookies_expired_total",
        "Cookies expired in the browser because consent for their category is absent or withdrawn",
        &["site", "category"]
    )
    .unwrap()
});

/// Cookie names no rule, catalogue entry or database row classifies.
pub static UNKNOWN_COOKIES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_unknown_cookies_total",
        "Unclassified cookie names seen (request or response), by site and name; names past the label limit count as _other",
        &["site", "name"]
    )
    .unwrap()
});

/// Consent sources present but unreadable (they granted nothing).
pub static CONSENT_ERRORS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_consent_errors_total",
        "Consent sources that could not be read (fail closed: they grant nothing), by site and format",
        &["site", "format"]
    )
    .unwrap()
});

/// Requests whose upstream failed.
pub static UPSTREAM_ERRORS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_upstream_errors_total",
        "Requests that failed on the upstream side, by site and pingora error type",
        &["site", "error"]
    )
    .unwrap()
});

/// Filter failures that were passed through (availability fails open).
pub static FILTER_ERRORS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_filter_errors_total",
        "Filter failures passed through unchanged (fail open), by site and stage",
        &["site", "stage"]
    )
    .unwrap()
});

/// Requests carrying `Sec-GPC: 1`.
pub static GPC_REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_gpc_requests_total",
        "Requests carrying Sec-GPC: 1, by site",
        &["site"]
    )
    .unwrap()
});

/// Tracker requests answered by the proxy (or that would be, in report-only).
pub static BLOCKED_REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_blocked_requests_total",
        "Tracker requests answered without contacting the origin, by site, category, list and action (blocked, would_block)",
        &["site", "category", "list", "action"]
    )
    .unwrap()
});

/// HTML elements rewritten so the browser does not run them.
pub static NEUTRALIZED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_neutralized_elements_total",
        "HTML elements neutralized (tracker scripts, iframes, pixels, preloads), by site, category and tag",
        &["site", "category", "tag"]
    )
    .unwrap()
});

/// HTML rewrites that failed; the rest of the body was passed through.
pub static REWRITE_FAILURES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_rewrite_failures_total",
        "HTML rewrites that failed and passed the rest of the body through unchanged, by site and reason",
        &["site", "reason"]
    )
    .unwrap()
});

/// Requests no site was configured for.
pub static UNROUTED: Lazy<IntCounter> = Lazy::new(|| {
    prometheus::register_int_counter!(
        "consentgate_unrouted_requests_total",
        "Requests whose Host matched no site (answered 421)"
    )
    .unwrap()
});

/// Configuration reloads by result.
pub static RELOADS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_config_reloads_total",
        "Configuration reloads by result (ok, error)",
        &["result"]
    )
    .unwrap()
});

// --- Request-path limits and bounded state (issue 8) ---

/// Request cookies past `[proxy] max_request_cookies`.
pub static COOKIES_OVER_LIMIT: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_request_cookies_over_limit_total",
        "Request cookies past max_request_cookies: not read, and in enforce mode not forwarded to the origin, by site",
        &["site"]
    )
    .unwrap()
});

/// Expiry `Set-Cookie` lines not sent because of `[proxy] max_expiry_lines`.
pub static EXPIRY_LINES_OVER_LIMIT: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_expiry_lines_over_limit_total",
        "Expiry Set-Cookie lines left out of a response because of max_expiry_lines, by site",
        &["site"]
    )
    .unwrap()
});

/// Bytes held by each site's expiry-line cache (names, lines, per-entry overhead).
pub static EXPIRY_CACHE_BYTES: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "consentgate_expiry_cache_bytes",
        "Bytes held by the site's cache of expiry Set-Cookie lines (bounded; emptied on reload)",
        &["site"]
    )
    .unwrap()
});

/// Admin requests refused.
pub static ADMIN_REFUSED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_admin_refused_total",
        "Admin requests refused, by reason (host, cross_site, token)",
        &["reason"]
    )
    .unwrap()
});

// --- Connections: timeouts, limits, refusals (src/connections) ---

/// Client connections open now.
pub static CONNECTIONS_OPEN: Lazy<IntGauge> = Lazy::new(|| {
    prometheus::register_int_gauge!(
        "consentgate_connections_open",
        "Client connections open now (each holds one of max_connections slots)"
    )
    .unwrap()
});

/// Times the accept loop waited for a free connection slot.
pub static CONNECTION_LIMIT_WAITS: Lazy<IntCounter> = Lazy::new(|| {
    prometheus::register_int_counter!(
        "consentgate_connection_limit_waits_total",
        "New connections that waited in the accept queue because max_connections were open"
    )
    .unwrap()
});

/// Waiting connections closed to make room for new ones at the connection limit.
pub static CONNECTIONS_RECLAIMED: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_connections_reclaimed_total",
        "Connections closed to free a slot for a new one while max_connections were open, by what they were waiting for (header: a request's first byte or the rest of its header, 408; keepalive: an idle kept-alive connection)",
        &["phase"]
    )
    .unwrap()
});

/// Requests refused before any site saw them.
pub static CLIENT_REFUSALS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_client_refusals_total",
        "Requests refused for their form, by reason (uri_too_long 414, header_too_large and too_many_headers 431, bad_chunk, missing_host, invalid_host, bad_target, ambiguous_framing, bad_content_length, bad_transfer_encoding 400, unsupported_transfer_coding 501)",
        &["reason"]
    )
    .unwrap()
});

/// Client connections cut by a timeout.
pub static CLIENT_TIMEOUTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_client_timeouts_total",
        "Client connections ended by a timeout, by phase (header: 408 or closed before any byte, keepalive: idle between requests, body: between two body reads, send: between two writes)",
        &["phase"]
    )
    .unwrap()
});

/// TLS handshakes on the `listen_tls` listeners that did not complete.
pub static TLS_HANDSHAKE_FAILURES: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_tls_handshake_failures_total",
        "TLS handshakes that did not complete, by reason (timeout: not done within client_header_timeout_ms, error: refused by the client or the server, e.g. no shared version or cipher; no_certificate: listen_tls without a certificate)",
        &["reason"]
    )
    .unwrap()
});

/// Origin connections that timed out, by site, upstream and phase.
pub static UPSTREAM_TIMEOUTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "consentgate_upstream_timeouts_total",
        "Requests whose origin timed out (answered 504), by site, upstream address and phase (connect, read, write)",
        &["site", "upstream", "phase"]
    )
    .unwrap()
});

// --- end of connection metrics ---

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
static UNKNOWN_LABELS: Lazy<RwLock<HashMap<String, SiteNameLabels>>> = Lazy::new(Default::default);

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

/// Forces every metric into existence so `/metrics` lists them from the start.
pub fn init() {
    Lazy::force(&REQUESTS);
    Lazy::force(&SET_COOKIES);
    Lazy::force(&REQUEST_COOKIES_STRIPPED);
    Lazy::force(&COOKIES_EXPIRED);
    Lazy::force(&UNKNOWN_COOKIES);
    Lazy::force(&CONSENT_ERRORS);
    Lazy::force(&UPSTREAM_ERRORS);
    Lazy::force(&FILTER_ERRORS);
    Lazy::force(&GPC_REQUESTS);
    Lazy::force(&BLOCKED_REQUESTS);
    Lazy::force(&NEUTRALIZED);
    Lazy::force(&REWRITE_FAILURES);
    Lazy::force(&UNROUTED);
    Lazy::force(&RELOADS);
    Lazy::force(&COOKIES_OVER_LIMIT);
    Lazy::force(&EXPIRY_LINES_OVER_LIMIT);
    Lazy::force(&EXPIRY_CACHE_BYTES);
    Lazy::force(&ADMIN_REFUSED);
    Lazy::force(&CONNECTIONS_OPEN);
    Lazy::force(&CONNECTION_LIMIT_WAITS);
    Lazy::force(&CONNECTIONS_RECLAIMED);
    Lazy::force(&CLIENT_REFUSALS);
    Lazy::force(&CLIENT_TIMEOUTS);
    Lazy::force(&TLS_HANDSHAKE_FAILURES);
    Lazy::force(&UPSTREAM_TIMEOUTS);
}

/// Prometheus text exposition of everything registered.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// Pre-resolved counters for one site, so the request path does not hash label values.
pub struct SiteMetrics {
    /// Indexed by [`consent_index`].
    pub requests: [IntCounter; 5],
    /// `[category][0 kept, 1 stripped, 2 would_strip]`; category index 4 = unknown.
    pub set_cookies: [[IntCounter; 3]; 5],
    /// `[category][0 stripped, 1 would_strip]`.
    pub request_stripped: [[IntCounter; 2]; 5],
    pub expired: [IntCounter; 5],
    pub gpc: IntCounter,
    pub cookies_over_limit: IntCounter,
    pub expiry_lines_over_limit: IntCounter,
    pub expiry_cache_bytes: IntGauge,
}

/// Label values in the order the arrays above use.
pub const CATEGORY_LABELS: [&str; 5] = [
    "necessary",
    "preferences",
    "analytics",
    "marketing",
    "unknown",
];
pub const CONSENT_LABELS: [&str; 5] = ["none", "partial", "all", "invalid", "off"];

pub fn consent_index(label: &str) -> usize {
    CONSENT_LABELS.iter().position(|l| *l == label).unwrap_or(0)
}

/// Index into the per-category arrays: the category, or 4 for unknown.
pub fn category_index(c: Option<crate::consent::Category>) -> usize {
    c.map_or(4, |c| c as usize)
}

impl SiteMetrics {
    pub fn new(site: &str) -> Self {
        let by_cat = |f: &dyn Fn(&str) -> IntCounter| -> [IntCounter; 5] {
            std::array::from_fn(|i| f(CATEGORY_LABELS[i]))
        };
        SiteMetrics {
            requests: std::array::from_fn(|i| {
                REQUESTS.with_label_values(&[site, CONSENT_LABELS[i]])
            }),
            set_cookies: std::array::from_fn(|c| {
                ["kept", "stripped", "would_strip"]
                    .map(|a| SET_COOKIES.with_label_values(&[site, CATEGORY_LABELS[c], a]))
            }),
            request_stripped: std::array::from_fn(|c| {
                ["stripped", "would_strip"].map(|a| {
                    REQUEST_COOKIES_STRIPPED.with_label_values(&[site, CATEGORY_LABELS[c], a])
                })
            }),
            expired: by_cat(&|c| COOKIES_EXPIRED.with_label_values(&[site, c])),
            gpc: GPC_REQUESTS.with_label_values(&[site]),
            cookies_over_limit: COOKIES_OVER_LIMIT.with_label_values(&[site]),
            expiry_lines_over_limit: EXPIRY_LINES_OVER_LIMIT.with_label_values(&[site]),
            expiry_cache_bytes: EXPIRY_CACHE_BYTES.with_label_values(&[site]),
        }
    }
}

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
