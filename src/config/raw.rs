//! The file as written: serde structs that mirror the TOML, with spans kept for line numbers.
//! Defaults live here, once; `docs/CONFIG.md` and `conf/consentgate.toml` document them.

use crate::config::located::Located;
use crate::config::{ConfigErrorKind, Mode};
use crate::consent::gpc::GpcPolicy;
use crate::consent::registry;
use crate::cookies::gate::UnknownPolicy;
use serde::de;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::LazyLock;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub proxy: RawProxy,
    #[serde(default)]
    pub site: Vec<RawSite>,
    /// `[receipts]`: consent receipts and hourly aggregates (config/receipts.rs).
    pub receipts: Option<crate::config::receipts::RawReceipts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    /// Plain HTTP listeners; may be left out when `listen_tls` is given.
    pub listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub admin: Option<Spanned<String>>,
    pub threads: Option<Spanned<i64>>,
    #[serde(default = "yes")]
    pub access_log: bool,
    #[serde(default = "grace_period")]
    pub grace_period_seconds: u64,
    #[serde(default = "shutdown_timeout")]
    pub shutdown_timeout_seconds: u64,
    // --- Request-path limits and admin access (issue 8: items 1, 5); validated in
    // `config/request_path.rs`. Kept together so other `[proxy]` keys merge apart. ---
    pub max_request_cookies: Option<Spanned<i64>>,
    pub max_expiry_lines: Option<Spanned<i64>>,
    #[serde(default)]
    pub admin_hosts: Vec<Spanned<String>>,
    pub admin_token: Option<Spanned<String>>,
    // --- end of request-path keys ---

    // --- Forwarding headers (issue 10); validated in `config/forwarded.rs`. ---
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    #[serde(default)]
    pub forwarded_headers: crate::config::ForwardedHeaders,
    #[serde(default)]
    pub via: bool,
    // --- end of forwarding keys ---

    // --- Connection timeouts and request limits (config::connections) ---
    pub client_header_timeout_ms: Option<Spanned<i64>>,
    pub client_body_timeout_ms: Option<Spanned<i64>>,
    pub send_timeout_ms: Option<Spanned<i64>>,
    pub keepalive_timeout_ms: Option<Spanned<i64>>,
    pub max_request_header_bytes: Option<Spanned<i64>>,
    pub max_request_headers: Option<Spanned<i64>>,
    pub max_uri_bytes: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
    // --- end of connection keys ---

    // --- TLS and HTTP/2 (config::tls) ---
    pub listen_tls: Option<Spanned<Vec<Spanned<String>>>>,
    /// `[[proxy.certificate]]` tables.
    #[serde(default)]
    pub certificate: Vec<crate::config::tls::RawCertificate>,
    #[serde(default)]
    pub h2c: bool,
    // --- end of TLS keys ---
    /// `[proxy.geo]` (config::geo).
    pub geo: Option<Located<crate::config::geo::RawGeo>>,
}

impl RawProxy {
    pub fn connection_keys(&self) -> crate::config::connections::RawConnectionKeys<'_> {
        crate::config::connections::RawConnectionKeys {
            client_header_timeout_ms: &self.client_header_timeout_ms,
            client_body_timeout_ms: &self.client_body_timeout_ms,
            send_timeout_ms: &self.send_timeout_ms,
            keepalive_timeout_ms: &self.keepalive_timeout_ms,
            max_request_header_bytes: &self.max_request_header_bytes,
            max_request_headers: &self.max_request_headers,
            max_uri_bytes: &self.max_uri_bytes,
            max_connections: &self.max_connections,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub name: Spanned<String>,
    #[serde(default = "any_host")]
    pub hosts: Spanned<Vec<Spanned<String>>>,
    pub upstreams: Spanned<Vec<Spanned<crate::config::upstreams::RawUpstream>>>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub unknown_cookies: UnknownPolicy,
    #[serde(default)]
    pub gpc: GpcPolicy,
    #[serde(default)]
    pub cookie_domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub cookie_paths: Vec<Spanned<String>>,
    #[serde(default)]
    pub consent: RawConsent,
    #[serde(default)]
    pub cookies: RawCookies,
    /// `[[site.blocklist]]` tables.
    #[serde(default)]
    pub blocklist: Vec<RawBlocklist>,
    #[serde(default)]
    pub block_responses: Option<Located<crate::trackers::respond::BlockResponses>>,
    #[serde(default)]
    pub csp: Option<Located<crate::trackers::csp::CspConfig>>,
    /// `[site.consent_mode]`: Google Consent Mode v2 (src/consent_mode.rs).
    #[serde(default)]
    pub consent_mode: Option<Located<crate::consent_mode::ConsentModeConfig>>,
    #[serde(default)]
    pub html: Option<Located<RawHtml>>,
    /// `[site.timeouts]`: origin connect/read/write/idle timeouts (config::connections).
    #[serde(default)]
    pub timeouts: Option<Located<crate::config::connections::RawSiteTimeouts>>,
    // --- Upstream keys (config::upstreams) ---
    pub lb: Option<Spanned<crate::config::upstreams::Lb>>,
    pub hash_cookie: Option<Spanned<String>>,
    pub upstream_tls: Option<Spanned<bool>>,
    pub upstream_sni: Option<Spanned<String>>,
    pub upstream_ca: Option<Spanned<String>>,
    /// `[site.health_check]`.
    pub health_check: Option<Located<crate::config::upstreams::RawHealthCheck>>,
    // --- end of upstream keys ---
    // --- Jurisdictions (config::jurisdiction) ---
    /// `[[site.jurisdiction]]` tables, in order.
    #[serde(default)]
    pub jurisdiction: Vec<crate::config::jurisdiction::RawJurisdiction>,
    /// The rule for a visitor whose location is unknown (default: the strictest).
    pub unknown_jurisdiction: Option<Spanned<String>>,
    // --- end of jurisdiction keys ---
}

impl RawSite {
    pub fn upstream_keys(&self) -> crate::config::upstreams::RawUpstreamKeys<'_> {
        crate::config::upstreams::RawUpstreamKeys {
            upstreams: &self.upstreams,
            lb: &self.lb,
            hash_cookie: &self.hash_cookie,
            upstream_tls: &self.upstream_tls,
            upstream_sni: &self.upstream_sni,
            upstream_ca: &self.upstream_ca,
            health_check: &self.health_check,
        }
    }
}

/// `[site.html]`: HTML neutralization.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHtml {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Use the built-in inline-script snippets (gtag/GTM, Meta pixel, Matomo, Hotjar, Clarity).
    #[serde(default = "yes")]
    pub default_snippets: bool,
    #[serde(default)]
    pub snippets: RawSnippets,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSnippets {
    #[serde(default)]
    pub preferences: Vec<String>,
    #[serde(default)]
    pub analytics: Vec<String>,
    #[serde(default)]
    pub marketing: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBlocklist {
    pub category: Spanned<String>,
    pub path: Spanned<String>,
}

/// `[site.consent]`: the first-party cookie, `sources`, and one table per consent format that
/// takes one (`[site.consent.tcf]`, ...), kept by name: the formats are listed once, in
/// `consent::registry`, and a table name the registry does not know is an unknown key.
pub struct RawConsent {
    pub cookie: Spanned<String>,
    /// `None` = not written: first-party plus every format whose table is present.
    pub sources: Option<Spanned<Vec<Spanned<String>>>>,
    /// Format name -> its table, each key with its span (a bad key is reported on its line).
    pub tables: BTreeMap<String, Located<FormatTable>>,
    /// `[[site.consent.header]]` (or a single `[site.consent.header]` table): consent sent by
    /// apps in request headers.
    pub header: Vec<Spanned<RawHeaderSource>>,
}

/// One `[[site.consent.header]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderSource {
    pub name: Spanned<String>,
    pub format: Spanned<String>,
}

/// `header` as written: one table (`[site.consent.header]`, as issue 11 writes it) or an array
/// of them (`[[site.consent.header]]`, one per header).
enum HeaderSources {
    One(RawHeaderSource),
    Many(Vec<Spanned<RawHeaderSource>>),
}

impl HeaderSources {
    /// The entries, a single table spanning where it is written.
    fn entries(h: Spanned<HeaderSources>) -> Vec<Spanned<RawHeaderSource>> {
        let span = h.span();
        match h.into_inner() {
            HeaderSources::One(one) => vec![Spanned::new(span, one)],
            HeaderSources::Many(many) => many,
        }
    }
}

impl<'de> Deserialize<'de> for HeaderSources {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeaderSourcesVisitor)
    }
}

struct HeaderSourcesVisitor;

impl<'de> de::Visitor<'de> for HeaderSourcesVisitor {
    type Value = HeaderSources;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table with `name` and `format` (or an array of such tables)")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<HeaderSources, A::Error> {
        // The entry's own keys keep their spans: they are read from the same deserializer.
        RawHeaderSource::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(HeaderSources::One)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<HeaderSources, A::Error> {
        let mut many = Vec::new();
        while let Some(entry) = seq.next_element()? {
            many.push(entry);
        }
        Ok(HeaderSources::Many(many))
    }
}

/// One `[site.consent.NAME]` table as written.
pub type FormatTable = BTreeMap<String, Located<toml::Value>>;

impl Default for RawConsent {
    fn default() -> Self {
        RawConsent {
            cookie: consent_cookie(),
            sources: None,
            tables: BTreeMap::new(),
            header: Vec::new(),
        }
    }
}

/// The keys `[site.consent]` takes: its own two, then every format with a table.
fn consent_keys() -> &'static [&'static str] {
    static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        let formats = registry::FORMATS.iter().filter(|f| f.has_table);
        ["cookie", "sources"]
            .into_iter()
            .chain(formats.map(|f| f.name))
            .chain(["header"])
            .collect()
    });
    &KEYS
}

impl<'de> Deserialize<'de> for RawConsent {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ConsentVisitor)
    }
}

struct ConsentVisitor;

impl<'de> de::Visitor<'de> for ConsentVisitor {
    type Value = RawConsent;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawConsent, A::Error> {
        let mut out = RawConsent::default();
        // The key is checked while it is read, so the error carries the key's line.
        while let Some(key) = map.next_key_seed(ConsentKey)? {
            match key.as_str() {
                "cookie" => out.cookie = map.next_value()?,
                "sources" => out.sources = Some(map.next_value()?),
                "header" => out.header = HeaderSources::entries(map.next_value()?),
                _ => {
                    out.tables.insert(key, map.next_value()?);
                }
            }
        }
        Ok(out)
    }
}

/// A `[site.consent]` key, refused unless it is one of [`consent_keys`].
struct ConsentKey;

impl<'de> de::DeserializeSeed<'de> for ConsentKey {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let key = String::deserialize(d)?;
        if consent_keys().contains(&key.as_str()) {
            Ok(key)
        } else {
            Err(de::Error::unknown_field(&key, consent_keys()))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCookies {
    #[serde(default)]
    pub necessary: Vec<Spanned<String>>,
    #[serde(default)]
    pub preferences: Vec<Spanned<String>>,
    #[serde(default)]
    pub analytics: Vec<Spanned<String>>,
    #[serde(default)]
    pub marketing: Vec<Spanned<String>>,
    /// Path to an Open Cookie Database CSV.
    pub open_cookie_database: Option<Spanned<String>>,
    /// Cookie pattern -> IAB TCF vendor id whose consent the cookie also needs.
    #[serde(default)]
    pub vendors: BTreeMap<String, Spanned<i64>>,
}

fn yes() -> bool {
    true
}
fn grace_period() -> u64 {
    0
}
fn shutdown_timeout() -> u64 {
    10
}
fn any_host() -> Spanned<Vec<Spanned<String>>> {
    Spanned::new(0..0, vec![Spanned::new(0..0, "*".to_string())])
}
fn consent_cookie() -> Spanned<String> {
    Spanned::new(0..0, "consent".to_string())
}

/// Turns serde's message into a [`ConfigErrorKind`] (whose text says how to fix it).
pub fn toml_error_kind(msg: &str) -> ConfigErrorKind {
    let msg = msg.trim();
    // serde lists the expected names as "`a`, `b`" (or "there are no fields").
    let names = |expected: &str| -> Vec<String> {
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some((key, expected)) = rest.split_once('`') {
            let known = names(expected);
            let refs: Vec<&str> = known.iter().map(String::as_str).collect();
            return ConfigErrorKind::UnknownKey {
                key: key.to_string(),
                suggestion: closest(key, &refs).map(str::to_string),
                known,
            };
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        if let Some((val, expected)) = rest.split_once('`') {
            return ConfigErrorKind::NotAllowed {
                value: val.to_string(),
                allowed: names(expected),
            };
        }
    }
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        return ConfigErrorKind::MissingKey {
            key: field.to_string(),
        };
    }
    if let Some((found, expected)) = msg
        .strip_prefix("invalid type: ")
        .and_then(|r| r.split_once(", expected "))
    {
        return ConfigErrorKind::WrongType {
            found: found.to_string(),
            expected: expected.to_string(),
        };
    }
    if msg.starts_with("wanted string or table") {
        return ConfigErrorKind::NotAWord;
    }
    ConfigErrorKind::Toml(msg.to_string())
}

/// The known key nearest to a misspelt one (edit distance at most 2).
pub(super) fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}
