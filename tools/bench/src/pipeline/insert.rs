//! The raw-insert limit: the same rows the consumer writes, inserted with the same store
//! code (one RowBinary INSERT per batch), with no Kafka in the way.

use super::messages::Record;
use eye_store::Store;
use std::time::{Duration, Instant};

pub struct Inserted {
    pub rows: u64,
    pub elapsed: Duration,
}

/// Inserts every record in batches of `batch_rows`, one after another, as the consumer
/// does. Each batch is decoded outside the clock, and only then: millions of rows decoded
/// at once would double what the records already hold in memory.
pub async fn run(store: &Store, records: &[Record], batch_rows: usize) -> anyhow::Result<Inserted> {
    let mut elapsed = Duration::ZERO;
    for chunk in records.chunks(batch_rows.max(1)) {
        let rows = chunk
            .iter()
            .map(|r| eye_consumer::decode::event_row(&r.payload))
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        store.insert_events(&rows).await?;
        elapsed += started.elapsed();
    }
    Ok(Inserted {
        rows: records.len() as u64,
        elapsed,
    })
}
