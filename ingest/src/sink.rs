//! Produces records to Kafka and waits for the broker's acknowledgements.

use crate::error::{IngestError, Overload};
use eye_common::config::KafkaConfig;
use eye_common::event::Event;
use eye_common::kafka_stats::{self, ProducerGauges};
use eye_common::wire::{self, Rejection, SessionUpdate};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The producer's context: its log through tracing, its statistics into the metrics
/// (queue depth, batch fill), and each record's acknowledgement to its request's [`Acks`].
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

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        acks.record(result.as_ref().err().map(|(e, _)| e));
    }
}

/// One request's records awaiting acknowledgement. librdkafka reports each record with an
/// `Arc` of this (no allocation per record), and the request is woken once, when the last
/// is in: a channel and a future per record, as `FutureProducer` has, were about 6% of
/// ingest's time at full load.
pub struct Acks {
    remaining: AtomicUsize,
    failure: Mutex<Option<String>>,
    done: Notify,
}

impl Acks {
    fn new(records: usize) -> Arc<Self> {
        Arc::new(Self {
            remaining: AtomicUsize::new(records),
            failure: Mutex::new(None),
            done: Notify::new(),
        })
    }

    /// One record's outcome; the first failure is the one reported.
    fn record(&self, failure: Option<&KafkaError>) {
        if let Some(e) = failure {
            let mut first = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // A permit is kept if the request is not waiting yet, so no wake-up is lost.
            self.done.notify_one();
        }
    }

    /// Until every record is reported. librdkafka reports each within the message timeout,
    /// so `limit` (a little more) only guards against a producer torn down under us.
    async fn all(&self, limit: Duration) -> Result<(), IngestError> {
        if self.remaining.load(Ordering::Acquire) > 0
            && tokio::time::timeout(limit, self.done.notified())
                .await
                .is_err()
        {
            return Err(IngestError::Produce(format!(
                "no acknowledgement within {} ms",
                limit.as_millis()
            )));
        }
        match self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(e) => Err(IngestError::Produce(e)),
            None => Ok(()),
        }
    }
}

/// Past the message timeout, how long a request waits for reports that should have come.
const ACK_GRACE: Duration = Duration::from_secs(5);

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
    producer: ThreadedProducer<SinkContext>,
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
        let acks = Acks::new(records.0.len());
        for (topic, key, payload) in &records.0 {
            let topic = match topic {
                Topic::Events => &self.events_topic,
                Topic::Rejected => &self.rejected_topic,
                Topic::Sessions => &self.sessions_topic,
            };
            let record = BaseRecord::with_opaque_to(topic, acks.clone())
                .key(key)
                .payload(payload);
            match self.producer.send(record) {
                Ok(()) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Err(IngestError::Overloaded(Overload::ProducerQueue))
                }
                Err((e, _)) => return Err(IngestError::Produce(e.to_string())),
            }
        }
        // librdkafka holds its own copies now.
        drop(records);
        acks.all(self.timeout + ACK_GRACE).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn timed_out() -> KafkaError {
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
    }

    #[tokio::test]
    async fn reports_before_the_wait_are_not_lost() {
        let acks = Acks::new(3);
        for _ in 0..3 {
            acks.record(None);
        }
        assert!(acks.all(Duration::from_secs(1)).await.is_ok());
    }

    #[tokio::test]
    async fn the_first_failure_is_reported_after_the_last_record() {
        let acks = Acks::new(3);
        let waiter = {
            let acks = acks.clone();
            tokio::spawn(async move { acks.all(Duration::from_secs(5)).await })
        };
        acks.record(Some(&timed_out()));
        acks.record(Some(&KafkaError::Canceled));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one record is still out");
        acks.record(None);
        match waiter.await.expect("joins") {
            Err(IngestError::Produce(m)) => assert!(m.contains("timed out"), "{m}"),
            other => panic!("expected the first failure, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_never_reported_ends_in_an_error() {
        let acks = Acks::new(2);
        acks.record(None);
        match acks.all(Duration::from_secs(30)).await {
            Err(IngestError::Produce(m)) => assert!(m.contains("30000 ms"), "{m}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
}
