//! `[listeners.NAME]`: addresses, TLS and forwarding headers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use super::{FilterRef, IpFilter, ser};

/// `[listeners.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listener {
    /// The table name.
    pub name: String,
    /// `address`, e.g. "127.0.0.1:8080".
    pub address: SocketAddr,
    /// `[listeners.NAME.tls]`; None = plaintext (HTTP/1.1 and h2c by prior knowledge).
    pub tls: Option<ListenerTls>,
    /// `request_header_timeout`: time to receive a complete request head
    /// (slowloris defence). Default 10s.
    #[serde(serialize_with = "ser::duration")]
    pub request_header_timeout: Duration,
    /// `idle_timeout`: keep-alive connection idle time. Default 60s.
    #[serde(serialize_with = "ser::duration")]
    pub idle_timeout: Duration,
    /// `max_request_header_bytes`: total size of the request head; larger
    /// gets 431. Default 64KiB.
    pub max_request_header_bytes: u64,
    /// `max_request_headers`: number of request header fields; more gets
    /// 431. Default 100.
    pub max_request_headers: usize,
    /// `max_connections`: concurrent connections; 0 = unlimited. Default 0.
    pub max_connections: usize,
    /// `http2`: accept HTTP/2 (h2c prior knowledge on plaintext, ALPN "h2"
    /// on TLS). Default true.
    pub http2: bool,
    /// `proxy_protocol`: every connection starts with a PROXY protocol
    /// header (v1 or v2), read before TLS and HTTP within
    /// `request_header_timeout`; the client it names is the connection's
    /// client for the `ip` lists, forwarding headers, filters and logs. A
    /// connection without a valid header is closed. Default false.
    pub proxy_protocol: bool,
    /// `[listeners.NAME.forwarded]`.
    pub forwarded: Forwarded,
    /// `[listeners.NAME.ip]`: allow and deny lists checked on the TCP peer
    /// right after accept, before TLS and before any byte is read (with
    /// `proxy_protocol`: on the client the header names, once it is read);
    /// a refused connection is closed and counted. Default none.
    pub ip: Option<IpFilter>,
    /// `filters`: run on every request of the listener, before the route's
    /// own filters, and on answers no route gave (404, 400). Default none.
    pub filters: Vec<FilterRef>,
}

/// `[listeners.NAME.tls]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerTls {
    /// `certificates`: at least one; chosen by SNI against `server_names`.
    pub certificates: Vec<Certificate>,
    /// `default_certificate`: index into `certificates` used when SNI is
    /// absent or matches nothing. From the key `default_certificate` (a
    /// certificate's `name`); default: the first certificate.
    pub default_certificate: usize,
    /// `min_version`: "1.2" (default) or "1.3".
    pub min_version: TlsVersion,
}

/// One entry of `certificates`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Certificate {
    /// `name`: optional label; default "cert-N" (N = index).
    pub name: String,
    /// `cert`: PEM chain path (relative paths resolve against the config
    /// file's directory). Re-read on every reload.
    pub cert: PathBuf,
    /// `key`: PEM private key path.
    pub key: PathBuf,
    /// `server_names`: exact names or `*.example.com` wildcards this
    /// certificate serves. May be empty for a default-only certificate.
    pub server_names: Vec<String>,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    V1_3,
}

/// `[listeners.NAME.forwarded]`: how X-Forwarded-* and `Forwarded` are set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forwarded {
    /// `trusted_proxies`: CIDRs whose incoming X-Forwarded-For / Forwarded
    /// are kept and appended to. From anyone else they are replaced.
    /// Default empty (trust nobody).
    #[serde(serialize_with = "ser::display_seq")]
    pub trusted_proxies: Vec<IpNet>,
    /// `x_forwarded`: set X-Forwarded-For/-Proto/-Host. Default true.
    pub x_forwarded: bool,
    /// `forwarded`: set the RFC 7239 `Forwarded` header. Default false.
    #[serde(rename = "forwarded")]
    pub rfc7239: bool,
    /// `via`: add a `Via` header (request and response). Default true.
    pub via: bool,
}
