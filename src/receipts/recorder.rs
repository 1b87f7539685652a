//! The request-path side of receipts: decides, per request with a consent signal (a consent
//! cookie, or an app's consent header), whether the visitor's decision for the site changed,
//! and if so queues a receipt.
//!
//! Cost (docs/BENCHMARKS.md): a request whose consent signal was seen before hashes its consent
//! cookies' and headers' values (foldhash) and looks the hash up in a bounded set, allocating
//! nothing. Only a new signal is decoded (the CMP id), HMAC'd and compared with the subject's
//! last decision. Both caches hold at most [`CACHE_ENTRIES`] entries and are emptied when full:
//! forgetting costs a second look at the store, whose unique key still drops the duplicate.

use super::queue::Queue;
use super::{client_network, event_for, split_categories, Receipt, SCHEMA_VERSION};
use crate::consent::gpc::GpcPolicy;
use crate::consent::{ConsentState, Grants, SourceOutcome, Via};
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
pub struct Observed<'a> {
    pub site: &'a str,
    pub policy_version: &'a str,
    pub consent: &'a ConsentState,
    /// The request's headers: its `Cookie` lines, and the consent headers of apps
    /// (`[[site.consent.header]]`), whose values are the signal when they are the source.
    pub headers: &'a http::HeaderMap,
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

/// The value of a header source (`None`: not on the request). A header source that was sent
/// twice failed to read (it grants nothing); its lines are joined so the receipt still names
/// what was sent.
fn header_value<'h>(headers: &'h http::HeaderMap, s: &SourceOutcome) -> Option<HeaderBytes<'h>> {
    let mut lines = headers.get_all(&*s.cookie).iter();
    let first = lines.next()?;
    Some(match lines.next() {
        None => HeaderBytes::One(first.as_bytes()),
        Some(_) => HeaderBytes::Joined(
            headers
                .get_all(&*s.cookie)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
                .into_bytes(),
        ),
    })
}

enum HeaderBytes<'h> {
    One(&'h [u8]),
    /// The same header sent more than once (a failed source; rare, so allocating is fine).
    Joined(Vec<u8>),
}

impl HeaderBytes<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            HeaderBytes::One(b) => b,
            HeaderBytes::Joined(v) => v,
        }
    }
}

impl Recorder {
    /// Queues a receipt when this request's decision is new for its subject. Requests without
    /// a consent source (cookie or app header) are not receipts (GPC alone names no subject;
    /// it is counted in the metrics and aggregates).
    pub fn observe(&self, o: Observed<'_>) {
        let consent = o.consent;
        if consent.sources.is_empty() {
            return;
        }
        let mut h = self.hasher.build_hasher();
        o.site.hash(&mut h);
        o.policy_version.hash(&mut h);
        o.jurisdiction.hash(&mut h);
        consent.gpc.hash(&mut h);
        bits(consent.grants).hash(&mut h);
        // Every cookie a source decides from (GPP's `__gpp_sid` too): one that changes the
        // decision changes the signal.
        let is_signal_cookie =
            |name: &[u8]| consent.sources.iter().any(|s| s.decides_from_cookie(name));
        if consent.sources.iter().any(|s| s.via == Via::Cookie) {
            for line in o.headers.get_all(http::header::COOKIE) {
                for c in split_cookie_header(line.as_bytes()).filter(|c| is_signal_cookie(c.name)) {
                    c.name.hash(&mut h);
                    capped(c.value).hash(&mut h);
                }
            }
        }
        for s in consent.sources.iter().filter(|s| s.via == Via::Header) {
            if let Some(v) = header_value(o.headers, s) {
                s.cookie.hash(&mut h);
                capped(v.bytes()).hash(&mut h);
            }
        }
        let signal_key = h.finish();
        if lock(&self.seen).contains(&signal_key) {
            return;
        }
        self.new_signal(&o, signal_key);
    }

    /// A signal not seen before: find the subject, compare with its last decision.
    fn new_signal(&self, o: &Observed<'_>, signal_key: u64) {
        let consent = o.consent;
        // The raw values: the consent cookies (every cookie a source decides from) in request
        // order as `name=value`, then the consent headers in configuration order as
        // `name: value` (the header's name in lower case), joined by `; `; the signal hashed.
        // The CMP id is read from a source's own cookie only (not GPP's `__gpp_sid`).
        let mut signal = String::new();
        let mut subject: Option<String> = None;
        let mut source = Vec::new();
        for s in &consent.sources {
            source.push(match s.via {
                Via::Cookie => format!("{}:{}", s.format, s.cookie),
                Via::Header => format!("{}:header:{}", s.format, s.cookie),
            });
        }
        let mut add = |format: Option<&str>, name: &[u8], sep: &str, value: &[u8]| {
            let value = capped(value);
            if let (None, Some(format)) = (&subject, format) {
                subject = crate::consent::subject::subject_id(format, value);
            }
            if !signal.is_empty() {
                signal.push_str("; ");
            }
            signal.push_str(&String::from_utf8_lossy(name));
            signal.push_str(sep);
            signal.push_str(&String::from_utf8_lossy(value));
        };
        for line in o.headers.get_all(http::header::COOKIE) {
            for c in split_cookie_header(line.as_bytes()) {
                let Some(s) = consent
                    .sources
                    .iter()
                    .find(|s| s.decides_from_cookie(c.name))
                else {
                    continue;
                };
                let own = s.cookie.as_bytes() == c.name;
                add(own.then_some(s.format), c.name, "=", c.value);
            }
        }
        for s in consent.sources.iter().filter(|s| s.via == Via::Header) {
            if let Some(v) = header_value(o.headers, s) {
                add(Some(s.format), s.cookie.as_bytes(), ": ", v.bytes());
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
        // What Sec-GPC took back: the decision without it, under the same jurisdiction model
        // the proxy applied (an opt-out or `off` rule grants more than the sources did, and
        // that is the model, not GPC). Without the signal the site's GPC policy plays no part.
        let without_gpc = consent.gpc.then(|| {
            crate::jurisdiction::decision(consent.model, consent.verdict, false, GpcPolicy::Ignore)
        });
        let (event, prev) = {
            let mut last = lock(&self.last);
            let prev = last.get(&subject_key).copied();
            let event = event_for(prev.map(from_bits), now, without_gpc);
            if event.is_some() {
                if last.len() >= CACHE_ENTRIES {
                    last.clear();
                }
                last.insert(subject_key, bits(now));
            }
            (event, prev)
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
        if !self.queue.push(receipt) {
            // Dropped (counted by the queue): forget that this signal and decision were
            // recorded, so the visitor's next request writes the receipt instead of being
            // taken for a duplicate for as long as the caches remember it.
            self.forget(signal_key, subject_key, bits(now), prev);
        }
    }

    /// Undoes what [`Recorder::new_signal`] remembered for a receipt that was dropped. The
    /// subject's entry goes back to its previous decision, unless another request changed it
    /// meanwhile (then that newer receipt is the one the cache must describe).
    fn forget(&self, signal_key: u64, subject_key: u64, recorded: u8, prev: Option<u8>) {
        lock(&self.seen).remove(&signal_key);
        let mut last = lock(&self.last);
        if last.get(&subject_key) == Some(&recorded) {
            match prev {
                Some(p) => last.insert(subject_key, p),
                None => last.remove(&subject_key),
            };
        }
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
