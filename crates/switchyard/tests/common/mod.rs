//! Shared fixtures for the end-to-end tests: real backends on 127.0.0.1:0,
//! the real proxy (in-process or as the real binary), certificates, clients.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A test backend: answers every request with its name in the body and in
/// `x-backend`, and echoes request facts in headers.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    stop: tokio::sync::watch::Sender<bool>,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let n: Arc<str> = name.into();
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop_rx.changed() => return,
                };
                let n = n.clone();
                let h = h.clone();
                let custom = custom.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let n = n.clone();
                        h.fetch_add(1, Ordering::SeqCst);
                        let custom = custom.clone();
                        async move {
                            if let Some(r) = custom(&req) {
                                return Ok::<_, Infallible>(r);
                            }
                            let mut b = Response::builder()
                                .header("x-backend", &*n)
                                .header("x-seen-path", req.uri().to_string())
                                .header("x-seen-version", format!("{:?}", req.version()));
                            for (k, v) in req.headers() {
                                b = b.header(format!("x-seen-{}", k.as_str()), v.clone());
                            }
                            Ok(b.body(Full::new(Bytes::from(n.to_string()))).unwrap())
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Backend {
            name: name.to_string(),
            addr,
            hits,
            stop,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting new connections.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// A running in-process proxy and the temp dir holding its config.
pub struct Proxy {
    pub handle: sy_server::ServerHandle,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Proxy {
    /// Writes `toml` to a temp file and starts the proxy on it.
    pub fn start(toml: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("switchyard.toml");
        std::fs::write(&config_path, toml).unwrap();
        let cfg = match sy_config::load(&config_path) {
            Ok(c) => c,
            Err(d) => panic!("test config invalid:\n{d}"),
        };
        let handle = sy_server::start(
            cfg,
            sy_server::Options {
                config_path: Some(config_path.clone()),
                handle_signals: false,
            },
        )
        .unwrap();
        Proxy {
            handle,
            dir,
            config_path,
        }
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        self.handle.listener_addr(listener).expect("listener bound")
    }

    pub fn url(&self, listener: &str, path: &str) -> String {
        format!("http://{}{}", self.addr(listener), path)
    }

    pub fn admin(&self) -> SocketAddr {
        self.handle.admin_addr().expect("admin bound")
    }

    /// Replaces the config file's content (does not reload).
    pub fn write_config(&self, toml: &str) {
        std::fs::write(&self.config_path, toml).unwrap();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// `"a:1", "b:2"` for a TOML array of servers.
pub fn servers(backends: &[&Backend]) -> String {
    backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A minimal config: one listener on port 0, one route to upstream "u".
pub fn simple_config(backends: &[&Backend], upstream_extra: &str) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
drain_timeout = "5s"
watch_config = false
[listeners.main]
address = "127.0.0.1:0"
[[routes]]
name = "all"
upstream = "u"
[upstreams.u]
servers = [{}]
{upstream_extra}
"#,
        servers(backends)
    )
}

/// A plain HTTP client (HTTP/1.1 keep-alive).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Polls `f` until it returns true or the deadline passes.
pub async fn eventually(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A self-signed certificate for `names`, written as PEM into `dir`.
pub fn write_cert(dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf, Vec<u8>) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(names).unwrap();
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().to_vec())
}

/// Reads a whole body.
pub async fn body_string(b: Incoming) -> String {
    String::from_utf8_lossy(&b.collect().await.unwrap().to_bytes()).into_owned()
}

/// Path of the built `switchyard` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

/// The real binary, started with a config file; reads its stderr to learn
/// the bound addresses.
pub struct Binary {
    pub child: std::process::Child,
    pub listeners: std::collections::HashMap<String, SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
}

impl Binary {
    pub fn start(toml: &str, expect_listeners: usize) -> Binary {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, toml).unwrap();
        let mut child = std::process::Command::new(bin())
            .args(["run", "-c"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .env("SWITCHYARD_LOG_FORMAT", "json")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let mut listeners = std::collections::HashMap::new();
        let mut admin = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while listeners.len() < expect_listeners || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("binary did not report its listeners");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let f = &v["fields"];
            match f["message"].as_str() {
                Some("listening") => {
                    let name = f["listener"].as_str().unwrap().to_string();
                    listeners.insert(name, f["addr"].as_str().unwrap().parse().unwrap());
                }
                Some("admin listening") => {
                    admin = Some(f["addr"].as_str().unwrap().parse().unwrap())
                }
                _ => {}
            }
        }
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Binary {
            child,
            listeners,
            admin,
            dir,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap()
    }

    /// Waits for exit and returns the exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("binary did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// TLS and WebSocket fixtures (protocols.rs, streaming.rs).

/// The rustls crypto provider the tests use (explicit: more than one
/// provider is compiled in, so rustls cannot pick a process default).
pub fn tls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let n: Arc<str> = name.into();
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop_rx.changed() => return,
                };
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
            }
        });
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

/// Accepts any server certificate: the TLS tests compare the presented
/// certificate's DER themselves.
#[derive(Debug)]
pub struct AcceptAnyCert;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &tls_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &tls_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        tls_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client config that accepts any certificate, offers `alpn` and
/// speaks only `versions` (e.g. `&[&rustls::version::TLS12]`).
pub fn tls_client(
    alpn: &[&str],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let mut cfg = rustls::ClientConfig::builder_with_provider(tls_provider())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// Connects to `addr` and runs a TLS handshake presenting `sni` (None: no
/// SNI at all). Fails with the handshake error.
pub async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    sni: Option<&str>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name = match sni {
        // An IP address as the server name makes rustls send no SNI.
        None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
        Some(n) => rustls::pki_types::ServerName::try_from(n.to_string()).unwrap(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("tls handshake timed out"))?
}

/// DER of the leaf certificate the server presented.
pub fn peer_leaf_der(s: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    s.get_ref()
        .1
        .peer_certificates()
        .expect("server sent a certificate")[0]
        .to_vec()
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop_rx.changed() => return,
                };
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
            }
        });
        WsBackend { addr, seen, stop }
    }
}

impl Drop for WsBackend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

// ---------------------------------------------------------------------------
// Backends with custom timing or body handling, a silent server, a raw
// HTTP/1.1 client and a metrics scraper (used by balancing, routing, errors).
// ---------------------------------------------------------------------------

/// An async request handler for [`Backend::start_async`].
pub type BackendHandler = Arc<
    dyn Fn(
            Request<Incoming>,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

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
    /// Starts a backend (HTTP/1.1 and h2c) whose every answer comes from the
    /// async `handler`; `hits` counts requests as they arrive.
    pub async fn start_async(name: &str, handler: BackendHandler) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop_rx.changed() => return,
                };
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
            }
        });
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

/// One response read by [`RawHttp`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line, e.g. `HTTP/1.1 100 Continue`.
    pub status_line: String,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A hand-driven HTTP/1.1 client connection: writes exactly the given bytes
/// and parses responses (interim 1xx ones one at a time). Every read has a
/// 10 s deadline.
pub struct RawHttp {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

const RAW_DEADLINE: Duration = Duration::from_secs(10);

impl RawHttp {
    pub async fn connect(addr: SocketAddr) -> RawHttp {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        RawHttp {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more bytes into the buffer; false at end of stream.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> bool {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            // A reset after the peer's last bytes: nothing more to read.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Ok(Err(e)) => panic!("raw read failed: {e}"),
            Err(_) => panic!(
                "no complete response within {RAW_DEADLINE:?}; got so far: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Takes one CRLF-terminated line from the buffer, reading as needed.
    async fn line(&mut self, deadline: tokio::time::Instant) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(
                self.fill(deadline).await,
                "connection closed mid-line; got: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    async fn exact(&mut self, n: usize, deadline: tokio::time::Instant) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill(deadline).await, "connection closed mid-body");
        }
        self.buf.drain(..n).collect()
    }

    /// True when the peer has closed the connection (after any buffered
    /// bytes), waiting at most 10 s.
    pub async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + RAW_DEADLINE;
        self.buf.is_empty() && !self.fill(deadline).await
    }

    /// Reads one response: head, then the body framed by its
    /// Content-Length, chunked encoding, or the end of the connection.
    pub async fn read_response(&mut self) -> RawResponse {
        let deadline = tokio::time::Instant::now() + RAW_DEADLINE;
        while !self.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(
                self.fill(deadline).await,
                "connection closed before a response head; got: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        let status_line = self.line(deadline).await;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let l = self.line(deadline).await;
            if l.is_empty() {
                break;
            }
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {l:?}"));
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let mut resp = RawResponse {
            status,
            status_line,
            headers,
            body: Vec::new(),
        };
        if status < 200 || status == 204 || status == 304 {
            return resp;
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            loop {
                let size_line = self.line(deadline).await;
                let hex = size_line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(hex, 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
                if size == 0 {
                    // Trailers, up to an empty line.
                    while !self.line(deadline).await.is_empty() {}
                    break;
                }
                let data = self.exact(size, deadline).await;
                resp.body.extend_from_slice(&data);
                let crlf = self.line(deadline).await;
                assert!(crlf.is_empty(), "chunk not followed by CRLF");
            }
        } else if let Some(n) = resp.header("content-length") {
            let n: usize = n.parse().unwrap();
            resp.body = self.exact(n, deadline).await;
        } else {
            while self.fill(deadline).await {}
            resp.body = std::mem::take(&mut self.buf);
        }
        resp
    }
}

/// The value of one Prometheus sample in `text` (`name` exactly, with all
/// of `labels`), summed over matching series; 0.0 when absent.
pub fn metric_in(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, lbls) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap_or(rest)),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        let pairs = parse_labels(lbls);
        if labels
            .iter()
            .all(|(k, v)| pairs.iter().any(|(pk, pv)| pk == k && pv == v))
        {
            sum += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((k, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(if e == 'n' { '\n' } else { e });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((k.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    out
}

/// Scrapes the proxy's admin `/metrics` and returns one sample's value
/// (see [`metric_in`]).
pub async fn scrape_metric(proxy: &Proxy, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = client()
        .get(format!("http://{}/metrics", proxy.admin()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric_in(&text, name, labels)
}

// ---------------------------------------------------------------------------
// Admin helpers by address (reload.rs, lifecycle.rs: the real binary has no
// `Proxy`).
// ---------------------------------------------------------------------------

/// GETs `path` on the admin listener at `admin`: status and body.
pub async fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("http://{admin}{path}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// Scrapes `/metrics` on the admin listener at `admin` and returns one
/// sample's value (see [`metric_in`]).
pub async fn scrape_metric_at(admin: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (status, text) = admin_get(admin, "/metrics").await;
    assert_eq!(status, 200, "GET /metrics failed: {text}");
    metric_in(&text, name, labels)
}

/// Waits until the admin listener answers `/healthz`. The admin API is
/// served by the control thread, which installs the signal handlers and the
/// file watcher before it serves anything: once this returns, signals and
/// file changes are handled.
pub async fn wait_admin_ready(admin: SocketAddr) {
    eventually(
        "admin /healthz answers",
        Duration::from_secs(20),
        async || match client().get(format!("http://{admin}/healthz")).send().await {
            Ok(r) => r.status() == 200,
            Err(_) => false,
        },
    )
    .await;
}

impl Binary {
    /// Path of the config file the binary was started with (rewrite it,
    /// then send SIGHUP to reload).
    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("switchyard.toml")
    }

    /// Bound address of listener `name`.
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        *self.listeners.get(name).expect("listener reported")
    }
}
