//! Request counts and latencies by route, method and status.

use eye_runtime::telemetry;
use prometheus::{HistogramVec, IntCounterVec, Registry};

#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    pub fn new(registry: &Registry) -> Self {
        Self {
            requests: telemetry::counter_vec(
                registry,
                "eye_http_requests_total",
                "HTTP requests answered, by route, method and status.",
                &["route", "method", "status"],
            ),
            duration: telemetry::histogram_vec(
                registry,
                "eye_http_request_duration_seconds",
                "Time from request to response, by route and method.",
                &["route", "method"],
                telemetry::latency_buckets(),
            ),
        }
    }

    /// A warp log filter that records every response. `route_of` maps a request path to a
    /// route template (`/v1/sessions/{id}/events`), keeping label cardinality bounded.
    pub fn log(
        &self,
        route_of: fn(&str) -> &'static str,
    ) -> warp::log::Log<impl Fn(warp::log::Info<'_>) + Clone> {
        let m = self.clone();
        warp::log::custom(move |info| {
            let route = route_of(info.path());
            let method = info.method().as_str();
            m.requests
                .with_label_values(&[route, method, info.status().as_str()])
                .inc();
            m.duration
                .with_label_values(&[route, method])
                .observe(info.elapsed().as_secs_f64());
        })
    }
}

/// Route labels for the operational endpoints every service has, and the API description
/// the HTTP APIs serve; `None` for others.
pub fn ops_route(path: &str) -> Option<&'static str> {
    match path {
        "/healthz" => Some("/healthz"),
        "/readyz" => Some("/readyz"),
        "/metrics" => Some("/metrics"),
        "/openapi.json" => Some("/openapi.json"),
        _ => None,
    }
}
