//! The session tracker's reads (`POST /get_session`, `POST /get_machine_events`): a
//! session with its events, and a machine's events across its sessions, in the tracker's
//! own shapes and time format (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC).
//!
//! The tracker's writes store each `add_event` event in category `machine`, named after
//! its `eventType` (or that type's slug, keeping the type as sent in `data._eventType`),
//! with the `payload` as `data`. A session's events here are all the events of the session,
//! whatever their category: the tracker writes only those, and an event another door
//! stored under the same session id belongs to it as much.
//!
//! Both answers are unpaged, as the tracker's are; they hold at most the configured
//! `EYE_QUERY_SESSION_EVENTS_MAX` events (10,000 by default). Beyond that the request is
//! refused (400, `too_many_events`) rather than cut short: the `/v1` session and machine
//! listings page through any number.

use crate::error::QueryError;
use eye_model::event::{FieldError, SessionId};
use eye_model::session;
use eye_store::{EventRow, SessionMeta};
use serde::Serialize;
use serde_json::{Map, Value};

/// The key `add_event` keeps an event type under when the stored name had to differ.
pub const EVENT_TYPE_KEY: &str = "_eventType";

fn bad(field: &str, code: &'static str, message: impl Into<String>) -> QueryError {
    QueryError::BadParameter(FieldError::new(field, code, message))
}

/// A required text field of the body; a number is taken as its decimal text, as ids
/// sometimes travel.
fn text_field(body: &Map<String, Value>, field: &str) -> Result<String, QueryError> {
    match body.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        None | Some(Value::Null) => Err(bad(field, "required", format!("{field} is required"))),
        Some(_) => Err(bad(
            field,
            "wrong_type",
            format!("{field} must be a string"),
        )),
    }
}

/// `{"sessionId": ...}`: the session asked for.
pub fn session_request(body: &Map<String, Value>) -> Result<SessionId, QueryError> {
    let raw = text_field(body, "sessionId")?;
    SessionId::parse(&raw).map_err(|(code, message)| {
        bad(
            "sessionId",
            code,
            message.replace("session_id", "sessionId"),
        )
    })
}

/// `{"machineId": ...}`: the machine asked for, checked as ingest checks it.
pub fn machine_request(body: &Map<String, Value>) -> Result<String, QueryError> {
    let raw = text_field(body, "machineId")?;
    session::check_id("machineId", &raw)
        .map_err(|(code, message)| bad("machineId", code, message))?;
    Ok(raw)
}

/// Refuses an answer of more than `max` events; `rows` holds at most `max + 1`.
pub fn within(rows: &[EventRow], max: u32, field: &str) -> Result<(), QueryError> {
    if rows.len() > max as usize {
        return Err(bad(
            field,
            "too_many_events",
            format!(
                "this answer would hold more than {max} events; read them page by page from \
                 /v1/sessions/{{session_id}} or /v1/machines/{{machine_id}}/events"
            ),
        ));
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS`, with `.ffffff` when the time has a fraction of a second.
pub fn tracker_time(us: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) if us.rem_euclid(1_000_000) == 0 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        None => us.to_string(),
    }
}

/// An org id as the tracker sent it: an integer when the stored text is one (as written
/// back by `to_string`), else the text.
pub fn org_id(text: &str) -> Value {
    match text.parse::<i64>() {
        Ok(n) if n.to_string() == text => Value::from(n),
        _ => Value::from(text),
    }
}

/// An event as the tracker shows it, in its keys' alphabetical order as the seed's
/// answers list them.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrackerEvent {
    pub event_at: String,
    pub event_type: String,
    pub payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

impl TrackerEvent {
    /// `eventType` is the type kept in `data._eventType` when there is one, else the name;
    /// `payload` is `data` without that key.
    pub fn new(row: EventRow, with_session: bool) -> Self {
        let mut payload = serde_json::from_str::<Value>(&row.data).unwrap_or(Value::Null);
        let kept = payload
            .as_object_mut()
            .and_then(|m| match m.get(EVENT_TYPE_KEY) {
                Some(Value::String(_)) => m.remove(EVENT_TYPE_KEY),
                _ => None,
            });
        let event_type = match kept {
            Some(Value::String(t)) => t,
            _ => row.name,
        };
        Self {
            event_at: tracker_time(row.client_ts_us),
            event_type,
            payload,
            session_id: with_session.then_some(row.session_id),
        }
    }
}

/// `POST /get_session`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub end_at: Option<String>,
    pub events: Vec<TrackerEvent>,
    pub machine_id: Option<String>,
    pub org_id: Option<Value>,
    pub session_id: String,
    pub start_at: Option<String>,
    pub user_id: Option<String>,
}

impl Session {
    /// The session's lifecycle as its records tell it (each field `null` until its record
    /// arrived), with its events in time order.
    pub fn new(session_id: String, meta: Option<SessionMeta>, rows: Vec<EventRow>) -> Self {
        let started = meta.as_ref().is_some_and(|m| m.starts > 0);
        let ended = meta.as_ref().is_some_and(|m| m.ends > 0);
        let text = |s: &str| (started && !s.is_empty()).then(|| s.to_owned());
        Self {
            end_at: meta
                .as_ref()
                .filter(|_| ended)
                .map(|m| tracker_time(m.ended_at_us)),
            events: rows
                .into_iter()
                .map(|r| TrackerEvent::new(r, false))
                .collect(),
            machine_id: meta.as_ref().and_then(|m| text(&m.machine_id)),
            org_id: meta
                .as_ref()
                .and_then(|m| text(&m.org_id))
                .map(|o| org_id(&o)),
            session_id,
            start_at: meta
                .as_ref()
                .filter(|_| started)
                .map(|m| tracker_time(m.started_at_us)),
            user_id: meta.as_ref().and_then(|m| text(&m.user_id)),
        }
    }
}

/// `POST /get_machine_events`'s answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineEvents {
    pub events: Vec<TrackerEvent>,
    pub machine_id: String,
}

impl MachineEvents {
    pub fn new(machine_id: String, rows: Vec<EventRow>) -> Self {
        Self {
            events: rows
                .into_iter()
                .map(|r| TrackerEvent::new(r, true))
                .collect(),
            machine_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn row(name: &str, data: &str, client_ts_us: i64) -> EventRow {
        EventRow {
            event_id: Uuid::nil(),
            session_id: "y25v9-jbyr-kyigb".into(),
            category: "machine".into(),
            name: name.into(),
            ts_us: client_ts_us,
            received_at_us: client_ts_us,
            data: data.into(),
            value: None,
            client_ts_us,
            sent_at_us: None,
        }
    }

    fn code(e: QueryError) -> String {
        match e {
            QueryError::BadParameter(f) => format!("{}:{}", f.field, f.code),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn times_render_as_the_tracker_writes_them() {
        for (us, want) in [
            (1_675_354_935_000_000, "2023-02-02 16:22:15"),
            (1_451_647_205_123_000, "2016-01-01 11:20:05.123000"),
            (1_451_647_205_000_001, "2016-01-01 11:20:05.000001"),
        ] {
            assert_eq!(tracker_time(us), want, "{us}");
        }
    }

    #[test]
    fn org_ids_are_integers_when_sent_as_integers() {
        for (text, want) in [
            ("11232", json!(11232)),
            ("-4", json!(-4)),
            ("007", json!("007")),
            ("org-7", json!("org-7")),
            ("99999999999999999999", json!("99999999999999999999")),
        ] {
            assert_eq!(org_id(text), want, "{text}");
        }
    }

    #[test]
    fn event_types_come_back_as_sent() {
        // (stored name, stored data, eventType, payload)
        let cases = [
            (
                "applicationStarted",
                r#"{"info":"someInfo"}"#,
                "applicationStarted",
                json!({"info": "someInfo"}),
            ),
            (
                "user_logged_in_",
                r#"{"_eventType":"user logged in!","a":1}"#,
                "user logged in!",
                json!({"a": 1}),
            ),
            // Only a string is a kept type; anything else is payload.
            (
                "exe",
                r#"{"_eventType":7}"#,
                "exe",
                json!({"_eventType": 7}),
            ),
            ("data", "{}", "data", json!({})),
        ];
        for (name, data, event_type, payload) in cases {
            let e = TrackerEvent::new(row(name, data, 1_675_354_935_000_000), false);
            assert_eq!(
                (e.event_type.as_str(), &e.payload),
                (event_type, &payload),
                "{data}"
            );
        }
    }

    #[test]
    fn requests_name_the_field_they_miss() {
        let body = |v: Value| v.as_object().cloned().unwrap_or_default();
        let cases = [
            (
                json!({"sessionId": "y25v9-jbyr-kyigb"}),
                Ok("y25v9-jbyr-kyigb"),
            ),
            (json!({"sessionId": 42}), Ok("42")),
            (json!({}), Err("sessionId:required")),
            (json!({"sessionId": ""}), Err("sessionId:empty")),
            (json!({"sessionId": ["x"]}), Err("sessionId:wrong_type")),
        ];
        for (b, want) in cases {
            let got = session_request(&body(b.clone())).map_err(code);
            assert_eq!(
                got.as_ref().map(SessionId::as_str).map_err(String::as_str),
                want,
                "{b}"
            );
        }
        assert_eq!(
            machine_request(&body(json!({"machineId": "2343-asdf-fads"}))).map_err(code),
            Ok("2343-asdf-fads".to_owned())
        );
        assert_eq!(
            machine_request(&body(json!({"machine": "m"}))).map_err(code),
            Err("machineId:required".to_owned())
        );
    }

    #[test]
    fn a_session_shows_what_its_records_say() {
        let meta = |starts, ends| SessionMeta {
            session_id: "y25v9-jbyr-kyigb".into(),
            user_id: "asfla-asdf-asdfa".into(),
            machine_id: "2343-asdf-fads".into(),
            org_id: "11232".into(),
            started_at_us: 1_675_354_935_000_000,
            ended_at_us: 1_675_354_935_000_000,
            starts,
            ends,
        };
        let events = || {
            vec![row(
                "applicationStarted",
                r#"{"info":"someInfo"}"#,
                1_675_354_935_000_000,
            )]
        };
        let whole = serde_json::to_value(Session::new(
            "y25v9-jbyr-kyigb".into(),
            Some(meta(1, 1)),
            events(),
        ))
        .expect("serialises");
        assert_eq!(
            whole,
            json!({
                "endAt": "2023-02-02 16:22:15",
                "events": [{"eventAt": "2023-02-02 16:22:15", "eventType": "applicationStarted",
                            "payload": {"info": "someInfo"}}],
                "machineId": "2343-asdf-fads",
                "orgId": 11232,
                "sessionId": "y25v9-jbyr-kyigb",
                "startAt": "2023-02-02 16:22:15",
                "userId": "asfla-asdf-asdfa",
            })
        );
        let open = serde_json::to_value(Session::new("s".into(), Some(meta(1, 0)), vec![]))
            .expect("serialises");
        assert_eq!(
            (open["endAt"].clone(), open["orgId"].clone()),
            (Value::Null, json!(11232))
        );
        let unknown =
            serde_json::to_value(Session::new("s".into(), None, events())).expect("serialises");
        assert_eq!(
            (unknown["userId"].clone(), unknown["startAt"].clone()),
            (Value::Null, Value::Null)
        );
    }

    #[test]
    fn answers_beyond_the_bound_are_refused() {
        let rows = vec![row("a", "{}", 0); 3];
        assert!(within(&rows, 3, "sessionId").is_ok());
        assert_eq!(
            within(&rows, 2, "sessionId").map_err(code),
            Err("sessionId:too_many_events".to_owned())
        );
    }
}
