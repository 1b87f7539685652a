//! `[[site]]`: one function per part of a site's table, each reporting its own problems.

use super::error::{ConfigErrorKind as K, ListKey};
use super::located::Located;
use super::raw::{RawBlocklist, RawCookies, RawHtml, RawSite};
use super::{is_host_name, ConsentConfig, SiteConfig, Validator};
use crate::consent::Category;
use crate::cookies::classify::{check_pattern, RuleSet};
use crate::cookies::ocd;
use crate::trackers::csp::Csp;
use crate::trackers::respond::BlockResponses;
use crate::trackers::ListSource;
use toml::Spanned;

/// A site's cookie rules, compiled.
struct CookieRules {
    rules: RuleSet,
    vendor_rules: Vec<(RuleSet, u16)>,
    database: RuleSet,
}

impl Validator<'_> {
    /// The site, or `None` when anything in it is wrong (every problem is reported).
    pub(super) fn site(&mut self, s: &RawSite) -> Option<SiteConfig> {
        let before = self.errors.len();
        let name = s.name.get_ref().trim().to_string();
        if name.is_empty() {
            self.error_at(s.name.span(), K::EmptySiteName);
        }
        let hosts = self.site_hosts(&s.hosts);
        let upstream = self.site_upstreams(s.upstream_keys());
        let upstreams = upstream.list.iter().map(|u| u.addr.clone()).collect();
        let cookie_domains = self.cookie_domains(&s.cookie_domains);
        let cookie_paths = self.cookie_paths(&s.cookie_paths);
        let consent_cookie = s.consent.cookie.get_ref().trim().to_string();
        if let Err(reason) = check_pattern(&consent_cookie) {
            self.error_at(
                s.consent.cookie.span(),
                K::BadConsentCookie {
                    name: consent_cookie.clone(),
                    reason,
                },
            );
        }
        let opt_out = s
            .jurisdiction
            .iter()
            .any(|j| j.model == Some(crate::jurisdiction::Model::OptOut));
        let readers = self.consent_readers(&s.consent, &consent_cookie, opt_out);
        let consent_headers = self.consent_headers(&s.consent, &consent_cookie);
        let sources = readers.iter().map(|r| r.format().to_string()).collect();
        let cookies = self.cookie_rules(&s.cookies);
        let blocklists = self.blocklists(&s.blocklist);
        let block_responses = self.block_responses(&s.block_responses);
        let consent_mode = self.consent_mode(&s.consent_mode);
        let script_hashes = consent_mode.as_ref().map(|c| c.hash_sources());
        let csp = self.csp(&s.csp, script_hashes);
        let html_snippets = html_snippets(&s.html);
        let timeouts = self.upstream_timeouts(&s.timeouts);
        let jurisdictions = self.jurisdictions(&s.jurisdiction, &s.unknown_jurisdiction);
        if self.errors.len() > before {
            return None;
        }
        Some(SiteConfig {
            name,
            hosts,
            upstreams,
            mode: s.mode,
            unknown_cookies: s.unknown_cookies,
            gpc: s.gpc,
            cookie_domains,
            cookie_paths,
            consent: ConsentConfig {
                cookie: consent_cookie,
                sources,
            },
            readers,
            consent_headers,
            rules: cookies.rules,
            database: cookies.database,
            vendor_rules: cookies.vendor_rules,
            blocklists,
            block_responses,
            csp,
            consent_mode,
            html_snippets,
            timeouts,
            upstream,
            jurisdictions,
            // Filled by `config::parse`, which has the whole table (config/receipts.rs).
            policy_version: String::new(),
        })
    }

    fn site_hosts(&mut self, list: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
        if list.get_ref().is_empty() {
            self.error_at(list.span(), K::EmptyList(ListKey::Hosts));
        }
        let mut hosts = Vec::new();
        for h in list.get_ref() {
            let host = h.get_ref().trim().to_ascii_lowercase();
            let bare = host.strip_prefix("*.").unwrap_or(&host);
            if host == "*" || is_host_name(bare) {
                hosts.push(host);
            } else {
                self.error_at(h.span(), K::BadHost(h.get_ref().clone()));
            }
        }
        hosts
    }

    fn cookie_domains(&mut self, list: &[Spanned<String>]) -> Vec<String> {
        let mut domains = Vec::new();
        for d in list {
            let dom = d.get_ref().trim();
            let ok = !dom.is_empty()
                && dom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
            if ok {
                domains.push(dom.to_string());
            } else {
                self.error_at(d.span(), K::BadCookieDomain(d.get_ref().clone()));
            }
        }
        domains
    }

    /// The paths cookies are expired on; `/` when none is written.
    fn cookie_paths(&mut self, list: &[Spanned<String>]) -> Vec<String> {
        let mut paths = Vec::new();
        for p in list {
            if !p.get_ref().starts_with('/') || p.get_ref().contains([';', ' ']) {
                self.error_at(p.span(), K::BadCookiePath(p.get_ref().clone()));
            } else {
                paths.push(p.get_ref().clone());
            }
        }
        if paths.is_empty() {
            paths.push("/".to_string());
        }
        paths
    }

    /// Operator rules, TCF vendor rules and the Open Cookie Database.
    fn cookie_rules(&mut self, c: &RawCookies) -> CookieRules {
        let mut rules = RuleSet::default();
        for (category, list) in [
            (Category::Necessary, &c.necessary),
            (Category::Preferences, &c.preferences),
            (Category::Analytics, &c.analytics),
            (Category::Marketing, &c.marketing),
        ] {
            for pat in list {
                if let Err(reason) = rules.add(pat.get_ref().trim(), category) {
                    let pattern = pat.get_ref().clone();
                    let kind = K::BadPattern {
                        pattern,
                        category,
                        reason,
                    };
                    self.error_at(pat.span(), kind);
                }
            }
        }
        CookieRules {
            rules,
            vendor_rules: self.vendor_rules(c),
            database: self.database(c),
        }
    }

    /// Cookie-name patterns that also need a TCF vendor's consent.
    fn vendor_rules(&mut self, c: &RawCookies) -> Vec<(RuleSet, u16)> {
        let mut vendor_rules = Vec::new();
        for (pat, vendor) in &c.vendors {
            let id = *vendor.get_ref();
            if !(1..=65535).contains(&id) {
                let pattern = pat.clone();
                self.error_at(vendor.span(), K::VendorOutOfRange { pattern, id });
                continue;
            }
            let mut rs = RuleSet::default();
            if let Err(reason) = rs.add(pat, Category::Necessary) {
                let pattern = pat.clone();
                self.error_at(vendor.span(), K::BadVendorPattern { pattern, reason });
                continue;
            }
            vendor_rules.push((rs, id as u16));
        }
        vendor_rules
    }

    /// The Open Cookie Database rules, if a CSV is configured.
    fn database(&mut self, c: &RawCookies) -> RuleSet {
        let mut database = RuleSet::default();
        let Some(p) = &c.open_cookie_database else {
            return database;
        };
        match ocd::load(&self.resolve(p.get_ref())) {
            Ok(rows) => {
                for r in rows {
                    // Rows the loader accepted are valid names; a duplicate keeps the first.
                    let _ = database.add(&r.pattern, r.category);
                }
            }
            Err(e) => self.error_at(p.span(), K::Database(e.to_string())),
        }
        database
    }

    /// `[[site.blocklist]]`, read and checked (a file that cannot be read or holds no rule is
    /// reported with its line); the runtime compiles them.
    fn blocklists(&mut self, raw: &[RawBlocklist]) -> Vec<ListSource> {
        let mut lists = Vec::new();
        for b in raw {
            let Some(category) = Category::parse(b.category.get_ref()) else {
                let kind = K::BlocklistCategory(b.category.get_ref().clone());
                self.error_at(b.category.span(), kind);
                continue;
            };
            if category == Category::Necessary {
                self.error_at(b.category.span(), K::NecessaryBlocklist);
                continue;
            }
            let path = self.resolve(b.path.get_ref());
            match ListSource::read(category, &path, b.path.get_ref()) {
                Ok(l) => lists.push(l),
                Err(reason) => {
                    let path = path.display().to_string();
                    self.error_at(b.path.span(), K::Blocklist { path, reason });
                }
            }
        }
        lists
    }

    fn block_responses(&mut self, raw: &Option<Located<BlockResponses>>) -> BlockResponses {
        let Some(r) = raw else {
            return BlockResponses::default();
        };
        if let Err(e) = r.get_ref().validate() {
            self.error_at(r.span(), K::BlockResponses(e));
        }
        r.get_ref().clone()
    }

    /// `script_hashes`: the consent-mode defaults script's hash source per grant set, added
    /// to `script-src` so the inserted script runs under the policy.
    fn csp(
        &mut self,
        raw: &Option<Located<crate::trackers::csp::CspConfig>>,
        script_hashes: Option<&[String; 8]>,
    ) -> Option<Csp> {
        let c = raw.as_ref()?;
        match Csp::build_with_script_hashes(c.get_ref(), script_hashes) {
            Ok(csp) => Some(csp),
            Err(e) => {
                self.error_at(c.span(), K::Csp(e));
                None
            }
        }
    }
}

impl Validator<'_> {
    /// `[site.consent_mode]`, compiled when enabled.
    fn consent_mode(
        &mut self,
        raw: &Option<Located<crate::consent_mode::ConsentModeConfig>>,
    ) -> Option<crate::consent_mode::ConsentMode> {
        let c = raw.as_ref()?;
        if let Err(e) = c.get_ref().validate() {
            self.error_at(c.span(), K::ConsentMode(e));
            return None;
        }
        crate::consent_mode::ConsentMode::build(c.get_ref())
    }
}

/// The inline-script snippets for HTML neutralization; `None` = neutralization off.
fn html_snippets(raw: &Option<Located<RawHtml>>) -> Option<Vec<(Category, String)>> {
    let Some(h) = raw else {
        return Some(crate::html::default_snippets());
    };
    let h = h.get_ref();
    if !h.enabled {
        return None;
    }
    let mut list = if h.default_snippets {
        crate::html::default_snippets()
    } else {
        Vec::new()
    };
    for (cat, extra) in [
        (Category::Preferences, &h.snippets.preferences),
        (Category::Analytics, &h.snippets.analytics),
        (Category::Marketing, &h.snippets.marketing),
    ] {
        list.extend(
            extra
                .iter()
                .filter(|x| !x.is_empty())
                .map(|x| (cat, x.clone())),
        );
    }
    Some(list)
}
