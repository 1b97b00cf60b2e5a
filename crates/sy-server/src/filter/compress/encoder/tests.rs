#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};

use sy_policy::compress::Coding;

use super::*;

const LEVELS: Levels = Levels {
    gzip: 6,
    brotli: 4,
    zstd: 3,
};

/// One step of a scripted body.
enum Step {
    Data(&'static [u8]),
    Owned(Vec<u8>),
    /// Not ready, for this one poll (it wakes itself, as a socket would
    /// later); two in a row show what a longer pause does.
    Pending,
    Trailers(HeaderMap),
    Fail,
}

/// A body that plays `steps`, then ends.
struct Script(VecDeque<Step>);

impl Body for Script {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.0.pop_front() {
            None => Poll::Ready(None),
            Some(Step::Data(d)) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(d))))),
            Some(Step::Owned(d)) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(d))))),
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Step::Trailers(t)) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
            Some(Step::Fail) => Poll::Ready(Some(Err("upstream reset".into()))),
        }
    }
}

/// What the encoder sent: each poll's outcome.
#[derive(Debug)]
enum Out {
    Data(Bytes),
    Pending,
    Trailers(HeaderMap),
    Error(String),
}

fn run(coding: Coding, steps: Vec<Step>) -> (Vec<Out>, ByteCounters) {
    let counters = ByteCounters::default();
    let enc = Encoder::new(coding, &LEVELS).unwrap();
    let mut body = Encoding::new(Script(steps.into()), enc, counters.clone());
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    for _ in 0..100_000 {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Pending => out.push(Out::Pending),
            Poll::Ready(None) => {
                assert!(body.is_end_stream());
                return (out, counters);
            }
            Poll::Ready(Some(Ok(f))) => match f.into_data() {
                Ok(d) => {
                    assert!(!d.is_empty(), "an empty data frame");
                    out.push(Out::Data(d));
                }
                Err(f) => out.push(Out::Trailers(f.into_trailers().unwrap())),
            },
            Poll::Ready(Some(Err(e))) => out.push(Out::Error(e.to_string())),
        }
    }
    panic!("the body never ended");
}

fn data(out: &[Out]) -> Vec<u8> {
    out.iter()
        .filter_map(|o| match o {
            Out::Data(d) => Some(&d[..]),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

/// A whole stream decoded (the filter's tests use it too).
pub(in crate::filter::compress) fn decode(coding: Coding, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        Coding::Gzip => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Coding::Br => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Coding::Zstd => out = zstd::decode_all(bytes).unwrap(),
    }
    out
}

/// What a streaming decoder can give from the first bytes of a stream.
fn decode_prefix(coding: Coding, bytes: &[u8]) -> Vec<u8> {
    match coding {
        Coding::Gzip => {
            let mut d = flate2::write::GzDecoder::new(Vec::new());
            d.write_all(bytes).unwrap();
            d.flush().unwrap();
            d.get_ref().clone()
        }
        Coding::Br => {
            let mut d = brotli::DecompressorWriter::new(Vec::new(), 4096);
            d.write_all(bytes).unwrap();
            d.flush().unwrap();
            d.get_ref().clone()
        }
        Coding::Zstd => {
            let mut d = zstd::stream::write::Decoder::new(Vec::new()).unwrap();
            d.write_all(bytes).unwrap();
            d.flush().unwrap();
            d.get_ref().clone()
        }
    }
}

pub(in crate::filter::compress) const TEXT: &[u8] =
    b"<li class=\"item\">Switchyard compresses this list item, then the next one.</li>\n\
<li class=\"item\">Switchyard compresses this list item, then the next one.</li>\n\
{\"id\":42,\"name\":\"widget\",\"tags\":[\"a\",\"b\"]}";

#[test]
fn any_split_of_the_body_decodes_to_the_same_bytes() {
    for coding in Coding::ALL {
        for i in 0..=TEXT.len() {
            let (a, b) = TEXT.split_at(i);
            for pause in [false, true] {
                let mut steps = vec![Step::Owned(a.to_vec())];
                if pause {
                    steps.push(Step::Pending);
                }
                steps.push(Step::Owned(b.to_vec()));
                let (out, counters) = run(coding, steps);
                let sent = data(&out);
                assert_eq!(decode(coding, &sent), TEXT, "{coding:?} split at {i}");
                assert_eq!(counters.bytes_in.get(), TEXT.len() as u64);
                assert_eq!(counters.bytes_out.get(), sent.len() as u64);
            }
        }
    }
}

#[test]
fn a_body_of_many_frames_streams_in_pieces() {
    // 3 MiB of varied text in 4 KiB frames, never paused: output leaves
    // before the end (brotli holds up to 1 MiB of input per meta-block,
    // zstd 128 KiB, gzip less), in frames far smaller than the body.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let words = [
        "alpha", "beta", "gamma", "delta", "proxy", "route", "stream",
    ];
    let mut text = Vec::new();
    while text.len() < 3 << 20 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        text.extend_from_slice(words[(rng % 7) as usize].as_bytes());
        text.extend_from_slice(format!(" {} ", rng % 1000).as_bytes());
    }
    for coding in Coding::ALL {
        let steps = text.chunks(4096).map(|c| Step::Owned(c.to_vec())).collect();
        let (out, _) = run(coding, steps);
        let frames: Vec<usize> = out
            .iter()
            .filter_map(|o| match o {
                Out::Data(d) => Some(d.len()),
                _ => None,
            })
            .collect();
        assert!(
            frames.len() > 2,
            "{coding:?}: few frames for the whole body: {frames:?}"
        );
        assert_eq!(decode(coding, &data(&out)), text, "{coding:?}");
    }
}

#[test]
fn a_pause_flushes_what_was_written() {
    for coding in Coding::ALL {
        let (out, _) = run(
            coding,
            vec![
                Step::Data(b"data: first event\n\n"),
                Step::Pending,
                Step::Pending,
                Step::Data(b"data: second event\n\n"),
                Step::Pending,
                Step::Pending,
            ],
        );
        // The first pause flushes (data), the second is passed on
        // (pending); the same for the second event, then the stream's end.
        let first = match &out[0] {
            Out::Data(d) => d.clone(),
            other => panic!("{coding:?}: {other:?} first"),
        };
        assert!(matches!(out[1], Out::Pending), "{coding:?}: {out:?}");
        assert_eq!(
            decode_prefix(coding, &first),
            b"data: first event\n\n",
            "{coding:?}: the first event is decodable before the second arrives"
        );
        assert_eq!(
            decode(coding, &data(&out)),
            b"data: first event\n\ndata: second event\n\n"
        );
    }
}

#[test]
fn a_pause_without_new_input_sends_nothing() {
    for coding in Coding::ALL {
        let (out, _) = run(
            coding,
            vec![
                Step::Pending,
                Step::Data(b"x"),
                Step::Pending,
                Step::Pending,
            ],
        );
        let kinds: Vec<&str> = out
            .iter()
            .map(|o| match o {
                Out::Data(_) => "data",
                Out::Pending => "pending",
                _ => "other",
            })
            .collect();
        // Pending with nothing written: pending; after `x`, the pause
        // flushes it; the next pause has nothing new: pending; the end.
        assert_eq!(kinds, ["pending", "data", "pending", "data"], "{coding:?}");
    }
}

#[test]
fn an_empty_body_is_a_valid_empty_stream() {
    for coding in Coding::ALL {
        let (out, counters) = run(coding, vec![]);
        assert_eq!(decode(coding, &data(&out)), b"", "{coding:?}");
        assert_eq!(counters.bytes_in.get(), 0);
        // Empty data frames in the input are skipped.
        let (out, _) = run(coding, vec![Step::Data(b""), Step::Data(b"")]);
        assert_eq!(decode(coding, &data(&out)), b"", "{coding:?}");
    }
}

#[test]
fn trailers_follow_the_last_data() {
    for coding in Coding::ALL {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", "0".parse().unwrap());
        let (out, _) = run(
            coding,
            vec![Step::Data(TEXT), Step::Trailers(t), Step::Data(b"ignored")],
        );
        let Some(Out::Trailers(t)) = out.last() else {
            panic!("{coding:?}: {out:?}");
        };
        assert_eq!(t["grpc-status"], "0");
        assert!(
            matches!(out[out.len() - 2], Out::Data(_)),
            "{coding:?}: {out:?}"
        );
        assert_eq!(decode(coding, &data(&out)), TEXT, "{coding:?}");
    }
}

#[test]
fn an_error_mid_stream_ends_the_body_with_it() {
    for coding in Coding::ALL {
        let (out, _) = run(
            coding,
            vec![
                Step::Data(TEXT),
                Step::Pending,
                Step::Data(TEXT),
                Step::Fail,
                Step::Data(b"never"),
            ],
        );
        let Some(Out::Error(e)) = out.last() else {
            panic!("{coding:?}: {out:?}");
        };
        assert_eq!(e, "upstream reset");
        // What was sent before is a valid start of the stream.
        assert!(decode_prefix(coding, &data(&out)).starts_with(TEXT));
    }
}
