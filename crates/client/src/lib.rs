//! `eye-client`: send events to The Eye and read them back.
//!
//! **Sending** goes through a bounded queue and a background batcher: events are cut into
//! batches by count, bytes and linger time, gzipped, and sent with up to `max_in_flight`
//! requests at once. Each event gets its `event_id` when queued (a UUIDv7 unless given),
//! so a retry resends the same ids and the pipeline stores each event once. Requests are
//! retried with exponential backoff and jitter while ingest answers 429, 503 (honouring
//! `Retry-After`), another 5xx or nothing, until a deadline; any other 4xx is never
//! retried. What became of every event reaches the caller through
//! [`ClientBuilder::on_outcome`] and [`Client::stats`]; [`Client::flush`] waits until
//! everything queued so far is answered for.
//!
//! **Reading** is typed: the answers are the `eye_model::api` types the query service
//! itself serializes. Listings are `Stream`s that follow the keyset cursors.
//!
//! ```no_run
//! use eye_client::{Client, Credentials, NewEvent};
//! # async fn run() -> Result<(), eye_client::ClientError> {
//! let client = Client::builder("http://127.0.0.1:8080", Credentials::api_key("eye_…"))
//!     .query_url("http://127.0.0.1:8081")
//!     .build()?;
//! client
//!     .send(NewEvent::new("session-1", "page_interaction", "page_view", "2024-05-01T10:00:00Z"))
//!     .await?;
//! client.flush().await;
//! let session = client.session_events("session-1").await?;
//! println!("{} events", session.events.len());
//! # Ok(()) }
//! ```
//!
//! The builder spawns the batcher on the current tokio runtime.

#![warn(missing_docs)]

mod credentials;
mod error;
mod read;
mod retry;
mod send;

pub use credentials::Credentials;
pub use error::ClientError;
pub use eye_model::api::{self, NewEvent};
pub use read::{AggregateQuery, EventQuery, RejectedQuery};
pub use retry::RetryPolicy;
pub use send::{FullQueue, Outcome, OutcomeCallback, OutcomeKind, SendConfig, SendStats};

use credentials::Auth;
use send::{Command, Counters, Ctx, Queued};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// A handle to one sender and reader; cheap to clone, shared by every clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    auth: Arc<Auth>,
    query: Option<reqwest::Url>,
    send_config: SendConfig,
    counters: Arc<Counters>,
    /// `None` once shut down.
    queue: Mutex<Option<mpsc::Sender<Command>>>,
    batcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Settings of a [`Client`]; [`Client::builder`] starts one.
pub struct ClientBuilder {
    ingest: String,
    query: Option<String>,
    credentials: Credentials,
    send: SendConfig,
    timeout: Duration,
    on_outcome: Option<OutcomeCallback>,
}

impl ClientBuilder {
    /// The query service's base URL, for the reads.
    pub fn query_url(mut self, url: impl Into<String>) -> Self {
        self.query = Some(url.into());
        self
    }

    /// Every batching, queueing and retry setting at once.
    pub fn send_config(mut self, config: SendConfig) -> Self {
        self.send = config;
        self
    }

    /// Most events per request (default 500).
    pub fn max_batch_events(mut self, n: usize) -> Self {
        self.send.max_batch_events = n.max(1);
        self
    }

    /// Most bytes of event JSON per request, before gzip (default 1 MiB).
    pub fn max_batch_bytes(mut self, n: usize) -> Self {
        self.send.max_batch_bytes = n.max(1);
        self
    }

    /// Longest an event waits for its batch to fill (default 200 ms).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.send.linger = linger;
        self
    }

    /// The queue's bound in events (default 100,000) and what `send` does when it is full.
    pub fn queue(mut self, capacity: usize, when_full: FullQueue) -> Self {
        self.send.queue_capacity = capacity.max(1);
        self.send.full_queue = when_full;
        self
    }

    /// Requests in flight at once (default 4).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.send.max_in_flight = n.max(1);
        self
    }

    /// Gzip request bodies (default on).
    pub fn gzip(mut self, on: bool) -> Self {
        self.send.gzip = on;
        self
    }

    /// Backoff bounds and the deadline after which a batch's events are reported failed
    /// (default 100 ms to 10 s, 5 minutes).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.send.retry = policy;
        self
    }

    /// Time limit of one HTTP request (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Called with what became of each event, from the batcher's tasks: keep it quick.
    pub fn on_outcome(mut self, f: impl Fn(&Outcome) + Send + Sync + 'static) -> Self {
        self.on_outcome = Some(Arc::new(f));
        self
    }

    /// Builds the client and starts its batcher on the current tokio runtime.
    pub fn build(self) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ClientError::transport(&self.ingest, e))?;
        let ingest = parse_url(&self.ingest)?;
        let query = self.query.as_deref().map(parse_url).transpose()?;
        let auth = Arc::new(Auth::new(
            self.credentials,
            join(&ingest, &["oauth", "token"]).to_string(),
            http.clone(),
        ));
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(self.send.queue_capacity.max(1));
        let ctx = Arc::new(Ctx {
            http: http.clone(),
            auth: auth.clone(),
            url: join(&ingest, &["v1", "events"]).to_string(),
            config: self.send.clone(),
            counters: counters.clone(),
            on_outcome: self.on_outcome,
        });
        let batcher = tokio::spawn(send::run(rx, ctx));
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                auth,
                query,
                send_config: self.send,
                counters,
                queue: Mutex::new(Some(tx)),
                batcher: Mutex::new(Some(batcher)),
            }),
        })
    }
}

impl Client {
    /// A client sending to the ingest service at `ingest_url` (e.g.
    /// `http://127.0.0.1:8080`) with `credentials`.
    pub fn builder(ingest_url: impl Into<String>, credentials: Credentials) -> ClientBuilder {
        ClientBuilder {
            ingest: ingest_url.into(),
            query: None,
            credentials,
            send: SendConfig::default(),
            timeout: Duration::from_secs(30),
            on_outcome: None,
        }
    }

    /// Queues `event`; returns its `event_id`. Waits for room or fails at once when the
    /// queue is full, by the builder's [`FullQueue`].
    pub async fn send(&self, event: NewEvent) -> Result<Uuid, ClientError> {
        self.enqueue(Queued::from_event(event)?).await
    }

    /// Queues an event given as JSON, as `POST /v1/events` takes it (the server checks it;
    /// an `event_id` is added when absent).
    pub async fn send_json(&self, event: Map<String, Value>) -> Result<Uuid, ClientError> {
        self.enqueue(Queued::new(event)?).await
    }

    /// Queues an event given as JSON text (one line of an NDJSON file, say) without
    /// building it: the fastest way to send what is already JSON. Its `event_id` is kept,
    /// or one is added; anything else is for the server to check.
    pub async fn send_text(&self, event: &str) -> Result<Uuid, ClientError> {
        self.enqueue(Queued::from_text(event)?).await
    }

    async fn enqueue(&self, item: Queued) -> Result<Uuid, ClientError> {
        let queue = self.queue()?;
        let policy = self.inner.send_config.full_queue;
        send::enqueue(&queue, &self.inner.counters, policy, item).await
    }

    /// Queues every event of `events`, in order; stops at the first that cannot be queued.
    pub async fn send_all(
        &self,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Result<Vec<Uuid>, ClientError> {
        let mut ids = Vec::new();
        for e in events {
            ids.push(self.send(e).await?);
        }
        Ok(ids)
    }

    /// Waits until every event queued before the call is accepted, rejected or failed.
    pub async fn flush(&self) {
        let Ok(queue) = self.queue() else { return };
        let (done, answered) = oneshot::channel();
        if queue.send(Command::Flush(done)).await.is_ok() {
            let _ = answered.await;
        }
    }

    /// Sends what is queued, waits for every answer, and stops the batcher; later sends
    /// fail with [`ClientError::Closed`].
    pub async fn shutdown(&self) {
        let queue = self.inner.queue.lock().ok().and_then(|mut q| q.take());
        drop(queue);
        let batcher = self.inner.batcher.lock().ok().and_then(|mut b| b.take());
        if let Some(batcher) = batcher {
            let _ = batcher.await;
        }
    }

    /// The sender's counters.
    pub fn stats(&self) -> SendStats {
        self.inner.counters.snapshot()
    }

    fn queue(&self) -> Result<mpsc::Sender<Command>, ClientError> {
        self.inner
            .queue
            .lock()
            .ok()
            .and_then(|q| q.clone())
            .ok_or(ClientError::Closed)
    }
}

fn parse_url(text: &str) -> Result<reqwest::Url, ClientError> {
    let url = reqwest::Url::parse(text).map_err(|e| ClientError::Transport {
        url: text.to_owned(),
        message: format!("not a URL: {e}"),
        connect: false,
    })?;
    if url.cannot_be_a_base() {
        return Err(ClientError::Transport {
            url: text.to_owned(),
            message: "not a base URL".into(),
            connect: false,
        });
    }
    Ok(url)
}

/// `base` with `segments` appended to its path, each percent-encoded.
fn join(base: &reqwest::Url, segments: &[&str]) -> reqwest::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_the_base_and_encode_each_segment() {
        let cases = [
            (
                "http://h:8081",
                vec!["v1", "events"],
                "http://h:8081/v1/events",
            ),
            (
                "http://h:8081/",
                vec!["v1", "events"],
                "http://h:8081/v1/events",
            ),
            (
                "http://h/eye/",
                vec!["v1", "sessions", "a/b c"],
                "http://h/eye/v1/sessions/a%2Fb%20c",
            ),
        ];
        for (base, segments, want) in cases {
            let base = parse_url(base).expect("URL");
            assert_eq!(join(&base, &segments).as_str(), want);
        }
        assert!(parse_url("not a url").is_err());
        assert!(parse_url("mailto:x@y").is_err());
    }
}
