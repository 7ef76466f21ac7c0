use super::*;
use crate::migrations::Cluster;
use crate::sql::retention as rsql;
use crate::statement::{Statement, Value};
use eye_runtime::config::from_pairs;

const NOW: i64 = 1_700_000_000_000_000;

fn config(pairs: &[(&str, &str)]) -> RetentionConfig {
    from_pairs(pairs).expect("valid retention")
}

#[test]
fn settings_parse_into_periods_or_name_the_bad_entry() {
    // (variables, Ok(categories, default, quarantine) or Err(text the message holds))
    type Want = Result<(Vec<(&'static str, u32)>, Option<u32>, Option<u32>), &'static str>;
    let cases: Vec<(Vec<(&str, &str)>, Want)> = vec![
        (vec![], Ok((vec![], None, None))),
        (
            vec![("EYE_RETENTION_CATEGORY_DAYS", "page_view=30, click=90,")],
            Ok((vec![("click", 90), ("page_view", 30)], None, None)),
        ),
        (
            vec![
                ("EYE_RETENTION_DEFAULT_DAYS", "365"),
                ("EYE_RETENTION_QUARANTINE_DAYS", "7"),
            ],
            Ok((vec![], Some(365), Some(7))),
        ),
        (
            vec![("EYE_RETENTION_CATEGORY_DAYS", "")],
            Ok((vec![], None, None)),
        ),
        (
            vec![("EYE_RETENTION_CATEGORY_DAYS", "page_view")],
            Err("entry \"page_view\" is not `<category>=<days>`"),
        ),
        (
            vec![("EYE_RETENTION_CATEGORY_DAYS", "page_view=30,click=soon")],
            Err("entry \"click=soon\": \"soon\" is not a number of days"),
        ),
        (
            vec![("EYE_RETENTION_CATEGORY_DAYS", "page view!=3")],
            Err("entry \"page view!=3\""),
        ),
        (
            vec![("EYE_RETENTION_CATEGORY_DAYS", "a=1,a=2")],
            Err("category \"a\" is given twice"),
        ),
        (
            vec![("EYE_RETENTION_DEFAULT_DAYS", "0")],
            Err("\"0\" is not a number of days from 1 to 36500"),
        ),
        (
            vec![("EYE_RETENTION_QUARANTINE_DAYS", "36501")],
            Err("\"36501\" is not a number of days"),
        ),
    ];
    for (vars, want) in cases {
        let got = from_pairs::<RetentionConfig>(&vars);
        match (got, want) {
            (Ok(c), Ok((categories, default, quarantine))) => {
                let got: Vec<(&str, u32)> = c
                    .category_days
                    .entries()
                    .iter()
                    .map(|(c, d)| (c.as_str(), d.get()))
                    .collect();
                assert_eq!(got, categories, "{vars:?}");
                assert_eq!(c.default_days.map(Days::get), default, "{vars:?}");
                assert_eq!(c.quarantine_days.map(Days::get), quarantine, "{vars:?}");
                assert_eq!(c.is_configured(), !vars.iter().all(|(_, v)| v.is_empty()));
            }
            (Err(e), Err(text)) => {
                let e = e.to_string();
                assert!(e.contains(text), "{vars:?}: {e}");
                assert!(e.contains("EYE_RETENTION_"), "names the variable: {e}");
            }
            (got, want) => panic!("{vars:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn cutoffs_are_now_minus_each_period() {
    let day = 86_400_000_000;
    // (variables, category → cutoff, quarantine, every-category-before, none-from)
    type Case<'a> = (
        Vec<(&'a str, &'a str)>,
        Vec<(&'a str, Option<i64>)>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let cases: Vec<Case> = vec![
        (vec![], vec![("a", None)], None, None, None),
        (
            vec![("EYE_RETENTION_CATEGORY_DAYS", "a=1,b=30")],
            vec![
                ("a", Some(NOW - day)),
                ("b", Some(NOW - 30 * day)),
                ("c", None),
            ],
            None,
            None,
            Some(NOW - day),
        ),
        (
            vec![
                ("EYE_RETENTION_CATEGORY_DAYS", "a=400"),
                ("EYE_RETENTION_DEFAULT_DAYS", "10"),
                ("EYE_RETENTION_QUARANTINE_DAYS", "2"),
            ],
            vec![("a", Some(NOW - 400 * day)), ("z", Some(NOW - 10 * day))],
            Some(NOW - 2 * day),
            Some(NOW - 400 * day),
            Some(NOW - 10 * day),
        ),
    ];
    for (vars, events, quarantine, all_before, none_from) in cases {
        let cut = config(&vars).cutoffs(NOW);
        for (category, want) in events {
            assert_eq!(cut.event(category), want, "{vars:?} {category}");
        }
        assert_eq!(cut.quarantine, quarantine, "{vars:?}");
        assert_eq!(cut.all_expired_before(), all_before, "{vars:?}");
        assert_eq!(cut.none_expired_from(), none_from, "{vars:?}");
    }
}

fn stat(partition: u32, category: &str, last_us: i64, rows: u64) -> PartitionStat {
    PartitionStat {
        partition,
        category: category.into(),
        last_us,
        rows,
    }
}

#[test]
fn a_partition_goes_only_when_every_category_in_it_has_expired() {
    let cut = Cutoffs {
        categories: vec![("short".into(), 100)],
        default: None,
        quarantine: None,
    };
    // (stats, droppable partitions with their rows)
    let cases: Vec<(Vec<PartitionStat>, Vec<(u32, u64)>)> = vec![
        (vec![], vec![]),
        // Newest row just before the cutoff: gone; at the cutoff: kept.
        (vec![stat(202301, "short", 99, 5)], vec![(202301, 5)]),
        (vec![stat(202301, "short", 100, 5)], vec![]),
        // A category kept forever keeps its month.
        (
            vec![stat(202301, "short", 1, 5), stat(202301, "forever", 1, 1)],
            vec![],
        ),
        (
            vec![
                stat(202302, "short", 50, 2),
                stat(202301, "short", 10, 3),
                stat(202303, "short", 150, 4),
            ],
            vec![(202301, 3), (202302, 2)],
        ),
    ];
    for (stats, want) in cases {
        assert_eq!(droppable(&stats, |c| cut.event(c)), want, "{stats:?}");
    }
}

#[test]
fn ttl_is_there_from_19_6() {
    for (version, want) in [
        ("18.16.1", false),
        ("19.5.4.22", false),
        ("19.6.2.11", true),
        ("19.10.1", true),
        ("24.3.1.2672", true),
        ("garbage", false),
    ] {
        assert_eq!(has_ttl(version), want, "{version}");
    }
}

fn values(s: &Statement) -> Vec<Value> {
    s.values().to_vec()
}

#[test]
fn reads_keep_what_has_not_expired_as_bound_values() {
    let mixed = Cutoffs {
        categories: vec![("a".into(), 5_000_000), ("b".into(), 7_000_000)],
        default: None,
        quarantine: Some(9_000_000),
    };
    let with_default = Cutoffs {
        default: Some(3_000_000),
        ..mixed.clone()
    };
    let only_default = Cutoffs {
        categories: vec![],
        default: Some(3_000_000),
        quarantine: None,
    };
    let none = Cutoffs::none();
    // (cutoffs, events text, values, quarantine text)
    let cases: Vec<(&Cutoffs, &str, Vec<Value>, &str)> = vec![
        (&none, "", vec![], ""),
        (
            &mixed,
            " AND ts_us >= multiIf(category = ?, toInt64(?), category = ?, toInt64(?), ts_us)",
            vec![
                Value::Text("a".into()),
                Value::Int(5_000_000),
                Value::Text("b".into()),
                Value::Int(7_000_000),
            ],
            " AND received_at_us >= ? AND received_at >= toDateTime(?)",
        ),
        (
            &with_default,
            " AND ts_us >= multiIf(category = ?, toInt64(?), category = ?, toInt64(?), toInt64(?)) \
             AND ts >= toDateTime(?)",
            vec![
                Value::Text("a".into()),
                Value::Int(5_000_000),
                Value::Text("b".into()),
                Value::Int(7_000_000),
                Value::Int(3_000_000),
                Value::Int(3),
            ],
            " AND received_at_us >= ? AND received_at >= toDateTime(?)",
        ),
        (
            &only_default,
            " AND ts_us >= toInt64(?) AND ts >= toDateTime(?)",
            vec![Value::Int(3_000_000), Value::Int(3)],
            "",
        ),
    ];
    for (cut, text, want, quarantine) in cases {
        let s = rsql::kept_events(Statement::new(""), cut);
        assert_eq!(s.text(), text, "{cut:?}");
        assert_eq!(values(&s), want, "{cut:?}");
        let q = rsql::kept_rejected(Statement::new(""), cut);
        assert_eq!(q.text(), quarantine, "{cut:?}");
    }
}

#[test]
fn every_read_of_events_and_the_quarantine_carries_the_cutoffs() {
    use crate::filters::*;
    use crate::sql;
    let cut = Cutoffs {
        categories: vec![("expiring_category".into(), 123_456_789)],
        default: None,
        quarantine: Some(987_654_321),
    };
    let events = EventFilter {
        limit: 10,
        ..EventFilter::default()
    };
    let by_session = EventFilter {
        session_id: Some("s".into()),
        limit: 10,
        ..EventFilter::default()
    };
    let identity = IdentityEventsFilter {
        actor_ids: vec!["u".into()],
        limit: 10,
        ..IdentityEventsFilter::default()
    };
    let owner = OwnerSessionsFilter {
        kind: OwnerKind::User,
        owner_id: "u".into(),
        after: None,
        limit: 10,
    };
    let aggregate = AggregateFilter {
        category: "c".into(),
        name: "n".into(),
        from_us: None,
        to_us: None,
        granularity: eye_model::aggregate::Granularity::Day,
        aggregation: eye_model::aggregate::Aggregation::Count,
        tz: "UTC".into(),
        limit: 10,
    };
    let rejected = RejectedFilter {
        limit: 10,
        ..RejectedFilter::default()
    };
    let refused = RefusedTimeFilter {
        codes: vec!["x".into()],
        session_id: None,
        limit: 10,
    };
    let event_reads = [
        ("events", sql::events(&events, false, &cut)),
        ("events by session", sql::events(&by_session, false, &cut)),
        (
            "events on cluster",
            sql::events_on_cluster(&events, false, &cut),
        ),
        ("event_count", sql::event_count(&events, &cut)),
        ("event_span", sql::event_span(&events, &cut)),
        ("session_stats", sql::session_stats("s", &cut)),
        ("session_events", sql::session_events("s", 10, &cut)),
        (
            "session_events on cluster",
            sql::session_events_on_cluster("s", 10, &cut),
        ),
        ("owner_sessions", sql::owner_sessions(&owner, &cut)),
        ("categories", sql::categories(10, &cut)),
        ("aggregate", sql::aggregate(&aggregate, &cut)),
        (
            "identity_events",
            sql::identity_events(&identity, false, &cut),
        ),
        (
            "identity_events on cluster",
            sql::identity_events_on_cluster(&identity, false, &cut),
        ),
    ];
    for (name, s) in event_reads {
        assert!(
            s.text().contains("ts_us >= multiIf(category = ?"),
            "{name}: {}",
            s.text()
        );
        assert!(s.values().contains(&Value::Int(123_456_789)), "{name}");
    }
    let quarantine_reads = [
        ("rejected", sql::rejected(&rejected, &cut)),
        (
            "rejected on cluster",
            sql::rejected_on_cluster(&rejected, &cut),
        ),
        ("refused_for_time", sql::refused_for_time(&refused, &cut)),
        (
            "refused_for_time on cluster",
            sql::refused_for_time_on_cluster(&refused, &cut),
        ),
    ];
    for (name, s) in quarantine_reads {
        assert!(
            s.text().contains("received_at_us >= ?"),
            "{name}: {}",
            s.text()
        );
        assert!(s.values().contains(&Value::Int(987_654_321)), "{name}");
    }
}

const CLUSTER: Cluster<'static> = Cluster {
    name: "eye",
    database: "db",
};

#[test]
fn removals_name_the_tables_and_bind_the_cutoffs() {
    let cut = Cutoffs {
        categories: vec![("a".into(), 500)],
        default: None,
        quarantine: Some(900),
    };
    let expired_events = "ts_us < multiIf(category = 'a', toInt64(500), ts_us)";
    // (statement, as the server receives it)
    let cases: Vec<(Statement, String)> = vec![
        (
            rsql::drop_partition(Table::Events, 202301, None),
            "ALTER TABLE `events` DROP PARTITION 202301".into(),
        ),
        (
            rsql::drop_partition(Table::EventsByType, 202301, Some(CLUSTER)),
            "ALTER TABLE db.`events_by_type_local` ON CLUSTER eye DROP PARTITION 202301"
                .into(),
        ),
        (
            rsql::delete_expired(Table::Events, &cut, &[], None),
            format!("ALTER TABLE `events` DELETE WHERE {expired_events}"),
        ),
        (
            rsql::delete_expired(Table::EventsByType, &cut, &[202301, 202302], None),
            format!(
                "ALTER TABLE `events_by_type` DELETE WHERE {expired_events} \
                 AND NOT has([202301,202302], toInt64(toYYYYMM(ts)))"
            ),
        ),
        (
            rsql::delete_expired(Table::IdentityActors, &cut, &[], None),
            format!(
                "ALTER TABLE `identity_actors` DELETE WHERE ts_us < 500 AND \
                 (session_id, event_id, client_ts_us) IN (SELECT session_id, event_id, \
                 client_ts_us FROM events WHERE {expired_events})"
            ),
        ),
        (
            rsql::delete_expired(Table::EventKeys, &cut, &[202212], Some(CLUSTER)),
            format!(
                "ALTER TABLE db.`event_keys_local` ON CLUSTER eye DELETE WHERE ts_us < 500 \
                 AND (session_id, event_id, client_ts_us) IN (SELECT session_id, event_id, \
                 client_ts_us FROM db.events_local WHERE {expired_events}) AND NOT has([202212], \
                 toInt64(toYYYYMM(toDateTime(intDiv(client_ts_us, 1000000), 'UTC'))))"
            ),
        ),
        (
            rsql::delete_expired(Table::Quarantine, &cut, &[], Some(CLUSTER)),
            "ALTER TABLE db.`rejected_events_local` ON CLUSTER eye DELETE WHERE received_at_us < 900"
                .into(),
        ),
        (
            rsql::expired_count(Table::Quarantine, &Cutoffs::none(), &[]),
            "SELECT count() FROM rejected_events WHERE 0 = 1".into(),
        ),
        (
            rsql::delete_expired(Table::QuarantineReplays, &cut, &[202301], None),
            "ALTER TABLE `rejected_replays` DELETE WHERE replayed_at_us < 900 \
             AND NOT has([202301], toInt64(toYYYYMM(replayed_at)))"
                .into(),
        ),
        (
            rsql::expired_count(Table::QuarantineReplays, &Cutoffs::none(), &[]),
            "SELECT count() FROM rejected_replays WHERE 0 = 1".into(),
        ),
        (
            rsql::partition_stats(Table::QuarantineReplays),
            "SELECT toYYYYMM(replayed_at) AS partition, '' AS category, max(replayed_at_us) AS last_us, \
             count() AS rows FROM rejected_replays GROUP BY partition, category ORDER BY partition, category"
                .into(),
        ),
        (
            rsql::partition_stats(Table::Quarantine),
            "SELECT toYYYYMM(received_at) AS partition, '' AS category, max(received_at_us) AS last_us, \
             count() AS rows FROM rejected_events GROUP BY partition, category ORDER BY partition, category"
                .into(),
        ),
        (
            rsql::pending_mutations(Table::EventsByType, "db", None),
            "SELECT count() FROM system.mutations WHERE is_done = 0 AND database = 'db' AND \
             substring(table, 1, 6) = '.inner'"
                .into(),
        ),
        (
            rsql::pending_mutations(Table::Events, "db", Some(CLUSTER)),
            "SELECT count() FROM cluster('eye', system, mutations) WHERE is_done = 0 AND \
             database = 'db' AND table = 'events_local'"
                .into(),
        ),
    ];
    for (statement, want) in cases {
        assert_eq!(statement.render(), want);
    }
}

#[test]
fn ttl_statements_give_each_category_its_days_and_the_rest_forever() {
    // (variables, cluster, the view's storage, statements as the server receives them).
    // The local server is 18.16, which has no TTL; deploy/sqlcheck.sh runs them on current
    // ClickHouse (chdb).
    let cases: Vec<(Vec<(&str, &str)>, Option<Cluster>, &str, Vec<&str>)> = vec![
        (vec![], None, ".inner.events_by_type", vec![]),
        (
            vec![("EYE_RETENTION_CATEGORY_DAYS", "page_view=30,click=90")],
            None,
            ".inner_id.5e467aef-e9af-45c7-b00f-1cc003656e1e",
            vec![
                "ALTER TABLE `events` MODIFY TTL multiIf(category = 'click', ts + toIntervalDay(90), \
                 category = 'page_view', ts + toIntervalDay(30), toDateTime(4294967295, 'UTC'))",
                "ALTER TABLE `.inner_id.5e467aef-e9af-45c7-b00f-1cc003656e1e` MODIFY TTL \
                 multiIf(category = 'click', \
                 ts + toIntervalDay(90), category = 'page_view', ts + toIntervalDay(30), \
                 toDateTime(4294967295, 'UTC'))",
            ],
        ),
        (
            vec![
                ("EYE_RETENTION_DEFAULT_DAYS", "365"),
                ("EYE_RETENTION_QUARANTINE_DAYS", "14"),
            ],
            Some(CLUSTER),
            ".inner.events_by_type_local",
            vec![
                "ALTER TABLE db.`events_local` ON CLUSTER eye MODIFY TTL ts + toIntervalDay(365)",
                "ALTER TABLE db.`.inner.events_by_type_local` ON CLUSTER eye MODIFY TTL \
                 ts + toIntervalDay(365)",
                "ALTER TABLE db.`rejected_events_local` ON CLUSTER eye MODIFY TTL \
                 received_at + toIntervalDay(14)",
                "ALTER TABLE db.`rejected_replays_local` ON CLUSTER eye MODIFY TTL \
                 replayed_at + toIntervalDay(14)",
            ],
        ),
    ];
    for (vars, cluster, storage, want) in cases {
        let got: Vec<String> = rsql::ttl_statements(&config(&vars), cluster, storage)
            .iter()
            .map(Statement::render)
            .collect();
        assert_eq!(got, want, "{vars:?}");
    }
}
