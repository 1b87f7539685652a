//! A site's origins as the proxy uses them: pingora's balancer (weighted round-robin or Ketama
//! consistent hashing), the active health check (pingora's `HttpHealthCheck`, run by
//! [`UpstreamHealthChecks`] off the request path), passive ejection on failed connects, and the
//! `consentgate_upstream_healthy` gauge.
//!
//! Availability choices (docs in README "Upstreams"):
//! - an origin whose connect fails is ejected until the next successful health check, or for
//!   [`EJECT_BACKOFF`] when the site has no health check;
//! - when every origin is unhealthy or ejected, requests go to all of them anyway (fail open):
//!   a check that is wrong must not take the site down.

use crate::config::upstreams::{HealthCheckConfig, Lb, UpstreamTls, UpstreamsConfig};
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::lb::{discovery, Backend, Backends, LoadBalancer};
use pingora::prelude::{HttpPeer, RequestHeader};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::IntGauge;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// How long an origin whose connect failed is left out when the site has no health check.
pub const EJECT_BACKOFF: Duration = Duration::from_secs(5);

/// How often [`UpstreamHealthChecks`] looks for due checks and expired ejections.
const TICK: Duration = Duration::from_millis(50);

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds since [`EPOCH`], never 0 (0 means "not ejected").
fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64 + 1
}

/// One origin with its health state.
pub struct Upstream {
    /// As configured (`HOST:PORT`): the metric label and the `/status` address.
    pub addr: String,
    pub weight: usize,
    backend: Backend,
    /// When a connect to it last failed (ms since EPOCH); 0 = not ejected.
    ejected_at: AtomicU64,
    gauge: IntGauge,
}

enum Balancer {
    RoundRobin(LoadBalancer<RoundRobin>),
    Hash(LoadBalancer<Consistent>),
}

/// A site's origins.
pub struct Upstreams {
    pub list: Vec<Upstream>,
    balancer: Balancer,
    hash_cookie: Option<String>,
    tls: Option<UpstreamTls>,
    health_check: Option<HealthCheckConfig>,
    /// When the next active check is due (ms since EPOCH).
    next_check: AtomicU64,
    checking: AtomicBool,
}

impl Upstreams {
    /// `site` names the metric series; `host` is the Host header of health checks.
    pub fn build(cfg: UpstreamsConfig, site: &str, host: &str) -> Result<Upstreams, String> {
        let mut list = Vec::with_capacity(cfg.list.len());
        let mut set = BTreeSet::new();
        for u in &cfg.list {
            let backend = Backend::new_with_weight(&u.socket.to_string(), u.weight)
                .map_err(|e| format!("upstream `{}`: {e}", u.addr))?;
            set.insert(backend.clone());
            let gauge = crate::metrics::UPSTREAM_HEALTHY.with_label_values(&[site, &u.addr]);
            gauge.set(1);
            list.push(Upstream {
                addr: u.addr.clone(),
                weight: u.weight,
                backend,
                ejected_at: AtomicU64::new(0),
                gauge,
            });
        }
        let check = cfg
            .health_check
            .as_ref()
            .map(|h| health_check(h, host, cfg.tls.as_ref(), &cfg.list[0].host));
        let backends = || Backends::new(discovery::Static::new(set.clone()));
        let balancer = match cfg.lb {
            Lb::RoundRobin => {
                let mut lb = LoadBalancer::from_backends(backends());
                if let Some(c) = check {
                    lb.set_health_check(c);
                }
                fill(lb.update())?;
                Balancer::RoundRobin(lb)
            }
            Lb::ConsistentHash => {
                let mut lb = LoadBalancer::from_backends(backends());
                if let Some(c) = check {
                    lb.set_health_check(c);
                }
                fill(lb.update())?;
                Balancer::Hash(lb)
            }
        };
        Ok(Upstreams {
            list,
            balancer,
            hash_cookie: cfg.hash_cookie,
            tls: cfg.tls,
            health_check: cfg.health_check,
            next_check: AtomicU64::new(0),
            checking: AtomicBool::new(false),
        })
    }

    fn backends(&self) -> &Backends {
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Hash(lb) => lb.backends(),
        }
    }

    fn index_of(&self, b: &Backend) -> Option<usize> {
        self.list.iter().position(|u| u.backend.addr == b.addr)
    }

    fn ejected(&self, i: usize, now: u64) -> bool {
        let at = self.list[i].ejected_at.load(Relaxed);
        at != 0 && (self.health_check.is_some() || now < at + EJECT_BACKOFF.as_millis() as u64)
    }

    /// Whether origin `i` takes requests: its active check passes and it is not ejected.
    pub fn healthy(&self, i: usize) -> bool {
        self.backends().ready(&self.list[i].backend) && !self.ejected(i, now_ms())
    }

    /// The origin for a request: a healthy one not in `tried`, by the site's balancing; when
    /// none is, any not in `tried` (fail open); when every origin was tried, any (pingora
    /// retries a request whose pooled connection turned out closed: with one origin that is
    /// the same one again). `key` is [`Upstreams::hash_key`]'s. Connect retries are limited
    /// to other origins by the proxy (`untried_left`).
    pub fn select(&self, key: &[u8], tried: &[usize]) -> Option<usize> {
        if self.list.len() == 1 {
            // The only origin is every rule's answer (healthy, fail-open fallback, or asked
            // again): skip the balancer's walk, its health look-ups and the clock.
            return Some(0);
        }
        let now = now_ms();
        let pick = |accept: &dyn Fn(&Backend, bool) -> bool| {
            let b = match &self.balancer {
                Balancer::RoundRobin(lb) => lb.select_with(key, 256, accept),
                Balancer::Hash(lb) => lb.select_with(key, 256, accept),
            };
            b.and_then(|b| self.index_of(&b))
        };
        // One walk of the balancer's order, remembering the first untried origin as the
        // fail-open choice: a second walk would advance round-robin twice per request and, with
        // every origin ejected, always land on the same one.
        let fallback = std::cell::Cell::new(None);
        let healthy = pick(&|b, ready| {
            let Some(i) = self.index_of(b).filter(|i| !tried.contains(i)) else {
                return false;
            };
            if fallback.get().is_none() {
                fallback.set(Some(i));
            }
            ready && !self.ejected(i, now)
        });
        healthy.or(fallback.get()).or_else(|| pick(&|_, _| true))
    }

    /// A connect to origin `i` failed: no requests until the next successful check (or the
    /// backoff).
    pub fn eject(&self, i: usize) {
        if let Some(u) = self.list.get(i) {
            u.ejected_at.store(now_ms(), Relaxed);
            u.gauge.set(0);
        }
    }

    /// Whether an origin not in `tried` remains for a retry.
    pub fn untried_left(&self, tried: &[usize]) -> bool {
        (0..self.list.len()).any(|i| !tried.contains(&i))
    }

    /// Whether [`Self::select`] reads a key: only consistent hashing over several origins does
    /// (the proxy then skips reading the request's cookies and address for it).
    pub fn reads_key(&self) -> bool {
        self.list.len() > 1 && matches!(self.balancer, Balancer::Hash(_))
    }

    /// The consistent-hash key: `hash_cookie`'s value when the request has it, else the client
    /// address (the same client keeps its origin until it has a session). Empty for
    /// round-robin.
    pub fn hash_key<'a>(
        &self,
        cookie_lines: impl Iterator<Item = &'a [u8]>,
        client: Option<IpAddr>,
    ) -> Vec<u8> {
        if !self.reads_key() {
            return Vec::new();
        }
        if let Some(name) = &self.hash_cookie {
            if let Some(v) = cookie_value(cookie_lines, name.as_bytes()) {
                return v.to_vec();
            }
        }
        match client {
            Some(IpAddr::V4(a)) => a.octets().to_vec(),
            Some(IpAddr::V6(a)) => a.octets().to_vec(),
            None => Vec::new(),
        }
    }

    /// The peer for origin `i`, with the site's TLS settings.
    pub fn peer(&self, i: usize) -> HttpPeer {
        let u = &self.list[i];
        match &self.tls {
            None => HttpPeer::new(u.backend.addr.clone(), false, String::new()),
            Some(tls) => {
                let sni = tls.sni.clone().unwrap_or_else(|| host_of(&u.addr));
                let mut peer = HttpPeer::new(u.backend.addr.clone(), true, sni);
                peer.options.verify_cert = true;
                peer.options.verify_hostname = true;
                peer.options.ca = tls.ca.clone();
                peer
            }
        }
    }

    fn due(&self) -> bool {
        now_ms() >= self.next_check.load(Relaxed) && !self.checking.load(Relaxed)
    }

    /// Runs the active check if it is due (one at a time per site), then clears the ejection
    /// of every origin found healthy by a check that started after its failed connect.
    async fn check_if_due(&self) {
        let Some(h) = &self.health_check else { return };
        let now = now_ms();
        if now < self.next_check.load(Relaxed) || self.checking.swap(true, Relaxed) {
            return;
        }
        self.next_check
            .store(now + h.interval.as_millis() as u64, Relaxed);
        // Each probe is bounded by the check's connect and read timeouts; this bounds the pass.
        let limit = h.timeout * 4 + Duration::from_secs(1);
        let _ = tokio::time::timeout(limit, self.backends().run_health_check(true)).await;
        for u in &self.list {
            let at = u.ejected_at.load(Relaxed);
            if at != 0 && at < now && self.backends().ready(&u.backend) {
                let _ = u.ejected_at.compare_exchange(at, 0, Relaxed, Relaxed);
            }
        }
        self.refresh_gauges();
        self.checking.store(false, Relaxed);
    }

    fn refresh_gauges(&self) {
        for i in 0..self.list.len() {
            self.list[i].gauge.set(i64::from(self.healthy(i)));
        }
    }
}

/// Builds the selector of a static balancer (no I/O: the discovery is a fixed list).
fn fill(update: impl std::future::Future<Output = pingora::Result<()>>) -> Result<(), String> {
    let mut update = std::pin::pin!(update);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match update.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => r.map_err(|e| e.to_string()),
        std::task::Poll::Pending => Err("static upstream discovery blocked".to_string()),
    }
}

/// pingora's HTTP check: `GET path` with the site's Host, 2xx/3xx is healthy.
fn health_check(
    h: &HealthCheckConfig,
    host: &str,
    tls: Option<&UpstreamTls>,
    first_upstream_host: &str,
) -> Box<HttpHealthCheck> {
    let sni = tls.map(|t| {
        t.sni
            .clone()
            .unwrap_or_else(|| first_upstream_host.to_string())
    });
    let mut hc = HttpHealthCheck::new(host, tls.is_some());
    if let (Some(t), Some(sni)) = (tls, sni) {
        hc.peer_template.sni = sni;
        hc.peer_template.options.ca = t.ca.clone();
    }
    let mut req = RequestHeader::build("GET", h.path.as_bytes(), None).expect("path validated");
    let _ = req.append_header("Host", host);
    let _ = req.append_header("User-Agent", "consentgate-health-check");
    hc.req = req;
    hc.peer_template.options.connection_timeout = Some(h.timeout);
    hc.peer_template.options.total_connection_timeout = Some(h.timeout);
    hc.peer_template.options.read_timeout = Some(h.timeout);
    hc.peer_template.options.write_timeout = Some(h.timeout);
    hc.consecutive_success = h.healthy_threshold;
    hc.consecutive_failure = h.unhealthy_threshold;
    hc.validator = Some(Box::new(|resp| {
        if (200..400).contains(&resp.status.as_u16()) {
            Ok(())
        } else {
            pingora::Error::e_explain(
                pingora::ErrorType::CustomCode("health check status", resp.status.as_u16()),
                "expected 2xx or 3xx",
            )
        }
    }));
    Box::new(hc)
}

fn host_of(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => addr.to_string(),
    }
}

/// The value of cookie `name` in the request's `Cookie` lines (the first one), linear in the
/// header's bytes.
pub fn cookie_value<'a>(lines: impl Iterator<Item = &'a [u8]>, name: &[u8]) -> Option<&'a [u8]> {
    for line in lines {
        for pair in line.split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() == name {
                let v = pair[eq + 1..].trim_ascii();
                let v = v
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(v);
                return Some(v);
            }
        }
    }
    None
}

/// Runs every site's due health check and refreshes the health gauges, reading the current
/// runtime each tick, so checks follow reloads and a replaced runtime is never checked again.
/// A pingora background service: its own thread, never a proxy worker's.
pub struct UpstreamHealthChecks {
    pub runtime: Arc<ArcSwap<Runtime>>,
}

#[async_trait]
impl BackgroundService for UpstreamHealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The (site, upstream) gauge series of the runtime last seen: a reload that removes an
        // origin removes its series (the label set stays that of the configuration).
        let mut series: Vec<(String, String)> = Vec::new();
        // Held until the next reload is seen (a pointer alone could be reused by a new one).
        let mut seen: Option<Arc<Runtime>> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let rt = self.runtime.load_full();
            if !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &rt)) {
                series = forget_removed_series(series, &rt);
                seen = Some(rt.clone());
            }
            for site in &rt.sites {
                let site = site.clone();
                if site.upstreams.health_check.is_some() {
                    if site.upstreams.due() {
                        // A slow site's probes must not delay the others'.
                        tokio::spawn(async move { site.upstreams.check_if_due().await });
                    }
                } else {
                    site.upstreams.refresh_gauges();
                }
            }
            for site in &rt.sites {
                if site.upstreams.health_check.is_some() && !site.upstreams.checking.load(Relaxed) {
                    site.upstreams.refresh_gauges();
                }
            }
        }
    }
}

/// Removes the gauge series of origins `rt` no longer has; returns `rt`'s series.
fn forget_removed_series(old: Vec<(String, String)>, rt: &Runtime) -> Vec<(String, String)> {
    let current: Vec<(String, String)> = rt
        .sites
        .iter()
        .flat_map(|s| {
            s.upstreams
                .list
                .iter()
                .map(|u| (s.name.clone(), u.addr.clone()))
        })
        .collect();
    for (site, up) in old.iter().filter(|o| !current.contains(o)) {
        let _ = crate::metrics::UPSTREAM_HEALTHY.remove_label_values(&[site, up]);
    }
    current
}

#[cfg(test)]
mod tests {
    use super::{cookie_value, Upstreams};

    fn upstreams(list: &str) -> Upstreams {
        let text = format!(
            "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"u\"\nupstreams = [{list}]\n"
        );
        let c = crate::config::parse(&text, "t.toml".as_ref()).unwrap();
        Upstreams::build(c.sites[0].upstream.clone(), "u-test", "u.test").unwrap()
    }

    #[test]
    fn selection_skips_ejected_and_tried_origins_and_fails_open() {
        let u = upstreams("\"127.0.0.1:2\", \"127.0.0.1:3\"");
        u.eject(0);
        assert!(!u.healthy(0) && u.healthy(1));
        for _ in 0..10 {
            assert_eq!(u.select(b"", &[]), Some(1));
        }
        // The healthy one was tried: fail open to the ejected one rather than to nothing.
        assert_eq!(u.select(b"", &[1]), Some(0));
        // Every origin ejected: all of them are tried (fail open).
        u.eject(1);
        let picked: std::collections::HashSet<_> =
            (0..10).filter_map(|_| u.select(b"", &[])).collect();
        assert_eq!(picked.len(), 2);
        assert!(!u.untried_left(&[0, 1]) && u.untried_left(&[0]));
    }

    #[test]
    fn one_origin_is_asked_again_when_pingora_retries() {
        let u = upstreams("\"127.0.0.1:2\"");
        assert_eq!(u.select(b"", &[0]), Some(0));
    }

    #[test]
    fn cookie_value_finds_the_named_cookie() {
        // Cookie header shapes from RFC 6265 §5.4 ("SID=31d4d96e407aad42; lang=en-US").
        let lines = [&b"SID=31d4d96e407aad42; lang=en-US"[..], b"x=1"];
        assert_eq!(
            cookie_value(lines.iter().copied(), b"lang"),
            Some(&b"en-US"[..])
        );
        assert_eq!(
            cookie_value(lines.iter().copied(), b"SID"),
            Some(&b"31d4d96e407aad42"[..])
        );
        assert_eq!(cookie_value(lines.iter().copied(), b"x"), Some(&b"1"[..]));
        assert_eq!(cookie_value(lines.iter().copied(), b"SI"), None);
        let quoted = [&b"a=\"q v\""[..]];
        assert_eq!(
            cookie_value(quoted.iter().copied(), b"a"),
            Some(&b"q v"[..])
        );
    }
}
