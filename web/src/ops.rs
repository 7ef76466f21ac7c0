//! Operational endpoints every service serves:
//! - `GET /healthz`: liveness; 200 while the process runs.
//! - `GET /readyz`: 200 when the service's dependencies answer, 503 naming the one that
//!   does not.
//! - `GET /metrics`: Prometheus text format.

use crate::error::HttpError;
use futures::future::BoxFuture;
use prometheus::Registry;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

/// Checks a service's dependencies; `Err` says which one failed and how.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// First path segments of the operational routes.
pub const PATHS: [&str; 3] = ["healthz", "readyz", "metrics"];

/// Whether `path` belongs to the operational routes: its first segment is one of
/// [`PATHS`], whatever follows, so that no spelling of them (`/metrics/`, `//metrics`)
/// reaches them on a listener that must not serve them.
pub fn is_ops_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    PATHS.contains(&first)
}

pub fn routes(
    registry: Registry,
    ready: ReadyCheck,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let readyz = warp::path!("readyz").and(warp::get()).and_then(move || {
        let ready = ready.clone();
        async move {
            let res = match ready().await {
                Ok(()) => {
                    warp::reply::json(&serde_json::json!({"status": "ready"})).into_response()
                }
                Err(reason) => HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason)
                    .into_response(),
            };
            Ok::<_, Rejection>(res)
        }
    });
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(
            eye_common::telemetry::render(&registry),
            "content-type",
            "text/plain; version=0.0.4",
        )
        .into_response()
    });
    healthz.or(readyz).unify().or(metrics).unify()
}

#[cfg(test)]
mod tests {
    use super::is_ops_path;

    #[test]
    fn ops_paths_are_told_by_their_first_segment() {
        for p in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/metrics/",
            "//metrics",
            "/healthz/x",
        ] {
            assert!(is_ops_path(p), "{p}");
        }
        for p in [
            "/",
            "/v1/events",
            "/openapi.json",
            "/metricsx",
            "/v1/metrics",
            "/Metrics",
        ] {
            assert!(!is_ops_path(p), "{p}");
        }
    }
}
