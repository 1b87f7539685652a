//! Streaming HTML neutralization (lol_html): in pages sent to a visitor without consent for a
//! category, elements that would load or run that category's trackers are rewritten so the
//! browser does not execute them, in the markup consent banners (Klaro, Cookiebot, ...) already
//! re-activate after consent: `type="text/plain"`, `data-src`, `data-consent-category`.
//!
//! Memory is bounded: lol_html's own limit, plus a cap on how much of one inline script is held
//! to look for snippets. Bytes outside rewritten elements come out exactly as they went in.

pub mod body;
pub mod codec;

use crate::consent::{Category, Grants};
use crate::trackers::{Blocklists, RequestKind};
use aho_corasick::AhoCorasick;
use lol_html::html_content::ContentType;
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{element, text, MemorySettings};
use std::sync::{Arc, Mutex};

/// lol_html's parser memory limit per response.
pub const MEMORY_LIMIT: usize = 1024 * 1024;
/// The most of one inline script held back to look for tracker snippets; past it the script
/// passes unchanged (a snippet is in the first lines of a tag manager or pixel loader).
pub const INLINE_SCRIPT_CAP: usize = 256 * 1024;

/// Inline-script snippets per category, compiled once per configuration load.
pub struct Snippets {
    matcher: Option<AhoCorasick>,
    categories: Vec<Category>,
    /// `categories` without repeats (at most four): [`PageRules::needed`] scans it on every
    /// response in enforce mode, where `categories` has one entry per snippet.
    covered: Vec<Category>,
    pub patterns: Vec<(Category, String)>,
}

impl std::fmt::Debug for Snippets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.patterns).finish()
    }
}

/// The default inline snippets: the loaders sites paste into their pages.
pub fn default_snippets() -> Vec<(Category, String)> {
    use Category::*;
    let s = |c: Category, p: &str| (c, p.to_string());
    vec![
        // Google tag (gtag.js) and Universal Analytics loaders. GTM itself loads tags of every
        // category; its container loader is treated as analytics, the common case and the
        // category Google's consent mode defaults it to.
        s(Analytics, "googletagmanager.com/gtag/js"),
        s(Analytics, "googletagmanager.com/gtm.js"),
        s(Analytics, "gtag('config'"),
        s(Analytics, "gtag(\"config\""),
        s(Analytics, "GoogleAnalyticsObject"),
        s(Analytics, "google-analytics.com/analytics.js"),
        // The classic ga.js snippet (still on old pages): it builds the script URL in code
        // (`'https://ssl' : 'http://www') + '.google-analytics.com/ga.js'`), so no blocklist
        // rule sees a URL.
        s(Analytics, "google-analytics.com/ga.js"),
        s(Analytics, "_gaq.push"),
        // Google Publisher Tag and Amazon ads loaders, which build the script URL in code.
        s(Marketing, "googletagservices.com/tag/js/gpt.js"),
        s(Marketing, "amazon-adsystem.com/aax2/amzn_ads.js"),
        // comScore and Chartbeat audience measurement (their loaders write the script tag).
        s(Analytics, "scorecardresearch.com/beacon.js"),
        s(Analytics, "_sf_async_config"),
        // Meta pixel.
        s(Marketing, "connect.facebook.net"),
        s(Marketing, "fbq('init'"),
        s(Marketing, "fbq(\"init\""),
        // Matomo / Piwik.
        s(Analytics, "_paq.push"),
        s(Analytics, "matomo.js"),
        s(Analytics, "piwik.js"),
        // Hotjar.
        s(Analytics, "static.hotjar.com"),
        s(Analytics, "_hjSettings"),
        // Microsoft Clarity.
        s(Analytics, "clarity.ms/tag"),
    ]
}

impl Snippets {
    pub fn new(patterns: Vec<(Category, String)>) -> Result<Snippets, String> {
        let matcher = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::new(patterns.iter().map(|(_, p)| p.as_str()))
                    .map_err(|e| format!("inline script snippets: {e}"))?,
            )
        };
        let categories: Vec<Category> = patterns.iter().map(|(c, _)| *c).collect();
        let covered = Category::ALL
            .into_iter()
            .filter(|c| categories.contains(c))
            .collect();
        Ok(Snippets {
            matcher,
            categories,
            covered,
            patterns,
        })
    }

    /// The categories of every snippet found in `text`.
    fn categories_in(&self, text: &str) -> Vec<Category> {
        let mut out = Vec::new();
        if let Some(m) = &self.matcher {
            for found in m.find_iter(text) {
                let c = self.categories[found.pattern().as_usize()];
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }
}

/// Everything a page rewrite needs from the site, shared by all its responses.
pub struct PageRules {
    pub blocklists: Arc<Blocklists>,
    pub snippets: Snippets,
}

impl PageRules {
    /// Whether a visitor with these grants needs any rewriting at all.
    pub fn needed(&self, grants: Grants) -> bool {
        if grants.is_all() {
            return false;
        }
        self.blocklists.needed(grants) || self.snippets.covered.iter().any(|c| !grants.allows(*c))
    }
}

/// An element neutralized: its category and tag (for metrics).
pub type Neutralized = (Category, &'static str);

struct State {
    grants: Grants,
    page_url: String,
    /// `page_url` parsed, the base of relative URLs (`None` when it does not parse).
    base: Option<url::Url>,
    rules: Arc<PageRules>,
    out: Vec<u8>,
    neutralized: Vec<Neutralized>,
    /// The inline script being held: its attributes for an inert copy, and its text so far.
    held_script: Option<(String, String)>,
    /// Inside `<noscript>`: its raw text so far.
    noscript: Option<String>,
    /// Where the held script or noscript text starts in the input stream.
    held_from: Option<usize>,
    /// The input from `input_base` on, kept while a text is held: lol_html hands text over
    /// decoded, so held text that goes out unchanged is written from these bytes (an invalid
    /// byte in an inline script stays that byte).
    input: Vec<u8>,
    input_base: usize,
    /// URLs already checked in this page (bounded).
    checked: std::collections::HashMap<(String, RequestKind), Option<Category>>,
    /// The consent-mode defaults `<script>` still to insert (taken when inserted).
    head_script: Option<Arc<str>>,
    /// Set when it was inserted, or a nonce moved ([`csp_nonce_handlers`]), until
    /// [`Neutralizer::take_edited`].
    inserted: bool,
    /// The nonce consentgate's own policy allows for this page (`[site.csp]`, no nonce in the
    /// origin's headers): scripts a `<meta>` policy allows by its nonce are moved to it.
    csp_nonce: Option<String>,
    /// The nonce of the page's first `<meta>` policy that allows scripts by one.
    meta_nonce: Option<String>,
}

impl State {
    /// The input bytes of a stream range, when still kept.
    fn raw(&self, range: std::ops::Range<usize>) -> Option<Vec<u8>> {
        let start = range.start.checked_sub(self.input_base)?;
        let end = range.end.checked_sub(self.input_base)?;
        self.input.get(start..end).map(<[u8]>::to_vec)
    }

    fn tracker_category(&mut self, raw_url: &str, kind: RequestKind) -> Option<Category> {
        // Pages repeat URLs (the same pixel, script or image); a blocklist check costs ~1 us.
        let key = (raw_url.to_string(), kind);
        if let Some(hit) = self.checked.get(&key) {
            return *hit;
        }
        let found = resolve_url(self.base.as_ref(), raw_url.trim()).and_then(|url| {
            self.rules
                .blocklists
                .check(&url, &self.page_url, kind, self.grants)
                .map(|m| m.category)
        });
        if self.checked.len() < 4096 {
            self.checked.insert(key, found);
        }
        found
    }
}

/// A rewriter error; the caller passes the rest of the body through and counts it.
#[derive(Debug)]
pub struct RewriteError(pub String);

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where lol_html writes its output (into the shared state, drained after each chunk).
type Sink = Box<dyn FnMut(&[u8]) + Send>;

/// One response's streaming rewriter.
pub struct Neutralizer {
    rewriter: Option<HtmlRewriter<'static, Sink>>,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A panic in a handler poisons the lock; the data is still consistent enough to drain.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_executable_script_type(t: Option<&str>) -> bool {
    match t.map(|t| t.trim().to_ascii_lowercase()) {
        None => true,
        Some(t) => {
            t.is_empty()
                || t == "module"
                || t.contains("javascript")
                || t.contains("ecmascript")
                || t == "text/jscript"
        }
    }
}

/// One selector and its handlers, as lol_html takes them.
type Handler = (
    std::borrow::Cow<'static, lol_html::Selector>,
    lol_html::send::ElementContentHandlers<'static>,
);

/// `<script src=tracker>` -> `type=text/plain` + `data-src` + `data-consent-category`.
fn script_src(state: Arc<Mutex<State>>) -> Handler {
    element!("script[src]", move |el| {
        let src = el.get_attribute("src").unwrap_or_default();
        let mut st = lock(&state);
        if !is_executable_script_type(el.get_attribute("type").as_deref()) {
            return Ok(());
        }
        if let Some(cat) = st.tracker_category(&src, RequestKind::Script) {
            drop(st);
            if let Some(t) = el.get_attribute("type") {
                el.set_attribute("data-type", &t)?;
            }
            el.remove_attribute("src");
            el.set_attribute("data-src", &src)?;
            el.set_attribute("type", "text/plain")?;
            el.set_attribute("data-consent-category", cat.as_str())?;
            lock(&state).neutralized.push((cat, "script"));
        }
        Ok(())
    })
}

/// Inline scripts: the start tag goes out untouched (so a page with no tracker
/// snippet stays byte-for-byte the same); only the text is held until it is seen
/// whole ([`inline_script_text`]). A script whose text holds a refused snippet is emptied in
/// place and its text moved into an inert copy right after it (the original end tag closes the
/// copy):
/// ```text
/// <script nonce=x></script><script type="text/plain" data-consent-category=.. nonce="x">TEXT</script>
/// ```
fn inline_script_start(state: Arc<Mutex<State>>) -> Handler {
    element!("script", move |el| {
        let inline = !el.has_attribute("src")
            && is_executable_script_type(el.get_attribute("type").as_deref());
        let held = inline.then(|| {
            // Attributes for the inert copy, as written (values keep their entities);
            // not `type` (replaced) nor `id` (it stays unique on the emptied original).
            let mut attrs = String::new();
            for a in el.attributes() {
                let name = a.name();
                if name == "type" || name == "id" {
                    continue;
                }
                attrs.push(' ');
                attrs.push_str(&a.name_preserve_case());
                attrs.push_str("=\"");
                attrs.push_str(&a.value().replace('"', "&quot;"));
                attrs.push('"');
            }
            (attrs, String::new())
        });
        let mut st = lock(&state);
        // The text starts right after this start tag: keep the input from there.
        st.held_from = held.as_ref().map(|_| el.source_location().bytes().end);
        st.held_script = held;
        Ok(())
    })
}

/// Whether an inline script is a framework's serialized page data rather than code a site
/// pasted: Next.js (App Router) streams the rendered page as `self.__next_f.push([1,"..."])`
/// chunks, Nuxt and Remix assign theirs to a global. A tag manager snippet rendered by the page
/// appears in that data as a string (found on time.com); making the chunk inert would stop the
/// app from starting, so such scripts are never neutralized (the page's own `<script>` for the
/// snippet still is; `[site.csp]` keeps a script loaded from the data from running).
fn is_framework_payload(text: &str) -> bool {
    const PREFIXES: [&str; 4] = [
        "self.__next_f.push(",
        "(self.__next_f=self.__next_f||[]).push(",
        "window.__NUXT__=",
        "window.__remixContext",
    ];
    let t = text.trim_start();
    PREFIXES.iter().any(|p| t.starts_with(p))
}

/// The text of an inline script: held until seen whole, then written unchanged (the input
/// bytes themselves) or moved into an inert copy.
fn inline_script_text(state: Arc<Mutex<State>>) -> Handler {
    text!("script", move |t| {
        let mut guard = lock(&state);
        let st = &mut *guard;
        let Some((_, text)) = st.held_script.as_mut() else {
            return Ok(());
        };
        let here = t.source_location().bytes();
        let from = st.held_from.unwrap_or(here.start);
        text.push_str(t.as_str());
        let over_cap = text.len() > INLINE_SCRIPT_CAP;
        if !t.last_in_text_node() && !over_cap {
            t.remove();
            return Ok(());
        }
        let Some((attrs, text)) = st.held_script.take() else {
            return Ok(());
        };
        st.held_from = None;
        let cats = if is_framework_payload(&text) {
            Vec::new()
        } else {
            st.rules.snippets.categories_in(&text)
        };
        match cats.iter().copied().find(|c| !st.grants.allows(*c)) {
            Some(cat) if !over_cap => {
                st.neutralized.push((cat, "inline-script"));
                let html = format!(
                    "</script><script type=\"text/plain\" data-consent-category=\"{}\"{attrs}>{text}",
                    cat.as_str()
                );
                drop(guard);
                t.replace(&html, ContentType::Html);
            }
            // Unchanged (or over the cap: the held part goes out as it came, the rest
            // passes unheld): the input bytes themselves, written where this chunk
            // stands (everything before it is already out).
            _ => match st.raw(from..here.end) {
                Some(raw) => {
                    st.out.extend_from_slice(&raw);
                    t.remove();
                }
                None => {
                    drop(guard);
                    t.replace(&text, ContentType::Html);
                }
            },
        }
        Ok(())
    })
}

/// The consent-mode defaults script goes first in `<head>`, so it runs before any script of
/// the page (Google tags read the defaults when they load): before the first element of
/// `<head>`, or right after it when that element declares the charset (`<meta charset>`, or
/// `<meta http-equiv="Content-Type">`). Browsers look for that declaration in the first 1024
/// bytes (the HTML standard's prescan); the script (~400 bytes) inserted before it could push
/// it past them, and the page would be decoded in a guessed charset. A charset declaration
/// runs nothing, so the script still precedes every script; a `<meta>` CSP, which would apply
/// to the script, is not passed over. An empty `<head>` gets it before `</head>`.
///
/// A page without a `<head>` tag gets it right before the first `<script>` or `<body>` start
/// tag, whichever comes first: the HTML parser puts it in the implied head (or at that point
/// of the body), still before every other script. A page with none of the three has no script
/// for it to precede, and gets none.
fn consent_defaults(state: Arc<Mutex<State>>) -> [Handler; 3] {
    let head = state.clone();
    let child = state.clone();
    [
        element!("head", move |el| {
            // Held until the first child is seen; an empty head gets it before its end tag.
            let head = head.clone();
            let handler: lol_html::send::EndTagHandler<'static> =
                Box::new(move |end: &mut lol_html::html_content::EndTag<'_>| {
                    let mut st = lock(&head);
                    if let Some(script) = st.head_script.take() {
                        st.inserted = true;
                        drop(st);
                        end.before(&script, ContentType::Html);
                    }
                    Ok(())
                });
            // (`<head/>` in HTML is a start tag all the same, but lol_html takes it to have no
            // content: then the first script or `<body>` handler places the script.)
            if el.can_have_content() {
                el.on_end_tag(handler)?;
            }
            Ok(())
        }),
        element!("head > *", move |el| {
            let mut st = lock(&child);
            if let Some(script) = st.head_script.take() {
                st.inserted = true;
                drop(st);
                if declares_charset(el) {
                    el.after(&script, ContentType::Html);
                } else {
                    el.before(&script, ContentType::Html);
                }
            }
            Ok(())
        }),
        element!("script, body", move |el| {
            let mut st = lock(&state);
            if let Some(script) = st.head_script.take() {
                st.inserted = true;
                drop(st);
                el.before(&script, ContentType::Html);
            }
            Ok(())
        }),
    ]
}

/// A page whose own CSP is in a `<meta>` element and allows its scripts by a nonce (`X`), under
/// consentgate's `[site.csp]` policy that was sent in the headers before the body was seen and
/// so allows a fresh nonce of its own instead (`N`, see [`crate::decide::HtmlRewrite`]): both
/// policies are enforced, and a script carries one nonce. So the meta policy is made to allow
/// `N` too (`'nonce-N'` after each `'nonce-X'`) and every later `<script nonce="X">` carries
/// `N`: each script that ran under the page's policy alone runs under both, and no other
/// (`N` is random per response). Scripts before the meta element, and preload links, keep
/// `X`. Only `<script>`: another element's nonce (a style's) may be one the origin's header
/// policy names.
fn csp_nonce_handlers(state: Arc<Mutex<State>>) -> [Handler; 2] {
    let meta = state.clone();
    [
        element!("meta[http-equiv][content]", move |el| {
            let is_csp = el
                .get_attribute("http-equiv")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("content-security-policy"));
            if !is_csp {
                return Ok(());
            }
            let content = el.get_attribute("content").unwrap_or_default();
            let Some(x) = crate::consent_mode::page_nonce([content.as_str()]) else {
                return Ok(());
            };
            let mut st = lock(&meta);
            let Some(ours) = st.csp_nonce.clone() else {
                return Ok(());
            };
            // A second policy naming another nonce: the page's scripts cannot satisfy both
            // anyway; the first one's stays the one moved.
            if st.meta_nonce.as_deref().is_some_and(|m| m != x) {
                return Ok(());
            }
            st.meta_nonce = Some(x.to_string());
            st.inserted = true;
            drop(st);
            el.set_attribute("content", &allow_nonce_beside(&content, x, &ours))?;
            Ok(())
        }),
        element!("script[nonce]", move |el| {
            let mut st = lock(&state);
            let (Some(x), Some(ours)) = (st.meta_nonce.as_deref(), st.csp_nonce.as_deref()) else {
                return Ok(());
            };
            if el.get_attribute("nonce").as_deref() != Some(x) {
                return Ok(());
            }
            let ours = ours.to_string();
            st.inserted = true;
            drop(st);
            el.set_attribute("nonce", &ours)?;
            Ok(())
        }),
    ]
}

/// `policy` with `'nonce-{ours}'` after every `'nonce-{theirs}'` source (its `nonce-` in any
/// case), each directive's sources rejoined by single spaces.
fn allow_nonce_beside(policy: &str, theirs: &str, ours: &str) -> String {
    let add = format!("'nonce-{ours}'");
    policy
        .split(';')
        .map(|directive| {
            let mut out: Vec<&str> = Vec::new();
            for source in directive.split_whitespace() {
                out.push(source);
                let is_theirs = source
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .and_then(|s| {
                        s.get(..6)
                            .filter(|p| p.eq_ignore_ascii_case("nonce-"))
                            .map(|_| &s[6..])
                    })
                    == Some(theirs);
                if is_theirs {
                    out.push(&add);
                }
            }
            out.join(" ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `<meta charset>`, or `<meta http-equiv="Content-Type" content="...; charset=...">`: the
/// declarations the HTML standard's prescan reads.
fn declares_charset(
    el: &lol_html::html_content::Element<'_, '_, lol_html::send::SendHandlerTypes>,
) -> bool {
    el.tag_name().eq_ignore_ascii_case("meta")
        && (el.has_attribute("charset")
            || el
                .get_attribute("http-equiv")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("content-type")))
}

/// `<link rel=preload|prefetch|preconnect|dns-prefetch|modulepreload>` of a tracker: removed.
fn resource_hint(state: Arc<Mutex<State>>) -> Handler {
    element!("link[href][rel]", move |el| {
        let rel = el
            .get_attribute("rel")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let hints = [
            "preload",
            "prefetch",
            "preconnect",
            "dns-prefetch",
            "modulepreload",
        ];
        if !rel.split_ascii_whitespace().any(|r| hints.contains(&r)) {
            return Ok(());
        }
        let href = el.get_attribute("href").unwrap_or_default();
        let kind = match el.get_attribute("as").as_deref() {
            Some("image") => RequestKind::Image,
            Some("style") => RequestKind::Stylesheet,
            Some("document") => RequestKind::Subdocument,
            _ => RequestKind::Script,
        };
        let mut st = lock(&state);
        if let Some(cat) = st.tracker_category(&href, kind) {
            drop(st);
            el.remove();
            lock(&state).neutralized.push((cat, "link"));
        }
        Ok(())
    })
}

/// `<noscript>` content is raw text to a browser with scripting on, and so to lol_html
/// (no element handlers fire inside it): mark it here, rewrite its text in [`noscript_text`].
fn noscript_start(state: Arc<Mutex<State>>) -> Handler {
    element!("noscript", move |el| {
        let mut st = lock(&state);
        st.noscript = Some(String::new());
        st.held_from = Some(el.source_location().bytes().end);
        drop(st);
        let end_state = state.clone();
        let handler: lol_html::send::EndTagHandler<'static> =
            Box::new(move |_end: &mut lol_html::html_content::EndTag<'_>| {
                let mut st = lock(&end_state);
                st.noscript = None;
                st.held_from = None;
                Ok(())
            });
        el.on_end_tag(handler)?;
        Ok(())
    })
}

/// The text of a `<noscript>`: held until the node ends, tracker `<img>`/`<iframe>` tags
/// rewritten in it.
fn noscript_text(state: Arc<Mutex<State>>) -> Handler {
    text!("noscript", move |t| {
        let mut guard = lock(&state);
        let st = &mut *guard;
        let Some(held) = st.noscript.as_mut() else {
            return Ok(());
        };
        let here = t.source_location().bytes();
        let from = st.held_from.unwrap_or(here.start);
        // Hold the text until the node ends, so a tag split across chunks is seen whole.
        held.push_str(t.as_str());
        if !t.last_in_text_node() && held.len() <= INLINE_SCRIPT_CAP {
            t.remove();
            return Ok(());
        }
        let text = std::mem::take(held);
        st.held_from = None;
        let (rewritten, found) =
            neutralize_noscript_markup(&text, |url, kind| st.tracker_category(url, kind));
        if found.is_empty() {
            if let Some(raw) = st.raw(from..here.end) {
                st.out.extend_from_slice(&raw);
                t.remove();
                return Ok(());
            }
        }
        st.neutralized.extend(found);
        drop(guard);
        t.replace(&rewritten, ContentType::Html);
        Ok(())
    })
}

impl Neutralizer {
    /// `charset` from the response's Content-Type (default UTF-8).
    pub fn new(
        grants: Grants,
        page_url: &str,
        rules: Arc<PageRules>,
        charset: Option<&str>,
    ) -> Result<Neutralizer, RewriteError> {
        Neutralizer::with_head_script(grants, page_url, rules, charset, None, None)
    }

    /// Like [`Neutralizer::new`], also inserting `head_script` (the consent-mode defaults
    /// element) at the top of `<head>` (see [`consent_defaults`]), and with `csp_nonce` (the
    /// nonce consentgate's own policy allows) moving the scripts of a `<meta>` policy's nonce
    /// to it (see [`csp_nonce_handlers`]).
    pub fn with_head_script(
        grants: Grants,
        page_url: &str,
        rules: Arc<PageRules>,
        charset: Option<&str>,
        head_script: Option<Arc<str>>,
        csp_nonce: Option<&str>,
    ) -> Result<Neutralizer, RewriteError> {
        let inserts = head_script.is_some();
        let moves_nonces = csp_nonce.is_some();
        let state = Arc::new(Mutex::new(State {
            grants,
            page_url: page_url.to_string(),
            base: url::Url::parse(page_url).ok(),
            rules,
            out: Vec::new(),
            neutralized: Vec::new(),
            held_script: None,
            noscript: None,
            held_from: None,
            input: Vec::new(),
            input_base: 0,
            checked: std::collections::HashMap::new(),
            head_script,
            inserted: false,
            csp_nonce: csp_nonce.map(str::to_string),
            meta_nonce: None,
        }));
        let encoding = charset
            .and_then(|c| encoding_rs::Encoding::for_label(c.trim().as_bytes()))
            .unwrap_or(encoding_rs::UTF_8);
        let encoding = lol_html::AsciiCompatibleEncoding::new(encoding)
            .ok_or_else(|| RewriteError(format!("charset {charset:?} is not ASCII-compatible")))?;
        let mut handlers = Vec::with_capacity(12);
        if inserts {
            // First: the insertion lands before anything the other handlers do to an element.
            handlers.extend(consent_defaults(state.clone()));
        }
        if moves_nonces {
            // Before the script handlers: an inert copy of a script takes the moved nonce.
            handlers.extend(csp_nonce_handlers(state.clone()));
        }
        handlers.extend([
            script_src(state.clone()),
            inline_script_start(state.clone()),
            inline_script_text(state.clone()),
            element!("iframe[src]", {
                let state = state.clone();
                move |el| neutralize_src(el, &state, RequestKind::Subdocument, "iframe")
            }),
            element!("img[src]", {
                let state = state.clone();
                move |el| neutralize_src(el, &state, RequestKind::Image, "img")
            }),
            resource_hint(state.clone()),
            noscript_start(state.clone()),
            noscript_text(state.clone()),
        ]);
        let sink_state = state.clone();
        let sink: Sink = Box::new(move |c: &[u8]| lock(&sink_state).out.extend_from_slice(c));
        let settings = Settings {
            element_content_handlers: handlers,
            encoding,
            memory_settings: MemorySettings {
                max_allowed_memory_usage: MEMORY_LIMIT,
                preallocated_parsing_buffer_size: 4096,
            },
            ..Settings::new_send()
        };
        Ok(Neutralizer {
            rewriter: Some(HtmlRewriter::new(settings, sink)),
            state,
        })
    }

    fn take_output(&self) -> Vec<u8> {
        std::mem::take(&mut lock(&self.state).out)
    }

    /// Feeds a chunk; returns the output produced so far.
    pub fn write(&mut self, chunk: &[u8]) -> Result<Vec<u8>, RewriteError> {
        lock(&self.state).input.extend_from_slice(chunk);
        let r = match self.rewriter.as_mut() {
            Some(rw) => rw.write(chunk).map_err(|e| RewriteError(e.to_string())),
            None => Err(RewriteError("rewriter already finished".into())),
        };
        {
            // Keep only what a held text may still need.
            let mut st = lock(&self.state);
            let end = st.input_base + st.input.len();
            if st.input.len() > 2 * INLINE_SCRIPT_CAP + chunk.len() {
                // Bounded memory: a text held this long goes out decoded instead.
                st.held_from = None;
            }
            let keep_from = st.held_from.unwrap_or(end).clamp(st.input_base, end);
            let drop = keep_from - st.input_base;
            if drop == st.input.len() {
                st.input.clear();
            } else {
                st.input.drain(..drop);
            }
            st.input_base = keep_from;
        }
        match r {
            Ok(()) => Ok(self.take_output()),
            Err(e) => {
                self.rewriter = None;
                Err(e)
            }
        }
    }

    /// Ends the document; returns the remaining output.
    pub fn finish(&mut self) -> Result<Vec<u8>, RewriteError> {
        let Some(rw) = self.rewriter.take() else {
            return Ok(self.take_output());
        };
        rw.end().map_err(|e| RewriteError(e.to_string()))?;
        Ok(self.take_output())
    }

    /// Output produced before a failure (what can still be sent).
    pub fn salvage(&mut self) -> Vec<u8> {
        self.take_output()
    }

    /// Whether anything was neutralized or inserted since the last
    /// [`Neutralizer::take_neutralized`] / [`Neutralizer::take_edited`].
    pub fn changed(&self) -> bool {
        let st = lock(&self.state);
        !st.neutralized.is_empty() || st.inserted
    }

    /// Whether the consent-mode script was inserted, or a nonce moved, since the last call.
    pub fn take_edited(&self) -> bool {
        std::mem::take(&mut lock(&self.state).inserted)
    }

    /// Elements neutralized so far.
    pub fn take_neutralized(&self) -> Vec<Neutralized> {
        std::mem::take(&mut lock(&self.state).neutralized)
    }
}

fn neutralize_src(
    el: &mut lol_html::html_content::Element<'_, '_, lol_html::send::SendHandlerTypes>,
    state: &Mutex<State>,
    kind: RequestKind,
    tag: &'static str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let src = el.get_attribute("src").unwrap_or_default();
    let mut st = lock(state);
    let Some(cat) = st.tracker_category(&src, kind) else {
        return Ok(());
    };
    drop(st);
    el.remove_attribute("src");
    el.set_attribute("data-src", &src)?;
    if let Some(srcset) = el.get_attribute("srcset") {
        el.remove_attribute("srcset");
        el.set_attribute("data-srcset", &srcset)?;
    }
    el.set_attribute("data-consent-category", cat.as_str())?;
    lock(state).neutralized.push((cat, tag));
    Ok(())
}

/// Rewrites `src=` of `<img>` and `<iframe>` tags inside noscript text whose URL is a tracker of
/// a refused category. Returns the new text and what was neutralized.
pub fn neutralize_noscript_markup(
    text: &str,
    mut category: impl FnMut(&str, RequestKind) -> Option<Category>,
) -> (String, Vec<Neutralized>) {
    let mut out = String::with_capacity(text.len() + 32);
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        let end = rest.find('>').map_or(rest.len(), |i| i + 1);
        let tag = &rest[..end];
        rest = &rest[end..];
        let lower = tag.to_ascii_lowercase();
        let (kind, name) = if lower.starts_with("<img") {
            (RequestKind::Image, "img")
        } else if lower.starts_with("<iframe") {
            (RequestKind::Subdocument, "iframe")
        } else {
            out.push_str(tag);
            continue;
        };
        match find_src(tag) {
            Some((start, stop, url)) => match category(url, kind) {
                Some(cat) => {
                    found.push((cat, name));
                    out.push_str(&tag[..start]);
                    out.push_str("data-src");
                    out.push_str(&tag[start + 3..stop]);
                    out.push_str(&format!(" data-consent-category=\"{}\"", cat.as_str()));
                    out.push_str(&tag[stop..]);
                }
                None => out.push_str(tag),
            },
            None => out.push_str(tag),
        }
    }
    out.push_str(rest);
    (out, found)
}

/// Finds ` src=` in a tag: (offset of `src`, offset just after the value, the value).
fn find_src(tag: &str) -> Option<(usize, usize, &str)> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("src") {
        let at = from + i;
        from = at + 3;
        let before_ok = at > 0 && tag.as_bytes()[at - 1].is_ascii_whitespace();
        let after = tag[at + 3..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value_start = tag.len() - after.len() + 1;
        let v = tag[value_start..].trim_start();
        let vs = tag.len() - v.len();
        let (url, stop) = match v.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let close = v[1..].find(q)?;
                (&v[1..1 + close], vs + close + 2)
            }
            _ => {
                let len = v
                    .find(|c: char| c.is_ascii_whitespace() || c == '>')
                    .unwrap_or(v.len());
                (&v[..len], vs + len)
            }
        };
        return Some((at, stop, url));
    }
    None
}

/// Resolves a URL from a page against the page's URL (`page`; `None` when it does not parse)
/// as a browser does (the `url` crate: WHATWG URL joining). `None` for what is not fetched over
/// HTTP (`data:`, `javascript:`, `blob:`, `mailto:` ...), for what does not parse, and for an
/// empty URL. An absolute http(s) URL is returned as written (the blocklist engine parses it
/// itself).
pub fn resolve_url(page: Option<&url::Url>, raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    let url = match page {
        Some(base) => base.join(raw),
        None => url::Url::parse(raw),
    }
    .ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let scheme = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if scheme.starts_with("http://") || scheme.starts_with("https://") {
        return Some(raw.to_string());
    }
    Some(url.into())
}

#[cfg(test)]
mod tests;
