//! Didomi `didomi_token`: base64 (standard or URL-safe, padding optional) JSON with
//! `purposes.enabled` / `purposes.disabled` (and vendors). Purposes map to categories like TCF.

use super::{Category, ConsentError, Verdict};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::Deserialize;

/// `[site.consent.didomi]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DidomiConfig {
    pub cookie: String,
    /// Purposes (Didomi ids) that must all be enabled per category. Defaults mirror the TCF
    /// table: `cookies` is TCF purpose 1, `select_basic_ads` 2, `create_ads_profile` 3,
    /// `select_personalized_ads` 4, `create_content_profile` 5, `select_personalized_content` 6,
    /// `measure_ad_performance` 7, `measure_content_performance` 8, `market_research` 9.
    pub analytics: Vec<String>,
    pub marketing: Vec<String>,
    pub preferences: Vec<String>,
}

impl Default for DidomiConfig {
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        DidomiConfig {
            cookie: "didomi_token".into(),
            analytics: v(&["cookies", "measure_content_performance", "market_research"]),
            marketing: v(&[
                "cookies",
                "select_basic_ads",
                "create_ads_profile",
                "select_personalized_ads",
                "measure_ad_performance",
            ]),
            preferences: v(&[
                "cookies",
                "create_content_profile",
                "select_personalized_content",
            ]),
        }
    }
}

#[derive(Deserialize, Default, Debug)]
struct Lists {
    #[serde(default)]
    enabled: Vec<serde_json::Value>,
    #[serde(default)]
    disabled: Vec<serde_json::Value>,
}

#[derive(Deserialize, Debug)]
struct Token {
    #[serde(default)]
    purposes: Lists,
    #[serde(default)]
    vendors: Lists,
}

fn engine(alphabet: &base64::alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

/// Decodes the token into its JSON value.
pub fn decode(text: &str) -> Result<serde_json::Value, ConsentError> {
    let t = text.trim();
    if t.len() > 256 * 1024 {
        return Err(ConsentError::new("didomi_token is implausibly long"));
    }
    let bytes = engine(&base64::alphabet::STANDARD)
        .decode(t)
        .or_else(|_| engine(&base64::alphabet::URL_SAFE).decode(t))
        .map_err(|_| ConsentError::new("didomi_token is not base64"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ConsentError::new(format!("didomi_token is not JSON: {e}")))
}

/// Per category: granted when every purpose mapped to it is enabled; refused when one of them
/// is disabled; not carried otherwise. In TCF mode Didomi keeps the IAB purposes in
/// `euconsent-v2` and lists only the site's custom purposes (and special features) here, so a
/// token that is silent about a category must not veto what the TC string grants.
pub fn parse(text: &str, cfg: &DidomiConfig) -> Result<Verdict, ConsentError> {
    let value = decode(text)?;
    let token: Token = serde_json::from_value(value)
        .map_err(|e| ConsentError::new(format!("didomi_token has an unexpected shape: {e}")))?;
    let _ = (&token.vendors.enabled, &token.vendors.disabled);
    let list = |l: &[serde_json::Value]| -> Vec<String> {
        l.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let (enabled, disabled) = (
        list(&token.purposes.enabled),
        list(&token.purposes.disabled),
    );
    let mut v = Verdict::NOTHING;
    for (cat, needed) in [
        (Category::Analytics, &cfg.analytics),
        (Category::Marketing, &cfg.marketing),
        (Category::Preferences, &cfg.preferences),
    ] {
        if needed.iter().any(|p| disabled.contains(p)) {
            v.set(cat, false);
        } else if !needed.is_empty() && needed.iter().all(|p| enabled.contains(p)) {
            v.set(cat, true);
        }
    }
    Ok(v)
}

/// The format, for [`super::CookieReader`].
pub struct Didomi;

impl super::CookieFormat for Didomi {
    type Config = DidomiConfig;
    const NAME: &'static str = "didomi";

    fn cookie(cfg: &DidomiConfig) -> &str {
        &cfg.cookie
    }

    fn parse(text: &str, cfg: &DidomiConfig) -> Result<Verdict, ConsentError> {
        parse(text, cfg)
    }

    fn details(text: &str) -> Option<serde_json::Value> {
        decode(text).ok()
    }
}

pub type DidomiReader = super::CookieReader<Didomi>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Grants;
    use base64::engine::general_purpose::STANDARD;

    fn token(enabled: &[&str], disabled: &[&str]) -> String {
        STANDARD.encode(
            serde_json::json!({
                "user_id": "1827a1b4-5f3a-6e6d-b2a4-3c2f8b9d0e1f",
                "created": "2026-11-24T10:00:00.000Z",
                "updated": "2026-11-24T10:00:00.000Z",
                "vendors": {"enabled": ["google", "c:hotjar"], "disabled": []},
                "purposes": {"enabled": enabled, "disabled": disabled},
                "version": 2,
                "ac": "AAAA.AAAA"
            })
            .to_string(),
        )
    }

    #[test]
    fn purposes_map_to_categories() {
        let cfg = DidomiConfig::default();
        let v = parse(
            &token(
                &["cookies", "measure_content_performance", "market_research"],
                &["select_basic_ads"],
            ),
            &cfg,
        )
        .unwrap();
        assert!(v.grants().allows(Category::Analytics));
        assert!(v.refuses(Category::Marketing), "a disabled purpose refuses");
        assert!(!v.carries(Category::Preferences), "never mentioned");
        // Storage consent (`cookies`) missing and never refused: the token says nothing about
        // analytics, so another source (the TC string) decides.
        let v = parse(
            &token(&["measure_content_performance", "market_research"], &[]),
            &cfg,
        )
        .unwrap();
        assert_eq!(v.grants(), Grants::NONE);
        assert!(!v.carries(Category::Analytics));
        let v = parse(&token(&["market_research"], &["cookies"]), &cfg).unwrap();
        assert!(Category::OPTIONAL.iter().all(|c| v.refuses(*c)));
        // URL-safe alphabet without padding decodes too.
        let t = token(
            &[
                "cookies",
                "create_content_profile",
                "select_personalized_content",
            ],
            &[],
        );
        let url_safe = t
            .replace('+', "-")
            .replace('/', "_")
            .trim_end_matches('=')
            .to_string();
        assert!(parse(&url_safe, &cfg)
            .unwrap()
            .grants()
            .allows(Category::Preferences));
    }

    #[test]
    fn malformed() {
        let cfg = DidomiConfig::default();
        assert!(parse("***", &cfg).is_err());
        assert!(parse(&STANDARD.encode("not json"), &cfg).is_err());
        assert!(parse(&STANDARD.encode("{\"purposes\":{\"enabled\":5}}"), &cfg).is_err());
        assert!(parse(&"A".repeat(1 << 20), &cfg).is_err());
    }
}
