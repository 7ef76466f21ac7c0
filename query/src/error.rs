//! Everything the query service can answer other than success, and its one mapping to HTTP.

use eye_http::error::HttpError;
use eye_model::event::FieldError;
use eye_store::StoreError;
use warp::http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid parameter {}: {}", .0.field, .0.message)]
    BadParameter(FieldError),
    #[error("no events stored for session {0:?}")]
    SessionNotFound(String),
    #[error("no link and no stored event names {0:?}")]
    IdentityNotFound(String),
    #[error("no deletion {0}")]
    DeletionNotFound(String),
    /// A numbered page after the last one (the first page always exists, perhaps empty).
    #[error("Invalid page.")]
    PageNotFound(FieldError),
    #[error("the request body is not a JSON object: {0}")]
    MalformedBody(String),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The schema directory (`EYE_QUERY_SCHEMA_DIR`) cannot be read.
    #[error("the event schemas cannot be read: {0}")]
    Schemas(String),
    #[error("the event store is unavailable")]
    Store(#[from] StoreError),
}

impl From<QueryError> for HttpError {
    fn from(e: QueryError) -> Self {
        let message = e.to_string();
        match e {
            QueryError::BadParameter(detail) => {
                HttpError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
                    .with_details(vec![detail])
            }
            QueryError::SessionNotFound(_) => {
                HttpError::new(StatusCode::NOT_FOUND, "session_not_found", message)
            }
            QueryError::IdentityNotFound(_) => {
                HttpError::new(StatusCode::NOT_FOUND, "identity_not_found", message)
            }
            QueryError::DeletionNotFound(_) => {
                HttpError::new(StatusCode::NOT_FOUND, "deletion_not_found", message)
            }
            QueryError::PageNotFound(detail) => {
                HttpError::new(StatusCode::NOT_FOUND, "invalid_page", message)
                    .with_details(vec![detail])
            }
            QueryError::MalformedBody(_) => {
                HttpError::new(StatusCode::BAD_REQUEST, "malformed_json", message)
            }
            QueryError::BodyTooLarge(_) => {
                HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
            }
            QueryError::Schemas(_) => {
                tracing::error!(error = %message, "schema directory unreadable");
                HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "schemas_unavailable",
                    message,
                )
            }
            QueryError::Store(inner) => {
                tracing::error!(error = %inner, "store read failed");
                HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    message,
                )
                .with_retry_after(1)
            }
        }
    }
}
