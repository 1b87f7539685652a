//! Consent receipts (issue 12): a visitor who gives, changes and withdraws consent leaves a
//! receipt per change (none for a repeated request), in SQLite and in a real PostgreSQL server;
//! the chain verifies and `receipts verify` finds an edited row; with the store frozen under
//! load the proxy keeps serving and only a full queue drops (counted), a brief outage loses
//! nothing; retention keeps the chain whole; app consent headers and the CMP ids of Cookiebot,
//! Didomi and CookieYes name their subjects; two instances sharing PostgreSQL report their sum.
//!
//! The consent cookies are OneTrust `OptanonConsent` values in the layout OneTrust writes (the
//! real cookie in src/consent/onetrust.rs tests, from a OneTrust site); the chain hashes are
//! recomputed here with `sha256sum` from the serialization docs/RECEIPTS.md specifies.

mod common;
#[path = "support/postgres.rs"]
mod postgres_server;

use common::*;
use postgres_server::Postgres;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// An OptanonConsent value with this consent id and groups C0002 (analytics), C0003
/// (preferences), C0004 (marketing) set as given.
fn onetrust(id: &str, analytics: bool, preferences: bool, marketing: bool) -> String {
    let b = |x: bool| if x { 1 } else { 0 };
    format!(
        "OptanonConsent=isGpcEnabled=0&datestamp=Sat+Nov+28+2026+19%3A12%3A31+GMT%2B0100&version=202409.1.0&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId={id}&interactionCount=1&isAnonUser=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A{}%2CC0003%3A{}%2CC0004%3A{}&AwaitingReconsent=false",
        b(analytics),
        b(preferences),
        b(marketing)
    )
}

fn site(origin: std::net::SocketAddr) -> String {
    shop_site(origin, "[site.consent]\nsources = [\"onetrust\"]\n")
}

fn start(origin: &Origin, receipts: &str) -> Proxy {
    Proxy::start(&format!("{}\n[receipts]\n{receipts}\n", site(origin.addr)))
}

/// The `[receipts]` keys for a SQLite store at `db`, then `extra` (more keys, one per line).
fn sqlite(db: &std::path::Path, extra: &str) -> String {
    format!("path = \"{}\"\n{extra}", db.display())
}

fn cli_json(args: &[&str]) -> Value {
    let (code, out, err) = run_cli(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn sha256sum(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The chain as docs/RECEIPTS.md defines it, recomputed from the listed JSON.
fn assert_chain(receipts: &[Value]) {
    let mut prev: Option<String> = None;
    for r in receipts {
        let s = |k: &str| r[k].clone();
        let join = |k: &str| {
            Value::String(
                r[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(","),
            )
        };
        let canonical = Value::Array(vec![
            s("schema_version"),
            s("receipt_id"),
            s("event_time"),
            s("site"),
            s("subject"),
            s("subject_type"),
            s("event"),
            s("source"),
            join("granted"),
            join("denied"),
            s("signal_sha256"),
            s("signal"),
            s("policy_version"),
            s("jurisdiction"),
            s("path"),
            s("client_network"),
            s("instance"),
            s("prev_sha256"),
        ]);
        assert_eq!(
            sha256sum(&canonical.to_string()),
            r["sha256"].as_str().unwrap(),
            "sha256 of {r}"
        );
        if let Some(p) = &prev {
            assert_eq!(r["prev_sha256"].as_str().unwrap(), p);
        }
        prev = Some(r["sha256"].as_str().unwrap().to_string());
    }
}

const VISITOR: &str = "5b1c2d3e-aaaa-bbbb-cccc-123456789abc";

/// Gives (analytics + marketing), repeats, changes (analytics only), withdraws; returns the
/// receipts listed for the visitor.
fn visitor_story(p: &Proxy) -> Vec<Value> {
    let give = onetrust(VISITOR, true, false, true);
    for _ in 0..3 {
        // A repeated, unchanged request: one receipt only.
        assert_eq!(
            p.get("/cart?token=secret", &[("Cookie", &give)]).status,
            200
        );
    }
    p.expect_metric("consentgate_receipts_written_total", &[], 1.0);
    assert_eq!(
        p.get("/", &[("Cookie", &onetrust(VISITOR, true, false, false))])
            .status,
        200
    );
    p.expect_metric("consentgate_receipts_written_total", &[], 2.0);
    let withdraw = onetrust(VISITOR, false, false, false);
    assert_eq!(p.get("/", &[("Cookie", &withdraw)]).status, 200);
    assert_eq!(p.get("/", &[("Cookie", &withdraw)]).status, 200);
    p.expect_metric("consentgate_receipts_written_total", &[], 3.0);
    let config = p.config.to_str().unwrap();
    let v = cli_json(&["receipts", "--config", config, "--subject", VISITOR]);
    v.as_array().unwrap().clone()
}

fn check_story(list: &[Value], instance: &str) {
    let events: Vec<&str> = list.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["given", "updated", "withdrawn"]);
    let r = &list[0];
    assert_eq!(r["subject"], VISITOR);
    assert_eq!(r["subject_type"], "cmp-id");
    assert_eq!(r["site"], "shop");
    assert_eq!(r["source"], "onetrust:OptanonConsent");
    assert_eq!(
        r["granted"],
        serde_json::json!(["necessary", "analytics", "marketing"])
    );
    assert_eq!(r["denied"], serde_json::json!(["preferences"]));
    assert_eq!(r["path"], "/cart", "no query");
    assert_eq!(r["client_network"], "127.0.0.0/24", "no raw address");
    assert_eq!(r["signal"], Value::Null, "no raw consent string by default");
    assert_eq!(r["jurisdiction"], Value::Null);
    assert_eq!(r["instance"], instance);
    assert_eq!(r["prev_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        list[2]["granted"],
        serde_json::json!(["necessary"]),
        "withdrawn"
    );
    // Field names of the issue, and nothing that carries the raw address or query.
    for key in [
        "receipt_id",
        "schema_version",
        "event_time",
        "policy_version",
        "signal_sha256",
    ] {
        assert!(r.get(key).is_some(), "{key} missing");
    }
    let text = serde_json::to_string(list).unwrap();
    assert!(!text.contains("127.0.0.1") && !text.contains("secret"));
    assert_chain(list);
}

#[test]
fn sqlite_receipts_follow_a_visitor_and_verify_detects_an_edited_row() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-sqlite");
    let db = dir.0.join("receipts.db");
    let p = start(
        &o,
        &sqlite(&db, "batch_interval_ms = 20\ninstance = \"edge-1\""),
    );
    let list = visitor_story(&p);
    check_story(&list, "edge-1");
    let config = p.config.to_str().unwrap();
    // CSV: a header of the field names, one line per receipt.
    let (code, csv, _) = run_cli(&["receipts", "--config", config, "--format", "csv"]);
    assert_eq!(code, 0);
    assert!(csv.starts_with("receipt_id,schema_version,event_time,site,subject,"));
    assert_eq!(csv.lines().count(), 4);
    // --since in the future: nothing.
    let none = cli_json(&["receipts", "--config", config, "--since", "2999-01-01"]);
    assert_eq!(none, serde_json::json!([]));
    // `--config` before or after `verify`: the same store (the tests run from the checkout,
    // whose conf/consentgate.toml, the default, has no [receipts]).
    let before = ["receipts", "--config", config, "verify"];
    let after = ["receipts", "verify", "--config", config];
    for args in [before, after] {
        let (code, out, err) = run_cli(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains("3 receipts, chain valid"), "{args:?}: {out}");
    }
    // Someone edits the second receipt to claim marketing was granted.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE receipts SET granted = 'necessary,analytics,marketing' WHERE seq = 2",
        [],
    )
    .unwrap();
    for args in [before, after] {
        let (code, _, err) = run_cli(&args);
        assert_eq!(code, 1, "{args:?}");
        assert!(
            err.contains("receipt seq 2") && err.contains("edited"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_missing_sqlite_store_is_an_error_naming_the_file_and_is_not_created() {
    let dir = TempDir::new("receipts-missing");
    // A typo in the path: the proxy never wrote there.
    let db = dir.0.join("recepits.db");
    let config = dir.0.join("consentgate.toml");
    let text = format!(
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\nadmin = \"127.0.0.1:2\"\n{}\n[receipts]\npath = \"recepits.db\"\n",
        site("127.0.0.1:3".parse().unwrap())
    );
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();
    let commands: [&[&str]; 4] = [
        &["receipts", "--config", config],
        &["receipts", "--config", config, "verify"],
        &["receipts", "verify", "--config", config],
        &["report", "--config", config, "--since", "2000-01-01"],
    ];
    for args in commands {
        let (code, out, err) = run_cli(args);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(out.is_empty(), "{args:?} printed {out}");
        assert!(
            err.contains(&format!("{} does not exist", db.display())),
            "{args:?}: {err}"
        );
        // The fix: where to look, and what creates the file.
        assert!(
            err.starts_with(config) && err.contains("`path` in [receipts]"),
            "{args:?}: {err}"
        );
        assert!(err.contains("consentgate run --config"), "{args:?}: {err}");
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
    // A file that is not a receipt store is refused too, and left as it was.
    std::fs::write(&db, b"").unwrap();
    let (code, _, err) = run_cli(&["receipts", "verify", "--config", config]);
    assert_eq!(code, 1);
    assert!(err.contains("has no table `receipts`"), "{err}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
}

/// The stored time form of now (what `--since`/`--until` compare with).
fn now() -> String {
    consentgate::receipts::format_time(std::time::SystemTime::now())
}

/// The start of the current hour, RFC 3339.
fn this_hour() -> String {
    consentgate::receipts::queue::hour_of(std::time::SystemTime::now())
}

#[test]
fn receipts_and_report_filter_by_site_and_until() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-filters");
    let db = dir.0.join("r.db");
    let blog = format!(
        "[[site]]\nname = \"blog\"\nhosts = [\"blog.test\"]\nupstreams = [\"{}\"]\n[site.consent]\nsources = [\"onetrust\"]\n",
        o.addr
    );
    // The hour before any traffic: a report up to it covers none of it.
    let hour_before = this_hour();
    let p = Proxy::start(&format!(
        "{}\n{blog}\n[receipts]\n{}",
        site(o.addr),
        sqlite(
            &db,
            "batch_interval_ms = 20\naggregate_interval_seconds = 1"
        )
    ));
    let get = |host: &str, cookie: &str| p.get("/", &[("Host", host), ("Cookie", cookie)]);
    assert_eq!(
        get("shop.test", &onetrust("shop-1", true, true, true)).status,
        200
    );
    p.expect_metric("consentgate_receipts_written_total", &[], 1.0);
    std::thread::sleep(Duration::from_millis(20));
    let between = now();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        get("blog.test", &onetrust("blog-1", true, false, false)).status,
        200
    );
    for _ in 0..3 {
        assert_eq!(
            get("blog.test", &onetrust("blog-2", false, false, false)).status,
            200
        );
    }
    assert_eq!(
        get("shop.test", &onetrust("shop-1", false, false, false)).status,
        200
    );
    p.expect_metric("consentgate_receipts_written_total", &[], 4.0);
    let config = p.config.to_str().unwrap();
    let list = |extra: &[&str]| -> Vec<(String, String, String)> {
        let mut args = vec!["receipts", "--config", config];
        args.extend_from_slice(extra);
        cli_json(&args)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap().to_string();
                (s("site"), s("subject"), s("event"))
            })
            .collect()
    };
    let r = |site: &str, subject: &str, event: &str| {
        (site.to_string(), subject.to_string(), event.to_string())
    };
    assert_eq!(
        list(&["--site", "blog"]),
        [r("blog", "blog-1", "given"), r("blog", "blog-2", "given")]
    );
    assert_eq!(
        list(&["--site", "shop"]),
        [
            r("shop", "shop-1", "given"),
            r("shop", "shop-1", "withdrawn")
        ]
    );
    // --until is exclusive, --since inclusive: the receipt before `between`, then the rest.
    assert_eq!(list(&["--until", &between]), [r("shop", "shop-1", "given")]);
    assert_eq!(
        list(&["--since", &between, "--site", "shop"]),
        [r("shop", "shop-1", "withdrawn")]
    );
    assert_eq!(list(&["--site", "nowhere"]), []);

    // The report: one site's figures with --site, nothing before the traffic's hour.
    let report = |extra: &[&str]| -> Value {
        let mut args = vec!["report", "--config", config, "--format", "json"];
        args.extend_from_slice(extra);
        cli_json(&args)
    };
    let mut blog_only = Value::Null;
    eventually("the aggregates of both sites written", || {
        blog_only = report(&["--since", "2000-01-01", "--site", "blog"]);
        let all = report(&["--since", "2000-01-01"]);
        blog_only["sites"]["blog"]["requests_by_consent"]["total"] == 4
            && all["sites"]["shop"]["requests_by_consent"]["total"] == 2
    });
    assert_eq!(
        blog_only["sites"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["blog"],
        "{blog_only:#}"
    );
    assert_eq!(blog_only["site"], "blog");
    assert_eq!(blog_only["receipts"]["total"], 2, "{blog_only:#}");
    assert!(
        blog_only["inventory"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["site"] == "blog"),
        "{blog_only:#}"
    );
    let shop_only = report(&["--since", "2000-01-01", "--site", "shop"]);
    assert_eq!(
        shop_only["sites"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["shop"]
    );
    assert_eq!(
        shop_only["receipts"]["by_event"],
        serde_json::json!({"given": 1, "withdrawn": 1})
    );
    // --until: receipts by their time, aggregates by their hour (an hour counts when it
    // starts before --until).
    let until_between = report(&["--since", "2000-01-01", "--until", &between]);
    assert_eq!(until_between["receipts"]["total"], 1, "{until_between:#}");
    let before = report(&["--since", "2000-01-01", "--until", &hour_before]);
    assert_eq!(before["sites"], serde_json::json!({}), "{before:#}");
    assert_eq!(before["inventory"], serde_json::json!([]), "{before:#}");
    assert_eq!(before["receipts"]["total"], 0);
    assert_eq!(before["instances"], serde_json::json!([]));
    // Without --until the period ends now (the hour in progress is in it: it starts before).
    let (t0, v, t1) = (now(), report(&["--since", "2000-01-01"]), now());
    let until = v["until"].as_str().unwrap();
    assert!(
        t0.as_str() <= until && until <= t1.as_str(),
        "{t0} {until} {t1}"
    );
    assert_eq!(v["sites"]["shop"]["requests_by_consent"]["total"], 2);
}

/// The cookie inventory counts of `report` cover its period: rows written as the writer
/// writes them (increases since its last write, with the cookie's first/last seen), in two
/// hours, by two instances, in SQLite and in PostgreSQL.
fn check_inventory_periods(target: consentgate::config::receipts::StoreTarget, config: &str) {
    use consentgate::receipts::store::{open, InventoryRow, Tally};
    let mut store = open(&target).unwrap();
    let row = |instance: &str, kept: i64, stripped: i64, first: &str, last: &str| InventoryRow {
        site: "shop".into(),
        name: "_ga".into(),
        instance: instance.into(),
        category: "analytics".into(),
        origin: "rule".into(),
        kept,
        stripped,
        first_seen: first.into(),
        last_seen: last.into(),
    };
    // 10:00-11:00: a sees _ga twice (two writes); 11:00-12:00: a and b see it.
    let mut add = |rows: Vec<InventoryRow>| {
        assert!(store.add_tally(&Tally::new("t", vec![], rows)).unwrap());
    };
    add(vec![row(
        "a",
        2,
        1,
        "2026-11-28T10:05:00.000Z",
        "2026-11-28T10:10:00.000Z",
    )]);
    add(vec![row(
        "a",
        3,
        0,
        "2026-11-28T10:05:00.000Z",
        "2026-11-28T10:50:00.000Z",
    )]);
    add(vec![
        row(
            "a",
            4,
            5,
            "2026-11-28T10:05:00.000Z",
            "2026-11-28T11:20:00.000Z",
        ),
        row(
            "b",
            10,
            20,
            "2026-11-28T11:01:00.000Z",
            "2026-11-28T11:40:00.000Z",
        ),
    ]);
    drop(store);
    let inventory = |since: &str, until: &str| -> Value {
        let args = [
            "report", "--config", config, "--since", since, "--until", until, "--format", "json",
        ];
        cli_json(&args)["inventory"].clone()
    };
    let counts = |v: &Value| -> Vec<(i64, i64, String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap().to_string();
                (
                    c["kept"].as_i64().unwrap(),
                    c["stripped"].as_i64().unwrap(),
                    s("first_seen"),
                    s("last_seen"),
                )
            })
            .collect()
    };
    let (first, last) = (
        "2026-11-28T10:05:00.000Z".to_string(),
        "2026-11-28T11:40:00.000Z".to_string(),
    );
    // First period: only a's two writes of 10:xx. First/last seen stay the cookie's own.
    assert_eq!(
        counts(&inventory("2026-11-28T10:00:00Z", "2026-11-28T11:00:00Z")),
        [(5, 1, first.clone(), last.clone())]
    );
    // Second period: a's and b's 11:xx counts, summed.
    assert_eq!(
        counts(&inventory("2026-11-28T11:00:00Z", "2026-11-28T12:00:00Z")),
        [(14, 25, first.clone(), last.clone())]
    );
    // Both, and a period with nothing.
    assert_eq!(
        counts(&inventory("2026-11-28", "2026-11-29")),
        [(19, 26, first, last)]
    );
    assert_eq!(
        inventory("2026-11-28T12:00:00Z", "2026-11-29"),
        serde_json::json!([])
    );
}

#[test]
fn report_inventory_counts_cover_the_period_in_sqlite_and_postgres() {
    let dir = TempDir::new("receipts-inventory");
    let db = dir.0.join("r.db");
    let config = dir.0.join("sqlite.toml");
    let proxy = "[proxy]\nlisten = [\"127.0.0.1:1\"]\nadmin = \"127.0.0.1:2\"\n";
    let shop = site("127.0.0.1:3".parse().unwrap());
    std::fs::write(
        &config,
        format!("{proxy}{shop}\n[receipts]\n{}", sqlite(&db, "")),
    )
    .unwrap();
    use consentgate::config::receipts::StoreTarget;
    check_inventory_periods(StoreTarget::Sqlite(db.clone()), config.to_str().unwrap());

    let pg = Postgres::start("inventory");
    let config = dir.0.join("pg.toml");
    let key = pg.dir().join("receipts.key");
    std::fs::write(
        &config,
        format!(
            "{proxy}{shop}\n[receipts]\n{}",
            pg_receipts(&pg, "x", &key, "")
        ),
    )
    .unwrap();
    check_inventory_periods(StoreTarget::Postgres(pg.url()), config.to_str().unwrap());
}

#[test]
fn sigterm_flushes_the_queue() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-flush");
    let db = dir.0.join("r.db");
    // Batches every hour: only the SIGTERM flush can write the receipt.
    let mut p = start(&o, &sqlite(&db, "batch_interval_ms = 3600000"));
    let c = onetrust(VISITOR, true, true, true);
    assert_eq!(p.get("/", &[("Cookie", &c)]).status, 200);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
    let mut exited = false;
    for _ in 0..200 {
        if p.child.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exited, "the proxy did not exit on SIGTERM");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM receipts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

fn pg_receipts(pg: &Postgres, instance: &str, key: &Path, extra: &str) -> String {
    format!(
        "url = \"{}\"\nkey_file = \"{}\"\ninstance = \"{instance}\"\nbatch_interval_ms = 20\naggregate_interval_seconds = 1\n{extra}",
        pg.url(),
        key.display()
    )
}

/// PostgreSQL's reasons reach the operator: `receipts` and `report` (and the run log) print the
/// server's message and where the connection went, never the password of the URL.
#[test]
fn postgres_errors_say_what_is_wrong_and_never_the_password() {
    let pg = Postgres::start("errors");
    let o = Origin::echo();
    let key = pg.dir().join("receipts.key");
    let closed = free_port();
    let cases = [
        (
            format!(
                "postgres://postgres:s3cret-pw@127.0.0.1:{}/no_such_db",
                pg.port
            ),
            vec![
                format!("127.0.0.1:{}", pg.port),
                "database \"no_such_db\" does not exist".to_string(),
            ],
        ),
        (
            format!("postgres://ghost:s3cret-pw@127.0.0.1:{}/postgres", pg.port),
            vec!["role \"ghost\" does not exist".to_string()],
        ),
        (
            format!("postgres://postgres:s3cret-pw@127.0.0.1:{closed}/postgres"),
            vec![
                format!("127.0.0.1:{closed}"),
                "Connection refused".to_string(),
            ],
        ),
    ];
    let dir = TempDir::new("receipts-pg-errors");
    for (n, (url, expected)) in cases.iter().enumerate() {
        let config = dir.0.join(format!("c{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "[proxy]\nlisten = [\"127.0.0.1:1\"]\nadmin = \"127.0.0.1:2\"\n{}\n[receipts]\nurl = \"{url}\"\nkey_file = \"{}\"\n",
                site(o.addr),
                key.display()
            ),
        )
        .unwrap();
        let config = config.to_str().unwrap();
        for args in [
            vec!["receipts", "--config", config],
            vec!["report", "--config", config, "--since", "2026-01-01"],
        ] {
            let (code, out, err) = run_cli(&args);
            assert_ne!(code, 0, "{args:?}: {out}");
            for text in expected {
                assert!(
                    err.contains(text.as_str()),
                    "{args:?}: {text} not in: {err}"
                );
            }
            assert!(!err.contains("s3cret-pw"), "{err}");
        }
    }
    // The run log says it too (the first failure of an outage is a warning).
    let url = &cases[0].0;
    let p = start(
        &o,
        &format!("url = \"{url}\"\nkey_file = \"{}\"", key.display()),
    );
    // The writer's warning (JSON lines): its `error` field.
    let logged = || -> Option<String> {
        let log = std::fs::read_to_string(&p.log).unwrap();
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["fields"]["message"] == "receipt store unavailable; receipts are kept and retried"
            })
            .map(|v| v["fields"]["error"].as_str().unwrap_or("").to_string())
    };
    eventually("the store's failure logged", || logged().is_some());
    let error = logged().unwrap();
    for text in &cases[0].1 {
        assert!(error.contains(text.as_str()), "{text} not in: {error}");
    }
    assert!(!std::fs::read_to_string(&p.log)
        .unwrap()
        .contains("s3cret-pw"));
}

#[test]
fn postgres_receipts_follow_a_visitor_with_a_valid_chain() {
    let pg = Postgres::start("story");
    let o = Origin::echo();
    let key = pg.dir().join("receipts.key");
    let p = start(&o, &pg_receipts(&pg, "edge-pg", &key, ""));
    let list = visitor_story(&p);
    check_story(&list, "edge-pg");
    let config = p.config.to_str().unwrap();
    let (code, out, err) = run_cli(&["receipts", "verify", "--config", config]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 receipts, chain valid"), "{out}");
    let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    client
        .execute(
            "UPDATE receipts SET event = 'given' WHERE seq = (SELECT MAX(seq) FROM receipts)",
            &[],
        )
        .unwrap();
    let (code, _, err) = run_cli(&["receipts", "verify", "--config", config]);
    assert_eq!(code, 1, "an edited row must fail verify");
    assert!(err.contains("edited"), "{err}");
}

/// `n` new visitors (a consent id each, `tag-i`) on `threads` connections at once; every
/// status.
fn visitors(addr: std::net::SocketAddr, tag: &str, threads: usize, n: usize) -> Vec<u16> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let tag = tag.to_string();
            std::thread::spawn(move || {
                (0..n / threads)
                    .map(|i| {
                        let c = onetrust(&format!("{tag}-{t}-{i}"), i % 2 == 0, true, false);
                        get(addr, "/", &[("Cookie", &c)]).status
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

fn dropped(p: &Proxy, reason: &str) -> f64 {
    p.metric("consentgate_receipts_dropped_total", &[("reason", reason)])
}

fn verify_ok(p: &Proxy, n: usize) {
    let config = p.config.to_str().unwrap();
    let (code, out, err) = run_cli(&["receipts", "verify", "--config", config]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{n} receipts, chain valid")), "{out}");
}

#[test]
fn store_frozen_under_load_requests_are_served_and_only_a_full_queue_drops() {
    let pg = Postgres::start("load");
    let o = Origin::echo();
    let key = pg.dir().join("receipts.key");
    let p = start(
        &o,
        &pg_receipts(
            &pg,
            "edge-load",
            &key,
            "queue_capacity = 50\nbatch_size = 10",
        ),
    );
    let c = onetrust(VISITOR, true, true, true);
    assert_eq!(p.get("/", &[("Cookie", &c)]).status, 200);
    p.expect_metric("consentgate_receipts_written_total", &[], 1.0);
    // Frozen, not stopped: connections stay open and nothing answers, as with a hung host.
    pg.freeze();
    // 400 new visitors, 8 at a time.
    let statuses = visitors(p.addr, "load", 8, 400);
    assert_eq!(statuses.len(), 400);
    assert!(statuses.iter().all(|s| *s == 200), "every request served");
    // The queue holds 50 receipts not yet written; only the other 350 are dropped, as
    // queue_full, and none for the store's sake.
    p.expect_metric(
        "consentgate_receipts_dropped_total",
        &[("reason", "queue_full")],
        350.0,
    );
    assert_eq!(dropped(&p, "store_error"), 0.0);
    assert_eq!(p.metric("consentgate_receipts_written_total", &[]), 1.0);
    assert_eq!(p.get("/", &[]).status, 200, "still serving after the burst");
    // The store answers again: the 50 held are written.
    pg.thaw();
    eventually("the held receipts written", || {
        p.metric("consentgate_receipts_written_total", &[]) == 51.0
    });
    // The dropped visitors' next requests write their receipts: the recorder forgot them when
    // they were dropped, and the 50 written are not written twice. In groups the queue can
    // hold, each written before the next.
    let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    let written: std::collections::HashSet<String> = client
        .query("SELECT subject FROM receipts", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(written.len(), 51);
    let ids: Vec<(String, bool)> = (0..8)
        .flat_map(|t| (0..50).map(move |i| (format!("load-{t}-{i}"), i % 2 == 0)))
        .collect();
    let mut expected = 51.0;
    for group in ids.chunks(40) {
        for (id, analytics) in group {
            let c = onetrust(id, *analytics, true, false);
            assert_eq!(p.get("/", &[("Cookie", &c)]).status, 200);
            if !written.contains(id) {
                expected += 1.0;
            }
        }
        p.expect_metric("consentgate_receipts_written_total", &[], expected);
    }
    p.expect_metric("consentgate_receipts_written_total", &[], 401.0);
    assert_eq!(
        dropped(&p, "queue_full"),
        350.0,
        "nothing dropped once the store answers"
    );
    verify_ok(&p, 401);
}

#[test]
fn a_brief_store_outage_loses_no_receipt() {
    let mut pg = Postgres::start("outage");
    let o = Origin::echo();
    let key = pg.dir().join("receipts.key");
    let p = start(&o, &pg_receipts(&pg, "edge-outage", &key, ""));
    let c = onetrust(VISITOR, true, true, true);
    assert_eq!(p.get("/", &[("Cookie", &c)]).status, 200);
    p.expect_metric("consentgate_receipts_written_total", &[], 1.0);
    pg.stop();
    let statuses = visitors(p.addr, "outage", 3, 30);
    assert!(statuses.iter().all(|s| *s == 200), "every request served");
    eventually("the writer finds the store down", || {
        p.metric(
            "consentgate_receipt_store_errors_total",
            &[("op", "connect")],
        ) > 0.0
    });
    pg.restart();
    eventually("every receipt written after the store returns", || {
        p.metric("consentgate_receipts_written_total", &[]) == 31.0
    });
    for reason in ["queue_full", "store_error", "writer_stopped"] {
        assert_eq!(dropped(&p, reason), 0.0, "{reason}");
    }
    verify_ok(&p, 31);
}

/// The requests `report` counts for site shop, summed over instances.
fn reported_requests(config: &str) -> i64 {
    report_json(config)["sites"]["shop"]["requests_by_consent"]["total"]
        .as_i64()
        .unwrap_or(0)
}

/// Waits for `report` to count exactly `n` requests (never more), then for a few more
/// aggregate writes (one a second) to check that it stays there.
#[track_caller]
fn expect_reported(config: &str, n: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = reported_requests(config);
        assert!(
            got <= n,
            "{got} requests reported, {n} served: counted twice"
        );
        if got == n {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{got} requests reported, {n} served: counts lost"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        reported_requests(config),
        n,
        "later writes changed the count"
    );
}

#[test]
fn aggregates_count_every_request_served_through_a_store_outage_and_a_freeze() {
    let mut pg = Postgres::start("agg-outage");
    let o = Origin::echo();
    let key = pg.dir().join("receipts.key");
    // Requests without a consent cookie: no receipts, so every store job is an aggregate
    // write (one a second).
    let p = start(&o, &pg_receipts(&pg, "edge-agg", &key, ""));
    let config = p.config.to_str().unwrap();
    let serve = |n: usize| {
        for _ in 0..n {
            assert_eq!(p.get("/", &[]).status, 200);
        }
    };
    let errors = |op: &str| p.metric("consentgate_receipt_store_errors_total", &[("op", op)]);
    // The store thread creates the tables when it first connects, just after the start;
    // `report` refuses a database without them.
    eventually("the store's tables created", || {
        let args = ["report", "--config", config, "--since", "2000-01-01"];
        run_cli(&args).0 == 0
    });
    serve(5);
    expect_reported(config, 5);
    // Stopped: each aggregate write of the outage fails to connect.
    pg.stop();
    serve(8);
    eventually("aggregate writes refused", || errors("connect") >= 3.0);
    serve(13);
    pg.restart();
    expect_reported(config, 26);
    // Frozen: an aggregate write hangs; past the store timeout (15 s) a new connection takes
    // it, and once the server runs again the given-up one may still write it too.
    pg.freeze();
    serve(6);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while errors("timeout") < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the frozen store's write not given up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    serve(4);
    pg.thaw();
    expect_reported(config, 36);
    p.expect_metric("consentgate_requests_total", &[("consent", "none")], 36.0);
}

#[test]
fn sigterm_with_the_store_frozen_still_exits_in_bounded_time() {
    let pg = Postgres::start("frozen-exit");
    let o = Origin::echo();
    let key = pg.dir().join("receipts.key");
    let mut p = start(&o, &pg_receipts(&pg, "edge-exit", &key, ""));
    let c = onetrust(VISITOR, true, true, true);
    assert_eq!(p.get("/", &[("Cookie", &c)]).status, 200);
    p.expect_metric("consentgate_receipts_written_total", &[], 1.0);
    pg.freeze();
    let c = onetrust("after-freeze", true, false, false);
    assert_eq!(p.get("/", &[("Cookie", &c)]).status, 200);
    let t = std::time::Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
    while p.child.try_wait().unwrap().is_none() {
        assert!(
            // The flush waits 5 s at most, within the shutdown's grace period and timeout
            // (1 s each here).
            t.elapsed() < Duration::from_secs(8),
            "the proxy did not exit on SIGTERM with the store frozen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The shop site with two jurisdiction rules (US-CA opt-out, everywhere else opt-in, which
/// also takes visitors whose location is unknown), and the location headers it reads.
fn jurisdiction_site(origin: std::net::SocketAddr) -> String {
    format!(
        "{}\n[[site.jurisdiction]]\nname = \"us-optout\"\nregions = [\"US-CA\"]\nmodel = \"opt-out\"\n[[site.jurisdiction]]\nname = \"eu\"\nregions = [\"*\"]\nmodel = \"opt-in\"\n",
        site(origin)
    )
}

const GEO: &str =
    "[proxy.geo]\ncountry_header = \"CF-IPCountry\"\nregion_header = \"cf-region-code\"\n";

#[test]
fn two_instances_sharing_postgres_report_their_sum() {
    let pg = Postgres::start("fleet");
    let o = Origin::echo();
    let key = pg.dir().join("receipts.key");
    let instance = |name: &str| {
        let receipts = pg_receipts(&pg, name, &key, "");
        Proxy::start_with(
            &format!("{}\n[receipts]\n{receipts}\n", jurisdiction_site(o.addr)),
            GEO,
        )
    };
    let a = instance("edge-a");
    let b = instance("edge-b");
    for _ in 0..5 {
        assert_eq!(a.get("/", &[]).status, 200);
    }
    for _ in 0..7 {
        assert_eq!(b.get("/", &[("Cookie", "mystery=1")]).status, 200);
    }
    // Located visitors: three in California on a, two in Germany on b.
    for _ in 0..3 {
        let ca = [("CF-IPCountry", "US"), ("cf-region-code", "CA")];
        assert_eq!(a.get("/", &ca).status, 200);
    }
    for _ in 0..2 {
        assert_eq!(b.get("/", &[("CF-IPCountry", "DE")]).status, 200);
    }
    // One visitor on each instance: one chain across both.
    assert_eq!(
        a.get("/", &[("Cookie", &onetrust("visitor-a", true, true, true))])
            .status,
        200
    );
    assert_eq!(
        b.get(
            "/",
            &[("Cookie", &onetrust("visitor-b", false, false, true))]
        )
        .status,
        200
    );
    a.expect_metric("consentgate_receipts_written_total", &[], 1.0);
    b.expect_metric("consentgate_receipts_written_total", &[], 1.0);
    let config = a.config.to_str().unwrap();
    let mut report = Value::Null;
    eventually("both instances' aggregates in the report", || {
        report = report_json(config);
        let inventory = report["inventory"].as_array().cloned().unwrap_or_default();
        let shop = &report["sites"]["shop"];
        shop["requests_by_consent"]["total"] == 19
            && shop["requests_by_jurisdiction"]["total"] == 19
            && inventory
                .iter()
                .any(|r| r["name"] == "mystery" && r["stripped"] == 7)
    });
    let shop = &report["sites"]["shop"];
    // Requests by jurisdiction, summed over both instances: the rule and why it applied.
    assert_eq!(
        shop["requests_by_jurisdiction"]["rows"],
        serde_json::json!([
            { "jurisdiction": "eu", "reason": "matched", "count": 2 },
            { "jurisdiction": "eu", "reason": "unknown_location", "count": 14 },
            { "jurisdiction": "us-optout", "reason": "matched", "count": 3 },
        ]),
        "{report:#}"
    );
    // Every counter the report tabulates keeps its site: none falls into other_metrics.
    for m in report["other_metrics"].as_array().unwrap() {
        assert_ne!(
            m["metric"], "consentgate_jurisdiction_requests_total",
            "{m}"
        );
        assert!(m["labels"].is_object(), "{m}");
    }
    // Rows are objects of label fields: the list is a field of its own, not part of a key.
    for row in shop["blocked_requests"]["rows"].as_array().unwrap() {
        assert!(row["list"].is_string() && row["count"].is_i64(), "{row}");
    }
    // The live cookie inventory of both instances, persisted and summed: the unknown cookie
    // only instance b saw, the consent cookie both saw once.
    let inventory = report["inventory"].as_array().unwrap();
    let row = |name: &str| inventory.iter().find(|r| r["name"] == name).unwrap();
    assert_eq!(row("mystery")["category"], "unknown");
    assert_eq!(row("mystery")["kept"], 0);
    assert_eq!(row("OptanonConsent")["category"], "necessary");
    assert_eq!(row("OptanonConsent")["origin"], "consent-cookie");
    assert_eq!(row("OptanonConsent")["kept"], 2);
    assert_eq!(report["instances"], serde_json::json!(["edge-a", "edge-b"]));
    assert_eq!(report["receipts"]["total"], 2);
    assert_eq!(
        shop["unknown_cookies"]["rows"],
        serde_json::json!([{ "name": "mystery", "count": 7 }])
    );
    let (code, out, err) = run_cli(&["receipts", "verify", "--config", config]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 receipts, chain valid"), "{out}");
    let html = report_html(config);
    assert!(html.contains("<h2>Site shop</h2>") && html.contains("<svg"));
    assert!(html.contains("edge-a, edge-b"));
    assert!(
        html.contains("<th>jurisdiction</th><th>reason</th><th>count</th>")
            && html.contains("<td>us-optout</td><td>matched</td><td class=\"n\">3</td>")
            && html.contains("<td>eu</td><td>unknown_location</td><td class=\"n\">14</td>"),
        "{html}"
    );
    // Self-contained: nothing loaded from anywhere.
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
}

#[test]
fn gpc_taking_back_marketing_is_a_gpc_applied_receipt_and_store_signal_keeps_the_value() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-gpc");
    let db = dir.0.join("r.db");
    let p = start(
        &o,
        &sqlite(&db, "batch_interval_ms = 20\nstore_signal = true"),
    );
    let c = onetrust(VISITOR, true, false, true);
    assert_eq!(p.get("/", &[("Cookie", &c)]).status, 200);
    p.expect_metric("consentgate_receipts_written_total", &[], 1.0);
    // The same cookie with Sec-GPC: the site's default GPC policy refuses marketing.
    assert_eq!(p.get("/", &[("Cookie", &c), ("Sec-GPC", "1")]).status, 200);
    p.expect_metric("consentgate_receipts_written_total", &[], 2.0);
    let list = cli_json(&["receipts", "--config", p.config.to_str().unwrap()]);
    let list = list.as_array().unwrap();
    assert_eq!(list[1]["event"], "gpc-applied");
    assert_eq!(list[1]["source"], "onetrust:OptanonConsent,header:Sec-GPC");
    assert_eq!(
        list[1]["granted"],
        serde_json::json!(["necessary", "analytics"])
    );
    // store_signal = true: the raw value, and its hash is the hash of that value.
    let signal = list[0]["signal"].as_str().unwrap();
    assert_eq!(signal, c);
    assert_eq!(
        sha256sum(signal),
        list[0]["signal_sha256"].as_str().unwrap()
    );
    assert_chain(list);
}

#[test]
fn a_receipt_carries_the_visitors_jurisdiction() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-jurisdiction");
    let db = dir.0.join("r.db");
    let config = format!(
        "{}\n[[site.jurisdiction]]\nname = \"us-optout\"\nregions = [\"US-CA\"]\nmodel = \"opt-out\"\n\n[receipts]\npath = \"{}\"\nbatch_interval_ms = 20\n",
        site(o.addr),
        db.display()
    );
    let geo =
        "[proxy.geo]\ncountry_header = \"CF-IPCountry\"\nregion_header = \"cf-region-code\"\n";
    let p = Proxy::start_with(&config, geo);
    let c = onetrust(VISITOR, true, false, false);
    let ca = [
        ("Cookie", c.as_str()),
        ("CF-IPCountry", "US"),
        ("cf-region-code", "CA"),
    ];
    assert_eq!(p.get("/", &ca).status, 200);
    p.expect_metric("consentgate_receipts_written_total", &[], 1.0);
    let list = cli_json(&["receipts", "--config", p.config.to_str().unwrap()]);
    assert_eq!(list[0]["jurisdiction"], "us-optout");
    // OneTrust's explicit refusals win in opt-out too.
    assert_eq!(
        list[0]["granted"],
        serde_json::json!(["necessary", "analytics"])
    );
}

/// A vector of tests/fixtures/consent/FILE.jsonl (real values, provenance in each line).
fn vector(file: &str, name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("consent/{file}.jsonl"))).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name} in {file}.jsonl"))
}

/// A SQLite-backed proxy whose site reads `consent` (keys of `[site.consent]` and its tables)
/// and keeps the raw signal.
fn start_with_consent(o: &Origin, db: &Path, consent: &str, proxy_extra: &str) -> Proxy {
    let site = shop_site(o.addr, &format!("[site.consent]\n{consent}\n"));
    Proxy::start_with(
        &format!(
            "{site}\n[receipts]\n{}\n",
            sqlite(db, "batch_interval_ms = 20\nstore_signal = true")
        ),
        proxy_extra,
    )
}

#[test]
fn app_consent_headers_name_their_own_subjects_and_signals() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-headers");
    let db = dir.0.join("r.db");
    let consent = "sources = [\"first-party\"]\n[[site.consent.header]]\nname = \"X-Consent\"\nformat = \"first-party\"\n[[site.consent.header]]\nname = \"X-TCF-Consent\"\nformat = \"tcf\"\n";
    let p = start_with_consent(&o, &db, consent, "");
    // Two apps with different choices: two subjects.
    assert_eq!(p.get("/", &[("X-Consent", "analytics")]).status, 200);
    assert_eq!(
        p.get("/", &[("X-Consent", "analytics,marketing")]).status,
        200
    );
    p.expect_metric("consentgate_receipts_written_total", &[], 2.0);
    // A third app sending the first one's value is the same subject (a keyed hash of the
    // value: nothing else tells the two apart): no new receipt.
    assert_eq!(p.get("/", &[("X-Consent", "analytics")]).status, 200);
    // An app's stored TC string (a real one, from Didomi on getpurpose.ai).
    let tc = vector("tcf", "didomi-getpurpose-accept");
    let tc_string = tc["cookie"]
        .as_str()
        .unwrap()
        .strip_prefix("euconsent-v2=")
        .unwrap()
        .to_string();
    assert_eq!(p.get("/", &[("X-TCF-Consent", &tc_string)]).status, 200);
    p.expect_metric("consentgate_receipts_written_total", &[], 3.0);
    let list = cli_json(&["receipts", "--config", p.config.to_str().unwrap()]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    let (a, b, t) = (&list[0], &list[1], &list[2]);
    assert_eq!(a["source"], "first-party:header:x-consent");
    assert_eq!(t["source"], "tcf:header:x-tcf-consent");
    for r in list {
        assert_eq!(r["subject_type"], "keyed-hash");
        assert_eq!(r["event"], "given");
    }
    assert_ne!(a["subject"], b["subject"]);
    assert_ne!(a["subject"], t["subject"]);
    assert_eq!(a["granted"], serde_json::json!(["necessary", "analytics"]));
    assert_eq!(
        b["granted"],
        serde_json::json!(["necessary", "analytics", "marketing"])
    );
    // The signal is the header as sent (`name: value`) and its hash is the hash of exactly
    // that, recomputed here with sha256sum.
    let expect_signal = |r: &Value, text: &str| {
        assert_eq!(r["signal"], text);
        assert_eq!(r["signal_sha256"], sha256sum(text), "{r}");
    };
    expect_signal(a, "x-consent: analytics");
    expect_signal(b, "x-consent: analytics,marketing");
    expect_signal(t, &format!("x-tcf-consent: {tc_string}"));
    // What the IAB reference decoder reads from that TC string (the vector's `expect`).
    let granted: Vec<&str> = t["granted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for c in ["analytics", "marketing", "preferences"] {
        assert_eq!(granted.contains(&c), tc["expect"][c] == true, "{c}: {t}");
    }
    assert_chain(list);
}

/// Every cookie a source decides from is part of the signal, and so of its hash and of the
/// keyed-hash subject: GPP's `__gpp_sid` (which sections apply), a second TCF cookie (the most
/// restrictive copy wins), Complianz's category cookies (and not its other `cmplz_` cookies).
/// Under an opt-out rule each pair below is the same main cookie with different decisions.
#[test]
fn every_cookie_a_source_decides_from_is_in_the_signal_and_the_subject() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-signal-cookies");
    let db = dir.0.join("r.db");
    let consent = "sources = [\"gpp\", \"tcf\", \"complianz\"]\n[[site.jurisdiction]]\nname = \"us\"\nregions = [\"*\"]\nmodel = \"opt-out\"\n";
    let p = start_with_consent(&o, &db, consent, "");
    let tc = |name: &str| {
        let v = vector("tcf", name);
        let cookie = v["cookie"].as_str().unwrap();
        cookie.split_once('=').unwrap().1.to_string()
    };
    let (accept, reject) = (tc("didomi-getpurpose-accept"), tc("ubo-reject-cmp6"));
    // (the Cookie header sent, the signal: every cookie read, in request order)
    let cases = [
        (
            "__gpp=DBABBg~BVWSSSVY; __gpp_sid=8".to_string(),
            "__gpp=DBABBg~BVWSSSVY; __gpp_sid=8".to_string(),
        ),
        (
            "__gpp=DBABBg~BVWSSSVY; __gpp_sid=7".to_string(),
            "__gpp=DBABBg~BVWSSSVY; __gpp_sid=7".to_string(),
        ),
        (
            format!("euconsent-v2={accept}"),
            format!("euconsent-v2={accept}"),
        ),
        (
            format!("euconsent-v2={accept}; eupubconsent-v2={reject}"),
            format!("euconsent-v2={accept}; eupubconsent-v2={reject}"),
        ),
        (
            "cmplz_statistics=allow; cmplz_banner-status=dismissed; cmplz_marketing=deny"
                .to_string(),
            "cmplz_statistics=allow; cmplz_marketing=deny".to_string(),
        ),
        (
            "cmplz_statistics=deny; cmplz_banner-status=dismissed; cmplz_marketing=deny"
                .to_string(),
            "cmplz_statistics=deny; cmplz_marketing=deny".to_string(),
        ),
    ];
    for (n, (cookie, _)) in cases.iter().enumerate() {
        assert_eq!(p.get("/", &[("Cookie", cookie)]).status, 200);
        p.expect_metric("consentgate_receipts_written_total", &[], n as f64 + 1.0);
    }
    let list = cli_json(&["receipts", "--config", p.config.to_str().unwrap()]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), cases.len(), "{list:?}");
    // The subject is the HMAC of the signal under the key file beside the store.
    let key = std::fs::read(dir.0.join("r.db.key")).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    for (r, (_, signal)) in list.iter().zip(&cases) {
        assert_eq!(r["signal"], *signal);
        assert_eq!(r["signal_sha256"], sha256sum(signal), "{r}");
        assert_eq!(r["subject_type"], "keyed-hash");
        let tag = ring::hmac::sign(&key, signal.as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(r["subject"], hex, "{r}");
        assert_eq!(r["event"], "given");
    }
    for pair in list.chunks(2) {
        assert_ne!(pair[0]["granted"], pair[1]["granted"], "{pair:?}");
        assert_ne!(pair[0]["subject"], pair[1]["subject"]);
    }
    assert_eq!(
        list[0]["granted"],
        serde_json::json!(["necessary", "preferences", "analytics"]),
        "usca applies under __gpp_sid=8: its sale opt-out refuses marketing"
    );
    assert_eq!(list[0]["source"], "gpp:__gpp");
    assert_chain(list);
}

#[test]
fn cookiebot_didomi_and_cookieyes_consent_ids_are_the_subjects() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-cmp-ids");
    let db = dir.0.join("r.db");
    let p = start_with_consent(
        &o,
        &db,
        "sources = [\"cookiebot\", \"didomi\", \"cookieyes\"]\n",
        "",
    );
    // Real cookies as the CMPs wrote them; each id read off the cookie text by hand.
    let cases = [
        (
            vector("cookiebot", "captured-reject-lingos-pl"),
            "cookiebot:CookieConsent",
            // stamp:'f+7ywpRuvGmFIujhI+oEbPugblwcsBmNcpD/7RUUNZKavIMY97rzhQ=='
            "f+7ywpRuvGmFIujhI+oEbPugblwcsBmNcpD/7RUUNZKavIMY97rzhQ==",
        ),
        (
            vector("didomi", "leboncoin-token-default-table"),
            "didomi:didomi_token",
            // base64 -d of the token: {"user_id":"18d4c7e8-...","created":...
            "18d4c7e8-2f00-6aab-8387-c07446d4aa04",
        ),
        (
            vector("cookieyes", "captured-accept-all"),
            "cookieyes:cookieyes-consent",
            // consentid:d2JnOWNtWmgyM0pMdEU0ZkZXSGhzdE9BaTkxekF3WEk,...
            "d2JnOWNtWmgyM0pMdEU0ZkZXSGhzdE9BaTkxekF3WEk",
        ),
    ];
    for (v, _, _) in &cases {
        let cookie = v["cookie"].as_str().unwrap();
        assert_eq!(p.get("/", &[("Cookie", cookie)]).status, 200);
    }
    p.expect_metric("consentgate_receipts_written_total", &[], 3.0);
    let list = cli_json(&["receipts", "--config", p.config.to_str().unwrap()]);
    let list = list.as_array().unwrap();
    for (r, (v, source, id)) in list.iter().zip(&cases) {
        assert_eq!(r["subject"], *id, "{}", v["name"]);
        assert_eq!(r["subject_type"], "cmp-id");
        assert_eq!(r["source"], *source);
        assert_eq!(r["signal"], v["cookie"]);
        assert_eq!(r["signal_sha256"], sha256sum(v["cookie"].as_str().unwrap()));
    }
    // `--subject` finds a visitor's history by the CMP's own id.
    let one = cli_json(&[
        "receipts",
        "--config",
        p.config.to_str().unwrap(),
        "--subject",
        "18d4c7e8-2f00-6aab-8387-c07446d4aa04",
    ]);
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_chain(list);
}

#[test]
fn an_ipv6_client_is_kept_as_its_48() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-ipv6");
    let db = dir.0.join("r.db");
    // Behind a trusted balancer that names the client in X-Forwarded-For.
    let p = start_with_consent(
        &o,
        &db,
        "sources = [\"onetrust\"]\n",
        "trusted_proxies = [\"127.0.0.1/32\"]\n",
    );
    let c = onetrust(VISITOR, true, false, false);
    let headers = [
        ("Cookie", c.as_str()),
        ("X-Forwarded-For", "2001:db8:1234:5678:9abc:def0:1234:5678"),
    ];
    assert_eq!(p.get("/", &headers).status, 200);
    p.expect_metric("consentgate_receipts_written_total", &[], 1.0);
    let list = cli_json(&["receipts", "--config", p.config.to_str().unwrap()]);
    assert_eq!(list[0]["client_network"], "2001:db8:1234::/48");
    let text = list.to_string();
    assert!(
        !text.contains("2001:db8:1234:5678") && !text.contains("127.0.0"),
        "no raw address: {text}"
    );
}

#[test]
fn an_edited_blocklist_changes_the_policy_version_after_a_reload() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-policy");
    let db = dir.0.join("r.db");
    let list = dir.0.join("analytics.txt");
    std::fs::write(&list, "||tracker.example^\n").unwrap();
    let config = format!(
        "{}\n[receipts]\n{}\n",
        analytics_list_site("shop", o.addr, list.to_str().unwrap()),
        sqlite(&db, "batch_interval_ms = 20")
    );
    let p = Proxy::start(&config);
    let versions = |n: usize| -> Vec<String> {
        p.expect_metric("consentgate_receipts_written_total", &[], n as f64);
        let list = cli_json(&["receipts", "--config", p.config.to_str().unwrap()]);
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| r["policy_version"].as_str().unwrap().to_string())
            .collect()
    };
    // First-party consent cookies: each value its own subject, so each a receipt.
    let visit = |c: &str| assert_eq!(p.get("/", &[("Cookie", c)]).status, 200);
    visit("consent=analytics");
    let v = versions(1);
    // Reloaded with the same files: the same policy.
    assert_eq!(p.reload().0, 200);
    visit("consent=analytics,marketing");
    let v2 = versions(2);
    assert_eq!(v2[1], v[0]);
    // The list edited under the same name: after the reload, a new policy version.
    std::fs::write(&list, "||tracker.example^\n||other-tracker.example^\n").unwrap();
    assert_eq!(p.reload().0, 200);
    visit("consent=analytics,preferences");
    let v3 = versions(3);
    assert_ne!(v3[2], v[0]);
    assert_eq!(v3[2].len(), 64);
}

#[test]
fn postgres_retention_deletes_only_a_leading_range_of_the_chain() {
    use consentgate::receipts::store::{postgres::PgStore, Filter, Store};
    let pg = Postgres::start("retention");
    let mut store = PgStore::connect(&pg.url()).unwrap();
    let receipt = |id: &str, time: &str| consentgate::receipts::Receipt {
        instance: "edge".into(),
        ..consentgate::receipts::Receipt::sample(id, &format!("subject-{id}"), time)
    };
    // Written in this order by instances whose clocks disagree: receipt 3 is stamped before
    // receipt 2, which it follows in the chain.
    let batch = vec![
        receipt("1", "2020-01-01T00:00:00.000Z"),
        receipt("2", "2025-06-01T00:00:00.000Z"),
        receipt("3", "2020-01-02T00:00:00.000Z"),
        receipt("4", "2025-06-02T00:00:00.000Z"),
    ];
    assert_eq!(store.insert_receipts(batch).unwrap(), 4);
    store.purge("2025-01-01T00:00:00.000Z").unwrap();
    let left = store.receipts(&Filter::default()).unwrap();
    let ids: Vec<&str> = left.iter().map(|(_, r)| r.receipt_id.as_str()).collect();
    assert_eq!(
        ids,
        ["2", "3", "4"],
        "only the leading expired receipt goes"
    );
    let (start, chain) = store.chain().unwrap();
    assert_eq!(chain, left);
    assert_eq!(
        consentgate::receipts::verify_chain(&start, left),
        (3, vec![])
    );
    // The anchor is the receipt deleted: removing the next one by hand is found.
    assert!(
        matches!(
            &start,
            consentgate::receipts::ChainStart::After { seq: 1, .. }
        ),
        "{start:?}"
    );
    store
        .client()
        .execute("DELETE FROM receipts WHERE receipt_id = '2'", &[])
        .unwrap();
    let (start, chain) = store.chain().unwrap();
    let (_, problems) = consentgate::receipts::verify_chain(&start, chain);
    assert!(
        problems[0].problem.starts_with("first receipt(s) missing"),
        "{problems:?}"
    );
}

/// An OptanonConsent value as OneTrust writes it for a US opt-out visitor who turned off
/// "sale of personal data" (C0004) and was asked nothing else: no other optional group.
fn onetrust_marketing_off(id: &str) -> String {
    format!(
        "OptanonConsent=isGpcEnabled=0&datestamp=Sat+Nov+28+2026+19%3A12%3A31+GMT%2B0100&version=202409.1.0&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId={id}&interactionCount=1&isAnonUser=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0004%3A0&AwaitingReconsent=false"
    )
}

/// usnat (section 7) with SaleOptOut = 1 and a GPC sub-section saying false
/// (tests/fixtures/gpp/vectors.json holds its siblings from the IAB reference libraries).
const GPP_USNAT_SALE_OPT_OUT: &str = "DBABLA~BVQVAAAAAgA.QA";

/// Issue 11 with issue 12: under an opt-out or `off` rule the decision grants more than the
/// consent sources did, and that is the jurisdiction's model, not GPC. `gpc-applied` is only
/// ever written when `Sec-GPC: 1` was sent and took something back.
#[test]
fn opt_out_and_off_rules_write_given_and_only_a_sent_gpc_is_gpc_applied() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-models");
    let db = dir.0.join("r.db");
    let site = shop_site(
        o.addr,
        "[site.consent]\nsources = [\"onetrust\", \"gpp\"]\n\
         [[site.jurisdiction]]\nname = \"us-optout\"\nregions = [\"US-CA\"]\nmodel = \"opt-out\"\n\
         [[site.jurisdiction]]\nname = \"us-off\"\nregions = [\"US-NY\"]\nmodel = \"off\"\n\
         [[site.jurisdiction]]\nname = \"eu\"\nregions = [\"*\"]\nmodel = \"opt-in\"\n",
    );
    let p = Proxy::start_with(
        &format!(
            "{site}\n[receipts]\n{}\n",
            sqlite(&db, "batch_interval_ms = 20")
        ),
        GEO,
    );
    let visit = |region: &str, cookie: &str, gpc: bool| {
        let mut h = vec![
            ("CF-IPCountry", "US"),
            ("cf-region-code", region),
            ("Cookie", cookie),
        ];
        if gpc {
            h.push(("Sec-GPC", "1"));
        }
        assert_eq!(p.get("/", &h).status, 200);
    };
    let ca = |cookie: &str, gpc: bool| visit("CA", cookie, gpc);
    // OneTrust, marketing refused, no Sec-GPC: the opt-out model grants the rest.
    ca(&onetrust_marketing_off("ot-optout"), false);
    // The same visitor adding Sec-GPC: marketing was refused already, nothing changes.
    ca(&onetrust_marketing_off("ot-optout"), true);
    // A GPP sale opt-out, no Sec-GPC.
    ca(
        &format!("__gpp={GPP_USNAT_SALE_OPT_OUT}; __gpp_sid=7"),
        false,
    );
    // Everything granted in the cookie, Sec-GPC takes marketing back.
    ca(&onetrust("ot-gpc", true, true, true), true);
    // A visitor who granted everything turns marketing off: updated.
    ca(&onetrust("ot-change", true, true, true), false);
    ca(&onetrust_marketing_off("ot-change"), false);
    // An `off` rule, with and without Sec-GPC: no gating, GPC takes nothing.
    let ny = |cookie: &str, gpc: bool| visit("NY", cookie, gpc);
    ny(&onetrust_marketing_off("ot-off"), false);
    ny(&onetrust_marketing_off("ot-off-gpc"), true);
    p.expect_metric("consentgate_receipts_written_total", &[], 7.0);
    let list = cli_json(&["receipts", "--config", p.config.to_str().unwrap()]);
    let list = list.as_array().unwrap();
    let got: Vec<(String, String, String, Value)> = list
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            let subject = if s("subject_type") == "cmp-id" {
                s("subject")
            } else {
                "(gpp hash)".to_string()
            };
            (subject, s("jurisdiction"), s("event"), r["granted"].clone())
        })
        .collect();
    let row = |s: &str, jur: &str, e: &str, g: Value| (s.into(), jur.into(), e.into(), g);
    assert_eq!(
        got,
        [
            row(
                "ot-optout",
                "us-optout",
                "given",
                serde_json::json!(["necessary", "preferences", "analytics"])
            ),
            row(
                "(gpp hash)",
                "us-optout",
                "given",
                serde_json::json!(["necessary", "preferences", "analytics"])
            ),
            row(
                "ot-gpc",
                "us-optout",
                "gpc-applied",
                serde_json::json!(["necessary", "preferences", "analytics"])
            ),
            row(
                "ot-change",
                "us-optout",
                "given",
                serde_json::json!(["necessary", "preferences", "analytics", "marketing"])
            ),
            row(
                "ot-change",
                "us-optout",
                "updated",
                serde_json::json!(["necessary", "preferences", "analytics"])
            ),
            row(
                "ot-off",
                "us-off",
                "given",
                serde_json::json!(["necessary", "preferences", "analytics", "marketing"])
            ),
            row(
                "ot-off-gpc",
                "us-off",
                "given",
                serde_json::json!(["necessary", "preferences", "analytics", "marketing"])
            ),
        ],
        "{list:#?}"
    );
    assert_eq!(list[1]["source"], "gpp:__gpp");
    assert_eq!(list[2]["source"], "onetrust:OptanonConsent,header:Sec-GPC");
    assert_eq!(list[6]["source"], "onetrust:OptanonConsent,header:Sec-GPC");
}

/// Deleting the first receipt(s) by hand is found by `verify`; retention's purge is not
/// tampering (the chain anchor, docs/RECEIPTS.md). `sql` runs statements on the store the
/// proxy `p` writes to; `purge` is the writer's retention with this cutoff.
fn check_first_receipts_deleted(p: &Proxy, mut sql: impl FnMut(&str), purge: impl FnOnce(&str)) {
    let list = visitor_story(p);
    let config = p.config.to_str().unwrap();
    let verify = || run_cli(&["receipts", "verify", "--config", config]);
    let expect_valid = |n: usize| {
        let (code, out, err) = verify();
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&format!("{n} receipts, chain valid")), "{out}");
    };
    let expect_missing = || {
        let (code, _, err) = verify();
        assert_eq!(code, 1, "deleting the first receipt(s) must fail verify");
        assert!(err.contains("first receipt(s) missing"), "{err}");
    };
    expect_valid(3);
    // Nothing purged yet: the first receipt must follow 64 zeros.
    sql("CREATE TABLE saved AS SELECT * FROM receipts WHERE seq = (SELECT MIN(seq) FROM receipts); \
         DELETE FROM receipts WHERE seq = (SELECT seq FROM saved)");
    expect_missing();
    sql("INSERT INTO receipts SELECT * FROM saved; DROP TABLE saved");
    expect_valid(3);
    // Retention deletes the first receipt: the anchor records it, the chain still verifies.
    purge(list[1]["event_time"].as_str().unwrap());
    expect_valid(2);
    // Then the first remaining one deleted by hand: missing.
    sql("DELETE FROM receipts WHERE seq = (SELECT MIN(seq) FROM receipts)");
    expect_missing();
}

#[test]
fn sqlite_verify_detects_deleted_first_receipts_and_retention_still_verifies() {
    let o = Origin::echo();
    let dir = TempDir::new("receipts-first-sqlite");
    let db = dir.0.join("receipts.db");
    let p = start(&o, &sqlite(&db, "batch_interval_ms = 20"));
    let conn = rusqlite::Connection::open(&db).unwrap();
    check_first_receipts_deleted(
        &p,
        |sql| conn.execute_batch(sql).unwrap(),
        |cutoff| {
            use consentgate::receipts::store::Store;
            let mut store = consentgate::receipts::store::sqlite::SqliteStore::open(&db).unwrap();
            store.purge(cutoff).unwrap();
        },
    );
}

#[test]
fn postgres_verify_detects_deleted_first_receipts_and_retention_still_verifies() {
    let pg = Postgres::start("first");
    let o = Origin::echo();
    let key = pg.dir().join("receipts.key");
    let p = start(&o, &pg_receipts(&pg, "edge-pg", &key, ""));
    let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    let url = pg.url();
    check_first_receipts_deleted(
        &p,
        |sql| client.batch_execute(sql).unwrap(),
        |cutoff| {
            use consentgate::receipts::store::Store;
            let mut store = consentgate::receipts::store::postgres::PgStore::connect(&url).unwrap();
            store.purge(cutoff).unwrap();
        },
    );
}
