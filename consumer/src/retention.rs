//! The scheduled retention run: every `EYE_CONSUMER_RETENTION_INTERVAL_MS`, what has expired
//! under `EYE_RETENTION_*` is removed ([`eye_store::retention::apply`]) and counted in the
//! `eye_retention_*` metrics. Nothing runs when no retention is configured.

use eye_model::time::EventTime;
use eye_store::retention::{self, RetentionConfig, RetentionMetrics};
use eye_store::Store;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Starts the schedule, or `None` when nothing ever expires. The first run is at once.
pub fn spawn(
    store: Store,
    config: RetentionConfig,
    every: Duration,
    registry: &prometheus::Registry,
) -> Option<JoinHandle<()>> {
    if !config.is_configured() {
        return None;
    }
    let metrics = RetentionMetrics::new(registry);
    Some(tokio::spawn(async move {
        // Table TTL where the server has it: set once, as each change makes it re-check
        // every part.
        match retention::apply_ttl(&store, &config).await {
            Ok(on) => tracing::info!(ttl = on, "retention"),
            Err(e) => tracing::warn!(error = %e, "retention: cannot set table TTL"),
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = EventTime::now().as_micros();
            // A run waits for its mutations at most one interval: the next takes up the rest.
            let outcome = retention::apply(&store, &config, now, every).await;
            match &outcome {
                Ok(plan) => tracing::info!(?plan, "retention run"),
                Err(e) => tracing::warn!(error = %e, "retention run failed; the next run retries"),
            }
            metrics.record(&outcome);
        }
    }))
}
