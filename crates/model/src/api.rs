//! The HTTP APIs' bodies as types: what ingest answers a batch, and what the query service
//! answers each read. The services serialize these and `eye-client` deserializes the same
//! types, so the two cannot drift apart. Times are RFC 3339 text, UTC, with microseconds,
//! as the services write them.

use crate::event::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use uuid::Uuid;

/// The one error shape every service answers with: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable `code`, a sentence for people, and per-field `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: Cow<'static, str>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

/// One event as `POST /v1/events` takes it. The server checks every field (README, "Event
/// contract"); building one checks nothing, so that a client sends what its caller gave and
/// reports the server's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Absent: the client assigns a UUIDv7 before the first attempt, so every retry
    /// resends the same id and the event is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    pub session_id: String,
    pub category: String,
    pub name: String,
    pub data: Map<String, Value>,
    /// Any timestamp form the contract accepts; RFC 3339 text in UTC is the plainest.
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

impl NewEvent {
    /// An event of `(category, name)` in `session_id`, with empty `data`, at `timestamp`.
    pub fn new(
        session_id: impl Into<String>,
        category: impl Into<String>,
        name: impl Into<String>,
        timestamp: impl Into<String>,
    ) -> Self {
        Self {
            event_id: None,
            session_id: session_id.into(),
            category: category.into(),
            name: name.into(),
            data: Map::new(),
            timestamp: timestamp.into(),
            sent_at: None,
            value: None,
        }
    }

    pub fn with_data(mut self, data: Map<String, Value>) -> Self {
        self.data = data;
        self
    }

    pub fn with_value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }

    pub fn with_event_id(mut self, id: Uuid) -> Self {
        self.event_id = Some(id);
        self
    }
}

/// What became of one item of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Acknowledged by the broker: it will be stored.
    Accepted,
    /// Broke a rule; quarantined, never stored. Sending it again cannot succeed.
    Rejected,
    /// Not taken by the broker although others of the request were: send it again.
    Failed,
}

impl ItemStatus {
    /// As the answer writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemResult {
    pub index: usize,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Ingest's answer to every request that reached per-event checks: 202 (all accepted),
/// 207 (some rejected or failed) or 400 (all rejected; also carries `error`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchResponse {
    pub accepted: usize,
    pub rejected: usize,
    /// Items the sink did not take although others of the request were stored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: usize,
    pub event_ids: Vec<Uuid>,
    pub results: Vec<ItemResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// A stored event as the `/v1` reads show it.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventView {
    pub event_id: Uuid,
    pub session_id: String,
    pub category: String,
    pub name: String,
    /// Corrected for client clock skew when `sent_at` was given.
    pub timestamp: String,
    /// The timestamp as the client sent it.
    pub client_timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    pub received_at: String,
    /// The stored JSON text, passed through without re-parsing.
    pub data: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// An event as its producer sent it, as the seed APIs list events: the time is the one the
/// client gave, not the clock-corrected one.
#[derive(Debug, Serialize, Deserialize)]
pub struct SentEvent {
    pub event_id: Uuid,
    pub session_id: String,
    pub category: String,
    pub name: String,
    pub data: Box<RawValue>,
    pub timestamp: String,
}

/// A session's lifecycle, as far as its start and end records have arrived.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SessionView {
    pub user_id: Option<String>,
    pub machine_id: Option<String>,
    pub org_id: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
}

/// A session as `GET /v1/sessions/{id}` and `GET /v1/users/{id}/sessions` show it: the
/// lifecycle as recorded, and what its stored events say.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionSummary {
    pub session_id: String,
    #[serde(flatten)]
    pub lifecycle: SessionView,
    /// Distinct events stored (each event_id once).
    pub event_count: u64,
    pub first_event_at: Option<String>,
    pub last_event_at: Option<String>,
}

/// `GET /v1/sessions/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// A page of the session's events in time order.
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next page of events; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/users/{id}/sessions`.
#[derive(Debug, Serialize, Deserialize)]
pub struct OwnerSessions {
    pub user_id: String,
    /// Newest start first.
    pub sessions: Vec<SessionSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One bucket of `GET /v1/aggregate`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BucketView {
    /// The bucket's first instant, in the requested zone's offset.
    pub start: String,
    /// `null` for an empty bucket under `fill=null`.
    pub value: Option<f64>,
    /// Events aggregated into the bucket.
    pub count: u64,
}

/// `GET /v1/aggregate`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Aggregate {
    pub category: String,
    pub name: String,
    pub granularity: Cow<'static, str>,
    pub agg: Cow<'static, str>,
    pub tz: String,
    pub fill: Cow<'static, str>,
    pub buckets: Vec<BucketView>,
}

/// `GET /v1/sessions/{id}/events`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionEvents {
    pub session_id: String,
    /// `null` until a start or end record for the session has been stored.
    pub session: Option<SessionView>,
    pub events: Vec<EventView>,
}

/// One (category, name) of `GET /v1/categories`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CategoryView {
    pub category: String,
    pub name: String,
    /// Distinct events (each event_id once).
    pub events: u64,
    pub first_seen: String,
    pub last_seen: String,
}

/// `GET /v1/categories`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Categories {
    pub categories: Vec<CategoryView>,
}

/// `GET /v1/schemas`: each event type's JSON Schema, sorted by category then name.
#[derive(Debug, Serialize, Deserialize)]
pub struct Schemas {
    pub schemas: Vec<crate::schema::SchemaDocument>,
}

/// `GET /v1/events` and `GET /v1/machines/{id}/events`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A quarantined request or event, as `GET /v1/rejected` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct RejectedView {
    pub rejection_id: Uuid,
    pub received_at: String,
    pub source: String,
    pub client: String,
    pub reasons: Box<RawValue>,
    /// The payload as received, cut to its first 64 KiB when longer (`raw_truncated`).
    pub raw: String,
    /// The whole original payload's length in bytes and SHA-256 (hex; empty for records
    /// quarantined before it was kept).
    pub raw_bytes: u64,
    pub raw_sha256: String,
    pub raw_truncated: bool,
    pub event_id: String,
    pub session_id: String,
    pub category: String,
    pub name: String,
    /// The record's latest replay (`POST /v1/rejected/replay`); absent when it was never
    /// replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayOutcomeView>,
}

/// What the latest replay of a quarantined record did.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplayOutcomeView {
    pub replay_id: Uuid,
    pub replayed_at: String,
    /// The id of the client that asked for the replay.
    pub replayed_by: String,
    /// `replayed`: produced as an event; `rejected`: still quarantined, for `reasons`.
    pub result: String,
    /// What the record breaks now (empty when replayed).
    pub reasons: Box<RawValue>,
}

/// `GET /v1/rejected`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RejectedPage {
    pub rejected: Vec<RejectedView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// What `POST /v1/rejected/replay` selects from the quarantine and how it runs (its body).
/// Every filter is optional; `from`/`to` bound the original time of receipt (`to`
/// excluded), as `GET /v1/rejected`'s do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Report what would pass, per reason, producing nothing and recording no outcome.
    #[serde(default)]
    pub dry_run: bool,
}

/// Running counts of a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayCounts {
    /// Records read from the quarantine.
    pub scanned: u64,
    /// Produced as events (a dry run: would be).
    pub replayed: u64,
    /// Still breaking a rule: kept in the quarantine with their new reasons.
    pub rejected: u64,
    /// Already replayed by an earlier replay: left alone.
    pub skipped: u64,
    /// Passed, but the broker did not take their events: no outcome recorded; replay again.
    pub failed: u64,
}

/// Per original reason code: how many of the records quarantined for it pass now and how
/// many still fail (a record with several codes counts under each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCounts {
    pub pass: u64,
    pub fail: u64,
}

/// One line of `POST /v1/rejected/replay`'s answer (NDJSON): progress lines as pages are
/// done, then one `summary`, or an `error` that ends the answer early.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplayLine {
    Progress {
        counts: ReplayCounts,
    },
    Summary {
        replay_id: Uuid,
        dry_run: bool,
        counts: ReplayCounts,
        by_reason: std::collections::BTreeMap<String, ReasonCounts>,
    },
    Error {
        code: String,
        message: String,
        counts: ReplayCounts,
    },
}

/// `GET /v1/deletions/{id}`'s answer: the deletion's audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionView {
    pub deletion_id: Uuid,
    pub subject: SubjectView,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
    /// The client id of the caller.
    pub requested_by: String,
    pub requested_at: String,
    pub finished_at: Option<String>,
    /// Rows deleted per table; empty until done.
    pub counts: std::collections::BTreeMap<String, u64>,
    pub error: Option<String>,
}

impl DeletionView {
    /// Done or failed: nothing about it changes any more.
    pub fn ended(&self) -> bool {
        self.status == "done" || self.status == "failed"
    }
}

/// Whose data a deletion removes: `user`, `session` or `machine`, and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectView {
    pub kind: String,
    pub id: String,
}

/// `DELETE /v1/users|sessions|machines/{id}`'s answer (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionAccepted {
    pub deletion_id: Uuid,
    pub status: String,
    pub location: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a service writes, a client reads back as the same value.
    #[test]
    fn answers_read_back_as_written() {
        let batch = BatchResponse {
            accepted: 1,
            rejected: 1,
            failed: 0,
            event_ids: vec![Uuid::from_u128(1)],
            results: vec![
                ItemResult {
                    index: 0,
                    status: ItemStatus::Accepted,
                    event_id: Some(Uuid::from_u128(1)),
                    errors: Vec::new(),
                },
                ItemResult {
                    index: 1,
                    status: ItemStatus::Rejected,
                    event_id: None,
                    errors: vec![FieldError::new("/name", "required", "name is required")],
                },
            ],
            error: None,
        };
        let text = serde_json::to_string(&batch).expect("JSON");
        assert_eq!(
            text,
            format!(
                r#"{{"accepted":1,"rejected":1,"event_ids":["{id}"],"results":[{{"index":0,"status":"accepted","event_id":"{id}"}},{{"index":1,"status":"rejected","errors":[{{"field":"/name","code":"required","message":"name is required"}}]}}]}}"#,
                id = Uuid::from_u128(1)
            )
        );
        let back: BatchResponse = serde_json::from_str(&text).expect("reads back");
        assert_eq!(serde_json::to_string(&back).expect("JSON"), text);

        let page = r#"{"events":[{"event_id":"00000000-0000-0000-0000-000000000002","session_id":"s","category":"c","name":"n","timestamp":"2024-01-01T00:00:00.000000Z","client_timestamp":"2024-01-01T00:00:00.000000Z","received_at":"2024-01-01T00:00:01.000000Z","data":{"a":[1,2]},"value":1.5}],"next_cursor":"x"}"#;
        let read: EventPage = serde_json::from_str(page).expect("reads");
        assert_eq!(read.events[0].data.get(), r#"{"a":[1,2]}"#);
        assert_eq!(serde_json::to_string(&read).expect("JSON"), page);
    }
}
