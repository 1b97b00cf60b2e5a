//! End to end: a WebSocket upgrade and echo through the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Proxy, WsBackend, one_upstream_config, within};
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_proxy() {
    use tokio_tungstenite::tungstenite::Message;
    let ws_backend = WsBackend::start().await;
    let cfg = one_upstream_config(&format!("\"{}\"", ws_backend.addr), "");
    let p = Proxy::start(&cfg);
    let url = format!("ws://{}/ws?room=1", p.addr("main"));
    let (mut ws, resp) = within("websocket handshake", tokio_tungstenite::connect_async(url))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    {
        let seen = ws_backend.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/ws?room=1");
        assert!(
            seen[0].headers.iter().any(|(k, _)| k == "x-forwarded-for"),
            "the handshake must have passed through the proxy: {:?}",
            seen[0].headers
        );
    }

    let messages: Vec<Message> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                Message::text(format!("text message {i} {}", "x".repeat(i * 10)))
            } else {
                Message::binary(
                    (0..(i * 37) as u32)
                        .map(|b| (b % 251) as u8)
                        .collect::<Vec<u8>>(),
                )
            }
        })
        .collect();
    // Half lock-step, half pipelined.
    for m in &messages[..50] {
        within("ws send", ws.send(m.clone())).await.unwrap();
        let got = within("ws echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(&got, m);
    }
    for m in &messages[50..] {
        within("ws send", ws.send(m.clone())).await.unwrap();
    }
    for m in &messages[50..] {
        let got = within("ws echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(&got, m);
    }

    // Close: the backend answers the close frame and the stream ends.
    within("ws close", ws.close(None)).await.unwrap();
    let mut saw_close = false;
    for _ in 0..10 {
        match within("ws close reply", ws.next()).await {
            Some(Ok(Message::Close(_))) => saw_close = true,
            Some(Ok(other)) => panic!("unexpected message after close: {other:?}"),
            Some(Err(e)) => panic!("error while closing: {e}"),
            None => break,
        }
    }
    assert!(saw_close, "the backend's close frame must reach the client");
}
