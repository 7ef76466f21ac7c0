//! One pure function per topic: a Kafka message's payload in, the row ClickHouse stores
//! out. Nothing here does I/O, so each topic's mapping is tested on its own.

use eye_kafka::wire::{self, DecodeError, Rejection};
use eye_store::{EventRow, RejectedRow, SessionRow};

/// The topics the consumer reads, each with its own row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Events,
    Rejected,
    Sessions,
}

/// A decoded message, ready for its table.
#[derive(Debug)]
pub enum Row {
    Event(EventRow),
    Rejected(RejectedRow),
    Session(SessionRow),
}

/// Decodes `payload` as a message of `topic`.
pub fn decode(topic: TopicKind, payload: &[u8]) -> Result<Row, DecodeError> {
    Ok(match topic {
        TopicKind::Events => Row::Event(event_row(payload)?),
        TopicKind::Rejected => Row::Rejected(rejected_row(wire::decode_rejection(payload)?)),
        TopicKind::Sessions => Row::Session(session_row(payload)?),
    })
}

/// An accepted event's row; `data` is copied as the raw text it travelled as.
pub fn event_row(payload: &[u8]) -> Result<EventRow, DecodeError> {
    let m = wire::decode_event(payload)?;
    Ok(EventRow {
        event_id: m.event_id,
        session_id: m.session_id,
        category: m.category,
        name: m.name,
        ts_us: m.timestamp_us,
        client_ts_us: m.client_timestamp_us.unwrap_or(m.timestamp_us),
        sent_at_us: m.sent_at_us,
        received_at_us: m.received_at_us,
        data: m.data.get().to_owned(),
        value: m.value,
    })
}

/// The quarantine row a dead-letter record becomes.
pub fn rejected_row(r: Rejection) -> RejectedRow {
    RejectedRow {
        rejection_id: r.rejection_id,
        received_at_us: r.received_at_us,
        source: r.source,
        client: r.client,
        codes: r.reasons.iter().map(|x| x.code.clone()).collect(),
        reasons: serde_json::to_string(&r.reasons).unwrap_or_default(),
        // Records from before the length was kept hold their payload whole.
        raw_bytes: if r.raw_bytes == 0 {
            r.raw.len() as u64
        } else {
            r.raw_bytes
        },
        raw_sha256: r.raw_sha256,
        raw: r.raw,
        event_id: r.event_id,
        session_id: r.session_id,
        category: r.category,
        name: r.name,
    }
}

/// A session start's or end's row.
pub fn session_row(payload: &[u8]) -> Result<SessionRow, DecodeError> {
    let u = wire::decode_session(payload)?;
    Ok(SessionRow {
        update_id: u.update_id,
        session_id: u.session_id,
        kind: u.kind,
        user_id: u.user_id,
        machine_id: u.machine_id,
        org_id: u.org_id,
        at_us: u.at_us,
        received_at_us: u.received_at_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_kafka::wire::{Reason, SessionUpdate};
    use eye_model::event::{parse_events, Hints};
    use eye_model::session::{ChangeKind, SessionChange};
    use eye_model::time::EventTime;

    #[test]
    fn event_to_row_round_trips_through_the_wire() {
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
            let Row::Event(row) = decode(TopicKind::Events, &wire::encode(ev)).expect("decodes")
            else {
                panic!("an events message is an event row");
            };
            assert_eq!(row.event_id.to_string(), id);
            assert_eq!(row.session_id, session);
            assert_eq!(row.category, category);
            assert_eq!(row.name, name);
            assert_eq!(row.ts_us, ts_us);
            assert_eq!(row.client_ts_us, ts_us, "no skew without sent_at");
            assert_eq!(row.received_at_us, received.as_micros());
            assert_eq!(row.data, data);
            assert_eq!(row.value, value);
        }
    }

    #[test]
    fn a_rejection_row_describes_the_whole_payload() {
        // (payload, raw_bytes the row records)
        for (payload, want) in [(vec![b'x'; 10], 10u64), (vec![b'{'; 2_000_000], 2_000_000)] {
            let r = Rejection::new(
                "ingest",
                "c",
                EventTime::from_micros(1),
                &payload,
                vec![Reason {
                    field: "/a".into(),
                    code: "wrong_type".into(),
                    message: "m".into(),
                }],
                Hints::default(),
            );
            let Row::Rejected(row) = decode(TopicKind::Rejected, &r.encode()).expect("decodes")
            else {
                panic!("a dead letter is a quarantine row");
            };
            assert_eq!(
                (row.raw_bytes, row.raw_sha256.as_str()),
                (want, r.raw_sha256.as_str())
            );
            assert_eq!(row.codes, ["wrong_type"]);
            assert_eq!(row.raw, r.raw);
        }
        // A record from before raw_bytes existed holds its payload whole.
        let mut old = Rejection::new(
            "ingest",
            "c",
            EventTime::from_micros(1),
            b"abc",
            vec![],
            Hints::default(),
        );
        old.raw_bytes = 0;
        assert_eq!(rejected_row(old).raw_bytes, 3);
    }

    #[test]
    fn a_session_change_round_trips_into_its_row() {
        let change = SessionChange {
            update_id: uuid::Uuid::now_v7(),
            session_id: eye_model::event::SessionId::parse("s").expect("id"),
            kind: ChangeKind::Start,
            user_id: "u".into(),
            machine_id: "m".into(),
            org_id: "o".into(),
            at: EventTime::from_micros(5),
            received_at: EventTime::from_micros(6),
        };
        let Row::Session(row) =
            decode(TopicKind::Sessions, &SessionUpdate::from(&change).encode()).expect("decodes")
        else {
            panic!("a sessions message is a session row");
        };
        assert_eq!(
            (
                row.session_id.as_str(),
                row.kind.as_str(),
                row.user_id.as_str(),
                row.at_us,
                row.received_at_us
            ),
            ("s", "start", "u", 5, 6)
        );
        assert_eq!(row.update_id, change.update_id);
    }

    #[test]
    fn each_topic_refuses_what_it_cannot_read() {
        for topic in [TopicKind::Events, TopicKind::Rejected, TopicKind::Sessions] {
            for payload in [b"not json".as_slice(), b"{}", br#"{"v":2}"#] {
                assert!(decode(topic, payload).is_err(), "{topic:?} {payload:?}");
            }
        }
    }
}
