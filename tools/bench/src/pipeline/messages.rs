//! The records the limits are measured with: realistic events from `eye-loadgen`, put
//! through ingest's own parser and encoder, so each is byte for byte what ingest produces.

use eye_loadgen::events::{now_us, Generator};
use eye_model::event::{parse_batch, Item, Limits, Rules};
use eye_model::schema::SchemaRegistry;
use eye_model::time::EventTime;
use std::path::Path;

/// One record as ingest writes it to the events topic.
pub struct Record {
    pub key: String,
    pub payload: Vec<u8>,
}

/// `n` distinct records (unique event ids), generated before any timing starts.
pub fn generate(n: usize, seed: u64, schema_dir: &Path) -> anyhow::Result<Vec<Record>> {
    let registry = SchemaRegistry::load(schema_dir)?;
    let limits = Limits::default();
    let mut generator = Generator::new(seed, 10_000);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let take = (n - out.len()).min(1_000);
        let body = serde_json::to_vec(&generator.batch(take, now_us()))?;
        let rules = Rules {
            limits: &limits,
            schemas: &registry,
            unknown_types: Default::default(),
        };
        for item in parse_batch(&body, EventTime::now(), rules)? {
            match item {
                Item::Accepted(ev) => out.push(Record {
                    key: ev.session_id.as_str().to_owned(),
                    payload: eye_kafka::wire::encode(&ev),
                }),
                Item::Rejected(r) => anyhow::bail!("generated an invalid event: {r:?}"),
            }
        }
    }
    Ok(out)
}

/// Mean payload size, to report what was measured.
pub fn mean_bytes(records: &[Record]) -> f64 {
    if records.is_empty() {
        return 0.0;
    }
    records.iter().map(|r| r.payload.len()).sum::<usize>() as f64 / records.len() as f64
}
