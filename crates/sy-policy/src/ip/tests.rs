#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| parse_entry(s).unwrap().net).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rules(allow: &[&str], deny: &[&str]) -> IpRules {
    IpRules::new(nets(allow), nets(deny))
}

/// The decision by a scan of every entry, canonical forms as the module
/// documents them: what the trie must agree with.
fn naive(allow: &[IpNet], deny: &[IpNet], addr: IpAddr) -> Decision {
    let addr = addr.to_canonical();
    let hit = |list: &[IpNet]| {
        list.iter().any(|n| match (canonical(*n), addr) {
            (IpNet::V4(n), IpAddr::V4(a)) => n.contains(&a),
            (IpNet::V6(n), IpAddr::V6(a)) => n.contains(&a),
            _ => false,
        })
    };
    if hit(deny) {
        Decision::Denied
    } else if allow.is_empty() || hit(allow) {
        Decision::Allowed
    } else {
        Decision::NotAllowed
    }
}

#[test]
fn the_decision_table() {
    use Decision::{Allowed, Denied, NotAllowed};
    let r = rules(
        &["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"],
        &["10.9.0.0/16", "2001:db8:bad::/48"],
    );
    let cases = [
        ("10.1.2.3", Allowed),
        ("10.255.255.255", Allowed),
        ("10.9.0.1", Denied),
        ("10.9.255.255", Denied),
        ("10.10.0.0", Allowed),
        ("11.0.0.0", NotAllowed),
        ("9.255.255.255", NotAllowed),
        ("192.0.2.7", Allowed),
        ("192.0.2.8", NotAllowed),
        ("2001:db8::1", Allowed),
        ("2001:db8:bad::1", Denied),
        ("2001:db9::1", NotAllowed),
        ("::1", NotAllowed),
        // IPv4-mapped IPv6 is the IPv4 address.
        ("::ffff:10.1.2.3", Allowed),
        ("::ffff:10.9.0.1", Denied),
        ("::ffff:11.0.0.0", NotAllowed),
    ];
    for (addr, want) in cases {
        assert_eq!(r.decide(ip(addr)), want, "{addr}");
    }
}

#[test]
fn without_an_allow_list_everyone_not_denied_is_allowed() {
    let r = rules(&[], &["203.0.113.0/24"]);
    assert!(r.allows(ip("198.51.100.1")));
    assert!(r.allows(ip("::1")));
    assert_eq!(r.decide(ip("203.0.113.9")), Decision::Denied);
    // No rules at all: everyone.
    assert!(IpRules::default().allows(ip("10.0.0.1")));
}

#[test]
fn deny_wins_over_allow() {
    let r = rules(&["0.0.0.0/0", "::/0"], &["192.0.2.7"]);
    assert_eq!(r.decide(ip("192.0.2.7")), Decision::Denied);
    assert!(r.allows(ip("192.0.2.8")));
    assert!(r.allows(ip("2001:db8::7")));
}

#[test]
fn each_family_has_its_own_entries() {
    // `::/0` is every IPv6 client, not the IPv4 ones; `0.0.0.0/0` the reverse.
    let v6 = IpSet::new(nets(&["::/0"]));
    assert!(v6.contains(ip("2001:db8::1")));
    assert!(!v6.contains(ip("192.0.2.1")));
    assert!(!v6.contains(ip("::ffff:192.0.2.1")));
    let v4 = IpSet::new(nets(&["0.0.0.0/0"]));
    assert!(v4.contains(ip("192.0.2.1")));
    assert!(v4.contains(ip("::ffff:192.0.2.1")));
    assert!(!v4.contains(ip("2001:db8::1")));
}

#[test]
fn mapped_entries_are_ipv4_entries() {
    let s = IpSet::new(nets(&["::ffff:10.0.0.0/104", "::ffff:192.0.2.7"]));
    assert!(s.contains(ip("10.20.30.40")));
    assert!(s.contains(ip("192.0.2.7")));
    assert!(!s.contains(ip("192.0.2.8")));
    assert!(!s.contains(ip("11.0.0.0")));
}

#[test]
fn prefix_lengths_at_every_boundary() {
    // Lengths on and off the 8-bit levels, and the extremes.
    for len in [0u8, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32] {
        let net = IpNet::V4(
            Ipv4Net::new(Ipv4Addr::new(172, 16, 130, 77), len)
                .unwrap()
                .trunc(),
        );
        let s = IpSet::new([net]);
        let inside = net.addr();
        assert!(s.contains(inside), "/{len} contains its network address");
        if let IpNet::V4(n) = net {
            assert!(s.contains(IpAddr::V4(n.broadcast())), "/{len} broadcast");
            if len > 0 {
                let after = u32::from(n.broadcast()).wrapping_add(1);
                let before = u32::from(n.network()).wrapping_sub(1);
                assert!(!s.contains(IpAddr::V4(after.into())), "/{len} after");
                assert!(!s.contains(IpAddr::V4(before.into())), "/{len} before");
            }
        }
    }
    for len in [0u8, 1, 48, 63, 64, 65, 120, 127, 128] {
        let net = IpNet::V6(Ipv6Net::new("2001:db8:1:2:3:4:5:6".parse().unwrap(), len).unwrap());
        let s = IpSet::new([net]);
        assert!(s.contains(net.trunc().addr()), "/{len}");
        assert!(s.contains(ip("2001:db8:1:2:3:4:5:6")), "/{len}");
        if len > 0 {
            // The last bit of the prefix flipped: just outside.
            let IpAddr::V6(a) = net.addr() else {
                panic!("an IPv6 net")
            };
            let bits = u128::from(a);
            let outside = Ipv6Addr::from(bits ^ (1u128 << (128 - u32::from(len))));
            assert!(!s.contains(IpAddr::V6(outside)), "/{len} {outside}");
        }
    }
}

#[test]
fn overlapping_entries_merge() {
    let s = IpSet::new(nets(&[
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.1.2.3",
        "10.0.0.0/8",
        "192.0.2.0/25",
        "192.0.2.128/25",
    ]));
    assert_eq!(s.len(), 6);
    assert_eq!(s.distinct(), 3, "the /16 and the address are inside the /8");
    assert!(s.contains(ip("192.0.2.200")));
    assert!(!s.contains(ip("192.0.3.0")));
}

#[test]
fn entries_parse_with_precise_errors() {
    let ok = |s: &str| parse_entry(s).unwrap();
    assert_eq!(ok("10.0.0.0/8").net.to_string(), "10.0.0.0/8");
    assert_eq!(ok(" 192.0.2.7 ").net.to_string(), "192.0.2.7/32");
    assert_eq!(ok("2001:db8::/32").net.to_string(), "2001:db8::/32");
    assert_eq!(ok("::1").net.to_string(), "::1/128");
    assert!(!ok("10.0.0.0/8").host_bits);
    let e = ok("10.1.2.3/8");
    assert!(e.host_bits);
    assert_eq!(e.net.to_string(), "10.0.0.0/8");
    let err = |s: &str| parse_entry(s).unwrap_err();
    assert_eq!(err(""), "empty entry");
    assert_eq!(err("10.0.0.300"), "invalid CIDR or IP address");
    assert!(err("10.0.0.0/33").contains("longer than the 32 bits"));
    assert!(err("::/129").contains("longer than the 128 bits"));
    assert_eq!(err("10.0.0.0/x"), "invalid prefix length `/x`");
    assert_eq!(err("10.0.0.0/"), "invalid prefix length `/`");
    assert!(err("10.0.0.1-10.0.0.9").contains("ranges are not supported"));
    assert!(err("10.0.0.1:80").contains("without a port"));
    assert!(err("[::1]:443").contains("without a port"));
    assert!(err("example.com").contains("host names"));
    assert_eq!(err("10.0.0.0/8/8"), "invalid prefix length `/8/8`");
}

#[test]
fn a_hundred_thousand_random_entries_agree_with_a_scan_on_a_sample() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut list = Vec::new();
    for _ in 0..100_000 {
        let a = Ipv4Addr::from(rng.random::<u32>());
        list.push(IpNet::V4(
            Ipv4Net::new(a, rng.random_range(8..=32)).unwrap().trunc(),
        ));
    }
    let s = IpSet::new(list.iter().copied());
    assert_eq!(s.len(), 100_000);
    // A scan of 100,000 entries per probe is slow: a few hundred probes,
    // half of them inside a random entry.
    for i in 0..300 {
        let probe = match list[rng.random_range(0..list.len())] {
            IpNet::V4(n) if i % 2 == 0 => IpAddr::V4(Ipv4Addr::from(
                u32::from(n.network()) | (rng.random::<u32>() & u32::from(n.hostmask())),
            )),
            _ => IpAddr::V4(rng.random::<u32>().into()),
        };
        let want = list.iter().any(|n| n.contains(&probe));
        assert_eq!(s.contains(probe), want, "{probe}");
    }
}

/// A prefix near one of a few bases, so that entries overlap and probes
/// fall inside them: `(base index, bits flipped below the top `keep`,
/// length)`.
fn near(bases: &[u128], (i, noise, keep, len): (usize, u128, u32, u8), width: u8) -> (u128, u8) {
    let base = bases[i % bases.len()];
    let noise = noise.checked_shr(keep).unwrap_or(0);
    let bits = (base ^ noise) & (u128::MAX << (128 - u32::from(width)));
    (bits, len % (width + 1))
}

fn to_net((bits, len): (u128, u8), v4: bool) -> IpNet {
    if v4 {
        let a = Ipv4Addr::from((bits >> 96) as u32);
        IpNet::V4(Ipv4Net::new(a, len).unwrap())
    } else {
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(bits), len).unwrap())
    }
}

fn to_ip(bits: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from((bits >> 96) as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(bits))
    }
}

type Spec = (usize, u128, u32, u8);

fn spec() -> impl Strategy<Value = Spec> {
    (0usize..4, any::<u128>(), 0u32..129, any::<u8>())
}

proptest! {
    #[test]
    fn the_trie_agrees_with_a_scan(
        bases in proptest::collection::vec(any::<u128>(), 1..4),
        allow in proptest::collection::vec((spec(), any::<bool>()), 0..40),
        deny in proptest::collection::vec((spec(), any::<bool>()), 0..40),
        probes in proptest::collection::vec((spec(), any::<bool>(), any::<bool>()), 1..40),
    ) {
        let list = |specs: &[(Spec, bool)]| -> Vec<IpNet> {
            specs
                .iter()
                .map(|&(s, v4)| to_net(near(&bases, s, if v4 { 32 } else { 128 }), v4))
                .collect()
        };
        let (allow, deny) = (list(&allow), list(&deny));
        let r = IpRules::new(allow.iter().copied(), deny.iter().copied());
        for &(s, v4, mapped) in &probes {
            let (bits, _) = near(&bases, s, if v4 { 32 } else { 128 });
            let mut addr = to_ip(bits, v4);
            if let (IpAddr::V4(a), true) = (addr, mapped) {
                addr = IpAddr::V6(a.to_ipv6_mapped());
            }
            prop_assert_eq!(r.decide(addr), naive(&allow, &deny, addr), "{}", addr);
        }
    }

    #[test]
    fn mapped_entries_agree_with_a_scan(
        base in any::<u32>(),
        entries in proptest::collection::vec((any::<u32>(), 0u32..33, 0u8..33), 1..20),
        probes in proptest::collection::vec((any::<u32>(), 0u32..33), 1..20),
    ) {
        let jitter = |x: u32, keep: u32| base ^ x.checked_shr(keep).unwrap_or(0);
        let list: Vec<IpNet> = entries
            .iter()
            .map(|&(x, keep, len)| {
                let a = Ipv4Addr::from(jitter(x, keep)).to_ipv6_mapped();
                IpNet::V6(Ipv6Net::new(a, 96 + len).unwrap())
            })
            .collect();
        let s = IpSet::new(list.iter().copied());
        for &(x, keep) in &probes {
            let a = IpAddr::V4(Ipv4Addr::from(jitter(x, keep)));
            let want = naive(&list, &[], a) == Decision::Allowed;
            prop_assert_eq!(s.contains(a), want, "{}", a);
        }
    }

    #[test]
    fn parsing_never_panics(text in "\\PC{0,40}") {
        let _ = parse_entry(&text);
    }
}
