//! The consume → batch → insert → commit loop.

use crate::batch::{Batch, Limits};
use crate::metrics::ConsumerMetrics;
use crate::Config;
use backon::{ExponentialBuilder, Retryable};
use eye_common::config::ConsumerFault;
use eye_common::store::Store;
use eye_common::wire;
use eye_web::ops::ReadyCheck;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use warp::Filter;

/// Counts commit results; librdkafka reports async commits through this callback.
struct Context {
    metrics: ConsumerMetrics,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.metrics.commits.with_label_values(&["ok"]).inc(),
            Err(e) => {
                // Not fatal: the rows are stored, so the worst case is a replay that
                // deduplication absorbs.
                self.metrics.commits.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "offset commit failed");
            }
        }
    }
}

type EventConsumer = StreamConsumer<Context>;

pub struct Pipeline {
    consumer: Arc<EventConsumer>,
    store: Store,
    topic: String,
    metrics: ConsumerMetrics,
    backoff_max: Duration,
    fault: Option<ConsumerFault>,
    stopping: Arc<AtomicBool>,
}

impl Pipeline {
    pub async fn start(
        config: Config,
        store: Store,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let registry = prometheus::Registry::new();
        let metrics = ConsumerMetrics::new(&registry);
        let consumer: EventConsumer =
            eye_common::kafka::consumer_config(&config.kafka, &config.consumer.group_id)
                .create_with_context(Context {
                    metrics: metrics.clone(),
                })?;
        consumer.subscribe(&[&config.kafka.events_topic])?;
        let consumer = Arc::new(consumer);

        // Health and metrics run beside the loop and stop with it.
        let (ops_stop_tx, ops_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ops = ops_server(
            registry,
            store.clone(),
            consumer.clone(),
            config.kafka.events_topic.clone(),
            listener,
            ops_stop_rx,
        );
        let ops_task = tokio::spawn(ops);

        let stopping = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        {
            let stopping = stopping.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopping.store(true, Ordering::SeqCst);
                let _ = stop_tx.send(());
            });
        }

        let pipeline = Pipeline {
            consumer,
            store,
            topic: config.kafka.events_topic.clone(),
            metrics,
            backoff_max: Duration::from_millis(config.consumer.insert_backoff_max_ms),
            fault: config.consumer.fault,
            stopping,
        };
        let limits = Limits {
            max_rows: config.consumer.batch_max_rows,
            max_bytes: config.consumer.batch_max_bytes,
            max_wait: Duration::from_millis(config.consumer.batch_max_wait_ms),
        };
        tracing::info!(topic = %pipeline.topic, group = %config.consumer.group_id, ?limits, "consumer running");
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
                        let now = Instant::now();
                        match m.payload().map(wire::decode_row) {
                            Some(Ok(row)) => {
                                self.metrics.messages.with_label_values(&["decoded"]).inc();
                                batch.push(row, m.partition(), m.offset(), now);
                            }
                            Some(Err(e)) => {
                                self.metrics.messages.with_label_values(&["undecodable"]).inc();
                                tracing::error!(partition = m.partition(), offset = m.offset(), error = %e, "skipping undecodable message");
                                batch.skip(m.partition(), m.offset(), now);
                            }
                            None => {
                                self.metrics.messages.with_label_values(&["undecodable"]).inc();
                                tracing::error!(partition = m.partition(), offset = m.offset(), "skipping message without payload");
                                batch.skip(m.partition(), m.offset(), now);
                            }
                        }
                        if batch.is_full() {
                            self.flush(&mut batch, CommitMode::Async).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka receive error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = tick.tick() => {
                    if batch.is_due(Instant::now()) {
                        self.flush(&mut batch, CommitMode::Async).await;
                    }
                }
            }
        }
        // SIGTERM: insert what is in hand and commit it synchronously before leaving.
        self.flush(&mut batch, CommitMode::Sync).await;
        Ok(())
    }

    /// Inserts the batch (retrying), then commits its offsets. If the insert cannot be
    /// confirmed before shutdown, nothing is committed and the batch is replayed later.
    async fn flush(&self, batch: &mut Batch, mode: CommitMode) {
        if batch.is_empty() {
            return;
        }
        if !batch.rows().is_empty() {
            let started = Instant::now();
            if let Err(e) = self.insert_with_retry(batch).await {
                tracing::error!(error = %e, rows = batch.rows().len(), "insert abandoned at shutdown; offsets not committed, the batch will be replayed");
                batch.clear();
                return;
            }
            let rows = batch.rows().len();
            self.metrics
                .insert_duration
                .observe(started.elapsed().as_secs_f64());
            self.metrics.rows_inserted.inc_by(rows as u64);
            self.metrics.batch_rows.observe(rows as f64);
            self.metrics.batch_bytes.observe(batch.bytes() as f64);
            tracing::debug!(rows, "batch inserted");
        }
        if self.fault == Some(ConsumerFault::AbortAfterInsert) {
            tracing::error!("fault injection: aborting after insert, before commit");
            std::process::abort();
        }
        self.commit(batch, mode);
        batch.clear();
    }

    async fn insert_with_retry(&self, batch: &Batch) -> Result<(), eye_common::store::StoreError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(self.backoff_max)
            .with_jitter()
            .without_max_times();
        let stopping = self.stopping.clone();
        let mut shutdown_attempts = 0u32;
        (|| self.store.insert_events(batch.rows()))
            .retry(backoff)
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
                tracing::warn!(error = %e, retry_in = ?pause, "insert failed; retrying");
            })
            .await
    }

    fn commit(&self, batch: &Batch, mode: CommitMode) {
        let mut tpl = TopicPartitionList::new();
        for (partition, next) in batch.commit_offsets() {
            if let Err(e) = tpl.add_partition_offset(&self.topic, partition, Offset::Offset(next)) {
                tracing::error!(error = %e, partition, "building commit list");
            }
        }
        // Results are counted by Context::commit_callback, which sees sync and async ones.
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::warn!(error = %e, "offset commit failed; the batch may be replayed");
        }
    }
}

async fn ops_server(
    registry: prometheus::Registry,
    store: Store,
    consumer: Arc<EventConsumer>,
    topic: String,
    listener: TcpListener,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let http = eye_web::metrics::HttpMetrics::new(&registry);
    let ready: ReadyCheck = Arc::new(move || {
        let store = store.clone();
        let consumer = consumer.clone();
        let topic = topic.clone();
        async move {
            store.ping().await.map_err(|e| e.to_string())?;
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
    });
    let routes = eye_web::ops::routes(registry, ready)
        .recover(eye_web::error::recover)
        .with(http.log(|p| eye_web::metrics::ops_route(p).unwrap_or("other")));
    eye_web::serve(routes, listener, async {
        let _ = stop.await;
    })
    .await;
}
