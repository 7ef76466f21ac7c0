//! The query service: answers questions about stored events from ClickHouse.

mod error;
mod params;
mod routes;
mod view;

pub use error::QueryError;

use eye_common::auth::Authenticator;
use eye_common::config::{
    self, AuthConfig, ClickHouseConfig, ConfigError, HttpConfig, QueryConfig,
};
use eye_common::store::Store;
use eye_web::{Drain, Listeners};
use std::future::Future;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Config {
    pub query: QueryConfig,
    pub clickhouse: ClickHouseConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            query: config::from_env()?,
            clickhouse: config::from_env()?,
            auth: config::from_env()?,
            http: config::from_env()?,
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
    let store = Store::new(&config.clickhouse)?.with_raw_reads(!config.query.deduplicate);
    let registry = prometheus::Registry::new();
    let auth = Authenticator::load(&config.auth)?;
    let reloader = auth.spawn_reloader();
    let guard = eye_web::auth::Guard::new(auth, &registry);
    let drain = Drain::new();
    let routes = routes::routes(&config, store, registry, guard, drain.clone());
    let listeners = Listeners::bind_ops(listener, config.query.ops_listen_addr).await?;
    let ops_addr = listeners.ops_addr()?;
    tracing::info!(addr = %listeners.main.local_addr()?, ops_addr = ?ops_addr, "query listening");
    eye_web::serve(routes, listeners, &config.http, &drain, shutdown).await;
    reloader.abort();
    tracing::info!("query stopped");
    Ok(())
}
