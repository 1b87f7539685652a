//! The optional Content-Security-Policy built from the consented categories, so the browser
//! itself refuses the hosts of the others (DESIGN.md, "What a reverse proxy can and cannot see",
//! way 3). It is added next to any policy the origin sends: browsers enforce every policy, so
//! the origin's own rules still hold.

use crate::consent::{Category, Grants};
use serde::Deserialize;

/// `[site.csp]`.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CspConfig {
    /// A policy to extend, e.g. `"default-src 'self'; img-src 'self' data:"`. Its
    /// `script-src`, `img-src`, `connect-src` and `frame-src` (else `default-src`, else
    /// `'self'`) are the starting point for each.
    pub base: String,
    /// Sources allowed once the category is consented (`https://www.googletagmanager.com`,
    /// `https://*.google-analytics.com`, ...).
    pub preferences: Vec<String>,
    pub analytics: Vec<String>,
    pub marketing: Vec<String>,
    /// Send `Content-Security-Policy-Report-Only` instead (try a policy without breaking pages).
    pub report_only: bool,
}

/// The directives tracker tags load through.
const FETCH_DIRECTIVES: [&str; 4] = ["script-src", "img-src", "connect-src", "frame-src"];

/// One header value per combination of the three optional categories, computed at load.
#[derive(Clone, Debug)]
pub struct Csp {
    /// In canonical case: pingora writes a `&'static str` name exactly as given.
    pub header_name: &'static str,
    by_grants: Vec<String>,
}

fn check_source(s: &str) -> Result<(), String> {
    if s.is_empty() || s.contains([';', ',', ' ', '\t', '\n', '\r', '"']) {
        return Err(format!(
            "CSP source `{s}` may not be empty or contain spaces, `;`, `,` or quotes; write one host source per entry like \"https://*.example.com\""
        ));
    }
    Ok(())
}

/// The base policy's directives, as (lower-case name, value).
fn parse_base(base_policy: &str) -> Result<Vec<(String, String)>, String> {
    let mut base: Vec<(String, String)> = Vec::new();
    for d in base_policy.split(';') {
        let d = d.trim();
        if d.is_empty() {
            continue;
        }
        let (name, value) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!(
                "base policy directive `{name}` is not a CSP directive name"
            ));
        }
        if value.contains(['\r', '\n']) {
            return Err("base policy may not contain line breaks".into());
        }
        base.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(base)
}

/// The policy for one set of grants: the base policy, each fetch directive widened by the
/// sources of the granted categories.
/// `script_hash`: a `'sha256-...'` source for an inline script consentgate inserts, added to
/// `script-src` (and `script-src-elem` when the base has one) unless the directive allows
/// every inline script already (`'unsafe-inline'` with no nonce or hash: adding a hash would
/// turn `'unsafe-inline'` off in CSP2+ browsers and break the page's own inline scripts).
fn policy_for(
    cfg: &CspConfig,
    base: &[(String, String)],
    grants: Grants,
    script_hash: Option<&str>,
) -> String {
    let start = |directive: &str| -> String {
        base.iter()
            .find(|(n, _)| n == directive)
            .or_else(|| base.iter().find(|(n, _)| n == "default-src"))
            .map_or("'self'".to_string(), |(_, v)| v.clone())
    };
    let mut allowed: Vec<&str> = Vec::new();
    for (cat, list) in [
        (Category::Preferences, &cfg.preferences),
        (Category::Analytics, &cfg.analytics),
        (Category::Marketing, &cfg.marketing),
    ] {
        if grants.allows(cat) {
            allowed.extend(list.iter().map(String::as_str));
        }
    }
    let with_hash = |name: &str, value: &str| -> String {
        match script_hash {
            Some(h)
                if SCRIPT_DIRECTIVES.contains(&name)
                    && !allows_all_inline(value)
                    && !value.split_whitespace().any(|x| x == h) =>
            {
                if value.trim() == "'none'" || value.is_empty() {
                    h.to_string()
                } else {
                    format!("{value} {h}")
                }
            }
            _ => value.to_string(),
        }
    };
    let mut parts: Vec<String> = base
        .iter()
        .filter(|(n, _)| !FETCH_DIRECTIVES.contains(&n.as_str()))
        .map(|(n, v)| {
            let v = with_hash(n, v);
            if v.is_empty() {
                n.clone()
            } else {
                format!("{n} {v}")
            }
        })
        .collect();
    for d in FETCH_DIRECTIVES {
        let mut value = start(d);
        // 'none' cannot be combined with sources.
        if value.trim() == "'none'" && !allowed.is_empty() {
            value.clear();
        }
        for s in &allowed {
            if !value.split_whitespace().any(|x| x == *s) {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(s);
            }
        }
        let value = with_hash(d, &value);
        parts.push(format!("{d} {value}"));
    }
    parts.join("; ")
}

/// The directives a hash for an inserted `<script>` element goes in.
const SCRIPT_DIRECTIVES: [&str; 2] = ["script-src", "script-src-elem"];

/// Whether a source list runs every inline script: `'unsafe-inline'` without a nonce or hash
/// (either of which makes CSP2+ browsers ignore `'unsafe-inline'`).
fn allows_all_inline(value: &str) -> bool {
    let sources = || value.split_whitespace().map(str::to_ascii_lowercase);
    sources().any(|s| s == "'unsafe-inline'")
        && !sources().any(|s| {
            s.starts_with("'nonce-")
                || s.starts_with("'sha256-")
                || s.starts_with("'sha384-")
                || s.starts_with("'sha512-")
        })
}

impl Csp {
    pub fn build(cfg: &CspConfig) -> Result<Csp, String> {
        Csp::build_with_script_hashes(cfg, None)
    }

    /// Like [`Csp::build`], with a script hash source per grant set (indexed like
    /// [`crate::consent_mode::grants_index`]) allowed in `script-src`.
    pub fn build_with_script_hashes(
        cfg: &CspConfig,
        script_hashes: Option<&[String; 8]>,
    ) -> Result<Csp, String> {
        for s in cfg
            .preferences
            .iter()
            .chain(&cfg.analytics)
            .chain(&cfg.marketing)
        {
            check_source(s)?;
        }
        let base = parse_base(&cfg.base)?;
        let by_grants = (0u8..8)
            .map(|mask| {
                let hash = script_hashes.map(|h| h[mask as usize].as_str());
                policy_for(cfg, &base, grants_of(mask), hash)
            })
            .collect();
        Ok(Csp {
            header_name: if cfg.report_only {
                "Content-Security-Policy-Report-Only"
            } else {
                "Content-Security-Policy"
            },
            by_grants,
        })
    }

    /// The policy for a visitor's consent.
    pub fn header_value(&self, grants: Grants) -> &str {
        let mask = Category::OPTIONAL
            .iter()
            .enumerate()
            .filter(|(_, c)| grants.allows(**c))
            .fold(0u8, |m, (i, _)| m | 1 << i);
        &self.by_grants[mask as usize]
    }
}

impl Csp {
    /// The policy for a visitor's consent, with `'nonce-NONCE'` added to the directives that
    /// govern `<script>` elements (`script-src`, and `script-src-elem` when the base has one),
    /// so the page's scripts allowed by that nonce (the origin's own policy's, or the one
    /// consentgate moves a `<meta>` policy's scripts to) pass this policy too: browsers
    /// enforce every policy, and a page's nonce scripts would otherwise be blocked by this one.
    /// Not added where the directive runs every inline script already (`'unsafe-inline'`
    /// alone: a nonce would switch it off), nor twice. `nonce` is base64 (checked by the
    /// caller, see [`crate::consent_mode::page_nonce`]). Linear in the policy.
    pub fn header_value_with_nonce(&self, grants: Grants, nonce: &str) -> String {
        let policy = self.header_value(grants);
        let source = format!("'nonce-{nonce}'");
        policy
            .split("; ")
            .map(|directive| {
                let (name, value) = directive.split_once(' ').unwrap_or((directive, ""));
                let takes = SCRIPT_DIRECTIVES.contains(&name)
                    && !allows_all_inline(value)
                    && !value.split_whitespace().any(|s| s == source);
                match takes {
                    false => directive.to_string(),
                    true if value.trim() == "'none'" || value.is_empty() => {
                        format!("{name} {source}")
                    }
                    true => format!("{directive} {source}"),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether a nonce would be added for this visitor ([`Csp::header_value_with_nonce`]): no
    /// script directive of the policy runs every inline script anyway.
    pub fn takes_nonce(&self, grants: Grants) -> bool {
        self.header_value(grants).split("; ").any(|directive| {
            let (name, value) = directive.split_once(' ').unwrap_or((directive, ""));
            SCRIPT_DIRECTIVES.contains(&name) && !allows_all_inline(value)
        })
    }
}

fn grants_of(mask: u8) -> Grants {
    Grants::from_categories(
        Category::OPTIONAL
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, c)| *c),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CspConfig {
        CspConfig {
            base: "default-src 'self'; img-src 'self' data:; object-src 'none'".into(),
            analytics: vec![
                "https://www.googletagmanager.com".into(),
                "https://*.google-analytics.com".into(),
            ],
            marketing: vec!["https://connect.facebook.net".into()],
            ..Default::default()
        }
    }

    #[test]
    fn policy_follows_consent() {
        let csp = Csp::build(&cfg()).unwrap();
        let none = csp.header_value(Grants::NONE);
        assert_eq!(
            none,
            "default-src 'self'; object-src 'none'; script-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'"
        );
        let analytics = csp.header_value(Grants::from_categories([Category::Analytics]));
        assert!(analytics.contains(
            "script-src 'self' https://www.googletagmanager.com https://*.google-analytics.com;"
        ));
        assert!(!analytics.contains("facebook"));
        let all = csp.header_value(Grants::ALL);
        assert!(all.contains("connect.facebook.net") && all.contains("googletagmanager"));
        assert_eq!(csp.header_name, "Content-Security-Policy");
    }

    #[test]
    fn script_hashes_go_in_script_src_unless_all_inline_runs_anyway() {
        let hashes: [String; 8] = std::array::from_fn(|i| format!("'sha256-h{i}='"));
        let csp = Csp::build_with_script_hashes(&cfg(), Some(&hashes)).unwrap();
        let none = csp.header_value(Grants::NONE);
        assert!(none.contains("script-src 'self' 'sha256-h0='"), "{none}");
        let all = csp.header_value(Grants::ALL);
        assert!(
            all.contains("'sha256-h7='") && !all.contains("'sha256-h0='"),
            "{all}"
        );
        // 'unsafe-inline' alone already runs the script; a hash would switch it off.
        let c = CspConfig {
            base: "script-src 'self' 'unsafe-inline'; script-src-elem 'self' 'nonce-x'".into(),
            ..Default::default()
        };
        let csp = Csp::build_with_script_hashes(&c, Some(&hashes)).unwrap();
        let v = csp.header_value(Grants::NONE);
        assert!(v.contains("script-src 'self' 'unsafe-inline';"), "{v}");
        assert!(
            v.contains("script-src-elem 'self' 'nonce-x' 'sha256-h0='"),
            "{v}"
        );
    }

    #[test]
    fn a_page_nonce_goes_in_the_script_directives() {
        let hashes: [String; 8] = std::array::from_fn(|i| format!("'sha256-h{i}='"));
        let csp = Csp::build_with_script_hashes(&cfg(), Some(&hashes)).unwrap();
        let v = csp.header_value_with_nonce(Grants::NONE, "abc+/=");
        assert_eq!(
            v,
            "default-src 'self'; object-src 'none'; script-src 'self' 'sha256-h0=' 'nonce-abc+/='; img-src 'self' data:; connect-src 'self'; frame-src 'self'"
        );
        assert!(csp.takes_nonce(Grants::NONE));
        // 'unsafe-inline' alone: left as it is (a nonce would switch it off); an elem
        // directive that has a nonce already takes this one too; 'none' is replaced.
        let c = CspConfig {
            base: "script-src 'self' 'unsafe-inline'; script-src-elem 'self' 'nonce-x'".into(),
            ..Default::default()
        };
        let csp = Csp::build(&c).unwrap();
        let v = csp.header_value_with_nonce(Grants::NONE, "n1");
        assert!(v.contains("script-src 'self' 'unsafe-inline';"), "{v}");
        assert!(
            v.contains("script-src-elem 'self' 'nonce-x' 'nonce-n1'"),
            "{v}"
        );
        let c = CspConfig {
            base: "script-src 'unsafe-inline'".into(),
            ..Default::default()
        };
        assert!(!Csp::build(&c).unwrap().takes_nonce(Grants::NONE));
        let c = CspConfig {
            base: "script-src 'none'".into(),
            ..Default::default()
        };
        let v = Csp::build(&c)
            .unwrap()
            .header_value_with_nonce(Grants::NONE, "n1");
        assert!(v.starts_with("script-src 'nonce-n1';"), "{v}");
    }

    #[test]
    fn bad_sources_are_refused() {
        let mut c = cfg();
        c.analytics.push("https://a.com; script-src *".into());
        assert!(Csp::build(&c).is_err());
        let c = CspConfig {
            base: "default-src 'self'\r\nX: y".into(),
            ..Default::default()
        };
        assert!(Csp::build(&c).is_err());
    }
}
