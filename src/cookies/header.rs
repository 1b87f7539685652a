//! Splitting request `Cookie` headers into cookies without copying or re-encoding them, so the
//! ones that are forwarded go out byte-for-byte as the browser sent them.
//!
//! Hand-written rather than `cookie::Cookie::split_parse`: that works on `&str` (a header that
//! is not UTF-8 would lose every cookie, consent included), gives no slice of the original pair
//! to forward, refuses a pair without `=` (RFC 6265bis 5.7 reads it as a cookie with an empty
//! name) and builds a `Cookie` per pair, where this runs on every request without allocating.

/// One `name=value` pair of a request `Cookie` header, as slices of the original bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestCookie<'a> {
    /// Bytes before the first `=`, trimmed of spaces and tabs. Empty for a pair without `=`
    /// (RFC 6265bis 5.7: such a pair is a cookie with an empty name).
    pub name: &'a [u8],
    /// Bytes after the first `=`, trimmed; the whole pair when it has no `=`.
    pub value: &'a [u8],
    /// The whole pair, trimmed: what is forwarded when the cookie is kept.
    pub pair: &'a [u8],
}

impl<'a> RequestCookie<'a> {
    /// The name as text; a name that is not UTF-8 reads as empty (and so classifies as unknown).
    pub fn name_str(&self) -> &'a str {
        std::str::from_utf8(self.name).unwrap_or("")
    }
}

/// Iterates the cookies of one `Cookie` header value (`a=1; b=2`). Empty pairs are skipped.
pub fn split_cookie_header(header: &[u8]) -> impl Iterator<Item = RequestCookie<'_>> {
    header.split(|b| *b == b';').filter_map(cookie_pair)
}

/// One `;`-separated piece of a `Cookie` header as a cookie; `None` when it is blank.
fn cookie_pair(pair: &[u8]) -> Option<RequestCookie<'_>> {
    let pair = trim(pair);
    if pair.is_empty() {
        return None;
    }
    Some(match memchr::memchr(b'=', pair) {
        Some(eq) => RequestCookie {
            name: trim(&pair[..eq]),
            value: trim(&pair[eq + 1..]),
            pair,
        },
        None => RequestCookie {
            name: b"",
            value: pair,
            pair,
        },
    })
}

/// All cookies of a request, across every `Cookie` header line (HTTP/2 clients send one line per
/// cookie; RFC 9113 8.2.3).
#[derive(Debug, Default)]
pub struct CookieJar<'a> {
    // Inline for typical requests: no allocation on the request path.
    cookies: smallvec::SmallVec<[RequestCookie<'a>; 16]>,
    overflow: usize,
}

impl<'a> CookieJar<'a> {
    /// Every cookie of the lines (no limit: for tools and tests; the proxy uses
    /// [`CookieJar::from_headers_limited`]).
    pub fn from_headers(lines: impl IntoIterator<Item = &'a [u8]>) -> Self {
        Self::from_headers_limited(lines, usize::MAX)
    }

    /// The first `max` cookies of the lines; the rest are only counted ([`CookieJar::overflow`]),
    /// so the work on a request is linear in its bytes and the jar bounded whatever it carries.
    pub fn from_headers_limited(lines: impl IntoIterator<Item = &'a [u8]>, max: usize) -> Self {
        let mut cookies = smallvec::SmallVec::new();
        let mut overflow = 0;
        for line in lines {
            // memchr for the separators: this runs on every request.
            let mut rest = line;
            loop {
                let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
                if let Some(c) = cookie_pair(&rest[..end]) {
                    if cookies.len() < max {
                        cookies.push(c);
                    } else {
                        overflow += 1;
                    }
                }
                if end == rest.len() {
                    break;
                }
                rest = &rest[end + 1..];
            }
        }
        CookieJar { cookies, overflow }
    }

    /// Cookies past the limit: present in the request, not read.
    pub fn overflow(&self) -> usize {
        self.overflow
    }

    pub fn iter(&self) -> impl Iterator<Item = &RequestCookie<'a>> {
        self.cookies.iter()
    }

    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// Every value sent under `name` (a browser sends duplicates when cookies of the same name
    /// exist for several paths or domains).
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.cookies
            .iter()
            .filter(move |c| c.name == name.as_bytes())
            .map(|c| c.value)
    }

    /// Names of cookies starting with `prefix`, with their values.
    pub fn with_prefix<'s>(
        &'s self,
        prefix: &'s str,
    ) -> impl Iterator<Item = &'s RequestCookie<'a>> + 's {
        self.cookies
            .iter()
            .filter(move |c| c.name.starts_with(prefix.as_bytes()))
    }
}

/// Trims spaces and tabs only (RFC 6265's optional whitespace), nothing else.
fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !matches!(c, b' ' | b'\t'));
    match start {
        None => &[],
        Some(s) => {
            let end = b.iter().rposition(|c| !matches!(c, b' ' | b'\t')).unwrap();
            &b[s..=end]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(h: &str) -> Vec<(&str, &str)> {
        split_cookie_header(h.as_bytes())
            .map(|c| {
                (
                    std::str::from_utf8(c.name).unwrap(),
                    std::str::from_utf8(c.value).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn splits_and_trims() {
        assert_eq!(
            names("a=1; b=2;c=3 ;  ; d"),
            vec![("a", "1"), ("b", "2"), ("c", "3"), ("", "d")]
        );
        assert_eq!(names("x=a=b"), vec![("x", "a=b")]);
        assert!(names("").is_empty());
        assert!(names(" ; ;").is_empty());
    }

    #[test]
    fn pair_is_the_original_bytes() {
        let h = b"  SESSIONID=\"q w\";_ga=GA1.2.3";
        let pairs: Vec<&[u8]> = split_cookie_header(h).map(|c| c.pair).collect();
        assert_eq!(pairs, vec![&b"SESSIONID=\"q w\""[..], &b"_ga=GA1.2.3"[..]]);
    }

    #[test]
    fn jar_stops_reading_at_the_limit_and_counts_the_rest() {
        let jar = CookieJar::from_headers_limited([&b"a=1; b=2"[..], &b"c=3; ; d=4"[..]], 3);
        let names: Vec<&[u8]> = jar.iter().map(|c| c.name).collect();
        assert_eq!(names, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(jar.overflow(), 1, "blank pairs are not cookies");
        assert_eq!(CookieJar::from_headers([&b"a=1; b=2"[..]]).overflow(), 0);
    }

    #[test]
    fn jar_reads_every_line() {
        let jar = CookieJar::from_headers([&b"a=1"[..], &b"b=2; a=3"[..]]);
        assert_eq!(jar.len(), 3);
        assert_eq!(
            jar.values("a").collect::<Vec<_>>(),
            vec![&b"1"[..], &b"3"[..]]
        );
    }
}
