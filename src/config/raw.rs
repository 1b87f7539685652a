//! The file as written: serde structs that mirror the TOML, with spans kept for line numbers.
//! Defaults live here, once; `docs/CONFIG.md` and `conf/consentgate.toml` document them.

use crate::config::Mode;
use crate::consent::gpc::GpcPolicy;
use crate::cookies::gate::UnknownPolicy;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub proxy: RawProxy,
    #[serde(default)]
    pub site: Vec<RawSite>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub listen: Spanned<Vec<Spanned<String>>>,
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
    pub upstreams: Spanned<Vec<Spanned<String>>>,
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
    pub block_responses: Option<Spanned<crate::trackers::respond::BlockResponses>>,
    #[serde(default)]
    pub csp: Option<Spanned<crate::trackers::csp::CspConfig>>,
    #[serde(default)]
    pub html: Option<Spanned<RawHtml>>,
    /// `[site.timeouts]`: origin connect/read/write/idle timeouts (config::connections).
    #[serde(default)]
    pub timeouts: Option<Spanned<crate::config::connections::RawSiteTimeouts>>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsent {
    #[serde(default = "consent_cookie")]
    pub cookie: Spanned<String>,
    /// `None` = not written: first-party plus every format whose table is present.
    #[serde(default)]
    pub sources: Option<Spanned<Vec<Spanned<String>>>>,
    pub tcf: Option<Spanned<crate::consent::tcf::TcfConfig>>,
    pub onetrust: Option<Spanned<crate::consent::onetrust::OneTrustConfig>>,
    pub cookiebot: Option<Spanned<crate::consent::cookiebot::CookiebotConfig>>,
    pub cookieyes: Option<Spanned<crate::consent::cookieyes::CookieYesConfig>>,
    pub complianz: Option<Spanned<crate::consent::complianz::ComplianzConfig>>,
    pub klaro: Option<Spanned<crate::consent::klaro::KlaroConfig>>,
    pub didomi: Option<Spanned<crate::consent::didomi::DidomiConfig>>,
}

impl Default for RawConsent {
    fn default() -> Self {
        RawConsent {
            cookie: consent_cookie(),
            sources: None,
            tcf: None,
            onetrust: None,
            cookiebot: None,
            cookieyes: None,
            complianz: None,
            klaro: None,
            didomi: None,
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

/// Rewrites serde's messages into "what is wrong; how to fix it".
pub fn explain_toml_error(msg: &str) -> String {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some((key, expected)) = rest.split_once('`') {
            let known: Vec<&str> = expected
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|s| !s.is_empty())
                .collect();
            let hint = closest(key, &known)
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            let list = if known.is_empty() {
                "this table takes no keys".to_string()
            } else {
                format!("known keys here: {}", known.join(", "))
            };
            return format!("unknown key `{key}`; {hint}{list}");
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        if let Some((val, expected)) = rest.split_once('`') {
            let known: Vec<&str> = expected
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|s| !s.is_empty())
                .collect();
            return format!(
                "`{val}` is not allowed here; use one of: {}",
                known.join(", ")
            );
        }
    }
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        return format!("missing key `{field}`; add it to this table");
    }
    if let Some((found, expected)) = msg
        .strip_prefix("invalid type: ")
        .and_then(|r| r.split_once(", expected "))
    {
        return format!("this value is {found}, but {expected} is wanted here; write {expected}");
    }
    if msg.starts_with("wanted string or table") {
        return "this value must be one of the words this key allows, in quotes (the example in \
                conf/consentgate.toml lists them)"
            .to_string();
    }
    msg.to_string()
}

/// The known key nearest to a misspelt one (edit distance at most 2).
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
