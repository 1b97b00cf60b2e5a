//! The streaming encoder body: compresses each data frame of the inner
//! body as it arrives and passes on what the encoder produced; never
//! holds the whole body.
//!
//! Flushing (docs/adr/0007-compression.md): the encoder is flushed only
//! when the inner body has nothing ready (its poll returns `Pending`) and
//! input was written since the last flush. A fast body is compressed in
//! large blocks (the best ratio), while a slow one (server-sent events, a
//! long poll) still sends every piece as soon as its producer pauses.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::buf::Writer;
use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame};
use prometheus_client::metrics::counter::Counter;
use sy_policy::compress::Coding;

use crate::body::{BoxError, ProxyBody};

/// Output at least this large is sent on without waiting for the inner
/// body to pause: one TLS record, and a bound on what a poll holds.
const EMIT_AT: usize = 16 * 1024;

/// brotli's window: 2^19 = 512 KiB (ngx_brotli's default). The format's
/// default of 4 MiB gains little on web responses and costs memory per
/// response in flight.
const BROTLI_LGWIN: u32 = 19;

/// zstd's window: 2^19 = 512 KiB, as brotli's. Level 3 alone would take
/// 2 MiB for a body of unknown length; the tables (about 800 KiB at level
/// 3) come on top. Web responses rarely gain from matches further back.
const ZSTD_WINDOW_LOG: u32 = 19;

/// The internal buffer of brotli's writer.
const BROTLI_BUFFER: usize = 16 * 1024;

/// Where an encoder writes: a buffer drained after each step.
type Sink = Writer<BytesMut>;

/// The levels of each coding, as configured.
#[derive(Debug, Clone, Copy)]
pub struct Levels {
    /// gzip 1..=9.
    pub gzip: u32,
    /// brotli 0..=11.
    pub brotli: u32,
    /// zstd 1..=19.
    pub zstd: i32,
}

/// One coding's encoder, writing into a buffer that [`Encoder::output`]
/// drains: the compression the filter does, usable on its own (the
/// `compress_speed` example measures it).
pub enum Encoder {
    /// gzip (flate2 over zlib-rs).
    Gzip(flate2::write::GzEncoder<Sink>),
    /// brotli, 512 KiB window.
    Br(Box<brotli::CompressorWriter<Sink>>),
    /// zstd (libzstd), 512 KiB window.
    Zstd(zstd::stream::write::Encoder<'static, Sink>),
}

impl Encoder {
    /// A new encoder for `coding` at its configured level.
    pub fn new(coding: Coding, levels: &Levels) -> io::Result<Encoder> {
        let sink = BytesMut::new().writer();
        Ok(match coding {
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::new(levels.gzip),
            )),
            Coding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                sink,
                BROTLI_BUFFER,
                levels.brotli,
                BROTLI_LGWIN,
            ))),
            Coding::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(sink, levels.zstd)?;
                e.set_parameter(zstd::stream::raw::CParameter::WindowLog(ZSTD_WINDOW_LOG))?;
                Encoder::Zstd(e)
            }
        })
    }

    /// Compresses `data` (output may stay inside the encoder).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(data),
            Encoder::Br(e) => e.write_all(data),
            Encoder::Zstd(e) => e.write_all(data),
        }
    }

    /// Makes everything written so far decodable by the client.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Br(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }

    /// Ends the stream; returns the last output.
    pub fn finish(self) -> io::Result<Bytes> {
        let sink = match self {
            Encoder::Gzip(e) => e.finish()?,
            // into_inner finishes the stream; a brotli write to memory
            // cannot fail.
            Encoder::Br(e) => e.into_inner(),
            Encoder::Zstd(e) => e.finish()?,
        };
        Ok(sink.into_inner().freeze())
    }

    /// The output produced so far and not yet taken.
    pub fn output(&mut self) -> &mut BytesMut {
        match self {
            Encoder::Gzip(e) => e.get_mut().get_mut(),
            Encoder::Br(e) => e.get_mut().get_mut(),
            Encoder::Zstd(e) => e.get_mut().get_mut(),
        }
    }
}

/// The byte counters of one coding on one route.
#[derive(Debug, Clone, Default)]
pub struct ByteCounters {
    /// Bytes given to the encoder.
    pub bytes_in: Counter,
    /// Bytes it produced.
    pub bytes_out: Counter,
}

/// A response body compressed as it streams (sent as [`ProxyBody::Boxed`]).
pub type Encoded = Encoding<ProxyBody>;

/// A body `B` compressed as it streams. Generic only so that unit tests
/// can drive it with a scripted body; the proxy uses [`Encoded`].
pub struct Encoding<B> {
    inner: B,
    /// None once the stream is finished (or failed).
    enc: Option<Encoder>,
    /// Input was written since the last flush.
    unflushed: bool,
    /// The inner body's trailers, sent after the last data.
    trailers: Option<HeaderMap>,
    counters: ByteCounters,
}

impl<B> Encoding<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    /// Compresses `inner` with `enc`.
    pub(crate) fn new(inner: B, enc: Encoder, counters: ByteCounters) -> Self {
        Encoding {
            inner,
            enc: Some(enc),
            unflushed: false,
            trailers: None,
            counters,
        }
    }

    /// The output so far as a data frame, if there is any.
    fn take(&mut self) -> Option<Frame<Bytes>> {
        let out = self.enc.as_mut()?.output();
        if out.is_empty() {
            return None;
        }
        let data = out.split().freeze();
        self.counters.bytes_out.inc_by(data.len() as u64);
        Some(Frame::data(data))
    }

    /// Finishes the stream: the last data frame, if any.
    fn finish(&mut self) -> Result<Option<Frame<Bytes>>, BoxError> {
        let Some(enc) = self.enc.take() else {
            return Ok(None);
        };
        let last = enc.finish()?;
        if last.is_empty() {
            return Ok(None);
        }
        self.counters.bytes_out.inc_by(last.len() as u64);
        Ok(Some(Frame::data(last)))
    }

    /// Ends the body with `e`: nothing more is sent after it.
    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.enc = None;
        self.trailers = None;
        Poll::Ready(Some(Err(e.into())))
    }

    /// `Body::poll_frame`.
    fn poll_encoded(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(enc) = self.enc.as_mut() else {
                return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => {
                    if self.unflushed {
                        self.unflushed = false;
                        if let Err(e) = enc.flush() {
                            return self.fail(e);
                        }
                        if let Some(frame) = self.take() {
                            return Poll::Ready(Some(Ok(frame)));
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if data.is_empty() {
                            continue;
                        }
                        self.counters.bytes_in.inc_by(data.len() as u64);
                        if let Err(e) = enc.write(&data) {
                            return self.fail(e);
                        }
                        self.unflushed = true;
                        if enc.output().len() >= EMIT_AT
                            && let Some(frame) = self.take()
                        {
                            return Poll::Ready(Some(Ok(frame)));
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body: finish, then send them.
                        self.trailers = frame.into_trailers().ok();
                        match self.finish() {
                            Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                            Ok(None) => {}
                            Err(e) => return self.fail(e),
                        }
                    }
                },
                Poll::Ready(None) => match self.finish() {
                    Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                    Ok(None) => {}
                    Err(e) => return self.fail(e),
                },
                Poll::Ready(Some(Err(e))) => return self.fail(e),
            }
        }
    }

    /// Nothing more will come.
    fn ended(&self) -> bool {
        self.enc.is_none() && self.trailers.is_none()
    }
}

impl<B> Body for Encoding<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.get_mut().poll_encoded(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ended()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // The encoded length is known only at the end.
        http_body::SizeHint::default()
    }
}

#[cfg(test)]
pub(super) mod tests;
