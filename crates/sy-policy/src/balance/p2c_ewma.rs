//! Power of two choices over peak-EWMA latency x load.

use super::{Balancer, PickInput, Servers, SplitMix64};

/// The latency assumed for a server without data yet (1 ms): low enough that
/// a new server wins against typical loaded peers and gets tried, high
/// enough that it is not flooded before its first response is measured
/// (the cost still grows with its requests in flight).
pub const DEFAULT_LATENCY_NS: f64 = 1_000_000.0;

/// How many uniform draws over all servers to try before counting the
/// eligible ones; with most servers healthy the first draw almost always
/// lands.
const DRAWS: usize = 8;

/// Power of two choices with peak-EWMA cost, after finagle's and linkerd's
/// `PeakEwma` balancers.
///
/// Samples two distinct eligible servers uniformly at random and takes the
/// one with the lower cost `latency * (active + 1)`, where `latency` is the
/// caller's peak-EWMA estimate ([`crate::ewma::PeakEwma`]) or
/// [`DEFAULT_LATENCY_NS`] when the server has no data (`0.0`, or not a
/// positive finite number). Weights are not used. With one eligible server
/// that server is returned.
#[derive(Debug, Clone)]
pub struct P2cEwma {
    default_latency_ns: f64,
}

impl Default for P2cEwma {
    fn default() -> Self {
        Self::new()
    }
}

impl P2cEwma {
    /// A balancer using [`DEFAULT_LATENCY_NS`] for servers without data.
    pub fn new() -> Self {
        Self::with_default_latency(DEFAULT_LATENCY_NS)
    }

    /// A balancer assuming `default_latency_ns` for servers without data
    /// (values that are not positive and finite mean [`DEFAULT_LATENCY_NS`]).
    pub fn with_default_latency(default_latency_ns: f64) -> Self {
        let default_latency_ns = if default_latency_ns.is_finite() && default_latency_ns > 0.0 {
            default_latency_ns
        } else {
            DEFAULT_LATENCY_NS
        };
        P2cEwma { default_latency_ns }
    }

    /// The cost of sending one more request to server i.
    pub fn cost(&self, servers: &dyn Servers, i: usize) -> f64 {
        let latency = servers.latency(i);
        let latency = if latency.is_finite() && latency > 0.0 {
            latency
        } else {
            self.default_latency_ns
        };
        latency * (servers.active(i) as f64 + 1.0)
    }

    /// The two servers a pick compares: two distinct eligible servers drawn
    /// uniformly (the second is None when only one server is eligible), or
    /// None when none is.
    pub fn sample(
        &self,
        servers: &dyn Servers,
        input: &PickInput,
    ) -> Option<(usize, Option<usize>)> {
        let mut rng = SplitMix64::new(input.random);
        let first = sample_eligible(servers, &mut rng, None)?;
        let second = sample_eligible(servers, &mut rng, Some(first));
        Some((first, second))
    }
}

/// A uniformly random eligible server other than `exclude`.
///
/// Rejection sampling first (exactly uniform given success, and O(1) when
/// most servers are eligible), then an exact count-and-walk, which is also
/// uniform, so the mixture is.
fn sample_eligible(
    servers: &dyn Servers,
    rng: &mut SplitMix64,
    exclude: Option<usize>,
) -> Option<usize> {
    let n = servers.len();
    if n == 0 {
        return None;
    }
    let ok = |i: usize| Some(i) != exclude && servers.eligible(i);
    for _ in 0..DRAWS {
        let i = rng.below(n as u64) as usize;
        if ok(i) {
            return Some(i);
        }
    }
    let m = (0..n).filter(|&i| ok(i)).count();
    if m == 0 {
        return None;
    }
    let k = rng.below(m as u64) as usize;
    let mut candidates = (0..n).filter(|&i| ok(i));
    // Health may change between the count and the walk.
    candidates.clone().nth(k).or_else(|| candidates.next())
}

impl Balancer for P2cEwma {
    fn pick(&self, servers: &dyn Servers, input: &PickInput) -> Option<usize> {
        match self.sample(servers, input)? {
            (a, None) => Some(a),
            // The pair is in random order, so keeping `a` on a tie is fair.
            (a, Some(b)) => {
                if self.cost(servers, b) < self.cost(servers, a) {
                    Some(b)
                } else {
                    Some(a)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fake;
    use super::*;
    use proptest::prelude::*;

    fn input(random: u64) -> PickInput {
        PickInput { hash: 0, random }
    }

    #[test]
    fn lower_cost_of_the_pair_wins() {
        let b = P2cEwma::new();
        let mut s = Fake::all(2);
        s.latency = vec![5e6, 1e6];
        for r in 0..100 {
            assert_eq!(b.pick(&s, &input(r)), Some(1));
        }
        // Load counts: 1 ms x 6 in flight > 5 ms x 1.
        s.active = vec![0, 5];
        for r in 0..100 {
            assert_eq!(b.pick(&s, &input(r)), Some(0));
        }
    }

    #[test]
    fn new_server_gets_tried() {
        // Peers at 3 ms; the new one (no data) is assumed 1 ms.
        let b = P2cEwma::new();
        let mut s = Fake::all(2);
        s.latency = vec![3e6, 0.0];
        assert_eq!(b.pick(&s, &input(1)), Some(1));
        assert_eq!(b.cost(&s, 1), DEFAULT_LATENCY_NS);
        s.latency = vec![3e6, f64::NAN];
        assert_eq!(b.cost(&s, 1), DEFAULT_LATENCY_NS);
        let custom = P2cEwma::with_default_latency(-1.0);
        assert_eq!(custom.cost(&s, 1), DEFAULT_LATENCY_NS);
    }

    #[test]
    fn single_and_no_eligible() {
        let b = P2cEwma::new();
        let s = Fake::with_eligible(&[false, false, true, false]);
        for r in 0..100 {
            assert_eq!(b.pick(&s, &input(r)), Some(2));
        }
        let s = Fake::with_eligible(&[false, false]);
        assert_eq!(b.pick(&s, &input(0)), None);
    }

    #[test]
    fn one_very_slow_server_gets_a_small_share() {
        let n = 10;
        let b = P2cEwma::new();
        let mut s = Fake::all(n);
        s.latency = vec![1e6; n];
        s.latency[3] = 100e6;
        let mut rng = SplitMix64::new(7);
        let mut counts = vec![0u64; n];
        let picks = 50_000;
        for k in 0..picks {
            // Vary load so comparisons are not all trivially decided.
            for (i, a) in s.active.iter_mut().enumerate() {
                *a = (k + i as u64 * 7) % 13;
            }
            if let Some(i) = b.pick(&s, &input(rng.next_u64())) {
                counts[i] += 1;
            }
        }
        // 100x the latency only wins against a peer with 100x the load,
        // which never happens here (load 0..12).
        assert_eq!(counts[3], 0, "{counts:?}");
        // The fast servers share the rest roughly evenly.
        for (i, &c) in counts.iter().enumerate() {
            if i != 3 {
                assert!(c > picks / n as u64 / 2, "{counts:?}");
            }
        }
    }

    #[test]
    fn a_moderately_slow_server_gets_a_small_but_real_share() {
        // 5x the latency: it wins only against a peer with over 5x its
        // load, so it serves some traffic, well below the fair 1/n.
        let n = 10;
        let b = P2cEwma::new();
        let mut rng = SplitMix64::new(11);
        let mut counts = vec![0u64; n];
        let picks = 50_000u64;
        let mut s = Fake::all(n);
        s.latency = vec![1e6; n];
        s.latency[0] = 5e6;
        for _ in 0..picks {
            // Random loads 0..12 per server.
            for a in s.active.iter_mut() {
                *a = rng.below(12);
            }
            if let Some(i) = b.pick(&s, &input(rng.next_u64())) {
                counts[i] += 1;
            }
        }
        let fair = picks / n as u64;
        assert!(counts[0] > 0 && counts[0] < fair / 4, "{counts:?}");
    }

    proptest! {
        #[test]
        fn never_picks_the_worse_of_the_pair(
            servers in proptest::collection::vec((0u64..20, 0.0f64..1e7, proptest::bool::weighted(0.7)), 1..30),
            random in any::<u64>(),
        ) {
            let mut s = Fake::with_eligible(&servers.iter().map(|x| x.2).collect::<Vec<_>>());
            s.active = servers.iter().map(|x| x.0).collect();
            s.latency = servers.iter().map(|x| x.1).collect();
            let b = P2cEwma::new();
            let got = b.pick(&s, &input(random));
            let eligible = servers.iter().filter(|x| x.2).count();
            prop_assert_eq!(got.is_some(), eligible > 0);
            let sample = b.sample(&s, &input(random));
            match (got, sample) {
                (None, None) => {}
                (Some(g), Some((a, None))) => {
                    prop_assert_eq!(eligible, 1);
                    prop_assert_eq!(g, a);
                }
                (Some(g), Some((a, Some(c)))) => {
                    prop_assert!(a != c);
                    prop_assert!(servers[a].2 && servers[c].2);
                    prop_assert!(g == a || g == c);
                    let other = if g == a { c } else { a };
                    prop_assert!(b.cost(&s, g) <= b.cost(&s, other));
                }
                other => prop_assert!(false, "pick and sample disagree: {:?}", other),
            }
        }

        #[test]
        fn pairs_are_uniform(n in 2usize..6, seed in any::<u64>()) {
            // With equal costs the first sampled server wins, so picks are
            // uniform over the eligible servers.
            let b = P2cEwma::new();
            let s = Fake::all(n);
            let mut rng = SplitMix64::new(seed);
            let mut counts = vec![0u64; n];
            let picks = 6_000 * n as u64;
            for _ in 0..picks {
                if let Some(i) = b.pick(&s, &input(rng.next_u64())) {
                    counts[i] += 1;
                }
            }
            // Expected 6,000 each, sd < 78; allow 6 sd.
            for &c in &counts {
                prop_assert!((5_530..=6_470).contains(&c), "{:?}", counts);
            }
        }
    }
}
