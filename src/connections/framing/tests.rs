//! Inputs are written from the grammar and examples of RFC 9112 (HTTP/1.1 message syntax) and
//! RFC 9110 §8.6 (Content-Length lists), the Wikipedia "Chunked transfer encoding" example, and
//! the chunk-extension smuggling payloads of "Funky chunks" (Jeppe Bonde Weikop, 2025), as
//! noted beside each.

use super::*;

const LIMITS: HeadLimits = HeadLimits {
    max_header_bytes: 1024,
    max_headers: 10,
    max_uri_bytes: 64,
};

fn tracker() -> Tracker {
    Tracker::new(LIMITS)
}

/// Feeds `input` one byte at a time and all at once: both must agree.
fn feed(input: &[u8]) -> (Result<(), Reject>, Phase, u64) {
    let mut whole = tracker();
    let r = whole.feed(input);
    let mut bytewise = tracker();
    let mut r2 = Ok(());
    for b in input {
        r2 = bytewise.feed(std::slice::from_ref(b));
        if r2.is_err() {
            break;
        }
    }
    assert_eq!(r, r2, "bytewise and whole feeds disagree on {input:?}");
    if r.is_ok() {
        assert_eq!(whole.phase(), bytewise.phase());
    }
    (r, whole.phase(), whole.started())
}

#[test]
fn a_get_ends_its_request_at_the_blank_line() {
    // RFC 9112 §3: request-line, field lines, CRLF.
    let (r, phase, n) = feed(b"GET /hello.txt HTTP/1.1\r\nHost: www.example.com\r\n\r\n");
    assert_eq!((r, phase, n), (Ok(()), Phase::Idle, 1));
    let (_, phase, _) = feed(b"GET /hello.txt HTTP/1.1\r\nHost: www.example.com\r\n");
    assert_eq!(phase, Phase::Header);
}

#[test]
fn bare_lf_line_ends_and_leading_blank_lines_are_accepted() {
    // RFC 9112 §2.2: a recipient MAY recognise a single LF as a line terminator and SHOULD
    // ignore at least one empty line before the request-line.
    let (r, phase, n) = feed(b"\r\n\nGET / HTTP/1.1\nHost: a\n\n");
    assert_eq!((r, phase, n), (Ok(()), Phase::Idle, 1));
}

#[test]
fn pipelined_requests_are_counted_one_by_one() {
    // RFC 9112 §9.3.2 pipelining: two requests in one write.
    let two = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(feed(two), (Ok(()), Phase::Idle, 2));
    let half = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HT";
    assert_eq!(feed(half), (Ok(()), Phase::Header, 2));
}

#[test]
fn a_content_length_body_is_skipped_and_the_next_request_follows() {
    // RFC 9112 §6.2.
    let input = b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n";
    assert_eq!(feed(input), (Ok(()), Phase::Header, 2));
    let input = b"POST /f HTTP/1.1\r\nHost: x\r\ncontent-length:5\r\n\r\nhel";
    assert_eq!(feed(input), (Ok(()), Phase::Body, 1));
}

#[test]
fn the_wikipedia_chunked_example_is_followed_to_its_end() {
    // https://en.wikipedia.org/wiki/Chunked_transfer_encoding#Example
    let body = b"4\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n";
    let mut input = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    input.extend_from_slice(body);
    assert_eq!(feed(&input), (Ok(()), Phase::Idle, 1));
    // Stopped before the last CRLF it is still in the body.
    assert_eq!(feed(&input[..input.len() - 1]).1, Phase::Body);
}

#[test]
fn chunk_extensions_and_trailers_in_rfc_form_are_accepted() {
    // RFC 9112 §7.1.1 chunk-ext (token and quoted-string values, BWS) and §7.1.2 trailers.
    let body = b"5 ; name=value;q=\"a \\\"b\\\"\"\r\nhello\r\n0;last\r\nExpires: never\r\n\r\n";
    let mut input = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n".to_vec();
    input.extend_from_slice(body);
    assert_eq!(feed(&input), (Ok(()), Phase::Idle, 1));
}

fn chunked(body: &[u8]) -> Result<(), Reject> {
    let mut input = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    input.extend_from_slice(body);
    feed(&input).0
}

#[test]
fn a_bare_lf_in_a_chunk_extension_is_refused() {
    // "Funky chunks" (2025): `2;\nxx` lets a lenient parser swallow the LF and read a different
    // chunk boundary than a strict one.
    assert_eq!(chunked(b"2;\nxx\r\n0\r\n\r\n"), Err(Reject::BadChunk));
    assert_eq!(chunked(b"2;a\nb\r\nxx\r\n0\r\n\r\n"), Err(Reject::BadChunk));
}

#[test]
fn other_framing_errors_are_refused() {
    for body in [
        &b"2\nxx\r\n0\r\n\r\n"[..], // bare LF after the size
        b"2\r\nxxx\r\n0\r\n\r\n",   // data longer than the size
        b"2\r\nxx\n0\r\n\r\n",      // bare LF after the data
        b"g\r\n",                   // not a hex digit
        b";x\r\n",                  // no size at all
        b"2;a\x01b\r\n",            // a control byte in an extension
        b"2;\"a\rb\"\r\n",          // a CR inside a quoted extension value
        b"0\r\nX: y\n\r\n",         // a bare LF in a trailer
        b"11111111111111111\r\n",   // more hex digits than any length
    ] {
        assert_eq!(
            chunked(body),
            Err(Reject::BadChunk),
            "{:?}",
            body.escape_ascii().to_string()
        );
    }
}

#[test]
fn the_header_limits_give_their_own_reasons() {
    let long_target = format!("GET /{} HTTP/1.1\r\n", "a".repeat(80));
    assert_eq!(feed(long_target.as_bytes()).0, Err(Reject::UriTooLong));
    let many = format!("GET / HTTP/1.1\r\n{}", "X: y\r\n".repeat(11));
    assert_eq!(feed(many.as_bytes()).0, Err(Reject::TooManyHeaders));
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "y".repeat(1100));
    assert_eq!(feed(big.as_bytes()).0, Err(Reject::HeaderTooLarge));
    // Exactly at the limits is fine.
    let ok = format!(
        "GET /{} HTTP/1.1\r\n{}\r\n",
        "a".repeat(63),
        "X: y\r\n".repeat(10)
    );
    assert_eq!(feed(ok.as_bytes()), (Ok(()), Phase::Idle, 1));
}

#[test]
fn an_upgrade_or_unusable_framing_stops_the_tracking() {
    let ws = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05";
    assert_eq!(feed(ws).1, Phase::Tunnel);
    let both =
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(feed(both).1, Phase::Tunnel);
}

fn framing(te: &[&str], cl: &[&str]) -> Result<BodyFraming, FramingError> {
    let mut b = FramingBuilder::default();
    for v in te {
        b.value(FramingField::TransferEncoding, v.as_bytes());
    }
    for v in cl {
        b.value(FramingField::ContentLength, v.as_bytes());
    }
    b.finish()
}

#[test]
fn framing_fields_decide_like_rfc_9112_section_6() {
    use BodyFraming::*;
    use FramingError::*;
    assert_eq!(framing(&[], &[]), Ok(None));
    assert_eq!(framing(&["chunked"], &[]), Ok(Chunked));
    assert_eq!(framing(&["Chunked "], &[]), Ok(Chunked));
    // RFC 9112 §6.1 example `Transfer-Encoding: gzip, chunked`: a coding this proxy does not
    // implement (nginx answers 501 too).
    assert_eq!(framing(&["gzip, chunked"], &[]), Err(UnsupportedCoding));
    assert_eq!(framing(&["gzip", "chunked"], &[]), Err(UnsupportedCoding));
    assert_eq!(framing(&["chunked;q=1"], &[]), Err(UnsupportedCoding));
    assert_eq!(framing(&["chunked, chunked"], &[]), Err(Ambiguous));
    assert_eq!(framing(&["chunked"], &["3"]), Err(Ambiguous));
    assert_eq!(framing(&["chu nked"], &[]), Err(BadCoding));
    assert_eq!(framing(&[""], &[]), Err(BadCoding));
    // RFC 9110 §8.6: a list of identical values may be taken as one.
    assert_eq!(framing(&[], &["42, 42"]), Ok(Length(42)));
    assert_eq!(framing(&[], &["42", "42"]), Ok(Length(42)));
    assert_eq!(framing(&[], &["0"]), Ok(None));
    assert_eq!(framing(&[], &["42, 43"]), Err(BadLength));
    assert_eq!(framing(&[], &["-1"]), Err(BadLength));
    assert_eq!(framing(&[], &["0x10"]), Err(BadLength));
    assert_eq!(framing(&[], &["99999999999999999999999"]), Err(BadLength));
}

#[test]
fn a_browser_header_is_followed_in_one_pass_and_split_anywhere() {
    // A Chromium request as sent (header names and order from its network log).
    let get = b"GET /articles/2024/privacy?utm_source=x HTTP/1.1\r\nHost: www.example.org\r\nConnection: keep-alive\r\nsec-ch-ua: \"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\nUpgrade-Insecure-Requests: 1\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\nSec-Fetch-Site: none\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-GB,en;q=0.9\r\nCookie: SESSIONID=abc123; _ga=GA1.2.111.222\r\n\r\n";
    let post = b"POST /form HTTP/1.1\r\nHost: www.example.org\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2";
    let mut both = get.to_vec();
    both.extend_from_slice(post);
    both.extend_from_slice(get);
    let (r, phase, n) = feed(&both);
    assert_eq!((r, phase, n), (Ok(()), Phase::Idle, 3));
    let limits = HeadLimits {
        max_header_bytes: 4096,
        ..LIMITS
    };
    for at in 0..both.len() {
        let mut t = Tracker::new(limits);
        t.feed(&both[..at]).unwrap();
        t.feed(&both[at..]).unwrap();
        assert_eq!((t.phase(), t.started()), (Phase::Idle, 3), "split at {at}");
    }
}
