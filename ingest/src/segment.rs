//! Segment's HTTP tracking API (`/v1/batch`, `/v1/track`, `/v1/identify`, `/v1/page`,
//! `/v1/screen`, `/v1/group`, `/v1/alias`), as Segment's, RudderStack's and Jitsu's SDKs
//! speak it: each message becomes an event (`message`), and the events go through the one
//! core (`batch::accept_items`) under the adapter `segment`.

mod answer;
mod message;
mod request;

pub use answer::{refusal, SegmentError};
pub use request::{write_key, Door};

use crate::adapter::Adapter;
use crate::batch::{self, Caller};
use crate::budget::Reservation;
use crate::error::IngestError;
use crate::routes::State;
use crate::sink::EventSink;
use eye_model::event::{
    parse_mapped, FieldError, Hints, Item, Limits, Rejected, RequestError, Rules,
};
use eye_model::time::EventTime;
use message::Shared;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use warp::reply::Response;

/// Segment's limits (`EYE_INGEST_SEGMENT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLimits {
    /// Largest message, as its JSON text; a larger one is rejected on its own.
    pub max_message_bytes: usize,
    /// Largest request body once decompressed; a larger one is refused whole (413).
    pub max_batch_bytes: u64,
}

impl Default for SegmentLimits {
    /// Segment's own: 32 KB a message, 500 KB a batch.
    fn default() -> Self {
        Self {
            max_message_bytes: 32 * 1024,
            max_batch_bytes: 500 * 1024,
        }
    }
}

/// Room for what the mapping adds to a message (the event's id, session, type, name and
/// time): the message's own text is what its limit is held to.
const MAPPING_ALLOWANCE_BYTES: usize = 1024;

/// Handles the body of a request that came by `door` from `caller`, whose bytes `held`
/// holds: split → each message mapped and checked → the core → Segment's answer. A body
/// that holds no messages is quarantined whole and refused.
pub async fn accept<S: EventSink>(
    state: &State<S>,
    caller: &impl Caller,
    door: Door,
    body: &[u8],
    held: &mut Reservation,
) -> Result<Response, IngestError> {
    let limits = state.segment;
    if body.len() as u64 > limits.max_batch_bytes {
        return Err(SegmentError::BatchTooLarge {
            size: body.len(),
            limit: limits.max_batch_bytes,
        }
        .into());
    }
    let received_at = EventTime::now();
    let split = match request::split(body, door) {
        Ok(s) => s,
        Err(e) => {
            let kept = without_write_key(&String::from_utf8_lossy(body)).into_owned();
            batch::quarantine_body(state, caller, Adapter::Segment, kept.as_bytes(), &e, held)
                .await?;
            return Err(e.into());
        }
    };
    let max = state.limits.max_batch_events;
    if split.messages.len() > max {
        return Err(RequestError::TooManyEvents {
            count: split.messages.len(),
            max,
        }
        .into());
    }
    let items = {
        // The schemas in force are read once, and let go before anything is awaited.
        let schemas = state.schemas.current();
        let rules = state.rules(&schemas, caller);
        let mapped_limits = mapped_limits(rules.limits, &split.shared, limits);
        let each = Each {
            door,
            shared: &split.shared,
            client: caller.client_id(),
            received_at,
            rules: Rules {
                limits: &mapped_limits,
                ..rules
            },
            max_message_bytes: limits.max_message_bytes,
        };
        split.messages.iter().map(|m| each.item(m)).collect()
    };
    let answer =
        batch::accept_items(state, caller, Adapter::Segment, items, received_at, held).await?;
    answer::respond(door, answer)
}

/// The limits a mapped message is held to: the event contract's, except its size, since
/// the message's own text has been held to Segment's limit, and a batch's `context` and
/// `integrations` are copied into each of its messages.
fn mapped_limits(contract: &Limits, shared: &Shared, segment: SegmentLimits) -> Limits {
    let size = |m: &Option<Map<String, Value>>| {
        m.as_ref()
            .and_then(|m| serde_json::to_string(m).ok())
            .map_or(0, |s| s.len())
    };
    let most = segment.max_message_bytes
        + size(&shared.context)
        + size(&shared.integrations)
        + MAPPING_ALLOWANCE_BYTES;
    Limits {
        max_event_bytes: contract.max_event_bytes.max(most),
        ..*contract
    }
}

/// What every message of one request is mapped and checked with.
struct Each<'a> {
    door: Door,
    shared: &'a Shared,
    client: &'a str,
    received_at: EventTime,
    rules: Rules<'a>,
    max_message_bytes: usize,
}

impl Each<'_> {
    /// One message as an item for the core: an event, or a rejection keeping the message
    /// as sent (without its write key) whose reasons name the message's fields.
    fn item(&self, raw: &RawValue) -> Item {
        let text = raw.get();
        let refuse = |errors: Vec<FieldError>, hints: Hints| {
            Item::Rejected(Rejected {
                raw: without_write_key(text).into_owned(),
                errors,
                hints,
            })
        };
        if text.len() > self.max_message_bytes {
            let e = FieldError::new(
                "",
                "message_too_large",
                format!(
                    "message is {} bytes; at most {} are accepted",
                    text.len(),
                    self.max_message_bytes
                ),
            );
            return refuse(vec![e], Hints::default());
        }
        let message = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            // Well-formed (the body parsed) but unrepresentable, e.g. 1e400.
            Err(e) => {
                let e = FieldError::new("", "invalid_json", e.to_string());
                return refuse(vec![e], Hints::default());
            }
            Ok(_) => {
                let e = FieldError::new("", "not_an_object", "each message must be a JSON object");
                return refuse(vec![e], Hints::default());
            }
        };
        let implied = self.door.implied_type();
        let mapped =
            match message::to_event(message, implied, self.shared, self.client, self.received_at) {
                Ok(m) => m,
                Err(u) => return refuse(u.errors, u.hints),
            };
        let Ok(event) = serde_json::value::to_raw_value(&mapped.event) else {
            // A `Value` always serialises; kept total rather than unwrapped.
            let e = FieldError::new("", "invalid_json", "the message cannot be written as JSON");
            return refuse(vec![e], Hints::default());
        };
        match parse_mapped(&event, text, self.received_at, self.rules) {
            Item::Rejected(mut r) => {
                r.raw = without_write_key(&r.raw).into_owned();
                for e in &mut r.errors {
                    e.field = mapped.origins.pointer(&e.field);
                }
                Item::Rejected(r)
            }
            accepted => accepted,
        }
    }
}

/// `text` without the `writeKey` at its top: a credential is never quarantined. Text
/// without one is kept exactly as sent.
fn without_write_key(text: &str) -> Cow<'_, str> {
    if !text.contains("writeKey") {
        return Cow::Borrowed(text);
    }
    match serde_json::from_str::<Map<String, Value>>(text) {
        Ok(mut m) => match m.remove("writeKey") {
            Some(_) => Cow::Owned(serde_json::to_string(&m).unwrap_or_default()),
            None => Cow::Borrowed(text),
        },
        Err(_) => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests;
