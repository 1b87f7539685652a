//! Arbitrary bytes as the Klaro (`klaro`) consent cookie (fuzz/src/lib.rs).
#![no_main]
use consentgate::consent::klaro as format;
consentgate_fuzz::consent_format_target!(
    format::KlaroReader::new(&Default::default()).unwrap(),
    None,
    UrlEncoded,
    Some(|t| format::parse(t, &Default::default()).is_err())
);
