//! `eye-admin`: one-off operations on The Eye's infrastructure and data. Settings come from the same
//! `EYE_*` variables as the services (docs/configuration.md).

mod clients;
mod deletion;
mod export;
mod progress;
mod replay;
mod retention;
mod samples;

use anyhow::Context;
use clap::{Parser, Subcommand};
use eye_kafka::config::KafkaConfig;
use eye_runtime::config;
use eye_store::config::ClickHouseConfig;
use eye_store::{migrations, sql, Store};

#[derive(Parser)]
#[command(name = "eye-admin", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the Kafka topics that do not exist yet (existing ones are left as they are).
    Topics(TopicArgs),
    /// Create the ClickHouse database and apply pending migrations.
    Migrate,
    /// Both: everything a fresh stack needs before the services start. Idempotent.
    Init(TopicArgs),
    /// Print every migration statement and every query (with sample values bound) as JSON,
    /// for checking the SQL on other ClickHouse versions (deploy/sqlcheck.py).
    Sql,
    /// Declare, list and revoke API clients (EYE_AUTH_CLIENTS_FILE).
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// Write every event matching the filters to a file (NDJSON or CSV, as GET /v1/export),
    /// with a progress bar; --resume continues a cut file.
    Export(export::ExportArgs),
    /// Retention (EYE_RETENTION_*): show what has expired, or remove it.
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// The quarantine: `rejected replay` runs quarantined records through today's rules
    /// again, on ingest (POST /v1/rejected/replay), with its progress.
    #[command(subcommand)]
    Rejected(replay::RejectedCommand),
    /// Delete a user's, session's or machine's data on the query service
    /// (DELETE /v1/users|sessions|machines/{id}) and follow it until it is done.
    Delete(deletion::DeleteArgs),
    /// Show a deletion (GET /v1/deletions/{id}): its status and the rows each table lost.
    Deletion(deletion::ShowArgs),
}

/// Topic settings; each flag overrides its `EYE_KAFKA_*` variable.
#[derive(clap::Args, Default)]
struct TopicArgs {
    /// Partitions of each topic (EYE_KAFKA_EVENTS_PARTITIONS, default 6).
    #[arg(long)]
    partitions: Option<i32>,
    /// Replicas of each partition (EYE_KAFKA_REPLICATION_FACTOR; default: as many as the
    /// cluster has brokers, up to 3).
    #[arg(long)]
    replication_factor: Option<i32>,
    /// Topic setting min.insync.replicas (EYE_KAFKA_MIN_INSYNC_REPLICAS; default: one less
    /// than the replication factor, at least 1).
    #[arg(long)]
    min_insync_replicas: Option<i32>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    eye_runtime::telemetry::init_tracing("eye-admin");
    let cli = Cli::parse();
    match cli.command {
        Command::Topics(args) => topics(args).await,
        Command::Migrate => migrate().await,
        Command::Init(args) => {
            topics(args).await?;
            migrate().await
        }
        Command::Sql => print_sql(),
        Command::Clients(cmd) => clients::run(cmd),
        Command::Export(args) => export::run(args).await,
        Command::Retention(cmd) => retention::run(cmd).await,
        Command::Rejected(cmd) => replay::run(cmd).await,
        Command::Delete(args) => deletion::delete(args).await,
        Command::Deletion(args) => deletion::show(args).await,
    }
}

async fn topics(args: TopicArgs) -> anyhow::Result<()> {
    let mut k: KafkaConfig = config::from_env()?;
    k.events_partitions = args.partitions.unwrap_or(k.events_partitions);
    k.replication_factor = args.replication_factor.or(k.replication_factor);
    k.min_insync_replicas = args.min_insync_replicas.or(k.min_insync_replicas);
    anyhow::ensure!(k.events_partitions >= 1, "--partitions must be at least 1");
    let p = k.events_partitions;
    let topics = [
        (k.events_topic.as_str(), p),
        (k.rejected_topic.as_str(), p),
        (k.sessions_topic.as_str(), p),
    ];
    let (replication, states) = eye_kafka::client::create_topics(&k, &topics)
        .await
        .with_context(|| format!("creating topics on {}", k.brokers))?;
    if replication.replication_factor < eye_kafka::client::DEFAULT_REPLICATION_FACTOR
        && states.iter().any(|t| t.created)
    {
        eprintln!(
            "note: replication factor {} (the cluster's brokers allow no more, or it was set): \
             acks=all then survives no broker loss; production wants 3 with min.insync.replicas 2",
            replication.replication_factor
        );
    }
    for t in states {
        let how = if t.created {
            format!(
                "created: {} partitions, replication factor {}, min.insync.replicas {}",
                t.partitions, t.replication_factor, replication.min_insync_replicas
            )
        } else {
            format!(
                "exists, left as it is: {} partitions, replication factor {}",
                t.partitions, t.replication_factor
            )
        };
        println!("topic {} {how}", t.name);
    }
    Ok(())
}

async fn migrate() -> anyhow::Result<()> {
    let c: ClickHouseConfig = config::from_env()?;
    let store = Store::connect(&c).await?;
    let applied = store
        .migrate()
        .await
        .with_context(|| format!("migrating {} on {}", c.database, c.url))?;
    if applied.is_empty() {
        println!("database {}: migrations up to date", c.database);
    } else {
        println!("database {}: applied migrations {applied:?}", c.database);
    }
    Ok(())
}

fn print_sql() -> anyhow::Result<()> {
    let migrations: Vec<_> = migrations::MIGRATIONS
        .iter()
        .map(|m| {
            let statements: Vec<String> = migrations::statements(m.sql)
                .iter()
                .map(|s| sql::migration(s).render())
                .collect();
            serde_json::json!({"version": m.version, "name": m.name, "statements": statements})
        })
        .collect();
    let queries: Vec<_> = samples::statements()
        .into_iter()
        .map(|(name, s)| serde_json::json!({"name": name, "sql": s.render()}))
        .collect();
    println!(
        "{}",
        serde_json::json!({"migrations": migrations, "queries": queries})
    );
    Ok(())
}
