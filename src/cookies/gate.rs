//! The gating decisions: may this cookie be set on the browser (`Set-Cookie`) or sent to the
//! origin (`Cookie`)? And which lines expire cookies whose consent was withdrawn?

use super::classify::{Classifier, Origin};
use crate::consent::{Category, ConsentState};
use crate::jurisdiction::Model;
use serde::{Deserialize, Serialize};

/// What to do with cookies no rule, catalogue or database classifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownPolicy {
    /// Treat as non-consented (fail closed; the default).
    #[default]
    Strip,
    /// Let them through.
    Keep,
}

/// One cookie's classification and whether the visitor's consent allows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `None` = unknown.
    pub category: Option<Category>,
    pub origin: Option<Origin>,
    pub allowed: bool,
    /// The name's slot in the classifier (a name it lists exactly), for the live inventory.
    pub slot: Option<u32>,
}

impl Verdict {
    pub fn category_label(&self) -> &'static str {
        crate::labels::CategoryLabel::from(self.category).as_str()
    }
}

/// The per-site inputs to every decision.
pub struct Gate<'a> {
    pub classifier: &'a Classifier,
    pub unknown: UnknownPolicy,
    /// Cookie-name rules that also need IAB TCF vendor consent (`_ga` -> 755).
    pub vendor_rules: &'a [(super::classify::RuleSet, u16)],
}

impl Gate<'_> {
    pub fn verdict(&self, name: &str, consent: &ConsentState) -> Verdict {
        // A jurisdiction without gating (`model = "off"`) lets everything through, as
        // `mode = "off"` would.
        let ungated = consent.model == Model::Off;
        let (class, slot) = self.classifier.classify_slot(name);
        match class {
            None => Verdict {
                category: None,
                origin: None,
                allowed: ungated || self.unknown == UnknownPolicy::Keep,
                slot,
            },
            Some((category, origin)) => {
                let mut allowed = ungated || consent.grants.allows(category);
                if allowed
                    && !ungated
                    && category != Category::Necessary
                    && origin != Origin::ConsentCookie
                {
                    allowed = self.vendor_allows(name, consent);
                }
                Verdict {
                    category: Some(category),
                    origin: Some(origin),
                    allowed,
                    slot,
                }
            }
        }
    }

    /// A vendor rule that matches needs that vendor's consent in a TCF string; with no TCF
    /// string read, it is refused (fail closed).
    fn vendor_allows(&self, name: &str, consent: &ConsentState) -> bool {
        if consent.model == Model::OptOut && consent.vendors.is_none() {
            // Opt-out needs no vendor consent; only a TC string's own refusal counts.
            return true;
        }
        for (rules, vendor) in self.vendor_rules {
            if rules.lookup(name).is_some() {
                let ok = consent
                    .vendors
                    .as_ref()
                    .is_some_and(|v| v.contains(*vendor));
                if !ok {
                    return false;
                }
            }
        }
        true
    }
}

/// What happens to a request cookie on its way to the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestAction {
    /// Sent to the origin unchanged.
    Forward,
    /// Removed from the request (unknown cookies under `unknown_cookies = "strip"`).
    Strip,
    /// Removed, and expired in the response: its category has no consent (withdrawal).
    Expire,
}

pub fn request_action(v: &Verdict) -> RequestAction {
    match (v.allowed, v.category) {
        (true, _) => RequestAction::Forward,
        (false, None) => RequestAction::Strip,
        (false, Some(_)) => RequestAction::Expire,
    }
}

/// The cookie name of a `Set-Cookie` line: the bytes before the first `=` of the first
/// `;`-separated part, trimmed. A line without `=` there names the empty cookie
/// (RFC 6265bis 5.6, step 3).
///
/// Hand-written rather than `cookie::Cookie::parse`: that parser refuses such a line and a line
/// that is not UTF-8 (both still need a name here, the empty one), and parses every attribute,
/// `Expires` dates included, for each `Set-Cookie` line of every response, where only the name
/// is needed. Kept lines go out as the origin's bytes, so nothing else is read.
pub fn set_cookie_name(line: &[u8]) -> &[u8] {
    // One memchr2 pass: this runs for every `Set-Cookie` line of every response. The name
    // ends at an `=` that comes before any `;`; a `;` first means the first part has no `=`.
    match memchr::memchr2(b'=', b';', line) {
        Some(i) if line[i] == b'=' => line[..i].trim_ascii(),
        _ => b"",
    }
}

/// RFC 6265 token characters: only such names can be written back safely in an expiry line.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'(' | b')'
                        | b'<'
                        | b'>'
                        | b'@'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'/'
                        | b'['
                        | b']'
                        | b'?'
                        | b'='
                        | b'{'
                        | b'}'
                )
        })
}

/// Browsers refuse a cookie whose name and value together exceed 4096 bytes (RFC 6265bis 5.6,
/// step 5; Chrome and Firefox enforce it), so a longer name was never set by a browser and needs
/// no deleting: sending an expiry line for it would only echo the request's bytes back.
pub const MAX_BROWSER_COOKIE_BYTES: usize = 4096;

/// How many lines [`expiry_lines`] returns for `name`, without building them.
pub fn expiry_line_count(name: &str, paths: usize, domains: usize) -> usize {
    if name.len() > MAX_BROWSER_COOKIE_BYTES || !is_token(name) {
        0
    } else if name.starts_with("__Host-") {
        1
    } else {
        paths * (1 + domains)
    }
}

/// The `Set-Cookie` lines that delete `name` in the browser: one per configured path, for the
/// host-only cookie and for each configured Domain variant (a cookie set with `Domain=` is only
/// deleted by a line with the same Domain). Cookie-name prefixes are honoured: `__Host-` needs
/// `Secure; Path=/` and no Domain, `__Secure-` needs `Secure`. None for a name no browser can
/// hold (not a token, or longer than [`MAX_BROWSER_COOKIE_BYTES`]).
///
/// Written by hand rather than with `cookie::Cookie::build(..).to_string()`, measured: the
/// crate took 6 to 7.4 us per name for three lines against 0.4 to 1.1 us here (release builds,
/// three runs on a busy 2-core machine; it formats `Expires` into a new string per line), while
/// names the expiry cache does not admit are built per request, up to `max_expiry_lines` lines.
/// It also writes `Domain=.example.com` as `Domain=example.com`, so a configured leading-dot
/// variant would become a copy of the plain line. The crate validates no names either
/// ([`is_token`] stays).
pub fn expiry_lines(name: &str, paths: &[String], domains: &[String]) -> Vec<String> {
    if name.len() > MAX_BROWSER_COOKIE_BYTES || !is_token(name) {
        return Vec::new();
    }
    const TAIL: &str = "=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=";
    let line = |path: &str, domain: Option<&str>, secure: bool| {
        let mut l = String::with_capacity(name.len() + TAIL.len() + path.len() + 48);
        l.push_str(name);
        l.push_str(TAIL);
        l.push_str(path);
        if let Some(d) = domain {
            l.push_str("; Domain=");
            l.push_str(d);
        }
        if secure {
            l.push_str("; Secure");
        }
        l
    };
    if name.starts_with("__Host-") {
        return vec![line("/", None, true)];
    }
    let secure = name.starts_with("__Secure-");
    let mut out = Vec::with_capacity(paths.len() * (1 + domains.len()));
    for path in paths {
        out.push(line(path, None, secure));
        for domain in domains {
            out.push(line(path, Some(domain), secure));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Grants;
    use crate::cookies::classify::RuleSet;

    fn classifier() -> Classifier {
        let mut consent = RuleSet::default();
        consent.add("consent", Category::Necessary).unwrap();
        let mut rules = RuleSet::default();
        rules.add("SESSIONID", Category::Necessary).unwrap();
        rules.add("_ga", Category::Analytics).unwrap();
        rules.add("_ga_*", Category::Analytics).unwrap();
        rules.add("_fbp", Category::Marketing).unwrap();
        Classifier::new(consent, rules, RuleSet::default())
    }

    fn state(cats: &[Category]) -> ConsentState {
        ConsentState {
            grants: Grants::from_categories(cats.iter().copied()),
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_follow_consent() {
        let c = classifier();
        let gate = Gate {
            classifier: &c,
            unknown: UnknownPolicy::Strip,
            vendor_rules: &[],
        };
        let none = state(&[]);
        let analytics = state(&[Category::Analytics]);
        assert!(gate.verdict("SESSIONID", &none).allowed);
        assert!(gate.verdict("consent", &none).allowed);
        assert!(!gate.verdict("_ga", &none).allowed);
        assert!(gate.verdict("_ga_XYZ", &analytics).allowed);
        assert!(!gate.verdict("_fbp", &analytics).allowed);
        let unknown = gate.verdict("whatever", &analytics);
        assert_eq!((unknown.category, unknown.allowed), (None, false));
        assert_eq!(request_action(&unknown), RequestAction::Strip);
        assert_eq!(
            request_action(&gate.verdict("_fbp", &none)),
            RequestAction::Expire
        );
        let keep = Gate {
            unknown: UnknownPolicy::Keep,
            ..gate
        };
        assert!(keep.verdict("whatever", &none).allowed);
    }

    #[test]
    fn vendor_rules_fail_closed() {
        let c = classifier();
        let mut ga = RuleSet::default();
        ga.add("_ga*", Category::Analytics).unwrap();
        let rules = vec![(ga, 755u16)];
        let gate = Gate {
            classifier: &c,
            unknown: UnknownPolicy::Strip,
            vendor_rules: &rules,
        };
        let mut s = state(&[Category::Analytics]);
        assert!(!gate.verdict("_ga", &s).allowed, "no TCF string: refused");
        let mut v = crate::consent::VendorSet::default();
        v.insert(755);
        s.vendors = Some(std::sync::Arc::new(v));
        assert!(gate.verdict("_ga", &s).allowed);
    }

    #[test]
    fn set_cookie_names() {
        assert_eq!(set_cookie_name(b"_ga=GA1.2; Path=/"), b"_ga");
        assert_eq!(set_cookie_name(b" sid = x"), b"sid");
        assert_eq!(set_cookie_name(b"novalue; Path=/"), b"");
        assert_eq!(set_cookie_name(b"a=b=c"), b"a");
        assert_eq!(set_cookie_name(b""), b"");
    }

    /// The one-pass name is the two-step one (the first `;`-part, then its first `=`), on lines
    /// with odd but legal syntax.
    #[test]
    fn set_cookie_name_is_first_part_before_first_equals() {
        let two_step = |line: &[u8]| -> Vec<u8> {
            let pair = line.split(|b| *b == b';').next().unwrap_or(b"");
            match pair.iter().position(|b| *b == b'=') {
                Some(i) => pair[..i].trim_ascii().to_vec(),
                None => Vec::new(),
            }
        };
        for line in [
            &b"_ga=GA1.2; Path=/"[..],
            b"novalue",
            b"novalue;",
            b";a=b",
            b"=b; Path=/",
            b"\t a \t=b",
            b"a;=b",
            b"a=;b=c",
            b"\"q\"=\"v;w\"; Path=/",
            b"__Host-id=1; Secure; Path=/; Partitioned",
            b"n=v; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
            b"\xc3\xa9t\xc3\xa9=1",
            b"\xff=1",
            b";",
            b"=",
        ] {
            assert_eq!(set_cookie_name(line), &two_step(line)[..], "{line:?}");
        }
    }

    #[test]
    fn expiry_variants() {
        let l = expiry_lines("_ga", &["/".into()], &["example.com".into()]);
        assert_eq!(
            l,
            vec![
                "_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
                "_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Domain=example.com"
            ]
        );
        assert_eq!(
            expiry_lines("__Host-x", &["/a".into()], &["e.com".into()]).len(),
            1
        );
        assert!(expiry_lines("__Secure-x", &["/".into()], &[])[0].ends_with("; Secure"));
        assert!(expiry_lines("bad name", &["/".into()], &[]).is_empty());
        assert!(expiry_lines("", &["/".into()], &[]).is_empty());
        let huge = format!("_ga_{}", "a".repeat(MAX_BROWSER_COOKIE_BYTES));
        assert!(expiry_lines(&huge, &["/".into()], &[]).is_empty());
    }

    #[test]
    fn line_count_matches_the_lines() {
        let paths: Vec<String> = vec!["/".into(), "/shop".into()];
        let domains: Vec<String> = vec!["example.com".into(), ".example.com".into()];
        let huge = "a".repeat(MAX_BROWSER_COOKIE_BYTES + 1);
        for name in ["_ga", "__Host-x", "__Secure-y", "bad name", "", &huge] {
            assert_eq!(
                expiry_line_count(name, paths.len(), domains.len()),
                expiry_lines(name, &paths, &domains).len(),
                "{name:.20}"
            );
        }
    }
}
