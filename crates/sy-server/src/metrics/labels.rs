//! The label sets of the metric families. Their `EncodeLabelSet` escapes
//! the values (`label_set!` below): route, listener and upstream names come
//! from the configuration and may hold `"`, `\` or a line feed, which the
//! derive would write as they are.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, EncodeLabelValue};

/// A label value as the text formats want it: `\`, `"` and line feeds
/// escaped (the same rules in OpenMetrics and Prometheus 0.0.4). The
/// encoder writes values as they are, and route, listener and upstream
/// names may hold any of these characters.
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        let mut rest = self.0;
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(&rest[..i])?;
            encoder.write_str(match rest.as_bytes()[i] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[i + 1..];
        }
        encoder.write_str(rest)
    }
}

/// `impl EncodeLabelSet` for a struct of `String` labels, values escaped
/// (the derive would write them unescaped).
macro_rules! label_set {
    ($($ty:ident { $($field:ident),+ })+) => {$(
        impl EncodeLabelSet for $ty {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelSetEncoder<'_>,
            ) -> Result<(), std::fmt::Error> {
                $((stringify!($field), Escaped(&self.$field)).encode(encoder.encode_label())?;)+
                Ok(())
            }
        }
    )+};
}

label_set! {
    ListenerLabel { listener }
    ListenerKind { listener, kind }
    ListenerClass { listener, class }
    RouteClass { route, class }
    RouteLabel { route }
    RouteStage { route, stage }
    ServerLabel { upstream, server }
    UpstreamLabel { upstream }
    ServerOutcome { upstream, server, outcome }
    UpstreamOutcome { upstream, outcome }
    RouteOutcome { route, outcome }
    RouteUpstream { route, upstream }
    RouteUpstreamReason { route, upstream, reason }
    RouteEncoding { route, encoding }
    RouteEncodingDirection { route, encoding, direction }
    VersionLabel { version }
    ResultLabel { result }
}

/// Labels: a listener.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ListenerLabel {
    /// Listener name.
    pub listener: String,
}

/// Labels: a listener and a status class.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ListenerClass {
    /// Listener name.
    pub listener: String,
    /// "1xx".."5xx".
    pub class: String,
}

/// Labels: a listener and an error kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ListenerKind {
    /// Listener name.
    pub listener: String,
    /// What went wrong.
    pub kind: String,
}

/// Labels: a route and a status class.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteClass {
    /// Route name.
    pub route: String,
    /// "1xx".."5xx".
    pub class: String,
}

/// Labels: a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteLabel {
    /// Route name.
    pub route: String,
}

/// Labels: a route and the failed stage.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteStage {
    /// Route name; "" when no route matched (stage `no-route`): a value
    /// that means "no route", not a label that is always empty.
    pub route: String,
    /// The stage token, as in the `x-switchyard-error` header.
    pub stage: String,
}

/// Labels: an upstream server.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ServerLabel {
    /// Upstream name.
    pub upstream: String,
    /// Server address as configured.
    pub server: String,
}

/// Labels: an upstream.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct UpstreamLabel {
    /// Upstream name.
    pub upstream: String,
}

/// Labels: an upstream server and an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ServerOutcome {
    /// Upstream name.
    pub upstream: String,
    /// Server address as configured.
    pub server: String,
    /// What happened.
    pub outcome: String,
}

/// Labels: an upstream and an outcome (or breaker).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct UpstreamOutcome {
    /// Upstream name.
    pub upstream: String,
    /// What happened.
    pub outcome: String,
}

/// Labels: a route and an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteOutcome {
    /// Route name.
    pub route: String,
    /// What happened.
    pub outcome: String,
}

/// Labels: a route and the upstream it chose.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteUpstream {
    /// Route name.
    pub route: String,
    /// Upstream name.
    pub upstream: String,
}

/// Labels: a route, the upstream it used and a retry reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteUpstreamReason {
    /// Route name.
    pub route: String,
    /// Upstream name.
    pub upstream: String,
    /// Why the attempt was retried.
    pub reason: String,
}

/// Labels: a route and a content coding.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteEncoding {
    /// Route name.
    pub route: String,
    /// The coding: "br", "zstd" or "gzip".
    pub encoding: String,
}

/// Labels: a route, a content coding and a direction.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RouteEncodingDirection {
    /// Route name.
    pub route: String,
    /// The coding: "br", "zstd" or "gzip".
    pub encoding: String,
    /// "in" (bytes given to the encoder) or "out" (bytes it produced).
    pub direction: String,
}

/// Labels: the binary's version.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct VersionLabel {
    /// `CARGO_PKG_VERSION`.
    pub version: String,
}

/// Labels: reload outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ResultLabel {
    /// "ok" or "rejected".
    pub result: String,
}
