//! The benchmark's data set: a year of sessions from the workspace's one event generator
//! (`eye_loadgen::events::History`), seeded so that every run (and every machine) loads the
//! same rows, and loaded through `eye_store::Store`, the code path the consumer uses.
//!
//! Its shape gives each benchmarked question realistic data: web sessions of 20 to 400
//! events and machine sessions with a measurement pair a minute, their starts spread over
//! the 365 days before [`ANCHOR_US`], so every day has data and the rows arrive roughly in
//! time order, which keeps each insert within one or two monthly partitions.

use super::clickhouse::Admin;
use crate::report::thousands;
use anyhow::Context;
use eye_loadgen::events::{Chunk, History, Span};
use eye_store::config::ClickHouseConfig;
use eye_store::{EventRow, SessionRow, Store};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// 2025-01-01T00:00:00Z: a fixed end for the data, so a run does not depend on today.
pub const ANCHOR_US: i64 = 1_735_689_600_000_000;
pub const DAY_US: i64 = 86_400_000_000;
/// The data covers the year before the anchor.
pub const SPAN_DAYS: i64 = 365;
/// Bumped whenever the generator's output changes, so an old data set is reloaded.
const GENERATOR_VERSION: u32 = 3;
/// Where the completed data set is recorded; written last, so an interrupted load is
/// never mistaken for a complete one.
const DATASET_TABLE: &str = "bench_dataset";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dataset {
    pub events: u64,
    pub seed: u64,
}

/// What the loader found or did.
#[derive(Debug)]
pub struct LoadReport {
    pub stored_rows: u64,
    pub distinct_events: u64,
    /// False when the database already held the data set.
    pub loaded: bool,
}

pub struct Loader<'a> {
    pub admin: &'a Admin,
    pub clickhouse: ClickHouseConfig,
    pub batch_rows: usize,
    pub concurrency: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct DatasetRecord {
    events: u64,
    seed: u64,
    anchor_us: i64,
    version: u32,
}

#[derive(Debug, Deserialize)]
struct Counts {
    stored_rows: u64,
    distinct_events: u64,
}

impl Loader<'_> {
    /// Loads `dataset` unless the database already holds exactly it; `reload` drops the
    /// database first whatever it holds.
    pub async fn ensure(&self, dataset: Dataset, reload: bool) -> anyhow::Result<LoadReport> {
        let db = eye_store::sql::identifier(&self.clickhouse.database)?.to_owned();
        if !reload {
            if let Some(counts) = self.complete(&db, dataset).await? {
                println!(
                    "data: {db} already holds the {} events of seed {} ({} rows stored); not reloading (--reload forces it)",
                    thousands(counts.distinct_events),
                    dataset.seed,
                    thousands(counts.stored_rows)
                );
                return Ok(LoadReport {
                    stored_rows: counts.stored_rows,
                    distinct_events: counts.distinct_events,
                    loaded: false,
                });
            }
        }
        // A partial or different data set cannot be topped up: the generator is one
        // sequence, so start from an empty database.
        self.admin
            .execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await?;
        let store = Store::new(&self.clickhouse)?;
        store.migrate().await.context("applying migrations")?;
        self.load(&store, dataset).await?;
        self.merge(&db).await?;
        self.admin
            .execute(&format!(
                "CREATE TABLE {db}.{DATASET_TABLE} (events UInt64, seed UInt64, anchor_us Int64, version UInt32) ENGINE = TinyLog"
            ))
            .await?;
        self.admin
            .execute(&format!(
                "INSERT INTO {db}.{DATASET_TABLE} VALUES ({}, {}, {ANCHOR_US}, {GENERATOR_VERSION})",
                dataset.events, dataset.seed
            ))
            .await?;
        let counts = self.counts(&db).await?;
        anyhow::ensure!(
            counts.distinct_events == dataset.events,
            "loaded {} distinct events, expected {}",
            counts.distinct_events,
            dataset.events
        );
        Ok(LoadReport {
            stored_rows: counts.stored_rows,
            distinct_events: counts.distinct_events,
            loaded: true,
        })
    }

    /// The counts of the stored data set when it is complete and made with these
    /// parameters; `None` when it must be (re)loaded.
    async fn complete(&self, db: &str, dataset: Dataset) -> anyhow::Result<Option<Counts>> {
        let exists: Vec<serde_json::Value> = self
            .admin
            .rows(&format!(
                "SELECT name FROM system.tables WHERE database = '{db}' AND name = '{DATASET_TABLE}'"
            ))
            .await?;
        if exists.is_empty() {
            println!("data: no complete data set in {db}; loading");
            return Ok(None);
        }
        let records: Vec<DatasetRecord> = self
            .admin
            .rows(&format!(
                "SELECT events, seed, anchor_us, version FROM {db}.{DATASET_TABLE}"
            ))
            .await?;
        let wanted = DatasetRecord {
            events: dataset.events,
            seed: dataset.seed,
            anchor_us: ANCHOR_US,
            version: GENERATOR_VERSION,
        };
        let same = |r: &DatasetRecord| {
            (r.events, r.seed, r.anchor_us, r.version)
                == (wanted.events, wanted.seed, wanted.anchor_us, wanted.version)
        };
        if !records.iter().any(same) {
            println!("data: {db} holds another data set ({records:?}); reloading");
            return Ok(None);
        }
        let counts = self.counts(db).await?;
        if counts.distinct_events != dataset.events {
            println!(
                "data: {db} holds {} distinct events, expected {}; reloading",
                counts.distinct_events, dataset.events
            );
            return Ok(None);
        }
        Ok(Some(counts))
    }

    /// Merges every table of the load down to one part per partition. Left alone, the
    /// number of parts a query meets depends on how far background merges got, which
    /// changes the reads (every part has its own boundary granules) from run to run; a
    /// year-old data set in production is long merged, so this is also the realistic shape.
    async fn merge(&self, db: &str) -> anyhow::Result<()> {
        #[derive(Deserialize)]
        struct Table {
            name: String,
        }
        let started = Instant::now();
        let tables: Vec<Table> = self
            .admin
            .rows(&format!(
                "SELECT name FROM system.tables WHERE database = '{db}' AND engine LIKE '%MergeTree' ORDER BY name"
            ))
            .await?;
        for t in &tables {
            // Backquotes: materialized views keep their rows in `.inner.<view>`.
            self.admin
                .execute(&format!("OPTIMIZE TABLE {db}.`{}` FINAL", t.name))
                .await
                .with_context(|| format!("merging {db}.{}", t.name))?;
        }
        println!(
            "data: merged {} tables to one part per partition in {:.1} s (OPTIMIZE FINAL)",
            tables.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    async fn counts(&self, db: &str) -> anyhow::Result<Counts> {
        let mut rows: Vec<Counts> = self
            .admin
            .rows(&format!(
                "SELECT count() AS stored_rows, uniqExact(event_id) AS distinct_events FROM {db}.events"
            ))
            .await?;
        rows.pop().context("no answer to the count")
    }

    async fn load(&self, store: &Store, dataset: Dataset) -> anyhow::Result<()> {
        let started = Instant::now();
        let total = dataset.events;
        println!(
            "data: loading {} events (seed {}) into {} in batches of {} rows, {} inserts at a time",
            thousands(total),
            dataset.seed,
            store.database(),
            thousands(self.batch_rows as u64),
            self.concurrency
        );
        // Generation is one sequential RNG stream (that is what makes it reproducible), on
        // a blocking thread; the inserts run concurrently with it and with each other.
        let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(self.concurrency);
        let batch_rows = self.batch_rows;
        let generator = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut history = History::new(dataset.seed, dataset.events, SPAN);
            while let Some(chunk) = history.next_chunk(batch_rows) {
                if tx.blocking_send(Batch::from(chunk)).is_err() {
                    // The inserters stopped on an error; they report it.
                    break;
                }
            }
            Ok(())
        });
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut inserters = Vec::new();
        for _ in 0..self.concurrency {
            let rx = rx.clone();
            let done = done.clone();
            let store = store.clone();
            inserters.push(tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(batch) = next else { break };
                    store
                        .insert_events(&batch.events)
                        .await
                        .context("inserting events")?;
                    store
                        .insert_sessions(&batch.sessions)
                        .await
                        .context("inserting sessions")?;
                    let n = done.fetch_add(
                        batch.events.len() as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    ) + batch.events.len() as u64;
                    let secs = started.elapsed().as_secs_f64();
                    println!(
                        "data: {:>12} / {} events ({:5.1}%), {:.0} s, {} rows/s",
                        thousands(n),
                        thousands(total),
                        100.0 * n as f64 / total as f64,
                        secs,
                        thousands((n as f64 / secs) as u64)
                    );
                }
                anyhow::Ok(())
            }));
        }
        for result in futures::future::join_all(inserters).await {
            result??;
        }
        generator.await??;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "data: loaded {} events in {:.1} s ({} rows/s; each row is also written to events_by_type)",
            thousands(total),
            secs,
            thousands((total as f64 / secs) as u64)
        );
        Ok(())
    }
}

/// The data set's span: the year before the anchor.
const SPAN: Span = Span {
    end_us: ANCHOR_US,
    days: SPAN_DAYS,
};

/// Rows of whole sessions, as the consumer would write them.
struct Batch {
    events: Vec<EventRow>,
    sessions: Vec<SessionRow>,
}

impl From<Chunk> for Batch {
    fn from(chunk: Chunk) -> Self {
        let events = chunk
            .events
            .into_iter()
            .map(|e| EventRow {
                event_id: e.event_id,
                session_id: e.session_id,
                category: e.action.category.to_owned(),
                name: e.action.name.to_owned(),
                ts_us: e.ts_us,
                received_at_us: e.received_at_us,
                data: serde_json::to_string(&e.action.data)
                    .expect("plain structs of strings and numbers serialize"),
                value: e.action.value,
                client_ts_us: e.ts_us,
                sent_at_us: e.sent_at_us,
            })
            .collect();
        let sessions = chunk
            .sessions
            .into_iter()
            .map(|l| {
                let owner = |f: fn(&eye_loadgen::events::Owner) -> &String| {
                    l.start.as_ref().map(f).cloned().unwrap_or_default()
                };
                SessionRow {
                    update_id: l.update_id,
                    kind: if l.start.is_some() { "start" } else { "end" }.to_owned(),
                    user_id: owner(|o| &o.user_id),
                    machine_id: owner(|o| &o.machine_id),
                    org_id: owner(|o| &o.org_id),
                    session_id: l.session_id,
                    at_us: l.at_us,
                    received_at_us: l.received_at_us,
                }
            })
            .collect();
        Self { events, sessions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows_within_the_year() {
        let data = Dataset {
            events: 5_000,
            seed: 7,
        };
        let take = |d: Dataset| {
            let mut history = History::new(d.seed, d.events, SPAN);
            let mut rows = Vec::new();
            while let Some(c) = history.next_chunk(1_000) {
                rows.extend(Batch::from(c).events);
            }
            rows
        };
        let a = take(data);
        assert_eq!(a.len(), 5_000);
        assert_eq!(a, take(data));
        assert!(a
            .iter()
            .all(|e| e.ts_us < ANCHOR_US && e.ts_us >= ANCHOR_US - SPAN_DAYS * DAY_US));
    }

    #[test]
    fn session_rows_carry_the_owner_on_starts_only() {
        let mut history = History::new(3, 2_000, SPAN);
        let batch = Batch::from(history.next_chunk(2_000).expect("a chunk"));
        assert!(!batch.sessions.is_empty());
        for s in &batch.sessions {
            match s.kind.as_str() {
                "start" => assert!(!s.user_id.is_empty() && !s.org_id.is_empty(), "{s:?}"),
                "end" => assert!(s.user_id.is_empty() && s.machine_id.is_empty(), "{s:?}"),
                other => panic!("kind {other}"),
            }
        }
    }
}
