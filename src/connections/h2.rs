//! TLS handshakes and HTTP/2 connections, for [`super::GuardedProxy`].
//!
//! HTTP/2 has its own framing, flow control and header limits (enforced by the `h2` crate with
//! the options set here), so its bytes do not go through the HTTP/1 [`super::GuardedStream`];
//! what the guard adds is the same as for HTTP/1: deadlines on a connection that sends
//! nothing (the TLS handshake, the HTTP/2 preface, an idle connection), and the connection's
//! slot, held until the connection closes. The accept loop follows pingora's own
//! (`pingora::apps::HttpServerApp` for `ALPN::H2`): one session per stream, each served by
//! `process_new_http` on a task of its own, GOAWAY on shutdown.

use super::stream;
use crate::config::connections::ConnectionSettings;
use crate::metrics;
use crate::proxy::ConsentGate;
use pingora::apps::HttpServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::http::v2::server::{self as h2server, H2Accept, HttpSession};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Digest, Stream, IO};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What an HTTP/2 client connection must start with (RFC 9113 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams one HTTP/2 connection may have open at once (nginx's `http2_max_concurrent_streams`
/// default; pingora's is 100).
const MAX_CONCURRENT_STREAMS: u32 = 128;

/// How a wait before the first request ended early.
enum Cut {
    /// Past the header timeout.
    Timeout,
    /// Every slot was taken and this connection had waited a second or more (or the server
    /// is shutting down): its slot goes to a new connection, as a stalled HTTP/1 header's does.
    Reclaimed,
}

/// Waits for `work` (a handshake, a preface) within `timeout`, giving the slot up when asked
/// to (see [`stream::RECLAIM`]). Counted as a header timeout or a reclaimed header.
async fn before_first_request<T>(
    work: impl std::future::Future<Output = T>,
    timeout: Duration,
) -> Result<T, Cut> {
    let start = Instant::now();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(work, deadline);
    loop {
        tokio::select! {
            done = &mut work => return Ok(done),
            _ = &mut deadline => {
                metrics::CLIENT_TIMEOUTS.with_label_values(&["header"]).inc();
                return Err(Cut::Timeout);
            }
            _ = stream::RECLAIM.notified() => {
                if start.elapsed() >= stream::RECLAIM_AFTER
                    || stream::SHUTTING_DOWN.load(std::sync::atomic::Ordering::Relaxed)
                {
                    metrics::CONNECTIONS_RECLAIMED.with_label_values(&["header"]).inc();
                    return Err(Cut::Reclaimed);
                }
            }
        }
    }
}

/// The TLS handshake of an accepted connection, within `timeout` (a client that opens the
/// connection and never finishes its handshake is dropped). `None`: the handshake failed.
pub async fn tls_handshake(
    acceptor: &Acceptor,
    stream: Stream,
    timeout: Duration,
) -> Option<Stream> {
    // pingora hands the connection over as its boxed TCP stream; the handshake takes it typed.
    let l4 = match <dyn IO>::into_any(stream).downcast::<L4Stream>() {
        Ok(l4) => *l4,
        Err(_) => {
            tracing::error!("TLS listener got a connection that is not TCP");
            return None;
        }
    };
    match before_first_request(acceptor.tls_handshake(l4), timeout).await {
        Ok(Ok(tls)) => Some(Box::new(tls)),
        Ok(Err(e)) => {
            metrics::TLS_HANDSHAKE_FAILURES
                .with_label_values(&["error"])
                .inc();
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(Cut::Timeout) => {
            metrics::TLS_HANDSHAKE_FAILURES
                .with_label_values(&["timeout"])
                .inc();
            None
        }
        Err(Cut::Reclaimed) => None,
    }
}

/// Whether a plain connection starts with the HTTP/2 preface (h2c with prior knowledge). Reads
/// only as far as the bytes agree with the preface, so a short HTTP/1 request is not waited on,
/// and puts them back. `None`: the connection ended or sent nothing within `timeout`.
pub async fn starts_with_preface(stream: Stream, timeout: Duration) -> Option<(Stream, bool)> {
    let Ok(l4) = <dyn IO>::into_any(stream).downcast::<L4Stream>() else {
        return None;
    };
    let mut l4 = *l4;
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut n = 0;
    let read = async {
        while n < buf.len() {
            let got = l4.read(&mut buf[n..]).await?;
            if got == 0 {
                break;
            }
            n += got;
            if buf[..n] != H2_PREFACE[..n] {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    match before_first_request(read, timeout).await {
        Ok(Ok(())) if n > 0 => {}
        _ => return None,
    }
    l4.rewind(&buf[..n]);
    let h2 = buf[..n] == H2_PREFACE[..];
    Some((Box::new(l4), h2))
}

/// The `h2` server options from the connection settings: the decoded header list is bounded
/// like an HTTP/1 header (`max_request_header_bytes`), and so are concurrent streams.
fn options(settings: &ConnectionSettings) -> h2server::H2Options {
    let mut options = h2server::default_h2_options();
    options
        .max_header_list_size(u32::try_from(settings.max_request_header_bytes).unwrap_or(u32::MAX));
    options.max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    options
}

/// Serves one HTTP/2 connection until the client closes it, it stays idle past the keep-alive
/// timeout, or the server shuts down (GOAWAY, then the streams in flight finish). The client's
/// preface must come within `settings.client_header_timeout` (what is left of it).
pub async fn serve(
    proxy: &Arc<HttpProxy<ConsentGate>>,
    stream: Stream,
    settings: ConnectionSettings,
    shutdown: &ShutdownWatch,
) {
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    });
    // The client preface and SETTINGS must come within the header timeout.
    let handshake = h2server::handshake(stream, Some(options(&settings)));
    let mut conn = match before_first_request(handshake, settings.client_header_timeout).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => return,
    };
    let mut shutdown = shutdown.clone();
    let mut shutting_down = false;
    let mut streams = JoinSet::new();
    let mut idle_since = Instant::now();
    let idle_deadline = |since: Instant| since + settings.keepalive_timeout;
    loop {
        let idle = streams.is_empty();
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed(), if !shutting_down => {
                conn.graceful_shutdown();
                shutting_down = true;
                continue;
            }
            // A stream finished: look at idleness again.
            Some(_) = streams.join_next(), if !idle => {
                idle_since = Instant::now();
                continue;
            }
            _ = tokio::time::sleep_until(idle_deadline(idle_since)), if idle && !shutting_down => {
                metrics::CLIENT_TIMEOUTS.with_label_values(&["keepalive"]).inc();
                return;
            }
            // Every slot is taken: an idle connection gives its slot up, as HTTP/1 ones do.
            _ = stream::RECLAIM.notified(), if idle => {
                if idle_since.elapsed() >= stream::RECLAIM_AFTER {
                    metrics::CONNECTIONS_RECLAIMED
                        .with_label_values(&["keepalive"])
                        .inc();
                    return;
                }
                continue;
            }
            // Polling accept is also what drives the connection's I/O for every stream.
            accepted = HttpSession::from_h2_conn(&mut conn, digest.clone()) => accepted,
        };
        match accepted {
            Ok(Some(H2Accept::Session(h2))) => {
                idle_since = Instant::now();
                let proxy = proxy.clone();
                let shutdown = shutdown.clone();
                let send_timeout = settings.send_timeout;
                streams.spawn(async move {
                    let mut session = ServerSession::new_http2(h2);
                    session.set_write_timeout(Some(send_timeout));
                    proxy.process_new_http(session, &shutdown).await;
                });
            }
            // Answered or reset while it was accepted; its siblings go on.
            Ok(Some(H2Accept::Rejected)) => continue,
            // Closed (cleanly or not): the streams left cannot be answered any more.
            Ok(None) | Err(_) => break,
        }
    }
    // Streams still running end with the connection (as with pingora's loop).
    streams.detach_all();
}
