//! Passive outlier detection, after Envoy's: watch the outcomes of real
//! requests to a server and eject it from load balancing for a while when it
//! fails too many times in a row.
//!
//! The caller keeps one [`OutlierState`] per server, feeds it every outcome
//! with [`OutlierState::record`], and when that says a threshold was reached
//! asks [`may_eject`] whether the upstream can afford to lose one more server
//! before calling [`OutlierState::eject`]. It un-ejects with
//! [`OutlierState::maybe_uneject`] (from a timer or lazily on the request
//! path). [`in_panic`] tells when so few servers are left that the balancer
//! should ignore health and ejections altogether.
//!
//! Ejection time grows with repeated ejections: the n-th ejection in a row
//! lasts `base * n`, capped at `max`. The count "in a row" starts over once a
//! server has stayed in (not ejected) for a full cap duration after its last
//! ejection ended.

/// Outlier detection parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Consecutive 5xx responses (gateway failures included) that trigger an
    /// ejection; 0 turns this trigger off.
    pub consecutive_5xx: u32,
    /// Consecutive gateway failures (502/503/504, connect failure, reset,
    /// timeout) that trigger an ejection; 0 turns this trigger off.
    pub consecutive_gateway: u32,
    /// Duration of a first ejection, in nanoseconds; the n-th in a row lasts
    /// n times this.
    pub base_ejection_ns: u64,
    /// Longest ejection, in nanoseconds. Taken as at least
    /// `base_ejection_ns` (so 0 means "base").
    pub max_ejection_ns: u64,
}

impl OutlierConfig {
    /// The effective cap on an ejection's duration:
    /// `max(max_ejection_ns, base_ejection_ns)`. Also the quiet time after
    /// which the ejection count starts over.
    pub fn cap_ns(&self) -> u64 {
        self.max_ejection_ns.max(self.base_ejection_ns)
    }

    /// Duration of the `n`-th ejection in a row: `base * n`, capped at
    /// [`OutlierConfig::cap_ns`].
    pub fn ejection_ns(&self, n: u32) -> u64 {
        self.base_ejection_ns
            .saturating_mul(u64::from(n))
            .min(self.cap_ns())
    }
}

/// What happened to one request, as outlier detection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Anything that is not a server failure (including 4xx).
    Success,
    /// A 5xx other than 502/503/504.
    ServerError,
    /// 502/503/504, connect failure, reset, timeout.
    GatewayFailure,
}

impl Outcome {
    /// 502|503|504 -> [`Outcome::GatewayFailure`], other 5xx ->
    /// [`Outcome::ServerError`], anything else -> [`Outcome::Success`].
    pub fn from_status(status: u16) -> Outcome {
        match status {
            502..=504 => Outcome::GatewayFailure,
            500..=599 => Outcome::ServerError,
            _ => Outcome::Success,
        }
    }
}

/// One server's outlier-detection state.
///
/// Runs of failures:
/// - [`Outcome::GatewayFailure`] extends both the 5xx run and the gateway
///   run.
/// - [`Outcome::ServerError`] extends the 5xx run and, like Envoy, ends the
///   gateway run (the gateway failures are no longer consecutive).
/// - [`Outcome::Success`] ends both runs.
/// - Reaching either threshold, and ejecting, restart both runs at 0.
///
/// Ejections: see [`OutlierState::eject`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutlierState {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    /// Ejections in a row (the duration multiplier).
    ejections: u32,
    /// End of the current ejection, until un-ejected.
    ejected_until: Option<u64>,
    /// End of the most recent ejection (meaningful when `ejections > 0`):
    /// the start of the quiet time that makes the count start over.
    last_ejection_end_ns: u64,
}

impl OutlierState {
    /// A state with no failures and no ejections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one outcome. [`Outcome::GatewayFailure`] counts towards both
    /// the 5xx run and the gateway run; [`Outcome::ServerError`] only the
    /// 5xx run (and ends the gateway run); [`Outcome::Success`] resets both.
    ///
    /// Returns true when a threshold is reached and the server is not
    /// currently ejected at `now_ns` (the caller then decides, via
    /// [`may_eject`], whether to call [`OutlierState::eject`]). Reaching the
    /// threshold resets the runs, whether or not it returns true.
    pub fn record(&mut self, cfg: &OutlierConfig, o: Outcome, now_ns: u64) -> bool {
        match o {
            Outcome::Success => {
                self.consecutive_5xx = 0;
                self.consecutive_gateway = 0;
                return false;
            }
            Outcome::ServerError => {
                self.consecutive_5xx = self.consecutive_5xx.saturating_add(1);
                self.consecutive_gateway = 0;
            }
            Outcome::GatewayFailure => {
                self.consecutive_5xx = self.consecutive_5xx.saturating_add(1);
                self.consecutive_gateway = self.consecutive_gateway.saturating_add(1);
            }
        }
        let hit = |threshold: u32, run: u32| threshold > 0 && run >= threshold;
        if hit(cfg.consecutive_5xx, self.consecutive_5xx)
            || hit(cfg.consecutive_gateway, self.consecutive_gateway)
        {
            self.reset_runs();
            !self.is_ejected(now_ns)
        } else {
            false
        }
    }

    /// Ejects the server at `now_ns` and returns the end of the ejection
    /// (ns).
    ///
    /// The duration is `base * n` capped at [`OutlierConfig::cap_ns`], where
    /// n counts the ejections in a row, this one included. The count starts
    /// over (this ejection is n = 1) when the previous ejection ended at
    /// least `cap_ns` before `now_ns`, that is when the server stayed in for
    /// a full maximum ejection time. Ejecting a server that is still ejected
    /// replaces its ejection with a new, longer one from `now_ns`.
    ///
    /// With `base_ejection_ns == 0` ejections last no time at all.
    pub fn eject(&mut self, cfg: &OutlierConfig, now_ns: u64) -> u64 {
        if self.ejections > 0
            && now_ns
                .checked_sub(self.last_ejection_end_ns)
                .is_some_and(|quiet| quiet >= cfg.cap_ns())
        {
            self.ejections = 0;
        }
        self.ejections = self.ejections.saturating_add(1);
        let until = now_ns.saturating_add(cfg.ejection_ns(self.ejections));
        self.ejected_until = Some(until);
        self.last_ejection_end_ns = until;
        self.reset_runs();
        until
    }

    /// Whether the server is ejected at `now_ns` (its ejection has not run
    /// out, whether or not [`OutlierState::maybe_uneject`] was called).
    pub fn is_ejected(&self, now_ns: u64) -> bool {
        matches!(self.ejected_until, Some(until) if now_ns < until)
    }

    /// Ends an ejection whose time is up; true exactly when it just ended.
    pub fn maybe_uneject(&mut self, now_ns: u64) -> bool {
        match self.ejected_until {
            Some(until) if now_ns >= until => {
                self.ejected_until = None;
                true
            }
            _ => false,
        }
    }

    /// End of the current ejection (ns), until it is un-ejected.
    pub fn ejected_until(&self) -> Option<u64> {
        self.ejected_until
    }

    /// Ejections in a row so far (0 before the first one); the next one, if
    /// it comes before the count starts over, lasts `base * (this + 1)`.
    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    /// The current run of 5xx responses (gateway failures included).
    pub fn consecutive_5xx(&self) -> u32 {
        self.consecutive_5xx
    }

    /// The current run of gateway failures.
    pub fn consecutive_gateway(&self) -> u32 {
        self.consecutive_gateway
    }

    fn reset_runs(&mut self) {
        self.consecutive_5xx = 0;
        self.consecutive_gateway = 0;
    }
}

/// Whether one more server may be ejected: `(ejected + 1) * 100 <= total *
/// max_percent`, or nothing is ejected yet (at least one may always be
/// ejected). `total == 0` -> false.
pub fn may_eject(ejected: usize, total: usize, max_percent: u8) -> bool {
    if total == 0 {
        return false;
    }
    if ejected == 0 {
        return true;
    }
    (ejected as u128 + 1) * 100 <= total as u128 * u128::from(max_percent)
}

/// Panic mode: `available * 100 < total * threshold_percent` (threshold 0 =
/// never panic; total 0 = false).
///
/// In panic mode the balancer should spread requests over all servers,
/// ignoring health and ejections, rather than overload the few left.
pub fn in_panic(available: usize, total: usize, threshold_percent: u8) -> bool {
    if total == 0 || threshold_percent == 0 {
        return false;
    }
    (available as u128) * 100 < total as u128 * u128::from(threshold_percent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    fn cfg(c5xx: u32, gw: u32) -> OutlierConfig {
        OutlierConfig {
            consecutive_5xx: c5xx,
            consecutive_gateway: gw,
            base_ejection_ns: 30 * S,
            max_ejection_ns: 300 * S,
        }
    }

    /// Records the outcomes at `now` and returns the indices where `record`
    /// said true.
    fn feed(st: &mut OutlierState, c: &OutlierConfig, os: &[Outcome], now: u64) -> Vec<usize> {
        os.iter()
            .enumerate()
            .filter(|&(_, &o)| st.record(c, o, now))
            .map(|(i, _)| i)
            .collect()
    }

    use Outcome::{GatewayFailure as G, ServerError as E, Success as K};

    #[test]
    fn status_classes() {
        for s in [502, 503, 504] {
            assert_eq!(Outcome::from_status(s), G, "{s}");
        }
        for s in [500, 501, 505, 507, 511, 599] {
            assert_eq!(Outcome::from_status(s), E, "{s}");
        }
        for s in [0, 100, 200, 204, 301, 404, 429, 499, 600, 999, u16::MAX] {
            assert_eq!(Outcome::from_status(s), K, "{s}");
        }
    }

    #[test]
    fn five_xx_run_counts_gateway_failures_too() {
        let c = cfg(5, 0);
        let mut st = OutlierState::new();
        assert_eq!(feed(&mut st, &c, &[E, G, E, G, E], 0), [4]);
        assert_eq!(st.consecutive_5xx(), 0);
        // And again from scratch.
        assert_eq!(feed(&mut st, &c, &[G, G, G, G, G, E, E], 0), [4]);
        assert_eq!(st.consecutive_5xx(), 2);
    }

    #[test]
    fn gateway_run_trips_first() {
        let c = cfg(5, 3);
        let mut st = OutlierState::new();
        assert_eq!(feed(&mut st, &c, &[G, G, G], 0), [2]);
        assert_eq!((st.consecutive_5xx(), st.consecutive_gateway()), (0, 0));
    }

    #[test]
    fn server_error_breaks_the_gateway_run() {
        let c = cfg(0, 3);
        let mut st = OutlierState::new();
        assert!(feed(&mut st, &c, &[G, G, E, G, G, E, G, G], 0).is_empty());
        assert_eq!(st.consecutive_gateway(), 2);
        assert_eq!(st.consecutive_5xx(), 8);
        assert_eq!(feed(&mut st, &c, &[G], 0), [0]);
    }

    #[test]
    fn success_resets_both_runs() {
        let c = cfg(3, 3);
        let mut st = OutlierState::new();
        assert!(feed(&mut st, &c, &[G, G, K, G, G, K, E, E, K, G, G], 0).is_empty());
        assert_eq!((st.consecutive_5xx(), st.consecutive_gateway()), (2, 2));
    }

    #[test]
    fn zero_thresholds_are_off() {
        let c = cfg(0, 0);
        let mut st = OutlierState::new();
        let many = vec![G; 1000];
        assert!(feed(&mut st, &c, &many, 0).is_empty());
        let c = cfg(0, 2);
        let many = vec![E; 1000];
        assert!(feed(&mut st, &c, &many, 0).is_empty());
    }

    #[test]
    fn no_trigger_while_ejected_but_runs_still_reset() {
        let c = cfg(2, 0);
        let mut st = OutlierState::new();
        assert_eq!(feed(&mut st, &c, &[E, E], 0), [1]);
        let until = st.eject(&c, 10 * S);
        assert_eq!(until, 40 * S);
        // Requests still reaching it (panic mode, in flight) do not trigger.
        assert!(feed(&mut st, &c, &[E, E, E], 20 * S).is_empty());
        assert_eq!(st.consecutive_5xx(), 1);
        // Once its time is up it can trigger again, even before
        // maybe_uneject is called.
        assert_eq!(feed(&mut st, &c, &[E], 40 * S), [0]);
    }

    #[test]
    fn ejection_times_grow_and_cap() {
        let c = OutlierConfig {
            consecutive_5xx: 1,
            consecutive_gateway: 0,
            base_ejection_ns: 10 * S,
            max_ejection_ns: 35 * S,
        };
        let mut st = OutlierState::new();
        let mut now = 0;
        let mut durations = Vec::new();
        for _ in 0..5 {
            let until = st.eject(&c, now);
            durations.push((until - now) / S);
            now = until;
            assert!(st.maybe_uneject(now));
            // Back in, failing again a second later.
            now += S;
        }
        assert_eq!(durations, [10, 20, 30, 35, 35]);
        assert_eq!(st.ejections(), 5);
    }

    #[test]
    fn eject_and_uneject_boundaries() {
        let c = cfg(1, 0);
        let mut st = OutlierState::new();
        assert_eq!(st.ejected_until(), None);
        assert!(!st.is_ejected(0));
        assert!(!st.maybe_uneject(0));
        let until = st.eject(&c, 5 * S);
        assert_eq!(until, 35 * S);
        assert_eq!(st.ejected_until(), Some(35 * S));
        assert!(st.is_ejected(5 * S));
        assert!(st.is_ejected(35 * S - 1));
        assert!(!st.maybe_uneject(35 * S - 1));
        assert!(!st.is_ejected(35 * S));
        assert!(st.maybe_uneject(35 * S));
        assert_eq!(st.ejected_until(), None);
        // true exactly once.
        assert!(!st.maybe_uneject(36 * S));
        assert_eq!(st.ejections(), 1);
    }

    #[test]
    fn multiplier_decays_after_a_full_cap_of_quiet() {
        // cap 300 s.
        let c = cfg(1, 0);
        let mut st = OutlierState::new();
        assert_eq!(st.eject(&c, 0), 30 * S);
        assert!(st.maybe_uneject(30 * S));
        // Quiet for 299 s: still in a row, second ejection is 60 s.
        assert_eq!(st.eject(&c, 329 * S), 389 * S);
        assert_eq!(st.ejections(), 2);
        assert!(st.maybe_uneject(400 * S));
        // Quiet for exactly 300 s since 389: the count starts over.
        assert_eq!(st.eject(&c, 689 * S), 719 * S);
        assert_eq!(st.ejections(), 1);
    }

    #[test]
    fn decay_counts_from_the_end_not_from_uneject() {
        let c = cfg(1, 0);
        let mut st = OutlierState::new();
        st.eject(&c, 0); // ends at 30 s
        // maybe_uneject called late does not delay the decay.
        assert!(st.maybe_uneject(200 * S));
        assert_eq!(st.eject(&c, 330 * S), 360 * S);
        assert_eq!(st.ejections(), 1);
    }

    #[test]
    fn max_below_base_means_base() {
        let c = OutlierConfig {
            consecutive_5xx: 1,
            consecutive_gateway: 1,
            base_ejection_ns: 10 * S,
            max_ejection_ns: 0,
        };
        assert_eq!(c.cap_ns(), 10 * S);
        let mut st = OutlierState::new();
        assert_eq!(st.eject(&c, 0), 10 * S);
        // Still in a row (no quiet time), but capped at base.
        assert_eq!(st.eject(&c, 10 * S), 20 * S);
        assert_eq!(st.ejections(), 2);
        // Quiet for a full cap (10 s): starts over.
        assert_eq!(st.eject(&c, 30 * S), 40 * S);
        assert_eq!(st.ejections(), 1);
    }

    #[test]
    fn re_ejecting_while_ejected_extends() {
        let c = cfg(1, 0);
        let mut st = OutlierState::new();
        assert_eq!(st.eject(&c, 0), 30 * S);
        assert_eq!(st.eject(&c, 10 * S), 70 * S);
        assert_eq!(st.ejections(), 2);
        assert!(st.is_ejected(69 * S));
    }

    #[test]
    fn zero_base_ejects_for_no_time() {
        let c = OutlierConfig {
            consecutive_5xx: 1,
            consecutive_gateway: 0,
            base_ejection_ns: 0,
            max_ejection_ns: 0,
        };
        let mut st = OutlierState::new();
        assert_eq!(st.eject(&c, 7), 7);
        assert!(!st.is_ejected(7));
        assert!(st.maybe_uneject(7));
    }

    #[test]
    fn ejection_end_saturates() {
        let c = OutlierConfig {
            consecutive_5xx: 1,
            consecutive_gateway: 0,
            base_ejection_ns: u64::MAX / 2,
            max_ejection_ns: u64::MAX,
        };
        let mut st = OutlierState::new();
        assert_eq!(st.eject(&c, u64::MAX - 5), u64::MAX);
        assert_eq!(c.ejection_ns(u32::MAX), u64::MAX);
        st.ejections = u32::MAX;
        st.eject(&c, 0);
        assert_eq!(st.ejections(), u32::MAX);
    }

    #[test]
    fn max_ejection_percent() {
        assert!(!may_eject(0, 0, 100));
        // The first one is always allowed.
        assert!(may_eject(0, 1, 0));
        assert!(may_eject(0, 10, 5));
        // 10 servers, 20 %: two may be ejected, not three.
        assert!(may_eject(1, 10, 20));
        assert!(!may_eject(2, 10, 20));
        // 3 servers, 50 %: only one (2 * 100 > 3 * 50).
        assert!(!may_eject(1, 3, 50));
        assert!(may_eject(1, 4, 50));
        assert!(may_eject(9, 10, 100));
        assert!(!may_eject(10, 10, 100));
        assert!(may_eject(usize::MAX - 1, usize::MAX, 255));
        assert!(!may_eject(usize::MAX, usize::MAX, 100));
    }

    #[test]
    fn panic_threshold() {
        assert!(!in_panic(0, 0, 50));
        assert!(!in_panic(0, 10, 0));
        assert!(in_panic(0, 10, 1));
        // 50 %: 4 of 10 is panic, 5 of 10 is not.
        assert!(in_panic(4, 10, 50));
        assert!(!in_panic(5, 10, 50));
        assert!(in_panic(9, 10, 100));
        assert!(!in_panic(10, 10, 100));
        assert!(!in_panic(usize::MAX, usize::MAX, 100));
        assert!(in_panic(usize::MAX - 1, usize::MAX, 100));
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![Just(K), Just(E), Just(G)]
    }

    proptest! {
        #[test]
        fn record_matches_a_model(
            c5xx in 0u32..6,
            gw in 0u32..6,
            os in proptest::collection::vec(outcome(), 0..200),
        ) {
            let c = cfg(c5xx, gw);
            let mut st = OutlierState::new();
            let (mut r5, mut rg) = (0u32, 0u32);
            for o in os {
                match o {
                    K => { r5 = 0; rg = 0; }
                    E => { r5 += 1; rg = 0; }
                    G => { r5 += 1; rg += 1; }
                }
                let want = (c5xx > 0 && r5 >= c5xx) || (gw > 0 && rg >= gw);
                if want {
                    r5 = 0;
                    rg = 0;
                }
                prop_assert_eq!(st.record(&c, o, 0), want);
                prop_assert_eq!((st.consecutive_5xx(), st.consecutive_gateway()), (r5, rg));
            }
        }

        #[test]
        fn ejections_stay_within_bounds(
            base in 0u64..100,
            max in 0u64..1000,
            steps in proptest::collection::vec((0u64..500, any::<bool>()), 1..60),
        ) {
            let c = OutlierConfig {
                consecutive_5xx: 1,
                consecutive_gateway: 1,
                base_ejection_ns: base,
                max_ejection_ns: max,
            };
            let mut st = OutlierState::new();
            let mut now = 0u64;
            let mut prev_end: Option<u64> = None;
            for (dt, eject) in steps {
                now += dt;
                if eject {
                    let before = st.ejections();
                    let until = st.eject(&c, now);
                    prop_assert!(until >= now);
                    prop_assert!(until - now <= c.cap_ns());
                    prop_assert_eq!(until - now, c.ejection_ns(st.ejections()));
                    // The count either goes up by one or starts over, and
                    // starts over exactly after a full cap of quiet.
                    let restarted = prev_end.is_some_and(|e| now >= e && now - e >= c.cap_ns());
                    let want = if restarted { 1 } else { before + 1 };
                    prop_assert_eq!(st.ejections(), want);
                    prop_assert_eq!(st.is_ejected(now), until > now);
                    prev_end = Some(until);
                } else {
                    let was = st.ejected_until();
                    let ended = st.maybe_uneject(now);
                    prop_assert_eq!(ended, was.is_some_and(|u| now >= u));
                    prop_assert!(!st.is_ejected(now) || st.ejected_until().is_some());
                }
            }
        }

        #[test]
        fn may_eject_matches_float(ejected in 0usize..100, total in 0usize..100, pct in any::<u8>()) {
            let want = total > 0
                && (ejected == 0 || (ejected as f64 + 1.0) / total as f64 <= f64::from(pct) / 100.0 + 1e-12);
            prop_assert_eq!(may_eject(ejected, total, pct), want);
        }
    }
}
