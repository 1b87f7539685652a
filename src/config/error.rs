//! What can be wrong in a configuration file, as types: [`ConfigError`] says where, its
//! [`ConfigErrorKind`] what. `Display` writes each as "what is wrong; how to fix it", the text
//! `consentgate check` prints.

use crate::consent::Category;
use std::fmt;

/// One problem in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem is not tied to a line.
    pub line: usize,
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.kind)
        } else {
            write!(f, "{}: {}", self.file, self.kind)
        }
    }
}

/// All problems found in one file.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A list that may not be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKey {
    Hosts,
    Upstreams,
    Sources,
}

/// What is wrong. Loaders with error types of their own (the Open Cookie Database, blocklists,
/// CSP, block responses, consent readers, cookie patterns) are carried as their message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigErrorKind {
    // --- Reading the file ---
    /// The file cannot be read (the I/O error's text).
    Unreadable(String),
    /// A TOML syntax error or a serde message with no better shape.
    Toml(String),
    UnknownKey {
        key: String,
        /// The known key nearest to it, if one is close.
        suggestion: Option<String>,
        known: Vec<String>,
    },
    /// A word this key does not take (`mode = "strict"`).
    NotAllowed {
        value: String,
        allowed: Vec<String>,
    },
    MissingKey {
        key: String,
    },
    WrongType {
        found: String,
        expected: String,
    },
    /// A key taking one of a few words got something else (a number, a table).
    NotAWord,

    // --- [proxy] ---
    BadAddress {
        what: &'static str,
        value: String,
    },
    EmptyList(ListKey),
    ThreadsOutOfRange(i64),
    /// `max_request_cookies`, `max_expiry_lines`.
    LimitOutOfRange {
        key: &'static str,
        value: i64,
        min: i64,
        max: i64,
        default: usize,
    },
    /// A `*_ms` timeout.
    TimeoutOutOfRange {
        key: &'static str,
        value: i64,
        max: i64,
    },
    /// A size or count limit of the connection layer.
    CountOutOfRange {
        key: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    UriOverHeader {
        uri: usize,
        header: usize,
    },
    BadAdminHost(String),
    /// A `trusted_proxies` entry that is not an address or CIDR range.
    BadTrustedProxy {
        value: String,
        reason: String,
    },
    /// The admin token is too short or has spaces; `from_env` when it came from the
    /// environment variable. The token itself is never part of the message.
    BadAdminToken {
        from_env: bool,
        reason: String,
    },
    /// A `[proxy.geo]` problem (the message says which key and how to fix it).
    Geo(String),
    /// A `[[site.jurisdiction]]` or `unknown_jurisdiction` problem.
    Jurisdiction(String),
    /// Neither `listen` nor `listen_tls` has an address.
    NoListener,
    /// `listen_tls` without any `[[proxy.certificate]]`.
    NoCertificate,
    /// A `[[proxy.certificate]]` that cannot be served (names its file).
    Certificate(crate::tls::CertificateError),

    // --- Sites ---
    NoSite,
    EmptySiteName,
    DuplicateSiteName(String),
    SecondDefaultSite {
        site: String,
        first: String,
    },
    BadHost(String),
    BadUpstream(String),
    /// `lb`, `hash_cookie`, `upstream_tls`/`_sni`/`_ca`, `[site.health_check]`.
    Upstream(super::upstreams::UpstreamProblem),
    BadCookieDomain(String),
    BadCookiePath(String),
    BadConsentCookie {
        name: String,
        reason: String,
    },
    BadPattern {
        pattern: String,
        category: Category,
        reason: String,
    },
    VendorOutOfRange {
        pattern: String,
        id: i64,
    },
    BadVendorPattern {
        pattern: String,
        reason: String,
    },
    /// The Open Cookie Database CSV cannot be loaded.
    Database(String),
    BlocklistCategory(String),
    NecessaryBlocklist,
    Blocklist {
        path: String,
        reason: String,
    },
    BlockResponses(String),
    Csp(String),
    ConsentMode(String),
    /// A `[receipts]` key (src/config/receipts.rs).
    Receipts(String),

    // --- Consent sources ---
    UnknownSource {
        value: String,
        /// The format name nearest to it, if one is close.
        suggestion: Option<&'static str>,
    },
    TableNotInSources(String),
    /// A consent reader refused its table's values.
    Reader {
        format: &'static str,
        reason: String,
    },
    /// A `[[site.consent.header]]` entry that cannot be used.
    HeaderSource(String),
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigErrorKind::*;
        match self {
            Unreadable(e) => write!(
                f,
                "cannot read the configuration file: {e}; pass an existing file with --config"
            ),
            Toml(m) => f.write_str(m),
            UnknownKey {
                key,
                suggestion,
                known,
            } => {
                write!(f, "unknown key `{key}`; ")?;
                if let Some(s) = suggestion {
                    write!(f, "did you mean `{s}`? ")?;
                }
                if known.is_empty() {
                    f.write_str("this table takes no keys")
                } else {
                    write!(f, "known keys here: {}", known.join(", "))
                }
            }
            NotAllowed { value, allowed } => write!(
                f,
                "`{value}` is not allowed here; use one of: {}",
                allowed.join(", ")
            ),
            MissingKey { key } => write!(f, "missing key `{key}`; add it to this table"),
            WrongType { found, expected } => {
                write!(f, "this value is {found}; write {expected} here instead")
            }
            NotAWord => f.write_str(
                "this value must be one of the words this key allows, in quotes (the example in \
                 conf/consentgate.toml lists them)",
            ),
            _ => self.fmt_proxy(f),
        }
    }
}

impl ConfigErrorKind {
    fn fmt_proxy(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigErrorKind::*;
        match self {
            BadAddress { what, value } => write!(
                f,
                "{what} `{value}` is not an IP:port address; write it like \"127.0.0.1:8080\" or \"[::1]:8080\""
            ),
            EmptyList(ListKey::Hosts) => f.write_str(
                "`hosts` is empty; list host names, `*.example.com` patterns, or \"*\" for the default site",
            ),
            EmptyList(ListKey::Upstreams) => f.write_str(
                "`upstreams` is empty; list at least one origin like \"127.0.0.1:8081\"",
            ),
            EmptyList(ListKey::Sources) => f.write_str(
                "`sources` is empty; list the consent formats to read, e.g. [\"first-party\", \"tcf\"]",
            ),
            NoListener => f.write_str(
                "no listener: give `listen` (plain HTTP) or `listen_tls` (HTTPS) at least one address like \"0.0.0.0:80\"",
            ),
            NoCertificate => f.write_str(
                "`listen_tls` is set but no [[proxy.certificate]] is configured; add one with `cert` and `key` (PEM files)",
            ),
            Certificate(e) => write!(f, "certificate: {e}"),
            ThreadsOutOfRange(n) => write!(
                f,
                "threads = {n} is out of range; use a number from 1 to the machine's cores"
            ),
            LimitOutOfRange {
                key,
                value,
                min,
                max,
                default,
            } => write!(
                f,
                "{key} = {value} is out of range; use a number from {min} to {max} (default {default})"
            ),
            TimeoutOutOfRange { key, value, max } => write!(
                f,
                "{key} = {value} is out of range; use milliseconds from 1 to {max} (every wait has a timeout)"
            ),
            CountOutOfRange {
                key,
                value,
                min,
                max,
            } => write!(
                f,
                "{key} = {value} is out of range; use a number from {min} to {max}"
            ),
            UriOverHeader { uri, header } => write!(
                f,
                "max_uri_bytes ({uri}) is larger than max_request_header_bytes ({header}), which also holds the request line; lower it or raise max_request_header_bytes"
            ),
            BadAdminHost(h) => write!(
                f,
                "admin host `{h}` is not a host name; write it like \"metrics.internal\" (no port, no scheme)"
            ),
            Geo(msg) => write!(f, "[proxy.geo] {msg}"),
            Jurisdiction(msg) => f.write_str(msg),
            BadTrustedProxy { value, reason } => write!(
                f,
                "trusted_proxies entry \"{value}\": {reason}; write an address or a CIDR range like \"10.0.0.0/8\" or \"2001:db8::/32\""
            ),
            BadAdminToken { from_env, reason } => {
                let source = if *from_env {
                    super::ADMIN_TOKEN_ENV
                } else {
                    "admin_token"
                };
                write!(f, "{source}: {reason}")
            }
            _ => self.fmt_site(f),
        }
    }

    fn fmt_site(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigErrorKind::*;
        match self {
            NoSite => f.write_str(
                "no [[site]] is configured; add one with `name`, `hosts` and `upstreams`",
            ),
            EmptySiteName => f.write_str("site `name` is empty; name the site"),
            DuplicateSiteName(n) => write!(
                f,
                "site name `{n}` is used twice; give each [[site]] its own name"
            ),
            SecondDefaultSite { site, first } => write!(
                f,
                "site `{site}` also has host \"*\", but `{first}` already is the default site; only one site may use \"*\""
            ),
            BadHost(h) => write!(
                f,
                "host pattern `{h}` is not valid; use `example.com`, `*.example.com` or \"*\" (no port, no scheme)"
            ),
            Upstream(p) => write!(f, "{p}"),
            BadUpstream(u) => write!(
                f,
                "upstream `{u}` is not a reachable HOST:PORT; write it like \"127.0.0.1:8081\""
            ),
            BadCookieDomain(d) => write!(
                f,
                "cookie domain `{d}` is not a domain name; write it like \"example.com\" or \".example.com\""
            ),
            BadCookiePath(p) => write!(
                f,
                "cookie path `{p}` must start with `/` and contain no `;` or spaces"
            ),
            _ => self.fmt_rules(f),
        }
    }

    /// Cookie rules, blocklists, CSP, consent sources.
    fn fmt_rules(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigErrorKind::*;
        match self {
            BadConsentCookie { name, reason } => {
                write!(f, "consent cookie name `{name}` is not usable: {reason}")
            }
            BadPattern {
                pattern,
                category,
                reason,
            } => write!(
                f,
                "cookie pattern `{pattern}` under {category}: {reason}; write a name, `prefix*` or a glob like `_ga_*`"
            ),
            VendorOutOfRange { pattern, id } => write!(
                f,
                "vendor id {id} for `{pattern}` is out of range; IAB vendor ids are 1 to 65535"
            ),
            BadVendorPattern { pattern, reason } => write!(
                f,
                "cookie pattern `{pattern}` in [site.cookies.vendors]: {reason}"
            ),
            Database(e) => write!(
                f,
                "open_cookie_database: {e}; point it at the Open Cookie Database CSV (open-cookie-database.csv)"
            ),
            BlocklistCategory(c) => write!(
                f,
                "unknown category `{c}` for a blocklist; use preferences, analytics or marketing"
            ),
            NecessaryBlocklist => f.write_str(
                "a blocklist of category necessary would never block (necessary is always granted); use preferences, analytics or marketing",
            ),
            Blocklist { path, reason } => write!(
                f,
                "blocklist `{path}`: {reason}; point `path` at an EasyList/Adblock Plus syntax file"
            ),
            BlockResponses(e) => write!(f, "[site.block_responses]: {e}"),
            Csp(e) => write!(f, "[site.csp]: {e}"),
            Receipts(e) => write!(f, "[receipts]: {e}"),
            ConsentMode(e) => write!(f, "[site.consent_mode]: {e}"),
            UnknownSource { value, suggestion } => {
                write!(f, "unknown consent source `{value}`; ")?;
                if let Some(s) = suggestion {
                    write!(f, "did you mean `{s}`? ")?;
                }
                let names: Vec<&str> = crate::consent::registry::names().collect();
                write!(f, "use one of: {}", names.join(", "))
            }
            TableNotInSources(name) => write!(
                f,
                "[site.consent.{name}] is configured but `{name}` is not in `sources`; add it there or remove the table"
            ),
            Reader { format, reason } => write!(f, "[site.consent.{format}]: {reason}"),
            HeaderSource(reason) => write!(f, "[[site.consent.header]]: {reason}"),
            // The other kinds are written by the three functions above; should one
            // ever fall through, its fields still say what is wrong.
            other => write!(f, "{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConfigErrorKind::*;
    use super::*;

    /// Every kind has its own sentence (none falls through to the `Debug` fallback), and the
    /// ones built from serde's messages read as "what is wrong; how to fix it".
    // Long by design: a table of one value per kind and the text it must show; splitting it
    // would only scatter the table.
    #[test]
    fn every_kind_has_its_text() {
        let s = String::new;
        let kinds = [
            Unreadable(s()),
            Toml("x".into()),
            UnknownKey {
                key: "thread".into(),
                suggestion: Some("threads".into()),
                known: vec!["threads".into()],
            },
            NotAllowed {
                value: s(),
                allowed: vec![],
            },
            MissingKey { key: s() },
            WrongType {
                found: s(),
                expected: s(),
            },
            NotAWord,
            BadAddress {
                what: "listen address",
                value: s(),
            },
            EmptyList(ListKey::Hosts),
            EmptyList(ListKey::Upstreams),
            EmptyList(ListKey::Sources),
            ThreadsOutOfRange(0),
            LimitOutOfRange {
                key: "k",
                value: 0,
                min: 1,
                max: 2,
                default: 1,
            },
            TimeoutOutOfRange {
                key: "k",
                value: 0,
                max: 1,
            },
            CountOutOfRange {
                key: "k",
                value: 0,
                min: 1,
                max: 2,
            },
            UriOverHeader { uri: 2, header: 1 },
            BadAdminHost(s()),
            BadTrustedProxy {
                value: s(),
                reason: s(),
            },
            BadAdminToken {
                from_env: true,
                reason: s(),
            },
            Geo(s()),
            Jurisdiction(s()),
            NoListener,
            NoCertificate,
            Certificate(crate::tls::CertificateError::KeyMismatch {
                cert: s(),
                key: s(),
            }),
            NoSite,
            EmptySiteName,
            DuplicateSiteName(s()),
            SecondDefaultSite {
                site: s(),
                first: s(),
            },
            BadHost(s()),
            BadUpstream(s()),
            Upstream(super::super::upstreams::UpstreamProblem::BadSni(s())),
            BadCookieDomain(s()),
            BadCookiePath(s()),
            BadConsentCookie {
                name: s(),
                reason: s(),
            },
            BadPattern {
                pattern: s(),
                category: Category::Analytics,
                reason: s(),
            },
            VendorOutOfRange {
                pattern: s(),
                id: 0,
            },
            BadVendorPattern {
                pattern: s(),
                reason: s(),
            },
            Database(s()),
            BlocklistCategory(s()),
            NecessaryBlocklist,
            Blocklist {
                path: s(),
                reason: s(),
            },
            BlockResponses(s()),
            Csp(s()),
            ConsentMode(s()),
            Receipts(s()),
            UnknownSource {
                value: s(),
                suggestion: None,
            },
            TableNotInSources(s()),
            Reader {
                format: "tcf",
                reason: s(),
            },
            HeaderSource(s()),
        ];
        for k in kinds {
            let text = k.to_string();
            assert_ne!(text, format!("{k:?}"), "{k:?} has no text of its own");
        }
        let k = UnknownKey {
            key: "thread".into(),
            suggestion: Some("threads".into()),
            known: vec!["listen".into(), "threads".into()],
        };
        assert_eq!(
            k.to_string(),
            "unknown key `thread`; did you mean `threads`? known keys here: listen, threads"
        );
        let env = BadAdminToken {
            from_env: true,
            reason: "r".into(),
        };
        assert_eq!(
            env.to_string(),
            format!("{}: r", crate::config::ADMIN_TOKEN_ENV)
        );
    }
}
