//! End to end: the `compress` filter with a real client. curl decodes the
//! bodies (`--compressed`) for gzip, br and zstd, over HTTP/1.1 and h2c,
//! and they are compared byte for byte with what the backend sent in
//! many chunks; the responses that must not be compressed arrive exactly
//! as the backend sent them; a slow event stream reaches the client event
//! by event, each decodable before the next is produced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper::body::Incoming;

const CURL: &str = "/usr/bin/curl";

/// Every wait of a test is bounded by this (curl's `--max-time` too).
const DEADLINE: Duration = Duration::from_secs(30);

fn curl_bin() -> &'static str {
    assert!(
        Path::new(CURL).exists(),
        "these tests need curl (built with brotli and zstd) at {CURL}: `apt-get install curl`; .ci/run installs it"
    );
    CURL
}

/// A JSON document of about 300 KiB, the same every run.
fn json() -> Vec<u8> {
    let mut out = b"[".to_vec();
    for i in 0..2500u32 {
        if i > 0 {
            out.push(b',');
        }
        let item = format!(
            r#"{{"id":{i},"name":"item-{i}","price":{}.{:02},"tags":["t{}","t{}"],"description":"Item {i} of the catalogue, kept in warehouse {}."}}"#,
            i * 7 % 500,
            i % 100,
            i % 13,
            i % 29,
            i % 5,
        );
        out.extend_from_slice(item.as_bytes());
    }
    out.push(b']');
    out
}

/// HTML-like text of `n` bytes.
fn html(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(format!("<p class=\"row\">Row {i}: lorem ipsum</p>\n").as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn full(b: Vec<u8>) -> StreamingBody {
    Full::new(Bytes::from(b))
        .map_err(|never| match never {})
        .boxed()
}

/// A backend answering by path; `/events` waits for `gate` between its
/// two events. Every response carries `x-seen-accept-encoding`.
async fn origin(gate: Arc<tokio::sync::Semaphore>) -> Backend {
    Backend::start_streaming(
        "origin",
        Arc::new(move |req: hyper::Request<Incoming>| {
            let gate = gate.clone();
            Box::pin(async move {
                let seen = req
                    .headers()
                    .get("accept-encoding")
                    .cloned()
                    .unwrap_or_else(|| http::HeaderValue::from_static("-"));
                let b = Response::builder().header("x-seen-accept-encoding", seen);
                let doc = json();
                let chunks = || doc.chunks(16 * 1024).map(Bytes::copy_from_slice).collect();
                let resp = match req.uri().path() {
                    "/doc.json" => b
                        .header("content-type", "application/json")
                        .header("etag", "\"doc-v1\"")
                        .header("vary", "Origin")
                        .body(chunked_body(chunks())),
                    "/doc-with-length.json" => b
                        .header("content-type", "application/json; charset=utf-8")
                        .header("content-length", doc.len())
                        .body(chunked_body(chunks())),
                    "/events" => {
                        let frames = futures_util::stream::unfold(0, move |n| {
                            let gate = gate.clone();
                            async move {
                                match n {
                                    0 => Some((Bytes::from_static(b"data: one\n\n"), 1)),
                                    1 => {
                                        gate.acquire().await.unwrap().forget();
                                        Some((Bytes::from_static(b"data: two\n\n"), 2))
                                    }
                                    _ => None,
                                }
                            }
                        });
                        let frames = futures_util::StreamExt::map(frames, |c| {
                            Ok::<_, Infallible>(hyper::body::Frame::data(c))
                        });
                        b.header("content-type", "text/event-stream")
                            .header("cache-control", "no-cache")
                            .body(BodyExt::boxed(http_body_util::StreamBody::new(frames)))
                    }
                    "/partial" => b
                        .status(206)
                        .header("content-type", "text/html")
                        .header("content-range", "bytes 0-4095/100000")
                        .body(full(html(4096))),
                    "/encoded" => b
                        .header("content-type", "text/html")
                        .header("content-encoding", "gzip")
                        .body(full(gzip(&html(50_000)))),
                    "/no-transform" => b
                        .header("content-type", "text/html")
                        .header("cache-control", "public, no-transform")
                        .body(full(html(50_000))),
                    "/small" => b.header("content-type", "text/html").body(full(html(500))),
                    "/image" => b
                        .header("content-type", "image/png")
                        .body(full(html(50_000))),
                    _ => b.status(404).body(full(Vec::new())),
                };
                resp.unwrap()
            })
        }),
    )
    .await
}

fn config(b: &Backend) -> String {
    format!(
        "{}{}",
        Preamble::default(),
        route_all(&servers(&[b]), r#"filters = [{ compress = {} }]"#, "")
    )
}

/// What curl received.
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} repeated: {all:?}");
        all.first().copied()
    }
}

/// The headers curl dumped: the last response's (after any 1xx).
fn parse_headers(text: &str) -> (u16, Vec<(String, String)>) {
    let block = text
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("");
    let mut lines = block.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

/// Runs curl on `url` with `args`; the body is what curl wrote (decoded
/// when `--compressed` is among `args`).
async fn curl(args: &[&str], url: String) -> Got {
    let bin = curl_bin();
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head");
    let body = dir.path().join("body");
    let mut cmd = Command::new(bin);
    cmd.args(["--silent", "--show-error", "--max-time", "30"])
        .arg("--dump-header")
        .arg(&head)
        .arg("--output")
        .arg(&body)
        .args(args)
        .arg(&url);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?} {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, headers) = parse_headers(&std::fs::read_to_string(&head).unwrap());
    Got {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_decodes_each_coding_to_the_bytes_the_backend_sent() {
    let b = origin(Arc::new(tokio::sync::Semaphore::new(0))).await;
    let p = Proxy::start(&config(&b));
    let doc = json();
    assert!(doc.len() > 250 * 1024);
    for (accept, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        // curl's own list (deflate, gzip, br, zstd): the server's order.
        ("", "zstd"),
        ("gzip, br", "br"),
        ("gzip;q=1, zstd;q=0.5", "gzip"),
        ("br;q=0.2, zstd;q=0.9, gzip;q=0.1", "zstd"),
    ] {
        for http in ["--http1.1", "--http2-prior-knowledge"] {
            let header = format!("Accept-Encoding: {accept}");
            let mut args = vec!["--compressed", http];
            if !accept.is_empty() {
                args.extend(["-H", &header]);
            }
            let got = curl(&args, p.url("main", "/doc.json")).await;
            let what = format!("{accept:?} {http}");
            assert_eq!(got.status, 200, "{what}");
            assert_eq!(got.one("content-encoding"), Some(coding), "{what}");
            assert_eq!(got.body.len(), doc.len(), "{what}: decoded length");
            assert!(got.body == doc, "{what}: decoded body differs");
            assert_eq!(got.one("vary"), Some("Origin, Accept-Encoding"), "{what}");
            assert_eq!(got.one("etag"), Some("W/\"doc-v1\""), "{what}");
            assert_eq!(got.one("content-length"), None, "{what}");
            // The request went upstream as the client sent it.
            let sent = if accept.is_empty() {
                None
            } else {
                Some(accept)
            };
            if let Some(a) = sent {
                assert_eq!(got.one("x-seen-accept-encoding"), Some(a), "{what}");
            }
        }
    }
    // A declared length is dropped with the coding; the compressed body is
    // far smaller on the wire.
    let raw = curl(
        &["-H", "Accept-Encoding: zstd"],
        p.url("main", "/doc-with-length.json"),
    )
    .await;
    assert_eq!(raw.one("content-encoding"), Some("zstd"));
    assert_eq!(raw.one("content-length"), None);
    assert!(raw.body.len() < doc.len() / 4, "{} bytes", raw.body.len());
    assert_eq!(zstd::decode_all(&raw.body[..]).unwrap(), doc);

    let counted = |encoding: &'static str, direction: &'static str| {
        let p = &p;
        async move {
            scrape_metric(
                p,
                "switchyard_compression_bytes_total",
                &[
                    ("route", "all"),
                    ("encoding", encoding),
                    ("direction", direction),
                ],
            )
            .await
        }
    };
    assert!(
        scrape_metric(
            &p,
            "switchyard_compressed_responses_total",
            &[("route", "all"), ("encoding", "br")]
        )
        .await
            >= 4.0
    );
    // zstd: asked for, curl's list, preferred by q, each over HTTP/1.1
    // and h2c; and the raw request.
    assert_eq!(counted("zstd", "in").await, 7.0 * doc.len() as f64);
    assert!(counted("zstd", "out").await < counted("zstd", "in").await / 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_that_must_not_be_compressed_pass_unchanged() {
    let b = origin(Arc::new(tokio::sync::Semaphore::new(0))).await;
    let p = Proxy::start(&config(&b));
    let doc = json();
    let accept = ["-H", "Accept-Encoding: gzip, br, zstd"];

    // HEAD: the GET's headers, uncompressed, with Vary for caches.
    let got = curl(
        &["--head", accept[0], accept[1]],
        p.url("main", "/doc-with-length.json"),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.one("content-encoding"), None);
    assert_eq!(
        got.one("content-length"),
        Some(doc.len().to_string().as_str())
    );
    assert_eq!(got.one("vary"), Some("Accept-Encoding"));

    // The client excludes every coding: identity, with Vary.
    let got = curl(
        &["-H", "Accept-Encoding: gzip;q=0, br;q=0, zstd;q=0"],
        p.url("main", "/doc.json"),
    )
    .await;
    assert_eq!(got.one("content-encoding"), None);
    assert!(got.body == doc, "q=0: body differs");
    assert_eq!(got.one("vary"), Some("Origin, Accept-Encoding"));
    assert_eq!(got.one("etag"), Some("\"doc-v1\""), "a strong ETag stays");

    // No Accept-Encoding at all.
    let got = curl(&["-H", "Accept-Encoding:"], p.url("main", "/doc.json")).await;
    assert_eq!(got.one("content-encoding"), None);
    assert!(got.body == doc, "no Accept-Encoding: body differs");

    // (path, expected body, Content-Encoding as the backend set it)
    let cases: [(&str, Vec<u8>, Option<&str>); 5] = [
        ("/partial", html(4096), None),
        ("/encoded", gzip(&html(50_000)), Some("gzip")),
        ("/no-transform", html(50_000), None),
        ("/small", html(500), None),
        ("/image", html(50_000), None),
    ];
    for (path, want, encoding) in cases {
        // Without --compressed: the exact bytes on the wire.
        let got = curl(&accept, p.url("main", path)).await;
        assert_eq!(got.one("content-encoding"), encoding, "{path}");
        assert!(got.body == want, "{path}: body changed on the way");
        assert_eq!(got.one("vary"), None, "{path}");
    }
    // The already encoded body still decodes to its text.
    let got = curl(
        &["--compressed", accept[0], accept[1]],
        p.url("main", "/encoded"),
    )
    .await;
    assert!(got.body == html(50_000));
    assert_eq!(
        scrape_metric(&p, "switchyard_compressed_responses_total", &[]).await,
        0.0
    );
}

/// One event reaches the client, decoded, while the backend is still
/// waiting to send the next: the encoder flushes when its input pauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_is_delivered_event_by_event() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let b = origin(gate.clone()).await;
    let p = Proxy::start(&config(&b));
    for coding in ["gzip", "br", "zstd"] {
        let dir = tempfile::tempdir().unwrap();
        let head = dir.path().join("head");
        let mut child = Command::new(curl_bin())
            .args([
                "--silent",
                "--show-error",
                "--no-buffer",
                "--max-time",
                "30",
            ])
            .args(["--compressed", "-H", &format!("Accept-Encoding: {coding}")])
            .arg("--dump-header")
            .arg(&head)
            .arg(p.url("main", "/events"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let reader = tokio::task::spawn_blocking(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let mut first_tx = Some(first_tx);
            loop {
                let n = stdout.read(&mut buf).unwrap();
                if n == 0 {
                    return seen;
                }
                seen.extend_from_slice(&buf[..n]);
                if seen.starts_with(b"data: one\n\n")
                    && let Some(tx) = first_tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        let first = tokio::time::timeout(DEADLINE, first_rx).await;
        assert!(
            matches!(first, Ok(Ok(()))),
            "{coding}: the first event did not reach the client while the second was held back"
        );
        gate.add_permits(1);
        let all = tokio::time::timeout(DEADLINE, reader)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&all), "data: one\n\ndata: two\n\n");
        assert!(child.wait().unwrap().success());
        let (status, headers) = parse_headers(&std::fs::read_to_string(&head).unwrap());
        assert_eq!(status, 200);
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "content-encoding" && v == coding),
            "{coding}: {headers:?}"
        );
    }
}
