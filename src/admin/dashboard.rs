//! The admin listener's live dashboard (issue 12): `GET /` is a self-contained page (its script
//! and stylesheet come from this listener, `/dashboard.js` and `/dashboard.css`; no CDN, a
//! strict CSP allowing nothing else), which fetches `/dashboard.json` every few seconds and
//! draws it.
//!
//! The JSON is read from the metric registry (the same numbers `/metrics` shows), plus two
//! things Prometheus counters cannot hold without unbounded labels: blocked tracker requests
//! per minute over the last hour (a ring of 60 minutes) and the top blocking rules and blocked
//! hosts (bounded tables, [`TOP_KEYS`] keys each, the rest counted as `_other`). Both are kept
//! for the process' life, updated only on blocked requests.

use crate::metrics::name;
use crate::runtime::Runtime;
use crate::trackers::BlockMatch;
use prometheus::proto::{MetricFamily, MetricType};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

/// The page, its script and its stylesheet: served as they are, no templating.
pub const PAGE: &str = include_str!("dashboard/index.html");
pub const SCRIPT: &str = include_str!("dashboard/dashboard.js");
pub const STYLE: &str = include_str!("dashboard/dashboard.css");

/// The page's policy: its own script, stylesheet and JSON, nothing inline, nothing elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Minutes the blocked-requests chart covers.
pub const MINUTES: usize = 60;
/// Distinct keys per top table (rules, hosts); later ones count as `_other`.
pub const TOP_KEYS: usize = 200;
/// Rows per top table in the JSON.
pub const TOP_ROWS: usize = 10;
/// Keys longer than this (rules can be long) are cut at a character boundary.
const MAX_KEY_LEN: usize = 120;

/// Blocked requests per minute: slot `m % 60` holds minute `m` (Unix minutes) and its count.
/// A Mutex, not atomics: the minute and its count change together, and only blocked requests
/// take it.
static BLOCKED_MINUTES: LazyLock<Mutex<[(u64, u64); MINUTES]>> =
    LazyLock::new(|| Mutex::new([(u64::MAX, 0); MINUTES]));

static TOP_RULES: LazyLock<Mutex<HashMap<Box<str>, u64>>> = LazyLock::new(Default::default);
static TOP_HOSTS: LazyLock<Mutex<HashMap<Box<str>, u64>>> = LazyLock::new(Default::default);

fn unix_minute() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

/// Counts a tracker request the blocklists or consent mode blocked (`enforce`: it was
/// answered locally).
/// Report-only matches go to the rule and host tables but not to the chart of blocked ones.
pub fn count_blocked(m: &BlockMatch, host: Option<&str>, enforce: bool) {
    if enforce {
        let minute = unix_minute();
        let mut ring = BLOCKED_MINUTES.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut ring[(minute % MINUTES as u64) as usize];
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        slot.1 += 1;
    }
    if let Some(rule) = &m.rule {
        bump(&TOP_RULES, rule);
    }
    // Without its port: one tracker host is one row.
    let host = host.map(|h| match h.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(']') => {
            name
        }
        _ => h,
    });
    bump(&TOP_HOSTS, host.unwrap_or("(none)"));
}

fn bump(table: &Mutex<HashMap<Box<str>, u64>>, key: &str) {
    let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = t.get_mut(key) {
        *n += 1;
        return;
    }
    let printable = !key.is_empty() && key.chars().all(|c| !c.is_control());
    let key = if printable && t.len() < TOP_KEYS {
        let mut end = key.len().min(MAX_KEY_LEN);
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        &key[..end]
    } else {
        crate::metrics::OTHER_NAME
    };
    *t.entry(key.into()).or_insert(0) += 1;
}

/// Blocked requests in each of the last 60 minutes, oldest first (the last is this minute).
pub fn blocked_per_minute() -> Vec<u64> {
    let now = unix_minute();
    let ring = BLOCKED_MINUTES.lock().unwrap_or_else(|e| e.into_inner());
    (0..MINUTES as u64)
        .rev()
        .map(|ago| {
            let m = now.saturating_sub(ago);
            let slot = ring[(m % MINUTES as u64) as usize];
            if slot.0 == m && ago <= now {
                slot.1
            } else {
                0
            }
        })
        .collect()
}

fn top(table: &Mutex<HashMap<Box<str>, u64>>, key: &str) -> Vec<Value> {
    let t = table.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<(&str, u64)> = t.iter().map(|(k, n)| (&**k, *n)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    rows.truncate(TOP_ROWS);
    rows.into_iter()
        .map(|(k, n)| json!({ key: k, "count": n }))
        .collect()
}

/// One sample of a family: its labels and value (counter or gauge).
struct Sample<'a> {
    labels: Vec<(&'a str, &'a str)>,
    value: u64,
}

impl Sample<'_> {
    fn label(&self, name: &str) -> &str {
        self.labels
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v)
    }
}

fn samples<'a>(families: &'a [MetricFamily], family: &str) -> Vec<Sample<'a>> {
    let mut out = Vec::new();
    for f in families.iter().filter(|f| f.get_name() == family) {
        for m in f.get_metric() {
            let value = match f.get_field_type() {
                MetricType::GAUGE => m.get_gauge().get_value(),
                _ => m.get_counter().get_value(),
            };
            out.push(Sample {
                labels: m
                    .get_label()
                    .iter()
                    .map(|l| (l.get_name(), l.get_value()))
                    .collect(),
                value: value.max(0.0) as u64,
            });
        }
    }
    out
}

/// Sum of a family's samples, grouped by one label (sorted by label value).
fn by_label(s: &[Sample], label: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for x in s {
        *out.entry(x.label(label).to_string()).or_insert(0) += x.value;
    }
    out
}

fn total(s: &[Sample]) -> u64 {
    s.iter().map(|x| x.value).sum()
}

/// Everything the page shows, read now.
pub fn dashboard_json(rt: &Runtime) -> Value {
    use crate::labels::{CategoryLabel, ConsentLabel};
    let families = prometheus::gather();
    let get = |n: &str| samples(&families, n);
    let requests = get(name::REQUESTS);
    let by_consent = by_label(&requests, "consent");
    let consent: BTreeMap<&str, u64> = ConsentLabel::ALL
        .iter()
        .map(|c| (c.as_str(), by_consent.get(c.as_str()).copied().unwrap_or(0)))
        .collect();
    let per_site: BTreeMap<String, u64> = by_label(&requests, "site");

    let blocked = get(name::BLOCKED_REQUESTS);
    let mut lists: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in &blocked {
        let e = lists.entry(s.label("list").to_string()).or_default();
        match s.label("action") {
            "blocked" => e.0 += s.value,
            _ => e.1 += s.value,
        }
    }
    let mut lists: Vec<_> = lists.into_iter().collect();
    lists.sort_by(|a, b| {
        (b.1 .0 + b.1 .1)
            .cmp(&(a.1 .0 + a.1 .1))
            .then(a.0.cmp(&b.0))
    });
    lists.truncate(TOP_ROWS);
    let blocked_action = by_label(&blocked, "action");

    let set_cookies = get(name::SET_COOKIES);
    let req_stripped = get(name::REQUEST_COOKIES_STRIPPED);
    let expired = get(name::COOKIES_EXPIRED);
    let categories: Vec<Value> = CategoryLabel::ALL
        .iter()
        .map(|c| {
            let c = c.as_str();
            let sum = |s: &[Sample], action: Option<&str>| -> u64 {
                s.iter()
                    .filter(|x| x.label("category") == c)
                    .filter(|x| action.is_none_or(|a| x.label("action") == a))
                    .map(|x| x.value)
                    .sum()
            };
            json!({
                "category": c,
                "set_cookie_kept": sum(&set_cookies, Some("kept")),
                "set_cookie_stripped": sum(&set_cookies, Some("stripped")),
                "set_cookie_would_strip": sum(&set_cookies, Some("would_strip")),
                "request_stripped": sum(&req_stripped, Some("stripped")),
                "request_would_strip": sum(&req_stripped, Some("would_strip")),
                "expired": sum(&expired, None),
            })
        })
        .collect();

    let unknown = get(name::UNKNOWN_COOKIES);
    let mut unknown_rows: Vec<(&str, &str, u64)> = unknown
        .iter()
        .filter(|s| s.value > 0)
        .map(|s| (s.label("site"), s.label("name"), s.value))
        .collect();
    unknown_rows.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    unknown_rows.truncate(TOP_ROWS * 2);

    let upstreams: Vec<Value> = get(name::UPSTREAM_HEALTHY)
        .iter()
        .map(|s| json!({"site": s.label("site"), "upstream": s.label("upstream"), "healthy": s.value}))
        .collect();
    let generated = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "generated_at": super::rfc3339(generated),
        "sites": rt.sites.iter().map(|s| json!({
            "name": s.name,
            "mode": s.policy.mode.as_str(),
            "requests": per_site.get(&s.name).copied().unwrap_or(0),
        })).collect::<Vec<_>>(),
        "requests": {
            "total": total(&requests),
            "consent": consent,
            "gpc": total(&get(name::GPC_REQUESTS)),
        },
        "blocked": {
            "blocked": blocked_action.get("blocked").copied().unwrap_or(0),
            "would_block": blocked_action.get("would_block").copied().unwrap_or(0),
            "per_minute": blocked_per_minute(),
            "lists": lists.iter().map(|(l, (b, w))| json!({"list": l, "blocked": b, "would_block": w})).collect::<Vec<_>>(),
            "rules": top(&TOP_RULES, "rule"),
            "hosts": top(&TOP_HOSTS, "host"),
        },
        "cookies": categories,
        "unknown_cookies": {
            "total": total(&unknown),
            "names": unknown_rows.iter().map(|(s, n, c)| json!({"site": s, "name": n, "count": c})).collect::<Vec<_>>(),
        },
        "receipts": {
            "written": total(&get(name::RECEIPTS_WRITTEN)),
            "dropped": total(&get(name::RECEIPTS_DROPPED)),
        },
        "errors": {
            "consent": total(&get(name::CONSENT_ERRORS)),
            "filter": total(&get(name::FILTER_ERRORS)),
            "upstream": total(&get(name::UPSTREAM_ERRORS)),
            "upstream_timeouts": total(&get(name::UPSTREAM_TIMEOUTS)),
            "rewrite": total(&get(name::REWRITE_FAILURES)),
        },
        "upstreams": upstreams,
    })
}

/// `/inventory`: the live cookie inventory, and what it refused.
pub fn inventory_json() -> Value {
    let inv = &crate::inventory::INVENTORY;
    json!({
        "cookies": inv.snapshot(),
        "refused": inv.refused().into_iter().map(|(site, n)| json!({"site": site, "count": n})).collect::<Vec<_>>(),
        "bytes": inv.bytes(),
        "limits": {
            "names_per_site": crate::inventory::MAX_NAMES_PER_SITE,
            "bytes": crate::inventory::MAX_BYTES,
            "new_names_per_request": crate::inventory::NEW_NAMES_PER_REQUEST,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_tables_are_bounded() {
        let t = Mutex::new(HashMap::new());
        for i in 0..(TOP_KEYS + 30) {
            bump(&t, &format!("k{i}"));
        }
        bump(&t, &"r".repeat(500));
        let t = t.into_inner().unwrap();
        assert_eq!(t.len(), TOP_KEYS + 1);
        assert_eq!(t[crate::metrics::OTHER_NAME], 31);
        let t = Mutex::new(HashMap::new());
        bump(&t, &"é".repeat(100));
        assert!(t
            .into_inner()
            .unwrap()
            .keys()
            .all(|k| k.len() <= MAX_KEY_LEN));
    }

    #[test]
    fn the_chart_covers_sixty_minutes_ending_now() {
        let m = BlockMatch {
            category: crate::consent::Category::Analytics,
            list: "l".into(),
            rule: Some("||t.test^".into()),
        };
        let before: u64 = blocked_per_minute().iter().sum();
        count_blocked(&m, Some("t.test:8080"), true);
        count_blocked(&m, Some("t.test"), false);
        let now = blocked_per_minute();
        assert_eq!(now.len(), MINUTES);
        assert_eq!(
            now.iter().sum::<u64>(),
            before + 1,
            "report-only is not charted"
        );
        assert!(*now.last().unwrap() >= 1);
        let hosts = top(&TOP_HOSTS, "host");
        assert!(hosts
            .iter()
            .any(|h| h["host"] == "t.test" && h["count"].as_u64() >= Some(2)));
    }
}
