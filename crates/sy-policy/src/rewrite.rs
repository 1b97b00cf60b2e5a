//! URL rewrites: a path prefix replaced, a path regex replaced with its
//! captures, query parameters removed, renamed, set and added. Pure
//! functions on strings; the `rewrite` filter applies them to the request
//! sent upstream.

use std::borrow::Cow;

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
/// values given here are written percent-encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOps {
    /// Remove every parameter of these names.
    pub remove: Vec<String>,
    /// Rename parameters: (old, new).
    pub rename: Vec<(String, String)>,
    /// Replace every parameter of the name by one with this value.
    pub set: Vec<(String, String)>,
    /// Add a parameter, keeping existing ones of the same name.
    pub add: Vec<(String, String)>,
}

impl QueryOps {
    /// No operation at all.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }

    /// The new query (without `?`), or None for no query at all.
    pub fn apply(&self, query: Option<&str>) -> Option<String> {
        // (raw name, raw value or None for a bare flag)
        let mut params: Vec<(Cow<'_, str>, Option<Cow<'_, str>>)> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (Cow::Borrowed(n), Some(Cow::Borrowed(v))),
                None => (Cow::Borrowed(p), None),
            })
            .collect();
        let same = |raw: &str, name: &str| decode(raw) == name;
        params.retain(|(n, _)| !self.remove.iter().any(|r| same(n, r)));
        for (old, new) in &self.rename {
            for (n, _) in params.iter_mut() {
                if same(n, old) {
                    *n = Cow::Owned(encode(new));
                }
            }
        }
        for (name, value) in &self.set {
            let at = params.iter().position(|(n, _)| same(n, name));
            params.retain(|(n, _)| !same(n, name));
            let entry = (Cow::Owned(encode(name)), Some(Cow::Owned(encode(value))));
            match at {
                Some(i) => params.insert(i.min(params.len()), entry),
                None => params.push(entry),
            }
        }
        for (name, value) in &self.add {
            params.push((Cow::Owned(encode(name)), Some(Cow::Owned(encode(value)))));
        }
        if params.is_empty() {
            return None;
        }
        let mut out = String::new();
        for (i, (n, v)) in params.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(n);
            if let Some(v) = v {
                out.push('=');
                out.push_str(v);
            }
        }
        Some(out)
    }
}

/// Percent-decodes a query component (`+` is a space), lossily.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Percent-encodes a query component: unreserved characters stay.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
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
        let ops = QueryOps {
            remove: vec!["debug".into(), "utm source".into()],
            rename: vec![("q".into(), "query".into())],
            set: vec![("page".into(), "1".into())],
            add: vec![("via".into(), "edge proxy".into())],
        };
        assert_eq!(
            ops.apply(Some("q=a+b&debug&page=3&utm+source=x&page=4&keep=%2F"))
                .as_deref(),
            Some("query=a+b&page=1&keep=%2F&via=edge%20proxy")
        );
        assert_eq!(ops.apply(None).as_deref(), Some("page=1&via=edge%20proxy"));
        let remove_all = QueryOps {
            remove: vec!["a".into()],
            ..QueryOps::default()
        };
        assert_eq!(remove_all.apply(Some("a=1&a=2")), None);
        assert_eq!(remove_all.apply(Some("b&&a=1")).as_deref(), Some("b"));
    }

    #[test]
    fn decoding_is_lossy_never_panicking() {
        for s in ["%", "%4", "%zz", "a%2", "%E2%82", "+%41"] {
            let _ = decode(s);
        }
        assert_eq!(decode("%41+b"), "A b");
    }
}
