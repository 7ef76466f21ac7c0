use eye_common::telemetry;
use eye_web::metrics::HttpMetrics;
use prometheus::{Histogram, IntCounterVec, Registry};

#[derive(Clone)]
pub struct IngestMetrics {
    pub http: HttpMetrics,
    /// Events by outcome: `produced`, `quarantined` (rejected, sent to the dead-letter
    /// topic) or `failed` (the broker did not acknowledge).
    pub events: IntCounterVec,
    pub schema_reloads: IntCounterVec,
    /// Requests refused before producing, by error code (`malformed_json`, ...).
    pub rejected_requests: IntCounterVec,
    pub request_events: Histogram,
    pub produce_duration: Histogram,
}

impl IngestMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            http: HttpMetrics::new(registry),
            events: telemetry::counter_vec(
                registry,
                "eye_ingest_events_total",
                "Events by outcome (produced, quarantined, failed).",
                &["outcome"],
            ),
            schema_reloads: telemetry::counter_vec(
                registry,
                "eye_ingest_schema_reloads_total",
                "Schema directory reloads on SIGHUP, by result (ok, error).",
                &["result"],
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
        }
    }
}
