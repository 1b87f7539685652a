//! CookieYes `cookieyes-consent`:
//! `consentid:..,consent:yes,action:yes,necessary:yes,functional:no,analytics:no,performance:no,advertisement:no,other:no`.

use super::{combine_flags, Category, ConsentError, Grants, Verdict};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[site.consent.cookieyes]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookieYesConfig {
    pub cookie: String,
    /// CookieYes category -> ours. Default: analytics and performance -> analytics,
    /// advertisement -> marketing, functional -> preferences.
    pub map: BTreeMap<String, Category>,
}

impl Default for CookieYesConfig {
    fn default() -> Self {
        CookieYesConfig {
            cookie: "cookieyes-consent".into(),
            map: [
                ("analytics", Category::Analytics),
                ("performance", Category::Analytics),
                ("advertisement", Category::Marketing),
                ("functional", Category::Preferences),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }
    }
}

pub fn decode(text: &str) -> Result<Vec<(&str, &str)>, ConsentError> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once(':').ok_or_else(|| {
            ConsentError::new("a field has no `:` (is this a cookieyes-consent cookie?)")
        })?;
        out.push((k.trim(), v.trim()));
    }
    if !out
        .iter()
        .any(|(k, _)| *k == "consentid" || *k == "consent" || *k == "necessary")
    {
        return Err(ConsentError::new("no consentid/consent/necessary field"));
    }
    Ok(out)
}

pub fn parse(text: &str, cfg: &CookieYesConfig) -> Result<Verdict, ConsentError> {
    let fields = decode(text)?;
    let mut flags = Vec::new();
    for (k, v) in &fields {
        if let Some(cat) = cfg.map.get(*k) {
            let granted = match *v {
                "yes" => true,
                // CookieYes writes every flag empty (`analytics:,`) until the visitor chooses:
                // no consent yet, which is not an unreadable cookie.
                "no" | "" => false,
                _ => return Err(ConsentError::new(format!("`{k}` is neither yes nor no"))),
            };
            flags.push((*cat, granted));
        }
    }
    // `consent:no` (the visitor rejected) overrides anything else.
    if fields.iter().any(|(k, v)| *k == "consent" && *v == "no") {
        return Ok(Verdict::covering_all(Grants::NONE));
    }
    Ok(combine_flags(flags))
}

/// The format, for [`super::CookieReader`].
pub struct CookieYes;

impl super::CookieFormat for CookieYes {
    type Config = CookieYesConfig;
    const NAME: &'static str = "cookieyes";

    fn cookie(cfg: &CookieYesConfig) -> &str {
        &cfg.cookie
    }

    fn parse(text: &str, cfg: &CookieYesConfig) -> Result<Verdict, ConsentError> {
        parse(text, cfg)
    }

    fn details(text: &str) -> Option<serde_json::Value> {
        decode(text)
            .ok()
            .map(|f| serde_json::json!(f.into_iter().collect::<BTreeMap<_, _>>()))
    }
}

pub type CookieYesReader = super::CookieReader<CookieYes>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_cookie() {
        let cfg = CookieYesConfig::default();
        let v = "consentid:ZWdMRlBLbHhyU2d4dUdaSHpSb2JrNXJOd2ZQNXdWcmo,consent:yes,action:yes,necessary:yes,functional:no,analytics:yes,performance:yes,advertisement:no,other:no";
        let g = parse(v, &cfg).unwrap().grants();
        assert!(g.allows(Category::Analytics));
        assert!(!g.allows(Category::Marketing) && !g.allows(Category::Preferences));
        // analytics yes but performance no -> analytics refused (most restrictive).
        let g = parse("consent:yes,analytics:yes,performance:no", &cfg)
            .unwrap()
            .grants();
        assert!(!g.allows(Category::Analytics));
        let g = parse("consent:no,action:yes,analytics:yes", &cfg)
            .unwrap()
            .grants();
        assert_eq!(g, Grants::NONE);
    }

    #[test]
    fn empty_flags_before_a_choice_grant_nothing_without_error() {
        // As CookieYes wrote it before the visitor chose (tests/fixtures/consent/cookieyes.jsonl,
        // `captured-before-any-choice`).
        let v = "consentid:YjZOOUV4T2h6UkFoTUwzM2ZpWGE0SFFpZXZaUXFhMk8,consent:,action:,necessary:,functional:,analytics:,performance:,advertisement:,other:";
        assert_eq!(
            parse(v, &CookieYesConfig::default()).map(Verdict::grants),
            Ok(Grants::NONE)
        );
    }

    #[test]
    fn malformed() {
        let cfg = CookieYesConfig::default();
        assert!(parse("garbage", &cfg).is_err());
        assert!(parse("consent:yes,analytics:maybe", &cfg).is_err());
        assert!(parse("{\"analytics\":true}", &cfg).is_err());
        let big = format!("consent:yes,{}", "analytics:yes,".repeat(100_000));
        assert!(parse(&big, &cfg).is_ok());
    }
}
