//! `[routes.retry]`, `[routes.hedge]` and `[routes.mirror]`: what a proxying
//! route does beyond sending one request.

use std::time::Duration;

use toml::Spanned;

use super::fields::{MAX_DURATION, Zero, blame_order};
use super::route::upstream_ref;
use super::{Cx, Known};
use crate::diagnostic::{index, join};
use crate::model::{Hedge, HedgeDelay, Mirror, Retry, RetryOn};
use crate::raw::{RawHedge, RawMirror, RawRetry, Text};
use crate::units;

/// A condition named in `on = [...]`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    ConnectFailure,
    RefusedStream,
    Reset,
    Timeout,
    GatewayError,
}

const CONDITIONS: &[(&str, Condition)] = &[
    ("connect-failure", Condition::ConnectFailure),
    ("refused-stream", Condition::RefusedStream),
    ("reset", Condition::Reset),
    ("timeout", Condition::Timeout),
    ("gateway-error", Condition::GatewayError),
];

/// The largest request body `[routes.retry] buffer` may keep for replay.
const MAX_RETRY_BUFFER: u64 = 16 << 20;

pub(super) fn retry(cx: &mut Cx<'_>, raw: &Spanned<RawRetry>, path: &str) -> Retry {
    let r = raw.get_ref();
    let p = |key: &str| join(path, key);
    let attempts = cx.int(
        r.attempts.as_ref(),
        &p("attempts"),
        3,
        (2, 10),
        Some("attempts counts the first try too: 2 means one retry"),
    );
    let on = retry_on(cx, r, path);
    let per_try_timeout = cx.opt_duration(r.per_try_timeout.as_ref(), &p("per_try_timeout"));
    let (backoff_base, base_ok) = cx.clean(|cx| {
        cx.duration(
            r.backoff_base.as_ref(),
            &p("backoff_base"),
            Duration::from_millis(25),
            Zero::Allowed,
        )
    });
    let (backoff_max, max_ok) = cx.clean(|cx| {
        cx.duration(
            r.backoff_max.as_ref(),
            &p("backoff_max"),
            Duration::from_millis(250),
            Zero::Allowed,
        )
    });
    if base_ok && max_ok && backoff_max < backoff_base {
        blame_order(
            cx,
            (r.backoff_base.as_ref(), &p("backoff_base"), backoff_base),
            (r.backoff_max.as_ref(), &p("backoff_max"), backoff_max),
        );
    }
    Retry {
        attempts: u32::try_from(attempts).unwrap_or(3),
        on,
        per_try_timeout,
        backoff_base,
        backoff_max,
        non_idempotent: r.non_idempotent.unwrap_or(false),
        buffer: cx.size(
            r.buffer.as_ref(),
            &p("buffer"),
            64 * 1024,
            (0, MAX_RETRY_BUFFER),
        ),
    }
}

fn retry_on(cx: &mut Cx<'_>, r: &RawRetry, path: &str) -> RetryOn {
    let on_path = join(path, "on");
    let statuses_path = join(path, "statuses");
    let mut statuses: Vec<u16> = Vec::new();
    for (i, code) in r.statuses.iter().flatten().enumerate() {
        match u16::try_from(*code.get_ref()) {
            Ok(status) if (100..=599).contains(&status) => {
                if !statuses.contains(&status) {
                    statuses.push(status);
                }
            }
            _ => {
                cx.report
                    .error_value(
                        code.span(),
                        &index(&statuses_path, i),
                        "status must be between 100 and 599",
                    )
                    .hint("e.g. statuses = [409, 429]");
            }
        }
    }
    let Some(list) = &r.on else {
        return RetryOn {
            connect_failure: true,
            refused_stream: true,
            reset: true,
            timeout: true,
            gateway_error: true,
            statuses,
        };
    };
    let mut on = RetryOn {
        statuses,
        ..RetryOn::default()
    };
    let mut seen: Vec<Condition> = Vec::new();
    let mut clean = true;
    for (i, text) in list.get_ref().iter().enumerate() {
        let (failure, ok) = cx.keyword(
            Some(text),
            &index(&on_path, i),
            "retry condition",
            CONDITIONS,
            Condition::Reset,
        );
        if !ok {
            clean = false;
            continue;
        }
        if seen.contains(&failure) {
            cx.report.error_value(
                text.span(),
                &index(&on_path, i),
                format!("`{}` is listed twice", text.get_ref()),
            );
            continue;
        }
        seen.push(failure);
        match failure {
            Condition::ConnectFailure => on.connect_failure = true,
            Condition::RefusedStream => on.refused_stream = true,
            Condition::Reset => on.reset = true,
            Condition::Timeout => on.timeout = true,
            Condition::GatewayError => on.gateway_error = true,
        }
    }
    let no_statuses = r.statuses.as_ref().is_none_or(Vec::is_empty);
    if clean && seen.is_empty() && no_statuses && !cx.report.was_pruned(&statuses_path) {
        cx.report
            .error(list.span(), &on_path, "nothing would be retried: `on` is empty and no `statuses` are set")
            .hint("list failures such as \"reset\" or \"timeout\", or statuses such as 503; or remove [routes.retry]");
    }
    on
}

pub(super) fn hedge(cx: &mut Cx<'_>, raw: &Spanned<RawHedge>, path: &str) -> Hedge {
    let h = raw.get_ref();
    let fallback_path = join(path, "fallback");
    let delay = match &h.delay {
        None => {
            cx.missing(raw.span(), path, "delay");
            HedgeDelay::Fixed(Duration::ZERO)
        }
        Some(text) if text.get_ref() == "p95" => HedgeDelay::P95 {
            fallback: cx.duration(
                h.fallback.as_ref(),
                &fallback_path,
                Duration::from_millis(100),
                Zero::Rejected,
            ),
        },
        Some(text) => {
            let (delay, clean) = cx.clean(|cx| fixed_delay(cx, text, &join(path, "delay")));
            // After a bad delay the user may well have meant "p95".
            if let Some(fallback) = h.fallback.as_ref().filter(|_| clean) {
                cx.report
                    .error_value(
                        fallback.span(),
                        &fallback_path,
                        "`fallback` applies to delay = \"p95\" only",
                    )
                    .hint("a fixed delay needs no fallback; remove the key");
            }
            HedgeDelay::Fixed(delay)
        }
    };
    Hedge { delay }
}

/// `delay = "50ms"`: a duration greater than zero.
fn fixed_delay(cx: &mut Cx<'_>, text: &Text, path: &str) -> Duration {
    const HINT: &str =
        "write a duration such as \"50ms\", or \"p95\" for the upstream's recent 95th percentile";
    let value = text.get_ref();
    let percentile = value
        .strip_prefix(['p', 'P'])
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()));
    let (message, hint) = match units::parse_duration(value) {
        Ok(d) if d.is_zero() => ("delay must be greater than zero".to_owned(), HINT),
        Ok(d) if d > MAX_DURATION => ("must be at most 365 days".to_owned(), HINT),
        Ok(d) => return d,
        Err(_) if value.eq_ignore_ascii_case("p95") => {
            ("unknown delay".to_owned(), "did you mean `p95`?")
        }
        Err(_) if percentile => (
            "unsupported percentile; only \"p95\" is available".to_owned(),
            HINT,
        ),
        Err(e) => (e.message().to_owned(), HINT),
    };
    cx.report.error_value(text.span(), path, message).hint(hint);
    Duration::ZERO
}

pub(super) fn mirror(
    cx: &mut Cx<'_>,
    raw: &Spanned<RawMirror>,
    path: &str,
    known: &Known<'_>,
) -> Mirror {
    let m = raw.get_ref();
    let p = |key: &str| join(path, key);
    let upstream = match &m.upstream {
        Some(name) => upstream_ref(cx, name, &p("upstream"), known),
        None => {
            cx.missing(raw.span(), path, "upstream");
            String::new()
        }
    };
    let percent = cx.number(
        m.percent.as_ref(),
        &p("percent"),
        100.0,
        |n| n > 0.0 && n <= 100.0,
        "greater than 0 and at most 100",
    );
    let max_in_flight = cx.int(
        m.max_in_flight.as_ref(),
        &p("max_in_flight"),
        64,
        (1, 100_000),
        None,
    );
    Mirror {
        upstream,
        percent,
        max_in_flight: u32::try_from(max_in_flight).unwrap_or(64),
        max_body: cx.size(
            m.max_body.as_ref(),
            &p("max_body"),
            64 * 1024,
            (0, u64::MAX),
        ),
    }
}
