//! Every SQL statement The Eye sends to ClickHouse lives here.
//!
//! User input only ever arrives as bound values (`?`, escaped by the `clickhouse` crate);
//! the only text spliced into SQL is the database name from configuration, which
//! [`identifier`] checks first, and fixed fragments chosen by closed enums (a bucket
//! expression, an aggregate function). Each statement runs on ClickHouse 18.16 and on current
//! releases: the chdb check in `make test` runs them on ClickHouse 26.

use eye_model::aggregate::{Aggregation, Granularity};

/// Columns of [`super::EventRow`], in its field order (RowBinary is positional).
pub const EVENT_COLUMNS: &str =
    "event_id, session_id, category, name, ts_us, received_at_us, data, value, client_ts_us, sent_at_us";

/// Columns of [`super::RejectedRow`], in its field order.
pub const REJECTED_COLUMNS: &str =
    "rejection_id, received_at_us, source, client, codes, reasons, raw, \
     event_id, session_id, category, name, raw_bytes, raw_sha256";

pub const EVENTS_TABLE: &str = "events";
/// The same events ordered by (category, name, ts_us, event_id); see migration 0005.
pub const EVENTS_BY_TYPE: &str = "events_by_type";
pub const REJECTED_TABLE: &str = "rejected_events";
pub const SESSIONS_TABLE: &str = "sessions";

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

/// Binds: session_id.
pub fn session_meta() -> String {
    format!("SELECT {SESSION_META_COLUMNS} FROM {SESSIONS_TABLE} WHERE session_id = ? GROUP BY session_id")
}

/// Binds: session_id. Distinct events of a session and their first and last time; one row
/// (of zeros) even when the session has no events.
pub fn session_stats() -> String {
    format!(
        "SELECT uniqExact(event_id, client_ts_us) AS events, min(ts_us) AS first_us, max(ts_us) AS last_us \
         FROM {EVENTS_TABLE} WHERE session_id = ?"
    )
}

/// The sessions an owner (user, machine or org) started: a key prefix of
/// `sessions_by_owner`. Binds: owner_kind, owner_id.
const OWNED_SESSIONS: &str =
    "SELECT session_id FROM sessions_by_owner WHERE owner_kind = ? AND owner_id = ?";

/// An owner's sessions, newest start first, each with its metadata and event statistics.
/// Binds: owner_kind, owner_id (twice: once per side of the join), then
/// (started_at_us, started_at_us, session_id) after a cursor, then the limit. Both sides
/// read key prefixes: `sessions` and `events` are ordered by session_id first.
pub fn owner_sessions(after: bool) -> String {
    let cursor = if after {
        "WHERE (started_at_us < ? OR (started_at_us = ? AND session_id < ?)) "
    } else {
        ""
    };
    format!(
        "SELECT session_id, user_id, machine_id, org_id, started_at_us, ended_at_us, starts, ends, \
         events, first_us, last_us FROM \
         (SELECT {SESSION_META_COLUMNS} FROM {SESSIONS_TABLE} \
          WHERE session_id IN ({OWNED_SESSIONS}) GROUP BY session_id) AS meta \
         ANY LEFT JOIN \
         (SELECT session_id, uniqExact(event_id, client_ts_us) AS events, min(ts_us) AS first_us, max(ts_us) AS last_us \
          FROM {EVENTS_TABLE} WHERE session_id IN ({OWNED_SESSIONS}) GROUP BY session_id) AS stats \
         USING session_id \
         {cursor}ORDER BY started_at_us DESC, session_id DESC LIMIT ?"
    )
}

/// Every (category, name) pair with its distinct events and first and last event time.
/// Reads the type ordering, so each pair's rows are contiguous.
pub const CATEGORIES: &str =
    "SELECT category, name, uniqExact(session_id, event_id, client_ts_us) AS events, \
     min(ts_us) AS first_us, max(ts_us) AS last_us \
     FROM events_by_type GROUP BY category, name ORDER BY category, name LIMIT ?";

/// A time range binds each bound twice: microseconds for the key column `ts_us`, then
/// seconds for the partition column `ts`. Without the second, a range on a type index
/// with no `name` still touches every monthly partition's boundary granules; with it,
/// ClickHouse skips the months outside the range. (A `to` of `t` µs admits `ts` up to the
/// second holding `t`, a superset the exact `ts_us` condition then trims.)
const FROM: &str = "ts_us >= ? AND ts >= toDateTime(?)";
const TO: &str = "ts_us < ? AND ts <= toDateTime(?)";

/// Which filters an event listing has; each present filter binds one value (`from` and
/// `to` two, see [`FROM`]; the cursor three), in the order of the fields here, then the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventFilters {
    pub session: bool,
    /// Events of the sessions an owner started (binds owner_kind, owner_id).
    pub owner: bool,
    pub category: bool,
    pub name: bool,
    pub from: bool,
    pub to: bool,
    pub after: bool,
    pub descending: bool,
    /// Every stored copy, replays included: no `LIMIT 1 BY`. Only for the
    /// fault-injection suite's negative control (`EYE_QUERY_DEDUPLICATE=false`).
    pub raw: bool,
}

/// Events matching the filters, one per event (unless `raw`), ordered by (ts_us, event_id,
/// session_id) and
/// resumable after a cursor. Session and owner filters read `events` (session prefix);
/// the others `events_by_type`, where a category is a key prefix and a name or time range
/// alone is found per (category, name) range of the key, of which there are few.
pub fn events(f: EventFilters) -> String {
    let table = if f.session || f.owner {
        EVENTS_TABLE
    } else {
        EVENTS_BY_TYPE
    };
    let owned = format!("session_id IN ({OWNED_SESSIONS})");
    let mut conditions = vec!["1 = 1"];
    if f.session {
        conditions.push("session_id = ?");
    }
    if f.owner {
        conditions.push(&owned);
    }
    if f.category {
        conditions.push("category = ?");
    }
    if f.name {
        conditions.push("name = ?");
    }
    if f.from {
        conditions.push(FROM);
    }
    if f.to {
        conditions.push(TO);
    }
    let dir = if f.descending { "DESC" } else { "ASC" };
    if f.after {
        conditions.push(if f.descending {
            "(ts_us < ? OR (ts_us = ? AND (event_id < toUUID(?) \
             OR (event_id = toUUID(?) AND session_id < ?))))"
        } else {
            "(ts_us > ? OR (ts_us = ? AND (event_id > toUUID(?) \
             OR (event_id = toUUID(?) AND session_id > ?))))"
        });
    }
    let dedup = if f.raw {
        ""
    } else {
        "LIMIT 1 BY session_id, event_id, client_ts_us "
    };
    format!(
        "SELECT {EVENT_COLUMNS} FROM {table} WHERE {} \
         ORDER BY ts_us {dir}, event_id {dir}, session_id {dir} {dedup}LIMIT ?",
        conditions.join(" AND ")
    )
}

/// The copies already stored of some events, by identity (session_id, event_id, the
/// client's timestamp), so the consumer can keep the first accepted copy and drop later
/// ones. Reads `event_keys` (migration 0008), whose key starts with the client's timestamp:
/// only the granules of the batch's times are read, in every month. Binds: client
/// timestamps (array), session ids (array), event ids as text (array); a row matching all
/// three lists may pair values of different events, which the caller sorts out.
pub const STORED_COPIES: &str = "SELECT client_ts_us, session_id, event_id, ts_us, received_at_us \
     FROM event_keys \
     WHERE client_ts_us IN (SELECT toInt64(arrayJoin(?))) AND session_id IN (SELECT arrayJoin(?)) \
     AND event_id IN (SELECT toUUID(arrayJoin(?)))";

/// 1 when the server has `insert_deduplication_token` (22.2 and later), else 0.
pub const INSERT_TOKEN_SUPPORTED: &str =
    "SELECT count() FROM system.settings WHERE name = 'insert_deduplication_token'";

/// How many recent insert blocks a plain MergeTree table remembers, so that an insert
/// repeated with the same deduplication token is skipped. `table` is one of this module's
/// constants, never user input.
pub fn insert_dedup_window(table: &str) -> String {
    format!("ALTER TABLE {table} MODIFY SETTING non_replicated_deduplication_window = 1000")
}

/// The quarantine in arrival order, optionally filtered. Binds, in order and only for the
/// filters present: reason, from_us, to_us, (cursor_us, cursor_us, cursor_id), then limit.
pub fn rejected(reason: bool, from: bool, to: bool, after: bool) -> String {
    let mut conditions = vec!["1 = 1"];
    if reason {
        conditions.push("has(codes, ?)");
    }
    if from {
        conditions.push("received_at_us >= ?");
    }
    if to {
        conditions.push("received_at_us < ?");
    }
    if after {
        conditions
            .push("(received_at_us > ? OR (received_at_us = ? AND rejection_id > toUUID(?)))");
    }
    format!(
        "SELECT {REJECTED_COLUMNS} FROM {REJECTED_TABLE} WHERE {} \
         ORDER BY received_at_us, rejection_id LIMIT 1 BY rejection_id LIMIT ?",
        conditions.join(" AND ")
    )
}

/// The bucket holding `ts` in a time zone, as a ClickHouse expression, and how many times
/// it binds the zone. Calendar buckets (week, month, year) are dates in the zone; their
/// first instant is that date's midnight in the zone.
fn bucket_start(g: Granularity) -> (&'static str, usize) {
    match g {
        Granularity::Minute => ("toStartOfMinute(ts, ?)", 1),
        Granularity::Hour => ("toStartOfHour(ts, ?)", 1),
        Granularity::Day => ("toStartOfDay(ts, ?)", 1),
        Granularity::Week => ("toDateTime(toMonday(ts, ?), ?)", 2),
        Granularity::Month => ("toDateTime(toStartOfMonth(ts, ?), ?)", 2),
        Granularity::Year => ("toDateTime(toStartOfYear(ts, ?), ?)", 2),
        Granularity::None => ("0", 0),
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

/// Times an aggregation binds the time zone, first of all its values.
pub fn aggregate_zone_binds(g: Granularity) -> usize {
    bucket_start(g).1
}

/// Events of one (category, name), one row per event, aggregated per bucket: the
/// bucket's first instant (Unix seconds), the value, the events aggregated and the first
/// event time. Reads a key prefix of `events_by_type`. Binds: the zone
/// ([`aggregate_zone_binds`] times), category, name, then from and to when present (each
/// as µs and s, see [`FROM`]),
/// then the limit. Every group holds at least one value, so the aggregate is never null.
/// `HAVING` drops the one row 18.16 returns for an empty set when the key is the constant
/// of `Granularity::None` (newer releases return none).
pub fn aggregate(g: Granularity, a: Aggregation, from: bool, to: bool) -> String {
    let (bucket, _) = bucket_start(g);
    let mut conditions = vec!["category = ?", "name = ?"];
    if from {
        conditions.push(FROM);
    }
    if to {
        conditions.push(TO);
    }
    if a.needs_value() {
        conditions.push("isNotNull(value)");
    }
    format!(
        "SELECT toInt64({bucket}) AS start_s, toFloat64(assumeNotNull({agg})) AS value, \
         count() AS events, min(ts_us) AS first_us \
         FROM (SELECT session_id, event_id, client_ts_us, ts, ts_us, value \
         FROM {EVENTS_BY_TYPE} WHERE {} LIMIT 1 BY session_id, event_id, client_ts_us) \
         GROUP BY start_s HAVING events > 0 ORDER BY start_s LIMIT ?",
        conditions.join(" AND "),
        agg = aggregation(a),
    )
}

pub const PING: &str = "SELECT 1";

pub const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
     (version UInt32, name String, applied_at DateTime) \
     ENGINE = MergeTree() ORDER BY version";

pub const APPLIED_MIGRATIONS: &str =
    "SELECT DISTINCT version FROM schema_migrations ORDER BY version";

pub const RECORD_MIGRATION: &str =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())";

/// Binds: session_id, limit. Ordered by event time, ties by event_id; `LIMIT 1 BY`
/// keeps one row per event whether or not ReplacingMergeTree has merged replays yet.
pub fn session_events() -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM {EVENTS_TABLE} \
         WHERE session_id = ? \
         ORDER BY ts_us, event_id \
         LIMIT 1 BY event_id, client_ts_us \
         LIMIT ?"
    )
}

/// Rows stored against distinct events: the difference is the replayed copies not yet
/// merged away. Used by operators and by the tests that prove exactly-once reads.
pub fn event_counts() -> String {
    format!(
        "SELECT count() AS stored_rows, uniqExact(session_id, event_id, client_ts_us) AS distinct_events \
         FROM {EVENTS_TABLE}"
    )
}

pub fn create_database(name: &str) -> Result<String, InvalidIdentifier> {
    Ok(format!(
        "CREATE DATABASE IF NOT EXISTS {}",
        identifier(name)?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["eye", "eye_test_01", "_x", "E1"] {
            assert_eq!(identifier(ok), Ok(ok));
        }
        for bad in [
            "",
            "1eye",
            "eye-test",
            "eye;DROP",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(identifier(bad).is_err(), "{bad:?}");
        }
        assert!(create_database("eye`; DROP DATABASE x").is_err());
        assert_eq!(
            create_database("eye").as_deref(),
            Ok("CREATE DATABASE IF NOT EXISTS eye")
        );
    }

    #[test]
    fn event_listing_picks_the_ordering_that_serves_its_filters() {
        let f = |session, owner, category, name, after, descending| EventFilters {
            session,
            owner,
            category,
            name,
            from: true,
            to: true,
            after,
            descending,
            raw: false,
        };
        // (filters, table, placeholders, order)
        let cases = [
            (
                f(true, false, false, false, false, false),
                "FROM events WHERE",
                6,
                "ts_us ASC",
            ),
            (
                f(true, false, true, true, true, false),
                "FROM events WHERE",
                13,
                "ts_us ASC",
            ),
            (
                f(false, true, false, false, true, true),
                "FROM events WHERE",
                12,
                "ts_us DESC",
            ),
            (
                f(false, false, true, false, false, true),
                "FROM events_by_type WHERE",
                6,
                "ts_us DESC",
            ),
            (
                f(false, false, true, true, true, true),
                "FROM events_by_type WHERE",
                12,
                "ts_us DESC",
            ),
            (
                f(false, false, false, true, false, false),
                "FROM events_by_type WHERE",
                6,
                "ts_us ASC",
            ),
            (
                f(false, false, false, false, false, false),
                "FROM events_by_type WHERE",
                5,
                "ts_us ASC",
            ),
        ];
        for (filters, table, placeholders, order) in cases {
            let q = events(filters);
            assert!(q.contains(table), "{q}");
            assert_eq!(q.matches('?').count(), placeholders, "{q}");
            assert!(q.contains(order), "{q}");
            assert!(q.contains("LIMIT 1 BY session_id, event_id, client_ts_us"));
            assert_eq!(q.contains("FROM sessions_by_owner"), filters.owner, "{q}");
            assert_eq!(
                q.contains("event_id < toUUID"),
                filters.after && filters.descending
            );
            // The negative control's raw listing differs only by the deduplication.
            let raw = events(EventFilters {
                raw: true,
                ..filters
            });
            assert!(!raw.contains("LIMIT 1 BY"), "{raw}");
            assert_eq!(
                raw.replace(
                    "LIMIT ?",
                    "LIMIT 1 BY session_id, event_id, client_ts_us LIMIT ?"
                ),
                q
            );
        }
    }

    #[test]
    fn aggregation_binds_zone_filters_and_limit_in_order() {
        // (granularity, aggregation, from, to, placeholders, bucket expression)
        let cases = [
            (
                Granularity::Hour,
                Aggregation::Avg,
                true,
                true,
                8,
                "toStartOfHour(ts, ?)",
            ),
            (
                Granularity::Week,
                Aggregation::P95,
                true,
                false,
                7,
                "toMonday(ts, ?), ?",
            ),
            (
                Granularity::Year,
                Aggregation::Sum,
                false,
                false,
                5,
                "toStartOfYear(ts, ?)",
            ),
            (
                Granularity::None,
                Aggregation::Count,
                false,
                true,
                5,
                "toInt64(0)",
            ),
        ];
        for (g, a, from, to, placeholders, bucket) in cases {
            let q = aggregate(g, a, from, to);
            assert_eq!(q.matches('?').count(), placeholders, "{q}");
            assert_eq!(
                placeholders,
                aggregate_zone_binds(g) + 2 + 2 * (usize::from(from) + usize::from(to)) + 1
            );
            assert!(q.contains(bucket), "{q}");
            assert!(q.contains("FROM events_by_type WHERE category = ? AND name = ?"));
            assert!(q.contains("LIMIT 1 BY session_id, event_id, client_ts_us"));
            assert_eq!(
                q.contains("isNotNull(value)"),
                a != Aggregation::Count,
                "{q}"
            );
        }
        assert!(aggregate(Granularity::Day, Aggregation::P99, false, false)
            .contains("quantileExact(0.99)(value)"));
    }

    #[test]
    fn owner_sessions_bind_the_owner_on_both_sides() {
        for (after, placeholders) in [(false, 5), (true, 8)] {
            let q = owner_sessions(after);
            assert_eq!(q.matches('?').count(), placeholders, "{q}");
            assert_eq!(q.matches("FROM sessions_by_owner").count(), 2);
            assert!(q.contains("ORDER BY started_at_us DESC, session_id DESC"));
        }
    }

    #[test]
    fn rejected_query_binds_one_placeholder_per_filter() {
        let cases = [
            ((false, false, false, false), 1),
            ((true, false, false, false), 2),
            ((false, true, true, false), 3),
            ((true, true, true, true), 7),
        ];
        for ((reason, from, to, after), placeholders) in cases {
            let q = rejected(reason, from, to, after);
            assert_eq!(q.matches('?').count(), placeholders, "{q}");
            assert_eq!(q.contains("has(codes"), reason);
            assert!(q.contains("LIMIT 1 BY rejection_id"));
        }
    }

    #[test]
    fn session_query_reads_event_columns_in_row_order_and_dedups() {
        let q = session_events();
        assert!(q.starts_with(&format!("SELECT {EVENT_COLUMNS} FROM events")));
        assert!(q.contains("LIMIT 1 BY event_id, client_ts_us"));
        assert_eq!(q.matches('?').count(), 2);
    }
}
