//! How the IP rules' lookup time depends on the list size (it should
//! not): builds allow lists of 1,000, 10,000 and 100,000 random entries
//! and times `IpRules::allows` over a million random addresses (half of
//! them inside an entry: every lookup misses the CPU caches once the trie
//! outgrows them) and over a few clients asking again and again. Run with
//! `cargo run --release -p sy-policy --example ip_lookup`; BENCHMARKS.md
//! records the figures.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sy_policy::ip::IpRules;

const PROBES: usize = 1 << 20;
const ROUNDS: usize = 5;
/// Distinct clients of the "few clients" column.
const HOT: usize = 64;

fn main() {
    println!(
        "| family | entries | build ms | trie KiB | ns / decision, 1M random clients | ns / decision, {HOT} clients | allowed share |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for v6 in [false, true] {
        for n in [1_000, 10_000, 100_000] {
            row(n, v6);
        }
    }
}

fn row(n: usize, v6: bool) {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let entries: Vec<IpNet> = (0..n).map(|_| entry(&mut rng, v6)).collect();
    let start = Instant::now();
    let rules = IpRules::new(entries.iter().copied(), []);
    let build = start.elapsed();
    let probes: Vec<IpAddr> = (0..PROBES)
        .map(|i| {
            if i % 2 == 0 {
                let e = entries[rng.random_range(0..n)];
                inside(&mut rng, e)
            } else if v6 {
                IpAddr::V6(Ipv6Addr::from(rng.random::<u128>()))
            } else {
                IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()))
            }
        })
        .collect();
    // A few clients sending again and again (a load test, a busy office):
    // their paths through the trie stay in the CPU caches.
    let few: Vec<IpAddr> = (0..PROBES).map(|i| probes[i % HOT]).collect();
    let (cold, allowed) = time(&rules, &probes);
    let (hot, _) = time(&rules, &few);
    println!(
        "| {} | {n} | {:.1} | {} | {cold:.1} | {hot:.1} | {:.2} |",
        if v6 { "IPv6" } else { "IPv4" },
        build.as_secs_f64() * 1e3,
        rules.allow().memory_bytes() / 1024,
        allowed,
    );
}

/// Nanoseconds per decision over `probes` (the best of a few rounds: the
/// least disturbed by the rest of the machine) and the share allowed.
fn time(rules: &IpRules, probes: &[IpAddr]) -> (f64, f64) {
    let mut best = f64::MAX;
    let mut allowed = 0;
    for _ in 0..ROUNDS {
        allowed = 0;
        let start = Instant::now();
        for &p in probes {
            allowed += usize::from(black_box(rules).allows(black_box(p)));
        }
        best = best.min(start.elapsed().as_nanos() as f64 / probes.len() as f64);
    }
    (best, allowed as f64 / probes.len() as f64)
}

/// A random entry: IPv4 /16../32 weighted towards /24 and /32 (what
/// allow and block lists hold), IPv6 /32../128 weighted towards /48, /64
/// and /128.
fn entry(rng: &mut StdRng, v6: bool) -> IpNet {
    if v6 {
        let len = [32, 48, 48, 56, 64, 64, 128, 128][rng.random_range(0..8)];
        let net = Ipv6Net::new(Ipv6Addr::from(rng.random::<u128>()), len);
        IpNet::V6(net.map(|n| n.trunc()).unwrap_or_default())
    } else {
        let len = [16, 20, 24, 24, 24, 28, 32, 32][rng.random_range(0..8)];
        let net = Ipv4Net::new(Ipv4Addr::from(rng.random::<u32>()), len);
        IpNet::V4(net.map(|n| n.trunc()).unwrap_or_default())
    }
}

/// A random address inside `net`.
fn inside(rng: &mut StdRng, net: IpNet) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(
            u32::from(n.network()) | (rng.random::<u32>() & u32::from(n.hostmask())),
        )),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(
            u128::from(n.network()) | (rng.random::<u128>() & u128::from(n.hostmask())),
        )),
    }
}
