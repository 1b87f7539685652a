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

/// One section of a site's report: the counter it sums and the labels that key its rows
/// (each row of the JSON holds them as fields, plus `count`; the HTML table has a column each).
struct Section {
    metric: &'static str,
    key: &'static str,
    labels: &'static [&'static str],
    title: &'static str,
}

const SECTIONS: &[Section] = &[
    Section {
        metric: "consentgate_requests_total",
        key: "requests_by_consent",
        labels: &["consent"],
        title: "Requests by consent state",
    },
    Section {
        metric: "consentgate_jurisdiction_requests_total",
        key: "requests_by_jurisdiction",
        labels: &["jurisdiction", "reason"],
        title: "Requests by jurisdiction (sites with [[site.jurisdiction]] rules)",
    },
    Section {
        metric: "consentgate_set_cookie_total",
        key: "set_cookie",
        labels: &["category", "action"],
        title: "Set-Cookie kept and stripped",
    },
    Section {
        metric: "consentgate_request_cookies_stripped_total",
        key: "request_cookies_stripped",
        labels: &["category", "action"],
        title: "Request cookies stripped",
    },
    Section {
        metric: "consentgate_cookies_expired_total",
        key: "cookies_expired",
        labels: &["category"],
        title: "Cookies expired",
    },
    Section {
        metric: "consentgate_blocked_requests_total",
        key: "blocked_requests",
        labels: &["category", "list", "action"],
        title: "Tracker requests blocked",
    },
    Section {
        metric: crate::metrics::name::CONSENT_MODE_MISMATCHES,
        key: "consent_mode_mismatches",
        labels: &["tag", "action"],
        title: "Google tag beacons claiming consent not given (Consent Mode mismatches; \
also in the blocked requests, list consent-mode)",
    },
    Section {
        metric: "consentgate_unknown_cookies_total",
        key: "unknown_cookies",
        labels: &["name"],
        title: "Unknown cookies to classify",
    },
    Section {
        metric: "consentgate_gpc_requests_total",
        key: "gpc_requests",
        labels: &[],
        title: "Requests with Sec-GPC",
    },
    Section {
        metric: "consentgate_consent_errors_total",
        key: "consent_errors",
        labels: &["format"],
        title: "Unreadable consent signals",
    },
];

/// The labels of an aggregate row (`name=value` joined by `,`, the store's form), in order.
/// A value may hold `,` (a list's path): a part that does not start with `name=` continues
/// the value before it.
fn parse_labels(labels: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for part in labels.split(',') {
        let starts_label = part.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !k.as_bytes()[0].is_ascii_digit()
        });
        match (starts_label, out.last_mut()) {
            (false, Some((_, v))) => {
                v.push(',');
                v.push_str(part);
            }
            (false, None) => {}
            (true, _) => {
                let (k, v) = part.split_once('=').unwrap_or_default();
                out.push((k, v.to_string()));
            }
        }
    }
    out
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
/// origin, the period's kept/stripped added, the earliest first and latest last seen.
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

/// Row key (the section's label values, in order) -> count.
type SectionRows = BTreeMap<Vec<String>, i64>;

fn from_rows(
    rows: &[AggRow],
    receipts: &[(i64, crate::receipts::Receipt)],
    req: &ReportRequest<'_>,
) -> Value {
    let mut instances = BTreeSet::new();
    // site -> section -> rows
    let mut sites: BTreeMap<String, BTreeMap<&str, SectionRows>> = BTreeMap::new();
    // hour -> (requests, blocked)
    let mut hourly: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut other: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for r in rows {
        instances.insert(r.instance.clone());
        if r.metric == "consentgate_requests_total" {
            hourly.entry(r.hour.clone()).or_default().0 += r.value;
        }
        if r.metric == "consentgate_blocked_requests_total" {
            hourly.entry(r.hour.clone()).or_default().1 += r.value;
        }
        match SECTIONS.iter().find(|s| s.metric == r.metric) {
            Some(section) if !r.site.is_empty() => {
                let labels = parse_labels(&r.labels);
                let key: Vec<String> = section
                    .labels
                    .iter()
                    .map(|k| {
                        labels
                            .iter()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                *sites
                    .entry(r.site.clone())
                    .or_default()
                    .entry(section.key)
                    .or_default()
                    .entry(key)
                    .or_default() += r.value;
            }
            _ => {
                *other
                    .entry((r.metric.clone(), r.site.clone(), r.labels.clone()))
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
            for section in SECTIONS {
                let rows = sections.get(section.key).cloned().unwrap_or_default();
                let total: i64 = rows.values().sum();
                let rows: Vec<Value> = rows
                    .into_iter()
                    .map(|(key, count)| {
                        let mut row: Map<String, Value> = section
                            .labels
                            .iter()
                            .zip(key)
                            .map(|(k, v)| (k.to_string(), Value::String(v)))
                            .collect();
                        row.insert("count".into(), count.into());
                        Value::Object(row)
                    })
                    .collect();
                obj.insert(
                    section.key.to_string(),
                    json!({ "total": total, "rows": rows }),
                );
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
        "other_metrics": other.into_iter().map(|((metric, site, labels), value)| {
            let labels: Map<String, Value> = parse_labels(&labels)
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::String(v)))
                .collect();
            json!({ "metric": metric, "site": site, "labels": labels, "value": value })
        }).collect::<Vec<_>>(),
        // Filled by `build` from tables `inventory` and `inventory_hours`.
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

/// A section as a table: a column per label, then the count.
fn table(title: &str, columns: &[&str], rows: &[Value]) -> String {
    let mut t = format!("<h3>{}</h3><table><thead><tr>", esc(title));
    for c in columns {
        t.push_str(&format!("<th>{}</th>", esc(c)));
    }
    t.push_str("<th>count</th></tr></thead><tbody>");
    if rows.is_empty() {
        t.push_str(&format!(
            "<tr><td colspan=\"{}\">none</td></tr>",
            columns.len() + 1
        ));
    }
    for r in rows {
        t.push_str("<tr>");
        for c in columns {
            t.push_str(&format!("<td>{}</td>", esc(r[*c].as_str().unwrap_or(""))));
        }
        t.push_str(&format!(
            "<td class=\"n\">{}</td></tr>",
            r["count"].as_i64().unwrap_or(0)
        ));
    }
    t.push_str("</tbody></table>");
    t
}

/// The counters no section tabulates (`other_metrics`: upstream errors, neutralized tags,
/// receipts written, ...), one row each with its labels as `name=value`: everything in the
/// JSON is on the page too.
fn other_metrics_table(other: &Value) -> String {
    let rows = other.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut t = String::from(
        "<h2>Other counters</h2><table><thead><tr><th>metric</th><th>site</th>\
<th>labels</th><th>count</th></tr></thead><tbody>",
    );
    if rows.is_empty() {
        t.push_str("<tr><td colspan=\"4\">none</td></tr>");
    }
    for r in rows {
        let labels = r["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        t.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(r["metric"].as_str().unwrap_or("")),
            esc(r["site"].as_str().unwrap_or("")),
            esc(&labels),
            r["value"].as_i64().unwrap_or(0)
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
        let rows: Vec<Value> = r
            .iter()
            .map(|(event, n)| json!({ "event": event, "count": n }))
            .collect();
        body.push_str(&table("Consent receipts by event", &["event"], &rows));
    }
    if let Some(inv) = report["inventory"].as_array().filter(|a| !a.is_empty()) {
        body.push_str(
            "<h2>Cookie inventory</h2><p>Kept and stripped: times in this period; first and \
last seen: ever, by any instance.</p><table><thead><tr><th>site</th><th>cookie</th>\
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
            for section in SECTIONS {
                let rows = sections[section.key]["rows"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                body.push_str(&table(section.title, section.labels, &rows));
            }
        }
    }
    body.push_str(&other_metrics_table(&report["other_metrics"]));
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
        assert_eq!(
            v["sites"]["shop"]["requests_by_consent"]["rows"],
            json!([{ "consent": "none", "count": 7 }])
        );
        assert_eq!(v["instances"], json!(["a", "b"]));
        let page = html(&v);
        assert!(page.contains("&lt;x&gt;") && !page.contains("<x>"));
        assert!(!page.contains("<script") && !page.contains("src=\"http"));
    }

    #[test]
    fn rows_are_structured_even_when_a_list_path_holds_commas_and_slashes() {
        let list = "/etc/consentgate/lists,v2/analytics.txt";
        let rows = vec![
            row(
                "a",
                "consentgate_blocked_requests_total",
                &format!("action=blocked,category=analytics,list={list}"),
                5,
            ),
            row(
                "a",
                "consentgate_jurisdiction_requests_total",
                "jurisdiction=us-optout,reason=matched",
                2,
            ),
            row("a", "consentgate_upstream_errors_total", "kind=connect", 1),
        ];
        let req = ReportRequest {
            since: "2026-11-28T00:00:00.000Z",
            until: "2026-11-29T00:00:00.000Z",
            site: None,
        };
        let v = from_rows(&rows, &[], &req);
        let shop = &v["sites"]["shop"];
        assert_eq!(
            shop["blocked_requests"]["rows"],
            json!([{ "category": "analytics", "list": list, "action": "blocked", "count": 5 }])
        );
        assert_eq!(
            shop["requests_by_jurisdiction"]["rows"],
            json!([{ "jurisdiction": "us-optout", "reason": "matched", "count": 2 }])
        );
        // A metric without a section keeps its site and its labels as fields.
        assert_eq!(
            v["other_metrics"],
            json!([{ "metric": "consentgate_upstream_errors_total", "site": "shop",
                     "labels": { "kind": "connect" }, "value": 1 }])
        );
        // One column per label: the path is a cell of its own, not part of a joined key.
        let page = html(&v);
        assert!(
            page.contains(&format!(
                "<tr><td>analytics</td><td>{list}</td><td>blocked</td><td class=\"n\">5</td></tr>"
            )),
            "{page}"
        );
        assert!(page.contains("<th>jurisdiction</th><th>reason</th><th>count</th>"));
        // The counters without a section are on the page too.
        assert!(
            page.contains(
                "<tr><td>consentgate_upstream_errors_total</td><td>shop</td><td>kind=connect</td>\
<td class=\"n\">1</td></tr>"
            ),
            "{page}"
        );
    }

    #[test]
    fn consent_mode_mismatches_have_a_section() {
        let rows = vec![row(
            "a",
            "consentgate_consent_mode_mismatch_total",
            "tag=G-TEST42,action=blocked",
            3,
        )];
        let req = ReportRequest {
            since: "2026-11-28T00:00:00.000Z",
            until: "2026-11-29T00:00:00.000Z",
            site: None,
        };
        let v = from_rows(&rows, &[], &req);
        assert_eq!(
            v["sites"]["shop"]["consent_mode_mismatches"],
            json!({ "total": 3, "rows": [{ "tag": "G-TEST42", "action": "blocked", "count": 3 }] })
        );
        assert_eq!(v["other_metrics"], json!([]));
        assert!(html(&v).contains("<td>G-TEST42</td><td>blocked</td><td class=\"n\">3</td>"));
    }
}
