//! One worker: one keep-alive connection, its own share of the schedule and of the sessions.

use crate::events::{now_us, Generator};
use crate::report::{Outcomes, Receipts};
use crate::{Config, Progress};
use backon::{ExponentialBuilder, Retryable};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct Worker {
    client: reqwest::Client,
    url: String,
    auth: String,
    generator: Generator,
    batch: usize,
    limit: Option<u64>,
    /// Time between this worker's sends at a fixed rate, and its offset in the schedule.
    interval: Option<Duration>,
    offset: Duration,
    retry_for: Duration,
    progress: Arc<Progress>,
    outcomes: Arc<Mutex<Outcomes>>,
}

/// Why an attempt did not end in a 2xx.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Worth retrying with the same body: 503, 429, 408, other 5xx, timeout, broken connection.
    #[error("{label}")]
    Transient {
        label: String,
        retry_after: Option<Duration>,
    },
    /// The server refused the batch for good (for example 400 or 401); retrying cannot help.
    #[error("{label}: {body}")]
    Refused { label: String, body: String },
}

impl Worker {
    pub fn new(
        config: &Config,
        index: usize,
        url: String,
        progress: Arc<Progress>,
        outcomes: Arc<Mutex<Outcomes>>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .timeout(config.timeout)
            .build()?;
        let n = config.connections as u64;
        let sessions = config.sessions.div_ceil(config.connections).max(1);
        let interval = config
            .rate
            .map(|rate| Duration::from_secs_f64(config.batch as f64 * n as f64 / rate));
        let offset = interval
            .map(|i| i.mul_f64(index as f64 / n as f64))
            .unwrap_or_default();
        Ok(Self {
            client,
            url,
            auth: format!("Bearer {}", config.api_key),
            generator: Generator::new(config.seed.wrapping_mul(1_000_003) ^ index as u64, sessions),
            batch: config.batch,
            limit: config.events,
            interval,
            offset,
            retry_for: config.retry_for,
            progress,
            outcomes,
        })
    }

    pub async fn run(
        mut self,
        started: Instant,
        deadline: Option<Instant>,
    ) -> anyhow::Result<Receipts> {
        let mut report = Receipts::new();
        let mut k: u32 = 0;
        loop {
            if self.progress.stop.load(Ordering::Relaxed) {
                break;
            }
            let scheduled = self
                .interval
                .map(|i| started + self.offset + i * k)
                .unwrap_or_else(Instant::now);
            if deadline.is_some_and(|d| scheduled >= d) {
                break;
            }
            let Some(n) = self.claim() else { break };
            tokio::time::sleep_until(scheduled.into()).await;
            let events = self.generator.batch(n, now_us());
            let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
            let body = bytes::Bytes::from(serde_json::to_vec(&events)?);
            match self.send(body).await {
                Ok(accepted) => {
                    // Latency from the scheduled time: a stall delays later sends, and
                    // that delay is the server's, so it is counted.
                    let micros = scheduled.elapsed().as_micros().max(1);
                    report.latency_us.saturating_record(micros as u64);
                    self.progress
                        .acked
                        .fetch_add(accepted.len() as u64, Ordering::Relaxed);
                    report.rejected += (n - accepted.len()) as u64;
                    report.acked.extend(accepted);
                }
                Err(Failure::Transient { label, .. }) => {
                    warn(&format!("gave up a batch of {n} after retrying: {label}"));
                    report.given_up += n as u64;
                    report.given_up_ids.extend(ids);
                }
                Err(e @ Failure::Refused { .. }) => {
                    warn(&format!("batch of {n} refused: {e}"));
                    report.refused += n as u64;
                }
            }
            report.batches += 1;
            k = k.wrapping_add(1);
        }
        Ok(report)
    }

    /// Takes the next batch's size from the shared event budget; `None` once it is spent.
    fn claim(&self) -> Option<usize> {
        let want = self.batch as u64;
        let before = self.progress.sent.fetch_add(want, Ordering::Relaxed);
        let n = match self.limit {
            Some(limit) if before >= limit => 0,
            Some(limit) => want.min(limit - before),
            None => want,
        };
        (n > 0).then_some(n as usize)
    }

    /// Sends one body until it is answered 2xx, refused, or `retry_for` has passed.
    /// Returns the ids the server accepted.
    async fn send(&self, body: bytes::Bytes) -> Result<Vec<Uuid>, Failure> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_jitter()
            .without_max_times()
            .with_total_delay(Some(self.retry_for));
        (|| self.attempt(body.clone()))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, Failure::Transient { .. }))
            .adjust(|e, pause| match e {
                Failure::Transient {
                    retry_after: Some(ra),
                    ..
                } => pause.map(|_| *ra),
                _ => pause,
            })
            .await
    }

    async fn attempt(&self, body: bytes::Bytes) -> Result<Vec<Uuid>, Failure> {
        let sent = self
            .client
            .post(&self.url)
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let res = match sent {
            Ok(res) => res,
            Err(e) => {
                let label = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect_error"
                } else {
                    "transport_error"
                };
                self.count(label);
                return Err(Failure::Transient {
                    label: format!("{label}: {e}"),
                    retry_after: None,
                });
            }
        };
        let status = res.status();
        self.count(status.as_str());
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = match res.text().await {
            Ok(t) => t,
            Err(e) => {
                // The answer was cut off: whether the batch was accepted is unknown, so it
                // is sent again; storage deduplicates by event_id.
                self.count("body_cut");
                return Err(Failure::Transient {
                    label: format!("{status} body cut: {e}"),
                    retry_after: None,
                });
            }
        };
        if status.is_success() {
            #[derive(serde::Deserialize)]
            struct Accepted {
                event_ids: Vec<Uuid>,
            }
            return serde_json::from_str::<Accepted>(&text)
                .map(|a| a.event_ids)
                .map_err(|e| Failure::Refused {
                    label: format!("{status} without event_ids"),
                    body: e.to_string(),
                });
        }
        let transient = status.is_server_error() || matches!(status.as_u16(), 408 | 429);
        if transient {
            Err(Failure::Transient {
                label: status.to_string(),
                retry_after,
            })
        } else {
            Err(Failure::Refused {
                label: status.to_string(),
                body: text.chars().take(300).collect(),
            })
        }
    }

    fn count(&self, label: &str) {
        let mut o = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        *o.attempts.entry(label.to_owned()).or_default() += 1;
    }
}

/// A batch given up or refused is what a caller must hear about even without a report.
fn warn(line: &str) {
    eprintln!("eye-loadgen: {line}");
}
