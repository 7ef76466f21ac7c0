//! The pipeline benchmark's steps, which `make bench` (deploy/bench.sh) runs in turn on a
//! stack of its own. Each prints its figures as JSON lines (`"measure": ...`) for
//! `eye-bench report`. Servers come from the services' own variables (`EYE_KAFKA_BROKERS`,
//! `EYE_CLICKHOUSE_URL`, ...), so a limit is measured where the services run.

mod cli_send;
mod consume;
mod drain;
mod end_to_end;
mod insert;
mod limits;
mod messages;
mod procs;
mod produce;
mod sweep;

use crate::report::emit;
use eye_kafka::config::KafkaConfig;
use eye_runtime::config;
use std::path::PathBuf;
use std::time::Duration;

/// The records the raw limits and the pre-filled backlog are made of.
#[derive(clap::Args, Debug)]
pub struct Records {
    /// Records to generate (distinct events as ingest encodes them, ~330 bytes each).
    #[arg(long, default_value_t = 500_000)]
    messages: usize,
    #[arg(long, default_value = "schemas")]
    schema_dir: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Ingest's in-flight budget, which bounds its producer queue (as in ingest).
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    max_inflight_bytes: u64,
    /// Records sent and not yet acknowledged, at most.
    #[arg(long, default_value_t = 50_000)]
    max_inflight: u64,
}

/// Ingest flat out: where to, and with what.
#[derive(clap::Args, Debug)]
pub struct Load {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, env = "EYE_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Seed of the generated events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Produce to a fresh topic with ingest's producer settings; read it back with the
    /// consumer's settings; insert the same rows into a scratch database.
    Limits {
        #[command(flatten)]
        records: Records,
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
        #[command(flatten)]
        load: Load,
        #[arg(long, value_delimiter = ',', default_value = "8,32,64,128")]
        connections: Vec<usize>,
        /// Seconds per step.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Ingest overloaded: one step flat out over far more connections than the sweep, with
    /// the requests refused (503, 429) and every process's peak RSS.
    Overload {
        #[command(flatten)]
        load: Load,
        #[arg(long, default_value_t = 512)]
        connections: usize,
        #[arg(long, default_value_t = 15)]
        seconds: u64,
    },
    /// Pre-fill the events topic (`EYE_KAFKA_EVENTS_TOPIC`) with `--messages` records, as
    /// ingest would have written them (stop the consumer first).
    Fill {
        #[command(flatten)]
        records: Records,
    },
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
    /// `eye send` of an NDJSON file against the load generator sending as many events,
    /// in turns: the command's events/s as a share of the generator's.
    CliSend {
        #[command(flatten)]
        load: Load,
        /// Events per run (the file's lines).
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Runs of each, alternating.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// The load generator's connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// The `eye` binary.
        #[arg(long, default_value = "target/release/eye")]
        eye: PathBuf,
        /// The NDJSON file (written when it does not hold `--events` lines).
        #[arg(long, default_value = "target/bench/cli-events.ndjson")]
        file: PathBuf,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Limits {
            records: r,
            batch_rows,
            into_events_topic,
        } => {
            let o = limits::Options {
                messages: r.messages,
                seed: r.seed,
                max_inflight_bytes: r.max_inflight_bytes,
                max_inflight: r.max_inflight,
                batch_rows,
                into_events_topic,
            };
            limits::run(o, &r.schema_dir).await
        }
        Command::Sweep {
            load,
            connections,
            seconds,
        } => {
            for c in connections {
                emit(
                    "ingest_throughput",
                    sweep::run(step(&load, c, seconds)).await?,
                );
            }
            Ok(())
        }
        Command::Overload {
            load,
            connections,
            seconds,
        } => {
            let mut v = sweep::run(step(&load, connections, seconds)).await?;
            v["refused"] = sweep::refused(&v);
            emit("ingest_overload", v);
            Ok(())
        }
        Command::Fill { records: r } => {
            let kafka: KafkaConfig = config::from_env()?;
            let records = messages::generate(r.messages, r.seed, &r.schema_dir)?;
            let topic = kafka.events_topic.clone();
            let (inflight_bytes, inflight) = (r.max_inflight_bytes, r.max_inflight);
            let p = tokio::task::spawn_blocking(move || {
                produce::run(&kafka, &topic, &records, inflight_bytes, inflight)
            })
            .await??;
            anyhow::ensure!(p.failed == 0, "{} records were not acknowledged", p.failed);
            emit(
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
            emit("consumer_drain", d);
            Ok(())
        }
        Command::EndToEnd(args) => {
            emit("end_to_end", end_to_end::run(args).await?);
            Ok(())
        }
        Command::CliSend {
            load,
            events,
            rounds,
            connections,
            eye,
            file,
        } => {
            let step = cli_send::Step {
                url: load.url,
                api_key: load.api_key,
                events,
                rounds,
                connections,
                batch: load.batch,
                eye,
                file,
            };
            emit("cli_send", cli_send::run(step).await?);
            Ok(())
        }
    }
}

/// The sweep's and the overload's steps differ only in their figures.
fn step(load: &Load, connections: usize, seconds: u64) -> sweep::Step {
    sweep::Step {
        url: load.url.clone(),
        api_key: load.api_key.clone(),
        connections,
        duration: Duration::from_secs(seconds),
        batch: load.batch,
        seed: load.seed,
    }
}
