//! Routes that can never match: for every request a route accepts, another
//! route comes first in the precedence order and accepts it too.
//!
//! The check is conservative: it names a route only when one other route
//! alone covers it, decided from the conditions as written (a regex is
//! compared by its text, never reasoned about). A route hidden only by
//! several others together is not found; a route named here is certainly
//! unreachable.

use std::cmp::Reverse;

use super::{Hosts, PathRank, PathSpec, RouteSpec, ValueSpec, cond};

/// For each route of one listener's table, in the order given, the index
/// of a route that shadows it, or None.
pub fn shadowed(routes: &[RouteSpec]) -> Vec<Option<usize>> {
    let facts: Vec<Facts<'_>> = routes.iter().map(Facts::new).collect();
    (0..routes.len())
        .map(|b| (0..routes.len()).find(|&a| a != b && shadows(&facts, a, b)))
        .collect()
}

/// What the precedence order and the coverage test look at.
struct Facts<'a> {
    spec: &'a RouteSpec,
    hosts: Hosts,
    path: PathRank,
    conditions: usize,
}

impl<'a> Facts<'a> {
    fn new(spec: &'a RouteSpec) -> Self {
        Facts {
            spec,
            hosts: Hosts::new(&spec.hosts),
            path: super::path_rank(spec.path.as_ref()),
            conditions: usize::from(!spec.methods.is_empty())
                + spec.headers.len()
                + spec.query.len(),
        }
    }
}

/// Whether route `a` takes every request route `b` would match.
fn shadows(facts: &[Facts<'_>], a: usize, b: usize) -> bool {
    let (fa, fb) = (&facts[a], &facts[b]);
    // Every host `b` accepts, `a` accepts at least as well: then for each
    // such host `a` ranks before `b` or ties with it, and on a tie the
    // rest of the precedence key decides.
    let hosts = (!fb.hosts.any || fa.hosts.any)
        && fb.hosts.exact.iter().all(|h| fa.hosts.exact.contains(h))
        && fb
            .hosts
            .wildcards
            .iter()
            .all(|w| fa.hosts.wildcards.contains(w));
    let first = (fa.path, Reverse(fa.conditions), a) < (fb.path, Reverse(fb.conditions), b);
    hosts
        && first
        && path_covers(fa.spec.path.as_ref(), fb.spec.path.as_ref())
        && methods_cover(&fa.spec.methods, &fb.spec.methods)
        && subset(&fa.spec.headers, &fb.spec.headers, true)
        && subset(&fa.spec.query, &fb.spec.query, false)
}

/// Whether path condition `a` holds for every path `b` accepts.
fn path_covers(a: Option<&PathSpec>, b: Option<&PathSpec>) -> bool {
    let any = |p: Option<&PathSpec>| match p {
        None => true,
        Some(PathSpec::Prefix(p)) => p.is_empty() || p == "/",
        _ => false,
    };
    if any(a) {
        return true;
    }
    if any(b) {
        return false;
    }
    match (a, b) {
        (Some(PathSpec::Prefix(pa)), Some(PathSpec::Prefix(pb) | PathSpec::Exact(pb))) => {
            cond::PathMatch::Prefix(pa.as_str().into()).matches(pb)
        }
        (Some(PathSpec::Exact(pa)), Some(PathSpec::Exact(pb))) => pa == pb,
        (Some(PathSpec::Regex(ra)), Some(PathSpec::Regex(rb))) => ra == rb,
        (Some(PathSpec::Regex(ra)), Some(PathSpec::Exact(pb))) => {
            regex::Regex::new(ra).is_ok_and(|r| r.is_match(pb))
        }
        _ => false,
    }
}

/// Whether `a`'s methods allow every method `b` allows.
fn methods_cover(a: &[String], b: &[String]) -> bool {
    a.is_empty()
        || (!b.is_empty()
            && b.iter()
                .all(|m| a.iter().any(|n| n.eq_ignore_ascii_case(m))))
}

/// Whether every condition of `a` is also one of `b` (then `b`'s requests
/// all meet it). Header names compare case-insensitively.
fn subset(a: &[(String, ValueSpec)], b: &[(String, ValueSpec)], fold_case: bool) -> bool {
    a.iter().all(|(name, v)| {
        b.iter().any(|(other, w)| {
            v == w
                && if fold_case {
                    name.eq_ignore_ascii_case(other)
                } else {
                    name == other
                }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(hosts: &[&str], path: Option<PathSpec>) -> RouteSpec {
        RouteSpec {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            path,
            ..RouteSpec::default()
        }
    }

    fn prefix(p: &str) -> Option<PathSpec> {
        Some(PathSpec::Prefix(p.to_owned()))
    }

    fn exact(p: &str) -> Option<PathSpec> {
        Some(PathSpec::Exact(p.to_owned()))
    }

    fn regex(p: &str) -> Option<PathSpec> {
        Some(PathSpec::Regex(p.to_owned()))
    }

    #[test]
    fn what_is_shadowed_and_what_is_not() {
        let with_methods = |r: RouteSpec, m: &[&str]| RouteSpec {
            methods: m.iter().map(|s| (*s).to_owned()).collect(),
            ..r
        };
        let with_header = |r: RouteSpec, name: &str, v: ValueSpec| RouteSpec {
            headers: vec![(name.to_owned(), v)],
            ..r
        };
        // (routes, expected shadowing, why)
        type Case = (Vec<RouteSpec>, Vec<Option<usize>>, &'static str);
        let cases: Vec<Case> = vec![
            (
                vec![route(&[], prefix("/api")), route(&[], prefix("/api"))],
                vec![None, Some(0)],
                "a duplicate later in the file",
            ),
            (
                vec![route(&[], prefix("/api")), route(&[], prefix("/api/v1"))],
                vec![None, None],
                "a longer prefix comes first",
            ),
            (
                vec![route(&[], prefix("/")), route(&[], None)],
                vec![None, Some(0)],
                "`path = \"/\"` ranks before a route without a path and takes everything",
            ),
            (
                vec![route(&[], None), route(&[], prefix("/"))],
                vec![Some(1), None],
                "...whatever the file order",
            ),
            (
                vec![route(&[], prefix("/")), route(&[], regex("^/x"))],
                vec![None, Some(0)],
                "a prefix ranks before any regex",
            ),
            (
                vec![route(&[], prefix("/a")), route(&[], exact("/a/b"))],
                vec![None, None],
                "an exact path ranks first",
            ),
            (
                vec![route(&[], exact("/a")), route(&[], exact("/a"))],
                vec![None, Some(0)],
                "same exact path twice",
            ),
            (
                vec![
                    route(&["api.example.com"], prefix("/")),
                    route(&[], prefix("/")),
                ],
                vec![None, None],
                "a host-specific route does not cover other hosts",
            ),
            (
                vec![
                    route(&[], prefix("/")),
                    route(&["api.example.com"], prefix("/")),
                ],
                vec![None, None],
                "an exact host ranks before a route for any host",
            ),
            (
                vec![
                    route(&["a.example.com", "b.example.com"], None),
                    route(&["a.example.com"], None),
                ],
                vec![None, Some(0)],
                "the first route lists every host of the second",
            ),
            (
                vec![
                    route(&["*.example.com"], None),
                    route(&["*.example.com"], None),
                ],
                vec![None, Some(0)],
                "same wildcard",
            ),
            (
                vec![
                    with_methods(route(&[], None), &["GET", "POST"]),
                    with_methods(route(&[], None), &["get"]),
                ],
                vec![None, Some(0)],
                "a method list that includes the other's",
            ),
            (
                vec![
                    with_methods(route(&[], None), &["GET"]),
                    with_methods(route(&[], None), &["GET", "POST"]),
                ],
                vec![None, None],
                "POST still reaches the second route",
            ),
            (
                vec![
                    route(&[], None),
                    with_header(route(&[], None), "x-canary", ValueSpec::Present),
                ],
                vec![None, None],
                "more conditions rank first",
            ),
            (
                vec![
                    with_header(route(&[], None), "X-Canary", ValueSpec::Present),
                    with_header(route(&[], None), "x-canary", ValueSpec::Present),
                ],
                vec![None, Some(0)],
                "same header condition, names in another case",
            ),
            (
                vec![
                    with_header(route(&[], None), "x-a", ValueSpec::Exact("1".into())),
                    with_header(route(&[], None), "x-a", ValueSpec::Exact("2".into())),
                ],
                vec![None, None],
                "different header values",
            ),
            (
                vec![route(&[], regex("^/v[0-9]+/")), route(&[], regex("^/v1/"))],
                vec![None, None],
                "regexes are not reasoned about",
            ),
        ];
        for (routes, expected, why) in cases {
            assert_eq!(shadowed(&routes), expected, "{why}");
        }
    }
}
