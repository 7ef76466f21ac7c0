//! Produces records to Kafka and waits for the broker's acknowledgements.

use crate::error::{IngestError, Overload};
use eye_common::config::KafkaConfig;
use eye_common::event::Event;
use eye_common::kafka_stats::{self, ProducerGauges};
use eye_common::wire::{self, Rejection, SessionUpdate};
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientContext;
use std::time::Duration;

/// The producer's context: its log through tracing, its statistics into the metrics
/// (queue depth, batch fill).
pub struct SinkContext {
    gauges: ProducerGauges,
}

impl ClientContext for SinkContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        kafka_stats::log(level, fac, message);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.gauges.observe(&statistics);
    }
}

#[derive(Debug, Clone, Copy)]
enum Topic {
    Events,
    Rejected,
    Sessions,
}

/// Records encoded for the broker and not yet produced: (topic, key, payload).
pub struct Records(Vec<(Topic, String, Vec<u8>)>);

impl Records {
    /// What they occupy in the producer's queue, which copies each key and payload.
    pub fn bytes(&self) -> u64 {
        self.0
            .iter()
            .map(|(_, key, payload)| (key.len() + payload.len()) as u64)
            .sum()
    }
}

pub struct EventSink {
    producer: FutureProducer<SinkContext>,
    events_topic: String,
    rejected_topic: String,
    sessions_topic: String,
    timeout: Duration,
}

impl EventSink {
    /// `max_queue_bytes` bounds librdkafka's own queue (`EYE_INGEST_MAX_INFLIGHT_BYTES`).
    pub fn new(
        k: &KafkaConfig,
        max_queue_bytes: u64,
        gauges: ProducerGauges,
    ) -> Result<Self, KafkaError> {
        let mut config = eye_common::kafka::producer_config_bounded(k, max_queue_bytes);
        kafka_stats::enable(&mut config, k);
        Ok(Self {
            producer: config.create_with_context(SinkContext { gauges })?,
            events_topic: k.events_topic.clone(),
            rejected_topic: k.rejected_topic.clone(),
            sessions_topic: k.sessions_topic.clone(),
            timeout: Duration::from_millis(k.message_timeout_ms),
        })
    }

    /// Encodes accepted events and quarantined rejections for [`Self::send`].
    pub fn records(&self, events: &[Event], rejections: &[Rejection]) -> Records {
        let mut items = Vec::with_capacity(events.len() + rejections.len());
        for ev in events {
            items.push((
                Topic::Events,
                ev.session_id.as_str().to_owned(),
                wire::encode(ev),
            ));
        }
        for r in rejections {
            items.push((Topic::Rejected, r.key(), r.encode()));
        }
        Records(items)
    }

    pub fn session_records(&self, update: &SessionUpdate) -> Records {
        Records(vec![(
            Topic::Sessions,
            update.session_id.clone(),
            update.encode(),
        )])
    }

    /// Produces `records` together and returns once all are acknowledged (`acks=all`), or
    /// with the first failure. On failure some records may still have been written; a
    /// client that retries with the same `event_id`s gets each event stored once, because
    /// storage deduplicates by `event_id`.
    pub async fn send(&self, records: Records) -> Result<(), IngestError> {
        let mut pending = Vec::with_capacity(records.0.len());
        for (topic, key, payload) in &records.0 {
            let topic = match topic {
                Topic::Events => &self.events_topic,
                Topic::Rejected => &self.rejected_topic,
                Topic::Sessions => &self.sessions_topic,
            };
            pending.push(self.enqueue(topic, key, payload)?);
        }
        // librdkafka holds its own copies now.
        drop(records);
        self.await_all(pending).await
    }

    fn enqueue(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<DeliveryFuture, IngestError> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        match self.producer.send_result(record) {
            Ok(delivery) => Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                Err(IngestError::Overloaded(Overload::ProducerQueue))
            }
            Err((e, _)) => Err(IngestError::Produce(e.to_string())),
        }
    }

    async fn await_all(&self, pending: Vec<DeliveryFuture>) -> Result<(), IngestError> {
        for result in join_all(pending).await {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(IngestError::Produce(e.to_string())),
                Err(_canceled) => return Err(IngestError::Produce("producer shut down".into())),
            }
        }
        Ok(())
    }

    /// Asks the broker whether it is reachable and the topics exist (used by `/readyz`).
    pub async fn check_broker(&self) -> Result<(), String> {
        let producer = self.producer.clone();
        let topics = [
            self.events_topic.clone(),
            self.rejected_topic.clone(),
            self.sessions_topic.clone(),
        ];
        tokio::task::spawn_blocking(move || {
            for topic in &topics {
                let md = producer
                    .client()
                    .fetch_metadata(Some(topic), Duration::from_secs(2))
                    .map_err(|e| format!("kafka: {e}"))?;
                match md.topics().first() {
                    Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
                    _ => return Err(format!("kafka: topic {topic} is missing")),
                }
            }
            Ok(())
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
