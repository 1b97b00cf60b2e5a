//! Header rewriting on the way through: hop-by-hop removal (RFC 9110
//! §7.6.1), X-Forwarded-*, RFC 7239 `Forwarded`, and `Via`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes hop-by-hop headers and every header named in `Connection`.
///
/// With `upgrade`, `Connection: upgrade` and `Upgrade` are kept so a
/// WebSocket handshake can pass. `TE: trailers` is kept (gRPC needs it);
/// any other TE is removed.
pub fn strip_hop_by_hop(h: &mut HeaderMap, upgrade: bool) {
    // One pass over the names first: most messages carry none or one of
    // these, and a removal costs a hash lookup each.
    const CONNECTION: u8 = 1;
    const KEEP: u8 = 2;
    const PROXY_CONN: u8 = 4;
    const TRANSFER: u8 = 8;
    const TRAILER: u8 = 16;
    const UPGRADE: u8 = 32;
    const TE: u8 = 64;
    let mut present = 0u8;
    for name in h.keys() {
        present |= match name.as_str() {
            "connection" => CONNECTION,
            "keep-alive" => KEEP,
            "proxy-connection" => PROXY_CONN,
            "transfer-encoding" => TRANSFER,
            "trailer" => TRAILER,
            "upgrade" => UPGRADE,
            "te" => TE,
            _ => 0,
        };
    }
    if present == 0 {
        return;
    }
    if present & CONNECTION != 0 {
        // Names listed in Connection, except the ones handled below anyway.
        let mut named: Vec<HeaderName> = Vec::new();
        for v in h.get_all(header::CONNECTION) {
            for t in v.to_str().unwrap_or("").split(',').map(str::trim) {
                if t.is_empty()
                    || t.eq_ignore_ascii_case("close")
                    || t.eq_ignore_ascii_case("keep-alive")
                    || t.eq_ignore_ascii_case("upgrade")
                {
                    continue;
                }
                if let Ok(n) = HeaderName::from_bytes(t.as_bytes()) {
                    named.push(n);
                }
            }
        }
        for n in named {
            h.remove(&n);
        }
        if upgrade {
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        } else {
            h.remove(header::CONNECTION);
        }
    }
    if present & KEEP != 0 {
        h.remove(&KEEP_ALIVE);
    }
    if present & PROXY_CONN != 0 {
        h.remove(&PROXY_CONNECTION);
    }
    if present & TRANSFER != 0 {
        h.remove(header::TRANSFER_ENCODING);
    }
    if present & TRAILER != 0 {
        h.remove(header::TRAILER);
    }
    if present & UPGRADE != 0 && !upgrade {
        h.remove(header::UPGRADE);
    }
    if present & TE != 0
        && h.get(header::TE)
            .is_some_and(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        h.remove(header::TE);
    }
}

/// True when `ip` is inside one of the trusted proxy networks.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    !trusted.is_empty() && trusted.iter().any(|n| n.contains(&ip))
}

/// The client's address for hashing and logs: the peer, or, when the peer
/// is a trusted proxy, the right-most untrusted address of X-Forwarded-For.
pub fn client_ip(h: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in h.get_all(&X_FORWARDED_FOR) {
        let Ok(s) = v.to_str() else { return peer };
        for part in s.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                Err(_) => return peer,
            }
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip, trusted))
        .unwrap_or(peer)
}

/// What `add_forwarded` needs to know about the connection.
pub struct ForwardCtx<'a> {
    /// Peer IP rendered for X-Forwarded-For ("192.0.2.1", "2001:db8::1").
    pub peer_ip: &'a HeaderValue,
    /// Peer rendered as an RFC 7239 node ("192.0.2.1", "\"[2001:db8::1]\"").
    pub forwarded_node: &'a str,
    /// The peer is a trusted proxy: keep and extend what it sent.
    pub trusted: bool,
    /// "http" or "https".
    pub proto: &'static str,
    /// The Host the client asked for.
    pub host: Option<&'a HeaderValue>,
}

/// Sets X-Forwarded-For/-Proto/-Host and, if enabled, `Forwarded`.
pub fn add_forwarded(h: &mut HeaderMap, cx: &ForwardCtx<'_>, x_forwarded: bool, rfc7239: bool) {
    if x_forwarded {
        let prior = if cx.trusted {
            join_all(h, &X_FORWARDED_FOR)
        } else {
            None
        };
        let xff = match prior {
            Some(p) => {
                let mut v = Vec::with_capacity(p.len() + 2 + cx.peer_ip.len());
                v.extend_from_slice(&p);
                v.extend_from_slice(b", ");
                v.extend_from_slice(cx.peer_ip.as_bytes());
                HeaderValue::from_bytes(&v).unwrap_or_else(|_| cx.peer_ip.clone())
            }
            None => cx.peer_ip.clone(),
        };
        h.insert(X_FORWARDED_FOR.clone(), xff);
        if !(cx.trusted && h.contains_key(&X_FORWARDED_PROTO)) {
            h.insert(
                X_FORWARDED_PROTO.clone(),
                HeaderValue::from_static(cx.proto),
            );
        }
        if !(cx.trusted && h.contains_key(&X_FORWARDED_HOST)) {
            match cx.host {
                Some(host) => {
                    h.insert(X_FORWARDED_HOST.clone(), host.clone());
                }
                None => {
                    h.remove(&X_FORWARDED_HOST);
                }
            }
        }
    } else if !cx.trusted {
        // Never pass along client-supplied values we did not vouch for.
        h.remove(&X_FORWARDED_FOR);
        h.remove(&X_FORWARDED_PROTO);
        h.remove(&X_FORWARDED_HOST);
    }
    if rfc7239 {
        let mut elem = format!("for={};proto={}", cx.forwarded_node, cx.proto);
        if let Some(host) = cx.host.and_then(|v| v.to_str().ok()) {
            elem.push_str(";host=\"");
            elem.push_str(&host.replace(['"', '\\'], ""));
            elem.push('"');
        }
        let value = match if cx.trusted {
            join_all(h, &FORWARDED)
        } else {
            None
        } {
            Some(p) => {
                let mut v = p;
                v.extend_from_slice(b", ");
                v.extend_from_slice(elem.as_bytes());
                v
            }
            None => elem.into_bytes(),
        };
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            h.insert(FORWARDED.clone(), v);
        }
    } else if !cx.trusted {
        h.remove(&FORWARDED);
    }
}

fn join_all(h: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut it = h.get_all(name).iter();
    let first = it.next()?;
    let mut v = first.as_bytes().to_vec();
    for more in it {
        v.extend_from_slice(b", ");
        v.extend_from_slice(more.as_bytes());
    }
    Some(v)
}

/// Appends our hop to `Via`.
pub fn add_via(h: &mut HeaderMap, via: &HeaderValue) {
    h.append(header::VIA, via.clone());
}

/// Renders a peer address for RFC 7239 (IPv6 quoted and bracketed).
pub fn forwarded_node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, hv("keep-alive, x-secret"));
        h.insert("x-secret", hv("1"));
        h.insert("keep-alive", hv("timeout=5"));
        h.insert(header::TE, hv("gzip"));
        h.insert(header::UPGRADE, hv("websocket"));
        h.insert("x-kept", hv("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn every_connection_line_counts_and_clean_messages_are_untouched() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, hv("x-a"));
        h.append(header::CONNECTION, hv("close, x-b"));
        h.insert("x-a", hv("1"));
        h.insert("x-b", hv("1"));
        h.insert("x-c", hv("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-c"]);
        let mut clean = HeaderMap::new();
        clean.insert("host", hv("a"));
        clean.insert(header::TE, hv("trailers"));
        let before = clean.clone();
        strip_hop_by_hop(&mut clean, false);
        assert_eq!(clean, before);
    }

    #[test]
    fn keeps_upgrade_and_te_trailers_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, hv("Upgrade"));
        h.insert(header::UPGRADE, hv("websocket"));
        h.insert(header::TE, hv("trailers"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
        assert_eq!(h.get(header::TE).unwrap(), "trailers");
    }

    fn ctx<'a>(
        peer: &'a HeaderValue,
        host: Option<&'a HeaderValue>,
        trusted: bool,
    ) -> ForwardCtx<'a> {
        ForwardCtx {
            peer_ip: peer,
            forwarded_node: "192.0.2.7",
            trusted,
            proto: "https",
            host,
        }
    }

    #[test]
    fn untrusted_peer_replaces_forwarding_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", hv("6.6.6.6"));
        h.insert("x-forwarded-proto", hv("http"));
        h.insert("forwarded", hv("for=6.6.6.6"));
        let peer = hv("192.0.2.7");
        let host = hv("example.com");
        add_forwarded(&mut h, &ctx(&peer, Some(&host), false), true, true);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.7");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "example.com");
        assert_eq!(
            h.get("forwarded").unwrap(),
            "for=192.0.2.7;proto=https;host=\"example.com\""
        );
    }

    #[test]
    fn trusted_peer_appends() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", hv("1.1.1.1"));
        h.append("x-forwarded-for", hv("2.2.2.2"));
        h.insert("x-forwarded-proto", hv("http"));
        h.insert("forwarded", hv("for=1.1.1.1"));
        let peer = hv("192.0.2.7");
        add_forwarded(&mut h, &ctx(&peer, None, true), true, true);
        assert_eq!(
            h.get("x-forwarded-for").unwrap(),
            "1.1.1.1, 2.2.2.2, 192.0.2.7"
        );
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(
            h.get("forwarded").unwrap(),
            "for=1.1.1.1, for=192.0.2.7;proto=https"
        );
    }

    #[test]
    fn client_ip_skips_trusted_hops() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", hv("203.0.113.9, 10.1.1.1"));
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(&h, peer, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let outsider: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(&h, outsider, &trusted), outsider);
    }
}
