//! End to end: `proxy_protocol = true` on a listener. Each connection
//! starts with a PROXY header (v1 text or v2 binary) as a layer-4 balancer
//! sends it; the client it names is the one the backend sees in
//! X-Forwarded-For and `Forwarded`, the one filters see as `${client_ip}`,
//! the one the access log writes and the one the listener's IP lists judge.
//! A connection without a valid header is closed and counted. The tests
//! play the balancer themselves, writing the header on a plain socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{
    Backend, Preamble, Proxy, RawHttp, eventually, route_all, scrape_metric, servers, tls_client,
    write_cert,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A v1 header for a connection from `client` (to port 443).
fn v1(client: &str) -> Vec<u8> {
    let c: SocketAddr = client.parse().unwrap();
    let (family, dst) = if c.is_ipv4() {
        ("TCP4", "127.0.0.1")
    } else {
        ("TCP6", "::1")
    };
    format!("PROXY {family} {} {dst} {} 443\r\n", c.ip(), c.port()).into_bytes()
}

/// A v2 `PROXY` header for a connection from `client` (to port 443), with
/// a TLV of a type nobody defined, which must be skipped.
fn v2(client: &str) -> Vec<u8> {
    let c: SocketAddr = client.parse().unwrap();
    let mut rest = Vec::new();
    let family = match c.ip() {
        std::net::IpAddr::V4(ip) => {
            rest.extend_from_slice(&ip.octets());
            rest.extend_from_slice(&[127, 0, 0, 1]);
            0x11
        }
        std::net::IpAddr::V6(ip) => {
            rest.extend_from_slice(&ip.octets());
            rest.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
            0x21
        }
    };
    rest.extend_from_slice(&c.port().to_be_bytes());
    rest.extend_from_slice(&443u16.to_be_bytes());
    rest.extend_from_slice(&[0xe0, 0x00, 0x03, b'a', b'b', b'c']);
    v2_raw(0x21, family, &rest)
}

/// A v2 `LOCAL` header: the balancer's own connection.
fn v2_local() -> Vec<u8> {
    v2_raw(0x20, 0x00, &[])
}

fn v2_raw(version_command: u8, family: u8, rest: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(version_command);
    h.push(family);
    h.extend_from_slice(&u16::try_from(rest.len()).unwrap().to_be_bytes());
    h.extend_from_slice(rest);
    h
}

/// Sends `header`, then `GET path` (with `extra` header lines) asking to
/// close. The answer, or None when the connection was closed without one.
async fn get(
    addr: SocketAddr,
    header: &[u8],
    path: &str,
    extra: &str,
) -> Option<common::RawResponse> {
    let mut raw = RawHttp::connect(addr).await;
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(
        format!("GET {path} HTTP/1.1\r\nHost: app\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    );
    raw.send(&bytes).await;
    if raw.closed().await {
        return None;
    }
    Some(raw.read_response().await)
}

async fn errors(proxy: &Proxy, kind: &str) -> f64 {
    scrape_metric(
        proxy,
        "switchyard_downstream_errors_total",
        &[("listener", "main"), ("kind", kind)],
    )
    .await
}

/// The preamble with `proxy_protocol = true` on listener `main`, then
/// `main_keys` (more keys of `[listeners.main]`), then `rest`.
fn config(main_keys: &str, rest: &str) -> String {
    format!(
        "{}proxy_protocol = true\n{main_keys}\n{rest}",
        Preamble::default()
    )
}

fn path_key(p: &Path) -> String {
    format!("path = {:?}\n", p.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_headers_name_the_client() {
    let b = Backend::start("b").await;
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("access.log");
    let toml = config(
        "",
        &format!(
            "[listeners.main.forwarded]\nforwarded = true\n{}\n[access_log]\nformat = \"json\"\nfields = [\"client\", \"path\"]\n{}",
            route_all(
                &servers(&[&b]),
                r#"filters = [{ headers = { request = { set = { x-client = "${client_ip}" } } } }]"#,
                ""
            ),
            path_key(&log)
        ),
    );
    let proxy = Proxy::start(&toml);
    let addr = proxy.addr("main");

    let r = get(addr, &v1("203.0.113.7:40000"), "/v1", "")
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(r.header("x-seen-x-client"), Some("203.0.113.7"));
    assert_eq!(
        r.header("x-seen-forwarded"),
        Some("for=203.0.113.7;proto=http;host=\"app\"")
    );

    let r = get(addr, &v2("[2001:db8::7]:40000"), "/v2", "")
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-x-forwarded-for"), Some("2001:db8::7"));
    assert_eq!(r.header("x-seen-x-client"), Some("2001:db8::7"));
    assert_eq!(
        r.header("x-seen-forwarded"),
        Some("for=\"[2001:db8::7]\";proto=http;host=\"app\"")
    );

    let r = get(addr, &v1("198.51.100.9:40000"), "/v1-tcp4", "")
        .await
        .expect("answer");
    assert_eq!(r.header("x-seen-x-forwarded-for"), Some("198.51.100.9"));

    // LOCAL (the balancer's health check): the TCP peer stays the client.
    let r = get(addr, &v2_local(), "/local", "").await.expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-seen-x-forwarded-for"), Some("127.0.0.1"));

    // v1 UNKNOWN, likewise.
    let r = get(addr, b"PROXY UNKNOWN\r\n", "/unknown", "")
        .await
        .expect("answer");
    assert_eq!(r.header("x-seen-x-forwarded-for"), Some("127.0.0.1"));

    // The access log writes the stated client.
    let mut lines = Vec::new();
    eventually(
        "five access log lines",
        Duration::from_secs(10),
        async || {
            lines = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            lines.len() == 5
        },
    )
    .await;
    // Lines of requests served by different workers within one 10 ms
    // batch may come out of order: compare them sorted.
    let mut clients: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let client: SocketAddr = v["client"].as_str().unwrap().parse().unwrap();
            // The stated clients keep their stated port too.
            if !client.ip().is_loopback() {
                assert_eq!(client.port(), 40000, "{l}");
            }
            format!("{} {}", v["path"].as_str().unwrap(), client.ip())
        })
        .collect();
    clients.sort();
    assert_eq!(
        clients,
        [
            "/local 127.0.0.1",
            "/unknown 127.0.0.1",
            "/v1 203.0.113.7",
            "/v1-tcp4 198.51.100.9",
            "/v2 2001:db8::7",
        ]
    );
    assert_eq!(b.hits(), 5);
    for kind in [
        "proxy_protocol_missing",
        "proxy_protocol_invalid",
        "proxy_protocol_timeout",
    ] {
        assert_eq!(errors(&proxy, kind).await, 0.0, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_follows_the_header() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let b = Backend::start("b").await;
    let proxy = Proxy::start(&config("", &route_all(&servers(&[&b]), "", "")));
    let mut tcp = TcpStream::connect(proxy.addr("main")).await.unwrap();
    tcp.write_all(&v2("192.0.2.55:1234")).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://app/h2")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .expect("an answer within 10s")
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-seen-x-forwarded-for"], "192.0.2.55");
    let _ = resp.into_body().collect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_valid_header_is_closed_and_counted() {
    let b = Backend::start("b").await;
    let proxy = Proxy::start(&config(
        "request_header_timeout = \"300ms\"",
        &route_all(&servers(&[&b]), "", ""),
    ));
    let addr = proxy.addr("main");

    // Plain HTTP, as from a client that bypassed the balancer.
    assert!(get(addr, b"", "/", "").await.is_none());
    // A TLS ClientHello.
    let mut raw = RawHttp::connect(addr).await;
    raw.send(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")
        .await;
    assert!(raw.closed().await);
    // Malformed: a bad address, a line too long, a v2 header with a bad
    // command.
    assert!(
        get(addr, b"PROXY TCP4 203.0.113.300 127.0.0.1 1 2\r\n", "/", "")
            .await
            .is_none()
    );
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(200, b'x');
    assert!(get(addr, &long, "/", "").await.is_none());
    assert!(get(addr, &v2_raw(0x23, 0x00, &[]), "/", "").await.is_none());
    // Half a header, then nothing: closed at request_header_timeout.
    let mut raw = RawHttp::connect(addr).await;
    raw.send(b"PROXY TCP4 203.0.113.7").await;
    assert!(raw.closed().await);
    // A connection closed before its first byte (a TCP health check) is
    // not an error.
    drop(TcpStream::connect(addr).await.unwrap());

    eventually("refusals counted", Duration::from_secs(10), async || {
        errors(&proxy, "proxy_protocol_missing").await == 2.0
            && errors(&proxy, "proxy_protocol_invalid").await == 3.0
            && errors(&proxy, "proxy_protocol_timeout").await == 1.0
    })
    .await;
    assert_eq!(b.hits(), 0);
    // The listener still serves clients that send a header.
    let r = get(addr, &v1("203.0.113.7:1"), "/", "")
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(errors(&proxy, "proxy_protocol_missing").await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_ip_lists_judge_the_stated_client() {
    let b = Backend::start("b").await;
    // The TCP peer (127.0.0.1, the "balancer") is on neither list: only
    // the client in the header counts.
    let toml = config(
        "",
        &format!(
            "[listeners.main.ip]\nallow = [\"198.51.100.0/24\", \"2001:db8::/32\"]\ndeny = [\"198.51.100.66\"]\n{}",
            route_all(&servers(&[&b]), "", "")
        ),
    );
    let proxy = Proxy::start(&toml);
    let addr = proxy.addr("main");

    let r = get(addr, &v1("198.51.100.1:5000"), "/", "")
        .await
        .expect("allowed");
    assert_eq!(r.status, 200);
    let r = get(addr, &v2("[2001:db8::1]:5000"), "/", "")
        .await
        .expect("allowed");
    assert_eq!(r.status, 200);
    assert!(
        get(addr, &v1("198.51.100.66:5000"), "/", "")
            .await
            .is_none(),
        "deny-listed"
    );
    assert!(
        get(addr, &v2("203.0.113.7:5000"), "/", "").await.is_none(),
        "not allowed"
    );
    // LOCAL: judged as the TCP peer, which is not on the allow list.
    assert!(
        get(addr, &v2_local(), "/", "").await.is_none(),
        "peer not allowed"
    );
    eventually(
        "three refusals counted",
        Duration::from_secs(10),
        async || errors(&proxy, "ip_denied").await == 3.0,
    )
    .await;
    assert_eq!(b.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_are_judged_on_the_stated_client() {
    let b = Backend::start("b").await;
    let toml = config(
        "",
        &format!(
            "[listeners.main.forwarded]\ntrusted_proxies = [\"198.51.100.0/24\"]\n{}",
            route_all(
                &servers(&[&b]),
                r#"filters = [{ headers = { request = { set = { x-client = "${client_ip}" } } } }]"#,
                ""
            )
        ),
    );
    let proxy = Proxy::start(&toml);
    let addr = proxy.addr("main");
    let xff = "X-Forwarded-For: 192.0.2.44\r\n";

    // The stated client is a trusted proxy: what it forwarded is kept and
    // names the client.
    let r = get(addr, &v1("198.51.100.1:5000"), "/", xff)
        .await
        .expect("answer");
    assert_eq!(
        r.header("x-seen-x-forwarded-for"),
        Some("192.0.2.44, 198.51.100.1")
    );
    assert_eq!(r.header("x-seen-x-client"), Some("192.0.2.44"));
    // The stated client is not trusted: its X-Forwarded-For is dropped.
    let r = get(addr, &v1("203.0.113.7:5000"), "/", xff)
        .await
        .expect("answer");
    assert_eq!(r.header("x-seen-x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(r.header("x-seen-x-client"), Some("203.0.113.7"));
    // Neither is the balancer itself (the TCP peer, 127.0.0.1) trusted
    // for what a LOCAL connection forwards.
    let r = get(addr, &v2_local(), "/", xff).await.expect("answer");
    assert_eq!(r.header("x-seen-x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_follows_the_header() {
    let b = Backend::start("b").await;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, _) = write_cert(certs.path(), "site", &["site.test"]);
    let toml = config(
        "",
        &format!(
            "[listeners.main.tls]\ncertificates = [{{ cert = \"{}\", key = \"{}\" }}]\n{}",
            cert.display(),
            key.display(),
            route_all(&servers(&[&b]), "", "")
        ),
    );
    let proxy = Proxy::start(&toml);
    let addr = proxy.addr("main");
    let connector = tls_client(&["http/1.1"], &[&rustls::version::TLS13]);

    for (header, client) in [
        (v1("203.0.113.7:1000"), "203.0.113.7"),
        (v2("[2001:db8::9]:1000"), "2001:db8::9"),
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&header).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("site.test").unwrap();
        let mut tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .expect("handshake within 10s")
            .unwrap();
        tls.write_all(b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
            .await
            .expect("answer within 10s")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert!(
            answer.contains(&format!("x-seen-x-forwarded-for: {client}\r\n")),
            "{answer}"
        );
        assert!(
            answer.contains("x-seen-x-forwarded-proto: https\r\n"),
            "{answer}"
        );
    }

    // A TLS client that skips the header is refused before any handshake.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("site.test").unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .expect("refused within 10s");
    assert!(res.is_err());
    eventually("the refusal counted", Duration::from_secs(10), async || {
        errors(&proxy, "proxy_protocol_missing").await == 1.0
    })
    .await;
    assert_eq!(
        scrape_metric(
            &proxy,
            "switchyard_tls_handshakes_total",
            &[("listener", "main"), ("kind", "ok")]
        )
        .await,
        2.0
    );
}

/// A real HAProxy in TCP mode in front of the listener, killed on drop.
struct HaProxy {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1 (bound, then released for HAProxy to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts HAProxy with one TCP frontend per entry of `server_options`, each
/// to `target` with those options (`send-proxy`, `send-proxy-v2 check`);
/// returns it and the frontends' addresses. None when HAProxy is not
/// installed and SWITCHYARD_SKIP_HAPROXY=1 (without that, it fails).
async fn haproxy(
    target: SocketAddr,
    server_options: &[&str],
) -> Option<(HaProxy, Vec<SocketAddr>)> {
    let bin = [
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    let Some(bin) = bin else {
        if std::env::var("SWITCHYARD_SKIP_HAPROXY").as_deref() == Ok("1") {
            eprintln!("SWITCHYARD_SKIP_HAPROXY=1 and no haproxy installed: skipped");
            return None;
        }
        panic!(
            "this test needs HAProxy (Debian: apt-get install -y haproxy), \
             or SWITCHYARD_SKIP_HAPROXY=1 to skip it"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::from(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n",
    );
    let mut fronts = Vec::new();
    for (i, opts) in server_options.iter().enumerate() {
        let port = free_port();
        fronts.push(SocketAddr::from(([127, 0, 0, 1], port)));
        cfg.push_str(&format!(
            "frontend f{i}\n  bind 127.0.0.1:{port}\n  default_backend b{i}\nbackend b{i}\n  server s{i} {target} {opts} inter 100ms\n"
        ));
    }
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = std::process::Command::new(bin)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let h = HaProxy { child, _dir: dir };
    for f in &fronts {
        eventually("haproxy listening", Duration::from_secs(10), async || {
            TcpStream::connect(f).await.is_ok()
        })
        .await;
    }
    Some((h, fronts))
}

/// GET / through `front` from the local address 127.0.0.2, so that the
/// client HAProxy states differs from HAProxy's own address.
async fn get_from_127_0_0_2(front: SocketAddr) -> common::RawResponse {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut tcp = socket.connect(front).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("answer within 10s")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    common::RawResponse {
        status,
        status_line: String::new(),
        headers,
        body: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_send_proxy_v1_and_v2() {
    let b = Backend::start("b").await;
    let proxy = Proxy::start(&config("", &route_all(&servers(&[&b]), "", "")));
    // v1, and v2 with health checks (HAProxy sends them as LOCAL).
    let Some((_haproxy, fronts)) = haproxy(
        proxy.addr("main"),
        &["send-proxy", "send-proxy-v2 check check-send-proxy"],
    )
    .await
    else {
        return;
    };
    for front in fronts {
        let r = get_from_127_0_0_2(front).await;
        assert_eq!(r.status, 200, "through {front}");
        assert_eq!(r.header("x-seen-x-forwarded-for"), Some("127.0.0.2"));
    }
    // HAProxy's health checks (connections beyond the two requests) come
    // and go; none is refused.
    eventually(
        "health checks arrive",
        Duration::from_secs(10),
        async || {
            scrape_metric(
                &proxy,
                "switchyard_downstream_connections_total",
                &[("listener", "main")],
            )
            .await
                >= 5.0
        },
    )
    .await;
    for kind in [
        "proxy_protocol_missing",
        "proxy_protocol_invalid",
        "proxy_protocol_timeout",
    ] {
        assert_eq!(errors(&proxy, kind).await, 0.0, "{kind}");
    }
}
