//! End to end: the protocols Switchyard speaks on each side. h2c prior
//! knowledge and HTTP/1.1 on one port; TLS termination (SNI, ALPN, versions,
//! certificate reload); upstream h2c, TLS and ALPN; WebSocket; gRPC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{
    Backend, Proxy, TlsBackend, WsBackend, client, simple_config, tls_client, tls_connect,
};
use futures_util::{SinkExt, Stream, StreamExt};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

const WAIT: Duration = Duration::from_secs(20);

/// Runs `f` under a deadline so a hung exchange fails instead of hanging.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("response has no {name} header: {:?}", r.headers()))
}

fn hyper_header<'a, B>(r: &'a Response<B>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("response has no {name} header: {:?}", r.headers()))
}

fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(WAIT)
        .build()
        .unwrap()
}

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

// ---------------------------------------------------------------------------
// Cleartext: h2c prior knowledge and HTTP/1.1 on one port.

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

// ---------------------------------------------------------------------------
// TLS termination.

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

// ---------------------------------------------------------------------------
// Upstream protocols.

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

fn one_upstream_config(servers: &str, upstream_extra: &str) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
drain_timeout = "5s"
watch_config = false
[listeners.main]
address = "127.0.0.1:0"
[[routes]]
name = "all"
upstream = "u"
[upstreams.u]
servers = [{servers}]
{upstream_extra}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_verified_against_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let tb = TlsBackend::start(
        "tls-b",
        dir.path(),
        &["backend.example.test"],
        &["http/1.1"],
    )
    .await;
    let cfg = one_upstream_config(
        &format!("\"{}\"", tb.addr),
        &format!(
            "[upstreams.u.tls]\nca = \"{}\"\nserver_name = \"backend.example.test\"\n",
            tb.cert_path.display()
        ),
    );
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
    let tb = TlsBackend::start(
        "tls-b",
        dir.path(),
        &["backend.example.test"],
        &["http/1.1"],
    )
    .await;
    let (wrong_ca, _, _) =
        common::write_cert(dir.path(), "unrelated-ca", &["backend.example.test"]);
    let h1 = client();

    // A CA that did not sign the backend's certificate.
    let cfg = one_upstream_config(
        &format!("\"{}\"", tb.addr),
        &format!(
            "[upstreams.u.tls]\nca = \"{}\"\nserver_name = \"backend.example.test\"\n",
            wrong_ca.display()
        ),
    );
    let p = Proxy::start(&cfg);
    let r = within("request", h1.get(p.url("main", "/wrong-ca")).send())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(header(&r, "x-switchyard-error"), "tls");
    drop(p);

    // The right CA but a name the certificate does not carry.
    let cfg = one_upstream_config(
        &format!("\"{}\"", tb.addr),
        &format!(
            "[upstreams.u.tls]\nca = \"{}\"\nserver_name = \"other.example.test\"\n",
            tb.cert_path.display()
        ),
    );
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
    let both = TlsBackend::start(
        "both",
        dir.path(),
        &["backend.example.test"],
        &["h2", "http/1.1"],
    )
    .await;
    let only1 = TlsBackend::start(
        "only1",
        dir.path(),
        &["backend.example.test"],
        &["http/1.1"],
    )
    .await;
    let tls = |b: &TlsBackend| {
        format!(
            "[upstreams.u.tls]\nca = \"{}\"\nserver_name = \"backend.example.test\"\n",
            b.cert_path.display()
        )
    };
    let h1 = client();
    let h2 = h2c_client();

    // auto + a server offering h2: ALPN picks h2.
    let p = Proxy::start(&one_upstream_config(
        &format!("\"{}\"", both.addr),
        &format!("protocol = \"auto\"\n{}", tls(&both)),
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
    let p = Proxy::start(&one_upstream_config(
        &format!("\"{}\"", only1.addr),
        &format!("protocol = \"auto\"\n{}", tls(&only1)),
    ));
    let r = within("request", h2.get(p.url("main", "/auto1")).send())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-seen-alpn"), "http/1.1");
    assert_eq!(header(&r, "x-seen-version"), "HTTP/1.1");
    drop(p);

    // protocol = "h2" over TLS.
    let p = Proxy::start(&one_upstream_config(
        &format!("\"{}\"", both.addr),
        &format!("protocol = \"h2\"\n{}", tls(&both)),
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

// ---------------------------------------------------------------------------
// WebSocket.

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

// ---------------------------------------------------------------------------
// gRPC: tonic client -> proxy (h2c) -> tonic server (h2c).

mod grpc {
    use super::*;
    use tonic::{Code, Status};

    /// The one message type: a sequence number and a payload.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Echo {
        #[prost(uint32, tag = "1")]
        pub seq: u32,
        #[prost(bytes = "vec", tag = "2")]
        pub payload: Vec<u8>,
    }

    pub type Codec = tonic_prost::ProstCodec<Echo, Echo>;
    pub const MAX: usize = 16 << 20;
    type BoxFut<T> =
        Pin<Box<dyn std::future::Future<Output = Result<tonic::Response<T>, Status>> + Send>>;
    type BoxStream = Pin<Box<dyn Stream<Item = Result<Echo, Status>> + Send>>;

    fn reply(m: Echo) -> Echo {
        Echo {
            seq: m.seq + 1000,
            payload: m.payload,
        }
    }

    struct Unary;
    impl tonic::server::UnaryService<Echo> for Unary {
        type Response = Echo;
        type Future = BoxFut<Echo>;
        fn call(&mut self, req: tonic::Request<Echo>) -> Self::Future {
            Box::pin(async move {
                let seen_te = req
                    .metadata()
                    .get("te")
                    .map(|v| v.to_str().unwrap_or("").to_string())
                    .unwrap_or_default();
                let mut resp = tonic::Response::new(reply(req.into_inner()));
                resp.metadata_mut()
                    .insert("x-seen-te", seen_te.parse().unwrap());
                Ok(resp)
            })
        }
    }

    struct Fail;
    impl tonic::server::UnaryService<Echo> for Fail {
        type Response = Echo;
        type Future = BoxFut<Echo>;
        fn call(&mut self, _: tonic::Request<Echo>) -> Self::Future {
            Box::pin(async move {
                let mut md = tonic::metadata::MetadataMap::new();
                md.insert("x-reason", "test-says-no".parse().unwrap());
                Err(Status::with_metadata(
                    Code::PermissionDenied,
                    "denied by the test",
                    md,
                ))
            })
        }
    }

    /// Streams three messages, then fails: the status travels in real
    /// trailers after data, not in a trailers-only response.
    struct FailLate;
    impl tonic::server::ServerStreamingService<Echo> for FailLate {
        type Response = Echo;
        type ResponseStream = BoxStream;
        type Future = BoxFut<BoxStream>;
        fn call(&mut self, req: tonic::Request<Echo>) -> Self::Future {
            let m = req.into_inner();
            Box::pin(async move {
                let items: Vec<Result<Echo, Status>> = vec![
                    Ok(Echo {
                        seq: 1,
                        payload: m.payload.clone(),
                    }),
                    Ok(Echo {
                        seq: 2,
                        payload: m.payload.clone(),
                    }),
                    Ok(Echo {
                        seq: 3,
                        payload: m.payload,
                    }),
                    Err(Status::data_loss("late failure")),
                ];
                Ok(tonic::Response::new(
                    Box::pin(futures_util::stream::iter(items)) as BoxStream,
                ))
            })
        }
    }

    /// Echoes each message as it arrives.
    struct Bidi;
    impl tonic::server::StreamingService<Echo> for Bidi {
        type Response = Echo;
        type ResponseStream = BoxStream;
        type Future = BoxFut<BoxStream>;
        fn call(&mut self, req: tonic::Request<tonic::Streaming<Echo>>) -> Self::Future {
            let inbound = req.into_inner();
            Box::pin(async move {
                let out = futures_util::stream::unfold(Some(inbound), |state| async move {
                    let mut s = state?;
                    match s.message().await {
                        Ok(Some(m)) => Some((Ok(reply(m)), Some(s))),
                        Ok(None) => None,
                        Err(e) => Some((Err(e), None)),
                    }
                });
                Ok(tonic::Response::new(Box::pin(out) as BoxStream))
            })
        }
    }

    /// Adds `x-custom-trailer` to the trailers of every response.
    fn add_trailer(f: hyper::body::Frame<Bytes>) -> hyper::body::Frame<Bytes> {
        match f.into_trailers() {
            Ok(mut t) => {
                t.insert(
                    "x-custom-trailer",
                    http::HeaderValue::from_static("trailer-value"),
                );
                hyper::body::Frame::trailers(t)
            }
            Err(f) => f,
        }
    }

    type RespBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Status>;

    async fn route(req: Request<Incoming>) -> Result<Response<RespBody>, std::convert::Infallible> {
        let grpc = || {
            tonic::server::Grpc::new(Codec::default())
                .max_decoding_message_size(MAX)
                .max_encoding_message_size(MAX)
        };
        let path = req.uri().path().to_string();
        let resp = match path.as_str() {
            "/test.Echo/Unary" => grpc().unary(Unary, req).await,
            "/test.Echo/Fail" => grpc().unary(Fail, req).await,
            "/test.Echo/FailLate" => grpc().server_streaming(FailLate, req).await,
            "/test.Echo/Bidi" => grpc().streaming(Bidi, req).await,
            _ => Status::unimplemented(path).into_http(),
        };
        Ok(resp.map(|b| b.map_frame(add_trailer).boxed_unsync()))
    }

    /// A gRPC server speaking h2c, like a tonic server would.
    pub async fn server() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(route))
                        .await;
                });
            }
        });
        addr
    }

    pub async fn client(addr: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .timeout(WAIT)
            .connect_timeout(WAIT)
            .connect()
            .await
            .unwrap();
        let mut g = tonic::client::Grpc::new(ch)
            .max_decoding_message_size(MAX)
            .max_encoding_message_size(MAX);
        g.ready().await.unwrap();
        g
    }

    pub fn path(m: &'static str) -> http::uri::PathAndQuery {
        http::uri::PathAndQuery::from_static(m)
    }

    /// One gRPC message frame: flag 0 (uncompressed), length, protobuf.
    pub fn frame(m: &Echo) -> Bytes {
        let body = prost::Message::encode_to_vec(m);
        let mut b = BytesMut::with_capacity(5 + body.len());
        b.put_u8(0);
        b.put_u32(body.len() as u32);
        b.put_slice(&body);
        b.freeze()
    }

    pub fn unframe(mut b: Bytes) -> Vec<Echo> {
        let mut out = Vec::new();
        while b.has_remaining() {
            assert!(b.remaining() >= 5, "truncated gRPC frame header");
            assert_eq!(b.get_u8(), 0, "compressed frame");
            let n = b.get_u32() as usize;
            out.push(<Echo as prost::Message>::decode(b.split_to(n)).unwrap());
        }
        out
    }
}

async fn grpc_setup() -> (SocketAddr, Proxy) {
    let backend = grpc::server().await;
    let cfg = one_upstream_config(&format!("\"{backend}\""), "protocol = \"h2c\"");
    (backend, Proxy::start(&cfg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_and_large_message() {
    let (_, p) = grpc_setup().await;
    let mut g = grpc::client(p.addr("main")).await;

    let req = grpc::Echo {
        seq: 7,
        payload: b"hello grpc".to_vec(),
    };
    let resp = within(
        "unary",
        g.unary(
            tonic::Request::new(req),
            grpc::path("/test.Echo/Unary"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap();
    // `TE: trailers` must reach the server (it is hop-by-hop otherwise).
    assert_eq!(resp.metadata().get("x-seen-te").unwrap(), "trailers");
    // tonic merges trailers into the unary response metadata.
    assert_eq!(
        resp.metadata().get("x-custom-trailer").unwrap(),
        "trailer-value"
    );
    let m = resp.into_inner();
    assert_eq!(m.seq, 1007);
    assert_eq!(m.payload, b"hello grpc");

    // ~4 MiB in one message each way.
    let big: Vec<u8> = (0..(4 << 20) + 123)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    g.ready().await.unwrap();
    let resp = within(
        "large unary",
        g.unary(
            tonic::Request::new(grpc::Echo {
                seq: 1,
                payload: big.clone(),
            }),
            grpc::path("/test.Echo/Unary"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap();
    let m = resp.into_inner();
    assert_eq!(m.seq, 1001);
    assert_eq!(m.payload.len(), big.len());
    assert!(m.payload == big, "large payload corrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bidirectional_streaming_lock_step() {
    let (_, p) = grpc_setup().await;
    let mut g = grpc::client(p.addr("main")).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<grpc::Echo>(1);
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let msg = |i: u32| grpc::Echo {
        seq: i,
        payload: format!("message {i}").repeat(i as usize + 1).into_bytes(),
    };
    tx.send(msg(0)).await.unwrap();
    let resp = within(
        "bidi call",
        g.streaming(
            tonic::Request::new(outbound),
            grpc::path("/test.Echo/Bidi"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap();
    let mut inbound = resp.into_inner();
    // Lock step: message i+1 is only sent once the echo of i arrived, so
    // any buffering of a whole stream in the proxy would hang here.
    for i in 0..50u32 {
        let got = within("bidi echo", inbound.message())
            .await
            .unwrap()
            .expect("stream ended early");
        assert_eq!(got.seq, i + 1000);
        assert_eq!(got.payload, msg(i).payload);
        if i + 1 < 50 {
            tx.send(msg(i + 1)).await.unwrap();
        }
    }
    drop(tx);
    assert!(
        within("bidi end", inbound.message())
            .await
            .unwrap()
            .is_none()
    );
    let trailers = within("bidi trailers", inbound.trailers())
        .await
        .unwrap()
        .expect("trailers");
    assert_eq!(trailers.get("x-custom-trailer").unwrap(), "trailer-value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trailers_reach_the_client_as_trailers() {
    let (_, p) = grpc_setup().await;
    // A raw HTTP/2 client to see exactly what is a header and what a trailer.
    let tcp = tokio::net::TcpStream::connect(p.addr("main"))
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let call = |path: &str, m: &grpc::Echo| {
        Request::post(format!("http://{}{path}", p.addr("main")))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(grpc::frame(m)))
            .unwrap()
    };
    let m = grpc::Echo {
        seq: 5,
        payload: b"raw".to_vec(),
    };

    // OK: data, then trailers with grpc-status 0 and the custom trailer.
    let r = within("raw unary", send.send_request(call("/test.Echo/Unary", &m)))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(hyper_header(&r, "content-type"), "application/grpc");
    assert!(
        r.headers().get("grpc-status").is_none(),
        "grpc-status must come as a trailer"
    );
    assert!(r.headers().get("x-custom-trailer").is_none());
    let collected = within("raw body", r.into_body().collect()).await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("the response must end with trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(trailers.get("x-custom-trailer").unwrap(), "trailer-value");
    let msgs = grpc::unframe(collected.to_bytes());
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].seq, 1005);

    // Non-OK after data: the status is in the trailers.
    let r = within(
        "raw fail-late",
        send.send_request(call("/test.Echo/FailLate", &m)),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let collected = within("raw body", r.into_body().collect()).await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("the response must end with trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "15");
    // grpc-message is percent-encoded on the wire.
    assert_eq!(trailers.get("grpc-message").unwrap(), "late%20failure");
    assert_eq!(trailers.get("x-custom-trailer").unwrap(), "trailer-value");
    assert_eq!(grpc::unframe(collected.to_bytes()).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_error_status_propagates() {
    let (_, p) = grpc_setup().await;
    let mut g = grpc::client(p.addr("main")).await;
    let m = grpc::Echo {
        seq: 1,
        payload: b"x".to_vec(),
    };

    // Trailers-only error response.
    let err = within(
        "fail",
        g.unary(
            tonic::Request::new(m.clone()),
            grpc::path("/test.Echo/Fail"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert_eq!(err.message(), "denied by the test");
    assert_eq!(err.metadata().get("x-reason").unwrap(), "test-says-no");

    // Error after three messages.
    g.ready().await.unwrap();
    let resp = within(
        "fail late",
        g.server_streaming(
            tonic::Request::new(m.clone()),
            grpc::path("/test.Echo/FailLate"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap();
    let mut s = resp.into_inner();
    for i in 1..=3 {
        let got = within("stream item", s.message())
            .await
            .unwrap()
            .expect("item");
        assert_eq!(got.seq, i);
    }
    let err = within("stream end", s.message()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    assert_eq!(err.message(), "late failure");

    // Unknown method.
    g.ready().await.unwrap();
    let err = within(
        "unknown",
        g.unary(
            tonic::Request::new(m),
            grpc::path("/test.Echo/Nope"),
            grpc::Codec::default(),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}
