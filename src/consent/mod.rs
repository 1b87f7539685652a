//! Consent: what the visitor agreed to, read from the consent cookie(s) and `Sec-GPC`.
//!
//! Everything here is pure and synchronous: a request's cookies and headers go in, a
//! [`ConsentState`] comes out. Privacy fails closed: a source that cannot be read grants nothing
//! (DESIGN.md, "Consent model"), and the error is kept so it can be counted and explained.

pub mod complianz;
pub mod cookiebot;
pub mod cookieyes;
pub mod didomi;
pub mod first_party;
pub mod gpc;
pub mod gpp;
pub mod header;
pub mod klaro;
pub mod onetrust;
pub mod registry;
pub mod subject;
pub mod tcf;

use crate::cookies::header::CookieJar;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// The consent categories. `Necessary` is always granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Necessary,
    Preferences,
    Analytics,
    Marketing,
}

impl Category {
    /// All categories, in a fixed order (used for metric labels and JSON output).
    pub const ALL: [Category; 4] = [
        Category::Necessary,
        Category::Preferences,
        Category::Analytics,
        Category::Marketing,
    ];
    /// The categories that need consent.
    pub const OPTIONAL: [Category; 3] = [
        Category::Preferences,
        Category::Analytics,
        Category::Marketing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Necessary => "necessary",
            Category::Preferences => "preferences",
            Category::Analytics => "analytics",
            Category::Marketing => "marketing",
        }
    }

    /// Parses a category name as written in configuration (case-insensitive).
    pub fn parse(s: &str) -> Option<Category> {
        let s = s.trim();
        Category::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of granted categories. `Necessary` is always a member.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grants(u8);

impl Grants {
    /// Only what needs no consent.
    pub const NONE: Grants = Grants(1);
    /// Every category.
    pub const ALL: Grants = Grants(0b1111);

    pub fn from_categories(cats: impl IntoIterator<Item = Category>) -> Grants {
        let mut g = Grants::NONE;
        for c in cats {
            g.grant(c);
        }
        g
    }

    pub fn grant(&mut self, c: Category) {
        self.0 |= c.bit();
    }

    /// Withdraws `c` (a no-op for `Necessary`, which cannot be refused).
    pub fn deny(&mut self, c: Category) {
        if c != Category::Necessary {
            self.0 &= !c.bit();
        }
    }

    pub fn set(&mut self, c: Category, granted: bool) {
        if granted {
            self.grant(c)
        } else {
            self.deny(c)
        }
    }

    pub fn allows(self, c: Category) -> bool {
        self.0 & c.bit() != 0
    }

    /// The most restrictive combination of two sources: granted only where both grant.
    pub fn intersect(self, other: Grants) -> Grants {
        Grants(self.0 & other.0 | 1)
    }

    pub fn is_all(self) -> bool {
        self.0 == Grants::ALL.0
    }

    pub fn is_none(self) -> bool {
        self.0 == Grants::NONE.0
    }

    /// A JSON-friendly view: `{"necessary": true, "preferences": false, ...}`.
    pub fn to_map(self) -> serde_json::Map<String, serde_json::Value> {
        Category::ALL
            .iter()
            .map(|c| {
                (
                    c.as_str().to_string(),
                    serde_json::Value::Bool(self.allows(*c)),
                )
            })
            .collect()
    }
}

impl Default for Grants {
    fn default() -> Self {
        Grants::NONE
    }
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Category::ALL
            .iter()
            .filter(|c| self.allows(**c))
            .map(|c| c.as_str())
            .collect();
        write!(f, "Grants({})", names.join(","))
    }
}

impl Serialize for Grants {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

/// What one source says about each optional category: granted, refused, or nothing at all.
///
/// A source says nothing about a category when it does not carry the purposes or groups mapped
/// to it: a CMP in TCF mode keeps the IAB purposes in the TC string and only the site's custom
/// purposes in its own cookie. Such a source neither grants nor vetoes that category; the
/// sources that do carry it decide (docs/CONSENT.md, "Several sources").
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Verdict {
    /// Bits of [`Category`]: categories this source grants.
    granted: u8,
    /// Bits of [`Category`]: categories this source refuses.
    refused: u8,
}

impl Verdict {
    /// Says nothing about any category.
    pub const NOTHING: Verdict = Verdict {
        granted: 0,
        refused: 0,
    };

    /// A source that carries every category: what `g` lacks is refused.
    pub fn covering_all(g: Grants) -> Verdict {
        let optional = Grants::ALL.0 & !Category::Necessary.bit();
        Verdict {
            granted: g.0 & optional,
            refused: !g.0 & optional,
        }
    }

    /// Records this source's choice for `c` (`Necessary` is never refused, so it is ignored).
    pub fn set(&mut self, c: Category, granted: bool) {
        if c == Category::Necessary {
            return;
        }
        if granted {
            self.granted |= c.bit();
            self.refused &= !c.bit();
        } else {
            self.refused |= c.bit();
            self.granted &= !c.bit();
        }
    }

    /// Whether this source carries a choice for `c`.
    pub fn carries(self, c: Category) -> bool {
        (self.granted | self.refused) & c.bit() != 0
    }

    pub fn refuses(self, c: Category) -> bool {
        self.refused & c.bit() != 0
    }

    /// Combines two sources (or two copies of one cookie): a category any of them refuses is
    /// refused; one that some grant and none refuses is granted; one neither carries stays
    /// unsaid. Associative and commutative, so the order of sources never matters.
    pub fn merge(self, other: Verdict) -> Verdict {
        let refused = self.refused | other.refused;
        Verdict {
            granted: (self.granted | other.granted) & !refused,
            refused,
        }
    }

    /// The decision: only what is granted; a category nobody carries is not granted (fail
    /// closed).
    pub fn grants(self) -> Grants {
        Grants(self.granted | Grants::NONE.0)
    }

    /// The opt-out decision (`crate::jurisdiction`): every category no source refused.
    pub fn unless_refused(self) -> Grants {
        Grants(!self.refused & Grants::ALL.0 | Grants::NONE.0)
    }

    /// Optional categories this source says nothing about (for `explain`).
    pub fn not_carried(self) -> Vec<Category> {
        Category::OPTIONAL
            .into_iter()
            .filter(|c| !self.carries(*c))
            .collect()
    }
}

impl From<Grants> for Verdict {
    fn from(g: Grants) -> Verdict {
        Verdict::covering_all(g)
    }
}

/// Why a consent source could not be read. The message is shown by `explain` and in logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentError(pub String);

impl ConsentError {
    pub fn new(msg: impl Into<String>) -> Self {
        ConsentError(msg.into())
    }
}

impl fmt::Display for ConsentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConsentError {}

/// A set of IAB TCF vendor ids (a bitset; vendor ids are 1..=65535).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VendorSet {
    words: Vec<u64>,
}

impl VendorSet {
    /// An empty set with room for ids up to `max` (no reallocation while filling it).
    pub fn with_max(max: u16) -> VendorSet {
        VendorSet {
            words: vec![0; max as usize / 64 + 1],
        }
    }

    pub fn insert(&mut self, id: u16) {
        let (w, b) = (id as usize / 64, id as usize % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << b;
    }

    /// Inserts `start..=end`, a word at a time (a TC string range can cover 65,535 ids).
    pub fn insert_range(&mut self, start: u16, end: u16) {
        let (mut id, end) = (start as usize, end as usize);
        if self.words.len() <= end / 64 {
            self.words.resize(end / 64 + 1, 0);
        }
        while id <= end {
            let (w, b) = (id / 64, id % 64);
            let span = (64 - b).min(end - id + 1);
            let mask = if span == 64 {
                u64::MAX
            } else {
                ((1u64 << span) - 1) << b
            };
            self.words[w] |= mask;
            id += span;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// The ids in either set.
    pub fn union(&self, other: &VendorSet) -> VendorSet {
        let (long, short) = if self.words.len() >= other.words.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut words = long.words.clone();
        for (w, x) in words.iter_mut().zip(&short.words) {
            *w |= x;
        }
        VendorSet { words }
    }

    /// The ids in both sets.
    pub fn intersect(&self, other: &VendorSet) -> VendorSet {
        VendorSet {
            words: self
                .words
                .iter()
                .zip(&other.words)
                .map(|(a, b)| a & b)
                .collect(),
        }
    }

    pub fn contains(&self, id: u16) -> bool {
        let (w, b) = (id as usize / 64, id as usize % 64);
        self.words.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    /// The ids in ascending order (for `explain`).
    pub fn to_vec(&self) -> Vec<u16> {
        let mut out = Vec::new();
        for (w, word) in self.words.iter().enumerate() {
            let mut x = *word;
            while x != 0 {
                let b = x.trailing_zeros() as usize;
                out.push((w * 64 + b) as u16);
                x &= x - 1;
            }
        }
        out
    }
}

/// Where a consent source's value was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Cookie,
    Header,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Cookie => "cookie",
            Via::Header => "header",
        }
    }
}

/// What one consent source contributed to a decision.
#[derive(Clone, Debug)]
pub struct SourceOutcome {
    /// The format name as used in configuration (`"first-party"`, `"tcf"`, `"onetrust"`, ...).
    pub format: &'static str,
    /// The cookie it was read from (for a header source: the header's name).
    pub cookie: Arc<str>,
    /// Every cookie the source decides from, when that is more than `cookie`: GPP's
    /// `__gpp_sid` and `OTGPPConsent` beside `__gpp`, every configured TCF name, Complianz's
    /// category cookies (`cookie` is then their pattern, `cmplz_*`). `None`: `cookie` alone. A
    /// consent receipt's signal is made of every cookie listed (src/receipts/recorder.rs): one
    /// that changes the decision must change the signal. Built once by the reader; cloning it
    /// costs a reference count.
    pub signal_cookies: Option<Arc<[Arc<str>]>>,
    /// Where the value came from: a cookie (browsers) or a request header (apps).
    pub via: Via,
    /// What it granted; `Grants::NONE` when it failed to parse.
    pub granted: Grants,
    /// Per category: granted, refused, or not carried by this source. A source that failed
    /// refuses everything.
    pub verdict: Verdict,
    pub error: Option<ConsentError>,
    /// IAB TCF vendor consents, when the source carries them (for rules that require a vendor).
    pub vendors: Option<Arc<VendorSet>>,
    /// Decoded fields for `explain`; only filled when asked for (never on the request path).
    pub details: Option<serde_json::Value>,
}

impl SourceOutcome {
    /// A source that was read successfully and carries every category.
    pub fn granted(format: &'static str, cookie: &Arc<str>, granted: Grants) -> Self {
        Self::with_verdict(format, cookie, Verdict::covering_all(granted))
    }

    /// A source that was read successfully.
    pub fn with_verdict(format: &'static str, cookie: &Arc<str>, verdict: Verdict) -> Self {
        SourceOutcome {
            format,
            cookie: cookie.clone(),
            signal_cookies: None,
            via: Via::Cookie,
            granted: verdict.grants(),
            verdict,
            error: None,
            vendors: None,
            details: None,
        }
    }

    /// A source that was present but unreadable: it grants nothing (fail closed).
    pub fn failed(format: &'static str, cookie: &Arc<str>, error: ConsentError) -> Self {
        SourceOutcome {
            format,
            cookie: cookie.clone(),
            signal_cookies: None,
            via: Via::Cookie,
            granted: Grants::NONE,
            verdict: Verdict::covering_all(Grants::NONE),
            error: Some(error),
            vendors: None,
            details: None,
        }
    }

    /// Whether the request cookie `name` is one this source decides from (always `false` for
    /// a header source).
    pub fn decides_from_cookie(&self, name: &[u8]) -> bool {
        self.via == Via::Cookie
            && match &self.signal_cookies {
                None => self.cookie.as_bytes() == name,
                Some(names) => names.iter().any(|n| n.as_bytes() == name),
            }
    }

    pub fn from_result(
        format: &'static str,
        cookie: &Arc<str>,
        r: Result<Verdict, ConsentError>,
    ) -> Self {
        match r {
            Ok(v) => Self::with_verdict(format, cookie, v),
            Err(e) => Self::failed(format, cookie, e),
        }
    }
}

/// A consent format reader, built once from configuration. Adding a format is adding a file
/// with one of these.
pub trait ConsentReader: Send + Sync {
    /// The format name used in configuration and output (`"tcf"`, `"onetrust"`, ...).
    fn format(&self) -> &'static str;

    /// The cookie names this reader owns (a trailing `*` makes a prefix). They are classified
    /// necessary: the consent cookie itself must always pass.
    fn cookie_patterns(&self) -> Vec<String>;

    /// Reads this source from the request's cookies; `None` when none of its cookies is present.
    /// With `detail`, also fills `SourceOutcome::details` for `explain`.
    fn read(&self, jar: &CookieJar<'_>, detail: bool) -> Option<SourceOutcome>;

    /// Reads one value of this format that did not come in a cookie (a request header sent by
    /// an app, `[[site.consent.header]]`), reported under `source`. `None`: the format is not
    /// read from headers.
    fn read_value(&self, _raw: &[u8], _source: &Arc<str>, _detail: bool) -> Option<SourceOutcome> {
        None
    }
}

impl std::fmt::Debug for dyn ConsentReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConsentReader({})", self.format())
    }
}

/// The visitor's consent for one request.
#[derive(Clone, Debug, Default)]
pub struct ConsentState {
    /// The decision: which categories may set, send and load cookies and trackers.
    pub grants: Grants,
    /// Each source present on the request (absent sources are not listed).
    pub sources: Vec<SourceOutcome>,
    /// `Sec-GPC: 1` was on the request.
    pub gpc: bool,
    /// TCF vendor consents, if a TCF source was read successfully.
    pub vendors: Option<Arc<VendorSet>>,
    /// Every source merged (before GPC): what the jurisdiction's model starts from.
    pub verdict: Verdict,
    /// The consent model applied (`crate::jurisdiction`; opt-in without rules).
    pub model: crate::jurisdiction::Model,
}

/// Reads every configured source and combines them per category ([`Verdict::merge`]): a
/// category is granted when at least one source grants it and none refuses it; a source that
/// fails refuses everything; a category no source carries, or no source at all, grants
/// nothing. Then GPC applies.
pub fn read_consent(
    readers: &[Box<dyn ConsentReader>],
    jar: &CookieJar<'_>,
    gpc: bool,
    gpc_policy: gpc::GpcPolicy,
    detail: bool,
) -> ConsentState {
    let no_headers = http::HeaderMap::new();
    read_consent_with_headers(readers, &[], &no_headers, jar, gpc, gpc_policy, detail)
}

/// [`read_consent`] with the header sources of apps (`[[site.consent.header]]`) read from the
/// request's `headers`: each present one is one more source, combined by the same rule.
pub fn read_consent_with_headers(
    readers: &[Box<dyn ConsentReader>],
    header_sources: &[header::HeaderSource],
    headers: &http::HeaderMap,
    jar: &CookieJar<'_>,
    gpc: bool,
    gpc_policy: gpc::GpcPolicy,
    detail: bool,
) -> ConsentState {
    let mut sources = Vec::new();
    let mut verdict = Verdict::NOTHING;
    let mut vendors = None;
    let from_cookies = readers.iter().filter_map(|r| r.read(jar, detail));
    let from_headers = header_sources
        .iter()
        .filter_map(|h| h.read(headers, detail));
    for outcome in from_cookies.chain(from_headers) {
        verdict = verdict.merge(outcome.verdict);
        if outcome.vendors.is_some() && outcome.error.is_none() {
            vendors = outcome.vendors.clone();
        }
        sources.push(outcome);
    }
    ConsentState {
        grants: gpc::apply(gpc_policy, gpc, verdict.grants()),
        sources,
        gpc,
        vendors,
        verdict,
        model: crate::jurisdiction::Model::OptIn,
    }
}

impl ConsentState {
    /// Whether any source failed to parse (fail closed: it granted nothing).
    pub fn has_error(&self) -> bool {
        self.sources.iter().any(|s| s.error.is_some())
    }

    /// A small fixed label for metrics: `none`, `partial`, `all` or `invalid`.
    pub fn label(&self) -> crate::labels::ConsentLabel {
        use crate::labels::ConsentLabel;
        if self.has_error() {
            ConsentLabel::Invalid
        } else if self.grants.is_all() {
            ConsentLabel::All
        } else if self.grants.is_none() {
            ConsentLabel::None
        } else {
            ConsentLabel::Partial
        }
    }
}

/// A cookie value URL-decoded to text (CMPs URL-encode their cookies; decoding text that is not
/// encoded changes nothing).
pub(crate) fn url_decoded(raw: &[u8]) -> Result<std::borrow::Cow<'_, str>, ConsentError> {
    // Borrowed (no copy) when there is nothing to decode.
    percent_encoding::percent_decode(raw)
        .decode_utf8()
        .map_err(|_| ConsentError::new("value is not UTF-8 after URL-decoding"))
}

/// Combines per-key flags into a verdict: a category is granted when at least one key mapped
/// to it is present and every present key mapped to it is granted (several groups or services
/// can share a category; the most restrictive wins); refused when a present key is refused;
/// not carried when no key mapped to it is present.
pub(crate) fn combine_flags(flags: impl IntoIterator<Item = (Category, bool)>) -> Verdict {
    let mut v = Verdict::NOTHING;
    for (c, granted) in flags {
        if granted && v.refuses(c) {
            continue;
        }
        v.set(c, granted);
    }
    v
}

/// Reads every value of a cookie with `parse`; duplicates (same name on several paths or
/// domains) merge like separate sources, so a refusal in any copy wins; any unreadable one
/// fails the source. `None` when the cookie is absent.
pub(crate) fn read_each(
    jar: &CookieJar<'_>,
    name: &str,
    mut parse: impl FnMut(&[u8]) -> Result<Verdict, ConsentError>,
) -> Option<Result<Verdict, ConsentError>> {
    let mut result: Option<Result<Verdict, ConsentError>> = None;
    for value in jar.values(name) {
        let r = parse(value);
        result = Some(match (result, r) {
            (None, r) => r,
            (Some(Err(e)), _) | (Some(Ok(_)), Err(e)) => Err(e),
            (Some(Ok(a)), Ok(b)) => Ok(a.merge(b)),
        });
    }
    result
}

/// A consent format whose record is one URL-encoded cookie value (Cookiebot, CookieYes, Klaro,
/// Didomi): the format supplies the parsing, [`CookieReader`] the shared reading rules.
pub trait CookieFormat: Send + Sync + 'static {
    type Config: Clone + Send + Sync;
    /// The format name used in configuration and output.
    const NAME: &'static str;
    fn cookie(cfg: &Self::Config) -> &str;
    /// What the URL-decoded value says per category.
    fn parse(text: &str, cfg: &Self::Config) -> Result<Verdict, ConsentError>;
    /// Decoded fields for `explain`.
    fn details(text: &str) -> Option<serde_json::Value>;
}

/// The reader of a [`CookieFormat`]: every duplicate read, the most restrictive wins.
pub struct CookieReader<F: CookieFormat> {
    cfg: F::Config,
    cookie: Arc<str>,
}

impl<F: CookieFormat> CookieReader<F> {
    pub fn new(cfg: &F::Config) -> Result<Self, String> {
        let cookie = F::cookie(cfg);
        if cookie.is_empty() {
            return Err(format!(
                "[site.consent.{}] `cookie` may not be empty",
                F::NAME
            ));
        }
        Ok(CookieReader {
            cookie: cookie.into(),
            cfg: cfg.clone(),
        })
    }
}

impl<F: CookieFormat> ConsentReader for CookieReader<F> {
    fn format(&self) -> &'static str {
        F::NAME
    }

    fn cookie_patterns(&self) -> Vec<String> {
        vec![self.cookie.to_string()]
    }

    fn read(&self, jar: &CookieJar<'_>, detail: bool) -> Option<SourceOutcome> {
        let r = read_each(jar, &self.cookie, |raw| {
            F::parse(&url_decoded(raw)?, &self.cfg)
        })?;
        let mut o = SourceOutcome::from_result(F::NAME, &self.cookie, r);
        if detail {
            if let Some(Ok(text)) = jar.values(&self.cookie).next().map(url_decoded) {
                o.details = F::details(&text);
            }
        }
        Some(o)
    }
}

/// Category names in mapping tables of the CMP configs (`statistics = "analytics"`).
impl<'de> serde::Deserialize<'de> for Category {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Category::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown category `{s}`; use necessary, preferences, analytics or marketing"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(granted: &[Category], refused: &[Category]) -> Verdict {
        let mut v = Verdict::NOTHING;
        for c in granted {
            v.set(*c, true);
        }
        for c in refused {
            v.set(*c, false);
        }
        v
    }

    #[test]
    fn sources_combine_per_category() {
        use Category::*;
        // A CMP cookie silent about analytics and marketing, refusing nothing; a TC string
        // granting everything: everything is granted.
        let cmp = verdict(&[Preferences], &[]);
        let tc = Verdict::covering_all(Grants::ALL);
        assert!(cmp.merge(tc).grants().is_all());
        // The CMP cookie refuses what the TC string grants: refused.
        let cmp = verdict(&[], &[Marketing]);
        assert!(!cmp.merge(tc).grants().allows(Marketing));
        assert!(cmp.merge(tc).grants().allows(Analytics));
        // Nobody carries a category: not granted (fail closed).
        assert_eq!(verdict(&[], &[]).grants(), Grants::NONE);
        assert!(!verdict(&[Analytics], &[]).grants().allows(Marketing));
        // Order never matters.
        let a = verdict(&[Analytics, Marketing], &[Preferences]);
        let b = verdict(&[Preferences], &[Marketing]);
        let c = Verdict::covering_all(Grants::from_categories([Analytics]));
        assert_eq!(a.merge(b).merge(c), c.merge(b).merge(a));
        assert_eq!(a.merge(b).grants(), Grants::from_categories([Analytics]));
    }

    #[test]
    fn several_flags_for_one_category_need_all_granted() {
        use Category::*;
        let v = combine_flags([(Marketing, true), (Marketing, false), (Marketing, true)]);
        assert!(v.refuses(Marketing));
        let v = combine_flags([(Analytics, true)]);
        assert!(v.grants().allows(Analytics) && !v.carries(Marketing));
    }
}
