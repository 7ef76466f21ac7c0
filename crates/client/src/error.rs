//! What can go wrong talking to The Eye.

use eye_model::api::{ErrorBody, ErrorDetail};
use std::time::Duration;

/// Why a send or a read did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: the service is unreachable, the connection broke, or it timed out.
    #[error("{url}: {message}")]
    Transport {
        /// What was asked.
        url: String,
        /// What the HTTP stack said.
        message: String,
        /// Refused or unreachable, as opposed to broken after connecting.
        connect: bool,
    },
    /// The service answered with an error in its error shape.
    #[error("{status} {}: {}", .error.code, .error.message)]
    Api {
        /// The HTTP status.
        status: u16,
        /// The service's code, message and per-field details.
        error: ErrorDetail,
        /// The service's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The token endpoint refused the client credentials (its body is OAuth2's).
    #[error("the token endpoint answered {status}: {body}")]
    Token {
        /// The HTTP status.
        status: u16,
        /// OAuth2's error body.
        body: String,
    },
    /// An answer that is not what the API documents.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// `FullQueue::FailFast` and the queue is full.
    #[error("the send queue is full")]
    QueueFull,
    /// The client was shut down.
    #[error("the client is shut down")]
    Closed,
    /// A read on a client built without a query URL.
    #[error("no query URL: set one with ClientBuilder::query_url")]
    NoQueryUrl,
}

impl ClientError {
    pub(crate) fn transport(url: &str, e: reqwest::Error) -> Self {
        Self::Transport {
            url: url.to_owned(),
            message: e.to_string(),
            connect: e.is_connect(),
        }
    }

    /// The HTTP status of an API or token error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Token { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth sending again unchanged: no answer, 429, 503 or another 5xx. Any other 4xx
    /// would be refused again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Api { status, .. } | Self::Token { status, .. } => {
                *status == 429 || *status >= 500
            }
            _ => false,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// An error answer: the API's error shape when the body is one, else its text.
    pub(crate) fn from_answer(status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        let error = serde_json::from_str::<ErrorBody>(body)
            .map(|b| b.error)
            .unwrap_or_else(|_| ErrorDetail {
                code: "http_error".into(),
                message: body.chars().take(500).collect(),
                details: Vec::new(),
            });
        Self::Api {
            status,
            error,
            retry_after,
        }
    }
}

/// `Retry-After` in seconds, as the services send it.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_can_succeed_later_is_retried() {
        let api = |status| ClientError::from_answer(status, None, "{}");
        // (error, retryable)
        let cases = [
            (api(400), false),
            (api(401), false),
            (api(403), false),
            (api(404), false),
            (api(408), false),
            (api(413), false),
            (api(429), true),
            (api(500), true),
            (api(502), true),
            (api(503), true),
            (
                ClientError::Transport {
                    url: "u".into(),
                    message: "refused".into(),
                    connect: true,
                },
                true,
            ),
            (ClientError::QueueFull, false),
        ];
        for (e, want) in cases {
            assert_eq!(e.is_retryable(), want, "{e}");
        }
    }

    #[test]
    fn error_answers_keep_the_services_code_and_message() {
        let e = ClientError::from_answer(
            401,
            None,
            r#"{"error":{"code":"invalid_credentials","message":"the credential is not valid"}}"#,
        );
        assert_eq!(
            e.to_string(),
            "401 invalid_credentials: the credential is not valid"
        );
        let e = ClientError::from_answer(502, Some(Duration::from_secs(2)), "Bad Gateway");
        assert_eq!(e.to_string(), "502 http_error: Bad Gateway");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    }
}
