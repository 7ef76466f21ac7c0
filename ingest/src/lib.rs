//! The ingest service: `POST /v1/events` checks each event against the event contract
//! (common rules and its type's JSON Schema), produces accepted events to Kafka keyed by
//! `session_id`, quarantines rejected ones on the dead-letter topic, and answers only once
//! the broker has acknowledged every record. `POST /v1/sessions` and
//! `POST /v1/sessions/{id}/end` record a session's lifecycle.

pub(crate) mod adapter;
mod batch;
mod body;
mod budget;
mod collector;
pub mod config;
mod error;
mod measurements;
mod metrics;
mod replay;
mod rest_events;
mod routes;
mod segment;
mod single_event;
pub mod sink;
mod tracker;
mod translate;

pub use error::{IngestError, Overload};
pub use sink::{EventSink, KafkaSink, MemorySink};

use config::IngestConfig;
use eye_auth::config::AuthConfig;
use eye_auth::Authenticator;
use eye_http::config::HttpConfig;
use eye_http::{Drain, Listeners};
use eye_kafka::config::KafkaConfig;
use eye_model::schema::SharedRegistry;
use eye_runtime::config::{from_env, ConfigError};
use eye_store::config::ClickHouseConfig;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Config {
    pub ingest: IngestConfig,
    pub kafka: KafkaConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    /// The quarantine's store, for replays only.
    pub clickhouse: ClickHouseConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            ingest: from_env()?,
            kafka: from_env()?,
            auth: from_env()?,
            http: from_env()?,
            clickhouse: from_env()?,
        })
    }
}

/// Runs ingest on `listener` (and health and metrics on `EYE_INGEST_OPS_LISTEN_ADDR` when
/// set) until `shutdown` resolves; then `/readyz` says draining for `EYE_HTTP_DRAIN_DELAY_MS`
/// while requests are still served, and ingest stops accepting, answers the requests in
/// flight and flushes the producer.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let metrics = metrics::IngestMetrics::new(&registry);
    let auth = Authenticator::load_for(&config.auth, "ingest")?;
    let clients_reloader = auth.spawn_reloader();
    let guard = eye_http::auth::Guard::new(auth, &registry);
    let schemas = SharedRegistry::load(&config.ingest.schema_dir)?;
    tracing::info!(dir = %config.ingest.schema_dir.display(), types = ?schemas.current().types(), digest = schemas.current().digest(), "schemas loaded");
    show_schema_set(&metrics, &schemas);
    let max_inflight = config.ingest.max_inflight_bytes;
    let state = Arc::new(routes::State {
        sink: KafkaSink::new(
            &config.kafka,
            max_inflight,
            eye_kafka::stats::ProducerGauges::new(&registry),
        )?,
        budget: budget::Budget::new(
            max_inflight,
            config.ingest.inflight_bytes_per_client(),
            metrics.inflight_bytes.clone(),
        ),
        schemas,
        limits: config.ingest.limits(),
        unknown_types: config.ingest.unknown_type_policy,
        max_body_bytes: config.ingest.max_body_bytes,
        max_decompressed_bytes: config.ingest.max_decompressed_bytes,
        segment: config.ingest.segment_limits(),
        // No connection is made here: ClickHouse down leaves every other door working,
        // and a replay answers 503.
        quarantine: eye_store::Store::new(&config.clickhouse)?,
        body_read_timeout: Duration::from_millis(config.http.body_read_timeout_ms),
        metrics: metrics.clone(),
    });
    let reloader = tokio::spawn(reload_on_sighup(state.clone()));
    let drain = Drain::new();
    let routes = routes::routes(state.clone(), registry, guard, drain.clone());
    let listeners = Listeners::bind_ops(listener, config.ingest.ops_listen_addr).await?;
    let ops_addr = listeners.ops_addr()?;
    tracing::info!(addr = %listeners.main.local_addr()?, ops_addr = ?ops_addr, topic = %config.kafka.events_topic, "ingest listening");
    eye_http::serve(routes, listeners, &config.http, &drain, shutdown).await;
    reloader.abort();
    clients_reloader.abort();
    state.sink.flush().await;
    tracing::info!("ingest stopped");
    Ok(())
}

/// `eye_ingest_schema_set_info{digest}`: 1 for the set in force, and only for it.
fn show_schema_set(metrics: &metrics::IngestMetrics, schemas: &SharedRegistry) {
    metrics.schema_set.reset();
    metrics
        .schema_set
        .with_label_values(&[schemas.current().digest()])
        .set(1);
}

/// SIGHUP reloads the schema directory. Requests keep being served throughout: the new set
/// replaces the old one atomically, and only if every file in it loaded.
async fn reload_on_sighup(state: Arc<routes::State>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; schema reload disabled");
            return;
        };
        while hup.recv().await.is_some() {
            let s = state.clone();
            let result = tokio::task::spawn_blocking(move || s.schemas.reload()).await;
            match result {
                Ok(Ok(n)) => {
                    state
                        .metrics
                        .schema_reloads
                        .with_label_values(&["ok"])
                        .inc();
                    show_schema_set(&state.metrics, &state.schemas);
                    tracing::info!(
                        types = n,
                        digest = state.schemas.current().digest(),
                        "schemas reloaded"
                    );
                }
                Ok(Err(e)) => {
                    state
                        .metrics
                        .schema_reloads
                        .with_label_values(&["error"])
                        .inc();
                    tracing::error!(error = %e, "schema reload failed; keeping the previous schemas");
                }
                Err(e) => tracing::error!(error = %e, "schema reload task failed"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}
