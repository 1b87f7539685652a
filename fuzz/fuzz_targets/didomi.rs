//! Arbitrary bytes as the Didomi (`didomi_token`) consent cookie (fuzz/src/lib.rs).
#![no_main]
use consentgate::consent::didomi as format;
consentgate_fuzz::consent_format_target!(
    format::DidomiReader::new(&Default::default()).unwrap(),
    None,
    UrlEncoded,
    Some(|t| format::parse(t, &Default::default()).is_err())
);
