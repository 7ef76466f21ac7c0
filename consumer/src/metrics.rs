use eye_runtime::telemetry;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

#[derive(Clone)]
pub struct ConsumerMetrics {
    /// Messages read, by outcome: `decoded` or `undecodable`.
    pub messages: IntCounterVec,
    pub rows_inserted: IntCounter,
    pub quarantined: IntCounter,
    pub insert_failures: IntCounter,
    /// Later copies of events already stored (or earlier in the batch), not inserted.
    pub duplicates: IntCounter,
    /// Time to look a batch's events up in `event_keys`.
    pub lookup_duration: Histogram,
    pub commits: IntCounterVec,
    pub batch_rows: Histogram,
    pub batch_bytes: Histogram,
    pub insert_duration: Histogram,
    /// Stored time minus ingest's receipt time, per event.
    pub freshness: Histogram,
    /// Rows not stored because their subject's data was deleted, by table.
    pub suppressed: IntCounterVec,
    /// Subjects on the suppression list.
    pub suppressions: IntGauge,
}

impl ConsumerMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            messages: telemetry::counter_vec(
                registry,
                "eye_consumer_messages_total",
                "Messages consumed, by outcome (decoded, undecodable).",
                &["outcome"],
            ),
            rows_inserted: telemetry::counter(
                registry,
                "eye_consumer_rows_inserted_total",
                "Event rows ClickHouse confirmed inserting.",
            ),
            quarantined: telemetry::counter(
                registry,
                "eye_consumer_quarantined_total",
                "Rejected-event rows ClickHouse confirmed inserting.",
            ),
            insert_failures: telemetry::counter(
                registry,
                "eye_consumer_insert_failures_total",
                "Failed insert attempts (each is retried).",
            ),
            duplicates: telemetry::counter(
                registry,
                "eye_consumer_duplicates_dropped_total",
                "Copies of events not inserted because another copy of the same (session_id, event_id) was accepted first.",
            ),
            lookup_duration: telemetry::histogram(
                registry,
                "eye_consumer_lookup_duration_seconds",
                "Time to look one batch's events up among the stored copies, before its insert.",
                telemetry::latency_buckets(),
            ),
            commits: telemetry::counter_vec(
                registry,
                "eye_consumer_commits_total",
                "Offset commits, by result (ok, error).",
                &["result"],
            ),
            batch_rows: telemetry::histogram(
                registry,
                "eye_consumer_batch_rows",
                "Rows per inserted batch.",
                telemetry::size_buckets(),
            ),
            batch_bytes: telemetry::histogram(
                registry,
                "eye_consumer_batch_bytes",
                "Approximate bytes per inserted batch.",
                prometheus::exponential_buckets(1024.0, 4.0, 10).unwrap_or_default(),
            ),
            insert_duration: telemetry::histogram(
                registry,
                "eye_consumer_insert_duration_seconds",
                "Time for ClickHouse to confirm one batch insert.",
                telemetry::latency_buckets(),
            ),
            freshness: telemetry::histogram(
                registry,
                "eye_consumer_freshness_seconds",
                "Per event, from ingest's receipt to ClickHouse confirming its insert: how stale the queryable data is.",
                prometheus::exponential_buckets(0.01, 2.0, 16).unwrap_or_default(),
            ),
            suppressed: telemetry::counter_vec(
                registry,
                "eye_consumer_rows_suppressed_total",
                "Rows not stored because their session, user or machine was deleted (the suppression list), by table (events, sessions, rejected_events, identities).",
                &["table"],
            ),
            suppressions: telemetry::gauge(
                registry,
                "eye_consumer_suppressions",
                "Subjects (sessions, users, machines) on the suppression list the consumer honours.",
            ),
        }
    }
}
