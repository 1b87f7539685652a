//! OneTrust `OptanonConsent`: a URL-encoded query string whose `groups` lists consent groups as
//! `C0001:1,C0002:0,...` (or numeric ids `1:1,2:0`). The groups are OneTrust's decision and are
//! read as they are. `isGpcEnabled=1` only records that the browser sent a GPC signal: OneTrust
//! has already turned off the groups the site set to honour it (real cookies show `C0004:0`
//! beside it), and a visitor may opt back in (CCPA regulations §7025(c)(3)); real accept-all
//! cookies carry `isGpcEnabled=1` with every group at 1 beside a TC string consenting to every
//! purpose. The live `Sec-GPC` header is the signal consentgate acts on (the site's `gpc`
//! policy and jurisdiction model), so the flag is shown in `explain` and not applied twice.

use super::registry::TableReader;
use super::{
    combine_flags, read_each, Category, ConsentError, ConsentReader, SourceOutcome, Verdict,
};
use crate::cookies::header::CookieJar;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `[site.consent.onetrust]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OneTrustConfig {
    pub cookie: String,
    /// Group id -> category. Default: C0001/1 necessary, C0002/2 analytics (performance),
    /// C0003/3 preferences (functional), C0004/4 and C0005/5 marketing (targeting, social).
    pub groups: BTreeMap<String, Category>,
}

impl Default for OneTrustConfig {
    fn default() -> Self {
        use Category::*;
        let groups = [
            ("C0001", Necessary),
            ("1", Necessary),
            ("C0002", Analytics),
            ("2", Analytics),
            ("C0003", Preferences),
            ("3", Preferences),
            ("C0004", Marketing),
            ("4", Marketing),
            ("C0005", Marketing),
            ("5", Marketing),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        OneTrustConfig {
            cookie: "OptanonConsent".into(),
            groups,
        }
    }
}

/// What the cookie says.
#[derive(Debug, Default, PartialEq)]
pub struct OptanonConsent {
    /// (group id, consented) in order.
    pub groups: Vec<(String, bool)>,
    pub gpc: bool,
    pub consent_id: Option<String>,
}

/// The query string, URL-decoded once more when the whole value was encoded (some sites do).
fn query(raw: &str) -> Result<std::borrow::Cow<'_, str>, ConsentError> {
    if raw.contains('=') {
        Ok(std::borrow::Cow::Borrowed(raw))
    } else {
        super::url_decoded(raw.as_bytes())
    }
}

/// Each `id:flag` of a `groups` value.
fn groups(value: &str) -> impl Iterator<Item = Result<(&str, bool), ConsentError>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (id, flag) = item.split_once(':').ok_or_else(|| {
                ConsentError::new(format!("group `{}` has no `:1`/`:0` flag", short(item)))
            })?;
            match flag.trim() {
                "1" => Ok((id.trim(), true)),
                "0" => Ok((id.trim(), false)),
                f => Err(ConsentError::new(format!(
                    "group `{}` flag `{}` is not 1 or 0",
                    short(id),
                    short(f)
                ))),
            }
        })
}

/// The request-path reader: no allocation beyond URL-decoding the `groups` field.
pub fn parse(raw: &str, cfg: &OneTrustConfig) -> Result<Verdict, ConsentError> {
    let text = query(raw)?;
    let mut groups_value = None;
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k.trim() == "groups" {
            groups_value = Some(super::url_decoded(v.as_bytes())?);
        }
    }
    let value = groups_value.ok_or_else(|| {
        ConsentError::new("no `groups=` field (is this an OptanonConsent cookie?)")
    })?;
    let mut flags: smallvec::SmallVec<[(Category, bool); 8]> = smallvec::SmallVec::new();
    for g in groups(&value) {
        let (id, ok) = g?;
        if let Some(cat) = cfg.groups.get(id) {
            flags.push((*cat, ok));
        }
    }
    Ok(combine_flags(flags))
}

/// Every field of interest, for `explain` and tests.
pub fn decode(raw: &str) -> Result<OptanonConsent, ConsentError> {
    let mut out = OptanonConsent::default();
    let mut saw_groups = false;
    let text = query(raw)?;
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = super::url_decoded(v.as_bytes())?;
        match k.trim() {
            "groups" => {
                saw_groups = true;
                for g in groups(&v) {
                    let (id, ok) = g?;
                    out.groups.push((id.to_string(), ok));
                }
            }
            "isGpcEnabled" => out.gpc = v.trim() == "1",
            "consentId" => out.consent_id = Some(v.into_owned()),
            _ => {}
        }
    }
    if !saw_groups {
        return Err(ConsentError::new(
            "no `groups=` field (is this an OptanonConsent cookie?)",
        ));
    }
    Ok(out)
}

fn short(s: &str) -> &str {
    match s.char_indices().nth(24) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub fn verdict(c: &OptanonConsent, cfg: &OneTrustConfig) -> Verdict {
    combine_flags(
        c.groups
            .iter()
            .filter_map(|(id, ok)| cfg.groups.get(id).map(|cat| (*cat, *ok))),
    )
}

pub struct OneTrustReader {
    cfg: OneTrustConfig,
    cookie: Arc<str>,
}

impl OneTrustReader {
    pub fn new(cfg: &OneTrustConfig) -> Result<Self, String> {
        Ok(OneTrustReader {
            cookie: cfg.cookie.as_str().into(),
            cfg: cfg.clone(),
        })
    }
}

impl TableReader for OneTrustReader {
    const NAME: &'static str = "onetrust";
    type Config = OneTrustConfig;
    fn from_config(cfg: &OneTrustConfig) -> Result<Self, String> {
        Self::new(cfg)
    }
}

impl ConsentReader for OneTrustReader {
    fn format(&self) -> &'static str {
        <Self as TableReader>::NAME
    }

    fn cookie_patterns(&self) -> Vec<String> {
        vec![self.cfg.cookie.clone(), "OptanonAlertBoxClosed".into()]
    }

    fn read(&self, jar: &CookieJar<'_>, detail: bool) -> Option<SourceOutcome> {
        let r = read_each(jar, &self.cfg.cookie, |raw| {
            let text = std::str::from_utf8(raw).map_err(|_| ConsentError::new("not UTF-8"))?;
            parse(text, &self.cfg)
        })?;
        let mut o = SourceOutcome::from_result(self.format(), &self.cookie, r);
        if detail {
            if let Some(raw) = jar.values(&self.cfg.cookie).next() {
                if let Ok(c) = decode(&String::from_utf8_lossy(raw)) {
                    o.details = Some(serde_json::json!({
                        "groups": c.groups.iter().map(|(id, ok)| (id.clone(), *ok)).collect::<BTreeMap<_, _>>(),
                        "is_gpc_enabled": c.gpc,
                        "consent_id": c.consent_id,
                    }));
                }
            }
        }
        Some(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Grants;

    // A real-shaped value as OneTrust writes it (fields URL-encoded, groups list encoded).
    const REAL: &str = "isGpcEnabled=0&datestamp=Tue+Nov+24+2026+10%3A12%3A31+GMT%2B0100+(Central+European+Standard+Time)&version=202409.1.0&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId=5b1c2d3e-aaaa-bbbb-cccc-123456789abc&interactionCount=1&isAnonUser=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A0%2CC0004%3A0%2CC0005%3A0&AwaitingReconsent=false&geolocation=DE%3BBY";

    #[test]
    fn real_cookie() {
        let c = decode(REAL).unwrap();
        assert_eq!(c.groups.len(), 5);
        let g = verdict(&c, &OneTrustConfig::default()).grants();
        assert!(g.allows(Category::Analytics));
        assert!(!g.allows(Category::Preferences) && !g.allows(Category::Marketing));
        // The whole value URL-encoded once more.
        let twice = percent_encoding::utf8_percent_encode(REAL, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        assert_eq!(decode(&twice).unwrap(), c);
    }

    #[test]
    fn numeric_groups_gpc_and_shared_categories() {
        let cfg = OneTrustConfig::default();
        let g = verdict(&decode("groups=1:1,2:1,3:1,4:1,5:1").unwrap(), &cfg).grants();
        assert_eq!(g, Grants::ALL);
        // Marketing needs every present marketing group.
        let g = verdict(&decode("groups=C0001:1,C0004:1,C0005:0").unwrap(), &cfg).grants();
        assert!(!g.allows(Category::Marketing));
        let g = verdict(&decode("groups=C0004:1").unwrap(), &cfg).grants();
        assert!(g.allows(Category::Marketing));
        // `isGpcEnabled=1` records the browser's signal; the groups are the decision (OneTrust
        // turns off the GPC-honouring groups itself, and a visitor may opt back in).
        let g = verdict(
            &decode("isGpcEnabled=1&groups=C0004:0,C0002:1").unwrap(),
            &cfg,
        )
        .grants();
        assert!(!g.allows(Category::Marketing) && g.allows(Category::Analytics));
        let opted_back_in = decode("isGpcEnabled=1&groups=C0004:1,C0002:1").unwrap();
        assert!(opted_back_in.gpc);
        assert!(verdict(&opted_back_in, &cfg)
            .grants()
            .allows(Category::Marketing));
    }

    #[test]
    fn fast_path_agrees_with_decode() {
        let cfg = OneTrustConfig::default();
        for v in [
            REAL,
            "groups=1:1,2:0,4:1",
            "isGpcEnabled=1&groups=C0004:1",
            "groups=C0002:x",
            "x=1",
        ] {
            let slow = decode(v).map(|c| verdict(&c, &cfg));
            assert_eq!(parse(v, &cfg), slow, "{v}");
        }
    }

    #[test]
    fn malformed() {
        assert!(decode("version=1").is_err());
        assert!(decode("groups=C0002").is_err());
        assert!(decode("groups=C0002:yes").is_err());
        assert!(decode("groups=%FF").is_err());
        let big = format!("groups={}", "C0002:1,".repeat(200_000));
        assert!(decode(&big).is_ok());
    }
}
