//! The JSON Schema of the configuration file: `switchyard schema` prints
//! what docs/switchyard.schema.json holds, every shipped example validates
//! against it (as an editor would check it), and a mistake does not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::bin;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("docs/switchyard.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A TOML file as the JSON value an editor's validator sees.
fn as_json(toml_text: &str) -> serde_json::Value {
    let v: toml::Value = toml::from_str(toml_text).unwrap();
    serde_json::to_value(v).unwrap()
}

fn errors(validator: &jsonschema::Validator, toml_text: &str) -> Vec<String> {
    validator
        .iter_errors(&as_json(toml_text))
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

#[test]
fn the_published_schema_is_what_the_binary_prints() {
    let out = Command::new(bin()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let file = std::fs::read_to_string(root().join("docs/switchyard.schema.json")).unwrap();
    assert!(
        printed == file,
        "docs/switchyard.schema.json is stale: run `switchyard schema > docs/switchyard.schema.json`"
    );
}

#[test]
fn every_example_validates_and_mistakes_do_not() {
    let validator = jsonschema::draft7::new(&schema()).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let errs = errors(&validator, &text);
        assert!(errs.is_empty(), "{}: {errs:#?}", f.display());
    }
    let bad = r#"
[runtime]
wokers = 2
[listeners.web]
address = "127.0.0.1:8080"
http2 = "yes"
[[routes]]
name = "r"
upstream = "u"
timeout = "5 seconds"
filters = [{ headers = { response = { sett = {} } } }]
"#;
    let errs = errors(&validator, bad).join("\n");
    for path in [
        "/runtime",
        "/listeners/web/http2",
        "/routes/0/timeout",
        "/routes/0/filters/0",
    ] {
        assert!(errs.contains(path), "no error at {path}:\n{errs}");
    }
}
