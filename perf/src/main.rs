//! eye-perf: the limits the pipeline is measured against (issue 7's `make bench` calls it).
//! Every figure is printed as one JSON line on stdout, for the report to collect.

mod consume;
mod insert;
mod messages;
mod procs;
mod produce;
mod sweep;

use clap::{Parser, Subcommand};
use eye_common::config::{self, ClickHouseConfig, KafkaConfig};
use std::path::PathBuf;
use std::time::Duration;

/// Servers come from the services' own variables (`EYE_KAFKA_BROKERS`,
/// `EYE_CLICKHOUSE_URL`, ...), so a limit is measured where the services run.
#[derive(Parser, Debug)]
#[command(name = "eye-perf", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// Records to generate (distinct events, ~400 bytes each as ingest encodes them).
    #[arg(long, global = true, default_value_t = 500_000)]
    messages: usize,
    #[arg(long, global = true, default_value = "schemas")]
    schema_dir: PathBuf,
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Produce to a fresh topic with ingest's producer settings; then read it back with
    /// the consumer's settings; then insert the same rows into a scratch database.
    All {
        /// Ingest's in-flight budget, which bounds its producer queue (as in ingest).
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        max_inflight_bytes: u64,
        /// Records sent and not yet acknowledged, at most.
        #[arg(long, default_value_t = 50_000)]
        max_inflight: u64,
        /// Rows per INSERT, as the consumer batches (`EYE_CONSUMER_BATCH_MAX_ROWS`).
        #[arg(long, default_value_t = 10_000)]
        batch_rows: usize,
    },
    /// Ingest flat out over each number of keep-alive connections in turn, with CPU and
    /// RSS of every pipeline process (needs the stack running, e.g. `make up`).
    Sweep {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, env = "EYE_API_KEY", hide_env_values = true)]
        api_key: String,
        #[arg(long, value_delimiter = ',', default_value = "8,32,64,128")]
        connections: Vec<usize>,
        /// Seconds per step.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
}

fn line(kind: &str, fields: serde_json::Value) {
    let mut v = fields;
    v["measure"] = kind.into();
    println!("{v}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let (max_inflight_bytes, max_inflight, batch_rows) = match a.command {
        Command::All {
            max_inflight_bytes,
            max_inflight,
            batch_rows,
        } => (max_inflight_bytes, max_inflight, batch_rows),
        Command::Sweep {
            url,
            api_key,
            connections,
            seconds,
            batch,
        } => {
            for c in connections {
                let step = sweep::Step {
                    url: url.clone(),
                    api_key: api_key.clone(),
                    connections: c,
                    duration: Duration::from_secs(seconds),
                    batch,
                    seed: a.seed,
                };
                line("ingest_throughput", sweep::run(step).await?);
            }
            return Ok(());
        }
    };
    let kafka: KafkaConfig = config::from_env()?;
    let records = messages::generate(a.messages, a.seed, &a.schema_dir)?;
    let mean = messages::mean_bytes(&records);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("eye.perf.{}", &run[..12]);
    eye_common::kafka::ensure_topics(&kafka, &[(&topic, kafka.events_partitions)]).await?;

    let k = kafka.clone();
    let t = topic.clone();
    let (p, records) = tokio::task::spawn_blocking(move || {
        produce::run(&k, &t, &records, max_inflight_bytes, max_inflight).map(|p| (p, records))
    })
    .await??;
    anyhow::ensure!(p.failed == 0, "{} records were not acknowledged", p.failed);
    let secs = p.elapsed.as_secs_f64();
    line(
        "raw_produce",
        serde_json::json!({"messages": p.acked, "mean_bytes": mean, "seconds": secs,
            "per_sec": p.acked as f64 / secs}),
    );

    let k = kafka.clone();
    let expect = p.acked;
    let c = tokio::task::spawn_blocking(move || {
        consume::run(&k, &topic, expect, Duration::from_secs(600))
    })
    .await??;
    anyhow::ensure!(c.messages == expect, "read {} of {expect}", c.messages);
    let secs = c.elapsed.as_secs_f64();
    line(
        "raw_consume",
        serde_json::json!({"messages": c.messages, "bytes": c.bytes, "seconds": secs,
            "per_sec": c.messages as f64 / secs}),
    );

    let mut ch: ClickHouseConfig = config::from_env()?;
    ch.database = format!("eye_perf_{}", &run[..12]);
    let store = eye_common::store::Store::new(&ch)?;
    store.migrate().await?;
    let i = insert::run(&store, &records, batch_rows).await?;
    let secs = i.elapsed.as_secs_f64();
    line(
        "raw_insert",
        serde_json::json!({"rows": i.rows, "batch_rows": batch_rows, "seconds": secs,
            "per_sec": i.rows as f64 / secs, "database": ch.database}),
    );
    Ok(())
}
