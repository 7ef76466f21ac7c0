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
