//! What `POST /v1/events` does with a body once it is read, apart from HTTP: parse it, hold
//! each event to the client's allow-list, send the accepted events and the quarantined
//! rejections to the sink together, and say item by item what became of them.

use crate::adapter::Adapter;
use crate::budget::Reservation;
use crate::error::IngestError;
use crate::routes::State;
use crate::sink::{Delivery, EventSink, NotTaken, Records};
use eye_http::error::ErrorDetail;
use eye_kafka::wire::{Reason, Rejection};
pub use eye_model::api::{BatchResponse, ItemResult, ItemStatus};
use eye_model::event::{parse_batch, Event, FieldError, Hints, Item, Rejected, RequestError};
use eye_model::schema::UnknownTypePolicy;
use eye_model::time::EventTime;
use std::time::Instant;
use uuid::Uuid;
use warp::http::StatusCode;

/// The client a batch comes from, as far as its handling needs to know.
pub trait Caller {
    fn client_id(&self) -> &str;
    /// Whether the client may write events of `category` (its allow-list).
    fn may_write(&self, category: &str) -> bool;
    /// Takes `events` from the client's event budget, or refuses the whole request.
    /// Shared with the service's other replicas when Redis is configured (a round trip).
    async fn admit_events(&self, events: usize) -> Result<(), IngestError>;
    /// Counts what of the client's request was stored.
    fn stored(&self, events: usize, rejections: usize);
    /// The client's own policy for event types without a schema, if it has one; the
    /// service's otherwise.
    fn unknown_types(&self) -> Option<UnknownTypePolicy> {
        None
    }
}

/// A batch's answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: BatchResponse,
}

/// Handles one `POST /v1/events` body of `caller`, whose bytes `held` holds: parse →
/// allow-list → accepted and rejected → records → delivery → answer. A body that cannot be
/// split into events is quarantined whole and refused; a request nothing of which was
/// stored is refused (503), so that the client sends it all again.
pub async fn accept<S: EventSink>(
    state: &State<S>,
    caller: &impl Caller,
    body: &[u8],
    held: &mut Reservation,
) -> Result<Answer, IngestError> {
    let received_at = EventTime::now();
    // The schemas in force are read once, and let go before anything is awaited.
    let parsed = {
        let schemas = state.schemas.current();
        parse_batch(body, received_at, state.rules(&schemas, caller))
    };
    match parsed {
        Ok(items) => accept_items(state, caller, Adapter::V1, items, received_at, held).await,
        Err(e) => {
            quarantine_body(state, caller, Adapter::V1, body, &e, held).await?;
            Err(e.into())
        }
    }
}

/// The core every door shares, from items already checked (by `parse_batch`, or by an
/// adapter through `eye_model::event::parse_mapped`): allow-list → accepted and rejected →
/// records → delivery → answer, counted under `adapter`.
pub async fn accept_items<S: EventSink>(
    state: &State<S>,
    caller: &impl Caller,
    adapter: Adapter,
    items: Vec<Item>,
    received_at: EventTime,
    held: &mut Reservation,
) -> Result<Answer, IngestError> {
    // The event budget counts every event the client sent, accepted or not: refusing them
    // all before anything is produced keeps a throttled request free of side effects.
    caller.admit_events(items.len()).await?;
    let sorted = sort(items, caller, adapter, received_at);
    let delivery = deliver(state, held, adapter, &sorted).await?;
    let settled = settle(sorted, &delivery);
    let m = &state.metrics;
    let door = adapter.as_str();
    if let Some(first) = delivery.failed.first() {
        tracing::warn!(error = %first.error, failed = delivery.failed.len(), of = delivery.records, adapter = door, "the broker took part of a request");
        m.events
            .with_label_values(&[door, "failed"])
            .inc_by(delivery.failed.len() as u64);
    }
    m.events
        .with_label_values(&[door, "produced"])
        .inc_by(settled.accepted as u64);
    m.events
        .with_label_values(&[door, "quarantined"])
        .inc_by(settled.rejected as u64);
    m.request_events.observe(settled.results.len() as f64);
    caller.stored(settled.accepted, settled.rejected);
    Ok(answer(settled))
}

/// Quarantines a body that could not be split into items, whole, with the reason `e`
/// gives; the caller then refuses the request.
pub async fn quarantine_body<S: EventSink, E: WholeBodyError>(
    state: &State<S>,
    caller: &impl Caller,
    adapter: Adapter,
    body: &[u8],
    e: &E,
    held: &mut Reservation,
) -> Result<(), IngestError> {
    let whole = quarantine_whole(adapter, caller.client_id(), EventTime::now(), body, e);
    produce(state, held, Records::batch(&[], &[whole])).await?;
    state
        .metrics
        .events
        .with_label_values(&[adapter.as_str(), "quarantined"])
        .inc();
    Ok(())
}

/// Why a whole body was refused: a code and a message for its quarantine record.
pub trait WholeBodyError: std::fmt::Display {
    fn code(&self) -> &str;
}

impl WholeBodyError for RequestError {
    fn code(&self) -> &str {
        RequestError::code(self)
    }
}

/// Produces records that stand or fall together (a session update, or a body quarantined
/// whole) within the request's reservation: not taken means nothing was stored.
pub async fn produce<S: EventSink>(
    state: &State<S>,
    held: &mut Reservation,
    records: Records,
) -> Result<(), IngestError> {
    // The producer's queue holds a copy of each record until the broker acknowledges it,
    // so they count beside the body, and records that do not fit are refused unsent.
    held.grow_to(held.bytes() + records.bytes())?;
    let delivery = state.sink.send(records).await?;
    match delivery.failed.into_iter().next() {
        Some(f) => Err(IngestError::Produce(f.error)),
        None => Ok(()),
    }
}

/// The quarantine record of a body that could not be split into events.
fn quarantine_whole(
    adapter: Adapter,
    client: &str,
    received_at: EventTime,
    body: &[u8],
    e: &impl WholeBodyError,
) -> Rejection {
    let reasons = vec![Reason {
        field: String::new(),
        code: e.code().to_owned(),
        message: e.to_string(),
    }];
    Rejection::new(
        adapter.source(),
        client,
        received_at,
        body,
        reasons,
        Default::default(),
    )
}

/// A request's items split into what goes to the events topic and what to the quarantine,
/// with a result per item in request order.
#[derive(Debug)]
struct Sorted {
    events: Vec<Event>,
    rejections: Vec<Rejection>,
    results: Vec<ItemResult>,
}

fn sort(
    items: Vec<Item>,
    caller: &impl Caller,
    adapter: Adapter,
    received_at: EventTime,
) -> Sorted {
    let mut sorted = Sorted {
        events: Vec::new(),
        rejections: Vec::new(),
        results: Vec::with_capacity(items.len()),
    };
    for (index, item) in items.into_iter().enumerate() {
        let item = match item {
            Item::Accepted(ev) if !caller.may_write(ev.category.as_str()) => {
                Item::Rejected(category_not_allowed(ev))
            }
            other => other,
        };
        match item {
            Item::Accepted(ev) => {
                sorted.results.push(ItemResult {
                    index,
                    status: ItemStatus::Accepted,
                    event_id: Some(ev.event_id),
                    errors: Vec::new(),
                });
                sorted.events.push(ev);
            }
            Item::Rejected(r) => {
                let reasons = r.errors.iter().map(Reason::from).collect();
                sorted.rejections.push(Rejection::new(
                    adapter.source(),
                    caller.client_id(),
                    received_at,
                    r.raw.as_bytes(),
                    reasons,
                    r.hints,
                ));
                sorted.results.push(ItemResult {
                    index,
                    status: ItemStatus::Rejected,
                    event_id: None,
                    errors: r.errors,
                });
            }
        }
    }
    sorted
}

/// An event of a category the client may not write: rejected like any invalid event, and
/// quarantined (its raw text is the event as parsed, since the client's text is gone).
pub(crate) fn category_not_allowed(ev: Event) -> Rejected {
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

/// Sends the sorted records within the request's reservation. A delivery that stored
/// nothing is an error: the request is refused whole.
async fn deliver<S: EventSink>(
    state: &State<S>,
    held: &mut Reservation,
    adapter: Adapter,
    sorted: &Sorted,
) -> Result<Delivery, IngestError> {
    let records = Records::batch(&sorted.events, &sorted.rejections);
    // As `produce` does, but apart from the send so that a refusal is not counted as
    // events the broker failed to take.
    held.grow_to(held.bytes() + records.bytes())?;
    let started = Instant::now();
    let m = &state.metrics;
    let e = match state.sink.send(records).await {
        // Refused whole only with a reason: a request of no records has none.
        Ok(d) if !d.none_stored() || d.failed.is_empty() => {
            m.produce_duration.observe(started.elapsed().as_secs_f64());
            return Ok(d);
        }
        Ok(mut d) => IngestError::Produce(d.failed.swap_remove(0).error),
        Err(e) => e,
    };
    let (events, rejections) = (sorted.events.len(), sorted.rejections.len());
    m.events
        .with_label_values(&[adapter.as_str(), "failed"])
        .inc_by((events + rejections) as u64);
    tracing::warn!(error = %e, events, rejections, "produce failed");
    Err(e)
}

/// What was stored of a request, item by item.
#[derive(Debug)]
struct Settled {
    results: Vec<ItemResult>,
    /// Ids of the accepted events stored, in request order.
    event_ids: Vec<Uuid>,
    /// Events stored.
    accepted: usize,
    /// Rejections stored in the quarantine.
    rejected: usize,
    /// Items not stored although others were.
    failed: usize,
}

/// Part of the request was stored: a 503 would tell the client that nothing was, so the
/// records the sink did not take are answered item by item, to be sent again.
fn settle(mut sorted: Sorted, delivery: &Delivery) -> Settled {
    let not_taken = |id: Uuid| !delivery.failed.is_empty() && delivery.failed(id);
    let failed_events: Vec<Uuid> = sorted
        .events
        .iter()
        .map(|e| e.event_id)
        .filter(|id| not_taken(*id))
        .collect();
    // In the order of the rejected items.
    let rejection_failed: Vec<bool> = sorted
        .rejections
        .iter()
        .map(|r| not_taken(r.rejection_id))
        .collect();
    let failed_rejections = rejection_failed.iter().filter(|f| **f).count();
    if let Some(first) = delivery.failed.first() {
        mark_failed(
            &mut sorted.results,
            &failed_events,
            &rejection_failed,
            &first.error,
        );
    }
    Settled {
        results: sorted.results,
        event_ids: sorted
            .events
            .iter()
            .map(|e| e.event_id)
            .filter(|id| !failed_events.contains(id))
            .collect(),
        accepted: sorted.events.len() - failed_events.len(),
        rejected: sorted.rejections.len() - failed_rejections,
        failed: failed_events.len() + failed_rejections,
    }
}

/// Turns the results of records the sink did not take into `failed` items: the event's
/// id (to send again as it is), or, for a rejected item whose quarantine record was not
/// taken, its reasons; each with `broker_unavailable`.
fn mark_failed(
    results: &mut [ItemResult],
    events: &[Uuid],
    rejection_failed: &[bool],
    broker_error: &NotTaken,
) {
    let unavailable = FieldError::new(
        "",
        "broker_unavailable",
        format!("not stored ({broker_error}); send this item again, with the same event_id"),
    );
    let mut rejected = rejection_failed.iter();
    for r in results.iter_mut() {
        let hit = match (r.status, r.event_id) {
            (ItemStatus::Accepted, Some(id)) => events.contains(&id),
            (ItemStatus::Rejected, _) => rejected.next().copied().unwrap_or(false),
            _ => false,
        };
        if hit {
            r.status = ItemStatus::Failed;
            r.errors.push(unavailable.clone());
        }
    }
}

/// 202 when everything was accepted and stored, 400 when every item was rejected, 207
/// otherwise.
fn answer(s: Settled) -> Answer {
    let (status, error) = match (s.accepted, s.rejected, s.failed) {
        (_, 0, 0) => (StatusCode::ACCEPTED, None),
        (0, n, 0) => (
            StatusCode::BAD_REQUEST,
            Some(ErrorDetail {
                code: "invalid_events".into(),
                message: format!("all {n} events were rejected; each result says why"),
                details: Vec::new(),
            }),
        ),
        _ => (StatusCode::MULTI_STATUS, None),
    };
    Answer {
        status,
        body: BatchResponse {
            accepted: s.accepted,
            rejected: s.rejected,
            failed: s.failed,
            event_ids: s.event_ids,
            results: s.results,
            error,
        },
    }
}

#[cfg(test)]
mod tests;
