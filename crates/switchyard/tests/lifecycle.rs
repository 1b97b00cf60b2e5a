//! The real binary's lifecycle: graceful shutdown on SIGTERM and SIGINT,
//! the drain deadline, and the connection timers (slowloris, idle
//! keep-alive).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{
    Backend, Binary, Preamble, RawHttp, client, eventually, scrape_metric_at, servers,
    wait_admin_ready,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(20);

fn config(backend: &Backend, drain: &str, listener_extra: &str) -> String {
    format!(
        "{}{listener_extra}{}",
        Preamble {
            drain_timeout: drain,
            ..Preamble::default()
        },
        common::route_all(&servers(&[backend]), "", "")
    )
}

/// Starts the binary and waits until its signal handlers are installed.
async fn start(toml: &str) -> Binary {
    let bin = Binary::start(toml, 1);
    wait_admin_ready(bin.admin.unwrap()).await;
    bin
}

/// Starts `GET url` in the background: its status and body, or the error.
fn spawn_get(url: String) -> tokio::task::JoinHandle<Result<(u16, String), reqwest::Error>> {
    tokio::spawn(async move {
        let r = client().get(&url).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.text().await?))
    })
}

fn wait_exit(bin: &mut Binary, within: Duration) -> Option<i32> {
    // wait_exit blocks; keep the runtime's other worker free for the backends.
    tokio::task::block_in_place(|| bin.wait_exit(within))
}

async fn refuses_connections(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

/// The binary in front of a gated backend, with one request held there.
/// Fields drop in order: the binary first.
struct InFlight {
    bin: Binary,
    addr: SocketAddr,
    /// Holds the backend's answer until `true` is sent or it is dropped.
    gate: tokio::sync::watch::Sender<bool>,
    backend: Backend,
    request: tokio::task::JoinHandle<Result<(u16, String), reqwest::Error>>,
}

impl InFlight {
    /// Starts the binary (drain timeout `drain`, `listener_extra` under the
    /// listener) in front of a gated backend `name`, sends `GET /{name}` and
    /// returns once the request has reached the backend.
    async fn start(name: &str, drain: &str, listener_extra: &str) -> InFlight {
        let (backend, gate) = Backend::start_gated(name).await;
        let bin = start(&config(&backend, drain, listener_extra)).await;
        let addr = bin.listener_addr("main");
        let request = spawn_get(format!("http://{addr}/{name}"));
        eventually("the request reached the backend", DEADLINE, async || {
            backend.hits() == 1
        })
        .await;
        InFlight {
            bin,
            addr,
            gate,
            backend,
            request,
        }
    }

    /// Sends `sig` and waits until the listener refuses new connections.
    async fn signal_and_wait_refused(&self, sig: &str) {
        self.bin.signal(sig);
        eventually("new connections are refused", DEADLINE, async || {
            refuses_connections(self.addr).await
        })
        .await;
    }

    /// Opens the gate: the held request gets the backend's answer (its
    /// name), then the process exits 0.
    async fn release_and_exit_zero(mut self) {
        self.gate.send(true).unwrap();
        let (status, body) = tokio::time::timeout(DEADLINE, self.request)
            .await
            .expect("the in-flight request finished")
            .unwrap()
            .expect("the in-flight request got its answer");
        assert_eq!((status, body.as_str()), (200, self.backend.name.as_str()));
        assert_eq!(wait_exit(&mut self.bin, DEADLINE), Some(0));
    }
}

/// A request in flight when `sig` arrives completes; new connections are
/// refused meanwhile; the process then exits 0.
async fn graceful_shutdown_on(sig: &str) {
    let mut f = InFlight::start("slow", "30s", "").await;
    f.signal_and_wait_refused(sig).await;
    assert!(
        !f.request.is_finished(),
        "the in-flight request ended before its backend answered"
    );
    assert!(
        f.bin.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    f.release_and_exit_zero().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    graceful_shutdown_on("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_in_flight_requests_and_exits_zero() {
    graceful_shutdown_on("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_lets_a_request_outlast_the_idle_timeout() {
    // The drain deadline (30 s), not the connection's idle timer, bounds an
    // in-flight request during shutdown.
    let mut f = InFlight::start("slow", "30s", "idle_timeout = \"200ms\"").await;
    f.signal_and_wait_refused("TERM").await;

    // Not synchronisation: the backend keeps the answer for several idle
    // timeouts on purpose.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !f.request.is_finished(),
        "the in-flight request was cut: {:?}",
        (&mut f.request).await
    );
    f.release_and_exit_zero().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_ends_a_request_that_never_completes() {
    let mut f = InFlight::start("never", "1s", "").await;
    f.bin.signal("TERM");
    // Far below the 30 s default drain and the 20 s client timeout.
    assert_eq!(wait_exit(&mut f.bin, Duration::from_secs(10)), Some(0));
    let res = tokio::time::timeout(DEADLINE, f.request)
        .await
        .expect("the client saw the close")
        .unwrap();
    assert!(
        res.is_err(),
        "a request cut by the drain deadline got an answer: {res:?}"
    );
    drop(f.gate);
}

/// Reads and discards until the peer closes (true) or `within` passes
/// (false).
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// The listener setting of the slowloris tests (idle_timeout keeps its
/// 60 s default).
const HEADER_TIMEOUT_500MS: &str = "request_header_timeout = \"500ms\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_disconnected_after_the_header_timeout() {
    let backend = Backend::start("b").await;
    // idle_timeout stays at its 60 s default: only the header timer can
    // close the connection within the deadline below.
    let bin = start(&config(&backend, "5s", HEADER_TIMEOUT_500MS)).await;
    let admin = bin.admin.unwrap();
    let addr = bin.listener_addr("main");
    let timeouts = [("listener", "main"), ("kind", "header_timeout")];
    assert_eq!(
        scrape_metric_at(admin, "switchyard_downstream_errors_total", &timeouts).await,
        0.0
    );

    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(10)).await,
        "a half-sent request head kept its connection open"
    );
    eventually("header_timeout is counted", DEADLINE, async || {
        scrape_metric_at(admin, "switchyard_downstream_errors_total", &timeouts).await == 1.0
    })
    .await;
    assert_eq!(backend.hits(), 0);

    // Complete requests on other connections are unaffected.
    let r = client()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_after_a_request_on_a_keep_alive_connection_is_disconnected() {
    // The header timeout applies to every request of a keep-alive
    // connection, not only the first: after one answer, a half-sent second
    // head (sent at once, before the connection would park) is cut off
    // within the 500 ms header timeout, long before the 60 s idle one.
    // (How promptly the timer is brought forward is not asserted: the
    // 500 ms parking check would also catch it.)
    let backend = Backend::start("b").await;
    let bin = start(&config(&backend, "5s", HEADER_TIMEOUT_500MS)).await;
    let admin = bin.admin.unwrap();
    let addr = bin.listener_addr("main");
    let timeouts = [("listener", "main"), ("kind", "header_timeout")];
    let mut conn = RawHttp::connect(addr).await;
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(conn.read_response().await.status, 200, "the first request");
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
    assert!(
        conn.closed().await,
        "a half-sent second request head kept its connection open"
    );
    eventually("header_timeout is counted", DEADLINE, async || {
        scrape_metric_at(admin, "switchyard_downstream_errors_total", &timeouts).await == 1.0
    })
    .await;
    assert_eq!(backend.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_over_tls_is_disconnected_after_the_header_timeout() {
    let backend = Backend::start("b").await;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, _) = common::write_cert(certs.path(), "proxy", &["localhost"]);
    let tls = format!(
        "request_header_timeout = \"500ms\"\n[listeners.main.tls]\ncertificates = [{{ cert = {:?}, key = {:?} }}]",
        cert.display().to_string(),
        key.display().to_string()
    );
    let bin = start(&config(&backend, "5s", &tls)).await;
    let admin = bin.admin.unwrap();
    let timeouts = [("listener", "main"), ("kind", "header_timeout")];
    let connector = common::tls_client(&["http/1.1"], &[&rustls::version::TLS13]);
    let mut slow = common::tls_connect(&connector, bin.listener_addr("main"), Some("localhost"))
        .await
        .unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    slow.flush().await.unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(10)).await,
        "a half-sent request head kept its TLS connection open"
    );
    eventually("header_timeout is counted", DEADLINE, async || {
        scrape_metric_at(admin, "switchyard_downstream_errors_total", &timeouts).await == 1.0
    })
    .await;
    assert_eq!(backend.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let backend = Backend::start("b").await;
    let bin = start(&config(&backend, "5s", "idle_timeout = \"500ms\"")).await;
    let admin = bin.admin.unwrap();
    let mut conn = RawHttp::connect(bin.listener_addr("main")).await;
    conn.send(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let r = conn.read_response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "b");
    assert!(
        r.header("connection")
            .is_none_or(|v| !v.eq_ignore_ascii_case("close"))
    );
    // The connection was kept alive; now it sits idle until the proxy
    // closes it (well within the 10 s `closed` deadline).
    assert!(conn.closed().await, "the idle connection was not closed");
    // An idle close is not a header timeout.
    assert_eq!(header_timeouts(admin).await, 0.0);
}

/// Connections closed for a request head that did not arrive in time.
async fn header_timeouts(admin: SocketAddr) -> f64 {
    scrape_metric_at(
        admin,
        "switchyard_downstream_errors_total",
        &[("kind", "header_timeout")],
    )
    .await
}

async fn parked_at(admin: SocketAddr) -> f64 {
    scrape_metric_at(
        admin,
        "switchyard_downstream_connections_parked",
        &[("listener", "main")],
    )
    .await
}

/// A keep-alive connection that served one request, then parked (it waits
/// in its accept loop's lot, without a task).
async fn parked_connection(bin: &Binary) -> RawHttp {
    let admin = bin.admin.unwrap();
    let mut conn = RawHttp::connect(bin.listener_addr("main")).await;
    conn.send(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(conn.read_response().await.status, 200);
    eventually("the connection parked", DEADLINE, async || {
        parked_at(admin).await == 1.0
    })
    .await;
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_is_closed_after_idle_timeout() {
    let backend = Backend::start("b").await;
    // Longer than the 500 ms after which an idle connection parks.
    let bin = start(&config(&backend, "5s", "idle_timeout = \"2s\"")).await;
    let admin = bin.admin.unwrap();
    let mut conn = parked_connection(&bin).await;
    assert!(conn.closed().await, "the parked connection was not closed");
    eventually("parked gauge back to 0", DEADLINE, async || {
        parked_at(admin).await == 0.0
    })
    .await;
    assert_eq!(header_timeouts(admin).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_parked_connections_without_waiting_for_the_drain() {
    let backend = Backend::start("b").await;
    // A drain far beyond DEADLINE: exiting in time shows the parked
    // connection did not hold it up.
    let mut bin = start(&config(&backend, "60s", "")).await;
    let mut conn = parked_connection(&bin).await;
    bin.signal("TERM");
    assert!(conn.closed().await, "the parked connection was not closed");
    assert_eq!(wait_exit(&mut bin, DEADLINE), Some(0));
}
