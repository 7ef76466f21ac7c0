//! librdkafka's periodic statistics (`statistics.interval.ms`, `EYE_KAFKA_STATISTICS_INTERVAL_MS`)
//! as Prometheus gauges, and its log lines through `tracing`.
//!
//! The numbers only librdkafka knows: how much the producer holds unacknowledged and how
//! full its batches are (ingest), and how far each assigned partition's committed offset
//! trails the partition's end (the consumer's lag, i.e. messages not yet in ClickHouse,
//! since offsets are committed only after the insert).

use crate::config::KafkaConfig;
use eye_runtime::telemetry;
use prometheus::{IntGauge, IntGaugeVec, Registry};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::statistics::Statistics;
use rdkafka::ClientConfig;

/// Turns statistics on for a client whose context reads them; others would only log them.
pub fn enable(c: &mut ClientConfig, k: &KafkaConfig) {
    if k.statistics_interval_ms > 0 {
        c.set(
            "statistics.interval.ms",
            k.statistics_interval_ms.to_string(),
        );
    }
}

/// librdkafka's own log lines (group membership, broker errors), through tracing.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    use RDKafkaLogLevel as L;
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!(target: "librdkafka", fac, "{message}")
        }
        L::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        L::Notice | L::Info => tracing::info!(target: "librdkafka", fac, "{message}"),
        L::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

/// Ingest's producer: queue depth and batch fill.
#[derive(Clone)]
pub struct ProducerGauges {
    queue_messages: IntGauge,
    queue_bytes: IntGauge,
    batch_messages: IntGauge,
    batch_bytes: IntGauge,
}

impl ProducerGauges {
    pub fn new(registry: &Registry) -> Self {
        Self {
            queue_messages: telemetry::gauge(
                registry,
                "eye_ingest_producer_queue_messages",
                "Messages in the producer's queue: produced, not yet acknowledged by the broker.",
            ),
            queue_bytes: telemetry::gauge(
                registry,
                "eye_ingest_producer_queue_bytes",
                "Bytes of the messages in the producer's queue.",
            ),
            batch_messages: telemetry::gauge(
                registry,
                "eye_ingest_producer_batch_messages",
                "Messages per batch sent to the broker, averaged over the last statistics window.",
            ),
            batch_bytes: telemetry::gauge(
                registry,
                "eye_ingest_producer_batch_bytes",
                "Bytes per batch sent to the broker, averaged over the last statistics window.",
            ),
        }
    }

    pub fn observe(&self, s: &Statistics) {
        self.queue_messages.set(clamp(s.msg_cnt));
        self.queue_bytes.set(clamp(s.msg_size));
        // Averages per topic, weighted by how many batches each sent in the window; a
        // window without batches leaves the last figure standing.
        let (mut batches, mut messages, mut bytes) = (0i64, 0i64, 0i64);
        for t in s.topics.values() {
            batches += t.batchcnt.cnt;
            messages += t.batchcnt.avg.saturating_mul(t.batchcnt.cnt);
            bytes += t.batchsize.avg.saturating_mul(t.batchsize.cnt);
        }
        if batches > 0 {
            self.batch_messages.set(messages / batches);
            self.batch_bytes.set(bytes / batches);
        }
    }
}

/// The consumer's lag per assigned partition.
#[derive(Clone)]
pub struct ConsumerGauges {
    lag: IntGaugeVec,
}

impl ConsumerGauges {
    pub fn new(registry: &Registry) -> Self {
        Self {
            lag: telemetry::gauge_vec(
                registry,
                "eye_consumer_lag_messages",
                "Messages between the partition's end and this consumer's committed offset: read or not, not yet stored in ClickHouse.",
                &["topic", "partition"],
            ),
        }
    }

    pub fn observe(&self, s: &Statistics) {
        // Partitions come and go with rebalances: only those reported now are shown.
        self.lag.reset();
        for (topic, t) in &s.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a lag of -1 is unknown.
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                self.lag
                    .with_label_values(&[topic.as_str(), &partition.to_string()])
                    .set(p.consumer_lag);
            }
        }
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::statistics::{Partition, Topic, Window};

    fn window(cnt: i64, avg: i64) -> Window {
        Window {
            cnt,
            avg,
            ..Window::default()
        }
    }

    fn topic(partitions: &[(i32, i64)], batches: i64, msgs: i64, bytes: i64) -> Topic {
        Topic {
            batchcnt: window(batches, msgs),
            batchsize: window(batches, bytes),
            partitions: partitions
                .iter()
                .map(|(id, lag)| {
                    let p = Partition {
                        partition: *id,
                        consumer_lag: *lag,
                        ..Partition::default()
                    };
                    (*id, p)
                })
                .collect(),
            ..Topic::default()
        }
    }

    #[test]
    fn consumer_lag_per_partition_skips_unknown_and_internal() {
        let registry = Registry::new();
        let g = ConsumerGauges::new(&registry);
        let mut s = Statistics::default();
        s.topics.insert(
            "eye.events".into(),
            topic(&[(0, 120), (1, 0), (2, -1), (-1, 99)], 0, 0, 0),
        );
        g.observe(&s);
        let text = telemetry::render(&registry);
        // (partition label, expected sample or None when it must be absent)
        let cases = [("0", Some(120)), ("1", Some(0)), ("2", None), ("-1", None)];
        for (p, want) in cases {
            let line =
                format!(r#"eye_consumer_lag_messages{{partition="{p}",topic="eye.events"}}"#);
            match want {
                Some(v) => assert!(text.contains(&format!("{line} {v}")), "{line} in {text}"),
                None => assert!(!text.contains(&line), "{line} in {text}"),
            }
        }
        // A rebalance took partition 0 away: its gauge goes with it.
        let mut s = Statistics::default();
        s.topics
            .insert("eye.events".into(), topic(&[(1, 5)], 0, 0, 0));
        g.observe(&s);
        let text = telemetry::render(&registry);
        assert!(!text.contains(r#"partition="0""#), "{text}");
    }

    #[test]
    fn producer_batch_fill_is_weighted_by_batches() {
        let registry = Registry::new();
        let g = ProducerGauges::new(&registry);
        let mut s = Statistics {
            msg_cnt: 7,
            msg_size: 2_800,
            ..Statistics::default()
        };
        // 3 batches of 100 messages / 40 kB and 1 of 20 / 8 kB: (300 + 20) / 4, (120k + 8k) / 4.
        s.topics.insert("a".into(), topic(&[], 3, 100, 40_000));
        s.topics.insert("b".into(), topic(&[], 1, 20, 8_000));
        g.observe(&s);
        // A window without batches keeps the last figures.
        let mut idle = Statistics::default();
        idle.topics.insert("a".into(), topic(&[], 0, 0, 0));
        idle.msg_cnt = 7;
        idle.msg_size = 2_800;
        g.observe(&idle);
        let text = telemetry::render(&registry);
        for line in [
            "eye_ingest_producer_batch_messages 80",
            "eye_ingest_producer_batch_bytes 32000",
            "eye_ingest_producer_queue_messages 7",
            "eye_ingest_producer_queue_bytes 2800",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
