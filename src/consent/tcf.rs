//! IAB TCF v2.2 TC string (`euconsent-v2`): the core segment decoded completely (IAB "Consent
//! string and vendor list formats v2", core string fields), and the optional segments after it
//! (disclosed vendors, allowed vendors, publisher TC) decoded too, for GPP's `tcfeuv2` section
//! in `explain`. Categories come from purpose consents through a configurable table.

use super::registry::TableReader;
use super::{Category, ConsentError, ConsentReader, Grants, SourceOutcome, VendorSet};
use crate::cookies::header::CookieJar;
use serde::Deserialize;
use std::sync::Arc;

/// `[site.consent.tcf]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcfConfig {
    /// The cookie(s) holding the TC string: a name or a list of names. Default: `euconsent-v2`
    /// (Didomi, Quantcast, Sourcepoint, Cookiebot and most CMPs) and `eupubconsent-v2`
    /// (OneTrust). Every copy of every listed cookie is read; the most restrictive wins.
    #[serde(deserialize_with = "one_or_many")]
    pub cookie: Vec<String>,
    /// Purposes that all need consent for each category. Defaults (docs/CONSENT.md explains):
    /// analytics 1 (store/access), 8 (measure content), 9 (market research);
    /// marketing 1, 2 (basic ads), 3 (ads profile), 4 (personalised ads), 7 (measure ads);
    /// preferences 1, 5 (content profile), 6 (personalised content).
    pub analytics: Vec<u8>,
    pub marketing: Vec<u8>,
    pub preferences: Vec<u8>,
}

impl Default for TcfConfig {
    fn default() -> Self {
        TcfConfig {
            cookie: vec!["euconsent-v2".into(), "eupubconsent-v2".into()],
            analytics: vec![1, 8, 9],
            marketing: vec![1, 2, 3, 4, 7],
            preferences: vec![1, 5, 6],
        }
    }
}

/// `"name"` or `["name", ...]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Names;
    impl<'de> serde::de::Visitor<'de> for Names {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a cookie name or a list of cookie names")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut a: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(name) = a.next_element::<String>()? {
                out.push(name);
            }
            Ok(out)
        }
    }
    d.deserialize_any(Names)
}

/// The decoded core segment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcString {
    pub version: u8,
    pub created: u64,
    pub last_updated: u64,
    pub cmp_id: u16,
    pub cmp_version: u16,
    pub consent_screen: u8,
    pub consent_language: String,
    pub vendor_list_version: u16,
    pub policy_version: u8,
    pub is_service_specific: bool,
    pub use_non_standard_texts: bool,
    /// Bit i-1 = special feature i.
    pub special_features: u16,
    /// Bit i-1 = purpose i.
    pub purposes_consent: u32,
    pub purposes_li: u32,
    pub purpose_one_treatment: bool,
    pub publisher_cc: String,
    pub vendor_consents: VendorSet,
    pub vendor_li: VendorSet,
    /// The publisher restrictions that end the core segment.
    pub publisher_restrictions: Vec<PublisherRestriction>,
    /// The optional "Disclosed Vendors" segment (type 1), when the string carries one.
    pub disclosed_vendors: Option<VendorSet>,
    /// The optional, deprecated "Allowed Vendors" segment (type 2).
    pub allowed_vendors: Option<VendorSet>,
    /// The optional "Publisher Purposes Transparency and Consent" segment (type 3).
    pub publisher_tc: Option<PublisherTc>,
}

/// The publisher TC segment: the publisher's own purpose consents and legitimate interests,
/// and its custom purposes (at most 63: `NumCustomPurposes` is 6 bits).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublisherTc {
    /// Bit i-1 = purpose i (24 purposes).
    pub consents: u32,
    pub legitimate_interests: u32,
    pub num_custom_purposes: u8,
    /// Bit i-1 = custom purpose i.
    pub custom_consents: u64,
    pub custom_legitimate_interests: u64,
}

/// One publisher restriction: for `purpose`, the listed vendors may only process under
/// `restriction` (0 not allowed, 1 require consent, 2 require legitimate interest).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublisherRestriction {
    pub purpose: u8,
    pub restriction: u8,
    pub vendors: VendorSet,
}

impl TcString {
    pub fn purpose(&self, id: u8) -> bool {
        (1..=24).contains(&id) && self.purposes_consent & (1 << (id - 1)) != 0
    }
}

/// A bit reader over decoded base64url (also the GPP decoder's, `consent::gpp`).
pub(crate) struct Bits<'a> {
    data: &'a [u8],
    /// How many bits the string carries: six per character, which is not a whole number of
    /// bytes when the length is not a multiple of four (the IAB encoders pad to 6 bits, not 8).
    len: usize,
    pos: usize,
}

impl<'a> Bits<'a> {
    /// The first `len` bits of `data` (as [`base64url`] returns them).
    pub(crate) fn new(data: &'a [u8], len: usize) -> Bits<'a> {
        Bits { data, len, pos: 0 }
    }

    /// The next `n` bits (1 to 56), most significant first.
    pub(crate) fn read(&mut self, n: usize) -> Result<u64, ConsentError> {
        debug_assert!((1..=56).contains(&n));
        if self.pos + n > self.len {
            return Err(ConsentError::new(format!(
                "TC string truncated at bit {} (needed {n} more bits)",
                self.pos
            )));
        }
        // One big-endian 64-bit window per read: O(1) whatever n (at most 56 bits, so the
        // window starting at the current byte always holds them).
        let start = self.pos / 8;
        let window: [u8; 8] = match self.data.get(start..start + 8) {
            // The common case: a single 8-byte load.
            Some(bytes) => bytes.try_into().expect("8 bytes"),
            None => {
                let mut w = [0u8; 8];
                let tail = &self.data[start..];
                w[..tail.len()].copy_from_slice(tail);
                w
            }
        };
        let w = u64::from_be_bytes(window) << (self.pos % 8);
        self.pos += n;
        Ok(w >> (64 - n))
    }

    /// Two 6-bit letters, `A` + value each, as the IAB decoders read them: the consent
    /// language is taken as it is; the publisher country must be alphabetic
    /// (`strict`), read case-insensitively (values 32-57 are `a`-`z`).
    fn letters(&mut self, strict: bool) -> Result<String, ConsentError> {
        let mut out = String::with_capacity(2);
        for _ in 0..2 {
            let c = (b'A' + self.read(6)? as u8) as char;
            if strict && !c.is_ascii_alphabetic() && !('['..='`').contains(&c) {
                return Err(ConsentError::new(
                    "publisher country code is not two letters",
                ));
            }
            out.push(if strict { c.to_ascii_uppercase() } else { c });
        }
        Ok(out)
    }

    /// A bitfield of `n` ids whose first bit is id 1 (SpecialFeatureOptIns, PurposesConsent,
    /// PurposesLITransparency: "bit 1 = purpose 1" in the core-string table), returned with
    /// bit `i - 1` set for id `i`.
    fn id_bits(&mut self, n: usize) -> Result<u32, ConsentError> {
        debug_assert!((1..=32).contains(&n));
        let raw = self.read(n)? as u32;
        // The first bit read is the most significant of `raw`; reversing puts it at bit 0.
        Ok(raw.reverse_bits() >> (32 - n))
    }

    /// Range entries (NumEntries, then IsARange, Start[, End] each), read as the IAB
    /// reference decoder reads them: in a vendor section a backward range adds nothing and a
    /// vendor id 0 is an error; in a publisher restriction (`restriction`) a backward range is
    /// an error. Ids past MaxVendorId are kept, as the reference keeps them (they grant no
    /// category; vendor rules only ever test listed ids).
    fn ranges(&mut self, set: &mut VendorSet, restriction: bool) -> Result<(), ConsentError> {
        let entries = self.read(12)?;
        for _ in 0..entries {
            let is_range = self.read(1)? == 1;
            let start = self.read(16)? as u16;
            let end = if is_range {
                self.read(16)? as u16
            } else {
                start
            };
            if end < start {
                if restriction {
                    return Err(ConsentError::new(format!(
                        "publisher restriction range {start}-{end} ends before it starts"
                    )));
                }
                continue;
            }
            if start == 0 && !restriction {
                return Err(ConsentError::new("vendor id 0 does not exist"));
            }
            if start == end {
                set.insert(start);
            } else {
                set.insert_range(start, end);
            }
        }
        Ok(())
    }

    /// The publisher restrictions section (NumPubRestrictions, then purpose, type and a range
    /// section each). It is part of every core segment: a string that ends before it is
    /// truncated (the IAB decoders refuse it too).
    fn publisher_restrictions(&mut self) -> Result<Vec<PublisherRestriction>, ConsentError> {
        let n = self.read(12)?;
        let mut out = Vec::new();
        for _ in 0..n {
            let purpose = self.read(6)? as u8;
            let restriction = self.read(2)? as u8;
            let mut vendors = VendorSet::default();
            self.ranges(&mut vendors, true)?;
            if vendors.is_empty() {
                // Restricts no vendor: nothing to record (the reference keeps none either).
                continue;
            }
            if purpose == 0 || restriction == 3 {
                return Err(ConsentError::new(format!(
                    "publisher restriction for purpose {purpose}, type {restriction} does not exist"
                )));
            }
            // The same purpose and type twice is one restriction (as the IAB decoders read it).
            match out.iter_mut().find(|r: &&mut PublisherRestriction| {
                (r.purpose, r.restriction) == (purpose, restriction)
            }) {
                Some(r) => r.vendors = r.vendors.union(&vendors),
                None => out.push(PublisherRestriction {
                    purpose,
                    restriction,
                    vendors,
                }),
            }
        }
        Ok(out)
    }

    /// A vendor section: MaxVendorId, IsRangeEncoding, then a bitfield or range entries.
    fn vendors(&mut self) -> Result<VendorSet, ConsentError> {
        let max = self.read(16)? as u16;
        let mut set = VendorSet::with_max(max);
        if self.read(1)? == 0 {
            // A bitfield: bit i-1 is vendor i. Read in 32-bit words.
            let mut id: u32 = 1;
            while id <= u32::from(max) {
                let n = (u32::from(max) - id + 1).min(32) as usize;
                let word = self.read(n)?;
                for k in 0..n {
                    if word & (1 << (n - 1 - k)) != 0 {
                        set.insert((id + k as u32) as u16);
                    }
                }
                id += n as u32;
            }
        } else {
            self.ranges(&mut set, false)?;
        }
        Ok(set)
    }
}

/// The `base64` crate's engine for TC strings: the URL-safe alphabet, `=` padding optional.
/// Trailing bits are allowed because a TC string is a bit string cut into 6-bit characters: the
/// bits after its last field are whatever the encoder left there.
const TC_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Decodes base64url (padding optional, any number of trailing `=`; the standard alphabet's `+`
/// and `/` accepted too, as some CMPs write them). Returns the bytes (the last one zero-filled)
/// and the number of bits the characters carry (six each): a TC string's last field may end in
/// the bits of a 1-, 2- or 3-character tail.
pub(crate) fn base64url(s: &str) -> Result<(Vec<u8>, usize), ConsentError> {
    use base64::Engine;
    let bad = || ConsentError::new("TC string is not base64url");
    let s = s.trim_end_matches('=').as_bytes();
    let standard;
    let s = if memchr::memchr2(b'+', b'/', s).is_some() {
        standard = s
            .iter()
            .map(|b| match b {
                b'+' => b'-',
                b'/' => b'_',
                b => *b,
            })
            .collect::<Vec<u8>>();
        &standard[..]
    } else {
        s
    };
    // The crate decodes to whole bytes and so drops the last 2 or 4 bits of a 2- or 3-character
    // tail (and refuses a 1-character one): the tail is decoded on its own, filled with `A`
    // (six zero bits) to four characters, so every bit of every character is kept.
    let (body, tail) = s.split_at(s.len() - s.len() % 4);
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    TC_BASE64.decode_vec(body, &mut out).map_err(|_| bad())?;
    if !tail.is_empty() {
        let mut quad = *b"AAAA";
        quad[..tail.len()].copy_from_slice(tail);
        let mut bytes = [0u8; 3];
        TC_BASE64
            .decode_slice(quad, &mut bytes)
            .map_err(|_| bad())?;
        out.extend_from_slice(&bytes[..(tail.len() * 6).div_ceil(8)]);
    }
    Ok((out, s.len() * 6))
}

/// Decodes a TC string (the cookie value, URL-decoded).
pub fn decode(value: &str) -> Result<TcString, ConsentError> {
    let value = value.trim();
    let core = value.split('.').next().unwrap_or("");
    if core.is_empty() {
        return Err(ConsentError::new("empty TC string"));
    }
    // A proper core segment of a v2 string is a few hundred bytes; a megabyte is an attack.
    if core.len() > 64 * 1024 {
        return Err(ConsentError::new(
            "TC string core segment is implausibly long",
        ));
    }
    let (data, len) = base64url(core)?;
    let mut b = Bits::new(&data, len);
    let version = b.read(6)? as u8;
    if version != 2 {
        return Err(ConsentError::new(format!(
            "TC string version {version} is not supported (only 2)"
        )));
    }
    let mut tc = TcString {
        version,
        created: b.read(36)?,
        last_updated: b.read(36)?,
        cmp_id: match b.read(12)? as u16 {
            // CMP ids start at 2 in the IAB's registry; its decoders refuse 0 and 1.
            id @ 0..=1 => {
                return Err(ConsentError::new(format!(
                    "CMP id {id} is not a registered CMP"
                )))
            }
            id => id,
        },
        cmp_version: b.read(12)? as u16,
        consent_screen: b.read(6)? as u8,
        consent_language: b.letters(false)?,
        vendor_list_version: b.read(12)? as u16,
        policy_version: b.read(6)? as u8,
        is_service_specific: b.read(1)? == 1,
        use_non_standard_texts: b.read(1)? == 1,
        special_features: b.id_bits(12)? as u16,
        purposes_consent: b.id_bits(24)?,
        purposes_li: b.id_bits(24)?,
        purpose_one_treatment: b.read(1)? == 1,
        publisher_cc: b.letters(true)?,
        vendor_consents: b.vendors()?,
        vendor_li: b.vendors()?,
        publisher_restrictions: b.publisher_restrictions()?,
        ..TcString::default()
    };
    // Optional segments (disclosed vendors, allowed vendors, publisher TC) follow, in any
    // order. They narrow vendors, not purposes, and decide no category, but a string with a
    // broken one is malformed as a whole (the IAB decoders refuse it): privacy fails closed.
    // Each is decoded in one pass over its bits (a vendor segment's work is capped as the core
    // segment's is); a type given twice keeps the last, as the IAB's GPP library reads it.
    for segment in value.split('.').skip(1) {
        match decode_segment(segment)? {
            Segment::Disclosed(v) => tc.disclosed_vendors = Some(v),
            Segment::Allowed(v) => tc.allowed_vendors = Some(v),
            Segment::PublisherTc(p) => tc.publisher_tc = Some(p),
        }
    }
    Ok(tc)
}

/// One optional segment, decoded.
enum Segment {
    Disclosed(VendorSet),
    Allowed(VendorSet),
    PublisherTc(PublisherTc),
}

/// Decodes one optional segment by its layout (TCF v2 "Disclosed Vendors" type 1, the
/// deprecated "Allowed Vendors" type 2, "Publisher Purposes Transparency and Consent" type 3).
fn decode_segment(segment: &str) -> Result<Segment, ConsentError> {
    if segment.len() > 64 * 1024 {
        return Err(ConsentError::new("TC string segment is implausibly long"));
    }
    let (data, len) = base64url(segment)?;
    let mut b = Bits::new(&data, len);
    Ok(match b.read(3)? {
        1 => Segment::Disclosed(b.vendors()?),
        2 => Segment::Allowed(b.vendors()?),
        3 => {
            let consents = b.id_bits(24)?; // PubPurposesConsent
            let legitimate_interests = b.id_bits(24)?; // PubPurposesLITransparency
            let n = b.read(6)? as usize;
            // CustomPurposesConsent, then CustomPurposesLITransparency: n bits each, bit
            // i-1 = custom purpose i (n <= 63).
            let custom = |b: &mut Bits| -> Result<u64, ConsentError> {
                let mut set = 0u64;
                for i in 0..n {
                    set |= b.read(1)? << i;
                }
                Ok(set)
            };
            Segment::PublisherTc(PublisherTc {
                consents,
                legitimate_interests,
                num_custom_purposes: n as u8,
                custom_consents: custom(&mut b)?,
                custom_legitimate_interests: custom(&mut b)?,
            })
        }
        t => {
            return Err(ConsentError::new(format!(
                "TC string segment type {t} is not defined (1 disclosed vendors, 2 allowed vendors, 3 publisher TC)"
            )))
        }
    })
}

/// The categories a TC string grants under a purpose table.
pub fn grants(tc: &TcString, cfg: &TcfConfig) -> Grants {
    let mut g = Grants::NONE;
    for (cat, purposes) in [
        (Category::Analytics, &cfg.analytics),
        (Category::Marketing, &cfg.marketing),
        (Category::Preferences, &cfg.preferences),
    ] {
        if !purposes.is_empty() && purposes.iter().all(|p| tc.purpose(*p)) {
            g.grant(cat);
        }
    }
    g
}

fn bits_to_list(bits: u32, n: u8) -> Vec<u8> {
    (1..=n).filter(|i| bits & (1 << (i - 1)) != 0).collect()
}

/// Every core field, for `explain` (names are the specification's, in snake case; times in
/// deciseconds since the Unix epoch, as encoded).
pub fn details(tc: &TcString) -> serde_json::Value {
    serde_json::json!({
        "version": tc.version,
        "created": tc.created,
        "last_updated": tc.last_updated,
        "cmp_id": tc.cmp_id,
        "cmp_version": tc.cmp_version,
        "consent_screen": tc.consent_screen,
        "consent_language": tc.consent_language,
        "vendor_list_version": tc.vendor_list_version,
        "policy_version": tc.policy_version,
        "is_service_specific": tc.is_service_specific,
        "use_non_standard_texts": tc.use_non_standard_texts,
        "special_features": bits_to_list(u32::from(tc.special_features), 12),
        "purposes_consent": bits_to_list(tc.purposes_consent, 24),
        "purposes_li": bits_to_list(tc.purposes_li, 24),
        "purpose_one_treatment": tc.purpose_one_treatment,
        "publisher_cc": tc.publisher_cc,
        "vendor_consents": tc.vendor_consents.to_vec(),
        "vendor_li": tc.vendor_li.to_vec(),
        "publisher_restrictions": tc.publisher_restrictions.iter().map(|r| serde_json::json!({
            "purpose": r.purpose,
            "type": r.restriction,
            "vendors": r.vendors.to_vec(),
        })).collect::<Vec<_>>(),
    })
}

pub struct TcfReader {
    cfg: TcfConfig,
    /// The configured names, as reported in outcomes.
    cookies: Vec<Arc<str>>,
    /// The same, for outcomes' `signal_cookies` when there are several (every copy of each is
    /// read, so each decides).
    signal_cookies: Option<Arc<[Arc<str>]>>,
}

impl TcfReader {
    pub fn new(cfg: &TcfConfig) -> Result<Self, String> {
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
        if cfg.cookie.is_empty() || cfg.cookie.iter().any(|c| c.trim().is_empty()) {
            return Err(
                "[site.consent.tcf] `cookie` must name a cookie, e.g. \"euconsent-v2\"".into(),
            );
        }
        let cookies: Vec<Arc<str>> = cfg.cookie.iter().map(|c| Arc::from(c.as_str())).collect();
        Ok(TcfReader {
            signal_cookies: (cookies.len() > 1).then(|| cookies.iter().cloned().collect()),
            cookies,
            cfg: cfg.clone(),
        })
    }
}

impl TableReader for TcfReader {
    const NAME: &'static str = "tcf";
    type Config = TcfConfig;
    fn from_config(cfg: &TcfConfig) -> Result<Self, String> {
        Self::new(cfg)
    }
}

impl ConsentReader for TcfReader {
    fn format(&self) -> &'static str {
        <Self as TableReader>::NAME
    }

    fn cookie_patterns(&self) -> Vec<String> {
        self.cfg.cookie.clone()
    }

    fn read_value(&self, raw: &[u8], source: &Arc<str>, detail: bool) -> Option<SourceOutcome> {
        // An app's stored `IABTCF_TCString`, sent as a header.
        Some(match super::url_decoded(raw).and_then(|v| decode(&v)) {
            Err(e) => SourceOutcome::failed(self.format(), source, e),
            Ok(tc) => {
                let mut o = SourceOutcome::granted(self.format(), source, grants(&tc, &self.cfg));
                o.vendors = Some(Arc::new(tc.vendor_consents.clone()));
                if detail {
                    o.details = Some(details(&tc));
                }
                o
            }
        })
    }

    fn read(&self, jar: &CookieJar<'_>, detail: bool) -> Option<SourceOutcome> {
        // Duplicates (same name on several paths or domains): the most restrictive wins for
        // every field, purposes and vendors alike, so cookie order never decides whether a
        // withdrawn vendor is honoured. `explain` shows the first copy's fields.
        let mut result: Option<Result<(Grants, VendorSet, TcString), ConsentError>> = None;
        // The first configured name present on the request names the source.
        let mut cookie = None;
        let values = self
            .cookies
            .iter()
            .flat_map(|name| jar.values(name).map(move |v| (name, v)));
        for (name, raw) in values {
            cookie.get_or_insert(name);
            let r = super::url_decoded(raw).and_then(|v| decode(&v));
            result = Some(match (result, r) {
                (None, Ok(tc)) => Ok((grants(&tc, &self.cfg), tc.vendor_consents.clone(), tc)),
                (None, Err(e)) | (Some(Err(e)), _) | (Some(Ok(_)), Err(e)) => Err(e),
                (Some(Ok((g, vendors, first))), Ok(tc)) => Ok((
                    g.intersect(grants(&tc, &self.cfg)),
                    vendors.intersect(&tc.vendor_consents),
                    first,
                )),
            });
        }
        let cookie = cookie?;
        let mut o = match result? {
            Err(e) => SourceOutcome::failed(self.format(), cookie, e),
            Ok((granted, vendors, tc)) => {
                let mut o = SourceOutcome::granted(self.format(), cookie, granted);
                if detail {
                    o.details = Some(details(&tc));
                }
                o.vendors = Some(Arc::new(vendors));
                o
            }
        };
        o.signal_cookies = self.signal_cookies.clone();
        Some(o)
    }
}

/// The test TC string encoder, shared with the integration tests and the benches.
#[cfg(test)]
#[path = "../../tests/support/tc_encoder.rs"]
mod tc_encoder;

#[cfg(test)]
mod tests {
    use super::*;

    use super::tc_encoder::{TcSpec, Vendors};

    /// A string with these purposes consented (and legitimate interests) and these vendors.
    fn encode(purposes: &[u16], li: &[u16], vendors: &[u16], how: Vendors) -> String {
        TcSpec {
            purposes: purposes.to_vec(),
            purposes_li: li.to_vec(),
            vendors: vendors.to_vec(),
            vendors_as: how,
            ..TcSpec::default()
        }
        .encode()
    }

    #[test]
    fn round_trip_bitfield_and_range() {
        for how in [Vendors::Bitfield, Vendors::Ranges, Vendors::SingleIds] {
            let vendors: Vec<u16> = (1..=1200).filter(|v| v % 3 != 0).chain([755]).collect();
            let s = TcSpec {
                cmp_id: 300,
                vendor_list_version: 150,
                purposes: vec![1, 2, 3, 4, 7, 8, 9],
                purposes_li: vec![2, 7],
                vendors: vendors.clone(),
                vendors_as: how,
                vendor_li: vec![2, 3],
                ..TcSpec::default()
            }
            .encode();
            let tc = decode(&s).unwrap();
            assert_eq!(tc.cmp_id, 300);
            assert_eq!(tc.vendor_list_version, 150);
            assert_eq!(tc.policy_version, 4);
            assert_eq!(tc.consent_language, "EN");
            assert_eq!(tc.publisher_cc, "DE");
            let mut expected = vendors.clone();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(tc.vendor_consents.to_vec(), expected, "{how:?}");
            assert_eq!(tc.vendor_li.to_vec(), vec![2, 3]);
            let g = grants(&tc, &TcfConfig::default());
            assert!(g.allows(Category::Analytics) && g.allows(Category::Marketing));
            assert!(!g.allows(Category::Preferences));
        }
    }

    #[test]
    fn a_real_tc_string_decodes() {
        // From the IAB TCF v2 specification's example (core segment and a disclosed-vendors
        // segment).
        let s = "COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw";
        let tc = decode(s).unwrap();
        // Expected values as the IAB's reference decoder `@iabtcf/core` (npm, 1.5) reports them,
        // not as this decoder sees them (tests/fixtures/consent/ has many more such vectors).
        assert_eq!(tc.version, 2);
        assert_eq!((tc.created, tc.last_updated), (15822430593, 15822430593));
        assert_eq!((tc.cmp_id, tc.cmp_version, tc.consent_screen), (27, 0, 0));
        assert_eq!(tc.consent_language, "EN");
        assert_eq!((tc.vendor_list_version, tc.policy_version), (15, 2));
        assert!(!tc.is_service_specific && !tc.use_non_standard_texts);
        assert_eq!(bits_to_list(u32::from(tc.special_features), 12), [0u8; 0]);
        assert_eq!(bits_to_list(tc.purposes_consent, 24), [1, 2, 3]);
        assert_eq!(bits_to_list(tc.purposes_li, 24), [0u8; 0]);
        assert!(!tc.purpose_one_treatment);
        assert_eq!(tc.publisher_cc, "AA");
        assert_eq!(tc.vendor_consents.to_vec(), [2, 6, 8]);
        assert_eq!(tc.vendor_li.to_vec(), [2, 6, 8]);
        assert!(tc.publisher_restrictions.is_empty());
        // The disclosed-vendors segment ("I..."): 76 vendors as the IAB's GPP library
        // (@iabgpp/cmpapi 3.2.0) decodes it; no other optional segment.
        let disclosed = tc.disclosed_vendors.as_ref().unwrap().to_vec();
        assert_eq!(disclosed.len(), 76);
        assert_eq!(disclosed[..8], [2, 6, 8, 12, 18, 23, 37, 42]);
        assert_eq!(disclosed[73..], [717, 718, 720]);
        assert!(tc.allowed_vendors.is_none() && tc.publisher_tc.is_none());
        // A v1 string (they start with "B") is refused, not misread.
        assert!(decode("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA")
            .unwrap_err()
            .0
            .contains("version 1"));
        let v2 = encode(&[1], &[], &[1, 2], Vendors::Bitfield);
        // Optional segments after the core are tolerated.
        assert!(decode(&format!("{v2}.YAAAAAAAAAAA")).is_ok());
    }

    #[test]
    fn optional_segments_decode_in_any_order() {
        use super::tc_encoder::BitWriter;
        let core = encode(&[1], &[], &[1, 2], Vendors::Bitfield);
        // Publisher TC (type 3): purposes 1 and 3 consented, 2 by legitimate interest, three
        // custom purposes: 1 and 3 consented, 2 by legitimate interest.
        let mut w = BitWriter::default();
        w.put(3, 3);
        w.ids(&[1, 3], 24);
        w.ids(&[2], 24);
        w.put(3, 6);
        w.ids(&[1, 3], 3);
        w.ids(&[2], 3);
        let publisher = w.finish();
        // Allowed vendors (type 2) as ranges, disclosed vendors (type 1) as a bitfield.
        let mut w = BitWriter::default();
        w.put(2, 3);
        w.put(300, 16);
        w.put(1, 1);
        w.put(2, 12);
        w.put(0, 1);
        w.put(7, 16);
        w.put(1, 1);
        w.put(100, 16);
        w.put(300, 16);
        let allowed = w.finish();
        let mut w = BitWriter::default();
        w.put(1, 3);
        w.put(5, 16);
        w.put(0, 1);
        w.ids(&[2, 5], 5);
        let disclosed = w.finish();
        let tc = decode(&format!("{core}.{publisher}.{allowed}.{disclosed}")).unwrap();
        let other = decode(&format!("{core}.{disclosed}.{publisher}.{allowed}")).unwrap();
        assert_eq!(tc, other, "segment order does not matter");
        let p = tc.publisher_tc.clone().unwrap();
        assert_eq!((p.consents, p.legitimate_interests), (0b101, 0b10));
        assert_eq!(p.num_custom_purposes, 3);
        assert_eq!(
            (p.custom_consents, p.custom_legitimate_interests),
            (0b101, 0b10)
        );
        let allowed_ids = tc.allowed_vendors.as_ref().unwrap().to_vec();
        assert_eq!(allowed_ids.len(), 1 + 201);
        assert_eq!(
            (allowed_ids[0], allowed_ids[1], allowed_ids[201]),
            (7, 100, 300)
        );
        assert_eq!(tc.disclosed_vendors.as_ref().unwrap().to_vec(), [2, 5]);
        // The plain `tcf` source's explain output is the core segment's, as before.
        assert!(details(&tc).get("vendors_disclosed").is_none());
        // Absent segments stay absent; a truncated one fails the string (fails closed).
        let bare = decode(&core).unwrap();
        assert!(bare.publisher_tc.is_none() && bare.disclosed_vendors.is_none());
        assert!(decode(&format!("{core}.{}", &publisher[..3])).is_err());
        assert!(decode(&format!("{core}.{}", &allowed[..5])).is_err());
    }

    #[test]
    fn base64url_keeps_every_bit_of_every_character() {
        // Six bits a character, whatever the length: a 2- or 3-character tail keeps the bits a
        // byte-wise decoder would drop ("AB" = 000000 000001: the 1 is in the 12th bit).
        assert_eq!(base64url("AB").unwrap(), (vec![0x00, 0x10], 12));
        assert_eq!(base64url("Q").unwrap(), (vec![0x40], 6));
        assert_eq!(base64url("QUI").unwrap(), (vec![0x41, 0x42, 0x00], 18));
        assert_eq!(base64url("QUJD").unwrap(), (b"ABC".to_vec(), 24));
        // Padding optional (RFC 4648 base64 of "AB" is "QUI="), the standard alphabet too.
        assert_eq!(base64url("QUI=").unwrap(), base64url("QUI").unwrap());
        assert_eq!(base64url("QUI==").unwrap(), base64url("QUI").unwrap());
        assert_eq!(base64url("A/+_-").unwrap(), base64url("A_-_-").unwrap());
        for bad in ["QU=I", "QU I", "QU.I", "Q\u{e9}"] {
            assert!(base64url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_strings_are_errors() {
        assert!(decode("").is_err());
        assert!(decode("!!!").is_err());
        assert!(decode("CAAAAA").is_err(), "truncated");
        let good = encode(&[1], &[], &[5], Vendors::Ranges);
        assert!(
            decode(&good[..good.len() - 6]).is_err(),
            "truncated vendor section"
        );
        // A 1 MB input returns promptly.
        let big = "A".repeat(1 << 20);
        assert!(decode(&big).is_err());
        let big_valid_looking = format!("{good}.{}", "B".repeat(1 << 20));
        let _ = decode(&big_valid_looking);
    }

    #[test]
    fn duplicate_cookies_intersect_every_field() {
        let with = encode(
            &(1..=11).collect::<Vec<_>>(),
            &[],
            &[7, 755],
            Vendors::Bitfield,
        );
        let without = encode(&(1..=11).collect::<Vec<_>>(), &[], &[7], Vendors::Ranges);
        let reader = TcfReader::new(&TcfConfig::default()).unwrap();
        for header in [
            format!("euconsent-v2={with}; euconsent-v2={without}"),
            format!("euconsent-v2={without}; euconsent-v2={with}"),
        ] {
            let jar = CookieJar::from_headers([header.as_bytes()]);
            let o = reader.read(&jar, false).unwrap();
            let vendors = o.vendors.unwrap();
            assert!(vendors.contains(7), "{header}");
            assert!(!vendors.contains(755), "withdrawn in one copy: {header}");
            assert!(o.granted.is_all());
        }
    }

    #[test]
    fn onetrust_cookie_name_is_read_by_default() {
        let all = encode(
            &(1..=11).collect::<Vec<_>>(),
            &[],
            &[755],
            Vendors::Bitfield,
        );
        let reader = TcfReader::new(&TcfConfig::default()).unwrap();
        let header = format!("eupubconsent-v2={all}");
        let o = reader
            .read(&CookieJar::from_headers([header.as_bytes()]), false)
            .unwrap();
        assert_eq!(&*o.cookie, "eupubconsent-v2");
        assert!(o.granted.is_all());
        // Both present: combined, the refusal in one wins.
        let none = encode(&[], &[], &[], Vendors::Bitfield);
        let header = format!("eupubconsent-v2={all}; euconsent-v2={none}");
        let o = reader
            .read(&CookieJar::from_headers([header.as_bytes()]), false)
            .unwrap();
        assert_eq!(o.granted, Grants::NONE);
    }

    #[test]
    fn purposes_missing_deny_the_category() {
        let s = encode(&[1, 8], &[9], &[], Vendors::Bitfield);
        let g = grants(&decode(&s).unwrap(), &TcfConfig::default());
        assert!(
            !g.allows(Category::Analytics),
            "purpose 9 only by legitimate interest"
        );
        assert_eq!(g, Grants::NONE);
    }
}
