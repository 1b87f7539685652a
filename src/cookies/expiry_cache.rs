//! The per-site cache of expiry `Set-Cookie` values (they only depend on the cookie name and the
//! site's paths and domains, so building them once saves work on every request that withdraws
//! the same cookie).
//!
//! Visitors choose the names, so the cache must not grow with what they send (issue 8, item 2):
//! - it is bounded in bytes ([`CACHE_BYTES`]), not only in entries;
//! - names the configuration, catalogue or database list exactly ([`Admission::Listed`]) are
//!   admitted until that budget is spent: visitors cannot add to that set;
//! - names matched only through a prefix or glob (`_ga_<id>` under `_ga_*`) are what a visitor
//!   can invent, so only short ones are admitted, into [`PATTERN_SLOTS`] slots of their own: junk
//!   can fill those slots but never evicts an entry nor takes a listed name's room;
//! - nothing is ever evicted, so an entry once useful stays; a name not admitted is simply built
//!   per request (a few hundred nanoseconds);
//! - the cache lives in the site's runtime, so a reload starts an empty one and the old one is
//!   freed with the old configuration.

use http::HeaderValue;
use prometheus::IntGauge;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Bytes of names and expiry lines one site keeps ready (with a fixed overhead per entry).
pub const CACHE_BYTES: usize = 256 * 1024;
/// Listed names longer than this are never cached (real cookie names are far shorter).
pub const MAX_LISTED_NAME: usize = 128;
/// Pattern-matched names longer than this are never cached (`_ga_` plus a measurement id is
/// 14 bytes, `_gat_UA-12345678-1` 18).
pub const MAX_PATTERN_NAME: usize = 48;
/// How many pattern-matched names one site caches.
pub const PATTERN_SLOTS: usize = 32;
/// Accounted per entry beyond the name and line bytes: the map slot, the `Arc` header and one
/// `HeaderValue` per line.
const ENTRY_OVERHEAD: usize = 64;

/// Whether a name may be cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Named exactly by configuration, catalogue or database.
    Listed,
    /// Classified through a prefix or glob only.
    Pattern,
    /// Never cached.
    Never,
}

impl Admission {
    /// The admission of a name, given whether the classifier lists it exactly.
    pub fn of(name: &str, listed: bool) -> Admission {
        match (listed, name.len()) {
            (true, n) if n <= MAX_LISTED_NAME => Admission::Listed,
            (false, n) if n <= MAX_PATTERN_NAME => Admission::Pattern,
            _ => Admission::Never,
        }
    }
}

/// Cookie name -> its expiry lines. foldhash is safe here: keys are inserted only under the
/// admission rules above (a bounded set), and lookups alone cannot flood a hash table.
type Map = HashMap<Box<str>, Arc<[HeaderValue]>, foldhash::fast::FixedState>;

#[derive(Default)]
struct Inner {
    map: Map,
    bytes: usize,
    pattern_names: usize,
}

pub struct ExpiryCache {
    inner: RwLock<Inner>,
    /// The bytes held, exported per site (`consentgate_expiry_cache_bytes`).
    gauge: IntGauge,
}

impl ExpiryCache {
    pub fn new(gauge: IntGauge) -> ExpiryCache {
        ExpiryCache {
            inner: RwLock::default(),
            gauge,
        }
    }

    /// The cached values for `name`, or `build()`'s, cached when `admission()` (asked on a miss
    /// only) admits it and the budget has room.
    pub fn get_or_build(
        &self,
        name: &str,
        admission: impl FnOnce() -> Admission,
        build: impl FnOnce() -> Arc<[HeaderValue]>,
    ) -> Arc<[HeaderValue]> {
        if name.len() > MAX_LISTED_NAME.max(MAX_PATTERN_NAME) {
            // Never cached: not even hashed.
            return build();
        }
        let read = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = read.map.get(name) {
            return v.clone();
        }
        drop(read);
        let admission = admission();
        let values = build();
        if admission == Admission::Never {
            return values;
        }
        let cost = name.len()
            + ENTRY_OVERHEAD
            + values
                .iter()
                .map(|v| v.len() + std::mem::size_of::<HeaderValue>())
                .sum::<usize>();
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let room = inner.bytes + cost <= CACHE_BYTES
            && (admission == Admission::Listed || inner.pattern_names < PATTERN_SLOTS);
        if room && !inner.map.contains_key(name) {
            inner.map.insert(name.into(), values.clone());
            inner.bytes += cost;
            if admission == Admission::Pattern {
                inner.pattern_names += 1;
            }
            self.gauge.add(cost as i64);
        }
        values
    }

    /// Bytes held (names, lines and the per-entry overhead).
    pub fn bytes(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).bytes
    }

    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for ExpiryCache {
    // The gauge sums every live configuration's cache for the site: an old one (still serving
    // requests in flight after a reload) takes its share away when it is freed.
    fn drop(&mut self) {
        self.gauge.sub(self.bytes() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(name: &str) -> Arc<[HeaderValue]> {
        crate::cookies::gate::expiry_lines(name, &["/".into()], &["example.com".into()])
            .into_iter()
            .map(|l| HeaderValue::from_str(&l).unwrap())
            .collect()
    }

    fn cache() -> ExpiryCache {
        ExpiryCache::new(IntGauge::new("t", "t").unwrap())
    }

    #[test]
    fn admission_by_origin_and_length() {
        assert_eq!(Admission::of("_ga", true), Admission::Listed);
        assert_eq!(Admission::of("_ga_ABC123", false), Admission::Pattern);
        let long = "_ga_".to_string() + &"a".repeat(MAX_PATTERN_NAME);
        assert_eq!(Admission::of(&long, false), Admission::Never);
        let huge = "a".repeat(MAX_LISTED_NAME + 1);
        assert_eq!(Admission::of(&huge, true), Admission::Never);
    }

    #[test]
    fn junk_fills_only_the_pattern_slots_and_evicts_nothing() {
        let c = cache();
        let useful = c.get_or_build("_ga", || Admission::Listed, || lines("_ga"));
        for i in 0..10_000 {
            let name = format!("_ga_{i:08}");
            c.get_or_build(&name, || Admission::Pattern, || lines(&name));
        }
        assert_eq!(c.len(), 1 + PATTERN_SLOTS);
        assert!(c.bytes() <= CACHE_BYTES);
        // The listed name is still served from the cache (the same allocation), and listed
        // names still get in after the junk.
        let again = c.get_or_build("_ga", || Admission::Listed, || unreachable!("cached"));
        assert!(Arc::ptr_eq(&useful, &again));
        c.get_or_build("_fbp", || Admission::Listed, || lines("_fbp"));
        assert_eq!(c.len(), 2 + PATTERN_SLOTS);
    }

    #[test]
    fn bytes_stay_within_the_budget_and_the_gauge_follows() {
        let gauge = IntGauge::new("g", "g").unwrap();
        let c = ExpiryCache::new(gauge.clone());
        for i in 0..100_000 {
            let name = format!("listed_cookie_name_{i:08}_{}", "x".repeat(80));
            c.get_or_build(&name, || Admission::Listed, || lines(&name));
        }
        assert!(c.bytes() <= CACHE_BYTES, "{}", c.bytes());
        assert!(c.bytes() > CACHE_BYTES / 2, "{}", c.bytes());
        assert_eq!(gauge.get() as usize, c.bytes());
        let never = "a".repeat(1000);
        let before = c.len();
        c.get_or_build(&never, || Admission::Never, || lines("a"));
        assert_eq!(c.len(), before);
        drop(c);
        assert_eq!(gauge.get(), 0);
    }
}
