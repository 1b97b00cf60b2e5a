//! End to end: the cleartext protocols on one port, h2c prior knowledge
//! and HTTP/1.1. TLS termination is in tls.rs, the upstream side in
//! upstream_protocols.rs, WebSocket in websocket.rs, gRPC in grpc.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Backend, Proxy, client, h2c_client, header, simple_config, within};
use http::{StatusCode, Version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_client_reaches_http1_backend() {
    let b = Backend::start("b1").await;
    let p = Proxy::start(&simple_config(&[&b], ""));
    let r = within(
        "h2c request",
        h2c_client().get(p.url("main", "/h2c/path?q=1")).send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), Version::HTTP_2, "client side must be HTTP/2");
    assert_eq!(
        header(&r, "x-seen-version"),
        "HTTP/1.1",
        "upstream side must be HTTP/1.1"
    );
    assert_eq!(header(&r, "x-seen-path"), "/h2c/path?q=1");
    // :authority becomes the Host header on the HTTP/1.1 side.
    assert_eq!(header(&r, "x-seen-host"), p.addr("main").to_string());
    assert_eq!(r.text().await.unwrap(), "b1");
    assert_eq!(b.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_h2c_share_one_listener() {
    let b = Backend::start("b1").await;
    let p = Proxy::start(&simple_config(&[&b], ""));
    let h1 = client();
    let h2 = h2c_client();
    // Interleave both protocols against the same port, several times, with
    // both clients keeping their connections open.
    for i in 0..3 {
        let r = within(
            "http/1.1",
            h1.get(p.url("main", &format!("/one/{i}"))).send(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.version(), Version::HTTP_11);
        assert_eq!(header(&r, "x-seen-path"), format!("/one/{i}"));
        assert_eq!(r.text().await.unwrap(), "b1");

        let r = within("h2c", h2.get(p.url("main", &format!("/two/{i}"))).send())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(header(&r, "x-seen-path"), format!("/two/{i}"));
        assert_eq!(r.text().await.unwrap(), "b1");
    }
    // Also both at once.
    let (a, c) = tokio::join!(
        h1.get(p.url("main", "/together/1")).send(),
        h2.get(p.url("main", "/together/2")).send()
    );
    let (a, c) = (a.unwrap(), c.unwrap());
    assert_eq!(
        (a.status(), a.version()),
        (StatusCode::OK, Version::HTTP_11)
    );
    assert_eq!((c.status(), c.version()), (StatusCode::OK, Version::HTTP_2));
    assert_eq!(b.hits(), 8);
}
