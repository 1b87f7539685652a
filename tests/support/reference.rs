//! The IAB reference libraries, run by node, as the oracles of the differential tests.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `node ARGS...` in `dir` with `input` on stdin; its stdout. Fails the test when node is
/// missing or the script fails.
pub fn run_node(dir: &str, args: &[&str], input: &str) -> String {
    let mut child = Command::new("node")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node is not installed (scripts/test installs nodejs)");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    // Written from a thread: a script that answers as it reads would otherwise fill its stdout
    // pipe while we still write.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "node {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The IAB's TCF reference decoder (tests/tcf-reference, `@iabtcf/core` run by `decode.mjs`) on
/// TC strings: one JSON answer per string, `{"error": ...}` where it refuses one.
pub fn tcf_reference<S: AsRef<str>>(strings: &[S]) -> Vec<Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tcf-reference");
    assert!(
        std::path::Path::new(&format!("{dir}/node_modules/@iabtcf/core")).exists(),
        "the IAB TCF reference decoder is missing: run `npm ci` in {dir} (scripts/test does)"
    );
    let input: String = strings
        .iter()
        .map(|s| s.as_ref().to_string() + "\n")
        .collect();
    run_node(dir, &["decode.mjs"], &input)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
