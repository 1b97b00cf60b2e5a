//! End to end, with the real binary: request and response bodies stream
//! through the proxy in bounded memory. 1 GiB each way, generated and
//! counted on the fly (the test never holds a body), and a download whose
//! client stops reading for a while: back-pressure must reach the backend
//! instead of the proxy buffering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Binary;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const CHUNK: usize = 64 * 1024;

/// Peak RSS allowed for the proxy process while moving 1 GiB. The body is
/// 16x larger than this, so buffering it (or any large part of it) fails;
/// the measured peak of the debug binary is far below (see the report).
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// What a whole test may take; every wait below is bounded by it.
const DEADLINE: Duration = Duration::from_secs(120);

/// A chunk with a recognisable, position-independent pattern.
fn chunk() -> Bytes {
    Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Counts and generates bodies: `POST /upload` answers with the number of
/// request body bytes it read; `GET /download/N` streams N bytes, counting
/// what it has handed to the connection in `produced`.
struct Origin {
    addr: SocketAddr,
    produced: Arc<AtomicU64>,
}

async fn origin() -> Origin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let produced = Arc::new(AtomicU64::new(0));
    let p = produced.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let p = p.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let p = p.clone();
                    async move { Ok::<_, Infallible>(serve(req, p).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Origin { addr, produced }
}

async fn serve(req: Request<Incoming>, produced: Arc<AtomicU64>) -> Response<BoxBody> {
    let path = req.uri().path().to_string();
    if path == "/upload" {
        let mut body = req.into_body();
        let mut n: u64 = 0;
        let mut frames: u64 = 0;
        while let Some(f) = body.frame().await {
            let Ok(f) = f else {
                return Response::builder()
                    .status(500)
                    .body(Full::new(Bytes::from("upload body failed")).boxed())
                    .unwrap();
            };
            if let Some(d) = f.data_ref() {
                n += d.len() as u64;
                frames += 1;
            }
        }
        return Response::builder()
            .header("x-frames", frames.to_string())
            .body(Full::new(Bytes::from(n.to_string())).boxed())
            .unwrap();
    }
    if let Some(n) = path.strip_prefix("/download/") {
        let total: u64 = n.parse().unwrap();
        let c = chunk();
        let stream = futures_util::stream::unfold(0u64, move |sent| {
            let c = c.clone();
            let produced = produced.clone();
            async move {
                if sent >= total {
                    return None;
                }
                let len = (total - sent).min(CHUNK as u64) as usize;
                produced.fetch_add(len as u64, Ordering::SeqCst);
                Some((
                    Ok::<_, Infallible>(Frame::data(c.slice(..len))),
                    sent + len as u64,
                ))
            }
        });
        return Response::builder()
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap();
    }
    Response::builder()
        .status(404)
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}

fn config(origin: SocketAddr) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
drain_timeout = "5s"
watch_config = false
log_level = "warn"
[listeners.main]
address = "127.0.0.1:0"
[[routes]]
name = "all"
upstream = "u"
[upstreams.u]
servers = ["{origin}"]
response_timeout = "120s"
"#
    )
}

fn start_proxy(origin: SocketAddr) -> Binary {
    Binary::start(&config(origin), 1)
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

/// The next chunk of a download, failing the test if it stalls.
async fn next<S>(stream: &mut S) -> Option<Bytes>
where
    S: futures_util::Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("download stalled")
        .map(Result::unwrap)
}

fn report(what: &str, bin: &Binary, bytes: u64, started: Instant) {
    let peak = bin.peak_rss_kib();
    eprintln!(
        "{what}: {} MiB in {:.1}s, proxy peak RSS {} KiB ({:.1} MiB)",
        bytes / MIB,
        started.elapsed().as_secs_f64(),
        peak,
        peak as f64 / 1024.0
    );
    assert!(
        peak < RSS_BOUND_KIB,
        "{what}: proxy peak RSS {peak} KiB exceeds {RSS_BOUND_KIB} KiB: the body was buffered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_1gib_streams_in_bounded_memory() {
    let o = origin().await;
    let bin = start_proxy(o.addr);
    let addr = bin.listeners["main"];
    let before = bin.peak_rss_kib();
    eprintln!("proxy peak RSS after start: {before} KiB");

    let c = chunk();
    let chunks = GIB / CHUNK as u64;
    let body =
        futures_util::stream::iter(0..chunks).map(move |_| Ok::<_, std::io::Error>(c.clone()));
    let started = Instant::now();
    let resp = tokio::time::timeout(
        DEADLINE,
        http_client()
            .post(format!("http://{addr}/upload"))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    )
    .await
    .expect("upload timed out")
    .unwrap();
    assert_eq!(resp.status(), 200);
    let count: u64 = resp.text().await.unwrap().parse().unwrap();
    assert_eq!(
        count, GIB,
        "the backend must receive every byte exactly once"
    );
    report("upload", &bin, GIB, started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_1gib_streams_in_bounded_memory() {
    let o = origin().await;
    let bin = start_proxy(o.addr);
    let addr = bin.listeners["main"];

    let started = Instant::now();
    let resp = http_client()
        .get(format!("http://{addr}/download/{GIB}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = Box::pin(resp.bytes_stream());
    let expect = chunk();
    let mut n: u64 = 0;
    let mut checked_first = false;
    loop {
        let next = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("download stalled");
        let Some(b) = next else { break };
        let b = b.unwrap();
        if !checked_first && b.len() >= 1024 {
            assert_eq!(&b[..1024], &expect[..1024], "download content corrupted");
            checked_first = true;
        }
        n += b.len() as u64;
        assert!(n <= GIB, "more bytes than the backend sent");
    }
    assert_eq!(n, GIB, "the client must receive every byte exactly once");
    assert_eq!(o.produced.load(Ordering::SeqCst), GIB);
    report("download", &bin, GIB, started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_download_pushes_back_to_the_backend() {
    let o = origin().await;
    let bin = start_proxy(o.addr);
    let addr = bin.listeners["main"];
    let total = GIB;

    let started = Instant::now();
    let resp = http_client()
        .get(format!("http://{addr}/download/{total}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = Box::pin(resp.bytes_stream());
    let mut n: u64 = 0;

    // Read 8 MiB, then stop reading altogether.
    while n < 8 * MIB {
        n += next(&mut stream).await.expect("body ended early").len() as u64;
    }
    // Wait until the backend stops producing: the socket buffers and the
    // proxy's small buffers are full and nothing reads. If the proxy
    // buffered, the backend would go on to produce the whole body.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = o.produced.load(Ordering::SeqCst);
    let mut stable_since = Instant::now();
    loop {
        assert!(
            Instant::now() < deadline,
            "the backend never stopped producing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = o.produced.load(Ordering::SeqCst);
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_millis(750) {
            break;
        }
    }
    let ahead = last - n;
    eprintln!(
        "slow reader: client read {} MiB, backend produced {} MiB ({} MiB in flight), proxy peak RSS so far {} KiB",
        n / MIB,
        last / MIB,
        ahead / MIB,
        bin.peak_rss_kib()
    );
    // Loopback sockets may hold a few tens of MiB (receive buffers autotune
    // up to tcp_rmem's maximum); far less than the 1 GiB body.
    assert!(
        ahead < 160 * MIB,
        "{} MiB were produced beyond what the client read: no back-pressure",
        ahead / MIB
    );
    assert!(
        last < total,
        "the whole body was produced while the client read nothing"
    );

    // Read the next 16 MiB slowly, a chunk at a time with pauses.
    let slow_until = n + 16 * MIB;
    while n < slow_until {
        n += next(&mut stream).await.expect("body ended early").len() as u64;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Then the rest at full speed.
    while let Some(b) = next(&mut stream).await {
        n += b.len() as u64;
        assert!(n <= total, "more bytes than the backend sent");
    }
    assert_eq!(n, total, "the client must receive every byte exactly once");
    report("slow-reader download", &bin, total, started);
}
