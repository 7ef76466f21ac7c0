//! `POST /events`: one event in the `/v1` shape, answered `201` with the event as sent
//! (and its `event_id`), or `400` with the one error shape and the event as sent. It is
//! the write of the REST event collectors clients built with Flask and Django REST
//! framework (their `GET /events` is served by the query service). Which types it takes
//! is the schema registry's and the unknown-type policy's: with the shipped schemas and
//! `reject`, the three typed payloads of `page_interaction` and `form_interaction`, and
//! nothing else.

use crate::adapter::Adapter;
use crate::error::IngestError;
use crate::routes::Write;
use crate::single_event;
use crate::sink::EventSink;
use warp::reply::Response;

/// `POST /events`.
pub async fn post_event<S: EventSink>(w: Write<S>) -> Result<Response, IngestError> {
    single_event::accept(w, Adapter::RestEvents).await
}
