use super::*;
use proptest::prelude::*;

/// Feeds `bytes` in the pieces `cuts` makes; the index of the piece whose read failed.
fn feed(scan: &mut HeadScan, bytes: &[u8], cuts: &[usize]) -> Option<usize> {
    let mut at = 0;
    for (i, &end) in cuts.iter().chain([bytes.len()].iter()).enumerate() {
        let end = end.clamp(at, bytes.len());
        if scan.on_read(&bytes[at..end]).is_err() {
            return Some(i);
        }
        at = end;
    }
    None
}

/// Every way of cutting `bytes` in two: whether the scan refused it, the same for every cut.
fn refused_at_every_cut(bytes: &[u8]) -> bool {
    let whole = feed(&mut HeadScan::new(), bytes, &[]).is_some();
    for cut in 0..=bytes.len() {
        let split = feed(&mut HeadScan::new(), bytes, &[cut]).is_some();
        assert_eq!(whole, split, "cut at {cut} of {:?}", bytes.escape_ascii());
    }
    whole
}

// The heads are in the shape RFC 9112's examples and common servers write them; the smuggling
// variants (case, spaces before the colon) are the ones pingora's parser accepts.

#[test]
fn a_head_with_both_fields_is_refused_however_it_is_split() {
    let heads: [&[u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nCONTENT-LENGTH : 0\r\nTRANSFER-ENCODING\t: gzip, chunked\r\n\r\n",
        // Bare `\n` line ends, which httparse accepts.
        b"HTTP/1.0 200 OK\nContent-Length: 3\nTransfer-Encoding: chunked\n\n",
        // A long line before the fields, and a value that spans a split.
        b"HTTP/1.1 200 OK\r\nSet-Cookie: _fbp=fb.1.1700000000000.123456789; Path=/; Max-Age=7776000\r\nContent-Length: 12345678901234567890\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for head in heads {
        assert!(refused_at_every_cut(head), "{:?}", head.escape_ascii());
    }
}

#[test]
fn heads_with_one_framing_field_pass() {
    let heads: [&[u8]; 6] = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nServer: demo\r\n\r\nclose-delimited body",
        // Names that only start or end like the fields, and values that contain them.
        b"HTTP/1.1 200 OK\r\nContent-Length-Hint: 1\r\nX-Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Note: Transfer-Encoding: chunked\r\nTransfer-Encodings: x\r\n\r\n",
        // A body (after the head) that looks like a head with both fields.
        b"HTTP/1.1 200 OK\r\nContent-Length: 51\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for head in heads {
        assert!(!refused_at_every_cut(head), "{:?}", head.escape_ascii());
    }
}

#[test]
fn interim_heads_are_followed_by_the_final_one() {
    let both = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(refused_at_every_cut(both));
    // Fields are per head: one in the 103, the other in the 200.
    let apart = b"HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(!refused_at_every_cut(apart));
}

#[test]
fn after_101_the_connection_is_a_tunnel() {
    let mut scan = HeadScan::new();
    let up =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert!(scan.on_read(up).is_ok());
    scan.on_write(b"GET / HTTP/1.1\r\n");
    assert!(scan
        .on_read(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .is_ok());
}

#[test]
fn the_next_request_on_a_kept_connection_arms_the_scan_again() {
    let mut scan = HeadScan::new();
    scan.on_write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(scan
        .on_read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .is_ok());
    let bad = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n";
    // Not armed: a request body written after an early response does not start a head.
    scan.on_write(b"{\"json\": \"body\"}");
    scan.on_write(b"1a\r\nchunk");
    assert!(scan.on_read(bad).is_ok());
    // Armed by the next request line.
    scan.on_write(b"POST /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(scan.on_read(bad).is_err());
}

#[test]
fn request_lines_are_told_from_bodies() {
    for yes in [
        &b"GET / HTTP/1.1"[..],
        b"M-SEARCH * HTTP/1.1",
        b"OPTIONS * HTTP/1.1",
    ] {
        assert!(starts_with_request_line(yes), "{:?}", yes.escape_ascii());
    }
    for no in [
        &b""[..],
        b"GET",
        b" GET /",
        b"get / HTTP/1.1",
        b"1A\r\n",
        b"ABCDEF\r\n",
    ] {
        assert!(!starts_with_request_line(no), "{:?}", no.escape_ascii());
    }
}

// Differential: httparse, the parser pingora itself uses (configured as pingora configures it),
// decides which fields a head has; the scan must agree for every head and every split.

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Content-Length".to_string()),
        Just("Transfer-Encoding".to_string()),
        Just("Content-Type".to_string()),
        Just("Set-Cookie".to_string()),
        Just("Content-Length-Range".to_string()),
        Just("X-Transfer-Encoding".to_string()),
        "[A-Za-z-]{1,24}",
    ]
    .prop_flat_map(|name| {
        // Random case per byte.
        proptest::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
            name.bytes()
                .zip(upper)
                .map(|(b, u)| {
                    if u {
                        b.to_ascii_uppercase()
                    } else {
                        b.to_ascii_lowercase()
                    }
                } as char)
                .collect()
        })
    })
}

fn head() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let field = (field_name(), "[ \t]{0,2}", "[ -~]{0,40}");
    (
        prop_oneof![Just("\r\n"), Just("\n")],
        proptest::collection::vec(field, 0..8),
    )
        .prop_map(|(eol, fields)| {
            let mut head = format!("HTTP/1.1 200 OK{eol}");
            for (name, space, value) in &fields {
                head.push_str(&format!("{name}{space}: {value}{eol}"));
            }
            head.push_str(eol);
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            let mut config = httparse::ParserConfig::default();
            config.allow_spaces_after_header_name_in_responses(true);
            let parsed = config.parse_response(&mut resp, head.as_bytes());
            let both = match parsed {
                Ok(httparse::Status::Complete(_)) => {
                    let has = |n: &str| resp.headers.iter().any(|h| h.name.eq_ignore_ascii_case(n));
                    has("content-length") && has("transfer-encoding")
                }
                // Heads httparse refuses never reach a hook; the scan's answer does not matter.
                _ => return (Vec::new(), false),
            };
            (head.into_bytes(), both)
        })
}

proptest! {
    #[test]
    fn the_scan_agrees_with_httparse((head, both) in head(), a in 0usize..400, b in 0usize..400) {
        prop_assume!(!head.is_empty());
        let (a, b) = (a.min(b), a.max(b));
        let refused = feed(&mut HeadScan::new(), &head, &[a, b]).is_some();
        prop_assert_eq!(refused, both, "{:?}", head.escape_ascii().to_string());
    }
}
