use super::*;
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

/// A route builder for terse tables.
#[derive(Clone, Default)]
struct R(RouteSpec);

impl R {
    fn hosts(mut self, hosts: &[&str]) -> Self {
        self.0.hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        self
    }
    fn exact(mut self, p: &str) -> Self {
        self.0.path = Some(PathSpec::Exact(p.into()));
        self
    }
    fn prefix(mut self, p: &str) -> Self {
        self.0.path = Some(PathSpec::Prefix(p.into()));
        self
    }
    fn regex(mut self, p: &str) -> Self {
        self.0.path = Some(PathSpec::Regex(p.into()));
        self
    }
    fn methods(mut self, m: &[&str]) -> Self {
        self.0.methods = m.iter().map(|m| (*m).to_owned()).collect();
        self
    }
    fn header(mut self, name: &str, v: ValueSpec) -> Self {
        self.0.headers.push((name.into(), v));
        self
    }
    fn query(mut self, name: &str, v: ValueSpec) -> Self {
        self.0.query.push((name.into(), v));
        self
    }
}

fn table(routes: &[R]) -> RouteTable {
    let specs: Vec<RouteSpec> = routes.iter().map(|r| r.0.clone()).collect();
    match RouteTable::new(&specs) {
        Ok(t) => t,
        Err(e) => unreachable!("test routes compile: {e}"),
    }
}

/// A request: method, host, path with optional `?query`, headers.
#[derive(Debug, Clone)]
struct Req {
    method: Method,
    host: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

fn req(method: &str, host: &str, target: &str) -> Req {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    Req {
        method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET),
        host: host.into(),
        path,
        query,
        headers: HeaderMap::new(),
    }
}

impl Req {
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.append(name, HeaderValue::from_static(value));
        self
    }
    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
        }
    }
}

fn select(t: &RouteTable, r: &Req) -> Option<usize> {
    t.select(&r.view())
}

fn get(host: &str, target: &str) -> Req {
    req("GET", host, target)
}

fn exact_value(v: &str) -> ValueSpec {
    ValueSpec::Exact(v.into())
}

#[test]
fn table_is_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RouteTable>();
}

#[test]
fn empty_table_selects_nothing() {
    let t = table(&[]);
    assert!(t.is_empty());
    assert_eq!(select(&t, &get("a.com", "/")), None);
}

#[test]
fn catch_all() {
    let t = table(&[R::default()]);
    assert_eq!(t.len(), 1);
    for (host, path) in [("a.com", "/"), ("", ""), ("x:1", "/a/b?c"), ("[::1]", "*")] {
        assert_eq!(select(&t, &get(host, path)), Some(0));
    }
}

#[test]
fn host_exact_beats_wildcard_beats_hostless() {
    // File order is the reverse of precedence.
    let t = table(&[
        R::default(),
        R::default().hosts(&["*.com"]),
        R::default().hosts(&["*.example.com"]),
        R::default().hosts(&["api.example.com"]),
    ]);
    assert_eq!(select(&t, &get("api.example.com", "/")), Some(3));
    assert_eq!(select(&t, &get("www.example.com", "/")), Some(2));
    assert_eq!(select(&t, &get("a.b.example.com", "/")), Some(2));
    assert_eq!(select(&t, &get("example.com", "/")), Some(1));
    assert_eq!(select(&t, &get("other.com", "/")), Some(1));
    assert_eq!(select(&t, &get("other.org", "/")), Some(0));
    assert_eq!(select(&t, &get("", "/")), Some(0));
}

#[test]
fn exact_host_falls_through_to_wildcard_and_hostless_when_conditions_fail() {
    let t = table(&[
        R::default(),
        R::default().hosts(&["*.example.com"]).prefix("/w"),
        R::default().hosts(&["api.example.com"]).prefix("/api"),
    ]);
    assert_eq!(select(&t, &get("api.example.com", "/api/x")), Some(2));
    assert_eq!(select(&t, &get("api.example.com", "/w")), Some(1));
    assert_eq!(select(&t, &get("api.example.com", "/z")), Some(0));
    assert_eq!(select(&t, &get("b.example.com", "/api")), Some(0));
}

#[test]
fn host_normalisation() {
    let t = table(&[
        R::default().hosts(&["Example.COM."]),
        R::default().hosts(&["*.Wild.org"]),
        R::default().hosts(&["[::1]"]),
    ]);
    for host in [
        "example.com",
        "EXAMPLE.com",
        "example.com:8080",
        "example.com.",
        "Example.Com.:443",
    ] {
        assert_eq!(select(&t, &get(host, "/")), Some(0), "{host}");
    }
    assert_eq!(select(&t, &get("A.WILD.ORG:80", "/")), Some(1));
    assert_eq!(select(&t, &get("wild.org", "/")), None);
    assert_eq!(select(&t, &get(".wild.org", "/")), None);
    assert_eq!(select(&t, &get("[::1]:8080", "/")), Some(2));
    assert_eq!(select(&t, &get("", "/")), None);
    assert_eq!(select(&t, &get("example.co", "/")), None);
}

#[test]
fn star_host_means_any_host() {
    let t = table(&[
        R::default().hosts(&["*"]).prefix("/s"),
        R::default().hosts(&["a.com"]),
    ]);
    assert_eq!(select(&t, &get("zzz", "/s")), Some(0));
    assert_eq!(select(&t, &get("a.com", "/s")), Some(1));
    assert_eq!(select(&t, &get("", "/s")), Some(0));
}

#[test]
fn a_route_ranks_by_its_best_matching_host() {
    let t = table(&[
        R::default().hosts(&["*.example.com"]),
        R::default().hosts(&["*.com", "api.example.com"]),
    ]);
    assert_eq!(select(&t, &get("api.example.com", "/")), Some(1));
    assert_eq!(select(&t, &get("www.example.com", "/")), Some(0));
    assert_eq!(select(&t, &get("www.other.com", "/")), Some(1));
}

#[test]
fn path_exact_beats_longer_prefix_beats_regex_beats_none() {
    let t = table(&[
        R::default(),
        R::default().regex("^/api"),
        R::default().prefix("/api"),
        R::default().prefix("/api/v1"),
        R::default().exact("/api/v1/users"),
    ]);
    assert_eq!(select(&t, &get("h", "/api/v1/users")), Some(4));
    assert_eq!(select(&t, &get("h", "/api/v1/users/7")), Some(3));
    assert_eq!(select(&t, &get("h", "/api/v2")), Some(2));
    assert_eq!(select(&t, &get("h", "/apix")), Some(1));
    assert_eq!(select(&t, &get("h", "/other")), Some(0));
}

#[test]
fn host_rank_comes_before_path_rank() {
    let t = table(&[R::default().exact("/x"), R::default().hosts(&["a.com"])]);
    assert_eq!(select(&t, &get("a.com", "/x")), Some(1));
    assert_eq!(select(&t, &get("b.com", "/x")), Some(0));
}

#[test]
fn prefix_rules() {
    let t = table(&[
        R::default().prefix("/api"),
        R::default().prefix("/static/"),
        R::default().prefix("/"),
    ]);
    assert_eq!(select(&t, &get("h", "/api")), Some(0));
    assert_eq!(select(&t, &get("h", "/api/")), Some(0));
    assert_eq!(select(&t, &get("h", "/api/x")), Some(0));
    assert_eq!(select(&t, &get("h", "/apix")), Some(2));
    assert_eq!(select(&t, &get("h", "/static/a.css")), Some(1));
    assert_eq!(select(&t, &get("h", "/static")), Some(2));
    assert_eq!(select(&t, &get("h", "*")), Some(2));
    assert_eq!(select(&t, &get("h", "")), Some(2));
}

#[test]
fn regex_is_unanchored_unless_anchored() {
    let t = table(&[R::default().regex("v[0-9]+"), R::default().regex("^/only$")]);
    assert_eq!(select(&t, &get("h", "/api/v2/x")), Some(0));
    assert_eq!(select(&t, &get("h", "/only")), Some(1));
    assert_eq!(select(&t, &get("h", "/only/not")), None);
}

#[test]
fn more_conditions_first_then_file_order() {
    let t = table(&[
        R::default().prefix("/p"),
        R::default().prefix("/p").methods(&["GET", "POST"]),
        R::default()
            .prefix("/p")
            .methods(&["GET"])
            .header("x-canary", ValueSpec::Present),
        R::default().prefix("/p").methods(&["GET"]),
    ]);
    assert_eq!(
        select(&t, &req("GET", "h", "/p").header("x-canary", "1")),
        Some(2)
    );
    // Routes 1 and 3 both have one condition: file order.
    assert_eq!(select(&t, &req("GET", "h", "/p")), Some(1));
    assert_eq!(select(&t, &req("POST", "h", "/p")), Some(1));
    assert_eq!(select(&t, &req("PUT", "h", "/p")), Some(0));
}

#[test]
fn methods_compare_after_upper_casing_config() {
    let t = table(&[R::default().methods(&["get", "Purge"])]);
    assert_eq!(select(&t, &req("GET", "h", "/")), Some(0));
    assert_eq!(select(&t, &req("PURGE", "h", "/")), Some(0));
    assert_eq!(select(&t, &req("get", "h", "/")), None);
    assert_eq!(select(&t, &req("POST", "h", "/")), None);
}

#[test]
fn header_conditions() {
    let t = table(&[
        R::default()
            .header("X-Env", exact_value("canary"))
            .header("user-agent", ValueSpec::Regex("(?i)bot".into())),
        R::default().header("x-env", ValueSpec::Present),
        R::default().header("bad header name", ValueSpec::Present),
    ]);
    let r = get("h", "/")
        .header("x-env", "prod")
        .header("x-env", "canary")
        .header("user-agent", "GoogleBot/2");
    assert_eq!(select(&t, &r), Some(0), "any value of a repeated header");
    let r = get("h", "/")
        .header("x-env", "prod")
        .header("user-agent", "GoogleBot/2");
    assert_eq!(select(&t, &r), Some(1));
    assert_eq!(
        select(&t, &get("h", "/")),
        None,
        "invalid header name never matches"
    );
    let r = get("h", "/")
        .header("x-env", "Canary")
        .header("user-agent", "bot");
    assert_eq!(select(&t, &r), Some(1), "exact values are case-sensitive");
}

#[test]
fn query_conditions() {
    let t = table(&[
        R::default().query("q", ValueSpec::Regex("^a b$".into())),
        R::default()
            .query("debug", ValueSpec::Present)
            .query("v", exact_value("2")),
        R::default().query("debug", ValueSpec::Present),
    ]);
    assert_eq!(select(&t, &get("h", "/?q=a+b")), Some(0));
    assert_eq!(select(&t, &get("h", "/?x=1&q=a%20b")), Some(0));
    assert_eq!(select(&t, &get("h", "/?debug&v=2")), Some(1));
    assert_eq!(select(&t, &get("h", "/?v=1&debug=&v=2")), Some(1));
    assert_eq!(select(&t, &get("h", "/?debug")), Some(2));
    assert_eq!(select(&t, &get("h", "/?debugx=1")), None);
    assert_eq!(select(&t, &get("h", "/")), None);
}

#[test]
fn invalid_regex_is_an_error() {
    assert!(RouteTable::new(&[R::default().regex("(").0]).is_err());
    assert!(RouteTable::new(&[R::default().header("a", ValueSpec::Regex("[".into())).0]).is_err());
    assert!(RouteTable::new(&[R::default().query("a", ValueSpec::Regex("*".into())).0]).is_err());
}

#[test]
fn long_and_odd_hosts() {
    let long = "A".repeat(1000) + ".example.com";
    let t = table(&[R::default().hosts(&["*.example.com", &long])]);
    assert_eq!(select(&t, &get(&long, "/")), Some(0));
    assert_eq!(select(&t, &get(&long.to_lowercase(), "/")), Some(0));
    assert_eq!(select(&t, &get("ü.EXAMPLE.com", "/")), Some(0));
    assert_eq!(select(&t, &get("[", "/")), None);
    assert_eq!(select(&t, &get(":::::", "/")), None);
}

/// The precedence rules, evaluated directly and slowly: the reference the
/// precomputed table must agree with.
fn naive_select(routes: &[RouteSpec], r: &Req) -> Option<usize> {
    let host = normalize_host(&r.host);
    let host_rank = |spec: &RouteSpec| -> Option<(u8, Reverse<usize>)> {
        let mut best: Option<(u8, Reverse<usize>)> = None;
        if spec.hosts.is_empty() {
            best = Some((2, Reverse(0)));
        }
        for h in spec.hosts.iter().map(|h| normalize_host(h)) {
            let rank = if h == "*" || h == "*." {
                Some((2, Reverse(0)))
            } else if let Some(suffix) = h.strip_prefix("*.") {
                let label_len = host.len().checked_sub(suffix.len() + 1);
                (label_len.is_some_and(|l| l > 0) && host.ends_with(&format!(".{suffix}")))
                    .then_some((1, Reverse(suffix.len())))
            } else {
                (h == host).then_some((0, Reverse(0)))
            };
            best = match (best, rank) {
                (Some(b), Some(r)) => Some(b.min(r)),
                (b, r) => b.or(r),
            };
        }
        best
    };
    let path_ok = |spec: &RouteSpec| match &spec.path {
        None => true,
        Some(PathSpec::Exact(p)) => r.path == *p,
        Some(PathSpec::Prefix(p)) => {
            p.is_empty()
                || p == "/"
                || (r.path.starts_with(p.as_str())
                    && (p.ends_with('/')
                        || r.path.len() == p.len()
                        || r.path[p.len()..].starts_with('/')))
        }
        Some(PathSpec::Regex(re)) => Regex::new(re).is_ok_and(|re| re.is_match(&r.path)),
    };
    let value_ok = |spec: &ValueSpec, values: &[Vec<u8>]| match spec {
        ValueSpec::Present => !values.is_empty(),
        ValueSpec::Exact(e) => values.iter().any(|v| v == e.as_bytes()),
        ValueSpec::Regex(re) => {
            regex::bytes::Regex::new(re).is_ok_and(|re| values.iter().any(|v| re.is_match(v)))
        }
    };
    let query_pairs: Vec<(Vec<u8>, Vec<u8>)> = r
        .query
        .as_deref()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (cond::decode(k).into_owned(), cond::decode(v).into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let conds_ok = |spec: &RouteSpec| {
        (spec.methods.is_empty()
            || spec
                .methods
                .iter()
                .any(|m| m.to_ascii_uppercase() == r.method.as_str()))
            && spec.headers.iter().all(|(name, v)| {
                let values: Vec<Vec<u8>> = r
                    .headers
                    .iter()
                    .filter(|(k, _)| k.as_str().eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_bytes().to_vec())
                    .collect();
                value_ok(v, &values)
            })
            && spec.query.iter().all(|(name, v)| {
                let values: Vec<Vec<u8>> = query_pairs
                    .iter()
                    .filter(|(k, _)| k == name.as_bytes())
                    .map(|(_, v)| v.clone())
                    .collect();
                value_ok(v, &values)
            })
    };
    let path_rank = |spec: &RouteSpec| match &spec.path {
        Some(PathSpec::Exact(_)) => (0, Reverse(0)),
        Some(PathSpec::Prefix(p)) => (1, Reverse(p.len())),
        Some(PathSpec::Regex(_)) => (2, Reverse(0)),
        None => (3, Reverse(0)),
    };
    let mut candidates: Vec<_> = routes
        .iter()
        .enumerate()
        .filter_map(|(i, spec)| {
            let h = host_rank(spec)?;
            let conds =
                usize::from(!spec.methods.is_empty()) + spec.headers.len() + spec.query.len();
            Some(((h, path_rank(spec), Reverse(conds), i), i))
        })
        .collect();
    candidates.sort();
    candidates
        .into_iter()
        .map(|(_, i)| i)
        .find(|&i| routes.get(i).is_some_and(|s| path_ok(s) && conds_ok(s)))
}

fn arb_host() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a.com",
        "A.com",
        "b.a.com",
        "c.b.a.com",
        "a.org",
        "x.com",
        "com",
        "a.com.",
        "a.com:80",
        "*.a.com",
        "*.com",
        "*.b.a.com",
        "*.org",
        "*",
        "[::1]",
        "::1",
        "",
    ])
    .prop_map(str::to_owned)
}

fn arb_value() -> impl Strategy<Value = ValueSpec> {
    prop_oneof![
        Just(ValueSpec::Present),
        prop::sample::select(vec!["1", "2", "a b", ""]).prop_map(|v| ValueSpec::Exact(v.into())),
        prop::sample::select(vec!["^1$", "2", "a"]).prop_map(|v| ValueSpec::Regex(v.into())),
    ]
}

fn arb_route() -> impl Strategy<Value = RouteSpec> {
    let path = prop_oneof![
        Just(None),
        prop::sample::select(vec!["/", "/a", "/a/b", "/a/"])
            .prop_map(|p| Some(PathSpec::Exact(p.into()))),
        prop::sample::select(vec!["", "/", "/a", "/a/", "/a/b", "/ab"])
            .prop_map(|p| Some(PathSpec::Prefix(p.into()))),
        prop::sample::select(vec!["^/a", "b$", "."]).prop_map(|p| Some(PathSpec::Regex(p.into()))),
    ];
    // Mostly few conditions, so that routes often match and compete.
    fn few<T: std::fmt::Debug + Clone>(
        s: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Vec<T>> {
        prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(s, 1..3)]
    }
    (
        prop_oneof![
            1 => Just(Vec::new()),
            2 => prop::collection::vec(
                prop_oneof![
                    1 => arb_host(),
                    1 => prop::sample::select(vec!["*.a.com", "*.b.a.com", "*.com"]).prop_map(str::to_owned),
                ],
                1..3,
            ),
        ],
        path,
        few(prop::sample::select(vec!["GET", "post", "PUT"]).prop_map(str::to_owned)),
        few((prop::sample::select(vec!["x-a", "X-B"]).prop_map(str::to_owned), arb_value())),
        few((prop::sample::select(vec!["q", "r"]).prop_map(str::to_owned), arb_value())),
    )
        .prop_map(|(hosts, path, methods, headers, query)| RouteSpec {
            hosts,
            path,
            methods,
            headers,
            query,
        })
}

fn arb_req() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "post"]),
        prop_oneof![
            2 => arb_host(),
            // Hosts no route names exactly, under several wildcards.
            3 => prop::sample::select(vec![
                "z.b.a.com", "Z.B.A.COM:8080", "d.c.b.a.com", "y.a.com", "q.x.com", "w.org", "b.a.com.",
            ])
            .prop_map(str::to_owned),
            1 => "[a-zA-Z0-9.:\\[\\]-]{0,12}",
        ],
        prop::sample::select(vec!["/", "/a", "/a/", "/a/b", "/ab", "/a/b/c", "", "/b"]),
        prop::option::of(prop::sample::select(vec!["q=1", "q&r=2", "q=a+b&q=2", "r=%31", "x=1"])),
        prop::collection::vec(
            (
                prop::sample::select(vec!["x-a", "x-b", "x-c"]),
                prop::sample::select(vec!["1", "2", "a b", ""]),
            ),
            0..3,
        ),
    )
        .prop_map(|(method, host, path, query, headers)| {
            let mut r = req(method, &host, path);
            r.query = query.map(str::to_owned);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn table_agrees_with_the_precedence_rules(
        routes in prop::collection::vec(arb_route(), 0..8),
        reqs in prop::collection::vec(arb_req(), 1..8),
    ) {
        let t = match RouteTable::new(&routes) {
            Ok(t) => t,
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        for r in &reqs {
            prop_assert_eq!(select(&t, r), naive_select(&routes, r), "host {:?} path {:?} query {:?}", r.host, r.path, r.query);
        }
    }

    #[test]
    fn a_shadowed_route_is_never_selected(
        routes in prop::collection::vec(arb_route(), 1..8),
        reqs in prop::collection::vec(arb_req(), 1..16),
    ) {
        let t = match RouteTable::new(&routes) {
            Ok(t) => t,
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        let hidden = shadowed(&routes);
        for r in &reqs {
            if let Some(i) = select(&t, r) {
                prop_assert!(hidden[i].is_none(), "route {} was selected but reported shadowed by {:?}", i, hidden[i]);
            }
        }
    }

    #[test]
    fn exact_host_beats_hostless(
        a in arb_route(),
        host in prop::sample::select(vec!["a.com", "b.a.com", "x.com"]),
        r in arb_req(),
        hostless_first in any::<bool>(),
    ) {
        // Two routes with identical other conditions: one for the request's
        // exact host, one without hosts. The exact one wins when it matches.
        let mut exact = a.clone();
        exact.hosts = vec![host.to_owned()];
        let mut hostless = a;
        hostless.hosts = vec![];
        let routes = if hostless_first { vec![hostless, exact] } else { vec![exact, hostless] };
        let exact_idx = usize::from(hostless_first);
        let t = match RouteTable::new(&routes) {
            Ok(t) => t,
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        let mut r = r;
        r.host = host.to_owned();
        if let Some(i) = select(&t, &r) {
            prop_assert_eq!(i, exact_idx);
        }
    }

    #[test]
    fn select_never_panics(
        hosts in prop::collection::vec(any::<String>(), 0..4),
        prefix in any::<String>(),
        host in any::<String>(),
        path in any::<String>(),
        query in prop::option::of(any::<String>()),
        method in "[A-Za-z]{1,10}",
    ) {
        let routes = vec![
            RouteSpec { hosts: hosts.clone(), path: Some(PathSpec::Prefix(prefix.clone())), ..RouteSpec::default() },
            RouteSpec { hosts, path: Some(PathSpec::Exact(prefix.clone())), query: vec![(prefix, ValueSpec::Present)], ..RouteSpec::default() },
            RouteSpec::default(),
        ];
        let t = match RouteTable::new(&routes) {
            Ok(t) => t,
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        let mut r = req(&method, &host, "");
        r.path = path;
        r.query = query;
        prop_assert!(select(&t, &r).is_some());
    }
}
