//! The configuration file: TOML -> validated [`Config`].
//!
//! Every problem is reported as `FILE:LINE: what is wrong; how to fix it`, and validation goes on
//! after the first problem so `consentgate check` lists them all in one run: unknown keys and
//! wrong types (each blanked out and the file read again, see `recover`), then every semantic
//! problem. Only a TOML syntax error, after which nothing can be read, comes alone.

pub mod connections;
mod consent;
mod error;
mod forwarded;
mod geo;
mod jurisdiction;
mod located;
mod raw;
pub mod receipts;
mod recover;
mod request_path;
mod site;
pub mod tls;
pub mod upstreams;
mod warnings;

use crate::consent::gpc::GpcPolicy;
use crate::consent::{Category, ConsentReader};
use crate::cookies::classify::RuleSet;
use crate::cookies::gate::UnknownPolicy;
use crate::trackers::csp::Csp;
use crate::trackers::respond::BlockResponses;
use crate::trackers::ListSource;
pub use error::{ConfigError, ConfigErrorKind, ConfigErrors, ListKey};
pub use forwarded::{parse_trusted, ForwardedHeaders, ForwardedSettings};
pub use jurisdiction::jurisdiction_warnings;
use raw::RawConfig;
pub use request_path::{AdminAccess, RequestLimits, ADMIN_TOKEN_ENV};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;
pub use warnings::{warnings, warnings_for_file, ConfigWarning};

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
    /// Forwarding headers and trusted proxies (issue 10), see `forwarded.rs`.
    pub forwarded: ForwardedSettings,
    /// Client connection timeouts and request limits.
    pub connections: connections::ConnectionSettings,
    /// `listen_tls`, the certificates (loaded) and `h2c`.
    pub tls: tls::TlsConfig,
    /// `[proxy.geo]`: where visitors are (issue 11), see `geo.rs`.
    pub geo: crate::geo::GeoSettings,
    /// `[receipts]`, when configured (receipts are off without the table).
    pub receipts: Option<receipts::ReceiptsConfig>,
}

/// One validated `[[site]]`.
///
/// Most fields are plain values, compiled by the runtime ([`crate::policy::SitePolicy::build`]):
/// the blocklists are read and checked here and their engines built there (the costly part of a
/// load). A few small ones are built here because building them is how their errors are found,
/// with a line to report them on: `readers` (each format's table is deserialized and checked by
/// its reader's constructor, see `consent::registry`), `rules`, `database` and `vendor_rules`
/// (`RuleSet::add` is what rejects a bad pattern) and `csp`.
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
    /// `[[site.consent.header]]`: consent sent by apps in request headers.
    pub consent_headers: Vec<crate::consent::header::HeaderSource>,
    /// Operator rules, already compiled.
    pub rules: RuleSet,
    /// Open Cookie Database rules, if a CSV was configured.
    pub database: RuleSet,
    /// Cookie-name patterns that also need a TCF vendor's consent.
    pub vendor_rules: Vec<(RuleSet, u16)>,
    /// Tracker blocklists, read and checked; the runtime compiles them.
    pub blocklists: Vec<ListSource>,
    pub block_responses: BlockResponses,
    /// The Content-Security-Policy added per consent, if `[site.csp]` is configured.
    pub csp: Option<Csp>,
    /// `[site.consent_mode]`, compiled; `None` unless enabled.
    pub consent_mode: Option<crate::consent_mode::ConsentMode>,
    /// Inline-script snippets for HTML neutralization; `None` = neutralization off.
    pub html_snippets: Option<Vec<(Category, String)>>,
    /// Origin connect/read/write/idle timeouts.
    pub timeouts: connections::UpstreamTimeouts,
    /// The origins with their weights, balancing, TLS and health checks.
    pub upstream: upstreams::UpstreamsConfig,
    /// `[[site.jurisdiction]]` rules (issue 11); empty = opt-in for everyone.
    pub jurisdictions: crate::jurisdiction::Jurisdictions,
    /// Consent receipts' `policy_version`: SHA-256 of the site's `[[site]]` table, the lists
    /// and cookie database it loaded, and the binary's version and catalogue.
    pub policy_version: String,
}

#[derive(Debug, Clone)]
pub struct ConsentConfig {
    /// The first-party consent cookie's name.
    pub cookie: String,
    /// The formats read, in order.
    pub sources: Vec<String>,
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            line: 0,
            kind: ConfigErrorKind::Unreadable(e.to_string()),
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
        blanked_keys: Vec::new(),
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
        v.error(0, ConfigErrorKind::NoSite);
    }
    let versions = receipts::policy_versions(text);
    for (i, s) in raw.site.iter().enumerate() {
        if let Some(mut site) = v.site(s) {
            let table = versions.get(i).map(String::as_str).unwrap_or_default();
            site.policy_version = receipts::policy_version(table, &site);
            if !names.insert(site.name.clone()) {
                let kind = ConfigErrorKind::DuplicateSiteName(site.name.clone());
                v.error_at(s.name.span(), kind);
            }
            if site.hosts.iter().any(|h| h == "*") {
                if let Some(first) = &catch_all {
                    let kind = ConfigErrorKind::SecondDefaultSite {
                        site: site.name.clone(),
                        first: first.clone(),
                    };
                    v.error_at(s.hosts.span(), kind);
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
    /// Names of the keys blanked out while reading (their error is reported already; an
    /// optional one then reads as absent).
    blanked_keys: Vec<String>,
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
            let kind = raw::toml_error_kind(msg);
            if self.errors.iter().any(|x| x.line == line && x.kind == kind) {
                return None;
            }
            self.reading = true;
            self.error(line, kind);
            self.reading = false;
            self.read_error_lines.push(line);
            let ranges = match (missing, e.span()) {
                (None, Some(span)) => recover::offending_ranges(&text, span.start),
                _ => Vec::new(),
            };
            let first = ranges.first()?.clone();
            let key = recover::key_name(&text[first.clone()]);
            self.blanked_keys.push(key.clone());
            blanked.push((key, first));
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

    fn error(&mut self, line: usize, kind: ConfigErrorKind) {
        if line != 0 && self.read_error_lines.contains(&line) && !self.reading {
            // That line's value was wrong and replaced to keep reading: one error per line.
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            kind,
        });
    }

    fn error_at(&mut self, span: std::ops::Range<usize>, kind: ConfigErrorKind) {
        let line = self.line_of(span.start);
        self.error(line, kind);
    }

    fn address(&mut self, what: &'static str, addr: &Spanned<String>) -> Option<String> {
        match addr.get_ref().parse::<SocketAddr>() {
            Ok(_) => Some(addr.get_ref().clone()),
            Err(_) => {
                let value = addr.get_ref().clone();
                self.error_at(addr.span(), ConfigErrorKind::BadAddress { what, value });
                None
            }
        }
    }

    fn proxy(&mut self, raw: &RawConfig) -> ProxyConfig {
        let p = &raw.proxy;
        let mut listen = Vec::new();
        for a in p.listen.iter().flat_map(|l| l.get_ref()) {
            if let Some(a) = self.address("listen address", a) {
                listen.push(a);
            }
        }
        let plain_listeners = p.listen.as_ref().is_some_and(|l| !l.get_ref().is_empty());
        let tls = self.tls(p, plain_listeners);
        let admin = p
            .admin
            .as_ref()
            .and_then(|a| self.address("admin address", a));
        let threads = match &p.threads {
            None => 1,
            Some(t) if (1..=1024).contains(t.get_ref()) => *t.get_ref() as usize,
            Some(t) => {
                self.error_at(t.span(), ConfigErrorKind::ThreadsOutOfRange(*t.get_ref()));
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
            forwarded: self.forwarded_settings(p),
            connections: self.connection_settings(p.connection_keys()),
            tls,
            geo: self.geo_settings(&p.geo),
            receipts: raw.receipts.as_ref().and_then(|r| self.receipts(r)),
        }
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

    /// The example site (the demo's and the benchmarks' too).
    const EXAMPLE: &str = include_str!("../../conf/example.toml");

    /// The example's line holding `text` (1-based), so the tests follow edits of the file.
    fn line(text: &str) -> usize {
        line_in(EXAMPLE, text)
    }

    /// The line of `file` holding `text` (1-based).
    fn line_in(file: &str, text: &str) -> usize {
        let at = file
            .find(text)
            .unwrap_or_else(|| panic!("{text} not in {file}"));
        file[..at].matches('\n').count() + 1
    }

    fn errs(text: &str) -> Vec<String> {
        match parse(text, Path::new("t.toml")) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn the_issue_example_is_accepted() {
        let c = parse(EXAMPLE, Path::new("t.toml")).unwrap();
        assert_eq!(c.proxy.threads, 1);
        assert_eq!(c.sites[0].mode, Mode::Enforce);
        assert_eq!(
            c.sites[0].rules.lookup("_gcl_au"),
            Some(Category::Marketing)
        );
    }

    /// The shipped jurisdiction example (docs/CONSENT.md, "Jurisdictions") is valid and
    /// means what its comments say.
    #[test]
    fn the_jurisdiction_example_is_accepted() {
        use crate::geo::{parse_country, parse_full_region, Location};
        use crate::jurisdiction::Model;
        let text = include_str!("../../conf/jurisdictions.example.toml");
        let c = parse(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.proxy.geo.country_header.is_some());
        let j = &c.sites[0].jurisdictions;
        let at = |country: &str, region: Option<&str>| Location {
            country: parse_country(country.as_bytes()),
            region: region.and_then(parse_full_region),
        };
        assert_eq!(j.model_for(&at("US", Some("US-CA"))), Model::OptOut);
        assert_eq!(j.model_for(&at("US", Some("US-RI"))), Model::OptOut);
        assert_eq!(j.model_for(&at("US", Some("US-NY"))), Model::OptIn);
        assert_eq!(j.model_for(&at("DE", None)), Model::OptIn);
        assert_eq!(j.model_for(&at("CN", None)), Model::OptIn);
        assert_eq!(j.model_for(&Location::UNKNOWN), Model::OptIn);
        assert!(j.shadowed().is_empty());
    }

    #[test]
    fn unknown_key_names_line_and_fix() {
        let e = errs(&EXAMPLE.replace("threads = 1", "thread = 1"));
        assert_eq!(e.len(), 1);
        let at = format!("t.toml:{}: ", line("threads = 1"));
        assert!(e[0].starts_with(&at), "{e:?}");
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
        let at = |text: &str, what: &str| format!("t.toml:{}: {what}", line(text));
        assert!(e[0].starts_with(&at("listen =", "listen address `localhost-8080`")));
        assert!(e[1].starts_with(&at("admin =", "admin address `nope`")));
        assert!(e[2].starts_with(&at("\"_gid\"", "cookie pattern `a b`")));
    }

    #[test]
    fn unknown_keys_wrong_types_and_semantic_errors_are_all_listed() {
        let bad = EXAMPLE
            .replace("threads = 1", "thread = 1")
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
        let e = errs(&EXAMPLE.replace("threads = 1", "threads = = 1"));
        assert_eq!(e.len(), 1, "{e:#?}");
    }

    #[test]
    fn unknown_category_and_mode() {
        let e = errs(&EXAMPLE.replace("marketing = [", "advertising = ["));
        let at = format!("t.toml:{}:", line("marketing = ["));
        assert!(e[0].starts_with(&at) && e[0].contains("unknown key `advertising`"));
        let e = errs(&EXAMPLE.replace("mode = \"enforce\"", "mode = \"strict\""));
        let at = format!("t.toml:{}:", line("mode = "));
        assert!(e[0].starts_with(&at) && e[0].contains("enforce"), "{e:?}");
    }

    /// A site of the example with `extra` added under `[[site]]` (before `[site.consent]`:
    /// dotted keys belong to the `[[site]]` table) or, with `at_end`, after its last table.
    fn example_with(extra: &str, at_end: bool) -> Config {
        let text = if at_end {
            format!("{EXAMPLE}\n{extra}")
        } else {
            EXAMPLE.replace("[site.consent]", &format!("{extra}\n[site.consent]"))
        };
        parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{extra}: {e}"))
    }

    /// What the site's readers grant for one request's cookies.
    fn granted(site: &SiteConfig, cookie: &str) -> Vec<crate::consent::Grants> {
        let jar = crate::cookies::header::CookieJar::from_headers([cookie.as_bytes()]);
        site.readers
            .iter()
            .filter_map(|r| r.read(&jar, false))
            .map(|o| o.granted)
            .collect()
    }

    // Tables without a header of their own (a sub-table's header alone, dotted keys) are valid
    // TOML (toml.io, "Tables": "[x.y.z.w] ... you don't need to specify all the super-tables";
    // "Keys": dotted keys "create and define a table for each key part before the last one");
    // `toml::Spanned` refused them (config::located).

    #[test]
    fn a_sub_table_header_without_its_parent_header_is_read() {
        let c = example_with("[site.html.snippets]\nanalytics = [\"myTracker(\"]\n", true);
        let snippets = c.sites[0].html_snippets.as_ref().expect("html stays on");
        let analytics: Vec<&str> = snippets
            .iter()
            .filter(|(cat, _)| *cat == Category::Analytics)
            .map(|(_, s)| s.as_str())
            .collect();
        assert!(analytics.contains(&"myTracker("), "{snippets:?}");
        // The default snippets stay (`default_snippets` keeps its default).
        assert!(snippets.len() > 1, "{snippets:?}");

        // `[site.consent.cookiebot.map]` alone: the map is the one written (Cookiebot's
        // `statistics` counts as marketing), and cookiebot is read.
        let c = example_with(
            "[site.consent.cookiebot.map]\nstatistics = \"marketing\"\n",
            true,
        );
        let s = &c.sites[0];
        assert_eq!(s.consent.sources, ["first-party", "cookiebot"]);
        let g = granted(
            s,
            "CookieConsent={necessary:true,preferences:true,statistics:true,marketing:false}",
        );
        assert_eq!(g.len(), 1, "{g:?}");
        assert!(g[0].allows(Category::Marketing) && !g[0].allows(Category::Analytics));
        assert!(
            !g[0].allows(Category::Preferences),
            "unmapped keys grant nothing"
        );
    }

    #[test]
    fn dotted_keys_make_tables_too() {
        let c = example_with(
            "html.enabled = false\ntimeouts.read_ms = 250\nblock_responses.script = 204\ncsp.base = \"default-src 'self'\"\ncsp.analytics = [\"https://stats.example\"]\n",
            false,
        );
        let s = &c.sites[0];
        assert!(
            s.html_snippets.is_none(),
            "html.enabled = false turns it off"
        );
        assert_eq!(s.timeouts.read, std::time::Duration::from_millis(250));
        assert_eq!(s.block_responses.script, 204);
        let csp = s.csp.as_ref().expect("csp configured");
        let all = csp.header_value(crate::consent::Grants::ALL);
        assert!(all.contains("https://stats.example"), "{all}");
        let none = csp.header_value(crate::consent::Grants::NONE);
        assert!(!none.contains("https://stats.example"), "{none}");

        // Dotted keys inside a format table, and a format table made by dotted keys alone.
        for consent in [
            "cookie = \"consent\"\n[site.consent.cookiebot]\nmap.statistics = \"marketing\"\n",
            "cookie = \"consent\"\ncookiebot.map.statistics = \"marketing\"\n",
        ] {
            let text = EXAMPLE.replace("cookie = \"consent\"\n", consent);
            let c = parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
            let s = &c.sites[0];
            assert_eq!(s.consent.sources, ["first-party", "cookiebot"], "{consent}");
            let g = granted(s, "CookieConsent={statistics:true,marketing:false}");
            assert!(g[0].allows(Category::Marketing), "{consent}: {g:?}");
            assert!(!g[0].allows(Category::Analytics), "{consent}: {g:?}");
        }
    }

    #[test]
    fn arrays_of_tables_and_inline_tables_under_a_site_are_read() {
        let lists = |c: &Config| -> Vec<(Category, String)> {
            c.sites[0]
                .blocklists
                .iter()
                .map(|l| (l.category, l.name.clone()))
                .collect()
        };
        let want = vec![
            (Category::Analytics, "conf/lists/analytics.txt".to_string()),
            (Category::Marketing, "conf/lists/marketing.txt".to_string()),
        ];
        let c = example_with(
            "[[site.blocklist]]\ncategory = \"analytics\"\npath = \"conf/lists/analytics.txt\"\n[[site.blocklist]]\ncategory = \"marketing\"\npath = \"conf/lists/marketing.txt\"\n",
            true,
        );
        assert_eq!(lists(&c), want);
        let c = example_with(
            "blocklist = [{ category = \"analytics\", path = \"conf/lists/analytics.txt\" }, { category = \"marketing\", path = \"conf/lists/marketing.txt\" }]\nhtml = { snippets.marketing = [\"px(\"] }\n",
            false,
        );
        assert_eq!(lists(&c), want);
        let html = c.sites[0].html_snippets.as_ref().unwrap();
        assert!(html.contains(&(Category::Marketing, "px(".to_string())));
    }

    #[test]
    fn a_bad_key_in_a_table_without_header_is_reported_on_its_line() {
        let text = format!("{EXAMPLE}\n[site.html.snippets]\nanalytcs = [\"x\"]\n");
        let e = errs(&text);
        let at = line_in(&text, "analytcs");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with(&format!("t.toml:{at}: unknown key `analytcs`")));
        let text = EXAMPLE.replace("[site.consent]", "html.enabld = false\n[site.consent]");
        let e = errs(&text);
        let at = line_in(&text, "html.enabld");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with(&format!("t.toml:{at}: unknown key `enabld`")));
        // A format table named only by its sub-table, left out of `sources`: on that line.
        let text = format!(
            "{}\n[site.consent.cookiebot.map]\nstatistics = \"marketing\"\n",
            EXAMPLE.replace("cookie = \"consent\"", "sources = [\"tcf\"]")
        );
        let e = errs(&text);
        let at = line_in(&text, "[site.consent.cookiebot.map]");
        assert_eq!(e.len(), 1, "{e:?}");
        let want = format!("t.toml:{at}: [site.consent.cookiebot] is configured");
        assert!(e[0].starts_with(&want), "{e:?}");
    }
}
