//! The pure pieces of the request path, timed on their own so that a
//! regression shows without the side-by-side harness: route selection,
//! each balancer's pick, an IP list lookup, `Accept-Encoding`
//! negotiation and a query rewrite.
//!
//!   cargo bench -p sy-policy --bench hot_path
//!
//! Figures are wall time on whatever machine runs them: compare a change
//! against its parent on the same machine, not against BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method};
use sy_policy::balance::{self, Kind, PickInput, Servers};
use sy_policy::compress::{Coding, negotiate};
use sy_policy::ip::IpSet;
use sy_policy::rewrite::QueryOps;
use sy_policy::route::{PathSpec, RequestView, RouteSpec, RouteTable, ValueSpec};

/// 40 routes as a gateway config has them: hosts, prefixes, a regex, a
/// header condition.
fn routes() -> RouteTable {
    let mut specs = Vec::new();
    for i in 0..10 {
        for (path, methods) in [
            (
                PathSpec::Prefix(format!("/api/v{i}/users")),
                vec!["GET".to_owned()],
            ),
            (PathSpec::Prefix(format!("/api/v{i}/orders")), vec![]),
            (PathSpec::Regex(format!("^/api/v{i}/items/[0-9]+$")), vec![]),
            (PathSpec::Exact(format!("/health/{i}")), vec![]),
        ] {
            specs.push(RouteSpec {
                hosts: vec![format!("svc{i}.example.com"), "*.edge.example".to_owned()],
                path: Some(path),
                methods,
                headers: if i % 3 == 0 {
                    vec![("x-canary".to_owned(), ValueSpec::Present)]
                } else {
                    vec![]
                },
                query: vec![],
            });
        }
    }
    RouteTable::new(&specs).unwrap()
}

fn route_selection(c: &mut Criterion) {
    let table = routes();
    let headers = HeaderMap::new();
    let mut g = c.benchmark_group("route");
    for (name, host, path) in [
        ("prefix", "svc7.example.com", "/api/v7/orders/42"),
        ("regex", "svc4.example.com", "/api/v4/items/9001"),
        ("wildcard host", "a.edge.example", "/api/v1/users"),
        ("no match", "other.example", "/nothing/here"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                table.select(black_box(&RequestView {
                    method: &Method::GET,
                    host,
                    path,
                    query: None,
                    headers: &headers,
                }))
            });
        });
    }
    g.finish();
}

/// Eight eligible servers with some load and latency data.
struct Eight;

impl Servers for Eight {
    fn len(&self) -> usize {
        8
    }
    fn eligible(&self, i: usize) -> bool {
        i != 3
    }
    fn active(&self, i: usize) -> u64 {
        (i as u64 * 7) % 5
    }
    fn latency(&self, i: usize) -> f64 {
        1_000_000.0 + i as f64 * 50_000.0
    }
}

fn balancers(c: &mut Criterion) {
    let weights = [1, 2, 1, 3, 1, 1, 2, 1];
    let mut g = c.benchmark_group("balance");
    for kind in Kind::ALL {
        let b = balance::build(kind, &weights);
        let mut n = 0u64;
        g.bench_function(kind.name(), |bench| {
            bench.iter(|| {
                n = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
                b.pick(
                    &Eight,
                    &PickInput {
                        hash: n,
                        random: n.rotate_left(17),
                    },
                )
            });
        });
    }
    g.finish();
}

fn ip_lookup(c: &mut Criterion) {
    // 100,000 /24s, as bench/allow-cidrs.py writes them.
    let nets = (0..100_000u32).map(|i| {
        let [a, b, c, _] = (0x0a00_0000u32 + (i << 8)).to_be_bytes();
        format!("{a}.{b}.{c}.0/24").parse().unwrap()
    });
    let set = IpSet::new(nets);
    let inside: IpAddr = "10.195.80.9".parse().unwrap();
    let outside: IpAddr = "192.0.2.1".parse().unwrap();
    let mut g = c.benchmark_group("ip 100k");
    g.bench_function("inside", |b| b.iter(|| set.contains(black_box(inside))));
    g.bench_function("outside", |b| b.iter(|| set.contains(black_box(outside))));
    g.finish();
}

fn compression(c: &mut Criterion) {
    let offer = [Coding::Zstd, Coding::Br, Coding::Gzip];
    let mut g = c.benchmark_group("accept-encoding");
    for (name, header) in [
        ("chrome", &b"gzip, deflate, br, zstd"[..]),
        ("q-values", b"br;q=0.9, gzip;q=1.0, *;q=0.1"),
    ] {
        g.bench_function(name, |b| b.iter(|| negotiate([black_box(header)], &offer)));
    }
    g.finish();
}

fn query_rewrite(c: &mut Criterion) {
    let pair = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
    let ops = QueryOps::new(
        &["utm_source".to_owned(), "debug".to_owned()],
        &pair("q", "query"),
        &pair("page", "1"),
        &pair("via", "edge"),
    );
    c.bench_function("query rewrite", |b| {
        b.iter(|| ops.apply(black_box(Some("q=a+b&debug&page=3&utm_source=x&keep=%2F"))))
    });
}

criterion_group!(
    hot_path,
    route_selection,
    balancers,
    ip_lookup,
    compression,
    query_rewrite
);
criterion_main!(hot_path);
