//! Connection pools to one server: idle HTTP/1.1 keep-alive connections and
//! one shared multiplexed HTTP/2 connection, kept per worker thread so a
//! connection is only ever driven by the event loop that opened it.
//!
//! Pools live outside the snapshot (in `live`), so a reload keeps them warm.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::client::conn::http2;

use super::worker_id;
use crate::body::ProxyBody;
use crate::client::{Conn, ReturnConn, Returner};

/// Idle connections of one server, one slot per worker.
pub struct ServerPool {
    slots: Box<[Mutex<Slot>]>,
    max_idle: usize,
    idle_timeout: Duration,
}

#[derive(Default)]
struct Slot {
    /// Idle connections and when each was given back (`coarse_ns`).
    h1: Vec<(Box<Conn>, u64)>,
    h2: Option<http2::SendRequest<ProxyBody>>,
}

/// A connection taken from the pool (or freshly opened) for one request.
pub enum Checkout {
    /// HTTP/1.1, exclusively ours until given back.
    H1(Box<Conn>),
    /// A clone of the shared HTTP/2 sender.
    H2(http2::SendRequest<ProxyBody>),
}

impl ReturnConn for ServerPool {
    fn give_back(&self, slot: usize, conn: Box<Conn>) {
        let Some(slot) = self.slots.get(slot) else {
            return;
        };
        let mut slot = match slot.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if slot.h1.len() < self.max_idle {
            slot.h1.push((conn, super::coarse_ns()));
        }
    }
}

impl ServerPool {
    /// A pool for `workers` worker threads.
    pub fn new(workers: usize, max_idle: usize, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(ServerPool {
            slots: (0..workers.max(1))
                .map(|_| Mutex::new(Slot::default()))
                .collect(),
            max_idle,
            idle_timeout,
        })
    }

    fn slot(&self) -> (usize, std::sync::MutexGuard<'_, Slot>) {
        let i = worker_id() % self.slots.len();
        let guard = match self.slots[i].lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        (i, guard)
    }

    /// An idle connection usable now, if any. HTTP/2 is preferred when the
    /// server speaks it; of the HTTP/1.1 ones, the most recently returned
    /// (its socket is warmest) that the server has not closed.
    pub fn take_idle(&self) -> Option<Checkout> {
        let (_, mut slot) = self.slot();
        if let Some(h2) = &slot.h2 {
            if !h2.is_closed() {
                return Some(Checkout::H2(h2.clone()));
            }
            slot.h2 = None;
        }
        // Expiry is the sweeper's job (once a second).
        while let Some((mut conn, _)) = slot.h1.pop() {
            if conn.probe() {
                return Some(Checkout::H1(conn));
            }
        }
        None
    }

    /// Stores a new HTTP/2 connection as this worker's shared one.
    pub fn put_h2(&self, sender: http2::SendRequest<ProxyBody>) {
        let (_, mut slot) = self.slot();
        slot.h2 = Some(sender);
    }

    /// Where an HTTP/1.1 connection of this worker goes back when its
    /// response ends.
    pub fn returner(self: &Arc<Self>) -> Returner {
        Returner {
            pool: self.clone() as Arc<dyn ReturnConn>,
            slot: worker_id() % self.slots.len(),
        }
    }

    /// Closes idle connections older than the idle timeout. Called
    /// periodically by the control loop.
    pub fn sweep(&self) {
        let now = super::coarse_ns();
        let limit = self.idle_timeout.as_nanos() as u64;
        for s in self.slots.iter() {
            let mut slot = match s.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            slot.h1.retain(|(_, at)| now.saturating_sub(*at) <= limit);
            if slot.h2.as_ref().is_some_and(|h| h.is_closed()) {
                slot.h2 = None;
            }
        }
    }
}
