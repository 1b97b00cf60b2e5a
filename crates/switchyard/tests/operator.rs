//! What a new operator hit in the first hour (issue "Operator experience"):
//! relative paths with `-c dir/file`, a second instance on the same port,
//! settings that need a restart, process logs of the real binary, and the
//! file watcher's debounce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Backend, Binary, Proxy, admin_get, bin, client, eventually, route_all, servers,
    wait_admin_ready, write_cert,
};

const DEADLINE: Duration = Duration::from_secs(20);

/// `[admin]`, `[runtime]` and listener `main` on port 0, as raw TOML.
fn head(workers: usize, watch: bool) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = {workers}
drain_timeout = "1s"
watch_config = {watch}
watch_debounce = "200ms"
[listeners.main]
address = "127.0.0.1:0"
"#
    )
}

/// Runs `switchyard ARGS` in `cwd`, killing it if it is still running after
/// the deadline (a `run` that should have refused to start).
fn run_to_exit(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("switchyard {args:?} did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_paths_resolve_once_against_the_config_files_directory() {
    let backend = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let second = dir.path().join("second");
    std::fs::create_dir_all(second.join("logs")).unwrap();
    std::fs::create_dir_all(second.join("certs")).unwrap();
    write_cert(&second.join("certs"), "site", &["localhost"]);
    let toml = format!(
        r#"{}
[listeners.secure]
address = "127.0.0.1:0"
[listeners.secure.tls]
certificates = [{{ cert = "certs/site.pem", key = "certs/site.key", server_names = ["localhost"] }}]
[access_log]
path = "logs/access.log"
{}"#,
        head(1, false),
        route_all(&servers(&[&backend]), "", "")
    );
    std::fs::write(second.join("switchyard.toml"), &toml).unwrap();
    let cwd = dir.path().to_path_buf();

    // `check` and `run` read the same file from its parent directory.
    let (code, stdout, stderr) = run_to_exit(&cwd, &["check", "-c", "second/switchyard.toml"], &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let log = second.join("logs/access.log");
    let bin = Binary::start_in(dir, &cwd, Path::new("second/switchyard.toml"), 2);
    let url = format!("http://{}/through-second", bin.listener_addr("main"));
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    eventually("the access log line in second/logs", DEADLINE, async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("/through-second"))
    })
    .await;
    assert!(!cwd.join("second/second").exists());

    // A reload resolves them the same way.
    bin.signal("HUP");
    bin.wait_log("of the reload", DEADLINE, |v| {
        v["fields"]["message"] == "configuration reloaded" && v["fields"]["version"] == 2
    });
}

/// `[admin]` and listener `main` on `addr`, one route to `backend`.
fn config_on(addr: SocketAddr, backend: &Backend) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 2
[listeners.main]
address = "{addr}"
{}"#,
        route_all(&servers(&[backend]), "", "")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_another_process_is_an_error_at_start() {
    let backend = Backend::start("a").await;
    let first = Binary::start(&config_on("127.0.0.1:0".parse().unwrap(), &backend), 1);
    let taken = first.listener_addr("main");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("second.toml"), config_on(taken, &backend)).unwrap();

    // SO_REUSEPORT would let the second process join the first one's port.
    let (code, _, stderr) = run_to_exit(
        dir.path(),
        &["run", "-c", "second.toml"],
        &[("SWITCHYARD_LOG_FORMAT", "text")],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot bind listener main on {taken}: address in use by another process"
        )),
        "{stderr}"
    );
    // Said once, on one line, without terminal colours in a pipe.
    assert_eq!(stderr.matches("address in use").count(), 1, "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escapes in a pipe: {stderr:?}"
    );

    // The first instance keeps the port, alone.
    let url = format!("http://{taken}/");
    for _ in 0..20 {
        assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    }
    assert_eq!(backend.hits(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_need_a_restart_are_reported_and_shown_as_pending() {
    let backend = Backend::start("a").await;
    let route = route_all(&servers(&[&backend]), "", "");
    let proxy = Proxy::start(&format!("{}{route}", head(2, false)));
    let admin = proxy.admin();
    wait_admin_ready(admin).await;

    let changed = format!("{}{route}", head(1, false))
        .replace(
            "address = \"127.0.0.1:0\"\n[runtime]",
            "address = \"127.0.0.1:1\"\n[runtime]",
        )
        .replace("[runtime]\n", "[runtime]\nlog_level = \"debug\"\n");
    proxy.write_config(&changed);
    assert_eq!(proxy.handle.reload().unwrap(), 2);

    let (status, body) = admin_get(admin, "/config").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    // What runs...
    assert_eq!(v["config"]["runtime"]["workers"], 2);
    assert_eq!(v["config"]["runtime"]["log_level"], "info");
    assert_eq!(v["config"]["admin"]["address"], "127.0.0.1:0");
    // ...and what will, next to it.
    let pending: Vec<(String, serde_json::Value, serde_json::Value)> = v["pending_restart"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_owned(),
                p["running"].clone(),
                p["configured"].clone(),
            )
        })
        .collect();
    assert_eq!(
        pending,
        vec![
            ("runtime.workers".into(), 2.into(), 1.into()),
            (
                "admin.address".into(),
                "127.0.0.1:0".into(),
                "127.0.0.1:1".into()
            ),
            ("runtime.log_level".into(), "info".into(), "debug".into()),
        ]
    );
    let (_, reloads) = admin_get(admin, "/reloads").await;
    let reloads: serde_json::Value = serde_json::from_str(&reloads).unwrap();
    let warnings = reloads["reloads"][0]["warnings"].to_string();
    for key in ["runtime.workers", "admin.address", "runtime.log_level"] {
        assert!(warnings.contains(key), "{key} not warned about: {warnings}");
    }
    // The admin listener stays where it is.
    assert_eq!(admin_get(admin, "/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_logs_of_a_rejected_reload_and_a_watched_file() {
    let backend = Backend::start("a").await;
    let good = format!(
        "{}{}",
        head(1, true),
        route_all(&servers(&[&backend]), "", "")
    );
    let bin = Binary::start(&good, 1);
    wait_admin_ready(bin.admin.unwrap()).await;

    // Two mistakes: one record, its fields holding both diagnostics.
    let bad = good
        .replace("drain_timeout = \"1s\"", "drain_timeout = \"1M\"")
        .replace("name = \"all\"", "name = \"all\"\ntimeout = \"5secs\"");
    std::fs::write(bin.config_file(), &bad).unwrap();
    let changed = bin.wait_log("about the file change", DEADLINE, |v| {
        v["fields"]["message"] == "config file changed; reloading"
    });
    assert!(
        changed["fields"]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("switchyard.toml")),
        "{changed}"
    );
    assert!(changed["fields"]["change"].is_string(), "{changed}");
    let rejected = bin.wait_log("of the rejected reload", DEADLINE, |v| {
        v["fields"]["message"] == "reload rejected: invalid configuration"
    });
    let f = &rejected["fields"];
    assert_eq!(f["error_count"], 2, "{rejected}");
    assert_eq!(f["trigger"], "file");
    assert_eq!(f["kept_version"], 1);
    let errors = f["errors"].as_str().unwrap();
    assert!(
        errors.contains("runtime.drain_timeout") && errors.contains("routes[0].timeout"),
        "{errors}"
    );
    assert!(errors.contains("did you mean \"1m\""), "{errors}");
    assert!(!errors.contains('\n'), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_saved_in_two_steps_is_reloaded_once_finished() {
    let backend = Backend::start("a").await;
    let full = format!(
        "{}{}",
        head(1, true).replace("watch_debounce = \"200ms\"", "watch_debounce = \"3s\""),
        route_all(&servers(&[&backend]), "", "")
    );
    let proxy = Proxy::start(&full);
    let admin = proxy.admin();
    wait_admin_ready(admin).await;

    // An editor writes half the file, pauses, then writes the rest. Within
    // the debounce, only the finished file is read.
    let half = &full[..full.find("[upstreams.u]").unwrap()];
    proxy.write_config(half);
    std::thread::sleep(Duration::from_millis(300));
    proxy.write_config(&format!("{full}\n# saved\n"));
    eventually("the finished file is loaded", DEADLINE, async || {
        let (_, body) = admin_get(admin, "/status").await;
        body.contains("\"config_version\":2")
    })
    .await;
    let (_, body) = admin_get(admin, "/reloads").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reloads = v["reloads"].as_array().unwrap();
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    assert_eq!(reloads[0]["ok"], true);
    assert_eq!(reloads[0]["trigger"], "file");
}
