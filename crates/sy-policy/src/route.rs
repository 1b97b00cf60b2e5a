//! The route table: which configured route a request takes.
//!
//! [`RouteTable::new`] compiles the routes of a config snapshot once;
//! [`RouteTable::select`] runs on every request and returns the index of the
//! winning route.
//!
//! # Precedence
//!
//! Among the routes, candidates are ordered by
//!
//! 1. **host**: an exact host match beats the longest matching `*.suffix`
//!    wildcard, which beats a route with no `hosts`;
//! 2. **path**: `path_exact` beats `path` prefixes (longer first), which beat
//!    `path_regex`, which beats no path condition;
//! 3. routes with more method/header/query conditions first (a non-empty
//!    `methods` list counts as one condition, each header and each query
//!    parameter as one);
//! 4. file order.
//!
//! The first candidate whose conditions all hold wins. A route that lists
//! several hosts ranks by the best of them that matches the request.
//!
//! # Matching rules
//!
//! - Hosts compare ASCII case-insensitively, ignoring a `:port` suffix
//!   (IPv6 literals may be bracketed, `[::1]:80` is `::1`) and a trailing
//!   dot. `*.example.com` matches `a.example.com` and `a.b.example.com` but
//!   not `example.com`. A configured host `*` means any host, like an empty
//!   `hosts`. A request without a host (`""`) matches only routes with no
//!   `hosts` (or with `*`).
//! - The path is matched as given (no decoding, no normalisation; the caller
//!   does that). Prefix `/api` matches `/api` and `/api/x` but not `/apix`; a
//!   prefix ending in `/` matches anything starting with it; prefix `/` (or
//!   an empty prefix) matches every path. A path regex is unanchored unless
//!   the pattern anchors itself.
//! - Methods compare exactly after upper-casing the configured names (HTTP
//!   methods are case-sensitive, RFC 9110 section 9.1).
//! - A header condition holds when any value (any field line) of that header
//!   matches; a value is the whole field line, bytes as sent.
//! - A query condition parses `a=1&b=2`, decoding `+` as space and `%XX`
//!   escapes in names and values; `flag` without `=` has the empty value.
//!   It holds when any occurrence of the name matches. `Present` holds for
//!   any occurrence, with or without a value.
//!
//! # Cost
//!
//! Candidate lists are precomputed: one per exact host (already merged with
//! the wildcard and host-less routes that also match it, in precedence
//! order), one per wildcard suffix, and one for all other hosts. A request
//! costs one hash lookup for its host (plus one per dot when wildcards are
//! configured and the host is not an exact one), with the host lower-cased
//! in a stack buffer, then a walk of the candidates. With no host-specific
//! routes the host is not even looked at.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use http::HeaderName;
use regex::Regex;
use xxhash_rust::xxh3::xxh3_64;

mod cond;
mod host;
mod shadow;
#[cfg(test)]
mod tests;

use cond::{PathMatch, ValueMatch, query_matches};
pub use host::normalize_host;
pub use shadow::shadowed;

/// One route's match conditions, as configured. All given conditions must
/// hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteSpec {
    /// Exact host names or `*.suffix` wildcards; empty = any host.
    pub hosts: Vec<String>,
    /// Path condition; None = any path.
    pub path: Option<PathSpec>,
    /// Allowed methods; empty = any method.
    pub methods: Vec<String>,
    /// Header name (any case) -> condition. A name that is not a valid
    /// header name never matches (config validation should reject it).
    pub headers: Vec<(String, ValueSpec)>,
    /// Query parameter name -> condition.
    pub query: Vec<(String, ValueSpec)>,
}

/// A path condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSpec {
    /// The path equals this string.
    Exact(String),
    /// The path is this prefix or continues it with `/` (see the module
    /// doc).
    Prefix(String),
    /// The path matches this regex (Rust `regex` syntax, unanchored unless
    /// the pattern anchors itself).
    Regex(String),
}

/// A header value or query parameter condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSpec {
    /// The value equals this string.
    Exact(String),
    /// The value matches this regex (unanchored unless the pattern anchors
    /// itself).
    Regex(String),
    /// The header or parameter is present, whatever its value.
    Present,
}

/// The parts of a request that routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The request method.
    pub method: &'a http::Method,
    /// The Host header or `:authority`; may carry `:port`; may be `""`.
    pub host: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query string without the `?`, if any.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
}

/// A compiled route table; see the module doc for the precedence rules.
#[derive(Debug)]
pub struct RouteTable {
    routes: Box<[Compiled]>,
    /// Candidates per exact host.
    exact: HostMap,
    /// Candidates per wildcard suffix (for hosts that are not exact hosts).
    wildcard: HostMap,
    /// Candidates for every other host: the routes with no `hosts`.
    fallback: Box<[u32]>,
}

/// One route, compiled.
#[derive(Debug)]
struct Compiled {
    path: PathMatch,
    methods: Box<[Box<str>]>,
    /// None: the configured name is not a valid header name, so the
    /// condition never holds.
    headers: Box<[(Option<HeaderName>, ValueMatch)]>,
    query: Box<[(Box<str>, ValueMatch)]>,
}

impl Compiled {
    fn new(spec: &RouteSpec) -> Result<Self, regex::Error> {
        let path = match &spec.path {
            None => PathMatch::Any,
            Some(PathSpec::Exact(p)) => PathMatch::Exact(p.as_str().into()),
            Some(PathSpec::Prefix(p)) if p.is_empty() || p == "/" => PathMatch::Any,
            Some(PathSpec::Prefix(p)) => PathMatch::Prefix(p.as_str().into()),
            Some(PathSpec::Regex(r)) => PathMatch::Regex(Regex::new(r)?),
        };
        let methods = spec
            .methods
            .iter()
            .map(|m| m.to_ascii_uppercase().into_boxed_str())
            .collect();
        let headers = spec
            .headers
            .iter()
            .map(|(name, v)| {
                let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok();
                Ok((name, ValueMatch::new(v)?))
            })
            .collect::<Result<_, regex::Error>>()?;
        let query = spec
            .query
            .iter()
            .map(|(name, v)| Ok((name.as_str().into(), ValueMatch::new(v)?)))
            .collect::<Result<_, regex::Error>>()?;
        Ok(Compiled {
            path,
            methods,
            headers,
            query,
        })
    }

    /// Everything but the host.
    #[inline]
    fn matches(&self, req: &RequestView<'_>) -> bool {
        self.path.matches(req.path)
            && (self.methods.is_empty() || self.methods.iter().any(|m| **m == *req.method.as_str()))
            && self.headers.iter().all(|(name, v)| match name {
                Some(name) => v.matches_any(req.headers.get_all(name).iter().map(|v| v.as_bytes())),
                None => false,
            })
            && self
                .query
                .iter()
                .all(|(name, v)| query_matches(req.query, name, v))
    }
}

/// Where a route's host condition puts it, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HostRank {
    Exact,
    /// Longer suffixes first.
    Wildcard(Reverse<usize>),
    Any,
}

/// A route's host condition, normalised.
#[derive(Debug, Default)]
struct Hosts {
    exact: Vec<String>,
    /// Suffixes of `*.suffix` wildcards.
    wildcards: Vec<String>,
    any: bool,
}

impl Hosts {
    fn new(hosts: &[String]) -> Self {
        let mut h = Hosts {
            any: hosts.is_empty(),
            ..Hosts::default()
        };
        for raw in hosts {
            let name = normalize_host(raw);
            if name == "*" {
                h.any = true;
            } else if let Some(suffix) = name.strip_prefix("*.") {
                if suffix.is_empty() {
                    h.any = true;
                } else {
                    h.wildcards.push(suffix.to_owned());
                }
            } else {
                h.exact.push(name);
            }
        }
        h
    }

    /// Rank for a request whose host is the exact host `name`.
    fn rank_exact(&self, name: &str) -> Option<HostRank> {
        if self.exact.iter().any(|e| e == name) {
            return Some(HostRank::Exact);
        }
        self.best_wildcard(|s| host::wildcard_matches(s, name))
            .or(self.any.then_some(HostRank::Any))
    }

    /// Rank for a request host `x.suffix` whose longest matching wildcard is
    /// `*.suffix` and which is no exact host.
    fn rank_wildcard(&self, suffix: &str) -> Option<HostRank> {
        self.best_wildcard(|s| s == suffix || host::wildcard_matches(s, suffix))
            .or(self.any.then_some(HostRank::Any))
    }

    fn best_wildcard(&self, matches: impl Fn(&str) -> bool) -> Option<HostRank> {
        self.wildcards
            .iter()
            .filter(|s| matches(s))
            .map(|s| s.len())
            .max()
            .map(|len| HostRank::Wildcard(Reverse(len)))
    }
}

/// Where a route's path condition puts it, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathRank {
    Exact,
    /// Longer prefixes first.
    Prefix(Reverse<usize>),
    Regex,
    Any,
}

/// Where a path condition ranks.
fn path_rank(path: Option<&PathSpec>) -> PathRank {
    match path {
        Some(PathSpec::Exact(_)) => PathRank::Exact,
        // "" and "/" match every path but are still a path condition,
        // ranked as the shortest prefixes.
        Some(PathSpec::Prefix(p)) => PathRank::Prefix(Reverse(p.len())),
        Some(PathSpec::Regex(_)) => PathRank::Regex,
        None => PathRank::Any,
    }
}

/// The precedence key of a route, given how its host matched.
type Key = (HostRank, PathRank, Reverse<usize>, usize);

/// Order the routes that pass `rank` by precedence.
fn candidates(
    routes: &[(Hosts, PathRank, usize)],
    rank: impl Fn(&Hosts) -> Option<HostRank>,
) -> Box<[u32]> {
    let mut keyed: Vec<(Key, u32)> = routes
        .iter()
        .enumerate()
        .filter_map(|(i, (hosts, path, conditions))| {
            let host = rank(hosts)?;
            let idx = u32::try_from(i).ok()?;
            Some(((host, *path, Reverse(*conditions), i), idx))
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

impl RouteTable {
    /// Compile `routes`; the error is the first regex that does not
    /// compile. Routes past index `u32::MAX` are ignored.
    pub fn new(routes: &[RouteSpec]) -> Result<RouteTable, regex::Error> {
        let compiled = routes
            .iter()
            .map(Compiled::new)
            .collect::<Result<Box<[_]>, _>>()?;
        let ranked: Vec<(Hosts, PathRank, usize)> = routes
            .iter()
            .map(|r| {
                let path = path_rank(r.path.as_ref());
                let conditions =
                    usize::from(!r.methods.is_empty()) + r.headers.len() + r.query.len();
                (Hosts::new(&r.hosts), path, conditions)
            })
            .collect();

        let mut exact_names: Vec<&str> = ranked
            .iter()
            .flat_map(|(h, _, _)| h.exact.iter().map(String::as_str))
            .collect();
        exact_names.sort_unstable();
        exact_names.dedup();
        let mut suffixes: Vec<&str> = ranked
            .iter()
            .flat_map(|(h, _, _)| h.wildcards.iter().map(String::as_str))
            .collect();
        suffixes.sort_unstable();
        suffixes.dedup();

        let exact = HostMap::build(
            exact_names
                .iter()
                .map(|&name| (name, candidates(&ranked, |h| h.rank_exact(name)))),
        );
        let wildcard = HostMap::build(
            suffixes
                .iter()
                .map(|&suffix| (suffix, candidates(&ranked, |h| h.rank_wildcard(suffix)))),
        );
        let fallback = candidates(&ranked, |h| h.any.then_some(HostRank::Any));
        Ok(RouteTable {
            routes: compiled,
            exact,
            wildcard,
            fallback,
        })
    }

    /// Index (into the `routes` given to `new`) of the winning route.
    pub fn select(&self, req: &RequestView<'_>) -> Option<usize> {
        if self.exact.is_empty() && self.wildcard.is_empty() {
            self.first_match(&self.fallback, req)
        } else {
            host::with_request_host(req.host, |name| {
                self.first_match(self.candidates_for(name), req)
            })
        }
    }

    /// The first of `list` whose conditions hold.
    #[inline]
    fn first_match(&self, list: &[u32], req: &RequestView<'_>) -> Option<usize> {
        list.iter()
            .map(|&i| i as usize)
            .find(|&i| self.routes.get(i).is_some_and(|r| r.matches(req)))
    }

    /// The candidate list for a normalised host.
    fn candidates_for(&self, name: &str) -> &[u32] {
        if let Some(list) = self.exact.get(name) {
            return list;
        }
        if !self.wildcard.is_empty() {
            // Dot positions left to right give the longest suffix first; a
            // wildcard needs a non-empty label before the suffix.
            for (p, _) in name.match_indices('.').filter(|&(p, _)| p > 0) {
                if let Some(list) = name.get(p + 1..).and_then(|s| self.wildcard.get(s)) {
                    return list;
                }
            }
        }
        &self.fallback
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// A read-only map from a host name to a candidate list, keyed by the name's
/// xxh3 so a lookup hashes the name once, fast. The keys come from the
/// config, never from requests, so fixed-seed hashing is no flooding risk.
#[derive(Debug, Default)]
struct HostMap {
    map: HashMap<u64, Vec<HostEntry>, BuildHasherDefault<Prehashed>>,
}

/// A host name and its candidate list.
type HostEntry = (Box<str>, Box<[u32]>);

impl HostMap {
    fn build<'a>(entries: impl Iterator<Item = (&'a str, Box<[u32]>)>) -> Self {
        let mut map: HashMap<u64, Vec<HostEntry>, _> = HashMap::default();
        for (name, list) in entries {
            map.entry(xxh3_64(name.as_bytes()))
                .or_default()
                .push((name.into(), list));
        }
        HostMap { map }
    }

    fn get(&self, name: &str) -> Option<&[u32]> {
        self.map
            .get(&xxh3_64(name.as_bytes()))?
            .iter()
            .find(|(k, _)| **k == *name)
            .map(|(_, list)| &**list)
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A `Hasher` for keys that are already hashes.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; fold anything else in anyway.
        self.0 = bytes
            .iter()
            .fold(self.0, |h, &b| h.rotate_left(8) ^ u64::from(b));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
