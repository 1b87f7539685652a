//! The response plan, branch by branch, and the request target. Each test builds a
//! [`SitePolicy`] from configuration text, as a site's operator writes it: no runtime, no proxy.

use super::forwarded::Scheme;
use super::*;
use crate::explain::ExplainResponse;
use crate::html::codec::Coding;
use crate::labels::{RewriteFailure, SetCookieAction};

const SITE: &str = r#"
[proxy]
listen = ["127.0.0.1:1"]
[[site]]
name = "t"
upstreams = ["127.0.0.1:2"]
mode = "MODE"
[site.consent]
cookie = "consent"
[site.cookies]
necessary = ["SESSIONID"]
analytics = ["_ga", "_ga_*"]
marketing = ["_fbp"]
EXTRA
"#;

const CSP: &str = r#"
[site.csp]
base = "default-src 'self'"
analytics = ["https://www.googletagmanager.com"]
"#;

fn policy(mode: &str, extra: &str) -> SitePolicy {
    let text = SITE.replace("MODE", mode).replace("EXTRA", extra);
    let mut cfg = crate::config::parse(&text, "t.toml".as_ref()).unwrap();
    let gauge = prometheus::IntGauge::new("t_expiry_cache_bytes", "test").unwrap();
    SitePolicy::build(cfg.sites.remove(0), cfg.proxy.request_limits, gauge).unwrap()
}

fn request(policy: &SitePolicy, cookie: &str) -> RequestPlan {
    plan_request(
        policy,
        [cookie.as_bytes()],
        false,
        &http::HeaderMap::new(),
        false,
    )
    .0
}

/// A 200 HTML response in UTF-8 (RFC 9110 8.3.1 writes `text/html;charset=utf-8`).
fn html() -> ExplainResponse<'static> {
    ExplainResponse {
        status: 200,
        content_type: Some("text/html;charset=utf-8"),
        ..ExplainResponse::default()
    }
}

fn lines(list: &[&'static str]) -> Vec<&'static [u8]> {
    list.iter().map(|l| l.as_bytes()).collect()
}

/// The response plan for `request` and a response with `head` and `set_cookies`.
fn respond<'a>(
    p: &'a SitePolicy,
    request: &RequestPlan,
    head: &ExplainResponse<'_>,
    set_cookies: &[&'static str],
) -> ResponsePlan<'a> {
    let headers = head.headers().unwrap();
    let head = ResponseHead {
        status: head.status,
        headers: &headers,
    };
    plan_response(p, request, &head, lines(set_cookies))
}

/// The response plan for a visitor with `cookie`.
fn plan<'a>(
    p: &'a SitePolicy,
    cookie: &str,
    head: &ExplainResponse<'_>,
    set_cookies: &[&'static str],
) -> ResponsePlan<'a> {
    respond(p, &request(p, cookie), head, set_cookies)
}

const ORIGIN_LINES: [&str; 4] = [
    "SESSIONID=s1; Path=/; HttpOnly",
    "_ga=GA1.1.1.1; Path=/; Max-Age=63072000",
    "_fbp=fb.1.1.1; Path=/; Max-Age=7776000",
    "mystery=1; Path=/",
];

fn actions<'a>(plan: &ResponsePlan<'a>) -> Vec<(&'a str, Option<Category>, SetCookieAction)> {
    plan.set_cookies
        .iter()
        .map(|d| (d.name, d.category, d.action))
        .collect()
}

#[test]
fn enforce_keeps_consented_lines_and_strips_the_rest() {
    let p = policy("enforce", "");
    let rp = plan(
        &p,
        "consent=analytics",
        &ExplainResponse::default(),
        &ORIGIN_LINES,
    );
    use SetCookieAction::{Kept, Stripped};
    assert_eq!(
        actions(&rp),
        vec![
            ("SESSIONID", Some(Category::Necessary), Kept),
            ("_ga", Some(Category::Analytics), Kept),
            ("_fbp", Some(Category::Marketing), Stripped),
            ("mystery", None, Stripped),
        ]
    );
    assert!(rp.strips_any() && rp.changes_set_cookies());
    let keeps: Vec<bool> = rp.set_cookies.iter().map(|d| d.keeps()).collect();
    assert_eq!(keeps, [true, true, false, false]);
}

#[test]
fn withdrawn_cookies_get_expiry_lines_in_enforce_mode() {
    let p = policy("enforce", "");
    let req = request(&p, "consent=analytics; _fbp=fb.1.1.1; _ga=GA1.1.1.1");
    let rp = respond(&p, &req, &ExplainResponse::default(), &[]);
    assert!(rp.expires);
    let got: Vec<&[u8]> = rp.expiry_lines.iter().map(|v| v.as_bytes()).collect();
    let want = expiry_set_cookies(&p, &req);
    assert_eq!(want.len(), 1, "{want:?}");
    assert!(want[0].starts_with("_fbp=;"), "{want:?}");
    assert_eq!(got, [want[0].as_bytes()]);
    // Nothing stripped, but lines are appended.
    assert!(!rp.strips_any() && rp.changes_set_cookies());
}

#[test]
fn report_only_judges_but_changes_nothing() {
    let p = policy("report-only", CSP);
    let req = request(&p, "_fbp=fb.1.1.1");
    assert!(!req.expire.is_empty(), "the request plan still names it");
    let rp = respond(&p, &req, &html(), &ORIGIN_LINES);
    use SetCookieAction::{Kept, WouldStrip};
    let got: Vec<SetCookieAction> = rp.set_cookies.iter().map(|d| d.action).collect();
    assert_eq!(got, [Kept, WouldStrip, WouldStrip, WouldStrip]);
    assert!(rp.set_cookies.iter().all(|d| d.keeps()));
    assert!(!rp.changes_set_cookies() && !rp.expires && rp.expiry_lines.is_empty());
    assert_eq!(rp.csp, None);
    assert_eq!(rp.html, HtmlPlan::Skip(RewriteSkip::NotNeeded));
    assert!(!rp.vary_cookie() && rp.cache_control().is_none());
    assert!(rp.removed_headers().is_empty());
}

#[test]
fn off_mode_keeps_everything() {
    let p = policy("off", CSP);
    let rp = plan(&p, "_fbp=1", &html(), &ORIGIN_LINES);
    assert!(rp
        .set_cookies
        .iter()
        .all(|d| d.action == SetCookieAction::Kept));
    assert!(!rp.changes_set_cookies() && !rp.expires);
    assert_eq!(rp.csp, None);
    assert_eq!(rp.html, HtmlPlan::Skip(RewriteSkip::NotNeeded));
    assert!(!rp.vary_cookie());
}

/// The origin's nonce (header policy) goes into consentgate's policy, on every response that
/// carries it; no fresh one is made then.
#[test]
fn an_origin_csp_nonce_goes_into_consentgates_policy() {
    let p = policy("enforce", CSP);
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, "text/html".parse().unwrap());
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        "script-src 'nonce-r4nd0m' 'strict-dynamic'"
            .parse()
            .unwrap(),
    );
    let req = request(&p, "");
    let head = ResponseHead {
        status: 200,
        headers: &headers,
    };
    let rp = plan_response(&p, &req, &head, Vec::<&[u8]>::new());
    let (_, value) = rp.csp.as_ref().expect("csp");
    assert!(
        value.contains("script-src 'self' 'nonce-r4nd0m';"),
        "{value}"
    );
    let HtmlPlan::Rewrite(rw) = &rp.html else {
        panic!("{:?}", rp.html)
    };
    assert_eq!(rw.csp_nonce, None);
}

#[test]
fn csp_and_html_rewrite_vary_once() {
    let p = policy("enforce", CSP);
    let rp = plan(&p, "", &html(), &[]);
    let (name, value) = rp.csp.clone().expect("csp");
    assert_eq!(name, "Content-Security-Policy");
    // A rewritten page without a nonce in its headers: a fresh one, for the scripts of a
    // `<meta>` policy's nonce (the rewriter moves them to it).
    let HtmlPlan::Rewrite(rw) = &rp.html else {
        panic!("{:?}", rp.html)
    };
    let nonce = rw.csp_nonce.as_deref().expect("a fresh nonce");
    assert_eq!(nonce.len(), 24, "128 bits, base64");
    assert!(
        value.starts_with(&format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}';"
        )),
        "{value}"
    );
    assert!(!value.contains("googletagmanager"), "{value}");
    let again = plan(&p, "", &html(), &[]);
    assert_ne!(again.csp, rp.csp, "a nonce per response");
    // One flag, so one `Vary: Cookie` line, whichever of the two asked for it.
    assert!(rp.vary_cookie());
    assert_eq!(rp.cache_control(), Some("private"));
    assert_eq!(
        rp.removed_headers(),
        [http::header::CONTENT_LENGTH, http::header::ETAG]
    );
    // CSP alone (not HTML) still varies; the body and its headers stay.
    let json = ExplainResponse {
        content_type: Some("application/json"),
        ..html()
    };
    let rp = plan(&p, "", &json, &[]);
    assert!(rp.csp.is_some() && rp.vary_cookie());
    assert_eq!(rp.html, HtmlPlan::Skip(RewriteSkip::NotHtml));
    assert!(rp.cache_control().is_none() && rp.removed_headers().is_empty());
}

#[test]
fn full_consent_rewrites_nothing() {
    let p = policy("enforce", "");
    let rp = plan(&p, "consent=all", &html(), &[]);
    assert_eq!(rp.html, HtmlPlan::Skip(RewriteSkip::NotNeeded));
    assert!(!rp.vary_cookie());
}

#[test]
fn statuses_without_a_body_are_not_rewritten() {
    let p = policy("enforce", CSP);
    for status in [100, 101, 103, 204, 304] {
        let rp = plan(&p, "", &ExplainResponse { status, ..html() }, &[]);
        assert_eq!(rp.html, HtmlPlan::Skip(RewriteSkip::NoBody), "{status}");
        assert_eq!(rp.cache_control(), None, "{status}");
        assert!(rp.csp.is_some(), "{status}: the CSP header still applies");
    }
    for status in [200, 203, 404, 500] {
        let rp = plan(&p, "", &ExplainResponse { status, ..html() }, &[]);
        assert!(matches!(rp.html, HtmlPlan::Rewrite(_)), "{status}");
    }
}

#[test]
fn only_html_media_types_are_rewritten() {
    let p = policy("enforce", "");
    let rewrites = |ct: Option<&'static str>| {
        let head = ExplainResponse {
            content_type: ct,
            ..html()
        };
        matches!(plan(&p, "", &head, &[]).html, HtmlPlan::Rewrite(_))
    };
    // RFC 9110 8.3.1: these four are equivalent.
    for ct in [
        "text/html;charset=utf-8",
        "text/html;charset=UTF-8",
        "Text/HTML;Charset=\"utf-8\"",
        "text/html; charset=\"utf-8\"",
    ] {
        assert!(rewrites(Some(ct)), "{ct}");
    }
    // XHTML (RFC 3236), and values browsers still read as HTML though `mime` refuses their
    // parameters (a space before `;`, a parameter without `=`).
    for ct in [
        "application/xhtml+xml",
        "text/html",
        "text/html ; charset=utf-8",
        "text/html; foo",
    ] {
        assert!(rewrites(Some(ct)), "{ct}");
    }
    for ct in [
        None,
        Some("application/json"),
        Some("text/plain; charset=utf-8"),
        Some("text/htmlx"),
        Some("html"),
        Some(""),
    ] {
        assert!(!rewrites(ct), "{ct:?}");
    }
}

#[test]
fn charset_comes_from_content_type() {
    let p = policy("enforce", "");
    let rewrite = |ct: &'static str| {
        let head = ExplainResponse {
            content_type: Some(ct),
            ..html()
        };
        plan(&p, "", &head, &[]).html
    };
    let charset = |ct| match rewrite(ct) {
        HtmlPlan::Rewrite(r) => r.charset.name(),
        other => panic!("{ct}: {other:?}"),
    };
    // WHATWG Encoding: the label `iso-8859-1` means windows-1252.
    assert_eq!(charset("text/html; charset=ISO-8859-1"), "windows-1252");
    assert_eq!(charset("text/html; charset=\"Shift_JIS\""), "Shift_JIS");
    assert_eq!(charset("text/html"), "UTF-8");
    assert_eq!(charset("text/html; charset=no-such-charset"), "UTF-8");
    // UTF-16 is not ASCII-compatible: the rewriter cannot read it, counted as a failure.
    let skip = rewrite("text/html; charset=utf-16le");
    assert_eq!(skip, HtmlPlan::Skip(RewriteSkip::Charset));
    assert_eq!(
        RewriteSkip::Charset.failure(),
        Some(RewriteFailure::Charset)
    );
}

#[test]
fn content_encoding_decides_the_codec() {
    let p = policy("enforce", "");
    let with = |enc: Option<&'static str>| {
        let head = ExplainResponse {
            content_encoding: enc,
            ..html()
        };
        plan(&p, "", &head, &[]).html
    };
    let coding = |enc| match with(enc) {
        HtmlPlan::Rewrite(r) => r.coding,
        other => panic!("{enc:?}: {other:?}"),
    };
    assert_eq!(coding(None), Coding::Identity);
    assert_eq!(coding(Some("gzip")), Coding::Gzip);
    assert_eq!(coding(Some(" GZIP ")), Coding::Gzip);
    assert_eq!(coding(Some("br")), Coding::Brotli);
    assert_eq!(coding(Some("deflate")), Coding::Deflate);
    for enc in ["zstd", "gzip, br", "compress"] {
        assert_eq!(
            with(Some(enc)),
            HtmlPlan::Skip(RewriteSkip::Encoding),
            "{enc}"
        );
    }
    assert_eq!(
        RewriteSkip::Encoding.failure(),
        Some(RewriteFailure::Encoding)
    );
    assert_eq!(RewriteSkip::NotHtml.failure(), None);
    // A value that is not text is no coding the rewriter knows (not identity).
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_ENCODING,
        http::HeaderValue::from_bytes(b"gz\xffip").unwrap(),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html"),
    );
    let head = ResponseHead {
        status: 200,
        headers: &headers,
    };
    assert_eq!(
        plan_response(&p, &request(&p, ""), &head, lines(&[])).html,
        HtmlPlan::Skip(RewriteSkip::Encoding)
    );
}

#[test]
fn cache_control_becomes_private() {
    let p = policy("enforce", "");
    let cc = |origin: Option<&'static str>| {
        let head = ExplainResponse {
            cache_control: origin,
            ..html()
        };
        plan(&p, "", &head, &[]).cache_control().map(str::to_string)
    };
    assert_eq!(cc(None).as_deref(), Some("private"));
    assert_eq!(
        cc(Some("public, max-age=600, s-maxage=3600")).as_deref(),
        Some("private, max-age=600")
    );
    assert_eq!(
        cc(Some("no-cache, PRIVATE, S-MaxAge=5, must-revalidate")).as_deref(),
        Some("private, no-cache, must-revalidate")
    );
    assert_eq!(cc(Some("Public")).as_deref(), Some("private"));
}

#[test]
fn nothing_to_do_allocates_nothing() {
    let p = policy("enforce", "");
    let head = ExplainResponse {
        content_type: Some("image/png"),
        ..html()
    };
    let rp = plan(&p, "consent=analytics; SESSIONID=1", &head, &[]);
    assert!(rp.set_cookies.is_empty() && !rp.set_cookies.spilled());
    assert!(rp.expiry_lines.is_empty() && !rp.expiry_lines.spilled());
    assert!(!rp.expires && !rp.changes_set_cookies());
    assert_eq!(rp.csp, None);
    assert!(!rp.vary_cookie() && rp.cache_control().is_none());
    assert!(rp.removed_headers().is_empty());
}

#[test]
fn request_target_from_a_proxied_request() {
    let mut headers = http::HeaderMap::new();
    headers.insert("host", "Shop.Example:8443".parse().unwrap());
    // A client's X-Forwarded-Proto is not the scheme: `decide::forwarded` decides it (issue 10).
    headers.insert("x-forwarded-proto", "http".parse().unwrap());
    let uri: http::Uri = "/a/b?c=d".parse().unwrap();
    let t = RequestTarget::from_request(&headers, &uri, Scheme::Https);
    assert_eq!(t.url(), "https://Shop.Example:8443/a/b?c=d");
    assert_eq!(t.page_url(), t.url());
    // Absolute form without a Host header (RFC 9112 3.2.2).
    let headers = http::HeaderMap::new();
    let uri: http::Uri = "http://origin.example/x".parse().unwrap();
    let t = RequestTarget::from_request(&headers, &uri, Scheme::Http);
    assert_eq!(t.host, Some("origin.example"));
    assert_eq!(t.url(), "http://origin.example/x");
    // HTTP/1.0 names no host at all: none is invented for the blocklists; the HTML
    // rewriter resolves relative URLs against localhost.
    let uri: http::Uri = "/x".parse().unwrap();
    let t = RequestTarget::from_request(&headers, &uri, Scheme::Http);
    assert_eq!(t.url(), "http:///x");
    assert_eq!(t.page_url(), "http://localhost/x");
}

#[test]
fn request_target_from_a_url() {
    // Without a scheme (authority form), `https` is assumed.
    let uri: http::Uri = "cdn.example:443".parse().unwrap();
    let t = RequestTarget::from_url(&uri);
    assert_eq!(t.url(), "https://cdn.example:443/");
    let uri: http::Uri = "http://cdn.example:8080/p?q".parse().unwrap();
    let t = RequestTarget::from_url(&uri);
    assert_eq!((t.scheme, t.host), ("http", Some("cdn.example:8080")));
    assert_eq!(t.path_and_query, "/p?q");
}
