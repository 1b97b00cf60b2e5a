//! End to end: Switchyard's own error answers (status, `x-switchyard-error`
//! stage, body), request limits, framing checks, header rewriting on the
//! way through, `Expect: 100-continue`, and the error metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// Listener "main" (+ `listener_extra` under it), one route "all" (+
/// `route_extra`) to upstream "u" with `servers` (+ `upstream_extra`).
fn config(
    listener_extra: &str,
    route_extra: &str,
    servers: &[SocketAddr],
    upstream_extra: &str,
) -> String {
    let servers = servers
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"{}{listener_extra}
[[routes]]
name = "all"
upstream = "u"
{route_extra}
[upstreams.u]
servers = [{servers}]
{upstream_extra}
"#,
        Preamble::default()
    )
}

const PROXY_ERRORS: &str = "switchyard_proxy_errors_total";
const DOWNSTREAM_ERRORS: &str = "switchyard_downstream_errors_total";

async fn proxy_errors(proxy: &Proxy, route: &str, stage: &str) -> f64 {
    scrape_metric(proxy, PROXY_ERRORS, &[("route", route), ("stage", stage)]).await
}

async fn downstream_errors(proxy: &Proxy, kind: &str) -> f64 {
    scrape_metric(
        proxy,
        DOWNSTREAM_ERRORS,
        &[("listener", "main"), ("kind", kind)],
    )
    .await
}

/// Waits until the downstream error counter of `kind` reaches `at_least`
/// (hyper's own rejections are counted when the connection ends).
async fn wait_downstream(proxy: &Proxy, kind: &str, at_least: f64) {
    eventually(
        &format!("{DOWNSTREAM_ERRORS}{{kind={kind}}} >= {at_least}"),
        Duration::from_secs(10),
        async || downstream_errors(proxy, kind).await >= at_least,
    )
    .await;
}

/// Sends `request` on a fresh connection and reads one response.
async fn raw(proxy: &Proxy, request: &[u8]) -> (RawResponse, RawHttp) {
    let mut c = RawHttp::connect(proxy.addr("main")).await;
    c.send(request).await;
    let r = c.read_response().await;
    (r, c)
}

// ---------------------------------------------------------------------------
// Upstream failures
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_is_502_connect_naming_the_cause() {
    let proxy = Proxy::start(&config("", "", &[refused_addr()], ""));
    let before = proxy_errors(&proxy, "all", "connect").await;
    let r = client().get(proxy.url("main", "/")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-switchyard-error"], "connect");
    let body = r.text().await.unwrap();
    assert!(body.contains("connection refused"), "body: {body:?}");
    assert!(body.starts_with("502 Bad Gateway"), "body: {body:?}");
    assert_eq!(proxy_errors(&proxy, "all", "connect").await - before, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_that_never_answers_is_504_after_response_timeout() {
    let hole = Blackhole::start().await;
    let proxy = Proxy::start(&config(
        "",
        "",
        &[hole.addr],
        r#"response_timeout = "300ms""#,
    ));
    let r = client().get(proxy.url("main", "/")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["x-switchyard-error"], "timeout");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("upstream did not answer within"),
        "body: {body:?}"
    );
    assert!(hole.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(proxy_errors(&proxy, "all", "timeout").await, 1.0);
}

/// A listener whose accept queue is full (backlog 0, one connection
/// waiting): a further connect to it hangs until the client gives up.
fn full_listener() -> (socket2::Socket, std::net::TcpStream, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    let filler = std::net::TcpStream::connect(addr).unwrap();
    (s, filler, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_timeout_is_told_apart_from_a_response_timeout() {
    let (_listener, _filler, addr) = full_listener();
    let proxy = Proxy::start(&config("", "", &[addr], r#"connect_timeout = "200ms""#));
    let r = client().get(proxy.url("main", "/")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["x-switchyard-error"], "connect-timeout");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("connect to upstream server timed out"),
        "body: {body:?}"
    );
    assert_eq!(proxy_errors(&proxy, "all", "connect-timeout").await, 1.0);
    assert_eq!(proxy_errors(&proxy, "all", "timeout").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_is_a_total_deadline() {
    let hole = Blackhole::start().await;
    // The upstream would wait a minute; the route's deadline ends it first.
    let proxy = Proxy::start(&config(
        "",
        r#"timeout = "300ms""#,
        &[hole.addr],
        r#"response_timeout = "60s""#,
    ));
    let r = client().get(proxy.url("main", "/")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["x-switchyard-error"], "timeout");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("route all did not complete within"),
        "body: {body:?}"
    );
    assert_eq!(proxy_errors(&proxy, "all", "timeout").await, 1.0);
}

// ---------------------------------------------------------------------------
// Request body limit
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_limit_by_content_length_is_413_before_contacting_upstream() {
    let backend = Backend::start_body_echo("b").await;
    let proxy = Proxy::start(&config("", "max_request_body = 100", &[backend.addr], ""));

    // At the limit: passes.
    let ok = client()
        .post(proxy.url("main", "/up"))
        .body(vec![b'x'; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.bytes().await.unwrap().len(), 100);

    let mut req = b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n".to_vec();
    req.extend_from_slice(&[b'x'; 101]);
    let (r, _) = raw(&proxy, &req).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.header("x-switchyard-error"), Some("body-too-large"));
    assert!(r.body_str().contains("100 bytes"), "{r:?}");

    // With Expect: 100-continue the client is told 413 at once, without a
    // 100 Continue inviting it to send the body.
    let (r, _) = raw(
        &proxy,
        b"POST /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 413, "{r:?}");

    assert_eq!(
        backend.hits(),
        1,
        "only the request within the limit reached the backend"
    );
    assert_eq!(proxy_errors(&proxy, "all", "body-too-large").await, 2.0);
}

fn chunked_request(chunks: usize, chunk_len: usize) -> Vec<u8> {
    let mut req = b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for i in 0..chunks {
        req.extend_from_slice(format!("{chunk_len:x}\r\n").as_bytes());
        req.extend(std::iter::repeat_n(b'a' + i as u8, chunk_len));
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_limit_is_413_while_streaming() {
    let backend = Backend::start_body_echo("b").await;
    let proxy = Proxy::start(&config("", "max_request_body = 250", &[backend.addr], ""));

    // Two chunks of 100: within the limit, streamed through whole.
    let (r, _) = raw(&proxy, &chunked_request(2, 100)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body.len(), 200);

    // Ten chunks of 100 (no Content-Length to check up front): cut off
    // once the third chunk crosses the limit.
    let (r, _) = raw(&proxy, &chunked_request(10, 100)).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.header("x-switchyard-error"), Some("body-too-large"));
    assert!(r.body_str().contains("250 bytes"), "{r:?}");
    assert_eq!(proxy_errors(&proxy, "all", "body-too-large").await, 1.0);
}

// ---------------------------------------------------------------------------
// Header limits (hyper answers these itself; Switchyard counts them)
// ---------------------------------------------------------------------------

fn request_with_headers(n: usize, value_len: usize) -> Vec<u8> {
    let mut req = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..n {
        req.extend_from_slice(format!("x-h{i}: {}\r\n", "v".repeat(value_len)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_request_headers_is_431() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config("max_request_headers = 10", "", &[backend.addr], ""));
    // Host + 8 = 9 fields: fine.
    let (r, _) = raw(&proxy, &request_with_headers(8, 4)).await;
    assert_eq!(r.status, 200, "{r:?}");
    // Host + 20: too many.
    let (r, mut conn) = raw(&proxy, &request_with_headers(20, 4)).await;
    assert_eq!(r.status, 431, "{r:?}");
    assert!(conn.closed().await, "connection must close after 431");
    assert_eq!(backend.hits(), 1);
    wait_downstream(&proxy, "headers_too_large", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_request_head_is_431() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(
        r#"max_request_header_bytes = "1KiB""#,
        "",
        &[backend.addr],
        "",
    ));
    let (r, _) = raw(&proxy, &request_with_headers(1, 500)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let (r, mut conn) = raw(&proxy, &request_with_headers(1, 3000)).await;
    assert_eq!(r.status, 431, "{r:?}");
    assert!(conn.closed().await, "connection must close after 431");
    assert_eq!(backend.hits(), 1);
    wait_downstream(&proxy, "headers_too_large", 1.0).await;
}

// ---------------------------------------------------------------------------
// Malformed or ambiguous requests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_line_is_400() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config("", "", &[backend.addr], ""));
    let (r, mut conn) = raw(&proxy, b"NOT A REQUEST\r\nHost: t\r\n\r\n").await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(conn.closed().await);
    assert_eq!(backend.hits(), 0);
    wait_downstream(&proxy, "bad_request", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_are_400() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config("", "", &[backend.addr], ""));
    let (r, mut conn) = raw(
        &proxy,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("x-switchyard-error"), Some("bad-request"));
    assert!(r.body_str().contains("more than one Host header"), "{r:?}");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(conn.closed().await);
    assert_eq!(backend.hits(), 0);
    assert_eq!(downstream_errors(&proxy, "bad_request").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_without_host_is_400_but_http10_is_served() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config("", "", &[backend.addr], ""));
    let (r, _) = raw(&proxy, b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n").await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("x-switchyard-error"), Some("bad-request"));
    assert!(r.body_str().contains("without Host"), "{r:?}");
    assert_eq!(backend.hits(), 0);
    assert_eq!(downstream_errors(&proxy, "bad_request").await, 1.0);

    let (r, _) = raw(&proxy, b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "b");
    assert_eq!(backend.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differing_content_lengths_are_400() {
    let backend = Backend::start_body_echo("b").await;
    let proxy = Proxy::start(&config("", "", &[backend.addr], ""));
    let (r, mut conn) = raw(
        &proxy,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(conn.closed().await);
    let (r, _) = raw(
        &proxy,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(backend.hits(), 0);
    wait_downstream(&proxy, "bad_request", 2.0).await;
}

// ---------------------------------------------------------------------------
// Header rewriting on the way through
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_not_forwarded() {
    let backend = Backend::start_with(
        "b",
        std::sync::Arc::new(|req: &hyper::Request<hyper::body::Incoming>| {
            (req.uri().path() == "/resp-hop").then(|| {
                hyper::Response::builder()
                    .header("connection", "x-resp-hop")
                    .header("x-resp-hop", "1")
                    .header("keep-alive", "timeout=9")
                    .header("x-resp-normal", "1")
                    .body(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")))
                    .unwrap()
            })
        }),
    )
    .await;
    let proxy = Proxy::start(&config("", "", &[backend.addr], ""));
    let (r, _) = raw(
        &proxy,
        b"GET /hop HTTP/1.1\r\nHost: hop.test\r\nConnection: close, X-Hop-Secret\r\n\
          X-Hop-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
          TE: gzip\r\nX-Normal: yes\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("x-seen-x-normal"),
        Some("yes"),
        "ordinary headers pass: {r:?}"
    );
    for gone in [
        "x-seen-x-hop-secret",
        "x-seen-keep-alive",
        "x-seen-proxy-connection",
        "x-seen-te",
    ] {
        assert_eq!(r.header(gone), None, "{gone} reached the backend: {r:?}");
    }
    if let Some(c) = r.header("x-seen-connection") {
        assert!(!c.to_ascii_lowercase().contains("x-hop-secret"), "{r:?}");
    }

    // TE: trailers is the one TE value that passes (gRPC needs it).
    let (r, _) = raw(
        &proxy,
        b"GET /te HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n\r\n",
    )
    .await;
    assert_eq!(r.header("x-seen-te"), Some("trailers"), "{r:?}");

    // And on the way back: the backend's hop-by-hop headers stay behind.
    let r = client()
        .get(proxy.url("main", "/resp-hop"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-resp-normal"], "1");
    assert!(r.headers().get("x-resp-hop").is_none(), "{:?}", r.headers());
    assert!(r.headers().get("keep-alive").is_none(), "{:?}", r.headers());
}

/// All values the backend saw for a request header, in order.
fn seen_all(r: &reqwest::Response, name: &str) -> Vec<String> {
    r.headers()
        .get_all(format!("x-seen-{name}"))
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// `GET /` with Host `shop.test` and `headers`, as a client would send it.
async fn get_shop(proxy: &Proxy, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client()
        .get(proxy.url("main", "/"))
        .header("host", "shop.test");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_an_untrusted_peer_are_replaced() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config("", "", &[backend.addr], ""));
    let r = get_shop(
        &proxy,
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.test"),
            ("forwarded", "for=6.6.6.6"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(seen_all(&r, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen_all(&r, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen_all(&r, "x-forwarded-host"), ["shop.test"]);
    assert!(
        seen_all(&r, "forwarded").is_empty(),
        "untrusted Forwarded passed through"
    );
    assert_eq!(seen_all(&r, "via"), ["1.1 switchyard"]);
    let via: Vec<_> = r.headers().get_all("via").iter().collect();
    assert_eq!(via, ["1.1 switchyard"], "Via on the response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_a_trusted_peer_are_appended() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(
        "[listeners.main.forwarded]\ntrusted_proxies = [\"127.0.0.1/32\"]",
        "",
        &[backend.addr],
        "",
    ));
    let r = get_shop(
        &proxy,
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("via", "1.1 edge"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(seen_all(&r, "x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(
        seen_all(&r, "x-forwarded-proto"),
        ["https"],
        "a trusted proxy's proto is kept"
    );
    assert_eq!(seen_all(&r, "via"), ["1.1 edge", "1.1 switchyard"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7239_forwarded_when_enabled() {
    let backend = Backend::start("b").await;
    let proxy = Proxy::start(&config(
        "[listeners.main.forwarded]\nforwarded = true\nvia = false",
        "",
        &[backend.addr],
        "",
    ));
    let r = get_shop(&proxy, &[("forwarded", "for=6.6.6.6")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        seen_all(&r, "forwarded"),
        [r#"for=127.0.0.1;proto=http;host="shop.test""#]
    );
    assert!(seen_all(&r, "via").is_empty(), "via = false");
    assert!(r.headers().get("via").is_none());
}

// ---------------------------------------------------------------------------
// Expect: 100-continue
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_gets_100_before_the_final_response() {
    let backend = Backend::start_body_echo("b").await;
    let proxy = Proxy::start(&config("", "", &[backend.addr], ""));
    let mut c = RawHttp::connect(proxy.addr("main")).await;
    c.send(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n",
    )
    .await;
    // Nothing of the body has been sent: the only thing that can come back
    // is the interim answer.
    let interim = c.read_response().await;
    assert_eq!(interim.status_line, "HTTP/1.1 100 Continue");
    c.send(b"hello world").await;
    let r = c.read_response().await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "hello world", "backend received the body");
    assert_eq!(
        r.header("x-seen-expect"),
        None,
        "Switchyard answers Expect itself"
    );
    assert_eq!(backend.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_are_closed_listener_wide() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Backend::start("a").await;
    // Two workers: the limit must hold across both of them.
    let proxy = Proxy::start(&config("max_connections = 2", "", &[a.addr], ""));
    let addr = proxy.addr("main");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = RawHttp::connect(addr).await;
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(c.read_response().await.status, 200);
        held.push(c);
    }
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf))
        .await
        .expect("the third connection must be closed, not served")
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "the third connection got an answer: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    wait_downstream(&proxy, "connection_limit", 1.0).await;
    // Closing one makes room again.
    drop(held.pop());
    // Until the proxy has seen the close, a new connection may still be
    // refused: that attempt just reads nothing, and we try again.
    eventually("a slot frees up", Duration::from_secs(10), async || {
        let Ok(mut c) = tokio::net::TcpStream::connect(addr).await else {
            return false;
        };
        if c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .is_err()
        {
            return false;
        }
        let mut head = [0u8; 12];
        matches!(
            tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut head)).await,
            Ok(Ok(_))
        ) && &head == b"HTTP/1.1 200"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_400_and_never_reaches_the_backend() {
    let a = Backend::start("a").await;
    let proxy = Proxy::start(&config("", "", &[a.addr], ""));
    let cases: [&[u8]; 3] = [
        // Content-Length and Transfer-Encoding (both orders).
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        // The same Content-Length twice (hyper would fold it into one).
        b"POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab",
    ];
    for (i, req) in cases.iter().enumerate() {
        let (resp, _conn) = raw(&proxy, req).await;
        assert_eq!(resp.status, 400, "case {i}");
        assert_eq!(
            resp.header("x-switchyard-error"),
            Some("bad-request"),
            "case {i}"
        );
    }
    wait_downstream(&proxy, "ambiguous_framing", 3.0).await;
    // A clean request on a keep-alive connection after a request with a
    // body that merely *contains* such header text is served normally.
    let mut c = RawHttp::connect(proxy.addr("main")).await;
    c.send(b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").await;
    assert_eq!(c.read_response().await.status, 200);
    c.send(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(c.read_response().await.status, 200);
    assert_eq!(a.hits(), 2, "no ambiguous request may reach the backend");
}
