//! HTTP plumbing shared by The Eye's services. `eye-common` never imports warp; this crate
//! is where the services' common HTTP behaviour lives:
//! - [`error`]: the one JSON error shape, and the `recover` that maps every rejection to it;
//! - [`ops`]: `/healthz`, `/readyz` and `/metrics`;
//! - [`metrics`]: request counts and latencies by route and status;
//! - [`serve`]: running a filter on a bound listener until shutdown.

pub mod error;
pub mod metrics;
pub mod ops;

use std::future::Future;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use warp::Filter;

/// Serves `routes` on `listener` until `shutdown` resolves, then lets requests in flight
/// finish before returning.
pub async fn serve<F>(routes: F, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static)
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    warp::serve(routes)
        .serve_incoming_with_graceful_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
}
