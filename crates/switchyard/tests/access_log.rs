//! End to end: the access log. JSON lines and the combined format written
//! to a file by the writer thread, `fields` selection and order, sampling,
//! a full queue dropping lines instead of slowing requests, SIGUSR1
//! reopening the file after rotation, a reload switching the log, and
//! Switchyard's own error answers and client aborts being logged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

const DROPPED: &str = "switchyard_access_log_dropped_total";

/// Routes: "api" (`/api`) to upstream "u" (`servers`), "bad" (`/bad`) to
/// "down" (a refused address); anything else is 404. Then `[access_log]`
/// with `access_log` as its keys.
fn config(servers: &[&Backend], access_log: &str) -> String {
    format!(
        r#"{}
[[routes]]
name = "api"
upstream = "u"
[routes.match]
path = "/api"

[[routes]]
name = "bad"
upstream = "down"
[routes.match]
path = "/bad"

[upstreams.u]
servers = [{}]

[upstreams.down]
servers = ["{}"]

[access_log]
{access_log}
"#,
        Preamble::default(),
        common::servers(servers),
        refused_addr()
    )
}

/// A body-echo backend "b", a temporary folder (kept alive by the caller)
/// and the path `access.log` in it.
async fn echo_and_log() -> (Backend, tempfile::TempDir, PathBuf) {
    let b = Backend::start_body_echo("b").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    (b, dir, log)
}

/// `path = "..."` for a TOML table.
fn path_key(p: &Path) -> String {
    format!("path = {:?}\n", p.to_str().unwrap())
}

/// The complete lines of the file at `p` (none when it does not exist).
fn lines(p: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(p) else {
        return Vec::new();
    };
    // A line is complete once its newline is written.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete.lines().map(str::to_string).collect()
}

/// Waits until the file at `p` has at least `n` complete lines; returns them.
async fn wait_lines(p: &Path, n: usize) -> Vec<String> {
    eventually(
        &format!("{} has {n} access log lines", p.display()),
        Duration::from_secs(20),
        async || lines(p).len() >= n,
    )
    .await;
    lines(p)
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// The JSON line whose `path` is `path`.
fn by_path(lines: &[String], path: &str) -> Value {
    lines
        .iter()
        .map(|l| json(l))
        .find(|v| v["path"] == path)
        .unwrap_or_else(|| panic!("no line for {path} in {lines:#?}"))
}

/// The field names of a JSON line, in the order they appear.
fn key_order(line: &str, names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|n| {
            line.find(&format!("\"{n}\":"))
                .unwrap_or_else(|| panic!("field {n} missing in {line}"))
        })
        .collect()
}

fn assert_rfc3339_ms(t: &str) {
    // 2025-01-31T12:00:00.123Z
    let b = t.as_bytes();
    assert_eq!(b.len(), 24, "time {t}");
    for (i, c) in b.iter().enumerate() {
        let want_digit = !matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 23);
        assert_eq!(c.is_ascii_digit(), want_digit, "time {t}");
    }
    assert_eq!(
        (b[4], b[7], b[10], b[13], b[16], b[19], b[23]),
        (b'-', b'-', b'T', b':', b':', b'.', b'Z'),
        "time {t}"
    );
}

fn non_negative(v: &Value, what: &str) -> f64 {
    let n = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(n >= 0.0, "{what} is negative: {n}");
    n
}

const ALL_FIELDS: [&str; 19] = [
    "time",
    "client",
    "method",
    "host",
    "path",
    "protocol",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "upstream_connect_ms",
    "ttfb_ms",
    "route",
    "upstream",
    "server",
    "attempts",
    "trace_id",
    "user_agent",
    "request_id",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_every_field_with_correct_values() {
    let (b, _dir, log) = echo_and_log().await;
    let proxy = Proxy::start(&config(&[&b], &path_key(&log)));
    let addr = proxy.addr("main");

    let r = client()
        .get(proxy.url("main", "/api/get?x=1&y=%22q%22"))
        .header("user-agent", "sy-test/1.0 \"quoted\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let r = client()
        .post(proxy.url("main", "/api/post"))
        .body("hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 11);
    let r = h2c_client()
        .get(proxy.url("main", "/api/h2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();

    let all = wait_lines(&log, 3).await;
    assert_eq!(all.len(), 3, "{all:#?}");
    for line in &all {
        let order = key_order(line, &ALL_FIELDS);
        assert!(order.is_sorted(), "fields out of order: {line}");
        assert_eq!(json(line).as_object().unwrap().len(), 19, "{line}");
    }

    let get = by_path(&all, "/api/get?x=1&y=%22q%22");
    assert_rfc3339_ms(get["time"].as_str().unwrap());
    let client: SocketAddr = get["client"].as_str().unwrap().parse().unwrap();
    assert!(client.ip().is_loopback());
    assert_eq!(get["method"], "GET");
    assert_eq!(get["host"], addr.to_string());
    assert_eq!(get["protocol"], "HTTP/1.1");
    assert_eq!(get["status"], 200);
    assert_eq!(get["bytes_in"], 0);
    assert_eq!(get["bytes_out"], 0);
    non_negative(&get["duration_ms"], "duration_ms");
    non_negative(&get["ttfb_ms"], "ttfb_ms");
    // The first request to the backend opened the connection.
    non_negative(&get["upstream_connect_ms"], "upstream_connect_ms");
    assert_eq!(get["route"], "api");
    assert_eq!(get["upstream"], "u");
    assert_eq!(get["server"], b.addr.to_string());
    assert!(get["attempts"].as_u64().unwrap() >= 1);
    assert!(get["trace_id"].is_null());
    assert_eq!(get["user_agent"], "sy-test/1.0 \"quoted\"");

    let post = by_path(&all, "/api/post");
    assert_eq!(post["method"], "POST");
    assert_eq!(post["status"], 200);
    assert_eq!(post["bytes_in"], 11);
    assert_eq!(post["bytes_out"], 11);
    assert!(post["user_agent"].is_null());
    let c = &post["upstream_connect_ms"];
    assert!(c.is_null() || c.as_f64().unwrap() >= 0.0, "{c}");

    let h2 = by_path(&all, "/api/h2");
    assert_eq!(h2["protocol"], "HTTP/2");
    assert_eq!(h2["host"], addr.to_string());
    assert_eq!(h2["bytes_out"], 0);
    assert_eq!(h2["route"], "api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_format_lines() {
    let (b, _dir, log) = echo_and_log().await;
    let proxy = Proxy::start(&config(
        &[&b],
        &format!("format = \"combined\"\n{}", path_key(&log)),
    ));
    let r = client()
        .post(proxy.url("main", "/api/c?q=1"))
        .header("user-agent", "sy-test/1.0")
        .header("referer", "http://example.test/from")
        .body("abcd")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();

    let all = wait_lines(&log, 1).await;
    let line = &all[0];
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains(" +0000] "), "{line}");
    assert!(
        line.contains(
            "] \"POST /api/c?q=1 HTTP/1.1\" 200 4 \"http://example.test/from\" \"sy-test/1.0\" "
        ),
        "{line}"
    );
    let extras = line.split("\"sy-test/1.0\" ").nth(1).unwrap();
    let keys: Vec<&str> = extras
        .split(' ')
        .map(|kv| kv.split('=').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "host",
            "bytes_in",
            "duration_ms",
            "upstream_connect_ms",
            "ttfb_ms",
            "route",
            "upstream",
            "server",
            "attempts",
            "trace_id",
            "request_id"
        ],
        "{line}"
    );
    assert!(extras.contains("bytes_in=4 "), "{line}");
    assert!(extras.contains("route=\"api\" upstream=\"u\" "), "{line}");
    assert!(
        extras.contains(&format!("server=\"{}\" attempts=1 trace_id=-", b.addr)),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_choose_and_order_the_keys() {
    let (b, _dir, log) = echo_and_log().await;
    let proxy = Proxy::start(&config(
        &[&b],
        &format!(
            "fields = [\"status\", \"path\", \"upstream\", \"bytes_out\"]\n{}",
            path_key(&log)
        ),
    ));
    let r = client()
        .post(proxy.url("main", "/api/s"))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let all = wait_lines(&log, 1).await;
    assert_eq!(
        all,
        [r#"{"status":200,"path":"/api/s","upstream":"u","bytes_out":3}"#]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_answered_by_switchyard_are_logged() {
    let (b, _dir, log) = echo_and_log().await;
    let proxy = Proxy::start(&config(&[&b], &path_key(&log)));
    let c = client();
    let r = c.get(proxy.url("main", "/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let n404 = r.bytes().await.unwrap().len() as u64;
    let r = c.get(proxy.url("main", "/bad/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    r.bytes().await.unwrap();

    let all = wait_lines(&log, 2).await;
    let nf = by_path(&all, "/nowhere");
    assert_eq!(nf["status"], 404);
    assert_eq!(nf["bytes_out"], n404);
    assert!(nf["route"].is_null() && nf["upstream"].is_null() && nf["server"].is_null());
    assert_eq!(nf["attempts"], 0);
    assert!(nf["ttfb_ms"].is_null() && nf["upstream_connect_ms"].is_null());
    non_negative(&nf["duration_ms"], "duration_ms");

    let bad = by_path(&all, "/bad/x");
    assert_eq!(bad["status"], 502);
    assert_eq!(bad["route"], "bad");
    assert_eq!(bad["upstream"], "down");
    assert!(bad["server"].is_string(), "{bad}");
    assert!(bad["attempts"].as_u64().unwrap() >= 1);
    assert!(bad["ttfb_ms"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_abort_mid_body_is_logged_with_the_bytes_sent() {
    const BIG: usize = 48 * 1024 * 1024;
    let body = bytes::Bytes::from(vec![b'x'; BIG]);
    let b = Backend::start_with(
        "big",
        std::sync::Arc::new(move |_req: &hyper::Request<hyper::body::Incoming>| {
            Some(hyper::Response::new(http_body_util::Full::new(
                body.clone(),
            )))
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let proxy = Proxy::start(&config(&[&b], &path_key(&log)));
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(proxy.addr("main"))
            .await
            .unwrap();
        tcp.write_all(b"GET /api/big HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        // Read the response head (and whatever follows in the same reads),
        // then hang up with most of the body unread.
        let mut got = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = within("the response head", tcp.read(&mut chunk))
                .await
                .unwrap();
            assert!(n > 0, "closed before the head");
            got.extend_from_slice(&chunk[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }

    let all = wait_lines(&log, 1).await;
    let v = by_path(&all, "/api/big");
    assert_eq!(v["status"], 200);
    let out = v["bytes_out"].as_u64().unwrap();
    assert!(out < BIG as u64, "bytes_out {out} of {BIG}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_lines_and_requests_never_wait() {
    use std::os::unix::fs::OpenOptionsExt;
    let b = Backend::start_body_echo("b").await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("access.fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo failed");
    // A reader that never reads: the writer thread blocks once the pipe and
    // its buffer are full, and the queue (16 lines) fills behind it.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let proxy = Proxy::start(&config(&[&b], &format!("queue = 16\n{}", path_key(&fifo))));
    // ~4 KiB lines: the pipe and the writer's buffer hold a few dozen.
    let ua = "u".repeat(4000);
    let c = client();
    const N: usize = 300;
    for i in 0..N {
        let r = within(
            "request while the access log is stuck",
            c.get(proxy.url("main", &format!("/api/{i}")))
                .header("user-agent", &ua)
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let dropped = scrape_metric(&proxy, DROPPED, &[]).await;
    assert!(
        (100.0..=N as f64).contains(&dropped),
        "dropped {dropped} of {N}"
    );
    drop(reader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_a_changed_access_log() {
    let b = Backend::start_body_echo("b").await;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.log");
    let second = dir.path().join("second.log");
    let proxy = Proxy::start(&config(&[&b], &path_key(&first)));
    let c = client();
    let r = c
        .get(proxy.url("main", "/api/before"))
        .send()
        .await
        .unwrap();
    r.bytes().await.unwrap();
    wait_lines(&first, 1).await;

    proxy.write_config(&config(
        &[&b],
        &format!("format = \"combined\"\n{}", path_key(&second)),
    ));
    proxy.handle.reload().unwrap();
    let r = c.get(proxy.url("main", "/api/after")).send().await.unwrap();
    r.bytes().await.unwrap();
    let all = wait_lines(&second, 1).await;
    assert!(
        all[0].contains("\"GET /api/after HTTP/1.1\" 200"),
        "{all:#?}"
    );
    let old = lines(&first);
    assert!(
        old.iter().all(|l| !l.contains("/api/after")),
        "the old log got a line after the reload: {old:#?}"
    );

    // Removing [access_log] turns it off.
    proxy.write_config(&format!(
        r#"{}
[[routes]]
name = "api"
upstream = "u"
[upstreams.u]
servers = ["{}"]
"#,
        Preamble::default(),
        b.addr
    ));
    proxy.handle.reload().unwrap();
    let r = c.get(proxy.url("main", "/api/off")).send().await.unwrap();
    r.bytes().await.unwrap();
    let r = c.get(proxy.url("main", "/api/off2")).send().await.unwrap();
    r.bytes().await.unwrap();
    for p in [&first, &second] {
        assert!(lines(p).iter().all(|l| !l.contains("/api/off")));
    }
}

/// The real binary with `[access_log]` keys `access_log`.
async fn binary(b: &Backend, access_log: &str) -> Binary {
    let bin = Binary::start(&config(&[b], access_log), 1);
    wait_admin_ready(bin.admin.unwrap()).await;
    bin
}

async fn get_ok(c: &reqwest::Client, url: String) {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_logs_about_the_configured_share() {
    let (b, _dir, log) = echo_and_log().await;
    let mut bin = binary(&b, &format!("sample = 0.5\n{}", path_key(&log))).await;
    let base = format!("http://{}", bin.listener_addr("main"));
    let c = client();
    const N: usize = 400;
    for i in 0..N {
        get_ok(&c, format!("{base}/api/{i}")).await;
    }
    // A graceful stop writes out every queued line.
    bin.signal("TERM");
    assert_eq!(bin.wait_exit(Duration::from_secs(30)), Some(0));
    let n = lines(&log).len();
    assert!(
        (100..=300).contains(&n),
        "{n} of {N} requests logged at 0.5"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_file_after_rotation() {
    let (b, dir, log) = echo_and_log().await;
    let rotated: PathBuf = dir.path().join("access.log.1");
    let bin = binary(&b, &path_key(&log)).await;
    let base = format!("http://{}", bin.listener_addr("main"));
    let c = client();
    for i in 0..3 {
        get_ok(&c, format!("{base}/api/before/{i}")).await;
    }
    wait_lines(&log, 3).await;

    std::fs::rename(&log, &rotated).unwrap();
    bin.signal("USR1");
    eventually(
        "SIGUSR1 recreates the access log",
        Duration::from_secs(20),
        async || log.exists(),
    )
    .await;
    for i in 0..3 {
        get_ok(&c, format!("{base}/api/after/{i}")).await;
    }
    let new = wait_lines(&log, 3).await;
    assert_eq!(new.len(), 3, "{new:#?}");
    assert!(new.iter().all(|l| l.contains("/api/after/")), "{new:#?}");
    let old = lines(&rotated);
    assert_eq!(old.len(), 3, "{old:#?}");
    assert!(old.iter().all(|l| l.contains("/api/before/")), "{old:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_is_the_requests_w3c_trace_id_when_tracing_is_on() {
    let (b, _dir, log) = echo_and_log().await;
    // Spans go to a closed port: exports fail, the trace ids are still used.
    let tracing = format!(
        "\n[tracing]\nendpoint = \"http://{}/v1/traces\"\n",
        refused_addr()
    );
    let proxy = Proxy::start(&format!("{}{tracing}", config(&[&b], &path_key(&log))));
    let c = client();
    let r = c
        .get(proxy.url("main", "/api/continued"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    r.bytes().await.unwrap();
    get_ok(&c, proxy.url("main", "/api/new")).await;
    let all = wait_lines(&log, 2).await;
    assert_eq!(
        by_path(&all, "/api/continued")["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let new = by_path(&all, "/api/new");
    let id = new["trace_id"].as_str().unwrap();
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{id}"
    );
}
