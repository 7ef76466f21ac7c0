//! The insert figure with and without LZ4, on the server `EYE_CLICKHOUSE_*` names: the same
//! event rows inserted by the store's own code (one RowBinary INSERT per batch, as the
//! consumer does), uncompressed and compressed in turns, into a scratch database; then a
//! compressed read, to show what the server does with one.
//!
//! `cargo run --release -p eye-store --example insert_compression -- [ROWS] [BATCH] [ROUNDS]`
//! (defaults 1,000,000 rows, batches of 10,000, 3 rounds).

use eye_store::config::{ClickHouseConfig, CompressionSetting};
use eye_store::{EventRow, Store};
use std::time::{Duration, Instant};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Rows shaped like the load generator's: a few thousand sessions, page paths, JSON data;
/// the same rows for every `run` but for their event ids, so each run's are new events.
fn rows(n: usize, run: u64) -> Vec<EventRow> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start_us = 1_764_000_000_000_000_i64;
    (0..n)
        .map(|i| {
            let r = next();
            let ts_us = start_us + i as i64 * 1_000 + (r % 1_000) as i64;
            EventRow {
                event_id: uuid::Uuid::from_u64_pair(run, i as u64),
                session_id: format!("session-{:06}", r % 5_000),
                category: ["page_interaction", "form", "commerce"][(r % 3) as usize].into(),
                name: ["page_view", "cta_click", "form_submit", "add_to_cart"][(r >> 8) as usize % 4]
                    .into(),
                ts_us,
                received_at_us: ts_us + 40_000,
                data: format!(
                    r#"{{"host":"www.consumeraffairs.com","path":"/reviews/{}/page/{}","referrer":"https://www.google.com/","element":"button-{}","viewport":{{"w":1280,"h":{}}}}}"#,
                    r % 997,
                    (r >> 16) % 40,
                    (r >> 24) % 12,
                    600 + (r >> 32) % 400
                ),
                value: (r % 4 == 0).then_some((r % 10_000) as f64 / 100.0),
                client_ts_us: ts_us,
                sent_at_us: Some(ts_us + 1_000),
            }
        })
        .collect()
}

/// The rows laid out as RowBinary lays them (strings length-prefixed, numbers as fixed-width
/// little-endian), and that buffer's size LZ4-compressed in 1 MiB blocks: about what an insert
/// sends uncompressed and compressed.
fn wire_bytes(rows: &[EventRow]) -> (usize, usize) {
    let mut buf = Vec::new();
    for r in rows {
        buf.extend_from_slice(r.event_id.as_bytes());
        for s in [&r.session_id, &r.category, &r.name, &r.data] {
            buf.push(s.len().min(127) as u8);
            buf.extend_from_slice(s.as_bytes());
        }
        for n in [r.ts_us, r.received_at_us, r.client_ts_us] {
            buf.extend_from_slice(&n.to_le_bytes());
        }
        buf.extend_from_slice(&r.value.unwrap_or_default().to_le_bytes());
        buf.extend_from_slice(&r.sent_at_us.unwrap_or_default().to_le_bytes());
    }
    let compressed = buf
        .chunks(1 << 20)
        .map(|c| lz4_flex::block::compress(c).len() + 25)
        .sum();
    (buf.len(), compressed)
}

async fn insert_all(store: &Store, rows: &[EventRow], batch: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for chunk in rows.chunks(batch) {
        store.insert_events(chunk).await?;
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (n, batch, rounds) = (arg(1, 1_000_000), arg(2, 10_000), arg(3, 3));
    let mut cfg: ClickHouseConfig = eye_runtime::config::from_env()?;
    cfg.database = "eye_bench_compression".into();
    // The row counts after each run scan every run's rows so far.
    cfg.max_execution_time_ms = 300_000;
    let with = |compression| {
        let mut c = cfg.clone();
        c.compression = compression;
        Store::new(&c)
    };
    let plain = with(CompressionSetting::None)?;
    let lz4 = with(CompressionSetting::Lz4)?;
    plain.migrate().await?;
    let auto = Store::connect(&cfg).await?;
    println!(
        "server {}: auto compresses inserts {}, reads {}",
        cfg.url,
        auto.compressed().inserts,
        auto.compressed().reads
    );
    let (raw, lz4_bytes) = wire_bytes(&rows(n, 0));
    let mean = raw / n.max(1);
    println!(
        "on the wire: {raw} bytes uncompressed, about {lz4_bytes} with LZ4 ({:.0}%)",
        lz4_bytes as f64 * 100.0 / raw as f64
    );
    println!(
        "{n} rows (about {mean} bytes each in RowBinary), batches of {batch}, {rounds} rounds"
    );
    let mut best = [f64::MAX; 2];
    let first_run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        << 8;
    for round in 1..=rounds {
        for (i, (name, store)) in [("none", &plain), ("lz4", &lz4)].into_iter().enumerate() {
            let rows = rows(n, first_run + (round * 2 + i) as u64);
            let before = plain.event_counts().await?.stored_rows;
            let t = insert_all(store, &rows, batch).await?.as_secs_f64();
            let after = plain.event_counts().await?.stored_rows;
            anyhow::ensure!(
                after - before == n as u64,
                "{name}: {} rows stored of {n}",
                after - before
            );
            best[i] = best[i].min(t);
            println!(
                "round {round} {name:>4}: {:>9.0} rows/s ({t:.2} s, every row stored)",
                n as f64 / t
            );
        }
    }
    println!(
        "best: none {:.0} rows/s, lz4 {:.0} rows/s ({:+.0}%)",
        n as f64 / best[0],
        n as f64 / best[1],
        (best[0] / best[1] - 1.0) * 100.0
    );
    match lz4.event_counts().await {
        Ok(c) => println!("compressed read: {} rows", c.stored_rows),
        Err(e) => println!("compressed read fails: {e}"),
    }
    Ok(())
}
