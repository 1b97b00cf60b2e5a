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
//! reading `[admin] token_file` and the `allow_files` / `deny_files` of IP
//! lists (at every load, so a reload re-reads them), checking that
//! referenced certificate, key and CA files exist, and checking that the
//! directory of an `[access_log] path` file exists. What needs
//! cryptography (does the key match its certificate?) is asked of a
//! [`FileChecks`] the caller passes to [`load_checked`]; the server crate
//! implements it.
//!
//! Every relative path in the file is resolved here, once, against the
//! directory of the configuration file, and stored resolved in the
//! [`Config`]; nothing downstream resolves a path again.

mod diagnostic;
pub mod model;
mod raw;
mod schema;
mod shape;
pub mod template;
pub mod units;
mod validate;

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, Deserializer};

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use model::Config;

use diagnostic::Report;

/// A valid configuration and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Things that work but are probably not meant (a route that can never
    /// match, a listener without routes, a certificate about to expire), in
    /// file order.
    pub warnings: Vec<Diagnostic>,
}

/// Checks of the files a configuration names that need more than this
/// crate may depend on (parsing certificates and keys). `switchyard check`,
/// start and reload pass the server's implementation; [`load`] and
/// [`parse`] pass none.
pub trait FileChecks {
    /// Loads a certificate chain and its private key; reports what is
    /// wrong with them. Called only when both files exist.
    fn certificate_pair(&self, pair: &CertificatePair<'_>) -> Vec<Finding>;

    /// Loads a PEM bundle of CA certificates (`[upstreams.NAME.tls] ca`).
    /// Called only when the file exists.
    fn ca_bundle(&self, path: &Path) -> Vec<Finding>;
}

/// A certificate entry of a TLS listener, as [`FileChecks`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct CertificatePair<'a> {
    /// The PEM chain file (resolved path).
    pub cert: &'a Path,
    /// The PEM private key file (resolved path).
    pub key: &'a Path,
    /// The names it is configured to serve (`server_names`, lower-cased).
    pub server_names: &'a [String],
}

/// One finding of a [`FileChecks`] check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// An error makes the file invalid; a warning is reported only.
    pub severity: Severity,
    /// Which key the finding is about (where the diagnostic points).
    pub subject: Subject,
    /// What is wrong, lower-case, in words a user understands.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// The key a [`Finding`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// `cert` (or `ca` for a CA bundle).
    Cert,
    /// `key`.
    Key,
    /// `server_names[i]`.
    ServerName(usize),
}

/// No file checks beyond existence ([`load`] and [`parse`]).
struct NoChecks;

impl FileChecks for NoChecks {
    fn certificate_pair(&self, _: &CertificatePair<'_>) -> Vec<Finding> {
        Vec::new()
    }
    fn ca_bundle(&self, _: &Path) -> Vec<Finding> {
        Vec::new()
    }
}

/// Reads and validates the configuration file at `path`, without
/// [`FileChecks`] and dropping warnings; see [`load_checked`].
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    load_checked(path, &NoChecks).map(|l| l.config)
}

/// Reads and validates the configuration file at `path`, running `checks`
/// on the certificate, key and CA files it names.
///
/// Relative `cert`, `key`, `ca`, `token_file`, IP list file and access log
/// paths resolve against the file's directory and are stored resolved.
/// Diagnostics name the file as `path` was given.
pub fn load_checked(path: &Path, checks: &dyn FileChecks) -> Result<Loaded, Diagnostics> {
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
    parse_checked(source, &file, base_dir, checks)
}

/// Validates configuration text, without [`FileChecks`] and dropping
/// warnings; see [`parse_checked`].
pub fn parse(source: &str, file_name: &str, base_dir: &Path) -> Result<Config, Diagnostics> {
    parse_checked(source, file_name, base_dir, &NoChecks).map(|l| l.config)
}

/// Validates configuration text.
///
/// `file_name` is only used in diagnostics; relative `cert`, `key`, `ca`,
/// `token_file`, IP list file and access log paths resolve against
/// `base_dir`. Returns every error found, in file order, or the validated
/// configuration with its warnings.
pub fn parse_checked(
    source: &str,
    file_name: &str,
    base_dir: &Path,
    checks: &dyn FileChecks,
) -> Result<Loaded, Diagnostics> {
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
            // Unreachable while the kinds `schema` checks (derived from
            // `raw`) are what serde reads; reported rather than hidden so a
            // hand-written `Shape` that drifts from its `Deserialize` shows
            // up in tests.
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
    let (config, report) = validate::validate(&raw, report, base_dir, checks);
    let (errors, warnings) = report.split();
    if errors.errors.is_empty() {
        Ok(Loaded { config, warnings })
    } else {
        Err(errors)
    }
}

/// The JSON Schema (draft 7) of the configuration file, pretty-printed:
/// `switchyard schema` prints it, docs/switchyard.schema.json holds it, and
/// editors use it to complete and check keys (docs/configuration.md).
pub fn json_schema() -> String {
    let mut text = serde_json::to_string_pretty(&schema::json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// Whether two listening addresses would take the same port: the same
/// address, or a wildcard and an address of the same family. Port 0 (any
/// free port) never conflicts.
pub fn addresses_conflict(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    a.ip() == b.ip()
        || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}

/// A problem with the file as a whole (no position).
fn file_error(file: &str, message: String) -> Diagnostics {
    Diagnostics {
        errors: vec![Diagnostic {
            severity: Severity::Error,
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
