//! HTTP/2 to the proxy for the suites that repeat their HTTP/1.1 checks over HTTP/2: the real
//! binary with a TLS listener (ALPN `h2`) and a self-signed certificate, and curl as the client
//! (`--http2`, `-k`: these suites are about gating and faults, tests/tls.rs checks
//! certificates). Used by tests/invariants.rs and tests/origin_faults.rs through
//! `#[path = "support/h2_client.rs"] mod h2_client;` next to `mod common;`.
#![allow(dead_code)] // each suite uses part of it

use crate::common::{eventually, free_port, Proxy, TempDir};
use std::process::Command;
use std::time::{Duration, Instant};

/// The name the certificate is for; curl resolves it to loopback (`--resolve`).
pub const HOST: &str = "proxy.test";

/// curl's exit code when an HTTP/2 stream ended with `RST_STREAM` (`CURLE_HTTP2_STREAM`).
pub const CURL_STREAM_RESET: i32 = 92;

/// The proxy with a TLS listener on `port` beside its plain one.
pub struct TlsProxy {
    pub proxy: Proxy,
    pub port: u16,
    _certs: TempDir,
}

impl TlsProxy {
    /// Starts the proxy with `sites` and a TLS listener serving a certificate for [`HOST`].
    pub fn start(sites: &str) -> TlsProxy {
        let certs = TempDir::new("h2-certs");
        let ck = rcgen::generate_simple_self_signed(vec![HOST.to_string()]).unwrap();
        let cert = certs.0.join("cert.pem");
        let key = certs.0.join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        let port = free_port();
        let proxy = Proxy::start_with(
            sites,
            &format!(
                "listen_tls = [\"127.0.0.1:{port}\"]\n[[proxy.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        );
        eventually("the TLS listener", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        TlsProxy {
            proxy,
            port,
            _certs: certs,
        }
    }

    /// One GET over HTTP/2 on a connection of its own, with extra header lines (`Name: value`,
    /// each passed as one `-H`, so repeated names stay separate fields).
    pub fn get(&self, path: &str, header_lines: &[String]) -> H2Response {
        let mut cmd = curl();
        cmd.args([
            "-sS",
            "-i",
            "-k",
            "--http2",
            "--max-time",
            "30",
            "--resolve",
        ])
        .arg(format!("{HOST}:{}:127.0.0.1", self.port));
        for line in header_lines {
            cmd.arg("-H").arg(line);
        }
        let start = Instant::now();
        let out = cmd
            .arg(format!("https://{HOST}:{}{path}", self.port))
            .output()
            .unwrap();
        H2Response::parse(
            &out.stdout,
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            start.elapsed(),
        )
    }
}

/// curl is the HTTP/2 client; missing, the test fails saying what to install.
pub fn curl() -> Command {
    let found = Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`curl` is not installed; run scripts/setup curl (scripts/test does)"
    );
    Command::new("curl")
}

/// What curl got over HTTP/2.
#[derive(Debug)]
pub struct H2Response {
    /// Every response head as curl prints it (`HTTP/2 103`, then the final one), field names
    /// lower-case as HTTP/2 sends them.
    pub heads: Vec<String>,
    /// The final status (0: none).
    pub status: u16,
    /// The body bytes curl received.
    pub body: Vec<u8>,
    /// curl's exit code: 0 for a stream that ended cleanly (`END_STREAM`),
    /// [`CURL_STREAM_RESET`] for one the proxy reset.
    pub exit: i32,
    pub stderr: String,
    /// Everything curl printed on stdout (heads and body), for the cookie checks.
    pub raw: Vec<u8>,
    pub elapsed: Duration,
}

impl H2Response {
    fn parse(stdout: &[u8], exit: i32, stderr: String, elapsed: Duration) -> H2Response {
        let (heads, status, rest) = crate::common::split_heads(stdout);
        H2Response {
            heads,
            status,
            body: rest.to_vec(),
            exit,
            stderr,
            raw: stdout.to_vec(),
            elapsed,
        }
    }

    pub fn final_head(&self) -> &str {
        self.heads.last().map(String::as_str).unwrap_or("")
    }

    /// The values of the final head's fields named `name` (lower-case, as HTTP/2 sends it).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}: ");
        self.final_head()
            .split("\r\n")
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(str::to_string)
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.header_all(name).into_iter().next()
    }
}
