//! `EYE_KAFKA_*`: where the broker is, what the topics are called, how they are replicated,
//! and any librdkafka property passed through (`EYE_KAFKA_PROPERTY_*`: TLS, SASL, …).

use crate::properties::Properties;
use eye_runtime::config::Group;
use serde::Deserialize;

/// The family of variables passed to librdkafka as they are, one property per variable
/// (`EYE_KAFKA_PROPERTY_SASL_PASSWORD` is `sasl.password`; see [`Properties`]).
pub const PROPERTY_FAMILY: &str = "EYE_KAFKA_PROPERTY_";

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
    /// Replicas of each partition when eye-admin creates a topic. Unset: as many as the
    /// cluster has brokers, up to 3 (so 3 in production, 1 on the local single broker).
    #[serde(default)]
    pub replication_factor: Option<i32>,
    /// Topic setting `min.insync.replicas` when eye-admin creates a topic: how many
    /// replicas must have a record before `acks=all` acknowledges it. Unset: one less than
    /// the replication factor, at least 1 (2 with 3 replicas).
    #[serde(default)]
    pub min_insync_replicas: Option<i32>,
    /// `EYE_KAFKA_PROPERTY_*`, applied last to the producer, consumer and admin clients.
    /// `Debug` prints secrets redacted.
    #[serde(skip)]
    pub(crate) properties: Properties,
}

impl KafkaConfig {
    /// The librdkafka properties passed through (`EYE_KAFKA_PROPERTY_*`).
    pub fn properties(&self) -> &Properties {
        &self.properties
    }
}

impl Group for KafkaConfig {
    const PREFIX: &'static str = "EYE_KAFKA_";

    fn read_families(&mut self, vars: &[(String, String)]) -> Result<(), String> {
        let family = &PROPERTY_FAMILY[Self::PREFIX.len()..];
        self.properties = Properties::from_vars(
            vars.iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(family)?, v.as_str()))),
        )?;
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        if let Some(rf) = self.replication_factor {
            if rf < 1 {
                return Err(format!(
                    "EYE_KAFKA_REPLICATION_FACTOR must be at least 1, not {rf}"
                ));
            }
        }
        if let Some(isr) = self.min_insync_replicas {
            if isr < 1 || self.replication_factor.is_some_and(|rf| isr > rf) {
                return Err(format!(
                    "EYE_KAFKA_MIN_INSYNC_REPLICAS must be between 1 and the replication factor, not {isr}"
                ));
            }
        }
        Ok(())
    }
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
        assert!(k.properties().is_empty());
        assert_eq!(k.replication_factor, None);
    }

    #[test]
    fn properties_are_read_from_their_family_and_never_shown() {
        let secret = "a-password-nobody-may-read-in-a-log";
        let k: KafkaConfig = from_pairs(&[
            ("EYE_KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL"),
            ("EYE_KAFKA_PROPERTY_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("EYE_KAFKA_PROPERTY_SASL_USERNAME", "eye"),
            ("EYE_KAFKA_PROPERTY_SASL_PASSWORD", secret),
            ("EYE_KAFKA_PROPERTY_SSL_KEY_PASSWORD", secret),
            ("EYE_KAFKA_BROKERS", "kafka-1:9093"),
        ])
        .expect("config");
        assert_eq!(k.brokers, "kafka-1:9093");
        let names: Vec<&str> = k.properties().iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "sasl.mechanism",
                "sasl.password",
                "sasl.username",
                "security.protocol",
                "ssl.key.password"
            ]
        );
        let shown = format!("{k:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("sasl.password"), "{shown}");
        assert!(shown.contains("SCRAM-SHA-512"), "{shown}");
    }

    #[test]
    fn settings_the_eye_depends_on_are_refused() {
        let e = from_pairs::<KafkaConfig>(&[("EYE_KAFKA_PROPERTY_ENABLE_AUTO_COMMIT", "true")])
            .expect_err("refused");
        assert!(e.to_string().contains("enable.auto.commit"), "{e}");
        let e = from_pairs::<KafkaConfig>(&[
            ("EYE_KAFKA_MIN_INSYNC_REPLICAS", "3"),
            ("EYE_KAFKA_REPLICATION_FACTOR", "2"),
        ])
        .expect_err("refused");
        assert!(
            e.to_string().contains("EYE_KAFKA_MIN_INSYNC_REPLICAS"),
            "{e}"
        );
    }
}
