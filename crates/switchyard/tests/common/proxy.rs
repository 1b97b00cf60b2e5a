//! The in-process proxy and its admin API (also reached by address, for
//! the real binary): metrics scraping, readiness.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{client, eventually};

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
