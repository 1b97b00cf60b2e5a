//! A slow, whole-buffer model of how hyper 1.x frames a request stream,
//! built on httparse, to check `FramingScanner` against.
//!
//! It is written differently from the scanner on purpose (slices and
//! httparse instead of a byte state machine) and follows hyper's
//! `role.rs`/`decode.rs` rules, including where hyper rejects input.

use sy_proto::Verdict;

/// How the reference run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The stream ends inside a message.
    Incomplete,
    /// hyper answers 400 (or fails the body) and closes: after the verdicts
    /// listed, the scanner may report at most one more.
    Rejected,
    /// Ambiguous framing, a CONNECT or an upgrade: the scanner must stop.
    Stopped,
}

/// Headers hyper keeps by default is 100; httparse needs room for them all.
const MAX_HEADERS: usize = 128;

/// The verdicts hyper-faithful framing gives `stream`, and how it ended.
pub fn reference(stream: &[u8]) -> (Vec<Verdict>, End) {
    let mut verdicts = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &stream[pos..];
        if rest.is_empty() {
            return (verdicts, End::Incomplete);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return (verdicts, End::Incomplete),
            Err(_) => return (verdicts, End::Rejected),
        };
        let named = |name: &'static str| {
            req.headers
                .iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
        };
        let cls: Vec<&[u8]> = named("content-length").map(|h| h.value).collect();
        let tes: Vec<&[u8]> = named("transfer-encoding").map(|h| h.value).collect();
        if cls.len() >= 2 || (!cls.is_empty() && !tes.is_empty()) {
            verdicts.push(Verdict::Ambiguous);
            return (verdicts, End::Stopped);
        }
        // From here on, as hyper's `Server::parse`.
        if let Some(te) = tes.last()
            && (req.version != Some(1) || !is_chunked(te))
        {
            return (verdicts, End::Rejected);
        }
        let length = match cls.first() {
            Some(cl) => match from_digits(cl) {
                Some(n) if n <= u64::MAX - 2 => Some(n),
                _ => return (verdicts, End::Rejected),
            },
            None => None,
        };
        verdicts.push(Verdict::Ok);
        let upgrade = named("upgrade").next().is_some()
            && named("connection").any(|h| list_has(h.value, "upgrade"));
        if req.method == Some("CONNECT") || upgrade {
            return (verdicts, End::Stopped);
        }
        pos += head_len;
        if !tes.is_empty() {
            match chunked_len(&stream[pos..]) {
                Body::Complete(n) => pos += n,
                Body::Incomplete => return (verdicts, End::Incomplete),
                Body::Invalid => return (verdicts, End::Rejected),
            }
        } else if let Some(n) = length {
            match usize::try_from(n) {
                Ok(n) if n <= stream.len() - pos => pos += n,
                _ => return (verdicts, End::Incomplete),
            }
        }
    }
}

/// hyper's `headers::is_chunked_`: the last list element is `chunked`.
fn is_chunked(value: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(value) else {
        return false;
    };
    if !value.iter().all(|&b| b == b'\t' || (32..127).contains(&b)) {
        return false; // HeaderValue::to_str fails
    }
    s.rsplit(',')
        .next()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("chunked"))
}

/// hyper's `headers::connection_has`.
fn list_has(value: &[u8], token: &str) -> bool {
    if !value.iter().all(|&b| b == b'\t' || (32..127).contains(&b)) {
        return false;
    }
    let s = std::str::from_utf8(value).unwrap_or_default();
    s.split(',').any(|e| e.trim().eq_ignore_ascii_case(token))
}

/// hyper's `headers::from_digits`.
fn from_digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then_some(())?;
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

enum Body {
    Complete(usize),
    Incomplete,
    Invalid,
}

/// Outcome of expecting `want` at `at`.
fn expect(bytes: &[u8], at: usize, want: u8) -> Result<(), Body> {
    match bytes.get(at) {
        Some(&b) if b == want => Ok(()),
        Some(_) => Err(Body::Invalid),
        None => Err(Body::Incomplete),
    }
}

/// Length of the chunked body at the start of `bytes`, by hyper's rules.
fn chunked_len(bytes: &[u8]) -> Body {
    match chunked_len_inner(bytes) {
        Ok(n) => Body::Complete(n),
        Err(body) => body,
    }
}

fn chunked_len_inner(bytes: &[u8]) -> Result<usize, Body> {
    let mut at = 0;
    loop {
        let digits = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if digits == 0 {
            return Err(if at == bytes.len() {
                Body::Incomplete
            } else {
                Body::Invalid
            });
        }
        let mut size = 0u64;
        for &b in &bytes[at..at + digits] {
            let digit = u64::from(char::from(b).to_digit(16).unwrap_or(0));
            size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(digit))
                .ok_or(Body::Invalid)?;
        }
        at += digits;
        at += bytes[at..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if bytes.get(at) == Some(&b';') {
            match bytes[at..].iter().position(|&b| b == b'\r' || b == b'\n') {
                Some(end) if bytes[at + end] == b'\r' => at += end,
                Some(_) => return Err(Body::Invalid),
                None => return Err(Body::Incomplete),
            }
        }
        expect(bytes, at, b'\r')?;
        expect(bytes, at + 1, b'\n')?;
        at += 2;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).map_err(|_| Body::Incomplete)?;
        if bytes.len() - at < size {
            return Err(Body::Incomplete);
        }
        at += size;
        expect(bytes, at, b'\r')?;
        expect(bytes, at + 1, b'\n')?;
        at += 2;
    }
    // Trailer section: lines run to `\r` (a bare `\n` is part of a line),
    // and it ends at a line that is just `\r\n`.
    let trailers_start = at;
    loop {
        match bytes.get(at) {
            None => return Err(Body::Incomplete),
            Some(b'\r') => {
                expect(bytes, at + 1, b'\n')?;
                at += 2;
                break;
            }
            Some(_) => match bytes[at + 1..].iter().position(|&b| b == b'\r') {
                Some(cr) => {
                    at += 1 + cr;
                    expect(bytes, at + 1, b'\n')?;
                    at += 2;
                }
                None => return Err(Body::Incomplete),
            },
        }
    }
    // hyper then parses the trailers and fails the body if they are bad.
    if at - trailers_start > 2 {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(&bytes[trailers_start..at], &mut headers) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(Body::Invalid),
        }
    }
    Ok(at)
}
