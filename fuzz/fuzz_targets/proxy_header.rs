//! Fuzzes `sy_proto::proxy_header::parse`: arbitrary first bytes of a
//! connection must never panic; a complete header must be complete at its
//! own length and incomplete at every shorter one (so a reader that consumes
//! what is incomplete never consumes a byte after the header).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sy_proto::proxy_header::{MAX_LEN, Parse, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Parse::Complete { len, header } => {
            assert!(len <= data.len() && len <= MAX_LEN);
            assert_eq!(parse(&data[..len]), Parse::Complete { len, header });
            for n in 0..len {
                assert_eq!(parse(&data[..n]), Parse::Incomplete, "cut at {n}");
            }
        }
        Parse::Incomplete => {
            assert!(data.len() < MAX_LEN);
        }
        Parse::Invalid(_) => {}
    }
});
