//! Arbitrary bytes as the tcf consent cookie: parse directly and through a CookieJar.
#![no_main]
use consentgate::consent::tcf::{TcfConfig, TcfReader};
use consentgate::consent::ConsentReader;
use consentgate::cookies::header::CookieJar;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = TcfConfig::default();
    let reader = TcfReader::new(&cfg).unwrap();
    let name = reader.cookie_patterns()[0].trim_end_matches('*').to_string();
    let mut header = format!("{name}=").into_bytes();
    header.extend_from_slice(data);
    let jar = CookieJar::from_headers([&header[..], data]);
    let _ = reader.read(&jar, false);
    let _ = reader.read(&jar, true);
    let _ = consentgate::consent::tcf::decode(&String::from_utf8_lossy(data));
});
