//! eye-bench: The Eye's benchmarks, one binary for both.
//!
//! - The pipeline (`make bench`, deploy/bench.sh): `sweep`, `overload`, `limits`, `fill`,
//!   `drain` and `end-to-end` each measure one step against a running stack and print its
//!   figures as JSON lines ([`pipeline`]).
//! - The query service (`make bench-query`): `query` loads a deterministic data set and
//!   times the service against the same SQL sent straight to ClickHouse ([`query`]).
//! - `report` turns the lines of every run, the query benchmark's among them, into
//!   BENCHMARKS.md and bench.json ([`report`]).

mod pipeline;
mod query;
mod report;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "eye-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Pipeline(pipeline::Command),
    /// The query benchmark: loads a deterministic data set (10 million events by default)
    /// once, then times four questions through the query service against the same
    /// statements sent straight to ClickHouse.
    Query(query::Args),
    /// Writes BENCHMARKS.md and bench.json from the JSON lines of each run
    /// (`NAME=FILE`, e.g. `memory=target/bench/memory.jsonl`).
    Report {
        runs: Vec<String>,
        #[arg(long, default_value = "BENCHMARKS.md")]
        markdown: PathBuf,
        #[arg(long, default_value = "bench.json")]
        json: PathBuf,
        /// Changes measured before and after (`deploy/ab.sh`), one JSON line each.
        #[arg(long, default_value = "tools/bench/changes.jsonl")]
        changes: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Quiet by default: the query service's request logs would bury the figures. EYE_LOG
    // as in every service of the workspace.
    let filter = tracing_subscriber::EnvFilter::try_from_env("EYE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Pipeline(c) => runtime.block_on(pipeline::run(c)),
        Command::Query(args) => runtime.block_on(query::run(args)),
        Command::Report {
            runs,
            markdown,
            json,
            changes,
        } => report::write(&runs, &markdown, &json, &changes),
    }
}
