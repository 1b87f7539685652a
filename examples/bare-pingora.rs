//! The floor under any pingora-based proxy, for benches/cpu-per-request.sh: pingora's own
//! HTTP/1 proxy loop with nothing but an upstream choice (no consent, no connection guard, no
//! forwarding headers, no metrics), one worker thread, the same allocator and build profile as
//! consentgate. What it costs per request is what consentgate cannot go below without
//! changing pingora. Usage: bare-pingora LISTEN UPSTREAM (e.g. 127.0.0.1:18087 127.0.0.1:18081)

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

// As consentgate's: mimalloc, every call counted in a build with the `alloc-count` feature
// (benches/allocations-per-request.sh; the totals are answered on `GET /__allocations`).
consentgate::global_allocator!();

struct Bare {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    #[cfg(feature = "alloc-count")]
    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if session.req_header().uri.path() != "/__allocations" {
            return Ok(false);
        }
        let (allocations, bytes) = consentgate::alloc_count::totals();
        let body = format!("allocations {allocations}\nbytes {bytes}\n");
        let mut resp = ResponseHeader::build(200, Some(1))?;
        resp.insert_header("Content-Length", body.len().to_string())?;
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body.into()), true).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare-pingora LISTEN UPSTREAM");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads: 1,
        // As consentgate runs it (src/server.rs).
        work_stealing: false,
        // The benchmarks stop it with SIGTERM: no grace period to wait out.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, Bare { upstream });
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever()
}
