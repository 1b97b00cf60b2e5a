//! Small pieces of HTTP and DNS syntax that the configuration checks and
//! the filters' policies share.

/// RFC 9110 `tchar`: a character of a token.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An RFC 9110 token (a method, a header name, a coding): one or more
/// `tchar`s.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A DNS name's labels: at most 253 characters, labels of 1 to 63
/// letters, digits, `-` and `_`. Returns the name lower-cased.
pub fn dns_name(text: &str) -> Result<String, String> {
    if text.len() > 253 {
        return Err("host name is longer than 253 characters".to_owned());
    }
    for label in text.split('.') {
        if label.is_empty() {
            return Err(
                "host name has an empty label (two dots in a row, or a dot at an end)".to_owned(),
            );
        }
        if label.len() > 63 {
            return Err("a host name label is longer than 63 characters".to_owned());
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "invalid character {c:?} in host name; use letters, digits, `-` and `.` (punycode for non-ASCII names)"
            ));
        }
    }
    Ok(text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token("GET") && is_token("x-api-key") && is_token("!#$%&'*+-.^_`|~"));
        assert!(!is_token("") && !is_token("a b") && !is_token("a:b") && !is_token("é"));
    }

    #[test]
    fn dns_names() {
        assert_eq!(
            dns_name("Api.Example.COM").as_deref(),
            Ok("api.example.com")
        );
        assert_eq!(dns_name("_srv.x-1").as_deref(), Ok("_srv.x-1"));
        for (bad, why) in [
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("a b", "invalid character ' '"),
            ("ex\u{e4}mple", "invalid character"),
        ] {
            assert!(dns_name(bad).unwrap_err().contains(why), "{bad}");
        }
        assert!(dns_name(&"a".repeat(64)).unwrap_err().contains("63"));
        assert!(dns_name(&["a"; 128].join(".")).unwrap_err().contains("253"));
    }
}
