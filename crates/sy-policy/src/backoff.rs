//! Retry backoff: full-jitter exponential ("Exponential Backoff And Jitter",
//! AWS Architecture Blog), with randomness passed in.
//!
//! Also home to two small crate-private helpers the other time-based modules
//! share (`below_u128`, `duration_from_nanos`): they work in `u128`
//! nanoseconds so no duration, however large, overflows.

use std::time::Duration;

/// Full-jitter exponential backoff for retry number `retry` (1 = first
/// retry): uniform in `[0, min(max, base * 2^(retry-1))]`, using `random`.
///
/// `retry` 0 counts as 1. The cap is computed without overflow (a huge
/// `retry` or `base` just means `max`), and the answer never exceeds `max`.
/// Deterministic and monotone in `random`: `0` gives zero and `u64::MAX`
/// gives the cap (exactly, for caps under 2^64 ns, about 584 years).
pub fn backoff(retry: u32, base: Duration, max: Duration, random: u64) -> Duration {
    let cap = cap_ns(retry, base, max);
    // Inclusive range: cap + 1 values. cap <= Duration::MAX in ns < 2^95.
    duration_from_nanos(below_u128(random, cap + 1))
}

/// The upper end of [`backoff`]'s range for `retry`, as a `Duration`:
/// `min(max, base * 2^(retry-1))`.
pub fn backoff_cap(retry: u32, base: Duration, max: Duration) -> Duration {
    duration_from_nanos(cap_ns(retry, base, max))
}

fn cap_ns(retry: u32, base: Duration, max: Duration) -> u128 {
    let shift = retry.max(1) - 1;
    let base = base.as_nanos();
    let max = max.as_nanos();
    // base * 2^shift, saturating: a shift that pushes the top set bit past
    // bit 127 overflows, and then the product is certainly above max (< 2^95).
    let grown = if base == 0 {
        0
    } else if shift > base.leading_zeros() {
        u128::MAX
    } else {
        base << shift
    };
    grown.min(max)
}

/// Map a uniform `u64` onto `0..n` (0 when n is 0): `floor(r * n / 2^64)`,
/// computed without overflow for any `u128` n.
pub(crate) fn below_u128(r: u64, n: u128) -> u128 {
    let r = u128::from(r);
    let hi = n >> 64;
    let lo = n & u128::from(u64::MAX);
    // r * n / 2^64 = r * hi + r * lo / 2^64; the first term cannot carry a
    // fraction, so flooring the second alone is exact.
    // Both terms and their sum stay below r * n / 2^64 < 2^128.
    r * hi + ((r * lo) >> 64)
}

/// A `Duration` of `nanos` nanoseconds, saturating at `Duration::MAX`.
pub(crate) fn duration_from_nanos(nanos: u128) -> Duration {
    const NS_PER_S: u128 = 1_000_000_000;
    match u64::try_from(nanos / NS_PER_S) {
        Ok(secs) => Duration::new(secs, (nanos % NS_PER_S) as u32),
        Err(_) => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn cap_doubles_until_max() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let caps: Vec<_> = (0..8).map(|r| backoff_cap(r, base, max)).collect();
        assert_eq!(
            caps,
            [100, 100, 200, 400, 800, 1600, 2000, 2000].map(Duration::from_millis)
        );
    }

    #[test]
    fn extremes_of_random() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        assert_eq!(backoff(1, base, max, 0), Duration::ZERO);
        assert_eq!(backoff(3, base, max, 0), Duration::ZERO);
        // u64::MAX lands on the cap itself (the range is inclusive).
        assert_eq!(backoff(1, base, max, u64::MAX), base);
        assert_eq!(backoff(3, base, max, u64::MAX), 4 * base);
        assert_eq!(backoff(40, base, max, u64::MAX), max);
        // The middle of the random range is the middle of the window.
        let mid = backoff(2, base, max, u64::MAX / 2);
        assert!(mid.abs_diff(base) <= Duration::from_nanos(1), "{mid:?}");
    }

    #[test]
    fn never_overflows() {
        let big = Duration::MAX;
        for retry in [0, 1, 2, 63, 64, 65, 95, 96, 127, 128, 129, u32::MAX] {
            for base in [Duration::ZERO, Duration::from_nanos(1), MS, big] {
                for max in [Duration::ZERO, MS, big] {
                    for r in [0, 1, u64::MAX / 3, u64::MAX] {
                        let d = backoff(retry, base, max, r);
                        assert!(d <= max && d <= backoff_cap(retry, base, max));
                    }
                }
            }
        }
        assert_eq!(backoff_cap(u32::MAX, MS, big), big);
        // With a cap past 2^64 ns the top random lands within a second of it.
        let d = backoff(u32::MAX, MS, big, u64::MAX);
        assert!(d < big && d > big - Duration::from_secs(2), "{d:?}");
    }

    #[test]
    fn zero_base_or_max_gives_zero() {
        assert_eq!(
            backoff(5, Duration::ZERO, Duration::from_secs(1), 77),
            Duration::ZERO
        );
        assert_eq!(backoff(5, MS, Duration::ZERO, u64::MAX), Duration::ZERO);
    }

    #[test]
    fn mean_is_half_the_cap() {
        let base = Duration::from_millis(10);
        let max = Duration::from_secs(1);
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 1..=4u32 {
            let n = 20_000u32;
            let sum: Duration = (0..n)
                .map(|_| backoff(retry, base, max, rng.random()))
                .sum();
            let mean = sum.as_secs_f64() / f64::from(n);
            let want = backoff_cap(retry, base, max).as_secs_f64() / 2.0;
            assert!(
                (mean - want).abs() < want * 0.02,
                "retry {retry}: {mean} vs {want}"
            );
        }
    }

    #[test]
    fn below_u128_matches_the_definition() {
        assert_eq!(below_u128(0, u128::MAX), 0);
        assert_eq!(below_u128(u64::MAX, 0), 0);
        assert_eq!(below_u128(u64::MAX, 1), 0);
        assert_eq!(below_u128(1 << 63, 10), 5);
        assert_eq!(below_u128(u64::MAX, 1 << 64), u128::from(u64::MAX));
        // floor((2^64 - 1) * (2^128 - 1) / 2^64) = 2^128 - 2^64 - 1.
        assert_eq!(below_u128(u64::MAX, u128::MAX), u128::MAX - (1 << 64));
    }

    #[test]
    fn duration_from_nanos_saturates() {
        assert_eq!(duration_from_nanos(0), Duration::ZERO);
        assert_eq!(
            duration_from_nanos(1_500_000_001),
            Duration::new(1, 500_000_001)
        );
        assert_eq!(duration_from_nanos(Duration::MAX.as_nanos()), Duration::MAX);
        assert_eq!(duration_from_nanos(u128::MAX), Duration::MAX);
    }

    proptest! {
        #[test]
        fn within_the_cap(
            retry in 0u32..200,
            base_ns in 0u64..10_000_000_000,
            max_ns in 0u64..1_000_000_000_000,
            random in any::<u64>(),
        ) {
            let base = Duration::from_nanos(base_ns);
            let max = Duration::from_nanos(max_ns);
            let d = backoff(retry, base, max, random);
            let cap = backoff_cap(retry, base, max);
            prop_assert!(d <= cap);
            prop_assert!(cap <= max);
            // The cap is base * 2^(retry-1) whenever that fits under max.
            let exp = retry.max(1) - 1;
            if exp < 64 {
                let want = (u128::from(base_ns) << exp).min(u128::from(max_ns));
                prop_assert_eq!(cap.as_nanos(), want);
            } else if base_ns > 0 {
                prop_assert_eq!(cap, max);
            }
        }

        #[test]
        fn monotone_in_random(
            retry in 1u32..40,
            a in any::<u64>(),
            b in any::<u64>(),
        ) {
            let base = Duration::from_millis(50);
            let max = Duration::from_secs(30);
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(backoff(retry, base, max, lo) <= backoff(retry, base, max, hi));
        }
    }
}
