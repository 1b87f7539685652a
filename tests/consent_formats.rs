//! Every consent format end to end through the running proxy (issue 3): the origin sets an
//! analytics and a marketing cookie; what the visitor's CMP cookie says decides which survive.

mod common;
use base64::Engine;
use common::*;

fn origin() -> Origin {
    Origin::start(|_| {
        response(
            "200 OK",
            &[
                ("Set-Cookie", "SESSIONID=s1; Path=/"),
                ("Set-Cookie", "_ga=GA1.1.1.1; Path=/"),
                ("Set-Cookie", "_fbp=fb.1.1.1; Path=/"),
                ("Set-Cookie", "lang=de; Path=/"),
            ],
            b"ok",
        )
    })
}

fn proxy(o: &Origin, extra: &str) -> Proxy {
    Proxy::start(&format!(
        r#"[[site]]
name = "cmp"
hosts = ["*"]
upstreams = ["{}"]
[site.consent]
sources = ["first-party", "tcf", "onetrust", "cookiebot", "cookieyes", "complianz", "klaro", "didomi"]
[site.consent.klaro]
services = {{ "google-analytics" = "analytics", "facebook-pixel" = "marketing" }}
[site.cookies]
preferences = ["lang"]
{extra}
"#,
        o.addr
    ))
}

/// Only the origin's own lines (expiry lines for cookies the request carried are excluded).
fn kept(p: &Proxy, cookie: &str) -> Vec<String> {
    p.get("/", &[("Cookie", cookie)])
        .set_cookies()
        .into_iter()
        .filter(|l| !l.contains("Max-Age=0"))
        .map(|l| l.split('=').next().unwrap().to_string())
        .collect()
}

#[path = "support/tc_encoder.rs"]
mod tc_encoder;

/// A TC string with these purposes consented and these vendors (as range entries).
fn tc_string(purposes: &[u16], vendors: &[u16]) -> String {
    tc_encoder::TcSpec::with(purposes, vendors).encode()
}

#[test]
fn tcf() {
    let o = origin();
    let p = proxy(&o, "");
    let analytics_only = tc_string(&[1, 8, 9, 10], &[755]);
    assert_eq!(
        kept(&p, &format!("euconsent-v2={analytics_only}")),
        ["SESSIONID", "_ga"]
    );
    let all = tc_string(&(1..=11).collect::<Vec<_>>(), &[755]);
    assert_eq!(
        kept(&p, &format!("euconsent-v2={all}")),
        ["SESSIONID", "_ga", "_fbp", "lang"]
    );
    assert_eq!(kept(&p, "euconsent-v2=garbage!"), ["SESSIONID"]);
    p.expect_metric(
        "consentgate_consent_errors_total",
        &[("site", "cmp"), ("format", "tcf")],
        1.0,
    );
}

#[test]
fn tcf_vendor_requirement() {
    let o = origin();
    let p = proxy(&o, "[site.cookies.vendors]\n\"_ga*\" = 755\n");
    let with_google = tc_string(&[1, 8, 9], &[755]);
    let without = tc_string(&[1, 8, 9], &[10, 20]);
    assert_eq!(
        kept(&p, &format!("euconsent-v2={with_google}")),
        ["SESSIONID", "_ga"]
    );
    assert_eq!(kept(&p, &format!("euconsent-v2={without}")), ["SESSIONID"]);
}

#[test]
fn onetrust() {
    let o = origin();
    let p = proxy(&o, "");
    let c = "OptanonConsent=isGpcEnabled=0&datestamp=Tue+Nov+24+2026&version=202409.1.0&consentId=abc&interactionCount=1&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A0%2CC0004%3A0&geolocation=DE%3BBY";
    assert_eq!(kept(&p, c), ["SESSIONID", "_ga"]);
    // `isGpcEnabled=1` records the browser's GPC signal; OneTrust's groups are the decision: it
    // turns the GPC-honouring groups off itself, and a visitor may opt back in.
    let gpc_honoured =
        "OptanonConsent=isGpcEnabled=1&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A0";
    assert_eq!(kept(&p, gpc_honoured), ["SESSIONID", "_ga", "lang"]);
    let opted_back_in =
        "OptanonConsent=isGpcEnabled=1&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A1";
    assert_eq!(
        kept(&p, opted_back_in),
        ["SESSIONID", "_ga", "_fbp", "lang"]
    );
}

#[test]
fn cookiebot() {
    let o = origin();
    let p = proxy(&o, "");
    let c = "CookieConsent=%7Bstamp%3A%27abc%3D%3D%27%2Cnecessary%3Atrue%2Cpreferences%3Atrue%2Cstatistics%3Afalse%2Cmarketing%3Atrue%2Cmethod%3A%27explicit%27%2Cver%3A1%2Cutc%3A1732441551063%2Cregion%3A%27de%27%7D";
    assert_eq!(kept(&p, c), ["SESSIONID", "_fbp", "lang"]);
    assert_eq!(
        kept(&p, "CookieConsent=-1"),
        ["SESSIONID", "_ga", "_fbp", "lang"]
    );
}

#[test]
fn cookieyes() {
    let o = origin();
    let p = proxy(&o, "");
    let c = "cookieyes-consent=consentid:abc,consent:yes,action:yes,necessary:yes,functional:yes,analytics:yes,performance:yes,advertisement:no,other:no";
    assert_eq!(kept(&p, c), ["SESSIONID", "_ga", "lang"]);
}

#[test]
fn complianz() {
    let o = origin();
    let p = proxy(&o, "");
    let c = "cmplz_functional=allow; cmplz_statistics=deny; cmplz_marketing=allow; cmplz_preferences=deny";
    assert_eq!(kept(&p, c), ["SESSIONID", "_fbp"]);
    // The cmplz_ cookies themselves are necessary: they reach the origin.
    assert!(o.last().header_strings("cookie")[0].contains("cmplz_marketing=allow"));
}

#[test]
fn klaro() {
    let o = origin();
    let p = proxy(&o, "");
    let c = "klaro=%7B%22google-analytics%22%3Atrue%2C%22facebook-pixel%22%3Afalse%7D";
    assert_eq!(kept(&p, c), ["SESSIONID", "_ga"]);
}

#[test]
fn didomi() {
    let o = origin();
    let p = proxy(&o, "");
    let token = base64::engine::general_purpose::STANDARD.encode(
        r#"{"user_id":"u1","created":"2026-11-24T10:00:00.000Z","updated":"2026-11-24T10:00:00.000Z","vendors":{"enabled":[],"disabled":[]},"purposes":{"enabled":["cookies","create_content_profile","select_personalized_content"],"disabled":["select_basic_ads"]},"version":2}"#,
    );
    assert_eq!(
        kept(&p, &format!("didomi_token={token}")),
        ["SESSIONID", "lang"]
    );
}

#[test]
fn several_sources_most_restrictive_wins() {
    let o = origin();
    let p = proxy(&o, "");
    // OneTrust grants analytics+marketing, Cookiebot only marketing: marketing survives.
    let c = "OptanonConsent=groups=C0002%3A1%2CC0004%3A1; CookieConsent=%7Bnecessary%3Atrue%2Cpreferences%3Afalse%2Cstatistics%3Afalse%2Cmarketing%3Atrue%7D";
    assert_eq!(kept(&p, c), ["SESSIONID", "_fbp"]);
    // One source unreadable: it grants nothing, so nothing optional survives.
    let c = "OptanonConsent=groups=C0002%3A1%2CC0004%3A1; cookieyes-consent=%%%";
    assert_eq!(kept(&p, c), ["SESSIONID"]);
}

#[test]
fn explain_shows_tcf_fields() {
    let dir = TempDir::new("tcf");
    let cfg = dir.0.join("c.toml");
    std::fs::write(
        &cfg,
        "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n[site.consent]\nsources = [\"tcf\"]\n",
    )
    .unwrap();
    let tc = tc_string(&[1, 2, 8, 9], &[7, 755]);
    let (code, out, err) = run_cli(&[
        "explain",
        "--config",
        cfg.to_str().unwrap(),
        "--cookie",
        &format!("euconsent-v2={tc}"),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = &v["sources"][0]["details"];
    assert_eq!(v["sources"][0]["format"], "tcf");
    assert_eq!(d["policy_version"], 4);
    assert_eq!(d["cmp_id"], 10);
    assert_eq!(d["vendor_list_version"], 200);
    assert_eq!(d["special_features"], serde_json::json!([]));
    assert_eq!(d["purposes_consent"], serde_json::json!([1, 2, 8, 9]));
    assert_eq!(d["purposes_li"], serde_json::json!([]));
    assert_eq!(d["vendor_consents"], serde_json::json!([7, 755]));
    assert_eq!(d["vendor_li"], serde_json::json!([]));
    assert_eq!(v["categories"]["analytics"], true);
    assert_eq!(v["categories"]["marketing"], false);
}
