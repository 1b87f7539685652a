//! Arbitrary bytes as the first-party (`consent`) consent cookie (fuzz/src/lib.rs).
#![no_main]
use consentgate::consent::first_party as format;
consentgate_fuzz::consent_format_target!(
    format::FirstPartyReader::new("consent"),
    None,
    AsSent,
    Some(|t| format::parse(t).is_err())
);
