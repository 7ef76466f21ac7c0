//! Kafka client settings and topic administration, in one place so that ingest, the
//! consumer, eye-admin and the tests all speak to the broker the same way.

use crate::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::time::Duration;

/// Producer settings for accepted events.
///
/// - `acks=all` + idempotence: an acknowledged event is on every in-sync replica, and a
///   retried send is never written twice.
/// - `murmur2_random`: Java clients' partitioner, so a session lands on the same
///   partition whoever produces it.
pub fn producer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("compression.type", "lz4")
        .set("linger.ms", k.linger_ms.to_string())
        .set("message.timeout.ms", k.message_timeout_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            k.queue_max_messages.to_string(),
        );
    c
}

/// [`producer_config`] with librdkafka's queue bounded by twice `max_bytes`, ingest's
/// in-flight budget (`EYE_INGEST_MAX_INFLIGHT_BYTES`).
///
/// Ingest counts the records of each request against that budget until they are
/// acknowledged, so the budget should be what refuses a request: it does so before anything
/// is produced, whereas a full queue refuses halfway through a request (some of its records
/// are written though it is answered 503). Twice, not once, because librdkafka frees
/// acknowledged records only after it has reported the whole batch they came in, so for a
/// moment the queue holds records ingest has already released besides those of the requests
/// now in flight, each at most the budget; at once the budget, not the queue, refused
/// flooding requests only some of the time. Left at librdkafka's default (1 GiB), records
/// that outlive their request (a client that disconnects drops its request and its
/// reservation while the records wait for their acknowledgement or timeout) could pile up
/// far past the budget; with this bound they cannot.
pub fn producer_config_bounded(k: &KafkaConfig, max_bytes: u64) -> ClientConfig {
    // librdkafka counts in KiB, from 1 to i32::MAX; rounding up keeps a tiny budget valid.
    let kbytes = max_bytes
        .saturating_mul(2)
        .div_ceil(1024)
        .clamp(1, i32::MAX as u64);
    let mut c = producer_config(k);
    c.set("queue.buffering.max.kbytes", kbytes.to_string());
    c
}

/// Consumer settings for a group that commits by hand, after ClickHouse confirms.
pub fn consumer_config(k: &KafkaConfig, group_id: &str) -> ClientConfig {
    consumer_config_with(k, group_id, 10_000)
}

/// As [`consumer_config`], with the group session timeout: how long the broker waits
/// for a silent member before handing its partitions to others.
pub fn consumer_config_with(
    k: &KafkaConfig,
    group_id: &str,
    session_timeout_ms: u64,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", session_timeout_ms.to_string())
        // Bounds how long one batch may take (inserts retrying while ClickHouse is down)
        // before the group moves the partitions elsewhere; a replay, never a loss.
        .set("max.poll.interval.ms", "60000");
    if !k.debug.is_empty() {
        c.set("debug", &k.debug);
    }
    c
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("creating topic {topic}: {code}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Creates each topic that does not exist yet; existing topics are left as they are.
pub async fn ensure_topics(k: &KafkaConfig, topics: &[(&str, i32)]) -> Result<(), AdminError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &k.brokers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
        }
    }
    Ok(())
}
