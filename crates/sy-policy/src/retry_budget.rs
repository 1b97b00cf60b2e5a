//! Retry budget, after Finagle's `RetryBudget` and Linkerd's: retries are
//! allowed as a fraction of recent original requests plus a small floor per
//! second, so retries can mask occasional failures but cannot multiply the
//! load on an upstream that is failing everything.
//!
//! The window is a ring of [`BUCKETS`] time buckets, each `window / 10`
//! wide, so counting is O(1) in memory and O(10) in time, and events leave
//! the window a bucket at a time, at most `window` after they happened.

use std::time::Duration;

/// Number of time buckets the window is split into.
pub const BUCKETS: usize = 10;

/// Tolerance for float rounding in the allowance, so that e.g. a ratio of
/// 0.29 over 100 requests gives 29 retries and not 28.
const EPSILON: f64 = 1e-9;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    /// `now_ns / width` of the events counted here.
    epoch: u64,
    requests: u64,
    retries: u64,
}

/// A retry budget over a sliding window.
///
/// A retry at `now_ns` is allowed while
/// `retries < floor(min_retries_per_second * window_seconds + ratio * requests)`,
/// counting requests and retries in the window that ends at `now_ns`.
///
/// The window moves in steps of `window / 10`: an event counts while it is
/// in one of the 10 most recent buckets (the current one included), so it
/// stops counting between `0.9 * window` and `window` after it happened —
/// never later, whether or not anything calls the budget in between. Time
/// going backwards (a `now_ns` below one already seen) counts as the latest
/// time seen.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: u32,
    window_ns: u64,
    width_ns: u64,
    /// The highest epoch seen, so time never goes backwards.
    latest_epoch: u64,
    buckets: [Bucket; BUCKETS],
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per original request (0.2 = 20 %)
    /// plus `min_retries_per_second` over `window`.
    ///
    /// A ratio that is negative or not finite counts as 0. A window shorter
    /// than 10 ns counts as 10 ns; one longer than `u64::MAX` ns as
    /// `u64::MAX` ns.
    pub fn new(ratio: f64, min_retries_per_second: u32, window: Duration) -> Self {
        let ratio = if ratio.is_finite() && ratio > 0.0 {
            ratio
        } else {
            0.0
        };
        let window_ns = u64::try_from(window.as_nanos())
            .unwrap_or(u64::MAX)
            .max(BUCKETS as u64);
        RetryBudget {
            ratio,
            min_per_second: min_retries_per_second,
            window_ns,
            width_ns: window_ns / BUCKETS as u64,
            latest_epoch: 0,
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    /// The retry-to-request ratio.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The floor, in retries per second.
    pub fn min_retries_per_second(&self) -> u32 {
        self.min_per_second
    }

    /// The window length in nanoseconds.
    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// Counts one original request (not a retry) at `now_ns`.
    pub fn deposit(&mut self, now_ns: u64) {
        let b = self.bucket_mut(now_ns);
        b.requests = b.requests.saturating_add(1);
    }

    /// Asks for one retry at `now_ns`: allowed while retries in the window <
    /// `min_retries_per_second * window_seconds + ratio * requests` in the
    /// window (floor). On success counts the retry and returns true;
    /// otherwise false.
    pub fn try_withdraw(&mut self, now_ns: u64) -> bool {
        if self.remaining(now_ns) == 0 {
            return false;
        }
        let b = self.bucket_mut(now_ns);
        b.retries = b.retries.saturating_add(1);
        true
    }

    /// (requests, retries) currently in the window, for display.
    pub fn counts(&self, now_ns: u64) -> (u64, u64) {
        let cur = self.epoch(now_ns);
        self.buckets
            .iter()
            .filter(|b| b.epoch <= cur && cur - b.epoch < BUCKETS as u64)
            .fold((0u64, 0u64), |(req, ret), b| {
                (
                    req.saturating_add(b.requests),
                    ret.saturating_add(b.retries),
                )
            })
    }

    /// Total retries the window allows given `requests` original requests
    /// in it: `floor(min_retries_per_second * window_seconds + ratio *
    /// requests)`.
    pub fn allowance(&self, requests: u64) -> u64 {
        let window_s = self.window_ns as f64 / 1e9;
        let x = f64::from(self.min_per_second) * window_s + self.ratio * requests as f64;
        // Float to int casts saturate.
        (x + EPSILON).floor() as u64
    }

    /// How many more retries would be allowed at `now_ns` (with no further
    /// requests).
    pub fn remaining(&self, now_ns: u64) -> u64 {
        let (requests, retries) = self.counts(now_ns);
        self.allowance(requests).saturating_sub(retries)
    }

    fn epoch(&self, now_ns: u64) -> u64 {
        (now_ns / self.width_ns).max(self.latest_epoch)
    }

    /// The bucket for `now_ns`, emptied first if it still holds an old
    /// epoch.
    fn bucket_mut(&mut self, now_ns: u64) -> &mut Bucket {
        let cur = self.epoch(now_ns);
        self.latest_epoch = cur;
        let b = &mut self.buckets[(cur % BUCKETS as u64) as usize];
        if b.epoch != cur {
            *b = Bucket {
                epoch: cur,
                requests: 0,
                retries: 0,
            };
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    fn budget(ratio: f64, min: u32, window_s: u64) -> RetryBudget {
        RetryBudget::new(ratio, min, Duration::from_secs(window_s))
    }

    /// Withdraws until refused (at most `limit` times), returns how many
    /// were granted.
    fn drain(b: &mut RetryBudget, now: u64, limit: usize) -> usize {
        (0..limit).take_while(|_| b.try_withdraw(now)).count()
    }

    #[test]
    fn burst_of_failures_gets_exactly_the_budget() {
        // 20 % of 100 requests + 10/s over 10 s = 20 + 100 = 120.
        let mut b = budget(0.2, 10, 10);
        for k in 0..100 {
            b.deposit(k * 10 * MS);
        }
        let now = 2 * S;
        let granted = (0..1000).filter(|_| b.try_withdraw(now)).count();
        assert_eq!(granted, 120);
        assert_eq!(b.counts(now), (100, 120));
        assert_eq!(b.remaining(now), 0);
        // Each further request buys a fifth of a retry.
        for _ in 0..4 {
            b.deposit(now);
            assert!(!b.try_withdraw(now));
        }
        b.deposit(now);
        assert!(b.try_withdraw(now));
        assert!(!b.try_withdraw(now));
    }

    #[test]
    fn ratio_only() {
        let mut b = budget(0.1, 0, 10);
        for _ in 0..95 {
            b.deposit(0);
        }
        assert_eq!(drain(&mut b, 0, 100), 9);
        for _ in 0..5 {
            b.deposit(0);
        }
        assert_eq!(drain(&mut b, 0, 100), 1);
    }

    #[test]
    fn float_rounding_does_not_cost_a_retry() {
        let b = budget(0.29, 0, 10);
        assert_eq!(b.allowance(100), 29);
        let b = budget(0.7, 0, 10);
        assert_eq!(b.allowance(10), 7);
        let b = RetryBudget::new(0.0, 3, Duration::from_millis(1100));
        assert_eq!(b.allowance(0), 3);
    }

    #[test]
    fn nothing_with_zero_ratio_and_floor() {
        let mut b = budget(0.0, 0, 10);
        for k in 0..1000 {
            b.deposit(k * MS);
        }
        assert_eq!(drain(&mut b, S, 100), 0);
        assert_eq!(b.counts(S), (1000, 0));
    }

    #[test]
    fn bad_ratios_count_as_zero() {
        for r in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut b = budget(r, 0, 10);
            assert_eq!(b.ratio(), 0.0);
            b.deposit(0);
            assert!(!b.try_withdraw(0));
        }
    }

    #[test]
    fn budget_refills_after_the_window() {
        let mut b = budget(0.2, 1, 10);
        for _ in 0..50 {
            b.deposit(0);
        }
        assert_eq!(drain(&mut b, 0, 1000), 20);
        // Still exhausted within the window.
        assert_eq!(drain(&mut b, 9 * S + 999 * MS, 1000), 0);
        // Once the window has passed, no call in between: only the floor.
        assert_eq!(b.counts(10 * S), (0, 0));
        assert_eq!(drain(&mut b, 10 * S, 1000), 10);
        // And the full budget again with new traffic.
        let mut b2 = budget(0.2, 1, 10);
        for _ in 0..50 {
            b2.deposit(0);
        }
        assert_eq!(drain(&mut b2, 0, 1000), 20);
        for _ in 0..50 {
            b2.deposit(30 * S);
        }
        assert_eq!(drain(&mut b2, 30 * S, 1000), 20);
    }

    #[test]
    fn events_expire_a_bucket_at_a_time() {
        // Buckets of 1 s.
        let mut b = budget(1.0, 0, 10);
        b.deposit(500 * MS); // epoch 0
        b.deposit(1500 * MS); // epoch 1
        assert_eq!(b.counts(9 * S + 999 * MS), (2, 0));
        assert_eq!(b.counts(10 * S), (1, 0));
        assert_eq!(b.counts(11 * S), (0, 0));
        // Reading does not change anything.
        assert_eq!(b.counts(5 * S), (2, 0));
    }

    #[test]
    fn ring_slots_are_reused() {
        let mut b = budget(1.0, 0, 10);
        for _ in 0..7 {
            b.deposit(3 * S);
        }
        // 10 s later the same slot: the old counts must not leak in.
        b.deposit(13 * S);
        assert_eq!(b.counts(13 * S), (1, 0));
        assert!(b.try_withdraw(13 * S));
        assert!(!b.try_withdraw(13 * S));
    }

    #[test]
    fn time_going_backwards_counts_as_latest() {
        let mut b = budget(1.0, 0, 10);
        b.deposit(20 * S);
        b.deposit(S);
        assert_eq!(b.counts(20 * S), (2, 0));
        assert_eq!(b.counts(0), (2, 0));
        assert_eq!(b.counts(30 * S), (0, 0));
    }

    #[test]
    fn degenerate_windows() {
        let b = RetryBudget::new(0.5, 5, Duration::ZERO);
        assert_eq!(b.window_ns(), 10);
        assert_eq!(b.allowance(0), 0);
        let mut b = RetryBudget::new(0.5, 1, Duration::MAX);
        assert_eq!(b.window_ns(), u64::MAX);
        b.deposit(u64::MAX);
        b.deposit(0);
        assert_eq!(b.counts(u64::MAX), (2, 0));
        assert!(b.try_withdraw(u64::MAX));
        // The floor over ~584 years is huge; no overflow.
        assert!(b.allowance(u64::MAX) > 1 << 40);
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Deposit,
        Withdraw,
    }

    proptest! {
        #[test]
        fn matches_a_model(
            ratio in 0.0f64..1.5,
            min in 0u32..4,
            ops in proptest::collection::vec((0u64..400, any::<bool>()), 0..300),
        ) {
            // Window 1 s, buckets of 100 ms.
            let mut b = RetryBudget::new(ratio, min, Duration::from_secs(1));
            let width = 100 * MS;
            let mut now = 0u64;
            // (time, is_retry)
            let mut events: Vec<(u64, bool)> = Vec::new();
            for (dt_ms, deposit) in ops {
                now += dt_ms * MS;
                let op = if deposit { Op::Deposit } else { Op::Withdraw };
                let cur = now / width;
                let live: Vec<_> = events
                    .iter()
                    .filter(|&&(t, _)| cur - t / width < BUCKETS as u64)
                    .collect();
                // Nothing older than the window counts.
                prop_assert!(live.iter().all(|&&(t, _)| now - t < S));
                let req = live.iter().filter(|e| !e.1).count() as u64;
                let ret = live.iter().filter(|e| e.1).count() as u64;
                prop_assert_eq!(b.counts(now), (req, ret));
                match op {
                    Op::Deposit => {
                        b.deposit(now);
                        events.push((now, false));
                    }
                    Op::Withdraw => {
                        let want = ret < b.allowance(req);
                        prop_assert_eq!(b.try_withdraw(now), want);
                        if want {
                            events.push((now, true));
                            // The invariant the budget exists for (it can
                            // break later, when requests leave the window
                            // before the retries they paid for).
                            prop_assert!(ret < b.allowance(req));
                            prop_assert_eq!(b.counts(now), (req, ret + 1));
                        }
                    }
                }
            }
        }
    }
}
