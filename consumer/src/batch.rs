//! A batch of records on their way to ClickHouse, with the offsets it covers.
//!
//! Pure bookkeeping, no I/O: which rows go to which table, which records go back to the
//! dead-letter topic, when the batch is due, and which offsets to commit once all of it
//! is confirmed.

use crate::identity::Identities;
use eye_kafka::wire::Rejection;
use eye_store::{EventRow, RejectedRow, SessionRow};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
}

#[derive(Debug)]
pub struct Batch {
    limits: Limits,
    pub events: Vec<EventRow>,
    pub rejected: Vec<RejectedRow>,
    pub sessions: Vec<SessionRow>,
    /// Derived from the events once their first copies are settled, by the writer.
    pub identities: Identities,
    /// Undecodable messages, to produce to the dead-letter topic before committing.
    pub dead_letters: Vec<Rejection>,
    bytes: usize,
    /// Lowest and highest offset seen per (topic, partition), whatever became of the message.
    offsets: BTreeMap<(String, i32), (i64, i64)>,
    started: Option<Instant>,
}

/// Where a consumed message came from.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl Batch {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            events: Vec::new(),
            rejected: Vec::new(),
            sessions: Vec::new(),
            identities: Identities::default(),
            dead_letters: Vec::new(),
            bytes: 0,
            offsets: BTreeMap::new(),
            started: None,
        }
    }

    pub fn push_event(&mut self, row: EventRow, at: Position<'_>, now: Instant) {
        self.bytes += row.approx_bytes();
        self.events.push(row);
        self.track(at, now);
    }

    pub fn push_rejected(&mut self, row: RejectedRow, at: Position<'_>, now: Instant) {
        self.bytes += row.approx_bytes();
        self.rejected.push(row);
        self.track(at, now);
    }

    pub fn push_session(&mut self, row: SessionRow, at: Position<'_>, now: Instant) {
        self.bytes +=
            64 + row.session_id.len() + row.user_id.len() + row.machine_id.len() + row.org_id.len();
        self.sessions.push(row);
        self.track(at, now);
    }

    /// A message that could not be decoded: it goes to the dead-letter topic, and its offset
    /// is committed with the batch instead of blocking the partition.
    pub fn push_dead_letter(&mut self, r: Rejection, at: Position<'_>, now: Instant) {
        self.bytes += r.raw.len() + 128;
        self.dead_letters.push(r);
        self.track(at, now);
    }

    fn track(&mut self, at: Position<'_>, now: Instant) {
        let e = self
            .offsets
            .entry((at.topic.to_owned(), at.partition))
            .or_insert((at.offset, at.offset));
        *e = (e.0.min(at.offset), e.1.max(at.offset));
        self.started.get_or_insert(now);
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.events.len() + self.rejected.len() + self.sessions.len() + self.dead_letters.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Full by rows or bytes: insert now.
    pub fn is_full(&self) -> bool {
        self.rows() >= self.limits.max_rows || self.bytes >= self.limits.max_bytes
    }

    /// Full, or its oldest message has waited `max_wait`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.is_full()
            || self
                .started
                .is_some_and(|s| now.duration_since(s) >= self.limits.max_wait)
    }

    /// The offsets to commit after the insert: one past the last message per partition.
    pub fn commit_offsets(&self) -> Vec<(&str, i32, i64)> {
        self.offsets
            .iter()
            .map(|((t, p), (_, last))| (t.as_str(), *p, last + 1))
            .collect()
    }

    /// Names exactly the messages this batch holds (offset ranges per partition). Sent as
    /// ClickHouse's `insert_deduplication_token`, it lets a server that supports it skip a
    /// retried insert of this same batch that had landed although the answer was lost.
    pub fn dedup_token(&self) -> String {
        self.offsets
            .iter()
            .map(|((t, p), (first, last))| format!("{t}/{p}/{first}-{last}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.rejected.clear();
        self.sessions.clear();
        self.identities = Identities::default();
        self.dead_letters.clear();
        self.bytes = 0;
        self.offsets.clear();
        self.started = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn row(data_len: usize) -> EventRow {
        EventRow {
            event_id: Uuid::nil(),
            session_id: "s".into(),
            category: "c".into(),
            name: "n".into(),
            ts_us: 0,
            received_at_us: 0,
            data: "x".repeat(data_len),
            value: None,
            client_ts_us: 0,
            sent_at_us: None,
        }
    }

    fn at(topic: &str, partition: i32, offset: i64) -> Position<'_> {
        Position {
            topic,
            partition,
            offset,
        }
    }

    const LIMITS: Limits = Limits {
        max_rows: 3,
        max_bytes: 1_000,
        max_wait: Duration::from_millis(100),
    };

    #[test]
    fn due_by_rows_bytes_or_age() {
        let t0 = Instant::now();
        // (rows pushed with their data sizes, time of check, full?, due?)
        let cases: &[(&[usize], u64, bool, bool)] = &[
            (&[], 1_000, false, false),
            (&[10], 0, false, false),
            (&[10], 99, false, false),
            (&[10], 100, false, true),
            (&[10, 10, 10], 0, true, true),
            (&[2_000], 0, true, true),
        ];
        for (sizes, at_ms, full, due) in cases {
            let mut b = Batch::new(LIMITS);
            for (i, s) in sizes.iter().enumerate() {
                b.push_event(row(*s), at("e", 0, i as i64), t0);
            }
            let when = t0 + Duration::from_millis(*at_ms);
            assert_eq!(b.is_full(), *full, "{sizes:?}");
            assert_eq!(b.is_due(when), *due, "{sizes:?} at {at_ms} ms");
        }
    }

    #[test]
    fn commits_one_past_the_highest_offset_per_topic_and_partition() {
        let t0 = Instant::now();
        let mut b = Batch::new(LIMITS);
        b.push_event(row(1), at("events", 2, 40), t0);
        b.push_event(row(1), at("events", 0, 7), t0);
        let dead = Rejection::new(
            "consumer",
            "",
            eye_model::time::EventTime::from_micros(0),
            b"x",
            vec![],
            Default::default(),
        );
        b.push_dead_letter(dead, at("events", 2, 41), t0);
        b.push_event(row(1), at("events", 0, 5), t0);
        b.push_event(row(1), at("rejected", 0, 3), t0);
        assert_eq!(
            b.commit_offsets(),
            vec![("events", 0, 8), ("events", 2, 42), ("rejected", 0, 4)]
        );
        assert_eq!((b.events.len(), b.dead_letters.len(), b.rows()), (4, 1, 5));
        assert_eq!(
            b.dedup_token(),
            "events/0/5-7;events/2/40-41;rejected/0/3-3"
        );
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.commit_offsets(), vec![]);
        assert!(!b.is_due(t0 + Duration::from_secs(10)));
    }
}
