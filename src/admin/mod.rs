//! The admin listener (keep it on loopback): `GET /metrics` (Prometheus text), `GET /healthz`,
//! `GET /status` (JSON), `POST /reload` (re-read the configuration file), `GET /` (the live
//! dashboard, [`dashboard`], with `/dashboard.js`, `/dashboard.css`, `/dashboard.json`) and
//! `GET /inventory` (the live cookie inventory, JSON). `HEAD` works wherever `GET` does. Who may
//! ask is decided in [`access`] before anything else.

pub mod access;
pub mod dashboard;

use crate::reload::{reload, ReloadError};
use crate::runtime::Runtime;
use access::AdminRequest;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

pub struct AdminApp {
    pub runtime: Arc<ArcSwap<Runtime>>,
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .expect("static headers are valid")
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        let header = |name: http::HeaderName| {
            req.headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        };
        let ask = AdminRequest {
            // An absolute-form target (`POST http://host/reload`) names the host too.
            host: header(http::header::HOST).or_else(|| req.uri.authority().map(|a| a.as_str())),
            origin: header(http::header::ORIGIN),
            sec_fetch_site: header(http::HeaderName::from_static("sec-fetch-site")),
            authorization: header(http::header::AUTHORIZATION),
            reload: method == http::Method::POST && path == "/reload",
        };
        if let Err(refused) = access::check(&ask, &self.runtime.load().proxy.admin_access) {
            return refusal(refused);
        }
        // HEAD is answered as GET; pingora sends no body for it (RFC 9110 9.3.2).
        let read = method == http::Method::GET || method == http::Method::HEAD;
        match (read, method.as_str(), path.as_str()) {
            (true, _, "/metrics") => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                crate::metrics::render(),
            ),
            (true, _, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n"),
            (true, _, "/status") => {
                let body = status_json(&self.runtime.load());
                reply(
                    StatusCode::OK,
                    "application/json",
                    serde_json::to_vec_pretty(&body).unwrap_or_default(),
                )
            }
            (true, _, "/") => page(StatusCode::OK, "text/html; charset=utf-8", dashboard::PAGE),
            (true, _, "/dashboard.js") => page(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                dashboard::SCRIPT,
            ),
            (true, _, "/dashboard.css") => {
                page(StatusCode::OK, "text/css; charset=utf-8", dashboard::STYLE)
            }
            (true, _, "/dashboard.json") => {
                let body = dashboard::dashboard_json(&self.runtime.load());
                reply(
                    StatusCode::OK,
                    "application/json",
                    serde_json::to_vec(&body).unwrap_or_default(),
                )
            }
            // Browsers ask for it on every page: answered, so a dashboard visit logs no 404.
            (true, _, "/favicon.ico") => reply(StatusCode::NO_CONTENT, "image/x-icon", ""),
            (true, _, "/inventory") => reply(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec_pretty(&dashboard::inventory_json()).unwrap_or_default(),
            ),
            (_, "POST", "/reload") => reload_reply(reload(&self.runtime).await),
            (_, _, "/metrics" | "/healthz" | "/status" | "/reload" | "/" | "/inventory")
            | (_, _, "/dashboard.js" | "/dashboard.css" | "/dashboard.json") => wrong_method(&path),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "consentgate admin: GET / /metrics /healthz /status /inventory, POST /reload\n",
            ),
        }
    }
}

/// A dashboard file, under the dashboard's CSP (nothing but this listener's own script, style
/// and JSON), not sniffed, not framed.
fn page(status: StatusCode, content_type: &str, body: &'static str) -> Response<Vec<u8>> {
    let mut r = reply(status, content_type, body);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(dashboard::CSP),
    );
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        http::header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    r
}

/// The answer to a request [`access::check`] refused, counted by reason.
fn refusal(refused: access::Refusal) -> Response<Vec<u8>> {
    crate::metrics::ADMIN_REFUSED
        .with_label_values(&[refused.reason()])
        .inc();
    let mut r = reply(refused.status(), "text/plain", refused.message());
    if refused == access::Refusal::Token {
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"consentgate admin\""),
        );
    }
    r
}

/// The answer to `POST /reload`.
fn reload_reply(outcome: Result<String, ReloadError>) -> Response<Vec<u8>> {
    match outcome {
        Ok(msg) => reply(StatusCode::OK, "text/plain", format!("{msg}\n")),
        Err(ReloadError::Refused(e)) => reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            "text/plain",
            format!("reload refused, the previous configuration stays in force:\n{e}\n"),
        ),
        Err(busy @ ReloadError::Busy) => {
            let mut r = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{busy}; nothing changed, try again later\n"),
            );
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("5"),
            );
            r
        }
    }
}

/// 405 for a known path asked with a method it does not take.
fn wrong_method(path: &str) -> Response<Vec<u8>> {
    let allow = if path == "/reload" {
        "POST"
    } else {
        "GET, HEAD"
    };
    let mut r = reply(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/plain",
        "use GET or HEAD for / /metrics /healthz /status /inventory and POST for /reload\n",
    );
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    r
}

/// Sums every sample of a counter family per `site` label value.
fn sums_by_site(families: &[prometheus::proto::MetricFamily], name: &str) -> HashMap<String, u64> {
    sums_by_site_where(families, name, |_| true)
}

fn sums_by_site_where(
    families: &[prometheus::proto::MetricFamily],
    name: &str,
    keep: impl Fn(&prometheus::proto::Metric) -> bool,
) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for f in families.iter().filter(|f| f.get_name() == name) {
        for m in f.get_metric().iter().filter(|m| keep(m)) {
            let site = m
                .get_label()
                .iter()
                .find(|l| l.get_name() == "site")
                .map(|l| l.get_value().to_string())
                .unwrap_or_default();
            *out.entry(site).or_insert(0) += m.get_counter().get_value() as u64;
        }
    }
    out
}

fn label_is(m: &prometheus::proto::Metric, name: &str, value: &str) -> bool {
    m.get_label()
        .iter()
        .any(|l| l.get_name() == name && l.get_value() == value)
}

pub fn status_json(rt: &Runtime) -> serde_json::Value {
    use crate::labels::{SetCookieAction, StripAction};
    use crate::metrics::name;
    let families = prometheus::gather();
    let requests = sums_by_site(&families, name::REQUESTS);
    let set_cookies = |action: SetCookieAction| {
        sums_by_site_where(&families, name::SET_COOKIES, |m| {
            label_is(m, "action", action.as_str())
        })
    };
    let kept = set_cookies(SetCookieAction::Kept);
    let stripped = set_cookies(SetCookieAction::Stripped);
    let req_stripped = sums_by_site_where(&families, name::REQUEST_COOKIES_STRIPPED, |m| {
        label_is(m, "action", StripAction::Stripped.as_str())
    });
    let expired = sums_by_site(&families, name::COOKIES_EXPIRED);
    let consent_errors = sums_by_site(&families, name::CONSENT_ERRORS);
    let upstream_errors = sums_by_site(&families, name::UPSTREAM_ERRORS);
    let get = |m: &HashMap<String, u64>, s: &str| m.get(s).copied().unwrap_or(0);
    let sites: Vec<_> = rt
        .sites
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "hosts": s.hosts,
                "upstreams": upstreams_json(&s.upstreams),
                "mode": s.policy.mode.as_str(),
                "unknown_cookies": s.policy.unknown_cookies,
                "gpc": s.policy.gpc.as_str(),
                "consent_sources": s.policy.readers.iter().map(|r| r.format()).collect::<Vec<_>>(),
                "totals": {
                    "requests": get(&requests, &s.name),
                    "set_cookie_kept": get(&kept, &s.name),
                    "set_cookie_stripped": get(&stripped, &s.name),
                    "request_cookies_stripped": get(&req_stripped, &s.name),
                    "cookies_expired": get(&expired, &s.name),
                    "consent_errors": get(&consent_errors, &s.name),
                    "upstream_errors": get(&upstream_errors, &s.name),
                }
            })
        })
        .collect();
    let total = |m: &HashMap<String, u64>| m.values().sum::<u64>();
    let loaded = rt
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config_path": rt.config_path.display().to_string(),
        "config_loaded_at": rfc3339(loaded),
        "config_loaded_at_unix": loaded,
        "listen": rt.proxy.listen,
        "sites": sites,
        "totals": {
            "requests": total(&requests),
            "set_cookie_kept": total(&kept),
            "set_cookie_stripped": total(&stripped),
            "request_cookies_stripped": total(&req_stripped),
            "cookies_expired": total(&expired),
            "consent_errors": total(&consent_errors),
            "upstream_errors": total(&upstream_errors),
        }
    })
}

/// UTC `YYYY-MM-DDTHH:MM:SSZ` from Unix seconds.
fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Each origin of a site for `/status`: address as configured, weight, whether it takes
/// requests now.
fn upstreams_json(u: &crate::upstreams::Upstreams) -> Vec<serde_json::Value> {
    u.list
        .iter()
        .enumerate()
        .map(|(i, o)| json!({"address": o.addr, "weight": o.weight, "healthy": u.healthy(i)}))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        // Expected values from GNU `date -u -d @SECS +%Y-%m-%dT%H:%M:%SZ`.
        assert_eq!(super::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
