//! A reload builds the new configuration off the async workers (issue 9): while it compiles a
//! large blocklist, the proxy's one worker thread (`threads = 1`) and the admin listener's
//! thread keep answering. The oracle is an ordering, not a time: requests sent after the
//! `POST /reload` are answered before that POST is.
//!
//! The blocklist is generated (tens of thousands of rules, so building its engine takes far
//! longer than a request), so nothing outside this repository is needed.

mod common;

use common::*;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Rules in the generated list: with adblock-rust this takes seconds to compile in a debug
/// build and a few hundred milliseconds in a release one, against about a millisecond per
/// request.
const RULES: usize = 100_000;

/// Answers that must arrive while the reload is still unanswered. On code that builds on the
/// admin thread, at most the one or two sent before the build started get through.
const ANSWERS_DURING_RELOAD: usize = 5;

/// Network rules of the usual EasyList shapes: host anchors, paths, options.
fn big_list() -> String {
    let mut out = String::from("! Generated for tests/reload.rs\n");
    for i in 0..RULES {
        let rule = match i % 4 {
            0 => format!("||tracker-{i}.example^\n"),
            1 => format!("/pixel-{i}/collect?\n"),
            2 => format!("||cdn-{i}.example/tag.js$script,third-party\n"),
            _ => format!("||ads-{i}.example^$image,domain=~site-{i}.example\n"),
        };
        out.push_str(&rule);
    }
    out
}

/// A proxy whose site starts with a one-rule list; its configuration file then names the
/// large list, so the next reload has the slow build to do.
fn proxy_before_a_big_reload(origin: &Origin, dir: &TempDir) -> Proxy {
    let small = dir.0.join("small.txt");
    let big = dir.0.join("big.txt");
    std::fs::write(&small, "||start.example^\n").unwrap();
    std::fs::write(&big, big_list()).unwrap();
    let p = Proxy::start(&format!(
        "[[site]]\nname = \"r\"\nhosts = [\"*\"]\nupstreams = [\"{}\"]\n[[site.blocklist]]\ncategory = \"analytics\"\npath = \"{}\"\n",
        origin.addr,
        small.display()
    ));
    let text = std::fs::read_to_string(&p.config).unwrap();
    let text = text.replace(&small.display().to_string(), &big.display().to_string());
    std::fs::write(&p.config, text).unwrap();
    p
}

/// Sends `POST /reload` from another thread; the flag turns true once its answer has been read.
/// Returns after the request bytes are written.
fn start_reload(admin: SocketAddr) -> (Arc<AtomicBool>, std::thread::JoinHandle<RawResponse>) {
    let answered = Arc::new(AtomicBool::new(false));
    let (sent_tx, sent) = mpsc::channel();
    let flag = answered.clone();
    let handle = std::thread::spawn(move || {
        let mut s = TcpStream::connect(admin).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        s.write_all(
            format!(
                "POST /reload HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        sent_tx.send(()).unwrap();
        let r = read_response(&mut BufReader::new(s), false).expect("reload answer");
        flag.store(true, Ordering::SeqCst);
        r
    });
    sent.recv().unwrap();
    (answered, handle)
}

/// Sends `request` one after the other while the reload runs; returns how many were answered
/// (status 200) before the reload's answer had arrived, and the reload's answer.
fn answers_while_reloading(
    p: &Proxy,
    what: &str,
    request: impl Fn() -> RawResponse,
) -> (usize, RawResponse) {
    let (reload_answered, reload) = start_reload(p.admin);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut before = 0;
    while !reload_answered.load(Ordering::SeqCst) && Instant::now() < deadline {
        let r = request();
        assert_eq!(r.status, 200, "request during the reload");
        // Read after the answer: still false means this answer came first.
        if !reload_answered.load(Ordering::SeqCst) {
            before += 1;
        }
    }
    let reload = reload.join().unwrap();
    eprintln!("{before} {what} answered before the reload was");
    (before, reload)
}

fn check_reloaded(p: &Proxy, reload: &RawResponse) {
    assert_eq!(
        reload.status,
        200,
        "reload: {}",
        String::from_utf8_lossy(&reload.body)
    );
    // The large list is in force: one of its hosts is now answered by the proxy.
    let blocked = get(
        p.addr,
        "/beacon",
        &[
            ("Host", "tracker-4000.example"),
            ("Sec-Fetch-Dest", "empty"),
        ],
    );
    assert_eq!(blocked.status, 204, "a rule of the reloaded list blocks");
    p.expect_metric("consentgate_config_reloads_total", &[("result", "ok")], 1.0);
}

/// The proxy's only worker is not the one building: requests through the proxy are answered
/// while the reload is in progress.
#[test]
fn proxy_answers_while_a_reload_builds_a_large_blocklist() {
    let origin = Origin::start(|_| response("200 OK", &[], b"ok"));
    let dir = TempDir::new("reload-proxy");
    let p = proxy_before_a_big_reload(&origin, &dir);
    let (before, reload) = answers_while_reloading(&p, "proxy requests", || p.get("/", &[]));
    check_reloaded(&p, &reload);
    assert!(
        before >= ANSWERS_DURING_RELOAD,
        "only {before} proxy requests were answered before the reload finished"
    );
}

/// The admin listener runs on one thread of its own; the reload it was asked for does not
/// occupy that thread, so `/healthz` is answered while the reload is in progress.
#[test]
fn admin_answers_while_a_reload_builds_a_large_blocklist() {
    let origin = Origin::start(|_| response("200 OK", &[], b"ok"));
    let dir = TempDir::new("reload-admin");
    let p = proxy_before_a_big_reload(&origin, &dir);
    let (before, reload) =
        answers_while_reloading(&p, "/healthz requests", || admin_get(p.admin, "/healthz"));
    check_reloaded(&p, &reload);
    assert!(
        before >= ANSWERS_DURING_RELOAD,
        "only {before} /healthz requests were answered before the reload finished"
    );
}
