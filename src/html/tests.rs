use super::body::{BodyRewrite, HOLD_LIMIT};
use super::codec::Codec;
use super::*;
use crate::trackers::Blocklist;
#[path = "../../tests/support/gzip.rs"]
mod gzip;
use gzip::{gunzip, gzip as gz};
use std::io::{Read, Write};

fn rules() -> Arc<PageRules> {
    Arc::new(PageRules {
        blocklists: Arc::new(Blocklists::new(vec![
            Blocklist::from_text(
                Category::Analytics,
                "a.txt",
                "||google-analytics.com^\n||googletagmanager.com^\n||tracker.test^\n",
            ),
            Blocklist::from_text(
                Category::Marketing,
                "m.txt",
                "||facebook.com/tr^\n||connect.facebook.net^\n||doubleclick.net^\n",
            ),
        ])),
        snippets: Snippets::new(default_snippets()).unwrap(),
    })
}

fn rewrite_chunks(html: &str, grants: Grants, sizes: &mut dyn FnMut() -> usize) -> String {
    let mut n = Neutralizer::new(grants, "https://shop.test/p/1", rules(), None).unwrap();
    let mut out = Vec::new();
    let bytes = html.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = (i + sizes().max(1)).min(bytes.len());
        out.extend(n.write(&bytes[i..end]).unwrap());
        i = end;
    }
    out.extend(n.finish().unwrap());
    String::from_utf8(out).unwrap()
}

fn rewrite(html: &str, grants: Grants) -> String {
    rewrite_chunks(html, grants, &mut || usize::MAX)
}

const PAGE: &str = r#"<!doctype html><html><head>
<link rel="preconnect" href="https://www.google-analytics.com">
<link rel="stylesheet" href="/app.css">
<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>
<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}gtag('js',new Date());gtag('config','G-1');</script>
<script src="/app.js"></script>
<script>console.log("first party")</script>
<script type="application/ld+json">{"@type":"Product"}</script>
<script></script>
<script>!function(f,b,e,v,n,t,s){n=f.fbq=function(){};t=b.createElement(e);t.src=v}(window,document,'script','https://connect.facebook.net/en_US/fbevents.js');fbq('init','123');</script>
</head><body>
<img src="/logo.png" alt="logo">
<img src="https://www.facebook.com/tr?id=1&ev=PageView" srcset="https://www.facebook.com/tr?id=1 2x" height="1">
<iframe src="https://td.doubleclick.net/x"></iframe>
<noscript><img height="1" width="1" src="https://www.facebook.com/tr?id=123&ev=PageView&noscript=1"/></noscript>
<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-1" height="0"></iframe></noscript>
</body></html>"#;

#[test]
fn trackers_are_neutralized_without_consent() {
    let out = rewrite(PAGE, Grants::NONE);
    assert!(out.contains(r#"<script async data-src="https://www.googletagmanager.com/gtag/js?id=G-1" type="text/plain" data-consent-category="analytics"></script>"#), "{out}");
    assert!(out.contains(
        r#"<script type="text/plain" data-consent-category="analytics">window.dataLayer"#
    ));
    assert!(out.contains(r#"<script src="/app.js"></script>"#));
    assert!(out.contains(r#"<script>console.log("first party")</script>"#));
    assert!(out.contains(r#"<script type="application/ld+json">{"@type":"Product"}</script>"#));
    assert!(out.contains("<script></script>"));
    assert!(out.contains(
        r#"<script type="text/plain" data-consent-category="marketing">!function(f,b,e,v"#
    ));
    assert!(!out.contains("preconnect"), "tracker preconnect removed");
    assert!(out.contains(r#"<link rel="stylesheet" href="/app.css">"#));
    assert!(out.contains(r#"<img src="/logo.png" alt="logo">"#));
    assert!(out.contains(r#"<img data-src="https://www.facebook.com/tr?id=1&amp;ev=PageView" data-srcset="https://www.facebook.com/tr?id=1 2x" height="1" data-consent-category="marketing">"#) || out.contains(r#"data-src="https://www.facebook.com/tr?id=1&ev=PageView""#), "{out}");
    assert!(out.contains(r#"<iframe data-src="https://td.doubleclick.net/x" data-consent-category="marketing"></iframe>"#), "{out}");
    assert!(out.contains(r#"<noscript><img height="1" width="1" data-src="https://www.facebook.com/tr?id=123&ev=PageView&noscript=1" data-consent-category="marketing"/></noscript>"#), "{out}");
    assert!(out.contains(r#"<iframe data-src="https://www.googletagmanager.com/ns.html?id=GTM-1" data-consent-category="analytics" height="0">"#), "{out}");
}

/// The asynchronous ga.js snippet as Google's ga.js documentation gave it to paste (and as
/// pages still carry it, e.g. developer.mozilla.org's old pages).
#[test]
fn the_classic_google_analytics_snippet_is_neutralized() {
    let page = r#"<html><head><script type="text/javascript">
  var _gaq = _gaq || [];
  _gaq.push(['_setAccount', 'UA-XXXXX-X']);
  _gaq.push(['_trackPageview']);
  (function() {
    var ga = document.createElement('script'); ga.type = 'text/javascript'; ga.async = true;
    ga.src = ('https:' == document.location.protocol ? 'https://ssl' : 'http://www') + '.google-analytics.com/ga.js';
    var s = document.getElementsByTagName('script')[0]; s.parentNode.insertBefore(ga, s);
  })();
</script></head><body></body></html>"#;
    let out = rewrite(page, Grants::NONE);
    assert!(
        out.contains(r#"<script type="text/javascript"></script><script type="text/plain" data-consent-category="analytics">"#),
        "{out}"
    );
    let analytics = Grants::from_categories([Category::Analytics]);
    assert_eq!(rewrite(page, analytics), page);
}

/// Next.js streams the rendered page as data scripts; a tag manager snippet the page renders
/// appears inside one as a string (time.com). The chunk is data the app needs: left alone.
#[test]
fn framework_data_scripts_are_never_neutralized() {
    let page = concat!(
        r#"<html><head><script>(self.__next_f=self.__next_f||[]).push([0])</script>"#,
        r#"<script>self.__next_f.push([1,"15:["$","script",null,{"dangerouslySetInnerHTML":{"__html":"window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('config','G-1');"}}]
"])</script>"#,
        r#"<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}gtag('config','G-1');</script>"#,
        r#"</head><body></body></html>"#
    );
    let out = rewrite(page, Grants::NONE);
    assert!(
        out.contains(r#"<script>self.__next_f.push([1,"15:"#),
        "{out}"
    );
    // The page's own copy of the snippet is still made inert.
    assert!(
        out.contains(r#"<script></script><script type="text/plain" data-consent-category="analytics">window.dataLayer"#),
        "{out}"
    );
}

/// Loaders found on real pages (theverge.com, huffpost.com, fox13now.com) that write their
/// script tag from code, so no blocklist rule sees a URL.
#[test]
fn ad_and_audience_loaders_are_neutralized() {
    for (text, cat) in [
        ("var gads=document.createElement('script');gads.src='//www.googletagservices.com/tag/js/gpt.js';", "marketing"),
        ("document.write(unescape(\"%3Cscript src='\" + (document.location.protocol == \"https:\" ? \"https://sb\" : \"http://b\") + \".scorecardresearch.com/beacon.js'%3E%3C/script%3E\"));", "analytics"),
        ("var _sf_async_config={uid:1,domain:'x.test'};function loadChartbeat(){}", "analytics"),
    ] {
        let page = format!("<script>{text}</script>");
        let out = rewrite(&page, Grants::NONE);
        let inert = format!("<script></script><script type=\"text/plain\" data-consent-category=\"{cat}\">");
        assert!(out.starts_with(&inert), "{out}");
    }
}

#[test]
fn consented_categories_are_left_alone() {
    let analytics = Grants::from_categories([Category::Analytics]);
    let out = rewrite(PAGE, analytics);
    assert!(out.contains(
        r#"<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>"#
    ));
    assert!(out.contains("<script>window.dataLayer"));
    assert!(out.contains(r#"data-consent-category="marketing">!function"#));
    assert!(!rules().needed(Grants::ALL));
    assert!(rules().needed(analytics));
}

#[test]
fn any_chunking_gives_the_same_output() {
    let whole = rewrite(PAGE, Grants::NONE);
    assert_eq!(rewrite_chunks(PAGE, Grants::NONE, &mut || 1), whole);
    let mut x: u32 = 7;
    for _ in 0..20 {
        let out = rewrite_chunks(PAGE, Grants::NONE, &mut || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as usize % 97 + 1
        });
        assert_eq!(out, whole);
    }
}

#[test]
fn a_page_without_trackers_is_byte_identical() {
    let page = "<!DOCTYPE html>\n<html lang=en><HEAD><meta charset=utf-8><title>x &amp; y</title>\n<script>var a = '<b>'; if (a < 3) {}</script><SCRIPT SRC=/x.js defer></SCRIPT></HEAD>\n<body class='a'  id=\"b\"><img src=/a.png><!-- comment --><p>text<br/>\r\n</body></html>";
    assert_eq!(rewrite(page, Grants::NONE), page);
    assert_eq!(rewrite_chunks(page, Grants::NONE, &mut || 3), page);
}

#[test]
fn garbage_does_not_panic() {
    let mut x: u32 = 1;
    for len in [0usize, 1, 100, 10_000] {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b"<>/=\"' scriptimgsrc\n\0\xff"[(x >> 16) as usize % 21]
            })
            .collect();
        let mut n = Neutralizer::new(Grants::NONE, "https://s.test/", rules(), None).unwrap();
        let _ = n.write(&junk);
        let _ = n.finish();
    }
}

#[test]
fn big_pages_stream_within_the_memory_limit() {
    let mut page = String::from("<html><body>");
    while page.len() < 5 * 1024 * 1024 {
        page.push_str("<div class=\"row\"><p>Some product text &amp; more</p><img src=\"/i.png\"><script src=\"https://www.google-analytics.com/analytics.js\"></script></div>\n");
    }
    page.push_str("</body></html>");
    let mut n = Neutralizer::new(Grants::NONE, "https://s.test/", rules(), None).unwrap();
    let mut total = 0;
    for chunk in page.as_bytes().chunks(16 * 1024) {
        let out = n.write(chunk).unwrap();
        // Output keeps flowing: nothing accumulates beyond a chunk or so.
        assert!(out.len() < 64 * 1024);
        total += out.len();
    }
    total += n.finish().unwrap().len();
    assert!(total > page.len());
    assert!(n.take_neutralized().len() > 10_000);
}

fn round_trip(encoding: &str, compress: fn(&[u8]) -> Vec<u8>, decompress: fn(&[u8]) -> Vec<u8>) {
    let expected = rewrite(PAGE, Grants::NONE);
    let compressed = compress(PAGE.as_bytes());
    let mut codec = Codec::for_encoding(Some(encoding)).unwrap();
    let mut n = Neutralizer::new(Grants::NONE, "https://shop.test/p/1", rules(), None).unwrap();
    let mut out = Vec::new();
    for chunk in compressed.chunks(37) {
        let plain = codec.decode(chunk).unwrap();
        let rewritten = n.write(&plain).unwrap();
        out.extend(codec.encode(&rewritten).unwrap());
    }
    let plain = codec.decode_finish().unwrap();
    let mut rewritten = n.write(&plain).unwrap();
    rewritten.extend(n.finish().unwrap());
    out.extend(codec.encode(&rewritten).unwrap());
    out.extend(codec.encode_finish().unwrap());
    assert_eq!(
        String::from_utf8(decompress(&out)).unwrap(),
        expected,
        "{encoding}"
    );
}

#[test]
fn compressed_bodies_round_trip() {
    round_trip("gzip", gz, gunzip);
    round_trip(
        "deflate",
        |d| {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(d).unwrap();
            e.finish().unwrap()
        },
        |d| {
            let mut s = Vec::new();
            flate2::read::ZlibDecoder::new(d)
                .read_to_end(&mut s)
                .unwrap();
            s
        },
    );
    round_trip(
        "br",
        |d| {
            let mut w = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
            w.write_all(d).unwrap();
            w.into_inner()
        },
        |d| {
            let mut s = Vec::new();
            brotli::Decompressor::new(d, 4096)
                .read_to_end(&mut s)
                .unwrap();
            s
        },
    );
    assert!(Codec::for_encoding(Some("zstd")).is_none());
}

#[test]
fn urls_resolve_against_the_page() {
    let page = url::Url::parse("https://shop.test/a/b.html?q=1").unwrap();
    let p = Some(&page);
    assert_eq!(
        resolve_url(p, "//cdn.test/x.js").unwrap(),
        "https://cdn.test/x.js"
    );
    assert_eq!(resolve_url(p, "/x.js").unwrap(), "https://shop.test/x.js");
    assert_eq!(resolve_url(p, "x.js").unwrap(), "https://shop.test/a/x.js");
    assert_eq!(resolve_url(p, "HTTP://A.test/").unwrap(), "HTTP://A.test/");
    assert!(resolve_url(p, "data:image/gif;base64,xx").is_none());
    // As a browser resolves them (WHATWG URL standard): dot segments, a query alone, other
    // schemes.
    assert_eq!(resolve_url(p, "../x.js").unwrap(), "https://shop.test/x.js");
    assert_eq!(
        resolve_url(p, "?v=2").unwrap(),
        "https://shop.test/a/b.html?v=2"
    );
    assert!(resolve_url(p, "mailto:a@shop.test").is_none());
    assert!(resolve_url(p, "").is_none());
    // A page URL that does not parse: absolute URLs still resolve, relative ones cannot.
    assert_eq!(
        resolve_url(None, "https://a.test/x.js").unwrap(),
        "https://a.test/x.js"
    );
    assert!(resolve_url(None, "x.js").is_none());
}

/// Runs a body through [`BodyRewrite`] in chunks; returns the output and the failures seen.
fn body_rewrite(encoding: Option<&str>, body: &[u8], chunk: usize) -> (Vec<u8>, Vec<String>) {
    let codec = Codec::for_encoding(encoding).unwrap();
    let n = Neutralizer::new(Grants::NONE, "https://shop.test/p/1", rules(), None).unwrap();
    let mut rw = BodyRewrite::new(codec, n);
    let (mut out, mut failures) = (Vec::new(), Vec::new());
    let chunks: Vec<&[u8]> = body.chunks(chunk).collect();
    for (i, c) in chunks.iter().enumerate() {
        let o = rw.chunk(c, i + 1 == chunks.len());
        out.extend(o.bytes);
        failures.extend(o.failure);
    }
    (out, failures)
}

/// Pseudo-random hex: text gzip cannot shrink much.
fn noise(len: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"0123456789abcdef"[(x & 15) as usize])
        })
        .collect()
}

#[test]
fn a_compressed_page_with_nothing_to_neutralize_goes_out_as_the_origin_sent_it() {
    let page =
        "<html><head><SCRIPT type='text/javascript'>var a=1</SCRIPT></head><body>hi</body></html>";
    let compressed = gz(page.as_bytes());
    let (out, failures) = body_rewrite(Some("gzip"), &compressed, 7);
    assert!(failures.is_empty());
    assert_eq!(out, compressed);
}

#[test]
fn a_compressed_page_with_a_tracker_is_re_encoded() {
    let compressed = gz(PAGE.as_bytes());
    let (out, _) = body_rewrite(Some("gzip"), &compressed, 37);
    assert_ne!(out, compressed);
    assert_eq!(
        String::from_utf8(gunzip(&out)).unwrap(),
        rewrite(PAGE, Grants::NONE)
    );
}

#[test]
fn a_compressed_page_past_the_hold_limit_streams_re_encoded() {
    let page = format!(
        "<html><body><p>{}</p>{PAGE}</body></html>",
        noise(3 * HOLD_LIMIT)
    );
    let compressed = gz(page.as_bytes());
    assert!(compressed.len() > HOLD_LIMIT);
    let (out, failures) = body_rewrite(Some("gzip"), &compressed, 16 * 1024);
    assert!(failures.is_empty());
    let expected = rewrite(&page, Grants::NONE);
    assert_ne!(expected, page);
    assert_eq!(String::from_utf8(gunzip(&out)).unwrap(), expected);
}

#[test]
fn a_rewriter_failure_before_any_change_loses_nothing() {
    // A 2 MiB attribute overflows lol_html's memory limit when it spans chunks.
    let page = format!(
        "<html><body><img data-x=\"{}\" src=\"/logo.png\">after{PAGE}</body></html>",
        "x".repeat(2 * 1024 * 1024)
    );
    let (out, failures) = body_rewrite(None, page.as_bytes(), 64 * 1024);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        out == page.as_bytes(),
        "{} of {} bytes",
        out.len(),
        page.len()
    );
    // Compressed and held: the origin's bytes exactly.
    let compressed = gz(page.as_bytes());
    let (out, failures) = body_rewrite(Some("gzip"), &compressed, 100);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        out == compressed,
        "{} of {} bytes",
        out.len(),
        compressed.len()
    );
    // Compressed past the hold limit: re-encoded, and the decoded page is whole.
    let page = format!(
        "<html><body><img data-x=\"{}\" src=\"/logo.png\">after{PAGE}</body></html>",
        noise(2 * 1024 * 1024)
    );
    let (out, failures) = body_rewrite(Some("gzip"), &gz(page.as_bytes()), 16 * 1024);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(gunzip(&out) == page.as_bytes());
}

#[test]
fn a_rewriter_failure_after_a_change_passes_the_rest_through() {
    let tail = "<p>the rest</p></body></html>";
    let page = format!(
        "<html><body>{PAGE}<img data-x=\"{}\" src=\"/logo.png\">after{tail}",
        "x".repeat(2 * 1024 * 1024)
    );
    let (out, failures) = body_rewrite(None, page.as_bytes(), 64 * 1024);
    assert_eq!(failures.len(), 1);
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("data-consent-category"));
    assert!(out.ends_with(&format!("src=\"/logo.png\">after{tail}")));
}

#[test]
fn bytes_that_are_not_utf_8_in_held_text_pass_unchanged() {
    for page in [
        &b"<script>var a='\0';</script><p>x</p>"[..],
        &b"<script>var a='\xff\xfe';</script><p>x</p>"[..],
        &b"<p>\xff</p><script>x\r\ny</script>"[..],
        &b"<script>a='\xe4\xf6'</script><noscript><img src=/a.png alt='\xe4'></noscript>"[..],
    ] {
        for chunk in [1, 2, 5, 7, 64] {
            let (out, failures) = body_rewrite(None, page, chunk);
            assert!(failures.is_empty());
            assert_eq!(out, page, "{chunk}: {:?}", String::from_utf8_lossy(&out));
        }
    }
}

/// The snippets' categories without repeats decide `needed` as the one-per-snippet list did,
/// for every visitor's grants, with the default snippets and with a list of one category.
#[test]
fn snippet_categories_deduplicated_decide_needed_the_same() {
    let one = vec![(Category::Marketing, "fbq(".to_string()); 3];
    for patterns in [default_snippets(), one, Vec::new()] {
        let snippets = Snippets::new(patterns).unwrap();
        for mask in 0..8u8 {
            let grants = Grants::from_categories(
                Category::OPTIONAL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, c)| *c),
            );
            let per_snippet = snippets.categories.iter().any(|c| !grants.allows(*c));
            let covered = snippets.covered.iter().any(|c| !grants.allows(*c));
            assert_eq!(covered, per_snippet, "{grants:?}");
        }
    }
}

/// The consent-mode defaults element inserted into `html` (chunks of `size` bytes).
fn with_defaults(html: &str, size: usize) -> String {
    let script = Arc::<str>::from("<script>D</script>");
    let mut n = Neutralizer::with_head_script(
        Grants::NONE,
        "https://shop.test/",
        rules(),
        None,
        Some(script),
        None,
    )
    .unwrap();
    let mut out = Vec::new();
    for chunk in html.as_bytes().chunks(size.max(1)) {
        out.extend(n.write(chunk).unwrap());
    }
    out.extend(n.finish().unwrap());
    String::from_utf8(out).unwrap()
}

#[test]
fn the_defaults_script_keeps_a_leading_charset_declaration_first() {
    for (page, want) in [
        // A leading charset declaration stays first (within the prescan's 1024 bytes); the
        // script follows it, before every other element and script.
        (
            "<html><head><meta charset=utf-8><title>t</title><script>a</script></head></html>",
            "<html><head><meta charset=utf-8><script>D</script><title>t</title><script>a</script></head></html>",
        ),
        (
            "<HEAD>\n  <META CHARSET=\"utf-8\">\n<script>a</script>",
            "<HEAD>\n  <META CHARSET=\"utf-8\"><script>D</script>\n<script>a</script>",
        ),
        (
            "<head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"><script>a</script>",
            "<head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"><script>D</script><script>a</script>",
        ),
        // Any other first element: the script goes before it. A `<meta>` CSP is not passed
        // over (it would apply to the script); nor is a charset after another element.
        (
            "<head><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'none'\"><meta charset=utf-8>",
            "<head><script>D</script><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'none'\"><meta charset=utf-8>",
        ),
        (
            "<head><title>t</title><meta charset=utf-8>",
            "<head><script>D</script><title>t</title><meta charset=utf-8>",
        ),
        (
            "<head><script>a</script></head>",
            "<head><script>D</script><script>a</script></head>",
        ),
        // An empty head: before its end tag.
        (
            "<head></head><body><script>a</script></body>",
            "<head><script>D</script></head><body><script>a</script></body>",
        ),
        // No head tag: before the first script or body, as before.
        (
            "<!doctype html><title>t</title><script>a</script>",
            "<!doctype html><title>t</title><script>D</script><script>a</script>",
        ),
    ] {
        for size in [1, 3, 7, usize::MAX] {
            assert_eq!(with_defaults(page, size), want, "{page} in chunks of {size}");
        }
    }
}

/// `html` rewritten with consentgate's own CSP nonce `NNN` (chunks of `size` bytes).
fn with_csp_nonce(html: &str, size: usize, nonce: Option<&str>) -> String {
    let mut n = Neutralizer::with_head_script(
        Grants::NONE,
        "https://shop.test/",
        rules(),
        None,
        None,
        nonce,
    )
    .unwrap();
    let mut out = Vec::new();
    for chunk in html.as_bytes().chunks(size.max(1)) {
        out.extend(n.write(chunk).unwrap());
    }
    out.extend(n.finish().unwrap());
    String::from_utf8(out).unwrap()
}

#[test]
fn scripts_of_a_meta_policy_nonce_move_to_consentgates_nonce() {
    let page = "<head><script nonce=\"abc\">early</script>\
<meta http-equiv=\"content-security-policy\" content=\"script-src  'NONCE-abc' 'strict-dynamic'; style-src 'nonce-abc'\">\
<script nonce=\"abc\">a</script><script nonce=\"zzz\">b</script><style nonce=\"abc\"></style>\
<script nonce=\"abc\">fbq('init','1');</script></head>";
    let want = "<head><script nonce=\"abc\">early</script>\
<meta http-equiv=\"content-security-policy\" content=\"script-src 'NONCE-abc' 'nonce-NNN' 'strict-dynamic'; style-src 'nonce-abc' 'nonce-NNN'\">\
<script nonce=\"NNN\">a</script><script nonce=\"zzz\">b</script><style nonce=\"abc\"></style>\
<script nonce=\"NNN\"></script><script type=\"text/plain\" data-consent-category=\"marketing\" nonce=\"NNN\">fbq('init','1');</script></head>";
    for size in [1, 5, usize::MAX] {
        assert_eq!(
            with_csp_nonce(page, size, Some("NNN")),
            want,
            "chunks of {size}"
        );
    }
    // Without a nonce of consentgate's own, nothing moves (the tracker snippet still goes).
    let out = with_csp_nonce(page, usize::MAX, None);
    assert!(
        !out.contains("NNN") && out.contains("<script nonce=\"abc\">a</script>"),
        "{out}"
    );
    // A meta policy without a script nonce, or another http-equiv: left alone.
    for page in [
        "<head><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'self'\"><script nonce=\"abc\">a</script>",
        "<head><meta http-equiv=\"refresh\" content=\"'nonce-abc'\"><script nonce=\"abc\">a</script>",
    ] {
        assert_eq!(with_csp_nonce(page, 3, Some("NNN")), page);
    }
}
