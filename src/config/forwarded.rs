//! `[proxy]` keys for the headers that tell the origin who the client is (issue 10, "Requests
//! the proxy forwards"): which peers may speak for a client (`trusted_proxies`), which header
//! family consentgate reads and writes (`forwarded_headers`), and `via`. Kept apart from the
//! other `[proxy]` keys so each concern reads on its own; the defaults live here, once. The
//! decision itself is `decide::forwarded`.

use super::raw::RawProxy;
use super::{ConfigErrorKind, Validator};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

/// Which forwarding headers consentgate reads (from trusted peers) and writes (to the origin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeaders {
    /// `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`: what CDNs and load
    /// balancers speak.
    #[default]
    XForwarded,
    /// `Forwarded` (RFC 7239) only.
    Forwarded,
    /// Both families; the client address is read from `X-Forwarded-For` first.
    Both,
    /// Neither is read or added (those an untrusted client sent are still removed).
    None,
}

impl ForwardedHeaders {
    pub fn x_forwarded(self) -> bool {
        matches!(self, ForwardedHeaders::XForwarded | ForwardedHeaders::Both)
    }

    pub fn forwarded(self) -> bool {
        matches!(self, ForwardedHeaders::Forwarded | ForwardedHeaders::Both)
    }
}

/// The validated settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardedSettings {
    /// Peers whose forwarding headers are believed (a CDN's or load balancer's addresses).
    /// Empty by default: nobody can speak for another client.
    pub trusted_proxies: Vec<IpNet>,
    pub headers: ForwardedHeaders,
    /// Adds `Via: 1.1 consentgate` to requests for the origin (RFC 9110 7.6.3).
    pub via: bool,
}

impl ForwardedSettings {
    /// Whether `ip` is one of the trusted proxies. An IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`,
    /// as a dual-stack listener reports IPv4 clients) is compared as the IPv4 address.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// Parses `"10.0.0.0/8"`, `"2001:db8::/32"` or a single address (a /32 or /128). Host bits set
/// under the prefix (`"10.1.2.3/8"`) are refused: such a typo would trust a different range
/// than the one the operator meant.
pub fn parse_trusted(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = s
        .parse()
        .map_err(|_| "not an IP address or CIDR range".to_string())?;
    if net.trunc() != net {
        return Err(format!(
            "host bits are set under the /{} prefix (did you mean \"{}\"?)",
            net.prefix_len(),
            net.trunc()
        ));
    }
    Ok(net)
}

impl Validator<'_> {
    pub(super) fn forwarded_settings(&mut self, p: &RawProxy) -> ForwardedSettings {
        let mut trusted_proxies = Vec::new();
        for t in &p.trusted_proxies {
            match parse_trusted(t.get_ref()) {
                Ok(net) => trusted_proxies.push(net),
                Err(reason) => {
                    let kind = ConfigErrorKind::BadTrustedProxy {
                        value: t.get_ref().clone(),
                        reason,
                    };
                    self.error_at(t.span(), kind);
                }
            }
        }
        ForwardedSettings {
            trusted_proxies,
            headers: p.forwarded_headers,
            via: p.via,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use std::path::Path;

    const BASE: &str = "[proxy]\nlisten = [\"127.0.0.1:1\"]\n";
    const SITE: &str = "[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n";

    #[test]
    fn defaults_trust_nobody() {
        let c = parse(&format!("{BASE}{SITE}"), Path::new("t.toml")).unwrap();
        assert_eq!(c.proxy.forwarded, ForwardedSettings::default());
        assert_eq!(c.proxy.forwarded.headers, ForwardedHeaders::XForwarded);
        assert!(!c.proxy.forwarded.via);
    }

    #[test]
    fn keys_are_read_and_bad_values_named_with_their_line() {
        let good = format!(
            "{BASE}trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.1\"]\nforwarded_headers = \"both\"\nvia = true\n{SITE}"
        );
        let c = parse(&good, Path::new("t.toml")).unwrap();
        let f = &c.proxy.forwarded;
        assert_eq!(f.trusted_proxies.len(), 3);
        assert_eq!((f.headers, f.via), (ForwardedHeaders::Both, true));

        let bad = format!(
            "{BASE}trusted_proxies = [\n  \"10.0.0.0/8\",\n  \"10.1.0.0/8\",\n  \"cdn.example\",\n]\nforwarded_headers = \"x-real-ip\"\n{SITE}"
        );
        let e = parse(&bad, Path::new("t.toml")).unwrap_err().to_string();
        assert!(
            e.contains("t.toml:5: trusted_proxies entry \"10.1.0.0/8\""),
            "{e}"
        );
        assert!(e.contains("did you mean \"10.0.0.0/8\""), "{e}");
        assert!(
            e.contains("t.toml:6: trusted_proxies entry \"cdn.example\""),
            "{e}"
        );
        assert!(e.contains("t.toml:8:") && e.contains("x-real-ip"), "{e}");
    }

    #[test]
    fn cidrs_and_single_addresses() {
        assert_eq!(
            parse_trusted("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_trusted("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            parse_trusted("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(parse_trusted("::1").unwrap().to_string(), "::1/128");
        assert!(parse_trusted("10.1.2.3/8")
            .unwrap_err()
            .contains("10.0.0.0/8"));
        assert!(parse_trusted("10.0.0.0/33").is_err());
        assert!(parse_trusted("example.com").is_err());
        assert!(parse_trusted("").is_err());
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_ranges() {
        let s = ForwardedSettings {
            trusted_proxies: vec![parse_trusted("10.0.0.0/8").unwrap()],
            ..Default::default()
        };
        assert!(s.is_trusted("10.1.2.3".parse().unwrap()));
        assert!(s.is_trusted("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!s.is_trusted("11.0.0.1".parse().unwrap()));
        assert!(!ForwardedSettings::default().is_trusted("127.0.0.1".parse().unwrap()));
    }
}
