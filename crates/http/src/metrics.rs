//! Request counts and latencies by route, method and status, and the routes they are
//! counted by: each declared once with [`route!`](crate::route!), its label and its filter together.

use eye_runtime::telemetry;
use prometheus::{HistogramVec, IntCounterVec, Registry};
use std::sync::Arc;

/// The warp the [`route!`](crate::route!) and [`routes!`](crate::routes!) macros build filters with.
#[doc(hidden)]
pub use warp as __warp;

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
    /// route template (`/v1/sessions/{id}/events`), keeping label cardinality bounded: a
    /// service's [`RouteLabels::of`], or [`ops_route`] alone.
    pub fn log(
        &self,
        route_of: impl Fn(&str) -> &'static str + Clone + Send + Sync + 'static,
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

/// One route of a service: its label, the template of its path (`/v1/sessions/{session_id}`),
/// and what serves it. Declared with [`route!`](crate::route!), so that the label comes from the same
/// segments as the filter.
#[derive(Debug, Clone)]
pub struct Route<F> {
    pub label: &'static str,
    pub filter: F,
}

impl<F> Route<F> {
    /// A route whose path is declared elsewhere, under `label`.
    pub fn new(label: &'static str, filter: F) -> Self {
        Self { label, filter }
    }

    /// The same route served by `f(filter)`: methods, credentials and handler added.
    pub fn map<G>(self, f: impl FnOnce(F) -> G) -> Route<G> {
        Route {
            label: self.label,
            filter: f(self.filter),
        }
    }
}

/// The labels of a service's routes ([`routes!`](crate::routes!) collects them): a request path counts
/// under the template of the route it names, one segment per segment and `{...}` standing
/// for any one; otherwise under its operational route, or `other`.
#[derive(Debug, Clone)]
pub struct RouteLabels(Arc<[&'static str]>);

impl RouteLabels {
    pub fn new(templates: impl IntoIterator<Item = &'static str>) -> Self {
        Self(templates.into_iter().collect())
    }

    pub fn of(&self, path: &str) -> &'static str {
        self.0
            .iter()
            .copied()
            .find(|template| names(template, path))
            .or_else(|| ops_route(path))
            .unwrap_or("other")
    }
}

/// Whether `path` is one of the paths `template` stands for.
fn names(template: &str, path: &str) -> bool {
    let mut want = template.trim_start_matches('/').split('/');
    let mut got = path.trim_start_matches('/').split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w == g || (w.starts_with('{') && w.ends_with('}')) => {}
            _ => return false,
        }
    }
}

/// Declares a route once: `route!("v1" / "sessions" / {session_id} / "end")` is
/// [`Route`] `{ label: "/v1/sessions/{session_id}/end", filter }`, the filter being what
/// `warp::path!("v1" / "sessions" / String / "end")` is (the id extracted as a `String`).
#[macro_export]
macro_rules! route {
    (@label $segment:literal) => {
        $segment
    };
    (@label { $name:ident }) => {
        concat!("{", stringify!($name), "}")
    };
    (@filter $segment:literal) => {
        $crate::metrics::__warp::path($segment)
    };
    (@filter { $name:ident }) => {
        $crate::metrics::__warp::path::param::<String>()
    };
    ($($segment:tt)/+) => {
        $crate::metrics::Route::new(concat!($("/", $crate::route!(@label $segment)),+), {
            use $crate::metrics::__warp::Filter as _;
            $crate::metrics::__warp::any()
                $(.and($crate::route!(@filter $segment)))+
                .and($crate::metrics::__warp::path::end())
        })
    };
}

/// A service's routes, tried in order: `(labels, filter)`, the filter being each route's
/// filter `or`ed with the next (all answer the same type), and the labels theirs.
#[macro_export]
macro_rules! routes {
    ($first:expr $(, $rest:expr)* $(,)?) => {{
        use $crate::metrics::__warp::Filter as _;
        let first = $first;
        let labels = vec![first.label];
        let filter = first.filter.boxed();
        $(
            let route = $rest;
            let mut labels = labels;
            labels.push(route.label);
            // Boxed at each step: the nested `Or` types of a few dozen routes otherwise
            // take rustc many minutes to check.
            let filter = filter.or(route.filter).unify().boxed();
        )*
        ($crate::metrics::RouteLabels::new(labels), filter)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_counts_under_the_route_it_names() {
        let labels = RouteLabels::new([
            "/v1/sessions/{session_id}/events",
            "/v1/sessions/{session_id}",
            "/v1/events",
        ]);
        let cases = [
            (
                "/v1/sessions/abc/events",
                "/v1/sessions/{session_id}/events",
            ),
            (
                "/v1/sessions/a%2Fb/events",
                "/v1/sessions/{session_id}/events",
            ),
            ("/v1/sessions/abc", "/v1/sessions/{session_id}"),
            ("/v1/events", "/v1/events"),
            ("/healthz", "/healthz"),
            ("/openapi.json", "/openapi.json"),
            ("/v1/sessions/a/b/events", "other"),
            ("/v1/events/x", "other"),
            ("/v1", "other"),
            ("/", "other"),
        ];
        for (path, want) in cases {
            assert_eq!(labels.of(path), want, "{path}");
        }
    }

    #[tokio::test]
    async fn a_route_is_labelled_by_the_segments_it_matches() {
        let end = route!("v1" / "sessions" / { session_id } / "end");
        assert_eq!(end.label, "/v1/sessions/{session_id}/end");
        let events = route!("v1" / "events");
        assert_eq!(events.label, "/v1/events");
        let (labels, filter) = routes!(
            end.map(|f| f.map(|id: String| format!("end {id}"))),
            events.map(|f| f.map(|| "events".to_owned())),
        );
        // (path, what the filter extracts, label)
        let cases = [
            (
                "/v1/sessions/s%201/end",
                Some("end s%201"),
                "/v1/sessions/{session_id}/end",
            ),
            ("/v1/events", Some("events"), "/v1/events"),
            ("/v1/events/more", None, "other"),
            ("/v1/sessions/s/end/x", None, "other"),
        ];
        for (path, want, label) in cases {
            let got = warp::test::request().path(path).filter(&filter).await.ok();
            assert_eq!(got.as_deref(), want, "{path}");
            assert_eq!(labels.of(path), label, "{path}");
        }
    }
}
