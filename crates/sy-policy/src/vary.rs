//! `Vary` (RFC 9110 12.5.5): adding a request field a response depends on
//! to the fields its `Vary` already lists. The CORS filter adds `Origin`
//! (and a preflight's request fields), compression `Accept-Encoding`.

/// The one `Vary` value that replaces the response's `existing` lines once
/// `token` is added: their fields (empty ones dropped), then `token`. None
/// when nothing changes: `token` is listed already (case-insensitively) or
/// a line says `*`.
pub fn add<'a>(existing: impl IntoIterator<Item = &'a [u8]>, token: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for line in existing {
        for field in line.split(|&b| b == b',').map(trim) {
            if field == b"*" || field.eq_ignore_ascii_case(token.as_bytes()) {
                return None;
            }
            if !field.is_empty() {
                out.extend_from_slice(field);
                out.extend_from_slice(b", ");
            }
        }
    }
    out.extend_from_slice(token.as_bytes());
    Some(out)
}

/// `s` without leading and trailing spaces and tabs (optional whitespace).
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(lines: &[&str], token: &str) -> Option<String> {
        add(lines.iter().map(|s| s.as_bytes()), token).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn fields_merge_into_one_line_without_duplicates() {
        let table: &[(&[&str], &str, Option<&str>)] = &[
            (&[], "Origin", Some("Origin")),
            (
                &["Accept-Encoding"],
                "Origin",
                Some("Accept-Encoding, Origin"),
            ),
            (
                &["Accept-Encoding, Accept"],
                "Origin",
                Some("Accept-Encoding, Accept, Origin"),
            ),
            (
                &["Accept-Encoding", "Accept"],
                "Origin",
                Some("Accept-Encoding, Accept, Origin"),
            ),
            (&["origin"], "Origin", None),
            (&["Accept, Origin"], "Origin", None),
            (&["Accept", " ORIGIN "], "Origin", None),
            (&["*"], "Origin", None),
            (&["", " , "], "Origin", Some("Origin")),
            (&["Origin2"], "Origin", Some("Origin2, Origin")),
            (&[], "Accept-Encoding", Some("Accept-Encoding")),
            (
                &["Origin, Cookie", "Accept"],
                "Accept-Encoding",
                Some("Origin, Cookie, Accept, Accept-Encoding"),
            ),
            (&["origin, accept-encoding"], "Accept-Encoding", None),
            (&["Origin,\tAccept-Encoding\t"], "Accept-Encoding", None),
        ];
        for (existing, token, want) in table {
            assert_eq!(
                v(existing, token).as_deref(),
                *want,
                "{existing:?} + {token}"
            );
        }
    }

    proptest! {
        /// Any bytes: no panic, and the result lists the token once, last.
        #[test]
        fn any_lines_merge(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Some(out) = add([b.as_slice()], "Origin") {
                prop_assert!(out.ends_with(b"Origin"));
                prop_assert!(add([out.as_slice()], "Origin").is_none());
            }
        }
    }
}
