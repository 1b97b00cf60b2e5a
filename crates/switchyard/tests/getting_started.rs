//! docs/getting-started.md tells the truth: every configuration on the page
//! passes `switchyard check` without a warning, the outputs it quotes are
//! what the binary prints, and the last configuration, run against real
//! backends, does what the steps promise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Backend, Binary, RawHttp, bin, eventually, wait_admin_ready, write_cert};

const DEADLINE: Duration = Duration::from_secs(20);

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/getting-started.md");
    std::fs::read_to_string(path).unwrap()
}

/// The ```toml blocks of the page, in order.
fn configs(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```toml" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            out.push(format!("{}\n", block.join("\n")));
        }
    }
    out
}

/// A directory laid out as the walkthrough's `~/sy-demo`: the certificate
/// of step 4 in `certs/`, and `logs/`.
fn demo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    write_cert(
        &dir.path().join("certs"),
        "site",
        &["localhost", "api.localhost"],
    );
    dir
}

/// `switchyard check -c switchyard.toml` run in `dir`: exit code, stdout, stderr.
fn check_in(dir: &Path, toml: &str) -> (i32, String, String) {
    std::fs::write(dir.join("switchyard.toml"), toml).unwrap();
    let out = Command::new(bin())
        .args(["check", "-c", "switchyard.toml"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_configuration_on_the_page_passes_check_without_warnings() {
    let doc = doc();
    let configs = configs(&doc);
    assert_eq!(configs.len(), 4, "the walkthrough has four whole files");
    let dir = demo_dir();
    for (i, toml) in configs.iter().enumerate() {
        assert!(
            toml.starts_with("# switchyard.toml, step"),
            "block {i} is not a whole switchyard.toml:\n{toml}"
        );
        let (code, stdout, stderr) = check_in(dir.path(), toml);
        assert_eq!(code, 0, "block {i}:\n{stdout}{stderr}");
        assert_eq!(stderr, "", "block {i} has warnings");
        // The `check` outputs the page quotes are the real ones.
        let quoted = format!("# {}", stdout.trim_end());
        if i < 2 {
            assert!(doc.contains(&quoted), "the page should show {quoted:?}");
        }
    }
}

#[test]
fn the_error_shown_in_step_8_is_what_check_prints() {
    let doc = doc();
    let last = configs(&doc).pop().unwrap();
    let dir = demo_dir();
    let broken = last.replacen("interval = \"2s\"", "interval = \"2S\"", 1);
    let (code, _, stderr) = check_in(dir.path(), &broken);
    assert_eq!(code, 1, "{stderr}");
    let shown: String = stderr.lines().take(2).map(|l| format!("{l}\n")).collect();
    assert!(doc.contains(&shown), "the page should show:\n{shown}");
}

/// The last configuration with its fixed ports replaced: listeners and
/// admin on port 0, the four backends where the test started them.
fn runnable(toml: &str, backends: [&Backend; 4]) -> String {
    let mut t = toml
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0");
    for (port, b) in [9001, 9002, 9003, 9004].into_iter().zip(backends) {
        t = t.replace(&format!("127.0.0.1:{port}"), &b.addr.to_string());
    }
    t
}

/// A client that trusts the self-signed certificate and sends every
/// `*.localhost` name to the HTTPS listener, as curl -k does.
fn https_client(https: std::net::SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .resolve("localhost", https)
        .resolve("api.localhost", https)
        .timeout(DEADLINE)
        .build()
        .unwrap()
}

async fn backend_of(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200, "{:?}", r.headers());
    let name = r.headers()["x-backend"].to_str().unwrap().to_owned();
    let _ = r.bytes().await.unwrap();
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_walkthrough_does_what_it_says() {
    let web1 = Backend::start("web-9001").await;
    let web2 = Backend::start("web-9002").await;
    let v2 = Backend::start("web-v2-9003").await;
    let api = Backend::start("api-9004").await;
    let last = configs(&doc()).pop().unwrap();
    let dir = demo_dir();
    let root: PathBuf = dir.path().to_path_buf();
    std::fs::write(
        root.join("switchyard.toml"),
        runnable(&last, [&web1, &web2, &v2, &api]),
    )
    .unwrap();
    let bin = Binary::start_in(dir, &root, Path::new("switchyard.toml"), 2);
    wait_admin_ready(bin.admin.unwrap()).await;
    let (http, https) = (bin.listener_addr("http"), bin.listener_addr("https"));
    let port = https.port();

    // Step 4: plain HTTP is redirected, host, path and query kept.
    let mut raw = RawHttp::connect(http).await;
    raw.send(b"GET /assets/logo.txt?v=2 HTTP/1.1\r\nHost: localhost:8080\r\n\r\n")
        .await;
    let r = raw.read_response().await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://localhost:8443/assets/logo.txt?v=2")
    );
    // Plain HTTP to the TLS port: a readable 400.
    let mut raw = RawHttp::connect(https).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(raw.read_response().await.status, 400);

    // Step 5: by host, by path, the default.
    let c = https_client(https);
    let url = |host: &str, path: &str| format!("https://{host}:{port}{path}");
    let got = backend_of(c.get(url("api.localhost", "/")).send().await.unwrap()).await;
    assert_eq!(got, "api-9004");
    for _ in 0..10 {
        let r = c
            .get(url("localhost", "/assets/logo.txt"))
            .send()
            .await
            .unwrap();
        let got = backend_of(r).await;
        assert!(got == "web-9001" || got == "web-9002", "{got}");
    }

    // Step 6: the canary (forced by the header), and its share.
    let r = c
        .get(url("localhost", "/"))
        .header("x-canary", "web-v2")
        .send()
        .await
        .unwrap();
    assert_eq!(backend_of(r).await, "web-v2-9003");
    let mut to_v2 = 0;
    for _ in 0..400 {
        let r = c.get(url("localhost", "/")).send().await.unwrap();
        if backend_of(r).await == "web-v2-9003" {
            to_v2 += 1;
        }
    }
    // 10% of 400 is 40, with a standard deviation of 6.
    assert!(
        (15..=70).contains(&to_v2),
        "{to_v2} of 400 went to the canary"
    );

    // The sticky cookie, and a client that sends it back stays put.
    let r = c.get(url("localhost", "/assets/")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("sy_server="), "{cookie}");
    let first = backend_of(r).await;
    let pair = cookie.split(';').next().unwrap().to_owned();
    for _ in 0..10 {
        let r = c
            .get(url("localhost", "/assets/"))
            .header("cookie", &pair)
            .send()
            .await
            .unwrap();
        assert_eq!(backend_of(r).await, first);
    }

    // The access log, in logs/ beside the file, one JSON object a request.
    let log = root.join("logs/access.log");
    eventually("access log lines", DEADLINE, async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 400)
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["route"], "assets", "{line}");
    assert_eq!(line["status"], 200, "{line}");
}
