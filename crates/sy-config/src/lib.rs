//! Switchyard configuration: TOML file -> validated [`Config`].
//!
//! The pipeline is `source text` -> spanned TOML document -> shape check
//! (`schema`: unknown keys, wrong types, all reported) -> serde raw model
//! (`raw`) -> semantic validation (`validate`) -> [`model::Config`]. Every
//! problem is collected into [`Diagnostics`] with file, line, column, field
//! path, offending value and a hint; nothing here panics on any input.
//!
//! This crate does no network IO and must not depend on tokio or the server:
//! the only filesystem access is reading the config file in [`load`],
//! reading `[admin] token_file`, checking that referenced certificate, key
//! and CA files exist, and checking that the directory of an
//! `[access_log] path` file exists.

mod diagnostic;
pub mod model;
mod raw;
mod schema;
pub mod units;
mod validate;

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, Deserializer};

pub use diagnostic::{Diagnostic, Diagnostics};
pub use model::Config;

use diagnostic::Report;

/// Reads and validates the configuration file at `path`.
///
/// Relative `cert`, `key`, `ca`, `token_file` and access log paths resolve
/// against the file's directory. Diagnostics name the file as `path` was
/// given.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| file_error(&file, format!("cannot read the configuration file: {e}")))?;
    let source = String::from_utf8(bytes).map_err(|_| {
        file_error(
            &file,
            "the configuration file is not valid UTF-8".to_owned(),
        )
    })?;
    let base_dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let source = source.strip_prefix('\u{feff}').unwrap_or(&source);
    parse(source, &file, base_dir)
}

/// Validates configuration text.
///
/// `file_name` is only used in diagnostics; relative `cert`, `key`, `ca`,
/// `token_file` and access log paths resolve against `base_dir`. Returns every problem found, in file
/// order, or the validated configuration.
pub fn parse(source: &str, file_name: &str, base_dir: &Path) -> Result<Config, Diagnostics> {
    let mut report = Report::new(file_name, source);
    let document = match DeTable::parse(source) {
        Ok(document) => document,
        Err(e) => {
            // The parser stops at the first syntax error; later positions
            // would be guesses, so exactly one is reported.
            let span = e.span().unwrap_or(0..0);
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_owned();
            report
                .error(span, "", format!("invalid TOML: {message}"))
                .hint("see https://toml.io for the syntax");
            return Err(report.finish());
        }
    };
    let span = document.span();
    let mut table = document.into_inner();
    schema::check_document(&mut table, &mut report);
    let raw = match raw::RawConfig::deserialize(Deserializer::from(Spanned::new(span, table))) {
        Ok(raw) => raw,
        Err(e) => {
            // Unreachable while `schema` mirrors `raw`; reported rather than
            // hidden so a drift between the two shows up in tests.
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid value")
                .to_owned();
            report
                .error(e.span().unwrap_or(0..0), "", format!("internal: {message}"))
                .hint("this is a bug in switchyard's config checker; please report it");
            return Err(report.finish());
        }
    };
    let (config, report) = validate::validate(&raw, report, base_dir);
    if report.is_empty() {
        Ok(config)
    } else {
        Err(report.finish())
    }
}

/// A problem with the file as a whole (no position).
fn file_error(file: &str, message: String) -> Diagnostics {
    Diagnostics {
        errors: vec![Diagnostic {
            file: file.to_owned(),
            line: 0,
            column: 0,
            path: String::new(),
            value: None,
            message,
            hint: None,
        }],
    }
}
