//! The `Store`: a handle on The Eye's ClickHouse database that runs the statements of
//! [`crate::sql`] and reads their rows.

use crate::config::{ClickHouseConfig, CompressionSetting};
use crate::filters::{
    AggregateFilter, EventFilter, IdentityEventsFilter, OwnerSessionsFilter, RefusedTimeFilter,
    RejectedFilter,
};
use crate::retention::{self, Cutoffs, PartitionStat, RetentionConfig};
use crate::rows::{
    ActorRow, BucketRow, CategoryRow, EventCounts, EventKey, EventRow, EventSpan, LinkRow,
    OwnerSessionRow, RejectedRow, ReplayRow, SessionMeta, SessionRow, SessionStats, StoredCopy,
};
use crate::statement::Statement;
use crate::{migrations, sql};
use eye_model::event::SessionId;
use std::time::Duration;

/// Statements whose text carries a whole batch's keys: above ClickHouse's default 256 KiB.
const LOOKUP_MAX_QUERY_BYTES: &str = "67108864";

/// The most rows any read may return: above every endpoint's largest page (10,000
/// categories, 10,001 buckets, `EYE_QUERY_SESSION_EVENTS_MAX`'s default of 10,000).
pub const MAX_RESULT_ROWS: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// With its causes: a refused certificate is only named deep in the chain.
    #[error("clickhouse: {}", with_causes(.0))]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error(transparent)]
    Config(#[from] sql::InvalidIdentifier),
    #[error(transparent)]
    ClusterDdl(#[from] migrations::ClusterDdlError),
    #[error(transparent)]
    Tls(#[from] crate::http::TlsError),
    /// Retention waited for a table's mutations in vain; the next run takes up what is left.
    #[error("retention: {pending} mutation(s) of {table} still running")]
    MutationsPending { table: &'static str, pending: u64 },
}

/// `e: cause: its cause…`, each text once (wrappers often repeat their source's).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// What travels compressed (LZ4) between The Eye and ClickHouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressed {
    pub inserts: bool,
    pub reads: bool,
}

fn lz4(on: bool) -> clickhouse::Compression {
    if on {
        clickhouse::Compression::Lz4
    } else {
        clickhouse::Compression::None
    }
}

/// A handle on The Eye's ClickHouse database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    client: clickhouse::Client,
    server: clickhouse::Client,
    database: String,
    max_execution_time: Duration,
    /// Event listings without read-time deduplication (see [`Store::with_raw_reads`]).
    raw_reads: bool,
    /// `EYE_CLICKHOUSE_CLUSTER`: the cluster the tables are laid out on, or `None` for one
    /// server (see `docs/cluster.md`).
    cluster: Option<String>,
    compressed: Compressed,
    /// `EYE_RETENTION_*`: what reads leave out as expired ([`Store::with_retention`]).
    retention: Option<std::sync::Arc<RetentionConfig>>,
    /// The instant reads take as now: the wall clock, or a fixed one in tests.
    clock: Option<i64>,
}

impl Store {
    /// A handle with reads uncompressed under `EYE_CLICKHOUSE_COMPRESSION=auto` (the
    /// default); [`Store::connect`] asks the server whether they can be.
    pub fn new(cfg: &ClickHouseConfig) -> Result<Self, StoreError> {
        let database = sql::identifier(&cfg.database)?.to_owned();
        let cluster = match cfg.cluster.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => Some(sql::identifier(name)?.to_owned()),
        };
        // Validation off: ClickHouse 18.16 cannot answer RowBinaryWithNamesAndTypes.
        let compressed = match cfg.compression {
            CompressionSetting::Auto => Compressed {
                inserts: true,
                reads: false,
            },
            CompressionSetting::Lz4 => Compressed {
                inserts: true,
                reads: true,
            },
            CompressionSetting::None => Compressed {
                inserts: false,
                reads: false,
            },
        };
        let server = crate::http::client(cfg)?
            .with_url(&cfg.url)
            .with_user(&cfg.user)
            .with_password(secrecy::ExposeSecret::expose_secret(&cfg.password))
            .with_validation(false)
            .with_compression(lz4(compressed.reads));
        // Cluster mode: an insert into a Distributed table returns once every shard's rows
        // are written (to one replica; replication copies them on), so the consumer's
        // "commit only after the insert" still means stored. And a read's
        // `IN (SELECT … FROM <Distributed>)` runs against each shard's own rows, which hold
        // all of its sessions' owners and identities (`migrations::sharding_key`); 18.16
        // refuses such double-distributed subqueries by default.
        let server = if cluster.is_some() {
            server
                .with_option("insert_distributed_sync", "1")
                .with_option("distributed_product_mode", "local")
        } else {
            server
        };
        let client = server.clone().with_database(&database);
        Ok(Self {
            client,
            server,
            database,
            max_execution_time: Duration::from_millis(cfg.max_execution_time_ms),
            raw_reads: false,
            cluster,
            compressed,
            retention: None,
            clock: None,
        })
    }

    /// [`Store::new`], then, under `EYE_CLICKHOUSE_COMPRESSION=auto`, one compressed
    /// `SELECT version()`: reads are compressed from then on if its answer comes back
    /// whole. ClickHouse 18.16 answers every compressed read (`compress=1`) with an empty
    /// body, so there reads stay uncompressed; its compressed inserts (`decompress=1`) work.
    /// A server that cannot be asked (down at start-up) keeps reads uncompressed: correct
    /// either way, only larger.
    pub async fn connect(cfg: &ClickHouseConfig) -> Result<Self, StoreError> {
        let mut store = Self::new(cfg)?;
        if cfg.compression != CompressionSetting::Auto {
            return Ok(store);
        }
        match store.reads_compress().await {
            Ok((version, on)) => {
                if on {
                    store.server = store.server.with_compression(lz4(true));
                    store.client = store.client.with_compression(lz4(true));
                    store.compressed.reads = true;
                }
                tracing::info!(
                    server_version = %version,
                    compressed_inserts = store.compressed.inserts,
                    compressed_reads = store.compressed.reads,
                    "clickhouse compression"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask ClickHouse whether compressed reads work; reading uncompressed");
            }
        }
        Ok(store)
    }

    /// The server's version, and whether a compressed read of it comes back whole.
    async fn reads_compress(&self) -> Result<(String, bool), StoreError> {
        let version: String = sql::server_version()
            .query(&self.server)
            .fetch_one()
            .await?;
        let compressed = self.server.clone().with_compression(lz4(true));
        let answer = sql::server_version()
            .query(&compressed)
            .fetch_one::<String>()
            .await;
        let whole = answer.as_deref().is_ok_and(|v| *v == version);
        Ok((version, whole))
    }

    /// What travels compressed.
    pub fn compressed(&self) -> Compressed {
        self.compressed
    }

    /// With `true`, event listings return every stored copy of an event, replays included,
    /// instead of one per `event_id`. It switches off the read-time half of deduplication
    /// so the fault-injection suite can show its duplicate check really fails without it.
    pub fn with_raw_reads(mut self, raw: bool) -> Self {
        self.raw_reads = raw;
        self
    }

    /// With `retention`, every read of events and of the quarantine leaves out what has
    /// expired at the time of the read, whether or not it is still stored.
    pub fn with_retention(mut self, retention: RetentionConfig) -> Self {
        self.retention = retention
            .is_configured()
            .then(|| std::sync::Arc::new(retention));
        self
    }

    /// Reads take `now_us` as the present instead of the clock: for tests of the boundary.
    pub fn with_fixed_clock(mut self, now_us: i64) -> Self {
        self.clock = Some(now_us);
        self
    }

    /// The cutoffs reads apply now.
    pub fn cutoffs(&self) -> Cutoffs {
        match &self.retention {
            None => Cutoffs::none(),
            Some(r) => r.cutoffs(
                self.clock
                    .unwrap_or_else(|| eye_model::time::EventTime::now().as_micros()),
            ),
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The cluster the tables are laid out on (`EYE_CLICKHOUSE_CLUSTER`), if any.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// Where retention's `ALTER`s go in cluster mode ([`crate::sql::retention`]).
    pub(crate) fn cluster_target(&self) -> Option<migrations::Cluster<'_>> {
        self.cluster_layout()
    }

    /// The server's version, e.g. `18.16.1`.
    pub async fn server_version(&self) -> Result<String, StoreError> {
        Ok(sql::server_version()
            .query(&self.server)
            .fetch_one()
            .await?)
    }

    /// The table that stores materialized view `view`'s rows: `.inner_id.<uuid>` in an
    /// Atomic database (20.5+), else `.inner.<view>` (18.16's only form).
    pub async fn view_storage(&self, view: &str) -> Result<String, StoreError> {
        let uuid = sql::table_uuid(&self.database, view)
            .query(&self.server)
            .fetch_optional::<String>()
            .await;
        Ok(match uuid {
            Ok(Some(u)) if u != uuid::Uuid::nil().to_string() => format!(".inner_id.{u}"),
            // An Ordinary database.
            Ok(_) => format!(".inner.{view}"),
            // No `uuid` column: a server before 20.5, where every database is Ordinary.
            Err(clickhouse::error::Error::BadResponse(m)) if m.contains("uuid") => {
                format!(".inner.{view}")
            }
            Err(e) => return Err(e.into()),
        })
    }

    /// Retention's per-partition statistics: a maintenance read, without the reads' row
    /// limit (a row per month and category) but with their time limit.
    pub(crate) async fn retention_stats(
        &self,
        statement: Statement,
    ) -> Result<Vec<PartitionStat>, StoreError> {
        Ok(self.read(statement).fetch_all().await?)
    }

    pub(crate) async fn retention_count(&self, statement: Statement) -> Result<u64, StoreError> {
        Ok(self.read(statement).fetch_one().await?)
    }

    /// One retention `ALTER` (a partition drop, a mutation, a TTL).
    pub(crate) async fn retention_alter(&self, statement: Statement) -> Result<(), StoreError> {
        tracing::info!(statement = %statement.render(), "retention");
        Ok(statement.query(&self.client).execute().await?)
    }

    /// Waits until `t` has no mutation left to do, polling, at most `wait`.
    pub(crate) async fn await_mutations(
        &self,
        t: retention::Table,
        wait: Duration,
    ) -> Result<(), StoreError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let statement =
                sql::retention::pending_mutations(t, &self.database, self.cluster_layout());
            let pending: u64 = self.read(statement).fetch_one().await?;
            if pending == 0 {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::MutationsPending {
                    table: t.name(),
                    pending,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn cluster_layout(&self) -> Option<migrations::Cluster<'_>> {
        self.cluster.as_deref().map(|name| migrations::Cluster {
            name,
            database: &self.database,
        })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sql::ping().query(&self.server).fetch_one::<u8>().await?;
        Ok(())
    }

    /// Creates the database and applies every migration not yet recorded. Returns the
    /// versions it applied.
    /// With a cluster, every statement runs `ON CLUSTER` and each table is laid out as
    /// replicated local tables plus a `Distributed` table
    /// ([`migrations::Cluster::statements`]).
    pub async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        let layout = self.cluster_layout();
        match layout {
            Some(c) => sql::create_database_on_cluster(&self.database, c.name)?,
            None => sql::create_database(&self.database)?,
        }
        .query(&self.server)
        .execute()
        .await?;
        match layout {
            Some(c) => {
                for stmt in c.statements(sql::CREATE_MIGRATIONS_TABLE)? {
                    self.apply(0, &stmt).await?;
                }
            }
            None => {
                sql::create_migrations_table()
                    .query(&self.client)
                    .execute()
                    .await?
            }
        }
        let applied: Vec<u32> = sql::applied_migrations()
            .query(&self.client)
            .fetch_all()
            .await?;
        let mut done = Vec::new();
        for m in migrations::MIGRATIONS {
            if applied.contains(&m.version) {
                continue;
            }
            for stmt in migrations::statements(m.sql) {
                let laid_out = match layout {
                    Some(c) => c.statements(&stmt)?,
                    None => vec![stmt],
                };
                for stmt in laid_out {
                    self.apply(m.version, &stmt).await?;
                }
            }
            sql::record_migration(m.version, m.name)
                .query(&self.client)
                .execute()
                .await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
            done.push(m.version);
        }
        Ok(done)
    }

    /// Runs one migration statement; "already exists" counts as applied.
    async fn apply(&self, version: u32, stmt: &str) -> Result<(), StoreError> {
        match sql::migration(stmt).query(&self.client).execute().await {
            Ok(()) => Ok(()),
            Err(e) if migrations::already_applied(&e.to_string()) => {
                tracing::info!(version, error = %e, "statement already applied");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the server can deduplicate a retried insert into a plain MergeTree table
    /// (`insert_deduplication_token`, ClickHouse 22.2 and later; 18.16 cannot).
    pub async fn supports_insert_tokens(&self) -> Result<bool, StoreError> {
        let n: u64 = sql::insert_token_supported()
            .query(&self.server)
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
        if self.cluster.is_some() {
            // Replicated tables deduplicate insert blocks by default
            // (`replicated_deduplication_window`); the token reaches the shards with the
            // insert's settings.
            return Ok(true);
        }
        for table in [
            sql::EVENTS_TABLE,
            sql::REJECTED_TABLE,
            sql::SESSIONS_TABLE,
            sql::LINKS_TABLE,
            sql::ACTORS_TABLE,
        ] {
            sql::insert_dedup_window(table)
                .query(&self.client)
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

    /// Records what became of replayed quarantine records.
    pub async fn insert_replays(&self, rows: &[ReplayRow]) -> Result<(), StoreError> {
        self.insert(sql::REPLAYS_TABLE, rows).await
    }

    pub async fn insert_sessions(&self, rows: &[SessionRow]) -> Result<(), StoreError> {
        self.insert(sql::SESSIONS_TABLE, rows).await
    }

    pub async fn insert_links(&self, rows: &[LinkRow]) -> Result<(), StoreError> {
        self.insert(sql::LINKS_TABLE, rows).await
    }

    pub async fn insert_actors(&self, rows: &[ActorRow]) -> Result<(), StoreError> {
        self.insert(sql::ACTORS_TABLE, rows).await
    }

    pub(crate) async fn insert<T>(&self, table: &str, rows: &[T]) -> Result<(), StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .client
            .clone()
            .with_compression(lz4(self.compressed.inserts))
            .insert::<T>(table)
            .await?;
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
        let wanted: std::collections::HashSet<EventKey<'_>> = keys.iter().copied().collect();
        let client = self
            .client
            .clone()
            .with_option("max_query_size", LOOKUP_MAX_QUERY_BYTES);
        let copies: Vec<StoredCopy> = sql::stored_copies(keys).query(&client).fetch_all().await?;
        Ok(copies
            .into_iter()
            .filter(|c| wanted.contains(&(c.session_id.as_str(), c.event_id, c.client_ts_us)))
            .collect())
    }

    /// Events matching the filter, one per event_id, in time order.
    pub async fn events(&self, f: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        let statement = if self.cluster.is_some() {
            sql::events_on_cluster(f, self.raw_reads, &self.cutoffs())
        } else {
            sql::events(f, self.raw_reads, &self.cutoffs())
        };
        Ok(self.read_listing(statement).fetch_all().await?)
    }

    /// One page of an export: [`Store::events`] (the same statement, in cluster mode too)
    /// under the export's own time limit, `limit` instead of the store's
    /// `EYE_CLICKHOUSE_MAX_EXECUTION_TIME_MS` (see [`crate::export`]).
    pub async fn export_page(
        &self,
        f: &EventFilter,
        limit: Duration,
    ) -> Result<Vec<EventRow>, StoreError> {
        let statement = if self.cluster.is_some() {
            sql::events_on_cluster(f, self.raw_reads, &self.cutoffs())
        } else {
            sql::events(f, self.raw_reads, &self.cutoffs())
        };
        Ok(self
            .read_listing_within(statement, limit)
            .fetch_all()
            .await?)
    }

    /// [`sql::event_span`], under the export's time limit.
    pub async fn event_span(
        &self,
        f: &EventFilter,
        limit: Duration,
    ) -> Result<EventSpan, StoreError> {
        Ok(self
            .read_within(sql::event_span(f, &self.cutoffs()), limit)
            .fetch_one()
            .await?)
    }

    /// How many distinct events match the filter's conditions (its cursor, order, offset
    /// and limit aside).
    pub async fn event_count(&self, f: &EventFilter) -> Result<u64, StoreError> {
        Ok(self
            .read(sql::event_count(f, &self.cutoffs()))
            .fetch_one()
            .await?)
    }

    /// Quarantined records holding one of the filter's codes, newest first.
    pub async fn refused_for_time(
        &self,
        f: &RefusedTimeFilter,
    ) -> Result<Vec<RejectedRow>, StoreError> {
        let statement = if self.cluster.is_some() {
            sql::refused_for_time_on_cluster(f, &self.cutoffs())
        } else {
            sql::refused_for_time(f, &self.cutoffs())
        };
        Ok(self.read_listing(statement).fetch_all().await?)
    }

    /// Every event type stored, with counts of distinct events; at most `limit` types.
    pub async fn categories(&self, limit: u32) -> Result<Vec<CategoryRow>, StoreError> {
        Ok(self
            .read(sql::categories(limit, &self.cutoffs()))
            .fetch_all()
            .await?)
    }

    /// Quarantined records in arrival order, one per rejection_id.
    pub async fn rejected(&self, f: &RejectedFilter) -> Result<Vec<RejectedRow>, StoreError> {
        let statement = if self.cluster.is_some() {
            sql::rejected_on_cluster(f, &self.cutoffs())
        } else {
            sql::rejected(f, &self.cutoffs())
        };
        Ok(self.read_listing(statement).fetch_all().await?)
    }

    /// The latest replay outcome of each of `ids` that was ever replayed.
    pub async fn replay_outcomes(&self, ids: &[uuid::Uuid]) -> Result<Vec<ReplayRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.read(sql::replay_outcomes(ids)).fetch_all().await?)
    }

    /// A session's metadata, or `None` when no start or end record has arrived.
    pub async fn session_meta(
        &self,
        session: &SessionId,
    ) -> Result<Option<SessionMeta>, StoreError> {
        Ok(self
            .read(sql::session_meta(session.as_str()))
            .fetch_optional()
            .await?)
    }

    /// How many distinct events a session has, and their first and last time.
    pub async fn session_stats(&self, session: &SessionId) -> Result<SessionStats, StoreError> {
        Ok(self
            .read(sql::session_stats(session.as_str(), &self.cutoffs()))
            .fetch_one()
            .await?)
    }

    /// An owner's sessions with metadata and event statistics, newest start first.
    pub async fn owner_sessions(
        &self,
        f: &OwnerSessionsFilter,
    ) -> Result<Vec<OwnerSessionRow>, StoreError> {
        Ok(self
            .read(sql::owner_sessions(f, &self.cutoffs()))
            .fetch_all()
            .await?)
    }

    /// The buckets of an aggregation that hold events, in time order; at most `limit`.
    pub async fn aggregate(&self, f: &AggregateFilter) -> Result<Vec<BucketRow>, StoreError> {
        Ok(self
            .read(sql::aggregate(f, &self.cutoffs()))
            .fetch_all()
            .await?)
    }

    /// A session's events in time order, one per event_id.
    pub async fn session_events(
        &self,
        session: &SessionId,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        let statement = if self.cluster.is_some() {
            sql::session_events_on_cluster(session.as_str(), limit, &self.cutoffs())
        } else {
            sql::session_events(session.as_str(), limit, &self.cutoffs())
        };
        Ok(self.read_listing(statement).fetch_all().await?)
    }

    /// The ids linked directly to any of `user_ids` (by identify or alias), each once,
    /// sorted; at most `limit`.
    pub async fn linked_ids(
        &self,
        user_ids: &[&str],
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .read(sql::linked_ids(user_ids, limit))
            .fetch_all()
            .await?)
    }

    /// Whether some stored event names `id` as its userId or anonymousId.
    pub async fn actor_seen(&self, id: &str) -> Result<bool, StoreError> {
        let n: u64 = self
            .read(sql::actor_seen(id, &self.cutoffs()))
            .fetch_one()
            .await?;
        Ok(n > 0)
    }

    /// A page of the events of a set of ids, in listing order, one per event.
    pub async fn identity_events(
        &self,
        f: &IdentityEventsFilter,
    ) -> Result<Vec<EventRow>, StoreError> {
        if f.actor_ids.is_empty() {
            return Ok(Vec::new());
        }
        let statement = if self.cluster.is_some() {
            sql::identity_events_on_cluster(f, self.raw_reads, &self.cutoffs())
        } else {
            sql::identity_events(f, self.raw_reads, &self.cutoffs())
        };
        Ok(self.read_listing(statement).fetch_all().await?)
    }

    pub async fn event_counts(&self) -> Result<EventCounts, StoreError> {
        Ok(self.read(sql::event_counts()).fetch_one().await?)
    }

    /// Every read carries a time limit, so one heavy question cannot occupy the server, and
    /// a result limit behind the LIMIT each statement has: a statement that lost its LIMIT
    /// fails instead of streaming a table. (ClickHouse applies it to the final result only,
    /// not to subqueries; checked on 18.16 and 26.)
    pub(crate) fn read(&self, statement: Statement) -> clickhouse::query::Query {
        self.read_within(statement, self.max_execution_time)
    }

    /// [`Store::read`] without the result limit: for the few statements whose answer must
    /// be whole however long (a subject's sessions, the suppression list).
    pub(crate) fn unbounded(&self, statement: Statement) -> clickhouse::query::Query {
        let secs = self.max_execution_time.as_secs().max(1);
        statement
            .query(&self.client)
            .with_option("max_execution_time", secs.to_string())
    }

    /// The client on the database, for statements that are no read (mutations).
    pub(crate) fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// [`Store::read`] with its own time limit (whole seconds, at least 1).
    fn read_within(&self, statement: Statement, limit: Duration) -> clickhouse::query::Query {
        let secs = limit.as_secs().max(1);
        statement
            .query(&self.client)
            .with_option("max_execution_time", secs.to_string())
            .with_option("max_result_rows", MAX_RESULT_ROWS.to_string())
            .with_option("result_overflow_mode", "throw")
    }

    /// [`Store::read`] for a listing (`… LIMIT 1 BY … LIMIT n`). In cluster mode the
    /// statement is one of `sql`'s `*_on_cluster` forms, whose inner listing runs whole on
    /// each shard: see the note on cluster mode in [`crate::sql`].
    fn read_listing(&self, statement: Statement) -> clickhouse::query::Query {
        self.read_listing_within(statement, self.max_execution_time)
    }

    fn read_listing_within(
        &self,
        statement: Statement,
        limit: Duration,
    ) -> clickhouse::query::Query {
        let query = self.read_within(statement, limit);
        if self.cluster.is_some() {
            query.with_option("distributed_group_by_no_merge", "1")
        } else {
            query
        }
    }
}
