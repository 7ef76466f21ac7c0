//! Stored rows as the API shows them: each read's answer is a type of `eye_model::api`
//! (the types `eye-client` reads back), built here from the store's rows.

use chrono::SecondsFormat;
use chrono_tz::Tz;
use eye_model::aggregate::Bucket;
pub use eye_model::api::{
    Aggregate, BucketView, Categories, CategoryView, EventPage, EventView, OwnerSessions,
    RejectedPage, RejectedView, ReplayOutcomeView, Schemas, SentEvent, SessionDetail,
    SessionEvents, SessionSummary, SessionView,
};
use eye_model::time::EventTime;
use eye_store::{EventRow, OwnerSessionRow, RejectedRow, SessionMeta, SessionStats};
use serde_json::value::RawValue;

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

pub fn event(r: EventRow) -> EventView {
    EventView {
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

/// An event as its producer sent it: the time the client gave, not the corrected one.
pub fn sent_event(r: EventRow) -> SentEvent {
    SentEvent {
        event_id: r.event_id,
        session_id: r.session_id,
        category: r.category,
        name: r.name,
        data: raw_json(r.data),
        timestamp: time(r.client_ts_us),
    }
}

/// What of a session's lifecycle has arrived: a field only once a start or end says it.
pub fn session_view(m: SessionMeta) -> SessionView {
    let started = m.starts > 0;
    let text = |s: String| (started && !s.is_empty()).then_some(s);
    SessionView {
        user_id: text(m.user_id),
        machine_id: text(m.machine_id),
        org_id: text(m.org_id),
        started_at: started.then(|| time(m.started_at_us)),
        ended_at: (m.ends > 0).then(|| time(m.ended_at_us)),
    }
}

pub fn session_summary(
    session_id: String,
    meta: Option<SessionMeta>,
    stats: SessionStats,
) -> SessionSummary {
    let has_events = stats.events > 0;
    SessionSummary {
        session_id,
        lifecycle: meta.map(session_view).unwrap_or_default(),
        event_count: stats.events,
        first_event_at: has_events.then(|| time(stats.first_us)),
        last_event_at: has_events.then(|| time(stats.last_us)),
    }
}

pub fn owner_session(r: OwnerSessionRow) -> SessionSummary {
    let (meta, stats) = r.split();
    session_summary(meta.session_id.clone(), Some(meta), stats)
}

/// A bucket, its start in the requested zone's offset.
pub fn bucket(b: Bucket, tz: Tz) -> BucketView {
    BucketView {
        start: b
            .start
            .with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        value: b.value,
        count: b.count,
    }
}

pub fn category(r: eye_store::CategoryRow) -> CategoryView {
    CategoryView {
        category: r.category,
        name: r.name,
        events: r.events,
        first_seen: time(r.first_us),
        last_seen: time(r.last_us),
    }
}

/// A quarantine record with its latest replay outcome, if it has one.
pub fn rejected(r: RejectedRow, replay: Option<eye_store::ReplayRow>) -> RejectedView {
    RejectedView {
        replay: replay.map(|o| ReplayOutcomeView {
            replay_id: o.replay_id,
            replayed_at: time(o.replayed_at_us),
            replayed_by: o.replayed_by,
            result: o.result,
            reasons: raw_json(o.reasons),
        }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

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
            let v = serde_json::to_value(event(row)).expect("serialises");
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
            let v = session_view(meta(starts, ends));
            assert_eq!(v.user_id.as_deref(), user);
            assert_eq!(v.started_at.as_deref(), started);
            assert_eq!(v.ended_at.as_deref(), ended);
        }
    }
}
