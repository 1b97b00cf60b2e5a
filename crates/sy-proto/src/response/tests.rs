use proptest::prelude::*;

use super::*;

fn head(raw: &str, head_request: bool) -> Result<Option<Head>, Error> {
    parse_head(raw.as_bytes(), head_request, &mut Fields::new())
}

fn framing(raw: &str) -> (Framing, bool) {
    let h = head(raw, false).unwrap().unwrap();
    (h.framing, h.keep_alive)
}

#[test]
fn framing_follows_rfc_9112_section_6_3() {
    let cases: &[(&str, Framing, bool)] = &[
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            Framing::Length(5),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            Framing::Length(5),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            Framing::Chunked,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n",
            Framing::Chunked,
            true,
        ),
        // chunked not last: read to the end of the connection.
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            Framing::Close,
            false,
        ),
        // Both: chunked wins, the connection is not reused.
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
            Framing::Chunked,
            false,
        ),
        ("HTTP/1.1 200 OK\r\n\r\n", Framing::Close, false),
        (
            "HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n",
            Framing::Empty,
            true,
        ),
        (
            "HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n",
            Framing::Empty,
            true,
        ),
        ("HTTP/1.1 100 Continue\r\n\r\n", Framing::Empty, true),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n",
            Framing::Length(5),
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: x, Close\r\n\r\n",
            Framing::Length(5),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\n",
            Framing::Length(5),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\n",
            Framing::Length(5),
            true,
        ),
    ];
    for (raw, f, keep) in cases {
        assert_eq!(framing(raw), (*f, *keep), "{raw:?}");
    }
}

#[test]
fn head_request_has_no_body() {
    let h = head("HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n", true)
        .unwrap()
        .unwrap();
    assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
}

#[test]
fn bad_heads_are_errors_and_partial_heads_ask_for_more() {
    assert_eq!(head("HTTP/1.1 200 OK\r\ncontent-le", false), Ok(None));
    assert_eq!(head("HTTP/1.1 200 OK\r\n", false), Ok(None));
    assert_eq!(
        head(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            false
        ),
        Err(Error::ContentLength)
    );
    assert_eq!(
        head("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", false),
        Err(Error::ContentLength)
    );
    assert_eq!(
        head(
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            false
        ),
        Err(Error::ContentLength)
    );
    assert_eq!(
        head("HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n", false),
        Err(Error::ContentLength)
    );
    assert_eq!(head("HTTP/2 200 OK\r\n\r\n", false), Err(Error::Syntax));
    assert_eq!(head("SSH-2.0-OpenSSH\r\n\r\n", false), Err(Error::Syntax));
    let many: String = (0..MAX_HEADERS + 1)
        .map(|i| format!("x-{i}: y\r\n"))
        .collect();
    assert_eq!(
        head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), false),
        Err(Error::TooManyFields)
    );
}

#[test]
fn fields_point_at_names_and_trimmed_values() {
    let raw = "HTTP/1.1 404 Not Found\r\nServer:  nginx \r\nX-A: b\r\n\r\nBODY";
    let mut out = Fields::new();
    let h = parse_head(raw.as_bytes(), false, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(
        (h.status, h.minor, out.len(), h.len),
        (404, 1, 2, raw.len() - 4)
    );
    let s = |r: (usize, usize)| &raw[r.0..r.1];
    assert_eq!((s(out[0].name), s(out[0].value)), ("Server", "nginx"));
    assert_eq!((s(out[1].name), s(out[1].value)), ("X-A", "b"));
}

/// Feeds `input` to a decoder in pieces of `piece` bytes, as a reader
/// would: unread bytes stay in the buffer. Returns (data, trailers).
fn decode(input: &[u8], piece: usize) -> Result<(Vec<u8>, Vec<u8>, usize), Error> {
    let mut d = ChunkedDecoder::new();
    let (mut buf, mut fed, mut data, mut trailers) = (Vec::new(), 0, Vec::new(), Vec::new());
    loop {
        match d.step(&buf)? {
            Step::Skip(n) => {
                assert!(n > 0 && n <= buf.len());
                buf.drain(..n);
            }
            Step::Data(n) => {
                assert!(n > 0 && n <= buf.len());
                data.extend(buf.drain(..n));
            }
            Step::End { len } => {
                trailers.extend(buf.drain(..len));
                return Ok((data, trailers, buf.len() + input.len() - fed));
            }
            Step::NeedMore => {
                if fed == input.len() {
                    return Err(Error::Syntax); // truncated: stands for "EOF"
                }
                let end = (fed + piece).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}

#[test]
fn chunked_bodies_decode() {
    let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT";
    for piece in [1, 2, 3, 7, 100] {
        let (data, trailers, left) = decode(body, piece).unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(trailers, b"\r\n");
        assert_eq!(left, 4, "the next response's bytes are left alone");
    }
    let with_trailers = b"A\r\n0123456789\r\n0\r\nx-checksum: 1\r\nx-b: 2\r\n\r\n";
    let (data, trailers, _) = decode(with_trailers, 3).unwrap();
    assert_eq!(data, b"0123456789");
    assert_eq!(trailers, b"x-checksum: 1\r\nx-b: 2\r\n\r\n");
    let mut out = Fields::new();
    assert_eq!(parse_trailers(&trailers, &mut out), Ok(()));
    assert_eq!(out.len(), 2);
    assert_eq!(&trailers[out[1].name.0..out[1].name.1], b"x-b");
}

#[test]
fn malformed_chunked_bodies_are_errors() {
    let bad: &[&[u8]] = &[
        b"\r\n",                     // no size
        b"g\r\n",                    // not hex
        b"5\nhello\r\n0\r\n\r\n",    // bare LF after size
        b"5\r\nhelloX\r\n0\r\n\r\n", // no CRLF after data
        b"5;a\nb\r\n",               // LF inside an extension
        b"11111111111111111\r\n",    // 17 hex digits
    ];
    for b in bad {
        assert!(decode(b, 1).is_err(), "{:?}", String::from_utf8_lossy(b));
    }
    let long_ext = format!(
        "1;{}\r\nx\r\n0\r\n\r\n",
        "e".repeat(MAX_CHUNK_EXT as usize + 1)
    );
    assert_eq!(decode(long_ext.as_bytes(), 64), Err(Error::TooLarge));
    let long_trailer = format!("0\r\nx: {}\r\n\r\n", "v".repeat(MAX_TRAILERS));
    assert_eq!(decode(long_trailer.as_bytes(), 1024), Err(Error::TooLarge));
}

fn encode(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks.iter().filter(|c| !c.is_empty()) {
        out.extend(format!("{:x}\r\n", c.len()).bytes());
        out.extend(c);
        out.extend(b"\r\n");
    }
    out.extend(b"0\r\n\r\n");
    out
}

proptest! {
    #[test]
    fn any_chunking_and_any_read_size_give_the_body_back(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        piece in 1usize..600,
    ) {
        let (data, trailers, left) = decode(&encode(&chunks), piece).unwrap();
        prop_assert_eq!(data, chunks.concat());
        prop_assert_eq!(trailers, b"\r\n".to_vec());
        prop_assert_eq!(left, 0);
    }

    #[test]
    fn the_decoder_never_panics(input in proptest::collection::vec(any::<u8>(), 0..400), piece in 1usize..64) {
        let _ = decode(&input, piece);
    }

    #[test]
    fn the_head_parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..400), head_request: bool) {
        let mut out = Fields::new();
        if let Ok(Some(h)) = parse_head(&input, head_request, &mut out) {
            prop_assert!(h.len <= input.len());
            for f in &out {
                prop_assert!(f.name.1 <= h.len && f.value.1 <= h.len);
            }
        }
    }
}
