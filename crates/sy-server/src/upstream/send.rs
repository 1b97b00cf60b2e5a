//! `upstream::send`: one request to one chosen server over a pooled or new
//! connection, bounded by the upstream's response timeout.
//!
//! Input: a fully rewritten upstream request. Output: the response with a
//! body that returns its connection to the pool when read to the end.
//! HTTP/1.1 goes through our own client (`client::Conn`, driven by this
//! task); HTTP/2 and protocol switches through hyper.
//! Failure: a classified `ProxyError` (connect, tls, timeout,
//! upstream-protocol, body-too-large, client-abort).

use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version};
use sy_core::{ProxyError, Stage};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::body::{BodyTooLarge, ProxyBody};
use crate::client::{Conn, SendError};
use crate::io::ByteCounters;
use crate::live::pool::Checkout;
use crate::metrics::BREAKERS;
use crate::observe::Exchange;
use crate::upstream::connect::{NewConn, connect};
use crate::upstream::rt::{ServerRt, UpstreamRt};

/// Sends `req` to `server` and waits for the response head, at most
/// `timeout` (the upstream's response timeout, or a shorter per-try one).
pub async fn send(
    up: &UpstreamRt,
    server: &ServerRt,
    mut req: Request<ProxyBody>,
    timeout: Duration,
    ex: &Exchange,
) -> Result<Response<ProxyBody>, ProxyError> {
    let pool = &server.live.pool;
    let mut fresh_only = false;
    loop {
        let idle = if fresh_only { None } else { pool.take_idle() };
        let checkout = match idle {
            Some(c) => {
                server.metrics.reused.inc();
                c
            }
            None => {
                let slot = connect_slot(up)?;
                // Boxed: the connect path (TCP, TLS, handshakes) is large and cold;
                // inline, it would make every request's future that much bigger.
                let open = Some(&up.live.connections);
                let bytes = Some(ByteCounters {
                    read: server.metrics.bytes_received.clone(),
                    written: server.metrics.bytes_sent.clone(),
                });
                let t0 = std::time::Instant::now();
                let c = Box::pin(connect(&server.target, &up.transport, open, bytes)).await;
                ex.connected(t0.elapsed());
                drop(slot);
                let c = c?;
                server.metrics.opened.inc();
                match c {
                    NewConn::H1(conn) => Checkout::H1(conn),
                    NewConn::H2(sender) => {
                        pool.put_h2(sender.clone());
                        Checkout::H2(sender)
                    }
                }
            }
        };
        match checkout {
            Checkout::H1(conn) if req.headers().contains_key(header::UPGRADE) => {
                return Box::pin(upgrade(conn, req, timeout)).await;
            }
            Checkout::H1(conn) => {
                let reused = conn.reused();
                let fut = conn.send(&mut req, Some(pool.returner()));
                let res = match tokio::time::timeout(timeout, fut).await {
                    Ok(r) => r,
                    Err(_) => return Err(response_timeout(timeout)),
                };
                match res {
                    Ok(resp) => return Ok(resp.map(ProxyBody::Upstream)),
                    // A reused keep-alive connection the server closed just
                    // as we picked it: nothing was answered and the body is
                    // untouched, so the request may go again on a fresh one
                    // if it was not written at all or is idempotent.
                    Err(SendError::Closed {
                        unsent: true,
                        nothing_written,
                        ..
                    }) if reused && (nothing_written || req.method().is_idempotent()) => {
                        fresh_only = true;
                        continue;
                    }
                    Err(e) => return Err(classify_h1(e)),
                }
            }
            Checkout::H2(mut sender) => {
                if sender.ready().await.is_err() {
                    if fresh_only {
                        return Err(ProxyError::new(
                            Stage::Connect,
                            "http/2 connection to upstream closed",
                        ));
                    }
                    fresh_only = true;
                    continue;
                }
                to_h2_form(&mut req, up, server)?;
                let fut = sender.send_request(req);
                return match tokio::time::timeout(timeout, fut).await {
                    Err(_) => Err(response_timeout(timeout)),
                    Ok(Ok(resp)) => Ok(resp.map(ProxyBody::Stream)),
                    Ok(Err(e)) => Err(classify(&e)),
                };
            }
        }
    }
}

/// A protocol switch (WebSocket): the connection is handed to hyper, whose
/// upgrade machinery the tunnel in `http::proxy` uses. Cold, so boxed.
async fn upgrade(
    conn: Box<Conn>,
    req: Request<ProxyBody>,
    timeout: Duration,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (io, guard) = conn.into_io();
    let (mut sender, c) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ProxyError::new(Stage::Connect, format!("http/1 handshake failed: {e}")))?;
    tokio::spawn(async move {
        let _ = c.with_upgrades().await;
        drop(guard);
    });
    match tokio::time::timeout(timeout, sender.send_request(req)).await {
        Err(_) => Err(response_timeout(timeout)),
        Ok(Ok(resp)) => Ok(resp.map(ProxyBody::Stream)),
        Ok(Err(e)) => Err(classify(&e)),
    }
}

/// Maps an error of our HTTP/1.1 client to the stage that failed.
pub fn classify_h1(e: SendError) -> ProxyError {
    match e {
        SendError::Body(b) => {
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&*b);
            while let Some(s) = src {
                if let Some(t) = s.downcast_ref::<BodyTooLarge>() {
                    return ProxyError::new(Stage::BodyTooLarge, t.to_string());
                }
                src = s.source();
            }
            ProxyError::new(Stage::ClientAbort, "client request body ended early")
        }
        SendError::Closed { io, .. } => {
            use std::io::ErrorKind::*;
            let msg = match io {
                None | Some(ConnectionReset | BrokenPipe | UnexpectedEof | WriteZero) => {
                    "upstream closed the connection before answering"
                }
                Some(_) => "upstream connection failed",
            };
            ProxyError::new(Stage::UpstreamProtocol, msg)
        }
        SendError::Invalid(why) => ProxyError::new(
            Stage::UpstreamProtocol,
            format!("upstream sent an invalid response: {why}"),
        ),
    }
}

/// A request waiting for a new connection (`max_pending_requests`).
struct PendingSlot<'a>(&'a AtomicU64);

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Checks the connection breakers before a new connection is opened.
fn connect_slot(up: &UpstreamRt) -> Result<PendingSlot<'_>, ProxyError> {
    let b = &up.breaker;
    if let Some(max) = b.max_connections
        && up.live.connections.load(Ordering::Relaxed) >= max
    {
        up.metrics.trips[0].inc();
        return Err(ProxyError::breaker(
            BREAKERS[0],
            format!("upstream {} has {max} connections open", up.name),
        ));
    }
    let pending = up.live.pending.fetch_add(1, Ordering::Relaxed) + 1;
    let slot = PendingSlot(&up.live.pending);
    if let Some(max) = b.max_pending_requests
        && pending > max
    {
        up.metrics.trips[1].inc();
        return Err(ProxyError::breaker(
            BREAKERS[1],
            format!(
                "upstream {} has {max} requests waiting for a connection",
                up.name
            ),
        ));
    }
    Ok(slot)
}

/// Requests arrive in HTTP/1.1 form (origin-form URI, Host header): which
/// version a server speaks is only certain once a connection exists
/// (`protocol = "auto"` decides by ALPN). On an HTTP/2 connection, move the
/// Host into `:authority` and give the URI its scheme.
fn to_h2_form(
    req: &mut Request<ProxyBody>,
    up: &UpstreamRt,
    server: &ServerRt,
) -> Result<(), ProxyError> {
    let host = req.headers_mut().remove(header::HOST);
    let authority = host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .unwrap_or(server.target.authority.as_str());
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::builder()
        .scheme(up.scheme())
        .authority(authority)
        .path_and_query(pq)
        .build()
        .map_err(|_| ProxyError::new(Stage::BadRequest, "request authority is not valid"))?;
    *req.version_mut() = Version::HTTP_2;
    Ok(())
}

fn response_timeout(t: Duration) -> ProxyError {
    ProxyError::new(
        Stage::Timeout,
        format!("upstream did not answer within {t:?}"),
    )
}

fn refused_stream(e: &hyper::Error) -> bool {
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(h) = s.downcast_ref::<h2::Error>() {
            return h.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        src = s.source();
    }
    false
}

/// Maps a hyper client error to the stage that failed.
pub fn classify(e: &hyper::Error) -> ProxyError {
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(b) = s.downcast_ref::<BodyTooLarge>() {
            return ProxyError::new(Stage::BodyTooLarge, b.to_string());
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_body_write_aborted())
        {
            return ProxyError::new(Stage::ClientAbort, "client request body ended early");
        }
        src = s.source();
    }
    if e.is_user() {
        return ProxyError::new(Stage::ClientAbort, "client request body failed");
    }
    if refused_stream(e) {
        // The server promises it did not process the request (RFC 9113 8.7).
        return ProxyError {
            retry_safe: true,
            ..ProxyError::new(Stage::UpstreamProtocol, "upstream refused the stream")
        };
    }
    if e.is_timeout() {
        return ProxyError::new(Stage::Timeout, "upstream timed out");
    }
    let msg = if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        "upstream closed the connection before answering"
    } else if e.is_parse() {
        "upstream sent an invalid response"
    } else {
        "upstream connection failed"
    };
    ProxyError::new(Stage::UpstreamProtocol, msg)
}
