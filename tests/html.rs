//! HTML neutralization through the running proxy (issue 4, part 2).

mod common;
use common::*;
#[path = "support/gzip.rs"]
mod gzip;
use gzip::{gunzip, gzip};
use std::io::{Read, Write};

const PAGE: &str = TRACKER_PAGE;

/// A page with nothing to neutralize, written the ways real pages are: upper-case tags,
/// single-quoted and bare attributes, entities in attribute values, inline scripts of every kind.
const CLEAN_PAGE: &str = "<!DOCTYPE html><HTML><head>\n\
<SCRIPT type='text/javascript' async data-x=\"a&amp;b\">var a = 1 < 2 && \"</p>\";</SCRIPT >\n\
<script nonce=abc123>window.x = {\"k\": '&lt;'};</script>\n\
<script type=\"application/ld+json\">{\"@type\": \"Organization\"}</script>\n\
<script></script><script src='/app.js' defer></script>\n\
</head><body><img src=/logo.png alt='A &quot;logo&quot;'><noscript><img src='/nojs.gif'></noscript>\n\
<p>caf\u{e9} \u{2014} na\u{ef}ve</p></body></HTML>\n";

/// A page whose first tag holds 2 MiB of pseudo-random hex (too big for the rewriter's memory
/// limit, and barely compressible).
fn noisy_page() -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: String = (0..2 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"0123456789abcdef"[(x & 15) as usize])
        })
        .collect();
    format!("<html><body><img data-x=\"{noise}\" src=\"/logo.png\">after{PAGE}</body></html>")
}

fn origin() -> Origin {
    Origin::start(|req| {
        let html = ("Content-Type", "text/html; charset=utf-8");
        match req.path.as_str() {
            "/gz" => response(
                "200 OK",
                &[
                    html,
                    ("Content-Encoding", "gzip"),
                    ("Cache-Control", "public, max-age=600, s-maxage=3600"),
                ],
                &gzip(PAGE.as_bytes()),
            ),
            "/br" => {
                let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
                w.write_all(PAGE.as_bytes()).unwrap();
                response(
                    "200 OK",
                    &[html, ("Content-Encoding", "br")],
                    &w.into_inner(),
                )
            }
            "/huge-tag" => {
                // A 2 MiB attribute exceeds the rewriter's memory limit: the rewrite fails and
                // the rest of the page must still arrive.
                let page = format!(
                    "<html><body><img data-x=\"{}\" src=\"/logo.png\">after{PAGE}</body></html>",
                    "x".repeat(2 * 1024 * 1024)
                );
                response("200 OK", &[html], page.as_bytes())
            }
            "/clean" => response("200 OK", &[html], CLEAN_PAGE.as_bytes()),
            "/clean-gz" => response(
                "200 OK",
                &[html, ("Content-Encoding", "gzip")],
                &gzip(CLEAN_PAGE.as_bytes()),
            ),
            "/huge-tag-gz" => response(
                "200 OK",
                &[html, ("Content-Encoding", "gzip")],
                &gzip(noisy_page().as_bytes()),
            ),
            "/nonce" => response(
                "200 OK",
                &[html],
                b"<script nonce=\"n1\" id=gt>gtag('config','G-1')</script><p>x</p>",
            ),
            "/json" => response(
                "200 OK",
                &[("Content-Type", "application/json")],
                PAGE.as_bytes(),
            ),
            _ => response("200 OK", &[html], PAGE.as_bytes()),
        }
    })
}

fn start(o: &Origin) -> Proxy {
    Proxy::start(&shop_site(o.addr, ""))
}

fn text(r: &RawResponse) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

#[test]
fn trackers_in_html_are_neutralized_without_consent() {
    let o = origin();
    let p = start(&o);
    let r = p.get("/", &[]);
    let body = text(&r);
    assert!(body.contains(r#"<script async data-src="https://www.googletagmanager.com/gtag/js?id=G-1" type="text/plain" data-consent-category="analytics"></script>"#), "{body}");
    assert!(body.contains(
        r#"<script type="text/plain" data-consent-category="analytics">window.dataLayer"#
    ));
    assert!(body.contains(r#"<script src="/app.js"></script>"#));
    assert!(body.contains(r#"data-src="https://www.facebook.com/tr?id=1&ev=PageView" height="1" data-consent-category="marketing""#) || body.contains(r#"<img height="1" data-src="https://www.facebook.com/tr?id=1&ev=PageView""#), "{body}");
    assert!(body.contains(r#"<noscript><img data-src="https://www.facebook.com/tr?id=1&ev=PageView&noscript=1" data-consent-category="marketing"></noscript>"#), "{body}");
    // The body changed: no stale Content-Length; private to this visitor.
    assert!(r.header_all("content-length").is_empty());
    assert_eq!(r.header_strings("cache-control"), vec!["private"]);
    assert_eq!(r.header_strings("vary"), vec!["Cookie"]);
    p.expect_metric(
        "consentgate_neutralized_elements_total",
        &[
            ("site", "shop"),
            ("category", "analytics"),
            ("tag", "script"),
        ],
        1.0,
    );
    p.expect_metric(
        "consentgate_neutralized_elements_total",
        &[("site", "shop"), ("category", "marketing"), ("tag", "img")],
        2.0,
    );
}

#[test]
fn full_consent_leaves_the_page_byte_for_byte() {
    let o = origin();
    let p = start(&o);
    let r = p.get("/", &[("Cookie", "consent=all")]);
    assert_eq!(text(&r), PAGE);
    assert_eq!(
        r.header_strings("content-length"),
        vec![PAGE.len().to_string()]
    );
    assert!(r.header_all("vary").is_empty());
    // Not HTML: never rewritten.
    let r = p.get("/json", &[]);
    assert_eq!(text(&r), PAGE);
}

#[test]
fn partial_consent_neutralizes_only_the_refused_category() {
    let o = origin();
    let p = start(&o);
    let body = text(&p.get("/", &[("Cookie", "consent=analytics")]));
    assert!(body.contains(
        r#"<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>"#
    ));
    assert!(body.contains("data-consent-category=\"marketing\""));
    assert!(!body.contains("data-consent-category=\"analytics\""));
}

#[test]
fn gzip_and_brotli_pages_are_rewritten_and_re_encoded() {
    let o = origin();
    let p = start(&o);
    let r = p.get("/gz", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header_strings("content-encoding"), vec!["gzip"]);
    let body = String::from_utf8(gunzip(&r.body)).unwrap();
    assert!(
        body.contains("data-consent-category=\"analytics\""),
        "{body}"
    );
    assert!(body.ends_with("</body></html>"));
    // A public, shared-cacheable response becomes private.
    assert_eq!(
        r.header_strings("cache-control"),
        vec!["private, max-age=600"]
    );
    let r = p.get("/br", &[("Accept-Encoding", "br")]);
    assert_eq!(r.header_strings("content-encoding"), vec!["br"]);
    let mut plain = Vec::new();
    brotli::Decompressor::new(&r.body[..], 4096)
        .read_to_end(&mut plain)
        .unwrap();
    let body = String::from_utf8(plain).unwrap();
    assert!(body.contains("data-consent-category=\"marketing\""));
}

#[test]
fn a_rewriter_failure_passes_the_rest_through_and_is_counted() {
    let o = origin();
    let p = start(&o);
    let r = p.get("/huge-tag", &[]);
    assert_eq!(r.status, 200);
    let body = text(&r);
    // Nothing had changed before the failure: the page arrives exactly as the origin sent it
    // (the trackers after the failure point are not neutralized: availability fails open).
    let page = format!(
        "<html><body><img data-x=\"{}\" src=\"/logo.png\">after{PAGE}</body></html>",
        "x".repeat(2 * 1024 * 1024)
    );
    assert!(
        body == page,
        "{} bytes, expected {}",
        body.len(),
        page.len()
    );
    // The same through gzip, with an attribute gzip cannot shrink (so the body arrives in many
    // chunks and the held part is passed on re-encoded): the decoded page is whole.
    let r = p.get("/huge-tag-gz", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200);
    let body = gunzip(&r.body);
    assert!(body == noisy_page().as_bytes(), "{} bytes", body.len());
    p.expect_metric(
        "consentgate_rewrite_failures_total",
        &[("site", "shop"), ("reason", "rewriter")],
        2.0,
    );
}

#[test]
fn a_page_with_nothing_to_neutralize_is_byte_for_byte_even_without_consent() {
    let o = origin();
    let p = start(&o);
    let r = p.get("/clean", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(text(&r), CLEAN_PAGE);
    // Compressed: the origin's exact gzip bytes, not a re-compressed copy.
    let r = p.get("/clean-gz", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header_strings("content-encoding"), vec!["gzip"]);
    assert!(r.body == gzip(CLEAN_PAGE.as_bytes()), "body changed");
}

#[test]
fn a_neutralized_inline_script_keeps_its_start_tag_and_moves_its_text_to_an_inert_copy() {
    let o = origin();
    let p = start(&o);
    let body = text(&p.get("/nonce", &[]));
    assert_eq!(
        body,
        "<script nonce=\"n1\" id=gt></script><script type=\"text/plain\" data-consent-category=\"analytics\" nonce=\"n1\">gtag('config','G-1')</script><p>x</p>"
    );
}

#[test]
fn easyprivacy_neutralizes_page_trackers() {
    // An excerpt of the real EasyPrivacy (tests/fixtures/lists/NOTICE), as an operator adds it.
    let ep = fixture("lists/easyprivacy.txt");
    let o = origin();
    let p = Proxy::start(&analytics_list_site("ep", o.addr, &ep));
    let body = text(&p.get("/", &[]));
    assert!(body.contains(r#"data-src="https://www.googletagmanager.com/gtag/js?id=G-1" type="text/plain" data-consent-category="analytics""#), "{body}");
    assert!(body.contains(r#"<script src="/app.js"></script>"#));
    let body = text(&p.get("/", &[("Cookie", "consent=analytics")]));
    assert_eq!(
        body, PAGE,
        "EasyPrivacy is an analytics list: analytics consent leaves the page alone"
    );
}

/// A rewritten page has no `Content-Length`; it must still be framed (chunked) so an HTTP/1.1
/// visitor's connection stays open for the next request. Before the fix the body ended by
/// closing the connection, and every rewritten page cost the visitor a new connection (found
/// by tests/soak.rs).
#[test]
fn a_rewritten_page_is_chunked_and_keeps_the_connection_alive() {
    let o = origin();
    let p = start(&o);
    let s = std::net::TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut r = std::io::BufReader::new(s);
    for i in 0..3 {
        r.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: test.local\r\n\r\n")
            .unwrap();
        let resp = read_response(&mut r, false).unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(resp.status, 200);
        assert!(
            resp.chunked,
            "request {i}: {}",
            String::from_utf8_lossy(&resp.head)
        );
        assert!(text(&resp).contains("data-consent-category=\"analytics\""));
        assert!(text(&resp).ends_with("</body></html>"));
    }
}
