//! Every consent reader on cookie values real CMPs wrote (issue 7). The vectors live in
//! `tests/fixtures/consent/*.jsonl`, one JSON object per line with its provenance; their expected
//! values come from the format's authors (the IAB reference decoders for TCF) or from what the
//! visitor chose, never from our own decoders. Each line runs through the real decision path:
//! a `Runtime` built from configuration text and `consentgate::explain::explain`.
//!
//! A test collects every mismatch of its file before failing, so one run reports them all.

use consentgate::explain::{explain, ExplainRequest};
use consentgate::runtime::Runtime;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/consent");

/// The vector files and the consent source each one is read with (a line may name others).
const FILES: &[(&str, &str)] = &[
    ("tcf.jsonl", "tcf"),
    ("didomi_tcf.jsonl", "tcf"),
    ("onetrust_tcf.jsonl", "tcf"),
    ("onetrust.jsonl", "onetrust"),
    ("cookiebot.jsonl", "cookiebot"),
    ("cookieyes.jsonl", "cookieyes"),
    ("complianz.jsonl", "complianz"),
    ("klaro.jsonl", "klaro"),
    ("didomi.jsonl", "didomi"),
];

fn vectors(file: &str) -> Vec<Value> {
    let path = format!("{DIR}/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}:{}: not JSON: {e}", i + 1))
        })
        .collect()
}

/// Runtimes by configuration text (building one compiles the site's rules; vectors share them).
#[derive(Default)]
struct Runtimes(HashMap<String, Runtime>);

impl Runtimes {
    fn get(&mut self, sources: &[String], extra: &str) -> &Runtime {
        let list = sources
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:1\"]\n\n[[site]]\nname = \"vectors\"\nhosts = [\"*\"]\nupstreams = [\"127.0.0.1:2\"]\n\n[site.consent]\nsources = [{list}]\n{extra}"
        );
        self.0.entry(text.clone()).or_insert_with(|| {
            let config = consentgate::config::parse(&text, Path::new("vectors.toml"))
                .unwrap_or_else(|e| panic!("vector configuration rejected: {e}\n{text}"));
            Runtime::build(config).unwrap_or_else(|e| panic!("runtime: {e}\n{text}"))
        })
    }
}

/// Runs one vector; returns what disagrees with its expectations.
fn check(rts: &mut Runtimes, file: &str, default_source: &str, v: &Value) -> Vec<String> {
    let name = v["name"].as_str().unwrap_or("?");
    let at = format!("{file} `{name}`");
    let mut bad = Vec::new();
    let sources: Vec<String> = match v["sources"].as_array() {
        Some(list) => list
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
        None => vec![default_source.to_string()],
    };
    let rt = rts.get(&sources, v["config"].as_str().unwrap_or(""));
    let cookie = v["cookie"].as_str().expect("cookie").to_string();
    let out = explain(
        rt,
        &ExplainRequest {
            host: None,
            cookies: &[cookie],
            set_cookies: &[],
            gpc: false,
            url: None,
            referer: None,
            dest: None,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{at}: explain failed: {e}"));

    for cat in ["analytics", "marketing", "preferences"] {
        let want = &v["expect"][cat];
        let got = &out["categories"][cat];
        if want != got {
            bad.push(format!("{at}: {cat} expected {want}, got {got}"));
        }
    }
    let srcs = out["sources"].as_array().cloned().unwrap_or_default();
    if srcs.is_empty() {
        bad.push(format!("{at}: no consent source was read from the cookie"));
    }
    let errors: Vec<&Value> = srcs
        .iter()
        .map(|s| &s["error"])
        .filter(|e| !e.is_null())
        .collect();
    match v["error"].as_bool().unwrap_or(false) {
        true if errors.is_empty() => bad.push(format!(
            "{at}: expected the source to be refused as unreadable, but it was read without error"
        )),
        false if !errors.is_empty() => {
            bad.push(format!("{at}: unexpected read error(s): {errors:?}"))
        }
        _ => {}
    }

    // TCF: every core field as the IAB decoder reads it, from explain's details.
    if let Some(want) = v["tcf"].as_object() {
        let details = srcs
            .iter()
            .find(|s| s["format"] == "tcf")
            .map(|s| s["details"].clone())
            .unwrap_or(Value::Null);
        for (key, w) in want {
            let g = &details[key];
            if !same(w, g) {
                bad.push(format!(
                    "{at}: tcf.{key} expected {}, got {}",
                    short(w),
                    short(g)
                ));
            }
        }
    }
    bad
}

/// Equality where lists of publisher restrictions compare as sets (their order is not encoded
/// meaningfully: a purpose/type pair may come in any order).
fn same(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Array(w), Value::Array(g)) if w.iter().all(Value::is_object) => {
            w.len() == g.len() && w.iter().all(|x| g.contains(x))
        }
        _ => want == got,
    }
}

/// Long vendor lists are shortened in messages (the count and the ends say enough).
fn short(v: &Value) -> String {
    match v {
        Value::Array(a) if a.len() > 12 => {
            let head: Vec<String> = a[..5].iter().map(Value::to_string).collect();
            let tail: Vec<String> = a[a.len() - 3..].iter().map(Value::to_string).collect();
            format!(
                "[{} … {}] ({} items)",
                head.join(","),
                tail.join(","),
                a.len()
            )
        }
        other => {
            let s = other.to_string();
            if s.len() > 200 {
                format!("{}…", &s[..200])
            } else {
                s
            }
        }
    }
}

fn run_file(file: &str) {
    let default_source = FILES
        .iter()
        .find(|(f, _)| *f == file)
        .map(|(_, s)| *s)
        .expect("listed file");
    let mut rts = Runtimes::default();
    let all = vectors(file);
    assert!(!all.is_empty(), "{file} has no vectors");
    let bad: Vec<String> = all
        .iter()
        .flat_map(|v| check(&mut rts, file, default_source, v))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} vectors in {file} disagree:\n{}",
        bad.iter()
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        all.len(),
        bad.join("\n")
    );
}

#[test]
fn tcf_strings_decode_as_the_iab_reference_decoders_read_them() {
    run_file("tcf.jsonl");
}

#[test]
fn didomi_with_tcf_pairs_grant_what_the_visitor_chose() {
    run_file("didomi_tcf.jsonl");
}

#[test]
fn onetrust_with_tcf_pairs_grant_what_the_visitor_chose() {
    run_file("onetrust_tcf.jsonl");
}

#[test]
fn onetrust_real_cookies() {
    run_file("onetrust.jsonl");
}

#[test]
fn cookiebot_real_cookies() {
    run_file("cookiebot.jsonl");
}

#[test]
fn cookieyes_real_cookies() {
    run_file("cookieyes.jsonl");
}

#[test]
fn complianz_cookies_as_its_script_writes_them() {
    run_file("complianz.jsonl");
}

#[test]
fn klaro_real_cookies() {
    run_file("klaro.jsonl");
}

#[test]
fn didomi_real_tokens() {
    run_file("didomi.jsonl");
}

/// Adding a vector file without a test, or a vector without provenance, is caught here.
#[test]
fn every_vector_file_is_run_and_every_vector_says_where_it_came_from() {
    let mut on_disk: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "tests/fixtures/consent/*.jsonl vs FILES");
    for (file, _) in FILES {
        for v in vectors(file) {
            let name = v["name"].as_str().unwrap_or("");
            assert!(!name.is_empty(), "{file}: a vector has no name");
            assert!(
                v["provenance"].as_str().is_some_and(|p| p.len() > 10),
                "{file} `{name}`: no provenance"
            );
            assert!(v["cookie"].is_string(), "{file} `{name}`: no cookie");
            for cat in ["analytics", "marketing", "preferences"] {
                assert!(
                    v["expect"][cat].is_boolean(),
                    "{file} `{name}`: expect.{cat}"
                );
            }
        }
    }
}
