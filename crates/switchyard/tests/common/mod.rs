//! Shared fixtures for the end-to-end tests: real backends on 127.0.0.1:0,
//! the real proxy (in-process or as the real binary), configs,
//! certificates, clients.
//!
//! Every test file declares `mod common;` and uses only part of it, hence
//! `dead_code` and `unused_imports` (an unused re-export) below. Inner
//! attributes here apply to the submodules too.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

mod backends;
mod binary;
mod browser;
mod client;
mod config;
mod killable;
mod proxy;
mod raw;
mod tls;

pub use backends::*;
pub use binary::*;
pub use browser::*;
pub use client::*;
pub use config::*;
pub use killable::*;
pub use proxy::*;
pub use raw::*;
pub use tls::*;
