//! `eye send` of a large NDJSON file against the load generator on the same stack, in
//! turns (load generator, `eye send`, load generator, `eye send`, …) so that a machine
//! that slows down during the step weighs on both alike. The figure is the ratio of their
//! median events/s; the target is 80%.

use eye_loadgen::events::{now_us, Generator};
use eye_loadgen::{Config, Progress};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Step {
    pub url: String,
    pub api_key: String,
    pub events: usize,
    pub rounds: usize,
    /// The load generator's connections and batch: its best of the sweep.
    pub connections: usize,
    pub batch: usize,
    /// The `eye` binary.
    pub eye: PathBuf,
    /// Where the NDJSON file is written (and kept for the next run).
    pub file: PathBuf,
}

/// Writes `events` generated events, one JSON object per line, unless the file already
/// holds that many lines. Their times are now: well inside ingest's accepted window.
fn write_file(path: &Path, events: usize) -> anyhow::Result<()> {
    if let Ok(text) = std::fs::read_to_string(path) {
        if text.lines().count() == events {
            return Ok(());
        }
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut generator = Generator::new(7, 10_000);
    let mut left = events;
    while left > 0 {
        let n = left.min(10_000);
        for e in generator.batch(n, now_us()) {
            serde_json::to_writer(&mut out, &e)?;
            out.write_all(b"\n")?;
        }
        left -= n;
    }
    out.flush()?;
    Ok(())
}

async fn loadgen(step: &Step) -> anyhow::Result<f64> {
    let report = eye_loadgen::run(
        Config {
            url: step.url.clone(),
            api_key: step.api_key.clone(),
            connections: step.connections,
            batch: step.batch,
            sessions: 10_000,
            seed: 3,
            rate: None,
            events: Some(step.events as u64),
            duration: None,
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(30),
        },
        Arc::new(Progress::default()),
    )
    .await?;
    Ok(report.events_per_sec())
}

/// `eye send FILE` as a user runs it (with `--quiet`: no terminal here), timed from start
/// to exit: reading the file, ids, batching, gzip and every answer included.
async fn eye_send(step: &Step) -> anyhow::Result<f64> {
    let home = std::env::temp_dir().join(format!("eye-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&home)?;
    let mut cmd = std::process::Command::new(&step.eye);
    cmd.arg("send")
        .arg(&step.file)
        .arg("--quiet")
        .env("XDG_CONFIG_HOME", &home)
        .env("EYE_INGEST_URL", &step.url)
        .env("EYE_API_KEY", &step.api_key);
    let (out, secs) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = cmd.output();
        (out, started.elapsed().as_secs_f64())
    })
    .await?;
    let out = out?;
    anyhow::ensure!(
        out.status.success(),
        "eye send failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(step.events as f64 / secs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

pub async fn run(step: Step) -> anyhow::Result<serde_json::Value> {
    let file = step.file.clone();
    let events = step.events;
    tokio::task::spawn_blocking(move || write_file(&file, events)).await??;
    let (mut generator, mut cli) = (Vec::new(), Vec::new());
    for _ in 0..step.rounds.max(1) {
        generator.push(loadgen(&step).await?);
        cli.push(eye_send(&step).await?);
    }
    let (g, c) = (median(generator.clone()), median(cli.clone()));
    Ok(serde_json::json!({
        "events": step.events,
        "rounds": step.rounds,
        "loadgen": {"connections": step.connections, "batch": step.batch,
                    "events_per_sec": generator, "median": g},
        "eye_send": {"events_per_sec": cli, "median": c},
        "ratio": c / g,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn medians() {
        let cases = [
            (vec![3.0, 1.0, 2.0], 2.0),
            (vec![4.0, 1.0, 2.0, 3.0], 2.5),
            (vec![5.0], 5.0),
        ];
        for (v, want) in cases {
            assert_eq!(super::median(v), want);
        }
        assert!(super::median(Vec::new()).is_nan());
    }
}
