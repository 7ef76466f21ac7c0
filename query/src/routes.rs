//! Routes and handlers of the query API.

use crate::deletion::{self, Deletions};
use crate::error::QueryError;
use crate::identities;
use crate::params::{self, Params};
use crate::view::{
    self, Categories, EventPage, OwnerSessions, RejectedPage, SentEvent, SessionDetail,
    SessionEvents,
};
use crate::Config;
use crate::{aggregate, body, collector, export, measurements, pipeline, rest_events, tracker, ui};
use eye_auth::{Principal, Scope};
use eye_http::auth::Guard;
use eye_http::error::{recover, HttpError};
use eye_http::metrics::{HttpMetrics, Route};
use eye_http::ops::{self, ReadyCheck};
use eye_http::route;
use eye_model::event::{Category, EventName, FieldError, SessionId};
use eye_model::session;
use eye_store::deletion::{Subject, SubjectKind};
use eye_store::{EventFilter, EventRow, OwnerKind, OwnerSessionsFilter, RejectedFilter, Store};
use futures::FutureExt;
use prometheus::Registry;
use serde_json::{Map, Value};
use std::sync::Arc;
use warp::{Filter, Reply};

const DEFAULT_LIMIT: u32 = 1_000;
const REJECTED_DEFAULT_LIMIT: u32 = 100;
const EVENTS_DEFAULT_LIMIT: u32 = 100;
const EVENTS_MAX_LIMIT: u32 = 1_000;
const CATEGORIES_MAX_LIMIT: u32 = 10_000;
const REJECTED_MAX_LIMIT: u32 = 1_000;

/// Reading events needs `events:read`; aggregates need `aggregations:read`; the catalogue
/// of types, either. `admin` implies all.
const READ: Access = Access::Bearer(&[Scope::EventsRead]);
const AGGREGATE: Access = Access::Bearer(&[Scope::AggregationsRead]);
const CATALOGUE: Access = Access::Bearer(&[Scope::EventsRead, Scope::AggregationsRead]);
/// Deleting a subject's data and reading how a deletion went.
const DELETE: Access = Access::Bearer(&[Scope::Delete]);
/// Seed 003's reads, whose clients send Django REST framework's `Authorization: Token`.
const COLLECTOR_READ: Access = Access::BearerOrToken(&[Scope::EventsRead]);

/// Who may call a route: a caller holding one of the scopes, its credential sent as
/// `Authorization: Bearer`, or also as `Authorization: Token`.
#[derive(Clone, Copy)]
enum Access {
    Bearer(&'static [Scope]),
    BearerOrToken(&'static [Scope]),
}

impl Access {
    fn filter(self, guard: &Guard) -> warp::filters::BoxedFilter<(Principal,)> {
        match self {
            Access::Bearer(scopes) => guard.require(scopes).boxed(),
            Access::BearerOrToken(scopes) => guard.require_allowing_token_scheme(scopes).boxed(),
        }
    }
}

pub fn routes(
    config: &Config,
    store: Store,
    registry: Registry,
    guard: Guard,
    drain: eye_http::Drain,
    deletions: Deletions,
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
    // One more than an unpaged tracker answer may hold is read, so that too many shows.
    let tracker_max = max_limit.min(eye_store::MAX_RESULT_ROWS as u32 - 1);
    let schema_dir = config.query.schema_dir.clone();
    let scraper = reqwest::Client::new();
    let metrics_urls = Arc::new((
        config.query.ingest_metrics_url.clone(),
        config.query.consumer_metrics_url.clone(),
    ));
    let metrics_timeout = std::time::Duration::from_millis(config.query.metrics_timeout_ms);
    let ui_source = match &config.query.ui_dir {
        Some(dir) => ui::Source::Dir(dir.clone()),
        None => ui::Source::Embedded,
    };
    let export_settings = eye_store::export::Settings {
        page_rows: config.query.export_page_rows,
        page_time_limit: std::time::Duration::from_millis(config.query.export_page_time_limit_ms),
    };
    let a = (&store, &guard);
    let (labels, api) = eye_http::routes!(
        get_id(
            route!("v1" / "sessions" / { session_id } / "events"),
            a,
            READ,
            move |s, id, p| async move { session_events(&s, &id, &p, max_limit).await },
        ),
        get_id(
            route!("v1" / "sessions" / { session_id }),
            a,
            READ,
            move |s, id, p| async move { session(&s, &id, &p, max_limit).await },
        ),
        get_id(
            route!("v1" / "machines" / { machine_id } / "events"),
            a,
            READ,
            |s, id, p| async move { machine_events(&s, &id, &p).await },
        ),
        get_id(
            route!("v1" / "users" / { user_id } / "sessions"),
            a,
            READ,
            |s, id, p| async move { user_sessions(&s, &id, &p).await },
        ),
        get_id(
            route!("v1" / "identities" / { user_id } / "events"),
            a,
            READ,
            |s, id, p| async move { identities::events(&s, &id, &p).await },
        ),
        get_id(
            route!("v1" / "identities" / { user_id }),
            a,
            READ,
            |s, id, p| async move { identities::identity(&s, &id, &p).await },
        ),
        get(route!("v1" / "events"), a, READ, |s, p| async move {
            events(&s, &p).await
        }),
        get(route!("v1" / "export"), a, READ, move |s, p| async move {
            export::export(s, &p, export_settings).await
        }),
        get(
            route!("v1" / "aggregate"),
            a,
            AGGREGATE,
            |s, p| async move { aggregate(&s, &p).await }
        ),
        get(
            route!("v1" / "categories"),
            a,
            CATALOGUE,
            |s, p| async move { categories(&s, &p).await }
        ),
        get(route!("v1" / "rejected"), a, READ, |s, p| async move {
            rejected(&s, &p).await
        }),
        get(route!("v1" / "schemas"), a, CATALOGUE, move |_, p| {
            let dir = schema_dir.clone();
            async move { schemas(dir, &p).await }
        }),
        get(route!("v1" / "pipeline"), a, READ, move |_, p| {
            let (client, urls) = (scraper.clone(), metrics_urls.clone());
            async move {
                params::only(&p, &[])?;
                let state = pipeline::read(&client, &urls.0, &urls.1, metrics_timeout).await;
                Ok(warp::reply::json(&state).into_response())
            }
        }),
        post_json(route!("get_session"), a, READ, move |s, body| async move {
            tracker_session(&s, body, tracker_max).await
        },),
        post_json(
            route!("get_machine_events"),
            a,
            READ,
            move |s, body| async move { tracker_machine(&s, body, tracker_max).await },
        ),
        rest_events_route(route!("events"), a),
        get_id(
            route!("api" / "events" / { namespace } / { name }).map(|p| p.map(|n, e| (n, e))),
            a,
            AGGREGATE,
            |s, (namespace, name): (String, String), p| async move {
                measurements(&s, &namespace, &name, &p).await
            },
        ),
        get(
            route!("eye" / "event"),
            a,
            COLLECTOR_READ,
            |s, p| async move { collector_events(&s, collector::session_events(&p)).await }
        ),
        get(
            route!("eye" / "category-events"),
            a,
            COLLECTOR_READ,
            |s, p| async move { collector_events(&s, collector::category_events(&p)).await }
        ),
        get(
            route!("eye" / "range-events"),
            a,
            COLLECTOR_READ,
            |s, p| async move { collector_events(&s, collector::range_events(&p)).await }
        ),
        get(
            route!("eye" / "invalid-time"),
            a,
            COLLECTOR_READ,
            |s, p| async move { collector_refused(&s, &p).await }
        ),
        delete_subject(
            route!("v1" / "users" / { user_id }),
            (&deletions, &guard),
            SubjectKind::User
        ),
        delete_subject(
            route!("v1" / "sessions" / { session_id }),
            (&deletions, &guard),
            SubjectKind::Session
        ),
        delete_subject(
            route!("v1" / "machines" / { machine_id }),
            (&deletions, &guard),
            SubjectKind::Machine
        ),
        deletion_route(
            route!("v1" / "deletions" / { deletion_id }),
            (&deletions, &guard)
        ),
        Route::new("/oauth/token", guard.token_route()),
        Route::new("/o/token/", guard.oauth_toolkit_token_route()),
    );
    api.or(ops::routes(registry, ready, drain))
        .or(eye_http::openapi::route())
        .or(ui::routes(ui_source))
        .recover(recover)
        .with(http.log(move |path| labels.of(path)))
}

pub(crate) type Reply_ = Result<warp::reply::Response, QueryError>;

/// `GET <route>?<params>`, answered by `handler` with the store; its errors go to `recover`.
fn get<P, H, Fut>(
    route: Route<P>,
    (store, guard): (&Store, &Guard),
    access: Access,
    handler: H,
) -> Route<impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone>
where
    P: Filter<Extract = (), Error = warp::Rejection> + Clone,
    H: Fn(Store, Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply_> + Send,
{
    get_id(
        route.map(|path| path.map(String::new)),
        (store, guard),
        access,
        move |s, _, p| handler(s, p),
    )
}

/// `GET <route with {id} segments>?<params>` for the callers `access` admits; the
/// handler gets the raw segment (or a tuple of them).
fn get_id<I, P, H, Fut>(
    route: Route<P>,
    (store, guard): (&Store, &Guard),
    access: Access,
    handler: H,
) -> Route<impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone>
where
    I: Send + 'static,
    P: Filter<Extract = (I,), Error = warp::Rejection> + Clone,
    H: Fn(Store, I, Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply_> + Send,
{
    let store = store.clone();
    route.map(|path| {
        path.and(warp::get())
            .and(access.filter(guard))
            .and(warp::any().map(move || store.clone()))
            // The raw query, decoded by `params::parse_query`: warp's own decoder replaces
            // bytes that are not UTF-8 with U+FFFD instead of refusing them.
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and_then(
                move |id: I, _caller: Principal, store: Store, query: String| {
                    let handler = handler.clone();
                    async move {
                        match params::parse_query(&query) {
                            Ok(params) => to_reply(handler(store, id, params).await),
                            Err(e) => to_reply(Err(e)),
                        }
                    }
                },
            )
    })
}

fn to_reply(
    r: Result<warp::reply::Response, QueryError>,
) -> Result<warp::reply::Response, warp::Rejection> {
    r.map_err(|e| warp::reject::custom(HttpError::from(e)))
}

/// `POST <route>` with a JSON object body, for the callers `access` admits: the seed
/// reads that ask their question in a body.
fn post_json<P, H, Fut>(
    route: Route<P>,
    (store, guard): (&Store, &Guard),
    access: Access,
    handler: H,
) -> Route<impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone>
where
    P: Filter<Extract = (), Error = warp::Rejection> + Clone,
    H: Fn(Store, Map<String, Value>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Reply_> + Send,
{
    let store = store.clone();
    route.map(|path| {
        path.and(warp::post())
            .and(access.filter(guard))
            .and(warp::any().map(move || store.clone()))
            .and(body::bytes())
            .and_then(
                move |_caller: Principal, store: Store, bytes: Result<Vec<u8>, QueryError>| {
                    let handler = handler.clone();
                    async move {
                        match bytes.and_then(|b| body::object(&b)) {
                            Ok(body) => to_reply(handler(store, body).await),
                            Err(e) => to_reply(Err(e)),
                        }
                    }
                },
            )
    })
}

/// `GET /events`: its question is in the query string and perhaps a JSON body, and its
/// answer links to other pages through the `Host` the request came to.
fn rest_events_route<P>(
    route: Route<P>,
    (store, guard): (&Store, &Guard),
) -> Route<impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone>
where
    P: Filter<Extract = (), Error = warp::Rejection> + Clone,
{
    let store = store.clone();
    route.map(|path| {
        path.and(warp::get())
            .and(READ.filter(guard))
            .and(warp::any().map(move || store.clone()))
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("host"))
            .and(body::bytes())
            .and_then(
                |_caller: Principal,
                 store: Store,
                 query: String,
                 host: Option<String>,
                 bytes: Result<Vec<u8>, QueryError>| async move {
                    to_reply(rest_events(&store, &query, host, bytes).await)
                },
            )
    })
}

/// `DELETE <route with one {id}>`: starts the deletion of that subject's data.
fn delete_subject<P>(
    route: Route<P>,
    (deletions, guard): (&Deletions, &Guard),
    kind: SubjectKind,
) -> Route<impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone>
where
    P: Filter<Extract = (String,), Error = warp::Rejection> + Clone,
{
    let deletions = deletions.clone();
    route.map(|path| {
        path.and(warp::delete())
            .and(DELETE.filter(guard))
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and_then(move |raw: String, caller: Principal, query: String| {
                let deletions = deletions.clone();
                async move {
                    to_reply(request_deletion(&deletions, kind, &raw, &caller, &query).await)
                }
            })
    })
}

/// `GET /v1/deletions/{id}`.
fn deletion_route<P>(
    route: Route<P>,
    (deletions, guard): (&Deletions, &Guard),
) -> Route<impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone>
where
    P: Filter<Extract = (String,), Error = warp::Rejection> + Clone,
{
    let deletions = deletions.clone();
    route.map(|path| {
        path.and(warp::get())
            .and(DELETE.filter(guard))
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and_then(move |raw: String, _caller: Principal, query: String| {
                let deletions = deletions.clone();
                async move { to_reply(show_deletion(&deletions, &raw, &query).await) }
            })
    })
}

/// The subject a `DELETE` names, its id checked as the reads check it.
fn subject(kind: SubjectKind, raw: &str) -> Result<Subject, QueryError> {
    let id = match kind {
        SubjectKind::Session => session_id(raw)?.into_string(),
        SubjectKind::User => owner_id(raw, "user_id")?,
        SubjectKind::Machine => owner_id(raw, "machine_id")?,
    };
    Ok(Subject { kind, id })
}

/// `202 Accepted` with the deletion's id, status and `Location`.
async fn request_deletion(
    deletions: &Deletions,
    kind: SubjectKind,
    raw: &str,
    caller: &Principal,
    query: &str,
) -> Reply_ {
    params::only(&params::parse_query(query)?, &[])?;
    let subject = subject(kind, raw)?;
    let row = deletions.request(subject, &caller.client_id).await?;
    let location = format!("/v1/deletions/{}", row.deletion_id);
    let body = warp::reply::json(&eye_model::api::DeletionAccepted {
        deletion_id: row.deletion_id,
        status: row.status,
        location: location.clone(),
    });
    let reply = warp::reply::with_header(body, "location", location);
    Ok(warp::reply::with_status(reply, warp::http::StatusCode::ACCEPTED).into_response())
}

async fn show_deletion(deletions: &Deletions, raw: &str, query: &str) -> Reply_ {
    params::only(&params::parse_query(query)?, &[])?;
    let id = uuid::Uuid::parse_str(raw).map_err(|_| {
        QueryError::BadParameter(FieldError::new(
            "deletion_id",
            "invalid_uuid",
            "deletion_id must be a UUID, as DELETE answered it",
        ))
    })?;
    let row = deletions
        .get(id)
        .await?
        .ok_or_else(|| QueryError::DeletionNotFound(id.to_string()))?;
    Ok(warp::reply::json(&deletion::view(row)).into_response())
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
pub(crate) fn next_cursor<T>(
    rows: &[T],
    limit: u32,
    cursor: impl Fn(&T) -> String,
) -> Option<String> {
    (rows.len() == limit as usize)
        .then(|| rows.last().map(cursor))
        .flatten()
}

pub(crate) fn event_cursor(r: &EventRow) -> String {
    params::encode_event_cursor(r.ts_us, r.event_id, &r.session_id)
}

/// `GET /v1/sessions/{id}/events?limit=`: the session's events and what is known of its
/// lifecycle, in one unpaged answer.
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
        session: meta.map(view::session_view),
        events: rows.into_iter().map(view::event).collect(),
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
        summary: view::session_summary(session.into_string(), meta, stats),
        events: rows.into_iter().map(view::event).collect(),
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
        sessions: rows.into_iter().map(view::owner_session).collect(),
        next_cursor,
    })
    .into_response())
}

/// `GET /v1/aggregate?category=&name=&from=&to=&granularity=&agg=&tz=&fill=`: the numeric
/// `value` of one event type, aggregated per calendar bucket of a time zone.
async fn aggregate(store: &Store, params: &Params) -> Reply_ {
    let request = aggregate::request(params)?;
    let rows = store.aggregate(&request.filter()).await?;
    Ok(warp::reply::json(&request.answer(rows)?).into_response())
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

/// The filters `/v1/events` and the machine history share (and `/v1/export`).
pub(crate) fn event_filter(params: &Params) -> Result<EventFilter, QueryError> {
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
        events: rows.into_iter().map(view::event).collect(),
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
        categories: rows.into_iter().map(view::category).collect(),
    })
    .into_response())
}

/// `GET /v1/schemas`: the JSON Schema of every event type, as ingest reads them.
async fn schemas(dir: std::path::PathBuf, params: &Params) -> Reply_ {
    params::only(params, &[])?;
    let documents = tokio::task::spawn_blocking(move || eye_model::schema::documents(&dir))
        .await
        .map_err(|e| QueryError::Schemas(e.to_string()))?
        .map_err(|e| QueryError::Schemas(e.to_string()))?;
    Ok(warp::reply::json(&view::Schemas { schemas: documents }).into_response())
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
        ..RejectedFilter::default()
    };
    let rows = store.rejected(&filter).await?;
    let ids: Vec<_> = rows.iter().map(|r| r.rejection_id).collect();
    let mut outcomes: std::collections::HashMap<_, _> = store
        .replay_outcomes(&ids)
        .await?
        .into_iter()
        .map(|o| (o.rejection_id, o))
        .collect();
    let next_cursor = next_cursor(&rows, filter.limit, |r| {
        params::encode_cursor(r.received_at_us, r.rejection_id)
    });
    Ok(warp::reply::json(&RejectedPage {
        rejected: rows
            .into_iter()
            .map(|r| {
                let outcome = outcomes.remove(&r.rejection_id);
                view::rejected(r, outcome)
            })
            .collect(),
        next_cursor,
    })
    .into_response())
}

/// `POST /get_session {sessionId}`: the session and its events, as the tracker answers.
async fn tracker_session(store: &Store, body: Map<String, Value>, max: u32) -> Reply_ {
    let session = tracker::session_request(&body)?;
    let (rows, meta) = futures::try_join!(
        store.session_events(&session, max + 1),
        store.session_meta(&session)
    )?;
    if rows.is_empty() && meta.is_none() {
        return Err(QueryError::SessionNotFound(session.into_string()));
    }
    tracker::within(&rows, max, "sessionId")?;
    let answer = tracker::Session::new(session.into_string(), meta, rows);
    Ok(warp::reply::json(&answer).into_response())
}

/// `POST /get_machine_events {machineId}`: the events of every session the machine
/// started, in time order.
async fn tracker_machine(store: &Store, body: Map<String, Value>, max: u32) -> Reply_ {
    let machine = tracker::machine_request(&body)?;
    let filter = EventFilter {
        owner: Some((OwnerKind::Machine, machine.clone())),
        limit: max + 1,
        ..EventFilter::default()
    };
    let rows = store.events(&filter).await?;
    tracker::within(&rows, max, "machineId")?;
    Ok(warp::reply::json(&tracker::MachineEvents::new(machine, rows)).into_response())
}

/// `GET /events?session_id=&category=&start_time=&end_time=&page=`: a numbered page.
async fn rest_events(
    store: &Store,
    query: &str,
    host: Option<String>,
    bytes: Result<Vec<u8>, QueryError>,
) -> Reply_ {
    let params = params::parse_query(query)?;
    let body = body::optional_object(&bytes?)?;
    let request = rest_events::request(query, &params, body.as_ref(), host.as_deref())?;
    let count = store.event_count(request.filter()).await?;
    request.check_page(count)?;
    let rows = if count == 0 {
        Vec::new()
    } else {
        store.events(request.filter()).await?
    };
    Ok(warp::reply::json(&request.answer(count, rows)).into_response())
}

/// `GET /api/events/{namespace}/{name}?tsMin=&tsMax=&granularity=&aggregationType=`.
async fn measurements(store: &Store, namespace: &str, name: &str, params: &Params) -> Reply_ {
    let request = measurements::request(namespace, name, params)?;
    let rows = store.aggregate(request.filter()).await?;
    Ok(warp::reply::json(&request.answer(rows)?).into_response())
}

/// The collector's event listings: a JSON array, newest first.
async fn collector_events(store: &Store, filter: Result<EventFilter, QueryError>) -> Reply_ {
    let rows = store.events(&filter?).await?;
    let events: Vec<SentEvent> = rows.into_iter().map(view::sent_event).collect();
    Ok(warp::reply::json(&events).into_response())
}

/// `GET /eye/invalid-time?session_id=`: the events refused for their time, as sent.
async fn collector_refused(store: &Store, params: &Params) -> Reply_ {
    let filter = collector::refused_for_time(params)?;
    let rows = store.refused_for_time(&filter).await?;
    let events: Vec<Value> = rows
        .iter()
        .filter_map(|r| collector::refused_event(r, &filter.codes))
        .collect();
    Ok(warp::reply::json(&events).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_auth::config::AuthConfig;
    use eye_auth::Authenticator;
    use eye_runtime::config::from_pairs;

    /// The requests `route` was counted under in `registry`.
    fn counted(registry: &Registry, route: &str) -> u64 {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == "eye_http_requests_total")
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "route" && l.value() == route)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    #[tokio::test]
    async fn requests_are_counted_under_the_route_they_name() {
        let clients =
            std::env::temp_dir().join(format!("eye-query-routes-{}.toml", std::process::id()));
        std::fs::write(&clients, "clients = []\n").expect("a clients file");
        let auth: AuthConfig = from_pairs(&[(
            "EYE_AUTH_CLIENTS_FILE",
            clients.to_str().expect("a UTF-8 path"),
        )])
        .expect("auth config");
        let config = Config {
            query: from_pairs(&[]).expect("defaults"),
            clickhouse: from_pairs(&[]).expect("defaults"),
            auth,
            http: from_pairs(&[]).expect("defaults"),
            deletion: from_pairs(&[]).expect("defaults"),
            retention: Default::default(),
        };
        let registry = Registry::new();
        let guard = Guard::new(Authenticator::load(&config.auth).expect("loads"), &registry);
        let store = Store::new(&config.clickhouse).expect("a store handle");
        let deletions = Deletions::new(store.clone(), &config.deletion, &registry);
        let filter = routes(
            &config,
            store,
            registry.clone(),
            guard,
            eye_http::Drain::new(),
            deletions,
        );
        let _ = std::fs::remove_file(&clients);
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
            ("/v1/identities/u%40x", "/v1/identities/{user_id}"),
            ("/v1/identities/u/events", "/v1/identities/{user_id}/events"),
            ("/v1/users/u", "/v1/users/{user_id}"),
            ("/v1/machines/m", "/v1/machines/{machine_id}"),
            ("/v1/deletions/x", "/v1/deletions/{deletion_id}"),
            ("/v1/aggregate", "/v1/aggregate"),
            ("/v1/events", "/v1/events"),
            ("/v1/categories", "/v1/categories"),
            ("/v1/rejected", "/v1/rejected"),
            ("/get_session", "/get_session"),
            ("/get_machine_events", "/get_machine_events"),
            ("/events", "/events"),
            (
                "/api/events/this%20is%20namespace/a%20name",
                "/api/events/{namespace}/{name}",
            ),
            ("/eye/event", "/eye/event"),
            ("/eye/category-events", "/eye/category-events"),
            ("/eye/range-events", "/eye/range-events"),
            ("/eye/invalid-time", "/eye/invalid-time"),
            ("/oauth/token", "/oauth/token"),
            ("/o/token/", "/o/token/"),
            ("/openapi.json", "/openapi.json"),
            ("/healthz", "/healthz"),
            ("/v1/sessions/a/b/c", "other"),
            ("/nope", "other"),
        ];
        for (i, (path, label)) in cases.into_iter().enumerate() {
            let before = counted(&registry, label);
            warp::test::request().path(path).reply(&filter).await;
            assert_eq!(counted(&registry, label), before + 1, "case {i}: {path}");
        }
    }
}
