//! Who may use the admin listener (issue 8, item 5). Pure: the request's headers in, a refusal
//! or nothing out.
//!
//! The listener belongs on loopback, but loopback is reachable from every web page the
//! operator's browser opens:
//! - DNS rebinding: a page on `evil.example` re-resolves its own name to 127.0.0.1 and then
//!   reads `/status` as same-origin. The browser still sends `Host: evil.example`, so only IP
//!   literals, `localhost` and the names in `[proxy] admin_hosts` are answered (a rebinding name
//!   is never an IP literal).
//! - Cross-site requests: a page can POST a form (`Content-Type: text/plain` needs no CORS
//!   preflight) to `/reload`. Browsers mark such requests with `Origin` and `Sec-Fetch-Site`;
//!   any request whose `Origin` is not the listener itself, or whose `Sec-Fetch-Site` says
//!   another site, is refused. Tools (curl, Prometheus) send neither.
//! - `POST /reload` can also require a bearer token (`admin_token` or the
//!   `CONSENTGATE_ADMIN_TOKEN` environment variable).

use crate::config::AdminAccess;

/// Why a request was refused; `reason()` is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` header names something other than this listener.
    Host,
    /// A browser request started by another site.
    CrossSite,
    /// `POST /reload` without the configured token.
    Token,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Host => "host",
            Refusal::CrossSite => "cross_site",
            Refusal::Token => "token",
        }
    }

    pub fn status(self) -> http::StatusCode {
        match self {
            Refusal::Host => http::StatusCode::MISDIRECTED_REQUEST,
            Refusal::CrossSite => http::StatusCode::FORBIDDEN,
            Refusal::Token => http::StatusCode::UNAUTHORIZED,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Host => "consentgate admin: this Host is not the admin listener; use its IP address, localhost, or a name listed in [proxy] admin_hosts\n",
            Refusal::CrossSite => "consentgate admin: requests started by another web site are refused\n",
            Refusal::Token => "consentgate admin: POST /reload needs `Authorization: Bearer <admin token>`\n",
        }
    }
}

/// The headers the decision reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct AdminRequest<'a> {
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub sec_fetch_site: Option<&'a str>,
    pub authorization: Option<&'a str>,
    /// `POST /reload`: the one request that changes state.
    pub reload: bool,
}

/// `Ok` when the request may be answered.
pub fn check(req: &AdminRequest<'_>, access: &AdminAccess) -> Result<(), Refusal> {
    // A request without Host is not from a browser (browsers always send one): nothing to
    // rebind.
    if let Some(host) = req.host {
        if !host_allowed(host, access) {
            return Err(Refusal::Host);
        }
    }
    if let Some(site) = req.sec_fetch_site {
        // `none`: typed in the address bar or a bookmark; `same-origin`: the listener's own page.
        if !matches!(
            site.trim().to_ascii_lowercase().as_str(),
            "none" | "same-origin"
        ) {
            return Err(Refusal::CrossSite);
        }
    }
    if let Some(origin) = req.origin {
        let same = req.host.is_some_and(|host| {
            origin
                .trim()
                .strip_prefix("http://")
                .or_else(|| origin.trim().strip_prefix("https://"))
                .is_some_and(|authority| authority.eq_ignore_ascii_case(host.trim()))
        });
        if !same {
            return Err(Refusal::CrossSite);
        }
    }
    if req.reload {
        if let Some(token) = &access.token {
            let given = req
                .authorization
                .and_then(|a| a.trim().strip_prefix("Bearer "))
                .map(str::trim);
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                return Err(Refusal::Token);
            }
        }
    }
    Ok(())
}

/// An IP literal (any port), `localhost`, or a configured name.
fn host_allowed(host: &str, access: &AdminAccess) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6] or [v6]:port
        return rest
            .split(']')
            .next()
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || access.hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(token: Option<&str>) -> AdminAccess {
        AdminAccess {
            hosts: vec!["admin.internal".into()],
            token: token.map(str::to_string),
        }
    }

    fn host(h: &str) -> Result<(), Refusal> {
        check(
            &AdminRequest {
                host: Some(h),
                ..Default::default()
            },
            &access(None),
        )
    }

    #[test]
    fn hosts() {
        for ok in [
            "127.0.0.1:9090",
            "127.0.0.1",
            "[::1]:9090",
            "[::1]",
            "localhost:9090",
            "LOCALHOST",
            "10.0.0.5:9090",
            "admin.internal:9090",
            "Admin.Internal",
        ] {
            assert_eq!(host(ok), Ok(()), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9090",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::1.evil]",
            "",
        ] {
            assert_eq!(host(bad), Err(Refusal::Host), "{bad}");
        }
    }

    #[test]
    fn cross_site_browser_requests() {
        let req = |origin: Option<&'static str>, site: Option<&'static str>| AdminRequest {
            host: Some("127.0.0.1:9090"),
            origin,
            sec_fetch_site: site,
            reload: true,
            ..Default::default()
        };
        let a = access(None);
        assert_eq!(check(&req(None, None), &a), Ok(()));
        assert_eq!(
            check(&req(Some("http://127.0.0.1:9090"), Some("same-origin")), &a),
            Ok(())
        );
        assert_eq!(check(&req(None, Some("none")), &a), Ok(()));
        for (o, s) in [
            (Some("https://evil.example"), None),
            (Some("null"), None),
            (Some("http://127.0.0.1:9091"), None),
            (None, Some("cross-site")),
            (None, Some("same-site")),
        ] {
            assert_eq!(
                check(&req(o, s), &a),
                Err(Refusal::CrossSite),
                "{o:?} {s:?}"
            );
        }
    }

    #[test]
    fn reload_token() {
        let a = access(Some("0123456789abcdef"));
        let req = |auth: Option<&'static str>, reload| AdminRequest {
            host: Some("127.0.0.1:9090"),
            authorization: auth,
            reload,
            ..Default::default()
        };
        assert_eq!(check(&req(None, true), &a), Err(Refusal::Token));
        assert_eq!(
            check(&req(Some("Bearer 0123456789abcdeX"), true), &a),
            Err(Refusal::Token)
        );
        assert_eq!(
            check(&req(Some("0123456789abcdef"), true), &a),
            Err(Refusal::Token)
        );
        assert_eq!(
            check(&req(Some("Bearer 0123456789abcdef"), true), &a),
            Ok(())
        );
        assert_eq!(check(&req(None, false), &a), Ok(()), "reads need no token");
    }
}
