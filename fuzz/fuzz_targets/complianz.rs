//! Arbitrary bytes as a Complianz consent cookie, `cmplz_statistics` (fuzz/src/lib.rs; the
//! format exports no parser: the reader's own verdict is checked).
#![no_main]
use consentgate::consent::complianz as format;
consentgate_fuzz::consent_format_target!(
    format::ComplianzReader::new(&Default::default()).unwrap(),
    Some("cmplz_statistics"),
    AsSent,
    None
);
