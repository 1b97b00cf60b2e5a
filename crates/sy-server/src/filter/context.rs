//! The one context every filter of a request reads and writes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Uri};

/// What the TLS handshake of the connection told.
#[derive(Debug, Clone, Default)]
pub struct TlsFacts {
    /// The server name the client asked for (SNI), lower-cased.
    pub sni: Option<Box<str>>,
    /// The protocol ALPN settled on ("h2", "http/1.1").
    pub alpn: Option<Box<[u8]>>,
}

/// What a CORS preflight asks for, as received.
#[derive(Debug, Clone)]
pub struct PreflightAsk {
    /// `Access-Control-Request-Method`.
    pub method: HeaderValue,
    /// `Access-Control-Request-Headers` (its lines joined with `,`); None
    /// when absent.
    pub headers: Option<HeaderValue>,
}

impl PreflightAsk {
    /// What the request asks for when it is a preflight: `OPTIONS` with
    /// `Origin` and `Access-Control-Request-Method`.
    pub fn of(method: &Method, headers: &http::HeaderMap) -> Option<Self> {
        let ask = headers.get(http::header::ACCESS_CONTROL_REQUEST_METHOD)?;
        if !sy_policy::cors::is_preflight(
            method.as_str(),
            headers.contains_key(http::header::ORIGIN),
            true,
        ) {
            return None;
        }
        let mut lines = headers
            .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter();
        let first = lines.next().cloned();
        let asked = match lines.next() {
            None => first,
            // Browsers send one line; more are joined.
            Some(second) => {
                let mut all = first.map(|f| f.as_bytes().to_vec()).unwrap_or_default();
                for l in std::iter::once(second).chain(lines) {
                    all.push(b',');
                    all.extend_from_slice(l.as_bytes());
                }
                HeaderValue::from_bytes(&all).ok()
            }
        };
        Some(PreflightAsk {
            method: ask.clone(),
            headers: asked,
        })
    }
}

/// One request, as its filters see it. Built only for a request whose
/// route (or listener) has filters: a route without filters never makes
/// one.
#[derive(Debug)]
pub struct RequestCx<'a> {
    /// The listener's name.
    pub listener: &'a str,
    /// The route's name; None when no route matched.
    pub route: Option<&'a str>,
    /// The TCP peer; on a `proxy_protocol` listener, the client the PROXY
    /// header named (the balancer's own address when it sent `LOCAL`).
    pub peer: SocketAddr,
    /// The client: the peer, or the client X-Forwarded-For names when the
    /// peer is one of the listener's trusted proxies.
    pub client_ip: IpAddr,
    /// `client_ip` as a header value, when the connection has it rendered
    /// already (the client is the peer); saves rendering it per request.
    pub client_ip_value: Option<&'a HeaderValue>,
    /// The peer is one of the listener's trusted proxies.
    pub trusted_peer: bool,
    /// TLS facts of the connection; None on a plain connection.
    pub tls: Option<&'a TlsFacts>,
    /// When the request head arrived.
    pub started: Instant,
    /// The W3C trace id, when tracing gave the request one.
    pub trace_id: Option<[u8; 16]>,
    /// The request method.
    pub method: Method,
    /// The request target as received (filters may rewrite the request's
    /// own; this one stays). Kept only when a filter of the chain reads it
    /// (`${path}`, see [`super::Chain::needs`]); None otherwise.
    pub uri: Option<Uri>,
    /// The host the client asked for (Host or `:authority`); only when a
    /// filter of the chain reads it (`${host}`).
    pub host: Option<HeaderValue>,
    /// The request's `Origin`, as received (before any filter ran); only
    /// when the chain has a `cors` filter.
    pub origin: Option<HeaderValue>,
    /// What a CORS preflight asks for; Some only for a preflight: `OPTIONS`
    /// with `Origin` and `Access-Control-Request-Method` (as received), and
    /// only when the chain has a `cors` filter.
    pub preflight: Option<PreflightAsk>,
    /// The request id, once a `request_id` filter set it.
    pub request_id: Option<HeaderValue>,
    /// The API consumer, once an authentication filter identified it.
    pub consumer: Option<Arc<str>>,
    /// The upstream whose answer is being returned (response phase).
    pub upstream: Option<&'a str>,
    /// The server whose answer is being returned (response phase).
    pub server: Option<&'a str>,
    /// What the client's `Accept-Encoding` accepts, once a `compress`
    /// filter read it in the request phase (the request itself is sent
    /// upstream unchanged). Each `compress` filter of the chain chooses
    /// among its own algorithms from it in the response phase.
    pub accept_encoding: Option<sy_policy::compress::Accepted>,
}

impl<'a> RequestCx<'a> {
    /// A context for a request to `listener` from `peer` (a test or a
    /// filter benchmark fills in the rest as it needs).
    pub fn new(listener: &'a str, peer: SocketAddr, method: Method, uri: Uri) -> Self {
        Self::at(listener, peer, method, Some(uri), Instant::now())
    }

    /// [`RequestCx::new`] for a request whose head arrived at `started`,
    /// keeping its target only when given.
    pub fn at(
        listener: &'a str,
        peer: SocketAddr,
        method: Method,
        uri: Option<Uri>,
        started: Instant,
    ) -> Self {
        RequestCx {
            listener,
            route: None,
            peer,
            client_ip: peer.ip(),
            client_ip_value: None,
            trusted_peer: false,
            tls: None,
            started,
            trace_id: None,
            method,
            uri,
            host: None,
            origin: None,
            preflight: None,
            request_id: None,
            consumer: None,
            upstream: None,
            server: None,
            accept_encoding: None,
        }
    }
}
