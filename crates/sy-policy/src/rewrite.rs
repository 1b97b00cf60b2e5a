//! URL rewrites: a path prefix replaced, a path regex replaced with its
//! captures, query parameters removed, renamed, set and added. Pure
//! functions on strings; the `rewrite` filter applies them to the request
//! sent upstream.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use regex::Regex;

/// Replaces prefix `from` of `path` by `to`. The prefix matches as a
/// route's `path` does: `/api` matches `/api`, `/api/` and `/api/x`, not
/// `/apix`; a prefix ending in `/` matches anything under it. The result
/// always starts with `/` (`/api` with `to = ""` turns `/api` into `/`).
/// None when the prefix does not match.
pub fn replace_prefix(path: &str, from: &str, to: &str) -> Option<String> {
    let rest = path.strip_prefix(from)?;
    if !(from.ends_with('/') || rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let mut out = String::with_capacity(to.len() + rest.len() + 1);
    out.push_str(to);
    if out.ends_with('/') && rest.starts_with('/') {
        out.push_str(&rest[1..]);
    } else {
        if !out.is_empty() && !out.ends_with('/') && !rest.is_empty() && !rest.starts_with('/') {
            out.push('/');
        }
        out.push_str(rest);
    }
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    Some(out)
}

/// Replaces the first match of `re` in `path` by `replacement`, where `$1`,
/// `${name}` stand for captures (the `regex` crate's syntax). None when the
/// pattern does not match.
pub fn replace_regex(path: &str, re: &Regex, replacement: &str) -> Option<String> {
    if !re.is_match(path) {
        return None;
    }
    Some(re.replace(path, replacement).into_owned())
}

/// What to do to the query string, applied in this order: `remove`,
/// `rename`, `set`, `add`. Names compare after percent-decoding; names and
/// values given here are written percent-encoded (encoded once, by
/// [`QueryOps::new`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOps {
    /// Names whose parameters are removed.
    remove: Vec<String>,
    /// (old name, new name, new name written encoded).
    rename: Vec<(String, String, String)>,
    /// (name, the whole `name=value` written encoded).
    set: Vec<(String, String)>,
    /// `name=value` written encoded.
    add: Vec<String>,
}

/// What stays unescaped in a query component: RFC 3986 unreserved.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One query parameter's name: as written and decoded.
struct Param<'a> {
    raw: &'a str,
    name: Cow<'a, str>,
}

impl QueryOps {
    /// The operations: `remove` every parameter of these names, `rename`
    /// (old, new), `set` (name, value) replacing every parameter of the
    /// name by one, `add` (name, value) keeping existing ones.
    pub fn new(
        remove: &[String],
        rename: &[(String, String)],
        set: &[(String, String)],
        add: &[(String, String)],
    ) -> Self {
        let pair = |(n, v): &(String, String)| format!("{}={}", encode(n), encode(v));
        QueryOps {
            remove: remove.to_vec(),
            rename: rename
                .iter()
                .map(|(o, n)| (o.clone(), n.clone(), encode(n)))
                .collect(),
            set: set.iter().map(|e| (e.0.clone(), pair(e))).collect(),
            add: add.iter().map(pair).collect(),
        }
    }

    /// No operation at all.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }

    /// The new query (without `?`), or None for no query at all.
    pub fn apply(&self, query: Option<&str>) -> Option<String> {
        // (name, the rest as written: "=value" or None for a bare flag);
        // each name is decoded once. A renamed parameter keeps its rest.
        let mut params: Vec<(Param<'_>, Option<&str>)> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (name, rest) = match p.find('=') {
                    Some(i) => (&p[..i], Some(&p[i..])),
                    None => (p, None),
                };
                (
                    Param {
                        raw: name,
                        name: decode(name),
                    },
                    rest,
                )
            })
            .collect();
        params.retain(|(p, _)| !self.remove.iter().any(|r| p.name == r.as_str()));
        for (old, new, written) in &self.rename {
            for (p, _) in params.iter_mut() {
                if p.name == old.as_str() {
                    *p = Param {
                        raw: written,
                        name: Cow::Borrowed(new),
                    };
                }
            }
        }
        for (name, entry) in &self.set {
            let at = params.iter().position(|(p, _)| p.name == name.as_str());
            params.retain(|(p, _)| p.name != name.as_str());
            let e = (
                Param {
                    raw: entry,
                    name: Cow::Borrowed(name),
                },
                None,
            );
            match at {
                Some(i) => params.insert(i.min(params.len()), e),
                None => params.push(e),
            }
        }
        if params.is_empty() && self.add.is_empty() {
            return None;
        }
        let mut out = String::new();
        let entries = params
            .iter()
            .map(|(p, rest)| (p.raw, *rest))
            .chain(self.add.iter().map(|a| (a.as_str(), None)));
        for (i, (raw, rest)) in entries.enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(raw);
            out.push_str(rest.unwrap_or(""));
        }
        Some(out)
    }
}

/// Percent-decodes a query component (`+` is a space), lossily: an escape
/// that is not `%` and two hex digits stays as written.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let spaced = s.replace('+', " ");
    Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

/// Percent-encodes a query component: unreserved characters stay.
fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let cases = [
            ("/api/users", "/api", "", Some("/users")),
            ("/api", "/api", "", Some("/")),
            ("/api/", "/api", "", Some("/")),
            ("/apix", "/api", "", None),
            ("/api/users", "/api", "/v2", Some("/v2/users")),
            ("/api/users", "/api/", "/v2/", Some("/v2/users")),
            ("/api/users", "/api", "/v2/", Some("/v2/users")),
            ("/api/users", "/api/", "/v2", Some("/v2/users")),
            ("/old/a?x", "/old", "/new", Some("/new/a?x")),
            ("/", "/", "/app/", Some("/app/")),
            ("/x", "/", "/app", Some("/app/x")),
            ("/other", "/api", "/v2", None),
        ];
        for (path, from, to, want) in cases {
            assert_eq!(
                replace_prefix(path, from, to).as_deref(),
                want,
                "{path} {from} -> {to}"
            );
        }
    }

    #[test]
    fn regexes_with_captures() {
        let re = Regex::new("^/users/(?P<id>[0-9]+)/posts/([0-9]+)$").unwrap();
        assert_eq!(
            replace_regex("/users/42/posts/7", &re, "/u/${id}/p/$2").as_deref(),
            Some("/u/42/p/7")
        );
        assert_eq!(replace_regex("/users/x/posts/7", &re, "/u"), None);
    }

    #[test]
    fn query_operations() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let p = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
        let ops = QueryOps::new(
            &s(&["debug", "utm source"]),
            &p("q", "query"),
            &p("page", "1"),
            &p("via", "edge proxy"),
        );
        assert_eq!(
            ops.apply(Some("q=a+b&debug&page=3&utm+source=x&page=4&keep=%2F"))
                .as_deref(),
            Some("query=a+b&page=1&keep=%2F&via=edge%20proxy")
        );
        assert_eq!(ops.apply(None).as_deref(), Some("page=1&via=edge%20proxy"));
        let remove_all = QueryOps::new(&s(&["a"]), &[], &[], &[]);
        assert_eq!(remove_all.apply(Some("a=1&a=2")), None);
        assert_eq!(remove_all.apply(Some("b&&a=1")).as_deref(), Some("b"));
    }

    proptest::proptest! {
        /// Any query: no panic, and a parameter that no operation names
        /// passes as written.
        #[test]
        fn any_query_applies(q in "[a-z%+=&0-9\\PC]{0,40}") {
            let ops = QueryOps::new(&["a".to_owned()], &[("b".to_owned(), "c d".to_owned())], &[], &[]);
            let out = ops.apply(Some(&format!("{q}&zz=1")));
            proptest::prop_assert!(out.unwrap_or_default().ends_with("zz=1"));
        }
    }

    #[test]
    fn decoding_is_lossy_never_panicking() {
        for s in ["%", "%4", "%zz", "a%2", "%E2%82", "+%41"] {
            let _ = decode(s);
        }
        assert_eq!(decode("%41+b"), "A b");
        // Not an escape: a sign is no hex digit.
        assert_eq!(decode("%+5"), "% 5");
        assert_eq!(decode("%4"), "%4");
    }
}
