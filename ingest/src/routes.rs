//! Routes and handlers of the ingest API.

use crate::body::{self, Encoding};
use crate::budget::{Budget, Reservation};
use crate::error::IngestError;
use crate::metrics::IngestMetrics;
use crate::sink::{EventSink, Records};
use bytes::Buf;
use eye_common::auth::{Principal, Scope};
use eye_common::event::{
    parse_batch, Event, FieldError, Hints, Item, Limits, Rejected, Rules, SessionId,
};
use eye_common::schema::{SharedRegistry, UnknownTypePolicy};
use eye_common::session;
use eye_common::time::EventTime;
use eye_common::wire::{Reason, Rejection, SOURCE_INGEST};
use eye_web::auth::Guard;
use eye_web::error::{recover, ErrorDetail, HttpError};
use eye_web::ops::{self, ReadyCheck};
use eye_web::Drain;
use futures::{FutureExt, Stream};
use prometheus::Registry;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;
use warp::http::StatusCode;
use warp::{Filter, Reply};

/// Writing events and session records needs `events:write` (`admin` implies it).
const WRITE: &[Scope] = &[Scope::EventsWrite];

pub struct State {
    pub sink: EventSink,
    /// Bytes in flight (`EYE_INGEST_MAX_INFLIGHT_BYTES`).
    pub budget: Budget,
    pub schemas: SharedRegistry,
    pub limits: Limits,
    pub unknown_types: UnknownTypePolicy,
    pub max_body_bytes: u64,
    pub max_decompressed_bytes: u64,
    /// The whole body must arrive within this (`EYE_HTTP_BODY_READ_TIMEOUT_MS`), or 408.
    pub body_read_timeout: std::time::Duration,
    pub metrics: IngestMetrics,
}

#[derive(Serialize)]
struct ItemResult {
    index: usize,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

/// The answer to every request that reached per-event checks: 202 (all accepted),
/// 207 (some rejected) or 400 (all rejected; also carries `error`).
#[derive(Serialize)]
struct BatchResponse {
    accepted: usize,
    rejected: usize,
    event_ids: Vec<Uuid>,
    results: Vec<ItemResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
}

pub fn routes(
    state: Arc<State>,
    registry: Registry,
    guard: Guard,
    drain: Drain,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let ready_state = state.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let state = ready_state.clone();
        async move { state.sink.check_broker().await }.boxed()
    });
    let log = state.metrics.http.log(route_of);
    let with_state = warp::any().map(move || state.clone());
    let body = warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<String>("content-encoding"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .map(|ct, ce, length, stream| Body {
            content_type: ct,
            content_encoding: ce,
            length,
            stream,
        });

    let token = guard.token_route();
    let events_guard = guard.clone();
    let events = warp::path!("v1" / "events")
        .and(warp::post())
        .and(guard.require(WRITE))
        .and(with_state.clone())
        .and(body)
        .and_then(move |caller: Principal, state: Arc<State>, body: Body<_>| {
            let guard = events_guard.clone();
            async move {
                let result = match read_body(&state, body).await {
                    Ok((body, mut held)) => {
                        let answer = post_events(&state, &guard, &caller, &body, &mut held).await;
                        // The answer is ready and the broker has acknowledged: the bytes
                        // are no longer this request's to hold.
                        drop(held);
                        answer
                    }
                    Err(e) => Err(e),
                };
                result.map_err(|e| reject(&state, e))
            }
        });
    let session_start = warp::path!("v1" / "sessions")
        .and(warp::post())
        .and(guard.require(WRITE))
        .map(drop)
        .untuple_one()
        .and(with_state.clone())
        .and(body)
        .and_then(|state: Arc<State>, body: Body<_>| async move {
            let result = match read_body(&state, body).await {
                Ok((body, mut held)) => {
                    let answer = start_session(&state, &body, &mut held).await;
                    drop(held);
                    answer
                }
                Err(e) => Err(e),
            };
            result.map_err(|e| reject(&state, e))
        });
    let session_end = warp::path!("v1" / "sessions" / String / "end")
        .and(warp::post())
        .and(guard.require(WRITE))
        .map(|id: String, _caller: Principal| id)
        .and(with_state)
        .and(body)
        .and_then(|id: String, state: Arc<State>, body: Body<_>| async move {
            let result = match read_body(&state, body).await {
                Ok((body, mut held)) => {
                    let answer = end_session(&state, &id, &body, &mut held).await;
                    drop(held);
                    answer
                }
                Err(e) => Err(e),
            };
            result.map_err(|e| reject(&state, e))
        });
    events
        .or(session_start)
        .unify()
        .or(session_end)
        .unify()
        .or(token)
        .unify()
        .or(ops::routes(registry, ready, drain))
        .or(eye_web::openapi::route())
        .recover(recover)
        .with(log)
}

fn reject(state: &State, e: IngestError) -> warp::Rejection {
    let m = &state.metrics;
    m.rejected_requests.with_label_values(&[e.code()]).inc();
    if let Some(reason) = e.unavailable_reason() {
        m.unavailable.with_label_values(&[reason]).inc();
    }
    warp::reject::custom(HttpError::from(e))
}

/// A request body not yet read, with the headers that say how to read it.
struct Body<S> {
    content_type: Option<String>,
    content_encoding: Option<String>,
    length: Option<u64>,
    stream: S,
}

/// Reads the body within the in-flight budget: its bytes are reserved before a byte of it
/// is read, so a refused request costs nothing but its head; the reservation is returned
/// with the body and held until the answer is ready.
async fn read_body<S, B>(
    state: &State,
    body: Body<S>,
) -> Result<(Vec<u8>, Reservation), IngestError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    body::check_content_type(body.content_type.as_deref())?;
    let encoding = body::content_encoding(body.content_encoding.as_deref())?;
    let budget = &state.budget;
    let mut held = budget.reserve(budget.initial(body.length, state.max_body_bytes))?;
    let raw =
        body::read_limited(body.stream, state.max_body_bytes, state.body_read_timeout).await?;
    let body = match encoding {
        Encoding::Identity => raw,
        Encoding::Gzip => {
            // Decompression runs to its end without yielding, so at most one body per
            // runtime thread is decompressed beyond the budget before it is accounted for,
            // each within EYE_INGEST_MAX_DECOMPRESSED_BYTES.
            let body = body::gunzip_limited(&raw, state.max_decompressed_bytes)?;
            drop(raw);
            held.grow_to(body.len() as u64)?;
            body
        }
    };
    Ok((body, held))
}

/// Produces `records` within the request's reservation: the producer's queue holds a copy
/// of each until the broker acknowledges it, so they count beside the body, and a request
/// whose records do not fit is refused before any is produced.
async fn produce(
    state: &State,
    held: &mut Reservation,
    records: Records,
) -> Result<(), IngestError> {
    held.grow_to(held.bytes() + records.bytes())?;
    state.sink.send(records).await
}

async fn post_events(
    state: &State,
    guard: &Guard,
    caller: &Principal,
    body: &[u8],
    held: &mut Reservation,
) -> Result<warp::reply::Response, IngestError> {
    let received_at = EventTime::now();
    let schemas = state.schemas.current();
    let rules = Rules {
        limits: &state.limits,
        schemas: &schemas,
        unknown_types: state.unknown_types,
    };
    let client = caller.client_id.as_str();
    let items = match parse_batch(body, received_at, rules) {
        Ok(items) => items,
        Err(e) => {
            // The body could not be split into events: quarantine it whole.
            let reasons = vec![Reason {
                field: String::new(),
                code: e.code().to_owned(),
                message: e.to_string(),
            }];
            let raw = String::from_utf8_lossy(body).into_owned();
            let rejection = Rejection::new(
                SOURCE_INGEST,
                client,
                received_at,
                raw,
                reasons,
                Default::default(),
            );
            produce(state, held, state.sink.records(&[], &[rejection])).await?;
            state
                .metrics
                .events
                .with_label_values(&["quarantined"])
                .inc();
            return Err(e.into());
        }
    };

    // The event budget counts every event the client sent, accepted or not: refusing them
    // all before anything is produced keeps a throttled request free of side effects.
    guard
        .admit_events(caller, items.len())
        .map_err(IngestError::Auth)?;
    let mut events = Vec::new();
    let mut rejections = Vec::new();
    let mut results = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let item = match item {
            Item::Accepted(ev) if !caller.may_write(ev.category.as_str()) => {
                Item::Rejected(category_not_allowed(ev))
            }
            other => other,
        };
        match item {
            Item::Accepted(ev) => {
                results.push(ItemResult {
                    index,
                    status: "accepted",
                    event_id: Some(ev.event_id),
                    errors: Vec::new(),
                });
                events.push(ev);
            }
            Item::Rejected(r) => {
                let reasons = r.errors.iter().map(Reason::from).collect();
                rejections.push(Rejection::new(
                    SOURCE_INGEST,
                    client,
                    received_at,
                    r.raw,
                    reasons,
                    r.hints,
                ));
                results.push(ItemResult {
                    index,
                    status: "rejected",
                    event_id: None,
                    errors: r.errors,
                });
            }
        }
    }

    let m = &state.metrics;
    let records = state.sink.records(&events, &rejections);
    // As `produce` does, but apart from the send so that a refusal is not counted as
    // events the broker failed to take.
    held.grow_to(held.bytes() + records.bytes())?;
    let started = Instant::now();
    if let Err(e) = state.sink.send(records).await {
        m.events
            .with_label_values(&["failed"])
            .inc_by((events.len() + rejections.len()) as u64);
        tracing::warn!(error = %e, events = events.len(), rejections = rejections.len(), "produce failed");
        return Err(e);
    }
    m.produce_duration.observe(started.elapsed().as_secs_f64());
    m.events
        .with_label_values(&["produced"])
        .inc_by(events.len() as u64);
    m.events
        .with_label_values(&["quarantined"])
        .inc_by(rejections.len() as u64);
    m.request_events.observe(results.len() as f64);
    guard
        .metrics()
        .events(client, events.len(), rejections.len());

    let (accepted, rejected) = (events.len(), rejections.len());
    let (status, error) = match (accepted, rejected) {
        (_, 0) => (StatusCode::ACCEPTED, None),
        (0, n) => (
            StatusCode::BAD_REQUEST,
            Some(ErrorDetail {
                code: "invalid_events",
                message: format!("all {n} events were rejected; each result says why"),
                details: Vec::new(),
            }),
        ),
        _ => (StatusCode::MULTI_STATUS, None),
    };
    let body = BatchResponse {
        accepted,
        rejected,
        event_ids: events.iter().map(|e| e.event_id).collect(),
        results,
        error,
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
}

/// An event of a category the client may not write: rejected like any invalid event, and
/// quarantined (its raw text is the event as parsed, since the client's text is gone).
fn category_not_allowed(ev: Event) -> Rejected {
    let category = ev.category.as_str().to_owned();
    Rejected {
        raw: String::from_utf8_lossy(&eye_common::wire::encode(&ev)).into_owned(),
        errors: vec![FieldError::new(
            "/category",
            "category_not_allowed",
            format!("this client may not write events of category {category:?}"),
        )],
        hints: Hints {
            event_id: ev.event_id.to_string(),
            session_id: ev.session_id.as_str().to_owned(),
            category,
            name: ev.name.as_str().to_owned(),
        },
    }
}

async fn start_session(
    state: &State,
    body: &[u8],
    held: &mut Reservation,
) -> Result<warp::reply::Response, IngestError> {
    let update = session::parse_start(body, EventTime::now(), state.limits.time)?;
    produce(state, held, state.sink.session_records(&update)).await?;
    let body = serde_json::json!({"session_id": update.session_id});
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::ACCEPTED).into_response())
}

async fn end_session(
    state: &State,
    raw_id: &str,
    body: &[u8],
    held: &mut Reservation,
) -> Result<warp::reply::Response, IngestError> {
    let decoded = percent_encoding::percent_decode_str(raw_id)
        .decode_utf8()
        .map_err(|_| {
            IngestError::BadSessionId(FieldError::new(
                "session_id",
                "invalid_utf8",
                "session_id must be UTF-8",
            ))
        })?;
    let id = SessionId::parse(&decoded).map_err(|(code, message)| {
        IngestError::BadSessionId(FieldError::new("session_id", code, message))
    })?;
    let update = session::parse_end(&id, body, EventTime::now(), state.limits.time)?;
    produce(state, held, state.sink.session_records(&update)).await?;
    let body = serde_json::json!({"session_id": update.session_id});
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::ACCEPTED).into_response())
}

fn route_of(path: &str) -> &'static str {
    match path {
        "/v1/events" => "/v1/events",
        "/v1/sessions" => "/v1/sessions",
        "/oauth/token" => "/oauth/token",
        p if p.starts_with("/v1/sessions/") && p.ends_with("/end") => {
            "/v1/sessions/{session_id}/end"
        }
        p => eye_web::metrics::ops_route(p).unwrap_or("other"),
    }
}
