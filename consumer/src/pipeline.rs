//! The consume → batch → write → commit loop, and its wiring: the clients (`clients`), the
//! operational routes (`ops`), the writer (`writer`), the dead letters (`dead_letter`) and
//! the commit step (`commit`) each have their own module.

use crate::batch::{Batch, Limits, Position};
use crate::clients::{self, EventConsumer, Topics};
use crate::config::ConsumerFault;
use crate::dead_letter::{self, DeadLetters};
use crate::decode::{self, Row, TopicKind};
use crate::metrics::ConsumerMetrics;
use crate::writer::Writer;
use crate::{commit, ops, Config};
use eye_kafka::wire::DecodeError;
use eye_model::time::EventTime;
use eye_store::Store;
use rdkafka::message::{BorrowedMessage, Message};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

pub struct Pipeline {
    consumer: Arc<EventConsumer>,
    topics: Topics,
    writer: Writer,
    metrics: ConsumerMetrics,
    fault: Option<ConsumerFault>,
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
        let c = &config.consumer;
        let clients = clients::build(&config.kafka, &c.group_id, c.session_timeout_ms, &registry)?;
        let retention = crate::retention::spawn(
            store.clone(),
            config.retention.clone(),
            Duration::from_millis(c.retention_interval_ms),
            &registry,
        );

        // Health and metrics run beside the loop and stop with it; `/readyz` says draining
        // from the moment shutdown begins, while the last batch is still being written.
        let drain = eye_http::Drain::new();
        let (ops_stop_tx, ops_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ready = ops::ready_check(
            store.clone(),
            clients.consumer.clone(),
            clients.topics.events.clone(),
        );
        let ops_task = tokio::spawn(ops::serve(
            drain.clone(),
            registry,
            ready,
            listener,
            config.http.clone(),
            ops_stop_rx,
        ));

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
            writer: Writer {
                store,
                dead_letters: DeadLetters::new(clients.producer, clients.topics.rejected.clone()),
                metrics: metrics.clone(),
                backoff_max: Duration::from_millis(c.insert_backoff_max_ms),
                stopping,
                insert_tokens,
                suppressions: Default::default(),
                suppression_refresh: Duration::from_millis(c.suppression_refresh_ms),
            },
            consumer: clients.consumer,
            topics: clients.topics,
            metrics,
            fault: c.fault,
        };
        let limits = Limits {
            max_rows: c.batch_max_rows,
            max_bytes: c.batch_max_bytes,
            max_wait: Duration::from_millis(c.batch_max_wait_ms),
        };
        tracing::info!(topics = ?pipeline.topics, group = %c.group_id, ?limits, "consumer running");
        let result = pipeline.run(limits, stop_rx).await;
        if let Some(task) = retention {
            task.abort();
        }
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

    /// One message into the batch, counted and logged by what became of it.
    fn take(&self, m: &BorrowedMessage<'_>, batch: &mut Batch) {
        let at = Position {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
        };
        let payload = m.payload().unwrap_or_default();
        match take(batch, &self.topics, at, m.key(), payload, Instant::now()) {
            Taken::Decoded => self.metrics.messages.with_label_values(&["decoded"]).inc(),
            Taken::Undecodable(e) => {
                self.metrics
                    .messages
                    .with_label_values(&["undecodable"])
                    .inc();
                tracing::error!(topic = at.topic, partition = at.partition, offset = at.offset, error = %e, "undecodable message quarantined");
            }
            Taken::Stray => tracing::error!(
                topic = at.topic,
                "message from a topic this consumer does not read"
            ),
        }
    }

    /// Writes the batch, then commits its offsets. If the write cannot be confirmed before
    /// shutdown, nothing is committed and the batch is replayed later.
    async fn flush(&self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        match self.writer.write(batch).await {
            Ok(written) => {
                tracing::debug!(rows = written.batch().rows(), "batch written");
                if self.fault == Some(ConsumerFault::AbortAfterInsert) {
                    tracing::error!("fault injection: aborting after insert, before commit");
                    std::process::abort();
                }
                commit::commit(&self.consumer, written, &self.metrics).await;
            }
            Err(e) => {
                tracing::error!(error = %e, class = ?e.class(), rows = batch.rows(), "write abandoned at shutdown; offsets not committed, the batch will be replayed");
            }
        }
        batch.clear();
    }
}

/// What became of one consumed message.
#[derive(Debug)]
enum Taken {
    Decoded,
    /// Quarantined: see [`dead_letter`].
    Undecodable(DecodeError),
    /// From a topic this consumer does not read: left alone, its offset not tracked.
    Stray,
}

/// Decodes one message by its topic into the batch; what cannot be decoded goes to the
/// dead-letter topic, or, when it came from there, straight to the quarantine table.
fn take(
    batch: &mut Batch,
    topics: &Topics,
    at: Position<'_>,
    key: Option<&[u8]>,
    payload: &[u8],
    now: Instant,
) -> Taken {
    let Some(topic) = topics.kind(at.topic) else {
        return Taken::Stray;
    };
    let e = match decode::decode(topic, payload) {
        Ok(Row::Event(row)) => {
            batch.push_event(row, at, now);
            return Taken::Decoded;
        }
        Ok(Row::Rejected(row)) => {
            batch.push_rejected(row, at, now);
            return Taken::Decoded;
        }
        Ok(Row::Session(row)) => {
            batch.push_session(row, at, now);
            return Taken::Decoded;
        }
        Err(e) => e,
    };
    let rejection = dead_letter::rejection(at, key, payload, &e, EventTime::now());
    if topic == TopicKind::Rejected {
        batch.push_rejected(decode::rejected_row(rejection), at, now);
    } else {
        batch.push_dead_letter(rejection, at, now);
    }
    Taken::Undecodable(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_model::event::parse_events;

    #[test]
    fn each_message_lands_where_its_topic_and_payload_say() {
        let topics = Topics {
            events: "t.events".into(),
            rejected: "t.rejected".into(),
            sessions: "t.sessions".into(),
        };
        let event = parse_events(
            br#"{"session_id": "s1", "category": "c", "name": "n", "data": {}, "timestamp": "2023-11-14T22:00:00Z"}"#,
            EventTime::from_micros(1_700_000_000_000_000),
        )
        .expect("an event");
        let event = eye_kafka::wire::encode(&event[0]);
        // (topic, payload, outcome, (events, rejected, dead letters) in the batch)
        let cases: [(&str, &[u8], &str, (usize, usize, usize)); 5] = [
            ("t.events", &event, "decoded", (1, 0, 0)),
            ("t.events", b"garbage", "undecodable", (0, 0, 1)),
            ("t.sessions", b"garbage", "undecodable", (0, 0, 1)),
            // The dead-letter topic's own garbage cannot go back there.
            ("t.rejected", b"garbage", "undecodable", (0, 1, 0)),
            ("elsewhere", &event, "stray", (0, 0, 0)),
        ];
        for (topic, payload, want, counts) in cases {
            let mut batch = Batch::new(Limits {
                max_rows: 10,
                max_bytes: 1 << 20,
                max_wait: Duration::from_secs(1),
            });
            let at = Position {
                topic,
                partition: 0,
                offset: 9,
            };
            let got = match take(
                &mut batch,
                &topics,
                at,
                Some(b"s1"),
                payload,
                Instant::now(),
            ) {
                Taken::Decoded => "decoded",
                Taken::Undecodable(_) => "undecodable",
                Taken::Stray => "stray",
            };
            let case = format!("{topic} {}", String::from_utf8_lossy(payload));
            assert_eq!(got, want, "{case}");
            assert_eq!(
                (
                    batch.events.len(),
                    batch.rejected.len(),
                    batch.dead_letters.len()
                ),
                counts,
                "{case}"
            );
            // Every message of a topic it reads is committed past, whatever became of it.
            assert_eq!(batch.is_empty(), want == "stray", "{case}");
        }
    }
}
