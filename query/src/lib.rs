//! The query service: answers questions about stored events from ClickHouse.

mod error;
mod params;
mod routes;
mod view;

pub use error::QueryError;

use eye_common::config::{self, ClickHouseConfig, ConfigError, QueryConfig};
use eye_common::store::Store;
use std::future::Future;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Config {
    pub query: QueryConfig,
    pub clickhouse: ClickHouseConfig,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            query: config::from_env()?,
            clickhouse: config::from_env()?,
        })
    }
}

pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::new(&config.clickhouse)?;
    let registry = prometheus::Registry::new();
    let routes = routes::routes(&config, store, registry);
    tracing::info!(addr = %listener.local_addr()?, "query listening");
    eye_web::serve(routes, listener, shutdown).await;
    tracing::info!("query stopped");
    Ok(())
}
