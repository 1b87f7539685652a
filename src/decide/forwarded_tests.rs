//! The forwarded-header decision, branch by branch. Header values are the examples of the
//! documents that define them, cited beside each, not strings the parser was written from.

use super::*;
use crate::config::{parse_trusted, ForwardedHeaders};

fn settings(trusted: &[&str], headers: ForwardedHeaders) -> ForwardedSettings {
    ForwardedSettings {
        trusted_proxies: trusted.iter().map(|t| parse_trusted(t).unwrap()).collect(),
        headers,
        via: false,
    }
}

fn headers(lines: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in lines {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

fn plan(s: &ForwardedSettings, peer: &str, tls: bool, h: &HeaderMap) -> ForwardedPlan {
    let input = ForwardedInput {
        peer: peer.parse().unwrap(),
        tls,
        host: Some("shop.example"),
        version: Version::HTTP_11,
        headers: h,
    };
    plan_forwarded(s, &input)
}

/// The value the plan sets for `name`, if any.
fn set<'a>(p: &'a ForwardedPlan, name: &str) -> Option<&'a str> {
    p.set
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, v)| v.to_str().unwrap())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn an_untrusted_peer_cannot_speak_for_a_client() {
    // The spoof of issue 10: a client sets the headers a TLS terminator would.
    let h = headers(&[
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "bank.example"),
        ("forwarded", "for=203.0.113.7;proto=https"),
    ]);
    let s = settings(&["10.0.0.0/8"], ForwardedHeaders::XForwarded);
    let p = plan(&s, "127.0.0.1", false, &h);
    assert!(!p.trusted_peer);
    assert_eq!((p.client, p.scheme), (ip("127.0.0.1"), Scheme::Http));
    assert_eq!(
        p.remove.len(),
        4,
        "every forwarding header the client sent is removed"
    );
    assert_eq!(set(&p, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(set(&p, "x-forwarded-proto"), Some("http"));
    assert_eq!(set(&p, "x-forwarded-host"), Some("shop.example"));
    assert_eq!(
        set(&p, "forwarded"),
        None,
        "x-forwarded mode writes no Forwarded"
    );
    // Over TLS the scheme is this connection's.
    let p = plan(&s, "127.0.0.1", true, &h);
    assert_eq!(p.scheme, Scheme::Https);
    assert_eq!(set(&p, "x-forwarded-proto"), Some("https"));
}

#[test]
fn nobody_is_trusted_by_default() {
    let h = headers(&[
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "1.2.3.4"),
    ]);
    let p = plan(&ForwardedSettings::default(), "10.0.0.1", false, &h);
    assert_eq!((p.client, p.scheme), (ip("10.0.0.1"), Scheme::Http));
}

#[test]
fn a_trusted_peer_appends_and_keeps() {
    // MDN, X-Forwarded-For: "X-Forwarded-For: 203.0.113.195, 2001:db8:85a3:8d3:1319:8a2e:370:7348"
    let h = headers(&[
        (
            "x-forwarded-for",
            "203.0.113.195, 2001:db8:85a3:8d3:1319:8a2e:370:7348",
        ),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "id42.example-cdn.com"),
    ]);
    let s = settings(
        &["10.0.0.0/8", "2001:db8::/32"],
        ForwardedHeaders::XForwarded,
    );
    let p = plan(&s, "10.1.2.3", false, &h);
    assert!(p.trusted_peer);
    assert!(p.remove.is_empty());
    assert_eq!(
        p.client,
        ip("203.0.113.195"),
        "the trusted IPv6 hop is skipped"
    );
    assert_eq!(p.scheme, Scheme::Https);
    assert_eq!(
        set(&p, "x-forwarded-for"),
        Some("203.0.113.195, 2001:db8:85a3:8d3:1319:8a2e:370:7348, 10.1.2.3")
    );
    assert_eq!(set(&p, "x-forwarded-proto"), None, "kept as sent");
    assert_eq!(set(&p, "x-forwarded-host"), None, "kept as sent");
    // Absent ones are set from this connection.
    let p = plan(&s, "10.1.2.3", false, &HeaderMap::new());
    assert_eq!(p.client, ip("10.1.2.3"));
    assert_eq!(set(&p, "x-forwarded-for"), Some("10.1.2.3"));
    assert_eq!(set(&p, "x-forwarded-proto"), Some("http"));
    assert_eq!(set(&p, "x-forwarded-host"), Some("shop.example"));
}

#[test]
fn the_walk_stops_at_the_first_untrusted_hop_from_the_right() {
    // nginx real_ip_recursive: with "X-Forwarded-For: 198.51.100.1, 203.0.113.9, 10.0.0.5,
    // 192.168.1.2" and 10/8, 192.168/16 trusted, the client is 203.0.113.9: the spoofed
    // left-most entry is never reached.
    let h = headers(&[(
        "x-forwarded-for",
        "198.51.100.1, 203.0.113.9, 10.0.0.5, 192.168.1.2",
    )]);
    let s = settings(
        &["10.0.0.0/8", "192.168.0.0/16"],
        ForwardedHeaders::XForwarded,
    );
    assert_eq!(plan(&s, "10.9.9.9", false, &h).client, ip("203.0.113.9"));
    // Every hop trusted: the left-most is the client.
    let h = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
    assert_eq!(plan(&s, "10.9.9.9", false, &h).client, ip("10.0.0.1"));
    // An unreadable hop ends the walk at the last trusted address.
    let h = headers(&[("x-forwarded-for", "203.0.113.9, unknown, 10.0.0.5")]);
    assert_eq!(plan(&s, "10.9.9.9", false, &h).client, ip("10.0.0.5"));
}

#[test]
fn several_lines_are_one_list() {
    // RFC 9110 5.3: "Example-Field: Foo, Bar" and "Example-Field: Baz" are one list.
    let h = headers(&[
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-for", "10.0.0.5"),
    ]);
    let s = settings(&["10.0.0.0/8"], ForwardedHeaders::XForwarded);
    let p = plan(&s, "10.9.9.9", false, &h);
    assert_eq!(p.client, ip("203.0.113.9"));
    assert_eq!(
        set(&p, "x-forwarded-for"),
        Some("203.0.113.9, 10.0.0.5, 10.9.9.9")
    );
}

#[test]
fn addresses_with_ports_and_brackets() {
    // Azure Application Gateway appends "IP:port" ("X-Forwarded-For: 52.183.40.101:56485",
    // learn.microsoft.com, Application Gateway HTTP header rewrite).
    let h = headers(&[("x-forwarded-for", "52.183.40.101:56485, [2001:db8::7]:443")]);
    let s = settings(
        &["10.0.0.0/8", "2001:db8::/32"],
        ForwardedHeaders::XForwarded,
    );
    assert_eq!(plan(&s, "10.0.0.1", false, &h).client, ip("52.183.40.101"));
}

#[test]
fn forwarded_syntax_of_rfc_7239() {
    // RFC 7239 section 4 examples, as one list over two lines (section 4: "either append ...
    // or add a new field"): `for="_gazonk"` (obfuscated), `For="[2001:db8:cafe::17]:4711"`,
    // `for=192.0.2.60;proto=http;by=203.0.113.43`, `for=192.0.2.43, for=198.51.100.17`.
    let s = settings(
        &["198.51.100.0/24", "10.0.0.0/8"],
        ForwardedHeaders::Forwarded,
    );
    let h = headers(&[("forwarded", "for=192.0.2.43, for=198.51.100.17")]);
    let p = plan(&s, "10.0.0.1", false, &h);
    assert_eq!(p.client, ip("192.0.2.43"));
    let h = headers(&[
        ("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43"),
        ("forwarded", "For=\"[2001:db8:cafe::17]:4711\""),
    ]);
    let s6 = settings(&["2001:db8:cafe::/48"], ForwardedHeaders::Forwarded);
    let p = plan(&s6, "2001:db8:cafe::1", false, &h);
    assert_eq!(
        p.client,
        ip("192.0.2.60"),
        "the quoted IPv6 hop is trusted and skipped"
    );
    assert_eq!(p.scheme, Scheme::Https, "the proto of the client's element");
    // An obfuscated identifier is no address: the walk ends at the last trusted one.
    let h = headers(&[("forwarded", "for=\"_gazonk\", for=198.51.100.17")]);
    assert_eq!(plan(&s, "10.0.0.1", false, &h).client, ip("198.51.100.17"));
    // Malformed: a pair without `=`, an unclosed quote.
    let h = headers(&[("forwarded", "for=192.0.2.1, garbage, for=198.51.100.17")]);
    assert_eq!(plan(&s, "10.0.0.1", false, &h).client, ip("198.51.100.17"));
    let h = headers(&[("forwarded", "for=\"[2001:db8::1]")]);
    assert_eq!(plan(&s, "10.0.0.1", false, &h).client, ip("10.0.0.1"));
}

#[test]
fn forwarded_is_written_as_rfc_7239_says() {
    let s = settings(&[], ForwardedHeaders::Forwarded);
    let h = headers(&[("forwarded", "for=1.2.3.4")]);
    let p = plan(&s, "192.0.2.60", true, &h);
    assert_eq!(
        set(&p, "forwarded"),
        Some("for=192.0.2.60;proto=https;host=shop.example")
    );
    assert_eq!(set(&p, "x-forwarded-for"), None);
    // IPv6 quoted and bracketed (RFC 7239 section 6: `for="[2001:db8:cafe::17]"`); a host
    // with a port is quoted, its colon not being a token character.
    let input = ForwardedInput {
        peer: ip("2001:db8:cafe::17"),
        tls: false,
        host: Some("shop.example:8080"),
        version: Version::HTTP_11,
        headers: &HeaderMap::new(),
    };
    let p = plan_forwarded(&s, &input);
    assert_eq!(
        set(&p, "forwarded"),
        Some("for=\"[2001:db8:cafe::17]\";proto=http;host=\"shop.example:8080\"")
    );
    // From a trusted peer, this hop's element is appended to the list.
    let s = settings(&["10.0.0.0/8"], ForwardedHeaders::Both);
    let h = headers(&[("forwarded", "for=192.0.2.43;proto=https")]);
    let p = plan(&s, "10.0.0.1", false, &h);
    assert_eq!(
        set(&p, "forwarded"),
        Some("for=192.0.2.43;proto=https, for=10.0.0.1;proto=http;host=shop.example")
    );
    assert_eq!(
        p.client,
        ip("192.0.2.43"),
        "both: Forwarded read when no X-Forwarded-For"
    );
    assert_eq!(set(&p, "x-forwarded-for"), Some("10.0.0.1"));
}

#[test]
fn none_mode_reads_and_adds_nothing_but_still_removes_spoofs() {
    let s = settings(&["10.0.0.0/8"], ForwardedHeaders::None);
    let h = headers(&[
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
    ]);
    let p = plan(&s, "10.0.0.1", false, &h);
    assert_eq!((p.client, p.scheme), (ip("10.0.0.1"), Scheme::Http));
    assert!(p.set.is_empty() && p.remove.is_empty());
    let p = plan(&s, "127.0.0.1", false, &h);
    assert_eq!(p.remove.len(), 4);
    assert!(p.set.is_empty());
}

#[test]
fn x_forwarded_proto_from_a_trusted_peer() {
    let s = settings(&["10.0.0.0/8"], ForwardedHeaders::XForwarded);
    // The right-most value is the trusted peer's; garbage is not a scheme.
    let h = headers(&[("x-forwarded-proto", "https, http")]);
    assert_eq!(plan(&s, "10.0.0.1", false, &h).scheme, Scheme::Http);
    let h = headers(&[("x-forwarded-proto", "HTTPS")]);
    assert_eq!(plan(&s, "10.0.0.1", false, &h).scheme, Scheme::Https);
    let h = headers(&[("x-forwarded-proto", "javascript")]);
    assert_eq!(plan(&s, "10.0.0.1", true, &h).scheme, Scheme::Https);
}

#[test]
fn mapped_ipv4_peer() {
    // A dual-stack listener reports an IPv4 client as ::ffff:a.b.c.d.
    let s = settings(&["10.0.0.0/8"], ForwardedHeaders::XForwarded);
    let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
    let p = plan(&s, "::ffff:10.0.0.1", false, &h);
    assert!(p.trusted_peer);
    assert_eq!(set(&p, "x-forwarded-for"), Some("203.0.113.9, 10.0.0.1"));
}

#[test]
fn via_is_appended() {
    let mut s = settings(&[], ForwardedHeaders::XForwarded);
    assert_eq!(
        set(&plan(&s, "127.0.0.1", false, &HeaderMap::new()), "via"),
        None
    );
    s.via = true;
    // RFC 9110 7.6.3: "Via: 1.0 fred, 1.1 p.example.net".
    let h = headers(&[("via", "1.0 fred, 1.1 p.example.net")]);
    let p = plan(&s, "127.0.0.1", false, &h);
    assert_eq!(
        set(&p, "via"),
        Some("1.0 fred, 1.1 p.example.net, 1.1 consentgate")
    );
}

#[test]
fn the_hop_cap_bounds_the_walk() {
    // 40 trusted hops left of the peer, the real client further left: past MAX_HOPS the walk
    // stops at the last trusted address read instead of reading on.
    let mut chain = vec!["203.0.113.9".to_string()];
    chain.extend((0..40).map(|i| format!("10.0.0.{i}")));
    let h = headers(&[("x-forwarded-for", &chain.join(", "))]);
    let s = settings(&["10.0.0.0/8"], ForwardedHeaders::Both);
    let p = plan(&s, "10.9.9.9", false, &h);
    assert_eq!(p.client, ip(&format!("10.0.0.{}", 40 - MAX_HOPS)));
    // The same through Forwarded (read left to right, only the last MAX_HOPS kept).
    let elems: Vec<String> = chain.iter().map(|a| format!("for={a}")).collect();
    let h = headers(&[("forwarded", &elems.join(", "))]);
    let p = plan(&s, "10.9.9.9", false, &h);
    assert_eq!(p.client, ip(&format!("10.0.0.{}", 40 - MAX_HOPS)));
}

#[test]
fn a_hostile_header_stays_linear() {
    // 1 MB of separators and quotes: one pass each, a bounded ring of elements.
    let big = ",".repeat(1 << 20);
    let quotes = "for=\"".to_string() + &"\\\"".repeat(1 << 19);
    let h = headers(&[
        ("x-forwarded-for", &big),
        ("forwarded", &big),
        ("forwarded", &quotes),
    ]);
    let s = settings(&["0.0.0.0/0"], ForwardedHeaders::Forwarded);
    let started = std::time::Instant::now();
    let p = plan(&s, "10.0.0.1", false, &h);
    assert_eq!(p.client, ip("10.0.0.1"));
    assert!(forwarded_elements(&h).len() <= MAX_HOPS);
    // A generous bound: quadratic work on 1 MB would take minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn addresses_are_written_as_the_standard_library_writes_them() {
    // The text the hand-written writer must produce is `Display`'s (RFC 4291 / RFC 5952 forms
    // for IPv6, dotted decimal for IPv4): every octet width, and IPv6 shapes with `::`, an
    // embedded IPv4 and a mapped IPv4 (written as IPv4, as a dual-stack listener's clients).
    let cases = [
        "0.0.0.0",
        "1.2.3.4",
        "9.10.99.100",
        "127.0.0.1",
        "192.168.100.255",
        "255.255.255.255",
        "::",
        "::1",
        "2001:db8::8a2e:370:7334",
        "2001:db8:85a3:8d3:1319:8a2e:370:7348",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "::1.2.3.4",
    ];
    for c in cases {
        let a: IpAddr = c.parse().unwrap();
        assert_eq!(ip_value(a).to_str().unwrap(), a.to_string(), "{c}");
    }
    let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
    assert_eq!(ip_value(mapped).to_str().unwrap(), "203.0.113.7");
    // Every octet value, in each position.
    for o in 0..=255u8 {
        let a = IpAddr::from([o, 255 - o, o / 3, o.wrapping_mul(7)]);
        assert_eq!(ip_value(a).to_str().unwrap(), a.to_string());
    }
}

#[test]
fn forwarding_headers_are_found_among_a_requests_names() {
    assert!(!carries_forwarding(&headers(&[
        ("host", "shop.example"),
        ("x-forwarded", "not one of them"),
        ("cookie", "a=1"),
    ])));
    for name in [
        "x-forwarded-for",
        "X-Forwarded-Proto",
        "x-forwarded-host",
        "forwarded",
        "via",
    ] {
        assert!(
            carries_forwarding(&headers(&[("host", "a"), (name, "1.1 x")])),
            "{name}"
        );
    }
}

#[test]
fn the_host_header_value_is_forwarded_as_x_forwarded_host() {
    // Both sources of the host: the Host header, and an authority when there is no Host.
    let s = settings(&[], ForwardedHeaders::XForwarded);
    let h = headers(&[("host", "shop.example")]);
    assert_eq!(
        set(&plan(&s, "192.0.2.1", false, &h), "x-forwarded-host"),
        Some("shop.example")
    );
    let none = HeaderMap::new();
    assert_eq!(
        set(&plan(&s, "192.0.2.1", false, &none), "x-forwarded-host"),
        Some("shop.example")
    );
}
