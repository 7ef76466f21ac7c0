//! `POST /api/track/ {namespace, name, timestamp, value}`: one numeric measurement, the
//! write of the Django REST framework tracking APIs. It becomes an event of category
//! `namespace` and name `name` whose `value` feeds aggregation, in the session
//! `measurements:<namespace>:<name>` (one series per measured thing), with empty `data`.
//! Answered `201` with the created object, as DRF's `CreateAPIView` answers; other fields
//! of the body are ignored, as DRF's serializers ignore them.

use crate::adapter::Adapter;
use crate::batch;
use crate::batch::ItemStatus;
use crate::error::IngestError;
use crate::routes::Write;
use crate::sink::EventSink;
use crate::translate::{self, DoorError};
use eye_model::event::{FieldError, MAX_SESSION_ID_CHARS};
use eye_model::time::EventTime;
use serde_json::{json, Map, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

/// Event fields → the fields this door's clients send.
const FIELDS: [(&str, &str); 7] = [
    ("/category", "/namespace"),
    ("/name", "/name"),
    ("/timestamp", "/timestamp"),
    ("/value", "/value"),
    // Made from namespace and name, whose own errors say what is wrong.
    ("/session_id", ""),
    ("/data", ""),
    ("", ""),
];

/// The event a measurement becomes, and the rules of this door it broke (the event rules
/// judge the rest).
fn to_event(m: &Map<String, Value>) -> (Value, Vec<FieldError>) {
    let text = |k: &str| m.get(k).and_then(Value::as_str);
    let session_id = match (text("namespace"), text("name")) {
        (Some(namespace), Some(name)) => format!("measurements:{namespace}:{name}")
            .chars()
            .take(MAX_SESSION_ID_CHARS)
            .collect(),
        _ => "measurements".to_owned(),
    };
    let mut errors = Vec::new();
    if m.get("value").is_none_or(Value::is_null) {
        errors.push(FieldError::new(
            "/value",
            "required",
            "value is required: the number measured",
        ));
    }
    let field = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    let event = json!({
        "session_id": session_id,
        "category": field("namespace"),
        "name": field("name"),
        "timestamp": translate::numeric_text_as_number(field("timestamp")),
        "value": field("value"),
        "data": {},
    });
    (event, errors)
}

/// What `201` answers: the measurement as stored, its time in ISO 8601 UTC.
fn created(event_id: &str, m: &Map<String, Value>, time: Option<EventTime>) -> Value {
    json!({
        "event_id": event_id,
        "namespace": m.get("namespace"),
        "name": m.get("name"),
        "timestamp": time.map(EventTime::to_rfc3339),
        "value": m.get("value"),
    })
}

/// `POST /api/track/`.
pub async fn track<S: EventSink>(mut w: Write<S>) -> Result<Response, IngestError> {
    let (body, state, caller, held) = w.parts();
    let received_at = EventTime::now();
    let sent = match translate::object(body) {
        Ok(m) => m,
        Err(e) => {
            batch::quarantine_body(state, &caller, Adapter::Measurements, body, &e, held).await?;
            return Err(e.into());
        }
    };
    let (event, door_errors) = to_event(&sent);
    let item = {
        let schemas = state.schemas.current();
        translate::check_item(
            &event,
            &String::from_utf8_lossy(body),
            door_errors,
            &FIELDS,
            received_at,
            state.rules(&schemas, &caller),
        )
    };
    let answer = batch::accept_items(
        state,
        &caller,
        Adapter::Measurements,
        vec![item],
        received_at,
        held,
    )
    .await?;
    match answer.body.results.into_iter().next() {
        Some(r) if r.status == ItemStatus::Accepted => {
            let id = r.event_id.map(|id| id.to_string()).unwrap_or_default();
            let time = EventTime::from_json(&event["timestamp"]).ok();
            let body = created(&id, &sent, time);
            Ok(
                warp::reply::with_status(warp::reply::json(&body), StatusCode::CREATED)
                    .into_response(),
            )
        }
        Some(r) => Err(DoorError::fields(r.errors).into()),
        None => Err(DoorError::new(
            "invalid_fields",
            "the measurement got no result",
            Vec::new(),
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn a_measurement_becomes_an_event_with_a_value() {
        let long = "n".repeat(200);
        // (sent, the event's session_id, category, name, timestamp, value, door errors)
        let cases = [
            (
                json!({"namespace": "this is namespace", "name": "this is a name", "timestamp": "2020-11-12T11:10:00", "value": 1}),
                json!("measurements:this is namespace:this is a name"),
                json!("this is namespace"),
                json!("this is a name"),
                json!("2020-11-12T11:10:00"),
                json!(1),
                vec![],
            ),
            (
                json!({"namespace": "Server-1", "name": "availableMemory", "timestamp": "1605179400", "value": 2.5, "extra": true}),
                json!("measurements:Server-1:availableMemory"),
                json!("Server-1"),
                json!("availableMemory"),
                json!(1605179400),
                json!(2.5),
                vec![],
            ),
            (
                json!({"namespace": "ns", "name": long, "timestamp": 1605179400}),
                json!(format!("measurements:ns:{long}")
                    .chars()
                    .take(128)
                    .collect::<String>()),
                json!("ns"),
                json!(long),
                json!(1605179400),
                Value::Null,
                vec!["/value"],
            ),
            (
                json!({"name": "n", "timestamp": 1, "value": 1}),
                json!("measurements"),
                Value::Null,
                json!("n"),
                json!(1),
                json!(1),
                vec![],
            ),
        ];
        for (i, (sent, session, category, name, ts, value, errors)) in cases.into_iter().enumerate()
        {
            let (event, door) = to_event(&object(sent));
            assert_eq!(event["session_id"], session, "case {i}");
            assert_eq!(event["category"], category, "case {i}");
            assert_eq!(event["name"], name, "case {i}");
            assert_eq!(event["timestamp"], ts, "case {i}");
            assert_eq!(event["value"], value, "case {i}");
            assert_eq!(event["data"], json!({}), "case {i}");
            let fields: Vec<&str> = door.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, errors, "case {i}");
        }
    }

    #[test]
    fn the_created_object_names_the_time_in_utc() {
        let sent = object(
            json!({"namespace": "a b", "name": "c", "timestamp": "2020-11-12T11:10:00", "value": 1}),
        );
        let time = EventTime::parse("2020-11-12T11:10:00").ok();
        assert_eq!(
            created("id", &sent, time),
            json!({"event_id": "id", "namespace": "a b", "name": "c", "timestamp": "2020-11-12T11:10:00.000000Z", "value": 1})
        );
    }
}
