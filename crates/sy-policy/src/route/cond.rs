//! Path, header and query conditions.

use std::borrow::Cow;

use regex::Regex;

use super::ValueSpec;

/// A compiled path condition.
#[derive(Debug)]
pub(super) enum PathMatch {
    /// No condition (or a prefix that matches every path).
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
    Regex(Regex),
}

impl PathMatch {
    #[inline]
    pub(super) fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path == &**p,
            PathMatch::Prefix(p) => match path.strip_prefix(&**p) {
                Some(rest) => p.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
                None => false,
            },
            PathMatch::Regex(r) => r.is_match(path),
        }
    }
}

/// A compiled header value or query parameter condition. Values are bytes:
/// header values need not be UTF-8, nor decoded query values.
#[derive(Debug)]
pub(super) enum ValueMatch {
    Exact(Box<[u8]>),
    Regex(regex::bytes::Regex),
    Present,
}

impl ValueMatch {
    pub(super) fn new(spec: &ValueSpec) -> Result<Self, regex::Error> {
        Ok(match spec {
            ValueSpec::Exact(v) => ValueMatch::Exact(v.as_bytes().into()),
            ValueSpec::Regex(r) => ValueMatch::Regex(regex::bytes::Regex::new(r)?),
            ValueSpec::Present => ValueMatch::Present,
        })
    }

    /// Whether any of `values` matches (Present: whether there is one).
    pub(super) fn matches_any<'a>(&self, mut values: impl Iterator<Item = &'a [u8]>) -> bool {
        match self {
            ValueMatch::Present => values.next().is_some(),
            ValueMatch::Exact(want) => values.any(|v| v == &**want),
            ValueMatch::Regex(r) => values.any(|v| r.is_match(v)),
        }
    }
}

/// Whether query parameter `name` occurs in `query` with a value matching
/// `cond`. Names and values are `+`/`%XX` decoded; decoding allocates only
/// for a regex over a value that has escapes.
pub(super) fn query_matches(query: Option<&str>, name: &str, cond: &ValueMatch) -> bool {
    let Some(query) = query else {
        return false;
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !decoded_eq(k, name.as_bytes()) {
                return false;
            }
            match cond {
                ValueMatch::Present => true,
                ValueMatch::Exact(want) => decoded_eq(v, want),
                ValueMatch::Regex(r) => r.is_match(&decode(v)),
            }
        })
}

fn has_escapes(s: &str) -> bool {
    s.bytes().any(|b| b == b'+' || b == b'%')
}

/// Whether `raw`, decoded, equals `want`.
fn decoded_eq(raw: &str, want: &[u8]) -> bool {
    if has_escapes(raw) {
        Decode::new(raw).eq(want.iter().copied())
    } else {
        raw.as_bytes() == want
    }
}

/// `raw` decoded: `+` is a space, `%XX` a byte; a `%` not followed by two
/// hex digits stays as it is.
pub(super) fn decode(raw: &str) -> Cow<'_, [u8]> {
    if has_escapes(raw) {
        Cow::Owned(Decode::new(raw).collect())
    } else {
        Cow::Borrowed(raw.as_bytes())
    }
}

struct Decode<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Decode<'a> {
    fn new(raw: &'a str) -> Self {
        Decode {
            bytes: raw.as_bytes(),
            pos: 0,
        }
    }

    fn hex_at(&self, i: usize) -> Option<u8> {
        let b = *self.bytes.get(i)?;
        (b as char).to_digit(16).map(|d| d as u8)
    }
}

impl Iterator for Decode<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        match b {
            b'+' => Some(b' '),
            b'%' => match (self.hex_at(self.pos), self.hex_at(self.pos + 1)) {
                (Some(hi), Some(lo)) => {
                    self.pos += 2;
                    Some(hi << 4 | lo)
                }
                _ => Some(b'%'),
            },
            _ => Some(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(v: &str) -> ValueMatch {
        ValueMatch::Exact(v.as_bytes().into())
    }

    #[test]
    fn prefix_rules() {
        let api = PathMatch::Prefix("/api".into());
        assert!(api.matches("/api"));
        assert!(api.matches("/api/"));
        assert!(api.matches("/api/x"));
        assert!(!api.matches("/apix"));
        assert!(!api.matches("/ap"));
        assert!(!api.matches(""));
        let dir = PathMatch::Prefix("/static/".into());
        assert!(dir.matches("/static/a.css"));
        assert!(dir.matches("/static/"));
        assert!(!dir.matches("/static"));
    }

    #[test]
    fn decoding() {
        assert_eq!(&*decode("a+b%20c%2Fd"), b"a b c/d");
        assert_eq!(&*decode("100%"), b"100%");
        assert_eq!(&*decode("%zz%4"), b"%zz%4");
        assert_eq!(&*decode("%ff"), [0xff]);
        assert_eq!(&*decode("%C3%A9"), "é".as_bytes());
        assert!(matches!(decode("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn query_conditions() {
        let q = Some("a=1&flag&b=x+y&c=%41&a=2&&=e&d=");
        assert!(query_matches(q, "a", &exact("1")));
        assert!(query_matches(q, "a", &exact("2")));
        assert!(!query_matches(q, "a", &exact("3")));
        assert!(query_matches(q, "flag", &ValueMatch::Present));
        assert!(query_matches(q, "flag", &exact("")));
        assert!(query_matches(q, "d", &exact("")));
        assert!(query_matches(q, "b", &exact("x y")));
        assert!(query_matches(q, "c", &exact("A")));
        assert!(!query_matches(q, "zz", &ValueMatch::Present));
        assert!(!query_matches(None, "a", &ValueMatch::Present));
        assert!(query_matches(Some("my+key=1"), "my key", &exact("1")));
        assert!(query_matches(Some("my%20key=1"), "my key", &exact("1")));
        let re = ValueMatch::Regex(
            regex::bytes::Regex::new("^x y$").unwrap_or_else(|e| unreachable!("{e}")),
        );
        assert!(query_matches(q, "b", &re));
    }
}
