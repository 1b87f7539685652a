//! HTTPS and HTTP/2 through the real binary (issue 10, "TLS and HTTP/2 (downstream)"), driven
//! by a real client: curl (`--cacert`, `--resolve`, `--http2`, `-v` for the negotiated
//! protocol and the certificate served). The CA and the certificates are made by `openssl` at
//! test time, in a temporary directory. scripts/test installs curl and openssl.

mod common;
use common::*;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs a required tool; a missing one fails the test saying what to install.
fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed; run scripts/setup {name} (scripts/test does)"
    );
    Command::new(name)
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = tool("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and leaf certificates it signs (ECDSA P-256), in a temporary directory.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("pki");
        openssl(
            &dir.0,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=consentgate test CA",
            ],
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    fn ca(&self) -> String {
        self.path("ca.pem").display().to_string()
    }

    /// Issues `NAME.pem` / `NAME.key` for `subject` with the DNS names `sans`.
    fn issue(&self, name: &str, subject: &str, sans: &[&str]) -> (String, String) {
        let san: Vec<String> = sans.iter().map(|s| format!("DNS:{s}")).collect();
        std::fs::write(
            self.path(&format!("{name}.ext")),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
                san.join(",")
            ),
        )
        .unwrap();
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        openssl(
            &self.dir.0,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                subject,
            ],
        );
        openssl(
            &self.dir.0,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &format!("{}", free_port()),
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
        (
            self.path(&pem).display().to_string(),
            self.path(&key).display().to_string(),
        )
    }
}

impl Pki {
    /// A self-signed certificate for `old.test` that was valid for one day in January 2020
    /// (`openssl ca` is what sets dates in the past).
    fn expired(&self) -> (String, String) {
        let dir = &self.dir.0;
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "01\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\nx509_extensions = v3\n[p]\ncommonName = supplied\n[v3]\nsubjectAltName = DNS:old.test\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "old.key",
                "-out",
                "old.csr",
                "-subj",
                "/CN=old.test",
            ],
        );
        openssl(
            dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-selfsign",
                "-keyfile",
                "old.key",
                "-in",
                "old.csr",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
                "-out",
                "old.pem",
            ],
        );
        (
            self.path("old.pem").display().to_string(),
            self.path("old.key").display().to_string(),
        )
    }
}

/// `[proxy]` keys for a TLS listener on `port` with the given (cert, key) pairs.
fn tls_keys(port: u16, certs: &[(String, String)], extra: &str) -> String {
    let mut s = format!("listen_tls = [\"127.0.0.1:{port}\"]\n{extra}\n");
    for (cert, key) in certs {
        s.push_str(&format!(
            "[[proxy.certificate]]\ncert = \"{cert}\"\nkey = \"{key}\"\n"
        ));
    }
    s
}

/// What curl saw of one exchange.
struct Curl {
    ok: bool,
    /// `HTTP/2`, `HTTP/1.1`.
    version: String,
    status: u16,
    /// Response header fields (names lower case), in order.
    headers: Vec<(String, String)>,
    body: String,
    /// curl's `-v` trace.
    trace: String,
}

impl Curl {
    fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The served certificate's subject, from curl's trace (`*  subject: CN=a.test`).
    fn subject(&self) -> String {
        self.trace
            .lines()
            .find_map(|l| l.trim_start_matches('*').trim().strip_prefix("subject: "))
            .unwrap_or_else(|| panic!("no certificate subject in:\n{}", self.trace))
            .to_string()
    }
}

/// curl with `args`, then `url`; headers and body from `-i` on stdout, the trace on stderr.
fn curl(args: &[&str], url: &str) -> Curl {
    let out = tool("curl")
        .args(["-sS", "-v", "-i", "--max-time", "20"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let trace = String::from_utf8_lossy(&out.stderr).into_owned();
    let (head, body) = stdout.split_once("\r\n\r\n").unwrap_or((&stdout, ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("").to_string();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Curl {
        ok: out.status.success(),
        version,
        status,
        headers,
        body: body.to_string(),
        trace,
    }
}

/// An HTTPS request to `host` (resolved to the proxy's TLS port on loopback).
fn https(pki: &Pki, port: u16, host: &str, path: &str, args: &[&str]) -> Curl {
    let resolve = format!("{host}:{port}:127.0.0.1");
    let ca = pki.ca();
    let mut all = vec!["--cacert", &ca, "--resolve", &resolve];
    all.extend_from_slice(args);
    curl(&all, &format!("https://{host}:{port}{path}"))
}

fn wait_for_port(port: u16) {
    eventually("the TLS listener", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// The shop site in front of `origin` with a TLS listener on a free port serving `certs` (and
/// `extra` `[proxy]` keys), once the listener accepts; the proxy and its TLS port.
fn start_tls(origin: &Origin, certs: &[(String, String)], extra: &str) -> (Proxy, u16) {
    let port = free_port();
    let p = Proxy::start_with(&shop_site(origin.addr, ""), &tls_keys(port, certs, extra));
    wait_for_port(port);
    (p, port)
}

/// A test CA, an origin, and the proxy serving one certificate for `a.test` on a TLS port.
fn a_test_proxy(extra: &str) -> (Pki, Origin, Proxy, u16) {
    let pki = Pki::new();
    let a = pki.issue("a", "/CN=a.test", &["a.test"]);
    let o = hello_origin();
    let (p, port) = start_tls(&o, &[a], extra);
    (pki, o, p, port)
}

fn hello_origin() -> Origin {
    Origin::echo()
}

#[test]
fn https_picks_the_certificate_by_sni_and_the_first_is_the_default() {
    let pki = Pki::new();
    let a = pki.issue("a", "/CN=a.test", &["a.test", "*.a.test"]);
    let wild_b = pki.issue("wild-b", "/CN=wildcard.b.test", &["*.b.test"]);
    let b = pki.issue("b", "/CN=b.test", &["b.test", "www.b.test"]);
    let o = hello_origin();
    let (p, port) = start_tls(&o, &[a, wild_b, b], "");

    let r = https(&pki, port, "a.test", "/x", &[]);
    assert!(r.ok, "{}", r.trace);
    assert_eq!((r.status, r.body.as_str()), (200, "origin saw /x"));
    assert_eq!(r.subject(), "CN=a.test");
    // curl verified the chain against the test CA and the name against the SAN.
    assert!(r.trace.contains("SSL certificate verify ok"), "{}", r.trace);

    for (name, subject) in [
        ("b.test", "CN=b.test"),
        // A wildcard covers one label.
        ("www.a.test", "CN=a.test"),
        ("shop.b.test", "CN=wildcard.b.test"),
        // An exact name wins over a wildcard configured before it.
        ("www.b.test", "CN=b.test"),
    ] {
        let r = https(&pki, port, name, "/", &[]);
        assert!(r.ok, "{name}: {}", r.trace);
        assert_eq!(r.subject(), subject, "{name}");
    }

    // An unknown name gets the first certificate (which then fails curl's name check).
    let r = https(&pki, port, "unknown.test", "/", &[]);
    assert!(!r.ok);
    assert_eq!(r.subject(), "CN=a.test");
    let r = https(&pki, port, "x.y.a.test", "/", &["-k"]);
    assert_eq!(r.subject(), "CN=a.test");
    // No SNI at all (an IP address is never sent as SNI): the first certificate too.
    let r = curl(&["-k"], &format!("https://127.0.0.1:{port}/"));
    assert!(r.ok, "{}", r.trace);
    assert_eq!(r.subject(), "CN=a.test");

    // TLS 1.3 by default, TLS 1.2 when the client goes no higher.
    let r = https(&pki, port, "a.test", "/", &[]);
    assert!(r.trace.contains("using TLSv1.3"), "{}", r.trace);
    let r = https(&pki, port, "a.test", "/", &["--tls-max", "1.2"]);
    assert!(r.ok && r.trace.contains("using TLSv1.2"), "{}", r.trace);
    // The plain listener keeps serving.
    assert_eq!(p.get("/plain", &[("Host", "a.test")]).status, 200);
}

#[test]
fn tls_1_1_is_refused_by_the_server() {
    let (_pki, o, _p, port) = a_test_proxy("");
    // s_client offering one version only (security level 0 lets OpenSSL 3 offer TLS 1.1 at
    // all), everything else the same.
    let s_client = |version: &str| {
        tool("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "a.test",
                version,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = s_client("-tls1_2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server answers a TLS 1.1 hello with an alert (rustls sends handshake_failure, 40).
    let out = s_client("-tls1_1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("SSL alert number"), "{err}");
    assert!(o.received().is_empty());
}

/// The origin of the gating comparison: several `Set-Cookie` lines (one with a comma in its
/// `Expires`, the reason folding them breaks them), and a record of the request cookies.
fn cookie_origin() -> Origin {
    Origin::start(|_| {
        response(
            "200 OK",
            &[
                ("Set-Cookie", "SESSIONID=abc123; Path=/; HttpOnly"),
                (
                    "Set-Cookie",
                    "AWSALB=lb; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/",
                ),
                ("Set-Cookie", "_ga=GA1.2.111.222; Path=/; Max-Age=63072000"),
                ("Set-Cookie", "_fbp=fb.1.123.456; Path=/"),
                ("Set-Cookie", "mystery=42; Path=/"),
            ],
            b"hello\n",
        )
    })
}

#[test]
fn http2_gating_is_identical_to_http1() {
    let pki = Pki::new();
    let a = pki.issue("a", "/CN=shop.test", &["shop.test"]);
    let o = cookie_origin();
    let (_p, port) = start_tls(&o, &[a], "");

    // Consent for analytics only: `_ga` kept, `_fbp` (marketing) and `mystery` (unknown,
    // stripped on this site) not; `SESSIONID` is necessary.
    let cookies = "consent=analytics; SESSIONID=s1; _ga=g1; _fbp=f1; mystery=m1";
    let h1 = https(
        &pki,
        port,
        "shop.test",
        "/page",
        &["--http1.1", "-H", &format!("Cookie: {cookies}")],
    );
    assert!(h1.ok, "{}", h1.trace);
    assert_eq!((h1.version.as_str(), h1.status), ("HTTP/1.1", 200));
    let h1_origin = o.last().header_strings("cookie");

    // The same cookies as an HTTP/2 client may send them: in several `cookie` fields.
    let h2 = https(
        &pki,
        port,
        "shop.test",
        "/page",
        &[
            "--http2",
            "-H",
            "cookie: consent=analytics",
            "-H",
            "cookie: SESSIONID=s1; _ga=g1",
            "-H",
            "cookie: _fbp=f1",
            "-H",
            "cookie: mystery=m1",
        ],
    );
    assert!(h2.ok, "{}", h2.trace);
    assert!(
        h2.trace.contains("ALPN: server accepted h2"),
        "{}",
        h2.trace
    );
    assert_eq!((h2.version.as_str(), h2.status), ("HTTP/2", 200));
    let h2_origin = o.last().header_strings("cookie");

    // The origin (HTTP/1.1) got one Cookie line, the same both times, without the cookies
    // lacking consent.
    assert_eq!(h1_origin, ["consent=analytics; SESSIONID=s1; _ga=g1"]);
    assert_eq!(h2_origin, h1_origin);
    // The same Set-Cookie lines, each its own field, none merged.
    let kept = h1.header_all("set-cookie");
    assert!(
        kept.contains(&"SESSIONID=abc123; Path=/; HttpOnly".to_string()),
        "{kept:?}"
    );
    assert!(
        kept.contains(&"AWSALB=lb; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/".to_string()),
        "{kept:?}"
    );
    assert!(kept.iter().any(|l| l.starts_with("_ga=GA1")), "{kept:?}");
    assert!(
        !kept
            .iter()
            .any(|l| l.starts_with("_fbp=fb") || l.starts_with("mystery=42")),
        "{kept:?}"
    );
    assert_eq!(h2.header_all("set-cookie"), kept);

    // Nothing to strip: the split fields still reach the HTTP/1.1 origin as one line
    // (RFC 9113 8.2.3), as the HTTP/1.1 client's line does.
    let h1 = https(
        &pki,
        port,
        "shop.test",
        "/all-consented",
        &[
            "--http1.1",
            "-H",
            "Cookie: consent=analytics; SESSIONID=s1; _ga=g1",
        ],
    );
    assert_eq!(h1.status, 200, "{}", h1.trace);
    let h1_origin = o.last().header_strings("cookie");
    let h2 = https(
        &pki,
        port,
        "shop.test",
        "/all-consented",
        &[
            "--http2",
            "-H",
            "cookie: consent=analytics",
            "-H",
            "cookie: SESSIONID=s1",
            "-H",
            "cookie: _ga=g1",
        ],
    );
    assert_eq!((h2.version.as_str(), h2.status), ("HTTP/2", 200));
    assert_eq!(h1_origin, ["consent=analytics; SESSIONID=s1; _ga=g1"]);
    assert_eq!(o.last().header_strings("cookie"), h1_origin);

    // A blocked tracker request is answered on the HTTP/2 stream; the origin never sees it.
    let before = o.received().len();
    let r = https(
        &pki,
        port,
        "shop.test",
        "/g/collect?v=2&tid=G-1&en=page_view",
        &[
            "--http2",
            "-H",
            "Sec-Fetch-Dest: empty",
            "-H",
            "cookie: consent=marketing",
        ],
    );
    assert!(r.ok, "{}", r.trace);
    assert_eq!((r.version.as_str(), r.status), ("HTTP/2", 204));
    assert_eq!(
        o.received().len(),
        before,
        "the origin saw a blocked request"
    );
    // With consent, the same request over HTTP/2 reaches the origin.
    let r = https(
        &pki,
        port,
        "shop.test",
        "/g/collect?v=2",
        &[
            "--http2",
            "-H",
            "Sec-Fetch-Dest: empty",
            "-H",
            "cookie: consent=analytics",
        ],
    );
    assert_eq!((r.version.as_str(), r.status), ("HTTP/2", 200));
    assert_eq!(o.last().path, "/g/collect?v=2");
}

#[test]
fn http2_header_lists_are_bounded_by_max_request_header_bytes() {
    let (pki, o, _p, port) = a_test_proxy("max_request_header_bytes = 4096");
    let big = format!("x-big: {}", "y".repeat(8000));
    let r = https(&pki, port, "a.test", "/big", &["--http2", "-H", &big]);
    assert_ne!(r.status, 200, "{}", r.trace);
    assert!(o.received().iter().all(|r| r.path != "/big"));
    // A request within the limit on a new connection is served.
    let r = https(
        &pki,
        port,
        "a.test",
        "/small",
        &["--http2", "-H", "x-small: y"],
    );
    assert_eq!((r.version.as_str(), r.status), ("HTTP/2", 200));
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_dropped() {
    let (_pki, _o, p, port) = a_test_proxy("client_header_timeout_ms = 1000");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    // Closed by the server (end of stream or reset), not by our read timeout.
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the connection was not dropped: {other:?}"),
    }
    // A one second timeout; generous margin for a loaded machine.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    p.expect_metric(
        "consentgate_tls_handshake_failures_total",
        &[("reason", "timeout")],
        1.0,
    );
}

#[test]
fn certificates_are_reread_on_reload_and_a_bad_one_keeps_the_old() {
    let pki = Pki::new();
    let a = pki.issue("a", "/CN=a.test", &["a.test"]);
    let b = pki.issue("b", "/CN=b.test", &["b.test"]);
    let o = hello_origin();
    let (p, port) = start_tls(&o, &[a.clone(), b.clone()], "");
    assert_eq!(https(&pki, port, "b.test", "/", &[]).subject(), "CN=b.test");

    // Renewed in place: served only once the configuration is reloaded.
    pki.issue("b", "/O=renewed/CN=b.test", &["b.test"]);
    assert_eq!(https(&pki, port, "b.test", "/", &[]).subject(), "CN=b.test");
    assert_eq!(p.reload().0, 200);
    let r = https(&pki, port, "b.test", "/", &[]);
    assert!(r.ok, "{}", r.trace);
    assert_eq!(r.subject(), "O=renewed; CN=b.test");

    // A key that is not the certificate's: the reload fails, naming the file, and the
    // certificates loaded before keep being served.
    let config = std::fs::read_to_string(&p.config).unwrap();
    let bad = config.replacen(
        &format!("key = \"{}\"", a.1),
        &format!("key = \"{}\"", b.1),
        1,
    );
    assert_ne!(bad, config);
    std::fs::write(&p.config, &bad).unwrap();
    let (status, body) = p.reload();
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains(&b.1) && body.contains("does not belong to the certificate"),
        "{body}"
    );
    assert!(body.contains(&a.0), "{body}");
    let r = https(&pki, port, "a.test", "/", &[]);
    assert!(r.ok, "{}", r.trace);
    assert_eq!(r.subject(), "CN=a.test");
    assert_eq!(
        https(&pki, port, "b.test", "/", &[]).subject(),
        "O=renewed; CN=b.test"
    );

    // `check` says the same, with FILE:LINE of the key.
    let (code, _, err) = run_cli(&["check", "--config", &p.config.display().to_string()]);
    assert_eq!(code, 1);
    let line = bad
        .lines()
        .position(|l| l == format!("key = \"{}\"", b.1))
        .unwrap()
        + 1;
    let at = format!(
        "{}:{line}: certificate: the key in `{}` does not belong",
        p.config.display(),
        b.1
    );
    assert!(err.contains(&at), "{err}");

    // A certificate file that is not PEM: named too.
    std::fs::write(pki.path("garbage.pem"), "not a certificate\n").unwrap();
    let garbage = pki.path("garbage.pem").display().to_string();
    std::fs::write(&p.config, config.replacen(&a.0, &garbage, 1)).unwrap();
    let (status, body) = p.reload();
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains(&format!("`{garbage}` holds no usable certificate")),
        "{body}"
    );
    assert_eq!(https(&pki, port, "a.test", "/", &[]).subject(), "CN=a.test");
}

#[test]
fn h2c_prior_knowledge_when_enabled() {
    let o = hello_origin();
    let p = Proxy::start_with(&shop_site(o.addr, ""), "h2c = true");
    let url = format!("http://a.test:{}/h2c", p.addr.port());
    let resolve = format!("a.test:{}:127.0.0.1", p.addr.port());
    let r = curl(&["--http2-prior-knowledge", "--resolve", &resolve], &url);
    assert!(r.ok, "{}", r.trace);
    assert_eq!((r.version.as_str(), r.status), ("HTTP/2", 200));
    assert_eq!(r.body, "origin saw /h2c");
    // HTTP/1.1 on the same listener still works, short requests included.
    let r = curl(&["--http1.1", "--resolve", &resolve], &url);
    assert_eq!((r.version.as_str(), r.status), ("HTTP/1.1", 200));
    // A request shorter than the preface is not waited on.
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut s, b"GET /short HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut std::io::BufReader::new(s), false).unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"origin saw /short"[..])
    );

    // Off (the default): the preface is not HTTP/2 to the proxy.
    let p = Proxy::start(&shop_site(o.addr, ""));
    let url = format!("http://a.test:{}/h2c", p.addr.port());
    let resolve = format!("a.test:{}:127.0.0.1", p.addr.port());
    let r = curl(&["--http2-prior-knowledge", "--resolve", &resolve], &url);
    assert_ne!(r.version, "HTTP/2", "{}", r.trace);
}

#[test]
fn check_refuses_an_expired_certificate_naming_it() {
    let pki = Pki::new();
    let old = pki.expired();
    let good = pki.issue("a", "/CN=a.test", &["a.test"]);
    let dir = TempDir::new("expired");
    let config = dir.0.join("c.toml");
    let text = format!(
        "[proxy]\n{}{}",
        tls_keys(free_port(), &[good, old.clone()], ""),
        shop_site("127.0.0.1:1".parse().unwrap(), "")
    );
    std::fs::write(&config, &text).unwrap();
    let (code, _, err) = run_cli(&["check", "--config", &config.display().to_string()]);
    assert_eq!(code, 1, "{err}");
    let line = text
        .lines()
        .position(|l| l == format!("cert = \"{}\"", old.0))
        .unwrap()
        + 1;
    let want = format!(
        "{}:{line}: certificate: the certificate in `{}` expired on Jan  2 00:00:00 2020",
        config.display(),
        old.0
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn http2_connections_that_stall_or_idle_are_closed() {
    let o = hello_origin();
    let p = Proxy::start_with(
        &shop_site(o.addr, ""),
        "h2c = true\nclient_header_timeout_ms = 1000\nkeepalive_timeout_ms = 1000",
    );
    // Reads until the server closes; panics past 15 s.
    let closed_after = |mut s: TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return start.elapsed(),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return start.elapsed()
                }
                Err(e) => panic!("not closed: {e}"),
            }
        }
    };
    // Half the preface, then nothing: closed at the header timeout.
    let mut s = TcpStream::connect(p.addr).unwrap();
    std::io::Write::write_all(&mut s, b"PRI * HTTP/2.0\r\n").unwrap();
    assert!(closed_after(s) < Duration::from_secs(10));
    p.expect_metric(
        "consentgate_client_timeouts_total",
        &[("phase", "header")],
        1.0,
    );
    // The whole preface and an empty SETTINGS frame (RFC 9113 3.4, 6.5), then no stream:
    // closed at the keep-alive timeout.
    let mut s = TcpStream::connect(p.addr).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    )
    .unwrap();
    assert!(closed_after(s) < Duration::from_secs(10));
    p.expect_metric(
        "consentgate_client_timeouts_total",
        &[("phase", "keepalive")],
        1.0,
    );
}

#[test]
fn at_max_connections_stalled_handshakes_give_their_slots_to_a_normal_request() {
    // Slowloris on TLS, scaled down: every slot held by a connection that never says hello.
    let (pki, _o, p, port) = a_test_proxy("max_connections = 3");
    let stalled: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let r = https(&pki, port, "a.test", "/normal", &[]);
    assert_eq!(r.status, 200, "{}", r.trace);
    // Reclaiming takes a stalled connection that is at least a second old (the header
    // timeout is the default 60 s).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        p.metric(
            "consentgate_connections_reclaimed_total",
            &[("phase", "header")]
        ) >= 1.0
    );
    drop(stalled);
}

/// Issue 10, "Requests the proxy forwards": the scheme of a TLS connection is `https` for the
/// origin's `X-Forwarded-Proto` and `Forwarded`, over HTTP/1.1 and HTTP/2 alike, and a client's
/// own `X-Forwarded-Proto: http` (untrusted) does not change it.
#[test]
fn forwarding_headers_over_tls_say_https() {
    let pki = Pki::new();
    let a = pki.issue("a", "/CN=shop.test", &["shop.test"]);
    let o = hello_origin();
    let port = free_port();
    let extra = "forwarded_headers = \"both\"\ntrusted_proxies = [\"10.0.0.0/8\"]";
    let _p = Proxy::start_with(&shop_site(o.addr, ""), &tls_keys(port, &[a], extra));
    wait_for_port(port);
    for version in ["--http1.1", "--http2"] {
        let r = https(
            &pki,
            port,
            "shop.test",
            "/",
            &[
                version,
                "-H",
                "X-Forwarded-Proto: http",
                "-H",
                "X-Forwarded-For: 1.2.3.4",
            ],
        );
        assert!(r.ok && r.status == 200, "{version}: {}", r.trace);
        let got = o.last();
        assert_eq!(
            got.header_strings("x-forwarded-proto"),
            ["https"],
            "{version}"
        );
        assert_eq!(
            got.header_strings("x-forwarded-for"),
            ["127.0.0.1"],
            "{version}"
        );
        let host = format!("shop.test:{port}");
        assert_eq!(
            got.header_strings("forwarded"),
            [format!("for=127.0.0.1;proto=https;host=\"{host}\"")],
            "{version}"
        );
    }
}
