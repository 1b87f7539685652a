//! Tracker blocklists: EasyList / Adblock Plus syntax lists, each assigned a consent category,
//! matched with Brave's `adblock` engine (built once per configuration load, `Send + Sync`).
//! Pure: a URL, its source page and request type in; which list and rule matched out.

pub mod csp;
pub mod normalize;
pub mod respond;

use crate::consent::{Category, Grants};
use adblock::lists::{FilterSet, ParseOptions, RuleTypes};
use adblock::request::Request;
use adblock::Engine;
use std::path::Path;

/// What kind of resource a request fetches (adblock's request types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    Document,
    Subdocument,
    Script,
    Image,
    Stylesheet,
    Font,
    Media,
    /// fetch / XMLHttpRequest
    Xhr,
    /// `navigator.sendBeacon`, `<a ping>`
    Ping,
    Other,
}

impl RequestKind {
    /// The request type string adblock matches `$script`, `$image`, ... options against.
    pub fn adblock_type(self) -> &'static str {
        match self {
            RequestKind::Document => "document",
            RequestKind::Subdocument => "subdocument",
            RequestKind::Script => "script",
            RequestKind::Image => "image",
            RequestKind::Stylesheet => "stylesheet",
            RequestKind::Font => "font",
            RequestKind::Media => "media",
            RequestKind::Xhr => "xmlhttprequest",
            RequestKind::Ping => "ping",
            RequestKind::Other => "other",
        }
    }

    /// The name in `explain` and logs: adblock's, except `xhr` for `xmlhttprequest`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Xhr => "xhr",
            other => other.adblock_type(),
        }
    }
}

/// Whether a request is a beacon, which browsers type `ping` (and blocklist rules match with
/// `$ping`) although it arrives with `Sec-Fetch-Dest: empty` like a fetch: `<a ping>` (a
/// `Ping-To` header, or `Content-Type: text/ping`), or `navigator.sendBeacon` (a `POST` in
/// `no-cors` mode, what sendBeacon sends with a text or form body; fetch and XHR default to
/// `cors`).
pub fn is_beacon(
    method: &str,
    sec_fetch_mode: Option<&str>,
    content_type: Option<&str>,
    ping_to: bool,
) -> bool {
    let text_ping = content_type.is_some_and(|c| {
        c.trim_start()
            .get(..9)
            .is_some_and(|t| t.eq_ignore_ascii_case("text/ping"))
    });
    ping_to || text_ping || (method == "POST" && sec_fetch_mode == Some("no-cors"))
}

/// Infers the request type: `Sec-Fetch-Dest` when the browser sent it (all current browsers
/// do), else `Accept`, else the path's extension.
pub fn infer_kind(sec_fetch_dest: Option<&str>, accept: Option<&str>, path: &str) -> RequestKind {
    if let Some(dest) = sec_fetch_dest {
        match dest.trim() {
            "document" => return RequestKind::Document,
            "iframe" | "frame" | "embed" | "object" => return RequestKind::Subdocument,
            "script" | "worker" | "sharedworker" | "serviceworker" | "audioworklet"
            | "paintworklet" => return RequestKind::Script,
            "image" => return RequestKind::Image,
            "style" => return RequestKind::Stylesheet,
            "font" => return RequestKind::Font,
            "audio" | "video" | "track" => return RequestKind::Media,
            "report" => return RequestKind::Ping,
            // "empty" is fetch/XHR/beacon; refine by Accept and extension below.
            _ => {}
        }
    }
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let ext = path
        .rsplit('/')
        .next()
        .and_then(|last| last.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("js" | "mjs") => return RequestKind::Script,
        Some("gif" | "png" | "jpg" | "jpeg" | "webp" | "svg" | "ico" | "avif") => {
            return RequestKind::Image
        }
        Some("css") => return RequestKind::Stylesheet,
        Some("woff" | "woff2" | "ttf" | "otf") => return RequestKind::Font,
        Some("html" | "htm") if sec_fetch_dest.is_none() => return RequestKind::Document,
        _ => {}
    }
    let accept = accept.unwrap_or("");
    if sec_fetch_dest == Some("empty") {
        return RequestKind::Xhr;
    }
    if accept.starts_with("text/html") || accept.contains("application/xhtml+xml") {
        RequestKind::Document
    } else if accept.starts_with("image/") {
        RequestKind::Image
    } else if accept.starts_with("text/css") {
        RequestKind::Stylesheet
    } else if accept.contains("javascript") {
        RequestKind::Script
    } else if accept.contains("application/json") {
        RequestKind::Xhr
    } else {
        RequestKind::Other
    }
}

/// One list, compiled.
pub struct Blocklist {
    pub category: Category,
    /// The path as configured (shown in `explain`, metrics, logs).
    pub name: String,
    /// Rules parsed from the list.
    pub rules: usize,
    engine: Engine,
}

/// What matched.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BlockMatch {
    pub category: Category,
    pub list: String,
    /// The filter rule that matched, as written in the list.
    pub rule: Option<String>,
}

/// A site's lists.
#[derive(Default)]
pub struct Blocklists {
    lists: Vec<Blocklist>,
    /// Categories covered by at least one list.
    covered: Vec<Category>,
}

impl std::fmt::Debug for Blocklists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.lists.iter().map(|l| (&l.name, l.category, l.rules)))
            .finish()
    }
}

/// A list as configuration validation leaves it: read and its rules counted, not yet compiled.
/// Compiling (building the adblock engine, the costly part) is the runtime's work
/// ([`crate::policy::SitePolicy::build`]); `consentgate check` stops before it.
pub struct ListSource {
    pub category: Category,
    /// The path as configured (shown in `explain`, metrics, logs).
    pub name: String,
    /// Network rules counted in the text.
    pub rules: usize,
    text: String,
}

impl std::fmt::Debug for ListSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ListSource({}, {:?}, {} rules)",
            self.name, self.category, self.rules
        )
    }
}

impl ListSource {
    pub fn from_text(category: Category, name: &str, text: String) -> ListSource {
        let rules = text
            .lines()
            .filter(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with('!') && !l.starts_with('[') && !l.contains("##")
            })
            .count();
        ListSource {
            category,
            name: name.to_string(),
            rules,
            text,
        }
    }

    /// The list as read (consent receipts hash it into the site's `policy_version`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Reads a list file; a file with no filter rule is refused (it is not a list).
    pub fn read(category: Category, path: &Path, name: &str) -> Result<ListSource, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let list = ListSource::from_text(category, name, text);
        if list.rules == 0 {
            return Err("contains no filter rules; is this an EasyList/Adblock Plus list?".into());
        }
        Ok(list)
    }

    /// Compiles the list (network rules only: a proxy cannot hide page elements).
    pub fn compile(self) -> Blocklist {
        let mut set = FilterSet::new(true);
        set.add_filter_list(
            self.text,
            ParseOptions {
                rule_types: RuleTypes::NetworkOnly,
                ..ParseOptions::default()
            },
        );
        Blocklist {
            category: self.category,
            name: self.name,
            rules: self.rules,
            engine: Engine::new_with_filter_set(set),
        }
    }
}

impl Blocklist {
    /// Compiles list text.
    pub fn from_text(category: Category, name: &str, text: &str) -> Blocklist {
        ListSource::from_text(category, name, text.to_string()).compile()
    }

    /// Reads and compiles a list file.
    pub fn load(category: Category, path: &Path, name: &str) -> Result<Blocklist, String> {
        ListSource::read(category, path, name).map(ListSource::compile)
    }
}

impl Blocklists {
    pub fn new(lists: Vec<Blocklist>) -> Blocklists {
        let mut covered = Vec::new();
        for l in &lists {
            if !covered.contains(&l.category) {
                covered.push(l.category);
            }
        }
        Blocklists { lists, covered }
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    pub fn lists(&self) -> &[Blocklist] {
        &self.lists
    }

    /// False when the visitor consented to every category the lists cover: no matching at all.
    pub fn needed(&self, grants: Grants) -> bool {
        self.covered.iter().any(|c| !grants.allows(*c))
    }

    /// The first list of a non-consented category that blocks this request (an exception rule
    /// in the same list unblocks it, as in a browser's blocker).
    pub fn check(
        &self,
        url: &str,
        source_url: &str,
        kind: RequestKind,
        grants: Grants,
    ) -> Option<BlockMatch> {
        if !self.needed(grants) {
            return None;
        }
        // Parsed once, checked against every list. An unparsable URL cannot be matched.
        let request = Request::new(url, source_url, kind.adblock_type(), "GET").ok()?;
        for list in &self.lists {
            if grants.allows(list.category) {
                continue;
            }
            let result = list.engine.check_network_request(&request);
            if result.should_block() {
                return Some(BlockMatch {
                    category: list.category,
                    list: list.name.clone(),
                    rule: result.filter.and_then(|f| f.raw_line),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> Blocklists {
        Blocklists::new(vec![
            Blocklist::from_text(
                Category::Analytics,
                "analytics.txt",
                "||google-analytics.com^\n/collect?v=2$ping,xmlhttprequest,image\n||tracker.test^\n@@||tracker.test/allowed.js\n",
            ),
            Blocklist::from_text(Category::Marketing, "ads.txt", "||connect.facebook.net^\n/fbevents.js\n"),
        ])
    }

    #[test]
    fn matches_by_category_and_consent() {
        let l = lists();
        let none = Grants::NONE;
        let m = l
            .check(
                "https://www.google-analytics.com/g/collect?v=2",
                "https://shop.example/",
                RequestKind::Ping,
                none,
            )
            .unwrap();
        assert_eq!(m.category, Category::Analytics);
        assert_eq!(m.list, "analytics.txt");
        assert_eq!(m.rule.as_deref(), Some("||google-analytics.com^"));
        let analytics = Grants::from_categories([Category::Analytics]);
        assert!(l
            .check(
                "https://www.google-analytics.com/g/collect",
                "https://shop.example/",
                RequestKind::Ping,
                analytics
            )
            .is_none());
        let m = l
            .check(
                "https://shop.example/static/fbevents.js",
                "https://shop.example/",
                RequestKind::Script,
                analytics,
            )
            .unwrap();
        assert_eq!(m.category, Category::Marketing);
        assert!(l
            .check(
                "https://shop.example/app.js",
                "https://shop.example/",
                RequestKind::Script,
                none
            )
            .is_none());
        // Exception rules apply.
        assert!(l
            .check(
                "http://tracker.test/allowed.js",
                "http://site.test/",
                RequestKind::Script,
                none
            )
            .is_none());
        assert!(l
            .check(
                "http://tracker.test/t.js",
                "http://site.test/",
                RequestKind::Script,
                none
            )
            .is_some());
    }

    #[test]
    fn skipped_when_every_covered_category_is_granted() {
        let l = lists();
        assert!(l.needed(Grants::NONE));
        let both = Grants::from_categories([Category::Analytics, Category::Marketing]);
        assert!(!l.needed(both));
        assert!(l
            .check(
                "https://www.google-analytics.com/collect",
                "",
                RequestKind::Image,
                both
            )
            .is_none());
    }

    #[test]
    fn request_kinds() {
        assert_eq!(infer_kind(Some("script"), None, "/x"), RequestKind::Script);
        assert_eq!(
            infer_kind(Some("iframe"), None, "/x"),
            RequestKind::Subdocument
        );
        assert_eq!(
            infer_kind(Some("empty"), Some("*/*"), "/g/collect"),
            RequestKind::Xhr
        );
        assert_eq!(
            infer_kind(Some("empty"), None, "/pixel.gif"),
            RequestKind::Image
        );
        assert_eq!(
            infer_kind(None, Some("text/html,application/xhtml+xml"), "/"),
            RequestKind::Document
        );
        assert_eq!(
            infer_kind(None, Some("image/avif,image/webp"), "/p"),
            RequestKind::Image
        );
        assert_eq!(
            infer_kind(None, None, "/gtm.js?id=GTM-1"),
            RequestKind::Script
        );
        assert_eq!(infer_kind(None, None, "/collect"), RequestKind::Other);
    }

    #[test]
    fn rules_of_the_real_easyprivacy() {
        // An excerpt of the real list (tests/fixtures/lists/NOTICE): upstream lines, unchanged.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/lists/easyprivacy.txt"
        );
        let l = Blocklists::new(vec![Blocklist::load(
            Category::Analytics,
            Path::new(path),
            "easyprivacy.txt",
        )
        .unwrap()]);
        assert!(l.lists()[0].rules > 250, "{} rules", l.lists()[0].rules);
        for url in [
            "https://www.google-analytics.com/analytics.js",
            "https://www.googletagmanager.com/gtag/js?id=G-XXXX",
            "https://static.hotjar.com/c/hotjar-1.js?sv=6",
        ] {
            assert!(
                l.check(
                    url,
                    "https://shop.example/",
                    RequestKind::Script,
                    Grants::NONE
                )
                .is_some(),
                "{url}"
            );
        }
        assert!(l
            .check(
                "https://shop.example/app.js",
                "https://shop.example/",
                RequestKind::Script,
                Grants::NONE
            )
            .is_none());
    }
}
