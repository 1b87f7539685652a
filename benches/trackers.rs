//! Blocklist matching with EasyList (marketing) + EasyPrivacy (analytics) loaded, as a site
//! configured with both would run it on every request of a visitor without consent.
//! Also prints the build time and the resident memory the two engines add.
//!
//! Run at full size (the figures in docs/BENCHMARKS.md): fetch the lists, then point
//! `CONSENTGATE_LISTS_DIR` at the folder holding `easylist.txt` and `easyprivacy.txt`:
//!     scripts/fetch-lists /tmp/lists && CONSENTGATE_LISTS_DIR=/tmp/lists cargo bench --bench trackers
//! Without it the excerpts in tests/fixtures/lists/ are used (a few hundred rules each): the
//! benchmark then runs everywhere, `cargo test --benches` included, but its figures are not
//! those of the real lists.

use consentgate::consent::{Category, Grants};
use consentgate::trackers::{Blocklist, Blocklists, RequestKind};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::path::Path;
use std::time::Instant;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A realistic mix: page assets of a shop and the trackers such a page pulls in.
const URLS: &[(&str, RequestKind)] = &[
    ("https://shop.example/", RequestKind::Document),
    (
        "https://shop.example/static/app.3f9a1c.js",
        RequestKind::Script,
    ),
    (
        "https://shop.example/static/style.8b2d.css",
        RequestKind::Stylesheet,
    ),
    (
        "https://shop.example/images/product/42/main.webp",
        RequestKind::Image,
    ),
    (
        "https://shop.example/api/cart?session=abc",
        RequestKind::Xhr,
    ),
    (
        "https://shop.example/fonts/inter-var.woff2",
        RequestKind::Font,
    ),
    (
        "https://www.googletagmanager.com/gtag/js?id=G-ABCDEF1234",
        RequestKind::Script,
    ),
    (
        "https://www.google-analytics.com/g/collect?v=2&tid=G-ABCDEF1234&cid=1.2",
        RequestKind::Ping,
    ),
    (
        "https://connect.facebook.net/en_US/fbevents.js",
        RequestKind::Script,
    ),
    (
        "https://www.facebook.com/tr?id=123456&ev=PageView&noscript=1",
        RequestKind::Image,
    ),
    (
        "https://static.hotjar.com/c/hotjar-123456.js?sv=6",
        RequestKind::Script,
    ),
    (
        "https://shop.example/gtm.js?id=GTM-XXXX",
        RequestKind::Script,
    ),
    (
        "https://cdn.jsdelivr.net/npm/vue@3/dist/vue.global.prod.js",
        RequestKind::Script,
    ),
    (
        "https://shop.example/checkout/step-2?utm_source=news",
        RequestKind::Document,
    ),
    (
        "https://securepubads.g.doubleclick.net/tag/js/gpt.js",
        RequestKind::Script,
    ),
    (
        "https://shop.example/collect?v=2&tid=G-1&en=purchase",
        RequestKind::Xhr,
    ),
];

fn bench(c: &mut Criterion) {
    let data = std::env::var("CONSENTGATE_LISTS_DIR").unwrap_or_else(|_| {
        eprintln!("CONSENTGATE_LISTS_DIR is not set: using the list excerpts, not the full lists");
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lists").to_string()
    });
    let (el, ep) = (
        format!("{data}/easylist.txt"),
        format!("{data}/easyprivacy.txt"),
    );
    let before = rss_kib();
    let t = Instant::now();
    let lists = Blocklists::new(vec![
        Blocklist::load(Category::Analytics, Path::new(&ep), "easyprivacy.txt")
            .unwrap_or_else(|e| panic!("{ep}: {e}")),
        Blocklist::load(Category::Marketing, Path::new(&el), "easylist.txt")
            .unwrap_or_else(|e| panic!("{el}: {e}")),
    ]);
    let built = t.elapsed();
    let after = rss_kib();
    eprintln!(
        "built EasyList+EasyPrivacy ({} rules) in {:.0} ms; resident memory {} MiB -> {} MiB (+{} MiB)",
        lists.lists().iter().map(|l| l.rules).sum::<usize>(),
        built.as_secs_f64() * 1e3,
        before / 1024,
        after / 1024,
        (after - before) / 1024
    );
    let blocked = URLS
        .iter()
        .filter(|(u, k)| {
            lists
                .check(u, "https://shop.example/", *k, Grants::NONE)
                .is_some()
        })
        .count();
    eprintln!("{blocked} of {} sample URLs blocked", URLS.len());
    // Per request: the median over the mix of each URL's own time (what one request costs),
    // besides criterion's figure for the whole mix below.
    let mut per_url: Vec<f64> = URLS
        .iter()
        .map(|(u, k)| {
            // `cargo test --all-targets` runs benches once in debug to check they work: keep
            // that quick; `cargo bench` passes `--bench` and gets the real count.
            let n = if std::env::args().any(|a| a == "--bench") {
                20_000
            } else {
                3
            };
            let t = Instant::now();
            for _ in 0..n {
                black_box(lists.check(black_box(u), "https://shop.example/", *k, Grants::NONE));
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    per_url.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = (per_url[per_url.len() / 2 - 1] + per_url[per_url.len() / 2]) / 2.0;
    eprintln!(
        "per-request check time over the {} URLs: median {:.0} ns, min {:.0} ns, max {:.0} ns",
        per_url.len(),
        median,
        per_url[0],
        per_url[per_url.len() - 1]
    );
    c.bench_function(
        "blocklist check, EasyList+EasyPrivacy, per request (mix)",
        |b| {
            let mut i = 0;
            b.iter(|| {
                let (u, k) = URLS[i % URLS.len()];
                i += 1;
                black_box(lists.check(black_box(u), "https://shop.example/", k, Grants::NONE))
            })
        },
    );
    c.bench_function("blocklist check skipped (all consented)", |b| {
        b.iter(|| {
            black_box(lists.check(
                black_box(URLS[6].0),
                "https://shop.example/",
                RequestKind::Script,
                Grants::ALL,
            ))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
