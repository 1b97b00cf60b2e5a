//! `listener::accept`: binding listening sockets (SO_REUSEPORT, one per
//! worker) and the accept loop that hands connections to `http::serve`,
//! after the listener's IP rules and connection limit let them in (and,
//! with `proxy_protocol`, once the PROXY header has named the client).

mod proxy_protocol;

use crate::conns::{ConnCount, ConnGuard};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::serve::{count, serve};
use crate::shared::Shared;

/// Binds a listening socket with SO_REUSEPORT so every worker can have its
/// own socket on the same address and the kernel spreads connections.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = tcp_socket(addr)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// Fails when something already listens on `addr` (port 0 is always
/// free). Every worker's socket has SO_REUSEPORT, and the kernel lets any
/// process of the same user join such a group: a second Switchyard started
/// by mistake would silently take half of the connections. A probe socket
/// without SO_REUSEPORT cannot bind beside a listening socket, so it tells;
/// sockets in TIME_WAIT do not count (SO_REUSEADDR). Sharing a port with
/// another process is only ever done on purpose, by handing the sockets
/// over.
pub fn ensure_free(addr: SocketAddr) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    tcp_socket(addr)?.bind(&addr.into()).map_err(bind_error)
}

/// A TCP socket for `addr` with SO_REUSEADDR (and, for IPv6, IPV6_V6ONLY
/// so that `[::]` never takes the IPv4 port too).
fn tcp_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    Ok(s)
}

/// An address-in-use error worded for a user: someone else holds the port.
pub fn bind_error(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        std::io::Error::new(
            e.kind(),
            "address in use by another process (another switchyard, or any other server); stop it or choose another address",
        )
    } else {
        e
    }
}

/// Closes a refused connection at once with a reset (SO_LINGER 0): no
/// answer, and no TIME_WAIT left on our side by a client that keeps
/// coming back.
fn refuse(tcp: tokio::net::TcpStream) {
    let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
    drop(tcp);
}

/// Accepts on `sock` until `stop` flips, serving each connection with the
/// listener configuration current at accept time.
pub async fn accept_loop(
    sock: std::net::TcpListener,
    name: String,
    shared: Arc<Shared>,
    conns: Arc<ConnCount>,
    mut stop: watch::Receiver<bool>,
    drain: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(sock) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listener = %name, error = %e, "cannot register listener");
            return;
        }
    };
    // Closes this loop's parked connections (idle timeout, shutdown).
    let wheel = crate::http::park::ParkWheel::new(drain.clone(), shared.clone());
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let snap = shared.snapshot.load();
        let Some(lst) = snap.listener(&name).cloned() else {
            continue;
        };
        // Before TLS and before any byte is read: a refused client costs
        // one trie lookup and a reset. Behind a PROXY protocol balancer the
        // peer is the balancer: the rules wait for the header's client.
        if lst.proxy_protocol.is_none()
            && let Some(gate) = &lst.ip
            && !gate.rules.allows(peer.ip())
        {
            gate.refused.inc();
            refuse(tcp);
            continue;
        }
        // The listener's open-connection gauge is shared by every worker and
        // survives reloads, so it is the listener-wide count.
        let max = lst.cfg.max_connections;
        if max > 0 && lst.metrics.active.get() >= max as i64 {
            count(&shared, &lst.cfg.name, "connection_limit");
            continue;
        }
        lst.metrics.total.inc();
        let guard = ConnGuard::new(&conns, &lst.metrics.active);
        let shared = shared.clone();
        let drain = drain.clone();
        let wheel = wheel.clone();
        tokio::spawn(async move {
            let (tcp, peer) = match &lst.proxy_protocol {
                None => (tcp, peer),
                // Boxed: the header buffer lives only until the header is read.
                Some(_) => match Box::pin(proxied(tcp, peer, &lst)).await {
                    Some(x) => x,
                    None => return,
                },
            };
            serve(tcp, peer, lst, shared, drain, wheel, guard).await;
        });
    }
}

/// A connection of a `proxy_protocol` listener once its header is read:
/// the socket positioned at the client's first byte, and the client the
/// header names, which the listener's IP rules then judge (as HAProxy's
/// `tcp-request connection` rules judge `src` after `accept-proxy`). None:
/// no acceptable header, or a refused client; the connection is closed.
async fn proxied(
    mut tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    lst: &crate::snapshot::ListenerRt,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    let gate = lst.proxy_protocol.as_ref()?;
    let client = proxy_protocol::client(&mut tcp, peer, lst, gate).await?;
    if let Some(ip) = &lst.ip
        && !ip.rules.allows(client.ip())
    {
        ip.refused.inc();
        refuse(tcp);
        return None;
    }
    Some((tcp, client))
}
