//! Everything ingest can answer other than success, and its one mapping to HTTP.

use crate::sink::NotTaken;
use crate::translate::DoorError;
use eye_auth::AuthError;
use eye_http::error::HttpError;
use eye_model::event::{FieldError, RequestError};
use eye_model::session::SessionError;
use warp::http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("Content-Type must be application/json (got {0:?})")]
    UnsupportedMediaType(String),
    #[error(
        "Content-Encoding must be gzip or identity, gzip at most {max} times (got {0:?})",
        max = crate::body::MAX_GZIP_LAYERS
    )]
    UnsupportedEncoding(String),
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("request body exceeds {limit} bytes once decompressed")]
    DecompressedTooLarge { limit: u64 },
    #[error("request body is not valid gzip: {0}")]
    InvalidGzip(#[source] std::io::Error),
    #[error("reading the request body failed: {0}")]
    Body(#[source] warp::Error),
    #[error("the request body did not arrive within {timeout_ms} ms")]
    BodyTimeout { timeout_ms: u64 },
    #[error("invalid session id: {}", .0.message)]
    BadSessionId(FieldError),
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A seed door's body, refused as a whole with the fields at fault.
    #[error(transparent)]
    Door(#[from] DoorError),
    /// Ingest holds as much as it may: the bytes in flight, or the producer's queue.
    #[error("ingest is overloaded ({}); retry later", .0.describe())]
    Overloaded(Overload),
    /// Over the client's event budget; answered as `eye_http::auth` answers every
    /// authentication failure.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The broker refused the write, or did not acknowledge it within the message timeout.
    #[error("the event store did not acknowledge the request: {0}")]
    Produce(#[source] NotTaken),
    /// No report on the records came at all (a producer torn down under the request): what
    /// became of them is unknown.
    #[error(
        "the event store did not acknowledge the request: no acknowledgement within {timeout_ms} ms"
    )]
    Unacknowledged { timeout_ms: u128 },
    /// Refused by Segment's tracking API, by its rules.
    #[error(transparent)]
    Segment(crate::segment::SegmentError),
    /// A replay's selection that cannot be run, with the field at fault.
    #[error("invalid replay request: {}", .0.message)]
    InvalidReplay(FieldError),
    /// The quarantine (ClickHouse) could not be read: a replay cannot start.
    #[error("the quarantine cannot be read: {0}")]
    QuarantineUnavailable(String),
}

/// What was full when a request was refused as `overloaded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// `EYE_INGEST_MAX_INFLIGHT_BYTES` is held by requests in flight.
    InflightBytes,
    /// The client's own requests hold its share of it
    /// (`EYE_INGEST_MAX_INFLIGHT_BYTES_PER_CLIENT`).
    ClientInflightBytes,
    /// librdkafka's queue is full: the broker is not keeping up.
    ProducerQueue,
}

impl Overload {
    fn describe(self) -> &'static str {
        match self {
            Self::InflightBytes => "too many bytes in flight",
            Self::ClientInflightBytes => "this client has its share of the bytes in flight",
            Self::ProducerQueue => "the producer queue is full",
        }
    }
}

impl IngestError {
    /// Why a 503 was answered, the label of the unavailability metric; `None` for any
    /// other answer.
    pub fn unavailable_reason(&self) -> Option<&'static str> {
        match self {
            // One label for both: the same budget refused, and a refusal of the share
            // while the budget has room is told apart by `eye_ingest_inflight_bytes`.
            Self::Overloaded(Overload::InflightBytes | Overload::ClientInflightBytes) => {
                Some("inflight_bytes")
            }
            Self::Overloaded(Overload::ProducerQueue) => Some("producer_queue"),
            Self::Produce(_)
            | Self::Unacknowledged { .. }
            | Self::Segment(crate::segment::SegmentError::PartlyStored { .. }) => Some("broker"),
            Self::QuarantineUnavailable(_) => Some("clickhouse"),
            _ => None,
        }
    }

    /// The machine code clients see, also the label of the rejected-requests metric.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Request(e) => e.code(),
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::UnsupportedEncoding(_) => "unsupported_encoding",
            Self::BodyTooLarge { .. } => "payload_too_large",
            Self::DecompressedTooLarge { .. } => "decompressed_too_large",
            Self::InvalidGzip(_) => "invalid_gzip",
            Self::Body(_) => "invalid_body",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::BadSessionId(_) => "invalid_session_id",
            Self::Session(SessionError::NotJson(_) | SessionError::NotAnObject) => "malformed_json",
            Self::Session(SessionError::Invalid(_)) => "invalid_session",
            Self::Door(d) => d.code,
            Self::Overloaded(_) => "overloaded",
            Self::Auth(a) => eye_http::auth::error_code(a),
            Self::Produce(_) | Self::Unacknowledged { .. } => "broker_unavailable",
            Self::Segment(e) => e.code(),
            Self::InvalidReplay(_) => "invalid_replay",
            Self::QuarantineUnavailable(_) => "clickhouse_unavailable",
        }
    }
}

impl From<IngestError> for HttpError {
    fn from(e: IngestError) -> Self {
        if let IngestError::Auth(a) = e {
            return eye_http::auth::http_error(&a);
        }
        let code = e.code();
        let message = match &e {
            IngestError::Overloaded(_)
            | IngestError::Produce(_)
            | IngestError::Unacknowledged { .. } => {
                format!(
                    "{e}; nothing was accepted: retry with the same event_ids, each is stored once"
                )
            }
            _ => e.to_string(),
        };
        let status = match &e {
            IngestError::Request(RequestError::TooManyEvents { .. })
            | IngestError::BodyTooLarge { .. }
            | IngestError::DecompressedTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::Overloaded(_)
            | IngestError::Produce(_)
            | IngestError::Unacknowledged { .. }
            | IngestError::QuarantineUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            IngestError::Segment(s) => s.status(),
            _ => StatusCode::BAD_REQUEST,
        };
        let details = match e {
            IngestError::BadSessionId(d) => vec![d],
            IngestError::Session(SessionError::Invalid(d)) => d,
            IngestError::Door(d) => d.details,
            IngestError::Segment(s) => s.details(),
            IngestError::InvalidReplay(d) => vec![d],
            _ => Vec::new(),
        };
        let err = HttpError::new(status, code, message).with_details(details);
        match status {
            StatusCode::SERVICE_UNAVAILABLE => err.with_retry_after(1),
            _ => err,
        }
    }
}
