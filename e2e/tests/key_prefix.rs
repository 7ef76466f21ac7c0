//! Every read path of the query service is served through a primary-key prefix: proven
//! from ClickHouse's own figures (`read_rows` in `system.query_log`) against the table
//! size, on a million stored events. A full scan reads every row; these paths read a few
//! index granules (8,192 rows each) of it.

use eye_e2e::{clickhouse_config, readonly_clickhouse_config, start_query, unique, wait_for};
use eye_store::{ActorRow, EventRow, LinkRow, SessionRow, Store};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

const EVENTS: u64 = 1_000_000;
const SESSIONS: u64 = 3_000;
const PER_SESSION: u64 = EVENTS / SESSIONS;
/// 2026-03-01T00:00:00Z: the whole data set lies in one month, hence one partition.
const MARCH_US: i64 = 1_772_323_200_000_000;
const HOUR_US: i64 = 3_600_000_000;
const TYPES: [(&str, &str); 4] = [
    ("page_interaction", "page_view"),
    ("page_interaction", "cta_click"),
    ("form_interaction", "submit"),
    ("machine", "cpu_load"),
];

/// The stored rows: events, session records, and identity rows (each event filed under its
/// session's user, and some linking the user to anonymous ids).
struct Rows {
    events: Vec<EventRow>,
    sessions: Vec<SessionRow>,
    actors: Vec<ActorRow>,
    links: Vec<LinkRow>,
}

/// Session `s` runs within day `s % 30`, one event a second from its start hour.
fn rows(run: &str) -> Rows {
    let mut events = Vec::with_capacity(EVENTS as usize);
    let mut sessions = Vec::with_capacity(SESSIONS as usize);
    let mut actors = Vec::with_capacity(EVENTS as usize);
    let mut links = Vec::new();
    for s in 0..SESSIONS {
        let session_id = format!("{run}-s{s}");
        let user_id = format!("{run}-u{}", s % 1_000);
        let start = MARCH_US + (s % 30) as i64 * 24 * HOUR_US + (s % 20) as i64 * HOUR_US;
        sessions.push(SessionRow {
            update_id: Uuid::now_v7(),
            session_id: session_id.clone(),
            kind: "start".into(),
            user_id: user_id.clone(),
            machine_id: format!("{run}-m{}", s % 1_000),
            org_id: "org".into(),
            at_us: start,
            received_at_us: start,
        });
        for i in 0..PER_SESSION {
            let (category, name) = TYPES[((s + i) % 4) as usize];
            let ts_us = start + i as i64 * 1_000_000;
            let event_id = Uuid::now_v7();
            // One event in five identifies its user with an anonymous id of its own: a
            // table a fifth of `events`' size, which a full scan would show.
            if i % 5 == 0 {
                links.push(LinkRow {
                    user_id: user_id.clone(),
                    anonymous_id: format!("{run}-a{s}-{i}"),
                    via: "identify".into(),
                    event_id,
                    session_id: session_id.clone(),
                    ts_us,
                });
            }
            actors.push(ActorRow {
                actor_id: user_id.clone(),
                ts_us,
                event_id,
                session_id: session_id.clone(),
                client_ts_us: ts_us,
            });
            events.push(EventRow {
                event_id,
                session_id: session_id.clone(),
                category: category.into(),
                name: name.into(),
                ts_us,
                received_at_us: ts_us,
                data: "{}".into(),
                value: Some((i % 100) as f64),
                client_ts_us: ts_us,
                sent_at_us: None,
            });
        }
    }
    Rows {
        events,
        sessions,
        actors,
        links,
    }
}

/// Runs SQL as the administrative user; JSONEachRow rows.
async fn admin_sql(http: &reqwest::Client, sql: &str) -> anyhow::Result<Vec<Value>> {
    let url =
        std::env::var("EYE_TEST_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let res = http
        .post(&url)
        .body(format!("{sql} FORMAT JSONEachRow"))
        .send()
        .await?;
    let status = res.status();
    let text = res.text().await?;
    anyhow::ensure!(status.is_success(), "{sql}: {text}");
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_read_path_reads_a_key_prefix() -> anyhow::Result<()> {
    let run = unique("keys");
    let database = format!("eye_test_{run}");
    let store = Store::new(&clickhouse_config(&database))?;
    store.migrate().await?;
    let rows = rows(&run);
    // One INSERT each, so each table holds one part and the figures are not split by parts.
    store.insert_events(&rows.events).await?;
    store.insert_sessions(&rows.sessions).await?;
    store.insert_actors(&rows.actors).await?;
    store.insert_links(&rows.links).await?;
    drop(rows);
    let query = start_query(readonly_clickhouse_config(&database)).await?;
    // ClickHouse gets no Authorization header; the query service gets the harness's key.
    let http = reqwest::Client::new();
    let api = eye_e2e::http_client();
    // One part per table, whatever the server's insert block size: the figures then
    // depend on the ordering alone.
    for table in [
        "events",
        "events_by_type",
        "sessions",
        "identity_actors",
        "identity_links",
    ] {
        admin_sql(&http, &format!("OPTIMIZE TABLE {database}.{table} FINAL")).await?;
    }
    // Only this run's statements: earlier runs sent the same SQL.
    let since = admin_sql(&http, "SELECT toUInt32(now()) - 1 AS t").await?;
    let since = number(&since[0]["t"]);

    // Each request carries a marker found in the SQL it causes, so its statements can be
    // picked out of the query log. (path, marker)
    let day = |d: i64, h: i64| MARCH_US + d * 24 * HOUR_US + h * HOUR_US + 7; // +7 µs: a unique marker
    let us = |t: i64| t.to_string();
    let iso = |t: i64| eye_model::time::EventTime::from_micros(t).to_rfc3339();
    let paths: Vec<(&str, String, String)> = vec![
        (
            "session with metadata and first page",
            format!("/v1/sessions/{run}-s1234?limit=100"),
            format!("{run}-s1234"),
        ),
        (
            "session events (plain list)",
            format!("/v1/sessions/{run}-s77/events"),
            format!("{run}-s77"),
        ),
        (
            "category + 1-day range",
            format!("/v1/events?category=page_interaction&from={}&to={}", iso(day(3, 0)), iso(day(4, 0))),
            us(day(3, 0)),
        ),
        (
            "category + name + 1-day range, newest first",
            format!(
                "/v1/events?category=machine&name=cpu_load&order=desc&from={}&to={}",
                iso(day(5, 0)),
                iso(day(6, 0)),
            ),
            us(day(5, 0)),
        ),
        (
            "name + 1-day range",
            format!("/v1/events?name=submit&from={}&to={}", iso(day(7, 0)), iso(day(8, 0))),
            us(day(7, 0)),
        ),
        (
            "1-hour range alone",
            format!("/v1/events?from={}&to={}", iso(day(9, 9)), iso(day(9, 10))),
            us(day(9, 9)),
        ),
        (
            "hourly avg over a day",
            format!(
                "/v1/aggregate?category=machine&name=cpu_load&granularity=hour&agg=avg&from={}&to={}",
                iso(day(11, 0)),
                iso(day(12, 0)),
            ),
            us(day(11, 0)),
        ),
        (
            "daily p95 over a week",
            format!(
                "/v1/aggregate?category=page_interaction&name=page_view&granularity=day&agg=p95&tz=Europe/Paris&from={}&to={}",
                iso(day(13, 0)),
                iso(day(20, 0)),
            ),
            us(day(13, 0)),
        ),
        (
            "machine history",
            format!("/v1/machines/{run}-m42/events"),
            format!("{run}-m42"),
        ),
        (
            "user's sessions",
            format!("/v1/users/{run}-u43/sessions"),
            format!("{run}-u43"),
        ),
        (
            "user's linked ids",
            format!("/v1/identities/{run}-u44"),
            format!("{run}-u44"),
        ),
        (
            "user's events across linked ids, newest first",
            format!("/v1/identities/{run}-u45/events?order=desc"),
            format!("{run}-u45"),
        ),
    ];
    for (what, path, _) in &paths {
        let res = api.get(query.url(path)).send().await?;
        anyhow::ensure!(res.status() == 200, "{what}: {path}: {}", res.status());
        let body: Value = res.json().await?;
        let listed = ["events", "buckets", "sessions", "anonymous_ids"]
            .iter()
            .find_map(|k| body[k].as_array())
            .map_or(0, Vec::len);
        anyhow::ensure!(listed > 0, "{what}: {path} answered nothing: {body}");
    }
    // The control: listing every event type reads the whole type index, and the figures
    // show it. Without it, a check that could never fail would look the same.
    let res = api
        .get(query.url("/v1/categories?limit=9973"))
        .send()
        .await?;
    anyhow::ensure!(res.status() == 200, "/v1/categories: {}", res.status());

    let table_rows = SESSIONS * PER_SESSION;
    let mut report = Vec::new();
    // A key-prefix read touches a few granules of 8,192 rows around the matching ones: at
    // most a tenth of this table (12 of its 122 granules). A full scan reads all of them.
    let mut failures = Vec::new();
    for (what, _, marker) in &paths {
        let sql = format!(
            "SELECT read_rows, query, \
             Settings.Values[indexOf(Settings.Names, 'max_execution_time')] AS max_execution_time, \
             Settings.Values[indexOf(Settings.Names, 'max_result_rows')] AS max_result_rows \
             FROM system.query_log WHERE type = 2 AND user = 'eye_query' \
             AND event_time >= {since} AND query LIKE '%{marker}%' AND query NOT LIKE '%query_log%'"
        );
        let logged = wait_for(Duration::from_secs(30), "query_log rows", || async {
            admin_sql(&http, &sql)
                .await
                .ok()
                .filter(|rows| !rows.is_empty())
        })
        .await?;
        for row in logged {
            let read = number(&row["read_rows"]);
            let share = read as f64 / table_rows as f64;
            report.push(format!(
                "{what:<45} read_rows {read:>9} of {table_rows} ({:.2}%)",
                share * 100.0
            ));
            // Every statement ran with a time limit and a result limit.
            if row["max_execution_time"].as_str().unwrap_or("").is_empty()
                || row["max_result_rows"] != "100000"
            {
                failures.push(format!("{what} ran without its limits: {row}"));
            }
            if read * 10 > table_rows {
                failures.push(format!(
                    "{what} read {read} of {table_rows} rows: {}",
                    row["query"]
                ));
            }
        }
    }
    let sql = format!(
        "SELECT read_rows FROM system.query_log WHERE type = 2 AND user = 'eye_query' \
         AND event_time >= {since} AND query LIKE 'SELECT category, name, uniqExact%LIMIT 9973%'"
    );
    let full = wait_for(
        Duration::from_secs(30),
        "categories in query_log",
        || async {
            admin_sql(&http, &sql)
                .await
                .ok()
                .and_then(|r| r.first().cloned())
        },
    )
    .await?;
    let full = number(&full["read_rows"]);
    report.push(format!(
        "{:<45} read_rows {full:>9} of {table_rows} (the control: a full read)",
        "every event type (/v1/categories)"
    ));
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(full >= table_rows, "the control read {full} rows");
    query.stop().await?;
    admin_sql(&http, &format!("DROP DATABASE IF EXISTS {database}")).await?;
    Ok(())
}
