//! The state every worker reads: the running snapshot, the metrics, the
//! live upstream state and the tracer. Built by `runtime::start`, replaced
//! piecewise by `control` on reload.

use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::live::Live;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::trace::Tracer;

/// Process-wide state shared by every worker: the running snapshot, the
/// metrics and the live upstream state.
pub struct Shared {
    /// The running configuration, swapped atomically on reload.
    pub snapshot: ArcSwap<Snapshot>,
    /// Metric families.
    pub metrics: Metrics,
    /// Live upstream state.
    pub live: Live,
    /// Worker threads.
    pub workers: usize,
    /// When the process started serving.
    pub started: Instant,
    /// The span exporter and sampling settings of `[tracing]` (None = off).
    /// Replaced on reload only when `[tracing]` changed.
    pub tracer: ArcSwapOption<Tracer>,
}
