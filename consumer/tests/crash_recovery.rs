//! The consumer dies after ClickHouse confirmed an insert and before it committed the
//! offsets. Restarted, it replays the batch; every event is still read exactly once.
//!
//! Runs the real `eye-consumer` binary (killed for real, by `abort`) against the broker
//! and ClickHouse started by `make test`.

use eye_kafka::config::KafkaConfig;
use eye_model::event::{parse_events, SessionId};
use eye_model::time::EventTime;
use eye_store::config::ClickHouseConfig;
use eye_store::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EVENTS: usize = 600;
const SESSIONS: usize = 30;
/// The shortest session timeout brokers accept by default (group.min.session.timeout.ms).
const SESSION_TIMEOUT_MS: u64 = 6_000;

fn kafka(topic: &str) -> KafkaConfig {
    eye_runtime::config::from_iter(vec![
        (
            "EYE_KAFKA_BROKERS".to_owned(),
            std::env::var("EYE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        ),
        (
            "EYE_KAFKA_EVENTS_TOPIC".to_owned(),
            format!("{topic}.events"),
        ),
        (
            "EYE_KAFKA_REJECTED_TOPIC".to_owned(),
            format!("{topic}.rejected"),
        ),
        (
            "EYE_KAFKA_SESSIONS_TOPIC".to_owned(),
            format!("{topic}.sessions"),
        ),
    ])
    .expect("kafka config")
}

fn clickhouse(database: &str) -> ClickHouseConfig {
    eye_runtime::config::from_iter(vec![
        (
            "EYE_CLICKHOUSE_URL".to_owned(),
            std::env::var("EYE_TEST_CLICKHOUSE_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:8123".into()),
        ),
        ("EYE_CLICKHOUSE_DATABASE".to_owned(), database.to_owned()),
    ])
    .expect("clickhouse config")
}

fn consumer(k: &KafkaConfig, c: &ClickHouseConfig, group: &str, fault: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eye-consumer"));
    cmd.env("EYE_KAFKA_BROKERS", &k.brokers)
        .env("EYE_KAFKA_EVENTS_TOPIC", &k.events_topic)
        .env("EYE_KAFKA_REJECTED_TOPIC", &k.rejected_topic)
        .env("EYE_KAFKA_SESSIONS_TOPIC", &k.sessions_topic)
        .env("EYE_CLICKHOUSE_URL", &c.url)
        .env("EYE_CLICKHOUSE_DATABASE", &c.database)
        .env("EYE_CONSUMER_GROUP_ID", group)
        .env(
            "EYE_CONSUMER_SESSION_TIMEOUT_MS",
            SESSION_TIMEOUT_MS.to_string(),
        )
        .env(
            "EYE_KAFKA_DEBUG",
            std::env::var("EYE_TEST_KAFKA_DEBUG").unwrap_or_default(),
        )
        .env("EYE_CONSUMER_LISTEN_ADDR", "127.0.0.1:0")
        // Small batches: the first insert holds only part of the topic.
        .env("EYE_CONSUMER_BATCH_MAX_ROWS", "100")
        .env("EYE_CONSUMER_BATCH_MAX_WAIT_MS", "200")
        .env_remove("EYE_CONSUMER_FAULT")
        .env(
            "EYE_LOG",
            std::env::var("EYE_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(f) = fault {
        cmd.env("EYE_CONSUMER_FAULT", f);
    }
    cmd
}

async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_after_a_crash_between_insert_and_commit_stores_each_event_once() {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let id = &id[20..];
    let k = kafka(&format!("eye.test.crash_{id}"));
    let c = clickhouse(&format!("eye_test_crash_{id}"));
    let group = format!("eye-test-crash-{id}");
    eye_kafka::client::ensure_topics(
        &k,
        &[
            (&k.events_topic, 3),
            (&k.rejected_topic, 1),
            (&k.sessions_topic, 1),
        ],
    )
    .await
    .expect("topic (is the broker running?)");

    // Produce the events straight to the topic, in the format ingest writes.
    let body = serde_json::Value::Array(
        (0..EVENTS)
            .map(|i| {
                serde_json::json!({
                    "session_id": format!("crash-{id}-{}", i % SESSIONS),
                    "category": "machine", "name": "tick", "data": {"i": i},
                    "timestamp": EventTime::from_micros(1_700_000_000_000_000 + i as i64).to_rfc3339(),
                })
            })
            .collect(),
    );
    let events = parse_events(body.to_string().as_bytes(), EventTime::now()).expect("valid events");
    let producer: FutureProducer = eye_kafka::client::producer_config(&k)
        .create()
        .expect("producer");
    let sends = events.iter().map(|ev| {
        let payload = eye_kafka::wire::encode(ev);
        let producer = &producer;
        let topic = &k.events_topic;
        async move {
            let record = FutureRecord::to(topic)
                .key(ev.session_id.as_str())
                .payload(&payload);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)
        }
    });
    for result in futures::future::join_all(sends).await {
        result.expect("produce");
    }

    // First run: inserts one batch, then aborts before committing it.
    let status = tokio::task::spawn_blocking({
        let mut cmd = consumer(&k, &c, &group, Some("abort_after_insert"));
        move || cmd.status()
    })
    .await
    .expect("join")
    .expect("run eye-consumer");
    assert_eq!(status.signal(), Some(6), "expected SIGABRT, got {status:?}");

    let store = Store::new(&c).expect("store");
    let first = store.event_counts().await.expect("counts");
    assert!(
        first.stored_rows > 0 && (first.stored_rows as usize) < EVENTS,
        "the aborted run should have inserted part of the topic: {first:?}"
    );

    // Nothing was committed, so the restart must replay from the beginning.
    let (probe, committed) = committed_offsets(&k, &group);
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Invalid,
            "partition {} has a commit",
            e.partition()
        );
    }
    drop(probe);

    // Second run, without the fault. It joins after the dead member's session timed out:
    // tansu 0.6 keeps a crashed leader in the group when a new member joins within the
    // session timeout and then never assigns the newcomer any partition (Apache Kafka
    // evicts it); see the infrastructure notes.
    tokio::time::sleep(Duration::from_millis(SESSION_TIMEOUT_MS + 1_000)).await;
    let mut child = KillOnDrop(Some(
        consumer(&k, &c, &group, None)
            .spawn()
            .expect("restart eye-consumer"),
    ));
    wait_for(Duration::from_secs(60), "every event stored", || async {
        matches!(store.event_counts().await, Ok(n) if n.distinct_events as usize == EVENTS)
    })
    .await;
    // Give a wrongly committed or doubly inserted batch time to show up before judging.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = store.event_counts().await.expect("counts");
    assert_eq!(after.distinct_events as usize, EVENTS);

    // The first batch is now stored twice, until ReplacingMergeTree merges the copies.
    println!(
        "crash recovery: first run inserted {} rows before aborting; after restart {} rows stored for {} distinct events",
        first.stored_rows, after.stored_rows, after.distinct_events
    );

    // Reads see each event exactly once, in time order.
    let mut seen = std::collections::HashSet::new();
    for s in 0..SESSIONS {
        let session = SessionId::parse(&format!("crash-{id}-{s}")).expect("session id");
        let rows = store.session_events(&session, 10_000).await.expect("read");
        assert_eq!(rows.len(), EVENTS / SESSIONS, "session {s}");
        assert!(
            rows.windows(2).all(|w| w[0].ts_us <= w[1].ts_us),
            "session {s} out of order"
        );
        for r in rows {
            assert!(seen.insert(r.event_id), "{} read twice", r.event_id);
        }
    }
    assert_eq!(seen.len(), EVENTS);

    // SIGTERM: the consumer flushes, commits and exits cleanly.
    let mut child = child.0.take().expect("child");
    let pid = child.id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "consumer exit after SIGTERM: {status:?}");

    // ...and what it consumed is committed: every partition's commit is its high watermark.
    let (probe, committed) = committed_offsets(&k, &group);
    let mut total = 0;
    for e in committed.elements() {
        let (_, high) = probe
            .fetch_watermarks(&k.events_topic, e.partition(), Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(
            e.offset(),
            Offset::Offset(high),
            "partition {}",
            e.partition()
        );
        total += high;
    }
    assert_eq!(total as usize, EVENTS);
}

/// Kills the consumer if the test fails before stopping it, so no process outlives the test.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The group's committed offsets on the events topic's three partitions, read by a client
/// that does not join the group (it can also read watermarks).
fn committed_offsets(k: &KafkaConfig, group: &str) -> (BaseConsumer, TopicPartitionList) {
    let probe: BaseConsumer = eye_kafka::client::consumer_config(k, group)
        .create()
        .expect("probe");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&k.events_topic, p);
    }
    let committed = probe
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (probe, committed)
}
