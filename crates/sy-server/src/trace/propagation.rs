//! Trace-context propagation, pure functions: parsing and formatting
//! `traceparent` (W3C Trace Context level 1), ids, and ratio sampling.

/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

/// The fields of a valid incoming `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// trace-id (never 0).
    pub trace_id: u128,
    /// parent-id: the caller's span (never 0).
    pub span_id: u64,
    /// trace-flags; bit 0 = sampled.
    pub flags: u8,
}

impl Parent {
    /// The caller recorded its span.
    pub fn sampled(&self) -> bool {
        self.flags & 1 != 0
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        // Upper case is invalid in traceparent.
        _ => None,
    }
}

fn hex_u128(s: &[u8]) -> Option<u128> {
    s.iter()
        .try_fold(0u128, |acc, &c| Some(acc << 4 | u128::from(hex_val(c)?)))
}

/// Parses a `traceparent` value per W3C Trace Context level 1: version
/// `00` is exactly 55 characters; a higher version may carry more fields
/// after a `-` (parsed as version 00, the rest ignored); version `ff`,
/// upper-case hex and all-zero ids are invalid.
pub fn parse_traceparent(v: &[u8]) -> Option<Parent> {
    if v.len() < TRACEPARENT_LEN {
        return None;
    }
    let version = hex_u128(&v[0..2])?;
    if version == 0xff {
        return None;
    }
    if v.len() > TRACEPARENT_LEN && (version == 0 || v[TRACEPARENT_LEN] != b'-') {
        return None;
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace_id = hex_u128(&v[3..35])?;
    let span_id = hex_u128(&v[36..52])? as u64;
    let flags = hex_u128(&v[53..55])? as u8;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        flags,
    })
}

/// Each byte's two lower-case hex digits (index: the byte).
pub(crate) const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    t
};

/// `N` bytes, big-endian, as `2 * N` lower-case hex digits into `out`
/// (two digits a table look-up: no per-digit shifts of a u128).
#[inline(always)]
fn put_hex<const N: usize>(out: &mut [u8], bytes: [u8; N]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

/// A version-00 `traceparent` value.
pub fn format_traceparent(trace_id: u128, span_id: u64, sampled: bool) -> [u8; TRACEPARENT_LEN] {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    put_hex(&mut out[3..35], trace_id.to_be_bytes());
    put_hex(&mut out[36..52], span_id.to_be_bytes());
    if sampled {
        out[54] = b'1';
    }
    out
}

/// A trace id in lower-case hex (32 characters), as logs and tracing UIs
/// show it.
pub fn trace_id_hex(trace_id: u128) -> String {
    let mut out = [0u8; 32];
    put_hex(&mut out, trace_id.to_be_bytes());
    out.iter().map(|&b| b as char).collect()
}

/// The threshold [`ratio_sampled`] compares against: `ratio` of 2^63.
pub fn ratio_bound(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        0
    } else if ratio >= 1.0 {
        u64::MAX
    } else {
        (ratio * (1u64 << 63) as f64) as u64
    }
}

/// The OpenTelemetry `TraceIdRatioBased` decision: the low 8 bytes of the
/// trace id, shifted right by one, below the bound. Every service using the
/// same ratio decides the same way for the same trace.
pub fn ratio_sampled(trace_id: u128, bound: u64) -> bool {
    ((trace_id as u64) >> 1) < bound
}

thread_local! {
    /// Ids come from a small fast generator per thread (xoshiro256++),
    /// seeded from the thread's cryptographic generator: ids need to be
    /// unique and uniformly spread (the ratio sampler reads the trace id's
    /// low bits), not unpredictable. The OpenTelemetry SDK's own
    /// `RandomIdGenerator` does the same.
    static IDS: std::cell::RefCell<rand::rngs::SmallRng> =
        std::cell::RefCell::new(rand::SeedableRng::from_rng(&mut rand::rng()));
}

fn next_id() -> u64 {
    IDS.with(|r| rand::RngCore::next_u64(&mut *r.borrow_mut()))
}

/// A random non-zero trace id (thread-local generator, no locks).
pub fn new_trace_id() -> u128 {
    loop {
        let id = u128::from(next_id()) << 64 | u128::from(next_id());
        if id != 0 {
            return id;
        }
    }
}

/// A random non-zero span id.
pub fn new_span_id() -> u64 {
    loop {
        let id = next_id();
        if id != 0 {
            return id;
        }
    }
}
