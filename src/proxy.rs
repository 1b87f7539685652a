//! The pingora glue: one method per request phase, each a thin call into the pure decisions in
//! [`crate::decide`]. Everything a request learns lives in [`RequestCtx`].
//!
//! Failure policy (DESIGN.md invariants): a panic inside a decision never becomes a 5xx. On the
//! request side the cookies go to the origin unchanged (the browser holds them already); on the
//! response side every `Set-Cookie` is withheld (privacy fails closed); both are counted.

use crate::config::Mode;
use crate::consent::Grants;
use crate::consent_mode::{BeaconAction, ConsentMode};
use crate::cookies::gate::RequestAction;
use crate::decide::forwarded::{self, ForwardedPlan, Scheme};
use crate::decide::{
    check_tracker, plan_request_observed, plan_response, HtmlPlan, HtmlRewrite, RequestPlan,
    RequestTarget, ResponseHead, ResponsePlan, RewriteSkip, TrackerRequest,
};
use crate::html::body::BodyRewrite;
use crate::jurisdiction::{Model, Selected};
use crate::labels::{
    BlockAction, CategoryLabel, ConsentLabel, FilterStage, RewriteFailure, SetCookieAction,
    StripAction,
};
use crate::metrics;
use crate::runtime::{Runtime, Site};
use crate::trackers::respond::block_response;
use crate::trackers::BlockMatch;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, COOKIE, HOST, SET_COOKIE, TRANSFER_ENCODING};
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
    /// What this request's response did, for the access log.
    counts: ResponseCounts,
    access_log: bool,
    /// The tracker match, when the request was blocked (or would be, in report-only).
    blocked: Option<BlockMatch>,
    /// The HTML body rewrite in progress (in a Mutex only because pingora needs the context to
    /// be `Sync`; one task uses it at a time). Boxed: inline it was 1.5 KB of a 2 KB context
    /// that pingora's request future holds, and that future is copied into its box on every
    /// request, rewritten or not.
    body: Option<Box<std::sync::Mutex<BodyRewrite>>>,
    /// New unknown-cookie-name labels this request may still admit.
    label_admissions: u32,
    /// New names this request may still add to the live cookie inventory, and the time.
    inventory_admissions: crate::inventory::RequestBudget,
    /// The origin chosen for this request (for the timeout metric's label).
    upstream: Option<pingora::protocols::l4::socket::SocketAddr>,
    /// Failed connection attempts (one retry, on another origin).
    connect_failures: usize,
    /// The site's origins this request was sent to, by index (the last is the current one).
    tried: SmallVec<[usize; 2]>,
    /// The client, scheme and forwarding-header edits (`decide::forwarded`).
    forwarded: Option<ForwardedPlan>,
    /// The site's jurisdiction rule for this visitor (`None` for a site without rules).
    jurisdiction: Option<Selected>,
}

impl RequestCtx {
    /// The scheme URLs are built with: decided per connection and trusted proxies, never read
    /// from a header any client could set.
    fn scheme(&self) -> Scheme {
        self.forwarded.as_ref().map_or(Scheme::Http, |f| f.scheme)
    }
}

/// Per-response tallies for the access log (the metrics are counted as they happen).
#[derive(Default)]
struct ResponseCounts {
    set_cookie_kept: u32,
    set_cookie_stripped: u32,
    expired: u32,
    neutralized: u32,
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
        // Nothing to match (the visitor consented to every category the lists cover): the
        // request's headers are not even looked at.
        if !site.policy.blocklists.needed(ctx.plan.consent.grants) {
            return Ok(None);
        }
        let req = session.req_header();
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let treq = TrackerRequest {
            target: RequestTarget::from_request(&req.headers, &req.uri, ctx.scheme()),
            referer: header("referer"),
            sec_fetch_dest: header("sec-fetch-dest"),
            accept: header("accept"),
            beacon: crate::trackers::is_beacon(
                req.method.as_str(),
                header("sec-fetch-mode"),
                header("content-type"),
                req.headers.contains_key("ping-to"),
            ),
        };
        let checked = catch_unwind(AssertUnwindSafe(|| {
            check_tracker(&site.policy, &ctx.plan.consent, &treq)
        }));
        let (m, kind) = match checked {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(_) => {
                // Availability fails open: the request goes on to the origin, counted.
                count_filter_error(site, FilterStage::Blocklist);
                return Ok(None);
            }
        };
        let enforce = site.policy.mode == Mode::Enforce;
        count_blocked_request(site, &m, treq.target.host, enforce);
        ctx.blocked = Some(m.clone());
        if !enforce {
            return Ok(None);
        }
        write_block_response(session, kind, site, &m).await?;
        Ok(Some(true))
    }

    /// Audits a Google tag beacon against the visitor's consent (`[site.consent_mode]`).
    /// A mismatch is counted and, in enforce mode, answered like a blocked tracker.
    async fn audit_beacon(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        site: &Site,
        cm: &ConsentMode,
    ) -> Result<BeaconOutcome> {
        let req = session.req_header();
        let path = req.uri.path();
        let query = req.uri.query().unwrap_or("");
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let kind = || crate::trackers::infer_kind(header("sec-fetch-dest"), header("accept"), path);
        let grants = ctx.plan.consent.grants;
        // The one decision (`ConsentMode::audit`, also what `explain` shows); here only applied.
        let audited = catch_unwind(AssertUnwindSafe(|| {
            cm.audit(grants, path, query, kind)
                .map(|a| (a.action, a.tag_id.map(str::to_string), a.block_match()))
        }));
        let (action, tid, block) = match audited {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(BeaconOutcome::Continue),
            Err(_) => {
                // Availability fails open: the blocklists still decide.
                count_filter_error(site, FilterStage::ConsentMode);
                return Ok(BeaconOutcome::Continue);
            }
        };
        let m = match (action, block) {
            (BeaconAction::Withhold(_), Some(m)) => return Ok(BeaconOutcome::Withheld(m)),
            (BeaconAction::PassThrough, _) => return Ok(BeaconOutcome::PassThrough),
            (BeaconAction::Mismatch(_), Some(m)) => m,
            _ => return Ok(BeaconOutcome::Continue),
        };
        let enforce = site.policy.mode == Mode::Enforce;
        let action = BlockAction::for_enforce(enforce);
        metrics::count_consent_mode_mismatch(&site.name, tid.as_deref(), action);
        // A blocked tracker request as well: the dashboard, the report's aggregates and
        // Grafana read consentgate_blocked_requests_total, not the mismatch counter.
        let req = session.req_header();
        let target = RequestTarget::from_request(&req.headers, &req.uri, ctx.scheme());
        count_blocked_request(site, &m, target.host, enforce);
        ctx.blocked = Some(m.clone());
        if !enforce {
            return Ok(BeaconOutcome::Counted);
        }
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let kind =
            crate::trackers::infer_kind(header("sec-fetch-dest"), header("accept"), req.uri.path());
        write_block_response(session, kind, site, &m).await?;
        Ok(BeaconOutcome::Answered)
    }
}

/// What the consent-mode audit decided for a request.
enum BeaconOutcome {
    /// Not a beacon, or nothing to act on: the blocklists decide as usual.
    Continue,
    /// A cookieless ping in advanced mode: to the origin, not checked against the blocklists.
    PassThrough,
    /// A mismatch in enforce mode, answered locally.
    Answered,
    /// A mismatch in report-only: counted as enforce would block it (`would_block`, list
    /// `consent-mode`) and forwarded. The blocklists are not asked, as enforce would not ask
    /// them either: one request, one blocked count.
    Counted,
    /// A beacon of a tag the visitor has not consented to (basic mode; or no `gcs`/`gcd`):
    /// blocked after the blocklists had their say (a list that matches blocks and counts it).
    Withheld(BlockMatch),
}

/// Blocks a withheld beacon (`BeaconOutcome::Withheld`): counted in
/// `consentgate_blocked_requests_total{list="consent-mode"}` and on the dashboard like a
/// blocklist match; answered locally in enforce mode (`true`), forwarded in report-only.
async fn block_withheld_beacon(
    session: &mut Session,
    ctx: &mut RequestCtx,
    site: &Site,
    m: BlockMatch,
) -> Result<bool> {
    let enforce = site.policy.mode == Mode::Enforce;
    let req = session.req_header();
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let target = RequestTarget::from_request(&req.headers, &req.uri, ctx.scheme());
    count_blocked_request(site, &m, target.host, enforce);
    let kind =
        crate::trackers::infer_kind(header("sec-fetch-dest"), header("accept"), req.uri.path());
    ctx.blocked = Some(m);
    if !enforce {
        return Ok(false);
    }
    let m = ctx.blocked.as_ref().expect("just set");
    write_block_response(session, kind, site, m).await?;
    Ok(true)
}

/// Counts a blocked (or, in report-only, would-be-blocked) tracker request everywhere it is
/// shown: `consentgate_blocked_requests_total` (Grafana, and the hourly aggregates `report`
/// reads) and the admin dashboard's per-minute chart and top tables.
fn count_blocked_request(site: &Site, m: &BlockMatch, host: Option<&str>, enforce: bool) {
    metrics::BLOCKED_REQUESTS
        .with_label_values(&[
            &site.name,
            m.category.as_str(),
            &m.list,
            BlockAction::for_enforce(enforce).as_str(),
        ])
        .inc();
    crate::admin::dashboard::count_blocked(m, host, enforce);
}

/// The local answer to a blocked request (the site's block response for its kind).
async fn write_block_response(
    session: &mut Session,
    kind: crate::trackers::RequestKind,
    site: &Site,
    m: &BlockMatch,
) -> Result<()> {
    let r = block_response(kind, &site.policy.block_responses, m);
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
    Ok(())
}

#[async_trait]
impl ProxyHttp for ConsentGate {
    type CTX = RequestCtx;

    /// No downstream modules. pingora's default adds its response compression module switched
    /// off (level 0), which still costs an allocation and four filter calls per request
    /// (~750 instructions, docs/BENCHMARKS.md); consentgate compresses nothing.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            site: None,
            plan: RequestPlan::default(),
            upstream_cookie: None,
            counts: ResponseCounts::default(),
            access_log: false,
            blocked: None,
            body: None,
            label_admissions: metrics::UNKNOWN_LABELS_PER_REQUEST,
            inventory_admissions: Default::default(),
            upstream: None,
            connect_failures: 0,
            tried: SmallVec::new(),
            forwarded: None,
            jurisdiction: None,
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
        // In every mode: a plain reverse proxy still must not pass on a spoofed client address.
        ctx.forwarded = Some(plan_forwarded_headers(session, &rt.proxy.forwarded, &site));
        let mode = site.policy.mode;
        let model = if mode != Mode::Off && !site.policy.jurisdictions.is_empty() {
            ctx.jurisdiction = locate_visitor(session, &rt, &site, ctx);
            ctx.jurisdiction
                .map_or(Model::OptIn, |s| site.policy.jurisdictions.rule(s).model)
        } else {
            Model::OptIn
        };
        let req = session.req_header();
        if mode != Mode::Off {
            let gpc = crate::consent::gpc::is_gpc_signal(
                req.headers
                    .get_all(&SEC_GPC)
                    .iter()
                    .map(HeaderValue::as_bytes),
            );
            let lines = req.headers.get_all(COOKIE);
            let enforce = mode == Mode::Enforce;
            let mut inventory = site
                .inventory
                .recorder_with(&site.inventory_slots, &mut ctx.inventory_admissions);
            match catch_unwind(AssertUnwindSafe(|| {
                plan_request_observed(
                    &site.policy,
                    model,
                    lines.iter().map(HeaderValue::as_bytes),
                    gpc,
                    &req.headers,
                    false,
                    |name, verdict, action| {
                        let stripped = enforce && action != RequestAction::Forward;
                        inventory.record_listed(
                            name,
                            verdict.slot,
                            verdict.category,
                            verdict.origin,
                            stripped,
                        );
                    },
                )
                .0
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
                    count_filter_error(&site, FilterStage::RequestCookies);
                    ctx.plan = RequestPlan::default();
                }
            }
            observe_consent(&site, ctx, req);
        }
        let mut check_blocklists = mode != Mode::Off && !site.policy.blocklists.is_empty();
        let mut withheld = None;
        if let (true, Some(cm)) = (mode != Mode::Off, site.policy.consent_mode.as_ref()) {
            match self.audit_beacon(session, ctx, &site, cm).await? {
                BeaconOutcome::Answered => {
                    ctx.site = Some(site);
                    return Ok(true);
                }
                BeaconOutcome::PassThrough | BeaconOutcome::Counted => check_blocklists = false,
                BeaconOutcome::Withheld(m) => withheld = Some(m),
                BeaconOutcome::Continue => {}
            }
        }
        if check_blocklists {
            if let Some(done) = self.block_tracker(session, ctx, &site).await? {
                ctx.site = Some(site);
                return Ok(done);
            }
        }
        // A withheld beacon no list blocked (or counted, in report-only): blocked all the same.
        if let Some(m) = withheld.filter(|_| ctx.blocked.is_none()) {
            let answered = block_withheld_beacon(session, ctx, &site, m).await?;
            ctx.site = Some(site);
            return Ok(answered);
        }
        ctx.site = Some(site);
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let site = ctx
            .site
            .as_ref()
            .expect("request_filter routes every request");
        let (index, mut peer) = pick_upstream(site, session, &ctx.tried).ok_or_else(|| {
            Error::explain(
                ErrorType::ConnectNoRoute,
                format!("site `{}` has no upstream to send to", site.name),
            )
        })?;
        let t = &site.timeouts;
        peer.options.connection_timeout = Some(t.connect);
        peer.options.total_connection_timeout = Some(t.connect);
        peer.options.read_timeout = Some(t.read);
        peer.options.write_timeout = Some(t.write);
        peer.options.idle_timeout = Some(t.idle);
        ctx.upstream = Some(peer._address.clone());
        ctx.tried.push(index);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // The origin is ejected (passive health), and the request tried once more on another
        // origin: only an idempotent one (issue 10; nginx would also resend a POST whose
        // connect failed, but a TLS handshake failure may come after the origin read it), and
        // not pingora's default of up to 16 attempts, which a connect timeout would multiply.
        ctx.connect_failures += 1;
        let retry = match (&ctx.site, ctx.tried.last()) {
            (Some(site), Some(&i)) => {
                site.upstreams.eject(i);
                session.req_header().method.is_idempotent()
                    && ctx.connect_failures < 2
                    && site.upstreams.untried_left(&ctx.tried)
            }
            _ => false,
        };
        e.set_retry(retry);
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
        if let Some(plan) = &ctx.forwarded {
            apply_forwarded(upstream_request, plan)?;
        }
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
        if site.policy.mode != Mode::Enforce {
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
        gate_response(session, upstream_response, ctx)?;
        // Last, on every path (any mode, rewritten or not): the framing follows the final header.
        frame_for_client(session, upstream_response)
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
                count_rewrite_failure(site, RewriteFailure::Panic);
                let rest = rw.recover_after_panic(&input);
                ctx.body = None;
                *body = Some(bytes::Bytes::from(rest));
                return Ok(None);
            }
        };
        if let Some(reason) = &out.failure {
            tracing::warn!(site = %site.name, error = %reason, "HTML rewrite failed; passing the rest through");
            count_rewrite_failure(site, RewriteFailure::Rewriter);
        }
        for (cat, tag) in &out.neutralized {
            metrics::NEUTRALIZED
                .with_label_values(&[&site.name, cat.as_str(), tag])
                .inc();
        }
        ctx.counts.neutralized += out.neutralized.len() as u32;
        *body = Some(bytes::Bytes::from(out.bytes));
        Ok(None)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if let Some(phase) = e.and_then(crate::connections::client_timeout_phase) {
            metrics::CLIENT_TIMEOUTS.with_label_values(&[phase]).inc();
        }
        let Some(site) = ctx.site.clone() else { return };
        let consent = if site.policy.mode == Mode::Off {
            ConsentLabel::Off
        } else {
            ctx.plan.consent.label()
        };
        count_request(&site, ctx, consent);
        let upstream_error = e.filter(|e| *e.esource() == pingora::ErrorSource::Upstream);
        if let Some(err) = upstream_error {
            metrics::UPSTREAM_ERRORS
                .with_label_values(&[&site.name, err.etype().as_str()])
                .inc();
        }
        if ctx.access_log {
            access_log(session, &site, ctx, consent, upstream_error);
        }
    }
}

/// The origin for this request (consistent hash on the session cookie, else round-robin) and
/// its peer (`None` only for a site without origins, which the configuration refuses).
fn pick_upstream(site: &Site, session: &Session, tried: &[usize]) -> Option<(usize, HttpPeer)> {
    // The key is read only when the balancing uses one (most sites: no cookie look-up).
    let key = if site.upstreams.reads_key() {
        let client = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let lines = session.req_header().headers.get_all(COOKIE);
        site.upstreams
            .hash_key(lines.iter().map(HeaderValue::as_bytes), client)
    } else {
        Vec::new()
    };
    let index = site.upstreams.select(&key, tried)?;
    Some((index, site.upstreams.peer(index)))
}

/// The request's metrics, once it is done: consent state, GPC, unreadable consent, request
/// cookies withheld (or that would be), unknown names, limits reached.
fn count_request(site: &Site, ctx: &mut RequestCtx, consent: ConsentLabel) {
    site.metrics.requests[consent].inc();
    if let Some(s) = ctx.jurisdiction {
        site.metrics.count_jurisdiction(s);
    }
    let plan = &ctx.plan;
    if plan.consent.gpc {
        site.metrics.gpc.inc();
    }
    for s in &plan.consent.sources {
        site.metrics
            .count_consent_source(&site.name, s.via, s.format);
        if s.error.is_some() {
            metrics::CONSENT_ERRORS
                .with_label_values(&[&site.name, s.format])
                .inc();
        }
    }
    let action = StripAction::for_enforce(site.policy.mode == Mode::Enforce);
    for &cat in CategoryLabel::ALL {
        let n = plan.stripped[cat];
        if n > 0 {
            site.metrics.request_stripped[cat][action].inc_by(u64::from(n));
        }
    }
    for name in &plan.unknown_names {
        metrics::count_unknown_cookie(&site.name, name, &mut ctx.label_admissions);
    }
    if plan.cookies_over_limit > 0 {
        site.metrics
            .cookies_over_limit
            .inc_by(u64::from(plan.cookies_over_limit));
    }
    if plan.expiry_lines_over_limit > 0 {
        site.metrics
            .expiry_lines_over_limit
            .inc_by(u64::from(plan.expiry_lines_over_limit));
    }
}

/// One JSON line per request (target `access`).
fn access_log(
    session: &Session,
    site: &Site,
    ctx: &RequestCtx,
    consent: ConsentLabel,
    upstream_error: Option<&Error>,
) {
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
        mode = site.policy.mode.as_str(),
        method = %req.method,
        path = req.uri.path(),
        status,
        consent = consent.as_str(),
        jurisdiction = ctx.jurisdiction.map(|s| site.policy.jurisdictions.rule(s).name.as_str()),
        gpc = ctx.plan.consent.gpc,
        consent_errors = ?errors,
        set_cookie_kept = ctx.counts.set_cookie_kept,
        set_cookie_stripped = ctx.counts.set_cookie_stripped,
        request_cookies_stripped = ctx.plan.stripped.iter().sum::<u32>(),
        cookies_expired = ctx.counts.expired,
        neutralized = ctx.counts.neutralized,
        blocked_category = ctx.blocked.as_ref().map(|m| m.category.as_str()),
        blocked_list = ctx.blocked.as_ref().map(|m| m.list.as_str()),
        upstream_error = upstream_error.map(|e| e.etype().as_str()),
        duration_us = ctx.started.elapsed().as_micros() as u64,
    );
}

/// Where the visitor is (`crate::geo`) and the site's jurisdiction rule there. Runs only for
/// sites with rules. A panic while locating fails closed: the location is unknown, so the
/// fallback rule (by default the strictest) applies; it is counted.
fn locate_visitor(
    session: &Session,
    rt: &crate::runtime::Runtime,
    site: &Site,
    ctx: &RequestCtx,
) -> Option<Selected> {
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let client = ctx.forwarded.as_ref().map_or(peer, |f| f.client);
    let headers = &session.req_header().headers;
    let located = catch_unwind(AssertUnwindSafe(|| {
        crate::geo::locate(&rt.proxy.geo, &rt.proxy.forwarded, headers, peer, client)
    }));
    let location = located.unwrap_or_else(|_| {
        count_filter_error(site, FilterStage::Geo);
        crate::geo::Location::UNKNOWN
    });
    site.policy.jurisdictions.select(&location)
}

/// The forwarding decision for this request (`decide::forwarded`). A panic in it fails closed:
/// every incoming forwarding header is removed, none added, the scheme is this connection's.
fn plan_forwarded_headers(
    session: &Session,
    settings: &crate::config::ForwardedSettings,
    site: &Site,
) -> ForwardedPlan {
    // No TCP peer (not an Inet listener): an address no range but 0.0.0.0/0 trusts.
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    // TLS as pingora saw the handshake: `listen_tls` connections carry their TLS digest (over
    // HTTP/1.1 and HTTP/2, tests/tls.rs `forwarding_headers_over_tls_say_https`).
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let req = session.req_header();
    // The Host header, else the target's authority (HTTP/2's `:authority`, an absolute-form
    // request) with its port, as a Host header would carry it (userinfo dropped).
    let host = req
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| {
            req.uri
                .authority()
                .and_then(|a| a.as_str().rsplit('@').next())
        });
    let input = forwarded::ForwardedInput {
        peer,
        tls,
        host,
        version: req.version,
        headers: &req.headers,
    };
    match catch_unwind(AssertUnwindSafe(|| {
        forwarded::plan_forwarded(settings, &input)
    })) {
        Ok(plan) => plan,
        Err(_) => {
            count_filter_error(site, FilterStage::Forwarded);
            ForwardedPlan {
                client: peer,
                scheme: if tls { Scheme::Https } else { Scheme::Http },
                trusted_peer: false,
                remove: &forwarded::ALL,
                set: Vec::new(),
            }
        }
    }
}

/// Applies the forwarding edits to the origin's request (on every attempt: pingora rebuilds
/// the request for a retry). Remove, then append: as for `Cookie`, an insert would reallocate.
fn apply_forwarded(req: &mut RequestHeader, plan: &ForwardedPlan) -> Result<()> {
    // Most requests carry none of these names: one pass over the names then saves a hashed
    // look-up per name removed (a removal of an absent name changes nothing).
    let carried = forwarded::carries_forwarding(&req.headers);
    if carried {
        for name in plan.remove {
            req.remove_header(*name);
        }
    }
    for (name, value) in &plan.set {
        if carried {
            req.remove_header(*name);
        }
        // The name as a `&'static str` (the same lowercase bytes pingora would copy out of a
        // `HeaderName` of this kind): pingora keeps it as the case to write without a copy.
        req.append_header(name.as_str(), value.clone())?;
    }
    Ok(())
}

/// Consent receipts (src/receipts/): a cheap look-up per request with a consent signal; a
/// changed decision is queued for the writer thread, never written here. A panic in it is
/// contained (availability fails open) and counted.
fn observe_consent(site: &Site, ctx: &RequestCtx, req: &RequestHeader) {
    let Some(recorder) = crate::receipts::recorder::get() else {
        return;
    };
    if ctx.plan.consent.sources.is_empty() {
        return;
    }
    let observed = crate::receipts::recorder::Observed {
        site: &site.name,
        policy_version: &site.policy_version,
        consent: &ctx.plan.consent,
        headers: &req.headers,
        path: req.uri.path(),
        client: ctx.forwarded.as_ref().map(|f| f.client),
        jurisdiction: ctx
            .jurisdiction
            .map(|s| site.policy.jurisdictions.rule(s).name.as_str()),
    };
    if catch_unwind(AssertUnwindSafe(|| recorder.observe(observed))).is_err() {
        count_filter_error(site, FilterStage::Receipts);
    }
}

fn count_filter_error(site: &Site, stage: FilterStage) {
    metrics::FILTER_ERRORS
        .with_label_values(&[&site.name, stage.as_str()])
        .inc();
}

fn count_rewrite_failure(site: &Site, failure: RewriteFailure) {
    metrics::REWRITE_FAILURES
        .with_label_values(&[&site.name, failure.as_str()])
        .inc();
}

/// A panic while gating `Set-Cookie`: every line is withheld (privacy fails closed), counted.
fn withhold_set_cookies(site: &Site, resp: &mut ResponseHeader) {
    count_filter_error(site, FilterStage::SetCookie);
    resp.remove_header(&SET_COOKIE);
}

/// Counts the planned `Set-Cookie` decisions and the cookies expired.
fn count_set_cookies(site: &Site, plan: &ResponsePlan<'_>, ctx: &mut RequestCtx) {
    let mut inventory = site
        .inventory
        .recorder_with(&site.inventory_slots, &mut ctx.inventory_admissions);
    for d in &plan.set_cookies {
        let stripped = d.action == SetCookieAction::Stripped;
        inventory.record_listed(d.name, d.slot, d.category, d.origin, stripped);
        if d.category.is_none() {
            metrics::count_unknown_cookie(&site.name, d.name, &mut ctx.label_admissions);
        }
        match d.action {
            SetCookieAction::Kept => ctx.counts.set_cookie_kept += 1,
            SetCookieAction::Stripped => ctx.counts.set_cookie_stripped += 1,
            SetCookieAction::WouldStrip => {}
        }
        site.metrics.set_cookies[CategoryLabel::from(d.category)][d.action].inc();
    }
    if plan.expires {
        for (_, cat) in &ctx.plan.expire {
            ctx.counts.expired += 1;
            site.metrics.expired[CategoryLabel::from(*cat)].inc();
        }
    }
}

/// The response's consent gating: the plan for its `Set-Cookie` lines and headers, and the
/// start of its body rewrite.
fn gate_response(
    session: &Session,
    upstream_response: &mut ResponseHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let Some(site) = ctx.site.clone() else {
        return Ok(());
    };
    if site.policy.mode == Mode::Off {
        return Ok(());
    }
    // The origin's lines (cloned: cheap, reference-counted bytes; inline for up to 8): the
    // plan reads their names while the header map is edited.
    let originals: SmallVec<[HeaderValue; 8]> = upstream_response
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    let planned = catch_unwind(AssertUnwindSafe(|| {
        let head = ResponseHead {
            status: upstream_response.status.as_u16(),
            headers: &upstream_response.headers,
        };
        let lines = originals.iter().map(HeaderValue::as_bytes);
        plan_response(&site.policy, &ctx.plan, &head, lines)
    }));
    let Ok(mut plan) = planned else {
        withhold_set_cookies(&site, upstream_response);
        return Ok(());
    };
    if let HtmlPlan::Rewrite(rw) = &plan.html {
        let grants = ctx.plan.consent.grants;
        let scheme = ctx.scheme();
        match start_body_rewrite(&site, grants, rw, session.req_header(), scheme) {
            Some(body) => ctx.body = Some(Box::new(std::sync::Mutex::new(body))),
            None => plan.html = HtmlPlan::Skip(RewriteSkip::Charset),
        }
    }
    if let HtmlPlan::Skip(skip) = plan.html {
        if let Some(failure) = skip.failure() {
            count_rewrite_failure(&site, failure);
        }
    }
    apply_response_headers(upstream_response, &plan)?;
    let gated = catch_unwind(AssertUnwindSafe(|| {
        count_set_cookies(&site, &plan, ctx);
        apply_set_cookies(upstream_response, &originals, &plan);
    }));
    if gated.is_err() {
        withhold_set_cookies(&site, upstream_response);
    }
    Ok(())
}

/// Edits the `Set-Cookie` lines as planned. Kept lines are the origin's own `HeaderValue`s,
/// re-added unchanged, one header line each (never folded), then the expiry lines.
/// `SET_COOKIE` (not a string) so pingora writes the canonical `Set-Cookie` case.
fn apply_set_cookies(resp: &mut ResponseHeader, originals: &[HeaderValue], plan: &ResponsePlan) {
    if !plan.strips_any() {
        // The common case keeps every line: only the expiry lines (if any) are appended.
        for v in &plan.expiry_lines {
            let _ = resp.append_header(SET_COOKIE, v.clone());
        }
        return;
    }
    // The kept lines and then the expiry lines replace every Set-Cookie line: one insert and
    // the appends, no separate remove.
    let mut lines = originals
        .iter()
        .zip(&plan.set_cookies)
        .filter(|(_, d)| d.keeps())
        .map(|(v, _)| v)
        .chain(&plan.expiry_lines)
        .cloned();
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
}

/// The planned CSP, the headers a rewritten body makes wrong, `Cache-Control` and (once)
/// `Vary: Cookie`.
fn apply_response_headers(resp: &mut ResponseHeader, plan: &ResponsePlan) -> Result<()> {
    if let Some((name, value)) = &plan.csp {
        resp.append_header(*name, &**value)?;
    }
    for name in plan.removed_headers() {
        resp.remove_header(name);
    }
    if let Some(cache_control) = plan.cache_control() {
        resp.insert_header(CACHE_CONTROL, cache_control)?;
    }
    if plan.vary_cookie() {
        resp.append_header("Vary", "Cookie")?;
    }
    Ok(())
}

/// Makes the status line, the body's framing and `Connection` agree for the client
/// (`connections::response` decides; see there for what breaks otherwise). A rewritten body
/// has no `Content-Length` (the rewrite changes its size), and pingora frames a length-less
/// response as chunked only before this proxy's response filter runs: this frames it (found by
/// tests/soak.rs). Per request: two header lookups and a field set, nothing allocated.
fn frame_for_client(session: &mut Session, resp: &mut ResponseHeader) -> Result<()> {
    let req = session.req_header();
    let status = resp.status;
    let framing = crate::connections::response::plan(crate::connections::response::Head {
        client: req.version,
        bodiless: req.method == http::Method::HEAD
            || status.is_informational()
            || status == http::StatusCode::NO_CONTENT
            || status == http::StatusCode::NOT_MODIFIED,
        content_length: resp.headers.contains_key(CONTENT_LENGTH),
        transfer_encoding: resp.headers.contains_key(TRANSFER_ENCODING),
    });
    if framing.http11 {
        resp.set_version(http::Version::HTTP_11);
    }
    if framing.chunk {
        resp.insert_header(TRANSFER_ENCODING, "chunked")?;
    }
    if framing.unchunk {
        resp.remove_header(&TRANSFER_ENCODING);
        resp.remove_header(&CONTENT_LENGTH);
    }
    if framing.close {
        // Before the header goes out, so pingora writes `Connection: close` (it checks
        // afterwards too, but only once the header with `keep-alive` is written).
        session.set_keepalive(None);
    }
    Ok(())
}

/// The body rewriter for a planned HTML rewrite; `None` (the page goes out unchanged) when the
/// rewriter refuses the charset.
fn start_body_rewrite(
    site: &Site,
    grants: Grants,
    rw: &HtmlRewrite,
    req: &RequestHeader,
    scheme: Scheme,
) -> Option<BodyRewrite> {
    let rules = site.policy.rewrite_rules.clone()?;
    let page_url = RequestTarget::from_request(&req.headers, &req.uri, scheme).page_url();
    let charset = Some(rw.charset.name());
    let head_script = rw.consent_defaults.clone();
    let neutralizer = crate::html::Neutralizer::with_head_script(
        grants,
        &page_url,
        rules,
        charset,
        head_script,
        rw.csp_nonce.as_deref(),
    )
    .ok()?;
    let codec = crate::html::codec::Codec::new(rw.coding);
    Some(BodyRewrite::new(codec, neutralizer))
}
