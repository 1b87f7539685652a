//! `consentgate report`: what was enforced in a period, from the hourly aggregates (and the
//! receipts) in the receipt store, summed over every instance that writes to it. JSON, or one
//! self-contained HTML page (tables and inline SVG charts; no script, no external asset).

use crate::receipts::store::{AggRow, Filter, Store};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The period and site a report covers (times in the stored form).
pub struct ReportRequest<'a> {
    pub since: &'a str,
    pub until: &'a str,
    pub site: Option<&'a str>,
}

/// Metric -> the report section it feeds and which labels key its rows.
const SECTIONS: &[(&str, &str, &[&str])] = &[
    (
        "consentgate_requests_total",
        "requests_by_consent",
        &["consent", "jurisdiction"],
    ),
    (
        "consentgate_set_cookie_total",
        "set_cookie",
        &["category", "action"],
    ),
    (
        "consentgate_request_cookies_stripped_total",
        "request_cookies_stripped",
        &["category", "action"],
    ),
    (
        "consentgate_cookies_expired_total",
        "cookies_expired",
        &["category"],
    ),
    (
        "consentgate_blocked_requests_total",
        "blocked_requests",
        &["category", "list", "action"],
    ),
    (
        "consentgate_unknown_cookies_total",
        "unknown_cookies",
        &["name"],
    ),
    ("consentgate_gpc_requests_total", "gpc_requests", &[]),
    (
        "consentgate_consent_errors_total",
        "consent_errors",
        &["format"],
    ),
];

fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The report as JSON: per site, each section's rows summed over instances and hours; the
/// hourly series; the receipts by event; the instances that contributed.
pub fn build(store: &mut dyn Store, req: &ReportRequest<'_>) -> Result<Value, String> {
    let rows = store.aggregates(req.since, req.until, req.site)?;
    let receipts = store.receipts(&Filter {
        site: req.site.map(str::to_string),
        since: Some(req.since.to_string()),
        until: Some(req.until.to_string()),
        ..Filter::default()
    })?;
    let mut v = from_rows(&rows, &receipts, req);
    v["inventory"] = inventory_json(&store.inventory(req.since, req.until, req.site)?);
    Ok(v)
}

/// The cookie inventory summed over instances: per (site, name) the latest category and
/// origin, kept/stripped added, the earliest first and latest last seen.
fn inventory_json(rows: &[crate::receipts::store::InventoryRow]) -> Value {
    let mut by: BTreeMap<(String, String), crate::receipts::store::InventoryRow> = BTreeMap::new();
    for r in rows {
        by.entry((r.site.clone(), r.name.clone()))
            .and_modify(|e| {
                e.kept += r.kept;
                e.stripped += r.stripped;
                if r.first_seen < e.first_seen {
                    e.first_seen = r.first_seen.clone();
                }
                if r.last_seen > e.last_seen {
                    e.last_seen = r.last_seen.clone();
                    e.category = r.category.clone();
                    e.origin = r.origin.clone();
                }
            })
            .or_insert_with(|| r.clone());
    }
    Value::Array(
        by.into_values()
            .map(|r| {
                json!({
                    "site": r.site, "name": r.name, "category": r.category, "origin": r.origin,
                    "kept": r.kept, "stripped": r.stripped,
                    "first_seen": r.first_seen, "last_seen": r.last_seen,
                })
            })
            .collect(),
    )
}

fn from_rows(
    rows: &[AggRow],
    receipts: &[(i64, crate::receipts::Receipt)],
    req: &ReportRequest<'_>,
) -> Value {
    let mut instances = BTreeSet::new();
    // site -> section -> row key -> value
    let mut sites: BTreeMap<String, BTreeMap<&str, BTreeMap<String, i64>>> = BTreeMap::new();
    // hour -> (requests, blocked)
    let mut hourly: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut other: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in rows {
        instances.insert(r.instance.clone());
        if r.metric == "consentgate_requests_total" {
            hourly.entry(r.hour.clone()).or_default().0 += r.value;
        }
        if r.metric == "consentgate_blocked_requests_total" {
            hourly.entry(r.hour.clone()).or_default().1 += r.value;
        }
        match SECTIONS.iter().find(|(m, _, _)| *m == r.metric) {
            Some((_, section, keys)) if !r.site.is_empty() => {
                let key: Vec<&str> = keys.iter().filter_map(|k| label(&r.labels, k)).collect();
                let key = if key.is_empty() {
                    "total".to_string()
                } else {
                    key.join("/")
                };
                *sites
                    .entry(r.site.clone())
                    .or_default()
                    .entry(section)
                    .or_default()
                    .entry(key)
                    .or_default() += r.value;
            }
            _ => {
                *other
                    .entry((r.metric.clone(), r.labels.clone()))
                    .or_default() += r.value;
            }
        }
    }
    let mut by_event: BTreeMap<String, i64> = BTreeMap::new();
    for (_, r) in receipts {
        *by_event.entry(r.event.clone()).or_default() += 1;
    }
    let sites: Map<String, Value> = sites
        .into_iter()
        .map(|(site, sections)| {
            let mut obj = Map::new();
            for (_, section, _) in SECTIONS {
                let rows = sections.get(section).cloned().unwrap_or_default();
                let total: i64 = rows.values().sum();
                obj.insert(section.to_string(), json!({ "total": total, "rows": rows }));
            }
            (site, Value::Object(obj))
        })
        .collect();
    json!({
        "since": req.since,
        "until": req.until,
        "site": req.site,
        "instances": instances,
        "sites": sites,
        "hourly": hourly.into_iter().map(|(hour, (requests, blocked))| json!({
            "hour": hour, "requests": requests, "blocked_requests": blocked
        })).collect::<Vec<_>>(),
        "receipts": { "total": receipts.len(), "by_event": by_event },
        "other_metrics": other.into_iter().map(|((metric, labels), value)| json!({
            "metric": metric, "labels": labels, "value": value
        })).collect::<Vec<_>>(),
        // Filled by `build` from table `inventory`.
        "inventory": [],
    })
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// An inline SVG bar chart of `(label, value)`, scaled to the largest value.
fn bar_chart(title: &str, bars: &[(String, i64)]) -> String {
    let max = bars.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let (w, h, pad) = (720.0, 160.0, 20.0);
    let bw = if bars.is_empty() {
        0.0
    } else {
        (w - 2.0 * pad) / bars.len() as f64
    };
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg width=\"{w}\" height=\"{}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        h + 2.0 * pad,
        esc(title)
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let bh = (*v as f64 / max) * h;
        let x = pad + i as f64 * bw;
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#3b6ea5\"><title>{}: {v}</title></rect>",
            pad + h - bh,
            (bw - 2.0).max(1.0),
            esc(label)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{pad}\" y=\"{:.1}\" font-size=\"11\">max {}</text></svg></figure>",
        pad - 6.0,
        max as i64
    ));
    svg
}

fn table(title: &str, head: &str, rows: &Map<String, Value>) -> String {
    let mut t = format!(
        "<h3>{}</h3><table><thead><tr><th>{}</th><th>count</th></tr></thead><tbody>",
        esc(title),
        esc(head)
    );
    if rows.is_empty() {
        t.push_str("<tr><td colspan=\"2\">none</td></tr>");
    }
    for (k, v) in rows {
        t.push_str(&format!(
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(k),
            v.as_i64().unwrap_or(0)
        ));
    }
    t.push_str("</tbody></table>");
    t
}

/// One HTML page: no script, styles inline, a CSP that forbids loading anything.
pub fn html(report: &Value) -> String {
    let s = |k: &str| report[k].as_str().unwrap_or("").to_string();
    let mut body = format!(
        "<h1>consentgate report</h1><p>Period {} to {}{}; instances: {}.</p>",
        esc(&s("since")),
        esc(&s("until")),
        report["site"]
            .as_str()
            .map(|x| format!(", site {}", esc(x)))
            .unwrap_or_default(),
        esc(&report["instances"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default())
    );
    let hourly: Vec<(String, i64, i64)> = report["hourly"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    (
                        h["hour"].as_str().unwrap_or("").to_string(),
                        h["requests"].as_i64().unwrap_or(0),
                        h["blocked_requests"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let req: Vec<(String, i64)> = hourly.iter().map(|h| (h.0.clone(), h.1)).collect();
    let blk: Vec<(String, i64)> = hourly.iter().map(|h| (h.0.clone(), h.2)).collect();
    body.push_str(&bar_chart("Requests per hour", &req));
    body.push_str(&bar_chart("Tracker requests blocked per hour", &blk));
    if let Some(r) = report["receipts"]["by_event"].as_object() {
        body.push_str(&table("Consent receipts by event", "event", r));
    }
    let titles = [
        (
            "requests_by_consent",
            "Requests by consent state",
            "consent",
        ),
        (
            "set_cookie",
            "Set-Cookie kept and stripped",
            "category/action",
        ),
        (
            "request_cookies_stripped",
            "Request cookies stripped",
            "category/action",
        ),
        ("cookies_expired", "Cookies expired", "category"),
        (
            "blocked_requests",
            "Tracker requests blocked",
            "category/list/action",
        ),
        (
            "unknown_cookies",
            "Unknown cookies to classify",
            "cookie name",
        ),
        ("gpc_requests", "Requests with Sec-GPC", ""),
        ("consent_errors", "Unreadable consent signals", "format"),
    ];
    if let Some(inv) = report["inventory"].as_array().filter(|a| !a.is_empty()) {
        body.push_str(
            "<h2>Cookie inventory</h2><table><thead><tr><th>site</th><th>cookie</th>\
<th>category</th><th>from</th><th>kept</th><th>stripped</th><th>first seen</th>\
<th>last seen</th></tr></thead><tbody>",
        );
        for c in inv {
            let t = |k: &str| esc(c[k].as_str().unwrap_or(""));
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                t("site"),
                t("name"),
                t("category"),
                t("origin"),
                c["kept"].as_i64().unwrap_or(0),
                c["stripped"].as_i64().unwrap_or(0),
                t("first_seen"),
                t("last_seen")
            ));
        }
        body.push_str("</tbody></table>");
    }
    if let Some(sites) = report["sites"].as_object() {
        for (site, sections) in sites {
            body.push_str(&format!("<h2>Site {}</h2>", esc(site)));
            for (key, title, head) in titles {
                let rows = sections[key]["rows"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                body.push_str(&table(title, head, &rows));
            }
        }
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
<title>consentgate report</title><style>body{{font-family:sans-serif;margin:2em;max-width:60em}}\
table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}\
td.n{{text-align:right}}figure{{margin:1em 0}}</style></head><body>{body}</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(instance: &str, metric: &str, labels: &str, value: i64) -> AggRow {
        AggRow {
            hour: "2026-11-28T19:00:00.000Z".into(),
            site: "shop".into(),
            instance: instance.into(),
            metric: metric.into(),
            labels: labels.into(),
            value,
        }
    }

    #[test]
    fn instances_sum_and_html_is_self_contained() {
        let rows = vec![
            row("a", "consentgate_requests_total", "consent=none", 3),
            row("b", "consentgate_requests_total", "consent=none", 4),
            row("b", "consentgate_unknown_cookies_total", "name=<x>", 2),
        ];
        let req = ReportRequest {
            since: "2026-11-28T00:00:00.000Z",
            until: "2026-11-29T00:00:00.000Z",
            site: None,
        };
        let v = from_rows(&rows, &[], &req);
        assert_eq!(v["sites"]["shop"]["requests_by_consent"]["rows"]["none"], 7);
        assert_eq!(v["instances"], json!(["a", "b"]));
        let page = html(&v);
        assert!(page.contains("&lt;x&gt;") && !page.contains("<x>"));
        assert!(!page.contains("<script") && !page.contains("src=\"http"));
    }
}
