//! [`GuardedStream`]: the client connection as pingora reads it, with the limits pingora has no
//! setting for. pingora times each read of a header separately (a header trickled a byte at a
//! time is never cut off), buffers up to 1 MiB of an incomplete header, and reads chunked bodies
//! leniently. This wrapper follows the bytes with a [`Tracker`] as pingora reads them and:
//!
//! - closes a connection idle between requests at its deadline (quietly, like nginx);
//! - answers `408` when a header is not complete by its deadline;
//! - answers `414`/`431` as soon as a header passes its limits, before it is buffered;
//! - answers `400` to chunked framing RFC 9112 does not allow, before pingora sees those bytes.
//!
//! Those answers are written here, straight to the socket, followed by a short lingering close
//! (so the client reads the answer instead of a reset), and the read then reports the end of the
//! stream. Reads of a body and writes keep pingora's own per-read/per-write timeouts.

use super::framing::{Phase, Reject, Tracker};
use crate::metrics;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::protocols::{
    raw_connect::ProxyDigest, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown,
    SocketDigest, Ssl, Stream, TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// How long a refused connection is drained after its answer, at most.
const LINGER: Duration = Duration::from_secs(2);
/// How many bytes a refused connection may still send while it lingers.
const LINGER_BYTES: usize = 256 * 1024;

pub struct GuardedStream {
    inner: Stream,
    tracker: Tracker,
    header_timeout: Duration,
    /// When the connection must have sent the first byte of its next request; `None` while a
    /// request is being served (pingora then only peeks for a client close).
    idle_deadline: Option<Instant>,
    /// When the header being read must be complete.
    header_deadline: Option<Instant>,
    /// Requests whose first byte was seen when the deadlines were last updated.
    started_seen: u64,
    /// Requests handed to pingora (sessions started) so far.
    sessions: u64,
    /// A response byte was written since the current session began.
    wrote: bool,
    timer: Option<Pin<Box<Sleep>>>,
    refusal: Option<Refusal>,
    /// Bytes of a request header read by [`Self::wait_for_header`], not yet handed to pingora.
    held: BytesMut,
    /// Since when the connection waits for a request or its header (for reclaiming).
    waiting_since: Instant,
    /// Armed while waiting: fires when every connection slot is taken.
    reclaim: Option<Pin<Box<Notified<'static>>>>,
}

/// Rung when a new connection finds every slot taken: connections that have waited at least
/// [`RECLAIM_AFTER`] for a request or for the rest of its header give their slot up (nginx, out
/// of connections, likewise closes its idle kept-alive ones). A client whose header arrives at
/// network speed is never in that state that long; a slowloris client always is.
pub static RECLAIM: Notify = Notify::const_new();

/// How long a connection must have waited to be reclaimed.
pub const RECLAIM_AFTER: Duration = Duration::from_secs(1);

/// Set when the server stops listening: connections idle between two requests close (rung
/// through [`RECLAIM`]), as pingora's own loop closes idle kept-alive connections then; a new
/// connection's first request is still served (`GuardedStream::closes_at_shutdown`).
pub static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

impl std::fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream")
            .field("inner", &self.inner)
            .field("phase", &self.tracker.phase())
            .finish()
    }
}

/// A connection being refused: its answer is written, the write side shut, the rest drained.
struct Refusal {
    answer: &'static [u8],
    written: usize,
    step: RefusalStep,
    drained: usize,
    /// The read's result once done: end of stream, or an error of this kind.
    error: Option<io::ErrorKind>,
}

#[derive(PartialEq, Eq)]
enum RefusalStep {
    Write,
    Flush,
    Shutdown,
    Drain,
    Done,
}

impl GuardedStream {
    /// Wraps a freshly accepted connection; its first request header must be complete within
    /// `header_timeout` from now.
    pub fn new(inner: Stream, tracker: Tracker, header_timeout: Duration) -> GuardedStream {
        let deadline = Instant::now() + header_timeout;
        GuardedStream {
            inner,
            tracker,
            header_timeout,
            idle_deadline: Some(deadline),
            header_deadline: Some(deadline),
            started_seen: 0,
            sessions: 0,
            wrote: false,
            timer: None,
            refusal: None,
            held: BytesMut::new(),
            waiting_since: Instant::now(),
            reclaim: None,
        }
    }

    /// Reads the session's request header, up to its end, into a buffer of this stream's own:
    /// `false` when the connection ended instead (closed, refused, or past a deadline). Until
    /// then pingora has allocated nothing for the request, so an idle connection or a header
    /// trickled in costs its socket, this stream and the bytes received, not pingora's request
    /// state and header buffer. pingora then reads the header from here.
    pub async fn wait_for_header(&mut self) -> bool {
        if self.tracker.started() >= self.sessions {
            // It began already (pipelined bytes that pingora holds): pingora reads the rest.
            return true;
        }
        std::future::poll_fn(|cx| loop {
            // Uninitialised: zeroing 4 KiB on every poll cost more than the rest of the read.
            let mut scratch = [MaybeUninit::<u8>::uninit(); 4096];
            let mut buf = ReadBuf::uninit(&mut scratch);
            match self.poll_read_tracked(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    self.held.extend_from_slice(buf.filled());
                    let begun = self.tracker.started() >= self.sessions;
                    if begun && self.tracker.phase() != Phase::Header {
                        return Poll::Ready(true);
                    }
                }
                Poll::Ready(_) => return Poll::Ready(false),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }

    /// Called before each request is handed to pingora. `keepalive` bounds the wait for the
    /// next request's first byte, unless that byte already arrived (pipelining).
    pub fn begin_session(
        &mut self,
        keepalive: Duration,
        header_timeout: Duration,
        tracker_limits: super::framing::HeadLimits,
    ) {
        let now = Instant::now();
        self.sessions += 1;
        self.wrote = false;
        self.waiting_since = now;
        self.header_timeout = header_timeout;
        self.tracker.set_limits(tracker_limits);
        if self.sessions > 1 {
            self.idle_deadline = if self.tracker.started() < self.sessions {
                Some(now + keepalive)
            } else {
                None
            };
        }
    }

    /// Keeps the deadlines in step with the tracker after it was fed.
    fn after_feed(&mut self) {
        let started = self.tracker.started();
        if started != self.started_seen {
            // A new request began: no idle wait any more, and its header has its own deadline
            // (the first request's counts from the accept, as in nginx).
            let now = Instant::now();
            if started > 1 || self.header_deadline.is_none() {
                self.header_deadline = Some(now + self.header_timeout);
            }
            self.idle_deadline = None;
            self.started_seen = started;
            self.waiting_since = now;
        }
    }

    /// Whether the server shuts down and this connection waits between two requests, with no
    /// byte of the next one received: the only state in which closing loses nothing (a client
    /// retries a request on a kept-alive connection that closed without answering, RFC 9112
    /// section 9.3.1). A new connection was accepted to be answered, and none of its clients
    /// would retry: its first request (and a header being received) is served, within the header
    /// deadline, while the listening socket already belongs to the next process (graceful
    /// upgrade, tests/upgrade.rs).
    fn closes_at_shutdown(&self) -> bool {
        SHUTTING_DOWN.load(Ordering::Relaxed)
            && self.sessions > 1
            && self.tracker.started() < self.sessions
    }

    /// Whether the connection is asked to give its slot up (it waits and has waited long, or
    /// the server is shutting down). The `Notified` stays registered between polls.
    fn poll_reclaim(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.closes_at_shutdown() {
                return true;
            }
            let n = self
                .reclaim
                .get_or_insert_with(|| Box::pin(RECLAIM.notified()));
            if n.as_mut().poll(cx).is_pending() {
                return false;
            }
            self.reclaim = None;
            if self.closes_at_shutdown() || self.waiting_since.elapsed() >= RECLAIM_AFTER {
                return true;
            }
            // Too recent: arm again for the next ring.
        }
    }

    /// The deadline that applies to a read now, and what happens when it passes.
    fn deadline(&self) -> Option<(Instant, bool)> {
        match self.tracker.phase() {
            Phase::Idle => self.idle_deadline.map(|d| (d, false)),
            Phase::Header => self.header_deadline.map(|d| (d, true)),
            Phase::Body | Phase::Tunnel => None,
        }
    }

    fn refuse(&mut self, status: u16, error: Option<io::ErrorKind>) {
        // Never in the middle of a response: then only the connection is cut.
        let answer = if self.wrote { &b""[..] } else { answer(status) };
        self.refusal = Some(Refusal {
            answer,
            written: 0,
            step: RefusalStep::Write,
            drained: 0,
            error,
        });
        self.timer = Some(Box::pin(tokio::time::sleep(LINGER)));
    }

    /// Writes the refusal's answer, shuts the write side and drains what the client still
    /// sends for a moment (a close with unread input would reset the connection and could
    /// destroy the answer before the client reads it).
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(r) = self.refusal.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut inner = Pin::new(&mut self.inner);
        loop {
            match r.step {
                RefusalStep::Write => {
                    if r.written >= r.answer.len() {
                        r.step = RefusalStep::Flush;
                        continue;
                    }
                    match ready!(inner.as_mut().poll_write(cx, &r.answer[r.written..])) {
                        Ok(n) if n > 0 => r.written += n,
                        _ => r.step = RefusalStep::Done,
                    }
                }
                RefusalStep::Flush => {
                    r.step = match ready!(inner.as_mut().poll_flush(cx)) {
                        Ok(()) => RefusalStep::Shutdown,
                        Err(_) => RefusalStep::Done,
                    }
                }
                RefusalStep::Shutdown => {
                    r.step = match ready!(inner.as_mut().poll_shutdown(cx)) {
                        Ok(()) => RefusalStep::Drain,
                        Err(_) => RefusalStep::Done,
                    }
                }
                RefusalStep::Drain => {
                    if let Some(t) = self.timer.as_mut() {
                        if t.as_mut().poll(cx).is_ready() {
                            r.step = RefusalStep::Done;
                            continue;
                        }
                    }
                    let mut scratch = [MaybeUninit::<u8>::uninit(); 4096];
                    let mut buf = ReadBuf::uninit(&mut scratch);
                    match ready!(inner.as_mut().poll_read(cx, &mut buf)) {
                        Ok(()) if !buf.filled().is_empty() && r.drained < LINGER_BYTES => {
                            r.drained += buf.filled().len();
                        }
                        _ => r.step = RefusalStep::Done,
                    }
                }
                RefusalStep::Done => {
                    return Poll::Ready(match r.error {
                        None => Ok(()),
                        Some(kind) => Err(io::Error::new(kind, "request refused")),
                    });
                }
            }
        }
    }
}

/// The canned answer for a refusal status.
fn answer(status: u16) -> &'static [u8] {
    match status {
        408 => b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        414 => b"HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        _ => b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.held.is_empty() {
            return this.poll_read_tracked(cx, buf);
        }
        // Header bytes already followed by the tracker go first.
        let n = this.held.len().min(buf.remaining());
        buf.put_slice(&this.held.split_to(n));
        if this.held.is_empty() {
            // Give the memory back: the buffer is only for a header being received.
            this.held = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl GuardedStream {
    /// A read from the client, followed by the tracker and bounded by the deadlines.
    fn poll_read_tracked(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self;
        if this.refusal.is_some() {
            return this.poll_refusal(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if new.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                match this.tracker.feed(new) {
                    Ok(()) => {
                        this.after_feed();
                        Poll::Ready(Ok(()))
                    }
                    Err(reject) => {
                        // pingora never sees these bytes.
                        buf.set_filled(before);
                        metrics::CLIENT_REFUSALS
                            .with_label_values(&[reject.reason()])
                            .inc();
                        let error =
                            (reject == Reject::BadChunk).then_some(io::ErrorKind::InvalidData);
                        this.refuse(reject.status(), error);
                        this.poll_refusal(cx)
                    }
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadline(cx),
        }
    }

    /// A read that found nothing yet: pending until the deadline passes or the connection is
    /// reclaimed, then the 408 refusal (in a header) or a quiet close (idle).
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((deadline, in_header)) = self.deadline() else {
            return Poll::Pending;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        // Re-armed only when the deadline moved earlier; a later one is checked when the
        // timer fires. A busy kept-alive connection then re-arms no timer per request.
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        let mut expired = false;
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= deadline {
                expired = true;
                break;
            }
            timer.as_mut().reset(deadline);
        }
        let reclaimed = !expired && self.poll_reclaim(cx);
        if !expired && !reclaimed {
            return Poll::Pending;
        }
        let phase = match (in_header, self.sessions > 1) {
            (true, _) | (false, false) => "header",
            (false, true) => "keepalive",
        };
        if reclaimed {
            metrics::CONNECTIONS_RECLAIMED
                .with_label_values(&[phase])
                .inc();
        } else {
            metrics::CLIENT_TIMEOUTS.with_label_values(&[phase]).inc();
        }
        if in_header {
            self.refuse(408, None);
            self.poll_refusal(cx)
        } else {
            // Idle past its time: end the connection quietly (pingora sees a close).
            self.idle_deadline = None;
            self.refusal = Some(Refusal {
                answer: b"",
                written: 0,
                step: RefusalStep::Done,
                drained: 0,
                error: None,
            });
            Poll::Ready(Ok(()))
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.wrote = true;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.wrote = true;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// The rest of pingora's stream interface is the wrapped stream's.

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for GuardedStream {}
