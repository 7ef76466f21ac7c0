//! One Segment message in the event shape: which fields become the event's identity, type,
//! time and data. Pure functions, no I/O; the README's "Segment tracking API" table is the
//! same mapping in prose.

use eye_model::event::{FieldError, Hints};
use eye_model::time::EventTime;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The namespace of event ids derived from a `messageId` that is not a UUID. Fixed
/// forever: changing it would make a retry after an upgrade a second event.
const MESSAGE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x3f1c_9a6e_52d4_4b8a_9e07_6d2f_b1c4_e815);

/// The message types of Segment's spec, which are also the events' categories.
pub const TYPES: [&str; 6] = ["track", "page", "screen", "identify", "group", "alias"];

/// Fields of a message that are the envelope, not the event's data: the type is its
/// category, the times its time, and the write key a credential that must never be stored.
const ENVELOPE: [&str; 4] = ["type", "timestamp", "sentAt", "writeKey"];

/// What a batch says for all its messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shared {
    /// The batch's `sentAt`, for messages without their own.
    pub sent_at: Option<Value>,
    /// The batch's `context`, under each message's own (whose keys win).
    pub context: Option<Map<String, Value>>,
    /// The batch's `integrations`, under each message's own.
    pub integrations: Option<Map<String, Value>>,
}

/// A message in the event shape, with where each of the event's fields came from in the
/// message, so that what the model says about the event names the message's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub event: Value,
    pub origins: Origins,
}

/// The message field each event field was taken from, as JSON Pointers into the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origins {
    /// `/event`, `/name`, or `/type` when the name is the type.
    pub name: &'static str,
    /// `/context/sessionId`, `/anonymousId` or `/userId`.
    pub session_id: &'static str,
    /// `/timestamp` or `/originalTimestamp`; `""` when the time is the time of receipt.
    pub timestamp: &'static str,
}

impl Origins {
    /// The message's pointer for `field`, a pointer into the event: `/data/...` is the
    /// message's own field, the others are where they were taken from.
    pub fn pointer(&self, field: &str) -> String {
        let (top, rest) = match field[1.min(field.len())..].find('/') {
            Some(i) => field.split_at(i + 1),
            None => (field, ""),
        };
        let origin = match top {
            "/data" => "",
            "/category" => "/type",
            "/name" => self.name,
            "/session_id" => self.session_id,
            "/timestamp" => self.timestamp,
            "/sent_at" => "/sentAt",
            "/event_id" => "/messageId",
            _ => return field.to_owned(),
        };
        format!("{origin}{rest}")
    }
}

/// A message that cannot be put in the event shape: why, and what it said it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmappable {
    pub errors: Vec<FieldError>,
    pub hints: Hints,
}

/// Translates one message into a `/v1` event (`event_id`, `session_id`, `category`,
/// `name`, `timestamp`, `sent_at`, `data`), which the model then checks as it checks any
/// event. `implied` is the type the route implies (`/v1/track`); `client` scopes the ids
/// derived from a `messageId` that is not a UUID.
pub fn to_event(
    message: Map<String, Value>,
    implied: Option<&'static str>,
    shared: &Shared,
    client: &str,
    received_at: EventTime,
) -> Result<Mapped, Unmappable> {
    let mut errors = Vec::new();
    let category = message_type(&message, implied, &mut errors);
    let name = category.and_then(|c| event_name(c, &message, &mut errors));
    let session = session_id(&message, shared, &mut errors);
    let (session_id, session_origin) = session.unzip();
    let event_id = message
        .get("messageId")
        .and_then(text)
        .map(|id| event_id(client, &id));
    if !errors.is_empty() {
        return Err(Unmappable {
            errors,
            hints: Hints {
                event_id: event_id.map(|id| id.to_string()).unwrap_or_default(),
                session_id: session_id.unwrap_or_default(),
                category: category.unwrap_or_default().to_owned(),
                name: name.unwrap_or_default(),
            },
        });
    }
    let name_origin = match (category, name.as_deref()) {
        (Some("track"), _) => "/event",
        (Some(c), Some(n)) if c != n => "/name",
        _ => "/type",
    };
    let mut event = Map::new();
    if let Some(id) = event_id {
        event.insert("event_id".into(), id.to_string().into());
    }
    event.insert("session_id".into(), session_id.unwrap_or_default().into());
    event.insert("category".into(), category.unwrap_or_default().into());
    event.insert("name".into(), name.unwrap_or_default().into());
    // The client's clock, corrected by the model with `sentAt`; the time of receipt only
    // when the message has none, and then there is nothing to correct.
    let client_time = ["timestamp", "originalTimestamp"]
        .into_iter()
        .find_map(|k| Some((message.get(k).filter(|v| !v.is_null())?.clone(), k)));
    let origins = Origins {
        name: name_origin,
        session_id: session_origin.unwrap_or("/anonymousId"),
        timestamp: match client_time {
            Some((_, "timestamp")) => "/timestamp",
            Some(_) => "/originalTimestamp",
            None => "",
        },
    };
    match client_time.map(|(t, _)| t) {
        Some(t) => {
            event.insert("timestamp".into(), t);
            let sent_at = message
                .get("sentAt")
                .filter(|v| !v.is_null())
                .or(shared.sent_at.as_ref());
            if let Some(s) = sent_at {
                event.insert("sent_at".into(), s.clone());
            }
        }
        None => {
            event.insert("timestamp".into(), received_at.to_rfc3339().into());
        }
    }
    event.insert("data".into(), Value::Object(data(message, shared)));
    Ok(Mapped {
        event: Value::Object(event),
        origins,
    })
}

/// The event id of a message: its `messageId` when that is a UUID, else a UUIDv5 of the
/// client and the `messageId`, so that an SDK's retry of the message is the same event.
pub fn event_id(client: &str, message_id: &str) -> Uuid {
    Uuid::try_parse(message_id).unwrap_or_else(|_| {
        Uuid::new_v5(
            &MESSAGE_ID_NAMESPACE,
            format!("{client}\n{message_id}").as_bytes(),
        )
    })
}

/// A string, or a number as its text (SDKs send numeric user ids); `None` for anything
/// else and for the empty string.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn message_type(
    message: &Map<String, Value>,
    implied: Option<&'static str>,
    errors: &mut Vec<FieldError>,
) -> Option<&'static str> {
    let sent = message.get("type").filter(|v| !v.is_null());
    let known = |t: &str| TYPES.into_iter().find(|k| *k == t);
    match (implied, sent) {
        (Some(route), None) => Some(route),
        (Some(route), Some(Value::String(t))) if t == route => Some(route),
        (Some(route), Some(_)) => {
            errors.push(FieldError::new(
                "/type",
                "wrong_route",
                format!("this route takes {route} messages; send others to /v1/batch"),
            ));
            None
        }
        (None, None) => {
            errors.push(FieldError::new("/type", "required", "type is required"));
            None
        }
        (None, Some(Value::String(t))) => known(t).or_else(|| {
            errors.push(unknown_type());
            None
        }),
        (None, Some(_)) => {
            errors.push(FieldError::new(
                "/type",
                "wrong_type",
                "type must be a string",
            ));
            None
        }
    }
}

fn unknown_type() -> FieldError {
    FieldError::new(
        "/type",
        "unknown_type",
        format!("type must be one of {}", TYPES.join(", ")),
    )
}

/// `event` for track (required), `name` for page and screen when given, else the type.
fn event_name(
    category: &str,
    message: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let field = match category {
        "track" => "event",
        "page" | "screen" => "name",
        _ => return Some(category.to_owned()),
    };
    match message.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        None | Some(Value::Null) if category != "track" => Some(category.to_owned()),
        Some(Value::String(_)) if category != "track" => Some(category.to_owned()),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            errors.push(FieldError::new(
                "/event",
                "required",
                "a track message must name its event",
            ));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(
                format!("/{field}"),
                "wrong_type",
                format!("{field} must be a string"),
            ));
            None
        }
    }
}

/// `context.sessionId` (the batch's context counts), else `anonymousId`, else `userId`,
/// with the pointer it came from. A message without either id is refused, as Segment
/// refuses it.
fn session_id(
    message: &Map<String, Value>,
    shared: &Shared,
    errors: &mut Vec<FieldError>,
) -> Option<(String, &'static str)> {
    let ids = [("anonymousId", "/anonymousId"), ("userId", "/userId")]
        .map(|(k, pointer)| Some((message.get(k).and_then(text)?, pointer)));
    if ids.iter().all(Option::is_none) {
        errors.push(FieldError::new(
            "/anonymousId",
            "required",
            "a message needs an anonymousId or a userId (a non-empty string or a number)",
        ));
        return None;
    }
    let in_context = |c: Option<&Map<String, Value>>| c?.get("sessionId").and_then(text);
    let context = message.get("context").and_then(Value::as_object);
    in_context(context)
        .or_else(|| in_context(shared.context.as_ref()))
        .map(|s| (s, "/context/sessionId"))
        .or_else(|| ids.into_iter().flatten().next())
}

/// The message without its envelope, with the batch's `context` and `integrations` under
/// its own.
fn data(mut message: Map<String, Value>, shared: &Shared) -> Map<String, Value> {
    for k in ENVELOPE {
        message.remove(k);
    }
    for (key, batch) in [
        ("context", &shared.context),
        ("integrations", &shared.integrations),
    ] {
        let Some(batch) = batch else { continue };
        match message.get_mut(key) {
            Some(Value::Object(own)) => {
                for (k, v) in batch {
                    own.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            None | Some(Value::Null) => {
                message.insert(key.into(), Value::Object(batch.clone()));
            }
            // A message's own value that is not an object is kept as sent.
            Some(_) => {}
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLIENT: &str = "0123456789abcdef";

    fn received() -> EventTime {
        EventTime::parse("2026-12-01T00:00:00Z").expect("a time")
    }

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn map(message: Value, implied: Option<&'static str>, shared: &Shared) -> Value {
        to_event(object(message), implied, shared, CLIENT, received())
            .unwrap_or_else(|e| panic!("unmappable: {:?}", e.errors))
            .event
    }

    fn origins(message: Value) -> Origins {
        to_event(
            object(message),
            None,
            &Shared::default(),
            CLIENT,
            received(),
        )
        .expect("mappable")
        .origins
    }

    #[test]
    fn what_the_model_says_of_the_event_names_the_fields_of_the_message() {
        let track =
            origins(json!({"type": "track", "event": "E", "userId": "u", "originalTimestamp": 1}));
        let page = origins(
            json!({"type": "page", "name": "Home", "anonymousId": "a", "context": {"sessionId": "s"}}),
        );
        let identify =
            origins(json!({"type": "identify", "anonymousId": "a", "userId": "u", "timestamp": 1}));
        let cases = [
            (track, "/name", "/event"),
            (track, "/session_id", "/userId"),
            (track, "/timestamp", "/originalTimestamp"),
            (track, "/data/properties/price", "/properties/price"),
            (track, "/data", ""),
            (track, "/data/", "/"),
            (track, "/category", "/type"),
            (track, "/sent_at", "/sentAt"),
            (track, "/event_id", "/messageId"),
            (track, "", ""),
            (track, "/value", "/value"),
            (page, "/name", "/name"),
            (page, "/session_id", "/context/sessionId"),
            (page, "/timestamp", ""),
            (identify, "/name", "/type"),
            (identify, "/session_id", "/anonymousId"),
            (identify, "/timestamp", "/timestamp"),
            (identify, "/database", "/database"),
        ];
        for (i, (o, field, want)) in cases.into_iter().enumerate() {
            assert_eq!(o.pointer(field), want, "case {i}: {field}");
        }
    }

    #[test]
    fn each_type_maps_to_its_category_and_name() {
        let id = "9b2f1c4e-6a1d-4f0e-8d3c-2b7a5e9f0c11";
        let cases = [
            (
                json!({"type": "track", "event": "Order Completed"}),
                None,
                "track",
                "Order Completed",
            ),
            (
                json!({"event": "Signed Up"}),
                Some("track"),
                "track",
                "Signed Up",
            ),
            (
                json!({"type": "page", "name": "Home"}),
                None,
                "page",
                "Home",
            ),
            (json!({"type": "page"}), None, "page", "page"),
            (json!({"type": "page", "name": ""}), None, "page", "page"),
            (json!({"name": "Login"}), Some("screen"), "screen", "Login"),
            (json!({"type": "screen"}), None, "screen", "screen"),
            (
                json!({"type": "identify", "traits": {"a": 1}}),
                None,
                "identify",
                "identify",
            ),
            (json!({"groupId": "g1"}), Some("group"), "group", "group"),
            (
                json!({"type": "alias", "previousId": "p"}),
                None,
                "alias",
                "alias",
            ),
            (
                json!({"type": "identify"}),
                Some("identify"),
                "identify",
                "identify",
            ),
        ];
        for (i, (mut message, implied, category, name)) in cases.into_iter().enumerate() {
            message["userId"] = json!("u1");
            message["messageId"] = json!(id);
            let event = map(message, implied, &Shared::default());
            assert_eq!(
                (event["category"].as_str(), event["name"].as_str()),
                (Some(category), Some(name)),
                "case {i}: {event}"
            );
            assert_eq!(event["event_id"], id, "case {i}");
        }
    }

    #[test]
    fn the_session_is_the_context_session_else_the_anonymous_id_else_the_user_id() {
        let batch_context = Shared {
            context: Some(object(json!({"sessionId": "from-batch"}))),
            ..Shared::default()
        };
        let cases = [
            (
                json!({"anonymousId": "a", "userId": "u", "context": {"sessionId": "s"}}),
                Shared::default(),
                "s",
            ),
            (
                json!({"anonymousId": "a", "context": {"sessionId": 1234}}),
                Shared::default(),
                "1234",
            ),
            (
                json!({"anonymousId": "a", "userId": "u"}),
                Shared::default(),
                "a",
            ),
            (
                json!({"anonymousId": "", "userId": "u"}),
                Shared::default(),
                "u",
            ),
            (json!({"userId": 42}), Shared::default(), "42"),
            (
                json!({"anonymousId": null, "userId": "u", "context": {}}),
                Shared::default(),
                "u",
            ),
            (
                json!({"anonymousId": "a"}),
                batch_context.clone(),
                "from-batch",
            ),
            (
                json!({"anonymousId": "a", "context": {"sessionId": "own"}}),
                batch_context,
                "own",
            ),
        ];
        for (i, (mut message, shared, want)) in cases.into_iter().enumerate() {
            message["type"] = json!("identify");
            let event = map(message, None, &shared);
            assert_eq!(event["session_id"], want, "case {i}: {event}");
        }
    }

    #[test]
    fn messages_that_cannot_be_events_say_which_field_and_rule() {
        let cases = [
            (
                json!({"type": "track", "event": "E"}),
                None,
                vec![("/anonymousId", "required")],
            ),
            (
                json!({"type": "track", "event": "E", "userId": "", "anonymousId": false}),
                None,
                vec![("/anonymousId", "required")],
            ),
            (
                json!({"type": "track", "userId": "u"}),
                None,
                vec![("/event", "required")],
            ),
            (
                json!({"type": "track", "event": "", "userId": "u"}),
                None,
                vec![("/event", "required")],
            ),
            (
                json!({"type": "track", "event": 5, "userId": "u"}),
                None,
                vec![("/event", "wrong_type")],
            ),
            (
                json!({"type": "page", "name": ["x"], "userId": "u"}),
                None,
                vec![("/name", "wrong_type")],
            ),
            (json!({"userId": "u"}), None, vec![("/type", "required")]),
            (
                json!({"type": "capture", "userId": "u"}),
                None,
                vec![("/type", "unknown_type")],
            ),
            (
                json!({"type": 1, "userId": "u"}),
                None,
                vec![("/type", "wrong_type")],
            ),
            (
                json!({"type": "page", "userId": "u"}),
                Some("track"),
                vec![("/type", "wrong_route")],
            ),
            (
                json!({"type": "track"}),
                None,
                vec![("/event", "required"), ("/anonymousId", "required")],
            ),
        ];
        for (i, (message, implied, want)) in cases.into_iter().enumerate() {
            let e = to_event(
                object(message),
                implied,
                &Shared::default(),
                CLIENT,
                received(),
            )
            .expect_err("unmappable");
            let got: Vec<(&str, &str)> = e
                .errors
                .iter()
                .map(|f| (f.field.as_str(), f.code.as_ref()))
                .collect();
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn hints_of_an_unmappable_message_name_what_it_was() {
        let e = to_event(
            object(json!({"type": "track", "event": "Clicked", "messageId": "m-1"})),
            None,
            &Shared::default(),
            CLIENT,
            received(),
        )
        .expect_err("no ids");
        assert_eq!(e.hints.category, "track");
        assert_eq!(e.hints.name, "Clicked");
        assert_eq!(e.hints.event_id, event_id(CLIENT, "m-1").to_string());
    }

    #[test]
    fn message_ids_that_are_not_uuids_become_stable_ids_per_client() {
        let uuid = "9B2F1C4E-6A1D-4F0E-8D3C-2B7A5E9F0C11";
        assert_eq!(event_id(CLIENT, uuid).to_string(), uuid.to_lowercase());
        let a = event_id(CLIENT, "ajs-next-1700000000-abc");
        assert_eq!(a, event_id(CLIENT, "ajs-next-1700000000-abc"));
        assert_eq!(a.get_version_num(), 5);
        assert_ne!(a, event_id("fedcba9876543210", "ajs-next-1700000000-abc"));
        assert_ne!(a, event_id(CLIENT, "ajs-next-1700000000-abd"));
        let without = map(
            json!({"type": "identify", "userId": "u"}),
            None,
            &Shared::default(),
        );
        assert_eq!(without.get("event_id"), None, "the model draws one");
        let numeric = map(
            json!({"type": "identify", "userId": "u", "messageId": 17}),
            None,
            &Shared::default(),
        );
        assert_eq!(numeric["event_id"], event_id(CLIENT, "17").to_string());
    }

    #[test]
    fn time_is_the_timestamp_else_the_original_else_receipt_with_sent_at_for_the_skew() {
        let batch = Shared {
            sent_at: Some(json!("2026-12-01T00:00:09Z")),
            ..Shared::default()
        };
        let t1 = "2026-11-30T23:59:00Z";
        let t2 = "2026-11-30T23:58:00Z";
        let own = "2026-12-01T00:00:05Z";
        let cases = [
            (
                json!({"timestamp": t1, "originalTimestamp": t2, "sentAt": own}),
                Shared::default(),
                json!(t1),
                json!(own),
            ),
            (
                json!({"timestamp": t1}),
                batch.clone(),
                json!(t1),
                json!("2026-12-01T00:00:09Z"),
            ),
            (
                json!({"timestamp": t1, "sentAt": own}),
                batch.clone(),
                json!(t1),
                json!(own),
            ),
            (
                json!({"originalTimestamp": t2}),
                batch.clone(),
                json!(t2),
                json!("2026-12-01T00:00:09Z"),
            ),
            (
                json!({"timestamp": null, "originalTimestamp": t2}),
                Shared::default(),
                json!(t2),
                Value::Null,
            ),
            (
                json!({"timestamp": 1764547200}),
                Shared::default(),
                json!(1764547200),
                Value::Null,
            ),
            (
                json!({"sentAt": own}),
                batch,
                json!(received().to_rfc3339()),
                Value::Null,
            ),
        ];
        for (i, (mut message, shared, timestamp, sent_at)) in cases.into_iter().enumerate() {
            message["type"] = json!("identify");
            message["userId"] = json!("u");
            let event = map(message, None, &shared);
            assert_eq!(event["timestamp"], timestamp, "case {i}");
            assert_eq!(
                event.get("sent_at").cloned().unwrap_or(Value::Null),
                sent_at,
                "case {i}"
            );
        }
    }

    #[test]
    fn data_is_the_message_without_its_envelope_under_the_batch_context() {
        let shared = Shared {
            sent_at: None,
            context: Some(object(
                json!({"library": {"name": "analytics-python"}, "ip": "10.0.0.1"}),
            )),
            integrations: Some(object(json!({"All": true}))),
        };
        let message = json!({
            "type": "track", "event": "Clicked", "userId": "u", "anonymousId": "a",
            "messageId": "m", "timestamp": "2026-11-30T00:00:00Z", "sentAt": "2026-11-30T00:00:01Z",
            "originalTimestamp": "2026-11-30T00:00:00Z", "writeKey": "eye_secret.key",
            "properties": {"price": 9.5}, "context": {"ip": "10.0.0.2"},
        });
        let event = map(message, None, &shared);
        assert_eq!(
            event["data"],
            json!({
                "event": "Clicked", "userId": "u", "anonymousId": "a", "messageId": "m",
                "originalTimestamp": "2026-11-30T00:00:00Z", "properties": {"price": 9.5},
                "context": {"ip": "10.0.0.2", "library": {"name": "analytics-python"}},
                "integrations": {"All": true},
            })
        );
        let kept = map(
            json!({"type": "identify", "userId": "u", "context": "as sent", "integrations": null}),
            None,
            &shared,
        );
        assert_eq!(kept["data"]["context"], "as sent");
        assert_eq!(kept["data"]["integrations"], json!({"All": true}));
    }
}
