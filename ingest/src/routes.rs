//! Routes and handlers of the ingest API.

use crate::body;
use crate::budget::{Budget, Reservation};
use crate::error::IngestError;
use crate::metrics::IngestMetrics;
use crate::sink::{EventSink, Records};
use bytes::Buf;
use eye_auth::{Principal, Scope};
use eye_http::auth::Guard;
use eye_http::error::{recover, ErrorDetail, HttpError};
use eye_http::ops::{self, ReadyCheck};
use eye_http::Drain;
use eye_kafka::wire::{Reason, Rejection, SOURCE_INGEST};
use eye_model::event::{
    parse_batch, Event, FieldError, Hints, Item, Limits, Rejected, Rules, SessionId,
};
use eye_model::schema::{SharedRegistry, UnknownTypePolicy};
use eye_model::session;
use eye_model::time::EventTime;
use futures::{FutureExt, Stream};
use prometheus::Registry;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;
use warp::http::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
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

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The answer to every request that reached per-event checks: 202 (all accepted),
/// 207 (some rejected) or 400 (all rejected; also carries `error`).
#[derive(Serialize)]
struct BatchResponse {
    accepted: usize,
    rejected: usize,
    /// Items the broker did not take although others of the request were stored.
    #[serde(skip_serializing_if = "is_zero")]
    failed: usize,
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
    // The whole header map, since `Content-Encoding` may come on several lines (warp's
    // header filters read only the first).
    let body = warp::header::headers_cloned()
        .and(warp::body::stream())
        .map(|headers: HeaderMap, stream| Body::new(&headers, stream));

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
                let result = match read_body(&state, &caller.client_id, body).await {
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
        .and(with_state.clone())
        .and(body)
        .and_then(
            |caller: Principal, state: Arc<State>, body: Body<_>| async move {
                let result = match read_body(&state, &caller.client_id, body).await {
                    Ok((body, mut held)) => {
                        let answer = start_session(&state, &body, &mut held).await;
                        drop(held);
                        answer
                    }
                    Err(e) => Err(e),
                };
                result.map_err(|e| reject(&state, e))
            },
        );
    let session_end = warp::path!("v1" / "sessions" / String / "end")
        .and(warp::post())
        .and(guard.require(WRITE))
        .and(with_state)
        .and(body)
        .and_then(
            |id: String, caller: Principal, state: Arc<State>, body: Body<_>| async move {
                let result = match read_body(&state, &caller.client_id, body).await {
                    Ok((body, mut held)) => {
                        let answer = end_session(&state, &id, &body, &mut held).await;
                        drop(held);
                        answer
                    }
                    Err(e) => Err(e),
                };
                result.map_err(|e| reject(&state, e))
            },
        );
    events
        .or(session_start)
        .unify()
        .or(session_end)
        .unify()
        .or(token)
        .unify()
        .or(ops::routes(registry, ready, drain))
        .or(eye_http::openapi::route())
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
    /// Every `Content-Encoding` line, in order: together they are one list.
    content_encoding: Vec<String>,
    stream: S,
}

impl<S> Body<S> {
    fn new(headers: &HeaderMap, stream: S) -> Self {
        // Bytes that are not text cannot name a known media type or coding; kept (lossily)
        // for the 415 that names them.
        let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        Self {
            content_type: headers.get(CONTENT_TYPE).map(text),
            content_encoding: headers.get_all(CONTENT_ENCODING).iter().map(text).collect(),
            stream,
        }
    }
}

/// Reads the body of a request of `client` within the in-flight budget and the client's
/// share of it: bytes are reserved as they arrive, never from what the request declared,
/// so a head announcing a large body that never comes holds nothing. A chunk that does not
/// fit ends the request with 503; the reservation is returned with the body and held until
/// the answer is ready.
async fn read_body<S, B>(
    state: &State,
    client: &str,
    body: Body<S>,
) -> Result<(Vec<u8>, Reservation), IngestError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    body::check_content_type(body.content_type.as_deref())?;
    let encoding = body::content_encoding(&body.content_encoding)?;
    let mut held = state.budget.open(client);
    let mut body = body::read_limited(
        body.stream,
        state.max_body_bytes,
        state.body_read_timeout,
        |received| held.grow_to(received),
    )
    .await?;
    // Codings are listed in the order they were applied; all are gzip, so the order of
    // undoing them needs no care. Decompression runs to its end without yielding, so at
    // most one body per runtime thread is decompressed beyond the budget before it is
    // accounted for, each within EYE_INGEST_MAX_DECOMPRESSED_BYTES.
    for _ in 0..encoding.gzip_layers {
        body = body::gunzip_limited(&body, state.max_decompressed_bytes)?;
        held.grow_to(body.len() as u64)?;
    }
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
    let delivery = state.sink.send(records).await?;
    // One record each time (a session update, or a body quarantined whole): not taken means
    // nothing was stored.
    match delivery.failed.into_iter().next() {
        Some(f) => Err(IngestError::Produce(f.error)),
        None => Ok(()),
    }
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
            let rejection = Rejection::new(
                SOURCE_INGEST,
                client,
                received_at,
                body,
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
                    r.raw.as_bytes(),
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
    let delivery = match state.sink.send(records).await {
        // Refused whole only with a reason: a request of no records has none.
        Ok(d) if !d.none_stored() || d.failed.is_empty() => d,
        outcome => {
            m.events
                .with_label_values(&["failed"])
                .inc_by((events.len() + rejections.len()) as u64);
            let e = match outcome {
                Ok(mut d) => IngestError::Produce(d.failed.swap_remove(0).error),
                Err(e) => e,
            };
            tracing::warn!(error = %e, events = events.len(), rejections = rejections.len(), "produce failed");
            return Err(e);
        }
    };
    m.produce_duration.observe(started.elapsed().as_secs_f64());
    // Part of the request was stored: a 503 would tell the client that nothing was, so the
    // records the broker did not take are answered item by item, to be sent again.
    let not_taken = |id: Uuid| !delivery.failed.is_empty() && delivery.failed(id);
    let failed_events: Vec<Uuid> = events
        .iter()
        .map(|e| e.event_id)
        .filter(|id| not_taken(*id))
        .collect();
    // In the order of the rejected items.
    let rejection_failed: Vec<bool> = rejections
        .iter()
        .map(|r| not_taken(r.rejection_id))
        .collect();
    let failed_rejections = rejection_failed.iter().filter(|f| **f).count();
    if !delivery.failed.is_empty() {
        let broker_error = &delivery.failed[0].error;
        tracing::warn!(error = %broker_error, failed = delivery.failed.len(), of = delivery.records, "the broker took part of a request");
        mark_failed(
            &mut results,
            &failed_events,
            &rejection_failed,
            broker_error,
        );
        m.events
            .with_label_values(&["failed"])
            .inc_by(delivery.failed.len() as u64);
    }
    let stored_events = events.len() - failed_events.len();
    let stored_rejections = rejections.len() - failed_rejections;
    m.events
        .with_label_values(&["produced"])
        .inc_by(stored_events as u64);
    m.events
        .with_label_values(&["quarantined"])
        .inc_by(stored_rejections as u64);
    m.request_events.observe(results.len() as f64);
    guard
        .metrics()
        .events(client, stored_events, stored_rejections);

    let failed = failed_events.len() + failed_rejections;
    let (accepted, rejected) = (stored_events, rejections.len() - failed_rejections);
    let (status, error) = match (accepted, rejected, failed) {
        (_, 0, 0) => (StatusCode::ACCEPTED, None),
        (0, n, 0) => (
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
        failed,
        event_ids: events
            .iter()
            .map(|e| e.event_id)
            .filter(|id| !failed_events.contains(id))
            .collect(),
        results,
        error,
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
}

/// Turns the results of records the broker did not take into `failed` items: the event's
/// id (to send again as it is), or, for a rejected item whose quarantine record was not
/// taken, its reasons; each with `broker_unavailable`.
fn mark_failed(
    results: &mut [ItemResult],
    events: &[Uuid],
    rejection_failed: &[bool],
    broker_error: &rdkafka::error::KafkaError,
) {
    let unavailable = FieldError::new(
        "",
        "broker_unavailable",
        format!("not stored ({broker_error}); send this item again, with the same event_id"),
    );
    let mut rejected = rejection_failed.iter();
    for r in results.iter_mut() {
        let hit = match (r.status, r.event_id) {
            ("accepted", Some(id)) => events.contains(&id),
            ("rejected", _) => rejected.next().copied().unwrap_or(false),
            _ => false,
        };
        if hit {
            r.status = "failed";
            r.errors.push(unavailable.clone());
        }
    }
}

/// An event of a category the client may not write: rejected like any invalid event, and
/// quarantined (its raw text is the event as parsed, since the client's text is gone).
fn category_not_allowed(ev: Event) -> Rejected {
    let category = ev.category.as_str().to_owned();
    Rejected {
        raw: String::from_utf8_lossy(&eye_kafka::wire::encode(&ev)).into_owned(),
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
        p => eye_http::metrics::ops_route(p).unwrap_or("other"),
    }
}
