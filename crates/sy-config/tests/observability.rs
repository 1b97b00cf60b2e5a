//! What the `[access_log]` and `[tracing]` tables and `[admin] token_file`
//! turn into: defaults, every key, paths and secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{examples_dir, parse_err, parse_ok};
use sy_config::model::{ACCESS_LOG_FIELDS, AccessLog, AccessLogFormat, LogFormat, Tracing};

/// A fresh directory under the system temp dir, removed by the caller.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sy-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const ENDPOINT: &str = "http://127.0.0.1:4318/v1/traces";

#[test]
fn observability_tables_default_to_their_documented_values() {
    let config = parse_ok(&format!(
        "[access_log]\n[tracing]\nendpoint = \"{ENDPOINT}\"\n"
    ));
    assert_eq!(
        config.access_log,
        Some(AccessLog {
            format: AccessLogFormat::Json,
            path: "stdout".into(),
            fields: ACCESS_LOG_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
            sample: 1.0,
            queue: 8192,
        })
    );
    assert_eq!(
        config.tracing,
        Some(Tracing {
            endpoint: ENDPOINT.into(),
            sample_ratio: 1.0,
            parent_based: true,
            service_name: "switchyard".into(),
            headers: vec![],
            max_queue: 2048,
            max_batch: 512,
            export_interval: Duration::from_secs(5),
            export_timeout: Duration::from_secs(10),
        })
    );
    assert_eq!(config.runtime.log_format, LogFormat::Text);

    // A queue smaller than the default batch makes the batch that size.
    let small = parse_ok(&format!(
        "[tracing]\nendpoint = \"{ENDPOINT}\"\nmax_queue = 100\n"
    ));
    let tracing = small.tracing.unwrap();
    assert_eq!((tracing.max_queue, tracing.max_batch), (100, 100));

    // `enabled = false` turns a table off; a disabled [tracing] needs no endpoint.
    let off = parse_ok(
        "[access_log]\nenabled = false\nformat = \"combined\"\n[tracing]\nenabled = false\n",
    );
    assert_eq!(off.access_log, None);
    assert_eq!(off.tracing, None);
    let on = parse_ok(&format!(
        "[access_log]\nenabled = true\n[tracing]\nenabled = true\nendpoint = \"{ENDPOINT}\"\n"
    ));
    assert!(on.access_log.is_some() && on.tracing.is_some());
}

#[test]
fn observability_tables_with_every_key() {
    let config = parse_ok(
        r#"
        [admin]
        address = "0.0.0.0:9901"
        token = "0123456789abcdef"
        [runtime]
        log_format = "json"
        [access_log]
        format = "combined"
        path = "certs/access.log"
        fields = ["time", "status", "trace_id"]
        sample = 0.25
        queue = 16
        [tracing]
        endpoint = "https://otel.example.com/v1/traces"
        sample_ratio = 0
        parent_based = false
        service_name = "edge-proxy"
        max_queue = 1_000_000
        max_batch = 1_000_000
        export_interval = "1s"
        export_timeout = "2500ms"
        [tracing.headers]
        X-Scope = "team a"
        Authorization = "Bearer abc"
        "#,
    );
    assert_eq!(config.admin.token.as_deref(), Some("0123456789abcdef"));
    assert_eq!(config.admin.address, Some("0.0.0.0:9901".parse().unwrap()));
    assert_eq!(config.runtime.log_format, LogFormat::Json);
    let path = examples_dir().join("certs/access.log");
    assert_eq!(
        config.access_log,
        Some(AccessLog {
            format: AccessLogFormat::Combined,
            path: path.to_str().unwrap().to_owned(),
            fields: vec!["time".into(), "status".into(), "trace_id".into()],
            sample: 0.25,
            queue: 16,
        })
    );
    assert_eq!(
        config.tracing,
        Some(Tracing {
            endpoint: "https://otel.example.com/v1/traces".into(),
            sample_ratio: 0.0,
            parent_based: false,
            service_name: "edge-proxy".into(),
            // Lower-cased, in file order.
            headers: vec![
                ("x-scope".into(), "team a".into()),
                ("authorization".into(), "Bearer abc".into()),
            ],
            max_queue: 1_000_000,
            max_batch: 1_000_000,
            export_interval: Duration::from_secs(1),
            export_timeout: Duration::from_millis(2500),
        })
    );

    // Integers are numbers too; stderr and absolute paths are kept as written.
    let config = parse_ok(
        "[access_log]\npath = \"stderr\"\nsample = 1\n[tracing]\nendpoint = \"http://[::1]:4318/v1/traces\"\nsample_ratio = 1\n",
    );
    let log = config.access_log.unwrap();
    assert_eq!((log.path.as_str(), log.sample), ("stderr", 1.0));
    assert_eq!(config.tracing.unwrap().sample_ratio, 1.0);
    let dir = temp_dir("abs-log");
    let file = dir.join("access.log");
    let config = parse_ok(&format!(
        "[access_log]\npath = {:?}\n",
        file.to_str().unwrap()
    ));
    assert_eq!(config.access_log.unwrap().path, file.to_str().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn access_log_path_problems() {
    let err = parse_err("[access_log]\npath = \"certs\"\n");
    assert!(
        err.contains("access_log.path: access log path is a directory (got \"certs\")"),
        "{err}"
    );
    let err = parse_err("[access_log]\npath = \"certs/a.example.com.pem/access.log\"\n");
    assert!(
        err.contains("access log file's parent is not a directory"),
        "{err}"
    );
    // A disabled log opens nothing, so its directory is not checked.
    let config = parse_ok("[access_log]\nenabled = false\npath = \"no-such-dir/access.log\"\n");
    assert_eq!(config.access_log, None);
}

#[test]
fn admin_token_from_a_file_is_read_relative_to_the_config_and_trimmed() {
    let dir = temp_dir("token");
    std::fs::write(dir.join("admin-token"), "  0123456789abcdef0123\n").unwrap();
    let config_path = dir.join("switchyard.toml");
    std::fs::write(
        &config_path,
        "[admin]\naddress = \"0.0.0.0:9901\"\ntoken_file = \"admin-token\"\n",
    )
    .unwrap();
    let config = sy_config::load(&config_path).unwrap();
    assert_eq!(config.admin.token.as_deref(), Some("0123456789abcdef0123"));

    let check = |contents: &str| {
        std::fs::write(dir.join("admin-token"), contents).unwrap();
        sy_config::load(&config_path).unwrap_err().to_string()
    };
    let err = check(" \n\t\n");
    assert!(
        err.contains("3:14: error: admin.token_file: token file is empty (got \"admin-token\")"),
        "{err}"
    );
    let err = check("abc\n");
    assert!(
        err.contains("the token in this file must be at least 16 characters long (it has 3)"),
        "{err}"
    );
    assert!(!err.contains("abc"), "the token must not be quoted: {err}");
    let err = check("0123456789abcdef\n0123456789abcdef\n");
    assert!(err.contains("can only contain visible ASCII"), "{err}");
    let err = check(&"x".repeat(5000));
    assert!(
        err.contains("token file is larger than 4096 bytes"),
        "{err}"
    );

    std::fs::write(&config_path, "[admin]\ntoken_file = \".\"\n").unwrap();
    let err = sy_config::load(&config_path).unwrap_err().to_string();
    assert!(
        err.contains("token file path is not a regular file"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn admin_token_rules() {
    let err = parse_err("[admin]\ntoken = \"correct horse battery staple\"\n");
    assert!(
        err.starts_with("test.toml:2:9: error: admin.token: token can only contain visible ASCII characters (no spaces or control characters)\n  hint: the token guards reload and drain"),
        "{err}"
    );
    assert!(
        !err.contains("horse"),
        "the token must not be quoted: {err}"
    );
    let err = parse_err("[admin]\ntoken = \"\"\n");
    assert!(err.contains("admin.token: token cannot be empty"), "{err}");

    // Loopback addresses need no token; other addresses do, unless the
    // admin API is off.
    for address in [
        "127.0.0.1:9901",
        "127.1.2.3:9901",
        "[::1]:9901",
        "[::ffff:127.0.0.1]:9901",
    ] {
        let config = parse_ok(&format!("[admin]\naddress = \"{address}\"\n"));
        assert_eq!(config.admin.token, None, "{address}");
    }
    for address in [
        "0.0.0.0:9901",
        "10.0.0.1:9901",
        "[::]:9901",
        "[2001:db8::1]:9901",
    ] {
        let err = parse_err(&format!("[admin]\naddress = \"{address}\"\n"));
        assert!(
            err.contains("admin.address: the admin API on a non-loopback address needs `token` or `token_file`"),
            "{address}: {err}"
        );
    }
    let config = parse_ok("[admin]\naddress = \"0.0.0.0:9901\"\nenabled = false\n");
    assert_eq!(config.admin.address, None);
    // A malformed token is reported once, not also as missing.
    let err = parse_err("[admin]\naddress = \"0.0.0.0:9901\"\ntoken = 1234567890123456\n");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("admin.token: expected a string"), "{err}");
}

#[test]
fn tracing_header_values_are_checked_but_never_quoted() {
    let err = parse_err(&format!(
        "[tracing]\nendpoint = \"{ENDPOINT}\"\nheaders = {{ authorization = \"Bearer s3cr\\u00e9t\" }}\n"
    ));
    assert!(
        err.contains("tracing.headers.authorization: header values can only contain visible ASCII characters, spaces and tabs\n"),
        "{err}"
    );
    assert!(!err.contains("s3cr"), "{err}");
}

#[test]
fn the_observability_example_loads_the_way_it_reads() {
    let config = sy_config::load(&examples_dir().join("observability.toml")).unwrap();
    assert_eq!(
        config.admin.address,
        Some("127.0.0.1:9901".parse().unwrap())
    );
    assert!(config.admin.token.as_ref().is_some_and(|t| t.len() >= 16));
    assert_eq!(config.runtime.log_format, LogFormat::Json);
    let log = config.access_log.unwrap();
    assert_eq!(log.format, AccessLogFormat::Json);
    assert_eq!(log.path, "stdout");
    assert_eq!(log.sample, 1.0);
    assert_eq!(log.fields.len(), ACCESS_LOG_FIELDS.len());
    let tracing = config.tracing.unwrap();
    assert_eq!(tracing.endpoint, ENDPOINT);
    assert_eq!(tracing.sample_ratio, 0.01);
    assert!(tracing.parent_based);
}
