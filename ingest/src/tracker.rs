//! Machine sessions as the Flask session trackers speak them:
//! `POST /start_session {userId, machineId, startAt, orgId, sessionId?}`,
//! `POST /add_event {sessionId, events: [{eventAt, eventType, payload}]}` and
//! `POST /end_session {sessionId, endAt}`. Each answers `200` with the text
//! `request received` as `text/html; charset=utf-8`, which is what Flask makes of a view
//! returning a plain string, once Kafka has acknowledged the records.
//!
//! Starts and ends are the `/v1/sessions` records (`eye_model::session`). Events are of
//! category `machine`, named `eventType` when that is a valid event name and its slug
//! otherwise (the text as sent kept in `data._eventType`), with `payload` as `data`. Their
//! ids are derived from the client, the session and the event as sent, so a resent request
//! stores each event once. Times are epoch seconds (numbers, or numeric text) or
//! `YYYY-MM-DD HH:MM:SS[.fff]` (UTC), or any time `/v1` reads. Other fields are ignored, as
//! the Flask views ignore them.

use crate::adapter::Adapter;
use crate::batch::ItemStatus;
use crate::batch::{self, Caller};
use crate::error::IngestError;
use crate::routes::Write;
use crate::sink::{EventSink, Records};
use crate::translate::{self, DoorError};
use eye_model::event::{
    EventName, FieldError, Hints, Item, Rejected, SessionId, MAX_TYPE_CHARS, TYPE_PUNCTUATION,
};
use eye_model::session::{self, SessionChange, SessionError};
use eye_model::time::{EventTime, TimeBounds};
use serde_json::{json, Map, Value};
use uuid::Uuid;
use warp::http::header::{HeaderValue, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;

/// The answer of every tracker write.
pub const RECEIVED: &str = "request received";
/// The header that tells a client the id of the session it started.
pub const SESSION_ID_HEADER: &str = "x-session-id";
/// The category of every tracker event.
pub const CATEGORY: &str = "machine";
/// Where the event ids of tracker events are derived (UUIDv5).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c1e_7f0a_52d4_4b8e_9d3a_0e2f_1b7c_4a95);

/// Session fields → the fields the tracker sends.
const SESSION_FIELDS: [(&str, &str); 6] = [
    ("/session_id", "/sessionId"),
    ("/user_id", "/userId"),
    ("/machine_id", "/machineId"),
    ("/org_id", "/orgId"),
    ("/started_at", "/startAt"),
    ("/ended_at", "/endAt"),
];

/// Event fields → the fields of one item of `events`.
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("/timestamp", "/eventAt"),
    ("/name", "/eventType"),
    ("/data", "/payload"),
    // Set by this door, not sent: only the item as a whole can be at fault.
    ("/category", ""),
    ("/session_id", ""),
    ("/event_id", ""),
    ("", ""),
];

/// A start: the `/v1/sessions` record of `{userId, machineId, startAt, orgId, sessionId?}`.
pub fn parse_start(
    body: &[u8],
    received_at: EventTime,
    bounds: TimeBounds,
) -> Result<SessionChange, DoorError> {
    let sent = translate::object(body)?;
    let mut door = Vec::new();
    let mut mapped = Map::new();
    for (from, to) in [
        ("sessionId", "session_id"),
        ("userId", "user_id"),
        ("machineId", "machine_id"),
        ("startAt", "started_at"),
    ] {
        if let Some(v) = sent.get(from) {
            mapped.insert(to.into(), translate::numeric_text_as_number(v.clone()));
        }
    }
    // The reads answer the integer sent: an org named by text has no such answer.
    match sent.get("orgId") {
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
            mapped.insert("org_id".into(), Value::Number(n.clone()));
        }
        None | Some(Value::Null) => {}
        Some(_) => door.push(FieldError::new(
            "/orgId",
            "wrong_type",
            "orgId must be an integer",
        )),
    }
    let parsed = session::parse_start(mapped_bytes(&mapped).as_slice(), received_at, bounds);
    let mut errors = session_errors(parsed.as_ref().err());
    if !door.is_empty() {
        errors.retain(|e| e.field != "/orgId");
        errors.extend(door);
    }
    match parsed {
        Ok(change) if errors.is_empty() => Ok(change),
        _ => Err(DoorError::fields(errors)),
    }
}

/// An end: the `/v1/sessions/{id}/end` record of `{sessionId, endAt}`.
pub fn parse_end(
    body: &[u8],
    received_at: EventTime,
    bounds: TimeBounds,
) -> Result<SessionChange, DoorError> {
    let sent = translate::object(body)?;
    let mut errors = Vec::new();
    let id = session_id(sent.get("sessionId"), &mut errors);
    let mut mapped = Map::new();
    if let Some(v) = sent.get("endAt") {
        mapped.insert(
            "ended_at".into(),
            translate::numeric_text_as_number(v.clone()),
        );
    }
    // The end time is checked even when the id is not, so one answer names every fault.
    let checked_as = id.clone().unwrap_or_else(SessionId::generate);
    let parsed = session::parse_end(&checked_as, &mapped_bytes(&mapped), received_at, bounds);
    errors.extend(session_errors(parsed.as_ref().err()));
    match (parsed, id) {
        (Ok(change), Some(_)) if errors.is_empty() => Ok(change),
        _ => Err(DoorError::fields(errors)),
    }
}

fn mapped_bytes(m: &Map<String, Value>) -> Vec<u8> {
    Value::Object(m.clone()).to_string().into_bytes()
}

/// The field errors of a session record, named as the tracker names its fields.
fn session_errors(e: Option<&SessionError>) -> Vec<FieldError> {
    match e {
        Some(SessionError::Invalid(errors)) => errors
            .iter()
            .map(|e| FieldError {
                field: translate::rename_pointer(&e.field, &SESSION_FIELDS),
                ..e.clone()
            })
            .collect(),
        // The door sent the session parser an object it built.
        Some(other) => vec![FieldError::new("", "invalid_session", other.to_string())],
        None => Vec::new(),
    }
}

fn session_id(v: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<SessionId> {
    let field = "/sessionId";
    match v {
        Some(Value::String(s)) => SessionId::parse(s)
            .map_err(|(code, message)| errors.push(FieldError::new(field, code, message)))
            .ok(),
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field, "required", "sessionId is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(
                field,
                "wrong_type",
                "sessionId must be a string",
            ));
            None
        }
    }
}

/// The session and the items of an `add_event` body, each item with its text as sent.
pub fn parse_add_event(body: &[u8]) -> Result<(SessionId, Vec<(String, Value)>), DoorError> {
    let mut sent = translate::object(body)?;
    let mut errors = Vec::new();
    let id = session_id(sent.get("sessionId"), &mut errors);
    let events = match sent.remove("events") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                "/events",
                "required",
                "events is required: a list of {eventAt, eventType, payload}",
            ));
            Vec::new()
        }
        Some(_) => {
            errors.push(FieldError::new(
                "/events",
                "wrong_type",
                "events must be a list of {eventAt, eventType, payload}",
            ));
            Vec::new()
        }
    };
    match id {
        Some(id) if errors.is_empty() => {
            Ok((id, events.into_iter().map(|e| (e.to_string(), e)).collect()))
        }
        _ => Err(DoorError::fields(errors)),
    }
}

/// The event name of an `eventType`: itself when it is a valid name, else its slug (each
/// character a name may not hold becomes `_`, spaces at the ends go, cut to
/// [`MAX_TYPE_CHARS`]; `_` when nothing is left).
pub fn event_name(event_type: &str) -> String {
    if EventName::parse(event_type).is_ok() {
        return event_type.to_owned();
    }
    let slug: String = event_type
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || TYPE_PUNCTUATION.contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cut: String = slug
        .trim_matches(' ')
        .chars()
        .take(MAX_TYPE_CHARS)
        .collect();
    match cut.trim_end_matches(' ') {
        "" => "_".to_owned(),
        name => name.to_owned(),
    }
}

/// JSON text with every object's keys in order, so that equal values have equal text
/// whatever order their keys were sent in.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// The id of an event `item` of `session` from `client`: the same for the same event sent
/// again, wherever it stands in its request.
pub fn event_id(client: &str, session: &SessionId, item: &Value) -> Uuid {
    let name = format!("{client}\n{}\n{}", session.as_str(), canonical(item));
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

/// The event an item of `events` becomes (before the event rules judge it).
pub fn to_event(client: &str, session: &SessionId, item: &Map<String, Value>) -> Value {
    let (name, renamed_from) = match item.get("eventType") {
        Some(Value::String(sent)) => {
            let name = event_name(sent);
            let renamed = (name != *sent).then(|| sent.clone());
            (Value::String(name), renamed)
        }
        other => (other.cloned().unwrap_or(Value::Null), None),
    };
    let data = match (item.get("payload"), renamed_from) {
        (Some(Value::Object(payload)), Some(sent)) => {
            let mut data = payload.clone();
            data.insert("_eventType".into(), Value::String(sent));
            Value::Object(data)
        }
        (payload, _) => payload.cloned().unwrap_or(Value::Null),
    };
    let at = item.get("eventAt").cloned().unwrap_or(Value::Null);
    json!({
        "event_id": event_id(client, session, &Value::Object(item.clone())).to_string(),
        "session_id": session,
        "category": CATEGORY,
        "name": name,
        "data": data,
        "timestamp": translate::numeric_text_as_number(at),
    })
}

/// One item of `events`, judged by the event rules; a rejection keeps the item as sent,
/// its errors pointing into it.
fn item(
    client: &str,
    session: &SessionId,
    (text, sent): (String, Value),
    received_at: EventTime,
    rules: eye_model::event::Rules<'_>,
) -> Item {
    match sent {
        Value::Object(m) => {
            let event = to_event(client, session, &m);
            translate::check_item(&event, &text, Vec::new(), &EVENT_FIELDS, received_at, rules)
        }
        _ => Item::Rejected(Rejected {
            raw: text,
            errors: vec![FieldError::new(
                "",
                "not_an_object",
                "each event must be a JSON object {eventAt, eventType, payload}",
            )],
            hints: Hints {
                session_id: session.as_str().to_owned(),
                category: CATEGORY.to_owned(),
                ..Hints::default()
            },
        }),
    }
}

fn received(session: Option<&SessionId>) -> Response {
    let mut res = Response::new(RECEIVED.into());
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Some(v) = session.and_then(|s| HeaderValue::from_str(s.as_str()).ok()) {
        res.headers_mut().insert(SESSION_ID_HEADER, v);
    }
    *res.status_mut() = StatusCode::OK;
    res
}

/// Quarantines a body this door refused whole, and answers the refusal.
async fn refuse<S: EventSink>(w: &mut Write<S>, e: DoorError) -> Result<Response, IngestError> {
    let (body, state, caller, held) = w.parts();
    batch::quarantine_body(state, &caller, Adapter::Tracker, body, &e, held).await?;
    Err(e.into())
}

/// `POST /start_session`.
pub async fn start_session<S: EventSink>(mut w: Write<S>) -> Result<Response, IngestError> {
    let parsed = parse_start(&w.body, EventTime::now(), w.state.limits.time);
    record_session(&mut w, parsed).await
}

/// `POST /end_session`.
pub async fn end_session<S: EventSink>(mut w: Write<S>) -> Result<Response, IngestError> {
    let parsed = parse_end(&w.body, EventTime::now(), w.state.limits.time);
    record_session(&mut w, parsed).await
}

async fn record_session<S: EventSink>(
    w: &mut Write<S>,
    parsed: Result<SessionChange, DoorError>,
) -> Result<Response, IngestError> {
    let change = match parsed {
        Ok(c) => c,
        Err(e) => return refuse(w, e).await,
    };
    let (_, state, _, held) = w.parts();
    batch::produce(state, held, Records::session(&change)).await?;
    Ok(received(Some(&change.session_id)))
}

/// `POST /add_event`: every valid event is stored; when some are not, they are quarantined
/// and the answer is `400` naming each one's fields (`/events/<index>/...`).
pub async fn add_event<S: EventSink>(mut w: Write<S>) -> Result<Response, IngestError> {
    let (session, items) = match parse_add_event(&w.body) {
        Ok(parsed) => parsed,
        Err(e) => return refuse(&mut w, e).await,
    };
    if items.is_empty() {
        return Ok(received(None));
    }
    let (_, state, caller, held) = w.parts();
    let received_at = EventTime::now();
    let items: Vec<Item> = {
        let schemas = state.schemas.current();
        let client = caller.client_id().to_owned();
        items
            .into_iter()
            .map(|i| {
                item(
                    &client,
                    &session,
                    i,
                    received_at,
                    state.rules(&schemas, &caller),
                )
            })
            .collect()
    };
    let answer =
        batch::accept_items(state, &caller, Adapter::Tracker, items, received_at, held).await?;
    let n = answer.body.results.len();
    let rejected: Vec<FieldError> = answer
        .body
        .results
        .into_iter()
        .filter(|r| r.status != ItemStatus::Accepted)
        .flat_map(|r| {
            let at = format!("/events/{}", r.index);
            r.errors.into_iter().map(move |e| FieldError {
                field: format!("{at}{}", e.field),
                ..e
            })
        })
        .collect();
    if rejected.is_empty() {
        return Ok(received(None));
    }
    let refused = answer.body.rejected + answer.body.failed;
    Err(DoorError::new(
        "invalid_events",
        format!(
            "{refused} of {n} events were not stored (each detail names its field and rule); the other {} were",
            n - refused
        ),
        rejected,
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: EventTime = EventTime::from_micros(1_700_000_000_000_000);

    fn fields(e: DoorError) -> Vec<(String, String)> {
        e.details
            .into_iter()
            .map(|d| (d.field, d.code.into_owned()))
            .collect()
    }

    #[test]
    fn starts_are_read_in_the_trackers_fields() {
        let ok = |body: Value| {
            parse_start(body.to_string().as_bytes(), NOW, TimeBounds::default()).expect("valid")
        };
        let seed = json!({"userId": "asfla-asdf-asdfa", "machineId": "2343-asdf-fads", "startAt": "2023-02-02 16:22:15", "orgId": 11232});
        let s = ok(seed.clone());
        assert_eq!(
            (s.user_id.as_str(), s.machine_id.as_str(), s.org_id.as_str()),
            ("asfla-asdf-asdfa", "2343-asdf-fads", "11232")
        );
        assert_eq!(s.at.to_rfc3339(), "2023-02-02T16:22:15.000000Z");
        assert_eq!(
            Uuid::parse_str(s.session_id.as_str()).map(|u| u.get_version_num()),
            Ok(7)
        );
        let mut with_id = seed.clone();
        with_id["sessionId"] = json!("y25v9-jbyr-kyigb");
        with_id["startAt"] = json!("1675354935.5");
        let s = ok(with_id);
        assert_eq!(s.session_id.as_str(), "y25v9-jbyr-kyigb");
        assert_eq!(s.at.to_rfc3339(), "2023-02-02T16:22:15.500000Z");

        let with = |k: &str, v: Value| {
            let mut b = seed.clone();
            b[k] = v;
            b.to_string()
        };
        let cases: Vec<(String, Vec<(&str, &str)>)> = vec![
            (
                with("startAt", json!("timestamp")),
                vec![("/startAt", "invalid_timestamp")],
            ),
            (
                with("orgId", json!("11232")),
                vec![("/orgId", "wrong_type")],
            ),
            (with("orgId", json!(1.5)), vec![("/orgId", "wrong_type")]),
            (with("orgId", Value::Null), vec![("/orgId", "required")]),
            (with("userId", json!("")), vec![("/userId", "empty")]),
            (
                with("sessionId", json!(7)),
                vec![("/sessionId", "wrong_type")],
            ),
            (
                json!({}).to_string(),
                vec![
                    ("/userId", "required"),
                    ("/machineId", "required"),
                    ("/orgId", "required"),
                    ("/startAt", "required"),
                ],
            ),
        ];
        for (body, want) in cases {
            let e = parse_start(body.as_bytes(), NOW, TimeBounds::default()).expect_err("invalid");
            let got = fields(e);
            let got: Vec<(&str, &str)> =
                got.iter().map(|(f, c)| (f.as_str(), c.as_str())).collect();
            assert_eq!(got, want, "{body}");
        }
        let e = parse_start(b"{\"userId\": 1,}", NOW, TimeBounds::default()).expect_err("JSON");
        assert_eq!(e.code, "malformed_json");
    }

    #[test]
    fn ends_name_the_session_and_its_time() {
        let e = parse_end(
            br#"{"sessionId": "32342-234s-42343", "endAt": 1675354935}"#,
            NOW,
            TimeBounds::default(),
        )
        .expect("valid");
        assert_eq!(e.session_id.as_str(), "32342-234s-42343");
        assert_eq!(e.at.to_rfc3339(), "2023-02-02T16:22:15.000000Z");
        let cases: [(&[u8], Vec<(&str, &str)>); 3] = [
            (
                br#"{"sessionId": "s", "endAt": "timestamp"}"#,
                vec![("/endAt", "invalid_timestamp")],
            ),
            (
                br#"{"endAt": "2023-02-02 16:22:15"}"#,
                vec![("/sessionId", "required")],
            ),
            (
                br#"{"sessionId": ""}"#,
                vec![("/sessionId", "empty"), ("/endAt", "required")],
            ),
        ];
        for (body, want) in cases {
            let got = fields(parse_end(body, NOW, TimeBounds::default()).expect_err("invalid"));
            let got: Vec<(&str, &str)> =
                got.iter().map(|(f, c)| (f.as_str(), c.as_str())).collect();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn event_types_become_names() {
        let cases = [
            ("applicationStarted", "applicationStarted"),
            ("exe", "exe"),
            ("{event_type}", "_event_type_"),
            ("  padded  ", "padded"),
            ("café au lait", "caf_ au lait"),
            ("", "_"),
            ("   ", "_"),
            ("tab\there", "tab_here"),
        ];
        for (sent, name) in cases {
            assert_eq!(event_name(sent), name, "{sent:?}");
        }
        let long = "é".repeat(100);
        assert_eq!(event_name(&long), "_".repeat(MAX_TYPE_CHARS));
        let spaced = format!("{}x", "a ".repeat(40));
        let cut = event_name(&format!("é{spaced}"));
        assert!(
            cut.chars().count() <= MAX_TYPE_CHARS && !cut.ends_with(' '),
            "{cut:?}"
        );
        assert!(EventName::parse(&cut).is_ok(), "{cut:?}");
    }

    #[test]
    fn canonical_text_ignores_key_order_only() {
        let a = json!({"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": "s"}});
        let b: Value =
            serde_json::from_str(r#"{"a": {"x": "s", "y": [1, {"c": 3, "d": 2}]}, "b": 1}"#)
                .expect("JSON");
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&a),
            r#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
        assert_ne!(canonical(&json!([1, 2])), canonical(&json!([2, 1])));
    }

    #[test]
    fn items_become_machine_events_with_stable_ids() {
        let s = SessionId::parse("aslk-234-009").expect("id");
        let item = |v: Value| match v {
            Value::Object(m) => m,
            _ => unreachable!("an object"),
        };
        let sent = item(
            json!({"eventAt": "2023-02-02 16:22:15", "eventType": "applicationStarted", "payload": {"info": "someInfo"}}),
        );
        let e = to_event("c1", &s, &sent);
        assert_eq!(
            (
                &e["session_id"],
                &e["category"],
                &e["name"],
                &e["timestamp"]
            ),
            (
                &json!("aslk-234-009"),
                &json!("machine"),
                &json!("applicationStarted"),
                &json!("2023-02-02 16:22:15")
            )
        );
        assert_eq!(e["data"], json!({"info": "someInfo"}));
        // The same event, its keys in another order, from the same client: the same id.
        let again = item(
            json!({"payload": {"info": "someInfo"}, "eventType": "applicationStarted", "eventAt": "2023-02-02 16:22:15"}),
        );
        assert_eq!(to_event("c1", &s, &again)["event_id"], e["event_id"]);
        assert_ne!(to_event("c2", &s, &sent)["event_id"], e["event_id"]);
        let other = SessionId::parse("other").expect("id");
        assert_ne!(to_event("c1", &other, &sent)["event_id"], e["event_id"]);

        let renamed = to_event(
            "c1",
            &s,
            &item(json!({"eventAt": 1675354935, "eventType": "{event_type}", "payload": {}})),
        );
        assert_eq!(renamed["name"], "_event_type_");
        assert_eq!(renamed["data"], json!({"_eventType": "{event_type}"}));
        assert_eq!(renamed["timestamp"], 1675354935);
        let odd = to_event(
            "c1",
            &s,
            &item(json!({"eventAt": "x", "eventType": 5, "payload": [1]})),
        );
        assert_eq!((&odd["name"], &odd["data"]), (&json!(5), &json!([1])));
    }

    #[test]
    fn add_event_bodies_name_their_session_and_items() {
        let (s, items) = parse_add_event(
            br#"{"sessionId": "aslk-234-009", "events": [{"eventAt": "timestamp", "eventType": "{event_type}", "payload": {}}, 7]}"#,
        )
        .expect("valid");
        assert_eq!(s.as_str(), "aslk-234-009");
        assert_eq!(items.len(), 2);
        assert_eq!(items[1], ("7".to_owned(), json!(7)));
        let cases: [(&[u8], Vec<(&str, &str)>); 3] = [
            (br#"{"events": []}"#, vec![("/sessionId", "required")]),
            (br#"{"sessionId": "s"}"#, vec![("/events", "required")]),
            (
                br#"{"sessionId": 1, "events": {}}"#,
                vec![("/sessionId", "wrong_type"), ("/events", "wrong_type")],
            ),
        ];
        for (body, want) in cases {
            let got = fields(parse_add_event(body).expect_err("invalid"));
            let got: Vec<(&str, &str)> =
                got.iter().map(|(f, c)| (f.as_str(), c.as_str())).collect();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(body));
        }
    }
}
