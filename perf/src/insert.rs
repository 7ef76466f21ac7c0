//! The raw-insert limit: the same rows the consumer writes, inserted with the same store
//! code (one RowBinary INSERT per batch), with no Kafka in the way.

use crate::messages::Record;
use eye_common::store::Store;
use std::time::{Duration, Instant};

pub struct Inserted {
    pub rows: u64,
    pub elapsed: Duration,
}

/// Decodes every record (outside the clock) and inserts them in batches of `batch_rows`,
/// one after another, as the consumer does.
pub async fn run(store: &Store, records: &[Record], batch_rows: usize) -> anyhow::Result<Inserted> {
    let rows = records
        .iter()
        .map(|r| eye_common::wire::decode_row(&r.payload))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    for chunk in rows.chunks(batch_rows.max(1)) {
        store.insert_events(chunk).await?;
    }
    Ok(Inserted {
        rows: rows.len() as u64,
        elapsed: started.elapsed(),
    })
}
