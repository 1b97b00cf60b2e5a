//! The control side of a running server: reload (validate, compile, bind
//! new listener sockets first, then swap the snapshot atomically), the
//! reload history, health checkers, shutdown and listener addresses. Used
//! by the admin API, the file watcher and signal handling.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sy_config::model::Config;
use tokio::sync::{mpsc, watch};

use crate::access_log::AccessLog;
use crate::health::Checkers;
use crate::listener::{bind, ensure_free};
use crate::metrics::{Metrics, ResultLabel};
use crate::shared::Shared;
use crate::snapshot::{PendingSetting, Snapshot, compile, live_keys};

/// One reload attempt, for the admin API.
#[derive(Debug, Clone)]
pub struct ReloadRecord {
    /// Seconds since the Unix epoch.
    pub at_unix: u64,
    /// What triggered it: "admin", "signal", "file", "api".
    pub trigger: String,
    /// The resulting version (the unchanged one when rejected).
    pub version: u64,
    /// Accepted or not.
    pub ok: bool,
    /// Errors when rejected.
    pub message: String,
    /// Warnings of an accepted reload: configuration warnings (a route
    /// that can never match, a certificate about to expire) and settings
    /// that change only on restart.
    pub warnings: Vec<String>,
}

/// Settings read once at start. A reload that changes one keeps the
/// running value (in the new snapshot's config too, so it shows what runs)
/// and reports the change as pending.
fn hold_restart_settings(running: &Config, next: &mut Config) -> Vec<PendingSetting> {
    let mut pending = Vec::new();
    macro_rules! hold {
        ($key:literal, $($field:ident).+) => {
            if running.$($field).+ != next.$($field).+ {
                pending.push(PendingSetting {
                    key: $key,
                    running: json(&running.$($field).+),
                    configured: json(&next.$($field).+),
                });
                next.$($field).+ = running.$($field).+.clone();
            }
        };
    }
    hold!("runtime.workers", runtime.workers);
    hold!("admin.address", admin.address);
    hold!("runtime.log_level", runtime.log_level);
    hold!("runtime.log_format", runtime.log_format);
    pending
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Logs configuration warnings, one record each, fields holding the parts.
pub fn log_config_warnings(warnings: &[sy_config::Diagnostic]) {
    for w in warnings {
        tracing::warn!(
            file = %w.file,
            line = w.line,
            column = w.column,
            key = %w.path,
            hint = w.hint.as_deref().unwrap_or(""),
            "configuration warning: {}",
            w.message
        );
    }
}

/// Why a reload was refused. The old configuration keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Started without a config file (quickstart).
    #[error("switchyard was started without a config file; nothing to reload")]
    NoConfigFile,
    /// The file did not validate or compile.
    #[error("invalid configuration, keeping version {version}:\n{}", errors.join("\n"))]
    Invalid {
        /// Running version.
        version: u64,
        /// Every error, each on one line (`FILE:LINE:COL: error: KEY:
        /// MESSAGE; hint: HINT`).
        errors: Vec<String>,
    },
    /// A new listener address could not be bound.
    #[error("cannot bind listener {listener} on {addr}: {error}")]
    Bind {
        /// Listener name.
        listener: String,
        /// Address.
        addr: SocketAddr,
        /// OS error.
        error: std::io::Error,
    },
}

// Listeners are keyed by name, not by configured address: several
// listeners may be configured on port 0 (`127.0.0.1:0`), which names no
// single socket.
pub(crate) enum WorkerCmd {
    Listen {
        name: String,
        sock: std::net::TcpListener,
    },
    Unlisten {
        name: String,
    },
    Shutdown {
        drain: Duration,
    },
}

/// The control side of a running server.
pub struct Control {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Recent reloads, newest last.
    pub reloads: Mutex<VecDeque<ReloadRecord>>,
    /// Active health checkers (one task per checked server).
    pub checkers: Checkers,
    config_path: Option<PathBuf>,
    workers: Vec<mpsc::UnboundedSender<WorkerCmd>>,
    /// listener name -> actual bound address.
    bound: Mutex<HashMap<String, SocketAddr>>,
    reload_lock: Mutex<()>,
    drain_tx: watch::Sender<bool>,
    admin_addr: Mutex<Option<SocketAddr>>,
    shutdown_started: Mutex<bool>,
    stopped: watch::Sender<bool>,
}

/// Binds one SO_REUSEPORT socket per worker on `addr`. Unless `ours` (this
/// process already listens there, e.g. a listener renamed by reload), the
/// address must be free: SO_REUSEPORT would otherwise let a second process
/// silently share the port and split its traffic.
pub(crate) fn bind_all(
    addr: SocketAddr,
    workers: usize,
    ours: bool,
) -> std::io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    if !ours {
        ensure_free(addr)?;
    }
    let first = bind(addr)?;
    let actual = first.local_addr()?;
    let mut socks = vec![first];
    for _ in 1..workers {
        socks.push(bind(actual)?);
    }
    Ok((actual, socks))
}

/// The access log `snap` asks for: the one `old` runs when its
/// `[access_log]` is unchanged, else a new one with a buffer for each of
/// `workers` (None when off).
pub(crate) fn access_log_for(
    snap: &Snapshot,
    old: Option<&Snapshot>,
    workers: usize,
    metrics: &Metrics,
) -> Result<Option<Arc<AccessLog>>, String> {
    let Some(cfg) = &snap.config.access_log else {
        return Ok(None);
    };
    if let Some(log) = old
        .and_then(|o| o.access_log.as_ref())
        .filter(|l| l.config() == cfg)
    {
        return Ok(Some(log.clone()));
    }
    AccessLog::start(cfg, workers, metrics.access_log_dropped.clone()).map(|l| Some(Arc::new(l)))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Control {
    /// The control side of workers fed by `workers`; listeners `bound`
    /// already. `drain_tx` tells connections to drain on shutdown.
    pub(crate) fn new(
        shared: Arc<Shared>,
        config_path: Option<PathBuf>,
        workers: Vec<mpsc::UnboundedSender<WorkerCmd>>,
        bound: HashMap<String, SocketAddr>,
        drain_tx: watch::Sender<bool>,
    ) -> Self {
        let (stopped, _) = watch::channel(false);
        Control {
            shared,
            reloads: Mutex::new(VecDeque::new()),
            checkers: Checkers::new(),
            config_path,
            workers,
            bound: Mutex::new(bound),
            reload_lock: Mutex::new(()),
            drain_tx,
            admin_addr: Mutex::new(None),
            shutdown_started: Mutex::new(false),
            stopped,
        }
    }

    /// Records where the admin listener is bound.
    pub(crate) fn set_admin_addr(&self, addr: SocketAddr) {
        *lock(&self.admin_addr) = Some(addr);
    }

    /// Resolves once `shutdown` has been called.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.stopped.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Re-reads the config file (loading its certificates and keys) and
    /// applies it.
    pub fn reload(&self, trigger: &str) -> Result<u64, ReloadError> {
        let Some(path) = &self.config_path else {
            return Err(ReloadError::NoConfigFile);
        };
        match sy_config::load_checked(path, &crate::tls::Checks) {
            Ok(loaded) => {
                log_config_warnings(&loaded.warnings);
                let warnings = loaded
                    .warnings
                    .iter()
                    .map(|w| w.one_line().to_string())
                    .collect();
                self.apply_with(loaded.config, trigger, warnings)
            }
            Err(d) => {
                let version = self.shared.snapshot.load().version;
                let err = ReloadError::Invalid {
                    version,
                    errors: d.errors.iter().map(|e| e.one_line().to_string()).collect(),
                };
                self.record(trigger, version, Err(&err), Vec::new());
                Err(err)
            }
        }
    }

    /// Validates, compiles and swaps in `cfg`.
    pub fn apply(&self, cfg: Config, trigger: &str) -> Result<u64, ReloadError> {
        self.apply_with(cfg, trigger, Vec::new())
    }

    fn apply_with(
        &self,
        mut cfg: Config,
        trigger: &str,
        mut warnings: Vec<String>,
    ) -> Result<u64, ReloadError> {
        let _serial = lock(&self.reload_lock);
        let old = self.shared.snapshot.load_full();
        let version = old.version + 1;
        let pending = hold_restart_settings(&old.config, &mut cfg);
        for p in &pending {
            tracing::warn!(
                setting = p.key,
                running = %p.running,
                configured = %p.configured,
                "this setting takes effect on restart only; the running value stays"
            );
            warnings.push(format!(
                "{}: changed to {} in the file; takes effect on restart (running: {})",
                p.key, p.configured, p.running
            ));
        }
        let mut snap = match compile(cfg, version, &self.shared.live, &self.shared.metrics) {
            Ok(s) => s,
            Err(errs) => {
                let err = ReloadError::Invalid {
                    version: old.version,
                    errors: errs,
                };
                self.record(trigger, old.version, Err(&err), Vec::new());
                return Err(err);
            }
        };
        match access_log_for(&snap, Some(&old), self.shared.workers, &self.shared.metrics) {
            Ok(log) => snap.access_log = log,
            Err(errors) => {
                let err = ReloadError::Invalid {
                    version: old.version,
                    errors: vec![errors],
                };
                self.record(trigger, old.version, Err(&err), Vec::new());
                return Err(err);
            }
        }
        let tracing_cfg = snap.config.tracing.as_ref();
        let tracer =
            match crate::trace::prepare(&self.shared.tracer, tracing_cfg, &self.shared.metrics) {
                Ok(t) => t,
                Err(e) => {
                    let err = ReloadError::Invalid {
                        version: old.version,
                        errors: vec![e.to_string()],
                    };
                    self.record(trigger, old.version, Err(&err), Vec::new());
                    return Err(err);
                }
            };
        // New listener sockets first: if one cannot be bound, nothing changes.
        // A listener keeps its sockets when its name and address are unchanged.
        let unchanged = |l: &crate::snapshot::ListenerRt| {
            old.listeners
                .iter()
                .any(|o| o.cfg.name == l.cfg.name && o.cfg.address == l.cfg.address)
        };
        let mut opened = Vec::new();
        for l in &snap.listeners {
            if unchanged(l) {
                continue;
            }
            let ours = lock(&self.bound)
                .values()
                .any(|a| sy_config::addresses_conflict(*a, l.cfg.address));
            match bind_all(l.cfg.address, self.workers.len(), ours) {
                Ok((actual, socks)) => {
                    tracing::info!(listener = %l.cfg.name, addr = %actual, "listening");
                    opened.push((l.cfg.name.clone(), actual, socks));
                }
                Err(error) => {
                    let err = ReloadError::Bind {
                        listener: l.cfg.name.clone(),
                        addr: l.cfg.address,
                        error,
                    };
                    self.record(trigger, old.version, Err(&err), Vec::new());
                    return Err(err);
                }
            }
        }
        let removed: Vec<String> = old
            .listeners
            .iter()
            .filter(|o| snap.listener(&o.cfg.name).is_none())
            .map(|o| o.cfg.name.clone())
            .collect();
        let keys = live_keys(&snap);
        if let crate::trace::Swap::Replace(t) = tracer {
            // The old tracer flushes on a thread of its own once the last
            // request holding it is done.
            self.shared.tracer.store(t);
        }
        snap.pending_restart = pending;
        self.shared.snapshot.store(Arc::new(snap));
        self.checkers.reconcile(&self.shared.snapshot.load());
        {
            let mut bound = lock(&self.bound);
            // A Listen for an existing name replaces (and stops) its old
            // accept loop in the worker.
            for (name, actual, socks) in opened {
                bound.insert(name.clone(), actual);
                for (i, sock) in socks.into_iter().enumerate() {
                    if let Some(w) = self.workers.get(i) {
                        let _ = w.send(WorkerCmd::Listen {
                            name: name.clone(),
                            sock,
                        });
                    }
                }
            }
            for name in removed {
                bound.remove(&name);
                for w in &self.workers {
                    let _ = w.send(WorkerCmd::Unlisten { name: name.clone() });
                }
            }
        }
        self.shared.live.retain(&keys);
        self.shared.metrics.config_version.set(version as i64);
        self.record(trigger, version, Ok(()), warnings);
        tracing::info!(version, trigger, "configuration reloaded");
        Ok(version)
    }

    fn record(
        &self,
        trigger: &str,
        version: u64,
        res: Result<(), &ReloadError>,
        warnings: Vec<String>,
    ) {
        let ok = res.is_ok();
        let message = match res {
            Ok(()) => String::new(),
            // One record; its fields hold the diagnostics, each on one line.
            Err(e @ ReloadError::Invalid { errors, .. }) => {
                tracing::error!(
                    trigger,
                    kept_version = version,
                    error_count = errors.len(),
                    errors = %errors.join(" | "),
                    "reload rejected: invalid configuration"
                );
                e.to_string()
            }
            Err(e) => {
                tracing::error!(trigger, kept_version = version, error = %e, "reload rejected");
                e.to_string()
            }
        };
        self.shared
            .metrics
            .reloads
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "rejected" }.into(),
            })
            .inc();
        let at_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut h = lock(&self.reloads);
        if h.len() >= 20 {
            h.pop_front();
        }
        h.push_back(ReloadRecord {
            at_unix,
            trigger: trigger.to_string(),
            version,
            ok,
            message,
            warnings,
        });
    }

    /// Stops accepting, lets in-flight requests finish for up to the
    /// configured drain timeout, then stops every thread. Idempotent.
    pub fn shutdown(&self) {
        {
            let mut started = lock(&self.shutdown_started);
            if *started {
                return;
            }
            *started = true;
        }
        let drain = self.shared.snapshot.load().config.runtime.drain_timeout;
        tracing::info!(drain_timeout = ?drain, "shutting down: draining connections");
        for w in &self.workers {
            let _ = w.send(WorkerCmd::Shutdown { drain });
        }
        let _ = self.drain_tx.send(true);
        let _ = self.stopped.send(true);
    }

    /// Reopens the access log file (log rotation; SIGUSR1).
    pub fn reopen_logs(&self) {
        if let Some(log) = &self.shared.snapshot.load().access_log {
            log.reopen();
        }
    }

    /// Bound address of each listener, by name.
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        let bound = lock(&self.bound);
        self.shared
            .snapshot
            .load()
            .listeners
            .iter()
            .filter_map(|l| bound.get(&l.cfg.name).map(|a| (l.cfg.name.clone(), *a)))
            .collect()
    }

    /// The admin listener's bound address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        *lock(&self.admin_addr)
    }
}
