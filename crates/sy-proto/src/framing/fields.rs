//! Streaming parsers for the few header values the framing scanner reads.
//!
//! A value may arrive split over any number of reads, so each parser takes
//! one byte at a time and keeps a few bytes of state instead of the value.
//! A `\r` is read as whitespace: on accepted input it only ever precedes the
//! `\n` that ends the line.

/// Position within a `Content-Length` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    /// Whitespace before the digits.
    Lead,
    /// Digits so far, as a number.
    Digits(u64),
    /// Whitespace after the digits.
    Trail(u64),
    /// Not a valid length.
    Bad,
}

/// Parses a `Content-Length` value as hyper does: digits only, with the
/// whitespace around them that httparse trims, and no overflow. A list such
/// as `5, 5` (which RFC 9110 §8.6 lets a recipient accept) is invalid to
/// hyper, so it is invalid here too: the scanner must agree with hyper on
/// every request hyper accepts, and stops where hyper rejects.
#[derive(Debug, Clone, Copy)]
pub(super) struct ContentLength {
    num: Num,
}

impl ContentLength {
    pub(super) const fn new() -> Self {
        Self { num: Num::Lead }
    }

    pub(super) fn push(&mut self, b: u8) {
        self.num = match (self.num, b) {
            (Num::Lead, b' ' | b'\t' | b'\r') => Num::Lead,
            (Num::Digits(n) | Num::Trail(n), b' ' | b'\t' | b'\r') => Num::Trail(n),
            (Num::Lead, b'0'..=b'9') => Num::Digits(u64::from(b - b'0')),
            (Num::Digits(n), b'0'..=b'9') => n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .map_or(Num::Bad, Num::Digits),
            _ => Num::Bad,
        };
    }

    /// The length, or `None` when the value is not a valid length.
    pub(super) fn finish(&self) -> Option<u64> {
        match self.num {
            Num::Digits(n) | Num::Trail(n) => Some(n),
            Num::Lead | Num::Bad => None,
        }
    }
}

/// Position within one comma-separated element of a token list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// Whitespace before the element.
    Lead,
    /// This many bytes of the wanted token matched so far (at least one).
    Match(u8),
    /// The whole token matched, then whitespace.
    Trail,
    /// The element is something else.
    Miss,
}

/// Looks for one token (case-insensitive) in a comma-separated list such as
/// `Transfer-Encoding: gzip, chunked` or `Connection: keep-alive, Upgrade`,
/// comparing trimmed elements as hyper does.
#[derive(Debug, Clone, Copy)]
pub(super) struct TokenList {
    tok: Tok,
    any: bool,
    last: bool,
}

impl TokenList {
    pub(super) const fn new() -> Self {
        Self {
            tok: Tok::Lead,
            any: false,
            last: false,
        }
    }

    /// `token` must be lowercase, non-empty and the same on every call.
    pub(super) fn push(&mut self, b: u8, token: &[u8]) {
        self.tok = match (self.tok, b) {
            (_, b',') => {
                self.end_element(token);
                Tok::Lead
            }
            (Tok::Lead | Tok::Trail, b' ' | b'\t' | b'\r') => self.tok,
            (Tok::Match(n), b' ' | b'\t' | b'\r') if usize::from(n) == token.len() => Tok::Trail,
            (Tok::Lead, _) if token.first() == Some(&b.to_ascii_lowercase()) => Tok::Match(1),
            (Tok::Match(n), _) if token.get(usize::from(n)) == Some(&b.to_ascii_lowercase()) => {
                Tok::Match(n.saturating_add(1))
            }
            _ => Tok::Miss,
        };
    }

    fn end_element(&mut self, token: &[u8]) {
        self.last = match self.tok {
            Tok::Trail => true,
            Tok::Match(n) => usize::from(n) == token.len(),
            Tok::Lead | Tok::Miss => false,
        };
        self.any |= self.last;
    }

    /// Pushes every byte of `bytes`.
    pub(super) fn push_all(&mut self, bytes: &[u8], token: &[u8]) {
        bytes.iter().for_each(|&b| self.push(b, token));
    }

    /// Ends the value with its last bytes, `rest`: whether any element was
    /// the token, and whether the last one was.
    pub(super) fn finish_with(&mut self, rest: &[u8], token: &[u8]) -> (bool, bool) {
        if self.tok != Tok::Lead {
            self.push_all(rest, token);
            self.end_element(token);
            return (self.any, self.last);
        }
        // Nothing but whitespace of the current element came before `rest`,
        // so its elements can be compared whole, which is quicker (the usual
        // case: a value that arrives in one read).
        for element in rest.split(|&b| b == b',') {
            self.last = trim(element).eq_ignore_ascii_case(token);
            self.any |= self.last;
        }
        (self.any, self.last)
    }
}

/// `bytes` without the whitespace (and `\r`) around it.
fn trim(bytes: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
    let start = bytes.iter().position(|b| !ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !ws(b))
        .map_or(start, |at| at.saturating_add(1));
    bytes.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cl(value: &str) -> Option<u64> {
        let mut p = ContentLength::new();
        value.bytes().for_each(|b| p.push(b));
        p.finish()
    }

    /// Both ways of reading a value must agree; returns the answer.
    fn list(value: &str, token: &str) -> (bool, bool) {
        let token = token.as_bytes();
        let whole = TokenList::new().finish_with(value.as_bytes(), token);
        for at in 0..=value.len() {
            let (a, b) = value.as_bytes().split_at(at);
            let mut p = TokenList::new();
            p.push_all(a, token);
            assert_eq!(p.finish_with(b, token), whole, "{value:?} split at {at}");
        }
        whole
    }

    #[test]
    fn content_length_values() {
        assert_eq!(cl("0"), Some(0));
        assert_eq!(cl(" 42 \r"), Some(42));
        assert_eq!(cl("0000000000000000000000000007"), Some(7));
        assert_eq!(cl("18446744073709551615"), Some(u64::MAX));
        assert_eq!(cl("18446744073709551616"), None);
        for bad in [
            "", " ", "5, 5", "5,", ",5", "+5", "-5", "5 5", "0x5", "5;", "٥",
        ] {
            assert_eq!(cl(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn token_lists() {
        assert_eq!(list("chunked", "chunked"), (true, true));
        assert_eq!(list(" gzip , CHUNKED\r", "chunked"), (true, true));
        assert_eq!(list("chunked, gzip", "chunked"), (true, false));
        assert_eq!(list("chunked,", "chunked"), (true, false));
        assert_eq!(list("chunkedx", "chunked"), (false, false));
        assert_eq!(list("chunke", "chunked"), (false, false));
        assert_eq!(list("chunk ed", "chunked"), (false, false));
        assert_eq!(list("", "chunked"), (false, false));
        assert_eq!(list("keep-alive, Upgrade", "upgrade"), (true, true));
        assert_eq!(list("upgrade-insecure", "upgrade"), (false, false));
        assert_eq!(list(" \t ,upgrade,,", "upgrade"), (true, false));
        assert_eq!(list("up\rgrade", "upgrade"), (false, false));
        assert_eq!(list("upgrade\r x, close", "upgrade"), (false, false));
        assert_eq!(list(" , Upgrade\t\r", "upgrade"), (true, true));
    }
}
