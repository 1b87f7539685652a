//! consentgate's TC string decoder against the IAB's reference decoder (`@iabtcf/core`, run by
//! node from tests/tcf-reference/) on random strings: the oracle shares none of our code or
//! assumptions. The strings follow the TCF v2 core-segment layout with random field values,
//! bitfield and range vendor sections, publisher restrictions and optional segments, and a
//! share of them is damaged (cut short, a character replaced, a stray segment) so both the
//! fields of valid strings and the refusal of broken ones are compared: a string the reference
//! refuses must be refused (privacy fails closed), and one it reads must read the same.
//!
//! `scripts/test` installs node's package (`npm ci` in tests/tcf-reference); without it this
//! test fails and says so.

use serde_json::Value;

/// Strings per run; `TCF_DIFF_CASES` and `TCF_DIFF_SEED` run more or others (a long run:
/// `TCF_DIFF_CASES=100000 cargo test --test tcf_differential`).
fn cases() -> usize {
    std::env::var("TCF_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
}
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#[path = "support/reference.rs"]
mod reference;
#[path = "support/rng.rs"]
mod rng;
use reference::tcf_reference;
use rng::Rng;

#[derive(Default)]
struct Bits(Vec<bool>);

impl Bits {
    fn put(&mut self, v: u64, n: usize) {
        for i in (0..n).rev() {
            self.0.push((v >> i) & 1 == 1);
        }
    }
    /// Six bits a character, the last one zero-filled (as the IAB encoders write it).
    fn base64url(&self) -> String {
        self.0
            .chunks(6)
            .map(|c| {
                let v = c
                    .iter()
                    .enumerate()
                    .fold(0usize, |v, (i, b)| v | (usize::from(*b) << (5 - i)));
                ALPHABET[v] as char
            })
            .collect()
    }
}

fn vendor_section(r: &mut Rng, b: &mut Bits, max_id: u64) {
    let ids: Vec<u64> = (1..=max_id).filter(|_| r.chance(20)).collect();
    b.put(max_id, 16);
    if r.chance(50) {
        b.put(0, 1);
        for id in 1..=max_id {
            b.put(u64::from(ids.contains(&id)), 1);
        }
    } else {
        let mut groups: Vec<(u64, u64)> = Vec::new();
        for id in ids {
            match groups.last_mut() {
                Some((_, end)) if *end + 1 == id => *end = id,
                _ => groups.push((id, id)),
            }
        }
        b.put(1, 1);
        b.put(groups.len() as u64, 12);
        for (s, e) in groups {
            b.put(u64::from(s != e), 1);
            b.put(s, 16);
            if s != e {
                b.put(e, 16);
            }
        }
    }
}

fn tc_string(r: &mut Rng) -> String {
    let mut b = Bits::default();
    b.put(2, 6);
    b.put(r.below(1 << 36), 36);
    b.put(r.below(1 << 36), 36);
    b.put(r.below(4096), 12);
    b.put(r.below(4096), 12);
    b.put(r.below(64), 6);
    b.put(r.below(26), 6);
    b.put(r.below(26), 6);
    b.put(1 + r.below(4095), 12);
    b.put([2, 4, 5][r.below(3) as usize], 6);
    b.put(r.below(2), 1);
    b.put(r.below(2), 1);
    b.put(r.below(1 << 12), 12);
    b.put(r.below(1 << 24), 24);
    b.put(r.below(1 << 24), 24);
    b.put(r.below(2), 1);
    b.put(r.below(26), 6);
    b.put(r.below(26), 6);
    let max = r.below(700);
    vendor_section(r, &mut b, max);
    let max = r.below(700);
    vendor_section(r, &mut b, max);
    let restrictions = r.below(4);
    b.put(restrictions, 12);
    for _ in 0..restrictions {
        b.put(1 + r.below(11), 6);
        b.put(r.below(3), 2);
        let n = 1 + r.below(4);
        b.put(n, 12);
        for _ in 0..n {
            b.put(0, 1);
            b.put(1 + r.below(500), 16);
        }
    }
    let mut s = b.base64url();
    if r.chance(30) {
        let mut seg = Bits::default();
        seg.put(1, 3); // disclosed vendors
        let max = 1 + r.below(300);
        vendor_section(r, &mut seg, max);
        s = format!("{s}.{}", seg.base64url());
    }
    if r.chance(20) {
        let mut seg = Bits::default();
        seg.put(3, 3); // publisher TC
        seg.put(r.below(1 << 24), 24);
        seg.put(r.below(1 << 24), 24);
        let custom = r.below(6);
        seg.put(custom, 6);
        seg.put(r.below(1 << custom), custom as usize);
        seg.put(r.below(1 << custom), custom as usize);
        s = format!("{s}.{}", seg.base64url());
    }
    // Damage a share of them.
    match r.below(100) {
        0..=9 => s.truncate(1 + r.below(s.len() as u64) as usize),
        10..=14 => {
            let i = r.below(s.len() as u64) as usize;
            let c = ALPHABET[r.below(64) as usize] as char;
            if s.as_bytes()[i] != b'.' {
                s.replace_range(i..=i, &c.to_string());
            }
        }
        15..=17 => s.push_str(".AAAA"),
        _ => {}
    }
    s
}

/// Publisher restrictions compare as sets (no order is encoded).
fn normalized(mut v: Value) -> Value {
    if let Some(list) = v
        .get_mut("publisher_restrictions")
        .and_then(Value::as_array_mut)
    {
        list.sort_by_key(|r| r.to_string());
    }
    v
}

#[test]
fn random_tc_strings_decode_as_the_iab_reference_decoder_reads_them() {
    let seed = std::env::var("TCF_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_7c0f_1234_abcd_u64);
    let cases = cases();
    let mut rng = Rng(seed | 1);
    let strings: Vec<String> = (0..cases).map(|_| tc_string(&mut rng)).collect();
    let expected = tcf_reference(&strings);
    assert_eq!(expected.len(), strings.len(), "one answer per string");
    let (mut refused, mut bad) = (0, Vec::new());
    for (s, want) in strings.iter().zip(expected) {
        let ours = consentgate::consent::tcf::decode(s);
        match (want.get("error"), ours) {
            (Some(_), Err(_)) => refused += 1,
            (Some(e), Ok(_)) => {
                bad.push(format!("{s}: the reference refuses it ({e}), we read it"))
            }
            // The reference decodes each segment by its type bits, so a string whose first
            // segment is not a core segment leaves its model at the defaults (CMP id 0, which
            // a core segment can never carry: it refuses ids below 2) instead of failing. We
            // refuse a string without a core segment; both grant nothing.
            (None, Err(_)) if want["cmp_id"] == 0 => refused += 1,
            (None, Err(e)) => bad.push(format!("{s}: the reference reads it, we refuse it: {e}")),
            (None, Ok(tc)) => {
                let got = normalized(consentgate::consent::tcf::details(&tc));
                let want = normalized(want);
                for (key, w) in want.as_object().unwrap() {
                    if &got[key] != w {
                        bad.push(format!("{s}: {key}: reference {w}, ours {}", got[key]));
                    }
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {cases} strings disagree (seed {seed}):\n{}",
        bad.len(),
        bad.join("\n")
    );
    // The damaged share really exercised the refusal path.
    assert!(refused > cases / 20, "only {refused} strings were refused");
}
