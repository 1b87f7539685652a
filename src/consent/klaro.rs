//! Klaro `klaro`: URL-encoded JSON keyed by service name (`{"google-analytics":true}`); a
//! service -> category table maps it to our categories.

use super::{combine_flags, Category, ConsentError, Verdict};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[site.consent.klaro]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KlaroConfig {
    pub cookie: String,
    /// Service name (as in the site's Klaro config) -> category. No default: each site names
    /// its services; an unmapped service grants nothing.
    pub services: BTreeMap<String, Category>,
}

impl Default for KlaroConfig {
    fn default() -> Self {
        KlaroConfig {
            cookie: "klaro".into(),
            services: BTreeMap::new(),
        }
    }
}

pub fn parse(text: &str, cfg: &KlaroConfig) -> Result<Verdict, ConsentError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ConsentError::new(format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ConsentError::new("not a JSON object of service -> true/false"))?;
    let mut flags = Vec::new();
    for (service, value) in obj {
        if let Some(cat) = cfg.services.get(service) {
            let granted = value.as_bool().ok_or_else(|| {
                ConsentError::new(format!("service `{service}` is not true/false"))
            })?;
            flags.push((*cat, granted));
        }
    }
    Ok(combine_flags(flags))
}

/// The format, for [`super::CookieReader`].
pub struct Klaro;

impl super::CookieFormat for Klaro {
    type Config = KlaroConfig;
    const NAME: &'static str = "klaro";

    fn cookie(cfg: &KlaroConfig) -> &str {
        &cfg.cookie
    }

    fn parse(text: &str, cfg: &KlaroConfig) -> Result<Verdict, ConsentError> {
        parse(text, cfg)
    }

    fn details(text: &str) -> Option<serde_json::Value> {
        serde_json::from_str(text).ok()
    }
}

pub type KlaroReader = super::CookieReader<Klaro>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Grants;

    fn cfg() -> KlaroConfig {
        KlaroConfig {
            services: [
                ("google-analytics", Category::Analytics),
                ("matomo", Category::Analytics),
                ("facebook-pixel", Category::Marketing),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn real_cookie() {
        let raw = "%7B%22google-analytics%22%3Atrue%2C%22matomo%22%3Atrue%2C%22facebook-pixel%22%3Afalse%2C%22klaro%22%3Atrue%7D";
        let g = parse(
            &crate::consent::url_decoded(raw.as_bytes()).unwrap(),
            &cfg(),
        )
        .unwrap()
        .grants();
        assert!(g.allows(Category::Analytics) && !g.allows(Category::Marketing));
        let g = parse(r#"{"google-analytics":true,"matomo":false}"#, &cfg())
            .unwrap()
            .grants();
        assert!(!g.allows(Category::Analytics));
        assert_eq!(
            parse(r#"{"unknown":true}"#, &cfg()).unwrap().grants(),
            Grants::NONE
        );
    }

    #[test]
    fn malformed() {
        assert!(parse("{", &cfg()).is_err());
        assert!(parse("[true]", &cfg()).is_err());
        assert!(parse(r#"{"matomo":"yes"}"#, &cfg()).is_err());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&deep, &cfg()).is_err());
    }
}
