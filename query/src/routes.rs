//! Routes and handlers of the query API.

use crate::error::QueryError;
use crate::params::{self, Params};
use crate::view::{
    Categories, CategoryView, EventPage, EventView, RejectedPage, RejectedView, SessionEvents,
    SessionView,
};
use crate::Config;
use eye_common::event::{Category, EventName, FieldError, SessionId};
use eye_common::store::{EventFilter, RejectedFilter, Store};
use eye_web::error::{recover, HttpError};
use eye_web::metrics::HttpMetrics;
use eye_web::ops::{self, ReadyCheck};
use futures::FutureExt;
use prometheus::Registry;
use std::sync::Arc;
use warp::{Filter, Reply};

const DEFAULT_LIMIT: u32 = 1_000;
const REJECTED_DEFAULT_LIMIT: u32 = 100;
const EVENTS_DEFAULT_LIMIT: u32 = 100;
const EVENTS_MAX_LIMIT: u32 = 1_000;
const CATEGORIES_MAX_LIMIT: u32 = 10_000;
const REJECTED_MAX_LIMIT: u32 = 1_000;

pub fn routes(
    config: &Config,
    store: Store,
    registry: Registry,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let http = HttpMetrics::new(&registry);
    let ready_store = store.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let store = ready_store.clone();
        async move { store.ping().await.map_err(|e| e.to_string()) }.boxed()
    });
    let max_limit = config.query.session_events_max;
    let session_store = store.clone();
    let session_events = warp::path!("v1" / "sessions" / String / "events")
        .and(warp::get())
        .and(warp::query::<Params>())
        .and_then(move |raw_id: String, params: Params| {
            let store = session_store.clone();
            async move { to_reply(session_events(&store, &raw_id, &params, max_limit).await) }
        });
    let events = get(warp::path!("v1" / "events"), &store, |s, p| async move {
        events(&s, &p).await
    });
    let categories = get(
        warp::path!("v1" / "categories"),
        &store,
        |s, p| async move { categories(&s, &p).await },
    );
    let rejected = get(warp::path!("v1" / "rejected"), &store, |s, p| async move {
        rejected(&s, &p).await
    });
    session_events
        .or(events)
        .unify()
        .or(categories)
        .unify()
        .or(rejected)
        .unify()
        .or(ops::routes(registry, ready))
        .recover(recover)
        .with(http.log(route_of))
}

/// `GET <path>?<params>`, answered by `handler` with the store; its errors go to `recover`.
fn get<P, H, Fut>(
    path: P,
    store: &Store,
    handler: H,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone
where
    P: Filter<Extract = (), Error = warp::Rejection> + Clone,
    H: Fn(Store, Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<warp::reply::Response, QueryError>> + Send,
{
    let store = store.clone();
    path.and(warp::get())
        .and(warp::any().map(move || store.clone()))
        .and(warp::query::<Params>())
        .and_then(move |store: Store, params: Params| {
            let handler = handler.clone();
            async move { to_reply(handler(store, params).await) }
        })
}

fn to_reply(
    r: Result<warp::reply::Response, QueryError>,
) -> Result<warp::reply::Response, warp::Rejection> {
    r.map_err(|e| warp::reject::custom(HttpError::from(e)))
}

async fn session_events(
    store: &Store,
    raw_id: &str,
    params: &Params,
    max_limit: u32,
) -> Result<warp::reply::Response, QueryError> {
    let bad_session = |code, message| {
        QueryError::BadParameter(FieldError {
            field: "session_id".into(),
            code,
            message,
        })
    };
    // Path segments arrive percent-encoded; session ids may hold any printable character.
    let decoded = percent_encoding::percent_decode_str(raw_id)
        .decode_utf8()
        .map_err(|_| bad_session("invalid_utf8", "session_id must be UTF-8".into()))?;
    let session =
        SessionId::parse(&decoded).map_err(|(code, message)| bad_session(code, message))?;
    params::only(params, &["limit"])?;
    let limit = params::limit(params, DEFAULT_LIMIT, max_limit)?;
    let (rows, meta) = futures::try_join!(
        store.session_events(&session, limit),
        store.session_meta(&session)
    )?;
    if rows.is_empty() && meta.is_none() {
        return Err(QueryError::SessionNotFound(session.into_string()));
    }
    Ok(warp::reply::json(&SessionEvents {
        session_id: session.into_string(),
        session: meta.map(SessionView::from),
        events: rows.into_iter().map(EventView::from).collect(),
    })
    .into_response())
}

/// `GET /v1/events?session_id=&category=&name=&from=&to=&order=&limit=&cursor=`: events in
/// time order, one per event_id, in keyset pages: walking every page returns each match
/// once, even while new events arrive.
async fn events(store: &Store, params: &Params) -> Result<warp::reply::Response, QueryError> {
    params::only(
        params,
        &[
            "session_id",
            "category",
            "name",
            "from",
            "to",
            "order",
            "limit",
            "cursor",
        ],
    )?;
    let (from, to) = params::range(params)?;
    let filter = EventFilter {
        session_id: params::text(params, "session_id", SessionId::parse)?,
        category: params::text(params, "category", Category::parse)?,
        name: params::text(params, "name", EventName::parse)?,
        from_us: from.map(|t| t.as_micros()),
        to_us: to.map(|t| t.as_micros()),
        after: params::cursor(params)?,
        descending: params::descending(params)?,
        limit: params::limit(params, EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT)?,
    };
    let rows = store.events(&filter).await?;
    let next_cursor = (rows.len() == filter.limit as usize)
        .then(|| {
            rows.last()
                .map(|r| params::encode_cursor(r.ts_us, r.event_id))
        })
        .flatten();
    Ok(warp::reply::json(&EventPage {
        events: rows.into_iter().map(EventView::from).collect(),
        next_cursor,
    })
    .into_response())
}

/// `GET /v1/categories?limit=`: every stored (category, name) with counts and first and
/// last event time.
async fn categories(store: &Store, params: &Params) -> Result<warp::reply::Response, QueryError> {
    params::only(params, &["limit"])?;
    let limit = params::limit(params, CATEGORIES_MAX_LIMIT, CATEGORIES_MAX_LIMIT)?;
    let rows = store.categories(limit).await?;
    Ok(warp::reply::json(&Categories {
        categories: rows.into_iter().map(CategoryView::from).collect(),
    })
    .into_response())
}

/// `GET /v1/rejected?reason=&from=&to=&limit=&cursor=`: the quarantine in arrival order.
async fn rejected(store: &Store, params: &Params) -> Result<warp::reply::Response, QueryError> {
    params::only(params, &["reason", "from", "to", "limit", "cursor"])?;
    let (from, to) = params::range(params)?;
    let filter = RejectedFilter {
        reason: params::reason(params)?,
        from_us: from.map(|t| t.as_micros()),
        to_us: to.map(|t| t.as_micros()),
        after: params::cursor(params)?,
        limit: params::limit(params, REJECTED_DEFAULT_LIMIT, REJECTED_MAX_LIMIT)?,
    };
    let rows = store.rejected(&filter).await?;
    let next_cursor = (rows.len() == filter.limit as usize)
        .then(|| {
            rows.last()
                .map(|r| params::encode_cursor(r.received_at_us, r.rejection_id))
        })
        .flatten();
    Ok(warp::reply::json(&RejectedPage {
        rejected: rows.into_iter().map(RejectedView::from).collect(),
        next_cursor,
    })
    .into_response())
}

fn route_of(path: &str) -> &'static str {
    if path.starts_with("/v1/sessions/") && path.ends_with("/events") {
        return "/v1/sessions/{session_id}/events";
    }
    match path {
        "/v1/rejected" => return "/v1/rejected",
        "/v1/events" => return "/v1/events",
        "/v1/categories" => return "/v1/categories",
        _ => {}
    }
    eye_web::metrics::ops_route(path).unwrap_or("other")
}
