//! The decisions for one response: which `Set-Cookie` lines stay, which expiry lines are added,
//! the Content-Security-Policy, `Vary`, whether the HTML body is rewritten and the cache
//! headers that follow from it. Pure: the policy, the request's plan and the response head in,
//! a [`ResponsePlan`] out; `proxy.rs` applies it and `explain` prints it.

use super::{judge_set_cookie, RequestPlan};
use crate::config::Mode;
use crate::consent::{Category, Grants};
use crate::html::codec::Coding;
use crate::labels::{RewriteFailure, SetCookieAction};
use crate::policy::SitePolicy;
use encoding_rs::Encoding;
use http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_SECURITY_POLICY,
    CONTENT_SECURITY_POLICY_REPORT_ONLY, CONTENT_TYPE, ETAG,
};
use http::{HeaderName, HeaderValue};
use smallvec::SmallVec;
use std::borrow::Cow;

/// The origin's response head as the plan reads it. Of the headers only `Content-Type`,
/// `Content-Encoding` and `Cache-Control` are read, and only when the body may be rewritten:
/// the common path looks none of them up.
#[derive(Clone, Copy, Debug)]
pub struct ResponseHead<'a> {
    pub status: u16,
    pub headers: &'a http::HeaderMap,
}

impl<'a> ResponseHead<'a> {
    /// A header's value as text; absent when it is not visible ASCII.
    fn text(&self, name: HeaderName) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Content-Encoding`. One that is not text is not taken as identity: it reads as a coding
    /// no codec knows, so the body is passed through rather than parsed as HTML while it may
    /// be compressed.
    fn content_encoding(&self) -> Option<&'a str> {
        let value = self.headers.get(CONTENT_ENCODING)?;
        Some(value.to_str().unwrap_or("(not visible ASCII)"))
    }
}

/// The decision on one `Set-Cookie` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetCookieDecision<'a> {
    /// The cookie's name (empty when it is not UTF-8: no rule matches it, it is unknown).
    pub name: &'a str,
    /// `None` = unknown.
    pub category: Option<Category>,
    /// Which layer classified it (`None` = unknown), for the live cookie inventory.
    pub origin: Option<crate::cookies::classify::Origin>,
    pub action: SetCookieAction,
    /// The name's classifier slot, for the live inventory (`Verdict::slot`).
    pub slot: Option<u32>,
}

impl SetCookieDecision<'_> {
    /// Whether the line stays in the response (kept, or only counted in report-only).
    pub fn keeps(&self) -> bool {
        self.action != SetCookieAction::Stripped
    }
}

/// Why an HTML body is not rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteSkip {
    /// The site does not rewrite (not enforcing, `[site.html] enabled = false`), or the
    /// visitor's consent leaves nothing to neutralize.
    NotNeeded,
    /// A status without a body (1xx, 204, 304).
    NoBody,
    /// Not `text/html` nor `application/xhtml+xml`.
    NotHtml,
    /// HTML in a `Content-Encoding` the rewriter cannot read (e.g. zstd): passed through.
    Encoding,
    /// HTML in a charset the rewriter cannot read (not ASCII-compatible, e.g. UTF-16).
    Charset,
}

impl RewriteSkip {
    pub fn as_str(self) -> &'static str {
        match self {
            RewriteSkip::NotNeeded => "not_needed",
            RewriteSkip::NoBody => "no_body",
            RewriteSkip::NotHtml => "not_html",
            RewriteSkip::Encoding => "unknown_encoding",
            RewriteSkip::Charset => "unsupported_charset",
        }
    }

    /// The failure to count when an HTML page goes out unrewritten for this reason.
    pub fn failure(self) -> Option<RewriteFailure> {
        match self {
            RewriteSkip::Encoding => Some(RewriteFailure::Encoding),
            RewriteSkip::Charset => Some(RewriteFailure::Charset),
            _ => None,
        }
    }
}

/// How an HTML body is rewritten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HtmlRewrite {
    /// From the `Content-Type` charset (UTF-8 when absent or unknown), ASCII-compatible.
    pub charset: &'static Encoding,
    pub coding: Coding,
    /// The new `Cache-Control`: the page is now this visitor's (see [`private_cache_control`]).
    pub cache_control: String,
    /// The consent-mode defaults `<script>` inserted at the top of `<head>`
    /// (`[site.consent_mode]`), with the page's CSP nonce when it has one.
    pub consent_defaults: Option<std::sync::Arc<str>>,
    /// A fresh nonce consentgate's own policy (`[site.csp]`) allows, for a page whose origin
    /// headers name none: the scripts a `<meta>` policy of the page allows by its nonce are
    /// moved to this one, which that policy is made to allow too (see
    /// [`crate::html::Neutralizer`]); otherwise consentgate's policy, sent before the body was
    /// seen, would block them.
    pub csp_nonce: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HtmlPlan {
    Rewrite(HtmlRewrite),
    Skip(RewriteSkip),
}

/// Headers a rewritten body makes wrong: its length and its validator.
const REWRITE_REMOVES: [HeaderName; 2] = [CONTENT_LENGTH, ETAG];

/// What the proxy does to one response. On the common path (no `Set-Cookie`, nothing to
/// expire, no rewrite) it lives on the stack: nothing is allocated.
#[derive(Clone, Debug)]
pub struct ResponsePlan<'a> {
    /// One decision per `Set-Cookie` line of the response, in order.
    pub set_cookies: SmallVec<[SetCookieDecision<'a>; 8]>,
    /// Whether this response expires the request's withdrawn cookies ([`RequestPlan::expire`]):
    /// in enforce mode, when there are any.
    pub expires: bool,
    /// The expiry `Set-Cookie` values appended after the kept lines.
    pub expiry_lines: SmallVec<[HeaderValue; 4]>,
    /// The Content-Security-Policy header (name, value) for this visitor's consent, with the
    /// page's script nonce when it has one (see [`page_csp_nonce`]).
    pub csp: Option<(&'static str, Cow<'a, str>)>,
    pub html: HtmlPlan,
}

impl ResponsePlan<'_> {
    /// Whether a `Set-Cookie` line is removed.
    pub fn strips_any(&self) -> bool {
        self.set_cookies.iter().any(|d| !d.keeps())
    }

    /// Whether the `Set-Cookie` lines change at all.
    pub fn changes_set_cookies(&self) -> bool {
        self.strips_any() || !self.expiry_lines.is_empty()
    }

    /// `Vary: Cookie`, added once, when the response depends on the visitor's consent (a CSP
    /// per consent, a body rewritten for it): a shared cache must not give it to another.
    pub fn vary_cookie(&self) -> bool {
        self.csp.is_some() || matches!(self.html, HtmlPlan::Rewrite(_))
    }

    /// The `Cache-Control` that replaces the origin's, if any.
    pub fn cache_control(&self) -> Option<&str> {
        match &self.html {
            HtmlPlan::Rewrite(r) => Some(&r.cache_control),
            HtmlPlan::Skip(_) => None,
        }
    }

    /// Headers removed from the response.
    pub fn removed_headers(&self) -> &'static [HeaderName] {
        match self.html {
            HtmlPlan::Rewrite(_) => &REWRITE_REMOVES,
            HtmlPlan::Skip(_) => &[],
        }
    }
}

/// Plans a response. `set_cookies` are the response's `Set-Cookie` values in order (the proxy
/// passes them apart from `head` so the plan can borrow their names while it edits the head). In
/// report-only mode lines are judged (`would_strip`) but nothing changes; in off mode every
/// line is kept (the proxy does not even ask: it applies no plan in off mode).
pub fn plan_response<'a>(
    policy: &'a SitePolicy,
    request: &RequestPlan,
    head: &ResponseHead<'_>,
    set_cookies: impl IntoIterator<Item = &'a [u8]>,
) -> ResponsePlan<'a> {
    let consent = &request.consent;
    let enforce = policy.mode == Mode::Enforce;
    let set_cookies = set_cookies
        .into_iter()
        .map(|line| {
            let (name, verdict) = judge_set_cookie(policy, consent, line);
            let action = match (verdict.allowed, policy.mode) {
                (true, _) | (false, Mode::Off) => SetCookieAction::Kept,
                (false, Mode::Enforce) => SetCookieAction::Stripped,
                (false, Mode::ReportOnly) => SetCookieAction::WouldStrip,
            };
            SetCookieDecision {
                name,
                category: verdict.category,
                origin: verdict.origin,
                action,
                slot: verdict.slot,
            }
        })
        .collect();
    let expires = enforce && !request.expire.is_empty();
    let mut expiry_lines = SmallVec::new();
    if expires {
        for (name, _) in &request.expire {
            expiry_lines.extend(policy.expiry_values(name).iter().cloned());
        }
    }
    let mut html = plan_html(policy, consent.grants, head);
    let csp = match &policy.csp {
        Some(csp) if enforce => {
            let grants = consent.grants;
            let value = match (page_csp_nonce(head), &mut html) {
                // The origin's nonce: its scripts carry it already.
                (Some(nonce), _) => Cow::Owned(csp.header_value_with_nonce(grants, nonce)),
                // None in the headers: a `<meta>` policy may still name one, seen only in the
                // body, after this header is sent. A fresh nonce the rewriter moves such
                // scripts to (a page consentgate does not rewrite keeps its nonce, and this
                // policy blocks its inline scripts as it always did).
                (None, HtmlPlan::Rewrite(rw)) if csp.takes_nonce(grants) => {
                    let nonce = fresh_nonce();
                    let value = csp.header_value_with_nonce(grants, &nonce);
                    rw.csp_nonce = Some(nonce);
                    Cow::Owned(value)
                }
                _ => Cow::Borrowed(csp.header_value(grants)),
            };
            Some((csp.header_name, value))
        }
        _ => None,
    };
    ResponsePlan {
        set_cookies,
        expires,
        expiry_lines,
        csp,
        html,
    }
}

/// The nonce the origin's `Content-Security-Policy` (or `-Report-Only`) headers allow
/// `<script>` elements with ([`crate::consent_mode::page_nonce`]): put on the inserted defaults
/// script and into consentgate's own policy.
fn page_csp_nonce<'h>(head: &ResponseHead<'h>) -> Option<&'h str> {
    let policies = [CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_REPORT_ONLY]
        .into_iter()
        .flat_map(|name| head.headers.get_all(name))
        .filter_map(|v| v.to_str().ok());
    crate::consent_mode::page_nonce(policies)
}

/// 128 random bits, base64: a CSP nonce (CSP3 asks for at least 128 bits from a secure
/// source). The system generator failing is not expected; should it, the nonce is still
/// unique per process and unknown to a page's attacker before the response, from the clock
/// and a counter (privacy does not hang on it: without it the page's meta-nonce scripts are
/// only blocked, as before).
fn fresh_nonce() -> String {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        bytes[8..].copy_from_slice(&t.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether and how the body is rewritten: only an HTML body, in enforce mode, for a visitor
/// who lacks consent for something the page rules neutralize, or on a site that inserts the
/// consent-mode defaults (every visitor: the script carries their consent, granted or not).
fn plan_html(policy: &SitePolicy, grants: Grants, head: &ResponseHead<'_>) -> HtmlPlan {
    let needed = policy.mode == Mode::Enforce
        && (policy.consent_mode.is_some()
            || policy.page_rules.as_ref().is_some_and(|r| r.needed(grants)));
    if !needed {
        return HtmlPlan::Skip(RewriteSkip::NotNeeded);
    }
    if matches!(head.status, 100..=199 | 204 | 304) {
        return HtmlPlan::Skip(RewriteSkip::NoBody);
    }
    // The cheap byte test first: most responses are not HTML, and they then skip the text
    // check of the whole value too (this runs on every response in enforce mode).
    let Some(media) = head
        .headers
        .get(CONTENT_TYPE)
        .filter(|ct| may_be_html(ct.as_bytes()))
        .and_then(|ct| ct.to_str().ok())
        .and_then(media_type)
    else {
        return HtmlPlan::Skip(RewriteSkip::NotHtml);
    };
    if !HTML_TYPES.contains(&media.essence_str()) {
        return HtmlPlan::Skip(RewriteSkip::NotHtml);
    }
    let Some(coding) = Coding::parse(head.content_encoding()) else {
        return HtmlPlan::Skip(RewriteSkip::Encoding);
    };
    // An unknown label reads as UTF-8, as before there was a charset parameter at all.
    let charset = media
        .get_param(mime::CHARSET)
        .and_then(|c| Encoding::for_label(c.as_str().trim().as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    if !charset.is_ascii_compatible() {
        return HtmlPlan::Skip(RewriteSkip::Charset);
    }
    // The origin's policies govern the page too: a nonce they allow scripts with is put on
    // the inserted script (a hash in an origin policy cannot be added to; documented).
    let consent_defaults = policy
        .consent_mode
        .as_ref()
        .map(|cm| cm.element(grants, page_csp_nonce(head)));
    HtmlPlan::Rewrite(HtmlRewrite {
        charset,
        coding,
        cache_control: private_cache_control(head.text(CACHE_CONTROL)),
        consent_defaults,
        csp_nonce: None,
    })
}

/// The HTML media types.
const HTML_TYPES: [&str; 2] = ["text/html", "application/xhtml+xml"];

/// Whether a `Content-Type` starts like an HTML one. Most responses a visitor without consent
/// fetches are not HTML (images, scripts, JSON); this rules them out without parsing, as
/// `mime` allocates a lower-cased copy of every value it parses. `mime` decides the rest.
/// Bytes, before any text check: a value that is text (`HeaderValue::to_str`: visible ASCII
/// and tabs) has no leading whitespace but spaces and tabs, so this is what trimming the text
/// and comparing would give; a value that is not text is not HTML either way.
fn may_be_html(content_type: &[u8]) -> bool {
    let start = content_type
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(content_type.len());
    let ct = &content_type[start..];
    HTML_TYPES.iter().any(|t| {
        ct.get(..t.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(t.as_bytes()))
    })
}

/// The media type of a `Content-Type` value. `mime` is strict about parameters (a space before
/// `;`, a parameter without `=`), browsers are not: when the whole value does not parse, the
/// type before the first `;` alone still decides, so such a page is still rewritten.
fn media_type(content_type: &str) -> Option<mime::Mime> {
    let value = content_type.trim();
    value.parse().ok().or_else(|| {
        let essence = value.split(';').next()?.trim();
        essence.parse().ok()
    })
}

/// `Cache-Control` with `public` and `s-maxage` removed and `private` first (`private` alone
/// when the origin sent none): a page rewritten for one visitor's consent is theirs only.
pub fn private_cache_control(origin: Option<&str>) -> String {
    let mut parts = vec!["private"];
    parts.extend(origin.unwrap_or("").split(',').map(str::trim).filter(|d| {
        let name = d.split('=').next().unwrap_or("").trim();
        !d.is_empty()
            && !["public", "s-maxage", "private"]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
    }));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte test on the raw value decides as trimming the text and comparing did, for
    /// every value that is text (and values that are not text are not HTML either way).
    #[test]
    fn may_be_html_on_bytes_agrees_with_the_text_test() {
        let text_test = |v: &HeaderValue| {
            v.to_str().ok().is_some_and(|ct| {
                let ct = ct.trim_start().as_bytes();
                HTML_TYPES.iter().any(|t| {
                    ct.get(..t.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(t.as_bytes()))
                })
            })
        };
        for raw in [
            &b"text/html"[..],
            b"text/html; charset=utf-8",
            b"TEXT/HTML",
            b"  \ttext/html",
            b"\t",
            b"",
            b"text/htm",
            b"text/plain; charset=utf-8",
            b"application/xhtml+xml",
            b"Application/XHTML+XML;q=1",
            b"application/json",
            b"image/png",
            b"text/html\xa0",
            b"\xc2\xa0text/html",
            b"text/html; charset=\"\xe9\"",
            b"\x0btext/html",
            b"texthtml",
        ] {
            let Ok(v) = HeaderValue::from_bytes(raw) else {
                continue;
            };
            let bytes_test = may_be_html(v.as_bytes()) && v.to_str().is_ok();
            assert_eq!(bytes_test, text_test(&v), "{raw:?}");
        }
    }
}
