//! Host name normalisation for the route table.

/// Request hosts up to this many bytes are lower-cased on the stack.
pub(super) const STACK_HOST: usize = 256;

/// Normalise a host name the way the route table compares them: drop a
/// `:port` suffix (and the brackets of an IPv6 literal), drop one trailing
/// dot, lower-case ASCII. `"WWW.Example.COM.:8080"` becomes
/// `"www.example.com"`, `"[::1]:443"` becomes `"::1"`; a wildcard
/// `"*.Example.com"` keeps its `*.`.
pub fn normalize_host(host: &str) -> String {
    trim(host).to_ascii_lowercase()
}

/// `host` without port, brackets and trailing dot.
fn trim(host: &str) -> &str {
    trim_scan(host).0
}

/// `host` without port, brackets and trailing dot, and whether it has
/// ASCII upper-case letters, in one pass over the bytes (this runs per
/// request; `rsplit_once` alone costs more than the whole scan).
fn trim_scan(host: &str) -> (&str, bool) {
    let bytes = host.as_bytes();
    if bytes.first() == Some(&b'[') {
        let h = match host.get(1..).and_then(|rest| rest.split_once(']')) {
            Some((inner, _)) => inner,
            None => host,
        };
        return (h, h.bytes().any(|b| b.is_ascii_uppercase()));
    }
    let mut colons = 0usize;
    let mut last_colon = 0usize;
    let mut upper = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b':' {
            colons += 1;
            last_colon = i;
        }
        upper |= b.is_ascii_uppercase();
    }
    // One colon: a port. More without brackets: a bare IPv6 address.
    let h = if colons == 1 {
        host.get(..last_colon).unwrap_or(host)
    } else {
        host
    };
    let h = h.strip_suffix('.').unwrap_or(h);
    // Upper-case letters in a stripped port do not matter.
    (h, upper && h.bytes().any(|b| b.is_ascii_uppercase()))
}

/// Call `f` with the request's host, normalised: borrowed from `host` when
/// it is already lower-case (the common case, no copy), else lower-cased in
/// a stack buffer, or on the heap when longer than [`STACK_HOST`].
#[inline]
pub(super) fn with_request_host<R>(host: &str, f: impl FnOnce(&str) -> R) -> R {
    let (h, upper) = trim_scan(host);
    if upper { lower_then(h, f) } else { f(h) }
}

/// Kept out of line so the common path does not set up the buffer.
#[inline(never)]
fn lower_then<R>(h: &str, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; STACK_HOST];
    if let Some(dst) = buf.get_mut(..h.len()) {
        dst.copy_from_slice(h.as_bytes());
        dst.make_ascii_lowercase();
        // ASCII lower-casing keeps UTF-8 valid, so this always succeeds.
        if let Ok(lower) = std::str::from_utf8(dst) {
            return f(lower);
        }
    }
    f(&h.to_ascii_lowercase())
}

/// Whether wildcard `*.suffix` matches the normalised `name`: `name` is
/// `label.suffix` with a non-empty label.
pub(super) fn wildcard_matches(suffix: &str, name: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes().get(name.len() - suffix.len() - 1) == Some(&b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        for (raw, want) in [
            ("Example.COM", "example.com"),
            ("example.com:8080", "example.com"),
            ("example.com.", "example.com"),
            ("EXAMPLE.com.:443", "example.com"),
            ("[::1]:8080", "::1"),
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("[fe80::1", "[fe80::1"),
            ("", ""),
            (":", ""),
            (".", ""),
            ("*.Example.com", "*.example.com"),
            ("Bücher.de", "bücher.de"),
        ] {
            assert_eq!(normalize_host(raw), want, "{raw}");
            assert_eq!(with_request_host(raw, str::to_owned), want, "{raw}");
        }
    }

    #[test]
    fn long_hosts_use_the_heap() {
        for len in [STACK_HOST - 1, STACK_HOST, STACK_HOST + 1, 5000] {
            let host = "A".repeat(len);
            assert_eq!(with_request_host(&host, str::to_owned), "a".repeat(len));
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_matches("example.com", "a.example.com"));
        assert!(wildcard_matches("example.com", "a.b.example.com"));
        assert!(!wildcard_matches("example.com", "example.com"));
        assert!(!wildcard_matches("example.com", ".example.com"));
        assert!(!wildcard_matches("example.com", "aexample.com"));
        assert!(!wildcard_matches("example.com", "a.example.co"));
        assert!(wildcard_matches("com", "x.com"));
    }
}
