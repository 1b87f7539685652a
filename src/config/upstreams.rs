//! A site's origins: `upstreams` (strings or `{ addr, weight }` tables), `lb`, `hash_cookie`,
//! `upstream_tls`/`upstream_sni`/`upstream_ca` and `[site.health_check]`. Compiled into an
//! [`UpstreamsConfig`] that `src/upstreams.rs` turns into the balancer and its health state.

use super::error::{ConfigErrorKind as K, ListKey};
use super::located::Located;
use super::Validator;
use pingora::utils::tls::{parse_x509, WrappedX509};
use serde::de;
use serde::Deserialize;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// One entry of `upstreams`: `"HOST:PORT"` or `{ addr = "HOST:PORT", weight = N }`.
#[derive(Debug)]
pub struct RawUpstream {
    pub addr: String,
    pub weight: Option<i64>,
}

impl<'de> Deserialize<'de> for RawUpstream {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = RawUpstream;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"HOST:PORT\" or { addr = \"HOST:PORT\", weight = N }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawUpstream, E> {
                Ok(RawUpstream {
                    addr: s.to_string(),
                    weight: None,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawUpstream, A::Error> {
                let (mut addr, mut weight) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "addr" => addr = Some(map.next_value::<String>()?),
                        "weight" => weight = Some(map.next_value::<i64>()?),
                        other => return Err(de::Error::unknown_field(other, &["addr", "weight"])),
                    }
                }
                let addr = addr.ok_or_else(|| de::Error::missing_field("addr"))?;
                Ok(RawUpstream { addr, weight })
            }
        }
        d.deserialize_any(V)
    }
}

/// How requests are spread over the origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lb {
    /// Weighted round-robin.
    #[default]
    RoundRobin,
    /// Ketama consistent hashing on `hash_cookie`'s value (the client address without it).
    ConsistentHash,
}

/// `[site.health_check]` as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub path: Option<Spanned<String>>,
    pub interval_ms: Option<Spanned<i64>>,
    pub timeout_ms: Option<Spanned<i64>>,
    pub healthy_threshold: Option<Spanned<i64>>,
    pub unhealthy_threshold: Option<Spanned<i64>>,
}

/// The upstream keys of a `[[site]]` (borrowed from `RawSite`).
pub struct RawUpstreamKeys<'a> {
    pub upstreams: &'a Spanned<Vec<Spanned<RawUpstream>>>,
    pub lb: &'a Option<Spanned<Lb>>,
    pub hash_cookie: &'a Option<Spanned<String>>,
    pub upstream_tls: &'a Option<Spanned<bool>>,
    pub upstream_sni: &'a Option<Spanned<String>>,
    pub upstream_ca: &'a Option<Spanned<String>>,
    pub health_check: &'a Option<Located<RawHealthCheck>>,
}

/// One origin, validated.
#[derive(Debug, Clone)]
pub struct UpstreamAddr {
    /// As written (`HOST:PORT`): the label in metrics and `/status`.
    pub addr: String,
    /// The host part, the default SNI.
    pub host: String,
    pub socket: SocketAddr,
    pub weight: usize,
}

/// TLS to the origins.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// `None`: each origin's own host name.
    pub sni: Option<String>,
    /// The CA certificates of `upstream_ca`; `None`: the system roots.
    pub ca: Option<Arc<[WrappedX509]>>,
    pub ca_path: Option<String>,
}

/// Active health checks.
#[derive(Debug, Clone)]
pub struct HealthCheckConfig {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: usize,
    pub unhealthy_threshold: usize,
}

/// A site's origins and how they are used.
#[derive(Debug, Clone)]
pub struct UpstreamsConfig {
    pub list: Vec<UpstreamAddr>,
    pub lb: Lb,
    pub hash_cookie: Option<String>,
    pub tls: Option<UpstreamTls>,
    pub health_check: Option<HealthCheckConfig>,
}

/// What is wrong with an upstream key (carried by [`K::Upstream`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamProblem {
    /// `hash_cookie` without `lb = "consistent-hash"`.
    HashCookieWithoutHashing,
    BadHashCookie(String),
    /// `upstream_sni`/`upstream_ca` without `upstream_tls = true`.
    NeedsTls(&'static str),
    BadSni(String),
    BadCa {
        path: String,
        reason: String,
    },
    BadHealthPath(String),
}

impl fmt::Display for UpstreamProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use UpstreamProblem::*;
        match self {
            HashCookieWithoutHashing => f.write_str(
                "`hash_cookie` only applies to `lb = \"consistent-hash\"`; add that line or remove `hash_cookie`",
            ),
            BadHashCookie(c) => write!(
                f,
                "hash_cookie `{c}` is not a cookie name; write the bare name, like \"SESSIONID\""
            ),
            NeedsTls(key) => write!(
                f,
                "`{key}` applies to TLS origins only; add `upstream_tls = true` or remove it"
            ),
            BadSni(s) => write!(
                f,
                "upstream_sni `{s}` is not a host name; write it like \"origin.example.com\""
            ),
            BadCa { path, reason } => write!(
                f,
                "upstream_ca `{path}` cannot be used ({reason}); give a PEM file of CA certificates"
            ),
            BadHealthPath(p) => write!(
                f,
                "health_check path `{p}` is not a request path; write it like \"/healthz\""
            ),
        }
    }
}

/// `weight` bounds: the weighted round-robin repeats each origin `weight` times.
const MAX_WEIGHT: i64 = 100;

impl Validator<'_> {
    pub(super) fn site_upstreams(&mut self, raw: RawUpstreamKeys<'_>) -> UpstreamsConfig {
        let list = self.upstream_list(raw.upstreams);
        let lb = raw.lb.as_ref().map_or(Lb::default(), |l| *l.get_ref());
        let hash_cookie = raw.hash_cookie.as_ref().and_then(|c| {
            let name = c.get_ref().trim();
            if lb != Lb::ConsistentHash {
                self.error_at(
                    c.span(),
                    K::Upstream(UpstreamProblem::HashCookieWithoutHashing),
                );
                None
            } else if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"=;,\"".contains(&b))
            {
                let p = UpstreamProblem::BadHashCookie(c.get_ref().clone());
                self.error_at(c.span(), K::Upstream(p));
                None
            } else {
                Some(name.to_string())
            }
        });
        let tls_on = raw.upstream_tls.as_ref().is_some_and(|t| *t.get_ref());
        let tls = if tls_on {
            Some(UpstreamTls {
                sni: raw.upstream_sni.as_ref().and_then(|s| self.upstream_sni(s)),
                ca: raw.upstream_ca.as_ref().and_then(|p| self.upstream_ca(p)),
                ca_path: raw.upstream_ca.as_ref().map(|p| p.get_ref().clone()),
            })
        } else {
            for (key, v) in [
                ("upstream_sni", raw.upstream_sni),
                ("upstream_ca", raw.upstream_ca),
            ] {
                if let Some(v) = v {
                    self.error_at(v.span(), K::Upstream(UpstreamProblem::NeedsTls(key)));
                }
            }
            None
        };
        let health_check = raw
            .health_check
            .as_ref()
            .map(|h| self.health_check(h.get_ref()));
        UpstreamsConfig {
            list,
            lb,
            hash_cookie,
            tls,
            health_check,
        }
    }

    fn upstream_list(&mut self, list: &Spanned<Vec<Spanned<RawUpstream>>>) -> Vec<UpstreamAddr> {
        if list.get_ref().is_empty() {
            self.error_at(list.span(), K::EmptyList(ListKey::Upstreams));
        }
        let mut out = Vec::new();
        for u in list.get_ref() {
            let r = u.get_ref();
            let socket = r.addr.to_socket_addrs().ok().and_then(|mut a| a.next());
            let Some(socket) = socket else {
                self.error_at(u.span(), K::BadUpstream(r.addr.clone()));
                continue;
            };
            let weight = match r.weight {
                None => 1,
                Some(w) if (1..=MAX_WEIGHT).contains(&w) => w as usize,
                Some(w) => {
                    let kind = K::CountOutOfRange {
                        key: "weight",
                        value: w,
                        min: 1,
                        max: MAX_WEIGHT,
                    };
                    self.error_at(u.span(), kind);
                    continue;
                }
            };
            let host = match r.addr.rsplit_once(':') {
                Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
                None => r.addr.clone(),
            };
            out.push(UpstreamAddr {
                addr: r.addr.clone(),
                host,
                socket,
                weight,
            });
        }
        out
    }

    fn upstream_sni(&mut self, s: &Spanned<String>) -> Option<String> {
        let sni = s.get_ref().trim().to_ascii_lowercase();
        if super::is_host_name(&sni) {
            Some(sni)
        } else {
            let p = UpstreamProblem::BadSni(s.get_ref().clone());
            self.error_at(s.span(), K::Upstream(p));
            None
        }
    }

    /// Reads the CA file now, so a bad one is reported by `check` with its line.
    fn upstream_ca(&mut self, p: &Spanned<String>) -> Option<Arc<[WrappedX509]>> {
        use rustls_pki_types::pem::PemObject;
        let path = self.base.join(p.get_ref());
        let certs: Result<Vec<_>, String> =
            match rustls_pki_types::CertificateDer::pem_file_iter(&path) {
                Ok(iter) => iter.map(|c| c.map_err(|e| e.to_string())).collect(),
                Err(e) => Err(e.to_string()),
            };
        let mut store = pingora::tls::RootCertStore::empty();
        let checked = certs.and_then(|certs| {
            if certs.is_empty() {
                return Err("no certificate in it".to_string());
            }
            for c in &certs {
                store.add(c.clone()).map_err(|e| e.to_string())?;
            }
            Ok(certs)
        });
        match checked {
            Ok(certs) => Some(
                certs
                    .into_iter()
                    .map(|c| WrappedX509::new(c.to_vec(), parse_x509))
                    .collect(),
            ),
            Err(reason) => {
                let kind = K::Upstream(UpstreamProblem::BadCa {
                    path: path.display().to_string(),
                    reason,
                });
                self.error_at(p.span(), kind);
                None
            }
        }
    }

    fn health_check(&mut self, h: &RawHealthCheck) -> HealthCheckConfig {
        let path = match &h.path {
            None => "/".to_string(),
            Some(p) => {
                let ok = p.get_ref().starts_with('/')
                    && p.get_ref().bytes().all(|b| b.is_ascii_graphic());
                if !ok {
                    let kind = K::Upstream(UpstreamProblem::BadHealthPath(p.get_ref().clone()));
                    self.error_at(p.span(), kind);
                }
                p.get_ref().clone()
            }
        };
        HealthCheckConfig {
            path,
            interval: self.millis("interval_ms", &h.interval_ms, Duration::from_secs(5)),
            timeout: self.millis("timeout_ms", &h.timeout_ms, Duration::from_secs(1)),
            healthy_threshold: self.count("healthy_threshold", &h.healthy_threshold, 1..=100, 1),
            unhealthy_threshold: self.count(
                "unhealthy_threshold",
                &h.unhealthy_threshold,
                1..=100,
                1,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    const HEAD: &str = "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"a\"\n";

    #[test]
    fn strings_and_tables_with_weights() {
        let text = format!(
            "{HEAD}upstreams = [\"127.0.0.1:2\", {{ addr = \"127.0.0.1:3\", weight = 3 }}]\nlb = \"consistent-hash\"\nhash_cookie = \"SESSIONID\"\n[site.health_check]\npath = \"/healthz\"\ninterval_ms = 200\nunhealthy_threshold = 2\n"
        );
        let c = parse(&text, Path::new("t.toml")).unwrap();
        let u = &c.sites[0].upstream;
        assert_eq!(u.list.len(), 2);
        assert_eq!((u.list[0].weight, u.list[1].weight), (1, 3));
        assert_eq!(u.list[1].host, "127.0.0.1");
        assert_eq!(u.lb, super::Lb::ConsistentHash);
        assert_eq!(u.hash_cookie.as_deref(), Some("SESSIONID"));
        let h = u.health_check.as_ref().unwrap();
        assert_eq!(h.path, "/healthz");
        assert_eq!(h.interval.as_millis(), 200);
        assert_eq!((h.healthy_threshold, h.unhealthy_threshold), (1, 2));
        assert_eq!(c.sites[0].upstreams, ["127.0.0.1:2", "127.0.0.1:3"]);
    }

    #[test]
    fn errors_name_their_line() {
        let text = format!(
            "{HEAD}upstreams = [{{ addr = \"127.0.0.1:3\", weight = 0 }}]\nhash_cookie = \"S\"\nupstream_sni = \"x.example\"\nlb = \"least-conn\"\n[site.health_check]\npath = \"healthz\"\n"
        );
        let e = parse(&text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(e.contains("t.toml:5: weight = 0 is out of range"), "{e}");
        assert!(e.contains("t.toml:6: `hash_cookie` only applies"), "{e}");
        assert!(e.contains("t.toml:7: `upstream_sni` applies to TLS"), "{e}");
        assert!(e.contains("t.toml:8:") && e.contains("least-conn"), "{e}");
        let text = format!(
            "{HEAD}upstreams = [\"127.0.0.1:3\"]\nupstream_tls = true\nupstream_ca = \"missing.pem\"\n[site.health_check]\npath = \"healthz\"\n"
        );
        let e = parse(&text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(e.contains("t.toml:7: upstream_ca `missing.pem`"), "{e}");
        assert!(e.contains("t.toml:9: health_check path `healthz`"), "{e}");
    }
}
