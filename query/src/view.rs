//! Stored rows as the API shows them.

use eye_common::store::EventRow;
use eye_common::time::EventTime;
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

#[derive(Debug, Serialize)]
pub struct EventView {
    pub event_id: Uuid,
    pub session_id: String,
    pub category: String,
    pub name: String,
    /// RFC 3339, UTC, microseconds.
    pub timestamp: String,
    pub received_at: String,
    /// The stored JSON text, passed through without re-parsing.
    pub data: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

impl From<EventRow> for EventView {
    fn from(r: EventRow) -> Self {
        // Stored data was produced by serde_json in ingest; fall back to null if a row
        // written by something else is not JSON, rather than failing the whole read.
        let data = RawValue::from_string(r.data).unwrap_or_else(|_| null());
        Self {
            event_id: r.event_id,
            session_id: r.session_id,
            category: r.category,
            name: r.name,
            timestamp: EventTime::from_micros(r.ts_us).to_rfc3339(),
            received_at: EventTime::from_micros(r.received_at_us).to_rfc3339(),
            data,
            value: r.value,
        }
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

#[derive(Debug, Serialize)]
pub struct SessionEvents {
    pub session_id: String,
    pub events: Vec<EventView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_render_as_the_api_shows_them() {
        let id = Uuid::now_v7();
        let cases = [
            (r#"{"host":"h"}"#, Some(1.5), r#"{"host":"h"}"#, Some(1.5)),
            ("not json", None, "null", None),
        ];
        for (data, value, want_data, want_value) in cases {
            let row = EventRow {
                event_id: id,
                session_id: "s".into(),
                category: "c".into(),
                name: "n".into(),
                ts_us: 1_632_647_727_243_860,
                received_at_us: 1_632_647_728_000_000,
                data: data.into(),
                value,
            };
            let v = serde_json::to_value(EventView::from(row)).expect("serialises");
            assert_eq!(v["timestamp"], "2021-09-26T09:15:27.243860Z");
            assert_eq!(v["received_at"], "2021-09-26T09:15:28.000000Z");
            assert_eq!(v["data"].to_string(), want_data);
            assert_eq!(v.get("value").and_then(|x| x.as_f64()), want_value);
            assert_eq!(v["event_id"], id.to_string());
        }
    }
}
