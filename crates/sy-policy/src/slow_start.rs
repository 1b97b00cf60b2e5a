//! Slow start: a server that just became ready (started, turned healthy,
//! came back from ejection) gets a growing share of its traffic over a
//! window instead of all of it at once, after Envoy's slow-start mode and
//! nginx's `slow_start`.
//!
//! [`factor`] is the share at a given age; [`admit`] turns it into a yes/no
//! for one pick, so a balancer can skip a ramping server with probability
//! `1 - factor` (and pick again among the rest) without changing its own
//! algorithm.

use crate::balance::SplitMix64;

/// The share of full weight a server gets the moment it becomes ready.
pub const MIN_FACTOR: f64 = 0.1;

/// Domain separation for [`admit`], so its decisions do not line up with the
/// numbers a balancer derives from the same `random` (splitmix64 outputs
/// seeded by it).
const ADMIT_DOMAIN: u64 = 0x51A3_5747_A27D_0C1B;

/// The golden-ratio increment of splitmix64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Share of full weight a server has `elapsed_ns` after it became ready,
/// ramping linearly from [`MIN_FACTOR`] (0.1) at 0 to 1.0 at `window_ns`;
/// window 0 -> 1.0.
pub fn factor(elapsed_ns: u64, window_ns: u64) -> f64 {
    if elapsed_ns >= window_ns {
        return 1.0;
    }
    let ramp = elapsed_ns as f64 / window_ns as f64;
    (MIN_FACTOR + (1.0 - MIN_FACTOR) * ramp).min(1.0)
}

/// Admission decision for one pick: true with probability `factor`, decided
/// from `random` mixed with `salt` (the server index), so one random value
/// gives independent decisions per server. `factor >= 1.0` -> always true;
/// `factor <= 0.0` -> always false; a NaN factor admits (fails open).
///
/// Deterministic: the same `(factor, random, salt)` always gives the same
/// answer, and for fixed `random` and `salt` a larger factor never turns a
/// yes into a no.
pub fn admit(factor: f64, random: u64, salt: u64) -> bool {
    if factor >= 1.0 || factor.is_nan() {
        return true;
    }
    if factor <= 0.0 {
        return false;
    }
    unit(random, salt) < factor
}

/// A uniform number in `[0, 1)` from `random` and `salt`: one splitmix64
/// step over a seed that differs per salt.
fn unit(random: u64, salt: u64) -> f64 {
    let seed = random.wrapping_add(salt.wrapping_mul(GOLDEN)) ^ ADMIT_DOMAIN;
    let x = SplitMix64::new(seed).next_u64();
    // The top 53 bits, exactly representable.
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const S: u64 = 1_000_000_000;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn ramp_points() {
        let w = 60 * S;
        assert_eq!(factor(0, w), MIN_FACTOR);
        assert!(close(factor(30 * S, w), 0.55));
        assert!(close(factor(15 * S, w), 0.325));
        assert_eq!(factor(w, w), 1.0);
        assert_eq!(factor(w + 1, w), 1.0);
        assert_eq!(factor(u64::MAX, w), 1.0);
        assert!(factor(w - 1, w) < 1.0);
    }

    #[test]
    fn zero_window_is_full_weight() {
        assert_eq!(factor(0, 0), 1.0);
        assert_eq!(factor(123, 0), 1.0);
    }

    #[test]
    fn huge_window() {
        assert_eq!(factor(0, u64::MAX), MIN_FACTOR);
        assert!(close(factor(u64::MAX / 2, u64::MAX), 0.55));
    }

    #[test]
    fn admit_extremes() {
        for r in [0, 1, u64::MAX / 2, u64::MAX] {
            for salt in [0, 1, 7, u64::MAX] {
                assert!(admit(1.0, r, salt));
                assert!(admit(1.5, r, salt));
                assert!(admit(f64::INFINITY, r, salt));
                assert!(admit(f64::NAN, r, salt));
                assert!(!admit(0.0, r, salt));
                assert!(!admit(-1.0, r, salt));
                assert!(!admit(f64::NEG_INFINITY, r, salt));
            }
        }
    }

    #[test]
    fn admission_rate_follows_the_factor() {
        let mut rng = StdRng::seed_from_u64(11);
        for f in [MIN_FACTOR, 0.25, 0.5, 0.9] {
            for salt in [0u64, 1, 2, 1000] {
                let n = 40_000;
                let yes = (0..n).filter(|_| admit(f, rng.random(), salt)).count();
                let rate = yes as f64 / n as f64;
                // sd <= 0.0025; allow 4 sd.
                assert!((rate - f).abs() < 0.01, "f {f} salt {salt}: {rate}");
            }
        }
    }

    #[test]
    fn admission_is_fair_over_sequential_randoms() {
        // Callers may pass a counter-like random; the mixing still spreads it.
        for salt in [0u64, 3] {
            let yes = (0..10_000u64).filter(|&r| admit(0.3, r, salt)).count();
            assert!((2800..3200).contains(&yes), "salt {salt}: {yes}");
        }
    }

    #[test]
    fn decisions_per_server_are_independent() {
        // Same random for two servers: both admitted with probability f^2.
        let mut rng = StdRng::seed_from_u64(5);
        let f = 0.5;
        let n = 40_000;
        let mut both = 0;
        let mut agree = 0;
        for _ in 0..n {
            let r = rng.random();
            let (a, b) = (admit(f, r, 0), admit(f, r, 1));
            both += usize::from(a && b);
            agree += usize::from(a == b);
        }
        let both = both as f64 / n as f64;
        let agree = agree as f64 / n as f64;
        assert!((both - 0.25).abs() < 0.01, "{both}");
        assert!((agree - 0.5).abs() < 0.01, "{agree}");
    }

    #[test]
    fn independent_of_a_balancers_splitmix_draws() {
        // A balancer seeding splitmix64 with the same random must not see
        // its draws line up with the admission decisions.
        let mut rng = StdRng::seed_from_u64(9);
        let n = 40_000;
        let mut low_and_admitted = 0;
        for _ in 0..n {
            let r: u64 = rng.random();
            let mut g = SplitMix64::new(r);
            let first_draw_low = g.next_u64() < u64::MAX / 2;
            low_and_admitted += usize::from(first_draw_low && admit(0.5, r, 0));
        }
        let p = low_and_admitted as f64 / n as f64;
        assert!((p - 0.25).abs() < 0.01, "{p}");
    }

    proptest! {
        #[test]
        fn factor_in_range_and_monotone(a in any::<u64>(), b in any::<u64>(), w in any::<u64>()) {
            let (lo, hi) = (a.min(b), a.max(b));
            let (fl, fh) = (factor(lo, w), factor(hi, w));
            prop_assert!((MIN_FACTOR..=1.0).contains(&fl));
            prop_assert!((MIN_FACTOR..=1.0).contains(&fh));
            prop_assert!(fl <= fh);
        }

        #[test]
        fn admit_monotone_in_factor(f in 0.0f64..1.0, g in 0.0f64..1.0, r in any::<u64>(), salt in any::<u64>()) {
            let (lo, hi) = (f.min(g), f.max(g));
            if admit(lo, r, salt) {
                prop_assert!(admit(hi, r, salt));
            }
        }

        #[test]
        fn unit_in_range(r in any::<u64>(), salt in any::<u64>()) {
            let u = unit(r, salt);
            prop_assert!((0.0..1.0).contains(&u));
        }
    }
}
