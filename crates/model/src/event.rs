//! The event contract: the model and the parser that builds it from a request body.
//!
//! Parse, don't validate: every field of [`Event`] is a newtype that only its parser can
//! build, so code holding an `Event` never re-checks it. A request is parsed once into
//! raw items; each item is then checked on its own, so one bad event never costs the
//! others their place. Every broken rule becomes a [`FieldError`] with a JSON Pointer into
//! the item (`/timestamp`, `/data/host`) and a stable code. The rules, their codes and
//! their defaults are listed in the README's "Event contract" section.

use crate::schema::{SchemaRegistry, UnknownTypePolicy, Validation};
use crate::time::{EventTime, TimeBounds};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;
use uuid::Uuid;

mod fields;

/// Longest `session_id`, in characters.
pub const MAX_SESSION_ID_CHARS: usize = 128;
/// Longest `category` and `name`, in characters.
pub const MAX_TYPE_CHARS: usize = 64;

/// One rule a field broke. `field` is a JSON Pointer into the event (`""`: the event itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// Why a request body as a whole was refused (no event of it was looked at).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is not valid JSON: {message} at line {line}, column {column}")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("request body must be one event object or a non-empty array of event objects")]
    NotEvents,
    #[error("request holds {count} events; at most {max} are accepted per request")]
    TooManyEvents { count: usize, max: usize },
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson { .. } => "malformed_json",
            Self::NotEvents => "not_events",
            Self::TooManyEvents { .. } => "too_many_events",
        }
    }
}

/// Builds the error type of a text rule: `(code, message)`.
type RuleError = (&'static str, String);

/// A session's id: 1 to 128 characters, none of them a control character.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(s: &str) -> Result<Self, RuleError> {
        if s.is_empty() {
            return Err(("empty", "session_id must not be empty".into()));
        }
        if s.chars().count() > MAX_SESSION_ID_CHARS {
            return Err((
                "too_long",
                format!("session_id must be at most {MAX_SESSION_ID_CHARS} characters"),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err((
                "control_character",
                "session_id must be printable: no control characters".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh id for a session whose client did not choose one.
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters allowed in `category` and `name` besides ASCII letters and digits. Space is
/// allowed inside (seed 003 sends "form interaction"), not at either end.
pub const TYPE_PUNCTUATION: &str = "_-.:/ ";

fn check_type_text(s: &str, field: &str) -> Result<(), RuleError> {
    if s.is_empty() {
        return Err(("empty", format!("{field} must not be empty")));
    }
    if s.chars().count() > MAX_TYPE_CHARS {
        return Err((
            "too_long",
            format!("{field} must be at most {MAX_TYPE_CHARS} characters"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || TYPE_PUNCTUATION.contains(c);
    if !s.chars().all(allowed) || s.starts_with(' ') || s.ends_with(' ') {
        return Err((
            "invalid_characters",
            format!(
                "{field} may hold ASCII letters, digits, '_', '-', '.', ':', '/' and inner spaces"
            ),
        ));
    }
    Ok(())
}

macro_rules! type_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// 1 to [`MAX_TYPE_CHARS`] characters: ASCII letters, digits, [`TYPE_PUNCTUATION`].
            pub fn parse(s: &str) -> Result<Self, RuleError> {
                check_type_text(s, $field).map(|()| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

type_newtype!(
    /// The kind of event, e.g. `page_interaction`.
    Category,
    "category"
);
type_newtype!(
    /// The event's name within its category, e.g. `page_view`.
    EventName,
    "name"
);

/// A validated event, ready to be produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: Uuid,
    pub session_id: SessionId,
    pub category: Category,
    pub name: EventName,
    /// The event's time, corrected for client clock skew when `sent_at` was given.
    pub timestamp: EventTime,
    /// The event's time as the client sent it.
    pub client_timestamp: EventTime,
    pub sent_at: Option<EventTime>,
    pub received_at: EventTime,
    pub data: Map<String, Value>,
    pub value: Option<f64>,
}

/// Size and shape limits of the contract.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_batch_events: usize,
    pub max_data_depth: usize,
    pub max_data_keys: usize,
    pub time: TimeBounds,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 32 * 1024,
            max_batch_events: 1_000,
            max_data_depth: 16,
            max_data_keys: 1_000,
            time: TimeBounds::default(),
        }
    }
}

/// Everything an event is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub limits: &'a Limits,
    pub schemas: &'a SchemaRegistry,
    pub unknown_types: UnknownTypePolicy,
}

/// Identifying fields of a rejected item, read best-effort for the quarantine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    pub event_id: String,
    pub session_id: String,
    pub category: String,
    pub name: String,
}

/// An item the rules refused, with its text exactly as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub raw: String,
    pub errors: Vec<FieldError>,
    pub hints: Hints,
}

/// One item of a request, in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Accepted(Event),
    Rejected(Rejected),
}

/// Parses a request body holding one event object or an array of them, checking each
/// event on its own. Events without `event_id` get a UUIDv7 (time-ordered).
pub fn parse_batch(
    body: &[u8],
    received_at: EventTime,
    rules: Rules<'_>,
) -> Result<Vec<Item>, RequestError> {
    let raws = split_items(body)?;
    if raws.len() > rules.limits.max_batch_events {
        return Err(RequestError::TooManyEvents {
            count: raws.len(),
            max: rules.limits.max_batch_events,
        });
    }
    Ok(raws
        .into_iter()
        .map(|raw| match parse_item(raw, received_at, rules) {
            Ok(ev) => Item::Accepted(ev),
            Err((errors, hints)) => Item::Rejected(Rejected {
                raw: raw.get().to_owned(),
                errors,
                hints,
            }),
        })
        .collect())
}

/// Splits the body into the raw text of each item, without parsing the items yet.
fn split_items(body: &[u8]) -> Result<Vec<&RawValue>, RequestError> {
    // Skipping over items reports some errors vaguely ("key must be a string" for a
    // trailing comma), so on failure the body is parsed in full for the precise message.
    let malformed = |e: serde_json::Error| {
        let e = serde_json::from_slice::<Value>(body).err().unwrap_or(e);
        RequestError::MalformedJson {
            line: e.line(),
            column: e.column(),
            message: json_error_message(&e),
        }
    };
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(malformed)?;
            if items.is_empty() {
                return Err(RequestError::NotEvents);
            }
            Ok(items)
        }
        Some(b'{') => Ok(vec![serde_json::from_slice(body).map_err(malformed)?]),
        _ => {
            // Not an object or array: still report malformed JSON precisely if it is.
            serde_json::from_slice::<&RawValue>(body).map_err(malformed)?;
            Err(RequestError::NotEvents)
        }
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

/// Fields an event may carry; anything else is refused so that a typo is not lost.
pub const KNOWN_FIELDS: [&str; 8] = [
    "event_id",
    "session_id",
    "category",
    "name",
    "data",
    "timestamp",
    "sent_at",
    "value",
];

/// What a rejected item said it was. Read again from its text: only rejections need it,
/// and most items are accepted.
fn hints_of(text: &str) -> Hints {
    let Ok(fields::Item::Object(f)) = serde_json::from_str(text) else {
        return Hints::default();
    };
    let text = |v: &Option<Value>| {
        v.as_ref()
            .and_then(Value::as_str)
            .map(|s| s.chars().take(256).collect())
            .unwrap_or_default()
    };
    Hints {
        event_id: text(&f.event_id),
        session_id: text(&f.session_id),
        category: text(&f.category),
        name: text(&f.name),
    }
}

fn parse_item(
    raw: &RawValue,
    received_at: EventTime,
    rules: Rules<'_>,
) -> Result<Event, (Vec<FieldError>, Hints)> {
    let limits = rules.limits;
    let text = raw.get();
    if text.len() > limits.max_event_bytes {
        // Too large to look into: refuse before parsing.
        return Err((
            vec![FieldError::new(
                "",
                "event_too_large",
                format!(
                    "event is {} bytes; at most {} are accepted",
                    text.len(),
                    limits.max_event_bytes
                ),
            )],
            Hints::default(),
        ));
    }
    let fields = match serde_json::from_str::<fields::Item>(text) {
        Ok(fields::Item::Object(f)) => f,
        // Well-formed but unrepresentable, e.g. a number such as 1e400 out of f64 range.
        Err(e) => {
            return Err((
                vec![FieldError::new("", "invalid_json", json_error_message(&e))],
                Hints::default(),
            ))
        }
        Ok(fields::Item::NotAnObject) => {
            return Err((
                vec![FieldError::new(
                    "",
                    "not_an_object",
                    "each event must be a JSON object",
                )],
                Hints::default(),
            ))
        }
    };
    let mut c = Checker::default();
    let event = c.event(fields, received_at, rules);
    match event {
        Some(ev) if c.errors.is_empty() => Ok(ev),
        _ => Err((c.errors, hints_of(text))),
    }
}

#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn err(&mut self, field: &str, code: &'static str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, code, message));
    }

    fn string(&mut self, v: Option<Value>, name: &'static str) -> Option<String> {
        match v {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => {
                self.err(
                    &format!("/{name}"),
                    "required",
                    format!("{name} is required"),
                );
                None
            }
            Some(_) => {
                self.err(
                    &format!("/{name}"),
                    "wrong_type",
                    format!("{name} must be a string"),
                );
                None
            }
        }
    }

    fn rule<T>(&mut self, field: &str, r: Result<T, RuleError>) -> Option<T> {
        r.map_err(|(code, message)| self.err(field, code, message))
            .ok()
    }

    fn time(&mut self, field: &str, v: &Value) -> Option<EventTime> {
        EventTime::from_json(v)
            .map_err(|e| self.err(field, e.code(), e.to_string()))
            .ok()
    }

    fn event(
        &mut self,
        f: fields::Fields,
        received_at: EventTime,
        rules: Rules<'_>,
    ) -> Option<Event> {
        let session_id = self.string(f.session_id, "session_id");
        let category = self.string(f.category, "category");
        let name = self.string(f.name, "name");
        let session_id = session_id.and_then(|s| self.rule("/session_id", SessionId::parse(&s)));
        let category = category.and_then(|s| self.rule("/category", Category::parse(&s)));
        let name = name.and_then(|s| self.rule("/name", EventName::parse(&s)));

        let client_timestamp = match f.timestamp {
            None | Some(Value::Null) => {
                self.err("/timestamp", "required", "timestamp is required");
                None
            }
            Some(v) => self.time("/timestamp", &v),
        };
        let sent_at = match f.sent_at {
            None | Some(Value::Null) => Some(None),
            Some(v) => self.time("/sent_at", &v).map(Some),
        };
        let timestamp = match (client_timestamp, sent_at) {
            (Some(ts), Some(sent)) => {
                let t = sent.map_or(ts, |s| EventTime::corrected(ts, s, received_at));
                rules
                    .limits
                    .time
                    .check(t, received_at)
                    .map_err(|e| self.err("/timestamp", e.code(), e.to_string()))
                    .ok()
            }
            _ => None,
        };

        // Kept as a `Value` (always an object) so the schema validates it without a copy.
        let data = match f.data {
            Some(v @ Value::Object(_)) => {
                self.data_shape(&v, rules.limits);
                Some(v)
            }
            None | Some(Value::Null) => {
                self.err("/data", "required", "data is required");
                None
            }
            Some(_) => {
                self.err("/data", "wrong_type", "data must be a JSON object");
                None
            }
        };
        let value = match f.value {
            None | Some(Value::Null) => Some(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(v) if v.is_finite() => Some(Some(v)),
                _ => {
                    self.err("/value", "not_finite", "value must be a finite number");
                    None
                }
            },
            Some(_) => {
                self.err("/value", "wrong_type", "value must be a number");
                None
            }
        };
        let event_id = match f.event_id {
            None | Some(Value::Null) => Some(Uuid::now_v7()),
            Some(Value::String(s)) => match Uuid::try_parse(&s) {
                Ok(id) => Some(id),
                Err(_) => {
                    self.err("/event_id", "invalid_uuid", "event_id must be a UUID");
                    None
                }
            },
            Some(_) => {
                self.err("/event_id", "wrong_type", "event_id must be a UUID string");
                None
            }
        };
        for unknown in &f.unknown {
            self.err(
                &format!("/{}", escape_pointer(unknown)),
                "unknown_field",
                format!("unknown field; expected one of {}", KNOWN_FIELDS.join(", ")),
            );
        }

        // The schema needs a well-formed type and data; skip it when those already failed.
        if let (Some(category), Some(name), Some(data)) = (&category, &name, &data) {
            self.schema(category, name, data, rules);
        }

        Some(Event {
            event_id: event_id?,
            session_id: session_id?,
            category: category?,
            name: name?,
            timestamp: timestamp?,
            client_timestamp: client_timestamp?,
            sent_at: sent_at?,
            received_at,
            data: match data? {
                Value::Object(m) => m,
                _ => return None,
            },
            value: value?,
        })
    }

    fn data_shape(&mut self, data: &Value, limits: &Limits) {
        let (depth, keys) = shape(data);
        if depth > limits.max_data_depth {
            self.err(
                "/data",
                "too_deep",
                format!(
                    "data nests {depth} levels deep; at most {} are accepted",
                    limits.max_data_depth
                ),
            );
        }
        if keys > limits.max_data_keys {
            self.err(
                "/data",
                "too_many_keys",
                format!(
                    "data holds {keys} keys; at most {} are accepted",
                    limits.max_data_keys
                ),
            );
        }
    }

    fn schema(&mut self, category: &Category, name: &EventName, data: &Value, rules: Rules<'_>) {
        match rules
            .schemas
            .validate(category.as_str(), name.as_str(), data)
        {
            Validation::Valid => {}
            Validation::UnknownType => {
                if rules.unknown_types == UnknownTypePolicy::Reject {
                    self.err(
                        "",
                        "unknown_event_type",
                        format!(
                            "no schema for category {category:?} and name {name:?}; known types: {}",
                            known_types(rules.schemas)
                        ),
                    );
                }
            }
            Validation::Invalid(violations) => {
                for v in violations {
                    self.errors.push(FieldError::new(
                        format!("/data{}", v.pointer),
                        v.code,
                        v.message,
                    ));
                }
            }
        }
    }
}

fn known_types(schemas: &SchemaRegistry) -> String {
    let types: Vec<String> = schemas
        .types()
        .into_iter()
        .map(|(c, n)| format!("{c}/{n}"))
        .collect();
    if types.is_empty() {
        "none".into()
    } else {
        types.join(", ")
    }
}

/// Nesting depth (the object itself is 1) and the number of keys over all nested objects.
fn shape(data: &Value) -> (usize, usize) {
    fn walk(v: &Value, depth: usize, max_depth: &mut usize, keys: &mut usize) {
        *max_depth = (*max_depth).max(depth);
        match v {
            Value::Object(m) => {
                *keys += m.len();
                for child in m.values() {
                    if child.is_object() || child.is_array() {
                        walk(child, depth + 1, max_depth, keys);
                    }
                }
            }
            Value::Array(items) => {
                for child in items {
                    if child.is_object() || child.is_array() {
                        walk(child, depth + 1, max_depth, keys);
                    }
                }
            }
            _ => {}
        }
    }
    let (mut depth, mut keys) = (0, 0);
    walk(data, 1, &mut depth, &mut keys);
    (depth, keys)
}

/// RFC 6901: `~` and `/` in a key are written `~0` and `~1` inside a pointer.
pub(crate) fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Parses events with the size limits but no schemas, accepting every type: for tools and
/// tests that build events, never for ingest. Fails if any item is refused.
pub fn parse_events(body: &[u8], received_at: EventTime) -> Result<Vec<Event>, ParseEventsError> {
    let schemas = SchemaRegistry::default();
    let limits = Limits::default();
    let rules = Rules {
        limits: &limits,
        schemas: &schemas,
        unknown_types: UnknownTypePolicy::Accept,
    };
    let mut events = Vec::new();
    for item in parse_batch(body, received_at, rules)? {
        match item {
            Item::Accepted(ev) => events.push(ev),
            Item::Rejected(r) => return Err(ParseEventsError::Rejected(r.errors)),
        }
    }
    Ok(events)
}

#[derive(Debug, thiserror::Error)]
pub enum ParseEventsError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("an event was rejected: {0:?}")]
    Rejected(Vec<FieldError>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // 2023-11-14T22:13:20Z
    const NOW: EventTime = EventTime::from_micros(1_700_000_000_000_000);

    fn registry() -> SchemaRegistry {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas"));
        SchemaRegistry::load(dir).expect("shipped schemas load")
    }

    fn seed_event() -> Value {
        json!({
            "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
            "category": "page_interaction",
            "name": "page_view",
            "data": {"host": "www.consumeraffairs.com", "path": "/"},
            "timestamp": "2021-09-26 09:15:27.243860"
        })
    }

    fn with(patch: impl Fn(&mut Value)) -> Value {
        let mut v = seed_event();
        patch(&mut v);
        v
    }

    fn run(body: &[u8], policy: UnknownTypePolicy) -> Result<Vec<Item>, RequestError> {
        let schemas = registry();
        let limits = Limits::default();
        parse_batch(
            body,
            NOW,
            Rules {
                limits: &limits,
                schemas: &schemas,
                unknown_types: policy,
            },
        )
    }

    fn one(v: &Value) -> Item {
        let mut items =
            run(v.to_string().as_bytes(), UnknownTypePolicy::Reject).expect("request ok");
        assert_eq!(items.len(), 1);
        items.remove(0)
    }

    fn errors(v: &Value) -> Vec<(String, &'static str)> {
        match one(v) {
            Item::Rejected(r) => r.errors.into_iter().map(|e| (e.field, e.code)).collect(),
            Item::Accepted(ev) => panic!("expected rejection of {v}, accepted {ev:?}"),
        }
    }

    #[test]
    fn accepts_the_seed_events() {
        let cases = [
            seed_event(),
            with(|v| {
                v["name"] = json!("cta_click");
                v["data"]["element"] = json!("chat bubble");
            }),
            with(|v| {
                v["category"] = json!("form_interaction");
                v["name"] = json!("submit");
                v["data"]["form"] = json!({"first_name": "John", "last_name": "Doe"});
            }),
            with(|v| v["timestamp"] = json!(1_632_647_727.243_86)),
            with(|v| v["timestamp"] = json!(1_632_647_727_243_i64)),
            with(|v| v["event_id"] = json!("0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10")),
            with(|v| v["value"] = json!(-2.5)),
            with(|v| v["session_id"] = json!("x".repeat(128))),
        ];
        for v in cases {
            match one(&v) {
                Item::Accepted(ev) => {
                    assert_eq!(ev.received_at, NOW);
                    assert_eq!(
                        ev.timestamp, ev.client_timestamp,
                        "no sent_at: no correction"
                    );
                }
                Item::Rejected(r) => panic!("{v} rejected: {:?}", r.errors),
            }
        }
    }

    #[test]
    fn every_rule_has_its_code_and_pointer() {
        let deep = (0..16).fold(json!(1), |acc, _| json!({ "k": acc }));
        let many: Map<String, Value> = (0..1_001).map(|i| (format!("k{i}"), json!(i))).collect();
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            (
                with(|v| {
                    v.as_object_mut().map(|o| o.remove("session_id"));
                }),
                vec![("/session_id", "required")],
            ),
            (
                with(|v| v["session_id"] = json!("")),
                vec![("/session_id", "empty")],
            ),
            (
                with(|v| v["session_id"] = json!("x".repeat(129))),
                vec![("/session_id", "too_long")],
            ),
            (
                with(|v| v["session_id"] = json!("a\u{7}b")),
                vec![("/session_id", "control_character")],
            ),
            (
                with(|v| v["session_id"] = json!(42)),
                vec![("/session_id", "wrong_type")],
            ),
            (
                with(|v| v["category"] = json!("page interaction!")),
                vec![("/category", "invalid_characters")],
            ),
            (
                with(|v| v["category"] = json!(" page")),
                vec![("/category", "invalid_characters")],
            ),
            (
                with(|v| v["name"] = json!("n".repeat(65))),
                vec![("/name", "too_long")],
            ),
            (with(|v| v["name"] = json!("")), vec![("/name", "empty")]),
            (
                with(|v| v["timestamp"] = json!("yesterday")),
                vec![("/timestamp", "invalid_timestamp")],
            ),
            (
                with(|v| v["timestamp"] = json!("1999-12-31T23:59:59Z")),
                vec![("/timestamp", "timestamp_too_old")],
            ),
            (
                with(|v| v["timestamp"] = json!("2023-11-16T00:00:00Z")),
                vec![("/timestamp", "timestamp_in_future")],
            ),
            (
                with(|v| v["timestamp"] = json!(1e15)),
                vec![("/timestamp", "epoch_out_of_range")],
            ),
            (
                with(|v| v["timestamp"] = json!(true)),
                vec![("/timestamp", "wrong_type")],
            ),
            (
                with(|v| v["sent_at"] = json!("soon")),
                vec![("/sent_at", "invalid_timestamp")],
            ),
            (
                with(|v| v["data"] = json!([1])),
                vec![("/data", "wrong_type")],
            ),
            (
                with(|v| v["data"] = json!({"host": "h", "path": "/", "d": deep.clone()})),
                vec![("/data", "too_deep")],
            ),
            (
                with(|v| v["data"] = Value::Object(many.clone())),
                vec![
                    ("/data", "too_many_keys"),
                    ("/data/host", "schema_required"),
                    ("/data/path", "schema_required"),
                ],
            ),
            (
                with(|v| v["data"] = json!({"host": "h"})),
                vec![("/data/path", "schema_required")],
            ),
            (
                with(|v| v["data"]["host"] = json!(7)),
                vec![("/data/host", "schema_type")],
            ),
            (
                with(|v| v["value"] = json!("3")),
                vec![("/value", "wrong_type")],
            ),
            (
                with(|v| v["event_id"] = json!("not-a-uuid")),
                vec![("/event_id", "invalid_uuid")],
            ),
            (
                with(|v| v["event_id"] = json!(5)),
                vec![("/event_id", "wrong_type")],
            ),
            (
                with(|v| v["colour"] = json!("red")),
                vec![("/colour", "unknown_field")],
            ),
            (
                with(|v| v["a/b"] = json!(1)),
                vec![("/a~1b", "unknown_field")],
            ),
            (
                with(|v| v["name"] = json!("hover")),
                vec![("", "unknown_event_type")],
            ),
        ];
        for (input, want) in cases {
            let got = errors(&input);
            let got: Vec<(&str, &str)> = got.iter().map(|(f, c)| (f.as_str(), *c)).collect();
            assert_eq!(got, want, "input {input}");
        }
    }

    #[test]
    fn sent_at_corrects_client_clock_skew() {
        // The client's clock is 1 h behind: it sent at 21:13:20 while the server received at 22:13:20.
        let v = with(|v| {
            v["timestamp"] = json!("2023-11-14T21:13:19Z");
            v["sent_at"] = json!("2023-11-14T21:13:20Z");
        });
        match one(&v) {
            Item::Accepted(ev) => {
                assert_eq!(
                    ev.client_timestamp.to_rfc3339(),
                    "2023-11-14T21:13:19.000000Z"
                );
                assert_eq!(ev.timestamp.to_rfc3339(), "2023-11-14T22:13:19.000000Z");
                assert_eq!(
                    ev.sent_at.map(EventTime::to_rfc3339).as_deref(),
                    Some("2023-11-14T21:13:20.000000Z")
                );
            }
            Item::Rejected(r) => panic!("{:?}", r.errors),
        }
        // Correction brings a far-future client time back into bounds, or out of them.
        let v = with(|v| {
            v["timestamp"] = json!("2023-11-20T00:00:00Z");
            v["sent_at"] = json!("2023-11-20T00:00:01Z");
        });
        assert!(matches!(one(&v), Item::Accepted(_)));
    }

    #[test]
    fn unknown_types_follow_the_policy() {
        let v = with(|v| v["category"] = json!("machine"));
        let body = v.to_string();
        let rejected = run(body.as_bytes(), UnknownTypePolicy::Reject).expect("ok");
        assert!(
            matches!(&rejected[0], Item::Rejected(r) if r.errors[0].code == "unknown_event_type")
        );
        let accepted = run(body.as_bytes(), UnknownTypePolicy::Accept).expect("ok");
        assert!(matches!(&accepted[0], Item::Accepted(_)));
    }

    #[test]
    fn a_batch_keeps_its_order_and_rejects_items_on_their_own() {
        let bad = with(|v| v["timestamp"] = json!("nope"));
        let big = with(|v| v["data"]["pad"] = json!("x".repeat(33 * 1024)));
        let body = json!([seed_event(), bad, 5, big, seed_event()]).to_string();
        let items = run(body.as_bytes(), UnknownTypePolicy::Reject).expect("ok");
        let kinds: Vec<&str> = items
            .iter()
            .map(|i| match i {
                Item::Accepted(_) => "accepted",
                Item::Rejected(r) => r.errors[0].code,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "accepted",
                "invalid_timestamp",
                "not_an_object",
                "event_too_large",
                "accepted"
            ]
        );
        // The raw text of a rejected item is kept exactly as received, with its hints.
        let raw_body = r#"[{"session_id":"s","category":"page_interaction","name":"page_view","data":{},  "timestamp":"x"}]"#;
        let items = run(raw_body.as_bytes(), UnknownTypePolicy::Reject).expect("ok");
        match &items[0] {
            Item::Rejected(r) => {
                assert_eq!(r.raw, &raw_body[1..raw_body.len() - 1]);
                assert_eq!(r.hints.session_id, "s");
                assert_eq!(r.hints.name, "page_view");
            }
            Item::Accepted(_) => panic!("must be rejected"),
        }
    }

    #[test]
    fn request_level_errors() {
        let many = Value::Array(vec![seed_event(); 1_001]).to_string();
        let cases: Vec<(&[u8], &str)> = vec![
            (b"[]", "not_events"),
            (b"5", "not_events"),
            (b"\"event\"", "not_events"),
            (b"null", "not_events"),
            (b"", "malformed_json"),
            (b"{\"a\": }", "malformed_json"),
            (b"[1, 2", "malformed_json"),
            (many.as_bytes(), "too_many_events"),
        ];
        for (body, code) in cases {
            let err = run(body, UnknownTypePolicy::Reject).expect_err("must fail");
            assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn malformed_json_names_line_column_and_the_trailing_comma() {
        // The seeds' own example: a trailing comma after "path": "/".
        let body = "{\n\"session_id\": \"e2085be5\",\n\"category\": \"party\",\n\"name\": \"AppName\",\n\"data\": {\n\"host\": \"www.party.com\",\n\"path\": \"/\",\n},\n\"timestamp\": \"2021-09-26 09:15:27.243860\"\n}";
        match run(body.as_bytes(), UnknownTypePolicy::Reject) {
            Err(RequestError::MalformedJson {
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

    #[test]
    fn out_of_range_numbers_are_named() {
        let body = br#"[{"session_id": "s", "value": 1e400}]"#;
        let items = run(body, UnknownTypePolicy::Reject).expect("ok");
        match &items[0] {
            Item::Rejected(r) => {
                assert_eq!(r.errors[0].code, "invalid_json");
                assert!(
                    r.errors[0].message.contains("number out of range"),
                    "{}",
                    r.errors[0].message
                );
            }
            Item::Accepted(_) => panic!("must be rejected"),
        }
    }

    #[test]
    fn server_assigns_uuid_v7_when_absent() {
        match one(&seed_event()) {
            Item::Accepted(ev) => assert_eq!(ev.event_id.get_version_num(), 7),
            Item::Rejected(r) => panic!("{:?}", r.errors),
        }
    }

    #[test]
    fn shape_counts_depth_and_keys() {
        let cases = [
            (json!({}), (1, 0)),
            (json!({"a": 1, "b": 2}), (1, 2)),
            (json!({"a": {"b": {"c": 1}}}), (3, 3)),
            (json!({"a": [{"b": 1}, {"c": [1, 2]}]}), (4, 3)),
        ];
        for (v, want) in cases {
            assert_eq!(shape(&v), want, "{v}");
        }
    }
}
