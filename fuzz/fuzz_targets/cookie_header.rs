//! The Cookie header splitter: every pair is a slice of the input, names and values trimmed.
#![no_main]
use consentgate::cookies::header::{split_cookie_header, CookieJar};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for c in split_cookie_header(data) {
        assert!(!c.pair.is_empty());
        assert!(c.pair.len() <= data.len());
        assert!(c.name.len() + c.value.len() <= c.pair.len());
    }
    let jar = CookieJar::from_headers(data.split(|b| *b == b'\n'));
    let _ = jar.values("consent").count();
});
