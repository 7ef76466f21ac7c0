//! Routes and handlers of the ingest API.

use crate::error::IngestError;
use crate::metrics::IngestMetrics;
use crate::sink::EventSink;
use crate::Config;
use bytes::Bytes;
use eye_common::event::{parse_events, ParseError};
use eye_common::time::EventTime;
use eye_web::error::{recover, HttpError};
use eye_web::ops::{self, ReadyCheck};
use futures::FutureExt;
use prometheus::Registry;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;
use warp::http::StatusCode;
use warp::{Filter, Reply};

#[derive(Serialize)]
struct Accepted {
    accepted: usize,
    event_ids: Vec<Uuid>,
}

pub fn routes(
    config: &Config,
    sink: Arc<EventSink>,
    metrics: IngestMetrics,
    registry: Registry,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let ready_sink = sink.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let sink = ready_sink.clone();
        async move { sink.check_broker().await }.boxed()
    });
    let log = metrics.http.log(route_of);
    let m = metrics.clone();
    let events = warp::path!("v1" / "events")
        .and(warp::post())
        .and(warp::body::content_length_limit(
            config.ingest.max_body_bytes,
        ))
        .and(warp::body::bytes())
        .and_then(move |body: Bytes| {
            let sink = sink.clone();
            let m = m.clone();
            async move {
                post_events(&sink, &m, &body)
                    .await
                    .map_err(|e| warp::reject::custom(HttpError::from(e)))
            }
        });
    events
        .or(ops::routes(registry, ready))
        .recover(recover)
        .with(log)
}

async fn post_events(
    sink: &EventSink,
    m: &IngestMetrics,
    body: &[u8],
) -> Result<warp::reply::Response, IngestError> {
    let events = match parse_events(body, EventTime::now()) {
        Ok(events) => events,
        Err(e) => {
            let code = match &e {
                ParseError::MalformedJson { .. } => "malformed_json",
                ParseError::NotEvents => "not_events",
                ParseError::Invalid(_) => "invalid_events",
            };
            m.rejected_requests.with_label_values(&[code]).inc();
            return Err(e.into());
        }
    };
    let n = events.len() as u64;
    let started = Instant::now();
    if let Err(e) = sink.send_all(&events).await {
        m.events.with_label_values(&["failed"]).inc_by(n);
        tracing::warn!(error = %e, events = n, "produce failed");
        return Err(e);
    }
    m.produce_duration.observe(started.elapsed().as_secs_f64());
    m.events.with_label_values(&["produced"]).inc_by(n);
    m.request_events.observe(n as f64);
    let body = Accepted {
        accepted: events.len(),
        event_ids: events.iter().map(|e| e.event_id).collect(),
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::ACCEPTED).into_response())
}

fn route_of(path: &str) -> &'static str {
    match path {
        "/v1/events" => "/v1/events",
        p => eye_web::metrics::ops_route(p).unwrap_or("other"),
    }
}
