//! Positioned configuration errors and the collector that gathers them.
//!
//! Every check in this crate reports into a [`Report`] instead of returning
//! early, so one run of `switchyard check` shows every problem in the file.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    /// The file cannot be used.
    #[default]
    Error,
    /// The file works, but probably not as meant (a route that can never
    /// match, a certificate about to expire).
    Warning,
}

/// One problem found in a configuration file.
///
/// `line` and `column` are 1-based and count characters; both are 0 when the
/// problem has no position in the file (for example, the file could not be
/// read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file name as given to [`crate::parse`] or [`crate::load`].
    pub file: String,
    /// 1-based line of the offending value (or key), 0 when unknown.
    pub line: usize,
    /// 1-based column (in characters) of the offending value, 0 when unknown.
    pub column: usize,
    /// Field path such as `upstreams.api.servers[1].weight`; empty for
    /// problems that concern the file as a whole (syntax errors, IO).
    pub path: String,
    /// The offending value as written in the file, when there is one.
    pub value: Option<String>,
    /// What is wrong, lower-case.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// Sets the hint; used as a builder after [`Report::error`].
    pub(crate) fn hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the hint when there is one.
    pub(crate) fn maybe_hint(&mut self, hint: Option<String>) -> &mut Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }
}

impl Diagnostic {
    /// `FILE:LINE:COL: error: PATH: MESSAGE (got VALUE)`, without the hint.
    fn head(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        match self.severity {
            Severity::Error => write!(f, ": error: ")?,
            Severity::Warning => write!(f, ": warning: ")?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(value) = &self.value {
            write!(f, " (got {value})")?;
        }
        Ok(())
    }

    /// The whole diagnostic on one line (`...; hint: HINT`), for log
    /// records, where a line break would split one event in two.
    pub fn one_line(&self) -> impl fmt::Display + '_ {
        OneLine(self)
    }
}

struct OneLine<'a>(&'a Diagnostic);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.head(f)?;
        if let Some(hint) = &self.0.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: error: PATH: MESSAGE (got VALUE)` (or `warning:`)
    /// and, when there is a hint, a second line `  hint: HINT`. The
    /// position is left out when it is unknown (line 0) and the path when
    /// it is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.head(f)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one configuration file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics {
    /// The problems; never empty when returned as an error.
    pub errors: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    /// One diagnostic per line (a hint adds a second, indented line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Longest value text quoted back in a diagnostic.
const MAX_VALUE_CHARS: usize = 60;

/// Collects diagnostics for one file and turns byte spans into positions.
pub(crate) struct Report<'a> {
    file: &'a str,
    source: &'a str,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Paths removed from the document because they were malformed; checks
    /// that would complain about their absence stay quiet.
    pruned: HashSet<String>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(file: &'a str, source: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            file,
            source,
            line_starts,
            errors: Vec::new(),
            warnings: Vec::new(),
            pruned: HashSet::new(),
        }
    }

    /// 1-based (line, column) of a byte offset; columns count characters.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.source.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self
            .source
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line.max(1), column + 1)
    }

    fn at(
        &self,
        severity: Severity,
        span: Range<usize>,
        path: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = self.position(span.start);
        Diagnostic {
            severity,
            file: self.file.to_owned(),
            line,
            column,
            path: path.to_owned(),
            value: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Records an error at `span` without quoting a value.
    pub(crate) fn error(
        &mut self,
        span: Range<usize>,
        path: &str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = self.at(Severity::Error, span, path, message);
        self.errors.push(d);
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    /// Records a warning at `span`. Warnings do not make the file invalid.
    pub(crate) fn warning(
        &mut self,
        span: Range<usize>,
        path: &str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = self.at(Severity::Warning, span, path, message);
        self.warnings.push(d);
        let last = self.warnings.len() - 1;
        &mut self.warnings[last]
    }

    /// Records an error at `span`, quoting the source text there as the value
    /// when it is a short scalar.
    pub(crate) fn error_value(
        &mut self,
        span: Range<usize>,
        path: &str,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let value = self.source_text(span.clone());
        let diagnostic = self.error(span, path, message);
        diagnostic.value = value;
        diagnostic
    }

    /// The source text of a scalar value, shortened; `None` for tables and
    /// arrays, whose text would not fit on the line.
    pub(crate) fn source_text(&self, span: Range<usize>) -> Option<String> {
        let text = self.source.get(span)?.trim();
        if text.is_empty() || text.starts_with('[') || text.starts_with('{') {
            return None;
        }
        Some(shorten(text))
    }

    /// Marks a path as removed from the document after a structural error.
    pub(crate) fn prune(&mut self, path: String) {
        self.pruned.insert(path);
    }

    /// Whether the key at `path` was present but malformed (already reported).
    pub(crate) fn was_pruned(&self, path: &str) -> bool {
        self.pruned.contains(path)
    }

    /// Whether anything has been reported so far.
    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many problems have been reported so far.
    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    /// All errors in file order (stable for equal positions).
    pub(crate) fn finish(self) -> Diagnostics {
        self.split().0
    }

    /// The errors and the warnings, each in file order.
    pub(crate) fn split(mut self) -> (Diagnostics, Vec<Diagnostic>) {
        self.errors.sort_by_key(|d| (d.line, d.column));
        self.warnings.sort_by_key(|d| (d.line, d.column));
        (
            Diagnostics {
                errors: self.errors,
            },
            self.warnings,
        )
    }
}

/// Shortens a quoted value to one line of reasonable length.
pub(crate) fn shorten(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= MAX_VALUE_CHARS {
        one_line
    } else {
        let mut short: String = one_line.chars().take(MAX_VALUE_CHARS - 3).collect();
        short.push_str("...");
        short
    }
}

/// `base.key`, quoting `key` when it is not a bare TOML key.
pub(crate) fn join(base: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if base.is_empty() {
        key
    } else {
        format!("{base}.{key}")
    }
}

/// `base[index]`.
pub(crate) fn index(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

/// The candidate closest to `input`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'c>(
    input: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let input = input.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = strsim::damerau_levenshtein(&input, &candidate.to_ascii_lowercase());
        let longest = candidate.chars().count().max(input.chars().count());
        // Very short names ("1.2", "h2") are one edit from everything.
        let limit = if longest < 4 { 0 } else { (longest / 3).max(1) };
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// "`a`, `b` or `c`" (with the given last conjunction) for hints.
pub(crate) fn list(items: &[&str], conjunction: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} {conjunction} {last}", rest.join(", ")),
    }
}

/// A hint for a name that matches nothing: a close match, or the choices.
pub(crate) fn choice_hint(input: &str, choices: &[&str]) -> Option<String> {
    if let Some(best) = did_you_mean(input, choices.iter().copied()) {
        Some(format!("did you mean `{best}`?"))
    } else if choices.is_empty() {
        None
    } else {
        Some(format!("expected {}", list(choices, "or")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let report = Report::new("f", "a = 1\nbé = \"x\"\n");
        assert_eq!(report.position(0), (1, 1));
        assert_eq!(report.position(4), (1, 5));
        assert_eq!(report.position(6), (2, 1));
        // `"x"` follows the 5 characters (6 bytes) of "bé = "
        assert_eq!(report.position(12), (2, 6));
        assert_eq!(report.position(1000), (3, 1));
    }

    #[test]
    fn display_matches_the_documented_format() {
        let d = Diagnostic {
            severity: Severity::Error,
            file: "bad.toml".into(),
            line: 12,
            column: 10,
            path: "upstreams.api.servers[1].weight".into(),
            value: Some("0".into()),
            message: "weight must be between 1 and 10000".into(),
            hint: Some("use 1 for an equal share".into()),
        };
        assert_eq!(
            d.to_string(),
            "bad.toml:12:10: error: upstreams.api.servers[1].weight: weight must be between 1 and 10000 (got 0)\n  hint: use 1 for an equal share"
        );
        let io = Diagnostic {
            line: 0,
            path: String::new(),
            value: None,
            hint: None,
            message: "cannot read".into(),
            ..d
        };
        assert_eq!(io.to_string(), "bad.toml: error: cannot read");
    }

    #[test]
    fn warnings_and_one_line_form() {
        let d = Diagnostic {
            severity: Severity::Warning,
            file: "a.toml".into(),
            line: 3,
            column: 1,
            path: "routes[1]".into(),
            value: None,
            message: "route can never match".into(),
            hint: Some("move it up".into()),
        };
        assert_eq!(
            d.to_string(),
            "a.toml:3:1: warning: routes[1]: route can never match\n  hint: move it up"
        );
        assert_eq!(
            d.one_line().to_string(),
            "a.toml:3:1: warning: routes[1]: route can never match; hint: move it up"
        );
    }

    #[test]
    fn suggestions_only_for_close_names() {
        let keys = ["address", "enabled"];
        assert_eq!(did_you_mean("adress", keys), Some("address"));
        assert_eq!(did_you_mean("Address", keys), Some("address"));
        assert_eq!(did_you_mean("workers", keys), None);
        assert_eq!(did_you_mean("", keys), None);
        assert_eq!(did_you_mean("1.1", ["1.2", "1.3"]), None);
        assert_eq!(did_you_mean("H2", ["h2c", "h2"]), Some("h2"));
    }

    #[test]
    fn paths_quote_keys_that_are_not_bare() {
        assert_eq!(join("", "upstreams"), "upstreams");
        assert_eq!(join("upstreams", "api"), "upstreams.api");
        assert_eq!(join("m.headers", "x y"), "m.headers.\"x y\"");
        assert_eq!(index("routes", 2), "routes[2]");
    }
}
