//! Connection timeouts and request-size limits: the `[proxy]` keys that bound what one client
//! connection may cost, and `[site.timeouts]` for the connections to a site's origins.
//!
//! Defaults follow nginx's (the reference an operator already knows): 60 s to connect to, read
//! from and write to an origin, 60 s for a client's whole request header, 60 s between two reads
//! of a request body or two writes of a response, 75 s for an idle kept-alive connection, 32 KiB
//! of request header (nginx: 4 x 8 KiB `large_client_header_buffers`), 8 KiB of request target.

use super::{ConfigErrorKind, Validator};
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

/// What one client connection may cost, validated from `[proxy]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The whole request header must arrive within this (from the connection's accept for the
    /// first request, from its first byte for later ones). Past it: `408` and the connection closes.
    pub client_header_timeout: Duration,
    /// Longest wait between two reads of a request body.
    pub client_body_timeout: Duration,
    /// Longest wait between two writes to the client (a client that stops reading).
    pub send_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests.
    pub keepalive_timeout: Duration,
    /// Request line plus header fields, in bytes (`431` past it).
    pub max_request_header_bytes: usize,
    /// Header field lines per request (`431` past it).
    pub max_request_headers: usize,
    /// Bytes of the request target (`414` past it).
    pub max_uri_bytes: usize,
    /// Client connections served at once; past it new ones wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            client_header_timeout: Duration::from_secs(60),
            client_body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            max_request_header_bytes: 32 * 1024,
            max_request_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_connections: 50_000,
        }
    }
}

/// Timeouts for one site's origin connections, validated from `[site.timeouts]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// TCP connect to an origin.
    pub connect: Duration,
    /// Longest wait between two reads from an origin (a stalled origin gives `504` after it).
    pub read: Duration,
    /// Longest wait between two writes to an origin.
    pub write: Duration,
    /// How long an idle pooled origin connection is kept for reuse.
    pub idle: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts {
            connect: Duration::from_secs(60),
            read: Duration::from_secs(60),
            write: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}

/// `[site.timeouts]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSiteTimeouts {
    pub connect_ms: Option<Spanned<i64>>,
    pub read_ms: Option<Spanned<i64>>,
    pub write_ms: Option<Spanned<i64>>,
    pub idle_ms: Option<Spanned<i64>>,
}

/// The `[proxy]` keys of this module as written (flattened into `RawProxy` by hand: serde's
/// `flatten` does not work with `deny_unknown_fields`).
pub struct RawConnectionKeys<'a> {
    pub client_header_timeout_ms: &'a Option<Spanned<i64>>,
    pub client_body_timeout_ms: &'a Option<Spanned<i64>>,
    pub send_timeout_ms: &'a Option<Spanned<i64>>,
    pub keepalive_timeout_ms: &'a Option<Spanned<i64>>,
    pub max_request_header_bytes: &'a Option<Spanned<i64>>,
    pub max_request_headers: &'a Option<Spanned<i64>>,
    pub max_uri_bytes: &'a Option<Spanned<i64>>,
    pub max_connections: &'a Option<Spanned<i64>>,
}

/// Longest timeout accepted: an hour (a longer one is a typo or no timeout at all).
const MAX_TIMEOUT_MS: i64 = 3_600_000;

impl Validator<'_> {
    pub(super) fn millis(
        &mut self,
        key: &'static str,
        v: &Option<Spanned<i64>>,
        default: Duration,
    ) -> Duration {
        match v {
            None => default,
            Some(ms) if (1..=MAX_TIMEOUT_MS).contains(ms.get_ref()) => {
                Duration::from_millis(*ms.get_ref() as u64)
            }
            Some(ms) => {
                let kind = ConfigErrorKind::TimeoutOutOfRange {
                    key,
                    value: *ms.get_ref(),
                    max: MAX_TIMEOUT_MS,
                };
                self.error_at(ms.span(), kind);
                default
            }
        }
    }

    pub(super) fn count(
        &mut self,
        key: &'static str,
        v: &Option<Spanned<i64>>,
        range: std::ops::RangeInclusive<i64>,
        default: usize,
    ) -> usize {
        match v {
            None => default,
            Some(n) if range.contains(n.get_ref()) => *n.get_ref() as usize,
            Some(n) => {
                let kind = ConfigErrorKind::CountOutOfRange {
                    key,
                    value: *n.get_ref(),
                    min: *range.start(),
                    max: *range.end(),
                };
                self.error_at(n.span(), kind);
                default
            }
        }
    }

    pub(super) fn connection_settings(&mut self, raw: RawConnectionKeys<'_>) -> ConnectionSettings {
        let d = ConnectionSettings::default();
        let s = ConnectionSettings {
            client_header_timeout: self.millis(
                "client_header_timeout_ms",
                raw.client_header_timeout_ms,
                d.client_header_timeout,
            ),
            client_body_timeout: self.millis(
                "client_body_timeout_ms",
                raw.client_body_timeout_ms,
                d.client_body_timeout,
            ),
            send_timeout: self.millis("send_timeout_ms", raw.send_timeout_ms, d.send_timeout),
            keepalive_timeout: self.millis(
                "keepalive_timeout_ms",
                raw.keepalive_timeout_ms,
                d.keepalive_timeout,
            ),
            // 1 KiB holds a request line and a Host; 1 MiB is pingora's own ceiling.
            max_request_header_bytes: self.count(
                "max_request_header_bytes",
                raw.max_request_header_bytes,
                1024..=1024 * 1024,
                d.max_request_header_bytes,
            ),
            // pingora parses at most 256 header lines.
            max_request_headers: self.count(
                "max_request_headers",
                raw.max_request_headers,
                1..=256,
                d.max_request_headers,
            ),
            max_uri_bytes: self.count(
                "max_uri_bytes",
                raw.max_uri_bytes,
                16..=1024 * 1024,
                d.max_uri_bytes,
            ),
            max_connections: self.count(
                "max_connections",
                raw.max_connections,
                1..=10_000_000,
                d.max_connections,
            ),
        };
        if s.max_uri_bytes > s.max_request_header_bytes {
            if let Some(v) = raw.max_uri_bytes {
                let kind = ConfigErrorKind::UriOverHeader {
                    uri: s.max_uri_bytes,
                    header: s.max_request_header_bytes,
                };
                self.error_at(v.span(), kind);
            }
        }
        s
    }

    pub(super) fn upstream_timeouts(
        &mut self,
        raw: &Option<super::located::Located<RawSiteTimeouts>>,
    ) -> UpstreamTimeouts {
        let d = UpstreamTimeouts::default();
        let Some(t) = raw else { return d };
        let t = t.get_ref();
        UpstreamTimeouts {
            connect: self.millis("connect_ms", &t.connect_ms, d.connect),
            read: self.millis("read_ms", &t.read_ms, d.read),
            write: self.millis("write_ms", &t.write_ms, d.write),
            idle: self.millis("idle_ms", &t.idle_ms, d.idle),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;
    use std::time::Duration;

    const BASE: &str = "[proxy]\nlisten = [\"127.0.0.1:1\"]\n";
    const SITE: &str = "[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n";

    #[test]
    fn defaults_are_nginx_like() {
        let c = parse(&format!("{BASE}{SITE}"), Path::new("t.toml")).unwrap();
        let s = c.proxy.connections;
        assert_eq!(s.client_header_timeout, Duration::from_secs(60));
        assert_eq!(s.keepalive_timeout, Duration::from_secs(75));
        assert_eq!(s.max_request_header_bytes, 32 * 1024);
        assert_eq!(c.sites[0].timeouts.read, Duration::from_secs(60));
    }

    #[test]
    fn keys_are_read_and_bad_values_named_with_their_line() {
        let text = format!(
            "{BASE}client_header_timeout_ms = 1500\nsend_timeout_ms = 0\nmax_request_headers = 1000\n{SITE}[site.timeouts]\nread_ms = 250\nidle_ms = -1\n"
        );
        let e = parse(&text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(
            e.contains("t.toml:4: send_timeout_ms = 0 is out of range"),
            "{e}"
        );
        assert!(e.contains("t.toml:5: max_request_headers = 1000"), "{e}");
        assert!(e.contains("t.toml:11: idle_ms = -1"), "{e}");
        let ok = text
            .replace("send_timeout_ms = 0\n", "")
            .replace("max_request_headers = 1000\n", "")
            .replace("idle_ms = -1\n", "");
        let c = parse(&ok, Path::new("t.toml")).unwrap();
        assert_eq!(
            c.proxy.connections.client_header_timeout,
            Duration::from_millis(1500)
        );
        assert_eq!(c.sites[0].timeouts.read, Duration::from_millis(250));
    }
}
