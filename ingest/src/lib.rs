//! The ingest service: `POST /v1/events` parses and checks events, produces them to Kafka
//! keyed by `session_id`, and answers only once the broker has acknowledged every one.

mod error;
mod metrics;
mod routes;
mod sink;

pub use error::IngestError;
pub use sink::EventSink;

use eye_common::config::{self, ConfigError, IngestConfig, KafkaConfig};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Config {
    pub ingest: IngestConfig,
    pub kafka: KafkaConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            ingest: config::from_env()?,
            kafka: config::from_env()?,
        })
    }
}

/// Runs ingest on `listener` until `shutdown` resolves; then stops accepting, answers the
/// requests in flight and flushes the producer.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let metrics = metrics::IngestMetrics::new(&registry);
    let sink = Arc::new(EventSink::new(&config.kafka)?);
    let routes = routes::routes(&config, sink.clone(), metrics, registry);
    tracing::info!(addr = %listener.local_addr()?, topic = %config.kafka.events_topic, "ingest listening");
    eye_web::serve(routes, listener, shutdown).await;
    sink.flush().await;
    tracing::info!("ingest stopped");
    Ok(())
}
