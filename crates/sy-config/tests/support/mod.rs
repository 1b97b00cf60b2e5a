//! Helpers shared by the integration tests of sy-config.
#![allow(dead_code, clippy::panic)]

use std::path::PathBuf;

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// `source` parsed as `test.toml` in `examples/`; panics on errors.
pub fn parse_ok(source: &str) -> sy_config::Config {
    match sy_config::parse(source, "test.toml", &examples_dir()) {
        Ok(config) => config,
        Err(diagnostics) => panic!("expected a valid config:\n{diagnostics}"),
    }
}

/// The diagnostics of `source`, which must be invalid.
pub fn parse_err(source: &str) -> String {
    match sy_config::parse(source, "test.toml", &examples_dir()) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(diagnostics) => diagnostics.to_string(),
    }
}
