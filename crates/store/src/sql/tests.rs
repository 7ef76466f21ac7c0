use super::*;

const NONE: Cutoffs = Cutoffs {
    categories: Vec::new(),
    default: None,
    quarantine: None,
};
use uuid::Uuid;

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn check(cases: Vec<(Statement, String, Vec<Value>)>) {
    for (statement, want_text, want_values) in cases {
        assert_eq!(statement.text(), want_text);
        assert_eq!(statement.values(), want_values.as_slice(), "{want_text}");
    }
}

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
}

#[test]
fn partition_seconds_stay_inside_datetime() {
    for (us, s) in [
        (0, 0),
        (1_999_999, 1),
        (-1, 0),
        (i64::MIN, 0),
        (i64::MAX, i64::from(u32::MAX)),
    ] {
        assert_eq!(partition_second(us), s, "{us}");
    }
}

#[test]
fn fixed_and_single_session_statements() {
    let owned = "session_id IN (SELECT session_id FROM sessions_by_owner \
                 WHERE owner_kind = ? AND owner_id = ?)";
    let owner_sessions_text = |cursor: &str| {
        format!(
            "SELECT session_id, user_id, machine_id, org_id, started_at_us, ended_at_us, starts, ends, \
             events, first_us, last_us FROM (SELECT {SESSION_META_COLUMNS} FROM sessions WHERE {owned} \
             GROUP BY session_id) AS meta ANY LEFT JOIN (SELECT session_id, uniqExact(event_id, client_ts_us) \
             AS events, min(ts_us) AS first_us, max(ts_us) AS last_us FROM events WHERE {owned} \
             GROUP BY session_id) AS stats USING session_id {cursor}\
             ORDER BY started_at_us DESC, session_id DESC LIMIT ?"
        )
    };
    let owner = |after| OwnerSessionsFilter {
        kind: OwnerKind::Machine,
        owner_id: "m'1".into(),
        after,
        limit: 7,
    };
    let owner_values = vec![text("machine"), text("m'1"), text("machine"), text("m'1")];
    // (statement, text, values)
    check(vec![
        (ping(), "SELECT 1".into(), vec![]),
        (
            create_database("eye").unwrap(),
            "CREATE DATABASE IF NOT EXISTS eye".into(),
            vec![],
        ),
        (
            record_migration(3, "0003_x"),
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())".into(),
            vec![Value::UInt(3), text("0003_x")],
        ),
        (
            insert_dedup_window(REJECTED_TABLE),
            "ALTER TABLE rejected_events MODIFY SETTING non_replicated_deduplication_window = 1000"
                .into(),
            vec![],
        ),
        (
            session_meta("s1"),
            format!("SELECT {SESSION_META_COLUMNS} FROM sessions WHERE session_id = ? GROUP BY session_id"),
            vec![text("s1")],
        ),
        (
            session_stats("s1", &NONE),
            "SELECT uniqExact(event_id, client_ts_us) AS events, min(ts_us) AS first_us, \
             max(ts_us) AS last_us FROM events WHERE session_id = ?"
                .into(),
            vec![text("s1")],
        ),
        (
            session_events("s1", 50, &NONE),
            format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE session_id = ? ORDER BY ts_us, event_id \
                 LIMIT 1 BY event_id, client_ts_us LIMIT ?"
            ),
            vec![text("s1"), Value::UInt(50)],
        ),
        (
            categories(10, &NONE),
            "SELECT category, name, uniqExact(session_id, event_id, client_ts_us) AS events, \
             min(ts_us) AS first_us, max(ts_us) AS last_us FROM events_by_type \
             WHERE 1 = 1 GROUP BY category, name ORDER BY category, name LIMIT ?"
                .into(),
            vec![Value::UInt(10)],
        ),
        (owner_sessions(&owner(None), &NONE), owner_sessions_text(""), {
            let mut v = owner_values.clone();
            v.push(Value::UInt(7));
            v
        }),
        (
            owner_sessions(&owner(Some((5, "s9".into()))), &NONE),
            owner_sessions_text(
                "WHERE (started_at_us < ? OR (started_at_us = ? AND session_id < ?)) ",
            ),
            {
                let mut v = owner_values.clone();
                v.extend([Value::Int(5), Value::Int(5), text("s9"), Value::UInt(7)]);
                v
            },
        ),
    ]);
}

#[test]
fn stored_copies_bind_each_identity_part_once_in_order() {
    let (a, b) = (Uuid::from_u128(2), Uuid::from_u128(1));
    let keys = [("s2", a, 30), ("s1", b, 10), ("s2", a, 30), ("s1", a, 20)];
    check(vec![(
        stored_copies(&keys),
        "SELECT client_ts_us, session_id, event_id, ts_us, received_at_us FROM event_keys \
         WHERE client_ts_us IN (SELECT toInt64(arrayJoin(?))) AND session_id IN (SELECT arrayJoin(?)) \
         AND event_id IN (SELECT toUUID(arrayJoin(?)))"
            .into(),
        vec![
            Value::Ints(vec![10, 20, 30]),
            Value::Texts(vec!["s1".into(), "s2".into()]),
            Value::Texts(vec![b.to_string(), a.to_string()]),
        ],
    )]);
}

#[test]
fn rejected_listing_binds_each_filter_with_its_condition() {
    let id = Uuid::from_u128(7);
    let text_of = |conditions: &str| {
        format!(
            "SELECT {REJECTED_COLUMNS} FROM rejected_events WHERE 1 = 1{conditions} \
             ORDER BY received_at_us, rejection_id LIMIT 1 BY rejection_id LIMIT ?"
        )
    };
    let f = |reason: Option<&str>, from_us, to_us, after| RejectedFilter {
        reason: reason.map(Into::into),
        from_us,
        to_us,
        after,
        limit: 9,
        ..RejectedFilter::default()
    };
    let by_origin = RejectedFilter {
        client: Some("c1".into()),
        category: Some("page_interaction".into()),
        name: Some("page_view".into()),
        limit: 9,
        ..RejectedFilter::default()
    };
    check(vec![
        (
            rejected(&by_origin, &NONE),
            text_of(" AND client = ? AND category = ? AND name = ?"),
            vec![
                text("c1"),
                text("page_interaction"),
                text("page_view"),
                Value::UInt(9),
            ],
        ),
        (
            rejected(&f(None, None, None, None), &NONE),
            text_of(""),
            vec![Value::UInt(9)],
        ),
        (
            rejected(&f(Some("bad"), None, None, None), &NONE),
            text_of(" AND has(codes, ?)"),
            vec![text("bad"), Value::UInt(9)],
        ),
        (
            rejected(&f(None, Some(1), Some(2), None), &NONE),
            text_of(" AND received_at_us >= ? AND received_at_us < ?"),
            vec![Value::Int(1), Value::Int(2), Value::UInt(9)],
        ),
        (
            rejected(&f(Some("bad"), Some(1), Some(2), Some((3, id))), &NONE),
            text_of(
                " AND has(codes, ?) AND received_at_us >= ? AND received_at_us < ? \
                 AND (received_at_us > ? OR (received_at_us = ? AND rejection_id > toUUID(?)))",
            ),
            vec![
                text("bad"),
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
                Value::Int(3),
                text(&id.to_string()),
                Value::UInt(9),
            ],
        ),
    ]);
}

#[test]
fn event_listing_picks_the_ordering_that_serves_its_filters() {
    let id = Uuid::from_u128(5);
    let cursor = |op: &str| {
        format!(
            " AND (ts_us {op} ? OR (ts_us = ? AND (event_id {op} toUUID(?) \
             OR (event_id = toUUID(?) AND session_id {op} ?))))"
        )
    };
    let cursor_values = || {
        vec![
            Value::Int(4_000_000),
            Value::Int(4_000_000),
            text(&id.to_string()),
            text(&id.to_string()),
            text("s0"),
        ]
    };
    let owned = " AND session_id IN (SELECT session_id FROM sessions_by_owner \
                 WHERE owner_kind = ? AND owner_id = ?)";
    // (filter, table, conditions after `1 = 1`, values before the limit)
    let cases: Vec<(EventFilter, &str, String, Vec<Value>)> = vec![
        (
            EventFilter::default(),
            "events_by_type",
            String::new(),
            vec![],
        ),
        (
            EventFilter {
                session_id: Some("s1".into()),
                from_us: Some(1_500_000),
                to_us: Some(-3),
                ..EventFilter::default()
            },
            "events",
            " AND session_id = ? AND ts_us >= ? AND ts >= toDateTime(?) \
             AND ts_us < ? AND ts <= toDateTime(?)"
                .into(),
            vec![
                text("s1"),
                Value::Int(1_500_000),
                Value::Int(1),
                Value::Int(-3),
                Value::Int(0),
            ],
        ),
        (
            EventFilter {
                owner: Some((OwnerKind::Org, "o".into())),
                after: Some((4_000_000, id, "s0".into())),
                descending: true,
                ..EventFilter::default()
            },
            "events",
            format!("{owned}{}", cursor("<")),
            [vec![text("org"), text("o")], cursor_values()].concat(),
        ),
        (
            EventFilter {
                category: Some("c".into()),
                name: Some("n".into()),
                after: Some((4_000_000, id, "s0".into())),
                ..EventFilter::default()
            },
            "events_by_type",
            format!(" AND category = ? AND name = ?{}", cursor(">")),
            [vec![text("c"), text("n")], cursor_values()].concat(),
        ),
        (
            EventFilter {
                name: Some("n".into()),
                descending: true,
                ..EventFilter::default()
            },
            "events_by_type",
            " AND name = ?".into(),
            vec![text("n")],
        ),
    ];
    for (mut filter, table, conditions, mut values) in cases {
        filter.limit = 11;
        values.push(Value::UInt(11));
        let dir = if filter.descending { "DESC" } else { "ASC" };
        let order = format!("ORDER BY ts_us {dir}, event_id {dir}, session_id {dir}");
        let dedup = "LIMIT 1 BY session_id, event_id, client_ts_us ";
        let head = format!("SELECT {EVENT_COLUMNS} FROM {table} WHERE 1 = 1{conditions} {order} ");
        check(vec![
            (
                events(&filter, false, &NONE),
                format!("{head}{dedup}LIMIT ?"),
                values.clone(),
            ),
            // The negative control's raw listing differs only by the deduplication.
            (
                events(&filter, true, &NONE),
                format!("{head}LIMIT ?"),
                values,
            ),
        ]);
    }
}

#[test]
fn aggregation_binds_zone_type_range_and_limit_in_order() {
    let zone = || text("Europe/Paris");
    // (granularity, aggregation, from, to, bucket expression, zone values, function)
    let cases = [
        (
            Granularity::Hour,
            Aggregation::Avg,
            Some(1_000_000),
            Some(3_000_000),
            "toStartOfHour(ts, ?)",
            vec![zone()],
            "avg(value)",
        ),
        (
            Granularity::Week,
            Aggregation::P95,
            Some(1_000_000),
            None,
            "toDateTime(toMonday(ts, ?), ?)",
            vec![zone(), zone()],
            "quantileExact(0.95)(value)",
        ),
        (
            Granularity::Year,
            Aggregation::Sum,
            None,
            None,
            "toDateTime(toStartOfYear(ts, ?), ?)",
            vec![zone(), zone()],
            "sum(value)",
        ),
        (
            Granularity::None,
            Aggregation::Count,
            None,
            Some(3_000_000),
            "0",
            vec![],
            "count()",
        ),
        (
            Granularity::Minute,
            Aggregation::P99,
            None,
            None,
            "toStartOfMinute(ts, ?)",
            vec![zone()],
            "quantileExact(0.99)(value)",
        ),
    ];
    for (granularity, aggregation, from_us, to_us, bucket, mut values, function) in cases {
        let mut range = String::new();
        values.extend([text("metric"), text("cpu")]);
        if let Some(t) = from_us {
            range.push_str(" AND ts_us >= ? AND ts >= toDateTime(?)");
            values.extend([Value::Int(t), Value::Int(t / 1_000_000)]);
        }
        if let Some(t) = to_us {
            range.push_str(" AND ts_us < ? AND ts <= toDateTime(?)");
            values.extend([Value::Int(t), Value::Int(t / 1_000_000)]);
        }
        values.push(Value::UInt(100));
        let not_null = if aggregation == Aggregation::Count {
            ""
        } else {
            " AND isNotNull(value)"
        };
        let statement = aggregate(
            &AggregateFilter {
                category: "metric".into(),
                name: "cpu".into(),
                from_us,
                to_us,
                granularity,
                aggregation,
                tz: "Europe/Paris".into(),
                limit: 100,
            },
            &NONE,
        );
        check(vec![(
            statement,
            format!(
                "SELECT toInt64({bucket}) AS start_s, toFloat64(assumeNotNull({function})) AS value, \
                 count() AS events, min(ts_us) AS first_us FROM (SELECT session_id, event_id, \
                 client_ts_us, ts, ts_us, value FROM events_by_type WHERE category = ? AND name = ?\
                 {range}{not_null} LIMIT 1 BY session_id, event_id, client_ts_us) \
                 GROUP BY start_s HAVING events > 0 ORDER BY start_s LIMIT ?"
            ),
            values,
        )]);
    }
}

#[test]
fn identity_statements_bind_ids_cursor_and_limits_in_order() {
    check(vec![
        (
            linked_ids(&["u1", "u'2"], 1_000),
            "SELECT DISTINCT anonymous_id FROM identity_links WHERE user_id IN (SELECT arrayJoin(?)) \
             ORDER BY anonymous_id LIMIT ?"
                .into(),
            vec![
                Value::Texts(vec!["u1".into(), "u'2".into()]),
                Value::UInt(1_000),
            ],
        ),
        (
            actor_seen("u1", &NONE),
            "SELECT count() FROM (SELECT 1 FROM identity_actors WHERE actor_id = ? LIMIT 1)".into(),
            vec![text("u1")],
        ),
    ]);
    let id = Uuid::from_u128(5);
    let cursor = |op: &str| {
        format!(
            " AND (ts_us {op} ? OR (ts_us = ? AND (event_id {op} toUUID(?) \
             OR (event_id = toUUID(?) AND session_id {op} ?))))"
        )
    };
    let cursor_values = vec![
        Value::Int(4_000_000),
        Value::Int(4_000_000),
        text(&id.to_string()),
        text(&id.to_string()),
        text("s0"),
    ];
    let dedup = "LIMIT 1 BY session_id, event_id, client_ts_us ";
    // (after, descending, raw, cursor text, values of one cursor)
    let cases = [
        (None, false, false, String::new(), vec![]),
        (
            Some((4_000_000, id, "s0".to_owned())),
            true,
            false,
            cursor("<"),
            cursor_values.clone(),
        ),
        (
            Some((4_000_000, id, "s0".to_owned())),
            false,
            true,
            cursor(">"),
            cursor_values,
        ),
    ];
    for (after, descending, raw, cursor, cursor_values) in cases {
        let dir = if descending { "DESC" } else { "ASC" };
        let order = format!("ORDER BY ts_us {dir}, event_id {dir}, session_id {dir}");
        let page = format!(
            "SELECT session_id, event_id, client_ts_us FROM identity_actors \
             WHERE actor_id IN (SELECT arrayJoin(?)){cursor} {order} {dedup}LIMIT ?"
        );
        let outer_dedup = if raw { "" } else { dedup };
        let want = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE session_id IN (SELECT session_id FROM ({page})) \
             AND (session_id, event_id, client_ts_us) IN ({page}){cursor} {order} {outer_dedup}LIMIT ?"
        );
        let ids = Value::Texts(vec!["u".into(), "a".into()]);
        let page_values = [vec![ids], cursor_values.clone(), vec![Value::UInt(3)]].concat();
        let values = [
            page_values.clone(),
            page_values,
            cursor_values,
            vec![Value::UInt(3)],
        ]
        .concat();
        let filter = IdentityEventsFilter {
            actor_ids: vec!["u".into(), "a".into()],
            after,
            descending,
            limit: 3,
        };
        check(vec![(identity_events(&filter, raw, &NONE), want, values)]);
    }
}

#[test]
fn numbered_pages_and_counts_share_the_listing_conditions() {
    let filter = EventFilter {
        session_id: Some("s1".into()),
        category: Some("c".into()),
        from_us: Some(2_000_000),
        descending: true,
        offset: 20,
        limit: 10,
        ..EventFilter::default()
    };
    let conditions = " AND session_id = ? AND category = ? AND ts_us >= ? AND ts >= toDateTime(?)";
    let bound = vec![text("s1"), text("c"), Value::Int(2_000_000), Value::Int(2)];
    check(vec![
        (
            events(&filter, false, &NONE),
            format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1{conditions} \
                 ORDER BY ts_us DESC, event_id DESC, session_id DESC \
                 LIMIT 1 BY session_id, event_id, client_ts_us LIMIT ?, ?"
            ),
            [bound.clone(), vec![Value::UInt(20), Value::UInt(10)]].concat(),
        ),
        // The count ignores order, offset and limit: the matches of every page.
        (
            event_count(&filter, &NONE),
            format!(
                "SELECT uniqExact(session_id, event_id, client_ts_us) FROM events WHERE 1 = 1{conditions}"
            ),
            bound,
        ),
        (
            event_count(
                &EventFilter {
                    category: Some("c".into()),
                    ..EventFilter::default()
                },
                &NONE,
            ),
            "SELECT uniqExact(session_id, event_id, client_ts_us) FROM events_by_type \
             WHERE 1 = 1 AND category = ?"
                .into(),
            vec![text("c")],
        ),
    ]);
}

#[test]
fn refused_times_bind_the_codes_as_one_array() {
    let head = format!("SELECT {REJECTED_COLUMNS} FROM rejected_events WHERE hasAny(codes, ?)");
    let tail = " ORDER BY received_at_us DESC, rejection_id DESC LIMIT 1 BY rejection_id LIMIT ?";
    let codes = vec![
        "invalid_timestamp".to_owned(),
        "timestamp_in_future".to_owned(),
    ];
    let f = |session_id: Option<&str>| RefusedTimeFilter {
        codes: codes.clone(),
        session_id: session_id.map(Into::into),
        limit: 5,
    };
    check(vec![
        (
            refused_for_time(&f(None), &NONE),
            format!("{head}{tail}"),
            vec![Value::Texts(codes.clone()), Value::UInt(5)],
        ),
        (
            refused_for_time(&f(Some("s")), &NONE),
            format!("{head} AND session_id = ?{tail}"),
            vec![Value::Texts(codes.clone()), text("s"), Value::UInt(5)],
        ),
    ]);
}

#[test]
fn cluster_listings_take_each_shards_first_rows_then_sort_and_cut_once_more() {
    let dedup = "LIMIT 1 BY session_id, event_id, client_ts_us ";
    let filter = EventFilter {
        category: Some("web".into()),
        offset: 20,
        limit: 10,
        descending: true,
        ..EventFilter::default()
    };
    let order = "ts_us DESC, event_id DESC, session_id DESC";
    let inner = format!(
        "SELECT {EVENT_COLUMNS} FROM events_by_type WHERE 1 = 1 AND category = ? \
         ORDER BY {order} {dedup}LIMIT ?"
    );
    let rejected_filter = RejectedFilter {
        limit: 5,
        ..RejectedFilter::default()
    };
    check(vec![
        (
            events_on_cluster(&filter, false, &NONE),
            format!("SELECT * FROM ({inner}) ORDER BY {order} LIMIT ?, ?"),
            vec![
                text("web"),
                Value::UInt(30),
                Value::UInt(20),
                Value::UInt(10),
            ],
        ),
        (
            session_events_on_cluster("s1", 50, &NONE),
            format!(
                "SELECT * FROM (SELECT {EVENT_COLUMNS} FROM events WHERE session_id = ? \
                 ORDER BY ts_us, event_id LIMIT 1 BY event_id, client_ts_us LIMIT ?) \
                 ORDER BY ts_us, event_id LIMIT ?"
            ),
            vec![text("s1"), Value::UInt(50), Value::UInt(50)],
        ),
        (
            rejected_on_cluster(&rejected_filter, &NONE),
            format!(
                "SELECT * FROM (SELECT {REJECTED_COLUMNS} FROM rejected_events WHERE 1 = 1 \
                 ORDER BY received_at_us, rejection_id LIMIT 1 BY rejection_id LIMIT ?) \
                 ORDER BY received_at_us, rejection_id LIMIT ?"
            ),
            vec![Value::UInt(5), Value::UInt(5)],
        ),
    ]);
    assert_eq!(page_end(u64::MAX, 10), u32::MAX);
}
