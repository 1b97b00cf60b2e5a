//! Round robin: each eligible server in turn, weights ignored.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Balancer, PickInput, Servers};

/// Each eligible server in turn; weights are ignored.
///
/// A shared counter `c` names the turn: turn `c` goes to server `c % n`. When
/// that server is not eligible, its turn goes to the `(c / n) % m`-th of the
/// `m` eligible servers, so a down server's share is spread evenly over the
/// others instead of all landing on its neighbour. With every server
/// eligible, each of `k * n` consecutive picks hits every server exactly `k`
/// times; with one server down, every `n * m` consecutive picks are split
/// exactly evenly.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicU64,
}

impl RoundRobin {
    /// A round robin starting at server 0.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Balancer for RoundRobin {
    fn pick(&self, servers: &dyn Servers, _input: &PickInput) -> Option<usize> {
        let n = servers.len();
        if n == 0 {
            return None;
        }
        let c = self.next.fetch_add(1, Ordering::Relaxed);
        let n64 = n as u64;
        let i = (c % n64) as usize;
        if servers.eligible(i) {
            return Some(i);
        }
        let m = (0..n).filter(|&j| servers.eligible(j)).count();
        if m == 0 {
            return None;
        }
        let k = ((c / n64) % m as u64) as usize;
        let mut eligible = (0..n).filter(|&j| servers.eligible(j));
        // Health may change between the count and this walk: fall back to
        // the first eligible server rather than to None.
        eligible.clone().nth(k).or_else(|| eligible.next())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fake;
    use super::*;
    use proptest::prelude::*;

    fn counts(b: &RoundRobin, s: &Fake, picks: usize) -> Vec<usize> {
        let mut c = vec![0; s.n];
        for _ in 0..picks {
            if let Some(i) = b.pick(s, &PickInput::default()) {
                c[i] += 1;
            }
        }
        c
    }

    #[test]
    fn cycles_in_order() {
        let b = RoundRobin::new();
        let s = Fake::all(3);
        let picks: Vec<_> = (0..7).map(|_| b.pick(&s, &PickInput::default())).collect();
        assert_eq!(
            picks,
            [
                Some(0),
                Some(1),
                Some(2),
                Some(0),
                Some(1),
                Some(2),
                Some(0)
            ]
        );
    }

    #[test]
    fn skips_down_servers_and_spreads_their_turns() {
        let b = RoundRobin::new();
        let s = Fake::with_eligible(&[true, false, true, true]);
        // n * m = 4 * 3 picks: the down server's 3 turns go one to each.
        assert_eq!(counts(&b, &s, 12), [4, 0, 4, 4]);
    }

    #[test]
    fn none_when_all_down() {
        let b = RoundRobin::new();
        assert_eq!(
            b.pick(&Fake::with_eligible(&[false, false]), &PickInput::default()),
            None
        );
        assert_eq!(b.pick(&Fake::all(0), &PickInput::default()), None);
    }

    proptest! {
        #[test]
        fn exact_shares_when_all_eligible(n in 1usize..40, k in 1usize..20, warmup in 0usize..100) {
            let b = RoundRobin::new();
            let s = Fake::all(n);
            counts(&b, &s, warmup);
            let c = counts(&b, &s, k * n);
            prop_assert!(c.iter().all(|&x| x == k), "{:?}", c);
        }

        #[test]
        fn even_shares_with_some_down(eligible in proptest::collection::vec(any::<bool>(), 1..30), k in 1usize..5) {
            let b = RoundRobin::new();
            let s = Fake::with_eligible(&eligible);
            let m = eligible.iter().filter(|&&e| e).count();
            let n = eligible.len();
            let c = counts(&b, &s, k * n * m.max(1));
            for (i, &e) in eligible.iter().enumerate() {
                let want = if e { k * n } else { 0 };
                prop_assert_eq!(c[i], want, "counts {:?}", c);
            }
        }
    }
}
