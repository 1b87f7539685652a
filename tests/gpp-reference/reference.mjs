// The IAB's reference GPP library (@iabgpp/cmpapi) as the oracle of tests/gpp_differential.rs.
//
//   node reference.mjs gen N SEED   N random GPP strings, one per line, written by the library's
//                                    own encoder from random field values
//   node reference.mjs decode       GPP strings on stdin, one per line; prints for each one JSON
//                                    line: {section_ids, sections: {name: {Field: value}}} as
//                                    the library decodes it (TC string times in deciseconds, as
//                                    encoded), or {error} when it refuses it; section_ids are
//                                    those the library knows (it drops others)
//   node reference.mjs known        the section ids the library knows, as one JSON list
//
//   cd tests/gpp-reference && npm ci && node reference.mjs gen 3 1 | node reference.mjs decode
import { GppModel, RangeEntry, Sections } from '@iabgpp/cmpapi';
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

// The 2-bit fields most state sections 13-22 share, after their first notice.
function STATE_INTS(notice) {
  return [notice, 'SaleOptOutNotice', 'TargetedAdvertisingOptOutNotice', 'SaleOptOut', 'TargetedAdvertisingOptOut',
    'AdditionalDataProcessingConsent', 'MspaOptOutOptionMode', 'MspaServiceProviderMode'];
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
  // The state sections 13-22 (layouts as this library encodes them).
  usfl: { gpc: false, lists: { SensitiveDataProcessing: 8, KnownChildSensitiveDataConsents: 3 },
    ints: [...STATE_INTS('ProcessingNotice')] },
  usmt: { gpc: true, lists: { SensitiveDataProcessing: 8, KnownChildSensitiveDataConsents: 3 },
    ints: [...STATE_INTS('SharingNotice')] },
  usor: { gpc: true, lists: { SensitiveDataProcessing: 11, KnownChildSensitiveDataConsents: 3 },
    ints: [...STATE_INTS('ProcessingNotice')] },
  ustx: { gpc: true, lists: { SensitiveDataProcessing: 8 },
    ints: [...STATE_INTS('ProcessingNotice'), 'KnownChildSensitiveDataConsents'] },
  usde: { gpc: true, lists: { SensitiveDataProcessing: 9, KnownChildSensitiveDataConsents: 5 },
    ints: [...STATE_INTS('ProcessingNotice')] },
  usia: { gpc: true, lists: { SensitiveDataProcessing: 8 },
    ints: ['ProcessingNotice', 'SaleOptOutNotice', 'TargetedAdvertisingOptOutNotice', 'SensitiveDataOptOutNotice',
      'SaleOptOut', 'TargetedAdvertisingOptOut', 'KnownChildSensitiveDataConsents', 'MspaOptOutOptionMode', 'MspaServiceProviderMode'] },
  usne: { gpc: true, lists: { SensitiveDataProcessing: 8 },
    ints: [...STATE_INTS('ProcessingNotice'), 'KnownChildSensitiveDataConsents'] },
  usnh: { gpc: true, lists: { SensitiveDataProcessing: 8, KnownChildSensitiveDataConsents: 3 },
    ints: [...STATE_INTS('ProcessingNotice')] },
  usnj: { gpc: true, lists: { SensitiveDataProcessing: 10, KnownChildSensitiveDataConsents: 5 },
    ints: [...STATE_INTS('ProcessingNotice')] },
  ustn: { gpc: true, lists: { SensitiveDataProcessing: 8 },
    ints: [...STATE_INTS('ProcessingNotice'), 'KnownChildSensitiveDataConsents'] },
  // Read past by consentgate (their fields are not set: the library's defaults are written).
  usmn: null, usmd: null, tcfcav1: null,
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
    let tcf = null;
    if (r() < 0.3) {
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
      m.setFieldValue('tcfeuv2', 'ConsentScreen', pick(64));
      m.setFieldValue('tcfeuv2', 'PolicyVersion', 2 + pick(4));
      // IsServiceSpecific stays true here: this library refuses to encode false (TCF policy);
      // the core segment is re-encoded with false below.
      m.setFieldValue('tcfeuv2', 'UseNonStandardStacks', r() < 0.2);
      const letter = () => String.fromCharCode(65 + pick(26));
      m.setFieldValue('tcfeuv2', 'ConsentLanguage', letter() + letter());
      m.setFieldValue('tcfeuv2', 'PublisherCountryCode', letter() + letter());
      // Publisher restrictions: purposes 1-11, types 0-2, ascending vendor ids (the TCF layout).
      const restrictions = Array.from({ length: pick(3) }, (_, i) =>
        new RangeEntry(1 + ((pick(11) + i) % 11), pick(3), ids(0.05).filter((id) => id <= 300)));
      m.setFieldValue('tcfeuv2', 'PublisherRestrictions', restrictions.filter((e) => e.getIds().length > 0));
      // The optional segments' fields: publisher TC (custom purposes, up to the 63 the 6-bit
      // count allows), allowed and disclosed vendors (dense lists come out as bitfields,
      // sparse ones as ranges: the encoder picks the shorter).
      m.setFieldValue('tcfeuv2', 'PublisherConsents', bools(24, 0.5));
      m.setFieldValue('tcfeuv2', 'PublisherLegitimateInterests', bools(24, 0.3));
      const custom = r() < 0.2 ? pick(64) : pick(6);
      m.setFieldValue('tcfeuv2', 'NumCustomPurposes', custom);
      m.setFieldValue('tcfeuv2', 'PublisherCustomConsents', bools(custom, 0.5));
      m.setFieldValue('tcfeuv2', 'PublisherCustomLegitimateInterests', bools(custom, 0.3));
      m.setFieldValue('tcfeuv2', 'VendorsAllowed', ids([0, 0.02, 0.5][pick(3)]));
      m.setFieldValue('tcfeuv2', 'VendorsDisclosed', ids([0, 0.02, 0.5][pick(3)]));
      // Last: setting any other field stamps today's date on both (a seed must always write
      // the same strings).
      m.setFieldValue('tcfeuv2', 'Created', when);
      m.setFieldValue('tcfeuv2', 'LastUpdated', when);
      tcf = { serviceSpecific: r() < 0.7, segments: [1, 2, 3].filter(() => r() < 0.6) };
    }
    if (r() < 0.2) {
      const flag = () => '-YN'[pick(3)];
      m.setFieldValue('uspv1', 'Notice', flag());
      m.setFieldValue('uspv1', 'OptOutSale', flag());
      m.setFieldValue('uspv1', 'LspaCovered', flag());
    }
    for (const [name, spec] of Object.entries(US)) {
      if (r() >= 0.3) continue;
      if (spec === null) {
        // A section the library knows and consentgate reads past: its default fields.
        m.setFieldValue(name, name === 'usmd' ? 'MspaCoveredTransaction' : 'Version', 1);
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
    let s = m.encode();
    if (tcf) s = withTcfSegments(m, s, tcf, r);
    out.push(s);
  }
  return out;
}

// The library's encoder always writes the core, disclosed-vendors and publisher-TC segments
// of `tcfeuv2` (never allowed vendors) and refuses IsServiceSpecific = false. Each segment is
// written here by the library's own segment encoder, and the section rebuilt from the core
// and a random choice of the optional segments in random order (a TC string's segments after
// the core may come in any order), so absent, present and empty segments all occur.
function withTcfSegments(m, s, tcf, r) {
  const section = m.sections.get('tcfeuv2');
  // [core, publisher TC, allowed vendors, disclosed vendors], as the library keeps them.
  const segments = section.segments;
  if (!tcf.serviceSpecific) segments[0].setFieldValue('IsServiceSpecific', false);
  const optional = tcf.segments.map((i) => segments[[0, 3, 2, 1][i]].encode());
  for (let i = optional.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [optional[i], optional[j]] = [optional[j], optional[i]];
  }
  const parts = s.split('~');
  const at = 1 + m.getSectionIds().indexOf(2);
  parts[at] = [segments[0].encode(), ...optional].join('.');
  return parts.join('~');
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
  // TC string times as encoded, deciseconds since the epoch (the library makes dates of them).
  for (const section of Object.values(sections)) {
    for (const f of ['Created', 'LastUpdated']) {
      if (section[f] instanceof Date) section[f] = Math.round(section[f].getTime() / 100);
    }
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
