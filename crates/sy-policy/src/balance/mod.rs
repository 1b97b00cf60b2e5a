//! Load balancing: pick one server of an upstream for a request.
//!
//! A [`Balancer`] is built once per upstream per config snapshot (with
//! [`build`] or [`build_with_ids`]) and then asked for a server on every
//! request with [`Balancer::pick`]. The live state it reads — health, requests
//! in flight, latency — belongs to the caller and is seen through the
//! [`Servers`] trait, so a balancer holds only what its algorithm needs
//! (a counter, a lookup table) and a config reload does not lose live state.
//!
//! Every `pick` takes `&self`, may run on many threads at once, does not
//! allocate, and never panics: a server list that is empty, shorter or longer
//! than the weights the balancer was built with, or that changes while a pick
//! runs, gives a sane answer or `None`.
//!
//! Randomness is an input ([`PickInput::random`]); when an algorithm needs
//! more than one random number it derives the rest with splitmix64.

use std::fmt;
use std::str::FromStr;

mod least_connections;
mod maglev;
mod p2c_ewma;
mod random;
mod ring;
mod round_robin;
mod weighted_round_robin;

#[cfg(test)]
mod testing;

pub use least_connections::LeastConnections;
pub use maglev::{MAGLEV_REHASHES, MAGLEV_TABLE_SIZE, Maglev};
pub use p2c_ewma::{DEFAULT_LATENCY_NS, P2cEwma};
pub use random::WeightedRandom;
pub use ring::{RING_MAX_POINTS, RING_POINTS_PER_WEIGHT, Ring};
pub use round_robin::RoundRobin;
pub use weighted_round_robin::WeightedRoundRobin;

/// Live view of an upstream's servers, provided by the caller (backed by
/// atomics).
///
/// Indices run from `0` to `len() - 1` and must mean the same servers, in the
/// same order, as the `weights` (and `ids`) the balancer was built with.
/// Implementations should answer each call cheaply (an atomic load): a pick
/// calls them up to a few times per server.
pub trait Servers {
    /// Number of servers.
    fn len(&self) -> usize;
    /// Whether there are no servers at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// false = skip this server (unhealthy, draining).
    fn eligible(&self, i: usize) -> bool;
    /// in-flight requests on server i.
    fn active(&self, i: usize) -> u64;
    /// peak-EWMA round-trip cost of server i in nanoseconds (0.0 = no data
    /// yet).
    fn latency(&self, i: usize) -> f64;
}

/// Per-request input to [`Balancer::pick`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PickInput {
    /// Hash of the request's key for the consistent-hash balancers
    /// ([`Kind::Maglev`], [`Kind::Ring`]); compute it with [`hash_key`].
    /// Ignored by the others.
    pub hash: u64,
    /// A fresh random number for this pick. Ignored by the deterministic
    /// balancers.
    pub random: u64,
}

/// A load-balancing algorithm over one upstream's servers.
pub trait Balancer: Send + Sync + fmt::Debug {
    /// Index of the chosen server, or None when no server is eligible.
    fn pick(&self, servers: &dyn Servers, input: &PickInput) -> Option<usize>;
}

/// Which algorithm [`build`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Each eligible server in turn; weights ignored.
    RoundRobin,
    /// nginx's smooth weighted round robin.
    WeightedRoundRobin,
    /// Fewest `(in-flight + 1) / weight`; ties broken at random.
    LeastConnections,
    /// Random, with probability proportional to weight.
    Random,
    /// Power of two random choices, the one with lower peak-EWMA latency x
    /// load wins.
    P2cEwma,
    /// Consistent hashing with Google's Maglev lookup table.
    Maglev,
    /// Consistent hashing on a ketama-style ring.
    Ring,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 7] = [
        Kind::RoundRobin,
        Kind::WeightedRoundRobin,
        Kind::LeastConnections,
        Kind::Random,
        Kind::P2cEwma,
        Kind::Maglev,
        Kind::Ring,
    ];

    /// The snake_case name, as accepted by [`Kind::from_str`].
    pub const fn name(self) -> &'static str {
        match self {
            Kind::RoundRobin => "round_robin",
            Kind::WeightedRoundRobin => "weighted_round_robin",
            Kind::LeastConnections => "least_connections",
            Kind::Random => "random",
            Kind::P2cEwma => "p2c_ewma",
            Kind::Maglev => "maglev",
            Kind::Ring => "ring",
        }
    }

    /// Whether this kind reads [`PickInput::hash`], so the caller must hash
    /// a request key with [`hash_key`].
    pub const fn uses_hash(self) -> bool {
        matches!(self, Kind::Maglev | Kind::Ring)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of [`Kind::from_str`]: the name is not a known balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown balancer {:?}: expected one of ", self.0)?;
        for (i, k) in Kind::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(k.name())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownKind {}

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// Build a balancer for servers with these weights; server identities are
/// their indices ("0", "1", ...). See [`build_with_ids`].
pub fn build(kind: Kind, weights: &[u32]) -> Box<dyn Balancer> {
    build_with_ids(kind, weights, &[])
}

/// Build a balancer for `weights.len()` servers.
///
/// `weights[i]` is server i's weight; a weight of 0 counts as 1. `ids[i]` is
/// server i's stable identity (its address): the consistent-hash kinds place
/// a server in their table by it, so a server keeps its keys when others are
/// added, removed or reordered. A missing id defaults to the index as a
/// string; extra ids are ignored.
pub fn build_with_ids(kind: Kind, weights: &[u32], ids: &[&str]) -> Box<dyn Balancer> {
    match kind {
        Kind::RoundRobin => Box::new(RoundRobin::new()),
        Kind::WeightedRoundRobin => Box::new(WeightedRoundRobin::new(weights)),
        Kind::LeastConnections => Box::new(LeastConnections::new(weights)),
        Kind::Random => Box::new(WeightedRandom::new(weights)),
        Kind::P2cEwma => Box::new(P2cEwma::new()),
        Kind::Maglev => Box::new(Maglev::new(weights, ids)),
        Kind::Ring => Box::new(Ring::new(weights, ids)),
    }
}

/// Hash a request key (client IP, path, header value...) into
/// [`PickInput::hash`]: xxh3-64, stable across processes and versions.
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// A tiny deterministic generator (splitmix64) seeded by
/// [`PickInput::random`], for balancers that need several random numbers per
/// pick.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when n is 0). Lemire's multiply-shift: the bias
    /// is at most n / 2^64, far below anything a test could see.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        below(self.next_u64(), n)
    }
}

/// Map a uniform `u64` onto `0..n` (0 when n is 0).
pub(crate) fn below(r: u64, n: u64) -> u64 {
    ((u128::from(r) * u128::from(n)) >> 64) as u64
}

/// Sanitised weights: 0 counts as 1.
pub(crate) fn sanitize_weights(weights: &[u32]) -> Box<[u32]> {
    weights.iter().map(|&w| w.max(1)).collect()
}

/// Weight of server i; servers the balancer was not built with weigh 1.
pub(crate) fn weight_at(weights: &[u32], i: usize) -> u32 {
    weights.get(i).copied().unwrap_or(1).max(1)
}

/// Server identities for the consistent-hash tables: `ids[i]`, or the index.
pub(crate) fn server_ids(n: usize, ids: &[&str]) -> Vec<String> {
    (0..n)
        .map(|i| match ids.get(i) {
            Some(id) => (*id).to_owned(),
            None => i.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::testing::Fake;
    use super::*;

    #[test]
    fn balancers_are_shareable() {
        fn send_sync<T: Send + Sync + ?Sized>() {}
        send_sync::<dyn Balancer>();
        send_sync::<Box<dyn Balancer>>();
    }

    #[test]
    fn kind_names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.name().parse::<Kind>(), Ok(k));
            assert_eq!(k.to_string(), k.name());
        }
        let err = "rr"
            .parse::<Kind>()
            .map(|_| ())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("round_robin") && e.contains("\"rr\"")));
    }

    #[test]
    fn every_kind_handles_no_servers_and_all_down() {
        for k in Kind::ALL {
            let b = build(k, &[]);
            assert_eq!(b.pick(&Fake::all(0), &PickInput::default()), None, "{k}");
            let b = build(k, &[1, 2, 3]);
            let mut down = Fake::all(3);
            down.eligible = vec![false; 3];
            for r in 0..50 {
                let input = PickInput {
                    hash: r * 7919,
                    random: r,
                };
                assert_eq!(b.pick(&down, &input), None, "{k}");
            }
        }
    }

    #[test]
    fn every_kind_survives_mismatched_lengths() {
        for k in Kind::ALL {
            // Built for 3, asked about 5 and about 1.
            let b = build(k, &[1, 2, 3]);
            for n in [1, 5] {
                let s = Fake::all(n);
                for r in 0..200u64 {
                    let input = PickInput {
                        hash: hash_key(&r.to_le_bytes()),
                        random: r,
                    };
                    let got = b.pick(&s, &input);
                    assert!(matches!(got, Some(i) if i < n), "{k} n={n} got {got:?}");
                }
            }
        }
    }

    #[test]
    fn zero_weights_count_as_one() {
        let b = build(Kind::WeightedRoundRobin, &[0, 0]);
        let s = Fake::all(2);
        let picks: Vec<_> = (0..4).map(|_| b.pick(&s, &PickInput::default())).collect();
        assert_eq!(picks, [Some(0), Some(1), Some(0), Some(1)]);
    }

    #[test]
    fn below_is_in_range() {
        for r in [0, 1, u64::MAX / 2, u64::MAX] {
            for n in [1, 2, 3, 1000, u64::MAX] {
                assert!(below(r, n) < n);
            }
            assert_eq!(below(r, 0), 0);
        }
    }

    #[test]
    fn hash_key_is_xxh3() {
        assert_eq!(hash_key(b""), 0x2D06_8005_38D3_94C2);
        assert_ne!(hash_key(b"a"), hash_key(b"b"));
    }
}
