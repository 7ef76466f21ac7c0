//! The shared buckets against a real Redis: `EYE_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:16379`, what `deploy/redis.sh start` runs; `make test` starts it).

use super::*;
use crate::config::AuthConfig;
use crate::{AuthError, Authenticator, ClientRecord, ClientsFile, NewCredentials, RateLimits};
use governor::clock::{Clock, FakeRelativeClock};
use governor::RateLimiter;
use std::num::NonZeroU32;

fn redis_url() -> String {
    std::env::var("EYE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:16379".into())
}

async fn connect() -> ConnectionManager {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("a Redis URL in EYE_TEST_REDIS_URL");
    match tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "no Redis at {url} ({e}): start it with `deploy/redis.sh start` (make test does), or set EYE_TEST_REDIS_URL"
        ),
        Err(_) => panic!(
            "Redis at {url} did not answer within 5 s: start it with `deploy/redis.sh start`, or set EYE_TEST_REDIS_URL"
        ),
    }
}

fn unique_key(name: &str) -> String {
    format!(
        "eye:test:{name}:{}:{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    )
}

fn quota(per_s: u32, burst: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(per_s).expect("per_s"))
        .allow_burst(NonZeroU32::new(burst).expect("burst"))
}

/// A small deterministic generator (SplitMix64), so that a failing sequence is the same
/// sequence on every run.
struct Steps(u64);

impl Steps {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// governor's verdict, in the script's terms.
fn governor_verdict(
    limiter: &RateLimiter<
        governor::state::NotKeyed,
        governor::state::InMemoryState,
        FakeRelativeClock,
        governor::middleware::NoOpMiddleware<governor::nanos::Nanos>,
    >,
    clock: &FakeRelativeClock,
    n: u32,
) -> Verdict {
    match limiter.check_n(NonZeroU32::new(n).expect("n > 0")) {
        Ok(Ok(())) => Verdict::Admitted,
        Ok(Err(not_until)) => Verdict::Wait(not_until.wait_time_from(clock.now())),
        Err(governor::InsufficientCapacity(burst)) => Verdict::OverBurst(burst),
    }
}

/// The script decides as governor does, to the nanosecond, for the same quota and the same
/// requests at the same times: a table of hand-picked sequences, then a few hundred
/// generated steps per quota (waits short and long, batches up to one over the burst).
#[tokio::test]
async fn script_answers_as_governor_does() {
    let mut conn = connect().await;
    let script = redis::Script::new(GCRA_SCRIPT);
    // (per_s, burst, steps of (advance ns, n)) — hand-picked edges first.
    let table: &[(u32, u32, &[(u64, u32)])] = &[
        // Burst 3 at 1/s: three pass, the fourth waits exactly 1 s; after it, one more.
        (
            1,
            3,
            &[
                (0, 1),
                (0, 1),
                (0, 1),
                (0, 1),
                (999_999_999, 1),
                (1, 1),
                (0, 1),
            ],
        ),
        // A batch: the whole burst at once, then nothing until it refills by the batch.
        (
            10,
            5,
            &[(0, 5), (0, 1), (100_000_000, 2), (100_000_000, 2), (0, 6)],
        ),
        // An interval that is not a whole number of nanoseconds per second (1 s / 3).
        (
            3,
            2,
            &[(0, 2), (0, 1), (333_333_332, 1), (1, 1), (2_000_000_000, 2)],
        ),
        // Burst 1: strictly spaced.
        (7, 1, &[(0, 1), (0, 1), (142_857_142, 1), (1, 2), (0, 1)]),
        // The services' default event budget.
        (
            50_000,
            100_000,
            &[(0, 100_000), (0, 1), (20_000, 1), (1_000_000_000, 60_000)],
        ),
    ];
    // Seconds since 1970 as Redis' TIME gives them; the nanoseconds start near a second's
    // end, so steps cross second boundaries.
    let base = (1_800_000_000_u64, 999_000_000_u32);
    let mut compared = 0;
    let mut generated: Vec<(u32, u32, Vec<(u64, u32)>)> = Vec::new();
    let mut rng = Steps(18);
    for (per_s, burst) in [
        (1, 1),
        (1, 3),
        (3, 5),
        (10, 10),
        (1_000, 2_000),
        (50_000, 100_000),
    ] {
        let t = 1_000_000_000 / u64::from(per_s);
        let steps = (0..300)
            .map(|_| {
                let advance = match rng.below(4) {
                    0 => 0,
                    1 => rng.below(t),
                    2 => rng.below(t * u64::from(burst) + 1),
                    _ => rng.below(3 * t * u64::from(burst) + 1),
                };
                let n = 1 + u32::try_from(rng.below(u64::from(burst) + 1)).unwrap_or(0);
                (advance, n)
            })
            .collect();
        generated.push((per_s, burst, steps));
    }
    let cases = table
        .iter()
        .map(|(p, b, s)| (*p, *b, s.to_vec()))
        .chain(generated);
    for (i, (per_s, burst, steps)) in cases.enumerate() {
        let q = quota(per_s, burst);
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(q, clock.clone());
        let key = unique_key(&format!("gcra{i}"));
        let mut elapsed: u64 = 0;
        for (step, &(advance, n)) in steps.iter().enumerate() {
            clock.advance(Duration::from_nanos(advance));
            elapsed += advance;
            let at_ns = u64::from(base.1) + elapsed;
            let now = (
                base.0 + at_ns / 1_000_000_000,
                u32::try_from(at_ns % 1_000_000_000).expect("below 1e9"),
            );
            let expected = governor_verdict(&limiter, &clock, n);
            let got = gcra(&mut conn, &script, &key, Cells::of(&q), n, Some(now))
                .await
                .expect("script runs");
            assert_eq!(
                got, expected,
                "quota {per_s}/s burst {burst}, step {step} (+{advance} ns, n = {n})"
            );
            compared += 1;
        }
    }
    println!("GCRA script and governor agreed on {compared} admissions");
}

/// A key expires once its bucket is full again, and never before.
#[tokio::test]
async fn a_bucket_expires_when_full_again() {
    let mut conn = connect().await;
    let script = redis::Script::new(GCRA_SCRIPT);
    let key = unique_key("ttl");
    // 10/s, burst 5: three cells leave the bucket 300 ms from full.
    let q = quota(10, 5);
    let verdict = gcra(&mut conn, &script, &key, Cells::of(&q), 3, None)
        .await
        .expect("script runs");
    assert_eq!(verdict, Verdict::Admitted);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!((250..=300).contains(&ttl), "PTTL {ttl} ms");
}

fn clients_file(name: &str, limits: RateLimits) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("eye-auth-shared-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("clients.toml");
    let creds = NewCredentials::generate().expect("random");
    ClientsFile {
        clients: vec![ClientRecord {
            rate_limits: limits,
            ..creds.record("shared", vec![crate::Scope::EventsWrite])
        }],
    }
    .save(&path)
    .expect("clients file");
    (path, creds.api_key())
}

fn auth_config(path: &std::path::Path, vars: &[(&str, &str)]) -> AuthConfig {
    let mut all = vec![
        (
            "EYE_AUTH_CLIENTS_FILE".to_owned(),
            path.display().to_string(),
        ),
        ("EYE_AUTH_TOKEN_SECRET".to_owned(), "k".repeat(32)),
    ];
    all.extend(
        vars.iter()
            .map(|(k, v)| (format!("EYE_AUTH_{k}"), (*v).to_owned())),
    );
    eye_runtime::config::from_iter::<AuthConfig>(all).expect("config")
}

/// Two authenticators (two replicas) on one Redis share a client's budget: what one took,
/// the other cannot; answers keep their shape (429 with a wait, batch over the burst).
#[tokio::test]
async fn replicas_share_one_budget() {
    connect().await;
    let (path, key) = clients_file(
        "share",
        RateLimits {
            events_per_s: Some(1),
            events_burst: Some(10),
            ..RateLimits::default()
        },
    );
    let prefix = unique_key("share");
    let config = auth_config(
        &path,
        &[
            ("REDIS_URL", &redis_url()),
            ("REDIS_KEY_PREFIX", &prefix),
            ("REPLICAS", "2"),
        ],
    );
    let a = Authenticator::load_for(&config, "ingest").expect("loads");
    let b = Authenticator::load_for(&config, "ingest").expect("loads");
    let pa = a.authenticate_api_key(&key).expect("key");
    let pb = b.authenticate_api_key(&key).expect("key");
    pa.admit_events(6).await.expect("6 of 10");
    pb.admit_events(4).await.expect("4 more: 10 of 10");
    let e = pb
        .admit_events(1)
        .await
        .expect_err("the shared burst is spent");
    assert!(
        matches!(
            e,
            AuthError::RateLimited {
                limit: "events",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.retry_after_secs(), Some(1));
    assert!(pa.admit_events(1).await.is_err(), "the other replica too");
    assert_eq!(
        pa.admit_events(11).await,
        Err(AuthError::BatchOverBurst(10))
    );
    // Another service (query) on the same Redis has budgets of its own.
    let q = Authenticator::load_for(&config, "query").expect("loads");
    q.authenticate_api_key(&key)
        .expect("key")
        .admit_events(10)
        .await
        .expect("query's own bucket");
}

/// Redis unreachable: each replica admits within its share (1/EYE_AUTH_REPLICAS) of every
/// budget, from an empty bucket (the shared burst may just have been spent), says so in
/// `eye_auth_redis_up` and `eye_auth_redis_fallback_total`, and a batch within the budget
/// but over its share waits rather than failing for good.
#[tokio::test]
async fn without_redis_a_replica_keeps_its_share() {
    let (path, key) = clients_file(
        "down",
        RateLimits {
            events_per_s: Some(100),
            events_burst: Some(10),
            ..RateLimits::default()
        },
    );
    // Nothing listens on port 1.
    let config = auth_config(
        &path,
        &[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("REPLICAS", "2"),
            ("REDIS_RETRY_INTERVAL_MS", "60000"),
        ],
    );
    let auth = Authenticator::load_for(&config, "ingest").expect("starts without Redis");
    let registry = prometheus::Registry::new();
    auth.register_metrics(&registry);
    let p = auth.authenticate_api_key(&key).expect("key");
    // The share: 50 events/s, burst 5, empty at first; one cell back every 20 ms.
    match p.admit_events(1).await {
        Err(AuthError::RateLimited { retry_after, .. }) => {
            assert!(retry_after <= Duration::from_millis(20), "{retry_after:?}");
        }
        other => panic!("an outage starts the share empty: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    p.admit_events(5)
        .await
        .expect("5: this replica's half of 10, refilled");
    let e = p.admit_events(1).await.expect_err("the share is spent");
    assert!(matches!(e, AuthError::RateLimited { .. }), "{e:?}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    match p.admit_events(8).await {
        Err(AuthError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_secs(60));
        }
        other => panic!("8 is within the budget, over the share: {other:?}"),
    }
    assert_eq!(p.admit_events(11).await, Err(AuthError::BatchOverBurst(10)));
    let text = eye_runtime::telemetry::render(&registry);
    assert!(text.contains("eye_auth_redis_up 0"), "{text}");
    assert!(
        text.contains("eye_auth_redis_fallback_total{limit=\"events\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("eye_auth_redis_errors_total{kind=\"error\"} 1"),
        "one try, then none until the retry interval: {text}"
    );
}

/// What sharing costs per admission: p50 and p99 of one `admit_events` through Redis
/// against the one-process bucket, printed (`make test` shows them).
#[tokio::test]
async fn added_latency_per_admission() {
    connect().await;
    let (path, key) = clients_file("latency", RateLimits::unlimited());
    let prefix = unique_key("latency");
    let local = Authenticator::load(&auth_config(&path, &[])).expect("loads");
    let shared = Authenticator::load_for(
        &auth_config(
            &path,
            &[("REDIS_URL", &redis_url()), ("REDIS_KEY_PREFIX", &prefix)],
        ),
        "ingest",
    )
    .expect("loads");
    let mut figures = Vec::new();
    for (name, auth) in [("local", &local), ("redis", &shared)] {
        let p = auth.authenticate_api_key(&key).expect("key");
        // Warm up: the connection, the script cache.
        for _ in 0..200 {
            p.admit_events(10).await.expect("admitted");
        }
        let mut times: Vec<Duration> = Vec::with_capacity(5_000);
        for _ in 0..5_000 {
            let started = Instant::now();
            p.admit_events(10).await.expect("admitted");
            times.push(started.elapsed());
        }
        times.sort_unstable();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        figures.push((name, at(0.5), at(0.99)));
    }
    for (name, p50, p99) in &figures {
        println!("admission {name}: p50 {p50:?}, p99 {p99:?} (5,000 sequential admissions)");
    }
    let (_, l50, l99) = figures[0];
    let (_, r50, r99) = figures[1];
    println!(
        "added by Redis per admission: p50 {:?}, p99 {:?}",
        r50.saturating_sub(l50),
        r99.saturating_sub(l99)
    );
    // A loose bound, so that a slow CI machine passes: a local round trip is well under this.
    assert!(r99 < Duration::from_millis(20), "p99 {r99:?}");
}
