//! Reload triggers: changes to the config file (notify) and signals
//! (SIGHUP reloads, SIGTERM/SIGINT drain and stop). The admin API's
//! `POST /reload` is the third trigger (see `admin`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use crate::runtime::Control;

/// Watches the config file's directory (editors replace files rather than
/// writing them in place) and reloads when the file's content changes.
pub fn watch_file(control: Arc<Control>, path: PathBuf) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let name = path.file_name().map(|n| n.to_os_string());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let watched_name = name.clone();
    let mut watcher = match notify::recommended_watcher(
        move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            if !matches!(
                ev.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            ) {
                return;
            }
            if ev
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == watched_name)
            {
                let _ = tx.send(());
            }
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP or POST /reload");
            return;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config directory");
        return;
    }
    // Read before the task starts, so a change right after startup is seen.
    let mut last = std::fs::read(&path).ok();
    tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            // Let a burst of events (write, rename, chmod) settle.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
            let now = std::fs::read(&path).ok();
            if now.is_none() || now == last {
                continue;
            }
            last = now;
            let c = control.clone();
            let _ = tokio::task::spawn_blocking(move || c.reload("file")).await;
        }
    });
}

/// SIGHUP reloads; SIGTERM and SIGINT start a graceful shutdown; SIGUSR1
/// reopens the access log file (log rotation).
pub fn handle_signals(control: Arc<Control>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::user_defined1()) {
        Ok(mut usr1) => {
            let c = control.clone();
            tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    tracing::info!("SIGUSR1: reopening the access log");
                    c.reopen_logs();
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot install the SIGUSR1 handler"),
    }
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let c = control.clone();
                    let _ = tokio::task::spawn_blocking(move || c.reload("signal")).await;
                }
                _ = term.recv() => { control.shutdown(); }
                _ = int.recv() => { control.shutdown(); }
            }
        }
    });
}
