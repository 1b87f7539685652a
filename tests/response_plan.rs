//! The response plan applied by the running proxy (issue 9), and printed by `explain`.

mod common;
use common::*;

const PAGE: &str = r#"<!doctype html><html><head>
<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}gtag('config','G-1');</script>
</head><body><h1>Shop</h1></body></html>"#;

#[test]
fn csp_and_html_rewrite_add_one_vary_and_set_cookie_lines_stay_the_origins() {
    let o = Origin::start(|_| {
        response(
            "200 OK",
            &[
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "public, max-age=60, s-maxage=600"),
                ("ETag", "\"v1\""),
                // Two attributes spaced unusually: a kept line must reach the browser as
                // the origin wrote it.
                ("Set-Cookie", "SESSIONID=s1;  Path=/;HttpOnly"),
                ("Set-Cookie", "_ga=GA1.1.1.1; Path=/; Max-Age=63072000"),
            ],
            PAGE.as_bytes(),
        )
    });
    let p = Proxy::start(&format!(
        r#"[[site]]
name = "shop"
hosts = ["*"]
upstreams = ["{}"]
[site.cookies]
necessary = ["SESSIONID"]
analytics = ["_ga"]
[site.csp]
base = "default-src 'self'"
analytics = ["https://www.googletagmanager.com"]
"#,
        o.addr
    ));
    let r = p.get("/", &[]);
    assert_eq!(r.status, 200);
    // Both the CSP and the rewrite depend on consent; `Vary: Cookie` is said once.
    assert_eq!(r.header_strings("vary"), vec!["Cookie"]);
    let csp = r.header_strings("content-security-policy");
    assert_eq!(csp.len(), 1);
    assert!(!csp[0].contains("googletagmanager"), "{csp:?}");
    assert_eq!(
        r.header_strings("cache-control"),
        vec!["private, max-age=60"]
    );
    assert!(r.header_all("etag").is_empty());
    assert!(r.header_all("content-length").is_empty());
    assert_eq!(
        r.raw_set_cookie_lines(),
        vec!["Set-Cookie: SESSIONID=s1;  Path=/;HttpOnly"]
    );
    let body = String::from_utf8(r.body.clone()).unwrap();
    // The Google tag snippet is neutralized (the default snippets, no blocklist needed).
    assert!(
        body.contains(r#"<script type="text/plain" data-consent-category="analytics">"#),
        "{body}"
    );
    p.expect_metric(
        "consentgate_set_cookie_total",
        &[
            ("site", "shop"),
            ("category", "analytics"),
            ("action", "stripped"),
        ],
        1.0,
    );
}

#[test]
fn explain_prints_the_response_plan_when_given_a_response() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/consentgate.toml");
    let (code, out, err) = run_cli(&[
        "explain",
        "--config",
        path,
        "--cookie",
        "consent=analytics; _fbp=fb.1",
        "--set-cookie",
        "_fbp=fb.2; Path=/",
        "--set-cookie",
        "SESSIONID=x; HttpOnly",
        "--content-type",
        "text/html; charset=ISO-8859-1",
        "--content-encoding",
        "gzip",
        "--cache-control",
        "public, max-age=60",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let resp = &v["response"];
    assert_eq!(resp["status"], 200);
    assert_eq!(
        resp["set_cookie"],
        serde_json::json!([
            {"name": "_fbp", "category": "marketing", "action": "stripped"},
            {"name": "SESSIONID", "category": "necessary", "action": "kept"},
        ])
    );
    let expiry = resp["expiry_lines"].as_array().unwrap();
    assert_eq!(expiry.len(), 1);
    assert!(
        expiry[0].as_str().unwrap().starts_with("_fbp=;"),
        "{expiry:?}"
    );
    // The existing key says the same.
    assert_eq!(v["expire_set_cookie"], resp["expiry_lines"]);
    assert_eq!(resp["csp"], serde_json::Value::Null);
    assert_eq!(resp["vary_cookie"], true);
    assert_eq!(
        resp["html_rewrite"],
        serde_json::json!({"rewrite": true, "charset": "windows-1252", "encoding": "gzip"})
    );
    assert_eq!(resp["cache_control"], "private, max-age=60");
    assert_eq!(
        resp["removed_headers"],
        serde_json::json!(["content-length", "etag"])
    );

    // A 304 is not rewritten; without any response option there is no "response" key.
    let (_, out, _) = run_cli(&["explain", "--config", path, "--status", "304"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["response"]["html_rewrite"],
        serde_json::json!({"rewrite": false, "reason": "no_body"})
    );
    let (_, out, _) = run_cli(&["explain", "--config", path, "--cookie", "a=1"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.get("response").is_none(), "{v}");
}
