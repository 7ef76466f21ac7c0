use clap::Parser;
use eye_loadgen::{Config, Progress};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Sends realistic events to ingest at a fixed rate or flat out, retries as a good client
/// does, and reports events/s and latency percentiles.
#[derive(Parser, Debug)]
#[command(name = "eye-loadgen", version)]
struct Args {
    /// Ingest's base URL.
    #[arg(long, env = "EYE_LOADGEN_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key (or token) with events:write; `make up` writes one to .eye/dev-credentials.
    #[arg(long, env = "EYE_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Live sessions.
    #[arg(long, default_value_t = 1_000)]
    sessions: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Events per second over all connections; 0 sends flat out.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Stop after this many events (0: no limit; then --duration-s must be set).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Stop after this many seconds (0: no limit).
    #[arg(long, default_value_t = 0)]
    duration_s: u64,
    /// Per-attempt timeout.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// How long a batch is retried before it is given up.
    #[arg(long, default_value_t = 120)]
    retry_for_s: u64,
    /// Write every acknowledged event id here, one per line.
    #[arg(long)]
    acked_out: Option<PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(
        a.events > 0 || a.duration_s > 0,
        "set --events or --duration-s, or the run never ends"
    );
    let config = Config {
        url: a.url,
        api_key: a.api_key,
        connections: a.connections,
        batch: a.batch,
        sessions: a.sessions,
        seed: a.seed,
        rate: (a.rate > 0.0).then_some(a.rate),
        events: (a.events > 0).then_some(a.events),
        duration: (a.duration_s > 0).then(|| Duration::from_secs(a.duration_s)),
        timeout: Duration::from_millis(a.timeout_ms),
        retry_for: Duration::from_secs(a.retry_for_s),
    };
    let progress = Arc::new(Progress::default());
    {
        // Ctrl-C stops taking new batches; what is in flight is still finished and counted.
        let progress = progress.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                progress
                    .stop
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    let report = eye_loadgen::run(config, progress).await?;
    if let Some(path) = a.acked_out {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for id in &report.receipts.acked {
            writeln!(out, "{id}")?;
        }
        out.flush()?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.summary());
    }
    anyhow::ensure!(
        report.receipts.given_up == 0 && report.receipts.refused == 0,
        "{} events given up, {} refused",
        report.receipts.given_up,
        report.receipts.refused
    );
    Ok(())
}
