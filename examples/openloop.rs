//! Open-loop HTTP/1.1 load generator for latency benchmarks (`benches/latency.sh`).
//!
//! Requests are *scheduled* at a constant rate, independent of how fast responses come back,
//! and each request's latency is measured from its scheduled time to the last byte of its
//! response (the wrk2 method). A saturated proxy therefore shows up as queueing: a request whose
//! time comes while every connection is busy waits for one, and that wait counts. A closed-loop
//! tool (wrk, or h2load's `--rps`, which keeps one request in flight per HTTP/1.1 connection
//! and times from the send) would instead slow down with the server and hide that wait
//! ("coordinated omission").
//!
//! One current-thread tokio runtime, a fixed pool of keep-alive connections (default 64), raw
//! HTTP/1.1: one prebuilt request, responses framed by Content-Length or chunked encoding
//! (httparse). The schedule is kept by a `timerfd` (microsecond wake-ups; tokio's own timer
//! ticks in milliseconds, which would add up to a millisecond of generator lag to requests).
//!
//! Output: one line of `key=value` (latencies in microseconds), e.g.
//! `offered_rps=20000 achieved_rps=19998.7 count=200000 errors=0 non2xx=0 unfinished=0
//! p50_us=95.1 p90_us=130.2 p99_us=210.7 p99_9_us=900.3 max_us=1500.2 responses=240000`
//! (`responses`: every complete response, warm-up included).
//! Memory is bounded: one 8-byte sample per measured request (rate x duration) and, when the
//! server falls behind, one 8-byte scheduled time per waiting request (same bound).
//!
//! ```text
//! cargo run --release --example openloop -- --url http://127.0.0.1:18084/ --rate 20000 \
//!     --duration 10 --warmup 2 -H 'Cookie: consent=analytics'
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::Notify;

#[derive(Parser, Debug)]
#[command(about = "Open-loop (constant-rate) HTTP/1.1 latency measurement, wrk2-style")]
struct Args {
    /// Target URL, http:// only (host:port and path; the Host header is taken from it).
    #[arg(long)]
    url: String,
    /// Requests scheduled per second.
    #[arg(long)]
    rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring; requests scheduled in them are not counted.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Keep-alive connections in the pool.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Extra request header line, e.g. `-H 'Cookie: a=b'` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Seconds a request may take (from its send) before it counts as an error and its
    /// connection is replaced.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Seconds after the last scheduled time to wait for outstanding responses; requests still
    /// without a response are reported as `unfinished`.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
}

/// Largest response head and chunk-size line accepted; anything bigger is an error.
const MAX_HEAD: usize = 64 * 1024;

/// What the connections share: the queue of scheduled-but-unsent requests (their scheduled
/// offsets from `start`, in ns), and the results.
struct Shared {
    start: Instant,
    /// Requests scheduled before this offset are warm-up: sent, not recorded.
    measure_from: u64,
    queue: VecDeque<u64>,
    /// The dispatcher scheduled its last request.
    scheduling_done: bool,
    /// Latencies (ns) of measured requests; capacity fixed up front (rate x duration).
    samples: Vec<u64>,
    /// Measured requests without a complete response (I/O or framing error, timeout).
    errors: u64,
    /// Measured responses with a status outside 200-299.
    non2xx: u64,
    /// Offset (ns) of the last measured completion, for the achieved rate.
    last_done: u64,
    /// Complete responses, warm-up included: what the server did in the whole run, for CPU
    /// per request measured over the run (`benches/paired.sh`).
    responses: u64,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    if !(args.rate > 0.0 && args.duration > 0.0 && args.warmup >= 0.0 && args.connections > 0) {
        return Err(io::Error::other(
            "--rate, --duration and --connections must be positive",
        ));
    }
    let (addr, request) = build_request(&args.url, &args.headers)?;
    // The timerfd and epoll: wake-ups as precise as the kernel gives (default slack is 50 µs).
    // SAFETY: prctl with PR_SET_TIMERSLACK takes an integer argument and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let line = local.block_on(&rt, run(args, addr, request))?;
    println!("{line}");
    Ok(())
}

/// The request bytes and the address to connect to, from an `http://host:port/path` URL.
fn build_request(url: &str, headers: &[String]) -> io::Result<(String, Vec<u8>)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::other("--url must start with http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for h in headers {
        if !h.contains(':') || h.contains('\r') || h.contains('\n') {
            return Err(io::Error::other(format!("bad header line {h:?}")));
        }
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    Ok((addr, req.into_bytes()))
}

async fn run(args: Args, addr: String, request: Vec<u8>) -> io::Result<String> {
    let interval_ns = 1e9 / args.rate;
    let warm = (args.rate * args.warmup).round() as u64;
    let measured = (args.rate * args.duration).round() as u64;
    let total = warm + measured;
    let measure_from = (warm as f64 * interval_ns) as u64;
    let shared = Rc::new(RefCell::new(Shared {
        start: Instant::now(),
        measure_from,
        queue: VecDeque::new(),
        scheduling_done: false,
        samples: Vec::with_capacity(measured as usize),
        errors: 0,
        non2xx: 0,
        last_done: 0,
        responses: 0,
    }));
    let notify = Rc::new(Notify::new());
    let request: Rc<[u8]> = request.into();
    let timeout = Duration::from_secs_f64(args.timeout);

    // Open the pool before the clock starts, so connecting is not counted as latency.
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        conns.push(connect(&addr).await?);
    }
    let start = Instant::now();
    shared.borrow_mut().start = start;
    let mut workers = Vec::new();
    for stream in conns {
        workers.push(tokio::task::spawn_local(worker(
            stream,
            addr.clone(),
            request.clone(),
            shared.clone(),
            notify.clone(),
            timeout,
        )));
    }

    // The dispatcher: request i is due at start + i x interval. Everything due is queued at
    // once (the runtime may have been busy reading responses), then sleep until the next one.
    let timer = TimerFd::new()?;
    let mut i = 0u64;
    while i < total {
        let now = start.elapsed().as_nanos() as u64;
        let mut queued = 0;
        while i < total {
            let due = (i as f64 * interval_ns) as u64;
            if due > now {
                break;
            }
            shared.borrow_mut().queue.push_back(due);
            queued += 1;
            i += 1;
        }
        for _ in 0..queued.min(args.connections) {
            notify.notify_one();
        }
        if i < total {
            let due = (i as f64 * interval_ns) as u64;
            timer.sleep_until(start + Duration::from_nanos(due)).await?;
        }
    }
    shared.borrow_mut().scheduling_done = true;
    notify.notify_waiters();

    // Drain: wait for the queue and the in-flight requests, up to --drain seconds.
    let drained = tokio::time::timeout(Duration::from_secs_f64(args.drain), async {
        for w in workers.iter_mut() {
            let _ = w.await;
        }
    })
    .await;
    if drained.is_err() {
        for w in &workers {
            w.abort();
        }
    }

    let mut s = shared.borrow_mut();
    let count = s.samples.len() as u64;
    // Requests scheduled in the measured window with neither a response nor an error.
    let unfinished = measured.saturating_sub(count + s.errors);
    let window = s.last_done.saturating_sub(s.measure_from).max(1) as f64 / 1e9;
    let achieved = count as f64 / window.max(args.duration);
    s.samples.sort_unstable();
    let pct = |p: f64| -> f64 {
        if s.samples.is_empty() {
            return 0.0;
        }
        // Nearest rank: the smallest sample with at least p of all samples at or below it.
        let rank = ((p * s.samples.len() as f64).ceil() as usize).clamp(1, s.samples.len());
        s.samples[rank - 1] as f64 / 1e3
    };
    Ok(format!(
        "offered_rps={} achieved_rps={:.1} count={} errors={} non2xx={} unfinished={} p50_us={:.1} p90_us={:.1} p99_us={:.1} p99_9_us={:.1} max_us={:.1} responses={}",
        args.rate,
        achieved,
        count,
        s.errors,
        s.non2xx,
        unfinished,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        s.samples.last().copied().unwrap_or(0) as f64 / 1e3,
        s.responses,
    ))
}

async fn connect(addr: &str) -> io::Result<TcpStream> {
    let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::other(format!("connect to {addr} timed out")))??;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One connection: takes the next scheduled request from the queue, sends it, reads the whole
/// response, records the latency from the scheduled time. On an error or `Connection: close`
/// it opens a new connection.
async fn worker(
    stream: TcpStream,
    addr: String,
    request: Rc<[u8]>,
    shared: Rc<RefCell<Shared>>,
    notify: Rc<Notify>,
    timeout: Duration,
) {
    let mut stream = Some(stream);
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let next = {
            let mut s = shared.borrow_mut();
            match s.queue.pop_front() {
                Some(due) => Some(due),
                None if s.scheduling_done => return,
                None => None,
            }
        };
        let Some(due) = next else {
            // Single-threaded: nothing runs between the empty pop and this await, so no wake-up
            // is lost; notify_one stores a permit if this task is not waiting yet.
            notify.notified().await;
            continue;
        };
        let conn = match stream.take() {
            Some(c) => Ok(c),
            None => connect(&addr).await,
        };
        let result = match conn {
            Ok(mut c) => {
                let r = tokio::time::timeout(timeout, exchange(&mut c, &request, &mut buf)).await;
                match r {
                    Ok(Ok((status, keep_alive))) => {
                        if keep_alive {
                            stream = Some(c);
                        }
                        Ok(status)
                    }
                    _ => Err(()),
                }
            }
            Err(_) => Err(()),
        };
        record(&mut shared.borrow_mut(), due, result);
        if result.is_err() {
            // A refused or failing server: do not spin; the next request waits a little.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Records one request's outcome (`Ok(status)` or an error) if it was scheduled in the
/// measured window.
fn record(s: &mut Shared, due: u64, result: Result<u16, ()>) {
    let done = s.start.elapsed().as_nanos() as u64;
    if result.is_ok() {
        s.responses += 1;
    }
    if due < s.measure_from {
        return;
    }
    match result {
        Ok(status) => {
            if !(200..300).contains(&status) {
                s.non2xx += 1;
            }
            s.samples.push(done.saturating_sub(due));
            s.last_done = s.last_done.max(done);
        }
        Err(()) => s.errors += 1,
    }
}

/// Sends the request and reads one full response. Returns the status and whether the
/// connection may be reused.
async fn exchange(c: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> io::Result<(u16, bool)> {
    c.write_all(request).await?;
    buf.clear();
    // The head.
    let (status, body, keep_alive, head_len) = loop {
        read_more(c, buf).await?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf).map_err(io::Error::other)? {
            httparse::Status::Complete(n) => {
                let status = resp.code.unwrap_or(0);
                let mut body = Body::Close;
                let mut chunked = false;
                let mut keep_alive = resp.version == Some(1);
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let v = std::str::from_utf8(h.value).ok();
                        let len = v.and_then(|v| v.trim().parse::<usize>().ok());
                        body = Body::Length(len.ok_or_else(|| io::Error::other("content-length"))?);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = h.value.eq_ignore_ascii_case(b"chunked");
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        if h.value.eq_ignore_ascii_case(b"close") {
                            keep_alive = false;
                        } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                            keep_alive = true;
                        }
                    }
                }
                // Chunked wins over Content-Length (RFC 9112 section 6.3).
                if chunked {
                    body = Body::Chunked;
                }
                if status == 204 || status == 304 || (100..200).contains(&status) {
                    body = Body::Length(0);
                }
                break (status, body, keep_alive, n);
            }
            httparse::Status::Partial if buf.len() > MAX_HEAD => {
                return Err(io::Error::other("response head too large"));
            }
            httparse::Status::Partial => {}
        }
    };
    if (100..200).contains(&status) {
        return Err(io::Error::other("1xx responses are not supported"));
    }
    match body {
        Body::Length(n) => {
            while buf.len() < head_len + n {
                read_more(c, buf).await?;
            }
            if buf.len() > head_len + n {
                return Err(io::Error::other("bytes after the response"));
            }
            Ok((status, keep_alive))
        }
        Body::Chunked => {
            let mut pos = head_len;
            loop {
                // Chunk-size line.
                let (size, line_len) = loop {
                    match httparse::parse_chunk_size(&buf[pos..]) {
                        Ok(httparse::Status::Complete((n, size))) => break (size as usize, n),
                        Ok(httparse::Status::Partial) if buf.len() - pos > MAX_HEAD => {
                            return Err(io::Error::other("chunk-size line too long"));
                        }
                        Ok(httparse::Status::Partial) => read_more(c, buf).await?,
                        Err(_) => return Err(io::Error::other("bad chunk size")),
                    }
                };
                pos += line_len;
                if size == 0 {
                    // Trailer section (normally empty), then CRLF.
                    loop {
                        if let Some(i) = find_crlf(&buf[pos..]) {
                            pos += i + 2;
                            if i == 0 {
                                return Ok((status, keep_alive));
                            }
                        } else {
                            if buf.len() - pos > MAX_HEAD {
                                return Err(io::Error::other("trailers too large"));
                            }
                            read_more(c, buf).await?;
                        }
                    }
                }
                while buf.len() < pos + size + 2 {
                    read_more(c, buf).await?;
                }
                pos += size + 2;
                // Do not keep bodies we have already framed.
                buf.drain(head_len..pos);
                pos = head_len;
            }
        }
        Body::Close => {
            // Close-delimited: read to EOF, then the connection is gone.
            loop {
                let n = c.read_buf(buf).await?;
                if n == 0 {
                    return Ok((status, false));
                }
                buf.truncate(head_len);
            }
        }
    }
}

enum Body {
    Length(usize),
    Chunked,
    Close,
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Reads at least one byte more into `buf`; end of stream is an error (mid-response).
async fn read_more(c: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    match c.read_buf(buf).await? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

/// A one-shot CLOCK_MONOTONIC timerfd in tokio's reactor, for sub-millisecond sleeps.
struct TimerFd(AsyncFd<OwnedFd>);

impl TimerFd {
    fn new() -> io::Result<TimerFd> {
        // SAFETY: timerfd_create takes integer flags; a non-negative result is a new fd we own.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by nothing else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the OwnedFd moves into the AsyncFd and keeps the descriptor open (and the
        // same) until the AsyncFd is dropped.
        let async_fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }?;
        Ok(TimerFd(async_fd))
    }

    async fn sleep_until(&self, at: Instant) -> io::Result<()> {
        let Some(delay) = at.checked_duration_since(Instant::now()) else {
            return Ok(());
        };
        if delay.is_zero() {
            return Ok(());
        }
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: delay.as_secs() as libc::time_t,
                tv_nsec: delay.subsec_nanos() as libc::c_long,
            },
        };
        let fd: RawFd = self.0.get_ref().as_raw_fd();
        // SAFETY: fd is a timerfd we own; spec is a valid itimerspec; old value not wanted.
        if unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut guard = self.0.readable().await?;
            let r = guard.try_io(|inner| {
                let mut expirations = 0u64;
                // SAFETY: reads 8 bytes into a u64 from the timerfd.
                let n = unsafe {
                    libc::read(
                        inner.get_ref().as_raw_fd(),
                        &mut expirations as *mut u64 as *mut libc::c_void,
                        8,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match r {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}
