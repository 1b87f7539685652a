//! Arbitrary bytes as the CookieYes (`cookieyes-consent`) consent cookie (fuzz/src/lib.rs).
#![no_main]
use consentgate::consent::cookieyes as format;
consentgate_fuzz::consent_format_target!(
    format::CookieYesReader::new(&Default::default()).unwrap(),
    None,
    UrlEncoded,
    Some(|t| format::parse(t, &Default::default()).is_err())
);
