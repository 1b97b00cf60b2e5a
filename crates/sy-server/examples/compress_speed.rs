//! CPU per MiB and ratio of the `compress` filter's encoders (the same
//! `Encoder` the proxy runs), on a deterministic corpus: 4 MiB of JSON
//! shaped like API listings and 4 MiB of HTML-like product pages. Not part
//! of the test suite; BENCHMARKS.md records its output:
//!
//! ```sh
//! cargo run --release -p sy-server --example compress_speed
//! cargo run --release -p sy-server --example compress_speed -- --corpus DIR   # writes the corpus
//! ```
//!
//! CPU is the calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, so
//! other processes on the machine do not count), the best of 5 runs;
//! input goes in 16 KiB frames as a fast upstream delivers it, output is
//! drained as the body does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sy_policy::compress::Coding;
use sy_server::filter::compress::{Encoder, Levels};

const MIB: usize = 1 << 20;
const FRAME: usize = 16 * 1024;
const ROUNDS: usize = 5;

const DEFAULTS: Levels = Levels {
    gzip: 6,
    brotli: 4,
    zstd: 3,
};

/// A xorshift generator: the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
}

const WORDS: &[&str] = &[
    "switch",
    "yard",
    "signal",
    "track",
    "freight",
    "engine",
    "coupler",
    "ballast",
    "junction",
    "platform",
    "timetable",
    "carriage",
    "station",
    "depot",
    "siding",
    "gauge",
    "tender",
    "piston",
    "boiler",
    "whistle",
    "lantern",
    "crossing",
    "bridge",
    "tunnel",
    "viaduct",
    "cargo",
    "parcel",
    "express",
    "local",
    "night",
    "morning",
    "northern",
    "southern",
    "river",
    "valley",
    "summit",
    "harbour",
    "market",
    "copper",
    "timber",
    "grain",
    "coal",
    "steel",
    "wool",
    "salt",
    "tea",
    "blue",
    "red",
    "green",
    "silver",
    "quiet",
    "rapid",
    "heavy",
    "light",
    "old",
    "new",
    "long",
    "short",
    "early",
    "late",
    "first",
    "last",
    "inner",
    "outer",
    "upper",
    "lower",
    "west",
    "east",
];

/// JSON like a paginated API listing.
fn json(size: usize) -> Vec<u8> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = b"{\"page\":1,\"items\":[".to_vec();
    let mut id = 0u64;
    while out.len() < size {
        if id > 0 {
            out.push(b',');
        }
        id += 1;
        let tags: Vec<String> = (0..1 + r.below(4))
            .map(|_| format!("\"{}\"", r.pick(WORDS)))
            .collect();
        let item = format!(
            concat!(
                "{{\"id\":{},\"uuid\":\"{:016x}{:016x}\",\"name\":\"{} {}\",",
                "\"email\":\"{}.{}@example.com\",\"active\":{},\"score\":{}.{},",
                "\"tags\":[{}],\"created_at\":\"2026-{:02}-{:02}T{:02}:{:02}:{:02}Z\",",
                "\"address\":{{\"street\":\"{} {} Street\",\"city\":\"{}\",\"zip\":\"{:05}\"}}}}"
            ),
            id,
            r.next(),
            r.next(),
            r.pick(WORDS),
            r.pick(WORDS),
            r.pick(WORDS),
            id,
            r.below(2) == 0,
            r.below(100),
            r.below(1000),
            tags.join(","),
            1 + r.below(12),
            1 + r.below(28),
            r.below(24),
            r.below(60),
            r.below(60),
            1 + r.below(999),
            r.pick(WORDS),
            r.pick(WORDS),
            r.below(100_000),
        );
        out.extend_from_slice(item.as_bytes());
    }
    out.truncate(size);
    out
}

/// HTML like a product listing page, repeated with varying content.
fn html(size: usize) -> Vec<u8> {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut out = b"<!doctype html><html><head><meta charset=\"utf-8\"><title>Catalogue</title>\
<link rel=\"stylesheet\" href=\"/static/site.css\"></head><body><main class=\"grid\">\n"
        .to_vec();
    let mut id = 0u64;
    while out.len() < size {
        id += 1;
        let sentence: Vec<&str> = (0..8 + r.below(16)).map(|_| r.pick(WORDS)).collect();
        let card = format!(
            concat!(
                "<article class=\"card\" data-id=\"{}\">\n",
                "  <a href=\"/products/{}\"><img src=\"/img/{:x}.webp\" alt=\"{} {}\" loading=\"lazy\"></a>\n",
                "  <h2 class=\"card-title\">{} {}</h2>\n",
                "  <p class=\"card-text\">{}.</p>\n",
                "  <span class=\"price\">&euro;{}.{:02}</span>\n",
                "  <button class=\"btn btn-primary\" data-action=\"add-to-cart\">Add to cart</button>\n",
                "</article>\n"
            ),
            id,
            id,
            r.next(),
            r.pick(WORDS),
            r.pick(WORDS),
            r.pick(WORDS),
            r.pick(WORDS),
            sentence.join(" "),
            r.below(500),
            r.below(100),
        );
        out.extend_from_slice(card.as_bytes());
    }
    out.truncate(size);
    out
}

/// This thread's CPU time.
fn cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through the pointer,
    // which points to a live local of that type; the clock id is valid on
    // Linux, where this example runs.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// How the input reaches the encoder.
#[derive(Clone, Copy)]
struct Shape {
    /// Bytes per write.
    frame: usize,
    /// Flush after every frame (a body that pauses after each), else only
    /// at the end (a fast body: the inner body never pauses).
    flush_each: bool,
    /// Bytes per response: a new encoder for each.
    response: usize,
}

/// One stream, 16 KiB frames, no flush before the end.
const STREAM: Shape = Shape {
    frame: FRAME,
    flush_each: false,
    response: usize::MAX,
};

/// Compresses `input` shaped as `shape`: (output size, CPU time).
fn compress(coding: Coding, levels: &Levels, input: &[u8], shape: Shape) -> (usize, Duration) {
    let mut best = Duration::MAX;
    let mut size = 0;
    for _ in 0..ROUNDS {
        let start = cpu();
        let mut out = 0;
        for response in input.chunks(shape.response.min(input.len())) {
            let mut enc = Encoder::new(coding, levels).unwrap();
            for chunk in response.chunks(shape.frame) {
                enc.write(chunk).unwrap();
                if shape.flush_each {
                    enc.flush().unwrap();
                }
                let o = enc.output();
                if o.len() >= FRAME || shape.flush_each {
                    out += o.split().len();
                }
            }
            out += enc.finish().unwrap().len();
        }
        best = best.min(cpu() - start);
        size = out;
    }
    (size, best)
}

fn levels_with(coding: Coding, level: i32) -> Levels {
    let mut l = DEFAULTS;
    match coding {
        Coding::Gzip => l.gzip = level as u32,
        Coding::Br => l.brotli = level as u32,
        Coding::Zstd => l.zstd = level,
    }
    l
}

fn default_level(coding: Coding) -> i32 {
    match coding {
        Coding::Gzip => DEFAULTS.gzip as i32,
        Coding::Br => DEFAULTS.brotli as i32,
        Coding::Zstd => DEFAULTS.zstd,
    }
}

fn row(corpus: &str, coding: Coding, level: i32, input: &[u8], shape: Shape) {
    let (size, took) = compress(coding, &levels_with(coding, level), input, shape);
    let mib = input.len() as f64 / MIB as f64;
    let ms_per_mib = took.as_secs_f64() * 1000.0 / mib;
    println!(
        "| {corpus} | {} | {level} | {ms_per_mib:.1} | {:.0} | {:.3} | {:.1}% |",
        coding.token(),
        mib / took.as_secs_f64(),
        size as f64 / input.len() as f64,
        100.0 * (1.0 - size as f64 / input.len() as f64),
    );
}

/// Resident memory, in KiB (Linux).
fn rss_kib() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// `--memory CODING FEED`: KiB resident per stream of 64 encoders that
/// were each given FEED bytes of JSON.
fn memory(coding: Coding, feed: usize) {
    let input = json(feed);
    let before = rss_kib();
    let mut held: Vec<Encoder> = (0..64)
        .map(|_| Encoder::new(coding, &DEFAULTS).unwrap())
        .collect();
    for enc in &mut held {
        for chunk in input.chunks(FRAME) {
            enc.write(chunk).unwrap();
            enc.output().clear();
        }
    }
    println!("{}", rss_kib().saturating_sub(before) / held.len());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `--corpus DIR`: write the corpus out, to compare with other tools.
    if let [_, flag, dir] = args.as_slice()
        && flag == "--corpus"
    {
        std::fs::write(format!("{dir}/corpus.json"), json(4 * MIB)).unwrap();
        std::fs::write(format!("{dir}/corpus.html"), html(4 * MIB)).unwrap();
        return;
    }
    if let [_, flag, token, feed] = args.as_slice()
        && flag == "--memory"
    {
        let coding = Coding::from_token(token.as_bytes()).expect("br, zstd or gzip");
        memory(coding, feed.parse().expect("a byte count"));
        return;
    }
    let corpora = [("JSON", json(4 * MIB)), ("HTML", html(4 * MIB))];
    let header = "| corpus | coding | level | CPU ms / MiB | MiB/s | out / in | saved |\n|---|---|--:|--:|--:|--:|--:|";

    println!(
        "## Default levels: one 4 MiB stream in 16 KiB frames, no flush until the end\n\n{header}"
    );
    for (name, input) in &corpora {
        for coding in Coding::ALL {
            row(name, coding, default_level(coding), input, STREAM);
        }
    }

    println!(
        "\n## Default levels: the same corpus as 16 KiB responses (a new encoder each)\n\n{header}"
    );
    for (name, input) in &corpora {
        for coding in Coding::ALL {
            let shape = Shape {
                response: 16 * 1024,
                ..STREAM
            };
            row(name, coding, default_level(coding), input, shape);
        }
    }

    println!("\n## Levels (JSON)\n\n{header}");
    let (name, input) = &corpora[0];
    for (coding, levels) in [
        (Coding::Gzip, &[1, 4, 6, 9][..]),
        (Coding::Br, &[0, 1, 3, 4, 5, 6, 9, 11][..]),
        (Coding::Zstd, &[1, 3, 6, 9, 15, 19][..]),
    ] {
        for &level in levels {
            // Level 11 is slow: a quarter of the corpus is enough.
            let input = if coding == Coding::Br && level >= 10 {
                &input[..MIB]
            } else {
                &input[..]
            };
            row(name, coding, level, input, STREAM);
        }
    }

    // Brotli's blocks hold at most 1 MiB of input with the 512 KiB window;
    // single responses up to that size show the levels as clients see
    // most of them.
    println!("\n## Brotli levels on one response of 256 KiB and of 1 MiB (JSON)\n\n{header}");
    for size in [256 * 1024, MIB] {
        for level in [4, 5, 6] {
            let label = format!("JSON, {} KiB", size / 1024);
            row(&label, Coding::Br, level, &input[..size], STREAM);
        }
    }

    println!("\n## Flushing after every frame (JSON, default levels)\n\n{header}");
    for frame in [16 * 1024, 1024] {
        for coding in Coding::ALL {
            let label = format!("JSON, flush per {} KiB", frame / 1024);
            let shape = Shape {
                frame,
                flush_each: true,
                ..STREAM
            };
            row(&label, coding, default_level(coding), input, shape);
        }
    }

    // Each in a process of its own: memory freed by one would be reused,
    // unseen, by the next.
    println!("\n## Memory per stream (64 encoders, each given 4 KiB or 1 MiB of JSON)\n");
    println!(
        "| coding | level | KiB resident per stream after 4 KiB | after 1 MiB |\n|---|--:|--:|--:|"
    );
    let exe = std::env::current_exe().unwrap();
    for coding in Coding::ALL {
        let per = |feed: usize| {
            let out = std::process::Command::new(&exe)
                .args(["--memory", coding.token(), &feed.to_string()])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        println!(
            "| {} | {} | {} | {} |",
            coding.token(),
            default_level(coding),
            per(4096),
            per(MIB)
        );
    }
}
