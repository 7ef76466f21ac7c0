//! The three limits ingest and the consumer are compared with: raw produce, raw consume,
//! raw insert, on the same records.

use super::{consume, insert, messages, procs, produce};
use crate::report::emit;
use eye_kafka::config::KafkaConfig;
use eye_runtime::config;
use eye_store::config::ClickHouseConfig;
use std::path::Path;
use std::time::Duration;

pub struct Options {
    pub messages: usize,
    pub seed: u64,
    pub max_inflight_bytes: u64,
    pub max_inflight: u64,
    pub batch_rows: usize,
    /// Produce into the events topic (its consumer stopped) rather than a fresh one, so the
    /// consumer drain that follows reads these very records: generating millions of them
    /// twice, and producing them twice, would cost make bench minutes.
    pub into_events_topic: bool,
}

pub async fn run(o: Options, schema_dir: &Path) -> anyhow::Result<()> {
    let Options {
        messages: count,
        seed,
        max_inflight_bytes,
        max_inflight,
        batch_rows,
        into_events_topic,
    } = o;
    let kafka: KafkaConfig = config::from_env()?;
    let records = messages::generate(count, seed, schema_dir)?;
    let mean = messages::mean_bytes(&records);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (topic, start) = if into_events_topic {
        let topic = kafka.events_topic.clone();
        let k = kafka.clone();
        let t = topic.clone();
        let ends = tokio::task::spawn_blocking(move || consume::end_offsets(&k, &t)).await??;
        (topic, Some(ends))
    } else {
        let topic = format!("eye.bench.limits.{}", &run[..12]);
        eye_kafka::client::ensure_topics(&kafka, &[(&topic, kafka.events_partitions)]).await?;
        (topic, None)
    };
    let partitions = start
        .as_ref()
        .map_or(kafka.events_partitions as usize, |s| s.count());

    let k = kafka.clone();
    let t = topic.clone();
    let (p, records) = tokio::task::spawn_blocking(move || {
        produce::run(&k, &t, &records, max_inflight_bytes, max_inflight).map(|p| (p, records))
    })
    .await??;
    anyhow::ensure!(p.failed == 0, "{} records were not acknowledged", p.failed);
    let secs = p.elapsed.as_secs_f64();
    emit(
        "raw_produce",
        serde_json::json!({"messages": p.acked, "mean_bytes": mean, "seconds": secs,
            "per_sec": p.acked as f64 / secs, "topic": topic, "partitions": partitions}),
    );

    let k = kafka.clone();
    let expect = p.acked;
    let c = tokio::task::spawn_blocking(move || {
        consume::run(&k, &topic, start.as_ref(), expect, Duration::from_secs(600))
    })
    .await??;
    anyhow::ensure!(c.messages == expect, "read {} of {expect}", c.messages);
    let secs = c.elapsed.as_secs_f64();
    emit(
        "raw_consume",
        serde_json::json!({"messages": c.messages, "bytes": c.bytes, "seconds": secs,
            "per_sec": c.messages as f64 / secs}),
    );

    let mut ch: ClickHouseConfig = config::from_env()?;
    ch.database = format!("eye_bench_limits_{}", &run[..12]);
    let store = eye_store::Store::connect(&ch).await?;
    store.migrate().await?;
    let i = insert::run(&store, &records, batch_rows).await?;
    let secs = i.elapsed.as_secs_f64();
    emit(
        "raw_insert",
        serde_json::json!({"rows": i.rows, "batch_rows": batch_rows, "seconds": secs,
            "per_sec": i.rows as f64 / secs, "database": ch.database,
            "compressed_inserts": store.compressed().inserts,
            // What holding every record in memory cost this process.
            "eye_bench_peak_rss_mib": procs::own_peak_rss_mib()}),
    );
    Ok(())
}
