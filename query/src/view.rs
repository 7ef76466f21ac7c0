//! Stored rows as the API shows them.

use chrono::SecondsFormat;
use chrono_tz::Tz;
use eye_model::aggregate::Bucket;
use eye_model::time::EventTime;
use eye_store::{EventRow, OwnerSessionRow, RejectedRow, SessionMeta, SessionStats};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

#[derive(Debug, Serialize)]
pub struct EventView {
    pub event_id: Uuid,
    pub session_id: String,
    pub category: String,
    pub name: String,
    /// RFC 3339, UTC, microseconds; corrected for client clock skew when `sent_at` was given.
    pub timestamp: String,
    /// The timestamp as the client sent it.
    pub client_timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    pub received_at: String,
    /// The stored JSON text, passed through without re-parsing.
    pub data: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

fn time(us: i64) -> String {
    EventTime::from_micros(us).to_rfc3339()
}

/// Stored JSON text as a raw value; `null` if a row written by something else is not JSON,
/// rather than failing the whole read.
fn raw_json(text: String) -> Box<RawValue> {
    RawValue::from_string(text)
        .or_else(|_| RawValue::from_string("null".to_owned()))
        .unwrap_or_else(|_| unreachable!("null is JSON"))
}

impl From<EventRow> for EventView {
    fn from(r: EventRow) -> Self {
        Self {
            event_id: r.event_id,
            session_id: r.session_id,
            category: r.category,
            name: r.name,
            timestamp: time(r.ts_us),
            client_timestamp: time(r.client_ts_us),
            sent_at: r.sent_at_us.map(time),
            received_at: time(r.received_at_us),
            data: raw_json(r.data),
            value: r.value,
        }
    }
}

/// An event as its producer sent it, as the seed APIs list events: the time is the one the
/// client gave (RFC 3339, UTC, microseconds), not the clock-corrected one.
#[derive(Debug, Serialize)]
pub struct SentEvent {
    pub event_id: Uuid,
    pub session_id: String,
    pub category: String,
    pub name: String,
    pub data: Box<RawValue>,
    pub timestamp: String,
}

impl From<EventRow> for SentEvent {
    fn from(r: EventRow) -> Self {
        Self {
            event_id: r.event_id,
            session_id: r.session_id,
            category: r.category,
            name: r.name,
            data: raw_json(r.data),
            timestamp: time(r.client_ts_us),
        }
    }
}

/// A session's lifecycle, as far as its start and end records have arrived.
#[derive(Debug, Default, Serialize)]
pub struct SessionView {
    pub user_id: Option<String>,
    pub machine_id: Option<String>,
    pub org_id: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
}

impl From<SessionMeta> for SessionView {
    fn from(m: SessionMeta) -> Self {
        let started = m.starts > 0;
        let text = |s: String| (started && !s.is_empty()).then_some(s);
        Self {
            user_id: text(m.user_id),
            machine_id: text(m.machine_id),
            org_id: text(m.org_id),
            started_at: started.then(|| time(m.started_at_us)),
            ended_at: (m.ends > 0).then(|| time(m.ended_at_us)),
        }
    }
}

/// A session as `GET /v1/sessions/{id}` and `GET /v1/users/{id}/sessions` show it: the
/// lifecycle as recorded, and what its stored events say.
#[derive(Debug, Serialize)]
pub struct SessionSummary {
    pub session_id: String,
    #[serde(flatten)]
    pub lifecycle: SessionView,
    /// Distinct events stored (each event_id once).
    pub event_count: u64,
    pub first_event_at: Option<String>,
    pub last_event_at: Option<String>,
}

impl SessionSummary {
    pub fn new(session_id: String, meta: Option<SessionMeta>, stats: SessionStats) -> Self {
        let has_events = stats.events > 0;
        Self {
            session_id,
            lifecycle: meta.map(SessionView::from).unwrap_or_default(),
            event_count: stats.events,
            first_event_at: has_events.then(|| time(stats.first_us)),
            last_event_at: has_events.then(|| time(stats.last_us)),
        }
    }
}

impl From<OwnerSessionRow> for SessionSummary {
    fn from(r: OwnerSessionRow) -> Self {
        let (meta, stats) = r.split();
        Self::new(meta.session_id.clone(), Some(meta), stats)
    }
}

#[derive(Debug, Serialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// A page of the session's events in time order.
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next page of events; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OwnerSessions {
    pub user_id: String,
    /// Newest start first.
    pub sessions: Vec<SessionSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BucketView {
    /// The bucket's first instant, in the requested zone's offset.
    pub start: String,
    /// `null` for an empty bucket under `fill=null`.
    pub value: Option<f64>,
    /// Events aggregated into the bucket.
    pub count: u64,
}

impl BucketView {
    pub fn new(b: Bucket, tz: Tz) -> Self {
        Self {
            start: b
                .start
                .with_timezone(&tz)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            value: b.value,
            count: b.count,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Aggregate {
    pub category: String,
    pub name: String,
    pub granularity: &'static str,
    pub agg: &'static str,
    pub tz: String,
    pub fill: &'static str,
    pub buckets: Vec<BucketView>,
}

#[derive(Debug, Serialize)]
pub struct SessionEvents {
    pub session_id: String,
    /// `null` until a start or end record for the session has been stored.
    pub session: Option<SessionView>,
    pub events: Vec<EventView>,
}

#[derive(Debug, Serialize)]
pub struct CategoryView {
    pub category: String,
    pub name: String,
    /// Distinct events (each event_id once).
    pub events: u64,
    pub first_seen: String,
    pub last_seen: String,
}

impl From<eye_store::CategoryRow> for CategoryView {
    fn from(r: eye_store::CategoryRow) -> Self {
        Self {
            category: r.category,
            name: r.name,
            events: r.events,
            first_seen: time(r.first_us),
            last_seen: time(r.last_us),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Categories {
    pub categories: Vec<CategoryView>,
}

#[derive(Debug, Serialize)]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
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
}

impl From<RejectedRow> for RejectedView {
    fn from(r: RejectedRow) -> Self {
        Self {
            rejection_id: r.rejection_id,
            received_at: time(r.received_at_us),
            source: r.source,
            client: r.client,
            reasons: raw_json(r.reasons),
            raw_truncated: r.raw_bytes > r.raw.len() as u64,
            raw_bytes: r.raw_bytes,
            raw_sha256: r.raw_sha256,
            raw: r.raw,
            event_id: r.event_id,
            session_id: r.session_id,
            category: r.category,
            name: r.name,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RejectedPage {
    pub rejected: Vec<RejectedView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_render_as_the_api_shows_them() {
        let id = Uuid::now_v7();
        let cases = [
            (
                r#"{"host":"h"}"#,
                Some(1.5),
                Some(1_632_647_727_000_000),
                r#"{"host":"h"}"#,
            ),
            ("not json", None, None, "null"),
        ];
        for (data, value, sent_at_us, want_data) in cases {
            let row = EventRow {
                event_id: id,
                session_id: "s".into(),
                category: "c".into(),
                name: "n".into(),
                ts_us: 1_632_647_727_243_860,
                received_at_us: 1_632_647_728_000_000,
                data: data.into(),
                value,
                client_ts_us: 1_632_647_726_243_860,
                sent_at_us,
            };
            let v = serde_json::to_value(EventView::from(row)).expect("serialises");
            assert_eq!(v["timestamp"], "2021-09-26T09:15:27.243860Z");
            assert_eq!(v["client_timestamp"], "2021-09-26T09:15:26.243860Z");
            assert_eq!(v["received_at"], "2021-09-26T09:15:28.000000Z");
            assert_eq!(v.get("sent_at").is_some(), sent_at_us.is_some());
            assert_eq!(v["data"].to_string(), want_data);
            assert_eq!(v.get("value").and_then(|x| x.as_f64()), value);
            assert_eq!(v["event_id"], id.to_string());
        }
    }

    #[test]
    fn session_metadata_shows_only_what_arrived() {
        let meta = |starts, ends| SessionMeta {
            session_id: "s".into(),
            user_id: "u".into(),
            machine_id: "m".into(),
            org_id: "11232".into(),
            started_at_us: 1_675_354_935_000_000,
            ended_at_us: 1_675_358_535_000_000,
            starts,
            ends,
        };
        let cases = [
            (
                (1, 1),
                Some("u"),
                Some("2023-02-02T16:22:15.000000Z"),
                Some("2023-02-02T17:22:15.000000Z"),
            ),
            ((1, 0), Some("u"), Some("2023-02-02T16:22:15.000000Z"), None),
            ((0, 1), None, None, Some("2023-02-02T17:22:15.000000Z")),
        ];
        for ((starts, ends), user, started, ended) in cases {
            let v = SessionView::from(meta(starts, ends));
            assert_eq!(v.user_id.as_deref(), user);
            assert_eq!(v.started_at.as_deref(), started);
            assert_eq!(v.ended_at.as_deref(), ended);
        }
    }
}
