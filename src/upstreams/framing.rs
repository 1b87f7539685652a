//! Origin responses that carry both `Content-Length` and `Transfer-Encoding` are refused.
//!
//! RFC 9112 §6.3: such a message "might indicate an attempt to perform request smuggling or
//! response splitting and ought to be handled as an error". pingora's HTTP/1 client silently
//! drops the `Content-Length` and frames by `Transfer-Encoding` (which §6.3 also allows), and it
//! does so before any hook sees the header, so nothing above it can tell the case apart or count
//! it. nginx answers such an origin with `502` ("upstream sent "Content-Length" and
//! "Transfer-Encoding" headers at the same time"); so does consentgate.
//!
//! [`WatchedConnect`] opens plain-HTTP origin connections the way pingora does and wraps each in
//! a [`WatchedOrigin`], which follows the response heads with a [`HeadScan`] as pingora reads
//! them. When a head has both fields, the read that completes the head fails with
//! [`FramingConflict`]: pingora then answers `502` without ever parsing that head, closes the
//! origin connection (a connection whose framing is in doubt cannot be reused), and the request
//! is counted in `consentgate_upstream_errors_total{error="ContentLengthWithTransferEncoding"}`
//! (see [`upstream_error_label`]).
//!
//! Origins reached over TLS are not wrapped (the bytes at this layer are ciphertext); pingora's
//! own handling, one framing forwarded, applies to them.
//!
//! Cost: one indirect call per socket read and write, plus one `memchr` per header line of each
//! response head. Body bytes are not looked at.

use async_trait::async_trait;
use pingora::connectors::L4Connect;
use pingora::protocols::l4::ext::{connect, connect_uds, set_tcp_keepalive};
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The label [`upstream_error_label`] gives a refused head.
pub const CONFLICT_LABEL: &str = "ContentLengthWithTransferEncoding";

/// The connector every plain-HTTP origin peer uses (`HttpPeer::options.custom_l4`).
pub static CONNECT: LazyLock<Arc<dyn L4Connect + Send + Sync>> =
    LazyLock::new(|| Arc::new(WatchedConnect));

/// The `error` label of `consentgate_upstream_errors_total` (and the access log's
/// `upstream_error`) for `e`: pingora's error type, or [`CONFLICT_LABEL`] for a head this
/// module refused (pingora reports that one as a `ReadError`).
pub fn upstream_error_label(e: &pingora::Error) -> &'static str {
    let refused = e
        .root_cause()
        .downcast_ref::<io::Error>()
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| inner.is::<FramingConflict>());
    if refused {
        CONFLICT_LABEL
    } else {
        e.etype().as_str()
    }
}

/// The error a read returns when the head it completes has both framing fields.
#[derive(Debug)]
pub struct FramingConflict;

impl std::fmt::Display for FramingConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("origin response has both Content-Length and Transfer-Encoding (RFC 9112 6.3)")
    }
}

impl std::error::Error for FramingConflict {}

/// How many bytes of a header line are kept when the line is split across reads: enough for
/// `transfer-encoding` followed by a few spaces and the colon.
const PREFIX: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a response head (the connection is new, or a request went out after the last
    /// final head).
    Head,
    /// After a final head: body bytes, or an idle pooled connection. Not looked at.
    Body,
    /// After `101 Switching Protocols`: the connection is a tunnel, never looked at again.
    Tunnel,
}

/// Follows the response heads in the bytes an origin sends (pure: no I/O, fed by
/// [`WatchedOrigin`]). Heads end at an empty line (`\r\n` or a bare `\n`, as `httparse` allows);
/// `1xx` heads other than `101` are followed by another head.
#[derive(Debug)]
pub struct HeadScan {
    state: State,
    /// The start of the current line when it began in an earlier read.
    prefix: [u8; PREFIX],
    prefix_len: usize,
    /// Bytes of the current line seen so far (a line split across reads).
    line_len: usize,
    status_line: bool,
    interim: bool,
    switching: bool,
    content_length: bool,
    transfer_encoding: bool,
}

impl Default for HeadScan {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadScan {
    pub fn new() -> Self {
        HeadScan {
            state: State::Head,
            prefix: [0; PREFIX],
            prefix_len: 0,
            line_len: 0,
            status_line: true,
            interim: false,
            switching: false,
            content_length: false,
            transfer_encoding: false,
        }
    }

    fn start_head(&mut self) {
        *self = HeadScan::new();
    }

    /// Bytes are being written to the origin. After a final head, a write that starts with a
    /// request line starts the next exchange on the kept-alive connection. (A request body
    /// written after an early response does not start with a method and a space, so it does
    /// not re-arm the scan.)
    pub fn on_write(&mut self, bytes: &[u8]) {
        if self.state == State::Body && starts_with_request_line(bytes) {
            self.start_head();
        }
    }

    /// Bytes read from the origin. `Err` when a head they complete has both framing fields.
    pub fn on_read(&mut self, mut bytes: &[u8]) -> Result<(), FramingConflict> {
        while self.state == State::Head && !bytes.is_empty() {
            match memchr::memchr(b'\n', bytes) {
                None => {
                    self.keep(bytes);
                    return Ok(());
                }
                Some(at) => {
                    let (line, rest) = (&bytes[..at], &bytes[at + 1..]);
                    bytes = rest;
                    if self.line_len == 0 {
                        let len = line.len();
                        self.end_line(&line[..len.min(PREFIX)], len)?;
                    } else {
                        self.keep(line);
                        let (prefix, len) = (self.prefix, self.line_len);
                        self.end_line(&prefix[..self.prefix_len], len)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Part of a line whose end is in a later read.
    fn keep(&mut self, part: &[u8]) {
        let room = PREFIX - self.prefix_len;
        let take = part.len().min(room);
        self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&part[..take]);
        self.prefix_len += take;
        self.line_len += part.len();
    }

    /// A complete line: `start` is its first bytes (at most [`PREFIX`]), `len` its length
    /// without the `\n`.
    fn end_line(&mut self, start: &[u8], len: usize) -> Result<(), FramingConflict> {
        self.prefix_len = 0;
        self.line_len = 0;
        let blank = len == 0 || (len == 1 && start[0] == b'\r');
        if self.status_line {
            // A head starts at its status line; `httparse` skips empty lines before it.
            if !blank {
                self.status_line = false;
                // `HTTP/1.1 1xx`: the status code's first digit is byte 9.
                let code = start.get(9..12).unwrap_or_default();
                self.interim = code.first() == Some(&b'1');
                self.switching = code == b"101";
            }
            return Ok(());
        }
        if blank {
            let conflict = self.content_length && self.transfer_encoding;
            if self.switching {
                self.state = State::Tunnel;
            } else if self.interim {
                self.start_head();
            } else {
                self.state = State::Body;
            }
            return if conflict {
                Err(FramingConflict)
            } else {
                Ok(())
            };
        }
        if field_is(start, b"content-length") {
            self.content_length = true;
        } else if field_is(start, b"transfer-encoding") {
            self.transfer_encoding = true;
        }
        Ok(())
    }
}

/// Whether a header line is the field `name` (lower case): the name in any case, then optional
/// spaces or tabs (pingora's parser allows them in responses), then `:`.
fn field_is(line: &[u8], name: &[u8]) -> bool {
    if line.len() <= name.len() || !line[..name.len()].eq_ignore_ascii_case(name) {
        return false;
    }
    line[name.len()..]
        .iter()
        .find(|&&b| b != b' ' && b != b'\t')
        .is_some_and(|&b| b == b':')
}

/// `METHOD ` at the start: upper-case letters (and `-`, `_`), then a space.
fn starts_with_request_line(bytes: &[u8]) -> bool {
    let method = bytes
        .iter()
        .take(21)
        .take_while(|b| b.is_ascii_uppercase() || **b == b'-' || **b == b'_')
        .count();
    method > 0 && bytes.get(method) == Some(&b' ')
}

/// An origin connection whose response heads are followed by a [`HeadScan`].
#[derive(Debug)]
pub struct WatchedOrigin {
    inner: TcpStream,
    scan: HeadScan,
}

impl WatchedOrigin {
    pub fn new(inner: TcpStream) -> Self {
        WatchedOrigin {
            inner,
            scan: HeadScan::new(),
        }
    }
}

impl AsyncRead for WatchedOrigin {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if this.scan.state == State::Head {
            if let Err(conflict) = this.scan.on_read(&buf.filled()[before..]) {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, conflict)));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WatchedOrigin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.scan.on_write(buf);
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            this.scan.on_write(first);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl VirtualSocket for WatchedOrigin {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> io::Result<()> {
        match opt {
            VirtualSockOpt::NoDelay => self.inner.set_nodelay(true),
            VirtualSockOpt::KeepAlive(ka) => {
                set_tcp_keepalive(&self.inner, &ka).map_err(io::Error::other)
            }
            _ => Ok(()),
        }
    }
}

/// Connects to a plain-HTTP origin as pingora does (same socket options and error types:
/// `ConnectRefused`, `ConnectTimedout`, ...; pingora applies the connect timeout around this
/// call) and wraps the connection in a [`WatchedOrigin`].
#[derive(Debug)]
pub struct WatchedConnect;

#[async_trait]
impl L4Connect for WatchedConnect {
    async fn connect(&self, addr: &SocketAddr) -> pingora::Result<Stream> {
        match addr {
            SocketAddr::Inet(addr) => {
                let tcp = connect(addr, None).await?;
                let watched = VirtualSocketStream::new(Box::new(WatchedOrigin::new(tcp)));
                Ok(watched.into())
            }
            SocketAddr::Unix(addr) => {
                let path = addr.as_pathname().ok_or_else(|| {
                    pingora::Error::explain(pingora::ErrorType::ConnectError, "unnamed socket")
                })?;
                Ok(connect_uds(path).await?.into())
            }
        }
    }
}

#[cfg(test)]
mod tests;
