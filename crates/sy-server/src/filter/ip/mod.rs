//! `ip`: refuses a request with 403 when the allow and deny lists refuse
//! its client, the address `RequestCx::client_ip` holds (the peer, or the
//! client X-Forwarded-For names when the peer is a trusted proxy). The
//! decision is `sy_policy::ip`'s; the same rules checked on the TCP peer
//! at accept are a listener's `ip` table (see `listener::accept_loop`).
//!
//! The compiled rules sit behind an `Arc`: every chain using the same
//! lists (a named filter, or equal lists written on several routes) shares
//! one trie, built once per snapshot (see [`super::CompileCache`]).

use std::sync::Arc;

use http::request::Parts;
use sy_config::model;
use sy_core::ProxyError;
use sy_policy::ip::{Decision, IpRules};

use super::{RequestCx, Verdict};
use crate::body::ProxyBody;

/// A compiled `ip` filter.
#[derive(Debug)]
pub struct IpFilter {
    rules: Arc<IpRules>,
}

impl IpFilter {
    /// A filter checking `rules`.
    pub fn new(rules: Arc<IpRules>) -> Self {
        IpFilter { rules }
    }

    /// Lets the request on, or refuses it with 403. Allocates only when it
    /// refuses.
    pub fn on_request(&self, cx: &mut RequestCx<'_>, _req: &mut Parts) -> Verdict {
        match self.rules.decide(cx.client_ip) {
            Decision::Allowed => Verdict::Continue,
            Decision::Denied => {
                Verdict::Reject(ProxyError::forbidden("the client address is denied"))
            }
            Decision::NotAllowed => Verdict::Reject(ProxyError::forbidden(
                "the client address is not in the allow list",
            )),
        }
    }

    /// Nothing: the filter only decides.
    pub fn on_response(&self, _cx: &RequestCx<'_>, _resp: &mut http::Response<ProxyBody>) {}
}

/// Builds the rules of a validated `ip` table (of a filter or a listener).
pub fn rules(cfg: &model::IpFilter) -> IpRules {
    IpRules::new(cfg.allow.iter(), cfg.deny.iter())
}

#[cfg(test)]
mod tests;
