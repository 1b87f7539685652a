//! Arbitrary bytes as the OneTrust (`OptanonConsent`) consent cookie (fuzz/src/lib.rs).
#![no_main]
use consentgate::consent::onetrust as format;
consentgate_fuzz::consent_format_target!(
    format::OneTrustReader::new(&Default::default()).unwrap(),
    None,
    AsSent,
    Some(|t| format::parse(t, &Default::default()).is_err())
);
