//! Kafka and ClickHouse as they are deployed, on real TLS connections: events through
//! ingest → Kafka over TLS with SASL/SCRAM (CA verified) → consumer → ClickHouse over HTTPS
//! with the configured CA → query; and a wrong CA or password refused with a clear error.
//!
//! The servers are deploy/tls.sh's: stunnel terminating TLS in front of a tansu broker that
//! requires SASL and of the stack's ClickHouse. `make test` starts them and exports the
//! `EYE_TEST_TLS_*` variables (`deploy/tls.sh env`).

use eye_e2e::{
    clickhouse_config, consumer_config, http_client, kafka_config_with, readonly_clickhouse_config,
    start_consumer, start_ingest, start_query, unique, wait_for, wait_ready,
};
use eye_kafka::client::Replication;
use eye_kafka::config::KafkaConfig;
use eye_store::config::ClickHouseConfig;
use eye_store::Store;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The TLS servers' addresses and credentials, from `deploy/tls.sh env`.
struct Tls {
    kafka_brokers: String,
    clickhouse_url: String,
    ca_file: String,
    other_ca_file: String,
    sasl_username: String,
    sasl_password: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the TLS servers with `deploy/tls.sh start` and export \
             `deploy/tls.sh env` (make test does both)"
        )
    })
}

fn tls() -> Tls {
    let t = Tls {
        kafka_brokers: var("EYE_TEST_TLS_KAFKA_BROKERS"),
        clickhouse_url: var("EYE_TEST_TLS_CLICKHOUSE_URL"),
        ca_file: var("EYE_TEST_TLS_CA_FILE"),
        other_ca_file: var("EYE_TEST_TLS_OTHER_CA_FILE"),
        sasl_username: var("EYE_TEST_TLS_SASL_USERNAME"),
        sasl_password: var("EYE_TEST_TLS_SASL_PASSWORD"),
    };
    for f in [&t.ca_file, &t.other_ca_file] {
        assert!(
            PathBuf::from(f).is_file(),
            "{f} is missing: run `deploy/tls.sh start`"
        );
    }
    t
}

/// Kafka settings as for a managed service: SASL_SSL, SCRAM-SHA-512, the CA to verify the
/// broker with, all passed through `EYE_KAFKA_PROPERTY_*`.
fn kafka(t: &Tls, prefix: &str, mechanism: &str, password: &str, ca: &str) -> KafkaConfig {
    kafka_config_with(
        prefix,
        &[
            ("BROKERS", &t.kafka_brokers),
            ("PROPERTY_SECURITY_PROTOCOL", "SASL_SSL"),
            ("PROPERTY_SASL_MECHANISM", mechanism),
            ("PROPERTY_SASL_USERNAME", &t.sasl_username),
            ("PROPERTY_SASL_PASSWORD", password),
            ("PROPERTY_SSL_CA_LOCATION", ca),
        ],
    )
}

fn clickhouse(t: &Tls, c: ClickHouseConfig, ca: &str) -> ClickHouseConfig {
    ClickHouseConfig {
        url: t.clickhouse_url.clone(),
        ca_file: Some(ca.into()),
        ..c
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_flow_over_tls_and_sasl_to_https_clickhouse_and_back() -> anyhow::Result<()> {
    let t = tls();
    let id = unique("tls");
    let kafka = kafka(
        &t,
        &format!("eye.test.{id}"),
        "SCRAM-SHA-512",
        &t.sasl_password,
        &t.ca_file,
    );
    assert!(
        !format!("{kafka:?}").contains(&t.sasl_password),
        "the password is never shown"
    );
    let ch = clickhouse(&t, clickhouse_config(&format!("eye_test_{id}")), &t.ca_file);
    let started = Instant::now();

    // Topics through the admin client, over TLS and SASL: one broker, so replication 1.
    let p = kafka.events_partitions;
    let (replication, topics) = eye_kafka::client::create_topics(
        &kafka,
        &[
            (&kafka.events_topic, p),
            (&kafka.rejected_topic, p),
            (&kafka.sessions_topic, p),
        ],
    )
    .await?;
    assert_eq!(
        replication,
        Replication {
            replication_factor: 1,
            min_insync_replicas: 1
        }
    );
    for topic in &topics {
        assert!(topic.created, "{topic:?}");
        assert_eq!(
            (topic.partitions, topic.replication_factor),
            (p as usize, 1)
        );
    }

    let ingest = start_ingest(kafka.clone()).await?;
    let consumer = start_consumer(
        consumer_config(&format!("eye-test-{id}")),
        kafka.clone(),
        ch.clone(),
    )
    .await?;
    let query = start_query(clickhouse(
        &t,
        readonly_clickhouse_config(&ch.database),
        &t.ca_file,
    ))
    .await?;
    wait_ready(&[&ingest, &consumer, &query]).await?;

    let session = unique("session");
    let events: Vec<Value> = (0..50)
        .map(|i| {
            json!({
                "session_id": session,
                "category": "page_interaction",
                "name": "page_view",
                "data": {"host": "www.consumeraffairs.com", "path": format!("/tls/{i}")},
                "timestamp": format!("2026-12-01T10:00:{:02}.{i:06}Z", i % 60),
            })
        })
        .collect();
    let http = http_client();
    let res = http
        .post(ingest.url("/v1/events"))
        .json(&events)
        .send()
        .await?;
    assert_eq!(res.status(), 202, "{:?}", res.text().await);

    let url = query.url(&format!("/v1/sessions/{session}/events?limit=1000"));
    let body: Value = wait_for(Duration::from_secs(60), "events queryable", || async {
        let res = http.get(&url).send().await.ok()?;
        let body: Value = res.json().await.ok()?;
        (body["events"].as_array().map(Vec::len) == Some(events.len())).then_some(body)
    })
    .await?;
    let paths: Vec<&str> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["data"]["path"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(paths.first(), Some(&"/tls/0"));
    println!(
        "tls: {} events ingest → Kafka (SASL_SSL, SCRAM-SHA-512) → consumer → ClickHouse (HTTPS) → query in {:.1} s",
        events.len(),
        started.elapsed().as_secs_f64()
    );

    // The store over HTTPS: compression decided by asking the server.
    let store = Store::connect(&ch).await?;
    let c = store.compressed();
    println!(
        "tls: clickhouse over https, compressed inserts {}, reads {}",
        c.inserts, c.reads
    );

    ingest.stop().await?;
    consumer.stop().await?;
    query.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_with_the_wrong_ca_is_refused_clearly() -> anyhow::Result<()> {
    let t = tls();
    let good = clickhouse(&t, clickhouse_config("default"), &t.ca_file);
    Store::new(&good)?.ping().await?;
    let wrong = clickhouse(&t, clickhouse_config("default"), &t.other_ca_file);
    let e = Store::new(&wrong)?
        .ping()
        .await
        .expect_err("a server signed by another CA is refused");
    let text = e.to_string();
    println!("tls: clickhouse with the wrong CA: {text}");
    assert!(
        text.contains("invalid peer certificate") && text.contains("UnknownIssuer"),
        "{text}"
    );
    // Plain HTTP to the TLS port is no way round it either.
    let plain = ClickHouseConfig {
        url: t.clickhouse_url.replace("https://", "http://"),
        ..clickhouse_config("default")
    };
    assert!(Store::new(&plain)?.ping().await.is_err());
    Ok(())
}

/// Every error and warning librdkafka reports, with its reason: the text an operator reads
/// in the services' log (their contexts send librdkafka's log through tracing).
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl ClientContext for Errors {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        use RDKafkaLogLevel as L;
        if matches!(
            level,
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
        ) {
            self.0
                .lock()
                .expect("lock")
                .push(format!("{fac}: {message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Errors {}

/// Connects with `k` and waits for metadata (success) or for an error that names `what`.
fn connect(k: &KafkaConfig, what: &str) -> anyhow::Result<Result<(), String>> {
    let errors = Errors::default();
    let mut config = eye_kafka::client::consumer_config(k, &unique("tls"));
    // rust-rdkafka passes on only what the `log` crate's level lets through: none in a test.
    config.set_log_level(RDKafkaLogLevel::Warning);
    let consumer: BaseConsumer<Errors> = config.create_with_context(errors.clone())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        // Serves the error callback.
        let _ = consumer.poll(Duration::from_millis(100));
        if consumer
            .fetch_metadata(None, Duration::from_secs(2))
            .is_ok()
        {
            return Ok(Ok(()));
        }
        let seen = errors.0.lock().expect("lock").clone();
        if let Some(e) = seen.iter().find(|e| e.contains(what)) {
            return Ok(Err(e.clone()));
        }
    }
    let seen = errors.0.lock().expect("lock").clone();
    anyhow::bail!("neither metadata nor an error naming {what:?} within 20 s: {seen:?}")
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_with_the_wrong_ca_or_password_is_refused_clearly() -> anyhow::Result<()> {
    let t = tls();
    let prefix = format!("eye.test.{}", unique("tls-refused"));
    let checks = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let good = kafka(&t, &prefix, "SCRAM-SHA-256", &t.sasl_password, &t.ca_file);
        assert_eq!(connect(&good, "-")?, Ok(()), "SCRAM-SHA-256 signs in too");

        let wrong_ca = kafka(
            &t,
            &prefix,
            "SCRAM-SHA-512",
            &t.sasl_password,
            &t.other_ca_file,
        );
        let e = connect(&wrong_ca, "certificate verify failed")?.expect_err("refused");
        println!("tls: kafka with the wrong CA: {e}");
        assert!(e.contains("SSL handshake failed"), "{e}");

        let wrong_password = kafka(&t, &prefix, "SCRAM-SHA-512", "not-the-password", &t.ca_file);
        let e = connect(&wrong_password, "SASL")?.expect_err("refused");
        println!("tls: kafka with the wrong password: {e}");
        assert!(e.contains("SASL authentication error"), "{e}");

        // PLAIN (Confluent Cloud's mechanism) is built into librdkafka, but tansu 0.6 does
        // not offer it: its rsasl is built with `scram-sha-2` and `oauthbearer` only (every
        // tansu crate's Cargo.toml), so it drops the connection at the PLAIN handshake. What
        // shows here is that the client's PLAIN settings are accepted and reach the broker.
        let plain = kafka(&t, &prefix, "PLAIN", &t.sasl_password, &t.ca_file);
        let e = connect(&plain, "SASL PLAIN")?.expect_err("tansu offers no PLAIN");
        println!("tls: kafka PLAIN against tansu 0.6: {e}");
        assert!(e.contains("SASL PLAIN mechanism handshake failed"), "{e}");
        Ok(())
    });
    checks.await?
}
