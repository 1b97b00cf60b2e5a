//! The upstream stage: choosing a server (`pick`), connection pools
//! (`pool`), opening connections (`connect`), sending one request
//! (`send`), the compiled upstream (`rt`), one accounted attempt with breakers, retries, hedging and
//! mirroring (`attempt`) and passive health (`outlier`).

pub mod attempt;
pub mod connect;
pub mod outlier;
pub mod pick;
pub mod rt;
pub mod send;
