//! `upstream::pick`: runs the upstream's policy balancer over the live view
//! of its servers. Input: the request's hash key (for consistent hashing)
//! and the servers already tried. Output: a server index, or the
//! `no-healthy-server` error.
//!
//! A server is eligible when it is not drained, passes its active health
//! checks and is not ejected by outlier detection. When fewer than
//! `panic_threshold` percent of the (non-drained) servers are eligible, the
//! upstream is in panic and health is ignored. A server in its slow-start
//! window is admitted to a pick with a probability that ramps with time.

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use http::HeaderMap;
use http::header::COOKIE;
use ipnet::IpNet;
use sy_config::model::HashKey;
use sy_core::{ProxyError, Stage};
use sy_policy::balance::{PickInput, Servers, hash_key};
use sy_policy::outlier::in_panic;
use sy_policy::slow_start;

use crate::forwarded::client_ip;
use crate::live::{flag, now_ns};
use crate::upstream::rt::UpstreamRt;

struct LiveView<'a> {
    up: &'a UpstreamRt,
    // Read on first use: only some decisions need the time.
    now: Cell<Option<u64>>,
    /// Servers already tried by this request.
    tried: &'a [usize],
    /// Honour `tried` and slow start (relaxed when nothing else is left).
    strict: Cell<bool>,
    /// Ignore health (panic mode).
    panic: bool,
    random: u64,
}

impl LiveView<'_> {
    fn now(&self) -> u64 {
        lazy_now(&self.now)
    }
}

fn lazy_now(c: &Cell<Option<u64>>) -> u64 {
    match c.get() {
        Some(t) => t,
        None => {
            let t = now_ns();
            c.set(Some(t));
            t
        }
    }
}

impl Servers for LiveView<'_> {
    fn len(&self) -> usize {
        self.up.servers.len()
    }
    fn eligible(&self, i: usize) -> bool {
        let Some(s) = self.up.servers.get(i) else {
            return false;
        };
        let strict = self.strict.get();
        if strict && self.tried.contains(&i) {
            return false;
        }
        let st = &s.live.state;
        let f = st.flags();
        if f != 0 {
            if f & flag::DRAINING != 0 {
                return false;
            }
            if !self.panic && !st.healthy(self.now()) {
                return false;
            }
        }
        if strict && self.up.slow_start_ns > 0 {
            // A server whose ejection just ended ramps from the end of the
            // ejection, before the sweeper has noticed.
            let ready = if f & flag::EJECTED != 0 {
                st.ejected_until.load(Ordering::Relaxed)
            } else {
                st.ready_at.load(Ordering::Relaxed)
            };
            if ready > 0 {
                let elapsed = self.now().saturating_sub(ready);
                if elapsed < self.up.slow_start_ns {
                    let f = slow_start::factor(elapsed, self.up.slow_start_ns);
                    return slow_start::admit(f, self.random, i as u64);
                }
            }
        }
        true
    }
    fn active(&self, i: usize) -> u64 {
        self.up
            .servers
            .get(i)
            .map_or(0, |s| s.live.active.load(Ordering::Relaxed))
    }
    fn latency(&self, i: usize) -> f64 {
        self.up
            .servers
            .get(i)
            .map_or(0.0, |s| crate::ewma().get(&s.live.ewma, self.now()))
    }
}

/// The request facts a hash key can be computed from.
pub struct KeySource<'a> {
    /// Request headers (before Switchyard's rewriting).
    pub headers: &'a HeaderMap,
    /// Request path.
    pub path: &'a str,
    /// TCP peer.
    pub peer: IpAddr,
    /// Trusted proxies of the listener.
    pub trusted: &'a [IpNet],
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    for v in h.get_all(COOKIE) {
        for pair in v.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            if let Some(rest) = pair.strip_prefix(name.as_bytes())
                && let Some(value) = rest.strip_prefix(b"=")
            {
                return Some(value);
            }
        }
    }
    None
}

fn key_hash(key: &HashKey, src: &KeySource<'_>) -> Option<u64> {
    match key {
        HashKey::ClientIp => Some(match client_ip(src.headers, src.peer, src.trusted) {
            IpAddr::V4(v4) => hash_key(&v4.octets()),
            IpAddr::V6(v6) => hash_key(&v6.octets()),
        }),
        HashKey::Path => Some(hash_key(src.path.as_bytes())),
        HashKey::Header(name) => src
            .headers
            .get(name.as_str())
            .map(|v| hash_key(v.as_bytes())),
        HashKey::Cookie(name) => cookie(src.headers, name).map(hash_key),
    }
}

/// The consistent-hash key of this request for `up` (None when the
/// upstream does not hash, or the request lacks the key: such requests are
/// spread at random).
pub fn request_hash(up: &UpstreamRt, src: &KeySource<'_>) -> Option<u64> {
    up.hash_key.as_ref().and_then(|k| key_hash(k, src))
}

/// Whether server `i` may take a new request now (sticky sessions: the
/// pinned server is used only if this holds).
pub fn available(up: &UpstreamRt, i: usize) -> bool {
    let Some(s) = up.servers.get(i) else {
        return false;
    };
    let st = &s.live.state;
    let f = st.flags();
    f == 0 || (f & flag::DRAINING == 0 && (st.healthy(now_ns()) || panicking(up, now_ns())))
}

/// Whether some server of `up` outside `tried` is healthy (passes its
/// checks, not ejected, not drained), panic mode aside: a split uses it to
/// leave out a backend whose servers are all down, and a retry to move to
/// another backend when this one has nothing fresh to offer.
pub fn has_healthy_server(up: &UpstreamRt, tried: &[usize]) -> bool {
    let now = Cell::new(None);
    up.servers.iter().enumerate().any(|(i, s)| {
        if tried.contains(&i) {
            return false;
        }
        let st = &s.live.state;
        let f = st.flags();
        f == 0 || (f & flag::DRAINING == 0 && st.healthy(lazy_now(&now)))
    })
}

/// Whether too few servers are healthy (see the module docs); drained
/// servers count neither way.
pub fn panicking(up: &UpstreamRt, now: u64) -> bool {
    let mut total = 0;
    let mut healthy = 0;
    for s in &up.servers {
        let st = &s.live.state;
        if st.draining() {
            continue;
        }
        total += 1;
        if st.healthy(now) {
            healthy += 1;
        }
    }
    healthy < total && in_panic(healthy, total, up.panic_threshold)
}

/// Chooses a server of `up` for this request, avoiding the servers in
/// `tried` when another one is available.
pub fn pick(up: &UpstreamRt, hash: Option<u64>, tried: &[usize]) -> Result<usize, ProxyError> {
    let random: u64 = rand::random();
    let now = Cell::new(None);
    // One atomic load per server when all is well.
    let degraded = up.servers.iter().any(|s| s.live.state.flags() != 0);
    let panic = degraded && panicking(up, lazy_now(&now));
    if panic {
        up.metrics.panic.inc();
    }
    let view = LiveView {
        up,
        now,
        tried,
        strict: Cell::new(true),
        panic,
        random,
    };
    let input = PickInput {
        hash: hash.unwrap_or(random),
        random,
    };
    if let Some(i) = up.balancer.pick(&view, &input) {
        return Ok(i);
    }
    // Nothing new is left (or slow start turned every server away): a
    // server already tried beats no server.
    view.strict.set(false);
    up.balancer.pick(&view, &input).ok_or_else(|| {
        ProxyError::new(
            Stage::NoHealthyServer,
            format!("upstream {} has no server available", up.name),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn finds_cookie_values() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; session=xyz; b=2"));
        assert_eq!(cookie(&h, "session"), Some(&b"xyz"[..]));
        assert_eq!(cookie(&h, "sess"), None);
        assert_eq!(cookie(&h, "missing"), None);
    }
}
