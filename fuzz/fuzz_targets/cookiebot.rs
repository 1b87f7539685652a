//! Arbitrary bytes as the Cookiebot (`CookieConsent`) consent cookie (fuzz/src/lib.rs).
#![no_main]
use consentgate::consent::cookiebot as format;
consentgate_fuzz::consent_format_target!(
    format::CookiebotReader::new(&Default::default()).unwrap(),
    None,
    UrlEncoded,
    Some(|t| format::parse(t, &Default::default()).is_err())
);
