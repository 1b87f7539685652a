//! `[proxy]` keys that bound what one request may cost (issue 8, item 1) and who may use the
//! admin listener (item 5). Kept apart from the other `[proxy]` keys so each concern reads on
//! its own; the defaults live here, once.

use super::raw::RawProxy;
use super::{ConfigErrorKind, Validator};
use toml::Spanned;

/// Cookies read from one request: browsers keep about 180 per domain (Chrome 180, Firefox
/// 150), so a real visitor stays well below this.
pub const DEFAULT_MAX_REQUEST_COOKIES: usize = 300;
/// Expiry `Set-Cookie` lines in one response: enough to delete every cookie a browser can hold
/// for a site (see above) on one path.
pub const DEFAULT_MAX_EXPIRY_LINES: usize = 300;
/// The upper end of both settings: the work per request stays small even at the maximum.
const LIMIT_MAX: i64 = 10_000;
/// The environment variable that sets the admin token (it wins over `admin_token`, so the
/// secret can stay out of a world-readable file).
pub const ADMIN_TOKEN_ENV: &str = "CONSENTGATE_ADMIN_TOKEN";
/// Shorter tokens are refused: they could be guessed.
const MIN_TOKEN_LEN: usize = 16;

/// Per-request limits on the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Request cookies read per request (all `Cookie` lines together). Cookies past it are not
    /// read and, in enforce mode, not forwarded to the origin.
    pub max_request_cookies: usize,
    /// Expiry `Set-Cookie` lines added to one response.
    pub max_expiry_lines: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_request_cookies: DEFAULT_MAX_REQUEST_COOKIES,
            max_expiry_lines: DEFAULT_MAX_EXPIRY_LINES,
        }
    }
}

/// Who the admin listener answers.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AdminAccess {
    /// Host names (lowercase, no port) accepted in the `Host` header besides IP literals and
    /// `localhost`.
    pub hosts: Vec<String>,
    /// When set, `POST /reload` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminAccess {
    // The token never reaches a log line or an error message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("hosts", &self.hosts)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Validator<'_> {
    pub(super) fn request_limits(&mut self, p: &RawProxy) -> RequestLimits {
        let d = RequestLimits::default();
        RequestLimits {
            max_request_cookies: self.limit(
                "max_request_cookies",
                p.max_request_cookies.as_ref(),
                1,
                d.max_request_cookies,
            ),
            max_expiry_lines: self.limit(
                "max_expiry_lines",
                p.max_expiry_lines.as_ref(),
                0,
                d.max_expiry_lines,
            ),
        }
    }

    fn limit(
        &mut self,
        key: &'static str,
        v: Option<&Spanned<i64>>,
        min: i64,
        default: usize,
    ) -> usize {
        match v {
            None => default,
            Some(n) if (min..=LIMIT_MAX).contains(n.get_ref()) => *n.get_ref() as usize,
            Some(n) => {
                let kind = ConfigErrorKind::LimitOutOfRange {
                    key,
                    value: *n.get_ref(),
                    min,
                    max: LIMIT_MAX,
                    default,
                };
                self.error_at(n.span(), kind);
                default
            }
        }
    }

    pub(super) fn admin_access(&mut self, p: &RawProxy) -> AdminAccess {
        let mut hosts = Vec::new();
        for h in &p.admin_hosts {
            let host = h.get_ref().trim().to_ascii_lowercase();
            if super::is_host_name(&host) {
                hosts.push(host);
            } else {
                self.error_at(h.span(), ConfigErrorKind::BadAdminHost(h.get_ref().clone()));
            }
        }
        let from_env = std::env::var(ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty());
        let token = match (from_env, &p.admin_token) {
            (Some(t), _) => {
                if let Err(reason) = check_token(&t) {
                    let kind = ConfigErrorKind::BadAdminToken {
                        from_env: true,
                        reason,
                    };
                    self.error(0, kind);
                }
                Some(t)
            }
            (None, Some(t)) => {
                if let Err(reason) = check_token(t.get_ref()) {
                    let kind = ConfigErrorKind::BadAdminToken {
                        from_env: false,
                        reason,
                    };
                    self.error_at(t.span(), kind);
                }
                Some(t.get_ref().clone())
            }
            (None, None) => None,
        };
        AdminAccess { hosts, token }
    }
}

fn check_token(t: &str) -> Result<(), String> {
    if t.len() < MIN_TOKEN_LEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the admin token must be at least {MIN_TOKEN_LEN} visible ASCII characters without spaces (e.g. `openssl rand -hex 32`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    fn config(extra: &str) -> Result<crate::config::Config, Vec<String>> {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:1\"]\n{extra}\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n"
        );
        parse(&text, Path::new("t.toml")).map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = config("").unwrap();
        assert_eq!(c.proxy.request_limits.max_request_cookies, 300);
        assert_eq!(c.proxy.request_limits.max_expiry_lines, 300);
        assert!(c.proxy.admin_access.hosts.is_empty());
        let c = config(
            "max_request_cookies = 50\nmax_expiry_lines = 0\nadmin_hosts = [\"Admin.Internal\"]",
        )
        .unwrap();
        assert_eq!(c.proxy.request_limits.max_request_cookies, 50);
        assert_eq!(c.proxy.request_limits.max_expiry_lines, 0);
        assert_eq!(c.proxy.admin_access.hosts, vec!["admin.internal"]);
    }

    #[test]
    fn bad_values_name_their_line() {
        let e = config("max_request_cookies = 0\nmax_expiry_lines = 100000\nadmin_hosts = [\"http://x\"]\nadmin_token = \"short\"")
            .unwrap_err();
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(e[0].starts_with("t.toml:3: max_request_cookies = 0 is out of range"));
        assert!(e[1].starts_with("t.toml:4: max_expiry_lines = 100000"));
        assert!(e[2].starts_with("t.toml:5: admin host `http://x`"));
        assert!(e[3].starts_with("t.toml:6: admin_token: the admin token must be"));
        assert!(!e[3].contains("short"), "the token is not echoed: {e:?}");
    }

    #[test]
    fn the_token_is_not_printed_by_debug() {
        let c = config("admin_token = \"0123456789abcdef-secret\"").unwrap();
        assert_eq!(
            c.proxy.admin_access.token.as_deref(),
            Some("0123456789abcdef-secret")
        );
        assert!(!format!("{:?}", c.proxy).contains("secret"));
    }
}
