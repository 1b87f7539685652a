//! Complianz: one cookie per category, `cmplz_statistics=allow|deny`, `cmplz_marketing`,
//! `cmplz_preferences`, `cmplz_functional` (functional is always allowed in Complianz).

use super::registry::TableReader;
use super::{combine_flags, Category, ConsentError, ConsentReader, SourceOutcome};
use crate::cookies::header::CookieJar;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `[site.consent.complianz]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplianzConfig {
    /// Cookie name prefix.
    pub prefix: String,
    /// Complianz category (the part after the prefix) -> ours. Default: statistics ->
    /// analytics, marketing -> marketing, preferences -> preferences, and the names Complianz 5
    /// and earlier wrote: stats -> analytics, prefs -> preferences.
    pub map: BTreeMap<String, Category>,
}

impl Default for ComplianzConfig {
    fn default() -> Self {
        ComplianzConfig {
            prefix: "cmplz_".into(),
            map: [
                ("statistics", Category::Analytics),
                ("marketing", Category::Marketing),
                ("preferences", Category::Preferences),
                // Complianz <= 5 (`assets/js/complianz.js`, `cmplzSaveCategoriesSelection`).
                ("stats", Category::Analytics),
                ("prefs", Category::Preferences),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }
    }
}

pub struct ComplianzReader {
    cfg: ComplianzConfig,
    /// The pattern `cmplz_*` that names the source.
    cookie: Arc<str>,
    /// The cookies read: the prefix followed by each mapped category (`cmplz_statistics`, ...).
    signal_cookies: Arc<[Arc<str>]>,
}

impl ComplianzReader {
    pub fn new(cfg: &ComplianzConfig) -> Result<Self, String> {
        if cfg.prefix.is_empty() {
            return Err("complianz `prefix` may not be empty".into());
        }
        Ok(ComplianzReader {
            cookie: format!("{}*", cfg.prefix).into(),
            signal_cookies: cfg
                .map
                .keys()
                .map(|k| Arc::from(format!("{}{k}", cfg.prefix)))
                .collect(),
            cfg: cfg.clone(),
        })
    }
}

fn flag(value: &[u8]) -> Result<bool, ConsentError> {
    match value {
        b"allow" => Ok(true),
        b"deny" => Ok(false),
        _ => Err(ConsentError::new(
            "a cmplz_ cookie is neither allow nor deny",
        )),
    }
}

impl TableReader for ComplianzReader {
    const NAME: &'static str = "complianz";
    type Config = ComplianzConfig;
    fn from_config(cfg: &ComplianzConfig) -> Result<Self, String> {
        Self::new(cfg)
    }
}

impl ConsentReader for ComplianzReader {
    fn format(&self) -> &'static str {
        <Self as TableReader>::NAME
    }

    fn cookie_patterns(&self) -> Vec<String> {
        vec![format!("{}*", self.cfg.prefix)]
    }

    fn read(&self, jar: &CookieJar<'_>, detail: bool) -> Option<SourceOutcome> {
        let mut flags = Vec::new();
        let mut present = false;
        let mut error = None;
        let mut seen = BTreeMap::new();
        for c in jar.with_prefix(&self.cfg.prefix) {
            let key = std::str::from_utf8(&c.name[self.cfg.prefix.len()..]).unwrap_or("");
            if let Some(cat) = self.cfg.map.get(key) {
                present = true;
                match flag(c.value) {
                    Ok(f) => flags.push((*cat, f)),
                    Err(e) => error = Some(e),
                }
                seen.insert(
                    key.to_string(),
                    String::from_utf8_lossy(c.value).into_owned(),
                );
            }
        }
        if !present {
            return None;
        }
        let mut o = match error {
            Some(e) => SourceOutcome::failed(self.format(), &self.cookie, e),
            None => SourceOutcome::with_verdict(self.format(), &self.cookie, combine_flags(flags)),
        };
        // The category cookies read, not the pattern, make the receipt's signal.
        o.signal_cookies = Some(self.signal_cookies.clone());
        if detail {
            o.details = Some(serde_json::json!(seen));
        }
        Some(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Grants;

    fn read(header: &str) -> Option<SourceOutcome> {
        let r = ComplianzReader::new(&ComplianzConfig::default()).unwrap();
        r.read(&CookieJar::from_headers([header.as_bytes()]), false)
    }

    #[test]
    fn per_category_cookies() {
        let o = read("cmplz_functional=allow; cmplz_statistics=allow; cmplz_marketing=deny; cmplz_preferences=deny; cmplz_policy_id=14").unwrap();
        assert!(o.granted.allows(Category::Analytics));
        assert!(!o.granted.allows(Category::Marketing));
        assert!(read("cmplz_banner-status=dismissed; other=1").is_none());
        let o = read("cmplz_statistics=yes").unwrap();
        assert!(o.error.is_some() && o.granted == Grants::NONE);
    }

    /// A receipt's signal is the category cookies read, not the pattern nor the other
    /// `cmplz_` cookies.
    #[test]
    fn decides_from_its_category_cookies_only() {
        let o = read("cmplz_statistics=allow; cmplz_policy_id=14").unwrap();
        assert!(o.decides_from_cookie(b"cmplz_statistics"));
        assert!(o.decides_from_cookie(b"cmplz_stats"));
        assert!(!o.decides_from_cookie(b"cmplz_policy_id"));
        assert!(!o.decides_from_cookie(b"cmplz_*"));
    }

    /// Complianz 5 and earlier wrote `cmplz_stats` and `cmplz_prefs` (Really-Simple-Plugins/
    /// complianz-gdpr, `assets/js/complianz.js` @00a1591, `cmplzSaveCategoriesSelection`).
    #[test]
    fn legacy_category_names() {
        let o = read("cmplz_choice=set; cmplz_stats=allow; cmplz_prefs=deny; cmplz_marketing=deny")
            .unwrap();
        assert!(o.granted.allows(Category::Analytics));
        assert!(!o.granted.allows(Category::Preferences));
        assert!(!o.granted.allows(Category::Marketing));
        let o = read("cmplz_stats=deny; cmplz_prefs=allow").unwrap();
        assert!(!o.granted.allows(Category::Analytics));
        assert!(o.granted.allows(Category::Preferences));
    }
}
