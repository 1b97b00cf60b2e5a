//! A backend that can be killed like a crashed process (listener and every
//! open connection closed at once) and started again on the same address.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::{JoinHandle, JoinSet};

use super::{BackendHandler, echo_response};

/// How long [`KillableBackend::start_on`] keeps trying to bind an address
/// that is still held (e.g. by a socket the kernel has not released yet).
const REBIND: Duration = Duration::from_secs(10);

/// A test backend (HTTP/1.1 and h2c) answering like [`super::Backend`]
/// (its name in the body and in `x-backend`). [`KillableBackend::kill`]
/// (or dropping it) closes the listener and every open connection, so
/// in-flight requests fail and the port refuses connections;
/// [`KillableBackend::start_on`] brings a backend up on the same address.
pub struct KillableBackend {
    pub name: String,
    pub addr: SocketAddr,
    /// Requests received.
    pub hits: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<JoinSet<()>>>,
}

impl KillableBackend {
    /// Starts on a fresh port of 127.0.0.1.
    pub async fn start(name: &str) -> KillableBackend {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on `addr` (e.g. the address of a killed backend), retrying
    /// for a while if the address is still in use.
    pub async fn start_on(name: &str, addr: SocketAddr) -> KillableBackend {
        let n: Arc<str> = name.into();
        Self::start_with_handler(
            name,
            addr,
            Arc::new(move |req: Request<Incoming>| {
                let (parts, _) = req.into_parts();
                let resp = echo_response(&n, &parts, Bytes::from(n.to_string()));
                Box::pin(async move { resp })
            }),
        )
        .await
    }

    /// Starts on `addr` with every answer coming from `handler`.
    pub async fn start_with_handler(
        name: &str,
        addr: SocketAddr,
        handler: BackendHandler,
    ) -> KillableBackend {
        let deadline = Instant::now() + REBIND;
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot bind {addr} for backend {name}: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let (h, set) = (hits.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let h = h.clone();
                let handler = handler.clone();
                let mut set = set.lock().unwrap();
                // Forget connections that have ended.
                while set.try_join_next().is_some() {}
                set.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        h.fetch_add(1, Ordering::SeqCst);
                        let fut = handler(req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        KillableBackend {
            name: name.to_string(),
            addr,
            hits,
            accept,
            conns,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Closes the listener and every open connection, and waits until they
    /// are closed: afterwards the port refuses connections.
    pub async fn kill(mut self) {
        self.accept.abort();
        // Resolves once the task (and its listener) has been dropped.
        let _ = (&mut self.accept).await;
        let mut set = std::mem::take(&mut *self.conns.lock().unwrap());
        set.shutdown().await;
    }
}

impl Drop for KillableBackend {
    fn drop(&mut self) {
        self.accept.abort();
        if let Ok(mut set) = self.conns.lock() {
            set.abort_all();
        }
    }
}
