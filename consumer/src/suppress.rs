//! The suppression list (migration 0011, docs/lifecycle-deletion.md): subjects whose data
//! was deleted and must not be stored again while their events are still in flight in
//! Kafka or still being sent.
//!
//! Before a batch is written its rows of suppressed subjects are dropped: events,
//! quarantined records and session records of a suppressed session; session records whose
//! start names a suppressed user or machine, whose session is then suppressed too (and the
//! suppression stored, so that every consumer drops its later events); identity rows
//! naming a suppressed user. The list is read incrementally, the rows added since the last
//! read ([`Suppressions::refresh`]), before a batch is written whenever the last read is
//! older than `EYE_CONSUMER_SUPPRESSION_REFRESH_MS`.

use crate::batch::Batch;
use crate::identity::Identities;
use eye_store::deletion::{SubjectKind, SuppressionRow};
use eye_store::{Store, StoreError};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How far back of the newest suppression seen each read looks again: a suppression
/// stamped by another host's clock (the query service's, another consumer's) up to this
/// much behind ours, or committed after a later one, is still found.
const CLOCK_SLACK_US: i64 = 60_000_000;

/// Why a suppressed subject is suppressed: its deletion, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub deletion_id: Uuid,
    pub expires_at_us: i64,
}

/// The suppressed subjects, by kind and id.
#[derive(Debug, Default)]
pub struct Suppressions {
    subjects: HashMap<(SubjectKind, String), Entry>,
    /// The newest `added_at_us` read.
    newest_us: i64,
    refreshed: Option<Instant>,
}

/// What filtering dropped, by table, and the sessions it newly suppressed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub events: usize,
    pub sessions: usize,
    pub rejected: usize,
    pub identities: usize,
    pub new: Vec<SuppressionRow>,
}

impl Suppressions {
    /// Whether the list is older than `every` (or was never read).
    pub fn due(&self, every: Duration, now: Instant) -> bool {
        self.refreshed
            .is_none_or(|at| now.duration_since(at) >= every)
    }

    /// Reads the suppressions added since the last read, and forgets the expired.
    pub async fn refresh(&mut self, store: &Store, now_us: i64) -> Result<(), StoreError> {
        // The first read takes the whole list (nothing was added before 1970).
        let since = if self.refreshed.is_some() {
            self.newest_us - CLOCK_SLACK_US
        } else {
            0
        };
        let rows = store.suppressions_since(since, now_us).await?;
        self.add(&rows, now_us);
        self.refreshed = Some(Instant::now());
        Ok(())
    }

    /// Takes `rows` into the list and drops what has expired at `now_us`.
    pub fn add(&mut self, rows: &[SuppressionRow], now_us: i64) {
        for r in rows {
            let Some(kind) = SubjectKind::parse(&r.subject_kind) else {
                tracing::warn!(kind = %r.subject_kind, "suppression of an unknown kind ignored");
                continue;
            };
            self.newest_us = self.newest_us.max(r.added_at_us);
            let entry = Entry {
                deletion_id: r.deletion_id,
                expires_at_us: r.expires_at_us,
            };
            self.subjects
                .entry((kind, r.subject_id.clone()))
                .and_modify(|e| {
                    if e.expires_at_us < entry.expires_at_us {
                        *e = entry;
                    }
                })
                .or_insert(entry);
        }
        self.subjects.retain(|_, e| e.expires_at_us > now_us);
    }

    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    fn get(&self, kind: SubjectKind, id: &str) -> Option<Entry> {
        if id.is_empty() {
            return None;
        }
        self.subjects.get(&(kind, id.to_owned())).copied()
    }

    fn session(&self, id: &str) -> bool {
        self.get(SubjectKind::Session, id).is_some()
    }

    /// Drops the batch's rows of suppressed subjects (its identities are derived later,
    /// from the events kept: see [`Suppressions::filter_identities`]). Session records
    /// first: a start naming a suppressed user or machine suppresses its session, here and
    /// in the rows returned in [`Dropped::new`], which the caller stores.
    pub fn filter(&mut self, batch: &mut Batch, now_us: i64) -> Dropped {
        let mut dropped = Dropped::default();
        for s in &batch.sessions {
            if self.session(&s.session_id) {
                continue;
            }
            let owner = self
                .get(SubjectKind::User, &s.user_id)
                .or_else(|| self.get(SubjectKind::Machine, &s.machine_id));
            if let Some(e) = owner {
                let row = SuppressionRow {
                    subject_kind: SubjectKind::Session.as_str().into(),
                    subject_id: s.session_id.clone(),
                    deletion_id: e.deletion_id,
                    added_at_us: now_us,
                    expires_at_us: e.expires_at_us,
                };
                self.add(std::slice::from_ref(&row), now_us);
                dropped.new.push(row);
            }
        }
        let before = batch.sessions.len();
        batch.sessions.retain(|s| !self.session(&s.session_id));
        dropped.sessions = before - batch.sessions.len();
        let before = batch.events.len();
        batch.events.retain(|e| !self.session(&e.session_id));
        dropped.events = before - batch.events.len();
        let before = batch.rejected.len();
        batch.rejected.retain(|r| !self.session(&r.session_id));
        dropped.rejected = before - batch.rejected.len();
        dropped
    }

    /// Drops identity rows naming a suppressed user (an event of another session may name
    /// them in its data) or of a suppressed session; returns how many.
    pub fn filter_identities(&self, ids: &mut Identities) -> usize {
        let user = |id: &str| self.get(SubjectKind::User, id).is_some();
        let before = ids.links.len() + ids.actors.len();
        ids.links.retain(|l| {
            !(user(&l.user_id) || user(&l.anonymous_id) || self.session(&l.session_id))
        });
        ids.actors
            .retain(|a| !(user(&a.actor_id) || self.session(&a.session_id)));
        before - ids.links.len() - ids.actors.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Limits, Position};
    use eye_store::{ActorRow, EventRow, LinkRow, RejectedRow, SessionRow};

    const NOW: i64 = 1_700_000_000_000_000;

    fn suppression(kind: SubjectKind, id: &str, expires_at_us: i64) -> SuppressionRow {
        SuppressionRow {
            subject_kind: kind.as_str().into(),
            subject_id: id.into(),
            deletion_id: Uuid::from_u128(7),
            added_at_us: NOW - 10,
            expires_at_us,
        }
    }

    fn event(session: &str) -> EventRow {
        EventRow {
            event_id: Uuid::now_v7(),
            session_id: session.into(),
            category: "c".into(),
            name: "n".into(),
            ts_us: NOW,
            received_at_us: NOW,
            data: "{}".into(),
            value: None,
            client_ts_us: NOW,
            sent_at_us: None,
        }
    }

    fn start(session: &str, user: &str, machine: &str) -> SessionRow {
        SessionRow {
            update_id: Uuid::now_v7(),
            session_id: session.into(),
            kind: "start".into(),
            user_id: user.into(),
            machine_id: machine.into(),
            org_id: String::new(),
            at_us: NOW,
            received_at_us: NOW,
        }
    }

    fn rejected(session: &str) -> RejectedRow {
        RejectedRow {
            rejection_id: Uuid::now_v7(),
            received_at_us: NOW,
            source: "ingest".into(),
            client: "c".into(),
            codes: vec![],
            reasons: "[]".into(),
            raw: "{}".into(),
            event_id: String::new(),
            session_id: session.into(),
            category: String::new(),
            name: String::new(),
            raw_bytes: 2,
            raw_sha256: String::new(),
        }
    }

    fn batch(sessions: Vec<SessionRow>, events: &[&str], rejects: &[&str]) -> Batch {
        let mut b = Batch::new(Limits {
            max_rows: 1000,
            max_bytes: 1 << 20,
            max_wait: Duration::from_secs(1),
        });
        let at = Position {
            topic: "t",
            partition: 0,
            offset: 0,
        };
        let now = Instant::now();
        for s in sessions {
            b.push_session(s, at, now);
        }
        for e in events {
            b.push_event(event(e), at, now);
        }
        for r in rejects {
            b.push_rejected(rejected(r), at, now);
        }
        b
    }

    fn list(rows: &[SuppressionRow]) -> Suppressions {
        let mut s = Suppressions::default();
        s.add(rows, NOW);
        s
    }

    #[test]
    fn suppressed_rows_are_dropped_and_new_sessions_of_suppressed_owners_suppressed() {
        let later = NOW + 1_000;
        // (suppressions, batch sessions, events' sessions, rejects' sessions,
        //  kept events, kept sessions, kept rejects, newly suppressed sessions)
        type Case = (
            Vec<SuppressionRow>,
            Vec<SessionRow>,
            Vec<&'static str>,
            Vec<&'static str>,
            Vec<&'static str>,
            Vec<&'static str>,
            Vec<&'static str>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            // Nothing suppressed: all kept.
            (
                vec![],
                vec![start("a", "u", "m")],
                vec!["a", "b"],
                vec!["a"],
                vec!["a", "b"],
                vec!["a"],
                vec!["a"],
                vec![],
            ),
            // A suppressed session loses its events, records and quarantine.
            (
                vec![suppression(SubjectKind::Session, "a", later)],
                vec![start("a", "u", "m"), start("b", "v", "n")],
                vec!["a", "b", "a"],
                vec!["a", "b"],
                vec!["b"],
                vec!["b"],
                vec!["b"],
                vec![],
            ),
            // A new session of a suppressed user is suppressed with its events.
            (
                vec![suppression(SubjectKind::User, "u", later)],
                vec![start("new", "u", "m"), start("b", "v", "n")],
                vec!["new", "b"],
                vec!["new"],
                vec!["b"],
                vec!["b"],
                vec![],
                vec!["new"],
            ),
            // And of a suppressed machine.
            (
                vec![suppression(SubjectKind::Machine, "m", later)],
                vec![start("new", "x", "m")],
                vec!["new", "c"],
                vec![],
                vec!["c"],
                vec![],
                vec![],
                vec!["new"],
            ),
            // Expired suppressions are not honoured.
            (
                vec![
                    suppression(SubjectKind::User, "u", NOW),
                    suppression(SubjectKind::Session, "a", NOW - 1),
                ],
                vec![start("new", "u", "m")],
                vec!["new", "a"],
                vec!["a"],
                vec!["new", "a"],
                vec!["new"],
                vec!["a"],
                vec![],
            ),
            // Empty owner ids never match.
            (
                vec![suppression(SubjectKind::User, "", later)],
                vec![start("s", "", "")],
                vec!["s"],
                vec![],
                vec!["s"],
                vec!["s"],
                vec![],
                vec![],
            ),
        ];
        for (
            i,
            (rows, sessions, events, rejects, want_events, want_sessions, want_rejects, want_new),
        ) in cases.into_iter().enumerate()
        {
            let mut s = list(&rows);
            let mut b = batch(sessions, &events, &rejects);
            let dropped = s.filter(&mut b, NOW);
            let ids = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
            let got_events: Vec<String> = b.events.iter().map(|e| e.session_id.clone()).collect();
            let got_sessions: Vec<String> =
                b.sessions.iter().map(|e| e.session_id.clone()).collect();
            let got_rejects: Vec<String> =
                b.rejected.iter().map(|e| e.session_id.clone()).collect();
            let got_new: Vec<String> = dropped.new.iter().map(|r| r.subject_id.clone()).collect();
            assert_eq!(got_events, ids(want_events), "case {i}");
            assert_eq!(got_sessions, ids(want_sessions), "case {i}");
            assert_eq!(got_rejects, ids(want_rejects), "case {i}");
            assert_eq!(got_new, ids(want_new), "case {i}");
            assert_eq!(dropped.events, events.len() - got_events.len(), "case {i}");
            for r in &dropped.new {
                assert_eq!(
                    (r.subject_kind.as_str(), r.expires_at_us),
                    ("session", later),
                    "case {i}"
                );
            }
        }
    }

    #[test]
    fn identity_rows_naming_a_suppressed_user_are_dropped() {
        let s = list(&[
            suppression(SubjectKind::User, "u", NOW + 1),
            suppression(SubjectKind::Session, "gone", NOW + 1),
        ]);
        let link = |user: &str, anon: &str, session: &str| LinkRow {
            user_id: user.into(),
            anonymous_id: anon.into(),
            via: "identify".into(),
            event_id: Uuid::nil(),
            session_id: session.into(),
            ts_us: NOW,
        };
        let actor = |id: &str, session: &str| ActorRow {
            actor_id: id.into(),
            ts_us: NOW,
            event_id: Uuid::nil(),
            session_id: session.into(),
            client_ts_us: NOW,
        };
        let mut ids = Identities {
            links: vec![
                link("u", "a", "s"),
                link("v", "u", "s"),
                link("v", "a", "gone"),
                link("v", "a", "s"),
            ],
            actors: vec![actor("u", "s"), actor("v", "gone"), actor("v", "s")],
        };
        assert_eq!(s.filter_identities(&mut ids), 5);
        assert_eq!(ids.links, vec![link("v", "a", "s")]);
        assert_eq!(ids.actors, vec![actor("v", "s")]);
    }

    #[test]
    fn refreshes_are_due_after_the_interval() {
        let mut s = Suppressions::default();
        let now = Instant::now();
        assert!(s.due(Duration::from_secs(1), now));
        s.refreshed = Some(now);
        assert!(!s.due(Duration::from_secs(1), now + Duration::from_millis(999)));
        assert!(s.due(Duration::from_secs(1), now + Duration::from_secs(1)));
    }
}
