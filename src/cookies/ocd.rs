//! Loader for the Open Cookie Database CSV (https://github.com/jkwakman/Open-Cookie-Database),
//! an optional third classification layer after operator rules and the built-in catalogue.
//! Columns are found by header name; `Wildcard match = 1` rows are prefixes.
//! The `csv` crate reads the records (RFC 4180: quoted fields, doubled quotes, newlines in
//! quotes).

use crate::consent::Category;
use std::fmt;
use std::path::Path;

pub struct OcdRule {
    /// The cookie name; ends in `*` for a prefix row.
    pub pattern: String,
    pub category: Category,
    pub platform: String,
}

#[derive(Debug)]
pub struct OcdError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for OcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// What a load produced: the rules and how many rows were skipped (names that cannot be
/// cookie names, such as placeholders with spaces or brackets, and bare names of cookies on a
/// vendor's own domain).
pub struct OcdLoad {
    pub rules: Vec<OcdRule>,
    pub skipped: usize,
}

pub fn load(path: &Path) -> Result<Vec<OcdRule>, OcdError> {
    let text = std::fs::read_to_string(path).map_err(|e| OcdError {
        file: path.display().to_string(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, &path.display().to_string()).map(|l| l.rules)
}

/// Splits CSV text into records, each with the line it starts on (blank lines are skipped).
fn records(text: &str, file: &str) -> Result<Vec<(usize, Vec<String>)>, OcdError> {
    let err = |line: u64, message: String| OcdError {
        file: file.to_string(),
        line: line as usize,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut last_start = None;
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            err(line, e.to_string())
        })?;
        let pos = record.position().expect("the csv reader records positions");
        last_start = Some((pos.line(), pos.byte() as usize));
        out.push((
            pos.line() as usize,
            record.iter().map(String::from).collect(),
        ));
    }
    if let Some((line, byte)) = last_start {
        if leaves_quote_open(&text.as_bytes()[byte..]) {
            return Err(err(
                line,
                "a quoted field is never closed; add the missing `\"`".into(),
            ));
        }
    }
    Ok(out)
}

/// Whether `tail` (the last record, to the end of the file) leaves a quoted field open: a file
/// cut short. The `csv` crate reads such a field as running to the end of the file (it prefers
/// a parse to none), so its own state machine (`csv-core`) is asked: with a line end appended
/// and the end of input not signalled, a record whose quotes are closed ends; an open one never
/// does.
fn leaves_quote_open(tail: &[u8]) -> bool {
    let mut reader = csv_core::Reader::new();
    let mut field = [0u8; 1024];
    for mut input in [tail, b"\n"] {
        while !input.is_empty() {
            let (result, read, _) = reader.read_field(input, &mut field);
            input = &input[read..];
            if let csv_core::ReadFieldResult::Field { record_end: true } = result {
                return false;
            }
        }
    }
    true
}

/// Whether a `Domain` cell scopes the row to a vendor's domain: marked `(3rd party)`, or a
/// domain with a leading dot (`.springserve.com`). An empty cell, or a bare domain
/// (`hubspot.com`, which the database also uses for cookies set on the site), is not.
fn vendor_scoped(domain: &str) -> bool {
    domain.to_ascii_lowercase().contains("(3rd party)") || domain.trim_start().starts_with('.')
}

/// Parses the CSV text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<OcdLoad, OcdError> {
    let err = |line: usize, message: String| OcdError {
        file: file.to_string(),
        line,
        message,
    };
    let recs = records(text.trim_start_matches('\u{feff}'), file)?;
    let Some((_, header)) = recs.first() else {
        return Err(err(
            1,
            "the file is empty; expected the Open Cookie Database header".into(),
        ));
    };
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                err(
                    1,
                    format!("column `{name}` is missing from the header; is this the Open Cookie Database CSV?"),
                )
            })
    };
    let (c_platform, c_category, c_name, c_wild) = (
        col("Platform")?,
        col("Category")?,
        col("Cookie / Data Key name")?,
        col("Wildcard match")?,
    );
    // Optional: older copies of the database may not have it.
    let c_domain = col("Domain").ok();
    let mut rules = Vec::new();
    let mut skipped = 0;
    for (line, rec) in recs.iter().skip(1) {
        let get = |i: usize| rec.get(i).map(|s| s.trim()).unwrap_or("");
        let name = get(c_name);
        if name.is_empty() {
            skipped += 1;
            continue;
        }
        let category = match get(c_category).to_ascii_lowercase().as_str() {
            "analytics" => Category::Analytics,
            "marketing" => Category::Marketing,
            // Functional cookies in this database are mostly preference-like (language, UI
            // state, chat widgets): treated as needing consent, not as necessary.
            "functional" | "personalization" | "preferences" => Category::Preferences,
            "security" | "necessary" => Category::Necessary,
            other => {
                return Err(err(
                    *line,
                    format!("unknown category `{other}`; expected Analytics, Marketing, Functional, Personalization, Security or Necessary"),
                ))
            }
        };
        // Names that cannot be cookie names (placeholders like `<id>` or `[abc]`, spaces).
        if name.contains([
            ' ', ';', ',', '=', '"', '<', '>', '[', ']', '{', '}', '(', ')', '\n',
        ]) {
            skipped += 1;
            continue;
        }
        // A row scoped to a vendor's own domain describes a cookie this proxy never sees (the
        // browser sends it to the vendor). Its name only matters here when the vendor's script
        // also sets it on the site, which vendors do with prefixed names (`_fbp`, `_ym_uid`,
        // `__insp_wid`); a bare name from such a row (`s` and `locale` for facebook.com, `PID`
        // for scorecardresearch.com, `ssid` for springserve.com) is far more often the site's
        // own cookie (eBay's session `s`, doctolib's `ssid`), which it would strip and expire.
        if c_domain.is_some_and(|c| vendor_scoped(get(c))) && !name.starts_with('_') {
            skipped += 1;
            continue;
        }
        let wildcard = get(c_wild) == "1";
        let pattern = match (wildcard, name.ends_with('*')) {
            (true, false) => format!("{name}*"),
            _ => name.to_string(),
        };
        if pattern == "*" {
            skipped += 1;
            continue;
        }
        rules.push(OcdRule {
            pattern,
            category,
            platform: get(c_platform).to_string(),
        });
    }
    Ok(OcdLoad { rules, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "ID,Platform,Category,Cookie / Data Key name,Domain,Description,Retention period,Data Controller,User Privacy & GDPR Rights Portals,Wildcard match\n";

    #[test]
    fn rows_quotes_and_wildcards() {
        let text = format!(
            "{HEADER}1,Google Analytics,Analytics,_ga,,\"Distinguishes users, with a comma\",2 years,Google,https://x,0\r\n2,Hotjar,Analytics,_hjSession_,,\"multi\nline \"\"quoted\"\"\",30 min,Hotjar,https://y,1\n3,X,Functional,lang,,,,,,0\n4,Y,Marketing,<user id>,,,,,,0\n"
        );
        let l = parse(&text, "ocd.csv").unwrap();
        let names: Vec<(&str, Category)> = l
            .rules
            .iter()
            .map(|r| (r.pattern.as_str(), r.category))
            .collect();
        assert_eq!(
            names,
            vec![
                ("_ga", Category::Analytics),
                ("_hjSession_*", Category::Analytics),
                ("lang", Category::Preferences)
            ]
        );
        assert_eq!(l.skipped, 1);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(
            &format!("{HEADER}1,X,Analytics,a,,,,,,0\n2,X,Tracking,b,,,,,,0\n"),
            "f.csv",
        )
        .err()
        .unwrap();
        assert_eq!(e.line, 3);
        assert!(e
            .to_string()
            .starts_with("f.csv:3: unknown category `tracking`"));
        let e = parse(&format!("{HEADER}1,X,Analytics,\"a,,,,,,0\n"), "f.csv")
            .err()
            .unwrap();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("never closed"));
        let e = parse("ID,Platform,Category\n", "f.csv").err().unwrap();
        assert!(e
            .to_string()
            .starts_with("f.csv:1: column `Cookie / Data Key name` is missing"));
    }

    /// Rows exactly as the database's authors wrote them: an excerpt of the real file
    /// (tests/fixtures/open-cookie-database/NOTICE): 48 rows covering every category.
    #[test]
    fn rows_of_the_real_database() {
        let path = "tests/fixtures/open-cookie-database/open-cookie-database.csv";
        let text =
            include_str!("../../tests/fixtures/open-cookie-database/open-cookie-database.csv");
        let l = parse(text, path).unwrap();
        let find = |n: &str| l.rules.iter().find(|r| r.pattern == n).map(|r| r.category);
        assert_eq!(find("_ga"), Some(Category::Analytics));
        assert_eq!(find("td"), Some(Category::Analytics));
        assert_eq!(find("_fbp"), Some(Category::Marketing));
        assert_eq!(
            find("sidebarPinned"),
            Some(Category::Preferences),
            "Personalization"
        );
        assert_eq!(
            find("cookiePreferences"),
            Some(Category::Preferences),
            "Functional"
        );
        assert_eq!(
            find("__AntiXsrfToken"),
            Some(Category::Necessary),
            "Security"
        );
        assert_eq!(
            find("sb-*"),
            Some(Category::Necessary),
            "a Necessary wildcard row"
        );
        // `Wildcard match = 1` rows become prefixes; a quoted name is unquoted.
        assert_eq!(find("_ga_*"), Some(Category::Analytics));
        assert_eq!(find("lz_last_visit"), Some(Category::Preferences));
        // Placeholders that cannot be cookie names: `barometric[cuid]`, `barometric[idfa]`,
        // `pvc_visits[0]`, `Site History`; and six bare names on a vendor's domain
        // (`userlang` on `cookiebot.com (3rd party)`, `csrf_same_site` on `.twitter.com`, ...).
        assert_eq!(find("userlang"), None);
        assert_eq!(find("lu"), None);
        assert_eq!(find("csrf_same_site"), None);
        assert_eq!(l.skipped, 4 + 6);
        assert_eq!(l.rules.len(), 48 - 4 - 6);
    }

    /// Rows as the database writes them (Domain cells of the real file): a bare name scoped to
    /// a vendor's domain is left out, a prefixed one and any row without a vendor scope stay.
    #[test]
    fn bare_names_on_a_vendor_domain_are_left_out() {
        let text = format!(
            "{HEADER}1,Facebook,Marketing,s,facebook.com (3rd party),,,,,0\n\
             2,Springserve,Marketing,ssid,.springserve.com,,,,,0\n\
             3,ComScore,Marketing,PID,.scorecardresearch.com,,,,,0\n\
             4,Facebook,Marketing,_fbp,facebook.com (3rd party),,,,,0\n\
             5,Yandex Metrica,Analytics,_ym_visorc_,.yandex.ru,,,,,1\n\
             6,HubSpot,Marketing,hubspotutk,hubspot.com,,,,,0\n\
             7,CodeIgniter,Functional,ci_session,,,,,,0\n"
        );
        let l = parse(&text, "ocd.csv").unwrap();
        let names: Vec<&str> = l.rules.iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(names, ["_fbp", "_ym_visorc_*", "hubspotutk", "ci_session"]);
        assert_eq!(l.skipped, 3);
    }
}
