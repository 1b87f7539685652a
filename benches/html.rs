//! HTML neutralization throughput on one core: a realistic ~100 KB shop page with a dozen
//! scripts and images, some of them trackers, for a visitor without consent.
//! Run: cargo bench --bench html

use consentgate::consent::{Category, Grants};
use consentgate::html::{default_snippets, Neutralizer, PageRules, Snippets};
use consentgate::trackers::{Blocklist, Blocklists};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;

fn page() -> String {
    let mut p = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<link rel="preconnect" href="https://www.google-analytics.com">
<link rel="stylesheet" href="/static/site.css">
<script async src="https://www.googletagmanager.com/gtag/js?id=G-ABC"></script>
<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}gtag('js',new Date());gtag('config','G-ABC');</script>
<script>!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){};t=b.createElement(e);t.async=!0;t.src=v;s=b.getElementsByTagName(e)[0];s.parentNode.insertBefore(t,s)}(window,document,'script','https://connect.facebook.net/en_US/fbevents.js');fbq('init','1234');fbq('track','PageView');</script>
<script src="/static/app.js" defer></script>
<script src="https://cdn.example.net/vendor/react.production.min.js"></script>
</head><body><header><nav><a href="/">Home</a> <a href="/shop">Shop</a></nav></header><main>
"#,
    );
    let mut i = 0;
    while p.len() < 100 * 1024 {
        // A product card as shop templates write it: verbose classes, microdata, one image.
        p.push_str(&format!(
            r#"<article class="product-card group relative flex flex-col overflow-hidden rounded-lg border border-gray-200 bg-white" itemscope itemtype="https://schema.org/Product" data-id="{i}">
  <div class="aspect-h-4 aspect-w-3 bg-gray-200 sm:aspect-none group-hover:opacity-75 sm:h-96"><img src="/images/products/{i}/main-800x1000.webp" alt="Product {i}, front view" loading="lazy" class="h-full w-full object-cover object-center sm:h-full sm:w-full"></div>
  <div class="flex flex-1 flex-col space-y-2 p-4"><h3 class="text-sm font-medium text-gray-900" itemprop="name"><a href="/products/{i}-a-fine-product"><span aria-hidden="true" class="absolute inset-0"></span>A fine product number {i}</a></h3>
  <p class="text-sm text-gray-500" itemprop="description">Made from recycled materials &amp; built to last. Free returns within 30 days; see our <a href="/returns">returns policy</a> for details.</p>
  <div class="flex flex-1 flex-col justify-end"><p class="text-sm italic text-gray-500">8 colors</p><p class="text-base font-medium text-gray-900" itemprop="offers" itemscope itemtype="https://schema.org/Offer"><span itemprop="price">{i}.99</span> <span itemprop="priceCurrency">EUR</span></p></div>
  <button type="button" class="add-to-cart mt-4 rounded-md bg-indigo-600 px-3 py-2 text-sm font-semibold text-white" data-sku="SKU-{i:05}">Add to cart</button></div>
</article>
"#
        ));
        if i % 10 == 0 {
            p.push_str(r#"<img src="https://www.facebook.com/tr?id=1234&ev=ViewContent" height="1" width="1">"#);
        }
        i += 1;
    }
    p.push_str(r#"</main><noscript><img height="1" width="1" src="https://www.facebook.com/tr?id=1234&ev=PageView&noscript=1"></noscript>
<script src="https://static.hotjar.com/c/hotjar-1.js?sv=6"></script></body></html>"#);
    p
}

fn bench(c: &mut Criterion) {
    let rules = Arc::new(PageRules {
        blocklists: Arc::new(Blocklists::new(vec![
            Blocklist::from_text(
                Category::Analytics,
                "analytics",
                "||google-analytics.com^\n||googletagmanager.com^\n||hotjar.com^\n",
            ),
            Blocklist::from_text(
                Category::Marketing,
                "marketing",
                "||facebook.com/tr^\n||connect.facebook.net^\n",
            ),
        ])),
        snippets: Snippets::new(default_snippets()).unwrap(),
    });
    let page = page();
    let mut g = c.benchmark_group("html");
    g.throughput(Throughput::Bytes(page.len() as u64));
    g.bench_function(
        format!("neutralize {} KB page, no consent", page.len() / 1024),
        |b| {
            b.iter(|| {
                let mut n =
                    Neutralizer::new(Grants::NONE, "https://shop.example/", rules.clone(), None)
                        .unwrap();
                let mut out = 0;
                // As a proxy receives it: 16 KiB chunks.
                for chunk in page.as_bytes().chunks(16 * 1024) {
                    out += n.write(black_box(chunk)).unwrap().len();
                }
                out += n.finish().unwrap().len();
                black_box(out)
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
