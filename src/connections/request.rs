//! Checks on a parsed request header that RFC 9112 asks of a server and pingora leaves to the
//! application: a valid `Host` (§3.2), the target form (§3.2.2), and body framing this proxy
//! can forward (§6.1). Pure: the proxy's `early_request_filter` applies the result.
//!
//! pingora itself already refuses several `Host` fields, userinfo in the authority, and a
//! `Host` that differs from an absolute-form target's authority.
//!
//! An HTTP/2 request names its host in `:authority` (RFC 9113 8.3.1), which pingora puts in
//! the request's URI; `Host` may be absent then, and pingora writes it from the authority for
//! the HTTP/1.1 origin (pingora refuses a `Host` that differs from `:authority`). Its cookies may come in several `cookie` fields (RFC 9113 8.2.3), which
//! are joined into one before the request is read or forwarded.

use super::framing::{BodyFraming, FramingBuilder, FramingError, FramingField};
use http::header::{CONTENT_LENGTH, COOKIE, HOST, TRANSFER_ENCODING, UPGRADE};
use http::{Uri, Version};
use pingora::http::authority::{raw_target_authority, RawTargetAuthority};
use pingora::http::RequestHeader;

/// Why a request is refused. Each closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// HTTP/1.1 without `Host` (RFC 9112 §3.2: 400).
    MissingHost,
    /// A `Host` value that is not `uri-host [":" port]` (RFC 9112 §3.2: 400).
    InvalidHost,
    /// An absolute-form target whose scheme is not http(s).
    BadTarget,
    Framing(FramingError),
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Framing(f) => f.status(),
            _ => 400,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refusal::MissingHost => "missing_host",
            Refusal::InvalidHost => "invalid_host",
            Refusal::BadTarget => "bad_target",
            Refusal::Framing(f) => f.reason(),
        }
    }
}

/// What the proxy changes on an accepted request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Absolute-form target: the origin-form target to forward, and the authority that replaces
    /// `Host` (RFC 9112 §3.2.2). pingora forwards the target as received otherwise.
    pub origin_form: Option<(Uri, String)>,
    /// An `Upgrade` request: once it is answered the connection is either a tunnel or closed
    /// (the wire tracker stops following it).
    pub upgrade: bool,
    pub framing: Option<BodyFraming>,
    /// An HTTP/2 request's `cookie` fields joined into the one `Cookie` line that replaces them.
    pub joined_cookie: Option<Vec<u8>>,
}

/// Checks one request header.
pub fn check(req: &RequestHeader) -> Result<Accepted, Refusal> {
    // (Several Host fields were refused by pingora already.)
    match req.headers.get(HOST) {
        // HTTP/2: `:authority` (already parsed into the URI) stands for it.
        None if req.version == Version::HTTP_2 && req.uri.authority().is_some() => {}
        None if req.version != Version::HTTP_10 && req.version != Version::HTTP_09 => {
            return Err(Refusal::MissingHost)
        }
        Some(h) if !valid_host(h.as_bytes()) => return Err(Refusal::InvalidHost),
        _ => {}
    }
    let mut framing = FramingBuilder::default();
    for v in req.headers.get_all(TRANSFER_ENCODING) {
        framing.value(FramingField::TransferEncoding, v.as_bytes());
    }
    for v in req.headers.get_all(CONTENT_LENGTH) {
        framing.value(FramingField::ContentLength, v.as_bytes());
    }
    let framing = framing.finish().map_err(Refusal::Framing)?;
    let mut accepted = Accepted {
        upgrade: req.headers.contains_key(UPGRADE),
        framing: Some(framing),
        joined_cookie: joined_cookie_fields(req),
        ..Accepted::default()
    };
    // pingora keeps an absolute-form target verbatim for the wire and only its path in `uri`.
    if let RawTargetAuthority::Absolute {
        scheme, authority, ..
    } = raw_target_authority(req.raw_path())
    {
        if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
            return Err(Refusal::BadTarget);
        }
        if !valid_host(authority) {
            return Err(Refusal::InvalidHost);
        }
        let authority = std::str::from_utf8(authority).map_err(|_| Refusal::InvalidHost)?;
        accepted.origin_form = Some((req.uri.clone(), authority.to_string()));
    }
    Ok(accepted)
}

/// RFC 9113 8.2.3: "If there are multiple Cookie header fields after decompression, these MUST
/// be concatenated into a single octet string using the two-octet delimiter of 0x3b, 0x20
/// ("; ") before being passed into a non-HTTP/2 context such as an HTTP/1.1 connection". `None`
/// unless an HTTP/2 request has more than one. Linear in the header's bytes, which the HTTP/2
/// header list limit bounds.
pub fn joined_cookie_fields(req: &RequestHeader) -> Option<Vec<u8>> {
    if req.version != Version::HTTP_2 {
        return None;
    }
    let mut fields = req.headers.get_all(COOKIE).iter();
    let first = fields.next()?;
    let second = fields.next()?;
    let mut joined = first.as_bytes().to_vec();
    for v in std::iter::once(second).chain(fields) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    Some(joined)
}

/// RFC 3986 reg-name bytes besides `%`: unreserved and sub-delims.
static REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    t
};

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP literal in brackets,
/// or a reg-name (unreserved, pct-encoded, sub-delims; IPv4 addresses are reg-names too), and
/// an optional all-digit port. An empty value is allowed (a target without authority).
pub fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|b| *b == b']') else {
            return false;
        };
        let literal = &rest[..end];
        let ok = std::str::from_utf8(literal)
            .ok()
            .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
        if !ok {
            return false;
        }
        match &rest[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&b""[..], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|b| *b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    if port.is_some_and(|p| p.len() > 5 || !p.iter().all(u8::is_ascii_digit)) {
        return false;
    }
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if b == b'%' {
            let hex = |j: usize| host.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !REG_NAME[b as usize] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw_target: &str, version: Version, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", raw_target.as_bytes(), None).unwrap();
        r.set_version(version);
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn host_values_follow_rfc_3986() {
        // Valid: RFC 9110 §7.2 / RFC 3986 §3.2.2 examples and forms.
        for ok in [
            "www.example.org",
            "www.example.org:8080",
            "192.0.2.16:80",
            "[2001:db8::7]",
            "[2001:db8::7]:443",
            "xn--bcher-kva.example",
            "a%2Eb",
            "",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        // The issue's `a.example b`, and other values no authority can have.
        for bad in [
            "a.example b",
            "a.example:80x",
            "a/b",
            "[2001:db8::7",
            "[not-v6]",
            "[::1]x",
            "a%2",
            "a%zz",
            "a\tb",
            "a:123456",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn http_1_1_needs_a_valid_host_and_1_0_may_go_without() {
        let r = req("/", Version::HTTP_11, &[]);
        assert_eq!(check(&r), Err(Refusal::MissingHost));
        let r = req("/", Version::HTTP_11, &[("Host", "a.example b")]);
        assert_eq!(check(&r), Err(Refusal::InvalidHost));
        let r = req("/", Version::HTTP_10, &[]);
        assert!(check(&r).is_ok());
    }

    #[test]
    fn http_2_names_its_host_in_the_authority_and_its_cookie_fields_are_joined() {
        // RFC 9113 8.2.3's own example: the two fields are one `Cookie: a=b; c=d; e=f`.
        // As pingora's HTTP/2 session makes it: from the request's parts, `:authority` in
        // the URI.
        let h2 = |uri: &str, cookies: &[&str]| {
            let mut b = http::Request::builder().uri(uri).version(Version::HTTP_2);
            for c in cookies {
                b = b.header(COOKIE, *c);
            }
            RequestHeader::from(b.body(()).unwrap().into_parts().0)
        };
        let r = h2("https://www.example.org/", &["a=b", "c=d", "e=f"]);
        let a = check(&r).unwrap();
        assert_eq!(a.joined_cookie.as_deref(), Some(&b"a=b; c=d; e=f"[..]));
        // One field: nothing to join. HTTP/1.1 is left as it came.
        let r = h2("https://www.example.org/", &["a=b"]);
        assert_eq!(check(&r).unwrap().joined_cookie, None);
        let r = req(
            "/",
            Version::HTTP_11,
            &[("Host", "a"), ("Cookie", "a=b"), ("Cookie", "c=d")],
        );
        assert_eq!(check(&r).unwrap().joined_cookie, None);
        // Without `:authority` (and `Host`), HTTP/2 is refused like HTTP/1.1.
        let r = h2("/", &[]);
        assert_eq!(check(&r), Err(Refusal::MissingHost));
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_its_authority() {
        // RFC 9112 §3.2.2 example target.
        let r = req(
            "http://www.example.org/pub/WWW/TheProject.html?x=1",
            Version::HTTP_11,
            &[("Host", "www.example.org")],
        );
        let a = check(&r).unwrap();
        let (uri, authority) = a.origin_form.unwrap();
        assert_eq!(uri.to_string(), "/pub/WWW/TheProject.html?x=1");
        assert_eq!(authority, "www.example.org");
        let r = req("ftp://www.example.org/x", Version::HTTP_10, &[]);
        assert_eq!(check(&r), Err(Refusal::BadTarget));
    }

    #[test]
    fn transfer_codings_other_than_chunked_get_501() {
        let r = req(
            "/",
            Version::HTTP_11,
            &[("Host", "a"), ("Transfer-Encoding", "gzip, chunked")],
        );
        let e = check(&r).unwrap_err();
        assert_eq!(
            (e.status(), e.reason()),
            (501, "unsupported_transfer_coding")
        );
        let r = req(
            "/",
            Version::HTTP_11,
            &[
                ("Host", "a"),
                ("Transfer-Encoding", "chunked"),
                ("Content-Length", "3"),
            ],
        );
        assert_eq!(check(&r).unwrap_err().status(), 400);
    }
}
