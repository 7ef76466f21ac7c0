//! eye-loadgen: drives ingest the way a fleet of well-behaved clients would, and keeps the
//! receipts.
//!
//! - Each of `connections` workers owns one keep-alive connection and sends batches of
//!   realistic events ([`events`]) with client-chosen `event_id`s.
//! - At a fixed rate (`rate`), every worker follows its own send schedule, and latency is
//!   measured from the scheduled send time, so a stalled server shows up as latency, not as
//!   a quietly lower rate (coordinated omission). Without a rate, workers send flat out.
//! - A `503`, `429`, `408`, `5xx`, timeout or broken connection is retried with the same
//!   body (the same `event_id`s), honouring `Retry-After`, for up to `retry_for`.
//! - Every id answered `2xx` is recorded ([`Report::acked`]); that list is what the
//!   fault-injection suite holds the pipeline to.
//!
//! Also the one walker of the query API's paged listings ([`pages`]), which the suite, the
//! benchmarks and the end-to-end tests read through.

pub mod events;
pub mod pages;
mod report;
mod send;

pub use report::{Outcomes, Receipts, Report};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Config {
    /// Ingest's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Sent as `Authorization: Bearer`; needs `events:write`.
    pub api_key: String,
    /// Concurrent workers, one keep-alive connection each.
    pub connections: usize,
    /// Events per request.
    pub batch: usize,
    /// Live sessions, spread over the workers.
    pub sessions: usize,
    pub seed: u64,
    /// Target events per second over all workers; `None` sends flat out.
    pub rate: Option<f64>,
    /// Stop after this many events (whichever of `events` and `duration` comes first).
    pub events: Option<u64>,
    pub duration: Option<Duration>,
    /// Per attempt.
    pub timeout: Duration,
    /// How long one batch is retried before it is given up (and counted as such).
    pub retry_for: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            api_key: String::new(),
            connections: 8,
            batch: 100,
            sessions: 1_000,
            seed: 1,
            rate: None,
            events: Some(100_000),
            duration: None,
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(120),
        }
    }
}

/// Live counters, readable while a run is in progress (the fault-injection suite injects
/// its fault once a share of the events is acknowledged).
#[derive(Debug, Default)]
pub struct Progress {
    /// Events handed to a worker.
    pub sent: AtomicU64,
    /// Events answered 2xx.
    pub acked: AtomicU64,
    /// Set to stop early: workers finish (and retry) what they hold, and take nothing new.
    pub stop: AtomicBool,
}

impl Progress {
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }
}

/// Runs the load and returns the report once every worker has finished.
pub async fn run(config: Config, progress: Arc<Progress>) -> anyhow::Result<Report> {
    anyhow::ensure!(config.connections > 0, "connections must be at least 1");
    anyhow::ensure!(config.batch > 0, "batch must be at least 1");
    if let Some(rate) = config.rate {
        anyhow::ensure!(
            rate.is_finite() && rate > 0.0,
            "rate must be a positive number of events per second"
        );
    }
    let url = format!("{}/v1/events", config.url.trim_end_matches('/'));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let started = Instant::now();
    let deadline = config.duration.map(|d| started + d);
    let mut workers = Vec::with_capacity(config.connections);
    for index in 0..config.connections {
        let worker = send::Worker::new(
            &config,
            index,
            url.clone(),
            progress.clone(),
            outcomes.clone(),
        )?;
        workers.push(tokio::spawn(worker.run(started, deadline)));
    }
    let mut report = Report::new(&config);
    for w in workers {
        report.merge(w.await??);
    }
    report.elapsed = started.elapsed();
    report.outcomes = std::mem::take(&mut *outcomes.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(report)
}
