//! The configuration file: TOML -> validated [`Config`].
//!
//! Every problem is reported as `FILE:LINE: what is wrong; how to fix it`, and validation goes on
//! after the first problem so `consentgate check` lists them all in one run: unknown keys and
//! wrong types (each blanked out and the file read again, see `recover`), then every semantic
//! problem. Only a TOML syntax error, after which nothing can be read, comes alone.

pub mod connections;
mod raw;
mod recover;
mod request_path;

use crate::consent::gpc::GpcPolicy;
use crate::consent::{Category, ConsentReader};
use crate::cookies::classify::{check_pattern, RuleSet};
use crate::cookies::gate::UnknownPolicy;
use crate::cookies::ocd;
use crate::trackers::csp::Csp;
use crate::trackers::respond::BlockResponses;
use crate::trackers::{Blocklist, Blocklists};
use raw::{RawConfig, RawSite};
pub use request_path::{AdminAccess, RequestLimits, ADMIN_TOKEN_ENV};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// What the proxy does with its decisions for a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Strip and block what has no consent.
    #[default]
    Enforce,
    /// Decide, log and count, but change nothing.
    ReportOnly,
    /// A plain reverse proxy: no decisions at all.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::ReportOnly => "report-only",
            Mode::Off => "off",
        }
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub proxy: ProxyConfig,
    pub sites: Vec<SiteConfig>,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: Vec<String>,
    pub admin: Option<String>,
    pub threads: usize,
    /// One JSON line per request on stdout.
    pub access_log: bool,
    /// Seconds between the shutdown signal and closing listeners (pingora's grace period).
    pub grace_period_seconds: u64,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout_seconds: u64,
    // --- Request-path limits and admin access (issue 8), see `request_path.rs`. ---
    pub request_limits: RequestLimits,
    pub admin_access: AdminAccess,
    // --- end of request-path fields ---
    /// Client connection timeouts and request limits.
    pub connections: connections::ConnectionSettings,
}

#[derive(Debug)]
pub struct SiteConfig {
    pub name: String,
    pub hosts: Vec<String>,
    pub upstreams: Vec<String>,
    pub mode: Mode,
    pub unknown_cookies: UnknownPolicy,
    pub gpc: GpcPolicy,
    /// Domain attributes the site sets cookies with (expiry lines are sent for each).
    pub cookie_domains: Vec<String>,
    /// Paths the site sets cookies on (default `/`).
    pub cookie_paths: Vec<String>,
    pub consent: ConsentConfig,
    /// The consent readers, built (in `sources` order).
    pub readers: Vec<Box<dyn ConsentReader>>,
    /// Operator rules, already compiled.
    pub rules: RuleSet,
    /// Open Cookie Database rules, if a CSV was configured.
    pub database: RuleSet,
    /// Cookie-name patterns that also need a TCF vendor's consent.
    pub vendor_rules: Vec<(RuleSet, u16)>,
    /// Tracker blocklists, compiled.
    pub blocklists: Blocklists,
    pub block_responses: BlockResponses,
    /// The Content-Security-Policy added per consent, if `[site.csp]` is configured.
    pub csp: Option<Csp>,
    /// Inline-script snippets for HTML neutralization; `None` = neutralization off.
    pub html_snippets: Option<Vec<(Category, String)>>,
    /// Origin connect/read/write/idle timeouts.
    pub timeouts: connections::UpstreamTimeouts,
}

#[derive(Debug, Clone)]
pub struct ConsentConfig {
    /// The first-party consent cookie's name.
    pub cookie: String,
    /// The formats read, in order.
    pub sources: Vec<String>,
}

/// One problem in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem is not tied to a line.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// All problems found in one file.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The format names `[site.consent] sources` accepts.
pub const SOURCE_FORMATS: &[&str] = &[
    "first-party",
    "tcf",
    "onetrust",
    "cookiebot",
    "cookieyes",
    "complianz",
    "klaro",
    "didomi",
];

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: 0,
            message: format!(
                "cannot read the configuration file: {e}; pass an existing file with --config"
            ),
        }])
    })?;
    parse(&text, path)
}

/// Validates configuration text; `path` names the file in messages and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut v = Validator {
        file: path.display().to_string(),
        text,
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        errors: Vec::new(),
        read_error_lines: Vec::new(),
        reading: false,
    };
    let Some(raw) = v.read_raw() else {
        return Err(ConfigErrors(v.sorted_errors()));
    };
    let proxy = v.proxy(&raw);
    let mut sites = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut catch_all: Option<String> = None;
    if raw.site.is_empty() {
        v.error(
            0,
            "no [[site]] is configured; add one with `name`, `hosts` and `upstreams`",
        );
    }
    for s in &raw.site {
        if let Some(site) = v.site(s) {
            if !names.insert(site.name.clone()) {
                v.error_at(
                    s.name.span(),
                    format!(
                        "site name `{}` is used twice; give each [[site]] its own name",
                        site.name
                    ),
                );
            }
            if site.hosts.iter().any(|h| h == "*") {
                if let Some(first) = &catch_all {
                    v.error_at(
                        s.hosts.span(),
                        format!(
                            "site `{}` also has host \"*\", but `{first}` already is the default site; only one site may use \"*\"",
                            site.name
                        ),
                    );
                } else {
                    catch_all = Some(site.name.clone());
                }
            }
            sites.push(site);
        }
    }
    if v.errors.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            proxy,
            sites,
        })
    } else {
        Err(ConfigErrors(v.sorted_errors()))
    }
}

struct Validator<'a> {
    file: String,
    text: &'a str,
    base: PathBuf,
    errors: Vec<ConfigError>,
    /// Lines whose key was reported while reading the TOML (and blanked or replaced).
    read_error_lines: Vec<usize>,
    reading: bool,
}

impl Validator<'_> {
    /// Reads the TOML into the raw structs, collecting every unknown key and wrong type: each is
    /// reported, blanked out with spaces (line numbers stay), and the text read again. `None`
    /// when the file cannot be read that far (a syntax error, a missing required key).
    fn read_raw(&mut self) -> Option<RawConfig> {
        let mut text = self.text.to_string();
        // Keys blanked so far, with where they were: a "missing key" error for one of them is
        // already reported (as its wrong type), so a placeholder goes in its place instead.
        let mut blanked: Vec<(String, std::ops::Range<usize>)> = Vec::new();
        for _ in 0..100 {
            let e = match toml::from_str::<RawConfig>(&text) {
                Ok(raw) => return Some(raw),
                Err(e) => e,
            };
            let msg = e.message().trim();
            let missing = msg
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next());
            if let Some(key) = missing {
                if let Some(i) = blanked.iter().position(|(k, _)| k == key) {
                    let (key, range) = blanked.swap_remove(i);
                    text = recover::placeholder(&text, &key, range)?;
                    continue;
                }
            }
            let line = e.span().map_or(0, |s| self.line_of(s.start));
            let message = raw::explain_toml_error(msg);
            if self
                .errors
                .iter()
                .any(|x| x.line == line && x.message == message)
            {
                return None;
            }
            self.reading = true;
            self.error(line, message);
            self.reading = false;
            self.read_error_lines.push(line);
            let ranges = match (missing, e.span()) {
                (None, Some(span)) => recover::offending_ranges(&text, span.start),
                _ => Vec::new(),
            };
            let first = ranges.first()?.clone();
            blanked.push((recover::key_name(&text[first.clone()]), first));
            text = recover::blank(&text, &ranges);
        }
        None
    }

    /// The errors in file order (file-level ones, line 0, first).
    fn sorted_errors(&mut self) -> Vec<ConfigError> {
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort_by_key(|e| e.line);
        errors
    }

    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn error(&mut self, line: usize, message: impl Into<String>) {
        if line != 0 && self.read_error_lines.contains(&line) && !self.reading {
            // That line's value was wrong and replaced to keep reading: one error per line.
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            message: message.into(),
        });
    }

    fn error_at(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        let line = self.line_of(span.start);
        self.error(line, message);
    }

    fn address(&mut self, what: &str, addr: &Spanned<String>) -> Option<String> {
        match addr.get_ref().parse::<SocketAddr>() {
            Ok(_) => Some(addr.get_ref().clone()),
            Err(_) => {
                self.error_at(
                    addr.span(),
                    format!(
                        "{what} `{}` is not an IP:port address; write it like \"127.0.0.1:8080\" or \"[::1]:8080\"",
                        addr.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn proxy(&mut self, raw: &RawConfig) -> ProxyConfig {
        let p = &raw.proxy;
        let mut listen = Vec::new();
        if p.listen.get_ref().is_empty() {
            self.error_at(
                p.listen.span(),
                "`listen` is empty; give at least one address like \"127.0.0.1:8080\"",
            );
        }
        for a in p.listen.get_ref() {
            if let Some(a) = self.address("listen address", a) {
                listen.push(a);
            }
        }
        let admin = p
            .admin
            .as_ref()
            .and_then(|a| self.address("admin address", a));
        let threads = match &p.threads {
            None => 1,
            Some(t) if (1..=1024).contains(t.get_ref()) => *t.get_ref() as usize,
            Some(t) => {
                self.error_at(
                    t.span(),
                    format!(
                        "threads = {} is out of range; use a number from 1 to the machine's cores",
                        t.get_ref()
                    ),
                );
                1
            }
        };
        ProxyConfig {
            listen,
            admin,
            threads,
            access_log: p.access_log,
            grace_period_seconds: p.grace_period_seconds,
            shutdown_timeout_seconds: p.shutdown_timeout_seconds,
            request_limits: self.request_limits(p),
            admin_access: self.admin_access(p),
            connections: self.connection_settings(p.connection_keys()),
        }
    }

    fn site(&mut self, s: &RawSite) -> Option<SiteConfig> {
        let before = self.errors.len();
        let name = s.name.get_ref().trim().to_string();
        if name.is_empty() {
            self.error_at(s.name.span(), "site `name` is empty; name the site");
        }
        let mut hosts = Vec::new();
        if s.hosts.get_ref().is_empty() {
            self.error_at(
                s.hosts.span(),
                "`hosts` is empty; list host names, `*.example.com` patterns, or \"*\" for the default site",
            );
        }
        for h in s.hosts.get_ref() {
            let host = h.get_ref().trim().to_ascii_lowercase();
            let bare = host.strip_prefix("*.").unwrap_or(&host);
            let ok = host == "*" || is_host_name(bare);
            if ok {
                hosts.push(host);
            } else {
                self.error_at(
                    h.span(),
                    format!(
                        "host pattern `{}` is not valid; use `example.com`, `*.example.com` or \"*\" (no port, no scheme)",
                        h.get_ref()
                    ),
                );
            }
        }
        let mut upstreams = Vec::new();
        if s.upstreams.get_ref().is_empty() {
            self.error_at(
                s.upstreams.span(),
                "`upstreams` is empty; list at least one origin like \"127.0.0.1:8081\"",
            );
        }
        for u in s.upstreams.get_ref() {
            match u.get_ref().to_socket_addrs() {
                Ok(addrs) if addrs.len() > 0 => upstreams.push(u.get_ref().clone()),
                _ => self.error_at(
                    u.span(),
                    format!(
                        "upstream `{}` is not a reachable HOST:PORT; write it like \"127.0.0.1:8081\"",
                        u.get_ref()
                    ),
                ),
            }
        }
        let mut cookie_domains = Vec::new();
        for d in &s.cookie_domains {
            let dom = d.get_ref().trim();
            if dom.is_empty()
                || !dom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
            {
                self.error_at(
                    d.span(),
                    format!("cookie domain `{}` is not a domain name; write it like \"example.com\" or \".example.com\"", d.get_ref()),
                );
            } else {
                cookie_domains.push(dom.to_string());
            }
        }
        let mut cookie_paths = Vec::new();
        for p in &s.cookie_paths {
            if !p.get_ref().starts_with('/') || p.get_ref().contains([';', ' ']) {
                self.error_at(
                    p.span(),
                    format!(
                        "cookie path `{}` must start with `/` and contain no `;` or spaces",
                        p.get_ref()
                    ),
                );
            } else {
                cookie_paths.push(p.get_ref().clone());
            }
        }
        if cookie_paths.is_empty() {
            cookie_paths.push("/".to_string());
        }

        // Consent sources.
        let consent_cookie = s.consent.cookie.get_ref().trim().to_string();
        if let Err(e) = check_pattern(&consent_cookie) {
            self.error_at(
                s.consent.cookie.span(),
                format!("consent cookie name `{consent_cookie}` is not usable: {e}"),
            );
        }
        let readers = self.consent_readers(&s.consent, &consent_cookie);
        let sources: Vec<String> = readers.iter().map(|r| r.format().to_string()).collect();

        // Operator cookie rules.
        let mut rules = RuleSet::default();
        let c = &s.cookies;
        for (cat, list) in [
            (Category::Necessary, &c.necessary),
            (Category::Preferences, &c.preferences),
            (Category::Analytics, &c.analytics),
            (Category::Marketing, &c.marketing),
        ] {
            for pat in list {
                if let Err(e) = rules.add(pat.get_ref().trim(), cat) {
                    self.error_at(
                        pat.span(),
                        format!(
                            "cookie pattern `{}` under {cat}: {e}; write a name, `prefix*` or a glob like `_ga_*`",
                            pat.get_ref()
                        ),
                    );
                }
            }
        }
        let mut vendor_rules: Vec<(RuleSet, u16)> = Vec::new();
        for (pat, vendor) in &c.vendors {
            let id = *vendor.get_ref();
            if !(1..=65535).contains(&id) {
                self.error_at(
                    vendor.span(),
                    format!(
                        "vendor id {id} for `{pat}` is out of range; IAB vendor ids are 1 to 65535"
                    ),
                );
                continue;
            }
            let mut rs = RuleSet::default();
            if let Err(e) = rs.add(pat, Category::Necessary) {
                self.error_at(
                    vendor.span(),
                    format!("cookie pattern `{pat}` in [site.cookies.vendors]: {e}"),
                );
                continue;
            }
            vendor_rules.push((rs, id as u16));
        }
        let mut database = RuleSet::default();
        if let Some(p) = &c.open_cookie_database {
            let path = self.resolve(p.get_ref());
            match ocd::load(&path) {
                Ok(rows) => {
                    for r in rows {
                        // Rows the loader accepted are valid names; a duplicate keeps the first.
                        let _ = database.add(&r.pattern, r.category);
                    }
                }
                Err(e) => self.error_at(
                    p.span(),
                    format!(
                        "open_cookie_database: {e}; point it at the Open Cookie Database CSV (open-cookie-database.csv)"
                    ),
                ),
            }
        }
        let mut lists = Vec::new();
        for b in &s.blocklist {
            let Some(category) = Category::parse(b.category.get_ref()) else {
                self.error_at(
                    b.category.span(),
                    format!(
                        "unknown category `{}` for a blocklist; use preferences, analytics or marketing",
                        b.category.get_ref()
                    ),
                );
                continue;
            };
            if category == Category::Necessary {
                self.error_at(
                    b.category.span(),
                    "a blocklist of category necessary would never block (necessary is always granted); use preferences, analytics or marketing",
                );
                continue;
            }
            let path = self.resolve(b.path.get_ref());
            match Blocklist::load(category, &path, b.path.get_ref()) {
                Ok(l) => lists.push(l),
                Err(e) => self.error_at(
                    b.path.span(),
                    format!(
                        "blocklist `{}`: {e}; point `path` at an EasyList/Adblock Plus syntax file",
                        path.display()
                    ),
                ),
            }
        }
        let block_responses = match &s.block_responses {
            None => BlockResponses::default(),
            Some(r) => {
                if let Err(e) = r.get_ref().validate() {
                    self.error_at(r.span(), format!("[site.block_responses]: {e}"));
                }
                r.get_ref().clone()
            }
        };
        let csp = match &s.csp {
            None => None,
            Some(c) => match Csp::build(c.get_ref()) {
                Ok(csp) => Some(csp),
                Err(e) => {
                    self.error_at(c.span(), format!("[site.csp]: {e}"));
                    None
                }
            },
        };
        let html_snippets = match &s.html {
            None => Some(crate::html::default_snippets()),
            Some(h) if !h.get_ref().enabled => None,
            Some(h) => {
                let h = h.get_ref();
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
        };
        let timeouts = self.upstream_timeouts(&s.timeouts);
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
            rules,
            database,
            vendor_rules,
            blocklists: Blocklists::new(lists),
            block_responses,
            csp,
            html_snippets,
            timeouts,
        })
    }

    /// Builds the readers named by `sources` (or, when `sources` is not written, first-party
    /// plus every format with a table), reporting unknown names and bad tables.
    fn consent_readers(
        &mut self,
        c: &raw::RawConsent,
        first_party_cookie: &str,
    ) -> Vec<Box<dyn ConsentReader>> {
        use crate::consent::*;
        let tables: [(&str, Option<std::ops::Range<usize>>); 7] = [
            ("tcf", c.tcf.as_ref().map(|t| t.span())),
            ("onetrust", c.onetrust.as_ref().map(|t| t.span())),
            ("cookiebot", c.cookiebot.as_ref().map(|t| t.span())),
            ("cookieyes", c.cookieyes.as_ref().map(|t| t.span())),
            ("complianz", c.complianz.as_ref().map(|t| t.span())),
            ("klaro", c.klaro.as_ref().map(|t| t.span())),
            ("didomi", c.didomi.as_ref().map(|t| t.span())),
        ];
        let mut names: Vec<(String, std::ops::Range<usize>)> = Vec::new();
        match &c.sources {
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.error_at(
                        list.span(),
                        "`sources` is empty; list the consent formats to read, e.g. [\"first-party\", \"tcf\"]",
                    );
                }
                for src in list.get_ref() {
                    let f = src.get_ref().trim().to_ascii_lowercase();
                    if !SOURCE_FORMATS.contains(&f.as_str()) {
                        self.error_at(
                            src.span(),
                            format!(
                                "unknown consent source `{}`; use one of: {}",
                                src.get_ref(),
                                SOURCE_FORMATS.join(", ")
                            ),
                        );
                    } else if !names.iter().any(|(n, _)| *n == f) {
                        names.push((f, src.span()));
                    }
                }
                for (name, span) in &tables {
                    if let Some(span) = span {
                        if !names.iter().any(|(n, _)| n == name) {
                            self.error_at(
                                span.clone(),
                                format!("[site.consent.{name}] is configured but `{name}` is not in `sources`; add it there or remove the table"),
                            );
                        }
                    }
                }
            }
            None => {
                names.push(("first-party".into(), 0..0));
                for (name, span) in &tables {
                    if let Some(span) = span {
                        names.push((name.to_string(), span.clone()));
                    }
                }
            }
        }
        let mut readers: Vec<Box<dyn ConsentReader>> = Vec::new();
        for (name, span) in names {
            let built: Result<Box<dyn ConsentReader>, String> = match name.as_str() {
                "first-party" => Ok(Box::new(first_party::FirstPartyReader::new(
                    first_party_cookie,
                ))),
                "tcf" => tcf::TcfReader::new(
                    &c.tcf
                        .as_ref()
                        .map(|t| t.get_ref().clone())
                        .unwrap_or_default(),
                )
                .map(|r| Box::new(r) as Box<dyn ConsentReader>),
                "onetrust" => onetrust::OneTrustReader::new(
                    &c.onetrust
                        .as_ref()
                        .map(|t| t.get_ref().clone())
                        .unwrap_or_default(),
                )
                .map(|r| Box::new(r) as Box<dyn ConsentReader>),
                "cookiebot" => cookiebot::CookiebotReader::new(
                    &c.cookiebot
                        .as_ref()
                        .map(|t| t.get_ref().clone())
                        .unwrap_or_default(),
                )
                .map(|r| Box::new(r) as Box<dyn ConsentReader>),
                "cookieyes" => cookieyes::CookieYesReader::new(
                    &c.cookieyes
                        .as_ref()
                        .map(|t| t.get_ref().clone())
                        .unwrap_or_default(),
                )
                .map(|r| Box::new(r) as Box<dyn ConsentReader>),
                "complianz" => complianz::ComplianzReader::new(
                    &c.complianz
                        .as_ref()
                        .map(|t| t.get_ref().clone())
                        .unwrap_or_default(),
                )
                .map(|r| Box::new(r) as Box<dyn ConsentReader>),
                "klaro" => klaro::KlaroReader::new(
                    &c.klaro
                        .as_ref()
                        .map(|t| t.get_ref().clone())
                        .unwrap_or_default(),
                )
                .map(|r| Box::new(r) as Box<dyn ConsentReader>),
                "didomi" => didomi::DidomiReader::new(
                    &c.didomi
                        .as_ref()
                        .map(|t| t.get_ref().clone())
                        .unwrap_or_default(),
                )
                .map(|r| Box::new(r) as Box<dyn ConsentReader>),
                _ => unreachable!("checked against SOURCE_FORMATS"),
            };
            match built {
                Ok(r) => readers.push(r),
                Err(e) => self.error_at(span, format!("[site.consent.{name}]: {e}")),
            }
        }
        readers
    }

    /// A relative path is taken from the working directory if it exists there (paths in the
    /// example config are written from the project root), else from the config file's folder.
    fn resolve(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        if path.is_absolute() || path.exists() {
            path
        } else {
            self.base.join(path)
        }
    }
}

/// A host name as configuration may write it: letters, digits, `.`, `-`, `_`; no port, no
/// scheme (site `hosts` and `[proxy] admin_hosts`).
pub(crate) fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[proxy]
listen = ["127.0.0.1:8080"]
admin = "127.0.0.1:9090"
threads = 2

[[site]]
name = "example"
hosts = ["*"]
upstreams = ["127.0.0.1:8081"]
mode = "enforce"
unknown_cookies = "strip"
gpc = "deny-marketing"

[site.consent]
cookie = "consent"

[site.cookies]
necessary = ["SESSIONID"]
analytics = ["_ga", "_ga_*", "_gid"]
marketing = ["_fbp", "_gcl_*"]
"#;

    fn errs(text: &str) -> Vec<String> {
        match parse(text, Path::new("t.toml")) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn the_issue_example_is_accepted() {
        let c = parse(EXAMPLE, Path::new("t.toml")).unwrap();
        assert_eq!(c.proxy.threads, 2);
        assert_eq!(c.sites[0].mode, Mode::Enforce);
        assert_eq!(
            c.sites[0].rules.lookup("_gcl_au"),
            Some(Category::Marketing)
        );
    }

    #[test]
    fn unknown_key_names_line_and_fix() {
        let e = errs(&EXAMPLE.replace("threads = 2", "thread = 2"));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("t.toml:5: "), "{e:?}");
        assert!(e[0].contains("unknown key `thread`"), "{e:?}");
        assert!(e[0].contains("did you mean `threads`"), "{e:?}");
    }

    #[test]
    fn every_semantic_error_is_listed() {
        let bad = EXAMPLE
            .replace("127.0.0.1:8080", "localhost-8080")
            .replace("\"127.0.0.1:9090\"", "\"nope\"")
            .replace("\"_gid\"", "\"a b\"");
        let e = errs(&bad);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("t.toml:3: listen address `localhost-8080`"));
        assert!(e[1].starts_with("t.toml:4: admin address `nope`"));
        assert!(e[2].starts_with("t.toml:20: cookie pattern `a b`"));
    }

    #[test]
    fn unknown_keys_wrong_types_and_semantic_errors_are_all_listed() {
        let bad = EXAMPLE
            .replace("threads = 2", "thread = 2")
            .replace("\"127.0.0.1:9090\"", "\"nope\"")
            .replace("marketing = [", "advertising = [")
            .replace("gpc = \"deny-marketing\"", "gpc = 1")
            .replace("[site.consent]", "[site.cookeis]\nx = 1\n[site.consent]");
        let e = errs(&bad);
        let lines: Vec<usize> = e
            .iter()
            .map(|l| l.split(':').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{e:#?}");
        for want in [
            "admin address `nope`",
            "unknown key `thread`",
            "unknown key `cookeis`",
            "unknown key `advertising`",
        ] {
            assert!(e.iter().any(|l| l.contains(want)), "{want}: {e:#?}");
        }
        assert!(e.iter().any(|l| l.contains("gpc")), "{e:#?}");
        // Nothing is reported twice, and a syntax error still comes alone.
        let e = errs(&EXAMPLE.replace("threads = 2", "threads = = 2"));
        assert_eq!(e.len(), 1, "{e:#?}");
    }

    #[test]
    fn unknown_category_and_mode() {
        let e = errs(&EXAMPLE.replace("marketing = [", "advertising = ["));
        assert!(e[0].contains("t.toml:21") && e[0].contains("unknown key `advertising`"));
        let e = errs(&EXAMPLE.replace("mode = \"enforce\"", "mode = \"strict\""));
        assert!(
            e[0].contains("t.toml:11") && e[0].contains("enforce"),
            "{e:?}"
        );
    }
}
