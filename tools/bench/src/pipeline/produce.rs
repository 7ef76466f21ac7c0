//! The raw-produce limit: a bare rdkafka producer with exactly ingest's settings
//! (`eye_kafka::client::producer_config_bounded`), as fast as the broker acknowledges.

use super::messages::Record;
use eye_kafka::config::KafkaConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Counts {
    acked: AtomicU64,
    failed: AtomicU64,
}

struct Counting(Arc<Counts>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let c = if result.is_ok() {
            &self.0.acked
        } else {
            &self.0.failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct Produced {
    pub acked: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

/// Produces every record to `topic` (keyed as ingest keys them) and waits for every
/// acknowledgement. `max_queue_bytes` is ingest's in-flight budget, which bounds its queue;
/// `max_inflight` caps the records sent and not yet acknowledged.
pub fn run(
    k: &KafkaConfig,
    topic: &str,
    records: &[Record],
    max_queue_bytes: u64,
    max_inflight: u64,
) -> anyhow::Result<Produced> {
    let counts = Arc::new(Counts::default());
    let producer: ThreadedProducer<Counting> =
        eye_kafka::client::producer_config_bounded(k, max_queue_bytes)
            .create_with_context(Counting(counts.clone()))?;
    // The first idempotent produce waits for a producer id (~0.5 s on tansu): set-up, not
    // throughput, so one record goes first, outside the clock.
    if let Some(first) = records.first() {
        producer
            .send(
                BaseRecord::to(topic)
                    .key(&first.key)
                    .payload(&first.payload),
            )
            .map_err(|(e, _)| e)?;
        producer.flush(Duration::from_secs(30))?;
    }
    let records = records.get(1..).unwrap_or_default();
    let warmup = counts.acked.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed);
    let started = Instant::now();
    let done =
        || counts.acked.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) - warmup;
    for (sent, r) in records.iter().enumerate() {
        // Like ingest, hold a bounded amount unacknowledged: an unbounded queue would only
        // make records wait past `message.timeout.ms` and fail, not go faster.
        while sent as u64 - done() >= max_inflight {
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut record = BaseRecord::to(topic).key(&r.key).payload(&r.payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                // The queue is full: the broker is the limit; wait for acknowledgements.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(Produced {
        // The warm-up record is acknowledged (or failed) too; it is counted but not timed.
        acked: counts.acked.load(Ordering::Relaxed),
        failed: counts.failed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}
