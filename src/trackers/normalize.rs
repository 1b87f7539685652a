//! The request path as the origin's router may see it (issue 8, item 8).
//!
//! A blocklist rule is written against the plain path (`/g/collect?`), but an origin router
//! decodes and resolves what it receives, so `/g/coll%65ct`, `/g/./collect`, `/g//collect`,
//! `/g%2Fcollect`, `/g/collect/` and `/g/collect;a` all reach the same handler. The blocklists
//! are therefore checked against the raw path and against the normalised forms below, and a
//! match on any of them blocks.
//!
//! - The standard form (RFC 3986 6.2.2): percent-encoded unreserved characters decoded
//!   (`ALPHA DIGIT - . _ ~`, 6.2.2.2) and dot segments removed (5.2.4). Every conforming server
//!   treats it as the same resource.
//! - The lenient form: the standard one, plus what common routers also do: `%2F` decoded to a
//!   slash, `;parameters` dropped from each segment (servlet containers), repeated slashes
//!   merged (nginx `merge_slashes`), and a trailing slash dropped (most frameworks route
//!   `/x/` and `/x` alike).
//!
//! Pure and linear in the path's length. Only the path is touched; the query goes on as sent.

/// The normalised forms of `path_and_query` that differ from it (zero, one or two, in the
/// order standard, lenient), each with the original query appended.
pub fn router_forms(path_and_query: &str) -> Vec<String> {
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    let mut out: Vec<String> = Vec::new();
    if !needs_normalising(path) {
        return out;
    }
    let standard = remove_dot_segments(&decode(path, false));
    let lenient = lenient_form(path);
    for form in [standard, lenient] {
        if form != path && !out.iter().any(|o| o[..o.len() - query.len()] == form) {
            out.push(form + query);
        }
    }
    out
}

/// Cheap test for the common case: nothing any form would change. (A dot segment starts with
/// `/.`; an escaped dot needs a `%`; `app.js` needs nothing.)
fn needs_normalising(path: &str) -> bool {
    memchr::memchr2(b'%', b';', path.as_bytes()).is_some()
        || memchr::memmem::find(path.as_bytes(), b"/.").is_some()
        || memchr::memmem::find(path.as_bytes(), b"//").is_some()
        || (path.len() > 1 && path.ends_with('/'))
}

fn lenient_form(path: &str) -> String {
    let decoded = decode(path, true);
    let without_params: Vec<&str> = decoded
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .collect();
    let mut merged = String::with_capacity(decoded.len());
    for seg in without_params {
        if !merged.ends_with('/') {
            merged.push('/');
        }
        merged.push_str(seg);
    }
    let mut p = remove_dot_segments(&merged);
    while p.len() > 1 && p.ends_with('/') {
        p.pop();
    }
    p
}

/// Percent-decodes unreserved characters (and `/` when `slash`); every other escape stays
/// as written, so the result names the same resource.
fn decode(path: &str, slash: bool) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let v = h * 16 + l;
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    out.push(v);
                    i += 3;
                    continue;
                }
                if slash && v == b'/' {
                    out.push(b'/');
                    i += 3;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    // Only ASCII was decoded into ASCII, and the rest copied: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 5.2.4 on an absolute path: `.` segments go, `..` removes the segment before it
/// (never above the root); a trailing `.` or `..` leaves a trailing slash.
pub fn remove_dot_segments(path: &str) -> String {
    let Some(rest) = path.strip_prefix('/') else {
        return path.to_string();
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.into_iter().enumerate() {
        match seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if i == last {
            out.push("");
        }
    }
    let mut p = String::with_capacity(path.len());
    p.push('/');
    p.push_str(&out.join("/"));
    p
}

#[cfg(test)]
#[path = "../../tests/support/tracker_spellings.rs"]
mod tracker_spellings;

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3986 5.4.1 and 5.4.2 ("Normal Examples", "Abnormal Examples"): each reference
    /// resolved against the base `http://a/b/c/d;p?q`, as the RFC's authors wrote the results.
    /// The merge (5.2.3) of the base path and a relative path is done here, so the test is
    /// of 5.2.4 alone; only path references are taken (not `g?y`, `#s`, or scheme ones).
    #[test]
    fn rfc3986_resolution_examples() {
        let cases = [
            ("g", "/b/c/g"),
            ("./g", "/b/c/g"),
            ("g/", "/b/c/g/"),
            ("/g", "/g"),
            (";x", "/b/c/;x"),
            ("g;x", "/b/c/g;x"),
            (".", "/b/c/"),
            ("./", "/b/c/"),
            ("..", "/b/"),
            ("../", "/b/"),
            ("../g", "/b/g"),
            ("../..", "/"),
            ("../../", "/"),
            ("../../g", "/g"),
            // Abnormal examples.
            ("../../../g", "/g"),
            ("../../../../g", "/g"),
            ("/./g", "/g"),
            ("/../g", "/g"),
            ("g.", "/b/c/g."),
            (".g", "/b/c/.g"),
            ("g..", "/b/c/g.."),
            ("..g", "/b/c/..g"),
            ("./../g", "/b/g"),
            ("./g/.", "/b/c/g/"),
            ("g/./h", "/b/c/g/h"),
            ("g/../h", "/b/c/h"),
            ("g;x=1/./y", "/b/c/g;x=1/y"),
            ("g;x=1/../y", "/b/c/y"),
        ];
        for (reference, want) in cases {
            let merged = if reference.starts_with('/') {
                reference.to_string()
            } else {
                format!("/b/c/{reference}")
            };
            assert_eq!(remove_dot_segments(&merged), want, "{reference}");
        }
    }

    /// RFC 3986 6.2.2.2: `%7E` and `~` are the same; reserved escapes are not decoded.
    #[test]
    fn only_unreserved_escapes_are_decoded() {
        assert_eq!(decode("/%7Euser/a%2Db%5F", false), "/~user/a-b_");
        assert_eq!(decode("/a%2Fb%3Fc%25", false), "/a%2Fb%3Fc%25");
        assert_eq!(decode("/a%2Fb%2f", true), "/a/b/");
        assert_eq!(decode("/%zz%4", false), "/%zz%4");
        assert_eq!(decode("/%C3%A9", false), "/%C3%A9");
    }

    #[test]
    fn the_issue_bypasses_normalise_to_the_plain_path() {
        use super::tracker_spellings::{PLAIN, SPELLINGS};
        for raw in SPELLINGS {
            let forms = router_forms(raw);
            assert!(forms.iter().any(|f| f == PLAIN), "{raw}: {forms:?}");
        }
    }

    #[test]
    fn plain_paths_have_no_other_form() {
        for raw in ["/", "/g/collect?v=2", "/shop/item-1?x=a.b;c", "/a/b.c.d"] {
            let forms = router_forms(raw);
            assert!(forms.iter().all(|f| f.as_str() != raw), "{raw}: {forms:?}");
        }
        assert!(router_forms("/").is_empty());
        assert!(!needs_normalising("/static/app.min.js"));
        assert!(needs_normalising("/a/./b") && needs_normalising("/a/.."));
        assert!(router_forms("/g/collect?v=2").is_empty());
        assert!(
            router_forms("/shop?q=a/./b").is_empty(),
            "the query is not touched"
        );
    }
}
