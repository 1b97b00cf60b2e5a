//! `ip = { ... }` filters and `[listeners.NAME.ip]`: allow and deny lists
//! of CIDRs, written in place or in files of one entry a line.
//!
//! The files are read here, when the configuration is loaded (`check`,
//! start, every reload), so an edited file applies on the next reload and
//! a broken one is refused with the running rules kept. A file named by
//! several lists is read once per load and its entries shared.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use sy_policy::ip::{Entry, parse_entry};
use toml::Spanned;

use super::Cx;
use super::fields::{FileProblem, read_small_text, resolve};
use crate::diagnostic::{index, join, shorten};
use crate::model::{IpFilter, IpList, IpListFile};
use crate::raw::{RawIp, Text};

/// The largest list file read: a million entries fit in 40 MiB; the cap
/// keeps a wrong path (a log, a disk image) from being slurped.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Problems of one kind shown per file; the rest are counted in one more
/// line, so a file of the wrong format does not print a million errors.
const MAX_SHOWN: usize = 10;

const ENTRY_HINT: &str = "write a CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\", or one address such as \"192.0.2.7\"";

const FILE_HINT: &str =
    "one CIDR or address a line, such as \"10.0.0.0/8\" or \"2001:db8::7\"; `#` starts a comment";

/// The files read during one load, by resolved path.
#[derive(Default)]
pub(super) struct FileCache {
    files: HashMap<PathBuf, Arc<Result<ListFile, String>>>,
}

/// A list file, read and parsed.
struct ListFile {
    entries: Arc<[IpNet]>,
    problems: Vec<LineProblem>,
}

/// A line of a list file that is wrong (error) or probably not meant
/// (warning).
struct LineProblem {
    line: usize,
    error: bool,
    message: String,
    /// How to fix a warning (errors share [`FILE_HINT`]).
    hint: Option<String>,
    text: String,
}

/// An `ip` table: of a filter or of a listener.
pub(super) fn ip(cx: &mut Cx<'_>, raw: &Spanned<RawIp>, path: &str) -> IpFilter {
    let r = raw.get_ref();
    let pruned = |cx: &Cx<'_>, key: &str| cx.report.was_pruned(&join(path, key));
    let allow_pruned = pruned(cx, "allow") || pruned(cx, "allow_files");
    let deny_pruned = pruned(cx, "deny") || pruned(cx, "deny_files");
    let allow_given = r.allow.is_some() || r.allow_files.is_some();
    let deny_given = r.deny.is_some() || r.deny_files.is_some();
    let errors = cx.report.len();
    let allow = list(cx, r.allow.as_ref(), r.allow_files.as_ref(), path, "allow");
    let deny = list(cx, r.deny.as_ref(), r.deny_files.as_ref(), path, "deny");
    if !(allow_given || deny_given || allow_pruned || deny_pruned) {
        cx.report
            .error(raw.span(), path, "an ip table needs `allow` or `deny` entries")
            .hint("e.g. { deny = [\"192.0.2.0/24\"] }, or { allow_files = [\"office.txt\"] } with one CIDR a line");
    } else if allow_given && !allow_pruned && allow.is_empty() && cx.report.len() == errors {
        // An allow list with no entry lets everyone in: an emptied file
        // must not open the door silently.
        let (span, at) = match r.allow_files.as_ref().and_then(|f| f.first()) {
            Some(file) => (file.span(), index(&join(path, "allow_files"), 0)),
            None => (raw.span(), join(path, "allow")),
        };
        cx.report
            .error(
                span,
                &at,
                "the allow list has no entries, so every client would be let in",
            )
            .hint("add entries (an emptied file is refused on reload and the running rules stay), or remove `allow` and `allow_files` to let in every client not denied");
    }
    IpFilter { allow, deny }
}

/// One list: `KEY = [...]` and `KEY_files = [...]`.
fn list(
    cx: &mut Cx<'_>,
    inline: Option<&Vec<Text>>,
    files: Option<&Vec<Text>>,
    path: &str,
    key: &str,
) -> IpList {
    let inline_path = join(path, key);
    let entries = inline
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| inline_entry(cx, text, &index(&inline_path, i)))
        .collect();
    let files_path = join(path, &format!("{key}_files"));
    let files = files
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| file(cx, text, &index(&files_path, i)))
        .collect();
    IpList { entries, files }
}

fn inline_entry(cx: &mut Cx<'_>, text: &Text, path: &str) -> Option<IpNet> {
    match parse_entry(text.get_ref()) {
        Ok(entry) => {
            if entry.host_bits {
                let (message, hint) = host_bits(text.get_ref(), &entry);
                cx.report.warning(text.span(), path, message).hint(hint);
            }
            Some(entry.net)
        }
        Err(message) => {
            cx.report
                .error_value(text.span(), path, message)
                .hint(ENTRY_HINT);
            None
        }
    }
}

/// The warning of an entry with bits set below its prefix: what it means
/// and how to say either thing meant.
fn host_bits(text: &str, entry: &Entry) -> (String, String) {
    let text = text.trim();
    let addr = text.split_once('/').map_or(text, |(a, _)| a);
    let max = if entry.net.addr().is_ipv4() { 32 } else { 128 };
    (
        format!(
            "`{text}` has bits set after its prefix length; it means {}",
            entry.net
        ),
        format!(
            "write \"{}\" for the network, or \"{addr}/{max}\" for the one address",
            entry.net
        ),
    )
}

/// A list file: read (once per load), its problems reported at the key
/// naming it.
fn file(cx: &mut Cx<'_>, text: &Text, path: &str) -> Option<IpListFile> {
    let name = text.get_ref();
    if name.is_empty() {
        cx.report
            .error_value(text.span(), path, "file path cannot be empty")
            .hint(FILE_HINT);
        return None;
    }
    let resolved = resolve(cx.base_dir, name);
    let read = cx
        .ip_files
        .files
        .entry(resolved.clone())
        .or_insert_with(|| Arc::new(read_file(&resolved)))
        .clone();
    match read.as_ref() {
        Err(message) => {
            cx.report
                .error_value(text.span(), path, message)
                .hint("relative paths are resolved against the directory of the configuration file; the file is read when the configuration is loaded or reloaded");
            None
        }
        Ok(list) => {
            report_lines(cx, text.span(), path, name, &list.problems);
            let clean = !list.problems.iter().any(|p| p.error);
            clean.then(|| IpListFile {
                path: resolved,
                entries: list.entries.clone(),
            })
        }
    }
}

/// Reports a file's line problems at the key naming it, `FILE:LINE:` first
/// so the line can be found; at most [`MAX_SHOWN`] of each severity.
fn report_lines(
    cx: &mut Cx<'_>,
    span: Range<usize>,
    path: &str,
    name: &str,
    problems: &[LineProblem],
) {
    for error in [true, false] {
        let mut of_kind = problems.iter().filter(|p| p.error == error);
        for p in of_kind.by_ref().take(MAX_SHOWN) {
            let message = format!("{name}:{}: {}", p.line, p.message);
            if error {
                let d = cx.report.error(span.clone(), path, message);
                d.value = Some(shorten(&format!("{:?}", p.text)));
                d.hint(FILE_HINT);
            } else {
                // The message quotes the entry already.
                cx.report
                    .warning(span.clone(), path, message)
                    .maybe_hint(p.hint.clone());
            }
        }
        let more = of_kind.count();
        if more > 0 {
            let what = if error { "invalid lines" } else { "warnings" };
            let message = format!("{name}: {more} more {what} not shown");
            if error {
                cx.report.error(span.clone(), path, message);
            } else {
                cx.report.warning(span.clone(), path, message);
            }
        }
    }
}

/// Reads and parses a list file; Err when it cannot be read at all.
fn read_file(path: &Path) -> Result<ListFile, String> {
    let text = read_small_text(path, MAX_FILE_BYTES).map_err(|p| match p {
        FileProblem::Io(e) => format!("cannot read the IP list file: {e}"),
        FileProblem::NotAFile => "the IP list path is not a regular file".to_owned(),
        FileProblem::TooLarge => format!(
            "the IP list file is larger than {} MiB",
            MAX_FILE_BYTES >> 20
        ),
        FileProblem::NotUtf8 { line } => {
            format!("the IP list file is not valid UTF-8 (line {line})")
        }
    })?;
    Ok(parse_file(&text))
}

/// One entry a line; `#` starts a comment; blank lines are skipped.
fn parse_file(text: &str) -> ListFile {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split_once('#').map_or(line, |(e, _)| e).trim();
        if entry.is_empty() {
            continue;
        }
        match parse_entry(entry) {
            Ok(e) => {
                if e.host_bits {
                    let (message, hint) = host_bits(entry, &e);
                    problems.push(LineProblem {
                        line: i + 1,
                        error: false,
                        message,
                        hint: Some(hint),
                        text: entry.to_owned(),
                    });
                }
                entries.push(e.net);
            }
            Err(message) => problems.push(LineProblem {
                line: i + 1,
                error: true,
                message,
                hint: None,
                text: entry.to_owned(),
            }),
        }
    }
    ListFile {
        entries: entries.into(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn files_take_comments_blank_lines_and_both_families() {
        let f = parse_file("\u{feff}# office\n10.0.0.0/8  # hq\n\n  192.0.2.7\r\n2001:db8::/32\n");
        let got: Vec<String> = f.entries.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        assert!(f.problems.is_empty());
    }

    #[test]
    fn bad_lines_are_reported_with_their_line_numbers() {
        let f = parse_file("10.0.0.0/8\n\n10.0.0.300\n10.1.2.3/8\n");
        let lines: Vec<(usize, bool)> = f.problems.iter().map(|p| (p.line, p.error)).collect();
        assert_eq!(lines, [(3, true), (4, false)]);
        assert_eq!(f.entries.len(), 2, "the host-bits entry is kept, cleared");
    }
}
