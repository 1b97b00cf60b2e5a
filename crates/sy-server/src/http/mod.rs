//! The HTTP stage: serving client connections (`serve`) and the per-request
//! proxy pipeline (`proxy`). The forwarding headers are `crate::forwarded`.
//! Switchyard's own answers are `crate::respond`.

pub mod park;
pub mod proxy;
pub mod serve;
