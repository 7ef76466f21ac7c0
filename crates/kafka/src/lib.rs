//! Everything The Eye says to Kafka: the message format of each topic ([`wire`]), client
//! settings and topic administration ([`client`]), the `EYE_KAFKA_*` group ([`config`]) and
//! librdkafka's statistics as metrics ([`stats`]).

pub mod client;
pub mod config;
pub mod stats;
pub mod wire;
