//! Retention: how long stored data is kept. `EYE_RETENTION_*`, the one place it is
//! configured, read alike by the consumer (which applies it on a schedule), the query
//! service (whose reads never show what has expired) and `eye-admin retention`.
//!
//! A period per event category (`EYE_RETENTION_CATEGORY_DAYS`), one for every other
//! category (`EYE_RETENTION_DEFAULT_DAYS`; unset: kept forever) and one for the quarantine
//! (`EYE_RETENTION_QUARANTINE_DAYS`; unset: kept forever). An event has expired when its
//! time (`ts_us`, the skew-corrected event time that partitions `events`) is before its
//! category's cutoff, `now - days`; a quarantined record when its arrival
//! (`received_at_us`) is. [`Cutoffs`] are a pure function of the configuration and the
//! time; every read of events and of the quarantine carries them as bound values
//! ([`crate::sql`]), and [`apply`] removes what has expired (docs/lifecycle-retention.md).

use crate::sql::retention as rsql;
use crate::store::{Store, StoreError};
use std::time::Duration;

pub use config::{CategoryDays, Days, RetentionConfig, RetentionError, MAX_DAYS};

mod config;

/// The retention as instants: an event of category `c` has expired when its `ts_us` is
/// before [`Cutoffs::event`]`(c)`, a quarantined record when its `received_at_us` is before
/// `quarantine`. `None`: kept forever.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cutoffs {
    /// Sorted by category, each once.
    pub categories: Vec<(String, i64)>,
    pub default: Option<i64>,
    pub quarantine: Option<i64>,
}

impl Cutoffs {
    /// Nothing expires.
    pub fn none() -> Self {
        Self::default()
    }

    /// The cutoff of a category's events.
    pub fn event(&self, category: &str) -> Option<i64> {
        self.categories
            .iter()
            .find(|(c, _)| c == category)
            .map(|(_, t)| *t)
            .or(self.default)
    }

    /// Whether some events expire.
    pub fn limits_events(&self) -> bool {
        !self.categories.is_empty() || self.default.is_some()
    }

    /// The earliest cutoff of any category, when every category has one (a default is
    /// set): every event before it has expired, whatever its category. `None` when some
    /// category is kept forever.
    pub fn all_expired_before(&self) -> Option<i64> {
        let default = self.default?;
        Some(
            self.categories
                .iter()
                .map(|(_, t)| *t)
                .fold(default, i64::min),
        )
    }

    /// The latest cutoff of any category: no event at or after it has expired.
    pub fn none_expired_from(&self) -> Option<i64> {
        self.categories
            .iter()
            .map(|(_, t)| *t)
            .chain(self.default)
            .max()
    }
}

/// One monthly partition's newest time per category (`category` empty for tables without
/// one), and its rows: what [`droppable`] decides from.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, serde::Deserialize)]
pub struct PartitionStat {
    /// `toYYYYMM` of the partition's time.
    pub partition: u32,
    pub category: String,
    pub last_us: i64,
    pub rows: u64,
}

/// The partitions every row of which has expired, sorted, each with its rows. `cutoff`
/// gives the cutoff of a stat's category (`None`: kept forever): a partition goes only if
/// each of its categories' newest time is before that category's cutoff.
pub fn droppable(stats: &[PartitionStat], cutoff: impl Fn(&str) -> Option<i64>) -> Vec<(u32, u64)> {
    let mut out: Vec<(u32, u64, bool)> = Vec::new();
    for s in stats {
        let expired = cutoff(&s.category).is_some_and(|c| s.last_us < c);
        match out.iter_mut().find(|(p, _, _)| *p == s.partition) {
            Some(entry) => {
                entry.1 += s.rows;
                entry.2 &= expired;
            }
            None => out.push((s.partition, s.rows, expired)),
        }
    }
    let mut out: Vec<(u32, u64)> = out
        .into_iter()
        .filter(|(_, _, expired)| *expired)
        .map(|(p, rows, _)| (p, rows))
        .collect();
    out.sort_unstable();
    out
}

/// The tables retention removes rows from, each with how its expired rows are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `events`: by category and `ts_us`, monthly partitions of `ts`.
    Events,
    /// `events_by_type` (migration 0005's view).
    EventsByType,
    /// `identity_actors` (0009): no category, so by the identity of an expired event;
    /// partitioned by the event's month like `events`, whose dropped months it drops.
    IdentityActors,
    /// `event_keys` (0008's view): by the identity of an expired event; partitioned by the
    /// client's month, dropped when all of it is before every category's cutoff.
    EventKeys,
    /// `rejected_events`: by `received_at_us`, monthly partitions of `received_at`.
    Quarantine,
    /// `rejected_replays` (0010), the replay outcomes of quarantined records: by
    /// `replayed_at_us` against the quarantine's cutoff, monthly partitions of
    /// `replayed_at`. An outcome is recorded after its record arrived, so none outlives
    /// its record by more than the quarantine's period, and none goes before it.
    QuarantineReplays,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Events,
        Table::EventsByType,
        Table::IdentityActors,
        Table::EventKeys,
        Table::Quarantine,
        Table::QuarantineReplays,
    ];

    /// The name reads use (and the `table` label of the metrics).
    pub fn name(self) -> &'static str {
        match self {
            Table::Events => crate::sql::EVENTS_TABLE,
            Table::EventsByType => crate::sql::EVENTS_BY_TYPE,
            Table::IdentityActors => crate::sql::ACTORS_TABLE,
            Table::EventKeys => "event_keys",
            Table::Quarantine => crate::sql::REJECTED_TABLE,
            Table::QuarantineReplays => crate::sql::REPLAYS_TABLE,
        }
    }

    /// Whether it is a materialized view (its rows live in its storage table).
    pub fn is_view(self) -> bool {
        matches!(self, Table::EventsByType | Table::EventKeys)
    }
}

/// What one table loses in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePlan {
    /// Whole monthly partitions (`toYYYYMM`), each with its rows.
    pub partitions: Vec<(u32, u64)>,
    /// Rows outside those partitions that have expired, removed by `ALTER … DELETE`.
    pub rows_to_delete: u64,
}

impl TablePlan {
    pub fn rows_in_partitions(&self) -> u64 {
        self.partitions.iter().map(|(_, r)| r).sum()
    }
}

/// What a run removes, table by table ([`plan`]), and then what it did ([`apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub now_us: i64,
    pub cutoffs: Cutoffs,
    pub tables: Vec<(Table, TablePlan)>,
}

impl Plan {
    pub fn table(&self, t: Table) -> TablePlan {
        self.tables
            .iter()
            .find(|(x, _)| *x == t)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }
}

/// Whether a server version (`SELECT version()`, e.g. `18.16.1`) has table TTL (19.6+).
pub fn has_ttl(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (19, 6)
}

/// `t`'s part of a plan: the whole `partitions` it drops (month, rows), and the expired
/// rows outside them, counted.
async fn table_plan(
    store: &Store,
    t: Table,
    cut: &Cutoffs,
    partitions: Vec<(u32, u64)>,
) -> Result<(Table, TablePlan), StoreError> {
    let gone: Vec<u32> = partitions.iter().map(|(p, _)| *p).collect();
    let rows_to_delete = store
        .retention_count(rsql::expired_count(t, cut, &gone))
        .await?;
    Ok((
        t,
        TablePlan {
            partitions,
            rows_to_delete,
        },
    ))
}

/// What would expire at `now_us`: the partitions that go whole and the rows deleted
/// otherwise, per table. Reads only.
pub async fn plan(
    store: &Store,
    config: &RetentionConfig,
    now_us: i64,
) -> Result<Plan, StoreError> {
    let cut = config.cutoffs(now_us);
    let mut tables = Vec::new();
    if cut.limits_events() {
        let events = store
            .retention_stats(rsql::partition_stats(Table::Events))
            .await?;
        let events_drop = droppable(&events, |c| cut.event(c));
        let months: Vec<u32> = events_drop.iter().map(|(p, _)| *p).collect();
        tables.push(table_plan(store, Table::Events, &cut, events_drop).await?);
        let by_type = store
            .retention_stats(rsql::partition_stats(Table::EventsByType))
            .await?;
        let by_type = droppable(&by_type, |c| cut.event(c));
        tables.push(table_plan(store, Table::EventsByType, &cut, by_type).await?);
        // Actors: the months every event of which expired.
        let actors = store
            .retention_stats(rsql::partition_stats(Table::IdentityActors))
            .await?;
        let actors = actors
            .iter()
            .filter(|s| months.contains(&s.partition))
            .map(|s| (s.partition, s.rows))
            .collect();
        tables.push(table_plan(store, Table::IdentityActors, &cut, actors).await?);
        // Keys: partitioned by the client's month, with no category; a month goes when its
        // newest event time is before every category's cutoff.
        let keys = store
            .retention_stats(rsql::partition_stats(Table::EventKeys))
            .await?;
        let keys = match cut.all_expired_before() {
            Some(before) => droppable(&keys, |_| Some(before)),
            None => Vec::new(),
        };
        tables.push(table_plan(store, Table::EventKeys, &cut, keys).await?);
    }
    if let Some(q) = cut.quarantine {
        let stats = store
            .retention_stats(rsql::partition_stats(Table::Quarantine))
            .await?;
        let partitions = droppable(&stats, |_| Some(q));
        tables.push(table_plan(store, Table::Quarantine, &cut, partitions).await?);
        let stats = store
            .retention_stats(rsql::partition_stats(Table::QuarantineReplays))
            .await?;
        let partitions = droppable(&stats, |_| Some(q));
        tables.push(table_plan(store, Table::QuarantineReplays, &cut, partitions).await?);
    }
    Ok(Plan {
        now_us,
        cutoffs: cut,
        tables,
    })
}

/// Removes what has expired at `now_us` ([`plan`]), in an order that loses nothing a
/// later step needs: first the rows of `identity_actors` and `event_keys` that belong to
/// expired events (found through `events`, so those must still be there: their mutations
/// are awaited, at most `wait`), then whole partitions, then `ALTER … DELETE` of the rest.
/// Mutations run in the background on ClickHouse; this waits for each table's, at most
/// `wait` each, so the returned plan is done when this returns `Ok`.
///
/// On a server with table TTL (19.6+) the same expiry is also set as TTL (once per call,
/// [`apply_ttl`]), so rows also go in merges between runs.
pub async fn apply(
    store: &Store,
    config: &RetentionConfig,
    now_us: i64,
    wait: Duration,
) -> Result<Plan, StoreError> {
    let plan = plan(store, config, now_us).await?;
    let cut = &plan.cutoffs;
    let keyed = [Table::IdentityActors, Table::EventKeys];
    for t in keyed {
        let p = plan.table(t);
        if p.rows_to_delete > 0 {
            let gone: Vec<u32> = p.partitions.iter().map(|(m, _)| *m).collect();
            store
                .retention_alter(rsql::delete_expired(t, cut, &gone, store.cluster_target()))
                .await?;
        }
    }
    for t in keyed {
        store.await_mutations(t, wait).await?;
    }
    for (t, p) in &plan.tables {
        for (month, _) in &p.partitions {
            store
                .retention_alter(rsql::drop_partition(*t, *month, store.cluster_target()))
                .await?;
        }
    }
    let by_time = [
        Table::Events,
        Table::EventsByType,
        Table::Quarantine,
        Table::QuarantineReplays,
    ];
    for t in by_time {
        let p = plan.table(t);
        if p.rows_to_delete > 0 {
            let gone: Vec<u32> = p.partitions.iter().map(|(m, _)| *m).collect();
            store
                .retention_alter(rsql::delete_expired(t, cut, &gone, store.cluster_target()))
                .await?;
        }
    }
    for t in by_time {
        store.await_mutations(t, wait).await?;
    }
    Ok(plan)
}

/// On a server with table TTL (19.6+, asked with `SELECT version()`), sets `config` as the
/// TTL of `events`, `events_by_type`, `rejected_events` and `rejected_replays`. Returns
/// whether it did. Each
/// `MODIFY TTL` makes the server re-check every part, so callers run it once (at the
/// consumer's start, and in `eye-admin retention apply`), not on every scheduled run.
pub async fn apply_ttl(store: &Store, config: &RetentionConfig) -> Result<bool, StoreError> {
    if !config.is_configured() || !has_ttl(&store.server_version().await?) {
        return Ok(false);
    }
    let view = match store.cluster_target() {
        None => Table::EventsByType.name().to_owned(),
        Some(_) => format!("{}_local", Table::EventsByType.name()),
    };
    let by_type = store.view_storage(&view).await?;
    for statement in rsql::ttl_statements(config, store.cluster_target(), &by_type) {
        store.retention_alter(statement).await?;
    }
    Ok(true)
}

/// `eye_retention_*`: what retention removed, per table, and when it last ran.
#[derive(Clone)]
pub struct RetentionMetrics {
    pub partitions_dropped: prometheus::IntCounterVec,
    pub rows_removed: prometheus::IntCounterVec,
    pub runs: prometheus::IntCounterVec,
    pub last_run: prometheus::IntGauge,
}

impl RetentionMetrics {
    pub fn new(registry: &prometheus::Registry) -> Self {
        use eye_runtime::telemetry;
        Self {
            partitions_dropped: telemetry::counter_vec(
                registry,
                "eye_retention_partitions_dropped_total",
                "Whole monthly partitions dropped because every row in them had expired, by table.",
                &["table"],
            ),
            rows_removed: telemetry::counter_vec(
                registry,
                "eye_retention_rows_removed_total",
                "Expired rows removed, by table and how (partition: in a dropped partition; delete: by ALTER ... DELETE).",
                &["table", "how"],
            ),
            runs: telemetry::counter_vec(
                registry,
                "eye_retention_runs_total",
                "Retention runs, by result (ok, error).",
                &["result"],
            ),
            last_run: telemetry::gauge(
                registry,
                "eye_retention_last_run_timestamp_seconds",
                "When the last successful retention run started (Unix seconds).",
            ),
        }
    }

    /// Counts a run's outcome.
    pub fn record(&self, outcome: &Result<Plan, StoreError>) {
        match outcome {
            Ok(plan) => {
                self.runs.with_label_values(&["ok"]).inc();
                self.last_run.set(plan.now_us.div_euclid(1_000_000));
                for (t, p) in &plan.tables {
                    let table = t.name();
                    self.partitions_dropped
                        .with_label_values(&[table])
                        .inc_by(p.partitions.len() as u64);
                    self.rows_removed
                        .with_label_values(&[table, "partition"])
                        .inc_by(p.rows_in_partitions());
                    self.rows_removed
                        .with_label_values(&[table, "delete"])
                        .inc_by(p.rows_to_delete);
                }
            }
            Err(_) => self.runs.with_label_values(&["error"]).inc(),
        }
    }
}

#[cfg(test)]
mod tests;
