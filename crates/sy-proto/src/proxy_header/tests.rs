use super::{Header, Invalid, MAX_LEN, Parse, Source, V1_MAX_LEN, parse};

use proptest::prelude::*;

const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 header: version-command byte, family-protocol byte, the rest.
fn v2(vc: u8, fp: u8, rest: &[u8]) -> Vec<u8> {
    let mut h = SIG.to_vec();
    h.push(vc);
    h.push(fp);
    h.extend_from_slice(&u16::try_from(rest.len()).unwrap().to_be_bytes());
    h.extend_from_slice(rest);
    h
}

/// IPv4 addresses and ports of a v2 header: 192.0.2.1:56324 -> 198.51.100.1:443.
fn v4_block() -> Vec<u8> {
    let mut b = vec![192, 0, 2, 1, 198, 51, 100, 1];
    b.extend_from_slice(&56324u16.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

/// IPv6 addresses and ports: [2001:db8::1]:4000 -> [2001:db8::2]:443.
fn v6_block(src: std::net::Ipv6Addr) -> Vec<u8> {
    let dst: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
    let mut b = src.octets().to_vec();
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&4000u16.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut t = vec![kind];
    t.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    t.extend_from_slice(value);
    t
}

fn client(addr: &str) -> Source {
    Source::Client(addr.parse().unwrap())
}

/// Parses `header` followed by `after`: it must be complete at exactly its
/// own length, and every shorter prefix of it incomplete.
fn complete(header: &[u8], after: &[u8]) -> Header {
    for n in 0..header.len() {
        assert_eq!(
            parse(&header[..n]),
            Parse::Incomplete,
            "prefix of {n} bytes of {:?}",
            String::from_utf8_lossy(header)
        );
    }
    let mut all = header.to_vec();
    all.extend_from_slice(after);
    match parse(&all) {
        Parse::Complete { len, header: h } => {
            assert_eq!(len, header.len(), "the header ends where it ends");
            h
        }
        other => panic!(
            "{:?}: expected a header, got {other:?}",
            String::from_utf8_lossy(header)
        ),
    }
}

fn invalid(bytes: &[u8]) -> Invalid {
    match parse(bytes) {
        Parse::Invalid(why) => why,
        other => panic!(
            "{:?}: expected invalid, got {other:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

#[test]
fn v1_tcp4() {
    let h = complete(
        b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
    );
    assert_eq!(h.version, 1);
    assert_eq!(h.source, client("192.0.2.1:56324"));
}

#[test]
fn v1_tcp6() {
    let h = complete(
        b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n",
        b"\x16\x03",
    );
    assert_eq!(h.source, client("[2001:db8::1]:4000"));
    // An IPv4-mapped source comes out as the IPv4 address.
    let h = complete(b"PROXY TCP6 ::ffff:192.0.2.9 2001:db8::2 4000 443\r\n", b"");
    assert_eq!(h.source, client("192.0.2.9:4000"));
}

#[test]
fn v1_longest_lines_fit() {
    let line = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    let h = complete(line, b"more");
    assert_eq!(
        h.source,
        client("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
    );
    // The specification's worst case: 107 bytes.
    let line = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(line.len(), V1_MAX_LEN);
    assert_eq!(complete(line, b"more").source, Source::Unknown);
}

#[test]
fn v1_unknown_keeps_the_peer() {
    assert_eq!(
        complete(b"PROXY UNKNOWN\r\n", b"GET").source,
        Source::Unknown
    );
    // Anything may follow UNKNOWN up to the CRLF.
    let h = complete(
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        b"",
    );
    assert_eq!(h.source, Source::Unknown);
}

#[test]
fn v1_malformed() {
    for line in [
        &b"PROXY TCP4 256.0.2.1 198.51.100.1 56324 443\r\n"[..],
        b"PROXY TCP4 192.0.2.1 198.51.100.1 65536 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.1 056324 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.1 -1 443\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.1 1 443\r\n",
        b"PROXY TCP6 192.0.2.1 2001:db8::2 1 443\r\n",
        b"PROXY TCP5 192.0.2.1 198.51.100.1 1 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.1 1\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.1 1 443 extra\r\n",
        b"PROXY TCP4  192.0.2.1 198.51.100.1 1 443\r\n",
        b"PROXY \r\n",
        b"PROXY tcp4 192.0.2.1 198.51.100.1 1 443\r\n",
        // LF without CR, a stray CR, bytes that are not text.
        b"PROXY TCP4 192.0.2.1 198.51.100.1 1 443\n",
        b"PROXY TCP4 192.0.2.1\r198.51.100.1 1 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.1 1 443\0\r\n",
        b"PROXY UNKNOWN \xff\r\n",
    ] {
        assert_eq!(
            invalid(line),
            Invalid::Malformed,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    // A bad byte is refused before the line is complete.
    assert_eq!(invalid(b"PROXY TCP4 \x16\x03"), Invalid::Malformed);
    assert_eq!(invalid(b"PROXY TCP4 1.2\r3"), Invalid::Malformed);
}

#[test]
fn v1_too_long() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(V1_MAX_LEN - 1, b'x');
    assert_eq!(parse(&line), Parse::Incomplete);
    line.push(b'x');
    assert_eq!(invalid(&line), Invalid::TooLong);
    line.extend_from_slice(b"\r\n");
    assert_eq!(invalid(&line), Invalid::TooLong);
}

#[test]
fn no_header() {
    for bytes in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        // A TLS ClientHello.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"\r\n\r\nGET",
        b"\0",
        b"proxy TCP4",
        b"PROXYTCP4",
    ] {
        assert_eq!(
            invalid(bytes),
            Invalid::Missing,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    // The first byte says no at once.
    assert_eq!(invalid(b"G"), Invalid::Missing);
    assert_eq!(invalid(b"\x16"), Invalid::Missing);
    assert_eq!(parse(b""), Parse::Incomplete);
}

#[test]
fn v2_proxy_ipv4() {
    let h = complete(&v2(0x21, 0x11, &v4_block()), b"\x16\x03\x01");
    assert_eq!(h.version, 2);
    assert_eq!(h.source, client("192.0.2.1:56324"));
}

#[test]
fn v2_proxy_ipv6() {
    let h = complete(
        &v2(0x21, 0x21, &v6_block("2001:db8::1".parse().unwrap())),
        b"GET",
    );
    assert_eq!(h.source, client("[2001:db8::1]:4000"));
    let h = complete(
        &v2(0x21, 0x21, &v6_block("::ffff:192.0.2.9".parse().unwrap())),
        b"",
    );
    assert_eq!(h.source, client("192.0.2.9:4000"));
}

#[test]
fn v2_tlvs_are_skipped() {
    let mut rest = v4_block();
    // ALPN, authority, an AWS VPC endpoint id (0xEA), a type nobody
    // defined, an empty value.
    rest.extend(tlv(0x01, b"h2"));
    rest.extend(tlv(0x02, b"example.com"));
    rest.extend(tlv(0xEA, b"\x01vpce-08d2bf15fac5001c9"));
    rest.extend(tlv(0x7f, &[0xff; 300]));
    rest.extend(tlv(0x04, b""));
    let h = complete(&v2(0x21, 0x11, &rest), b"GET");
    assert_eq!(h.source, client("192.0.2.1:56324"));
}

#[test]
fn v2_local_keeps_the_peer() {
    // LOCAL, usually with UNSPEC and no addresses (HAProxy's health checks).
    assert_eq!(complete(&v2(0x20, 0x00, &[]), b"GET").source, Source::Local);
    // LOCAL with addresses: they are ignored.
    assert_eq!(
        complete(&v2(0x20, 0x11, &v4_block()), b"").source,
        Source::Local
    );
}

#[test]
fn v2_without_an_ip_keeps_the_peer() {
    // PROXY over UNSPEC, and over AF_UNIX.
    assert_eq!(complete(&v2(0x21, 0x00, &[]), b"").source, Source::Unknown);
    assert_eq!(
        complete(&v2(0x21, 0x31, &[b'/'; 216]), b"").source,
        Source::Unknown
    );
    // UDP addresses are still addresses.
    assert_eq!(
        complete(&v2(0x21, 0x12, &v4_block()), b"").source,
        client("192.0.2.1:56324")
    );
}

#[test]
fn v2_malformed() {
    let mut overrun = v4_block();
    overrun.extend_from_slice(&[0x01, 0x00, 0x05, b'h']);
    let mut leftover = v4_block();
    leftover.extend_from_slice(&[0x01, 0x00]);
    for bytes in [
        v2(0x11, 0x11, &v4_block()),       // version 1 in binary
        v2(0x31, 0x11, &v4_block()),       // version 3
        v2(0x22, 0x11, &v4_block()),       // command 2
        v2(0x21, 0x41, &v4_block()),       // family 4
        v2(0x21, 0x13, &v4_block()),       // protocol 3
        v2(0x21, 0x11, &v4_block()[..11]), // addresses cut short
        v2(0x21, 0x21, &v4_block()),       // IPv6 needs 36 bytes
        v2(0x21, 0x11, &overrun),          // a TLV longer than the header
        v2(0x21, 0x11, &leftover),         // bytes that are no TLV
    ] {
        assert_eq!(invalid(&bytes), Invalid::Malformed, "{bytes:?}");
    }
    // A wrong version is refused before the length arrives.
    let mut early = SIG.to_vec();
    early.push(0x11);
    assert_eq!(invalid(&early), Invalid::Malformed);
}

#[test]
fn v2_too_long() {
    let mut h = SIG.to_vec();
    h.extend_from_slice(&[0x21, 0x11]);
    let rest = u16::try_from(MAX_LEN - 16 + 1).unwrap();
    h.extend_from_slice(&rest.to_be_bytes());
    // Known from the fixed part alone.
    assert_eq!(invalid(&h), Invalid::TooLong);
    // The longest accepted one.
    let mut rest = v4_block();
    rest.extend(tlv(0x7f, &vec![0; MAX_LEN - 16 - 12 - 3]));
    let bytes = v2(0x21, 0x11, &rest);
    assert_eq!(bytes.len(), MAX_LEN);
    assert!(matches!(
        parse(&bytes),
        Parse::Complete { len: MAX_LEN, .. }
    ));
}

/// Bytes that start like a header, then anything.
fn header_like() -> impl Strategy<Value = Vec<u8>> {
    let start = prop_oneof![
        Just(b"PROXY ".to_vec()),
        Just(b"PROXY TCP4 ".to_vec()),
        Just(b"PROXY TCP6 ".to_vec()),
        Just(SIG.to_vec()),
        Just(v2(0x21, 0x11, &v4_block())),
        Just(Vec::new()),
    ];
    (start, prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(mut s, rest)| {
        s.extend(rest);
        s
    })
}

proptest! {
    /// Never panics; a complete header is complete at its own length and
    /// incomplete before it; an incomplete input stays incomplete when cut.
    #[test]
    fn consistent_on_any_input(bytes in header_like()) {
        match parse(&bytes) {
            Parse::Complete { len, header } => {
                prop_assert!(len <= bytes.len() && len <= MAX_LEN);
                prop_assert_eq!(parse(&bytes[..len]), Parse::Complete { len, header });
                for n in 0..len {
                    prop_assert_eq!(parse(&bytes[..n]), Parse::Incomplete);
                }
            }
            Parse::Incomplete => {
                for n in 0..bytes.len() {
                    prop_assert_eq!(parse(&bytes[..n]), Parse::Incomplete);
                }
            }
            Parse::Invalid(_) => {}
        }
    }
}
