//! `POST /eye/collector`: one event in the `/v1` shape, from clients built against Django
//! REST framework's `TokenAuthentication` (`Authorization: Token <key>` is taken beside
//! `Bearer`, see `routes`). Answered as `POST /events` is: `201` with the event as sent
//! and its `event_id`, `400` with the one error shape and the event as sent. Categories
//! and names may hold inner spaces (`form interaction`), as every door's may.

use crate::adapter::Adapter;
use crate::error::IngestError;
use crate::routes::Write;
use crate::single_event;
use crate::sink::EventSink;
use warp::reply::Response;

/// `POST /eye/collector`.
pub async fn collect<S: EventSink>(w: Write<S>) -> Result<Response, IngestError> {
    single_event::accept(w, Adapter::Collector).await
}
