//! `upstream::pick`: runs the upstream's policy balancer over the live view
//! of its servers. Input: the request (for hash keys) and the client
//! address. Output: a server index, or the `no-healthy-server` error.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use http::HeaderMap;
use http::header::COOKIE;
use ipnet::IpNet;
use sy_config::model::HashKey;
use sy_core::{ProxyError, Stage};
use sy_policy::balance::{PickInput, Servers, hash_key};

use crate::http::headers::client_ip;
use crate::live::now_ns;
use crate::snapshot::UpstreamRt;

struct LiveView<'a> {
    up: &'a UpstreamRt,
    // Read on first use: only latency-aware balancers need the time.
    now: std::cell::Cell<Option<u64>>,
}

impl LiveView<'_> {
    fn now(&self) -> u64 {
        match self.now.get() {
            Some(t) => t,
            None => {
                let t = now_ns();
                self.now.set(Some(t));
                t
            }
        }
    }
}

impl Servers for LiveView<'_> {
    fn len(&self) -> usize {
        self.up.servers.len()
    }
    fn eligible(&self, _i: usize) -> bool {
        // Health checks and draining (issue "upstream health") plug in here.
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

fn cookie<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
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

/// Chooses a server of `up` for this request.
pub fn pick(up: &UpstreamRt, src: &KeySource<'_>) -> Result<usize, ProxyError> {
    let random: u64 = rand::random();
    // A request without the key (no such header or cookie) is spread at random.
    let hash = match &up.hash_key {
        Some(k) => key_hash(k, src).unwrap_or(random),
        None => 0,
    };
    let view = LiveView {
        up,
        now: std::cell::Cell::new(None),
    };
    up.balancer
        .pick(&view, &PickInput { hash, random })
        .ok_or_else(|| {
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
