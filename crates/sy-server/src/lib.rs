//! Switchyard's IO: listeners, TLS, the HTTP proxy path, upstream pools,
//! reload, shutdown and the admin API. Decisions (routing, balancing) come
//! from `sy-policy`; configuration from `sy-config`.
//!
//! The request path, one module per stage:
//! `listener::accept_loop` -> `http::serve::serve` (TLS / h2c sniff, hyper)
//! -> `http::proxy::handle` (route select, action) -> `upstream::pick` ->
//! `upstream::send` (pool / connect; HTTP/1.1 through `client`, HTTP/2
//! through hyper) -> backend, and back.
//!
//! Modules depend one way (`../shared/tools/module-circles` finds no
//! circle): the leaves (`io`, `boxed`, `conns`, `client` on `io`, `body` on `client`,
//! `forwarded`, `metrics`, `tls`, `respond`) know nothing of the rest; `live`, `trace`, `observe`,
//! `access_log`, `filter` and `upstream` build on them; `snapshot`
//! compiles a configuration out of those; `shared` holds the running
//! snapshot; `http` and `listener` serve requests from it; `control`
//! reloads and stops; `admin`, `reload` (file watch, signals) and
//! `runtime` (threads) sit on top.

pub mod access_log;
pub mod admin;
pub mod body;
pub mod boxed;
pub mod client;
pub mod conns;
pub mod control;
pub mod dashboard;
pub mod filter;
pub mod forwarded;
pub mod health;
pub mod http;
pub mod io;
pub mod listener;
pub mod live;
pub mod metrics;
pub mod observe;
pub mod reload;
pub mod respond;
pub mod runtime;
pub mod shared;
pub mod snapshot;
pub mod tls;
pub mod trace;
pub mod upstream;

pub use control::{Control, ReloadError};
pub use runtime::{Options, ServerHandle, start};
pub use shared::Shared;

/// The latency EWMA parameters every balancer view uses.
pub(crate) fn ewma() -> sy_policy::ewma::PeakEwma {
    sy_policy::ewma::PeakEwma::default()
}
