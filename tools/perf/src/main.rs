//! eye-perf: the measurements behind `make bench` (deploy/bench.sh). Every figure is
//! printed as one JSON line on stdout (`"measure": ...`); `eye-perf report` turns the lines
//! of every run into BENCHMARKS.md and bench.json.

mod consume;
mod drain;
mod end_to_end;
mod insert;
mod limits;
mod messages;
mod procs;
mod produce;
mod report;
mod sweep;

use clap::{Parser, Subcommand};
use eye_kafka::config::KafkaConfig;
use eye_runtime::config;
use std::path::PathBuf;
use std::time::Duration;

/// Servers come from the services' own variables (`EYE_KAFKA_BROKERS`,
/// `EYE_CLICKHOUSE_URL`, ...), so a limit is measured where the services run.
#[derive(Parser, Debug)]
#[command(name = "eye-perf", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// Records to generate (distinct events as ingest encodes them, ~340 bytes each).
    #[arg(long, global = true, default_value_t = 500_000)]
    messages: usize,
    #[arg(long, global = true, default_value = "schemas")]
    schema_dir: PathBuf,
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Ingest's in-flight budget, which bounds its producer queue (as in ingest).
    #[arg(long, global = true, default_value_t = 32 * 1024 * 1024)]
    max_inflight_bytes: u64,
    /// Records sent and not yet acknowledged, at most.
    #[arg(long, global = true, default_value_t = 50_000)]
    max_inflight: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Produce to a fresh topic with ingest's producer settings; read it back with the
    /// consumer's settings; insert the same rows into a scratch database.
    Limits {
        /// Rows per INSERT, as the consumer batches (`EYE_CONSUMER_BATCH_MAX_ROWS`).
        #[arg(long, default_value_t = 10_000)]
        batch_rows: usize,
        /// Produce into the events topic instead of a fresh one, and read back from where
        /// this produce began, leaving the records for `drain` (stop the consumer first).
        #[arg(long)]
        into_events_topic: bool,
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
    /// Ingest overloaded: one step flat out over far more connections than the sweep, with
    /// the requests refused (503, 429) and every process's peak RSS.
    Overload {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        #[arg(long, env = "EYE_API_KEY", hide_env_values = true)]
        api_key: String,
        #[arg(long, default_value_t = 512)]
        connections: usize,
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
    /// Pre-fill the events topic (`EYE_KAFKA_EVENTS_TOPIC`) with `--messages` records, as
    /// ingest would have written them (stop the consumer first).
    Fill,
    /// Time the consumer draining `--expect` rows: from its first inserted row to the last,
    /// read from its metrics, with every process's cores and peak RSS meanwhile.
    Drain {
        #[arg(long)]
        expect: u64,
        #[arg(long, default_value = "http://127.0.0.1:8082/metrics")]
        metrics: String,
        #[arg(long, default_value_t = 900)]
        timeout_s: u64,
    },
    /// A fixed rate for a while: ingest-to-queryable latency of canary events polled
    /// through the query API, and the consumer's lag over time.
    EndToEnd(end_to_end::Args),
    /// Writes BENCHMARKS.md and bench.json from the JSON lines of each run
    /// (`NAME=FILE`, e.g. `memory=target/bench/memory.jsonl`).
    Report {
        runs: Vec<String>,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
        #[arg(long, default_value = "bench.json")]
        json: PathBuf,
        /// Changes measured before and after (`deploy/ab.sh`), one JSON line each.
        #[arg(long, default_value = "perf/changes.jsonl")]
        changes: PathBuf,
    },
}

pub(crate) fn line(kind: &str, fields: serde_json::Value) {
    let mut v = fields;
    v["measure"] = kind.into();
    println!("{v}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    // The sweep's and the overload's steps differ only in their figures.
    let seed = a.seed;
    let step = |url, api_key, connections, seconds, batch| sweep::Step {
        url,
        api_key,
        connections,
        duration: Duration::from_secs(seconds),
        batch,
        seed,
    };
    match a.command {
        Command::Limits {
            batch_rows,
            into_events_topic,
        } => {
            let o = limits::Options {
                messages: a.messages,
                seed: a.seed,
                max_inflight_bytes: a.max_inflight_bytes,
                max_inflight: a.max_inflight,
                batch_rows,
                into_events_topic,
            };
            limits::run(o, &a.schema_dir).await
        }
        Command::Sweep {
            url,
            api_key,
            connections,
            seconds,
            batch,
        } => {
            for c in connections {
                let step = step(url.clone(), api_key.clone(), c, seconds, batch);
                line("ingest_throughput", sweep::run(step).await?);
            }
            Ok(())
        }
        Command::Overload {
            url,
            api_key,
            connections,
            seconds,
            batch,
        } => {
            let mut v = sweep::run(step(url, api_key, connections, seconds, batch)).await?;
            v["refused"] = sweep::refused(&v);
            line("ingest_overload", v);
            Ok(())
        }
        Command::Fill => {
            let kafka: KafkaConfig = config::from_env()?;
            let records = messages::generate(a.messages, a.seed, &a.schema_dir)?;
            let topic = kafka.events_topic.clone();
            let (inflight_bytes, inflight) = (a.max_inflight_bytes, a.max_inflight);
            let p = tokio::task::spawn_blocking(move || {
                produce::run(&kafka, &topic, &records, inflight_bytes, inflight)
            })
            .await??;
            anyhow::ensure!(p.failed == 0, "{} records were not acknowledged", p.failed);
            line(
                "fill",
                serde_json::json!({"messages": p.acked, "seconds": p.elapsed.as_secs_f64()}),
            );
            Ok(())
        }
        Command::Drain {
            expect,
            metrics,
            timeout_s,
        } => {
            let d = drain::run(&metrics, expect, Duration::from_secs(timeout_s)).await?;
            line("consumer_drain", d);
            Ok(())
        }
        Command::EndToEnd(args) => {
            line("end_to_end", end_to_end::run(args, a.seed).await?);
            Ok(())
        }
        Command::Report {
            runs,
            markdown,
            json,
            changes,
        } => report::write(&runs, &markdown, &json, &changes),
    }
}
