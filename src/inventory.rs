//! The live cookie inventory (issue 12): every cookie name each site's traffic carried, in
//! request `Cookie` headers and response `Set-Cookie` lines, with its category, where that
//! classification came from, how often it was kept or stripped, and when it was first and last
//! seen (UTC). The admin listener serves it as `/inventory`; reports read [`Inventory::snapshot`].
//!
//! Request-path cost: the proxy records from the verdicts its plans already made (no second
//! classification). A known name costs a read lock, one hash probe and a few relaxed atomic
//! adds, no allocation; only a new name takes the write lock and allocates.
//!
//! Bounded (every client is a potential attacker): names must be short printable ASCII (the
//! same test as metric labels, [`crate::metrics::label_candidate`]), each site holds at most
//! [`MAX_NAMES_PER_SITE`] names, all sites together at most [`MAX_BYTES`] bytes, and one request
//! may add at most [`NEW_NAMES_PER_REQUEST`] names, so a request stuffed with made-up names
//! cannot fill the inventory before the real cookies are seen. Names refused for any of these
//! reasons are counted per site (`refused` in `/inventory`, and
//! `consentgate_inventory_refused_total`). The inventory lives for the process, across reloads
//! (first-seen dates stay true); a name's category is the latest configuration's.

use crate::consent::Category;
use crate::cookies::classify::Origin;
use crate::labels::CategoryLabel;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, OnceLock, RwLock};

/// Names per site.
pub const MAX_NAMES_PER_SITE: usize = 2000;
/// Bytes held by all names of all sites, counting [`ENTRY_OVERHEAD`] per name.
pub const MAX_BYTES: usize = 2 << 20;
/// What one entry costs besides its name (counters, times, hash table slot), for the budget.
pub const ENTRY_OVERHEAD: usize = 96;
/// New names one request (its cookies and its response's `Set-Cookie` lines) may add.
pub const NEW_NAMES_PER_REQUEST: u32 = 8;

/// Visitor-chosen keys: a seeded hasher, so names cannot be crafted to collide.
type Names = HashMap<Box<str>, Arc<Entry>, foldhash::quality::RandomState>;

/// Every site's inventory. One per process ([`INVENTORY`]).
#[derive(Default)]
pub struct Inventory {
    sites: RwLock<Vec<Arc<SiteInventory>>>,
    /// Bytes held by every site's names (checked against [`MAX_BYTES`]).
    bytes: AtomicUsize,
}

/// The process' inventory.
pub static INVENTORY: LazyLock<Arc<Inventory>> = LazyLock::new(Default::default);

/// One site's names.
pub struct SiteInventory {
    site: Box<str>,
    names: RwLock<Names>,
    /// Names not added (full, too long, not printable, per-request budget spent).
    refused: AtomicU64,
    owner: std::sync::Weak<Inventory>,
    refused_metric: prometheus::IntCounter,
}

struct Entry {
    /// [`CategoryLabel`] index in the low nibble, 1 + [`Origin`] index in the high one (0: none).
    class: AtomicU8,
    kept: AtomicU64,
    stripped: AtomicU64,
    first_seen: u64,
    last_seen: AtomicU64,
}

/// One name of one site, as reports and `/inventory` show it. Counts are cumulative since the
/// process started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InventoryEntry {
    pub site: String,
    pub name: String,
    /// `necessary`, `preferences`, `analytics`, `marketing` or `unknown`.
    pub category: CategoryLabel,
    /// Which layer classified it (`consent-cookie`, `rule`, `catalogue`,
    /// `open-cookie-database`); `None` for an unknown name.
    pub origin: Option<Origin>,
    /// Times the cookie reached the origin (request) or the browser (`Set-Cookie`), including
    /// what report-only mode only would have stripped.
    pub kept: u64,
    /// Times it was withheld (enforce mode).
    pub stripped: u64,
    #[serde(serialize_with = "rfc3339")]
    pub first_seen: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: chrono::DateTime<chrono::Utc>,
}

fn rfc3339<S: serde::Serializer>(
    t: &chrono::DateTime<chrono::Utc>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

const ORIGINS: [Origin; 4] = [
    Origin::ConsentCookie,
    Origin::Rule,
    Origin::Catalogue,
    Origin::OpenCookieDatabase,
];

fn pack(category: Option<Category>, origin: Option<Origin>) -> u8 {
    let cat = CategoryLabel::from(category) as u8;
    let origin = origin.map_or(0, |o| {
        1 + ORIGINS.iter().position(|x| *x == o).unwrap_or(0) as u8
    });
    cat | origin << 4
}

fn unpack(class: u8) -> (CategoryLabel, Option<Origin>) {
    let cat = CategoryLabel::ALL
        .get(usize::from(class & 0x0f))
        .copied()
        .unwrap_or(CategoryLabel::Unknown);
    let origin = match class >> 4 {
        0 => None,
        o => ORIGINS.get(usize::from(o - 1)).copied(),
    };
    (cat, origin)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn to_utc(secs: u64) -> chrono::DateTime<chrono::Utc> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_default()
}

impl Inventory {
    /// The inventory of `site`, created on first use (at configuration load, not per request).
    pub fn site(self: &Arc<Self>, site: &str) -> Arc<SiteInventory> {
        if let Some(s) = self.find(site) {
            return s;
        }
        let mut sites = self.sites.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sites.iter().find(|s| &*s.site == site) {
            return s.clone();
        }
        let s = Arc::new(SiteInventory {
            site: site.into(),
            names: RwLock::new(Names::default()),
            refused: AtomicU64::new(0),
            owner: Arc::downgrade(self),
            refused_metric: crate::metrics::INVENTORY_REFUSED.with_label_values(&[site]),
        });
        sites.push(s.clone());
        s
    }

    fn find(&self, site: &str) -> Option<Arc<SiteInventory>> {
        let sites = self.sites.read().unwrap_or_else(|e| e.into_inner());
        sites.iter().find(|s| &*s.site == site).cloned()
    }

    /// Every name of every site, sorted by site then name.
    pub fn snapshot(&self) -> Vec<InventoryEntry> {
        let sites = self.sites.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = Vec::new();
        for s in sites {
            s.snapshot_into(&mut out);
        }
        out.sort_by(|a, b| (&a.site, &a.name).cmp(&(&b.site, &b.name)));
        out
    }

    /// Names refused per site (full, invalid, or over a request's budget).
    pub fn refused(&self) -> Vec<(String, u64)> {
        let sites = self.sites.read().unwrap_or_else(|e| e.into_inner());
        sites
            .iter()
            .map(|s| (s.site.to_string(), s.refused.load(Relaxed)))
            .collect()
    }

    /// Bytes the names hold now (at most [`MAX_BYTES`]).
    pub fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }
}

/// What one request's recording carries from its cookies to its response's lines: the budget
/// of new names and the time, read once per request (at its first cookie).
#[derive(Debug)]
pub struct RequestBudget {
    new_names: u32,
    now: Option<u64>,
}

impl Default for RequestBudget {
    fn default() -> Self {
        RequestBudget {
            new_names: NEW_NAMES_PER_REQUEST,
            now: None,
        }
    }
}

/// Records the cookies of one request (or of its response) into a site's inventory.
pub struct Recorder<'a> {
    site: &'a SiteInventory,
    slots: &'a Slots,
    budget: &'a mut RequestBudget,
}

/// No slots: every name is looked up.
static NO_SLOTS: LazyLock<Slots> = LazyLock::new(Slots::default);

impl SiteInventory {
    /// A recorder for one request's cookies or its response's lines (the same `budget` for
    /// both).
    pub fn recorder<'a>(&'a self, budget: &'a mut RequestBudget) -> Recorder<'a> {
        self.recorder_with(&NO_SLOTS, budget)
    }

    /// A recorder that keeps the entries of listed names in `slots` (the site's configuration's:
    /// slot numbers come from its classifier).
    pub fn recorder_with<'a>(
        &'a self,
        slots: &'a Slots,
        budget: &'a mut RequestBudget,
    ) -> Recorder<'a> {
        Recorder {
            site: self,
            slots,
            budget,
        }
    }

    fn snapshot_into(&self, out: &mut Vec<InventoryEntry>) {
        let names = self.names.read().unwrap_or_else(|e| e.into_inner());
        for (name, e) in names.iter() {
            let (category, origin) = unpack(e.class.load(Relaxed));
            out.push(InventoryEntry {
                site: self.site.to_string(),
                name: name.to_string(),
                category,
                origin,
                kept: e.kept.load(Relaxed),
                stripped: e.stripped.load(Relaxed),
                first_seen: to_utc(e.first_seen),
                last_seen: to_utc(e.last_seen.load(Relaxed)),
            });
        }
    }

    fn refuse(&self) {
        self.refused.fetch_add(1, Relaxed);
        self.refused_metric.inc();
    }
}

impl Recorder<'_> {
    /// Records one cookie (a request cookie or a `Set-Cookie` line): its classification and
    /// whether it was stripped.
    pub fn record(
        &mut self,
        name: &str,
        category: Option<Category>,
        origin: Option<Origin>,
        stripped: bool,
    ) {
        self.record_listed(name, None, category, origin, stripped)
    }

    /// [`Recorder::record`] for a name the classifier lists with `slot` (from its verdict):
    /// once the name has an entry, the recorder's [`Slots`] hold it, and recording it again
    /// takes no lock and no hash look-up.
    pub fn record_listed(
        &mut self,
        name: &str,
        slot: Option<u32>,
        category: Option<Category>,
        origin: Option<Origin>,
        stripped: bool,
    ) {
        let now = *self.budget.now.get_or_insert_with(now_unix);
        let class = pack(category, origin);
        let slot = slot.and_then(|i| self.slots.0.get(i as usize));
        if let Some(e) = slot.and_then(OnceLock::get) {
            return e.bump(stripped, now, class);
        }
        let entry = self.find_or_add(name, now, class, stripped);
        if let (Some(slot), Some(entry)) = (slot, entry) {
            // A name has one entry for the life of the process (names are never removed).
            let _ = slot.set(entry);
        }
    }

    /// Bumps `name`'s entry, adding it if the budgets allow; the entry, when there is one.
    fn find_or_add(
        &mut self,
        name: &str,
        now: u64,
        class: u8,
        stripped: bool,
    ) -> Option<Arc<Entry>> {
        let site = self.site;
        {
            let names = site.names.read().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = names.get(name) {
                e.bump(stripped, now, class);
                return Some(e.clone());
            }
            if !crate::metrics::label_candidate(name)
                || self.budget.new_names == 0
                || names.len() >= MAX_NAMES_PER_SITE
            {
                site.refuse();
                return None;
            }
        }
        let owner = site.owner.upgrade()?;
        let mut names = site.names.write().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = names.get(name) {
            e.bump(stripped, now, class);
            return Some(e.clone());
        }
        let cost = name.len() + ENTRY_OVERHEAD;
        let reserved = owner
            .bytes
            .fetch_update(Relaxed, Relaxed, |b| {
                (b + cost <= MAX_BYTES).then_some(b + cost)
            })
            .is_ok();
        if !reserved || names.len() >= MAX_NAMES_PER_SITE {
            if reserved {
                owner.bytes.fetch_sub(cost, Relaxed);
            }
            site.refuse();
            return None;
        }
        self.budget.new_names -= 1;
        let e = Arc::new(Entry {
            class: AtomicU8::new(class),
            kept: AtomicU64::new(0),
            stripped: AtomicU64::new(0),
            first_seen: now,
            last_seen: AtomicU64::new(now),
        });
        e.bump(stripped, now, class);
        names.insert(name.into(), e.clone());
        Some(e)
    }
}

impl Entry {
    fn bump(&self, stripped: bool, now: u64, class: u8) {
        let n = if stripped { &self.stripped } else { &self.kept };
        n.fetch_add(1, Relaxed);
        // Stores only when something changed: no cache-line traffic between workers for the
        // common case.
        if self.last_seen.load(Relaxed) != now {
            self.last_seen.store(now, Relaxed);
        }
        if self.class.load(Relaxed) != class {
            self.class.store(class, Relaxed);
        }
    }
}

/// One configuration's shortcut into a site's inventory: the entry of each name its classifier
/// lists with a slot ([`crate::cookies::classify::Classifier::slot_count`]: the consent
/// cookies, the operator's rules and the built-in catalogue, a set fixed by the configuration),
/// filled the first time the name is recorded. Bounded by that set (a pointer per name), built
/// with the configuration and dropped with it.
#[derive(Default)]
pub struct Slots(Box<[OnceLock<Arc<Entry>>]>);

impl Slots {
    pub fn new(count: usize) -> Slots {
        Slots((0..count).map(|_| OnceLock::new()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Arc<Inventory> {
        Arc::new(Inventory::default())
    }

    /// Records as one request of its own.
    fn once(
        site: &SiteInventory,
        name: &str,
        cat: Option<Category>,
        origin: Option<Origin>,
        stripped: bool,
    ) {
        let mut budget = RequestBudget::default();
        site.recorder(&mut budget)
            .record(name, cat, origin, stripped);
    }

    #[test]
    fn a_slot_counts_as_the_look_up_does() {
        let inv = fresh();
        let site = inv.site("shop");
        let slots = Slots::new(2);
        let (cat, origin) = (Some(Category::Analytics), Some(Origin::Catalogue));
        // A request whose budget is spent: the name is refused, its slot stays empty.
        let mut spent = RequestBudget {
            new_names: 0,
            now: None,
        };
        site.recorder_with(&slots, &mut spent)
            .record_listed("_ga", Some(1), cat, origin, true);
        assert!(inv.snapshot().is_empty() && slots.0[1].get().is_none());
        for stripped in [true, false, true] {
            let mut budget = RequestBudget::default();
            site.recorder_with(&slots, &mut budget).record_listed(
                "_ga",
                Some(1),
                cat,
                origin,
                stripped,
            );
        }
        // The same name recorded without its slot lands on the same entry.
        once(&site, "_ga", cat, origin, false);
        let snap = inv.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!((snap[0].kept, snap[0].stripped), (2, 2));
        assert_eq!(site.refused.load(Relaxed), 1);
        assert!(slots.0[1].get().is_some() && slots.0[0].get().is_none());
    }

    #[test]
    fn counts_kept_and_stripped_with_classification() {
        let inv = fresh();
        let site = inv.site("shop");
        let mut budget = RequestBudget::default();
        let mut r = site.recorder(&mut budget);
        r.record(
            "_ga",
            Some(Category::Analytics),
            Some(Origin::Catalogue),
            true,
        );
        r.record(
            "_ga",
            Some(Category::Analytics),
            Some(Origin::Catalogue),
            true,
        );
        r.record("sid", Some(Category::Necessary), Some(Origin::Rule), false);
        r.record("mystery", None, None, false);
        let snap = inv.snapshot();
        assert_eq!(snap.len(), 3);
        let ga = &snap[0];
        assert_eq!((ga.name.as_str(), ga.kept, ga.stripped), ("_ga", 0, 2));
        assert_eq!(ga.category, CategoryLabel::Analytics);
        assert_eq!(ga.origin, Some(Origin::Catalogue));
        assert!(ga.first_seen <= ga.last_seen);
        assert_eq!(snap[1].name, "mystery");
        assert_eq!(snap[1].category, CategoryLabel::Unknown);
        assert_eq!(snap[1].origin, None);
        let json = serde_json::to_value(&snap[2]).unwrap();
        assert_eq!(json["origin"], "rule");
        assert_eq!(json["category"], "necessary");
        assert!(json["first_seen"].as_str().unwrap().ends_with('Z'));
        // The same site name gives the same inventory.
        assert!(Arc::ptr_eq(&site, &inv.site("shop")));
    }

    #[test]
    fn one_request_adds_a_few_names_and_the_rest_are_counted() {
        let inv = fresh();
        let site = inv.site("s");
        let mut budget = RequestBudget::default();
        let mut r = site.recorder(&mut budget);
        for i in 0..100 {
            r.record(&format!("junk{i}"), None, None, false);
        }
        assert_eq!(inv.snapshot().len(), NEW_NAMES_PER_REQUEST as usize);
        assert_eq!(
            inv.refused(),
            vec![("s".into(), 100 - NEW_NAMES_PER_REQUEST as u64)]
        );
        // A later request still adds its real cookie; a known name never counts as refused.
        once(&site, "junk0", None, None, false);
        once(
            &site,
            "real",
            Some(Category::Preferences),
            Some(Origin::Rule),
            false,
        );
        assert_eq!(inv.snapshot().len(), NEW_NAMES_PER_REQUEST as usize + 1);
        assert_eq!(inv.refused()[0].1, 100 - NEW_NAMES_PER_REQUEST as u64);
    }

    #[test]
    fn bounded_in_names_and_bytes() {
        let inv = fresh();
        let site = inv.site("big");
        for i in 0..(MAX_NAMES_PER_SITE + 10) {
            once(&site, &format!("n{i}"), None, None, false);
        }
        assert_eq!(inv.snapshot().len(), MAX_NAMES_PER_SITE);
        assert_eq!(inv.refused()[0].1, 10);
        // Invalid names are refused, not stored.
        once(&site, "", None, None, false);
        once(&site, "a b", None, None, false);
        once(&site, &"x".repeat(65), None, None, false);
        assert_eq!(inv.refused()[0].1, 13);
        // The byte budget holds across sites.
        let mut i = 0;
        while inv.bytes() + 64 + ENTRY_OVERHEAD <= MAX_BYTES {
            let s = inv.site(&format!("site{}", i / MAX_NAMES_PER_SITE));
            once(&s, &format!("{:0>64}", i), None, None, false);
            i += 1;
        }
        let before = inv.snapshot().len();
        once(&inv.site("last"), &"y".repeat(64), None, None, false);
        assert_eq!(inv.snapshot().len(), before, "no room left");
        assert!(inv.bytes() <= MAX_BYTES);
    }

    #[test]
    fn classification_follows_the_latest_verdict() {
        let inv = fresh();
        let site = inv.site("s");
        once(&site, "x", None, None, false);
        once(
            &site,
            "x",
            Some(Category::Marketing),
            Some(Origin::Rule),
            true,
        );
        let e = &inv.snapshot()[0];
        assert_eq!(
            (e.category, e.origin),
            (CategoryLabel::Marketing, Some(Origin::Rule))
        );
        assert_eq!((e.kept, e.stripped), (1, 1));
        for c in CategoryLabel::ALL {
            for o in [
                None,
                Some(Origin::ConsentCookie),
                Some(Origin::OpenCookieDatabase),
            ] {
                let cat = Category::ALL
                    .iter()
                    .copied()
                    .find(|x| CategoryLabel::from(*x) == *c);
                assert_eq!(unpack(pack(cat, o)), (*c, o));
            }
        }
    }
}
