//! The rows The Eye writes to and reads from ClickHouse. RowBinary is positional: each
//! row's fields are in the column order of the statement that reads or writes it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One stored event, in the column order of [`crate::sql::EVENT_COLUMNS`].
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct EventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub session_id: String,
    pub category: String,
    pub name: String,
    /// Event time, corrected for client clock skew.
    pub ts_us: i64,
    pub received_at_us: i64,
    /// The event's `data` object as JSON text, exactly as produced by ingest.
    pub data: String,
    pub value: Option<f64>,
    /// Event time as the client sent it.
    pub client_ts_us: i64,
    pub sent_at_us: Option<i64>,
}

/// A copy of an event already in storage: its identity and the times that tell one copy
/// from another (see [`crate::Store::stored_copies`]).
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Serialize, Deserialize)]
pub struct StoredCopy {
    pub client_ts_us: i64,
    pub session_id: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub ts_us: i64,
    pub received_at_us: i64,
}

/// An event's identity: its session, its id and the time the client gave it (a retry
/// repeats all three).
pub type EventKey<'a> = (&'a str, Uuid, i64);

/// One quarantined record, in the column order of [`crate::sql::REJECTED_COLUMNS`].
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct RejectedRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub rejection_id: Uuid,
    pub received_at_us: i64,
    pub source: String,
    pub client: String,
    pub codes: Vec<String>,
    /// JSON array of `{field, code, message}`.
    pub reasons: String,
    /// The payload, cut to `wire::QUARANTINE_RAW_MAX_BYTES` when longer.
    pub raw: String,
    pub event_id: String,
    pub session_id: String,
    pub category: String,
    pub name: String,
    /// The original payload's length in bytes, and its SHA-256 (hex).
    pub raw_bytes: u64,
    pub raw_sha256: String,
}

/// One outcome of a replay of a quarantined record, in the column order of
/// [`crate::sql::REPLAY_COLUMNS`]; read back as a record's latest outcome.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Serialize, Deserialize)]
pub struct ReplayRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub rejection_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    pub replay_id: Uuid,
    pub replayed_at_us: i64,
    /// The id of the client that asked for the replay.
    pub replayed_by: String,
    /// `replayed` or `rejected`.
    pub result: String,
    /// What the record breaks now (empty when replayed).
    pub codes: Vec<String>,
    /// JSON array of `{field, code, message}`.
    pub reasons: String,
}

/// An id linked to a user by an `identify` (its anonymousId) or an `alias` (its
/// previousId), in the column order of [`crate::sql::LINK_COLUMNS`].
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Serialize, Deserialize)]
pub struct LinkRow {
    pub user_id: String,
    pub anonymous_id: String,
    /// The message type that made the link: `identify` or `alias`.
    pub via: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub session_id: String,
    pub ts_us: i64,
}

/// An event filed under one id it names (`userId` or `anonymousId`), in the column order
/// of [`crate::sql::ACTOR_COLUMNS`]: the event's identity and time.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Serialize, Deserialize)]
pub struct ActorRow {
    pub actor_id: String,
    pub ts_us: i64,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub session_id: String,
    pub client_ts_us: i64,
}

/// One session lifecycle record: a row of [`crate::sql::SESSIONS_TABLE`].
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Serialize, Deserialize)]
pub struct SessionRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub update_id: Uuid,
    pub session_id: String,
    pub kind: String,
    pub user_id: String,
    pub machine_id: String,
    pub org_id: String,
    pub at_us: i64,
    pub received_at_us: i64,
}

/// A session's metadata, merged from its lifecycle records.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct SessionMeta {
    pub session_id: String,
    pub user_id: String,
    pub machine_id: String,
    pub org_id: String,
    pub started_at_us: i64,
    pub ended_at_us: i64,
    pub starts: u64,
    pub ends: u64,
}

/// One event type seen in storage.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct CategoryRow {
    pub category: String,
    pub name: String,
    pub events: u64,
    pub first_us: i64,
    pub last_us: i64,
}

/// A session's events: how many distinct ones, and the first and last event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct SessionStats {
    pub events: u64,
    pub first_us: i64,
    pub last_us: i64,
}

/// The stored copies a filter matches after its cursor, and their first and last event
/// time (0 and 0 when none): how an export sizes its time windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct EventSpan {
    pub copies: u64,
    pub first_us: i64,
    pub last_us: i64,
}

/// One session of an owner: its merged metadata and its event statistics.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct OwnerSessionRow {
    pub session_id: String,
    pub user_id: String,
    pub machine_id: String,
    pub org_id: String,
    pub started_at_us: i64,
    pub ended_at_us: i64,
    pub starts: u64,
    pub ends: u64,
    pub events: u64,
    pub first_us: i64,
    pub last_us: i64,
}

impl OwnerSessionRow {
    pub fn split(self) -> (SessionMeta, SessionStats) {
        (
            SessionMeta {
                session_id: self.session_id,
                user_id: self.user_id,
                machine_id: self.machine_id,
                org_id: self.org_id,
                started_at_us: self.started_at_us,
                ended_at_us: self.ended_at_us,
                starts: self.starts,
                ends: self.ends,
            },
            SessionStats {
                events: self.events,
                first_us: self.first_us,
                last_us: self.last_us,
            },
        )
    }
}

/// One bucket that holds events.
#[derive(Debug, Clone, Copy, PartialEq, clickhouse::Row, Deserialize)]
pub struct BucketRow {
    /// The bucket's first instant, Unix seconds.
    pub start_s: i64,
    pub value: f64,
    pub events: u64,
    pub first_us: i64,
}

impl EventRow {
    /// Bytes this row adds to a batch; close to its RowBinary size.
    pub fn approx_bytes(&self) -> usize {
        16 + 8
            + 8
            + 9
            + 8
            + 9
            + self.session_id.len()
            + self.category.len()
            + self.name.len()
            + self.data.len()
    }
}

impl RejectedRow {
    pub fn approx_bytes(&self) -> usize {
        16 + 8
            + self.raw.len()
            + self.raw_sha256.len()
            + self.reasons.len()
            + self.client.len()
            + self.session_id.len()
            + 64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct EventCounts {
    pub stored_rows: u64,
    pub distinct_events: u64,
}
