//! One step of the ingest throughput sweep: `eye-loadgen` flat out over N connections for
//! a fixed time, with every pipeline process's CPU and peak RSS over the same interval.

use crate::procs;
use eye_loadgen::{Config, Progress};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Step {
    pub url: String,
    pub api_key: String,
    pub connections: usize,
    pub duration: Duration,
    pub batch: usize,
    pub seed: u64,
}

pub async fn run(step: Step) -> anyhow::Result<serde_json::Value> {
    // RSS is sampled every 500 ms for its peak; CPU is the difference of two snapshots.
    let peak: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            while !done.load(Ordering::Relaxed) {
                let snap = procs::snapshot();
                let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                for (name, (_, rss)) in snap.procs {
                    let e = p.entry(name).or_default();
                    *e = (*e).max(rss);
                }
                drop(p);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let before = procs::snapshot();
    let report = eye_loadgen::run(
        Config {
            url: step.url,
            api_key: step.api_key,
            connections: step.connections,
            batch: step.batch,
            sessions: 10_000,
            seed: step.seed,
            rate: None,
            events: None,
            duration: Some(step.duration),
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(30),
        },
        Arc::new(Progress::default()),
    )
    .await?;
    let after = procs::snapshot();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let peak = peak.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let processes: serde_json::Map<String, serde_json::Value> = procs::usage(&before, &after)
        .into_iter()
        .map(|(name, (cores, _))| {
            let rss = peak.get(&name).copied().unwrap_or(0) as f64 / 1024.0;
            (
                name,
                serde_json::json!({"cores": cores, "peak_rss_mib": rss}),
            )
        })
        .collect();
    let mut v = report.to_json();
    v["processes"] = processes.into();
    Ok(v)
}
