//! Idle HTTP/1.1 connections give their buffers back ("parking") and
//! resume transparently: plain requests and WebSocket upgrades on a
//! connection that was parked.
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
