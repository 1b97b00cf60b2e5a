//! End to end: TLS termination on a listener. The certificate chosen by
//! SNI (with a default), ALPN picking HTTP/2 or HTTP/1.1, the minimum
//! version, and certificates re-read on reload.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use bytes::Bytes;
use common::{Backend, Proxy, hyper_header, tls_client, tls_connect, within};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

/// One HTTP/1.1 GET over an established stream.
async fn h1_get<S>(io: S, host: &str, path: &str) -> Response<Incoming>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    within("http/1.1 request", send.send_request(req))
        .await
        .unwrap()
}

/// One HTTP/2 GET over an established stream.
async fn h2_get<S>(io: S, uri: &str) -> Response<Incoming>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
    within("http/2 request", send.send_request(req))
        .await
        .unwrap()
}

async fn body_text(r: Response<Incoming>) -> String {
    String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

struct Certs {
    dir: tempfile::TempDir,
    a: Vec<u8>,
    b: Vec<u8>,
    d: Vec<u8>,
}

fn three_certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, a) = common::write_cert(dir.path(), "a", &["a.example.test"]);
    let (_, _, b) = common::write_cert(dir.path(), "b", &["b.example.test"]);
    let (_, _, d) = common::write_cert(dir.path(), "d", &["default.example.test"]);
    Certs { dir, a, b, d }
}

/// A TLS listener `name` with certificates a, d (the default, deliberately
/// not the first) and b from `dir`.
fn tls_listener(name: &str, dir: &Path, min_version: &str) -> String {
    let f = |s: &str| dir.join(s).display().to_string();
    format!(
        r#"
[listeners.{name}]
address = "127.0.0.1:0"
[listeners.{name}.tls]
min_version = "{min_version}"
default_certificate = "d"
certificates = [
  {{ name = "a", cert = "{}", key = "{}", server_names = ["a.example.test"] }},
  {{ name = "d", cert = "{}", key = "{}" }},
  {{ name = "b", cert = "{}", key = "{}", server_names = ["b.example.test"] }},
]
"#,
        f("a.pem"),
        f("a.key"),
        f("d.pem"),
        f("d.key"),
        f("b.pem"),
        f("b.key"),
    )
}

fn tls_config(b: &Backend, listeners: &str) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
drain_timeout = "5s"
watch_config = false
{listeners}
[[routes]]
name = "all"
upstream = "u"
[upstreams.u]
servers = ["{}"]
"#,
        b.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificate_is_chosen_by_sni_with_a_default() {
    let b = Backend::start("b1").await;
    let certs = three_certs();
    let p = Proxy::start(&tls_config(
        &b,
        &tls_listener("tls", certs.dir.path(), "1.2"),
    ));
    let addr = p.addr("tls");
    let c = tls_client(&["http/1.1"], rustls::DEFAULT_VERSIONS);

    let cases: [(Option<&str>, &Vec<u8>, &str); 5] = [
        (Some("a.example.test"), &certs.a, "a"),
        (Some("b.example.test"), &certs.b, "b"),
        (Some("B.Example.Test"), &certs.b, "b (case-insensitive)"),
        (None, &certs.d, "default (no SNI)"),
        (Some("c.example.test"), &certs.d, "default (unknown name)"),
    ];
    for (sni, want, what) in cases {
        let s = tls_connect(&c, addr, sni).await.unwrap();
        assert!(
            common::peer_leaf_der(&s) == *want,
            "SNI {sni:?}: expected certificate {what}"
        );
        // The connection is usable and proxied.
        let r = h1_get(s, sni.unwrap_or("127.0.0.1"), "/sni").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(hyper_header(&r, "x-seen-x-forwarded-proto"), "https");
        assert_eq!(body_text(r).await, "b1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_selects_http2_or_http1() {
    let b = Backend::start("b1").await;
    let certs = three_certs();
    let p = Proxy::start(&tls_config(
        &b,
        &tls_listener("tls", certs.dir.path(), "1.2"),
    ));
    let addr = p.addr("tls");

    // ALPN h2 (h2 preferred of the two) gives HTTP/2.
    let c = tls_client(&["h2", "http/1.1"], rustls::DEFAULT_VERSIONS);
    let s = tls_connect(&c, addr, Some("a.example.test")).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let r = h2_get(s, "https://a.example.test/alpn-h2").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(hyper_header(&r, "x-seen-version"), "HTTP/1.1");
    assert_eq!(hyper_header(&r, "x-seen-host"), "a.example.test");
    assert_eq!(body_text(r).await, "b1");

    // ALPN http/1.1 only gives HTTP/1.1.
    let c = tls_client(&["http/1.1"], rustls::DEFAULT_VERSIONS);
    let s = tls_connect(&c, addr, Some("a.example.test")).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let r = h1_get(s, "a.example.test", "/alpn-h1").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), Version::HTTP_11);
    assert_eq!(body_text(r).await, "b1");

    // No ALPN at all: HTTP/1.1.
    let c = tls_client(&[], rustls::DEFAULT_VERSIONS);
    let s = tls_connect(&c, addr, Some("a.example.test")).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), None);
    let r = h1_get(s, "a.example.test", "/no-alpn").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(b.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_min_version_is_enforced() {
    let b = Backend::start("b1").await;
    let certs = three_certs();
    let listeners = format!(
        "{}{}",
        tls_listener("v12", certs.dir.path(), "1.2"),
        tls_listener("v13", certs.dir.path(), "1.3")
    );
    let p = Proxy::start(&tls_config(&b, &listeners));
    let only12 = tls_client(&["http/1.1"], &[&rustls::version::TLS12]);
    let only13 = tls_client(&["http/1.1"], &[&rustls::version::TLS13]);

    // A TLS 1.2-only client works against min_version 1.2 ...
    let s = tls_connect(&only12, p.addr("v12"), Some("a.example.test"))
        .await
        .unwrap();
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let r = h1_get(s, "a.example.test", "/v12").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_text(r).await, "b1");

    // ... and is refused by min_version 1.3.
    let err = tls_connect(&only12, p.addr("v13"), Some("a.example.test")).await;
    assert!(
        err.is_err(),
        "a TLS 1.2-only client must not complete a handshake with min_version 1.3"
    );

    // TLS 1.3 works on both.
    for l in ["v12", "v13"] {
        let s = tls_connect(&only13, p.addr(l), Some("b.example.test"))
            .await
            .unwrap();
        assert_eq!(
            s.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert!(common::peer_leaf_der(&s) == certs.b);
        let r = h1_get(s, "b.example.test", "/v13").await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(b.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_are_reread_on_reload() {
    let b = Backend::start("b1").await;
    let certs = three_certs();
    let p = Proxy::start(&tls_config(
        &b,
        &tls_listener("tls", certs.dir.path(), "1.2"),
    ));
    let addr = p.addr("tls");
    let c = tls_client(&["http/1.1"], rustls::DEFAULT_VERSIONS);

    let s = tls_connect(&c, addr, Some("a.example.test")).await.unwrap();
    assert!(common::peer_leaf_der(&s) == certs.a);
    // A connection opened before the reload keeps working after it.
    let old_conn = s;

    // Renew a's and the default's files in place (same paths, new keys).
    let (_, _, a2) = common::write_cert(certs.dir.path(), "a", &["a.example.test"]);
    let (_, _, d2) = common::write_cert(certs.dir.path(), "d", &["default.example.test"]);
    assert!(a2 != certs.a && d2 != certs.d);
    // Without a reload the old certificate is still served.
    let s = tls_connect(&c, addr, Some("a.example.test")).await.unwrap();
    assert!(
        common::peer_leaf_der(&s) == certs.a,
        "certificates must not change before a reload"
    );

    let v = p
        .handle
        .reload()
        .expect("reload with renewed certificates succeeds");
    assert_eq!(v, 2);
    let s = tls_connect(&c, addr, Some("a.example.test")).await.unwrap();
    assert!(
        common::peer_leaf_der(&s) == a2,
        "after reload SNI a must present the renewed cert"
    );
    let s2 = tls_connect(&c, addr, None).await.unwrap();
    assert!(
        common::peer_leaf_der(&s2) == d2,
        "after reload the default must be the renewed cert"
    );
    let s3 = tls_connect(&c, addr, Some("b.example.test")).await.unwrap();
    assert!(
        common::peer_leaf_der(&s3) == certs.b,
        "an unchanged certificate stays"
    );
    let r = h1_get(s, "a.example.test", "/after-reload").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = h1_get(old_conn, "a.example.test", "/old-conn").await;
    assert_eq!(r.status(), StatusCode::OK);

    // A broken certificate file makes the reload fail and keeps the last
    // good certificates.
    std::fs::write(certs.dir.path().join("a.pem"), "not a certificate").unwrap();
    assert!(
        p.handle.reload().is_err(),
        "a reload with an unreadable certificate must fail"
    );
    let s = tls_connect(&c, addr, Some("a.example.test")).await.unwrap();
    assert!(
        common::peer_leaf_der(&s) == a2,
        "a failed reload keeps the previous certificate"
    );
}
