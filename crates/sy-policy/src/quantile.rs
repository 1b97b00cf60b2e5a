//! A lock-free latency histogram for quantiles of an upstream's recent
//! latency ("the recent p95", for hedging and adaptive timeouts).
//!
//! Latencies go into log-linear buckets: [`SUB_BUCKETS`] (8) equal-width
//! buckets per power of two from 2^10 ns (about 1 µs) up to 2^40 ns (about
//! 1100 s), plus one bucket for everything below 1024 ns. A quantile is
//! reported as the upper bound of the bucket it falls in, which is above the
//! true value by at most 1/8 of it (12.5 %) inside the range. Latencies below
//! 1024 ns read as 1024 ns, and latencies of 2^40 ns or more read as 2^40 ns.
//!
//! "Recent" is two generations: [`LatencyWindow::record`] writes into the
//! current one, [`LatencyWindow::rotate`] (called by the owner on a timer)
//! drops the previous one and starts a new current one, and quantiles are
//! read over both. With a rotation every T, a quantile covers the last T to
//! 2T.
//!
//! Recording is one atomic add; reads and rotations are a pass over a few
//! hundred atomics. Nothing allocates after [`LatencyWindow::new`].
//!
//! [`LatencyHistogram`] is the cumulative variant (one generation, never
//! reset) for readers that keep the previous [`counts`](LatencyHistogram::counts)
//! and diff them, e.g. once a second; [`quantile_of`] reads a quantile from
//! such a difference with the same bucket rule.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two; 8 bounds the relative error at 12.5 %.
pub const SUB_BUCKETS: usize = 1 << SUB_BITS;
const SUB_BITS: u32 = 3;

/// Exponent of the smallest tracked latency: 2^10 ns = 1024 ns.
const MIN_EXP: u32 = 10;
/// Exponent of the end of the tracked range: 2^40 ns ~ 1100 s.
const MAX_EXP: u32 = 40;

/// The smallest value a quantile can read (the bound of the bucket for
/// everything below it), in ns.
pub const MIN_BOUND_NS: u64 = 1 << MIN_EXP;
/// The largest value a quantile can read, in ns; latencies at or above it
/// are counted as it.
pub const MAX_BOUND_NS: u64 = 1 << MAX_EXP;

/// Bucket 0: below 2^MIN_EXP; then SUB_BUCKETS per power of two.
const N_BUCKETS: usize = 1 + (MAX_EXP - MIN_EXP) as usize * SUB_BUCKETS;

/// Index of the bucket holding `ns`.
fn bucket_of(ns: u64) -> usize {
    if ns < MIN_BOUND_NS {
        return 0;
    }
    if ns >= MAX_BOUND_NS {
        return N_BUCKETS - 1;
    }
    let exp = 63 - ns.leading_zeros(); // MIN_EXP..MAX_EXP
    let sub = (ns >> (exp - SUB_BITS)) as usize & (SUB_BUCKETS - 1);
    1 + (exp - MIN_EXP) as usize * SUB_BUCKETS + sub
}

/// The (exclusive) upper bound of bucket `i` in ns; the last bucket also
/// holds everything above the range and reads as [`MAX_BOUND_NS`].
fn upper_bound(i: usize) -> u64 {
    if i == 0 {
        return MIN_BOUND_NS;
    }
    let k = i - 1;
    let exp = MIN_EXP + (k / SUB_BUCKETS) as u32;
    let sub = (k % SUB_BUCKETS) as u64;
    (1u64 << exp) + ((sub + 1) << (exp - SUB_BITS))
}

/// A two-generation latency histogram; share it between request tasks
/// (which [`record`](LatencyWindow::record)) and whoever reads quantiles.
pub struct LatencyWindow {
    /// Index of the current generation in `gens` is `generation & 1`.
    generation: AtomicU64,
    gens: [[AtomicU64; N_BUCKETS]; 2],
}

impl Default for LatencyWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LatencyWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyWindow")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

impl LatencyWindow {
    /// An empty window.
    pub fn new() -> Self {
        LatencyWindow {
            generation: AtomicU64::new(0),
            gens: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// Records one latency in nanoseconds into the current generation.
    pub fn record(&self, ns: u64) {
        let g = (self.generation.load(Ordering::Acquire) & 1) as usize;
        self.gens[g][bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
    }

    /// Starts a new generation: the previous one is discarded, the current
    /// becomes previous. The caller calls this periodically (e.g. every
    /// 10 s).
    ///
    /// Meant for one caller at a time. Concurrent `record`s are never lost
    /// for good unless they straddle two rotations; concurrent rotations
    /// are safe but may discard more than one generation.
    pub fn rotate(&self) {
        let g = self.generation.load(Ordering::Acquire);
        // The previous generation becomes the next current one: empty it
        // first, then switch.
        for b in &self.gens[((g + 1) & 1) as usize] {
            b.store(0, Ordering::Relaxed);
        }
        let _ = self.generation.compare_exchange(
            g,
            g.wrapping_add(1),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Samples in the current and previous generations.
    pub fn count(&self) -> u64 {
        self.snapshot().iter().sum()
    }

    /// The q-quantile (0..1) over current + previous generations, as an
    /// upper bucket bound in ns; None with fewer than `min_samples` samples
    /// (and always None without any sample).
    ///
    /// The reported value is the upper bound of the bucket holding the
    /// sample of rank `ceil(q * n)` (at least 1) among the `n` samples: for
    /// a true value `v` in `[1024, 2^40)` ns it is in `(v, v * 1.125]`. A
    /// `q` outside `[0, 1]` is clamped; a NaN `q` gives None.
    pub fn quantile(&self, q: f64, min_samples: u64) -> Option<u64> {
        if q.is_nan() {
            return None;
        }
        quantile_of(&self.snapshot(), q, min_samples)
    }

    /// Per-bucket sums of both generations.
    fn snapshot(&self) -> [u64; N_BUCKETS] {
        let mut out = [0u64; N_BUCKETS];
        for gen_ in &self.gens {
            for (o, b) in out.iter_mut().zip(gen_) {
                *o = o.saturating_add(b.load(Ordering::Relaxed));
            }
        }
        out
    }
}

/// Number of buckets of a [`LatencyHistogram`] (the length of its
/// [`counts`](LatencyHistogram::counts)).
pub const BUCKETS: usize = N_BUCKETS;

/// The q-quantile (0..1) of the samples counted in `counts` (per bucket, as
/// [`LatencyHistogram::counts`] gives them, or the difference of two such
/// readings), as an upper bucket bound in ns; None with fewer than
/// `min_samples` samples, without any sample, or for a NaN `q`. The same
/// rule as [`LatencyWindow::quantile`]: the bound of the bucket holding the
/// sample of rank `ceil(q * n)` (at least 1); `q` is clamped to `[0, 1]`.
pub fn quantile_of(counts: &[u64; BUCKETS], q: f64, min_samples: u64) -> Option<u64> {
    if q.is_nan() {
        return None;
    }
    let total = counts.iter().fold(0u64, |a, &c| a.saturating_add(c));
    if total == 0 || total < min_samples {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        seen = seen.saturating_add(c);
        if seen >= rank {
            return Some(upper_bound(i));
        }
    }
    // Unreachable: the counts sum to total >= rank.
    Some(MAX_BOUND_NS)
}

/// A cumulative latency histogram: the buckets of [`LatencyWindow`] in one
/// generation that is never reset. Recording is one relaxed atomic add; a
/// reader takes [`counts`](LatencyHistogram::counts) now and then and
/// diffs successive readings (the counts only grow).
pub struct LatencyHistogram {
    buckets: [AtomicU64; N_BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Records one latency in nanoseconds.
    pub fn record(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the per-bucket counts (since creation) into `out`.
    pub fn counts(&self, out: &mut [u64; BUCKETS]) {
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            *o = b.load(Ordering::Relaxed);
        }
    }

    /// Samples recorded since creation.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |a, b| a.saturating_add(b.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const US: u64 = 1_000;
    const MS: u64 = 1_000_000;

    /// The rank `ceil(q * n)` (at least 1) sample of `sorted`.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let n = sorted.len() as u64;
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        sorted[(rank - 1) as usize]
    }

    /// Whether `bound` is a correct bucket bound for the true value `v`.
    fn bound_ok(bound: u64, v: u64) -> bool {
        if v < MIN_BOUND_NS {
            bound == MIN_BOUND_NS
        } else if v >= MAX_BOUND_NS {
            bound == MAX_BOUND_NS
        } else {
            // v < bound <= v * 9 / 8
            v < bound && u128::from(bound) * 8 <= u128::from(v) * 9
        }
    }

    #[test]
    fn buckets_are_contiguous_and_tight() {
        assert_eq!(N_BUCKETS, 241);
        assert_eq!(upper_bound(0), 1024);
        assert_eq!(upper_bound(1), 1024 + 128);
        assert_eq!(upper_bound(N_BUCKETS - 1), MAX_BOUND_NS);
        for i in 1..N_BUCKETS {
            let lo = upper_bound(i - 1);
            let hi = upper_bound(i);
            assert!(lo < hi);
            // Everything in [lo, hi) lands in bucket i.
            assert_eq!(bucket_of(lo), i, "lo of {i}");
            assert_eq!(bucket_of(hi - 1), i, "hi of {i}");
            // Width at most 1/8 of the lower end.
            assert!((hi - lo) * 8 <= lo, "{i}: {lo}..{hi}");
        }
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1023), 0);
        assert_eq!(bucket_of(MAX_BOUND_NS), N_BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX), N_BUCKETS - 1);
    }

    #[test]
    fn empty_and_min_samples() {
        let w = LatencyWindow::new();
        assert_eq!(w.quantile(0.5, 0), None);
        assert_eq!(w.count(), 0);
        for _ in 0..9 {
            w.record(5 * MS);
        }
        assert_eq!(w.quantile(0.95, 10), None);
        w.record(5 * MS);
        let b = w.quantile(0.95, 10);
        assert!(b.is_some_and(|b| bound_ok(b, 5 * MS)), "{b:?}");
        assert_eq!(w.quantile(f64::NAN, 0), None);
    }

    #[test]
    fn known_distribution() {
        let w = LatencyWindow::default();
        // 1..=100 ms, one each.
        for k in 1..=100 {
            w.record(k * MS);
        }
        for (q, v) in [
            (0.0, 1),
            (0.01, 1),
            (0.5, 50),
            (0.95, 95),
            (0.99, 99),
            (1.0, 100),
        ] {
            let b = w.quantile(q, 1);
            assert!(b.is_some_and(|b| bound_ok(b, v * MS)), "q {q}: {b:?}");
        }
        // Out of range q is clamped.
        assert_eq!(w.quantile(-1.0, 1), w.quantile(0.0, 1));
        assert_eq!(w.quantile(7.0, 1), w.quantile(1.0, 1));
    }

    #[test]
    fn extremes_of_the_range() {
        let w = LatencyWindow::new();
        w.record(0);
        w.record(1);
        assert_eq!(w.quantile(1.0, 1), Some(MIN_BOUND_NS));
        w.record(u64::MAX);
        assert_eq!(w.quantile(1.0, 1), Some(MAX_BOUND_NS));
        assert_eq!(w.quantile(0.0, 1), Some(MIN_BOUND_NS));
    }

    #[test]
    fn rotation_keeps_two_generations() {
        let w = LatencyWindow::new();
        for _ in 0..100 {
            w.record(MS);
        }
        w.rotate();
        // Previous generation still counts.
        assert_eq!(w.count(), 100);
        for _ in 0..100 {
            w.record(100 * MS);
        }
        assert_eq!(w.count(), 200);
        let p95 = w.quantile(0.95, 1);
        assert!(p95.is_some_and(|b| bound_ok(b, 100 * MS)), "{p95:?}");
        let p25 = w.quantile(0.25, 1);
        assert!(p25.is_some_and(|b| bound_ok(b, MS)), "{p25:?}");
        w.rotate();
        // The 1 ms generation is gone.
        assert_eq!(w.count(), 100);
        let p25 = w.quantile(0.25, 1);
        assert!(p25.is_some_and(|b| bound_ok(b, 100 * MS)), "{p25:?}");
        w.rotate();
        assert_eq!(w.count(), 0);
        assert_eq!(w.quantile(0.5, 0), None);
    }

    #[test]
    fn random_samples_against_exact_quantiles() {
        let mut rng = StdRng::seed_from_u64(42);
        for _ in 0..20 {
            let w = LatencyWindow::new();
            let n = rng.random_range(1..5000);
            // Log-uniform over 1 µs .. 10 s.
            let mut xs: Vec<u64> = (0..n)
                .map(|_| {
                    let e: f64 = rng.random_range(3.0..10.0);
                    10f64.powf(e) as u64
                })
                .collect();
            for &x in &xs {
                w.record(x);
            }
            xs.sort_unstable();
            for q in [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                let b = w.quantile(q, 1);
                let v = exact(&xs, q);
                assert!(
                    b.is_some_and(|b| bound_ok(b, v)),
                    "q {q} exact {v} got {b:?}"
                );
                // And the ~20 % promise in float terms.
                let b = b.unwrap_or(0) as f64;
                assert!((b - v as f64).abs() <= 0.2 * (v as f64).max(MIN_BOUND_NS as f64));
            }
        }
    }

    #[test]
    fn concurrent_recording() {
        let w = LatencyWindow::new();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let w = &w;
                s.spawn(move || {
                    for k in 0..10_000u64 {
                        w.record((t + 1) * MS + k);
                    }
                });
            }
        });
        assert_eq!(w.count(), 40_000);
        let p = w.quantile(0.99, 1);
        assert!(p.is_some_and(|b| b > 4 * MS && b <= 5 * MS), "{p:?}");
    }

    #[test]
    fn concurrent_rotation_is_safe() {
        let w = LatencyWindow::new();
        std::thread::scope(|s| {
            let w = &w;
            s.spawn(move || {
                for k in 0..20_000u64 {
                    w.record(US * (1 + k % 1000));
                }
            });
            s.spawn(move || {
                for _ in 0..200 {
                    w.rotate();
                    let _ = w.quantile(0.95, 1);
                }
            });
        });
        assert!(w.count() <= 20_000);
        w.rotate();
        w.rotate();
        assert_eq!(w.count(), 0);
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<LatencyWindow>();
        let s = format!("{:?}", LatencyWindow::new());
        assert!(s.contains("count: 0"), "{s}");
    }

    #[test]
    fn cumulative_histogram_and_differences() {
        let h = LatencyHistogram::default();
        let mut before = [0u64; BUCKETS];
        h.counts(&mut before);
        assert_eq!(quantile_of(&before, 0.5, 1), None);
        for k in 1..=100 {
            h.record(k * MS);
        }
        assert_eq!(h.count(), 100);
        let mut mid = [0u64; BUCKETS];
        h.counts(&mut mid);
        let p99 = quantile_of(&mid, 0.99, 1);
        assert!(p99.is_some_and(|b| bound_ok(b, 99 * MS)), "{p99:?}");
        // A second batch; the difference holds only it.
        for _ in 0..10 {
            h.record(500 * US);
        }
        let mut after = [0u64; BUCKETS];
        h.counts(&mut after);
        let diff: [u64; BUCKETS] = std::array::from_fn(|i| after[i] - mid[i]);
        assert_eq!(diff.iter().sum::<u64>(), 10);
        let p50 = quantile_of(&diff, 0.5, 1);
        assert!(p50.is_some_and(|b| bound_ok(b, 500 * US)), "{p50:?}");
        assert_eq!(quantile_of(&diff, 0.5, 11), None);
        assert_eq!(quantile_of(&diff, f64::NAN, 0), None);
        assert_eq!(quantile_of(&diff, 9.0, 1), quantile_of(&diff, 1.0, 1));
        assert!(format!("{h:?}").contains("count: 110"));
    }

    #[test]
    fn histogram_agrees_with_the_window() {
        let mut rng = StdRng::seed_from_u64(7);
        let w = LatencyWindow::new();
        let h = LatencyHistogram::new();
        for _ in 0..3000 {
            let x = 10f64.powf(rng.random_range(2.0..11.0)) as u64;
            w.record(x);
            h.record(x);
        }
        let mut c = [0u64; BUCKETS];
        h.counts(&mut c);
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(quantile_of(&c, q, 1), w.quantile(q, 1), "q {q}");
        }
    }

    proptest! {
        #[test]
        fn quantile_bounds_exact(
            mut xs in proptest::collection::vec(0u64..(1 << 42), 1..400),
            q in 0.0f64..=1.0,
        ) {
            let w = LatencyWindow::new();
            for &x in &xs {
                w.record(x);
            }
            xs.sort_unstable();
            let v = exact(&xs, q);
            let b = w.quantile(q, xs.len() as u64);
            prop_assert!(b.is_some_and(|b| bound_ok(b, v)), "exact {} got {:?}", v, b);
            prop_assert_eq!(w.quantile(q, xs.len() as u64 + 1), None);
        }

        #[test]
        fn quantile_monotone_in_q(
            xs in proptest::collection::vec(any::<u64>(), 1..200),
            a in 0.0f64..=1.0,
            b in 0.0f64..=1.0,
        ) {
            let w = LatencyWindow::new();
            for &x in &xs {
                w.record(x);
            }
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(w.quantile(lo, 1) <= w.quantile(hi, 1));
        }
    }
}
