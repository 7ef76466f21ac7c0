//! The Kafka clients the consumer runs on: the group consumer of the three topics, and the
//! producer of dead letters.

use crate::decode::TopicKind;
use eye_kafka::config::KafkaConfig;
use eye_kafka::stats::{self, ConsumerGauges};
use prometheus::Registry;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientContext;
use std::sync::Arc;

/// Turns librdkafka's statistics into the lag gauges and sends its log through tracing.
pub struct Context {
    lag: ConsumerGauges,
}

impl ClientContext for Context {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        stats::log(level, fac, log_message);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.lag.observe(&statistics);
    }
}

// Commit results are counted where the commit is made (`commit::commit`), not in
// `commit_callback`: rust-rdkafka 0.38 never delivers that callback for manual async
// commits (fede1024/rust-rdkafka#856).
impl ConsumerContext for Context {}

pub type EventConsumer = StreamConsumer<Context>;

/// The topics the consumer reads, and what each holds.
#[derive(Debug, Clone)]
pub struct Topics {
    pub events: String,
    pub rejected: String,
    pub sessions: String,
}

impl Topics {
    pub fn new(k: &KafkaConfig) -> Self {
        Self {
            events: k.events_topic.clone(),
            rejected: k.rejected_topic.clone(),
            sessions: k.sessions_topic.clone(),
        }
    }

    /// Which of its topics a message came from, by the names configured at start-up.
    pub fn kind(&self, topic: &str) -> Option<TopicKind> {
        [
            (&self.events, TopicKind::Events),
            (&self.rejected, TopicKind::Rejected),
            (&self.sessions, TopicKind::Sessions),
        ]
        .into_iter()
        .find_map(|(name, kind)| (name == topic).then_some(kind))
    }
}

pub struct Clients {
    pub consumer: Arc<EventConsumer>,
    /// Sends undecodable messages to the dead-letter topic.
    pub producer: FutureProducer,
    pub topics: Topics,
}

/// The consumer of `group_id`, subscribed to the three topics, with its lag reported to
/// `registry`; and the dead-letter producer.
pub fn build(
    k: &KafkaConfig,
    group_id: &str,
    session_timeout_ms: u64,
    registry: &Registry,
) -> Result<Clients, KafkaError> {
    let mut consumer_config =
        eye_kafka::client::consumer_config_with(k, group_id, session_timeout_ms);
    stats::enable(&mut consumer_config, k);
    let consumer: EventConsumer = consumer_config.create_with_context(Context {
        lag: ConsumerGauges::new(registry),
    })?;
    let topics = Topics::new(k);
    consumer.subscribe(&[&topics.events, &topics.rejected, &topics.sessions])?;
    let producer: FutureProducer = eye_kafka::client::producer_config(k).create()?;
    Ok(Clients {
        consumer: Arc::new(consumer),
        producer,
        topics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_known_by_its_topic_name() {
        let topics = Topics {
            events: "t.events".into(),
            rejected: "t.rejected".into(),
            sessions: "t.sessions".into(),
        };
        let cases = [
            ("t.events", Some(TopicKind::Events)),
            ("t.rejected", Some(TopicKind::Rejected)),
            ("t.sessions", Some(TopicKind::Sessions)),
            ("t.other", None),
            ("events", None),
        ];
        for (name, want) in cases {
            assert_eq!(topics.kind(name), want, "{name}");
        }
    }
}
