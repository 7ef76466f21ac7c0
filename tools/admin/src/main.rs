//! `eye-admin`: one-off operations on The Eye's infrastructure. Settings come from the same
//! `EYE_*` variables as the services (docs/configuration.md).

mod clients;
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
    /// Create the Kafka topics that do not exist yet.
    Topics,
    /// Create the ClickHouse database and apply pending migrations.
    Migrate,
    /// Both: everything a fresh stack needs before the services start. Idempotent.
    Init,
    /// Print every migration statement and every query (with sample values bound) as JSON,
    /// for checking the SQL on other ClickHouse versions (deploy/sqlcheck.py).
    Sql,
    /// Declare, list and revoke API clients (EYE_AUTH_CLIENTS_FILE).
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    eye_runtime::telemetry::init_tracing("eye-admin");
    let cli = Cli::parse();
    match cli.command {
        Command::Topics => topics().await,
        Command::Migrate => migrate().await,
        Command::Init => {
            topics().await?;
            migrate().await
        }
        Command::Sql => print_sql(),
        Command::Clients(cmd) => clients::run(cmd),
    }
}

async fn topics() -> anyhow::Result<()> {
    let k: KafkaConfig = config::from_env()?;
    let p = k.events_partitions;
    let topics = [
        (k.events_topic.as_str(), p),
        (k.rejected_topic.as_str(), p),
        (k.sessions_topic.as_str(), p),
    ];
    eye_kafka::client::ensure_topics(&k, &topics)
        .await
        .with_context(|| format!("creating topics on {}", k.brokers))?;
    for (t, _) in topics {
        println!("topic {t} ready ({p} partitions if created now)");
    }
    Ok(())
}

async fn migrate() -> anyhow::Result<()> {
    let c: ClickHouseConfig = config::from_env()?;
    let store = Store::new(&c)?;
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
