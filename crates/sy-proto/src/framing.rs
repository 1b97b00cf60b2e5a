//! Request framing scanner: finds HTTP/1.x requests whose body framing is
//! ambiguous, so the proxy can answer 400 instead of guessing.
//!
//! hyper silently resolves two kinds of ambiguous framing and strips the
//! evidence before a handler sees the request: a request with both
//! `Content-Length` and `Transfer-Encoding` (it uses chunked), and a repeated,
//! identical `Content-Length` (it keeps one). A front end and a back end that
//! resolve these differently can be made to disagree on where a request ends
//! (request smuggling), so the proxy refuses them. [`FramingScanner`] reads
//! the raw client bytes in the order hyper reads them and yields one
//! [`Verdict`] per request head, in order.
//!
//! The scanner must find message boundaries exactly where hyper (1.x, with
//! httparse's default request parser settings) finds them, or its verdicts
//! would be attributed to the wrong requests. So:
//!
//! - A head is the first non-empty line and the lines after it, up to the
//!   first empty line; lines end in `\n` with an optional `\r` before it, and
//!   empty lines before the request line are skipped (RFC 9112 §2.2).
//! - A body is chunked when the head has `Transfer-Encoding` with `chunked`
//!   last, else `Content-Length` bytes long, else empty (RFC 9112 §6.3).
//! - Chunked bodies are read with hyper's own byte-level rules: size lines
//!   need `\r\n`, a bare `\n` in an extension is an error, and a trailer line
//!   ends only at `\r\n`.
//!
//! The scanner does not check everything hyper checks. Where hyper rejects
//! the input instead (it answers 400 and closes the connection), nothing the
//! scanner reports afterwards is ever read. Where the scanner notices such
//! input itself (a `Content-Length` hyper cannot parse, `Transfer-Encoding`
//! without `chunked` last, a bad chunk, whitespace before a colon, a bare
//! `\r`), it stops rather than second-guess, reporting `Ok` for a head it was
//! in. It also stops after a head that may turn the connection into a tunnel
//! (`CONNECT`, or `Upgrade` with `Connection: upgrade`), since what follows
//! need not be HTTP; if the server does not switch protocols after all, later
//! requests on that connection get no verdict.
//!
//! Cost: body bytes are skipped by counting (O(1) per read), line ends and
//! colons are found with `memchr`, names are compared only when their length
//! is that of a framing header, and only the values of `Content-Length`,
//! `Transfer-Encoding` and `Connection` are read byte by byte. Work is O(n) in
//! the bytes fed, with no recursion; the state is about 100 bytes and `feed`
//! never allocates.

mod fields;
#[cfg(test)]
mod tests;

use fields::{ContentLength, TokenList};
use memchr::{memchr, memchr2};

/// What the scanner concluded about one request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The framing is unambiguous, or the head is malformed in a way hyper
    /// rejects by itself.
    Ok,
    /// `Content-Length` appears more than once, or together with
    /// `Transfer-Encoding`: answer 400 and close the connection.
    Ambiguous,
}

/// Longest header name the scanner needs to recognise (`transfer-encoding`).
const NAME_CAP: usize = 17;

/// Method (and the space after it) that turns a connection into a tunnel.
const CONNECT: &[u8] = b"CONNECT ";

/// Header whose value the scanner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentLength,
    TransferEncoding,
    Connection,
}

/// Header name the scanner acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
}

impl Known {
    /// Which known header `name` is, ignoring case; only whole names count.
    fn of(name: &[u8]) -> Option<Self> {
        let (want, known): (&[u8], _) = match name.len() {
            7 => (b"upgrade", Self::Upgrade),
            10 => (b"connection", Self::Connection),
            14 => (b"content-length", Self::ContentLength),
            17 => (b"transfer-encoding", Self::TransferEncoding),
            _ => return None,
        };
        // The first byte turns most same-length names away cheaply.
        let first = |n: &[u8]| n.first().map(u8::to_ascii_lowercase);
        (first(name) == first(want) && name.eq_ignore_ascii_case(want)).then_some(known)
    }
}

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages: skipping empty lines before a request line.
    Idle,
    /// Between messages, after a `\r`: a `\n` must follow.
    IdleCr,
    /// In the request line; this many bytes of [`CONNECT`] matched so far.
    Method(u8),
    /// In a head line whose remaining bytes do not matter.
    SkipLine,
    /// At the start of a header line, or of the empty line ending the head.
    LineStart,
    /// After a `\r` at the start of a line: the head ends if `\n` follows.
    LineStartCr,
    /// In a header name.
    Name,
    /// In the value of a header the scanner reads.
    Value(Field),
    /// In a `Content-Length` body: this many bytes left.
    Body(u64),
    /// Chunked body states, named after hyper's `ChunkedState`.
    ChunkStart,
    ChunkSize,
    ChunkSizeLws,
    ChunkExt,
    ChunkSizeLf,
    ChunkData(u64),
    ChunkDataCr,
    ChunkDataLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
    /// Stopped tracking: every further byte is ignored.
    Done,
}

/// What the current head said about framing so far.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    content_lengths: u32,
    transfer_encodings: u32,
    /// The `Content-Length` value; `None` when it is not a valid length.
    length: Option<u64>,
    /// The last `Transfer-Encoding` header ends with `chunked`.
    chunked: bool,
    upgrade: bool,
    connection_upgrade: bool,
    connect: bool,
}

/// Incremental, allocation-free (after construction) scanner of an HTTP/1.x
/// request byte stream.
///
/// Feed it every chunk read from the client, in order, and pop one
/// [`Verdict`] per request the HTTP server parses. After
/// [`is_done`](Self::is_done) no more verdicts come: the caller decides what
/// to do with requests that have none (see the module docs for when that
/// happens).
#[derive(Debug, Clone)]
pub struct FramingScanner {
    state: State,
    head: Head,
    /// The first [`NAME_CAP`] bytes of a header name split over reads.
    name: [u8; NAME_CAP],
    /// Length of the whole header name so far (saturating).
    name_len: usize,
    /// Last byte of the header name so far.
    name_last: u8,
    content_length: ContentLength,
    tokens: TokenList,
    chunk_size: u64,
}

impl Default for FramingScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl FramingScanner {
    /// A scanner at the start of a connection.
    pub fn new() -> Self {
        Self {
            state: State::Idle,
            head: Head::default(),
            name: [0; NAME_CAP],
            name_len: 0,
            name_last: 0,
            content_length: ContentLength::new(),
            tokens: TokenList::new(),
            chunk_size: 0,
        }
    }

    /// Feeds the next bytes read from the client. Calls `on_head(verdict)`
    /// once per request head completed within these bytes, in order.
    pub fn feed(&mut self, bytes: &[u8], mut on_head: impl FnMut(Verdict)) {
        let mut rest = bytes;
        while let Some(&b) = rest.first() {
            let used = match self.state {
                State::Done => return,
                State::Idle => match b {
                    b'\n' => 1,
                    b'\r' => self.go(State::IdleCr, 1),
                    _ => {
                        self.head = Head::default();
                        self.method(rest, 0)
                    }
                },
                // httparse rejects a bare `\r`; no head was started.
                State::IdleCr => self.go(if b == b'\n' { State::Idle } else { State::Done }, 1),
                State::Method(matched) => self.method(rest, matched),
                State::SkipLine => match memchr(b'\n', rest) {
                    Some(at) => self.go(State::LineStart, at.saturating_add(1)),
                    None => rest.len(),
                },
                State::LineStart => match b {
                    b'\r' => self.go(State::LineStartCr, 1),
                    b'\n' => self.end_head(&mut on_head, 1),
                    // Obsolete line folding, or whitespace before a name:
                    // hyper rejects both in requests.
                    b' ' | b'\t' => self.give_up_head(&mut on_head),
                    _ => {
                        self.name_len = 0;
                        self.name(rest, &mut on_head)
                    }
                },
                State::LineStartCr => match b {
                    b'\n' => self.end_head(&mut on_head, 1),
                    _ => self.give_up_head(&mut on_head),
                },
                State::Name => self.name(rest, &mut on_head),
                State::Value(field) => self.value(rest, field),
                State::Body(left) => {
                    let (used, left) = skip(rest, left);
                    let next = if left == 0 {
                        State::Idle
                    } else {
                        State::Body(left)
                    };
                    self.go(next, used)
                }
                _ => self.chunked(rest, b),
            };
            rest = rest.get(used..).unwrap_or_default();
        }
    }

    /// True once the scanner stopped tracking (after an upgrade request such
    /// as WebSocket, a CONNECT, an unparsable head, or an ambiguous one):
    /// further bytes are ignored.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// True between messages, with no byte of a next one seen: a scanner
    /// here is in the same state as a new one (see [`new`](Self::new)).
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// Moves to `state`, having consumed `used` bytes.
    fn go(&mut self, state: State, used: usize) -> usize {
        self.state = state;
        used
    }

    /// Compares the request line's method with `CONNECT`.
    fn method(&mut self, rest: &[u8], matched: u8) -> usize {
        let mut matched = usize::from(matched);
        for (used, &b) in rest.iter().enumerate() {
            if CONNECT.get(matched) != Some(&b) {
                // Leave this byte to `SkipLine`: it may end the line.
                return self.go(State::SkipLine, used);
            }
            matched = matched.saturating_add(1);
            if matched == CONNECT.len() {
                self.head.connect = true;
                return self.go(State::SkipLine, used.saturating_add(1));
            }
        }
        let matched = u8::try_from(matched).unwrap_or(u8::MAX);
        self.go(State::Method(matched), rest.len())
    }

    /// Reads a header name up to its colon. A name that arrives whole is
    /// compared where it lies; one split over reads keeps its first
    /// [`NAME_CAP`] bytes in `self.name`.
    fn name(&mut self, rest: &[u8], on_head: &mut impl FnMut(Verdict)) -> usize {
        let end = memchr2(b':', b'\n', rest);
        let part = end.and_then(|at| rest.get(..at)).unwrap_or(rest);
        let whole = self.name_len == 0 && end.is_some();
        if !whole {
            let room = self.name.get_mut(self.name_len..).unwrap_or_default();
            for (slot, &b) in room.iter_mut().zip(part) {
                *slot = b;
            }
        }
        if let Some(&b) = part.last() {
            self.name_last = b;
        }
        self.name_len = self.name_len.saturating_add(part.len());
        match end.and_then(|at| rest.get(at)) {
            None => self.go(State::Name, part.len()),
            // Whitespace before the colon (RFC 9112 §5.1), an empty name, or
            // no colon at all: hyper rejects the head.
            Some(b'\n') => self.give_up_head(on_head),
            Some(_) if self.name_len == 0 || matches!(self.name_last, b' ' | b'\t') => {
                self.give_up_head(on_head)
            }
            Some(_) => {
                let name = if whole {
                    part
                } else {
                    self.name.get(..self.name_len).unwrap_or_default()
                };
                self.start_value(Known::of(name), part.len().saturating_add(1))
            }
        }
    }

    /// After a colon: notes a framing header and decides whether its value
    /// matters.
    fn start_value(&mut self, name: Option<Known>, used: usize) -> usize {
        let state = match name {
            Some(Known::ContentLength) => {
                self.head.content_lengths = self.head.content_lengths.saturating_add(1);
                self.content_length = ContentLength::new();
                State::Value(Field::ContentLength)
            }
            Some(Known::TransferEncoding) => {
                self.head.transfer_encodings = self.head.transfer_encodings.saturating_add(1);
                self.tokens = TokenList::new();
                State::Value(Field::TransferEncoding)
            }
            Some(Known::Connection) => {
                self.tokens = TokenList::new();
                State::Value(Field::Connection)
            }
            Some(Known::Upgrade) => {
                self.head.upgrade = true;
                State::SkipLine
            }
            None => State::SkipLine,
        };
        self.go(state, used)
    }

    /// Reads the value of a header that matters, up to the end of its line.
    fn value(&mut self, rest: &[u8], field: Field) -> usize {
        let Some(end) = memchr(b'\n', rest) else {
            match field {
                Field::ContentLength => rest.iter().for_each(|&b| self.content_length.push(b)),
                Field::TransferEncoding => self.tokens.push_all(rest, b"chunked"),
                Field::Connection => self.tokens.push_all(rest, b"upgrade"),
            }
            return rest.len();
        };
        let part = rest.get(..end).unwrap_or(rest);
        match field {
            Field::ContentLength => {
                part.iter().for_each(|&b| self.content_length.push(b));
                self.head.length = self.content_length.finish();
            }
            // As in hyper, the last Transfer-Encoding header decides.
            Field::TransferEncoding => {
                self.head.chunked = self.tokens.finish_with(part, b"chunked").1;
            }
            Field::Connection => {
                self.head.connection_upgrade |= self.tokens.finish_with(part, b"upgrade").0;
            }
        }
        self.go(State::LineStart, end.saturating_add(1))
    }

    /// The empty line ending a head: reports its verdict and picks the body.
    fn end_head(&mut self, on_head: &mut impl FnMut(Verdict), used: usize) -> usize {
        let head = self.head;
        if head.content_lengths >= 2 || (head.content_lengths >= 1 && head.transfer_encodings >= 1)
        {
            on_head(Verdict::Ambiguous);
            return self.go(State::Done, used);
        }
        on_head(Verdict::Ok);
        let next = if head.connect || (head.upgrade && head.connection_upgrade) {
            State::Done
        } else if head.transfer_encodings > 0 {
            // Not chunked last: hyper answers 400 and closes.
            self.chunk_size = 0;
            if head.chunked {
                State::ChunkStart
            } else {
                State::Done
            }
        } else if head.content_lengths > 0 {
            match head.length {
                Some(0) => State::Idle,
                Some(n) => State::Body(n),
                // Not a valid length: hyper answers 400 and closes.
                None => State::Done,
            }
        } else {
            State::Idle
        };
        self.go(next, used)
    }

    /// A head hyper will reject: report it as not ours to judge and stop.
    fn give_up_head(&mut self, on_head: &mut impl FnMut(Verdict)) -> usize {
        on_head(Verdict::Ok);
        self.go(State::Done, 0)
    }

    /// One step of a chunked body, following hyper's decoder byte for byte.
    /// Wherever hyper fails the body (and closes the connection), stop.
    fn chunked(&mut self, rest: &[u8], b: u8) -> usize {
        let next = match (self.state, b) {
            (State::ChunkStart, _) => match hex(b) {
                Some(digit) => {
                    self.chunk_size = digit;
                    State::ChunkSize
                }
                None => State::Done,
            },
            (State::ChunkSize, _) if hex(b).is_some() => {
                let size =
                    hex(b).and_then(|digit| self.chunk_size.checked_mul(16)?.checked_add(digit));
                match size {
                    Some(size) => {
                        self.chunk_size = size;
                        State::ChunkSize
                    }
                    None => State::Done,
                }
            }
            (State::ChunkSize | State::ChunkSizeLws, b' ' | b'\t') => State::ChunkSizeLws,
            (State::ChunkSize | State::ChunkSizeLws, b';') => State::ChunkExt,
            (State::ChunkSize | State::ChunkSizeLws, b'\r') => State::ChunkSizeLf,
            (State::ChunkExt, _) => {
                return match memchr2(b'\r', b'\n', rest).map(|at| (at, rest.get(at))) {
                    Some((at, Some(b'\r'))) => self.go(State::ChunkSizeLf, at.saturating_add(1)),
                    Some(_) => self.go(State::Done, 0),
                    None => rest.len(),
                };
            }
            (State::ChunkSizeLf, b'\n') if self.chunk_size == 0 => State::EndCr,
            (State::ChunkSizeLf, b'\n') => State::ChunkData(self.chunk_size),
            (State::ChunkData(left), _) => {
                let (used, left) = skip(rest, left);
                let next = if left == 0 {
                    State::ChunkDataCr
                } else {
                    State::ChunkData(left)
                };
                return self.go(next, used);
            }
            (State::ChunkDataCr, b'\r') => State::ChunkDataLf,
            (State::ChunkDataLf, b'\n') => {
                self.chunk_size = 0;
                State::ChunkStart
            }
            (State::EndCr, b'\r') => State::EndLf,
            // Any other byte, even `\n`, starts a trailer line.
            (State::EndCr, _) => State::Trailer,
            (State::Trailer, _) => {
                return match memchr(b'\r', rest) {
                    Some(at) => self.go(State::TrailerLf, at.saturating_add(1)),
                    None => rest.len(),
                };
            }
            (State::TrailerLf, b'\n') => State::EndCr,
            (State::EndLf, b'\n') => State::Idle,
            _ => State::Done,
        };
        self.go(next, 1)
    }
}

/// Skips up to `left` body bytes of `rest`: (bytes used, bytes still left).
fn skip(rest: &[u8], left: u64) -> (usize, u64) {
    let avail = u64::try_from(rest.len()).unwrap_or(u64::MAX);
    let take = left.min(avail);
    (usize::try_from(take).unwrap_or(rest.len()), left - take)
}

/// The value of a hex digit.
fn hex(b: u8) -> Option<u64> {
    char::from(b).to_digit(16).map(u64::from)
}
