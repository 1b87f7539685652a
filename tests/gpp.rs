//! IAB GPP (issue 11, "IAB Global Privacy Platform" and "Consent from apps"): the decoder
//! against the IAB reference libraries' own vectors (tests/fixtures/gpp, with provenance),
//! `explain`'s field names and types, and end to end through the real proxy: a GPP opt-out
//! strips marketing cookies, an unreadable GPP string grants nothing, and an app's consent
//! header works without cookies and combines with cookies by the most restrictive rule.

mod common;
use common::*;
use consentgate::consent::gpp;
use serde_json::{json, Value};

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gpp/vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

fn at(v: &Value) -> String {
    format!(
        "{} ({} {} {})",
        v["name"], v["source"]["repo"], v["source"]["path"], v["source"]["test"]
    )
}

/// The reference library widens a first-layout usnat section (12 sensitive-data categories, 2
/// child consents) to 16 and 3 entries with zeros at the end; this decoder shows the section
/// as written. Widened the same way before comparing (tests/fixtures/gpp/LICENCE.md).
fn widen(fields: &mut Value) {
    for (key, n) in [
        ("SensitiveDataProcessing", 16),
        ("KnownChildSensitiveDataConsents", 3),
    ] {
        if let Some(list) = fields[key].as_array_mut() {
            while list.len() < n {
                list.push(json!(0));
            }
        }
    }
}

#[test]
fn header_section_ids_match_the_reference() {
    let v = vectors();
    let list = v["headers"].as_array().unwrap();
    assert!(list.len() >= 4);
    for h in list {
        let ids = gpp::decode_header(h["header"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", at(h)));
        let want: Vec<u16> = serde_json::from_value(h["section_ids"].clone()).unwrap();
        assert_eq!(ids, want, "{}", at(h));
    }
}

#[test]
fn us_sections_decode_field_for_field() {
    let v = vectors();
    let list = v["sections"].as_array().unwrap();
    let mut names = std::collections::BTreeSet::new();
    for s in list {
        let id = s["id"].as_u64().unwrap() as u16;
        let text = s["string"].as_str().unwrap();
        let section = gpp::decode_us_section(id, text)
            .unwrap_or_else(|e| panic!("{}: {e}", at(s)))
            .unwrap_or_else(|| panic!("{}: section {id} not read", at(s)));
        names.insert(section.name);
        // Through the same details `explain` prints: every field, and only those, with the
        // reference's values and JSON types (integers, lists, booleans).
        let gpp_string = gpp::GppString {
            section_ids: vec![id],
            sections: vec![gpp::Section::Us(section.clone())],
        };
        let details = gpp::details(&gpp_string, None);
        let got = &details["sections"][section.name];
        assert_eq!(got, &s["fields"], "{}", at(s));
    }
    // Every supported US section has vectors.
    let want: std::collections::BTreeSet<&str> = [
        "uspv1", "usnat", "usca", "usva", "usco", "usut", "usct", "usfl", "usmt", "usor", "ustx",
        "usde", "usia", "usne", "usnh", "usnj", "ustn",
    ]
    .into();
    assert_eq!(names, want);
}

#[test]
fn whole_strings_decode_field_for_field() {
    let v = vectors();
    for s in v["strings"].as_array().unwrap() {
        let text = s["string"].as_str().unwrap();
        let decoded = gpp::decode(text).unwrap_or_else(|e| panic!("{}: {e}", at(s)));
        let details = gpp::details(&decoded, None);
        assert_eq!(details["section_ids"], s["section_ids"], "{}", at(s));
        if let Some(u) = s.get("unsupported") {
            assert_eq!(&details["unsupported"], u, "{}", at(s));
        }
        // Every section we read, every field the reference returns for it and no other, with
        // its value and JSON type: optional TC-string segments and GPC sub-sections present or
        // absent (then their defaults).
        let want = s["sections"].as_object().unwrap();
        let got_sections = details["sections"].as_object().unwrap();
        assert_eq!(
            got_sections.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{}",
            at(s)
        );
        for (name, fields) in want {
            let mut got = details["sections"][name].clone();
            if s["reference_widens_12_2"] == json!(true) {
                widen(&mut got);
            }
            assert_eq!(
                got.as_object().unwrap().keys().collect::<Vec<_>>(),
                fields.as_object().unwrap().keys().collect::<Vec<_>>(),
                "{} {name}: field names",
                at(s)
            );
            for (field, want) in fields.as_object().unwrap() {
                assert_eq!(&got[field], want, "{} {name}.{field}", at(s));
            }
        }
    }
}

#[test]
fn tcfeuv2_optional_segments_decode_as_the_reference_tests_assert() {
    // iabgpp-java TcfEuV2Test testDecode3 and iabgpp-es TcfEuV2.test.ts "decode": the values
    // the tests themselves assert (not the library's output stored beside them).
    let v = vectors();
    let s = v["strings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"]["test"] == json!("testDecode3"))
        .unwrap();
    let d = gpp::details(&gpp::decode(s["string"].as_str().unwrap()).unwrap(), None);
    let t = &d["sections"]["tcfeuv2"];
    assert_eq!(t["CmpId"], json!(880));
    assert_eq!(t["IsServiceSpecific"], json!(false));
    assert_eq!(t["PublisherPurposesSegmentType"], json!(3));
    assert_eq!(t["VendorsAllowedSegmentType"], json!(2));
    assert_eq!(t["VendorsDisclosedSegmentType"], json!(1));
    for key in ["VendorsAllowed", "VendorsDisclosed"] {
        let ids: Vec<u64> = t[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(ids.len(), 434, "{key}");
        assert_eq!(ids[..10], [1, 2, 4, 6, 8, 10, 11, 12, 13, 14], "{key}");
        assert_eq!(
            ids[ids.len() - 9..],
            [782, 783, 784, 785, 786, 788, 789, 790, 791],
            "{key}"
        );
    }
    // Without the vendor segments (iabgpp-es "decode 4"): their defaults, empty lists.
    let s = "DBABMA~COv_eg6Ov_eg6AOADBENAaCgAP_AAH_AACiQAVEUQQoAIQAqIoghAAQgAA.YAAAAAAAAAAAAAAAAAA";
    let d = gpp::details(&gpp::decode(s).unwrap(), None);
    let t = &d["sections"]["tcfeuv2"];
    assert_eq!(
        t["VendorConsents"],
        json!([2, 6, 8, 12, 18, 23, 25, 37, 42])
    );
    assert_eq!(t["VendorsAllowed"], json!([]));
    assert_eq!(t["VendorsDisclosedSegmentType"], json!(1));
    assert_eq!(t["NumCustomPurposes"], json!(0));
    assert_eq!(t["PublisherCustomConsents"], json!([]));
}

#[test]
fn tcf_sections_with_cmp_id_0_fail_closed() {
    let v = vectors();
    for s in v["refused_by_tcf"]["vectors"].as_array().unwrap() {
        let e = gpp::decode(s["string"].as_str().unwrap()).unwrap_err();
        assert!(e.0.contains("CMP id 0"), "{}: {e}", at(s));
    }
}

#[test]
fn padding_variants_decode_alike() {
    // `=` padding (RFC 4648) and the 6-bit encoders' trailing zero bits: the same fields.
    let plain = gpp::decode_us_section(9, "BVWSSVY").unwrap().unwrap();
    for variant in ["BVWSSVY=", "BVWSSVYA", "BVWSSVYAA=="] {
        let s = gpp::decode_us_section(9, variant).unwrap().unwrap();
        assert_eq!(s, plain, "{variant}");
    }
    // In a whole string, the header padded too ("DBABRg" lists [9]).
    let a = gpp::decode("DBABRg~BVWSSVY").unwrap();
    let b = gpp::decode("DBABRg==~BVWSSVY=").unwrap();
    assert_eq!(gpp::details(&a, None), gpp::details(&b, None));
    assert_eq!(a.section_ids, vec![9]);
}

#[test]
fn long_and_hostile_strings_fail_promptly() {
    let started = std::time::Instant::now();
    for bad in [
        format!("DBABRg~{}", "_".repeat(gpp::MAX_LEN)),
        format!("DB__{}", "_".repeat(1000)),
        "DBABRg~~~~~~~~~~~".to_string(),
        "~".repeat(100_000),
        format!("DBABRg~{}", ".".repeat(10_000)),
    ] {
        assert!(gpp::decode(&bad).is_err());
    }
    // Generous: a few bounded scans of at most 64 KiB each.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

// --- Through the proxy ---

const SC_SESSION: &str = "SESSIONID=abc123; Path=/";
const SC_GA: &str = "_ga=GA1.2.111.222; Path=/";
const SC_FBP: &str = "_fbp=fb.1.123.456; Path=/";

fn origin() -> Origin {
    Origin::start(|_| {
        response(
            "200 OK",
            &[
                ("Content-Type", "text/plain"),
                ("Set-Cookie", SC_SESSION),
                ("Set-Cookie", SC_GA),
                ("Set-Cookie", SC_FBP),
            ],
            b"ok\n",
        )
    })
}

fn site(origin: &Origin, consent: &str) -> String {
    format!(
        r#"
[[site]]
name = "t"
hosts = ["*"]
upstreams = ["{}"]

[site.consent]
cookie = "consent"
{consent}

[site.cookies]
necessary = ["SESSIONID"]
analytics = ["_ga"]
marketing = ["_fbp"]
"#,
        origin.addr
    )
}

/// usca with SaleOptOut = 1 and Gpc = true (iabgpp-java UsCaTest), under a header listing [8].
const GPP_USCA_OPT_OUT: &str = "DBABBg~BVWSSSVY.YA";
/// usca with the reference defaults: no opt-out.
const GPP_USCA_DEFAULT: &str = "DBABBg~BAAAAABA.QA";

#[test]
fn a_gpp_opt_out_strips_marketing_cookies_through_the_proxy() {
    let o = origin();
    let p = Proxy::start(&site(&o, "sources = [\"first-party\", \"gpp\"]\n"));
    // The site's own banner granted analytics and marketing; the GPP string opted out of sale:
    // marketing is refused (most restrictive), analytics stays.
    let both = "consent=analytics,marketing";
    let r = p.get(
        "/",
        &[(
            "Cookie",
            &format!("{both}; __gpp={GPP_USCA_OPT_OUT}; __gpp_sid=8"),
        )],
    );
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_GA]);
    // OneTrust's cookie name is read too.
    let r = p.get(
        "/",
        &[(
            "Cookie",
            &format!("{both}; OTGPPConsent={GPP_USCA_OPT_OUT}"),
        )],
    );
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_GA]);
    // No opt-out in the section: it says nothing, the banner's grant stands.
    let r = p.get(
        "/",
        &[(
            "Cookie",
            &format!("{both}; __gpp={GPP_USCA_DEFAULT}; __gpp_sid=8"),
        )],
    );
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_GA, SC_FBP]);
    // The opt-out in a section __gpp_sid does not list does not apply.
    let r = p.get(
        "/",
        &[(
            "Cookie",
            &format!("{both}; __gpp={GPP_USCA_OPT_OUT}; __gpp_sid=7"),
        )],
    );
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_GA, SC_FBP]);
    p.expect_metric(
        "consentgate_consent_sources_total",
        &[("site", "t"), ("via", "cookie"), ("format", "gpp")],
        4.0,
    );
}

#[test]
fn an_unreadable_gpp_string_grants_nothing_and_is_counted() {
    let o = origin();
    let p = Proxy::start(&site(&o, "sources = [\"first-party\", \"gpp\"]\n"));
    for bad in ["DBABBg~BVWS", "garbage", "DBABBg", "DBABBg~BVWSSSVY~BAAA"] {
        let r = p.get(
            "/",
            &[(
                "Cookie",
                &format!("consent=analytics,marketing; __gpp={bad}"),
            )],
        );
        assert_eq!(r.set_cookies(), vec![SC_SESSION], "{bad}");
    }
    p.expect_metric(
        "consentgate_consent_errors_total",
        &[("site", "t"), ("format", "gpp")],
        4.0,
    );
}

/// CMPs keep the GPP string under other names (InMobi Choice: `IABGPP_HDR_GppString`, as the
/// IAB's in-app convention names it): with `[site.consent.gpp]` names set, those cookies are
/// read (the section ids from the configured sid cookie), kept as necessary, and the default
/// names are not read.
#[test]
fn configured_gpp_cookie_names_are_read_and_the_defaults_are_not() {
    let o = origin();
    let names = "sources = [\"first-party\", \"gpp\"]\n[site.consent.gpp]\ncookie = \"IABGPP_HDR_GppString\"\nsid_cookie = \"IABGPP_GppSID\"\nonetrust_cookie = \"OT_GPP\"\n";
    let p = Proxy::start(&site(&o, names));
    let get = |cookies: &str| {
        let cookie = format!("consent=analytics,marketing; {cookies}");
        p.get("/", &[("Cookie", &cookie)]).set_cookies()
    };
    let opted_out = vec![SC_SESSION, SC_GA];
    let all = vec![SC_SESSION, SC_GA, SC_FBP];
    let custom = format!("IABGPP_HDR_GppString={GPP_USCA_OPT_OUT}; IABGPP_GppSID=8");
    assert_eq!(get(&custom), opted_out);
    // The GPP cookies reach the origin: the reader's own cookies are necessary.
    let sent = o.last().header_strings("cookie").join("; ");
    assert!(sent.contains(&custom), "{sent}");
    // The section ids come from the configured sid cookie: section 8 not listed, not applied.
    let other_sid = format!("IABGPP_HDR_GppString={GPP_USCA_OPT_OUT}; IABGPP_GppSID=7");
    assert_eq!(get(&other_sid), all);
    assert_eq!(get(&format!("OT_GPP={GPP_USCA_OPT_OUT}")), opted_out);
    // The default names are someone else's cookies now.
    assert_eq!(get(&format!("__gpp={GPP_USCA_OPT_OUT}; __gpp_sid=8")), all);
    assert_eq!(get(&format!("OTGPPConsent={GPP_USCA_OPT_OUT}")), all);
    // The default sid cookie does not narrow the configured string either.
    let mixed = format!("IABGPP_HDR_GppString={GPP_USCA_OPT_OUT}; __gpp_sid=7");
    assert_eq!(get(&mixed), opted_out);
}

/// usca with SaleOptOut = 1 and SharingOptOut = 1 and no GPC sub-section (iabgpp-java UsCaTest
/// testDecodeWithGpcSegmentExcluded), under a header listing [8].
const GPP_USCA_OPT_OUT_NO_GPC: &str = "DBABBg~BVWSSSVY";

/// `opt_out_refuses` and `gpc_refuses` say which categories a US section's opt-out and its
/// `Gpc` refuse (default: marketing for both).
#[test]
fn the_gpp_opt_out_and_gpc_mapping_is_configurable() {
    let o = origin();
    let granted = "consent=analytics,marketing";
    let run = |mapping: &str, gpp: &str| {
        let consent =
            format!("sources = [\"first-party\", \"gpp\"]\n[site.consent.gpp]\n{mapping}");
        let p = Proxy::start(&site(&o, &consent));
        p.get("/", &[("Cookie", &format!("{granted}; __gpp={gpp}"))])
            .set_cookies()
    };
    // An opt-out may refuse analytics too.
    let both = "opt_out_refuses = [\"analytics\", \"marketing\"]\ngpc_refuses = []\n";
    assert_eq!(run(both, GPP_USCA_OPT_OUT_NO_GPC), vec![SC_SESSION]);
    // Opt-outs mapped to nothing; GPC still refuses marketing, and only when it is true.
    let gpc_only = "opt_out_refuses = []\ngpc_refuses = [\"marketing\"]\n";
    assert_eq!(
        run(gpc_only, GPP_USCA_OPT_OUT_NO_GPC),
        vec![SC_SESSION, SC_GA, SC_FBP]
    );
    assert_eq!(run(gpc_only, GPP_USCA_OPT_OUT), vec![SC_SESSION, SC_GA]);
    // Both mapped to nothing: the string refuses nothing.
    let neither = "opt_out_refuses = []\ngpc_refuses = []\n";
    assert_eq!(
        run(neither, GPP_USCA_OPT_OUT),
        vec![SC_SESSION, SC_GA, SC_FBP]
    );
    // The default: marketing, for either.
    assert_eq!(run("", GPP_USCA_OPT_OUT_NO_GPC), vec![SC_SESSION, SC_GA]);
}

/// A TC string from tests/fixtures/consent/tcf.jsonl by its `name` (each line carries its
/// provenance and the IAB reference decoder's reading).
fn tc_string(name: &str) -> (String, Value) {
    let text = std::fs::read_to_string(fixture("consent/tcf.jsonl")).unwrap();
    let line = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name}"));
    let cookie = line["cookie"].as_str().unwrap();
    let tc = cookie.split_once('=').unwrap().1.to_string();
    (tc, line["expect"].clone())
}

/// A GPP string whose only section is `tcfeuv2` (header `DBABMA` lists [2]: iabgpp-java
/// GppModelTest, tests/fixtures/gpp/vectors.json) decides as that TC string does: here the only
/// source read, so the grant comes from it alone.
#[test]
fn a_tcfeuv2_section_grants_through_the_proxy() {
    // The IAB's own reported-issue test string, every purpose 1-10 consented
    // (iabtcf-es ReportedIssues.test.ts, issue 201).
    let (accept, expect) = tc_string("iab-es-issue-201-restrictions");
    assert_eq!(
        expect,
        json!({"analytics": true, "marketing": true, "preferences": true})
    );
    // iabtcf-java's full core string: purposes 2 and 10 only.
    let (refuse, expect) = tc_string("iab-java-full-core");
    assert_eq!(
        expect,
        json!({"analytics": false, "marketing": false, "preferences": false})
    );
    let o = origin();
    let p = Proxy::start(&site(&o, "sources = [\"gpp\"]\n"));
    let get = |cookie: String| p.get("/", &[("Cookie", &cookie)]).set_cookies();
    let all = vec![SC_SESSION, SC_GA, SC_FBP];
    assert_eq!(get(format!("__gpp=DBABMA~{accept}")), all);
    assert_eq!(get(format!("__gpp=DBABMA~{accept}; __gpp_sid=2")), all);
    assert_eq!(get(format!("OTGPPConsent=DBABMA~{accept}")), all);
    // Not applicable (`__gpp_sid` lists another section): nothing is granted.
    assert_eq!(
        get(format!("__gpp=DBABMA~{accept}; __gpp_sid=7")),
        vec![SC_SESSION]
    );
    // A TC string without those purposes grants nothing.
    assert_eq!(get(format!("__gpp=DBABMA~{refuse}")), vec![SC_SESSION]);
    // Without the GPP string, nothing.
    assert_eq!(get("x=1".to_string()), vec![SC_SESSION]);
}

/// The app's consent header written as issue 11 writes it, one `[site.consent.header]` table.
#[test]
fn a_single_consent_header_table_works_for_an_app() {
    let o = origin();
    let one = "[site.consent.header]\nname = \"X-Consent\"\nformat = \"first-party\"\n";
    let p = Proxy::start(&site(&o, one));
    let r = p.get("/", &[("X-Consent", "analytics")]);
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_GA]);
    let r = p.get("/", &[]);
    assert_eq!(r.set_cookies(), vec![SC_SESSION]);
    p.expect_metric(
        "consentgate_consent_sources_total",
        &[("site", "t"), ("via", "header"), ("format", "first-party")],
        1.0,
    );
}

#[test]
fn an_app_header_grants_without_cookies_and_the_most_restrictive_source_wins() {
    let o = origin();
    let headers = r#"
[[site.consent.header]]
name = "X-Consent"
format = "first-party"
[[site.consent.header]]
name = "X-GPP-Consent"
format = "gpp"
"#;
    let p = Proxy::start(&site(&o, headers));
    // An app without cookies: analytics granted by the header, marketing not.
    let r = p.get("/", &[("X-Consent", "analytics")]);
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_GA]);
    // A cookie grants marketing, the header refuses it (first-party lists what is granted):
    // refused.
    let r = p.get(
        "/",
        &[
            ("Cookie", "consent=analytics,marketing"),
            ("X-Consent", "analytics"),
        ],
    );
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_GA]);
    // Both grant: granted.
    let r = p.get(
        "/",
        &[
            ("X-Consent", "analytics,marketing"),
            ("Cookie", "consent=analytics,marketing"),
        ],
    );
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_GA, SC_FBP]);
    // A GPP opt-out from an app's header refuses marketing the header of its banner grants.
    let r = p.get(
        "/",
        &[
            ("X-Consent", "analytics,marketing"),
            ("X-GPP-Consent", GPP_USCA_OPT_OUT),
        ],
    );
    assert_eq!(r.set_cookies(), vec![SC_SESSION, SC_GA]);
    // An unreadable header grants nothing (fail closed), even beside a granting cookie.
    let r = p.get(
        "/",
        &[
            ("Cookie", "consent=analytics,marketing"),
            ("X-GPP-Consent", "nonsense"),
        ],
    );
    assert_eq!(r.set_cookies(), vec![SC_SESSION]);
    p.expect_metric(
        "consentgate_consent_sources_total",
        &[("site", "t"), ("via", "header"), ("format", "first-party")],
        4.0,
    );
    p.expect_metric(
        "consentgate_consent_sources_total",
        &[("site", "t"), ("via", "header"), ("format", "gpp")],
        2.0,
    );
    p.expect_metric(
        "consentgate_consent_errors_total",
        &[("site", "t"), ("format", "gpp")],
        1.0,
    );
}

// --- explain ---

fn explain(config: &str, args: &[&str]) -> Value {
    let dir = TempDir::new("gpp-explain");
    let path = dir.0.join("c.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .arg("explain")
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const EXPLAIN_CONFIG: &str = r#"
[proxy]
listen = ["127.0.0.1:1"]
[[site]]
name = "t"
hosts = ["*"]
upstreams = ["127.0.0.1:2"]
[site.consent]
sources = ["first-party", "gpp"]
[[site.consent.header]]
name = "X-TCF-Consent"
format = "tcf"
"#;

#[test]
fn explain_shows_gpp_fields_with_their_specification_names_and_types() {
    let v = explain(
        EXPLAIN_CONFIG,
        &[
            "--cookie",
            &format!("__gpp={GPP_USCA_OPT_OUT}; __gpp_sid=8"),
        ],
    );
    let src = &v["sources"][0];
    assert_eq!(src["format"], "gpp");
    assert_eq!(src["cookie"], "__gpp");
    let d = &src["details"];
    assert_eq!(d["section_ids"], json!([8]));
    let usca = &d["sections"]["usca"];
    assert_eq!(usca["SaleOptOut"], json!(1));
    assert_eq!(usca["Version"], json!(1));
    assert_eq!(
        usca["SensitiveDataProcessing"],
        json!([2, 1, 0, 2, 1, 0, 2, 1, 0])
    );
    assert_eq!(usca["KnownChildSensitiveDataConsents"], json!([2, 1]));
    assert_eq!(usca["PersonalDataConsents"], json!(1));
    assert_eq!(usca["MspaServiceProviderMode"], json!(2));
    assert_eq!(usca["Gpc"], json!(true));
    assert_eq!(usca["GpcSegmentType"], json!(1));
    assert_eq!(v["categories"]["marketing"], json!(false));
}

#[test]
fn explain_shows_tcfeuv2_and_uspv1_under_the_specification_names() {
    // tcfeuv2 and uspv1 (iabgpp-java GppModelTest, tests/fixtures/gpp/vectors.json).
    let s = "DBACNYA~CPSG_8APSG_8ANwAAAENAwCAAAAAAAAAAAAAAAAAAAAA.QAAA.IAAA~1YNN";
    let v = explain(EXPLAIN_CONFIG, &["--cookie", &format!("__gpp={s}")]);
    let d = &v["sources"][0]["details"];
    let tc = &d["sections"]["tcfeuv2"];
    // Integers as integers, booleans as booleans, bitfields as lists of booleans (id 1
    // first), vendor lists as lists of ids; the snake-case names of a plain TC string are
    // not used here.
    assert_eq!(tc["CmpId"], json!(880));
    assert_eq!(tc["VendorListVersion"], json!(48));
    assert_eq!(tc["Created"], json!(16409952000u64));
    assert_eq!(tc["ConsentLanguage"], json!("EN"));
    assert_eq!(tc["IsServiceSpecific"], json!(false));
    assert_eq!(tc["UseNonStandardStacks"], json!(false));
    assert_eq!(tc["PurposeConsents"], json!(vec![false; 24]));
    assert_eq!(tc["SpecialFeatureOptins"], json!(vec![false; 12]));
    assert_eq!(tc["VendorConsents"], json!([]));
    assert_eq!(tc["PublisherRestrictions"], json!([]));
    assert!(
        tc.get("cmp_id").is_none() && tc.get("purposes_consent").is_none(),
        "{tc}"
    );
    assert_eq!(
        d["sections"]["uspv1"],
        json!({"Version": 1, "Notice": "Y", "OptOutSale": "N", "LspaCovered": "N"})
    );
    assert_eq!(d["unsupported"], json!([]));
}

#[test]
fn explain_lists_a_header_source_by_its_header_name() {
    // The IAB TCF v2 specification's example TC string (purposes 1-3 consented).
    let tc = "COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA";
    let v = explain(
        EXPLAIN_CONFIG,
        &["--header", &format!("X-TCF-Consent: {tc}")],
    );
    let src = &v["sources"][0];
    assert_eq!(src["format"], "tcf");
    assert_eq!(src["header"], "x-tcf-consent");
    assert!(src.get("cookie").is_none());
    assert_eq!(src["details"]["cmp_id"], json!(27));
}
