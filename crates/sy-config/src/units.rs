//! Duration and size syntax shared by every config key that takes one.
//!
//! Durations: a number and a unit, repeated: `"250ms"`, `"5s"`, `"1m30s"`,
//! `"1.5s"`, `"2h"`; units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`. Sizes: a whole number and an optional unit:
//! `"512"` (bytes), `"1kB"` (1000), `"64KiB"` (65536), `"10MiB"`, `"1GB"`.

use std::fmt;
use std::time::Duration;

/// Why a duration or size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    message: String,
    hint: &'static str,
}

impl UnitError {
    fn new(message: impl Into<String>, hint: &'static str) -> Self {
        Self {
            message: message.into(),
            hint,
        }
    }

    /// What is wrong, lower-case, without the offending text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An example of the accepted syntax.
    pub fn hint(&self) -> &'static str {
        self.hint
    }
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UnitError {}

const DURATION_HINT: &str = "write a number and a unit, e.g. \"250ms\", \"5s\", \"1m30s\" or \"2h\"; units: ns, us, ms, s, m, h, d";
const SIZE_HINT: &str =
    "write a whole number and an optional unit, e.g. \"512\", \"64KiB\", \"10MiB\" or \"1MB\"";

/// The duration units, longest first where one is a prefix of another, and
/// their length in nanoseconds.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// Spellings people write for a unit that is not one of ours, and the unit
/// they mean (None: no unit of ours means that).
const UNIT_ALIASES: &[(&str, Option<&str>)] = &[
    ("sec", Some("s")),
    ("secs", Some("s")),
    ("second", Some("s")),
    ("seconds", Some("s")),
    ("min", Some("m")),
    ("mins", Some("m")),
    ("minute", Some("m")),
    ("minutes", Some("m")),
    ("hr", Some("h")),
    ("hrs", Some("h")),
    ("hour", Some("h")),
    ("hours", Some("h")),
    ("day", Some("d")),
    ("days", Some("d")),
    ("msec", Some("ms")),
    ("msecs", Some("ms")),
    ("millis", Some("ms")),
    ("millisecond", Some("ms")),
    ("milliseconds", Some("ms")),
    ("µs", Some("us")),
    ("usec", Some("us")),
    ("microsecond", Some("us")),
    ("microseconds", Some("us")),
    ("nsec", Some("ns")),
    ("nanosecond", Some("ns")),
    ("nanoseconds", Some("ns")),
    ("w", None),
    ("week", None),
    ("weeks", None),
    ("month", None),
    ("months", None),
    ("y", None),
    ("year", None),
    ("years", None),
];

/// Parses a duration such as `"250ms"`, `"5s"`, `"1m30s"`, `"1.5s"` or
/// `"2h"`.
///
/// The text is one or more numbers, each followed by a unit: `ns`, `us`,
/// `ms`, `s`, `m` (minutes), `h` or `d`, lower case. A number may have a
/// decimal fraction (`1.5s`). `"0"` alone means zero. Nothing else is
/// accepted: no spaces, no other units (no months or years), no negative
/// values. Errors say what was probably meant (`"5S"`: did you mean `"5s"`?).
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let fail = |message: String| Err(UnitError::new(message, DURATION_HINT));
    if text.trim().is_empty() {
        return fail("empty duration".into());
    }
    if text.trim_start().starts_with('-') {
        return fail("durations cannot be negative".into());
    }
    if text.chars().any(char::is_whitespace) {
        let joined: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        return fail(match parse_duration(&joined) {
            Ok(_) => format!("a duration cannot contain spaces; did you mean {joined:?}?"),
            // "5 secs": the unit's suggestion helps; other messages about
            // the squeezed text would only confuse.
            Err(e) if e.message().contains("did you mean") => {
                format!("a duration cannot contain spaces; {}", e.message())
            }
            Err(_) => "a duration cannot contain spaces".into(),
        });
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.' && c != ',')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() {
            return fail(match rest.chars().next() {
                Some(c) if c.is_alphabetic() => "expected a number before each unit".into(),
                Some(c) => format!("unexpected character {c:?}"),
                None => "expected a number before each unit".into(),
            });
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.' || c == ',')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        if number.contains(',') {
            let dotted = text.replace(',', ".");
            return fail(format!(
                "use a dot for decimals, not a comma; did you mean {dotted:?}?"
            ));
        }
        let Some(per_unit) = unit_nanos(unit) else {
            return fail(unknown_unit(text, number, unit));
        };
        let nanos = number_nanos(number, per_unit).ok_or_else(|| {
            UnitError::new(
                format!("invalid number {number:?}; write digits with at most one dot"),
                DURATION_HINT,
            )
        })?;
        total = total.saturating_add(nanos);
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| UnitError::new("duration is too large", DURATION_HINT))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Nanoseconds in one `unit`, if it is one of ours.
fn unit_nanos(unit: &str) -> Option<u128> {
    DURATION_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, n)| *n)
}

/// `number` (digits, at most one dot) times `per_unit`, truncated to whole
/// nanoseconds; None when it is not such a number or is absurdly large.
fn number_nanos(number: &str, per_unit: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole.checked_mul(per_unit)?;
    let mut scale = per_unit;
    for digit in fraction.bytes().take(30) {
        scale /= 10;
        nanos = nanos.checked_add(u128::from(digit - b'0') * scale)?;
    }
    Some(nanos)
}

/// The message for `unit` after `number` in `text`: what it probably
/// should have been.
fn unknown_unit(text: &str, number: &str, unit: &str) -> String {
    if unit.is_empty() {
        return format!(
            "a unit is needed after the number; did you mean \"{number}s\" (seconds) or \"{number}ms\"?"
        );
    }
    let suggest = |to: &str| text.replacen(&format!("{number}{unit}"), &format!("{number}{to}"), 1);
    if unit == "M" {
        return format!(
            "unknown unit \"M\"; months are not accepted; did you mean {:?} (minutes)?",
            suggest("m")
        );
    }
    let lower = unit.to_lowercase();
    if let Some((_, meant)) = UNIT_ALIASES.iter().find(|(alias, _)| *alias == lower) {
        return match meant {
            Some(to) => format!("unknown unit {unit:?}; did you mean {:?}?", suggest(to)),
            None => format!(
                "unknown unit {unit:?}; weeks, months and years are not accepted; write days, e.g. \"30d\""
            ),
        };
    }
    if unit_nanos(&lower).is_some() {
        return format!("units are lower case; did you mean {:?}?", suggest(&lower));
    }
    format!("unknown unit {unit:?}; use ns, us, ms, s, m, h or d")
}

/// Writes a duration the way [`parse_duration`] reads it, without spaces:
/// `"5s"`, `"1m30s"`, `"1s500ms"`, `"0s"`.
pub fn format_duration(d: Duration) -> String {
    let mut nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, per) in DURATION_UNITS.iter().rev() {
        let n = nanos / per;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(name);
            nanos %= per;
        }
    }
    out
}

/// Parses a size in bytes such as `"512"`, `"1kB"`, `"64KiB"` or `"10MiB"`.
///
/// Decimal units (`kB`, `MB`, `GB`, `TB`; `KB` is read as `kB`) are powers of
/// 1000, binary units (`KiB`, `MiB`, `GiB`, `TiB`) powers of 1024, `B` or no
/// unit is bytes. Units are case-insensitive. The result must fit in a u64.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(UnitError::new("empty size", SIZE_HINT));
    }
    if trimmed.starts_with('-') {
        return Err(UnitError::new("sizes cannot be negative", SIZE_HINT));
    }
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: String = number.chars().filter(|&c| c != '_').collect();
    if number.is_empty() {
        return Err(UnitError::new("a size must start with a number", SIZE_HINT));
    }
    let unit = unit.trim_start();
    if unit.starts_with('.') {
        return Err(UnitError::new(
            "sizes must be whole numbers; use a smaller unit",
            SIZE_HINT,
        ));
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(UnitError::new(
                format!(
                    "unknown size unit {unit:?}; expected B, kB, MB, GB, TB, KiB, MiB, GiB or TiB"
                ),
                SIZE_HINT,
            ));
        }
    };
    let too_large = || UnitError::new("size is too large", SIZE_HINT);
    let number: u64 = number.parse().map_err(|_| too_large())?;
    number.checked_mul(multiplier).ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("1d", Duration::from_secs(86_400)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("0.25ms", Duration::from_micros(250)),
            ("10us", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ];
        for (text, expected) in ok {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for bad in [
            "",
            "  ",
            "-5s",
            "5",
            "5x",
            "s",
            "1M",
            "5S",
            "5secs",
            "5s ",
            " 5s",
            "1 m",
            "1,5s",
            "1w",
            "1y",
            "1..5s",
            ".s",
            "5s-",
            "99999999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn duration_errors_say_what_was_meant() {
        let message = |text: &str| parse_duration(text).err().map(|e| e.to_string());
        let cases = [
            ("-1s", "durations cannot be negative"),
            ("5S", "units are lower case; did you mean \"5s\"?"),
            (
                "1M",
                "unknown unit \"M\"; months are not accepted; did you mean \"1m\" (minutes)?",
            ),
            ("5secs", "unknown unit \"secs\"; did you mean \"5s\"?"),
            ("2Hours", "unknown unit \"Hours\"; did you mean \"2h\"?"),
            (
                "5s ",
                "a duration cannot contain spaces; did you mean \"5s\"?",
            ),
            (
                "1m 30s",
                "a duration cannot contain spaces; did you mean \"1m30s\"?",
            ),
            (
                "5 secs",
                "a duration cannot contain spaces; unknown unit \"secs\"; did you mean \"5s\"?",
            ),
            ("10 parsecs", "a duration cannot contain spaces"),
            (
                "1,5s",
                "use a dot for decimals, not a comma; did you mean \"1.5s\"?",
            ),
            (
                "5",
                "a unit is needed after the number; did you mean \"5s\" (seconds) or \"5ms\"?",
            ),
            (
                "3weeks",
                "unknown unit \"weeks\"; weeks, months and years are not accepted; write days, e.g. \"30d\"",
            ),
            ("5x", "unknown unit \"x\"; use ns, us, ms, s, m, h or d"),
            ("1µs", "unknown unit \"µs\"; did you mean \"1us\"?"),
        ];
        for (text, expected) in cases {
            assert_eq!(message(text).as_deref(), Some(expected), "{text}");
        }
    }

    #[test]
    fn formatted_durations_parse_back() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::from_secs(86_400 + 3600), "1d1h"),
            (Duration::from_nanos(1_000_001), "1ms1ns"),
        ];
        for (d, text) in cases {
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
    }

    #[test]
    fn sizes() {
        let ok = [
            ("512", 512),
            ("0", 0),
            ("1kB", 1000),
            ("1KB", 1000),
            ("1MB", 1_000_000),
            ("64KiB", 65_536),
            ("64kib", 65_536),
            ("10MiB", 10 << 20),
            ("1GiB", 1 << 30),
            ("2 TiB", 2 << 40),
            ("100B", 100),
            ("1_000", 1000),
            ("18446744073709551615", u64::MAX),
        ];
        for (text, expected) in ok {
            assert_eq!(parse_size(text), Ok(expected), "{text}");
        }
        for bad in [
            "",
            "-1",
            "KiB",
            "1.5MiB",
            "10 MiBs",
            "1x",
            "18446744073709551616",
            "16777216TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should fail");
        }
    }

    proptest! {
        #[test]
        fn kib_round_trips(n in 0u64..=(u64::MAX >> 10)) {
            let text = format!("{n}KiB");
            prop_assert_eq!(parse_size(&text), Ok(n * 1024));
        }

        #[test]
        fn overflow_is_an_error_not_a_wrap(n in ((u64::MAX >> 20) + 1)..=u64::MAX) {
            let text = format!("{n}MiB");
            prop_assert!(parse_size(&text).is_err());
        }

        #[test]
        fn seconds_round_trip(n in 0u64..=1_000_000_000) {
            let text = format!("{n}s");
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_secs(n)));
        }

        #[test]
        fn format_then_parse_is_identity(nanos in 0u64..=u64::MAX / 2) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn random_strings_never_panic(s in "\\PC*") {
            let _ = parse_size(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn unit_like_strings_never_panic(s in "[-0-9_. ]{0,30}[a-zA-Zµ]{0,4}[0-9 ]{0,5}") {
            let _ = parse_size(&s);
            let _ = parse_duration(&s);
        }
    }
}
