//! The `switchyard` binary: command line, logging, quickstart, and handing
//! the validated configuration to `sy-server`. Thin on purpose.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod alloc;
mod quickstart;

#[global_allocator]
static GLOBAL: alloc::MiMalloc = alloc::MiMalloc;

/// Switchyard: load balancer, edge cache, API gateway and service-mesh
/// sidecar in one binary.
#[derive(Parser, Debug)]
#[command(
    name = "switchyard",
    version,
    about = "Switchyard: an HTTP reverse proxy and load balancer",
    long_about = "Switchyard is an HTTP/1.1 and HTTP/2 reverse proxy and load balancer \
                  configured by one TOML file.\n\nWith no command it runs the built-in \
                  quickstart: a proxy on 127.0.0.1:8080 over two demo upstreams and the \
                  admin API on 127.0.0.1:9901.",
    after_help = "Examples:\n  switchyard                      run the quickstart\n  \
                  switchyard run -c switchyard.toml\n  switchyard check -c switchyard.toml\n\n\
                  Docs: docs/configuration.md, docs/admin-api.md, docs/metrics.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the proxy (the quickstart demo when no config file is given).
    Run {
        /// Configuration file (TOML).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and report every error; exit 1 if any.
    Check {
        /// Configuration file (TOML).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Print the JSON Schema of the configuration file (for editors: taplo,
    /// Even Better TOML).
    Schema,
}

/// Process logs through `tracing` to stderr. Level: RUST_LOG when set,
/// else `runtime.log_level`. Format: SWITCHYARD_LOG_FORMAT ("text" or
/// "json") when set, else `runtime.log_format`. Field names are fixed
/// (docs/logging.md).
fn init_logging(runtime: &sy_config::model::Runtime) {
    use sy_config::model::LogFormat;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&runtime.log_level));
    let env = std::env::var("SWITCHYARD_LOG_FORMAT").ok();
    let (format, bad_env) = match env.as_deref().map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("json") => (LogFormat::Json, None),
        Some(v) if v.eq_ignore_ascii_case("text") => (LogFormat::Text, None),
        Some(v) if !v.is_empty() => (runtime.log_format, Some(v)),
        _ => (runtime.log_format, None),
    };
    // Colours only for a person at a terminal, never in files or journals.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    if let Some(v) = bad_env {
        tracing::warn!(
            value = v,
            "SWITCHYARD_LOG_FORMAT is neither \"text\" nor \"json\"; using runtime.log_format"
        );
    }
}

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e` in
/// mimalloc.h, v3); libmimalloc-sys does not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Return freed pages to the OS after 50 ms instead of mimalloc v3's 1 s,
/// so memory an idle connection gave back (see `serve_h1_parking`) leaves
/// the resident set promptly.
///
/// And no transparent huge pages for the process: mimalloc asks for them
/// on its arena (`MADV_HUGEPAGE`, done before `main`, so its own option
/// comes too late), and on a system whose THP setting is `madvise` (or
/// `always`) each 2 MiB of heap touched at all became resident whole: 8
/// of the 9 MiB of heap at start, for well under 1 MiB in use.
fn tune_allocator() {
    // SAFETY: mi_option_set stores an integer in mimalloc's option table; it
    // is thread-safe, takes no pointers and may be called at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 50)
    };
    // SAFETY: PR_SET_THP_DISABLE takes integers only and changes a flag of
    // this process; an error (an old kernel) leaves THP as it was.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { config }) => check(&config),
        Some(Command::Schema) => {
            print!("{}", sy_config::json_schema());
            ExitCode::SUCCESS
        }
        Some(Command::Run { config: Some(path) }) => run_file(path),
        Some(Command::Run { config: None }) | None => quickstart::run(),
    }
}

fn check(path: &Path) -> ExitCode {
    match sy_config::load_checked(path, &sy_server::tls::Checks) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            let cfg = &loaded.config;
            let warnings = match loaded.warnings.len() {
                0 => String::new(),
                1 => ", 1 warning".to_owned(),
                n => format!(", {n} warnings"),
            };
            println!(
                "{}: ok ({} listeners, {} routes, {} upstreams{warnings})",
                path.display(),
                cfg.listeners.len(),
                cfg.routes.len(),
                cfg.upstreams.len()
            );
            ExitCode::SUCCESS
        }
        Err(diags) => {
            eprintln!("{diags}");
            eprintln!("{}: {} error(s)", path.display(), diags.errors.len());
            ExitCode::FAILURE
        }
    }
}

fn run_file(path: PathBuf) -> ExitCode {
    let loaded = match sy_config::load_checked(&path, &sy_server::tls::Checks) {
        Ok(l) => l,
        Err(diags) => {
            eprintln!("{diags}");
            eprintln!(
                "{}: {} error(s); not starting",
                path.display(),
                diags.errors.len()
            );
            return ExitCode::FAILURE;
        }
    };
    init_logging(&loaded.config.runtime);
    sy_server::control::log_config_warnings(&loaded.warnings);
    serve(loaded.config, Some(path))
}

/// Runs a validated config until a signal stops it.
pub(crate) fn serve(cfg: sy_config::model::Config, path: Option<PathBuf>) -> ExitCode {
    let handle = match sy_server::start(
        cfg,
        sy_server::Options {
            config_path: path,
            handle_signals: true,
        },
    ) {
        Ok(h) => h,
        Err(e) => {
            // Logging is set up: one record, on one line.
            let error = format!("{e:#}").replace('\n', "; ");
            tracing::error!(error = %error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    handle.wait();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
