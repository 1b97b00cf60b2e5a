//! The dashboard's time series.
//!
//! The request path bumps cumulative [`Counters`] (one per route, one per
//! upstream; resolved once per snapshot, so it does no lookup): a request
//! count, 4xx and 5xx counts and a latency histogram, a few relaxed atomic
//! adds in all. Once a second the control thread calls
//! [`Stats::sample`], which diffs every counter against its previous
//! reading and appends one [`Point`] (requests per second, 5xx and 4xx
//! shares, p50 and p99 over that second) to a ring of [`POINTS`] points,
//! and records the connection gauges it is given. Listeners have no
//! counters of their own: the sampler is handed the totals of their
//! `listener_requests_total` counters ([`ListenerReading`]), which count
//! every answer, routed or not, and diffs those (no latency). [`Stats::json`]
//! renders the rings for `GET /api/stats`.
//!
//! The registry is keyed by route and upstream name and lives outside the
//! snapshot, so a series survives reloads; it is forgotten once no
//! snapshot refers to its counters any more.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};
use sy_policy::quantile::{BUCKETS, LatencyHistogram, quantile_of};

/// Points kept per series: 5 minutes of 1 s samples.
pub const POINTS: usize = 300;

/// Samples closer together than this are skipped (a delayed timer that
/// fires twice in a row would otherwise make a near-zero interval and a
/// meaningless rate).
const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Cumulative counts of one route's or one upstream's traffic.
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    latency: LatencyHistogram,
}

impl Counters {
    /// Counts one response with `status` that took `latency` (3 relaxed
    /// atomic adds at most).
    #[inline]
    pub fn record(&self, status: u16, latency: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match status {
            400..=499 => {
                self.client_errors.fetch_add(1, Ordering::Relaxed);
            }
            500..=599 => {
                self.server_errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        self.latency
            .record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Counts an attempt that got no response at all (connect failure,
    /// timeout, reset): a request and a server error, no latency.
    #[inline]
    pub fn record_failure(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.server_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted since the counters were created.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn read(&self, buckets: &mut [u64; BUCKETS]) -> Totals {
        self.latency.counts(buckets);
        Totals {
            requests: self.requests.load(Ordering::Relaxed),
            client_errors: self.client_errors.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    requests: u64,
    client_errors: u64,
    server_errors: u64,
}

/// One second of one series.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Point {
    /// Requests per second.
    pub rps: f64,
    /// Share of the requests answered 5xx (or, upstream, failed without
    /// an answer), 0..=1; None without requests.
    pub error_rate: Option<f64>,
    /// Share answered 4xx, 0..=1; None without requests.
    pub client_error_rate: Option<f64>,
    /// Median latency, ms (upper bound of its histogram bucket); None
    /// without a latency sample.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
}

/// A [`Point`] as kept in a ring: 20 bytes, NaN for None.
#[derive(Debug, Clone, Copy)]
struct Packed([f32; 5]);

impl From<Point> for Packed {
    fn from(p: Point) -> Self {
        let f = |x: Option<f64>| x.map_or(f32::NAN, |x| x as f32);
        Packed([
            p.rps as f32,
            f(p.error_rate),
            f(p.client_error_rate),
            f(p.p50_ms),
            f(p.p99_ms),
        ])
    }
}

impl From<&Packed> for Point {
    fn from(p: &Packed) -> Self {
        let f = |x: f32| (!x.is_nan()).then_some(f64::from(x));
        let [rps, e, c, p50, p99] = p.0;
        Point {
            rps: f64::from(rps),
            error_rate: f(e),
            client_error_rate: f(c),
            p50_ms: f(p50),
            p99_ms: f(p99),
        }
    }
}

/// A series: the counters and what the sampler remembers of them.
struct Entry {
    counters: Arc<Counters>,
    prev_at: Instant,
    prev: Totals,
    prev_buckets: Box<[u64; BUCKETS]>,
    points: VecDeque<Packed>,
}

impl Entry {
    fn new(counters: Arc<Counters>, now: Instant) -> Self {
        Entry {
            counters,
            prev_at: now,
            prev: Totals::default(),
            prev_buckets: Box::new([0; BUCKETS]),
            points: VecDeque::with_capacity(POINTS),
        }
    }

    /// The point since the previous reading (or since creation).
    fn sample(&mut self, now: Instant) -> Point {
        let mut cur = [0u64; BUCKETS];
        let t = self.counters.read(&mut cur);
        let mut diff = [0u64; BUCKETS];
        for ((d, c), p) in diff.iter_mut().zip(&cur).zip(self.prev_buckets.iter()) {
            *d = c.saturating_sub(*p);
        }
        let secs = now.saturating_duration_since(self.prev_at).as_secs_f64();
        let requests = t.requests.saturating_sub(self.prev.requests);
        let share = |n: u64| (requests > 0).then(|| (n as f64 / requests as f64).min(1.0));
        let ms = |q: f64| quantile_of(&diff, q, 1).map(|ns| ns as f64 / 1e6);
        let p = Point {
            rps: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            error_rate: share(t.server_errors.saturating_sub(self.prev.server_errors)),
            client_error_rate: share(t.client_errors.saturating_sub(self.prev.client_errors)),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
        };
        self.prev_at = now;
        self.prev = t;
        *self.prev_buckets = cur;
        p
    }
}

fn push<T>(ring: &mut VecDeque<T>, v: T) {
    if ring.len() >= POINTS {
        ring.pop_front();
    }
    ring.push_back(v);
}

/// A listener's series: its answers by status class at the previous
/// reading, and the points.
struct ListenerEntry {
    prev_at: Instant,
    prev: [u64; 5],
    points: VecDeque<Packed>,
}

impl ListenerEntry {
    /// The point since the previous reading: requests per second and the
    /// 5xx and 4xx shares (classes in `metrics::CLASSES` order).
    fn sample(&mut self, now: Instant, cur: [u64; 5]) -> Point {
        let mut d = [0u64; 5];
        for ((d, c), p) in d.iter_mut().zip(cur).zip(self.prev) {
            *d = c.saturating_sub(p);
        }
        let requests: u64 = d.iter().sum();
        let secs = now.saturating_duration_since(self.prev_at).as_secs_f64();
        let share = |n: u64| (requests > 0).then(|| (n as f64 / requests as f64).min(1.0));
        self.prev_at = now;
        self.prev = cur;
        Point {
            rps: if secs > 0.0 {
                requests as f64 / secs
            } else {
                0.0
            },
            error_rate: share(d[4]),
            client_error_rate: share(d[3]),
            p50_ms: None,
            p99_ms: None,
        }
    }
}

/// What [`Stats::sample`] is told about one listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerReading<'a> {
    /// Listener name.
    pub name: &'a str,
    /// Client connections open now.
    pub connections: u64,
    /// Answers so far by status class (1xx..5xx), routed or not.
    pub answers: [u64; 5],
}

#[derive(Default)]
struct Inner {
    /// When each sample was taken (Unix ms), oldest first.
    ticks: VecDeque<u64>,
    last: Option<Instant>,
    routes: HashMap<String, Entry>,
    upstreams: HashMap<String, Entry>,
    listeners: HashMap<String, ListenerEntry>,
    listener_conns: HashMap<String, VecDeque<u64>>,
    upstream_conns: HashMap<String, VecDeque<u64>>,
}

/// The registry of dashboard series (see the module docs).
#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

/// What to list in [`Stats::json`]: one entry per series, in order, with
/// the fields to render besides the series.
pub struct Listing {
    /// Routes: name and extra fields.
    pub routes: Vec<(String, Map<String, Value>)>,
    /// Upstreams.
    pub upstreams: Vec<(String, Map<String, Value>)>,
    /// Listeners.
    pub listeners: Vec<(String, Map<String, Value>)>,
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The counters of route `name` (created on first use; the same ones
    /// for every snapshot while some snapshot holds them).
    pub fn route(&self, name: &str) -> Arc<Counters> {
        let mut g = self.lock();
        series(&mut g.routes, name)
    }

    /// The counters of upstream `name`.
    pub fn upstream(&self, name: &str) -> Arc<Counters> {
        let mut g = self.lock();
        series(&mut g.upstreams, name)
    }

    /// Takes one sample now: a point for every series, and the current
    /// connection counts (`listeners`: client connections and answers per
    /// listener; `upstreams`: open connections per upstream).
    pub fn sample(&self, listeners: &[ListenerReading<'_>], upstreams: &[(&str, u64)]) {
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.sample_at(Instant::now(), unix_ms, listeners, upstreams);
    }

    /// [`Stats::sample`] at a given time (for tests).
    pub fn sample_at(
        &self,
        now: Instant,
        unix_ms: u64,
        listeners: &[ListenerReading<'_>],
        upstreams: &[(&str, u64)],
    ) {
        let mut g = self.lock();
        if g.last
            .is_some_and(|l| now.saturating_duration_since(l) < MIN_INTERVAL)
        {
            return;
        }
        g.last = Some(now);
        let inner = &mut *g;
        push(&mut inner.ticks, unix_ms);
        for map in [&mut inner.routes, &mut inner.upstreams] {
            // Nobody but the registry holds the counters: no snapshot uses
            // the series any more.
            map.retain(|_, e| Arc::strong_count(&e.counters) > 1);
            for e in map.values_mut() {
                let p = e.sample(now);
                push(&mut e.points, Packed::from(p));
            }
        }
        // A listener's first reading is its baseline (its counters may
        // predate it: a reload brought the name back); points follow.
        inner
            .listeners
            .retain(|k, _| listeners.iter().any(|l| l.name == k));
        for l in listeners {
            match inner.listeners.get_mut(l.name) {
                Some(e) => {
                    let p = e.sample(now, l.answers);
                    push(&mut e.points, Packed::from(p));
                }
                None => {
                    let e = ListenerEntry {
                        prev_at: now,
                        prev: l.answers,
                        points: VecDeque::with_capacity(POINTS),
                    };
                    inner.listeners.insert(l.name.to_string(), e);
                }
            }
        }
        let conns: Vec<(&str, u64)> = listeners.iter().map(|l| (l.name, l.connections)).collect();
        gauges(&mut inner.listener_conns, &conns);
        gauges(&mut inner.upstream_conns, upstreams);
    }

    /// The series listed in `listing`, restricted to the samples taken
    /// after `since` (Unix ms; None = all kept). Every array has one entry
    /// per element of `t`; a series younger than the window is padded with
    /// nulls at the front.
    pub fn json(&self, since: Option<u64>, listing: Listing) -> Value {
        let g = self.lock();
        let n = match since {
            Some(s) => g.ticks.iter().rev().take_while(|&&t| t > s).count(),
            None => g.ticks.len(),
        };
        let t: Vec<u64> = g.ticks.iter().skip(g.ticks.len() - n).copied().collect();
        let render = |map: &HashMap<String, Entry>,
                      conns: Option<&HashMap<String, VecDeque<u64>>>,
                      list: Vec<(String, Map<String, Value>)>| {
            list.into_iter()
                .map(|(name, mut obj)| {
                    let e = map.get(&name);
                    obj.insert(
                        "requests_total".into(),
                        json!(e.map_or(0, |e| e.counters.requests())),
                    );
                    point_columns(&mut obj, e.map(|e| &e.points), n, true);
                    if let Some(c) = conns {
                        obj.insert("connections".into(), column(c.get(&name), n, &|v| json!(v)));
                    }
                    obj.insert("name".into(), json!(name));
                    Value::Object(obj)
                })
                .collect::<Vec<_>>()
        };
        let routes = render(&g.routes, None, listing.routes);
        let upstreams = render(&g.upstreams, Some(&g.upstream_conns), listing.upstreams);
        let listeners: Vec<Value> = listing
            .listeners
            .into_iter()
            .map(|(name, mut obj)| {
                let e = g.listeners.get(&name);
                // Since the process started (the counters outlive reloads).
                obj.insert(
                    "requests_total".into(),
                    json!(e.map_or(0, |e| e.prev.iter().sum::<u64>())),
                );
                point_columns(&mut obj, e.map(|e| &e.points), n, false);
                obj.insert(
                    "connections".into(),
                    column(g.listener_conns.get(&name), n, &|v| json!(v)),
                );
                obj.insert("name".into(), json!(name));
                Value::Object(obj)
            })
            .collect();
        json!({
            "interval_ms": 1000,
            "points": POINTS,
            "t": t,
            "routes": routes,
            "upstreams": upstreams,
            "listeners": listeners,
        })
    }
}

/// The columns of a series' points (`rps`, `error_rate`,
/// `client_error_rate`, and with `latency` `p50_ms` and `p99_ms`) into `obj`.
fn point_columns(
    obj: &mut Map<String, Value>,
    pts: Option<&VecDeque<Packed>>,
    n: usize,
    latency: bool,
) {
    let col = |f: &dyn Fn(&Point) -> Value| column(pts, n, &|p: &Packed| f(&Point::from(p)));
    obj.insert("rps".into(), col(&|p| round(p.rps, 100.0)));
    obj.insert("error_rate".into(), col(&|p| opt(p.error_rate, 10_000.0)));
    obj.insert(
        "client_error_rate".into(),
        col(&|p| opt(p.client_error_rate, 10_000.0)),
    );
    if latency {
        obj.insert("p50_ms".into(), col(&|p| opt(p.p50_ms, 1000.0)));
        obj.insert("p99_ms".into(), col(&|p| opt(p.p99_ms, 1000.0)));
    }
}

fn series(map: &mut HashMap<String, Entry>, name: &str) -> Arc<Counters> {
    map.entry(name.to_string())
        .or_insert_with(|| Entry::new(Arc::default(), Instant::now()))
        .counters
        .clone()
}

/// Appends each current value to its ring; forgets rings not listed.
fn gauges(rings: &mut HashMap<String, VecDeque<u64>>, now: &[(&str, u64)]) {
    rings.retain(|k, _| now.iter().any(|(n, _)| n == k));
    for (name, v) in now {
        match rings.get_mut(*name) {
            Some(r) => push(r, *v),
            None => {
                let mut r = VecDeque::with_capacity(POINTS);
                r.push_back(*v);
                rings.insert((*name).to_string(), r);
            }
        }
    }
}

/// The last `n` values of `ring` through `f`, padded with nulls at the
/// front to `n`.
fn column<T>(ring: Option<&VecDeque<T>>, n: usize, f: &dyn Fn(&T) -> Value) -> Value {
    let have = ring.map_or(0, |r| r.len().min(n));
    let mut out = Vec::with_capacity(n);
    out.resize(n - have, Value::Null);
    if let Some(r) = ring {
        out.extend(r.iter().skip(r.len() - have).map(f));
    }
    Value::Array(out)
}

fn round(x: f64, scale: f64) -> Value {
    json!((x * scale).round() / scale)
}

fn opt(x: Option<f64>, scale: f64) -> Value {
    x.map_or(Value::Null, |x| round(x, scale))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn listing(routes: &[&str], upstreams: &[&str], listeners: &[&str]) -> Listing {
        let l = |v: &[&str]| v.iter().map(|n| (n.to_string(), Map::new())).collect();
        Listing {
            routes: l(routes),
            upstreams: l(upstreams),
            listeners: l(listeners),
        }
    }

    fn reading(name: &str, connections: u64, answers: [u64; 5]) -> ListenerReading<'_> {
        ListenerReading {
            name,
            connections,
            answers,
        }
    }

    #[test]
    fn listener_series_diff_the_class_totals() {
        let s = Stats::default();
        let t0 = Instant::now();
        // The first reading is the baseline, whatever the totals (a
        // listener brought back by a reload keeps its old counters).
        s.sample_at(t0, 1_000, &[reading("main", 1, [0, 500, 0, 90, 10])], &[]);
        let sec = Duration::from_secs(1);
        // 40 answers in a second: 10 of them 404 (no route), 2 a 503.
        let r = [0, 528, 0, 100, 12];
        s.sample_at(t0 + sec, 2_000, &[reading("main", 2, r)], &[]);
        // A quiet second.
        s.sample_at(t0 + 2 * sec, 3_000, &[reading("main", 2, r)], &[]);
        let v = s.json(None, listing(&[], &[], &["main"]));
        let l = &v["listeners"][0];
        assert_eq!(l["name"], "main");
        assert_eq!(l["requests_total"], 640);
        assert_eq!(l["rps"], json!([null, 40.0, 0.0]), "{l}");
        assert_eq!(l["client_error_rate"], json!([null, 0.25, null]));
        assert_eq!(l["error_rate"], json!([null, 0.05, null]));
        assert_eq!(l["connections"], json!([1, 2, 2]));
        assert!(l.get("p99_ms").is_none(), "no latency per listener: {l}");
        // A listener gone from the configuration is forgotten.
        s.sample_at(t0 + 3 * sec, 4_000, &[], &[]);
        let v = s.json(None, listing(&[], &[], &["main"]));
        assert_eq!(v["listeners"][0]["requests_total"], 0);
        assert!(
            v["listeners"][0]["rps"]
                .as_array()
                .unwrap()
                .iter()
                .all(Value::is_null)
        );
    }

    #[test]
    fn points_are_per_second_differences() {
        let s = Stats::default();
        let r = s.route("api");
        let t0 = Instant::now();
        s.sample_at(t0, 1_000, &[], &[]);
        for _ in 0..80 {
            r.record(200, 10 * MS);
        }
        for _ in 0..15 {
            r.record(404, MS);
        }
        for _ in 0..5 {
            r.record(503, 100 * MS);
        }
        s.sample_at(t0 + Duration::from_secs(1), 2_000, &[], &[]);
        let v = s.json(None, listing(&["api"], &[], &[]));
        assert_eq!(v["t"], json!([1_000, 2_000]));
        let a = &v["routes"][0];
        assert_eq!(a["name"], "api");
        assert_eq!(a["requests_total"], 100);
        assert_eq!(a["rps"][1], 100.0, "{a}");
        assert_eq!(a["error_rate"][1], 0.05);
        assert_eq!(a["client_error_rate"][1], 0.15);
        // p50 in the 10 ms bucket, p99 in the 100 ms one (bounds <= +12.5 %).
        let p50 = a["p50_ms"][1].as_f64().unwrap();
        assert!((10.0..=11.25).contains(&p50), "{p50}");
        let p99 = a["p99_ms"][1].as_f64().unwrap();
        assert!((100.0..=112.5).contains(&p99), "{p99}");

        // A quiet second: no rate, no latency, zero rps; a slower second
        // counts its own requests over its own length.
        s.sample_at(t0 + Duration::from_secs(2), 3_000, &[], &[]);
        r.record_failure();
        r.record(200, MS);
        s.sample_at(t0 + Duration::from_secs(4), 5_000, &[], &[]);
        let v = s.json(Some(2_000), listing(&["api"], &[], &[]));
        let a = &v["routes"][0];
        assert_eq!(v["t"], json!([3_000, 5_000]));
        assert_eq!(a["rps"], json!([0.0, 1.0]));
        assert_eq!(a["error_rate"], json!([null, 0.5]));
        assert_eq!(a["p99_ms"][0], Value::Null);
        assert_eq!(a["requests_total"], 102);
    }

    #[test]
    fn close_samples_are_skipped() {
        let s = Stats::default();
        let r = s.route("a");
        let t0 = Instant::now();
        s.sample_at(t0, 1, &[], &[]);
        r.record(200, MS);
        s.sample_at(t0 + Duration::from_millis(100), 2, &[], &[]);
        s.sample_at(t0 + Duration::from_millis(1000), 3, &[], &[]);
        let v = s.json(None, listing(&["a"], &[], &[]));
        assert_eq!(v["t"], json!([1, 3]));
        assert_eq!(v["routes"][0]["rps"], json!([0.0, 1.0]));
    }

    #[test]
    fn rings_keep_five_minutes_and_pad_young_series() {
        let s = Stats::default();
        let old = s.upstream("old");
        let t0 = Instant::now();
        for i in 0..(POINTS as u64 + 20) {
            old.record(200, MS);
            s.sample_at(
                t0 + Duration::from_secs(i),
                i,
                &[reading("main", i, [0; 5])],
                &[("old", 2)],
            );
        }
        let young = s.upstream("young");
        young.record(500, MS);
        s.sample_at(
            t0 + Duration::from_secs(400),
            400,
            &[reading("main", 7, [0; 5])],
            &[("old", 3)],
        );
        let v = s.json(
            None,
            listing(&[], &["old", "young", "missing"], &["main", "gone"]),
        );
        let t = v["t"].as_array().unwrap();
        assert_eq!(t.len(), POINTS);
        assert_eq!(t[POINTS - 1], 400);
        let ups = v["upstreams"].as_array().unwrap();
        assert_eq!(ups[0]["rps"].as_array().unwrap().len(), POINTS);
        assert_eq!(ups[0]["connections"][POINTS - 1], 3);
        let y = ups[1]["error_rate"].as_array().unwrap();
        assert_eq!(y.len(), POINTS);
        assert_eq!(y[POINTS - 1], 1.0);
        assert!(y[..POINTS - 1].iter().all(Value::is_null));
        // Unknown names render as all-null series.
        assert!(ups[2]["rps"].as_array().unwrap().iter().all(Value::is_null));
        assert_eq!(ups[2]["requests_total"], 0);
        let l = v["listeners"].as_array().unwrap();
        assert_eq!(l[0]["name"], "main");
        assert_eq!(l[0]["connections"][POINTS - 1], 7);
        assert!(
            l[1]["connections"]
                .as_array()
                .unwrap()
                .iter()
                .all(Value::is_null)
        );
        // Nothing newer than the last tick.
        let v = s.json(Some(400), listing(&["x"], &["old"], &["main"]));
        assert_eq!(v["t"], json!([]));
        assert_eq!(v["upstreams"][0]["rps"], json!([]));
    }

    #[test]
    fn series_survive_while_referenced() {
        let s = Stats::default();
        let a = s.route("a");
        // A reload resolves the same counters again.
        assert!(Arc::ptr_eq(&a, &s.route("a")));
        a.record(200, MS);
        let t0 = Instant::now();
        s.sample_at(t0, 1, &[], &[]);
        drop(a);
        // No snapshot holds "a" any more: forgotten at the next sample.
        s.sample_at(t0 + Duration::from_secs(1), 2, &[], &[]);
        let b = s.route("a");
        assert_eq!(b.requests(), 0);
    }
}
