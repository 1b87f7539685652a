//! Wiring the pingora server: the proxy service on the configured listeners, the admin service,
//! SIGHUP reload, and (for `demo`) the built-in example origin.

use crate::admin::AdminApp;
use crate::config::ProxyConfig;
use crate::connections::{connections_that_fit, GuardedProxy, WaitForSlot};
use crate::proxy::ConsentGate;
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::tls::Acceptor;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Options from the command line that pingora itself acts on.
#[derive(Default, Clone)]
pub struct RunOptions {
    /// Take the listening sockets over from a running consentgate (graceful binary upgrade).
    pub upgrade: bool,
    /// Where the old and new process exchange sockets during an upgrade.
    pub upgrade_sock: Option<String>,
}

/// Serves until SIGTERM/SIGINT (or SIGQUIT for a graceful upgrade). Never returns.
pub fn run(
    runtime: Runtime,
    opts: RunOptions,
    extra: Vec<Box<dyn pingora::services::ServiceWithDependents>>,
) -> ! {
    crate::metrics::init();
    let proxy_conf = runtime.proxy.clone();
    let mut server = Server::new_with_opt_and_conf(
        Opt {
            upgrade: opts.upgrade,
            ..Opt::default()
        },
        server_conf(&proxy_conf, opts.upgrade_sock),
    );
    server.bootstrap();

    let runtime = Arc::new(ArcSwap::from_pointee(runtime));
    add_proxy_services(&mut server, &proxy_conf, &runtime);
    // pingora gives every service a runtime of its own: the admin listener runs on one thread,
    // the SIGHUP task on another, neither of them a proxy worker.
    if let Some(addr) = &proxy_conf.admin {
        add_admin_service(&mut server, addr, &runtime);
    }
    add_background_services(&mut server, &runtime);
    if let Some(cfg) = &proxy_conf.receipts {
        add_receipts(&mut server, cfg);
    }
    for s in extra {
        server.add_boxed_service(s);
    }
    tracing::info!(
        listen = ?proxy_conf.listen,
        listen_tls = ?proxy_conf.tls.listen_tls,
        admin = ?proxy_conf.admin,
        sites = runtime.load().sites.len(),
        "consentgate starting"
    );
    server.run_forever()
}

/// pingora's own settings: threads, the shutdown grace period, the upgrade socket.
fn server_conf(proxy_conf: &ProxyConfig, upgrade_sock: Option<String>) -> ServerConf {
    let mut conf = ServerConf {
        threads: proxy_conf.threads,
        // After SIGTERM or SIGQUIT pingora stops accepting, sleeps its grace period, then shuts
        // the tokio runtimes down, which drops every task at its next await: an in-flight
        // request is finished only within the grace period (`graceful_shutdown_timeout_seconds`
        // waits for blocking threads, not for tasks). So in-flight requests get their
        // `shutdown_timeout_seconds` inside the grace period; without it an upgrade lost the
        // requests in flight at the handover (tests/upgrade.rs).
        grace_period_seconds: Some(
            proxy_conf.grace_period_seconds + proxy_conf.shutdown_timeout_seconds,
        ),
        graceful_shutdown_timeout_seconds: Some(proxy_conf.shutdown_timeout_seconds),
        // Measured cheaper per request on this machine kind (docs/BENCHMARKS.md).
        work_stealing: false,
        ..ServerConf::default()
    };
    if let Some(sock) = upgrade_sock {
        conf.upgrade_sock = sock;
    }
    conf
}

/// The proxy service on the plain and the TLS listeners, both behind one connection guard.
fn add_proxy_services(
    server: &mut Server,
    proxy_conf: &ProxyConfig,
    runtime: &Arc<ArcSwap<Runtime>>,
) {
    // The proxy runs behind the connection guard (src/connections): timeouts, header limits and
    // a cap on open connections that pauses accepting when reached.
    let slots = Arc::new(Semaphore::new(connections_that_fit(
        proxy_conf.connections.max_connections,
    )));
    let guarded = GuardedProxy::new(
        pingora::proxy::http_proxy(&server.configuration, ConsentGate::new(runtime.clone())),
        runtime.clone(),
        slots.clone(),
    );
    // No L4 read buffer: pingora reads request headers and bodies into buffers of its own,
    // and the default 64 KiB one would be most of an idle connection's memory.
    let listener = |addr: &str| {
        ListenerConfig::tcp(addr).l4_buffer(L4BufferSettings {
            read: Some(0),
            write: None,
        })
    };
    if !proxy_conf.tls.listen_tls.is_empty() {
        // The TLS handshake is made by the guard (src/connections/h2.rs), within the header
        // timeout, with the certificate the SNI resolver picks from the current runtime.
        let acceptor = Acceptor::from_server_config(crate::tls::server_config(runtime.clone()));
        let mut tls = Service::new(
            "consentgate proxy (TLS)".to_string(),
            guarded.with_tls(acceptor),
        );
        tls.set_connection_filter(Arc::new(WaitForSlot {
            slots: slots.clone(),
        }));
        for addr in &proxy_conf.tls.listen_tls {
            tls.add_listener(listener(addr));
        }
        server.add_service(tls);
    }
    if !proxy_conf.listen.is_empty() {
        let mut proxy = Service::new("consentgate proxy".to_string(), guarded);
        proxy.set_connection_filter(Arc::new(WaitForSlot { slots }));
        for addr in &proxy_conf.listen {
            proxy.add_listener(listener(addr));
        }
        server.add_service(proxy);
    }
}

/// The admin listener, on one thread of its own.
fn add_admin_service(server: &mut Server, addr: &str, runtime: &Arc<ArcSwap<Runtime>>) {
    let mut admin = Service::new(
        "consentgate admin".to_string(),
        AdminApp {
            runtime: runtime.clone(),
        },
    );
    admin.threads = Some(1);
    admin.add_tcp(addr);
    server.add_service(admin);
}

/// SIGHUP reload and upstream health checks.
fn add_background_services(server: &mut Server, runtime: &Arc<ArcSwap<Runtime>>) {
    server.add_service(background_service(
        "SIGHUP reload",
        SighupReload {
            runtime: runtime.clone(),
        },
    ));
    // Active health checks and ejection expiry, on a thread of their own (src/upstreams.rs).
    server.add_service(background_service(
        "upstream health checks",
        crate::upstreams::UpstreamHealthChecks {
            runtime: runtime.clone(),
        },
    ));
}

/// Consent receipts: the writer thread, and a flush of its queue on SIGTERM/SIGQUIT. The
/// `[receipts]` table is read at start only (a reload does not move the store).
fn add_receipts(server: &mut Server, cfg: &crate::config::receipts::ReceiptsConfig) {
    match crate::receipts::queue::start(cfg) {
        Ok(queue) => {
            server.add_service(background_service(
                "receipt flush on shutdown",
                ReceiptFlush { queue },
            ));
        }
        // Availability first: the proxy serves without receipts, and says why.
        Err(e) => tracing::error!(error = %e, "consent receipts are off"),
    }
}

struct ReceiptFlush {
    queue: crate::receipts::queue::Queue,
}

#[async_trait]
impl BackgroundService for ReceiptFlush {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let _ = shutdown.changed().await;
        let queue = self.queue.clone();
        // Within the grace period; a store that does not answer costs at most 5 s.
        let flushed =
            tokio::task::spawn_blocking(move || queue.flush(std::time::Duration::from_secs(5)))
                .await;
        tracing::info!(flushed = matches!(flushed, Ok(true)), "receipts flushed");
    }
}

/// Reloads the configuration on SIGHUP. The task only waits: the work runs on a reload thread
/// ([`crate::reload`]).
struct SighupReload {
    runtime: Arc<ArcSwap<Runtime>>,
}

#[async_trait]
impl BackgroundService for SighupReload {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload through the admin port instead");
            return;
        };
        loop {
            tokio::select! {
                // The outcome is logged and counted by `reload`; no one to answer here.
                _ = hup.recv() => { let _ = crate::reload::reload(&self.runtime).await; }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Sets up logging: JSON lines on stdout (access log under target `access`), level from
/// `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_writer(std::io::stdout)
        .try_init();
}
