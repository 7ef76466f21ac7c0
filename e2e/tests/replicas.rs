//! Ingest replicas on one client's budget, on the real broker and a real Redis:
//! - two replicas sharing the budget through Redis (`EYE_AUTH_REDIS_URL`), both driven as
//!   fast as they answer, accept together no more than the budget (rate × time + burst);
//!   the same two without Redis accept about twice that (the control);
//! - Redis stopped mid-run (`deploy/redis.sh stop`): every request is still answered, each
//!   replica keeps to its half (`EYE_AUTH_REPLICAS=2`), so together they keep to the
//!   budget; the metrics and the log say so; Redis started again, the replicas share
//!   again within the retry interval;
//! - over TLS (`rediss://`, stunnel from `deploy/tls.sh`): shared with the deployment's CA,
//!   refused (each replica on its share) with a CA that did not sign the server;
//! - every replica validates against the same schema set: `eye_ingest_schema_set_info`
//!   shows one digest, the digest of the shipped `schemas/`.
//!
//! Redis: `EYE_TEST_REDIS_URL` (default `redis://127.0.0.1:16379`, `deploy/redis.sh start`;
//! `make test` starts it). The Redis-down test starts and stops its own server with the
//! same script, under its own `EYE_HOME` and port, so that no other test loses Redis.

use eye_auth::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};
use eye_e2e::{
    create_topics, http_config, ingest_config, kafka_config, unique, wait_for, wait_ready,
    LogBuffer, Service,
};
use eye_kafka::config::KafkaConfig;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The client's event budget: per second, and its burst.
const EVENTS_PER_S: u64 = 1_000;
const EVENTS_BURST: u64 = 500;
/// Events per request.
const BATCH: u64 = 50;
/// Connections driving each replica: enough to offer several times the budget, since an
/// accepted request waits for the broker's acknowledgement.
const CONNECTIONS: usize = 6;

/// The two tests take turns: each measures rates on a 2-core machine, and must not measure
/// the other's load.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process's one log capture (a second subscriber cannot be installed), read from a
/// test's start: the tests take turns, so what follows is that test's.
struct Log {
    buffer: LogBuffer,
    from: usize,
}

impl Log {
    fn since_now() -> Self {
        static CAPTURE: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
        let buffer = CAPTURE
            .get_or_init(|| {
                LogBuffer::install(tracing_subscriber::filter::LevelFilter::INFO)
                    .expect("the only log capture of this test binary")
            })
            .clone();
        let from = buffer.text().len();
        Self { buffer, from }
    }

    fn text(&self) -> String {
        self.buffer.text()[self.from..].to_owned()
    }
}

fn redis_url() -> String {
    std::env::var("EYE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:16379".into())
}

/// `host:port` of a `redis://host:port[/db]` URL.
fn redis_addr(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Whether a Redis answers PING at `url` (no password).
async fn pong(url: &str) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(redis_addr(url)).await?;
        s.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(&buf == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

async fn require_redis(url: &str) {
    assert!(
        pong(url).await,
        "no Redis answers at {url}: start it with `deploy/redis.sh start` (make test does), or set EYE_TEST_REDIS_URL"
    );
}

/// One client with the event budget above (requests unlimited, so that only events count).
fn client(name: &str) -> anyhow::Result<(PathBuf, NewCredentials)> {
    let creds = NewCredentials::generate()?;
    let dir = std::env::temp_dir().join(format!("eye-e2e-{}", unique(name)));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("clients.toml");
    ClientsFile {
        clients: vec![ClientRecord {
            rate_limits: RateLimits {
                events_per_s: Some(EVENTS_PER_S as u32),
                events_burst: Some(EVENTS_BURST as u32),
                ..RateLimits::unlimited()
            },
            ..creds.record(name, vec![Scope::EventsWrite])
        }],
    }
    .save(&path)?;
    Ok((path, creds))
}

/// Two ingest replicas of one deployment: same clients file, same topics, `EYE_AUTH_*`
/// overrides as given.
async fn replicas(
    kafka: &KafkaConfig,
    clients: &std::path::Path,
    auth: &[(&str, &str)],
) -> anyhow::Result<[Service; 2]> {
    // The harness's settings (`auth_config`), plus `auth`.
    let harness = [
        ("CLIENTS_FILE", clients.display().to_string()),
        ("TOKEN_SECRET", eye_e2e::TEST_TOKEN_SECRET.to_owned()),
        ("RELOAD_INTERVAL_MS", "100".to_owned()),
    ];
    let config: eye_auth::config::AuthConfig = eye_runtime::config::from_iter(
        harness
            .into_iter()
            .chain(auth.iter().map(|(k, v)| (*k, (*v).to_owned())))
            .map(|(k, v)| (format!("EYE_AUTH_{k}"), v)),
    )?;
    let mut started = Vec::new();
    for _ in 0..2 {
        let svc = eye_e2e::start_ingest_config(eye_ingest::Config {
            ingest: ingest_config(&[]),
            kafka: kafka.clone(),
            auth: config.clone(),
            http: http_config(&[]),
            // Replay only; never reached here.
            clickhouse: eye_e2e::clickhouse_config("default"),
        })
        .await?;
        wait_ready(&[&svc]).await?;
        started.push(svc);
    }
    let [a, b]: [Service; 2] = started
        .try_into()
        .map_err(|_| anyhow::anyhow!("two replicas"))?;
    Ok([a, b])
}

fn body(n: u64) -> String {
    let session = uuid::Uuid::now_v7().to_string();
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "session_id": session,
                "category": "page_interaction",
                "name": "page_view",
                "data": {"host": "www.consumeraffairs.com", "path": format!("/replicas/{i}")},
                "timestamp": "2024-05-01T12:00:00Z",
            })
        })
        .collect();
    Value::Array(items).to_string()
}

/// What a drive saw.
#[derive(Debug, Default)]
struct Drive {
    accepted_events: u64,
    throttled: u64,
    elapsed: Duration,
}

impl Drive {
    fn rate(&self) -> f64 {
        self.accepted_events as f64 / self.elapsed.as_secs_f64()
    }

    /// The most a GCRA budget admits in this drive's time: rate × time + burst.
    fn budget(&self, share: f64) -> f64 {
        share * (EVENTS_PER_S as f64 * self.elapsed.as_secs_f64() + EVENTS_BURST as f64)
    }
}

/// Sends batches to both replicas from [`CONNECTIONS`] connections each, as fast as they
/// answer, for `time`. Every answer must be 202, or 429 `rate_limited` with a
/// `Retry-After`: anything else fails the test.
async fn drive(replicas: &[Service; 2], key: &str, time: Duration) -> anyhow::Result<Drive> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS * 2)
        .build()?;
    let started = Instant::now();
    let deadline = started + time;
    let mut tasks = Vec::new();
    for svc in replicas {
        for _ in 0..CONNECTIONS {
            let (http, url, auth) = (http.clone(), svc.url("/v1/events"), format!("Bearer {key}"));
            tasks.push(tokio::spawn(async move {
                let mut seen = Drive::default();
                while Instant::now() < deadline {
                    let res = http
                        .post(&url)
                        .header("authorization", &auth)
                        .header("content-type", "application/json")
                        .body(body(BATCH))
                        .send()
                        .await?;
                    let status = res.status().as_u16();
                    let retry_after = res.headers().get("retry-after").cloned();
                    let answer: Value = res.json().await?;
                    match status {
                        202 => seen.accepted_events += BATCH,
                        429 => {
                            anyhow::ensure!(
                                answer["error"]["code"] == "rate_limited" && retry_after.is_some(),
                                "429 without rate_limited and Retry-After: {answer}"
                            );
                            seen.throttled += 1;
                        }
                        _ => anyhow::bail!("answered {status}: {answer}"),
                    }
                }
                Ok(seen)
            }));
        }
    }
    let mut total = Drive::default();
    for t in tasks {
        let seen = t.await??;
        total.accepted_events += seen.accepted_events;
        total.throttled += seen.throttled;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

async fn metrics(svc: &Service) -> anyhow::Result<String> {
    Ok(reqwest::get(svc.url("/metrics")).await?.text().await?)
}

/// The value of the sample named exactly `series` (name and labels) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .find_map(|rest| rest.strip_prefix(' ')?.trim().parse().ok())
}

/// The digest label of `eye_ingest_schema_set_info`, and how many sets it shows.
fn schema_digests(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("eye_ingest_schema_set_info{digest=\""))
        .filter_map(|rest| rest.split_once('"').map(|(d, _)| d.to_owned()))
        .collect()
}

#[tokio::test]
async fn two_replicas_share_one_clients_budget() -> anyhow::Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let url = redis_url();
    require_redis(&url).await;
    let kafka = kafka_config(&unique("replicas"));
    create_topics(&kafka).await?;
    let (clients, creds) = client("replicas")?;
    let key = creds.api_key();
    let prefix = unique("eye-e2e-replicas");
    let time = Duration::from_secs(3);

    let shared = replicas(
        &kafka,
        &clients,
        &[
            ("REDIS_URL", &url),
            ("REDIS_KEY_PREFIX", &prefix),
            ("REPLICAS", "2"),
            // Generous: on a loaded machine a slow answer must not turn into a fallback,
            // which this test does not measure.
            ("REDIS_TIMEOUT_MS", "2000"),
        ],
    )
    .await?;
    // Every replica validates against one set: the shipped schemas, by their digest.
    let shipped = eye_model::schema::SchemaRegistry::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas"
    )))?;
    for svc in &shared {
        assert_eq!(
            schema_digests(&metrics(svc).await?),
            [shipped.digest()],
            "one schema set per replica, the shipped one"
        );
    }
    let with = drive(&shared, &key, time).await?;
    for svc in &shared {
        let m = metrics(svc).await?;
        assert_eq!(sample(&m, "eye_auth_redis_up"), Some(1.0), "{m}");
        assert!(sample(&m, "eye_auth_redis_admission_seconds_count").unwrap_or(0.0) > 0.0);
        assert_eq!(
            sample(&m, "eye_auth_redis_fallback_total{limit=\"events\"}"),
            None,
            "every admission was Redis': {m}"
        );
    }
    for svc in shared {
        svc.stop().await?;
    }

    let alone = replicas(&kafka, &clients, &[]).await?;
    let without = drive(&alone, &key, time).await?;
    for svc in alone {
        svc.stop().await?;
    }

    println!(
        "two replicas, budget {EVENTS_PER_S} events/s (burst {EVENTS_BURST}), {CONNECTIONS} connections each:\n  \
         shared through Redis: {} events in {:.2} s = {:.0}/s ({} requests throttled; at most {:.0})\n  \
         each its own bucket:  {} events in {:.2} s = {:.0}/s ({} requests throttled), {:.2}x the shared rate",
        with.accepted_events,
        with.elapsed.as_secs_f64(),
        with.rate(),
        with.throttled,
        with.budget(1.0),
        without.accepted_events,
        without.elapsed.as_secs_f64(),
        without.rate(),
        without.throttled,
        without.rate() / with.rate(),
    );
    assert!(
        with.accepted_events as f64 <= with.budget(1.0),
        "shared: {with:?} over the budget {:.0}",
        with.budget(1.0)
    );
    assert!(
        with.throttled > 0,
        "the drive must reach the limit: {with:?}"
    );
    assert!(
        with.rate() >= 0.8 * EVENTS_PER_S as f64,
        "shared: the budget is used, not starved: {with:?}"
    );
    // About twice the budget when the drive can offer it; on a loaded machine at least
    // more than one budget could ever admit.
    assert!(
        without.accepted_events as f64 > without.budget(1.0),
        "the control: two buckets take more than the budget: {without:?}"
    );
    assert!(without.accepted_events as f64 <= without.budget(2.0));
    Ok(())
}

/// A Redis of this test's own, started and stopped by `deploy/redis.sh`; stopped when
/// dropped, whatever happened.
struct OwnRedis {
    home: PathBuf,
    port: u16,
}

impl OwnRedis {
    fn script(&self, action: &str) -> anyhow::Result<()> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/redis.sh");
        let out = std::process::Command::new(script)
            .arg(action)
            .env("EYE_HOME", &self.home)
            .env("EYE_STACK_REDIS_PORT", self.port.to_string())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "deploy/redis.sh {action} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

#[tokio::test]
async fn redis_down_each_replica_keeps_its_share_then_shares_again() -> anyhow::Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let log = Log::since_now();
    // A free port for a Redis of this test's own.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let redis = OwnRedis {
        home: std::env::temp_dir().join(unique("eye-e2e-redis")),
        port,
    };
    redis.script("start")?;
    require_redis(&redis.url()).await;
    let kafka = kafka_config(&unique("replicas_down"));
    create_topics(&kafka).await?;
    let (clients, creds) = client("replicas-down")?;
    let key = creds.api_key();
    let url = redis.url();
    let both = replicas(
        &kafka,
        &clients,
        &[
            ("REDIS_URL", &url),
            ("REPLICAS", "2"),
            // Stopped, Redis refuses at once; running, it must not time out on a loaded
            // machine.
            ("REDIS_TIMEOUT_MS", "2000"),
            ("REDIS_RETRY_INTERVAL_MS", "200"),
        ],
    )
    .await?;
    let time = Duration::from_secs(2);

    let up = drive(&both, &key, time).await?;
    assert!(up.accepted_events as f64 <= up.budget(1.0), "{up:?}");

    redis.script("stop")?;
    let down = drive(&both, &key, time).await?;
    for svc in &both {
        let m = metrics(svc).await?;
        assert_eq!(sample(&m, "eye_auth_redis_up"), Some(0.0), "{m}");
        assert!(
            sample(&m, "eye_auth_redis_fallback_total{limit=\"events\"}").unwrap_or(0.0) > 0.0,
            "{m}"
        );
    }
    assert!(
        log.text().contains("Redis does not answer"),
        "the log says so"
    );
    // Each replica: its half of the budget, from an empty half-bucket.
    assert!(
        down.accepted_events as f64 <= EVENTS_PER_S as f64 * down.elapsed.as_secs_f64(),
        "{down:?}"
    );
    assert!(
        down.rate() >= 0.6 * EVENTS_PER_S as f64,
        "Redis down, the replicas keep serving: {down:?}"
    );

    redis.script("start")?;
    let http = reqwest::Client::new();
    for svc in &both {
        wait_for(Duration::from_secs(10), "the replica sharing again", || {
            let (http, url, auth) = (http.clone(), svc.url("/v1/events"), format!("Bearer {key}"));
            async move {
                // Admissions are what try Redis again: one request per probe.
                let _ = http
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(body(1))
                    .send()
                    .await;
                let m = reqwest::get(url.replace("/v1/events", "/metrics"))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                (sample(&m, "eye_auth_redis_up") == Some(1.0)).then_some(())
            }
        })
        .await?;
    }
    assert!(
        log.text().contains("Redis answers again"),
        "the log says so"
    );
    let again = drive(&both, &key, time).await?;
    assert!(
        again.accepted_events as f64 <= again.budget(1.0),
        "{again:?}"
    );
    println!(
        "Redis up: {:.0} events/s; Redis stopped: {:.0} events/s (each replica its half); started again: {:.0} events/s (budget {EVENTS_PER_S}/s, burst {EVENTS_BURST})",
        up.rate(),
        down.rate(),
        again.rate()
    );
    for svc in both {
        svc.stop().await?;
    }
    Ok(())
}

/// `deploy/tls.sh env`'s variable `name` (make test exports them).
fn tls_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `deploy/tls.sh start` and export `deploy/tls.sh env` (make test does both)")
    })
}

/// `rediss://` through stunnel (`deploy/tls.sh`) to the shared Redis: with the deployment's
/// CA every admission is Redis' own; with a CA that did not sign the server's certificate
/// the replicas refuse the connection and keep to their own shares, and say why.
#[tokio::test]
async fn shared_limits_over_tls_trust_only_the_configured_ca() -> anyhow::Result<()> {
    let _turn = ONE_AT_A_TIME.lock().await;
    let log = Log::since_now();
    require_redis(&redis_url()).await;
    let tls_url = tls_var("EYE_TEST_TLS_REDIS_URL");
    assert!(tls_url.starts_with("rediss://"), "{tls_url}");
    let kafka = kafka_config(&unique("replicas_tls"));
    create_topics(&kafka).await?;
    let (clients, creds) = client("replicas-tls")?;
    let key = creds.api_key();
    let prefix = unique("eye-e2e-tls");
    let time = Duration::from_secs(1);
    for (ca, trusted) in [
        (tls_var("EYE_TEST_TLS_CA_FILE"), true),
        (tls_var("EYE_TEST_TLS_OTHER_CA_FILE"), false),
    ] {
        let both = replicas(
            &kafka,
            &clients,
            &[
                ("REDIS_URL", &tls_url),
                ("REDIS_CA_FILE", &ca),
                ("REDIS_KEY_PREFIX", &prefix),
                ("REPLICAS", "2"),
                ("REDIS_TIMEOUT_MS", "2000"),
            ],
        )
        .await?;
        let seen = drive(&both, &key, time).await?;
        assert!(seen.accepted_events > 0, "{seen:?}");
        for svc in &both {
            let m = metrics(svc).await?;
            let fallback = sample(&m, "eye_auth_redis_fallback_total{limit=\"events\"}");
            if trusted {
                assert_eq!(sample(&m, "eye_auth_redis_up"), Some(1.0), "{m}");
                assert!(sample(&m, "eye_auth_redis_admission_seconds_count").unwrap_or(0.0) > 0.0);
                assert_eq!(fallback, None, "every admission was Redis': {m}");
            } else {
                assert_eq!(sample(&m, "eye_auth_redis_up"), Some(0.0), "{m}");
                assert!(fallback.unwrap_or(0.0) > 0.0, "{m}");
            }
        }
        println!(
            "rediss:// with the {} CA: {} events in {:.2} s",
            if trusted { "deployment's" } else { "wrong" },
            seen.accepted_events,
            seen.elapsed.as_secs_f64()
        );
        for svc in both {
            svc.stop().await?;
        }
    }
    let text = log.text();
    assert!(text.contains("Redis does not answer"), "the log says so");
    assert!(
        text.to_lowercase().contains("certificate"),
        "the log names the certificate as the reason"
    );
    Ok(())
}
