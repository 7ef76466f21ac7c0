//! Doors that take one event per request in the `/v1` event shape and answer with that
//! event as it was sent: `201` with the sent object and its `event_id` when it was stored,
//! `400` with the one error shape and the sent object when it was not.

use crate::adapter::Adapter;
use crate::batch::{self, ItemResult, ItemStatus};
use crate::error::IngestError;
use crate::routes::Write;
use crate::sink::EventSink;
use crate::translate::DoorError;
use eye_http::error::HttpError;
use eye_model::event::{parse_batch, RequestError};
use eye_model::time::EventTime;
use serde_json::{Map, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

/// Handles one event sent to `adapter`'s door: the core's checks, delivery and quarantine,
/// answered as the door answers.
pub async fn accept<S: EventSink>(
    mut w: Write<S>,
    adapter: Adapter,
) -> Result<Response, IngestError> {
    let (body, state, caller, held) = w.parts();
    let received_at = EventTime::now();
    let parsed = {
        let schemas = state.schemas.current();
        one_object(body).and_then(|()| {
            parse_batch(body, received_at, state.rules(&schemas, &caller))
                .map_err(BodyRefusal::Request)
        })
    };
    let items = match parsed {
        Ok(items) => items,
        Err(BodyRefusal::Request(e)) => {
            batch::quarantine_body(state, &caller, adapter, body, &e, held).await?;
            return Err(e.into());
        }
        Err(BodyRefusal::Door(e)) => {
            batch::quarantine_body(state, &caller, adapter, body, &e, held).await?;
            return Err(e.into());
        }
    };
    // The body is one object (checked above), and the rules have judged it: what was sent is
    // that object, whatever its fields.
    let sent: Map<String, Value> = serde_json::from_slice(body).unwrap_or_default();
    let answer = batch::accept_items(state, &caller, adapter, items, received_at, held).await?;
    Ok(match answer.body.results.into_iter().next() {
        Some(result) => answer_one(sent, result),
        // One item in, one result out: a request of no records has none only when it had none.
        None => HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the event got no result",
        )
        .into_response(),
    })
}

/// Why a body was refused before its event was looked at.
enum BodyRefusal {
    Request(RequestError),
    Door(DoorError),
}

/// These doors take one event object: an array (a `/v1` batch) is refused as a whole. A
/// body that is not JSON at all is left to `parse_batch`, which says where it breaks.
fn one_object(body: &[u8]) -> Result<(), BodyRefusal> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() => {
            Err(BodyRefusal::Door(DoorError::new(
                "not_one_event",
                "the request body must be one event object; send batches to POST /v1/events",
                Vec::new(),
            )))
        }
        _ => Ok(()),
    }
}

/// `201` with the event as sent and its id, or `400` with the rules it broke and the event
/// as sent.
fn answer_one(sent: Map<String, Value>, result: ItemResult) -> Response {
    let (status, body) = one_answer(sent, result);
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn one_answer(mut sent: Map<String, Value>, result: ItemResult) -> (StatusCode, Value) {
    match result.event_id {
        Some(id) if result.status == ItemStatus::Accepted => {
            sent.insert("event_id".into(), Value::String(id.to_string()));
            (StatusCode::CREATED, Value::Object(sent))
        }
        _ => {
            let e = HttpError::from(IngestError::Door(DoorError::new(
                "invalid_event",
                "the event was rejected and quarantined; each detail names its field and rule",
                result.errors,
            )));
            let body = serde_json::json!({"error": e.body, "event": sent});
            (e.status, body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_model::event::FieldError;
    use serde_json::json;
    use uuid::Uuid;

    #[test]
    fn only_a_json_array_is_refused_before_parsing() {
        let cases: [(&[u8], bool); 5] = [
            (b"{\"a\": 1}", true),
            (b"  [{\"a\": 1}]", false),
            (b"[1,]", true),
            (b"nope", true),
            (b"", true),
        ];
        for (body, passes) in cases {
            assert_eq!(one_object(body).is_ok(), passes, "{body:?}");
        }
    }

    #[test]
    fn the_answer_carries_the_event_as_sent() {
        let id = Uuid::now_v7();
        let sent = json!({"session_id": "s", "category": "party", "name": "AppName", "data": {}, "timestamp": "2021-09-26 09:15:27.243860"});
        let Value::Object(sent) = sent else {
            unreachable!("an object")
        };
        let result = |status, event_id, errors| ItemResult {
            index: 0,
            status,
            event_id,
            errors,
        };
        let bad = FieldError::new("/timestamp", "invalid_timestamp", "no");
        let mut stored = sent.clone();
        stored.insert("event_id".into(), json!(id.to_string()));
        let cases = [
            (
                result(ItemStatus::Accepted, Some(id), vec![]),
                201,
                Value::Object(stored),
            ),
            (
                result(ItemStatus::Rejected, None, vec![bad]),
                400,
                json!({"error": {"code": "invalid_event",
                    "message": "the event was rejected and quarantined; each detail names its field and rule",
                    "details": [{"field": "/timestamp", "code": "invalid_timestamp", "message": "no"}]},
                    "event": sent.clone()}),
            ),
        ];
        for (i, (result, status, body)) in cases.into_iter().enumerate() {
            let (got_status, got) = one_answer(sent.clone(), result);
            assert_eq!((got_status.as_u16(), got), (status, body), "case {i}");
        }
    }
}
