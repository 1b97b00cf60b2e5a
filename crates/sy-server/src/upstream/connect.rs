//! Opening a connection to one upstream server: TCP, optional TLS, then the
//! HTTP/1.1 or HTTP/2 client handshake.
//!
//! Input: a resolved server target and the upstream's transport settings.
//! Output: a ready connection (HTTP/1.1: our own `client::Conn`; HTTP/2:
//! a hyper sender whose connection runs as its own task). Failure: a `ProxyError` at stage `connect`,
//! `tls` or `timeout`, always retry-safe (nothing reached the application).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use sy_config::model::UpstreamProtocol;
use sy_core::{ProxyError, Stage};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::body::ProxyBody;
use crate::client::{Conn, OpenGuard};
use crate::io::{ByteCounters, Metered, Stream};

/// How to reach the servers of one upstream. Built once per snapshot.
pub struct Transport {
    /// HTTP version policy.
    pub protocol: UpstreamProtocol,
    /// TLS settings; None = cleartext.
    pub tls: Option<UpstreamTls>,
    /// Limit for TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
}

/// Client-side TLS for one upstream.
pub struct UpstreamTls {
    /// rustls client with the configured roots and ALPN.
    pub connector: TlsConnector,
    /// SNI / verified name override; default is the server's host.
    pub server_name: Option<ServerName<'static>>,
}

/// Where one server is.
#[derive(Debug, Clone)]
pub struct Target {
    /// "host:port" as configured.
    pub authority: String,
    /// The host part, for SNI.
    pub host: String,
    /// Pre-parsed when the address is a literal IP.
    pub addr: Option<SocketAddr>,
}

impl Target {
    /// Parses "ip:port" or "host:port".
    pub fn new(authority: &str) -> Self {
        let addr = authority.parse::<SocketAddr>().ok();
        let host = match authority.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            None => authority.to_string(),
        };
        Target {
            authority: authority.to_string(),
            host,
            addr,
        }
    }
}

/// A freshly opened connection.
pub enum NewConn {
    /// HTTP/1.1: one request at a time, driven by the request's task.
    H1(Box<Conn>),
    /// HTTP/2: multiplexed, cloneable.
    H2(http2::SendRequest<ProxyBody>),
}

/// Opens a connection to `target` under `transport`'s settings. `open`,
/// when given, counts the connection while it stays open; `bytes`, when
/// given, counts the bytes it carries.
pub async fn connect(
    target: &Target,
    transport: &Transport,
    open: Option<&Arc<AtomicU64>>,
    bytes: Option<ByteCounters>,
) -> Result<NewConn, ProxyError> {
    let inner = connect_inner(target, transport, open.cloned(), bytes);
    match tokio::time::timeout(transport.connect_timeout, inner).await {
        Ok(r) => r,
        Err(_) => Err(ProxyError::new(
            Stage::ConnectTimeout,
            format!(
                "connect to upstream server timed out after {:?}",
                transport.connect_timeout
            ),
        )),
    }
}

async fn connect_inner(
    target: &Target,
    transport: &Transport,
    open: Option<Arc<AtomicU64>>,
    bytes: Option<ByteCounters>,
) -> Result<NewConn, ProxyError> {
    let tcp = match target.addr {
        Some(addr) => TcpStream::connect(addr).await,
        None => TcpStream::connect(target.authority.as_str()).await,
    }
    .map_err(|e| ProxyError::new(Stage::Connect, format!("connect failed: {}", io_kind(&e))))?;
    let _ = tcp.set_nodelay(true);

    let (stream, h2) = match &transport.tls {
        None => (
            Stream::Plain(tcp),
            transport.protocol == UpstreamProtocol::H2c,
        ),
        Some(tls) => {
            let name = match &tls.server_name {
                Some(n) => n.clone(),
                None => ServerName::try_from(target.host.clone()).map_err(|_| {
                    ProxyError::new(Stage::Tls, "server address is not a valid TLS name")
                })?,
            };
            let s = tls.connector.connect(name, tcp).await.map_err(|e| {
                ProxyError::new(
                    Stage::Tls,
                    format!("tls handshake with upstream failed: {e}"),
                )
            })?;
            let alpn_h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
            let h2 = match transport.protocol {
                UpstreamProtocol::H2 | UpstreamProtocol::H2c => true,
                UpstreamProtocol::Auto => alpn_h2,
                UpstreamProtocol::Http1 => false,
            };
            (Stream::ClientTls(Box::new(s)), h2)
        }
    };
    let metered = Metered::new(stream, bytes);
    if !h2 {
        return Ok(NewConn::H1(Conn::new(
            metered,
            OpenGuard::new(open.as_ref()),
        )));
    }
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .handshake(TokioIo::new(metered))
        .await
        .map_err(|e| ProxyError::new(Stage::Connect, format!("http/2 handshake failed: {e}")))?;
    let guard = OpenGuard::new(open.as_ref());
    tokio::spawn(async move {
        let _ = conn.await;
        drop(guard);
    });
    Ok(NewConn::H2(sender))
}

/// A short, address-free description of a socket error for clients.
pub fn io_kind(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset",
        TimedOut => "timed out",
        AddrNotAvailable => "address not available",
        NotFound => "host not found",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        _ => "i/o error",
    }
}
