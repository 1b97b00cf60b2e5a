//! Loading certificate, key and CA files, with messages a user can act on,
//! and the checks `switchyard check`, start and reload run on them: the key
//! matches its certificate; the configured server names are covered; the
//! certificate is not expired or about to.
//!
//! The same readers build the running TLS configuration (`tls::server_config`,
//! `tls::client_config`), so a file that passes `check` loads at start.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sy_config::{CertificatePair, FileChecks, Finding, Severity, Subject};

use super::{TlsError, provider};

/// A certificate expiring within this is warned about.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// Certificate and key files larger than this are refused: no real chain
/// or key comes near it, and a wrong path (a log file) should not be read.
const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

/// The server's [`FileChecks`]: loads the files as the server will.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checks;

impl FileChecks for Checks {
    fn certificate_pair(&self, pair: &CertificatePair<'_>) -> Vec<Finding> {
        check_pair(pair, SystemTime::now())
    }

    fn ca_bundle(&self, path: &Path) -> Vec<Finding> {
        match read_ca_bundle(path) {
            Ok(_) => Vec::new(),
            Err(p) => vec![p.finding(Subject::Cert)],
        }
    }
}

/// What is wrong with a file, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Lower-case, names no path (the caller does).
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Problem {
    fn new(message: impl Into<String>, hint: Option<&str>) -> Self {
        Problem {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    fn finding(self, subject: Subject) -> Finding {
        Finding {
            severity: Severity::Error,
            subject,
            message: self.message,
            hint: self.hint,
        }
    }

    /// The problem as a start-up or reload error naming the file.
    pub fn in_file(&self, what: &str, path: &Path) -> TlsError {
        let mut text = format!("{what} {}: {}", path.display(), self.message);
        if let Some(hint) = &self.hint {
            text.push_str(" (");
            text.push_str(hint);
            text.push(')');
        }
        TlsError(text)
    }
}

/// The PEM sections of a file, by kind; `encrypted` when it holds an
/// `ENCRYPTED PRIVATE KEY` (which the PEM reader skips).
struct Pem {
    sections: Vec<(SectionKind, Vec<u8>)>,
    encrypted: bool,
    binary: bool,
}

fn read_pem(path: &Path) -> Result<Pem, Problem> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Problem::new(format!("cannot read the file: {e}"), None))?;
    if !meta.is_file() {
        return Err(Problem::new("this is not a regular file", None));
    }
    if meta.len() > MAX_PEM_BYTES {
        return Err(Problem::new(
            format!("the file is larger than {MAX_PEM_BYTES} bytes; is it the right file?"),
            None,
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Problem::new(format!("cannot read the file: {e}"), None))?;
    let sections = <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Problem::new(format!("the file is not valid PEM: {e}"), None))?;
    let encrypted = bytes
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY");
    // DER starts with a SEQUENCE tag; PEM is text.
    let binary = bytes.first() == Some(&0x30) && sections.is_empty();
    Ok(Pem {
        sections,
        encrypted,
        binary,
    })
}

fn is_key(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
    )
}

/// The certificates of a PEM chain file, leaf first.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let pem = read_pem(path)?;
    let chain: Vec<CertificateDer<'static>> = pem
        .sections
        .iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if !chain.is_empty() {
        return Ok(chain);
    }
    Err(
        if pem.sections.iter().any(|(k, _)| is_key(*k)) || pem.encrypted {
            Problem::new(
                "this file holds a private key, not a certificate",
                Some(
                    "`cert` names the certificate chain (-----BEGIN CERTIFICATE-----) and `key` the private key; are the two swapped?",
                ),
            )
        } else if pem.binary {
            Problem::new(
                "this file is binary (DER), not PEM text",
                Some("convert it: openssl x509 -inform der -in FILE -out FILE.pem"),
            )
        } else {
            Problem::new(
                "no certificate found in the file (expected -----BEGIN CERTIFICATE-----)",
                None,
            )
        },
    )
}

/// The private key of a PEM key file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Problem> {
    let mut pem = read_pem(path)?;
    if let Some(i) = pem.sections.iter().position(|(k, _)| is_key(*k)) {
        let (kind, der) = pem.sections.swap_remove(i);
        return PrivateKeyDer::from_pem(kind, der)
            .ok_or_else(|| Problem::new("the private key cannot be decoded", None));
    }
    Err(if pem.encrypted {
        Problem::new(
            "the private key is encrypted with a passphrase; switchyard needs it unencrypted",
            Some(
                "decrypt it once: openssl pkey -in KEY -out KEY.plain (and keep the file readable only by switchyard's user)",
            ),
        )
    } else if pem.binary {
        Problem::new(
            "this file is binary (DER), not PEM text",
            Some("convert it: openssl pkey -inform der -in FILE -out FILE.pem"),
        )
    } else if !pem.sections.is_empty() {
        Problem::new(
            "this file holds a certificate, not a private key",
            Some(
                "`key` names the private key (-----BEGIN PRIVATE KEY-----) and `cert` the certificate chain; are the two swapped?",
            ),
        )
    } else {
        Problem::new(
            "no private key found in the file (expected -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)",
            None,
        )
    })
}

/// The certificates of a CA bundle.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, Problem> {
    read_chain(path).map_err(|p| Problem {
        hint: p.hint.map(|h| {
            h.replace(
                "`cert` names the certificate chain",
                "`ca` names a bundle of CA certificates",
            )
        }),
        ..p
    })
}

/// Loads a chain and its key into a signing key whose key matches the
/// certificate.
pub fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, PairError> {
    let chain = read_chain(cert).map_err(PairError::Cert)?;
    let key_der = read_key(key).map_err(PairError::Key)?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| {
            PairError::Key(Problem::new(
                format!("unsupported private key: {e}"),
                Some("use an RSA (2048 bits or more), ECDSA P-256 / P-384 or Ed25519 key"),
            ))
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(PairError::Key(Problem::new(
                "the private key does not match the certificate (their public keys differ)",
                Some(
                    "use the key the certificate was issued for; compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`",
                ),
            )))
        }
        // Unknown: the key cannot tell its public half; the handshake will.
        _ => Ok(Arc::new(certified)),
    }
}

/// Why [`load_pair`] failed: which file is at fault.
#[derive(Debug)]
pub enum PairError {
    /// The certificate file.
    Cert(Problem),
    /// The key file (or the key does not match the certificate).
    Key(Problem),
}

impl PairError {
    /// As a start-up or reload error naming the file.
    pub fn in_files(&self, cert: &Path, key: &Path) -> TlsError {
        match self {
            PairError::Cert(p) => p.in_file("certificate", cert),
            PairError::Key(p) => p.in_file("private key", key),
        }
    }
}

/// Every finding about one certificate entry at time `now`.
pub fn check_pair(pair: &CertificatePair<'_>, now: SystemTime) -> Vec<Finding> {
    let certified = match load_pair(pair.cert, pair.key) {
        Ok(c) => c,
        Err(PairError::Cert(p)) => return vec![p.finding(Subject::Cert)],
        Err(PairError::Key(p)) => return vec![p.finding(Subject::Key)],
    };
    let Some(leaf) = certified.cert.first() else {
        return Vec::new();
    };
    let cert = match x509_parser::parse_x509_certificate(leaf.as_ref()) {
        Ok((_, cert)) => cert,
        Err(e) => {
            return vec![
                Problem::new(
                    format!("the first certificate in the file cannot be parsed: {e}"),
                    None,
                )
                .finding(Subject::Cert),
            ];
        }
    };
    let mut out = Vec::new();
    let warn = |subject, message: String, hint: &str| Finding {
        severity: Severity::Warning,
        subject,
        message,
        hint: Some(hint.to_owned()),
    };
    let now_s = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let not_after = cert.validity().not_after.timestamp();
    let not_before = cert.validity().not_before.timestamp();
    let renew = "renew it; clients reject an expired certificate";
    if not_after <= now_s {
        out.push(warn(
            Subject::Cert,
            format!("the certificate expired on {}", date(not_after)),
            renew,
        ));
    } else if not_after - now_s <= EXPIRY_WARNING.as_secs() as i64 {
        let days = (not_after - now_s) / 86_400;
        out.push(warn(
            Subject::Cert,
            format!(
                "the certificate expires on {} (in {days} day{})",
                date(not_after),
                if days == 1 { "" } else { "s" }
            ),
            renew,
        ));
    }
    if not_before > now_s {
        out.push(warn(
            Subject::Cert,
            format!("the certificate is not valid before {}", date(not_before)),
            "clients reject it until then; check the clock of the machine that issued it",
        ));
    }
    if cert.is_ca() && certified.cert.len() > 1 {
        out.push(warn(
            Subject::Cert,
            "the first certificate in the file is a CA certificate; the server's own certificate must come first".to_owned(),
            "put the certificate issued for this server first, then its intermediates",
        ));
    }
    let names = cert_names(&cert);
    for (i, name) in pair.server_names.iter().enumerate() {
        if !names.iter().any(|n| covers(n, name)) {
            let listed = if names.is_empty() {
                "it names no DNS names".to_owned()
            } else {
                format!("its names are {}", names.join(", "))
            };
            out.push(warn(
                Subject::ServerName(i),
                format!("`{name}` is not covered by the certificate ({listed})"),
                "clients asking for this name get a certificate error; add the name to the certificate or remove it from `server_names`",
            ));
        }
    }
    out
}

/// The DNS names a certificate is valid for: its subjectAltName DNS
/// entries, or, without that extension, its subject common name.
fn cert_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        return san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
    }
    cert.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether certificate name `cert` (possibly `*.suffix`) covers configured
/// name `name` (possibly `*.suffix`). A certificate wildcard covers one
/// label (RFC 6125 6.4.3); a configured wildcard only by the same wildcard.
fn covers(cert: &str, name: &str) -> bool {
    let cert = cert.trim_end_matches('.');
    let name = name.trim_end_matches('.');
    if cert.eq_ignore_ascii_case(name) {
        return true;
    }
    match cert.strip_prefix("*.") {
        Some(suffix) if !name.starts_with('*') => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        _ => false,
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix timestamp.
fn date(secs: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests;
