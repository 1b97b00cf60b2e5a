//! Test backends: plain HTTP/1.1 + h2c ([`Backend`] and its timing and
//! body variants), a silent server, a refused address, WebSocket and TLS
//! origins. All listen on 127.0.0.1:0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{tls_provider, write_cert};

/// A test backend: answers every request with its name in the body and in
/// `x-backend`, and echoes request facts in headers.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// An async request handler for [`Backend::start_async`].
pub type BackendHandler = Arc<
    dyn Fn(
            Request<Incoming>,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// A response body a [`Backend::start_streaming`] handler streams.
pub type StreamingBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// An async request handler for [`Backend::start_streaming`].
pub type StreamingHandler = Arc<
    dyn Fn(
            Request<Incoming>,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<StreamingBody>> + Send>>
        + Send
        + Sync,
>;

/// A body that sends `chunks` one frame each, yielding to the runtime
/// between them, so that they leave as separate writes.
pub fn chunked_body(chunks: Vec<Bytes>) -> StreamingBody {
    use futures_util::StreamExt;
    let frames = futures_util::stream::iter(chunks).then(|c| async move {
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(hyper::body::Frame::data(c))
    });
    BodyExt::boxed(http_body_util::StreamBody::new(frames))
}

/// The response a default [`Backend`] gives, with `body` as its body:
/// `x-backend`, `x-seen-path`, `x-seen-version` and `x-seen-NAME` for every
/// request header.
pub fn echo_response(name: &str, req: &http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .header("x-backend", name)
        .header("x-seen-path", req.uri.to_string())
        .header("x-seen-version", format!("{:?}", req.version));
    for (k, v) in &req.headers {
        b = b.header(format!("x-seen-{}", k.as_str()), v.clone());
    }
    b.body(Full::new(body)).unwrap()
}

impl Backend {
    /// Starts a backend speaking HTTP/1.1 and h2c (auto-detected).
    pub async fn start(name: &str) -> Backend {
        Self::start_with(name, Arc::new(|_req: &Request<Incoming>| None)).await
    }

    /// Starts a backend whose responses `custom` may override.
    pub async fn start_with(
        name: &str,
        custom: Arc<dyn Fn(&Request<Incoming>) -> Option<Response<Full<Bytes>>> + Send + Sync>,
    ) -> Backend {
        let n: Arc<str> = name.into();
        Self::start_async(
            name,
            Arc::new(move |req: Request<Incoming>| {
                let resp = match custom(&req) {
                    Some(r) => r,
                    None => {
                        let (parts, _) = req.into_parts();
                        echo_response(&n, &parts, Bytes::from(n.to_string()))
                    }
                };
                Box::pin(async move { resp })
            }),
        )
        .await
    }

    /// Starts a backend (HTTP/1.1 and h2c) whose every answer comes from the
    /// async `handler`; `hits` counts requests as they arrive.
    pub async fn start_async(name: &str, handler: BackendHandler) -> Backend {
        Self::serve(name, handler).await
    }

    /// Like [`Backend::start_async`], with bodies that stream: each frame
    /// of a [`StreamingBody`] is written as the handler produces it.
    pub async fn start_streaming(name: &str, handler: StreamingHandler) -> Backend {
        Self::serve(name, handler).await
    }

    async fn serve<B>(
        name: &str,
        handler: Arc<
            dyn Fn(
                    Request<Incoming>,
                )
                    -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<B>> + Send>>
                + Send
                + Sync,
        >,
    ) -> Backend
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let (addr, stop) = accept_loop(move |tcp| {
            let h = h.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                    .await;
            });
        })
        .await;
        Backend {
            name: name.to_string(),
            addr,
            hits,
            stop,
        }
    }

    /// Like [`Backend::start`], but every answer comes only after `delay`
    /// (a slow server, or with a long delay one that never answers).
    pub async fn start_delayed(name: &str, delay: Duration) -> Backend {
        let n: Arc<str> = name.into();
        Self::start_async(
            name,
            Arc::new(move |req: Request<Incoming>| {
                let n = n.clone();
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    let (parts, _) = req.into_parts();
                    echo_response(&n, &parts, Bytes::from(n.to_string()))
                })
            }),
        )
        .await
    }

    /// Like [`Backend::start`], but every request is held until `true` is
    /// sent on the returned gate (or the gate is dropped).
    pub async fn start_gated(name: &str) -> (Backend, tokio::sync::watch::Sender<bool>) {
        let (gate, rx) = tokio::sync::watch::channel(false);
        let n: Arc<str> = name.into();
        let b = Self::start_async(
            name,
            Arc::new(move |req: Request<Incoming>| {
                let n = n.clone();
                let mut rx = rx.clone();
                Box::pin(async move {
                    let _ = rx.wait_for(|open| *open).await;
                    let (parts, _) = req.into_parts();
                    echo_response(&n, &parts, Bytes::from(n.to_string()))
                })
            }),
        )
        .await;
        (b, gate)
    }

    /// A backend that reads the whole request body before answering and
    /// sends it back as the response body (headers as [`Backend::start`]).
    /// A body that fails to arrive is answered `400` with `x-body-error`.
    pub async fn start_body_echo(name: &str) -> Backend {
        let n: Arc<str> = name.into();
        Self::start_async(
            name,
            Arc::new(move |req: Request<Incoming>| {
                let n = n.clone();
                Box::pin(async move {
                    let (parts, body) = req.into_parts();
                    match body.collect().await {
                        Ok(b) => echo_response(&n, &parts, b.to_bytes()),
                        Err(e) => Response::builder()
                            .status(400)
                            .header("x-backend", &*n)
                            .header("x-body-error", "1")
                            .body(Full::new(Bytes::from(e.to_string())))
                            .unwrap(),
                    }
                })
            }),
        )
        .await
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting new connections.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// A TCP server that accepts connections and never reads or answers: an
/// upstream that hangs. Connections stay open until it is dropped.
pub struct Blackhole {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    pub async fn start() -> Blackhole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let a = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                held.push(tcp);
            }
        });
        Blackhole {
            addr,
            accepted,
            task,
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address on 127.0.0.1 where nothing listens (bound, then released).
pub fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// What a WebSocket echo backend saw in the upgrade request.
#[derive(Debug, Clone, Default)]
pub struct WsSeen {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// A WebSocket echo backend (tokio-tungstenite): echoes every text and
/// binary message, answers Close; records each handshake request.
pub struct WsBackend {
    pub addr: SocketAddr,
    pub seen: Arc<std::sync::Mutex<Vec<WsSeen>>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl WsBackend {
    pub async fn start() -> WsBackend {
        use futures_util::{SinkExt, StreamExt};
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let (addr, stop) = accept_loop(move |tcp| {
            let s = s.clone();
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)]
            let record = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                s.lock().unwrap().push(WsSeen {
                    path: req.uri().to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect(),
                });
                Ok(resp)
            };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, record).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                    // Close and ping are answered by tungstenite itself.
                }
            });
        })
        .await;
        WsBackend { addr, seen, stop }
    }
}

impl Drop for WsBackend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A TLS test backend (tokio-rustls + hyper): presents a self-signed
/// certificate for `names`, offers `alpn`, and answers like `Backend`, plus
/// `x-seen-sni` and `x-seen-alpn`.
pub struct TlsBackend {
    pub addr: SocketAddr,
    /// PEM file of its certificate (use as an upstream `ca`).
    pub cert_path: PathBuf,
    pub hits: Arc<AtomicUsize>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl TlsBackend {
    pub async fn start(name: &str, dir: &Path, names: &[&str], alpn: &[&str]) -> TlsBackend {
        use rustls::pki_types::pem::PemObject;
        let (cert_path, key_path, _) = write_cert(dir, &format!("backend-{name}"), names);
        let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
            rustls::pki_types::CertificateDer::pem_file_iter(&cert_path)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key_path).unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(tls_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let hits = Arc::new(AtomicUsize::new(0));
        let n: Arc<str> = name.into();
        let h = hits.clone();
        let (addr, stop) = accept_loop(move |tcp| {
            let acceptor = acceptor.clone();
            let n = n.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("").to_string();
                let alpn = tls
                    .get_ref()
                    .1
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default();
                let svc = service_fn(move |req: Request<Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    let mut b = Response::builder()
                        .header("x-backend", &*n)
                        .header("x-seen-path", req.uri().to_string())
                        .header("x-seen-version", format!("{:?}", req.version()))
                        .header("x-seen-sni", sni.as_str())
                        .header("x-seen-alpn", alpn.as_str());
                    for (k, v) in req.headers() {
                        b = b.header(format!("x-seen-{}", k.as_str()), v.clone());
                    }
                    let r = b.body(Full::new(Bytes::from(n.to_string()))).unwrap();
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        })
        .await;
        TlsBackend {
            addr,
            cert_path,
            hits,
            stop,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Binds 127.0.0.1:0 and hands every accepted connection to `on_conn`
/// until the returned sender is set (or dropped).
pub async fn accept_loop(
    on_conn: impl Fn(tokio::net::TcpStream) + Send + 'static,
) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                _ = stop_rx.changed() => return,
            };
            on_conn(tcp);
        }
    });
    (addr, stop)
}
