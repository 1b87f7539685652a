//! The command line: `check` and `explain` through the real binary.

mod common;
use common::*;

fn write(dir: &TempDir, name: &str, text: &str) -> String {
    let p = dir.0.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn the_shipped_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/consentgate.toml");
    let (code, out, err) = run_cli(&["check", "--config", path]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok"));
}

#[test]
fn check_lists_every_error_with_file_line_and_fix() {
    let dir = TempDir::new("cli");
    let path = write(
        &dir,
        "bad.toml",
        r#"[proxy]
listen = ["127.0.0.1:99999"]
admin = "localhost"
threads = 0

[[site]]
name = "a"
hosts = ["exa mple.com"]
upstreams = []

[site.cookies]
analytics = ["", "_ga"]
"#,
    );
    let (code, _out, err) = run_cli(&["check", "--config", &path]);
    assert_ne!(code, 0);
    let lines: Vec<&str> = err.lines().collect();
    let expect = [
        (2, "listen address `127.0.0.1:99999`"),
        (3, "admin address `localhost`"),
        (4, "threads = 0 is out of range"),
        (8, "host pattern `exa mple.com`"),
        (9, "`upstreams` is empty"),
        (12, "cookie pattern ``"),
    ];
    assert_eq!(lines.len(), expect.len(), "{err}");
    for ((line, what), got) in expect.iter().zip(&lines) {
        assert!(
            got.starts_with(&format!("{path}:{line}: {what}")),
            "expected {path}:{line}: {what}..., got {got}"
        );
    }
}

/// Issue 11 writes the app's consent header as one `[site.consent.header]` table; several
/// headers are an array of tables. `check` takes both, and a value that is neither is one
/// error, on its line, saying what to write.
#[test]
fn check_takes_a_consent_header_as_one_table_or_an_array_of_tables() {
    let dir = TempDir::new("cli");
    let head = "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n";
    for (name, consent) in [
        (
            "one.toml",
            "[site.consent.header]\nname = \"X-Consent\"\nformat = \"first-party\"\n",
        ),
        (
            "many.toml",
            "[[site.consent.header]]\nname = \"X-Consent\"\nformat = \"first-party\"\n[[site.consent.header]]\nname = \"X-TCF-Consent\"\nformat = \"tcf\"\n",
        ),
    ] {
        let path = write(&dir, name, &format!("{head}{consent}"));
        let (code, out, err) = run_cli(&["check", "--config", &path]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.contains("ok (1 sites)"), "{out}");
        assert_eq!(err, "", "{name}");
    }
    let path = write(
        &dir,
        "bad.toml",
        &format!("{head}[site.consent]\nheader = \"X-Consent\"\n"),
    );
    let (code, _, err) = run_cli(&["check", "--config", &path]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("{path}:7: ")), "{err}");
    assert!(
        err.contains("write a table with `name` and `format` (or an array of such tables)"),
        "{err}"
    );
    // The thing wanted is named once.
    assert_eq!(err.matches("a table with").count(), 1, "{err}");
}

#[test]
fn check_lists_unknown_keys_wrong_types_and_bad_values_together() {
    let dir = TempDir::new("cli");
    let path = write(
        &dir,
        "many.toml",
        r#"[proxy]
listen = ["127.0.0.1:8080", 5]
admin = "nope"
thread = 2

[[site]]
name = "example"
upstreams = ["127.0.0.1:8081"]
mode = "strict"

[site.cookies]
advertising = ["_fbp"]
analytics = ["a b"]

[[site.blocklist]]
category = "ads"
path = "lists/analytics.txt"
"#,
    );
    let (code, out, err) = run_cli(&["check", "--config", &path]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = err.lines().collect();
    let expect = [
        (2, "write a string here"),
        (3, "admin address `nope`"),
        (4, "unknown key `thread`; did you mean `threads`?"),
        (
            9,
            "`strict` is not allowed here; use one of: enforce, report-only, off",
        ),
        (12, "unknown key `advertising`"),
        (13, "cookie pattern `a b`"),
        (16, "unknown category `ads`"),
    ];
    assert_eq!(lines.len(), expect.len(), "{err}");
    for (line, (n, want)) in lines.iter().zip(expect) {
        assert!(line.starts_with(&format!("{path}:{n}: ")), "{line}");
        assert!(line.contains(want), "{line}");
    }
}

#[test]
fn check_names_unknown_keys_and_categories() {
    let dir = TempDir::new("cli");
    let path = write(
        &dir,
        "bad.toml",
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\n\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n[site.cookies]\nadvertising = [\"_fbp\"]\n",
    );
    let (code, _, err) = run_cli(&["check", "--config", &path]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!("{path}:8: unknown key `advertising`")),
        "{err}"
    );
    assert!(err.contains("marketing"), "lists the categories: {err}");
    let (code, _, err) = run_cli(&["check", "--config", "/nonexistent/c.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/c.toml") && err.contains("--config"),
        "{err}"
    );
}

#[test]
fn explain_prints_the_decision_as_json() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/consentgate.toml");
    let (code, out, err) = run_cli(&[
        "explain",
        "--config",
        path,
        "--cookie",
        "consent=analytics; _ga=GA1.1.1.1; _fbp=fb.1; SESSIONID=s; what=1",
        "--set-cookie",
        "_ga=GA1.2.3.4; Path=/",
        "--set-cookie",
        "_fbp=fb.1.2; Path=/",
        "--set-cookie",
        "SESSIONID=x; HttpOnly",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["categories"],
        serde_json::json!({"necessary": true, "preferences": false, "analytics": true, "marketing": false})
    );
    assert_eq!(v["sources"][0]["format"], "first-party");
    assert_eq!(v["sources"][0]["error"], serde_json::Value::Null);
    let sc: Vec<(String, String, String)> = v["set_cookie"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["category"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        sc,
        vec![
            ("_ga".into(), "analytics".into(), "keep".into()),
            ("_fbp".into(), "marketing".into(), "strip".into()),
            ("SESSIONID".into(), "necessary".into(), "keep".into()),
        ]
    );
    let rc: Vec<(String, String)> = v["request_cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        rc,
        vec![
            ("consent".into(), "forward".into()),
            ("_ga".into(), "forward".into()),
            ("_fbp".into(), "expire".into()),
            ("SESSIONID".into(), "forward".into()),
            ("what".into(), "strip".into()),
        ]
    );
}

#[test]
fn explain_reports_unreadable_consent_and_gpc() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/consentgate.toml");
    let (code, out, _) = run_cli(&[
        "explain",
        "--config",
        path,
        "--cookie",
        "consent=bogus",
        "--gpc",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["sources"][0]["error"]
        .as_str()
        .unwrap()
        .contains("unknown category"));
    assert_eq!(v["categories"]["analytics"], false);
    assert_eq!(v["gpc"], true);
    assert_eq!(v["consent_state"], "invalid");
}

#[test]
fn demo_serves_the_example_origin_behind_the_proxy() {
    let (proxy, admin, origin) = (free_port(), free_port(), free_port());
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let mut child = std::process::Command::new(BIN)
        .args([
            "demo",
            "--listen",
            &addr(proxy),
            "--admin",
            &addr(admin),
            "--origin",
            &addr(origin),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let proxy_addr = addr(proxy).parse().unwrap();
    eventually("demo up", || get(proxy_addr, "/", &[]).status == 200);
    let r = get(proxy_addr, "/", &[]);
    assert_eq!(r.set_cookie_names(), vec!["SESSIONID"]);
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("id=\"accept-all\"") && page.contains("document.cookie"));
    // The demo's Google tag is neutralized without consent, and its beacon answered locally.
    assert!(
        page.contains("type=\"text/plain\" data-consent-category=\"analytics\""),
        "{page}"
    );
    let r = get(
        proxy_addr,
        "/g/collect?v=2&tid=G-DEMO",
        &[("Sec-Fetch-Dest", "empty")],
    );
    assert_eq!(r.status, 204);
    let r = get(proxy_addr, "/", &[("Cookie", "consent=analytics")]);
    assert_eq!(r.set_cookie_names(), vec!["SESSIONID", "_ga"]);
    // The origin itself sets all four.
    let r = get(addr(origin).parse().unwrap(), "/", &[]);
    assert_eq!(
        r.set_cookie_names(),
        vec!["SESSIONID", "_ga", "_fbp", "theme"]
    );
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let help = String::from_utf8_lossy(&out.stderr);
    assert!(
        help.contains(&format!("http://{}/", addr(proxy))) && help.contains("curl"),
        "{help}"
    );
}

#[test]
fn the_open_cookie_database_classifies_what_the_catalogue_does_not() {
    // An excerpt of the real database (tests/fixtures/open-cookie-database/NOTICE): its row for
    // Google Tag Manager's `td` cookie says Analytics; the built-in catalogue has no `td`.
    let db = fixture("open-cookie-database/open-cookie-database.csv");
    let dir = TempDir::new("cli");
    let with_db = write(
        &dir,
        "db.toml",
        &format!("[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n[site.cookies]\nopen_cookie_database = \"{db}\"\n"),
    );
    let without = write(
        &dir,
        "plain.toml",
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n",
    );
    let judge = |config: &str| -> serde_json::Value {
        let (code, out, err) = run_cli(&[
            "explain",
            "--config",
            config,
            "--set-cookie",
            "td=1; Path=/",
        ]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["set_cookie"][0].clone()
    };
    let v = judge(&with_db);
    assert_eq!(v["category"], "analytics");
    assert_eq!(v["origin"], "open-cookie-database");
    assert_eq!(judge(&without)["category"], "unknown");
    // A broken database path is a config error naming the line.
    let bad = write(
        &dir,
        "bad.toml",
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n[site.cookies]\nopen_cookie_database = \"/nope.csv\"\n",
    );
    let (code, _, err) = run_cli(&["check", "--config", &bad]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml:7: open_cookie_database"), "{err}");
}

#[test]
fn check_warns_about_an_admin_listener_off_loopback_without_a_token() {
    let dir = TempDir::new("cli");
    let config = |name: &str, admin: &str, extra: &str| {
        write(
            &dir,
            name,
            &format!(
                "[proxy]\nlisten = [\"127.0.0.1:1\"]\nadmin = \"{admin}\"\n{extra}\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n"
            ),
        )
    };
    let advice = "set admin_token (or CONSENTGATE_ADMIN_TOKEN) or bind admin to 127.0.0.1";
    // Off loopback, no token: a warning on the `admin` line, and still exit 0.
    for (i, admin) in ["0.0.0.0:9090", "[::]:9090", "203.0.113.9:9090"]
        .iter()
        .enumerate()
    {
        let path = config(&format!("open{i}.toml"), admin, "");
        let (code, out, err) = run_cli(&["check", "--config", &path]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("ok"), "{out}");
        let warning = format!("{path}:3: warning: ");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&warning), "{admin}: {err}");
        assert!(
            err.contains(admin) && err.trim_end().ends_with(advice),
            "{err}"
        );
    }
    // A token in the file, a token in the environment, or loopback: no warning.
    let token = config(
        "token.toml",
        "0.0.0.0:9090",
        "admin_token = \"0123456789abcdef-secret\"",
    );
    let open = config("open-env.toml", "0.0.0.0:9090", "");
    let local = config("local.toml", "127.0.0.1:9090", "");
    let local6 = config("local6.toml", "[::1]:9090", "");
    for (path, env) in [
        (&token, vec![]),
        (
            &open,
            vec![("CONSENTGATE_ADMIN_TOKEN", "0123456789abcdef-from-env")],
        ),
        (&local, vec![]),
        (&local6, vec![]),
    ] {
        let (code, out, err) = run_cli_with_env(&["check", "--config", path], &env);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(err, "", "{path}");
    }
}

/// README's command table is where an operator learns explain's options: its synopsis names
/// every option the binary takes, and nests an option inside another's brackets only where it
/// needs that one. `--header` is read alone (by the site's `[[site.consent.header]]` sources;
/// tests/gpp.rs runs it so) and was once shown only inside `--peer`'s brackets; `--region`
/// needs `--country` (explain refuses it alone, as tests/jurisdiction.rs shows).
#[test]
fn the_readme_explain_synopsis_names_every_option_and_nests_only_dependent_ones() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `consentgate explain "))
        .expect("README has an explain row");
    let synopsis = row.split('`').nth(1).unwrap();
    // The bracket depth at each option of the synopsis.
    let mut depth = 0;
    let mut nested = std::collections::HashMap::new();
    let mut rest = synopsis;
    while let Some(c) = rest.chars().next() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '-' if rest.starts_with("--") => {
                let name: String = rest[2..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                    .collect();
                nested.insert(format!("--{name}"), depth);
            }
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    let (code, help, err) = run_cli(&["explain", "--help"]);
    assert_eq!(code, 0, "{err}");
    for word in help.split(|c: char| !(c.is_ascii_lowercase() || c == '-')) {
        if word.starts_with("--") && word.len() > 2 && word != "--help" {
            assert!(
                nested.contains_key(word),
                "README's explain synopsis lacks {word}: {synopsis}"
            );
        }
    }
    // Options that stand alone sit at the top level (inside their own brackets at most).
    for alone in ["--header", "--peer", "--country", "--url", "--gpc"] {
        assert!(nested[alone] <= 1, "{alone} is nested: {synopsis}");
    }
    assert!(
        synopsis.contains("[--country CC [--region RR]]"),
        "{synopsis}"
    );
}
