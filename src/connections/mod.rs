//! What one client connection may cost: timeouts, header limits, a cap on connections, and the
//! request checks of RFC 9112 that pingora leaves to the application.
//!
//! pingora serves each accepted connection through a [`ServerApp`]; [`GuardedProxy`] is that
//! app for the proxy. It does what pingora's own HTTP/1 loop does (one `process_new_http` per
//! request on a kept-alive connection) with three additions:
//!
//! - the connection is wrapped in a [`stream::GuardedStream`], which enforces the whole-header
//!   deadline, the keep-alive deadline and the header limits, and refuses malformed chunked
//!   framing ([`framing`] is its pure decision logic);
//! - each request gets the body-read and send timeouts and HTTP/1.1 pipelining (responses in
//!   request order) on its pingora session;
//! - a connection holds one of `max_connections` slots for its lifetime. [`WaitForSlot`], the
//!   listener's connection filter, pauses the accept loop while none is free, so new
//!   connections wait in the kernel's accept queue (costing no file descriptor, as with nginx's
//!   `worker_connections`) and the connections being served are not disturbed. While it waits,
//!   connections that only wait themselves (idle for a second or more, or stuck in a header for
//!   a second or more: slowloris) are asked to give their slot up.
//!
//! [`request`] checks each parsed request header (Host, target form, transfer codings).
//!
//! On a `listen_tls` listener the connection first makes its TLS handshake here (within the
//! header timeout, holding its slot); a client that chose HTTP/2 by ALPN, or that sends the
//! HTTP/2 preface on a plain listener when `h2c` is on, is served by [`h2`] instead of the
//! HTTP/1 loop.

pub mod framing;
pub mod h2;
pub mod request;
pub mod response;
pub mod stream;

use crate::config::connections::ConnectionSettings;
use crate::metrics;
use crate::proxy::ConsentGate;
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use framing::{HeadLimits, Tracker};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::listeners::tls::Acceptor;
use pingora::listeners::ConnectionFilter;
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN, IO};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stream::GuardedStream;
use tokio::sync::Semaphore;

/// The proxy's connection handler.
pub struct GuardedProxy {
    proxy: Arc<HttpProxy<ConsentGate>>,
    runtime: Arc<ArcSwap<Runtime>>,
    slots: Arc<Semaphore>,
    /// Set on the `listen_tls` listeners' handler.
    tls: Option<Arc<Acceptor>>,
}

impl GuardedProxy {
    pub fn new(
        proxy: HttpProxy<ConsentGate>,
        runtime: Arc<ArcSwap<Runtime>>,
        slots: Arc<Semaphore>,
    ) -> Self {
        GuardedProxy {
            proxy: Arc::new(proxy),
            runtime,
            slots,
            tls: None,
        }
    }

    /// The same proxy, slots and runtime, for TLS listeners: connections make their TLS
    /// handshake with `acceptor` first.
    pub fn with_tls(&self, acceptor: Acceptor) -> Self {
        GuardedProxy {
            proxy: self.proxy.clone(),
            runtime: self.runtime.clone(),
            slots: self.slots.clone(),
            tls: Some(Arc::new(acceptor)),
        }
    }
}

/// The header limits of the settings.
pub fn head_limits(s: &ConnectionSettings) -> HeadLimits {
    HeadLimits {
        max_header_bytes: s.max_request_header_bytes,
        max_headers: s.max_request_headers,
        max_uri_bytes: s.max_uri_bytes,
    }
}

/// Counts a connection open while it lives.
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        metrics::CONNECTIONS_OPEN.inc();
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::CONNECTIONS_OPEN.dec();
    }
}

impl GuardedProxy {
    /// The TLS handshake, or on a plain listener the look for an h2c preface; returns the
    /// stream to serve and whether it speaks HTTP/2. `None`: the connection is done.
    async fn handshake(
        &self,
        stream: Stream,
        settings: &ConnectionSettings,
        h2c: bool,
    ) -> Option<(Stream, bool)> {
        Some(match &self.tls {
            Some(acceptor) => {
                let tls =
                    h2::tls_handshake(acceptor, stream, settings.client_header_timeout).await?;
                let h2 = matches!(tls.selected_alpn_proto(), Some(ALPN::H2));
                (tls, h2)
            }
            None if h2c => h2::starts_with_preface(stream, settings.client_header_timeout).await?,
            None => (stream, false),
        })
    }

    /// Serves HTTP/1 requests on one connection, one guarded session after the other.
    async fn serve_http1(
        self: &Arc<Self>,
        stream: Stream,
        settings: &ConnectionSettings,
        first_header_timeout: Duration,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut guarded = Box::new(GuardedStream::new(
            stream,
            Tracker::new(head_limits(settings)),
            first_header_timeout,
        ));
        let mut persistent: Option<HttpPersistentSettings> = None;
        let mut first = true;
        loop {
            // Read per request, so a reload applies to the next request.
            let settings = self.runtime.load().proxy.connections;
            guarded.begin_session(
                settings.keepalive_timeout,
                settings.client_header_timeout,
                head_limits(&settings),
            );
            // An idle connection waits here, small, for its next request (or its deadline, a
            // reclaim, or the server's shutdown: see `stream::SHUTTING_DOWN`). A new connection's
            // first request is served even after the shutdown began (see
            // `GuardedStream::closes_at_shutdown`).
            if (*shutdown.borrow() && !first) || !guarded.wait_for_header().await {
                return None;
            }
            first = false;
            let mut session = ServerSession::new_http1(guarded);
            match persistent.take() {
                Some(p) => p.apply_to_session(&mut session),
                // pingora's own wait for the first header bytes; the guarded stream's deadline
                // always comes first, this is only a backstop.
                None => session.set_keepalive(Some(settings.client_header_timeout.as_secs() + 2)),
            }
            if *shutdown.borrow() {
                session.set_keepalive(None);
            }
            session.set_pipelining_enabled(true);
            session.set_read_timeout(Some(settings.client_body_timeout));
            session.set_write_timeout(Some(settings.send_timeout));
            let reused = self.proxy.process_new_http(session, shutdown).await?;
            let (stream, p) = reused.consume();
            persistent = p;
            guarded = <dyn IO>::into_any(stream)
                .downcast::<GuardedStream>()
                .ok()?;
        }
    }
}

#[async_trait]
impl ServerApp for GuardedProxy {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Normally free at once (the accept loop waited for it); another listener's accept
        // loop may have taken it in between, and then this one connection waits.
        let _slot = self.slots.clone().acquire_owned().await.ok()?;
        let _open = OpenConnection::new();
        let (settings, h2c) = {
            let rt = self.runtime.load();
            (rt.proxy.connections, rt.proxy.tls.h2c)
        };
        // The first request header's deadline counts from the accept (as nginx's does), the
        // TLS handshake and the h2c preface included.
        let accepted = tokio::time::Instant::now();
        let (stream, h2) = self.handshake(stream, &settings, h2c).await?;
        let first_header_timeout = settings
            .client_header_timeout
            .saturating_sub(accepted.elapsed());
        if h2 {
            let settings = ConnectionSettings {
                client_header_timeout: first_header_timeout,
                ..settings
            };
            h2::serve(&self.proxy, stream, settings, shutdown).await;
            return None;
        }
        self.serve_http1(stream, &settings, first_header_timeout, shutdown)
            .await
    }

    async fn cleanup(&self) {
        // Connections waiting for a request close now; those in a request finish it.
        stream::SHUTTING_DOWN.store(true, std::sync::atomic::Ordering::Relaxed);
        stream::RECLAIM.notify_waiters();
        self.proxy.http_cleanup().await;
    }
}

/// The listener's connection filter: holds the accept loop while every slot is taken.
#[derive(Debug)]
pub struct WaitForSlot {
    pub slots: Arc<Semaphore>,
}

#[async_trait]
impl ConnectionFilter for WaitForSlot {
    async fn should_accept(&self, _addr: Option<&SocketAddr>) -> bool {
        if self.slots.available_permits() > 0 {
            return true;
        }
        metrics::CONNECTION_LIMIT_WAITS.inc();
        // Ask connections that only wait (idle, or in a stalled header) to give their slot up,
        // and ask again each second while none is free. The connection takes its own slot in
        // `process_new`.
        loop {
            stream::RECLAIM.notify_waiters();
            tokio::select! {
                _ = self.slots.acquire() => return true,
                _ = tokio::time::sleep(stream::RECLAIM_AFTER) => {}
            }
        }
    }
}

/// File descriptors a process keeps besides client connections (listeners, logs, config).
const RESERVED_FDS: u64 = 256;

/// Raises the soft open-files limit to the hard one (as nginx's `worker_rlimit_nofile` or Go's
/// runtime do) and returns how many client connections fit in it: each may hold a connection
/// to an origin too, so half of what is left after a reserve. Past the descriptor limit,
/// accept() fails and pingora's accept loop sleeps a second per failure: waiting for a slot is
/// the better way to queue.
pub fn connections_that_fit(wanted: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return wanted;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    let fit = (lim.rlim_cur.saturating_sub(RESERVED_FDS) / 2).max(1);
    let fit = usize::try_from(fit).unwrap_or(usize::MAX);
    if fit < wanted {
        tracing::warn!(
            max_connections = wanted,
            open_files_limit = lim.rlim_cur,
            using = fit,
            "max_connections does not fit in the open-files limit; raise LimitNOFILE (systemd) or ulimit -n"
        );
    }
    wanted.min(fit)
}

/// The request checks of [`request`], applied to a pingora session: a refused request is
/// answered with its status and the connection closed; an absolute-form target is rewritten to
/// origin form with its authority as `Host`; an HTTP/1.0 client is spared interim (1xx) responses.
pub fn check_request(session: &mut pingora::proxy::Session) -> pingora::Result<()> {
    use pingora::{Error, ErrorType};
    match request::check(session.req_header()) {
        Err(refusal) => {
            metrics::CLIENT_REFUSALS
                .with_label_values(&[refusal.reason()])
                .inc();
            session.set_keepalive(None);
            Error::e_explain(
                ErrorType::HTTPStatus(refusal.status()),
                format!("request refused: {}", refusal.reason()),
            )
        }
        Ok(accepted) => {
            if !response::interim_responses(session.req_header().version) {
                if let ServerSession::H1(h1) = session.as_downstream_mut() {
                    h1.set_ignore_info_resp(true);
                }
            }
            if accepted.upgrade {
                // The wire tracker stops at an upgrade; unless the answer is a 101 (a tunnel,
                // which keep-alive does not concern) the connection must not serve another
                // request it would not follow.
                session.set_keepalive(None);
            }
            if let Some(cookie) = accepted.joined_cookie {
                // Joined from valid header values with "; ": a valid value (else left as is).
                if let Ok(v) = http::HeaderValue::from_bytes(&cookie) {
                    let req = session.req_header_mut();
                    req.remove_header(&http::header::COOKIE);
                    req.append_header(http::header::COOKIE, v)?;
                }
            }
            if let Some((uri, authority)) = accepted.origin_form {
                let req = session.req_header_mut();
                req.set_uri(uri);
                req.insert_header(http::header::HOST, authority)?;
            }
            Ok(())
        }
    }
}

/// The status for a request that failed: pingora's choice, except `504` for an origin that
/// timed out and `408` for a client body that stopped arriving.
pub fn error_status(e: &pingora::Error) -> u16 {
    use pingora::{ErrorSource, ErrorType::*};
    match e.etype() {
        HTTPStatus(code) => *code,
        _ => match e.esource() {
            ErrorSource::Upstream if upstream_timeout_phase(e).is_some() => 504,
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ReadTimedout => 408,
                // The connection is gone or not reading: nothing can be sent.
                WriteError | ReadError | ConnectionClosed | WriteTimedout => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// `Some(phase)` when an origin timed out.
pub fn upstream_timeout_phase(e: &pingora::Error) -> Option<&'static str> {
    use pingora::{ErrorSource, ErrorType::*};
    if *e.esource() != ErrorSource::Upstream {
        return None;
    }
    match e.etype() {
        ConnectTimedout => Some("connect"),
        ReadTimedout => Some("read"),
        WriteTimedout => Some("write"),
        _ => None,
    }
}

/// `Some(phase)` when a client timed out after its header (`body` or `send`).
pub fn client_timeout_phase(e: &pingora::Error) -> Option<&'static str> {
    use pingora::{ErrorSource, ErrorType::*};
    if *e.esource() != ErrorSource::Downstream {
        return None;
    }
    match e.etype() {
        ReadTimedout => Some("body"),
        WriteTimedout => Some("send"),
        _ => None,
    }
}
