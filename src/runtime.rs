//! The configuration compiled for serving: sites (each a [`SitePolicy`] with its load balancer,
//! timeouts and metric handles) and the Host -> site routing table. Built once per load and
//! swapped atomically on reload (arc-swap), so a request sees one consistent configuration.

use crate::config::{Config, ProxyConfig, RequestLimits, SiteConfig};
use crate::metrics::SiteMetrics;
use crate::policy::SitePolicy;
use crate::upstreams::Upstreams;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// One site as the proxy serves it: its policy (every decision's input) plus what only the
/// proxy needs, the origins and their balancer, the timeouts and the metric handles.
pub struct Site {
    pub name: String,
    pub hosts: Vec<String>,
    pub policy: SitePolicy,
    /// The origins: balancer, health state, TLS (src/upstreams.rs).
    pub upstreams: Upstreams,
    pub metrics: SiteMetrics,
    /// The site's live cookie inventory (src/inventory.rs; kept across reloads).
    pub inventory: Arc<crate::inventory::SiteInventory>,
    /// This configuration's shortcut to the inventory entries of listed names.
    pub inventory_slots: crate::inventory::Slots,
    /// Origin connect/read/write/idle timeouts.
    pub timeouts: crate::config::connections::UpstreamTimeouts,
    /// SHA-256 of the site's configuration, the files it loaded and the binary's rules
    /// (consent receipts' `policy_version`, [`crate::config::receipts::policy_version`]).
    pub policy_version: String,
}

impl Site {
    fn build(mut cfg: SiteConfig, limits: RequestLimits) -> Result<Site, String> {
        // Health checks send the site's own name as Host (its first non-wildcard host).
        let check_host = cfg
            .hosts
            .iter()
            .find(|h| !h.contains('*'))
            .cloned()
            .unwrap_or_else(|| cfg.upstream.list[0].host.clone());
        let upstreams = Upstreams::build(cfg.upstream.clone(), &cfg.name, &check_host)
            .map_err(|e| format!("site `{}` upstreams: {e}", cfg.name))?;
        let metrics = SiteMetrics::new(&cfg.name).with_jurisdictions(&cfg.name, &cfg.jurisdictions);
        let name = std::mem::take(&mut cfg.name);
        let hosts = std::mem::take(&mut cfg.hosts);
        let timeouts = cfg.timeouts;
        let policy_version = std::mem::take(&mut cfg.policy_version);
        let policy = SitePolicy::build(cfg, limits, metrics.expiry_cache_bytes.clone())?;
        Ok(Site {
            inventory: crate::inventory::INVENTORY.site(&name),
            inventory_slots: crate::inventory::Slots::new(policy.classifier.slot_count()),
            name,
            hosts,
            policy,
            upstreams,
            metrics,
            timeouts,
            policy_version,
        })
    }
}

pub struct Runtime {
    pub config_path: PathBuf,
    pub proxy: ProxyConfig,
    pub sites: Vec<Arc<Site>>,
    pub loaded_at: SystemTime,
    /// Looked up on every request. foldhash, not SipHash: the keys are the operator's host
    /// names (a client's Host header is only looked up, it never adds a key to collide with).
    exact_hosts: HashMap<String, usize, foldhash::fast::RandomState>,
    /// `*.example.com` patterns as (".example.com", site), longest first.
    wildcard_hosts: Vec<(String, usize)>,
    default_site: Option<usize>,
}

impl Runtime {
    pub fn build(config: Config) -> Result<Runtime, String> {
        let mut sites = Vec::new();
        let mut exact_hosts = HashMap::default();
        let mut wildcard_hosts = Vec::new();
        let mut default_site = None;
        for (i, s) in config.sites.into_iter().enumerate() {
            for h in &s.hosts {
                if h == "*" {
                    default_site.get_or_insert(i);
                } else if let Some(suffix) = h.strip_prefix('*') {
                    wildcard_hosts.push((suffix.to_string(), i));
                } else {
                    exact_hosts.entry(h.clone()).or_insert(i);
                }
            }
            sites.push(Arc::new(Site::build(s, config.proxy.request_limits)?));
        }
        wildcard_hosts.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Ok(Runtime {
            config_path: config.path,
            proxy: config.proxy,
            sites,
            loaded_at: SystemTime::now(),
            exact_hosts,
            wildcard_hosts,
            default_site,
        })
    }

    /// Loads, validates and compiles a configuration file.
    pub fn load(path: &std::path::Path) -> Result<Runtime, String> {
        let config = crate::config::load(path).map_err(|e| e.to_string())?;
        Runtime::build(config)
    }

    /// The site for a Host header value (port and case ignored); the `*` site otherwise.
    pub fn site_for_host(&self, host: Option<&[u8]>) -> Option<&Arc<Site>> {
        let idx = host
            .and_then(|h| std::str::from_utf8(h).ok())
            .map(strip_port)
            .and_then(|h| {
                let lower;
                let h = if h.bytes().any(|b| b.is_ascii_uppercase()) {
                    lower = h.to_ascii_lowercase();
                    lower.as_str()
                } else {
                    h
                };
                let h = h.strip_suffix('.').unwrap_or(h);
                self.exact_hosts.get(h).copied().or_else(|| {
                    self.wildcard_hosts
                        .iter()
                        .find(|(suffix, _)| h.ends_with(suffix.as_str()) && h.len() > suffix.len())
                        .map(|(_, i)| *i)
                })
            })
            .or(self.default_site)?;
        self.sites.get(idx)
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_routing() {
        let text = r#"
[proxy]
listen = ["127.0.0.1:1"]
[[site]]
name = "a"
hosts = ["a.example"]
upstreams = ["127.0.0.1:2"]
[[site]]
name = "wild"
hosts = ["*.b.example"]
upstreams = ["127.0.0.1:2"]
[[site]]
name = "default"
hosts = ["*"]
upstreams = ["127.0.0.1:2"]
"#;
        let rt = Runtime::build(crate::config::parse(text, "t".as_ref()).unwrap()).unwrap();
        let name = |h: &str| rt.site_for_host(Some(h.as_bytes())).unwrap().name.clone();
        assert_eq!(name("A.Example:8080"), "a");
        assert_eq!(name("x.b.example"), "wild");
        assert_eq!(name("b.example"), "default");
        assert_eq!(name("other"), "default");
        assert_eq!(rt.site_for_host(None).unwrap().name, "default");
    }
}
