//! A batch of rows on its way to ClickHouse, with the offsets it covers.
//!
//! Pure bookkeeping, no I/O: which rows to insert, when the batch is due, and which
//! offsets to commit once ClickHouse has confirmed the insert.

use eye_common::store::EventRow;
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
    rows: Vec<EventRow>,
    bytes: usize,
    /// Highest offset seen per partition, rows and skipped messages alike.
    offsets: BTreeMap<i32, i64>,
    started: Option<Instant>,
}

impl Batch {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            rows: Vec::new(),
            bytes: 0,
            offsets: BTreeMap::new(),
            started: None,
        }
    }

    pub fn push(&mut self, row: EventRow, partition: i32, offset: i64, now: Instant) {
        self.bytes += row.approx_bytes();
        self.rows.push(row);
        self.track(partition, offset, now);
    }

    /// Records a message that yields no row (it could not be decoded), so that its offset
    /// is committed with the batch instead of blocking the partition.
    pub fn skip(&mut self, partition: i32, offset: i64, now: Instant) {
        self.track(partition, offset, now);
    }

    fn track(&mut self, partition: i32, offset: i64, now: Instant) {
        let e = self.offsets.entry(partition).or_insert(offset);
        *e = (*e).max(offset);
        self.started.get_or_insert(now);
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn rows(&self) -> &[EventRow] {
        &self.rows
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Full by rows or bytes: insert now.
    pub fn is_full(&self) -> bool {
        self.rows.len() >= self.limits.max_rows || self.bytes >= self.limits.max_bytes
    }

    /// Full, or its oldest message has waited `max_wait`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.is_full()
            || self
                .started
                .is_some_and(|s| now.duration_since(s) >= self.limits.max_wait)
    }

    /// The offsets to commit after the insert: one past the last message per partition.
    pub fn commit_offsets(&self) -> Vec<(i32, i64)> {
        self.offsets.iter().map(|(p, o)| (*p, o + 1)).collect()
    }

    pub fn clear(&mut self) {
        self.rows.clear();
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
                b.push(row(*s), 0, i as i64, t0);
            }
            let at = t0 + Duration::from_millis(*at_ms);
            assert_eq!(b.is_full(), *full, "{sizes:?}");
            assert_eq!(b.is_due(at), *due, "{sizes:?} at {at_ms} ms");
        }
    }

    #[test]
    fn commits_one_past_the_highest_offset_per_partition() {
        let t0 = Instant::now();
        let mut b = Batch::new(LIMITS);
        b.push(row(1), 2, 40, t0);
        b.push(row(1), 0, 7, t0);
        b.skip(2, 41, t0);
        b.push(row(1), 0, 5, t0);
        assert_eq!(b.commit_offsets(), vec![(0, 8), (2, 42)]);
        assert_eq!(b.rows().len(), 3);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.commit_offsets(), vec![]);
        assert!(!b.is_due(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn a_batch_of_only_skipped_messages_still_commits() {
        let t0 = Instant::now();
        let mut b = Batch::new(LIMITS);
        b.skip(1, 9, t0);
        assert!(!b.is_empty());
        assert!(b.rows().is_empty());
        assert!(b.is_due(t0 + LIMITS.max_wait));
        assert_eq!(b.commit_offsets(), vec![(1, 10)]);
    }
}
