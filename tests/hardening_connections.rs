//! Issue 8, items 3, 4 and 7: one client connection must not stall or bloat the proxy.
//! Every finding of the issue is a test here, on raw sockets, through the real binary and real
//! origins on loopback.
//!
//! Scaling: the issue measured nginx-like defaults of 60 s (connect, read, send, header) and
//! 75 s (keep-alive). Waiting that long would make the suite take minutes, so the tests that
//! time a deadline configure it in milliseconds (300 ms to 1.2 s) and assert it fires no earlier
//! than 90 % of the configured value and no later than the configured value plus a 2 s margin
//! (a loaded 2-core CI machine). Size limits are tested at their real defaults (32 KiB header,
//! 100 header lines, 8 KiB target); the connection cap is scaled from tens of thousands to 2.

mod common;
use common::*;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn ok_origin() -> Origin {
    Origin::start(|req| {
        response(
            "200 OK",
            &[("Content-Type", "text/plain")],
            format!("{} {}", req.method, req.path).as_bytes(),
        )
    })
}

fn site(upstream: impl std::fmt::Display, extra: &str) -> String {
    format!("[[site]]\nname = \"s\"\nhosts = [\"*\"]\nupstreams = [\"{upstream}\"]\nmode = \"off\"\n{extra}\n")
}

fn connect(p: &Proxy) -> TcpStream {
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until the proxy closes the connection (or the read timeout); returns what came.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn status_of(bytes: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(bytes);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Asserts that `elapsed` is when a deadline of `configured` fires.
#[track_caller]
fn assert_fired_at(what: &str, elapsed: Duration, configured: Duration) {
    let low = configured.mul_f64(0.9);
    let high = configured + Duration::from_secs(2);
    assert!(
        elapsed >= low && elapsed <= high,
        "{what}: fired after {elapsed:?}, configured {configured:?}"
    );
}

// ---- Item 3: timeouts ----

#[test]
fn a_header_trickled_byte_by_byte_gets_408_at_client_header_timeout() {
    let o = ok_origin();
    let p = Proxy::start_with(&site(o.addr, ""), "client_header_timeout_ms = 1000");
    let mut s = connect(&p);
    let started = Instant::now();
    let trickle = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ";
    // One byte every 100 ms: each read is quick, only the whole header is late.
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for b in trickle
            .iter()
            .chain(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter())
        {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let got = read_to_close(&mut s);
    let elapsed = started.elapsed();
    assert_eq!(status_of(&got), 408, "{}", String::from_utf8_lossy(&got));
    assert_fired_at(
        "client_header_timeout",
        elapsed,
        Duration::from_millis(1000),
    );
    sender.join().unwrap();
    assert!(o.received().is_empty());
    p.expect_metric(
        "consentgate_client_timeouts_total",
        &[("phase", "header")],
        1.0,
    );
}

#[test]
fn a_connection_that_sends_nothing_is_closed_at_client_header_timeout() {
    let o = ok_origin();
    let p = Proxy::start_with(&site(o.addr, ""), "client_header_timeout_ms = 800");
    let mut s = connect(&p);
    let started = Instant::now();
    let got = read_to_close(&mut s);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert_fired_at(
        "header timeout, no byte",
        started.elapsed(),
        Duration::from_millis(800),
    );
}

#[test]
fn an_idle_kept_alive_connection_is_closed_at_keepalive_timeout() {
    let o = ok_origin();
    let p = Proxy::start_with(
        &site(o.addr, ""),
        "keepalive_timeout_ms = 1200\nclient_header_timeout_ms = 5000",
    );
    let s = connect(&p);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let first = read_response(&mut r, false).unwrap();
    assert_eq!(first.status, 200);
    let idle_from = Instant::now();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert_fired_at(
        "keepalive_timeout",
        idle_from.elapsed(),
        Duration::from_millis(1200),
    );
    p.expect_metric(
        "consentgate_client_timeouts_total",
        &[("phase", "keepalive")],
        1.0,
    );
}

#[test]
fn a_half_sent_second_request_on_a_kept_alive_connection_gets_408() {
    let o = ok_origin();
    let p = Proxy::start_with(
        &site(o.addr, ""),
        "client_header_timeout_ms = 1000\nkeepalive_timeout_ms = 10000",
    );
    let s = connect(&p);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    w.write_all(b"GET /two HTTP/1.1\r\nHos").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert_eq!(status_of(&rest), 408, "{}", String::from_utf8_lossy(&rest));
    // Measured from the first byte of the second request, not from the keep-alive start.
    assert_fired_at(
        "header timeout of a second request",
        started.elapsed(),
        Duration::from_millis(1000),
    );
    assert_eq!(o.received().len(), 1);
}

#[test]
fn a_stalled_request_body_is_cut_at_client_body_timeout() {
    let o = ok_origin();
    let p = Proxy::start_with(&site(o.addr, ""), "client_body_timeout_ms = 1000");
    let mut s = connect(&p);
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly part")
        .unwrap();
    let started = Instant::now();
    let got = read_to_close(&mut s);
    assert_fired_at(
        "client_body_timeout",
        started.elapsed(),
        Duration::from_millis(1000),
    );
    let status = status_of(&got);
    assert!(
        status == 408 || got.is_empty(),
        "{}",
        String::from_utf8_lossy(&got)
    );
    p.expect_metric(
        "consentgate_client_timeouts_total",
        &[("phase", "body")],
        1.0,
    );
}

/// An origin that reads a request and never answers; counts what it accepted.
fn silent_origin() -> (std::net::SocketAddr, Arc<Mutex<Vec<TcpStream>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            h.lock().unwrap().push(c);
        }
    });
    (addr, held)
}

#[test]
fn a_stalled_origin_gives_504_within_read_ms_counted_by_upstream() {
    let (addr, held) = silent_origin();
    let p = Proxy::start(&site(addr, "[site.timeouts]\nread_ms = 700"));
    let started = Instant::now();
    let r = p.get("/slow", &[]);
    assert_eq!(r.status, 504);
    assert_fired_at("read_ms", started.elapsed(), Duration::from_millis(700));
    assert_eq!(
        held.lock().unwrap().len(),
        1,
        "no retry against the stalled origin"
    );
    p.expect_metric(
        "consentgate_upstream_timeouts_total",
        &[
            ("site", "s"),
            ("upstream", &addr.to_string()),
            ("phase", "read"),
        ],
        1.0,
    );
}

/// A listener whose accept queue is full: a connect to it hangs in SYN retries.
fn full_accept_queue() -> (std::net::SocketAddr, Vec<TcpStream>, i32) {
    // SAFETY: plain socket calls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len),
            0
        );
        assert_eq!(libc::listen(fd, 0), 0);
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut glen = len;
        libc::getsockname(fd, &mut got as *mut _ as *mut libc::sockaddr, &mut glen);
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", u16::from_be(got.sin_port))
            .parse()
            .unwrap();
        // Fill the queue (backlog 0 admits one); never accept.
        let mut fill = Vec::new();
        for _ in 0..2 {
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                fill.push(s);
            }
        }
        (addr, fill, fd)
    }
}

#[test]
fn an_origin_whose_accept_queue_is_full_gives_504_within_connect_ms() {
    let (addr, _fill, fd) = full_accept_queue();
    let p = Proxy::start(&site(addr, "[site.timeouts]\nconnect_ms = 600"));
    let started = Instant::now();
    let r = p.get("/", &[]);
    let elapsed = started.elapsed();
    // SAFETY: closing the listener created above.
    unsafe { libc::close(fd) };
    assert_eq!(r.status, 504);
    assert_fired_at("connect_ms", elapsed, Duration::from_millis(600));
    p.expect_metric(
        "consentgate_upstream_timeouts_total",
        &[("site", "s"), ("phase", "connect")],
        1.0,
    );
}

#[test]
fn an_origin_that_stops_reading_a_request_body_gives_504_after_write_ms() {
    // The origin reads the request header and then nothing: once the socket buffers between
    // the proxy and it are full, the proxy's writes wait. After `write_ms` pingora still reads
    // for an early answer from the origin (one that refuses an upload before reading it), for
    // up to `read_ms`: the client has its 504 within the sum.
    let (addr, held) = silent_origin();
    let p = Proxy::start_with(
        &site(addr, "[site.timeouts]\nwrite_ms = 800\nread_ms = 800"),
        "client_body_timeout_ms = 30000",
    );
    let mut s = connect(&p);
    let total = 256 * 1024 * 1024;
    s.write_all(
        format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {total}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut w = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < total && w.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
    });
    let started = Instant::now();
    let got = read_to_close(&mut s);
    let elapsed = started.elapsed();
    assert_eq!(status_of(&got), 504, "after {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(720)
            && elapsed <= Duration::from_millis(1600) + Duration::from_secs(3),
        "write_ms 800 + read_ms 800: answered after {elapsed:?}"
    );
    drop(s);
    sender.join().unwrap();
    assert_eq!(held.lock().unwrap().len(), 1);
    eventually("the timeout to be counted", || {
        p.metric(
            "consentgate_upstream_timeouts_total",
            &[("site", "s"), ("phase", "write")],
        ) + p.metric(
            "consentgate_upstream_timeouts_total",
            &[("site", "s"), ("phase", "read")],
        ) >= 1.0
    });
}

#[test]
fn a_client_that_never_reads_is_cut_at_send_timeout_and_frees_the_origin() {
    // An origin that streams without end and notes when its peer (the proxy) goes away.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let gone = Arc::new(Mutex::new(None::<Instant>));
    let g = gone.clone();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunk = format!("{:x}\r\n{}\r\n", 65536, "x".repeat(65536));
        while c.write_all(chunk.as_bytes()).is_ok() {}
        *g.lock().unwrap() = Some(Instant::now());
    });
    let p = Proxy::start_with(&site(addr, ""), "send_timeout_ms = 1000");
    let mut s = connect(&p);
    s.write_all(b"GET /endless HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    // Never read. The proxy's writes block once the socket buffers are full, then time out.
    eventually_within(
        Duration::from_secs(15),
        "the origin connection to be closed",
        || gone.lock().unwrap().is_some(),
    );
    let closed = gone.lock().unwrap().unwrap() - started;
    assert!(
        closed >= Duration::from_millis(900) && closed <= Duration::from_secs(8),
        "origin freed after {closed:?} (send_timeout 1 s, plus the time to fill the buffers)"
    );
    p.expect_metric(
        "consentgate_client_timeouts_total",
        &[("phase", "send")],
        1.0,
    );
}

fn eventually_within(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_idle_pooled_origin_connection_is_closed_at_idle_ms() {
    // An HTTP/1.1 origin that answers one request per connection with keep-alive and notes
    // when the proxy closes the idle connection.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let closed = Arc::new(Mutex::new(None::<Instant>));
    let c2 = closed.clone();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        // The next read ends when the proxy closes its pooled connection.
        let _ = c.read(&mut buf);
        *c2.lock().unwrap() = Some(Instant::now());
    });
    let p = Proxy::start(&site(addr, "[site.timeouts]\nidle_ms = 1000"));
    assert_eq!(p.get("/", &[]).status, 200);
    let pooled_from = Instant::now();
    eventually_within(
        Duration::from_secs(10),
        "the pooled connection to close",
        || closed.lock().unwrap().is_some(),
    );
    let idle = closed.lock().unwrap().unwrap() - pooled_from;
    assert_fired_at("idle_ms", idle, Duration::from_millis(1000));
}

// ---- Item 4: memory per connection (limits) ----

#[test]
fn a_64_kib_header_block_gets_431_at_the_default_32_kib_limit() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    let mut s = connect(&p);
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..64 {
        req.extend_from_slice(format!("X-Pad-{i:02}: {}\r\n", "p".repeat(1024)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    assert!(req.len() >= 64 * 1024);
    let _ = s.write_all(&req);
    let got = read_to_close(&mut s);
    assert_eq!(status_of(&got), 431, "{}", String::from_utf8_lossy(&got));
    assert!(o.received().is_empty());
    p.expect_metric(
        "consentgate_client_refusals_total",
        &[("reason", "header_too_large")],
        1.0,
    );
}

#[test]
fn an_incomplete_header_past_the_limit_gets_431_without_waiting_for_its_end() {
    // The 1 MB-per-connection buffering: the header never ends, only grows.
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    let mut s = connect(&p);
    let started = Instant::now();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n");
    let _ = s.write_all(format!("X-Pad: {}", "p".repeat(40 * 1024)).as_bytes());
    let got = read_to_close(&mut s);
    assert_eq!(status_of(&got), 431, "{}", String::from_utf8_lossy(&got));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_header_just_under_the_limit_is_served() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    let mut s = connect(&p);
    let mut req = b"GET /under HTTP/1.1\r\nHost: a\r\nConnection: close\r\n".to_vec();
    for i in 0..30 {
        req.extend_from_slice(format!("X-Pad-{i:02}: {}\r\n", "p".repeat(1000)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    assert!(req.len() < 32 * 1024);
    s.write_all(&req).unwrap();
    assert_eq!(status_of(&read_to_close(&mut s)), 200);
}

#[test]
fn more_header_lines_than_the_limit_get_431() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    let mut s = connect(&p);
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..100 {
        req.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    assert_eq!(status_of(&read_to_close(&mut s)), 431);
    p.expect_metric(
        "consentgate_client_refusals_total",
        &[("reason", "too_many_headers")],
        1.0,
    );
}

#[test]
fn a_request_target_longer_than_the_limit_gets_414() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    let mut s = connect(&p);
    let req = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(9000));
    s.write_all(req.as_bytes()).unwrap();
    assert_eq!(status_of(&read_to_close(&mut s)), 414);
    assert!(o.received().is_empty());
}

#[test]
fn header_limits_are_configurable() {
    let o = ok_origin();
    let p = Proxy::start_with(
        &site(o.addr, ""),
        "max_request_header_bytes = 2048\nmax_uri_bytes = 100\nmax_request_headers = 5",
    );
    let send = |req: String| {
        let mut s = connect(&p);
        s.write_all(req.as_bytes()).unwrap();
        status_of(&read_to_close(&mut s))
    };
    let close = "Connection: close\r\n";
    assert_eq!(
        send(format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n{close}\r\n",
            "u".repeat(99)
        )),
        200
    );
    assert_eq!(
        send(format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "u".repeat(100)
        )),
        414
    );
    assert_eq!(
        send(format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "h".repeat(2100)
        )),
        431
    );
    // Five lines: Host, Connection and three more.
    assert_eq!(
        send(format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{close}{}\r\n",
            "X: y\r\n".repeat(3)
        )),
        200
    );
    assert_eq!(
        send(format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
            "X: y\r\n".repeat(5)
        )),
        431
    );
}

#[test]
fn past_max_connections_new_connections_wait_and_served_ones_are_unaffected() {
    // An origin that holds its answers until released: two requests in progress take both slots.
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r2 = release.clone();
    let o = Origin::start(move |req| {
        while !r2.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        response("200 OK", &[], req.path.as_bytes())
    });
    let p = Proxy::start_with(&site(o.addr, ""), "max_connections = 2");
    let mut busy = Vec::new();
    for path in ["/one", "/two"] {
        let s = connect(&p);
        let mut w = s.try_clone().unwrap();
        w.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        busy.push(BufReader::new(s));
    }
    eventually("both requests at the origin", || o.received().len() == 2);
    // A third connection is queued by the kernel: connected, but not served, for as long as
    // the others are busy (well past the one-second reclaim age: busy ones are not reclaimed).
    let mut third = connect(&p);
    third
        .write_all(b"GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    let mut buf = [0u8; 64];
    let early = third.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "the third connection was answered while both slots were busy: {early:?}"
    );
    // The served connections complete as if nothing happened.
    release.store(true, std::sync::atomic::Ordering::SeqCst);
    for (r, path) in busy.iter_mut().zip(["/one", "/two"]) {
        let resp = read_response(r, false).unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (200, path.as_bytes()));
    }
    // Then the waiting one is served (a finished connection closed or was reclaimed while idle).
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let got = read_to_close(&mut third);
    assert_eq!(status_of(&got), 200, "{}", String::from_utf8_lossy(&got));
    assert!(p.metric("consentgate_connection_limit_waits_total", &[]) >= 1.0);
}

#[test]
fn at_max_connections_stalled_headers_give_their_slots_to_a_normal_request() {
    // Slowloris scaled down: every slot held by a connection that sent half a header.
    let o = ok_origin();
    let p = Proxy::start_with(&site(o.addr, ""), "max_connections = 3");
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&p);
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-a: b\r\n")
            .unwrap();
        slow.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let r = p.get("/normal", &[]);
    assert_eq!(r.status, 200);
    // Reclaiming takes a stalled header that is at least a second old.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A reclaimed stalled header is answered 408.
    let got = read_to_close(&mut slow[0]);
    assert_eq!(status_of(&got), 408, "{}", String::from_utf8_lossy(&got));
    assert!(
        p.metric(
            "consentgate_connections_reclaimed_total",
            &[("phase", "header")]
        ) >= 1.0
    );
}

// ---- Item 7: request target and framing ----

fn exchange(p: &Proxy, req: &[u8]) -> Vec<u8> {
    let mut s = connect(p);
    s.write_all(req).unwrap();
    read_to_close(&mut s)
}

#[test]
fn http_1_1_without_host_gets_400() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    assert_eq!(status_of(&exchange(&p, b"GET / HTTP/1.1\r\n\r\n")), 400);
    assert!(o.received().is_empty());
    p.expect_metric(
        "consentgate_client_refusals_total",
        &[("reason", "missing_host")],
        1.0,
    );
}

#[test]
fn an_invalid_host_gets_400() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    let got = exchange(&p, b"GET / HTTP/1.1\r\nHost: a.example b\r\n\r\n");
    assert_eq!(status_of(&got), 400);
    assert!(o.received().is_empty());
}

#[test]
fn http_1_0_without_host_reaches_the_origin_with_a_host() {
    let o = ok_origin();
    let p = Proxy::start(&format!(
        "[[site]]\nname = \"named\"\nhosts = [\"*\", \"www.example.org\"]\nupstreams = [\"{}\"]\nmode = \"off\"\n",
        o.addr
    ));
    let got = exchange(&p, b"GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(status_of(&got), 200, "{}", String::from_utf8_lossy(&got));
    assert_eq!(o.last().header_strings("host"), vec!["www.example.org"]);
}

#[test]
fn an_absolute_form_target_reaches_the_origin_in_origin_form() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    let got = exchange(
        &p,
        b"GET http://www.example.org/pub/x.html?q=1 HTTP/1.1\r\nHost: www.example.org\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&got), 200);
    let seen = o.last();
    assert_eq!(seen.path, "/pub/x.html?q=1");
    assert_eq!(seen.header_strings("host"), vec!["www.example.org"]);
}

#[test]
fn a_transfer_coding_other_than_chunked_gets_501() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    let got = exchange(
        &p,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(status_of(&got), 501);
    assert!(o.received().is_empty());
    p.expect_metric(
        "consentgate_client_refusals_total",
        &[("reason", "unsupported_transfer_coding")],
        1.0,
    );
}

#[test]
fn a_bare_lf_in_a_chunk_extension_gets_400_and_never_reaches_the_origin() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    // "Funky chunks" (2025): a lenient parser swallows the LF and sees other chunk boundaries.
    let got = exchange(
        &p,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;\nxx\r\n45\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(status_of(&got), 400, "{}", String::from_utf8_lossy(&got));
    assert!(o.received().iter().all(|r| r.path != "/smuggled"));
    p.expect_metric(
        "consentgate_client_refusals_total",
        &[("reason", "bad_chunk")],
        1.0,
    );
}

#[test]
fn a_well_formed_chunked_body_is_still_forwarded() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    // Wikipedia "Chunked transfer encoding" example body.
    let got = exchange(
        &p,
        b"POST /wiki HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n",
    );
    assert_eq!(status_of(&got), 200, "{}", String::from_utf8_lossy(&got));
    assert_eq!(o.last().path, "/wiki");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    let s = connect(&p);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(
        b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\nGET /third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let bodies: Vec<String> = (0..3)
        .map(|_| String::from_utf8(read_response(&mut r, false).unwrap().body).unwrap())
        .collect();
    assert_eq!(bodies, ["GET /first", "GET /second", "GET /third"]);
}

#[test]
fn an_upgrade_request_answered_without_101_closes_the_connection() {
    // The wire tracker stops following a connection at an `Upgrade` request (after a 101 it is
    // no longer HTTP). Answered without a 101, the connection must then serve nothing more:
    // a pipelined request behind it gets no answer, and no header deadline is left unenforced.
    let o = ok_origin();
    let p = Proxy::start(&site(o.addr, ""));
    let mut s = connect(&p);
    s.write_all(b"GET /other HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let got = read_to_close(&mut s);
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    assert!(o.received().iter().all(|r| r.path != "/next"));
}
