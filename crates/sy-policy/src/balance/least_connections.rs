//! Weighted least connections.

use super::{Balancer, PickInput, Servers, SplitMix64, sanitize_weights, weight_at};

/// Picks the eligible server with the fewest `(active + 1) / weight`.
///
/// The ratios are compared by integer cross-multiplication in `u128`, so
/// there is no rounding and no overflow. Counting the request about to be
/// sent (`+ 1`) makes an idle heavy server beat an idle light one. Ties are
/// broken uniformly at random (reservoir sampling over the tied servers, fed
/// by [`PickInput::random`]) so equal servers share evenly.
#[derive(Debug)]
pub struct LeastConnections {
    weights: Box<[u32]>,
}

impl LeastConnections {
    /// A balancer for servers with these weights (0 counts as 1; servers past
    /// the end weigh 1).
    pub fn new(weights: &[u32]) -> Self {
        LeastConnections {
            weights: sanitize_weights(weights),
        }
    }
}

impl Balancer for LeastConnections {
    fn pick(&self, servers: &dyn Servers, input: &PickInput) -> Option<usize> {
        let mut rng = SplitMix64::new(input.random);
        // (index, active + 1, weight) of the best so far, and how many tie.
        let mut best: Option<(usize, u128, u128)> = None;
        let mut ties: u64 = 0;
        for i in 0..servers.len() {
            if !servers.eligible(i) {
                continue;
            }
            let load = u128::from(servers.active(i)) + 1;
            let weight = u128::from(weight_at(&self.weights, i));
            match best {
                None => {
                    best = Some((i, load, weight));
                    ties = 1;
                }
                Some((_, best_load, best_weight)) => {
                    // load / weight vs best_load / best_weight.
                    let (lhs, rhs) = (load * best_weight, best_load * weight);
                    if lhs < rhs {
                        best = Some((i, load, weight));
                        ties = 1;
                    } else if lhs == rhs {
                        ties += 1;
                        if rng.below(ties) == 0 {
                            best = Some((i, load, weight));
                        }
                    }
                }
            }
        }
        best.map(|(i, _, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fake;
    use super::*;
    use proptest::prelude::*;

    fn pick(b: &LeastConnections, s: &Fake, random: u64) -> Option<usize> {
        b.pick(s, &PickInput { hash: 0, random })
    }

    #[test]
    fn fewest_active_wins() {
        let b = LeastConnections::new(&[1, 1, 1]);
        let mut s = Fake::all(3);
        s.active = vec![5, 2, 9];
        for r in 0..20 {
            assert_eq!(pick(&b, &s, r), Some(1));
        }
    }

    #[test]
    fn weight_scales_the_load() {
        // (4+1)/3 < (1+1)/1: the heavy server wins despite more requests.
        let b = LeastConnections::new(&[1, 3]);
        let mut s = Fake::all(2);
        s.active = vec![1, 4];
        assert_eq!(pick(&b, &s, 0), Some(1));
        // (5+1)/3 == (1+1)/1: a tie, both get picked.
        s.active = vec![1, 5];
        let got: std::collections::HashSet<_> = (0..64).map(|r| pick(&b, &s, r)).collect();
        assert_eq!(got.len(), 2);
        // Idle: 1/3 < 1/1.
        s.active = vec![0, 0];
        assert_eq!(pick(&b, &s, 0), Some(1));
    }

    #[test]
    fn skips_ineligible_and_huge_counts_do_not_overflow() {
        let b = LeastConnections::new(&[u32::MAX, u32::MAX, 1]);
        let mut s = Fake::with_eligible(&[false, true, true]);
        s.active = vec![0, u64::MAX, u64::MAX];
        assert_eq!(pick(&b, &s, 0), Some(1));
    }

    #[test]
    fn ties_share_evenly() {
        let b = LeastConnections::new(&[1; 4]);
        let s = Fake::all(4);
        let mut counts = [0u32; 4];
        for r in 0..40_000u64 {
            if let Some(i) = pick(&b, &s, r.wrapping_mul(0x9E37_79B9_7F4A_7C15)) {
                counts[i] += 1;
            }
        }
        // Expect 10,000 each; sd is about 87, so 5 sd is 435.
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
    }

    proptest! {
        #[test]
        fn never_strictly_worse_than_another_eligible(
            servers in proptest::collection::vec((1u32..100, 0u64..50, any::<bool>()), 0..20),
            random in any::<u64>(),
        ) {
            let weights: Vec<u32> = servers.iter().map(|s| s.0).collect();
            let mut s = Fake::with_eligible(&servers.iter().map(|s| s.2).collect::<Vec<_>>());
            s.active = servers.iter().map(|s| s.1).collect();
            let b = LeastConnections::new(&weights);
            let got = pick(&b, &s, random);
            let any_eligible = servers.iter().any(|s| s.2);
            prop_assert_eq!(got.is_some(), any_eligible);
            if let Some(i) = got {
                prop_assert!(servers[i].2, "picked an ineligible server");
                let (wi, ai) = (u128::from(servers[i].0), u128::from(servers[i].1) + 1);
                for &(w, a, e) in &servers {
                    if e {
                        // ai / wi <= (a + 1) / w
                        prop_assert!(ai * u128::from(w) <= (u128::from(a) + 1) * wi);
                    }
                }
            }
        }

        #[test]
        fn every_tied_server_gets_picked(n in 2usize..8, seed in any::<u64>()) {
            let b = LeastConnections::new(&vec![2; n]);
            let s = Fake::all(n);
            let mut rng = SplitMix64::new(seed);
            let mut seen = vec![false; n];
            for _ in 0..(n * 200) {
                if let Some(i) = pick(&b, &s, rng.next_u64()) {
                    seen[i] = true;
                }
            }
            prop_assert!(seen.iter().all(|&x| x));
        }
    }
}
