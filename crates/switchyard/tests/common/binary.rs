//! The real `switchyard` binary as a child process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Path of the built `switchyard` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

/// The real binary, started with a config file; reads its stderr to learn
/// the bound addresses.
pub struct Binary {
    pub child: std::process::Child,
    pub listeners: std::collections::HashMap<String, SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    /// Every stderr line (JSON log records) so far.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    config: PathBuf,
}

impl Binary {
    pub fn start(toml: &str, expect_listeners: usize) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, toml).unwrap();
        let cwd = dir.path().to_path_buf();
        Binary::start_in(dir, &cwd, &path, expect_listeners)
    }

    /// Runs `switchyard run -c CONFIG` in `cwd` (CONFIG may be relative
    /// to it); `dir` is kept for the test's files.
    pub fn start_in(
        dir: tempfile::TempDir,
        cwd: &std::path::Path,
        config: &std::path::Path,
        expect_listeners: usize,
    ) -> Binary {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin())
            .args(["run", "-c"])
            .arg(config)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .env("SWITCHYARD_LOG_FORMAT", "json")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut listeners = std::collections::HashMap::new();
        let mut admin = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while listeners.len() < expect_listeners || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("binary did not report its listeners");
            logs.lock().unwrap().push(line.clone());
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let f = &v["fields"];
            match f["message"].as_str() {
                Some("listening") => {
                    let name = f["listener"].as_str().unwrap().to_string();
                    listeners.insert(name, f["addr"].as_str().unwrap().parse().unwrap());
                }
                Some("admin listening") => {
                    admin = Some(f["addr"].as_str().unwrap().parse().unwrap())
                }
                _ => {}
            }
        }
        // Keep draining stderr so the child never blocks on a full pipe.
        let kept = logs.clone();
        std::thread::spawn(move || {
            while let Ok(line) = rx.recv() {
                kept.lock().unwrap().push(line);
            }
        });
        Binary {
            child,
            listeners,
            admin,
            dir,
            logs,
            config: cwd.join(config),
        }
    }

    /// Waits for a log record (parsed JSON) for which `pred` holds.
    pub fn wait_log(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let found = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| pred(v));
            if let Some(v) = found {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no log record {what} within {within:?}; logs:\n{}",
                self.logs.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap()
    }

    /// Waits for exit and returns the exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("binary did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// then send SIGHUP to reload).
    pub fn config_file(&self) -> PathBuf {
        self.config.clone()
    }

    /// Bound address of listener `name`.
    pub fn listener_addr(&self, name: &str) -> SocketAddr {
        *self.listeners.get(name).expect("listener reported")
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
