//! HTTP plumbing shared by The Eye's services. `eye-common` never imports warp; this crate
//! is where the services' common HTTP behaviour lives:
//! - [`auth`]: the credential filter, its 401/403/429 mapping and `POST /oauth/token`;
//! - [`error`]: the one JSON error shape, and the `recover` that maps every rejection to it;
//! - [`ops`]: `/healthz`, `/readyz` and `/metrics`;
//! - [`metrics`]: request counts and latencies by route and status;
//! - [`openapi`]: `GET /openapi.json`, the OpenAPI description of the ingest and query APIs;
//! - [`serve`]: running a filter on a bound listener until shutdown.

pub mod auth;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod ops;

use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use warp::Filter;

/// How long requests in flight may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `routes` on `listener` until `shutdown` resolves, then stops accepting and lets
/// requests in flight finish, for at most [`DRAIN_TIMEOUT`]. The bound matters because
/// hyper's graceful shutdown also waits for idle keep-alive connections, which a client
/// may hold open indefinitely.
pub async fn serve<F>(
    routes: F,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let server = warp::serve(routes).serve_incoming_with_graceful_shutdown(
        TcpListenerStream::new(listener),
        async move {
            shutdown.await;
            let _ = draining_tx.send(());
        },
    );
    let deadline = async move {
        if draining_rx.await.is_ok() {
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = server => {}
        () = deadline => tracing::warn!(timeout = ?DRAIN_TIMEOUT, "connections still open after the drain timeout; closing them"),
    }
}
