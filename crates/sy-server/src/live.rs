//! Live state that outlives snapshots: per-server load counters, latency
//! EWMA and connection pools, keyed by stable ids (upstream name, server
//! address, transport fingerprint). A reload re-attaches to these, so warm
//! pools and latency history survive it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sy_policy::ewma::EwmaState;

use crate::upstream::pool::ServerPool;

/// Live state of one upstream server.
pub struct ServerLive {
    /// Requests in flight.
    pub active: AtomicU64,
    /// Peak-EWMA of response-head latency.
    pub ewma: EwmaState,
    /// Idle connections.
    pub pool: Arc<ServerPool>,
}

/// The registry of live server state.
pub struct Live {
    workers: usize,
    servers: Mutex<HashMap<String, Arc<ServerLive>>>,
}

impl Live {
    /// An empty registry for `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        Live {
            workers,
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// The live state for `key`, created on first use.
    pub fn server(&self, key: &str, max_idle: usize, idle_timeout: Duration) -> Arc<ServerLive> {
        let mut map = match self.servers.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(ServerLive {
                    active: AtomicU64::new(0),
                    ewma: EwmaState::default(),
                    pool: ServerPool::new(self.workers, max_idle, idle_timeout),
                })
            })
            .clone()
    }

    /// Forgets servers no longer in the running snapshot (their pools close
    /// once in-flight requests of older snapshots let go of them).
    pub fn retain(&self, keep: &[String]) {
        let mut map = match self.servers.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.retain(|k, _| keep.iter().any(|x| x == k));
    }

    /// Closes expired idle connections everywhere.
    pub fn sweep(&self) {
        let servers: Vec<Arc<ServerLive>> = match self.servers.lock() {
            Ok(m) => m.values().cloned().collect(),
            Err(p) => p.into_inner().values().cloned().collect(),
        };
        for s in servers {
            s.pool.sweep();
        }
    }
}

/// Monotonic nanoseconds since the process started (for policy code).
pub fn now_ns() -> u64 {
    ns_at(Instant::now())
}

/// `t` as nanoseconds since the process's epoch (saves a clock read when
/// the caller already has the time).
pub fn ns_at(t: Instant) -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let e = *EPOCH.get_or_init(Instant::now);
    t.saturating_duration_since(e).as_nanos() as u64
}

/// Counts a request in flight on a server until the response head is back
/// (or the attempt failed).
pub struct ActiveGuard<'a>(&'a ServerLive, &'a prometheus_client::metrics::gauge::Gauge);

impl<'a> ActiveGuard<'a> {
    /// Counts a request in flight on `s`.
    pub fn new(s: &'a ServerLive, g: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        s.active.fetch_add(1, Ordering::Relaxed);
        g.inc();
        ActiveGuard(s, g)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.1.dec();
    }
}
