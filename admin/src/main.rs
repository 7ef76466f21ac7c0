//! `eye-admin`: one-off operations on The Eye's infrastructure. Settings come from the same
//! `EYE_*` variables as the services (docs/configuration.md).

use anyhow::Context;
use clap::{Parser, Subcommand};
use eye_common::config::{self, ClickHouseConfig, KafkaConfig};
use eye_common::store::Store;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    eye_common::telemetry::init_tracing("eye-admin");
    let cli = Cli::parse();
    match cli.command {
        Command::Topics => topics().await,
        Command::Migrate => migrate().await,
        Command::Init => {
            topics().await?;
            migrate().await
        }
    }
}

async fn topics() -> anyhow::Result<()> {
    let k: KafkaConfig = config::from_env()?;
    eye_common::kafka::ensure_topics(&k, &[(&k.events_topic, k.events_partitions)])
        .await
        .with_context(|| format!("creating topics on {}", k.brokers))?;
    println!("topic {} ready ({} partitions if created now)", k.events_topic, k.events_partitions);
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
