//! Fuzzes `sy_proto::FramingScanner`: arbitrary client bytes, split at an
//! arbitrary point, must never panic, and must give the same verdicts as the
//! same bytes fed whole and fed one byte at a time.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sy_proto::{FramingScanner, Verdict};

fn scan<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Verdict>, bool) {
    let mut scanner = FramingScanner::new();
    let mut verdicts = Vec::new();
    for piece in pieces {
        scanner.feed(piece, |v| verdicts.push(v));
    }
    (verdicts, scanner.is_done())
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes pick the split point; the rest is the stream.
    let (split, stream) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    let (head, tail) = stream.split_at(split.min(stream.len()));
    let split_result = scan([head, tail]);
    assert_eq!(
        split_result,
        scan([stream]),
        "split at {split} changed the verdicts"
    );
    assert_eq!(
        split_result,
        scan(stream.chunks(1)),
        "byte-at-a-time changed the verdicts"
    );
});
