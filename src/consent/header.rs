//! Consent sent by apps in a request header (`[[site.consent.header]]`): mobile and desktop
//! apps call the same origins but hold no cookies, so they send what the visitor chose as
//! `X-Consent: analytics` (first-party syntax), their stored `IABTCF_TCString` (`tcf`) or
//! their GPP string (`gpp`). A header source is one more source, combined with the cookie
//! sources by the same most-restrictive rule ([`super::Verdict::merge`]).

use super::{ConsentError, ConsentReader, SourceOutcome, Via};
use std::sync::Arc;

/// The formats a header may carry.
pub const FORMATS: &[&str] = &["first-party", "tcf", "gpp"];

/// One configured header source.
pub struct HeaderSource {
    pub name: http::HeaderName,
    /// The header's name, as reported in outcomes.
    label: Arc<str>,
    /// The format's reader, built from the site's `[site.consent.FORMAT]` table (or its
    /// defaults), so the header maps to categories exactly as the cookie does.
    reader: Box<dyn ConsentReader>,
}

impl std::fmt::Debug for HeaderSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeaderSource({}: {})", self.name, self.reader.format())
    }
}

impl HeaderSource {
    pub fn new(name: http::HeaderName, reader: Box<dyn ConsentReader>) -> Self {
        HeaderSource {
            label: name.as_str().into(),
            name,
            reader,
        }
    }

    pub fn format(&self) -> &'static str {
        self.reader.format()
    }

    /// Reads the header from the request; `None` when it is absent. The header sent more than
    /// once is refused (an app sends one value; two would need a rule of their own): the
    /// source fails and grants nothing.
    pub fn read(&self, headers: &http::HeaderMap, detail: bool) -> Option<SourceOutcome> {
        let mut values = headers.get_all(&self.name).iter();
        let first = values.next()?;
        let outcome = if values.next().is_some() {
            SourceOutcome::failed(
                self.format(),
                &self.label,
                ConsentError::new(format!(
                    "header {} sent more than once; one value expected",
                    self.name
                )),
            )
        } else {
            self.reader
                .read_value(first.as_bytes(), &self.label, detail)
                .unwrap_or_else(|| {
                    SourceOutcome::failed(
                        self.format(),
                        &self.label,
                        ConsentError::new("this format is not read from headers"),
                    )
                })
        };
        Some(SourceOutcome {
            via: Via::Header,
            ..outcome
        })
    }
}
