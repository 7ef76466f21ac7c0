//! The consumer: reads `eye.events` as a consumer group, batches rows, inserts them into
//! ClickHouse and commits offsets only after the insert is confirmed (at-least-once).
//! Replays after a crash and clients' retries are harmless: only the first accepted copy of
//! an event is stored (`dedup`), and every read also keeps one row per event.

mod batch;
mod clients;
mod commit;
pub mod config;
mod dead_letter;
pub mod decode;
mod dedup;
mod identity;
mod metrics;
mod ops;
mod pipeline;
mod retention;
mod suppress;
mod writer;

use config::ConsumerConfig;
use eye_http::config::HttpConfig;
use eye_kafka::config::KafkaConfig;
use eye_runtime::config::{from_env, ConfigError};
use eye_store::config::ClickHouseConfig;
use eye_store::retention::RetentionConfig;
use eye_store::Store;
use std::future::Future;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Config {
    pub consumer: ConsumerConfig,
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub http: HttpConfig,
    pub retention: RetentionConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            consumer: from_env()?,
            kafka: from_env()?,
            clickhouse: from_env()?,
            http: from_env()?,
            retention: from_env()?,
        })
    }
}

/// Runs the consumer until `shutdown` resolves, then inserts and commits the batch in hand.
/// `listener` serves health and metrics.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::connect(&config.clickhouse).await?;
    if config.consumer.migrate_on_start {
        let applied = store.migrate().await?;
        tracing::info!(
            ?applied,
            database = store.database(),
            "migrations up to date"
        );
    }
    // Where the server supports it, a retried insert of the same batch is skipped by
    // ClickHouse itself; elsewhere read-time deduplication absorbs it. Unknown (ClickHouse
    // unreachable at start) counts as unsupported: correct either way, only less tidy.
    let insert_tokens = match store.enable_insert_deduplication().await {
        Ok(on) => on,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell whether ClickHouse deduplicates inserts; assuming not");
            false
        }
    };
    tracing::info!(insert_tokens, "batch-insert deduplication");
    pipeline::Pipeline::start(config, store, insert_tokens, listener, shutdown).await
}
