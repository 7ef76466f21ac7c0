//! Every statement the Store sends, with sample values, for `eye-admin sql`: `make test`
//! (deploy/sqlcheck.sh) runs them on current ClickHouse through chdb and checks their
//! results against the rows deploy/sqlcheck.py inserts. They are built by the same
//! `eye_store::sql` functions the Store calls, so the check covers the SQL that runs.

use eye_model::aggregate::{Aggregation, Granularity};
use eye_store::retention::Cutoffs;
use eye_store::sql;
use eye_store::statement::Statement;
use eye_store::{
    AggregateFilter, EventFilter, IdentityEventsFilter, OwnerKind, OwnerSessionsFilter,
    RefusedTimeFilter, RejectedFilter,
};
use uuid::Uuid;

/// The session of deploy/sqlcheck.py's sample events.
const SESSION: &str = "sql-check-session";

/// The first sample event of deploy/sqlcheck.py.
const FIRST_EVENT: Uuid = Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001);
/// The third sample event of deploy/sqlcheck.py's session.
const THIRD_EVENT: Uuid = Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0003);
/// The other session's sample event.
const OTHER_EVENT: Uuid = Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0009);

/// The statements, named as deploy/sqlcheck.py expects them.
pub fn statements() -> Vec<(String, Statement)> {
    let fixed = [
        ("ping", sql::ping()),
        ("insert_token_supported", sql::insert_token_supported()),
        (
            "insert_dedup_window_events",
            sql::insert_dedup_window(sql::EVENTS_TABLE),
        ),
        (
            "insert_dedup_window_rejected",
            sql::insert_dedup_window(sql::REJECTED_TABLE),
        ),
        (
            "insert_dedup_window_sessions",
            sql::insert_dedup_window(sql::SESSIONS_TABLE),
        ),
        (
            "insert_dedup_window_links",
            sql::insert_dedup_window(sql::LINKS_TABLE),
        ),
        (
            "insert_dedup_window_actors",
            sql::insert_dedup_window(sql::ACTORS_TABLE),
        ),
        (
            "linked_ids",
            sql::linked_ids(&["sample-user", "nobody"], 1_000),
        ),
        ("actor_seen", sql::actor_seen("sample-anon", &kept())),
        (
            "identity_events",
            sql::identity_events(
                &IdentityEventsFilter {
                    actor_ids: vec!["sample-user".into(), "sample-anon".into()],
                    limit: 100,
                    ..IdentityEventsFilter::default()
                },
                false,
                &kept(),
            ),
        ),
        (
            "identity_events_desc_after",
            sql::identity_events(
                &IdentityEventsFilter {
                    actor_ids: vec!["sample-user".into(), "sample-anon".into()],
                    after: Some((3_000_000, THIRD_EVENT, SESSION.into())),
                    descending: true,
                    limit: 1,
                },
                false,
                &kept(),
            ),
        ),
        ("create_migrations_table", sql::create_migrations_table()),
        ("applied_migrations", sql::applied_migrations()),
        (
            "record_migration",
            sql::record_migration(999, "0999_sample"),
        ),
        ("session_events", sql::session_events(SESSION, 100, &kept())),
        ("event_counts", sql::event_counts()),
        (
            "rejected_all",
            sql::rejected(
                &RejectedFilter {
                    limit: 100,
                    ..RejectedFilter::default()
                },
                &kept(),
            ),
        ),
        (
            "rejected_filtered",
            sql::rejected(
                &RejectedFilter {
                    reason: Some("invalid_timestamp".into()),
                    from_us: Some(0),
                    to_us: Some(4_000_000_000_000_000),
                    after: Some((1, Uuid::nil())),
                    limit: 100,
                    ..RejectedFilter::default()
                },
                &kept(),
            ),
        ),
        (
            "rejected_by_origin",
            sql::rejected(
                &RejectedFilter {
                    client: Some("c1".into()),
                    category: Some("page_interaction".into()),
                    name: Some("page_view".into()),
                    limit: 100,
                    ..RejectedFilter::default()
                },
                &kept(),
            ),
        ),
        (
            "replay_outcomes",
            sql::replay_outcomes(&[FIRST_EVENT, Uuid::nil()]),
        ),
        ("session_meta", sql::session_meta(SESSION)),
        ("categories", sql::categories(100, &kept())),
        (
            "events_by_type_page",
            events(EventFilter {
                category: Some("c".into()),
                name: Some("n".into()),
                from_us: Some(0),
                to_us: Some(10_000_000),
                // The page starts after the first sample event.
                after: Some((1_000_000, FIRST_EVENT, SESSION.into())),
                limit: 100,
                ..EventFilter::default()
            }),
        ),
        ("session_stats", sql::session_stats(SESSION, &kept())),
        (
            "stored_copies",
            sql::stored_copies(&[
                (SESSION, FIRST_EVENT, 1_000_000),
                ("other", OTHER_EVENT, 500_000),
            ]),
        ),
        (
            "user_sessions",
            sql::owner_sessions(
                &OwnerSessionsFilter {
                    kind: OwnerKind::User,
                    owner_id: "u".into(),
                    after: None,
                    limit: 100,
                },
                &kept(),
            ),
        ),
        (
            "user_sessions_after",
            sql::owner_sessions(
                &OwnerSessionsFilter {
                    kind: OwnerKind::User,
                    owner_id: "u".into(),
                    after: Some((1_000_000, SESSION.into())),
                    limit: 100,
                },
                &kept(),
            ),
        ),
        (
            "machine_events",
            events(EventFilter {
                owner: Some((OwnerKind::Machine, "m".into())),
                from_us: Some(1_500_000),
                limit: 100,
                ..EventFilter::default()
            }),
        ),
        (
            "events_time_range",
            events(EventFilter {
                from_us: Some(0),
                to_us: Some(2_500_000),
                limit: 100,
                ..EventFilter::default()
            }),
        ),
        (
            "events_name_only",
            events(EventFilter {
                name: Some("n".into()),
                descending: true,
                limit: 100,
                ..EventFilter::default()
            }),
        ),
        (
            "events_numbered_page",
            events(EventFilter {
                category: Some("c".into()),
                from_us: Some(0),
                descending: true,
                offset: 1,
                limit: 10,
                ..EventFilter::default()
            }),
        ),
        (
            "event_count",
            sql::event_count(
                &EventFilter {
                    session_id: Some(SESSION.into()),
                    to_us: Some(4_000_000),
                    ..EventFilter::default()
                },
                &kept(),
            ),
        ),
        (
            "event_span",
            sql::event_span(
                &EventFilter {
                    category: Some("page_interaction".into()),
                    from_us: Some(1_000_000),
                    after: Some((2_000_000, Uuid::from_u128(7), SESSION.into())),
                    ..EventFilter::default()
                },
                &kept(),
            ),
        ),
        (
            "refused_for_time",
            sql::refused_for_time(
                &RefusedTimeFilter {
                    codes: vec!["invalid_timestamp".into(), "timestamp_in_future".into()],
                    session_id: Some(SESSION.into()),
                    limit: 100,
                },
                &kept(),
            ),
        ),
        (
            "session_events_page_desc",
            events(EventFilter {
                session_id: Some(SESSION.into()),
                descending: true,
                limit: 2,
                ..EventFilter::default()
            }),
        ),
    ];
    let mut out: Vec<(String, Statement)> = fixed
        .into_iter()
        .map(|(name, s)| (name.to_owned(), s))
        .collect();
    // Every bucket expression with one aggregation, and every aggregation with one bucket
    // expression, over the sample metric of deploy/sqlcheck.py.
    let shapes = Granularity::ALL
        .into_iter()
        .map(|g| (g, Aggregation::Avg))
        .chain(Aggregation::ALL.into_iter().map(|a| (Granularity::Day, a)));
    for (granularity, aggregation) in shapes {
        let name = format!(
            "aggregate_{}_{}",
            granularity.as_str(),
            aggregation.as_str()
        );
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let statement = sql::aggregate(
            &AggregateFilter {
                category: "metric".into(),
                name: "cpu".into(),
                from_us: Some(1_774_656_000_000_000), // 2026-03-28T00:00:00Z
                to_us: Some(1_775_001_600_000_000),   // 2026-04-01T00:00:00Z
                granularity,
                aggregation,
                tz: "Europe/Paris".into(),
                limit: 10_001,
            },
            &kept(),
        );
        out.push((name, statement));
    }
    out.extend(lifecycle());
    out
}

/// The data lifecycle's maintenance statements: deleting a subject, removing expired data
/// (partition drops, mutations, TTL). deploy/sqlcheck.py runs them after every read has
/// been checked (they change the sample rows), resolving the view storage that
/// `MODIFY TTL` must name as `Store::view_storage` does (`lifecycle_view_uuid`).
fn lifecycle() -> Vec<(String, Statement)> {
    use eye_store::deletion::{self, Subject, SubjectKind};
    use eye_store::retention::{RetentionConfig, Table};
    use eye_store::sql::retention as rsql;
    let mut out = vec![(
        "lifecycle_view_uuid".to_owned(),
        sql::table_uuid("eye", "events_by_type"),
    )];
    let user = Subject {
        kind: SubjectKind::User,
        id: "sample-user".into(),
    };
    for (i, lookup) in user.session_lookups().into_iter().enumerate() {
        out.push((format!("lifecycle_deletion_lookup_{i}"), lookup));
    }
    for (i, lookup) in deletion::rejection_lookups(&user, &[SESSION.into()])
        .into_iter()
        .enumerate()
    {
        out.push((format!("lifecycle_deletion_rejections_{i}"), lookup));
    }
    let rejection = "00000000-0000-7000-8000-000000000001".to_owned();
    for target in deletion::plan(&user, &[SESSION.into()], &[rejection]) {
        out.push((
            format!("lifecycle_deletion_count_{}", target.table),
            deletion::count(&target),
        ));
        out.push((
            format!("lifecycle_deletion_mutation_{}", target.table),
            deletion::mutation(&target, None),
        ));
    }
    out.push((
        "lifecycle_deletion_pending".into(),
        deletion::pending_mutations("eye"),
    ));
    let cut = Cutoffs {
        categories: vec![("metric".into(), 1_000_000)],
        default: None,
        quarantine: Some(1_000_000),
    };
    for t in Table::ALL {
        let name = t.name();
        out.push((
            format!("lifecycle_retention_stats_{name}"),
            rsql::partition_stats(t),
        ));
        out.push((
            format!("lifecycle_retention_count_{name}"),
            rsql::expired_count(t, &cut, &[197001]),
        ));
        out.push((
            format!("lifecycle_retention_delete_{name}"),
            rsql::delete_expired(t, &cut, &[197001], None),
        ));
        out.push((
            format!("lifecycle_retention_drop_{name}"),
            rsql::drop_partition(t, 197001, None),
        ));
        out.push((
            format!("lifecycle_retention_pending_{name}"),
            rsql::pending_mutations(t, "eye", None),
        ));
    }
    let config: RetentionConfig = eye_runtime::config::from_iter([
        (
            "EYE_RETENTION_CATEGORY_DAYS".to_owned(),
            "metric=30".to_owned(),
        ),
        ("EYE_RETENTION_QUARANTINE_DAYS".to_owned(), "14".to_owned()),
    ])
    .expect("sample retention settings");
    for (i, ttl) in rsql::ttl_statements(&config, None, ".inner.events_by_type")
        .into_iter()
        .enumerate()
    {
        out.push((format!("lifecycle_ttl_{i}"), ttl));
    }
    out
}

/// Retention cutoffs that keep every sample row (all at the epoch), so each read runs with
/// its retention condition and still finds what deploy/sqlcheck.py expects.
fn kept() -> Cutoffs {
    Cutoffs {
        categories: vec![("metric".into(), 0)],
        default: Some(0),
        quarantine: Some(0),
    }
}

/// An event listing as the Store runs it, with read-time deduplication.
fn events(f: EventFilter) -> Statement {
    sql::events(&f, false, &kept())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_sample_is_named_once_and_renders_with_every_value_bound() {
        let samples = statements();
        let names: HashSet<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), samples.len(), "a name is used twice");
        // deploy/sqlcheck.py expects 7 granularities and 9 aggregations, day/avg once.
        let shapes = names.iter().filter(|n| n.starts_with("aggregate_")).count();
        assert_eq!(shapes, 7 + 9 - 1);
        for (name, statement) in &samples {
            let sql = statement.render();
            assert!(!sql.contains('?'), "{name}: {sql}");
            assert!(
                sql.starts_with("SELECT")
                    || sql.starts_with("INSERT")
                    || sql.starts_with("ALTER")
                    || sql.starts_with("CREATE"),
                "{name}: {sql}"
            );
        }
    }
}
