//! PROXY protocol headers (HAProxy's `proxy-protocol.txt`, versions 1 and
//! 2): the bytes a layer-4 balancer sends first on a connection to say
//! which client it carries.
//!
//! The byte-level parsing of each version is the `ppp` crate's. This module
//! adds what a server reading a socket needs around it:
//!
//! - where the header ends, so the reader consumes exactly the header and
//!   not a byte of what follows it (a TLS ClientHello, an HTTP request);
//! - an early verdict: bytes that cannot begin a header are refused at once,
//!   not after a timeout; a v1 line has at most 107 bytes and a v2 header
//!   at most [`MAX_LEN`];
//! - the one fact Switchyard uses: the client's address, or none (keep the
//!   TCP peer) for a v2 `LOCAL` header (the balancer's own health check), a
//!   v1 `UNKNOWN` one, or a v2 family without an IP address (`UNSPEC`,
//!   `AF_UNIX`).
//!
//! v2 TLVs are walked to check their lengths add up (a header whose TLVs
//! overrun it is malformed), and otherwise ignored. An IPv4-mapped IPv6
//! source (`::ffff:192.0.2.1`) is returned as the IPv4 address, so IP rules
//! and forwarding headers see one form of each client.
//!
//! [`parse`] never panics and does not allocate.

use std::net::{IpAddr, SocketAddr};

/// What a version 1 header starts with.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// The signature a version 2 header starts with.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v2 header's fixed part: signature, version and command, family and
/// protocol, and the length of the rest.
const V2_FIXED_LEN: usize = 16;

/// The longest v1 header, CRLF included (the specification's limit).
pub const V1_MAX_LEN: usize = 107;

/// The longest header accepted, a v2 header with its TLVs. The
/// specification lets a v2 header be 64 KiB long; what balancers send in
/// practice (addresses, an AWS VPC endpoint id, HAProxy's SSL TLVs with a
/// client certificate's common name) is a few hundred bytes.
pub const MAX_LEN: usize = 4096;

/// What [`parse`] concluded from the first bytes of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// Not enough bytes yet. Every byte given belongs to the header, so a
    /// reader may consume them all and wait for more.
    Incomplete,
    /// A whole header: its first `len` bytes; the bytes after it are the
    /// connection's own.
    Complete {
        /// The header's length in bytes.
        len: usize,
        /// What it says.
        header: Header,
    },
    /// Not an acceptable header: close the connection.
    Invalid(Invalid),
}

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 1 (text) or 2 (binary).
    pub version: u8,
    /// Whose connection this is.
    pub source: Source,
}

/// Whose connection a header says this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The balancer relays this client's connection.
    Client(SocketAddr),
    /// v2 `LOCAL`: the balancer's own connection (a health check); the TCP
    /// peer stays the client.
    Local,
    /// No usable address (v1 `UNKNOWN`, v2 `UNSPEC` or `AF_UNIX`): the TCP
    /// peer stays the client.
    Unknown,
}

/// Why bytes are not an acceptable header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The bytes begin with neither version's signature: the client sent
    /// no header (plain HTTP, a TLS ClientHello).
    Missing,
    /// A header that breaks the specification: a bad address, port,
    /// protocol, version or command, a line not ending in CRLF, TLVs that
    /// overrun the header.
    Malformed,
    /// A v1 line without CRLF in its first 107 bytes, or a v2 header longer
    /// than [`MAX_LEN`].
    TooLong,
}

impl Invalid {
    /// A short lower-case token for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Missing => "missing",
            Invalid::Malformed => "malformed",
            Invalid::TooLong => "too_long",
        }
    }
}

/// Reads the header at the start of `buf`, the bytes received so far.
pub fn parse(buf: &[u8]) -> Parse {
    match buf.first() {
        None => Parse::Incomplete,
        Some(b'P') => v1(buf),
        Some(b'\r') => v2(buf),
        Some(_) => Parse::Invalid(Invalid::Missing),
    }
}

/// True when `buf` and `prefix` agree on their common length.
fn agrees(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

fn printable(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| (0x20..=0x7e).contains(b))
}

fn v1(buf: &[u8]) -> Parse {
    if !agrees(buf, V1_PREFIX) {
        return Parse::Invalid(Invalid::Missing);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(nl) = memchr::memchr(b'\n', window) else {
        if buf.len() >= V1_MAX_LEN {
            return Parse::Invalid(Invalid::TooLong);
        }
        // A CR may only be the last byte so far (the LF still to come).
        let text = buf.strip_suffix(b"\r").unwrap_or(buf);
        if !printable(text) {
            return Parse::Invalid(Invalid::Malformed);
        }
        return Parse::Incomplete;
    };
    let len = nl + 1;
    let line = &buf[..len];
    let Some(text) = line.strip_suffix(b"\r\n") else {
        return Parse::Invalid(Invalid::Malformed);
    };
    if !printable(text) {
        return Parse::Invalid(Invalid::Malformed);
    }
    let Ok(h) = ppp::v1::Header::try_from(line) else {
        return Parse::Invalid(Invalid::Malformed);
    };
    // ppp reads up to the first CR; with no other CR in the line, that is
    // the CRLF found above.
    if h.header.len() != len {
        return Parse::Invalid(Invalid::Malformed);
    }
    let source = match h.addresses {
        ppp::v1::Addresses::Tcp4(a) => client(a.source_address.into(), a.source_port),
        ppp::v1::Addresses::Tcp6(a) => client(a.source_address.into(), a.source_port),
        ppp::v1::Addresses::Unknown => Source::Unknown,
    };
    Parse::Complete {
        len,
        header: Header { version: 1, source },
    }
}

fn v2(buf: &[u8]) -> Parse {
    if !agrees(buf, V2_SIGNATURE) {
        return Parse::Invalid(Invalid::Missing);
    }
    // The version is known at byte 12: refuse a wrong one without waiting
    // for the rest.
    if let Some(&vc) = buf.get(V2_SIGNATURE.len())
        && vc >> 4 != 2
    {
        return Parse::Invalid(Invalid::Malformed);
    }
    let Some(&[.., hi, lo]) = buf.get(..V2_FIXED_LEN) else {
        return Parse::Incomplete;
    };
    let len = V2_FIXED_LEN + usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_LEN {
        return Parse::Invalid(Invalid::TooLong);
    }
    let Some(bytes) = buf.get(..len) else {
        return Parse::Incomplete;
    };
    let Ok(h) = ppp::v2::Header::try_from(bytes) else {
        return Parse::Invalid(Invalid::Malformed);
    };
    if h.tlvs().any(|tlv| tlv.is_err()) {
        return Parse::Invalid(Invalid::Malformed);
    }
    let source = match (h.command, h.addresses) {
        (ppp::v2::Command::Local, _) => Source::Local,
        (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
            client(a.source_address.into(), a.source_port)
        }
        (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
            client(a.source_address.into(), a.source_port)
        }
        (ppp::v2::Command::Proxy, _) => Source::Unknown,
    };
    Parse::Complete {
        len,
        header: Header { version: 2, source },
    }
}

fn client(ip: IpAddr, port: u16) -> Source {
    Source::Client(SocketAddr::new(ip.to_canonical(), port))
}

#[cfg(test)]
mod tests;
