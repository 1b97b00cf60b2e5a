//! Raw file model -> validated [`Config`], reporting every problem found.
//!
//! Each section is checked on its own and falls back to a placeholder when a
//! value is bad, so later sections are still checked; the caller discards the
//! result whenever anything was reported.

mod fields;
mod filter_compress;
mod filter_cors;
mod filter_error_page;
mod filter_ip;
mod filter_rewrite;
mod filters;
mod listener;
mod observability;
mod route;
mod route_policy;
mod routing;
mod upstream;
mod upstream_policy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use crate::diagnostic::{Report, join};
use crate::model::{Admin, Config, LogFormat, Runtime};
use crate::raw::{RawAdmin, RawConfig, RawRuntime};
use fields::{FileProblem, Zero, read_small_text, resolve};

/// The admin address used when `[admin] address` is not set.
pub(crate) const DEFAULT_ADMIN_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9901);

/// The shortest admin token accepted.
const MIN_TOKEN_CHARS: usize = 16;

/// The most of a `token_file` that is read: a token is far shorter, and
/// the cap keeps a wrong path (a device, a log file) from being slurped.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

const TOKEN_HINT: &str = "the token guards reload and drain; use at least 16 random characters, e.g. from `openssl rand -hex 32`";

const LOG_FORMATS: &[(&str, LogFormat)] = &[("text", LogFormat::Text), ("json", LogFormat::Json)];

/// Validation context: where errors go and where relative paths start.
pub(crate) struct Cx<'a> {
    pub(crate) report: Report<'a>,
    base_dir: &'a Path,
    checks: &'a dyn crate::FileChecks,
    /// IP list files read so far, each read once per load.
    ip_files: filter_ip::FileCache,
}

/// Names defined in the file, for checking references between sections.
struct Known<'r> {
    listeners: Vec<&'r str>,
    upstreams: Vec<&'r str>,
    filters: filters::Defined<'r>,
}

/// Validates the whole raw model; the result is meaningful only when
/// nothing was reported.
pub(crate) fn validate<'a>(
    raw: &RawConfig,
    report: Report<'a>,
    base_dir: &'a Path,
    checks: &'a dyn crate::FileChecks,
) -> (Config, Report<'a>) {
    let mut cx = Cx {
        report,
        base_dir,
        checks,
        ip_files: filter_ip::FileCache::default(),
    };
    let admin = admin(&mut cx, raw.admin.as_ref().map(|a| a.get_ref()));
    let runtime = runtime(&mut cx, raw.runtime.as_ref());
    let known = Known {
        listeners: raw.listeners.keys().map(|k| k.get_ref().as_str()).collect(),
        upstreams: raw.upstreams.keys().map(|k| k.get_ref().as_str()).collect(),
        filters: filters::Defined::new(&raw.filters),
    };
    let filters = filters::named(&mut cx, &raw.filters);
    let listeners = raw
        .listeners
        .iter()
        .map(|(name, l)| listener::validate(&mut cx, name, l, &known))
        .collect();
    check_addresses(&mut cx, raw);
    let routes = raw
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| route::validate(&mut cx, i, r, &known))
        .collect();
    check_route_names(&mut cx, raw);
    let upstreams = raw
        .upstreams
        .iter()
        .map(|(name, u)| upstream::validate(&mut cx, name, u))
        .collect();
    let access_log = raw
        .access_log
        .as_ref()
        .and_then(|a| observability::access_log(&mut cx, a));
    let tracing = raw
        .tracing
        .as_ref()
        .and_then(|t| observability::tracing(&mut cx, t));
    let config = Config {
        admin,
        runtime,
        listeners,
        routes,
        upstreams,
        access_log,
        tracing,
        filters,
    };
    // Warnings about how the parts fit together mean something only when
    // every part is valid.
    if cx.report.is_empty() {
        routing::warn(&mut cx, raw, &config);
    }
    (config, cx.report)
}

fn admin(cx: &mut Cx<'_>, raw: Option<&RawAdmin>) -> Admin {
    let Some(raw) = raw else {
        return Admin {
            address: Some(DEFAULT_ADMIN_ADDRESS),
            token: None,
        };
    };
    let (address, address_ok) = cx.clean(|cx| match &raw.address {
        None => DEFAULT_ADMIN_ADDRESS,
        Some(text) => text.get_ref().parse().unwrap_or_else(|_| {
            cx.report
                .error_value(
                    text.span(),
                    "admin.address",
                    "invalid socket address; expected IP:PORT",
                )
                .hint("e.g. \"127.0.0.1:9901\"; host names are not allowed here");
            DEFAULT_ADMIN_ADDRESS
        }),
    });
    let token = admin_token(cx, raw);
    let enabled = raw.enabled.unwrap_or(true);
    let token_given = raw.token.is_some()
        || raw.token_file.is_some()
        || cx.report.was_pruned("admin.token")
        || cx.report.was_pruned("admin.token_file");
    if let Some(text) = &raw.address
        && enabled
        && address_ok
        && !token_given
        && !address.ip().to_canonical().is_loopback()
    {
        cx.report
            .error_value(
                text.span(),
                "admin.address",
                "the admin API on a non-loopback address needs `token` or `token_file`",
            )
            .hint("anyone who can reach it could reload or drain the proxy; set a token of at least 16 characters, or listen on 127.0.0.1 or [::1]");
    }
    Admin {
        address: enabled.then_some(address),
        token,
    }
}

/// `token` or `token_file` (read now, trimmed); at most one of them.
fn admin_token(cx: &mut Cx<'_>, raw: &RawAdmin) -> Option<String> {
    if let (Some(_), Some(file)) = (&raw.token, &raw.token_file) {
        cx.report
            .error_value(
                file.span(),
                "admin.token_file",
                "set `token` or `token_file`, not both",
            )
            .hint("remove one of them");
    }
    if let Some(text) = &raw.token {
        // The value is a secret: the diagnostics never quote it.
        if let Err(problem) = check_token(text.get_ref()) {
            cx.report
                .error(text.span(), "admin.token", format!("token {problem}"))
                .hint(TOKEN_HINT);
        }
        return Some(text.get_ref().clone());
    }
    let file = raw.token_file.as_ref()?;
    match read_token_file(cx.base_dir, file.get_ref()) {
        Ok(token) => {
            if let Err(problem) = check_token(&token) {
                cx.report
                    .error_value(
                        file.span(),
                        "admin.token_file",
                        format!("the token in this file {problem}"),
                    )
                    .hint(TOKEN_HINT);
            }
            Some(token)
        }
        Err(message) => {
            cx.report
                .error_value(file.span(), "admin.token_file", message)
                .hint("the file is read when the configuration is loaded or reloaded; relative paths are resolved against the directory of the configuration file");
            None
        }
    }
}

/// What is wrong with a token, as the end of a sentence starting "token".
fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("cannot be empty".into());
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        // It is sent in an `Authorization` header.
        return Err(
            "can only contain visible ASCII characters (no spaces or control characters)".into(),
        );
    }
    let chars = token.chars().count();
    if chars < MIN_TOKEN_CHARS {
        return Err(format!(
            "must be at least {MIN_TOKEN_CHARS} characters long (it has {chars})"
        ));
    }
    Ok(())
}

/// The trimmed contents of a token file, or why it cannot be used.
fn read_token_file(base_dir: &Path, path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("token file path cannot be empty".into());
    }
    let resolved = resolve(base_dir, path);
    let text = read_small_text(&resolved, MAX_TOKEN_FILE_BYTES).map_err(|p| match p {
        FileProblem::Io(e) => format!("cannot read the token file: {e}"),
        FileProblem::NotAFile => "token file path is not a regular file".to_owned(),
        FileProblem::TooLarge => format!(
            "token file is larger than {MAX_TOKEN_FILE_BYTES} bytes; it should hold only the token"
        ),
        FileProblem::NotUtf8 { .. } => "token file is not valid UTF-8".to_owned(),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err("token file is empty".into());
    }
    Ok(token.to_owned())
}

fn runtime(cx: &mut Cx<'_>, raw: Option<&RawRuntime>) -> Runtime {
    let defaults = Runtime {
        workers: 0,
        drain_timeout: Duration::from_secs(30),
        watch_config: true,
        watch_debounce: Duration::from_millis(500),
        log_level: "info".to_owned(),
        log_format: LogFormat::Text,
    };
    let Some(raw) = raw else { return defaults };
    let workers = cx.int(
        raw.workers.as_ref(),
        "runtime.workers",
        0,
        (0, 1024),
        Some("0 starts one worker per CPU"),
    );
    let drain_timeout = cx.duration(
        raw.drain_timeout.as_ref(),
        "runtime.drain_timeout",
        defaults.drain_timeout,
        Zero::Allowed,
    );
    let log_level = match &raw.log_level {
        Some(level) if level.get_ref().trim().is_empty() => {
            cx.report
                .error_value(
                    level.span(),
                    "runtime.log_level",
                    "log level cannot be empty",
                )
                .hint("use \"error\", \"warn\", \"info\", \"debug\" or \"trace\"");
            defaults.log_level
        }
        Some(level) => level.get_ref().clone(),
        None => defaults.log_level,
    };
    let (log_format, _) = cx.keyword(
        raw.log_format.as_ref(),
        "runtime.log_format",
        "log format",
        LOG_FORMATS,
        defaults.log_format,
    );
    let watch_debounce = cx.duration(
        raw.watch_debounce.as_ref(),
        "runtime.watch_debounce",
        defaults.watch_debounce,
        Zero::Allowed,
    );
    Runtime {
        workers: usize::try_from(workers).unwrap_or(0),
        drain_timeout,
        watch_config: raw.watch_config.unwrap_or(defaults.watch_config),
        watch_debounce,
        log_level,
        log_format,
    }
}

/// Two listeners (or a listener and the admin endpoint) on one address.
fn check_addresses(cx: &mut Cx<'_>, raw: &RawConfig) {
    // (address, span of its value, listener name), in file order so that the
    // later of two clashing listeners is the one blamed.
    let mut taken: Vec<(SocketAddr, Range<usize>, &str)> = raw
        .listeners
        .iter()
        .filter_map(|(name, l)| {
            let text = l.get_ref().address.as_ref()?;
            let addr = text.get_ref().parse().ok()?;
            Some((addr, text.span(), name.get_ref().as_str()))
        })
        .collect();
    taken.sort_by_key(|(_, span, _)| span.start);
    for (i, (addr, span, name)) in taken.iter().enumerate() {
        let clash = taken[..i]
            .iter()
            .find(|(other, _, _)| crate::addresses_conflict(*addr, *other));
        if let Some((_, _, first)) = clash {
            let path = join(&join("listeners", name), "address");
            cx.report
                .error_value(
                    span.clone(),
                    &path,
                    format!("address is already used by listener `{first}`"),
                )
                .hint("give each listener its own address");
        }
    }
    let admin = raw.admin.as_ref().map(|a| a.get_ref());
    if admin.is_some_and(|a| a.enabled == Some(false)) {
        return;
    }
    let Some(text) = admin.and_then(|a| a.address.as_ref()) else {
        return admin_clash(cx, DEFAULT_ADMIN_ADDRESS, &taken);
    };
    let Ok(addr) = text.get_ref().parse::<SocketAddr>() else {
        return; // already reported by `admin()`
    };
    let clash = taken
        .iter()
        .find(|(other, _, _)| crate::addresses_conflict(addr, *other));
    if let Some((_, _, name)) = clash {
        cx.report
            .error_value(
                text.span(),
                "admin.address",
                format!("address is already used by listener `{name}`"),
            )
            .hint("the admin endpoint needs an address of its own");
    }
}

/// A listener on the default admin address, which the user never wrote down.
fn admin_clash(cx: &mut Cx<'_>, admin: SocketAddr, taken: &[(SocketAddr, Range<usize>, &str)]) {
    for (addr, span, name) in taken {
        if crate::addresses_conflict(admin, *addr) {
            let path = join(&join("listeners", name), "address");
            cx.report
                .error_value(
                    span.clone(),
                    &path,
                    format!("address clashes with the default admin address {admin}"),
                )
                .hint("use another port, or set [admin] address (or enabled = false)");
        }
    }
}

/// Route names are required and unique (they name metrics and logs).
fn check_route_names(cx: &mut Cx<'_>, raw: &RawConfig) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, route) in raw.routes.iter().enumerate() {
        let Some(name) = &route.get_ref().name else {
            continue;
        };
        if name.get_ref().is_empty() {
            continue;
        }
        if let Some(first) = seen.get(name.get_ref().as_str()) {
            cx.report
                .error_value(
                    name.span(),
                    &format!("routes[{i}].name"),
                    format!("route name is already used by routes[{first}]"),
                )
                .hint("route names must be unique");
        } else {
            seen.insert(name.get_ref(), i);
        }
    }
}
