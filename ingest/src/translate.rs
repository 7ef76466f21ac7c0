//! What the seed doors share when they translate their own fields into the event shape:
//! the door's own field errors, pointers renamed back into what the client sent, times
//! sent as numeric text, and the error a door answers for a body it cannot read.

use crate::batch::WholeBodyError;
use eye_model::event::{parse_mapped, FieldError, Hints, Item, Rejected, Rules};
use eye_model::time::EventTime;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A request a door refused as a whole (its body is quarantined whole): a code, a message,
/// and the fields at fault, pointers into the body as sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DoorError {
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldError>,
}

impl DoorError {
    pub fn new(code: &'static str, message: impl Into<String>, details: Vec<FieldError>) -> Self {
        Self {
            code,
            message: message.into(),
            details,
        }
    }

    /// A body whose fields broke the door's rules.
    pub fn fields(details: Vec<FieldError>) -> Self {
        let n = details.len();
        Self::new(
            "invalid_fields",
            format!("{n} field(s) are invalid; each detail names its field and rule"),
            details,
        )
    }
}

impl WholeBodyError for DoorError {
    fn code(&self) -> &str {
        self.code
    }
}

/// The body as a JSON object, or why not (malformed JSON reported with its position).
pub fn object(body: &[u8]) -> Result<Map<String, Value>, DoorError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(DoorError::new(
            "not_an_object",
            "the request body must be a JSON object",
            Vec::new(),
        )),
        Err(e) => Err(DoorError::new(
            "malformed_json",
            format!(
                "request body is not valid JSON: {} at line {}, column {}",
                json_message(&e),
                e.line(),
                e.column()
            ),
            Vec::new(),
        )),
    }
}

/// serde_json's message without its position, which is reported apart.
fn json_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}

/// A time sent as numeric text (`"1675354935"`, `"1675354935.25"`), as form-built and
/// scripting clients often send epoch seconds, as the number it spells; anything else as
/// it came, for the event rules to judge.
pub fn numeric_text_as_number(v: Value) -> Value {
    if let Value::String(s) = &v {
        let t = s.trim();
        let numeric = !t.is_empty()
            && t.chars().all(|c| c.is_ascii_digit() || c == '.')
            && t.chars().filter(|c| *c == '.').count() <= 1
            && !t.starts_with('.')
            && !t.ends_with('.');
        if numeric {
            if let Ok(n) = serde_json::from_str::<serde_json::Number>(t) {
                return Value::Number(n);
            }
        }
    }
    v
}

/// `pointer` (into the translated event) renamed into the door's own fields: the first
/// `(event field, door field)` entry that is the pointer or a prefix of it replaces that
/// prefix; an empty door field stands for the item as a whole. Pointers no entry names are
/// kept.
pub fn rename_pointer(pointer: &str, table: &[(&str, &str)]) -> String {
    for (from, to) in table {
        let rest = if pointer == *from {
            Some("")
        } else {
            pointer
                .strip_prefix(from)
                .filter(|rest| !from.is_empty() && rest.starts_with('/'))
        };
        if let Some(rest) = rest {
            return if to.is_empty() {
                String::new()
            } else {
                format!("{to}{rest}")
            };
        }
    }
    pointer.to_owned()
}

/// Checks `mapped`, the door's translation of an item whose text as sent is `sent`, by the
/// event rules, adds the door's own `errors`, and renames every error's field by `table`.
pub fn check_item(
    mapped: &Value,
    sent: &str,
    door_errors: Vec<FieldError>,
    table: &[(&str, &str)],
    received_at: EventTime,
    rules: Rules<'_>,
) -> Item {
    let text = mapped.to_string();
    let item = match serde_json::from_str::<&RawValue>(&text) {
        Ok(raw) => parse_mapped(raw, sent, received_at, rules),
        // The translation of a parsed value is always JSON.
        Err(e) => Item::Rejected(Rejected {
            raw: sent.to_owned(),
            errors: vec![FieldError::new("", "invalid_json", e.to_string())],
            hints: Hints::default(),
        }),
    };
    let mut item = match (item, door_errors.is_empty()) {
        (item, true) => item,
        (Item::Accepted(ev), false) => Item::Rejected(Rejected {
            raw: sent.to_owned(),
            errors: Vec::new(),
            hints: Hints {
                event_id: ev.event_id.to_string(),
                session_id: ev.session_id.as_str().to_owned(),
                category: ev.category.as_str().to_owned(),
                name: ev.name.as_str().to_owned(),
            },
        }),
        (item, false) => item,
    };
    if let Item::Rejected(r) = &mut item {
        for e in &mut r.errors {
            e.field = rename_pointer(&e.field, table);
        }
        r.errors.extend(door_errors);
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_model::event::Limits;
    use eye_model::schema::{SchemaRegistry, UnknownTypePolicy};
    use serde_json::json;

    #[test]
    fn pointers_are_renamed_into_the_door_fields() {
        let table = [
            ("/timestamp", "/eventAt"),
            ("/data", "/payload"),
            ("/category", ""),
            ("", ""),
        ];
        let cases = [
            ("/timestamp", "/eventAt"),
            ("/data", "/payload"),
            ("/data/machine_id", "/payload/machine_id"),
            ("/category", ""),
            ("", ""),
            ("/datapoint", "/datapoint"),
            ("/value", "/value"),
        ];
        for (event, door) in cases {
            assert_eq!(rename_pointer(event, &table), door, "{event}");
        }
    }

    #[test]
    fn numeric_text_is_read_as_a_number() {
        let cases = [
            (json!("1675354935"), json!(1675354935)),
            (json!(" 1675354935.25 "), json!(1675354935.25)),
            (json!("2023-02-02 16:22:15"), json!("2023-02-02 16:22:15")),
            (json!("1.2.3"), json!("1.2.3")),
            (json!("-5"), json!("-5")),
            (json!("."), json!(".")),
            (json!(""), json!("")),
            (json!(12), json!(12)),
        ];
        for (sent, want) in cases {
            assert_eq!(numeric_text_as_number(sent.clone()), want, "{sent}");
        }
    }

    #[test]
    fn bodies_that_are_not_objects_are_refused_with_a_reason() {
        let cases: [(&[u8], &str, &str); 4] = [
            (b"{\"a\": 1,}", "malformed_json", "trailing comma"),
            (b"[1]", "not_an_object", "JSON object"),
            (b"", "malformed_json", "EOF"),
            (b"{\"a\": }", "malformed_json", "line 1, column 7"),
        ];
        for (body, code, says) in cases {
            let e = object(body).expect_err("refused");
            assert_eq!(e.code, code, "{body:?}");
            assert!(e.message.contains(says), "{body:?}: {}", e.message);
        }
        assert!(object(b"{\"a\": 1}").is_ok());
    }

    #[test]
    fn door_errors_join_the_event_rules_and_rename_their_fields() {
        let schemas = SchemaRegistry::default();
        let limits = Limits::default();
        let rules = Rules {
            limits: &limits,
            schemas: &schemas,
            unknown_types: UnknownTypePolicy::Accept,
        };
        let now = EventTime::now();
        let table = [("/category", "/namespace"), ("/timestamp", "/timestamp")];
        let event = |ts: Value| json!({"session_id": "s", "category": "ns", "name": "n", "data": {}, "timestamp": ts});
        let missing_value = FieldError::new("/value", "required", "value is required");
        // (translated event, door errors, fields the rejection names; none when accepted)
        let cases: Vec<(Value, Vec<FieldError>, Option<Vec<&str>>)> = vec![
            (event(json!(1_700_000_000)), vec![], None),
            (
                event(json!(1_700_000_000)),
                vec![missing_value.clone()],
                Some(vec!["/value"]),
            ),
            (
                event(json!("never")),
                vec![missing_value],
                Some(vec!["/timestamp", "/value"]),
            ),
            (
                json!({"session_id": "s", "category": " x", "name": "n", "data": {}, "timestamp": 1_700_000_000}),
                vec![],
                Some(vec!["/namespace"]),
            ),
        ];
        for (i, (mapped, door, want)) in cases.into_iter().enumerate() {
            match (check_item(&mapped, "sent", door, &table, now, rules), want) {
                (Item::Accepted(_), None) => {}
                (Item::Rejected(r), Some(fields)) => {
                    assert_eq!(r.raw, "sent", "case {i}");
                    let got: Vec<&str> = r.errors.iter().map(|e| e.field.as_str()).collect();
                    assert_eq!(got, fields, "case {i}");
                }
                (got, want) => panic!("case {i}: got {got:?}, wanted {want:?}"),
            }
        }
    }
}
