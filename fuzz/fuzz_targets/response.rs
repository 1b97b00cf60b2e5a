//! Fuzzes `sy_proto::response`: arbitrary bytes from an upstream server must
//! never panic the head parser or the chunked decoder; a complete head is
//! complete at its own length with the same result, and its field positions
//! lie inside it; the chunked decoder gives the same body and the same
//! verdict whether the bytes come whole or split at a point the input picks.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sy_proto::response::{ChunkedDecoder, Fields, MAX_HEADERS, Step, parse_head};

/// Decodes `input` fed in two parts; `Err` on a decoder error, `Ok(None)`
/// when the bytes end before the body does.
fn decode(input: &[u8], split: usize) -> Result<Option<(Vec<u8>, usize)>, ()> {
    let mut d = ChunkedDecoder::new();
    let (mut buf, mut fed, mut data) = (Vec::new(), 0usize, Vec::new());
    let parts = [split.min(input.len()), input.len()];
    loop {
        match d.step(&buf).map_err(|_| ())? {
            Step::Skip(n) => {
                assert!(n > 0 && n <= buf.len());
                buf.drain(..n);
            }
            Step::Data(n) => {
                assert!(n > 0 && n <= buf.len());
                data.extend(buf.drain(..n));
            }
            Step::End { len } => {
                assert!(len <= buf.len());
                return Ok(Some((data, buf.len() - len + input.len() - fed)));
            }
            Step::NeedMore => {
                let Some(&end) = parts.iter().find(|&&p| p > fed) else {
                    return Ok(None);
                };
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let split = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let head_request = data[2] & 1 == 1;
    let input = &data[3..];

    let mut out = Fields::new();
    if let Ok(Some(h)) = parse_head(input, head_request, &mut out) {
        assert!(h.len <= input.len() && out.len() <= MAX_HEADERS);
        for f in &out {
            assert!(f.name.0 <= f.name.1 && f.name.1 <= h.len);
            assert!(f.value.0 <= f.value.1 && f.value.1 <= h.len);
        }
        let mut again = Fields::new();
        assert_eq!(parse_head(&input[..h.len], head_request, &mut again), Ok(Some(h)));
        assert_eq!(out, again);
    }

    let whole = decode(input, input.len());
    assert_eq!(whole, decode(input, split), "split at {split}");
});
