//! Idle HTTP/1.1 connections give their buffers back ("parking") and
//! resume transparently: plain requests and WebSocket upgrades on a
//! connection that was parked, and TLS connections (across a TLS 1.3
//! KeyUpdate received while parked).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

async fn parked(proxy: &Proxy) -> f64 {
    scrape_metric(
        proxy,
        "switchyard_downstream_connections_parked",
        &[("listener", "main")],
    )
    .await
}

async fn h1_conn(proxy: &Proxy) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(proxy.addr("main"))
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    sender
}

fn get(path: &str) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get(path)
        .header("host", "parking.test")
        .body(Empty::new())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_parks_and_resumes() {
    let a = Backend::start("a").await;
    let proxy = Proxy::start(&simple_config(&[&a], ""));
    let mut sender = h1_conn(&proxy).await;
    for round in 0..3 {
        sender.ready().await.unwrap();
        let resp = sender.send_request(get("/x")).await.unwrap();
        assert_eq!(resp.status(), 200, "round {round}");
        assert_eq!(body_string(resp.into_body()).await, "a");
        // Idle now: the proxy parks the connection (gauge goes to 1) ...
        eventually("connection parked", Duration::from_secs(10), async || {
            parked(&proxy).await == 1.0
        })
        .await;
        assert!(!sender.is_closed(), "parking must not close the connection");
    }
    // ... and the same connection still serves.
    sender.ready().await.unwrap();
    let resp = sender.send_request(get("/y")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-seen-path"], "/y");
    drop(resp);
    drop(sender);
    eventually(
        "parked gauge back to 0",
        Duration::from_secs(10),
        async || parked(&proxy).await == 0.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_on_a_parked_connection_tunnels() {
    let ws = WsBackend::start().await;
    let toml = format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 1
watch_config = false
[listeners.main]
address = "127.0.0.1:0"
[[routes]]
name = "ws"
upstream = "ws"
[upstreams.ws]
servers = ["{}"]
"#,
        ws.addr
    );
    let proxy = Proxy::start(&toml);
    let mut sender = h1_conn(&proxy).await;
    // A plain request first, then let the connection park.
    let resp = sender.send_request(get("/plain")).await.unwrap();
    drop(resp);
    eventually("connection parked", Duration::from_secs(10), async || {
        parked(&proxy).await == 1.0
    })
    .await;

    sender.ready().await.unwrap();
    let req = hyper::Request::get("/ws")
        .header("host", "parking.test")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    let upgraded = hyper::upgrade::on(resp).await.unwrap();
    let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    for i in 0..20 {
        let text = format!("message {i}");
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(text.clone()))
            .await
            .unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    socket.close(None).await.unwrap();
}

/// Reads one HTTP/1.1 response with a Content-Length body from `io`:
/// (head, body). `buf` keeps bytes read past it (pipelining).
async fn read_response<S>(io: &mut S, buf: &mut Vec<u8>) -> (String, String)
where
    S: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(buf[..end].to_vec()).unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().unwrap())
                    })
                    .expect("content-length");
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8(buf[end + 4..end + 4 + len].to_vec()).unwrap();
                    buf.drain(..end + 4 + len);
                    return (head, body);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = io.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the response was complete");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    within("response", read).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tls_connection_parks_and_resumes_across_a_key_update() {
    use tokio::io::AsyncWriteExt;
    let a = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = write_cert(dir.path(), "p", &["parking.test"]);
    let toml = format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 1
watch_config = false
[listeners.main]
address = "127.0.0.1:0"
[listeners.main.tls]
certificates = [{{ cert = "{}", key = "{}" }}]
[[routes]]
name = "all"
upstream = "u"
[upstreams.u]
servers = ["{}"]
"#,
        cert.display(),
        key.display(),
        a.addr
    );
    let proxy = Proxy::start(&toml);
    let connector = tls_client(&["http/1.1"], &[&rustls::version::TLS13]);
    let mut tls = tls_connect(&connector, proxy.addr("main"), Some("parking.test"))
        .await
        .unwrap();
    let mut buf = Vec::new();
    let req = |path: &str| format!("GET {path} HTTP/1.1\r\nhost: parking.test\r\n\r\n");
    for round in 0..2 {
        tls.write_all(req(&format!("/r{round}")).as_bytes())
            .await
            .unwrap();
        let (head, body) = read_response(&mut tls, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "round {round}: {head}");
        assert_eq!(body, "a");
        eventually(
            "TLS connection parked",
            Duration::from_secs(10),
            async || parked(&proxy).await == 1.0,
        )
        .await;
        if round == 0 {
            // A TLS 1.3 KeyUpdate while parked: the proxy must read it
            // (new keys for what follows) and park again.
            tls.get_mut().1.refresh_traffic_keys().unwrap();
            tls.flush().await.unwrap();
        }
    }
    // Two requests in one write after parking (pipelined): both answered,
    // in order.
    tls.write_all(format!("{}{}", req("/p1"), req("/p2")).as_bytes())
        .await
        .unwrap();
    for path in ["/p1", "/p2"] {
        let (head, body) = read_response(&mut tls, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("x-seen-path: {path}")),
            "{path}: {head}"
        );
        assert_eq!(body, "a");
    }
    drop(tls);
    eventually(
        "parked gauge back to 0",
        Duration::from_secs(10),
        async || parked(&proxy).await == 0.0,
    )
    .await;
}
