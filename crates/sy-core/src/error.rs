use std::fmt;

/// Who caused a failure. Status codes and retry decisions follow from the
/// origin and the stage alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client sent something we will not or cannot serve.
    Downstream,
    /// The backend (or the way to it) failed.
    Upstream,
    /// Switchyard itself (configuration, resource limits).
    Internal,
}

/// The stage of the request path that failed. Its name is sent to the client
/// in the `x-switchyard-error` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The request could not be parsed or framed (400).
    BadRequest,
    /// The request headers are too large or too many (431).
    HeadersTooLarge,
    /// The request body exceeds the route's limit (413).
    BodyTooLarge,
    /// No route matched the request (404).
    NoRoute,
    /// The upstream has no server that can take the request (503).
    NoHealthyServer,
    /// Connecting to the chosen server failed (502).
    Connect,
    /// Connecting to the chosen server did not complete within the
    /// upstream's `connect_timeout` (504). Nothing reached the server.
    ConnectTimeout,
    /// The TLS handshake with the server failed (502).
    Tls,
    /// The server did not answer in time, or the route's total deadline
    /// expired (504).
    Timeout,
    /// The server answered with something that is not valid HTTP, or reset
    /// the stream (502).
    UpstreamProtocol,
    /// The client went away or its body failed mid-request.
    ClientAbort,
    /// A circuit breaker of the upstream is open: the request failed fast
    /// (503; the breaker is named in `x-switchyard-breaker`).
    CircuitOpen,
    /// A filter found no acceptable credentials (401, with
    /// `WWW-Authenticate` among the error's headers).
    Unauthorized,
    /// A filter refused the request: an IP rule, an authorization
    /// policy (403).
    Forbidden,
    /// A rate limit refused the request (429, with `Retry-After`).
    RateLimited,
    /// A filter answered with a status of its own choosing (the error's
    /// `status`).
    Rejected,
}

impl Stage {
    /// The token sent in the `x-switchyard-error` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::BadRequest => "bad-request",
            Stage::HeadersTooLarge => "headers-too-large",
            Stage::BodyTooLarge => "body-too-large",
            Stage::NoRoute => "no-route",
            Stage::NoHealthyServer => "no-healthy-server",
            Stage::Connect => "connect",
            Stage::ConnectTimeout => "connect-timeout",
            Stage::Tls => "tls",
            Stage::Timeout => "timeout",
            Stage::UpstreamProtocol => "upstream-protocol",
            Stage::ClientAbort => "client-abort",
            Stage::CircuitOpen => "circuit-open",
            Stage::Unauthorized => "unauthorized",
            Stage::Forbidden => "forbidden",
            Stage::RateLimited => "rate-limited",
            Stage::Rejected => "rejected",
        }
    }

    /// The HTTP status Switchyard answers with when this stage fails.
    pub fn status(self) -> u16 {
        match self {
            Stage::BadRequest => 400,
            Stage::HeadersTooLarge => 431,
            Stage::BodyTooLarge => 413,
            Stage::NoRoute => 404,
            Stage::NoHealthyServer | Stage::CircuitOpen => 503,
            Stage::Connect | Stage::Tls | Stage::UpstreamProtocol => 502,
            Stage::Timeout | Stage::ConnectTimeout => 504,
            // nginx's 499: nobody reads it, but logs and metrics do.
            Stage::ClientAbort => 499,
            Stage::Unauthorized => 401,
            Stage::Forbidden => 403,
            Stage::RateLimited => 429,
            // The error's own status replaces it (see `ProxyError::status`).
            Stage::Rejected => 400,
        }
    }

    /// The origin a failure at this stage is attributed to.
    pub fn origin(self) -> Origin {
        match self {
            Stage::BadRequest
            | Stage::HeadersTooLarge
            | Stage::BodyTooLarge
            | Stage::NoRoute
            | Stage::ClientAbort
            | Stage::Unauthorized
            | Stage::Forbidden
            | Stage::RateLimited
            | Stage::Rejected => Origin::Downstream,
            Stage::NoHealthyServer | Stage::CircuitOpen => Origin::Internal,
            Stage::Connect
            | Stage::ConnectTimeout
            | Stage::Tls
            | Stage::Timeout
            | Stage::UpstreamProtocol => Origin::Upstream,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure on the request path: which stage, whether the request may be
/// retried on another server (nothing reached the backend's application),
/// a short human-readable cause, and, for answers filters give (401, 403,
/// 429, ...), the status and response headers that go with it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct ProxyError {
    /// The failed stage.
    pub stage: Stage,
    /// True when the request never reached the server's application, so
    /// sending it elsewhere cannot duplicate its effect.
    pub retry_safe: bool,
    /// A short cause, safe to show to clients (no internal addresses).
    pub message: String,
    /// The circuit breaker that failed the request (stage `circuit-open`).
    pub breaker: Option<&'static str>,
    /// A status replacing the stage's (stage `rejected`); None = the
    /// stage's.
    pub status: Option<u16>,
    /// Response headers that go with the answer: `WWW-Authenticate` of a
    /// 401, `Retry-After` of a 429, ... (name lower-case, value). Empty for
    /// every error of the proxy itself (an empty Vec does not allocate).
    pub headers: Vec<(&'static str, String)>,
}

impl ProxyError {
    /// A failure at `stage` with a message; retry safety is derived from the
    /// stage (connect and TLS failures, connect timeouts, refusals before
    /// a server was chosen never reached the application).
    pub fn new(stage: Stage, message: impl Into<String>) -> Self {
        ProxyError {
            stage,
            retry_safe: matches!(
                stage,
                Stage::Connect
                    | Stage::ConnectTimeout
                    | Stage::Tls
                    | Stage::NoHealthyServer
                    | Stage::CircuitOpen
            ),
            message: message.into(),
            breaker: None,
            status: None,
            headers: Vec::new(),
        }
    }

    /// 401: no acceptable credentials; `challenge` is the
    /// `WWW-Authenticate` value (e.g. `Bearer realm="api"`).
    pub fn unauthorized(challenge: impl Into<String>, message: impl Into<String>) -> Self {
        ProxyError::new(Stage::Unauthorized, message).with_header("www-authenticate", challenge)
    }

    /// 403: refused by a rule.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ProxyError::new(Stage::Forbidden, message)
    }

    /// 429: over a rate limit; try again in `retry_after_secs`.
    pub fn rate_limited(retry_after_secs: u64, message: impl Into<String>) -> Self {
        ProxyError::new(Stage::RateLimited, message)
            .with_header("retry-after", retry_after_secs.to_string())
    }

    /// Any status a filter chooses (stage `rejected`).
    pub fn rejected(status: u16, message: impl Into<String>) -> Self {
        ProxyError {
            status: Some(status),
            ..ProxyError::new(Stage::Rejected, message)
        }
    }

    /// Adds a response header to the answer.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A request failed fast by circuit breaker `breaker` (e.g. "max_requests").
    pub fn breaker(breaker: &'static str, message: impl Into<String>) -> Self {
        ProxyError {
            breaker: Some(breaker),
            ..ProxyError::new(Stage::CircuitOpen, message)
        }
    }

    /// Who caused it.
    pub fn origin(&self) -> Origin {
        self.stage.origin()
    }

    /// The status code for the client.
    pub fn status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.stage.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_map_to_statuses_and_origins() {
        assert_eq!(Stage::Connect.status(), 502);
        assert_eq!(Stage::Timeout.status(), 504);
        assert_eq!(Stage::NoHealthyServer.status(), 503);
        assert_eq!(Stage::HeadersTooLarge.status(), 431);
        assert_eq!(Stage::Connect.origin(), Origin::Upstream);
        assert_eq!(Stage::BadRequest.origin(), Origin::Downstream);
    }

    #[test]
    fn filter_answers_carry_their_status_and_headers() {
        let e = ProxyError::unauthorized("Bearer realm=\"api\"", "no token");
        assert_eq!((e.status(), e.stage.as_str()), (401, "unauthorized"));
        assert_eq!(
            e.headers,
            vec![("www-authenticate", "Bearer realm=\"api\"".to_owned())]
        );
        let e = ProxyError::rate_limited(7, "slow down");
        assert_eq!(e.status(), 429);
        assert_eq!(e.headers, vec![("retry-after", "7".to_owned())]);
        assert_eq!(ProxyError::forbidden("ip").status(), 403);
        let e = ProxyError::rejected(451, "legal").with_header("link", "<x>");
        assert_eq!((e.status(), e.stage.as_str()), (451, "rejected"));
        assert_eq!(e.origin(), Origin::Downstream);
        assert!(!e.retry_safe);
    }

    #[test]
    fn a_connect_timeout_is_not_a_response_timeout() {
        let c = ProxyError::new(Stage::ConnectTimeout, "slow connect");
        let r = ProxyError::new(Stage::Timeout, "slow answer");
        assert_eq!((c.status(), r.status()), (504, 504));
        assert_ne!(c.stage.as_str(), r.stage.as_str());
        assert!(c.retry_safe && !r.retry_safe);
        assert_eq!(c.origin(), Origin::Upstream);
    }

    #[test]
    fn only_pre_application_failures_are_retry_safe() {
        assert!(ProxyError::new(Stage::Connect, "refused").retry_safe);
        assert!(!ProxyError::new(Stage::Timeout, "slow").retry_safe);
        assert_eq!(
            ProxyError::new(Stage::Tls, "bad cert").to_string(),
            "tls: bad cert"
        );
    }
}
