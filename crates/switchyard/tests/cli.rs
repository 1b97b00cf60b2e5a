//! The command line of the real binary: --version, --help, `check` on the
//! shipped examples and on broken files, `run` refusing a broken file, and
//! the quickstart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin, client, metric_in};

fn switchyard(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn version_prints_the_version() {
    let out = switchyard(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("switchyard {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_lists_run_and_check() {
    let out = switchyard(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("Usage: switchyard"), "{help}");
    for cmd in ["run", "check"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "--help does not list `{cmd}`:\n{help}"
        );
    }
    assert!(help.contains("switchyard check -c"), "{help}");
}

#[test]
fn every_example_passes_check() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "examples not found: {files:?}");
    for f in &files {
        let out = Command::new(bin())
            .arg("check")
            .arg("-c")
            .arg(f)
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "check failed on {}:\n{}{}",
            f.display(),
            stdout,
            text(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stdout.starts_with(&format!("{}: ok (", f.display())),
            "unexpected output for {}: {stdout}",
            f.display()
        );
        // The shipped examples load their certificates without a warning.
        assert_eq!(text(&out.stderr), "", "warnings for {}", f.display());
    }
}

#[test]
fn check_warns_about_routing_mistakes_and_still_succeeds() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sy-config/tests/fixtures/warn/routing.toml");
    let out = switchyard(&["check", "-c", fixture.to_str().unwrap()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.ends_with("ok (2 listeners, 5 routes, 1 upstreams, 3 warnings)\n"),
        "{stdout}"
    );
    for expected in [
        "warning: listeners.internal: no route serves this listener",
        "warning: routes[1]: route `fallback` can never match: route `catch-all` takes every request it would match",
        "warning: routes[3]: route `api-v2` can never match: route `api` takes every request it would match",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

/// Four mistakes; lines and columns are 1-based and point at the value (or
/// the key, for an unknown key).
const BAD: &str = r#"[admin]
adress = "127.0.0.1:9901"

[listeners.web]
address = "127.0.0.1:8080"

[[routes]]
name = "r"
upstream = "apii"
timeout = "30"

[upstreams.api]
servers = ["127.0.0.1:9000", { address = "127.0.0.1:9001", weight = 0 }]
"#;

fn write_bad(dir: &Path) -> String {
    let path = dir.join("bad.toml");
    std::fs::write(&path, BAD).unwrap();
    path.display().to_string()
}

#[test]
fn check_reports_every_error_with_position_path_value_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_bad(dir.path());
    let out = switchyard(&["check", "-c", &f]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let expected = format!(
        "{f}:2:1: error: admin.adress: unknown key `adress`
  hint: did you mean `address`?
{f}:9:12: error: routes[0].upstream: unknown upstream `apii` (got \"apii\")
  hint: did you mean `api`?
{f}:10:11: error: routes[0].timeout: a unit is needed after the number; did you mean \"30s\" (seconds) or \"30ms\"? (got \"30\")
  hint: write a number and a unit, e.g. \"250ms\", \"5s\", \"1m30s\" or \"2h\"; units: ns, us, ms, s, m, h, d
{f}:13:69: error: upstreams.api.servers[1].weight: weight must be between 1 and 10000 (got 0)
  hint: use 1 for an equal share
{f}: 4 error(s)
"
    );
    assert_eq!(text(&out.stderr), expected);
}

#[test]
fn check_on_a_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("nope.toml");
    let out = Command::new(bin())
        .arg("check")
        .arg("-c")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}: error: ", f.display())),
        "{stderr}"
    );
}

#[test]
fn run_refuses_a_broken_file_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_bad(dir.path());
    let mut child = Command::new(bin())
        .args(["run", "-c", &f])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`run` on a broken file did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains(&format!("{f}:9:12: error: routes[0].upstream")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{f}: 4 error(s); not starting")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("listening"),
        "it started listening:\n{stderr}"
    );
}

/// The quickstart binds fixed ports; when another process holds one, the
/// test cannot run here and says so.
fn quickstart_ports_free() -> bool {
    for port in [8080, 9901] {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            eprintln!("SKIPPED quickstart test: 127.0.0.1:{port} is in use on this machine ({e})");
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_serves_both_demo_upstreams_and_stops_on_sigterm() {
    if !quickstart_ports_free() {
        return;
    }
    let mut child = Command::new(bin())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    {
        let mut stderr = child.stderr.take().unwrap();
        let log = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    return;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);

    // Up when both ports accept; a bind lost to another process in the
    // meantime is a skip, any other exit a failure.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            let log = log.lock().unwrap().clone();
            if log.contains("cannot bind") {
                eprintln!("SKIPPED quickstart test: a port was taken meanwhile:\n{log}");
                return;
            }
            panic!("the quickstart exited with {st}:\n{log}");
        }
        let proxy = tokio::net::TcpStream::connect("127.0.0.1:8080")
            .await
            .is_ok();
        let admin = tokio::net::TcpStream::connect("127.0.0.1:9901")
            .await
            .is_ok();
        if proxy && admin {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the quickstart did not start listening:\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let c = client();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r = c.get("http://127.0.0.1:8080/hi").send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        answers.push(body);
    }
    answers.sort();
    assert_eq!(
        answers,
        [
            "hello from demo-a (you asked for /hi)\n",
            "hello from demo-b (you asked for /hi)\n"
        ]
    );

    let r = c.get("http://127.0.0.1:9901/healthz").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");
    let r = c.get("http://127.0.0.1:9901/metrics").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let metrics = r.text().await.unwrap();
    assert_eq!(
        metric_in(
            &metrics,
            "switchyard_requests_total",
            &[("route", "demo"), ("class", "2xx")]
        ),
        2.0,
        "{metrics}"
    );
    // Started without a file: nothing to reload.
    let r = c.post("http://127.0.0.1:9901/reload").send().await.unwrap();
    assert_eq!(r.status(), 409);

    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the quickstart did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "log:\n{}", log.lock().unwrap());
}

/// examples/switchyard.service passes `systemd-analyze verify` (with the
/// binary path pointed at the one just built, which verify requires to
/// exist), and reloads and stops the way docs/getting-started.md says.
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(examples_dir().join("switchyard.service")).unwrap();
    for line in [
        "ExecStart=/usr/local/bin/switchyard run -c /etc/switchyard/switchyard.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line:?}");
    }
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed (Debian package systemd)");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/switchyard", bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // verify only warns about some mistakes (a bad time value, an unknown
    // key): none may be printed about this unit.
    assert!(
        !stderr.contains("switchyard.service"),
        "systemd-analyze verify complained:\n{stderr}"
    );
}
