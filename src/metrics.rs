//! Every metric consentgate exports, in one place: the whole observable surface at a glance.
//! All are Prometheus counters (one gauge: open connections) in the default registry, served on the admin listener's `/metrics`.
//!
//! Label values are bounded: `site` comes from configuration, `category` is one of the four
//! categories or `unknown`, `consent` is `none|partial|all|invalid|off`, and cookie names seen
//! unclassified are admitted as labels only up to [`UNKNOWN_NAME_LABELS`] distinct names.

use once_cell::sync::Lazy;
use prometheus::{register_int_counter_vec, IntCounter, IntCounterVec, IntGauge};
use std::collections::HashSet;
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

/// How many distinct unknown cookie names may become label values.
pub const UNKNOWN_NAME_LABELS: usize = 200;
/// The label for names past that limit (or not printable).
pub const OTHER_NAME: &str = "_other";

static ADMITTED_NAMES: Lazy<RwLock<HashSet<String>>> = Lazy::new(Default::default);

/// Counts an unknown cookie name, keeping label cardinality bounded.
pub fn count_unknown_cookie(site: &str, name: &str) {
    let label = admitted_label(name);
    UNKNOWN_COOKIES.with_label_values(&[site, label]).inc();
}

fn admitted_label(name: &str) -> &str {
    let printable = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if !printable {
        return OTHER_NAME;
    }
    if ADMITTED_NAMES.read().unwrap().contains(name) {
        return name;
    }
    let mut set = ADMITTED_NAMES.write().unwrap();
    if set.len() < UNKNOWN_NAME_LABELS {
        set.insert(name.to_string());
        name
    } else if set.contains(name) {
        name
    } else {
        OTHER_NAME
    }
}

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
    Lazy::force(&CONNECTIONS_OPEN);
    Lazy::force(&CONNECTION_LIMIT_WAITS);
    Lazy::force(&CONNECTIONS_RECLAIMED);
    Lazy::force(&CLIENT_REFUSALS);
    Lazy::force(&CLIENT_TIMEOUTS);
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_labels_are_bounded() {
        for i in 0..(UNKNOWN_NAME_LABELS + 50) {
            count_unknown_cookie("t", &format!("c{i}"));
        }
        assert!(ADMITTED_NAMES.read().unwrap().len() <= UNKNOWN_NAME_LABELS);
        assert_eq!(admitted_label("bad name"), OTHER_NAME);
        assert_eq!(admitted_label(&"x".repeat(100)), OTHER_NAME);
        let text = render();
        assert!(text.contains("consentgate_unknown_cookies_total{name=\"_other\",site=\"t\"}"));
    }
}
