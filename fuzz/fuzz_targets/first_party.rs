//! Arbitrary bytes as the first-party consent cookie.
#![no_main]
use consentgate::consent::first_party::{parse, FirstPartyReader};
use consentgate::consent::ConsentReader;
use consentgate::cookies::header::CookieJar;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse(&String::from_utf8_lossy(data));
    let mut header = b"consent=".to_vec();
    header.extend_from_slice(data);
    let _ = FirstPartyReader::new("consent").read(&CookieJar::from_headers([&header[..]]), true);
});
