//! Active health checking: the rise/fall state machine of HAProxy's `rise`
//! and `fall` (and nginx's / Envoy's healthy and unhealthy thresholds), and
//! the jittered delay between probes.
//!
//! The caller runs the probes and the timers; this module only decides what
//! a sequence of probe results means ([`HealthMachine`]) and how long to wait
//! before the next probe ([`next_delay`]).

use std::time::Duration;

use crate::backoff::{below_u128, duration_from_nanos};

/// The smallest delay [`next_delay`] returns.
pub const MIN_DELAY: Duration = Duration::from_millis(1);

/// Whether a server passes its active health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Takes traffic.
    Healthy,
    /// Gets no traffic until enough probes succeed in a row.
    Unhealthy,
}

/// How many probe results in a row flip the state (HAProxy's `rise` and
/// `fall`). A threshold of 0 counts as 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive successes that make an unhealthy server healthy (`rise`).
    pub healthy: u32,
    /// Consecutive failures that make a healthy server unhealthy (`fall`).
    pub unhealthy: u32,
}

impl Thresholds {
    /// The thresholds with 0 raised to 1.
    pub fn sanitized(self) -> Thresholds {
        Thresholds {
            healthy: self.healthy.max(1),
            unhealthy: self.unhealthy.max(1),
        }
    }
}

/// One server's health-check state: the current [`Health`] and the runs of
/// consecutive successes and failures.
///
/// - A healthy server becomes unhealthy after `unhealthy` failures in a row.
/// - An unhealthy server becomes healthy after `healthy` successes in a row.
/// - A success ends a run of failures and a failure ends a run of successes,
///   whatever the state.
/// - A state change restarts both runs at 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthMachine {
    th: Thresholds,
    state: Health,
    ok_run: u32,
    fail_run: u32,
}

impl HealthMachine {
    /// A machine in state `initial` with no probe results yet. Thresholds of
    /// 0 count as 1.
    pub fn new(th: Thresholds, initial: Health) -> Self {
        HealthMachine {
            th: th.sanitized(),
            state: initial,
            ok_run: 0,
            fail_run: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> Health {
        self.state
    }

    /// The thresholds in use (0 already raised to 1).
    pub fn thresholds(&self) -> Thresholds {
        self.th
    }

    /// Consecutive successes since the last failure or state change.
    pub fn ok_run(&self) -> u32 {
        self.ok_run
    }

    /// Consecutive failures since the last success or state change.
    pub fn fail_run(&self) -> u32 {
        self.fail_run
    }

    /// Records one probe result; `Some(new_state)` exactly when the state
    /// changes.
    ///
    /// Healthy -> Unhealthy after `unhealthy` consecutive failures;
    /// Unhealthy -> Healthy after `healthy` consecutive successes. A success
    /// resets the failure run and vice versa.
    pub fn record(&mut self, ok: bool) -> Option<Health> {
        let (run, other, threshold, target) = if ok {
            (
                &mut self.ok_run,
                &mut self.fail_run,
                self.th.healthy,
                Health::Healthy,
            )
        } else {
            (
                &mut self.fail_run,
                &mut self.ok_run,
                self.th.unhealthy,
                Health::Unhealthy,
            )
        };
        *other = 0;
        *run = run.saturating_add(1);
        if self.state != target && *run >= threshold {
            self.state = target;
            self.ok_run = 0;
            self.fail_run = 0;
            Some(target)
        } else {
            None
        }
    }
}

/// Delay before the next probe: `interval` shifted uniformly by up to
/// `±jitter`, from `random`.
///
/// The result is uniform over `[interval - jitter, interval + jitter]` (in
/// whole nanoseconds), never below [`MIN_DELAY`] (1 ms). A `jitter` of
/// `interval` or more is clamped to `interval / 2`, so probes never bunch up
/// at zero. Never overflows: a result past `Duration::MAX` is
/// `Duration::MAX`.
pub fn next_delay(interval: Duration, jitter: Duration, random: u64) -> Duration {
    let jitter = if jitter >= interval {
        interval / 2
    } else {
        jitter
    };
    let (interval, jitter) = (interval.as_nanos(), jitter.as_nanos());
    // jitter < interval <= Duration::MAX (< 2^95): no overflow in u128.
    let offset = below_u128(random, 2 * jitter + 1);
    duration_from_nanos(interval - jitter + offset).max(MIN_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn th(healthy: u32, unhealthy: u32) -> Thresholds {
        Thresholds { healthy, unhealthy }
    }

    /// Feeds a string of probe results ('+' ok, '-' failure) and returns the
    /// transitions as a string ('H', 'U', '.' for none).
    fn run(m: &mut HealthMachine, probes: &str) -> String {
        probes
            .chars()
            .map(|c| match m.record(c == '+') {
                Some(Health::Healthy) => 'H',
                Some(Health::Unhealthy) => 'U',
                None => '.',
            })
            .collect()
    }

    #[test]
    fn falls_after_consecutive_failures() {
        let mut m = HealthMachine::new(th(2, 3), Health::Healthy);
        assert_eq!(run(&mut m, "--+--+---"), "........U");
        assert_eq!(m.state(), Health::Unhealthy);
        // Further failures change nothing.
        assert_eq!(run(&mut m, "-----"), ".....");
    }

    #[test]
    fn rises_after_consecutive_successes() {
        let mut m = HealthMachine::new(th(2, 3), Health::Unhealthy);
        assert_eq!(run(&mut m, "+-+-++"), ".....H");
        assert_eq!(m.state(), Health::Healthy);
        assert_eq!(run(&mut m, "+++"), "...");
    }

    #[test]
    fn full_cycle() {
        let mut m = HealthMachine::new(th(3, 2), Health::Healthy);
        assert_eq!(run(&mut m, "+--++-+++--"), "..U.....H.U");
    }

    #[test]
    fn runs_restart_on_a_state_change() {
        let mut m = HealthMachine::new(th(2, 2), Health::Healthy);
        assert_eq!(run(&mut m, "--"), ".U");
        assert_eq!((m.ok_run(), m.fail_run()), (0, 0));
        assert_eq!(run(&mut m, "+"), ".");
        assert_eq!((m.ok_run(), m.fail_run()), (1, 0));
        assert_eq!(run(&mut m, "-"), ".");
        assert_eq!((m.ok_run(), m.fail_run()), (0, 1));
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let mut m = HealthMachine::new(th(0, 0), Health::Healthy);
        assert_eq!(m.thresholds(), th(1, 1));
        assert_eq!(run(&mut m, "+-+--++"), ".UHU.H.");
    }

    #[test]
    fn threshold_one_flips_at_once() {
        let mut m = HealthMachine::new(th(1, 1), Health::Unhealthy);
        assert_eq!(m.record(true), Some(Health::Healthy));
        assert_eq!(m.record(false), Some(Health::Unhealthy));
    }

    #[test]
    fn huge_runs_saturate() {
        let mut m = HealthMachine::new(th(u32::MAX, u32::MAX), Health::Healthy);
        m.ok_run = u32::MAX - 1;
        assert_eq!(m.record(true), None);
        assert_eq!(m.record(true), None);
        assert_eq!(m.ok_run(), u32::MAX);
    }

    #[test]
    fn delay_without_jitter_is_the_interval() {
        let i = Duration::from_secs(5);
        for r in [0, 1, u64::MAX / 2, u64::MAX] {
            assert_eq!(next_delay(i, Duration::ZERO, r), i);
        }
    }

    #[test]
    fn delay_spans_the_jitter_window() {
        let i = Duration::from_secs(10);
        let j = Duration::from_secs(2);
        assert_eq!(next_delay(i, j, 0), Duration::from_secs(8));
        assert_eq!(next_delay(i, j, u64::MAX), Duration::from_secs(12));
        let mid = next_delay(i, j, 1 << 63);
        assert!(mid.abs_diff(i) <= Duration::from_nanos(1), "{mid:?}");
    }

    #[test]
    fn jitter_at_or_above_interval_is_halved_interval() {
        let i = Duration::from_secs(4);
        for j in [i, 2 * i, Duration::MAX] {
            assert_eq!(next_delay(i, j, 0), Duration::from_secs(2));
            assert_eq!(next_delay(i, j, u64::MAX), Duration::from_secs(6));
        }
    }

    #[test]
    fn delay_never_below_one_ms() {
        assert_eq!(next_delay(Duration::ZERO, Duration::ZERO, 5), MIN_DELAY);
        assert_eq!(
            next_delay(Duration::ZERO, Duration::from_secs(1), 5),
            MIN_DELAY
        );
        let i = Duration::from_micros(1500);
        let j = Duration::from_micros(1000);
        assert_eq!(next_delay(i, j, 0), MIN_DELAY);
    }

    #[test]
    fn delay_never_overflows() {
        let d = next_delay(Duration::MAX, Duration::MAX, u64::MAX);
        assert_eq!(d, Duration::MAX);
        let d = next_delay(Duration::MAX, Duration::from_secs(1), u64::MAX);
        assert_eq!(d, Duration::MAX);
        let d = next_delay(Duration::MAX, Duration::from_secs(1), 0);
        assert_eq!(d, Duration::MAX - Duration::from_secs(1));
    }

    #[test]
    fn delay_is_roughly_uniform() {
        let i = Duration::from_secs(10);
        let j = Duration::from_secs(1);
        let mut rng = StdRng::seed_from_u64(3);
        let mut bins = [0u32; 10];
        for _ in 0..20_000 {
            let d = next_delay(i, j, rng.random());
            let x = (d.as_secs_f64() - 9.0) / 2.0; // 0..=1
            bins[((x * 10.0) as usize).min(9)] += 1;
        }
        for b in bins {
            assert!((1800..2200).contains(&b), "{bins:?}");
        }
    }

    /// A straightforward model of the machine: look at the trailing run.
    fn model(th: Thresholds, initial: Health, probes: &[bool]) -> Vec<Option<Health>> {
        let th = th.sanitized();
        let mut state = initial;
        let mut since = 0; // index of the last state change + 1
        let mut out = Vec::new();
        for (k, &ok) in probes.iter().enumerate() {
            let run = probes[since..=k]
                .iter()
                .rev()
                .take_while(|&&p| p == ok)
                .count();
            let (need, target) = if ok {
                (th.healthy, Health::Healthy)
            } else {
                (th.unhealthy, Health::Unhealthy)
            };
            if state != target && run >= need as usize {
                state = target;
                since = k + 1;
                out.push(Some(target));
            } else {
                out.push(None);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn matches_the_model(
            healthy in 0u32..5,
            unhealthy in 0u32..5,
            start_healthy in any::<bool>(),
            probes in proptest::collection::vec(any::<bool>(), 0..80),
        ) {
            let t = th(healthy, unhealthy);
            let initial = if start_healthy { Health::Healthy } else { Health::Unhealthy };
            let mut m = HealthMachine::new(t, initial);
            let mut prev = initial;
            let got: Vec<_> = probes
                .iter()
                .map(|&ok| {
                    let change = m.record(ok);
                    // Some exactly when the state changed, and to the new state.
                    assert_eq!(change.is_some(), m.state() != prev);
                    if let Some(s) = change {
                        assert_eq!(s, m.state());
                    }
                    prev = m.state();
                    change
                })
                .collect();
            prop_assert_eq!(got, model(t, initial, &probes));
        }

        #[test]
        fn delay_within_bounds(
            interval_ms in 0u64..100_000,
            jitter_ms in 0u64..200_000,
            random in any::<u64>(),
        ) {
            let i = Duration::from_millis(interval_ms);
            let j = Duration::from_millis(jitter_ms);
            let d = next_delay(i, j, random);
            let j = if j >= i { i / 2 } else { j };
            prop_assert!(d >= MIN_DELAY);
            prop_assert!(d <= (i + j).max(MIN_DELAY));
            prop_assert!(d >= i - j);
        }
    }
}
