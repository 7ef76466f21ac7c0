//! Session lifecycle records: `POST /v1/sessions` starts a session,
//! `POST /v1/sessions/{id}/end` ends it. Both become [`SessionChange`]s, which ingest sends
//! on the sessions topic; storage merges them at read time, so they may arrive in any order
//! and before or after the session's events.

use crate::event::{FieldError, SessionId};
use crate::time::{EventTime, TimeBounds};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Longest `user_id`, `machine_id` and `org_id`, in characters.
pub const MAX_ID_CHARS: usize = 128;

/// Whether a change starts or ends its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Start,
    End,
}

impl ChangeKind {
    /// The name stored and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::End => "end",
        }
    }
}

/// A session's start or end, as accepted. `update_id` is stable across retries of the
/// same record, so storage keeps it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionChange {
    pub update_id: Uuid,
    pub session_id: SessionId,
    pub kind: ChangeKind,
    /// Empty on an end: only a start names its owners.
    pub user_id: String,
    pub machine_id: String,
    pub org_id: String,
    pub at: EventTime,
    pub received_at: EventTime,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("request body is not a JSON object: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("request body is not a JSON object: expected an object")]
    NotAnObject,
    #[error("{} field(s) are invalid", .0.len())]
    Invalid(Vec<FieldError>),
}

const START_FIELDS: [&str; 5] = [
    "session_id",
    "user_id",
    "machine_id",
    "org_id",
    "started_at",
];
const END_FIELDS: [&str; 1] = ["ended_at"];

fn object(body: &[u8]) -> Result<Map<String, Value>, SessionError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SessionError::NotAnObject),
        Err(e) => Err(SessionError::NotJson(e)),
    }
}

/// The rules for a `user_id`, `machine_id` or `org_id` given as text: the same at ingest
/// and when a query names one.
pub fn check_id(name: &str, s: &str) -> Result<(), (&'static str, String)> {
    if s.is_empty() {
        Err(("empty", format!("{name} must not be empty")))
    } else if s.chars().count() > MAX_ID_CHARS {
        Err((
            "too_long",
            format!("{name} must be at most {MAX_ID_CHARS} characters"),
        ))
    } else if s.chars().any(char::is_control) {
        Err((
            "control_character",
            format!("{name} must not contain control characters"),
        ))
    } else {
        Ok(())
    }
}

/// An id given as a string (or, for `org_id`, also an integer, as session trackers often send it).
fn id_field(
    obj: &mut Map<String, Value>,
    name: &str,
    allow_int: bool,
    errors: &mut Vec<FieldError>,
) -> String {
    let field = format!("/{name}");
    match obj.remove(name) {
        Some(Value::String(s)) => match check_id(name, &s) {
            Ok(()) => return s,
            Err((code, message)) => errors.push(FieldError::new(field, code, message)),
        },
        Some(Value::Number(n)) if allow_int && (n.is_i64() || n.is_u64()) => return n.to_string(),
        None | Some(Value::Null) => errors.push(FieldError::new(
            field,
            "required",
            format!("{name} is required"),
        )),
        Some(_) => errors.push(FieldError::new(
            field,
            "wrong_type",
            if allow_int {
                format!("{name} must be a string or an integer")
            } else {
                format!("{name} must be a string")
            },
        )),
    }
    String::new()
}

fn time_field(
    obj: &mut Map<String, Value>,
    name: &str,
    received_at: EventTime,
    bounds: TimeBounds,
    errors: &mut Vec<FieldError>,
) -> Option<EventTime> {
    let field = format!("/{name}");
    let v = match obj.remove(name) {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                field,
                "required",
                format!("{name} is required"),
            ));
            return None;
        }
        Some(v) => v,
    };
    EventTime::from_json(&v)
        .and_then(|t| bounds.check(t, received_at))
        .map_err(|e| errors.push(FieldError::new(field, e.code(), e.to_string())))
        .ok()
}

fn unknown(obj: &Map<String, Value>, known: &[&str], errors: &mut Vec<FieldError>) {
    for k in obj.keys() {
        errors.push(FieldError::new(
            format!("/{}", crate::event::escape_pointer(k)),
            "unknown_field",
            format!("unknown field; expected one of {}", known.join(", ")),
        ));
    }
}

/// `{session_id?, user_id, machine_id, org_id, started_at}`; a missing `session_id` gets a
/// UUIDv7.
pub fn parse_start(
    body: &[u8],
    received_at: EventTime,
    bounds: TimeBounds,
) -> Result<SessionChange, SessionError> {
    let mut obj = object(body)?;
    let mut errors = Vec::new();
    let session_id = match obj.remove("session_id") {
        None | Some(Value::Null) => Some(SessionId::generate()),
        Some(Value::String(s)) => SessionId::parse(&s)
            .map_err(|(code, msg)| errors.push(FieldError::new("/session_id", code, msg)))
            .ok(),
        Some(_) => {
            errors.push(FieldError::new(
                "/session_id",
                "wrong_type",
                "session_id must be a string",
            ));
            None
        }
    };
    let user_id = id_field(&mut obj, "user_id", false, &mut errors);
    let machine_id = id_field(&mut obj, "machine_id", false, &mut errors);
    let org_id = id_field(&mut obj, "org_id", true, &mut errors);
    let started_at = time_field(&mut obj, "started_at", received_at, bounds, &mut errors);
    unknown(&obj, &START_FIELDS, &mut errors);
    match (session_id, started_at) {
        (Some(session_id), Some(at)) if errors.is_empty() => Ok(SessionChange {
            update_id: Uuid::now_v7(),
            session_id,
            kind: ChangeKind::Start,
            user_id,
            machine_id,
            org_id,
            at,
            received_at,
        }),
        _ => Err(SessionError::Invalid(errors)),
    }
}

/// `{ended_at}` for the session named in the path.
pub fn parse_end(
    session_id: &SessionId,
    body: &[u8],
    received_at: EventTime,
    bounds: TimeBounds,
) -> Result<SessionChange, SessionError> {
    let mut obj = object(body)?;
    let mut errors = Vec::new();
    let ended_at = time_field(&mut obj, "ended_at", received_at, bounds, &mut errors);
    unknown(&obj, &END_FIELDS, &mut errors);
    match ended_at {
        Some(at) if errors.is_empty() => Ok(SessionChange {
            update_id: Uuid::now_v7(),
            session_id: session_id.clone(),
            kind: ChangeKind::End,
            user_id: String::new(),
            machine_id: String::new(),
            org_id: String::new(),
            at,
            received_at,
        }),
        _ => Err(SessionError::Invalid(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: EventTime = EventTime::from_micros(1_700_000_000_000_000);

    fn codes(r: Result<SessionChange, SessionError>) -> Vec<(String, &'static str)> {
        match r {
            Err(SessionError::Invalid(errs)) => errs
                .into_iter()
                .map(|e| {
                    let code = e.static_code();
                    (e.field, code)
                })
                .collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn start_accepts_seed_000() {
        let body = json!({"userId": 1}).to_string();
        assert!(parse_start(body.as_bytes(), NOW, TimeBounds::default()).is_err());
        let body = json!({"session_id": "y25v9-jbyr-kyigb", "user_id": "asfla-asdf-asdfa", "machine_id": "2343-asdf-fads",
                          "org_id": 11232, "started_at": "2023-02-02 16:22:15"})
        .to_string();
        let u = parse_start(body.as_bytes(), NOW, TimeBounds::default()).expect("valid");
        assert_eq!(u.session_id.as_str(), "y25v9-jbyr-kyigb");
        assert_eq!((u.kind.as_str(), u.org_id.as_str()), ("start", "11232"));
        assert_eq!(u.at.to_rfc3339(), "2023-02-02T16:22:15.000000Z");
        let body =
            json!({"user_id": "u", "machine_id": "m", "org_id": "o", "started_at": 1_675_354_935})
                .to_string();
        let u = parse_start(body.as_bytes(), NOW, TimeBounds::default()).expect("valid");
        assert_eq!(
            Uuid::parse_str(u.session_id.as_str()).map(|id| id.get_version_num()),
            Ok(7)
        );
    }

    #[test]
    fn start_rules() {
        let base = json!({"user_id": "u", "machine_id": "m", "org_id": "o", "started_at": "2023-02-02 16:22:15"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b.to_string()
        };
        let cases: Vec<(String, Vec<(&str, &str)>)> = vec![
            (with("user_id", json!("")), vec![("/user_id", "empty")]),
            (
                with("machine_id", json!(7)),
                vec![("/machine_id", "wrong_type")],
            ),
            (with("org_id", json!(1.5)), vec![("/org_id", "wrong_type")]),
            (with("org_id", json!(null)), vec![("/org_id", "required")]),
            (
                with("started_at", json!("never")),
                vec![("/started_at", "invalid_timestamp")],
            ),
            (
                with("started_at", json!("1999-01-01 00:00:00")),
                vec![("/started_at", "timestamp_too_old")],
            ),
            (
                with("session_id", json!("")),
                vec![("/session_id", "empty")],
            ),
            (
                with("user_id", json!("u".repeat(129))),
                vec![("/user_id", "too_long")],
            ),
            (with("extra", json!(1)), vec![("/extra", "unknown_field")]),
        ];
        for (body, want) in cases {
            let got = codes(parse_start(body.as_bytes(), NOW, TimeBounds::default()));
            let got: Vec<(&str, &str)> = got.iter().map(|(f, c)| (f.as_str(), *c)).collect();
            assert_eq!(got, want, "{body}");
        }
        assert!(matches!(
            parse_start(b"[1]", NOW, TimeBounds::default()),
            Err(SessionError::NotAnObject)
        ));
        let e = parse_start(b"{", NOW, TimeBounds::default()).expect_err("not JSON");
        assert!(
            matches!(e, SessionError::NotJson(_))
                && e.to_string()
                    .starts_with("request body is not a JSON object: EOF"),
            "{e}"
        );
    }

    #[test]
    fn end_rules() {
        let id = SessionId::parse("s").expect("id");
        let u = parse_end(
            &id,
            br#"{"ended_at": "2023-02-02T16:22:15Z"}"#,
            NOW,
            TimeBounds::default(),
        )
        .expect("valid");
        assert_eq!((u.kind.as_str(), u.session_id.as_str()), ("end", "s"));
        type Case<'a> = (&'a [u8], Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (b"{}", vec![("/ended_at", "required")]),
            (
                br#"{"ended_at": "x"}"#,
                vec![("/ended_at", "invalid_timestamp")],
            ),
            (
                br#"{"ended_at": 1675354935, "why": 1}"#,
                vec![("/why", "unknown_field")],
            ),
        ];
        for (body, want) in cases {
            let got = codes(parse_end(&id, body, NOW, TimeBounds::default()));
            let got: Vec<(&str, &str)> = got.iter().map(|(f, c)| (f.as_str(), *c)).collect();
            assert_eq!(got, want);
        }
    }
}
