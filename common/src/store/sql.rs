//! Every SQL statement The Eye sends to ClickHouse lives here.
//!
//! User input only ever arrives as bound values (`?`, escaped by the `clickhouse` crate);
//! the only text spliced into SQL is the database name from configuration, which
//! [`identifier`] checks first. Each statement runs on ClickHouse 18.16 and on current
//! releases: the chdb check in `make test` runs them on ClickHouse 26.

/// Columns of [`super::EventRow`], in its field order (RowBinary is positional).
pub const EVENT_COLUMNS: &str =
    "event_id, session_id, category, name, ts_us, received_at_us, data, value, client_ts_us, sent_at_us";

/// Columns of [`super::RejectedRow`], in its field order.
pub const REJECTED_COLUMNS: &str =
    "rejection_id, received_at_us, source, client, codes, reasons, raw, \
     event_id, session_id, category, name";

pub const EVENTS_TABLE: &str = "events";
/// The same events ordered by (category, name, ts_us, event_id); see migration 0005.
pub const EVENTS_BY_TYPE: &str = "events_by_type";
pub const REJECTED_TABLE: &str = "rejected_events";
pub const SESSIONS_TABLE: &str = "sessions";

/// Binds: session_id. Lifecycle records merge here, whatever order they arrived in: the
/// earliest start, the latest end, and the attributes of the latest-received start.
pub const SESSION_META: &str = "SELECT session_id, \
     argMaxIf(user_id, received_at_us, kind = 'start') AS user_id, \
     argMaxIf(machine_id, received_at_us, kind = 'start') AS machine_id, \
     argMaxIf(org_id, received_at_us, kind = 'start') AS org_id, \
     minIf(at_us, kind = 'start') AS started_at_us, \
     maxIf(at_us, kind = 'end') AS ended_at_us, \
     countIf(kind = 'start') AS starts, \
     countIf(kind = 'end') AS ends \
     FROM sessions WHERE session_id = ? GROUP BY session_id";

/// Every (category, name) pair with its distinct events and first and last event time.
/// Reads the type ordering, so each pair's rows are contiguous.
pub const CATEGORIES: &str = "SELECT category, name, uniqExact(event_id) AS events, \
     min(ts_us) AS first_us, max(ts_us) AS last_us \
     FROM events_by_type GROUP BY category, name ORDER BY category, name LIMIT ?";

/// Which filters an event listing has; each present filter binds one value (the cursor
/// binds three), in the order of the fields here, then the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventFilters {
    pub session: bool,
    pub category: bool,
    pub name: bool,
    pub from: bool,
    pub to: bool,
    pub after: bool,
    pub descending: bool,
}

/// Events matching the filters, one per event_id, ordered by (ts_us, event_id) and
/// resumable after a cursor. A session filter reads `events` (session prefix); otherwise
/// `events_by_type` (category, name prefix).
pub fn events(f: EventFilters) -> String {
    let table = if f.session || !f.category {
        EVENTS_TABLE
    } else {
        EVENTS_BY_TYPE
    };
    let mut conditions = vec!["1 = 1"];
    if f.session {
        conditions.push("session_id = ?");
    }
    if f.category {
        conditions.push("category = ?");
    }
    if f.name {
        conditions.push("name = ?");
    }
    if f.from {
        conditions.push("ts_us >= ?");
    }
    if f.to {
        conditions.push("ts_us < ?");
    }
    let dir = if f.descending { "DESC" } else { "ASC" };
    if f.after {
        conditions.push(if f.descending {
            "(ts_us < ? OR (ts_us = ? AND event_id < toUUID(?)))"
        } else {
            "(ts_us > ? OR (ts_us = ? AND event_id > toUUID(?)))"
        });
    }
    format!(
        "SELECT {EVENT_COLUMNS} FROM {table} WHERE {} \
         ORDER BY ts_us {dir}, event_id {dir} LIMIT 1 BY event_id LIMIT ?",
        conditions.join(" AND ")
    )
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

pub const PING: &str = "SELECT 1";

pub const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
     (version UInt32, name String, applied_at DateTime) \
     ENGINE = MergeTree() ORDER BY version";

pub const APPLIED_MIGRATIONS: &str =
    "SELECT DISTINCT version FROM schema_migrations ORDER BY version";

pub const RECORD_MIGRATION: &str =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())";

/// Binds: session_id, limit. Ordered by event time, ties by event_id; `LIMIT 1 BY`
/// keeps one row per event_id whether or not ReplacingMergeTree has merged replays yet.
pub fn session_events() -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM {EVENTS_TABLE} \
         WHERE session_id = ? \
         ORDER BY ts_us, event_id \
         LIMIT 1 BY event_id \
         LIMIT ?"
    )
}

/// Rows stored against distinct events: the difference is the replayed copies not yet
/// merged away. Used by operators and by the tests that prove exactly-once reads.
pub fn event_counts() -> String {
    format!(
        "SELECT count() AS stored_rows, uniqExact(event_id) AS distinct_events FROM {EVENTS_TABLE}"
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
        let f = |session, category, name, after, descending| EventFilters {
            session,
            category,
            name,
            from: true,
            to: true,
            after,
            descending,
        };
        // (filters, table, placeholders, order)
        let cases = [
            (
                f(true, false, false, false, false),
                "FROM events WHERE",
                4,
                "ts_us ASC",
            ),
            (
                f(true, true, true, true, false),
                "FROM events WHERE",
                9,
                "ts_us ASC",
            ),
            (
                f(false, true, false, false, true),
                "FROM events_by_type WHERE",
                4,
                "ts_us DESC",
            ),
            (
                f(false, true, true, true, true),
                "FROM events_by_type WHERE",
                8,
                "ts_us DESC",
            ),
            (
                f(false, false, false, false, false),
                "FROM events WHERE",
                3,
                "ts_us ASC",
            ),
        ];
        for (filters, table, placeholders, order) in cases {
            let q = events(filters);
            assert!(q.contains(table), "{q}");
            assert_eq!(q.matches('?').count(), placeholders, "{q}");
            assert!(q.contains(order), "{q}");
            assert!(q.contains("LIMIT 1 BY event_id"));
            assert_eq!(
                q.contains("event_id < toUUID"),
                filters.after && filters.descending
            );
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
        assert!(q.contains("LIMIT 1 BY event_id"));
        assert_eq!(q.matches('?').count(), 2);
    }
}
