//! scripts/fetch-lists, the real script run as a process, downloading over a real loopback
//! socket from a local HTTP server that stands in for easylist.to (CONSENTGATE_LISTS_URL): a
//! good list lands atomically and the proxy accepts it; an HTML page, an empty body, a list
//! with too few rules, an HTTP error and a download that stalls are refused, and each leaves
//! the file it would have replaced as it was.

mod common;
use common::*;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fetch-lists");

/// A server answering `/easylist/NAME` with the response given for NAME, 404 otherwise.
fn mirror(files: HashMap<&'static str, Vec<u8>>) -> Origin {
    Origin::start(move |req| {
        let name = req.path.strip_prefix("/easylist/").unwrap_or("");
        match files.get(name) {
            Some(resp) => resp.clone(),
            None => response("404 Not Found", &[("Content-Type", "text/plain")], b"no"),
        }
    })
}

fn list(body: &[u8]) -> Vec<u8> {
    response(
        "200 OK",
        &[("Content-Type", "text/plain; charset=utf-8")],
        body,
    )
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("lists/{name}"))).unwrap()
}

/// Runs the script against the mirror into `dir`; returns (exit code, stdout, stderr).
fn fetch(origin: &Origin, dir: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(SCRIPT);
    cmd.arg(dir)
        .env(
            "CONSENTGATE_LISTS_URL",
            format!("http://{}/easylist", origin.addr),
        )
        .env("CONSENTGATE_LISTS_TIMEOUT", "5");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run scripts/fetch-lists");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Everything in `dir`, to show no temporary file is left behind.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_good_download_lands_whole_and_the_proxy_accepts_it() {
    let (el, ep) = (
        fixture_bytes("easylist.txt"),
        fixture_bytes("easyprivacy.txt"),
    );
    let origin = mirror(HashMap::from([
        ("easylist.txt", list(&el)),
        ("easyprivacy.txt", list(&ep)),
    ]));
    let tmp = TempDir::new("fetch");
    let dir = tmp.0.join("lists"); // not there yet: the script creates it
    let (code, out, err) = fetch(&origin, &dir, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(dir.join("easylist.txt")).unwrap(), el);
    assert_eq!(std::fs::read(dir.join("easyprivacy.txt")).unwrap(), ep);
    assert_eq!(entries(&dir), ["easylist.txt", "easyprivacy.txt"]);
    // Readable by the proxy's own (systemd dynamic) user, not only by whoever fetched it.
    let mode = std::fs::metadata(dir.join("easylist.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    // The summary: rules and bytes per list.
    assert!(
        out.contains(&format!("easylist.txt: 267 rules, {} bytes", el.len())),
        "{out}"
    );
    assert!(
        out.contains(&format!("easyprivacy.txt: 278 rules, {} bytes", ep.len())),
        "{out}"
    );
    let paths: Vec<String> = origin.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/easylist/easylist.txt", "/easylist/easyprivacy.txt"]
    );

    // A site whose blocklists name the fetched files: the configuration checks out.
    let config = tmp.0.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n\
             [[site.blocklist]]\ncategory = \"analytics\"\npath = \"{0}/easyprivacy.txt\"\n\
             [[site.blocklist]]\ncategory = \"marketing\"\npath = \"{0}/easylist.txt\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let (code, _, err) = run_cli(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");

    // A second run replaces the files and says how many rules they had before.
    let (code, out, err) = fetch(&origin, &dir, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(was 267 rules)"), "{out}");
}

/// The current lists, marked so a test can tell they were not replaced.
fn old_lists(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut el = b"! the list in use before this run\n".to_vec();
    el.extend(fixture_bytes("easylist.txt"));
    let mut ep = b"! the list in use before this run\n".to_vec();
    ep.extend(fixture_bytes("easyprivacy.txt"));
    std::fs::write(dir.join("easylist.txt"), &el).unwrap();
    std::fs::write(dir.join("easyprivacy.txt"), &ep).unwrap();
    (el, ep)
}

fn assert_untouched(dir: &Path, old: &(Vec<u8>, Vec<u8>)) {
    assert!(std::fs::read(dir.join("easylist.txt")).unwrap() == old.0);
    assert!(std::fs::read(dir.join("easyprivacy.txt")).unwrap() == old.1);
    assert_eq!(entries(dir), ["easylist.txt", "easyprivacy.txt"]);
}

#[test]
fn an_html_page_or_an_empty_body_is_refused_and_the_old_list_stays() {
    let origin = mirror(HashMap::from([
        // What a captive portal or a CDN error page serves with 200 OK.
        (
            "easylist.txt",
            response(
                "200 OK",
                &[("Content-Type", "text/html")],
                b"<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head><body>Checking your browser</body></html>\n",
            ),
        ),
        ("easyprivacy.txt", list(b"")),
    ]));
    let tmp = TempDir::new("fetch");
    let dir = tmp.0.join("lists");
    let old = old_lists(&dir);
    let (code, out, err) = fetch(&origin, &dir, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("easylist.txt: refused")
            && err.contains("first line: '<!DOCTYPE html>'")
            && err.contains(&format!("kept the current {}/easylist.txt", dir.display())),
        "{err}"
    );
    assert!(
        err.contains("easyprivacy.txt: refused") && err.contains("(0 bytes)"),
        "{err}"
    );
    assert_untouched(&dir, &old);
}

#[test]
fn a_list_with_too_few_rules_or_an_http_error_is_refused() {
    // A real header over a cut-down body (what a truncated mirror copy looks like).
    let stub = b"[Adblock Plus 2.0]\n! Title: EasyList\n||ads.example^\n/banner/*\n";
    let origin = mirror(HashMap::from([("easylist.txt", list(stub))]));
    let tmp = TempDir::new("fetch");
    let dir = tmp.0.join("lists");
    let old = old_lists(&dir);
    let (code, _, err) = fetch(&origin, &dir, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("easylist.txt: refused: only 2 rules") && err.contains("at least 200"),
        "{err}"
    );
    // easyprivacy.txt is a 404 on this mirror.
    assert!(
        err.contains("easyprivacy.txt: download from")
            && err.contains("failed (curl exit 22)")
            && err.contains("404"),
        "{err}"
    );
    assert_untouched(&dir, &old);
}

#[test]
fn a_download_that_stalls_is_abandoned_at_the_timeout() {
    // Headers promise the whole list, half of it comes, then the server goes quiet with the
    // connection open.
    let el = fixture_bytes("easylist.txt");
    let mut stalled = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        el.len()
    )
    .into_bytes();
    stalled.extend_from_slice(&el[..el.len() / 2]);
    let ep = fixture_bytes("easyprivacy.txt");
    let origin = mirror(HashMap::from([
        ("easylist.txt", stalled),
        ("easyprivacy.txt", list(&ep)),
    ]));
    let tmp = TempDir::new("fetch");
    let dir = tmp.0.join("lists");
    let old = old_lists(&dir);
    let t = Instant::now();
    let (code, out, err) = fetch(&origin, &dir, &[("CONSENTGATE_LISTS_TIMEOUT", "2")]);
    // The bound the setting promises (2 s), with a generous margin for a loaded machine.
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("easylist.txt: download from") && err.contains("curl exit 28"),
        "{err}"
    );
    assert!(std::fs::read(dir.join("easylist.txt")).unwrap() == old.0);
    // The other list is independent of the failure and is updated.
    assert!(std::fs::read(dir.join("easyprivacy.txt")).unwrap() == ep);
    assert!(out.contains("easyprivacy.txt: 278 rules"), "{out}");
    assert_eq!(entries(&dir), ["easylist.txt", "easyprivacy.txt"]);
}
