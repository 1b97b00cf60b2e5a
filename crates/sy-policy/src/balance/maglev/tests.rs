use super::super::testing::*;
use super::*;
use proptest::prelude::*;

fn make(weights: &[u32], ids: &[&str]) -> Box<dyn Balancer> {
    Box::new(Maglev::new(weights, ids))
}

/// Slots per server index.
fn slot_counts(m: &Maglev, n: usize) -> Vec<usize> {
    let mut c = vec![0; n];
    for &e in m.table() {
        if let Some(x) = c.get_mut(usize::from(e)) {
            *x += 1;
        }
    }
    c
}

fn pick(b: &Maglev, s: &Fake, hash: u64) -> Option<usize> {
    b.pick(s, &PickInput { hash, random: 0 })
}

#[test]
fn table_is_full_and_even() {
    let m = Maglev::new(&[1; 7], &[]);
    assert_eq!(m.table().len(), MAGLEV_TABLE_SIZE);
    assert!(m.table().iter().all(|&e| usize::from(e) < 7));
    let c = slot_counts(&m, 7);
    // 65537 / 7 = 9362.4: everyone gets 9362 or 9363.
    assert!(c.iter().all(|&x| x == 9362 || x == 9363), "{c:?}");
}

#[test]
fn weights_fill_proportionally() {
    let m = Maglev::new(&[1, 2, 5], &["a", "b", "c"]);
    let c = slot_counts(&m, 3);
    let want = [65537.0 / 8.0, 65537.0 * 2.0 / 8.0, 65537.0 * 5.0 / 8.0];
    for (got, want) in c.iter().zip(want) {
        assert!((*got as f64 - want).abs() <= 2.0, "{c:?}");
    }
}

#[test]
fn same_key_same_server_and_lookup_agrees() {
    let ids = addresses(5, 0);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let m = Maglev::new(&[1; 5], &refs);
    let again = Maglev::new(&[1; 5], &refs);
    assert_eq!(m.table(), again.table());
    let s = Fake::all(5);
    for k in keys(1000, 3) {
        assert_eq!(pick(&m, &s, k), m.lookup(k));
    }
}

#[test]
fn listing_order_does_not_matter() {
    let ids = addresses(6, 9);
    let mut shuffled = ids.clone();
    shuffled.reverse();
    shuffled.swap(0, 3);
    let keys = keys(5000, 11);
    let a = assign(&*build_ids(make, &ids), &ids, &keys);
    let b = assign(&*build_ids(make, &shuffled), &shuffled, &keys);
    assert_eq!(a, b);
}

#[test]
fn down_server_keys_spread_and_others_stay() {
    let n = 6;
    let m = Maglev::new(&vec![1; n], &[]);
    let mut s = Fake::all(n);
    s.eligible[2] = false;
    let all = Fake::all(n);
    let mut spread = vec![0usize; n];
    for k in keys(20_000, 5) {
        let home = m.lookup(k);
        let got = pick(&m, &s, k);
        // Deterministic.
        assert_eq!(got, pick(&m, &s, k));
        assert_ne!(got, Some(2));
        if home == Some(2) {
            if let Some(g) = got {
                spread[g] += 1;
            }
        } else {
            assert_eq!(got, pick(&m, &all, k));
        }
    }
    // About 3333 keys of server 2 over 5 others: ~667 each.
    for (i, &c) in spread.iter().enumerate() {
        if i != 2 {
            assert!((450..=900).contains(&c), "{spread:?}");
        }
    }
}

#[test]
fn fallback_scan_finds_the_last_server() {
    let n = 50;
    let m = Maglev::new(&vec![1; n], &[]);
    let mut eligible = vec![false; n];
    eligible[17] = true;
    let s = Fake::with_eligible(&eligible);
    for k in keys(500, 8) {
        assert_eq!(pick(&m, &s, k), Some(17));
    }
}

#[test]
fn empty_and_oversized() {
    let m = Maglev::new(&[], &[]);
    assert!(m.table().is_empty());
    assert_eq!(m.lookup(1), None);
    assert_eq!(pick(&m, &Fake::all(3), 1), None);
    // Servers the table does not know are reached only by the scan.
    let m = Maglev::new(&[1], &[]);
    let mut s = Fake::all(4);
    s.eligible[0] = false;
    assert!(matches!(pick(&m, &s, 99), Some(1..=3)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Removing one of N servers moves its ~1/N of the keys; of the keys on
    /// the other servers, Maglev moves a few (its table is only
    /// near-minimal). The paper measures a few percent at M/N = 100; at
    /// M/N >= 3000 we measured at most 1.03 % (typically 0.3 %) over every
    /// removal from 3..=20 servers with four id sets, so 2 % is the bound.
    #[test]
    fn removing_a_server_moves_about_one_nth(
        (n, r) in (3usize..=20).prop_flat_map(|n| (Just(n), 0..n)),
        tag in 0usize..256,
        seed in any::<u64>(),
    ) {
        let keys = keys(10_000, seed);
        let m = removal(make, n, tag, r, &keys);
        prop_assert!(m.moved_needlessly < 0.02, "{:?}", m);
        // The removed server held 1/N of the slots to within 2; sampling
        // 10,000 keys adds sd <= 0.5 %, so 3 % is 6 sd.
        let share = 1.0 / n as f64;
        prop_assert!((m.moved - share).abs() < 0.03 + m.moved_needlessly, "{:?} vs {}", m, share);
    }

    #[test]
    fn adding_a_server_moves_about_one_in_n_plus_one(
        n in 3usize..=20,
        tag in 0usize..256,
        seed in any::<u64>(),
    ) {
        let keys = keys(10_000, seed);
        let m = addition(make, n, tag, &keys);
        prop_assert!(m.moved_needlessly < 0.02, "{:?}", m);
        let share = 1.0 / (n + 1) as f64;
        prop_assert!((m.moved - share).abs() < 0.03 + m.moved_needlessly, "{:?} vs {}", m, share);
    }

    /// Slot counts follow the weights: with R rounds of turns, server i gets
    /// R * w_i / w_max turns give or take one, which puts it within
    /// n * w_i / W + 1 slots of M * w_i / W.
    #[test]
    fn slots_follow_weights(weights in proptest::collection::vec(1u32..=20, 1..=20)) {
        let n = weights.len();
        let m = Maglev::new(&weights, &[]);
        let c = slot_counts(&m, n);
        prop_assert_eq!(c.iter().sum::<usize>(), MAGLEV_TABLE_SIZE);
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        for (i, &w) in weights.iter().enumerate() {
            let share = f64::from(w) / total;
            let want = MAGLEV_TABLE_SIZE as f64 * share;
            prop_assert!((c[i] as f64 - want).abs() <= n as f64 * share + 1.0, "{:?} {:?}", weights, c);
        }
    }

    /// 10,000 keys spread evenly: expected 10,000 / N each, binomial sd at
    /// most 50; 5 sd plus the slot rounding.
    #[test]
    fn keys_spread_evenly(n in 3usize..=20, tag in 0usize..256, seed in any::<u64>()) {
        let ids = addresses(n, tag);
        let keys = keys(10_000, seed);
        let got = shares(&assign(&*build_ids(make, &ids), &ids, &keys), &ids);
        let p = 1.0 / n as f64;
        let want = 10_000.0 * p;
        let sd = (10_000.0 * p * (1.0 - p)).sqrt();
        for &c in &got {
            prop_assert!((c as f64 - want).abs() <= 5.0 * sd + 2.0, "{:?}", got);
        }
    }

    #[test]
    fn pick_never_panics_and_respects_health(
        weights in proptest::collection::vec(0u32..50, 0..30),
        eligible in proptest::collection::vec(any::<bool>(), 0..40),
        hash in any::<u64>(),
    ) {
        let m = Maglev::new(&weights, &[]);
        let s = Fake::with_eligible(&eligible);
        let got = pick(&m, &s, hash);
        if let Some(i) = got {
            prop_assert!(eligible[i]);
        } else {
            prop_assert!(weights.is_empty() || !eligible.iter().any(|&e| e));
        }
    }
}
