//! The raw-consume limit: a bare rdkafka consumer with the consumer's settings reading a
//! topic, decoding nothing.

use eye_kafka::config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

pub struct Consumed {
    pub messages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// The end of every partition of `topic` now: where records produced next will start.
pub fn end_offsets(k: &KafkaConfig, topic: &str) -> anyhow::Result<TopicPartitionList> {
    let consumer: BaseConsumer =
        eye_kafka::client::consumer_config(k, "eye-bench-offsets").create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut ends = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            ends.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
        }
    }
    anyhow::ensure!(ends.count() > 0, "topic {topic} has no partitions");
    Ok(ends)
}

/// Reads `topic` in a fresh group, from the beginning or from `start`, until `expect`
/// messages have arrived (or `timeout`).
pub fn run(
    k: &KafkaConfig,
    topic: &str,
    start: Option<&TopicPartitionList>,
    expect: u64,
    timeout: Duration,
) -> anyhow::Result<Consumed> {
    let group = format!("eye-bench-{}", uuid::Uuid::new_v4().simple());
    let consumer: BaseConsumer = eye_kafka::client::consumer_config(k, &group).create()?;
    match start {
        Some(offsets) => consumer.assign(offsets)?,
        None => consumer.subscribe(&[topic])?,
    }
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut started: Option<Instant> = None;
    let deadline = Instant::now() + timeout;
    while messages < expect && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                // The clock starts with the first message: group join is not consumption.
                started.get_or_insert_with(Instant::now);
                messages += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok(Consumed {
        messages,
        bytes,
        elapsed: started.map(|s| s.elapsed()).unwrap_or_default(),
    })
}
