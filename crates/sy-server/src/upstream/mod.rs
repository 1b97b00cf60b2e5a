//! The upstream stage: choosing a server (`pick`), connection pools
//! (`pool`), opening connections (`connect`) and sending one request
//! (`send`).

pub mod connect;
pub mod pick;
pub mod pool;
pub mod send;
