//! HTTP/1.1 request framing, followed byte by byte as the bytes arrive from a client (RFC 9112).
//!
//! [`Tracker`] sees every byte a client connection delivers, in order, and knows at each moment
//! whether the connection is between requests, inside a request header, inside a body, or
//! tunnelled. That is what lets [`super::stream`] put a deadline on the *whole* header (not on
//! each read), refuse an oversized header before it is buffered, and refuse malformed chunked
//! framing before pingora's more lenient parser sees it. It keeps no copy of the bytes: a few
//! counters and the state of the framing header fields it is reading, a few hundred bytes per
//! connection.
//!
//! It decides framing exactly as [`FramingBuilder`] does for the parsed header in
//! [`super::request`], so the two never disagree on where a body ends. Wherever it cannot follow
//! (an upgrade, an unsupported or ambiguous framing), it stops in [`Phase::Tunnel`] and the
//! request checks close the connection after that request.

/// The size limits of one request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Request line plus header lines plus the blank line, in bytes.
    pub max_header_bytes: usize,
    /// Header field lines.
    pub max_headers: usize,
    /// Bytes of the request target.
    pub max_uri_bytes: usize,
}

/// Why a connection's input was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The request target is longer than `max_uri_bytes`.
    UriTooLong,
    /// The header is longer than `max_request_header_bytes`.
    HeaderTooLarge,
    /// More than `max_request_headers` field lines.
    TooManyHeaders,
    /// Chunked framing that does not follow RFC 9112 §7.1 to the letter.
    BadChunk,
}

impl Reject {
    /// The status sent for it.
    pub fn status(self) -> u16 {
        match self {
            Reject::UriTooLong => 414,
            Reject::HeaderTooLarge | Reject::TooManyHeaders => 431,
            Reject::BadChunk => 400,
        }
    }

    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Reject::UriTooLong => "uri_too_long",
            Reject::HeaderTooLarge => "header_too_large",
            Reject::TooManyHeaders => "too_many_headers",
            Reject::BadChunk => "bad_chunk",
        }
    }
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between requests (nothing of the next one seen yet, blank lines aside).
    Idle,
    /// Inside a request line or header.
    Header,
    /// Inside a request body.
    Body,
    /// Not followed any more (an upgrade, or framing the request checks refuse).
    Tunnel,
}

/// How a request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// Framing header fields this proxy refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// A transfer coding other than a single `chunked` (RFC 9112 §6.1: `501`).
    UnsupportedCoding,
    /// `Transfer-Encoding` and `Content-Length` together, or `chunked` twice (`400`).
    Ambiguous,
    /// A `Content-Length` that is not one non-negative decimal number (`400`).
    BadLength,
    /// A `Transfer-Encoding` value that is not a list of codings (`400`).
    BadCoding,
}

impl FramingError {
    pub fn status(self) -> u16 {
        match self {
            FramingError::UnsupportedCoding => 501,
            FramingError::Ambiguous | FramingError::BadLength | FramingError::BadCoding => 400,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            FramingError::UnsupportedCoding => "unsupported_transfer_coding",
            FramingError::Ambiguous => "ambiguous_framing",
            FramingError::BadLength => "bad_content_length",
            FramingError::BadCoding => "bad_transfer_encoding",
        }
    }
}

/// Reads `Transfer-Encoding` and `Content-Length` values, fed byte by byte, and decides the body
/// framing. The same code serves the wire tracker and the parsed-header check.
#[derive(Debug, Clone, Default)]
pub struct FramingBuilder {
    te_lines: u32,
    /// Codings seen, and how many of them were exactly `chunked`.
    codings: u32,
    chunked: u32,
    te_bad: bool,
    te: TeValue,
    cl_lines: u32,
    cl: Option<u64>,
    cl_bad: bool,
    cl_value: ClValue,
}

/// Which framing field a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingField {
    TransferEncoding,
    ContentLength,
}

impl FramingBuilder {
    /// Starts a value of `field`.
    pub fn begin(&mut self, field: FramingField) {
        match field {
            FramingField::TransferEncoding => {
                self.te_lines += 1;
                self.te = TeValue::default();
            }
            FramingField::ContentLength => {
                self.cl_lines += 1;
                self.cl_value = ClValue::default();
            }
        }
    }

    /// One byte of the current value.
    pub fn byte(&mut self, field: FramingField, b: u8) {
        match field {
            FramingField::TransferEncoding => {
                if let Some(done) = self.te.byte(b) {
                    self.coding_done(done);
                }
            }
            FramingField::ContentLength => {
                if let Some(done) = self.cl_value.byte(b) {
                    self.length_done(done);
                }
            }
        }
    }

    /// Ends the current value.
    pub fn end(&mut self, field: FramingField) {
        match field {
            FramingField::TransferEncoding => {
                let done = self.te.finish();
                self.coding_done(done);
            }
            FramingField::ContentLength => {
                let done = self.cl_value.finish();
                self.length_done(done);
            }
        }
    }

    /// A whole value at once.
    pub fn value(&mut self, field: FramingField, v: &[u8]) {
        self.begin(field);
        for &b in v {
            self.byte(field, b);
        }
        self.end(field);
    }

    fn coding_done(&mut self, c: Coding) {
        match c {
            Coding::Empty => {}
            Coding::Chunked => {
                self.codings += 1;
                self.chunked += 1;
            }
            Coding::Other => self.codings += 1,
            Coding::Bad => self.te_bad = true,
        }
    }

    fn length_done(&mut self, l: Length) {
        match l {
            Length::Empty | Length::Bad => self.cl_bad = true,
            Length::Value(v) => match self.cl {
                None => self.cl = Some(v),
                Some(prev) if prev == v => {}
                Some(_) => self.cl_bad = true,
            },
        }
    }

    /// The framing, once every value was fed.
    pub fn finish(&self) -> Result<BodyFraming, FramingError> {
        if self.te_lines > 0 {
            if self.cl_lines > 0 {
                return Err(FramingError::Ambiguous);
            }
            if self.te_bad || self.codings == 0 {
                return Err(FramingError::BadCoding);
            }
            if self.chunked > 1 {
                return Err(FramingError::Ambiguous);
            }
            if self.codings > 1 || self.chunked == 0 {
                return Err(FramingError::UnsupportedCoding);
            }
            return Ok(BodyFraming::Chunked);
        }
        if self.cl_lines > 0 {
            return match (self.cl_bad, self.cl) {
                (false, Some(0)) => Ok(BodyFraming::None),
                (false, Some(n)) => Ok(BodyFraming::Length(n)),
                _ => Err(FramingError::BadLength),
            };
        }
        Ok(BodyFraming::None)
    }
}

/// One element of a `Transfer-Encoding` list, as it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Empty,
    Chunked,
    Other,
    Bad,
}

/// A `Transfer-Encoding` value being read: `#transfer-coding`, each a token with optional
/// `;parameters` (any coding with parameters is not plain `chunked`).
#[derive(Debug, Clone, Copy, Default)]
struct TeValue {
    /// Bytes of the current token (saturating).
    len: u8,
    /// The token so far matches a prefix of `chunked`.
    matches: bool,
    /// Whitespace came after the token.
    after: bool,
    params: bool,
    bad: bool,
}

const CHUNKED: &[u8] = b"chunked";

impl TeValue {
    fn byte(&mut self, b: u8) -> Option<Coding> {
        match b {
            b',' => return Some(self.finish()),
            b' ' | b'\t' => {
                if self.len > 0 {
                    self.after = true;
                }
            }
            _ if self.params => {}
            b';' if self.len > 0 => self.params = true,
            _ if is_tchar(b) && !self.after => {
                let i = self.len as usize;
                self.matches = (i == 0 || self.matches)
                    && i < CHUNKED.len()
                    && CHUNKED[i] == b.to_ascii_lowercase();
                self.len = self.len.saturating_add(1);
            }
            // A byte no coding may hold, or two tokens without a comma.
            _ => self.bad = true,
        }
        None
    }

    fn finish(&mut self) -> Coding {
        let c = if self.bad {
            Coding::Bad
        } else if self.len == 0 {
            Coding::Empty
        } else if self.matches && self.len as usize == CHUNKED.len() && !self.params {
            Coding::Chunked
        } else {
            Coding::Other
        };
        *self = TeValue::default();
        c
    }
}

/// One element of a `Content-Length` list, as it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Empty,
    Value(u64),
    Bad,
}

/// A `Content-Length` value being read: `1*DIGIT`, or a list of equal ones (RFC 9110 §8.6).
#[derive(Debug, Clone, Copy, Default)]
struct ClValue {
    digits: u8,
    value: u64,
    after: bool,
    bad: bool,
}

impl ClValue {
    fn byte(&mut self, b: u8) -> Option<Length> {
        match b {
            b'0'..=b'9' if !self.after => {
                self.digits = self.digits.saturating_add(1);
                match self
                    .value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                {
                    Some(v) => self.value = v,
                    None => self.bad = true,
                }
                None
            }
            b' ' | b'\t' => {
                if self.digits > 0 {
                    self.after = true;
                }
                None
            }
            b',' => Some(self.finish()),
            _ => {
                self.bad = true;
                None
            }
        }
    }

    fn finish(&mut self) -> Length {
        let l = if self.bad {
            Length::Bad
        } else if self.digits == 0 {
            Length::Empty
        } else {
            Length::Value(self.value)
        };
        *self = ClValue::default();
        l
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The framing header names, lowercase.
const NAMES: [&[u8]; 3] = [b"content-length", b"transfer-encoding", b"upgrade"];

/// Follows one connection's request bytes.
#[derive(Debug, Clone)]
pub struct Tracker {
    limits: HeadLimits,
    state: State,
    /// Requests whose first byte was seen.
    started: u64,
}

#[derive(Debug, Clone)]
enum State {
    /// Between requests; counts blank lines before the request line (RFC 9112 §2.2 lets a
    /// server skip them; a handful is plenty).
    Idle {
        blank: u8,
    },
    /// Inline, not boxed: an allocation per request cost more than the bytes it saves.
    Head(Head),
    Length(u64),
    Chunked(Chunk),
    Tunnel,
}

/// Blank-line bytes skipped before a request line; more and the bytes count as a request.
const MAX_LEADING_BLANK: u8 = 8;
/// Bytes of chunk extensions on one chunk-size line.
const MAX_CHUNK_EXT: u32 = 4096;

#[derive(Debug, Clone, Default)]
struct Head {
    bytes: usize,
    /// Header field lines started.
    lines: usize,
    /// 0 method, 1 target, 2 version: where in the request line; 3 = in the field lines.
    part: u8,
    target: usize,
    /// Bytes of the current line (CR excluded).
    line_len: usize,
    cr: bool,
    /// The current field line: which framing names its name still matches (bit per `NAMES`),
    /// then, after the colon, which one it is.
    candidates: u8,
    field: Option<u8>,
    in_value: bool,
    upgrade: bool,
    framing: FramingBuilder,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size {
        digits: u8,
        value: u64,
    },
    /// Whitespace after the size (only `;` may follow: BWS before an extension).
    SizeWs {
        value: u64,
    },
    Ext {
        value: u64,
        quoted: bool,
        escaped: bool,
        len: u32,
    },
    SizeLf {
        value: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// Trailer field lines after the last chunk.
    Trailer {
        line_len: u32,
        cr: bool,
        total: usize,
    },
}

impl Tracker {
    pub fn new(limits: HeadLimits) -> Tracker {
        Tracker {
            limits,
            state: State::Idle { blank: 0 },
            started: 0,
        }
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle { .. } => Phase::Idle,
            State::Head(_) => Phase::Header,
            State::Length(_) | State::Chunked(_) => Phase::Body,
            State::Tunnel => Phase::Tunnel,
        }
    }

    /// How many requests have begun on this connection.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// New limits, for the requests that begin from now on.
    pub fn set_limits(&mut self, limits: HeadLimits) {
        self.limits = limits;
    }

    /// Follows `bytes`, the next input of the connection.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Reject> {
        let mut i = 0;
        while i < bytes.len() {
            match &mut self.state {
                State::Tunnel => return Ok(()),
                State::Length(left) => {
                    let take = (*left).min((bytes.len() - i) as u64);
                    *left -= take;
                    i += take as usize;
                    if *left == 0 {
                        self.state = State::Idle { blank: 0 };
                    }
                }
                State::Chunked(Chunk::Data { left }) if *left > 0 => {
                    let take = (*left).min((bytes.len() - i) as u64);
                    *left -= take;
                    i += take as usize;
                    if *left == 0 {
                        self.state = State::Chunked(Chunk::DataCr);
                    }
                }
                State::Head(h) if h.part < 2 && h.line_len > 0 && !h.cr => {
                    // Inside the method or the target: count up to the next byte that matters.
                    let rest = &bytes[i..];
                    let n = memchr::memchr3(b' ', b'\r', b'\n', rest).unwrap_or(rest.len());
                    if n > 0 {
                        skip_request_line_bytes(h, n, &self.limits)?;
                        i += n;
                    }
                    if i < bytes.len() {
                        self.byte(bytes[i])?;
                        i += 1;
                    }
                }
                State::Head(h) if skippable(h) => {
                    // The rest of a line nothing depends on: jump to its end (the common case;
                    // byte by byte this scan would cost more than the rest of the request).
                    let rest = &bytes[i..];
                    let n = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                    if n > 0 {
                        skip_line_bytes(h, &rest[..n], &self.limits)?;
                        i += n;
                    }
                    if i < bytes.len() {
                        self.byte(bytes[i])?;
                        i += 1;
                    }
                }
                _ => {
                    self.byte(bytes[i])?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), Reject> {
        let limits = self.limits;
        match &mut self.state {
            State::Idle { blank } => {
                if (b == b'\r' || b == b'\n') && *blank < MAX_LEADING_BLANK {
                    *blank += 1;
                    return Ok(());
                }
                self.started += 1;
                self.state = State::Head(Head::default());
                self.byte(b)
            }
            State::Head(h) => {
                h.bytes += 1;
                if h.bytes > limits.max_header_bytes {
                    // Still in the request line: it is the target that is too long.
                    return Err(if h.part < 3 && h.part > 0 {
                        Reject::UriTooLong
                    } else {
                        Reject::HeaderTooLarge
                    });
                }
                if let Some(done) = head_byte(h, b, &limits)? {
                    self.state = done;
                }
                Ok(())
            }
            State::Chunked(c) => match chunk_byte(c, b, limits.max_header_bytes)? {
                true => {
                    self.state = State::Idle { blank: 0 };
                    Ok(())
                }
                false => Ok(()),
            },
            // Handled in bulk by `feed`.
            State::Length(_) | State::Tunnel => Ok(()),
        }
    }
}

/// Whether the current header line's remaining bytes (up to its LF) matter only by their count:
/// a field line whose name is no framing field, or whose value belongs to none, or the
/// request line's version.
fn skippable(h: &Head) -> bool {
    if h.line_len == 0 || h.cr {
        return false;
    }
    match h.part {
        2 => true,
        3 => {
            if h.in_value {
                !matches!(h.field, Some(0 | 1))
            } else {
                h.candidates == 0
            }
        }
        _ => false,
    }
}

/// Counts `n` bytes of the method or target (no SP, CR or LF among them), as `head_byte`
/// would one by one.
fn skip_request_line_bytes(h: &mut Head, n: usize, limits: &HeadLimits) -> Result<(), Reject> {
    h.bytes += n;
    h.line_len += n;
    if h.part == 1 {
        h.target += n;
        if h.target > limits.max_uri_bytes {
            return Err(Reject::UriTooLong);
        }
    }
    if h.bytes > limits.max_header_bytes {
        return Err(if h.part > 0 {
            Reject::UriTooLong
        } else {
            Reject::HeaderTooLarge
        });
    }
    Ok(())
}

/// Counts `run` (no LF in it) as bytes of the current line, as `head_byte` would one by one.
fn skip_line_bytes(h: &mut Head, run: &[u8], limits: &HeadLimits) -> Result<(), Reject> {
    h.bytes += run.len();
    if h.bytes > limits.max_header_bytes {
        // As `Tracker::byte` says it: still in the request line, the target is too long.
        return Err(if h.part < 3 {
            Reject::UriTooLong
        } else {
            Reject::HeaderTooLarge
        });
    }
    // A CR right before the LF is the line end's; any other byte is content.
    let cr = run.last() == Some(&b'\r');
    h.line_len += run.len() - usize::from(cr);
    h.cr = cr;
    Ok(())
}

/// One header byte. `Some(state)` when the header ended.
fn head_byte(h: &mut Head, b: u8, limits: &HeadLimits) -> Result<Option<State>, Reject> {
    if b == b'\n' {
        let empty = h.line_len == 0;
        if h.part < 3 {
            h.part = 3;
        } else if empty {
            return Ok(Some(finish_head(h)));
        } else if let (Some(f), true) = (h.field, h.in_value) {
            if let Some(field) = framing_field(f) {
                h.framing.end(field);
            }
        }
        h.line_len = 0;
        h.cr = false;
        h.field = None;
        h.in_value = false;
        h.candidates = 0b111;
        return Ok(None);
    }
    if h.cr {
        // A CR that did not end a line: count it as line content (pingora refuses the request).
        h.line_len += 1;
    }
    if b == b'\r' {
        h.cr = true;
        return Ok(None);
    }
    h.cr = false;
    let first = h.line_len == 0;
    h.line_len += 1;
    match h.part {
        0 => {
            if b == b' ' {
                h.part = 1;
            }
        }
        1 => {
            if b == b' ' {
                h.part = 2;
            } else {
                h.target += 1;
                if h.target > limits.max_uri_bytes {
                    return Err(Reject::UriTooLong);
                }
            }
        }
        2 => {}
        _ => {
            if first {
                h.lines += 1;
                if h.lines > limits.max_headers {
                    return Err(Reject::TooManyHeaders);
                }
                h.candidates = 0b111;
            }
            field_byte(h, b);
        }
    }
    Ok(None)
}

fn framing_field(f: u8) -> Option<FramingField> {
    match f {
        0 => Some(FramingField::ContentLength),
        1 => Some(FramingField::TransferEncoding),
        _ => None,
    }
}

/// A byte of a header field line (not its line end).
fn field_byte(h: &mut Head, b: u8) {
    if h.in_value {
        if let Some(field) = h.field.and_then(framing_field) {
            h.framing.byte(field, b);
        }
        return;
    }
    if b == b':' {
        h.in_value = true;
        let len = h.line_len - 1;
        h.field = (0..NAMES.len() as u8)
            .find(|&i| h.candidates & (1 << i) != 0 && NAMES[i as usize].len() == len);
        match h.field {
            Some(2) => h.upgrade = true,
            Some(f) => {
                if let Some(field) = framing_field(f) {
                    h.framing.begin(field);
                }
            }
            None => {}
        }
        return;
    }
    let i = h.line_len - 1;
    let lower = b.to_ascii_lowercase();
    if i == 0 {
        // The three names begin with different letters: at most one candidate from here on.
        h.candidates = match lower {
            b'c' => 1,
            b't' => 2,
            b'u' => 4,
            _ => 0,
        };
    } else if h.candidates != 0 {
        let n = h.candidates.trailing_zeros() as usize;
        if NAMES[n].get(i) != Some(&lower) {
            h.candidates = 0;
        }
    }
}

/// The state after a complete header.
fn finish_head(h: &Head) -> State {
    if h.upgrade {
        // After a `101` the connection is no longer HTTP; without one the request checks
        // close the connection after the response.
        return State::Tunnel;
    }
    match h.framing.finish() {
        Ok(BodyFraming::None) => State::Idle { blank: 0 },
        Ok(BodyFraming::Length(n)) => State::Length(n),
        Ok(BodyFraming::Chunked) => State::Chunked(Chunk::Size {
            digits: 0,
            value: 0,
        }),
        // Refused by the request checks, which also close the connection.
        Err(_) => State::Tunnel,
    }
}

/// One byte of chunked framing. `true` when the body ended.
// Long by design: one match over every state of the chunked-framing machine, so each state's
// transitions (and what it refuses) read in one place, in the order the bytes arrive.
fn chunk_byte(c: &mut Chunk, b: u8, max_trailer: usize) -> Result<bool, Reject> {
    let bad = Err(Reject::BadChunk);
    match *c {
        Chunk::Size { digits, value } => match b {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                if digits >= 16 {
                    return bad;
                }
                let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                *c = Chunk::Size {
                    digits: digits + 1,
                    value: value << 4 | d,
                };
            }
            _ if digits == 0 => return bad,
            b';' => {
                *c = Chunk::Ext {
                    value,
                    quoted: false,
                    escaped: false,
                    len: 0,
                }
            }
            b' ' | b'\t' => *c = Chunk::SizeWs { value },
            b'\r' => *c = Chunk::SizeLf { value },
            _ => return bad,
        },
        Chunk::SizeWs { value } => match b {
            b' ' | b'\t' => {}
            b'\r' => *c = Chunk::SizeLf { value },
            b';' => {
                *c = Chunk::Ext {
                    value,
                    quoted: false,
                    escaped: false,
                    len: 0,
                }
            }
            _ => return bad,
        },
        Chunk::Ext {
            value,
            quoted,
            escaped,
            len,
        } => {
            if len >= MAX_CHUNK_EXT {
                return bad;
            }
            let len = len + 1;
            let next = |quoted, escaped| Chunk::Ext {
                value,
                quoted,
                escaped,
                len,
            };
            *c = if quoted {
                // quoted-string: qdtext / quoted-pair; never CR, LF or other controls.
                let ctl = b < 0x20 && b != b'\t' || b == 0x7f;
                if ctl {
                    return bad;
                }
                if escaped {
                    next(true, false)
                } else if b == b'\\' {
                    next(true, true)
                } else if b == b'"' {
                    next(false, false)
                } else {
                    next(true, false)
                }
            } else {
                match b {
                    b'\r' => Chunk::SizeLf { value },
                    b'"' => next(true, false),
                    b';' | b'=' | b' ' | b'\t' => next(false, false),
                    _ if is_tchar(b) => next(false, false),
                    // A bare LF, or any other byte a chunk extension cannot hold.
                    _ => return bad,
                }
            };
        }
        Chunk::SizeLf { value } => {
            if b != b'\n' {
                return bad;
            }
            *c = if value == 0 {
                Chunk::Trailer {
                    line_len: 0,
                    cr: false,
                    total: 0,
                }
            } else {
                Chunk::Data { left: value }
            };
        }
        // `Data` with bytes left is consumed in bulk by `Tracker::feed`.
        Chunk::Data { .. } | Chunk::DataCr => {
            if b != b'\r' {
                return bad;
            }
            *c = Chunk::DataLf;
        }
        Chunk::DataLf => {
            if b != b'\n' {
                return bad;
            }
            *c = Chunk::Size {
                digits: 0,
                value: 0,
            };
        }
        Chunk::Trailer {
            line_len,
            cr,
            total,
        } => {
            let total = total + 1;
            if total > max_trailer {
                return bad;
            }
            if cr {
                if b != b'\n' {
                    return bad;
                }
                if line_len == 0 {
                    return Ok(true);
                }
                *c = Chunk::Trailer {
                    line_len: 0,
                    cr: false,
                    total,
                };
            } else if b == b'\r' {
                *c = Chunk::Trailer {
                    line_len,
                    cr: true,
                    total,
                };
            } else if b == b'\n' || (b < 0x20 && b != b'\t') {
                return bad;
            } else {
                *c = Chunk::Trailer {
                    line_len: line_len + 1,
                    cr: false,
                    total,
                };
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests;
