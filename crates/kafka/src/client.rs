//! Kafka client settings and topic administration, in one place so that ingest, the
//! consumer, eye-admin and the tests all speak to the broker the same way.

use crate::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::time::Duration;

/// The settings every client starts from: the brokers. [`finish`] adds the passed-through
/// properties (`EYE_KAFKA_PROPERTY_*`: TLS, SASL, …).
fn base(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    c
}

/// Applies the passed-through properties last: an operator's `compression.type` or
/// `linger.ms` wins over The Eye's; the properties The Eye's guarantees depend on are
/// refused when the configuration is read (`properties::OWNED`).
fn finish(mut c: ClientConfig, k: &KafkaConfig) -> ClientConfig {
    for (name, value) in k.properties().iter() {
        c.set(name, value);
    }
    c
}

/// A client configuration with nothing but the brokers and the passed-through properties:
/// for tools and tests that build their own client.
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    finish(base(k), k)
}

/// Producer settings for accepted events.
///
/// - `acks=all` + idempotence: an acknowledged event is on every in-sync replica, and a
///   retried send is never written twice.
/// - `murmur2_random`: Java clients' partitioner, so a session lands on the same
///   partition whoever produces it.
pub fn producer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = base(k);
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("compression.type", "lz4")
        .set("linger.ms", k.linger_ms.to_string())
        .set("message.timeout.ms", k.message_timeout_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            k.queue_max_messages.to_string(),
        );
    finish(c, k)
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
    if k.properties().get("queue.buffering.max.kbytes").is_none() {
        c.set("queue.buffering.max.kbytes", kbytes.to_string());
    }
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
    let mut c = base(k);
    c.set("group.id", group_id)
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
    finish(c, k)
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
    #[error("the cluster has {brokers} broker(s): replication factor {replication_factor} cannot be placed")]
    TooFewBrokers {
        brokers: usize,
        replication_factor: i32,
    },
    #[error("min.insync.replicas {min_insync_replicas} is above the replication factor {replication_factor}")]
    MinInsyncAboveReplicas {
        min_insync_replicas: i32,
        replication_factor: i32,
    },
}

/// Replication of the topics eye-admin creates: `EYE_KAFKA_REPLICATION_FACTOR` and
/// `EYE_KAFKA_MIN_INSYNC_REPLICAS`, or, unset, what the cluster allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    pub replication_factor: i32,
    pub min_insync_replicas: i32,
}

/// The production default: 3 replicas, and `acks=all` waits for 2 of them, so one broker
/// can be down (or restarted) without refusing writes or losing an acknowledged record.
pub const DEFAULT_REPLICATION_FACTOR: i32 = 3;

impl Replication {
    /// The settings for a cluster of `brokers`: each unset value takes its default, the
    /// replication factor capped at the number of brokers (1 on the local single broker),
    /// `min.insync.replicas` one less than the replication factor, at least 1.
    pub fn resolve(k: &KafkaConfig, brokers: usize) -> Result<Self, AdminError> {
        let available = i32::try_from(brokers).unwrap_or(i32::MAX).max(1);
        let replication_factor = match k.replication_factor {
            Some(rf) if rf > available => {
                return Err(AdminError::TooFewBrokers {
                    brokers,
                    replication_factor: rf,
                })
            }
            Some(rf) => rf,
            None => DEFAULT_REPLICATION_FACTOR.min(available),
        };
        let min_insync_replicas = k
            .min_insync_replicas
            .unwrap_or((replication_factor - 1).max(1));
        if min_insync_replicas > replication_factor {
            return Err(AdminError::MinInsyncAboveReplicas {
                min_insync_replicas,
                replication_factor,
            });
        }
        Ok(Self {
            replication_factor,
            min_insync_replicas,
        })
    }
}

/// What [`create_topics`] found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    pub name: String,
    /// Created now, with the requested settings; otherwise it existed and was left as is.
    pub created: bool,
    pub partitions: usize,
    /// Replicas of its first partition, as the broker reports them.
    pub replication_factor: usize,
}

/// Creates each topic that does not exist yet; existing topics are left as they are.
pub async fn ensure_topics(k: &KafkaConfig, topics: &[(&str, i32)]) -> Result<(), AdminError> {
    create_topics(k, topics).await.map(|_| ())
}

/// [`ensure_topics`], returning the replication used and each topic's state afterwards.
pub async fn create_topics(
    k: &KafkaConfig,
    topics: &[(&str, i32)],
) -> Result<(Replication, Vec<TopicState>), AdminError> {
    let admin: AdminClient<DefaultClientContext> = client_config(k).create()?;
    let timeout = Duration::from_secs(10);
    let brokers = admin.inner().fetch_metadata(None, timeout)?.brokers().len();
    let replication = Replication::resolve(k, brokers)?;
    let min_isr = replication.min_insync_replicas.to_string();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(
                name,
                *partitions,
                TopicReplication::Fixed(replication.replication_factor),
            )
            .set("min.insync.replicas", &min_isr)
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(timeout));
    let mut created = Vec::new();
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
        }
    }
    let mut states = Vec::new();
    for (name, _) in topics {
        let md = admin.inner().fetch_metadata(Some(name), timeout)?;
        let (partitions, rf) = md
            .topics()
            .first()
            .map(|t| {
                let rf = t.partitions().first().map_or(0, |p| p.replicas().len());
                (t.partitions().len(), rf)
            })
            .unwrap_or((0, 0));
        states.push(TopicState {
            name: (*name).to_owned(),
            created: created.iter().any(|c| c == name),
            partitions,
            replication_factor: rf,
        });
    }
    Ok((replication, states))
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_runtime::config::from_pairs;

    fn resolve(pairs: &[(&str, &str)], brokers: usize) -> Result<Replication, AdminError> {
        Replication::resolve(&from_pairs(pairs).expect("config"), brokers)
    }

    fn r(replication_factor: i32, min_insync_replicas: i32) -> Replication {
        Replication {
            replication_factor,
            min_insync_replicas,
        }
    }

    #[test]
    fn unset_replication_is_three_and_two_where_the_cluster_allows() {
        assert_eq!(resolve(&[], 1).unwrap(), r(1, 1));
        assert_eq!(resolve(&[], 2).unwrap(), r(2, 1));
        assert_eq!(resolve(&[], 3).unwrap(), r(3, 2));
        assert_eq!(resolve(&[], 6).unwrap(), r(3, 2));
    }

    #[test]
    fn set_replication_is_used_or_refused() {
        let five = [("EYE_KAFKA_REPLICATION_FACTOR", "5")];
        assert_eq!(resolve(&five, 6).unwrap(), r(5, 4));
        assert!(matches!(
            resolve(&five, 3),
            Err(AdminError::TooFewBrokers { brokers: 3, .. })
        ));
        let isr = [("EYE_KAFKA_MIN_INSYNC_REPLICAS", "3")];
        assert_eq!(resolve(&isr, 5).unwrap(), r(3, 3));
        assert!(matches!(
            resolve(&isr, 1),
            Err(AdminError::MinInsyncAboveReplicas { .. })
        ));
    }

    #[test]
    fn passed_through_properties_reach_every_client_last() {
        let k: KafkaConfig = from_pairs(&[
            ("EYE_KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL"),
            ("EYE_KAFKA_PROPERTY_COMPRESSION_TYPE", "zstd"),
        ])
        .expect("config");
        for c in [
            producer_config(&k),
            producer_config_bounded(&k, 1 << 20),
            consumer_config(&k, "g"),
            client_config(&k),
        ] {
            assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
            assert_eq!(c.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        }
        assert_eq!(producer_config(&k).get("compression.type"), Some("zstd"));
    }
}
