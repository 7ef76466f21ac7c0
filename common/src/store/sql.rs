//! Every SQL statement The Eye sends to ClickHouse lives here.
//!
//! User input only ever arrives as bound values (`?`, escaped by the `clickhouse` crate);
//! the only text spliced into SQL is the database name from configuration, which
//! [`identifier`] checks first. Each statement runs on ClickHouse 18.16 and on current
//! releases: the chdb check in `make test` runs them on ClickHouse 26.

/// Columns of [`super::EventRow`], in its field order (RowBinary is positional).
pub const EVENT_COLUMNS: &str =
    "event_id, session_id, category, name, ts_us, received_at_us, data, value";

pub const EVENTS_TABLE: &str = "events";

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
    fn session_query_reads_event_columns_in_row_order_and_dedups() {
        let q = session_events();
        assert!(q.starts_with(&format!("SELECT {EVENT_COLUMNS} FROM events")));
        assert!(q.contains("LIMIT 1 BY event_id"));
        assert_eq!(q.matches('?').count(), 2);
    }
}
