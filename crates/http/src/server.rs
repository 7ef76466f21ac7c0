//! Serving a service's routes until shutdown.
//!
//! Each connection is served by hyper 1's HTTP/1 server (`hyper::server::conn::http1`),
//! with warp's filter as its service, under the `EYE_HTTP_*` settings:
//! - a request head (request line and headers) longer than `max_header_bytes` gets `431`
//!   and the connection is closed: hyper checks a complete head against the limit
//!   (`max_header_size`) and stops buffering an unfinished one there (`max_buf_size`). The
//!   number of headers is hyper's fixed 100; more also get `431`. Neither answer has a
//!   body: hyper sends it before any route runs.
//! - the head must arrive within `header_read_timeout_ms`, counted from the connection's
//!   start for its first request and from the first byte of each later one, or the
//!   connection is closed without an answer; a connection that sends nothing for
//!   `idle_timeout_ms` while it is read (idle between requests, or stalled inside one) is
//!   closed too. hyper counts its head timeout from the end of the previous answer and
//!   has no idle timeout, so [`crate::conn`] gives it a timer and a socket that do this.
//! - HTTP/1 only: no client of these APIs speaks HTTP/2 over plain TCP, and these limits
//!   are HTTP/1's.
//! - the request-head rules of RFC 9112 that hyper does not enforce ([`crate::conformance`]):
//!   a request with both `Content-Length` and `Transfer-Encoding` (request smuggling), or
//!   an HTTP/1.1 request without exactly one valid `Host`, is answered 400 in the JSON error
//!   shape (`invalid_framing`, `invalid_host`) before any route, health checks included,
//!   and its connection is closed; so is the connection of any request with a chunked body.
//!   These answers are not counted in `eye_http_requests_total`: no route ran.
//! - every request carries its [`Client`] (the peer, and the client's address behind
//!   `trusted_proxies`), for handlers and for the log line of each `401` and `503`.
//!
//! CORS (`cors_allowed_origins`) wraps the API routes only; preflight requests are answered
//! by the CORS layer itself, before any route, so they need no credentials.
//!
//! `/healthz`, `/readyz` and `/metrics` are served on the main listener, or, when the
//! service has an ops listener, only there (the main listener then answers them `404`).
//!
//! Shutdown drains in two steps (see [`crate::drain`]): `/readyz` turns 503 `draining` when
//! the signal arrives, and the listeners close `EYE_HTTP_DRAIN_DELAY_MS` later.

use crate::client::{Client, TrustedProxies};
use crate::config::HttpConfig;
use crate::conformance;
use crate::conn::{HeadTimer, Heads, Tap};
use crate::drain::Drain;
use crate::error::recover;
use crate::ops;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use warp::filters::BoxedFilter;
use warp::http::{Method, Request, StatusCode, Uri};
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// How long requests in flight may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a browser may reuse a preflight answer, so that not every API call costs two
/// requests.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Where a service listens.
pub struct Listeners {
    pub main: TcpListener,
    /// When set, the operational routes are answered here and only here, so they can sit
    /// on an address the public cannot reach.
    pub ops: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(main: TcpListener) -> Self {
        Self { main, ops: None }
    }
}

impl Listeners {
    /// `main`, and a listener bound to `ops_addr` when one is configured.
    pub async fn bind_ops(
        main: TcpListener,
        ops_addr: Option<SocketAddr>,
    ) -> std::io::Result<Self> {
        let ops = match ops_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("binding the ops address {addr}: {e}"))
            })?),
            None => None,
        };
        Ok(Self { main, ops })
    }

    /// The address of the ops listener, if there is one.
    pub fn ops_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.ops.as_ref().map(TcpListener::local_addr).transpose()
    }
}

/// Serves `routes` until `shutdown` resolves; then begins `drain` (the `/readyz` among
/// `routes` must have been given the same one), keeps serving until `drain_delay_ms` has
/// passed since draining began, stops accepting and lets requests in flight finish, for at
/// most [`DRAIN_TIMEOUT`]: a request may take longer than a deployment can wait.
pub async fn serve<F, R>(
    routes: F,
    listeners: impl Into<Listeners>,
    http: &HttpConfig,
    drain: &Drain,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let Listeners { main, ops } = listeners.into();
    let ops_part = only(Part::Ops)
        .and(routes.clone())
        .map(R::into_response)
        .boxed();
    let api_part = api(routes, http);
    let (main_routes, ops_server) = match ops {
        None => (ops_part.or(api_part).unify().boxed(), None),
        Some(listener) => (api_part, Some((ops_part, listener))),
    };

    // Both listeners stop accepting at the same moment, and the drain deadline starts then.
    let delay = Duration::from_millis(http.drain_delay_ms);
    let drain = drain.clone();
    let shutdown = async move {
        shutdown.await;
        drain.begin();
        drain.elapsed(delay).await;
        tracing::info!(drain_delay = ?delay, "no longer accepting connections; answering those in flight");
    }
    .boxed()
    .shared();
    let deadline = shutdown
        .clone()
        .then(|()| tokio::time::sleep(DRAIN_TIMEOUT));
    let main_server = run(main_routes, main, http, shutdown.clone());
    let ops_server = async {
        if let Some((routes, listener)) = ops_server {
            run(routes, listener, http, shutdown).await;
        }
    };
    tokio::select! {
        _ = futures::future::join(main_server, ops_server) => {}
        () = deadline => tracing::warn!(timeout = ?DRAIN_TIMEOUT, "connections still open after the drain timeout; closing them"),
    }
}

/// Serves `listener` until `signal`, then closes it and waits for its connections to
/// finish what they are answering.
async fn run(
    routes: BoxedFilter<(Response,)>,
    listener: TcpListener,
    http: &HttpConfig,
    signal: impl Future<Output = ()>,
) {
    let server = Server::new(routes, http);
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, say: the server goes on once some are freed.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let connection = graceful.watch(server.connection(tcp, peer));
        tokio::spawn(async move {
            // Clients that leave, time out or send what hyper refuses end here.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// What every connection of one listener shares.
struct Server {
    /// The routes, every rejection answered.
    routes: BoxedFilter<(Response,)>,
    http1: http1::Builder,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_header_bytes: usize,
    trusted: Arc<TrustedProxies>,
}

impl Server {
    fn new(routes: BoxedFilter<(Response,)>, http: &HttpConfig) -> Self {
        let header_read_timeout = Duration::from_millis(http.header_read_timeout_ms);
        let mut http1 = http1::Builder::new();
        http1
            .max_header_size(http.max_header_bytes)
            .max_buf_size(http.max_header_bytes)
            .header_read_timeout(header_read_timeout)
            .keep_alive(true);
        Self {
            routes: routes.recover(recover).unify().boxed(),
            http1,
            header_read_timeout,
            idle_timeout: Duration::from_millis(http.idle_timeout_ms.max(1)),
            max_header_bytes: http.max_header_bytes,
            trusted: Arc::new(http.trusted_proxies.clone()),
        }
    }

    /// hyper serving one accepted connection.
    fn connection(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> http1::Connection<
        TokioIo<Tap>,
        impl hyper::service::Service<
                Request<Incoming>,
                Response = Response,
                Error = Infallible,
                Future = impl Future<Output = Result<Response, Infallible>> + Send,
            > + Send,
    > {
        let _ = tcp.set_nodelay(true);
        let heads = Heads::new(self.max_header_bytes);
        let io = TokioIo::new(Tap::new(tcp, self.idle_timeout, heads.clone()));
        let service = TowerToHyperService::new(warp::service(self.routes.clone()));
        let timer = HeadTimer::new(heads.clone(), self.header_read_timeout);
        let trusted = self.trusted.clone();
        let serve = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let raw = heads.take();
            let client = Client::of(peer, req.headers(), &trusted);
            req.extensions_mut().insert(client);
            let (method, uri) = (req.method().clone(), req.uri().clone());
            let service = service.clone();
            async move {
                let res = conformance::serve(req, &raw, |req| service.call(req)).await;
                log_refusal(&client, &method, &uri, res.status());
                Ok::<_, Infallible>(res)
            }
        });
        self.http1.clone().timer(timer).serve_connection(io, serve)
    }
}

/// Says who was refused credentials or turned away as unavailable, so that an operator can
/// tell one misbehaving client from many. Operational routes are left out: a probe during
/// draining is no refusal.
fn log_refusal(client: &Client, method: &Method, uri: &Uri, status: StatusCode) {
    let path = uri.path();
    if ops::is_ops_path(path) {
        return;
    }
    match status {
        StatusCode::UNAUTHORIZED => {
            tracing::info!(client_ip = %client.ip, peer = %client.peer, %method, path, "credentials refused (401)");
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            tracing::info!(client_ip = %client.ip, peer = %client.peer, %method, path, "service unavailable (503)");
        }
        _ => {}
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Ops,
    Api,
}

/// Passes requests whose path belongs to `part`, rejects the others as not found.
fn only(part: Part) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::path::full()
        .and_then(move |path: FullPath| async move {
            let is_ops = ops::is_ops_path(path.as_str());
            match (part, is_ops) {
                (Part::Ops, true) | (Part::Api, false) => Ok(()),
                _ => Err(warp::reject::not_found()),
            }
        })
        .untuple_one()
}

/// The API part of `routes`, behind CORS when origins are configured.
fn api<F, R>(routes: F, http: &HttpConfig) -> BoxedFilter<(Response,)>
where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    match cors(http) {
        Some(cors) => only(Part::Api)
            .and(routes.with(cors))
            .map(Reply::into_response)
            .boxed(),
        None => only(Part::Api).and(routes).map(R::into_response).boxed(),
    }
}

/// The CORS policy of `http`, or `None` when no origin is allowed (CORS off: requests are
/// served as before, and browsers keep other sites from reading the answers).
pub fn cors(http: &HttpConfig) -> Option<warp::cors::Builder> {
    let origins = &http.cors_allowed_origins;
    if origins.is_empty() {
        return None;
    }
    let cors = warp::cors()
        .allow_methods(["GET", "POST", "OPTIONS"])
        .allow_headers(["authorization", "content-type", "content-encoding"])
        // Clients are told to wait this long on 503 and 429.
        .expose_header("retry-after")
        .max_age(PREFLIGHT_MAX_AGE);
    // `HttpConfig::check` has refused anything but a lone `*` or well-formed origins, which
    // `allow_origins` would otherwise panic on.
    Some(if origins.iter().any(|o| o == "*") {
        cors.allow_any_origin()
    } else {
        cors.allow_origins(origins.iter().map(String::as_str))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves `POST /hit`, which counts its calls, until the returned sender fires.
    async fn start(hits: Arc<AtomicUsize>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let routes = warp::path("hit")
            .and(warp::post())
            .and(warp::body::bytes())
            .map(move |_| {
                hits.fetch_add(1, Ordering::SeqCst);
                "hit"
            })
            .recover(recover);
        start_with(routes, &[]).await
    }

    /// Serves `routes` with the `EYE_HTTP_*` settings `vars` until the returned sender fires.
    async fn start_with<F, R>(
        routes: F,
        vars: &[(&str, &str)],
    ) -> (SocketAddr, tokio::sync::oneshot::Sender<()>)
    where
        F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
        R: Reply + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        let http: HttpConfig = eye_runtime::config::from_iter(vars).expect("settings");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            serve(routes, listener, &http, &Drain::new(), async {
                let _ = stopped.await;
            })
            .await;
        });
        (addr, stop)
    }

    /// Sends `request` on a new connection; returns what came back and whether the server
    /// closed the connection within five seconds.
    async fn exchange(addr: SocketAddr, request: &str) -> (String, bool) {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request.as_bytes()).await.expect("write");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
                Err(_) => break false,
                Ok(Ok(0) | Err(_)) => break true,
                Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            }
        };
        (String::from_utf8_lossy(&seen).into_owned(), closed)
    }

    /// The status of every response in `seen` (a refusal's message may say `HTTP/1.1` too).
    fn statuses(seen: &str) -> Vec<&str> {
        seen.match_indices("HTTP/1.")
            .filter_map(|(i, _)| seen.get(i + 9..i + 12))
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .collect()
    }

    const HIT: &str = "POST /hit HTTP/1.1\r\nhost: eye\r\ncontent-length: 0\r\n\r\n";

    #[tokio::test(flavor = "multi_thread")]
    async fn a_head_breaking_rfc_9112_is_refused_before_any_route_and_its_connection_closed() {
        let hits = Arc::new(AtomicUsize::new(0));
        let (addr, stop) = start(hits.clone()).await;

        // Control: a keep-alive connection carries two requests, and both run.
        let last = HIT.replace("host: eye\r\n", "host: eye\r\nconnection: close\r\n");
        let (seen, _) = exchange(addr, &format!("{HIT}{last}")).await;
        assert_eq!(statuses(&seen), ["200", "200"], "{seen}");
        assert_eq!(hits.swap(0, Ordering::SeqCst), 2);

        // Both framings, in either order: the request is refused unread, and the one hidden
        // in its body never runs.
        let body = format!("0\r\n\r\n{HIT}");
        for framing in [
            format!(
                "content-length: {}\r\ntransfer-encoding: chunked\r\n",
                body.len()
            ),
            format!(
                "transfer-encoding: chunked\r\ncontent-length: {}\r\n",
                body.len()
            ),
        ] {
            let smuggled = format!("POST /hit HTTP/1.1\r\nhost: eye\r\n{framing}\r\n{body}");
            let (seen, closed) = exchange(addr, &smuggled).await;
            assert_eq!(statuses(&seen), ["400"], "{framing}: {seen}");
            assert!(seen.contains("\"code\":\"invalid_framing\""), "{seen}");
            assert!(seen.contains("connection: close\r\n"), "{seen}");
            assert!(closed, "the connection stayed open: {seen}");
            assert_eq!(hits.swap(0, Ordering::SeqCst), 0, "{framing}");
        }

        // A chunked body alone: the request runs on it, and the connection closes after it,
        // so what follows never runs.
        let chunked =
            format!("POST /hit HTTP/1.1\r\nhost: eye\r\ntransfer-encoding: chunked\r\n\r\n{body}");
        let (seen, closed) = exchange(addr, &chunked).await;
        assert_eq!(statuses(&seen), ["200"], "{seen}");
        assert!(closed, "the connection stayed open: {seen}");
        assert_eq!(hits.swap(0, Ordering::SeqCst), 1);

        // Host: none or two in HTTP/1.1 is refused; none in HTTP/1.0 is served.
        for head in [
            "POST /hit HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            "POST /hit HTTP/1.1\r\nhost: eye\r\nhost: eye\r\ncontent-length: 0\r\n\r\n",
        ] {
            let (seen, closed) = exchange(addr, &format!("{head}{HIT}")).await;
            assert_eq!(statuses(&seen), ["400"], "{seen}");
            assert!(seen.contains("\"code\":\"invalid_host\""), "{seen}");
            assert!(closed, "the connection stayed open: {seen}");
        }
        assert_eq!(hits.swap(0, Ordering::SeqCst), 0);
        let (seen, _) = exchange(addr, "POST /hit HTTP/1.0\r\ncontent-length: 0\r\n\r\n").await;
        assert_eq!(statuses(&seen), ["200"], "{seen}");
        assert_eq!(hits.swap(0, Ordering::SeqCst), 1);
        let _ = stop.send(());
    }

    /// What a route reads with [`crate::client`]: the socket's peer, and the client behind
    /// it only when that peer is a trusted proxy.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_route_sees_the_peer_and_believes_forwarded_for_only_from_a_trusted_proxy() {
        let echo = crate::client().map(|client: Option<Client>| match client {
            Some(c) => format!("peer={} ip={}", c.peer, c.ip),
            None => "no client".to_owned(),
        });
        let forwarded = "x-forwarded-for: 198.51.100.1, 203.0.113.7\r\n";
        for (trusted, xff, want_ip) in [
            ("", "", "127.0.0.1"),
            ("", forwarded, "127.0.0.1"),
            ("10.0.0.0/8", forwarded, "127.0.0.1"),
            ("127.0.0.1", "", "127.0.0.1"),
            ("127.0.0.1", forwarded, "203.0.113.7"),
            ("127.0.0.0/8,203.0.113.0/24", forwarded, "198.51.100.1"),
        ] {
            let (addr, stop) = start_with(echo, &[("EYE_HTTP_TRUSTED_PROXIES", trusted)]).await;
            let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let port = tcp.local_addr().expect("local address").port();
            let request = format!("GET / HTTP/1.1\r\nhost: eye\r\n{xff}connection: close\r\n\r\n");
            tcp.write_all(request.as_bytes()).await.expect("write");
            let mut seen = String::new();
            tcp.read_to_string(&mut seen).await.expect("read");
            let case = format!("trusted {trusted:?}, {xff:?}");
            assert_eq!(statuses(&seen), ["200"], "{case}: {seen}");
            assert!(
                seen.ends_with(&format!("peer=127.0.0.1:{port} ip={want_ip}")),
                "{case}: {seen}"
            );
            let _ = stop.send(());
        }
    }
}
