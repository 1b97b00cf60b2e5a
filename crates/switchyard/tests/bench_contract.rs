//! End to end: `bench/candidate.sh`, the entry point the benchmark harness
//! and outside checks start Switchyard through, run with the real binary
//! against a real backend. `SCENARIO=plain` proxies; `SCENARIO=edge` adds a
//! request id, CORS for https://app.example with credentials, compression
//! and an IP allow list (default 127.0.0.0/8 and ::1, or the file
//! `ALLOW_CIDRS_FILE` names).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::Response;

/// Longest the script may take to start serving (it may build nothing:
/// `SWITCHYARD_BIN` is the test binary).
const START: Duration = Duration::from_secs(30);

/// The running script; killed when dropped.
struct Candidate {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Candidate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port of 127.0.0.1 free a moment ago (the script needs a fixed
/// `LISTEN`, as the harness gives it).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts `bench/candidate.sh` with `env` and waits until it accepts.
async fn candidate(upstream: SocketAddr, env: &[(&str, &str)]) -> Candidate {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/candidate.sh");
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut cmd = Command::new("sh");
    cmd.arg(&script)
        .env("SWITCHYARD_BIN", bin())
        .env("LISTEN", addr.to_string())
        .env("UPSTREAMS", upstream.to_string())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + START;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("bench/candidate.sh exited: {status}");
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bench/candidate.sh did not listen on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The temp dir holds only the written config, read at start.
    drop(tmp);
    Candidate { child, addr }
}

/// A backend like the harness's origins: `/small` (100 bytes of text) and
/// `/text` (8 KiB of text); everything else echoes.
async fn origin() -> Backend {
    Backend::start_with(
        "a",
        Arc::new(|req| {
            let body = match req.uri().path() {
                "/small" => "x".repeat(100),
                "/text" => "switchyard edge text; ".repeat(400),
                _ => return None,
            };
            let seen_id = req
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            Some(
                Response::builder()
                    .header("content-type", "text/plain")
                    .header("x-origin", "a")
                    .header("x-seen-x-request-id", seen_id)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap(),
            )
        }),
    )
    .await
}

#[tokio::test]
async fn plain_scenario_proxies() {
    let be = origin().await;
    let c = candidate(be.addr, &[("SCENARIO", "plain")]).await;
    let r = within(
        "GET /small",
        client().get(format!("http://{}/small", c.addr)).send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_none());
    assert_eq!(r.bytes().await.unwrap().len(), 100);
}

#[tokio::test]
async fn edge_scenario_has_request_ids_cors_compression_and_the_allow_list() {
    let be = origin().await;
    let c = candidate(be.addr, &[("SCENARIO", "edge")]).await;
    let http = client();
    let url = |p: &str| format!("http://{}{p}", c.addr);

    // A request id, generated, sent upstream and returned.
    let r = within("GET /small", http.get(url("/small")).send())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = header(&r, "x-request-id").to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(header(&r, "x-seen-x-request-id"), id);
    assert_eq!(r.bytes().await.unwrap().len(), 100);

    // A preflight from the allowed origin is answered here, with credentials.
    let hits = be.hits();
    let r = within(
        "preflight",
        http.request(reqwest::Method::OPTIONS, url("/small"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), "true");
    assert_eq!(be.hits(), hits, "the preflight reached the upstream");

    // An actual request from the allowed origin gets CORS headers; one from
    // another origin gets none.
    let r = within(
        "allowed origin",
        http.get(url("/small"))
            .header("origin", "https://app.example")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "https://app.example"
    );
    assert!(header(&r, "vary").to_ascii_lowercase().contains("origin"));
    let r = within(
        "other origin",
        http.get(url("/small"))
            .header("origin", "https://evil.example")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // Text is compressed with the coding the client prefers.
    let plain = "switchyard edge text; ".repeat(400);
    for (coding, decode) in [
        ("zstd", decode_zstd as fn(&[u8]) -> Vec<u8>),
        ("br", decode_br),
        ("gzip", decode_gzip),
    ] {
        let r = within(
            coding,
            http.get(url("/text"))
                .header("accept-encoding", coding)
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "content-encoding"), coding);
        let body = r.bytes().await.unwrap();
        assert!(
            body.len() < plain.len() / 4,
            "{coding}: {} bytes",
            body.len()
        );
        assert_eq!(decode(&body), plain.as_bytes(), "{coding}");
    }
}

#[tokio::test]
async fn edge_scenario_reads_the_allow_list_file() {
    let be = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "# not loopback\n10.0.0.0/8\n2001:db8::/32\n").unwrap();
    let c = candidate(
        be.addr,
        &[
            ("SCENARIO", "edge"),
            ("ALLOW_CIDRS_FILE", outside.to_str().unwrap()),
        ],
    )
    .await;
    let r = within(
        "refused",
        client().get(format!("http://{}/small", c.addr)).send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "x-switchyard-error"), "forbidden");
    assert_eq!(be.hits(), 0);
    drop(c);

    let inside = dir.path().join("inside.txt");
    std::fs::write(&inside, "10.0.0.0/8\n127.0.0.0/8\n").unwrap();
    let c = candidate(
        be.addr,
        &[
            ("SCENARIO", "edge"),
            ("ALLOW_CIDRS_FILE", inside.to_str().unwrap()),
        ],
    )
    .await;
    let r = within(
        "allowed",
        client().get(format!("http://{}/small", c.addr)).send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
}

fn decode_zstd(b: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(b).unwrap()
}

fn decode_gzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn decode_br(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}
