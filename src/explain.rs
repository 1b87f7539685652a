//! `consentgate explain`: the decision for one request, as JSON, computed by the same functions
//! the proxy runs ([`crate::decide`]).

use crate::config::Mode;
use crate::consent::ConsentState;
use crate::consent_mode::{BeaconAction, BeaconVerdict};
use crate::decide::{
    check_tracker, expiry_set_cookies, judge_set_cookie, plan_request_in, plan_response, HtmlPlan,
    RequestPlan, RequestTarget, ResponseHead, TrackerRequest,
};
use crate::jurisdiction::Model;
use crate::policy::SitePolicy;
use crate::runtime::{Runtime, Site};
use serde_json::{json, Value};

/// The origin's response to plan for (`explain --status/--content-type/...`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExplainResponse<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub cache_control: Option<&'a str>,
}

impl ExplainResponse<'_> {
    /// The header map an origin would have sent.
    pub fn headers(&self) -> Result<http::HeaderMap, String> {
        use http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
        let mut map = http::HeaderMap::new();
        for (name, value) in [
            (CONTENT_TYPE, self.content_type),
            (CONTENT_ENCODING, self.content_encoding),
            (CACHE_CONTROL, self.cache_control),
        ] {
            if let Some(v) = value {
                let v = http::HeaderValue::from_str(v)
                    .map_err(|_| format!("{name} `{v}` is not a valid header value"))?;
                map.insert(name, v);
            }
        }
        Ok(map)
    }
}

/// One request to explain.
#[derive(Default)]
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
    /// Where the visitor is (`--country US`, `--region US-CA` or `CA`); unknown without. A
    /// region needs its country, as in the proxy.
    pub country: Option<&'a str>,
    pub region: Option<&'a str>,
    /// Other request headers, as `Name: value` lines (`--header`): the consent headers of
    /// apps (`[[site.consent.header]]`) are read from them.
    pub headers: &'a [String],
}

/// The decision for one request, without a response plan.
pub fn explain(rt: &Runtime, req: &ExplainRequest<'_>) -> Result<Value, String> {
    explain_with_response(rt, req, None)
}

/// The decision for one request and, when `response` is given (its `Set-Cookie` lines are
/// `req.set_cookies`), the plan for that response under the `"response"` key.
pub fn explain_with_response(
    rt: &Runtime,
    req: &ExplainRequest<'_>,
    response: Option<&ExplainResponse<'_>>,
) -> Result<Value, String> {
    let site = site_for(rt, req)?;
    let policy = &site.policy;
    let (jurisdiction, model) = explain_jurisdiction(policy, req)?;
    let (jurisdiction, reason, why) = jurisdiction;
    let headers = header_map(req.headers)?;
    let (plan, reports) = plan_request_in(
        policy,
        model,
        req.cookies.iter().map(|c| c.as_bytes()),
        req.gpc,
        &headers,
        true,
    );
    let consent = &plan.consent;
    let upstream_cookie = match &plan.upstream_cookie {
        None => Value::Null,
        Some(v) => Value::String(String::from_utf8_lossy(v).into_owned()),
    };
    let mut out = json!({
        "url": explain_url(policy, consent, req)?,
        "site": site.name,
        "mode": policy.mode.as_str(),
        "applied": policy.mode == Mode::Enforce,
        "gpc": consent.gpc,
        // Exactly {name, model, country, region} (issue 11); why that rule, beside it.
        "jurisdiction": jurisdiction,
        "jurisdiction_reason": reason,
        "jurisdiction_why": why,
        "categories": consent.grants,
        "consent_state": consent.label(),
        "sources": explain_sources(consent),
        "set_cookie": explain_set_cookies(policy, consent, req.set_cookies),
        "request_cookies": reports,
        "upstream_cookie_header": upstream_cookie,
        "expire_set_cookie": expiry_set_cookies(policy, &plan),
    });
    if let Some(response) = response {
        let headers = response.headers()?;
        let head = ResponseHead {
            status: response.status,
            headers: &headers,
        };
        out["response"] = explain_response(policy, &plan, &head, req.set_cookies);
    }
    Ok(out)
}

/// The site's jurisdiction rule for `--country`/`--region` (`name`, `model`, `country`,
/// `region`), the reason it applies (`matched`, `unknown_location`, `no_match`, or `no_rules`)
/// and why in words, and its model.
fn explain_jurisdiction(
    policy: &SitePolicy,
    req: &ExplainRequest<'_>,
) -> Result<((Value, &'static str, String), Model), String> {
    use crate::geo::{parse_country, parse_full_region, parse_region, Location};
    use crate::jurisdiction::{Area, Reason};
    if let (Some(r), None) = (req.region, req.country) {
        // The proxy believes a region only beside the visitor's country (`geo::from_headers`
        // reads the region header only after a country; the database gives both or neither):
        // a region alone is an unknown location there. Refused, so that explain never shows a
        // rule the proxy would not apply, and the fix is named.
        let add = match parse_full_region(r) {
            Some(region) => format!("add --country {}", region.country()),
            None => "add --country with the visitor's country, e.g. --country US".to_string(),
        };
        return Err(format!(
            "--region `{r}` needs --country: the proxy believes a region only beside the visitor's country (a region header without the country header is an unknown location); {add}"
        ));
    }
    let country = match req.country {
        Some(c) => Some(parse_country(c.as_bytes()).ok_or_else(|| {
            format!("--country `{c}` is not an ISO 3166-1 alpha-2 country code like US or DE")
        })?),
        None => None,
    };
    let region = match req.region {
        Some(r) => {
            let region = parse_region(r.as_bytes(), country).ok_or_else(|| {
                format!("--region `{r}` is not a region of the --country: write US-CA, or CA with --country US")
            })?;
            Some(region)
        }
        None => None,
    };
    let location = Location { country, region };
    let j = &policy.jurisdictions;
    let Some(selected) = j.select(&location) else {
        let rule = json!({
            "name": null,
            "model": Model::OptIn,
            "country": country.map(|c| c.to_string()),
            "region": region.map(|r| r.to_string()),
        });
        let why = "the site has no [[site.jurisdiction]] rules: opt-in for every visitor";
        return Ok(((rule, "no_rules", why.to_string()), Model::OptIn));
    };
    let rule = j.rule(selected);
    let fallback = if j.fallback_configured {
        "unknown_jurisdiction names it"
    } else {
        "it is the strictest rule configured (opt-in > opt-out > off)"
    };
    let why = match selected.reason {
        Reason::Matched(Area::Anywhere) => {
            format!(
                "`{}` lists \"*\", which matches every known location",
                rule.name
            )
        }
        Reason::Matched(Area::Country(c)) => format!("`{}` lists the country {c}", rule.name),
        Reason::Matched(Area::Region(r)) => format!("`{}` lists the region {r}", rule.name),
        Reason::UnknownLocation => {
            format!(
                "the location is unknown, so the fallback `{}` applies: {fallback}",
                rule.name
            )
        }
        Reason::NoMatch => format!(
            "no rule lists this location, so the fallback `{}` applies: {fallback}",
            rule.name
        ),
    };
    let shown = json!({
        "name": rule.name,
        "model": rule.model,
        "country": country.map(|c| c.to_string()),
        "region": region.map(|r| r.to_string()),
    });
    Ok(((shown, selected.reason.as_str(), why), rule.model))
}

/// The site for the request's Host (or its URL's host).
fn site_for<'r>(rt: &'r Runtime, req: &ExplainRequest<'_>) -> Result<&'r Site, String> {
    let host = req.host.map(str::to_string).or_else(|| {
        req.url
            .and_then(|u| u.parse::<http::Uri>().ok())
            .and_then(|u| u.host().map(str::to_string))
    });
    rt.site_for_host(host.as_deref().map(str::as_bytes))
        .map(|s| &**s)
        .ok_or_else(|| {
            format!(
                "no site matches host {:?}; add it to a site's `hosts` or add a site with hosts = [\"*\"]",
                host.unwrap_or_default()
            )
        })
}

fn explain_sources(consent: &ConsentState) -> Vec<Value> {
    consent
        .sources
        .iter()
        .map(|s| {
            json!({
                "format": s.format,
                // Where it was read: `"cookie": NAME`, or `"header": NAME` for an app's header.
                s.via.as_str(): &*s.cookie,
                "granted": s.granted,
                // Categories this source carries no choice for: it neither grants nor vetoes
                // them, the other sources decide.
                "not_carried": s.verdict.not_carried(),
                "error": s.error.as_ref().map(|e| e.to_string()),
                "details": s.details,
            })
        })
        .collect()
}

fn explain_set_cookies(policy: &SitePolicy, consent: &ConsentState, lines: &[String]) -> Value {
    lines
        .iter()
        .map(|line| {
            let (name, v) = judge_set_cookie(policy, consent, line.as_bytes());
            json!({
                "name": name,
                "category": v.category_label(),
                "origin": v.origin,
                "action": if v.allowed || policy.mode == Mode::Off { "keep" } else { "strip" },
            })
        })
        .collect()
}

/// `--header` lines (`Name: value`) as a header map.
fn header_map(lines: &[String]) -> Result<http::HeaderMap, String> {
    let mut map = http::HeaderMap::new();
    for line in lines {
        let parsed = line.split_once(':').and_then(|(n, v)| {
            let name = http::HeaderName::from_bytes(n.trim().as_bytes()).ok()?;
            let value = http::HeaderValue::from_str(v.trim()).ok()?;
            Some((name, value))
        });
        let (name, value) =
            parsed.ok_or_else(|| format!("--header `{line}` is not a `Name: value` line"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// The forwarding decision for a request from `peer` carrying `headers` (`Name: value` lines),
/// as the proxy would take it on a plain listener (`explain --peer`).
pub fn explain_forwarded(
    rt: &Runtime,
    peer: &str,
    host: Option<&str>,
    headers: &[String],
) -> Result<Value, String> {
    use crate::decide::forwarded::{plan_forwarded, ForwardedInput};
    let peer: std::net::IpAddr = peer
        .parse()
        .map_err(|_| format!("--peer `{peer}` is not an IP address"))?;
    let map = header_map(headers)?;
    let input = ForwardedInput {
        peer,
        tls: false,
        host,
        version: http::Version::HTTP_11,
        headers: &map,
    };
    let p = plan_forwarded(&rt.proxy.forwarded, &input);
    let set: Vec<Value> = p
        .set
        .iter()
        .map(|(n, v)| json!([n.as_str(), String::from_utf8_lossy(v.as_bytes())]))
        .collect();
    Ok(json!({
        "peer": peer.to_string(),
        "trusted_peer": p.trusted_peer,
        "client": p.client.to_string(),
        "scheme": p.scheme.as_str(),
        "remove": p.remove.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
        "set": set,
    }))
}

/// Whether the proxy blocks `--url` (`null` without one): the consent-mode audit of Google tag
/// beacons ([`crate::consent_mode::ConsentMode::audit`], the decision the proxy applies) and the
/// blocklists, in the proxy's order: a mismatch is blocked before any list is checked, an
/// advanced-mode cookieless ping skips the lists, a withheld beacon is blocked by the first
/// list that matches it or else by consent mode.
fn explain_url(
    policy: &SitePolicy,
    consent: &ConsentState,
    req: &ExplainRequest<'_>,
) -> Result<Value, String> {
    let Some(u) = req.url else {
        return Ok(Value::Null);
    };
    let uri: http::Uri = u
        .parse()
        .map_err(|e| format!("--url `{u}` is not a URL: {e}"))?;
    // `--dest ping`: a beacon (`navigator.sendBeacon`, `<a ping>`), sent as `empty`.
    let beacon = req.dest == Some("ping");
    let dest = if beacon { Some("empty") } else { req.dest };
    let treq = TrackerRequest {
        target: RequestTarget::from_url(&uri),
        referer: req.referer,
        sec_fetch_dest: dest,
        accept: None,
        beacon,
    };
    let kind = crate::trackers::infer_kind(dest, None, uri.path());
    let audit = match &policy.consent_mode {
        Some(cm) if policy.mode != Mode::Off => cm.audit(
            consent.grants,
            uri.path(),
            uri.query().unwrap_or(""),
            || kind,
        ),
        _ => None,
    };
    let lists = || check_tracker(policy, consent, &treq);
    let found = match audit.map(|a| (a.action, a.block_match())) {
        Some((BeaconAction::Mismatch(_), Some(m))) => Some((m, kind)),
        Some((BeaconAction::PassThrough, _)) => None,
        Some((BeaconAction::Withhold(_), Some(m))) => lists().or(Some((m, kind))),
        _ => lists(),
    };
    let consent_mode = audit.map(|a| {
        json!({
            "tag": a.tag_id,
            "verdict": a.verdict.as_str(),
            "signal": match a.verdict {
                BeaconVerdict::Mismatch(s) => Some(s.as_str()),
                _ => None,
            },
            "needs": a.needs,
            "mode": a.mode,
            "action": a.action.as_str(),
            "why": a.why(),
        })
    });
    Ok(match found {
        Some((m, kind)) => json!({
            "url": u,
            "kind": kind,
            "blocked": policy.mode == Mode::Enforce,
            "would_block": true,
            "category": m.category,
            "list": m.list,
            "rule": m.rule,
            "consent_mode": consent_mode,
        }),
        None => json!({
            "url": u,
            "kind": kind,
            "blocked": false,
            "would_block": false,
            "category": null,
            "list": null,
            "rule": null,
            "consent_mode": consent_mode,
        }),
    })
}

/// The response plan, as the proxy would apply it.
/// The attributes of a `Set-Cookie` line, as a browser would read them (`cookie` crate; off the
/// request path, where only the name is read). `null` when the crate cannot read the line.
fn set_cookie_attributes(line: &str) -> Value {
    let Ok(c) = cookie::Cookie::parse(line) else {
        return Value::Null;
    };
    json!({
        "domain": c.domain(),
        "path": c.path(),
        "max_age_seconds": c.max_age().map(|d| d.whole_seconds()),
        "expires": c.expires_datetime().map(|t| t.unix_timestamp()),
        // A cookie with neither lives until the browser closes.
        "persistent": c.max_age().is_some() || c.expires_datetime().is_some(),
        "secure": c.secure().unwrap_or(false),
        "http_only": c.http_only().unwrap_or(false),
        "same_site": c.same_site().map(|s| s.to_string()),
        "partitioned": c.partitioned().unwrap_or(false),
    })
}

fn explain_response(
    policy: &SitePolicy,
    plan: &RequestPlan,
    head: &ResponseHead<'_>,
    set_cookies: &[String],
) -> Value {
    let lines = set_cookies.iter().map(|l| l.as_bytes());
    let rp = plan_response(policy, plan, head, lines);
    let set_cookie: Vec<Value> = rp
        .set_cookies
        .iter()
        .zip(set_cookies)
        .map(|(d, line)| {
            json!({
                "name": d.name,
                "category": crate::labels::CategoryLabel::from(d.category),
                "action": d.action,
                "attributes": set_cookie_attributes(line),
            })
        })
        .collect();
    let expiry: Vec<String> = rp
        .expiry_lines
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let html = match &rp.html {
        HtmlPlan::Rewrite(r) => json!({
            "rewrite": true,
            "charset": r.charset.name(),
            "encoding": r.coding.as_str(),
        }),
        HtmlPlan::Skip(reason) => json!({ "rewrite": false, "reason": reason.as_str() }),
    };
    json!({
        "status": head.status,
        "set_cookie": set_cookie,
        "expiry_lines": expiry,
        "csp": rp.csp.as_ref().map(|(name, value)| json!({ "name": name, "value": value })),
        "vary_cookie": rp.vary_cookie(),
        "html_rewrite": html,
        "cache_control": rp.cache_control(),
        "removed_headers": rp.removed_headers().iter().map(|h| h.as_str()).collect::<Vec<_>>(),
    })
}
