//! Routes and handlers of the query API.

use crate::error::QueryError;
use crate::params::{self, Params};
use crate::view::{
    Aggregate, BucketView, Categories, CategoryView, EventPage, EventView, OwnerSessions,
    RejectedPage, RejectedView, SessionDetail, SessionEvents, SessionSummary, SessionView,
};
use crate::Config;
use chrono::{DateTime, Utc};
use eye_auth::{Principal, Scope};
use eye_http::auth::Guard;
use eye_http::error::{recover, HttpError};
use eye_http::metrics::HttpMetrics;
use eye_http::ops::{self, ReadyCheck};
use eye_model::aggregate::{self, Aggregation, Bucket, Fill, Granularity};
use eye_model::event::{Category, EventName, FieldError, SessionId};
use eye_model::session;
use eye_model::time::EventTime;
use eye_store::{
    AggregateFilter, EventFilter, EventRow, OwnerKind, OwnerSessionsFilter, RejectedFilter, Store,
};
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

/// Reading events needs `events:read`; aggregates need `aggregations:read` (seed 002's
/// `aggregation` scope); the catalogue of types, either. `admin` implies all.
const READ: &[Scope] = &[Scope::EventsRead];
const AGGREGATE: &[Scope] = &[Scope::AggregationsRead];
const CATALOGUE: &[Scope] = &[Scope::EventsRead, Scope::AggregationsRead];

pub fn routes(
    config: &Config,
    store: Store,
    registry: Registry,
    guard: Guard,
    drain: eye_http::Drain,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let http = HttpMetrics::new(&registry);
    let ready_store = store.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let store = ready_store.clone();
        async move { store.ping().await.map_err(|e| e.to_string()) }.boxed()
    });
    // A larger configured maximum would only make full pages fail at the store's backstop.
    let max_limit = config
        .query
        .session_events_max
        .min(eye_store::MAX_RESULT_ROWS as u32);
    let token = guard.token_route();
    let a = (&store, &guard);
    let session_events = get_id(
        warp::path!("v1" / "sessions" / String / "events"),
        a,
        READ,
        move |s, id, p| async move { session_events(&s, &id, &p, max_limit).await },
    );
    let session = get_id(
        warp::path!("v1" / "sessions" / String),
        a,
        READ,
        move |s, id, p| async move { session(&s, &id, &p, max_limit).await },
    );
    let machine_events = get_id(
        warp::path!("v1" / "machines" / String / "events"),
        a,
        READ,
        |s, id, p| async move { machine_events(&s, &id, &p).await },
    );
    let user_sessions = get_id(
        warp::path!("v1" / "users" / String / "sessions"),
        a,
        READ,
        |s, id, p| async move { user_sessions(&s, &id, &p).await },
    );
    let events = get(warp::path!("v1" / "events"), a, READ, |s, p| async move {
        events(&s, &p).await
    });
    let aggregate = get(
        warp::path!("v1" / "aggregate"),
        a,
        AGGREGATE,
        |s, p| async move { aggregate(&s, &p).await },
    );
    let categories = get(
        warp::path!("v1" / "categories"),
        a,
        CATALOGUE,
        |s, p| async move { categories(&s, &p).await },
    );
    let rejected = get(warp::path!("v1" / "rejected"), a, READ, |s, p| async move {
        rejected(&s, &p).await
    });
    session_events
        .or(session)
        .unify()
        .or(machine_events)
        .unify()
        .or(user_sessions)
        .unify()
        .or(events)
        .unify()
        .or(aggregate)
        .unify()
        .or(categories)
        .unify()
        .or(rejected)
        .unify()
        .or(token)
        .unify()
        .or(ops::routes(registry, ready, drain))
        .or(eye_http::openapi::route())
        .recover(recover)
        .with(http.log(route_of))
}

type Reply_ = Result<warp::reply::Response, QueryError>;

/// `GET <path>?<params>`, answered by `handler` with the store; its errors go to `recover`.
fn get<P, H, Fut>(
    path: P,
    (store, guard): (&Store, &Guard),
    scopes: &'static [Scope],
    handler: H,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone
where
    P: Filter<Extract = (), Error = warp::Rejection> + Clone,
    H: Fn(Store, Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply_> + Send,
{
    get_id(
        path.map(String::new),
        (store, guard),
        scopes,
        move |s, _, p| handler(s, p),
    )
}

/// `GET <path with one {id} segment>?<params>` for callers holding one of `scopes`; the
/// handler gets the raw segment.
fn get_id<P, H, Fut>(
    path: P,
    (store, guard): (&Store, &Guard),
    scopes: &'static [Scope],
    handler: H,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone
where
    P: Filter<Extract = (String,), Error = warp::Rejection> + Clone,
    H: Fn(Store, String, Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply_> + Send,
{
    let store = store.clone();
    path.and(warp::get())
        .and(guard.require(scopes))
        .and(warp::any().map(move || store.clone()))
        // The raw query, decoded by `params::parse_query`: warp's own decoder replaces bytes
        // that are not UTF-8 with U+FFFD instead of refusing them.
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(
            move |id: String, _caller: Principal, store: Store, query: String| {
                let handler = handler.clone();
                async move {
                    match params::parse_query(&query) {
                        Ok(params) => to_reply(handler(store, id, params).await),
                        Err(e) => to_reply(Err(e)),
                    }
                }
            },
        )
}

fn to_reply(
    r: Result<warp::reply::Response, QueryError>,
) -> Result<warp::reply::Response, warp::Rejection> {
    r.map_err(|e| warp::reject::custom(HttpError::from(e)))
}

fn session_id(raw: &str) -> Result<SessionId, QueryError> {
    let id = params::path_id(raw, "session_id", |s| SessionId::parse(s).map(drop))?;
    SessionId::parse(&id).map_err(|(code, message)| {
        QueryError::BadParameter(FieldError::new("session_id", code, message))
    })
}

fn owner_id(raw: &str, field: &str) -> Result<String, QueryError> {
    params::path_id(raw, field, |s| session::check_id(field, s))
}

/// The cursor for the page after `rows`, when the page is full.
fn next_cursor<T>(rows: &[T], limit: u32, cursor: impl Fn(&T) -> String) -> Option<String> {
    (rows.len() == limit as usize)
        .then(|| rows.last().map(cursor))
        .flatten()
}

fn event_cursor(r: &EventRow) -> String {
    params::encode_event_cursor(r.ts_us, r.event_id, &r.session_id)
}

/// `GET /v1/sessions/{id}/events?limit=`: seed 000's read of a session, kept as it was.
async fn session_events(store: &Store, raw_id: &str, params: &Params, max_limit: u32) -> Reply_ {
    let session = session_id(raw_id)?;
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

/// `GET /v1/sessions/{id}?limit=&cursor=`: the session's metadata and statistics, and a
/// keyset page of its events in time order.
async fn session(store: &Store, raw_id: &str, params: &Params, max_limit: u32) -> Reply_ {
    let session = session_id(raw_id)?;
    params::only(params, &["limit", "cursor"])?;
    let filter = EventFilter {
        session_id: Some(session.as_str().to_owned()),
        after: params::event_cursor(params)?,
        limit: params::limit(params, EVENTS_DEFAULT_LIMIT, max_limit)?,
        ..EventFilter::default()
    };
    let (rows, meta, stats) = futures::try_join!(
        store.events(&filter),
        store.session_meta(&session),
        store.session_stats(&session)
    )?;
    if stats.events == 0 && meta.is_none() {
        return Err(QueryError::SessionNotFound(session.into_string()));
    }
    Ok(warp::reply::json(&SessionDetail {
        next_cursor: next_cursor(&rows, filter.limit, event_cursor),
        summary: SessionSummary::new(session.into_string(), meta, stats),
        events: rows.into_iter().map(EventView::from).collect(),
    })
    .into_response())
}

/// `GET /v1/machines/{id}/events?category=&name=&from=&to=&order=&limit=&cursor=`: events
/// of every session the machine started, across sessions, in time order.
async fn machine_events(store: &Store, raw_id: &str, params: &Params) -> Reply_ {
    let machine = owner_id(raw_id, "machine_id")?;
    params::only(
        params,
        &["category", "name", "from", "to", "order", "limit", "cursor"],
    )?;
    let mut filter = event_filter(params)?;
    filter.owner = Some((OwnerKind::Machine, machine));
    event_page(store, &filter).await
}

/// `GET /v1/users/{id}/sessions?limit=&cursor=`: the user's sessions, newest first.
async fn user_sessions(store: &Store, raw_id: &str, params: &Params) -> Reply_ {
    let user = owner_id(raw_id, "user_id")?;
    params::only(params, &["limit", "cursor"])?;
    let filter = OwnerSessionsFilter {
        kind: OwnerKind::User,
        owner_id: user.clone(),
        after: params::session_cursor(params)?,
        limit: params::limit(params, EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT)?,
    };
    let rows = store.owner_sessions(&filter).await?;
    let next_cursor = next_cursor(&rows, filter.limit, |r| {
        params::encode_session_cursor(r.started_at_us, &r.session_id)
    });
    Ok(warp::reply::json(&OwnerSessions {
        user_id: user,
        sessions: rows.into_iter().map(SessionSummary::from).collect(),
        next_cursor,
    })
    .into_response())
}

/// Every parsed time is within chrono's range; the default is never reached.
fn utc(t: EventTime) -> DateTime<Utc> {
    t.to_datetime().unwrap_or_default()
}

/// `GET /v1/aggregate?category=&name=&from=&to=&granularity=&agg=&tz=&fill=`: the numeric
/// `value` of one event type, aggregated per calendar bucket of a time zone.
async fn aggregate(store: &Store, params: &Params) -> Reply_ {
    params::only(
        params,
        &[
            "category",
            "name",
            "from",
            "to",
            "granularity",
            "agg",
            "tz",
            "fill",
        ],
    )?;
    let category = params::required_text(params, "category", Category::parse)?;
    let name = params::required_text(params, "name", EventName::parse)?;
    let (from, to) = params::range(params)?;
    let granularity = params::choice(
        params,
        "granularity",
        &Granularity::ALL,
        Granularity::as_str,
        Granularity::None,
    )?;
    let aggregation = params::choice(
        params,
        "agg",
        &Aggregation::ALL,
        Aggregation::as_str,
        Aggregation::Avg,
    )?;
    let fill = params::choice(params, "fill", &Fill::ALL, Fill::as_str, Fill::None)?;
    let tz = params::time_zone(params)?;
    let too_many = |e: aggregate::TooManyBuckets| {
        QueryError::BadParameter(FieldError::new(
            "granularity",
            "too_many_buckets",
            e.to_string(),
        ))
    };
    let (from, to) = (from.map(utc), to.map(utc));
    // Refuse an oversized range before it costs the server anything.
    if let (Some(f), Some(t)) = (from, to) {
        aggregate::bucket_starts(granularity, tz, f, t).map_err(too_many)?;
    }
    let rows = store
        .aggregate(&AggregateFilter {
            category: category.clone(),
            name: name.clone(),
            from_us: from.map(|t| t.timestamp_micros()),
            to_us: to.map(|t| t.timestamp_micros()),
            granularity,
            aggregation,
            tz: tz.name().to_owned(),
            limit: (aggregate::MAX_BUCKETS + 1) as u32,
        })
        .await?;
    let found = rows
        .into_iter()
        .map(|r| Bucket {
            start: if granularity == Granularity::None {
                // Ingest stores no time outside the window a query may name; the clamp keeps
                // the answer RFC 3339 even for a row written around it.
                from.unwrap_or_else(|| {
                    let first = EventTime::from_micros(r.first_us);
                    utc(first.clamp(EventTime::MIN_ACCEPTED, EventTime::MAX_QUERYABLE))
                })
            } else {
                DateTime::from_timestamp(r.start_s, 0).unwrap_or_default()
            },
            value: Some(r.value),
            count: r.events,
        })
        .collect();
    let buckets = aggregate::fill(found, fill, granularity, tz, from, to).map_err(too_many)?;
    Ok(warp::reply::json(&Aggregate {
        category,
        name,
        granularity: granularity.as_str(),
        agg: aggregation.as_str(),
        tz: tz.name().to_owned(),
        fill: fill.as_str(),
        buckets: buckets
            .into_iter()
            .map(|b| BucketView::new(b, tz))
            .collect(),
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
    event_page(store, &event_filter(params)?).await
}

/// The filters `/v1/events` and the machine history share.
fn event_filter(params: &Params) -> Result<EventFilter, QueryError> {
    let (from, to) = params::range(params)?;
    Ok(EventFilter {
        session_id: params::text(params, "session_id", SessionId::parse)?,
        category: params::text(params, "category", Category::parse)?,
        name: params::text(params, "name", EventName::parse)?,
        from_us: from.map(|t| t.as_micros()),
        to_us: to.map(|t| t.as_micros()),
        after: params::event_cursor(params)?,
        descending: params::descending(params)?,
        limit: params::limit(params, EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT)?,
        ..EventFilter::default()
    })
}

async fn event_page(store: &Store, filter: &EventFilter) -> Reply_ {
    let rows = store.events(filter).await?;
    Ok(warp::reply::json(&EventPage {
        next_cursor: next_cursor(&rows, filter.limit, event_cursor),
        events: rows.into_iter().map(EventView::from).collect(),
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
    let next_cursor = next_cursor(&rows, filter.limit, |r| {
        params::encode_cursor(r.received_at_us, r.rejection_id)
    });
    Ok(warp::reply::json(&RejectedPage {
        rejected: rows.into_iter().map(RejectedView::from).collect(),
        next_cursor,
    })
    .into_response())
}

/// The route a request matched, as a bounded label for metrics (ids become `{...}`).
fn route_of(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "sessions", _, "events"] => "/v1/sessions/{session_id}/events",
        ["v1", "sessions", _] => "/v1/sessions/{session_id}",
        ["v1", "machines", _, "events"] => "/v1/machines/{machine_id}/events",
        ["v1", "users", _, "sessions"] => "/v1/users/{user_id}/sessions",
        ["v1", "events"] => "/v1/events",
        ["v1", "aggregate"] => "/v1/aggregate",
        ["v1", "categories"] => "/v1/categories",
        ["v1", "rejected"] => "/v1/rejected",
        ["oauth", "token"] => "/oauth/token",
        _ => eye_http::metrics::ops_route(path).unwrap_or("other"),
    }
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn routes_become_bounded_metric_labels() {
        let cases = [
            (
                "/v1/sessions/abc/events",
                "/v1/sessions/{session_id}/events",
            ),
            ("/v1/sessions/abc", "/v1/sessions/{session_id}"),
            (
                "/v1/machines/m%2F1/events",
                "/v1/machines/{machine_id}/events",
            ),
            ("/v1/users/u/sessions", "/v1/users/{user_id}/sessions"),
            ("/v1/aggregate", "/v1/aggregate"),
            ("/v1/events", "/v1/events"),
            ("/openapi.json", "/openapi.json"),
            ("/healthz", "/healthz"),
            ("/v1/sessions/a/b/c", "other"),
            ("/nope", "other"),
        ];
        for (path, want) in cases {
            assert_eq!(route_of(path), want, "{path}");
        }
    }
}
