//! One response body through decode -> neutralize -> encode, with the failure policy: a
//! rewriter error passes the rest of the body through (re-encoded as it came) and is reported
//! once so the caller can count it. Availability fails open.
//!
//! Compressed bodies are held as they came (up to [`HOLD_LIMIT`]) while rewriting has changed
//! nothing: a page with nothing to neutralize, or one whose rewrite fails early, goes out as the
//! origin's exact bytes instead of a re-compressed copy. The first change (or the limit) ends
//! the hold and the body streams re-encoded from then on.

use super::codec::Codec;
use super::{Neutralized, Neutralizer};
use std::ops::ControlFlow;

/// The most of a compressed body held back while nothing in it has changed.
pub const HOLD_LIMIT: usize = 256 * 1024;
/// The most of its decoded form held at the same time (bounds a compression bomb).
pub const HOLD_DECODED_LIMIT: usize = 4 * 1024 * 1024;

/// A compressed body not yet changed: its bytes as received, and the rewriter's (identical,
/// decoded) output for them.
#[derive(Default)]
struct Hold {
    original: Vec<u8>,
    output: Vec<u8>,
}

pub struct BodyRewrite {
    codec: Codec,
    neutralizer: Neutralizer,
    /// Set after a failure: the rest passes through unchanged.
    failed: bool,
    /// Set when the encoded stream itself could not be decoded: raw bytes pass from then on.
    raw: bool,
    /// Decoded input not yet seen in the output, replayed if the rewriter fails. Exact while
    /// `exact` (nothing changed yet, so the output is a prefix of the input); after the first
    /// change, the input since the last chunk that produced output (a failure can then lose
    /// part of one chunk).
    lag: Vec<u8>,
    exact: bool,
    hold: Option<Hold>,
}

/// What one chunk produced.
pub struct ChunkOutput {
    pub bytes: Vec<u8>,
    /// Set once, on the chunk where rewriting failed.
    pub failure: Option<String>,
    pub neutralized: Vec<Neutralized>,
}

impl BodyRewrite {
    pub fn new(codec: Codec, neutralizer: Neutralizer) -> BodyRewrite {
        BodyRewrite {
            hold: (!codec.is_identity()).then(Hold::default),
            codec,
            neutralizer,
            failed: false,
            raw: false,
            lag: Vec::new(),
            exact: true,
        }
    }

    /// What to send after a panic inside [`BodyRewrite::chunk`] on `input`: the held body as it
    /// came (`chunk` adds its input to the hold before anything else) or `input` itself. The
    /// caller stops rewriting after it.
    pub fn recover_after_panic(&mut self, input: &[u8]) -> Vec<u8> {
        match self.hold.take() {
            Some(h) => h.original,
            None => input.to_vec(),
        }
    }

    /// Feeds one body chunk (`end` on the last one): decode, rewrite, hold or release, encode.
    pub fn chunk(&mut self, data: &[u8], end: bool) -> ChunkOutput {
        if self.raw {
            return ChunkOutput {
                bytes: data.to_vec(),
                failure: None,
                neutralized: Vec::new(),
            };
        }
        if let Some(h) = self.hold.as_mut() {
            h.original.extend_from_slice(data);
        }
        let plain = match self.decode(data, end) {
            Ok(plain) => plain,
            Err(failure) => return self.unreadable(data, failure),
        };
        let (rewritten, mut failure) = if self.failed {
            (plain, None)
        } else {
            self.rewrite(plain, end)
        };
        let mut neutralized = self.neutralizer.take_neutralized();
        let inserted = self.neutralizer.take_edited();
        let step = self.hold_step(rewritten, &mut neutralized, inserted, &mut failure, end);
        let rewritten = match step {
            ControlFlow::Break(output) => return output,
            ControlFlow::Continue(rewritten) => rewritten,
        };
        let mut bytes = match self.codec.encode(&rewritten) {
            Ok(b) => b,
            Err(e) => {
                failure = failure.or(Some(format!("encode: {e}")));
                Vec::new()
            }
        };
        if end {
            bytes.extend(self.codec.encode_finish().unwrap_or_default());
        }
        neutralized.extend(self.neutralizer.take_neutralized());
        ChunkOutput {
            bytes,
            failure,
            neutralized,
        }
    }

    /// The chunk decoded (and the decoder's rest on the last one).
    fn decode(&mut self, data: &[u8], end: bool) -> Result<Vec<u8>, String> {
        let plain = self.codec.decode(data).map_err(|e| format!("decode: {e}"));
        if !end {
            return plain;
        }
        match (plain, self.codec.decode_finish()) {
            (Ok(mut plain), Ok(rest)) => {
                plain.extend(rest);
                Ok(plain)
            }
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(format!("decode: {e}")),
        }
    }

    /// The encoded stream is unreadable: nothing more can be rewritten; what the rewriter holds
    /// is sent, and the raw remainder follows as it came.
    fn unreadable(&mut self, data: &[u8], failure: String) -> ChunkOutput {
        self.failed = true;
        self.raw = true;
        if let Some(h) = self.hold.take() {
            // Nothing changed yet: the body so far exactly as it came.
            return ChunkOutput {
                bytes: h.original,
                failure: Some(failure),
                neutralized: self.neutralizer.take_neutralized(),
            };
        }
        let mut out = self.neutralizer.salvage();
        out = self.codec.encode(&out).unwrap_or_default();
        out.extend_from_slice(data);
        ChunkOutput {
            bytes: out,
            failure: Some(failure),
            neutralized: self.neutralizer.take_neutralized(),
        }
    }

    /// Decoded input through the neutralizer: its output, or on a rewriter failure what it
    /// emitted and the input it had not yet emitted, and the failure.
    fn rewrite(&mut self, plain: Vec<u8>, end: bool) -> (Vec<u8>, Option<String>) {
        let r = self.neutralizer.write(&plain).and_then(|mut out| {
            if end {
                out.extend(self.neutralizer.finish()?);
            }
            Ok(out)
        });
        let unchanged = self.exact && !self.neutralizer.changed();
        // While exact, every input byte is kept until it shows in the output; afterwards
        // only input that produced no output yet (the common streaming case copies nothing).
        if self.exact || r.as_ref().map_or(true, Vec::is_empty) {
            self.lag.extend_from_slice(&plain);
        }
        match r {
            Ok(out) => {
                if unchanged && out.len() <= self.lag.len() {
                    self.lag.drain(..out.len());
                } else {
                    self.exact = false;
                    if !out.is_empty() {
                        self.lag.clear();
                    }
                }
                (out, None)
            }
            Err(e) => {
                self.failed = true;
                let mut rewritten = self.neutralizer.salvage();
                let lag = std::mem::take(&mut self.lag);
                let skip = if unchanged {
                    // What the rewriter emitted before failing is the input's next bytes.
                    rewritten.len().min(lag.len())
                } else {
                    0
                };
                rewritten.extend_from_slice(&lag[skip..]);
                (rewritten, Some(e.to_string()))
            }
        }
    }

    /// A compressed body while nothing has changed: held (`Break` with nothing to send), or
    /// sent as it came (`Break`: at its end, or when the rewriter failed), or released
    /// (`Continue` with everything rewritten so far, to encode) on the first change or past the
    /// hold limits. Without a hold, `Continue(rewritten)`.
    fn hold_step(
        &mut self,
        rewritten: Vec<u8>,
        neutralized: &mut Vec<Neutralized>,
        inserted: bool,
        failure: &mut Option<String>,
        end: bool,
    ) -> ControlFlow<ChunkOutput, Vec<u8>> {
        let Some(h) = self.hold.as_mut() else {
            return ControlFlow::Continue(rewritten);
        };
        let as_it_came =
            |hold: &mut Option<Hold>| hold.take().map(|h| h.original).unwrap_or_default();
        if failure.is_some() {
            // The rewriter failed before changing anything: the body so far as it came,
            // and the rest raw.
            self.raw = true;
            return ControlFlow::Break(ChunkOutput {
                bytes: as_it_came(&mut self.hold),
                failure: failure.take(),
                neutralized: std::mem::take(neutralized),
            });
        }
        h.output.extend_from_slice(&rewritten);
        if neutralized.is_empty() && !inserted {
            if end {
                return ControlFlow::Break(ChunkOutput {
                    bytes: as_it_came(&mut self.hold),
                    failure: None,
                    neutralized: Vec::new(),
                });
            }
            if h.original.len() <= HOLD_LIMIT && h.output.len() <= HOLD_DECODED_LIMIT {
                return ControlFlow::Break(ChunkOutput {
                    bytes: Vec::new(),
                    failure: None,
                    neutralized: Vec::new(),
                });
            }
        }
        // Changed, or too much to hold: everything so far is re-encoded and streams on.
        ControlFlow::Continue(self.hold.take().map(|h| h.output).unwrap_or_default())
    }
}
