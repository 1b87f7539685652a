//! gzip in and out for the tests of compressed pages (the unit tests of src/html and
//! tests/html.rs include this file).

use std::io::{Read, Write};

pub fn gzip(d: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(d).unwrap();
    e.finish().unwrap()
}

pub fn gunzip(d: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    flate2::read::GzDecoder::new(d).read_to_end(&mut s).unwrap();
    s
}
