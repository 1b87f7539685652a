//! consentgate: an edge reverse proxy on pingora that enforces cookie consent.
//!
//! Layout (one module per concern; decisions are pure and separate from the pingora glue):
//! - [`consent`]: consent formats and GPC -> [`consent::ConsentState`]
//! - [`geo`]: where the visitor is (CDN headers, a MaxMind database); [`jurisdiction`]: the
//!   site's rule and consent model (opt-in, opt-out, off) there
//! - [`cookies`]: cookie classification, request `Cookie` and response `Set-Cookie` gating
//! - [`trackers`]: blocklists, block responses, CSP; [`html`]: neutralizing tracker tags
//! - [`consent_mode`]: Google Consent Mode v2 defaults script and beacon audit
//! - [`config`]: the TOML file -> validated [`config::Config`]
//! - [`policy`]: one site's compiled [`policy::SitePolicy`], everything the decisions read
//!   (no pingora type)
//! - [`decide`]: the pure decisions for one request and its response
//!   ([`decide::RequestPlan`], [`decide::ResponsePlan`]), shared by the proxy and `explain`
//! - [`runtime`]: the served [`runtime::Runtime`] (per site: policy + balancer + metrics) and
//!   Host routing, swapped whole on reload
//! - [`proxy`]: the pingora `ProxyHttp` phases, which apply the plans and count
//! - [`connections`]: what one client connection may cost (timeouts, header limits, a cap on
//!   connections) and the RFC 9112 request checks
//! - [`tls`]: the certificates of the TLS listeners and the SNI resolver
//! - [`metrics`]: every metric name; [`labels`]: their fixed label values as enums;
//!   [`admin`]: the admin listener; [`reload`]: configuration reloads, built off the async
//!   workers and swapped in whole
//! - [`inventory`]: the live cookie inventory (every cookie name seen per site)
//! - [`explain`]: the dry-run decision for one request; [`demo`]: the built-in example origin
//! - [`server`]: the pingora server, listeners and signals
//! - [`alloc_count`]: a counting allocator for benchmarks (feature `alloc-count`)

pub mod admin;
pub mod alloc_count;
pub mod config;
pub mod connections;
pub mod consent;
pub mod consent_mode;
pub mod cookies;
pub mod decide;
pub mod demo;
pub mod explain;
pub mod geo;
pub mod html;
pub mod inventory;
pub mod jurisdiction;
pub mod labels;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod receipts;
pub mod reload;
pub mod report;
pub mod runtime;
pub mod server;
pub mod tls;
pub mod trackers;
pub mod upstreams;
