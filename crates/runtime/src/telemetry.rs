//! Logs and metrics plumbing shared by every service.
//!
//! Logs: `tracing` to stderr (stdout stays free for command output), filtered by `EYE_LOG` (an env-filter directive, default `info`) and
//! formatted by `EYE_LOG_FORMAT` (`text`, the default, or `json`).
//! Metrics: one `prometheus::Registry` per service, so tests running several services in
//! one process keep their figures apart.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init_tracing(service: &str) {
    let filter = EnvFilter::try_from_env("EYE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("EYE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if result.is_ok() {
        tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "starting");
    }
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&registry.gather(), &mut buf) {
        tracing::error!(error = %e, "encoding metrics");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Registers a collector; a name clash is a programming error found by the first test run.
pub fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    if let Err(e) = registry.register(Box::new(c.clone())) {
        panic!("metric registration failed: {e}");
    }
    c
}

pub fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    match IntCounterVec::new(Opts::new(name, help), labels) {
        Ok(c) => register(registry, c),
        Err(e) => panic!("bad metric {name}: {e}"),
    }
}

pub fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    match IntCounter::new(name, help) {
        Ok(c) => register(registry, c),
        Err(e) => panic!("bad metric {name}: {e}"),
    }
}

pub fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::IntGauge {
    match prometheus::IntGauge::new(name, help) {
        Ok(g) => register(registry, g),
        Err(e) => panic!("bad metric {name}: {e}"),
    }
}

pub fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::IntGaugeVec {
    match prometheus::IntGaugeVec::new(Opts::new(name, help), labels) {
        Ok(g) => register(registry, g),
        Err(e) => panic!("bad metric {name}: {e}"),
    }
}

pub fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    match Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)) {
        Ok(h) => register(registry, h),
        Err(e) => panic!("bad metric {name}: {e}"),
    }
}

pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    match HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels) {
        Ok(h) => register(registry, h),
        Err(e) => panic!("bad metric {name}: {e}"),
    }
}

/// Buckets for latencies in seconds, 1 ms to 10 s.
pub fn latency_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

/// Buckets for counts (events per request, rows per batch), 1 to 100,000.
pub fn size_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(1.0, 4.0, 9).unwrap_or_default()
}
