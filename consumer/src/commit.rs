//! The commit step: a written batch's offsets, committed and counted.

use crate::batch::Batch;
use crate::clients::EventConsumer;
use crate::metrics::ConsumerMetrics;
use crate::writer::Written;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;

/// The offsets to commit for a batch: one past its last message in each partition.
fn offsets(batch: &Batch) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, next) in batch.commit_offsets() {
        if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(next)) {
            tracing::error!(error = %e, partition, "building commit list");
        }
    }
    tpl
}

/// Commits a written batch's offsets and waits for the broker's answer. Synchronous on a
/// blocking thread: the result is known (and counted) before the next batch is read, and
/// commits can never overtake one another. A failure is not fatal: the rows are stored, so
/// the worst case is a replay that deduplication absorbs.
pub async fn commit(consumer: &Arc<EventConsumer>, written: Written<'_>, m: &ConsumerMetrics) {
    let tpl = offsets(written.batch());
    let consumer = consumer.clone();
    let result = tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
    let error = match result {
        Ok(Ok(())) => {
            m.commits.with_label_values(&["ok"]).inc();
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    m.commits.with_label_values(&["error"]).inc();
    tracing::warn!(error, "offset commit failed; the batch may be replayed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Limits, Position};
    use std::time::{Duration, Instant};

    #[test]
    fn a_batch_commits_one_past_its_last_offset_per_partition() {
        let mut batch = Batch::new(Limits {
            max_rows: 100,
            max_bytes: 1 << 20,
            max_wait: Duration::from_secs(1),
        });
        let now = Instant::now();
        for (topic, partition, offset) in [("e", 0, 7), ("e", 0, 5), ("e", 1, 40), ("s", 0, 3)] {
            let session = eye_store::SessionRow {
                update_id: uuid::Uuid::nil(),
                session_id: "s".into(),
                kind: "start".into(),
                user_id: String::new(),
                machine_id: String::new(),
                org_id: String::new(),
                at_us: 0,
                received_at_us: 0,
            };
            let at = Position {
                topic,
                partition,
                offset,
            };
            batch.push_session(session, at, now);
        }
        let tpl = offsets(&batch);
        let got: Vec<(String, i32, Offset)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition(), e.offset()))
            .collect();
        assert_eq!(
            got,
            [
                ("e".to_owned(), 0, Offset::Offset(8)),
                ("e".to_owned(), 1, Offset::Offset(41)),
                ("s".to_owned(), 0, Offset::Offset(4)),
            ]
        );
    }
}
