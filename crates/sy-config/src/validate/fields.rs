//! Checks for single values shared by every section: durations, sizes,
//! integer ranges, names, host patterns, HTTP tokens and file paths.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::Cx;
use crate::diagnostic::{did_you_mean, list};
use crate::raw::{Int, Number, RawSize, Text};
use crate::units;

/// The longest duration accepted anywhere; longer ones are surely typos and
/// would risk overflowing timer arithmetic in the server.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// The largest sensible value of a duration key, by the end of its path,
/// and why: a larger one is almost surely a mistake (`"1M"` read as a
/// month once gave health checks a one-month interval). Keys not listed
/// are capped at [`MAX_DURATION`].
const DURATION_LIMITS: &[(&str, u64, &str)] = &[
    (
        "health_check.interval",
        HOUR,
        "a failed server would go unnoticed for that long; typical intervals are 1s to 30s",
    ),
    (
        "health_check.timeout",
        5 * MINUTE,
        "one check waits at most this long; typical timeouts are 1s to 5s",
    ),
    (
        "health_check.jitter",
        HOUR,
        "jitter spreads checks over a fraction of the interval",
    ),
    (
        "request_header_timeout",
        10 * MINUTE,
        "a client may hold a connection this long without sending a request head; typical values are 5s to 60s",
    ),
    (
        "idle_timeout",
        DAY,
        "an idle connection is kept this long; typical values are 30s to 5m",
    ),
    (
        "connect_timeout",
        5 * MINUTE,
        "the kernel itself gives up on an unanswered connect after about two minutes; typical values are 1s to 10s",
    ),
    (
        "response_timeout",
        DAY,
        "typical values are 10s to 5m; long polls may need more",
    ),
    (
        "per_try_timeout",
        DAY,
        "each attempt waits at most this long for a response head",
    ),
    (
        "backoff_base",
        MINUTE,
        "the first retry waits up to this long; typical values are 10ms to 1s",
    ),
    (
        "backoff_max",
        10 * MINUTE,
        "a retry waits at most this long; typical values are 100ms to 10s",
    ),
    (
        "hedge.fallback",
        MINUTE,
        "the hedge is sent after this delay; typical values are 10ms to 1s",
    ),
    (
        "base_ejection_time",
        HOUR,
        "an ejected server stays out this long (times the ejections in a row); typical values are 10s to 5m",
    ),
    ("max_ejection_time", DAY, "typical values are 1m to 1h"),
    (
        "slow_start",
        HOUR,
        "a new server ramps up over this window; typical values are 10s to 5m",
    ),
    (
        "drain_timeout",
        DAY,
        "shutdown waits this long for requests in flight; typical values are 10s to 5m",
    ),
    (
        "watch_debounce",
        10,
        "a changed file is reloaded once it has been quiet this long; typical values are 100ms to 2s",
    ),
    (
        "export_interval",
        HOUR,
        "spans wait at most this long to be exported; typical values are 1s to 10s",
    ),
    (
        "export_timeout",
        10 * MINUTE,
        "one export request waits at most this long; typical values are 5s to 30s",
    ),
    ("timeout", DAY, "typical route timeouts are 1s to 5m"),
    (
        "cors.max_age",
        DAY,
        "browsers cap the preflight cache anyway: Firefox at 1d, Chromium at 2h",
    ),
];

/// The limit of the duration key at `path` and why it exists.
fn duration_limit(path: &str) -> (Duration, Option<&'static str>) {
    DURATION_LIMITS
        .iter()
        .find(|(key, _, _)| {
            path.strip_suffix(key)
                .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
        })
        .map_or((MAX_DURATION, None), |(_, secs, why)| {
            (Duration::from_secs(*secs), Some(*why))
        })
}

/// Whether a zero duration makes sense for a key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Zero {
    /// `0s` is a valid setting (e.g. drain immediately).
    Allowed,
    /// A zero timeout would fail every request.
    Rejected,
}

impl Cx<'_> {
    /// Runs `check` and tells whether it reported nothing, so that a check
    /// across keys can skip values that already failed on their own.
    pub(super) fn clean<T>(&mut self, check: impl FnOnce(&mut Self) -> T) -> (T, bool) {
        let before = self.report.len();
        let value = check(self);
        let clean = self.report.len() == before;
        (value, clean)
    }

    /// A required value is missing: reported at the enclosing table unless
    /// the key was present but malformed (already reported).
    pub(super) fn missing(&mut self, table_span: std::ops::Range<usize>, table: &str, key: &str) {
        let path = crate::diagnostic::join(table, key);
        if !self.report.was_pruned(&path) {
            self.report
                .error(table_span, table, format!("missing required key `{key}`"));
        }
    }

    /// A duration key, or its default when absent.
    pub(super) fn duration(
        &mut self,
        value: Option<&Text>,
        path: &str,
        default: Duration,
        zero: Zero,
    ) -> Duration {
        let Some(value) = value else { return default };
        match units::parse_duration(value.get_ref()) {
            Ok(d) if d.is_zero() && zero == Zero::Rejected => {
                self.report
                    .error_value(value.span(), path, "must be greater than zero")
                    .hint("remove the key to use the default");
                default
            }
            Ok(d) if d > duration_limit(path).0 => {
                let (max, why) = duration_limit(path);
                let field = path.rsplit('.').next().unwrap_or(path);
                let diagnostic = self.report.error_value(
                    value.span(),
                    path,
                    format!("{field} must be at most {}", human_duration(max)),
                );
                if let Some(why) = why {
                    diagnostic.hint(why);
                }
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.report
                    .error_value(value.span(), path, e.message())
                    .hint(e.hint());
                default
            }
        }
    }

    /// An optional duration key (no default).
    pub(super) fn opt_duration(&mut self, value: Option<&Text>, path: &str) -> Option<Duration> {
        value.map(|v| self.duration(Some(v), path, Duration::ZERO, Zero::Rejected))
    }

    /// A size key, or its default when absent; `min..=max` bytes.
    pub(super) fn size(
        &mut self,
        value: Option<&Spanned<RawSize>>,
        path: &str,
        default: u64,
        (min, max): (u64, u64),
    ) -> u64 {
        let Some(value) = value else { return default };
        let parsed = match value.get_ref() {
            RawSize::Text(text) => {
                units::parse_size(text).map_err(|e| (e.message().to_owned(), e.hint()))
            }
            RawSize::Bytes(n) => u64::try_from(*n).map_err(|_| {
                (
                    "sizes cannot be negative".to_owned(),
                    "write a number of bytes or a size such as \"64KiB\"",
                )
            }),
        };
        match parsed {
            Ok(n) if n < min => {
                self.report.error_value(
                    value.span(),
                    path,
                    format!("must be at least {min} bytes"),
                );
                default
            }
            Ok(n) if n > max => {
                self.report.error_value(
                    value.span(),
                    path,
                    format!("must be at most {}", human_size(max)),
                );
                default
            }
            Ok(n) => n,
            Err((message, hint)) => {
                self.report
                    .error_value(value.span(), path, message)
                    .hint(hint);
                default
            }
        }
    }

    /// An integer key within `min..=max`, or its default when absent.
    pub(super) fn int(
        &mut self,
        value: Option<&Int>,
        path: &str,
        default: i64,
        (min, max): (i64, i64),
        hint: Option<&str>,
    ) -> i64 {
        let Some(value) = value else { return default };
        let n = *value.get_ref();
        if (min..=max).contains(&n) {
            return n;
        }
        let field = path.rsplit('.').next().unwrap_or(path);
        let message = if max == i64::MAX && min == 0 {
            format!("{field} cannot be negative")
        } else if max == i64::MAX {
            format!("{field} must be at least {min}")
        } else {
            format!("{field} must be between {min} and {max}")
        };
        let diagnostic = self.report.error_value(value.span(), path, message);
        if let Some(hint) = hint {
            diagnostic.hint(hint);
        }
        default
    }

    /// An optional integer key within `min..=max` (no default).
    pub(super) fn opt_int(
        &mut self,
        value: Option<&Int>,
        path: &str,
        range: (i64, i64),
        hint: Option<&str>,
    ) -> Option<i64> {
        let value = value?;
        let (n, clean) = self.clean(|cx| cx.int(Some(value), path, 0, range, hint));
        clean.then_some(n)
    }

    /// A number key (TOML integer or float) accepted by `ok`, or its
    /// default when absent; `rule` says which values are accepted.
    pub(super) fn number(
        &mut self,
        value: Option<&Number>,
        path: &str,
        default: f64,
        ok: impl Fn(f64) -> bool,
        rule: &str,
    ) -> f64 {
        let Some(value) = value else { return default };
        let n = *value.get_ref();
        if ok(n) {
            return n;
        }
        let field = path.rsplit('.').next().unwrap_or(path);
        self.report
            .error_value(value.span(), path, format!("{field} must be {rule}"));
        default
    }

    /// Like [`Cx::int`], converted to usize (all our ranges fit).
    pub(super) fn count(
        &mut self,
        value: Option<&Int>,
        path: &str,
        default: usize,
        min: i64,
    ) -> usize {
        let default_i = i64::try_from(default).unwrap_or(i64::MAX);
        let n = self.int(value, path, default_i, (min, i64::MAX), None);
        usize::try_from(n).unwrap_or(default)
    }

    /// A name (route, certificate): non-empty, no whitespace or control chars.
    pub(super) fn name(&mut self, value: &Text, path: &str, what: &str) -> String {
        let name = value.get_ref();
        if name.is_empty() {
            self.report
                .error_value(value.span(), path, format!("{what} name cannot be empty"));
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.report
                .error_value(
                    value.span(),
                    path,
                    format!("{what} name cannot contain spaces or control characters"),
                )
                .hint("use letters, digits, `-`, `_` or `.`");
        }
        name.clone()
    }

    /// One of a fixed set of keywords; reports with a did-you-mean.
    pub(super) fn keyword<T: Copy>(
        &mut self,
        value: Option<&Text>,
        path: &str,
        what: &str,
        choices: &[(&str, T)],
        default: T,
    ) -> (T, bool) {
        let Some(value) = value else {
            return (default, true);
        };
        if let Some((_, v)) = choices.iter().find(|(name, _)| name == value.get_ref()) {
            return (*v, true);
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let hint = match did_you_mean(value.get_ref(), names.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("expected {}", list(&names, "or")),
        };
        self.report
            .error_value(value.span(), path, format!("unknown {what}"))
            .hint(hint);
        (default, false)
    }

    /// Reports what a [`crate::FileChecks`] check found. `cert` is the span
    /// of `cert` (or `ca`), `key` that of `key`, `names` the texts of
    /// `server_names`; `path` is the table the keys are in (or, for a CA
    /// bundle, the `ca` key itself).
    pub(super) fn findings(
        &mut self,
        findings: Vec<crate::Finding>,
        path: &str,
        cert: std::ops::Range<usize>,
        key: Option<std::ops::Range<usize>>,
        names: &[&Text],
    ) {
        use crate::{Severity, Subject};
        for f in findings {
            let (span, at) = match f.subject {
                Subject::Cert if key.is_none() => (cert.clone(), path.to_owned()),
                Subject::Cert => (cert.clone(), crate::diagnostic::join(path, "cert")),
                Subject::Key => (
                    key.clone().unwrap_or(cert.clone()),
                    crate::diagnostic::join(path, "key"),
                ),
                Subject::ServerName(i) => (
                    names.get(i).map_or(cert.clone(), |t| t.span()),
                    crate::diagnostic::index(&crate::diagnostic::join(path, "server_names"), i),
                ),
            };
            let d = match f.severity {
                Severity::Error => self.report.error_value(span, &at, f.message),
                Severity::Warning => self.report.warning(span, &at, f.message),
            };
            d.maybe_hint(f.hint);
        }
    }

    /// A file that must exist; relative paths resolve against the config
    /// file's directory. Only existence is checked: reading is the server's job.
    pub(super) fn file(&mut self, value: &Text, path: &str, what: &str) -> PathBuf {
        let resolved = resolve(self.base_dir, value.get_ref());
        let problem = if value.get_ref().is_empty() {
            Some(format!("{what} path cannot be empty"))
        } else {
            match std::fs::metadata(&resolved) {
                Ok(meta) if meta.is_file() => None,
                Ok(_) => Some(format!("{what} path is not a regular file")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Some(format!("{what} file does not exist"))
                }
                Err(e) => Some(format!("cannot access the {what} file: {e}")),
            }
        };
        if let Some(message) = problem {
            self.report.error_value(value.span(), path, message).hint(
                "relative paths are resolved against the directory of the configuration file",
            );
        }
        resolved
    }
}

/// A byte count as written in the docs: "16MiB", "64KiB" or "1000 bytes".
pub(super) fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const KIB: u64 = 1 << 10;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{}KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// A duration as the file writes it: "5s", "250ms", "1m30s".
pub(super) fn human_duration(duration: Duration) -> String {
    units::format_duration(duration)
}

/// `low` must not exceed `high`; the key the user wrote is blamed (the
/// upper one when both were written).
pub(super) fn blame_order(
    cx: &mut Cx<'_>,
    (low_text, low_path, low): (Option<&Text>, &str, Duration),
    (high_text, high_path, high): (Option<&Text>, &str, Duration),
) {
    let low_key = low_path.rsplit('.').next().unwrap_or(low_path);
    let high_key = high_path.rsplit('.').next().unwrap_or(high_path);
    if let Some(text) = high_text {
        cx.report.error_value(
            text.span(),
            high_path,
            format!(
                "{high_key} must be at least {low_key} ({})",
                human_duration(low)
            ),
        );
    } else if let Some(text) = low_text {
        cx.report
            .error_value(
                text.span(),
                low_path,
                format!(
                    "{low_key} must be at most {high_key} ({}, the default)",
                    human_duration(high)
                ),
            )
            .hint(format!("raise {high_key} too"));
    }
}

/// `base_dir.join(path)`, leaving absolute paths alone.
pub(super) fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// Why a small text file named in the configuration cannot be used.
pub(super) enum FileProblem {
    /// It cannot be read (or its metadata cannot).
    Io(std::io::Error),
    /// It is not a regular file (a FIFO or a device is never opened).
    NotAFile,
    /// It holds more than the limit.
    TooLarge,
    /// It is not UTF-8; the line of the first bad byte.
    NotUtf8 { line: usize },
}

/// The text of the regular file `path`, read only up to `max` bytes.
pub(super) fn read_small_text(path: &Path, max: u64) -> Result<String, FileProblem> {
    use std::io::Read;
    // Checked first so that a FIFO or a device is never opened.
    if !std::fs::metadata(path).map_err(FileProblem::Io)?.is_file() {
        return Err(FileProblem::NotAFile);
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(FileProblem::Io)?;
    if bytes.len() as u64 > max {
        return Err(FileProblem::TooLarge);
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        FileProblem::NotUtf8 {
            line: 1 + valid.iter().filter(|&&b| b == b'\n').count(),
        }
    })
}

/// A host name (`api.example.com`, `localhost`, an IPv4 literal), lower-cased.
pub(super) fn host_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("host name cannot be empty".into());
    }
    if text.contains(':') {
        return Err("hosts are matched without the port; remove `:PORT`".into());
    }
    if text.len() > 253 {
        return Err("host name is longer than 253 characters".into());
    }
    let lower = sy_policy::syntax::dns_name(text)?;
    let looks_numeric = lower
        .rsplit('.')
        .next()
        .is_some_and(|last| last.chars().all(|c| c.is_ascii_digit()));
    if looks_numeric && lower.parse::<std::net::Ipv4Addr>().is_err() {
        return Err("invalid IPv4 address".into());
    }
    Ok(lower)
}

/// A host pattern: an exact name or `*.suffix`, lower-cased.
pub(super) fn host_pattern(text: &str) -> Result<String, String> {
    match text.strip_prefix("*.") {
        Some(suffix) if !suffix.contains('*') => host_name(suffix).map(|s| format!("*.{s}")),
        _ if text.contains('*') => {
            Err("a wildcard must be the whole first label, as in `*.example.com`".into())
        }
        _ => host_name(text),
    }
}

pub(super) use sy_policy::syntax::is_token;

/// A string that can be sent as an HTTP header value.
pub(super) fn is_header_value(text: &str) -> bool {
    text.chars().all(|c| c == '\t' || !c.is_control())
}

/// Upstream server address: `ip:port`, `[v6]:port` or `hostname:port`.
pub(super) fn server_address(text: &str) -> Result<(), String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return if addr.port() == 0 {
            Err("port 0 is not a valid upstream port".into())
        } else {
            Ok(())
        };
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("expected HOST:PORT".into());
    };
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Err("invalid IP address".into());
    }
    host_name(host)?;
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid port {port:?}; expected 1 to 65535")),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addresses_conflict;

    #[test]
    fn host_patterns() {
        assert_eq!(
            host_pattern("API.Example.com"),
            Ok("api.example.com".into())
        );
        assert_eq!(host_pattern("*.example.com"), Ok("*.example.com".into()));
        assert_eq!(host_pattern("127.0.0.1"), Ok("127.0.0.1".into()));
        for bad in [
            "", "*", "*.", "a.*.com", "ex*.com", "a..b", "a.com:80", "a b", "*.*.a",
        ] {
            assert!(host_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_addresses() {
        for ok in [
            "127.0.0.1:80",
            "[::1]:8080",
            "backend.internal:9000",
            "localhost:1",
        ] {
            assert_eq!(server_address(ok), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            "host:",
            "host:99999",
            ":80",
            "1.2.3:80",
            "[::1:80",
            "a b:80",
        ] {
            assert!(server_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn conflicts() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(addresses_conflict(a("127.0.0.1:80"), a("127.0.0.1:80")));
        assert!(addresses_conflict(a("0.0.0.0:80"), a("127.0.0.1:80")));
        assert!(!addresses_conflict(a("127.0.0.1:80"), a("127.0.0.2:80")));
        assert!(!addresses_conflict(a("127.0.0.1:0"), a("127.0.0.1:0")));
        assert!(!addresses_conflict(a("[::]:80"), a("127.0.0.1:80")));
    }

    #[test]
    fn tokens() {
        assert!(is_token("GET"));
        assert!(is_token("x-request-id"));
        assert!(!is_token(""));
        assert!(!is_token("x y"));
        assert!(!is_token("x:y"));
        assert!(is_header_value("text/plain; charset=utf-8"));
        assert!(!is_header_value("a\r\nb"));
    }
}
