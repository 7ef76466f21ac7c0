//! A fixed rate for a fixed time, measured end to end: canary events (one every 250 ms)
//! timed from their send to the moment the query API returns them, and the consumer's
//! total lag sampled every second.
//!
//! The canaries of a step share one session and one poller reads it every 50 ms, so the
//! measurement costs ClickHouse 20 session reads a second however late the canaries are.
//! Polling each canary on its own fed back into what it measured: once canaries took
//! seconds, hundreds of polls a second kept ClickHouse at 1.8 cores and they took longer.

use super::{drain, procs};
use eye_loadgen::pages::{self, Listing};
use eye_loadgen::{Config, Progress};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub ingest: String,
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub query: String,
    #[arg(long, default_value = "http://127.0.0.1:8082/metrics")]
    pub consumer_metrics: String,
    #[arg(long, env = "EYE_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Events per second; or a share of the best `ingest_throughput` in `--max-from`.
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, default_value_t = 0.5)]
    pub share: f64,
    #[arg(long)]
    pub max_from: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Seed of the generated events.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// How long past the step's end the generator may still send batches that fell due.
const OVERRUN_GRACE: Duration = Duration::from_secs(5);

pub async fn run(o: Args) -> anyhow::Result<serde_json::Value> {
    let rate = match (o.rate, &o.max_from) {
        (Some(r), _) => r,
        (None, Some(file)) => o.share * crate::report::pipeline::best_ingest_rate(file)?,
        (None, None) => anyhow::bail!("give --rate, or --max-from with --share"),
    };
    let duration = Duration::from_secs(o.seconds);
    let http = reqwest::Client::new();
    let progress = Arc::new(Progress::default());
    let load = tokio::spawn(eye_loadgen::run(
        Config {
            url: o.ingest.clone(),
            api_key: o.api_key.clone(),
            connections: o.connections,
            batch: 100,
            sessions: 10_000,
            seed: o.seed,
            rate: Some(rate),
            events: None,
            duration: Some(duration),
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(30),
        },
        progress.clone(),
    ));
    let started = Instant::now();
    // Every process's cores over the step: what the machine had left is the step's limit.
    let watch = procs::Watch::start();
    let before = procs::snapshot();
    let canaries = Canaries::new(&o);
    let poller = tokio::spawn(canaries.clone().poll(http.clone()));
    let mut sends = Vec::new();
    let mut lag: Vec<(f64, f64)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut n: u64 = 0;
    while started.elapsed() < duration {
        tick.tick().await;
        n += 1;
        sends.push(tokio::spawn(canaries.clone().send(http.clone())));
        if n.is_multiple_of(4) {
            if let Ok(page) = http.get(&o.consumer_metrics).send().await {
                if let Ok(text) = page.text().await {
                    let total = drain::sum(&text, "eye_consumer_lag_messages");
                    lag.push((started.elapsed().as_secs_f64(), total));
                }
            }
        }
    }
    // A generator behind its schedule goes on sending what fell due before the deadline;
    // past a short grace the step ends, so a saturated machine cannot stretch `make bench`
    // (the rate achieved counts the grace as time, so the cut does not flatter it).
    let stop = {
        let progress = progress.clone();
        tokio::spawn(async move {
            tokio::time::sleep(OVERRUN_GRACE).await;
            progress
                .stop
                .store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let report = load.await??;
    let after = procs::snapshot();
    stop.abort();
    for c in sends {
        c.await?;
    }
    canaries.sending_done.store(true, Ordering::Relaxed);
    poller.await?;
    let h = canaries
        .latencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let ms = |q: f64| h.value_at_quantile(q) as f64;
    let missing = canaries.missing.load(Ordering::Relaxed)
        + canaries
            .outstanding
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u64;
    let (slope, max_lag) = trend(&lag);
    Ok(serde_json::json!({
        "target_rate": rate,
        "share_of_max": o.share,
        "seconds": o.seconds,
        "events_per_sec": report.events_per_sec(),
        "given_up": report.receipts.given_up,
        "request_latency_ms": {"p50": report.latency_ms(0.5), "p99": report.latency_ms(0.99), "p999": report.latency_ms(0.999)},
        "canaries": h.len(),
        "canaries_missing": missing,
        "queryable_latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": h.max() as f64},
        "lag": {"samples": lag, "max": max_lag, "slope_per_sec": slope},
        "processes": watch.finish(&before, &after).await?,
    }))
}

/// How long a canary may take to become queryable before it counts as missing.
const CANARY_TIMEOUT: Duration = Duration::from_secs(60);

/// The canaries of one step: sent into one session, found by one poller.
#[derive(Clone)]
struct Canaries {
    ingest: String,
    /// The query service, and the path of the session's events there.
    query: String,
    path: String,
    session: String,
    api_key: String,
    /// Sent and not yet seen: event id -> when its send began.
    outstanding: Arc<Mutex<HashMap<String, Instant>>>,
    latencies: Arc<Mutex<Histogram<u64>>>,
    /// Canaries ingest did not accept.
    missing: Arc<AtomicU64>,
    sending_done: Arc<AtomicBool>,
}

impl Canaries {
    fn new(o: &Args) -> Self {
        let session = format!("bench-canary-{}", uuid::Uuid::new_v4());
        Self {
            ingest: o.ingest.clone(),
            query: o.query.clone(),
            path: format!("/v1/sessions/{session}/events"),
            session,
            api_key: o.api_key.clone(),
            outstanding: Arc::default(),
            // 1 ms to 10 min, three significant digits.
            latencies: Arc::new(Mutex::new(
                Histogram::new_with_bounds(1, 600_000, 3).expect("valid bounds"),
            )),
            missing: Arc::default(),
            sending_done: Arc::default(),
        }
    }

    async fn send(self, http: reqwest::Client) {
        let id = uuid::Uuid::new_v4();
        let body = serde_json::json!({
            "event_id": id, "session_id": self.session, "category": "page_interaction",
            "name": "page_view", "data": {"host": "canary.example", "path": "/"},
            "timestamp": eye_loadgen::events::now_rfc3339(),
        });
        // Listed before the send, so the poller cannot see it stored and not know it.
        self.outstanding
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), Instant::now());
        let ok = http
            .post(format!("{}/v1/events", self.ingest))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !ok {
            self.outstanding
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id.to_string());
            self.missing.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reads the session every 50 ms and times each canary the first time it is there,
    /// until sending has ended and every canary is seen or out of time.
    async fn poll(self, http: reqwest::Client) {
        let mut last_seen_anything = Instant::now();
        loop {
            let ids = self.stored(&http).await;
            let now = Instant::now();
            {
                let mut out = self.outstanding.lock().unwrap_or_else(|e| e.into_inner());
                let mut h = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
                for id in ids {
                    if let Some(sent) = out.remove(&id) {
                        let ms = now.duration_since(sent).as_millis().max(1) as u64;
                        let _ = h.record(ms.min(600_000));
                        last_seen_anything = now;
                    }
                }
                // Out of time: left in `outstanding`, counted missing.
                let done = self.sending_done.load(Ordering::Relaxed);
                if done
                    && (out.is_empty() || now.duration_since(last_seen_anything) > CANARY_TIMEOUT)
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Event ids the query API returns for the session now (none while it is unknown).
    async fn stored(&self, http: &reqwest::Client) -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct Listed {
            event_id: String,
        }
        let listing = Listing {
            base: &self.query,
            path: &self.path,
            key: "events",
            api_key: &self.api_key,
            limit: Some(1000),
        };
        // Until the first canary is stored the session is unknown (404): none seen yet.
        pages::walk::<Listed>(http, listing)
            .await
            .map(|listed| listed.into_iter().map(|e| e.event_id).collect())
            .unwrap_or_default()
    }
}

/// Least-squares slope of lag over time (messages per second), and the largest lag seen:
/// a bounded lag has a slope near zero however large its swings.
pub fn trend(samples: &[(f64, f64)]) -> (f64, f64) {
    let max = samples.iter().map(|s| s.1).fold(0.0, f64::max);
    let n = samples.len() as f64;
    if n < 2.0 {
        return (0.0, max);
    }
    let (mx, my) = (
        samples.iter().map(|s| s.0).sum::<f64>() / n,
        samples.iter().map(|s| s.1).sum::<f64>() / n,
    );
    let cov: f64 = samples.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = samples.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    ((if var > 0.0 { cov / var } else { 0.0 }), max)
}

#[cfg(test)]
mod tests {
    use super::trend;

    #[test]
    fn lag_trends() {
        // (samples, slope, max)
        let cases: &[(&[(f64, f64)], f64, f64)] = &[
            (&[(0.0, 100.0), (1.0, 200.0), (2.0, 300.0)], 100.0, 300.0),
            (
                &[(0.0, 500.0), (1.0, 0.0), (2.0, 500.0), (3.0, 0.0)],
                -100.0,
                500.0,
            ),
            (&[(0.0, 7.0)], 0.0, 7.0),
            (&[], 0.0, 0.0),
        ];
        for (s, slope, max) in cases {
            let (a, b) = trend(s);
            assert!((a - slope).abs() < 1e-9, "{s:?}: {a}");
            assert_eq!(b, *max);
        }
    }
}
