//! Arbitrary bytes as the IAB TCF (`euconsent-v2`) consent cookie (fuzz/src/lib.rs).
#![no_main]
use consentgate::consent::tcf as format;
consentgate_fuzz::consent_format_target!(
    format::TcfReader::new(&Default::default()).unwrap(),
    None,
    UrlEncoded,
    Some(|t| format::decode(t).is_err())
);
