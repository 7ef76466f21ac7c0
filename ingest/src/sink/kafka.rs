//! The sink in production: records produced to Kafka, answered once the broker has
//! acknowledged each.

use super::{payload_id, Delivery, EventSink, Failed, Records, Topic};
use crate::error::{IngestError, Overload};
use eye_kafka::config::KafkaConfig;
use eye_kafka::stats::{self, ProducerGauges};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
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
        stats::log(level, fac, message);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.gauges.observe(&statistics);
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        match result {
            Ok(_) => acks.record(None),
            // Rare, so the record is identified here, from its own payload, rather than by
            // an index carried with every record.
            Err((e, m)) => acks.record(Some(Failed {
                id: record_id(m.topic(), m.payload().unwrap_or_default(), acks.topics()),
                error: e.clone().into(),
            })),
        }
    }
}

/// The event or rejection id inside a record's payload, the topic known by its name.
fn record_id(topic: &str, payload: &[u8], topics: &TopicNames) -> Option<uuid::Uuid> {
    topics.kind(topic).and_then(|t| payload_id(t, payload))
}

/// The topic names records are produced to, and the delivery callback reads ids by.
#[derive(Debug, Clone)]
struct TopicNames {
    events: String,
    rejected: String,
    sessions: String,
}

impl TopicNames {
    fn name(&self, topic: Topic) -> &str {
        match topic {
            Topic::Events => &self.events,
            Topic::Rejected => &self.rejected,
            Topic::Sessions => &self.sessions,
        }
    }

    fn kind(&self, name: &str) -> Option<Topic> {
        [Topic::Events, Topic::Rejected, Topic::Sessions]
            .into_iter()
            .find(|t| self.name(*t) == name)
    }
}

/// One request's records awaiting acknowledgement. librdkafka reports each record with an
/// `Arc` of this (no allocation per record), and the request is woken once, when the last
/// is in: a channel and a future per record, as `FutureProducer` has, were about 6% of
/// ingest's time at full load.
pub struct Acks {
    records: usize,
    remaining: AtomicUsize,
    failed: Mutex<Vec<Failed>>,
    done: Notify,
    topics: Arc<TopicNames>,
}

impl Acks {
    fn new(records: usize, topics: Arc<TopicNames>) -> Arc<Self> {
        Arc::new(Self {
            records,
            remaining: AtomicUsize::new(records),
            failed: Mutex::new(Vec::new()),
            done: Notify::new(),
            topics,
        })
    }

    fn topics(&self) -> &TopicNames {
        &self.topics
    }

    /// One record's outcome.
    fn record(&self, failure: Option<Failed>) {
        if let Some(f) = failure {
            self.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(f);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // A permit is kept if the request is not waiting yet, so no wake-up is lost.
            self.done.notify_one();
        }
    }

    /// Until every record is reported. librdkafka reports each within the message timeout,
    /// so `limit` (a little more) only guards against a producer torn down under us: then
    /// what became of the records is unknown, and the request is refused whole.
    async fn all(&self, limit: Duration) -> Result<Delivery, IngestError> {
        if self.remaining.load(Ordering::Acquire) > 0
            && tokio::time::timeout(limit, self.done.notified())
                .await
                .is_err()
        {
            return Err(IngestError::Unacknowledged {
                timeout_ms: limit.as_millis(),
            });
        }
        let failed = std::mem::take(&mut *self.failed.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Delivery {
            records: self.records,
            failed,
        })
    }
}

/// Past the message timeout, how long a request waits for reports that should have come.
const ACK_GRACE: Duration = Duration::from_secs(5);

pub struct KafkaSink {
    producer: ThreadedProducer<SinkContext>,
    topics: Arc<TopicNames>,
    timeout: Duration,
}

impl KafkaSink {
    /// `max_queue_bytes` bounds librdkafka's own queue (`EYE_INGEST_MAX_INFLIGHT_BYTES`).
    pub fn new(
        k: &KafkaConfig,
        max_queue_bytes: u64,
        gauges: ProducerGauges,
    ) -> Result<Self, KafkaError> {
        let mut config = eye_kafka::client::producer_config_bounded(k, max_queue_bytes);
        stats::enable(&mut config, k);
        Ok(Self {
            producer: config.create_with_context(SinkContext { gauges })?,
            topics: Arc::new(TopicNames {
                events: k.events_topic.clone(),
                rejected: k.rejected_topic.clone(),
                sessions: k.sessions_topic.clone(),
            }),
            timeout: Duration::from_millis(k.message_timeout_ms),
        })
    }
}

impl EventSink for KafkaSink {
    /// Produces the records together and returns once the broker has reported on each
    /// (`acks=all`). A full producer queue that refused the whole request is `overloaded`.
    async fn send(&self, records: Records) -> Result<Delivery, IngestError> {
        let acks = Acks::new(records.len(), self.topics.clone());
        let mut refused: Option<KafkaError> = None;
        for r in records.iter() {
            if let Some(e) = &refused {
                // What comes after a refused record is not queued either.
                acks.record(Some(Failed {
                    id: r.id(),
                    error: e.clone().into(),
                }));
                continue;
            }
            let record = BaseRecord::with_opaque_to(self.topics.name(r.topic), acks.clone())
                .key(&r.key)
                .payload(&r.payload);
            if let Err((e, _)) = self.producer.send(record) {
                acks.record(Some(Failed {
                    id: r.id(),
                    error: e.clone().into(),
                }));
                refused = Some(e);
            }
        }
        // librdkafka holds its own copies now.
        let queued = records.len();
        drop(records);
        let delivery = acks.all(self.timeout + ACK_GRACE).await?;
        match refused {
            // Nothing of the request was queued: refused whole, as the queue's state says.
            Some(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull))
                if delivery.failed.len() == queued =>
            {
                Err(IngestError::Overloaded(Overload::ProducerQueue))
            }
            _ => Ok(delivery),
        }
    }

    /// Asks the broker whether it is reachable and the topics exist.
    async fn check(&self) -> Result<(), String> {
        let producer = self.producer.clone();
        let topics = self.topics.clone();
        tokio::task::spawn_blocking(move || {
            for topic in [Topic::Events, Topic::Rejected, Topic::Sessions] {
                let topic = topics.name(topic);
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
    async fn flush(&self) {
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
    use eye_kafka::wire::Rejection;

    fn topics() -> Arc<TopicNames> {
        Arc::new(TopicNames {
            events: "e".into(),
            rejected: "r".into(),
            sessions: "s".into(),
        })
    }

    fn failed(n: u128) -> Failed {
        Failed {
            id: Some(uuid::Uuid::from_u128(n)),
            error: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut).into(),
        }
    }

    #[tokio::test]
    async fn reports_before_the_wait_are_not_lost() {
        let acks = Acks::new(3, topics());
        for _ in 0..3 {
            acks.record(None);
        }
        let d = acks
            .all(Duration::from_secs(1))
            .await
            .expect("all reported");
        assert!(d.failed.is_empty() && !d.none_stored());
    }

    #[tokio::test]
    async fn every_failure_is_reported_after_the_last_record() {
        let acks = Acks::new(3, topics());
        let waiter = {
            let acks = acks.clone();
            tokio::spawn(async move { acks.all(Duration::from_secs(5)).await })
        };
        acks.record(Some(failed(1)));
        acks.record(Some(failed(2)));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one record is still out");
        acks.record(None);
        let d = waiter.await.expect("joins").expect("all reported");
        assert_eq!(d.failed, vec![failed(1), failed(2)]);
        assert!(!d.none_stored(), "one of three was taken");
        assert!(d.failed(uuid::Uuid::from_u128(2)) && !d.failed(uuid::Uuid::from_u128(3)));
    }

    #[tokio::test]
    async fn a_request_all_of_whose_records_failed_stored_nothing() {
        let acks = Acks::new(2, topics());
        acks.record(Some(failed(1)));
        acks.record(Some(failed(2)));
        let d = acks
            .all(Duration::from_secs(1))
            .await
            .expect("all reported");
        assert!(d.none_stored());
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_never_reported_ends_in_an_error() {
        let acks = Acks::new(2, topics());
        acks.record(None);
        match acks.all(Duration::from_secs(30)).await {
            Err(IngestError::Unacknowledged { timeout_ms }) => assert_eq!(timeout_ms, 30_000),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_record_is_known_by_the_id_in_its_payload() {
        let id = uuid::Uuid::from_u128(7);
        let mut r = Rejection::new(
            "ingest",
            "c",
            eye_model::time::EventTime::from_micros(0),
            b"{}",
            vec![],
            Default::default(),
        );
        r.rejection_id = id;
        let names = topics();
        assert_eq!(record_id("r", &r.encode(), &names), Some(id));
        assert_eq!(record_id("e", b"not json", &names), None);
        assert_eq!(record_id("s", &r.encode(), &names), None);
        assert_eq!(record_id("elsewhere", &r.encode(), &names), None);
    }
}
