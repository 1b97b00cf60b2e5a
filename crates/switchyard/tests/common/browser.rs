//! Headless Chromium for the tests that need a real browser (the
//! dashboard, CORS): one run per page load, a throwaway profile, the whole
//! process group killed when a run ends or overruns.
//!
//! Needs `chromium` (or `chromium-browser`) on PATH; CI installs it (see
//! .ci/run). Without it such a test fails, unless SWITCHYARD_SKIP_BROWSER=1.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long one Chromium run may take before it is killed.
pub const RUN_LIMIT: Duration = Duration::from_secs(20);

/// The flags of every run: headless, no sandbox (root in CI), and nothing
/// that reaches outside this machine or slows the start.
const BASE_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-extensions",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
];

/// The Chromium binary on PATH.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A running Chromium; dropping it kills its whole process group (the
/// browser and its renderer, GPU and zygote processes).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Headless Chromium with throwaway profiles.
pub struct Browser {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Browser {
    /// The browser for test `test`, or None when there is none and
    /// SWITCHYARD_SKIP_BROWSER=1 (without that, no browser fails the test).
    pub fn find(test: &str) -> Option<Browser> {
        let Some(bin) = find_chromium() else {
            if std::env::var("SWITCHYARD_SKIP_BROWSER").as_deref() == Ok("1") {
                eprintln!("SWITCHYARD_SKIP_BROWSER=1 and no chromium on PATH: {test} skipped");
                return None;
            }
            panic!(
                "{test} needs headless Chromium: no `chromium` or `chromium-browser` on PATH. \
                 Install it (Debian: apt-get install -y --no-install-recommends chromium) \
                 or set SWITCHYARD_SKIP_BROWSER=1 to skip this test"
            );
        };
        Some(Browser {
            bin,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    /// Runs Chromium on `url` with `extra` flags, in the profile `profile`
    /// (a folder of this browser's temp dir: runs with the same profile
    /// share cookies and caches); returns its stdout. Panics when the run
    /// takes longer than [`RUN_LIMIT`].
    pub async fn run_in(&self, profile: &str, extra: &[&str], url: &str) -> String {
        let out_path = self.dir.path().join(format!("{profile}.stdout"));
        let out = std::fs::File::create(&out_path).unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.args(BASE_FLAGS)
            .arg(format!(
                "--user-data-dir={}",
                self.dir.path().join(profile).display()
            ))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = Running(cmd.spawn().unwrap());
        let deadline = Instant::now() + RUN_LIMIT;
        loop {
            if child.0.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not finish within {RUN_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        drop(child);
        std::fs::read_to_string(&out_path).unwrap()
    }

    /// [`Browser::run_in`] the profile "profile".
    pub async fn run(&self, extra: &[&str], url: &str) -> String {
        self.run_in("profile", extra, url).await
    }
}
