//! Threads, listeners, reload and shutdown.
//!
//! Each worker thread runs its own single-threaded event loop with its own
//! SO_REUSEPORT socket per listener (the nginx model: no work stealing, no
//! cross-thread wake-ups, pools per worker). A control thread runs the admin
//! listener, the config-file watcher, the pool sweeper and, optionally,
//! signal handling. Reload compiles the next snapshot, binds any new
//! listener sockets first, then swaps the snapshot atomically.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use sy_config::model::Config;
use tokio::sync::{mpsc, watch};

use crate::conns::ConnCount;
use crate::control::{Control, ReloadError, WorkerCmd, access_log_for, bind_all};
use crate::listener::accept_loop;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::snapshot::compile;

/// Startup options besides the config itself.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// The file the config came from: reload re-reads it and, with
    /// `runtime.watch_config`, changes to it trigger a reload.
    pub config_path: Option<PathBuf>,
    /// Handle SIGHUP (reload) and SIGTERM/SIGINT (graceful shutdown).
    pub handle_signals: bool,
}

/// A running Switchyard.
pub struct ServerHandle {
    control: Arc<Control>,
    threads: Vec<JoinHandle<()>>,
}

/// Starts workers, listeners and the control thread.
pub fn start(config: Config, opts: Options) -> anyhow::Result<ServerHandle> {
    let workers = match config.runtime.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let metrics = Metrics::new();
    let live = Live::new(workers);
    let admin_cfg = config.admin.address;
    let mut snap = compile(config, 1, &live, &metrics)
        .map_err(|errs| anyhow::anyhow!("invalid configuration:\n{}", errs.join("\n")))?;
    snap.access_log =
        access_log_for(&snap, None, workers, &metrics).map_err(|e| anyhow::anyhow!(e))?;
    let tracer = match &snap.config.tracing {
        Some(t) => Some(Arc::new(crate::trace::Tracer::build(t, &metrics)?)),
        None => None,
    };
    metrics.config_version.set(1);
    let mut initial: Vec<(String, Vec<std::net::TcpListener>)> = Vec::new();
    let mut bound = HashMap::new();
    for l in &snap.listeners {
        let (actual, socks) = bind_all(l.cfg.address, workers, false).map_err(|e| {
            anyhow::anyhow!(
                "cannot bind listener {} on {}: {e}",
                l.cfg.name,
                l.cfg.address
            )
        })?;
        tracing::info!(listener = %l.cfg.name, addr = %actual, tls = l.tls.is_some(), "listening");
        bound.insert(l.cfg.name.clone(), actual);
        initial.push((l.cfg.name.clone(), socks));
    }
    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from_pointee(snap),
        metrics,
        live,
        workers,
        started: Instant::now(),
        tracer: ArcSwapOption::new(tracer),
    });
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        receivers.push(rx);
    }
    for (name, socks) in initial {
        for (i, sock) in socks.into_iter().enumerate() {
            let _ = senders[i].send(WorkerCmd::Listen {
                name: name.clone(),
                sock,
            });
        }
    }
    for (id, rx) in receivers.into_iter().enumerate() {
        let shared = shared.clone();
        let drain_rx = drain_rx.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("sy-worker-{id}"))
                .spawn(move || worker_main(id, shared, rx, drain_rx))?,
        );
    }
    let control = Arc::new(Control::new(
        shared,
        opts.config_path.clone(),
        senders,
        bound,
        drain_tx,
    ));
    let admin_sock = match admin_cfg {
        Some(addr) => {
            let s = std::net::TcpListener::bind(addr).map_err(|e| {
                anyhow::anyhow!(
                    "cannot bind admin listener on {addr}: {}",
                    crate::listener::bind_error(e)
                )
            })?;
            s.set_nonblocking(true)?;
            let actual = s.local_addr()?;
            tracing::info!(addr = %actual, "admin listening");
            control.set_admin_addr(actual);
            Some(s)
        }
        None => None,
    };
    let c = control.clone();
    // Watched whatever `watch_config` says now: a reload may turn it on.
    let watch_path = opts.config_path.clone();
    let signals = opts.handle_signals;
    threads.push(
        std::thread::Builder::new()
            .name("sy-control".into())
            .spawn(move || control_main(c, admin_sock, watch_path, signals))?,
    );
    Ok(ServerHandle { control, threads })
}

fn worker_main(
    id: usize,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<WorkerCmd>,
    drain_rx: watch::Receiver<bool>,
) {
    crate::live::set_worker_id(id);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = id, error = %e, "cannot start worker runtime");
            return;
        }
    };
    rt.block_on(async move {
        let conns = Arc::new(ConnCount::default());
        let mut stops: HashMap<String, watch::Sender<bool>> = HashMap::new();
        let mut drain = Duration::from_secs(30);
        while let Some(cmd) = rx.recv().await {
            match cmd {
                WorkerCmd::Listen { name, sock } => {
                    let (tx, stop_rx) = watch::channel(false);
                    if let Some(old) = stops.insert(name.clone(), tx) {
                        let _ = old.send(true);
                    }
                    tokio::spawn(accept_loop(
                        sock,
                        name,
                        shared.clone(),
                        conns.clone(),
                        stop_rx,
                        drain_rx.clone(),
                    ));
                }
                WorkerCmd::Unlisten { name } => {
                    if let Some(tx) = stops.remove(&name) {
                        let _ = tx.send(true);
                    }
                }
                WorkerCmd::Shutdown { drain: d } => {
                    drain = d;
                    break;
                }
            }
        }
        for tx in stops.values() {
            let _ = tx.send(true);
        }
        if tokio::time::timeout(drain, conns.wait_zero())
            .await
            .is_err()
        {
            tracing::warn!(
                worker = id,
                open = conns.get(),
                "drain deadline passed; closing remaining connections"
            );
        }
    });
}

fn control_main(
    control: Arc<Control>,
    admin: Option<std::net::TcpListener>,
    watch_path: Option<PathBuf>,
    signals: bool,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start control runtime");
            return;
        }
    };
    rt.block_on(async move {
        control
            .checkers
            .set_runtime(tokio::runtime::Handle::current(), &control.shared.metrics);
        control.checkers.reconcile(&control.shared.snapshot.load());
        if let Some(sock) = admin {
            tokio::spawn(crate::admin::serve(sock, control.clone()));
        }
        if let Some(path) = watch_path {
            crate::reload::watch_file(control.clone(), path);
        }
        if signals {
            crate::reload::handle_signals(control.clone());
        }
        let sweeper = {
            let c = control.clone();
            async move {
                let mut t = tokio::time::interval(Duration::from_secs(1));
                let mut ticks = 0u64;
                loop {
                    t.tick().await;
                    ticks += 1;
                    c.shared.live.sweep();
                    crate::upstream::outlier::sweep(&c.shared.snapshot.load().upstreams);
                    crate::dashboard::sample(&c.shared);
                    // The hedging p95 covers the last 10-20 seconds.
                    if ticks.is_multiple_of(10) {
                        for u in c.shared.live.upstreams() {
                            u.latency.rotate();
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = sweeper => {}
            _ = control.stopped() => {}
        }
    });
}

impl ServerHandle {
    /// The control interface (reload, shutdown, addresses).
    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Bound address of listener `name`.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.control
            .listener_addrs()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }

    /// Bound address of the admin listener.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.control.admin_addr()
    }

    /// Re-reads the config file and applies it.
    pub fn reload(&self) -> Result<u64, ReloadError> {
        self.control.reload("api")
    }

    /// Applies a configuration given in memory.
    pub fn apply(&self, cfg: Config) -> Result<u64, ReloadError> {
        self.control.apply(cfg, "api")
    }

    /// Starts a graceful shutdown (does not wait).
    pub fn shutdown(&self) {
        self.control.shutdown();
    }

    /// Waits until every thread has stopped (after `shutdown`, a signal or
    /// an admin request).
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
        // The workers are gone: write out the access log's last lines.
        if let Some(log) = &self.control.shared.snapshot.load().access_log {
            log.close();
        }
        // ...and export the spans still queued, for a bounded time.
        if let Some(t) = self.control.shared.tracer.swap(None) {
            t.shutdown(t.config().export_timeout.min(Duration::from_secs(10)));
        }
    }
}
