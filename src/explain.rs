//! `consentgate explain`: the decision for one request, as JSON, computed by the same functions
//! the proxy runs ([`crate::decide`]).

use crate::config::Mode;
use crate::decide::{
    check_tracker, expiry_set_cookies, judge_set_cookie, plan_request, TrackerRequest,
};
use crate::runtime::Runtime;
use serde_json::{json, Value};

/// One request to explain.
pub struct ExplainRequest<'a> {
    pub host: Option<&'a str>,
    /// Values of `Cookie` header lines, as a browser would send them.
    pub cookies: &'a [String],
    /// Response `Set-Cookie` lines to judge.
    pub set_cookies: &'a [String],
    pub gpc: bool,
    pub url: Option<&'a str>,
    /// The page the request comes from (`Referer`), for third-party rules.
    pub referer: Option<&'a str>,
    /// `Sec-Fetch-Dest` of the request (script, image, iframe, document, empty).
    pub dest: Option<&'a str>,
}

pub fn explain(rt: &Runtime, req: &ExplainRequest<'_>) -> Result<Value, String> {
    let host = req.host.map(str::to_string).or_else(|| {
        req.url
            .and_then(|u| u.parse::<http::Uri>().ok())
            .and_then(|u| u.host().map(str::to_string))
    });
    let site = rt
        .site_for_host(host.as_deref().map(str::as_bytes))
        .ok_or_else(|| {
            format!(
                "no site matches host {:?}; add it to a site's `hosts` or add a site with hosts = [\"*\"]",
                host.unwrap_or_default()
            )
        })?;
    let (plan, reports) = plan_request(
        site,
        req.cookies.iter().map(|c| c.as_bytes()),
        req.gpc,
        true,
    );
    let consent = &plan.consent;
    let enforce = site.mode == Mode::Enforce;
    let sources: Vec<Value> = consent
        .sources
        .iter()
        .map(|s| {
            json!({
                "format": s.format,
                "cookie": &*s.cookie,
                "granted": s.granted,
                // Categories this source carries no choice for: it neither grants nor vetoes
                // them, the other sources decide.
                "not_carried": s.verdict.not_carried(),
                "error": s.error.as_ref().map(|e| e.to_string()),
                "details": s.details,
            })
        })
        .collect();
    let set_cookie: Vec<Value> = req
        .set_cookies
        .iter()
        .map(|line| {
            let (name, v) = judge_set_cookie(site, consent, line.as_bytes());
            json!({
                "name": name,
                "category": v.category_label(),
                "origin": v.origin,
                "action": if v.allowed || site.mode == Mode::Off { "keep" } else { "strip" },
            })
        })
        .collect();
    let upstream_cookie = match &plan.upstream_cookie {
        None => Value::Null,
        Some(v) => Value::String(String::from_utf8_lossy(v).into_owned()),
    };
    let url = match req.url {
        None => Value::Null,
        Some(u) => {
            let uri: http::Uri = u
                .parse()
                .map_err(|e| format!("--url `{u}` is not a URL: {e}"))?;
            let host = uri.authority().map_or("", |a| a.as_str());
            let treq = TrackerRequest {
                scheme: uri.scheme_str().unwrap_or("https"),
                host,
                path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
                referer: req.referer,
                sec_fetch_dest: req.dest,
                accept: None,
            };
            let kind = crate::trackers::infer_kind(req.dest, None, treq.path_and_query);
            match check_tracker(site, consent, &treq) {
                Some((m, kind)) => json!({
                    "url": u,
                    "kind": kind,
                    "blocked": site.mode == Mode::Enforce,
                    "would_block": true,
                    "category": m.category,
                    "list": m.list,
                    "rule": m.rule,
                }),
                None => json!({
                    "url": u,
                    "kind": kind,
                    "blocked": false,
                    "would_block": false,
                    "category": null,
                    "list": null,
                    "rule": null,
                }),
            }
        }
    };
    Ok(json!({
        "url": url,
        "site": site.name,
        "mode": site.mode.as_str(),
        "applied": enforce,
        "gpc": consent.gpc,
        "categories": consent.grants,
        "consent_state": consent.label(),
        "sources": sources,
        "set_cookie": set_cookie,
        "request_cookies": reports,
        "upstream_cookie_header": upstream_cookie,
        "expire_set_cookie": expiry_set_cookies(site, &plan),
    }))
}
