//! Everything The Eye says to Kafka: the message format of each topic ([`wire`]), client
//! settings and topic administration ([`client`]), the `EYE_KAFKA_*` group ([`config`]), the
//! librdkafka properties passed through ([`properties`]) and
//! librdkafka's statistics as metrics ([`stats`]).

pub mod client;
pub mod config;
pub mod properties;
pub mod stats;
pub mod wire;
