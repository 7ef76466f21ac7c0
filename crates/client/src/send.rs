//! The sender: a bounded queue, a batcher task that cuts batches by events, bytes and
//! linger time, and up to `max_in_flight` deliveries at once, each retried until ingest
//! answers for every item or the deadline passes.
//!
//! Every event gets its `event_id` when it is queued (a UUIDv7 unless the caller gave
//! one), so a retry resends the same ids and ingest's consumer stores each event once.

use crate::credentials::Auth;
use crate::error::{retry_after, ClientError};
use crate::retry::{Retries, RetryPolicy};
use eye_model::api::{BatchResponse, ItemStatus, NewEvent};
use eye_model::event::FieldError;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

/// What `send` does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullQueue {
    /// Wait for room: the producer slows to what ingest takes.
    #[default]
    Wait,
    /// Refuse the event at once with [`ClientError::QueueFull`] (counted in
    /// [`SendStats::queue_full`]): for producers that must never block.
    FailFast,
}

/// How the sender batches, queues and retries.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// Most events in one request (ingest takes up to 1,000 by default).
    pub max_batch_events: usize,
    /// Most bytes of event JSON in one request, before gzip (ingest takes 5 MiB as sent).
    pub max_batch_bytes: usize,
    /// Longest an event waits for its batch to fill before the batch is sent anyway.
    pub linger: Duration,
    /// Most events queued and not yet answered for: the queue's bound.
    pub queue_capacity: usize,
    /// What `send` does when the queue is full.
    pub full_queue: FullQueue,
    /// Requests in flight at once: the pipelining that keeps a fast link busy.
    pub max_in_flight: usize,
    /// Compress request bodies (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Backoff and deadline of retries.
    pub retry: RetryPolicy,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            max_batch_events: 500,
            max_batch_bytes: 1024 * 1024,
            linger: Duration::from_millis(200),
            queue_capacity: 100_000,
            full_queue: FullQueue::Wait,
            max_in_flight: 4,
            gzip: true,
            retry: RetryPolicy::default(),
        }
    }
}

/// What became of one event.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The event's id, as sent.
    pub event_id: Uuid,
    /// Accepted, rejected (why) or failed (why).
    pub kind: OutcomeKind,
    /// The event as sent (JSON text), so a caller can report or keep what was refused.
    pub event: Arc<str>,
}

/// The verdict on one event.
#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeKind {
    /// Acknowledged by ingest's broker: it will be stored, once.
    Accepted,
    /// Broke a rule: quarantined by ingest, never stored; each error names the field (a
    /// JSON Pointer into the event) and the rule's code.
    Rejected(Vec<FieldError>),
    /// Not delivered: the request was refused as a whole (401, 413, …) or was still
    /// failing when the retry deadline passed. The text says why.
    Failed(String),
}

/// Counters since the client was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Queued and not yet answered for.
    pub queued: u64,
    /// Acknowledged by ingest.
    pub accepted: u64,
    /// Refused by a rule (quarantined).
    pub rejected: u64,
    /// Not delivered.
    pub failed: u64,
    /// Events refused by `FullQueue::FailFast`.
    pub queue_full: u64,
    /// HTTP requests made, retries included.
    pub requests: u64,
    /// Of those, the ones that were retries.
    pub retries: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    queued: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    queue_full: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SendStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SendStats {
            queued: get(&self.queued),
            accepted: get(&self.accepted),
            rejected: get(&self.rejected),
            failed: get(&self.failed),
            queue_full: get(&self.queue_full),
            requests: get(&self.requests),
            retries: get(&self.retries),
        }
    }
}

/// What [`crate::ClientBuilder::on_outcome`] takes.
pub type OutcomeCallback = Arc<dyn Fn(&Outcome) + Send + Sync>;

/// An event in the queue: its id and its JSON, the id included.
pub(crate) struct Queued {
    id: Uuid,
    /// JSON text, checked when queued; shared with the outcome.
    json: Arc<str>,
}

impl Queued {
    /// A typed event, given an id unless it has one, rendered once.
    pub(crate) fn from_event(mut event: NewEvent) -> Result<Self, ClientError> {
        let id = *event.event_id.get_or_insert_with(Uuid::now_v7);
        let json = serde_json::to_string(&event)
            .map_err(|e| ClientError::Decode(format!("event: {e}")))?;
        Ok(Self {
            id,
            json: Arc::from(json),
        })
    }

    /// Gives the event an id unless it has one, and renders it once.
    pub(crate) fn new(mut event: Map<String, Value>) -> Result<Self, ClientError> {
        let id = match event.get("event_id").and_then(Value::as_str) {
            Some(text) => Uuid::parse_str(text).unwrap_or_else(|_| Uuid::nil()),
            None => {
                let id = Uuid::now_v7();
                event.insert("event_id".into(), Value::String(id.to_string()));
                id
            }
        };
        let json = serde_json::to_string(&event)
            .map_err(|e| ClientError::Decode(format!("event: {e}")))?;
        Ok(Self {
            id,
            json: Arc::from(json),
        })
    }
}

impl Queued {
    /// An event given as JSON text: its `event_id` read without building the event, and
    /// one spliced in at the front when it has none. The text is not checked further: the
    /// server does that, and reports per item.
    pub(crate) fn from_text(text: &str) -> Result<Self, ClientError> {
        #[derive(serde::Deserialize)]
        struct Probe<'a> {
            #[serde(borrow, default)]
            event_id: Option<&'a RawValue>,
        }
        if !text.trim_start().starts_with('{') {
            return Err(ClientError::Decode("an event must be a JSON object".into()));
        }
        let probe: Probe<'_> = serde_json::from_str(text)
            .map_err(|e| ClientError::Decode(format!("not a JSON object: {e}")))?;
        let (id, json) = match probe.event_id {
            // Not a UUID (or not text): sent as given, for the server to refuse.
            Some(given) => (
                serde_json::from_str::<Uuid>(given.get()).unwrap_or_else(|_| Uuid::nil()),
                text.trim().to_owned(),
            ),
            None => {
                let id = Uuid::now_v7();
                let rest = text.trim_start().strip_prefix('{').unwrap_or(text).trim();
                let sep = if rest.starts_with('}') { "" } else { "," };
                (id, format!("{{\"event_id\":\"{id}\"{sep}{rest}"))
            }
        };
        // Parsing the probe checked the whole text as JSON; an id spliced into an object
        // keeps it so.
        Ok(Self {
            id,
            json: Arc::from(json),
        })
    }
}

pub(crate) enum Command {
    Event(Queued),
    /// Answered once everything queued before it is answered for.
    Flush(oneshot::Sender<()>),
}

/// What every delivery shares.
pub(crate) struct Ctx {
    pub(crate) http: reqwest::Client,
    pub(crate) auth: Arc<Auth>,
    pub(crate) url: String,
    pub(crate) config: SendConfig,
    pub(crate) counters: Arc<Counters>,
    pub(crate) on_outcome: Option<OutcomeCallback>,
}

impl Ctx {
    fn report(&self, item: &Queued, kind: OutcomeKind) {
        let counter = match kind {
            OutcomeKind::Accepted => &self.counters.accepted,
            OutcomeKind::Rejected(_) => &self.counters.rejected,
            OutcomeKind::Failed(_) => &self.counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.counters.queued.fetch_sub(1, Ordering::Relaxed);
        if let Some(f) = &self.on_outcome {
            f(&Outcome {
                event_id: item.id,
                kind,
                event: item.json.clone(),
            });
        }
    }
}

/// Puts `item` in the queue by `policy`.
pub(crate) async fn enqueue(
    queue: &mpsc::Sender<Command>,
    counters: &Counters,
    policy: FullQueue,
    item: Queued,
) -> Result<Uuid, ClientError> {
    let id = item.id;
    counters.queued.fetch_add(1, Ordering::Relaxed);
    let sent = match policy {
        FullQueue::Wait => queue
            .send(Command::Event(item))
            .await
            .map_err(|_| ClientError::Closed),
        FullQueue::FailFast => queue.try_send(Command::Event(item)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                counters.queue_full.fetch_add(1, Ordering::Relaxed);
                ClientError::QueueFull
            }
            mpsc::error::TrySendError::Closed(_) => ClientError::Closed,
        }),
    };
    if sent.is_err() {
        counters.queued.fetch_sub(1, Ordering::Relaxed);
    }
    sent.map(|()| id)
}

/// The batcher: runs until every handle to the queue is gone, then sends what is left.
pub(crate) async fn run(mut queue: mpsc::Receiver<Command>, ctx: Arc<Ctx>) {
    let slots = Arc::new(Semaphore::new(ctx.config.max_in_flight.max(1)));
    let mut deliveries = JoinSet::new();
    let mut batch = Batch::default();
    loop {
        let linger = batch.due.map(tokio::time::Instant::from_std);
        let command = match linger {
            Some(due) => tokio::select! {
                c = queue.recv() => c,
                () = tokio::time::sleep_until(due) => {
                    dispatch(&mut batch, &ctx, &slots, &mut deliveries).await;
                    continue;
                }
            },
            None => queue.recv().await,
        };
        match command {
            Some(Command::Event(item)) => {
                let size = item.json.len();
                if !batch.items.is_empty() && batch.bytes + size > ctx.config.max_batch_bytes {
                    dispatch(&mut batch, &ctx, &slots, &mut deliveries).await;
                }
                batch.push(item, ctx.config.linger);
                if batch.items.len() >= ctx.config.max_batch_events
                    || batch.bytes >= ctx.config.max_batch_bytes
                {
                    dispatch(&mut batch, &ctx, &slots, &mut deliveries).await;
                }
            }
            Some(Command::Flush(done)) => {
                dispatch(&mut batch, &ctx, &slots, &mut deliveries).await;
                while deliveries.join_next().await.is_some() {}
                let _ = done.send(());
            }
            None => {
                dispatch(&mut batch, &ctx, &slots, &mut deliveries).await;
                while deliveries.join_next().await.is_some() {}
                return;
            }
        }
        while deliveries.try_join_next().is_some() {}
    }
}

#[derive(Default)]
struct Batch {
    items: Vec<Queued>,
    bytes: usize,
    /// When the batch goes out even if not full: its first event's time plus the linger.
    due: Option<std::time::Instant>,
}

impl Batch {
    fn push(&mut self, item: Queued, linger: Duration) {
        if self.items.is_empty() {
            self.due = Some(std::time::Instant::now() + linger);
        }
        self.bytes += item.json.len();
        self.items.push(item);
    }
}

/// Hands the batch to a delivery once one of the in-flight slots is free.
async fn dispatch(
    batch: &mut Batch,
    ctx: &Arc<Ctx>,
    slots: &Arc<Semaphore>,
    deliveries: &mut JoinSet<()>,
) {
    let batch = std::mem::take(batch);
    if batch.items.is_empty() {
        return;
    }
    let Ok(slot) = slots.clone().acquire_owned().await else {
        return;
    };
    let ctx = ctx.clone();
    deliveries.spawn(async move {
        deliver(&ctx, batch.items).await;
        drop(slot);
    });
}

/// Sends `items` until ingest has answered for each, or reports the rest failed.
async fn deliver(ctx: &Ctx, mut items: Vec<Queued>) {
    let mut retries = Retries::new(&ctx.config.retry);
    let mut token_renewed = false;
    loop {
        let answer = post(ctx, &items).await;
        let retry_after = match answer {
            Ok(answer) => {
                items = settle(ctx, items, answer);
                if items.is_empty() {
                    return;
                }
                // Items the broker did not take: send them again, as after a 503.
                None
            }
            Err(e)
                if e.status() == Some(401) && !token_renewed && ctx.auth.forget_token().await =>
            {
                token_renewed = true;
                continue;
            }
            Err(e) if e.is_retryable() => {
                tracing::debug!(error = %e, events = items.len(), "retrying a batch");
                match retries.next_pause(e.retry_after()) {
                    Some(pause) => {
                        ctx.counters.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                    None => {
                        let why = format!("gave up after {} attempts: {e}", retries.attempts);
                        return fail_all(ctx, items, &why);
                    }
                }
            }
            Err(e) => return fail_all(ctx, items, &e.to_string()),
        };
        match retries.next_pause(retry_after) {
            Some(pause) => {
                ctx.counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(pause).await;
            }
            None => {
                let why = format!(
                    "not taken by the broker after {} attempts",
                    retries.attempts
                );
                return fail_all(ctx, items, &why);
            }
        }
    }
}

fn fail_all(ctx: &Ctx, items: Vec<Queued>, why: &str) {
    for item in &items {
        ctx.report(item, OutcomeKind::Failed(why.to_owned()));
    }
}

/// Reports each item ingest answered for; returns those to send again.
fn settle(ctx: &Ctx, items: Vec<Queued>, answer: BatchResponse) -> Vec<Queued> {
    let mut verdicts: Vec<Option<(ItemStatus, Vec<FieldError>)>> =
        (0..items.len()).map(|_| None).collect();
    for r in answer.results {
        if let Some(v) = verdicts.get_mut(r.index) {
            *v = Some((r.status, r.errors));
        }
    }
    let mut again = Vec::new();
    for (item, verdict) in items.into_iter().zip(verdicts) {
        match verdict {
            Some((ItemStatus::Accepted, _)) => ctx.report(&item, OutcomeKind::Accepted),
            Some((ItemStatus::Rejected, errors)) => {
                ctx.report(&item, OutcomeKind::Rejected(errors))
            }
            // Failed, or an answer that skipped it: sending it again is harmless.
            _ => again.push(item),
        }
    }
    again
}

/// One `POST /v1/events` of `items`: the batch answer (202, 207, or 400 with per-item
/// results), or why there is none.
async fn post(ctx: &Ctx, items: &[Queued]) -> Result<BatchResponse, ClientError> {
    let body = body(items, ctx.config.gzip);
    let auth = ctx.auth.header().await?;
    ctx.counters.requests.fetch_add(1, Ordering::Relaxed);
    let mut req = ctx
        .http
        .post(&ctx.url)
        .header(reqwest::header::AUTHORIZATION, auth)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if ctx.config.gzip {
        req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
    }
    let res = req
        .body(body)
        .send()
        .await
        .map_err(|e| ClientError::transport(&ctx.url, e))?;
    let status = res.status().as_u16();
    let retry_after = retry_after(res.headers());
    let text = res
        .text()
        .await
        .map_err(|e| ClientError::transport(&ctx.url, e))?;
    if matches!(status, 202 | 207 | 400) {
        if let Ok(answer) = serde_json::from_str::<BatchResponse>(&text) {
            return Ok(answer);
        }
    }
    if (200..300).contains(&status) {
        return Err(ClientError::Decode(format!("{status}: {text}")));
    }
    Err(ClientError::from_answer(status, retry_after, &text))
}

/// The items as a JSON array, gzipped when asked.
fn body(items: &[Queued], gzip: bool) -> Vec<u8> {
    let mut json = Vec::with_capacity(items.iter().map(|i| i.json.len() + 1).sum());
    json.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(item.json.as_bytes());
    }
    json.push(b']');
    if !gzip {
        return json;
    }
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(&json);
    encoder.finish().unwrap_or(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Read;

    fn queued(v: Value) -> Queued {
        match v {
            Value::Object(m) => Queued::new(m).expect("renders"),
            _ => panic!("an object"),
        }
    }

    #[test]
    fn each_event_gets_an_id_once() {
        let given = Uuid::now_v7();
        let cases = [
            (json!({"session_id": "s"}), None),
            (
                json!({"session_id": "s", "event_id": given.to_string()}),
                Some(given),
            ),
        ];
        for (event, want) in cases {
            let q = queued(event);
            let sent: Value = serde_json::from_str(&q.json).expect("JSON");
            assert_eq!(sent["event_id"], json!(q.id.to_string()));
            if let Some(want) = want {
                assert_eq!(q.id, want);
            } else {
                assert_eq!(q.id.get_version_num(), 7);
            }
        }
    }

    #[test]
    fn typed_events_keep_a_given_id_or_get_one() {
        let given = Uuid::now_v7();
        let event = || NewEvent::new("s", "c", "n", "2024-01-01T00:00:00Z");
        for (e, want) in [(event().with_event_id(given), Some(given)), (event(), None)] {
            let q = Queued::from_event(e).expect("renders");
            let sent: Value = serde_json::from_str(&q.json).expect("JSON");
            assert_eq!(sent["event_id"], json!(q.id.to_string()));
            assert_eq!(sent["session_id"], "s");
            match want {
                Some(id) => assert_eq!(q.id, id),
                None => assert_eq!(q.id.get_version_num(), 7),
            }
        }
    }

    #[test]
    fn text_events_get_an_id_spliced_in_unless_they_have_one() {
        let given = Uuid::now_v7();
        let cases = [
            (
                r#"{"session_id": "s", "data": {"event_id": "inner"}}"#.to_owned(),
                None,
            ),
            (r#"  {}  "#.to_owned(), None),
            (
                format!(r#"{{"session_id":"s","event_id":"{given}"}}"#),
                Some(given),
            ),
            (r#"{"event_id": 7}"#.to_owned(), Some(Uuid::nil())),
        ];
        for (text, want) in cases {
            let q = Queued::from_text(&text).expect("an object");
            let sent: Value = serde_json::from_str(&q.json).expect("still JSON");
            if want != Some(Uuid::nil()) {
                assert_eq!(sent["event_id"], json!(q.id.to_string()), "{text}");
            }
            match want {
                Some(id) => assert_eq!(q.id, id),
                None => assert_eq!(q.id.get_version_num(), 7),
            }
            let original: Value = serde_json::from_str(&text).expect("JSON");
            for (k, v) in original.as_object().into_iter().flatten() {
                assert_eq!(&sent[k], v, "{k} kept");
            }
        }
        for bad in ["[1]", "{", "\"text\""] {
            assert!(Queued::from_text(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_are_json_arrays_gzipped_or_not() {
        let items = [queued(json!({"a": 1})), queued(json!({"b": [2]}))];
        for gzip in [false, true] {
            let raw = body(&items, gzip);
            let text = if gzip {
                let mut out = String::new();
                flate2::read::GzDecoder::new(&raw[..])
                    .read_to_string(&mut out)
                    .expect("gzip");
                out
            } else {
                String::from_utf8(raw).expect("UTF-8")
            };
            let v: Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(v[0]["a"], 1);
            assert_eq!(v[1]["b"], json!([2]));
            assert_eq!(v.as_array().map(Vec::len), Some(2));
        }
    }

    #[tokio::test]
    async fn a_full_queue_waits_or_refuses_and_is_counted() {
        let counters = Counters::default();
        let (tx, mut rx) = mpsc::channel(1);
        let event = || queued(json!({"a": 1}));
        enqueue(&tx, &counters, FullQueue::FailFast, event())
            .await
            .expect("room for one");
        let refused = enqueue(&tx, &counters, FullQueue::FailFast, event()).await;
        assert!(
            matches!(refused, Err(ClientError::QueueFull)),
            "{refused:?}"
        );
        assert_eq!(
            (counters.snapshot().queued, counters.snapshot().queue_full),
            (1, 1)
        );
        // Waiting: queued once the first leaves the queue.
        let waiting = enqueue(&tx, &counters, FullQueue::Wait, event());
        let drain = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            rx.recv().await.is_some()
        };
        let (sent, drained) = tokio::join!(waiting, drain);
        assert!(sent.is_ok() && drained);
        assert_eq!(counters.snapshot().queued, 2);
        drop(rx);
        let closed = enqueue(&tx, &counters, FullQueue::Wait, event()).await;
        assert!(matches!(closed, Err(ClientError::Closed)), "{closed:?}");
        assert_eq!(
            counters.snapshot().queued,
            2,
            "a refused event is not counted queued"
        );
    }

    #[test]
    fn batches_are_due_a_linger_after_their_first_event() {
        let mut b = Batch::default();
        let linger = Duration::from_millis(200);
        b.push(queued(json!({"a": 1})), linger);
        let due = b.due.expect("due");
        b.push(queued(json!({"a": 2})), linger);
        assert_eq!(b.due, Some(due), "a later event does not push it back");
        assert_eq!(b.items.len(), 2);
        assert_eq!(b.bytes, b.items.iter().map(|i| i.json.len()).sum::<usize>());
    }
}
