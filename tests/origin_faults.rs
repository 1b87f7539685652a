//! Origin faults through the real proxy (issue 13, "Origin faults"). The origin is a raw
//! `TcpListener` on loopback that this file drives byte by byte: it refuses, resets mid-headers
//! and mid-body (of a plain body and of an HTML page the proxy rewrites, which the proxy must
//! frame itself), stalls before headers and mid-body (of a `Content-Length` body and of a
//! chunked one), sends garbage, sends `Content-Length` with
//! `Transfer-Encoding`, sends 1xx responses before the final one, and sends a close-delimited
//! HTTP/1.0 body. For each fault the client (a raw socket, no consent) must get, in bounded
//! time, either a `502`/`504` or a body that is visibly cut (the connection closes before the
//! announced length or the last chunk), never a hang and never a "complete" response of the
//! wrong length; no marketing `Set-Cookie` (the faulty origin sends `_fbp` before failing) on
//! any path; and the failure counted in `/metrics`.
//!
//! The same faults run a second time with the client speaking HTTP/2 over TLS (curl) to the
//! proxy; the origin stays HTTP/1.x. There a cut body must end with `RST_STREAM`.
//!
//! The site's origin timeouts are set small (`read_ms = 400`); the time bounds asserted are
//! generous (10 s) so a loaded CI host does not fail them, while a hang (the proxy waiting for
//! the origin's 60 s default or forever) does.

mod common;
#[path = "support/h2_client.rs"]
mod h2_client;
use common::*;
use h2_client::{H2Response, TlsProxy, CURL_STREAM_RESET};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long any fault may take to reach the client, with a wide margin over `read_ms`.
const BOUND: Duration = Duration::from_secs(10);

/// The marketing cookie the faulty origin sets: the visitor has no consent, so it must never
/// reach the client.
const FBP: &str = "Set-Cookie: _fbp=fb.1.1700000000.123; Path=/; Max-Age=7776000\r\n";
/// A necessary cookie, kept wherever a response reaches the client.
const SESSION: &str = "Set-Cookie: SESSIONID=s3ss10n; Path=/; HttpOnly\r\n";

/// What a faulty origin does once it has read a request's header.
type Fault = fn(&mut TcpStream);

/// A raw origin on loopback: reads each request's header, then runs `fault` on the socket and
/// closes it (one request per connection).
fn faulty_origin(fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                if read_head(&mut conn) {
                    fault(&mut conn);
                }
            });
        }
    });
    addr
}

/// Reads up to the end of a request header; false if the connection ends first.
fn read_head(conn: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// Sends a TCP reset (linger 0, then close) instead of a clean FIN.
fn reset(conn: &mut TcpStream) {
    let _ = conn.flush();
    // SO_LINGER on with a zero timeout: close() sends RST and drops unsent data.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&*conn),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    // The socket closes (with RST) when the fault's thread drops it.
}

fn site(origin: SocketAddr) -> String {
    format!(
        r#"
[[site]]
name = "faults"
hosts = ["*"]
upstreams = ["{origin}"]
unknown_cookies = "strip"

[site.timeouts]
connect_ms = 400
read_ms = 400
write_ms = 400

[site.cookies]
necessary = ["SESSIONID"]
marketing = ["_fbp"]
"#
    )
}

/// What the client got, read to the end of the connection.
#[derive(Debug)]
struct Exchange {
    /// Every response head received (interim 1xx ones first), as text.
    heads: Vec<String>,
    /// The final response's status (0: none).
    status: u16,
    /// The final response's body as framed: decoded chunks, or the bytes after the head.
    body: Vec<u8>,
    /// The body's framing said it was complete (the full `Content-Length`, or the last chunk).
    complete: bool,
    /// Everything received, for the cookie check.
    raw: Vec<u8>,
    elapsed: Duration,
}

impl Exchange {
    fn final_head(&self) -> &str {
        self.heads.last().map(String::as_str).unwrap_or("")
    }
    fn header(&self, name: &str) -> Option<String> {
        header(self.final_head(), name)
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// One GET (no consent cookie) on a connection of its own, read until the proxy closes it or
/// 30 s pass (a hang shows as `elapsed` past [`BOUND`]).
fn exchange(proxy: &Proxy, path: &str) -> Exchange {
    let start = Instant::now();
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let elapsed = start.elapsed();
    // Split off the heads: 1xx heads, then the final one.
    let (heads, status, rest) = split_heads(&raw);
    let mut ex = Exchange {
        heads,
        status,
        body: Vec::new(),
        complete: false,
        raw: raw.clone(),
        elapsed,
    };
    let chunked = ex
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"));
    if chunked {
        let (body, complete) = dechunk(rest);
        ex.body = body;
        ex.complete = complete;
    } else if let Some(len) = ex.header("content-length") {
        let len: usize = len.parse().unwrap();
        ex.body = rest.to_vec();
        ex.complete = rest.len() == len;
    } else {
        // Close-delimited: complete only by the proxy's word, which it cannot give.
        ex.body = rest.to_vec();
    }
    ex
}

/// Decodes chunked framing as far as it goes; true when the last chunk arrived.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let line = String::from_utf8_lossy(&rest[..eol]);
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16) else {
            return (body, false);
        };
        rest = &rest[eol + 2..];
        if size == 0 {
            return (body, rest.starts_with(b"\r\n"));
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..size.min(rest.len())]);
            return (body, false);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The sum of `name` over every label set with `site="faults"` and `label` (e.g.
/// `phase="read"`; empty: any).
fn counted(proxy: &Proxy, name: &str, label: &str) -> f64 {
    proxy
        .metrics()
        .lines()
        .filter(|l| {
            l.starts_with(&format!("{name}{{"))
                && l.contains("site=\"faults\"")
                && l.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls until `name` (summed for the site over label sets with `label`) reaches at least 1.
#[track_caller]
fn expect_counted(proxy: &Proxy, name: &str, label: &str) {
    eventually(&format!("{name}{{{label}}} counted for the fault"), || {
        counted(proxy, name, label) >= 1.0
    });
}

/// The checks every fault shares: bounded time, no marketing cookie anywhere in the bytes.
#[track_caller]
fn common_checks(ex: &Exchange) {
    assert!(
        ex.elapsed < BOUND,
        "the client waited {:?} (bound {BOUND:?}): {ex:?}",
        ex.elapsed
    );
    let text = String::from_utf8_lossy(&ex.raw);
    assert!(
        !text.contains("_fbp"),
        "a marketing cookie reached a client without consent:\n{text}"
    );
}

/// A `502`/`504` error answer.
#[track_caller]
fn assert_error(ex: &Exchange, statuses: &[u16]) {
    common_checks(ex);
    assert!(
        statuses.contains(&ex.status),
        "expected one of {statuses:?}, got {}: {:?}",
        ex.status,
        ex.heads
    );
}

/// A body the client can tell is cut: the proxy passed the header on, then closed before the
/// announced length or the last chunk.
#[track_caller]
fn assert_cut(ex: &Exchange) {
    common_checks(ex);
    if ex.status == 502 || ex.status == 504 {
        return; // failed before the header went out: an error answer is as good
    }
    assert_eq!(ex.status, 200, "{:?}", ex.heads);
    assert!(
        !ex.complete,
        "a cut origin body reached the client as complete ({} bytes): {:?}",
        ex.body.len(),
        ex.heads
    );
    assert!(
        ex.header("content-length").is_some() || ex.header("transfer-encoding").is_some(),
        "a cut body sent close-delimited cannot be told from a complete one: {:?}",
        ex.heads
    );
}

fn start(fault: Fault) -> Proxy {
    Proxy::start(&site(faulty_origin(fault)))
}

const ERRORS: &str = "consentgate_upstream_errors_total";
const TIMEOUTS: &str = "consentgate_upstream_timeouts_total";

#[test]
fn refused_connection_is_a_counted_502() {
    // A port nobody listens on (bound, then released).
    let closed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let p = Proxy::start(&site(closed));
    let ex = exchange(&p, "/");
    assert_error(&ex, &[502]);
    expect_counted(&p, ERRORS, "error=\"ConnectRefused\"");
}

/// RST after `_fbp` and half a header line.
fn reset_mid_headers(c: &mut TcpStream) {
    let _ = c.write_all(format!("HTTP/1.1 200 OK\r\n{FBP}{SESSION}Content-Ty").as_bytes());
    reset(c);
}

#[test]
fn reset_mid_headers_is_a_counted_502() {
    let p = start(reset_mid_headers);
    let ex = exchange(&p, "/");
    assert_error(&ex, &[502]);
    expect_counted(&p, ERRORS, "");
}

/// 1000 bytes announced, 100 sent.
fn head_then_partial_body(c: &mut TcpStream) {
    let _ = c.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{FBP}{SESSION}Content-Length: 1000\r\n\r\n{}",
            "x".repeat(100)
        )
        .as_bytes(),
    );
    let _ = c.flush();
}

/// 100 of 1,000 announced bytes, then RST.
fn reset_mid_body(c: &mut TcpStream) {
    head_then_partial_body(c);
    std::thread::sleep(Duration::from_millis(100));
    reset(c);
}

#[test]
fn reset_mid_body_cuts_the_body_and_is_counted() {
    let p = start(reset_mid_body);
    let ex = exchange(&p, "/");
    assert_cut(&ex);
    expect_counted(&p, ERRORS, "");
}

/// Nothing at all after the request: the origin holds the connection open.
fn stall_before_headers(_: &mut TcpStream) {
    std::thread::sleep(Duration::from_secs(15));
}

#[test]
fn stall_before_headers_is_a_counted_504() {
    let p = start(stall_before_headers);
    let ex = exchange(&p, "/");
    assert_error(&ex, &[504]);
    expect_counted(&p, TIMEOUTS, "phase=\"read\"");
    expect_counted(&p, ERRORS, "");
}

/// 100 of 1,000 announced bytes, then silence.
fn stall_mid_body(c: &mut TcpStream) {
    head_then_partial_body(c);
    std::thread::sleep(Duration::from_secs(15));
}

#[test]
fn stall_mid_body_cuts_the_body_and_is_counted() {
    let p = start(stall_mid_body);
    let ex = exchange(&p, "/");
    assert_cut(&ex);
    expect_counted(&p, TIMEOUTS, "phase=\"read\"");
}

/// TLS-looking bytes, no status line.
fn garbage(c: &mut TcpStream) {
    let _ = c.write_all(b"\x16\x03\x01 this is not HTTP\r\n_fbp=1\r\n\r\n");
    let _ = c.shutdown(Shutdown::Write);
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn garbage_response_is_a_counted_502() {
    let p = start(garbage);
    let ex = exchange(&p, "/");
    assert_error(&ex, &[502]);
    expect_counted(&p, ERRORS, "");
}

/// Both framings: `Content-Length: 100` and a chunked body of 5 bytes (`hello`).
fn content_length_and_chunked(c: &mut TcpStream) {
    let _ = c.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{FBP}Content-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn content_length_with_transfer_encoding_is_refused_or_framed_once() {
    // RFC 9112 6.3: Transfer-Encoding overrides Content-Length; the message "ought to be
    // handled as an error", and an intermediary that forwards it must drop Content-Length.
    let p = start(content_length_and_chunked);
    let ex = exchange(&p, "/");
    common_checks(&ex);
    if ex.status == 502 {
        expect_counted(&p, ERRORS, "");
        return;
    }
    assert_eq!(ex.status, 200, "{:?}", ex.heads);
    assert!(
        !(ex.header("content-length").is_some() && ex.header("transfer-encoding").is_some()),
        "both framings forwarded: {:?}",
        ex.heads
    );
    assert_eq!(ex.body, b"hello", "{ex:?}");
    assert!(ex.complete, "{ex:?}");
}

/// `100` and `103` (with `_fbp`) before the final `200`.
fn interim_then_final(c: &mut TcpStream) {
    let _ = c.write_all(
        format!(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n{FBP}\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{FBP}{SESSION}Content-Length: 5\r\n\r\nhello"
        )
        .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn interim_1xx_responses_carry_no_marketing_cookie_and_the_final_one_arrives() {
    let p = start(interim_then_final);
    let ex = exchange(&p, "/");
    common_checks(&ex);
    assert_eq!(ex.status, 200, "{:?}", ex.heads);
    assert_eq!(ex.body, b"hello");
    assert!(ex.complete);
    assert!(
        ex.final_head().contains("SESSIONID=s3ss10n"),
        "{:?}",
        ex.heads
    );
}

/// The 64 KiB body [`http10_close_delimited`] sends.
fn http10_body() -> Vec<u8> {
    (0..64u8).flat_map(|i| [b'a' + i % 26; 1024]).collect()
}

/// An HTTP/1.0 head without a length, 64 KiB, then FIN.
fn http10_close_delimited(c: &mut TcpStream) {
    let _ = c.write_all(
        format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n{FBP}{SESSION}\r\n").as_bytes(),
    );
    let _ = c.write_all(&http10_body());
    let _ = c.shutdown(Shutdown::Write);
}

#[test]
fn close_delimited_http10_body_is_delivered_complete() {
    let p = start(http10_close_delimited);
    let ex = exchange(&p, "/");
    common_checks(&ex);
    assert_eq!(ex.status, 200, "{:?}", ex.heads);
    // The proxy's own version, which the chunks need: HTTP/1.0 has no chunked coding.
    assert!(
        ex.final_head().starts_with("HTTP/1.1 200 "),
        "{:?}",
        ex.heads
    );
    let expected = http10_body();
    assert_eq!(ex.body.len(), expected.len(), "{:?}", ex.heads);
    assert!(ex.body == expected, "the body's bytes changed");
    // Framed (chunked) to the client, the framing must say complete; close-delimited, the
    // length check above is the proof.
    let framed = ex.header("content-length").is_some() || ex.header("transfer-encoding").is_some();
    assert!(!framed || ex.complete, "{:?}", ex.heads);
    assert!(ex.final_head().contains("SESSIONID=s3ss10n"));
}

/// A shop page with a Google tag and a Facebook pixel, padded to a few KiB so it is cut after
/// its head: the visitor has no consent, so the proxy rewrites it (its length changes).
fn tracker_page() -> Vec<u8> {
    TRACKER_PAGE
        .replace("</body>", &format!("<p>{}</p></body>", "y".repeat(4000)))
        .into_bytes()
}

/// The page's head with its full `Content-Length`, then its first 1,500 bytes (the `<head>` with
/// the tags and some of the body), then RST.
fn reset_mid_rewritten_page(c: &mut TcpStream) {
    let page = tracker_page();
    let _ = c.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n{FBP}{SESSION}Content-Length: {}\r\n\r\n",
            page.len()
        )
        .as_bytes(),
    );
    let _ = c.write_all(&page[..1500]);
    let _ = c.flush();
    std::thread::sleep(Duration::from_millis(100));
    reset(c);
}

/// What the rewriter leaves where it neutralized the page's inline Google tag set-up.
const NEUTRALIZED: &str = r#"data-consent-category="analytics""#;

#[test]
fn reset_mid_rewritten_page_cuts_the_body_and_is_counted() {
    // The rewrite drops the origin's `Content-Length` (the page's length changes), so the proxy
    // must frame the page itself: close-delimited, a page cut by the origin would look whole.
    let p = start(reset_mid_rewritten_page);
    let ex = exchange(&p, "/");
    assert_cut(&ex);
    if ex.status == 200 {
        let body = String::from_utf8_lossy(&ex.body);
        assert!(
            body.contains(NEUTRALIZED),
            "the page was not rewritten: {body}"
        );
    }
    expect_counted(&p, ERRORS, "");
}

/// A chunked body (the framing of most dynamic pages): one 100-byte chunk, then silence.
fn stall_mid_chunked_body(c: &mut TcpStream) {
    let _ = c.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{FBP}{SESSION}Transfer-Encoding: chunked\r\n\r\n64\r\n{}\r\n",
            "x".repeat(100)
        )
        .as_bytes(),
    );
    let _ = c.flush();
    std::thread::sleep(Duration::from_secs(15));
}

#[test]
fn stall_mid_chunked_body_cuts_the_body_and_is_counted() {
    let p = start(stall_mid_chunked_body);
    let ex = exchange(&p, "/");
    assert_cut(&ex);
    expect_counted(&p, TIMEOUTS, "phase=\"read\"");
}

// The same faults with the client speaking HTTP/2 over TLS to the proxy (the origin stays
// HTTP/1.x). Before the response head went out, the answer is the same error status. After it,
// HTTP/2 has no "close the connection" to show a cut: the proxy must end the stream with
// `RST_STREAM` rather than a clean `END_STREAM`, which curl reports as exit code 92; a clean end
// would hand the client a short body as if it were whole.

fn start_h2(fault: Fault) -> TlsProxy {
    TlsProxy::start(&site(faulty_origin(fault)))
}

/// One GET (no consent cookie) over HTTP/2.
fn exchange_h2(tls: &TlsProxy) -> H2Response {
    tls.get("/", &[])
}

/// Bounded time, HTTP/2, no marketing cookie in anything curl printed (every head, interim ones
/// included, and the body).
#[track_caller]
fn h2_common_checks(r: &H2Response) {
    assert!(
        r.elapsed < BOUND,
        "the client waited {:?} (bound {BOUND:?}): {r:?}",
        r.elapsed
    );
    assert!(
        r.final_head().starts_with("HTTP/2 "),
        "not an HTTP/2 response: {r:?}"
    );
    let text = String::from_utf8_lossy(&r.raw);
    assert!(
        !text.contains("_fbp"),
        "a marketing cookie reached a client without consent:\n{text}"
    );
}

/// An error status, on a stream that ended cleanly.
#[track_caller]
fn assert_h2_error(r: &H2Response, statuses: &[u16]) {
    h2_common_checks(r);
    assert!(
        statuses.contains(&r.status),
        "expected one of {statuses:?}, got {}: {r:?}",
        r.status
    );
    assert_eq!(r.exit, 0, "the error answer itself was cut: {r:?}");
}

/// The head went out, then the stream was reset: the client knows the body is not whole
/// (`announced`: the origin's body length).
#[track_caller]
fn assert_h2_cut(r: &H2Response, announced: usize) {
    h2_common_checks(r);
    if (r.status == 502 || r.status == 504) && r.exit == 0 {
        return; // failed before the head went out: an error answer is as good
    }
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.exit,
        CURL_STREAM_RESET,
        "a cut origin body did not end with RST_STREAM (curl exit {}, {} body bytes): {}",
        r.exit,
        r.body.len(),
        r.stderr
    );
    assert!(r.body.len() < announced, "{r:?}");
}

/// A complete `200` on a stream that ended cleanly, with the necessary cookie kept.
#[track_caller]
fn assert_h2_complete(r: &H2Response, body: &[u8]) {
    h2_common_checks(r);
    assert_eq!((r.status, r.exit), (200, 0), "{r:?}");
    assert!(
        r.body == body,
        "body differs ({} bytes): {r:?}",
        r.body.len()
    );
    if let Some(len) = r.header("content-length") {
        assert_eq!(len, body.len().to_string(), "{r:?}");
    }
}

#[test]
fn h2_refused_connection_is_a_counted_502() {
    let closed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let tls = TlsProxy::start(&site(closed));
    assert_h2_error(&exchange_h2(&tls), &[502]);
    expect_counted(&tls.proxy, ERRORS, "error=\"ConnectRefused\"");
}

#[test]
fn h2_reset_mid_headers_is_a_counted_502() {
    let tls = start_h2(reset_mid_headers);
    assert_h2_error(&exchange_h2(&tls), &[502]);
    expect_counted(&tls.proxy, ERRORS, "");
}

#[test]
fn h2_reset_mid_body_resets_the_stream_and_is_counted() {
    let tls = start_h2(reset_mid_body);
    assert_h2_cut(&exchange_h2(&tls), 1000);
    expect_counted(&tls.proxy, ERRORS, "");
}

#[test]
fn h2_stall_before_headers_is_a_counted_504() {
    let tls = start_h2(stall_before_headers);
    assert_h2_error(&exchange_h2(&tls), &[504]);
    expect_counted(&tls.proxy, TIMEOUTS, "phase=\"read\"");
    expect_counted(&tls.proxy, ERRORS, "");
}

#[test]
fn h2_stall_mid_body_resets_the_stream_and_is_counted() {
    let tls = start_h2(stall_mid_body);
    assert_h2_cut(&exchange_h2(&tls), 1000);
    expect_counted(&tls.proxy, TIMEOUTS, "phase=\"read\"");
}

#[test]
fn h2_garbage_response_is_a_counted_502() {
    let tls = start_h2(garbage);
    assert_h2_error(&exchange_h2(&tls), &[502]);
    expect_counted(&tls.proxy, ERRORS, "");
}

#[test]
fn h2_content_length_with_transfer_encoding_is_refused_or_framed_once() {
    let tls = start_h2(content_length_and_chunked);
    let r = exchange_h2(&tls);
    if r.status == 502 {
        assert_h2_error(&r, &[502]);
        expect_counted(&tls.proxy, ERRORS, "");
        return;
    }
    // HTTP/2 frames by DATA and END_STREAM; a `content-length` may only repeat the real length
    // (RFC 9113 8.1.1), never the origin's stale 100.
    assert_h2_complete(&r, b"hello");
    assert!(r.header("transfer-encoding").is_none(), "{r:?}");
}

#[test]
fn h2_interim_1xx_responses_carry_no_marketing_cookie_and_the_final_one_arrives() {
    let tls = start_h2(interim_then_final);
    let r = exchange_h2(&tls);
    assert_h2_complete(&r, b"hello");
    assert!(
        r.header_all("set-cookie")
            .iter()
            .any(|c| c.starts_with("SESSIONID=s3ss10n")),
        "{r:?}"
    );
}

#[test]
fn h2_close_delimited_http10_body_is_delivered_complete() {
    let tls = start_h2(http10_close_delimited);
    let r = exchange_h2(&tls);
    assert_h2_complete(&r, &http10_body());
    assert!(
        r.header_all("set-cookie")
            .iter()
            .any(|c| c.starts_with("SESSIONID=s3ss10n")),
        "{r:?}"
    );
}

#[test]
fn h2_reset_mid_rewritten_page_resets_the_stream_and_is_counted() {
    let tls = start_h2(reset_mid_rewritten_page);
    let r = exchange_h2(&tls);
    assert_h2_cut(&r, tracker_page().len());
    // A counted 502 before the head went out carries no page (as over HTTP/1.1).
    if r.status == 200 {
        assert!(
            String::from_utf8_lossy(&r.body).contains(NEUTRALIZED),
            "the page was not rewritten: {r:?}"
        );
    }
    expect_counted(&tls.proxy, ERRORS, "");
}

#[test]
fn h2_stall_mid_chunked_body_resets_the_stream_and_is_counted() {
    let tls = start_h2(stall_mid_chunked_body);
    assert_h2_cut(&exchange_h2(&tls), 1000);
    expect_counted(&tls.proxy, TIMEOUTS, "phase=\"read\"");
}
