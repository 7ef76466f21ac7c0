//! [`History`]: a year (or any span) of whole sessions laid end to end, each event with
//! what ingest adds to it and each session with its start and end.

use super::{uuid_v7, Action, Session};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use uuid::Uuid;

/// The days a [`History`] covers: `days` days up to `end_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub end_us: i64,
    pub days: i64,
}

const DAY_US: i64 = 86_400_000_000;

/// An event as the store holds it: what the client sent, and when ingest received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// UUIDv7 of the event's own time, as ingest assigns them.
    pub event_id: Uuid,
    pub session_id: String,
    pub action: Action,
    pub ts_us: i64,
    pub received_at_us: i64,
    /// Half the clients send `sent_at`; none are skewed, so the corrected time is theirs.
    pub sent_at_us: Option<i64>,
}

/// Who a session belongs to, as its start says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub user_id: String,
    pub machine_id: String,
    pub org_id: String,
}

/// A session's start (with its owner) or end (without, as ingest stores ends).
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    pub update_id: Uuid,
    pub session_id: String,
    pub start: Option<Owner>,
    pub at_us: i64,
    pub received_at_us: i64,
}

/// Whole sessions, in order of their start.
#[derive(Debug, Default)]
pub struct Chunk {
    pub events: Vec<Recorded>,
    pub sessions: Vec<Lifecycle>,
}

/// One planned session: its kind and length are drawn up front so that the number of
/// sessions, and with it the spacing of their starts over the span, is known.
#[derive(Debug, Clone, Copy)]
struct Plan {
    machine: bool,
    len: u32,
}

/// A history of `events` events: web sessions of 20 to 400 events (skewed towards short
/// ones), machine sessions of 100 to 400, their starts spread evenly (with jitter) over the
/// span, so every day has data and the events come roughly in time order.
#[derive(Debug)]
pub struct History {
    rng: StdRng,
    plans: Vec<Plan>,
    next: usize,
    slot_us: i64,
    first_start_us: i64,
}

impl History {
    pub fn new(seed: u64, events: u64, span: Span) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut plans = Vec::new();
        let mut planned = 0u64;
        while planned < events {
            let machine = rng.random_bool(0.25);
            let len = if machine {
                rng.random_range(100..=400u32)
            } else {
                // Squaring a uniform draw favours short sessions, as real traffic does.
                let u: f64 = rng.random();
                20 + (380.0 * u * u) as u32
            };
            let len = len.min((events - planned) as u32);
            planned += u64::from(len);
            plans.push(Plan { machine, len });
        }
        // Starts end a day early, so that even the longest session (about five hours)
        // ends before the span does.
        let span_us = (span.days - 1) * DAY_US;
        let slot_us = span_us / plans.len().max(1) as i64;
        Self {
            rng,
            plans,
            next: 0,
            slot_us,
            first_start_us: span.end_us - span.days * DAY_US,
        }
    }

    /// The next whole sessions, at least `rows` events unless the history ends.
    pub fn next_chunk(&mut self, rows: usize) -> Option<Chunk> {
        if self.next >= self.plans.len() {
            return None;
        }
        let mut chunk = Chunk {
            events: Vec::with_capacity(rows + 400),
            sessions: Vec::new(),
        };
        while chunk.events.len() < rows && self.next < self.plans.len() {
            let plan = self.plans[self.next];
            let start = self.first_start_us
                + self.next as i64 * self.slot_us
                + self.rng.random_range(0..self.slot_us.max(1));
            self.next += 1;
            self.session(plan, start, &mut chunk);
        }
        Some(chunk)
    }

    fn session(&mut self, plan: Plan, start_us: i64, chunk: &mut Chunk) {
        let mut session = Session::new(&mut self.rng, plan.machine);
        let owner = Owner {
            user_id: format!("user-{:06}", self.rng.random_range(0..50_000u32)),
            machine_id: session.machine_id().map_or_else(
                || format!("machine-{:05}", self.rng.random_range(0..2_000u32)),
                str::to_owned,
            ),
            org_id: (1 + self.rng.random_range(0..250u32)).to_string(),
        };
        let started_at = start_us - self.rng.random_range(0..5_000_000);
        let id = session.id.clone();
        self.lifecycle(chunk, &id, Some(owner), started_at);
        let mut ts = start_us;
        for _ in 0..plan.len {
            let action = session.next(&mut self.rng, ts);
            let event_id = uuid_v7(&mut self.rng, ts);
            let received_at_us = ts + self.rng.random_range(30_000..1_500_000);
            let sent_at_us = self
                .rng
                .random_bool(0.5)
                .then(|| ts + self.rng.random_range(0..1_000_000));
            chunk.events.push(Recorded {
                event_id,
                session_id: id.clone(),
                action,
                ts_us: ts,
                received_at_us,
                sent_at_us,
            });
            ts += session.gap_us(&mut self.rng);
        }
        // One session in ten never says it ended, as closed tabs and crashed agents do.
        if self.rng.random_bool(0.9) {
            let ended_at = ts + self.rng.random_range(0..30_000_000);
            self.lifecycle(chunk, &id, None, ended_at);
        }
    }

    fn lifecycle(&mut self, chunk: &mut Chunk, session: &str, start: Option<Owner>, at_us: i64) {
        let update_id = uuid_v7(&mut self.rng, at_us);
        let received_at_us = at_us + self.rng.random_range(20_000..400_000);
        chunk.sessions.push(Lifecycle {
            update_id,
            session_id: session.to_owned(),
            start,
            at_us,
            received_at_us,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::tests::{history, registry, YEAR};
    use eye_model::schema::Validation;

    #[test]
    fn every_history_event_passes_the_shipped_schemas() {
        let registry = registry();
        for e in history(11, 20_000).into_iter().flat_map(|c| c.events) {
            let data = serde_json::to_value(&e.action.data).expect("json");
            let verdict = registry.validate(e.action.category, e.action.name, &data);
            assert!(
                matches!(verdict, Validation::Valid),
                "{}/{}: {verdict:?} for {data}",
                e.action.category,
                e.action.name,
            );
        }
    }

    #[test]
    fn history_stays_in_its_span_and_sessions_open_with_a_page_view() {
        let chunks = history(5, 10_000);
        let from = YEAR.end_us - YEAR.days * DAY_US;
        let mut first: std::collections::HashMap<&str, &Recorded> = Default::default();
        for e in chunks.iter().flat_map(|c| &c.events) {
            assert!((from..YEAR.end_us).contains(&e.ts_us), "{e:?}");
            assert!(e.received_at_us > e.ts_us);
            first.entry(&e.session_id).or_insert(e);
        }
        for e in first.values() {
            assert!(
                matches!(e.action.name, "page_view" | "cpu_load"),
                "{:?} opens a session",
                e.action
            );
        }
        // Every session starts; most end.
        let lifecycle: Vec<&Lifecycle> = chunks.iter().flat_map(|c| &c.sessions).collect();
        let starts = lifecycle.iter().filter(|l| l.start.is_some()).count();
        assert_eq!(starts, first.len());
        assert!(lifecycle.len() - starts > starts * 8 / 10);
    }
}
