#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::path::PathBuf;

/// A certificate for `names` valid until `until` (Unix seconds), written
/// into `dir` as `stem.pem` / `stem.key`.
fn cert(dir: &Path, stem: &str, names: &[&str], until: i64) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = time_at(0);
    params.not_after = time_at(until);
    let c = params.self_signed(&key).unwrap();
    let (cp, kp) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&cp, c.pem()).unwrap();
    std::fs::write(&kp, key.serialize_pem()).unwrap();
    (cp, kp)
}

fn time_at(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

/// 2030-01-01T00:00:00Z: the test's "now".
const NOW: i64 = 1_893_456_000;
const DAY: i64 = 86_400;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW as u64)
}

fn check(cert: &Path, key: &Path, names: &[&str]) -> Vec<(Severity, Subject, String)> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    check_pair(
        &CertificatePair {
            cert,
            key,
            server_names: &names,
        },
        now(),
    )
    .into_iter()
    .map(|f| (f.severity, f.subject, f.message))
    .collect()
}

#[test]
fn a_good_pair_has_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = cert(
        dir.path(),
        "a",
        &["a.example.com", "*.b.example.com"],
        NOW + 90 * DAY,
    );
    assert_eq!(
        check(
            &c,
            &k,
            &["a.example.com", "x.b.example.com", "*.b.example.com"]
        ),
        vec![]
    );
}

#[test]
fn a_key_of_another_certificate_is_an_error_on_key() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = cert(dir.path(), "a", &["a.example.com"], NOW + 90 * DAY);
    let (_, other) = cert(dir.path(), "b", &["a.example.com"], NOW + 90 * DAY);
    let found = check(&c, &other, &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Severity::Error);
    assert_eq!(found[0].1, Subject::Key);
    assert!(
        found[0].2.contains("does not match the certificate"),
        "{}",
        found[0].2
    );
}

#[test]
fn swapped_files_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = cert(dir.path(), "a", &["a.example.com"], NOW + 90 * DAY);
    let found = check(&k, &c, &[]);
    assert_eq!(found[0].1, Subject::Cert);
    assert!(
        found[0]
            .2
            .contains("holds a private key, not a certificate"),
        "{found:?}"
    );
    let found = check(&c, &c, &[]);
    assert_eq!(found[0].1, Subject::Key);
    assert!(
        found[0]
            .2
            .contains("holds a certificate, not a private key"),
        "{found:?}"
    );
}

#[test]
fn unusable_files_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = cert(dir.path(), "a", &["a.example.com"], NOW + 90 * DAY);
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "nothing here\n").unwrap();
    assert!(check(&empty, &k, &[])[0].2.contains("no certificate found"));
    assert!(check(&c, &empty, &[])[0].2.contains("no private key found"));
    let der = dir.path().join("cert.der");
    std::fs::write(&der, [0x30, 0x82, 0x01, 0x00, 0x01]).unwrap();
    assert!(check(&der, &k, &[])[0].2.contains("binary (DER)"));
    let encrypted = dir.path().join("enc.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    assert!(
        check(&c, &encrypted, &[])[0]
            .2
            .contains("encrypted with a passphrase")
    );
}

#[test]
fn expiry_is_warned_about_within_thirty_days() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = cert(dir.path(), "soon", &["a.example.com"], NOW + 10 * DAY + 60);
    let found = check(&c, &k, &[]);
    assert_eq!(
        found,
        vec![(
            Severity::Warning,
            Subject::Cert,
            "the certificate expires on 2030-01-11 (in 10 days)".to_owned()
        )]
    );
    let (c, k) = cert(dir.path(), "old", &["a.example.com"], NOW - DAY);
    assert_eq!(
        found_message(&c, &k),
        "the certificate expired on 2029-12-31"
    );
    let (c, k) = cert(dir.path(), "later", &["a.example.com"], NOW + 31 * DAY);
    assert_eq!(check(&c, &k, &[]), vec![]);
}

fn found_message(c: &Path, k: &Path) -> String {
    check(c, k, &[]).remove(0).2
}

#[test]
fn names_the_certificate_does_not_cover_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = cert(
        dir.path(),
        "a",
        &["a.example.com", "*.b.example.com"],
        NOW + 90 * DAY,
    );
    let found = check(
        &c,
        &k,
        &[
            "a.example.com",
            "c.example.com",
            "x.y.b.example.com",
            "*.example.com",
        ],
    );
    let subjects: Vec<Subject> = found.iter().map(|f| f.1).collect();
    assert_eq!(
        subjects,
        vec![
            Subject::ServerName(1),
            Subject::ServerName(2),
            Subject::ServerName(3)
        ]
    );
    assert_eq!(
        found[0].2,
        "`c.example.com` is not covered by the certificate (its names are a.example.com, *.b.example.com)"
    );
}

#[test]
fn name_coverage_rules() {
    assert!(covers("a.example.com", "A.Example.com"));
    assert!(covers("*.example.com", "a.example.com"));
    assert!(!covers("*.example.com", "example.com"));
    assert!(!covers("*.example.com", "a.b.example.com"));
    assert!(covers("*.example.com", "*.example.com"));
    assert!(!covers("a.example.com", "*.example.com"));
    assert!(covers("a.example.com.", "a.example.com"));
}

#[test]
fn dates() {
    assert_eq!(date(0), "1970-01-01");
    assert_eq!(date(NOW), "2030-01-01");
    assert_eq!(date(951_782_400), "2000-02-29");
    assert_eq!(date(-86_400), "1969-12-31");
}
