//! The simple first-party consent cookie for sites with their own banner:
//! `analytics,marketing` (the listed categories are granted) or
//! `analytics:1,marketing:0` (explicit flags). Both may be URL-encoded; `|`, `+`, space and `;`
//! are accepted as separators too, as sites write them.

use super::{Category, ConsentError, ConsentReader, Grants, SourceOutcome, Verdict};
use crate::cookies::header::CookieJar;
use std::sync::Arc;

/// The format's name in configuration and output.
pub const NAME: &str = "first-party";

/// Reader for the first-party cookie (`[site.consent] cookie = "consent"`).
pub struct FirstPartyReader {
    cookie: Arc<str>,
}

impl FirstPartyReader {
    pub fn new(cookie: &str) -> Self {
        FirstPartyReader {
            cookie: cookie.into(),
        }
    }
}

impl ConsentReader for FirstPartyReader {
    fn format(&self) -> &'static str {
        NAME
    }

    fn cookie_patterns(&self) -> Vec<String> {
        vec![self.cookie.to_string()]
    }

    fn read_value(&self, raw: &[u8], source: &Arc<str>, detail: bool) -> Option<SourceOutcome> {
        // `X-Consent: analytics` from an app: the same syntax as the cookie.
        let result = super::url_decoded(raw)
            .and_then(|v| parse(&v))
            .map(Verdict::covering_all);
        let mut outcome = SourceOutcome::from_result(self.format(), source, result);
        if detail {
            outcome.details = Some(serde_json::json!({
                "values": [String::from_utf8_lossy(raw)],
            }));
        }
        Some(outcome)
    }

    fn read(&self, jar: &CookieJar<'_>, detail: bool) -> Option<SourceOutcome> {
        // Duplicates (same name on several paths/domains) are all read; the most restrictive wins.
        let mut result: Option<Result<Grants, ConsentError>> = None;
        for value in jar.values(&self.cookie) {
            let r = std::str::from_utf8(value)
                .map_err(|_| ConsentError::new("value is not UTF-8"))
                .and_then(parse);
            result = Some(match (result, r) {
                (None, r) => r,
                (Some(Err(e)), _) | (Some(Ok(_)), Err(e)) => Err(e),
                (Some(Ok(a)), Ok(b)) => Ok(a.intersect(b)),
            });
        }
        // The first-party value lists what is granted: every category it omits is refused.
        let result = result?.map(Verdict::covering_all);
        let mut outcome = SourceOutcome::from_result(self.format(), &self.cookie, result);
        if detail {
            outcome.details = Some(serde_json::json!({
                "values": jar.values(&self.cookie).map(|v| String::from_utf8_lossy(v).into_owned()).collect::<Vec<_>>(),
            }));
        }
        Some(outcome)
    }
}

/// Reads the cookie value. An empty value grants nothing but is not an error (a banner may write
/// an empty value for "refused everything"). Anything unrecognised is an error: the whole source
/// then grants nothing (fail closed).
pub fn parse(raw: &str) -> Result<Grants, ConsentError> {
    // Most values carry no escapes: no decoding pass for them (this runs on every request).
    let decoded;
    let value = if raw.contains('%') {
        decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| ConsentError::new("value is not UTF-8 after URL-decoding"))?;
        &*decoded
    } else {
        raw
    };
    let value = value.trim().trim_matches('"');
    let mut grants = Grants::NONE;
    for item in items(value) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        // The first `:` or `=` (ASCII too), as `split_once([':', '='])` finds it.
        let (name, flag) = match item.bytes().position(|b| b == b':' || b == b'=') {
            Some(i) => (item[..i].trim(), Some(item[i + 1..].trim())),
            None => (item, None),
        };
        let is = |word: &str| name.eq_ignore_ascii_case(word);
        if flag.is_none() && (is("none") || is("necessary") || is("essential")) {
            continue;
        }
        if flag.is_none() && is("all") {
            grants = Grants::ALL;
            continue;
        }
        let category = Category::parse(name)
            .ok_or_else(|| ConsentError::new(format!("unknown category `{}`", truncate(name))))?;
        let granted = match flag {
            None => true,
            Some("1" | "true" | "yes" | "granted" | "allow") => true,
            Some("0" | "false" | "no" | "denied" | "deny") => false,
            Some(f) => {
                return Err(ConsentError::new(format!(
                    "flag `{}` for `{name}` is not 1/0/true/false",
                    truncate(f)
                )))
            }
        };
        grants.set(category, granted);
    }
    Ok(grants)
}

/// The pieces of `value` between separators (`,`, `|`, `+`, space, `;`), untrimmed: what
/// `value.split([',', '|', '+', ' ', ';'])` gives, cut on bytes (this runs on every request;
/// `split` with a set of chars decodes every char and tests it against each). The separators
/// are ASCII, so every cut is on a char boundary.
fn items(value: &str) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut start = 0;
    (0..=bytes.len())
        .filter(|&i| i == bytes.len() || matches!(bytes[i], b',' | b'|' | b'+' | b' ' | b';'))
        .map(move |end| {
            let item = &value[start..end];
            start = end + 1;
            item
        })
}

/// Keeps error messages short whatever the input.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(32) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    #[test]
    fn list_form() {
        let g = parse("analytics,marketing").unwrap();
        assert!(g.allows(Analytics) && g.allows(Marketing) && !g.allows(Preferences));
        assert_eq!(parse("").unwrap(), Grants::NONE);
        assert_eq!(parse("all").unwrap(), Grants::ALL);
    }

    #[test]
    fn flag_form_and_url_encoding() {
        let g = parse("analytics%3A1%2Cmarketing%3A0").unwrap();
        assert!(g.allows(Analytics) && !g.allows(Marketing));
        let g = parse("preferences:true,analytics:0").unwrap();
        assert!(g.allows(Preferences) && !g.allows(Analytics));
    }

    #[test]
    fn items_are_what_str_split_gives() {
        // Values as banners write them, and edge cases (empty, separators only, non-ASCII).
        for v in [
            "",
            "analytics,marketing",
            "analytics:1|marketing:0",
            "preferences+analytics",
            " analytics ; marketing ",
            ",,|;+ ",
            "statistik,präferenzen",
            "a\u{a0}b,ü;c",
        ] {
            let split: Vec<&str> = v.split([',', '|', '+', ' ', ';']).collect();
            assert_eq!(items(v).collect::<Vec<_>>(), split, "{v:?}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("analytics,evil").is_err());
        assert!(parse("analytics:maybe").is_err());
        assert!(parse("%FF%FE").is_err());
        assert!(parse("{\"analytics\":true}").is_err());
    }
}
