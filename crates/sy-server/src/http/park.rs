//! The parking path of HTTP/1.1 connections (cleartext and TLS): serve
//! with hyper while requests come; once idle for `PARK_AFTER`, drop
//! hyper's state and keep only the stream until the client sends again.
//! Upgrades on such connections are completed here (see `tunnel_manual`).

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::serve::{
    ConnBody, ConnState, ConnTimer, Due, PARK_AFTER, Scan, Svc, Tracked, conn_ctx, count,
    h1_builder, head_started, now_ms, record_conn_error,
};
use crate::conns::ConnGuard;
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
    /// The bare TCP stream of a cleartext connection, which can wait in
    /// the accept loop's lot (see `to_lot`); Err for TLS.
    fn into_plain(self) -> Result<TcpStream, Self>
    where
        Self: Sized;
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
    fn into_plain(self) -> Result<TcpStream, Self> {
        Ok(self)
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
    fn into_plain(self) -> Result<TcpStream, Self> {
        Err(self)
    }
}

/// An HTTP/1.1 connection between requests: what the spawned task keeps
/// while the connection is parked. Everything else (hyper's connection,
/// its buffers, the timers of an active connection) lives in a boxed
/// future that exists only while the client is sending or being answered.
pub(super) struct H1<T> {
    pub(super) sock: T,
    pub(super) cx: Arc<ConnCtx>,
    pub(super) shutdown: watch::Receiver<bool>,
    /// Bytes hyper read past the last request, replayed to the next
    /// connection state (already scanned).
    pub(super) pre: Bytes,
    pub(super) scan: Option<Scan>,
}

impl<T> H1<T> {
    /// A new connection: nothing read yet.
    pub(super) fn new(sock: T, cx: Arc<ConnCtx>, shutdown: watch::Receiver<bool>) -> Self {
        H1 {
            sock,
            cx,
            shutdown,
            pre: Bytes::new(),
            scan: Some(Scan::new()),
        }
    }
}

/// HTTP/1.1, cleartext or TLS: serve with hyper while requests come; once
/// the connection has been idle for `PARK_AFTER`, let hyper finish without
/// closing the stream, drop its state (read and write buffers, and the
/// whole future that drives it), and keep only an [`H1`] until the client
/// sends again. While parked the task waits on the socket's readiness and
/// on one entry in the accept loop's [`ParkWheel`], which closes it at its
/// idle timeout or when shutdown begins: no timer or shutdown future per
/// connection.
///
/// A cleartext connection that parks leaves its task altogether: its
/// socket waits in the accept loop's lot (see `to_lot`), and a new task
/// with a new context serves it when the client sends again.
pub(super) async fn serve_h1_parking<T: ParkIo>(
    mut c: H1<T>,
    wheel: Arc<ParkWheel>,
    mut guard: ConnGuard,
) {
    // Counted in the parked gauge while it lives.
    let mut parked: Option<Parked> = None;
    loop {
        let buffered = match c.sock.has_buffered() {
            Ok(b) => b,
            Err(_) => return,
        };
        if c.pre.is_empty() && !buffered && !wait_parked(&mut c, &wheel).await {
            return;
        }
        drop(parked.take());
        // Boxed: freed when the connection parks again.
        c = match Box::pin(active(c, &wheel)).await {
            Some(c) => c,
            None => return,
        };
        (c, guard) = match to_lot(c, &wheel, guard) {
            None => return,
            Some(kept) => kept,
        };
        parked = Some(Parked::new(&c.cx.listener.metrics.parked));
    }
}

/// Moves an idle cleartext connection out of its task into the accept
/// loop's lot: only its socket (deregistered from tokio's driver, so no
/// driver entry either), the client's address, its listener, when it
/// became idle and its open-connection guard stay, about 100 bytes. The
/// task and its context (`ConnCtx`, `ConnState`, the framing scanner)
/// are freed; `resumed` builds new ones when the client sends again.
/// Only a connection with nothing pending qualifies: no byte of a next
/// request read, the scanner between requests, no ambiguous head seen
/// (which rejects every later request on the connection). Some: it stays
/// in its task (TLS, such a connection, no lot).
fn to_lot<T: ParkIo>(
    c: H1<T>,
    wheel: &Arc<ParkWheel>,
    guard: ConnGuard,
) -> Option<(H1<T>, ConnGuard)> {
    let idle_since = match (&wheel.registry, &c.scan, c.cx.state.clean_idle()) {
        (Some(_), Some(scan), Some(since)) if c.pre.is_empty() && scan.is_idle() => since,
        _ => return Some((c, guard)),
    };
    let H1 {
        sock,
        cx,
        shutdown,
        pre,
        scan,
    } = c;
    let tcp = match sock.into_plain() {
        Ok(t) => t,
        Err(sock) => {
            let c = H1 {
                sock,
                cx,
                shutdown,
                pre,
                scan,
            };
            return Some((c, guard));
        }
    };
    let lst = &cx.listener;
    let (at, _) = cx
        .state
        .deadline(lst.cfg.request_header_timeout, lst.cfg.idle_timeout, None);
    // Deregisters it from tokio's driver. On failure it is closed, as an
    // idle keep-alive connection may be.
    if let Ok(sock) = tcp.into_std() {
        wheel.lot_insert(Lotted {
            sock,
            peer: cx.peer,
            lst: cx.listener.clone(),
            idle_since,
            at,
            guard,
        });
    }
    None
}

/// A cleartext connection waiting in the lot.
struct Lotted {
    sock: std::net::TcpStream,
    peer: std::net::SocketAddr,
    lst: Arc<ListenerRt>,
    /// When its last request ended (`now_ms` time).
    idle_since: u64,
    /// When its idle timeout closes it (`now_ms` time).
    at: u64,
    guard: ConnGuard,
}

impl Lotted {
    /// Leaves the parked gauge (and, when dropped, closes the socket).
    fn unpark(self) -> Self {
        self.lst.metrics.parked.dec();
        self
    }
}

/// Serves a connection the lot handed back (the client sent something, or
/// closed): a new task, with a new context.
async fn resumed(wheel: Arc<ParkWheel>, e: Lotted) {
    let Lotted {
        sock,
        peer,
        lst,
        idle_since,
        guard,
        ..
    } = e;
    let Ok(tcp) = TcpStream::from_std(sock) else {
        return;
    };
    let state = Arc::new(ConnState::idle_since(false, &lst.metrics, idle_since));
    let cx = conn_ctx(wheel.shared.clone(), lst, peer, false, None, state);
    let c = H1::new(tcp, cx, wheel.drain.clone());
    serve_h1_parking(c, wheel, guard).await;
}

/// Waits for the lot's sockets, in a task that runs while the lot has any:
/// hands each one the client sent something on (or closed) to a new task
/// (`resumed`), closes each at its idle timeout and all of them when
/// shutdown begins.
async fn lot_run(wheel: Arc<ParkWheel>, mut poller: AsyncFd<mio::Poll>) {
    const BATCH: usize = 64;
    let mut drain = wheel.drain.clone();
    let mut events = mio::Events::with_capacity(BATCH);
    loop {
        let mut due = Vec::new();
        let wait = {
            let mut g = wheel.lock();
            let now = now_ms();
            while let Some(&(at, token)) = g.lot_due.first() {
                if at > now {
                    break;
                }
                g.lot_due.pop_first();
                if let Some(e) = g.lot.try_remove(token) {
                    due.push(e);
                }
            }
            match g.lot_due.first() {
                Some(&(at, _)) => {
                    g.lot_wake_at = at;
                    at - now
                }
                None => {
                    // Empty: the next insertion starts another task.
                    g.lot_running = false;
                    g.lot_wake_at = u64::MAX;
                    g.poller = Some(poller);
                    drop(g);
                    for e in due {
                        drop(e.unpark());
                    }
                    return;
                }
            }
        };
        for e in due {
            drop(e.unpark());
        }
        tokio::select! {
            r = poller.readable_mut() => {
                let Ok(mut ready) = r else {
                    // The runtime is shutting down.
                    wheel.drain_lot();
                    return;
                };
                let mut polled = true;
                loop {
                    events.clear();
                    if ready.get_inner_mut().poll(&mut events, Some(Duration::ZERO)).is_err() {
                        polled = false;
                        break;
                    }
                    let mut n = 0;
                    for ev in events.iter() {
                        n += 1;
                        if let Some(e) = wheel.lot_take(ev.token().0) {
                            if let Some(r) = &wheel.registry {
                                let _ = r.deregister(&mut mio::unix::SourceFd(&e.sock.as_raw_fd()));
                            }
                            tokio::spawn(resumed(wheel.clone(), e.unpark()));
                        }
                    }
                    if n < BATCH {
                        break;
                    }
                }
                // Only once everything ready was taken (tokio keeps
                // readiness that arrived since).
                if polled {
                    ready.clear_ready();
                }
            }
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
            () = wheel.lot_earlier.notified() => {}
            // Shutdown began, or the control side is gone.
            _ = drain.wait_for(|s| *s) => {
                wheel.drain_lot();
                return;
            }
        }
    }
}

/// Parked (or fresh): waits for the next bytes (true), or the idle timeout,
/// shutdown, or the client closing (false). For TLS any record bytes wake
/// it (a request, an alert, a KeyUpdate); hyper then parks again when no
/// request comes of them.
async fn wait_parked<T: ParkIo>(c: &mut H1<T>, wheel: &Arc<ParkWheel>) -> bool {
    let lst = &c.cx.listener;
    let (at, _) =
        c.cx.state
            .deadline(lst.cfg.request_header_timeout, lst.cfg.idle_timeout, None);
    let mut entry = WheelEntry { wheel, key: None };
    let sock = &mut c.sock;
    std::future::poll_fn(|cx| {
        if now_ms() >= at || wheel.draining.load(Ordering::Relaxed) {
            return Poll::Ready(false);
        }
        // TLS records rustls queued while hyper was idle.
        if sock.wants_write()
            && let Poll::Ready(Err(_)) = Pin::new(&mut *sock).poll_flush(cx)
        {
            return Poll::Ready(false);
        }
        let mut one = [0u8; 1];
        let mut buf = tokio::io::ReadBuf::new(&mut one);
        match sock.tcp().poll_peek(cx, &mut buf) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(false),
            Poll::Ready(Ok(_)) => return Poll::Ready(true),
            Poll::Pending => {}
        }
        if entry.arm(at, cx.waker()) {
            Poll::Pending
        } else {
            Poll::Ready(false)
        }
    })
    .await
}

/// One request burst: hyper serves the connection until it can park
/// (Some, hyper's state dropped) or is done (None: closed, failed, shut
/// down, or handed over to an upgrade tunnel).
async fn active<T: ParkIo>(c: H1<T>, wheel: &Arc<ParkWheel>) -> Option<H1<T>> {
    let H1 {
        sock,
        cx,
        shutdown,
        pre,
        scan,
    } = c;
    let lst = &*cx.listener;
    let state = &cx.state;
    // Replayed bytes were scanned when first read: Rewind goes outside.
    let io = TokioIo::new(Rewind::new(
        pre,
        Tracked {
            inner: sock,
            state: state.clone(),
            scan,
        },
    ));
    let builder = h1_builder(&lst.cfg);
    let mut conn = builder.serve_connection(io, Svc(cx.clone()));
    let park = drive_parkable(&mut conn, state, lst, &cx.shared, &shutdown, wheel).await?;
    let parts = conn.into_parts();
    let (rest, tracked) = parts.io.into_inner().into_inner();
    let Tracked {
        inner: stream,
        scan,
        ..
    } = tracked;
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
        tunnel_manual(Rewind::new(Bytes::from(buf), tracked), upstream).await;
        return None;
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
        return None;
    }
    Some(H1 {
        sock: stream,
        cx: cx.clone(),
        shutdown,
        // Copied so the large read buffer is freed.
        pre: Bytes::from(buf),
        scan,
    })
}

/// The idle timeouts and the shutdown of the parked connections of one
/// accept loop. Each parked connection has one entry (its deadline and
/// waker); a sweeper task, running only while there are entries, wakes
/// those whose deadline has passed, and all of them (and refuses new ones)
/// once shutdown begins. One timer for the accept loop instead of a timer
/// and a shutdown waiter in every parked connection.
///
/// The same wheel keeps the accept loop's *lot*: the idle cleartext
/// connections that left their tasks (see `to_lot`), registered with a
/// poller of their own (an epoll instance registered with tokio's driver)
/// that one task waits on while the lot has any.
pub struct ParkWheel {
    inner: Mutex<WheelInner>,
    /// Process-wide state, for the context of a connection the lot hands
    /// back.
    shared: Arc<Shared>,
    /// Registers sockets with the lot's poller; None when no poller could
    /// be made (connections then park in their tasks).
    registry: Option<mio::Registry>,
    /// A lot entry earlier than the lot task's next wake-up was added.
    lot_earlier: tokio::sync::Notify,
    /// Shutdown began: parked connections close.
    draining: AtomicBool,
    drain: watch::Receiver<bool>,
    /// An entry earlier than the sweeper's next wake-up was added.
    earlier: tokio::sync::Notify,
}

struct WheelInner {
    /// (deadline in `now_ms` time, id) to the parked task's waker.
    entries: BTreeMap<(u64, u64), Waker>,
    next_id: u64,
    /// A sweeper task is running.
    sweeping: bool,
    /// When the sweeper wakes next (`now_ms` time).
    wake_at: u64,
    /// The lot's connections, by poller token.
    lot: slab::Slab<Lotted>,
    /// (idle deadline, token) of each, earliest first.
    lot_due: BTreeSet<(u64, usize)>,
    /// The lot's poller while no lot task runs (which owns it meanwhile).
    poller: Option<AsyncFd<mio::Poll>>,
    lot_running: bool,
    /// When the lot task wakes next (`now_ms` time).
    lot_wake_at: u64,
}

impl ParkWheel {
    /// A wheel whose connections close when `drain` turns true. Called
    /// inside the worker's runtime (the lot's poller registers with it).
    pub fn new(drain: watch::Receiver<bool>, shared: Arc<Shared>) -> Arc<Self> {
        let lot = mio::Poll::new().and_then(|p| {
            let registry = p.registry().try_clone()?;
            // SAFETY: `mio::Poll` owns its epoll descriptor, which stays
            // open and the same for as long as the `Poll` (here: the
            // `AsyncFd` that owns it) lives, and `as_raw_fd` returns it.
            #[allow(unsafe_code)]
            let fd = unsafe { AsyncFd::register_with_interest(p, tokio::io::Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
            Ok((fd, registry))
        });
        let (poller, registry) = match lot {
            Ok((p, r)) => (Some(p), Some(r)),
            Err(e) => {
                tracing::warn!(error = %e, "no poller for idle connections; they park in their tasks");
                (None, None)
            }
        };
        Arc::new(ParkWheel {
            inner: Mutex::new(WheelInner {
                entries: BTreeMap::new(),
                next_id: 0,
                sweeping: false,
                wake_at: u64::MAX,
                lot: slab::Slab::new(),
                lot_due: BTreeSet::new(),
                poller,
                lot_running: false,
                lot_wake_at: u64::MAX,
            }),
            shared,
            registry,
            lot_earlier: tokio::sync::Notify::new(),
            draining: AtomicBool::new(false),
            drain,
            earlier: tokio::sync::Notify::new(),
        })
    }

    /// Shutdown has begun (checked under the lock the drains take).
    fn shutting_down(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
            || *self.drain.borrow()
            || self.drain.has_changed().is_err()
    }

    /// Puts a connection in the lot (or closes it: shutdown has begun, or
    /// its socket cannot be registered).
    fn lot_insert(self: &Arc<Self>, e: Lotted) {
        let Some(registry) = &self.registry else {
            return;
        };
        let mut g = self.lock();
        if self.shutting_down() {
            drop(g);
            return;
        }
        let token = g.lot.vacant_key();
        let fd = e.sock.as_raw_fd();
        if registry
            .register(
                &mut mio::unix::SourceFd(&fd),
                mio::Token(token),
                mio::Interest::READABLE,
            )
            .is_err()
        {
            drop(g);
            return;
        }
        let at = e.at;
        e.lst.metrics.parked.inc();
        // The key `vacant_key` gave: nothing was inserted since, under the lock.
        let token = g.lot.insert(e);
        g.lot_due.insert((at, token));
        if !g.lot_running {
            if let Some(p) = g.poller.take() {
                g.lot_running = true;
                g.lot_wake_at = at;
                tokio::spawn(lot_run(self.clone(), p));
            }
        } else if at < g.lot_wake_at {
            g.lot_wake_at = at;
            self.lot_earlier.notify_one();
        }
    }

    /// Takes a connection out of the lot.
    fn lot_take(&self, token: usize) -> Option<Lotted> {
        let mut g = self.lock();
        let e = g.lot.try_remove(token)?;
        g.lot_due.remove(&(e.at, token));
        Some(e)
    }

    /// Closes every connection in the lot and refuses new ones.
    fn drain_lot(&self) {
        let lot = {
            let mut g = self.lock();
            self.draining.store(true, Ordering::Relaxed);
            g.lot_due.clear();
            g.lot_running = false;
            std::mem::take(&mut g.lot)
        };
        for (_, e) in lot {
            drop(e.unpark());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WheelInner> {
        // The lock guards no invariant a panic could break half-way.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds an entry; None when shutdown has begun (the connection closes).
    fn insert(self: &Arc<Self>, at: u64, waker: &Waker) -> Option<(u64, u64)> {
        let mut g = self.lock();
        // Checked under the lock the sweeper takes to wake everyone, so no
        // entry is added after that.
        if self.shutting_down() {
            return None;
        }
        let key = (at, g.next_id);
        g.next_id += 1;
        g.entries.insert(key, waker.clone());
        if !g.sweeping {
            g.sweeping = true;
            g.wake_at = at;
            tokio::spawn(sweep(self.clone()));
        } else if at < g.wake_at {
            g.wake_at = at;
            self.earlier.notify_one();
        }
        Some(key)
    }

    /// Wakes every parked connection and refuses new entries.
    fn drain_all(&self) {
        let entries = {
            let mut g = self.lock();
            self.draining.store(true, Ordering::Relaxed);
            g.sweeping = false;
            std::mem::take(&mut g.entries)
        };
        for (_, w) in entries {
            w.wake();
        }
    }
}

/// Wakes parked connections at their deadlines, and all of them at
/// shutdown. Ends when no entry is left (the next one starts another).
async fn sweep(wheel: Arc<ParkWheel>) {
    let mut drain = wheel.drain.clone();
    loop {
        let mut due = Vec::new();
        let wait = {
            let mut g = wheel.lock();
            let now = now_ms();
            while let Some(e) = g.entries.first_entry() {
                if e.key().0 > now {
                    break;
                }
                due.push(e.remove());
            }
            match g.entries.first_key_value() {
                Some((&(at, _), _)) => {
                    g.wake_at = at;
                    at - now
                }
                None => {
                    g.sweeping = false;
                    g.wake_at = u64::MAX;
                    0
                }
            }
        };
        for w in due {
            w.wake();
        }
        if wait == 0 {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
            () = wheel.earlier.notified() => {}
            // Shutdown began, or the control side is gone.
            _ = drain.wait_for(|s| *s) => {
                wheel.drain_all();
                return;
            }
        }
    }
}

/// Resolves when shutdown begins (or the control side is gone), for a
/// connection that is being served: it has an entry without a deadline in
/// the accept loop's wheel, which the sweeper wakes when the drain starts.
/// Polling it costs one atomic load; a `watch` future in its place cost
/// about 500 instructions a request, as a connection's `select!` polls it
/// at every wake-up.
pub(super) fn drained(wheel: &Arc<ParkWheel>) -> impl std::future::Future<Output = ()> + '_ {
    let mut entry = WheelEntry { wheel, key: None };
    std::future::poll_fn(move |cx| {
        if wheel.draining.load(Ordering::Relaxed) {
            return Poll::Ready(());
        }
        // Registered once: a task's waker stays the same.
        if entry.key.is_none() && !entry.arm(u64::MAX, cx.waker()) {
            return Poll::Ready(());
        }
        Poll::Pending
    })
}

/// A parked connection's entry in the wheel, removed when it stops waiting.
struct WheelEntry<'a> {
    wheel: &'a Arc<ParkWheel>,
    key: Option<(u64, u64)>,
}

impl WheelEntry<'_> {
    /// Adds the entry, or updates its waker. False: shutdown has begun.
    fn arm(&mut self, at: u64, waker: &Waker) -> bool {
        match self.key {
            None => match self.wheel.insert(at, waker) {
                Some(k) => {
                    self.key = Some(k);
                    true
                }
                None => false,
            },
            Some(k) => {
                let mut g = self.wheel.lock();
                if let Some(w) = g.entries.get_mut(&k)
                    && !w.will_wake(waker)
                {
                    w.clone_from(waker);
                }
                true
            }
        }
    }
}

impl Drop for WheelEntry<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.wheel.lock().entries.remove(&k);
        }
    }
}
/// Holds a connection in the parked gauge.
struct Parked(prometheus_client::metrics::gauge::Gauge);

impl Parked {
    fn new(g: &prometheus_client::metrics::gauge::Gauge) -> Self {
        g.inc();
        Parked(g.clone())
    }
}

impl Drop for Parked {
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
    shutdown: &watch::Receiver<bool>,
    wheel: &Arc<ParkWheel>,
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
    let sleep = std::pin::pin!(sleep);
    let mut timer = ConnTimer::new(sleep, first);
    // Our timer asked the connection to close: after a grace it is dropped.
    let mut closing = false;
    // Shutdown asked it to finish: the worker's drain deadline bounds that.
    let mut draining = false;
    let mut park = false;
    if *shutdown.borrow() {
        Pin::new(&mut *conn).graceful_shutdown();
        draining = true;
    }
    let mut stop = std::pin::pin!(drained(wheel));
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
                timer.earlier(at);
            }
            _ = timer.sleep.as_mut() => {
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
                    timer.set(now + 1000);
                } else {
                    timer.set(at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn returns, without calling it.
    fn future_size<A, B, C, R>(_: fn(A, B, C) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// A connection task's allocation is the size of its whole future, so
    /// the parking loop must keep everything large (hyper's connection,
    /// timers) in the boxed active phase.
    #[test]
    fn parked_connection_future_is_small() {
        let plain = future_size(serve_h1_parking::<TcpStream>);
        let tls = future_size(serve_h1_parking::<Box<tokio_rustls::server::TlsStream<TcpStream>>>);
        eprintln!("serve_h1_parking future: plain {plain} B, tls {tls} B");
        assert!(plain <= 640, "plain: {plain} B");
        assert!(tls <= 640, "tls: {tls} B");
    }
}
