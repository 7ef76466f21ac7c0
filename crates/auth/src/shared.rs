//! Budgets shared by every replica of a service through Redis (`EYE_AUTH_REDIS_URL`).
//!
//! Each admission is one `EVALSHA` of [`GCRA_SCRIPT`], which runs governor's own algorithm
//! (the generic cell rate algorithm of `governor::gcra`, the one-process limiter used
//! without Redis) atomically on the server, on one key per service, client and budget:
//! same quota, same answers, whichever replica asks. Time is the Redis server's clock
//! (`TIME`), so replicas need not agree on theirs. A key holds the bucket's theoretical
//! arrival time and expires when that time has passed, since a bucket whose time has
//! passed is a full one: nothing is kept for idle clients.
//!
//! **When Redis does not answer** (refused, dropped, or slower than
//! `EYE_AUTH_REDIS_TIMEOUT_MS`), the admission is decided by the replica's own fallback
//! bucket, which holds `1/EYE_AUTH_REPLICAS` of the budget, so that the replicas together
//! still keep to it. Each outage starts those buckets empty (the shared burst may just have
//! been spent): through an outage the replicas admit at most the budget's rate, and an
//! outage adds at most one burst (the shared bucket refilled meanwhile) once Redis is back. The first failure logs a warning and sets `eye_auth_redis_up` to 0;
//! every admission decided locally counts in `eye_auth_redis_fallback_total`. Meanwhile one
//! admission per `EYE_AUTH_REDIS_RETRY_INTERVAL_MS` tries Redis again (the others do not
//! wait for it); the first that succeeds logs the recovery and the buckets are shared again.
//! Requests are never refused because Redis is down: the service degrades to a stricter,
//! local limit rather than to no limit or to no service.

use governor::Quota;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Governor's GCRA (`governor::gcra::Gcra::test_n_all_and_update`) as a Redis script.
///
/// `KEYS[1]`: the bucket. `ARGV`: the emission interval `t` and the tolerance `tau =
/// t × (burst − 1)` in nanoseconds, the cells asked for `n`, and optionally the time as
/// seconds and nanoseconds (tests only; otherwise the server's `TIME`). The key holds the
/// theoretical arrival time (TAT) as `"<seconds>.<nanoseconds>"`: Lua's numbers are doubles,
/// exact to 2^53, too few for nanoseconds since 1970, so the arithmetic is done relative to
/// now, where every value is bounded by `tau + n × t`. Answers `{0, 0}` admitted, `{1,
/// wait_ns}` refused until then (nothing stored, as governor), `{2, burst}` more than the
/// burst at once.
pub const GCRA_SCRIPT: &str = r#"
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local now_s, now_ns
if ARGV[4] then
  now_s = tonumber(ARGV[4])
  now_ns = tonumber(ARGV[5])
else
  local time = redis.call('TIME')
  now_s = tonumber(time[1])
  now_ns = tonumber(time[2]) * 1000
end
local additional = t * (n - 1)
if additional > tau then
  return {2, 1 + math.floor(tau / t)}
end
local tat = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local s, ns = string.match(stored, '^(%d+)%.(%d+)$')
  if s then
    tat = (tonumber(s) - now_s) * 1000000000 + (tonumber(ns) - now_ns)
  end
end
-- governor: tat = max(stored, now); a time in the past is a full bucket.
if tat < 0 then
  tat = 0
end
local earliest = tat + additional - tau
if earliest > 0 then
  return {1, earliest}
end
local next = tat + t + additional
local at = now_ns + next
local s = now_s + math.floor(at / 1000000000)
local ns = at - (s - now_s) * 1000000000
-- the division is a double's: correct an off-by-one second at the boundary
if ns < 0 then
  s = s - 1
  ns = ns + 1000000000
elseif ns >= 1000000000 then
  s = s + 1
  ns = ns - 1000000000
end
redis.call('SET', KEYS[1], string.format('%d.%09d', s, ns), 'PX', math.ceil(next / 1000000))
return {0, 0}
"#;

/// What the shared bucket answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admitted,
    /// Refused; conforming again after this wait.
    Wait(Duration),
    /// More than the burst at once: never conforming.
    OverBurst(u32),
}

/// A quota as the script takes it: governor's own emission interval and tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cells {
    t_ns: u64,
    tau_ns: u64,
}

impl Cells {
    pub fn of(quota: &Quota) -> Self {
        // governor::gcra::Gcra::new: t is at least 1 ns, tau = t × (burst − 1).
        let t_ns = u64::try_from(quota.replenish_interval().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let burst = u64::from(quota.burst_size().get());
        Self {
            t_ns,
            tau_ns: t_ns.saturating_mul(burst - 1),
        }
    }
}

/// Calls [`GCRA_SCRIPT`] once: `now` as (seconds, nanoseconds) for tests, `None` for the
/// server's clock.
pub async fn gcra(
    conn: &mut ConnectionManager,
    script: &redis::Script,
    key: &str,
    cells: Cells,
    n: u32,
    now: Option<(u64, u32)>,
) -> redis::RedisResult<Verdict> {
    let mut call = script.key(key);
    call.arg(cells.t_ns).arg(cells.tau_ns).arg(n);
    if let Some((s, ns)) = now {
        call.arg(s).arg(ns);
    }
    let (code, value): (i64, i64) = call.invoke_async(conn).await?;
    Ok(match code {
        0 => Verdict::Admitted,
        1 => Verdict::Wait(Duration::from_nanos(u64::try_from(value).unwrap_or(0))),
        _ => Verdict::OverBurst(u32::try_from(value).unwrap_or(u32::MAX)),
    })
}

/// Why the shared limits could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SharedLimitsError {
    #[error("EYE_AUTH_REDIS_URL is not a Redis URL: {0}")]
    Url(#[source] redis::RedisError),
    #[error("EYE_AUTH_REDIS_CA_FILE {path}: {source}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The shared buckets of one service: the connection, the script, Redis' state as last
/// seen, and the metrics saying so.
pub(crate) struct SharedLimits {
    conn: ConnectionManager,
    script: redis::Script,
    /// `<prefix>:<service>:`; each key adds `<client>:<budget>:<per_s>:<burst>`.
    key_prefix: String,
    timeout: Duration,
    retry_interval: Duration,
    pub(crate) replicas: u32,
    up: AtomicBool,
    /// Outages so far (each from the first failure to the next answer).
    outages: AtomicU64,
    /// While down: when one admission may try Redis again (ms since `started`).
    next_try_ms: AtomicU64,
    started: Instant,
    metrics: SharedMetrics,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("key_prefix", &self.key_prefix)
            .field("up", &self.up)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct SharedMetrics {
    up: IntGauge,
    fallback: IntCounterVec,
    errors: IntCounterVec,
    seconds: Histogram,
}

impl SharedMetrics {
    fn new() -> Self {
        Self {
            up: IntGauge::new(
                "eye_auth_redis_up",
                "1 while the rate limits are shared through Redis, 0 while Redis does not answer and each replica keeps its own share.",
            )
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}")),
            fallback: IntCounterVec::new(
                Opts::new(
                    "eye_auth_redis_fallback_total",
                    "Admissions decided by the replica's own fallback bucket (1/EYE_AUTH_REPLICAS of the budget) because Redis did not answer, by budget.",
                ),
                &["limit"],
            )
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}")),
            errors: IntCounterVec::new(
                Opts::new(
                    "eye_auth_redis_errors_total",
                    "Rate-limit calls to Redis that failed, by kind (timeout, error).",
                ),
                &["kind"],
            )
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}")),
            seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "eye_auth_redis_admission_seconds",
                    "Round trip of one shared admission (EVALSHA of the GCRA script).",
                )
                .buckets(vec![
                    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
                ]),
            )
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}")),
        }
    }
}

/// The client for `url`; for `rediss://` with a CA file, trusting that CA only (the
/// certificate is checked when the first admission connects, not here).
fn client(url: &str, ca_file: &str) -> Result<redis::Client, SharedLimitsError> {
    if ca_file.is_empty() {
        return redis::Client::open(url).map_err(SharedLimitsError::Url);
    }
    let root_cert = std::fs::read(ca_file).map_err(|source| SharedLimitsError::CaFile {
        path: ca_file.to_owned(),
        source,
    })?;
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        },
    )
    .map_err(SharedLimitsError::Url)
}

impl SharedLimits {
    /// Sets up the connection without connecting: a service starts whether Redis answers
    /// or not (its admissions fall back until it does).
    pub(crate) fn new(
        config: &crate::config::AuthConfig,
        service: &str,
    ) -> Result<Self, SharedLimitsError> {
        let url = secrecy::ExposeSecret::expose_secret(&config.redis_url).trim();
        let client = client(url, config.redis_ca_file.trim())?;
        let timeout = Duration::from_millis(config.redis_timeout_ms.max(1));
        let conn = ConnectionManager::new_lazy_with_config(
            client,
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                // One quick attempt per reconnection: the retry pace is ours
                // (EYE_AUTH_REDIS_RETRY_INTERVAL_MS), and admissions never wait on backoff.
                .set_number_of_retries(0),
        )
        .map_err(SharedLimitsError::Url)?;
        let metrics = SharedMetrics::new();
        metrics.up.set(1);
        Ok(Self {
            conn,
            script: redis::Script::new(GCRA_SCRIPT),
            key_prefix: format!("{}:{service}:", config.redis_key_prefix),
            timeout,
            retry_interval: Duration::from_millis(config.redis_retry_interval_ms.max(1)),
            replicas: config.replicas.max(1),
            up: AtomicBool::new(true),
            outages: AtomicU64::new(0),
            next_try_ms: AtomicU64::new(0),
            started: Instant::now(),
            metrics,
        })
    }

    pub(crate) fn register(&self, registry: &Registry) {
        let m = &self.metrics;
        // A second registration (two services in one test process) is harmless.
        let _ = registry.register(Box::new(m.up.clone()));
        let _ = registry.register(Box::new(m.fallback.clone()));
        let _ = registry.register(Box::new(m.errors.clone()));
        let _ = registry.register(Box::new(m.seconds.clone()));
    }

    /// The key of one client's budget. The quota is part of it, so a changed limit starts
    /// from a full bucket, as the one-process limiter does when the clients file changes.
    pub(crate) fn key(&self, client: &str, limit: &str, quota: &Quota) -> String {
        format!(
            "{}{client}:{limit}:{}:{}",
            self.key_prefix,
            quota.replenish_interval().as_nanos(),
            quota.burst_size()
        )
    }

    /// How long a refused client waits, at least, when its fallback bucket cannot hold the
    /// batch at all (it may pass once Redis answers again).
    pub(crate) fn retry_interval(&self) -> Duration {
        self.retry_interval
    }

    /// The shared verdict, or `None` when Redis is not to be asked or did not answer: the
    /// caller then decides with its fallback bucket (counted here).
    pub(crate) async fn admit(
        &self,
        key: &str,
        cells: Cells,
        n: u32,
        limit: &'static str,
    ) -> Option<Verdict> {
        if !self.may_try() {
            self.metrics.fallback.with_label_values(&[limit]).inc();
            return None;
        }
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(
            self.timeout,
            gcra(&mut conn, &self.script, key, cells, n, None),
        )
        .await;
        match answer {
            Ok(Ok(verdict)) => {
                self.metrics
                    .seconds
                    .observe(started.elapsed().as_secs_f64());
                self.answered();
                Some(verdict)
            }
            Ok(Err(e)) => {
                self.metrics.errors.with_label_values(&["error"]).inc();
                self.failed(&e.to_string());
                self.metrics.fallback.with_label_values(&[limit]).inc();
                None
            }
            Err(_) => {
                self.metrics.errors.with_label_values(&["timeout"]).inc();
                self.failed(&format!("no answer within {} ms", self.timeout.as_millis()));
                self.metrics.fallback.with_label_values(&[limit]).inc();
                None
            }
        }
    }

    /// The current outage's number (the last one's while Redis answers).
    pub(crate) fn outage(&self) -> u64 {
        self.outages.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Up: always. Down: one admission per retry interval (the one that moves the next
    /// try forward).
    fn may_try(&self) -> bool {
        if self.up.load(Ordering::Acquire) {
            return true;
        }
        let now = self.now_ms();
        let next = self.next_try_ms.load(Ordering::Acquire);
        now >= next
            && self
                .next_try_ms
                .compare_exchange(
                    next,
                    now + self.retry_interval_ms(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    fn retry_interval_ms(&self) -> u64 {
        u64::try_from(self.retry_interval.as_millis()).unwrap_or(u64::MAX)
    }

    fn answered(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            self.metrics.up.set(1);
            tracing::info!("Redis answers again: rate limits are shared by every replica again");
        }
    }

    fn failed(&self, error: &str) {
        self.next_try_ms
            .store(self.now_ms() + self.retry_interval_ms(), Ordering::Release);
        if self.up.swap(false, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::AcqRel);
            self.metrics.up.set(0);
            tracing::warn!(
                error,
                replicas = self.replicas,
                retry_ms = self.retry_interval_ms(),
                "Redis does not answer: rate limits fall back to this replica's own buckets, 1/EYE_AUTH_REPLICAS of each budget, until it does"
            );
        }
    }
}

#[cfg(test)]
mod tests;
