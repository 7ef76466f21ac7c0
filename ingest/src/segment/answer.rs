//! Segment's answers: `200 {"success": true}` when every message was stored or
//! quarantined, 400 when nothing of the request can ever succeed, 503 (with `Retry-After`)
//! when the broker did not take all of it, so that the SDK sends it again.

use super::request::Door;
use crate::batch::{Answer, ItemStatus, WholeBodyError};
use crate::error::IngestError;
use eye_http::error::{ErrorDetail, HttpError};
use eye_model::event::FieldError;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

/// Why a Segment request was refused, beyond what every door can answer.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("request body is not valid JSON: {message}")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("request body must be a JSON object")]
    NotAnObject,
    #[error("a /v1/batch body must be an object whose `batch` is an array of messages")]
    NotABatch,
    #[error("the batch holds no messages")]
    EmptyBatch,
    #[error("request body is {size} bytes once decompressed; at most {limit} are accepted")]
    BatchTooLarge { size: usize, limit: u64 },
    /// Every message was rejected (and quarantined): sending them again cannot succeed.
    #[error("all {count} messages were rejected; the details say why")]
    AllRejected {
        count: usize,
        details: Vec<FieldError>,
    },
    /// The broker did not take all of the request's records, although it took some.
    #[error(
        "the event store took only part of the request ({failed} messages not stored); send it \
         again: each message is stored once, by its messageId"
    )]
    PartlyStored { failed: usize },
}

impl SegmentError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson { .. } => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::NotABatch => "not_a_batch",
            Self::EmptyBatch => "empty_batch",
            Self::BatchTooLarge { .. } => "payload_too_large",
            Self::AllRejected { .. } => "invalid_messages",
            Self::PartlyStored { .. } => "broker_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BatchTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::PartlyStored { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The per-message reasons, for the error's `details`.
    pub fn details(self) -> Vec<FieldError> {
        match self {
            Self::AllRejected { details, .. } => details,
            _ => Vec::new(),
        }
    }
}

impl WholeBodyError for SegmentError {
    fn code(&self) -> &str {
        SegmentError::code(self)
    }
}

impl From<SegmentError> for IngestError {
    fn from(e: SegmentError) -> Self {
        IngestError::Segment(e)
    }
}

/// A message the request's answer reports as refused.
#[derive(Debug, Serialize)]
struct Refused {
    /// Its position in `batch` (0 for the single-message routes).
    index: usize,
    errors: Vec<FieldError>,
}

/// `{"success": true}`, and, when some messages were refused (and quarantined), which and
/// why: extra fields Segment's SDKs do not read.
#[derive(Debug, Serialize)]
struct Success {
    success: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rejected: Vec<Refused>,
}

/// Segment's answer to what the core made of a request.
///
/// A request part of which the broker did not take is answered 503, although the rest was
/// stored: Segment's SDKs read nothing of a 200 but its status, so the per-item `failed` of
/// `/v1`'s 207 would be lost on them, while a 503 makes them send the whole request again.
/// Sending again is harmless for what was stored: each message's event id comes from its
/// `messageId` (every SDK sets one) and its session and client timestamp from the message
/// itself, so the copy is the same event and the consumer stores only its first copy. Only
/// a message without `messageId` (a hand-written request) can be stored twice this way,
/// and a rejected message is quarantined again on each attempt.
pub fn respond(door: Door, answer: Answer) -> Result<Response, IngestError> {
    let success = outcome(door, answer)?;
    Ok(warp::reply::with_status(warp::reply::json(&success), StatusCode::OK).into_response())
}

/// The body of a 200, or why the request is refused.
fn outcome(door: Door, answer: Answer) -> Result<Success, SegmentError> {
    let body = answer.body;
    if body.failed > 0 {
        return Err(SegmentError::PartlyStored {
            failed: body.failed,
        });
    }
    let refused: Vec<Refused> = body
        .results
        .into_iter()
        .filter(|r| r.status == ItemStatus::Rejected)
        .map(|r| Refused {
            index: r.index,
            errors: r.errors,
        })
        .collect();
    if body.accepted == 0 && !refused.is_empty() {
        let count = refused.len();
        let details = refused
            .into_iter()
            .flat_map(|r| {
                let prefix = match door {
                    Door::Batch => format!("/batch/{}", r.index),
                    _ => String::new(),
                };
                r.errors.into_iter().map(move |mut e| {
                    e.field = format!("{prefix}{}", e.field);
                    e
                })
            })
            .collect();
        return Err(SegmentError::AllRejected { count, details });
    }
    Ok(Success {
        success: true,
        rejected: refused,
    })
}

/// Any refusal on a Segment route, as Segment's Python SDKs read it: the one error shape
/// with its `code` and `message` repeated at the top. `analytics-python` and
/// `rudder-sdk-python` read `payload['code']` and `payload['message']` of every non-200
/// answer; without them they fail with a `KeyError`, which they retry (up to ten times,
/// backing off) as if the network had failed, where a 4xx other than 429 makes them give
/// up at once. Other rejections (no such route, wrong method) pass on.
pub async fn refusal(rejection: Rejection) -> Result<Response, Rejection> {
    match rejection.find::<HttpError>() {
        Some(e) => Ok(refusal_response(e)),
        None => Err(rejection),
    }
}

fn refusal_response(e: &HttpError) -> Response {
    #[derive(Serialize)]
    struct Refusal<'a> {
        error: &'a ErrorDetail,
        code: &'a str,
        message: &'a str,
    }
    let body = Refusal {
        error: &e.body,
        code: &e.body.code,
        message: &e.body.message,
    };
    // Status, Retry-After and WWW-Authenticate as every service answers them.
    let mut res = e.clone().into_response();
    *res.body_mut() = warp::reply::json(&body).into_response().into_body();
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchResponse, ItemResult};
    use uuid::Uuid;

    fn result(index: usize, status: &'static str, field: &str) -> ItemResult {
        ItemResult {
            index,
            status: match status {
                "accepted" => ItemStatus::Accepted,
                "rejected" => ItemStatus::Rejected,
                _ => ItemStatus::Failed,
            },
            event_id: (status == "accepted").then(Uuid::now_v7),
            errors: match status {
                "accepted" => Vec::new(),
                _ => vec![FieldError::new(field, "required", "m")],
            },
        }
    }

    fn answer(results: Vec<ItemResult>) -> Answer {
        let count = |s: &str| results.iter().filter(|r| r.status.as_str() == s).count();
        Answer {
            status: StatusCode::ACCEPTED,
            body: BatchResponse {
                accepted: count("accepted"),
                rejected: count("rejected"),
                failed: count("failed"),
                event_ids: Vec::new(),
                results,
                error: None,
            },
        }
    }

    fn json(s: Success) -> serde_json::Value {
        serde_json::to_value(s).expect("JSON")
    }

    #[tokio::test]
    async fn refusals_carry_code_and_message_at_the_top() {
        let e = HttpError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "bad key")
            .with_www_authenticate("Basic realm=\"the-eye\"")
            .with_retry_after(3);
        use warp::Filter;
        let refused = warp::any()
            .and_then(move || {
                let e = e.clone();
                async move { Err::<Response, _>(warp::reject::custom(e)) }
            })
            .recover(refusal)
            .unify();
        let res = warp::test::request().reply(&refused).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()["retry-after"], "3");
        assert_eq!(res.headers()["www-authenticate"], "Basic realm=\"the-eye\"");
        let body: serde_json::Value = serde_json::from_slice(res.body()).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({"code": "invalid_credentials", "message": "bad key",
                "error": {"code": "invalid_credentials", "message": "bad key"}})
        );
        // Not this door's to answer: warp tries the other routes.
        assert!(refusal(warp::reject::not_found()).await.is_err());
    }

    #[test]
    fn answers_follow_what_became_of_the_messages() {
        let ok = outcome(Door::Batch, answer(vec![result(0, "accepted", "")])).expect("200");
        assert_eq!(json(ok), serde_json::json!({"success": true}));

        let partial = outcome(
            Door::Batch,
            answer(vec![
                result(0, "accepted", ""),
                result(1, "rejected", "/anonymousId"),
            ]),
        )
        .expect("200");
        assert_eq!(
            json(partial),
            serde_json::json!({"success": true, "rejected": [{"index": 1, "errors": [
                {"field": "/anonymousId", "code": "required", "message": "m"}]}]})
        );

        let cases = [
            (
                Door::Batch,
                vec![result(0, "rejected", "/event"), result(1, "rejected", "")],
                "invalid_messages",
                vec!["/batch/0/event", "/batch/1"],
            ),
            (
                Door::Track,
                vec![result(0, "rejected", "/event")],
                "invalid_messages",
                vec!["/event"],
            ),
            (
                Door::Batch,
                vec![result(0, "accepted", ""), result(1, "failed", "")],
                "broker_unavailable",
                vec![],
            ),
            (
                Door::Page,
                vec![result(0, "rejected", "/type"), result(1, "failed", "")],
                "broker_unavailable",
                vec![],
            ),
        ];
        for (i, (door, results, code, fields)) in cases.into_iter().enumerate() {
            let e = outcome(door, answer(results)).expect_err("refused");
            assert_eq!(e.code(), code, "case {i}");
            let got: Vec<String> = e.details().into_iter().map(|d| d.field).collect();
            assert_eq!(got, fields, "case {i}");
        }
    }
}
