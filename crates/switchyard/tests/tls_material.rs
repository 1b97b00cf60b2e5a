//! TLS material checked before it is used: a key that does not match its
//! certificate, files swapped, names the certificate does not cover (in
//! `check`, at start and on reload); failing handshakes logged with their
//! reason; plain HTTP sent to a TLS port answered with a readable 400.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    Backend, Binary, Proxy, RawHttp, bin, metric_in, route_all, servers, tls_client, tls_connect,
    wait_admin_ready, write_cert,
};

const DEADLINE: Duration = Duration::from_secs(20);

/// A config with a TLS listener `secure` whose certificate entry is
/// `cert_entry` (the inside of `{ ... }`), routing to `backend`.
fn tls_config(cert_entry: &str, backend: &Backend, min_version: &str) -> String {
    format!(
        r#"
[admin]
address = "127.0.0.1:0"
[runtime]
workers = 1
watch_config = false
[listeners.secure]
address = "127.0.0.1:0"
[listeners.secure.tls]
min_version = "{min_version}"
certificates = [{{ {cert_entry} }}]
{}"#,
        route_all(&servers(&[backend]), "", "")
    )
}

fn check(dir: &Path, toml: &str) -> (i32, String, String) {
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(bin())
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_loads_each_pair_and_says_what_is_wrong() {
    let backend = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path(), "site", &["site.example.test"]);
    write_cert(dir.path(), "other", &["site.example.test"]);

    // A key of another certificate.
    let (code, _, err) = check(
        dir.path(),
        &tls_config(
            r#"cert = "site.pem", key = "other.key", server_names = ["site.example.test"]"#,
            &backend,
            "1.2",
        ),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("listeners.secure.tls.certificates[0].key: the private key does not match the certificate"),
        "{err}"
    );

    // The certificate given as the key, and the key as the certificate.
    let (code, _, err) = check(
        dir.path(),
        &tls_config(r#"cert = "site.key", key = "site.pem""#, &backend, "1.2"),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("certificates[0].cert: this file holds a private key, not a certificate"),
        "{err}"
    );
    let (code, _, err) = check(
        dir.path(),
        &tls_config(r#"cert = "site.pem", key = "site.pem""#, &backend, "1.2"),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("certificates[0].key: this file holds a certificate, not a private key"),
        "{err}"
    );
    assert!(err.contains("are the two swapped?"), "{err}");

    // A name the certificate does not cover: valid, with a warning.
    let (code, out, err) = check(
        dir.path(),
        &tls_config(
            r#"cert = "site.pem", key = "site.key", server_names = ["site.example.test", "www.example.test"]"#,
            &backend,
            "1.2",
        ),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok (1 listeners, 1 routes, 1 upstreams, 1 warning)"),
        "{out}"
    );
    assert!(
        err.contains("warning: listeners.secure.tls.certificates[0].server_names[1]: `www.example.test` is not covered by the certificate (its names are site.example.test)"),
        "{err}"
    );

    // `run` refuses the mismatched pair with the same words, once.
    std::fs::write(
        dir.path().join("run.toml"),
        tls_config(r#"cert = "site.pem", key = "other.key""#, &backend, "1.2"),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["run", "-c"])
        .arg(dir.path().join("run.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.matches("does not match the certificate").count(),
        1,
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_mismatched_key_is_rejected_and_the_old_pair_serves() {
    let backend = Backend::start("a").await;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, served) = write_cert(certs.path(), "site", &["site.example.test"]);
    let (_, other_key, _) = write_cert(certs.path(), "other", &["site.example.test"]);
    let entry = format!(r#"cert = "{}", key = "{}""#, cert.display(), key.display());
    let proxy = Proxy::start(&tls_config(&entry, &backend, "1.2"));

    // The key file is replaced by one that does not belong to the
    // certificate (a renewal gone wrong), then a reload is asked for.
    std::fs::copy(&other_key, &key).unwrap();
    let err = proxy
        .handle
        .reload()
        .expect_err("a mismatched pair must be rejected");
    let text = err.to_string();
    assert!(
        text.contains("certificates[0].key: the private key does not match the certificate"),
        "{text}"
    );
    assert!(text.contains("keeping version 1"), "{text}");

    let connector = tls_client(&["http/1.1"], &[&rustls::version::TLS13]);
    let s = tls_connect(&connector, proxy.addr("secure"), Some("site.example.test"))
        .await
        .unwrap();
    assert_eq!(common::peer_leaf_der(&s), served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handshake_is_logged_with_its_reason() {
    let backend = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = write_cert(dir.path(), "site", &["site.example.test"]);
    let entry = format!(r#"cert = "{}", key = "{}""#, cert.display(), key.display());
    let bin = Binary::start(&tls_config(&entry, &backend, "1.3"), 1);
    wait_admin_ready(bin.admin.unwrap()).await;
    // A client that only speaks TLS 1.2 to a TLS 1.3-only listener.
    let old = tls_client(&["http/1.1"], &[&rustls::version::TLS12]);
    assert!(
        tls_connect(&old, bin.listener_addr("secure"), Some("site.example.test"))
            .await
            .is_err()
    );
    let record = bin.wait_log("of the failed handshake", DEADLINE, |v| {
        v["fields"]["message"] == "tls handshake failed"
    });
    let f = &record["fields"];
    assert_eq!(f["listener"], "secure", "{record}");
    let error = f["error"].as_str().unwrap();
    assert!(error.contains("Tls12NotOfferedOrEnabled"), "{record}");
    assert!(
        f["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_tls_port_gets_a_readable_400() {
    let backend = Backend::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = write_cert(dir.path(), "site", &["site.example.test"]);
    let entry = format!(r#"cert = "{}", key = "{}""#, cert.display(), key.display());
    let proxy = Proxy::start(&tls_config(&entry, &backend, "1.2"));
    let addr = proxy.addr("secure");

    let mut raw = RawHttp::connect(addr).await;
    raw.send(b"GET /page HTTP/1.1\r\nHost: site.example.test\r\nUser-Agent: curl\r\n\r\n")
        .await;
    let r = raw.read_response().await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-switchyard-error"), Some("plain-http-on-tls"));
    assert!(r.body_str().contains("expects HTTPS"), "{}", r.body_str());
    assert!(raw.closed().await);
    assert_eq!(backend.hits(), 0);

    let (_, text) = common::admin_get(proxy.admin(), "/metrics").await;
    assert_eq!(
        metric_in(
            &text,
            "switchyard_downstream_errors_total",
            &[("listener", "secure"), ("kind", "plain_http_on_tls")]
        ),
        1.0
    );
    // TLS clients are unaffected.
    let connector = tls_client(&["http/1.1"], &[&rustls::version::TLS13]);
    assert!(
        tls_connect(&connector, addr, Some("site.example.test"))
            .await
            .is_ok()
    );
}
