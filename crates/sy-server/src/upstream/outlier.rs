//! `upstream::outlier`: passive health. Every attempt's outcome is fed to
//! the server's outlier state (`sy_policy::outlier`); a server that reaches
//! a threshold is ejected unless `max_ejected_percent` forbids it. The
//! sweeper (`sweep`, once a second on the control thread) returns servers
//! whose ejection is over.
//!
//! The success path costs one relaxed load: the lock is only taken while a
//! server has recent failures.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sy_core::{ProxyError, Stage};
use sy_policy::outlier::{Outcome, may_eject};

use crate::live::{flag, now_ns};
use crate::upstream::rt::{ServerRt, UpstreamRt};

/// The outcome an attempt's error counts as, if it counts at all.
pub fn error_outcome(e: &ProxyError) -> Option<Outcome> {
    match e.stage {
        Stage::Connect
        | Stage::ConnectTimeout
        | Stage::Tls
        | Stage::Timeout
        | Stage::UpstreamProtocol => Some(Outcome::GatewayFailure),
        _ => None,
    }
}

/// Records one attempt's outcome on server `idx` of `up`.
pub fn record(up: &UpstreamRt, idx: usize, outcome: Outcome) {
    let (Some(o), Some(server)) = (&up.outlier, up.servers.get(idx)) else {
        return;
    };
    let st = &server.live.state;
    if outcome == Outcome::Success && st.failing.load(Ordering::Relaxed) == 0 {
        return;
    }
    let now = now_ns();
    let mut g = st.outlier();
    if outcome == Outcome::Success {
        g.record(&o.cfg, outcome, now);
        st.failing.store(0, Ordering::Relaxed);
        return;
    }
    st.failing.store(1, Ordering::Relaxed);
    if !g.record(&o.cfg, outcome, now) {
        return;
    }
    let ejected = up
        .servers
        .iter()
        .filter(|s| {
            s.live.state.flags() & flag::EJECTED != 0
                && s.live.state.ejected_until.load(Ordering::Relaxed) > now
        })
        .count();
    if !may_eject(ejected, up.servers.len(), o.max_ejected_percent) {
        up.metrics.ejections_skipped.inc();
        tracing::warn!(upstream = %up.name, server = %server.target.authority,
            "outlier not ejected: max_ejected_percent reached");
        return;
    }
    let until = g.eject(&o.cfg, now);
    drop(g);
    st.ejected_until.store(until, Ordering::Relaxed);
    st.set(flag::EJECTED, true);
    server.metrics.ejected.set(1);
    server.metrics.ejections.inc();
    tracing::warn!(upstream = %up.name, server = %server.target.authority,
        seconds = (until - now) as f64 / 1e9, ?outcome, "outlier ejected");
}

fn sweep_server(up: &UpstreamRt, s: &ServerRt, now: u64) {
    let st = &s.live.state;
    if st.flags() & flag::EJECTED == 0 || st.ejected_until.load(Ordering::Relaxed) > now {
        return;
    }
    st.outlier().maybe_uneject(now);
    let until = st.ejected_until.load(Ordering::Relaxed);
    if st.set(flag::EJECTED, false) {
        // The slow-start ramp began when the ejection ended (see `pick`).
        st.ready_at.store(until.max(1), Ordering::Relaxed);
        s.metrics.ejected.set(0);
        s.metrics.returns.inc();
        tracing::info!(upstream = %up.name, server = %s.target.authority,
            "outlier returned to service");
    }
}

/// Returns servers whose ejection is over (and starts their slow start).
pub fn sweep(upstreams: &[Arc<UpstreamRt>]) {
    let now = now_ns();
    for up in upstreams {
        for s in &up.servers {
            sweep_server(up, s, now);
        }
    }
}
