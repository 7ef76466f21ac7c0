//! Deleting a subject's data (a user, a session or a machine) and the suppression list the
//! consumer honours afterwards: the statements, their pure planning, and the [`Store`]
//! calls that run them (migration 0011; docs/lifecycle-deletion.md).
//!
//! A subject is expanded to the sessions it owns ([`Subject::session_lookups`]): a session
//! is itself; a user's and a machine's are the sessions whose start record names it, found
//! in `sessions` and in `sessions_by_owner`. [`plan`] then turns the subject and its sessions
//! into one condition per table, every value bound, plus the replay outcomes
//! (`rejected_replays`) of the subject's quarantined records, by their rejection ids
//! ([`rejection_lookups`], read before anything is deleted); [`Store::count_rows`] counts what each
//! matches and [`Store::delete_rows`] removes it with mutations (`ALTER TABLE … DELETE
//! WHERE`, which ClickHouse 18.16 has). A mutation on a materialized view (`events_by_type`,
//! `sessions_by_owner`, `event_keys`) is applied by 18.16 to the view's storage table
//! (`.inner.<view>`), checked on the server. In cluster mode the mutations go to the
//! `<table>_local` tables `ON CLUSTER`.

use crate::statement::{sql, Statement};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most session ids one statement binds: a user with more sessions is deleted in
/// several mutations per table, each statement well under `max_query_size`.
pub const SESSIONS_PER_STATEMENT: usize = 1_000;

/// What a deletion removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKind {
    User,
    Session,
    Machine,
}

impl SubjectKind {
    pub const ALL: [SubjectKind; 3] = [Self::User, Self::Session, Self::Machine];

    /// The `subject_kind` stored in `deletions` and `suppressions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Session => "session",
            Self::Machine => "machine",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A user, session or machine by its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    pub kind: SubjectKind,
    pub id: String,
}

/// The tables whose rows carry a `session_id`.
pub const SESSION_TABLES: [&str; 8] = [
    "events",
    "events_by_type",
    "event_keys",
    "sessions",
    "sessions_by_owner",
    "rejected_events",
    "identity_actors",
    "identity_links",
];

/// Every table a deletion removes rows from, in the order it reports them: the
/// [`SESSION_TABLES`], then the replay outcomes of the subject's quarantined records.
pub const TABLES: [&str; SESSION_TABLES.len() + 1] = {
    let mut all = [REPLAYS; SESSION_TABLES.len() + 1];
    let mut i = 0;
    while i < SESSION_TABLES.len() {
        all[i] = SESSION_TABLES[i];
        i += 1;
    }
    all
};

/// Replay outcomes (migration 0010): no session id, only the record's `rejection_id`.
const REPLAYS: &str = crate::sql::REPLAYS_TABLE;

impl Subject {
    /// The statements whose `session_id` answers, together, are the subject's sessions (the
    /// subject's own id aside: a session is itself and needs none). A start record names
    /// the user and machine; `sessions_by_owner` indexes them by owner, and `sessions` is
    /// read too, for records written before that view existed (migration 0006 has no
    /// backfill).
    pub fn session_lookups(&self) -> Vec<Statement> {
        let column = match self.kind {
            SubjectKind::Session => return Vec::new(),
            SubjectKind::User => "user_id",
            SubjectKind::Machine => "machine_id",
        };
        vec![
            Statement::new("SELECT DISTINCT session_id FROM sessions_by_owner WHERE ").push(
                sql!("owner_kind = ? AND owner_id = ?"),
                [self.kind.as_str().into(), self.id.as_str().into()],
            ),
            Statement::new("SELECT DISTINCT session_id FROM sessions WHERE kind = 'start' AND ")
                .push_text(column)
                .push(sql!(" = ?"), [self.id.as_str().into()]),
        ]
    }

    /// The subject's sessions: its own id for a session, else the lookups' answers, each
    /// once, sorted.
    pub fn sessions(&self, looked_up: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut all: Vec<String> = looked_up.into_iter().collect();
        if self.kind == SubjectKind::Session {
            all.push(self.id.clone());
        }
        all.sort();
        all.dedup();
        all
    }
}

/// One table's rows of a subject: `WHERE <condition>` on `table`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub table: &'static str,
    pub condition: Statement,
}

/// The conditions that select a subject's rows, table by table: the rows of its sessions
/// everywhere (in chunks of [`SESSIONS_PER_STATEMENT`]), and for a user also its identity
/// rows whatever their session (`identity_actors.actor_id`, `identity_links.user_id` and
/// `anonymous_id`), and for a user or machine its owner rows in `sessions_by_owner`; then
/// the replay outcomes of `rejections`, the subject's quarantined records (as
/// [`rejection_lookups`] found them), in chunks of the same size.
pub fn plan(subject: &Subject, sessions: &[String], rejections: &[String]) -> Vec<Target> {
    let mut out = session_plan(subject, sessions);
    for chunk in rejections.chunks(SESSIONS_PER_STATEMENT) {
        let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
        out.push(Target {
            table: REPLAYS,
            condition: Statement::new("")
                .push(sql!("has(?, toString(rejection_id))"), [ids.into()]),
        });
    }
    out
}

/// The statements whose answers, together, are the rejection ids of the subject's
/// quarantined records. They must be read before `rejected_events` loses those rows, since
/// a replay outcome names nothing else of the subject.
pub fn rejection_lookups(subject: &Subject, sessions: &[String]) -> Vec<Statement> {
    session_plan(subject, sessions)
        .into_iter()
        .filter(|t| t.table == "rejected_events")
        .map(|t| {
            Statement::new("SELECT DISTINCT toString(rejection_id) FROM rejected_events WHERE ")
                .append(t.condition)
        })
        .collect()
}

fn session_plan(subject: &Subject, sessions: &[String]) -> Vec<Target> {
    let mut out = Vec::new();
    let chunks: Vec<&[String]> = sessions.chunks(SESSIONS_PER_STATEMENT).collect();
    for table in SESSION_TABLES {
        let own = own_rows(subject, table);
        if chunks.is_empty() {
            if let Some(condition) = own {
                out.push(Target { table, condition });
            }
            continue;
        }
        for (i, chunk) in chunks.iter().enumerate() {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let mut condition = Statement::new("").push(sql!("has(?, session_id)"), [ids.into()]);
            // The subject's own rows once, with the first chunk.
            if let (0, Some(own)) = (i, own.clone()) {
                condition = condition.push_text(" OR ").append(own);
            }
            out.push(Target { table, condition });
        }
    }
    out
}

/// The rows of `table` that name the subject itself rather than one of its sessions.
fn own_rows(subject: &Subject, table: &str) -> Option<Statement> {
    let id = subject.id.as_str();
    match (subject.kind, table) {
        (SubjectKind::User, "identity_actors") => {
            Some(Statement::new("").push(sql!("actor_id = ?"), [id.into()]))
        }
        (SubjectKind::User, "identity_links") => Some(Statement::new("").push(
            sql!("(user_id = ? OR anonymous_id = ?)"),
            [id.into(), id.into()],
        )),
        (SubjectKind::User | SubjectKind::Machine, "sessions_by_owner") => {
            Some(Statement::new("").push(
                sql!("(owner_kind = ? AND owner_id = ?)"),
                [subject.kind.as_str().into(), id.into()],
            ))
        }
        _ => None,
    }
}

/// `SELECT count() FROM <table> WHERE <condition>`. `table` is one of [`TABLES`].
pub fn count(target: &Target) -> Statement {
    Statement::new("SELECT count() FROM ")
        .push_text(target.table)
        .push_text(" WHERE ")
        .append(target.condition.clone())
}

/// The mutation deleting a target's rows: on one server `ALTER TABLE <table> DELETE
/// WHERE …`; in cluster mode on every server's `<database>.<table>_local`, `ON CLUSTER`
/// (the `Distributed` tables take no mutation). `database` and `cluster` are checked
/// identifiers.
pub fn mutation(target: &Target, cluster: Option<(&str, &str)>) -> Statement {
    let head = match cluster {
        None => format!("ALTER TABLE {} DELETE WHERE ", target.table),
        Some((database, cluster)) => format!(
            "ALTER TABLE {database}.{}_local ON CLUSTER {cluster} DELETE WHERE ",
            target.table
        ),
    };
    Statement::new(&head).append(target.condition.clone())
}

/// Mutations of `database` not finished yet (on the server asked: in cluster mode, the
/// caller also recounts through the `Distributed` tables).
pub fn pending_mutations(database: &str) -> Statement {
    Statement::new("SELECT count() FROM system.mutations WHERE ")
        .push(sql!("database = ? AND is_done = 0"), [database.into()])
}

/// Columns of [`DeletionRow`], in its field order.
pub const DELETION_COLUMNS: &str = "deletion_id, subject_kind, subject_id, requested_by, \
     requested_at_us, status, tables, counts, finished_at_us, error, updated_at_us";

/// Columns of [`SuppressionRow`], in its field order.
pub const SUPPRESSION_COLUMNS: &str =
    "subject_kind, subject_id, deletion_id, added_at_us, expires_at_us";

pub const DELETIONS_TABLE: &str = "deletions";
pub const SUPPRESSIONS_TABLE: &str = "suppressions";

/// One state of a deletion: a row of `deletions`, the latest `updated_at_us` being current.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Serialize, Deserialize)]
pub struct DeletionRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub deletion_id: Uuid,
    pub subject_kind: String,
    pub subject_id: String,
    /// The client id of the caller.
    pub requested_by: String,
    pub requested_at_us: i64,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
    /// `tables[i]` lost `counts[i]` rows.
    pub tables: Vec<String>,
    pub counts: Vec<u64>,
    /// 0 until the deletion is done or failed.
    pub finished_at_us: i64,
    pub error: String,
    pub updated_at_us: i64,
}

/// A subject the consumer no longer stores, until `expires_at_us`.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Serialize, Deserialize)]
pub struct SuppressionRow {
    pub subject_kind: String,
    pub subject_id: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub deletion_id: Uuid,
    pub added_at_us: i64,
    pub expires_at_us: i64,
}

/// A deletion's current state.
pub fn deletion(id: Uuid) -> Statement {
    Statement::new(&format!(
        "SELECT {DELETION_COLUMNS} FROM {DELETIONS_TABLE} WHERE "
    ))
    .push(sql!("deletion_id = toUUID(?)"), [id.into()])
    .push_text(" ORDER BY updated_at_us DESC LIMIT 1")
}

/// The deletions whose current state is `pending` or `running` (to resume at start-up),
/// oldest request first; at most `limit`.
pub fn unfinished_deletions(limit: u32) -> Statement {
    Statement::new(&format!(
        "SELECT {DELETION_COLUMNS} FROM (SELECT {DELETION_COLUMNS} FROM {DELETIONS_TABLE} \
         ORDER BY deletion_id, updated_at_us DESC LIMIT 1 BY deletion_id) \
         WHERE status IN ('pending', 'running') ORDER BY requested_at_us "
    ))
    .push(sql!("LIMIT ?"), [limit.into()])
}

/// Suppressions added after `since_us` and not expired at `now_us`, in the order added.
pub fn suppressions_since(since_us: i64, now_us: i64) -> Statement {
    Statement::new(&format!(
        "SELECT {SUPPRESSION_COLUMNS} FROM {SUPPRESSIONS_TABLE} WHERE "
    ))
    .push(
        sql!("added_at_us > ? AND expires_at_us > ?"),
        [since_us.into(), now_us.into()],
    )
    .push_text(" ORDER BY added_at_us")
}

impl Store {
    pub async fn insert_deletion(&self, row: &DeletionRow) -> Result<(), StoreError> {
        self.insert(DELETIONS_TABLE, std::slice::from_ref(row))
            .await
    }

    pub async fn insert_suppressions(&self, rows: &[SuppressionRow]) -> Result<(), StoreError> {
        self.insert(SUPPRESSIONS_TABLE, rows).await
    }

    /// A deletion's current state, or `None` for an id never requested.
    pub async fn deletion(&self, id: Uuid) -> Result<Option<DeletionRow>, StoreError> {
        Ok(self.read(deletion(id)).fetch_optional().await?)
    }

    /// Deletions not yet done or failed, oldest first.
    pub async fn unfinished_deletions(&self) -> Result<Vec<DeletionRow>, StoreError> {
        Ok(self.read(unfinished_deletions(10_000)).fetch_all().await?)
    }

    /// The subject's sessions (see [`Subject::session_lookups`]).
    pub async fn subject_sessions(&self, subject: &Subject) -> Result<Vec<String>, StoreError> {
        let mut found = Vec::new();
        for lookup in subject.session_lookups() {
            found.extend(self.unbounded(lookup).fetch_all::<String>().await?);
        }
        Ok(subject.sessions(found))
    }

    /// The rejection ids of the subject's quarantined records ([`rejection_lookups`]),
    /// each once, sorted.
    pub async fn subject_rejections(
        &self,
        subject: &Subject,
        sessions: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut found = Vec::new();
        for lookup in rejection_lookups(subject, sessions) {
            found.extend(self.unbounded(lookup).fetch_all::<String>().await?);
        }
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// How many rows each target selects, in the targets' order.
    pub async fn count_rows(&self, targets: &[Target]) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::with_capacity(targets.len());
        for t in targets {
            out.push(self.read(count(t)).fetch_one::<u64>().await?);
        }
        Ok(out)
    }

    /// Starts one mutation per target; they run in the background on the server
    /// ([`Store::mutations_pending`] says when they are done).
    pub async fn delete_rows(&self, targets: &[Target]) -> Result<(), StoreError> {
        let cluster = self.cluster().map(|c| (self.database(), c));
        for t in targets {
            mutation(t, cluster).query(self.client()).execute().await?;
        }
        Ok(())
    }

    /// Whether mutations of this database are still running on the server asked.
    pub async fn mutations_pending(&self) -> Result<bool, StoreError> {
        let n: u64 = self
            .read(pending_mutations(self.database()))
            .fetch_one()
            .await?;
        Ok(n > 0)
    }

    /// Every suppression added after `since_us` and not expired at `now_us`. Unbounded by
    /// `max_result_rows`: the list is what the consumer must honour, whole.
    pub async fn suppressions_since(
        &self,
        since_us: i64,
        now_us: i64,
    ) -> Result<Vec<SuppressionRow>, StoreError> {
        Ok(self
            .unbounded(suppressions_since(since_us, now_us))
            .fetch_all()
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(kind: SubjectKind, id: &str) -> Subject {
        Subject {
            kind,
            id: id.into(),
        }
    }

    #[test]
    fn subjects_expand_to_their_sessions() {
        // (subject, looked-up session ids, sessions, lookup statements)
        let cases: [(Subject, Vec<&str>, Vec<&str>, Vec<&str>); 4] = [
            (subject(SubjectKind::Session, "s1"), vec![], vec!["s1"], vec![]),
            (
                subject(SubjectKind::User, "u'1"),
                vec!["b", "a", "b"],
                vec!["a", "b"],
                vec![
                    r"SELECT DISTINCT session_id FROM sessions_by_owner WHERE owner_kind = 'user' AND owner_id = 'u\'1'",
                    r"SELECT DISTINCT session_id FROM sessions WHERE kind = 'start' AND user_id = 'u\'1'",
                ],
            ),
            (
                subject(SubjectKind::Machine, "m"),
                vec!["x"],
                vec!["x"],
                vec![
                    "SELECT DISTINCT session_id FROM sessions_by_owner WHERE owner_kind = 'machine' AND owner_id = 'm'",
                    "SELECT DISTINCT session_id FROM sessions WHERE kind = 'start' AND machine_id = 'm'",
                ],
            ),
            (subject(SubjectKind::User, "nobody"), vec![], vec![], vec![
                "SELECT DISTINCT session_id FROM sessions_by_owner WHERE owner_kind = 'user' AND owner_id = 'nobody'",
                "SELECT DISTINCT session_id FROM sessions WHERE kind = 'start' AND user_id = 'nobody'",
            ]),
        ];
        for (s, found, want, lookups) in cases {
            let got = s.sessions(found.iter().map(|x| (*x).to_owned()));
            assert_eq!(got, want, "{s:?}");
            let rendered: Vec<String> = s.session_lookups().iter().map(Statement::render).collect();
            assert_eq!(rendered, lookups, "{s:?}");
        }
    }

    fn rendered(targets: &[Target]) -> Vec<(String, String)> {
        targets
            .iter()
            .map(|t| (t.table.to_owned(), t.condition.render()))
            .collect()
    }

    #[test]
    fn plans_cover_every_table() {
        let sessions = vec!["s1".to_owned(), "s2".to_owned()];
        let by_session = "has(['s1','s2'], session_id)";
        let session_plan: Vec<(String, String)> = SESSION_TABLES
            .iter()
            .map(|t| ((*t).to_owned(), by_session.to_owned()))
            .collect();
        // (subject, sessions, tables and conditions)
        let cases = [
            (
                subject(SubjectKind::Session, "s1"),
                sessions.clone(),
                session_plan.clone(),
            ),
            (
                subject(SubjectKind::User, "u"),
                sessions.clone(),
                SESSION_TABLES
                    .iter()
                    .map(|t| {
                        let extra = match *t {
                            "sessions_by_owner" => " OR (owner_kind = 'user' AND owner_id = 'u')",
                            "identity_actors" => " OR actor_id = 'u'",
                            "identity_links" => " OR (user_id = 'u' OR anonymous_id = 'u')",
                            _ => "",
                        };
                        ((*t).to_owned(), format!("{by_session}{extra}"))
                    })
                    .collect(),
            ),
            (
                subject(SubjectKind::Machine, "m"),
                sessions.clone(),
                SESSION_TABLES
                    .iter()
                    .map(|t| {
                        let extra = match *t {
                            "sessions_by_owner" => {
                                " OR (owner_kind = 'machine' AND owner_id = 'm')"
                            }
                            _ => "",
                        };
                        ((*t).to_owned(), format!("{by_session}{extra}"))
                    })
                    .collect(),
            ),
            // A user without sessions still loses its identity and owner rows.
            (
                subject(SubjectKind::User, "u"),
                vec![],
                vec![
                    (
                        "sessions_by_owner".into(),
                        "(owner_kind = 'user' AND owner_id = 'u')".into(),
                    ),
                    ("identity_actors".into(), "actor_id = 'u'".into()),
                    (
                        "identity_links".into(),
                        "(user_id = 'u' OR anonymous_id = 'u')".into(),
                    ),
                ],
            ),
            (
                subject(SubjectKind::Machine, "m"),
                vec![],
                vec![(
                    "sessions_by_owner".into(),
                    "(owner_kind = 'machine' AND owner_id = 'm')".into(),
                )],
            ),
        ];
        for (s, sessions, want) in cases {
            assert_eq!(rendered(&plan(&s, &sessions, &[])), want, "{s:?}");
        }
    }

    #[test]
    fn replay_outcomes_go_by_the_rejection_ids_looked_up_first() {
        let user = subject(SubjectKind::User, "u");
        let sessions = vec!["s1".to_owned()];
        let lookups: Vec<String> = rejection_lookups(&user, &sessions)
            .iter()
            .map(Statement::render)
            .collect();
        assert_eq!(
            lookups,
            ["SELECT DISTINCT toString(rejection_id) FROM rejected_events WHERE has(['s1'], session_id)"]
        );
        let rejections: Vec<String> = (0..SESSIONS_PER_STATEMENT + 1)
            .map(|i| format!("{:032x}", i))
            .collect();
        let targets = plan(&user, &sessions, &rejections);
        let replays: Vec<&Target> = targets.iter().filter(|t| t.table == REPLAYS).collect();
        assert_eq!(replays.len(), 2);
        assert_eq!(
            replays[1].condition.render(),
            "has(['000000000000000000000000000003e8'], toString(rejection_id))"
        );
        assert_eq!(
            targets.len() - replays.len(),
            plan(&user, &sessions, &[]).len()
        );
        // Every table is reported, the session tables first.
        assert_eq!(TABLES[..SESSION_TABLES.len()], SESSION_TABLES);
        assert_eq!(TABLES[SESSION_TABLES.len()..], [REPLAYS]);
    }

    #[test]
    fn many_sessions_are_split_and_own_rows_named_once() {
        let sessions: Vec<String> = (0..SESSIONS_PER_STATEMENT * 2 + 1)
            .map(|i| format!("s{i:05}"))
            .collect();
        let targets = plan(&subject(SubjectKind::User, "u"), &sessions, &[]);
        assert_eq!(targets.len(), SESSION_TABLES.len() * 3);
        for table in SESSION_TABLES {
            let mine: Vec<&Target> = targets.iter().filter(|t| t.table == table).collect();
            assert_eq!(mine.len(), 3, "{table}");
            let bound: usize = mine
                .iter()
                .map(|t| match &t.condition.values()[0] {
                    crate::statement::Value::Texts(v) => v.len(),
                    other => panic!("{other:?}"),
                })
                .sum();
            assert_eq!(bound, sessions.len(), "{table}");
            let own = mine
                .iter()
                .filter(|t| t.condition.text().contains(" OR "))
                .count();
            let want = usize::from(matches!(
                table,
                "sessions_by_owner" | "identity_actors" | "identity_links"
            ));
            assert_eq!(own, want, "{table}");
        }
    }

    #[test]
    fn statements_render_as_the_server_reads_them() {
        let target = Target {
            table: "events",
            condition: Statement::new("").push(sql!("has(?, session_id)"), [vec!["a'b"].into()]),
        };
        let cases = [
            (count(&target), r"SELECT count() FROM events WHERE has(['a\'b'], session_id)"),
            (
                mutation(&target, None),
                r"ALTER TABLE events DELETE WHERE has(['a\'b'], session_id)",
            ),
            (
                mutation(&target, Some(("db", "eye"))),
                r"ALTER TABLE db.events_local ON CLUSTER eye DELETE WHERE has(['a\'b'], session_id)",
            ),
            (
                pending_mutations("db"),
                "SELECT count() FROM system.mutations WHERE database = 'db' AND is_done = 0",
            ),
            (
                suppressions_since(5, 9),
                "SELECT subject_kind, subject_id, deletion_id, added_at_us, expires_at_us FROM suppressions \
                 WHERE added_at_us > 5 AND expires_at_us > 9 ORDER BY added_at_us",
            ),
        ];
        for (statement, want) in cases {
            assert_eq!(statement.render(), want);
        }
    }

    #[test]
    fn subject_kinds_round_trip() {
        for k in SubjectKind::ALL {
            assert_eq!(SubjectKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(SubjectKind::parse("org"), None);
    }
}
