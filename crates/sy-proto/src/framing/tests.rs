use super::{FramingScanner, Verdict};

use Verdict::{Ambiguous, Ok};

/// Feeds `pieces` in order: the verdicts and whether the scanner stopped.
fn scan_pieces(pieces: &[&[u8]]) -> (Vec<Verdict>, bool) {
    let mut scanner = FramingScanner::new();
    let mut verdicts = Vec::new();
    for piece in pieces {
        scanner.feed(piece, |v| verdicts.push(v));
    }
    (verdicts, scanner.is_done())
}

fn scan(stream: &[u8]) -> (Vec<Verdict>, bool) {
    scan_pieces(&[stream])
}

/// Scans `stream` whole, one byte at a time and in two pieces split at every
/// point; all must agree. Returns the common result.
fn scan_all_ways(stream: &[u8]) -> (Vec<Verdict>, bool) {
    let whole = scan(stream);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(scan_pieces(&bytes), whole, "byte at a time");
    for at in 0..=stream.len() {
        let (a, b) = stream.split_at(at);
        assert_eq!(scan_pieces(&[a, b]), whole, "split at {at}");
    }
    whole
}

const GET: &[u8] = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: session=0123456789abcdef0123456789abcdef\r\n\r\n";

const POST_CL: &[u8] =
    b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\nContent-Length: 5\r\n\r\nhello";

const POST_CHUNKED: &[u8] = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n1a;name=value\r\nContent-Length: 0\r\n\r\nabcde\r\n0\r\nX-Sum: 1\r\nContent-Length: 7\r\n\r\n";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn single_get_at_every_split() {
    assert_eq!(scan_all_ways(GET), (vec![Ok], false));
}

#[test]
fn pipelined_requests_give_one_verdict_each() {
    let stream = cat(&[GET, POST_CL, POST_CHUNKED, GET]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok; 4], false));
}

#[test]
fn verdict_comes_with_the_bytes_that_end_the_head() {
    let mut scanner = FramingScanner::new();
    let (head, rest) = GET.split_at(GET.len() - 1);
    let mut n = 0;
    scanner.feed(head, |_| n += 1);
    assert_eq!(n, 0);
    scanner.feed(rest, |_| n += 1);
    assert_eq!(n, 1);
}

#[test]
fn content_length_with_transfer_encoding_is_ambiguous() {
    for head in [
        &b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\n\r\n",
    ] {
        let stream = cat(&[GET, head, b"0\r\n\r\n", GET]);
        assert_eq!(scan_all_ways(&stream), (vec![Ok, Ambiguous], true));
    }
}

#[test]
fn repeated_content_length_is_ambiguous() {
    for head in [
        &b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\ncontent-length:5\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    ] {
        let stream = cat(&[head, b"hello", GET]);
        assert_eq!(scan_all_ways(&stream), (vec![Ambiguous], true));
    }
}

#[test]
fn one_content_length_listing_one_value_twice_is_ok() {
    // One header, so not ambiguous; hyper rejects the list by itself, so the
    // scanner stops as for any length hyper cannot parse.
    let stream = cat(&[b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello", GET]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok], true));
}

#[test]
fn header_names_ignore_case() {
    let stream = b"POST / HTTP/1.1\r\ncOnTeNt-LeNgTh: 1\r\nTRANSFER-encoding: chunked\r\n\r\n";
    assert_eq!(scan_all_ways(stream), (vec![Ambiguous], true));

    let stream = cat(&[
        b"POST / HTTP/1.1\r\ntRaNsFeR-eNcOdInG: ChUnKeD\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nCONTENT-LENGTH: 2\r\n\r\nhi",
        GET,
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok; 3], false));
}

#[test]
fn only_whole_names_count() {
    let stream = cat(&[
        b"POST / HTTP/1.1\r\nContent-Length-X: 9\r\nX-Content-Length: 9\r\nContent-Length: 3\r\n",
        b"Transfer-Encodings: chunked\r\nX-Transfer-Encoding: chunked\r\nContent-Lengt: 1\r\n\r\nabc",
        GET,
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok, Ok], false));
}

#[test]
fn header_values_are_not_names() {
    let stream = cat(&[
        b"POST / HTTP/1.1\r\nX-Note: Content-Length: 1\r\nX-Other: Transfer-Encoding: chunked\r\n",
        b"Content-Length: 0\r\nReferer: http://a/?Content-Length:2\r\n\r\n",
        GET,
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok, Ok], false));
}

#[test]
fn bare_lf_line_endings() {
    let stream = cat(&[
        b"POST / HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc",
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\nHost: a\r\n\n",
        b"POST / HTTP/1.1\nContent-Length: 1\nContent-Length: 1\n\n",
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok, Ok, Ok, Ambiguous], true));
}

#[test]
fn leading_empty_lines_are_skipped() {
    let stream = cat(&[
        b"\r\n\r\n\n",
        GET,
        b"\r\n",
        b"\n\r\n",
        POST_CL,
        b"\r\n",
        GET,
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok; 3], false));
}

#[test]
fn bare_cr_between_requests_stops() {
    assert_eq!(scan_all_ways(&cat(&[GET, b"\rGET"])), (vec![Ok], true));
}

#[test]
fn upgrade_stops_tracking() {
    let ws = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let stream = cat(&[
        GET,
        ws,
        b"\x81\x05hello",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok, Ok], true));

    // Connection before Upgrade, and split over two Connection headers.
    let ws = b"GET / HTTP/1.1\r\nConnection: close\r\nconnection: UPGRADE\r\nupgrade: h2c\r\n\r\n";
    assert_eq!(scan_all_ways(&cat(&[ws, GET])), (vec![Ok], true));
}

#[test]
fn upgrade_header_without_connection_upgrade_keeps_tracking() {
    let stream = cat(&[
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, upgraded\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
        GET,
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok; 3], false));
}

#[test]
fn connect_stops_tracking() {
    let stream = cat(&[
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        GET,
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok], true));
    // Methods are case-sensitive, and CONNECTX is another method.
    let stream = cat(&[
        b"connect a:1 HTTP/1.1\r\n\r\n",
        b"CONNECTX a:1 HTTP/1.1\r\n\r\n",
        b"CONNEC a:1 HTTP/1.1\r\n\r\n",
        GET,
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok; 4], false));
}

#[test]
fn chunk_extensions_and_sizes() {
    let body = b"4;a=b;c=\"d;e\"\r\nwiki\r\n5 \t;x\r\npedia\r\nA \r\n0123456789\r\n0;last\r\n\r\n";
    let stream = cat(&[
        b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        body,
        GET,
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok, Ok], false));
}

#[test]
fn transfer_encoding_list_ending_in_chunked() {
    let stream = cat(&[
        b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: deflate , chunked \r\n\r\n",
        b"1\r\nx\r\n0\r\n\r\n",
        GET,
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok, Ok], false));
}

#[test]
fn transfer_encoding_not_chunked_last_stops() {
    for te in [
        &b"gzip"[..],
        b"chunked, gzip",
        b"",
        b"chunked\r\nTransfer-Encoding: gzip",
    ] {
        let stream = cat(&[
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: ",
            te,
            b"\r\n\r\n",
            GET,
        ]);
        assert_eq!(scan_all_ways(&stream), (vec![Ok], true), "{te:?}");
    }
}

#[test]
fn bad_chunk_framing_stops() {
    for body in [
        &b"\r\n"[..],             // no size digit
        b"g\r\n",                 // not hex
        b"1\nx\r\n0\r\n\r\n",     // size line needs CRLF
        b"1;ext\nx\r\n",          // bare LF in an extension
        b"1 2\r\n",               // digits after whitespace
        b"1\r\nxy\r\n",           // data longer than the size
        b"1\r\nx\n0\r\n\r\n",     // data needs CRLF after it
        b"0\r\n\r\r",             // end needs CRLF
        b"10000000000000000\r\n", // size overflows u64
    ] {
        let stream = cat(&[
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            body,
            GET,
        ]);
        assert_eq!(scan_all_ways(&stream), (vec![Ok], true), "{body:?}");
    }
}

#[test]
fn trailers_end_only_at_crlf_crlf_as_in_hyper() {
    // hyper reads a trailer line up to `\r`, so the bare `\n` lines below are
    // all trailer bytes and the GET inside them is not a request.
    let stream = cat(&[
        b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        b"\nGET /smuggled HTTP/1.1\nX: y\n\r\n\r\n",
        GET,
    ]);
    assert_eq!(scan_all_ways(&stream), (vec![Ok, Ok], false));
}

#[test]
fn huge_lengths_skip_without_overflow() {
    for len in [
        "18446744073709551613",
        "18446744073709551615",
        "0000000000018446744073709551614",
    ] {
        let head = format!("POST / HTTP/1.1\r\nContent-Length: {len}\r\n\r\n");
        let mut scanner = FramingScanner::new();
        let mut verdicts = Vec::new();
        scanner.feed(head.as_bytes(), |v| verdicts.push(v));
        for _ in 0..1000 {
            scanner.feed(GET, |v| verdicts.push(v));
        }
        assert_eq!((verdicts, scanner.is_done()), (vec![Ok], false), "{len}");
    }
    let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
    let mut scanner = FramingScanner::new();
    let mut verdicts = Vec::new();
    scanner.feed(head, |v| verdicts.push(v));
    scanner.feed(&[b'x'; 4096], |v| verdicts.push(v));
    assert_eq!((verdicts, scanner.is_done()), (vec![Ok], false));
}

#[test]
fn invalid_content_length_stops() {
    for cl in [
        "",
        "abc",
        "-1",
        "+1",
        "1 2",
        "1, 2",
        "18446744073709551616",
        "0x10",
    ] {
        let stream = format!("POST / HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n");
        assert_eq!(scan_all_ways(stream.as_bytes()), (vec![Ok], true), "{cl:?}");
    }
    assert_eq!(
        scan_all_ways(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        (vec![Ok], false)
    );
}

#[test]
fn heads_hyper_rejects_are_ok_then_stop() {
    for head in [
        &b"POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n"[..], // whitespace before colon
        b"POST / HTTP/1.1\r\nHost\t: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", // obsolete line folding
        b"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST / HTTP/1.1\r\n: empty name\r\n\r\n",
        b"POST / HTTP/1.1\r\nX: a\r\n\rX\r\n\r\n", // bare CR
    ] {
        let stream = cat(&[head, GET]);
        assert_eq!(scan_all_ways(&stream), (vec![Ok], true), "{head:?}");
    }
}

#[test]
fn long_lines_and_names_are_tracked_to_their_end() {
    let long = "a".repeat(5000);
    let stream = format!(
        "POST /{long} HTTP/1.1\r\nX-{long}: {long}\r\nContent-Length-{long}: 1\r\n\
         Connection: {long}, upgrade{long}\r\nContent-Length: {}5\r\n\r\nhello",
        "0".repeat(3000)
    );
    let stream = cat(&[stream.as_bytes(), GET]);
    let (verdicts, done) = scan(&stream);
    assert_eq!((verdicts, done), (vec![Ok, Ok], false));
    let pieces: Vec<&[u8]> = stream.chunks(7).collect();
    assert_eq!(scan_pieces(&pieces), (vec![Ok, Ok], false));
}

#[test]
fn bytes_after_done_are_ignored() {
    let mut scanner = FramingScanner::new();
    let mut verdicts = Vec::new();
    scanner.feed(b"CONNECT a:1 HTTP/1.1\r\n\r\n", |v| verdicts.push(v));
    assert!(scanner.is_done());
    scanner.feed(GET, |v| verdicts.push(v));
    scanner.feed(&[], |v| verdicts.push(v));
    assert_eq!(verdicts, vec![Ok]);
}

#[test]
fn empty_feeds_change_nothing() {
    let mut pieces: Vec<&[u8]> = Vec::new();
    for piece in POST_CHUNKED.chunks(3) {
        pieces.push(b"");
        pieces.push(piece);
    }
    assert_eq!(scan_pieces(&pieces), (vec![Ok], false));
}

#[test]
fn idle_only_between_messages() {
    let mut s = FramingScanner::new();
    assert!(s.is_idle());
    let mut heads = 0;
    s.feed(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", |_| {
        heads += 1
    });
    assert_eq!(heads, 1);
    // The head is complete, its body is not.
    assert!(!s.is_idle());
    s.feed(b"abc", |_| heads += 1);
    assert!(s.is_idle());
    s.feed(b"GET", |_| heads += 1);
    assert!(!s.is_idle());
    s.feed(b" / HTTP/1.1\r\n\r\n", |_| heads += 1);
    assert!(s.is_idle());
    assert_eq!(heads, 2);
}
