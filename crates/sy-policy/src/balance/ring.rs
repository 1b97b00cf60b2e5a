//! Consistent hashing on a ketama-style ring.

use std::fmt;
use std::fmt::Write as _;

use xxhash_rust::xxh3::xxh3_64;

use super::{Balancer, PickInput, Servers, sanitize_weights, server_ids};

/// Points on the ring per unit of weight.
pub const RING_POINTS_PER_WEIGHT: u32 = 160;

/// Cap on the points of one ring (12 bytes each, so 12 MiB). Beyond it the
/// points per server are scaled down in proportion to weight, at least one
/// each.
pub const RING_MAX_POINTS: usize = 1 << 20;

/// Ketama-style consistent hashing: each server owns
/// `160 * weight` points on a 64-bit ring at `xxh3("{id}-{k}")`; a key goes
/// to the owner of the first point at or after its hash (wrapping around),
/// found by binary search.
///
/// Removing a server moves only its own keys; adding one moves only the keys
/// it takes. When the owner is ineligible the walk continues clockwise to
/// the next point whose owner is eligible, which is where the key would go
/// if the server were removed.
pub struct Ring {
    hashes: Box<[u64]>,
    owners: Box<[u32]>,
    servers: usize,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("servers", &self.servers)
            .field("points", &self.hashes.len())
            .finish()
    }
}

impl Ring {
    /// Build the ring for `weights.len()` servers identified by `ids`
    /// (missing ids default to the index).
    pub fn new(weights: &[u32], ids: &[&str]) -> Self {
        let weights = sanitize_weights(weights);
        let n = weights.len().min(u32::MAX as usize);
        let ids = server_ids(n, ids);
        let units: u64 = weights.iter().take(n).map(|&w| u64::from(w)).sum();
        let per_unit = u64::from(RING_POINTS_PER_WEIGHT);
        let cap = RING_MAX_POINTS as u64;
        let points_of = |w: u32| -> u64 {
            let w = u64::from(w);
            if units.saturating_mul(per_unit) <= cap {
                w * per_unit
            } else {
                // u128: w * cap can exceed u64 for absurd weights.
                let p = u128::from(w) * u128::from(cap) / u128::from(units.max(1));
                (p as u64).max(1)
            }
        };
        let mut points: Vec<(u64, u32)> = Vec::new();
        let mut key = String::new();
        for (i, (id, &w)) in ids.iter().zip(weights.iter()).enumerate() {
            for k in 0..points_of(w) {
                key.clear();
                let _ = write!(key, "{id}-{k}");
                points.push((xxh3_64(key.as_bytes()), i as u32));
            }
        }
        // Ties (equal hashes) are ordered by owner so the ring does not
        // depend on server order.
        points.sort_unstable();
        let (hashes, owners) = points.into_iter().unzip::<_, _, Vec<_>, Vec<_>>();
        Ring {
            hashes: hashes.into_boxed_slice(),
            owners: owners.into_boxed_slice(),
            servers: n,
        }
    }

    /// Number of points on the ring.
    pub fn points(&self) -> usize {
        self.hashes.len()
    }

    /// The server `hash` maps to, ignoring health (None for an empty ring).
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let pos = self.position(hash);
        self.owners.get(pos).map(|&o| o as usize)
    }

    /// Index of the first point at or after `hash`, wrapping to 0.
    fn position(&self, hash: u64) -> usize {
        let pos = self.hashes.partition_point(|&h| h < hash);
        if pos == self.hashes.len() { 0 } else { pos }
    }
}

impl Balancer for Ring {
    fn pick(&self, servers: &dyn Servers, input: &PickInput) -> Option<usize> {
        let n = servers.len();
        let ok = |i: usize| i < n && servers.eligible(i);
        let len = self.owners.len();
        let pos = self.position(input.hash);
        let first = *self.owners.get(pos)? as usize;
        if ok(first) {
            return Some(first);
        }
        // Walk only when some server on the ring can be found, so the walk
        // is bounded by the distance to its next point, not the ring size.
        if !(0..self.servers.min(n)).any(ok) {
            return None;
        }
        (1..len)
            .map(|step| (pos + step) % len)
            .filter_map(|p| self.owners.get(p))
            .map(|&o| o as usize)
            .find(|&o| ok(o))
    }
}

#[cfg(test)]
mod tests;
