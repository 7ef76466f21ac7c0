//! Operational endpoints every service serves:
//! - `GET /healthz`: liveness; 200 while the process runs.
//! - `GET /readyz`: 200 when the service's dependencies answer, 503 naming the one that
//!   does not, and 503 `draining` from the moment the service is asked to stop
//!   ([`crate::drain`]).
//! - `GET /metrics`: Prometheus text format.

use crate::drain::Drain;
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
    drain: Drain,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let readyz = warp::path!("readyz").and(warp::get()).and_then(move || {
        let ready = ready.clone();
        let drain = drain.clone();
        async move {
            // Checked before the dependencies: a draining service must leave the pool even
            // when they answer, and checking them would only slow the probe.
            if drain.is_draining() {
                return Ok::<_, Rejection>(draining().into_response());
            }
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
            eye_runtime::telemetry::render(&registry),
            "content-type",
            "text/plain; version=0.0.4",
        )
        .into_response()
    });
    healthz.or(readyz).unify().or(metrics).unify()
}

fn draining() -> HttpError {
    HttpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "draining",
        "the service is shutting down; send requests elsewhere",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

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

    /// `/readyz` by state: the dependencies decide until draining begins, then nothing
    /// else matters; `/healthz` stays 200 throughout, so the process is not killed early.
    #[tokio::test]
    async fn readyz_says_draining_once_draining_begins() {
        let cases: [(bool, Result<(), &str>, u16, Option<&str>); 4] = [
            (false, Ok(()), 200, None),
            (false, Err("kafka: down"), 503, Some("not_ready")),
            (true, Ok(()), 503, Some("draining")),
            (true, Err("kafka: down"), 503, Some("draining")),
        ];
        for (draining, dependency, status, code) in cases {
            let drain = Drain::new();
            if draining {
                drain.begin();
            }
            let ready: ReadyCheck =
                Arc::new(move || async move { dependency.map_err(str::to_owned) }.boxed());
            let routes = routes(Registry::new(), ready, drain);
            let res = warp::test::request().path("/readyz").reply(&routes).await;
            let case = format!("draining={draining} dependency={dependency:?}");
            assert_eq!(res.status().as_u16(), status, "{case}");
            let body: serde_json::Value = serde_json::from_slice(res.body()).expect("JSON");
            assert_eq!(body["error"]["code"].as_str(), code, "{case}");
            let health = warp::test::request().path("/healthz").reply(&routes).await;
            assert_eq!(health.status().as_u16(), 200, "{case}");
        }
    }
}
