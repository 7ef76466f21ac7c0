//! Every SQL statement The Eye sends to ClickHouse, each built with the values it binds.
//!
//! User input only ever arrives as bound values, each added with the fragment that holds
//! its placeholder ([`crate::statement`]). The only text spliced into SQL is the database
//! name from configuration, which [`identifier`] checks first, this module's table names,
//! and fixed fragments chosen by closed enums (a bucket expression, an aggregate function,
//! a sort direction). Each statement runs on ClickHouse 18.16 and on current releases: the
//! chdb check in `make test` runs them on ClickHouse 26 (`eye-admin sql`).

pub mod retention;
#[cfg(test)]
mod tests;

use crate::filters::{
    AggregateFilter, EventFilter, IdentityEventsFilter, OwnerKind, OwnerSessionsFilter,
    RefusedTimeFilter, RejectedFilter,
};
use crate::retention::Cutoffs;
use crate::rows::EventKey;
use crate::statement::{sql, Statement, Value};
use eye_model::aggregate::{Aggregation, Granularity};
use retention::{kept_events, kept_rejected, maybe_kept};
use uuid::Uuid;

/// Columns of [`crate::EventRow`], in its field order (RowBinary is positional).
pub const EVENT_COLUMNS: &str =
    "event_id, session_id, category, name, ts_us, received_at_us, data, value, client_ts_us, sent_at_us";

/// Columns of [`crate::RejectedRow`], in its field order.
pub const REJECTED_COLUMNS: &str =
    "rejection_id, received_at_us, source, client, codes, reasons, raw, \
     event_id, session_id, category, name, raw_bytes, raw_sha256";

/// Columns of [`crate::LinkRow`], in its field order.
pub const LINK_COLUMNS: &str = "user_id, anonymous_id, via, event_id, session_id, ts_us";

/// Columns of [`crate::ActorRow`], in its field order.
pub const ACTOR_COLUMNS: &str = "actor_id, ts_us, event_id, session_id, client_ts_us";

pub const EVENTS_TABLE: &str = "events";
/// Ids linked to users, ordered by user (migration 0009).
pub const LINKS_TABLE: &str = "identity_links";
/// Events under each id they name, ordered by id then time (migration 0009).
pub const ACTORS_TABLE: &str = "identity_actors";
/// The same events ordered by (category, name, ts_us, event_id); see migration 0005.
pub const EVENTS_BY_TYPE: &str = "events_by_type";
pub const REJECTED_TABLE: &str = "rejected_events";
pub const SESSIONS_TABLE: &str = "sessions";
/// The outcome of each replay of a quarantined record (migration 0010).
pub const REPLAYS_TABLE: &str = "rejected_replays";

/// Columns of [`crate::ReplayRow`], in its field order.
pub const REPLAY_COLUMNS: &str =
    "rejection_id, replay_id, replayed_at_us, replayed_by, result, codes, reasons";

/// A session's metadata from its lifecycle records, whatever order they arrived in: the
/// earliest start, the latest end, and the attributes of the latest-received start.
const SESSION_META_COLUMNS: &str = "session_id, \
     argMaxIf(user_id, received_at_us, kind = 'start') AS user_id, \
     argMaxIf(machine_id, received_at_us, kind = 'start') AS machine_id, \
     argMaxIf(org_id, received_at_us, kind = 'start') AS org_id, \
     minIf(at_us, kind = 'start') AS started_at_us, \
     maxIf(at_us, kind = 'end') AS ended_at_us, \
     countIf(kind = 'start') AS starts, \
     countIf(kind = 'end') AS ends";

pub fn ping() -> Statement {
    Statement::new("SELECT 1")
}

/// The server's version, e.g. `18.16.1`.
pub fn server_version() -> Statement {
    Statement::new("SELECT version()")
}

/// A table's UUID as text (all zeros outside an Atomic database). Servers before 20.5
/// have no `uuid` column and refuse the statement.
pub fn table_uuid(database: &str, table: &str) -> Statement {
    Statement::new("SELECT toString(uuid) FROM system.tables WHERE ").push(
        sql!("database = ? AND name = ?"),
        [database.into(), table.into()],
    )
}

pub fn create_database(name: &str) -> Result<Statement, InvalidIdentifier> {
    Ok(Statement::new("CREATE DATABASE IF NOT EXISTS ").push_text(identifier(name)?))
}

/// `CREATE DATABASE … ON CLUSTER`: the database on every server of the cluster.
pub fn create_database_on_cluster(
    name: &str,
    cluster: &str,
) -> Result<Statement, InvalidIdentifier> {
    Ok(create_database(name)?
        .push_text(" ON CLUSTER ")
        .push_text(identifier(cluster)?))
}

/// The text of [`create_migrations_table`], which cluster mode lays out like a
/// migration's `CREATE TABLE` ([`crate::migrations::Cluster::statements`]).
pub const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
     (version UInt32, name String, applied_at DateTime) \
     ENGINE = MergeTree() ORDER BY version";

pub fn create_migrations_table() -> Statement {
    Statement::new(CREATE_MIGRATIONS_TABLE)
}

pub fn applied_migrations() -> Statement {
    Statement::new("SELECT DISTINCT version FROM schema_migrations ORDER BY version")
}

/// One statement of a migration file ([`crate::migrations::statements`]): fixed text
/// compiled into the binary, which binds nothing.
pub fn migration(text: &str) -> Statement {
    Statement::new(text)
}

pub fn record_migration(version: u32, name: &str) -> Statement {
    Statement::new("INSERT INTO schema_migrations (version, name, applied_at) ")
        .push(sql!("VALUES (?, ?, now())"), [version.into(), name.into()])
}

/// 1 when the server has `insert_deduplication_token` (22.2 and later), else 0.
pub fn insert_token_supported() -> Statement {
    Statement::new("SELECT count() FROM system.settings WHERE name = 'insert_deduplication_token'")
}

/// How many recent insert blocks a plain MergeTree table remembers, so that an insert
/// repeated with the same deduplication token is skipped. `table` is one of this module's
/// constants, never user input.
pub fn insert_dedup_window(table: &'static str) -> Statement {
    Statement::new("ALTER TABLE ")
        .push_text(table)
        .push_text(" MODIFY SETTING non_replicated_deduplication_window = 1000")
}

/// `WHERE <column> IN` the sessions an owner (user, machine or org) started: a key prefix
/// of `sessions_by_owner`.
fn owned_sessions(s: Statement, kind: OwnerKind, owner_id: &str) -> Statement {
    s.push(
        sql!("session_id IN (SELECT session_id FROM sessions_by_owner WHERE owner_kind = ? AND owner_id = ?)"),
        [kind.as_str().into(), owner_id.into()],
    )
}

/// A session's metadata from its lifecycle records.
pub fn session_meta(session: &str) -> Statement {
    Statement::new(&format!(
        "SELECT {SESSION_META_COLUMNS} FROM {SESSIONS_TABLE} WHERE "
    ))
    .push(sql!("session_id = ?"), [session.into()])
    .push_text(" GROUP BY session_id")
}

/// Distinct events of a session and their first and last time; one row (of zeros) even
/// when the session has no events.
pub fn session_stats(session: &str, cut: &Cutoffs) -> Statement {
    let s = Statement::new(&format!(
        "SELECT uniqExact(event_id, client_ts_us) AS events, min(ts_us) AS first_us, max(ts_us) AS last_us \
         FROM {EVENTS_TABLE} WHERE "
    ));
    kept_events(s.push(sql!("session_id = ?"), [session.into()]), cut)
}

/// An owner's sessions, newest start first, each with its metadata and event statistics,
/// resumable after a cursor. Both sides of the join read key prefixes: `sessions` and
/// `events` are ordered by session_id first.
pub fn owner_sessions(f: &OwnerSessionsFilter, cut: &Cutoffs) -> Statement {
    let s = Statement::new(&format!(
        "SELECT session_id, user_id, machine_id, org_id, started_at_us, ended_at_us, starts, ends, \
         events, first_us, last_us FROM \
         (SELECT {SESSION_META_COLUMNS} FROM {SESSIONS_TABLE} WHERE "
    ));
    let s = owned_sessions(s, f.kind, &f.owner_id).push_text(&format!(
        " GROUP BY session_id) AS meta \
         ANY LEFT JOIN \
         (SELECT session_id, uniqExact(event_id, client_ts_us) AS events, min(ts_us) AS first_us, max(ts_us) AS last_us \
          FROM {EVENTS_TABLE} WHERE "
    ));
    let mut s = kept_events(owned_sessions(s, f.kind, &f.owner_id), cut)
        .push_text(" GROUP BY session_id) AS stats USING session_id ");
    if let Some((started, id)) = &f.after {
        s = s.push(
            sql!("WHERE (started_at_us < ? OR (started_at_us = ? AND session_id < ?)) "),
            [(*started).into(), (*started).into(), id.into()],
        );
    }
    s.push_text("ORDER BY started_at_us DESC, session_id DESC ")
        .push(sql!("LIMIT ?"), [f.limit.into()])
}

/// Every (category, name) pair with its distinct events and first and last event time.
/// Reads the type ordering, so each pair's rows are contiguous.
pub fn categories(limit: u32, cut: &Cutoffs) -> Statement {
    let s = Statement::new(&format!(
        "SELECT category, name, uniqExact(session_id, event_id, client_ts_us) AS events, \
         min(ts_us) AS first_us, max(ts_us) AS last_us \
         FROM {EVENTS_BY_TYPE} WHERE 1 = 1"
    ));
    kept_events(s, cut)
        .push_text(" GROUP BY category, name ORDER BY category, name ")
        .push(sql!("LIMIT ?"), [limit.into()])
}

/// The partition bound `toDateTime(?)` for a time in µs. `DateTime` is a UInt32 of seconds,
/// and 18.16's `toDateTime` wraps values outside it (`toDateTime(-1)` is 2106): clamped, the
/// bound stays a superset of the exact `ts_us` condition next to it.
pub(crate) fn partition_second(us: i64) -> i64 {
    us.div_euclid(1_000_000).clamp(0, i64::from(u32::MAX))
}

/// A time range binds each bound twice: microseconds for the key column `ts_us`, then
/// seconds for the partition column `ts`. Without the second, a range on a type index
/// with no `name` still touches every monthly partition's boundary granules; with it,
/// ClickHouse skips the months outside the range. (A `to` of `t` µs admits `ts` up to the
/// second holding `t`, a superset the exact `ts_us` condition then trims.)
fn time_range(mut s: Statement, from_us: Option<i64>, to_us: Option<i64>) -> Statement {
    if let Some(t) = from_us {
        s = s.push(
            sql!(" AND ts_us >= ? AND ts >= toDateTime(?)"),
            [t.into(), partition_second(t).into()],
        );
    }
    if let Some(t) = to_us {
        s = s.push(
            sql!(" AND ts_us < ? AND ts <= toDateTime(?)"),
            [t.into(), partition_second(t).into()],
        );
    }
    s
}

/// Events matching the filter, one per event (unless `raw`), ordered by (ts_us, event_id,
/// session_id) and resumable after a cursor, or a page of them after `offset` matches.
/// Session and owner filters read `events` (session prefix); the others `events_by_type`,
/// where a category is a key prefix and a name or time range alone is found per (category,
/// name) range of the key, of which there are few. `raw` keeps every stored copy, replays
/// included: only for the fault-injection suite's negative control
/// (`EYE_QUERY_DEDUPLICATE=false`).
pub fn events(f: &EventFilter, raw: bool, cut: &Cutoffs) -> Statement {
    let s = event_conditions(f, EVENT_COLUMNS, cut);
    let s = after_event(s, f.after.as_ref(), f.descending);
    let s = listing_order(s, f.descending, raw);
    if f.offset > 0 {
        s.push(sql!("LIMIT ?, ?"), [f.offset.into(), f.limit.into()])
    } else {
        s.push(sql!("LIMIT ?"), [f.limit.into()])
    }
}

/// How many distinct events (by session_id, event_id, client_ts_us, the identity the
/// listing's `LIMIT 1 BY` keeps one row of) match the filter's conditions; its cursor,
/// order, offset and limit play no part. One row, 0 when nothing matches.
pub fn event_count(f: &EventFilter, cut: &Cutoffs) -> Statement {
    event_conditions(f, "uniqExact(session_id, event_id, client_ts_us)", cut)
}

/// How many stored copies match the filter after its cursor, and their first and last
/// `ts_us` ([`crate::EventSpan`]); order, offset and limit play no part. An export sizes
/// its time windows by it ([`crate::export`]).
pub fn event_span(f: &EventFilter, cut: &Cutoffs) -> Statement {
    let s = event_conditions(
        f,
        "count() AS copies, min(ts_us) AS first_us, max(ts_us) AS last_us",
        cut,
    );
    after_event(s, f.after.as_ref(), f.descending)
}

/// `SELECT <columns> FROM <the table serving the filters> WHERE 1 = 1 AND <each filter>`.
fn event_conditions(f: &EventFilter, columns: &str, cut: &Cutoffs) -> Statement {
    let table = if f.session_id.is_some() || f.owner.is_some() {
        EVENTS_TABLE
    } else {
        EVENTS_BY_TYPE
    };
    let mut s = Statement::new(&format!("SELECT {columns} FROM {table} WHERE 1 = 1"));
    if let Some(session) = &f.session_id {
        s = s.push(sql!(" AND session_id = ?"), [session.into()]);
    }
    if let Some((kind, id)) = &f.owner {
        s = owned_sessions(s.push_text(" AND "), *kind, id);
    }
    if let Some(category) = &f.category {
        s = s.push(sql!(" AND category = ?"), [category.into()]);
    }
    if let Some(name) = &f.name {
        s = s.push(sql!(" AND name = ?"), [name.into()]);
    }
    kept_events(time_range(s, f.from_us, f.to_us), cut)
}

/// ` AND` the rows after a keyset cursor over `(ts_us, event_id, session_id)`, in the
/// direction of the listing.
fn after_event(s: Statement, after: Option<&(i64, Uuid, String)>, descending: bool) -> Statement {
    let Some((ts, id, session)) = after else {
        return s;
    };
    let values = [
        (*ts).into(),
        (*ts).into(),
        (*id).into(),
        (*id).into(),
        session.into(),
    ];
    if descending {
        s.push(
            sql!(
                " AND (ts_us < ? OR (ts_us = ? AND (event_id < toUUID(?) \
                 OR (event_id = toUUID(?) AND session_id < ?))))"
            ),
            values,
        )
    } else {
        s.push(
            sql!(
                " AND (ts_us > ? OR (ts_us = ? AND (event_id > toUUID(?) \
                 OR (event_id = toUUID(?) AND session_id > ?))))"
            ),
            values,
        )
    }
}

/// An event listing's order, and (unless `raw`) one row per event.
fn listing_order(s: Statement, descending: bool, raw: bool) -> Statement {
    let dedup = if raw {
        ""
    } else {
        "LIMIT 1 BY session_id, event_id, client_ts_us "
    };
    s.push_text(&format!(" ORDER BY {} {dedup}", event_order(descending)))
}

/// The event listings' `ORDER BY` keys.
fn event_order(descending: bool) -> String {
    let dir = if descending { "DESC" } else { "ASC" };
    format!("ts_us {dir}, event_id {dir}, session_id {dir}")
}

// ---- Cluster mode: listings exact over `Distributed` tables.
//
// A listing is `ORDER BY … LIMIT 1 BY <identity> LIMIT n`. Over a `Distributed` table,
// ClickHouse 18.16 has each shard sort and cut its rows at `LIMIT n` (the "preliminary
// LIMIT") *before* `LIMIT 1 BY`, which only the initiator applies: a shard holding
// unmerged copies of an event among its first n rows sends fewer than n distinct events,
// and the page comes back short (seen on the local cluster: `LIMIT 1 BY session_id,
// event_id LIMIT 3` over rows 1, 1, 2, 3 of one shard answered 1, 2, 4, skipping 3).
// So in cluster mode each listing runs whole on every shard (`distributed_group_by_no_merge
// = 1`, which [`crate::Store`] sets on these statements only) and the initiator merges the
// shards' pages: `SELECT * FROM (<listing, LIMIT offset + n>) ORDER BY … LIMIT offset, n`.
// Exact, because every copy of an event (or of a quarantine record) lives on one shard
// (see [`crate::migrations::sharding_key`]): each shard's `LIMIT 1 BY` sees all of an
// event's copies, and the first n distinct rows overall are among the union of each
// shard's first n. The cost: at most (shards × page) rows reach the initiator.

/// `SELECT * FROM (inner) ORDER BY order LIMIT offset, limit`, `inner` being a listing
/// run on each shard with `LIMIT offset + limit`.
fn merged_pages(inner: Statement, order: &str, offset: u64, limit: u32) -> Statement {
    let s = Statement::new("SELECT * FROM (")
        .append(inner)
        .push_text(&format!(") ORDER BY {order} "));
    if offset > 0 {
        s.push(sql!("LIMIT ?, ?"), [offset.into(), limit.into()])
    } else {
        s.push(sql!("LIMIT ?"), [limit.into()])
    }
}

/// [`events`] for cluster mode: each shard's first `offset + limit`, merged.
pub fn events_on_cluster(f: &EventFilter, raw: bool, cut: &Cutoffs) -> Statement {
    let per_shard = EventFilter {
        offset: 0,
        limit: page_end(f.offset, f.limit),
        ..f.clone()
    };
    merged_pages(
        events(&per_shard, raw, cut),
        &event_order(f.descending),
        f.offset,
        f.limit,
    )
}

/// [`identity_events`] for cluster mode.
pub fn identity_events_on_cluster(f: &IdentityEventsFilter, raw: bool, cut: &Cutoffs) -> Statement {
    merged_pages(
        identity_events(f, raw, cut),
        &event_order(f.descending),
        0,
        f.limit,
    )
}

/// [`session_events`] for cluster mode (a session lives on one shard; the others answer
/// nothing).
pub fn session_events_on_cluster(session: &str, limit: u32, cut: &Cutoffs) -> Statement {
    merged_pages(
        session_events(session, limit, cut),
        "ts_us, event_id",
        0,
        limit,
    )
}

/// [`rejected`] for cluster mode.
pub fn rejected_on_cluster(f: &RejectedFilter, cut: &Cutoffs) -> Statement {
    merged_pages(rejected(f, cut), "received_at_us, rejection_id", 0, f.limit)
}

/// [`refused_for_time`] for cluster mode.
pub fn refused_for_time_on_cluster(f: &RefusedTimeFilter, cut: &Cutoffs) -> Statement {
    merged_pages(
        refused_for_time(f, cut),
        "received_at_us DESC, rejection_id DESC",
        0,
        f.limit,
    )
}

/// `offset + limit` as a row count a `LIMIT` takes (a u32 page, saturated).
fn page_end(offset: u64, limit: u32) -> u32 {
    u32::try_from(offset.saturating_add(u64::from(limit))).unwrap_or(u32::MAX)
}

/// The ids linked to any of `user_ids`, each once, sorted; at most `limit`. A key prefix
/// of `identity_links` per user id.
pub fn linked_ids(user_ids: &[&str], limit: u32) -> Statement {
    Statement::new(&format!(
        "SELECT DISTINCT anonymous_id FROM {LINKS_TABLE} WHERE "
    ))
    .push(
        sql!("user_id IN (SELECT arrayJoin(?))"),
        [user_ids.to_vec().into()],
    )
    .push_text(" ORDER BY anonymous_id ")
    .push(sql!("LIMIT ?"), [limit.into()])
}

/// 1 when some stored event names `id` as its userId or anonymousId, else 0; reads the
/// first granule of the id's key prefix at most.
pub fn actor_seen(id: &str, cut: &Cutoffs) -> Statement {
    let s = Statement::new(&format!(
        "SELECT count() FROM (SELECT 1 FROM {ACTORS_TABLE} WHERE "
    ))
    .push(sql!("actor_id = ?"), [id.into()]);
    maybe_kept(s, cut).push_text(" LIMIT 1)")
}

/// A page of the events of a set of ids, in the event listings' order, once each. The page
/// is picked in `identity_actors`, where each id's events are a key range in time order:
/// its first `limit` events after the cursor (an event naming two of the ids counts once).
/// `events` is then read for exactly those (session_id, event_id, client_ts_us), through
/// their sessions: a key prefix there. `raw` keeps every stored copy, as in [`events`].
pub fn identity_events(f: &IdentityEventsFilter, raw: bool, cut: &Cutoffs) -> Statement {
    let page = |s: Statement| {
        let s = s
            .push_text(&format!(
                "SELECT session_id, event_id, client_ts_us FROM {ACTORS_TABLE} WHERE "
            ))
            .push(
                sql!("actor_id IN (SELECT arrayJoin(?))"),
                [f.actor_ids.clone().into()],
            );
        let s = maybe_kept(s, cut);
        listing_order(
            after_event(s, f.after.as_ref(), f.descending),
            f.descending,
            false,
        )
        .push(sql!("LIMIT ?"), [f.limit.into()])
    };
    let s = Statement::new(&format!(
        "SELECT {EVENT_COLUMNS} FROM {EVENTS_TABLE} WHERE session_id IN (SELECT session_id FROM ("
    ));
    let s = page(s).push_text(")) AND (session_id, event_id, client_ts_us) IN (");
    let s = page(s).push_text(")");
    let s = kept_events(after_event(s, f.after.as_ref(), f.descending), cut);
    listing_order(s, f.descending, raw).push(sql!("LIMIT ?"), [f.limit.into()])
}

/// The copies already stored of some events, by identity (session_id, event_id, the
/// client's timestamp), so the consumer can keep the first accepted copy and drop later
/// ones. Reads `event_keys` (migration 0008), whose key starts with the client's timestamp:
/// only the granules of the batch's times are read, in every month. Binds the distinct
/// client timestamps, session ids and event ids (as text), each as an array; a row matching
/// all three lists may pair values of different events, which the caller sorts out.
pub fn stored_copies(keys: &[EventKey<'_>]) -> Statement {
    fn distinct<T: Ord>(mut v: Vec<T>) -> Vec<T> {
        v.sort_unstable();
        v.dedup();
        v
    }
    let times = distinct(keys.iter().map(|k| k.2).collect());
    let sessions = distinct(keys.iter().map(|k| k.0).collect());
    let ids = distinct(keys.iter().map(|k| k.1.to_string()).collect());
    Statement::new(
        "SELECT client_ts_us, session_id, event_id, ts_us, received_at_us FROM event_keys WHERE ",
    )
    .push(
        sql!(
            "client_ts_us IN (SELECT toInt64(arrayJoin(?))) AND session_id IN (SELECT arrayJoin(?)) \
             AND event_id IN (SELECT toUUID(arrayJoin(?)))"
        ),
        [times.into(), sessions.into(), ids.into()],
    )
}

/// The quarantine in arrival order, one row per rejection_id, optionally filtered and
/// resumable after a cursor.
pub fn rejected(f: &RejectedFilter, cut: &Cutoffs) -> Statement {
    let mut s = Statement::new(&format!(
        "SELECT {REJECTED_COLUMNS} FROM {REJECTED_TABLE} WHERE 1 = 1"
    ));
    if let Some(reason) = &f.reason {
        s = s.push(sql!(" AND has(codes, ?)"), [reason.into()]);
    }
    if let Some(from) = f.from_us {
        s = s.push(sql!(" AND received_at_us >= ?"), [from.into()]);
    }
    if let Some(to) = f.to_us {
        s = s.push(sql!(" AND received_at_us < ?"), [to.into()]);
    }
    if let Some(client) = &f.client {
        s = s.push(sql!(" AND client = ?"), [client.into()]);
    }
    if let Some(category) = &f.category {
        s = s.push(sql!(" AND category = ?"), [category.into()]);
    }
    if let Some(name) = &f.name {
        s = s.push(sql!(" AND name = ?"), [name.into()]);
    }
    if let Some((ts, id)) = f.after {
        s = s.push(
            sql!(" AND (received_at_us > ? OR (received_at_us = ? AND rejection_id > toUUID(?)))"),
            [ts.into(), ts.into(), id.into()],
        );
    }
    kept_rejected(s, cut)
        .push_text(" ORDER BY received_at_us, rejection_id LIMIT 1 BY rejection_id ")
        .push(sql!("LIMIT ?"), [f.limit.into()])
}

/// The latest replay outcome of each of `ids` that has one: a key look-up of
/// `rejected_replays`, one row per record (its row with the latest `replayed_at_us`).
pub fn replay_outcomes(ids: &[Uuid]) -> Statement {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    Statement::new(&format!(
        "SELECT rejection_id, \
         argMax(replay_id, replayed_at_us) AS last_replay_id, \
         max(replayed_at_us) AS last_at_us, \
         argMax(replayed_by, replayed_at_us) AS last_by, \
         argMax(result, replayed_at_us) AS last_result, \
         argMax(codes, replayed_at_us) AS last_codes, \
         argMax(reasons, replayed_at_us) AS last_reasons \
         FROM {REPLAYS_TABLE} WHERE "
    ))
    .push(
        sql!("rejection_id IN (SELECT toUUID(arrayJoin(?)))"),
        [ids.into()],
    )
    .push_text(" GROUP BY rejection_id")
}

/// Quarantined records holding any of the filter's codes, newest first, one per
/// rejection_id, optionally of one session. The quarantine is ordered by arrival time, so
/// this reads it newest first until the limit: no index serves a code (as for
/// `/v1/rejected?reason=`). The caller checks which field each code was given to.
pub fn refused_for_time(f: &RefusedTimeFilter, cut: &Cutoffs) -> Statement {
    let mut s = Statement::new(&format!(
        "SELECT {REJECTED_COLUMNS} FROM {REJECTED_TABLE} WHERE "
    ))
    .push(sql!("hasAny(codes, ?)"), [f.codes.clone().into()]);
    if let Some(session) = &f.session_id {
        s = s.push(sql!(" AND session_id = ?"), [session.into()]);
    }
    kept_rejected(s, cut)
        .push_text(" ORDER BY received_at_us DESC, rejection_id DESC LIMIT 1 BY rejection_id ")
        .push(sql!("LIMIT ?"), [f.limit.into()])
}

/// The bucket holding `ts` in the zone `tz`. Calendar buckets (week, month, year) are
/// dates in the zone; their first instant is that date's midnight in the zone.
fn bucket_start(s: Statement, g: Granularity, tz: &str) -> Statement {
    let zone = || Value::from(tz);
    match g {
        Granularity::Minute => s.push(sql!("toStartOfMinute(ts, ?)"), [zone()]),
        Granularity::Hour => s.push(sql!("toStartOfHour(ts, ?)"), [zone()]),
        Granularity::Day => s.push(sql!("toStartOfDay(ts, ?)"), [zone()]),
        Granularity::Week => s.push(sql!("toDateTime(toMonday(ts, ?), ?)"), [zone(), zone()]),
        Granularity::Month => s.push(
            sql!("toDateTime(toStartOfMonth(ts, ?), ?)"),
            [zone(), zone()],
        ),
        Granularity::Year => s.push(
            sql!("toDateTime(toStartOfYear(ts, ?), ?)"),
            [zone(), zone()],
        ),
        Granularity::None => s.push_text("0"),
    }
}

fn aggregation(a: Aggregation) -> &'static str {
    match a {
        Aggregation::Avg => "avg(value)",
        Aggregation::Min => "min(value)",
        Aggregation::Max => "max(value)",
        Aggregation::Sum => "sum(value)",
        Aggregation::Count => "count()",
        Aggregation::P50 => "quantileExact(0.5)(value)",
        Aggregation::P90 => "quantileExact(0.9)(value)",
        Aggregation::P95 => "quantileExact(0.95)(value)",
        Aggregation::P99 => "quantileExact(0.99)(value)",
    }
}

/// Events of one (category, name), one row per event, aggregated per bucket: the
/// bucket's first instant (Unix seconds), the value, the events aggregated and the first
/// event time. Reads a key prefix of `events_by_type`. Every group holds at least one
/// value, so the aggregate is never null. `HAVING` drops the one row 18.16 returns for an
/// empty set when the key is the constant of `Granularity::None` (newer releases return
/// none).
pub fn aggregate(f: &AggregateFilter, cut: &Cutoffs) -> Statement {
    let s = bucket_start(Statement::new("SELECT toInt64("), f.granularity, &f.tz);
    let s = s
        .push_text(&format!(
            ") AS start_s, toFloat64(assumeNotNull({})) AS value, \
             count() AS events, min(ts_us) AS first_us \
             FROM (SELECT session_id, event_id, client_ts_us, ts, ts_us, value \
             FROM {EVENTS_BY_TYPE} WHERE ",
            aggregation(f.aggregation)
        ))
        .push(
            sql!("category = ? AND name = ?"),
            [(&f.category).into(), (&f.name).into()],
        );
    let mut s = kept_events(time_range(s, f.from_us, f.to_us), cut);
    if f.aggregation.needs_value() {
        s = s.push_text(" AND isNotNull(value)");
    }
    s.push_text(
        " LIMIT 1 BY session_id, event_id, client_ts_us) \
         GROUP BY start_s HAVING events > 0 ORDER BY start_s ",
    )
    .push(sql!("LIMIT ?"), [f.limit.into()])
}

/// A session's events, ordered by event time, ties by event_id; `LIMIT 1 BY` keeps one row
/// per event whether or not ReplacingMergeTree has merged replays yet.
pub fn session_events(session: &str, limit: u32, cut: &Cutoffs) -> Statement {
    let s = Statement::new(&format!(
        "SELECT {EVENT_COLUMNS} FROM {EVENTS_TABLE} WHERE "
    ))
    .push(sql!("session_id = ?"), [session.into()]);
    kept_events(s, cut)
        .push_text(" ORDER BY ts_us, event_id LIMIT 1 BY event_id, client_ts_us ")
        .push(sql!("LIMIT ?"), [limit.into()])
}

/// Rows stored against distinct events: the difference is the replayed copies not yet
/// merged away. Used by operators and by the tests that prove exactly-once reads.
pub fn event_counts() -> Statement {
    Statement::new(&format!(
        "SELECT count() AS stored_rows, uniqExact(session_id, event_id, client_ts_us) AS distinct_events \
         FROM {EVENTS_TABLE}"
    ))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid ClickHouse identifier: use letters, digits and '_', not starting with a digit")]
pub struct InvalidIdentifier(pub String);

/// Checks a configured name before it is spliced into SQL.
pub fn identifier(name: &str) -> Result<&str, InvalidIdentifier> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if ok {
        Ok(name)
    } else {
        Err(InvalidIdentifier(name.to_owned()))
    }
}
