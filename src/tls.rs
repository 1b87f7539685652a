//! TLS on the proxy's `listen_tls` listeners: the certificates of `[[proxy.certificate]]`,
//! loaded and checked when the configuration is (so `check` and a failed reload name the bad
//! file), and the SNI resolver rustls asks for one at each handshake.
//!
//! The resolver reads the certificate set from the current [`Runtime`], so a reload that swaps
//! the runtime in swaps the certificates too, and a reload that fails keeps both.
//!
//! Selection (pure, [`Certificates::select`]): an exact DNS name of a certificate's
//! subjectAltName wins, then a wildcard (`*.example.com` matches one label, as RFC 6125 6.4.3
//! and browsers do), then the first configured certificate (also when the client sends no SNI).

use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use pingora::tls::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::sync::Arc;

/// One loaded `[[proxy.certificate]]`.
pub struct Certificate {
    /// The certificate's PEM file, as configured (for messages).
    pub cert_file: String,
    /// The chain and the signing key, as rustls serves them.
    pub key: Arc<CertifiedKey>,
    /// The DNS names of the leaf's subjectAltName, lower case (`*.example.com` kept as is).
    pub names: Vec<String>,
}

/// Why a certificate or its key cannot be used. Each names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateError {
    Unreadable {
        file: String,
        reason: String,
    },
    /// No `CERTIFICATE` block, or a block that is not valid PEM/DER.
    NoCertificate {
        file: String,
        reason: String,
    },
    /// No `PRIVATE KEY` / `RSA PRIVATE KEY` / `EC PRIVATE KEY` block.
    NoKey {
        file: String,
        reason: String,
    },
    /// The key is of a kind rustls cannot sign with.
    BadKey {
        file: String,
        reason: String,
    },
    /// The key is not the one of the certificate.
    KeyMismatch {
        cert: String,
        key: String,
    },
    /// The leaf's notAfter is past (`expired`) or its notBefore in the future.
    NotValidNow {
        file: String,
        expired: bool,
        date: String,
    },
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CertificateError::*;
        match self {
            Unreadable { file, reason } => write!(f, "cannot read `{file}`: {reason}"),
            NoCertificate { file, reason } => write!(
                f,
                "`{file}` holds no usable certificate ({reason}); `cert` takes a PEM file starting with -----BEGIN CERTIFICATE----- (the leaf first, then its intermediates)"
            ),
            NoKey { file, reason } => write!(
                f,
                "`{file}` holds no private key ({reason}); `key` takes a PEM file with -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY)"
            ),
            BadKey { file, reason } => write!(
                f,
                "the key in `{file}` cannot be used: {reason}; use an RSA, ECDSA (P-256/P-384) or Ed25519 key"
            ),
            KeyMismatch { cert, key } => write!(
                f,
                "the key in `{key}` does not belong to the certificate in `{cert}`; pair each certificate with its own key"
            ),
            NotValidNow {
                file,
                expired: true,
                date,
            } => write!(
                f,
                "the certificate in `{file}` expired on {date}; every client refuses it, renew it"
            ),
            NotValidNow { file, date, .. } => write!(
                f,
                "the certificate in `{file}` is not valid before {date}; check the clock or the certificate"
            ),
        }
    }
}

impl Certificate {
    /// Loads a PEM chain and its key and checks them: both parse, the key is the
    /// certificate's, and the leaf is valid at `now` (seconds since the epoch).
    pub fn load(
        cert_file: &str,
        key_file: &str,
        now: i64,
    ) -> Result<Certificate, CertificateError> {
        let read = |file: &str| {
            std::fs::read(file).map_err(|e| CertificateError::Unreadable {
                file: file.to_string(),
                reason: e.to_string(),
            })
        };
        let cert_pem = read(cert_file)?;
        let key_pem = read(key_file)?;
        let no_cert = |reason: String| CertificateError::NoCertificate {
            file: cert_file.to_string(),
            reason,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| no_cert(e.to_string()))?;
        let leaf = chain
            .first()
            .ok_or_else(|| no_cert("no CERTIFICATE block".into()))?;
        let (names, not_before, not_after) =
            leaf_facts(leaf).map_err(|e| no_cert(format!("not an X.509 certificate: {e}")))?;
        if now > not_after.0 || now < not_before.0 {
            return Err(CertificateError::NotValidNow {
                file: cert_file.to_string(),
                expired: now > not_after.0,
                date: if now > not_after.0 {
                    not_after.1
                } else {
                    not_before.1
                },
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| CertificateError::NoKey {
            file: key_file.to_string(),
            reason: e.to_string(),
        })?;
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => CertificateError::KeyMismatch {
                cert: cert_file.to_string(),
                key: key_file.to_string(),
            },
            // Comparing the keys parses the certificate as webpki does (X.509 v3 only).
            rustls::Error::InvalidCertificate(e) => no_cert(format!("{e:?}")),
            other => CertificateError::BadKey {
                file: key_file.to_string(),
                reason: other.to_string(),
            },
        })?;
        Ok(Certificate {
            cert_file: cert_file.to_string(),
            key: Arc::new(certified),
            names,
        })
    }
}

/// The leaf's DNS names and its validity bounds (epoch seconds, and as text).
#[allow(clippy::type_complexity)]
fn leaf_facts(
    der: &CertificateDer<'_>,
) -> Result<(Vec<String>, (i64, String), (i64, String)), String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    let v = cert.validity();
    Ok((
        names,
        (v.not_before.timestamp(), v.not_before.to_string()),
        (v.not_after.timestamp(), v.not_after.to_string()),
    ))
}

/// Whether a certificate name (`example.com`, `*.example.com`) covers a host name; both lower
/// case. A wildcard stands for exactly one whole label, never for the bare domain.
pub fn name_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        None => pattern == host,
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
    }
}

/// The certificates of one configuration, in configuration order.
#[derive(Default)]
pub struct Certificates(pub Vec<Certificate>);

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|c| &c.cert_file))
            .finish()
    }
}

impl Certificates {
    /// The index of the certificate for an SNI name: an exact name first, then a wildcard,
    /// then the first certificate. `None` only when there is none.
    pub fn select_index(&self, sni: Option<&str>) -> Option<usize> {
        if self.0.is_empty() {
            return None;
        }
        let Some(sni) = sni else { return Some(0) };
        let host = sni.trim_end_matches('.').to_ascii_lowercase();
        let find = |wild: bool| {
            self.0.iter().position(|c| {
                c.names
                    .iter()
                    .any(|n| n.starts_with("*.") == wild && name_matches(n, &host))
            })
        };
        find(false).or_else(|| find(true)).or(Some(0))
    }

    pub fn select(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        self.select_index(sni).map(|i| &self.0[i].key)
    }
}

/// rustls's certificate resolver for the TLS listeners: the current runtime's certificates.
pub struct SniResolver {
    pub runtime: Arc<ArcSwap<Runtime>>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let runtime = self.runtime.load();
        let chosen = runtime
            .proxy
            .tls
            .certificates
            .select(hello.server_name())
            .cloned();
        if chosen.is_none() {
            // Only possible if listen_tls was added by a reload (listeners are fixed at start
            // and validation refuses listen_tls without a certificate).
            crate::metrics::TLS_HANDSHAKE_FAILURES
                .with_label_values(&["no_certificate"])
                .inc();
        }
        chosen
    }
}

/// The rustls server configuration of the TLS listeners: TLS 1.2 and 1.3 only, the SNI
/// resolver, and ALPN `h2` then `http/1.1`.
pub fn server_config(runtime: Arc<ArcSwap<Runtime>>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { runtime }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        // RFC 6125 6.4.3: the wildcard is the complete left-most label and matches one label.
        assert!(name_matches("*.example.com", "www.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "wwwexample.com"));
        assert!(!name_matches("*.example.com", ".example.com"));
        assert!(name_matches("example.com", "example.com"));
        assert!(!name_matches("example.com", "www.example.com"));
    }
}
