//! Open client connections of a worker: counted for draining and in the
//! listener's open-connection gauge. A leaf: the accept loop makes the
//! guards, the HTTP stage keeps them while it serves (or parks) a
//! connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::metrics::gauge::Gauge;

/// Connections a worker holds open, for draining.
#[derive(Default)]
pub struct ConnCount {
    n: AtomicUsize,
    zero: tokio::sync::Notify,
}

impl ConnCount {
    /// Open connections now.
    pub fn get(&self) -> usize {
        self.n.load(Ordering::Acquire)
    }
    /// Waits until no connection is open.
    pub async fn wait_zero(&self) {
        loop {
            let notified = self.zero.notified();
            if self.get() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Counts a connection as open (for draining, and in the listener's
/// open-connection gauge) while it lives.
pub struct ConnGuard(Arc<ConnCount>, Gauge);

impl ConnGuard {
    /// Counts one more open connection until the guard drops.
    pub fn new(conns: &Arc<ConnCount>, gauge: &Gauge) -> Self {
        conns.n.fetch_add(1, Ordering::AcqRel);
        gauge.inc();
        ConnGuard(conns.clone(), gauge.clone())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.1.dec();
        if self.0.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}
