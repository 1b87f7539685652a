//! Tracker endpoints served through the proxy are answered locally until consent (issue 4,
//! part 1), with the shipped lists and with an excerpt of EasyPrivacy (tests/fixtures/lists/).

mod common;
use common::*;

fn origin() -> Origin {
    Origin::echo()
}

/// GET `path` with `Host: host` and the given header lines.
fn request(p: &Proxy, host: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut all = vec![("Host", host)];
    all.extend_from_slice(headers);
    get(p.addr, path, &all)
}

fn header(r: &RawResponse, name: &str) -> String {
    String::from_utf8(r.header_all(name).first().cloned().unwrap_or_default()).unwrap()
}

#[test]
fn first_party_tag_endpoints_are_answered_locally_until_consent() {
    let o = origin();
    let p = Proxy::start(&shop_site(o.addr, ""));
    // Server-side GTM script: an empty script, the origin never contacted.
    let r = request(
        &p,
        "shop.test",
        "/gtm.js?id=GTM-ABC",
        &[("Sec-Fetch-Dest", "script")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "content-type"), "text/javascript");
    assert!(r.body.is_empty());
    // A GA4 beacon: 204.
    let r = request(
        &p,
        "shop.test",
        "/g/collect?v=2&tid=G-1&en=page_view",
        &[("Sec-Fetch-Dest", "empty")],
    );
    assert_eq!(r.status, 204);
    // A Meta pixel image: a 1x1 GIF.
    let r = request(
        &p,
        "shop.test",
        "/tr?id=123&ev=PageView",
        &[("Sec-Fetch-Dest", "image"), ("Cookie", "consent=analytics")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "content-type"), "image/gif");
    assert!(r.body.starts_with(b"GIF89a"));
    assert!(o.received().is_empty(), "the origin saw a blocked request");
    // With consent the same requests reach the origin.
    let r = request(
        &p,
        "shop.test",
        "/gtm.js?id=GTM-ABC",
        &[
            ("Sec-Fetch-Dest", "script"),
            ("Cookie", "consent=analytics"),
        ],
    );
    assert_eq!(r.body, b"origin saw /gtm.js?id=GTM-ABC");
    // Ordinary first-party requests are untouched.
    let r = request(&p, "shop.test", "/app.js", &[("Sec-Fetch-Dest", "script")]);
    assert_eq!(r.body, b"origin saw /app.js");
    p.expect_metric(
        "consentgate_blocked_requests_total",
        &[
            ("site", "shop"),
            ("category", "analytics"),
            ("list", &format!("{}/analytics.txt", shipped_lists_dir())),
            ("action", "blocked"),
        ],
        2.0,
    );
    p.expect_metric(
        "consentgate_blocked_requests_total",
        &[
            ("site", "shop"),
            ("category", "marketing"),
            ("action", "blocked"),
        ],
        1.0,
    );
}

#[test]
fn documents_get_403_with_an_explanation_and_responses_are_configurable() {
    let o = origin();
    let p = Proxy::start(&shop_site(o.addr, "[site.block_responses]\nscript = 404\n"));
    let r = request(
        &p,
        "shop.test",
        "/matomo.js",
        &[("Sec-Fetch-Dest", "script")],
    );
    assert_eq!(r.status, 404);
    // An analytics host served by this proxy, opened as a page.
    let r = request(
        &p,
        "analytics.google.com",
        "/",
        &[("Accept", "text/html"), ("Sec-Fetch-Dest", "document")],
    );
    assert_eq!(r.status, 403);
    let body = String::from_utf8(r.body).unwrap();
    assert!(
        body.contains("analytics") && body.contains("consent"),
        "{body}"
    );
    assert!(o.received().is_empty());
}

#[test]
fn cname_cloaked_analytics_hosts_are_blocked() {
    let o = origin();
    let dir = TempDir::new("lists");
    let list = dir.0.join("cloaked.txt");
    std::fs::write(&list, "||metrics.shop.test^\n").unwrap();
    let p = Proxy::start(&format!(
        "[[site]]\nname = \"cloak\"\nhosts = [\"*\"]\nupstreams = [\"{}\"]\n[[site.blocklist]]\ncategory = \"analytics\"\npath = \"{}\"\n",
        o.addr,
        list.display()
    ));
    let r = request(
        &p,
        "metrics.shop.test",
        "/anything?x=1",
        &[("Sec-Fetch-Dest", "empty")],
    );
    assert_eq!(r.status, 204);
    let r = request(
        &p,
        "www.shop.test",
        "/anything?x=1",
        &[("Sec-Fetch-Dest", "empty")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(o.received().len(), 1);
}

#[test]
fn easyprivacy_blocks_first_party_trackers() {
    // An excerpt of the real EasyPrivacy (tests/fixtures/lists/NOTICE), as an operator adds it.
    let path = fixture("lists/easyprivacy.txt");
    let o = origin();
    let p = Proxy::start(&analytics_list_site("ep", o.addr, &path));
    for tracker in [
        "/gtag/js?id=G-ABC",
        "/matomo.php?idsite=1&rec=1",
        "/fbevents.js",
    ] {
        let r = request(
            &p,
            "shop.test",
            tracker,
            &[("Referer", "http://shop.test/")],
        );
        assert_eq!(
            r.header_all("x-consentgate"),
            vec![b"blocked".to_vec()],
            "{tracker}"
        );
    }
    let r = request(&p, "shop.test", "/products/42", &[("Accept", "text/html")]);
    assert_eq!(r.body, b"origin saw /products/42");
    assert_eq!(o.received().len(), 1);
}

#[test]
fn beacons_match_ping_rules() {
    // EasyPrivacy's `/analytics4.php$ping` applies to beacons only. Browsers send a beacon with
    // `Sec-Fetch-Dest: empty`, like a fetch: `navigator.sendBeacon` as a `no-cors` POST,
    // `<a ping>` with `Ping-To` and `Content-Type: text/ping`.
    let path = fixture("lists/easyprivacy.txt");
    let o = origin();
    let p = Proxy::start(&analytics_list_site("ep", o.addr, &path));
    let referer = ("Referer", "http://shop.test/page");
    let no_cors = [
        ("Host", "shop.test"),
        ("Sec-Fetch-Dest", "empty"),
        ("Sec-Fetch-Mode", "no-cors"),
        referer,
    ];
    let with = |extra: &[(&'static str, &'static str)]| [&no_cors[..], extra].concat();
    let beacon = with(&[
        ("Content-Type", "text/plain;charset=UTF-8"),
        ("Content-Length", "2"),
    ]);
    let r = send_body(p.addr, "POST", "/analytics4.php", &beacon, b"{}");
    assert_eq!(r.header_all("x-consentgate"), vec![b"blocked".to_vec()]);
    assert_eq!(r.status, 204);
    let ping = with(&[
        ("Content-Type", "text/ping"),
        ("Ping-From", "http://shop.test/page"),
        ("Ping-To", "http://shop.test/out"),
        ("Content-Length", "4"),
    ]);
    let r = send_body(p.addr, "POST", "/analytics4.php", &ping, b"PING");
    assert_eq!(r.header_all("x-consentgate"), vec![b"blocked".to_vec()]);
    assert!(o.received().is_empty(), "the origin saw a beacon");
    // The same URL fetched (`cors`) is not a beacon: the `$ping` rule does not apply.
    let fetch = [
        ("Host", "shop.test"),
        ("Sec-Fetch-Dest", "empty"),
        ("Sec-Fetch-Mode", "cors"),
        referer,
    ];
    let r = get(p.addr, "/analytics4.php", &fetch);
    assert!(r.header_all("x-consentgate").is_empty(), "{r:?}");
    assert_eq!(o.received().len(), 1);
}

#[test]
fn report_only_counts_would_block_and_proxies() {
    let o = origin();
    let p = Proxy::start(&shop_site(o.addr, "mode = \"report-only\""));
    let r = request(
        &p,
        "shop.test",
        "/gtm.js?id=GTM-ABC",
        &[("Sec-Fetch-Dest", "script")],
    );
    assert_eq!(r.body, b"origin saw /gtm.js?id=GTM-ABC");
    p.expect_metric(
        "consentgate_blocked_requests_total",
        &[
            ("site", "shop"),
            ("category", "analytics"),
            ("action", "would_block"),
        ],
        1.0,
    );
}

#[test]
fn explain_reports_the_url_decision() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/consentgate.toml");
    let (code, out, err) = run_cli(&[
        "explain",
        "--config",
        path,
        "--url",
        "https://shop.example/fbevents.js",
        "--cookie",
        "consent=analytics",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let u = &v["url"];
    assert_eq!(u["blocked"], true);
    assert_eq!(u["category"], "marketing");
    assert_eq!(u["list"], "lists/marketing.txt");
    assert_eq!(u["rule"], "/fbevents.js$script");
    let (_, out, _) = run_cli(&[
        "explain",
        "--config",
        path,
        "--url",
        "https://shop.example/fbevents.js",
        "--cookie",
        "consent=analytics,marketing",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["url"]["blocked"], false);
}

#[test]
fn csp_is_built_from_the_consented_categories() {
    let o = origin();
    let p = Proxy::start(&format!(
        r#"[[site]]
name = "csp"
hosts = ["*"]
upstreams = ["{}"]
[site.csp]
base = "default-src 'self'"
analytics = ["https://www.googletagmanager.com"]
marketing = ["https://connect.facebook.net"]
"#,
        o.addr
    ));
    let csp_lines = |r: &RawResponse| -> Vec<String> {
        String::from_utf8_lossy(&r.head)
            .split("\r\n")
            .filter(|l| l.starts_with("Content-Security-Policy:"))
            .map(str::to_string)
            .collect()
    };
    let r = request(&p, "shop.test", "/", &[]);
    assert_eq!(
        csp_lines(&r),
        vec!["Content-Security-Policy: default-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; frame-src 'self'"]
    );
    assert_eq!(header(&r, "vary"), "Cookie");
    let r = request(&p, "shop.test", "/", &[("Cookie", "consent=analytics")]);
    let lines = csp_lines(&r);
    assert!(
        lines[0].contains("script-src 'self' https://www.googletagmanager.com;"),
        "{lines:?}"
    );
    assert!(!lines[0].contains("facebook"));
}
