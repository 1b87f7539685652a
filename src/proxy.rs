//! The pingora glue: one method per request phase, each a thin call into the pure decisions in
//! [`crate::decide`]. Everything a request learns lives in [`RequestCtx`].
//!
//! Failure policy (DESIGN.md invariants): a panic inside a decision never becomes a 5xx. On the
//! request side the cookies go to the origin unchanged (the browser holds them already); on the
//! response side every `Set-Cookie` is withheld (privacy fails closed); both are counted.

use crate::config::Mode;
use crate::decide::{check_tracker, judge_set_cookie, plan_request, RequestPlan, TrackerRequest};
use crate::html::body::BodyRewrite;
use crate::metrics::{self, category_index, consent_index};
use crate::runtime::{Runtime, Site};
use crate::trackers::respond::block_response;
use crate::trackers::BlockMatch;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::header::{COOKIE, HOST, SET_COOKIE};
use http::{HeaderName, HeaderValue};
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use smallvec::SmallVec;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

/// The proxy service: holds the current configuration, swapped whole on reload.
/// Parsed once: a string name would be parsed on every lookup.
static SEC_GPC: HeaderName = HeaderName::from_static("sec-gpc");

pub struct ConsentGate {
    pub runtime: Arc<ArcSwap<Runtime>>,
}

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    site: Option<Arc<Site>>,
    plan: RequestPlan,
    /// The `Cookie` header for the origin: `None` = unchanged, `Some(None)` = no cookie at all.
    upstream_cookie: Option<Option<HeaderValue>>,
    set_cookie_kept: u32,
    set_cookie_stripped: u32,
    expired: u32,
    access_log: bool,
    /// The tracker match, when the request was blocked (or would be, in report-only).
    blocked: Option<BlockMatch>,
    /// The HTML body rewrite in progress (in a Mutex only because pingora needs the context to
    /// be `Sync`; one task uses it at a time).
    body: Option<std::sync::Mutex<BodyRewrite>>,
    neutralized: u32,
    /// New unknown-cookie-name labels this request may still admit.
    label_admissions: u32,
    /// The origin chosen for this request (for the timeout metric's label).
    upstream: Option<pingora::protocols::l4::socket::SocketAddr>,
    /// Failed connection attempts (retries stop when every origin of the site was tried).
    connect_failures: usize,
}

impl ConsentGate {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Self {
        ConsentGate { runtime }
    }
}

impl ConsentGate {
    /// Answers a tracker request of a non-consented category locally (enforce) or counts it
    /// (report-only). `Some(true)` = answered.
    async fn block_tracker(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        site: &Site,
    ) -> Result<Option<bool>> {
        let req = session.req_header();
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let host = header("host").or_else(|| req.uri.host()).unwrap_or("");
        let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let treq = TrackerRequest {
            scheme: header("x-forwarded-proto").unwrap_or("http"),
            host,
            path_and_query,
            referer: header("referer"),
            sec_fetch_dest: header("sec-fetch-dest"),
            accept: header("accept"),
        };
        let checked = catch_unwind(AssertUnwindSafe(|| {
            check_tracker(site, &ctx.plan.consent, &treq)
        }));
        let (m, kind) = match checked {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(_) => {
                // Availability fails open: the request goes on to the origin, counted.
                metrics::FILTER_ERRORS
                    .with_label_values(&[&site.name, "blocklist"])
                    .inc();
                return Ok(None);
            }
        };
        let enforce = site.mode == Mode::Enforce;
        metrics::BLOCKED_REQUESTS
            .with_label_values(&[
                &site.name,
                m.category.as_str(),
                &m.list,
                if enforce { "blocked" } else { "would_block" },
            ])
            .inc();
        ctx.blocked = Some(m.clone());
        if !enforce {
            return Ok(None);
        }
        let r = block_response(kind, &site.block_responses, &m);
        let mut resp = ResponseHeader::build(r.status, Some(4))?;
        if r.status != 204 {
            // RFC 9110 8.6: a 204 carries no Content-Length (nor a body to type).
            resp.insert_header(http::header::CONTENT_TYPE, r.content_type)?;
            resp.insert_header(http::header::CONTENT_LENGTH, r.body.len())?;
        }
        resp.insert_header(http::header::CACHE_CONTROL, "private, no-store")?;
        resp.insert_header("X-Consentgate", "blocked")?;
        session
            .write_response_header(Box::new(resp), r.body.is_empty())
            .await?;
        if !r.body.is_empty() {
            session
                .write_response_body(Some(bytes::Bytes::from(r.body)), true)
                .await?;
        }
        Ok(Some(true))
    }
}

#[async_trait]
impl ProxyHttp for ConsentGate {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            site: None,
            plan: RequestPlan::default(),
            upstream_cookie: None,
            set_cookie_kept: 0,
            set_cookie_stripped: 0,
            expired: 0,
            access_log: false,
            blocked: None,
            body: None,
            neutralized: 0,
            label_admissions: metrics::UNKNOWN_LABELS_PER_REQUEST,
            upstream: None,
            connect_failures: 0,
        }
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        crate::connections::check_request(session)
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let rt = self.runtime.load();
        ctx.access_log = rt.proxy.access_log;
        let req = session.req_header();
        let host = req
            .headers
            .get(HOST)
            .map(|h| h.as_bytes())
            .or_else(|| req.uri.host().map(str::as_bytes));
        let Some(site) = rt.site_for_host(host).cloned() else {
            metrics::UNROUTED.inc();
            session.respond_error(421).await?;
            return Ok(true);
        };
        if site.mode != Mode::Off {
            let gpc = crate::consent::gpc::is_gpc_signal(
                req.headers
                    .get_all(&SEC_GPC)
                    .iter()
                    .map(HeaderValue::as_bytes),
            );
            let lines = req.headers.get_all(COOKIE);
            match catch_unwind(AssertUnwindSafe(|| {
                plan_request(&site, lines.iter().map(HeaderValue::as_bytes), gpc, false).0
            })) {
                Ok(mut plan) => {
                    // Kept pairs are copied byte-for-byte; joined with "; " they are valid
                    // header bytes because each came from a valid header value. Should that
                    // ever fail, no cookie is sent (privacy fails closed).
                    ctx.upstream_cookie = plan.upstream_cookie.take().map(|v| {
                        if v.is_empty() {
                            None
                        } else {
                            HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).ok()
                        }
                    });
                    ctx.plan = plan;
                }
                Err(_) => {
                    metrics::FILTER_ERRORS
                        .with_label_values(&[&site.name, "request_cookies"])
                        .inc();
                    ctx.plan = RequestPlan::default();
                }
            }
        }
        if site.mode != Mode::Off && !site.blocklists.is_empty() {
            if let Some(done) = self.block_tracker(session, ctx, &site).await? {
                ctx.site = Some(site);
                return Ok(done);
            }
        }
        ctx.site = Some(site);
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let site = ctx
            .site
            .as_ref()
            .expect("request_filter routes every request");
        let backend = site.balancer.select(b"", 256).ok_or_else(|| {
            Error::explain(
                ErrorType::ConnectNoRoute,
                format!("site `{}` has no upstream to send to", site.name),
            )
        })?;
        let mut peer = HttpPeer::new(backend.addr.clone(), false, String::new());
        let t = &site.timeouts;
        peer.options.connection_timeout = Some(t.connect);
        peer.options.total_connection_timeout = Some(t.connect);
        peer.options.read_timeout = Some(t.read);
        peer.options.write_timeout = Some(t.write);
        peer.options.idle_timeout = Some(t.idle);
        ctx.upstream = Some(backend.addr);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Try each of the site's origins once, not pingora's default of up to 16 attempts:
        // with a connect timeout that would multiply the client's wait.
        ctx.connect_failures += 1;
        let origins = ctx.site.as_ref().map_or(1, |s| s.upstreams.len());
        if ctx.connect_failures >= origins {
            e.set_retry(false);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        _ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        // pingora's default policy, except that a timed-out origin is not asked again: the
        // client would wait `read_ms` twice.
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent()
            || session.as_ref().retry_buffer_truncated()
            || crate::connections::upstream_timeout_phase(&e).is_some()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> pingora::proxy::FailToProxy {
        let code = crate::connections::error_status(e);
        if let (Some(phase), Some(site)) =
            (crate::connections::upstream_timeout_phase(e), &ctx.site)
        {
            let upstream = ctx
                .upstream
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_default();
            metrics::UPSTREAM_TIMEOUTS
                .with_label_values(&[&site.name, &upstream, phase])
                .inc();
        }
        if code > 0 {
            let _ = session.respond_error(code).await;
        }
        pingora::proxy::FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        // Requests refused for their form are counted (consentgate_client_refusals_total); an
        // error line each would let any client fill the log.
        matches!(e.etype(), ErrorType::HTTPStatus(code) if (400..500).contains(code) || *code == 501)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(site) = &ctx.site else { return Ok(()) };
        if !upstream_request.headers.contains_key(HOST) {
            // HTTP/1.0 without Host: pingora forwards HTTP/1.1, which needs one (RFC 9112 §3.2).
            // The site's own name if it has one, else the origin's address (nginx's $proxy_host).
            let host = site
                .hosts
                .iter()
                .find(|h| !h.contains('*'))
                .cloned()
                .or_else(|| ctx.upstream.as_ref().map(|a| a.to_string()))
                .unwrap_or_default();
            upstream_request.insert_header(HOST, host)?;
        }
        if site.mode != Mode::Enforce {
            return Ok(());
        }
        // Applied on every upstream attempt (pingora rebuilds the request for a retry).
        match &ctx.upstream_cookie {
            None => {}
            Some(None) => {
                upstream_request.remove_header(&COOKIE);
            }
            Some(Some(v)) => {
                // Every Cookie line is replaced by this one. Remove, then append: an insert
                // into the request's full header map reallocates it, this does not. The name
                // as a `&'static str`: pingora then keeps its case without copying it.
                upstream_request.remove_header(&COOKIE);
                upstream_request.append_header("Cookie", v.clone())?;
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(site) = ctx.site.clone() else {
            return Ok(());
        };
        if site.mode == Mode::Off {
            return Ok(());
        }
        if site.mode == Mode::Enforce {
            if let Some(csp) = &site.csp {
                let value = csp.header_value(ctx.plan.consent.grants);
                upstream_response.append_header(csp.header_name, value)?;
                // The policy differs per visitor's consent: a shared cache must not reuse it.
                upstream_response.append_header("Vary", "Cookie")?;
            }
        }
        if site.mode == Mode::Enforce
            && site
                .page_rules
                .as_ref()
                .is_some_and(|r| r.needed(ctx.plan.consent.grants))
        {
            start_html_rewrite(&site, ctx, upstream_response, session.req_header())?;
        }
        let has_set_cookie = upstream_response.headers.contains_key(SET_COOKIE);
        if !has_set_cookie && ctx.plan.expire.is_empty() {
            return Ok(());
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            gate_set_cookies(&site, ctx, upstream_response)
        }));
        if outcome.is_err() {
            metrics::FILTER_ERRORS
                .with_label_values(&[&site.name, "set_cookie"])
                .inc();
            upstream_response.remove_header(&SET_COOKIE);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        let (Some(rw), Some(site)) = (ctx.body.as_mut(), ctx.site.as_ref()) else {
            return Ok(None);
        };
        let rw = rw.get_mut().unwrap_or_else(|e| e.into_inner());
        let input = body.take().unwrap_or_default();
        let out = match catch_unwind(AssertUnwindSafe(|| rw.chunk(&input, end_of_stream))) {
            Ok(out) => out,
            Err(_) => {
                // A panic inside the rewriter: the rest of this response is lost to rewriting;
                // pass what arrived (and any compressed body still held) and stop (availability
                // fails open).
                metrics::REWRITE_FAILURES
                    .with_label_values(&[&site.name, "panic"])
                    .inc();
                let rest = rw.recover_after_panic(&input);
                ctx.body = None;
                *body = Some(bytes::Bytes::from(rest));
                return Ok(None);
            }
        };
        if let Some(reason) = &out.failure {
            tracing::warn!(site = %site.name, error = %reason, "HTML rewrite failed; passing the rest through");
            metrics::REWRITE_FAILURES
                .with_label_values(&[&site.name, "rewriter"])
                .inc();
        }
        for (cat, tag) in &out.neutralized {
            metrics::NEUTRALIZED
                .with_label_values(&[&site.name, cat.as_str(), tag])
                .inc();
        }
        ctx.neutralized += out.neutralized.len() as u32;
        *body = Some(bytes::Bytes::from(out.bytes));
        Ok(None)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(phase) = e.and_then(crate::connections::client_timeout_phase) {
            metrics::CLIENT_TIMEOUTS.with_label_values(&[phase]).inc();
        }
        let Some(site) = &ctx.site else { return };
        let consent_label = if site.mode == Mode::Off {
            "off"
        } else {
            ctx.plan.consent.label()
        };
        site.metrics.requests[consent_index(consent_label)].inc();
        if ctx.plan.consent.gpc {
            site.metrics.gpc.inc();
        }
        for s in &ctx.plan.consent.sources {
            if s.error.is_some() {
                metrics::CONSENT_ERRORS
                    .with_label_values(&[&site.name, s.format])
                    .inc();
            }
        }
        let action = if site.mode == Mode::Enforce { 0 } else { 1 };
        for (i, n) in ctx.plan.stripped.iter().enumerate() {
            if *n > 0 {
                site.metrics.request_stripped[i][action].inc_by(u64::from(*n));
            }
        }
        for name in &ctx.plan.unknown_names {
            metrics::count_unknown_cookie(&site.name, name, &mut ctx.label_admissions);
        }
        if ctx.plan.cookies_over_limit > 0 {
            site.metrics
                .cookies_over_limit
                .inc_by(u64::from(ctx.plan.cookies_over_limit));
        }
        if ctx.plan.expiry_lines_over_limit > 0 {
            site.metrics
                .expiry_lines_over_limit
                .inc_by(u64::from(ctx.plan.expiry_lines_over_limit));
        }
        let upstream_error = e.filter(|e| *e.esource() == pingora::ErrorSource::Upstream);
        if let Some(err) = upstream_error {
            metrics::UPSTREAM_ERRORS
                .with_label_values(&[&site.name, err.etype().as_str()])
                .inc();
        }
        if ctx.access_log {
            let req = session.req_header();
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            let errors: Vec<&str> = ctx
                .plan
                .consent
                .sources
                .iter()
                .filter(|s| s.error.is_some())
                .map(|s| s.format)
                .collect();
            tracing::info!(
                target: "access",
                site = %site.name,
                mode = site.mode.as_str(),
                method = %req.method,
                path = req.uri.path(),
                status,
                consent = consent_label,
                gpc = ctx.plan.consent.gpc,
                consent_errors = ?errors,
                set_cookie_kept = ctx.set_cookie_kept,
                set_cookie_stripped = ctx.set_cookie_stripped,
                request_cookies_stripped = ctx.plan.stripped.iter().sum::<u32>(),
                cookies_expired = ctx.expired,
                neutralized = ctx.neutralized,
                blocked_category = ctx.blocked.as_ref().map(|m| m.category.as_str()),
                blocked_list = ctx.blocked.as_ref().map(|m| m.list.as_str()),
                upstream_error = upstream_error.map(|e| e.etype().as_str()),
                duration_us = ctx.started.elapsed().as_micros() as u64,
            );
        }
    }
}

/// Keeps or strips each `Set-Cookie` line and, in enforce mode, appends the expiry lines for
/// withdrawn cookies. Kept lines are the origin's own `HeaderValue`s, re-appended unchanged, one
/// header line each (never folded).
fn gate_set_cookies(site: &Site, ctx: &mut RequestCtx, resp: &mut ResponseHeader) {
    let enforce = site.mode == Mode::Enforce;
    // First pass: decide and count, without touching the headers (the common case keeps all).
    let mut allowed: SmallVec<[bool; 8]> = SmallVec::new();
    for value in resp.headers.get_all(SET_COOKIE) {
        let (name, verdict) = judge_set_cookie(site, &ctx.plan.consent, value.as_bytes());
        let cat = category_index(verdict.category);
        if verdict.category.is_none() {
            metrics::count_unknown_cookie(&site.name, name, &mut ctx.label_admissions);
        }
        if verdict.allowed {
            ctx.set_cookie_kept += 1;
            site.metrics.set_cookies[cat][0].inc();
        } else if enforce {
            ctx.set_cookie_stripped += 1;
            site.metrics.set_cookies[cat][1].inc();
        } else {
            site.metrics.set_cookies[cat][2].inc();
        }
        allowed.push(verdict.allowed);
    }
    if !enforce {
        return;
    }
    for (_, cat) in &ctx.plan.expire {
        ctx.expired += 1;
        site.metrics.expired[*cat as usize].inc();
    }
    let mut expiry: SmallVec<[HeaderValue; 4]> = SmallVec::new();
    for (name, _) in &ctx.plan.expire {
        expiry.extend(site.expiry_values(name).iter().cloned());
    }
    // `SET_COOKIE` (not a string) so pingora writes the canonical `Set-Cookie` case.
    if allowed.contains(&false) {
        // The kept lines (cloned: cheap, reference-counted bytes) and then the expiry lines
        // replace every Set-Cookie line: one insert and the appends, no separate remove.
        let mut lines = resp
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .zip(&allowed)
            .filter(|(_, keep)| **keep)
            .map(|(v, _)| v.clone())
            .collect::<SmallVec<[HeaderValue; 8]>>()
            .into_iter()
            .chain(expiry);
        match lines.next() {
            Some(first) => {
                let _ = resp.insert_header(SET_COOKIE, first);
                for v in lines {
                    let _ = resp.append_header(SET_COOKIE, v);
                }
            }
            None => {
                resp.remove_header(&SET_COOKIE);
            }
        }
    } else {
        for v in expiry {
            let _ = resp.append_header(SET_COOKIE, v);
        }
    }
}

/// `scheme://host/path?query` of the request, for resolving URLs in its HTML.
fn page_url(req: &RequestHeader) -> String {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let scheme = header("x-forwarded-proto").unwrap_or("http");
    let host = header("host")
        .or_else(|| req.uri.host())
        .unwrap_or("localhost");
    let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{scheme}://{host}{pq}")
}

/// Starts rewriting an HTML response for a visitor who lacks consent for some category:
/// the body will change, so `Content-Length` goes, and the response is marked private and
/// varying by `Cookie` so no shared cache serves it to a visitor with other consent.
fn start_html_rewrite(
    site: &Site,
    ctx: &mut RequestCtx,
    resp: &mut ResponseHeader,
    req: &RequestHeader,
) -> Result<()> {
    let Some(rules) = &site.page_rules else {
        return Ok(());
    };
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let is_html = media.eq_ignore_ascii_case("text/html")
        || media.eq_ignore_ascii_case("application/xhtml+xml");
    let status = resp.status.as_u16();
    if !is_html || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(());
    }
    let charset = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("charset="))
        .next()
        .map(|c| c.trim_matches('"').to_string());
    let encoding = resp
        .headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(codec) = crate::html::codec::Codec::for_encoding(encoding.as_deref()) else {
        // An encoding we cannot read (e.g. zstd): pass through unchanged, counted.
        metrics::REWRITE_FAILURES
            .with_label_values(&[&site.name, "encoding"])
            .inc();
        return Ok(());
    };
    let neutralizer = match crate::html::Neutralizer::new(
        ctx.plan.consent.grants,
        &page_url(req),
        rules.clone(),
        charset.as_deref(),
    ) {
        Ok(n) => n,
        Err(_) => {
            metrics::REWRITE_FAILURES
                .with_label_values(&[&site.name, "charset"])
                .inc();
            return Ok(());
        }
    };
    ctx.body = Some(std::sync::Mutex::new(BodyRewrite::new(codec, neutralizer)));
    resp.remove_header(&http::header::CONTENT_LENGTH);
    resp.remove_header(&http::header::ETAG);
    let cache_control = resp
        .headers
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .map(private_cache_control)
        .unwrap_or_else(|| "private".to_string());
    resp.insert_header(http::header::CACHE_CONTROL, cache_control)?;
    resp.append_header("Vary", "Cookie")?;
    Ok(())
}

/// `Cache-Control` with `public` and `s-maxage` removed and `private` added.
fn private_cache_control(v: &str) -> String {
    let mut parts: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|d| {
            let name = d
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            !d.is_empty() && name != "public" && name != "s-maxage" && name != "private"
        })
        .collect();
    parts.insert(0, "private");
    parts.join(", ")
}
