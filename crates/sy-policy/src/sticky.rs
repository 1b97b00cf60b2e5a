//! Sticky sessions by cookie: the value that names a server in the
//! affinity cookie.
//!
//! The value is a keyed hash of the server's identity (its address), so it
//! does not reveal the address, cannot be forged for another server without
//! the secret, and is the same in every process that shares the secret (all
//! instances of the proxy, before and after a restart).
//!
//! This is not a cryptographic MAC: xxh3 resists casual guessing but not a
//! determined attacker. A client that can choose its cookie can at worst
//! pick a server of the upstream, which it could also do by retrying.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Length of a cookie value: 16 lowercase hex digits.
pub const COOKIE_LEN: usize = 16;

/// The cookie value identifying a server: 16 lowercase hex chars of a keyed
/// 64-bit hash of `server_id`, stable across processes and versions.
///
/// The hash is `xxh3_64_with_seed(len(secret) as u64 LE || secret ||
/// server_id, seed = xxh3_64(secret))`: the length prefix keeps
/// `(secret, id)` pairs unambiguous, the seed mixes the secret in once more.
pub fn cookie_value(secret: &str, server_id: &str) -> String {
    let mut buf = Vec::with_capacity(8 + secret.len() + server_id.len());
    buf.extend_from_slice(&(secret.len() as u64).to_le_bytes());
    buf.extend_from_slice(secret.as_bytes());
    buf.extend_from_slice(server_id.as_bytes());
    let h = xxh3_64_with_seed(&buf, xxh3_64(secret.as_bytes()));
    format!("{h:016x}")
}

/// The index of the server whose [`cookie_value`] is `cookie`, among
/// `server_ids` in order; None when none matches (a stale or forged cookie).
pub fn find_server<'a, I>(secret: &str, cookie: &str, server_ids: I) -> Option<usize>
where
    I: IntoIterator<Item = &'a str>,
{
    if cookie.len() != COOKIE_LEN {
        return None;
    }
    server_ids
        .into_iter()
        .position(|id| cookie_value(secret, id) == cookie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn shape() {
        let v = cookie_value("s3cret", "10.0.0.1:8080");
        assert_eq!(v.len(), COOKIE_LEN);
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{v}"
        );
    }

    #[test]
    fn stable_across_processes() {
        // Pinned: a change here breaks every session cookie in the field.
        assert_eq!(cookie_value("s3cret", "10.0.0.1:8080"), PINNED_A);
        assert_eq!(cookie_value("", ""), PINNED_EMPTY);
        assert_eq!(
            cookie_value("s3cret", "10.0.0.1:8080"),
            cookie_value("s3cret", "10.0.0.1:8080")
        );
    }

    const PINNED_A: &str = "7f009a00f17f8dfe";
    const PINNED_EMPTY: &str = "f0a390d5a40e58df";

    #[test]
    fn depends_on_secret_and_server() {
        let a = cookie_value("k1", "10.0.0.1:80");
        assert_ne!(a, cookie_value("k2", "10.0.0.1:80"));
        assert_ne!(a, cookie_value("k1", "10.0.0.2:80"));
        // The length prefix keeps the boundary between secret and id.
        assert_ne!(cookie_value("ab", "c"), cookie_value("a", "bc"));
        assert_ne!(cookie_value("a\0", "b"), cookie_value("a", "\0b"));
    }

    #[test]
    fn does_not_reveal_the_address() {
        for id in ["10.0.0.1:8080", "backend-1.internal:443", "8080", "0a"] {
            let v = cookie_value("secret", id);
            assert!(!v.contains(id), "{v} contains {id}");
            assert!(!v.contains("8080"));
        }
    }

    #[test]
    fn distinct_for_many_servers() {
        let set: HashSet<_> = (0..10_000)
            .map(|i| cookie_value("secret", &format!("10.0.{}.{}:80", i / 256, i % 256)))
            .collect();
        assert_eq!(set.len(), 10_000);
    }

    #[test]
    fn find_server_by_cookie() {
        let ids = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"];
        let c = cookie_value("k", ids[2]);
        assert_eq!(find_server("k", &c, ids), Some(2));
        assert_eq!(find_server("other", &c, ids), None);
        assert_eq!(find_server("k", "nonsense", ids), None);
        assert_eq!(find_server("k", &c.to_uppercase(), ids), None);
        assert_eq!(find_server("k", &c, []), None);
    }

    proptest! {
        #[test]
        fn always_sixteen_lower_hex(secret in ".*", id in ".*") {
            let v = cookie_value(&secret, &id);
            prop_assert_eq!(v.len(), COOKIE_LEN);
            prop_assert!(v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            prop_assert_eq!(find_server(&secret, &v, [id.as_str()]), Some(0));
        }
    }
}
