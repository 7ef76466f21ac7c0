//! The raw-consume limit: a bare rdkafka consumer with the consumer's settings reading a
//! topic from the beginning, decoding nothing.

use eye_common::config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};

pub struct Consumed {
    pub messages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Reads `topic` in a fresh group until `expect` messages have arrived (or `timeout`).
pub fn run(
    k: &KafkaConfig,
    topic: &str,
    expect: u64,
    timeout: Duration,
) -> anyhow::Result<Consumed> {
    let group = format!("eye-perf-{}", uuid::Uuid::new_v4().simple());
    let consumer: BaseConsumer = eye_common::kafka::consumer_config(k, &group).create()?;
    consumer.subscribe(&[topic])?;
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
