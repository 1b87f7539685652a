//! IAB Global Privacy Platform (GPP) strings: `__gpp` (with `__gpp_sid`, the applicable
//! section ids) and OneTrust's `OTGPPConsent`.
//!
//! A GPP string is a header (`DBA...`: type 3, version 1, the section ids as a Fibonacci-coded
//! range) and one encoded section per id, joined by `~`. Decoded here: `tcfeuv2` (id 2, a TCF
//! v2 TC string, read by [`super::tcf`]), `uspv1` (6, the four-character US Privacy string) and
//! the US sections `usnat` (7, both the 12/2 and the 16/3 sensitive-data layouts), `usca` (8),
//! `usva` (9), `usco` (10), `usut` (11), `usct` (12) and the state sections 13-22 (`usfl`,
//! `usmt`, `usor`, `ustx`, `usde`, `usia`, `usne`, `usnh`, `usnj`, `ustn`), each with its
//! optional GPC sub-section (the segment after `.`) where the section defines one. Other
//! sections are listed as unsupported and decide nothing; they do not fail the string. Layouts follow the
//! IAB's "GPP Consent String Specification" and the per-state technical specifications, as
//! the IAB reference libraries (iabgpp-es, iabgpp-java) implement them; docs/CONSENT.md, "IAB
//! GPP", gives the mapping to categories.
//!
//! Privacy fails closed: a string that does not decode (bad header, a section count that does
//! not match the ids, a supported section that is truncated) fails the whole source. Work is
//! linear in the value and capped ([`MAX_LEN`], [`MAX_SECTIONS`]).

use super::registry::TableReader;
use super::tcf::{self, TcString, TcfConfig};
use super::{Category, ConsentError, ConsentReader, SourceOutcome, VendorSet, Verdict};
use crate::cookies::header::CookieJar;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// A GPP string longer than this is refused (a real one with a full TCF section is a few KB).
pub const MAX_LEN: usize = 64 * 1024;
/// At most this many section ids in a header (about 25 sections are defined).
pub const MAX_SECTIONS: usize = 64;
/// Section ids above this are refused (a range `1-1000000` would be work for nothing).
const MAX_SECTION_ID: u64 = 1024;

/// `[site.consent.gpp]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GppConfig {
    /// The cookie holding the GPP string (IAB CMP API convention). Default `__gpp`.
    pub cookie: String,
    /// The cookie holding the applicable section ids (`7`, `2_7`, `7,8`). Default `__gpp_sid`.
    pub sid_cookie: String,
    /// OneTrust's copy of the GPP string. Default `OTGPPConsent`.
    pub onetrust_cookie: String,
    /// Categories refused when a US section opts out (`SaleOptOut`, `SharingOptOut` or
    /// `TargetedAdvertisingOptOut` is 1). Default: marketing.
    pub opt_out_refuses: Vec<Category>,
    /// Categories refused when a US section's GPC sub-section says `Gpc` = true. Default:
    /// marketing.
    pub gpc_refuses: Vec<Category>,
    /// The `tcfeuv2` section's purposes per category, as `[site.consent.tcf]` takes them.
    pub analytics: Vec<u8>,
    pub marketing: Vec<u8>,
    pub preferences: Vec<u8>,
}

impl Default for GppConfig {
    fn default() -> Self {
        let tcf = TcfConfig::default();
        GppConfig {
            cookie: "__gpp".into(),
            sid_cookie: "__gpp_sid".into(),
            onetrust_cookie: "OTGPPConsent".into(),
            opt_out_refuses: vec![Category::Marketing],
            gpc_refuses: vec![Category::Marketing],
            analytics: tcf.analytics,
            marketing: tcf.marketing,
            preferences: tcf.preferences,
        }
    }
}

/// One decoded field value: integers as integers, lists as lists, booleans as booleans, and
/// uspv1's `Y`/`N`/`-` flags as one-character strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Int(u8),
    List(Vec<u8>),
    Bool(bool),
    Char(char),
}

impl Field {
    fn to_json(&self) -> Value {
        match self {
            Field::Int(n) => json!(n),
            Field::List(l) => json!(l),
            Field::Bool(b) => json!(b),
            Field::Char(c) => json!(c.to_string()),
        }
    }
}

/// A decoded US section: its fields in specification order, with the specification's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsSection {
    pub id: u16,
    pub name: &'static str,
    pub fields: Vec<(&'static str, Field)>,
}

impl UsSection {
    /// The value of the field named `name`, as the specification names it.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, f)| f)
    }

    /// Whether the visitor opted out of sale, sharing or targeted advertising (value 1), or,
    /// in uspv1, of sale (`OptOutSale` = `Y`).
    pub fn opted_out(&self) -> bool {
        ["SaleOptOut", "SharingOptOut", "TargetedAdvertisingOptOut"]
            .iter()
            .any(|n| self.get(n) == Some(&Field::Int(1)))
            || self.get("OptOutSale") == Some(&Field::Char('Y'))
    }

    /// `Gpc` of the GPC sub-section, when there is one.
    pub fn gpc(&self) -> bool {
        self.get("Gpc") == Some(&Field::Bool(true))
    }
}

/// One section of a GPP string.
#[derive(Clone, Debug)]
pub enum Section {
    TcfEuV2(Box<TcString>),
    Us(UsSection),
    /// A section this decoder does not read: it decides nothing.
    Unsupported(u16),
}

impl Section {
    pub fn id(&self) -> u16 {
        match self {
            Section::TcfEuV2(_) => 2,
            Section::Us(s) => s.id,
            Section::Unsupported(id) => *id,
        }
    }
}

/// A decoded GPP string.
#[derive(Clone, Debug)]
pub struct GppString {
    /// The header's section ids, in order.
    pub section_ids: Vec<u16>,
    /// One per id, in the same order.
    pub sections: Vec<Section>,
}

/// A base64url text decoded (`tcf::base64url`: padding and trailing bits as real encoders
/// write them), read through the TCF decoder's bit reader.
struct Decoded {
    data: Vec<u8>,
    len: usize,
}

impl Decoded {
    fn new(text: &str, what: &str) -> Result<Decoded, ConsentError> {
        let (data, len) = tcf::base64url(text)
            .map_err(|_| ConsentError::new(format!("GPP {what} is not base64url")))?;
        Ok(Decoded { data, len })
    }

    fn bits(&self) -> Bits<'_> {
        Bits(tcf::Bits::new(&self.data, self.len))
    }
}

/// Bits most significant first; `None` when the text ends first.
struct Bits<'a>(tcf::Bits<'a>);

impl Bits<'_> {
    fn bit(&mut self) -> Option<bool> {
        self.int(1).map(|b| b == 1)
    }

    /// An `n`-bit integer, 1 <= n <= 56 (GPP's fields are at most 12 bits).
    fn int(&mut self, n: usize) -> Option<u64> {
        self.0.read(n).ok()
    }

    /// A Fibonacci-coded integer (Zeckendorf bits, least significant first, ended by `11`).
    fn fibonacci(&mut self) -> Option<u64> {
        let (mut a, mut b) = (1u64, 2u64);
        let mut value = 0u64;
        let mut last = false;
        loop {
            let bit = self.bit()?;
            if bit && last {
                return Some(value);
            }
            if bit {
                value = value.checked_add(a)?;
            }
            last = bit;
            // Past the id cap the value is refused anyway: stop before it overflows.
            if a > MAX_SECTION_ID * 4 {
                return None;
            }
            (a, b) = (b, a + b);
        }
    }
}

/// The header: type 3, version 1, then the section ids as a Fibonacci-coded range.
pub fn decode_header(text: &str) -> Result<Vec<u16>, ConsentError> {
    let bad = || ConsentError::new("GPP header is truncated or malformed");
    let decoded = Decoded::new(text, "header")?;
    let mut b = decoded.bits();
    let kind = b.int(6).ok_or_else(bad)?;
    if kind != 3 {
        return Err(ConsentError::new(format!(
            "GPP header type is {kind}, not 3 (is this a GPP string?)"
        )));
    }
    let version = b.int(6).ok_or_else(bad)?;
    if version != 1 {
        return Err(ConsentError::new(format!(
            "GPP header version {version} is not supported (only 1)"
        )));
    }
    let count = b.int(12).ok_or_else(bad)? as usize;
    if count > MAX_SECTIONS {
        return Err(ConsentError::new(format!(
            "GPP header lists {count} sections (at most {MAX_SECTIONS})"
        )));
    }
    let mut ids = Vec::with_capacity(count);
    let mut last = 0u64;
    let too_many = || ConsentError::new("GPP header section ids are out of range");
    for _ in 0..count {
        let range = b.bit().ok_or_else(bad)?;
        let start = last + b.fibonacci().ok_or_else(bad)?;
        let end = if range {
            start + b.fibonacci().ok_or_else(bad)?
        } else {
            start
        };
        if end > MAX_SECTION_ID || ids.len() + (end - start) as usize >= MAX_SECTIONS {
            return Err(too_many());
        }
        ids.extend((start..=end).map(|id| id as u16));
        last = end;
    }
    Ok(ids)
}

/// One field of a US section's core segment.
#[derive(Clone, Copy)]
enum Kind {
    /// A 2-bit integer (6 bits for `Version`).
    Int(usize),
    /// `n` 2-bit integers.
    List(usize),
}

use Kind::{Int, List};

const N: Kind = Int(2);

/// A section's layout: its name, its core fields in order, and whether the GPC sub-section
/// is defined for it.
type Layout = (&'static str, &'static [(&'static str, Kind)], bool);

/// The layouts, from the IAB's technical specifications (field names verbatim).
fn layout(id: u16, bits: usize) -> Option<Layout> {
    const USNAT_16: &[(&str, Kind)] = &[
        ("Version", Int(6)),
        ("SharingNotice", N),
        ("SaleOptOutNotice", N),
        ("SharingOptOutNotice", N),
        ("TargetedAdvertisingOptOutNotice", N),
        ("SensitiveDataProcessingOptOutNotice", N),
        ("SensitiveDataLimitUseNotice", N),
        ("SaleOptOut", N),
        ("SharingOptOut", N),
        ("TargetedAdvertisingOptOut", N),
        ("SensitiveDataProcessing", List(16)),
        ("KnownChildSensitiveDataConsents", List(3)),
        ("PersonalDataConsents", N),
        ("MspaCoveredTransaction", N),
        ("MspaOptOutOptionMode", N),
        ("MspaServiceProviderMode", N),
    ];
    // The first usnat layout (12 sensitive-data categories, 2 child consents); strings written
    // before the 2024 revision are still stored in visitors' browsers.
    const USNAT_12: &[(&str, Kind)] = &[
        ("Version", Int(6)),
        ("SharingNotice", N),
        ("SaleOptOutNotice", N),
        ("SharingOptOutNotice", N),
        ("TargetedAdvertisingOptOutNotice", N),
        ("SensitiveDataProcessingOptOutNotice", N),
        ("SensitiveDataLimitUseNotice", N),
        ("SaleOptOut", N),
        ("SharingOptOut", N),
        ("TargetedAdvertisingOptOut", N),
        ("SensitiveDataProcessing", List(12)),
        ("KnownChildSensitiveDataConsents", List(2)),
        ("PersonalDataConsents", N),
        ("MspaCoveredTransaction", N),
        ("MspaOptOutOptionMode", N),
        ("MspaServiceProviderMode", N),
    ];
    const USCA: &[(&str, Kind)] = &[
        ("Version", Int(6)),
        ("SaleOptOutNotice", N),
        ("SharingOptOutNotice", N),
        ("SensitiveDataLimitUseNotice", N),
        ("SaleOptOut", N),
        ("SharingOptOut", N),
        ("SensitiveDataProcessing", List(9)),
        ("KnownChildSensitiveDataConsents", List(2)),
        ("PersonalDataConsents", N),
        ("MspaCoveredTransaction", N),
        ("MspaOptOutOptionMode", N),
        ("MspaServiceProviderMode", N),
    ];
    const USVA: &[(&str, Kind)] = &[
        ("Version", Int(6)),
        ("SharingNotice", N),
        ("SaleOptOutNotice", N),
        ("TargetedAdvertisingOptOutNotice", N),
        ("SaleOptOut", N),
        ("TargetedAdvertisingOptOut", N),
        ("SensitiveDataProcessing", List(8)),
        ("KnownChildSensitiveDataConsents", N),
        ("MspaCoveredTransaction", N),
        ("MspaOptOutOptionMode", N),
        ("MspaServiceProviderMode", N),
    ];
    const USCO: &[(&str, Kind)] = &[
        ("Version", Int(6)),
        ("SharingNotice", N),
        ("SaleOptOutNotice", N),
        ("TargetedAdvertisingOptOutNotice", N),
        ("SaleOptOut", N),
        ("TargetedAdvertisingOptOut", N),
        ("SensitiveDataProcessing", List(7)),
        ("KnownChildSensitiveDataConsents", N),
        ("MspaCoveredTransaction", N),
        ("MspaOptOutOptionMode", N),
        ("MspaServiceProviderMode", N),
    ];
    const USUT: &[(&str, Kind)] = &[
        ("Version", Int(6)),
        ("SharingNotice", N),
        ("SaleOptOutNotice", N),
        ("TargetedAdvertisingOptOutNotice", N),
        ("SensitiveDataProcessingOptOutNotice", N),
        ("SaleOptOut", N),
        ("TargetedAdvertisingOptOut", N),
        ("SensitiveDataProcessing", List(8)),
        ("KnownChildSensitiveDataConsents", N),
        ("MspaCoveredTransaction", N),
        ("MspaOptOutOptionMode", N),
        ("MspaServiceProviderMode", N),
    ];
    const USCT: &[(&str, Kind)] = &[
        ("Version", Int(6)),
        ("SharingNotice", N),
        ("SaleOptOutNotice", N),
        ("TargetedAdvertisingOptOutNotice", N),
        ("SaleOptOut", N),
        ("TargetedAdvertisingOptOut", N),
        ("SensitiveDataProcessing", List(8)),
        ("KnownChildSensitiveDataConsents", List(3)),
        ("MspaCoveredTransaction", N),
        ("MspaOptOutOptionMode", N),
        ("MspaServiceProviderMode", N),
    ];
    // The state sections 13-22 share one shape: their first notice, the length of
    // `SensitiveDataProcessing` and the kind of `KnownChildSensitiveDataConsents` differ (usia
    // alone has its own, below). Layouts as @iabgpp/cmpapi 3.2.0 and iabgpp-java encode them.
    macro_rules! state {
        ($notice:literal, $sensitive:literal, $child:expr) => {
            &[
                ("Version", Int(6)),
                ($notice, N),
                ("SaleOptOutNotice", N),
                ("TargetedAdvertisingOptOutNotice", N),
                ("SaleOptOut", N),
                ("TargetedAdvertisingOptOut", N),
                ("SensitiveDataProcessing", List($sensitive)),
                ("KnownChildSensitiveDataConsents", $child),
                ("AdditionalDataProcessingConsent", N),
                ("MspaCoveredTransaction", N),
                ("MspaOptOutOptionMode", N),
                ("MspaServiceProviderMode", N),
            ]
        };
    }
    const USFL: &[(&str, Kind)] = state!("ProcessingNotice", 8, List(3));
    const USMT: &[(&str, Kind)] = state!("SharingNotice", 8, List(3));
    const USOR: &[(&str, Kind)] = state!("ProcessingNotice", 11, List(3));
    const USTX: &[(&str, Kind)] = state!("ProcessingNotice", 8, N);
    const USDE: &[(&str, Kind)] = state!("ProcessingNotice", 9, List(5));
    const USNE: &[(&str, Kind)] = state!("ProcessingNotice", 8, N);
    const USNH: &[(&str, Kind)] = state!("ProcessingNotice", 8, List(3));
    const USNJ: &[(&str, Kind)] = state!("ProcessingNotice", 10, List(5));
    const USTN: &[(&str, Kind)] = state!("ProcessingNotice", 8, N);
    const USIA: &[(&str, Kind)] = &[
        ("Version", Int(6)),
        ("ProcessingNotice", N),
        ("SaleOptOutNotice", N),
        ("TargetedAdvertisingOptOutNotice", N),
        ("SensitiveDataOptOutNotice", N),
        ("SaleOptOut", N),
        ("TargetedAdvertisingOptOut", N),
        ("SensitiveDataProcessing", List(8)),
        ("KnownChildSensitiveDataConsents", N),
        ("MspaCoveredTransaction", N),
        ("MspaOptOutOptionMode", N),
        ("MspaServiceProviderMode", N),
    ];
    // (name, layout, whether a GPC sub-section is defined)
    Some(match id {
        // The 16/3 layout needs 70 bits; a shorter core is the 12/2 one (60 bits), as the
        // reference libraries tell them apart (both carry Version 1).
        7 if bits >= 70 => ("usnat", USNAT_16, true),
        7 => ("usnat", USNAT_12, true),
        8 => ("usca", USCA, true),
        9 => ("usva", USVA, false),
        10 => ("usco", USCO, true),
        11 => ("usut", USUT, false),
        12 => ("usct", USCT, true),
        13 => ("usfl", USFL, false),
        14 => ("usmt", USMT, true),
        15 => ("usor", USOR, true),
        16 => ("ustx", USTX, true),
        17 => ("usde", USDE, true),
        18 => ("usia", USIA, true),
        19 => ("usne", USNE, true),
        20 => ("usnh", USNH, true),
        21 => ("usnj", USNJ, true),
        22 => ("ustn", USTN, true),
        // 23-27 (usmn, usmd, usin, usky, usri): their layouts changed between releases of the
        // reference libraries under the same Version (iabgpp-java's UsMnTest decodes
        // `BVWSSSSVYA` in one and `BVWSSVWA` in the next), so they are read past.
        _ => return None,
    })
}

/// The name of a section this decoder reads.
pub fn section_name(id: u16) -> Option<&'static str> {
    match id {
        2 => Some("tcfeuv2"),
        6 => Some("uspv1"),
        _ => layout(id, 0).map(|(name, _, _)| name),
    }
}

/// Decodes one US section (core segment, then the optional GPC sub-section after `.`; uspv1 by
/// its own rules, [`decode_uspv1`]). `None`: a section this decoder does not read.
pub fn decode_us_section(id: u16, text: &str) -> Result<Option<UsSection>, ConsentError> {
    if id == 6 {
        return decode_uspv1(text).map(Some);
    }
    let mut segments = text.split('.');
    let core = segments.next().unwrap_or("");
    let decoded = Decoded::new(core, "section")?;
    let mut b = decoded.bits();
    let Some((name, fields, has_gpc)) = layout(id, decoded.len) else {
        return Ok(None);
    };
    let truncated = || ConsentError::new(format!("GPP section {name} is truncated"));
    let mut out = Vec::with_capacity(fields.len() + 2);
    for (field, kind) in fields {
        let value = match *kind {
            Int(n) => Field::Int(b.int(n).ok_or_else(truncated)? as u8),
            List(n) => Field::List(
                (0..n)
                    .map(|_| b.int(2).map(|v| v as u8))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(truncated)?,
            ),
        };
        out.push((*field, value));
    }
    // Version 1 everywhere; usnat also carries Version 2 for the 16/3 layout (the layout
    // iab_gpp and the specification's 2024 revision write), which must then be complete.
    match (&out[0].1, id) {
        (Field::Int(1), _) => {}
        (Field::Int(2), 7) if decoded.len >= 70 => {}
        (Field::Int(2), 7) => return Err(truncated()),
        (Field::Int(v), _) => {
            return Err(ConsentError::new(format!(
                "GPP section {name} version {v} is not supported"
            )))
        }
        _ => return Err(truncated()),
    }
    // The optional sub-section: GpcSegmentType 1 (2 bits), then Gpc (1 bit). Where the section
    // defines one, its fields are always shown, with `GpcSegmentIncluded` saying whether the
    // string carried it: absent, the reference library's defaults (type 1, `Gpc` false), which
    // is also what an absent sub-section means (no GPC signal).
    let (mut included, mut kind, mut gpc) = (false, 1, false);
    if let Some(sub) = segments.next() {
        if !has_gpc {
            return Err(ConsentError::new(format!(
                "GPP section {name} has no sub-sections, but one follows `.`"
            )));
        }
        let decoded = Decoded::new(sub, "sub-section")?;
        let mut b = decoded.bits();
        kind = b.int(2).ok_or_else(truncated)?;
        if kind != 1 {
            return Err(ConsentError::new(format!(
                "GPP section {name} sub-section type {kind} is not defined (1 = GPC)"
            )));
        }
        gpc = b.bit().ok_or_else(truncated)?;
        included = true;
    }
    if has_gpc {
        out.push(("GpcSegmentType", Field::Int(kind as u8)));
        out.push(("GpcSegmentIncluded", Field::Bool(included)));
        out.push(("Gpc", Field::Bool(gpc)));
    }
    if segments.next().is_some() {
        return Err(ConsentError::new(format!(
            "GPP section {name} has more than one sub-section"
        )));
    }
    Ok(Some(UsSection {
        id,
        name,
        fields: out,
    }))
}

/// Decodes a `uspv1` section: the IAB's US Privacy string, four characters (`1YNN`): `Version`
/// (the digit 1), then `Notice`, `OptOutSale` and `LspaCovered`, each `Y` (yes), `N` (no) or
/// `-` (not applicable). Anything else is refused: the reference library takes any character,
/// but an unknown flag could hide an opt-out (privacy fails closed).
pub fn decode_uspv1(text: &str) -> Result<UsSection, ConsentError> {
    if text.contains('.') {
        return Err(ConsentError::new(
            "GPP section uspv1 has no sub-sections, but one follows `.`",
        ));
    }
    let b = text.as_bytes();
    if b.len() != 4 {
        return Err(ConsentError::new(
            "GPP section uspv1 is not four characters (e.g. 1YNN)",
        ));
    }
    if b[0] != b'1' {
        return Err(ConsentError::new(format!(
            "GPP section uspv1 version `{}` is not supported (only 1)",
            b[0] as char
        )));
    }
    let flag = |i: usize| match b[i] {
        c @ (b'Y' | b'N' | b'-') => Ok(Field::Char(c as char)),
        c => Err(ConsentError::new(format!(
            "GPP section uspv1 flag `{}` is not Y, N or -",
            c as char
        ))),
    };
    Ok(UsSection {
        id: 6,
        name: "uspv1",
        fields: vec![
            ("Version", Field::Int(1)),
            ("Notice", flag(1)?),
            ("OptOutSale", flag(2)?),
            ("LspaCovered", flag(3)?),
        ],
    })
}

/// Decodes a GPP string (the cookie value, URL-decoded).
pub fn decode(value: &str) -> Result<GppString, ConsentError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ConsentError::new("empty GPP string"));
    }
    if value.len() > MAX_LEN {
        return Err(ConsentError::new("GPP string is implausibly long"));
    }
    let mut parts = value.split('~');
    let section_ids = decode_header(parts.next().unwrap_or(""))?;
    let mut sections = Vec::with_capacity(section_ids.len());
    for &id in &section_ids {
        let text = parts.next().ok_or_else(|| {
            ConsentError::new(format!(
                "GPP header lists {} sections but the string carries {}",
                section_ids.len(),
                sections.len()
            ))
        })?;
        // Every section, read or not, is URL-safe base64 (sub-sections joined by `.`, `=`
        // padding tolerated; uspv1's `1YNN` too). An empty or garbled one makes the whole
        // string unreadable, as the IAB's reference decoder has it, rather than "unsupported"
        // (which decides nothing, and under an opt-out model would leave everything granted).
        if text.is_empty()
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
        {
            return Err(ConsentError::new(format!(
                "GPP section {id} is empty or not URL-safe base64"
            )));
        }
        let section = match id {
            2 => Section::TcfEuV2(Box::new(
                tcf::decode(text)
                    .map_err(|e| ConsentError::new(format!("GPP section tcfeuv2: {e}")))?,
            )),
            _ => match decode_us_section(id, text)? {
                Some(us) => Section::Us(us),
                None => Section::Unsupported(id),
            },
        };
        sections.push(section);
    }
    if parts.next().is_some() {
        return Err(ConsentError::new(format!(
            "GPP string carries more sections than the {} its header lists",
            section_ids.len()
        )));
    }
    Ok(GppString {
        section_ids,
        sections,
    })
}

/// Parses `__gpp_sid`: section ids separated by `_`, `,` or spaces (`-1`: none applies).
pub fn parse_sid(value: &str) -> Result<Vec<i32>, ConsentError> {
    let ids: Result<Vec<i32>, _> = value
        .split(['_', ',', ' '])
        .filter(|s| !s.is_empty())
        .take(MAX_SECTIONS + 1)
        .map(str::parse::<i32>)
        .collect();
    match ids {
        Ok(ids) if ids.len() <= MAX_SECTIONS => Ok(ids),
        _ => Err(ConsentError::new(format!(
            "__gpp_sid `{}` is not a list of section ids",
            value.chars().take(40).collect::<String>()
        ))),
    }
}

/// What the string says per category: the verdicts of its applicable sections merged (most
/// restrictive). Applicable: the sections `sid` lists, or every section when there is no
/// `sid`. A US section says nothing unless it opts out (it is not a consent); `tcfeuv2` says
/// what a TC string says.
pub fn verdict(gpp: &GppString, sid: Option<&[i32]>, cfg: &GppConfig) -> Verdict {
    let tcf_cfg = TcfConfig {
        analytics: cfg.analytics.clone(),
        marketing: cfg.marketing.clone(),
        preferences: cfg.preferences.clone(),
        ..TcfConfig::default()
    };
    let mut v = Verdict::NOTHING;
    for s in &gpp.sections {
        if sid.is_some_and(|ids| !ids.contains(&i32::from(s.id()))) {
            continue;
        }
        match s {
            Section::TcfEuV2(tc) => {
                v = v.merge(Verdict::covering_all(tcf::grants(tc, &tcf_cfg)));
            }
            Section::Us(us) => {
                let mut refuse = Verdict::NOTHING;
                if us.opted_out() {
                    for c in &cfg.opt_out_refuses {
                        refuse.set(*c, false);
                    }
                }
                if us.gpc() {
                    for c in &cfg.gpc_refuses {
                        refuse.set(*c, false);
                    }
                }
                v = v.merge(refuse);
            }
            Section::Unsupported(_) => {}
        }
    }
    v
}

/// The `tcfeuv2` section's fields under the GPP specification's names, as the IAB's reference
/// library `@iabgpp/cmpapi` names and shapes them: bitfields (`SpecialFeatureOptins`,
/// `PurposeConsents`, `PurposeLegitimateInterests`, `PublisherConsents`, ...) as lists of
/// booleans, the first entry being id 1; vendor lists as lists of ids; `PublisherRestrictions`
/// as `{key, type, ids}` entries (purpose, restriction type, vendor ids). `Created` and
/// `LastUpdated` stay integers, deciseconds since the Unix epoch as encoded (the library turns
/// them into dates). The optional segments' fields are always there, with the library's
/// defaults when the string does not carry the segment (segment types 3, 2 and 1, no purposes,
/// no custom purposes, no vendors), so a reader cannot tell an absent segment from an empty
/// one, as in the library. A plain `tcf` source keeps its own snake-case names
/// (`tcf::details`).
pub fn tcf_section_details(tc: &TcString) -> Value {
    let flags = |bits: u64, n: u32| -> Vec<bool> { (0..n).map(|i| bits & (1 << i) != 0).collect() };
    let publisher = tc.publisher_tc.clone().unwrap_or_default();
    let custom = u32::from(publisher.num_custom_purposes);
    let vendors = |set: &Option<VendorSet>| set.as_ref().map(VendorSet::to_vec).unwrap_or_default();
    json!({
        "Version": tc.version,
        "Created": tc.created,
        "LastUpdated": tc.last_updated,
        "CmpId": tc.cmp_id,
        "CmpVersion": tc.cmp_version,
        "ConsentScreen": tc.consent_screen,
        "ConsentLanguage": tc.consent_language,
        "VendorListVersion": tc.vendor_list_version,
        "PolicyVersion": tc.policy_version,
        "IsServiceSpecific": tc.is_service_specific,
        "UseNonStandardStacks": tc.use_non_standard_texts,
        "SpecialFeatureOptins": flags(u64::from(tc.special_features), 12),
        "PurposeConsents": flags(u64::from(tc.purposes_consent), 24),
        "PurposeLegitimateInterests": flags(u64::from(tc.purposes_li), 24),
        "PurposeOneTreatment": tc.purpose_one_treatment,
        "PublisherCountryCode": tc.publisher_cc,
        "VendorConsents": tc.vendor_consents.to_vec(),
        "VendorLegitimateInterests": tc.vendor_li.to_vec(),
        "PublisherRestrictions": tc.publisher_restrictions.iter().map(|r| json!({
            "key": r.purpose,
            "type": r.restriction,
            "ids": r.vendors.to_vec(),
        })).collect::<Vec<_>>(),
        // A segment's type is what routed it to its field, so present or not it is the
        // same number.
        "PublisherPurposesSegmentType": 3,
        "PublisherConsents": flags(u64::from(publisher.consents), 24),
        "PublisherLegitimateInterests": flags(u64::from(publisher.legitimate_interests), 24),
        "NumCustomPurposes": publisher.num_custom_purposes,
        "PublisherCustomConsents": flags(publisher.custom_consents, custom),
        "PublisherCustomLegitimateInterests": flags(publisher.custom_legitimate_interests, custom),
        "VendorsAllowedSegmentType": 2,
        "VendorsAllowed": vendors(&tc.allowed_vendors),
        "VendorsDisclosedSegmentType": 1,
        "VendorsDisclosed": vendors(&tc.disclosed_vendors),
    })
}

/// Every decoded field, for `explain`: `section_ids`, `sections.<name>` (the specification's
/// field names) and `unsupported` (ids read past).
pub fn details(gpp: &GppString, sid: Option<&[i32]>) -> Value {
    let mut sections = Map::new();
    let mut unsupported = Vec::new();
    for s in &gpp.sections {
        match s {
            Section::TcfEuV2(tc) => {
                sections.insert("tcfeuv2".into(), tcf_section_details(tc));
            }
            Section::Us(us) => {
                let fields: Map<String, Value> = us
                    .fields
                    .iter()
                    .map(|(n, f)| (n.to_string(), f.to_json()))
                    .collect();
                sections.insert(us.name.into(), Value::Object(fields));
            }
            Section::Unsupported(id) => unsupported.push(*id),
        }
    }
    json!({
        "section_ids": gpp.section_ids,
        "applicable_section_ids": sid,
        "sections": sections,
        "unsupported": unsupported,
    })
}

pub struct GppReader {
    cfg: GppConfig,
    cookie: Arc<str>,
    onetrust: Arc<str>,
    /// `cookie`, `sid_cookie` and `onetrust_cookie`: what an outcome decides from.
    signal_cookies: Arc<[Arc<str>]>,
}

impl GppReader {
    pub fn new(cfg: &GppConfig) -> Result<Self, String> {
        for (key, name) in [
            ("cookie", &cfg.cookie),
            ("sid_cookie", &cfg.sid_cookie),
            ("onetrust_cookie", &cfg.onetrust_cookie),
        ] {
            if name.trim().is_empty() {
                return Err(format!("[site.consent.gpp] `{key}` may not be empty"));
            }
        }
        for p in cfg
            .analytics
            .iter()
            .chain(&cfg.marketing)
            .chain(&cfg.preferences)
        {
            if !(1..=24).contains(p) {
                return Err(format!(
                    "TCF purpose {p} does not exist; purposes are 1 to 24 (1-11 in use)"
                ));
            }
        }
        Ok(GppReader {
            cookie: cfg.cookie.as_str().into(),
            onetrust: cfg.onetrust_cookie.as_str().into(),
            signal_cookies: [&cfg.cookie, &cfg.sid_cookie, &cfg.onetrust_cookie]
                .iter()
                .map(|c| Arc::from(c.as_str()))
                .collect(),
            cfg: cfg.clone(),
        })
    }

    /// One value: decoded, its verdict under `sid`, and its details when asked for.
    fn read_one(
        &self,
        raw: &[u8],
        sid: Option<&[i32]>,
        detail: bool,
    ) -> Result<(Verdict, Option<Value>), ConsentError> {
        let text = super::url_decoded(raw)?;
        let gpp = decode(&text)?;
        let v = verdict(&gpp, sid, &self.cfg);
        Ok((v, detail.then(|| details(&gpp, sid))))
    }
}

impl TableReader for GppReader {
    const NAME: &'static str = "gpp";
    type Config = GppConfig;
    fn from_config(cfg: &GppConfig) -> Result<Self, String> {
        Self::new(cfg)
    }
}

impl ConsentReader for GppReader {
    fn format(&self) -> &'static str {
        <Self as TableReader>::NAME
    }

    fn cookie_patterns(&self) -> Vec<String> {
        vec![
            self.cfg.cookie.clone(),
            self.cfg.sid_cookie.clone(),
            self.cfg.onetrust_cookie.clone(),
        ]
    }

    fn read(&self, jar: &CookieJar<'_>, detail: bool) -> Option<SourceOutcome> {
        // `__gpp_sid` applies to `__gpp` (the CMP API writes both); OneTrust's cookie carries
        // only the sections OneTrust found applicable. Every copy of each is read; the most
        // restrictive wins, and one unreadable copy fails the source.
        let mut sid_error = None;
        let mut sid: Option<Vec<i32>> = None;
        for raw in jar.values(&self.cfg.sid_cookie) {
            match super::url_decoded(raw).and_then(|t| parse_sid(&t)) {
                Ok(ids) => sid.get_or_insert_with(Vec::new).extend(ids),
                Err(e) => sid_error = Some(e),
            }
        }
        let mut result: Option<Result<Verdict, ConsentError>> = None;
        let mut cookie: Option<&Arc<str>> = None;
        // `explain` shows the first copy of each cookie: `__gpp`'s at the top, OneTrust's under
        // its cookie name when `__gpp` is there too (it may be the one that refuses).
        let mut shown: Option<Value> = None;
        let mut onetrust_shown: Option<Value> = None;
        for (name, sid) in [(&self.cookie, sid.as_deref()), (&self.onetrust, None)] {
            for raw in jar.values(name) {
                let first = *cookie.get_or_insert(name);
                // OneTrust's copy beside `__gpp`'s goes in its own slot.
                let slot = if std::ptr::eq(first, name) {
                    &mut shown
                } else {
                    &mut onetrust_shown
                };
                let r = self.read_one(raw, sid, detail && slot.is_none());
                // Which cookie failed, when both are read.
                let r = r.map_err(|e| ConsentError(format!("{name}: {}", e.0)));
                let r = r.map(|(v, d)| {
                    if d.is_some() {
                        *slot = d;
                    }
                    v
                });
                result = Some(match (result, r) {
                    (None, r) => r,
                    (Some(Err(e)), _) | (Some(Ok(_)), Err(e)) => Err(e),
                    (Some(Ok(a)), Ok(b)) => Ok(a.merge(b)),
                });
            }
        }
        let cookie = cookie?;
        let result = match (result?, sid_error) {
            (Ok(_), Some(e)) if jar.values(&self.cfg.cookie).next().is_some() => Err(e),
            (r, _) => r,
        };
        let mut o = SourceOutcome::from_result(self.format(), cookie, result);
        // `__gpp_sid` and OneTrust's copy decide too: they are part of the receipt's signal.
        o.signal_cookies = Some(self.signal_cookies.clone());
        if let (Some(Value::Object(top)), Some(ot)) = (shown.as_mut(), onetrust_shown) {
            top.insert(self.onetrust.to_string(), ot);
        }
        o.details = shown;
        Some(o)
    }

    fn read_value(&self, raw: &[u8], source: &Arc<str>, detail: bool) -> Option<SourceOutcome> {
        let r = self.read_one(raw, None, detail);
        Some(match r {
            Ok((v, d)) => {
                let mut o = SourceOutcome::with_verdict(self.format(), source, v);
                o.details = d;
                o
            }
            Err(e) => SourceOutcome::failed(self.format(), source, e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_section_ids() {
        // iabgpp-java HeaderV1Test: "DBAA" [], "DBABMA" [2], "DBACNYA" [2, 6].
        assert_eq!(decode_header("DBAA").unwrap(), Vec::<u16>::new());
        assert_eq!(decode_header("DBABMA").unwrap(), vec![2]);
        assert_eq!(decode_header("DBACNYA").unwrap(), vec![2, 6]);
        assert!(decode_header("z").is_err());
        assert!(decode_header("CBAA").is_err(), "type 2 is not a GPP header");
    }

    #[test]
    fn us_opt_out_refuses_marketing_only() {
        let cfg = GppConfig::default();
        // usca, SaleOptOut = 1 (iabgpp-java UsCaTest "BVWSSSVY.YA", header [8]).
        let gpp = decode("DBABBg~BVWSSSVY.YA").unwrap();
        let v = verdict(&gpp, None, &cfg);
        assert!(v.refuses(Category::Marketing));
        assert!(!v.carries(Category::Analytics));
        // Defaults (no opt-out, GPC false): nothing said.
        let gpp = decode("DBABBg~BAAAAABA.QA").unwrap();
        assert_eq!(verdict(&gpp, None, &cfg), Verdict::NOTHING);
        // Not applicable under __gpp_sid: nothing said.
        let gpp = decode("DBABBg~BVWSSSVY.YA").unwrap();
        assert_eq!(verdict(&gpp, Some(&[7]), &cfg), Verdict::NOTHING);
    }

    #[test]
    fn malformed_strings_fail() {
        for bad in [
            "",
            "DBABBg",               // one id, no section
            "DBABBg~BVWSSSVY~BAAA", // more sections than ids
            "DBABBg~BVWS",          // truncated usca
            "DBABBg~BVWSSSVY.AA",   // sub-section type 0
            "DBABBg~CVWSSSVY",      // usca version 2
            "DBABBg~BVWSSSVY.YA.YA",
            "DBA!",
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        let big = format!("DBABBg~{}", "A".repeat(MAX_LEN));
        assert!(decode(&big).is_err());
        // A header listing 4095 sections is refused before any work.
        assert!(decode_header("DB__").is_err());
    }

    #[test]
    fn usnat_layouts_and_versions() {
        // Version 1, 60 bits: the 12/2 layout; 70 bits: 16/3 (iabgpp-java / iabgpp-es tests).
        let old = decode_us_section(7, "BVQqAAAACg").unwrap().unwrap();
        assert_eq!(
            old.get("SensitiveDataProcessing"),
            Some(&Field::List(vec![0; 12]))
        );
        let new = decode_us_section(7, "BVVVkkkkkpFY").unwrap().unwrap();
        assert_eq!(
            new.get("KnownChildSensitiveDataConsents"),
            Some(&Field::List(vec![2, 1, 0]))
        );
        // The same 16/3 core with Version 2 ("C" = 000010): read; too short for 16/3: refused.
        let v2 = decode_us_section(7, "CVVVkkkkkpFY").unwrap().unwrap();
        assert_eq!(v2.get("Version"), Some(&Field::Int(2)));
        assert_eq!(
            v2.get("SensitiveDataProcessing"),
            new.get("SensitiveDataProcessing")
        );
        assert!(decode_us_section(7, "CVQqAAAACg").is_err());
        // Version 2 of another section is not defined.
        assert!(decode_us_section(8, "CVWSSSVY").is_err());
    }

    #[test]
    fn reader_applies_gpp_sid_and_reads_onetrust() {
        let r = GppReader::new(&GppConfig::default()).unwrap();
        let read = |h: &str| {
            let jar = CookieJar::from_headers([h.as_bytes()]);
            r.read(&jar, true)
        };
        assert!(read("other=1").is_none());
        let o = read("__gpp=DBABBg~BVWSSSVY.YA; __gpp_sid=8").unwrap();
        assert!(o.verdict.refuses(Category::Marketing) && o.error.is_none());
        assert_eq!(
            o.details.as_ref().unwrap()["applicable_section_ids"],
            json!([8])
        );
        // Not applicable: nothing said, not an error.
        let o = read("__gpp=DBABBg~BVWSSSVY.YA; __gpp_sid=2_7").unwrap();
        assert_eq!(o.verdict, Verdict::NOTHING);
        let o = read("__gpp=DBABBg~BVWSSSVY.YA; __gpp_sid=-1").unwrap();
        assert_eq!(o.verdict, Verdict::NOTHING);
        // An unreadable __gpp_sid fails the source.
        assert!(read("__gpp=DBABBg~BAAAAABA.QA; __gpp_sid=x")
            .unwrap()
            .error
            .is_some());
        // OneTrust's cookie: every section applies.
        let o = read("OTGPPConsent=DBABBg%7EBVWSSSVY.YA").unwrap();
        assert_eq!(&*o.cookie, "OTGPPConsent");
        assert!(o.verdict.refuses(Category::Marketing));
        // Both: the most restrictive; one unreadable copy fails the source.
        let o = read("__gpp=DBABBg~BAAAAABA.QA; OTGPPConsent=DBABBg~BVWSSSVY.YA").unwrap();
        assert!(o.verdict.refuses(Category::Marketing));
        // `explain` shows both: OneTrust's copy (the one that refuses here) under its name.
        let d = o.details.as_ref().unwrap();
        assert!(d["sections"]["usca"].is_object(), "{d}");
        assert_eq!(
            d["OTGPPConsent"]["sections"]["usca"]["SaleOptOut"],
            json!(1),
            "{d}"
        );
        // And an error names the cookie it came from.
        let o = read("__gpp=DBABBg~BAAAAABA.QA; OTGPPConsent=DBABBg~").unwrap();
        let e = o.error.unwrap().0;
        assert!(e.starts_with("OTGPPConsent: "), "{e}");
        let o = read("__gpp=DBABBg~BAAAAABA.QA; __gpp=junk").unwrap();
        assert!(o.error.is_some() && o.granted == super::super::Grants::NONE);
    }

    #[test]
    fn uspv1_opt_out_of_sale_refuses_marketing() {
        let cfg = GppConfig::default();
        // [6]: uspv1 alone ("DBABTA"); `Y` in third place = opted out of sale.
        let gpp = decode("DBABTA~1YYN").unwrap();
        let v = verdict(&gpp, None, &cfg);
        assert!(v.refuses(Category::Marketing), "{v:?}");
        assert!(!v.carries(Category::Analytics));
        // `N` (did not opt out) and `-` (not applicable): nothing said.
        for s in ["DBABTA~1YNN", "DBABTA~1---"] {
            assert_eq!(
                verdict(&decode(s).unwrap(), None, &cfg),
                Verdict::NOTHING,
                "{s}"
            );
        }
        // Not one of Y, N, -, another version, or not four characters: refused (fail closed).
        for bad in ["DBABTA~1YyN", "DBABTA~2NYY", "DBABTA~1YN", "DBABTA~1YNN.QA"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        let d = details(&decode("DBABTA~1YYN").unwrap(), None);
        assert_eq!(
            d["sections"]["uspv1"],
            json!({"Version": 1, "Notice": "Y", "OptOutSale": "Y", "LspaCovered": "N"})
        );
    }

    #[test]
    fn state_sections_13_to_22_opt_out_refuses_marketing() {
        let cfg = GppConfig::default();
        // ustx (16), iabgpp-java UsTxTest: SaleOptOut and TargetedAdvertisingOptOut = 1.
        let tx = decode_us_section(16, "BVWSSVWA.YA").unwrap().unwrap();
        assert_eq!(tx.name, "ustx");
        assert!(tx.opted_out() && tx.gpc());
        // Defaults (no opt-out) with Gpc true: the GPC rule alone refuses marketing.
        let gpp = GppString {
            section_ids: vec![16],
            sections: vec![Section::Us(
                decode_us_section(16, "BAAAAAQA.YA").unwrap().unwrap(),
            )],
        };
        assert!(verdict(&gpp, None, &cfg).refuses(Category::Marketing));
        // Every id 13-22 is read, with its name.
        let names: Vec<_> = (13..=22).filter_map(section_name).collect();
        assert_eq!(
            names,
            ["usfl", "usmt", "usor", "ustx", "usde", "usia", "usne", "usnh", "usnj", "ustn"]
        );
        // usfl has no GPC sub-section.
        assert!(decode_us_section(13, "BVWSSZlY.YA").is_err());
    }

    #[test]
    fn unsupported_sections_are_skipped() {
        // [2, 5, 6]: tcfeuv2, tcfcav1 (not read) and uspv1, from iabgpp-java GppModelTest.
        let s = "DBACOeA~CPSG_8APSG_8ANwAAAENAwCAAAAAAAAAAAAAAAAAAAAA.QAAA.IAAA~BPSG_8APSG_8AAyACAENGdCgf_gfgAfgfgBgABABAAABAB4AACACAAA.fHHHA4444ao~1YNN";
        let gpp = decode(s).unwrap();
        assert_eq!(gpp.section_ids, vec![2, 5, 6]);
        assert!(matches!(gpp.sections[1], Section::Unsupported(5)));
        assert!(matches!(gpp.sections[0], Section::TcfEuV2(_)));
        assert!(matches!(&gpp.sections[2], Section::Us(u) if u.name == "uspv1"));
        // An empty or garbled section fails the string, read or not (the IAB's reference
        // decoder, @iabgpp/cmpapi 3.2.0, rejects both).
        assert!(decode("DBABzw~~BVQqAAAAAgA").is_err());
        assert!(
            decode("DBACNYA~CPSG_8APSG_8ANwAAAENAwCAAAAAAAAAAAAAAAAAAAAA.QAAA.IAAA~1Y%N").is_err()
        );
    }
}
