//! Google Consent Mode v2 through the running proxy (issue 11): the defaults script at the top
//! of `<head>` with the visitor's consent, its CSP hash or the page's nonce, and the audit of
//! Google tag beacons (`gcs`/`gcd`) in basic and advanced mode.

mod common;
use common::*;
#[path = "support/gzip.rs"]
mod gzip;
use std::io::Write;
use std::process::{Command, Stdio};

const PAGE: &str = "<!doctype html><html><head><meta charset=utf-8>\
<script src=\"/app.js\"></script><title>t</title></head><body><p>x</p></body></html>";

fn origin() -> Origin {
    Origin::start(|req| {
        let html = ("Content-Type", "text/html; charset=utf-8");
        match req.path.as_str() {
            "/nonce" => response(
                "200 OK",
                &[
                    html,
                    (
                        "Content-Security-Policy",
                        "object-src 'none'; script-src 'nonce-Xy9+abc/Q==' 'strict-dynamic'",
                    ),
                ],
                b"<html><head><script nonce=\"Xy9+abc/Q==\">var a=1;</script></head></html>",
            ),
            "/headless" => response(
                "200 OK",
                &[html],
                b"<!doctype html><title>t</title><p>x</p><script>var a=1;</script>",
            ),
            "/shared" => response(
                "200 OK",
                &[html, ("Cache-Control", "public, max-age=600")],
                PAGE.as_bytes(),
            ),
            "/gz" => response(
                "200 OK",
                &[html, ("Content-Encoding", "gzip")],
                &gzip::gzip(PAGE.as_bytes()),
            ),
            p if p.contains("collect") => response("204 No Content", &[], b""),
            _ => response("200 OK", &[html], PAGE.as_bytes()),
        }
    })
}

fn site(o: &Origin, extra: &str) -> String {
    shop_site(
        o.addr,
        &format!("{extra}\n[site.consent_mode]\nenabled = true\n"),
    )
}

fn text(r: &RawResponse) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

/// The inserted script element right after `<head>`, or after a `<meta charset>` that is the
/// first element of `<head>`: (start tag, script text).
fn first_in_head(body: &str) -> (String, String) {
    let after = body
        .split_once("<head>")
        .unwrap_or_else(|| panic!("no <head> in {body}"))
        .1;
    let after = after.strip_prefix("<meta charset=utf-8>").unwrap_or(after);
    let (tag, rest) = after.split_once('>').unwrap();
    let (script, _) = rest.split_once("</script>").unwrap();
    (format!("{tag}>"), script.to_string())
}

/// The consent object of `gtag('consent','default',{...})`, read as JSON.
fn defaults(script: &str) -> serde_json::Value {
    let marker = "gtag('consent','default',";
    let start = script.find(marker).expect("gtag consent default call") + marker.len();
    let end = script[start..].find('}').unwrap() + start + 1;
    serde_json::from_str(&script[start..end].replace('\'', "\"")).unwrap()
}

fn expect_values(v: &serde_json::Value, analytics: &str, marketing: &str, preferences: &str) {
    assert_eq!(v["analytics_storage"], analytics, "{v}");
    for k in ["ad_storage", "ad_user_data", "ad_personalization"] {
        assert_eq!(v[k], marketing, "{k}: {v}");
    }
    for k in ["functionality_storage", "personalization_storage"] {
        assert_eq!(v[k], preferences, "{k}: {v}");
    }
    assert_eq!(v["security_storage"], "granted", "{v}");
    assert_eq!(v.as_object().unwrap().len(), 7, "{v}");
}

/// `'sha256-…'` of a script text, computed by the openssl CLI (not by the code under test).
fn openssl_hash(script: &str) -> String {
    let mut child = Command::new("sh")
        .args(["-c", "openssl dgst -sha256 -binary | base64"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is needed (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl failed");
    format!("'sha256-{}'", String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn defaults_script_is_first_in_head_with_the_visitors_consent() {
    let o = origin();
    let p = Proxy::start(&site(&o, ""));
    for (cookie, a, m, pr) in [
        (None, "denied", "denied", "denied"),
        (Some("consent=analytics"), "granted", "denied", "denied"),
        (
            Some("consent=preferences,analytics,marketing"),
            "granted",
            "granted",
            "granted",
        ),
    ] {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
        let r = p.get("/", &headers);
        assert_eq!(r.status, 200);
        let body = text(&r);
        let (tag, script) = first_in_head(&body);
        assert_eq!(tag, "<script>", "{body}");
        assert!(
            script.starts_with(
                "window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
            ),
            "{script}"
        );
        expect_values(&defaults(&script), a, m, pr);
        // Right after the page's leading `<meta charset>` (which stays within the first 1024
        // bytes, where browsers look for it), before every other script of the page, which
        // is otherwise unchanged.
        let meta = "<head><meta charset=utf-8>";
        assert_eq!(
            body.find("<script").unwrap(),
            body.find(meta).unwrap() + meta.len()
        );
        assert!(body.starts_with(&PAGE[..PAGE.find("<script").unwrap()]));
        assert!(
            body.ends_with(&PAGE[PAGE.find("<script").unwrap()..]),
            "{body}"
        );
        // Rewritten for this visitor: no stale length, not for shared caches.
        assert!(r.header_all("content-length").is_empty());
        assert_eq!(r.header_strings("vary"), vec!["Cookie"]);
        assert_eq!(r.header_strings("cache-control"), vec!["private"]);
    }
    // Even a visitor who granted everything (nothing to neutralize) gets a private page.
    let r = p.get(
        "/shared",
        &[("Cookie", "consent=preferences,analytics,marketing")],
    );
    assert_eq!(
        r.header_strings("cache-control"),
        vec!["private, max-age=600"]
    );
    assert_eq!(r.header_strings("vary"), vec!["Cookie"]);
}

/// Consent Mode is opt-in per site: without `[site.consent_mode]`, or with `enabled = false`,
/// pages are served as the origin wrote them and beacons are not audited.
#[test]
fn without_consent_mode_enabled_no_script_is_inserted_and_no_beacon_audited() {
    let o = origin();
    for keys in [
        "",
        "[site.consent_mode]\nenabled = false\nmode = \"advanced\"\n",
    ] {
        let p = Proxy::start(&shop_site(o.addr, keys));
        for cookie in ["consent=none", "consent=preferences,analytics,marketing"] {
            let r = p.get("/", &[("Cookie", cookie)]);
            assert_eq!(r.status, 200);
            assert_eq!(text(&r), PAGE, "{keys:?} {cookie}");
            let body =
                String::from_utf8(gzip::gunzip(&p.get("/gz", &[("Cookie", cookie)]).body)).unwrap();
            assert_eq!(body, PAGE, "{keys:?} {cookie}");
        }
        // A beacon claiming consent the visitor did not give is no consent-mode mismatch here
        // (the blocklists still judge it).
        p.get(
            &beacon("G111", "13t3t3t3t5l1"),
            &[("Sec-Fetch-Dest", "empty")],
        );
        p.get(
            &beacon("G111", "13t3t3t3t5l1"),
            &[("Cookie", "consent=analytics")],
        );
        assert!(
            !p.metrics()
                .lines()
                .any(|l| l.starts_with("consentgate_consent_mode_mismatch_total{")),
            "{keys:?}"
        );
    }
}

#[test]
fn a_compressed_page_gets_the_script_too() {
    let o = origin();
    let p = Proxy::start(&site(&o, ""));
    let r = p.get(
        "/gz",
        &[("Cookie", "consent=preferences,analytics,marketing")],
    );
    assert_eq!(r.header_strings("content-encoding"), vec!["gzip"]);
    let body = String::from_utf8(gzip::gunzip(&r.body)).unwrap();
    let (tag, script) = first_in_head(&body);
    assert_eq!(tag, "<script>", "{body}");
    expect_values(&defaults(&script), "granted", "granted", "granted");
}

#[test]
fn without_head_the_script_goes_before_the_first_script() {
    let o = origin();
    let p = Proxy::start(&site(&o, ""));
    let body = text(&p.get("/headless", &[]));
    let expected = "<p>x</p><script>window.dataLayer=";
    assert!(body.contains(expected), "{body}");
    assert_eq!(body.matches("<script").count(), 2, "{body}");
}

#[test]
fn site_csp_allows_the_script_by_hash() {
    let o = origin();
    let p = Proxy::start(&site(
        &o,
        "[site.csp]\nbase = \"default-src 'self'; script-src 'self'\"\nanalytics = [\"https://www.googletagmanager.com\"]\n",
    ));
    for cookie in ["consent=none", "consent=analytics"] {
        let r = p.get("/", &[("Cookie", cookie)]);
        let (_, script) = first_in_head(&text(&r));
        let csp = r.header_strings("content-security-policy");
        assert_eq!(csp.len(), 1, "{csp:?}");
        let script_src = csp[0]
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src "))
            .unwrap()
            .to_string();
        let hash = openssl_hash(&script);
        assert!(
            script_src.split_whitespace().any(|s| s == hash),
            "{script_src} lacks {hash}"
        );
    }
}

#[test]
fn an_origin_nonce_is_reused() {
    let o = origin();
    let p = Proxy::start(&site(&o, ""));
    let body = text(&p.get("/nonce", &[]));
    let (tag, script) = first_in_head(&body);
    assert_eq!(tag, "<script nonce=\"Xy9+abc/Q==\">", "{body}");
    expect_values(&defaults(&script), "denied", "denied", "denied");
}

/// A GA4 beacon as gtag.js sends it to a first-party endpoint (parameters trimmed from a real
/// request: `v=2&tid=…&gcs=G111&gcd=13t3t3t3t5l1`, see src/consent_mode.rs).
fn beacon(gcs: &str, gcd: &str) -> String {
    format!("/g/collect?v=2&tid=G-TEST42&gtm=45je5&gcs={gcs}&gcd={gcd}&cid=1.2&en=page_view")
}

#[test]
fn a_beacon_claiming_consent_not_given_is_blocked_and_counted() {
    let o = origin();
    let p = Proxy::start(&site(&o, ""));
    let r = p.get(
        &beacon("G111", "13t3t3t3t5l1"),
        &[("Sec-Fetch-Dest", "empty")],
    );
    assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"]);
    assert!(o.received().is_empty(), "the origin saw the beacon");
    p.expect_metric(
        "consentgate_consent_mode_mismatch_total",
        &[("site", "shop"), ("tag", "G-TEST42"), ("action", "blocked")],
        1.0,
    );
    // The same claim from a visitor who granted everything is true: it goes through.
    let r = p.get(
        &beacon("G111", "13t3t3t3t5l1"),
        &[("Cookie", "consent=preferences,analytics,marketing")],
    );
    assert_eq!(r.status, 204);
    assert_eq!(o.received().len(), 1);
    // A tag id that is not shaped like one is counted as `other`.
    p.get(
        "/g/collect?v=2&tid=%3Cscript%3E&gcs=G101",
        &[("Cookie", "consent=marketing")],
    );
    p.expect_metric(
        "consentgate_consent_mode_mismatch_total",
        &[("site", "shop"), ("tag", "other"), ("action", "blocked")],
        1.0,
    );
}

/// A visitor writes the beacon's `tid`, so made-up tag ids must not grow `/metrics` without
/// bound (issue 13, "every label set bounded"): the first 64 ids get a label of their own, every
/// later one is counted under `other`. 80 distinct well-shaped ids, each in a beacon claiming a
/// consent the visitor did not give.
#[test]
fn made_up_tag_ids_fill_at_most_64_labels() {
    let o = origin();
    let p = Proxy::start(&site(&o, ""));
    for i in 0..80 {
        let r = p.get(
            &format!("/g/collect?v=2&tid=G-CAP{i:04}&gcs=G111&gcd=13t3t3t3t5l1&en=page_view"),
            &[("Sec-Fetch-Dest", "empty")],
        );
        assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"]);
    }
    let metrics = p.metrics();
    let series: Vec<(&str, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with("consentgate_consent_mode_mismatch_total{"))
        .map(|l| {
            let tag = l.split("tag=\"").nth(1).unwrap().split('"').next().unwrap();
            (tag, l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        })
        .collect();
    let tags: std::collections::BTreeSet<&str> = series.iter().map(|(t, _)| *t).collect();
    assert_eq!(tags.len(), 64 + 1, "{tags:?}");
    assert!(tags.contains("other"), "{tags:?}");
    let other: f64 = series
        .iter()
        .filter(|(t, _)| *t == "other")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(other, 16.0, "the 16 ids past the cap: {series:?}");
    assert_eq!(series.iter().map(|(_, n)| n).sum::<f64>(), 80.0);
}

/// Universal Analytics beacons (`/collect`, `/j/collect`, as analytics.js sends them to a
/// first-party or server-side GTM endpoint, with the consent-mode `gcs`/`gcd` of gtag) are
/// audited like GA4's `/g/collect`.
#[test]
fn collect_and_j_collect_beacons_are_audited_like_g_collect() {
    let o = origin();
    let p = Proxy::start(&site(&o, ""));
    let paths = [
        "/collect?v=1&_v=j101&a=1&t=pageview&tid=UA-12345-1&cid=1.2&gcs=G111&gcd=13t3t3t3t5l1",
        "/j/collect?v=1&_v=j101&a=1&t=pageview&tid=UA-12345-1&cid=1.2&gcs=G111&gcd=13t3t3t3t5l1",
    ];
    // Visitors who granted analytics only, or nothing: the claimed ad_storage grant is false.
    for cookie in ["consent=analytics", "consent=none"] {
        for path in paths {
            let r = p.get(path, &[("Cookie", cookie)]);
            assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"], "{path}");
        }
    }
    assert!(o.received().is_empty(), "the origin saw a beacon");
    p.expect_metric(
        "consentgate_consent_mode_mismatch_total",
        &[
            ("site", "shop"),
            ("tag", "UA-12345-1"),
            ("action", "blocked"),
        ],
        4.0,
    );
    // The same claims from a visitor who granted everything are true: they go through.
    for path in paths {
        let r = p.get(
            path,
            &[("Cookie", "consent=preferences,analytics,marketing")],
        );
        assert_eq!(r.status, 204, "{path}");
    }
    assert_eq!(o.received().len(), 2);
    // A path that is not a beacon path is not audited: `/x/collect` goes to the origin.
    let r = p.get(
        "/x/collect?tid=UA-12345-1&gcs=G111",
        &[("Cookie", "consent=analytics")],
    );
    assert_eq!(r.status, 204);
    assert_eq!(o.received().len(), 3);
}

#[test]
fn report_only_counts_the_mismatch_and_forwards() {
    let o = origin();
    let p = Proxy::start(&site(&o, "mode = \"report-only\""));
    // `Sec-Fetch-Dest: empty`: a beacon the shipped analytics list would match as well.
    let r = p.get(
        &beacon("G111", "13t3t3t3t5l1"),
        &[("Sec-Fetch-Dest", "empty")],
    );
    assert_eq!(r.status, 204);
    assert_eq!(o.received().len(), 1);
    p.expect_metric(
        "consentgate_consent_mode_mismatch_total",
        &[
            ("site", "shop"),
            ("tag", "G-TEST42"),
            ("action", "would_block"),
        ],
        1.0,
    );
    // One would-be-blocked request, as enforce would count it: consent mode's, not a list's.
    assert_eq!(blocked_count(&p, "consent-mode", "would_block"), 1.0);
    assert!(
        !p.metrics()
            .lines()
            .any(|l| l.starts_with("consentgate_blocked_requests_total{")
                && !l.contains("list=\"consent-mode\"")),
        "counted by a list too"
    );
}

#[test]
fn advanced_mode_lets_cookieless_pings_through_basic_blocks_them() {
    let o = origin();
    let ping = beacon("G100", "11p1p1p1p5");
    let basic = Proxy::start(&site(&o, ""));
    let r = basic.get(&ping, &[("Sec-Fetch-Dest", "empty")]);
    assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"]);
    assert!(o.received().is_empty());
    basic.expect_metric(
        "consentgate_blocked_requests_total",
        &[
            ("site", "shop"),
            ("category", "analytics"),
            ("list", &format!("{}/analytics.txt", shipped_lists_dir())),
            ("action", "blocked"),
        ],
        1.0,
    );
    drop(basic);

    let advanced = Proxy::start(&shop_site(
        o.addr,
        "[site.consent_mode]\nenabled = true\nmode = \"advanced\"\n",
    ));
    let r = advanced.get(
        &ping,
        &[
            ("Sec-Fetch-Dest", "empty"),
            ("Cookie", "_ga=GA1.1.1; SESSIONID=s"),
        ],
    );
    assert_eq!(r.status, 204, "{:?}", r.header_strings("x-consentgate"));
    let seen = o.last();
    assert!(seen.path.starts_with("/g/collect?"));
    // Cookieless: the analytics cookie still does not reach the origin.
    assert_eq!(seen.header_strings("cookie"), vec!["SESSIONID=s"]);
    // A ping that leaves a refused signal unset is no cookieless ping: the blocklist decides.
    let r = advanced.get(
        &beacon("G100", "13l3l3l3l1l1"),
        &[("Sec-Fetch-Dest", "empty")],
    );
    assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"]);
    // And a false claim is still blocked in advanced mode.
    let r = advanced.get(&beacon("G101", "11p1r1p1p5"), &[]);
    assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"]);
    assert_eq!(o.received().len(), 1);
}

/// A site with consent mode and no blocklist at all: nothing but consent mode can stop a beacon.
fn site_without_lists(o: &Origin, site_keys: &str, consent_mode: &str) -> String {
    format!(
        "[[site]]\nname = \"bare\"\nhosts = [\"*\"]\nupstreams = [\"{}\"]\n{site_keys}\n\
         [site.cookies]\nanalytics = [\"_ga\"]\n[site.consent_mode]\nenabled = true\n{consent_mode}",
        o.addr
    )
}

#[test]
fn basic_mode_blocks_pings_of_tags_without_consent_even_without_a_blocklist() {
    let o = origin();
    let p = Proxy::start(&site_without_lists(&o, "", ""));
    let ping = beacon("G100", "11p1p1p1p5");
    // No analytics consent: the GA4 tag may not measure, cookieless or not.
    let r = p.get(&ping, &[("Sec-Fetch-Dest", "empty")]);
    assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"]);
    assert!(o.received().is_empty(), "the origin saw the ping");
    let blocked = |action| {
        [
            ("site", "bare"),
            ("category", "analytics"),
            ("list", "consent-mode"),
            ("action", action),
        ]
    };
    p.expect_metric(
        "consentgate_blocked_requests_total",
        &blocked("blocked"),
        1.0,
    );
    // An ads tag's ping needs marketing: blocked for a visitor with analytics consent only.
    let ads = "/gtm/collect?tid=AW-123456789&gcs=G100";
    let r = p.get(ads, &[("Cookie", "consent=analytics")]);
    assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"]);
    // With analytics consent the GA4 ping goes to the origin.
    let r = p.get(&ping, &[("Cookie", "consent=analytics")]);
    assert_eq!(r.status, 204);
    assert_eq!(o.received().len(), 1);
    drop(p);

    // Report-only: counted as would_block, forwarded.
    let p = Proxy::start(&site_without_lists(&o, "mode = \"report-only\"", ""));
    let r = p.get(&ping, &[]);
    assert_eq!(r.status, 204);
    assert_eq!(o.received().len(), 2);
    p.expect_metric(
        "consentgate_blocked_requests_total",
        &blocked("would_block"),
        1.0,
    );
    drop(p);

    // Advanced: the cookieless ping goes through.
    let p = Proxy::start(&site_without_lists(&o, "", "mode = \"advanced\"\n"));
    let r = p.get(&ping, &[]);
    assert_eq!(r.status, 204);
    assert_eq!(o.received().len(), 3);
}

/// A GA4 hit from a tag that runs without Consent Mode (loaded before the CMP): no `gcs`, no
/// `gcd`.
const BARE_HIT: &str = "/g/collect?v=2&tid=G-TEST42&gtm=45je5&cid=1.2&en=page_view";

/// Issue 11, second audit, item 2: a beacon without `gcs`/`gcd` is withheld from a visitor
/// without its tag's consent in both modes (basic: no Google measurement before consent;
/// advanced: it claims nothing, so it is no cookieless ping), counted like the other
/// consent-mode blocks; the tag's own script under an audited prefix is no beacon.
#[test]
fn a_beacon_without_consent_parameters_needs_its_tags_consent() {
    let o = origin();
    let blocked = |site| {
        [
            ("site", site),
            ("category", "analytics"),
            ("list", "consent-mode"),
            ("action", "blocked"),
        ]
    };
    let mut reached = 0;
    for mode in ["", "mode = \"advanced\"\n"] {
        let p = Proxy::start(&site_without_lists(&o, "", mode));
        // sendBeacon / fetch, an image, or a client that names no type: all withheld.
        for dest in ["empty", "image", ""] {
            let headers: Vec<(&str, &str)> = if dest.is_empty() {
                vec![]
            } else {
                vec![("Sec-Fetch-Dest", dest)]
            };
            let r = p.get(BARE_HIT, &headers);
            assert_eq!(
                r.header_strings("x-consentgate"),
                vec!["blocked"],
                "{mode} {dest}"
            );
        }
        // Marketing consent is not what a GA4 tag needs.
        let r = p.get(BARE_HIT, &[("Cookie", "consent=marketing")]);
        assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"], "{mode}");
        assert_eq!(o.received().len(), reached, "{mode}: the origin saw a hit");
        p.expect_metric("consentgate_blocked_requests_total", &blocked("bare"), 4.0);
        // With analytics consent it goes to the origin.
        let r = p.get(BARE_HIT, &[("Cookie", "consent=analytics")]);
        assert_eq!(r.status, 204, "{mode}");
        // An Ads tag's hit needs marketing.
        let ads = "/gtm/pagead?tid=AW-123456789&en=conversion";
        let r = p.get(ads, &[("Cookie", "consent=analytics")]);
        assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"], "{mode}");
        let r = p.get(ads, &[("Cookie", "consent=marketing")]);
        assert_ne!(r.header_strings("x-consentgate"), vec!["blocked"], "{mode}");
        // The container script under the server-side GTM prefix is no beacon.
        let r = p.get("/gtm/gtm.js?id=GTM-ABCD", &[("Sec-Fetch-Dest", "script")]);
        assert_ne!(r.header_strings("x-consentgate"), vec!["blocked"], "{mode}");
        reached += 3;
        assert_eq!(o.received().len(), reached, "{mode}");
    }
}

#[test]
fn a_bad_beacon_path_is_reported_with_its_line() {
    let dir = TempDir::new("cm-check");
    let path = dir.0.join("c.toml");
    std::fs::write(
        &path,
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"s\"\nupstreams = [\"127.0.0.1:2\"]\n[site.consent_mode]\nenabled = true\nbeacon_paths = [\"g/collect\"]\n",
    )
    .unwrap();
    let (code, _out, err) = run_cli(&["check", "--config", path.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("[site.consent_mode]") && err.contains("g/collect"),
        "{err}"
    );
    assert!(err.contains(":6") || err.contains("line 6"), "{err}");
}

/// The blocked-request count of `list` with `action` in `/metrics`, over every category.
fn blocked_count(p: &Proxy, list: &str, action: &str) -> f64 {
    p.metrics()
        .lines()
        .filter(|l| {
            l.starts_with("consentgate_blocked_requests_total{")
                && l.contains("site=\"shop\"")
                && l.contains(&format!("list=\"{list}\""))
                && l.contains(&format!("action=\"{action}\""))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// A mismatch beacon consentgate answers is a blocked tracker request wherever blocked
/// requests are shown: `consentgate_blocked_requests_total{list="consent-mode"}` (Grafana),
/// the admin dashboard's totals and per-minute chart, and `report` (JSON and HTML, from the
/// hourly aggregates), besides the mismatch counter.
#[test]
fn mismatch_beacons_are_blocked_requests_on_the_dashboard_and_in_the_report() {
    let o = origin();
    let dir = TempDir::new("cm-report");
    let db = dir.0.join("r.db");
    let p = Proxy::start(&format!(
        "{}\n[receipts]\npath = \"{}\"\nbatch_interval_ms = 20\naggregate_interval_seconds = 1\n",
        site(&o, ""),
        db.display()
    ));
    for _ in 0..3 {
        let r = p.get(
            "/g/collect?v=2&tid=G-XXXX&gcs=G111",
            &[("Sec-Fetch-Dest", "empty")],
        );
        assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"]);
    }
    assert!(o.received().is_empty(), "the origin saw a beacon");
    p.expect_metric(
        "consentgate_consent_mode_mismatch_total",
        &[("site", "shop"), ("tag", "G-XXXX"), ("action", "blocked")],
        3.0,
    );
    assert_eq!(blocked_count(&p, "consent-mode", "blocked"), 3.0);
    // Counted once each: no list counted them as well.
    assert_eq!(
        p.metrics()
            .lines()
            .filter(|l| l.starts_with("consentgate_blocked_requests_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>(),
        3.0
    );
    // The dashboard's numbers.
    let r = admin_get(p.admin, "/dashboard.json");
    assert_eq!(r.status, 200);
    let d: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let blocked = &d["blocked"];
    assert_eq!(blocked["blocked"], 3, "{blocked}");
    let per_minute: u64 = blocked["per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(per_minute, 3, "{blocked}");
    assert!(
        blocked["lists"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["list"] == "consent-mode" && l["blocked"] == 3),
        "{blocked}"
    );
    // A reload: a counter no report section tabulates (`other_metrics`).
    assert_eq!(p.reload().0, 200);
    // The report, from the hourly aggregates the writer stores.
    let config = p.config.to_str().unwrap();
    let mut report = serde_json::Value::Null;
    eventually("the blocked beacons in the report", || {
        report = report_json(config);
        report["sites"]["shop"]["blocked_requests"]["total"] == 3
            && report["sites"]["shop"]["consent_mode_mismatches"]["total"] == 3
            && report["other_metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["metric"] == "consentgate_config_reloads_total")
    });
    let shop = &report["sites"]["shop"];
    let rows = shop["blocked_requests"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["list"], "consent-mode");
    assert_eq!(rows[0]["action"], "blocked");
    assert_eq!(
        shop["consent_mode_mismatches"]["rows"],
        serde_json::json!([{ "tag": "G-XXXX", "action": "blocked", "count": 3 }])
    );
    let hourly_blocked: i64 = report["hourly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["blocked_requests"].as_i64().unwrap())
        .sum();
    assert_eq!(hourly_blocked, 3);
    let html = report_html(config);
    let cat = rows[0]["category"].as_str().unwrap();
    assert!(
        html.contains(&format!(
            "<td>{cat}</td><td>consent-mode</td><td>blocked</td><td class=\"n\">3</td>"
        )),
        "{html}"
    );
    assert!(
        html.contains("<td>G-XXXX</td><td>blocked</td><td class=\"n\">3</td>"),
        "{html}"
    );
    // The counters without a section of their own are rendered too.
    assert!(html.contains("<h2>Other counters</h2>"), "{html}");
    assert!(
        html.contains("<td>consentgate_config_reloads_total</td>"),
        "{html}"
    );
    for m in report["other_metrics"].as_array().unwrap() {
        let metric = m["metric"].as_str().unwrap();
        assert!(
            html.contains(&format!("<td>{metric}</td>")),
            "{metric}: {html}"
        );
    }
}

/// Issue 11, second audit, item 3: the spellings of a beacon path an origin's router may take
/// for the same handler (trailing slash, `//`, case, an escaped unreserved character,
/// `;params`, dot segments, `%2F`) are audited like the path itself, through the proxy.
#[test]
fn beacon_path_variants_are_audited_like_the_path() {
    let o = origin();
    let p = Proxy::start(&site_without_lists(&o, "", ""));
    let variants = [
        "/g/collect/",
        "//g/collect",
        "/G/COLLECT",
        "/g/%63ollect",
        "/g/collect;x",
        "/g/./collect",
        "/x/../g/collect",
        "/g%2Fcollect",
        "/G//Collect/",
    ];
    for path in variants {
        // A false claim: a mismatch.
        let r = p.get(
            &format!("{path}?v=2&tid=G-TEST42&gcs=G111&gcd=13t3t3t3t5l1"),
            &[("Sec-Fetch-Dest", "empty")],
        );
        assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"], "{path}");
        // No consent parameters, no consent: withheld.
        let r = p.get(
            &format!("{path}?v=2&tid=G-TEST42"),
            &[("Sec-Fetch-Dest", "empty")],
        );
        assert_eq!(r.header_strings("x-consentgate"), vec!["blocked"], "{path}");
    }
    assert!(o.received().is_empty(), "the origin saw a beacon");
    let n = variants.len() as f64;
    p.expect_metric(
        "consentgate_consent_mode_mismatch_total",
        &[("site", "bare"), ("tag", "G-TEST42"), ("action", "blocked")],
        n,
    );
    p.expect_metric(
        "consentgate_blocked_requests_total",
        &[
            ("site", "bare"),
            ("category", "analytics"),
            ("list", "consent-mode"),
            ("action", "blocked"),
        ],
        n,
    );
    // Not beacon paths: a longer segment, a path under `/g/collect`, a doubly escaped letter
    // (a router decodes once: `%2563` is `%63`, not `c`).
    for path in ["/g/collectx", "/g/collect/x", "/g/%2563ollect"] {
        let r = p.get(&format!("{path}?v=2&tid=G-TEST42"), &[]);
        assert_ne!(r.header_strings("x-consentgate"), vec!["blocked"], "{path}");
    }
    assert_eq!(o.received().len(), 3);
}

/// The `url` part of `consentgate explain` for a request, against a running proxy's config.
fn explain_url(config: &std::path::Path, cookie: &str, url: &str, dest: &str) -> serde_json::Value {
    let (code, out, err) = run_cli(&[
        "explain",
        "--config",
        config.to_str().unwrap(),
        "--cookie",
        cookie,
        "--url",
        url,
        "--dest",
        dest,
    ]);
    assert_eq!(code, 0, "explain {url}: {err}");
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["url"].clone()
}

/// Issue 11, second audit, item 1: `explain --url` shows what the running proxy does with a
/// Google tag beacon: blocked or not, by which list and rule, counted as a mismatch or a
/// consent-mode block, for mismatches, basic against advanced mode, granted visitors, beacons
/// without consent parameters, path variants and the tag's own script, with and without
/// blocklists.
#[test]
fn explain_and_the_proxy_agree_on_beacons() {
    let o = origin();
    let configs = [
        ("bare", site_without_lists(&o, "", "")),
        ("bare", site_without_lists(&o, "", "mode = \"advanced\"\n")),
        ("shop", site(&o, "")),
        (
            "shop",
            shop_site(
                o.addr,
                "[site.consent_mode]\nenabled = true\nmode = \"advanced\"\n",
            ),
        ),
    ];
    let beacons = [
        ("/g/collect?v=2&tid=G-XXXX&gcs=G111&gcd=13t3t3t3t5", "empty"),
        ("/g/collect?v=2&tid=G-XXXX&gcs=G100&gcd=11p1p1p1p5", "empty"),
        ("/g/collect?v=2&tid=G-XXXX&gcs=G100", "empty"),
        ("/g/collect?v=2&tid=G-XXXX&gcs=G101&gcd=11p1r1p1p5", "empty"),
        ("/g/collect?v=2&tid=G-XXXX", "empty"),
        ("/G/COLLECT/?v=2&tid=G-XXXX&gcs=G111", "image"),
        (
            "/gtm/collect?tid=AW-123456789&gcs=G100&gcd=11p1p1p1p5",
            "empty",
        ),
        ("/gtm/gtm.js?id=GTM-ABCD", "script"),
        ("/page?gcs=G111", "document"),
    ];
    let visitors = [
        "",
        "consent=analytics",
        "consent=preferences,analytics,marketing",
    ];
    let mut seen = std::collections::HashSet::new();
    for (site_name, config) in &configs {
        let p = Proxy::start(config);
        for (url, dest) in beacons {
            for cookie in visitors {
                let e = explain_url(&p.config, cookie, url, dest);
                let mismatches = |p: &Proxy| {
                    p.metric(
                        "consentgate_consent_mode_mismatch_total",
                        &[
                            ("site", site_name),
                            ("tag", "G-XXXX"),
                            ("action", "blocked"),
                        ],
                    )
                };
                let blocks = |p: &Proxy, e: &serde_json::Value| {
                    p.metric(
                        "consentgate_blocked_requests_total",
                        &[
                            ("site", site_name),
                            ("category", e["category"].as_str().unwrap_or("-")),
                            ("list", e["list"].as_str().unwrap_or("-")),
                            ("action", "blocked"),
                        ],
                    )
                };
                let (m0, b0) = (mismatches(&p), blocks(&p, &e));
                let mut headers = vec![("Sec-Fetch-Dest", dest)];
                if !cookie.is_empty() {
                    headers.push(("Cookie", cookie));
                }
                let r = p.get(url, &headers);
                let blocked = r.header_strings("x-consentgate") == vec!["blocked"];
                let case = format!("{config}\n{url} {dest} [{cookie}]: {e}");
                assert_eq!(e["blocked"], blocked, "{case}");
                let action = e["consent_mode"]["action"].as_str();
                if blocked && action == Some("mismatch") {
                    assert_eq!(e["list"], "consent-mode", "{case}");
                    p.expect_metric(
                        "consentgate_consent_mode_mismatch_total",
                        &[
                            ("site", site_name),
                            ("tag", "G-XXXX"),
                            ("action", "blocked"),
                        ],
                        m0 + 1.0,
                    );
                } else if blocked {
                    // A consent-mode block, or a list's: counted under that list.
                    eventually(&format!("blocked_requests counted for {case}"), || {
                        blocks(&p, &e) == b0 + 1.0
                    });
                }
                seen.insert((
                    action.unwrap_or("none").to_string(),
                    e["list"] == "consent-mode",
                    blocked,
                ));
            }
        }
    }
    // The table covers every kind of decision: a mismatch, a consent-mode withhold, an
    // advanced-mode pass-through, a beacon left to the lists (blocked by one, and not), and
    // requests consent mode does not audit.
    for want in [
        ("mismatch", true, true),
        ("withhold", true, true),
        ("pass_through", false, false),
        ("lists", false, true),
        ("lists", false, false),
        ("none", false, false),
    ] {
        let want = (want.0.to_string(), want.1, want.2);
        assert!(seen.contains(&want), "no case {want:?} in {seen:?}");
    }
}
