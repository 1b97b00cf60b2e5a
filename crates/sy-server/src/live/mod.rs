//! Live state that outlives snapshots: per-server load counters, latency
//! EWMA and connection pools, keyed by stable ids (upstream name, server
//! address, transport fingerprint). A reload re-attaches to these, so warm
//! pools and latency history survive it.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sy_config::model::{Pool, UpstreamProtocol, UpstreamTls};
use sy_policy::ewma::EwmaState;
use sy_policy::outlier::OutlierState;
use sy_policy::quantile::LatencyWindow;
use sy_policy::retry_budget::RetryBudget;

pub mod pool;

use pool::ServerPool;

thread_local! {
    static WORKER_ID: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The index of the worker thread running the caller (0 elsewhere): each
/// worker has its own slot in every connection pool.
pub fn worker_id() -> usize {
    WORKER_ID.with(std::cell::Cell::get)
}

/// Marks the calling thread as worker `id` (at its start).
pub fn set_worker_id(id: usize) {
    WORKER_ID.with(|w| w.set(id));
}

/// Live state of one upstream server.
pub struct ServerLive {
    /// Requests in flight.
    pub active: AtomicU64,
    /// Peak-EWMA of response-head latency.
    pub ewma: EwmaState,
    /// Idle connections.
    pub pool: Arc<ServerPool>,
    /// Health, ejection and draining state.
    pub state: ServerState,
}

/// Why a server takes no new requests (bits of [`ServerState::flags`]).
pub mod flag {
    /// The active health check marked it down.
    pub const DOWN: u8 = 1;
    /// Outlier detection ejected it (until `ejected_until`).
    pub const EJECTED: u8 = 2;
    /// An operator drained it through the admin API.
    pub const DRAINING: u8 = 4;
}

/// Health, ejection and draining of one server. The request path reads one
/// atomic (`flags`) when everything is fine.
#[derive(Default)]
pub struct ServerState {
    /// `flag::*` bits.
    pub flags: AtomicU8,
    /// End of the current ejection (ns, see [`now_ns`]).
    pub ejected_until: AtomicU64,
    /// When the server last became available (ns); 0 = from the start
    /// (no slow-start ramp).
    pub ready_at: AtomicU64,
    /// Non-zero while outlier counters may be non-zero: lets a success skip
    /// the lock.
    pub failing: AtomicU32,
    /// Outlier detection counters and ejection history.
    pub outlier: Mutex<OutlierState>,
}

impl ServerState {
    /// The flags now.
    pub fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    /// Sets or clears `bit`; true when that changed anything.
    pub fn set(&self, bit: u8, on: bool) -> bool {
        let old = if on {
            self.flags.fetch_or(bit, Ordering::AcqRel)
        } else {
            self.flags.fetch_and(!bit, Ordering::AcqRel)
        };
        (old & bit != 0) != on
    }

    /// Takes new requests at `now` (an expired ejection counts as over even
    /// before the sweeper clears it). Draining is not health: see `draining`.
    pub fn healthy(&self, now: u64) -> bool {
        let f = self.flags();
        if f & flag::DOWN != 0 {
            return false;
        }
        f & flag::EJECTED == 0 || self.ejected_until.load(Ordering::Relaxed) <= now
    }

    /// Drained by an operator.
    pub fn draining(&self) -> bool {
        self.flags() & flag::DRAINING != 0
    }

    /// The outlier state, locked.
    pub fn outlier(&self) -> MutexGuard<'_, OutlierState> {
        relock(&self.outlier)
    }
}

/// Live state of one upstream (all its servers): circuit-breaker counters,
/// the retry budget and recent latencies. Survives reloads.
pub struct UpstreamLive {
    /// Requests in flight to any server of the upstream.
    pub requests: AtomicU64,
    /// Requests waiting for a new connection.
    pub pending: AtomicU64,
    /// Open connections to all servers.
    pub connections: Arc<AtomicU64>,
    /// Retries and hedges in flight.
    pub retries: AtomicU64,
    /// Retry budget (requests and retries in the recent window).
    pub budget: Mutex<RetryBudget>,
    /// Response-head latencies, for hedging at the p95.
    pub latency: LatencyWindow,
}

impl UpstreamLive {
    /// The retry budget, locked.
    pub fn budget(&self) -> MutexGuard<'_, RetryBudget> {
        relock(&self.budget)
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Which live state of a server a snapshot attaches to: the server, and
/// how it is connected to (pools are shared only between snapshots that
/// connect the same way).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    /// Upstream name.
    pub upstream: String,
    /// Server address as configured.
    pub address: String,
    /// How connections are made.
    pub transport: TransportKey,
}

/// The settings a pooled connection was made with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransportKey {
    /// `protocol`.
    pub protocol: UpstreamProtocol,
    /// `[tls]`.
    pub tls: Option<UpstreamTls>,
    /// `[pool]`.
    pub pool: Pool,
    /// `connect_timeout`.
    pub connect_timeout: Duration,
}

/// Which live state of an upstream a snapshot attaches to: a changed retry
/// budget starts the budget, breaker counters and latency window afresh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamKey {
    /// Upstream name.
    pub upstream: String,
    /// `retry_budget.ratio` (as bits: the key must be `Eq`).
    pub budget_ratio: u64,
    /// `retry_budget.min_retries_per_second`.
    pub budget_floor: u32,
    /// `retry_budget.window`.
    pub budget_window: Duration,
}

impl UpstreamKey {
    /// The key of upstream `u`.
    pub fn of(u: &sy_config::model::Upstream) -> Self {
        UpstreamKey {
            upstream: u.name.clone(),
            budget_ratio: u.retry_budget.ratio.to_bits(),
            budget_floor: u.retry_budget.min_retries_per_second,
            budget_window: u.retry_budget.window,
        }
    }
}

/// Which live state of a filter a snapshot attaches to: its kind and an id
/// stable across reloads (a named filter's name, or the route and position
/// of an inline one), plus whatever of its configuration makes old state
/// meaningless when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilterKey {
    /// The filter kind, e.g. "cors".
    pub kind: &'static str,
    /// A stable id.
    pub id: String,
}

/// The registry of live state: servers, upstreams and filters.
pub struct Live {
    workers: usize,
    servers: Mutex<HashMap<ServerKey, Arc<ServerLive>>>,
    upstreams: Mutex<HashMap<UpstreamKey, Arc<UpstreamLive>>>,
    filters: Mutex<HashMap<FilterKey, Arc<dyn Any + Send + Sync>>>,
}

impl Live {
    /// An empty registry for `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        Live {
            workers,
            servers: Mutex::new(HashMap::new()),
            upstreams: Mutex::new(HashMap::new()),
            filters: Mutex::new(HashMap::new()),
        }
    }

    /// The live state for `key`, created on first use. A server created
    /// with `ramp` (added by a reload) starts its slow-start window now.
    pub fn server(&self, key: &ServerKey, ramp: bool) -> Arc<ServerLive> {
        let (max_idle, idle_timeout) = (
            key.transport.pool.max_idle_per_server,
            key.transport.pool.idle_timeout,
        );
        let mut map = relock(&self.servers);
        map.entry(key.clone())
            .or_insert_with(|| {
                let state = ServerState::default();
                if ramp {
                    state.ready_at.store(now_ns().max(1), Ordering::Relaxed);
                }
                Arc::new(ServerLive {
                    active: AtomicU64::new(0),
                    ewma: EwmaState::default(),
                    pool: ServerPool::new(self.workers, max_idle, idle_timeout),
                    state,
                })
            })
            .clone()
    }

    /// The live state of upstream `key`, created on first use with `budget`
    /// (a changed budget configuration makes a new key).
    pub fn upstream(
        &self,
        key: &UpstreamKey,
        budget: impl FnOnce() -> RetryBudget,
    ) -> Arc<UpstreamLive> {
        let mut map = relock(&self.upstreams);
        map.entry(key.clone())
            .or_insert_with(|| {
                Arc::new(UpstreamLive {
                    requests: AtomicU64::new(0),
                    pending: AtomicU64::new(0),
                    connections: Arc::new(AtomicU64::new(0)),
                    retries: AtomicU64::new(0),
                    budget: Mutex::new(budget()),
                    latency: LatencyWindow::new(),
                })
            })
            .clone()
    }

    /// Every upstream's live state (for the periodic latency rotation).
    pub fn upstreams(&self) -> Vec<Arc<UpstreamLive>> {
        relock(&self.upstreams).values().cloned().collect()
    }

    /// The live state of filter `key`, created on first use by `init`. A
    /// reload that keeps the key keeps the state (counters, fetched keys,
    /// cached objects). None when the key is already used by state of
    /// another type (a bug: kinds are part of the key).
    pub fn filter<T: Any + Send + Sync>(
        &self,
        key: &FilterKey,
        init: impl FnOnce() -> T,
    ) -> Option<Arc<T>> {
        let state = relock(&self.filters)
            .entry(key.clone())
            .or_insert_with(|| Arc::new(init()))
            .clone();
        state.downcast::<T>().ok()
    }

    /// Forgets servers, upstreams and filters no longer in the running
    /// snapshot (their pools close once in-flight requests of older
    /// snapshots let go of them).
    pub fn retain(&self, keep: &LiveKeys) {
        relock(&self.servers).retain(|k, _| keep.servers.contains(k));
        relock(&self.upstreams).retain(|k, _| keep.upstreams.contains(k));
        relock(&self.filters).retain(|k, _| keep.filters.contains(k));
    }

    /// Closes expired idle connections everywhere.
    pub fn sweep(&self) {
        let servers: Vec<Arc<ServerLive>> = relock(&self.servers).values().cloned().collect();
        for s in servers {
            s.pool.sweep();
        }
    }
}

/// The live-state keys a snapshot uses; everything else can be forgotten.
#[derive(Debug, Default)]
pub struct LiveKeys {
    /// Servers.
    pub servers: HashSet<ServerKey>,
    /// Upstreams.
    pub upstreams: HashSet<UpstreamKey>,
    /// Filters.
    pub filters: HashSet<FilterKey>,
}

/// Monotonic nanoseconds since the process started (for policy code).
pub fn now_ns() -> u64 {
    ns_at(Instant::now())
}

/// `t` as nanoseconds since the process's epoch (saves a clock read when
/// the caller already has the time).
pub fn ns_at(t: Instant) -> u64 {
    t.saturating_duration_since(epoch().at).as_nanos() as u64
}

/// [`now_ns`] as of the kernel's last timer tick: 1 to 4 ms behind, and
/// about a tenth of the cost (`CLOCK_MONOTONIC_COARSE` reads a shared page;
/// the precise clock reads the time-stamp counter, some 25 ns on this
/// project's machines, and a proxied request read it 17 times). For
/// timeouts, idle stamps and windows of seconds; durations use `now_ns`.
pub fn coarse_ns() -> u64 {
    coarse_raw().saturating_sub(epoch().raw)
}

/// The process's epoch: an `Instant` and the raw monotonic clock read
/// together, so the precise and the coarse clock count from the same time.
struct Epoch {
    at: Instant,
    raw: u64,
}

fn epoch() -> &'static Epoch {
    static EPOCH: std::sync::OnceLock<Epoch> = std::sync::OnceLock::new();
    EPOCH.get_or_init(|| {
        // In this order, so the coarse clock is never ahead of `now_ns`.
        let at = Instant::now();
        Epoch {
            at,
            raw: precise_raw(),
        }
    })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn coarse_raw() -> u64 {
    timespec_ns(rustix::time::clock_gettime(
        rustix::time::ClockId::MonotonicCoarse,
    ))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn coarse_raw() -> u64 {
    precise_raw()
}

/// `CLOCK_MONOTONIC`, the clock `Instant` reads.
fn precise_raw() -> u64 {
    timespec_ns(rustix::time::clock_gettime(
        rustix::time::ClockId::Monotonic,
    ))
}

fn timespec_ns(t: rustix::time::Timespec) -> u64 {
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// The coarse clock counts from the precise one's epoch: it is never
    /// ahead of it, and behind by no more than a few timer ticks.
    #[test]
    fn coarse_clock_follows_the_precise_one() {
        for _ in 0..1000 {
            let before = now_ns();
            let coarse = coarse_ns();
            let after = now_ns();
            assert!(coarse <= after, "coarse {coarse} ahead of {after}");
            // A tick is at most 10 ms (HZ=100); allow a few for a busy host.
            assert!(
                coarse + 50_000_000 >= before,
                "coarse {coarse} far behind {before}"
            );
        }
    }

    fn key(id: &str) -> FilterKey {
        FilterKey {
            kind: "counter",
            id: id.to_owned(),
        }
    }

    #[test]
    fn filter_state_outlives_snapshots_until_its_key_is_dropped() {
        let live = Live::new(1);
        let a = live.filter(&key("a"), || AtomicUsize::new(0)).unwrap();
        a.fetch_add(3, Ordering::Relaxed);
        // A "reload" that keeps the key finds the same state.
        let again = live.filter(&key("a"), || AtomicUsize::new(0)).unwrap();
        assert_eq!(again.load(Ordering::Relaxed), 3);
        // The wrong type under a key is refused, not a panic.
        assert!(live.filter(&key("a"), String::new).is_none());
        // A reload without the key forgets it.
        let mut keep = LiveKeys::default();
        keep.filters.insert(key("b"));
        live.retain(&keep);
        let fresh = live.filter(&key("a"), || AtomicUsize::new(0)).unwrap();
        assert_eq!(fresh.load(Ordering::Relaxed), 0);
    }
}
