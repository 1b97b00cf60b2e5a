//! Switchyard's pure policy decisions: which route a request takes
//! ([`route`]), which server of an upstream gets it ([`balance`]) and the
//! latency estimate the latency-aware balancer reads ([`ewma`]).
//!
//! Around those sit the decisions about servers' health and about retries:
//!
//! - [`health`]: the active health-check rise/fall state machine and the
//!   jittered delay between probes.
//! - [`outlier`]: passive outlier detection (consecutive 5xx / gateway
//!   failures, growing ejection times, the max-ejection share and panic
//!   mode).
//! - [`slow_start`]: the ramp-up share of a server that just became ready.
//! - [`retry_budget`]: how many retries recent traffic allows.
//! - [`backoff`]: full-jitter exponential backoff between retries.
//! - [`quantile`]: lock-free latency histograms: an upstream's recent
//!   quantiles (e.g. p95), and a cumulative variant for per-second
//!   quantiles (the dashboard).
//! - [`split`]: weighted traffic splitting.
//! - [`sticky`]: the server-naming value of a sticky-session cookie.
//! - [`ip`]: IP allow and deny lists (a prefix trie whose lookup time does
//!   not grow with the list).
//!
//! And the decisions of the request pipeline's filters:
//!
//! - [`rewrite`]: path prefix and regex rewrites, query parameter edits.
//! - [`cors`]: which origins a CORS policy allows, how a preflight is
//!   answered and which `Access-Control-*` headers a response carries.
//! - [`compress`]: response compression: `Accept-Encoding` negotiation,
//!   which responses may be compressed, the `ETag` rewrite.
//! - [`vary`]: adding a field to a response's `Vary`.
//! - [`syntax`]: tokens and DNS names, shared with the config checks.
//!
//! This crate must stay pure: it must not depend on tokio (or any async
//! runtime), must not do IO, must not read a clock and must not use a global
//! random number generator. Time and randomness are inputs: callers pass
//! `now_ns` and a fresh random `u64` per decision, which keeps every decision
//! reproducible in tests and simulations.

pub mod backoff;
pub mod balance;
pub mod compress;
pub mod cors;
pub mod ewma;
pub mod health;
pub mod ip;
pub mod outlier;
pub mod quantile;
pub mod retry_budget;
pub mod rewrite;
pub mod route;
pub mod slow_start;
pub mod split;
pub mod sticky;
pub mod syntax;
pub mod vary;
