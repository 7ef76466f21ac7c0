//! The query service: answers questions about stored events from ClickHouse.

mod aggregate;
mod body;
mod collector;
pub mod config;
mod deletion;
mod error;
mod export;
mod identities;
mod measurements;
mod params;
mod pipeline;
mod rest_events;
mod routes;
mod time_bound;
mod tracker;
mod ui;
mod view;

use config::{DeletionConfig, QueryConfig};
use eye_auth::config::AuthConfig;
use eye_auth::Authenticator;
use eye_http::config::HttpConfig;
use eye_http::{Drain, Listeners};
use eye_runtime::config::{from_env, ConfigError};
use eye_store::config::ClickHouseConfig;
use eye_store::retention::RetentionConfig;
use eye_store::Store;
use std::future::Future;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Config {
    pub query: QueryConfig,
    pub clickhouse: ClickHouseConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub deletion: DeletionConfig,
    pub retention: RetentionConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            query: from_env()?,
            clickhouse: from_env()?,
            auth: from_env()?,
            http: from_env()?,
            deletion: from_env()?,
            retention: from_env()?,
        })
    }
}

/// Runs the query service on `listener` (and health and metrics on
/// `EYE_QUERY_OPS_LISTEN_ADDR` when set) until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::connect(&config.clickhouse)
        .await?
        .with_raw_reads(!config.query.deduplicate)
        .with_retention(config.retention.clone());
    let registry = prometheus::Registry::new();
    let auth = Authenticator::load_for(&config.auth, "query")?;
    let reloader = auth.spawn_reloader();
    let guard = eye_http::auth::Guard::new(auth, &registry);
    let deletions =
        deletion::Deletions::new(deletion_store(&config).await?, &config.deletion, &registry);
    deletions.resume();
    let drain = Drain::new();
    let routes = routes::routes(&config, store, registry, guard, drain.clone(), deletions);
    let listeners = Listeners::bind_ops(listener, config.query.ops_listen_addr).await?;
    let ops_addr = listeners.ops_addr()?;
    tracing::info!(addr = %listeners.main.local_addr()?, ops_addr = ?ops_addr, "query listening");
    eye_http::serve(routes, listeners, &config.http, &drain, shutdown).await;
    reloader.abort();
    tracing::info!("query stopped");
    Ok(())
}

/// The store deletions write with: the service's own, or as `EYE_DELETION_CLICKHOUSE_USER`
/// when the service reads as a read-only user.
async fn deletion_store(config: &Config) -> anyhow::Result<Store> {
    let mut ch = config.clickhouse.clone();
    if let Some(user) = &config.deletion.clickhouse_user {
        ch.user = user.clone();
        ch.password = config.deletion.clickhouse_password.clone();
    }
    Ok(Store::connect(&ch).await?)
}
