//! The event collector's reads under `/eye/`: JSON arrays of events as sent
//! (`{event_id, session_id, category, name, data, timestamp}`), newest first.
//!
//! - `GET /eye/event?session_id=`: one session's events.
//! - `GET /eye/category-events?category=`: one category's.
//! - `GET /eye/range-events?start_time=&end_time=`: those between two times, both
//!   inclusive, each a date (the whole day) or a timestamp, UTC without a zone.
//! - `GET /eye/invalid-time`: the events ingest refused for their timestamp (unreadable,
//!   impossible, before 2000 or in the future), as they were sent, newest refusal first,
//!   from any front door. A record quarantined cut short (over 64 KiB) is no JSON any more
//!   and is only in `/v1/rejected`.
//!
//! Each also takes an optional `session_id`, and each answer holds at most
//! [`MAX_EVENTS`], the newest: for more, page through `/v1/events` or `/v1/rejected`.

use crate::error::QueryError;
use crate::params::{self, Params};
use crate::time_bound;
use eye_model::event::{Category, FieldError, SessionId};
use eye_model::time::TimeError;
use eye_store::{EventFilter, RefusedTimeFilter, RejectedRow};
use serde::Deserialize;
use serde_json::Value;

/// The most events one answer holds.
pub const MAX_EVENTS: u32 = 1_000;

/// The field of an event's time in a rejection's reasons.
const TIME_FIELD: &str = "/timestamp";

fn bad(field: &str, code: &'static str, message: impl Into<String>) -> QueryError {
    QueryError::BadParameter(FieldError::new(field, code, message))
}

fn session(params: &Params) -> Result<Option<String>, QueryError> {
    params::text(params, "session_id", SessionId::parse)
}

fn newest(session_id: Option<String>) -> EventFilter {
    EventFilter {
        session_id,
        descending: true,
        limit: MAX_EVENTS,
        ..EventFilter::default()
    }
}

/// `?session_id=` (required).
pub fn session_events(params: &Params) -> Result<EventFilter, QueryError> {
    params::only(params, &["session_id"])?;
    let id = params::required_text(params, "session_id", SessionId::parse)?;
    Ok(newest(Some(id)))
}

/// `?category=` (required) `&session_id=`.
pub fn category_events(params: &Params) -> Result<EventFilter, QueryError> {
    params::only(params, &["category", "session_id"])?;
    Ok(EventFilter {
        category: Some(params::required_text(params, "category", Category::parse)?),
        ..newest(session(params)?)
    })
}

/// `?start_time=&end_time=` (both required) `&session_id=`.
pub fn range_events(params: &Params) -> Result<EventFilter, QueryError> {
    params::only(params, &["start_time", "end_time", "session_id"])?;
    for field in ["start_time", "end_time"] {
        if !params.contains_key(field) {
            return Err(bad(field, "required", format!("{field} is required")));
        }
    }
    let (from_us, to_us) = time_bound::range(
        ("start_time", params.get("start_time").map(String::as_str)),
        ("end_time", params.get("end_time").map(String::as_str)),
    )?;
    Ok(EventFilter {
        from_us,
        to_us,
        ..newest(session(params)?)
    })
}

/// Every code ingest gives an event time it refuses.
pub fn time_codes() -> Vec<String> {
    [
        TimeError::Unparseable,
        TimeError::FractionTooLong,
        TimeError::EpochOutOfRange,
        TimeError::WrongType,
        TimeError::TooOld,
        TimeError::TooFarInFuture { max_skew_secs: 0 },
        TimeError::OutOfRange,
    ]
    .iter()
    .map(|e| e.code().to_owned())
    .collect()
}

/// `?session_id=`.
pub fn refused_for_time(params: &Params) -> Result<RefusedTimeFilter, QueryError> {
    params::only(params, &["session_id"])?;
    Ok(RefusedTimeFilter {
        codes: time_codes(),
        session_id: session(params)?,
        limit: MAX_EVENTS,
    })
}

#[derive(Deserialize)]
struct Reason {
    field: String,
    code: String,
}

/// The event as sent, when the record was refused for the event's own time (not, say, a
/// `sent_at` with the same code) and its text is whole JSON.
pub fn refused_event(row: &RejectedRow, codes: &[String]) -> Option<Value> {
    let reasons: Vec<Reason> = serde_json::from_str(&row.reasons).ok()?;
    reasons
        .iter()
        .any(|r| r.field == TIME_FIELD && codes.contains(&r.code))
        .then(|| serde_json::from_str(&row.raw).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn code(e: QueryError) -> String {
        match e {
            QueryError::BadParameter(f) => format!("{}:{}", f.field, f.code),
            other => panic!("unexpected {other}"),
        }
    }

    fn p(query: &str) -> Params {
        params::parse_query(query).expect("a query string")
    }

    #[test]
    fn each_read_takes_its_filters_and_an_optional_session() {
        type Read = fn(&Params) -> Result<EventFilter, QueryError>;
        // (read, query, session, category, from, to) or the error
        type Want = Result<
            (
                Option<&'static str>,
                Option<&'static str>,
                Option<i64>,
                Option<i64>,
            ),
            &'static str,
        >;
        let (event, category, range): (Read, Read, Read) =
            (session_events, category_events, range_events);
        let cases: Vec<(Read, &str, Want)> = vec![
            (
                event,
                "session_id=e2085be5-9137-4e4e-80b5-f1ffddc25424",
                Ok((
                    Some("e2085be5-9137-4e4e-80b5-f1ffddc25424"),
                    None,
                    None,
                    None,
                )),
            ),
            (event, "", Err("session_id:required")),
            (
                event,
                "session_id=s&category=c",
                Err("category:unknown_parameter"),
            ),
            (
                category,
                "category=form+interaction",
                Ok((None, Some("form interaction"), None, None)),
            ),
            (
                category,
                "category=form%20interaction&session_id=s",
                Ok((Some("s"), Some("form interaction"), None, None)),
            ),
            (category, "session_id=s", Err("category:required")),
            (
                range,
                "start_time=2022-01-09&end_time=2022-01-09 09:15:27.243860",
                Ok((
                    None,
                    None,
                    Some(1_641_686_400_000_000),
                    Some(1_641_719_727_243_861),
                )),
            ),
            (range, "start_time=2022-01-09", Err("end_time:required")),
            (
                range,
                "start_time=2022-01-10&end_time=2022-01-09",
                Err("start_time:start_after_end"),
            ),
            (
                range,
                "start_time=x&end_time=2022-01-09",
                Err("start_time:invalid_timestamp"),
            ),
        ];
        for (read, query, want) in cases {
            let got = read(&p(query)).map_err(code);
            let got = got.as_ref().map(|f| {
                assert_eq!((f.descending, f.limit), (true, MAX_EVENTS), "{query}");
                (
                    f.session_id.as_deref(),
                    f.category.as_deref(),
                    f.from_us,
                    f.to_us,
                )
            });
            assert_eq!(got.map_err(String::as_str), want, "{query}");
        }
        let f = refused_for_time(&p("session_id=s")).expect("valid");
        assert_eq!(f.session_id.as_deref(), Some("s"));
        assert!(f.codes.contains(&"timestamp_in_future".to_owned()));
        assert_eq!(
            refused_for_time(&p("page=1"))
                .map_err(code)
                .err()
                .as_deref(),
            Some("page:unknown_parameter")
        );
    }

    #[test]
    fn refusals_count_only_for_the_event_time() {
        let row = |reasons: Value, raw: &str| RejectedRow {
            rejection_id: Uuid::nil(),
            received_at_us: 0,
            source: "ingest/collector".into(),
            client: "c".into(),
            codes: Vec::new(),
            reasons: reasons.to_string(),
            raw: raw.into(),
            event_id: String::new(),
            session_id: "s".into(),
            category: String::new(),
            name: String::new(),
            raw_bytes: raw.len() as u64,
            raw_sha256: String::new(),
        };
        let sent = r#"{"session_id":"s","timestamp":"2022-13-45 09:15:27"}"#;
        let reason =
            |field: &str, code: &str| json!([{"field": field, "code": code, "message": "m"}]);
        let codes = time_codes();
        let cases = [
            (reason("/timestamp", "invalid_timestamp"), sent, true),
            (reason("/timestamp", "timestamp_in_future"), sent, true),
            (reason("/sent_at", "invalid_timestamp"), sent, false),
            (reason("/timestamp", "required"), sent, false),
            (
                reason("/timestamp", "invalid_timestamp"),
                "{\"session_id\": \"s\", \"timesta",
                false,
            ),
        ];
        for (reasons, raw, kept) in cases {
            let got = refused_event(&row(reasons.clone(), raw), &codes);
            assert_eq!(got.is_some(), kept, "{reasons} {raw}");
        }
        assert_eq!(
            refused_event(&row(reason("/timestamp", "wrong_type"), sent), &codes),
            Some(serde_json::from_str(sent).expect("JSON"))
        );
    }
}
