//! End to end: the protocols Switchyard speaks to upstreams. h2c, TLS
//! verified against a configured CA, and ALPN (`auto` and `h2`) over TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    Backend, Proxy, TlsBackend, client, h2c_client, header, one_upstream_config, simple_config,
    within,
};
use http::{StatusCode, Version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upstream_receives_http2() {
    let b = Backend::start("b1").await;
    let p = Proxy::start(&simple_config(&[&b], "protocol = \"h2c\""));
    let h1 = client();
    for i in 0..3 {
        let r = within(
            "request",
            h1.get(p.url("main", &format!("/h2c-up/{i}?x=y"))).send(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.version(), Version::HTTP_11);
        assert_eq!(
            header(&r, "x-seen-version"),
            "HTTP/2.0",
            "upstream must be spoken to in HTTP/2"
        );
        assert!(header(&r, "x-seen-path").ends_with(&format!("/h2c-up/{i}?x=y")));
        assert_eq!(r.text().await.unwrap(), "b1");
    }
    // An h2c client too.
    let r = h2c_client()
        .get(p.url("main", "/both-h2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(header(&r, "x-seen-version"), "HTTP/2.0");
    assert_eq!(b.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_verified_against_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let tb = tls_backend("tls-b", dir.path(), &["http/1.1"]).await;
    let cfg = tls_upstream(&tb, "", &tb.cert_path, "backend.example.test");
    let p = Proxy::start(&cfg);
    let h1 = client();
    for _ in 0..2 {
        let r = within("request", h1.get(p.url("main", "/secure")).send())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "x-seen-sni"), "backend.example.test");
        assert_eq!(header(&r, "x-seen-version"), "HTTP/1.1");
        assert_eq!(header(&r, "x-seen-alpn"), "http/1.1");
        assert_eq!(header(&r, "x-seen-x-forwarded-proto"), "http");
        assert_eq!(r.text().await.unwrap(), "tls-b");
    }
    assert_eq!(tb.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_verification_failure_is_a_502_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let tb = tls_backend("tls-b", dir.path(), &["http/1.1"]).await;
    let (wrong_ca, _, _) =
        common::write_cert(dir.path(), "unrelated-ca", &["backend.example.test"]);
    let h1 = client();

    // A CA that did not sign the backend's certificate.
    let cfg = tls_upstream(&tb, "", &wrong_ca, "backend.example.test");
    let p = Proxy::start(&cfg);
    let r = within("request", h1.get(p.url("main", "/wrong-ca")).send())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(header(&r, "x-switchyard-error"), "tls");
    drop(p);

    // The right CA but a name the certificate does not carry.
    let cfg = tls_upstream(&tb, "", &tb.cert_path, "other.example.test");
    let p = Proxy::start(&cfg);
    let r = within("request", h1.get(p.url("main", "/wrong-name")).send())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(header(&r, "x-switchyard-error"), "tls");
    assert_eq!(
        tb.hits(),
        0,
        "no request may reach a server that failed verification"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_alpn_auto_and_h2() {
    let dir = tempfile::tempdir().unwrap();
    let both = tls_backend("both", dir.path(), &["h2", "http/1.1"]).await;
    let only1 = tls_backend("only1", dir.path(), &["http/1.1"]).await;
    let h1 = client();
    let h2 = h2c_client();

    // auto + a server offering h2: ALPN picks h2.
    let p = Proxy::start(&tls_upstream(
        &both,
        "protocol = \"auto\"",
        &both.cert_path,
        "backend.example.test",
    ));
    for (c, v) in [
        (&h1, Version::HTTP_11),
        (&h2, Version::HTTP_2),
        (&h1, Version::HTTP_11),
    ] {
        let r = within("request", c.get(p.url("main", "/auto?k=v")).send())
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "auto over TLS with h2: {:?}",
            r.headers()
        );
        assert_eq!(r.version(), v);
        assert_eq!(header(&r, "x-seen-alpn"), "h2");
        assert_eq!(header(&r, "x-seen-version"), "HTTP/2.0");
        // A proper HTTP/2 request over TLS: `:scheme` https and the
        // client's host as `:authority`.
        assert_eq!(
            header(&r, "x-seen-path"),
            format!("https://{}/auto?k=v", p.addr("main"))
        );
        assert_eq!(r.text().await.unwrap(), "both");
    }
    drop(p);

    // auto + a server offering only http/1.1: falls back to HTTP/1.1.
    let p = Proxy::start(&tls_upstream(
        &only1,
        "protocol = \"auto\"",
        &only1.cert_path,
        "backend.example.test",
    ));
    let r = within("request", h2.get(p.url("main", "/auto1")).send())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-seen-alpn"), "http/1.1");
    assert_eq!(header(&r, "x-seen-version"), "HTTP/1.1");
    drop(p);

    // protocol = "h2" over TLS.
    let p = Proxy::start(&tls_upstream(
        &both,
        "protocol = \"h2\"",
        &both.cert_path,
        "backend.example.test",
    ));
    let r = within("request", h1.get(p.url("main", "/h2")).send())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "x-seen-path"),
        format!("https://{}/h2", p.addr("main"))
    );
    assert_eq!(header(&r, "x-seen-alpn"), "h2");
    assert_eq!(header(&r, "x-seen-version"), "HTTP/2.0");
    assert_eq!(both.hits(), 4);
    assert_eq!(only1.hits(), 1);
}

/// A TLS backend with a certificate for `backend.example.test`.
async fn tls_backend(name: &str, dir: &std::path::Path, alpn: &[&str]) -> TlsBackend {
    TlsBackend::start(name, dir, &["backend.example.test"], alpn).await
}

/// A one-upstream config to `b` over TLS, trusting `ca` and verifying
/// `server_name`, with `extra` upstream keys (e.g. `protocol`).
fn tls_upstream(b: &TlsBackend, extra: &str, ca: &std::path::Path, server_name: &str) -> String {
    one_upstream_config(
        &format!("\"{}\"", b.addr),
        &format!(
            "{extra}\n[upstreams.u.tls]\nca = \"{}\"\nserver_name = \"{server_name}\"\n",
            ca.display()
        ),
    )
}
