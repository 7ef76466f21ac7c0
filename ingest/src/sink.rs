//! Produces events to Kafka and waits for the broker's acknowledgement.

use crate::error::IngestError;
use eye_common::config::KafkaConfig;
use eye_common::event::Event;
use eye_common::wire;
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::time::Duration;

pub struct EventSink {
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl EventSink {
    pub fn new(k: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: eye_common::kafka::producer_config(k).create()?,
            topic: k.events_topic.clone(),
            timeout: Duration::from_millis(k.message_timeout_ms),
        })
    }

    /// Produces every event and returns once all are acknowledged (`acks=all`), or with the
    /// first failure. On failure some events of the batch may still have been written;
    /// a client that retries with the same `event_id`s gets each stored once, because
    /// storage deduplicates by `event_id`.
    pub async fn send_all(&self, events: &[Event]) -> Result<(), IngestError> {
        let mut pending = Vec::with_capacity(events.len());
        for ev in events {
            let payload = wire::encode(ev);
            let record = FutureRecord::to(&self.topic)
                .key(ev.session_id.as_str())
                .payload(&payload);
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Err(IngestError::Overloaded);
                }
                Err((e, _)) => return Err(IngestError::Produce(e.to_string())),
            }
        }
        for result in join_all(pending).await {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(IngestError::Produce(e.to_string())),
                Err(_canceled) => return Err(IngestError::Produce("producer shut down".into())),
            }
        }
        Ok(())
    }

    /// Asks the broker whether it is reachable (used by `/readyz`).
    pub async fn check_broker(&self) -> Result<(), String> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
                .map_err(|e| format!("kafka: {e}"))
                .and_then(|md| match md.topics().first() {
                    Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
                    _ => Err(format!("kafka: topic {topic} is missing")),
                })
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Waits for everything queued to be acknowledged, up to the message timeout.
    pub async fn flush(&self) {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        let res = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
        match res {
            Ok(Ok(())) => tracing::info!("producer flushed"),
            Ok(Err(e)) => tracing::error!(error = %e, "producer flush incomplete"),
            Err(e) => tracing::error!(error = %e, "producer flush task failed"),
        }
    }
}
