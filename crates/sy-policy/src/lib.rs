//! Switchyard's pure policy decisions: which route a request takes
//! ([`route`]), which server of an upstream gets it ([`balance`]) and the
//! latency estimate the latency-aware balancer reads ([`ewma`]).
//!
//! This crate must stay pure: it must not depend on tokio (or any async
//! runtime), must not do IO, must not read a clock and must not use a global
//! random number generator. Time and randomness are inputs: callers pass
//! `now_ns` and a fresh random `u64` per decision, which keeps every decision
//! reproducible in tests and simulations.

pub mod balance;
pub mod ewma;
pub mod route;
