//! What every consent-format fuzz target does, written once: [`consent_format_target!`] makes a
//! target of a reader and (where the format exports one) its parser.
//!
//! Each input is read through the reader as the proxy reads it (a `Cookie` header holding the
//! bytes as the value of the format's cookie, and the bytes as a `Cookie` header of their own),
//! with and without `explain`'s details; nothing may panic. Then the rule "unreadable grants
//! nothing" (privacy fails closed, docs/CONSENT.md) is asserted: the input becomes the only
//! cookie of a jar, and
//! - when the format's parser refuses the text the reader will parse, the reader must report
//!   the source as unreadable;
//! - whenever the reader reports it unreadable, [`consent::read_consent`] with that reader alone
//!   must grant no optional category.

use consentgate::consent::{self, gpc::GpcPolicy, ConsentReader};
use consentgate::cookies::header::CookieJar;

pub use libfuzzer_sys;

/// How a format's reader turns the cookie value into the text its parser reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// The value is URL-decoded first (TCF, Cookiebot, CookieYes, Klaro, Didomi): the text is
    /// written percent-encoded, byte by byte, so the reader parses exactly the text.
    UrlEncoded,
    /// The value is parsed as sent (OneTrust, first-party): the text is cut at its first `;` and
    /// trimmed of spaces and tabs, as a `Cookie` header would carry it.
    AsSent,
}

/// One fuzz input through `reader` (see the crate documentation). `cookie`: the cookie the
/// reader reads; `refuses`: whether the format's parser refuses a text, when it exports one.
pub fn check_format(
    reader: Box<dyn ConsentReader>,
    cookie: &str,
    value: Value,
    refuses: Option<fn(&str) -> bool>,
    data: &[u8],
) {
    // Read as the proxy reads a request: no panic, whatever the bytes.
    let mut header = format!("{cookie}=").into_bytes();
    header.extend_from_slice(data);
    let jar = CookieJar::from_headers([&header[..], data]);
    let _ = reader.read(&jar, false);
    let _ = reader.read(&jar, true);

    // Unreadable grants nothing.
    let lossy = String::from_utf8_lossy(data);
    let (text, sent) = match value {
        Value::UrlEncoded => {
            let sent: String = lossy.bytes().map(|b| format!("%{b:02X}")).collect();
            (&lossy[..], sent)
        }
        Value::AsSent => {
            let text = lossy.split(';').next().unwrap_or("");
            let text = text.trim_matches([' ', '\t']);
            (text, text.to_string())
        }
    };
    let header = format!("{cookie}={sent}");
    let jar = CookieJar::from_headers([header.as_bytes()]);
    let readers = [reader];
    let state = consent::read_consent(&readers, &jar, false, GpcPolicy::default(), false);
    let unreadable = state.sources.iter().any(|s| s.error.is_some());
    if let Some(refuses) = refuses {
        if refuses(text) {
            assert!(
                unreadable,
                "the parser refuses {text:?}, the reader reads it: {:?}",
                state.sources
            );
        }
    }
    if unreadable {
        assert!(
            state.grants.is_none(),
            "unreadable {cookie}={sent:?} granted {:?}",
            state.grants
        );
    }
}

/// A consent-format fuzz target in one line:
/// `consent_format_target!(reader, cookie, Value, refuses)`, where `reader` builds the reader,
/// `cookie` is the cookie name it reads (`None`: its first cookie pattern), `Value` how it reads
/// the value, and `refuses` says whether the format's parser refuses a text
/// (`Some(|text| parse(text).is_err())`; `None` when the format exports no parser).
#[macro_export]
macro_rules! consent_format_target {
    ($reader:expr, $cookie:expr, $value:ident, $refuses:expr) => {
        $crate::libfuzzer_sys::fuzz_target!(|data: &[u8]| {
            let reader: Box<dyn consentgate::consent::ConsentReader> = Box::new($reader);
            let refuses: Option<fn(&str) -> bool> = $refuses;
            let cookie: Option<&str> = $cookie;
            let cookie = cookie.map(str::to_string).unwrap_or_else(|| {
                reader.cookie_patterns()[0]
                    .trim_end_matches('*')
                    .to_string()
            });
            $crate::check_format(reader, &cookie, $crate::Value::$value, refuses, data);
        });
    };
}
