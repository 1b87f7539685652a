//! Things a valid configuration lets through but an operator should hear about: `check` prints
//! them as `FILE:LINE: warning: ...` (and still exits 0), `run` logs them at start.
//!
//! Pure: the validated [`ProxyConfig`] and the file's text (for the line) in, warnings out.
//! Today there is one: an admin listener off loopback without a token, where anyone who can
//! reach the port can `POST /reload` (and read `/status` and `/metrics`).

use super::ProxyConfig;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use toml::Spanned;

/// One warning about a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub file: String,
    /// 1-based; 0 when the key's line cannot be found.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: warning: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: warning: {}", self.file, self.message)
        }
    }
}

/// The warnings for a configuration read from `file`, whose text was `text`.
///
/// The admin token is already in `proxy.admin_access` whether it came from `admin_token` or from
/// the `CONSENTGATE_ADMIN_TOKEN` environment variable (read when the file was validated).
pub fn warnings(proxy: &ProxyConfig, file: &Path, text: &str) -> Vec<ConfigWarning> {
    let mut out = Vec::new();
    if let Some(admin) = &proxy.admin {
        if proxy.admin_access.token.is_none() && !is_loopback(admin) {
            out.push(ConfigWarning {
                file: file.display().to_string(),
                line: admin_line(text),
                message: format!(
                    "the admin listener `{admin}` is not on loopback and has no token, so \
                     anyone who can reach it can POST /reload and read /status and /metrics; \
                     set admin_token (or CONSENTGATE_ADMIN_TOKEN) or bind admin to 127.0.0.1"
                ),
            });
        }
    }
    out
}

/// [`warnings`] for a file read again from disk (its line numbers only: the configuration
/// itself is the one already validated). An unreadable file gives line 0.
pub fn warnings_for_file(proxy: &ProxyConfig, file: &Path) -> Vec<ConfigWarning> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    warnings(proxy, file, &text)
}

/// 127.0.0.0/8 and ::1 (also as an IPv4-mapped address). `0.0.0.0` and `::` listen on every
/// interface, so they are not loopback. An address that does not parse (validation refuses
/// those) counts as off loopback: the warning errs on the side of being shown.
fn is_loopback(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().to_canonical().is_loopback())
}

/// The line of `[proxy] admin = ...`, or 0.
fn admin_line(text: &str) -> usize {
    #[derive(Deserialize)]
    struct Doc {
        proxy: Option<Proxy>,
    }
    #[derive(Deserialize)]
    struct Proxy {
        admin: Option<Spanned<toml::Value>>,
    }
    let Ok(doc) = toml::from_str::<Doc>(text) else {
        return 0;
    };
    let Some(span) = doc.proxy.and_then(|p| p.admin).map(|a| a.span()) else {
        return 0;
    };
    let end = span.start.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(extra: &str) -> (ProxyConfig, String) {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:8080\"]\n{extra}\n\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:8081\"]\n"
        );
        let mut c = crate::config::parse(&text, "w.toml".as_ref()).unwrap();
        if !extra.contains("admin_token") {
            // Hermetic: a token in the developer's environment would silence the warning.
            c.proxy.admin_access.token = None;
        }
        (c.proxy, text)
    }

    fn warned(extra: &str) -> Vec<String> {
        let (p, text) = proxy(extra);
        warnings(&p, "w.toml".as_ref(), &text)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn admin_off_loopback_without_token_warns_with_its_line() {
        for addr in [
            "0.0.0.0:9090",
            "[::]:9090",
            "192.0.2.7:9090",
            "10.0.0.1:9090",
        ] {
            let w = warned(&format!("threads = 1\nadmin = \"{addr}\""));
            assert_eq!(w.len(), 1, "{addr}: {w:?}");
            assert!(
                w[0].starts_with(&format!("w.toml:4: warning: the admin listener `{addr}`")),
                "{w:?}"
            );
            assert!(w[0].ends_with(
                "set admin_token (or CONSENTGATE_ADMIN_TOKEN) or bind admin to 127.0.0.1"
            ));
        }
    }

    #[test]
    fn loopback_no_admin_or_a_token_does_not_warn() {
        for extra in [
            "admin = \"127.0.0.1:9090\"",
            "admin = \"127.3.2.1:9090\"",
            "admin = \"[::1]:9090\"",
            "admin = \"[::ffff:127.0.0.1]:9090\"",
            "",
            "admin = \"0.0.0.0:9090\"\nadmin_token = \"0123456789abcdef-secret\"",
        ] {
            assert_eq!(warned(extra), Vec::<String>::new(), "{extra}");
        }
    }
}
