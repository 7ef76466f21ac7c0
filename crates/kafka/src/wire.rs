//! The Kafka message formats between ingest and the consumer, one per topic:
//! - events (`eye.events`): an accepted event, keyed by `session_id`;
//! - rejections (`eye.rejected`): a refused event or undecodable message, with reasons;
//! - session updates (`eye.sessions`): a session's start or end, keyed by `session_id`.
//!
//! JSON, one record per message. `v` is the format version so a consumer can refuse what
//! it does not understand instead of storing it wrongly. Event `data` travels as raw JSON
//! text: the consumer stores it as-is and never re-parses it.

use eye_model::event::{Event, FieldError, Hints};

use eye_model::session::SessionChange;
use eye_model::time::EventTime;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

pub const WIRE_VERSION: u8 = 1;

#[derive(Debug, Serialize)]
struct WireOut<'a> {
    v: u8,
    event_id: Uuid,
    session_id: &'a str,
    category: &'a str,
    name: &'a str,
    timestamp_us: i64,
    client_timestamp_us: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_at_us: Option<i64>,
    received_at_us: i64,
    data: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
}

/// An event as read from the events topic; `data` stays raw JSON text, never re-parsed.
#[derive(Debug, Deserialize)]
pub struct EventMessage<'a> {
    pub v: u8,
    pub event_id: Uuid,
    pub session_id: String,
    pub category: String,
    pub name: String,
    pub timestamp_us: i64,
    /// Absent in messages written before clock-skew correction existed.
    #[serde(default)]
    pub client_timestamp_us: Option<i64>,
    #[serde(default)]
    pub sent_at_us: Option<i64>,
    pub received_at_us: i64,
    #[serde(borrow)]
    pub data: &'a RawValue,
    #[serde(default)]
    pub value: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not a valid event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported wire version {0} (this consumer reads {WIRE_VERSION})")]
    Version(u8),
}

/// Serialises an event for the `eye.events` topic.
pub fn encode(ev: &Event) -> Vec<u8> {
    let out = WireOut {
        v: WIRE_VERSION,
        event_id: ev.event_id,
        session_id: ev.session_id.as_str(),
        category: ev.category.as_str(),
        name: ev.name.as_str(),
        timestamp_us: ev.timestamp.as_micros(),
        client_timestamp_us: ev.client_timestamp.as_micros(),
        sent_at_us: ev.sent_at.map(EventTime::as_micros),
        received_at_us: ev.received_at.as_micros(),
        data: &ev.data,
        value: ev.value,
    };
    // Serialising a struct of strings, numbers and a JSON map cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}

/// Reads one message of the events topic.
pub fn decode_event(payload: &[u8]) -> Result<EventMessage<'_>, DecodeError> {
    let m: EventMessage<'_> = serde_json::from_slice(payload)?;
    if m.v != WIRE_VERSION {
        return Err(DecodeError::Version(m.v));
    }
    Ok(m)
}

/// One reason a record was rejected; `field` is a JSON Pointer into the raw payload's event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl From<&FieldError> for Reason {
    fn from(e: &FieldError) -> Self {
        Self {
            field: e.field.clone(),
            code: e.code.clone().into_owned(),
            message: e.message.clone(),
        }
    }
}

/// Where a rejection was decided.
pub const SOURCE_INGEST: &str = "ingest";
pub const SOURCE_CONSUMER: &str = "consumer";

/// A record for the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub v: u8,
    /// Stable across replays, so the quarantine stores each rejection once.
    pub rejection_id: Uuid,
    pub received_at_us: i64,
    pub source: String,
    pub client: String,
    pub reasons: Vec<Reason>,
    /// The payload as received (for undecodable bytes: lossily as UTF-8), cut to
    /// [`QUARANTINE_RAW_MAX_BYTES`] when longer; `raw_bytes` and `raw_sha256` describe the
    /// whole original.
    pub raw: String,
    /// Length of the original payload in bytes (0 in records written before it existed:
    /// then `raw` is whole).
    #[serde(default)]
    pub raw_bytes: u64,
    /// SHA-256 of the original payload's bytes, lowercase hex (empty in older records).
    #[serde(default)]
    pub raw_sha256: String,
    #[serde(default)]
    pub event_id: String,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub name: String,
}

/// Most bytes of a rejected payload the quarantine keeps. A dead-letter record must fit the
/// broker's message limit (1 MB by default in Kafka, librdkafka and tansu) whatever the
/// client sent: ingest accepts bodies of several MiB, and an unparseable one is quarantined
/// whole. The cut copy, with the original's length and SHA-256, is enough to see what was
/// sent and to match it against the client's own copy.
pub const QUARANTINE_RAW_MAX_BYTES: usize = 64 * 1024;
/// Most reasons one quarantine record keeps; the last kept one then says how many were left
/// out (an object of 100,000 unknown keys has 100,000 reasons).
pub const QUARANTINE_MAX_REASONS: usize = 100;
/// Most bytes of each text a record carries besides `raw`: a reason's field and message, and
/// each hint (event id, session id, category, name), which come from unchecked input.
pub const QUARANTINE_TEXT_MAX_BYTES: usize = 1024;

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The reasons a record keeps: at most [`QUARANTINE_MAX_REASONS`], each text bounded.
fn bounded_reasons(reasons: Vec<Reason>) -> Vec<Reason> {
    let total = reasons.len();
    let bound = |r: Reason| Reason {
        field: cut(r.field, QUARANTINE_TEXT_MAX_BYTES),
        code: cut(r.code, QUARANTINE_TEXT_MAX_BYTES),
        message: cut(r.message, QUARANTINE_TEXT_MAX_BYTES),
    };
    if total <= QUARANTINE_MAX_REASONS {
        return reasons.into_iter().map(bound).collect();
    }
    let kept = QUARANTINE_MAX_REASONS - 1;
    let mut out: Vec<Reason> = reasons.into_iter().take(kept).map(bound).collect();
    out.push(Reason {
        field: String::new(),
        code: "reasons_truncated".into(),
        message: format!(
            "{} more reasons were found and not kept ({total} in all)",
            total - kept
        ),
    });
    out
}

impl Rejection {
    /// A record for `raw`, the rejected payload's bytes: kept whole up to
    /// [`QUARANTINE_RAW_MAX_BYTES`] (as UTF-8, invalid sequences replaced), cut beyond,
    /// always with the original's length and SHA-256; reasons and hints bounded likewise,
    /// so that every record fits the broker.
    pub fn new(
        source: &str,
        client: &str,
        received_at: EventTime,
        raw: &[u8],
        reasons: Vec<Reason>,
        hints: Hints,
    ) -> Self {
        use sha2::Digest;
        let kept = &raw[..raw.len().min(QUARANTINE_RAW_MAX_BYTES)];
        // A cut inside a multi-byte character leaves a replacement character at the end,
        // which may take the text up to 2 bytes past the bound; `cut` trims it back.
        let text = cut(
            String::from_utf8_lossy(kept).into_owned(),
            QUARANTINE_RAW_MAX_BYTES,
        );
        Self {
            v: WIRE_VERSION,
            rejection_id: Uuid::now_v7(),
            received_at_us: received_at.as_micros(),
            source: source.to_owned(),
            client: cut(client.to_owned(), QUARANTINE_TEXT_MAX_BYTES),
            reasons: bounded_reasons(reasons),
            raw: text,
            raw_bytes: raw.len() as u64,
            raw_sha256: hex::encode(sha2::Sha256::digest(raw)),
            event_id: cut(hints.event_id, QUARANTINE_TEXT_MAX_BYTES),
            session_id: cut(hints.session_id, QUARANTINE_TEXT_MAX_BYTES),
            category: cut(hints.category, QUARANTINE_TEXT_MAX_BYTES),
            name: cut(hints.name, QUARANTINE_TEXT_MAX_BYTES),
        }
    }

    /// Whether `raw` holds less than the original payload.
    pub fn is_cut(&self) -> bool {
        self.raw_bytes > self.raw.len() as u64
    }

    /// The Kafka key: the session when known, so a session's rejections stay together.
    pub fn key(&self) -> String {
        if self.session_id.is_empty() {
            self.rejection_id.to_string()
        } else {
            self.session_id.clone()
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Reads one message of the dead-letter topic.
pub fn decode_rejection(payload: &[u8]) -> Result<Rejection, DecodeError> {
    let r: Rejection = serde_json::from_slice(payload)?;
    if r.v != WIRE_VERSION {
        return Err(DecodeError::Version(r.v));
    }
    Ok(r)
}

/// A session's start or end. Either may arrive first, and before or after its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUpdate {
    pub v: u8,
    pub update_id: Uuid,
    pub session_id: String,
    /// `start` or `end`.
    pub kind: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub machine_id: String,
    #[serde(default)]
    pub org_id: String,
    pub at_us: i64,
    pub received_at_us: i64,
}

impl SessionUpdate {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl From<&SessionChange> for SessionUpdate {
    fn from(c: &SessionChange) -> Self {
        Self {
            v: WIRE_VERSION,
            update_id: c.update_id,
            session_id: c.session_id.as_str().to_owned(),
            kind: c.kind.as_str().to_owned(),
            user_id: c.user_id.clone(),
            machine_id: c.machine_id.clone(),
            org_id: c.org_id.clone(),
            at_us: c.at.as_micros(),
            received_at_us: c.received_at.as_micros(),
        }
    }
}

/// Reads one message of the sessions topic.
pub fn decode_session(payload: &[u8]) -> Result<SessionUpdate, DecodeError> {
    let u: SessionUpdate = serde_json::from_slice(payload)?;
    if u.v != WIRE_VERSION {
        return Err(DecodeError::Version(u.v));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_model::event::parse_events;

    #[test]
    fn an_event_round_trips_through_the_wire() {
        let body = br#"[
          {"event_id": "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10", "session_id": "s1", "category": "page_interaction",
           "name": "page_view", "data": {"host": "h", "path": "/"}, "timestamp": "2021-09-26 09:15:27.243860"},
          {"event_id": "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a11", "session_id": "s2", "category": "metrics",
           "name": "availableMemory", "data": {"nested": {"a": [1, 2]}}, "timestamp": "2020-11-12T11:10:00Z", "value": 1.5}
        ]"#;
        let received = EventTime::from_micros(1_700_000_000_000_123);
        let events = parse_events(body, received).expect("valid");
        let cases = [
            (
                "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10",
                "s1",
                "page_interaction",
                "page_view",
                1_632_647_727_243_860,
                r#"{"host":"h","path":"/"}"#,
                None,
            ),
            (
                "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a11",
                "s2",
                "metrics",
                "availableMemory",
                1_605_179_400_000_000,
                r#"{"nested":{"a":[1,2]}}"#,
                Some(1.5),
            ),
        ];
        for (ev, (id, session, category, name, ts_us, data, value)) in events.iter().zip(cases) {
            let payload = encode(ev);
            let m = decode_event(&payload).expect("decodes");
            assert_eq!(m.event_id.to_string(), id);
            assert_eq!(m.session_id, session);
            assert_eq!(m.category, category);
            assert_eq!(m.name, name);
            assert_eq!(m.timestamp_us, ts_us);
            assert_eq!(m.received_at_us, received.as_micros());
            assert_eq!(m.data.get(), data);
            assert_eq!(m.value, value);
        }
    }

    #[test]
    fn a_rejection_keeps_at_most_its_bound_and_describes_the_whole() {
        use sha2::Digest;
        let max = QUARANTINE_RAW_MAX_BYTES;
        // (case, payload, bytes kept)
        let multi = "é".repeat(max); // 2 bytes each: the bound falls between characters
        let cases: Vec<(&str, Vec<u8>, usize)> = vec![
            ("small", b"{\"a\":1}".to_vec(), 7),
            ("exactly the bound", vec![b'x'; max], max),
            ("one byte over", vec![b'x'; max + 1], max),
            ("2 MB", vec![b'{'; 2_000_000], max),
            (
                "cut inside a character",
                [b"x".as_slice(), multi.as_bytes()].concat(),
                max - 1,
            ),
            (
                "invalid UTF-8 beyond the bound",
                [vec![b'y'; max], vec![0xff; 10]].concat(),
                max,
            ),
        ];
        for (case, payload, kept) in cases {
            let r = Rejection::new(
                "ingest",
                "c",
                EventTime::from_micros(1),
                &payload,
                vec![],
                Hints::default(),
            );
            assert_eq!(r.raw.len(), kept, "{case}");
            assert!(
                payload.starts_with(r.raw.as_bytes()),
                "{case}: the payload's beginning"
            );
            assert_eq!(r.raw_bytes, payload.len() as u64, "{case}");
            assert_eq!(
                r.raw_sha256,
                hex::encode(sha2::Sha256::digest(&payload)),
                "{case}"
            );
            assert_eq!(r.is_cut(), payload.len() > kept, "{case}");
            let back = decode_rejection(&r.encode()).expect("decodes");
            assert_eq!(
                (back.raw_bytes, back.raw_sha256.as_str()),
                (r.raw_bytes, r.raw_sha256.as_str())
            );
            assert!(r.encode().len() < 2 * max, "{case}: the record stays small");
        }
    }

    #[test]
    fn a_rejection_bounds_its_reasons_and_hints() {
        // Long texts in the first few reasons only, to keep the test's own memory small.
        let long = |i: usize| if i < 5 { 5000 } else { 1 };
        let reason = |i: usize| Reason {
            field: format!("/k{i}{}", "f".repeat(long(i))),
            code: "unknown_field".into(),
            message: "m".repeat(long(i)),
        };
        let hints = Hints {
            event_id: "e".repeat(40_000),
            session_id: "s".repeat(40_000),
            category: "c".into(),
            name: "n".into(),
        };
        for (n, kept) in [
            (3, 3),
            (QUARANTINE_MAX_REASONS, QUARANTINE_MAX_REASONS),
            (100_000, QUARANTINE_MAX_REASONS),
        ] {
            let reasons = (0..n).map(reason).collect();
            let r = Rejection::new(
                "ingest",
                "c",
                EventTime::from_micros(1),
                b"{}",
                reasons,
                hints.clone(),
            );
            assert_eq!(r.reasons.len(), kept, "{n} reasons");
            assert!(r
                .reasons
                .iter()
                .all(|x| x.field.len() <= QUARANTINE_TEXT_MAX_BYTES
                    && x.message.len() <= QUARANTINE_TEXT_MAX_BYTES));
            let last = &r.reasons[kept - 1];
            assert_eq!(
                last.code == "reasons_truncated",
                n > QUARANTINE_MAX_REASONS,
                "{n}"
            );
            if n > QUARANTINE_MAX_REASONS {
                assert!(
                    last.message.contains(&format!("{n} in all")),
                    "{}",
                    last.message
                );
            }
            assert_eq!(r.session_id.len(), QUARANTINE_TEXT_MAX_BYTES);
            assert_eq!(r.event_id.len(), QUARANTINE_TEXT_MAX_BYTES);
            assert!(
                r.encode().len() < 300_000,
                "{n} reasons: {} bytes",
                r.encode().len()
            );
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let cases: [(&[u8], &str); 4] = [
            (b"not json", "not a valid event"),
            (b"{}", "not a valid event"),
            (
                br#"{"v":2,"event_id":"0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10","session_id":"s","category":"c","name":"n","timestamp_us":1,"received_at_us":1,"data":{}}"#,
                "unsupported wire version 2",
            ),
            (
                br#"{"v":1,"event_id":"nope","session_id":"s","category":"c","name":"n","timestamp_us":1,"received_at_us":1,"data":{}}"#,
                "not a valid event",
            ),
        ];
        for (payload, want) in cases {
            let err = decode_event(payload).expect_err("must fail").to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }
}
