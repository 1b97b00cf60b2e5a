//! Consistent hashing with Google's Maglev lookup table.
//!
//! Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
//! Balancer", NSDI 2016, section 3.4.

use std::fmt;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{Balancer, PickInput, Servers, SplitMix64, sanitize_weights, server_ids};

/// Entries in the lookup table: a prime, so every `skip` in `1..M` walks a
/// full permutation, and about 100x the number of servers of a large
/// upstream, which keeps shares within about 1 % of their weight.
pub const MAGLEV_TABLE_SIZE: usize = 65537;

/// How many times a key whose entry points at an ineligible server is
/// rehashed into the table before falling back to a scan of the servers.
pub const MAGLEV_REHASHES: usize = 8;

const EMPTY: u16 = u16::MAX;
/// Seeds of the two hashes of a server id (offset and skip).
const SEED_OFFSET: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
const SEED_SKIP: u64 = 0x6d61_676c_6576_736b; // "maglevsk"

/// Maglev consistent hashing: `table[hash % M]` names the server.
///
/// Each server walks its own permutation of the table slots (offset and skip
/// from xxh3 of its id) and claims the next free slot on its turn; turns go
/// in id order, so the table depends on the set of servers, not on the order
/// they are listed in. Turns are handed out in
/// proportion to weight: each round a server earns its weight in credit and
/// takes one turn per `max_weight` of credit, so shares follow the weights
/// to within a slot or two. Removing a server moves its keys and, as the
/// paper measures, only a few percent of the others.
///
/// Health is live, the table is not rebuilt for it: when `table[hash % M]`
/// is ineligible the key is rehashed [`MAGLEV_REHASHES`] times (spreading a
/// down server's keys over the others in proportion to their shares), then
/// the servers are scanned from a key-derived start. All of it is
/// deterministic, so the same key lands on the same fallback.
///
/// At most 65535 servers get table slots; servers past that, or past the
/// weights the table was built with, are reached only by the final scan. A
/// table built for no servers picks nothing.
pub struct Maglev {
    table: Box<[u16]>,
    servers: usize,
}

impl fmt::Debug for Maglev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("servers", &self.servers)
            .field("table_size", &self.table.len())
            .finish()
    }
}

impl Maglev {
    /// Build the table for `weights.len()` servers identified by `ids`
    /// (missing ids default to the index). Costs O(M log M) slot probes plus
    /// O(n) per round of turns: a few milliseconds for a typical upstream,
    /// done once per config snapshot, off the request path.
    pub fn new(weights: &[u32], ids: &[&str]) -> Self {
        let weights = sanitize_weights(weights);
        let n = weights.len().min(usize::from(EMPTY));
        if n == 0 {
            return Maglev {
                table: Box::new([]),
                servers: 0,
            };
        }
        let ids = server_ids(n, ids);
        let m = MAGLEV_TABLE_SIZE as u64;
        let offset: Vec<u64> = ids
            .iter()
            .map(|id| xxh3_64_with_seed(id.as_bytes(), SEED_OFFSET) % m)
            .collect();
        let skip: Vec<u64> = ids
            .iter()
            .map(|id| xxh3_64_with_seed(id.as_bytes(), SEED_SKIP) % (m - 1) + 1)
            .collect();
        let w: Vec<u64> = weights.iter().take(n).map(|&w| u64::from(w)).collect();
        let w_max = w.iter().copied().max().unwrap_or(1);
        let mut next = vec![0u64; n];
        let mut credit = vec![0u64; n];
        // Turns go in id order, so the table depends on the set of servers,
        // not on the order they are listed in.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| ids[a].cmp(&ids[b]).then(a.cmp(&b)));
        let mut table = vec![EMPTY; MAGLEV_TABLE_SIZE];
        let mut filled = 0usize;
        while filled < MAGLEV_TABLE_SIZE {
            for &i in &order {
                credit[i] += w[i];
                while credit[i] >= w_max && filled < MAGLEV_TABLE_SIZE {
                    credit[i] -= w_max;
                    // Claim the next free slot of i's permutation. The slots
                    // i skipped were all taken and stay taken, so within M
                    // steps there is a free one while the table is not full.
                    loop {
                        let slot = ((offset[i] + next[i] * skip[i]) % m) as usize;
                        next[i] += 1;
                        if let Some(e) = table.get_mut(slot)
                            && *e == EMPTY
                        {
                            *e = i as u16;
                            filled += 1;
                            break;
                        }
                    }
                }
            }
        }
        Maglev {
            table: table.into_boxed_slice(),
            servers: n,
        }
    }

    /// The lookup table: server index per slot.
    pub fn table(&self) -> &[u16] {
        &self.table
    }

    /// The server `hash` maps to, ignoring health (None for an empty table).
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        self.entry(hash)
    }

    fn entry(&self, hash: u64) -> Option<usize> {
        let len = self.table.len() as u64;
        if len == 0 {
            return None;
        }
        self.table
            .get((hash % len) as usize)
            .map(|&i| usize::from(i))
    }
}

impl Balancer for Maglev {
    fn pick(&self, servers: &dyn Servers, input: &PickInput) -> Option<usize> {
        let n = servers.len();
        let ok = |i: usize| i < n && servers.eligible(i);
        let first = self.entry(input.hash)?;
        if ok(first) {
            return Some(first);
        }
        let mut rehash = SplitMix64::new(input.hash);
        for _ in 0..MAGLEV_REHASHES {
            if let Some(i) = self.entry(rehash.next_u64())
                && ok(i)
            {
                return Some(i);
            }
        }
        if n == 0 {
            return None;
        }
        let start = rehash.below(n as u64) as usize;
        (0..n).map(|k| (start + k) % n).find(|&i| ok(i))
    }
}

#[cfg(test)]
mod tests;
