//! The decisions for one request and its response, shared by the proxy and `consentgate
//! explain` so a dry run shows exactly what serving would do. Pure: a [`SitePolicy`] and
//! headers in, a plan out ([`RequestPlan`], [`ResponsePlan`]); the proxy only applies plans and
//! counts.

pub mod forwarded;
mod response;
#[cfg(test)]
mod tests;

pub use response::{
    plan_response, HtmlPlan, HtmlRewrite, ResponseHead, ResponsePlan, RewriteSkip,
    SetCookieDecision,
};

use crate::consent::{read_consent_with_headers, Category, ConsentState};
use crate::cookies::gate::{expiry_lines, request_action, set_cookie_name, RequestAction, Verdict};
use crate::cookies::header::CookieJar;
use crate::jurisdiction::Model;
use crate::labels::CategoryLabel;
use crate::metrics;
use crate::policy::SitePolicy;
use crate::trackers::RequestKind;

/// What the proxy will do with the request's cookies.
#[derive(Debug, Default)]
pub struct RequestPlan {
    pub consent: ConsentState,
    /// `None`: forward the `Cookie` header(s) unchanged. `Some(v)`: replace them with one line
    /// `v` built from the kept pairs byte-for-byte (empty = send no `Cookie` header).
    pub upstream_cookie: Option<Vec<u8>>,
    /// Cookies to delete in the browser (their category lacks consent), deduplicated, at most
    /// `max_expiry_lines` lines' worth.
    pub expire: Vec<(String, Category)>,
    /// Request cookies withheld from the origin, per category.
    pub stripped: [u32; CategoryLabel::COUNT],
    /// Unclassified cookie names seen (for the metric; empty on the common path). Names that
    /// cannot become a label are kept as the empty string, not copied.
    pub unknown_names: Vec<String>,
    /// Cookies past `max_request_cookies`: not read, withheld from the origin.
    pub cookies_over_limit: u32,
    /// Expiry lines left out because of `max_expiry_lines`.
    pub expiry_lines_over_limit: u32,
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
///
/// The work is linear in the request and capped (issue 8, item 1): only the first
/// `max_request_cookies` cookies are read, and expiry lines stop at `max_expiry_lines`.
/// Cookies past the first limit are withheld from the origin: privacy fails closed (an unread
/// cookie might be a tracking one, so it is not forwarded as if it were unknown-but-kept), and
/// availability fails open (the request is still served, no error status). The consent cookie
/// itself, if it comes after the limit, is not read either: no consent (fail closed). Real
/// browsers hold far fewer cookies per site than the default limit.
pub fn plan_request<'a>(
    policy: &SitePolicy,
    cookie_lines: impl IntoIterator<Item = &'a [u8]>,
    gpc: bool,
    headers: &http::HeaderMap,
    detail: bool,
) -> (RequestPlan, Vec<CookieReport>) {
    plan_request_in(policy, Model::OptIn, cookie_lines, gpc, headers, detail)
}

/// [`plan_request`] for a visitor under `model`, the consent model of the site's jurisdiction
/// rule for where the visitor is ([`crate::jurisdiction`]); applied to the merged consent
/// before any cookie is decided.
pub fn plan_request_in<'a>(
    policy: &SitePolicy,
    model: Model,
    cookie_lines: impl IntoIterator<Item = &'a [u8]>,
    gpc: bool,
    headers: &http::HeaderMap,
    detail: bool,
) -> (RequestPlan, Vec<CookieReport>) {
    plan_request_observed(
        policy,
        model,
        cookie_lines,
        gpc,
        headers,
        detail,
        |_, _, _| {},
    )
}

/// [`plan_request_in`], showing `observe` every cookie read with its verdict and action: the
/// proxy records them in the live cookie inventory (src/inventory.rs) without classifying
/// twice. The decision itself stays pure; `observe` only watches.
pub fn plan_request_observed<'a>(
    policy: &SitePolicy,
    model: Model,
    cookie_lines: impl IntoIterator<Item = &'a [u8]>,
    gpc: bool,
    headers: &http::HeaderMap,
    detail: bool,
    mut observe: impl FnMut(&str, &Verdict, RequestAction),
) -> (RequestPlan, Vec<CookieReport>) {
    let limits = policy.limits;
    let jar = CookieJar::from_headers_limited(cookie_lines, limits.max_request_cookies);
    // `headers`: the request's, for the header sources of apps (`[[site.consent.header]]`).
    let mut consent = read_consent_with_headers(
        &policy.readers,
        &policy.consent_headers,
        headers,
        &jar,
        gpc,
        policy.gpc,
        detail,
    );
    if model != Model::OptIn {
        crate::jurisdiction::apply(model, &mut consent, policy.gpc);
    }
    let gate = policy.gate();
    let mut plan = RequestPlan {
        cookies_over_limit: u32::try_from(jar.overflow()).unwrap_or(u32::MAX),
        ..RequestPlan::default()
    };
    let mut reports = Vec::new();
    let mut kept: smallvec::SmallVec<[&[u8]; 16]> = smallvec::SmallVec::new();
    let mut changed = plan.cookies_over_limit > 0;
    let mut expiring = SeenNames::default();
    let mut expiry_lines = 0usize;
    for c in jar.iter() {
        let name = c.name_str();
        let verdict = gate.verdict(name, &consent);
        let action = request_action(&verdict);
        observe(name, &verdict, action);
        if verdict.category.is_none() {
            let label = if metrics::label_candidate(name) {
                name
            } else {
                ""
            };
            plan.unknown_names.push(label.to_string());
        }
        match action {
            RequestAction::Forward => kept.push(c.pair),
            RequestAction::Strip | RequestAction::Expire => {
                changed = true;
                plan.stripped[CategoryLabel::from(verdict.category)] += 1;
                if let (RequestAction::Expire, Some(cat)) = (action, verdict.category) {
                    // A name no browser can hold gets no expiry line (and is not counted as
                    // expired); a repeated name is expired once.
                    let lines = policy.expiry_line_count(name);
                    if lines > 0 && expiring.insert(name) {
                        if expiry_lines + lines <= limits.max_expiry_lines {
                            expiry_lines += lines;
                            plan.expire.push((name.to_string(), cat));
                        } else {
                            plan.expiry_lines_over_limit =
                                plan.expiry_lines_over_limit.saturating_add(lines as u32);
                        }
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

/// Names seen once: a short linear scan for the usual handful, a hash set (SipHash, keyed per
/// process, so crafted names cannot collide on purpose) past that, so deduplicating is linear
/// in the number of names whatever a request carries.
#[derive(Default)]
struct SeenNames<'a> {
    few: smallvec::SmallVec<[&'a str; 8]>,
    many: Option<std::collections::HashSet<&'a str>>,
}

impl<'a> SeenNames<'a> {
    /// `true` when `name` was not seen before.
    fn insert(&mut self, name: &'a str) -> bool {
        if let Some(set) = &mut self.many {
            return set.insert(name);
        }
        if self.few.contains(&name) {
            return false;
        }
        if self.few.len() < self.few.inline_size() {
            self.few.push(name);
        } else {
            let mut set: std::collections::HashSet<&str> = self.few.drain(..).collect();
            set.insert(name);
            self.many = Some(set);
        }
        true
    }
}

/// The cookie name of a `Set-Cookie` line and the verdict on it. A name that is not UTF-8 reads
/// as empty, which no rule matches: it is unknown.
pub fn judge_set_cookie<'l>(
    policy: &SitePolicy,
    consent: &ConsentState,
    line: &'l [u8],
) -> (&'l str, Verdict) {
    let name = std::str::from_utf8(set_cookie_name(line)).unwrap_or("");
    (name, policy.gate().verdict(name, consent))
}

/// The `Set-Cookie` lines that delete the plan's withdrawn cookies.
pub fn expiry_set_cookies(policy: &SitePolicy, plan: &RequestPlan) -> Vec<String> {
    plan.expire
        .iter()
        .flat_map(|(name, _)| expiry_lines(name, &policy.cookie_paths, &policy.cookie_domains))
        .collect()
}

/// Where a request goes, as its client addressed it: derived once here for the tracker check,
/// the HTML rewriter's base URL and `explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestTarget<'a> {
    /// `http` or `https`: this connection's, or a trusted proxy's (see `decide::forwarded`).
    pub scheme: &'a str,
    /// The `Host` header, else the host of an absolute-form request target; `None` without
    /// either (an HTTP/1.0 request may name none).
    pub host: Option<&'a str>,
    /// Path and query, as sent.
    pub path_and_query: &'a str,
}

impl<'a> RequestTarget<'a> {
    /// The target of a request received by the proxy, with the scheme decided by
    /// [`forwarded::plan_forwarded`] (never a header any client could set).
    pub fn from_request(
        headers: &'a http::HeaderMap,
        uri: &'a http::Uri,
        scheme: forwarded::Scheme,
    ) -> RequestTarget<'a> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        RequestTarget {
            scheme: scheme.as_str(),
            host: header("host").or_else(|| uri.host()),
            path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
        }
    }

    /// The target of an absolute URL (`explain --url`); `https` when it names no scheme.
    pub fn from_url(uri: &'a http::Uri) -> RequestTarget<'a> {
        RequestTarget {
            scheme: uri.scheme_str().unwrap_or("https"),
            host: uri.authority().map(|a| a.as_str()),
            path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
        }
    }

    /// `scheme://host/path?query` as the blocklists see it (an absent host stays empty: no
    /// host rule can match a host the request did not name).
    pub fn url(&self) -> String {
        self.url_with(self.host.unwrap_or(""), self.path_and_query)
    }

    /// The page's URL for resolving the relative URLs in its HTML (which needs some host:
    /// `localhost` when the request named none).
    pub fn page_url(&self) -> String {
        self.url_with(self.host.unwrap_or("localhost"), self.path_and_query)
    }

    fn url_with(&self, host: &str, path_and_query: &str) -> String {
        format!("{}://{host}{path_and_query}", self.scheme)
    }
}

/// The request as a tracker blocklist sees it.
pub struct TrackerRequest<'a> {
    pub target: RequestTarget<'a>,
    pub referer: Option<&'a str>,
    pub sec_fetch_dest: Option<&'a str>,
    pub accept: Option<&'a str>,
    /// A beacon ([`crate::trackers::is_beacon`]).
    pub beacon: bool,
}

/// Checks a request against the site's blocklists for the categories without consent.
/// Returns the match and the inferred request type; `None` when allowed (or nothing to check).
pub fn check_tracker(
    policy: &SitePolicy,
    consent: &ConsentState,
    req: &TrackerRequest<'_>,
) -> Option<(crate::trackers::BlockMatch, RequestKind)> {
    if !policy.blocklists.needed(consent.grants) {
        return None;
    }
    let target = &req.target;
    let url = target.url();
    // The path as sent and as the origin's router may read it (decoded, dot segments
    // resolved, ...): a match on any form blocks, so an encoded variant cannot slip through.
    let forms = crate::trackers::normalize::router_forms(target.path_and_query);
    // The type from the most normalised form (a `.js` written `.j%73` is still a script).
    let typed_path = forms.last().map_or(target.path_and_query, String::as_str);
    let inferred = crate::trackers::infer_kind(req.sec_fetch_dest, req.accept, typed_path);
    // A beacon is typed `ping` by the browser; it is also checked as the fetch it looks like
    // (a `POST` in `no-cors` mode may be one), and a rule for either type blocks it.
    let both = [RequestKind::Ping, inferred];
    let kinds = if req.beacon && matches!(inferred, RequestKind::Xhr | RequestKind::Other) {
        &both[..]
    } else {
        &both[1..]
    };
    // Without a Referer the request is taken as first-party (its own page).
    let source = req.referer.unwrap_or(&url);
    for &kind in kinds {
        if let Some(m) = policy.blocklists.check(&url, source, kind, consent.grants) {
            return Some((m, kind));
        }
    }
    forms.iter().find_map(|form| {
        let url = target.url_with(target.host.unwrap_or(""), form);
        kinds.iter().find_map(|&kind| {
            policy
                .blocklists
                .check(&url, source, kind, consent.grants)
                .map(|m| (m, kind))
        })
    })
}
