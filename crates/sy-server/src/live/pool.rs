//! Connection pools to one server: idle HTTP/1.1 keep-alive connections and
//! one shared multiplexed HTTP/2 connection, kept per worker thread so a
//! connection is only ever driven by the event loop that opened it.
//!
//! Pools live outside the snapshot (in `live`), so a reload keeps them warm.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};

use super::worker_id;
use crate::body::{PoolReturn, ProxyBody, ReturnConn};

/// How long a just-returned connection may take to become ready again.
const READY_WAIT: Duration = Duration::from_millis(500);

/// Idle connections of one server, one slot per worker.
pub struct ServerPool {
    slots: Box<[Mutex<Slot>]>,
    max_idle: usize,
    idle_timeout: Duration,
}

#[derive(Default)]
struct Slot {
    h1: Vec<(http1::SendRequest<ProxyBody>, Instant)>,
    h2: Option<http2::SendRequest<ProxyBody>>,
}

/// A connection taken from the pool (or freshly opened) for one request.
pub enum Checkout {
    /// HTTP/1.1, exclusively ours until given back.
    H1 {
        /// The sender.
        sender: http1::SendRequest<ProxyBody>,
        /// True when it served an earlier request (a failure before any
        /// response may then be the server's keep-alive race: retry fresh).
        reused: bool,
    },
    /// A clone of the shared HTTP/2 sender.
    H2(http2::SendRequest<ProxyBody>),
}

impl ReturnConn for ServerPool {
    fn give_back(&self, slot: usize, sender: http1::SendRequest<ProxyBody>) {
        let Some(slot) = self.slots.get(slot) else {
            return;
        };
        let mut slot = match slot.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if slot.h1.len() < self.max_idle {
            slot.h1.push((sender, Instant::now()));
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
    /// server speaks it.
    pub async fn take_idle(&self) -> Option<Checkout> {
        loop {
            let candidate = {
                let (_, mut slot) = self.slot();
                if let Some(h2) = &slot.h2 {
                    if !h2.is_closed() {
                        return Some(Checkout::H2(h2.clone()));
                    }
                    slot.h2 = None;
                }
                // The most recently returned connection that is ready now;
                // expiry is the sweeper's job (once a second).
                let mut i = slot.h1.len();
                while i > 0 {
                    i -= 1;
                    if slot.h1[i].0.is_closed() {
                        slot.h1.swap_remove(i);
                    } else if slot.h1[i].0.is_ready() {
                        let (sender, _) = slot.h1.swap_remove(i);
                        return Some(Checkout::H1 {
                            sender,
                            reused: true,
                        });
                    }
                }
                match slot.h1.pop() {
                    Some((s, _)) => s,
                    None => return None,
                }
            };
            // Given back at the end of the response body; the connection's
            // task may not have run since. Wait for it briefly rather than
            // throw a good keep-alive connection away.
            if let Some(sender) = Box::pin(wait_ready(candidate)).await {
                return Some(Checkout::H1 {
                    sender,
                    reused: true,
                });
            }
        }
    }

    /// Stores a new HTTP/2 connection as this worker's shared one.
    pub fn put_h2(&self, sender: http2::SendRequest<ProxyBody>) {
        let (_, mut slot) = self.slot();
        slot.h2 = Some(sender);
    }

    /// Wraps an HTTP/1.1 sender so it comes back when its response ends.
    pub fn returner(self: &Arc<Self>, sender: http1::SendRequest<ProxyBody>) -> PoolReturn {
        PoolReturn {
            pool: self.clone() as Arc<dyn ReturnConn>,
            slot: worker_id() % self.slots.len(),
            sender,
        }
    }

    /// Closes idle connections older than the idle timeout. Called
    /// periodically by the control loop.
    pub fn sweep(&self) {
        let now = Instant::now();
        for s in self.slots.iter() {
            let mut slot = match s.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            slot.h1
                .retain(|(s, at)| !s.is_closed() && now.duration_since(*at) <= self.idle_timeout);
            if slot.h2.as_ref().is_some_and(|h| h.is_closed()) {
                slot.h2 = None;
            }
        }
    }
}

/// Waits up to `READY_WAIT` for a just-returned connection (cold path,
/// boxed by the caller to keep the per-request future small).
async fn wait_ready(
    mut sender: http1::SendRequest<ProxyBody>,
) -> Option<http1::SendRequest<ProxyBody>> {
    match tokio::time::timeout(READY_WAIT, sender.ready()).await {
        Ok(Ok(())) => Some(sender),
        _ => None,
    }
}
