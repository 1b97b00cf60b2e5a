//! The parking path of HTTP/1.1 connections (cleartext and TLS): serve
//! with hyper while requests come; once idle for `PARK_AFTER`, drop
//! hyper's state and keep only the stream until the client sends again.
//! Upgrades on such connections are completed here (see `tunnel_manual`).

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::serve::{
    ConnBody, ConnState, Due, PARK_AFTER, Scan, Tracked, count, head_started, now_ms,
    rearm_earlier, record_conn_error, stopped,
};
use crate::http::proxy::ConnCtx;
use crate::io::Rewind;
use crate::shared::Shared;
use crate::snapshot::ListenerRt;

/// A client stream an idle HTTP/1.1 connection can be parked on: its TCP
/// socket says when the client sends again.
pub(super) trait ParkIo: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> &TcpStream;
    /// Data already taken off the socket that the next reader must see:
    /// TLS plaintext rustls decrypted but nobody read yet. Err: the TLS
    /// state is broken; close.
    fn has_buffered(&mut self) -> std::io::Result<bool>;
    /// Bytes queued to be sent (TLS records rustls produced on its own,
    /// e.g. the answer to a KeyUpdate).
    fn wants_write(&self) -> bool;
}

impl ParkIo for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
    fn has_buffered(&mut self) -> std::io::Result<bool> {
        Ok(false)
    }
    fn wants_write(&self) -> bool {
        false
    }
}

impl ParkIo for Box<tokio_rustls::server::TlsStream<TcpStream>> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
    fn has_buffered(&mut self) -> std::io::Result<bool> {
        // Processes nothing new (tokio-rustls processes every record it
        // reads); reports what is pending.
        let st = self
            .get_mut()
            .1
            .process_new_packets()
            .map_err(std::io::Error::other)?;
        Ok(st.plaintext_bytes_to_read() > 0 || st.peer_has_closed())
    }
    fn wants_write(&self) -> bool {
        self.get_ref().1.wants_write()
    }
}

/// HTTP/1.1, cleartext or TLS: serve with hyper while requests come; once
/// the connection has been idle for `PARK_AFTER`, let hyper finish without
/// closing the stream, drop its state (read and write buffers), and keep
/// only the stream (for TLS, rustls's session and its 4 KiB record buffer)
/// until the client sends again. An idle keep-alive connection then costs
/// about 1 KiB (cleartext) instead of about 26 KiB.
pub(super) async fn serve_h1_parking<T, S>(
    mut sock: T,
    builder: &hyper::server::conn::http1::Builder,
    svc: S,
    cx: &ConnCtx,
    lst: &ListenerRt,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
) where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = ConnBody> + Clone + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T: ParkIo,
{
    let state = &cx.state;
    let header = lst.cfg.request_header_timeout;
    let idle = lst.cfg.idle_timeout;
    let mut pre = Bytes::new();
    let mut scan = Some(Scan::new());
    // Counted in the parked gauge while it lives.
    let mut parked: Option<Parked<'_>> = None;
    loop {
        let buffered = match sock.has_buffered() {
            Ok(b) => b,
            Err(_) => return,
        };
        if pre.is_empty() && !buffered {
            // Parked (or fresh): wait for the next bytes, the idle timeout or shutdown.
            let (at, _) = state.deadline(header, idle, None);
            let wait = Duration::from_millis(at.saturating_sub(now_ms()));
            let sleep = tokio::time::sleep(wait);
            let mut sleep = std::pin::pin!(sleep);
            if sock.wants_write() {
                // TLS records rustls queued while hyper was idle.
                tokio::select! {
                    r = tokio::io::AsyncWriteExt::flush(&mut sock) => if r.is_err() { return },
                    _ = &mut sleep => return,
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
            tokio::select! {
                r = sock.tcp().readable() => if r.is_err() { return },
                _ = &mut sleep => return,
                _ = shutdown.wait_for(|s| *s) => return,
            }
            // For TLS these are record bytes: any of them (a request, an
            // alert, a KeyUpdate) wakes hyper, which parks again when no
            // request comes of them.
            let mut one = [0u8; 1];
            match sock.tcp().peek(&mut one).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        drop(parked.take());
        // Replayed bytes were scanned when first read: Rewind goes outside.
        let io = TokioIo::new(Rewind::new(
            std::mem::take(&mut pre),
            Tracked {
                inner: sock,
                state: state.clone(),
                scan: scan.take(),
            },
        ));
        let mut conn = Box::new(builder.serve_connection(io, svc.clone()));
        let park =
            match Box::pin(drive_parkable(&mut conn, state, lst, shared, &mut shutdown)).await {
                Some(park) => park,
                None => return,
            };
        let parts = conn.into_parts();
        let (rest, tracked) = parts.io.into_inner().into_inner();
        let Tracked {
            inner: stream,
            scan: kept,
            ..
        } = tracked;
        scan = kept;
        let mut buf = rest.map(|b| b.to_vec()).unwrap_or_default();
        buf.extend_from_slice(&parts.read_buf);
        let upgrade = cx
            .manual_upgrade
            .as_ref()
            .and_then(|slot| slot.lock().ok().and_then(|mut s| s.take()));
        if let Some(upstream) = upgrade {
            // Tracked again so the tunnel's bytes count for the listener
            // (`buf` was counted when it was first read).
            let tracked = Tracked {
                inner: stream,
                state: state.clone(),
                scan: None,
            };
            Box::pin(tunnel_manual(
                Rewind::new(Bytes::from(buf), tracked),
                upstream,
            ))
            .await;
            return;
        }
        if !park {
            // Finished (`Connection: close`, a timeout, shutdown): hyper was
            // driven without its own shutdown, so close the stream here; for
            // TLS this sends close_notify.
            let mut stream = stream;
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::io::AsyncWriteExt::shutdown(&mut stream),
            )
            .await;
            return;
        }
        // Copied so the large read buffer is freed.
        pre = Bytes::from(buf);
        sock = stream;
        parked.replace(Parked::new(&lst.metrics.parked));
    }
}

/// Holds a connection in the parked gauge.
struct Parked<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> Parked<'a> {
    fn new(g: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        g.inc();
        Parked(g)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Copies bytes both ways between the client's socket (after an upgrade
/// this connection completed itself) and the upgraded upstream connection.
async fn tunnel_manual<T: AsyncRead + AsyncWrite + Unpin>(
    mut client: Rewind<Tracked<T>>,
    upstream: hyper::upgrade::OnUpgrade,
) {
    let Ok(u) = upstream.await else { return };
    let mut u = TokioIo::new(u);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut u).await;
}

/// Drives a parkable HTTP/1.1 connection. Some(true): it stopped because we
/// asked it to park; Some(false): it finished (client closed, upgrade,
/// shutdown); None: it failed or the grace period ran out.
async fn drive_parkable<I, S>(
    conn: &mut hyper::server::conn::http1::Connection<I, S>,
    state: &ConnState,
    lst: &ListenerRt,
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<bool>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = ConnBody> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let header = lst.cfg.request_header_timeout;
    let idle = lst.cfg.idle_timeout;
    let (first, _) = state.deadline(header, idle, Some(PARK_AFTER));
    let sleep = tokio::time::sleep(Duration::from_millis(first.saturating_sub(now_ms())));
    let mut sleep = std::pin::pin!(sleep);
    // Our timer asked the connection to close: after a grace it is dropped.
    let mut closing = false;
    // Shutdown asked it to finish: the worker's drain deadline bounds that.
    let mut draining = false;
    let mut park = false;
    if *shutdown.borrow() {
        Pin::new(&mut *conn).graceful_shutdown();
        draining = true;
    }
    // Made once, not per wake-up (see `serve::drive`).
    let mut stop = std::pin::pin!(stopped(shutdown.clone()));
    let mut seen_head = state
        .first_byte_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    loop {
        tokio::select! {
            biased;
            res = std::future::poll_fn(|c| conn.poll_without_shutdown(c)) => {
                return match res {
                    Ok(()) => Some(park),
                    Err(e) => {
                        record_conn_error(shared, &lst.cfg.name, &e);
                        None
                    }
                };
            }
            _ = &mut stop, if !closing && !draining => {
                Pin::new(&mut *conn).graceful_shutdown();
                draining = true;
                park = false;
            }
            () = head_started(state, &mut seen_head), if !closing => {
                let (at, _) = state.deadline(header, idle, Some(PARK_AFTER));
                rearm_earlier(sleep.as_mut(), at);
            }
            _ = &mut sleep => {
                if closing {
                    return None;
                }
                let (at, due) = state.deadline(header, idle, Some(PARK_AFTER));
                let now = now_ms();
                if at <= now && due != Due::Busy {
                    if due == Due::HeaderTimeout {
                        count(shared, &lst.cfg.name, "header_timeout");
                    }
                    park = due == Due::Park;
                    Pin::new(&mut *conn).graceful_shutdown();
                    closing = true;
                    sleep.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(1));
                } else {
                    sleep.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(now).max(1)));
                }
            }
        }
    }
}
