//! Streaming `Content-Encoding` handling for rewritten bodies: decode (gzip, deflate, br),
//! rewrite, re-encode in the same encoding, chunk by chunk.

use std::io::Write;

/// A streaming decoder or encoder writing into a buffer that is drained after each chunk.
enum Stage {
    Identity,
    GzipDecode(flate2::write::GzDecoder<Vec<u8>>),
    DeflateDecode(flate2::write::ZlibDecoder<Vec<u8>>),
    BrotliDecode(Box<brotli::DecompressorWriter<Vec<u8>>>),
    GzipEncode(flate2::write::GzEncoder<Vec<u8>>),
    DeflateEncode(flate2::write::ZlibEncoder<Vec<u8>>),
    BrotliEncode(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Stage {
    fn push(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Stage::Identity => return Ok(data.to_vec()),
            Stage::GzipDecode(w) => w.write_all(data)?,
            Stage::DeflateDecode(w) => w.write_all(data)?,
            Stage::BrotliDecode(w) => w.write_all(data)?,
            // Encoders flush per chunk so the response keeps streaming.
            Stage::GzipEncode(w) => {
                w.write_all(data)?;
                w.flush()?
            }
            Stage::DeflateEncode(w) => {
                w.write_all(data)?;
                w.flush()?
            }
            Stage::BrotliEncode(w) => {
                w.write_all(data)?;
                w.flush()?
            }
        }
        Ok(self.drain())
    }

    fn drain(&mut self) -> Vec<u8> {
        match self {
            Stage::Identity => Vec::new(),
            Stage::GzipDecode(w) => std::mem::take(w.get_mut()),
            Stage::DeflateDecode(w) => std::mem::take(w.get_mut()),
            Stage::BrotliDecode(w) => std::mem::take(w.get_mut()),
            Stage::GzipEncode(w) => std::mem::take(w.get_mut()),
            Stage::DeflateEncode(w) => std::mem::take(w.get_mut()),
            Stage::BrotliEncode(w) => std::mem::take(w.get_mut()),
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        Ok(match self {
            Stage::Identity => Vec::new(),
            Stage::GzipDecode(w) => w.finish()?,
            Stage::DeflateDecode(w) => w.finish()?,
            Stage::BrotliDecode(w) => w.into_inner().unwrap_or_default(),
            Stage::GzipEncode(w) => w.finish()?,
            Stage::DeflateEncode(w) => w.finish()?,
            Stage::BrotliEncode(w) => w.into_inner(),
        })
    }
}

/// A `Content-Encoding` this module reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    /// The coding of a `Content-Encoding` value (none = identity); `None` for one this module
    /// cannot handle (the caller passes the body through).
    pub fn parse(content_encoding: Option<&str>) -> Option<Coding> {
        const NAMES: [(&str, Coding); 6] = [
            ("", Coding::Identity),
            ("identity", Coding::Identity),
            ("gzip", Coding::Gzip),
            ("x-gzip", Coding::Gzip),
            ("deflate", Coding::Deflate),
            ("br", Coding::Brotli),
        ];
        let e = content_encoding.map_or("", str::trim);
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(e))
            .map(|(_, c)| *c)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// Decoder and encoder for one `Content-Encoding`.
pub struct Codec {
    decode: Stage,
    encode: Stage,
}

impl Codec {
    /// `None` for an encoding this module cannot handle (the caller passes the body through).
    pub fn for_encoding(content_encoding: Option<&str>) -> Option<Codec> {
        Coding::parse(content_encoding).map(Codec::new)
    }

    pub fn new(coding: Coding) -> Codec {
        let (decode, encode) = match coding {
            Coding::Identity => (Stage::Identity, Stage::Identity),
            Coding::Gzip => (
                Stage::GzipDecode(flate2::write::GzDecoder::new(Vec::new())),
                Stage::GzipEncode(flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::fast(),
                )),
            ),
            Coding::Deflate => (
                Stage::DeflateDecode(flate2::write::ZlibDecoder::new(Vec::new())),
                Stage::DeflateEncode(flate2::write::ZlibEncoder::new(
                    Vec::new(),
                    flate2::Compression::fast(),
                )),
            ),
            Coding::Brotli => (
                Stage::BrotliDecode(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096))),
                Stage::BrotliEncode(Box::new(brotli::CompressorWriter::new(
                    Vec::new(),
                    4096,
                    4,
                    22,
                ))),
            ),
        };
        Codec { decode, encode }
    }

    pub fn is_identity(&self) -> bool {
        matches!(self.decode, Stage::Identity)
    }

    pub fn decode(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        self.decode.push(data)
    }

    /// Flushes the decoder at the end of the body.
    pub fn decode_finish(&mut self) -> std::io::Result<Vec<u8>> {
        std::mem::replace(&mut self.decode, Stage::Identity).finish()
    }

    pub fn encode(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        self.encode.push(data)
    }

    pub fn encode_finish(&mut self) -> std::io::Result<Vec<u8>> {
        std::mem::replace(&mut self.encode, Stage::Identity).finish()
    }
}
