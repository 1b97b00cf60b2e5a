//! Weighted traffic splitting (canary, blue/green, A/B): choose one of
//! several backends with fixed probabilities.

use crate::balance::below;

/// Weighted choice: index i with probability `weights[i] / sum`; None if
/// the sum is 0 or `weights` is empty. Deterministic in `random`.
///
/// `random` is mapped onto `0..sum` by multiply-shift (so its high bits
/// decide) and the index whose cumulative range holds it wins: `0` picks the
/// first index with a non-zero weight, `u64::MAX` the last. A zero weight is
/// never picked.
pub fn pick_weighted(weights: &[u32], random: u64) -> Option<usize> {
    pick_weighted_where(weights, random, |_| true)
}

/// Like [`pick_weighted`], among the indices for which `usable` holds
/// (a split leaving out a backend with no available server). None when
/// their weights add up to 0.
pub fn pick_weighted_where(
    weights: &[u32],
    random: u64,
    usable: impl Fn(usize) -> bool,
) -> Option<usize> {
    let weight = |i: usize, w: u32| if usable(i) { u64::from(w) } else { 0 };
    // At most 2^32 entries of < 2^32 each would be needed to overflow.
    let total: u64 = weights.iter().enumerate().map(|(i, &w)| weight(i, w)).sum();
    if total == 0 {
        return None;
    }
    let mut r = below(random, total);
    for (i, &w) in weights.iter().enumerate() {
        let w = weight(i, w);
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    // Unreachable: r < total = sum of the weights.
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn unusable_backends_are_left_out() {
        for r in [0, 1, u64::MAX / 3, u64::MAX] {
            assert_eq!(pick_weighted_where(&[90, 10], r, |i| i != 0), Some(1));
            assert_eq!(pick_weighted_where(&[90, 10, 0], r, |i| i != 1), Some(0));
        }
        assert_eq!(pick_weighted_where(&[90, 10], 5, |_| false), None);
        assert_eq!(pick_weighted_where(&[0, 10], 5, |i| i == 0), None);
    }

    #[test]
    fn empty_or_zero_is_none() {
        assert_eq!(pick_weighted(&[], 5), None);
        assert_eq!(pick_weighted(&[0], 5), None);
        assert_eq!(pick_weighted(&[0, 0, 0], u64::MAX), None);
    }

    #[test]
    fn single_nonzero_always_wins() {
        for r in [0, 1, u64::MAX / 2, u64::MAX] {
            assert_eq!(pick_weighted(&[0, 7, 0], r), Some(1));
            assert_eq!(pick_weighted(&[1], r), Some(0));
        }
    }

    #[test]
    fn extremes_of_random() {
        assert_eq!(pick_weighted(&[0, 1, 1, 0], 0), Some(1));
        assert_eq!(pick_weighted(&[0, 1, 1, 0], u64::MAX), Some(2));
        assert_eq!(pick_weighted(&[u32::MAX, u32::MAX], u64::MAX), Some(1));
    }

    #[test]
    fn ninety_ten_over_evenly_spread_randoms() {
        let n = 10_000u64;
        let step = u64::MAX / n;
        let second = (0..n)
            .filter(|&k| pick_weighted(&[90, 10], k * step + step / 2) == Some(1))
            .count();
        // 10 % ± 1 percentage point.
        assert!((900..=1100).contains(&second), "{second}");
        assert_eq!(second, 1000);
    }

    #[test]
    fn ninety_ten_over_random_randoms() {
        let mut rng = StdRng::seed_from_u64(1);
        let second = (0..10_000)
            .filter(|_| pick_weighted(&[90, 10], rng.random()) == Some(1))
            .count();
        assert!((900..=1100).contains(&second), "{second}");
    }

    proptest! {
        #[test]
        fn in_range_and_never_zero_weight(
            weights in proptest::collection::vec(0u32..5, 0..10),
            random in any::<u64>(),
        ) {
            match pick_weighted(&weights, random) {
                Some(i) => prop_assert!(weights[i] > 0),
                None => prop_assert!(weights.iter().all(|&w| w == 0)),
            }
        }

        #[test]
        fn exact_shares_over_a_grid(
            weights in proptest::collection::vec(0u32..20, 1..8),
        ) {
            // Randoms spread evenly over u64: each index gets its share up to
            // rounding at the range edges.
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            prop_assume!(total > 0);
            let n = total * 100;
            let step = u64::MAX / n;
            let mut counts = vec![0u64; weights.len()];
            for k in 0..n {
                if let Some(i) = pick_weighted(&weights, k * step + step / 2) {
                    counts[i] += 1;
                }
            }
            for (c, &w) in counts.iter().zip(&weights) {
                prop_assert!(c.abs_diff(u64::from(w) * 100) <= 1, "{:?} vs {:?}", counts, weights);
            }
        }

        #[test]
        fn monotone_in_random(
            weights in proptest::collection::vec(0u32..100, 1..8),
            a in any::<u64>(),
            b in any::<u64>(),
        ) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(pick_weighted(&weights, lo) <= pick_weighted(&weights, hi));
        }
    }
}
