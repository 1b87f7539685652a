//! The live dashboard, the cookie inventory and the Grafana dashboard (issue 12), against the
//! real binary with real traffic from a loopback origin:
//! - every metric `conf/grafana/consentgate.json` queries exists in `/metrics`;
//! - `/inventory` lists every cookie name seen, classified, with kept/stripped counts;
//! - `/` is self-contained under a strict CSP and behind the admin access rules;
//! - in headless Chromium the page refreshes itself (a request sent while it is open shows up
//!   without a reload) and shows the same numbers as `/metrics` read right after (no traffic in
//!   between): every counter, receipts written and dropped (a real SQLite store, held locked
//!   while receipts arrive so some are dropped), and the top rules and hosts tables (each
//!   rule's count, summed per list it comes from, is that list's count in `/metrics`); a
//!   screenshot is kept as `target/test-artifacts/dashboard.png`.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const SC_SESSION: &str = "SESSIONID=abc123; Path=/; HttpOnly";
const SC_GA: &str = "_ga=GA1.2.111.222; Path=/; Max-Age=63072000";
const SC_FBP: &str = "_fbp=fb.1.123.456; Path=/";
const SC_MYSTERY: &str = "mystery=42; Path=/";
/// A page with a Google tag: neutralized without analytics consent.
const PAGE: &str = "<!doctype html><html><head><script async src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script></head><body>shop</body></html>";

/// The origin: `/page` is HTML with a tracker tag, everything else sets four cookies.
fn origin() -> Origin {
    Origin::start(|req| {
        if req.path == "/page" {
            return response(
                "200 OK",
                &[("Content-Type", "text/html; charset=utf-8")],
                PAGE.as_bytes(),
            );
        }
        response(
            "200 OK",
            &[
                ("Content-Type", "text/plain"),
                ("Set-Cookie", SC_SESSION),
                ("Set-Cookie", SC_GA),
                ("Set-Cookie", SC_FBP),
                ("Set-Cookie", SC_MYSTERY),
            ],
            b"ok",
        )
    })
}

/// Three sites: `shop` (enforce, every host), `audit.test` (report-only) and `down.test`,
/// whose only origin refuses connections (its health check keeps it marked down, so the
/// health shown does not flip while the test compares). `tables`: more top-level tables
/// (`[receipts]`).
fn start(o: &Origin, tables: &str) -> Proxy {
    let down = free_port();
    let lists = shipped_lists_dir();
    let sites = format!(
        r#"{shop}
[[site]]
name = "audit"
hosts = ["audit.test"]
upstreams = ["{origin}"]
mode = "report-only"
[[site.blocklist]]
category = "analytics"
path = "{lists}/analytics.txt"

[[site]]
name = "down"
hosts = ["down.test"]
upstreams = ["127.0.0.1:{down}"]
[site.health_check]
path = "/healthz"
interval_ms = 200
timeout_ms = 200
healthy_threshold = 1
unhealthy_threshold = 1

{tables}
"#,
        shop = shop_site(o.addr, ""),
        origin = o.addr,
    );
    Proxy::start(&sites)
}

/// Known traffic touching every family the dashboards read. Returns when the proxy has
/// counted all of it.
fn traffic(p: &Proxy) {
    // A reload first: it resets the unknown-cookie labels, so it must not come after them.
    assert_eq!(p.reload().0, 200);
    let all = "consent=preferences,analytics,marketing";
    let shop: &[&[(&str, &str)]] = &[
        &[],
        &[(
            "Cookie",
            "consent=analytics; _ga=GA1.1.1.1; _fbp=fb.1; mystery=1; SESSIONID=s",
        )],
        &[("Cookie", all)],
        &[("Cookie", "consent=analytics:maybe; _ga=GA1.1.1.1")],
        &[("Sec-GPC", "1")],
    ];
    for h in shop {
        assert_eq!(p.get("/", h).status, 200);
    }
    assert_eq!(p.get("/page", &[]).status, 200);
    for _ in 0..3 {
        let r = p.get("/g/collect?v=2", &[("Host", "www.google-analytics.com")]);
        assert_eq!(r.status, 204, "a blocked beacon");
    }
    let r = p.get("/pagead/id", &[("Host", "googleads.g.doubleclick.net")]);
    assert!(r.status < 300, "blocked: {}", r.status);
    // Report-only: counted as would-block, then served by the origin.
    let r = p.get(
        "/g/collect?v=2&tid=G-1",
        &[("Host", "audit.test"), ("Sec-Fetch-Dest", "empty")],
    );
    assert_eq!(r.status, 200);
    assert!(p.get("/", &[("Host", "down.test")]).status >= 500);
    // Every request is counted in the logging phase, after its response: wait for all 12.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = p.metrics();
        if sum(&samples(&text), "consentgate_requests_total", &[]) == 12.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not 12 requests counted:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// One sample of the Prometheus text format: name, labels, value. Written from the exposition
/// format's description (prometheus.io/docs/instrumenting/exposition_formats), not from the
/// registry's code.
type Sample = (String, BTreeMap<String, String>, f64);

fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value.parse().expect("a number");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'));
                    let mut v = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => v.push(chars.next().unwrap()),
                            '"' => break,
                            c => v.push(c),
                        }
                    }
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                    labels.insert(key.trim().to_string(), v);
                }
                (name.to_string(), labels)
            }
        };
        out.push((name, labels, value));
    }
    out
}

/// Sum of a family's samples whose labels include `want`.
fn sum(s: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    s.iter()
        .filter(|(n, l, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

// --- Grafana ---

/// The metric names a PromQL expression reads: identifiers outside label matchers, ranges and
/// strings that are not functions, aggregation modifiers or keywords. `label_values(m, l)`
/// (Grafana's template query) reads `m` only.
fn promql_metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
    ];
    let expr = expr.trim();
    if let Some(args) = expr
        .strip_prefix("label_values(")
        .and_then(|a| a.strip_suffix(')'))
    {
        return promql_metric_names(args.split(',').next().unwrap());
    }
    // Blank out {...}, [...] and "..." (label matchers, ranges with Grafana variables, strings).
    let mut plain = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' if depth_brace > 0 => in_string = !in_string,
            '{' if !in_string => depth_brace += 1,
            '}' if !in_string => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 || in_string => {}
            c => {
                plain.push(c);
                continue;
            }
        }
        plain.push(' ');
    }
    let bytes: Vec<char> = plain.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut skip_group = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || "_:".contains(bytes[i])) {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            let rest: String = bytes[i..].iter().collect();
            let rest = rest.trim_start();
            // `sum by (x) (...)`: an aggregation whose modifier comes first.
            let modifier = ["by", "without"].iter().any(|m| {
                rest.strip_prefix(m)
                    .is_some_and(|r| r.trim_start().starts_with('('))
            });
            let next = rest.chars().next();
            if KEYWORDS.contains(&word.as_str()) {
                // `by (a, b)`: the list names labels, not metrics.
                skip_group = next == Some('(');
            } else if !modifier && next != Some('(') {
                names.push(word);
            }
        } else if c == '(' && skip_group {
            while i < bytes.len() && bytes[i] != ')' {
                i += 1;
            }
            skip_group = false;
            i += 1;
        } else {
            i += 1;
        }
    }
    names
}

/// Every PromQL expression of a Grafana dashboard: panel targets (rows' panels too) and
/// template-variable queries.
fn grafana_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    ("templating", t) => {
                        for var in t["list"].as_array().into_iter().flatten() {
                            if var["type"] == "query" {
                                let q = &var["query"];
                                let q = q["query"].as_str().or(q.as_str()).unwrap();
                                out.push(q.to_string());
                            }
                        }
                    }
                    _ => grafana_exprs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| grafana_exprs(x, out)),
        _ => {}
    }
}

#[test]
fn promql_names_are_extracted() {
    // Expressions as the Prometheus documentation's query examples write them.
    assert_eq!(
        promql_metric_names(
            r#"sum by (job) (rate(http_requests_total{job=~"api|web", code!="200"}[5m]))"#
        ),
        vec!["http_requests_total"]
    );
    assert_eq!(
        promql_metric_names("rate(a_total[$__rate_interval]) / ignoring(code) b_total"),
        vec!["a_total", "b_total"]
    );
    assert_eq!(
        promql_metric_names("topk(10, sum without (instance) (x))"),
        vec!["x"]
    );
    assert_eq!(
        promql_metric_names("label_values(consentgate_requests_total, site)"),
        vec!["consentgate_requests_total"]
    );
}

#[test]
fn grafana_dashboard_queries_only_metrics_that_exist() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/grafana/consentgate.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    grafana_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 15, "{exprs:?}");
    let o = origin();
    let p = start(&o, "");
    traffic(&p);
    let text = p.metrics();
    let present: std::collections::BTreeSet<String> =
        samples(&text).into_iter().map(|(n, _, _)| n).collect();
    let mut queried = std::collections::BTreeSet::new();
    for e in &exprs {
        let names = promql_metric_names(e);
        assert!(!names.is_empty(), "no metric in `{e}`");
        queried.extend(names);
    }
    let missing: Vec<_> = queried.iter().filter(|n| !present.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "queried by conf/grafana/consentgate.json but not in /metrics: {missing:?}\n{text}"
    );
    assert!(queried.len() >= 12, "{queried:?}");
    assert!(queried.iter().all(|n| n.starts_with("consentgate_")));
}

// --- inventory ---

#[test]
fn inventory_lists_every_cookie_seen_with_its_classification() {
    let o = origin();
    let p = start(&o, "");
    traffic(&p);
    let r = admin_get(p.admin, "/inventory");
    assert_eq!(r.status, 200);
    assert_eq!(r.header_strings("content-type"), vec!["application/json"]);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let find = |site: &str, name: &str| -> Value {
        v["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["site"] == site && e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{site}/{name} not in {v:#}"))
    };
    let counts = |e: &Value| (e["kept"].as_u64().unwrap(), e["stripped"].as_u64().unwrap());
    // Five responses of `/` on shop set _ga; it reached the browser with analytics consent
    // (requests 2 and 3), and came in as a request cookie twice: kept with consent (2), withheld
    // when the consent cookie was unreadable (4).
    let ga = find("shop", "_ga");
    assert_eq!(ga["category"], "analytics");
    assert_eq!(ga["origin"], "rule", "shop_site lists _ga");
    assert_eq!(counts(&ga), (3, 4), "{ga}");
    let fbp = find("shop", "_fbp");
    assert_eq!(
        (fbp["category"].as_str(), counts(&fbp)),
        (Some("marketing"), (1, 5))
    );
    let session = find("shop", "SESSIONID");
    assert_eq!(session["category"], "necessary");
    assert_eq!(counts(&session), (6, 0));
    let consent = find("shop", "consent");
    assert_eq!(consent["origin"], "consent-cookie");
    assert_eq!(counts(&consent), (3, 0));
    // Unknown, and the site strips unknown cookies: in every response and in request 2.
    let mystery = find("shop", "mystery");
    assert_eq!(mystery["category"], "unknown");
    assert_eq!(mystery["origin"], Value::Null);
    assert_eq!(counts(&mystery), (0, 6));
    // Report-only: nothing is withheld, so every sighting counts as kept.
    let audit = find("audit", "_ga");
    assert_eq!(counts(&audit), (1, 0));
    for e in v["cookies"].as_array().unwrap() {
        let (first, last) = (
            e["first_seen"].as_str().unwrap(),
            e["last_seen"].as_str().unwrap(),
        );
        assert!(first.ends_with('Z') && first <= last, "{e}");
    }
    assert_eq!(v["cookies"].as_array().unwrap().len(), 9, "{v:#}");
}

#[test]
fn one_request_cannot_fill_the_inventory() {
    let o = origin();
    let p = start(&o, "");
    let junk: Vec<String> = (0..300).map(|i| format!("junk{i}=1")).collect();
    p.get("/page", &[("Cookie", &junk.join("; "))]);
    p.get("/page", &[("Cookie", "real_one=1")]);
    eventually("both requests counted", || {
        sum(&samples(&p.metrics()), "consentgate_requests_total", &[]) == 2.0
    });
    let v: Value = serde_json::from_slice(&admin_get(p.admin, "/inventory").body).unwrap();
    let names: Vec<&str> = v["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let per_request = v["limits"]["new_names_per_request"].as_u64().unwrap() as usize;
    assert_eq!(
        names.iter().filter(|n| n.starts_with("junk")).count(),
        per_request
    );
    assert!(names.contains(&"real_one"), "{names:?}");
    // The rest were counted, in the JSON and as a metric. (The proxy reads at most
    // max_request_cookies of them.)
    let refused = v["refused"][0]["count"].as_u64().unwrap();
    assert!(refused > 0);
    assert_eq!(
        p.metric("consentgate_inventory_refused_total", &[("site", "shop")]),
        refused as f64
    );
}

// --- the page ---

#[test]
fn dashboard_is_self_contained_under_a_strict_csp_and_behind_the_admin_rules() {
    let o = origin();
    let p = start(&o, "");
    let r = admin_get(p.admin, "/");
    assert_eq!(r.status, 200);
    let csp = r.header_strings("content-security-policy").join(",");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("http"),
        "{csp}"
    );
    let html = String::from_utf8(r.body).unwrap();
    assert!(html.contains(r#"<script src="/dashboard.js""#));
    assert!(html.contains(r#"href="/dashboard.css""#));
    for (path, ty) in [
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
        ("/dashboard.json", "application/json"),
    ] {
        let r = admin_get(p.admin, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header_strings("content-type")[0].starts_with(ty),
            "{path}"
        );
        let body = String::from_utf8(r.body).unwrap();
        // Nothing is loaded from anywhere else (the SVG namespace is a name, not a fetch).
        let body = body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path}"
        );
    }
    // No inline script or style in the page (the CSP would block them).
    assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains("style="));
    // The admin rules apply to the new routes as to /metrics: a rebinding Host is refused, a
    // request started by another site too.
    for path in ["/", "/dashboard.json", "/inventory"] {
        let r = get(p.admin, path, &[("Host", "evil.example")]);
        assert_eq!(r.status, 421, "{path}");
        let host = p.admin.to_string();
        let r = get(
            p.admin,
            path,
            &[("Host", &host), ("Sec-Fetch-Site", "cross-site")],
        );
        assert_eq!(r.status, 403, "{path}");
        let r = send(
            p.admin,
            "POST",
            path,
            &[("Host", &host), ("Content-Length", "0")],
        );
        assert_eq!(r.status, 405, "{path}");
    }
}

/// What each `data-k` value of the page must be, computed from `/metrics` text.
fn expected_from_metrics(s: &[Sample], key: &str) -> Option<f64> {
    let parts: Vec<&str> = key.split('.').collect();
    let v = match parts.as_slice() {
        ["requests", "total"] => sum(s, "consentgate_requests_total", &[]),
        ["requests", "gpc"] => sum(s, "consentgate_gpc_requests_total", &[]),
        ["requests", "consent", c] => sum(s, "consentgate_requests_total", &[("consent", c)]),
        ["blocked", "blocked"] | ["blocked", "hour"] => {
            // Every blocked request of this test happened within the last hour.
            sum(
                s,
                "consentgate_blocked_requests_total",
                &[("action", "blocked")],
            )
        }
        ["blocked", "would_block"] => sum(
            s,
            "consentgate_blocked_requests_total",
            &[("action", "would_block")],
        ),
        ["blocked", "list", rest @ ..] => {
            // The list name may itself contain dots.
            let (action, list) = rest.split_last()?;
            let list = list.join(".");
            sum(
                s,
                "consentgate_blocked_requests_total",
                &[("list", &list), ("action", action)],
            )
        }
        ["cookies", cat, field] => {
            let (name, action) = match *field {
                "set_cookie_kept" => ("consentgate_set_cookie_total", Some("kept")),
                "set_cookie_stripped" => ("consentgate_set_cookie_total", Some("stripped")),
                "set_cookie_would_strip" => ("consentgate_set_cookie_total", Some("would_strip")),
                "request_stripped" => (
                    "consentgate_request_cookies_stripped_total",
                    Some("stripped"),
                ),
                "request_would_strip" => (
                    "consentgate_request_cookies_stripped_total",
                    Some("would_strip"),
                ),
                "expired" => ("consentgate_cookies_expired_total", None),
                _ => return None,
            };
            let mut want = vec![("category", *cat)];
            want.extend(action.map(|a| ("action", a)));
            sum(s, name, &want)
        }
        ["unknown", "total"] => sum(s, "consentgate_unknown_cookies_total", &[]),
        ["receipts", "written"] => sum(s, "consentgate_receipts_written_total", &[]),
        ["receipts", "dropped"] => sum(s, "consentgate_receipts_dropped_total", &[]),
        ["errors", e] => {
            let name = match *e {
                "consent" => "consentgate_consent_errors_total",
                "filter" => "consentgate_filter_errors_total",
                "upstream" => "consentgate_upstream_errors_total",
                "upstream_timeouts" => "consentgate_upstream_timeouts_total",
                "rewrite" => "consentgate_rewrite_failures_total",
                _ => return None,
            };
            sum(s, name, &[])
        }
        ["upstream", site, upstream @ ..] => sum(
            s,
            "consentgate_upstream_healthy",
            &[("site", site), ("upstream", &upstream.join("."))],
        ),
        _ => return None,
    };
    Some(v)
}

/// Receipts written and dropped, from `/metrics`.
fn receipt_counts(p: &Proxy) -> (f64, f64) {
    let s = samples(&p.metrics());
    (
        sum(&s, "consentgate_receipts_written_total", &[]),
        sum(&s, "consentgate_receipts_dropped_total", &[]),
    )
}

/// Waits until the receipt writer is idle: the written and dropped counts stay the same for
/// half a second (it writes every 20 ms here).
fn receipts_settled(p: &Proxy) -> (f64, f64) {
    let mut last = receipt_counts(p);
    let mut same = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while same < 25 {
        assert!(
            std::time::Instant::now() < deadline,
            "receipts never settled"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = receipt_counts(p);
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

/// Eight visitors with consent values not seen before (eight receipts) while the receipt
/// store is locked by another connection: the writer waits on its first one, the queue
/// (capacity 1) holds one more, the rest are dropped and counted. Once the lock is released
/// the writer writes what it held. Returns when all eight are accounted for.
fn receipts_written_and_dropped(p: &Proxy, db: &Path) {
    eventually("the receipts store created", || db.is_file());
    let (written, dropped) = receipts_settled(p);
    assert!(written >= 1.0, "traffic() wrote no receipt");
    let lock = rusqlite::Connection::open(db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    for value in [
        "marketing",
        "preferences",
        "marketing,preferences",
        "preferences,marketing",
        "analytics,preferences",
        "analytics,marketing",
        "marketing,analytics",
        "preferences,analytics",
    ] {
        let cookie = format!("consent={value}");
        assert_eq!(p.get("/", &[("Cookie", &cookie)]).status, 200);
    }
    lock.execute_batch("COMMIT").unwrap();
    eventually("all eight receipts written or dropped", || {
        let (w, d) = receipt_counts(p);
        w + d == written + dropped + 8.0
    });
    let (w, d) = receipts_settled(p);
    assert!(w > written, "none written after the lock: {w}");
    assert!(d >= dropped + 6.0, "at most two held while locked: {d}");
}

/// The shipped list (file path as configured) holding this rule line, exactly once.
fn list_of_rule(rule: &str) -> String {
    let dir = shipped_lists_dir();
    let found: Vec<String> = ["analytics.txt", "marketing.txt"]
        .iter()
        .map(|f| format!("{dir}/{f}"))
        .filter(|path| {
            std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .any(|l| l.trim() == rule)
        })
        .collect();
    assert_eq!(found.len(), 1, "rule `{rule}` in {found:?}");
    found[0].clone()
}

/// The top rules and hosts tables as (text, count).
fn top_table(v: &Value, id: &str) -> Vec<(String, f64)> {
    v["tables"][id]
        .as_array()
        .unwrap_or_else(|| panic!("no {id} table: {v}"))
        .iter()
        .map(|row| {
            let cells = row.as_array().unwrap();
            assert_eq!(cells.len(), 2, "{id}: {row}");
            let n = cells[1].as_str().unwrap().parse().unwrap();
            (cells[0].as_str().unwrap().to_string(), n)
        })
        .collect()
}

#[test]
fn dashboard_in_chromium_shows_the_numbers_of_metrics() {
    if !browser_ready() {
        return;
    }
    let o = origin();
    let dir = TempDir::new("dashboard-receipts");
    let db = dir.0.join("receipts.db");
    let p = start(
        &o,
        &format!(
            "[receipts]\npath = \"{}\"\nqueue_capacity = 1\nbatch_size = 1\nbatch_interval_ms = 20\n",
            db.display()
        ),
    );
    traffic(&p);
    receipts_written_and_dropped(&p, &db);
    eventually("down.test's origin marked down by its health check", || {
        sum(
            &samples(&p.metrics()),
            "consentgate_upstream_healthy",
            &[("site", "down")],
        ) == 0.0
    });
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let v = run_browser_driver(
        "dashboard.mjs",
        &[
            std::ffi::OsString::from(format!("http://{}/", p.admin)),
            shot.clone().into_os_string(),
            p.addr.port().to_string().into(),
        ],
    );
    // Right after the page rendered: nothing went through the proxy in between.
    let metrics = samples(&p.metrics());
    assert_eq!(
        v["violations"],
        serde_json::json!([]),
        "CSP violations: {v}"
    );
    assert_eq!(v["consoleErrors"], serde_json::json!([]), "console: {v}");
    assert_eq!(v["failed"], serde_json::json!([]), "failed loads: {v}");
    assert_eq!(v["error"], Value::Null, "{v}");
    assert_eq!(v["bars"], 60, "one bar per minute of the last hour");
    // The page refreshed itself: the driver's one request through the proxy showed up.
    let total =
        |values: &Value| -> f64 { values["requests.total"].as_str().unwrap().parse().unwrap() };
    assert_eq!(total(&v["first"]) + 1.0, total(&v["values"]), "{v}");
    let shown = v["values"].as_object().unwrap();
    let mut compared = 0;
    for (key, text) in shown {
        let Some(want) = expected_from_metrics(&metrics, key) else {
            panic!("the page shows `{key}`, which this test does not know how to check");
        };
        let got: f64 = text
            .as_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{key} shows {text}"));
        assert_eq!(got, want, "{key}: page {got}, /metrics {want}");
        compared += 1;
    }
    // The comparison covered every panel, with traffic in each.
    for (key, at_least) in [
        ("requests.total", 13.0),
        ("requests.consent.none", 1.0),
        ("requests.consent.partial", 1.0),
        ("requests.consent.all", 1.0),
        ("requests.consent.invalid", 1.0),
        ("requests.gpc", 1.0),
        ("blocked.blocked", 4.0),
        ("blocked.hour", 4.0),
        ("blocked.would_block", 1.0),
        ("cookies.analytics.set_cookie_stripped", 1.0),
        ("cookies.marketing.expired", 1.0),
        ("cookies.unknown.request_stripped", 1.0),
        ("unknown.total", 1.0),
        ("errors.consent", 1.0),
        ("errors.upstream", 1.0),
        ("receipts.written", 2.0),
        ("receipts.dropped", 1.0),
    ] {
        let shown: f64 = shown
            .get(key)
            .unwrap_or_else(|| panic!("{key} not on the page: {v}"))
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(shown >= at_least, "{key} = {shown}");
    }
    assert!(shown.keys().any(|k| k.starts_with("blocked.list.")));
    // Top blocked hosts: the hosts traffic() sent tracker requests to, each as often (every
    // match, blocked or would-block, in this process), adding up to the /metrics total.
    let matched = sum(&metrics, "consentgate_blocked_requests_total", &[]);
    let hosts = top_table(&v, "hosts");
    let mut by_host: Vec<(&str, f64)> = hosts.iter().map(|(h, n)| (h.as_str(), *n)).collect();
    by_host.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        by_host,
        [
            ("audit.test", 1.0),
            ("googleads.g.doubleclick.net", 1.0),
            ("www.google-analytics.com", 3.0)
        ],
        "{v}"
    );
    assert_eq!(hosts.iter().map(|h| h.1).sum::<f64>(), matched);
    // Top rules: each a line of a shipped list; per list they add up to that list's count
    // in /metrics.
    let rules = top_table(&v, "rules");
    assert!(!rules.is_empty(), "{v}");
    let mut per_list: BTreeMap<String, f64> = BTreeMap::new();
    for (rule, n) in &rules {
        *per_list.entry(list_of_rule(rule)).or_default() += n;
    }
    for (list, n) in &per_list {
        let want = sum(
            &metrics,
            "consentgate_blocked_requests_total",
            &[("list", list)],
        );
        assert_eq!(*n, want, "rules of {list}: page {n}, /metrics {want}");
    }
    assert_eq!(per_list.values().sum::<f64>(), matched, "{v}");
    assert!(shown.keys().any(|k| k.starts_with("upstream.down.")));
    assert!(compared >= 50, "{compared} values compared");
    assert!(shot.is_file(), "screenshot at {}", shot.display());
}
