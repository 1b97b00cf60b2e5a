//! `[upstreams.NAME]` health and protection: `health_check`, `outlier`,
//! `circuit_breaker`, `retry_budget` and `sticky`.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::Cx;
use super::fields::{Zero, blame_order, host_name, human_duration, is_header_value, is_token};
use super::route::host_rewrite;
use crate::diagnostic::{index, join};
use crate::model::{CircuitBreaker, HealthCheck, HealthCheckKind, Outlier, RetryBudget, Sticky};
use crate::raw::{
    RawCircuitBreaker, RawHealthCheck, RawOutlier, RawRetryBudget, RawStatus, RawSticky,
};

/// `type = "..."` of a health check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CheckType {
    Http,
    Tcp,
    Grpc,
}

const CHECK_TYPES: &[(&str, CheckType)] = &[
    ("http", CheckType::Http),
    ("tcp", CheckType::Tcp),
    ("grpc", CheckType::Grpc),
];

impl CheckType {
    fn name(self) -> &'static str {
        match self {
            CheckType::Http => "http",
            CheckType::Tcp => "tcp",
            CheckType::Grpc => "grpc",
        }
    }
}

const SAME_SITE: &[(&str, &str)] = &[("lax", "lax"), ("strict", "strict"), ("none", "none")];

const STATUS_HINT: &str = "e.g. 204, \"200\" or \"200-299\"";

pub(super) fn health_check(
    cx: &mut Cx<'_>,
    raw: &Spanned<RawHealthCheck>,
    path: &str,
) -> HealthCheck {
    let h = raw.get_ref();
    let p = |key: &str| join(path, key);
    let (kind, kind_ok) = cx.keyword(
        h.kind.as_ref(),
        &p("type"),
        "health check type",
        CHECK_TYPES,
        CheckType::Http,
    );
    // With an unknown type, which keys belong is anyone's guess.
    if kind_ok && !cx.report.was_pruned(&p("type")) {
        let owned: [(&str, Option<Range<usize>>, CheckType); 6] = [
            (
                "method",
                h.method.as_ref().map(Spanned::span),
                CheckType::Http,
            ),
            ("path", h.path.as_ref().map(Spanned::span), CheckType::Http),
            ("host", h.host.as_ref().map(Spanned::span), CheckType::Http),
            (
                "expect_status",
                h.expect_status.as_ref().map(Spanned::span),
                CheckType::Http,
            ),
            (
                "expect_body",
                h.expect_body.as_ref().map(Spanned::span),
                CheckType::Http,
            ),
            (
                "service",
                h.service.as_ref().map(Spanned::span),
                CheckType::Grpc,
            ),
        ];
        for (key, span, owner) in owned {
            let Some(span) = span else { continue };
            if owner == kind {
                continue;
            }
            let current = if h.kind.is_some() {
                format!("this check has type = \"{}\"", kind.name())
            } else {
                "the default type is \"http\"".to_owned()
            };
            cx.report
                .error(
                    span,
                    &p(key),
                    format!("`{key}` applies to type = \"{}\" only", owner.name()),
                )
                .hint(format!(
                    "{current}; remove `{key}` or set type = \"{}\"",
                    owner.name()
                ));
        }
    }
    let (interval, interval_ok) = cx.clean(|cx| {
        cx.duration(
            h.interval.as_ref(),
            &p("interval"),
            Duration::from_secs(5),
            Zero::Rejected,
        )
    });
    let (jitter, jitter_ok) = cx.clean(|cx| {
        cx.duration(
            h.jitter.as_ref(),
            &p("jitter"),
            interval / 10,
            Zero::Allowed,
        )
    });
    let jitter = match &h.jitter {
        Some(text) if interval_ok && jitter_ok && jitter >= interval => {
            cx.report
                .error_value(
                    text.span(),
                    &p("jitter"),
                    format!(
                        "jitter must be less than interval ({})",
                        human_duration(interval)
                    ),
                )
                .hint("each interval is shortened or lengthened by up to the jitter; remove the key for interval / 10");
            interval / 10
        }
        _ => jitter,
    };
    let timeout = cx.duration(
        h.timeout.as_ref(),
        &p("timeout"),
        Duration::from_secs(2),
        Zero::Rejected,
    );
    let mut threshold = |value, key: &str, default| {
        let n = cx.int(value, &p(key), default, (1, 100), None);
        u32::try_from(n).unwrap_or(1)
    };
    let unhealthy_threshold = threshold(h.unhealthy_threshold.as_ref(), "unhealthy_threshold", 3);
    let healthy_threshold = threshold(h.healthy_threshold.as_ref(), "healthy_threshold", 2);
    let kind = match kind {
        CheckType::Http => http_check(cx, h, path),
        CheckType::Tcp => HealthCheckKind::Tcp,
        CheckType::Grpc => HealthCheckKind::Grpc {
            service: h
                .service
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_default(),
        },
    };
    HealthCheck {
        kind,
        interval,
        jitter,
        timeout,
        unhealthy_threshold,
        healthy_threshold,
    }
}

fn http_check(cx: &mut Cx<'_>, h: &RawHealthCheck, path: &str) -> HealthCheckKind {
    let p = |key: &str| join(path, key);
    let method = match &h.method {
        None => "GET".to_owned(),
        Some(text) => {
            if !is_token(text.get_ref()) {
                cx.report
                    .error_value(text.span(), &p("method"), "invalid HTTP method")
                    .hint("e.g. \"GET\" or \"HEAD\"");
            }
            text.get_ref().to_ascii_uppercase()
        }
    };
    let check_path = match &h.path {
        None => "/".to_owned(),
        Some(text) => {
            let value = text.get_ref();
            if !value.starts_with('/') {
                cx.report
                    .error_value(text.span(), &p("path"), "path must start with `/`")
                    .hint(format!("write \"/{}\"", value.trim_start_matches('/')));
            } else if value.contains('#')
                || value.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                cx.report.error_value(
                    text.span(),
                    &p("path"),
                    "path cannot contain `#`, spaces or control characters",
                );
            }
            value.clone()
        }
    };
    let host = h
        .host
        .as_ref()
        .map(|text| host_rewrite(cx, text, &p("host")));
    let expect_status = match &h.expect_status {
        None => vec![(200, 399)],
        Some(list) if list.get_ref().is_empty() => {
            cx.report
                .error(
                    list.span(),
                    &p("expect_status"),
                    "expect_status needs at least one status or range",
                )
                .hint("e.g. expect_status = [\"200-299\"]; remove the key for 200-399");
            vec![(200, 399)]
        }
        Some(list) => list
            .get_ref()
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| match status_range(entry.get_ref()) {
                Ok(range) => Some(range),
                Err(message) => {
                    cx.report
                        .error_value(entry.span(), &index(&p("expect_status"), i), message)
                        .hint(STATUS_HINT);
                    None
                }
            })
            .collect(),
    };
    let expect_body = h.expect_body.as_ref().map(|text| text.get_ref().clone());
    HealthCheckKind::Http {
        method,
        path: check_path,
        host,
        expect_status,
        expect_body,
    }
}

/// `204`, `"204"` or `"200-299"`: an inclusive range of statuses.
fn status_range(raw: &RawStatus) -> Result<(u16, u16), String> {
    let code = |n: i64| {
        u16::try_from(n)
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| "status must be between 100 and 599".to_owned())
    };
    let parse = |text: &str| {
        text.trim()
            .parse::<i64>()
            .map_err(|_| {
                "expected a status such as \"200\" or a range such as \"200-299\"".to_owned()
            })
            .and_then(code)
    };
    match raw {
        RawStatus::Code(n) => code(*n).map(|c| (c, c)),
        RawStatus::Text(text) if status_class(text).is_some() => {
            let class = status_class(text).unwrap_or('2');
            Err(format!(
                "status classes are written as ranges: \"{class}00-{class}99\""
            ))
        }
        RawStatus::Text(text) => match text.split_once('-') {
            None => parse(text).map(|c| (c, c)),
            Some((lo, hi)) => {
                let (lo, hi) = (parse(lo)?, parse(hi)?);
                if lo > hi {
                    Err(format!("range is reversed; write \"{hi}-{lo}\""))
                } else {
                    Ok((lo, hi))
                }
            }
        },
    }
}

/// The digit of a status class written as `"2xx"`.
fn status_class(text: &str) -> Option<char> {
    let mut chars = text.chars();
    let digit = chars.next().filter(|d| ('1'..='5').contains(d))?;
    chars.as_str().eq_ignore_ascii_case("xx").then_some(digit)
}

pub(super) fn outlier(cx: &mut Cx<'_>, raw: &RawOutlier, path: &str) -> Outlier {
    let p = |key: &str| join(path, key);
    let mut consecutive = |value, key: &str| {
        let n = cx.int(
            value,
            &p(key),
            5,
            (0, 1000),
            Some("0 turns this trigger off"),
        );
        u32::try_from(n).unwrap_or(5)
    };
    let consecutive_5xx = consecutive(raw.consecutive_5xx.as_ref(), "consecutive_5xx");
    let consecutive_gateway_failures = consecutive(
        raw.consecutive_gateway_failures.as_ref(),
        "consecutive_gateway_failures",
    );
    let (base_ejection_time, base_ok) = cx.clean(|cx| {
        cx.duration(
            raw.base_ejection_time.as_ref(),
            &p("base_ejection_time"),
            Duration::from_secs(30),
            Zero::Rejected,
        )
    });
    let (max_ejection_time, max_ok) = cx.clean(|cx| {
        cx.duration(
            raw.max_ejection_time.as_ref(),
            &p("max_ejection_time"),
            Duration::from_secs(300),
            Zero::Rejected,
        )
    });
    if base_ok && max_ok && max_ejection_time < base_ejection_time {
        blame_order(
            cx,
            (
                raw.base_ejection_time.as_ref(),
                &p("base_ejection_time"),
                base_ejection_time,
            ),
            (
                raw.max_ejection_time.as_ref(),
                &p("max_ejection_time"),
                max_ejection_time,
            ),
        );
    }
    let max_ejected_percent = cx.int(
        raw.max_ejected_percent.as_ref(),
        &p("max_ejected_percent"),
        10,
        (0, 100),
        None,
    );
    Outlier {
        consecutive_5xx,
        consecutive_gateway_failures,
        base_ejection_time,
        max_ejection_time,
        max_ejected_percent: u8::try_from(max_ejected_percent).unwrap_or(10),
    }
}

pub(super) fn circuit_breaker(
    cx: &mut Cx<'_>,
    raw: Option<&RawCircuitBreaker>,
    path: &str,
) -> CircuitBreaker {
    let Some(raw) = raw else {
        return CircuitBreaker::default();
    };
    let mut limit = |value, key: &str| {
        cx.opt_int(
            value,
            &join(path, key),
            (1, 1_000_000),
            Some("remove the key for no limit"),
        )
        .and_then(|n| u64::try_from(n).ok())
    };
    CircuitBreaker {
        max_connections: limit(raw.max_connections.as_ref(), "max_connections"),
        max_pending_requests: limit(raw.max_pending_requests.as_ref(), "max_pending_requests"),
        max_requests: limit(raw.max_requests.as_ref(), "max_requests"),
        max_retries: limit(raw.max_retries.as_ref(), "max_retries"),
    }
}

pub(super) fn retry_budget(
    cx: &mut Cx<'_>,
    raw: Option<&RawRetryBudget>,
    path: &str,
) -> RetryBudget {
    let defaults = RetryBudget {
        ratio: 0.2,
        min_retries_per_second: 10,
        window: Duration::from_secs(10),
    };
    let Some(raw) = raw else { return defaults };
    let p = |key: &str| join(path, key);
    let ratio = cx.number(
        raw.ratio.as_ref(),
        &p("ratio"),
        defaults.ratio,
        |n| (0.0..=1.0).contains(&n),
        "between 0.0 and 1.0",
    );
    let min_retries_per_second = cx.int(
        raw.min_retries_per_second.as_ref(),
        &p("min_retries_per_second"),
        10,
        (0, 100_000),
        None,
    );
    let (window, window_ok) = cx.clean(|cx| {
        cx.duration(
            raw.window.as_ref(),
            &p("window"),
            defaults.window,
            Zero::Allowed,
        )
    });
    let window = match &raw.window {
        Some(text)
            if window_ok
                && !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&window) =>
        {
            cx.report.error_value(
                text.span(),
                &p("window"),
                "window must be between 1s and 60s",
            );
            defaults.window
        }
        _ => window,
    };
    RetryBudget {
        ratio,
        min_retries_per_second: u32::try_from(min_retries_per_second).unwrap_or(10),
        window,
    }
}

pub(super) fn sticky(cx: &mut Cx<'_>, raw: &RawSticky, path: &str, upstream: &str) -> Sticky {
    let p = |key: &str| join(path, key);
    let cookie = match &raw.cookie {
        None => "sy_server".to_owned(),
        Some(text) => {
            if !is_token(text.get_ref()) {
                cx.report
                    .error_value(text.span(), &p("cookie"), "invalid cookie name")
                    .hint("cookie names use letters, digits, `-` and `_`, e.g. \"sy_server\"");
            }
            text.get_ref().clone()
        }
    };
    let cookie_path = match &raw.path {
        None => "/".to_owned(),
        Some(text) => {
            let value = text.get_ref();
            if !value.starts_with('/') {
                cx.report
                    .error_value(text.span(), &p("path"), "cookie path must start with `/`")
                    .hint(format!("write \"/{}\"", value.trim_start_matches('/')));
            } else if value.contains(';') || !is_header_value(value) || value.contains('\t') {
                cx.report.error_value(
                    text.span(),
                    &p("path"),
                    "cookie path cannot contain `;` or control characters",
                );
            }
            value.clone()
        }
    };
    let domain = raw.domain.as_ref().map(|text| {
        let value = text.get_ref();
        let bare = value.strip_prefix('.').unwrap_or(value);
        if let Err(message) = host_name(bare) {
            cx.report
                .error_value(text.span(), &p("domain"), format!("invalid cookie domain: {message}"))
                .hint("e.g. \"example.com\"; without it the cookie goes back only to the host that set it");
        }
        value.clone()
    });
    let secure = raw.secure.unwrap_or(false);
    let (same_site, _) = cx.keyword(
        raw.same_site.as_ref(),
        &p("same_site"),
        "SameSite value",
        SAME_SITE,
        "",
    );
    let same_site = raw.same_site.as_ref().map(|text| {
        if same_site == "none" && !secure {
            cx.report
                .error_value(
                    text.span(),
                    &p("same_site"),
                    "`same_site = \"none\"` requires `secure = true`",
                )
                .hint("browsers drop SameSite=None cookies that are not Secure");
        }
        same_site.to_owned()
    });
    let secret = match &raw.secret {
        None => upstream.to_owned(),
        Some(text) => {
            if text.get_ref().is_empty() {
                cx.report
                    .error_value(text.span(), &p("secret"), "secret cannot be empty")
                    .hint("remove the key to use the upstream's name");
            }
            text.get_ref().clone()
        }
    };
    Sticky {
        cookie,
        ttl: cx.opt_duration(raw.ttl.as_ref(), &p("ttl")),
        path: cookie_path,
        domain,
        secure,
        http_only: raw.http_only.unwrap_or(true),
        same_site,
        secret,
    }
}
