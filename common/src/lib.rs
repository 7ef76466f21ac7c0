//! The Eye's shared core. Everything here is independent of HTTP: the services own their
//! transports (warp) and call into this crate for the event model, parsing, configuration,
//! telemetry, Kafka settings and the ClickHouse store.

pub mod aggregate;
pub mod auth;
pub mod config;
pub mod event;
pub mod kafka;
pub mod kafka_stats;
pub mod schema;
pub mod session;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod wire;
