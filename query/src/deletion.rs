//! Deletion of a user's, session's or machine's data (docs/lifecycle-deletion.md):
//! `DELETE /v1/users/{id}`, `/v1/sessions/{id}`, `/v1/machines/{id}` answer at once with a
//! deletion id; the deletion runs in the background of this process, and
//! `GET /v1/deletions/{id}` shows how it went.
//!
//! A deletion, in order:
//! 1. is recorded `pending` (the request's answer), then `running`;
//! 2. expands its subject to sessions and stores a suppression for the subject and each
//!    session, which the consumer honours from then on;
//! 3. waits `EYE_DELETION_SETTLE_MS`, long enough for every consumer to have read them,
//!    then expands again (a session the user started meanwhile is suppressed too), and
//!    reads the rejection ids of the subject's quarantined records, whose replay outcomes
//!    (`rejected_replays`) go too;
//! 4. counts the matching rows of every table and deletes them with mutations, waits for
//!    ClickHouse to finish them, and counts again: rows a consumer inserted between its
//!    last suppression read and the mutations are caught by a further round;
//! 5. is recorded `done` with the rows each table lost, or `failed` with the step and the
//!    ClickHouse error code (never the message, which may quote the ids).
//!
//! Each ClickHouse step is retried with backoff before the deletion fails. Deletions still
//! `pending` or `running` when the service stopped are resumed when it starts; every step
//! is safe to repeat, except that a deletion resumed after its quarantined records were
//! gone no longer finds their replay outcomes.

use crate::config::DeletionConfig;
use crate::error::QueryError;
use backon::{ExponentialBuilder, Retryable};
use eye_model::api::{DeletionView, SubjectView};
use eye_model::time::EventTime;
use eye_store::deletion::{self, DeletionRow, Subject, SubjectKind, SuppressionRow};
use eye_store::{Store, StoreError};
use prometheus::{IntCounterVec, Registry};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use uuid::Uuid;

/// Rounds of count-and-delete before rows still found fail the deletion.
const ROUNDS: usize = 5;
/// How often the server is asked whether the mutations are done.
const MUTATION_POLL: Duration = Duration::from_millis(200);
/// Attempts of each ClickHouse step.
const ATTEMPTS: usize = 6;

/// A deletion's state, as `deletions.status` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Running,
    Done,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// Deletions by final status and rows deleted per table.
#[derive(Clone)]
struct Metrics {
    deletions: IntCounterVec,
    rows: IntCounterVec,
}

impl Metrics {
    fn new(registry: &Registry) -> Self {
        Self {
            deletions: eye_runtime::telemetry::counter_vec(
                registry,
                "eye_deletions_total",
                "Deletions of a user's, session's or machine's data, by status reached (pending when requested, done, failed).",
                &["status"],
            ),
            rows: eye_runtime::telemetry::counter_vec(
                registry,
                "eye_deletion_rows_deleted_total",
                "Rows removed by deletions, by table.",
                &["table"],
            ),
        }
    }
}

/// The deletions of this process: the store they write with, their timing, their metrics.
/// Cheap to clone.
#[derive(Clone)]
pub struct Deletions {
    store: Store,
    suppression: Duration,
    settle: Duration,
    mutation_timeout: Duration,
    metrics: Metrics,
}

impl Deletions {
    pub fn new(store: Store, config: &DeletionConfig, registry: &Registry) -> Self {
        Self {
            store,
            suppression: Duration::from_secs(u64::from(config.suppression_days) * 86_400),
            settle: Duration::from_millis(config.settle_ms),
            mutation_timeout: Duration::from_millis(config.mutation_timeout_ms),
            metrics: Metrics::new(registry),
        }
    }

    /// Records a deletion `pending` and starts it.
    pub async fn request(
        &self,
        subject: Subject,
        requested_by: &str,
    ) -> Result<DeletionRow, QueryError> {
        let now = EventTime::now().as_micros();
        let row = DeletionRow {
            deletion_id: Uuid::now_v7(),
            subject_kind: subject.kind.as_str().into(),
            subject_id: subject.id,
            requested_by: requested_by.into(),
            requested_at_us: now,
            status: Status::Pending.as_str().into(),
            tables: Vec::new(),
            counts: Vec::new(),
            finished_at_us: 0,
            error: String::new(),
            updated_at_us: now,
        };
        self.store.insert_deletion(&row).await?;
        self.metrics
            .deletions
            .with_label_values(&[Status::Pending.as_str()])
            .inc();
        tracing::info!(deletion_id = %row.deletion_id, kind = %row.subject_kind, requested_by, "deletion requested");
        self.spawn(row.clone());
        Ok(row)
    }

    /// A deletion's current state.
    pub async fn get(&self, id: Uuid) -> Result<Option<DeletionRow>, QueryError> {
        Ok(self.store.deletion(id).await?)
    }

    /// Starts again every deletion left `pending` or `running`, in the background; the
    /// list itself is read with retries.
    pub fn resume(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            match this
                .retry("list unfinished", || this.store.unfinished_deletions())
                .await
            {
                Ok(rows) => {
                    for row in rows {
                        tracing::info!(deletion_id = %row.deletion_id, "resuming deletion");
                        this.spawn(row);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot list unfinished deletions; they resume at the next start")
                }
            }
        });
    }

    fn spawn(&self, row: DeletionRow) {
        let this = self.clone();
        tokio::spawn(async move { this.run(row).await });
    }

    async fn run(&self, mut row: DeletionRow) {
        let Some(kind) = SubjectKind::parse(&row.subject_kind) else {
            tracing::error!(deletion_id = %row.deletion_id, kind = %row.subject_kind, "deletion of an unknown kind");
            return;
        };
        let subject = Subject {
            kind,
            id: row.subject_id.clone(),
        };
        let outcome = self.delete(&mut row, &subject).await;
        row.finished_at_us = EventTime::now().as_micros();
        let status = match outcome {
            Ok(()) => Status::Done,
            Err(error) => {
                tracing::error!(deletion_id = %row.deletion_id, %error, "deletion failed");
                row.error = error;
                Status::Failed
            }
        };
        if let Err(e) = self.record(&mut row, status).await {
            tracing::error!(deletion_id = %row.deletion_id, error = %e, "cannot record the deletion's end; it resumes at the next start");
            return;
        }
        self.metrics
            .deletions
            .with_label_values(&[status.as_str()])
            .inc();
        for (table, n) in row.tables.iter().zip(&row.counts) {
            self.metrics.rows.with_label_values(&[table]).inc_by(*n);
        }
        tracing::info!(deletion_id = %row.deletion_id, status = status.as_str(), rows = row.counts.iter().sum::<u64>(), "deletion ended");
    }

    /// The deletion's steps; `Err` is the public reason it failed.
    async fn delete(&self, row: &mut DeletionRow, subject: &Subject) -> Result<(), String> {
        let fail = |step: &str| {
            let step = step.to_owned();
            move |e: StoreError| public_error(&step, &e)
        };
        self.record(row, Status::Running)
            .await
            .map_err(fail("record running"))?;
        let mut sessions = self
            .retry("expand", || self.store.subject_sessions(subject))
            .await
            .map_err(fail("expand"))?;
        self.suppress(row, subject, &sessions)
            .await
            .map_err(fail("suppress"))?;
        tokio::time::sleep(self.settle).await;
        let again = self
            .retry("expand", || self.store.subject_sessions(subject))
            .await
            .map_err(fail("expand"))?;
        let new: Vec<String> = again
            .into_iter()
            .filter(|s| sessions.binary_search(s).is_err())
            .collect();
        if !new.is_empty() {
            self.suppress(row, subject, &new)
                .await
                .map_err(fail("suppress"))?;
            sessions.extend(new);
            sessions.sort();
        }
        // Before anything is deleted: a replay outcome names only its quarantined record.
        let rejections = self
            .retry("expand", || {
                self.store.subject_rejections(subject, &sessions)
            })
            .await
            .map_err(fail("expand"))?;
        let targets = deletion::plan(subject, &sessions, &rejections);
        let mut totals: BTreeMap<&str, u64> = deletion::TABLES.iter().map(|t| (*t, 0)).collect();
        for _ in 0..ROUNDS {
            let counts = self
                .retry("count", || self.store.count_rows(&targets))
                .await
                .map_err(fail("count"))?;
            if counts.iter().all(|n| *n == 0) {
                row.tables = deletion::TABLES.iter().map(|t| (*t).to_owned()).collect();
                row.counts = deletion::TABLES.iter().map(|t| totals[t]).collect();
                return Ok(());
            }
            for (t, n) in targets.iter().zip(&counts) {
                *totals.entry(t.table).or_default() += n;
            }
            let pending: Vec<_> = targets
                .iter()
                .zip(&counts)
                .filter(|(_, n)| **n > 0)
                .map(|(t, _)| t.clone())
                .collect();
            self.retry("delete", || self.store.delete_rows(&pending))
                .await
                .map_err(fail("delete"))?;
            self.wait_for_mutations().await?;
        }
        Err(format!("rows remain after {ROUNDS} rounds of mutations"))
    }

    /// Stores the suppression of the subject and of `sessions`.
    async fn suppress(
        &self,
        row: &DeletionRow,
        subject: &Subject,
        sessions: &[String],
    ) -> Result<(), StoreError> {
        let now = EventTime::now().as_micros();
        let expires = now + i64::try_from(self.suppression.as_micros()).unwrap_or(i64::MAX / 2);
        let entry = |kind: SubjectKind, id: &str| SuppressionRow {
            subject_kind: kind.as_str().into(),
            subject_id: id.into(),
            deletion_id: row.deletion_id,
            added_at_us: now,
            expires_at_us: expires,
        };
        let mut rows = vec![entry(subject.kind, &subject.id)];
        rows.extend(
            sessions
                .iter()
                .filter(|s| !(subject.kind == SubjectKind::Session && **s == subject.id))
                .map(|s| entry(SubjectKind::Session, s)),
        );
        self.retry("suppress", || self.store.insert_suppressions(&rows))
            .await
    }

    /// Waits until the server has no unfinished mutation of the database.
    async fn wait_for_mutations(&self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.mutation_timeout;
        loop {
            let pending = self
                .retry("wait", || self.store.mutations_pending())
                .await
                .map_err(|e| public_error("wait", &e))?;
            if !pending {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "wait: mutations unfinished after {} s (EYE_DELETION_MUTATION_TIMEOUT_MS)",
                    self.mutation_timeout.as_secs()
                ));
            }
            tokio::time::sleep(MUTATION_POLL).await;
        }
    }

    /// Writes the deletion's new state (a new row, the latest winning).
    async fn record(&self, row: &mut DeletionRow, status: Status) -> Result<(), StoreError> {
        row.status = status.as_str().into();
        row.updated_at_us = EventTime::now().as_micros().max(row.updated_at_us + 1);
        let snapshot = row.clone();
        self.retry("record", || self.store.insert_deletion(&snapshot))
            .await
    }

    /// `op` until it succeeds, at most [`ATTEMPTS`] times, with exponential backoff.
    async fn retry<T, F, Fut>(&self, step: &str, op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .with_max_times(ATTEMPTS - 1);
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .notify(|e, pause| tracing::warn!(step, error = %e, retry_in = ?pause, "deletion step failed; retrying"))
            .await
    }
}

/// Why a step failed, without anything the error may quote: the ClickHouse error code
/// when there is one (`Code: 60. DB::Exception: …`, or 18.16's `Code: 60, e.displayText()
/// = …`), else the kind of failure.
pub fn public_error(step: &str, e: &StoreError) -> String {
    let text = e.to_string();
    let code = text.split("Code:").nth(1).and_then(|rest| {
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        (!digits.is_empty()).then_some(digits)
    });
    match (code, e) {
        (Some(code), _) => format!("{step}: ClickHouse error code {code}"),
        (None, StoreError::ClickHouse(_)) => format!("{step}: ClickHouse unreachable or no answer"),
        (None, _) => format!("{step}: configuration error"),
    }
}

pub fn view(r: DeletionRow) -> DeletionView {
    let time = |us: i64| EventTime::from_micros(us).to_rfc3339();
    DeletionView {
        deletion_id: r.deletion_id,
        subject: SubjectView {
            kind: r.subject_kind,
            id: r.subject_id,
        },
        status: r.status,
        requested_by: r.requested_by,
        requested_at: time(r.requested_at_us),
        finished_at: (r.finished_at_us != 0).then(|| time(r.finished_at_us)),
        counts: r.tables.into_iter().zip(r.counts).collect(),
        error: (!r.error.is_empty()).then_some(r.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_errors_name_the_step_and_code_only() {
        let ch = |s: &str| StoreError::ClickHouse(clickhouse::error::Error::BadResponse(s.into()));
        let cases = [
            (
                ch("Code: 60. DB::Exception: Table eye.events doesn't exist: ALTER TABLE events DELETE WHERE has(['user-secret'], session_id)"),
                "delete: ClickHouse error code 60",
            ),
            (
                ch("Code: 164, e.displayText() = DB::Exception: Cannot execute query in readonly mode, e.what() = DB::Exception"),
                "delete: ClickHouse error code 164",
            ),
            (ch("502 Bad Gateway"), "delete: ClickHouse unreachable or no answer"),
        ];
        for (e, want) in cases {
            assert_eq!(public_error("delete", &e), want);
        }
        let config = StoreError::Config(eye_store::sql::identifier("bad name").unwrap_err());
        assert_eq!(public_error("count", &config), "count: configuration error");
    }

    #[test]
    fn views_show_counts_by_table_and_times_once_finished() {
        let row = DeletionRow {
            deletion_id: Uuid::from_u128(1),
            subject_kind: "user".into(),
            subject_id: "u".into(),
            requested_by: "client".into(),
            requested_at_us: 1_700_000_000_000_000,
            status: "done".into(),
            tables: vec!["events".into(), "sessions".into()],
            counts: vec![3, 1],
            finished_at_us: 1_700_000_001_000_000,
            error: String::new(),
            updated_at_us: 0,
        };
        let v = serde_json::to_value(view(row.clone())).expect("json");
        assert_eq!(v["counts"], serde_json::json!({"events": 3, "sessions": 1}));
        assert_eq!(v["subject"], serde_json::json!({"kind": "user", "id": "u"}));
        assert_eq!(v["finished_at"], "2023-11-14T22:13:21.000000Z");
        assert_eq!(v["error"], serde_json::Value::Null);
        let pending = DeletionRow {
            status: "pending".into(),
            finished_at_us: 0,
            tables: vec![],
            counts: vec![],
            ..row
        };
        let v = serde_json::to_value(view(pending)).expect("json");
        assert_eq!(v["finished_at"], serde_json::Value::Null);
        assert_eq!(v["counts"], serde_json::json!({}));
    }
}
