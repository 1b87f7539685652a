//! The request-path side of receipts: decides, per request with a consent cookie, whether the
//! visitor's decision for the site changed, and if so queues a receipt.
//!
//! Cost (docs/BENCHMARKS.md): a request whose consent signal was seen before hashes its consent
//! cookies' values (foldhash) and looks the hash up in a bounded set, allocating nothing. Only a
//! new signal is decoded (the CMP id), HMAC'd and compared with the subject's last decision.
//! Both caches hold at most [`CACHE_ENTRIES`] entries and are emptied when full: forgetting
//! costs a second look at the store, whose unique key still drops the duplicate.

use super::queue::{Msg, Queue};
use super::{client_network, event_for, split_categories, Receipt, SCHEMA_VERSION};
use crate::consent::{ConsentState, Grants, Verdict};
use crate::cookies::header::split_cookie_header;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

/// Entries per cache: 65,536 hashes of 8 bytes (plus one byte of decision) in a hash table,
/// about 1 MiB each at most.
pub const CACHE_ENTRIES: usize = 65_536;
/// The longest consent value hashed or kept per source (longer ones are cut; a TC string with
/// every vendor is about 10 KiB after URL-encoding).
const MAX_SIGNAL: usize = 16 * 1024;

type Set = HashSet<u64, foldhash::fast::FixedState>;
type Map = HashMap<u64, u8, foldhash::fast::FixedState>;

pub struct Recorder {
    key: ring::hmac::Key,
    store_signal: bool,
    instance: String,
    /// Seeded at start: which signal hashes collide cannot be worked out from outside.
    hasher: foldhash::fast::RandomState,
    /// Signals (site, policy, consent values, GPC) already judged.
    seen: Mutex<Set>,
    /// (site, subject) -> the last decision recorded, as bits of the optional categories.
    last: Mutex<Map>,
    queue: Queue,
}

static RECORDER: OnceLock<Recorder> = OnceLock::new();

/// Turns receipts on for this process (once, at start).
pub fn install(key: &[u8], store_signal: bool, instance: String, queue: Queue) {
    let _ = RECORDER.set(Recorder {
        key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        store_signal,
        instance,
        hasher: foldhash::fast::RandomState::default(),
        seen: Mutex::new(Set::default()),
        last: Mutex::new(Map::default()),
        queue,
    });
}

/// The installed recorder (`None`: receipts are off).
pub fn get() -> Option<&'static Recorder> {
    RECORDER.get()
}

/// What the proxy knows about one request, for [`Recorder::observe`].
pub struct Observed<'a, L> {
    pub site: &'a str,
    pub policy_version: &'a str,
    pub consent: &'a ConsentState,
    /// The request's `Cookie` header lines (a function: header iterators cannot be cloned).
    pub cookie_lines: L,
    pub path: &'a str,
    pub client: Option<IpAddr>,
    /// The name of the site's jurisdiction rule for this visitor (`None` without rules).
    pub jurisdiction: Option<&'a str>,
}

fn bits(g: Grants) -> u8 {
    crate::consent::Category::OPTIONAL
        .iter()
        .enumerate()
        .filter(|(_, c)| g.allows(**c))
        .fold(0, |b, (i, _)| b | 1 << i)
}

fn capped(v: &[u8]) -> &[u8] {
    &v[..v.len().min(MAX_SIGNAL)]
}

impl Recorder {
    /// Queues a receipt when this request's decision is new for its subject. Requests without
    /// a consent cookie are not receipts (GPC alone names no subject; it is counted in the
    /// metrics and aggregates).
    pub fn observe<'l, L, I>(&self, o: Observed<'_, L>)
    where
        L: Fn() -> I,
        I: Iterator<Item = &'l [u8]>,
    {
        let consent = o.consent;
        if consent.sources.is_empty() {
            return;
        }
        let is_source = |name: &[u8]| consent.sources.iter().any(|s| s.cookie.as_bytes() == name);
        let mut h = self.hasher.build_hasher();
        o.site.hash(&mut h);
        o.policy_version.hash(&mut h);
        o.jurisdiction.hash(&mut h);
        consent.gpc.hash(&mut h);
        bits(consent.grants).hash(&mut h);
        for line in (o.cookie_lines)() {
            for c in split_cookie_header(line).filter(|c| is_source(c.name)) {
                c.name.hash(&mut h);
                capped(c.value).hash(&mut h);
            }
        }
        let signal_key = h.finish();
        if lock(&self.seen).contains(&signal_key) {
            return;
        }
        self.new_signal(&o, signal_key);
    }

    /// A signal not seen before: find the subject, compare with its last decision.
    fn new_signal<'l, L, I>(&self, o: &Observed<'_, L>, signal_key: u64)
    where
        L: Fn() -> I,
        I: Iterator<Item = &'l [u8]>,
    {
        let consent = o.consent;
        // The raw values in request order, `name=value` per cookie; the signal hashed.
        let mut signal = String::new();
        let mut subject: Option<String> = None;
        let mut source = Vec::new();
        for s in &consent.sources {
            source.push(format!("{}:{}", s.format, s.cookie));
        }
        for line in (o.cookie_lines)() {
            for c in split_cookie_header(line) {
                let Some(s) = consent
                    .sources
                    .iter()
                    .find(|s| s.cookie.as_bytes() == c.name)
                else {
                    continue;
                };
                let value = capped(c.value);
                if subject.is_none() {
                    subject = crate::consent::subject::subject_id(s.format, value);
                }
                if !signal.is_empty() {
                    signal.push_str("; ");
                }
                signal.push_str(&String::from_utf8_lossy(c.name));
                signal.push('=');
                signal.push_str(&String::from_utf8_lossy(value));
            }
        }
        let (subject, subject_type) = match subject {
            Some(id) => (id, "cmp-id"),
            None => {
                let tag = ring::hmac::sign(&self.key, signal.as_bytes());
                (super::hex(tag.as_ref()), "keyed-hash")
            }
        };
        if consent.gpc {
            source.push("header:Sec-GPC".to_string());
        }
        let subject_key = {
            let mut h = self.hasher.build_hasher();
            o.site.hash(&mut h);
            subject.hash(&mut h);
            h.finish()
        };
        let now = consent.grants;
        let before_gpc = consent
            .sources
            .iter()
            .fold(Verdict::NOTHING, |v, s| v.merge(s.verdict))
            .grants();
        let event = {
            let mut last = lock(&self.last);
            let prev = last.get(&subject_key).map(|b| from_bits(*b));
            let event = event_for(prev, now, before_gpc);
            if event.is_some() {
                if last.len() >= CACHE_ENTRIES {
                    last.clear();
                }
                last.insert(subject_key, bits(now));
            }
            event
        };
        {
            let mut seen = lock(&self.seen);
            if seen.len() >= CACHE_ENTRIES {
                seen.clear();
            }
            seen.insert(signal_key);
        }
        let Some(event) = event else { return };
        let (granted, denied) = split_categories(now);
        let receipt = Receipt {
            receipt_id: uuid::Uuid::new_v4().to_string(),
            schema_version: SCHEMA_VERSION.to_string(),
            event_time: super::format_time(std::time::SystemTime::now()),
            site: o.site.to_string(),
            subject,
            subject_type: subject_type.to_string(),
            event: event.as_str().to_string(),
            source: source.join(","),
            granted,
            denied,
            signal_sha256: super::sha256_hex(signal.as_bytes()),
            signal: self.store_signal.then_some(signal),
            policy_version: o.policy_version.to_string(),
            jurisdiction: o.jurisdiction.map(str::to_string),
            path: super::capped_path(o.path),
            client_network: o.client.map(client_network).unwrap_or_default(),
            instance: self.instance.clone(),
            prev_sha256: String::new(),
            sha256: String::new(),
        };
        self.queue.push(Msg::Receipt(Box::new(receipt)));
    }
}

fn from_bits(b: u8) -> Grants {
    let mut g = Grants::NONE;
    for (i, c) in crate::consent::Category::OPTIONAL.iter().enumerate() {
        if b & (1 << i) != 0 {
            g.grant(*c);
        }
    }
    g
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
