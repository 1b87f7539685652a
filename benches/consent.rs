//! Reading consent: a typical Cookie header (about 8 cookies) carrying each format, through the
//! same reader + CookieJar path the proxy runs; and decoding a TC string with 1,000+ vendors in
//! both vendor encodings, and GPP strings. Run: cargo bench --bench consent

use consentgate::consent::{self, ConsentReader};
use consentgate::cookies::header::CookieJar;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

#[path = "../tests/support/tc_encoder.rs"]
mod tc_encoder;
use tc_encoder::{TcSpec, Vendors};

/// A TC string with vendors 1..=1200 (every third left out) as a bitfield or as ranges of one
/// vendor each (the worst case for range encoding; a CMP would pick the bitfield here), or
/// `runs`: 1,100 vendors in 100 runs of 11 (what range encoding is used for).
fn tc_string(range: bool) -> String {
    tc_string_with(range, false)
}

fn tc_string_with(range: bool, runs: bool) -> String {
    let (vendors, vendors_as) = if runs {
        let runs = (0..100u16).flat_map(|r| r * 12 + 1..=r * 12 + 11);
        (runs.collect(), Vendors::Ranges)
    } else {
        let every_third_left_out = (1..=1200u16).filter(|v| v % 3 != 0).collect();
        let how = if range {
            Vendors::SingleIds
        } else {
            Vendors::Bitfield
        };
        (every_third_left_out, how)
    };
    TcSpec {
        special_features: vec![1],
        purposes: (1..=10).collect(),
        purposes_li: vec![2, 10],
        vendors,
        vendors_as,
        ..TcSpec::default()
    }
    .encode()
}

fn header(consent_cookie: &str) -> String {
    format!("_ga=GA1.2.1234567890.1732441551; _gid=GA1.2.987654321.1732441551; {consent_cookie}; SESSIONID=8f3a9c2e1b7d; _fbp=fb.1.1732441551.123456789; AWSALB=Yk8k3Jd9sL2; lang=de")
}

fn bench(c: &mut Criterion) {
    let cases: Vec<(&str, Box<dyn ConsentReader>, String)> = vec![
        ("onetrust", Box::new(consent::onetrust::OneTrustReader::new(&Default::default()).unwrap()),
         header("OptanonConsent=isGpcEnabled=0&datestamp=Tue+Nov+24+2026+10%3A12%3A31+GMT%2B0100&version=202409.1.0&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId=5b1c2d3e-aaaa-bbbb-cccc-123456789abc&interactionCount=1&isAnonUser=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A0%2CC0004%3A0&AwaitingReconsent=false")),
        ("cookiebot", Box::new(consent::cookiebot::CookiebotReader::new(&Default::default()).unwrap()),
         header("CookieConsent=%7Bstamp%3A%27-5%2FFJWmqBlyO2OgHRNq3s%2B9xwkzA7u3R9A5lMtzZ0g4Zq4KfMKdY5Ow%3D%3D%27%2Cnecessary%3Atrue%2Cpreferences%3Afalse%2Cstatistics%3Atrue%2Cmarketing%3Afalse%2Cmethod%3A%27explicit%27%2Cver%3A1%2Cutc%3A1732441551063%2Cregion%3A%27de%27%7D")),
        ("cookieyes", Box::new(consent::cookieyes::CookieYesReader::new(&Default::default()).unwrap()),
         header("cookieyes-consent=consentid:ZWdMRlBLbHhyU2d4dUdaSHpSb2JrNXJOd2ZQNXdWcmo,consent:yes,action:yes,necessary:yes,functional:no,analytics:yes,performance:yes,advertisement:no,other:no")),
        ("complianz", Box::new(consent::complianz::ComplianzReader::new(&Default::default()).unwrap()),
         header("cmplz_functional=allow; cmplz_statistics=allow; cmplz_marketing=deny; cmplz_preferences=deny")),
        ("first-party", Box::new(consent::first_party::FirstPartyReader::new("consent")),
         header("consent=analytics,marketing")),
        ("tcf", Box::new(consent::tcf::TcfReader::new(&Default::default()).unwrap()),
         header(&format!("euconsent-v2={}", tc_string_with(true, true)))),
        // usnat (16/3 layout, opted out, GPC) from the IAB reference library's tests.
        ("gpp", Box::new(consent::gpp::GppReader::new(&Default::default()).unwrap()),
         header("__gpp=DBABLA~BVVVkkkkkpFY.YA; __gpp_sid=7")),
    ];
    for (name, reader, h) in &cases {
        c.bench_function(&format!("read {name} from a typical Cookie header"), |b| {
            b.iter(|| {
                let jar = CookieJar::from_headers([black_box(h.as_bytes())]);
                black_box(reader.read(&jar, false))
            })
        });
    }
    for (label, s) in [
        ("800 of 1200 vendors, bitfield", tc_string(false)),
        ("1100 vendors in 100 ranges", tc_string_with(true, true)),
        (
            "800 of 1200 vendors as 800 single-id range entries (worst case)",
            tc_string(true),
        ),
    ] {
        c.bench_function(&format!("decode TC string, {label}"), |b| {
            b.iter(|| black_box(consent::tcf::decode(black_box(&s)).unwrap()))
        });
    }
    // GPP strings from the IAB reference libraries' tests (tests/fixtures/gpp): a US section,
    // and a TC string with a section read past.
    for (label, s) in [
        ("usnat", "DBABLA~BVVVkkkkkpFY.YA"),
        ("usca", "DBABBg~BVWSSSVY.YA"),
        (
            "tcfeuv2 + uspv1",
            "DBACNYA~CPSG_8APSG_8ANwAAAENAwCAAAAAAAAAAAAAAAAAAAAA.QAAA.IAAA~1YNN",
        ),
    ] {
        c.bench_function(&format!("decode GPP string, {label}"), |b| {
            b.iter(|| black_box(consent::gpp::decode(black_box(s)).unwrap()))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
