//! `proxy_protocol = true` on a listener: the PROXY protocol header (v1 or
//! v2) a layer-4 balancer sends before its client's bytes, read before TLS
//! and HTTP.
//!
//! The parsing is `sy_proto::proxy_header`'s. This module reads exactly the
//! header's bytes off the socket (a peek, then a read of what the peek
//! showed to belong to the header), under the listener's
//! `request_header_timeout`, and tells who the client is. Only connections
//! of a listener with `proxy_protocol` come here: the others pay nothing.

use std::net::SocketAddr;

use sy_proto::proxy_header::{self, Invalid, MAX_LEN, Parse, Source};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::http::serve::RateLimitedLog;
use crate::snapshot::{ListenerRt, ProxyProtocolGate};

/// Why no header was read.
#[derive(Debug)]
enum Failure {
    /// Not a header, or not an acceptable one.
    Invalid(Invalid),
    /// The client closed (or reset) before sending a byte: not an error
    /// (a balancer's TCP health check does just that).
    Closed,
    /// The client closed (or reset) in the middle of a header.
    Truncated,
}

/// At most one "proxy protocol header refused" record per second,
/// process-wide.
static REFUSED_LOG: RateLimitedLog = RateLimitedLog::new();

/// The client of a connection on a `proxy_protocol` listener: the address
/// its header names, or `peer` itself for a v2 `LOCAL` header (the
/// balancer's own health check) or a header without an IP address (v1
/// `UNKNOWN`, v2 `UNSPEC` or `AF_UNIX`). The header's bytes are consumed;
/// the next byte read is the client's first.
///
/// None: no acceptable header within `request_header_timeout`; the caller
/// closes the connection. It has been counted in `downstream_errors_total`
/// (unless the client closed without sending a byte) and logged at debug
/// level, at most once a second.
pub(super) async fn client(
    tcp: &mut TcpStream,
    peer: SocketAddr,
    lst: &ListenerRt,
    gate: &ProxyProtocolGate,
) -> Option<SocketAddr> {
    let res = tokio::time::timeout(lst.cfg.request_header_timeout, read(tcp)).await;
    let (counter, reason) = match res {
        Ok(Ok(header)) => {
            return Some(match header.source {
                Source::Client(addr) => addr,
                Source::Local | Source::Unknown => peer,
            });
        }
        Ok(Err(Failure::Closed)) => return None,
        Ok(Err(Failure::Invalid(Invalid::Missing))) => (&gate.missing, "missing"),
        Ok(Err(Failure::Invalid(why))) => (&gate.invalid, why.as_str()),
        Ok(Err(Failure::Truncated)) => (&gate.invalid, "truncated"),
        Err(_) => (&gate.timeout, "timeout"),
    };
    counter.inc();
    if tracing::enabled!(tracing::Level::DEBUG)
        && let Some(suppressed) = REFUSED_LOG.allow()
    {
        tracing::debug!(
            listener = %lst.cfg.name,
            peer = %peer,
            reason,
            suppressed,
            "proxy protocol header refused; connection closed"
        );
    }
    None
}

/// Reads the header at the start of `tcp`, consuming exactly its bytes.
///
/// Each round peeks at what has arrived, and reads (consumes) only bytes
/// the parser says belong to the header: everything when the header is
/// still incomplete, up to its end when it is complete. Bytes after the
/// header stay in the socket for TLS or HTTP. A header that arrives in one
/// segment, as balancers send it, costs one peek and one read.
async fn read(tcp: &mut TcpStream) -> Result<proxy_header::Header, Failure> {
    let mut buf = [0u8; MAX_LEN];
    let mut have = 0;
    // The parser refuses a header longer than MAX_LEN, so an incomplete
    // one always leaves room; the bound is only a guard.
    while have < MAX_LEN {
        let cut = || {
            if have == 0 {
                Failure::Closed
            } else {
                Failure::Truncated
            }
        };
        let n = tcp.peek(&mut buf[have..]).await.map_err(|_| cut())?;
        if n == 0 {
            return Err(cut());
        }
        let seen = have + n;
        match proxy_header::parse(&buf[..seen]) {
            Parse::Complete { len, header } => {
                tcp.read_exact(&mut buf[have..len])
                    .await
                    .map_err(|_| Failure::Truncated)?;
                return Ok(header);
            }
            Parse::Incomplete => {
                tcp.read_exact(&mut buf[have..seen])
                    .await
                    .map_err(|_| Failure::Truncated)?;
                have = seen;
            }
            Parse::Invalid(why) => return Err(Failure::Invalid(why)),
        }
    }
    Err(Failure::Invalid(Invalid::TooLong))
}

#[cfg(test)]
mod tests;
