//! Property tests for `FramingScanner`: generated request streams split at
//! random points, arbitrary bytes, and a differential check against a
//! hyper-faithful reference model built on httparse.

mod reference;

use proptest::prelude::*;
use proptest::sample::select;
use reference::{End, reference};
use sy_proto::{FramingScanner, Verdict};

/// Feeds `stream` in pieces whose sizes cycle through `sizes`.
fn scan(stream: &[u8], sizes: &[usize]) -> (Vec<Verdict>, bool) {
    let mut scanner = FramingScanner::new();
    let mut verdicts = Vec::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        scanner.feed(piece, |v| verdicts.push(v));
        rest = tail;
    }
    (verdicts, scanner.is_done())
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1usize..4, 1usize..40, 1usize..2000], 1..8)
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Length(Vec<u8>),
    Chunked {
        chunks: Vec<(Vec<u8>, &'static str)>,
        trailers: Vec<(String, String)>,
    },
}

/// How a request frames (or mis-frames) its body.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Plain,
    /// Content-Length and Transfer-Encoding, in this order when true.
    ClTe(bool),
    /// Content-Length twice (same or different values).
    ClCl(bool),
}

#[derive(Debug, Clone)]
struct Req {
    leading: Vec<&'static str>,
    lf: bool,
    method: &'static str,
    path: String,
    http10: bool,
    extra: Vec<(String, String)>,
    /// Where the framing headers go among `extra`.
    at: prop::sample::Index,
    /// Upper/lower case choice per byte of framing header names.
    case: Vec<bool>,
    cl_style: usize,
    te_style: usize,
    body: Body,
}

const WORDS: &[&str] = &[
    "Content-Length: 5",
    "Transfer-Encoding: chunked",
    "chunked",
    "content-length:0",
    "0",
    "upgrade",
    "GET / HTTP/1.1",
    "a,b",
    " ",
    "\t",
    "x=y;z",
];

const NAMES: &[&str] = &[
    "Host",
    "Accept",
    "User-Agent",
    "X-Content-Length",
    "Content-Length-X",
    "Content-Lengthy",
    "Transfer-Encodings",
    "X-Transfer-Encoding",
    "Transfer-Encodin",
    "Upgrade-Insecure-Requests",
    "Connection",
    "Cookie",
    "content-type",
];

fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![select(WORDS).prop_map(str::to_owned), "[!-~]{1,12}"],
        0..4,
    )
    .prop_map(|words| words.concat())
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        Just(b"Content-Length: 5\r\n\r\n".to_vec()),
        Just(b"0\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\n\r\n".to_vec()),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    let chunk = (
        body_bytes().prop_filter("non-empty", |b| !b.is_empty()),
        select(&["", ";a=b", ";ext", " ;q=\"x;y\"", "\t"][..]),
    );
    let trailer = (select(NAMES).prop_map(str::to_owned), value());
    prop_oneof![
        Just(Body::None),
        body_bytes().prop_map(Body::Length),
        (
            prop::collection::vec(chunk, 0..5),
            prop::collection::vec(trailer, 0..3)
        )
            .prop_map(|(chunks, trailers)| Body::Chunked { chunks, trailers }),
    ]
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop::collection::vec(select(&["\r\n", "\n"][..]), 0..3),
        any::<bool>(),
        select(
            &[
                "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "connect",
            ][..],
        ),
        "/[a-zA-Z0-9_./?=&%-]{0,30}",
        any::<bool>(),
        prop::collection::vec((select(NAMES).prop_map(str::to_owned), value()), 0..6),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<bool>(), 17),
        (0usize..4, 0usize..4),
        body(),
    )
        .prop_map(
            |(leading, lf, method, path, http10, extra, at, case, (cl_style, te_style), body)| {
                Req {
                    leading,
                    lf,
                    method,
                    path,
                    http10: http10 && !matches!(body, Body::Chunked { .. }),
                    extra,
                    at,
                    case,
                    cl_style,
                    te_style,
                    body,
                }
            },
        )
}

impl Req {
    fn name(&self, name: &str) -> String {
        name.chars()
            .zip(self.case.iter().cycle())
            .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    }

    fn cl(&self, n: usize) -> (String, String) {
        let value = match self.cl_style {
            0 => format!("{n}"),
            1 => format!(" {n}\t"),
            2 => format!("000{n}"),
            _ => format!("\t{n}  "),
        };
        (self.name("content-length"), value)
    }

    fn te(&self) -> Vec<(String, String)> {
        let name = self.name("transfer-encoding");
        match self.te_style {
            0 => vec![(name, "chunked".into())],
            1 => vec![(name, "gzip, chunked".into())],
            2 => vec![(name, " CHUNKED ".into())],
            _ => vec![(name.clone(), "gzip".into()), (name, "chunked".into())],
        }
    }

    fn write(&self, framing: Framing, out: &mut Vec<u8>) {
        let eol: &[u8] = if self.lf { b"\n" } else { b"\r\n" };
        for line in &self.leading {
            out.extend_from_slice(line.as_bytes());
        }
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        out.extend_from_slice(format!("{} {} {version}", self.method, self.path).as_bytes());
        out.extend_from_slice(eol);
        let mut framing_headers = match (&self.body, framing) {
            (Body::None, Framing::Plain) => vec![],
            (Body::Length(b), Framing::Plain) => vec![self.cl(b.len())],
            (Body::Chunked { .. }, Framing::Plain) => self.te(),
            (_, Framing::ClTe(cl_first)) => {
                let mut h = vec![self.cl(3)];
                h.extend(self.te());
                if !cl_first {
                    h.rotate_left(1);
                }
                h
            }
            (_, Framing::ClCl(same)) => vec![self.cl(3), self.cl(if same { 3 } else { 4 })],
        };
        let mut headers = self.extra.clone();
        let at = self.at.index(headers.len() + 1);
        let tail = headers.split_off(at);
        headers.append(&mut framing_headers);
        headers.extend(tail);
        for (name, value) in headers {
            out.extend_from_slice(format!("{name}: {value}").as_bytes());
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(eol);
        match &self.body {
            Body::None => {}
            Body::Length(b) => out.extend_from_slice(b),
            Body::Chunked { chunks, trailers } => {
                for (data, ext) in chunks {
                    out.extend_from_slice(format!("{:x}{ext}\r\n", data.len()).as_bytes());
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

fn serialize(reqs: &[Req], bad: Option<(usize, Framing)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, req) in reqs.iter().enumerate() {
        let framing = match bad {
            Some((at, framing)) if at == i => framing,
            _ => Framing::Plain,
        };
        req.write(framing, &mut out);
    }
    out
}

fn ambiguity() -> impl Strategy<Value = Framing> {
    prop_oneof![
        any::<bool>().prop_map(Framing::ClTe),
        any::<bool>().prop_map(Framing::ClCl)
    ]
}

/// Small edits that push a well-formed stream into the odd corners.
fn mutations() -> impl Strategy<Value = Vec<(prop::sample::Index, usize, &'static [u8])>> {
    let snippets: &[&[u8]] = &[
        b"\r",
        b"\n",
        b"\r\n",
        b" ",
        b"\t",
        b":",
        b",",
        b";",
        b"0",
        b"a",
        b"\r\n\r\n",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"content-length:1\n",
        b"Upgrade: x\r\nConnection: upgrade\r\n",
        b"CONNECT ",
    ];
    prop::collection::vec(
        (any::<prop::sample::Index>(), 0usize..3, select(snippets)),
        0..4,
    )
}

fn mutate(stream: &mut Vec<u8>, edits: &[(prop::sample::Index, usize, &'static [u8])]) {
    for (at, kind, snippet) in edits {
        let i = at.index(stream.len() + 1);
        match kind {
            0 => drop(stream.splice(i..i, snippet.iter().copied())),
            1 if i < stream.len() => drop(stream.remove(i)),
            _ if i < stream.len() => stream[i] = snippet[0],
            _ => {}
        }
    }
}

const TUNNELS: &[&[u8]] = &[
    b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn well_formed_streams_are_all_ok(reqs in prop::collection::vec(req(), 1..6), sizes in sizes()) {
        let stream = serialize(&reqs, None);
        let expected = vec![Verdict::Ok; reqs.len()];
        prop_assert_eq!(scan(&stream, &sizes), (expected.clone(), false));
        prop_assert_eq!(reference(&stream), (expected, End::Incomplete));
    }

    #[test]
    fn one_ambiguous_request_is_reported_then_stops(
        reqs in prop::collection::vec(req(), 1..6),
        at in any::<prop::sample::Index>(),
        framing in ambiguity(),
        sizes in sizes(),
    ) {
        let at = at.index(reqs.len());
        let stream = serialize(&reqs, Some((at, framing)));
        let mut expected = vec![Verdict::Ok; at];
        expected.push(Verdict::Ambiguous);
        prop_assert_eq!(scan(&stream, &sizes), (expected.clone(), true));
        prop_assert_eq!(reference(&stream), (expected, End::Stopped));
    }

    #[test]
    fn a_tunnel_request_stops_tracking(
        reqs in prop::collection::vec(req(), 0..4),
        tunnel in select(TUNNELS),
        after in prop::collection::vec(any::<u8>(), 0..64),
        sizes in sizes(),
    ) {
        let mut stream = serialize(&reqs, None);
        stream.extend_from_slice(tunnel);
        stream.extend_from_slice(&after);
        let expected = vec![Verdict::Ok; reqs.len() + 1];
        prop_assert_eq!(scan(&stream, &sizes), (expected.clone(), true));
        prop_assert_eq!(reference(&stream), (expected, End::Stopped));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_splits_agree(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        sizes in sizes(),
    ) {
        prop_assert_eq!(scan(&bytes, &sizes), scan(&bytes, &[usize::MAX]));
    }

    #[test]
    fn mutated_streams_agree_with_the_reference(
        reqs in prop::collection::vec(req(), 1..5),
        edits in mutations(),
        sizes in sizes(),
    ) {
        let mut stream = serialize(&reqs, None);
        mutate(&mut stream, &edits);
        let (got, done) = scan(&stream, &sizes);
        prop_assert_eq!(&(got.clone(), done), &scan(&stream, &[usize::MAX]), "splits disagree");
        let (expected, end) = reference(&stream);
        match end {
            End::Stopped => prop_assert_eq!((got, done), (expected, true)),
            End::Incomplete => prop_assert_eq!((got, done), (expected, false)),
            // hyper answers 400 and closes, so nothing the scanner says
            // after that is ever read.
            End::Rejected => prop_assert!(
                got.starts_with(&expected),
                "got {:?}, hyper {:?} on {:?}", got, expected, String::from_utf8_lossy(&stream)
            ),
        }
    }
}
