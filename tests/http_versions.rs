//! The status line, body framing and `Connection` header the client gets, whatever HTTP-version
//! the origin and the client speak (RFC 9110 §6.2, RFC 9112 §6), through the real proxy with a
//! raw socket client.
//!
//! The origin here is an HTTP/1.0 server: every response says `HTTP/1.0` and its connection
//! closes after it, as Python's `http.server` does. An HTTP/1.1 client must get `HTTP/1.1` in
//! the status line: a page rewritten by the proxy (which loses its `Content-Length`) once went
//! out as `HTTP/1.0 200` with `Transfer-Encoding: chunked`, and Chromium, which does not decode
//! chunks in an HTTP/1.0 response, waited for the connection to close (75 s) before the page
//! loaded (tests/browser.rs has that in Chromium). An HTTP/1.0 client must never get chunks: it
//! gets the body unframed (or with its length) and `Connection: close` when the close ends it.

mod common;
#[path = "support/gzip.rs"]
mod gzip;
use common::*;
use gzip::{gunzip, gzip};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What the text paths answer.
const TEXT: &str = "plain text, no rewrite";

/// An HTTP/1.0 origin (each connection closed after its response). Pages (`text/html`, the
/// tracker page the proxy rewrites without consent): `/page` with a length, `/page-gz` gzipped
/// with a length, `/page-open` without a length (ended by the close). Text (never rewritten):
/// `/text`, `/text-open`. And, for the HTTP/1.0 client, an HTTP/1.1 origin's chunked answers:
/// `/chunked-page`, `/chunked-text`; and a `103 Early Hints` before the answer, `/hints`.
fn origin() -> Origin {
    Origin::start_closing(|req| {
        let html = ("Content-Type", "text/html; charset=utf-8");
        let plain = ("Content-Type", "text/plain");
        let open = |ctype: &str, body: &str| {
            format!("HTTP/1.0 200 OK\r\nContent-Type: {ctype}\r\n\r\n{body}").into_bytes()
        };
        let chunked = |ctype: &str, body: &str| {
            let (a, b) = body.split_at(body.len() / 2);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
            .into_bytes()
        };
        match req.path.as_str() {
            "/page" => response_http10("200 OK", &[html], TRACKER_PAGE.as_bytes()),
            "/page-gz" => response_http10(
                "200 OK",
                &[html, ("Content-Encoding", "gzip")],
                &gzip(TRACKER_PAGE.as_bytes()),
            ),
            "/page-open" => open(html.1, TRACKER_PAGE),
            "/text" => response_http10("200 OK", &[plain], TEXT.as_bytes()),
            "/text-open" => open(plain.1, TEXT),
            "/chunked-page" => chunked(html.1, TRACKER_PAGE),
            "/chunked-text" => chunked(plain.1, TEXT),
            // pingora speaks HTTP/1.1 to the origin, which may then send interim responses.
            "/hints" => [
                &b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"[..],
                &response("200 OK", &[plain], TEXT.as_bytes()),
            ]
            .concat(),
            _ => response_http10("404 Not Found", &[], b""),
        }
    })
}

/// A client connection; reads time out after 10 s, so a response whose end never comes (a
/// close-delimited body on a kept-alive connection) fails the test instead of hanging it.
struct Client {
    conn: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            conn: BufReader::new(s),
        }
    }

    /// One GET in `version` (`HTTP/1.1`, `HTTP/1.0`) with extra header lines; the response as
    /// its head frames it (read to the close when it has neither a length nor chunks).
    fn get(&mut self, version: &str, path: &str, extra: &[(&str, &str)]) -> RawResponse {
        let mut req = format!("GET {path} {version}\r\nHost: test.local\r\n");
        for (n, v) in extra {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.conn.get_mut().write_all(req.as_bytes()).unwrap();
        read_response(&mut self.conn, false)
            .unwrap_or_else(|e| panic!("{version} {path}: no complete response ({e})"))
    }
}

fn head(r: &RawResponse) -> String {
    String::from_utf8_lossy(&r.head).into_owned()
}

/// The page came through rewritten (its trackers neutralized) and whole.
#[track_caller]
fn assert_rewritten_page(body: &[u8], what: &str) {
    let page = String::from_utf8_lossy(body);
    assert!(
        page.contains("data-consent-category=\"analytics\""),
        "{what}: not rewritten: {page}"
    );
    assert!(page.ends_with("</body></html>"), "{what}: cut: {page}");
}

fn connection(r: &RawResponse) -> String {
    r.header_strings("connection")
        .join(",")
        .to_ascii_lowercase()
}

#[test]
fn an_http10_origins_rewritten_page_reaches_an_http11_client_as_http11_chunked_on_a_kept_connection(
) {
    let o = origin();
    let p = Proxy::start(&shop_site(o.addr, ""));
    let mut c = Client::connect(p.addr);
    // With a length, gzipped with a length, and ended by the origin's close: all three lose
    // their framing to the rewrite (or never had one) and must be chunked under HTTP/1.1.
    for path in ["/page", "/page-gz", "/page-open"] {
        let r = c.get("HTTP/1.1", path, &[("Accept-Encoding", "gzip")]);
        let h = head(&r);
        assert!(h.starts_with("HTTP/1.1 200 "), "{path}: {h}");
        assert!(r.chunked, "{path}: {h}");
        assert!(r.header_all("content-length").is_empty(), "{path}: {h}");
        assert_eq!(connection(&r), "keep-alive", "{path}: {h}");
        let body = if path == "/page-gz" {
            assert_eq!(r.header_strings("content-encoding"), ["gzip"], "{h}");
            gunzip(&r.body)
        } else {
            r.body.clone()
        };
        assert_rewritten_page(&body, path);
    }
    // The same connection still serves: every response above ended by its last chunk.
    let r = c.get("HTTP/1.1", "/text", &[]);
    assert_eq!(r.status, 200, "{}", head(&r));
    assert_eq!(r.body, TEXT.as_bytes());
    assert_eq!(o.received().len(), 4);
}

#[test]
fn an_http10_origins_unrewritten_response_reaches_an_http11_client_as_http11() {
    let o = origin();
    // Enforcing (the text is planned and left alone) and off (no plan at all): the status line
    // is the proxy's on both paths.
    for extra in ["", "mode = \"off\""] {
        let p = Proxy::start(&shop_site(o.addr, extra));
        let mut c = Client::connect(p.addr);
        let r = c.get("HTTP/1.1", "/text", &[]);
        let h = head(&r);
        assert!(h.starts_with("HTTP/1.1 200 "), "{extra}: {h}");
        assert_eq!(r.header_strings("content-length"), [TEXT.len().to_string()]);
        assert!(!r.chunked, "{extra}: {h}");
        assert_eq!(connection(&r), "keep-alive", "{extra}: {h}");
        assert_eq!(r.body, TEXT.as_bytes());
        // Ended by the origin's close: chunked for the client, who keeps its connection.
        let r = c.get("HTTP/1.1", "/text-open", &[]);
        let h = head(&r);
        assert!(h.starts_with("HTTP/1.1 200 "), "{extra}: {h}");
        assert!(r.chunked, "{extra}: {h}");
        assert_eq!(connection(&r), "keep-alive", "{extra}: {h}");
        assert_eq!(r.body, TEXT.as_bytes());
        let r = c.get("HTTP/1.1", "/text", &[]);
        assert_eq!(r.body, TEXT.as_bytes(), "{extra}: third request");
    }
}

#[test]
fn an_http10_client_never_gets_chunks() {
    let o = origin();
    let p = Proxy::start(&shop_site(o.addr, ""));
    // Rewritten (with a length, without one, chunked by an HTTP/1.1 origin) and not (ended by
    // the origin's close, which pingora chunks; chunked by the origin).
    for path in [
        "/page",
        "/page-open",
        "/chunked-page",
        "/text-open",
        "/chunked-text",
    ] {
        let mut c = Client::connect(p.addr);
        let r = c.get("HTTP/1.0", path, &[]);
        let h = head(&r);
        assert!(h.starts_with("HTTP/1.1 200 "), "{path}: {h}");
        assert!(r.header_all("transfer-encoding").is_empty(), "{path}: {h}");
        assert!(r.header_all("content-length").is_empty(), "{path}: {h}");
        // The body ends with the connection, and the header says so.
        assert_eq!(connection(&r), "close", "{path}: {h}");
        if path.contains("page") {
            assert_rewritten_page(&r.body, path);
        } else {
            assert_eq!(r.body, TEXT.as_bytes(), "{path}: {h}");
        }
    }
}

#[test]
fn an_http10_keep_alive_client_keeps_its_connection_only_while_a_length_frames_the_body() {
    let o = origin();
    let p = Proxy::start(&shop_site(o.addr, ""));
    let keep = [("Connection", "keep-alive")];
    let mut c = Client::connect(p.addr);
    for _ in 0..2 {
        let r = c.get("HTTP/1.0", "/text", &keep);
        let h = head(&r);
        assert!(h.starts_with("HTTP/1.1 200 "), "{h}");
        assert_eq!(r.header_strings("content-length"), [TEXT.len().to_string()]);
        assert_eq!(connection(&r), "keep-alive", "{h}");
        assert_eq!(r.body, TEXT.as_bytes());
    }
    // A rewritten page has no length left and chunks are not for HTTP/1.0: the body ends with
    // the connection, so the header must say close, not keep-alive.
    let r = c.get("HTTP/1.0", "/page", &keep);
    let h = head(&r);
    assert!(!r.chunked, "{h}");
    assert_eq!(connection(&r), "close", "{h}");
    assert_rewritten_page(&r.body, "/page");
}

#[test]
fn an_http10_client_gets_no_interim_responses() {
    let o = origin();
    let p = Proxy::start(&shop_site(o.addr, ""));
    let read_all = |version: &str| {
        let mut s = TcpStream::connect(p.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /hints {version}\r\nHost: test.local\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut raw).unwrap();
        let (heads, status, body) = split_heads(&raw);
        (heads, status, body.to_vec())
    };
    // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client, which would take it for the answer.
    let (heads, status, body) = read_all("HTTP/1.0");
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert_eq!(status, 200, "{heads:?}");
    assert_eq!(body, TEXT.as_bytes());
    // An HTTP/1.1 client still gets the hints first.
    let (heads, status, _) = read_all("HTTP/1.1");
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(heads[0].starts_with("HTTP/1.1 103 "), "{heads:?}");
    assert_eq!(status, 200, "{heads:?}");
}
