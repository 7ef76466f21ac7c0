//! The consumer draining a pre-filled topic, timed from its own metrics: rows ClickHouse
//! confirmed (`eye_consumer_rows_inserted_total`), polled every 100 ms; with every
//! process's cores and peak RSS meanwhile, since a backlog is the consumer's overload.

use super::procs;
use std::time::{Duration, Instant};

/// One unlabelled sample from a Prometheus text page.
pub fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Sum of every sample of a labelled family (`name{...} value`).
pub fn sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = rest.strip_prefix('{')?;
            rest.rsplit_once(' ')?.1.trim().parse::<f64>().ok()
        })
        .sum()
}

pub async fn run(
    metrics: &str,
    expect: u64,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let http = reqwest::Client::new();
    let called = Instant::now();
    let deadline = called + timeout;
    let watch = procs::Watch::start();
    let mut first: Option<(Instant, f64, procs::Snapshot)> = None;
    loop {
        let page = http.get(metrics).send().await?.text().await?;
        let rows = sample(&page, "eye_consumer_rows_inserted_total").unwrap_or(0.0);
        let now = Instant::now();
        if rows > 0.0 && first.is_none() {
            first = Some((now, rows, procs::snapshot()));
        }
        if rows >= expect as f64 {
            let after = procs::snapshot();
            let (t0, r0, before) = first.unwrap_or((called, 0.0, procs::Snapshot::default()));
            let secs = now.duration_since(t0).as_secs_f64();
            return Ok(serde_json::json!({
                "rows": rows,
                "seconds": secs,
                // After the first batch landed: group join and the first fetch excluded,
                // from the rate and from the cores alike.
                "per_sec": if secs > 0.0 { (rows - r0) / secs } else { 0.0 },
                "seconds_from_start": now.duration_since(called).as_secs_f64(),
                "processes": watch.finish(&before, &after).await?,
            }));
        }
        anyhow::ensure!(
            now < deadline,
            "the consumer stored {rows} of {expect} rows within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_and_sums_families() {
        let page = "# HELP x\neye_consumer_rows_inserted_total 1200\n\
                    eye_consumer_lag_messages{partition=\"0\",topic=\"e\"} 5\n\
                    eye_consumer_lag_messages{partition=\"1\",topic=\"e\"} 7\n\
                    eye_consumer_rows_inserted_totalx 9\n";
        assert_eq!(
            sample(page, "eye_consumer_rows_inserted_total"),
            Some(1200.0)
        );
        assert_eq!(sample(page, "eye_consumer_lag_messages"), None);
        assert_eq!(sum(page, "eye_consumer_lag_messages"), 12.0);
        assert_eq!(sum(page, "eye_missing"), 0.0);
    }
}
