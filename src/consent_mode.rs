//! Google Consent Mode v2 (issue 11): the server-side `gtag('consent','default',{...})` script
//! inserted at the top of rewritten HTML pages, and the audit of Google tag beacons (`gcs`,
//! `gcd`) against the consent consentgate decided. Pure: no pingora type; the HTML insertion
//! itself is in [`crate::html`], the blocking in `proxy.rs`.
//!
//! Signals (Google, "Consent mode reference", support.google.com/tagmanager/answer/13802165):
//! analytics -> `analytics_storage`; marketing -> `ad_storage`, `ad_user_data`,
//! `ad_personalization`; preferences -> `functionality_storage`, `personalization_storage`;
//! `security_storage` is always granted (strictly necessary).
//!
//! Beacon parameters (not specified by Google; documented from observed traffic):
//! - `gcs=G1xy`: x = `ad_storage`, y = `analytics_storage`; `1` granted, `0` denied, `-` not
//!   set. Sources: ga4audits.com "GCS Parameter Decoded"; simoahava.com "Consent Mode V2 for
//!   Google Tags" (guest post by Markus Baersch).
//! - `gcd`, e.g. `13t3t3t3t5l1`: after a two-character prefix, one letter per signal at every
//!   second position, in the order `ad_storage`, `analytics_storage`, `ad_user_data`,
//!   `ad_personalization`, separated by digits. The letter says how the state was reached
//!   (same sources, and pietromingotti.com "Consent Mode Parameters"): `l` not set; `p` denied
//!   by default; `q` denied by default and by update; `t` granted by default; `r` denied by
//!   default, granted by update; `m` denied by update (no default); `n` granted by update (no
//!   default); `u` granted by default, denied by update; `v` granted by default and by update.
//!   Any other letter reads as unknown (neither a grant nor a denial).

use crate::consent::{Category, Grants};
use crate::trackers::normalize::router_forms;
use crate::trackers::{BlockMatch, RequestKind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `[site.consent_mode]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentModeConfig {
    /// Opt-in per site.
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub mode: BeaconMode,
    /// Request paths audited as Google tag beacons: an entry matches a path equal to it, or
    /// starting with it when the entry ends with `/`, in any of the path's router forms and
    /// ignoring case ([`ConsentMode::is_beacon_path`]).
    #[serde(default = "default_beacon_paths")]
    pub beacon_paths: Vec<String>,
}

/// What happens to a consistent beacon (one that claims no grant the visitor did not give).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BeaconMode {
    /// Google's basic consent mode: no Google tag measures a visitor before consent. A beacon
    /// from a visitor without the consent its tag needs ([`tag_category`]) is blocked, with or
    /// without a blocklist that lists it; other beacons are left to the blocklists.
    #[default]
    Basic,
    /// A cookieless ping (every signal the visitor has not granted sent as denied) goes to the
    /// origin even when a blocklist would block it. A beacon without `gcs`/`gcd` claims
    /// nothing, so it is no cookieless ping: withheld from a visitor without its tag's consent.
    Advanced,
}

/// The default audited paths: GA4 (`/g/collect`), Universal Analytics (`/collect`,
/// `/j/collect`, `/r/collect`) as a first-party or server-side GTM endpoint serves them, and
/// anything under `/gtm/` (a common server-side GTM prefix).
pub fn default_beacon_paths() -> Vec<String> {
    [
        "/g/collect",
        "/collect",
        "/j/collect",
        "/r/collect",
        "/gtm/",
    ]
    .map(String::from)
    .to_vec()
}

/// The most beacon paths a site may list (each request is compared with all of them).
pub const MAX_BEACON_PATHS: usize = 32;

impl ConsentModeConfig {
    /// Checks the paths; the error names the offending entry.
    pub fn validate(&self) -> Result<(), String> {
        if self.beacon_paths.len() > MAX_BEACON_PATHS {
            return Err(format!(
                "beacon_paths lists {} paths; at most {MAX_BEACON_PATHS}",
                self.beacon_paths.len()
            ));
        }
        for p in &self.beacon_paths {
            if !p.starts_with('/') || p.contains(['?', '#', ' ']) || p.len() > 256 {
                return Err(format!(
                    "beacon path `{p}` must start with `/` and hold no `?`, `#` or space"
                ));
            }
        }
        Ok(())
    }
}

/// A granted/denied value for one of the 8 grant sets, indexed like [`grants_index`].
const SETS: usize = 8;

/// The index of a grant set among the 8 combinations of the optional categories.
pub fn grants_index(grants: Grants) -> usize {
    Category::OPTIONAL
        .iter()
        .enumerate()
        .filter(|(_, c)| grants.allows(**c))
        .fold(0usize, |m, (i, _)| m | 1 << i)
}

/// The grant set of an index (inverse of [`grants_index`]).
pub fn grants_of_index(i: usize) -> Grants {
    Grants::from_categories(
        Category::OPTIONAL
            .iter()
            .enumerate()
            .filter(|(b, _)| i & (1 << b) != 0)
            .map(|(_, c)| *c),
    )
}

/// A site's consent mode, compiled once per configuration load.
#[derive(Clone, Debug)]
pub struct ConsentMode {
    pub mode: BeaconMode,
    beacon_paths: Vec<String>,
    /// The script text per grant set.
    scripts: [Arc<str>; SETS],
    /// `<script>TEXT</script>` per grant set (no nonce).
    elements: [Arc<str>; SETS],
    /// `'sha256-BASE64'` of each script text, for `script-src`.
    hashes: [String; SETS],
}

fn state(granted: bool) -> &'static str {
    if granted {
        "granted"
    } else {
        "denied"
    }
}

/// The defaults script for a grant set. The text is fixed per grant set: its hash is what the
/// CSP allows, so it must not vary per request.
pub fn defaults_script(grants: Grants) -> String {
    let a = state(grants.allows(Category::Analytics));
    let m = state(grants.allows(Category::Marketing));
    let p = state(grants.allows(Category::Preferences));
    format!(
        "window.dataLayer=window.dataLayer||[];function gtag(){{dataLayer.push(arguments);}}\
gtag('consent','default',{{'analytics_storage':'{a}','ad_storage':'{m}','ad_user_data':'{m}',\
'ad_personalization':'{m}','functionality_storage':'{p}','personalization_storage':'{p}',\
'security_storage':'granted'}});"
    )
}

/// The CSP source allowing a script text: `'sha256-` + base64(SHA-256(text)) + `'`.
pub fn hash_source(script: &str) -> String {
    use base64::Engine;
    let digest = ring::digest::digest(&ring::digest::SHA256, script.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

impl ConsentMode {
    /// `None` when the site has not enabled it. `cfg` is validated.
    pub fn build(cfg: &ConsentModeConfig) -> Option<ConsentMode> {
        if !cfg.enabled {
            return None;
        }
        let scripts: [Arc<str>; SETS] =
            std::array::from_fn(|i| Arc::from(defaults_script(grants_of_index(i))));
        let elements =
            std::array::from_fn(|i| Arc::from(format!("<script>{}</script>", scripts[i])));
        let hashes = std::array::from_fn(|i| hash_source(&scripts[i]));
        Some(ConsentMode {
            mode: cfg.mode,
            beacon_paths: cfg.beacon_paths.clone(),
            scripts,
            elements,
            hashes,
        })
    }

    pub fn script(&self, grants: Grants) -> &str {
        &self.scripts[grants_index(grants)]
    }

    /// The `script-src` source of each grant set's script, indexed like [`grants_index`].
    pub fn hash_sources(&self) -> &[String; SETS] {
        &self.hashes
    }

    /// The element to insert: the precomputed one, or with the page's `nonce` (already
    /// checked by [`page_nonce`]: base64 characters only, nothing to escape).
    pub fn element(&self, grants: Grants, nonce: Option<&str>) -> Arc<str> {
        let i = grants_index(grants);
        match nonce {
            None => self.elements[i].clone(),
            Some(n) => Arc::from(format!(
                "<script nonce=\"{n}\">{}</script>",
                self.scripts[i]
            )),
        }
    }

    /// Whether a request path is an audited beacon path: the path as sent or as the origin's
    /// router may read it ([`router_forms`]: unreserved escapes decoded, dot segments resolved,
    /// `//` merged, `;params` and a trailing `/` dropped, `%2F` decoded), compared without
    /// regard to ASCII case. Linear in the path: at most three forms, each compared with at
    /// most [`MAX_BEACON_PATHS`] entries of at most 256 bytes.
    ///
    /// Case: Google's own endpoints are case-sensitive, but the origin behind consentgate (a
    /// first-party endpoint, server-side GTM behind IIS or a case-insensitive router or CDN
    /// rule) may route `/G/COLLECT` to the same handler. The audit decides a privacy question
    /// and fails closed, and the blocklists ignore case too; the cost of folding is that a
    /// request to, say, `/Collect` is audited as a beacon.
    pub fn is_beacon_path(&self, path: &str) -> bool {
        let listed = |p: &str| self.beacon_paths.iter().any(|entry| path_matches(entry, p));
        listed(path) || router_forms(path).iter().any(|form| listed(form))
    }

    /// Audits a request: `None` when consent mode has nothing to say about it (not an audited
    /// path; or no `gcs`/`gcd` and a request type no beacon is sent as, such as the page or
    /// the tag's own script at that path). The one decision the proxy applies and `explain`
    /// shows ([`BeaconAudit::action`]). `kind` is the request's type
    /// ([`crate::trackers::infer_kind`]), asked only for an audited path without `gcs`/`gcd`.
    pub fn audit<'q>(
        &self,
        grants: Grants,
        path: &str,
        query: &'q str,
        kind: impl FnOnce() -> RequestKind,
    ) -> Option<BeaconAudit<'q>> {
        if !self.is_beacon_path(path) {
            return None;
        }
        let beacon = Beacon::parse(query);
        if !beacon.signalled && !may_be_beacon(kind()) {
            return None;
        }
        let verdict = beacon.verdict(grants);
        let needs = tag_category(beacon.tag_id);
        let action = match verdict {
            BeaconVerdict::Mismatch(signal) => BeaconAction::Mismatch(signal),
            // Basic mode: a tag the visitor has not consented to sends nothing, cookieless or
            // not, with or without consent parameters.
            _ if self.mode == BeaconMode::Basic && !grants.allows(needs) => {
                BeaconAction::Withhold(needs)
            }
            BeaconVerdict::Cookieless if self.mode == BeaconMode::Advanced => {
                BeaconAction::PassThrough
            }
            // Advanced mode, no `gcs`/`gcd`: the tag runs without Consent Mode (loaded before
            // the CMP), so it claims nothing and is no cookieless ping: a full measurement,
            // which needs the consent of its tag.
            BeaconVerdict::Unsignalled if !grants.allows(needs) => BeaconAction::Withhold(needs),
            _ => BeaconAction::Lists,
        };
        Some(BeaconAudit {
            verdict,
            tag_id: beacon.tag_id,
            needs,
            mode: self.mode,
            action,
        })
    }
}

/// Whether `path` matches a `beacon_paths` entry (equal, or under it when the entry ends with
/// `/`), ignoring ASCII case.
fn path_matches(entry: &str, path: &str) -> bool {
    if entry.ends_with('/') {
        path.as_bytes()
            .get(..entry.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(entry.as_bytes()))
    } else {
        path.eq_ignore_ascii_case(entry)
    }
}

/// Whether a request of this type may be a beacon: gtag.js and analytics.js send theirs with
/// `navigator.sendBeacon`, `fetch`/XHR or an image. A page, a frame, a script (the tag itself,
/// `gtm.js` under a server-side GTM prefix), a style sheet, a font or media is not one.
fn may_be_beacon(kind: RequestKind) -> bool {
    matches!(
        kind,
        RequestKind::Xhr | RequestKind::Ping | RequestKind::Image | RequestKind::Other
    )
}

/// The category a Google tag's beacon needs: marketing for the advertising tags (`AW-` Google
/// Ads, `DC-` Floodlight), analytics for the rest (GA4 `G-`, Universal Analytics `UA-`, the
/// Google tag `GT-`, a `GTM-` container, or no `tid`: the audited paths are analytics
/// endpoints).
pub fn tag_category(tid: Option<&str>) -> Category {
    match tid {
        Some(t) if t.starts_with("AW-") || t.starts_with("DC-") => Category::Marketing,
        _ => Category::Analytics,
    }
}

/// One Google consent signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    AdStorage,
    AnalyticsStorage,
    AdUserData,
    AdPersonalization,
}

impl Signal {
    /// In `gcd` order.
    pub const ALL: [Signal; 4] = [
        Signal::AdStorage,
        Signal::AnalyticsStorage,
        Signal::AdUserData,
        Signal::AdPersonalization,
    ];

    /// The consentgate category the signal stands for.
    pub fn category(self) -> Category {
        match self {
            Signal::AnalyticsStorage => Category::Analytics,
            _ => Category::Marketing,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::AdStorage => "ad_storage",
            Signal::AnalyticsStorage => "analytics_storage",
            Signal::AdUserData => "ad_user_data",
            Signal::AdPersonalization => "ad_personalization",
        }
    }
}

/// What a beacon says about one signal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Claim {
    pub granted: bool,
    pub denied: bool,
}

/// The consent parameters of one beacon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Beacon<'q> {
    /// Per signal, in [`Signal::ALL`] order, from `gcs` and `gcd` together.
    pub claims: [Claim; 4],
    /// `tid` as sent (percent-decoding is not needed for a well-formed id; one that needs it
    /// is not a label anyway).
    pub tag_id: Option<&'q str>,
    /// Whether the query holds `gcs` or `gcd` at all (a tag without Consent Mode sends
    /// neither).
    pub signalled: bool,
}

/// The letter of a `gcd` signal: `Some(true)` granted, `Some(false)` denied, `None` not set or
/// unknown.
pub fn gcd_letter(letter: u8) -> Option<bool> {
    match letter {
        b't' | b'r' | b'n' | b'v' => Some(true),
        b'p' | b'q' | b'm' | b'u' => Some(false),
        _ => None,
    }
}

impl<'q> Beacon<'q> {
    /// Reads `gcs`, `gcd` and `tid` from a query string (the first of each; linear in the
    /// query, which the request head limits bound).
    pub fn parse(query: &'q str) -> Beacon<'q> {
        let (mut gcs, mut gcd, mut tid) = (None, None, None);
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "gcs" if gcs.is_none() => gcs = Some(v),
                "gcd" if gcd.is_none() => gcd = Some(v),
                "tid" if tid.is_none() => tid = Some(v),
                _ => {}
            }
        }
        let mut b = Beacon {
            claims: [Claim::default(); 4],
            tag_id: tid,
            signalled: gcs.is_some() || gcd.is_some(),
        };
        let mut claim = |i: usize, v: Option<bool>| match v {
            Some(true) => b.claims[i].granted = true,
            Some(false) => b.claims[i].denied = true,
            None => {}
        };
        if let Some(g) = gcs
            .map(str::as_bytes)
            .filter(|g| g.len() == 4 && g[0] == b'G')
        {
            let bit = |c: u8| match c {
                b'1' => Some(true),
                b'0' => Some(false),
                _ => None,
            };
            claim(0, bit(g[2]));
            claim(1, bit(g[3]));
        }
        if let Some(d) = gcd.map(str::as_bytes) {
            for (i, pos) in [2usize, 4, 6, 8].into_iter().enumerate() {
                claim(i, d.get(pos).copied().and_then(gcd_letter));
            }
        }
        b
    }

    /// The beacon judged against the visitor's grants.
    pub fn verdict(&self, grants: Grants) -> BeaconVerdict {
        if !self.signalled {
            return BeaconVerdict::Unsignalled;
        }
        let mut unclear = false;
        for (signal, claim) in Signal::ALL.iter().zip(&self.claims) {
            if grants.allows(signal.category()) {
                continue;
            }
            if claim.granted {
                return BeaconVerdict::Mismatch(*signal);
            }
            if !claim.denied {
                unclear = true;
            }
        }
        if unclear {
            BeaconVerdict::Unclear
        } else {
            BeaconVerdict::Cookieless
        }
    }
}

/// A beacon judged against the visitor's consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeaconVerdict {
    /// It claims this signal granted while the visitor did not grant its category.
    Mismatch(Signal),
    /// Every signal the visitor has not granted is sent as denied (a cookieless ping).
    Cookieless,
    /// No false claim, but some signal the visitor has not granted is not set (or unreadable):
    /// not a cookieless ping, left to the blocklists (fails closed).
    Unclear,
    /// Neither `gcs` nor `gcd`: the tag runs without Consent Mode and claims nothing.
    Unsignalled,
}

impl BeaconVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            BeaconVerdict::Mismatch(_) => "mismatch",
            BeaconVerdict::Cookieless => "cookieless",
            BeaconVerdict::Unclear => "unclear",
            BeaconVerdict::Unsignalled => "no_consent_parameters",
        }
    }
}

/// What consent mode does with a beacon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeaconAction {
    /// Nothing against it: the blocklists decide, as for any request.
    Lists,
    /// Advanced mode, a cookieless ping: to the origin without a blocklist check.
    PassThrough,
    /// It claims this signal granted while the visitor did not grant its category: blocked
    /// before any list is checked, counted in `consentgate_consent_mode_mismatch_total`.
    Mismatch(Signal),
    /// The visitor has not granted the category its tag needs (basic mode; or advanced mode
    /// and no `gcs`/`gcd`): blocked after the blocklists had their say (a list that matches
    /// blocks and counts it as before), else under `list="consent-mode"`.
    Withhold(Category),
}

impl BeaconAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BeaconAction::Lists => "lists",
            BeaconAction::PassThrough => "pass_through",
            BeaconAction::Mismatch(_) => "mismatch",
            BeaconAction::Withhold(_) => "withhold",
        }
    }
}

/// The audit of one beacon: what it claims, against the visitor's consent, and what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeaconAudit<'q> {
    pub verdict: BeaconVerdict,
    pub tag_id: Option<&'q str>,
    /// The category its tag needs ([`tag_category`]).
    pub needs: Category,
    pub mode: BeaconMode,
    pub action: BeaconAction,
}

/// The list name consent-mode blocks are recorded under.
pub const LIST: &str = "consent-mode";

impl BeaconAudit<'_> {
    /// The block, for its record and answer: `None` unless the action blocks.
    pub fn block_match(&self) -> Option<BlockMatch> {
        let (category, rule) = match self.action {
            BeaconAction::Mismatch(signal) => (
                signal.category(),
                format!("{} claimed granted", signal.as_str()),
            ),
            BeaconAction::Withhold(category) => (category, self.withhold_rule(category)),
            BeaconAction::Lists | BeaconAction::PassThrough => return None,
        };
        Some(BlockMatch {
            category,
            list: LIST.to_string(),
            rule: Some(rule),
        })
    }

    fn withhold_rule(&self, category: Category) -> String {
        match (self.mode, self.verdict) {
            (BeaconMode::Advanced, _) => {
                format!("no gcs or gcd: no {} consent", category.as_str())
            }
            (BeaconMode::Basic, BeaconVerdict::Unsignalled) => {
                format!(
                    "basic mode, no gcs or gcd: no {} consent",
                    category.as_str()
                )
            }
            (BeaconMode::Basic, _) => format!("basic mode: no {} consent", category.as_str()),
        }
    }

    /// Why, in words (`explain`).
    pub fn why(&self) -> String {
        let tag = self.tag_id.unwrap_or("(no tid)");
        let needs = self.needs.as_str();
        match self.action {
            BeaconAction::Mismatch(signal) => format!(
                "the beacon claims {} granted; the visitor has not granted {}",
                signal.as_str(),
                signal.category().as_str()
            ),
            BeaconAction::Withhold(_) => match (self.mode, self.verdict) {
                (BeaconMode::Advanced, _) => format!(
                    "advanced mode: a beacon without gcs or gcd claims nothing and is no \
                     cookieless ping; tag {tag} needs {needs} consent, which the visitor has \
                     not given"
                ),
                _ => format!(
                    "basic mode: tag {tag} needs {needs} consent, which the visitor has not \
                     given, so it may not measure (cookieless or not)"
                ),
            },
            BeaconAction::PassThrough => "advanced mode: a cookieless ping (every signal the \
                visitor has not granted is sent as denied) goes to the origin without a \
                blocklist check"
                .to_string(),
            BeaconAction::Lists => match self.verdict {
                BeaconVerdict::Unclear => "a signal the visitor has not granted is not set (or \
                    unreadable): no cookieless ping, so not let through; the blocklists decide"
                    .to_string(),
                _ => format!(
                    "consistent with the visitor's consent (tag {tag} needs {needs}, granted): \
                     the blocklists decide"
                ),
            },
        }
    }
}

/// Whether a `tid` has the shape of a Google tag id (`G-`, `UA-`, `AW-`, `DC-`, `GT-`, `GTM-`
/// followed by up to 24 upper-case letters, digits or `-`), so it may become a metric label.
pub fn tag_id_shape(tid: &str) -> bool {
    let Some((prefix, rest)) = tid.split_once('-') else {
        return false;
    };
    ["G", "UA", "AW", "DC", "GT", "GTM"].contains(&prefix)
        && !rest.is_empty()
        && rest.len() <= 24
        && rest
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

/// The `nonce-` value a page's `Content-Security-Policy` header(s) allow scripts with: from the
/// directive that governs `<script>` elements (`script-src-elem`, else `script-src`, else
/// `default-src`) of the first policy that has one. Only a value of base64 characters (at
/// most 256) is taken: it goes into an attribute unescaped.
pub fn page_nonce<'h>(policies: impl IntoIterator<Item = &'h str>) -> Option<&'h str> {
    for policy in policies {
        let directives: Vec<(&str, &str)> = policy
            .split(';')
            .filter_map(|d| {
                let d = d.trim();
                let (name, value) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
                (!name.is_empty()).then_some((name, value))
            })
            .collect();
        let governing = ["script-src-elem", "script-src", "default-src"]
            .iter()
            .find_map(|n| {
                directives
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(n))
            });
        let Some((_, value)) = governing else {
            continue;
        };
        let nonce = value.split_whitespace().find_map(|s| {
            let s = s.strip_prefix('\'')?.strip_suffix('\'')?;
            let v = s
                .get(..6)
                .filter(|p| p.eq_ignore_ascii_case("nonce-"))
                .map(|_| &s[6..])?;
            let ok = !v.is_empty()
                && v.len() <= 256
                && v.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
                });
            ok.then_some(v)
        });
        if nonce.is_some() {
            return nonce;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(mode: BeaconMode) -> ConsentMode {
        ConsentMode::build(&ConsentModeConfig {
            enabled: true,
            mode,
            beacon_paths: default_beacon_paths(),
        })
        .unwrap()
    }

    #[test]
    fn script_maps_categories_to_signals() {
        let s = defaults_script(Grants::from_categories([Category::Analytics]));
        assert!(s.starts_with("window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('consent','default',{"));
        assert!(s.contains("'analytics_storage':'granted'"));
        for k in [
            "ad_storage",
            "ad_user_data",
            "ad_personalization",
            "functionality_storage",
            "personalization_storage",
        ] {
            assert!(s.contains(&format!("'{k}':'denied'")), "{k} in {s}");
        }
        assert!(s.contains("'security_storage':'granted'"));
        let all = defaults_script(Grants::ALL);
        assert!(!all.contains("denied"));
        let none = defaults_script(Grants::NONE);
        assert_eq!(
            none.matches("'granted'").count(),
            1,
            "only security_storage"
        );
    }

    #[test]
    fn index_round_trips() {
        for i in 0..SETS {
            assert_eq!(grants_index(grants_of_index(i)), i);
        }
    }

    #[test]
    fn hash_source_is_sha256_base64() {
        // Oracle: `printf %s abc | openssl dgst -sha256 -binary | base64` (FIPS 180-2 vector).
        assert_eq!(
            hash_source("abc"),
            "'sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0='"
        );
    }

    // Beacon query strings below are trimmed from real GA4 requests: `gcd=13t3t3t3t5l1&gcs=G111`
    // and `gcd=13t3t3t2t5l1` (GA4 hits recorded in public repositories' fixtures and audit
    // logs), `gcd=13l3l3l3l1l1` (td.doubleclick.net request on a OneTrust site, consent not
    // set), `11p1p1p1p5` (Markus Baersch's table, all denied by default).
    #[test]
    fn gcs_and_gcd_claims() {
        let b = Beacon::parse("v=2&tid=G-3042L5GP9T&gcs=G111&gcd=13t3t3t3t5l1&npa=0");
        assert!(b.claims.iter().all(|c| c.granted && !c.denied));
        assert_eq!(b.tag_id, Some("G-3042L5GP9T"));
        let b = Beacon::parse("gcd=13l3l3l3l1l1&dma=0");
        assert!(b.claims.iter().all(|c| !c.granted && !c.denied));
        let b = Beacon::parse("gcs=G100&gcd=11p1p1p1p5");
        assert!(b.claims.iter().all(|c| c.denied && !c.granted));
        let b = Beacon::parse("gcs=G101");
        assert_eq!(
            b.claims[0],
            Claim {
                granted: false,
                denied: true
            }
        );
        assert_eq!(
            b.claims[1],
            Claim {
                granted: true,
                denied: false
            }
        );
        assert_eq!(b.claims[2], Claim::default());
        let b = Beacon::parse("v=2&tid=G-1&en=page_view");
        assert!(!b.signalled && b.tag_id == Some("G-1"));
        assert_eq!(b.verdict(Grants::NONE), BeaconVerdict::Unsignalled);
    }

    #[test]
    fn verdicts() {
        let none = Grants::NONE;
        let analytics = Grants::from_categories([Category::Analytics]);
        let v = |q: &str, g| Beacon::parse(q).verdict(g);
        assert_eq!(
            v("gcs=G111", none),
            BeaconVerdict::Mismatch(Signal::AdStorage)
        );
        assert_eq!(
            v("gcs=G101", none),
            BeaconVerdict::Mismatch(Signal::AnalyticsStorage)
        );
        // Analytics granted: G101 is true, but ad_user_data is not set -> unclear.
        assert_eq!(v("gcs=G101", analytics), BeaconVerdict::Unclear);
        assert_eq!(
            v("gcs=G101&gcd=11p1r1p1p5", analytics),
            BeaconVerdict::Cookieless
        );
        assert_eq!(
            v("gcs=G100&gcd=11p1p1p1p5", none),
            BeaconVerdict::Cookieless
        );
        // gcd claims ad_user_data granted although gcs denies storage.
        assert_eq!(
            v("gcs=G100&gcd=11p1p1r1p5", none),
            BeaconVerdict::Mismatch(Signal::AdUserData)
        );
        assert_eq!(
            v("gcs=G111&gcd=13t3t3t3t5l1", Grants::ALL),
            BeaconVerdict::Cookieless
        );
        assert_eq!(v("gcd=13l3l3l3l1l1", none), BeaconVerdict::Unclear);
    }

    const XHR: RequestKind = RequestKind::Xhr;

    #[test]
    fn basic_mode_withholds_beacons_of_tags_without_consent() {
        let basic = cm(BeaconMode::Basic);
        let advanced = cm(BeaconMode::Advanced);
        let analytics = Grants::from_categories([Category::Analytics]);
        let ping = "tid=G-ABC123&gcs=G100&gcd=11p1p1p1p5";
        let action = |c: &ConsentMode, g, path, q| c.audit(g, path, q, || XHR).unwrap().action;
        // A cookieless GA4 ping from a visitor without analytics consent: withheld in basic,
        // let through (cookieless) in advanced.
        assert_eq!(
            action(&basic, Grants::NONE, "/g/collect", ping),
            BeaconAction::Withhold(Category::Analytics)
        );
        assert_eq!(
            action(&advanced, Grants::NONE, "/g/collect", ping),
            BeaconAction::PassThrough
        );
        // With analytics consent the GA4 tag may measure (ad signals denied): the lists decide.
        assert_eq!(
            action(&basic, analytics, "/g/collect", ping),
            BeaconAction::Lists
        );
        // An ads tag needs marketing.
        let ads = "tid=AW-123456789&gcs=G100";
        assert_eq!(
            action(&basic, analytics, "/gtm/x", ads),
            BeaconAction::Withhold(Category::Marketing)
        );
        // A mismatch stays a mismatch (not also withheld).
        assert_eq!(
            action(&basic, Grants::NONE, "/g/collect", "gcs=G111"),
            BeaconAction::Mismatch(Signal::AdStorage)
        );
    }

    /// A tag running without Consent Mode sends neither `gcs` nor `gcd` (the tag loaded before
    /// the CMP): withheld in both modes from a visitor without its tag's consent.
    #[test]
    fn beacons_without_consent_parameters_need_their_tags_consent() {
        let analytics = Grants::from_categories([Category::Analytics]);
        let bare = "v=2&tid=G-ABC123&en=page_view";
        for mode in [BeaconMode::Basic, BeaconMode::Advanced] {
            let c = cm(mode);
            let a = c.audit(Grants::NONE, "/g/collect", bare, || XHR).unwrap();
            assert_eq!(a.verdict, BeaconVerdict::Unsignalled);
            assert_eq!(
                a.action,
                BeaconAction::Withhold(Category::Analytics),
                "{mode:?}"
            );
            let m = a.block_match().unwrap();
            assert_eq!((m.list.as_str(), m.category), (LIST, Category::Analytics));
            let a = c.audit(analytics, "/g/collect", bare, || XHR).unwrap();
            assert_eq!(a.action, BeaconAction::Lists, "{mode:?}");
            assert!(a.block_match().is_none());
            // Sent as an image or a beacon too, or typed by nothing at all.
            for kind in [RequestKind::Image, RequestKind::Ping, RequestKind::Other] {
                assert!(c.audit(Grants::NONE, "/collect", "", || kind).is_some());
            }
            // The page or the tag's own script at an audited path is no beacon, unless it
            // carries consent parameters.
            for kind in [RequestKind::Script, RequestKind::Document] {
                assert!(c
                    .audit(Grants::NONE, "/gtm/gtm.js", "id=GTM-X", || kind)
                    .is_none());
                assert!(c
                    .audit(Grants::NONE, "/g/collect", "gcs=G100", || kind)
                    .is_some());
            }
        }
    }

    #[test]
    fn beacon_paths_and_tag_ids() {
        let c = cm(BeaconMode::Basic);
        assert!(c.is_beacon_path("/g/collect") && c.is_beacon_path("/gtm/g/collect"));
        assert!(!c.is_beacon_path("/g/collect/x") && !c.is_beacon_path("/page"));
        assert!(c.audit(Grants::NONE, "/page", "gcs=G111", || XHR).is_none());
        let a = c
            .audit(Grants::NONE, "/g/collect", "tid=G-ABC123&gcs=G111", || XHR)
            .unwrap();
        assert_eq!(a.tag_id, Some("G-ABC123"));
        for ok in ["G-3042L5GP9T", "UA-12345-1", "AW-123456789", "GTM-ABCD"] {
            assert!(tag_id_shape(ok), "{ok}");
        }
        for bad in [
            "",
            "G-",
            "X-1",
            "G-abc",
            "G-1\"",
            "G-AAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!tag_id_shape(bad), "{bad}");
        }
    }

    /// The spellings an origin's router may take for the same path are audited as that path.
    #[test]
    fn beacon_path_variants_are_audited() {
        let c = cm(BeaconMode::Basic);
        for p in [
            "/g/collect/",
            "//g/collect",
            "/G/COLLECT",
            "/g/%63ollect",
            "/g/collect;x",
            "/g/./collect",
            "/x/../g/collect",
            "/g%2Fcollect",
            "/g//collect",
            "/GTM/x",
            "//gtm//g/collect",
        ] {
            assert!(c.is_beacon_path(p), "{p}");
        }
        for p in [
            "/g/collectx",
            "/g/collect/x",
            "/gtm",
            "/g/%2563ollect",
            "/xg/collect",
        ] {
            assert!(!c.is_beacon_path(p), "{p}");
        }
    }

    #[test]
    fn nonce_from_the_governing_directive() {
        assert_eq!(
            page_nonce([
                "default-src 'self'; script-src 'self' 'nonce-r4nd0m+/=' 'strict-dynamic'"
            ]),
            Some("r4nd0m+/=")
        );
        assert_eq!(page_nonce(["default-src 'nonce-abc'"]), Some("abc"));
        // script-src without a nonce governs: default-src's nonce does not apply to scripts.
        assert_eq!(
            page_nonce(["default-src 'nonce-abc'; script-src 'self'"]),
            None
        );
        assert_eq!(page_nonce(["script-src 'nonce-a\"b'"]), None);
        assert_eq!(
            page_nonce(["img-src *", "script-src 'NONCE-xyz'"]),
            Some("xyz")
        );
    }

    #[test]
    fn element_with_nonce() {
        let c = cm(BeaconMode::Advanced);
        let e = c.element(Grants::NONE, Some("abc"));
        assert!(e.starts_with("<script nonce=\"abc\">window.dataLayer"));
        assert_eq!(
            &*c.element(Grants::NONE, None),
            &format!("<script>{}</script>", c.script(Grants::NONE))
        );
    }
}
