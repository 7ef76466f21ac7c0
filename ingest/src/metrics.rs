use eye_http::metrics::HttpMetrics;
use eye_runtime::telemetry;
use prometheus::{Histogram, IntCounterVec, IntGauge, IntGaugeVec, Registry};

#[derive(Clone)]
pub struct IngestMetrics {
    pub http: HttpMetrics,
    /// Events by adapter (the door they came in by, `crate::adapter::Adapter`) and outcome:
    /// `produced`, `quarantined` (rejected, sent to the dead-letter topic) or `failed` (the
    /// broker did not acknowledge).
    pub events: IntCounterVec,
    pub schema_reloads: IntCounterVec,
    /// 1 for the digest of the schema set in force (`SchemaRegistry::digest`); every
    /// replica of one deployment must show the same.
    pub schema_set: IntGaugeVec,
    /// Requests refused before producing, by error code (`malformed_json`, ...).
    pub rejected_requests: IntCounterVec,
    pub request_events: Histogram,
    pub produce_duration: Histogram,
    /// Bytes reserved by requests in flight (`EYE_INGEST_MAX_INFLIGHT_BYTES` is the most).
    pub inflight_bytes: IntGauge,
    /// 503 answers by reason: `inflight_bytes`, `producer_queue` (both `overloaded`) or
    /// `broker` (`broker_unavailable`).
    pub unavailable: IntCounterVec,
    /// Quarantine records a replay went through, by result: `replayed`, `rejected` (still
    /// failing), `skipped` (replayed before), `failed` (the broker did not take them).
    pub replay_records: IntCounterVec,
}

impl IngestMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            http: HttpMetrics::new(registry),
            events: telemetry::counter_vec(
                registry,
                "eye_ingest_events_total",
                "Events by adapter (v1, segment, ...) and outcome (produced, quarantined, failed).",
                &["adapter", "outcome"],
            ),
            schema_reloads: telemetry::counter_vec(
                registry,
                "eye_ingest_schema_reloads_total",
                "Schema directory reloads on SIGHUP, by result (ok, error).",
                &["result"],
            ),
            schema_set: telemetry::gauge_vec(
                registry,
                "eye_ingest_schema_set_info",
                "1 for the SHA-256 digest of the schema set events are validated against (every replica should show the same).",
                &["digest"],
            ),
            rejected_requests: telemetry::counter_vec(
                registry,
                "eye_ingest_rejected_requests_total",
                "Requests refused as a whole, by error code.",
                &["code"],
            ),
            request_events: telemetry::histogram(
                registry,
                "eye_ingest_request_events",
                "Events per accepted request.",
                telemetry::size_buckets(),
            ),
            produce_duration: telemetry::histogram(
                registry,
                "eye_ingest_produce_duration_seconds",
                "Time from produce to the broker's acknowledgement of a whole request.",
                telemetry::latency_buckets(),
            ),
            inflight_bytes: match IntGauge::new(
                "eye_ingest_inflight_bytes",
                "Bytes reserved by requests in flight, from before their body is read until the broker acknowledged them.",
            ) {
                Ok(g) => telemetry::register(registry, g),
                Err(e) => panic!("bad metric eye_ingest_inflight_bytes: {e}"),
            },
            unavailable: telemetry::counter_vec(
                registry,
                "eye_ingest_unavailable_total",
                "Requests answered 503, by reason (inflight_bytes, producer_queue, broker).",
                &["reason"],
            ),
            replay_records: telemetry::counter_vec(
                registry,
                "eye_ingest_replay_records_total",
                "Quarantine records replayed (POST /v1/rejected/replay), by result (replayed, rejected, skipped, failed); dry runs are not counted.",
                &["result"],
            ),
        }
    }
}
