//! Golden tests: every example config is valid, and every bad fixture gives
//! exactly the diagnostics in its sibling `.err` file.
//!
//! `UPDATE_GOLDEN=1 cargo test -p sy-config --test golden` rewrites the `.err`
//! files from the current output; review the diff before committing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_is_valid() {
    let dir = manifest_dir().join("../../examples");
    let examples = files_with_extension(&dir, "toml");
    assert!(
        examples.len() >= 5,
        "expected the examples in {}",
        dir.display()
    );
    for path in examples {
        match sy_config::load_checked(&path, &NoFiles) {
            Err(diagnostics) => panic!("{} should be valid:\n{diagnostics}", path.display()),
            Ok(loaded) => assert!(
                loaded.warnings.is_empty(),
                "{} should load without warnings:\n{:?}",
                path.display(),
                loaded.warnings
            ),
        }
    }
}

/// File checks that find nothing: these tests are about the file's text.
struct NoFiles;

impl sy_config::FileChecks for NoFiles {
    fn certificate_pair(&self, _: &sy_config::CertificatePair<'_>) -> Vec<sy_config::Finding> {
        Vec::new()
    }
    fn ca_bundle(&self, _: &Path) -> Vec<sy_config::Finding> {
        Vec::new()
    }
}

#[test]
fn warning_fixtures_match_their_golden_warnings() {
    compare_golden("tests/fixtures/warn", "warn", |source, file_name, dir| {
        match sy_config::parse_checked(source, file_name, dir, &NoFiles) {
            Ok(loaded) if loaded.warnings.is_empty() => {
                format!("{file_name} unexpectedly loaded without warnings")
            }
            Ok(loaded) => loaded.warnings.iter().map(|w| format!("{w}\n")).collect(),
            Err(diagnostics) => format!("{file_name} should be valid:\n{diagnostics}\n"),
        }
    });
}

#[test]
fn examples_load_the_way_they_read() {
    let dir = manifest_dir().join("../../examples");
    let basic = sy_config::load(&dir.join("basic.toml")).unwrap();
    assert_eq!(basic.listeners.len(), 1);
    assert_eq!(basic.upstream("app").unwrap().servers.len(), 2);

    let tls = sy_config::load(&dir.join("tls.toml")).unwrap();
    let https = tls.listeners.iter().find(|l| l.name == "https").unwrap();
    let certs = &https.tls.as_ref().unwrap().certificates;
    assert_eq!(certs.len(), 2);
    // Relative certificate paths resolve against the config file's directory.
    assert!(certs[0].cert.is_file(), "{}", certs[0].cert.display());
}

#[test]
fn bad_fixtures_match_their_golden_errors() {
    let fixtures = files_with_extension(&manifest_dir().join("tests/fixtures/bad"), "toml");
    assert!(fixtures.len() >= 12, "expected at least 12 bad fixtures");
    compare_golden(
        "tests/fixtures/bad",
        "err",
        |source, file_name, dir| match sy_config::parse(source, file_name, dir) {
            Ok(_) => format!("{file_name} unexpectedly parsed without errors"),
            Err(diagnostics) => format!("{diagnostics}\n"),
        },
    );
}

/// Renders every `.toml` fixture under `dir` (relative to the crate) with
/// `render(source, file_name, dir)` and compares the text with the sibling
/// file of extension `golden`; `UPDATE_GOLDEN=1` rewrites those instead.
fn compare_golden(dir: &str, golden: &str, render: impl Fn(&str, &str, &Path) -> String) {
    let dir = manifest_dir().join(dir);
    let fixtures = files_with_extension(&dir, "toml");
    assert!(!fixtures.is_empty(), "no fixtures in {}", dir.display());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for path in fixtures {
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = fs::read_to_string(&path).unwrap();
        let actual = render(&source, &file_name, &dir);
        let golden = path.with_extension(golden);
        if update {
            fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&golden).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "--- {}\n{expected}+++ actual\n{actual}",
                golden.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches (rerun with UPDATE_GOLDEN=1 to accept):\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_check_sample_in_the_docs_is_real_output() {
    let dir = manifest_dir().join("tests/fixtures/docs");
    let source = fs::read_to_string(dir.join("bad.toml")).unwrap();
    let diagnostics = sy_config::parse(&source, "bad.toml", &dir).unwrap_err();
    let docs = fs::read_to_string(manifest_dir().join("../../docs/configuration.md")).unwrap();
    // The count line is printed by the binary (crates/switchyard), not by Display.
    let count = diagnostics.errors.len();
    let sample = format!(
        "$ switchyard check -c bad.toml\n{diagnostics}\nbad.toml: {count} error(s)\n$ echo $?\n1\n"
    );
    assert!(
        docs.contains(&sample),
        "docs/configuration.md should contain:\n{sample}"
    );
}
