//! Weighted round robin: nginx's smooth weighted round robin.

use std::sync::{Mutex, PoisonError};

use super::{Balancer, PickInput, Servers, sanitize_weights};

/// nginx's smooth weighted round robin (`ngx_http_upstream_get_peer`).
///
/// Every pick adds each eligible server's weight to its current weight,
/// picks the server with the largest current weight (the first on a tie)
/// and subtracts the sum of the eligible weights from the winner. Over each
/// cycle of `sum(weights)` picks every server is picked exactly `weight`
/// times, interleaved: weights 5, 1, 1 give `a a b a c a a`.
///
/// Ineligible servers sit out: their current weight is frozen until they
/// come back. Servers past the weights the balancer was built with are never
/// picked. The current weights live behind a mutex held for one O(n) pass.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    weights: Box<[u32]>,
    current: Mutex<Box<[i64]>>,
}

impl WeightedRoundRobin {
    /// A balancer for servers with these weights (0 counts as 1).
    pub fn new(weights: &[u32]) -> Self {
        let weights = sanitize_weights(weights);
        let current = Mutex::new(vec![0; weights.len()].into_boxed_slice());
        WeightedRoundRobin { weights, current }
    }
}

impl Balancer for WeightedRoundRobin {
    fn pick(&self, servers: &dyn Servers, _input: &PickInput) -> Option<usize> {
        let n = servers.len().min(self.weights.len());
        // A panic while holding the lock cannot leave the weights invalid
        // (any i64 values still give a working rotation), so poisoning is
        // ignored.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        for (i, (cur, &w)) in current
            .iter_mut()
            .zip(self.weights.iter())
            .take(n)
            .enumerate()
        {
            if !servers.eligible(i) {
                continue;
            }
            let w = i64::from(w);
            *cur += w;
            total += w;
            if best.is_none_or(|(_, b)| *cur > b) {
                best = Some((i, *cur));
            }
        }
        let (i, _) = best?;
        if let Some(cur) = current.get_mut(i) {
            *cur -= total;
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Fake;
    use super::*;
    use proptest::prelude::*;

    fn sequence(b: &WeightedRoundRobin, s: &Fake, picks: usize) -> Vec<usize> {
        (0..picks)
            .filter_map(|_| b.pick(s, &PickInput::default()))
            .collect()
    }

    #[test]
    fn matches_nginx_sequence_for_5_1_1() {
        // The example from nginx's commit introducing smooth WRR
        // (52327e0627f4, 2012): { a, a, b, a, c, a, a }.
        let b = WeightedRoundRobin::new(&[5, 1, 1]);
        let s = Fake::all(3);
        for _ in 0..3 {
            assert_eq!(sequence(&b, &s, 7), [0, 0, 1, 0, 2, 0, 0]);
        }
    }

    #[test]
    fn matches_hand_computed_sequence_for_4_2_1() {
        // current weights: (4,2,1)->a (-3,2,1); (1,4,2)->b (1,-3,2);
        // (5,-1,3)->a (-2,-1,3); (2,1,4)->c (2,1,-3); (6,3,-2)->a (-1,3,-2);
        // (3,5,-1)->b (3,-2,-1); (7,0,0)->a (0,0,0).
        let b = WeightedRoundRobin::new(&[4, 2, 1]);
        let s = Fake::all(3);
        assert_eq!(sequence(&b, &s, 7), [0, 1, 0, 2, 0, 1, 0]);
    }

    #[test]
    fn equal_weights_are_plain_round_robin() {
        let b = WeightedRoundRobin::new(&[3, 3, 3]);
        assert_eq!(sequence(&b, &Fake::all(3), 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn down_server_sits_out() {
        let b = WeightedRoundRobin::new(&[5, 1, 1]);
        let s = Fake::with_eligible(&[false, true, true]);
        assert_eq!(sequence(&b, &s, 4), [1, 2, 1, 2]);
        assert_eq!(
            b.pick(&Fake::with_eligible(&[false; 3]), &PickInput::default()),
            None
        );
    }

    proptest! {
        #[test]
        fn exact_counts_per_cycle(
            weights in proptest::collection::vec(1u32..20, 1..12),
            warmup in 0usize..50,
            cycles in 1usize..4,
        ) {
            let b = WeightedRoundRobin::new(&weights);
            let s = Fake::all(weights.len());
            // Whatever the phase, every window of whole cycles is exact:
            // the current weights return to their start after each cycle.
            sequence(&b, &s, warmup);
            let total: usize = weights.iter().map(|&w| w as usize).sum();
            let seq = sequence(&b, &s, total * cycles);
            let mut counts = vec![0usize; weights.len()];
            for &i in &seq {
                counts[i] += 1;
            }
            for (i, &w) in weights.iter().enumerate() {
                prop_assert_eq!(counts[i], w as usize * cycles, "weights {:?} seq {:?}", weights, seq);
            }
        }

        #[test]
        fn smooth_no_server_waits_much_longer_than_its_share(
            weights in proptest::collection::vec(1u32..20, 2..10),
        ) {
            // Smoothness: server i is picked at least once in every window of
            // ceil(total / w_i) * 2 picks (the naive "a a a a a b c" order
            // would fail this for heavy servers).
            let b = WeightedRoundRobin::new(&weights);
            let s = Fake::all(weights.len());
            let total: usize = weights.iter().map(|&w| w as usize).sum();
            let seq = sequence(&b, &s, total * 3);
            for (i, &w) in weights.iter().enumerate() {
                let window = total.div_ceil(w as usize) * 2;
                for win in seq.windows(window.min(seq.len())) {
                    prop_assert!(win.contains(&i), "server {} absent from a window of {} in {:?}", i, window, seq);
                }
            }
        }

        #[test]
        fn only_eligible_servers_and_exact_counts_among_them(
            ws in proptest::collection::vec((1u32..10, any::<bool>()), 1..10),
        ) {
            let weights: Vec<u32> = ws.iter().map(|&(w, _)| w).collect();
            let eligible: Vec<bool> = ws.iter().map(|&(_, e)| e).collect();
            let b = WeightedRoundRobin::new(&weights);
            let s = Fake::with_eligible(&eligible);
            let total: usize = ws.iter().filter(|&&(_, e)| e).map(|&(w, _)| w as usize).sum();
            let seq = sequence(&b, &s, total * 2);
            let mut counts = vec![0usize; weights.len()];
            for &i in &seq {
                prop_assert!(eligible[i]);
                counts[i] += 1;
            }
            for (i, &(w, e)) in ws.iter().enumerate() {
                prop_assert_eq!(counts[i], if e { w as usize * 2 } else { 0 });
            }
        }
    }
}
