//! `[access_log]` and `[tracing]`: what Switchyard reports about the
//! requests it handles, and where it sends it.

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::Cx;
use super::fields::{Zero, host_name, is_token, resolve};
use crate::diagnostic::{index, join};
use crate::model::{ACCESS_LOG_FIELDS, AccessLog, AccessLogFormat, Tracing};
use crate::raw::{RawAccessLog, RawTracing, Text};

const FORMATS: &[(&str, AccessLogFormat)] = &[
    ("json", AccessLogFormat::Json),
    ("combined", AccessLogFormat::Combined),
];

/// `path` values that name a standard stream instead of a file.
const STREAMS: [&str; 2] = ["stdout", "stderr"];

/// Headers the span exporter sets itself (framing, content) or that
/// belong to the connection; a `[tracing] headers` entry cannot replace them.
const EXPORTER_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

const ENDPOINT_HINT: &str = "an OTLP/HTTP traces URL such as \"http://127.0.0.1:4318/v1/traces\"";

/// `[access_log]`; None when `enabled = false`. The other keys are checked
/// either way.
pub(super) fn access_log(cx: &mut Cx<'_>, raw: &Spanned<RawAccessLog>) -> Option<AccessLog> {
    let a = raw.get_ref();
    let p = |key: &str| join("access_log", key);
    let enabled = a.enabled.unwrap_or(true);
    let (format, _) = cx.keyword(
        a.format.as_ref(),
        &p("format"),
        "access log format",
        FORMATS,
        AccessLogFormat::Json,
    );
    let path = match &a.path {
        None => "stdout".to_owned(),
        Some(text) => log_path(cx, text, &p("path"), enabled),
    };
    let fields = fields(cx, a.fields.as_ref(), &p("fields"));
    let in_range = |n: f64| n > 0.0 && n <= 1.0;
    let sample = match &a.sample {
        None => 1.0,
        Some(n) if in_range(*n.get_ref()) => *n.get_ref(),
        Some(n) => {
            cx.report
                .error_value(
                    n.span(),
                    &p("sample"),
                    "sample must be greater than 0 and at most 1",
                )
                .hint("1 logs every request, 0.01 one in a hundred; to log nothing, set enabled = false");
            1.0
        }
    };
    let queue = cx.int(
        a.queue.as_ref(),
        &p("queue"),
        8192,
        (16, 1_048_576),
        Some("lines waiting for the writer thread; when the queue is full, lines are dropped and counted"),
    );
    enabled.then(|| AccessLog {
        format,
        path,
        fields,
        sample,
        queue: usize::try_from(queue).unwrap_or(8192),
    })
}

/// "stdout", "stderr" or a file (resolved against the config file's
/// directory) whose directory exists; `check_dir` is false for a disabled
/// log, which opens nothing.
fn log_path(cx: &mut Cx<'_>, text: &Text, path: &str, check_dir: bool) -> String {
    const RELATIVE: &str =
        "relative paths are resolved against the directory of the configuration file";
    let value = text.get_ref();
    if STREAMS.contains(&value.as_str()) {
        return value.clone();
    }
    if value.is_empty() {
        cx.report
            .error_value(text.span(), path, "access log path cannot be empty")
            .hint("use \"stdout\", \"stderr\" or a file path");
        return value.clone();
    }
    let resolved = resolve(cx.base_dir, value);
    let problem = if !check_dir {
        None
    } else if resolved.is_dir() {
        Some((
            "access log path is a directory".to_owned(),
            "name a file inside it, e.g. \"logs/access.log\"",
        ))
    } else {
        // "access.log" with an empty base directory has the parent "".
        let dir = resolved
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => None,
            Ok(_) => Some((
                "the access log file's parent is not a directory".to_owned(),
                RELATIVE,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some((
                "the access log file's directory does not exist".to_owned(),
                "create the directory first; relative paths are resolved against the directory of the configuration file",
            )),
            Err(e) => Some((
                format!("cannot access the access log file's directory: {e}"),
                RELATIVE,
            )),
        }
    };
    if let Some((message, hint)) = problem {
        cx.report.error_value(text.span(), path, message).hint(hint);
    }
    match resolved.to_str() {
        Some(resolved) => resolved.to_owned(),
        None => {
            cx.report
                .error_value(
                    text.span(),
                    path,
                    "the access log path, joined to the configuration file's directory, is not valid UTF-8",
                )
                .hint("use an absolute path");
            value.clone()
        }
    }
}

/// `fields`: known names, each once, at least one; default all of them.
fn fields(cx: &mut Cx<'_>, raw: Option<&Spanned<Vec<Text>>>, path: &str) -> Vec<String> {
    let Some(list) = raw else {
        return ACCESS_LOG_FIELDS.iter().map(|f| (*f).to_owned()).collect();
    };
    if list.get_ref().is_empty() {
        cx.report
            .error(list.span(), path, "fields needs at least one field")
            .hint("remove the key to log every field");
    }
    let choices: Vec<(&str, &str)> = ACCESS_LOG_FIELDS.iter().map(|f| (*f, *f)).collect();
    // (field, index in the file) of the fields kept so far.
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for (i, text) in list.get_ref().iter().enumerate() {
        let entry_path = index(path, i);
        let (field, ok) = cx.keyword(Some(text), &entry_path, "access log field", &choices, "");
        if !ok {
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(f, _)| *f == field) {
            cx.report
                .error_value(
                    text.span(),
                    &entry_path,
                    format!("`{field}` is already listed as fields[{first}]"),
                )
                .hint("list each field once");
            continue;
        }
        seen.push((field, i));
    }
    seen.into_iter().map(|(f, _)| f.to_owned()).collect()
}

/// `[tracing]`; None when `enabled = false`. The other keys are checked
/// either way, but a disabled table needs no `endpoint`.
pub(super) fn tracing(cx: &mut Cx<'_>, raw: &Spanned<RawTracing>) -> Option<Tracing> {
    let t = raw.get_ref();
    let path = "tracing";
    let p = |key: &str| join(path, key);
    let enabled = t.enabled.unwrap_or(true);
    let endpoint = match &t.endpoint {
        Some(text) => {
            if let Err(message) = check_endpoint(text.get_ref()) {
                cx.report
                    .error_value(text.span(), &p("endpoint"), message)
                    .hint(ENDPOINT_HINT);
            }
            text.get_ref().clone()
        }
        None => {
            if enabled {
                cx.missing(raw.span(), path, "endpoint");
            }
            String::new()
        }
    };
    let sample_ratio = cx.number(
        t.sample_ratio.as_ref(),
        &p("sample_ratio"),
        1.0,
        |n| (0.0..=1.0).contains(&n),
        "between 0.0 and 1.0",
    );
    let service_name = match &t.service_name {
        None => "switchyard".to_owned(),
        Some(text) => {
            let value = text.get_ref();
            if value.trim().is_empty() {
                cx.report
                    .error_value(
                        text.span(),
                        &p("service_name"),
                        "service_name cannot be empty",
                    )
                    .hint("remove the key to use \"switchyard\"");
            } else if value.chars().any(char::is_control) {
                cx.report.error_value(
                    text.span(),
                    &p("service_name"),
                    "service_name cannot contain control characters",
                );
            }
            value.clone()
        }
    };
    let headers = headers(cx, t.headers.as_ref(), &p("headers"));
    let (max_queue, queue_ok) = cx.clean(|cx| {
        cx.int(
            t.max_queue.as_ref(),
            &p("max_queue"),
            2048,
            (1, 1_000_000),
            Some("spans waiting for export; when the queue is full, spans are dropped and counted"),
        )
    });
    let default_batch = max_queue.min(512);
    let (max_batch, batch_ok) = cx.clean(|cx| {
        cx.int(
            t.max_batch.as_ref(),
            &p("max_batch"),
            default_batch,
            (1, 1_000_000),
            None,
        )
    });
    let max_batch = match &t.max_batch {
        Some(text) if batch_ok && queue_ok && max_batch > max_queue => {
            let (default, hint) = if t.max_queue.is_some() {
                (
                    "",
                    "a batch is taken from the queue; lower max_batch or raise max_queue",
                )
            } else {
                (", the default", "raise max_queue too")
            };
            cx.report
                .error_value(
                    text.span(),
                    &p("max_batch"),
                    format!("max_batch must be at most max_queue ({max_queue}{default})"),
                )
                .hint(hint);
            default_batch
        }
        _ => max_batch,
    };
    let export_interval = cx.duration(
        t.export_interval.as_ref(),
        &p("export_interval"),
        Duration::from_secs(5),
        Zero::Rejected,
    );
    let export_timeout = cx.duration(
        t.export_timeout.as_ref(),
        &p("export_timeout"),
        Duration::from_secs(10),
        Zero::Rejected,
    );
    enabled.then(|| Tracing {
        endpoint,
        sample_ratio,
        parent_based: t.parent_based.unwrap_or(true),
        service_name,
        headers,
        max_queue: usize::try_from(max_queue).unwrap_or(2048),
        max_batch: usize::try_from(max_batch).unwrap_or(512),
        export_interval,
        export_timeout,
    })
}

/// An `http://` or `https://` URL with a host and, if given, a valid port.
fn check_endpoint(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("endpoint cannot be empty".into());
    }
    if !text.contains("://") {
        return Err("the URL needs a scheme: http:// or https://".into());
    }
    let uri: http::Uri = text
        .parse()
        .map_err(|e: http::uri::InvalidUri| format!("invalid URL: {e}"))?;
    match uri.scheme_str() {
        None => return Err("the URL needs a scheme: http:// or https://".into()),
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "unsupported scheme `{other}`; OTLP is exported over HTTP, so use http:// or https://"
            ));
        }
    }
    let Some(authority) = uri.authority() else {
        return Err("the URL needs a host".into());
    };
    if authority.as_str().contains('@') {
        return Err(
            "the URL cannot carry a user name or password; send credentials in [tracing] headers"
                .into(),
        );
    }
    let host = authority.host();
    if host.is_empty() {
        return Err("the URL needs a host".into());
    }
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ip) => {
            if ip.parse::<Ipv6Addr>().is_err() {
                return Err("invalid IPv6 address in the URL".into());
            }
        }
        None => {
            host_name(host).map_err(|message| format!("invalid host in the URL: {message}"))?;
        }
    }
    // Without userinfo, the authority is HOST or HOST:PORT.
    if let Some(port) = authority
        .as_str()
        .get(host.len()..)
        .and_then(|rest| rest.strip_prefix(':'))
    {
        match port.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!(
                    "invalid port {port:?} in the URL; expected 1 to 65535"
                ));
            }
            Ok(_) => {}
        }
    }
    if text.contains('#') {
        return Err("the URL cannot have a fragment (`#...`)".into());
    }
    Ok(())
}

/// `[tracing] headers`, in file order: names lower-cased, each once; values
/// that can be sent as they are. Values may be secrets (authorization) and
/// are never quoted.
fn headers(
    cx: &mut Cx<'_>,
    raw: Option<&std::collections::BTreeMap<Text, Text>>,
    path: &str,
) -> Vec<(String, String)> {
    // In file order, so that a repeated name blames the later entry.
    let mut entries: Vec<(&Text, &Text)> = raw.into_iter().flatten().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut out: Vec<(String, String)> = Vec::new();
    for (key, value) in entries {
        let entry_path = join(path, key.get_ref());
        let name = key.get_ref().to_ascii_lowercase();
        if !is_token(&name) {
            cx.report
                .error_value(key.span(), &entry_path, "invalid header name")
                .hint("header names use letters, digits and `-`, e.g. \"authorization\" or \"x-api-key\"");
            continue;
        }
        if EXPORTER_HEADERS.contains(&name.as_str()) {
            cx.report
                .error(
                    key.span(),
                    &entry_path,
                    format!("`{name}` cannot be set here; the exporter or the connection sets it"),
                )
                .hint("only extra headers such as authorization belong in [tracing] headers");
            continue;
        }
        if out.iter().any(|(n, _)| *n == name) {
            cx.report.error(
                key.span(),
                &entry_path,
                format!("`{name}` is listed twice (header names ignore case)"),
            );
            continue;
        }
        let visible = value
            .get_ref()
            .chars()
            .all(|c| c == ' ' || c == '\t' || c.is_ascii_graphic());
        if !visible {
            cx.report
                .error(
                    value.span(),
                    &entry_path,
                    "header values can only contain visible ASCII characters, spaces and tabs",
                )
                .hint("the value is not shown here in case it is a secret; encode other bytes, e.g. in base64");
        }
        out.push((name, value.get_ref().clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for ok in [
            "http://127.0.0.1:4318/v1/traces",
            "https://otel.example.com/v1/traces",
            "HTTPS://otel.example.com",
            "http://collector:4318",
            "http://[::1]:4318/v1/traces",
            "http://otel.example.com/v1/traces?tenant=a",
        ] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "cannot be empty"),
            ("127.0.0.1:4318", "needs a scheme"),
            ("localhost:4318/v1/traces", "needs a scheme"),
            ("grpc://127.0.0.1:4317", "unsupported scheme `grpc`"),
            ("ftp://x/", "unsupported scheme `ftp`"),
            ("http://", "invalid URL"),
            ("http://x y/", "invalid URL"),
            ("http://a:1:2/", "invalid URL"),
            ("http://user:secret@x/v1/traces", "user name or password"),
            ("http://:4318/", "needs a host"),
            ("http://x:0/", "invalid port \"0\""),
            ("http://x:99999/", "invalid port \"99999\""),
            ("http://x:/", "invalid port \"\""),
            ("http://[::g]:1/", "invalid IPv6"),
            ("http://a..b/", "invalid host"),
            ("http://1.2.3/", "invalid host"),
            ("http://x/v1/traces#top", "fragment"),
        ] {
            match check_endpoint(bad) {
                Ok(()) => panic!("{bad:?} should be rejected"),
                Err(message) => assert!(message.contains(why), "{bad:?}: {message}"),
            }
        }
    }
}
