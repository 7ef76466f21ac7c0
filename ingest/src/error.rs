//! Everything ingest can answer other than success, and its one mapping to HTTP.

use eye_common::event::ParseError;
use eye_web::error::HttpError;
use warp::http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The producer's queue is full: the broker is not keeping up.
    #[error("ingest is overloaded; retry later")]
    Overloaded,
    /// The broker did not acknowledge in time, or refused the write.
    #[error("the event store did not acknowledge the events: {0}")]
    Produce(String),
}

impl From<IngestError> for HttpError {
    fn from(e: IngestError) -> Self {
        let message = e.to_string();
        match e {
            IngestError::Parse(ParseError::MalformedJson { .. }) => {
                HttpError::new(StatusCode::BAD_REQUEST, "malformed_json", message)
            }
            IngestError::Parse(ParseError::NotEvents) => {
                HttpError::new(StatusCode::BAD_REQUEST, "not_events", message)
            }
            IngestError::Parse(ParseError::Invalid(details)) => HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_events",
                format!("{message}; nothing was accepted"),
            )
            .with_details(details),
            IngestError::Overloaded => {
                HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
                    .with_retry_after(1)
            }
            IngestError::Produce(_) => HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                format!("{message}; nothing was accepted, retry with the same event_ids"),
            )
            .with_retry_after(1),
        }
    }
}
