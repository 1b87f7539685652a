//! Test harness: a real origin server on loopback, the real `consentgate` binary, and a raw
//! HTTP/1.1 client that shows the bytes on the wire. Waits poll with deadlines, never sleep blindly.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_consentgate");

/// A request as the origin received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header lines in order, names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// The values of every header line named `name` (any case), in order.
fn values_named(headers: &[(String, Vec<u8>)], name: &str) -> Vec<Vec<u8>> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

impl Received {
    pub fn header_all(&self, name: &str) -> Vec<Vec<u8>> {
        values_named(&self.headers, name)
    }
    pub fn header_strings(&self, name: &str) -> Vec<String> {
        utf8_values(self.header_all(name))
    }
}

fn utf8_values(values: Vec<Vec<u8>>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| String::from_utf8(v).unwrap())
        .collect()
}

pub type Handler = Arc<dyn Fn(&Received) -> Vec<u8> + Send + Sync>;

/// A real HTTP/1.1 origin on an ephemeral loopback port (thread per connection, keep-alive).
pub struct Origin {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Received>>>,
}

impl Origin {
    /// An origin that answers every request with `origin saw PATH` (text/plain).
    pub fn echo() -> Origin {
        Origin::start(|req| {
            response(
                "200 OK",
                &[("Content-Type", "text/plain")],
                format!("origin saw {}", req.path).as_bytes(),
            )
        })
    }

    pub fn start(handler: impl Fn(&Received) -> Vec<u8> + Send + Sync + 'static) -> Origin {
        Self::serve(handler, true)
    }

    /// An origin that closes each connection after its first response, as an HTTP/1.0 server
    /// (Python's `http.server`) does: the handler's response may then end by the close.
    pub fn start_closing(handler: impl Fn(&Received) -> Vec<u8> + Send + Sync + 'static) -> Origin {
        Self::serve(handler, false)
    }

    fn serve(
        handler: impl Fn(&Received) -> Vec<u8> + Send + Sync + 'static,
        keep_alive: bool,
    ) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                let reqs = reqs.clone();
                std::thread::spawn(move || serve_conn(conn, handler, reqs, keep_alive));
            }
        });
        Origin { addr, requests }
    }

    pub fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Received {
        self.received()
            .last()
            .cloned()
            .expect("origin received no request")
    }
}

fn serve_conn(
    conn: TcpStream,
    handler: Handler,
    reqs: Arc<Mutex<Vec<Received>>>,
    keep_alive: bool,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut writer = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut raw = Vec::new();
            if reader.read_until(b'\n', &mut raw).unwrap_or(0) == 0 {
                return;
            }
            if raw == b"\r\n" || raw == b"\n" {
                break;
            }
            let raw = raw.strip_suffix(b"\r\n").unwrap_or(&raw).to_vec();
            let colon = raw.iter().position(|b| *b == b':').unwrap();
            let name = String::from_utf8_lossy(&raw[..colon]).to_string();
            let value = raw[colon + 1..].trim_ascii().to_vec();
            headers.push((name, value));
        }
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| std::str::from_utf8(v).unwrap().parse::<usize>().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Received {
            method,
            path,
            headers,
            body,
        };
        reqs.lock().unwrap().push(req.clone());
        let resp = handler(&req);
        if writer.write_all(&resp).is_err() || !keep_alive {
            return;
        }
    }
}

/// A response built from raw parts; `Content-Length` is added.
pub fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// [`response`] as an HTTP/1.0 server sends it (`HTTP/1.0` status line, `Content-Length`).
pub fn response_http10(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = response(status, headers, body);
    out[..8].copy_from_slice(b"HTTP/1.0");
    out
}

/// A free loopback port (bound then released). Tests in one binary run in parallel, and the
/// kernel may hand a just-released port to the next `bind(0)`, so ports already given out by
/// this process are never given out again: two proxies started at once cannot get one port.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The real binary, running one configuration. Killed on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub child: Child,
    pub log: PathBuf,
    _dir: TempDir,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new, empty directory of this process's own. Named by a counter, not a port: two
    /// parallel tests once shared a directory and one removed the other's config and log.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("consentgate-test-{tag}-{}-{n}", std::process::id()));
        // A leftover from an earlier run with the same pid is stale: start empty.
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Proxy {
    /// Starts the proxy with `sites` (TOML `[[site]]` tables, without the `[proxy]` table).
    pub fn start(sites: &str) -> Proxy {
        Self::start_with(sites, "")
    }

    pub fn start_with(sites: &str, proxy_extra: &str) -> Proxy {
        Self::start_with_env(sites, proxy_extra, &[])
    }

    /// Like [`Proxy::start_with`], with extra environment variables for the process.
    pub fn start_with_env(sites: &str, proxy_extra: &str, env: &[(&str, &str)]) -> Proxy {
        let dir = TempDir::new("proxy");
        let port = free_port();
        let admin_port = free_port();
        let config = dir.0.join("consentgate.toml");
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:{port}\"]\nadmin = \"127.0.0.1:{admin_port}\"\nthreads = 1\nshutdown_timeout_seconds = 1\n{proxy_extra}\n{sites}"
        );
        std::fs::write(&config, text).unwrap();
        let log = dir.0.join("proxy.log");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .arg("--upgrade-sock")
            .arg(upgrade_sock(&dir.0))
            // Hermetic: an admin token in the developer's environment would change answers.
            .env_remove("CONSENTGATE_ADMIN_TOKEN")
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap();
        let p = Proxy {
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            admin: format!("127.0.0.1:{admin_port}").parse().unwrap(),
            config,
            child,
            log,
            _dir: dir,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(self.addr).is_ok()
                && admin_get(self.admin, "/healthz").status == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "proxy did not start; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET through the proxy with extra raw header lines.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> RawResponse {
        get(self.addr, path, headers)
    }

    /// `POST /reload` on the admin listener, as curl would send it: the answer's status and body.
    pub fn reload(&self) -> (u16, String) {
        let host = self.admin.to_string();
        let r = send(
            self.admin,
            "POST",
            "/reload",
            &[("Host", &host), ("Content-Length", "0")],
        );
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    }

    pub fn metrics(&self) -> String {
        String::from_utf8(admin_get(self.admin, "/metrics").body).unwrap()
    }

    /// Asserts a sample reaches `expected`. Counters fed from pingora's logging phase are
    /// updated just after the response is written, so this polls (with a deadline).
    #[track_caller]
    pub fn expect_metric(&self, name: &str, labels: &[(&str, &str)], expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v = self.metric(name, labels);
            if v == expected {
                return;
            }
            if Instant::now() > deadline {
                panic!("{name}{labels:?} = {v}, expected {expected}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of one sample, e.g. `metric("consentgate_set_cookie_total", &[("site","a"),("category","analytics"),("action","stripped")])`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }
}

/// A second consentgate started with `--upgrade` on a running [`Proxy`]'s configuration and
/// upgrade socket: it waits there for the listening sockets, which the old process sends on
/// SIGQUIT (graceful upgrade). Killed on drop.
pub struct Upgraded {
    pub child: Child,
    pub log: PathBuf,
}

impl Upgraded {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Upgraded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Where this proxy's process exchanges listening sockets during an upgrade.
    pub fn upgrade_sock(&self) -> PathBuf {
        upgrade_sock(self.config.parent().unwrap())
    }

    /// Starts `consentgate run --upgrade` on the same configuration and upgrade socket.
    pub fn start_upgrade(&self) -> Upgraded {
        let log = self.config.with_file_name("upgraded.log");
        let child = Command::new(BIN)
            .args(["run", "--upgrade", "--config"])
            .arg(&self.config)
            .arg("--upgrade-sock")
            .arg(self.upgrade_sock())
            .env_remove("CONSENTGATE_ADMIN_TOKEN")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap();
        Upgraded { child, log }
    }
}

fn upgrade_sock(dir: &std::path::Path) -> PathBuf {
    dir.join("upgrade.sock")
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds a sample in Prometheus text; 0 when absent.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            return line.rsplit(' ').next().unwrap().parse().unwrap();
        }
    }
    0.0
}

/// A response as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// The header block exactly as received (status line included).
    pub head: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The decoded body (chunked decoding applied).
    pub body: Vec<u8>,
    pub chunked: bool,
}

impl RawResponse {
    pub fn header_all(&self, name: &str) -> Vec<Vec<u8>> {
        values_named(&self.headers, name)
    }
    /// The values of every header line named `name`, as text.
    pub fn header_strings(&self, name: &str) -> Vec<String> {
        utf8_values(self.header_all(name))
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.header_strings("set-cookie")
    }
    /// Names of the cookies set.
    pub fn set_cookie_names(&self) -> Vec<String> {
        self.set_cookies()
            .iter()
            .map(|l| l.split('=').next().unwrap().trim().to_string())
            .collect()
    }
    /// Raw `Set-Cookie` header lines as on the wire (name case included).
    pub fn raw_set_cookie_lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.head)
            .split("\r\n")
            .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
            .map(str::to_string)
            .collect()
    }
}

/// GET with `Host: test.local`, unless `headers` names another Host.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    send(addr, "GET", path, headers)
}

/// One request on a connection of its own (`Connection: close`), with the header lines as
/// given and `Host: test.local` unless `headers` names another Host. A refused connection or an
/// unreadable answer reads as status 0.
pub fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    send_body(addr, method, path, headers, b"")
}

/// [`send`] with a body after the head (`headers` should give its `Content-Length`).
pub fn send_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str("Host: test.local\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    let no_answer = || RawResponse {
        status: 0,
        head: vec![],
        headers: vec![],
        body: vec![],
        chunked: false,
    };
    let Ok(mut s) = TcpStream::connect(addr) else {
        return no_answer();
    };
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut BufReader::new(s), method == "HEAD").unwrap_or_else(|_| no_answer())
}

/// A site named `shop` for every host in front of `origin`, with the shipped tracker lists,
/// a few classified cookies and unknown cookies stripped; `extra` goes among the site's keys
/// (a key like `mode = "report-only"` or a table of its own).
pub fn shop_site(origin: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[[site]]
name = "shop"
hosts = ["*"]
upstreams = ["{origin}"]
unknown_cookies = "strip"
{extra}
[site.cookies]
necessary = ["SESSIONID"]
analytics = ["_ga", "_ga_*", "_gid"]
marketing = ["_fbp", "_gcl_*"]
[[site.blocklist]]
category = "analytics"
path = "{dir}/analytics.txt"
[[site.blocklist]]
category = "marketing"
path = "{dir}/marketing.txt"
"#,
        dir = shipped_lists_dir(),
    )
}

/// The tracker lists shipped in `conf/lists`.
pub fn shipped_lists_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/conf/lists").to_string()
}

/// A site named `name` for every host whose only blocklist is `list` (analytics).
pub fn analytics_list_site(name: &str, origin: SocketAddr, list: &str) -> String {
    format!(
        "[[site]]\nname = \"{name}\"\nhosts = [\"*\"]\nupstreams = [\"{origin}\"]\n[[site.blocklist]]\ncategory = \"analytics\"\npath = \"{list}\"\n"
    )
}

/// GET on the admin listener, as curl would send it (`Host` = the listener's address: the
/// admin listener refuses other names).
pub fn admin_get(admin: SocketAddr, path: &str) -> RawResponse {
    get(admin, path, &[("Host", &admin.to_string())])
}

/// Reads one response from a keep-alive connection.
pub fn read_response(r: &mut impl BufRead, head_only: bool) -> std::io::Result<RawResponse> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    for l in lines {
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.to_string(), v.trim().as_bytes().to_vec()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _): &&(String, Vec<u8>)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).to_string())
    };
    let chunked = find("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 {
    } else if chunked {
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(len) = find("content-length") {
        body = vec![0; len.parse().unwrap()];
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(RawResponse {
        status,
        head,
        headers,
        body,
        chunked,
    })
}

/// Runs the binary with arguments; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    run_cli_with_env(args, &[])
}

/// `consentgate report --format FORMAT` of everything `config`'s store holds (since 2000);
/// the command must succeed.
pub fn report_all(config: &str, format: &str) -> String {
    let args = [
        "report",
        "--config",
        config,
        "--since",
        "2000-01-01",
        "--format",
        format,
    ];
    let (code, out, err) = run_cli(&args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// [`report_all`] as HTML.
pub fn report_html(config: &str) -> String {
    report_all(config, "html")
}

/// [`report_all`] as JSON.
pub fn report_json(config: &str) -> serde_json::Value {
    let out = report_all(config, "json");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// [`run_cli`] with extra environment variables.
pub fn run_cli_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("CONSENTGATE_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` until it returns true or the deadline passes.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The path of a file under `tests/fixtures/` (excerpts of real third-party data, each folder
/// with the licence notice of its source). The files ship with the repository, so a missing one
/// is a broken checkout, not a reason to skip.
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing from the checkout",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// Whether the browser tests can run here: Debian's chromium (or `CHROMIUM`) and the
/// playwright-core driver in tests/browser/node_modules, both installed by scripts/test. Under
/// `CI=true` a missing part fails the test, saying what to install; elsewhere the test says why
/// it did not run.
pub fn browser_ready() -> bool {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    let why = if !std::path::Path::new("/usr/bin/chromium").exists()
        && std::env::var_os("CHROMIUM").is_none()
    {
        "chromium is not installed (scripts/test installs it)".to_string()
    } else if !std::path::Path::new(&format!("{dir}/node_modules/playwright-core")).exists() {
        format!("{dir}/node_modules is missing (scripts/test runs npm ci there)")
    } else {
        return true;
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "browser test cannot run in CI: {why}"
    );
    eprintln!("skipped: {why}");
    false
}

/// Runs a browser driver of tests/browser/ (`node SCRIPT ARGS...`) and returns the JSON of the
/// last line it printed; a driver that fails fails the test with what it printed.
pub fn run_browser_driver<S: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: &[S],
) -> serde_json::Value {
    let out = std::process::Command::new("node")
        .arg(format!(
            "{}/tests/browser/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(args)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "driver {script} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("driver {script} printed no JSON line ({e}): {stdout}"))
}

/// A shop page with a Google tag (analytics) and a Facebook pixel and its `<noscript>` image
/// (marketing), in the shape of the vendors' install snippets.
pub const TRACKER_PAGE: &str = r#"<!doctype html><html><head>
<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>
<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}gtag('config','G-1');</script>
<script src="/app.js"></script>
</head><body><h1>Shop</h1>
<img src="https://www.facebook.com/tr?id=1&ev=PageView" height="1">
<noscript><img src="https://www.facebook.com/tr?id=1&ev=PageView&noscript=1"></noscript>
</body></html>"#;

/// Splits a response's bytes into its heads (any 1xx heads, then the final one, each with its
/// blank line), the final status (0: none) and what follows the final head. A head must start
/// with `HTTP/`: anything else is left as the rest.
pub fn split_heads(raw: &[u8]) -> (Vec<String>, u16, &[u8]) {
    let mut heads = Vec::new();
    let mut status = 0;
    let mut rest = raw;
    while rest.starts_with(b"HTTP/") {
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..end + 4]).into_owned();
        rest = &rest[end + 4..];
        status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        heads.push(head);
        if !(100..200).contains(&status) {
            break;
        }
    }
    (heads, status, rest)
}
