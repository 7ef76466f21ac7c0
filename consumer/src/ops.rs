//! Health and metrics beside the loop: `/healthz`, `/readyz` and `/metrics`.

use crate::clients::EventConsumer;
use eye_http::config::HttpConfig;
use eye_http::ops::ReadyCheck;
use eye_http::Drain;
use eye_store::Store;
use futures::FutureExt;
use prometheus::Registry;
use rdkafka::consumer::Consumer;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use warp::Filter;

/// `/readyz`: ClickHouse answers and the broker knows the events topic.
pub fn ready_check(store: Store, consumer: Arc<EventConsumer>, topic: String) -> ReadyCheck {
    Arc::new(move || {
        let store = store.clone();
        let consumer = consumer.clone();
        let topic = topic.clone();
        async move {
            store.ping().await.map_err(|e| format!("clickhouse: {e}"))?;
            tokio::task::spawn_blocking(move || {
                consumer
                    .fetch_metadata(Some(&topic), Duration::from_secs(2))
                    .map(|_| ())
                    .map_err(|e| format!("kafka: {e}"))
            })
            .await
            .map_err(|e| e.to_string())?
        }
        .boxed()
    })
}

/// Serves the operational routes on `listener` until `stop`; `/readyz` says draining from
/// the moment `drain` begins.
pub async fn serve(
    drain: Drain,
    registry: Registry,
    ready: ReadyCheck,
    listener: TcpListener,
    limits: HttpConfig,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let http = eye_http::metrics::HttpMetrics::new(&registry);
    let routes = eye_http::ops::routes(registry, ready, drain.clone())
        .recover(eye_http::error::recover)
        .with(http.log(|p| eye_http::metrics::ops_route(p).unwrap_or("other")));
    eye_http::serve(routes, listener, &limits, &drain, async {
        let _ = stop.await;
    })
    .await;
}
