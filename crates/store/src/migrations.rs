//! Versioned ClickHouse migrations, embedded from `deploy/clickhouse/migrations/`.
//!
//! A migration is applied once and recorded in `schema_migrations`. Two processes
//! migrating at the same moment may both apply one before either records it (ClickHouse
//! has no transactions), so statements must be safe to repeat: `CREATE ... IF NOT EXISTS`,
//! and `ALTER ... ADD COLUMN`, whose "already exists" error the runner counts as done
//! (18.16 has no `ADD COLUMN IF NOT EXISTS`).

/// One migration file: its version (the file's numeric prefix), name and statements.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!(
                "../../../deploy/clickhouse/migrations/",
                $name,
                ".sql"
            )),
        }
    };
}

/// Every migration, in the order it must be applied.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_events"),
    migration!(2, "0002_event_times"),
    migration!(3, "0003_rejected_events"),
    migration!(4, "0004_sessions"),
    migration!(5, "0005_events_by_type"),
    migration!(6, "0006_sessions_by_owner"),
    migration!(7, "0007_rejected_raw_digest"),
    migration!(8, "0008_event_keys"),
    migration!(9, "0009_identities"),
    migration!(10, "0010_rejected_replays"),
    migration!(11, "0011_deletions"),
];

/// Splits a migration file into statements: `;` at the end of a line ends one. Comment
/// lines are dropped, because ClickHouse 18.16 rejects a request that is only a comment.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            push_statement(&mut out, &current);
            current.clear();
        }
    }
    push_statement(&mut out, &current);
    out
}

/// A statement that failed only because its effect is already in place.
pub fn already_applied(error: &str) -> bool {
    error.contains("already exists")
}

/// The sharding key of each table's `Distributed` table in cluster mode
/// (`EYE_CLICKHOUSE_CLUSTER`), or `None` for a table the cluster layout does not know: a
/// new migration's table must be given one here, or migrating a cluster fails.
///
/// Every table read together is sharded by `session_id`: a session's events, its
/// lifecycle records, its owners (`sessions_by_owner`), its identity rows and its
/// `event_keys` sit on one shard, so every copy of a retried event (same session, hence
/// same key) lands where the consumer's look-up and the reads' `LIMIT 1 BY` find them,
/// and the reads' `IN (SELECT … FROM sessions_by_owner …)` can run on each shard's own
/// rows (`distributed_product_mode = 'local'`). Tables without a `session_id`, or where it
/// is not the identity:
/// * `rejected_events` by `rejection_id`: a quarantine record's copies (replays) share it,
///   and undecodable messages have no session (an empty key would put them all on one
///   shard). 18.16's `cityHash64` takes no UUID, hence `toString`.
/// * `rejected_replays` by `rejection_id` too: a record's outcomes sit beside it.
/// * `identity_links` by `user_id`: a `(user_id, anonymous_id)` pair then always lands on
///   one shard and folds there, whichever session linked it; reads take `DISTINCT`.
/// * `schema_migrations` by `version`.
/// * `deletions` by `deletion_id`: a deletion's state rows fold on one shard.
/// * `suppressions` by `subject_id`: every consumer reads them all, so any key would do;
///   this one spreads them.
pub fn sharding_key(table: &str) -> Option<&'static str> {
    match table {
        "events" | "events_by_type" | "event_keys" | "sessions" | "sessions_by_owner"
        | "identity_actors" => Some("cityHash64(session_id)"),
        "rejected_events" | "rejected_replays" => Some("cityHash64(toString(rejection_id))"),
        "identity_links" => Some("cityHash64(user_id)"),
        "schema_migrations" => Some("version"),
        "deletions" => Some("cityHash64(toString(deletion_id))"),
        "suppressions" => Some("cityHash64(subject_id)"),
        _ => None,
    }
}

/// A statement the cluster rewrite does not know how to lay out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterDdlError {
    #[error("cluster mode: table {0:?} has no sharding key (eye_store::migrations::sharding_key)")]
    NoShardingKey(String),
    #[error("cluster mode: no rewrite for this migration statement: {0}")]
    UnknownShape(String),
}

/// Where the cluster layout puts a database's tables: `EYE_CLICKHOUSE_CLUSTER` and the
/// database, both checked identifiers.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    pub name: &'a str,
    pub database: &'a str,
}

impl Cluster<'_> {
    /// The statements that lay out one single-node migration statement on the cluster,
    /// every one `ON CLUSTER` (except an `INSERT`, which runs once, through the
    /// `Distributed` tables):
    /// * `CREATE TABLE t … ENGINE = XMergeTree(…)` becomes `t_local`, a
    ///   `ReplicatedXMergeTree` at `/clickhouse/tables/{shard}/<database>/t_local` with
    ///   replica `{replica}`, plus `t`, a `Distributed` table over it sharded by
    ///   [`sharding_key`]. A `MATERIALIZED` column becomes `DEFAULT` with the same
    ///   expression: 18.16's `Distributed` table computes it and then sends it, which the
    ///   shard refuses for a `MATERIALIZED` column ("Cannot insert column ts"). Nobody
    ///   writes it but the default: the writers name their columns.
    /// * `CREATE MATERIALIZED VIEW v ENGINE = … AS SELECT … FROM t …` becomes `v_local`,
    ///   fed by `t_local` on each server (so each shard's view holds its own rows, and a
    ///   replica's view is replicated like a table), plus `v`, `Distributed` over it.
    /// * `ALTER TABLE t …` alters `t_local`, then drops and recreates `t`: 18.16 refuses
    ///   `ALTER … ON CLUSTER` on a `Distributed` table when the cluster's shards are
    ///   replicated ("Table t isn't replicated, but shard #1 is replicated according to
    ///   its cluster definition"). A `Distributed` table holds no rows (inserts are
    ///   synchronous), so recreating it loses nothing; reads and writes fail for the
    ///   moment it is missing, and the consumer retries.
    /// * `INSERT … SELECT` runs as written, through the `Distributed` tables.
    pub fn statements(&self, stmt: &str) -> Result<Vec<String>, ClusterDdlError> {
        let (db, c) = (self.database, self.name);
        if let Some((table, rest)) = head(stmt, "CREATE TABLE IF NOT EXISTS ") {
            let key = key_of(table)?;
            let local = format!("{table}_local");
            let rest = self
                .replicated(rest, &local, stmt)?
                .replace(" MATERIALIZED ", " DEFAULT ");
            return Ok(vec![
                format!("CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER {c}{rest}"),
                self.distributed(table, key),
            ]);
        }
        if let Some((view, rest)) = head(stmt, "CREATE MATERIALIZED VIEW IF NOT EXISTS ") {
            let key = key_of(view)?;
            let local = format!("{view}_local");
            let rest = self.replicated(rest, &local, stmt)?;
            let unknown = || ClusterDdlError::UnknownShape(stmt.to_owned());
            let select = rest.find("AS SELECT ").ok_or_else(unknown)?;
            let from = select
                + rest[select..]
                    .match_indices("FROM ")
                    .find(|(i, _)| rest[select + i - 1..].starts_with(char::is_whitespace))
                    .ok_or_else(unknown)?
                    .0
                + 5;
            let source = ident(&rest[from..]);
            if key_of(source)? != key {
                return Err(unknown());
            }
            let rest = format!(
                "{}{db}.{source}_local{}",
                &rest[..from],
                &rest[from + source.len()..]
            );
            return Ok(vec![
                format!("CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{local} ON CLUSTER {c}{rest}"),
                self.distributed(view, key),
            ]);
        }
        if let Some((table, rest)) = head(stmt, "ALTER TABLE ") {
            let key = key_of(table)?;
            let rest = rest.replace(" MATERIALIZED ", " DEFAULT ");
            return Ok(vec![
                format!("ALTER TABLE {db}.{table}_local ON CLUSTER {c}{rest}"),
                format!("DROP TABLE IF EXISTS {db}.{table} ON CLUSTER {c}"),
                self.distributed(table, key),
            ]);
        }
        if stmt.starts_with("INSERT INTO ") {
            return Ok(vec![stmt.to_owned()]);
        }
        Err(ClusterDdlError::UnknownShape(stmt.to_owned()))
    }

    /// `rest` with its `ENGINE = XMergeTree(args)` made `ReplicatedXMergeTree(path,
    /// replica, args)`.
    fn replicated(&self, rest: &str, local: &str, stmt: &str) -> Result<String, ClusterDdlError> {
        let unknown = || ClusterDdlError::UnknownShape(stmt.to_owned());
        let at = rest.find("ENGINE = ").ok_or_else(unknown)? + 9;
        let engine = ident(&rest[at..]);
        let open = at + engine.len();
        if !engine.ends_with("MergeTree") || engine.starts_with("Replicated") {
            return Err(unknown());
        }
        let close = open + rest[open..].find(')').ok_or_else(unknown)?;
        if !rest[open..].starts_with('(') {
            return Err(unknown());
        }
        let args = rest[open + 1..close].trim();
        let sep = if args.is_empty() { "" } else { ", " };
        let db = self.database;
        Ok(format!(
            "{}Replicated{engine}('/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}'{sep}{args}){}",
            &rest[..at],
            &rest[close + 1..]
        ))
    }

    fn distributed(&self, table: &str, key: &str) -> String {
        let (db, c) = (self.database, self.name);
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {c} AS {db}.{table}_local \
             ENGINE = Distributed({c}, {db}, {table}_local, {key})"
        )
    }
}

fn key_of(table: &str) -> Result<&'static str, ClusterDdlError> {
    sharding_key(table).ok_or_else(|| ClusterDdlError::NoShardingKey(table.to_owned()))
}

/// The identifier `text` starts with.
fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// `(name, rest)` when `stmt` is `prefix` followed by a name.
fn head<'s>(stmt: &'s str, prefix: &str) -> Option<(&'s str, &'s str)> {
    let rest = stmt.strip_prefix(prefix)?;
    let name = ident(rest);
    (!name.is_empty()).then(|| (name, &rest[name.len()..]))
}

fn push_statement(out: &mut Vec<String>, stmt: &str) {
    let stmt = stmt.trim().trim_end_matches(';').trim();
    if !stmt.is_empty() {
        out.push(stmt.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_and_match_file_names() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "{} out of order", m.name);
            let prefix: u32 = m.name[..4].parse().expect("numeric prefix");
            assert_eq!(prefix, m.version, "{}", m.name);
            assert!(!statements(m.sql).is_empty(), "{} has no statement", m.name);
            last = m.version;
        }
    }

    const EYE: Cluster<'static> = Cluster {
        name: "eye",
        database: "db",
    };

    #[test]
    fn every_migration_has_a_cluster_layout() {
        for m in MIGRATIONS {
            for stmt in statements(m.sql) {
                let laid_out = EYE
                    .statements(&stmt)
                    .unwrap_or_else(|e| panic!("{}: {e}", m.name));
                for s in &laid_out {
                    let ddl = !s.starts_with("INSERT");
                    assert_eq!(ddl, s.contains(" ON CLUSTER eye"), "{s}");
                    // No MATERIALIZED column: the Distributed tables could not insert.
                    let columns = s.replace("CREATE MATERIALIZED VIEW", "");
                    assert!(!columns.contains(" MATERIALIZED "), "{s}");
                }
            }
        }
    }

    #[test]
    fn cluster_layouts() {
        let cases: &[(&str, &[&str])] = &[
            (
                "CREATE TABLE IF NOT EXISTS events\n(\n    event_id UUID,\n    ts_us Int64,\n    \
                 ts DateTime('UTC') MATERIALIZED toDateTime(intDiv(ts_us, 1000000), 'UTC')\n)\n\
                 ENGINE = ReplacingMergeTree()\nPARTITION BY toYYYYMM(ts)\nORDER BY (session_id, ts_us)",
                &[
                    "CREATE TABLE IF NOT EXISTS db.events_local ON CLUSTER eye\n(\n    event_id UUID,\n    \
                     ts_us Int64,\n    ts DateTime('UTC') DEFAULT toDateTime(intDiv(ts_us, 1000000), 'UTC')\n)\n\
                     ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/events_local', '{replica}')\n\
                     PARTITION BY toYYYYMM(ts)\nORDER BY (session_id, ts_us)",
                    "CREATE TABLE IF NOT EXISTS db.events ON CLUSTER eye AS db.events_local \
                     ENGINE = Distributed(eye, db, events_local, cityHash64(session_id))",
                ],
            ),
            (
                crate::sql::CREATE_MIGRATIONS_TABLE,
                &[
                    "CREATE TABLE IF NOT EXISTS db.schema_migrations_local ON CLUSTER eye \
                     (version UInt32, name String, applied_at DateTime) ENGINE = \
                     ReplicatedMergeTree('/clickhouse/tables/{shard}/db/schema_migrations_local', '{replica}') \
                     ORDER BY version",
                    "CREATE TABLE IF NOT EXISTS db.schema_migrations ON CLUSTER eye AS db.schema_migrations_local \
                     ENGINE = Distributed(eye, db, schema_migrations_local, version)",
                ],
            ),
            (
                "CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_by_owner\nENGINE = ReplacingMergeTree()\n\
                 ORDER BY (owner_id, session_id)\nAS SELECT owner_id, session_id\nFROM sessions\n\
                 ARRAY JOIN [user_id] AS owner_id",
                &[
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS db.sessions_by_owner_local ON CLUSTER eye\n\
                     ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/sessions_by_owner_local', \
                     '{replica}')\nORDER BY (owner_id, session_id)\nAS SELECT owner_id, session_id\n\
                     FROM db.sessions_local\nARRAY JOIN [user_id] AS owner_id",
                    "CREATE TABLE IF NOT EXISTS db.sessions_by_owner ON CLUSTER eye AS db.sessions_by_owner_local \
                     ENGINE = Distributed(eye, db, sessions_by_owner_local, cityHash64(session_id))",
                ],
            ),
            (
                "ALTER TABLE rejected_events ADD COLUMN raw_bytes UInt64 DEFAULT length(raw)",
                &[
                    "ALTER TABLE db.rejected_events_local ON CLUSTER eye ADD COLUMN raw_bytes UInt64 DEFAULT length(raw)",
                    "DROP TABLE IF EXISTS db.rejected_events ON CLUSTER eye",
                    "CREATE TABLE IF NOT EXISTS db.rejected_events ON CLUSTER eye AS db.rejected_events_local \
                     ENGINE = Distributed(eye, db, rejected_events_local, cityHash64(toString(rejection_id)))",
                ],
            ),
            (
                "INSERT INTO event_keys SELECT a FROM events",
                &["INSERT INTO event_keys SELECT a FROM events"],
            ),
        ];
        for (input, want) in cases {
            let got = EYE.statements(input).expect(input);
            assert_eq!(got, *want, "{input}");
        }
        for (input, error) in [
            (
                "CREATE TABLE IF NOT EXISTS other (a UInt8) ENGINE = MergeTree() ORDER BY a",
                ClusterDdlError::NoShardingKey("other".into()),
            ),
            (
                "CREATE TABLE IF NOT EXISTS events (a UInt8) ENGINE = Memory",
                ClusterDdlError::UnknownShape(
                    "CREATE TABLE IF NOT EXISTS events (a UInt8) ENGINE = Memory".into(),
                ),
            ),
            (
                "DROP TABLE events",
                ClusterDdlError::UnknownShape("DROP TABLE events".into()),
            ),
        ] {
            assert_eq!(EYE.statements(input), Err(error), "{input}");
        }
    }

    #[test]
    fn splits_statements_and_drops_comments() {
        let cases: &[(&str, &[&str])] = &[
            ("-- only a comment\n", &[]),
            ("SELECT 1", &["SELECT 1"]),
            ("SELECT 1;\nSELECT 2;\n", &["SELECT 1", "SELECT 2"]),
            (
                "-- c\nCREATE TABLE t\n(\n  a UInt8 -- inline stays\n)\nENGINE = Memory;\n\n-- c2\nALTER TABLE t ADD COLUMN b UInt8",
                &[
                    "CREATE TABLE t\n(\n  a UInt8 -- inline stays\n)\nENGINE = Memory",
                    "ALTER TABLE t ADD COLUMN b UInt8",
                ],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(statements(input), *want, "input {input:?}");
        }
    }
}
