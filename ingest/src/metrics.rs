use eye_common::telemetry;
use eye_web::metrics::HttpMetrics;
use prometheus::{Histogram, IntCounterVec, Registry};

#[derive(Clone)]
pub struct IngestMetrics {
    pub http: HttpMetrics,
    /// Events by outcome: `produced`, or `failed` (the broker did not acknowledge).
    pub events: IntCounterVec,
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
                "Events of well-formed requests, by outcome (produced, failed).",
                &["outcome"],
            ),
            rejected_requests: telemetry::counter_vec(
                registry,
                "eye_ingest_rejected_requests_total",
                "Requests refused before producing, by error code.",
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
