//! Arbitrary bytes as a client connection's input: the framing tracker must never panic, and
//! must decide the same whether the bytes arrive at once or split at any point (the first byte
//! of the input chooses the split).
#![no_main]
use consentgate::connections::framing::{HeadLimits, Tracker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits {
        max_header_bytes: 4096,
        max_headers: 20,
        max_uri_bytes: 512,
    };
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let mut whole = Tracker::new(limits);
    let a = whole.feed(input);
    let mut parts = Tracker::new(limits);
    let at = (split as usize * input.len()) / 256;
    let b = parts.feed(&input[..at]).and_then(|()| parts.feed(&input[at..]));
    assert_eq!(a, b);
    if a.is_ok() {
        assert_eq!(whole.phase(), parts.phase());
        assert_eq!(whole.started(), parts.started());
    }
});
