//! Consent receipts: evidence of each visitor's consent decision as the proxy enforced it
//! (issue 12; docs/RECEIPTS.md).
//!
//! This file is pure: what a receipt holds, which event a change of decision is, the subject
//! id, and the hash chain. [`recorder`] watches requests (a cheap check per request with a
//! consent cookie), [`queue`] is the bounded queue and the writer thread, [`store`] the SQLite
//! and PostgreSQL tables.

pub mod queue;
pub mod recorder;
pub mod store;

use crate::consent::{Category, Grants};
use ring::digest::{digest, SHA256};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The receipt layout written by this version (kept in every row; part of the chain hash).
pub const SCHEMA_VERSION: &str = "consentgate-receipt/1";
/// `prev_sha256` of the first receipt in a store.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The longest `path` kept (bytes; cut at a character boundary).
pub const MAX_PATH: usize = 512;

/// One receipt. Field names follow ISO/IEC TS 27560 and the Kantara Consent Receipt where they
/// apply to a proxy; they are the column names of the `receipts` table and the keys of
/// `consentgate receipts --format json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// A random UUID (v4).
    pub receipt_id: String,
    pub schema_version: String,
    /// UTC, RFC 3339 with milliseconds (`2026-11-28T19:04:05.123Z`): sorts as text.
    pub event_time: String,
    pub site: String,
    /// The CMP's own consent id, else a keyed hash (HMAC-SHA256) of the consent value.
    pub subject: String,
    /// `cmp-id` or `keyed-hash`.
    pub subject_type: String,
    /// `given`, `updated`, `withdrawn` or `gpc-applied` ([`Event`]).
    pub event: String,
    /// The signals read: `format:cookie` per consent source, and `header:Sec-GPC` when sent.
    pub source: String,
    /// Categories granted (always `necessary`) and denied, in [`Category::ALL`] order.
    pub granted: Vec<String>,
    pub denied: Vec<String>,
    /// SHA-256 of the raw consent value(s) as sent.
    pub signal_sha256: String,
    /// The raw consent value(s): only with `store_signal = true`.
    pub signal: Option<String>,
    /// SHA-256 of the site's policy (its configuration as written).
    pub policy_version: String,
    /// The jurisdiction the request was judged under, when configured (issue 11).
    pub jurisdiction: Option<String>,
    /// The request path, without the query.
    pub path: String,
    /// The client address truncated to its /24 (IPv4) or /48 (IPv6): never the address.
    pub client_network: String,
    /// The consentgate instance that wrote it (fleets share one store).
    pub instance: String,
    /// `sha256` of the receipt written before this one in the store ([`GENESIS`] first).
    pub prev_sha256: String,
    /// SHA-256 of [`Receipt::canonical`]: covers every field above, `prev_sha256` included.
    pub sha256: String,
}

/// What happened to a visitor's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// First seen for this subject.
    Given,
    /// Changed, still granting something optional.
    Updated,
    /// Changed to granting nothing optional.
    Withdrawn,
    /// Changed because `Sec-GPC: 1` took back what the consent cookie granted.
    GpcApplied,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Given => "given",
            Event::Updated => "updated",
            Event::Withdrawn => "withdrawn",
            Event::GpcApplied => "gpc-applied",
        }
    }
}

/// The event for a decision `now`, given the subject's last recorded decision. `without_gpc`
/// is the decision the request would have had without `Sec-GPC: 1`, under the same
/// jurisdiction model (`None`: the header was not sent). `None` when nothing changed: no
/// receipt. Only a signal that was sent and took something back is `gpc-applied`: under an
/// opt-out or `off` rule a decision wider than what the consent sources granted is the model,
/// not GPC.
pub fn event_for(last: Option<Grants>, now: Grants, without_gpc: Option<Grants>) -> Option<Event> {
    if last == Some(now) {
        return None;
    }
    let gpc_took = without_gpc.is_some_and(|w| w != now);
    Some(match last {
        _ if gpc_took => Event::GpcApplied,
        None => Event::Given,
        Some(l) if now.is_none() && !l.is_none() => Event::Withdrawn,
        Some(_) => Event::Updated,
    })
}

/// The granted and denied category names of a decision.
pub fn split_categories(g: Grants) -> (Vec<String>, Vec<String>) {
    let (mut granted, mut denied) = (Vec::new(), Vec::new());
    for c in Category::ALL {
        if g.allows(c) {
            granted.push(c.as_str().to_string());
        } else {
            denied.push(c.as_str().to_string());
        }
    }
    (granted, denied)
}

/// The client's network: /24 of an IPv4 address, /48 of an IPv6 one (an IPv4-mapped IPv6
/// address counts as IPv4).
pub fn client_network(ip: IpAddr) -> String {
    use ipnet::{Ipv4Net, Ipv6Net};
    match ip {
        IpAddr::V4(v4) => Ipv4Net::new(v4, 24).map(|n| n.trunc().to_string()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, 24).map(|n| n.trunc().to_string()),
            None => Ipv6Net::new(v6, 48).map(|n| n.trunc().to_string()),
        },
    }
    .unwrap_or_default()
}

/// `path` cut to [`MAX_PATH`] bytes at a character boundary (the query is never passed in).
pub fn capped_path(path: &str) -> String {
    let mut end = path.len().min(MAX_PATH);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_string()
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest(&SHA256, data).as_ref())
}

/// UTC time as stored: RFC 3339 with milliseconds and `Z`.
pub fn format_time(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    chrono::DateTime::from_timestamp(d.as_secs() as i64, d.subsec_nanos())
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A time given on the command line (`2026-11-01`, `2026-11-01T10:00:00Z`, or with an
/// offset) in the stored form, for comparisons.
pub fn parse_time(s: &str) -> Result<String, String> {
    let s = s.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(format!("{}T00:00:00.000Z", d.format("%Y-%m-%d")));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        })
        .map_err(|_| format!("`{s}` is not a date (2026-11-01) or an RFC 3339 time"))
}

impl Receipt {
    /// A plain receipt for tests (the crate's and `tests/`): `given` by OneTrust subject
    /// `subject` of site `shop` at `event_time`, `necessary` granted, not chained yet. Tests
    /// change what they need with struct update syntax.
    #[doc(hidden)]
    pub fn sample(receipt_id: &str, subject: &str, event_time: &str) -> Receipt {
        Receipt {
            receipt_id: receipt_id.into(),
            schema_version: SCHEMA_VERSION.into(),
            event_time: event_time.into(),
            site: "shop".into(),
            subject: subject.into(),
            subject_type: "cmp-id".into(),
            event: "given".into(),
            source: "onetrust:OptanonConsent".into(),
            granted: vec!["necessary".into()],
            denied: vec![],
            signal_sha256: String::new(),
            signal: None,
            policy_version: String::new(),
            jurisdiction: None,
            path: "/".into(),
            client_network: String::new(),
            instance: "a".into(),
            prev_sha256: String::new(),
            sha256: String::new(),
        }
    }

    /// The bytes the chain hash covers: every field but `sha256`, in a fixed order, as a JSON
    /// array of strings (and nulls), so the encoding is unambiguous and easy to reproduce.
    pub fn canonical(&self) -> String {
        let granted = self.granted.join(",");
        let denied = self.denied.join(",");
        let fields: [Option<&str>; 18] = [
            Some(&self.schema_version),
            Some(&self.receipt_id),
            Some(&self.event_time),
            Some(&self.site),
            Some(&self.subject),
            Some(&self.subject_type),
            Some(&self.event),
            Some(&self.source),
            Some(&granted),
            Some(&denied),
            Some(&self.signal_sha256),
            self.signal.as_deref(),
            Some(&self.policy_version),
            self.jurisdiction.as_deref(),
            Some(&self.path),
            Some(&self.client_network),
            Some(&self.instance),
            Some(&self.prev_sha256),
        ];
        serde_json::to_string(&fields).unwrap_or_default()
    }

    /// Links this receipt after `prev_sha256` and computes its `sha256`.
    pub fn seal(&mut self, prev_sha256: &str) {
        self.prev_sha256 = prev_sha256.to_string();
        self.sha256 = sha256_hex(self.canonical().as_bytes());
    }

    /// The key that makes a repeated receipt a duplicate in the store: the same subject and
    /// decision after the same previous receipt of that subject.
    pub fn dedup_key(&self, last_of_subject: Option<&str>) -> String {
        let text = serde_json::to_string(&[
            self.site.as_str(),
            self.subject.as_str(),
            &self.granted.join(","),
            last_of_subject.unwrap_or(""),
        ])
        .unwrap_or_default();
        sha256_hex(text.as_bytes())
    }
}

/// Receipts as CSV: a header of the field names, then one row each (`granted` and `denied`
/// joined with spaces).
pub fn to_csv(receipts: &[Receipt]) -> Result<String, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "receipt_id",
        "schema_version",
        "event_time",
        "site",
        "subject",
        "subject_type",
        "event",
        "source",
        "granted",
        "denied",
        "signal_sha256",
        "signal",
        "policy_version",
        "jurisdiction",
        "path",
        "client_network",
        "instance",
        "prev_sha256",
        "sha256",
    ])
    .map_err(|e| e.to_string())?;
    for r in receipts {
        w.write_record([
            r.receipt_id.as_str(),
            &r.schema_version,
            &r.event_time,
            &r.site,
            &r.subject,
            &r.subject_type,
            &r.event,
            &r.source,
            &r.granted.join(" "),
            &r.denied.join(" "),
            &r.signal_sha256,
            r.signal.as_deref().unwrap_or(""),
            &r.policy_version,
            r.jurisdiction.as_deref().unwrap_or(""),
            &r.path,
            &r.client_network,
            &r.instance,
            &r.prev_sha256,
            &r.sha256,
        ])
        .map_err(|e| e.to_string())?;
    }
    String::from_utf8(w.into_inner().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

/// A break in the chain found by [`verify_chain`].
#[derive(Debug, PartialEq, Eq)]
pub struct ChainProblem {
    pub seq: i64,
    pub receipt_id: String,
    pub problem: String,
}

/// Where the stored chain starts: what the first receipt in the store must follow. Kept in
/// the store's `chain_anchor` table, which retention updates in the transaction that deletes
/// the leading receipts, so deleting the first receipt(s) by hand is told from retention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainStart {
    /// Retention has deleted nothing: the first receipt follows [`GENESIS`].
    Genesis,
    /// Retention last deleted up to receipt `seq`, whose `sha256` the first one follows.
    After { seq: i64, sha256: String },
    /// A store without the `chain_anchor` table (written by a consentgate before it, and not
    /// opened by a newer writer since): the first receipt's `prev_sha256` is taken as given.
    Unrecorded,
}

impl ChainStart {
    /// The `prev_sha256` the first receipt must carry (`None`: not known).
    pub fn expected_prev(&self) -> Option<&str> {
        match self {
            ChainStart::Genesis => Some(GENESIS),
            ChainStart::After { sha256, .. } => Some(sha256),
            ChainStart::Unrecorded => None,
        }
    }
}

/// Checks receipts in store order: each `sha256` must be the hash of its fields, each
/// `prev_sha256` the `sha256` before it, and the first one's the chain's start (`start`: 64
/// zeros, or the last receipt retention deleted); otherwise the first receipt(s) are missing.
pub fn verify_chain(
    start: &ChainStart,
    rows: impl IntoIterator<Item = (i64, Receipt)>,
) -> (usize, Vec<ChainProblem>) {
    let mut problems = Vec::new();
    let mut prev: Option<String> = None;
    let mut n = 0;
    for (seq, r) in rows {
        n += 1;
        let expected = sha256_hex(r.canonical().as_bytes());
        let mut problem = |p: String| {
            problems.push(ChainProblem {
                seq,
                receipt_id: r.receipt_id.clone(),
                problem: p,
            })
        };
        if expected != r.sha256 {
            problem(format!(
                "sha256 {} does not match its fields (expected {expected}): the row was edited",
                r.sha256
            ));
        }
        match (&prev, start) {
            (Some(p), _) => {
                if *p != r.prev_sha256 {
                    problem(format!(
                        "prev_sha256 {} is not the sha256 of the receipt before it ({p}): a receipt was removed or inserted",
                        r.prev_sha256
                    ));
                }
            }
            (None, ChainStart::Genesis) if r.prev_sha256 != GENESIS => problem(format!(
                "first receipt(s) missing: this first receipt's prev_sha256 {} names a receipt \
                 that is not in the store, and retention has deleted none (the chain starts \
                 from 64 zeros)",
                r.prev_sha256
            )),
            (None, ChainStart::After { seq: last, sha256 }) if r.prev_sha256 != *sha256 => {
                problem(format!(
                    "first receipt(s) missing: this first receipt's prev_sha256 {} is not the \
                     sha256 of the last receipt retention deleted (seq {last}, {sha256})",
                    r.prev_sha256
                ))
            }
            (None, _) => {}
        }
        prev = Some(r.sha256.clone());
    }
    (n, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    fn g(cats: &[Category]) -> Grants {
        Grants::from_categories(cats.iter().copied())
    }

    #[test]
    fn events_follow_the_decision() {
        let all = Grants::ALL;
        assert_eq!(event_for(None, all, None), Some(Event::Given));
        assert_eq!(event_for(Some(all), all, None), None);
        assert_eq!(
            event_for(Some(all), g(&[Analytics]), None),
            Some(Event::Updated)
        );
        assert_eq!(
            event_for(Some(g(&[Analytics])), Grants::NONE, None),
            Some(Event::Withdrawn)
        );
        // The cookie grants marketing, GPC takes it back.
        assert_eq!(
            event_for(None, g(&[Analytics]), Some(g(&[Analytics, Marketing]))),
            Some(Event::GpcApplied)
        );
        assert_eq!(
            event_for(Some(all), g(&[Analytics]), Some(all)),
            Some(Event::GpcApplied)
        );
        // GPC sent but taking nothing back (nothing granted, or an `off` rule): no gpc-applied.
        assert_eq!(
            event_for(None, Grants::NONE, Some(Grants::NONE)),
            Some(Event::Given)
        );
        assert_eq!(event_for(None, all, Some(all)), Some(Event::Given));
    }

    #[test]
    fn networks_are_truncated() {
        assert_eq!(
            client_network("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            client_network("2001:db8:1234:5678::1".parse().unwrap()),
            "2001:db8:1234::/48"
        );
        assert_eq!(
            client_network("::ffff:198.51.100.9".parse().unwrap()),
            "198.51.100.0/24"
        );
    }

    fn receipt(n: u8) -> Receipt {
        let (granted, denied) = split_categories(g(&[Analytics]));
        Receipt {
            granted,
            denied,
            signal_sha256: sha256_hex(b"x"),
            policy_version: "p".into(),
            client_network: "203.0.113.0/24".into(),
            ..Receipt::sample(&format!("id-{n}"), "s", "2026-11-28T19:04:05.123Z")
        }
    }

    #[test]
    fn the_chain_detects_an_edit_and_a_removal() {
        let mut rows = Vec::new();
        let mut prev = GENESIS.to_string();
        for i in 0..4 {
            let mut r = receipt(i);
            r.seal(&prev);
            prev = r.sha256.clone();
            rows.push((i as i64 + 1, r));
        }
        let genesis = ChainStart::Genesis;
        assert_eq!(verify_chain(&genesis, rows.clone()), (4, vec![]));
        let mut edited = rows.clone();
        edited[1].1.granted = vec!["necessary".into(), "marketing".into()];
        let (_, p) = verify_chain(&genesis, edited);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].seq, 2);
        let mut removed = rows.clone();
        removed.remove(2);
        let (_, p) = verify_chain(&genesis, removed);
        assert_eq!(p[0].seq, 4);
        // The first receipt removed: the second does not follow the chain's start.
        let (_, p) = verify_chain(&genesis, rows[1..].to_vec());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].seq, 2);
        assert!(
            p[0].problem.starts_with("first receipt(s) missing"),
            "{p:?}"
        );
        // Retention deleted receipt 1 (the anchor names it): valid; one more removed: not.
        let anchor = ChainStart::After {
            seq: 1,
            sha256: rows[0].1.sha256.clone(),
        };
        assert_eq!(verify_chain(&anchor, rows[1..].to_vec()), (3, vec![]));
        let (_, p) = verify_chain(&anchor, rows[2..].to_vec());
        assert!(
            p[0].problem.starts_with("first receipt(s) missing"),
            "{p:?}"
        );
        // A store without the anchor table: the first prev_sha256 taken as given.
        assert_eq!(
            verify_chain(&ChainStart::Unrecorded, rows[2..].to_vec()),
            (2, vec![])
        );
        // The time format sorts as text and parses back.
        assert_eq!(
            parse_time("2026-11-01").unwrap(),
            "2026-11-01T00:00:00.000Z"
        );
        assert_eq!(
            parse_time("2026-11-01T12:00:00+01:00").unwrap(),
            "2026-11-01T11:00:00.000Z"
        );
    }
}
