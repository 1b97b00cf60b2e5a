//! Shared fixtures for the end-to-end tests: real backends on 127.0.0.1:0,
//! the real proxy (in-process or as the real binary), certificates, clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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
            let line = rx.recv_timeout(left).expect("binary did not report its listeners");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            let f = &v["fields"];
            match f["message"].as_str() {
                Some("listening") => {
                    let name = f["listener"].as_str().unwrap().to_string();
                    listeners.insert(name, f["addr"].as_str().unwrap().parse().unwrap());
                }
                Some("admin listening") => admin = Some(f["addr"].as_str().unwrap().parse().unwrap()),
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
