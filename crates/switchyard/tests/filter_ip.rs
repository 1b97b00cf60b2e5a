//! End to end: IP allow and deny lists. A listener's `ip` table refuses a
//! client right after accept (no HTTP answer, no TLS handshake; counted as
//! `downstream_errors_total{kind="ip_denied"}`); an `ip` filter answers 403
//! for the client address (X-Forwarded-For from a trusted proxy); list
//! files are read again on reload. A second client address on loopback,
//! 127.0.0.2, plays the refused client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use common::{
    Backend, Preamble, Proxy, eventually, route_all, scrape_metric, servers, tls_client, write_cert,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ALLOWED: &str = "127.0.0.1";
const REFUSED: &str = "127.0.0.2";
/// A trusted proxy in the tests that need one.
const PROXY: &str = "127.0.0.3";

/// A TCP connection to `addr` from the local address `from`. On loopback
/// a refused connection's reset can arrive before `connect` returns, so
/// the reset may be its error.
async fn connect_from(from: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let from: IpAddr = from.parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(addr).await
}

fn is_reset(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::ConnectionReset
}

/// What the proxy answers to `GET path` sent from `from`: the whole
/// answer (the request asks to close), or None when the connection was
/// closed without a byte.
async fn get_from(from: &str, addr: SocketAddr, path: &str, xff: Option<&str>) -> Option<String> {
    let mut tcp = match connect_from(from, addr).await {
        Ok(tcp) => tcp,
        Err(e) if is_reset(&e) => return None,
        Err(e) => panic!("connect from {from}: {e}"),
    };
    let xff = xff.map_or(String::new(), |x| format!("X-Forwarded-For: {x}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: app\r\n{xff}Connection: close\r\n\r\n");
    // A refused connection may already be reset: the write may fail too.
    let _ = tcp.write_all(req.as_bytes()).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got)).await;
    match read {
        Err(_) => panic!("no answer and no close within 10s from {from}"),
        Ok(Err(e)) if is_reset(&e) => {}
        Ok(Err(e)) => panic!("read from {from}: {e}"),
        Ok(Ok(_)) => {}
    }
    (!got.is_empty()).then(|| String::from_utf8_lossy(&got).into_owned())
}

/// The status code of an answer [`get_from`] read.
fn status(answer: &Option<String>) -> u16 {
    let text = answer.as_deref().expect("an answer");
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

async fn ip_denied(proxy: &Proxy, listener: &str) -> f64 {
    scrape_metric(
        proxy,
        "switchyard_downstream_errors_total",
        &[("listener", listener), ("kind", "ip_denied")],
    )
    .await
}

/// Writes an IP list file (one entry a line) and returns its path as TOML
/// can hold it.
fn write_list(dir: &Path, name: &str, entries: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, entries).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_listed_client_is_refused_at_accept() {
    let b = Backend::start("b").await;
    let toml = format!(
        "{}[listeners.main.ip]\ndeny = [\"{REFUSED}\"]\n{}",
        Preamble::default(),
        route_all(&servers(&[&b]), "", "")
    );
    let proxy = Proxy::start(&toml);
    let addr = proxy.addr("main");

    let ok = get_from(ALLOWED, addr, "/", None).await;
    assert_eq!(status(&ok), 200, "{ok:?}");
    assert_eq!(get_from(REFUSED, addr, "/", None).await, None);
    assert_eq!(get_from(REFUSED, addr, "/", None).await, None);
    eventually(
        "two refusals counted",
        Duration::from_secs(10),
        async || ip_denied(&proxy, "main").await == 2.0,
    )
    .await;
    assert_eq!(b.hits(), 1, "a refused client reaches no backend");
    // Refused connections are not accepted connections.
    assert_eq!(
        scrape_metric(
            &proxy,
            "switchyard_downstream_connections_total",
            &[("listener", "main")]
        )
        .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_refuses_before_the_handshake() {
    let b = Backend::start("b").await;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, _) = write_cert(certs.path(), "site", &["site.test"]);
    let toml = format!(
        r#"{preamble}
[listeners.secure]
address = "127.0.0.1:0"
[listeners.secure.tls]
certificates = [{{ cert = "{cert}", key = "{key}" }}]
[listeners.secure.ip]
allow = ["{ALLOWED}/32", "2001:db8::/32"]
{routes}"#,
        preamble = Preamble::default(),
        cert = cert.display(),
        key = key.display(),
        routes = route_all(&servers(&[&b]), "", ""),
    );
    let proxy = Proxy::start(&toml);
    let addr = proxy.addr("secure");
    let tls = tls_client(&["http/1.1"], &[&rustls::version::TLS13]);
    let name = rustls::pki_types::ServerName::try_from("site.test").unwrap();

    let allowed = tls.connect(name.clone(), connect_from(ALLOWED, addr).await.unwrap());
    assert!(allowed.await.is_ok(), "an allowed client completes TLS");
    match connect_from(REFUSED, addr).await {
        Ok(tcp) => {
            let refused = tokio::time::timeout(Duration::from_secs(10), tls.connect(name, tcp))
                .await
                .expect("the refused handshake ends at once");
            assert!(refused.is_err(), "no handshake for a client not allowed");
        }
        Err(e) => assert!(is_reset(&e), "{e}"),
    }

    eventually("the refusal counted", Duration::from_secs(10), async || {
        ip_denied(&proxy, "secure").await == 1.0
    })
    .await;
    let handshakes = async |kind: &str| {
        scrape_metric(
            &proxy,
            "switchyard_tls_handshakes_total",
            &[("listener", "secure"), ("kind", kind)],
        )
        .await
    };
    assert_eq!(handshakes("ok").await, 1.0);
    assert_eq!(handshakes("error").await, 0.0, "refused before any TLS");
    // The other listener has no rules: 127.0.0.2 is welcome there.
    let other = get_from(REFUSED, proxy.addr("main"), "/", None).await;
    assert_eq!(status(&other), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_filter_answers_403_for_the_client_address() {
    let b = Backend::start("b").await;
    let lists = tempfile::tempdir().unwrap();
    let blocked = write_list(lists.path(), "blocked.txt", "# abuse\n203.0.113.0/24\n");
    let toml = format!(
        r#"{preamble}filters = ["blocklist"]
[listeners.main.forwarded]
trusted_proxies = ["{ALLOWED}/32"]
[listeners.direct]
address = "127.0.0.1:0"

[filters.blocklist.ip]
deny_files = ["{blocked}"]

[[routes]]
name = "office"
upstream = "u"
filters = [{{ ip = {{ allow = ["192.0.2.0/24", "{ALLOWED}"] }} }}]
[routes.match]
path = "/office"

[[routes]]
name = "open"
upstream = "u"
[routes.match]
path = "/open"

[upstreams.u]
servers = [{servers}]
"#,
        preamble = Preamble::default(),
        servers = servers(&[&b]),
    );
    let proxy = Proxy::start(&toml);
    let (main, direct) = (proxy.addr("main"), proxy.addr("direct"));

    // The peer itself: allowed on `office`.
    assert_eq!(
        status(&get_from(ALLOWED, direct, "/office", None).await),
        200
    );
    // Not in the allow list: 403, Switchyard's own answer.
    let refused = get_from(REFUSED, direct, "/office", None).await;
    assert_eq!(status(&refused), 403);
    let text = refused.unwrap().to_ascii_lowercase();
    assert!(text.contains("x-switchyard-error: forbidden"), "{text}");
    assert!(text.contains("not in the allow list"), "{text}");
    // From a trusted proxy, the client X-Forwarded-For names decides.
    let via =
        async |path: &str, client: &str| status(&get_from(ALLOWED, main, path, Some(client)).await);
    assert_eq!(via("/office", "192.0.2.9").await, 200);
    assert_eq!(via("/office", "198.51.100.1").await, 403);
    // From an untrusted peer, X-Forwarded-For is not believed.
    let forged = get_from(REFUSED, direct, "/office", Some("192.0.2.9")).await;
    assert_eq!(status(&forged), 403);
    // The listener's filters: the blocklist refuses on every route, and on
    // paths no route serves (403, not 404).
    assert_eq!(via("/open", "198.51.100.1").await, 200);
    assert_eq!(via("/open", "203.0.113.5").await, 403);
    assert_eq!(via("/nothing", "203.0.113.5").await, 403);
    assert_eq!(via("/nothing", "198.51.100.1").await, 404);

    let forbidden = async |route: &str| {
        scrape_metric(
            &proxy,
            "switchyard_proxy_errors_total",
            &[("route", route), ("stage", "forbidden")],
        )
        .await
    };
    assert_eq!(forbidden("office").await, 3.0);
    assert_eq!(forbidden("open").await, 1.0);
    // Refused by a filter is not refused at accept.
    assert_eq!(ip_denied(&proxy, "main").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_list_file_applies_on_reload() {
    let b = Backend::start("b").await;
    let lists = tempfile::tempdir().unwrap();
    let deny = write_list(lists.path(), "deny.txt", &format!("{REFUSED}\n"));
    let allow = write_list(lists.path(), "allow.txt", "127.0.0.0/8\n");
    let toml = format!(
        "{}[listeners.main.ip]\ndeny_files = [\"{deny}\"]\n{}",
        Preamble::default(),
        route_all(
            &servers(&[&b]),
            &format!("filters = [{{ ip = {{ allow_files = [\"{allow}\"] }} }}]"),
            ""
        )
    );
    let proxy = Proxy::start(&toml);
    let addr = proxy.addr("main");
    assert_eq!(get_from(REFUSED, addr, "/", None).await, None);
    assert_eq!(status(&get_from(ALLOWED, addr, "/", None).await), 200);

    // A broken file: the reload is refused, naming the file and line, and
    // the running rules stay.
    write_list(lists.path(), "deny.txt", "# edited\n127.0.0.300\n");
    let error = proxy.handle.reload().unwrap_err().to_string();
    assert!(
        error.contains("deny.txt:2: invalid CIDR or IP address"),
        "{error}"
    );
    assert_eq!(get_from(REFUSED, addr, "/", None).await, None);

    // Fixed: 127.0.0.2 gets in at accept; the route's allow file, now
    // without it, answers 403.
    write_list(lists.path(), "deny.txt", "192.0.2.1\n");
    write_list(lists.path(), "allow.txt", &format!("{ALLOWED}\n"));
    assert_eq!(proxy.handle.reload().unwrap(), 2);
    assert_eq!(status(&get_from(REFUSED, addr, "/", None).await), 403);
    assert_eq!(status(&get_from(ALLOWED, addr, "/", None).await), 200);

    // Emptied, the allow file is refused: an empty allow list would let
    // everyone in.
    write_list(lists.path(), "allow.txt", "");
    let error = proxy.handle.reload().unwrap_err().to_string();
    assert!(error.contains("the allow list has no entries"), "{error}");
    assert_eq!(status(&get_from(REFUSED, addr, "/", None).await), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_entry_allow_list_serves() {
    let b = Backend::start("b").await;
    let lists = tempfile::tempdir().unwrap();
    let mut entries = String::with_capacity(2 << 20);
    for i in 0..100_000u32 {
        let [a, b, c, _] = (0x0a00_0000u32 + (i << 8)).to_be_bytes();
        writeln!(entries, "{a}.{b}.{c}.0/24").unwrap();
    }
    entries.push_str("127.0.0.1\n");
    let big = write_list(lists.path(), "big.txt", &entries);
    // Named once and used by two routes, and written in place on a third:
    // one trie (the unit tests check the sharing).
    let toml = format!(
        r#"{preamble}
[filters.office.ip]
allow_files = ["{big}"]

[[routes]]
name = "a"
upstream = "u"
filters = ["office"]
[routes.match]
path = "/a"

[[routes]]
name = "b"
upstream = "u"
filters = ["office"]
[routes.match]
path = "/b"

[[routes]]
name = "c"
upstream = "u"
filters = [{{ ip = {{ allow_files = ["{big}"] }} }}]
[routes.match]
path = "/c"

[upstreams.u]
servers = [{servers}]

[listeners.main.forwarded]
trusted_proxies = ["{PROXY}/32"]
"#,
        preamble = Preamble::default(),
        servers = servers(&[&b]),
    );
    let proxy = Proxy::start(&toml);
    let addr = proxy.addr("main");
    for path in ["/a", "/b", "/c"] {
        assert_eq!(status(&get_from(ALLOWED, addr, path, None).await), 200);
        assert_eq!(status(&get_from(REFUSED, addr, path, None).await), 403);
        // Through the trusted proxy: line 50,001 of the file (10.195.80.0/24)
        // is in the list, an address past its last /24 is not.
        let via = |client| get_from(PROXY, addr, path, Some(client));
        assert_eq!(status(&via("10.195.80.9").await), 200);
        assert_eq!(status(&via("11.200.0.1").await), 403);
    }
}
