//! Who the client is, and what the origin is told about it (issue 10, "Requests the proxy
//! forwards"). Pure: the proxy passes the peer address, whether the connection is TLS, the
//! request's headers and the `[proxy]` settings, and applies the returned [`ForwardedPlan`].
//!
//! Forwarding headers are believed only from a trusted peer (a CDN or load balancer in
//! `trusted_proxies`): anyone else could write any client address or scheme into them. From a
//! trusted peer the client is found as nginx's `real_ip_recursive` does: the hops are walked
//! from the right (the one the peer itself appended) and each trusted one skipped; the first
//! untrusted hop is the client. At most [`MAX_HOPS`] hops are read, so a hostile header costs
//! one linear pass and a fixed amount of memory.

use crate::config::ForwardedSettings;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Version};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// Hops read from the right of `X-Forwarded-For` / `Forwarded`. Real chains are a few hops
/// (CDN, load balancer, ingress); past this the last trusted address read is the client.
pub const MAX_HOPS: usize = 32;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
pub static VIA: HeaderName = HeaderName::from_static("via");
/// The forwarding headers a client may not set for itself.
pub static ALL: [&HeaderName; 4] = [
    &X_FORWARDED_FOR,
    &X_FORWARDED_PROTO,
    &X_FORWARDED_HOST,
    &FORWARDED,
];

/// The scheme the client used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// `http` / `https`, any case; anything else is not a scheme consentgate builds URLs with.
    fn parse(v: &[u8]) -> Option<Scheme> {
        if v.eq_ignore_ascii_case(b"https") {
            Some(Scheme::Https)
        } else if v.eq_ignore_ascii_case(b"http") {
            Some(Scheme::Http)
        } else {
            None
        }
    }
}

/// What the decision reads.
pub struct ForwardedInput<'a> {
    /// The address of the TCP peer.
    pub peer: IpAddr,
    /// Whether this connection is TLS (the scheme of this hop).
    pub tls: bool,
    /// The request's host (its `Host` header, else the absolute-form target's host).
    pub host: Option<&'a str>,
    pub version: Version,
    pub headers: &'a HeaderMap,
}

/// The decision: the client as consentgate uses it, and the origin request's header edits.
#[derive(Debug, PartialEq, Eq)]
pub struct ForwardedPlan {
    /// The client's address: the peer, or from a trusted peer the right-most untrusted hop.
    pub client: IpAddr,
    /// The scheme URLs are built with.
    pub scheme: Scheme,
    pub trusted_peer: bool,
    /// Headers removed (every line) from the origin's request, before `set` is applied.
    /// (A static list: the common untrusted case allocates nothing for it.)
    pub remove: &'static [&'static HeaderName],
    /// Headers set on the origin's request: each replaces every line of its name.
    /// (A `Vec`, not inline: the plan lives in the request context, which pingora's request
    /// future holds and copies, byte for byte, into its box once per request.)
    pub set: Vec<(&'static HeaderName, HeaderValue)>,
}

/// Whether a request carries any header a plan may remove or set (the `X-Forwarded-*` family,
/// `Forwarded`, `Via`). One pass over its names: most requests carry none, and then removing
/// each name would cost a hashed look-up per name for nothing.
pub fn carries_forwarding(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| {
        let s = k.as_str();
        s.starts_with("x-forwarded-") || *k == FORWARDED || *k == VIA
    })
}

/// Decides the client, scheme and header edits for one request.
pub fn plan_forwarded(settings: &ForwardedSettings, input: &ForwardedInput<'_>) -> ForwardedPlan {
    let own = if input.tls {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let trusted = settings.is_trusted(input.peer);
    let mut plan = ForwardedPlan {
        client: input.peer,
        scheme: own,
        trusted_peer: trusted,
        remove: &[],
        set: Vec::new(),
    };
    if !trusted {
        untrusted_edits(settings, input, own, &mut plan);
    } else {
        let trusted = |ip| settings.is_trusted(ip);
        if let Some((client, scheme)) = client_from_trusted(settings, input, own, trusted) {
            plan.client = client;
            plan.scheme = scheme;
        }
        trusted_edits(settings, input, own, &mut plan);
    }
    if settings.via {
        // Via is appended by every proxy, trusted or not (RFC 9110 7.6.3): it names hops, it
        // decides nothing here.
        let own_via = match input.version {
            Version::HTTP_2 => "2 consentgate",
            Version::HTTP_3 => "3 consentgate",
            Version::HTTP_10 => "1.0 consentgate",
            _ => "1.1 consentgate",
        };
        let h = input.headers;
        plan.set
            .push((&VIA, appended(h, &VIA, static_value(own_via))));
    }
    plan
}

/// Our own `Forwarded` element: this hop, as RFC 7239 section 4 has each proxy describe it.
fn own_element(input: &ForwardedInput<'_>, own: Scheme) -> HeaderValue {
    forwarded_element(input.peer, own, input.host)
}

/// The request's host as an `X-Forwarded-Host` value, when it is a valid header value.
fn host_value(input: &ForwardedInput<'_>) -> Option<HeaderValue> {
    let host = input.host?;
    // When the host is the Host header's value (the common case), that value itself: its clone
    // shares the request's bytes, where a new value would be a copy (and its every clone, as
    // the proxy applies the plan, another allocation). The same bytes either way.
    match input.headers.get(http::header::HOST) {
        Some(v) if v.as_bytes() == host.as_bytes() => Some(v.clone()),
        _ => HeaderValue::from_str(host).ok(),
    }
}

/// The edits for a peer that is not trusted: its forwarding headers replaced by our own.
fn untrusted_edits(
    settings: &ForwardedSettings,
    input: &ForwardedInput<'_>,
    own: Scheme,
    plan: &mut ForwardedPlan,
) {
    let mode = settings.headers;
    // Whatever the client wrote is removed, whatever the mode: no origin is told a spoofed
    // client address, scheme or host by way of consentgate.
    plan.remove = &ALL;
    if mode.x_forwarded() {
        plan.set.push((&X_FORWARDED_FOR, ip_value(input.peer)));
        plan.set
            .push((&X_FORWARDED_PROTO, static_value(own.as_str())));
        if let Some(v) = host_value(input) {
            plan.set.push((&X_FORWARDED_HOST, v));
        }
    }
    if mode.forwarded() {
        plan.set.push((&FORWARDED, own_element(input, own)));
    }
}

/// The client a peer's forwarding headers name when `is_trusted` (in place of
/// `trusted_proxies`) says which addresses are proxies: the right-most untrusted hop, found as
/// [`plan_forwarded`] finds it, in the configured header family; the peer when it sent none.
/// The caller has decided that the peer itself may speak. For `crate::geo`, whose database
/// also believes a loopback peer when `trusted_proxies` is unset.
pub fn client_named_by(
    settings: &ForwardedSettings,
    peer: IpAddr,
    headers: &HeaderMap,
    is_trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    let input = ForwardedInput {
        peer,
        tls: false,
        host: None,
        version: Version::HTTP_11,
        headers,
    };
    client_from_trusted(settings, &input, Scheme::Http, is_trusted).map_or(peer, |(c, _)| c)
}

/// The client and scheme a trusted peer's forwarding headers name, or `None` when it sent
/// none that the configured mode reads. `is_trusted` says which hops are proxies.
fn client_from_trusted(
    settings: &ForwardedSettings,
    input: &ForwardedInput<'_>,
    own: Scheme,
    is_trusted: impl Fn(IpAddr) -> bool,
) -> Option<(IpAddr, Scheme)> {
    let mode = settings.headers;
    let h = input.headers;
    let from_xff = mode.x_forwarded()
        && (h.contains_key(&X_FORWARDED_FOR) || h.contains_key(&X_FORWARDED_PROTO));
    if from_xff {
        let (client, _) = walk(is_trusted, input.peer, xff_hops(h).map(|hop| (hop, ())));
        // The right-most value: the one our trusted peer wrote (a client's own value, if a
        // proxy kept it, is further left).
        let scheme = list_items(h, &X_FORWARDED_PROTO)
            .next()
            .and_then(Scheme::parse)
            .unwrap_or(own);
        Some((client, scheme))
    } else if mode.forwarded() && h.contains_key(&FORWARDED) {
        let elements = forwarded_elements(h);
        let hops = elements.iter().rev().map(|e| (e.for_, e.proto));
        let (client, proto) = walk(is_trusted, input.peer, hops);
        // The proto of the element whose `for=` is the client: the scheme of the connection
        // the client opened, as the (trusted) proxy that accepted it wrote it.
        Some((client, proto.flatten().unwrap_or(own)))
    } else {
        None
    }
}

/// The edits for a trusted peer: our hop appended to what it sent, missing values filled in.
fn trusted_edits(
    settings: &ForwardedSettings,
    input: &ForwardedInput<'_>,
    own: Scheme,
    plan: &mut ForwardedPlan,
) {
    let mode = settings.headers;
    let h = input.headers;
    if mode.x_forwarded() {
        plan.set.push((
            &X_FORWARDED_FOR,
            appended(h, &X_FORWARDED_FOR, ip_value(input.peer)),
        ));
        if !h.contains_key(&X_FORWARDED_PROTO) {
            plan.set
                .push((&X_FORWARDED_PROTO, static_value(own.as_str())));
        }
        if !h.contains_key(&X_FORWARDED_HOST) {
            if let Some(v) = host_value(input) {
                plan.set.push((&X_FORWARDED_HOST, v));
            }
        }
    }
    if mode.forwarded() {
        plan.set
            .push((&FORWARDED, appended(h, &FORWARDED, own_element(input, own))));
    }
}

/// Walks hops from the right: each trusted one is skipped, the first untrusted one is the
/// client. An unreadable hop (`unknown`, an obfuscated name, garbage) ends the walk at the last
/// trusted address; so does the hop cap. Returns the client and the data of the hop it came
/// from (`None` when it is the peer itself).
fn walk<T>(
    is_trusted: impl Fn(IpAddr) -> bool,
    peer: IpAddr,
    hops: impl Iterator<Item = (Option<IpAddr>, T)>,
) -> (IpAddr, Option<T>) {
    let mut client = (peer, None);
    for (ip, data) in hops.take(MAX_HOPS) {
        let Some(ip) = ip else {
            // The scheme written beside an unreadable address is still the edge's.
            return (client.0, Some(data));
        };
        client = (ip, Some(data));
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The items of a comma-separated list header, right-most first, over all its lines (several
/// lines of one name are one list, RFC 9110 5.3); empty items skipped. Lazy: reading stops
/// where the caller stops.
fn list_items<'a>(h: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
    let lines: Vec<&'a [u8]> = h.get_all(name).iter().map(HeaderValue::as_bytes).collect();
    lines.into_iter().rev().flat_map(|line| {
        line.rsplit(|b| *b == b',')
            .map(|item| item.trim_ascii())
            .filter(|item| !item.is_empty())
    })
}

/// `X-Forwarded-For` hops, right-most first.
fn xff_hops(h: &HeaderMap) -> impl Iterator<Item = Option<IpAddr>> + '_ {
    list_items(h, &X_FORWARDED_FOR).map(parse_node)
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, with or
/// without a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`). `None` for anything else.
fn parse_node(v: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(v).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

/// One `Forwarded` element as far as consentgate reads it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Element {
    /// `for=`, when present and an address.
    for_: Option<IpAddr>,
    proto: Option<Scheme>,
}

/// The last [`MAX_HOPS`] elements of every `Forwarded` line, left to right. One linear pass; a
/// malformed element reads as one without an address, which ends the walk there.
fn forwarded_elements(h: &HeaderMap) -> VecDeque<Element> {
    let mut out = VecDeque::with_capacity(MAX_HOPS);
    let mut push = |e: Element| {
        if out.len() == MAX_HOPS {
            out.pop_front();
        }
        out.push_back(e);
    };
    for line in h.get_all(&FORWARDED) {
        line_elements(line.as_bytes(), &mut push);
    }
    out
}

/// Passes each element of one `Forwarded` line to `push`, left to right.
fn line_elements(b: &[u8], push: &mut impl FnMut(Element)) {
    let mut i = 0;
    let mut cur = Element::default();
    let mut seen = false; // any pair in the current element
    let mut seen_for = false;
    let mut bad = false;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i >= b.len() || b[i] == b',' {
            if seen || bad {
                push(if bad { Element::default() } else { cur });
            }
            if i >= b.len() {
                break;
            }
            (cur, seen, seen_for, bad) = (Element::default(), false, false, false);
            i += 1;
            continue;
        }
        if b[i] == b';' {
            i += 1;
            continue;
        }
        // forwarded-pair = token "=" value
        let start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        let key = &b[start..i];
        if key.is_empty() || i >= b.len() || b[i] != b'=' {
            bad = true;
            skip_to_separator(b, &mut i);
            continue;
        }
        i += 1;
        let value = pair_value(b, &mut i);
        seen = true;
        let Some(value) = value else {
            bad = true;
            continue;
        };
        if key.eq_ignore_ascii_case(b"for") {
            // Each parameter at most once per element (RFC 7239 section 4).
            bad |= seen_for;
            seen_for = true;
            cur.for_ = parse_node(value);
        } else if key.eq_ignore_ascii_case(b"proto") {
            cur.proto = Scheme::parse(value);
        }
    }
}

/// The value of a `forwarded-pair` starting at `*i` (a token or a quoted string), moving `*i`
/// past it. `None` for a quoted value consentgate does not read.
fn pair_value<'a>(b: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    if *i < b.len() && b[*i] == b'"' {
        *i += 1;
        let vstart = *i;
        let mut escaped = false;
        while *i < b.len() && b[*i] != b'"' {
            escaped |= b[*i] == b'\\';
            *i += if b[*i] == b'\\' { 2 } else { 1 };
        }
        let v = &b[vstart..(*i).min(b.len())];
        let closed = *i < b.len();
        *i = (*i + 1).min(b.len());
        // Addresses and schemes never need escapes; an unclosed quote is malformed.
        (closed && !escaped).then_some(v)
    } else {
        let vstart = *i;
        while *i < b.len() && is_tchar(b[*i]) {
            *i += 1;
        }
        Some(&b[vstart..*i])
    }
}

fn skip_to_separator(b: &[u8], i: &mut usize) {
    while *i < b.len() && b[*i] != b',' && b[*i] != b';' {
        *i += 1;
    }
}

/// RFC 9110 5.6.2 tchar.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `for=...;proto=...;host=...` for this hop. An IPv6 address is bracketed and quoted (its
/// colons are not token characters, RFC 7239 section 6); a host with a port is quoted too.
fn forwarded_element(peer: IpAddr, scheme: Scheme, host: Option<&str>) -> HeaderValue {
    let mut s = match peer.to_canonical() {
        IpAddr::V4(v4) => format!("for={v4}"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    };
    s.push_str(";proto=");
    s.push_str(scheme.as_str());
    if let Some(host) = host.filter(|h| !h.is_empty()) {
        s.push_str(";host=");
        if host.bytes().all(is_tchar) {
            s.push_str(host);
        } else {
            s.push('"');
            for c in host.chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push('"');
        }
    }
    // Built from an address, a scheme and a valid header value: always a valid value; should
    // the host ever hold a byte a value may not, the element goes without it.
    HeaderValue::from_str(&s).unwrap_or_else(|_| {
        HeaderValue::from_str(&s[..s.find(";host=").unwrap_or(s.len())]).unwrap()
    })
}

/// The address as `X-Forwarded-For` writes it (an IPv4-mapped IPv6 peer as IPv4).
/// This runs for every request: the text is written into a small buffer (`to_string` formats
/// through `Display` into a `String`, then the value copies it), and the value owns that buffer
/// as shared bytes, so the clone the proxy makes when it applies the plan costs no allocation.
pub(crate) fn ip_value(ip: IpAddr) -> HeaderValue {
    let mut text = IpText {
        buf: [0; IP_TEXT_MAX],
        len: 0,
    };
    text.len = match ip.to_canonical() {
        IpAddr::V4(v4) => write_ipv4(v4, &mut text.buf),
        IpAddr::V6(v6) => {
            // Rarer (IPv6 clients): `Display`, into the buffer all the same.
            use std::io::Write;
            let mut w = &mut text.buf[..];
            write!(w, "{v6}").expect("IPv6 text fits in IP_TEXT_MAX bytes");
            IP_TEXT_MAX - w.len()
        }
    } as u8;
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).expect("an address is a valid value")
}

/// The longest text of an address: IPv6 is at most 39 bytes (45 with an embedded IPv4).
const IP_TEXT_MAX: usize = 45;

/// An address's text, owned by the `Bytes` of its header value.
struct IpText {
    buf: [u8; IP_TEXT_MAX],
    len: u8,
}

impl AsRef<[u8]> for IpText {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// Writes `a.b.c.d` (as `Ipv4Addr`'s `Display` does) into `buf`, returning its length.
fn write_ipv4(ip: std::net::Ipv4Addr, buf: &mut [u8; IP_TEXT_MAX]) -> usize {
    let mut n = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            buf[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            buf[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + octet % 10;
        n += 1;
    }
    n
}

fn static_value(s: &'static str) -> HeaderValue {
    HeaderValue::from_static(s)
}

/// Every line of `name` joined as one list, then `own` appended: `a, b, own`.
fn appended(h: &HeaderMap, name: &HeaderName, own: HeaderValue) -> HeaderValue {
    let mut lines = h.get_all(name).iter().peekable();
    if lines.peek().is_none() {
        return own;
    }
    let mut buf: Vec<u8> = Vec::new();
    for line in lines {
        let v = line.as_bytes().trim_ascii();
        if v.is_empty() {
            continue;
        }
        buf.extend_from_slice(v);
        buf.extend_from_slice(b", ");
    }
    buf.extend_from_slice(own.as_bytes());
    // Each part came from a valid header value, and ", " is valid between them.
    HeaderValue::from_bytes(&buf).unwrap_or(own)
}

#[cfg(test)]
#[path = "forwarded_tests.rs"]
mod tests;
