//! Per-request observation: the facts the request path gathers about one
//! exchange, read afterwards by the access log, the trace exporter and the
//! dashboard statistics.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// What one request's upstream attempts did. Lives on the request's stack
/// and is shared by reference with its attempts (atomics, because the
/// request future must be `Send`; nothing here is contended).
#[derive(Default)]
pub struct Exchange {
    /// Upstream attempts made (retries, hedges and the first one).
    pub attempts: AtomicU32,
    /// 1 + index of the server whose answer was used; 0 = none.
    pub server: AtomicUsize,
    /// Connect time (TCP + TLS + handshake) of the last new upstream
    /// connection, ns; 0 = every attempt reused a pooled connection.
    pub connect_ns: AtomicU64,
    /// From request sent to response head of the last attempt that got
    /// one, ns.
    pub ttfb_ns: AtomicU64,
    /// W3C trace id (big-endian halves) when tracing gave the request one;
    /// all zero = none (an all-zero trace id is invalid in W3C).
    pub trace_id: [AtomicU64; 2],
    /// Request body bytes received, counted by the request body; Some only
    /// when the access log records this request and it has a body.
    pub bytes_in: Option<std::sync::Arc<AtomicU64>>,
    /// The request's trace context; None when `[tracing]` is off. Every
    /// upstream attempt writes its `traceparent` from it.
    pub trace: Option<crate::trace::TraceCtx>,
    /// The request id a `request_id` filter gave the request.
    pub request_id: Option<http::HeaderValue>,
}

impl Exchange {
    /// Counts an attempt on server `idx`.
    pub fn attempt(&self, idx: usize) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.server.store(idx + 1, Ordering::Relaxed);
    }

    /// Records the connect time of a new connection.
    pub fn connected(&self, d: Duration) {
        self.connect_ns
            .store(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Records the time to the response head.
    pub fn answered(&self, idx: usize, d: Duration) {
        self.server.store(idx + 1, Ordering::Relaxed);
        self.ttfb_ns.store(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Records the request's W3C trace id (for the access log).
    pub fn set_trace_id(&self, id: [u8; 16]) {
        let (hi, lo) = id.split_at(8);
        let half = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        self.trace_id[0].store(half(hi), Ordering::Relaxed);
        self.trace_id[1].store(half(lo), Ordering::Relaxed);
    }

    /// The request's W3C trace id, if tracing gave it one.
    pub fn trace_id(&self) -> Option<[u8; 16]> {
        let hi = self.trace_id[0].load(Ordering::Relaxed);
        let lo = self.trace_id[1].load(Ordering::Relaxed);
        if hi == 0 && lo == 0 {
            return None;
        }
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&hi.to_be_bytes());
        id[8..].copy_from_slice(&lo.to_be_bytes());
        Some(id)
    }

    /// The server index whose answer was used, if any.
    pub fn server(&self) -> Option<usize> {
        self.server.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Attempts made.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Connect time, if a new connection was opened.
    pub fn connect(&self) -> Option<Duration> {
        match self.connect_ns.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// Time to the response head, if one arrived.
    pub fn ttfb(&self) -> Option<Duration> {
        match self.ttfb_ns.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }
}
