//! What applies where the visitor is (issue 11, "What applies there"): a site's ordered
//! `[[site.jurisdiction]]` rules, the first whose `regions` match the visitor's [`Location`]
//! wins, and its consent model is applied to the merged consent. Pure.
//!
//! - `opt-in` (GDPR/ePrivacy, UK GDPR/PECR, Swiss nFADP, China's PIPL): only what the visitor
//!   granted. consentgate's behaviour without rules.
//! - `opt-out` (US state privacy laws: CCPA/CPRA, VCDPA, CPA, CTDPA, UCPA, ...): every
//!   category is granted unless a source refused it; an explicit refusal always wins, a source
//!   that could not be read refuses everything (fail closed), and `Sec-GPC: 1` is a legal
//!   opt-out of sale/sharing, so it denies marketing whatever the site's `gpc` policy says
//!   (a stricter policy, `deny-all-optional`, still applies).
//! - `off`: no gating for that visitor, as `mode = "off"` for the site.
//!
//! A site without rules reads no location and applies opt-in: nothing here runs.

use crate::consent::gpc::{self, GpcPolicy};
use crate::consent::{ConsentState, Grants, Verdict};
use crate::geo::{Country, Location, Region};
use serde::{Deserialize, Serialize};

/// A consent model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// Nothing optional until the visitor consents.
    #[default]
    OptIn,
    /// Everything until the visitor opts out.
    OptOut,
    /// No gating.
    Off,
}

impl Model {
    pub fn as_str(self) -> &'static str {
        match self {
            Model::OptIn => "opt-in",
            Model::OptOut => "opt-out",
            Model::Off => "off",
        }
    }

    /// Higher is stricter: opt-in > opt-out > off.
    fn strictness(self) -> u8 {
        match self {
            Model::OptIn => 2,
            Model::OptOut => 1,
            Model::Off => 0,
        }
    }
}

/// One entry of a rule's `regions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// `*`: every known location.
    Anywhere,
    /// `DE`: the whole country.
    Country(Country),
    /// `US-CA`: one subdivision.
    Region(Region),
}

impl Area {
    /// `*`, a country (`DE`) or an ISO 3166-2 code (`US-CA`), any case.
    pub fn parse(s: &str) -> Option<Area> {
        let s = s.trim();
        if s == "*" {
            return Some(Area::Anywhere);
        }
        if s.len() == 2 {
            return crate::geo::parse_country(s.as_bytes()).map(Area::Country);
        }
        crate::geo::parse_full_region(s).map(Area::Region)
    }

    fn contains(&self, at: &Location) -> bool {
        match self {
            Area::Anywhere => !at.is_unknown(),
            Area::Country(c) => at.country == Some(*c),
            Area::Region(r) => at.region == Some(*r),
        }
    }
}

/// One `[[site.jurisdiction]]`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub areas: Vec<Area>,
    pub model: Model,
}

/// Why a rule applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Its `regions` entry matched the location.
    Matched(Area),
    /// The location is unknown: the fallback rule applies.
    UnknownLocation,
    /// The location is known but no rule lists it: the fallback rule applies.
    NoMatch,
}

impl Reason {
    /// A fixed label (metrics, access log).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Matched(_) => "matched",
            Reason::UnknownLocation => "unknown_location",
            Reason::NoMatch => "no_match",
        }
    }

    pub const LABELS: [&'static str; 3] = ["matched", "unknown_location", "no_match"];

    pub fn index(self) -> usize {
        match self {
            Reason::Matched(_) => 0,
            Reason::UnknownLocation => 1,
            Reason::NoMatch => 2,
        }
    }
}

/// The rule chosen for one request: an index into [`Jurisdictions::rules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selected {
    pub rule: usize,
    pub reason: Reason,
}

/// A site's rules, in order, and the rule for a location none of them lists.
#[derive(Clone, Debug, Default)]
pub struct Jurisdictions {
    pub rules: Vec<Rule>,
    /// The rule for an unknown location (or one no rule lists).
    pub fallback: usize,
    /// Whether `unknown_jurisdiction` named it (else: the strictest rule).
    pub fallback_configured: bool,
}

impl Jurisdictions {
    /// `rules` with the fallback named by `unknown` (`None`: the first of the strictest
    /// model). `Err` with the unknown name.
    pub fn new(rules: Vec<Rule>, unknown: Option<&str>) -> Result<Jurisdictions, String> {
        let (fallback, configured) = match unknown {
            Some(name) => match rules.iter().position(|r| r.name == name) {
                Some(i) => (i, true),
                None => return Err(name.to_string()),
            },
            None => (strictest(&rules), false),
        };
        Ok(Jurisdictions {
            rules,
            fallback,
            fallback_configured: configured,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule whose regions contain `at`, else the fallback. `None` without rules.
    pub fn select(&self, at: &Location) -> Option<Selected> {
        if self.rules.is_empty() {
            return None;
        }
        if at.is_unknown() {
            return Some(Selected {
                rule: self.fallback,
                reason: Reason::UnknownLocation,
            });
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if let Some(a) = rule.areas.iter().find(|a| a.contains(at)) {
                return Some(Selected {
                    rule: i,
                    reason: Reason::Matched(*a),
                });
            }
        }
        Some(Selected {
            rule: self.fallback,
            reason: Reason::NoMatch,
        })
    }

    pub fn rule(&self, s: Selected) -> &Rule {
        &self.rules[s.rule]
    }

    /// The model for `at` (opt-in without rules).
    pub fn model_for(&self, at: &Location) -> Model {
        self.select(at).map_or(Model::OptIn, |s| self.rule(s).model)
    }

    /// For each rule, the earlier rule whose `*` makes it unreachable (for `check`).
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let first_any = self
            .rules
            .iter()
            .position(|r| r.areas.contains(&Area::Anywhere));
        match first_any {
            Some(any) => ((any + 1)..self.rules.len()).map(|i| (i, any)).collect(),
            None => Vec::new(),
        }
    }
}

/// The first rule of the strictest model (opt-in > opt-out > off).
fn strictest(rules: &[Rule]) -> usize {
    let mut best = 0;
    for (i, r) in rules.iter().enumerate() {
        if r.model.strictness() > rules[best].model.strictness() {
            best = i;
        }
    }
    best
}

/// The decision under `model` for the merged verdict of a request's consent sources and its
/// `Sec-GPC` signal, with the site's GPC policy. Pure: [`apply`] uses it on the request path,
/// and receipts ask it for the decision without GPC, to tell what `Sec-GPC` took back under
/// the same model (src/receipts/recorder.rs).
pub fn decision(model: Model, verdict: Verdict, gpc: bool, site_gpc: GpcPolicy) -> Grants {
    match model {
        // What `read_consent` decides: only what a source granted, then the site's policy.
        Model::OptIn => gpc::apply(site_gpc, gpc, verdict.grants()),
        Model::OptOut => {
            // GPC is a legal opt-out of sale/sharing here: marketing is denied even where the
            // site ignores the signal; a stricter site policy still applies.
            let policy = match site_gpc {
                GpcPolicy::DenyAllOptional => GpcPolicy::DenyAllOptional,
                GpcPolicy::DenyMarketing | GpcPolicy::Ignore => GpcPolicy::DenyMarketing,
            };
            gpc::apply(policy, gpc, verdict.unless_refused())
        }
        Model::Off => Grants::ALL,
    }
}

/// Applies `model` to the consent read from the request's sources (their merged verdict is in
/// `consent.verdict`; `consent.grants` holds the opt-in decision with the site's GPC policy).
pub fn apply(model: Model, consent: &mut ConsentState, site_gpc: GpcPolicy) {
    consent.model = model;
    consent.grants = decision(model, consent.verdict, consent.gpc, site_gpc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::Category;

    fn at(country: &str, region: Option<&str>) -> Location {
        Location {
            country: crate::geo::parse_country(country.as_bytes()),
            region: region.and_then(crate::geo::parse_full_region),
        }
    }

    fn rule(name: &str, areas: &[&str], model: Model) -> Rule {
        Rule {
            name: name.into(),
            areas: areas.iter().map(|a| Area::parse(a).unwrap()).collect(),
            model,
        }
    }

    fn issue_example() -> Vec<Rule> {
        vec![
            rule("us-optout", &["US-CA", "US-CO", "US-VA"], Model::OptOut),
            rule("eu", &["DE", "FR"], Model::OptIn),
            rule("us-rest", &["US"], Model::Off),
        ]
    }

    #[test]
    fn first_match_wins_and_unknown_takes_the_strictest_by_default() {
        let j = Jurisdictions::new(issue_example(), None).unwrap();
        let name = |l: Location| j.rule(j.select(&l).unwrap()).name.clone();
        assert_eq!(name(at("US", Some("US-CA"))), "us-optout");
        assert_eq!(name(at("US", Some("US-NY"))), "us-rest");
        assert_eq!(name(at("US", None)), "us-rest");
        assert_eq!(name(at("DE", None)), "eu");
        // Unknown location, and a known one no rule lists: the strictest (opt-in) rule.
        assert_eq!(
            j.select(&Location::UNKNOWN).unwrap().reason,
            Reason::UnknownLocation
        );
        assert_eq!(name(Location::UNKNOWN), "eu");
        assert_eq!(j.select(&at("JP", None)).unwrap().reason, Reason::NoMatch);
        assert_eq!(name(at("JP", None)), "eu");
        // Configured instead.
        let j = Jurisdictions::new(issue_example(), Some("us-rest")).unwrap();
        assert_eq!(j.model_for(&Location::UNKNOWN), Model::Off);
        assert_eq!(
            Jurisdictions::new(issue_example(), Some("nope")).unwrap_err(),
            "nope"
        );
        // No rules: opt-in, nothing selected.
        let none = Jurisdictions::default();
        assert_eq!(none.select(&at("US", Some("US-CA"))), None);
        assert_eq!(none.model_for(&at("US", Some("US-CA"))), Model::OptIn);
    }

    #[test]
    fn a_star_matches_known_locations_only_and_shadows_later_rules() {
        let j = Jurisdictions::new(
            vec![
                rule("all", &["*"], Model::OptOut),
                rule("late", &["DE"], Model::OptIn),
            ],
            None,
        )
        .unwrap();
        assert_eq!(j.model_for(&at("DE", None)), Model::OptOut);
        // Unknown: not `*`, the strictest.
        assert_eq!(j.model_for(&Location::UNKNOWN), Model::OptIn);
        assert_eq!(j.shadowed(), vec![(1, 0)]);
    }

    fn consent(verdict: Verdict, gpc: bool) -> ConsentState {
        ConsentState {
            grants: verdict.grants(),
            verdict,
            gpc,
            ..ConsentState::default()
        }
    }

    #[test]
    fn opt_out_grants_what_is_not_refused_and_gpc_denies_marketing() {
        use Category::*;
        let mut c = consent(Verdict::NOTHING, false);
        apply(Model::OptOut, &mut c, GpcPolicy::DenyMarketing);
        assert!(c.grants.is_all());
        let mut c = consent(Verdict::NOTHING, true);
        apply(Model::OptOut, &mut c, GpcPolicy::Ignore);
        assert!(c.grants.allows(Analytics) && !c.grants.allows(Marketing));
        let mut c = consent(Verdict::NOTHING, true);
        apply(Model::OptOut, &mut c, GpcPolicy::DenyAllOptional);
        assert!(c.grants.is_none());
        // An explicit refusal wins; what the source says nothing about stays granted.
        let mut v = Verdict::NOTHING;
        v.set(Analytics, false);
        let mut c = consent(v, false);
        apply(Model::OptOut, &mut c, GpcPolicy::DenyMarketing);
        assert!(!c.grants.allows(Analytics) && c.grants.allows(Marketing));
        // A source that failed refuses everything (fail closed).
        let mut c = consent(Verdict::covering_all(Grants::NONE), false);
        apply(Model::OptOut, &mut c, GpcPolicy::DenyMarketing);
        assert!(c.grants.is_none());
        // Off grants everything, opt-in changes nothing.
        let mut c = consent(Verdict::covering_all(Grants::NONE), true);
        apply(Model::Off, &mut c, GpcPolicy::DenyAllOptional);
        assert!(c.grants.is_all());
        let mut c = consent(Verdict::NOTHING, false);
        apply(Model::OptIn, &mut c, GpcPolicy::DenyMarketing);
        assert!(c.grants.is_none());
    }

    /// The model as `plan_request_in` applies it to a site's cookies.
    #[test]
    fn models_decide_the_request_cookies() {
        use crate::cookies::gate::RequestAction;
        let text = r#"
[proxy]
listen = ["127.0.0.1:1"]
[[site]]
name = "t"
upstreams = ["127.0.0.1:2"]
[site.cookies]
analytics = ["_ga"]
marketing = ["_fbp"]
[site.cookies.vendors]
"_ga" = 755
"#;
        let mut cfg = crate::config::parse(text, "t.toml".as_ref()).unwrap();
        let gauge = prometheus::IntGauge::new("t_jurisdiction_cache", "test").unwrap();
        let policy =
            crate::policy::SitePolicy::build(cfg.sites.remove(0), cfg.proxy.request_limits, gauge)
                .unwrap();
        let plan = |model, gpc| {
            let cookies = [&b"_ga=1; _fbp=2; mystery=3"[..]];
            let (plan, reports) = crate::decide::plan_request_in(
                &policy,
                model,
                cookies,
                gpc,
                &http::HeaderMap::new(),
                true,
            );
            let actions: Vec<RequestAction> = reports.iter().map(|r| r.action).collect();
            (plan, actions)
        };
        use RequestAction::*;
        // Opt-in without consent: both expired, the unknown one stripped.
        let (p, a) = plan(Model::OptIn, false);
        assert_eq!(a, [Expire, Expire, Strip]);
        assert_eq!(p.expire.len(), 2);
        // Opt-out: `_ga` needs no TCF vendor consent without a TC string; unknown cookies are
        // still stripped (unknown_cookies = "strip"); GPC withdraws marketing.
        let (_, a) = plan(Model::OptOut, false);
        assert_eq!(a, [Forward, Forward, Strip]);
        let (p, a) = plan(Model::OptOut, true);
        assert_eq!(a, [Forward, Expire, Strip]);
        assert_eq!(p.consent.model, Model::OptOut);
        // Off: nothing gated.
        let (p, a) = plan(Model::Off, true);
        assert_eq!(a, [Forward, Forward, Forward]);
        assert!(p.upstream_cookie.is_none() && p.expire.is_empty());
    }

    #[test]
    fn areas_parse() {
        assert_eq!(Area::parse("*"), Some(Area::Anywhere));
        assert!(matches!(Area::parse("de"), Some(Area::Country(_))));
        assert!(matches!(Area::parse("US-CA"), Some(Area::Region(_))));
        for bad in ["", "USA", "US-", "California", "XX", "US_CA"] {
            assert_eq!(Area::parse(bad), None, "{bad}");
        }
    }
}
