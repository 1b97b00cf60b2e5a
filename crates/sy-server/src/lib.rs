//! Switchyard's IO: listeners, TLS, the HTTP proxy path, upstream pools,
//! reload, shutdown and the admin API. Decisions (routing, balancing) come
//! from `sy-policy`; configuration from `sy-config`.
//!
//! The request path, one module per stage:
//! `listener::accept_loop` -> `http::serve::serve` (TLS / h2c sniff, hyper)
//! -> `http::proxy::handle` (route select, action) -> `upstream::pick` ->
//! `upstream::send` (pool / connect) -> backend, and back.

pub mod access_log;
pub mod admin;
pub mod body;
pub mod dashboard;
pub mod filter;
pub mod health;
pub mod http;
pub mod io;
pub mod listener;
pub mod live;
pub mod metrics;
pub mod observe;
pub mod reload;
pub mod runtime;
pub mod snapshot;
pub mod tls;
pub mod trace;
pub mod upstream;

pub use runtime::{Control, Options, ReloadError, ServerHandle, Shared, start};

/// The latency EWMA parameters every balancer view uses.
pub(crate) fn ewma() -> sy_policy::ewma::PeakEwma {
    sy_policy::ewma::PeakEwma::default()
}
