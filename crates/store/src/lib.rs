//! The ClickHouse store: connection, migrations, the event row, inserts and reads.
//! SQL text lives in [`sql`]; this module only binds values and runs it.

pub mod config;
pub mod migrations;
pub mod sql;

use crate::config::ClickHouseConfig;
use eye_model::aggregate::{Aggregation, Granularity};
use eye_model::event::SessionId;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

/// One stored event, in the column order of [`sql::EVENT_COLUMNS`].
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct EventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub session_id: String,
    pub category: String,
    pub name: String,
    /// Event time, corrected for client clock skew.
    pub ts_us: i64,
    pub received_at_us: i64,
    /// The event's `data` object as JSON text, exactly as produced by ingest.
    pub data: String,
    pub value: Option<f64>,
    /// Event time as the client sent it.
    pub client_ts_us: i64,
    pub sent_at_us: Option<i64>,
}

/// A copy of an event already in storage: its identity and the times that tell one copy
/// from another (see [`Store::stored_copies`]).
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Serialize, Deserialize)]
pub struct StoredCopy {
    pub client_ts_us: i64,
    pub session_id: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub ts_us: i64,
    pub received_at_us: i64,
}

/// An event's identity: its session, its id and the time the client gave it (a retry
/// repeats all three).
pub type EventKey<'a> = (&'a str, Uuid, i64);

/// Statements whose text carries a whole batch's keys: above ClickHouse's default 256 KiB.
const LOOKUP_MAX_QUERY_BYTES: &str = "67108864";

/// One quarantined record, in the column order of [`sql::REJECTED_COLUMNS`].
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub struct RejectedRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub rejection_id: Uuid,
    pub received_at_us: i64,
    pub source: String,
    pub client: String,
    pub codes: Vec<String>,
    /// JSON array of `{field, code, message}`.
    pub reasons: String,
    /// The payload, cut to `wire::QUARANTINE_RAW_MAX_BYTES` when longer.
    pub raw: String,
    pub event_id: String,
    pub session_id: String,
    pub category: String,
    pub name: String,
    /// The original payload's length in bytes, and its SHA-256 (hex).
    pub raw_bytes: u64,
    pub raw_sha256: String,
}

/// One session lifecycle record, in the column order of [`sql::SESSION_COLUMNS`].
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Serialize, Deserialize)]
pub struct SessionRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub update_id: Uuid,
    pub session_id: String,
    pub kind: String,
    pub user_id: String,
    pub machine_id: String,
    pub org_id: String,
    pub at_us: i64,
    pub received_at_us: i64,
}

/// A session's metadata, merged from its lifecycle records.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct SessionMeta {
    pub session_id: String,
    pub user_id: String,
    pub machine_id: String,
    pub org_id: String,
    pub started_at_us: i64,
    pub ended_at_us: i64,
    pub starts: u64,
    pub ends: u64,
}

/// One event type seen in storage.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct CategoryRow {
    pub category: String,
    pub name: String,
    pub events: u64,
    pub first_us: i64,
    pub last_us: i64,
}

/// Who started a session, as recorded by its start record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    User,
    Machine,
    Org,
}

impl OwnerKind {
    /// The `owner_kind` stored in `sessions_by_owner` (migration 0006).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Machine => "machine",
            Self::Org => "org",
        }
    }
}

/// A session's events: how many distinct ones, and the first and last event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct SessionStats {
    pub events: u64,
    pub first_us: i64,
    pub last_us: i64,
}

/// One session of an owner: its merged metadata and its event statistics.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct OwnerSessionRow {
    pub session_id: String,
    pub user_id: String,
    pub machine_id: String,
    pub org_id: String,
    pub started_at_us: i64,
    pub ended_at_us: i64,
    pub starts: u64,
    pub ends: u64,
    pub events: u64,
    pub first_us: i64,
    pub last_us: i64,
}

impl OwnerSessionRow {
    pub fn split(self) -> (SessionMeta, SessionStats) {
        (
            SessionMeta {
                session_id: self.session_id,
                user_id: self.user_id,
                machine_id: self.machine_id,
                org_id: self.org_id,
                started_at_us: self.started_at_us,
                ended_at_us: self.ended_at_us,
                starts: self.starts,
                ends: self.ends,
            },
            SessionStats {
                events: self.events,
                first_us: self.first_us,
                last_us: self.last_us,
            },
        )
    }
}

/// An owner's sessions, newest start first.
#[derive(Debug, Clone)]
pub struct OwnerSessionsFilter {
    pub kind: OwnerKind,
    pub owner_id: String,
    /// Keyset cursor: the last `(started_at_us, session_id)` already returned.
    pub after: Option<(i64, String)>,
    pub limit: u32,
}

/// A bucketed aggregation of one event type's values.
#[derive(Debug, Clone)]
pub struct AggregateFilter {
    pub category: String,
    pub name: String,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub granularity: Granularity,
    pub aggregation: Aggregation,
    /// An IANA zone name, checked by the caller.
    pub tz: String,
    pub limit: u32,
}

/// One bucket that holds events.
#[derive(Debug, Clone, Copy, PartialEq, clickhouse::Row, Deserialize)]
pub struct BucketRow {
    /// The bucket's first instant, Unix seconds.
    pub start_s: i64,
    pub value: f64,
    pub events: u64,
    pub first_us: i64,
}

/// A filter on events, in time order.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub session_id: Option<String>,
    /// Events of every session this owner started.
    pub owner: Option<(OwnerKind, String)>,
    pub category: Option<String>,
    pub name: Option<String>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// Keyset cursor: the last `(ts_us, event_id, session_id)` already returned.
    pub after: Option<(i64, Uuid, String)>,
    pub descending: bool,
    pub limit: u32,
}

/// A filter on the quarantine, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct RejectedFilter {
    pub reason: Option<String>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// Keyset cursor: the last `(received_at_us, rejection_id)` already returned.
    pub after: Option<(i64, Uuid)>,
    pub limit: u32,
}

impl EventRow {
    /// Bytes this row adds to a batch; close to its RowBinary size.
    pub fn approx_bytes(&self) -> usize {
        16 + 8
            + 8
            + 9
            + 8
            + 9
            + self.session_id.len()
            + self.category.len()
            + self.name.len()
            + self.data.len()
    }
}

impl RejectedRow {
    pub fn approx_bytes(&self) -> usize {
        16 + 8
            + self.raw.len()
            + self.raw_sha256.len()
            + self.reasons.len()
            + self.client.len()
            + self.session_id.len()
            + 64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clickhouse::Row, Deserialize)]
pub struct EventCounts {
    pub stored_rows: u64,
    pub distinct_events: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error(transparent)]
    Config(#[from] sql::InvalidIdentifier),
}

/// The partition bound `toDateTime(?)` for a time in µs. `DateTime` is a UInt32 of seconds,
/// and 18.16's `toDateTime` wraps values outside it (`toDateTime(-1)` is 2106): clamped, the
/// bound stays a superset of the exact `ts_us` condition next to it.
fn partition_second(us: i64) -> i64 {
    us.div_euclid(1_000_000).clamp(0, i64::from(u32::MAX))
}

/// The most rows any read may return: above every endpoint's largest page (10,000
/// categories, 10,001 buckets, `EYE_QUERY_SESSION_EVENTS_MAX`'s default of 10,000).
pub const MAX_RESULT_ROWS: u64 = 100_000;

/// A handle on The Eye's ClickHouse database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    client: clickhouse::Client,
    server: clickhouse::Client,
    database: String,
    max_execution_time: Duration,
    /// Event listings without read-time deduplication (see [`Store::with_raw_reads`]).
    raw_reads: bool,
}

impl Store {
    pub fn new(cfg: &ClickHouseConfig) -> Result<Self, StoreError> {
        let database = sql::identifier(&cfg.database)?.to_owned();
        // Validation off: ClickHouse 18.16 cannot answer RowBinaryWithNamesAndTypes.
        // Compression off: 18.16 returned empty SELECT bodies with the crate's LZ4.
        let server = clickhouse::Client::default()
            .with_url(&cfg.url)
            .with_user(&cfg.user)
            .with_password(secrecy::ExposeSecret::expose_secret(&cfg.password))
            .with_validation(false)
            .with_compression(clickhouse::Compression::None);
        let client = server.clone().with_database(&database);
        Ok(Self {
            client,
            server,
            database,
            max_execution_time: Duration::from_millis(cfg.max_execution_time_ms),
            raw_reads: false,
        })
    }

    /// With `true`, event listings return every stored copy of an event, replays included,
    /// instead of one per `event_id`. It switches off the read-time half of deduplication
    /// so the fault-injection suite can show its duplicate check really fails without it.
    pub fn with_raw_reads(mut self, raw: bool) -> Self {
        self.raw_reads = raw;
        self
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.server.query(sql::PING).fetch_one::<u8>().await?;
        Ok(())
    }

    /// Creates the database and applies every migration not yet recorded. Returns the
    /// versions it applied.
    pub async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        self.server
            .query(&sql::create_database(&self.database)?)
            .execute()
            .await?;
        self.client
            .query(sql::CREATE_MIGRATIONS_TABLE)
            .execute()
            .await?;
        let applied: Vec<u32> = self
            .client
            .query(sql::APPLIED_MIGRATIONS)
            .fetch_all()
            .await?;
        let mut done = Vec::new();
        for m in migrations::MIGRATIONS {
            if applied.contains(&m.version) {
                continue;
            }
            for stmt in migrations::statements(m.sql) {
                match self.client.query(&stmt).execute().await {
                    Ok(()) => {}
                    Err(e) if migrations::already_applied(&e.to_string()) => {
                        tracing::info!(version = m.version, error = %e, "statement already applied");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            self.client
                .query(sql::RECORD_MIGRATION)
                .bind(m.version)
                .bind(m.name)
                .execute()
                .await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
            done.push(m.version);
        }
        Ok(done)
    }

    /// Whether the server can deduplicate a retried insert into a plain MergeTree table
    /// (`insert_deduplication_token`, ClickHouse 22.2 and later; 18.16 cannot).
    pub async fn supports_insert_tokens(&self) -> Result<bool, StoreError> {
        let n: u64 = self
            .server
            .query(sql::INSERT_TOKEN_SUPPORTED)
            .fetch_one()
            .await?;
        Ok(n > 0)
    }

    /// Turns on block deduplication for the tables the consumer writes, where the server
    /// supports it. Idempotent, so it runs at every start.
    pub async fn enable_insert_deduplication(&self) -> Result<bool, StoreError> {
        if !self.supports_insert_tokens().await? {
            return Ok(false);
        }
        for table in [sql::EVENTS_TABLE, sql::REJECTED_TABLE, sql::SESSIONS_TABLE] {
            self.client
                .query(&sql::insert_dedup_window(table))
                .execute()
                .await?;
        }
        Ok(true)
    }

    /// This store with every insert carrying `token` as its deduplication token: an insert
    /// repeated with the same token is skipped by the server (see
    /// [`Store::enable_insert_deduplication`]). Only for servers that support it.
    pub fn with_insert_token(&self, token: &str) -> Self {
        let mut s = self.clone();
        s.client = s.client.with_option("insert_deduplication_token", token);
        s
    }

    /// Inserts rows as one INSERT; returns only once ClickHouse has confirmed it.
    pub async fn insert_events(&self, rows: &[EventRow]) -> Result<(), StoreError> {
        self.insert(sql::EVENTS_TABLE, rows).await
    }

    pub async fn insert_rejected(&self, rows: &[RejectedRow]) -> Result<(), StoreError> {
        self.insert(sql::REJECTED_TABLE, rows).await
    }

    pub async fn insert_sessions(&self, rows: &[SessionRow]) -> Result<(), StoreError> {
        self.insert(sql::SESSIONS_TABLE, rows).await
    }

    async fn insert<T>(&self, table: &str, rows: &[T]) -> Result<(), StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self.client.insert::<T>(table).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// The stored copies of the events identified by `keys`: what the consumer checks a
    /// batch against, so that only the first accepted copy of an event is ever stored.
    pub async fn stored_copies(
        &self,
        keys: &[EventKey<'_>],
    ) -> Result<Vec<StoredCopy>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        fn distinct<T: Ord>(mut v: Vec<T>) -> Vec<T> {
            v.sort_unstable();
            v.dedup();
            v
        }
        let times = distinct(keys.iter().map(|k| k.2).collect());
        let sessions = distinct(keys.iter().map(|k| k.0).collect());
        let ids = distinct(keys.iter().map(|k| k.1.to_string()).collect());
        let wanted: std::collections::HashSet<EventKey<'_>> = keys.iter().copied().collect();
        let copies: Vec<StoredCopy> = self
            .client
            .clone()
            .with_option("max_query_size", LOOKUP_MAX_QUERY_BYTES)
            .query(sql::STORED_COPIES)
            .bind(times)
            .bind(sessions)
            .bind(ids)
            .fetch_all()
            .await?;
        Ok(copies
            .into_iter()
            .filter(|c| wanted.contains(&(c.session_id.as_str(), c.event_id, c.client_ts_us)))
            .collect())
    }

    /// Events matching the filter, one per event_id, in time order.
    pub async fn events(&self, f: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        Ok(self.events_query(f).fetch_all().await?)
    }

    fn events_query(&self, f: &EventFilter) -> clickhouse::query::Query {
        let mut q = self.read(&sql::events(sql::EventFilters {
            session: f.session_id.is_some(),
            owner: f.owner.is_some(),
            category: f.category.is_some(),
            name: f.name.is_some(),
            from: f.from_us.is_some(),
            to: f.to_us.is_some(),
            after: f.after.is_some(),
            descending: f.descending,
            raw: self.raw_reads,
        }));
        if let Some(session) = &f.session_id {
            q = q.bind(session.as_str());
        }
        if let Some((kind, id)) = &f.owner {
            q = q.bind(kind.as_str()).bind(id.as_str());
        }
        for text in [&f.category, &f.name].into_iter().flatten() {
            q = q.bind(text.as_str());
        }
        for t in [f.from_us, f.to_us].into_iter().flatten() {
            q = q.bind(t).bind(partition_second(t));
        }
        if let Some((ts, id, session)) = &f.after {
            let id = id.to_string();
            q = q
                .bind(*ts)
                .bind(*ts)
                .bind(id.as_str())
                .bind(id.as_str())
                .bind(session.as_str());
        }
        q.bind(f.limit)
    }

    /// Every event type stored, with counts of distinct events; at most `limit` types.
    pub async fn categories(&self, limit: u32) -> Result<Vec<CategoryRow>, StoreError> {
        Ok(self.read(sql::CATEGORIES).bind(limit).fetch_all().await?)
    }

    /// Quarantined records in arrival order, one per rejection_id.
    pub async fn rejected(&self, f: &RejectedFilter) -> Result<Vec<RejectedRow>, StoreError> {
        Ok(self.rejected_query(f).fetch_all().await?)
    }

    fn rejected_query(&self, f: &RejectedFilter) -> clickhouse::query::Query {
        let mut q = self.read(&sql::rejected(
            f.reason.is_some(),
            f.from_us.is_some(),
            f.to_us.is_some(),
            f.after.is_some(),
        ));
        if let Some(r) = &f.reason {
            q = q.bind(r.as_str());
        }
        if let Some(from) = f.from_us {
            q = q.bind(from);
        }
        if let Some(to) = f.to_us {
            q = q.bind(to);
        }
        if let Some((ts, id)) = f.after {
            q = q.bind(ts).bind(ts).bind(id.to_string());
        }
        q.bind(f.limit)
    }

    /// A session's metadata, or `None` when no start or end record has arrived.
    pub async fn session_meta(
        &self,
        session: &SessionId,
    ) -> Result<Option<SessionMeta>, StoreError> {
        Ok(self
            .session_meta_query(session.as_str())
            .fetch_optional()
            .await?)
    }

    fn session_meta_query(&self, session: &str) -> clickhouse::query::Query {
        self.read(&sql::session_meta()).bind(session)
    }

    /// How many distinct events a session has, and their first and last time.
    pub async fn session_stats(&self, session: &SessionId) -> Result<SessionStats, StoreError> {
        Ok(self
            .session_stats_query(session.as_str())
            .fetch_one()
            .await?)
    }

    fn session_stats_query(&self, session: &str) -> clickhouse::query::Query {
        self.read(&sql::session_stats()).bind(session)
    }

    /// An owner's sessions with metadata and event statistics, newest start first.
    pub async fn owner_sessions(
        &self,
        f: &OwnerSessionsFilter,
    ) -> Result<Vec<OwnerSessionRow>, StoreError> {
        Ok(self.owner_sessions_query(f).fetch_all().await?)
    }

    fn owner_sessions_query(&self, f: &OwnerSessionsFilter) -> clickhouse::query::Query {
        let mut q = self.read(&sql::owner_sessions(f.after.is_some()));
        for _ in 0..2 {
            q = q.bind(f.kind.as_str()).bind(f.owner_id.as_str());
        }
        if let Some((started, id)) = &f.after {
            q = q.bind(*started).bind(*started).bind(id.as_str());
        }
        q.bind(f.limit)
    }

    /// The buckets of an aggregation that hold events, in time order; at most `limit`.
    pub async fn aggregate(&self, f: &AggregateFilter) -> Result<Vec<BucketRow>, StoreError> {
        Ok(self.aggregate_query(f).fetch_all().await?)
    }

    fn aggregate_query(&self, f: &AggregateFilter) -> clickhouse::query::Query {
        let mut q = self.read(&sql::aggregate(
            f.granularity,
            f.aggregation,
            f.from_us.is_some(),
            f.to_us.is_some(),
        ));
        for _ in 0..sql::aggregate_zone_binds(f.granularity) {
            q = q.bind(f.tz.as_str());
        }
        q = q.bind(f.category.as_str()).bind(f.name.as_str());
        for t in [f.from_us, f.to_us].into_iter().flatten() {
            q = q.bind(t).bind(partition_second(t));
        }
        q.bind(f.limit)
    }

    /// A session's events in time order, one per event_id.
    pub async fn session_events(
        &self,
        session: &SessionId,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        Ok(self
            .session_events_query(session.as_str(), limit)
            .fetch_all()
            .await?)
    }

    fn session_events_query(&self, session: &str, limit: u32) -> clickhouse::query::Query {
        self.read(&sql::session_events()).bind(session).bind(limit)
    }

    /// Every statement this store sends, with sample values bound exactly as at run time.
    /// `eye-admin sql` prints them so that `make test` can run them on current ClickHouse.
    pub fn sample_statements(&self) -> Vec<(String, String)> {
        let render = |q: clickhouse::query::Query| q.sql_display().to_string();
        let fixed: Vec<(&str, String)> = vec![
            ("ping", render(self.server.query(sql::PING))),
            (
                "insert_token_supported",
                render(self.server.query(sql::INSERT_TOKEN_SUPPORTED)),
            ),
            (
                "insert_dedup_window_events",
                render(
                    self.client
                        .query(&sql::insert_dedup_window(sql::EVENTS_TABLE)),
                ),
            ),
            (
                "insert_dedup_window_rejected",
                render(
                    self.client
                        .query(&sql::insert_dedup_window(sql::REJECTED_TABLE)),
                ),
            ),
            (
                "insert_dedup_window_sessions",
                render(
                    self.client
                        .query(&sql::insert_dedup_window(sql::SESSIONS_TABLE)),
                ),
            ),
            (
                "create_migrations_table",
                render(self.client.query(sql::CREATE_MIGRATIONS_TABLE)),
            ),
            (
                "applied_migrations",
                render(self.client.query(sql::APPLIED_MIGRATIONS)),
            ),
            (
                "record_migration",
                render(
                    self.client
                        .query(sql::RECORD_MIGRATION)
                        .bind(999u32)
                        .bind("0999_sample"),
                ),
            ),
            (
                "session_events",
                render(self.session_events_query("sql-check-session", 100)),
            ),
            ("event_counts", render(self.read(&sql::event_counts()))),
            (
                "rejected_all",
                render(self.rejected_query(&RejectedFilter {
                    limit: 100,
                    ..RejectedFilter::default()
                })),
            ),
            (
                "rejected_filtered",
                render(self.rejected_query(&RejectedFilter {
                    reason: Some("invalid_timestamp".into()),
                    from_us: Some(0),
                    to_us: Some(4_000_000_000_000_000),
                    after: Some((1, Uuid::nil())),
                    limit: 100,
                })),
            ),
            (
                "session_meta",
                render(self.session_meta_query("sql-check-session")),
            ),
            (
                "categories",
                render(self.read(sql::CATEGORIES).bind(100u32)),
            ),
            (
                "events_by_type_page",
                render(self.events_query(&EventFilter {
                    category: Some("c".into()),
                    name: Some("n".into()),
                    from_us: Some(0),
                    to_us: Some(10_000_000),
                    // The first sample event of deploy/sqlcheck.py: the page starts after it.
                    after: Some((
                        1_000_000,
                        Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001),
                        "sql-check-session".into(),
                    )),
                    limit: 100,
                    ..EventFilter::default()
                })),
            ),
            (
                "session_stats",
                render(self.session_stats_query("sql-check-session")),
            ),
            (
                "stored_copies",
                render(
                    self.client
                        .query(sql::STORED_COPIES)
                        // Vectors, as at run time: the crate writes arrays for them
                        // (a Rust array would be written as a tuple).
                        .bind(vec![1_000_000i64, 500_000])
                        .bind(vec!["sql-check-session", "other"])
                        .bind(vec![
                            "00000000-0000-7000-8000-000000000001",
                            "00000000-0000-7000-8000-000000000009",
                        ]),
                ),
            ),
            (
                "user_sessions",
                render(self.owner_sessions_query(&OwnerSessionsFilter {
                    kind: OwnerKind::User,
                    owner_id: "u".into(),
                    after: None,
                    limit: 100,
                })),
            ),
            (
                "user_sessions_after",
                render(self.owner_sessions_query(&OwnerSessionsFilter {
                    kind: OwnerKind::User,
                    owner_id: "u".into(),
                    after: Some((1_000_000, "sql-check-session".into())),
                    limit: 100,
                })),
            ),
            (
                "machine_events",
                render(self.events_query(&EventFilter {
                    owner: Some((OwnerKind::Machine, "m".into())),
                    from_us: Some(1_500_000),
                    limit: 100,
                    ..EventFilter::default()
                })),
            ),
            (
                "events_time_range",
                render(self.events_query(&EventFilter {
                    from_us: Some(0),
                    to_us: Some(2_500_000),
                    limit: 100,
                    ..EventFilter::default()
                })),
            ),
            (
                "events_name_only",
                render(self.events_query(&EventFilter {
                    name: Some("n".into()),
                    descending: true,
                    limit: 100,
                    ..EventFilter::default()
                })),
            ),
            (
                "session_events_page_desc",
                render(self.events_query(&EventFilter {
                    session_id: Some("sql-check-session".into()),
                    descending: true,
                    limit: 2,
                    ..EventFilter::default()
                })),
            ),
        ];
        let mut out: Vec<(String, String)> =
            fixed.into_iter().map(|(n, q)| (n.to_owned(), q)).collect();
        // Every bucket expression with one aggregation, and every aggregation with one
        // bucket expression, over the sample metric of deploy/sqlcheck.py.
        let sample = |granularity, aggregation| AggregateFilter {
            category: "metric".into(),
            name: "cpu".into(),
            from_us: Some(1_774_656_000_000_000), // 2026-03-28T00:00:00Z
            to_us: Some(1_775_001_600_000_000),   // 2026-04-01T00:00:00Z
            granularity,
            aggregation,
            tz: "Europe/Paris".into(),
            limit: 10_001,
        };
        let shapes = Granularity::ALL
            .into_iter()
            .map(|g| (g, Aggregation::Avg))
            .chain(Aggregation::ALL.into_iter().map(|a| (Granularity::Day, a)));
        for (g, a) in shapes {
            let name = format!("aggregate_{}_{}", g.as_str(), a.as_str());
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, render(self.aggregate_query(&sample(g, a)))));
            }
        }
        out
    }

    pub async fn event_counts(&self) -> Result<EventCounts, StoreError> {
        Ok(self.read(&sql::event_counts()).fetch_one().await?)
    }

    /// Every read carries a time limit, so one heavy question cannot occupy the server, and
    /// a result limit behind the LIMIT each statement has: a statement that lost its LIMIT
    /// fails instead of streaming a table. (ClickHouse applies it to the final result only,
    /// not to subqueries; checked on 18.16 and 26.)
    fn read(&self, sql: &str) -> clickhouse::query::Query {
        let secs = self.max_execution_time.as_secs().max(1);
        self.client
            .query(sql)
            .with_option("max_execution_time", secs.to_string())
            .with_option("max_result_rows", MAX_RESULT_ROWS.to_string())
            .with_option("result_overflow_mode", "throw")
    }
}
