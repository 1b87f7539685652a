//! Graceful upgrade under load: a new process started with `--upgrade` takes the listening
//! sockets over from the old one on SIGQUIT, and no request is lost.
//!
//! The clients behave as real ones (browsers, curl) do: a request written to a kept-alive
//! connection that the server closed before answering anything is retried once on a new
//! connection (RFC 9112 section 9.3.1: the server may close an idle connection at any time, and a
//! client retries an idempotent request on a connection that closed without an answer). Every
//! other outcome that is not `200` with the origin's body counts as a failure: no answer on a
//! new connection, a partial or error answer, a refused connection, a timeout, and a retried
//! request the origin had received before the connection closed (the server had read it).

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: the machine is shared with other builds.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Tally {
    answered: u64,
    /// Answered by whoever served after the old process had exited.
    answered_after_exit: u64,
    /// Requests retried once after a kept-alive connection closed without an answer.
    retried: Vec<String>,
    failures: Vec<String>,
}

struct Load {
    tally: Mutex<Tally>,
    stop: AtomicBool,
    old_exited: AtomicBool,
    /// Failures say when they happened, to place them in the upgrade's timeline.
    started: Instant,
}

impl Load {
    fn answered(&self) {
        let mut t = self.tally.lock().unwrap();
        t.answered += 1;
        if self.old_exited.load(Ordering::SeqCst) {
            t.answered_after_exit += 1;
        }
    }

    fn failed(&self, what: String) {
        let at = self.started.elapsed().as_millis();
        self.tally
            .lock()
            .unwrap()
            .failures
            .push(format!("{what} (at {at} ms)"));
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(Conn {
        reader: BufReader::new(s.try_clone()?),
        writer: s,
    })
}

enum Outcome {
    /// 200 with the origin's body; `true` when the server asked to close the connection.
    Answered {
        close: bool,
    },
    /// The connection closed before a single byte of an answer.
    ClosedUnanswered,
    Failed(String),
}

fn exchange(c: &mut Conn, path: &str, keep_alive: bool) -> Outcome {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: {connection}\r\n\r\n");
    if let Err(e) = c.writer.write_all(req.as_bytes()) {
        return match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                Outcome::Failed(format!("{path}: write timed out"))
            }
            _ => Outcome::ClosedUnanswered,
        };
    }
    match c.reader.fill_buf() {
        Ok([]) => return Outcome::ClosedUnanswered,
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            return Outcome::Failed(format!("{path}: no answer within {IO_TIMEOUT:?}"))
        }
        Err(_) => return Outcome::ClosedUnanswered,
    }
    let r = match read_response(&mut c.reader, false) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("{path}: partial answer: {e}")),
    };
    let expected = format!("origin says {path}");
    if r.status != 200 || r.body != expected.as_bytes() {
        return Outcome::Failed(format!(
            "{path}: {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    let close = r
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case(b"close"));
    Outcome::Answered { close }
}

/// One request on a new connection; no retry: nothing was ever answered on it.
fn on_new_connection(addr: SocketAddr, path: &str, keep_alive: bool, load: &Load) -> Option<Conn> {
    let mut c = match connect(addr) {
        Ok(c) => c,
        Err(e) => {
            load.failed(format!("{path}: connect: {e}"));
            return None;
        }
    };
    match exchange(&mut c, path, keep_alive) {
        Outcome::Answered { close } => {
            load.answered();
            (!close && keep_alive).then_some(c)
        }
        Outcome::ClosedUnanswered => {
            load.failed(format!("{path}: a new connection closed without an answer"));
            None
        }
        Outcome::Failed(e) => {
            load.failed(e);
            None
        }
    }
}

/// A browser-like client: one kept-alive connection, reopened when the server closes it.
fn keep_alive_client(id: usize, addr: SocketAddr, load: Arc<Load>) {
    let mut conn: Option<Conn> = None;
    let mut i = 0u64;
    while !load.stop.load(Ordering::SeqCst) {
        i += 1;
        let path = format!("/keep-alive/{id}/{i}");
        conn = match conn.take() {
            None => on_new_connection(addr, &path, true, &load),
            Some(mut c) => match exchange(&mut c, &path, true) {
                Outcome::Answered { close } => {
                    load.answered();
                    (!close).then_some(c)
                }
                Outcome::ClosedUnanswered => {
                    load.tally.lock().unwrap().retried.push(path.clone());
                    on_new_connection(addr, &path, true, &load)
                }
                Outcome::Failed(e) => {
                    load.failed(e);
                    None
                }
            },
        };
        // Irregular pauses, so some requests meet a connection the moment it is closed.
        std::thread::sleep(Duration::from_millis(i * 7 % 23));
    }
}

/// A curl-like client: a new connection per request.
fn new_connection_client(id: usize, addr: SocketAddr, load: Arc<Load>) {
    let mut i = 0u64;
    while !load.stop.load(Ordering::SeqCst) {
        i += 1;
        on_new_connection(addr, &format!("/new/{id}/{i}"), false, &load);
        std::thread::sleep(Duration::from_millis(i * 5 % 13));
    }
}

fn wait_for(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_upgrade_under_load_loses_no_request() {
    let origin = Origin::start(|r| {
        let body = format!("origin says {}", r.path);
        response("200 OK", &[("Content-Type", "text/plain")], body.as_bytes())
    });
    let site = format!(
        "[[site]]\nname = \"a\"\nhosts = [\"*\"]\nupstreams = [\"{}\"]\n",
        origin.addr
    );
    let mut old = Proxy::start(&site);
    let load = Arc::new(Load {
        tally: Mutex::new(Tally::default()),
        stop: AtomicBool::new(false),
        old_exited: AtomicBool::new(false),
        started: Instant::now(),
    });
    let mut clients = Vec::new();
    for id in 0..3 {
        let load = load.clone();
        let addr = old.addr;
        clients.push(std::thread::spawn(move || {
            keep_alive_client(id, addr, load)
        }));
    }
    for id in 0..2 {
        let load = load.clone();
        let addr = old.addr;
        clients.push(std::thread::spawn(move || {
            new_connection_client(id, addr, load)
        }));
    }
    let answered = || load.tally.lock().unwrap().answered;
    wait_for("load on the old process", Duration::from_secs(20), || {
        answered() >= 200
    });

    // The upgrade: the new process waits on the upgrade socket, the old one sends its listening
    // sockets on SIGQUIT, stops accepting, finishes what it has and exits.
    let mut new = old.start_upgrade();
    wait_for(
        "the new process to wait on the upgrade socket",
        Duration::from_secs(20),
        || old.upgrade_sock().exists(),
    );
    let quit_at = load.started.elapsed().as_millis();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(old.child.id() as i32, libc::SIGQUIT) },
        0
    );
    let exited = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = old.child.try_wait().unwrap() {
            assert!(status.success(), "old process: {status}");
            break;
        }
        assert!(
            Instant::now() < exited,
            "the old process did not exit; log:\n{}",
            old.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    load.old_exited.store(true, Ordering::SeqCst);
    let exit_at = load.started.elapsed().as_millis();
    let after = || load.tally.lock().unwrap().answered_after_exit;
    wait_for(
        "answers after the old process exited",
        Duration::from_secs(20),
        || after() >= 50,
    );
    // The admin listener was handed over too.
    assert_eq!(admin_get(old.admin, "/healthz").status, 200);
    load.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }

    let mut t = load.tally.lock().unwrap();
    // A retry is only right if the server had read nothing of the request: one that reached
    // the origin on the closed connection too was lost mid-request, not closed idle.
    let received = origin.received();
    for path in t.retried.clone() {
        let times = received.iter().filter(|r| r.path == path).count();
        if times != 1 {
            t.failures.push(format!(
                "{path}: retried, and the origin received it {times} times"
            ));
        }
    }
    println!(
        "SIGQUIT at {quit_at} ms, old process exited at {exit_at} ms; \
         upgrade under load: {} answered ({} after the old process exited), {} retried after a \
         kept-alive connection closed unanswered, {} failed",
        t.answered,
        t.answered_after_exit,
        t.retried.len(),
        t.failures.len()
    );
    let old_log = old.log_text();
    assert!(
        old_log.contains("listener sockets sent"),
        "the old process did not hand its sockets over; log:\n{old_log}"
    );
    assert!(
        new.child.try_wait().unwrap().is_none(),
        "the new process exited; log:\n{}",
        new.log_text()
    );
    assert!(
        t.failures.is_empty(),
        "{} failed requests, e.g. {:?}\nold log:\n{old_log}\nnew log:\n{}",
        t.failures.len(),
        &t.failures[..t.failures.len().min(10)],
        new.log_text()
    );
}
