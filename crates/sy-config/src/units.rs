//! Duration and size syntax shared by every config key that takes one.
//!
//! Durations: a number and a unit, repeated: `"250ms"`, `"5s"`, `"1m30s"`,
//! `"2h"` (humantime syntax). Sizes: a whole number and an optional unit:
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

const DURATION_HINT: &str =
    "write a number and a unit, e.g. \"250ms\", \"5s\", \"1m30s\" or \"2h\"";
const SIZE_HINT: &str =
    "write a whole number and an optional unit, e.g. \"512\", \"64KiB\", \"10MiB\" or \"1MB\"";

/// Parses a duration such as `"250ms"`, `"5s"`, `"1m30s"` or `"2h"`.
///
/// Units: `ns`, `us`, `ms`, `s`, `m`, `h`, `d` and their long forms
/// (`sec`, `min`, `hours`, ...). Empty, negative and unit-less values
/// (other than `"0"`) are rejected.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(UnitError::new("empty duration", DURATION_HINT));
    }
    if trimmed.starts_with('-') {
        return Err(UnitError::new(
            "durations cannot be negative",
            DURATION_HINT,
        ));
    }
    humantime::parse_duration(trimmed).map_err(|e| {
        // humantime's byte offsets mean little to a reader; name the problem.
        use humantime::DurationError as E;
        let message = match e {
            E::InvalidCharacter(_) => {
                "invalid duration: only letters and digits are allowed".to_owned()
            }
            E::NumberExpected(_) => {
                "invalid duration: expected a number before each unit".to_owned()
            }
            E::UnknownUnit { unit, .. } if unit.is_empty() => {
                "invalid duration: a unit is needed after the number".to_owned()
            }
            E::UnknownUnit { unit, .. } => {
                format!("invalid duration: unknown unit {unit:?}; use ns, us, ms, s, m, h or d")
            }
            E::NumberOverflow => "duration is too large".to_owned(),
            E::Empty => "empty duration".to_owned(),
        };
        UnitError::new(message, DURATION_HINT)
    })
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
            (" 10s ", Duration::from_secs(10)),
            ("0", Duration::ZERO),
        ];
        for (text, expected) in ok {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for bad in ["", "  ", "-5s", "5", "5x", "s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(
            parse_duration("-1s").map_err(|e| e.to_string()),
            Err("durations cannot be negative".to_owned())
        );
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
