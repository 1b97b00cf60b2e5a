//! The shape of the file, checked on the spanned document before serde sees it.
//!
//! serde stops at the first unknown key or wrong type; a user fixing a file
//! wants all of them at once. So the parsed document is first walked against
//! a table of known keys and value kinds: every unknown key and type
//! mismatch is reported with its position, and the offending entry is removed
//! so that the typed [`crate::raw`] model can still be deserialized from the
//! rest and checked semantically.
//!
//! The table is not written here: it is derived from the raw model
//! ([`crate::shape::Shape`], `#[derive(Shape)]` on the structs of `raw.rs`), so a key is
//! declared once, as a field, and the checker, serde and the JSON Schema
//! ([`json_schema`]) cannot disagree about which keys exist. What is still
//! written twice is the `Shape` of each type with a hand-written
//! `Deserialize` (string or table, string or integer); the tests below
//! feed serde every form the checker accepts, and a mismatch would show
//! as an "internal" diagnostic.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Report, did_you_mean, index, join, list};
use crate::raw::RawConfig;
use crate::shape::{Field, Kind};
use Kind::{Array, Bool, Duration, Int, Map, Number, Size, Str, StrOrInt, StrOrTable, Table};

impl Kind {
    fn describe(&self) -> String {
        match self {
            Str => "a string".into(),
            Duration => "a duration string such as \"5s\"".into(),
            Size => "a size such as \"64KiB\" or a number of bytes".into(),
            Int => "an integer".into(),
            Number => "a number".into(),
            Bool => "a boolean (true or false)".into(),
            Array(inner) => format!("an array of {}", plural(inner)),
            Table(_) | Map(_) => "a table".into(),
            StrOrTable(_, one, _) | StrOrInt(one, _) => (*one).into(),
        }
    }
}

fn plural(kind: &Kind) -> String {
    match kind {
        Str => "strings".into(),
        Table(_) => "tables".into(),
        StrOrTable(_, _, many) | StrOrInt(_, many) => (*many).into(),
        Int => "integers".into(),
        other => other.describe(),
    }
}

fn article(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The shape of the file as a JSON Schema (draft 7), for editors: taplo
/// and Even Better TOML complete and check keys with it. Made from the same
/// tables the checker walks, so it cannot drift from what `check` accepts
/// (values are checked further by validation).
pub(crate) fn json_schema() -> serde_json::Value {
    let mut root = table_schema(RawConfig::FIELDS);
    if let Some(obj) = root.as_object_mut() {
        obj.insert(
            "$schema".into(),
            "http://json-schema.org/draft-07/schema#".into(),
        );
        obj.insert("title".into(), "Switchyard configuration".into());
        obj.insert(
            "description".into(),
            "switchyard.toml: see docs/configuration.md".into(),
        );
    }
    root
}

fn table_schema(fields: &[Field]) -> serde_json::Value {
    let props: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|f| (f.name.to_owned(), kind_schema(&f.kind)))
        .collect();
    serde_json::json!({
        "type": "object",
        "properties": props,
        "additionalProperties": false,
    })
}

fn kind_schema(kind: &Kind) -> serde_json::Value {
    use serde_json::json;
    match kind {
        Str => json!({"type": "string"}),
        Duration => json!({
            "type": "string",
            "pattern": "^(0|([0-9]*\\.?[0-9]+(ns|us|ms|s|m|h|d))+)$",
            "description": "a duration: numbers with units ns, us, ms, s, m, h or d, e.g. \"250ms\", \"5s\", \"1m30s\"",
        }),
        Size => json!({
            "anyOf": [
                {"type": "string", "description": "a size such as \"64KiB\" or \"10MB\""},
                {"type": "integer", "minimum": 0},
            ],
        }),
        Int => json!({"type": "integer"}),
        Number => json!({"type": "number"}),
        Bool => json!({"type": "boolean"}),
        Array(inner) => json!({"type": "array", "items": kind_schema(inner)}),
        Table(fields) => table_schema(fields),
        Map(inner) => json!({"type": "object", "additionalProperties": kind_schema(inner)}),
        StrOrTable(fields, one, _) => json!({
            "anyOf": [{"type": "string"}, table_schema(fields)],
            "description": one,
        }),
        StrOrInt(one, _) => json!({
            "anyOf": [{"type": "string"}, {"type": "integer"}],
            "description": one,
        }),
    }
}

/// Walks the whole document, reporting and removing malformed entries.
pub(crate) fn check_document(root: &mut DeTable<'_>, report: &mut Report<'_>) {
    check_table(root, RawConfig::FIELDS, "", report);
}

/// Checks a table against its known keys; malformed entries are removed.
fn check_table(table: &mut DeTable<'_>, fields: &[Field], path: &str, report: &mut Report<'_>) {
    let mut remove = Vec::new();
    for (key, value) in table.iter_mut() {
        let name: &str = key.get_ref();
        let child = join(path, name);
        let keep = match fields.iter().find(|field| field.name == name) {
            Some(field) => check_value(value, &field.kind, &child, report),
            None => {
                let names: Vec<&str> = fields.iter().map(|field| field.name).collect();
                let hint = match did_you_mean(name, names.iter().copied()) {
                    Some(best) => {
                        // A typo of a required key: the missing-key check
                        // for `best` would only repeat this error.
                        report.prune(join(path, best));
                        format!("did you mean `{best}`?")
                    }
                    None => format!("this table accepts {}", list(&names, "and")),
                };
                report
                    .error(key.span(), &child, format!("unknown key `{name}`"))
                    .hint(hint);
                false
            }
        };
        if !keep {
            remove.push(key.get_ref().to_string());
            report.prune(child);
        }
    }
    for key in remove {
        table.remove(key.as_str());
    }
}

/// Checks one value; returns false when it must be removed.
fn check_value(
    value: &mut Spanned<DeValue<'_>>,
    kind: &Kind,
    path: &str,
    report: &mut Report<'_>,
) -> bool {
    let span = value.span();
    match (kind, value.get_mut()) {
        (Str | Duration | StrOrInt(..), DeValue::String(_)) | (Bool, DeValue::Boolean(_)) => true,
        (Int | Size | Number | StrOrInt(..), DeValue::Integer(int)) => {
            let digits = int.as_str().replace('_', "");
            if i64::from_str_radix(&digits, int.radix()).is_ok() {
                true
            } else {
                report.error_value(span, path, "integer is out of range");
                false
            }
        }
        (Size, DeValue::String(_)) => true,
        (Number, DeValue::Float(float)) => {
            // Mirrors toml's own conversion: a finite literal that overflows
            // to infinity is refused by the deserializer.
            let text = float.as_str();
            if text
                .parse::<f64>()
                .is_ok_and(|x| !x.is_infinite() || text.contains("inf"))
            {
                true
            } else {
                report.error_value(span, path, "number is out of range");
                false
            }
        }
        (Table(fields) | StrOrTable(fields, ..), DeValue::Table(table)) => {
            check_table(table, fields, path, report);
            true
        }
        (StrOrTable(..), DeValue::String(_)) => true,
        (Map(inner), DeValue::Table(table)) => {
            let mut remove = Vec::new();
            for (key, entry) in table.iter_mut() {
                let child = join(path, key.get_ref());
                if !check_value(entry, inner, &child, report) {
                    remove.push(key.get_ref().to_string());
                    report.prune(child);
                }
            }
            for key in remove {
                table.remove(key.as_str());
            }
            true
        }
        (Array(inner), DeValue::Array(items)) => {
            let mut all_ok = true;
            for (i, item) in items.iter_mut().enumerate() {
                // Elements cannot be removed without renumbering the ones
                // after them, so one bad element drops the whole array.
                all_ok &= check_value(item, inner, &index(path, i), report);
            }
            all_ok
        }
        (kind, found) => {
            let message = format!("expected {}, found {}", kind.describe(), article(found));
            let diagnostic = report.error_value(span.clone(), path, message);
            if let Some(hint) = type_hint(kind, found, path) {
                diagnostic.hint(hint);
            }
            false
        }
    }
}

/// A field path as a TOML table header: `routes[5].split.backends` is
/// written `routes.split.backends` under its `[[routes]]` entry.
fn table_header(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

fn type_hint(kind: &Kind, found: &DeValue<'_>, path: &str) -> Option<String> {
    match (kind, found) {
        (Array(Table(_)), DeValue::Table(_)) => Some(format!(
            "write each entry as [[{}]], with double brackets",
            table_header(path)
        )),
        (Duration, DeValue::Integer(int)) => {
            Some(format!("durations need a unit, e.g. \"{}s\"", int.as_str()))
        }
        (Str, DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_)) => {
            Some("put the value in double quotes".into())
        }
        (Array(_), DeValue::String(_)) => Some("wrap the value in [ ]".into()),
        (Int | Number, DeValue::String(_)) => Some("remove the quotes".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value for every key the tables know. The kinds that take two
    /// forms (a size, a number, a string or a table, a string or an
    /// integer) take the first with `form` 0 and the second with 1.
    fn sample(kind: &Kind, form: usize) -> serde_json::Value {
        use serde_json::json;
        match kind {
            Str => json!("x"),
            Duration => json!("1s"),
            Size => [json!("1KiB"), json!(1024)][form].clone(),
            Int => json!(1),
            Number => [json!(0.5), json!(1)][form].clone(),
            Bool => json!(true),
            Array(inner) => json!([sample(inner, form)]),
            Table(fields) => sample_table(fields, form),
            StrOrTable(fields, ..) => [sample_table(fields, form), json!("x")][form].clone(),
            Map(inner) => json!({ "k": sample(inner, form) }),
            StrOrInt(..) => [json!(200), json!("200-299")][form].clone(),
        }
    }

    fn sample_table(fields: &[Field], form: usize) -> serde_json::Value {
        let mut names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), fields.len(), "a key declared twice: {names:?}");
        serde_json::Value::Object(
            fields
                .iter()
                .map(|f| (f.name.to_owned(), sample(&f.kind, form)))
                .collect(),
        )
    }

    /// Runs the shape check against `fields` and then serde on a
    /// document; the errors of either, as text.
    fn check_then_deserialize(fields: &[Field], source: &str) -> Vec<String> {
        use serde::Deserialize;
        let Ok(doc) = DeTable::parse(source) else {
            return vec!["syntax".into()];
        };
        let span = doc.span();
        let mut table = doc.into_inner();
        let mut report = Report::new("all-keys.toml", source);
        check_table(&mut table, fields, "", &mut report);
        let mut errors: Vec<String> = report
            .finish()
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect();
        let document = toml::de::Deserializer::from(Spanned::new(span, table));
        if let Err(e) = RawConfig::deserialize(document) {
            errors.push(format!("serde: {e}"));
        }
        errors
    }

    /// What the checker lets through, serde reads: a document with every
    /// key the tables know, every value in each form its kind accepts,
    /// passes the shape check and deserializes into the raw model. The
    /// derive makes the keys the same; this catches a hand-written `Shape`
    /// that promises a form its hand-written `Deserialize` refuses (or a
    /// blanket impl that does), which a user would see as an "internal"
    /// error.
    #[test]
    fn every_form_the_checker_accepts_deserializes() {
        for form in 0..2 {
            let doc = sample_table(RawConfig::FIELDS, form);
            let text = toml::to_string(&doc).unwrap_or_else(|e| panic!("{e}"));
            let errors = check_then_deserialize(RawConfig::FIELDS, &text);
            assert!(errors.is_empty(), "form {form}: {errors:#?}\n{text}");
        }
    }

    /// The test above would see a table that promises more than serde
    /// reads: here one that takes a string for `runtime.workers`.
    #[test]
    fn a_table_that_promises_too_much_is_seen() {
        static WRONG: &[Field] = &[Field::new("runtime", Table(&[Field::new("workers", Str)]))];
        let errors = check_then_deserialize(WRONG, "[runtime]\nworkers = \"2\"\n");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with("serde: "), "{errors:#?}");
    }

    fn check(source: &str) -> (String, Vec<String>) {
        let mut report = Report::new("t.toml", source);
        let Ok(doc) = DeTable::parse(source) else {
            return (String::new(), vec!["syntax".into()]);
        };
        let mut table = doc.into_inner();
        check_document(&mut table, &mut report);
        let remaining: Vec<String> = table.keys().map(|k| k.get_ref().to_string()).collect();
        let errors = report
            .finish()
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect();
        (remaining.join(","), errors)
    }

    #[test]
    fn unknown_keys_are_all_reported_and_removed() {
        let (remaining, errors) = check("[admin]\nadress = \"x\"\n[runtim]\nworkers = 1\n");
        assert_eq!(remaining, "admin");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("2:1: error: admin.adress: unknown key `adress`"));
        assert!(errors[0].contains("did you mean `address`?"));
        assert!(errors[1].contains("did you mean `runtime`?"));
    }

    #[test]
    fn wrong_types_name_both_types() {
        let (_, errors) = check("[runtime]\nworkers = \"2\"\ndrain_timeout = 30\n");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("expected an integer, found a string (got \"2\")"));
        assert!(errors[1].contains("durations need a unit, e.g. \"30s\""));
    }

    #[test]
    fn numbers_take_integers_and_finite_floats() {
        let source = "[upstreams.a.retry_budget]\nratio = 1\n[upstreams.b.retry_budget]\nratio = 0.5\n[upstreams.c.retry_budget]\nratio = 1e400\n[upstreams.d.retry_budget]\nratio = \"0.5\"\n";
        let (_, errors) = check(source);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("upstreams.c.retry_budget.ratio: number is out of range"));
        assert!(errors[1].contains("expected a number, found a string"));
        assert!(errors[1].contains("remove the quotes"));
    }

    #[test]
    fn statuses_take_integers_and_strings() {
        let (_, errors) =
            check("[upstreams.a.health_check]\nexpect_status = [200, \"300-399\", true]\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("expect_status[2]: expected a status such as 200"));
    }

    #[test]
    fn huge_integers_are_rejected() {
        let (_, errors) = check("[runtime]\nworkers = 99999999999999999999\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("integer is out of range"));
    }
}
