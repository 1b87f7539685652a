//! Cookiebot `CookieConsent`: URL-encoded, JavaScript-object-like but not JSON:
//! `{stamp:'..',necessary:true,preferences:false,statistics:true,marketing:false,method:'explicit',ver:1,utc:..,region:'de'}`.
//! The value `-1` means the visitor is in a region where no consent is required.

use super::{combine_flags, Category, ConsentError, Grants, Verdict};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[site.consent.cookiebot]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookiebotConfig {
    pub cookie: String,
    /// Cookiebot key -> category. Default: preferences, statistics -> analytics, marketing.
    pub map: BTreeMap<String, Category>,
    /// What `-1` (no consent required in the visitor's region, as Cookiebot decided) grants:
    /// true = everything (Cookiebot's own behaviour); false = nothing.
    pub no_consent_region_grants: bool,
}

impl Default for CookiebotConfig {
    fn default() -> Self {
        CookiebotConfig {
            cookie: "CookieConsent".into(),
            map: [
                ("preferences", Category::Preferences),
                ("statistics", Category::Analytics),
                ("marketing", Category::Marketing),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            no_consent_region_grants: true,
        }
    }
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches(|c| c == '\'' || c == '"')
}

/// The decoded object: key -> raw value (quotes removed), borrowed from the text.
pub fn decode(text: &str) -> Result<Vec<(&str, &str)>, ConsentError> {
    let t = text.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .ok_or_else(|| ConsentError::new("not a {key:value,...} object"))?;
    let mut out = Vec::with_capacity(12);
    let mut quote: Option<u8> = None;
    let mut start = 0;
    let bytes = inner.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match (quote, *b) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(*b),
            (None, b',') => {
                push_field(&mut out, &inner[start..i])?;
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err(ConsentError::new("unterminated quoted value"));
    }
    push_field(&mut out, &inner[start..])?;
    Ok(out)
}

fn push_field<'a>(out: &mut Vec<(&'a str, &'a str)>, field: &'a str) -> Result<(), ConsentError> {
    let f = field.trim();
    if f.is_empty() {
        return Ok(());
    }
    let (k, v) = f
        .split_once(':')
        .ok_or_else(|| ConsentError::new("a field has no `:`"))?;
    out.push((unquote(k), unquote(v)));
    Ok(())
}

pub fn parse(text: &str, cfg: &CookiebotConfig) -> Result<Verdict, ConsentError> {
    if text.trim() == "-1" {
        return Ok(Verdict::covering_all(if cfg.no_consent_region_grants {
            Grants::ALL
        } else {
            Grants::NONE
        }));
    }
    let fields = decode(text)?;
    // Every value Cookiebot writes has `necessary` and its category fields; an object without
    // any (a value escaped twice reads as `{stamp:...}` alone) is not a choice: refused, and
    // counted as unreadable.
    if !fields
        .iter()
        .any(|(k, _)| *k == "necessary" || cfg.map.contains_key(*k))
    {
        return Err(ConsentError::new(
            "no consent fields (necessary, preferences, statistics, marketing)",
        ));
    }
    let mut flags: smallvec::SmallVec<[_; 4]> = smallvec::SmallVec::new();
    for (k, v) in &fields {
        if let Some(cat) = cfg.map.get(*k) {
            let granted = match *v {
                "true" => true,
                "false" => false,
                other => {
                    return Err(ConsentError::new(format!(
                        "`{k}` is `{}`, not true/false",
                        other.chars().take(16).collect::<String>()
                    )))
                }
            };
            flags.push((*cat, granted));
        }
    }
    Ok(combine_flags(flags))
}

/// The format, for [`super::CookieReader`].
pub struct Cookiebot;

impl super::CookieFormat for Cookiebot {
    type Config = CookiebotConfig;
    const NAME: &'static str = "cookiebot";

    fn cookie(cfg: &CookiebotConfig) -> &str {
        &cfg.cookie
    }

    fn parse(text: &str, cfg: &CookiebotConfig) -> Result<Verdict, ConsentError> {
        parse(text, cfg)
    }

    fn details(text: &str) -> Option<serde_json::Value> {
        Some(match decode(text) {
            Ok(f) => serde_json::json!(f.into_iter().collect::<BTreeMap<_, _>>()),
            Err(_) => serde_json::json!({ "value": text }),
        })
    }
}

pub type CookiebotReader = super::CookieReader<Cookiebot>;

#[cfg(test)]
mod tests {
    use super::*;

    // As Cookiebot writes it (URL-encoded).
    const REAL: &str = "%7Bstamp%3A%27-5%2FFJWmqBlyO2OgHRNq3s%2B9xwkzA7u3R9A5lMtzZ0g4Zq4KfMKdY5Ow%3D%3D%27%2Cnecessary%3Atrue%2Cpreferences%3Afalse%2Cstatistics%3Atrue%2Cmarketing%3Afalse%2Cmethod%3A%27explicit%27%2Cver%3A1%2Cutc%3A1732441551063%2Cregion%3A%27de%27%7D";

    #[test]
    fn real_cookie() {
        let text = super::super::url_decoded(REAL.as_bytes()).unwrap();
        let g = parse(&text, &CookiebotConfig::default()).unwrap().grants();
        assert!(g.allows(Category::Analytics));
        assert!(!g.allows(Category::Marketing) && !g.allows(Category::Preferences));
    }

    #[test]
    fn no_consent_region_and_malformed() {
        let cfg = CookiebotConfig::default();
        assert_eq!(parse("-1", &cfg).unwrap().grants(), Grants::ALL);
        let strict = CookiebotConfig {
            no_consent_region_grants: false,
            ..cfg.clone()
        };
        assert_eq!(parse("-1", &strict).unwrap().grants(), Grants::NONE);
        assert!(parse("{necessary:true,marketing:maybe}", &cfg).is_err());
        assert!(parse("necessary:true", &cfg).is_err());
        assert!(parse("{stamp:'abc,marketing:true}", &cfg).is_err());
        assert!(parse("{}", &cfg).is_err());
        // Seen on a live site (operaballet.nl): the value escaped twice, so only `stamp` reads.
        assert!(parse("{stamp:^%^27abc^%^27^%^2Cnecessary^%^3Atrue}", &cfg).is_err());
        assert!(parse("{stamp:'abc',necessary:true}", &cfg).is_ok());
        let big = format!("{{{}}}", "statistics:true,".repeat(100_000));
        assert!(parse(&big, &cfg)
            .unwrap()
            .grants()
            .allows(Category::Analytics));
    }
}
