//! Cookie name -> category, in the order DESIGN.md fixes: the consent cookies themselves
//! (always necessary), operator rules, the built-in catalogue, the optional Open Cookie Database,
//! and finally "unknown" (the site's `unknown_cookies` policy decides).

use super::catalogue;
use crate::consent::Category;
use serde::Serialize;
use std::collections::HashMap;

/// A fast, non-cryptographic hasher: keys come from configuration, not from visitors, so
/// hash flooding is not a concern, and this lookup runs for every cookie of every request.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

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
    exact: FastMap<Box<str>, Category>,
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

    /// Every pattern with its category, one `pattern<TAB>category` line each, in a fixed
    /// order: exact names and prefixes sorted (their order decides nothing), globs in the order
    /// that decides. Two sets with the same text classify every name alike (consent receipts
    /// hash it into the site's `policy_version`).
    pub fn canonical(&self) -> String {
        let mut lines: Vec<String> = self
            .exact
            .iter()
            .map(|(p, c)| format!("{p}\t{}", c.as_str()))
            .chain(
                self.prefixes
                    .iter()
                    .map(|(p, c)| format!("{p}*\t{}", c.as_str())),
            )
            .collect();
        lines.sort();
        lines.extend(
            self.globs
                .iter()
                .map(|(p, c)| format!("{p}\t{}", c.as_str())),
        );
        let mut text = lines.join("\n");
        text.push('\n');
        text
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

/// The classifier of one site, built once per configuration load: every layer merged into one
/// exact-name map and one prefix index, each entry tagged with its layer, so a lookup costs one
/// hash probe and a short prefix scan whatever the number of layers and catalogue entries. A name
/// some layer lists exactly has its final answer (prefixes and globs of lower layers weighed)
/// worked out once at load, so for the names real traffic mostly carries a lookup is the one
/// probe (it runs for every cookie and `Set-Cookie` line of every request).
/// Precedence is kept exactly: a lower layer (consent cookies < rules < catalogue < database)
/// always wins; within a layer, exact beats the longest prefix, which beats a glob.
#[derive(Debug, Default)]
pub struct Classifier {
    /// Name -> the (layer, category) [`Classifier::classify`] answers for it: its best exact
    /// entry, or a lower layer's prefix or glob that beats it (resolved in [`Classifier::new`]);
    /// and its slot ([`NO_SLOT`] for none).
    exact: FastMap<Box<str>, (u8, Category, u32)>,
    /// Slots given: one per name listed by the consent cookies, the rules or the catalogue (not
    /// the database, which may be large), numbered from 0 (see [`Classifier::slot_count`]).
    slots: u32,
    /// Prefixes bucketed by their first two bytes; each bucket sorted by (layer, longest first).
    prefixes: FastMap<[u8; 2], Vec<LayeredPattern>>,
    /// Prefixes of one byte (rare), sorted the same way.
    short_prefixes: Vec<LayeredPattern>,
    /// Globs with their layer, in layer order.
    globs: Vec<LayeredPattern>,
}

/// A prefix or glob pattern with its layer (0 = consent cookies ... 3 = database).
type LayeredPattern = (Box<str>, u8, Category);

/// An exact name without a slot.
const NO_SLOT: u32 = u32::MAX;

/// The first layer whose names get no slot (the database's).
const SLOTLESS_LAYER: u8 = 3;

const LAYERS: [Origin; 4] = [
    Origin::ConsentCookie,
    Origin::Rule,
    Origin::Catalogue,
    Origin::OpenCookieDatabase,
];

impl Classifier {
    pub fn new(consent_cookies: RuleSet, rules: RuleSet, database: RuleSet) -> Self {
        let mut catalogue = RuleSet::default();
        for e in catalogue::CATALOGUE {
            // Catalogue patterns are checked by its own tests.
            let _ = catalogue.add(e.pattern, e.category);
        }
        let mut c = Classifier::default();
        for (layer, set) in [consent_cookies, rules, catalogue, database]
            .into_iter()
            .enumerate()
        {
            let layer = layer as u8;
            for (name, cat) in set.exact {
                if let std::collections::hash_map::Entry::Vacant(v) = c.exact.entry(name) {
                    let slot = if layer < SLOTLESS_LAYER {
                        c.slots += 1;
                        c.slots - 1
                    } else {
                        NO_SLOT
                    };
                    v.insert((layer, cat, slot));
                }
            }
            for (prefix, cat) in set.prefixes {
                let entry = (prefix, layer, cat);
                match entry.0.as_bytes() {
                    [a, b, ..] => c.prefixes.entry([*a, *b]).or_default().push(entry),
                    _ => c.short_prefixes.push(entry),
                }
            }
            for (glob, cat) in set.globs {
                c.globs.push((glob, layer, cat));
            }
        }
        let order =
            |a: &LayeredPattern, b: &LayeredPattern| a.1.cmp(&b.1).then(b.0.len().cmp(&a.0.len()));
        for bucket in c.prefixes.values_mut() {
            bucket.sort_by(order);
        }
        c.short_prefixes.sort_by(order);
        // Each exact name's final answer, once: the request path then stops at the probe.
        let mut exact = std::mem::take(&mut c.exact);
        for (name, entry) in exact.iter_mut() {
            if let Some((layer, _, cat)) = c.best_pattern(name, Some((entry.0, 0, entry.1))) {
                *entry = (layer, cat, entry.2);
            }
        }
        c.exact = exact;
        c
    }

    /// Whether some layer names this cookie exactly (not through a prefix or glob): the names
    /// the configuration, catalogue and database list, a set visitors cannot add to.
    pub fn is_listed(&self, name: &str) -> bool {
        self.exact.contains_key(name)
    }

    /// The category of a cookie name and where it came from; `None` = unknown.
    pub fn classify(&self, name: &str) -> Option<(Category, Origin)> {
        self.classify_slot(name).0
    }

    /// [`Classifier::classify`], and the name's slot when it has one: a number below
    /// [`Classifier::slot_count`], the same for the same name (the live inventory keeps its
    /// entries by it, `crate::inventory::Slots`).
    pub fn classify_slot(&self, name: &str) -> (Option<(Category, Origin)>, Option<u32>) {
        // An exact name's entry is already the best of every layer (see `new`).
        let (best, slot) = match self.exact.get(name) {
            Some(&(layer, cat, slot)) => (Some((layer, cat)), (slot != NO_SLOT).then_some(slot)),
            None => (
                self.best_pattern(name, None)
                    .map(|(layer, _, cat)| (layer, cat)),
                None,
            ),
        };
        (best.map(|(layer, cat)| (cat, LAYERS[layer as usize])), slot)
    }

    /// How many slots [`Classifier::classify_slot`] gives out.
    pub fn slot_count(&self) -> usize {
        self.slots as usize
    }

    /// The best of `best` (a candidate as (layer, rank within layer: 0 exact, 1 prefix,
    /// 2 glob), category) and the prefixes and globs matching `name`.
    fn best_pattern(
        &self,
        name: &str,
        mut best: Option<(u8, u8, Category)>,
    ) -> Option<(u8, u8, Category)> {
        let better = |best: &Option<(u8, u8, Category)>, layer: u8, rank: u8| {
            best.is_none_or(|(l, r, _)| (layer, rank) < (l, r))
        };
        let bytes = name.as_bytes();
        if bytes.len() >= 2 {
            if let Some(bucket) = self.prefixes.get(&[bytes[0], bytes[1]]) {
                // Sorted by layer then length: the first match is the best prefix, and once
                // the layer cannot beat what is already found the scan stops (an exact rule
                // hit only needs the consent-cookie layer's prefixes checked).
                if let Some((_, layer, cat)) = bucket
                    .iter()
                    .take_while(|(_, layer, _)| better(&best, *layer, 1))
                    .find(|(p, _, _)| name.starts_with(&**p))
                {
                    best = Some((*layer, 1, *cat));
                }
            }
        }
        if let Some((_, layer, cat)) = self
            .short_prefixes
            .iter()
            .take_while(|(_, layer, _)| better(&best, *layer, 1))
            .find(|(p, _, _)| name.starts_with(&**p))
        {
            if better(&best, *layer, 1) {
                best = Some((*layer, 1, *cat));
            }
        }
        for (glob, layer, cat) in &self.globs {
            if !better(&best, *layer, 2) {
                break;
            }
            if glob_match(glob.as_bytes(), bytes) {
                best = Some((*layer, 2, *cat));
                break;
            }
        }
        best
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
        assert!(c.is_listed("dbonly") && c.is_listed("_fbp"));
        assert!(
            !c.is_listed("_ga_ABC123"),
            "matched through the `_ga_*` prefix only"
        );
    }

    #[test]
    fn listed_names_but_the_database_ones_have_distinct_slots() {
        let mut consent = RuleSet::default();
        consent.add("consent", Necessary).unwrap();
        let mut rules = RuleSet::default();
        rules.add("_ga", Marketing).unwrap();
        rules.add("consent", Marketing).unwrap();
        rules.add("pre*", Analytics).unwrap();
        let mut db = RuleSet::default();
        db.add("dbonly", Analytics).unwrap();
        let c = Classifier::new(consent, rules, db);
        let slot = |name| c.classify_slot(name).1;
        let listed: Vec<u32> = ["consent", "_ga", "_fbp"]
            .into_iter()
            .map(|n| slot(n).expect(n))
            .collect();
        assert!(listed.iter().all(|s| (*s as usize) < c.slot_count()));
        let mut distinct = listed.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), listed.len());
        assert_eq!(slot("dbonly"), None, "database names are looked up");
        assert_eq!(
            slot("prefixed"),
            None,
            "so are names only a pattern matches"
        );
        assert_eq!(slot("nobody-knows"), None);
    }

    #[test]
    fn a_higher_layer_prefix_beats_a_lower_layer_exact_name() {
        let mut rules = RuleSet::default();
        rules.add("_g*", Marketing).unwrap();
        rules.add("x*y", Preferences).unwrap();
        let c = Classifier::new(RuleSet::default(), rules, RuleSet::default());
        // The catalogue says `_ga` is analytics; the operator's prefix rule wins.
        assert_eq!(c.classify("_ga"), Some((Marketing, Origin::Rule)));
        assert_eq!(c.classify("x-ay"), Some((Preferences, Origin::Rule)));
        assert_eq!(c.classify("_fbp"), Some((Marketing, Origin::Catalogue)));
    }
}
