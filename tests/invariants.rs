//! Invariants of gating, checked with random inputs through the running proxy (issue 13,
//! "Invariants (proptest)"): random consent states, request cookie sets and `Set-Cookie` lines
//! with odd but legal syntax go through the real binary to a real origin on loopback, over
//! HTTP/1.1 (a quarter of the cases with the cookies on two `Cookie` lines) and over HTTP/2
//! (TLS, curl). For every case:
//!
//! - no cookie of a category without consent reaches the origin (`Cookie`) or the client
//!   (`Set-Cookie`; the proxy's own expiry lines, which delete such a cookie, aside);
//! - every `Set-Cookie` line the client gets for a consented or necessary cookie is
//!   byte-identical to the line the origin sent, in the same order, one line each (nothing
//!   folded or merged, nothing lost);
//! - the cookies with consent reach the origin with their values unchanged, in order.
//!
//! The oracle does not ask the proxy's classifier: every name is given its category by the
//! test's own table ([`TABLE`]), which is also what the site's `[site.cookies]` says, so a
//! disagreement is the proxy's. Names outside the table are unknown (`unknown_cookies =
//! "strip"`), which grants them nothing; so is a nameless request cookie (a pair without `=`).
//! The consent state comes from the first-party consent cookie (none, one or two copies, each in
//! the list or the flag form of docs/CONSENT.md with any of its separators and flag spellings,
//! URL-encoded or not, or unreadable), OneTrust's `OptanonConsent` (its `groups`), an
//! IAB TCF TC string a real CMP wrote (`euconsent-v2` or OneTrust's `eupubconsent-v2`, from
//! tests/fixtures/consent/tcf.jsonl, granting what that file records from the IAB reference
//! decoder), combined by the documented rule (docs/CONSENT.md), and `Sec-GPC: 1` (the default
//! policy, `deny-marketing`).
//!
//! One proxy and one origin serve all cases; the origin answers with the lines the current case
//! put in a shared slot. `PROPTEST_CASES` sets the number of HTTP/1.1 cases (default 256); the
//! HTTP/2 run does an eighth of that (at least 8), since each case starts a curl.

mod common;
#[path = "support/h2_client.rs"]
mod h2_client;
use common::*;
use h2_client::TlsProxy;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::sync::{Arc, Mutex};

const NECESSARY: &str = "necessary";
const PREFERENCES: &str = "preferences";
const ANALYTICS: &str = "analytics";
const MARKETING: &str = "marketing";

/// The test's own cookie table: (name, category). Names differing only in case are distinct
/// cookies (RFC 6265 5.3 compares names byte for byte), so `sessionid` is analytics while
/// `SESSIONID` is necessary, and `THEME` is marketing while `theme` is a preference.
const TABLE: &[(&str, &str)] = &[
    ("SESSIONID", NECESSARY),
    ("__Host-csrf", NECESSARY),
    ("__Secure-auth", NECESSARY),
    ("theme", PREFERENCES),
    ("Lang", PREFERENCES),
    ("_ga", ANALYTICS),
    ("_gid", ANALYTICS),
    ("sessionid", ANALYTICS),
    ("__Secure-stats", ANALYTICS),
    ("_fbp", MARKETING),
    ("THEME", MARKETING),
    ("__Host-adid", MARKETING),
];

/// Names in no table (not ours, not the built-in catalogue): unknown, stripped.
const UNKNOWN: &[&str] = &["zq_unknown", "Zq-Other"];

/// The consent cookie's name (necessary by definition).
const CONSENT: &str = "consent";
/// OneTrust's consent cookie (necessary by definition, as every CMP cookie).
const ONETRUST: &str = "OptanonConsent";
/// The cookies a TC string is read from (docs/CONSENT.md, "IAB TCF v2.2"): CMP cookies,
/// necessary by definition.
const TCF_COOKIES: &[&str] = &["euconsent-v2", "eupubconsent-v2"];
/// OneTrust's default groups and their categories (docs/CONSENT.md, "OneTrust").
const OT_GROUPS: &[(&str, &str)] = &[
    ("C0002", ANALYTICS),
    ("C0003", PREFERENCES),
    ("C0004", MARKETING),
    ("C0005", MARKETING),
];

/// A TC string a real CMP wrote, from tests/fixtures/consent/tcf.jsonl (provenance on each line
/// there), with the decision that file records for it. That decision is the IAB reference
/// decoder's (`@iabtcf/core`) purpose consents under the default purpose table, so the oracle
/// never asks consentgate's own decoder.
#[derive(Clone)]
struct TcfVector {
    /// The fixture's `name`, shown when a case fails.
    name: String,
    /// The cookie it was captured in (`euconsent-v2`, or `eupubconsent-v2` for OneTrust).
    cookie: String,
    value: String,
    /// The fixture's `expect`: (category, granted).
    expect: Vec<(&'static str, bool)>,
}

/// The fixture's name and decision, not the long string, in a shrunk case.
impl std::fmt::Debug for TcfVector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in {} {:?}", self.name, self.cookie, self.expect)
    }
}

impl TcfVector {
    fn grants(&self, cat: &str) -> bool {
        self.expect.iter().any(|(c, g)| *c == cat && *g)
    }
}

/// The fixture's vectors written by CMPs on real sites (Didomi, OneTrust, and the CMPs whose
/// accept and reject strings uBlock Origin's lists carry): every one but the IAB test-suite
/// strings (named `iab-*`), each a single TCF cookie.
fn tcf_vectors() -> Vec<TcfVector> {
    let text = std::fs::read_to_string(fixture("consent/tcf.jsonl")).unwrap();
    let vectors: Vec<TcfVector> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| !v["name"].as_str().unwrap().starts_with("iab-"))
        .map(|v| {
            let (cookie, value) = v["cookie"].as_str().unwrap().split_once('=').unwrap();
            assert!(
                TCF_COOKIES.contains(&cookie) && !value.contains(';'),
                "{v}: not a single TCF cookie"
            );
            TcfVector {
                name: v["name"].as_str().unwrap().to_string(),
                cookie: cookie.to_string(),
                value: value.to_string(),
                expect: [PREFERENCES, ANALYTICS, MARKETING]
                    .iter()
                    .map(|c| (*c, v["expect"][c].as_bool().unwrap()))
                    .collect(),
            }
        })
        .collect();
    // Both answers must be drawn for each category, or the oracle is not tested against them.
    for cat in [PREFERENCES, ANALYTICS, MARKETING] {
        assert!(vectors.iter().any(|v| v.grants(cat)));
        assert!(vectors.iter().any(|v| !v.grants(cat)));
    }
    vectors
}

fn category(name: &str) -> Option<&'static str> {
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// The site: every name of [`TABLE`] listed explicitly under its category.
fn site(origin: &Origin) -> String {
    let list = |cat: &str| {
        TABLE
            .iter()
            .filter(|(_, c)| *c == cat)
            .map(|(n, _)| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
[[site]]
name = "inv"
hosts = ["*"]
upstreams = ["{}"]
unknown_cookies = "strip"
cookie_domains = ["test.local"]

[site.consent]
cookie = "{CONSENT}"
sources = ["first-party", "onetrust", "tcf"]

[site.cookies]
necessary = [{}]
preferences = [{}]
analytics = [{}]
marketing = [{}]
"#,
        origin.addr,
        list(NECESSARY),
        list(PREFERENCES),
        list(ANALYTICS),
        list(MARKETING)
    )
}

/// One copy of the first-party consent cookie. A visitor may carry several (the same name set
/// on several paths or domains, e.g. an old one on `.example.com` and a new one on
/// `www.example.com`); docs/CONSENT.md: each copy is read as a source of its own.
#[derive(Debug, Clone)]
enum FirstParty {
    /// List form: the listed categories granted, every other refused; `all` spelled out when
    /// all three are listed and `all` is set. Items joined by `sep` (`,`, `|`, `+`, or `,`/`|`
    /// URL-encoded).
    List {
        granted: Vec<&'static str>,
        all: bool,
        sep: &'static str,
    },
    /// Flag form: each named category granted or refused, in one of the documented spellings
    /// (`words`: index into [`FLAG_WORDS`]); a category it does not name is not carried.
    Flags {
        named: Vec<(&'static str, bool)>,
        words: usize,
        sep: &'static str,
    },
    /// Unreadable (an unknown item or flag): the source refuses every category.
    Malformed(&'static str),
}

/// Separators of the first-party items, as docs/CONSENT.md lists them (URL-encoded or not).
const FP_SEPS: &[&str] = &[",", "|", "+", "%2C", "%7C"];
/// The flag spellings docs/CONSENT.md accepts: (granted, refused).
const FLAG_WORDS: &[(&str, &str)] = &[
    ("1", "0"),
    ("true", "false"),
    ("yes", "no"),
    ("granted", "denied"),
    ("allow", "deny"),
];
/// First-party values that are errors ("anything else is an error"): an unknown category, an
/// unknown flag.
const FP_MALFORMED: &[&str] = &["all,bogus", "bogus", "analytics:maybe", "marketing:1,ads:1"];

impl FirstParty {
    fn value(&self) -> String {
        match self {
            FirstParty::List { granted, all, sep } => {
                if *all && granted.len() == 3 {
                    "all".to_string()
                } else {
                    granted.join(sep)
                }
            }
            FirstParty::Flags { named, words, sep } => {
                let (yes, no) = FLAG_WORDS[*words];
                let colon = if sep.starts_with('%') { "%3A" } else { ":" };
                named
                    .iter()
                    .map(|(c, on)| format!("{c}{colon}{}", if *on { yes } else { no }))
                    .collect::<Vec<_>>()
                    .join(sep)
            }
            FirstParty::Malformed(v) => v.to_string(),
        }
    }

    /// What this copy says about `cat`: `Some(granted)`, or `None` when it does not carry it.
    fn says(&self, cat: &str) -> Option<bool> {
        match self {
            FirstParty::List { granted, .. } => Some(granted.contains(&cat)),
            FirstParty::Flags { named, .. } => {
                named.iter().find(|(c, _)| *c == cat).map(|(_, on)| *on)
            }
            FirstParty::Malformed(_) => Some(false),
        }
    }
}

/// One generated case.
#[derive(Debug, Clone)]
struct Case {
    /// The first-party consent cookie's copies, in the order sent (empty: none at all).
    consent: Vec<FirstParty>,
    /// OneTrust's `groups` (`C0001:1` always first): (group, granted); `None`: no cookie.
    onetrust: Option<Vec<(&'static str, bool)>>,
    /// A real TC string in its cookie; `None`: no TCF cookie.
    tcf: Option<TcfVector>,
    gpc: bool,
    /// Request cookies (name, value), duplicates allowed.
    cookies: Vec<(String, String)>,
    /// `Set-Cookie` values the origin sends, in order.
    set_cookies: Vec<String>,
}

impl Case {
    /// The documented rule (docs/CONSENT.md, "Several sources"): each source grants, refuses
    /// or says nothing about a category; granted when some source grants it and none refuses.
    /// The first-party cookie's list form refuses what it leaves out, its flag form speaks for
    /// the categories it names, an unreadable copy refuses everything, and each copy is a source
    /// of its own; OneTrust speaks through the groups it
    /// lists (several mapped to one category: any refused refuses); a TC string speaks for every
    /// category, as its fixture records. Then GPC refuses marketing.
    fn granted(&self, cat: &str) -> bool {
        if cat == NECESSARY {
            return true;
        }
        if self.gpc && cat == MARKETING {
            return false;
        }
        let mut says = Vec::new();
        says.extend(self.consent.iter().filter_map(|copy| copy.says(cat)));
        if let Some(groups) = &self.onetrust {
            says.extend(
                groups
                    .iter()
                    .filter(|(g, _)| OT_GROUPS.iter().any(|(og, c)| og == g && *c == cat))
                    .map(|(_, granted)| *granted),
            );
        }
        if let Some(tcf) = &self.tcf {
            says.push(tcf.grants(cat));
        }
        !says.is_empty() && says.iter().all(|g| *g)
    }

    /// Whether a cookie of this name may reach the client or the origin.
    fn allowed(&self, name: &str) -> bool {
        name == CONSENT
            || name == ONETRUST
            || TCF_COOKIES.contains(&name)
            || category(name).is_some_and(|c| self.granted(c))
    }

    /// `OptanonConsent` as OneTrust writes it: a URL-encoded query string with the keys of the
    /// cookies captured from live sites in tests/fixtures/consent/onetrust.jsonl (provenance
    /// there); only `groups` varies. The OneTrust parser itself is tested on those captures.
    fn onetrust_value(&self) -> Option<String> {
        let groups = self.onetrust.as_ref()?;
        let groups = groups
            .iter()
            .map(|(g, on)| format!("{g}%3A{}", u8::from(*on)))
            .collect::<Vec<_>>()
            .join("%2C");
        Some(format!(
            "isGpcEnabled=0&datestamp=Sat+Nov+28+2026+10%3A00%3A00+GMT%2B0100&version=202409.1.0&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId=5c1a4e1e-0000-4000-8000-000000000000&interactionCount=1&landingPath=NotLandingPage&groups={groups}&AwaitingReconsent=false"
        ))
    }

    /// The CMP cookies, in the order sent: (name, value).
    fn consent_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        out.extend(
            self.consent
                .iter()
                .map(|copy| (CONSENT.to_string(), copy.value())),
        );
        if let Some(v) = self.onetrust_value() {
            out.push((ONETRUST.to_string(), v));
        }
        if let Some(t) = &self.tcf {
            out.push((t.cookie.clone(), t.value.clone()));
        }
        out
    }

    /// The request's `Cookie` header value (the consent cookies first), if any.
    fn cookie_header(&self) -> Option<String> {
        let mut pairs: Vec<String> = self
            .consent_pairs()
            .into_iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        // A nameless cookie (set by `document.cookie = "v"` or a `Set-Cookie` without `=`) is
        // sent as its value alone, as browsers do.
        pairs.extend(self.cookies.iter().map(|(n, v)| match n.as_str() {
            "" => v.clone(),
            _ => format!("{n}={v}"),
        }));
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// The pairs the origin must receive: the allowed ones, in order, values unchanged.
    fn expected_at_origin(&self) -> Vec<(String, String)> {
        let mut out = self.consent_pairs();
        out.extend(
            self.cookies
                .iter()
                .filter(|(n, _)| self.allowed(n))
                .cloned(),
        );
        out
    }

    /// The origin's lines the client must get, byte for byte, in order.
    fn expected_set_cookies(&self) -> Vec<String> {
        self.set_cookies
            .iter()
            .filter(|l| self.allowed(set_cookie_name(l)))
            .cloned()
            .collect()
    }
}

/// The cookie name of a `Set-Cookie` value as a browser reads it (RFC 6265bis 5.6: the
/// name-value pair ends at the first `;`; without `=` the name is empty).
fn set_cookie_name(line: &str) -> &str {
    let pair = line.split(';').next().unwrap();
    match pair.split_once('=') {
        Some((n, _)) => n.trim(),
        None => "",
    }
}

fn any_name() -> impl Strategy<Value = String> {
    let names: Vec<&str> = TABLE
        .iter()
        .map(|(n, _)| *n)
        .chain(UNKNOWN.iter().copied())
        .collect();
    proptest::sample::select(names).prop_map(str::to_string)
}

/// A cookie value: a token, a quoted token (RFC 6265 allows DQUOTE around cookie-octets), one
/// with the characters real values carry (`.`, `-`, `%`, `/`, `=`, `|`), or one with UTF-8.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]{1,12}",
        "[A-Za-z0-9]{1,8}".prop_map(|v| format!("\"{v}\"")),
        "GA1\\.[0-9]\\.[0-9]{3,9}\\.[0-9]{3,9}",
        "[A-Za-z0-9%./|=-]{1,16}",
        // UTF-8 in a value: outside RFC 6265's cookie-octet, but RFC 6265bis 5.6 (what browsers
        // do) keeps any octet but a control, and sites do write it.
        "[a-z]{1,3}(é|ü|日本|€)[a-z]{0,3}",
    ]
}

/// Attributes as servers write them, including `Expires` with its comma and `Partitioned`.
const ATTRS: &[&str] = &[
    "Path=/",
    "path=/shop",
    "Expires=Wed, 21 Oct 2026 07:28:00 GMT",
    "expires=Thu, 01 Jan 2037 00:00:00 GMT",
    "Max-Age=3600",
    "Domain=test.local",
    "domain=.test.local",
    "Secure",
    "HttpOnly",
    "SameSite=None",
    "samesite=Lax",
    "Partitioned",
];

/// Separators between attributes: the usual `; `, none, several spaces.
const SEPS: &[&str] = &["; ", ";", ";  "];

fn any_set_cookie() -> impl Strategy<Value = String> {
    let with_pair = (
        any_name(),
        any_value(),
        proptest::collection::vec(
            (
                proptest::sample::select(SEPS.to_vec()),
                proptest::sample::select(ATTRS.to_vec()),
            ),
            0..5,
        ),
        any::<bool>(),
    )
        .prop_map(|(name, value, attrs, spaced)| {
            let eq = if spaced { " = " } else { "=" };
            let mut line = format!("{name}{eq}{value}");
            for (sep, attr) in attrs {
                line.push_str(sep);
                line.push_str(attr);
            }
            line
        });
    // A line with no `=` in its first part, or starting with `=`: the empty name (unknown, so
    // stripped).
    let no_eq = (
        "[A-Za-z]{1,10}",
        any::<bool>(),
        proptest::sample::select(ATTRS.to_vec()),
    )
        .prop_map(|(v, leading_eq, attr)| {
            let eq = if leading_eq { "=" } else { "" };
            format!("{eq}{v}; {attr}")
        });
    prop_oneof![9 => with_pair, 1 => no_eq]
}

/// One copy of the first-party consent cookie, in any documented form.
fn any_first_party() -> impl Strategy<Value = FirstParty> {
    let cats = || proptest::sample::subsequence(vec![PREFERENCES, ANALYTICS, MARKETING], 0..=3);
    let sep = || proptest::sample::select(FP_SEPS.to_vec());
    let list = (cats(), any::<bool>(), sep()).prop_map(|(granted, all, sep)| FirstParty::List {
        granted,
        all,
        sep,
    });
    let flags = (
        proptest::sample::subsequence(vec![PREFERENCES, ANALYTICS, MARKETING], 1..=3),
        proptest::collection::vec(any::<bool>(), 3),
        0..FLAG_WORDS.len(),
        sep(),
    )
        .prop_map(|(cats, on, words, sep)| FirstParty::Flags {
            named: cats.into_iter().zip(on).collect(),
            words,
            sep,
        });
    let malformed = proptest::sample::select(FP_MALFORMED.to_vec()).prop_map(FirstParty::Malformed);
    prop_oneof![5 => list, 3 => flags, 1 => malformed]
}

/// A request cookie: a name of the table or an unknown one with a plain, quoted, `=`-holding or
/// UTF-8 value, or now and then a nameless one (its value alone, no `=`).
fn any_request_cookie() -> impl Strategy<Value = (String, String)> {
    let value = prop_oneof![
        "[A-Za-z0-9]{1,6}(\\.[0-9]{1,4})?",
        "[A-Za-z0-9]{1,6}".prop_map(|v| format!("\"{v}\"")),
        "[A-Za-z0-9]{1,4}=[A-Za-z0-9]{0,4}",
        "[a-z]{1,3}(é|日本)",
    ];
    let nameless = "[A-Za-z0-9]{1,8}".prop_map(|v| (String::new(), v));
    prop_oneof![9 => (any_name(), value), 1 => nameless]
}

fn any_case(tcf: &[TcfVector]) -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            2 => Just(Vec::new()),
            6 => proptest::collection::vec(any_first_party(), 1),
            2 => proptest::collection::vec(any_first_party(), 2),
        ],
        proptest::option::weighted(
            0.5,
            proptest::sample::subsequence(
                OT_GROUPS.iter().map(|(g, _)| *g).collect::<Vec<_>>(),
                0..=4,
            )
            .prop_flat_map(|groups| {
                let n = groups.len();
                (Just(groups), proptest::collection::vec(any::<bool>(), n))
            })
            .prop_map(|(groups, on)| {
                std::iter::once(("C0001", true))
                    .chain(groups.into_iter().zip(on))
                    .collect::<Vec<_>>()
            }),
        ),
        proptest::option::weighted(0.4, proptest::sample::select(tcf.to_vec())),
        any::<bool>(),
        proptest::collection::vec(any_request_cookie(), 0..8),
        proptest::collection::vec(any_set_cookie(), 0..10),
    )
        .prop_map(|(consent, onetrust, tcf, gpc, cookies, set_cookies)| Case {
            consent,
            onetrust,
            tcf,
            gpc,
            cookies,
            set_cookies,
        })
}

/// The origin: answers with the current case's lines (a shared slot; cases run one at a time).
fn origin() -> (Origin, Arc<Mutex<Vec<String>>>) {
    let slot: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let lines = slot.clone();
    let origin = Origin::start(move |_| {
        let lines = lines.lock().unwrap().clone();
        let headers: Vec<(&str, &str)> = std::iter::once(("Content-Type", "text/plain"))
            .chain(lines.iter().map(|l| ("Set-Cookie", l.as_str())))
            .collect();
        response("200 OK", &headers, b"ok\n")
    });
    (origin, slot)
}

/// The `name=value` pairs of every `Cookie` line the origin received for `path`.
fn cookies_at_origin(origin: &Origin, path: &str) -> Result<Vec<(String, String)>, TestCaseError> {
    let reqs = origin.received();
    let Some(req) = reqs.iter().find(|r| r.path == path) else {
        return Err(TestCaseError::fail(format!(
            "the origin never received {path}"
        )));
    };
    Ok(req
        .header_strings("cookie")
        .iter()
        .flat_map(|line| line.split(';').map(str::to_string).collect::<Vec<_>>())
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => (String::new(), p),
        })
        .collect())
}

/// Checks one exchange's invariants: `got` are the `Set-Cookie` values the client received.
fn check(case: &Case, got: &[String], at_origin: &[(String, String)]) -> Result<(), TestCaseError> {
    // 1. Nothing without consent reaches the origin; what has consent arrives unchanged.
    for (n, v) in at_origin {
        prop_assert!(
            case.allowed(n),
            "cookie {n}={v} reached the origin without consent"
        );
    }
    prop_assert_eq!(at_origin, &case.expected_at_origin()[..]);

    // 2. The client: the origin's lines with consent, byte for byte, in order; besides them
    // only the proxy's expiry lines (empty value, `Max-Age=0`) deleting a cookie the request
    // carried without consent.
    let expected = case.expected_set_cookies();
    let (origin_lines, expiry): (Vec<&String>, Vec<&String>) =
        got.iter().partition(|l| case.set_cookies.contains(l));
    for l in &expiry {
        let name = set_cookie_name(l);
        let value = l.split(';').next().unwrap().split_once('=').map(|(_, v)| v);
        prop_assert!(
            value == Some("") && l.contains("Max-Age=0"),
            "Set-Cookie {l:?} is neither an origin line nor an expiry line"
        );
        prop_assert!(
            !case.allowed(name) && case.cookies.iter().any(|(n, _)| n == name),
            "expiry line {l:?} for a cookie the request did not carry without consent"
        );
    }
    for l in &origin_lines {
        prop_assert!(
            case.allowed(set_cookie_name(l)),
            "Set-Cookie {l:?} reached the client without consent"
        );
    }
    let origin_lines: Vec<String> = origin_lines.into_iter().cloned().collect();
    prop_assert_eq!(origin_lines, expected);
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        // Shrinking re-runs cases through the proxy; a few hundred steps are plenty.
        max_shrink_iters: 300,
        failure_persistence: None,
        ..Config::default()
    })
}

fn request_headers(case: &Case, path_id: u64) -> (String, Vec<(String, String)>) {
    let path = format!("/case/{path_id}");
    let mut headers = Vec::new();
    if let Some(c) = case.cookie_header() {
        headers.push(("Cookie".to_string(), c));
    }
    if case.gpc {
        headers.push(("Sec-GPC".to_string(), "1".to_string()));
    }
    (path, headers)
}

#[test]
fn http1_no_cookie_without_consent_and_kept_lines_byte_identical() {
    let (origin, slot) = origin();
    let proxy = Proxy::start(&site(&origin));
    let counter = std::sync::atomic::AtomicU64::new(0);
    let result = runner(cases()).run(&any_case(&tcf_vectors()), |case| {
        let id = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *slot.lock().unwrap() = case.set_cookies.clone();
        let (path, mut headers) = request_headers(&case, id);
        // Every fourth case splits the cookies over two `Cookie` lines, as an intermediary in
        // front of the proxy sends them when it does not join an HTTP/2 request's `cookie`
        // fields: both lines are read (consent may be on the second) and gated.
        if id % 4 == 3 {
            if let Some(i) = headers.iter().position(|(n, _)| n == "Cookie") {
                let pairs: Vec<String> = headers[i].1.split("; ").map(str::to_string).collect();
                if pairs.len() >= 2 {
                    let (first, second) = pairs.split_at(pairs.len() / 2);
                    headers[i].1 = first.join("; ");
                    headers.insert(i + 1, ("Cookie".to_string(), second.join("; ")));
                }
            }
        }
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let r = proxy.get(&path, &refs);
        prop_assert_eq!(r.status, 200, "log:\n{}", proxy.log_text());
        // The raw lines as on the wire: one `Set-Cookie:` line each.
        let got: Vec<String> = r
            .raw_set_cookie_lines()
            .iter()
            .map(|l| l["set-cookie:".len()..].trim_start().to_string())
            .collect();
        check(&case, &got, &cookies_at_origin(&origin, &path)?)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn http2_no_cookie_without_consent_and_kept_lines_byte_identical() {
    let (origin, slot) = origin();
    let tls = TlsProxy::start(&site(&origin));
    let counter = std::sync::atomic::AtomicU64::new(0);
    let result = runner((cases() / 8).max(8)).run(&any_case(&tcf_vectors()), |case| {
        let id = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *slot.lock().unwrap() = case.set_cookies.clone();
        let (path, headers) = request_headers(&case, id);
        // Every other case sends each cookie as a `cookie` field of its own, as browsers do
        // over HTTP/2 (RFC 9113 8.2.3).
        let split = id % 2 == 1;
        let mut lines = Vec::new();
        for (n, v) in &headers {
            if split && n == "Cookie" {
                lines.extend(v.split("; ").map(|pair| format!("Cookie: {pair}")));
            } else {
                lines.push(format!("{n}: {v}"));
            }
        }
        let r = tls.get(&path, &lines);
        prop_assert!(
            r.status == 200 && r.final_head().starts_with("HTTP/2 ") && r.exit == 0,
            "not a complete HTTP/2 200: {r:?}"
        );
        // HTTP/2 has no folding, but the proxy could still merge lines: each field is one line.
        let got = r.header_all("set-cookie");
        // The origin speaks HTTP/1.1: split fields arrive joined into one `Cookie` line
        // (RFC 9113 8.2.3).
        let lines = origin
            .received()
            .iter()
            .find(|r| r.path == path)
            .map(|r| r.header_all("cookie").len())
            .unwrap_or(0);
        prop_assert!(
            lines <= 1,
            "{lines} Cookie lines reached the HTTP/1.1 origin"
        );
        check(&case, &got, &cookies_at_origin(&origin, &path)?)
    });
    drop(tls);
    if let Err(e) = result {
        panic!("{e}");
    }
}
