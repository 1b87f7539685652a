//! The request-path decisions on their own: reading consent and deciding request cookies for a
//! typical Cookie header, and judging a response's Set-Cookie lines.
//! Run: cargo bench --bench cookies

use consentgate::decide::{judge_set_cookie, plan_request};
use consentgate::policy::SitePolicy;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const CONFIG: &str = include_str!("../conf/example.toml");

fn bench(c: &mut Criterion) {
    // The policy alone: no runtime, no load balancer.
    let mut config = consentgate::config::parse(CONFIG, "bench.toml".as_ref()).unwrap();
    let gauge = prometheus::IntGauge::new("bench_expiry_cache_bytes", "unused").unwrap();
    let site =
        &SitePolicy::build(config.sites.remove(0), config.proxy.request_limits, gauge).unwrap();
    let typical: &[u8] = b"consent=analytics; SESSIONID=abc123; _ga=GA1.2.111.222; _ga_XYZ=GS1.1.1; _gid=GA1.2.3; _fbp=fb.1.123.456; _gcl_au=1.1.1; AWSALB=xyz";
    c.bench_function("plan_request typical 8-cookie header", |b| {
        b.iter(|| {
            plan_request(
                site,
                [black_box(typical)],
                false,
                &http::HeaderMap::new(),
                false,
            )
        })
    });
    let (plan, _) = plan_request(site, [typical], false, &http::HeaderMap::new(), false);
    let lines: [&[u8]; 3] = [
        b"SESSIONID=abc123; Path=/; HttpOnly",
        b"_ga=GA1.2.111.222; Path=/; Max-Age=63072000",
        b"_fbp=fb.1.123.456; Path=/",
    ];
    c.bench_function("judge 3 Set-Cookie lines", |b| {
        b.iter(|| {
            for l in lines {
                black_box(judge_set_cookie(site, &plan.consent, black_box(l)));
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
