//! The event model and the parser that builds it from a request body.
//!
//! Parse, don't validate: every field of [`Event`] is a newtype that only its parser can
//! build, so code holding an `Event` never re-checks it. Errors name the field as a JSON
//! Pointer into the request body (`/3/timestamp`) and carry a stable machine code.

use crate::time::EventTime;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;
use uuid::Uuid;

/// Longest accepted `session_id`, `category` and `name`, in characters.
pub const MAX_KEY_CHARS: usize = 128;

/// One rule a field broke. `field` is a JSON Pointer into the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

/// Why a request body as a whole was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("request body is not valid JSON: {message} at line {line}, column {column}")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("request body must be one event object or a non-empty array of event objects")]
    NotEvents,
    #[error("{} field(s) are invalid", .0.len())]
    Invalid(Vec<FieldError>),
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Accepts 1 to [`MAX_KEY_CHARS`] characters with no control characters.
            pub fn parse(s: &str) -> Result<Self, (&'static str, String)> {
                check_key_text(s, $field).map(|()| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// Groups events of one application session; the Kafka key, so one session stays ordered.
    SessionId,
    "session_id"
);
text_newtype!(
    /// The kind of event, e.g. `page_interaction`.
    Category,
    "category"
);
text_newtype!(
    /// The event's name within its category, e.g. `page_view`.
    EventName,
    "name"
);

fn check_key_text(s: &str, field: &str) -> Result<(), (&'static str, String)> {
    if s.is_empty() {
        return Err(("empty", format!("{field} must not be empty")));
    }
    if s.chars().count() > MAX_KEY_CHARS {
        return Err((
            "too_long",
            format!("{field} must be at most {MAX_KEY_CHARS} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err((
            "control_character",
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

/// A validated event, ready to be produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: Uuid,
    pub session_id: SessionId,
    pub category: Category,
    pub name: EventName,
    pub timestamp: EventTime,
    pub received_at: EventTime,
    pub data: Map<String, Value>,
    pub value: Option<f64>,
}

/// Parses a request body holding one event object or an array of them.
///
/// All items are checked, and every broken rule is reported, so that a client can fix a
/// batch in one round trip. Events without `event_id` get a UUIDv7 (time-ordered).
pub fn parse_events(body: &[u8], received_at: EventTime) -> Result<Vec<Event>, ParseError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| ParseError::MalformedJson {
        line: e.line(),
        column: e.column(),
        message: json_error_message(&e),
    })?;
    let (items, prefix_index) = match root {
        Value::Array(items) if !items.is_empty() => (items, true),
        obj @ Value::Object(_) => (vec![obj], false),
        _ => return Err(ParseError::NotEvents),
    };
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let base = if prefix_index {
            format!("/{index}")
        } else {
            String::new()
        };
        match parse_event(item, &base, received_at) {
            Ok(ev) => events.push(ev),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(ParseError::Invalid(errors))
    }
}

/// serde_json's message ends with " at line L column C"; the position is reported apart.
fn json_error_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    };
    if msg.starts_with("trailing comma") {
        format!("{msg}: remove the comma after the last member of the object or array")
    } else {
        msg
    }
}

const KNOWN_FIELDS: [&str; 7] = [
    "event_id",
    "session_id",
    "category",
    "name",
    "data",
    "timestamp",
    "value",
];

fn parse_event(item: Value, base: &str, received_at: EventTime) -> Result<Event, Vec<FieldError>> {
    let Value::Object(mut obj) = item else {
        return Err(vec![FieldError {
            field: if base.is_empty() {
                "/".into()
            } else {
                base.into()
            },
            code: "not_an_object",
            message: "each event must be a JSON object".into(),
        }]);
    };
    let mut errors = Vec::new();
    let mut err = |name: &str, code: &'static str, message: String| {
        errors.push(FieldError {
            field: format!("{base}/{name}"),
            code,
            message,
        });
    };

    let mut text = |obj: &mut Map<String, Value>, name: &'static str| -> Option<String> {
        match obj.remove(name) {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => {
                err(name, "required", format!("{name} is required"));
                None
            }
            Some(_) => {
                err(name, "wrong_type", format!("{name} must be a string"));
                None
            }
        }
    };
    let session_id = text(&mut obj, "session_id");
    let category = text(&mut obj, "category");
    let name = text(&mut obj, "name");
    let timestamp = text(&mut obj, "timestamp");

    let session_id = session_id.and_then(|s| {
        SessionId::parse(&s)
            .map_err(|(code, msg)| err("session_id", code, msg))
            .ok()
    });
    let category = category.and_then(|s| {
        Category::parse(&s)
            .map_err(|(code, msg)| err("category", code, msg))
            .ok()
    });
    let name = name.and_then(|s| {
        EventName::parse(&s)
            .map_err(|(code, msg)| err("name", code, msg))
            .ok()
    });
    let timestamp = timestamp.and_then(|s| {
        EventTime::parse(&s)
            .map_err(|e| err("timestamp", "invalid_timestamp", e.to_string()))
            .ok()
    });

    let data = match obj.remove("data") {
        Some(Value::Object(m)) => Some(m),
        None | Some(Value::Null) => {
            err("data", "required", "data is required".into());
            None
        }
        Some(_) => {
            err("data", "wrong_type", "data must be a JSON object".into());
            None
        }
    };
    let value = match obj.remove("value") {
        None | Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Some(Some(v)),
            _ => {
                err(
                    "value",
                    "not_finite",
                    "value must be a finite number".into(),
                );
                None
            }
        },
        Some(_) => {
            err("value", "wrong_type", "value must be a number".into());
            None
        }
    };
    let event_id = match obj.remove("event_id") {
        None | Some(Value::Null) => Some(Uuid::now_v7()),
        Some(Value::String(s)) => match Uuid::try_parse(&s) {
            Ok(id) => Some(id),
            Err(_) => {
                err("event_id", "invalid_uuid", "event_id must be a UUID".into());
                None
            }
        },
        Some(_) => {
            err(
                "event_id",
                "wrong_type",
                "event_id must be a UUID string".into(),
            );
            None
        }
    };
    for unknown in obj.keys() {
        err(
            unknown,
            "unknown_field",
            format!("unknown field; expected one of {}", KNOWN_FIELDS.join(", ")),
        );
    }

    match (event_id, session_id, category, name, timestamp, data, value) {
        (
            Some(event_id),
            Some(session_id),
            Some(category),
            Some(name),
            Some(timestamp),
            Some(data),
            Some(value),
        ) if errors.is_empty() => Ok(Event {
            event_id,
            session_id,
            category,
            name,
            timestamp,
            received_at,
            data,
            value,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: EventTime = EventTime::from_micros(1_700_000_000_000_000);

    fn seed_event() -> Value {
        json!({
            "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
            "category": "page_interaction",
            "name": "page_view",
            "data": {"host": "www.consumeraffairs.com", "path": "/"},
            "timestamp": "2021-09-26 09:15:27.243860"
        })
    }

    fn parse(v: &Value) -> Result<Vec<Event>, ParseError> {
        parse_events(v.to_string().as_bytes(), NOW)
    }

    fn field_errors(v: Value) -> Vec<(String, &'static str)> {
        match parse(&v) {
            Err(ParseError::Invalid(errs)) => errs.into_iter().map(|e| (e.field, e.code)).collect(),
            other => panic!("expected field errors for {v}, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_seed_event() {
        let events = parse(&seed_event()).expect("valid");
        assert_eq!(events.len(), 1);
        let ev = &events[0];
        assert_eq!(
            ev.session_id.as_str(),
            "e2085be5-9137-4e4e-80b5-f1ffddc25423"
        );
        assert_eq!(ev.category.as_str(), "page_interaction");
        assert_eq!(ev.name.as_str(), "page_view");
        assert_eq!(ev.timestamp.to_rfc3339(), "2021-09-26T09:15:27.243860Z");
        assert_eq!(ev.received_at, NOW);
        assert_eq!(ev.data["host"], "www.consumeraffairs.com");
        assert_eq!(ev.value, None);
        assert_eq!(
            ev.event_id.get_version_num(),
            7,
            "server-assigned ids are UUIDv7"
        );
    }

    #[test]
    fn keeps_client_event_id_and_value() {
        let mut v = seed_event();
        v["event_id"] = json!("0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10");
        v["value"] = json!(2.5);
        let ev = &parse(&v).expect("valid")[0];
        assert_eq!(
            ev.event_id.to_string(),
            "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10"
        );
        assert_eq!(ev.value, Some(2.5));
    }

    #[test]
    fn parses_arrays_in_order() {
        let mut second = seed_event();
        second["name"] = json!("cta_click");
        let events = parse(&json!([seed_event(), second])).expect("valid");
        let names: Vec<_> = events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["page_view", "cta_click"]);
    }

    #[test]
    fn reports_each_broken_field_with_pointer_and_code() {
        let with = |patch: &dyn Fn(&mut Value)| {
            let mut v = seed_event();
            patch(&mut v);
            v
        };
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            (
                with(&|v| {
                    v.as_object_mut().map(|o| o.remove("session_id"));
                }),
                vec![("/session_id", "required")],
            ),
            (
                with(&|v| v["category"] = json!(7)),
                vec![("/category", "wrong_type")],
            ),
            (with(&|v| v["name"] = json!("")), vec![("/name", "empty")]),
            (
                with(&|v| v["session_id"] = json!("x".repeat(129))),
                vec![("/session_id", "too_long")],
            ),
            (
                with(&|v| v["session_id"] = json!("a\u{0}b")),
                vec![("/session_id", "control_character")],
            ),
            (
                with(&|v| v["timestamp"] = json!("yesterday")),
                vec![("/timestamp", "invalid_timestamp")],
            ),
            (
                with(&|v| v["data"] = json!([1])),
                vec![("/data", "wrong_type")],
            ),
            (
                with(&|v| v["value"] = json!("3")),
                vec![("/value", "wrong_type")],
            ),
            (
                with(&|v| v["event_id"] = json!("not-a-uuid")),
                vec![("/event_id", "invalid_uuid")],
            ),
            (
                with(&|v| v["colour"] = json!("red")),
                vec![("/colour", "unknown_field")],
            ),
            (
                with(&|v| {
                    v["timestamp"] = json!(null);
                    v["data"] = json!("x");
                }),
                vec![("/timestamp", "required"), ("/data", "wrong_type")],
            ),
        ];
        for (input, want) in cases {
            let got = field_errors(input.clone());
            let got: Vec<(&str, &str)> = got.iter().map(|(f, c)| (f.as_str(), *c)).collect();
            assert_eq!(got, want, "input {input}");
        }
    }

    #[test]
    fn pointers_carry_the_array_index() {
        let mut bad = seed_event();
        bad["timestamp"] = json!("nope");
        let errs = field_errors(json!([seed_event(), bad, 5]));
        assert_eq!(
            errs,
            vec![
                ("/1/timestamp".to_owned(), "invalid_timestamp"),
                ("/2".to_owned(), "not_an_object")
            ]
        );
    }

    #[test]
    fn rejects_bodies_that_are_not_events() {
        for body in ["[]", "5", "\"event\"", "null"] {
            assert_eq!(
                parse_events(body.as_bytes(), NOW),
                Err(ParseError::NotEvents),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_json_names_line_column_and_the_trailing_comma() {
        // The seeds' own example: a trailing comma after "path": "/".
        let body = "{\n\"session_id\": \"e2085be5\",\n\"category\": \"party\",\n\"name\": \"AppName\",\n\"data\": {\n\"host\": \"www.party.com\",\n\"path\": \"/\",\n},\n\"timestamp\": \"2021-09-26 09:15:27.243860\"\n}";
        match parse_events(body.as_bytes(), NOW) {
            Err(ParseError::MalformedJson {
                line,
                column,
                message,
            }) => {
                assert_eq!((line, column), (8, 1));
                assert!(message.contains("trailing comma"), "{message}");
                assert!(message.contains("remove the comma"), "{message}");
            }
            other => panic!("expected malformed JSON, got {other:?}"),
        }
    }
}
