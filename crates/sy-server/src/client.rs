//! Switchyard's own HTTP/1.1 client: one keep-alive connection to an
//! upstream server, driven inside the task of the request that uses it.
//!
//! hyper's client runs every connection as a task of its own and feeds it
//! requests through a channel: each request and each body chunk cost a
//! wake-up across tasks (BENCHMARKS.md, "Where the CPU goes"). Here the
//! request's task writes the request, reads the response head and, through
//! [`ResponseBody`], the body as the client side asks for it: the whole
//! exchange is one state machine, as in nginx and HAProxy. ADR 0010 says
//! why this is written by hand.
//!
//! Parsing is sy-proto's ([`sy_proto::response`]): the head with httparse,
//! the body's framing by RFC 9112 §6.3, chunked bodies by a sans-IO
//! decoder. This module does the IO: a read buffer, a write buffer for the
//! request head, vectored writes of head and body data, and the hand-back
//! of a connection to its pool when a response has been read to its end.
//!
//! Depends on no other module of the crate but `io`.

#[cfg(test)]
mod tests;

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use sy_proto::response::{ChunkedDecoder, Fields, Framing, Step, parse_head};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;

use crate::io::{Metered, Stream};

/// Boxed error of a body (the same type as `body::BoxError`).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest response head read before giving up on it.
pub const MAX_HEAD: usize = 64 * 1024;
/// Read buffer size for heads and small bodies.
const READ_SMALL: usize = 4 * 1024;
/// Largest single read of a long body.
const READ_LARGE: usize = 64 * 1024;

/// Counts an open connection while it lives.
pub struct OpenGuard(Option<Arc<AtomicU64>>);

impl OpenGuard {
    /// Counts one more open connection in `count`, if given.
    pub fn new(count: Option<&Arc<AtomicU64>>) -> Self {
        if let Some(c) = count {
            c.fetch_add(1, Ordering::Relaxed);
        }
        OpenGuard(count.cloned())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Where a connection goes back once its response has been read to the end
/// (the upstream pool).
pub trait ReturnConn: Send + Sync {
    /// Takes back `conn` into the idle list of worker slot `slot`.
    fn give_back(&self, slot: usize, conn: Box<Conn>);
}

/// A pool and the worker slot a connection belongs to.
pub struct Returner {
    /// The pool.
    pub pool: Arc<dyn ReturnConn>,
    /// The worker slot.
    pub slot: usize,
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// The connection failed or closed before a whole response head came.
    Closed {
        /// The socket error, if there was one (else end of stream).
        io: Option<io::ErrorKind>,
        /// Nothing of the request body was read and nothing of a response
        /// arrived: the request can go again on another connection (if it
        /// is idempotent or was not written at all).
        unsent: bool,
        /// No byte of the request was written.
        nothing_written: bool,
    },
    /// The server's answer is not HTTP/1.x.
    Invalid(&'static str),
    /// The request body failed: the client's side or its size limit.
    Body(BoxError),
}

/// An HTTP/1.1 connection to an upstream server, idle or in use by one
/// request.
pub struct Conn {
    io: Metered<Stream>,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    uses: u32,
    _open: OpenGuard,
}

/// How the request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqFraming {
    Empty,
    Length(u64),
    Chunked,
}

/// The request side of an exchange in progress.
struct Out {
    framing: ReqFraming,
    /// Bytes of `wbuf` already written.
    pos: usize,
    /// Body data to write after `wbuf`.
    data: Bytes,
    /// Bytes of a chunk's closing CRLF still due after `data` (0..=2).
    crlf: usize,
    body_done: bool,
    /// The body was polled at least once (it cannot be replayed).
    body_polled: bool,
    written: usize,
    flushed: bool,
    head_request: bool,
    /// Some response bytes arrived.
    answered: bool,
}

impl Conn {
    /// Wraps a connected (and, for TLS, handshaken) stream.
    pub fn new(io: Metered<Stream>, open: OpenGuard) -> Box<Conn> {
        Box::new(Conn {
            io,
            rbuf: BytesMut::new(),
            wbuf: Vec::new(),
            uses: 0,
            _open: open,
        })
    }

    /// Whether it carried an earlier request.
    pub fn reused(&self) -> bool {
        self.uses > 0
    }

    /// The stream, for a protocol switch (WebSocket) handled elsewhere.
    pub fn into_io(self) -> (Metered<Stream>, OpenGuard) {
        (self.io, self._open)
    }

    /// Whether an idle connection can be used: the server has neither
    /// closed it nor sent anything unasked. Costs no system call when the
    /// socket has shown no activity since the last read.
    pub fn probe(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut rb = ReadBuf::new(&mut byte);
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut rb)
            .is_pending()
    }

    /// Sends `req` and waits for the response head. The body of the
    /// response reads from this connection; when it has been read to its
    /// end, the connection goes back through `ret` if it can carry another
    /// request. On error the connection is closed; `req` (whose body is
    /// untouched when [`SendError::Closed`] says `unsent`) stays the
    /// caller's.
    pub async fn send<B>(
        mut self: Box<Self>,
        req: &mut Request<B>,
        ret: Option<Returner>,
    ) -> Result<Response<ResponseBody>, SendError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let framing = self.encode_head(req);
        let mut out = Out {
            framing,
            pos: 0,
            data: Bytes::new(),
            crlf: 0,
            body_done: framing == ReqFraming::Empty,
            body_polled: false,
            written: 0,
            flushed: false,
            head_request: req.method() == Method::HEAD,
            answered: false,
        };
        let body = req.body_mut();
        let (parts, framing, keep_alive) =
            poll_fn(|cx| self.poll_exchange(cx, body, &mut out)).await?;
        self.uses = self.uses.saturating_add(1);
        // A response that came before the whole request was written ends
        // the connection's use.
        let ret = if keep_alive && out.flushed { ret } else { None };
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) if n <= self.rbuf.len() as u64 => {
                // `n` fits in the buffer, hence in usize.
                State::Whole(self.rbuf.split_to(n as usize).freeze())
            }
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(ChunkedDecoder::new()),
            Framing::Close => State::Close,
        };
        let mut body = ResponseBody {
            conn: Some(self),
            state,
            ret,
        };
        if matches!(body.state, State::Done | State::Whole(_)) {
            // Nothing more to read: the connection is free before the
            // client has even been answered.
            body.release();
        }
        Ok(Response::from_parts(parts, body))
    }

    /// Writes the request line and fields into `wbuf`; says how the body
    /// goes.
    fn encode_head<B: Body>(&mut self, req: &Request<B>) -> ReqFraming {
        let w = &mut self.wbuf;
        w.clear();
        w.extend_from_slice(req.method().as_str().as_bytes());
        w.push(b' ');
        match req.uri().path_and_query() {
            Some(pq) => w.extend_from_slice(pq.as_str().as_bytes()),
            None => w.push(b'/'),
        }
        w.extend_from_slice(b" HTTP/1.1\r\n");
        let mut has_length = None;
        for (name, value) in req.headers() {
            if name == http::header::CONTENT_LENGTH {
                has_length = std::str::from_utf8(value.as_bytes())
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            }
            w.extend_from_slice(name.as_str().as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(value.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        let body = req.body();
        let framing = if let Some(n) = has_length {
            if n == 0 {
                ReqFraming::Empty
            } else {
                ReqFraming::Length(n)
            }
        } else if body.is_end_stream() {
            // A method that defines a body gets an explicit empty one
            // (servers may answer 411 otherwise).
            if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
                w.extend_from_slice(b"content-length: 0\r\n");
            }
            ReqFraming::Empty
        } else if let Some(n) = body.size_hint().exact() {
            w.extend_from_slice(b"content-length: ");
            w.extend_from_slice(itoa(n, &mut [0u8; 20]));
            w.extend_from_slice(b"\r\n");
            if n == 0 {
                ReqFraming::Empty
            } else {
                ReqFraming::Length(n)
            }
        } else {
            w.extend_from_slice(b"transfer-encoding: chunked\r\n");
            ReqFraming::Chunked
        };
        w.extend_from_slice(b"\r\n");
        framing
    }

    /// Drives the exchange until a whole final response head is in:
    /// writes the request (head, then body as the client sends it) and
    /// reads at the same time, so an early answer is seen.
    fn poll_exchange<B>(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut B,
        out: &mut Out,
    ) -> Poll<Result<(http::response::Parts, Framing, bool), SendError>>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        loop {
            let mut progress = false;
            if !out.flushed {
                match self.poll_write(cx, body, out) {
                    Poll::Ready(Ok(())) => progress = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if !self.rbuf.is_empty() {
                let mut fields = Fields::new();
                match parse_head(&self.rbuf, out.head_request, &mut fields) {
                    Ok(Some(h)) if (100..200).contains(&h.status) => {
                        if h.status == 101 {
                            return Poll::Ready(Err(SendError::Invalid(
                                "upstream switched protocols unasked",
                            )));
                        }
                        // Interim responses (100 Continue, 103) are not passed on.
                        self.rbuf.advance(h.len);
                        continue;
                    }
                    Ok(Some(h)) => {
                        let head = self.rbuf.split_to(h.len).freeze();
                        let parts = response_parts(&head, &h, &fields)?;
                        return Poll::Ready(Ok((parts, h.framing, h.keep_alive)));
                    }
                    Ok(None) if self.rbuf.len() >= MAX_HEAD => {
                        return Poll::Ready(Err(SendError::Invalid("response head too large")));
                    }
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Err(SendError::Invalid(e.as_str()))),
                }
            }
            if self.rbuf.capacity() - self.rbuf.len() < 1024 {
                self.rbuf.reserve(READ_SMALL);
            }
            match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(out.closed(None))),
                Poll::Ready(Ok(_)) => {
                    out.answered = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(out.closed(Some(e.kind())))),
                Poll::Pending => {}
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// One step of writing the request: some bytes out, a body frame in,
    /// or the final flush. `Ready(Ok)` means progress.
    fn poll_write<B>(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut B,
        out: &mut Out,
    ) -> Poll<Result<(), SendError>>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        if out.pos < self.wbuf.len() || !out.data.is_empty() || out.crlf > 0 {
            let crlf = &b"\r\n"[2 - out.crlf..];
            let bufs = [
                IoSlice::new(&self.wbuf[out.pos..]),
                IoSlice::new(&out.data),
                IoSlice::new(crlf),
            ];
            let n = match ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &bufs)) {
                Ok(0) => return Poll::Ready(Err(out.closed(Some(io::ErrorKind::WriteZero)))),
                Ok(n) => n,
                Err(e) => return Poll::Ready(Err(out.closed(Some(e.kind())))),
            };
            out.written += n;
            let mut n = n;
            let head_left = self.wbuf.len() - out.pos;
            let k = n.min(head_left);
            out.pos += k;
            n -= k;
            let k = n.min(out.data.len());
            out.data.advance(k);
            n -= k;
            out.crlf -= n.min(out.crlf);
            if out.pos == self.wbuf.len() {
                self.wbuf.clear();
                out.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if !out.body_done {
            out.body_polled = true;
            let frame = match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                Some(Ok(f)) => f,
                Some(Err(e)) => return Poll::Ready(Err(SendError::Body(e.into()))),
                None => {
                    out.body_done = true;
                    match out.framing {
                        ReqFraming::Chunked => self.wbuf.extend_from_slice(b"0\r\n\r\n"),
                        ReqFraming::Length(left) if left > 0 => {
                            return Poll::Ready(Err(SendError::Body(
                                "request body shorter than its content-length".into(),
                            )));
                        }
                        _ => {}
                    }
                    return Poll::Ready(Ok(()));
                }
            };
            let data = match frame.into_data() {
                Ok(d) => d,
                Err(frame) => {
                    // Trailers go out only on a chunked body (RFC 9112 §7.1.2).
                    if let (ReqFraming::Chunked, Ok(t)) = (out.framing, frame.into_trailers()) {
                        out.body_done = true;
                        self.wbuf.extend_from_slice(b"0\r\n");
                        for (name, value) in &t {
                            self.wbuf.extend_from_slice(name.as_str().as_bytes());
                            self.wbuf.extend_from_slice(b": ");
                            self.wbuf.extend_from_slice(value.as_bytes());
                            self.wbuf.extend_from_slice(b"\r\n");
                        }
                        self.wbuf.extend_from_slice(b"\r\n");
                    }
                    return Poll::Ready(Ok(()));
                }
            };
            if data.is_empty() {
                return Poll::Ready(Ok(()));
            }
            match &mut out.framing {
                ReqFraming::Length(left) => {
                    let n = data.len() as u64;
                    if n > *left {
                        return Poll::Ready(Err(SendError::Body(
                            "request body longer than its content-length".into(),
                        )));
                    }
                    *left -= n;
                }
                ReqFraming::Chunked => {
                    let mut hex = [0u8; 16];
                    self.wbuf.extend_from_slice(hex_len(data.len(), &mut hex));
                    self.wbuf.extend_from_slice(b"\r\n");
                    out.crlf = 2;
                }
                ReqFraming::Empty => {
                    return Poll::Ready(Err(SendError::Body(
                        "request body longer than its content-length".into(),
                    )));
                }
            }
            out.data = data;
            return Poll::Ready(Ok(()));
        }
        match ready!(Pin::new(&mut self.io).poll_flush(cx)) {
            Ok(()) => {
                out.flushed = true;
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(out.closed(Some(e.kind())))),
        }
    }
}

impl Out {
    fn closed(&self, io: Option<io::ErrorKind>) -> SendError {
        SendError::Closed {
            io,
            unsent: !self.body_polled && !self.answered,
            nothing_written: self.written == 0,
        }
    }
}

/// Builds the response's status, version and fields from its head bytes.
fn response_parts(
    head: &Bytes,
    h: &sy_proto::response::Head,
    fields: &Fields,
) -> Result<http::response::Parts, SendError> {
    let status =
        StatusCode::from_u16(h.status).map_err(|_| SendError::Invalid("invalid status code"))?;
    let headers = field_map(head, fields).map_err(SendError::Invalid)?;
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts.version = if h.minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    parts.headers = headers;
    Ok(parts)
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn hex_len(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Where a response body stands.
enum State {
    /// Read to its end.
    Done,
    /// All of it was in the buffer with the head; not yet handed out.
    Whole(Bytes),
    /// This many bytes still to come.
    Length(u64),
    /// A chunked body.
    Chunked(ChunkedDecoder),
    /// Until the server closes.
    Close,
}

/// The body of an upstream response, read from its connection as it is
/// polled. Read to its end, it returns the connection to the pool (unless
/// the connection cannot carry another request); dropped half-way, it
/// closes the connection.
pub struct ResponseBody {
    conn: Option<Box<Conn>>,
    state: State,
    ret: Option<Returner>,
}

impl ResponseBody {
    /// The response is complete: give the connection back, or close it.
    fn release(&mut self) {
        let conn = self.conn.take();
        if let (Some(mut conn), Some(ret)) = (conn, self.ret.take())
            && conn.rbuf.is_empty()
        {
            conn.out_of_use();
            ret.pool.give_back(ret.slot, conn);
        }
    }

    fn fail(&mut self, msg: &'static str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        self.conn = None;
        self.ret = None;
        Poll::Ready(Some(Err(Box::new(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            msg,
        )))))
    }
}

impl Conn {
    /// Trims what an idle connection holds: a read buffer grown past the
    /// small size by a long body (empty here), and an oversized write
    /// buffer. A small read buffer is kept: the next response reads into
    /// its unused tail without allocating (releasing it cost about 550
    /// instructions a request).
    fn out_of_use(&mut self) {
        if self.rbuf.capacity() > READ_SMALL {
            self.rbuf = BytesMut::new();
        }
        if self.wbuf.capacity() > 4096 {
            self.wbuf = Vec::new();
        }
    }

    /// Reads more of a body, sized by what is still to come.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: u64) -> Poll<io::Result<usize>> {
        let want = (want.min(READ_LARGE as u64) as usize).max(READ_SMALL);
        if self.rbuf.capacity() - self.rbuf.len() < want / 2 {
            self.rbuf.reserve(want);
        }
        poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let conn = match (&mut this.state, this.conn.as_mut()) {
                (State::Done, _) => return Poll::Ready(None),
                (State::Whole(b), _) => {
                    let b = std::mem::take(b);
                    this.state = State::Done;
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                (_, Some(c)) => c,
                (_, None) => return this.fail("upstream connection lost"),
            };
            match &mut this.state {
                State::Length(left) => {
                    if !conn.rbuf.is_empty() {
                        let n = (*left).min(conn.rbuf.len() as u64);
                        *left -= n;
                        // At most rbuf.len().
                        let data = conn.rbuf.split_to(n as usize).freeze();
                        if *left == 0 {
                            this.state = State::Done;
                            this.release();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    let want = *left;
                    match ready!(conn.poll_fill(cx, want)) {
                        Ok(0) => return this.fail("upstream closed the connection mid-body"),
                        Ok(_) => {}
                        Err(e) => {
                            this.state = State::Done;
                            this.conn = None;
                            return Poll::Ready(Some(Err(Box::new(e))));
                        }
                    }
                }
                State::Chunked(dec) => match dec.step(&conn.rbuf) {
                    Ok(Step::Skip(n)) => conn.rbuf.advance(n),
                    Ok(Step::Data(n)) => {
                        let data = conn.rbuf.split_to(n).freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(Step::End { len }) => {
                        let section = conn.rbuf.split_to(len).freeze();
                        this.state = State::Done;
                        let trailers = trailer_map(&section);
                        this.release();
                        return Poll::Ready(match trailers {
                            Ok(None) => None,
                            Ok(Some(t)) => Some(Ok(Frame::trailers(t))),
                            Err(msg) => {
                                return this.fail(msg);
                            }
                        });
                    }
                    Ok(Step::NeedMore) => match ready!(conn.poll_fill(cx, 0)) {
                        Ok(0) => return this.fail("upstream closed the connection mid-body"),
                        Ok(_) => {}
                        Err(e) => {
                            this.state = State::Done;
                            this.conn = None;
                            return Poll::Ready(Some(Err(Box::new(e))));
                        }
                    },
                    Err(e) => return this.fail(e.as_str()),
                },
                State::Close => {
                    if !conn.rbuf.is_empty() {
                        let data = conn.rbuf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match ready!(conn.poll_fill(cx, READ_LARGE as u64)) {
                        Ok(0) => {
                            this.state = State::Done;
                            this.conn = None;
                            return Poll::Ready(None);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            this.state = State::Done;
                            this.conn = None;
                            return Poll::Ready(Some(Err(Box::new(e))));
                        }
                    }
                }
                State::Done | State::Whole(_) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Done => SizeHint::with_exact(0),
            State::Whole(b) => SizeHint::with_exact(b.len() as u64),
            State::Length(n) => SizeHint::with_exact(*n),
            State::Chunked(_) | State::Close => SizeHint::default(),
        }
    }
}

/// The trailer fields of a chunked body's final section, if any.
fn trailer_map(section: &Bytes) -> Result<Option<HeaderMap>, &'static str> {
    if section.len() <= 2 {
        return Ok(None);
    }
    let mut fields = Fields::new();
    sy_proto::response::parse_trailers(section, &mut fields).map_err(|e| e.as_str())?;
    field_map(section, &fields).map(Some)
}

/// The fields at `fields`' positions in `bytes`, as a header map whose
/// values share `bytes` (no copy).
fn field_map(bytes: &Bytes, fields: &Fields) -> Result<HeaderMap, &'static str> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name =
            HeaderName::from_bytes(&bytes[f.name.0..f.name.1]).map_err(|_| "invalid field name")?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(f.value.0..f.value.1))
            .map_err(|_| "invalid field value")?;
        map.append(name, value);
    }
    Ok(map)
}
