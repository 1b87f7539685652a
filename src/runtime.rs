//! The configuration compiled for serving: sites with their classifiers, consent readers, load
//! balancers and metric handles, and the Host -> site routing table. Built once per load and
//! swapped atomically on reload (arc-swap), so a request sees one consistent configuration.

use crate::config::{Config, Mode, ProxyConfig, RequestLimits, SiteConfig};
use crate::consent::gpc::GpcPolicy;
use crate::consent::{Category, ConsentReader};
use crate::cookies::classify::{Classifier, RuleSet};
use crate::cookies::expiry_cache::{Admission, ExpiryCache};
use crate::cookies::gate::{Gate, UnknownPolicy};
use crate::metrics::SiteMetrics;
use crate::trackers::respond::BlockResponses;
use crate::trackers::Blocklists;
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

pub struct Site {
    pub name: String,
    pub hosts: Vec<String>,
    pub upstreams: Vec<String>,
    pub mode: Mode,
    pub unknown_cookies: UnknownPolicy,
    pub gpc: GpcPolicy,
    pub cookie_domains: Vec<String>,
    pub cookie_paths: Vec<String>,
    pub classifier: Classifier,
    pub vendor_rules: Vec<(RuleSet, u16)>,
    pub readers: Vec<Box<dyn ConsentReader>>,
    pub blocklists: Arc<Blocklists>,
    pub block_responses: BlockResponses,
    /// HTML neutralization rules; `None` when `[site.html] enabled = false`.
    pub page_rules: Option<Arc<crate::html::PageRules>>,
    pub csp: Option<crate::trackers::csp::Csp>,
    pub balancer: LoadBalancer<RoundRobin>,
    pub metrics: SiteMetrics,
    /// `[proxy]` limits on what one request may cost (the same for every site).
    pub limits: RequestLimits,
    /// Expiry `Set-Cookie` values per cookie name, bounded in bytes (see the module).
    expiry_cache: ExpiryCache,
    /// Origin connect/read/write/idle timeouts.
    pub timeouts: crate::config::connections::UpstreamTimeouts,
}

impl Site {
    /// The header values that delete cookie `name` in the browser (see
    /// [`crate::cookies::gate::expiry_lines`]).
    pub fn expiry_values(&self, name: &str) -> Arc<[http::HeaderValue]> {
        let admission = || Admission::of(name, self.classifier.is_listed(name));
        self.expiry_cache.get_or_build(name, admission, || {
            crate::cookies::gate::expiry_lines(name, &self.cookie_paths, &self.cookie_domains)
                .into_iter()
                .filter_map(|line| {
                    http::HeaderValue::from_maybe_shared(bytes::Bytes::from(line)).ok()
                })
                .collect()
        })
    }

    /// How many expiry lines [`Site::expiry_values`] gives for `name`, without building them.
    pub fn expiry_line_count(&self, name: &str) -> usize {
        crate::cookies::gate::expiry_line_count(
            name,
            self.cookie_paths.len(),
            self.cookie_domains.len(),
        )
    }

    /// Bytes held by the expiry-line cache.
    pub fn expiry_cache_bytes(&self) -> usize {
        self.expiry_cache.bytes()
    }

    pub fn gate(&self) -> Gate<'_> {
        Gate {
            classifier: &self.classifier,
            unknown: self.unknown_cookies,
            vendor_rules: &self.vendor_rules,
        }
    }

    fn build(cfg: SiteConfig, limits: RequestLimits) -> Result<Site, String> {
        let readers = cfg.readers;
        // The consent cookies themselves are strictly necessary: they record the refusal too.
        let mut consent_cookies = RuleSet::default();
        for r in &readers {
            for p in r.cookie_patterns() {
                consent_cookies
                    .add(&p, Category::Necessary)
                    .map_err(|e| format!("consent cookie `{p}`: {e}"))?;
            }
        }
        let blocklists = Arc::new(cfg.blocklists);
        let page_rules = match cfg.html_snippets {
            None => None,
            Some(list) => Some(Arc::new(crate::html::PageRules {
                blocklists: blocklists.clone(),
                snippets: crate::html::Snippets::new(list)?,
            })),
        };
        let balancer = LoadBalancer::try_from_iter(cfg.upstreams.iter().map(String::as_str))
            .map_err(|e| format!("site `{}` upstreams: {e}", cfg.name))?;
        let metrics = SiteMetrics::new(&cfg.name);
        Ok(Site {
            expiry_cache: ExpiryCache::new(metrics.expiry_cache_bytes.clone()),
            limits,
            metrics,
            classifier: Classifier::new(consent_cookies, cfg.rules, cfg.database),
            name: cfg.name,
            hosts: cfg.hosts,
            upstreams: cfg.upstreams,
            mode: cfg.mode,
            unknown_cookies: cfg.unknown_cookies,
            gpc: cfg.gpc,
            cookie_domains: cfg.cookie_domains,
            cookie_paths: cfg.cookie_paths,
            vendor_rules: cfg.vendor_rules,
            readers,
            page_rules,
            blocklists,
            block_responses: cfg.block_responses,
            csp: cfg.csp,
            balancer,
            timeouts: cfg.timeouts,
        })
    }
}

pub struct Runtime {
    pub config_path: PathBuf,
    pub proxy: ProxyConfig,
    pub sites: Vec<Arc<Site>>,
    pub loaded_at: SystemTime,
    exact_hosts: HashMap<String, usize>,
    /// `*.example.com` patterns as (".example.com", site), longest first.
    wildcard_hosts: Vec<(String, usize)>,
    default_site: Option<usize>,
}

impl Runtime {
    pub fn build(config: Config) -> Result<Runtime, String> {
        let mut sites = Vec::new();
        let mut exact_hosts = HashMap::new();
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
