//! A harness that runs ingest, consumer and query in-process on port 0 against the real
//! broker and ClickHouse started by `make test` (deploy/stack.sh).
//!
//! Each [`Stack`] gets its own topic, consumer group and ClickHouse database, so tests run
//! in parallel without seeing each other's events. Servers are found through
//! `EYE_TEST_KAFKA_BROKERS` and `EYE_TEST_CLICKHOUSE_URL` (defaults: the local stack).

use anyhow::Context;
use eye_auth::config::AuthConfig;
use eye_auth::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};
use eye_consumer::config::ConsumerConfig;
use eye_http::config::HttpConfig;
use eye_ingest::config::IngestConfig;
use eye_kafka::config::KafkaConfig;
use eye_query::config::QueryConfig;
use eye_store::config::ClickHouseConfig;
use eye_store::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The test process's clients file: one client with every scope and limits no test
/// reaches, whose API key the harness's HTTP client sends. Tests of authentication write
/// their own files.
pub struct TestAuth {
    pub config: AuthConfig,
    pub api_key: String,
    pub client_id: String,
    pub client_secret: String,
}

/// The token-signing key of every service the harness starts, so tokens issued by one
/// are accepted by the other, as under `make up`.
pub const TEST_TOKEN_SECRET: &str = "e2e-token-secret-at-least-32-bytes-long";

pub fn test_auth() -> &'static TestAuth {
    static AUTH: std::sync::OnceLock<TestAuth> = std::sync::OnceLock::new();
    AUTH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("eye-e2e-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir for the clients file");
        let path = dir.join("clients.toml");
        let creds = NewCredentials::generate().expect("random bytes");
        ClientsFile {
            clients: vec![ClientRecord {
                rate_limits: RateLimits::unlimited(),
                ..creds.record("e2e", Scope::ALL.to_vec())
            }],
        }
        .save(&path)
        .expect("clients file");
        TestAuth {
            config: auth_config(&path),
            api_key: creds.api_key(),
            client_id: creds.id.clone(),
            client_secret: creds.secret.clone(),
        }
    })
}

/// Auth settings reading `clients_file`, with the harness's token key and a fast reload.
pub fn auth_config(clients_file: &std::path::Path) -> AuthConfig {
    let path = clients_file.display().to_string();
    config(&[
        ("CLIENTS_FILE", &path),
        ("TOKEN_SECRET", TEST_TOKEN_SECRET),
        ("RELOAD_INTERVAL_MS", "100"),
    ])
}

/// An HTTP client that authenticates as the harness's all-scope client.
pub fn http_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {}", test_auth().api_key);
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&value).expect("ASCII key"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("HTTP client")
}

/// A binary of the workspace, built beside the tests (`make test` builds them all).
pub fn bin(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .context("target/<profile>/deps")?;
    let bin = dir.join(name);
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: build it with `cargo build --workspace --bins` (make test does)",
        bin.display()
    );
    Ok(bin)
}

/// Unique-per-run names for one test's topic, group and database.
pub fn unique(name: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    // The tail of a v7 UUID is random; the head is the same for tests started together.
    format!("{name}_{}", &id[20..])
}

/// Builds a config group from its defaults plus `overrides` (`("EVENTS_TOPIC", "x")` for
/// `EYE_KAFKA_EVENTS_TOPIC`), exactly as the services read the environment.
pub fn config<T: serde::de::DeserializeOwned + eye_runtime::config::Group>(
    overrides: &[(&str, &str)],
) -> T {
    let vars = overrides
        .iter()
        .map(|(k, v)| (format!("{}{k}", T::PREFIX), (*v).to_owned()));
    match eye_runtime::config::from_iter(vars) {
        Ok(c) => c,
        Err(e) => panic!("test config: {e}"),
    }
}

/// Kafka settings for the broker under test; topics are `<prefix>.events` and so on.
pub fn kafka_config(prefix: &str) -> KafkaConfig {
    kafka_config_with(prefix, &[])
}

/// [`kafka_config`] plus `overrides` (`("STATISTICS_INTERVAL_MS", "500")` for
/// `EYE_KAFKA_STATISTICS_INTERVAL_MS`), which win over the harness's own settings.
pub fn kafka_config_with(prefix: &str, overrides: &[(&str, &str)]) -> KafkaConfig {
    let brokers =
        std::env::var("EYE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topics = [
        format!("{prefix}.events"),
        format!("{prefix}.rejected"),
        format!("{prefix}.sessions"),
    ];
    let mut all: Vec<(&str, &str)> = [
        ("BROKERS", brokers.as_str()),
        ("EVENTS_TOPIC", &topics[0]),
        ("REJECTED_TOPIC", &topics[1]),
        ("SESSIONS_TOPIC", &topics[2]),
        ("MESSAGE_TIMEOUT_MS", "10000"),
    ]
    .into_iter()
    .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
    .collect();
    all.extend_from_slice(overrides);
    config(&all)
}

/// Creates the three topics of `k`.
pub async fn create_topics(k: &KafkaConfig) -> anyhow::Result<()> {
    let p = k.events_partitions;
    eye_kafka::client::ensure_topics(
        k,
        &[
            (&k.events_topic, p),
            (&k.rejected_topic, p),
            (&k.sessions_topic, p),
        ],
    )
    .await
    .context("creating the test topics: is the broker running (make servers)?")
}

pub fn clickhouse_config(database: &str) -> ClickHouseConfig {
    let url =
        std::env::var("EYE_TEST_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    config(&[("URL", &url), ("DATABASE", database)])
}

/// The same database, as the query service's read-only user
/// (deploy/clickhouse/users.d/eye_query.xml).
pub fn readonly_clickhouse_config(database: &str) -> ClickHouseConfig {
    let mut c = clickhouse_config(database);
    c.user = "eye_query".into();
    c.password = "eye_query".into();
    c
}

/// The repository's `schemas/`, which the services under test validate against and show.
pub const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas");

/// `defaults`, less those `overrides` names, plus `overrides`.
fn merged<'a>(
    defaults: &[(&'a str, &'a str)],
    overrides: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut all: Vec<(&str, &str)> = defaults
        .iter()
        .copied()
        .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
        .collect();
    all.extend_from_slice(overrides);
    all
}

/// Ingest settings: the shipped schemas, everything else at its default.
pub fn ingest_config(overrides: &[(&str, &str)]) -> IngestConfig {
    config(&merged(
        &[("LISTEN_ADDR", "127.0.0.1:0"), ("SCHEMA_DIR", SCHEMA_DIR)],
        overrides,
    ))
}

/// Query settings (`EYE_QUERY_*`): the shipped schemas for `GET /v1/schemas`, and no other
/// service's metrics for `GET /v1/pipeline` (their defaults name ports of this machine that
/// no test started; a test that reads them names its own services': [`Service::url`]),
/// everything else at its default, then `overrides`.
pub fn query_config(overrides: &[(&str, &str)]) -> QueryConfig {
    config(&merged(
        &[
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("SCHEMA_DIR", SCHEMA_DIR),
            ("INGEST_METRICS_URL", ""),
            ("CONSUMER_METRICS_URL", ""),
        ],
        overrides,
    ))
}

/// Shared HTTP limits (`EYE_HTTP_*`): the defaults plus `overrides`.
pub fn http_config(overrides: &[(&str, &str)]) -> HttpConfig {
    config(overrides)
}

pub fn consumer_config(group: &str) -> ConsumerConfig {
    config(&[
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("GROUP_ID", group),
        ("BATCH_MAX_WAIT_MS", "200"),
        ("INSERT_BACKOFF_MAX_MS", "1000"),
    ])
}

/// A running service: its address and the means to stop it.
pub struct Service {
    pub name: &'static str,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Service {
    pub async fn spawn<F, Fut>(name: &'static str, start: F) -> anyhow::Result<Self>
    where
        F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(start(listener, rx));
        Ok(Self {
            name,
            addr,
            stop: Some(tx),
            task,
        })
    }

    /// As [`Service::spawn`], listening on `addr`: a service started again where the one
    /// before it was, as a restart would.
    pub async fn spawn_at<F, Fut>(
        name: &'static str,
        addr: SocketAddr,
        start: F,
    ) -> anyhow::Result<Self>
    where
        F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind(addr).await?;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(start(listener, rx));
        Ok(Self {
            name,
            addr,
            stop: Some(tx),
            task,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals shutdown and waits for the service to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .with_context(|| format!("{} did not stop within 30 s", self.name))??
    }
}

async fn on_stop(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

pub async fn start_ingest(kafka: KafkaConfig) -> anyhow::Result<Service> {
    start_ingest_with(ingest_config(&[]), kafka).await
}

pub async fn start_ingest_with(
    ingest: IngestConfig,
    kafka: KafkaConfig,
) -> anyhow::Result<Service> {
    start_ingest_authed(ingest, kafka, test_auth().config.clone()).await
}

pub async fn start_ingest_authed(
    ingest: IngestConfig,
    kafka: KafkaConfig,
    auth: AuthConfig,
) -> anyhow::Result<Service> {
    let config = ingest_run_config(ingest, kafka, auth, clickhouse_config("default"));
    Service::spawn("ingest", |l, rx| eye_ingest::run(config, l, on_stop(rx))).await
}

/// Ingest whose replays (`POST /v1/rejected/replay`) read the quarantine of `clickhouse`.
pub async fn start_ingest_replaying(
    ingest: IngestConfig,
    kafka: KafkaConfig,
    clickhouse: ClickHouseConfig,
) -> anyhow::Result<Service> {
    start_ingest_replaying_authed(ingest, kafka, test_auth().config.clone(), clickhouse).await
}

/// [`start_ingest_replaying`] with the clients of `auth`.
pub async fn start_ingest_replaying_authed(
    ingest: IngestConfig,
    kafka: KafkaConfig,
    auth: AuthConfig,
    clickhouse: ClickHouseConfig,
) -> anyhow::Result<Service> {
    let config = ingest_run_config(ingest, kafka, auth, clickhouse);
    Service::spawn("ingest", |l, rx| eye_ingest::run(config, l, on_stop(rx))).await
}

fn ingest_run_config(
    ingest: IngestConfig,
    kafka: KafkaConfig,
    auth: AuthConfig,
    clickhouse: ClickHouseConfig,
) -> eye_ingest::Config {
    eye_ingest::Config {
        ingest,
        kafka,
        auth,
        http: http_config(&[]),
        clickhouse,
    }
}

pub async fn start_consumer(
    consumer: ConsumerConfig,
    kafka: KafkaConfig,
    clickhouse: ClickHouseConfig,
) -> anyhow::Result<Service> {
    let config = eye_consumer::Config {
        consumer,
        kafka,
        clickhouse,
        http: http_config(&[]),
        retention: Default::default(),
    };
    Service::spawn("consumer", |l, rx| {
        eye_consumer::run(config, l, on_stop(rx))
    })
    .await
}

pub async fn start_query(clickhouse: ClickHouseConfig) -> anyhow::Result<Service> {
    start_query_authed(clickhouse, test_auth().config.clone()).await
}

pub async fn start_query_authed(
    clickhouse: ClickHouseConfig,
    auth: AuthConfig,
) -> anyhow::Result<Service> {
    start_query_with(query_config(&[]), clickhouse, auth).await
}

/// The query service with its own `EYE_QUERY_*` settings (see [`query_config`]).
pub async fn start_query_with(
    query: QueryConfig,
    clickhouse: ClickHouseConfig,
    auth: AuthConfig,
) -> anyhow::Result<Service> {
    // Deletions write as the harness's writer, whatever user the service reads as.
    let writer = clickhouse_config(&clickhouse.database).user;
    let config = eye_query::Config {
        query,
        clickhouse,
        auth,
        http: http_config(&[]),
        deletion: config(&[("CLICKHOUSE_USER", &writer)]),
        retention: Default::default(),
    };
    Service::spawn("query", |l, rx| eye_query::run(config, l, on_stop(rx))).await
}

/// Ingest on `addr`, with the harness's clients file.
pub async fn start_ingest_at(
    addr: SocketAddr,
    ingest: IngestConfig,
    kafka: KafkaConfig,
) -> anyhow::Result<Service> {
    let config = ingest_run_config(
        ingest,
        kafka,
        test_auth().config.clone(),
        clickhouse_config("default"),
    );
    Service::spawn_at("ingest", addr, |l, rx| {
        eye_ingest::run(config, l, on_stop(rx))
    })
    .await
}

/// Ingest with every setting given (tests of the HTTP limits and listeners).
pub async fn start_ingest_config(config: eye_ingest::Config) -> anyhow::Result<Service> {
    Service::spawn("ingest", |l, rx| eye_ingest::run(config, l, on_stop(rx))).await
}

/// The query service with every setting given.
pub async fn start_query_config(config: eye_query::Config) -> anyhow::Result<Service> {
    Service::spawn("query", |l, rx| eye_query::run(config, l, on_stop(rx))).await
}

/// The whole pipeline, isolated from other tests.
pub struct Stack {
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub group: String,
    pub ingest: Service,
    pub consumer: Service,
    pub query: Service,
    pub http: reqwest::Client,
}

impl Stack {
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        Self::start_with(name, &[], &[]).await
    }

    /// [`Stack::start`] with overrides of the Kafka settings (`EYE_KAFKA_*`, see
    /// [`kafka_config_with`]) and of ingest's (`EYE_INGEST_*`, see [`ingest_config`]).
    pub async fn start_with(
        name: &str,
        kafka_overrides: &[(&str, &str)],
        ingest_overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let id = unique(name);
        let kafka = kafka_config_with(&format!("eye.test.{id}"), kafka_overrides);
        let clickhouse = clickhouse_config(&format!("eye_test_{id}"));
        let group = format!("eye-test-{id}");
        create_topics(&kafka).await?;
        let ingest = start_ingest_replaying(
            ingest_config(ingest_overrides),
            kafka.clone(),
            clickhouse.clone(),
        )
        .await?;
        let consumer =
            start_consumer(consumer_config(&group), kafka.clone(), clickhouse.clone()).await?;
        // The query service reads as the read-only user, as it does under `make up`, and
        // shows this stack's own ingest and consumer in its pipeline view.
        let (ingest_metrics, consumer_metrics) = (ingest.url("/metrics"), consumer.url("/metrics"));
        let query = start_query_with(
            query_config(&[
                ("INGEST_METRICS_URL", &ingest_metrics),
                ("CONSUMER_METRICS_URL", &consumer_metrics),
            ]),
            readonly_clickhouse_config(&clickhouse.database),
            test_auth().config.clone(),
        )
        .await?;
        let stack = Self {
            kafka,
            clickhouse,
            group,
            ingest,
            consumer,
            query,
            http: http_client(),
        };
        wait_ready(&[&stack.ingest, &stack.consumer, &stack.query]).await?;
        Ok(stack)
    }

    pub fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::new(&self.clickhouse)?)
    }

    pub async fn post_events(&self, body: &serde_json::Value) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .http
            .post(self.ingest.url("/v1/events"))
            .json(body)
            .send()
            .await?)
    }

    /// `GET /v1/sessions/{id}/events`, returning status and JSON body.
    pub async fn session(&self, session_id: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let res = self
            .http
            .get(
                self.query
                    .url(&format!("/v1/sessions/{session_id}/events?limit=10000")),
            )
            .send()
            .await?;
        let status = res.status().as_u16();
        Ok((status, res.json().await?))
    }

    /// Walks every page of a query-service listing, following `next_cursor`: `path` carries
    /// the query (`/v1/rejected?limit=7`), `key` names the list in each page.
    pub async fn walk_pages(
        &self,
        path: &str,
        key: &str,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let base = self.query.url("");
        let listing = eye_loadgen::pages::Listing {
            base: &base,
            path,
            key,
            api_key: &test_auth().api_key,
            limit: None,
        };
        Ok(eye_loadgen::pages::walk(&self.http, listing).await?)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        // Close pooled keep-alive connections first, as a departing client would.
        drop(self.http);
        self.ingest.stop().await?;
        self.consumer.stop().await?;
        self.query.stop().await?;
        Ok(())
    }
}

/// Waits until each service's `/readyz` answers 200 (it needs no credential).
pub async fn wait_ready(services: &[&Service]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for svc in services {
        let url = svc.url("/readyz");
        wait_for(Duration::from_secs(60), "service ready", || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                matches!(http.get(&url).send().await, Ok(r) if r.status().is_success())
                    .then_some(())
            }
        })
        .await?;
    }
    Ok(())
}

/// Polls `probe` until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every event id on `topic`, read from the beginning up to the high watermark of each
/// partition as it stands now: what ingest really produced, whatever it answered.
pub async fn read_topic(k: &KafkaConfig, topic: &str) -> anyhow::Result<Vec<String>> {
    let k = k.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer =
            eye_kafka::client::consumer_config(&k, &unique("topic-reader")).create()?;
        let timeout = Duration::from_secs(10);
        let md = consumer.fetch_metadata(Some(&topic), timeout)?;
        let partitions: Vec<i32> = md
            .topics()
            .first()
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        anyhow::ensure!(!partitions.is_empty(), "topic {topic} has no partitions");
        let mut tpl = TopicPartitionList::new();
        let mut want = 0;
        for &p in &partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, p, timeout)?;
            want += high - low;
            tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (out.len() as i64) < want {
            anyhow::ensure!(
                Instant::now() < deadline,
                "read {} of {want} records from {topic}",
                out.len()
            );
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                let m = m?;
                let record: Value = serde_json::from_slice(m.payload().unwrap_or_default())?;
                out.push(record["event_id"].as_str().unwrap_or_default().to_owned());
            }
        }
        Ok(out)
    })
    .await?
}

/// The log of every service running in this process, as written by the subscriber
/// [`LogBuffer::install`] sets up, so that a test can read what an operator would see.
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// Captures every log line of this process at `level` and above. One subscriber per
    /// process: a second install fails.
    pub fn install(level: tracing_subscriber::filter::LevelFilter) -> anyhow::Result<Self> {
        let buf = Self::default();
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .map_err(|e| anyhow::anyhow!("log capture: {e}"))?;
        Ok(buf)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn bytes(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
