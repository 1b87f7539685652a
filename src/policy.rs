//! One site's policy: everything the decisions in [`crate::decide`] read (classifier, consent
//! readers, blocklists, CSP, page rules, mode, cookie paths and domains, request limits), and
//! nothing of the proxy's (no pingora type, no load balancer). Benchmarks, fuzz targets and
//! `explain` build one from a validated [`SiteConfig`] without a runtime; the proxy's
//! [`crate::runtime::Site`] holds one beside its balancer and metric handles.

use crate::config::{Mode, RequestLimits, SiteConfig};
use crate::consent::gpc::GpcPolicy;
use crate::consent::{Category, ConsentReader};
use crate::cookies::classify::{Classifier, RuleSet};
use crate::cookies::expiry_cache::{Admission, ExpiryCache};
use crate::cookies::gate::{Gate, UnknownPolicy};
use crate::html::PageRules;
use crate::trackers::csp::Csp;
use crate::trackers::respond::BlockResponses;
use crate::trackers::{Blocklists, ListSource};
use http::HeaderValue;
use std::sync::Arc;

pub struct SitePolicy {
    pub mode: Mode,
    pub unknown_cookies: UnknownPolicy,
    pub gpc: GpcPolicy,
    /// Domain attributes the site sets cookies with (expiry lines are sent for each).
    pub cookie_domains: Vec<String>,
    /// Paths the site sets cookies on.
    pub cookie_paths: Vec<String>,
    pub classifier: Classifier,
    /// Cookie-name rules that also need an IAB TCF vendor's consent.
    pub vendor_rules: Vec<(RuleSet, u16)>,
    pub readers: Vec<Box<dyn ConsentReader>>,
    pub blocklists: Arc<Blocklists>,
    pub block_responses: BlockResponses,
    /// HTML neutralization rules; `None` when `[site.html] enabled = false`.
    pub page_rules: Option<Arc<PageRules>>,
    pub csp: Option<Csp>,
    /// Google Consent Mode v2 (`[site.consent_mode] enabled = true`).
    pub consent_mode: Option<crate::consent_mode::ConsentMode>,
    /// The rules a page is rewritten with: `page_rules`, or none at all (no snippet, no list)
    /// when only the consent-mode script is inserted (`[site.html] enabled = false`).
    pub rewrite_rules: Option<Arc<PageRules>>,
    /// `[proxy]` limits on what one request may cost (the same for every site).
    pub limits: RequestLimits,
    /// `[[site.jurisdiction]]`: the consent model per visitor location (empty: opt-in).
    pub jurisdictions: crate::jurisdiction::Jurisdictions,
    /// Expiry `Set-Cookie` values per cookie name, bounded in bytes (see the module).
    expiry_cache: ExpiryCache,
}

/// Why a validated site did not compile. Validation rejects both first (consent cookie names
/// are checked with the format, snippets are plain strings), so these mean a bug, not a bad file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// A consent reader's cookie pattern is not a valid rule.
    ConsentCookie { pattern: String, reason: String },
    /// The HTML snippet matcher could not be built.
    Snippets(String),
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::ConsentCookie { pattern, reason } => {
                write!(f, "consent cookie `{pattern}`: {reason}")
            }
            PolicyError::Snippets(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for PolicyError {}

/// The runtime reports load errors as text (`reload`, `run`, `/reload`).
impl From<PolicyError> for String {
    fn from(e: PolicyError) -> String {
        e.to_string()
    }
}

impl SitePolicy {
    /// Compiles a site's validated configuration. Its name, hosts, upstreams and timeouts are
    /// the proxy's business and are not read here. `expiry_cache_bytes` is the gauge the
    /// expiry-line cache reports its size to (a plain `IntGauge::new` where nothing exports it).
    pub fn build(
        cfg: SiteConfig,
        limits: RequestLimits,
        expiry_cache_bytes: prometheus::IntGauge,
    ) -> Result<SitePolicy, PolicyError> {
        // The consent cookies themselves are strictly necessary: they record the refusal too.
        let mut consent_cookies = RuleSet::default();
        for r in &cfg.readers {
            for p in r.cookie_patterns() {
                consent_cookies
                    .add(&p, Category::Necessary)
                    .map_err(|reason| PolicyError::ConsentCookie {
                        pattern: p.clone(),
                        reason: reason.to_string(),
                    })?;
            }
        }
        // Building the adblock engines is the costly part of a load (reloads run it off the
        // proxy's workers, src/reload.rs).
        let blocklists = Arc::new(Blocklists::new(
            cfg.blocklists
                .into_iter()
                .map(ListSource::compile)
                .collect(),
        ));
        let page_rules = match cfg.html_snippets {
            None => None,
            Some(list) => Some(Arc::new(PageRules {
                blocklists: blocklists.clone(),
                snippets: crate::html::Snippets::new(list).map_err(PolicyError::Snippets)?,
            })),
        };
        let rewrite_rules = match (&page_rules, &cfg.consent_mode) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(_)) => Some(Arc::new(PageRules {
                blocklists: Arc::new(Blocklists::default()),
                snippets: crate::html::Snippets::new(Vec::new()).map_err(PolicyError::Snippets)?,
            })),
            (None, None) => None,
        };
        Ok(SitePolicy {
            mode: cfg.mode,
            unknown_cookies: cfg.unknown_cookies,
            gpc: cfg.gpc,
            cookie_domains: cfg.cookie_domains,
            cookie_paths: cfg.cookie_paths,
            classifier: Classifier::new(consent_cookies, cfg.rules, cfg.database),
            vendor_rules: cfg.vendor_rules,
            readers: cfg.readers,
            blocklists,
            block_responses: cfg.block_responses,
            page_rules,
            csp: cfg.csp,
            consent_mode: cfg.consent_mode,
            rewrite_rules,
            limits,
            jurisdictions: cfg.jurisdictions,
            expiry_cache: ExpiryCache::new(expiry_cache_bytes),
        })
    }

    /// The per-cookie decision inputs.
    pub fn gate(&self) -> Gate<'_> {
        Gate {
            classifier: &self.classifier,
            unknown: self.unknown_cookies,
            vendor_rules: &self.vendor_rules,
        }
    }

    /// The header values that delete cookie `name` in the browser (see
    /// [`crate::cookies::gate::expiry_lines`]), from the bounded cache when it holds them.
    pub fn expiry_values(&self, name: &str) -> Arc<[HeaderValue]> {
        let admission = || Admission::of(name, self.classifier.is_listed(name));
        self.expiry_cache.get_or_build(name, admission, || {
            crate::cookies::gate::expiry_lines(name, &self.cookie_paths, &self.cookie_domains)
                .into_iter()
                .filter_map(|line| HeaderValue::from_maybe_shared(bytes::Bytes::from(line)).ok())
                .collect()
        })
    }

    /// How many expiry lines [`SitePolicy::expiry_values`] gives for `name`, without building
    /// them.
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
}
