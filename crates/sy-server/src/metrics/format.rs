//! The two text formats `GET /metrics` answers in, and the choice between
//! them by the `Accept` header (see docs/metrics.md, "Formats").
//!
//! Why a conversion and not a second encoder: prometheus-client (0.24)
//! encodes OpenMetrics 1.0 only, and the per-type encoders behind its
//! `EncodeMetric` trait are private to it, so encoding the Prometheus text
//! format directly would mean re-implementing the sampling of every metric
//! type (histogram buckets included) outside the library. Both formats are
//! line based and differ by a few rules per line, so [`to_prometheus`]
//! rewrites the encoder's output: a pure function, tested below on the real
//! encoder output of every metric type Switchyard uses. A scrape costs one
//! more pass over the text, on the admin listener, never on the request
//! path.

use std::fmt::Write as _;

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text (what the registry encodes).
    OpenMetrics,
    /// The Prometheus text exposition format 0.0.4.
    Prometheus,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The format to answer a request whose `Accept` header values are
/// `accept` (none: no header).
///
/// Each format gets the quality (`q`, default 1) of the most specific
/// media range that matches it: `application/openmetrics-text` (version
/// absent, `1.0.0` or `0.0.1`) or `application/*` for OpenMetrics,
/// `text/plain` (version absent or `0.0.4`) or `text/*` for the Prometheus
/// format, `*/*` for both; among equally specific ranges the highest `q`
/// counts. The format with the higher quality wins. The Prometheus text
/// format is the default: it wins ties (`*/*`, or both listed alike), and
/// answers requests without `Accept` and requests that accept neither
/// format (rather than a 406 a scraper could not use).
pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a str>) -> Format {
    // Per format: (specificity, q) of the best range so far.
    let mut om: Option<(u8, f32)> = None;
    let mut prom: Option<(u8, f32)> = None;
    for range in accept.into_iter().flat_map(|v| v.split(',')) {
        let Some(r) = MediaRange::parse(range) else {
            continue;
        };
        for (slot, format) in [
            (&mut om, Format::OpenMetrics),
            (&mut prom, Format::Prometheus),
        ] {
            let Some(spec) = r.specificity_for(format) else {
                continue;
            };
            let better = match *slot {
                None => true,
                Some((s, q)) => spec > s || (spec == s && r.q > q),
            };
            if better {
                *slot = Some((spec, r.q));
            }
        }
    }
    let q = |s: Option<(u8, f32)>| s.map_or(0.0, |(_, q)| q);
    if q(om) > q(prom) {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// One media range of an `Accept` header.
struct MediaRange<'a> {
    /// `type/subtype`, lowercased.
    essence: String,
    /// The `version` parameter, unquoted.
    version: Option<&'a str>,
    /// 0..=1.
    q: f32,
}

impl<'a> MediaRange<'a> {
    /// None when it is not `type/subtype` or its `q` is not a number.
    fn parse(s: &'a str) -> Option<Self> {
        let mut parts = s.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        if !essence.contains('/') {
            return None;
        }
        let (mut version, mut q) = (None, 1.0f32);
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "version" => version = Some(v),
                "q" => {
                    q = v
                        .parse::<f32>()
                        .ok()
                        .filter(|q| q.is_finite())?
                        .clamp(0.0, 1.0)
                }
                _ => {}
            }
        }
        Some(MediaRange {
            essence,
            version,
            q,
        })
    }

    /// How specifically this range names `format` (3: type and version,
    /// 2: type, 1: `type/*`, 0: `*/*`); None when it does not match it.
    fn specificity_for(&self, format: Format) -> Option<u8> {
        let (exact, wildcard, versions): (&str, &str, &[&str]) = match format {
            Format::OpenMetrics => (
                "application/openmetrics-text",
                "application/*",
                &["1.0.0", "0.0.1"],
            ),
            Format::Prometheus => ("text/plain", "text/*", &["0.0.4"]),
        };
        if self.essence == exact {
            return match self.version {
                None => Some(2),
                Some(v) if versions.contains(&v) => Some(3),
                Some(_) => None,
            };
        }
        if self.essence == wildcard {
            return Some(1);
        }
        (self.essence == "*/*").then_some(0)
    }
}

/// A family as declared by its `# TYPE` line.
struct Family {
    /// The OpenMetrics family name.
    name: String,
    /// The OpenMetrics type.
    kind: String,
}

impl Family {
    /// The family's name and type in the Prometheus format: counters are
    /// named with the `_total` their samples carry, info families with
    /// `_info`; types the Prometheus format lacks become the nearest one.
    fn prometheus(&self) -> (String, &'static str) {
        let n = &self.name;
        match self.kind.as_str() {
            "counter" => (format!("{n}_total"), "counter"),
            "gauge" => (n.clone(), "gauge"),
            "histogram" | "gaugehistogram" => (n.clone(), "histogram"),
            "summary" => (n.clone(), "summary"),
            "info" => (format!("{n}_info"), "gauge"),
            "stateset" => (n.clone(), "gauge"),
            _ => (n.clone(), "untyped"),
        }
    }

    /// The Prometheus name of sample `sample` of this family; None for a
    /// sample the Prometheus format has no place for (`_created`).
    fn sample_name<'s>(&self, sample: &'s str) -> Option<std::borrow::Cow<'s, str>> {
        let suffix = sample.strip_prefix(self.name.as_str()).unwrap_or("");
        match (self.kind.as_str(), suffix) {
            ("counter" | "histogram" | "summary" | "gaugehistogram", "_created") => None,
            ("gaugehistogram", "_gsum") => Some(format!("{}_sum", self.name).into()),
            ("gaugehistogram", "_gcount") => Some(format!("{}_count", self.name).into()),
            _ => Some(sample.into()),
        }
    }
}

/// Rewrites OpenMetrics text (as prometheus-client encodes it) into the
/// Prometheus text format 0.0.4: no `# EOF` or `# UNIT` lines; counter
/// families named with their `_total` suffix in `# HELP` and `# TYPE`;
/// `info` and `stateset` as gauges, `gaugehistogram` as histogram,
/// `unknown` as `untyped`; no `_created` samples and no exemplars;
/// timestamps in milliseconds; `# HELP` text escaped the 0.0.4 way (only
/// `\\` and `\n`). Label values are copied: both formats escape them alike.
pub fn to_prometheus(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut family: Option<Family> = None;
    // A `# HELP` waits for its `# TYPE` (which names the family the
    // Prometheus way); (name, text).
    let mut help: Option<(&str, &str)> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            match keyword {
                "HELP" => {
                    flush_help(&mut out, help.take(), None);
                    help = Some(rest.split_once(' ').unwrap_or((rest, "")));
                }
                "TYPE" => {
                    let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
                    let f = Family {
                        name: name.to_string(),
                        kind: kind.trim().to_string(),
                    };
                    let (pname, ptype) = f.prometheus();
                    match help.take() {
                        Some((n, text)) if n == name => {
                            flush_help(&mut out, Some((n, text)), Some(&pname));
                        }
                        other => flush_help(&mut out, other, None),
                    }
                    let _ = writeln!(out, "# TYPE {pname} {ptype}");
                    family = Some(f);
                }
                // `# UNIT`, `# EOF`: OpenMetrics only.
                _ => {}
            }
            continue;
        }
        flush_help(&mut out, help.take(), None);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        sample(&mut out, line, family.as_ref());
    }
    flush_help(&mut out, help, None);
    out
}

/// Writes a pending `# HELP` line, under `name` when given.
fn flush_help(out: &mut String, help: Option<(&str, &str)>, name: Option<&str>) {
    let Some((n, text)) = help else {
        return;
    };
    out.push_str("# HELP ");
    out.push_str(name.unwrap_or(n));
    out.push(' ');
    // OpenMetrics escapes `\`, `"` and line feeds; 0.0.4 only the first
    // and last: unescape `\"`.
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some(e) => {
                out.push('\\');
                out.push(e);
            }
            None => out.push_str("\\\\"),
        }
    }
    out.push('\n');
}

/// Rewrites one sample line: `name{labels} value [timestamp] [# exemplar]`.
fn sample(out: &mut String, line: &str, family: Option<&Family>) {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let labels = if rest.starts_with('{') {
        let end = labels_end(rest);
        let l = &rest[..end];
        rest = &rest[end..];
        l
    } else {
        ""
    };
    // The exemplar follows ` # `, after the value and timestamp.
    let rest = rest.split(" # ").next().unwrap_or("");
    let mut fields = rest.split_ascii_whitespace();
    let Some(value) = fields.next() else {
        return;
    };
    let name = match family {
        Some(f) if name.starts_with(f.name.as_str()) => match f.sample_name(name) {
            Some(n) => n,
            None => return,
        },
        _ => name.into(),
    };
    out.push_str(&name);
    out.push_str(labels);
    out.push(' ');
    out.push_str(value);
    // Seconds in OpenMetrics, milliseconds in 0.0.4.
    if let Some(ts) = fields.next().and_then(|t| t.parse::<f64>().ok()) {
        let _ = write!(out, " {}", (ts * 1000.0).round() as i64);
    }
    out.push('\n');
}

/// The length of the label set at the start of `s` (`{...}`, the braces
/// included), skipping quoted values with their escapes.
fn labels_end(s: &str) -> usize {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return i + 1,
            _ => {}
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::metrics::{ListenerClass, RouteLabel, VersionLabel};
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::exemplar::CounterWithExemplar;
    use prometheus_client::metrics::family::Family as PFamily;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::metrics::info::Info;
    use prometheus_client::registry::{Registry, Unit};

    /// The registry's real OpenMetrics output for one registration.
    fn encoded(register: impl FnOnce(&mut Registry)) -> String {
        let mut r = Registry::with_prefix("switchyard");
        register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        out
    }

    fn listener(name: &str, class: &str) -> ListenerClass {
        ListenerClass {
            listener: name.into(),
            class: class.into(),
        }
    }

    /// (what, OpenMetrics from the encoder, the expected 0.0.4 text).
    fn cases() -> Vec<(&'static str, String, &'static str)> {
        let counter = PFamily::<ListenerClass, Counter>::default();
        counter.get_or_create(&listener("main", "4xx")).inc_by(3);
        let plain = Counter::<u64>::default();
        plain.inc();
        let gauge = PFamily::<RouteLabel, Gauge>::default();
        gauge
            .get_or_create(&RouteLabel {
                route: "api".into(),
            })
            .set(-2);
        let hist =
            PFamily::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new([0.1, 1.0])
            });
        hist.get_or_create(&RouteLabel {
            route: "api".into(),
        })
        .observe(0.5);
        let build = PFamily::<VersionLabel, Gauge>::default();
        build
            .get_or_create(&VersionLabel {
                version: "0.1.0".into(),
            })
            .set(1);
        let escaped = PFamily::<ListenerClass, Counter>::default();
        escaped.get_or_create(&listener("a\"b\\c\nd}", "2xx")).inc();
        let exemplar = CounterWithExemplar::<Vec<(String, String)>>::default();
        exemplar.inc_by(2, Some(vec![("trace_id".into(), "abc".into())]), None);
        vec![
            (
                "counter family: TYPE and HELP named with _total",
                encoded(|r| r.register("listener_requests", "Answers", counter.clone())),
                "# HELP switchyard_listener_requests_total Answers.\n\
                 # TYPE switchyard_listener_requests_total counter\n\
                 switchyard_listener_requests_total{listener=\"main\",class=\"4xx\"} 3\n",
            ),
            (
                "counter without labels",
                encoded(|r| r.register("admin_unauthorized", "Refused", plain.clone())),
                "# HELP switchyard_admin_unauthorized_total Refused.\n\
                 # TYPE switchyard_admin_unauthorized_total counter\n\
                 switchyard_admin_unauthorized_total 1\n",
            ),
            (
                "gauge",
                encoded(|r| r.register("route_active_requests", "Waiting", gauge.clone())),
                "# HELP switchyard_route_active_requests Waiting.\n\
                 # TYPE switchyard_route_active_requests gauge\n\
                 switchyard_route_active_requests{route=\"api\"} -2\n",
            ),
            (
                "histogram with a unit: no UNIT line",
                encoded(|r| {
                    r.register_with_unit("request_duration", "Latency", Unit::Seconds, hist.clone())
                }),
                "# HELP switchyard_request_duration_seconds Latency.\n\
                 # TYPE switchyard_request_duration_seconds histogram\n\
                 switchyard_request_duration_seconds_sum{route=\"api\"} 0.5\n\
                 switchyard_request_duration_seconds_count{route=\"api\"} 1\n\
                 switchyard_request_duration_seconds_bucket{le=\"0.1\",route=\"api\"} 0\n\
                 switchyard_request_duration_seconds_bucket{le=\"1.0\",route=\"api\"} 1\n\
                 switchyard_request_duration_seconds_bucket{le=\"+Inf\",route=\"api\"} 1\n",
            ),
            (
                "info-like gauge (build_info)",
                encoded(|r| r.register("build_info", "Always 1", build.clone())),
                "# HELP switchyard_build_info Always 1.\n\
                 # TYPE switchyard_build_info gauge\n\
                 switchyard_build_info{version=\"0.1.0\"} 1\n",
            ),
            (
                "OpenMetrics info type: a gauge named _info",
                encoded(|r| {
                    r.register("build", "The build", Info::new(vec![("version", "0.1.0")]))
                }),
                "# HELP switchyard_build_info The build.\n\
                 # TYPE switchyard_build_info gauge\n\
                 switchyard_build_info{version=\"0.1.0\"} 1\n",
            ),
            (
                "label values escaped (by our label sets) and copied",
                encoded(|r| r.register("listener_requests", "Answers", escaped.clone())),
                "# HELP switchyard_listener_requests_total Answers.\n\
                 # TYPE switchyard_listener_requests_total counter\n\
                 switchyard_listener_requests_total{listener=\"a\\\"b\\\\c\\nd}\",class=\"2xx\"} 1\n",
            ),
            (
                "exemplars dropped",
                encoded(|r| r.register("traced", "With exemplar", exemplar.clone())),
                "# HELP switchyard_traced_total With exemplar.\n\
                 # TYPE switchyard_traced_total counter\n\
                 switchyard_traced_total 2\n",
            ),
        ]
    }

    #[test]
    fn encoder_output_becomes_prometheus_text() {
        for (what, om, want) in cases() {
            assert!(om.ends_with("# EOF\n"), "{what}: {om}");
            assert_eq!(to_prometheus(&om), want, "{what}; from:\n{om}");
        }
    }

    /// Text the encoder never writes but OpenMetrics allows.
    #[test]
    fn other_openmetrics_constructs() {
        let om = "# HELP x_seconds A \\\"quoted\\\" \\\\ help\\n.\n\
                  # TYPE x_seconds counter\n\
                  # UNIT x_seconds seconds\n\
                  x_seconds_total{a=\"1\"} 5 1700000000.5 # {t=\"x\"} 1.0 1700000000\n\
                  x_seconds_created{a=\"1\"} 1699999999\n\
                  # TYPE g gaugehistogram\n\
                  g_bucket{le=\"+Inf\"} 2\n\
                  g_gsum 3.5\n\
                  g_gcount 2\n\
                  g_created 1\n\
                  # TYPE s stateset\n\
                  s{s=\"on\"} 1\n\
                  # TYPE u unknown\n\
                  u 7\n\
                  # HELP lonely No TYPE follows.\n\
                  lonely 1\n\
                  # EOF\n";
        assert_eq!(
            to_prometheus(om),
            "# HELP x_seconds_total A \"quoted\" \\\\ help\\n.\n\
             # TYPE x_seconds_total counter\n\
             x_seconds_total{a=\"1\"} 5 1700000000500\n\
             # TYPE g histogram\n\
             g_bucket{le=\"+Inf\"} 2\n\
             g_sum 3.5\n\
             g_count 2\n\
             # TYPE s gauge\n\
             s{s=\"on\"} 1\n\
             # TYPE u untyped\n\
             u 7\n\
             # HELP lonely No TYPE follows.\n\
             lonely 1\n"
        );
    }

    #[test]
    fn label_values_are_escaped_in_openmetrics_too() {
        let f = PFamily::<RouteLabel, Counter>::default();
        f.get_or_create(&RouteLabel {
            route: "q\"b\\s\nn".into(),
        })
        .inc();
        let om = encoded(|r| r.register("requests", "R", f.clone()));
        assert!(
            om.contains("switchyard_requests_total{route=\"q\\\"b\\\\s\\nn\"} 1\n"),
            "{om}"
        );
    }

    #[test]
    fn negotiation() {
        use Format::{OpenMetrics as OM, Prometheus as P};
        let table: &[(&[&str], Format)] = &[
            (&[], P),
            (&["*/*"], P),
            (&[""], P),
            (&["garbage"], P),
            (&["application/json"], P),
            (&["text/plain"], P),
            (&["text/plain; version=0.0.4"], P),
            (&["text/plain;version=0.0.4;q=0.5,*/*;q=0.1"], P),
            (&["application/openmetrics-text"], OM),
            (&["application/openmetrics-text; version=1.0.0"], OM),
            (&["application/openmetrics-text;version=0.0.1"], OM),
            (&["Application/OpenMetrics-Text; Version=\"1.0.0\""], OM),
            (&["application/openmetrics-text; version=2.0.0"], P),
            (&["application/*"], OM),
            (&["text/*"], P),
            // What Prometheus sends by default.
            (
                &[
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ],
                OM,
            ),
            // Prometheus with `scrape_protocols` preferring the text format.
            (
                &[
                    "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1",
                ],
                P,
            ),
            // Equal preference: the default.
            (&["application/openmetrics-text, text/plain"], P),
            (&["text/plain, application/openmetrics-text"], P),
            // The most specific range decides: text/plain refused.
            (&["text/plain;q=0, */*"], OM),
            (&["application/openmetrics-text;q=0, */*"], P),
            (
                &["application/openmetrics-text;q=0.9", "text/plain;q=0.2"],
                OM,
            ),
            // Several header lines count together.
            (
                &["text/plain;q=0.2", "application/openmetrics-text;q=0.3"],
                OM,
            ),
            // A version we do not speak does not match.
            (
                &["text/plain;version=9;q=1, application/openmetrics-text;q=0.5"],
                OM,
            ),
            // An unreadable q drops that range.
            (&["application/openmetrics-text;q=high"], P),
            (&["application/openmetrics-text;q=0.000"], P),
        ];
        for (accept, want) in table {
            assert_eq!(negotiate(accept.iter().copied()), *want, "{accept:?}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(
            Format::Prometheus.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }
}
