//! From a request body to events: the body is split into items without parsing them, then
//! each item is parsed and checked on its own against the [`Rules`], so one bad event never
//! costs the others their place.

use super::*;
use crate::schema::{SchemaRegistry, UnknownTypePolicy, Validation};
use crate::time::EventTime;
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

/// Parses a request body holding one event object or an array of them, checking each
/// event on its own. Events without `event_id` get a UUIDv7 (time-ordered).
pub fn parse_batch(
    body: &[u8],
    received_at: EventTime,
    rules: Rules<'_>,
) -> Result<Vec<Item>, RequestError> {
    parse_items(body, received_at, rules, |_| None)
}

/// Parses one item an adapter translated into the event shape (`mapped`), checking it as
/// [`parse_batch`] checks each item. A rejection keeps `sent`, the item's text exactly as
/// the client sent it in its own protocol, so the quarantine holds what was sent; its
/// errors point into the translated item.
pub fn parse_mapped(
    mapped: &RawValue,
    sent: &str,
    received_at: EventTime,
    rules: Rules<'_>,
) -> Item {
    match parse_item(mapped, received_at, rules, None) {
        Ok(ev) => Item::Accepted(ev),
        Err((errors, hints)) => Item::Rejected(Rejected {
            raw: sent.to_owned(),
            errors,
            hints,
        }),
    }
}

/// Parses a quarantined record's text again, as [`parse_batch`] parses a body, with its
/// original time of receipt: the replay of a record. An item that carries no `event_id`
/// gets `default_id(index)` instead of a fresh UUIDv7, so that replaying the same record
/// again yields the very same events (same id, same skew-corrected time).
pub fn parse_again(
    text: &[u8],
    received_at: EventTime,
    rules: Rules<'_>,
    default_id: impl Fn(usize) -> Uuid,
) -> Result<Vec<Item>, RequestError> {
    parse_items(text, received_at, rules, |i| Some(default_id(i)))
}

/// Splits `body` into items and checks each on its own; the item at index `i` without an
/// `event_id` gets `default_id(i)`, or a fresh UUIDv7 when that is `None`.
fn parse_items(
    body: &[u8],
    received_at: EventTime,
    rules: Rules<'_>,
    default_id: impl Fn(usize) -> Option<Uuid>,
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
        .enumerate()
        .map(
            |(i, raw)| match parse_item(raw, received_at, rules, default_id(i)) {
                Ok(ev) => Item::Accepted(ev),
                Err((errors, hints)) => Item::Rejected(Rejected {
                    raw: raw.get().to_owned(),
                    errors,
                    hints,
                }),
            },
        )
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

/// serde_json's message without its " at line L column C" (the position is reported apart),
/// with a hint for a trailing comma: how ingest words a body or an event that is not JSON.
pub fn json_error_message(e: &serde_json::Error) -> String {
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
    default_id: Option<Uuid>,
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
    let mut c = Checker {
        errors: Vec::new(),
        default_id,
    };
    let event = c.event(fields, received_at, rules);
    match event {
        Some(ev) if c.errors.is_empty() => Ok(ev),
        _ => Err((c.errors, hints_of(text))),
    }
}

struct Checker {
    errors: Vec<FieldError>,
    /// The id of an event that carries none; a fresh UUIDv7 when `None`.
    default_id: Option<Uuid>,
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
            None | Some(Value::Null) => Some(self.default_id.unwrap_or_else(Uuid::now_v7)),
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
                            "no schema for category \"{category}\" and name \"{name}\"; known types: {}",
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
pub(super) fn shape(data: &Value) -> (usize, usize) {
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
