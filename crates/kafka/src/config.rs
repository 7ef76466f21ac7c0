//! `EYE_KAFKA_*`: where the broker is and what the topics are called.

use eye_runtime::config::Group;
use serde::Deserialize;

eye_runtime::defaults! {
    d_brokers: String = "127.0.0.1:9092".into();
    d_events_topic: String = "eye.events".into();
    d_rejected_topic: String = "eye.rejected".into();
    d_sessions_topic: String = "eye.sessions".into();
    d_events_partitions: i32 = 6;
    d_message_timeout_ms: u64 = 5_000;
    d_linger_ms: u64 = 5;
    d_queue_max_messages: u64 = 1_000_000;
    d_statistics_interval_ms: u64 = 5_000;
}

/// `EYE_KAFKA_*`: the broker and topics, shared by ingest, the consumer and eye-admin.
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    #[serde(default = "d_brokers")]
    pub brokers: String,
    #[serde(default = "d_events_topic")]
    pub events_topic: String,
    /// Dead-letter topic: rejected events and undecodable messages, with their reasons.
    #[serde(default = "d_rejected_topic")]
    pub rejected_topic: String,
    /// Session lifecycle records (start, end).
    #[serde(default = "d_sessions_topic")]
    pub sessions_topic: String,
    /// Partitions given to the events topic when eye-admin creates it.
    #[serde(default = "d_events_partitions")]
    pub events_partitions: i32,
    /// How long a produce may wait for the broker's acknowledgement before ingest answers 503.
    #[serde(default = "d_message_timeout_ms")]
    pub message_timeout_ms: u64,
    #[serde(default = "d_linger_ms")]
    pub linger_ms: u64,
    /// librdkafka debug contexts for the consumer (e.g. `cgrp,fetch`), logged at debug level.
    #[serde(default)]
    pub debug: String,
    /// Messages the producer may hold in flight before ingest answers 503.
    #[serde(default = "d_queue_max_messages")]
    pub queue_max_messages: u64,
    /// How often ingest's producer and the consumer report librdkafka statistics (queue
    /// depth, batch fill, consumer lag per partition) into their metrics; 0 turns them off.
    #[serde(default = "d_statistics_interval_ms")]
    pub statistics_interval_ms: u64,
}

impl Group for KafkaConfig {
    const PREFIX: &'static str = "EYE_KAFKA_";
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_runtime::config::from_pairs;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let k: KafkaConfig = from_pairs(&[]).expect("defaults");
        assert_eq!(k.brokers, "127.0.0.1:9092");
        assert_eq!(k.events_topic, "eye.events");
        assert_eq!(k.rejected_topic, "eye.rejected");
    }
}
