//! The benchmark's data set: sessions of seed-shaped events, generated from a seeded RNG so
//! that every run (and every machine) loads the same rows, and loaded through
//! `eye_store::Store`, the code path the consumer uses.
//!
//! Shape, chosen so that each benchmarked question has realistic data behind it:
//! * web sessions (three in four): page views, CTA clicks, clicks into form fields and form submits, 20 to
//!   400 events each (skewed towards short sessions), a few seconds apart; page views carry
//!   their load time in ms as `value`;
//! * machine sessions (one in four): a `cpu_load` (percent) and a `memory_used` (bytes)
//!   measurement every minute, 100 to 400 events each;
//! * session starts evenly spread (with jitter) over the 365 days before [`ANCHOR_US`], so
//!   every day has data and the rows arrive roughly in time order, which keeps each insert
//!   within one or two monthly partitions.

use crate::clickhouse::Admin;
use anyhow::Context;
use eye_store::config::ClickHouseConfig;
use eye_store::{EventRow, SessionRow, Store};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use uuid::Uuid;

/// 2025-01-01T00:00:00Z: a fixed end for the data, so a run does not depend on today.
pub const ANCHOR_US: i64 = 1_735_689_600_000_000;
pub const DAY_US: i64 = 86_400_000_000;
/// The data covers the year before the anchor.
pub const SPAN_DAYS: i64 = 365;
/// Bumped whenever the generator's output changes, so an old data set is reloaded.
const GENERATOR_VERSION: u32 = 2;
/// Where the completed data set is recorded; written last, so an interrupted load is
/// never mistaken for a complete one.
const DATASET_TABLE: &str = "bench_dataset";

const HOSTS: [&str; 4] = [
    "www.consumeraffairs.com",
    "shop.example.com",
    "docs.example.com",
    "app.example.org",
];
const PATHS: [&str; 12] = [
    "/",
    "/pricing",
    "/reviews",
    "/reviews/cars",
    "/reviews/insurance",
    "/compare",
    "/signup",
    "/login",
    "/account",
    "/blog",
    "/blog/how-to-choose",
    "/contact",
];
const CTA_ELEMENTS: [&str; 6] = [
    "chat bubble",
    "get a quote",
    "read more",
    "compare now",
    "subscribe",
    "buy",
];
const FORM_FIELDS: [&str; 5] = ["email", "first_name", "last_name", "zip", "phone"];
const FORMS: [&str; 3] = ["signup", "contact", "quote"];

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
                    fmt_int(counts.distinct_events),
                    dataset.seed,
                    fmt_int(counts.stored_rows)
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
            fmt_int(total),
            dataset.seed,
            store.database(),
            fmt_int(self.batch_rows as u64),
            self.concurrency
        );
        // Generation is one sequential RNG stream (that is what makes it reproducible), on
        // a blocking thread; the inserts run concurrently with it and with each other.
        let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(self.concurrency);
        let batch_rows = self.batch_rows;
        let generator = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut g = Generator::new(dataset);
            while let Some(batch) = g.next_batch(batch_rows) {
                if tx.blocking_send(batch).is_err() {
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
                        fmt_int(n),
                        fmt_int(total),
                        100.0 * n as f64 / total as f64,
                        secs,
                        fmt_int((n as f64 / secs) as u64)
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
            fmt_int(total),
            secs,
            fmt_int((total as f64 / secs) as u64)
        );
        Ok(())
    }
}

struct Batch {
    events: Vec<EventRow>,
    sessions: Vec<SessionRow>,
}

#[derive(Serialize)]
struct PageData<'a> {
    host: &'a str,
    path: &'a str,
}

#[derive(Serialize)]
struct ElementData<'a> {
    host: &'a str,
    path: &'a str,
    element: &'a str,
}

#[derive(Serialize)]
struct FormData<'a> {
    host: &'a str,
    path: &'a str,
    /// An object, as the form_interaction/submit schema requires.
    form: SubmittedForm<'a>,
}

#[derive(Serialize)]
struct SubmittedForm<'a> {
    name: &'a str,
    fields: u8,
}

#[derive(Serialize)]
struct MachineData<'a> {
    machine_id: &'a str,
    unit: &'a str,
}

/// One planned session: its kind and length are drawn up front so that the number of
/// sessions, and with it the spacing of their starts over the year, is known.
#[derive(Clone, Copy)]
struct Plan {
    machine: bool,
    len: u32,
}

struct Owner {
    user_id: String,
    machine_id: String,
    org_id: String,
}

struct Generator {
    rng: StdRng,
    plans: Vec<Plan>,
    next: usize,
    slot_us: i64,
    first_start_us: i64,
}

impl Generator {
    fn new(dataset: Dataset) -> Self {
        let mut rng = StdRng::seed_from_u64(dataset.seed);
        let mut plans = Vec::new();
        let mut planned = 0u64;
        while planned < dataset.events {
            let machine = rng.random_bool(0.25);
            let len = if machine {
                rng.random_range(100..=400u32)
            } else {
                // Squaring a uniform draw favours short sessions, as real traffic does.
                let u: f64 = rng.random();
                20 + (380.0 * u * u) as u32
            };
            let len = len.min((dataset.events - planned) as u32);
            planned += u64::from(len);
            plans.push(Plan { machine, len });
        }
        // Starts are spread over the year but end a day early, so that even the longest
        // session (about five hours) ends before the anchor.
        let span_us = (SPAN_DAYS - 1) * DAY_US;
        let slot_us = span_us / plans.len().max(1) as i64;
        Self {
            rng,
            plans,
            next: 0,
            slot_us,
            first_start_us: ANCHOR_US - SPAN_DAYS * DAY_US,
        }
    }

    /// The next batch of whole sessions (at least `rows` events unless the data ends).
    fn next_batch(&mut self, rows: usize) -> Option<Batch> {
        if self.next >= self.plans.len() {
            return None;
        }
        let mut batch = Batch {
            events: Vec::with_capacity(rows + 400),
            sessions: Vec::new(),
        };
        while batch.events.len() < rows && self.next < self.plans.len() {
            let plan = self.plans[self.next];
            let start = self.first_start_us
                + self.next as i64 * self.slot_us
                + self.rng.random_range(0..self.slot_us.max(1));
            self.next += 1;
            self.session(plan, start, &mut batch);
        }
        Some(batch)
    }

    fn uuid_v4(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.random()).into_uuid()
    }

    /// Event ids are UUIDv7 like the ones ingest assigns, with the event's own time.
    fn uuid_v7(&mut self, at_us: i64) -> Uuid {
        let random: [u8; 10] = self.rng.random();
        uuid::Builder::from_unix_timestamp_millis((at_us / 1000) as u64, &random).into_uuid()
    }

    fn session(&mut self, plan: Plan, start_us: i64, batch: &mut Batch) {
        let session_id = self.uuid_v4().to_string();
        let machine_no = self.rng.random_range(0..2_000u32);
        let owner = Owner {
            user_id: format!("user-{:06}", self.rng.random_range(0..50_000u32)),
            machine_id: format!("machine-{machine_no:05}"),
            org_id: (1 + machine_no % 250).to_string(),
        };
        let started_at = start_us - self.rng.random_range(0..5_000_000);
        self.lifecycle(batch, &session_id, Some(&owner), started_at);
        let last_us = if plan.machine {
            self.machine_events(plan.len, start_us, &session_id, &owner.machine_id, batch)
        } else {
            self.web_events(plan.len, start_us, &session_id, batch)
        };
        // One session in ten never says it ended, as closed tabs and crashed agents do.
        if self.rng.random_bool(0.9) {
            let ended_at = last_us + self.rng.random_range(0..30_000_000);
            self.lifecycle(batch, &session_id, None, ended_at);
        }
    }

    /// A start record (with its owner) or an end record (without, as ingest stores them).
    fn lifecycle(&mut self, batch: &mut Batch, session: &str, owner: Option<&Owner>, at_us: i64) {
        let update_id = self.uuid_v7(at_us);
        let received_at_us = at_us + self.rng.random_range(20_000..400_000);
        let field = |f: fn(&Owner) -> &String| owner.map(f).cloned().unwrap_or_default();
        batch.sessions.push(SessionRow {
            update_id,
            session_id: session.to_owned(),
            kind: if owner.is_some() { "start" } else { "end" }.to_owned(),
            user_id: field(|o| &o.user_id),
            machine_id: field(|o| &o.machine_id),
            org_id: field(|o| &o.org_id),
            at_us,
            received_at_us,
        });
    }

    fn web_events(&mut self, len: u32, start_us: i64, session: &str, batch: &mut Batch) -> i64 {
        let host = HOSTS[self.rng.random_range(0..HOSTS.len())];
        let mut path = PATHS[0];
        let mut ts = start_us;
        for i in 0..len {
            let roll = self.rng.random_range(0..100u32);
            // Every session opens with a page view.
            let (category, name, data, value) = if i == 0 || roll < 55 {
                path = PATHS[self.rng.random_range(0..PATHS.len())];
                // Load times: mostly a few hundred ms, with a long tail.
                let u: f64 = self.rng.random();
                let load_ms = (150.0 + 2_500.0 * u.powi(4) + self.rng.random_range(0.0..80.0))
                    .round()
                    .max(1.0);
                (
                    "page_interaction",
                    "page_view",
                    json(&PageData { host, path }),
                    Some(load_ms),
                )
            } else if roll < 75 {
                let element = CTA_ELEMENTS[self.rng.random_range(0..CTA_ELEMENTS.len())];
                (
                    "page_interaction",
                    "cta_click",
                    json(&ElementData {
                        host,
                        path,
                        element,
                    }),
                    None,
                )
            } else if roll < 90 {
                let element = FORM_FIELDS[self.rng.random_range(0..FORM_FIELDS.len())];
                // A click into a form field: the shipped cta_click type, so every generated
                // event is one ingest would accept.
                (
                    "page_interaction",
                    "cta_click",
                    json(&ElementData {
                        host,
                        path,
                        element,
                    }),
                    None,
                )
            } else {
                let form = FORMS[self.rng.random_range(0..FORMS.len())];
                let fields = self.rng.random_range(2..=6u8);
                (
                    "form_interaction",
                    "submit",
                    json(&FormData {
                        host,
                        path,
                        form: SubmittedForm { name: form, fields },
                    }),
                    None,
                )
            };
            self.push_event(batch, session, category, name, ts, data, value);
            ts += self.rng.random_range(1_000_000..45_000_000);
        }
        ts
    }

    fn machine_events(
        &mut self,
        len: u32,
        start_us: i64,
        session: &str,
        machine_id: &str,
        batch: &mut Batch,
    ) -> i64 {
        let base_cpu: f64 = self.rng.random_range(5.0..60.0);
        let mem_total: f64 = f64::from(self.rng.random_range(4u32..=64)) * 1024.0 * 1024.0 * 1024.0;
        let mut mem_used = mem_total * self.rng.random_range(0.2..0.6);
        let mut ts = start_us;
        for i in 0..len {
            // A measurement pair per minute: cpu_load then memory_used, a few ms apart.
            let (name, unit, value) = if i % 2 == 0 {
                let hour = ((ts / 3_600_000_000) % 24) as f64;
                // Busier in the working day (UTC), plus noise.
                let diurnal = 15.0 * (std::f64::consts::PI * (hour - 6.0) / 12.0).sin();
                let cpu =
                    (base_cpu + diurnal + self.rng.random_range(-10.0..10.0)).clamp(0.0, 100.0);
                ("cpu_load", "percent", (cpu * 10.0).round() / 10.0)
            } else {
                mem_used = (mem_used + self.rng.random_range(-0.02..0.02) * mem_total)
                    .clamp(0.05 * mem_total, 0.98 * mem_total);
                ("memory_used", "bytes", mem_used.round())
            };
            let data = json(&MachineData { machine_id, unit });
            self.push_event(batch, session, "machine", name, ts, data, Some(value));
            ts += if i % 2 == 0 {
                self.rng.random_range(1_000..20_000)
            } else {
                self.rng.random_range(59_000_000..61_000_000)
            };
        }
        ts
    }

    #[allow(clippy::too_many_arguments)] // one call site per event kind; a struct would only rename them
    fn push_event(
        &mut self,
        batch: &mut Batch,
        session: &str,
        category: &str,
        name: &str,
        ts_us: i64,
        data: String,
        value: Option<f64>,
    ) {
        let event_id = self.uuid_v7(ts_us);
        let received_at_us = ts_us + self.rng.random_range(30_000..1_500_000);
        // Half the clients send `sent_at`; none are skewed, so the corrected time is theirs.
        let sent_at_us = self
            .rng
            .random_bool(0.5)
            .then(|| ts_us + self.rng.random_range(0..1_000_000));
        batch.events.push(EventRow {
            event_id,
            session_id: session.to_owned(),
            category: category.to_owned(),
            name: name.to_owned(),
            ts_us,
            received_at_us,
            data,
            value,
            client_ts_us: ts_us,
            sent_at_us,
        });
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("plain structs of strings and numbers serialize")
}

/// 10000000 -> "10,000,000": figures a person reads at a glance.
pub fn fmt_int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows() {
        let data = Dataset {
            events: 5_000,
            seed: 7,
        };
        let take = |d| {
            let mut g = Generator::new(d);
            let mut rows = Vec::new();
            while let Some(b) = g.next_batch(1_000) {
                rows.extend(b.events);
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
    fn every_generated_event_passes_the_shipped_schemas() {
        use eye_model::schema::{SchemaRegistry, Validation};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");
        let registry = SchemaRegistry::load(std::path::Path::new(dir)).expect("schemas");
        let mut g = Generator::new(Dataset {
            events: 20_000,
            seed: 11,
        });
        let mut types = std::collections::BTreeSet::new();
        while let Some(b) = g.next_batch(5_000) {
            for e in b.events {
                let data: serde_json::Value = serde_json::from_str(&e.data).expect("json");
                let verdict = registry.validate(&e.category, &e.name, &data);
                assert!(
                    matches!(verdict, Validation::Valid),
                    "{}/{}: {verdict:?} for {}",
                    e.category,
                    e.name,
                    e.data
                );
                types.insert((e.category, e.name));
            }
        }
        assert_eq!(types.len(), 5, "{types:?}");
    }

    #[test]
    fn thousands() {
        assert_eq!(fmt_int(0), "0");
        assert_eq!(fmt_int(999), "999");
        assert_eq!(fmt_int(1_000), "1,000");
        assert_eq!(fmt_int(10_000_000), "10,000,000");
    }
}
