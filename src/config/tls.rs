//! `[proxy]` TLS and HTTP/2 keys: `listen_tls`, `[[proxy.certificate]]` and `h2c`.
//!
//! Every certificate is loaded here, when the configuration is validated, so `check`, a
//! start and a reload all refuse the same bad file, named in the message: a PEM file that
//! does not parse, a key that is not the certificate's, a certificate outside its validity
//! dates. An expired certificate is an error, not a warning: every client refuses it, and a
//! reload that fails keeps serving the certificates loaded before.

use super::raw::RawProxy;
use super::{ConfigErrorKind, Validator};
use crate::tls::{Certificate, Certificates};
use serde::Deserialize;
use std::sync::Arc;
use toml::Spanned;

/// One `[[proxy.certificate]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    /// PEM file: the leaf certificate, then its intermediates.
    pub cert: Spanned<String>,
    /// PEM file: the leaf's private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: Spanned<String>,
}

/// The validated TLS and HTTP/2 settings.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// TLS listeners (HTTP/1.1 and HTTP/2 by ALPN).
    pub listen_tls: Vec<String>,
    /// The certificates, loaded; the first is the default.
    pub certificates: Arc<Certificates>,
    /// HTTP/2 with prior knowledge on the plain listeners.
    pub h2c: bool,
}

impl Validator<'_> {
    /// `listen_tls`, the certificates and `h2c`; `plain_listeners` says whether `listen` has
    /// an address (one of the two lists must).
    pub(super) fn tls(&mut self, p: &RawProxy, plain_listeners: bool) -> TlsConfig {
        let mut listen_tls = Vec::new();
        if let Some(list) = &p.listen_tls {
            for a in list.get_ref() {
                if let Some(a) = self.address("listen_tls address", a) {
                    listen_tls.push(a);
                }
            }
        }
        let tls_listeners = p
            .listen_tls
            .as_ref()
            .is_some_and(|l| !l.get_ref().is_empty());
        // A listener list with a wrong value was blanked out and reported on its own line.
        let blanked = |key: &str| self.blanked_keys.iter().any(|k| k == key);
        let reported = blanked("listen") || blanked("listen_tls");
        if !plain_listeners && !tls_listeners && !reported {
            match p.listen.as_ref().or(p.listen_tls.as_ref()) {
                Some(l) => self.error_at(l.span(), ConfigErrorKind::NoListener),
                // Neither key is written: no line to point at.
                None => self.error(0, ConfigErrorKind::NoListener),
            }
        }
        if tls_listeners && p.certificate.is_empty() {
            let span = p.listen_tls.as_ref().map_or(0..0, |l| l.span());
            self.error_at(span, ConfigErrorKind::NoCertificate);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut certificates = Vec::new();
        for c in &p.certificate {
            let cert = self.resolve(c.cert.get_ref()).display().to_string();
            let key = self.resolve(c.key.get_ref()).display().to_string();
            match Certificate::load(&cert, &key, now) {
                Ok(loaded) => certificates.push(loaded),
                Err(e) => {
                    // On the line of the file at fault (a key that is not the certificate's:
                    // the key's line).
                    use crate::tls::CertificateError::*;
                    let span = match &e {
                        Unreadable { file, .. } | NoKey { file, .. } | BadKey { file, .. }
                            if *file == key =>
                        {
                            c.key.span()
                        }
                        KeyMismatch { .. } => c.key.span(),
                        _ => c.cert.span(),
                    };
                    self.error_at(span, ConfigErrorKind::Certificate(e));
                }
            }
        }
        TlsConfig {
            listen_tls,
            certificates: Arc::new(Certificates(certificates)),
            h2c: p.h2c,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    const BASE: &str = "[proxy]\nlisten = [\"127.0.0.1:1\"]\n";
    const SITE: &str = "[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n";

    fn errs(proxy: &str) -> Vec<String> {
        match parse(&format!("{proxy}{SITE}"), Path::new("t.toml")) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn listen_tls_needs_a_certificate_and_some_listener_is_needed() {
        let e = errs(&format!("{BASE}listen_tls = [\"127.0.0.1:3\"]\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.toml:3: `listen_tls` is set but no [[proxy.certificate]]"));
        let e = errs("[proxy]\nlisten = []\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.toml:2: no listener"), "{e:?}");
        let e = errs("[proxy]\nthreads = 1\n");
        assert!(e[0].starts_with("t.toml: no listener"), "{e:?}");
    }

    #[test]
    fn a_listener_list_with_a_wrong_value_is_reported_once() {
        let e = errs("[proxy]\nlisten = [\"127.0.0.1:1\", 5]\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:2: this value is integer `5`"),
            "{e:?}"
        );
        let e = errs("[proxy]\nlisten_tls = [5]\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:2: this value is integer `5`"),
            "{e:?}"
        );
    }

    #[test]
    fn a_missing_pem_file_is_named_on_its_line() {
        let e = errs(&format!(
            "{BASE}listen_tls = [\"127.0.0.1:3\"]\n[[proxy.certificate]]\ncert = \"/nonexistent/a.pem\"\nkey = \"/nonexistent/a.key\"\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:5: certificate: cannot read `/nonexistent/a.pem`"),
            "{e:?}"
        );
    }
}
