use eye_common::telemetry;
use eye_web::metrics::HttpMetrics;
use prometheus::{Histogram, IntCounterVec, Registry};

#[derive(Clone)]
pub struct IngestMetrics {
    pub http: HttpMetrics,
    /// Events by outcome: `produced`, `invalid`, `failed` (broker did not acknowledge).
    pub events: IntCounterVec,
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
                "Events received, by outcome (produced, invalid, failed).",
                &["outcome"],
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
