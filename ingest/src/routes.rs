//! The ingest API over HTTP: its routes, each declared once with its metrics label; the
//! reading of every write request's body within the in-flight budget; and the answers.
//! What a batch of events does is `batch`'s.

use crate::batch::{self, Caller};
use crate::body;
use crate::budget::{Budget, Reservation};
use crate::error::IngestError;
use crate::metrics::IngestMetrics;
use crate::segment::{self, Door, SegmentLimits};
use crate::sink::{EventSink, KafkaSink, Records};
use crate::{collector, measurements, replay, rest_events, tracker};
use bytes::Buf;
use eye_auth::{Principal, Scope};
use eye_http::auth::Guard;
use eye_http::error::{recover, HttpError};
use eye_http::metrics::Route;
use eye_http::ops::{self, ReadyCheck};
use eye_http::{route, Drain};
use eye_model::event::{FieldError, Limits, Rules, SessionId};
use eye_model::schema::{SchemaRegistry, SharedRegistry, UnknownTypePolicy};
use eye_model::session;
use eye_model::time::EventTime;
use futures::{FutureExt, Stream};
use prometheus::Registry;
use std::future::Future;
use std::sync::Arc;
use warp::http::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Writing events and session records needs `events:write` (`admin` implies it).
pub(crate) const WRITE: &[Scope] = &[Scope::EventsWrite];

pub struct State<S = KafkaSink> {
    pub sink: S,
    /// Bytes in flight (`EYE_INGEST_MAX_INFLIGHT_BYTES`).
    pub budget: Budget,
    pub schemas: SharedRegistry,
    pub limits: Limits,
    pub unknown_types: UnknownTypePolicy,
    pub max_body_bytes: u64,
    pub max_decompressed_bytes: u64,
    /// Segment's per-message and per-batch limits (`EYE_INGEST_SEGMENT_*`).
    pub segment: SegmentLimits,
    /// The quarantine, read by replays (`POST /v1/rejected/replay`) and where their
    /// outcomes are written. Connected lazily: ingest serves its other doors whether or not
    /// ClickHouse is up.
    pub quarantine: eye_store::Store,
    /// The whole body must arrive within this (`EYE_HTTP_BODY_READ_TIMEOUT_MS`), or 408.
    pub body_read_timeout: std::time::Duration,
    pub metrics: IngestMetrics,
}

impl<S> State<S> {
    /// The rules `caller`'s events are held to, with the schemas in force: events of a type
    /// without a schema follow the client's own policy, else the service's.
    pub fn rules<'a>(&'a self, schemas: &'a SchemaRegistry, caller: &impl Caller) -> Rules<'a> {
        Rules {
            limits: &self.limits,
            schemas,
            unknown_types: caller.unknown_types().unwrap_or(self.unknown_types),
        }
    }
}

pub fn routes<S: EventSink>(
    state: Arc<State<S>>,
    registry: Registry,
    guard: Guard,
    drain: Drain,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let ready_state = state.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let state = ready_state.clone();
        async move { state.sink.check().await }.boxed()
    });
    let (labels, api) = eye_http::routes!(
        post(
            no_id(route!("v1" / "events")),
            &state,
            &guard,
            post_events::<S>
        ),
        post(
            no_id(route!("v1" / "sessions")),
            &state,
            &guard,
            start_session::<S>
        ),
        post(
            route!("v1" / "sessions" / { session_id } / "end"),
            &state,
            &guard,
            end_session::<S>
        ),
        segment_post(no_id(route!("v1" / "batch")), &state, &guard, Door::Batch),
        segment_post(no_id(route!("v1" / "track")), &state, &guard, Door::Track),
        segment_post(
            no_id(route!("v1" / "identify")),
            &state,
            &guard,
            Door::Identify
        ),
        segment_post(no_id(route!("v1" / "page")), &state, &guard, Door::Page),
        segment_post(no_id(route!("v1" / "screen")), &state, &guard, Door::Screen),
        segment_post(no_id(route!("v1" / "group")), &state, &guard, Door::Group),
        segment_post(no_id(route!("v1" / "alias")), &state, &guard, Door::Alias),
        Route::new("/oauth/token", guard.token_route()),
        post(
            no_id(route!("start_session")),
            &state,
            &guard,
            tracker::start_session::<S>
        ),
        post(
            no_id(route!("add_event")),
            &state,
            &guard,
            tracker::add_event::<S>
        ),
        post(
            no_id(route!("end_session")),
            &state,
            &guard,
            tracker::end_session::<S>
        ),
        post(
            no_id(route!("events")),
            &state,
            &guard,
            rest_events::post_event::<S>
        ),
        post(
            // Django's route, with its closing slash (warp takes the path without it too).
            no_id(Route::new("/api/track/", warp::path!("api" / "track"))),
            &state,
            &guard,
            measurements::track::<S>
        ),
        post_admitted(
            no_id(route!("eye" / "collector")),
            &state,
            &guard,
            guard.require_allowing_token_scheme(WRITE),
            collector::collect::<S>
        ),
        Route::new("/o/token/", guard.oauth_toolkit_token_route()),
        post_admitted(
            no_id(route!("v1" / "rejected" / "replay")),
            &state,
            &guard,
            guard.require(replay::REPLAY),
            replay::replay::<S>
        ),
    );
    api.or(ops::routes(registry, ready, drain))
        .or(eye_http::openapi::route())
        .recover(recover)
        .with(state.metrics.http.log(move |path| labels.of(path)))
}

/// A write request whose body has been read: what its handler is given.
pub(crate) struct Write<S> {
    pub(crate) state: Arc<State<S>>,
    pub(crate) guard: Guard,
    pub(crate) caller: Principal,
    /// The path's id segment as sent (percent-encoded); empty when the path has none.
    pub(crate) id: String,
    pub(crate) body: Vec<u8>,
    /// The request's bytes in the in-flight budget, held until its answer is ready.
    pub(crate) held: Reservation,
}

impl<S> Write<S> {
    /// The request's body, state and reservation apart, with its caller as the core needs
    /// it: a door's handler hands all three to `batch`.
    pub(crate) fn parts(&mut self) -> (&[u8], &State<S>, Writer<'_>, &mut Reservation) {
        (
            &self.body,
            &self.state,
            Writer {
                guard: &self.guard,
                principal: &self.caller,
            },
            &mut self.held,
        )
    }
}

/// A route without an id segment, taken as one with an empty id.
fn no_id<P>(route: Route<P>) -> Route<impl Filter<Extract = (String,), Error = Rejection> + Clone>
where
    P: Filter<Extract = (), Error = Rejection> + Clone,
{
    route.map(|path| path.map(String::new))
}

/// `POST <route>` for callers holding `events:write`: the body is read within the budget
/// and handed to `handle` with its reservation, which is given back once the answer is
/// ready; a refusal at any step is counted and answered in the shared error shape.
fn post<S, P, H, Fut>(
    route: Route<P>,
    state: &Arc<State<S>>,
    guard: &Guard,
    handle: H,
) -> Route<impl Filter<Extract = (Response,), Error = Rejection> + Clone>
where
    S: EventSink,
    P: Filter<Extract = (String,), Error = Rejection> + Clone + Send + Sync + 'static,
    H: Fn(Write<S>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, IngestError>> + Send,
{
    post_admitted(route, state, guard, guard.require(WRITE), handle)
}

/// As [`post`], with the callers `admit` lets in (`events:write` holders by the schemes
/// a door takes).
fn post_admitted<S, P, A, H, Fut>(
    route: Route<P>,
    state: &Arc<State<S>>,
    guard: &Guard,
    admit: A,
    handle: H,
) -> Route<impl Filter<Extract = (Response,), Error = Rejection> + Clone>
where
    S: EventSink,
    P: Filter<Extract = (String,), Error = Rejection> + Clone + Send + Sync + 'static,
    A: Filter<Extract = (Principal,), Error = Rejection> + Clone + Send + Sync + 'static,
    H: Fn(Write<S>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, IngestError>> + Send,
{
    let (state, guard) = (state.clone(), guard.clone());
    // The whole header map, since `Content-Encoding` may come on several lines (warp's
    // header filters read only the first).
    let body = warp::header::headers_cloned()
        .and(warp::body::stream())
        .map(|headers: HeaderMap, stream| Body::new(&headers, stream));
    route.map(|path| {
        path.and(warp::post()).and(admit).and(body).and_then(
            move |id: String, caller: Principal, body: Body<_>| {
                let (state, guard, handle) = (state.clone(), guard.clone(), handle.clone());
                async move {
                    let result = match read_body(&state, &caller.client_id, body).await {
                        Ok((body, held)) => {
                            let write = Write {
                                state: state.clone(),
                                guard,
                                caller,
                                id,
                                body,
                                held,
                            };
                            handle(write).await
                        }
                        Err(e) => Err(e),
                    };
                    result.map_err(|e| reject(&state.metrics, e))
                }
            },
        )
    })
}

/// The budget key of bodies whose write key comes inside them: they are read before anyone
/// is known, all within this one client's share of the in-flight budget, so that unknown
/// callers together never hold more of it than one client may. (Client ids are hex, so no
/// client has this one.)
const WRITE_KEY_IN_BODY: &str = "(write key in body)";

/// `POST <route>` of Segment's tracking API, by `door`: as [`post`], except that the write
/// key may come as HTTP Basic, or in the body when the request has no `Authorization`
/// (`analytics-python` sends it so). Such a body is read within the budget before its
/// sender is known, then authenticated: a wrong or missing key is a 401 like any other,
/// and nothing of its body is stored or quarantined.
fn segment_post<S, P>(
    route: Route<P>,
    state: &Arc<State<S>>,
    guard: &Guard,
    door: Door,
) -> Route<impl Filter<Extract = (Response,), Error = Rejection> + Clone>
where
    S: EventSink,
    P: Filter<Extract = (String,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    let (state, guard) = (state.clone(), guard.clone());
    let body = warp::header::headers_cloned()
        .and(warp::body::stream())
        .map(|headers: HeaderMap, stream| Body::new(&headers, stream));
    route.map(|path| {
        path.and(warp::post())
            .and(guard.require_write_key(WRITE))
            .and(body)
            .and_then(move |_: String, caller: Option<Principal>, body: Body<_>| {
                let (state, guard) = (state.clone(), guard.clone());
                async move {
                    let result = async {
                        let client = caller
                            .as_ref()
                            .map_or(WRITE_KEY_IN_BODY, |p| p.client_id.as_str());
                        let (body, mut held) = read_body(&state, client, body).await?;
                        let principal = match caller {
                            Some(p) => p,
                            None => {
                                let key = segment::write_key(&body).unwrap_or_default();
                                guard
                                    .admit_write_key(&key, WRITE)
                                    .await
                                    .map_err(IngestError::Auth)?
                            }
                        };
                        let writer = Writer {
                            guard: &guard,
                            principal: &principal,
                        };
                        segment::accept(&state, &writer, door, &body, &mut held).await
                    }
                    .await;
                    result.map_err(|e| reject(&state.metrics, e))
                }
            })
            .recover(segment::refusal)
            .unify()
    })
}

fn reject(m: &IngestMetrics, e: IngestError) -> Rejection {
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
async fn read_body<S, B, St>(
    state: &State<St>,
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

/// The caller of a write request, with the guard that keeps its budgets and counts.
pub(crate) struct Writer<'a> {
    guard: &'a Guard,
    principal: &'a Principal,
}

impl Caller for Writer<'_> {
    fn client_id(&self) -> &str {
        &self.principal.client_id
    }

    fn may_write(&self, category: &str) -> bool {
        self.principal.may_write(category)
    }

    async fn admit_events(&self, events: usize) -> Result<(), IngestError> {
        self.guard
            .admit_events(self.principal, events)
            .await
            .map_err(IngestError::Auth)
    }

    fn stored(&self, events: usize, rejections: usize) {
        self.guard
            .metrics()
            .events(&self.principal.client_id, events, rejections);
    }

    fn unknown_types(&self) -> Option<UnknownTypePolicy> {
        self.principal.unknown_types
    }
}

/// `POST /v1/events`.
async fn post_events<S: EventSink>(mut w: Write<S>) -> Result<Response, IngestError> {
    let caller = Writer {
        guard: &w.guard,
        principal: &w.caller,
    };
    let answer = batch::accept(&w.state, &caller, &w.body, &mut w.held).await?;
    Ok(warp::reply::with_status(warp::reply::json(&answer.body), answer.status).into_response())
}

/// `POST /v1/sessions`.
async fn start_session<S: EventSink>(mut w: Write<S>) -> Result<Response, IngestError> {
    let update = session::parse_start(&w.body, EventTime::now(), w.state.limits.time)?;
    batch::produce(&w.state, &mut w.held, Records::session(&update)).await?;
    Ok(session_accepted(&update.session_id))
}

/// `POST /v1/sessions/{session_id}/end`.
async fn end_session<S: EventSink>(mut w: Write<S>) -> Result<Response, IngestError> {
    let id = session_id(&w.id)?;
    let update = session::parse_end(&id, &w.body, EventTime::now(), w.state.limits.time)?;
    batch::produce(&w.state, &mut w.held, Records::session(&update)).await?;
    Ok(session_accepted(&update.session_id))
}

/// A session id from its path segment, percent-encoded as sent.
fn session_id(raw: &str) -> Result<SessionId, IngestError> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| {
            IngestError::BadSessionId(FieldError::new(
                "session_id",
                "invalid_utf8",
                "session_id must be UTF-8",
            ))
        })?;
    SessionId::parse(&decoded).map_err(|(code, message)| {
        IngestError::BadSessionId(FieldError::new("session_id", code, message))
    })
}

fn session_accepted(id: &SessionId) -> Response {
    let body = serde_json::json!({ "session_id": id });
    warp::reply::with_status(warp::reply::json(&body), StatusCode::ACCEPTED).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::MemorySink;
    use eye_auth::config::AuthConfig;
    use eye_auth::Authenticator;
    use std::time::Duration;

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
            std::env::temp_dir().join(format!("eye-ingest-routes-{}.toml", std::process::id()));
        std::fs::write(&clients, "clients = []\n").expect("a clients file");
        let auth: AuthConfig = eye_runtime::config::from_iter([(
            "EYE_AUTH_CLIENTS_FILE".to_owned(),
            clients.to_string_lossy().into_owned(),
        )])
        .expect("auth config");
        let registry = Registry::new();
        let guard = Guard::new(Authenticator::load(&auth).expect("loads"), &registry);
        let _ = std::fs::remove_file(&clients);
        let metrics = IngestMetrics::new(&registry);
        let state = Arc::new(State {
            sink: MemorySink::new(),
            budget: Budget::new(1 << 20, 1 << 20, metrics.inflight_bytes.clone()),
            schemas: SharedRegistry::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas"))
                .expect("the repository's schemas"),
            limits: Limits::default(),
            unknown_types: UnknownTypePolicy::Reject,
            max_body_bytes: 1 << 20,
            max_decompressed_bytes: 1 << 20,
            segment: SegmentLimits::default(),
            quarantine: crate::replay::offline_store(),
            body_read_timeout: Duration::from_secs(5),
            metrics,
        });
        let filter = routes(state, registry.clone(), guard, Drain::new());
        let cases = [
            ("/v1/events", "/v1/events"),
            ("/v1/sessions", "/v1/sessions"),
            ("/v1/sessions/s%201/end", "/v1/sessions/{session_id}/end"),
            ("/oauth/token", "/oauth/token"),
            ("/o/token/", "/o/token/"),
            ("/start_session", "/start_session"),
            ("/add_event", "/add_event"),
            ("/end_session", "/end_session"),
            ("/events", "/events"),
            ("/api/track/", "/api/track/"),
            ("/eye/collector", "/eye/collector"),
            ("/v1/batch", "/v1/batch"),
            ("/v1/track", "/v1/track"),
            ("/v1/identify", "/v1/identify"),
            ("/v1/page", "/v1/page"),
            ("/v1/screen", "/v1/screen"),
            ("/v1/group", "/v1/group"),
            ("/v1/alias", "/v1/alias"),
            ("/v1/batch/x", "other"),
            ("/openapi.json", "/openapi.json"),
            ("/readyz", "/readyz"),
            ("/v1/sessions/a/b/end", "other"),
            ("/v1/events/x", "other"),
        ];
        for (i, (path, label)) in cases.into_iter().enumerate() {
            let before = counted(&registry, label);
            warp::test::request()
                .method("POST")
                .path(path)
                .reply(&filter)
                .await;
            assert_eq!(counted(&registry, label), before + 1, "case {i}: {path}");
        }
    }
}
