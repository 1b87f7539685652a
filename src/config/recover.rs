//! Reporting every error in one pass. serde stops at the first unknown key or wrong type; to go
//! on, the offending key (with its value, or a whole unknown table) is blanked out with spaces,
//! which keeps every other byte offset and so every line number, and the text is read again.

use std::ops::Range;
use toml_edit::{ImDocument, Item, Table};

/// The byte ranges to blank so that the error at `offset` is gone: the key-value pair holding it,
/// or the table whose header holds it (its header, keys and sub-tables). Empty when the offset is
/// in no key-value pair or table header (the caller stops there).
pub fn offending_ranges(text: &str, offset: usize) -> Vec<Range<usize>> {
    let Ok(doc) = ImDocument::parse(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    find(text, doc.as_table(), offset, &mut out);
    out
}

fn find(text: &str, table: &Table, offset: usize, out: &mut Vec<Range<usize>>) -> bool {
    for (name, item) in table.iter() {
        let key = table.key(name).and_then(|k| k.span());
        match item {
            Item::Value(v) => {
                let (Some(k), Some(v)) = (key, v.span()) else {
                    continue;
                };
                let whole = pair(text, k, v);
                if whole.contains(&offset) {
                    out.push(whole);
                    return true;
                }
            }
            Item::Table(t) => {
                if in_header(text, t, key.as_ref(), offset) {
                    whole_table(text, t, out);
                    return true;
                }
                if find(text, t, offset, out) {
                    return true;
                }
            }
            Item::ArrayOfTables(a) => {
                for t in a.iter() {
                    if in_header(text, t, None, offset) {
                        whole_table(text, t, out);
                        return true;
                    }
                    if find(text, t, offset, out) {
                        return true;
                    }
                }
            }
            Item::None => {}
        }
    }
    false
}

/// Whether `offset` is in the table's `[header]` line (a table's span covers its whole body,
/// so only the line it starts on counts), or, for a dotted or implicit table, in its key.
fn in_header(text: &str, t: &Table, key: Option<&Range<usize>>, offset: usize) -> bool {
    let header = t.span().map(|s| header_line(text, s.start));
    header.is_some_and(|h| h.contains(&offset)) || key.is_some_and(|k| k.contains(&offset))
}

fn header_line(text: &str, start: usize) -> Range<usize> {
    let start = start.min(text.len());
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    start..end
}

fn whole_table(text: &str, t: &Table, out: &mut Vec<Range<usize>>) {
    out.extend(t.span());
    // (The span covers the header and the keys under it; sub-tables may sit elsewhere.)
    for (name, item) in t.iter() {
        let key = t.key(name).and_then(|k| k.span());
        match item {
            Item::Value(v) => {
                if let (Some(k), Some(v)) = (key, v.span()) {
                    out.push(pair(text, k, v));
                }
            }
            Item::Table(sub) => whole_table(text, sub, out),
            Item::ArrayOfTables(a) => a.iter().for_each(|sub| whole_table(text, sub, out)),
            Item::None => {}
        }
    }
}

/// A key-value pair from its key's and value's spans. The key's span is its last part only:
/// for a dotted key (`html.enabled = false`) the parts before it, on the same line, are
/// taken too, else blanking leaves `html.` behind, which does not parse.
fn pair(text: &str, key: Range<usize>, value: Range<usize>) -> Range<usize> {
    let mut start = key.start.min(value.start);
    let line_start = text[..start.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let before = &text[line_start..start.min(text.len())];
    let key_chars = |c: char| c.is_ascii_alphanumeric() || "_-.\"' \t".contains(c);
    if before.trim_end().ends_with('.') && before.chars().all(key_chars) {
        start = line_start + (before.len() - before.trim_start().len());
    }
    start..key.end.max(value.end)
}

/// The key a blanked range starts with: `listen` for `listen = [...]`, `cookeis` for
/// `[site.cookeis]`.
pub fn key_name(range_text: &str) -> String {
    let head = range_text.split('=').next().unwrap_or("");
    let head = head.trim().trim_matches(|c| c == '[' || c == ']');
    let last = head.rsplit('.').next().unwrap_or("");
    last.trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string()
}

/// Puts `key = <placeholder>` where a required key was blanked, so reading can go on: the first
/// of an empty array, string, table, zero or false that parses without a complaint about that
/// spot. `None` when none fits.
pub fn placeholder(text: &str, key: &str, range: Range<usize>) -> Option<String> {
    for value in ["[]", "\"\"", "{}", "0", "false"] {
        let pair = format!("{key}={value}");
        // It must fit on the blanked key's first line (line numbers stay put).
        let room = text.get(range.clone())?;
        let room = room.find('\n').unwrap_or(room.len());
        if pair.len() > room {
            continue;
        }
        let mut candidate = text.to_string();
        candidate.replace_range(range.start..range.start + pair.len(), &pair);
        match toml::from_str::<super::raw::RawConfig>(&candidate) {
            Ok(_) => return Some(candidate),
            Err(e) => {
                let here = e.span().is_some_and(|s| range.contains(&s.start));
                let missing = e.message().contains(&format!("missing field `{key}`"));
                if !here && !missing {
                    return Some(candidate);
                }
            }
        }
    }
    None
}

/// Replaces the ranges with spaces, keeping line breaks (and so every line number).
pub fn blank(text: &str, ranges: &[Range<usize>]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for r in ranges {
        for b in &mut bytes[r.start.min(text.len())..r.end.min(text.len())] {
            if *b != b'\n' && *b != b'\r' {
                *b = b' ';
            }
        }
    }
    // Whole UTF-8 sequences are blanked byte by byte, so the result stays UTF-8; should a range
    // ever split one, the lossy conversion keeps going rather than failing.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_a_key_value_and_keeps_lines() {
        let t = "[proxy]\nlisten = [\n  \"a\",\n]\nthreds = 2\n";
        let off = t.find("threds").unwrap();
        let r = offending_ranges(t, off);
        let b = blank(t, &r);
        assert_eq!(b.lines().count(), t.lines().count());
        assert!(!b.contains("threds") && b.contains("listen"));
        let off = t.find("\"a\"").unwrap();
        let b = blank(t, &offending_ranges(t, off));
        assert!(!b.contains("listen") && !b.contains("\"a\"") && b.contains("threds"));
    }

    #[test]
    fn blanks_a_whole_unknown_table() {
        let t = "[[site]]\nname = \"a\"\n[site.cookeis]\nnecessary = [\"x\"]\n[site.cookeis.vendors]\n_ga = 1\n[site.consent]\ncookie = \"c\"\n";
        let off = t.find("cookeis").unwrap();
        let b = blank(t, &offending_ranges(t, off));
        assert!(!b.contains("cookeis") && !b.contains("necessary") && !b.contains("_ga"));
        assert!(b.contains("[site.consent]") && b.contains("name = \"a\""));
    }
}
