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
            Stage::Tls => "tls",
            Stage::Timeout => "timeout",
            Stage::UpstreamProtocol => "upstream-protocol",
            Stage::ClientAbort => "client-abort",
            Stage::CircuitOpen => "circuit-open",
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
            Stage::Timeout => 504,
            // nginx's 499: nobody reads it, but logs and metrics do.
            Stage::ClientAbort => 499,
        }
    }

    /// The origin a failure at this stage is attributed to.
    pub fn origin(self) -> Origin {
        match self {
            Stage::BadRequest
            | Stage::HeadersTooLarge
            | Stage::BodyTooLarge
            | Stage::NoRoute
            | Stage::ClientAbort => Origin::Downstream,
            Stage::NoHealthyServer | Stage::CircuitOpen => Origin::Internal,
            Stage::Connect | Stage::Tls | Stage::Timeout | Stage::UpstreamProtocol => {
                Origin::Upstream
            }
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
/// and a short human-readable cause.
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
}

impl ProxyError {
    /// A failure at `stage` with a message; retry safety is derived from the
    /// stage (connect and TLS failures never reached the application).
    pub fn new(stage: Stage, message: impl Into<String>) -> Self {
        ProxyError {
            stage,
            retry_safe: matches!(
                stage,
                Stage::Connect | Stage::Tls | Stage::NoHealthyServer | Stage::CircuitOpen
            ),
            message: message.into(),
            breaker: None,
        }
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
        self.stage.status()
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
    fn only_pre_application_failures_are_retry_safe() {
        assert!(ProxyError::new(Stage::Connect, "refused").retry_safe);
        assert!(!ProxyError::new(Stage::Timeout, "slow").retry_safe);
        assert_eq!(
            ProxyError::new(Stage::Tls, "bad cert").to_string(),
            "tls: bad cert"
        );
    }
}
