//! Set-Cookie name extraction and the expiry lines built from request cookie names.
#![no_main]
use consentgate::cookies::gate::{expiry_lines, set_cookie_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let name = set_cookie_name(data);
    assert!(name.len() <= data.len());
    for line in expiry_lines(&String::from_utf8_lossy(data), &["/".into()], &["example.com".into()]) {
        // An expiry line must be a valid header value and name exactly one cookie.
        assert!(http::HeaderValue::from_str(&line).is_ok(), "{line:?}");
    }
});
