//! The one TC string encoder of the tests and benches (IAB TCF v2.2 core segment, "Consent
//! string and vendor list formats v2", core string fields): it builds cases, it is never the
//! oracle of a decoder test (those compare with vectors other people wrote, in
//! tests/fixtures/consent/, and with the IAB's reference decoder in tests/tcf_differential.rs).
//!
//! Included as a module by the library's `#[cfg(test)]` code (src/consent/tcf.rs), by the
//! integration tests and by the benches (`#[path = ".../tests/support/tc_encoder.rs"] mod ...`),
//! so the library carries no test code.
#![allow(dead_code)] // each includer uses a part

use base64::Engine;

/// Writes fields most significant bit first, as the specification lays them out.
#[derive(Default)]
pub struct BitWriter {
    bits: Vec<bool>,
}

impl BitWriter {
    /// The low `n` bits of `v`, most significant first.
    pub fn put(&mut self, v: u64, n: usize) {
        for i in (0..n).rev() {
            self.bits.push((v >> i) & 1 == 1);
        }
    }

    /// A bitfield of `n` ids whose first bit is id 1 ("bit 1 = purpose 1" in the core-string
    /// table: SpecialFeatureOptIns, PurposesConsent, PurposesLITransparency, vendor bitfields).
    pub fn ids(&mut self, ids: &[u16], n: usize) {
        for id in 1..=n {
            self.bits.push(ids.contains(&(id as u16)));
        }
    }

    /// Two-letter codes: six bits a letter, `A` = 0.
    pub fn letters(&mut self, s: &str) {
        for c in s.bytes() {
            self.put(u64::from(c - b'A'), 6);
        }
    }

    /// base64url without padding, the last byte zero-filled.
    pub fn finish(&self) -> String {
        let mut bytes = vec![0u8; self.bits.len().div_ceil(8)];
        for (i, b) in self.bits.iter().enumerate() {
            if *b {
                bytes[i / 8] |= 1 << (7 - i % 8);
            }
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// How a vendor section is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendors {
    /// One bit a vendor, 1 to MaxVendorId.
    Bitfield,
    /// Range entries, one per run of consecutive ids (what a CMP writes).
    Ranges,
    /// One single-id range entry per vendor (the longest range encoding).
    SingleIds,
}

/// The fields of a core segment; `Default` is an ordinary TCF 2.2 string with nothing granted.
#[derive(Clone, Debug)]
pub struct TcSpec {
    /// Deciseconds since the Unix epoch.
    pub created: u64,
    pub last_updated: u64,
    pub cmp_id: u16,
    pub cmp_version: u16,
    pub consent_screen: u8,
    pub consent_language: &'static str,
    pub vendor_list_version: u16,
    pub policy_version: u8,
    pub is_service_specific: bool,
    pub use_non_standard_texts: bool,
    pub special_features: Vec<u16>,
    pub purposes: Vec<u16>,
    pub purposes_li: Vec<u16>,
    pub purpose_one_treatment: bool,
    pub publisher_cc: &'static str,
    pub vendors: Vec<u16>,
    pub vendors_as: Vendors,
    pub vendor_li: Vec<u16>,
    pub vendor_li_as: Vendors,
}

impl Default for TcSpec {
    fn default() -> Self {
        TcSpec {
            created: 17_000_000_000,
            last_updated: 17_000_000_000,
            cmp_id: 10,
            cmp_version: 1,
            consent_screen: 1,
            consent_language: "EN",
            vendor_list_version: 200,
            policy_version: 4,
            is_service_specific: true,
            use_non_standard_texts: false,
            special_features: vec![],
            purposes: vec![],
            purposes_li: vec![],
            purpose_one_treatment: false,
            publisher_cc: "DE",
            vendors: vec![],
            vendors_as: Vendors::Bitfield,
            vendor_li: vec![],
            vendor_li_as: Vendors::Bitfield,
        }
    }
}

impl TcSpec {
    /// The default string with these purposes consented and these vendors (as ranges).
    pub fn with(purposes: &[u16], vendors: &[u16]) -> TcSpec {
        TcSpec {
            purposes: purposes.to_vec(),
            vendors: vendors.to_vec(),
            vendors_as: Vendors::Ranges,
            ..TcSpec::default()
        }
    }

    /// The core segment as base64url (no publisher restrictions, no optional segment).
    pub fn encode(&self) -> String {
        let mut w = BitWriter::default();
        w.put(2, 6); // version
        w.put(self.created, 36);
        w.put(self.last_updated, 36);
        w.put(u64::from(self.cmp_id), 12);
        w.put(u64::from(self.cmp_version), 12);
        w.put(u64::from(self.consent_screen), 6);
        w.letters(self.consent_language);
        w.put(u64::from(self.vendor_list_version), 12);
        w.put(u64::from(self.policy_version), 6);
        w.put(u64::from(self.is_service_specific), 1);
        w.put(u64::from(self.use_non_standard_texts), 1);
        w.ids(&self.special_features, 12);
        w.ids(&self.purposes, 24);
        w.ids(&self.purposes_li, 24);
        w.put(u64::from(self.purpose_one_treatment), 1);
        w.letters(self.publisher_cc);
        vendor_section(&mut w, &self.vendors, self.vendors_as);
        vendor_section(&mut w, &self.vendor_li, self.vendor_li_as);
        w.put(0, 12); // NumPubRestrictions
        w.finish()
    }
}

/// MaxVendorId, IsRangeEncoding, then the bitfield or the range entries.
fn vendor_section(w: &mut BitWriter, vendors: &[u16], how: Vendors) {
    let max = vendors.iter().copied().max().unwrap_or(0);
    w.put(u64::from(max), 16);
    if how == Vendors::Bitfield {
        w.put(0, 1);
        w.ids(vendors, usize::from(max));
        return;
    }
    w.put(1, 1);
    let mut sorted = vendors.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut entries: Vec<(u16, u16)> = Vec::new();
    for id in sorted {
        match entries.last_mut() {
            Some((_, end)) if how == Vendors::Ranges && *end + 1 == id => *end = id,
            _ => entries.push((id, id)),
        }
    }
    w.put(entries.len() as u64, 12);
    for (start, end) in entries {
        w.put(u64::from(start != end), 1);
        w.put(u64::from(start), 16);
        if start != end {
            w.put(u64::from(end), 16);
        }
    }
}
