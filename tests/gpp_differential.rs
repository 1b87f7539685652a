//! consentgate's GPP decoder against the IAB's reference library (`@iabgpp/cmpapi`, run by node
//! from tests/gpp-reference/) on random strings. The oracle shares none of our code or
//! assumptions: the strings are written by the library's own encoder from random field values
//! (the US sections consentgate reads, usnat in both layouts, GPC sub-sections included or not,
//! `tcfeuv2` with any choice of its optional segments in any order, and sections consentgate
//! reads past), and a share of them is damaged here (cut short, a character replaced, a section
//! dropped, emptied or added, a stray sub-section) so both the fields of valid strings and the
//! refusal of broken ones are compared: a string the reference refuses must be refused
//! (privacy fails closed), and one it reads must read the same: every field the reference
//! returns for every section consentgate reads, under the same name, with the same value and
//! JSON type (the defaults where a segment or sub-section is absent), and no other field. The
//! few deliberate differences are documented at `reference_tcf_field`.
//!
//! `scripts/test` installs node's package (`npm ci` in tests/gpp-reference); without it this
//! test fails and says so.

use consentgate::consent::gpp;
use serde_json::{json, Value};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gpp-reference");
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Strings per run; `GPP_DIFF_CASES` and `GPP_DIFF_SEED` run more or others (a long run:
/// `GPP_DIFF_CASES=50000 cargo test --test gpp_differential`).
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[path = "support/reference.rs"]
mod reference;
#[path = "support/rng.rs"]
mod rng;
use reference::{run_node, tcf_reference};
use rng::Rng;

/// A random index below `n`.
fn pick(r: &mut Rng, n: usize) -> usize {
    r.below(n as u64) as usize
}

fn node(args: &[&str], input: &str) -> String {
    assert!(
        std::path::Path::new(&format!("{DIR}/node_modules/@iabgpp/cmpapi")).exists(),
        "the IAB reference GPP library is missing: run `npm ci` in {DIR} (scripts/test does)"
    );
    run_node(DIR, &[&["reference.mjs"], args].concat(), input)
}

/// One way to break a string, chosen at random.
fn damage(r: &mut Rng, s: &str) -> String {
    let mut s = s.to_string();
    let sections: Vec<&str> = s.split('~').collect();
    match pick(r, 7) {
        // Cut short anywhere.
        0 => s.truncate(1 + pick(r, s.len() - 1)),
        // One character replaced by another base64url character (not a separator).
        1 => {
            let i = pick(r, s.len());
            if !matches!(s.as_bytes()[i], b'~' | b'.') {
                let c = ALPHABET[pick(r, 64)] as char;
                s.replace_range(i..=i, &c.to_string());
            }
        }
        // The last section dropped: the header lists one more than the string carries.
        2 if sections.len() > 1 => s = sections[..sections.len() - 1].join("~"),
        // A section more than the header lists.
        3 => s.push_str("~BAAAAABA"),
        // A section emptied.
        4 if sections.len() > 1 => {
            let i = 1 + pick(r, sections.len() - 1);
            let mut v = sections.clone();
            v[i] = "";
            s = v.join("~");
        }
        // A stray sub-section after a section.
        5 if sections.len() > 1 => {
            let i = 1 + pick(r, sections.len() - 1);
            let mut v: Vec<String> = sections.iter().map(|p| p.to_string()).collect();
            v[i].push_str(".QA");
            s = v.join("~");
        }
        // The header's last character replaced (section ids change or break).
        _ => {
            let end = sections[0].len() - 1;
            let c = ALPHABET[pick(r, 64)] as char;
            s.replace_range(end..=end, &c.to_string());
        }
    }
    s
}

/// The reference's value of a `tcfeuv2` field, as ours should read. The deliberate differences,
/// the only fields adjusted: two where the TCF reference decoder `@iabtcf/core` (which
/// tests/tcf_differential.rs holds ours to) reads differently from this library: a damaged
/// country code can decode to a character past `Z`, which this library keeps in lower case and
/// the TCF decoder in upper case; and two publisher-restriction entries with the same purpose
/// and type are one restriction to the TCF decoder (its vendors the union, at the first entry's
/// place), two entries here. And a vendor list is a set of ids, shown in ascending order once
/// each: this library returns a range-encoded list in the order its entries were written,
/// repeats included (which only a damaged or hand-made string has; its own encoder writes
/// ascending ranges).
fn reference_tcf_field(fields: &Value, key: &str) -> Value {
    match key {
        "VendorConsents" | "VendorLegitimateInterests" | "VendorsAllowed" | "VendorsDisclosed" => {
            let ids: std::collections::BTreeSet<u64> = fields[key]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_u64)
                .collect();
            json!(ids)
        }
        "PublisherCountryCode" => json!(fields[key].as_str().map(str::to_ascii_uppercase)),
        "PublisherRestrictions" => {
            let mut merged: Vec<(Value, Value, std::collections::BTreeSet<u64>)> = Vec::new();
            for e in fields[key].as_array().into_iter().flatten() {
                let ids = e["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_u64);
                match merged
                    .iter_mut()
                    .find(|(k, t, _)| (k, t) == (&e["key"], &e["type"]))
                {
                    Some((_, _, set)) => set.extend(ids),
                    None => merged.push((e["key"].clone(), e["type"].clone(), ids.collect())),
                }
            }
            merged
                .into_iter()
                .map(|(key, kind, ids)| json!({"key": key, "type": kind, "ids": ids}))
                .collect()
        }
        _ => fields[key].clone(),
    }
}

/// Where we refuse a string the reference reads, on purpose: a section whose `Version` we do
/// not know (its layout is unknown, and reading it as version 1 could miss an opt-out), and a
/// sub-section the specification does not define for the section (a second one, one after a
/// section without GPC, or one whose type is not 1, GPC), which the reference reads past or
/// reads as GPC; and a usnat section with `Version` 2 too short for that version's layout (16
/// sensitive-data categories, 3 child consents), which the reference reads in the first
/// layout by its length. All of them grant nothing (fail closed).
fn stricter_on_purpose(error: &str, want: &Value) -> bool {
    let unknown_version = error.contains("version") && {
        let sections = want["sections"].as_object().unwrap();
        sections
            .iter()
            .any(|(name, f)| match (name.as_str(), f["Version"].as_u64()) {
                ("usnat", Some(v)) => !(1..=2).contains(&v),
                (_, Some(v)) => gpp::section_name(section_id(name)).is_some() && v != 1,
                _ => false,
            })
    };
    let short_usnat_v2 = error.contains("section usnat is truncated")
        && want["sections"]["usnat"]["Version"] == json!(2);
    // uspv1: a flag that is not `Y`, `N` or `-`, or a version that is not 1 (the library takes
    // any character; an unknown flag could hide an opt-out of sale).
    let odd_uspv1 = error.contains("section uspv1") && {
        let u = &want["sections"]["uspv1"];
        u["Version"] != json!(1)
            || ["Notice", "OptOutSale", "LspaCovered"]
                .iter()
                .any(|f| !matches!(u[f].as_str(), Some("Y" | "N" | "-")))
    };
    unknown_version
        || short_usnat_v2
        || odd_uspv1
        || error.contains("more than one sub-section")
        || error.contains("has no sub-sections")
        || error.contains("sub-section type")
}

/// Where we read a string the reference refuses, on purpose: its error is inside a section
/// consentgate reads past ("unsupported": checked for its alphabet, not decoded; the issue
/// allows it), e.g. `Unable to decode UsTxCoreSegment 'BAAAAA'`. The sections we read were
/// compared like any other's.
fn in_a_section_we_read_past(error: &str) -> bool {
    const READ: [&str; 18] = [
        "TcfEuV2", "UspV1", "UsNat", "UsCa", "UsVa", "UsCo", "UsUt", "UsCt", "UsFl", "UsMt",
        "UsOr", "UsTx", "UsDe", "UsIa", "UsNe", "UsNh", "UsNj", "UsTn",
    ];
    error.strip_prefix("Unable to decode ").is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_uppercase())
            && !READ.iter().any(|r| rest.starts_with(r))
    })
}

/// Every difference between our reading of `s` and the reference's (`want`); `known` are the
/// section ids the reference knows (it drops others from its list). Returns whether either side
/// refused the string (its sections then count as not compared).
fn compare(
    s: &str,
    want: &Value,
    known: &[u64],
    bad: &mut Vec<String>,
    tcf_refused: &mut Vec<String>,
) -> bool {
    let ours = gpp::decode(s);
    let ours = match (want.get("error"), ours) {
        (Some(_), Err(_)) => return true,
        (Some(e), Ok(_)) if in_a_section_we_read_past(e.as_str().unwrap_or("")) => return true,
        (Some(e), Ok(_)) => {
            bad.push(format!("{s}: the reference refuses it ({e}), we read it"));
            return false;
        }
        (None, Err(e)) if stricter_on_purpose(&e.to_string(), want) => return true,
        // The `tcfeuv2` section goes through the TC string decoder that tests/tcf_differential.rs
        // holds to the IAB's TCF reference decoder (@iabtcf/core), which refuses more damaged
        // strings than this library's lenient one: checked against that decoder below.
        (None, Err(e)) if e.to_string().starts_with("GPP section tcfeuv2:") => {
            tcf_refused.push(s.to_string());
            return true;
        }
        (None, Err(e)) => {
            bad.push(format!("{s}: the reference reads it, we refuse it: {e}"));
            return true;
        }
        (None, Ok(g)) => gpp::details(&g, None),
    };
    let ids: Vec<u64> = ours["section_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .filter(|id| known.contains(id))
        .collect();
    if json!(ids) != want["section_ids"] {
        bad.push(format!(
            "{s}: section ids: reference {}, ours {} (of which it knows {ids:?})",
            want["section_ids"], ours["section_ids"]
        ));
    }
    let theirs = want["sections"].as_object().unwrap();
    for (name, fields) in theirs {
        let read = gpp::section_name(section_id(name)).is_some();
        let got = &ours["sections"][name];
        if !read {
            continue;
        }
        if got.is_null() {
            bad.push(format!(
                "{s}: section {name}: the reference reads it, we do not"
            ));
            continue;
        }
        // Every field the reference returns, under the same name, with the same value and JSON
        // type: optional segments and sub-sections absent or not (the reference then returns
        // their defaults, and so must we). The only adjustments are the deliberate differences
        // documented at `reference_tcf_field`.
        for (key, w) in fields.as_object().unwrap() {
            let expected = match name.as_str() {
                "tcfeuv2" => reference_tcf_field(fields, key),
                _ => w.clone(),
            };
            if got[key] != expected {
                bad.push(format!(
                    "{s}: {name} {key}: reference {expected}, ours {}",
                    got[key]
                ));
            }
        }
        // No field of ours that the reference does not have.
        for key in got.as_object().unwrap().keys() {
            if !fields.as_object().unwrap().contains_key(key) {
                bad.push(format!(
                    "{s}: {name}: we show {key}, the reference does not"
                ));
            }
        }
    }
    false
}

/// Which optional parts a string the reference read carries: the GPC sub-section of each US
/// section that defines one (included or not), and the `tcfeuv2` section's optional segments,
/// told apart as the TCF specification does, by their first character (the 3-bit segment type:
/// `I`-`P` disclosed vendors, `Q`-`X` allowed vendors, `Y`-`f` publisher TC).
fn optional_parts(s: &str, want: &Value) -> Vec<&'static str> {
    let mut parts = Vec::new();
    for fields in want["sections"].as_object().unwrap().values() {
        match fields.get("GpcSegmentIncluded") {
            Some(Value::Bool(true)) => parts.push("GPC sub-section included"),
            Some(Value::Bool(false)) => parts.push("GPC sub-section absent"),
            _ => {}
        }
    }
    let tcf = &want["sections"]["tcfeuv2"];
    if tcf.is_null() {
        return parts;
    }
    let ids = gpp::decode_header(s.split('~').next().unwrap()).unwrap();
    let at = ids.iter().position(|&id| id == 2).unwrap();
    let section = s.split('~').nth(1 + at).unwrap();
    let first: Vec<u8> = section
        .split('.')
        .skip(1)
        .filter_map(|p| p.bytes().next())
        .collect();
    for (what, range) in [
        ("disclosed vendors", b'I'..=b'P'),
        ("allowed vendors", b'Q'..=b'X'),
        ("publisher TC", b'Y'..=b'f'),
    ] {
        let present = first.iter().any(|c| range.contains(c));
        parts.push(match (what, present) {
            ("disclosed vendors", true) => "tcfeuv2 disclosed vendors present",
            ("disclosed vendors", false) => "tcfeuv2 disclosed vendors absent",
            ("allowed vendors", true) => "tcfeuv2 allowed vendors present",
            ("allowed vendors", false) => "tcfeuv2 allowed vendors absent",
            (_, true) => "tcfeuv2 publisher TC present",
            (_, false) => "tcfeuv2 publisher TC absent",
        });
    }
    if tcf["NumCustomPurposes"].as_u64().unwrap_or(0) > 0 {
        parts.push("tcfeuv2 custom purposes");
    }
    if tcf["IsServiceSpecific"] == json!(false) {
        parts.push("tcfeuv2 not service-specific");
    }
    parts
}

/// The section id of a name the reference prints (those consentgate reads; 0 for others).
fn section_id(name: &str) -> u16 {
    (1..=40)
        .find(|&id| gpp::section_name(id) == Some(name))
        .unwrap_or(0)
}

#[test]
fn random_gpp_strings_decode_as_the_iab_reference_library_reads_them() {
    let cases = env_or("GPP_DIFF_CASES", 500);
    let seed = env_or("GPP_DIFF_SEED", 20_261_129);
    let written: Vec<String> = node(&["gen", &cases.to_string(), &seed.to_string()], "")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(written.len() as u64, cases, "one string per case");
    let mut rng = Rng(seed | 1);
    // Each string as written, and a damaged copy of every other one.
    let mut strings = written.clone();
    strings.extend(written.iter().step_by(2).map(|s| damage(&mut rng, s)));
    let answers: Vec<Value> = node(&["decode"], &(strings.join("\n") + "\n"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), strings.len(), "one answer per string");

    let known: Vec<u64> = serde_json::from_str(&node(&["known"], "")).unwrap();

    let (mut bad, mut tcf_refused) = (Vec::new(), Vec::new());
    let (mut refused, mut sections_read) = (0, std::collections::BTreeMap::new());
    let mut optional = std::collections::BTreeMap::new();
    for (s, want) in strings.iter().zip(&answers) {
        if compare(s, want, &known, &mut bad, &mut tcf_refused) {
            refused += 1;
        } else if let Some(sections) = want["sections"].as_object() {
            for name in sections.keys() {
                *sections_read.entry(name.clone()).or_insert(0) += 1;
            }
            for part in optional_parts(s, want) {
                *optional.entry(part).or_insert(0) += 1;
            }
        }
    }
    // Each `tcfeuv2` section we refused must be one the TCF reference decoder refuses too.
    if !tcf_refused.is_empty() {
        let sections: Vec<&str> = tcf_refused
            .iter()
            .map(|s| {
                let ids = gpp::decode_header(s.split('~').next().unwrap()).unwrap();
                let at = ids.iter().position(|&id| id == 2).unwrap();
                s.split('~').nth(1 + at).unwrap()
            })
            .collect();
        let answers = tcf_reference(&sections);
        for (s, answer) in tcf_refused.iter().zip(answers) {
            if answer.get("error").is_none() {
                bad.push(format!(
                    "{s}: we refuse its tcfeuv2 section, which both reference decoders read"
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} strings disagree (seed {seed}):\n{}",
        bad.len(),
        strings.len(),
        bad.join("\n")
    );
    // The written strings were all readable, the damaged share really exercised the refusal
    // path, and every section consentgate reads was compared.
    for (s, want) in written.iter().zip(&answers) {
        assert!(
            want.get("error").is_none(),
            "the reference refuses its own {s}"
        );
    }
    assert!(refused > cases / 10, "only {refused} strings were refused");
    // Each optional part was compared both present and absent.
    for part in [
        "GPC sub-section included",
        "GPC sub-section absent",
        "tcfeuv2 disclosed vendors present",
        "tcfeuv2 disclosed vendors absent",
        "tcfeuv2 allowed vendors present",
        "tcfeuv2 allowed vendors absent",
        "tcfeuv2 publisher TC present",
        "tcfeuv2 publisher TC absent",
        "tcfeuv2 custom purposes",
        "tcfeuv2 not service-specific",
    ] {
        assert!(
            optional.get(part).copied().unwrap_or(0) > cases / 20,
            "too few strings compared with {part}: {optional:?}"
        );
    }
    for name in [
        "tcfeuv2", "uspv1", "usnat", "usca", "usva", "usco", "usut", "usct", "usfl", "usmt",
        "usor", "ustx", "usde", "usia", "usne", "usnh", "usnj", "ustn",
    ] {
        assert!(
            sections_read.get(name).copied().unwrap_or(0) > cases / 20,
            "too few {name} sections compared: {sections_read:?}"
        );
    }
}
