//! The simple first-party consent cookie for sites with their own banner:
//! `analytics,marketing` (the list form: the listed categories are granted, every other one
//! refused) or `analytics:1,marketing:0` (the flag form: each named category granted or
//! refused, the others not carried). Both may be URL-encoded; `|`, `+`, space and `;` are
//! accepted as separators too, as sites write them.

use super::{read_each, Category, ConsentError, ConsentReader, Grants, SourceOutcome, Verdict};
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
        let result = super::url_decoded(raw).and_then(|v| parse(&v));
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
        let result = read_each(jar, &self.cookie, parse_bytes)?;
        let mut outcome = SourceOutcome::from_result(self.format(), &self.cookie, result);
        if detail {
            outcome.details = Some(serde_json::json!({
                "values": jar.values(&self.cookie).map(|v| String::from_utf8_lossy(v).into_owned()).collect::<Vec<_>>(),
            }));
        }
        Some(outcome)
    }
}

/// Reads the cookie value. The list form (`analytics,marketing`, `all`, `none`: any item without
/// a flag) lists what is granted, so it carries every category and refuses what it leaves out.
/// The flag form (every item `category:flag`) carries only the categories it names: under
/// opt-out only an explicit `0` refuses (`marketing:0` leaves analytics alone), under opt-in a
/// category no source carries is refused anyway. An empty value refuses everything but is not
/// an error (a banner may write an empty value for "refused everything"). Anything
/// unrecognised is an error: the whole source then grants nothing (fail closed).
pub fn parse(raw: &str) -> Result<Verdict, ConsentError> {
    // This runs on every request that carries the cookie: the common values take the short
    // path, everything else (and every error) the general one.
    match parse_plain(raw.as_bytes()) {
        Some(grants) => Ok(grants),
        None => parse_general(raw),
    }
}

/// [`parse`] for a cookie's bytes; a value that is not UTF-8 is an error. The short path comes
/// first: the values it takes are ASCII, so they skip the UTF-8 check too (every request).
fn parse_bytes(raw: &[u8]) -> Result<Verdict, ConsentError> {
    match parse_plain(raw) {
        Some(grants) => Ok(grants),
        None => std::str::from_utf8(raw)
            .map_err(|_| ConsentError::new("value is not UTF-8"))
            .and_then(parse_general),
    }
}

/// [`parse_general`] for values as sites write them (`analytics,marketing`,
/// `analytics:1|marketing:0`): every item one of the format's words in lower case, with an
/// optional flag, between separators. Each item is then one exact comparison, where the general
/// path trims it and compares it case-insensitively with every keyword (about a thousand
/// instructions for `analytics,marketing`, measured with callgrind). `None` for any other
/// value (other case, whitespace other than a space, quotes, escapes, unknown words) and so
/// for every value that is an error: the general path reads those, so results and error
/// messages are its own (tests check both paths agree). No trimming is needed: a space is a
/// separator, so an accepted item holds none.
fn parse_plain(raw: &[u8]) -> Option<Verdict> {
    use Category::*;
    let mut value = Value::default();
    for item in raw.split(|b| matches!(b, b',' | b'|' | b'+' | b' ' | b';')) {
        // The list form first: its items need no search for a flag.
        match item {
            b"analytics" => value.listed(Analytics),
            b"marketing" => value.listed(Marketing),
            b"preferences" => value.listed(Preferences),
            // Keywords of the list form that grant nothing optional.
            b"necessary" | b"none" | b"essential" => value.listed(Necessary),
            b"" => {}
            b"all" => value.all(),
            _ => {
                let (category, granted) = plain_flagged(item)?;
                value.flagged(category, granted);
            }
        }
    }
    Some(value.verdict())
}

/// A value as its items are read.
#[derive(Default)]
struct Value {
    /// What the value grants, item by item (the later item wins).
    grants: Grants,
    /// What its `category:flag` items say, and nothing about the categories they do not name.
    flags: Verdict,
    /// An item of the list form was seen: the value lists what is granted.
    list: bool,
    /// A `category:flag` item was seen.
    flagged: bool,
}

impl Value {
    fn listed(&mut self, c: Category) {
        self.grants.grant(c);
        self.list = true;
    }

    fn all(&mut self) {
        self.grants = Grants::ALL;
        self.list = true;
    }

    fn flagged(&mut self, c: Category, granted: bool) {
        self.grants.set(c, granted);
        self.flags.set(c, granted);
        self.flagged = true;
    }

    /// The list form (or no item at all: an empty value refuses everything) carries every
    /// category; the flag form only the categories it names.
    fn verdict(self) -> Verdict {
        if self.list || !self.flagged {
            Verdict::covering_all(self.grants)
        } else {
            self.flags
        }
    }
}

/// An item of the flag form as [`parse_plain`] takes it (`analytics:1`, `marketing=false`).
fn plain_flagged(item: &[u8]) -> Option<(Category, bool)> {
    let i = item.iter().position(|b| *b == b':' || *b == b'=')?;
    let category = match &item[..i] {
        b"analytics" => Category::Analytics,
        b"marketing" => Category::Marketing,
        b"preferences" => Category::Preferences,
        b"necessary" => Category::Necessary,
        _ => return None,
    };
    Some((category, flag_value(&item[i + 1..])?))
}

/// A flag as the format writes it (exact, lower case): granted or refused; `None` for anything
/// else. One list for both paths.
fn flag_value(flag: &[u8]) -> Option<bool> {
    match flag {
        b"1" | b"true" | b"yes" | b"granted" | b"allow" => Some(true),
        b"0" | b"false" | b"no" | b"denied" | b"deny" => Some(false),
        _ => None,
    }
}

/// Reads any value: URL-decoded, trimmed (Unicode whitespace), unquoted, then item by item.
fn parse_general(raw: &str) -> Result<Verdict, ConsentError> {
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
    let mut out = Value::default();
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
            out.listed(Category::Necessary);
            continue;
        }
        if flag.is_none() && is("all") {
            out.all();
            continue;
        }
        let category = Category::parse(name)
            .ok_or_else(|| ConsentError::new(format!("unknown category `{}`", truncate(name))))?;
        match flag {
            None => out.listed(category),
            Some(f) => {
                let granted = flag_value(f.as_bytes()).ok_or_else(|| {
                    ConsentError::new(format!(
                        "flag `{}` for `{name}` is not 1/0/true/false",
                        truncate(f)
                    ))
                })?;
                out.flagged(category, granted);
            }
        }
    }
    Ok(out.verdict())
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
    fn list_form_carries_every_category() {
        let v = parse("analytics,marketing").unwrap();
        assert_eq!(
            v,
            Verdict::covering_all(Grants::from_categories([Analytics, Marketing]))
        );
        assert!(v.refuses(Preferences));
        for all_refused in ["", "none", "necessary", " , "] {
            assert_eq!(
                parse(all_refused).unwrap(),
                Verdict::covering_all(Grants::NONE)
            );
        }
        assert_eq!(parse("all").unwrap(), Verdict::covering_all(Grants::ALL));
        // An item without a flag makes it the list form: what it does not grant is refused.
        let v = parse("all,marketing:0").unwrap();
        assert!(v.refuses(Marketing) && v.grants().allows(Analytics));
        let v = parse("analytics,marketing:1").unwrap();
        assert!(v.refuses(Preferences) && v.grants().allows(Marketing));
    }

    #[test]
    fn flag_form_carries_only_the_categories_it_names() {
        let v = parse("analytics%3A1%2Cmarketing%3A0").unwrap();
        assert!(v.grants().allows(Analytics) && v.refuses(Marketing));
        assert_eq!(v.not_carried(), [Preferences]);
        let v = parse("preferences:true,analytics:0").unwrap();
        assert!(v.grants().allows(Preferences) && v.refuses(Analytics));
        assert!(!v.carries(Marketing));
        // `marketing:0` refuses marketing and says nothing else: opt-out keeps the others,
        // opt-in grants none of them (nobody granted them).
        let v = parse("marketing:0").unwrap();
        assert_eq!(v.not_carried(), [Preferences, Analytics]);
        assert_eq!(
            v.unless_refused(),
            Grants::from_categories([Preferences, Analytics])
        );
        assert_eq!(v.grants(), Grants::NONE);
        // The later flag for a category wins; `necessary` carries nothing optional.
        assert!(parse("analytics:1,analytics:0").unwrap().refuses(Analytics));
        assert_eq!(parse("necessary:1").unwrap(), Verdict::NOTHING);
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

    /// The short path gives what the general path gives, on every value it takes, and leaves
    /// every error to the general path (same messages). Values as banners write them, and
    /// edge cases: case, whitespace other than a space, quotes, escapes, non-ASCII, keywords,
    /// flags, duplicates.
    #[test]
    fn plain_path_agrees_with_general_path() {
        let values = [
            "",
            " ",
            "analytics,marketing",
            "ANALYTICS,Marketing",
            "analytics:1|marketing:0",
            "analytics=1;marketing=0",
            "analytics:1,analytics:0",
            "analytics:0,analytics",
            "preferences+analytics",
            " analytics ; marketing ",
            ",,|;+ ",
            "all",
            "ALL,marketing:0",
            "marketing:0,all",
            "none",
            "necessary",
            "essential,analytics",
            "necessary:1",
            "necessary:0",
            "none:1",
            "all:1",
            "analytics:",
            "analytics:TRUE",
            "analytics:2",
            "analytics:1:1",
            ":1",
            "=",
            "analytics,evil",
            "analytic",
            "analyticsx",
            "x",
            "9",
            "analytics\tmarketing",
            "\tanalytics",
            "analytics\u{b}",
            "\u{a0}analytics",
            "analytics\u{a0},marketing",
            "\"analytics,marketing\"",
            "analytics%2Cmarketing",
            "analytics%3A1",
            "%FF",
            "statistik,präferenzen",
            "analytics,marketing\u{3000}",
            "analytics :1",
            "analytics: 1",
        ];
        // Every pair of the words above too, joined by each separator.
        let words = [
            "analytics",
            "marketing",
            "preferences",
            "Marketing",
            "PREFERENCES",
            "necessary",
            "all",
            "ALL",
            "none",
            "essential",
            "evil",
            "analytics:1",
            "marketing=0",
            "preferences:yes",
            "necessary:0",
            "marketing:deny",
            "analytics:maybe",
            "Analytics:1",
            "",
        ];
        let mut inputs: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        for a in words {
            for b in words {
                for sep in [",", "|", "+", " ", ";", ", "] {
                    inputs.push(format!("{a}{sep}{b}"));
                }
            }
        }
        let mut plain = 0;
        for v in &inputs {
            let general = parse_general(v);
            match parse_plain(v.as_bytes()) {
                Some(g) => {
                    plain += 1;
                    assert_eq!(general, Ok(g), "{v:?}");
                }
                None => assert_eq!(parse(v), general, "{v:?}"),
            }
            // The cookie's bytes read as the text does.
            assert_eq!(parse_bytes(v.as_bytes()), general, "{v:?}");
            if general.is_err() {
                assert_eq!(
                    parse_plain(v.as_bytes()),
                    None,
                    "an error is the general path's: {v:?}"
                );
            }
        }
        // The forms sites write take the short path; other case is left to the general path.
        assert!(plain > 300, "{plain} of {}", inputs.len());
        assert_eq!(
            parse_plain(b"analytics,marketing"),
            Some(parse_general("analytics,marketing").unwrap())
        );
        assert_eq!(parse_plain(b"Analytics"), None);
        // Bytes that are not UTF-8 are the general path's error, whatever surrounds them.
        for raw in [
            &b"analytics,\xff"[..],
            b"\xffanalytics",
            b"analytics:\xc3",
            b"\xe9",
        ] {
            assert_eq!(
                parse_bytes(raw),
                Err(ConsentError::new("value is not UTF-8")),
                "{raw:?}"
            );
        }
        assert!(parse_plain(b"analytics:1|marketing:0").is_some());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("analytics,evil").is_err());
        assert!(parse("analytics:maybe").is_err());
        assert!(parse("%FF%FE").is_err());
        assert!(parse("{\"analytics\":true}").is_err());
    }
}
