//! Arbitrary bytes as the IAB GPP (`__gpp`) consent cookie (fuzz/src/lib.rs).
#![no_main]
use consentgate::consent::gpp as format;
consentgate_fuzz::consent_format_target!(
    format::GppReader::new(&Default::default()).unwrap(),
    None,
    UrlEncoded,
    Some(|t| format::decode(t).is_err())
);
