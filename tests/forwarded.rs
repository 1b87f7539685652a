//! Forwarding headers through the real binary, a real origin on loopback and a real HTTP/1.1
//! client (issue 10, "Requests the proxy forwards"): what an untrusted client writes into
//! `X-Forwarded-*` / `Forwarded` never reaches the origin nor changes how consentgate builds
//! URLs; from a trusted proxy the chain is kept and appended.
//!
//! The test client connects from 127.0.0.1: it is untrusted with `trusted_proxies =
//! ["10.0.0.0/8"]` and trusted with `["127.0.0.1/32"]`.

mod common;
use common::*;

/// Everything a client can write to pose as a TLS terminator for another client.
const SPOOF: &[(&str, &str)] = &[
    ("Host", "shop.test"),
    ("X-Forwarded-For", "203.0.113.66"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "bank.example"),
    (
        "Forwarded",
        "for=203.0.113.66;proto=https;host=bank.example",
    ),
];

fn ok_origin() -> Origin {
    Origin::start(|_| response("200 OK", &[("Content-Type", "text/plain")], b"ok\n"))
}

fn site(origin: &Origin) -> String {
    format!(
        "[[site]]\nname = \"shop\"\nhosts = [\"*\"]\nupstreams = [\"{}\"]\n",
        origin.addr
    )
}

#[test]
fn spoofed_forwarding_headers_from_an_untrusted_peer_do_not_reach_the_origin() {
    let origin = ok_origin();
    let proxy = Proxy::start_with(
        &site(&origin),
        "trusted_proxies = [\"10.0.0.0/8\"]\nforwarded_headers = \"both\"\n",
    );
    let r = proxy.get("/", SPOOF);
    assert_eq!(r.status, 200);
    let got = origin.last();
    assert_eq!(got.header_strings("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(got.header_strings("x-forwarded-proto"), ["http"]);
    assert_eq!(got.header_strings("x-forwarded-host"), ["shop.test"]);
    assert_eq!(
        got.header_strings("forwarded"),
        ["for=127.0.0.1;proto=http;host=shop.test"]
    );
    // Several lines of a spoofed header are all removed, not just the first.
    let mut two_lines = SPOOF.to_vec();
    two_lines.push(("X-Forwarded-For", "198.51.100.1"));
    proxy.get("/", &two_lines);
    assert_eq!(
        origin.last().header_strings("x-forwarded-for"),
        ["127.0.0.1"]
    );
}

#[test]
fn the_default_speaks_x_forwarded_only_and_trusts_nobody() {
    let origin = ok_origin();
    let proxy = Proxy::start(&site(&origin));
    proxy.get("/", SPOOF);
    let got = origin.last();
    assert_eq!(got.header_strings("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(got.header_strings("x-forwarded-proto"), ["http"]);
    assert_eq!(got.header_strings("x-forwarded-host"), ["shop.test"]);
    assert!(
        got.header_all("forwarded").is_empty(),
        "removed, not replaced"
    );
    assert!(got.header_all("via").is_empty(), "via is off by default");
}

#[test]
fn a_trusted_peer_keeps_and_appends_the_chain() {
    let origin = ok_origin();
    let proxy = Proxy::start_with(
        &site(&origin),
        "trusted_proxies = [\"127.0.0.1/32\"]\nforwarded_headers = \"both\"\nvia = true\n",
    );
    proxy.get("/", SPOOF);
    let got = origin.last();
    assert_eq!(
        got.header_strings("x-forwarded-for"),
        ["203.0.113.66, 127.0.0.1"]
    );
    assert_eq!(got.header_strings("x-forwarded-proto"), ["https"]);
    assert_eq!(got.header_strings("x-forwarded-host"), ["bank.example"]);
    assert_eq!(
        got.header_strings("forwarded"),
        ["for=203.0.113.66;proto=https;host=bank.example, for=127.0.0.1;proto=http;host=shop.test"]
    );
    assert_eq!(got.header_strings("via"), ["1.1 consentgate"]);
}

/// A blocklist whose only rule names the scheme: it matches `https://shop.test/beacon` and not
/// `http://shop.test/beacon`, so whether a request is blocked shows the scheme consentgate
/// built the URL with.
fn https_only_rule_site(origin: &Origin, dir: &TempDir) -> String {
    let list = dir.0.join("https-only.txt");
    std::fs::write(&list, "|https://shop.test/beacon\n").unwrap();
    analytics_list_site("shop", origin.addr, &list.display().to_string())
}

#[test]
fn an_untrusted_x_forwarded_proto_does_not_change_how_urls_are_built() {
    let origin = ok_origin();
    let dir = TempDir::new("fwd-untrusted");
    let proxy = Proxy::start_with(
        &https_only_rule_site(&origin, &dir),
        "trusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    let spoofed = [("Host", "shop.test"), ("X-Forwarded-Proto", "https")];
    let r = proxy.get("/beacon", &spoofed);
    assert_eq!(
        r.status, 200,
        "built as http://: the https-only rule does not match"
    );
    assert_eq!(origin.last().path, "/beacon");
    assert_eq!(origin.last().header_strings("x-forwarded-proto"), ["http"]);
}

#[test]
fn a_trusted_x_forwarded_proto_is_the_scheme() {
    let origin = ok_origin();
    let dir = TempDir::new("fwd-trusted");
    let proxy = Proxy::start_with(
        &https_only_rule_site(&origin, &dir),
        "trusted_proxies = [\"127.0.0.1/32\"]\n",
    );
    // The oracle of the rule: without a trusted https, the request goes through.
    assert_eq!(proxy.get("/beacon", &[("Host", "shop.test")]).status, 200);
    let seen = origin.received().len();
    let r = proxy.get(
        "/beacon",
        &[("Host", "shop.test"), ("X-Forwarded-Proto", "https")],
    );
    assert_ne!(r.status, 200, "https://shop.test/beacon is on the list");
    assert_eq!(r.header_all("x-consentgate"), [b"blocked".to_vec()]);
    assert_eq!(
        origin.received().len(),
        seen,
        "a blocked request never reaches the origin"
    );
}

#[test]
fn explain_shows_the_forwarding_decision() {
    let dir = TempDir::new("fwd-explain");
    let config = dir.0.join("c.toml");
    std::fs::write(
        &config,
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\ntrusted_proxies = [\"10.0.0.0/8\"]\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let args = |peer: &'static str| {
        let c = config.clone();
        move || {
            run_cli(&[
                "explain",
                "--config",
                &c,
                "--host",
                "shop.test",
                "--peer",
                peer,
                "--header",
                "X-Forwarded-For: 203.0.113.9, 10.0.0.7",
                "--header",
                "X-Forwarded-Proto: https",
            ])
        }
    };
    let (code, out, err) = args("10.1.1.1")();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = &v["forwarded"];
    assert_eq!(f["trusted_peer"], true);
    assert_eq!(f["client"], "203.0.113.9");
    assert_eq!(f["scheme"], "https");
    let (_, out, _) = args("127.0.0.1")();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = &v["forwarded"];
    assert_eq!(
        (&f["client"], &f["scheme"]),
        (&"127.0.0.1".into(), &"http".into())
    );
    assert_eq!(
        f["set"][0],
        serde_json::json!(["x-forwarded-for", "127.0.0.1"])
    );
}
