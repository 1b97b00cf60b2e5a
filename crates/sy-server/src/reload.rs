//! Reload triggers: changes to the config file (notify) and signals
//! (SIGHUP reloads, SIGTERM/SIGINT drain and stop). The admin API's
//! `POST /reload` is the third trigger (see `admin`).

use std::path::PathBuf;
use std::sync::Arc;

use notify::{EventKind, RecursiveMode, Watcher};

use crate::control::Control;

/// Watches the config file's directory (editors replace files rather than
/// writing them in place) and reloads when the file's content changes and
/// then stays unchanged for `runtime.watch_debounce`, so a save made in
/// several steps is read once, finished. Both `watch_config` and the
/// debounce are read from the running snapshot at each change, so a reload
/// can turn watching on or off.
pub fn watch_file(control: Arc<Control>, path: PathBuf) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
    let name = path.file_name().map(|n| n.to_os_string());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let watched_name = name.clone();
    let mut watcher = match notify::recommended_watcher(
        move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            let kind = match ev.kind {
                EventKind::Create(_) => "created",
                EventKind::Modify(_) => "modified",
                EventKind::Remove(_) => "removed",
                _ => return,
            };
            if ev
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == watched_name)
            {
                let _ = tx.send(Change { kind });
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
        while let Some(mut change) = rx.recv().await {
            let (watch, debounce) = {
                let snap = control.shared.snapshot.load();
                let r = &snap.config.runtime;
                (r.watch_config, r.watch_debounce)
            };
            // Quiet for `debounce` since the latest event: the edit is done.
            let mut events = 1u32;
            loop {
                match tokio::time::timeout(debounce, rx.recv()).await {
                    Ok(Some(next)) => {
                        change = next;
                        events += 1;
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if !watch {
                continue;
            }
            let now = std::fs::read(&path).ok();
            if now.is_none() || now == last {
                continue;
            }
            last = now;
            tracing::info!(
                file = %path.display(),
                change = change.kind,
                events,
                debounce = ?debounce,
                "config file changed; reloading"
            );
            let c = control.clone();
            let _ = tokio::task::spawn_blocking(move || c.reload("file")).await;
        }
    });
}

/// One file-system event about the config file.
struct Change {
    /// "created", "modified" or "removed".
    kind: &'static str,
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
