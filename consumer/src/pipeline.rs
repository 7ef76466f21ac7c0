//! The consume → batch → insert → commit loop.

use crate::batch::{Batch, Limits, Position};
use crate::config::ConsumerFault;
use crate::decode::{self, Row, TopicKind};
use crate::dedup;
use crate::metrics::ConsumerMetrics;
use crate::Config;
use backon::{ExponentialBuilder, Retryable};
use eye_http::ops::ReadyCheck;
use eye_kafka::stats::{self, ConsumerGauges};
use eye_kafka::wire::{Reason, Rejection, SOURCE_CONSUMER};
use eye_model::time::EventTime;
use eye_store::{Store, StoredCopy};
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use warp::Filter;

/// Turns librdkafka's statistics into the lag gauges and sends its log through tracing.
struct Context {
    lag: ConsumerGauges,
}

impl ClientContext for Context {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        stats::log(level, fac, log_message);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.lag.observe(&statistics);
    }
}

// Commit results are counted where the commit is made (`Pipeline::commit`), not in
// `commit_callback`: rust-rdkafka 0.38 never delivers that callback for manual async
// commits (fede1024/rust-rdkafka#856), which left `eye_consumer_commits_total` empty.
impl ConsumerContext for Context {}

type EventConsumer = StreamConsumer<Context>;

/// The topics the consumer reads, and what each holds.
#[derive(Debug, Clone)]
struct Topics {
    events: String,
    rejected: String,
    sessions: String,
}

impl Topics {
    /// Which of its topics a message came from, by the names configured at start-up.
    fn kind(&self, topic: &str) -> Option<TopicKind> {
        [
            (&self.events, TopicKind::Events),
            (&self.rejected, TopicKind::Rejected),
            (&self.sessions, TopicKind::Sessions),
        ]
        .into_iter()
        .find_map(|(name, kind)| (name == topic).then_some(kind))
    }
}

pub struct Pipeline {
    consumer: Arc<EventConsumer>,
    /// Sends undecodable messages to the dead-letter topic.
    producer: FutureProducer,
    store: Store,
    topics: Topics,
    metrics: ConsumerMetrics,
    backoff_max: Duration,
    fault: Option<ConsumerFault>,
    stopping: Arc<AtomicBool>,
    /// The server deduplicates a retried insert by token (current ClickHouse; not 18.16).
    insert_tokens: bool,
}

impl Pipeline {
    pub async fn start(
        config: Config,
        store: Store,
        insert_tokens: bool,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let registry = prometheus::Registry::new();
        let metrics = ConsumerMetrics::new(&registry);
        let mut consumer_config = eye_kafka::client::consumer_config_with(
            &config.kafka,
            &config.consumer.group_id,
            config.consumer.session_timeout_ms,
        );
        stats::enable(&mut consumer_config, &config.kafka);
        let consumer: EventConsumer = consumer_config.create_with_context(Context {
            lag: ConsumerGauges::new(&registry),
        })?;
        let topics = Topics {
            events: config.kafka.events_topic.clone(),
            rejected: config.kafka.rejected_topic.clone(),
            sessions: config.kafka.sessions_topic.clone(),
        };
        consumer.subscribe(&[&topics.events, &topics.rejected, &topics.sessions])?;
        let producer: FutureProducer =
            eye_kafka::client::producer_config(&config.kafka).create()?;
        let consumer = Arc::new(consumer);

        // Health and metrics run beside the loop and stop with it; `/readyz` says draining
        // from the moment shutdown begins, while the last batch is still being written.
        let drain = eye_http::Drain::new();
        let (ops_stop_tx, ops_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ops = ops_server(
            drain.clone(),
            registry,
            ready_check(
                store.clone(),
                consumer.clone(),
                config.kafka.events_topic.clone(),
            ),
            listener,
            config.http.clone(),
            ops_stop_rx,
        );
        let ops_task = tokio::spawn(ops);

        let stopping = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        {
            let stopping = stopping.clone();
            tokio::spawn(async move {
                shutdown.await;
                drain.begin();
                stopping.store(true, Ordering::SeqCst);
                let _ = stop_tx.send(());
            });
        }

        let pipeline = Pipeline {
            consumer,
            producer,
            store,
            topics,
            metrics,
            backoff_max: Duration::from_millis(config.consumer.insert_backoff_max_ms),
            fault: config.consumer.fault,
            stopping,
            insert_tokens,
        };
        let limits = Limits {
            max_rows: config.consumer.batch_max_rows,
            max_bytes: config.consumer.batch_max_bytes,
            max_wait: Duration::from_millis(config.consumer.batch_max_wait_ms),
        };
        tracing::info!(topics = ?pipeline.topics, group = %config.consumer.group_id, ?limits, "consumer running");
        let result = pipeline.run(limits, stop_rx).await;
        let _ = ops_stop_tx.send(());
        let _ = ops_task.await;
        tracing::info!("consumer stopped");
        result
    }

    async fn run(
        &self,
        limits: Limits,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) -> anyhow::Result<()> {
        let mut batch = Batch::new(limits);
        let tick_every = (limits.max_wait / 4).max(Duration::from_millis(5));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                msg = self.consumer.recv() => match msg {
                    Ok(m) => {
                        self.take(&m, &mut batch);
                        if batch.is_full() {
                            self.flush(&mut batch).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka receive error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = tick.tick() => {
                    if batch.is_due(Instant::now()) {
                        self.flush(&mut batch).await;
                    }
                }
            }
        }
        // SIGTERM: insert what is in hand and commit it synchronously before leaving.
        self.flush(&mut batch).await;
        Ok(())
    }

    /// Decodes one message by its topic into the batch. What cannot be decoded is never
    /// dropped and never blocks the partition: it goes to the dead-letter topic, or, if it
    /// came from the dead-letter topic itself, straight into the quarantine table.
    fn take(&self, m: &BorrowedMessage<'_>, batch: &mut Batch) {
        let now = Instant::now();
        let at = Position {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
        };
        let payload = m.payload().unwrap_or_default();
        let Some(topic) = self.topics.kind(at.topic) else {
            tracing::error!(
                topic = at.topic,
                "message from a topic this consumer does not read"
            );
            return;
        };
        let decoded = decode::decode(topic, payload).map(|row| match row {
            Row::Event(row) => batch.push_event(row, at, now),
            Row::Rejected(row) => batch.push_rejected(row, at, now),
            Row::Session(row) => batch.push_session(row, at, now),
        });
        let Err(e) = decoded else {
            self.metrics.messages.with_label_values(&["decoded"]).inc();
            return;
        };
        self.metrics
            .messages
            .with_label_values(&["undecodable"])
            .inc();
        tracing::error!(topic = at.topic, partition = at.partition, offset = at.offset, error = %e, "undecodable message quarantined");
        let key = m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        let mut rejection = Rejection::new(
            SOURCE_CONSUMER,
            "",
            EventTime::now(),
            payload,
            vec![Reason {
                field: String::new(),
                code: "undecodable".into(),
                message: format!(
                    "{} partition {} offset {}: {e}",
                    at.topic, at.partition, at.offset
                ),
            }],
            Default::default(),
        );
        rejection.session_id = key;
        // The id derives from the message's position, so a replay quarantines it once.
        rejection.rejection_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{}/{}/{}", at.topic, at.partition, at.offset).as_bytes(),
        );
        if topic == TopicKind::Rejected {
            batch.push_rejected(decode::rejected_row(rejection), at, now);
        } else {
            batch.push_dead_letter(rejection, at, now);
        }
    }

    /// Inserts the batch (retrying), then commits its offsets. If the insert cannot be
    /// confirmed before shutdown, nothing is committed and the batch is replayed later.
    async fn flush(&self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let lookup = Instant::now();
        let written = match self.retrying(|| self.stored_copies(batch)).await {
            Ok(stored) => {
                self.metrics
                    .lookup_duration
                    .observe(lookup.elapsed().as_secs_f64());
                let (kept, dropped) =
                    dedup::first_copies(std::mem::take(&mut batch.events), &stored);
                batch.events = kept;
                self.metrics.duplicates.inc_by(dropped as u64);
                self.retrying(|| self.write(batch)).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, rows = batch.rows(), "write abandoned at shutdown; offsets not committed, the batch will be replayed");
            batch.clear();
            return;
        }
        if !batch.events.is_empty() {
            let rows = batch.events.len();
            self.metrics
                .insert_duration
                .observe(started.elapsed().as_secs_f64());
            self.metrics.rows_inserted.inc_by(rows as u64);
            self.metrics.batch_rows.observe(rows as f64);
            self.metrics.batch_bytes.observe(batch.bytes() as f64);
            // End-to-end freshness: from ingest's receipt to ClickHouse's confirmation.
            let now_us = EventTime::now().as_micros();
            for row in &batch.events {
                let secs = (now_us - row.received_at_us).max(0) as f64 / 1e6;
                self.metrics.freshness.observe(secs);
            }
        }
        self.metrics
            .quarantined
            .inc_by((batch.rejected.len()) as u64);
        tracing::debug!(rows = batch.rows(), "batch written");
        if self.fault == Some(ConsumerFault::AbortAfterInsert) {
            tracing::error!("fault injection: aborting after insert, before commit");
            std::process::abort();
        }
        self.commit(batch).await;
        batch.clear();
    }

    /// Dead letters first (each is acknowledged by the broker), then one INSERT per table.
    /// Every step is idempotent, so retrying the whole of it is safe.
    async fn write(&self, batch: &Batch) -> Result<(), WriteError> {
        let sends = batch.dead_letters.iter().map(|r| {
            let payload = r.encode();
            let key = r.key();
            async move {
                let record = FutureRecord::to(&self.topics.rejected)
                    .key(&key)
                    .payload(&payload);
                self.producer
                    .send(record, Duration::from_secs(5))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| WriteError::DeadLetter(e))
            }
        });
        for result in futures::future::join_all(sends).await {
            result?;
        }
        let store = if self.insert_tokens {
            self.store.with_insert_token(&batch.dedup_token())
        } else {
            self.store.clone()
        };
        store.insert_events(&batch.events).await?;
        store.insert_rejected(&batch.rejected).await?;
        store.insert_sessions(&batch.sessions).await?;
        Ok(())
    }

    /// What storage already holds of the batch's events (see [`dedup`]).
    async fn stored_copies(&self, batch: &Batch) -> Result<Vec<StoredCopy>, WriteError> {
        Ok(self
            .store
            .stored_copies(&dedup::keys(&batch.events))
            .await?)
    }

    /// Runs `op` until it succeeds, with exponential backoff; once the consumer is stopping,
    /// three more attempts at most.
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, WriteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, WriteError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(self.backoff_max)
            .with_jitter()
            .without_max_times();
        let stopping = self.stopping.clone();
        let mut shutdown_attempts = 0u32;
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(move |_| {
                // Keep trying while running; once stopping, give it three more attempts.
                if stopping.load(Ordering::SeqCst) {
                    shutdown_attempts += 1;
                    shutdown_attempts <= 3
                } else {
                    true
                }
            })
            .notify(|e, pause| {
                self.metrics.insert_failures.inc();
                tracing::warn!(error = %e, retry_in = ?pause, "write failed; retrying");
            })
            .await
    }

    /// Commits the batch's offsets and waits for the broker's answer. Synchronous on a
    /// blocking thread: the result is known (and counted) before the next batch is read,
    /// and commits can never overtake one another.
    async fn commit(&self, batch: &Batch) {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in batch.commit_offsets() {
            if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(next)) {
                tracing::error!(error = %e, partition, "building commit list");
            }
        }
        let consumer = self.consumer.clone();
        let result =
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
        let error = match result {
            Ok(Ok(())) => {
                self.metrics.commits.with_label_values(&["ok"]).inc();
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        // Not fatal: the rows are stored, so the worst case is a replay that deduplication
        // absorbs.
        self.metrics.commits.with_label_values(&["error"]).inc();
        tracing::warn!(error, "offset commit failed; the batch may be replayed");
    }
}

/// `/readyz`: ClickHouse answers and the broker knows the events topic.
fn ready_check(store: Store, consumer: Arc<EventConsumer>, topic: String) -> ReadyCheck {
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

async fn ops_server(
    drain: eye_http::Drain,
    registry: prometheus::Registry,
    ready: ReadyCheck,
    listener: TcpListener,
    limits: eye_http::config::HttpConfig,
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

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Store(#[from] eye_store::StoreError),
    #[error("dead-letter topic: {0}")]
    DeadLetter(#[source] rdkafka::error::KafkaError),
}
