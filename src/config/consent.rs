//! `[site.consent]`: which consent formats a site reads, each built by its entry in
//! `consent::registry` from its `[site.consent.NAME]` table.

use super::error::{ConfigErrorKind as K, ListKey};
use super::located::Located;
use super::raw::{self, RawConsent};
use super::Validator;
use crate::consent::header::{self, HeaderSource};
use crate::consent::registry::{self, BuildInput, FormatEntry, FormatError};
use crate::consent::ConsentReader;
use std::ops::Range;
use toml::Spanned;

impl Validator<'_> {
    /// Builds the readers named by `sources`, reporting unknown names and bad tables. When
    /// `sources` is not written: first-party plus every format with a table, or, for a site
    /// with an opt-out jurisdiction (`opt_out`), every format (see [`default_sources`]).
    pub(super) fn consent_readers(
        &mut self,
        c: &RawConsent,
        consent_cookie: &str,
        opt_out: bool,
    ) -> Vec<Box<dyn ConsentReader>> {
        let formats = match &c.sources {
            Some(list) => self.listed_sources(list, c),
            None => default_sources(c, opt_out),
        };
        let mut readers = Vec::new();
        for (entry, span) in formats {
            if let Some(r) = self.reader(entry, c, consent_cookie, span) {
                readers.push(r);
            }
        }
        readers
    }

    /// The formats `sources` names, in its order (a repeat is read once); every table must be
    /// among them.
    fn listed_sources(
        &mut self,
        list: &Spanned<Vec<Spanned<String>>>,
        c: &RawConsent,
    ) -> Vec<(&'static FormatEntry, Range<usize>)> {
        if list.get_ref().is_empty() {
            self.error_at(list.span(), K::EmptyList(ListKey::Sources));
        }
        let mut formats: Vec<(&'static FormatEntry, Range<usize>)> = Vec::new();
        for src in list.get_ref() {
            let name = src.get_ref().trim().to_ascii_lowercase();
            match registry::find(&name) {
                None => {
                    let names: Vec<&'static str> = registry::names().collect();
                    let suggestion = raw::closest(&name, &names);
                    let value = src.get_ref().clone();
                    self.error_at(src.span(), K::UnknownSource { value, suggestion });
                }
                Some(f) if !formats.iter().any(|(g, _)| g.name == f.name) => {
                    formats.push((f, src.span()));
                }
                Some(_) => {}
            }
        }
        for f in registry::FORMATS {
            if let Some(table) = c.tables.get(f.name) {
                if !formats.iter().any(|(g, _)| g.name == f.name) {
                    self.error_at(table.span(), K::TableNotInSources(f.name.to_string()));
                }
            }
        }
        formats
    }

    /// Builds one reader; a bad table is reported key by key, on each bad key's line.
    fn reader(
        &mut self,
        entry: &'static FormatEntry,
        c: &RawConsent,
        consent_cookie: &str,
        span: Range<usize>,
    ) -> Option<Box<dyn ConsentReader>> {
        let written = c.tables.get(entry.name);
        let table = written.map(|t| plain(t.get_ref()));
        let input = BuildInput {
            table: table.as_ref(),
            consent_cookie,
        };
        match entry.build(&input) {
            Ok(r) => Some(r),
            Err(FormatError::Table(msg)) => {
                self.table_errors(entry, written, consent_cookie, &msg);
                None
            }
            Err(FormatError::Reader(reason)) => {
                let format = entry.name;
                self.error_at(span, K::Reader { format, reason });
                None
            }
        }
    }

    /// Finds the keys of a table that does not deserialize: every key has a default, so a
    /// table of that key alone fails exactly when the key is bad.
    fn table_errors(
        &mut self,
        entry: &FormatEntry,
        written: Option<&Located<raw::FormatTable>>,
        consent_cookie: &str,
        msg: &str,
    ) {
        let Some(written) = written else {
            // The defaults do not deserialize: a bug the registry tests catch.
            self.error(0, raw::toml_error_kind(msg));
            return;
        };
        let mut found = false;
        for (key, value) in written.get_ref() {
            let alone = toml::Table::from_iter([(key.clone(), value.get_ref().clone())]);
            let input = BuildInput {
                table: Some(&alone),
                consent_cookie,
            };
            if let Err(FormatError::Table(m)) = entry.build(&input) {
                let span = self.nested_key_span(entry, key, value, consent_cookie);
                self.error_at(span, raw::toml_error_kind(&m));
                found = true;
            }
        }
        if !found {
            self.error_at(written.span(), raw::toml_error_kind(msg));
        }
    }
}

impl Validator<'_> {
    /// Builds the `[[site.consent.header]]` sources. Each header's format is read with the
    /// site's own `[site.consent.FORMAT]` table (or the format's defaults), so a header maps
    /// to categories exactly as the cookie of that format does.
    pub(super) fn consent_headers(
        &mut self,
        c: &RawConsent,
        consent_cookie: &str,
    ) -> Vec<HeaderSource> {
        let mut out: Vec<HeaderSource> = Vec::new();
        let mut seen: Vec<http::HeaderName> = Vec::new();
        for entry in &c.header {
            let entry = entry.get_ref();
            let name_text = entry.name.get_ref().trim();
            let name = match http::HeaderName::from_bytes(name_text.as_bytes()) {
                Ok(n) if !matches!(n.as_str(), "cookie" | "host" | "sec-gpc") => n,
                _ => {
                    let reason = format!(
                        "`{name_text}` is not a usable header name; write one like \"X-Consent\" (not Cookie, Host or Sec-GPC)"
                    );
                    self.error_at(entry.name.span(), K::HeaderSource(reason));
                    continue;
                }
            };
            if seen.contains(&name) {
                let reason = format!("header `{name_text}` is listed twice");
                self.error_at(entry.name.span(), K::HeaderSource(reason));
                continue;
            }
            seen.push(name.clone());
            let format = entry.format.get_ref().trim().to_ascii_lowercase();
            let Some(registry_entry) = header::FORMATS
                .contains(&format.as_str())
                .then(|| registry::find(&format))
                .flatten()
            else {
                let reason = format!(
                    "format `{}` cannot be read from a header; use one of: {}",
                    entry.format.get_ref(),
                    header::FORMATS.join(", ")
                );
                self.error_at(entry.format.span(), K::HeaderSource(reason));
                continue;
            };
            let table = c
                .tables
                .get(registry_entry.name)
                .map(|t| plain(t.get_ref()));
            let input = BuildInput {
                table: table.as_ref(),
                consent_cookie,
            };
            // A bad table is reported where the table is (by `consent_readers`).
            if let Ok(reader) = registry_entry.build(&input) {
                out.push(HeaderSource::new(name, reader));
            } else if !c.tables.contains_key(registry_entry.name) {
                let reason = format!("format `{format}` does not build with its defaults");
                self.error_at(entry.format.span(), K::HeaderSource(reason));
            }
        }
        out
    }
}

impl Validator<'_> {
    /// Where a bad key's problem is: for a sub-table (`[site.consent.cookiebot.map]`), the
    /// first of its keys that is bad on its own, found by the same probing one level down
    /// and located in the text (its spans are not kept); else the value itself.
    fn nested_key_span(
        &self,
        entry: &FormatEntry,
        key: &str,
        value: &Located<toml::Value>,
        consent_cookie: &str,
    ) -> Range<usize> {
        let toml::Value::Table(sub) = value.get_ref() else {
            return value.span();
        };
        for (k, v) in sub {
            let inner = toml::Table::from_iter([(k.clone(), v.clone())]);
            let alone = toml::Table::from_iter([(key.to_string(), toml::Value::Table(inner))]);
            let input = BuildInput {
                table: Some(&alone),
                consent_cookie,
            };
            if let Err(FormatError::Table(_)) = entry.build(&input) {
                if let Some(at) = key_in_table(self.text, value.span().start, k) {
                    return at..at;
                }
            }
        }
        value.span()
    }
}

/// The offset of the line `key = ...` in the table whose body starts at `from` (up to the next
/// table header), for a key written bare, quoted or as the last part of a dotted key.
fn key_in_table(text: &str, from: usize, key: &str) -> Option<usize> {
    let body = text.get(from..)?;
    let mut offset = from;
    for (i, line) in body.split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        if i > 0 && t.starts_with('[') {
            return None;
        }
        // An inline table (`map = { statistics = "ads" }`) is on the value's own line.
        let inline = i == 0 && t.contains('{');
        if inline
            || t.split_once('=')
                .is_some_and(|(lhs, _)| names(lhs.trim(), key))
        {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

/// Whether the left side of `key = ...` names `key`: written bare or quoted, alone or as the
/// last part of a dotted key (`map.statistics = ...`, a sub-table written with dotted keys).
fn names(lhs: &str, key: &str) -> bool {
    let is = |part: &str| {
        let part = part.trim();
        part == key || part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) == Some(key)
    };
    is(lhs) || lhs.rsplit_once('.').is_some_and(|(_, last)| is(last))
}

/// `sources` when it is not written, in registry order: first-party plus every format with a
/// table; with `every` (the site has an opt-out jurisdiction), every format, each by its
/// table or its default cookie names. Under opt-in a format not read grants nothing, so
/// reading few fails closed; under opt-out a format not read cannot refuse anything, so a
/// OneTrust or GPP opt-out would be ignored and the visitor tracked: there, every format the
/// proxy knows is read.
fn default_sources(c: &RawConsent, every: bool) -> Vec<(&'static FormatEntry, Range<usize>)> {
    registry::FORMATS
        .iter()
        .filter_map(|f| match c.tables.get(f.name) {
            Some(t) => Some((f, t.span())),
            None if every || !f.has_table => Some((f, 0..0)),
            None => None,
        })
        .collect()
}

/// The table without its spans.
fn plain(t: &raw::FormatTable) -> toml::Table {
    t.iter()
        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::path::Path;

    const HEAD: &str = "[proxy]\nlisten = [\"127.0.0.1:1\"]\n[[site]]\nname = \"a\"\nupstreams = [\"127.0.0.1:2\"]\n[site.consent]\n";

    fn sources(consent: &str) -> Result<Vec<String>, Vec<String>> {
        parse(&format!("{HEAD}{consent}"), Path::new("t.toml"))
            .map(|c| c.sites[0].consent.sources.clone())
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn sources_default_to_first_party_and_every_table_in_registry_order() {
        assert_eq!(sources("").unwrap(), ["first-party"]);
        // Tables written in another order still come in registry order.
        let s = sources("[site.consent.didomi]\n[site.consent.tcf]\n[site.consent.onetrust]\n");
        assert_eq!(s.unwrap(), ["first-party", "tcf", "onetrust", "didomi"]);
        // Written `sources` keep their own order; a repeat is read once.
        let s = sources("sources = [\"klaro\", \"First-Party\", \"klaro\"]\n");
        assert_eq!(s.unwrap(), ["klaro", "first-party"]);
    }

    #[test]
    fn an_opt_out_site_without_sources_reads_every_format() {
        let rule = |model: &str| {
            format!("[[site.jurisdiction]]\nname = \"r\"\nregions = [\"*\"]\nmodel = \"{model}\"\n")
        };
        let every: Vec<&str> = crate::consent::registry::names().collect();
        // Under opt-out a format not read could not refuse: every one is read.
        let s = sources(&format!(
            "[site.consent.gpp]\ncookie = \"g\"\n{}",
            rule("opt-out")
        ));
        assert_eq!(s.unwrap(), every);
        // Under opt-in (and off) a format not read grants nothing: the default stays.
        for model in ["opt-in", "off"] {
            let s = sources(&format!("[site.consent.gpp]\n{}", rule(model)));
            assert_eq!(s.unwrap(), ["first-party", "gpp"], "{model}");
        }
        // Written `sources` are the operator's choice.
        let s = sources(&format!("sources = [\"onetrust\"]\n{}", rule("opt-out")));
        assert_eq!(s.unwrap(), ["onetrust"]);
    }

    #[test]
    fn an_unknown_table_is_named_with_its_line_and_the_nearest_format() {
        let e = sources("cookie = \"c\"\n[site.consent.tfc]\ncookie = [\"x\"]\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.toml:8: unknown key `tfc`"), "{e:?}");
        assert!(e[0].contains("did you mean `tcf`?"), "{e:?}");
        assert!(e[0].contains("cookie, sources, tcf, onetrust"), "{e:?}");
    }

    #[test]
    fn a_bad_key_in_a_format_table_is_reported_on_its_line() {
        let e = sources("[site.consent.cookiebot]\ncookie = \"c\"\ncokie = \"x\"\nno_consent_region_grants = 1\n")
            .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("t.toml:9: unknown key `cokie`; did you mean `cookie`?"));
        assert!(e[1].starts_with("t.toml:10: this value is integer `1`; write a boolean here"));
        // One level down: the bad entry of a sub-table, on its own line.
        let e = sources(
            "[site.consent.cookiebot]\n[site.consent.cookiebot.map]\npreferences = \"preferences\"\nstatistics = \"ads\"\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:10: unknown category `ads`"),
            "{e:?}"
        );
        // The same sub-table written with dotted keys, and with no `[site.consent.cookiebot]`.
        for table in [
            "[site.consent.cookiebot]\nmap.preferences = \"preferences\"\nmap.statistics = \"ads\"\n",
            "cookiebot.map.preferences = \"preferences\"\ncookiebot.map.statistics = \"ads\"\n",
        ] {
            let e = sources(table).unwrap_err();
            let at = 7 + table.lines().position(|l| l.contains("ads")).unwrap();
            assert_eq!(e.len(), 1, "{e:?}");
            let want = format!("t.toml:{at}: unknown category `ads`");
            assert!(e[0].starts_with(&want), "{table}: {e:?}");
        }
    }

    fn headers(consent: &str) -> Result<Vec<String>, Vec<String>> {
        parse(&format!("{HEAD}{consent}"), Path::new("t.toml"))
            .map(|c| {
                c.sites[0]
                    .consent_headers
                    .iter()
                    .map(|h| format!("{}={}", h.name, h.format()))
                    .collect()
            })
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn header_sources_are_built_and_bad_entries_reported_on_their_line() {
        let ok = headers(
            "[[site.consent.header]]\nname = \"X-Consent\"\nformat = \"first-party\"\n[[site.consent.header]]\nname = \"X-TCF-Consent\"\nformat = \"TCF\"\n",
        );
        assert_eq!(ok.unwrap(), ["x-consent=first-party", "x-tcf-consent=tcf"]);
        let e = headers(
            "[[site.consent.header]]\nname = \"X Consent\"\nformat = \"gpp\"\n[[site.consent.header]]\nname = \"X-A\"\nformat = \"onetrust\"\n[[site.consent.header]]\nname = \"Cookie\"\nformat = \"tcf\"\n[[site.consent.header]]\nname = \"X-A\"\nformat = \"tcf\"",
        )
        .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].starts_with(
                "t.toml:8: [[site.consent.header]]: `X Consent` is not a usable header name"
            ),
            "{e:?}"
        );
        assert!(e[1].starts_with("t.toml:12: [[site.consent.header]]: format `onetrust` cannot be read from a header; use one of: first-party, tcf, gpp"), "{e:?}");
        assert!(e[2].starts_with("t.toml:14:"), "{e:?}");
        assert!(
            e[3].starts_with("t.toml:17: [[site.consent.header]]: header `X-A` is listed twice"),
            "{e:?}"
        );
        // One header as a single table (issue 11 writes `[site.consent.header]`), also inline.
        for one in [
            "[site.consent.header]\nname = \"X-Consent\"\nformat = \"first-party\"\n",
            "header = { name = \"X-Consent\", format = \"first-party\" }\n",
        ] {
            assert_eq!(headers(one).unwrap(), ["x-consent=first-party"], "{one}");
        }
        // Its bad entries are reported on their own lines, once.
        let e = headers("[site.consent.header]\nname = \"Cookie\"\nformat = \"onetrust\"\n")
            .unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:8: [[site.consent.header]]: `Cookie`"),
            "{e:?}"
        );
        let e =
            headers("[site.consent.header]\nname = \"X-A\"\nformat = \"onetrust\"\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml:9: [[site.consent.header]]: format `onetrust`"),
            "{e:?}"
        );
        let e = headers("[site.consent.header]\nname = \"X-B\"\nformt = \"tcf\"\n").unwrap_err();
        assert!(
            e.iter()
                .any(|l| l.starts_with("t.toml:9: unknown key `formt`; did you mean `format`?")),
            "{e:?}"
        );
        // Neither a table nor an array of tables: said once, with what to write.
        let e = headers("header = \"X-Consent\"\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            e[0],
            "t.toml:7: this value is string \"X-Consent\"; write a table with `name` and `format` (or an array of such tables) here instead"
        );
        // A misspelt key, with its line and the key meant.
        let e = headers("[[site.consent.header]]\nname = \"X-B\"\nformt = \"tcf\"\n").unwrap_err();
        assert!(
            e.iter()
                .any(|l| l.starts_with("t.toml:9: unknown key `formt`; did you mean `format`?")),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_sources_and_tables_left_out_of_sources_are_reported() {
        let e = sources("sources = [\"tcf\", \"oneturst\"]\n[site.consent.klaro]\n").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with(
            "t.toml:7: unknown consent source `oneturst`; did you mean `onetrust`? use one of: first-party, tcf,"
        ));
        assert!(e[1].starts_with(
            "t.toml:8: [site.consent.klaro] is configured but `klaro` is not in `sources`"
        ));
        // A reader refusing a value is reported where the format is named.
        let e = sources("sources = [\"complianz\"]\n[site.consent.complianz]\nprefix = \"\"\n")
            .unwrap_err();
        assert!(
            e[0].starts_with(
                "t.toml:7: [site.consent.complianz]: complianz `prefix` may not be empty"
            ),
            "{e:?}"
        );
    }
}
