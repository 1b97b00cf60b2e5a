//! Peak EWMA: a per-server round-trip estimate that jumps up to a slow
//! response at once and decays back down over time, after finagle's
//! `PeakEwma` and linkerd's (tower's) `peak_ewma`.
//!
//! The state is lock-free ([`EwmaState`], two atomics) so request tasks can
//! record round-trips and balancers can read estimates concurrently. Time is
//! an input: `now_ns` comes from the caller's monotonic clock (any origin,
//! nanoseconds), which keeps this module pure and testable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Default decay time (10 s), the default of finagle and linkerd.
pub const DEFAULT_DECAY: Duration = Duration::from_secs(10);

/// Peak-EWMA parameters: how fast an estimate forgets.
///
/// - `observe(rtt)`: if `rtt` is above the current estimate, the estimate
///   becomes `rtt` (the peak); otherwise it moves toward `rtt` as
///   `estimate * w + rtt * (1 - w)` with `w = exp(-elapsed / decay)` and
///   `elapsed` the time since the previous observation. A burst of fast
///   responses right after a slow one barely lowers the estimate; a fast
///   response after a quiet spell counts fully.
/// - `get()`: the estimate decayed toward 0 by the time elapsed since the
///   last observation, `estimate * exp(-elapsed / decay)`, as finagle's
///   `getLoad` sees it, so a server that has not answered for a while looks
///   cheap again and gets retried.
///
/// One deliberate difference from finagle: reading does not write. finagle's
/// read is an `observe(0)` that also resets the clock, which makes the
/// estimate depend on how often balancers happen to look; here it depends
/// only on the observations and the time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakEwma {
    decay_ns: f64,
}

impl Default for PeakEwma {
    fn default() -> Self {
        Self::new(DEFAULT_DECAY)
    }
}

impl PeakEwma {
    /// Estimates decay with this time constant (after `decay`, an old value
    /// keeps about 37 % of its weight). A zero decay is taken as 1 ns.
    pub fn new(decay: Duration) -> Self {
        Self::from_decay_ns(decay.as_nanos() as f64)
    }

    /// Like [`PeakEwma::new`], in nanoseconds; values that are not positive
    /// and finite are taken as 1 ns.
    pub fn from_decay_ns(decay_ns: f64) -> Self {
        let decay_ns = if decay_ns.is_finite() && decay_ns >= 1.0 {
            decay_ns
        } else {
            1.0
        };
        PeakEwma { decay_ns }
    }

    /// The decay time constant in nanoseconds.
    pub fn decay_ns(&self) -> f64 {
        self.decay_ns
    }

    /// Weight an old value keeps after `elapsed_ns`.
    fn keep(&self, elapsed_ns: u64) -> f64 {
        (-(elapsed_ns as f64) / self.decay_ns).exp()
    }

    /// Record a round-trip of `rtt_ns` that ended at `now_ns`.
    ///
    /// Concurrent observations are all applied; two landing at the same
    /// instant behave as if applied one after the other. A `now_ns` earlier
    /// than the last observation counts as no time elapsed.
    pub fn observe(&self, state: &EwmaState, rtt_ns: u64, now_ns: u64) {
        // The stamp only moves forward; whoever advances it gets the elapsed
        // time, a concurrent observer at the same instant gets ~0.
        let prev = state.stamp_ns.fetch_max(now_ns, Ordering::AcqRel);
        let w = if state.has_data() {
            self.keep(now_ns.saturating_sub(prev))
        } else {
            0.0
        };
        let rtt = rtt_ns as f64;
        let _ = state
            .value_bits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                let old = f64::from_bits(bits);
                let new = if rtt > old || !old.is_finite() {
                    rtt
                } else {
                    old * w + rtt * (1.0 - w)
                };
                Some(new.to_bits())
            });
        state.observed.store(true, Ordering::Release);
    }

    /// The estimate at `now_ns` in nanoseconds, decayed toward 0 since the
    /// last observation; 0.0 before any observation.
    pub fn get(&self, state: &EwmaState, now_ns: u64) -> f64 {
        let value = f64::from_bits(state.value_bits.load(Ordering::Acquire));
        let stamp = state.stamp_ns.load(Ordering::Acquire);
        if !value.is_finite() {
            return 0.0;
        }
        value * self.keep(now_ns.saturating_sub(stamp))
    }
}

/// One server's peak-EWMA state: the last estimate and when it was made.
/// Lock-free; share it between the request path and the balancer.
#[derive(Debug, Default)]
pub struct EwmaState {
    /// f64 bits of the estimate in nanoseconds.
    value_bits: AtomicU64,
    /// `now_ns` of the latest observation.
    stamp_ns: AtomicU64,
    /// Whether anything was observed yet.
    observed: std::sync::atomic::AtomicBool,
}

impl EwmaState {
    /// A state without data: [`PeakEwma::get`] reads 0.0 until the first
    /// observation.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state seeded with an estimate of `rtt_ns` made at `now_ns` (for a
    /// server whose latency is known from elsewhere).
    pub fn with_estimate(rtt_ns: u64, now_ns: u64) -> Self {
        EwmaState {
            value_bits: AtomicU64::new((rtt_ns as f64).to_bits()),
            stamp_ns: AtomicU64::new(now_ns),
            observed: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Whether any round-trip has been observed (or an estimate seeded).
    pub fn has_data(&self) -> bool {
        self.observed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn no_data_reads_zero() {
        let e = PeakEwma::default();
        let s = EwmaState::new();
        assert!(!s.has_data());
        assert_eq!(e.get(&s, 5 * S), 0.0);
    }

    #[test]
    fn first_observation_is_taken_whole() {
        let e = PeakEwma::new(Duration::from_secs(10));
        let s = EwmaState::new();
        e.observe(&s, 3 * MS, 7 * S);
        assert!(s.has_data());
        assert_eq!(e.get(&s, 7 * S), (3 * MS) as f64);
        // Even at time 0 (no elapsed time to weight by).
        let s = EwmaState::new();
        e.observe(&s, 3 * MS, 0);
        assert_eq!(e.get(&s, 0), (3 * MS) as f64);
        // And a zero rtt is data too.
        let s = EwmaState::new();
        e.observe(&s, 0, 1);
        e.observe(&s, 4 * MS, 1);
        assert_eq!(e.get(&s, 1), (4 * MS) as f64);
    }

    #[test]
    fn peak_jumps_up_at_once() {
        let e = PeakEwma::new(Duration::from_secs(10));
        let s = EwmaState::new();
        e.observe(&s, MS, S);
        e.observe(&s, 50 * MS, S + 1);
        assert_eq!(e.get(&s, S + 1), (50 * MS) as f64);
    }

    #[test]
    fn lower_rtt_decays_toward_it_by_elapsed_time() {
        let e = PeakEwma::new(Duration::from_secs(10));
        let s = EwmaState::new();
        e.observe(&s, 100 * MS, 0);
        // 10 s later a 10 ms response: w = e^-1.
        e.observe(&s, 10 * MS, 10 * S);
        let w = (-1.0f64).exp();
        let want = 100e6 * w + 10e6 * (1.0 - w);
        assert!(close(e.get(&s, 10 * S), want), "{}", e.get(&s, 10 * S));
        // Right after, another fast response hardly moves it.
        e.observe(&s, 10 * MS, 10 * S + 1);
        let v = e.get(&s, 10 * S + 1);
        assert!(v < want && want - v < 1.0, "{v} vs {want}");
    }

    #[test]
    fn reads_decay_toward_zero_without_writing() {
        let e = PeakEwma::new(Duration::from_secs(10));
        let s = EwmaState::new();
        e.observe(&s, 80 * MS, S);
        let later = e.get(&s, 11 * S);
        assert!(close(later, 80e6 * (-1.0f64).exp()), "{later}");
        // Reading again (or more often) does not change the answer.
        assert_eq!(e.get(&s, 11 * S), later);
        assert!(e.get(&s, 1000 * S) < 1.0);
    }

    #[test]
    fn time_going_backwards_counts_as_no_time() {
        let e = PeakEwma::new(Duration::from_secs(1));
        let s = EwmaState::new();
        e.observe(&s, 50 * MS, 10 * S);
        e.observe(&s, MS, 5 * S);
        assert_eq!(e.get(&s, 10 * S), (50 * MS) as f64);
        assert_eq!(e.get(&s, 0), (50 * MS) as f64);
    }

    #[test]
    fn converges_to_a_steady_rtt() {
        let e = PeakEwma::new(Duration::from_millis(100));
        let s = EwmaState::with_estimate(500 * MS, 0);
        let mut now = 0;
        for _ in 0..200 {
            now += 10 * MS;
            e.observe(&s, 2 * MS, now);
        }
        let v = e.get(&s, now);
        assert!((2e6..2.01e6).contains(&v), "{v}");
    }

    #[test]
    fn degenerate_decay_is_clamped() {
        for d in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            assert_eq!(PeakEwma::from_decay_ns(d).decay_ns(), 1.0);
        }
        assert_eq!(PeakEwma::new(Duration::ZERO).decay_ns(), 1.0);
        let e = PeakEwma::from_decay_ns(0.0);
        let s = EwmaState::new();
        e.observe(&s, u64::MAX, u64::MAX);
        e.observe(&s, 1, u64::MAX);
        assert!(e.get(&s, u64::MAX).is_finite());
    }

    #[test]
    fn concurrent_observers_keep_a_valid_estimate() {
        let e = PeakEwma::new(Duration::from_millis(50));
        let s = EwmaState::new();
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let (e, s) = (&e, &s);
                scope.spawn(move || {
                    for k in 0..10_000u64 {
                        e.observe(s, MS + t * MS, k * 1000);
                    }
                });
            }
        });
        let v = e.get(&s, 10_000 * 1000);
        assert!((0.99e6..=4e6).contains(&v), "{v}");
    }
}
