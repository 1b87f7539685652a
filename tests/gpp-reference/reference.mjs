// The IAB's reference GPP library (@iabgpp/cmpapi) as the oracle of tests/gpp_differential.rs.
//
//   node reference.mjs gen N SEED   N random GPP strings, one per line, written by the library's
//                                    own encoder from random field values
//   node reference.mjs decode       GPP strings on stdin, one per line; prints for each one JSON
//                                    line: {section_ids, sections: {name: {Field: value}}} as
//                                    the library decodes it, or {error} when it refuses it;
//                                    section_ids are those the library knows (it drops others)
//   node reference.mjs known        the section ids the library knows, as one JSON list
//
//   cd tests/gpp-reference && npm ci && node reference.mjs gen 3 1 | node reference.mjs decode
import { GppModel, Sections } from '@iabgpp/cmpapi';
import { readFileSync } from 'fs';

// mulberry32: a fixed seed writes the same strings every run (a failure reproduces).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The US sections consentgate reads, and some it reads past ("unsupported"), with their core
// fields' kinds: 2-bit integers, or lists of n 2-bit integers; MspaCoveredTransaction is 1 or 2.
const US = {
  usnat: { gpc: true, lists: { SensitiveDataProcessing: 16, KnownChildSensitiveDataConsents: 3 },
    ints: ['SharingNotice', 'SaleOptOutNotice', 'SharingOptOutNotice', 'TargetedAdvertisingOptOutNotice',
      'SensitiveDataProcessingOptOutNotice', 'SensitiveDataLimitUseNotice', 'SaleOptOut', 'SharingOptOut',
      'TargetedAdvertisingOptOut', 'PersonalDataConsents', 'MspaOptOutOptionMode', 'MspaServiceProviderMode'] },
  usca: { gpc: true, lists: { SensitiveDataProcessing: 9, KnownChildSensitiveDataConsents: 2 },
    ints: ['SaleOptOutNotice', 'SharingOptOutNotice', 'SensitiveDataLimitUseNotice', 'SaleOptOut',
      'SharingOptOut', 'PersonalDataConsents', 'MspaOptOutOptionMode', 'MspaServiceProviderMode'] },
  usva: { gpc: false, lists: { SensitiveDataProcessing: 8 },
    ints: ['SharingNotice', 'SaleOptOutNotice', 'TargetedAdvertisingOptOutNotice', 'SaleOptOut',
      'TargetedAdvertisingOptOut', 'KnownChildSensitiveDataConsents', 'MspaOptOutOptionMode', 'MspaServiceProviderMode'] },
  usco: { gpc: true, lists: { SensitiveDataProcessing: 7 },
    ints: ['SharingNotice', 'SaleOptOutNotice', 'TargetedAdvertisingOptOutNotice', 'SaleOptOut',
      'TargetedAdvertisingOptOut', 'KnownChildSensitiveDataConsents', 'MspaOptOutOptionMode', 'MspaServiceProviderMode'] },
  usut: { gpc: false, lists: { SensitiveDataProcessing: 8 },
    ints: ['SharingNotice', 'SaleOptOutNotice', 'TargetedAdvertisingOptOutNotice', 'SensitiveDataProcessingOptOutNotice',
      'SaleOptOut', 'TargetedAdvertisingOptOut', 'KnownChildSensitiveDataConsents', 'MspaOptOutOptionMode', 'MspaServiceProviderMode'] },
  usct: { gpc: true, lists: { SensitiveDataProcessing: 8, KnownChildSensitiveDataConsents: 3 },
    ints: ['SharingNotice', 'SaleOptOutNotice', 'TargetedAdvertisingOptOutNotice', 'SaleOptOut',
      'TargetedAdvertisingOptOut', 'MspaOptOutOptionMode', 'MspaServiceProviderMode'] },
  // Read past by consentgate (their fields are not set: the library's defaults are written).
  usfl: null, usor: null, ustx: null, usde: null, usnj: null, tcfcav1: null,
};

function generate(n, seed) {
  const r = rng(seed);
  const pick = (k) => Math.floor(r() * k);
  const bools = (k, p) => Array.from({ length: k }, () => r() < p);
  const out = [];
  while (out.length < n) {
    const m = new GppModel();
    // Fixed times (the library's default is now), so a seed always writes the same strings.
    const when = new Date(Date.UTC(2024, 0, 1) + pick(700) * 86400000);
    if (r() < 0.3) {
      m.setFieldValue('tcfeuv2', 'Created', when);
      m.setFieldValue('tcfeuv2', 'LastUpdated', when);
      m.setFieldValue('tcfeuv2', 'CmpId', 2 + pick(4000));
      m.setFieldValue('tcfeuv2', 'CmpVersion', pick(4096));
      m.setFieldValue('tcfeuv2', 'VendorListVersion', pick(4096));
      m.setFieldValue('tcfeuv2', 'PurposeOneTreatment', r() < 0.2);
      m.setFieldValue('tcfeuv2', 'SpecialFeatureOptins', bools(12, 0.5));
      m.setFieldValue('tcfeuv2', 'PurposeConsents', bools(24, 0.5));
      m.setFieldValue('tcfeuv2', 'PurposeLegitimateInterests', bools(24, 0.3));
      const ids = (p) => Array.from({ length: 1 + pick(900) }, (_, i) => i + 1).filter(() => r() < p);
      m.setFieldValue('tcfeuv2', 'VendorConsents', ids(0.3));
      m.setFieldValue('tcfeuv2', 'VendorLegitimateInterests', ids(0.1));
    }
    if (r() < 0.15) m.setFieldValue('uspv1', 'OptOutSale', r() < 0.5 ? 'Y' : 'N');
    for (const [name, spec] of Object.entries(US)) {
      if (r() >= 0.3) continue;
      if (spec === null) {
        // A section the library knows and consentgate reads past: its default fields.
        m.setFieldValue(name, 'Version', 1);
        if (name === 'tcfcav1') {
          m.setFieldValue(name, 'Created', when);
          m.setFieldValue(name, 'LastUpdated', when);
        }
        continue;
      }
      for (const f of spec.ints) m.setFieldValue(name, f, pick(3));
      m.setFieldValue(name, 'MspaCoveredTransaction', 1 + pick(2));
      for (const [f, k] of Object.entries(spec.lists)) m.setFieldValue(name, f, Array.from({ length: k }, () => pick(3)));
      // usnat in both layouts: Version 1 is the first (12 sensitive-data categories, 2 child
      // consents; the library writes the first 12 and 2 of the values set above).
      if (name === 'usnat') m.setFieldValue(name, 'Version', 1 + pick(2));
      if (spec.gpc) {
        m.setFieldValue(name, 'GpcSegmentIncluded', r() < 0.6);
        m.setFieldValue(name, 'Gpc', r() < 0.5);
      }
    }
    if (m.getSectionIds().length === 0) continue;
    out.push(m.encode());
  }
  return out;
}

function decode(s) {
  const m = new GppModel(s);
  const sections = m.toObject();
  // Not in toObject(), and hasField() denies it; read directly where a section has it.
  for (const name of Object.keys(sections)) {
    let included;
    try { included = m.getFieldValue(name, 'GpcSegmentIncluded'); } catch { continue; } // no such field
    if (typeof included === 'boolean') sections[name].GpcSegmentIncluded = included;
  }
  return { section_ids: m.getSectionIds(), sections };
}

const [mode, n, seed] = process.argv.slice(2);
if (mode === 'gen') {
  for (const s of generate(Number(n), Number(seed))) console.log(s);
} else if (mode === 'decode') {
  for (const s of readFileSync(0, 'utf8').split('\n').filter(Boolean)) {
    let line;
    try { line = JSON.stringify(decode(s)); } catch (e) { line = JSON.stringify({ error: String(e.message || e) }); }
    console.log(line);
  }
} else if (mode === 'known') {
  console.log(JSON.stringify([...Sections.SECTION_ID_NAME_MAP.keys()]));
} else {
  console.error('usage: node reference.mjs gen N SEED | decode | known');
  process.exit(2);
}
