//! Jurisdictions end to end (issue 11, "Where the visitor is", "What applies there"): the real
//! binary between a real HTTP/1.1 client on loopback and a real origin that sets one cookie of
//! each category. A visitor's location comes from a CDN's country/region headers (trusted
//! peers only) or from a MaxMind database the test writes itself; the site's
//! `[[site.jurisdiction]]` rule there decides the consent model.
//!
//! The test client connects from 127.0.0.1: with `trusted_proxies` unset loopback may send
//! location headers (a local CDN stand-in); with `trusted_proxies = ["10.0.0.0/8"]` it may not.

mod common;
use common::*;

/// Cloudflare's headers (developers.cloudflare.com, "Cloudflare HTTP headers": `CF-IPCountry`;
/// "Managed Transforms": `cf-region-code`, the subdivision alone).
const GEO: &str =
    "[proxy.geo]\ncountry_header = \"CF-IPCountry\"\nregion_header = \"cf-region-code\"\n";

/// The issue's example: opt-out for US states with comprehensive privacy laws, opt-in for the
/// EU, and `rest`.
const RULES: &str = r#"
[[site.jurisdiction]]
name = "us-optout"
regions = ["US-CA", "US-CO", "US-CT", "US-VA", "US-UT", "US-OR", "US-TX"]
model = "opt-out"
[[site.jurisdiction]]
name = "eu"
regions = ["DE", "FR", "AT"]
model = "opt-in"
[[site.jurisdiction]]
name = "us-rest"
regions = ["US"]
model = "off"
"#;

/// An origin that sets a necessary, an analytics and a marketing cookie on every page.
fn cookie_origin() -> Origin {
    Origin::start(|_| {
        response(
            "200 OK",
            &[
                ("Content-Type", "text/plain"),
                ("Set-Cookie", "SESSIONID=s1; Path=/"),
                ("Set-Cookie", "_ga=GA1.1.1.1; Path=/"),
                ("Set-Cookie", "_fbp=fb.1.1; Path=/"),
            ],
            b"ok\n",
        )
    })
}

/// The shop site with `site_keys` (before its tables) and the jurisdiction rules.
fn site(origin: &Origin, site_keys: &str) -> String {
    // `[[site.jurisdiction]]` after the site's own tables: it belongs to the last `[[site]]`.
    format!("{}{RULES}", shop_site(origin.addr, site_keys))
}

fn names(r: &RawResponse) -> Vec<String> {
    let mut n = r.set_cookie_names();
    n.sort();
    n
}

const NECESSARY_ONLY: [&str; 1] = ["SESSIONID"];
const ALL: [&str; 3] = ["SESSIONID", "_fbp", "_ga"];

#[test]
fn a_california_visitor_without_consent_gets_analytics_and_marketing_cookies() {
    let origin = cookie_origin();
    let proxy = Proxy::start_with(&site(&origin, ""), GEO);
    let ca = [("CF-IPCountry", "US"), ("cf-region-code", "CA")];
    let r = proxy.get("/", &ca);
    assert_eq!(r.status, 200);
    assert_eq!(names(&r), ALL);
    // Full ISO 3166-2 in the region header works the same.
    let r = proxy.get("/", &[("CF-IPCountry", "us"), ("cf-region-code", "US-CA")]);
    assert_eq!(names(&r), ALL);
    // The rule applied is counted and logged by name.
    let labels = [
        ("site", "shop"),
        ("jurisdiction", "us-optout"),
        ("reason", "matched"),
    ];
    proxy.expect_metric("consentgate_jurisdiction_requests_total", &labels, 2.0);
    eventually("access log line with the jurisdiction", || {
        proxy.log_text().contains("\"jurisdiction\":\"us-optout\"")
    });
}

#[test]
fn gpc_and_explicit_refusals_opt_a_california_visitor_out() {
    let origin = cookie_origin();
    let proxy = Proxy::start_with(&site(&origin, ""), GEO);
    let ca = [("CF-IPCountry", "US"), ("cf-region-code", "CA")];
    // Sec-GPC: 1 is an opt-out of sale/sharing: marketing goes, analytics stays.
    let r = proxy.get("/", &[ca[0], ca[1], ("Sec-GPC", "1")]);
    assert_eq!(names(&r), ["SESSIONID", "_ga"]);
    // ... even where the site ignores GPC for opt-in visitors.
    drop(proxy);
    let proxy = Proxy::start_with(&site(&origin, "gpc = \"ignore\""), GEO);
    let r = proxy.get("/", &[ca[0], ca[1], ("Sec-GPC", "1")]);
    assert_eq!(names(&r), ["SESSIONID", "_ga"]);
    // The first-party cookie lists what is granted: marketing is refused explicitly, and an
    // explicit refusal always wins.
    let r = proxy.get("/", &[ca[0], ca[1], ("Cookie", "consent=analytics")]);
    assert_eq!(names(&r), ["SESSIONID", "_ga"]);
    // A consent cookie that cannot be read refuses everything (fail closed).
    let r = proxy.get("/", &[ca[0], ca[1], ("Cookie", "consent=%%garbage")]);
    assert_eq!(names(&r), NECESSARY_ONLY);
    // The withheld category's request cookie is withheld from the origin too.
    proxy.get(
        "/",
        &[ca[0], ca[1], ("Sec-GPC", "1"), ("Cookie", "_ga=1; _fbp=2")],
    );
    assert_eq!(origin.last().header_strings("cookie"), ["_ga=1"]);
}

/// usca with SaleOptOut = 1 and Gpc = true, from IABTechLab/iabgpp-java's UsCaTest (also in
/// tests/fixtures/gpp/vectors.json), under a GPP header listing section 8.
const GPP_USCA_OPT_OUT: &str = "DBABBg~BVWSSSVY.YA";
/// usca with the reference libraries' defaults: no opt-out.
const GPP_USCA_DEFAULT: &str = "DBABBg~BAAAAABA.QA";

#[test]
fn a_gpp_opt_out_opts_a_california_visitor_out_of_marketing() {
    let origin = cookie_origin();
    let consent = "[site.consent]\nsources = [\"first-party\", \"gpp\"]\n";
    let proxy = Proxy::start_with(&site(&origin, consent), GEO);
    let ca = [("CF-IPCountry", "US"), ("cf-region-code", "CA")];
    // No cookie but the CMP's GPP string with a sale opt-out: marketing goes, analytics stays
    // (opt-out model: everything not refused is granted).
    let gpp = format!("__gpp={GPP_USCA_OPT_OUT}; __gpp_sid=8");
    let r = proxy.get("/", &[ca[0], ca[1], ("Cookie", &gpp)]);
    assert_eq!(names(&r), ["SESSIONID", "_ga"]);
    // OneTrust's GPP cookie says the same.
    let ot = format!("OTGPPConsent={GPP_USCA_OPT_OUT}");
    let r = proxy.get("/", &[ca[0], ca[1], ("Cookie", &ot)]);
    assert_eq!(names(&r), ["SESSIONID", "_ga"]);
    // A GPP string without an opt-out refuses nothing: everything stays.
    let gpp = format!("__gpp={GPP_USCA_DEFAULT}; __gpp_sid=8");
    let r = proxy.get("/", &[ca[0], ca[1], ("Cookie", &gpp)]);
    assert_eq!(names(&r), ALL);
    // A GPP string without an opt-out grants an EU visitor nothing (opt-in: a US section is
    // no GDPR consent).
    let gpp = format!("__gpp={GPP_USCA_DEFAULT}; __gpp_sid=8");
    let r = proxy.get("/", &[("CF-IPCountry", "DE"), ("Cookie", &gpp)]);
    assert_eq!(names(&r), NECESSARY_ONLY);
}

/// An origin that also sets a preferences cookie (`wp-settings-1`: preferences in the built-in
/// catalogue), so a test sees every category.
fn four_category_origin() -> Origin {
    Origin::start(|_| {
        response(
            "200 OK",
            &[
                ("Content-Type", "text/plain"),
                ("Set-Cookie", "SESSIONID=s1; Path=/"),
                ("Set-Cookie", "wp-settings-1=m; Path=/"),
                ("Set-Cookie", "_ga=GA1.1.1.1; Path=/"),
                ("Set-Cookie", "_fbp=fb.1.1; Path=/"),
            ],
            b"ok\n",
        )
    })
}

const ALL_FOUR: [&str; 4] = ["SESSIONID", "_fbp", "_ga", "wp-settings-1"];
const ALL_BUT_MARKETING: [&str; 3] = ["SESSIONID", "_ga", "wp-settings-1"];

/// Under opt-out only an explicit refusal opts out, of the category it names: the first-party
/// flag form `marketing:0` (cookie or an app's header) and OneTrust's `C0004:0` leave analytics
/// and preferences granted. The list form still lists what is granted. Under opt-in a category
/// no source grants stays refused (fail closed).
#[test]
fn an_explicit_0_opts_a_california_visitor_out_of_only_that_category() {
    let origin = four_category_origin();
    let header = "[[site.consent.header]]\nname = \"X-Consent\"\nformat = \"first-party\"\n";
    let proxy = Proxy::start_with(&site(&origin, header), GEO);
    let ca = |extra: (&'static str, &'static str)| {
        names(&proxy.get(
            "/",
            &[("CF-IPCountry", "US"), ("cf-region-code", "CA"), extra],
        ))
    };
    assert_eq!(ca(("Cookie", "consent=marketing:0")), ALL_BUT_MARKETING);
    assert_eq!(ca(("Cookie", "consent=marketing%3A0")), ALL_BUT_MARKETING);
    assert_eq!(ca(("X-Consent", "marketing:0")), ALL_BUT_MARKETING);
    // OneTrust's groups as a CMP writes them without the functional group: C0004 (targeting)
    // refused, C0002 granted, C0003 (preferences) absent.
    let ot = "OptanonConsent=groups=C0001%3A1%2CC0002%3A1%2CC0004%3A0";
    assert_eq!(ca(("Cookie", ot)), ALL_BUT_MARKETING);
    // A flag that grants refuses nothing.
    assert_eq!(ca(("Cookie", "consent=analytics:1")), ALL_FOUR);
    // Every category flagged 0: every one refused.
    let none = "consent=analytics:0,marketing:0,preferences:0";
    assert_eq!(ca(("Cookie", none)), NECESSARY_ONLY);
    // The list form lists what is granted: what it leaves out is refused.
    assert_eq!(ca(("Cookie", "consent=analytics")), ["SESSIONID", "_ga"]);
    assert_eq!(ca(("X-Consent", "analytics")), ["SESSIONID", "_ga"]);
    // Opt-in (an EU visitor): a flag grants what it names and nothing else.
    let de = |extra: (&'static str, &'static str)| {
        names(&proxy.get("/", &[("CF-IPCountry", "DE"), extra]))
    };
    assert_eq!(de(("Cookie", "consent=analytics:1")), ["SESSIONID", "_ga"]);
    assert_eq!(de(("Cookie", "consent=marketing:0")), NECESSARY_ONLY);
    assert_eq!(de(("X-Consent", "marketing:0")), NECESSARY_ONLY);
    assert_eq!(de(("Cookie", ot)), ["SESSIONID", "_ga"]);
}

/// conf/jurisdictions.example.toml as shipped, run by the real binary, changed only where a
/// test must: the listen address (the harness picks its own, and an admin listener), the
/// origin, and loopback added to `trusted_proxies` (the test client stands in for the CDN).
/// `edit` may change more.
fn shipped_example(origin: &Origin, edit: impl FnOnce(String) -> String) -> Proxy {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/jurisdictions.example.toml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let swap = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the example no longer has {from:?}");
        text.replacen(from, to, 1)
    };
    // The harness writes `[proxy]` and `listen` itself; the example's other [proxy] keys
    // and tables follow them.
    let text = swap(text, "[proxy]\nlisten = [\"127.0.0.1:8080\"]\n", "");
    let text = swap(
        text,
        "trusted_proxies = [",
        "trusted_proxies = [\"127.0.0.1/32\", ",
    );
    let upstream = format!("upstreams = [\"{}\"]", origin.addr);
    let text = swap(text, "upstreams = [\"127.0.0.1:8081\"]", &upstream);
    Proxy::start_with("", &edit(text))
}

/// usca with SaleOptOut = 1 and SharingOptOut = 1, without a GPC sub-section (iabgpp-java
/// UsCaTest testDecodeWithGpcSegmentExcluded; tests/fixtures/gpp/vectors.json), under a GPP
/// header listing [8].
const GPP_USCA_SHARING_OPT_OUT: &str = "DBABBg~BVWSSSVY";

/// The refusals a California visitor's CMP writes, each alone: OneTrust's groups, OneTrust's
/// GPP copy, the IAB CMP API's `__gpp` with `__gpp_sid`, the first-party flag form.
const CA_OPT_OUTS: [&str; 4] = [
    "OptanonConsent=isGpcEnabled=0&version=202501.2.0&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A0",
    "OTGPPConsent=DBABBg~BVWSSSVY",
    "__gpp=DBABBg~BVWSSSVY; __gpp_sid=8",
    "consent=marketing:0",
];

#[test]
fn the_shipped_example_honours_every_opt_out_a_california_visitor_sends() {
    assert!(CA_OPT_OUTS[1].ends_with(GPP_USCA_SHARING_OPT_OUT));
    let origin = four_category_origin();
    let proxy = shipped_example(&origin, |t| t);
    let ca = [("CF-IPCountry", "US"), ("cf-region-code", "CA")];
    // No consent at all: opt-out grants everything.
    assert_eq!(names(&proxy.get("/", &ca)), ALL_FOUR);
    for cookie in CA_OPT_OUTS {
        let r = proxy.get("/", &[ca[0], ca[1], ("Cookie", cookie)]);
        assert_eq!(names(&r), ALL_BUT_MARKETING, "{cookie}");
    }
    // Both OneTrust cookies together, as OneTrust writes them.
    let both = format!("{}; {}", CA_OPT_OUTS[0], CA_OPT_OUTS[1]);
    assert_eq!(
        names(&proxy.get("/", &[ca[0], ca[1], ("Cookie", &both)])),
        ALL_BUT_MARKETING
    );
    // An EU visitor: nothing without consent; OneTrust's grants are read for them too.
    assert_eq!(
        names(&proxy.get("/", &[("CF-IPCountry", "DE")])),
        NECESSARY_ONLY
    );
    let granted = "OptanonConsent=groups=C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A1";
    let r = proxy.get("/", &[("CF-IPCountry", "DE"), ("Cookie", granted)]);
    assert_eq!(names(&r), ALL_FOUR);

    // `explain` on the file as shipped names the sources it read.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/jurisdictions.example.toml"
    ))
    .unwrap();
    let (ok, out, err) = run_cli(
        &text,
        &[
            "explain",
            "--country",
            "US",
            "--region",
            "US-CA",
            "--cookie",
            &both,
            "--set-cookie",
            "_fbp=1",
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let formats: Vec<&str> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["onetrust", "gpp"], "{v}");
    assert_eq!(v["categories"]["marketing"], false, "{v}");
    assert_eq!(v["set_cookie"][0]["action"], "strip", "{v}");
}

/// The same file with its `[site.consent]` table removed: `sources` not written on a site
/// with an opt-out rule reads every format by its default cookie names, so no CMP's refusal
/// is missed; here also Cookiebot's, which the shipped `sources` do not list.
#[test]
fn an_opt_out_site_without_sources_reads_every_consent_format() {
    let origin = four_category_origin();
    let proxy = shipped_example(&origin, |t| {
        let table = "[site.consent]\nsources = [\"first-party\", \"tcf\", \"onetrust\", \"gpp\"]\n";
        assert!(t.contains(table), "the example's [site.consent] changed");
        t.replacen(table, "", 1)
    });
    let ca = [("CF-IPCountry", "US"), ("cf-region-code", "CA")];
    assert_eq!(names(&proxy.get("/", &ca)), ALL_FOUR);
    // Cookiebot, marketing refused (a captured value, tests/fixtures/consent/cookiebot.jsonl
    // `cb-strava-ca-ver2-no-marketing`).
    let cookiebot = "CookieConsent={stamp:%27bcNT6B1q2d1Rc6fNV3lO+DZ80/rmyyi+x5RltX3A6ybdHJuMQHx02w==%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:true%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:2%2Cutc:1766781554945%2Cregion:%27ca%27}";
    for cookie in CA_OPT_OUTS.into_iter().chain([cookiebot]) {
        let r = proxy.get("/", &[ca[0], ca[1], ("Cookie", cookie)]);
        assert_eq!(names(&r), ALL_BUT_MARKETING, "{cookie}");
    }
}

/// ustx (section 16) written by the IAB's `@iabgpp/cmpapi` 3.2.0 encoder: its defaults (no
/// opt-out) and with `SaleOptOutNotice` = 1, `SaleOptOut` = 1 (opted out of sale).
const GPP_USTX_DEFAULT: &str = "DBABEw~BAAAAAQA";
const GPP_USTX_OPT_OUT: &str = "DBABEw~BEQAAAQA";

#[test]
fn a_uspv1_or_state_section_opt_out_opts_a_texas_visitor_out_of_marketing() {
    let origin = cookie_origin();
    let consent = "[site.consent]\nsources = [\"first-party\", \"gpp\"]\n";
    let proxy = Proxy::start_with(&site(&origin, consent), GEO);
    let tx = [("CF-IPCountry", "US"), ("cf-region-code", "TX")];
    for (cookie, want) in [
        // uspv1 alone: `Y` in third place is an opt-out of sale; `N` and `-` are not.
        ("__gpp=DBABTA~1YYN".to_string(), &["SESSIONID", "_ga"][..]),
        ("__gpp=DBABTA~1YNN".to_string(), &ALL[..]),
        ("__gpp=DBABTA~1---".to_string(), &ALL[..]),
        // The Texas section: SaleOptOut = 1 opts out; its defaults do not; a GPC sub-section
        // saying true opts out too.
        (
            format!("__gpp={GPP_USTX_OPT_OUT}; __gpp_sid=16"),
            &["SESSIONID", "_ga"][..],
        ),
        (format!("__gpp={GPP_USTX_DEFAULT}; __gpp_sid=16"), &ALL[..]),
        (
            format!("__gpp={GPP_USTX_DEFAULT}.YA"),
            &["SESSIONID", "_ga"][..],
        ),
        // A uspv1 flag outside Y/N/- is unreadable: everything refused (fail closed).
        ("__gpp=DBABTA~1YQN".to_string(), &NECESSARY_ONLY[..]),
    ] {
        let r = proxy.get("/", &[tx[0], tx[1], ("Cookie", &cookie)]);
        assert_eq!(names(&r), want, "{cookie}");
    }
}

#[test]
fn an_eu_visitor_gets_neither_and_off_gates_nothing() {
    let origin = cookie_origin();
    let proxy = Proxy::start_with(&site(&origin, ""), GEO);
    let r = proxy.get("/", &[("CF-IPCountry", "DE")]);
    assert_eq!(names(&r), NECESSARY_ONLY);
    // Consent still works for opt-in visitors.
    let r = proxy.get(
        "/",
        &[("CF-IPCountry", "DE"), ("Cookie", "consent=analytics")],
    );
    assert_eq!(names(&r), ["SESSIONID", "_ga"]);
    // New York (no rule for US-NY; `US` matches): model "off", nothing gated, even an
    // unknown cookie.
    let r = proxy.get("/", &[("CF-IPCountry", "US"), ("cf-region-code", "NY")]);
    assert_eq!(names(&r), ALL);
    proxy.get(
        "/",
        &[("CF-IPCountry", "US"), ("Cookie", "_fbp=1; mystery=2")],
    );
    assert_eq!(
        origin.last().header_strings("cookie"),
        ["_fbp=1; mystery=2"]
    );
}

#[test]
fn an_unknown_location_takes_the_configured_rule_else_the_strictest() {
    let origin = cookie_origin();
    // Default: the strictest rule configured (opt-in, `eu`).
    let proxy = Proxy::start_with(&site(&origin, ""), GEO);
    for headers in [
        &[][..],
        &[("CF-IPCountry", "XX")][..], // Cloudflare: no country data
        &[("CF-IPCountry", "T1")][..], // Cloudflare: Tor
        &[("CF-IPCountry", "<script>")][..],
    ] {
        let r = proxy.get("/", headers);
        assert_eq!(names(&r), NECESSARY_ONLY, "{headers:?}");
    }
    // A known country no rule lists: the same fallback.
    let r = proxy.get("/", &[("CF-IPCountry", "JP")]);
    assert_eq!(names(&r), NECESSARY_ONLY);
    let labels = [("jurisdiction", "eu"), ("reason", "unknown_location")];
    proxy.expect_metric("consentgate_jurisdiction_requests_total", &labels, 4.0);
    let labels = [("jurisdiction", "eu"), ("reason", "no_match")];
    proxy.expect_metric("consentgate_jurisdiction_requests_total", &labels, 1.0);
    drop(proxy);
    // Configured: unknown visitors are treated as opt-out.
    let proxy = Proxy::start_with(&site(&origin, "unknown_jurisdiction = \"us-optout\""), GEO);
    let r = proxy.get("/", &[]);
    assert_eq!(names(&r), ALL);
    let r = proxy.get("/", &[("CF-IPCountry", "DE")]);
    assert_eq!(
        names(&r),
        NECESSARY_ONLY,
        "a known EU visitor is still opt-in"
    );
}

#[test]
fn location_headers_from_an_untrusted_peer_are_ignored() {
    let origin = cookie_origin();
    // trusted_proxies set, without loopback: the test client is not a trusted CDN.
    let proxy_keys = format!("trusted_proxies = [\"10.0.0.0/8\"]\n{GEO}");
    let proxy = Proxy::start_with(&site(&origin, ""), &proxy_keys);
    let r = proxy.get("/", &[("CF-IPCountry", "US"), ("cf-region-code", "CA")]);
    assert_eq!(
        names(&r),
        NECESSARY_ONLY,
        "unknown location: the strictest rule"
    );
    let labels = [("jurisdiction", "eu"), ("reason", "unknown_location")];
    proxy.expect_metric("consentgate_jurisdiction_requests_total", &labels, 1.0);
    drop(proxy);
    // Listed: believed.
    let proxy_keys = format!("trusted_proxies = [\"127.0.0.1/32\"]\n{GEO}");
    let proxy = Proxy::start_with(&site(&origin, ""), &proxy_keys);
    let r = proxy.get("/", &[("CF-IPCountry", "US"), ("cf-region-code", "CA")]);
    assert_eq!(names(&r), ALL);
}

#[test]
fn a_site_without_rules_stays_opt_in_whatever_the_headers_say() {
    let origin = cookie_origin();
    let proxy = Proxy::start_with(&shop_site(origin.addr, ""), GEO);
    let r = proxy.get("/", &[("CF-IPCountry", "US"), ("cf-region-code", "CA")]);
    assert_eq!(names(&r), NECESSARY_ONLY);
    assert!(!proxy
        .metrics()
        .contains("consentgate_jurisdiction_requests_total{"));
}

/// A GeoLite2-City-shaped database (MaxMind's documented record layout: `country.iso_code`,
/// `subdivisions[].iso_code`), written by the independent `mmdb-writer` crate:
/// 203.0.113.0/24 in California, 198.51.100.0/24 in Germany, 192.0.2.0/24 in the US without a
/// subdivision record (a country-level answer).
fn write_city_db(path: &std::path::Path) {
    use serde_json::json;
    let rows = [
        (
            "203.0.113.0/24",
            json!({"country": {"iso_code": "US", "names": {"en": "United States"}},
                   "subdivisions": [{"iso_code": "CA", "names": {"en": "California"}}]}),
        ),
        (
            "198.51.100.0/24",
            json!({"country": {"iso_code": "DE", "names": {"en": "Germany"}},
                   "subdivisions": [{"iso_code": "BE"}]}),
        ),
        ("192.0.2.0/24", json!({"country": {"iso_code": "US"}})),
    ];
    write_db(path, &rows);
}

/// Writes `rows` (network, record) as a City database at `path`.
fn write_db(path: &std::path::Path, rows: &[(&str, serde_json::Value)]) {
    let mut w = mmdb_writer::Writer::new("GeoLite2-City");
    for (net, record) in rows {
        w.insert(net.parse::<ipnet::IpNet>().unwrap(), record)
            .unwrap();
    }
    std::fs::write(path, w.to_bytes().unwrap()).unwrap();
}

#[test]
fn a_reload_reads_the_database_again() {
    let origin = cookie_origin();
    let dir = TempDir::new("geo-db-reload");
    let db = dir.0.join("city.mmdb");
    write_city_db(&db);
    let proxy_keys = format!(
        "trusted_proxies = [\"127.0.0.1/32\"]\n[proxy.geo]\ndatabase = \"{}\"\n",
        db.display()
    );
    let proxy = Proxy::start_with(&site(&origin, ""), &proxy_keys);
    let xff = [("X-Forwarded-For", "203.0.113.7")];
    assert_eq!(names(&proxy.get("/", &xff)), ALL);
    // The network moves to Germany in the new edition of the database.
    let moved = [(
        "203.0.113.0/24",
        serde_json::json!({"country": {"iso_code": "DE"}}),
    )];
    write_db(&db, &moved);
    let (status, body) = proxy.reload();
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&proxy.get("/", &xff)), NECESSARY_ONLY);
    // A database that cannot be read fails the reload, naming it; the loaded one keeps serving.
    std::fs::write(&db, b"not a database").unwrap();
    let (status, body) = proxy.reload();
    assert_ne!(status, 200);
    assert!(body.contains("city.mmdb"), "{body}");
    assert_eq!(names(&proxy.get("/", &xff)), NECESSARY_ONLY);
}

/// What MaxMind's own C library (libmaxminddb's `mmdblookup`, Debian package `mmdb-bin`) reads
/// at `path` for `ip`: the oracle that the database the test wrote is the one it means, read
/// by an implementation that shares nothing with the `maxminddb` crate consentgate uses.
/// `None` when the address is not in the database.
fn mmdblookup(db: &std::path::Path, ip: &str, path: &[&str]) -> Option<String> {
    let out = std::process::Command::new("mmdblookup")
        .arg("--file")
        .arg(db)
        .args(["--ip", ip])
        .args(path)
        .output()
        .expect("mmdblookup runs");
    let text = String::from_utf8_lossy(&out.stdout);
    // `  "US" <utf8_string>`; nothing (and a message on stderr) when not found.
    text.split('"').nth(1).map(str::to_string)
}

#[test]
fn the_test_database_reads_the_same_in_maxminds_reference_reader() {
    if std::process::Command::new("mmdblookup")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "mmdblookup is missing: install the Debian package mmdb-bin (scripts/test does)"
        );
        eprintln!("skipped: mmdblookup is not installed (Debian package mmdb-bin)");
        return;
    }
    let dir = TempDir::new("geo-db-oracle");
    let db = dir.0.join("city.mmdb");
    write_city_db(&db);
    let country = |ip| mmdblookup(&db, ip, &["country", "iso_code"]);
    let sub = |ip| mmdblookup(&db, ip, &["subdivisions", "0", "iso_code"]);
    assert_eq!(country("203.0.113.7").as_deref(), Some("US"));
    assert_eq!(sub("203.0.113.7").as_deref(), Some("CA"));
    assert_eq!(country("198.51.100.7").as_deref(), Some("DE"));
    assert_eq!(sub("198.51.100.7").as_deref(), Some("BE"));
    assert_eq!(country("192.0.2.7").as_deref(), Some("US"));
    assert_eq!(sub("192.0.2.7"), None);
    assert_eq!(country("100.64.0.1"), None);
    assert_eq!(country("127.0.0.1"), None);
}

#[test]
fn the_database_locates_the_forwarded_client_of_a_trusted_peer() {
    let origin = cookie_origin();
    let dir = TempDir::new("geo-db");
    let db = dir.0.join("city.mmdb");
    write_city_db(&db);
    let geo = format!("[proxy.geo]\ndatabase = \"{}\"\n", db.display());
    let proxy_keys = format!("trusted_proxies = [\"127.0.0.1/32\"]\n{geo}");
    let proxy = Proxy::start_with(&site(&origin, ""), &proxy_keys);
    let xff = |ip| [("X-Forwarded-For", ip)];
    assert_eq!(names(&proxy.get("/", &xff("203.0.113.7"))), ALL);
    let gpc = [("X-Forwarded-For", "203.0.113.7"), ("Sec-GPC", "1")];
    assert_eq!(names(&proxy.get("/", &gpc)), ["SESSIONID", "_ga"]);
    assert_eq!(names(&proxy.get("/", &xff("198.51.100.7"))), NECESSARY_ONLY);
    // A country-level answer: `US` matches the `us-rest` rule (off).
    assert_eq!(names(&proxy.get("/", &xff("192.0.2.7"))), ALL);
    // An address the database does not hold (and the peer itself, loopback): unknown.
    assert_eq!(names(&proxy.get("/", &xff("100.64.0.1"))), NECESSARY_ONLY);
    assert_eq!(names(&proxy.get("/", &[])), NECESSARY_ONLY);
    drop(proxy);

    // From an untrusted peer X-Forwarded-For is not believed: the peer (127.0.0.1) is looked
    // up, and the database does not know it.
    let proxy_keys = format!("trusted_proxies = [\"10.0.0.0/8\"]\n{geo}");
    let proxy = Proxy::start_with(&site(&origin, ""), &proxy_keys);
    assert_eq!(names(&proxy.get("/", &xff("203.0.113.7"))), NECESSARY_ONLY);
    drop(proxy);

    // Both sources: the trusted header wins over the database.
    let proxy_keys = format!(
        "trusted_proxies = [\"127.0.0.1/32\"]\n{GEO}database = \"{}\"\n",
        db.display()
    );
    let proxy = Proxy::start_with(&site(&origin, ""), &proxy_keys);
    let both = [("X-Forwarded-For", "203.0.113.7"), ("CF-IPCountry", "DE")];
    assert_eq!(names(&proxy.get("/", &both)), NECESSARY_ONLY);
    // Without the header, the database answers.
    assert_eq!(names(&proxy.get("/", &xff("203.0.113.7"))), ALL);
}

#[test]
fn the_database_locates_the_forwarded_client_of_a_loopback_peer_when_trusted_proxies_is_unset() {
    // The issue: location is "honoured only from trusted_proxies peers (loopback counts as
    // trusted when trusted_proxies is unset ...) ... The client address for the lookup is the
    // forwarded one only from trusted peers." A local CDN stand-in on loopback, no
    // `trusted_proxies`: its X-Forwarded-For locates the visitor in the database, as its
    // location headers would.
    let origin = cookie_origin();
    let dir = TempDir::new("geo-db-lo");
    let db = dir.0.join("city.mmdb");
    write_city_db(&db);
    let geo = format!("[proxy.geo]\ndatabase = \"{}\"\n", db.display());
    let proxy = Proxy::start_with(&site(&origin, ""), &geo);
    // California (opt-out): everything; Germany (opt-in): necessary only.
    let xff = |v| [("X-Forwarded-For", v)];
    assert_eq!(names(&proxy.get("/", &xff("203.0.113.7"))), ALL);
    assert_eq!(names(&proxy.get("/", &xff("198.51.100.7"))), NECESSARY_ONLY);
    // The right-most hop that is not loopback is the client (a chain of local hops).
    let chain = xff("198.51.100.7, 203.0.113.7, 127.0.0.1");
    assert_eq!(names(&proxy.get("/", &chain)), ALL);
    // No forwarded address: the peer itself, which the database does not hold (unknown:
    // the strictest rule).
    assert_eq!(names(&proxy.get("/", &[])), NECESSARY_ONLY);
    // Locating is all it is believed for: forwarding still trusts nobody, so the origin is
    // told the peer's address, not the one the client wrote.
    proxy.get("/", &xff("203.0.113.7"));
    assert_eq!(
        origin.last().header_strings("x-forwarded-for"),
        ["127.0.0.1"]
    );
    drop(proxy);

    // With `trusted_proxies` set and loopback not in it, loopback's header is not believed.
    let proxy_keys = format!("trusted_proxies = [\"10.0.0.0/8\"]\n{geo}");
    let proxy = Proxy::start_with(&site(&origin, ""), &proxy_keys);
    assert_eq!(names(&proxy.get("/", &xff("203.0.113.7"))), NECESSARY_ONLY);
}

/// Writes a configuration with `rules` and runs the binary with `args`.
fn run_cli(config: &str, args: &[&str]) -> (bool, String, String) {
    let dir = TempDir::new("juris-cli");
    let path = dir.0.join("consentgate.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE"),
    )
}

fn cli_config(site_keys: &str, rules: &str) -> String {
    format!(
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"shop\"\nupstreams = [\"127.0.0.1:2\"]\n{site_keys}\n[site.cookies]\nanalytics = [\"_ga\"]\nmarketing = [\"_fbp\"]\n{rules}"
    )
}

#[test]
fn explain_shows_the_rule_that_applied_and_why() {
    let config = cli_config("", RULES);
    let explain = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["explain", "--set-cookie", "_ga=1", "--set-cookie", "_fbp=1"];
        args.extend_from_slice(extra);
        let (ok, out, err) = run_cli(&config, &args);
        assert!(ok, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let v = explain(&["--country", "US", "--region", "US-CA"]);
    // Exactly the issue's keys: {"name", "model", "country", "region"}.
    assert_eq!(
        v["jurisdiction"],
        serde_json::json!({"name": "us-optout", "model": "opt-out", "country": "US", "region": "US-CA"})
    );
    // Why, beside it.
    assert_eq!(v["jurisdiction_reason"], "matched");
    let why = v["jurisdiction_why"].as_str().unwrap();
    assert!(why.contains("US-CA"), "{why}");
    assert_eq!(v["categories"]["marketing"], true);
    assert_eq!(v["set_cookie"][1]["action"], "keep");
    // The subdivision alone with --country; GPC denies marketing.
    let v = explain(&["--country", "US", "--region", "CA", "--gpc"]);
    assert_eq!(v["jurisdiction"]["region"], "US-CA");
    assert_eq!(v["categories"]["marketing"], false);
    assert_eq!(v["categories"]["analytics"], true);
    assert_eq!(v["set_cookie"][1]["action"], "strip");
    let v = explain(&["--country", "DE"]);
    assert_eq!(v["jurisdiction"]["name"], "eu");
    assert_eq!(v["jurisdiction"]["region"], serde_json::Value::Null);
    assert_eq!(v["categories"]["analytics"], false);
    // No location: the fallback, and why.
    let v = explain(&[]);
    assert_eq!(
        v["jurisdiction"],
        serde_json::json!({"name": "eu", "model": "opt-in", "country": null, "region": null})
    );
    assert_eq!(v["jurisdiction_reason"], "unknown_location");
    assert!(v["jurisdiction_why"]
        .as_str()
        .unwrap()
        .contains("strictest"));
    // A site without rules: opt-in, and the reason says so.
    let (ok, out, err) = run_cli(
        &cli_config("", ""),
        &["explain", "--country", "US", "--region", "US-CA"],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["jurisdiction"],
        serde_json::json!({"name": null, "model": "opt-in", "country": "US", "region": "US-CA"})
    );
    assert_eq!(v["jurisdiction_reason"], "no_rules");
    // A bad country is refused with a message.
    let (ok, _, err) = run_cli(&config, &["explain", "--country", "USA"]);
    assert!(!ok && err.contains("--country `USA`"), "{err}");
}

/// The proxy believes a region only beside the visitor's country: a region header alone is an
/// unknown location (the strictest rule). `explain --region` without `--country` would show the
/// region's rule instead, so it is refused, and the message names the flag to add.
#[test]
fn explain_refuses_a_region_without_its_country_which_the_proxy_would_ignore() {
    let origin = cookie_origin();
    let proxy = Proxy::start_with(&site(&origin, ""), GEO);
    let r = proxy.get("/", &[("cf-region-code", "US-CA")]);
    assert_eq!(names(&r), NECESSARY_ONLY);
    let labels = [
        ("site", "shop"),
        ("jurisdiction", "eu"),
        ("reason", "unknown_location"),
    ];
    proxy.expect_metric("consentgate_jurisdiction_requests_total", &labels, 1.0);

    let config = cli_config("", RULES);
    let (ok, out, err) = run_cli(&config, &["explain", "--region", "US-CA"]);
    assert!(!ok, "accepted: {out}");
    assert!(err.contains("--region `US-CA` needs --country"), "{err}");
    assert!(err.contains("add --country US"), "{err}");
    let (ok, out, err) = run_cli(&config, &["explain", "--region", "CA"]);
    assert!(!ok, "accepted: {out}");
    assert!(err.contains("add --country"), "{err}");
    // With its country the region's rule applies, in explain as in the proxy.
    let (ok, out, err) = run_cli(
        &config,
        &["explain", "--country", "US", "--region", "US-CA"],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["jurisdiction"]["name"], "us-optout", "{v}");
    let r = proxy.get("/", &[("CF-IPCountry", "US"), ("cf-region-code", "US-CA")]);
    assert_eq!(names(&r), ALL);
}

#[test]
fn config_errors_name_the_file_and_line() {
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let bad = cli_config(
        "unknown_jurisdiction = \"nowhere\"",
        "[[site.jurisdiction]]\nname = \"a\"\nregions = [\"US-CA\", \"California\"]\nmodel = \"opt-in\"\n[[site.jurisdiction]]\nname = \"b\"\nregions = [\"*\"]\nmodel = \"opt-maybe\"\n",
    );
    let (ok, _, err) = run_cli(&bad, &["check"]);
    assert!(!ok);
    let at = |needle: &str| format!("FILE:{}:", line_of(&bad, needle));
    let region = err.lines().find(|l| l.contains("California")).unwrap_or("");
    assert!(region.starts_with(&at("California")), "{err}");
    assert!(region.contains("ISO 3166-2"), "{err}");
    let model = err.lines().find(|l| l.contains("opt-maybe")).unwrap_or("");
    assert!(model.starts_with(&at("opt-maybe")), "{err}");
    assert!(
        model.contains("opt-out"),
        "the allowed values are listed: {err}"
    );
    // The unknown default is reported once the rest of the site reads; with a valid model:
    let bad = bad
        .replace("opt-maybe", "opt-out")
        .replace("\"California\"", "\"US-TX\"");
    let (ok, _, err) = run_cli(&bad, &["check"]);
    assert!(!ok);
    assert!(err.starts_with(&at("unknown_jurisdiction")), "{err}");
    assert!(err.contains("`nowhere`") && err.contains("a, b"), "{err}");

    // A database that cannot be opened is named with its path.
    let missing = "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[proxy.geo]\ndatabase = \"/nonexistent/city.mmdb\"\n[[site]]\nname = \"s\"\nupstreams = [\"127.0.0.1:2\"]\n";
    let (ok, _, err) = run_cli(missing, &["check"]);
    assert!(!ok);
    assert!(
        err.starts_with("FILE:4:") && err.contains("/nonexistent/city.mmdb"),
        "{err}"
    );

    // A rule after a `*` is reachable by no request: `check` warns and still passes.
    let shadowed = cli_config(
        "",
        "[[site.jurisdiction]]\nname = \"all\"\nregions = [\"*\"]\nmodel = \"opt-in\"\n[[site.jurisdiction]]\nname = \"ca\"\nregions = [\"US-CA\"]\nmodel = \"opt-out\"\n",
    );
    let (ok, _, err) = run_cli(&shadowed, &["check"]);
    assert!(ok, "{err}");
    let warn = format!("FILE:{}: warning:", line_of(&shadowed, "name = \"ca\""));
    assert!(
        err.contains(&warn) && err.contains("`ca` is never used"),
        "{err}"
    );
}
