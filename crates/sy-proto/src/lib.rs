//! Switchyard's parsers of untrusted bytes: protocol framing read straight
//! off a client connection, before any HTTP library has had its say.
//!
//! Everything here is sans-IO: a parser is handed the bytes the caller read
//! and returns what it concluded. This crate must not depend on tokio (or any
//! async runtime) and must not do IO. Its parsers never panic on any input,
//! do not allocate once built (their outputs live inline in the caller), and each has a fuzz target under `fuzz/` at the
//! workspace root.
//!
//! - [`framing`]: tells, for each HTTP/1.x request on a connection, whether
//!   its body framing is ambiguous (a request smuggling defence).
//! - [`proxy_header`]: reads the PROXY protocol header (v1 and v2) a layer-4
//!   balancer puts before a connection's own bytes.
//! - [`response`]: HTTP/1.1 response heads and chunked bodies read from an
//!   upstream server by the proxy's own HTTP/1.1 client.

pub mod framing;
pub mod proxy_header;
pub mod response;

pub use framing::{FramingScanner, Verdict};
