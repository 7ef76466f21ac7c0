//! End-to-end on a real ClickHouse cluster (deploy/cluster.sh: ZooKeeper and three
//! ClickHouse 18.16 servers, shard 1 with two replicas, shard 2 with one), in cluster mode
//! (`EYE_CLICKHOUSE_CLUSTER`). One ingest and one broker topic feed two consumers, one
//! writing to the cluster, one to the single-node server of the other tests, so both stores
//! hold the same events; then:
//! (a) every event is stored once on the cluster, retried copies included;
//! (b) every read endpoint answers the same JSON on both, page by page, also after later
//!     copies of some events were put into both (rows every read must deduplicate);
//! (c) with one replica killed (`deploy/cluster.sh kill-server 2`) while events flow,
//!     nothing is lost, and once it is back its local tables catch up with its peer's.
//!
//! Servers: `EYE_TEST_CLUSTER_CLICKHOUSE_URL` (server 1, where the services connect),
//! `EYE_TEST_CLUSTER_NAME`, `EYE_TEST_CLUSTER_REPLICA_URL` (server 2, shard 1's second
//! replica); `make test` starts the cluster and sets them.

use eye_e2e::{
    clickhouse_config, config, consumer_config, create_topics, http_client, ingest_config,
    kafka_config, query_config, read_topic, start_consumer, start_ingest_with, start_query_with,
    test_auth, unique, wait_for, wait_ready, Service,
};
use eye_store::config::ClickHouseConfig;
use eye_store::{EventFilter, EventRow, Store};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use uuid::Uuid;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn cluster_url() -> String {
    env_or("EYE_TEST_CLUSTER_CLICKHOUSE_URL", "http://127.0.0.1:18131")
}

fn replica_url() -> String {
    env_or("EYE_TEST_CLUSTER_REPLICA_URL", "http://127.0.0.1:18132")
}

fn cluster_name() -> String {
    env_or("EYE_TEST_CLUSTER_NAME", "eye")
}

/// `deploy/cluster.sh ARGS`, with the environment of this test (EYE_HOME, ports).
fn cluster_sh(args: &[&str]) -> anyhow::Result<()> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/cluster.sh");
    let status = std::process::Command::new(script).args(args).status()?;
    anyhow::ensure!(status.success(), "deploy/cluster.sh {args:?}: {status}");
    Ok(())
}

/// One SQL statement over HTTP as the writer user: the replica-level checks, which no
/// service asks (a local table of one server, bypassing the Distributed tables).
async fn admin_sql(url: &str, sql: &str) -> anyhow::Result<String> {
    let res = reqwest::Client::new()
        .post(url)
        .body(sql.to_owned())
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    let status = res.status();
    let text = res.text().await?;
    anyhow::ensure!(status.is_success(), "{sql}: {status} {text}");
    Ok(text.trim().to_owned())
}

async fn count(url: &str, table: &str) -> anyhow::Result<u64> {
    Ok(admin_sql(url, &format!("SELECT count() FROM {table}"))
        .await?
        .parse()?)
}

/// Fails, naming the script, when the cluster is not there: the test never skips.
async fn require_cluster() -> anyhow::Result<()> {
    for url in [cluster_url(), replica_url()] {
        let answer = reqwest::Client::new()
            .get(format!("{url}/ping"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if !matches!(&answer, Ok(r) if r.status().is_success()) {
            panic!(
                "no ClickHouse cluster server at {url} ({answer:?}): start the local cluster \
                 with `deploy/cluster.sh start` (make test does), or point \
                 EYE_TEST_CLUSTER_CLICKHOUSE_URL / EYE_TEST_CLUSTER_REPLICA_URL at one"
            );
        }
    }
    let shards = admin_sql(
        &cluster_url(),
        &format!(
            "SELECT count() FROM system.clusters WHERE cluster = '{}'",
            cluster_name()
        ),
    )
    .await?;
    assert_eq!(
        shards,
        "3",
        "cluster {} should have 3 replicas (deploy/cluster.sh)",
        cluster_name()
    );
    Ok(())
}

/// One side of the comparison: a consumer into its store and a query service on it.
struct Side {
    clickhouse: ClickHouseConfig,
    consumer: Service,
    query: Service,
}

impl Side {
    async fn start(
        kafka: &eye_kafka::config::KafkaConfig,
        clickhouse: ClickHouseConfig,
        group: &str,
    ) -> anyhow::Result<Self> {
        let consumer =
            start_consumer(consumer_config(group), kafka.clone(), clickhouse.clone()).await?;
        // The query service reads as the read-only user, as under `make up`.
        let mut readonly = clickhouse.clone();
        readonly.user = "eye_query".into();
        readonly.password = "eye_query".into();
        let query =
            start_query_with(query_config(&[]), readonly, test_auth().config.clone()).await?;
        wait_ready(&[&consumer, &query]).await?;
        Ok(Self {
            clickhouse,
            consumer,
            query,
        })
    }

    fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::new(&self.clickhouse)?)
    }

    /// `GET path`: status and body, the service's own address written as `QUERY` so that
    /// the two sides' links compare equal.
    async fn get(&self, http: &reqwest::Client, path: &str) -> anyhow::Result<(u16, Value)> {
        let res = http.get(self.query.url(path)).send().await?;
        let status = res.status().as_u16();
        let text = res.text().await?.replace(&self.query.url(""), "QUERY");
        Ok((status, serde_json::from_str(&text)?))
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.consumer.stop().await?;
        self.query.stop().await
    }
}

fn event(session: &str, category: &str, name: &str, ts: &str, data: Value) -> Value {
    json!({
        "event_id": Uuid::new_v4().to_string(),
        "session_id": session,
        "category": category,
        "name": name,
        "timestamp": ts,
        "data": data,
    })
}

/// What the test sent: every accepted event id, by session.
#[derive(Default)]
struct Sent {
    ids: BTreeSet<String>,
    sessions: Vec<String>,
    users: Vec<String>,
    machines: Vec<String>,
    identities: Vec<String>,
    rejected: usize,
}

/// `POST path`, failing unless ingest answers `want`.
async fn post(
    http: &reqwest::Client,
    ingest: &Service,
    path: &str,
    body: &Value,
    want: u16,
) -> anyhow::Result<()> {
    let res = http.post(ingest.url(path)).json(body).send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    anyhow::ensure!(status == want, "{path}: {status} {text}");
    Ok(())
}

/// Sessions with owners (starts, some ends), events of three types over two months (ties
/// in time across sessions included), values, Segment identify/alias messages, client
/// retries of 10 events with another `sent_at` (a different corrected time), and items
/// ingest refuses.
async fn send_history(http: &reqwest::Client, ingest: &Service, run: &str) -> anyhow::Result<Sent> {
    let mut sent = Sent {
        users: (0..3).map(|u| format!("{run}-user-{u}")).collect(),
        machines: (0..2).map(|m| format!("{run}-machine-{m}")).collect(),
        ..Sent::default()
    };
    let mut retries = Vec::new();
    for i in 0..12usize {
        let session = format!("{run}-s{i:02}");
        let day = format!("2025-{:02}-{:02}", 5 + i % 2, 10 + i);
        let start = json!({"session_id": session, "user_id": sent.users[i % 3],
            "machine_id": sent.machines[i % 2], "org_id": "org-1",
            "started_at": format!("{day} 08:00:00")});
        post(http, ingest, "/v1/sessions", &start, 202).await?;
        if i % 3 != 0 {
            let end = json!({"ended_at": format!("{day} 09:00:00")});
            let path = format!("/v1/sessions/{session}/end");
            post(http, ingest, &path, &end, 202).await?;
        }
        let mut batch = Vec::new();
        for k in 0..8usize {
            // Every session has an event at 08:00:00 sharp: ties broken by event_id.
            let ts = format!("{day}T08:{:02}:{:02}.{:06}Z", k * 3, (k * 7) % 60, k * 11);
            let ev = match k % 3 {
                0 => event(
                    &session,
                    "web",
                    "view",
                    &ts,
                    json!({"path": format!("/p/{k}")}),
                ),
                1 => event(&session, "web", "click", &ts, json!({"element": "b"})),
                _ => {
                    let mut e = event(&session, "machine", "cpu", &ts, json!({"core": k}));
                    e["value"] = json!((i * 8 + k) as f64 * 1.25);
                    e
                }
            };
            if k == 0 && i % 2 == 0 {
                retries.push(ev.clone());
            }
            batch.push(ev);
        }
        for ev in &batch {
            sent.ids
                .insert(ev["event_id"].as_str().unwrap_or_default().to_owned());
        }
        post(http, ingest, "/v1/events", &json!(batch), 202).await?;
        sent.sessions.push(session);
    }
    // Identities: an anonymous visitor identified as a user, then aliased from an old id.
    for u in 0..2 {
        let user = format!("{run}-id-user-{u}");
        let anon = format!("{run}-anon-{u}");
        let old = format!("{run}-old-{u}");
        let ctx = format!("{run}-ctx-{u}");
        let batch = [
            event(
                &anon,
                "page",
                "Home",
                "2025-05-20T10:00:00Z",
                json!({"anonymousId": anon}),
            ),
            event(
                &ctx,
                "identify",
                "identify",
                "2025-05-20T10:00:01Z",
                json!({"userId": user, "anonymousId": anon}),
            ),
            event(
                &ctx,
                "track",
                "Bought",
                "2025-05-20T10:00:02Z",
                json!({"userId": user, "anonymousId": anon, "event": "Bought"}),
            ),
            event(
                &user,
                "alias",
                "alias",
                "2025-05-20T10:00:03Z",
                json!({"userId": user, "previousId": old}),
            ),
            event(
                &old,
                "track",
                "Old",
                "2025-05-19T10:00:00Z",
                json!({"userId": old}),
            ),
        ];
        for ev in &batch {
            sent.ids
                .insert(ev["event_id"].as_str().unwrap_or_default().to_owned());
        }
        post(http, ingest, "/v1/events", &json!(batch), 202).await?;
        sent.identities.push(user);
    }
    // Retries: the same events again, each with a send time that corrects its time by 5 s.
    let sent_at = chrono::Utc::now() - chrono::Duration::seconds(5);
    for ev in &mut retries {
        ev["sent_at"] = json!(sent_at.to_rfc3339());
    }
    post(http, ingest, "/v1/events", &json!(retries), 202).await?;
    // Refused items go to the quarantine.
    let bad = json!([
        {"session_id": format!("{run}-bad"), "category": "page_interaction", "name": "page_view"},
        {"session_id": format!("{run}-bad"), "category": "no such!", "name": "x", "timestamp": "2025-05-01T00:00:00Z"},
        {"session_id": format!("{run}-bad"), "name": "x", "timestamp": "2025-05-01T00:00:00Z"},
        event(&format!("{run}-bad"), "web", "view", "2025-05-01T00:00:00Z", json!({})),
    ]);
    post(http, ingest, "/v1/events", &bad, 207).await?;
    sent.ids
        .insert(bad[3]["event_id"].as_str().unwrap_or_default().to_owned());
    sent.rejected = 3;
    Ok(sent)
}

/// Waits until `side` holds `events` distinct events, `rejected` quarantine records and
/// every session's start record.
async fn wait_stored(
    side: &Side,
    http: &reqwest::Client,
    events: u64,
    rejected: usize,
    users: &[String],
) -> anyhow::Result<()> {
    let store = side.store()?;
    // In both orderings: a view's rows land a moment after the table's.
    wait_for(Duration::from_secs(60), "every event stored", || async {
        let by_session = store.event_counts().await.ok()?.distinct_events;
        let by_type: u64 = store
            .categories(1000)
            .await
            .ok()?
            .iter()
            .map(|c| c.events)
            .sum();
        (by_session == events && by_type == events).then_some(())
    })
    .await?;
    wait_for(
        Duration::from_secs(30),
        "quarantine and sessions",
        || async {
            let (_, q) = side.get(http, "/v1/rejected?limit=100").await.ok()?;
            if q["rejected"].as_array()?.len() != rejected {
                return None;
            }
            let mut sessions = 0;
            for u in users {
                let (_, s) = side
                    .get(http, &format!("/v1/users/{u}/sessions?limit=100"))
                    .await
                    .ok()?;
                sessions += s["sessions"].as_array()?.len();
            }
            (sessions == 12).then_some(())
        },
    )
    .await
}

/// Where two answers part, as pretty-printed JSON lines around the first that differs.
fn first_difference(cluster: &Value, single: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let (c, s) = (pretty(cluster), pretty(single));
    let (c, s): (Vec<&str>, Vec<&str>) = (c.lines().collect(), s.lines().collect());
    let at = c.iter().zip(&s).take_while(|(a, b)| a == b).count();
    let window =
        |lines: &[&str]| lines[at.saturating_sub(12)..(at + 6).min(lines.len())].join("\n");
    format!(
        "cluster, from line {at}:\n{}\nsingle node:\n{}",
        window(&c),
        window(&s)
    )
}

/// `path` on both sides, equal, page after page while the cluster's page has a
/// `next_cursor`; returns how many pages were compared.
async fn same_pages(
    http: &reqwest::Client,
    cluster: &Side,
    single: &Side,
    path: &str,
) -> anyhow::Result<usize> {
    let mut url = path.to_owned();
    let mut pages = 0;
    loop {
        let (cs, cb) = cluster.get(http, &url).await?;
        let (ss, sb) = single.get(http, &url).await?;
        assert!(
            (cs, &cb) == (ss, &sb),
            "{url}: cluster {cs} and single node {ss} differ\n{}",
            first_difference(&cb, &sb)
        );
        assert_eq!(cs, 200, "{url}: {cb}");
        pages += 1;
        let Some(cursor) = cb["next_cursor"].as_str() else {
            return Ok(pages);
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        url = format!("{path}{sep}cursor={cursor}");
    }
}

/// Every read endpoint on both sides.
async fn compare_reads(
    http: &reqwest::Client,
    cluster: &Side,
    single: &Side,
    sent: &Sent,
) -> anyhow::Result<usize> {
    let mut paths = vec![
        "/v1/categories".to_owned(),
        "/v1/events?limit=7".into(),
        "/v1/events?limit=7&order=desc".into(),
        "/v1/events?category=machine&name=cpu&limit=5".into(),
        "/v1/events?category=web&limit=11&order=desc".into(),
        "/v1/events?from=2025-05-20T00:00:00Z&to=2025-06-15T00:00:00Z&limit=9".into(),
        "/v1/aggregate?category=machine&name=cpu&granularity=day&agg=avg".into(),
        "/v1/aggregate?category=machine&name=cpu&granularity=month&agg=p90".into(),
        "/v1/aggregate?category=web&name=view&granularity=none&agg=count".into(),
        "/v1/aggregate?category=machine&name=cpu&granularity=hour&agg=sum&tz=Europe/Paris".into(),
        "/v1/rejected?limit=2".into(),
        "/events?page=1".into(),
        "/events?page=3".into(),
        "/events?category=machine&page=2".into(),
    ];
    for s in &sent.sessions {
        paths.push(format!("/v1/sessions/{s}"));
        paths.push(format!("/v1/sessions/{s}/events?limit=10000"));
        paths.push(format!("/v1/sessions/{s}?limit=3"));
        paths.push(format!("/v1/events?session_id={s}&limit=3"));
    }
    for m in &sent.machines {
        paths.push(format!("/v1/machines/{m}/events?limit=6"));
    }
    for u in &sent.users {
        paths.push(format!("/v1/users/{u}/sessions?limit=2"));
    }
    for u in &sent.identities {
        paths.push(format!("/v1/identities/{u}"));
        paths.push(format!("/v1/identities/{u}/events?limit=2"));
        paths.push(format!("/v1/identities/{u}/events?limit=3&order=desc"));
    }
    let mut pages = 0;
    for path in &paths {
        pages += same_pages(http, cluster, single, path).await?;
    }
    Ok(pages)
}

/// Later copies of stored events, as a retry that slipped past the consumer's look-up
/// would leave them: the same identity (session, event_id, client timestamp) at a time
/// one and two seconds later. Unlike identical rows, merges never fold them (their sort
/// keys differ), so they stay for every read to deduplicate: the listings' `LIMIT 1 BY`
/// keeps the first in listing order on both stores. Not aggregated by the comparison
/// (an aggregation keeps an arbitrary copy, whose time would differ).
async fn insert_later_copies(store: &Store, rows: &[EventRow]) -> anyhow::Result<()> {
    for shift in [1_000_000, 2_000_000] {
        let copies: Vec<EventRow> = rows
            .iter()
            .map(|r| EventRow {
                ts_us: r.ts_us + shift,
                ..r.clone()
            })
            .collect();
        store.insert_events(&copies).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_stores_once_reads_like_one_server_and_survives_a_replica() -> anyhow::Result<()> {
    require_cluster().await?;
    let started = Instant::now();
    let id = unique("cluster");
    let run = id.replace('_', "-");
    let kafka = kafka_config(&format!("eye.test.{id}"));
    create_topics(&kafka).await?;
    let ingest = start_ingest_with(
        ingest_config(&[("UNKNOWN_TYPE_POLICY", "accept")]),
        kafka.clone(),
    )
    .await?;
    let database = format!("eye_test_{id}");
    let cluster_cfg: ClickHouseConfig = config(&[
        ("URL", &cluster_url()),
        ("DATABASE", &database),
        ("CLUSTER", &cluster_name()),
    ]);
    let cluster = Side::start(&kafka, cluster_cfg, &format!("eye-test-{id}-cluster")).await?;
    let single = Side::start(
        &kafka,
        clickhouse_config(&database),
        &format!("eye-test-{id}-single"),
    )
    .await?;
    wait_ready(&[&ingest]).await?;
    let set_up = started.elapsed();
    let http = http_client();

    // (a) Every event stored once, retried copies included.
    let sent = send_history(&http, &ingest, &run).await?;
    let n = sent.ids.len() as u64;
    let users: Vec<String> = sent.users.clone();
    wait_stored(&cluster, &http, n, sent.rejected, &users).await?;
    wait_stored(&single, &http, n, sent.rejected, &users).await?;
    let cluster_store = cluster.store()?;
    let counts = cluster_store.event_counts().await?;
    assert_eq!(
        (counts.stored_rows, counts.distinct_events),
        (n, n),
        "one row per event on the cluster: the 6 retries were not stored"
    );
    let on_topic: BTreeSet<String> = read_topic(&kafka, &kafka.events_topic)
        .await?
        .into_iter()
        .collect();
    assert_eq!(on_topic, sent.ids, "the topic holds what ingest accepted");
    let all = EventFilter {
        limit: 10_000,
        ..EventFilter::default()
    };
    let listed: Vec<String> = cluster_store
        .events(&all)
        .await?
        .iter()
        .map(|r| r.event_id.to_string())
        .collect();
    assert_eq!(listed.len(), sent.ids.len(), "each event listed once");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), sent.ids);
    let stored = started.elapsed();

    // (b) Every read the same as on one server, before and after replayed rows arrive.
    let pages_before = compare_reads(&http, &cluster, &single, &sent).await?;
    // The clicks of the two earliest sessions (one shard or two), at the head of the
    // listings: each shard then holds more rows than events among its first rows.
    let mut clicks = Vec::new();
    for session in [&sent.sessions[0], &sent.sessions[2]] {
        let filter = EventFilter {
            session_id: Some(session.clone()),
            name: Some("click".into()),
            limit: 100,
            ..EventFilter::default()
        };
        clicks.extend(cluster_store.events(&filter).await?);
    }
    assert_eq!(clicks.len(), 6);
    insert_later_copies(&cluster_store, &clicks).await?;
    insert_later_copies(&single.store()?, &clicks).await?;
    let raw = cluster_store.clone().with_raw_reads(true);
    let raw_rows = raw.events(&all).await?.len() as u64;
    assert_eq!(raw_rows, n + 12, "the later copies are stored");
    let pages_after = compare_reads(&http, &cluster, &single, &sent).await?;
    let compared = started.elapsed();

    // (c) A replica killed under load: nothing lost, and it catches up once back.
    let load_sessions = 40usize;
    let sender = {
        let (http, ingest_url, run) = (http.clone(), ingest.url("/v1/events"), run.clone());
        tokio::spawn(async move {
            let mut acked = BTreeSet::new();
            for s in 0..load_sessions {
                let session = format!("{run}-load-{s:02}");
                let batch: Vec<Value> = (0..25)
                    .map(|k| {
                        let ts = format!("2025-07-01T10:{:02}:{:02}Z", s, k);
                        event(&session, "load", "tick", &ts, json!({"k": k}))
                    })
                    .collect();
                // A client retries until ingest has taken the batch.
                loop {
                    match http.post(&ingest_url).json(&batch).send().await {
                        Ok(r) if r.status().as_u16() == 202 => break,
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                acked.extend(
                    batch
                        .iter()
                        .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned()),
                );
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster_sh(&["kill-server", "2"])?;
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Reads still answer with the replica down (the other one serves shard 1).
    let (status, _) = cluster.get(&http, "/v1/categories").await?;
    assert_eq!(status, 200, "reads with a replica down");
    cluster_sh(&["start-server", "2"])?;
    let down_for = killed_at.elapsed();
    let acked = sender.await?;
    let load = EventFilter {
        category: Some("load".into()),
        limit: 10_000,
        ..EventFilter::default()
    };
    let want = acked.len();
    wait_for(Duration::from_secs(60), "the load stored", || async {
        matches!(cluster_store.events(&load).await, Ok(rows) if rows.len() >= want).then_some(())
    })
    .await?;
    let rows = raw.events(&load).await?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *seen.entry(r.event_id.to_string()).or_default() += 1;
    }
    assert_eq!(
        rows.len(),
        want,
        "no row lost or stored twice under the kill"
    );
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), acked);
    // The restarted replica fetches what its peer took meanwhile: shard 1's local tables
    // hold the same rows on both servers.
    let mut caught_up = Duration::ZERO;
    for table in [
        "events_local",
        "events_by_type_local",
        "event_keys_local",
        "sessions_local",
    ] {
        let table = format!("{database}.{table}");
        let peer = count(&cluster_url(), &table).await?;
        let t0 = Instant::now();
        wait_for(
            Duration::from_secs(60),
            &format!("{table} on replica 2"),
            || async {
                matches!(count(&replica_url(), &table).await, Ok(c) if c == peer).then_some(())
            },
        )
        .await?;
        caught_up = caught_up.max(t0.elapsed());
    }
    let peer_events = count(&cluster_url(), &format!("{database}.events_local")).await?;
    let total = started.elapsed();
    println!(
        "cluster: {n} events + {} retried copies stored once; {pages_before} + {pages_after} pages equal \
         to single node; {want} events under load, replica 2 down {:.1} s, caught up \
         ({peer_events} rows in shard 1's events_local) {:.1} s after the check began; \
         set-up {:.1} s, stored {:.1} s, compared {:.1} s, total {:.1} s",
        6,
        down_for.as_secs_f64(),
        caught_up.as_secs_f64(),
        set_up.as_secs_f64(),
        stored.as_secs_f64(),
        compared.as_secs_f64(),
        total.as_secs_f64(),
    );

    ingest.stop().await?;
    cluster.stop().await?;
    single.stop().await?;
    admin_sql(
        &cluster_url(),
        &format!(
            "DROP DATABASE IF EXISTS {database} ON CLUSTER {}",
            cluster_name()
        ),
    )
    .await?;
    Ok(())
}
