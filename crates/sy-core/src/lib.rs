//! Switchyard's shared vocabulary: where a failure came from, which stage of
//! the request path failed, whether a retry is safe, and the clock that pure
//! policy code is given instead of reading time itself.
//!
//! This crate must not depend on tokio, hyper or any other Switchyard crate.

mod error;

pub use error::{Origin, ProxyError, Stage};

/// Monotonic nanoseconds since an arbitrary, per-process epoch.
///
/// Pure policy code (balancers, EWMA, health) takes time as this number so
/// tests can drive it without sleeping.
pub type Nanos = u64;

/// Name of the response header that says which stage of the request path
/// failed when Switchyard answers a request itself with an error.
pub const ERROR_HEADER: &str = "x-switchyard-error";

/// Response header naming the circuit breaker that failed a request fast.
pub const BREAKER_HEADER: &str = "x-switchyard-breaker";
