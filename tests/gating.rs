//! End-to-end gating through the real binary, a real origin on loopback and raw sockets.
//! Each test names the requirement it proves (issue 2, "Gating" and "Tests").

mod common;
use common::*;
use std::io::{BufReader, Write};
use std::net::TcpStream;

/// The origin's cookies, byte-exact, with awkward but legal spacing and an `Expires` with a
/// comma (the reason folding `Set-Cookie` lines breaks them).
const SC_SESSION: &str = "SESSIONID=abc123;Path=/;  HttpOnly; SameSite=Lax";
const SC_LB: &str = "AWSALB=lbxyz; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/";
const SC_GA: &str = "_ga=GA1.2.111.222; Path=/; Max-Age=63072000";
const SC_FBP: &str = "_fbp=fb.1.123.456; Path=/; Domain=test.local";
const SC_THEME: &str = "theme=dark; Path=/";
const SC_MYSTERY: &str = "mystery=42; Path=/";

fn cookie_origin() -> Origin {
    Origin::start(|req| {
        if req.path.starts_with("/big") {
            let body = big_body();
            return response(
                "200 OK",
                &[("Content-Type", "application/octet-stream")],
                &body,
            );
        }
        if req.path.starts_with("/chunked") {
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: _ga=GA1.2.9.9; Path=/\r\n\r\n".to_vec();
            for i in 0..50 {
                let chunk = format!("chunk {i} {}\n", "x".repeat(i * 10));
                out.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
            }
            out.extend_from_slice(b"0\r\n\r\n");
            return out;
        }
        response(
            "200 OK",
            &[
                ("Content-Type", "text/plain"),
                ("Set-Cookie", SC_SESSION),
                ("Set-Cookie", SC_LB),
                ("Set-Cookie", SC_GA),
                ("Set-Cookie", SC_FBP),
                ("Set-Cookie", SC_THEME),
                ("Set-Cookie", SC_MYSTERY),
            ],
            b"hello\n",
        )
    })
}

fn big_body() -> Vec<u8> {
    // 12 MiB of non-repeating bytes.
    let mut x: u32 = 12345;
    (0..12 * 1024 * 1024)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

fn site(name: &str, origin: &Origin, extra: &str) -> String {
    format!(
        r#"
[[site]]
name = "{name}"
hosts = ["*"]
upstreams = ["{}"]
cookie_domains = ["test.local", ".test.local"]
{extra}

[site.consent]
cookie = "consent"

[site.cookies]
necessary = ["SESSIONID"]
preferences = ["theme"]
analytics = ["_ga", "_ga_*", "_gid"]
marketing = ["_fbp", "_gcl_*"]
"#,
        origin.addr
    )
}

fn start(extra: &str) -> (Origin, Proxy) {
    let origin = cookie_origin();
    let proxy = Proxy::start(&site("t", &origin, extra));
    (origin, proxy)
}

#[test]
fn set_cookie_lines_are_never_folded_and_kept_lines_are_byte_identical() {
    let (_o, p) = start("");
    let r = p.get(
        "/",
        &[("Cookie", "consent=preferences,analytics,marketing")],
    );
    assert_eq!(r.status, 200);
    // Five known cookies kept (the unknown one is stripped under the default policy), each on
    // its own `Set-Cookie:` line with the canonical name case, values exactly as the origin sent.
    let lines = r.raw_set_cookie_lines();
    assert_eq!(
        lines,
        vec![
            format!("Set-Cookie: {SC_SESSION}"),
            format!("Set-Cookie: {SC_LB}"),
            format!("Set-Cookie: {SC_GA}"),
            format!("Set-Cookie: {SC_FBP}"),
            format!("Set-Cookie: {SC_THEME}"),
        ]
    );
}

#[test]
fn without_consent_only_necessary_cookies_are_set() {
    let (_o, p) = start("");
    let r = p.get("/", &[]);
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_LB]);
    assert_eq!(r.body, b"hello\n");
    let m = |cat: &str, action: &str| {
        p.metric(
            "consentgate_set_cookie_total",
            &[("site", "t"), ("category", cat), ("action", action)],
        )
    };
    assert_eq!(m("necessary", "kept"), 2.0);
    assert_eq!(m("analytics", "stripped"), 1.0);
    assert_eq!(m("marketing", "stripped"), 1.0);
    assert_eq!(m("preferences", "stripped"), 1.0);
    assert_eq!(m("unknown", "stripped"), 1.0);
    p.expect_metric(
        "consentgate_requests_total",
        &[("site", "t"), ("consent", "none")],
        1.0,
    );
}

#[test]
fn analytics_consent_keeps_analytics_and_strips_marketing() {
    let (_o, p) = start("");
    let r = p.get("/", &[("Cookie", "consent=analytics")]);
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_LB, SC_GA]);
    let r = p.get("/", &[("Cookie", "consent=analytics%3A1%2Cmarketing%3A0")]);
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_LB, SC_GA]);
    p.expect_metric(
        "consentgate_requests_total",
        &[("site", "t"), ("consent", "partial")],
        2.0,
    );
}

#[test]
fn gpc_denies_marketing_and_is_passed_through_unchanged() {
    let (o, p) = start("");
    let r = p.get(
        "/",
        &[
            ("Cookie", "consent=preferences,analytics,marketing"),
            ("Sec-GPC", "1"),
        ],
    );
    assert_eq!(
        r.set_cookie_names(),
        vec!["SESSIONID", "AWSALB", "_ga", "theme"]
    );
    assert_eq!(o.last().header_strings("sec-gpc"), vec!["1"]);
    p.expect_metric("consentgate_gpc_requests_total", &[("site", "t")], 1.0);
    // Only the exact value 1 is a signal.
    let r = p.get(
        "/",
        &[
            ("Cookie", "consent=preferences,analytics,marketing"),
            ("Sec-GPC", "0"),
        ],
    );
    assert!(r.set_cookie_names().contains(&"_fbp".to_string()));
    assert_eq!(o.last().header_strings("sec-gpc"), vec!["0"]);
}

#[test]
fn gpc_deny_all_optional_and_ignore_policies() {
    let origin = cookie_origin();
    let sites = site("all", &origin, "gpc = \"deny-all-optional\"")
        .replace("hosts = [\"*\"]", "hosts = [\"all.test\"]")
        + &site("ign", &origin, "gpc = \"ignore\"");
    let p = Proxy::start(&sites);
    let everything = ("Cookie", "consent=preferences,analytics,marketing");
    let r = get_with_host(&p, "all.test", &[everything, ("Sec-GPC", "1")]);
    assert_eq!(r.set_cookie_names(), vec!["SESSIONID", "AWSALB"]);
    let r = get_with_host(&p, "other.test", &[everything, ("Sec-GPC", "1")]);
    assert_eq!(
        r.set_cookie_names(),
        vec!["SESSIONID", "AWSALB", "_ga", "_fbp", "theme"]
    );
}

fn get_with_host(p: &Proxy, host: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut all = vec![("Host", host)];
    all.extend_from_slice(headers);
    get(p.addr, "/", &all)
}

#[test]
fn malformed_consent_fails_closed_and_is_counted() {
    let (o, p) = start("");
    for bad in [
        "consent=analytics,<script>",
        "consent=analytics:maybe",
        "consent=%FF%FE",
    ] {
        let r = p.get(
            "/",
            &[("Cookie", &format!("{bad}; _ga=GA1.1.1.1; SESSIONID=s1"))],
        );
        let (expiries, kept): (Vec<String>, Vec<String>) = r
            .set_cookies()
            .into_iter()
            .partition(|l| l.contains("Max-Age=0"));
        assert_eq!(kept, vec![SC_SESSION, SC_LB], "{bad}");
        // No readable consent: the visitor's _ga is deleted too.
        assert!(expiries.iter().all(|l| l.starts_with("_ga=;")) && expiries.len() == 3);
        // The consent cookie itself and the session reach the origin; _ga does not.
        let sent = o.last().header_strings("cookie");
        assert_eq!(sent, vec![format!("{bad}; SESSIONID=s1")]);
    }
    p.expect_metric(
        "consentgate_consent_errors_total",
        &[("site", "t"), ("format", "first-party")],
        3.0,
    );
    p.expect_metric(
        "consentgate_requests_total",
        &[("site", "t"), ("consent", "invalid")],
        3.0,
    );
}

#[test]
fn unknown_cookie_policy_strip() {
    let (o, p) = start("unknown_cookies = \"strip\"");
    let r = p.get(
        "/",
        &[(
            "Cookie",
            "consent=preferences,analytics,marketing; mystery=1",
        )],
    );
    assert!(!r.set_cookie_names().contains(&"mystery".to_string()));
    assert_eq!(
        o.last().header_strings("cookie"),
        vec!["consent=preferences,analytics,marketing"]
    );
    // Unknown names are counted by name so operators can classify them.
    p.expect_metric(
        "consentgate_unknown_cookies_total",
        &[("site", "t"), ("name", "mystery")],
        2.0,
    );
    // Stripped, but not expired: consentgate does not know what an unknown cookie is for.
    assert!(r.set_cookies().iter().all(|l| !l.starts_with("mystery=;")));
}

#[test]
fn unknown_cookie_policy_keep() {
    let (o, p) = start("unknown_cookies = \"keep\"");
    let r = p.get("/", &[("Cookie", "mystery=1; _ga=x")]);
    assert!(r.set_cookies().contains(&SC_MYSTERY.to_string()));
    assert_eq!(o.last().header_strings("cookie"), vec!["mystery=1"]);
}

#[test]
fn report_only_changes_nothing_but_counts() {
    let (o, p) = start("mode = \"report-only\"");
    let sent = "SESSIONID=s1; _ga=GA1.1.1.1;_fbp=fb.1; mystery=1";
    let r = p.get("/", &[("Cookie", sent)]);
    assert_eq!(
        r.set_cookies(),
        vec![SC_SESSION, SC_LB, SC_GA, SC_FBP, SC_THEME, SC_MYSTERY]
    );
    assert_eq!(o.last().header_strings("cookie"), vec![sent]);
    p.expect_metric(
        "consentgate_set_cookie_total",
        &[
            ("site", "t"),
            ("category", "analytics"),
            ("action", "would_strip"),
        ],
        1.0,
    );
    p.expect_metric(
        "consentgate_set_cookie_total",
        &[
            ("site", "t"),
            ("category", "analytics"),
            ("action", "stripped"),
        ],
        0.0,
    );
    p.expect_metric(
        "consentgate_request_cookies_stripped_total",
        &[
            ("site", "t"),
            ("category", "marketing"),
            ("action", "would_strip"),
        ],
        1.0,
    );
    p.expect_metric(
        "consentgate_cookies_expired_total",
        &[("site", "t"), ("category", "analytics")],
        0.0,
    );
}

#[test]
fn mode_off_is_a_plain_proxy() {
    let (o, p) = start("mode = \"off\"");
    let sent = "_ga=GA1.1.1.1; _fbp=fb.1";
    let r = p.get("/", &[("Cookie", sent)]);
    assert_eq!(r.set_cookies().len(), 6);
    assert_eq!(o.last().header_strings("cookie"), vec![sent]);
    p.expect_metric(
        "consentgate_requests_total",
        &[("site", "t"), ("consent", "off")],
        1.0,
    );
}

#[test]
fn withdrawal_expires_cookies_of_categories_without_consent() {
    let (_o, p) = start("");
    // The visitor accepted analytics earlier and now has withdrawn it (consent= analytics:0).
    let r = p.get(
        "/",
        &[(
            "Cookie",
            "consent=analytics:0; _ga=GA1.1.1.1; _ga_ABC=GS1; SESSIONID=s1",
        )],
    );
    let lines = r.set_cookies();
    let tail = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT";
    for name in ["_ga", "_ga_ABC"] {
        for expected in [
            format!("{name}=; {tail}; Path=/"),
            format!("{name}=; {tail}; Path=/; Domain=test.local"),
            format!("{name}=; {tail}; Path=/; Domain=.test.local"),
        ] {
            assert!(
                lines.contains(&expected),
                "missing {expected:?} in {lines:?}"
            );
        }
    }
    assert!(!lines.iter().any(|l| l.starts_with("SESSIONID=;")));
    p.expect_metric(
        "consentgate_cookies_expired_total",
        &[("site", "t"), ("category", "analytics")],
        2.0,
    );
}

#[test]
fn request_cookies_of_non_consented_categories_never_reach_the_origin() {
    let (o, p) = start("");
    // Two Cookie lines, as HTTP/2 clients split them; odd spacing kept byte-for-byte.
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: test.local\r\nCookie: SESSIONID=\"a b\";_ga=GA1.1.1.1\r\nCookie: consent=analytics; _fbp=fb.1.2;AWSALB=lb1; _gcl_au=1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        o.last().header_strings("cookie"),
        vec!["SESSIONID=\"a b\"; _ga=GA1.1.1.1; consent=analytics; AWSALB=lb1"]
    );
    p.expect_metric(
        "consentgate_request_cookies_stripped_total",
        &[
            ("site", "t"),
            ("category", "marketing"),
            ("action", "stripped"),
        ],
        2.0,
    );
    // When nothing is stripped, the Cookie lines go to the origin exactly as sent.
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: test.local\r\nCookie: SESSIONID=x;  consent=analytics\r\nCookie: _ga=1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!(
        o.last().header_strings("cookie"),
        vec!["SESSIONID=x;  consent=analytics", "_ga=1"]
    );
}

#[test]
fn keep_alive_connections_serve_many_requests() {
    let (o, p) = start("");
    let s = TcpStream::connect(p.addr).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for i in 0..20 {
        let consent = if i % 2 == 0 { "analytics" } else { "" };
        write!(
            w,
            "GET /?i={i} HTTP/1.1\r\nHost: test.local\r\nCookie: consent={consent}\r\n\r\n"
        )
        .unwrap();
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"hello\n");
        assert_eq!(
            resp.set_cookie_names().contains(&"_ga".to_string()),
            i % 2 == 0
        );
    }
    assert_eq!(o.received().len(), 20);
}

#[test]
fn chunked_bodies_stream_through_unchanged() {
    let (_o, p) = start("");
    let r = p.get("/chunked", &[]);
    assert_eq!(r.status, 200);
    let expected: String = (0..50)
        .map(|i| format!("chunk {i} {}\n", "x".repeat(i * 10)))
        .collect();
    assert_eq!(String::from_utf8(r.body.clone()).unwrap(), expected);
    assert!(
        r.set_cookies().is_empty(),
        "_ga stripped from a chunked response too"
    );
}

#[test]
fn large_bodies_stream_through_unchanged() {
    let (_o, p) = start("");
    let r = p.get("/big", &[("Cookie", "consent=analytics")]);
    assert_eq!(r.status, 200);
    let expected = big_body();
    assert_eq!(r.body.len(), expected.len());
    assert!(r.body == expected, "12 MiB body differs");
}

#[test]
fn large_request_bodies_reach_the_origin_unchanged() {
    let (o, p) = start("");
    let body = big_body();
    let mut s = TcpStream::connect(p.addr).unwrap();
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: test.local\r\nContent-Length: {}\r\nCookie: _fbp=x\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let r = read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!(r.status, 200);
    let got = o.last();
    assert_eq!(got.method, "POST");
    assert!(got.body == body);
    assert!(got.header_all("cookie").is_empty());
}

#[test]
fn origin_down_gives_502_and_is_counted() {
    let dead = free_port();
    let p = Proxy::start(&format!(
        "[[site]]\nname = \"down\"\nhosts = [\"*\"]\nupstreams = [\"127.0.0.1:{dead}\"]\n"
    ));
    let r = p.get("/", &[]);
    assert_eq!(r.status, 502);
    let total = || -> f64 {
        p.metrics()
            .lines()
            .filter(|l| {
                l.starts_with("consentgate_upstream_errors_total") && l.contains("site=\"down\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    eventually("upstream error counted", || total() == 1.0);
}

#[test]
fn unrouted_host_gets_421() {
    let origin = cookie_origin();
    let p = Proxy::start(
        &site("only", &origin, "").replace("hosts = [\"*\"]", "hosts = [\"only.test\"]"),
    );
    let r = p.get("/", &[]);
    assert_eq!(r.status, 421);
    p.expect_metric("consentgate_unrouted_requests_total", &[], 1.0);
    assert!(origin.received().is_empty());
}

#[test]
fn access_log_has_one_json_line_per_request_with_decisions() {
    let (_o, p) = start("");
    p.get("/path?secret=1", &[("Cookie", "_ga=1")]);
    eventually("access log line", || {
        p.log_text().contains("\"target\":\"access\"")
    });
    let line = p
        .log_text()
        .lines()
        .find(|l| l.contains("\"target\":\"access\""))
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let f = &v["fields"];
    assert_eq!(f["site"], "t");
    assert_eq!(f["path"], "/path", "query strings are not logged");
    assert_eq!(f["status"], 200);
    assert_eq!(f["consent"], "none");
    assert_eq!(f["set_cookie_stripped"], 4);
    assert_eq!(f["request_cookies_stripped"], 1);
    assert_eq!(f["cookies_expired"], 1);
}

#[test]
fn status_endpoint_reports_config_and_totals() {
    let (_o, p) = start("");
    p.get("/", &[]);
    let status = || -> serde_json::Value {
        serde_json::from_slice(&admin_get(p.admin, "/status").body).unwrap()
    };
    eventually("request counted", || status()["totals"]["requests"] == 1);
    let v = status();
    assert!(v["config_loaded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["sites"][0]["name"], "t");
    assert_eq!(v["totals"]["requests"], 1);
    assert_eq!(v["totals"]["set_cookie_stripped"], 4);
    assert_eq!(admin_get(p.admin, "/healthz").body, b"ok\n");
}

#[test]
fn reload_swaps_configuration_without_restart() {
    let (_o, p) = start("");
    assert_eq!(p.get("/", &[]).set_cookies().len(), 2);
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(
        &p.config,
        text.replace("mode = \"enforce\"", "")
            .replace("cookie_domains", "mode = \"off\"\ncookie_domains"),
    )
    .unwrap();
    // SIGHUP.
    let pid = p.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    eventually("reload via SIGHUP", || {
        p.get("/", &[]).set_cookies().len() == 6
    });
    // A broken file is refused over the admin port and the running config stays.
    std::fs::write(&p.config, "this is not toml").unwrap();
    let mut s = TcpStream::connect(p.admin).unwrap();
    s.write_all(
        format!(
            "POST /reload HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            p.admin
        )
        .as_bytes(),
    )
    .unwrap();
    let r = read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!(r.status, 422);
    assert!(String::from_utf8_lossy(&r.body).contains("consentgate.toml:1"));
    assert_eq!(p.get("/", &[]).set_cookies().len(), 6);
    p.expect_metric(
        "consentgate_config_reloads_total",
        &[("result", "error")],
        1.0,
    );
}
