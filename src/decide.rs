//! The decisions for one request, shared by the proxy and `consentgate explain` so a dry run
//! shows exactly what serving would do. Pure: headers in, a plan out.

use crate::consent::{read_consent, Category, ConsentState};
use crate::cookies::gate::{expiry_lines, request_action, set_cookie_name, RequestAction, Verdict};
use crate::cookies::header::CookieJar;
use crate::metrics::category_index;
use crate::runtime::Site;

/// What the proxy will do with the request's cookies.
#[derive(Debug, Default)]
pub struct RequestPlan {
    pub consent: ConsentState,
    /// `None`: forward the `Cookie` header(s) unchanged. `Some(v)`: replace them with one line
    /// `v` built from the kept pairs byte-for-byte (empty = send no `Cookie` header).
    pub upstream_cookie: Option<Vec<u8>>,
    /// Cookies to delete in the browser (their category lacks consent), deduplicated.
    pub expire: Vec<(String, Category)>,
    /// Request cookies withheld from the origin, per category index (4 = unknown).
    pub stripped: [u32; 5],
    /// Unclassified cookie names seen (for the metric; empty on the common path).
    pub unknown_names: Vec<String>,
}

/// One request cookie, for `explain`.
#[derive(Debug, serde::Serialize)]
pub struct CookieReport {
    pub name: String,
    pub category: &'static str,
    pub origin: Option<crate::cookies::classify::Origin>,
    pub action: RequestAction,
}

/// Reads consent and decides every request cookie.
pub fn plan_request<'a>(
    site: &Site,
    cookie_lines: impl IntoIterator<Item = &'a [u8]>,
    gpc: bool,
    detail: bool,
) -> (RequestPlan, Vec<CookieReport>) {
    let jar = CookieJar::from_headers(cookie_lines);
    let consent = read_consent(&site.readers, &jar, gpc, site.gpc, detail);
    let gate = site.gate();
    let mut plan = RequestPlan::default();
    let mut reports = Vec::new();
    let mut kept: smallvec::SmallVec<[&[u8]; 16]> = smallvec::SmallVec::new();
    let mut changed = false;
    for c in jar.iter() {
        let name = c.name_str();
        let verdict = gate.verdict(name, &consent);
        let action = request_action(&verdict);
        if verdict.category.is_none() {
            plan.unknown_names.push(name.to_string());
        }
        match action {
            RequestAction::Forward => kept.push(c.pair),
            RequestAction::Strip | RequestAction::Expire => {
                changed = true;
                plan.stripped[category_index(verdict.category)] += 1;
                if let (RequestAction::Expire, Some(cat)) = (action, verdict.category) {
                    if !plan.expire.iter().any(|(n, _)| n == name) {
                        plan.expire.push((name.to_string(), cat));
                    }
                }
            }
        }
        if detail {
            reports.push(CookieReport {
                name: String::from_utf8_lossy(c.name).into_owned(),
                category: verdict.category_label(),
                origin: verdict.origin,
                action,
            });
        }
    }
    if changed {
        plan.upstream_cookie = Some(kept.join(&b"; "[..]));
    }
    plan.consent = consent;
    (plan, reports)
}

/// The cookie name of a `Set-Cookie` line and the verdict on it. A name that is not UTF-8 reads
/// as empty, which no rule matches: it is unknown.
pub fn judge_set_cookie<'l>(
    site: &Site,
    consent: &ConsentState,
    line: &'l [u8],
) -> (&'l str, Verdict) {
    let name = std::str::from_utf8(set_cookie_name(line)).unwrap_or("");
    (name, site.gate().verdict(name, consent))
}

/// The `Set-Cookie` lines that delete the plan's withdrawn cookies.
pub fn expiry_set_cookies(site: &Site, plan: &RequestPlan) -> Vec<String> {
    plan.expire
        .iter()
        .flat_map(|(name, _)| expiry_lines(name, &site.cookie_paths, &site.cookie_domains))
        .collect()
}

/// The request as a tracker blocklist sees it.
pub struct TrackerRequest<'a> {
    /// `http` or `https` (from `X-Forwarded-Proto` when a TLS terminator sits in front).
    pub scheme: &'a str,
    pub host: &'a str,
    /// Path and query, as sent.
    pub path_and_query: &'a str,
    pub referer: Option<&'a str>,
    pub sec_fetch_dest: Option<&'a str>,
    pub accept: Option<&'a str>,
}

/// Checks a request against the site's blocklists for the categories without consent.
/// Returns the match and the inferred request type; `None` when allowed (or nothing to check).
pub fn check_tracker(
    site: &Site,
    consent: &ConsentState,
    req: &TrackerRequest<'_>,
) -> Option<(crate::trackers::BlockMatch, crate::trackers::RequestKind)> {
    if !site.blocklists.needed(consent.grants) {
        return None;
    }
    let url = format!("{}://{}{}", req.scheme, req.host, req.path_and_query);
    let kind = crate::trackers::infer_kind(req.sec_fetch_dest, req.accept, req.path_and_query);
    // Without a Referer the request is taken as first-party (its own page).
    let source = req.referer.unwrap_or(&url);
    site.blocklists
        .check(&url, source, kind, consent.grants)
        .map(|m| (m, kind))
}
