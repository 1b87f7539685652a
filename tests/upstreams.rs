//! Upstreams (issue 10): health checks and passive ejection with an origin killed under load,
//! sticky sessions by consistent hash on the session cookie, weights, the retry of a failed
//! connect. Real origins on loopback, the real binary, real HTTP clients.

mod common;

use common::{admin_get, eventually, free_port, send, Proxy};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An HTTP/1.1 origin that can be killed (listener closed, every open connection shut down,
/// like a crashed process) and restarted on the same port. It answers its own `name`; requests
/// other than the health check's are counted in `hits`.
struct KillableOrigin {
    addr: SocketAddr,
    name: &'static str,
    hits: Arc<AtomicUsize>,
    /// The `Host` of each health check request.
    check_hosts: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl KillableOrigin {
    fn start(name: &'static str) -> KillableOrigin {
        Self::start_on(
            "127.0.0.1:0".parse().unwrap(),
            name,
            Arc::default(),
            Arc::default(),
        )
    }

    fn start_on(
        addr: SocketAddr,
        name: &'static str,
        hits: Arc<AtomicUsize>,
        check_hosts: Arc<Mutex<Vec<String>>>,
    ) -> KillableOrigin {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, c, h, ch) = (
            stop.clone(),
            conns.clone(),
            hits.clone(),
            check_hosts.clone(),
        );
        let accept = std::thread::spawn(move || {
            while !s.load(SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        c.lock().unwrap().push(conn.try_clone().unwrap());
                        let (h, ch) = (h.clone(), ch.clone());
                        std::thread::spawn(move || serve(conn, name, h, ch));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        KillableOrigin {
            addr,
            name,
            hits,
            check_hosts,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    fn kill(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.accept.take() {
            t.join().unwrap();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    fn restart(&mut self) {
        let again = KillableOrigin::start_on(
            self.addr,
            self.name,
            self.hits.clone(),
            self.check_hosts.clone(),
        );
        *self = again;
    }

    fn hits(&self) -> usize {
        self.hits.load(SeqCst)
    }
}

impl Drop for KillableOrigin {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The name of an origin that reads requests and closes without answering.
const MUTE: &str = "mute";

fn serve(
    conn: TcpStream,
    name: &str,
    hits: Arc<AtomicUsize>,
    check_hosts: Arc<Mutex<Vec<String>>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0;
        let mut host = String::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                if n.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                } else if n.eq_ignore_ascii_case("host") {
                    host = v.trim().to_string();
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if path == "/healthz" {
            check_hosts.lock().unwrap().push(host);
        } else {
            hits.fetch_add(1, SeqCst);
        }
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{name}",
            name.len()
        );
        if name == MUTE {
            // Accepts and reads, never answers: the proxy's request or check fails.
            return;
        }
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn site(upstreams: &str, extra: &str) -> String {
    site_for("\"*\"", upstreams, extra)
}

fn site_for(hosts: &str, upstreams: &str, extra: &str) -> String {
    format!("[[site]]\nname = \"app\"\nhosts = [{hosts}]\nupstreams = [{upstreams}]\nmode = \"off\"\n{extra}\n")
}

fn status_upstreams(p: &Proxy) -> Vec<serde_json::Value> {
    let body = admin_get(p.admin, "/status").body;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["sites"][0]["upstreams"].as_array().unwrap().clone()
}

fn healthy_in_status(p: &Proxy, addr: SocketAddr) -> bool {
    status_upstreams(p)
        .iter()
        .find(|u| u["address"] == addr.to_string())
        .unwrap()["healthy"]
        .as_bool()
        .unwrap()
}

/// (a) An origin killed under load costs at most the requests in flight at the kill, none
/// after the health check noticed it; it gets no requests while dead and takes them again when
/// restarted on the same port.
#[test]
fn killed_upstream_costs_no_request_after_the_health_check_notices() {
    let a = KillableOrigin::start("a");
    let mut b = KillableOrigin::start("b");
    const INTERVAL_MS: u64 = 200;
    const TIMEOUT_MS: u64 = 200;
    let p = Proxy::start(&site_for(
        "\"*.app.test\", \"app.test\"",
        &format!("\"{}\", \"{}\"", a.addr, b.addr),
        &format!("[site.health_check]\npath = \"/healthz\"\ninterval_ms = {INTERVAL_MS}\ntimeout_ms = {TIMEOUT_MS}\nhealthy_threshold = 1\nunhealthy_threshold = 1\n"),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicUsize::new(0));
    // (when, ok) of every request.
    let results: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, in_flight, results, addr) =
                (stop.clone(), in_flight.clone(), results.clone(), p.addr);
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    in_flight.fetch_add(1, SeqCst);
                    let r = send(addr, "GET", "/page", &[("Host", "app.test")]);
                    in_flight.fetch_sub(1, SeqCst);
                    let ok = r.status == 200 && (r.body == b"a" || r.body == b"b");
                    results.lock().unwrap().push((Instant::now(), ok));
                }
            })
        })
        .collect();
    eventually("both origins serve", || a.hits() > 20 && b.hits() > 20);
    let in_flight_at_kill = in_flight.load(SeqCst);
    let killed_at = Instant::now();
    b.kill();
    // The check notices within one interval plus its timeout; the margin covers scheduling.
    let noticed = killed_at + Duration::from_millis(INTERVAL_MS + TIMEOUT_MS + 600);
    std::thread::sleep(noticed - Instant::now());
    let b_hits_when_noticed = b.hits();
    assert!(!healthy_in_status(&p, b.addr), "/status shows b unhealthy");
    let b_label = b.addr.to_string();
    eventually("the gauge shows b unhealthy", || {
        p.metric(
            "consentgate_upstream_healthy",
            &[("site", "app"), ("upstream", &b_label)],
        ) == 0.0
    });
    // Something listens on b's port again but never answers (the health check keeps failing):
    // it would see any request the proxy still sent to b.
    let mute = KillableOrigin::start_on(b.addr, MUTE, Arc::default(), Arc::default());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(mute.hits(), 0, "the unhealthy origin got requests");
    assert!(
        !mute.check_hosts.lock().unwrap().is_empty(),
        "the health check kept probing it"
    );
    drop(mute);
    b.restart();
    eventually("the restarted origin takes requests again", || {
        b.hits() > b_hits_when_noticed + 10
    });
    assert!(healthy_in_status(&p, b.addr));
    stop.store(true, SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let results = results.lock().unwrap();
    let failed_before = results
        .iter()
        .filter(|(t, ok)| !ok && *t >= killed_at && *t < noticed)
        .count();
    let failed_after = results
        .iter()
        .filter(|(t, ok)| !ok && *t >= noticed)
        .count();
    let failed_before_kill = results
        .iter()
        .filter(|(t, ok)| !ok && *t < killed_at)
        .count();
    eprintln!(
        "{} requests; in flight at the kill: {in_flight_at_kill}; failed before the kill: {failed_before_kill}, until noticed: {failed_before}, after: {failed_after}",
        results.len()
    );
    assert_eq!(failed_before_kill, 0);
    assert!(
        failed_before <= in_flight_at_kill,
        "{failed_before} failed requests > {in_flight_at_kill} in flight"
    );
    assert_eq!(failed_after, 0, "requests failed after the check noticed");
    // The checks asked for the site's first host name (not a wildcard).
    let hosts = a.check_hosts.lock().unwrap().clone();
    assert!(
        !hosts.is_empty() && hosts.iter().all(|h| h == "app.test"),
        "{hosts:?}"
    );
}

/// (b) Consistent hash on the session cookie: one SESSIONID always reaches the same origin,
/// different ones spread over both.
#[test]
fn consistent_hash_keeps_sessions_on_one_origin() {
    let a = KillableOrigin::start("a");
    let b = KillableOrigin::start("b");
    let p = Proxy::start(&site(
        &format!("\"{}\", \"{}\"", a.addr, b.addr),
        "lb = \"consistent-hash\"\nhash_cookie = \"SESSIONID\"",
    ));
    let mut seen = std::collections::HashSet::new();
    for s in 0..20 {
        let cookie = format!("theme=dark; SESSIONID=session-{s}; _ga=GA1.2.3");
        let first = p.get("/", &[("Cookie", &cookie)]).body;
        for _ in 0..10 {
            let again = p.get("/cart", &[("Cookie", &cookie)]).body;
            assert_eq!(again, first, "session-{s} moved to another origin");
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "20 sessions all on one origin");
}

/// (c) Weights 3:1 give about 3:1 of 400 requests.
#[test]
fn weights_split_traffic() {
    let a = KillableOrigin::start("a");
    let b = KillableOrigin::start("b");
    let p = Proxy::start(&site(
        &format!(
            "{{ addr = \"{}\", weight = 3 }}, {{ addr = \"{}\", weight = 1 }}",
            a.addr, b.addr
        ),
        "",
    ));
    for _ in 0..400 {
        assert_eq!(p.get("/", &[]).status, 200);
    }
    let (ha, hb) = (a.hits(), b.hits());
    assert_eq!(ha + hb, 400);
    assert!((260..=340).contains(&ha), "a got {ha} of 400, b {hb}");
    let st = status_upstreams(&p);
    assert_eq!(st[0]["weight"], 3);
    assert_eq!(st[1]["weight"], 1);
}

/// (d) A dead origin (port closed): a GET is retried on the other origin (no failure), a POST
/// is not resent (502), and the dead origin is ejected after its failed connect.
#[test]
fn failed_connect_is_retried_once_for_idempotent_requests() {
    let a = KillableOrigin::start("a");
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let p = Proxy::start(&site(&format!("\"{dead}\", \"{}\"", a.addr), ""));
    // Round-robin sends every other request to the dead origin until it is ejected.
    for _ in 0..10 {
        let r = p.get("/", &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"a"[..]));
    }
    assert!(!healthy_in_status(&p, dead), "the dead origin is ejected");
    // A fresh proxy, so the dead origin is not ejected yet: the POST reaches it first or second.
    let p = Proxy::start(&site(&format!("\"{dead}\", \"{}\"", a.addr), ""));
    let statuses: Vec<u16> = (0..2)
        .map(|_| send(p.addr, "POST", "/order", &[("Content-Length", "0")]).status)
        .collect();
    assert!(
        statuses.contains(&502),
        "a POST to the dead origin is not retried: {statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}

/// A TLS origin on loopback (rustls through pingora's re-exports, on a tokio runtime of its
/// own) with a certificate for `origin.test` signed by a CA generated here. It records the SNI
/// of each completed handshake.
struct TlsOrigin {
    addr: SocketAddr,
    snis: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

/// A CA and a leaf certificate for `origin.test`: (CA PEM, leaf DER, leaf key DER).
fn test_pki() -> (String, Vec<u8>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "consentgate test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["origin.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), leaf.der().to_vec(), leaf_key.serialize_der())
}

impl TlsOrigin {
    fn start(cert: Vec<u8>, key: Vec<u8>) -> TlsOrigin {
        use pingora::tls::{CertificateDer, PrivateKeyDer, ServerConfig, TlsAcceptor};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        pingora::tls::install_default_crypto_provider();
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::try_from(key).unwrap(),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let snis: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = snis.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().unwrap_or("").to_string();
                    seen.lock().unwrap().push(sni);
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let resp =
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntls";
                    let _ = tls.write_all(resp).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsOrigin {
            addr,
            snis,
            _rt: rt,
        }
    }
}

/// (e) `upstream_tls`: the origin is reached over TLS with the configured SNI, its certificate
/// verified against `upstream_ca`; with the system roots, or another name, it is refused (502).
#[test]
fn upstream_tls_verifies_the_origin_certificate() {
    let (ca_pem, cert, key) = test_pki();
    let origin = TlsOrigin::start(cert, key);
    let dir = common::TempDir::new("upstream-tls");
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let tls_site = |extra: &str| {
        site(
            &format!("\"{}\"", origin.addr),
            &format!("upstream_tls = true\n{extra}"),
        )
    };
    let p = Proxy::start(&tls_site(&format!(
        "upstream_sni = \"origin.test\"\nupstream_ca = \"{}\"",
        ca.display()
    )));
    let r = p.get("/", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"tls"[..]));
    assert_eq!(origin.snis.lock().unwrap().last().unwrap(), "origin.test");
    drop(p);
    // The system roots do not know the test CA.
    let p = Proxy::start(&tls_site("upstream_sni = \"origin.test\""));
    assert_eq!(p.get("/", &[]).status, 502);
    drop(p);
    // The certificate is for origin.test, not for the name asked.
    let p = Proxy::start(&tls_site(&format!(
        "upstream_sni = \"other.test\"\nupstream_ca = \"{}\"",
        ca.display()
    )));
    assert_eq!(p.get("/", &[]).status, 502);
}

/// Health checks follow a reload: an origin added by the reload is checked and ejected when
/// dead, one removed loses its `consentgate_upstream_healthy` series.
#[test]
fn health_checks_follow_a_reload() {
    let a = KillableOrigin::start("a");
    let b = KillableOrigin::start("b");
    let check = "[site.health_check]\npath = \"/healthz\"\ninterval_ms = 100\ntimeout_ms = 200\n";
    let p = Proxy::start(&site(&format!("\"{}\", \"{}\"", a.addr, b.addr), check));
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let text = std::fs::read_to_string(&p.config).unwrap().replace(
        &format!("\"{}\", \"{}\"", a.addr, b.addr),
        &format!("\"{}\", \"{dead}\"", a.addr),
    );
    std::fs::write(&p.config, text).unwrap();
    let (status, body) = p.reload();
    assert_eq!(status, 200, "{body}");
    eventually("the added dead origin is found unhealthy", || {
        !healthy_in_status(&p, dead)
    });
    let gauge = |addr: SocketAddr| {
        p.metric(
            "consentgate_upstream_healthy",
            &[("site", "app"), ("upstream", &addr.to_string())],
        )
    };
    eventually("the gauge follows", || gauge(dead) == 0.0);
    let metrics = p.metrics();
    assert!(
        !metrics.contains(&format!("upstream=\"{}\"", b.addr)),
        "the removed origin's series is gone"
    );
    assert_eq!(gauge(a.addr), 1.0);
    let b_hits = b.hits();
    for _ in 0..20 {
        let r = p.get("/", &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"a"[..]));
    }
    assert_eq!(b.hits(), b_hits);
}
