//! Cookie name -> category, in the order DESIGN.md fixes: the consent cookies themselves
//! (always necessary), operator rules, the built-in catalogue, the optional Open Cookie Database,
//! and finally "unknown" (the site's `unknown_cookies` policy decides).

use super::catalogue;
use crate::consent::Category;
use serde::Serialize;
use std::collections::HashMap;

/// Where a classification came from (shown by `explain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    ConsentCookie,
    Rule,
    Catalogue,
    OpenCookieDatabase,
}

/// A set of name patterns: exact names, prefixes (`name*`) and globs (`*` and `?` anywhere).
/// Lookup order: exact, then the longest matching prefix, then globs in the order added.
#[derive(Debug, Default)]
pub struct RuleSet {
    exact: HashMap<Box<str>, Category>,
    /// Sorted longest first, so the most specific prefix wins.
    prefixes: Vec<(Box<str>, Category)>,
    globs: Vec<(Box<str>, Category)>,
}

/// Why a pattern was refused.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern == "*" {
        return Err("an empty pattern or a lone `*` would match every cookie".into());
    }
    if let Some(c) = pattern
        .chars()
        .find(|c| c.is_control() || matches!(c, ' ' | ';' | ',' | '=' | '"'))
    {
        return Err(format!("{c:?} cannot appear in a cookie name"));
    }
    Ok(())
}

impl RuleSet {
    /// Adds a pattern. The first pattern added for an exact name or prefix keeps it.
    pub fn add(&mut self, pattern: &str, category: Category) -> Result<(), String> {
        check_pattern(pattern)?;
        let body = pattern.strip_suffix('*');
        match body {
            Some(prefix) if !prefix.contains(['*', '?']) => {
                if !self.prefixes.iter().any(|(p, _)| &**p == prefix) {
                    self.prefixes.push((prefix.into(), category));
                    self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
                }
            }
            _ if pattern.contains(['*', '?']) => self.globs.push((pattern.into(), category)),
            _ => {
                self.exact.entry(pattern.into()).or_insert(category);
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty() && self.globs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.prefixes.len() + self.globs.len()
    }

    pub fn lookup(&self, name: &str) -> Option<Category> {
        if let Some(c) = self.exact.get(name) {
            return Some(*c);
        }
        if let Some((_, c)) = self.prefixes.iter().find(|(p, _)| name.starts_with(&**p)) {
            return Some(*c);
        }
        self.globs
            .iter()
            .find(|(g, _)| glob_match(g.as_bytes(), name.as_bytes()))
            .map(|(_, c)| *c)
    }
}

/// `*` matches any run of bytes, `?` one byte. Iterative with one backtrack point: linear-ish
/// time whatever the input.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// The classifier of one site, built once per configuration load.
#[derive(Debug, Default)]
pub struct Classifier {
    consent_cookies: RuleSet,
    rules: RuleSet,
    database: RuleSet,
}

impl Classifier {
    pub fn new(consent_cookies: RuleSet, rules: RuleSet, database: RuleSet) -> Self {
        Classifier {
            consent_cookies,
            rules,
            database,
        }
    }

    /// The category of a cookie name and where it came from; `None` = unknown.
    pub fn classify(&self, name: &str) -> Option<(Category, Origin)> {
        if let Some(c) = self.consent_cookies.lookup(name) {
            return Some((c, Origin::ConsentCookie));
        }
        if let Some(c) = self.rules.lookup(name) {
            return Some((c, Origin::Rule));
        }
        if let Some(e) = catalogue::lookup(name) {
            return Some((e.category, Origin::Catalogue));
        }
        self.database
            .lookup(name)
            .map(|c| (c, Origin::OpenCookieDatabase))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    #[test]
    fn exact_prefix_glob_order() {
        let mut r = RuleSet::default();
        r.add("_ga", Analytics).unwrap();
        r.add("_g*", Marketing).unwrap();
        r.add("_gcl_*", Preferences).unwrap();
        r.add("x?y*z", Necessary).unwrap();
        assert_eq!(r.lookup("_ga"), Some(Analytics));
        assert_eq!(
            r.lookup("_gcl_au"),
            Some(Preferences),
            "longest prefix wins"
        );
        assert_eq!(r.lookup("_gid"), Some(Marketing));
        assert_eq!(r.lookup("xAy123z"), Some(Necessary));
        assert_eq!(r.lookup("xAy123"), None);
        assert_eq!(r.lookup("other"), None);
    }

    #[test]
    fn bad_patterns_are_refused() {
        let mut r = RuleSet::default();
        assert!(r.add("", Analytics).is_err());
        assert!(r.add("*", Analytics).is_err());
        assert!(r.add("a b", Analytics).is_err());
        assert!(r.add("a=b", Analytics).is_err());
    }

    #[test]
    fn glob_is_not_exponential() {
        let p = "*a*a*a*a*a*a*a*a*b";
        let name = "a".repeat(10_000);
        assert!(!glob_match(p.as_bytes(), name.as_bytes()));
    }

    #[test]
    fn layers_in_order() {
        let mut consent = RuleSet::default();
        consent.add("consent", Necessary).unwrap();
        let mut rules = RuleSet::default();
        rules.add("_ga", Marketing).unwrap();
        rules.add("consent", Marketing).unwrap();
        let mut db = RuleSet::default();
        db.add("dbonly", Analytics).unwrap();
        db.add("_fbp", Necessary).unwrap();
        let c = Classifier::new(consent, rules, db);
        assert_eq!(
            c.classify("consent"),
            Some((Necessary, Origin::ConsentCookie))
        );
        assert_eq!(c.classify("_ga"), Some((Marketing, Origin::Rule)));
        assert_eq!(c.classify("_fbp"), Some((Marketing, Origin::Catalogue)));
        assert_eq!(
            c.classify("dbonly"),
            Some((Analytics, Origin::OpenCookieDatabase))
        );
        assert_eq!(c.classify("nobody-knows"), None);
    }
}
