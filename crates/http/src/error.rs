//! The one error shape every service answers with:
//!
//! ```json
//! {"error": {"code": "invalid_event", "message": "...", "details": [{"field": "/0/timestamp", "code": "...", "message": "..."}]}}
//! ```
//!
//! Each service maps its own error enum into [`HttpError`] in one `From` impl, rejects with
//! it, and installs [`recover`], which also turns warp's own rejections (unknown route,
//! wrong method, body too large) into the same shape.

use eye_model::event::FieldError;
use serde::Serialize;
use std::convert::Infallible;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

pub use eye_model::api::ErrorDetail;

#[derive(Debug, Clone, Serialize)]
struct ErrorBody<'a> {
    error: &'a ErrorDetail,
}

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: StatusCode,
    pub body: ErrorDetail,
    /// Sent as `Retry-After` (seconds) when set.
    pub retry_after_secs: Option<u32>,
    /// Sent as `WWW-Authenticate` when set (401 answers, RFC 6750 §3).
    pub www_authenticate: Option<String>,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorDetail {
                code: code.into(),
                message: message.into(),
                details: Vec::new(),
            },
            retry_after_secs: None,
            www_authenticate: None,
        }
    }

    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.body.details = details;
        self
    }

    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn with_www_authenticate(mut self, challenge: impl Into<String>) -> Self {
        self.www_authenticate = Some(challenge.into());
        self
    }

    pub fn into_response(self) -> Response {
        let mut res = warp::reply::with_status(
            warp::reply::json(&ErrorBody { error: &self.body }),
            self.status,
        )
        .into_response();
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(v) = self
            .www_authenticate
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        res
    }
}

impl warp::reject::Reject for HttpError {}

impl Reply for HttpError {
    fn into_response(self) -> Response {
        HttpError::into_response(self)
    }
}

/// Maps every rejection to the error shape. Install once per service with `.recover(recover)`.
pub async fn recover(rej: warp::Rejection) -> Result<Response, Infallible> {
    let err = if let Some(e) = rej.find::<HttpError>() {
        e.clone()
    } else if rej.is_not_found() {
        HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    } else if let Some(e) = rej.find::<warp::reject::PayloadTooLarge>() {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            e.to_string(),
        )
    } else if let Some(e) = rej.find::<warp::reject::LengthRequired>() {
        HttpError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            e.to_string(),
        )
    } else if let Some(e) = rej.find::<warp::reject::UnsupportedMediaType>() {
        HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            e.to_string(),
        )
    } else if let Some(e) = rej.find::<warp::reject::InvalidQuery>() {
        HttpError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string())
    } else if let Some(e) = rej.find::<warp::reject::MissingHeader>() {
        HttpError::new(StatusCode::BAD_REQUEST, "missing_header", e.to_string())
    } else if let Some(e) = rej.find::<warp::reject::InvalidHeader>() {
        HttpError::new(StatusCode::BAD_REQUEST, "invalid_header", e.to_string())
    } else if let Some(e) = rej.find::<warp::cors::CorsForbidden>() {
        // A request from an origin, or a preflight asking for a method or header, that the
        // configured CORS policy does not allow (`EYE_HTTP_CORS_ALLOWED_ORIGINS`).
        HttpError::new(StatusCode::FORBIDDEN, "cors_forbidden", e.to_string())
    } else if rej.find::<warp::reject::MethodNotAllowed>().is_some() {
        HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        )
    } else {
        tracing::error!(rejection = ?rej, "unhandled rejection");
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    };
    Ok(err.into_response())
}
