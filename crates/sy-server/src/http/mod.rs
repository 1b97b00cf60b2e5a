//! The HTTP stage: serving client connections (`serve`), the per-request
//! proxy pipeline (`proxy`), header rules (`headers`) and Switchyard's own
//! answers (`respond`).

pub mod headers;
mod park;
pub mod proxy;
pub mod respond;
pub mod serve;
