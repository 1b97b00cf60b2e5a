//! A plain-vector [`Servers`] for the balancer tests.

use super::Servers;

/// Servers described by vectors; indices past a vector's end read as
/// eligible, idle and without latency data.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fake {
    pub(crate) eligible: Vec<bool>,
    pub(crate) active: Vec<u64>,
    pub(crate) latency: Vec<f64>,
    pub(crate) n: usize,
}

impl Fake {
    /// n eligible, idle servers without latency data.
    pub(crate) fn all(n: usize) -> Self {
        Fake {
            eligible: vec![true; n],
            active: vec![0; n],
            latency: vec![0.0; n],
            n,
        }
    }

    /// Servers with these eligibility flags.
    pub(crate) fn with_eligible(eligible: &[bool]) -> Self {
        let mut f = Fake::all(eligible.len());
        f.eligible = eligible.to_vec();
        f
    }
}

impl Servers for Fake {
    fn len(&self) -> usize {
        self.n
    }
    fn eligible(&self, i: usize) -> bool {
        i < self.n && self.eligible.get(i).copied().unwrap_or(true)
    }
    fn active(&self, i: usize) -> u64 {
        self.active.get(i).copied().unwrap_or(0)
    }
    fn latency(&self, i: usize) -> f64 {
        self.latency.get(i).copied().unwrap_or(0.0)
    }
}

/// Addresses to use as server ids: `10.{tag}.{i / 256}.{i % 256}:8080`.
pub(crate) fn addresses(n: usize, tag: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}:8080", tag % 256, i / 256, i % 256))
        .collect()
}

/// `count` pseudo-random key hashes from a seed.
pub(crate) fn keys(count: usize, seed: u64) -> Vec<u64> {
    let mut rng = super::SplitMix64::new(seed);
    (0..count).map(|_| rng.next_u64()).collect()
}

/// Which server id each key lands on, all servers eligible.
pub(crate) fn assign<'a>(b: &dyn super::Balancer, ids: &'a [String], keys: &[u64]) -> Vec<&'a str> {
    let s = Fake::all(ids.len());
    keys.iter()
        .map(|&hash| {
            b.pick(&s, &super::PickInput { hash, random: 0 })
                .and_then(|i| ids.get(i))
                .map_or("", String::as_str)
        })
        .collect()
}

/// Key movement between two assignments of the same keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Movement {
    /// Keys that changed server, over all keys.
    pub(crate) moved: f64,
    /// Keys that changed server although their old server still exists and
    /// the new server already existed, over the keys whose old server still
    /// exists.
    pub(crate) moved_needlessly: f64,
}

/// Compare assignments before and after a change of the server set.
pub(crate) fn movement(
    before: &[&str],
    after: &[&str],
    after_ids: &[String],
    new_id: Option<&str>,
) -> Movement {
    let mut moved = 0usize;
    let mut kept_server = 0usize;
    let mut needless = 0usize;
    for (&b, &a) in before.iter().zip(after) {
        if a != b {
            moved += 1;
        }
        if after_ids.iter().any(|id| id == b) {
            kept_server += 1;
            if a != b && Some(a) != new_id {
                needless += 1;
            }
        }
    }
    Movement {
        moved: moved as f64 / before.len().max(1) as f64,
        moved_needlessly: needless as f64 / kept_server.max(1) as f64,
    }
}

/// Count how many keys each id got.
pub(crate) fn shares(assigned: &[&str], ids: &[String]) -> Vec<usize> {
    ids.iter()
        .map(|id| assigned.iter().filter(|&&a| a == id).count())
        .collect()
}

/// A consistent-hash constructor, `Maglev` or `Ring` boxed.
pub(crate) type Make = fn(&[u32], &[&str]) -> Box<dyn super::Balancer>;

/// Build with equal weights over these ids.
pub(crate) fn build_ids(make: Make, ids: &[String]) -> Box<dyn super::Balancer> {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    make(&vec![1; ids.len()], &refs)
}

/// Movement of `keys` when server `r` of `n` is removed (rebuilt without it).
pub(crate) fn removal(make: Make, n: usize, tag: usize, r: usize, keys: &[u64]) -> Movement {
    let ids = addresses(n, tag);
    let before = assign(&*build_ids(make, &ids), &ids, keys);
    let mut fewer = ids.clone();
    fewer.remove(r.min(n - 1));
    let after = assign(&*build_ids(make, &fewer), &fewer, keys);
    movement(&before, &after, &fewer, None)
}

/// Movement of `keys` when a server is added to `n` (rebuilt with it last).
pub(crate) fn addition(make: Make, n: usize, tag: usize, keys: &[u64]) -> Movement {
    let ids = addresses(n, tag);
    let before = assign(&*build_ids(make, &ids), &ids, keys);
    let new_id = format!("192.168.{}.1:9090", tag % 256);
    let mut more = ids.clone();
    more.push(new_id.clone());
    let after = assign(&*build_ids(make, &more), &more, keys);
    movement(&before, &after, &more, Some(&new_id))
}
