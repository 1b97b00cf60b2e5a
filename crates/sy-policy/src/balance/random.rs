//! Weighted random.

use super::{Balancer, PickInput, Servers, below, sanitize_weights, weight_at};

/// Picks an eligible server at random with probability proportional to its
/// weight among the eligible servers.
///
/// Two O(n) passes: sum the eligible weights, then walk to the server the
/// random number lands on. No state, so no contention between threads.
#[derive(Debug)]
pub struct WeightedRandom {
    weights: Box<[u32]>,
}

impl WeightedRandom {
    /// A balancer for servers with these weights (0 counts as 1; servers past
    /// the end weigh 1).
    pub fn new(weights: &[u32]) -> Self {
        WeightedRandom {
            weights: sanitize_weights(weights),
        }
    }
}

impl Balancer for WeightedRandom {
    fn pick(&self, servers: &dyn Servers, input: &PickInput) -> Option<usize> {
        let n = servers.len();
        let total: u64 = (0..n)
            .filter(|&i| servers.eligible(i))
            .map(|i| u64::from(weight_at(&self.weights, i)))
            .sum();
        if total == 0 {
            return None;
        }
        let mut r = below(input.random, total);
        let mut last = None;
        for i in 0..n {
            if !servers.eligible(i) {
                continue;
            }
            let w = u64::from(weight_at(&self.weights, i));
            if r < w {
                return Some(i);
            }
            r -= w;
            last = Some(i);
        }
        // Only reached when health changed between the two passes.
        last
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fake;
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Pearson's chi-square statistic of observed counts against expected
    /// probabilities.
    fn chi_square(counts: &[u64], probs: &[f64]) -> f64 {
        let total: u64 = counts.iter().sum();
        counts
            .iter()
            .zip(probs)
            .filter(|&(_, &p)| p > 0.0)
            .map(|(&c, &p)| {
                let e = p * total as f64;
                (c as f64 - e).powi(2) / e
            })
            .sum()
    }

    #[test]
    fn extremes_of_the_random_input() {
        let b = WeightedRandom::new(&[1, 2, 1]);
        let s = Fake::all(3);
        assert_eq!(b.pick(&s, &PickInput { hash: 0, random: 0 }), Some(0));
        let max = PickInput {
            hash: 0,
            random: u64::MAX,
        };
        assert_eq!(b.pick(&s, &max), Some(2));
        let mid = PickInput {
            hash: 0,
            random: u64::MAX / 2,
        };
        assert_eq!(b.pick(&s, &mid), Some(1));
    }

    #[test]
    fn ineligible_never_picked() {
        let b = WeightedRandom::new(&[100, 1]);
        let s = Fake::with_eligible(&[false, true]);
        for r in 0..1000u64 {
            let input = PickInput {
                hash: 0,
                random: r.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            assert_eq!(b.pick(&s, &input), Some(1));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn shares_follow_weights(
            ws in proptest::collection::vec((1u32..10, proptest::bool::weighted(0.8)), 2..8),
            seed in any::<u64>(),
        ) {
            let weights: Vec<u32> = ws.iter().map(|&(w, _)| w).collect();
            let eligible: Vec<bool> = ws.iter().map(|&(_, e)| e).collect();
            let b = WeightedRandom::new(&weights);
            let s = Fake::with_eligible(&eligible);
            let total: f64 = ws.iter().filter(|w| w.1).map(|w| f64::from(w.0)).sum();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut counts = vec![0u64; ws.len()];
            for _ in 0..20_000 {
                let input = PickInput { hash: 0, random: rng.random() };
                match b.pick(&s, &input) {
                    Some(i) => counts[i] += 1,
                    None => prop_assert_eq!(total, 0.0),
                }
            }
            if total > 0.0 {
                let probs: Vec<f64> = ws
                    .iter()
                    .map(|&(w, e)| if e { f64::from(w) / total } else { 0.0 })
                    .collect();
                for (c, p) in counts.iter().zip(&probs) {
                    if *p == 0.0 {
                        prop_assert_eq!(*c, 0);
                    }
                }
                // At most 7 degrees of freedom; the 0.9999 quantile of
                // chi-square(7) is 29.9, so 35 fails about once in 10^5 runs
                // of an honest sampler (and the seeds are fixed per run).
                let x2 = chi_square(&counts, &probs);
                prop_assert!(x2 < 35.0, "chi2 {} counts {:?} probs {:?}", x2, counts, probs);
            }
        }
    }
}
