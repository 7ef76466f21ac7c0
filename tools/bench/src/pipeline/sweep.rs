//! One step of ingest flat out: `eye-loadgen` over N connections for a fixed time, with every
//! pipeline process's CPU and peak RSS over the same interval. The throughput sweep runs it
//! per connection count; the overload step runs it once with far more connections.

use super::procs;
use eye_loadgen::{Config, Progress};
use std::sync::Arc;
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
    let watch = procs::Watch::start();
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
    let mut v = report.to_json();
    v["processes"] = watch.finish(&before, &after).await?.into();
    Ok(v)
}

/// Attempts ingest refused for lack of room (`503`, its in-flight budget) or of budget
/// (`429`, the client's rate limit): the backpressure an overload must meet.
pub fn refused(step: &serde_json::Value) -> serde_json::Value {
    let n = |code: &str| step["attempts"][code].as_u64().unwrap_or(0);
    serde_json::json!({"503": n("503"), "429": n("429")})
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_refusals_by_status() {
        let step = serde_json::json!({"attempts": {"202": 900, "503": 41, "timeout": 2}});
        assert_eq!(
            super::refused(&step),
            serde_json::json!({"503": 41, "429": 0})
        );
    }
}
