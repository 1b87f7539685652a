//! One response body through decode -> neutralize -> encode, with the failure policy: a
//! rewriter error passes the rest of the body through (re-encoded as it came) and is reported
//! once so the caller can count it. Availability fails open.

use super::codec::Codec;
use super::{Neutralized, Neutralizer};

pub struct BodyRewrite {
    codec: Codec,
    neutralizer: Neutralizer,
    /// Set after a failure: the rest passes through unchanged.
    failed: bool,
    /// Set when the encoded stream itself could not be decoded: raw bytes pass from then on.
    raw: bool,
    /// Decoded input the rewriter swallowed without producing output (a token still being
    /// parsed): replayed if the rewriter fails, so a failure loses as little as possible.
    stalled: Vec<u8>,
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
            codec,
            neutralizer,
            failed: false,
            raw: false,
            stalled: Vec::new(),
        }
    }

    /// Feeds one body chunk (`end` on the last one).
    pub fn chunk(&mut self, data: &[u8], end: bool) -> ChunkOutput {
        if self.raw {
            return ChunkOutput {
                bytes: data.to_vec(),
                failure: None,
                neutralized: Vec::new(),
            };
        }
        let mut failure = None;
        let mut plain = match self.codec.decode(data) {
            Ok(p) => p,
            Err(e) => {
                failure = Some(format!("decode: {e}"));
                Vec::new()
            }
        };
        if end {
            match self.codec.decode_finish() {
                Ok(rest) => plain.extend(rest),
                Err(e) => failure = failure.or(Some(format!("decode: {e}"))),
            }
        }
        if failure.is_some() {
            // The encoded stream is unreadable: nothing more can be rewritten; what the
            // rewriter holds is sent, and the raw remainder follows as it came.
            self.failed = true;
            self.raw = true;
            let mut out = self.neutralizer.salvage();
            out = self.codec.encode(&out).unwrap_or_default();
            out.extend_from_slice(data);
            return ChunkOutput {
                bytes: out,
                failure,
                neutralized: self.neutralizer.take_neutralized(),
            };
        }
        let mut rewritten = Vec::new();
        if self.failed {
            rewritten = plain;
        } else {
            let r = self.neutralizer.write(&plain).and_then(|mut out| {
                if end {
                    out.extend(self.neutralizer.finish()?);
                }
                Ok(out)
            });
            match r {
                Ok(out) => {
                    if out.is_empty() {
                        self.stalled.extend_from_slice(&plain);
                    } else {
                        self.stalled.clear();
                    }
                    rewritten = out;
                }
                Err(e) => {
                    self.failed = true;
                    failure = Some(e.to_string());
                    rewritten.extend(self.neutralizer.salvage());
                    rewritten.append(&mut self.stalled);
                    rewritten.extend(plain);
                }
            }
        }
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
        ChunkOutput {
            bytes,
            failure,
            neutralized: self.neutralizer.take_neutralized(),
        }
    }
}
