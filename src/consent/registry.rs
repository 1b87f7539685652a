//! The consent formats, listed once. Adding a format is adding its reader module and one line to
//! [`FORMATS`]: configuration (`[site.consent] sources`, the `[site.consent.NAME]` tables and
//! their "did you mean" hints), the readers' `format()` and `explain` all take the names from
//! here.

use super::{complianz, cookiebot, cookieyes, didomi, gpp, klaro, onetrust, tcf};
use super::{first_party, ConsentReader, CookieFormat, CookieReader};
use serde::de::DeserializeOwned;
use std::fmt;

/// Every format, in the order `sources` lists them by default (first-party first).
pub static FORMATS: &[FormatEntry] = &[
    FormatEntry {
        name: first_party::NAME,
        has_table: false,
        build: build_first_party,
    },
    table_format::<tcf::TcfReader>(),
    table_format::<onetrust::OneTrustReader>(),
    table_format::<cookiebot::CookiebotReader>(),
    table_format::<cookieyes::CookieYesReader>(),
    table_format::<complianz::ComplianzReader>(),
    table_format::<klaro::KlaroReader>(),
    table_format::<didomi::DidomiReader>(),
    table_format::<gpp::GppReader>(),
];

/// A reader configured by its own `[site.consent.NAME]` table.
pub trait TableReader: ConsentReader + Sized + 'static {
    /// The format's name in configuration and output (the reader's `format()`).
    const NAME: &'static str;
    /// The table as written. Every key has a default (`#[serde(default)]`): an absent table
    /// means the format's defaults.
    type Config: DeserializeOwned + Default;
    /// Checks the values serde cannot (empty names, ranges) and builds the reader.
    fn from_config(cfg: &Self::Config) -> Result<Self, String>;
}

/// The cookie-value formats share [`CookieReader`]; their [`CookieFormat`] carries the name.
impl<F: CookieFormat> TableReader for CookieReader<F>
where
    F::Config: DeserializeOwned + Default,
{
    const NAME: &'static str = F::NAME;
    type Config = F::Config;
    fn from_config(cfg: &F::Config) -> Result<Self, String> {
        CookieReader::new(cfg)
    }
}

/// One consent format.
pub struct FormatEntry {
    /// The name in `sources`, in `[site.consent.NAME]` and in output.
    pub name: &'static str,
    /// Whether the format takes a `[site.consent.NAME]` table (first-party is configured by
    /// `[site.consent] cookie` instead).
    pub has_table: bool,
    build: fn(&BuildInput<'_>) -> Result<Box<dyn ConsentReader>, FormatError>,
}

/// What a reader is built from.
pub struct BuildInput<'a> {
    /// The format's table; `None` when it is not written (the format's defaults).
    pub table: Option<&'a toml::Table>,
    /// `[site.consent] cookie`: the first-party cookie's name.
    pub consent_cookie: &'a str,
}

/// Why a reader could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The table does not deserialize (unknown key, wrong type): serde's message, which
    /// `config` turns into "what is wrong; how to fix it".
    Table(String),
    /// The reader refused a value.
    Reader(String),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Table(e) | FormatError::Reader(e) => f.write_str(e),
        }
    }
}

impl FormatEntry {
    /// Builds the reader from its table (or its defaults).
    pub fn build(&self, input: &BuildInput<'_>) -> Result<Box<dyn ConsentReader>, FormatError> {
        (self.build)(input)
    }
}

/// The entry of a table-configured reader.
const fn table_format<R: TableReader>() -> FormatEntry {
    FormatEntry {
        name: R::NAME,
        has_table: true,
        build: build_table::<R>,
    }
}

fn build_table<R: TableReader>(
    input: &BuildInput<'_>,
) -> Result<Box<dyn ConsentReader>, FormatError> {
    let cfg: R::Config = match input.table {
        None => R::Config::default(),
        Some(t) => toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| FormatError::Table(e.message().trim().to_string()))?,
    };
    let reader = R::from_config(&cfg).map_err(FormatError::Reader)?;
    Ok(Box::new(reader))
}

fn build_first_party(input: &BuildInput<'_>) -> Result<Box<dyn ConsentReader>, FormatError> {
    Ok(Box::new(first_party::FirstPartyReader::new(
        input.consent_cookie,
    )))
}

/// The entry named `name` (exact, lowercase).
pub fn find(name: &str) -> Option<&'static FormatEntry> {
    FORMATS.iter().find(|f| f.name == name)
}

/// The position of the format named `name` in [`FORMATS`] (per-format tables index by it).
pub fn index(name: &str) -> Option<usize> {
    FORMATS.iter().position(|f| f.name == name)
}

/// Every format name, in registry order.
pub fn names() -> impl Iterator<Item = &'static str> {
    FORMATS.iter().map(|f| f.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_builds_with_its_defaults_and_reports_its_name() {
        for f in FORMATS {
            let input = BuildInput {
                table: None,
                consent_cookie: "consent",
            };
            let r = f
                .build(&input)
                .unwrap_or_else(|e| panic!("{}: {e}", f.name));
            assert_eq!(r.format(), f.name);
            // An empty table is the same as none: every key has a default.
            if f.has_table {
                let empty = toml::Table::new();
                let input = BuildInput {
                    table: Some(&empty),
                    consent_cookie: "consent",
                };
                let r = f
                    .build(&input)
                    .unwrap_or_else(|e| panic!("{}: {e}", f.name));
                assert_eq!(r.format(), f.name);
            }
        }
    }

    #[test]
    fn names_are_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for n in names() {
            assert!(seen.insert(n), "{n} twice");
            assert_eq!(n, n.to_ascii_lowercase());
        }
        assert_eq!(FORMATS[0].name, "first-party");
    }

    #[test]
    fn a_bad_table_is_a_table_error() {
        let t: toml::Table = toml::from_str("cokie = \"x\"").unwrap();
        let input = BuildInput {
            table: Some(&t),
            consent_cookie: "consent",
        };
        match find("cookiebot").unwrap().build(&input) {
            Err(FormatError::Table(e)) => assert!(e.contains("unknown field `cokie`"), "{e}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        }
    }
}
