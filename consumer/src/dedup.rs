//! One stored row per event: the first accepted copy wins.
//!
//! An event is identified by `(session_id, event_id, timestamp)`, the timestamp as the client
//! gave it. A client that retries sends the same event again, and each copy may carry its
//! own stored time: the skew correction uses the copy's `sent_at` and time of receipt. Copies with different times sort apart in every ordering,
//! so neither the table engine's merges nor a read's `LIMIT 1 BY` can fold them, and paged
//! reads would show both. So copies are settled here, before the insert: a copy is stored
//! only when no other copy of its event is, in this batch or in storage.
//!
//! All copies of an event share the Kafka key (`session_id`), so they sit in one partition
//! in the order the broker accepted them, and the consumer that owns the partition stores
//! them in that order: the first copy it meets is the first accepted. A copy already stored
//! with the very same times is this copy itself, stored before a crash or a failed commit;
//! inserting it again is harmless (same sort key), and keeps a replay complete.

use eye_store::{EventKey, EventRow, StoredCopy};
use std::collections::{HashMap, HashSet};

/// The times that tell one copy of an event from another.
type Stamp = (i64, i64);

fn stamp(ts_us: i64, received_at_us: i64) -> Stamp {
    (ts_us, received_at_us)
}

fn key(r: &EventRow) -> EventKey<'_> {
    (r.session_id.as_str(), r.event_id, r.client_ts_us)
}

/// The keys to look up in storage for `rows`.
pub fn keys(rows: &[EventRow]) -> Vec<EventKey<'_>> {
    let mut seen = HashSet::with_capacity(rows.len());
    rows.iter().map(key).filter(|k| seen.insert(*k)).collect()
}

/// The rows of a batch to insert, in batch order, and how many were dropped as later
/// copies: the first row of each event, unless storage holds another copy of it.
pub fn first_copies(rows: Vec<EventRow>, stored: &[StoredCopy]) -> (Vec<EventRow>, usize) {
    let mut in_storage: HashMap<EventKey<'_>, Vec<Stamp>> = HashMap::new();
    for c in stored {
        in_storage
            .entry((c.session_id.as_str(), c.event_id, c.client_ts_us))
            .or_default()
            .push(stamp(c.ts_us, c.received_at_us));
    }
    let total = rows.len();
    let keep: Vec<bool> = {
        let mut taken: HashSet<EventKey<'_>> = HashSet::with_capacity(rows.len());
        rows.iter()
            .map(|r| {
                let k = key(r);
                if taken.contains(&k) {
                    return false;
                }
                let keep = match in_storage.get(&k) {
                    None => true,
                    Some(copies) => copies.contains(&stamp(r.ts_us, r.received_at_us)),
                };
                if keep {
                    taken.insert(k);
                }
                keep
            })
            .collect()
    };
    let kept: Vec<EventRow> = rows
        .into_iter()
        .zip(keep)
        .filter_map(|(r, k)| k.then_some(r))
        .collect();
    let dropped = total - kept.len();
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn row(session: &str, id: u128, ts_us: i64, received_at_us: i64) -> EventRow {
        EventRow {
            event_id: Uuid::from_u128(id),
            session_id: session.into(),
            category: "c".into(),
            name: "n".into(),
            ts_us,
            received_at_us,
            data: "{}".into(),
            value: None,
            // Every copy of an event repeats the client's timestamp; here, its id.
            client_ts_us: id as i64,
            sent_at_us: None,
        }
    }

    fn copy(session: &str, id: u128, ts_us: i64, received_at_us: i64) -> StoredCopy {
        StoredCopy {
            client_ts_us: id as i64,
            session_id: session.into(),
            event_id: Uuid::from_u128(id),
            ts_us,
            received_at_us,
        }
    }

    #[test]
    fn keeps_the_first_copy_of_each_event() {
        // (case, batch, stored, (session, id, ts) of the rows kept, dropped)
        type Case<'a> = (
            &'a str,
            Vec<EventRow>,
            Vec<StoredCopy>,
            Vec<(&'a str, u128, i64)>,
            usize,
        );
        let cases: Vec<Case> = vec![
            (
                "new events",
                vec![row("s", 1, 10, 100), row("s", 2, 20, 100)],
                vec![],
                vec![("s", 1, 10), ("s", 2, 20)],
                0,
            ),
            (
                "a retry later in the batch, its time shifted",
                vec![row("s", 1, 10, 100), row("s", 1, 15, 105)],
                vec![],
                vec![("s", 1, 10)],
                1,
            ),
            (
                "a retry of an event stored by an earlier batch",
                vec![row("s", 1, 15, 105), row("s", 2, 20, 105)],
                vec![copy("s", 1, 10, 100)],
                vec![("s", 2, 20)],
                1,
            ),
            (
                "a replay of rows already stored is inserted again, harmlessly",
                vec![row("s", 1, 10, 100), row("s", 2, 20, 100)],
                vec![copy("s", 1, 10, 100), copy("s", 2, 20, 100)],
                vec![("s", 1, 10), ("s", 2, 20)],
                0,
            ),
            (
                "the same id in another session is another event",
                vec![row("s", 1, 10, 100), row("t", 1, 30, 100)],
                vec![copy("u", 1, 5, 50)],
                vec![("s", 1, 10), ("t", 1, 30)],
                0,
            ),
            (
                "a replayed first copy and its retry: the retry goes",
                vec![row("s", 1, 10, 100), row("s", 1, 15, 105)],
                vec![copy("s", 1, 10, 100)],
                vec![("s", 1, 10)],
                1,
            ),
            (
                "identical copies in one batch: one is kept",
                vec![row("s", 1, 10, 100), row("s", 1, 10, 100)],
                vec![],
                vec![("s", 1, 10)],
                1,
            ),
        ];
        for (case, batch, stored, want, dropped) in cases {
            let (kept, n) = first_copies(batch, &stored);
            let got: Vec<(&str, u128, i64)> = kept
                .iter()
                .map(|r| (r.session_id.as_str(), r.event_id.as_u128(), r.ts_us))
                .collect();
            assert_eq!(got, want, "{case}");
            assert_eq!(n, dropped, "{case}");
        }
    }

    #[test]
    fn an_id_sent_again_at_another_time_is_another_event() {
        let mut other = row("s", 1, 50, 200);
        other.client_ts_us = 99;
        let (kept, dropped) = first_copies(
            vec![row("s", 1, 10, 100), other.clone()],
            &[copy("s", 1, 10, 100)],
        );
        assert_eq!((kept.len(), dropped), (2, 0));
        assert_eq!(kept[1], other);
    }

    #[test]
    fn looks_up_each_event_once() {
        let rows = [
            row("s", 1, 10, 100),
            row("s", 1, 15, 105),
            row("t", 1, 1, 1),
        ];
        assert_eq!(
            keys(&rows),
            vec![("s", Uuid::from_u128(1), 1), ("t", Uuid::from_u128(1), 1)]
        );
    }
}
