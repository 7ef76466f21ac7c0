//! End-to-end: retention (`EYE_RETENTION_*`, docs/lifecycle-retention.md) on the real
//! ClickHouse.
//!
//! Events of a category kept 30 days and of one kept forever, in months long past (written
//! straight into the store: ingest's time bounds refuse them), around the cutoff, and
//! quarantined records around theirs. Reads, through the store at a fixed instant and
//! through the query service, leave out exactly the expired ones: an event at the cutoff
//! stays, one a microsecond before it goes. `retention::apply` (what the consumer runs on
//! its schedule and `eye-admin retention apply` runs once) then drops the months that
//! expired whole (`system.parts` has no active part of them left, in every table partitioned
//! by time) and deletes the rest, while the category kept forever stays whole; the replay
//! outcomes of quarantined records expire with the quarantine's period; the metrics count
//! what went.

use anyhow::{ensure, Context};
use eye_e2e::{clickhouse_config, http_client, readonly_clickhouse_config, start_query_config};
use eye_e2e::{http_config, query_config, test_auth, unique, wait_ready};
use eye_model::time::EventTime;
use eye_store::retention::{self, RetentionConfig, RetentionMetrics, Table};
use eye_store::{ActorRow, EventFilter, EventRow, RejectedFilter, RejectedRow, ReplayRow, Store};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

const DAY: i64 = 86_400_000_000;
const SHORT: &str = "short_lived";
const FOREVER: &str = "kept_forever";

fn event(n: u128, category: &str, ts_us: i64) -> EventRow {
    EventRow {
        event_id: Uuid::from_u128(0x7e7e_0000 + n),
        session_id: format!("ret-{n}"),
        category: category.into(),
        name: "e".into(),
        ts_us,
        received_at_us: ts_us,
        data: format!(r#"{{"n":{n}}}"#),
        value: None,
        client_ts_us: ts_us,
        sent_at_us: None,
    }
}

fn rejected(n: u128, received_at_us: i64) -> RejectedRow {
    RejectedRow {
        rejection_id: Uuid::from_u128(0x4e4e_0000 + n),
        received_at_us,
        source: "test".into(),
        client: "test".into(),
        codes: vec!["invalid".into()],
        reasons: "[]".into(),
        raw: "{}".into(),
        event_id: String::new(),
        session_id: String::new(),
        category: String::new(),
        name: String::new(),
        raw_bytes: 2,
        raw_sha256: String::new(),
    }
}

fn month(us: i64) -> u32 {
    let s = EventTime::from_micros(us).to_rfc3339();
    s[..4].parse::<u32>().expect("year") * 100 + s[5..7].parse::<u32>().expect("month")
}

/// One number from ClickHouse, asked directly (as an operator would).
async fn count(database: &str, sql: &str) -> anyhow::Result<u64> {
    let c = clickhouse_config(database);
    let body = reqwest::Client::new()
        .post(&c.url)
        .query(&[("database", database)])
        .body(sql.to_owned())
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    body.trim()
        .parse()
        .with_context(|| format!("{sql}: {body}"))
}

/// Every value of `key` anywhere in `v`.
fn values_of(v: &Value, key: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if k == key => {
                        out.insert(s.clone());
                    }
                    _ => values_of(x, key, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| values_of(x, key, out)),
        _ => {}
    }
}

#[tokio::test]
async fn expired_data_is_hidden_at_the_boundary_then_dropped_and_deleted() -> anyhow::Result<()> {
    let database = format!("eye_test_{}", unique("retention"));
    let store = Store::new(&clickhouse_config(&database))?;
    store.migrate().await?;
    let settings = [
        ("EYE_RETENTION_CATEGORY_DAYS", "short_lived=30"),
        ("EYE_RETENTION_QUARANTINE_DAYS", "10"),
    ];
    let config: RetentionConfig = eye_runtime::config::from_pairs(&settings)?;
    let now = EventTime::now().as_micros();
    let cutoff = now - 30 * DAY;
    let q_cutoff = now - 10 * DAY;

    // Months far apart (≥ 50 days), so each holds only what is placed in it.
    let (whole_a, whole_b, mixed, forever_month) = (
        now - 400 * DAY,
        now - 340 * DAY,
        now - 250 * DAY,
        now - 200 * DAY,
    );
    let rows = vec![
        event(1, SHORT, whole_a),
        event(2, SHORT, whole_a + 1_000),
        event(3, SHORT, whole_b),
        event(4, SHORT, mixed),
        event(5, FOREVER, mixed + 1_000),
        event(6, FOREVER, forever_month),
        event(7, SHORT, cutoff - 1),
        event(8, SHORT, cutoff),
        event(9, SHORT, cutoff + 600 * 1_000_000),
        event(10, SHORT, now),
        event(11, FOREVER, whole_a - 40 * DAY),
    ];
    store.insert_events(&rows).await?;
    let actors: Vec<ActorRow> = rows
        .iter()
        .map(|r| ActorRow {
            actor_id: "user-1".into(),
            ts_us: r.ts_us,
            event_id: r.event_id,
            session_id: r.session_id.clone(),
            client_ts_us: r.client_ts_us,
        })
        .collect();
    store.insert_actors(&actors).await?;
    store
        .insert_rejected(&[
            rejected(1, now - 400 * DAY),
            rejected(2, q_cutoff - 1),
            rejected(3, q_cutoff),
            rejected(4, now),
            rejected(5, q_cutoff + 600 * 1_000_000),
        ])
        .await?;
    // Replay outcomes of records 1 to 4, recorded as they arrived: they expire with the
    // quarantine's period, counted from when they were recorded.
    let outcomes: Vec<ReplayRow> = [
        (1, now - 400 * DAY),
        (2, q_cutoff - 1),
        (3, q_cutoff),
        (4, now),
    ]
    .into_iter()
    .map(|(n, at): (u128, i64)| ReplayRow {
        rejection_id: Uuid::from_u128(0x4e4e_0000 + n),
        replay_id: Uuid::from_u128(0x5e5e_0000 + n),
        replayed_at_us: at,
        replayed_by: "test".into(),
        result: "rejected".into(),
        codes: vec!["invalid".into()],
        reasons: "[]".into(),
    })
    .collect();
    store.insert_replays(&outcomes).await?;
    let id = |n: u128| Uuid::from_u128(0x7e7e_0000 + n).to_string();
    let rid = |n: u128| Uuid::from_u128(0x4e4e_0000 + n).to_string();

    // Reads at the instant `now`: exactly at the boundary.
    let at_now = Store::new(&clickhouse_config(&database))?
        .with_retention(config.clone())
        .with_fixed_clock(now);
    let listed: BTreeSet<String> = at_now
        .events(&EventFilter {
            limit: 100,
            ..EventFilter::default()
        })
        .await?
        .iter()
        .map(|r| r.event_id.to_string())
        .collect();
    let kept: BTreeSet<String> = [5, 6, 8, 9, 10, 11].into_iter().map(id).collect();
    ensure!(listed == kept, "listed {listed:?}, want {kept:?}");
    let quarantine: BTreeSet<String> = at_now
        .rejected(&RejectedFilter {
            limit: 100,
            ..RejectedFilter::default()
        })
        .await?
        .iter()
        .map(|r| r.rejection_id.to_string())
        .collect();
    ensure!(
        quarantine == [3, 4, 5].into_iter().map(rid).collect(),
        "quarantine {quarantine:?}"
    );

    // Through the query service, on its own clock (a little later): event 8, at the cutoff
    // of the test's instant, may have gone meanwhile; 9, ten minutes inside, stays.
    let query = start_query_config(eye_query::Config {
        query: query_config(&[]),
        clickhouse: readonly_clickhouse_config(&database),
        auth: test_auth().config.clone(),
        http: http_config(&[]),
        deletion: eye_e2e::config(&[]),
        retention: config.clone(),
    })
    .await?;
    wait_ready(&[&query]).await?;
    let http = http_client();
    let mut seen = BTreeSet::new();
    for path in [
        "/v1/events?limit=100",
        "/v1/events?category=short_lived&limit=100",
        "/v1/identities/user-1/events?limit=100",
    ] {
        let page: Value = http.get(query.url(path)).send().await?.json().await?;
        let mut ids = BTreeSet::new();
        values_of(&page, "event_id", &mut ids);
        for gone in [1, 2, 3, 4, 7] {
            ensure!(
                !ids.contains(&id(gone)),
                "{path} shows expired event {gone}: {page}"
            );
        }
        seen.extend(ids);
    }
    ensure!(seen.contains(&id(9)) && seen.contains(&id(6)), "{seen:?}");
    let page: Value = http
        .get(query.url("/v1/rejected?limit=100"))
        .send()
        .await?
        .json()
        .await?;
    let mut ids = BTreeSet::new();
    values_of(&page, "rejection_id", &mut ids);
    ensure!(
        ids.contains(&rid(4)) && ids.contains(&rid(5)),
        "quarantine lacks kept records: {page}"
    );
    ensure!(
        !ids.contains(&rid(1)) && !ids.contains(&rid(2)),
        "quarantine shows expired records: {page}"
    );

    // The run: plan, drops, deletes.
    let plan = retention::apply(&store, &config, now, Duration::from_secs(60)).await?;
    let events_plan = plan.table(Table::Events);
    let dropped: Vec<u32> = events_plan.partitions.iter().map(|(m, _)| *m).collect();
    let mut want = vec![month(whole_a), month(whole_b)];
    want.sort_unstable();
    ensure!(dropped == want, "events dropped {dropped:?}, want {want:?}");
    ensure!(events_plan.rows_to_delete == 2, "{events_plan:?}"); // 4 and 7
                                                                 // The quarantine and its replay outcomes: the oldest month whole, one row at the cutoff.
    for t in [Table::Quarantine, Table::QuarantineReplays] {
        let p = plan.table(t);
        let months: Vec<u32> = p.partitions.iter().map(|(m, _)| *m).collect();
        ensure!(
            months == vec![month(now - 400 * DAY)] && p.rows_to_delete == 1,
            "{t:?}: {p:?}"
        );
    }

    // system.parts: no active part of a dropped month, in any table partitioned by time.
    for (table, months) in [
        ("events", &want),
        (".inner.events_by_type", &want),
        ("identity_actors", &want),
        ("rejected_events", &vec![month(now - 400 * DAY)]),
        ("rejected_replays", &vec![month(now - 400 * DAY)]),
    ] {
        let list = months
            .iter()
            .map(|m| format!("'{m}'"))
            .collect::<Vec<_>>()
            .join(",");
        let parts = count(
            &database,
            &format!(
                "SELECT count() FROM system.parts WHERE database = '{database}' AND table = '{table}' \
                 AND active AND partition IN ({list})"
            ),
        )
        .await?;
        ensure!(parts == 0, "{table}: {parts} active parts left in {list}");
    }
    // Nothing expired is stored anywhere; the category kept forever is whole.
    let expired_ids = [1, 2, 3, 4, 7]
        .into_iter()
        .map(|n| format!("'{}'", id(n)))
        .collect::<Vec<_>>()
        .join(",");
    for table in ["events", "events_by_type", "identity_actors", "event_keys"] {
        let left = count(
            &database,
            &format!("SELECT count() FROM {table} WHERE toString(event_id) IN ({expired_ids})"),
        )
        .await?;
        ensure!(left == 0, "{table} still holds {left} expired rows");
    }
    let forever = count(
        &database,
        &format!("SELECT count() FROM events WHERE category = '{FOREVER}'"),
    )
    .await?;
    ensure!(
        forever == 3,
        "{forever} events of the kept category, want 3"
    );
    for table in ["events", "events_by_type", "identity_actors", "event_keys"] {
        let n = count(&database, &format!("SELECT count() FROM {table}")).await?;
        ensure!(n == 6, "{table}: {n} rows, want the 6 kept");
    }
    let quarantined = count(&database, "SELECT count() FROM rejected_events").await?;
    ensure!(quarantined == 3, "{quarantined} quarantined, want 3");
    let outcomes = count(
        &database,
        "SELECT count() FROM rejected_replays WHERE replay_id IN (toUUID('00000000-0000-0000-0000-00005e5e0003'), \
         toUUID('00000000-0000-0000-0000-00005e5e0004'))",
    )
    .await?;
    let all_outcomes = count(&database, "SELECT count() FROM rejected_replays").await?;
    ensure!(
        outcomes == 2 && all_outcomes == 2,
        "replay outcomes left: {all_outcomes}, of them the kept 3 and 4: {outcomes}"
    );

    // A second run finds nothing more.
    let again = retention::plan(&store, &config, now).await?;
    for (t, p) in &again.tables {
        ensure!(
            p.partitions.is_empty() && p.rows_to_delete == 0,
            "{t:?}: {p:?}"
        );
    }

    // The metrics count what went.
    let registry = prometheus::Registry::new();
    let metrics = RetentionMetrics::new(&registry);
    metrics.record(&Ok(plan));
    let text = eye_runtime::telemetry::render(&registry);
    for line in [
        "eye_retention_partitions_dropped_total{table=\"events\"} 2",
        "eye_retention_rows_removed_total{how=\"partition\",table=\"events\"} 3",
        "eye_retention_rows_removed_total{how=\"delete\",table=\"events\"} 2",
        "eye_retention_partitions_dropped_total{table=\"rejected_events\"} 1",
        "eye_retention_partitions_dropped_total{table=\"rejected_replays\"} 1",
        "eye_retention_rows_removed_total{how=\"delete\",table=\"rejected_replays\"} 1",
        "eye_retention_runs_total{result=\"ok\"} 1",
    ] {
        ensure!(text.contains(line), "metrics lack {line}:\n{text}");
    }
    ensure!(
        text.contains(&format!(
            "eye_retention_last_run_timestamp_seconds {}",
            now / 1_000_000
        )),
        "{text}"
    );
    query.stop().await?;
    Ok(())
}
