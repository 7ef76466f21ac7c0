//! End-to-end: `GET /v1/export` and `eye-admin export` over 1,000,000 stored events.
//!
//! A million events (and a thousand second copies of some of them) are written straight
//! into the store, as the consumer writes them. The real `eye-query` binary (built by
//! `make test` before the tests) then streams them; its peak resident memory (`VmHWM` of
//! `/proc/<pid>/status`) after exporting 100,000 and after exporting 1,000,000 events, each
//! in a process of its own, is printed with their ratio: the export reads bounded pages, so
//! the two are about the same. Each export must hold every event once, in the listing's
//! order; a cut export resumed from its last complete row's cursor must give exactly the
//! rest; and `eye-admin export --resume` must rebuild a cut file byte for byte.

use anyhow::{ensure, Context};
use eye_e2e::{bin, clickhouse_config, test_auth, unique, wait_for, SCHEMA_DIR, TEST_TOKEN_SECRET};
use eye_model::time::EventTime;
use eye_store::{EventRow, Store};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

const EVENTS: usize = 1_000_000;
const SMALL: usize = 100_000;
/// Every 997th event stored twice.
const DUPLICATES: usize = 1_000;
const DUPLICATE_STRIDE: usize = 997;
const TYPES: [(&str, &str); 5] = [
    ("page_interaction", "page_view"),
    ("page_interaction", "cta_click"),
    ("form_interaction", "submit"),
    ("machine", "cpu_load"),
    ("machine", "memory_used"),
];

/// Event `n`: two events per millisecond, so that ties of time are ordered by event_id;
/// the listing's order is `n`'s.
fn event(base_us: i64, n: usize) -> EventRow {
    let ts_us = base_us + (n / 2) as i64 * 1_000;
    let (category, name) = TYPES[n % TYPES.len()];
    EventRow {
        event_id: event_id(n),
        session_id: format!("exp-{}", n / 500),
        category: category.to_owned(),
        name: name.to_owned(),
        ts_us,
        received_at_us: ts_us + 50_000,
        // A comma and a quote: CSV must quote and double them.
        data: format!(r#"{{"n":{n},"note":"a,\"b"}}"#),
        value: n.is_multiple_of(3).then_some((n % 97) as f64),
        client_ts_us: ts_us,
        sent_at_us: None,
    }
}

fn event_id(n: usize) -> Uuid {
    Uuid::from_u128(0xe7_0000_0000 + n as u128)
}

/// The real `eye-query`, reading `database` as the read-only user.
struct QueryProcess {
    child: Child,
    url: String,
}

impl QueryProcess {
    async fn spawn(database: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let ch = clickhouse_config(database);
        let child = Command::new(bin("eye-query")?)
            .env("EYE_QUERY_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("EYE_QUERY_SCHEMA_DIR", SCHEMA_DIR)
            .env("EYE_QUERY_INGEST_METRICS_URL", "")
            .env("EYE_QUERY_CONSUMER_METRICS_URL", "")
            .env("EYE_CLICKHOUSE_URL", &ch.url)
            .env("EYE_CLICKHOUSE_DATABASE", database)
            .env("EYE_CLICKHOUSE_USER", "eye_query")
            .env("EYE_CLICKHOUSE_PASSWORD", "eye_query")
            .env("EYE_AUTH_CLIENTS_FILE", &test_auth().config.clients_file)
            .env("EYE_AUTH_TOKEN_SECRET", TEST_TOKEN_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?;
        let q = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let ready = format!("{}/readyz", q.url);
        wait_for(Duration::from_secs(30), "eye-query ready", || {
            let (http, ready) = (http.clone(), ready.clone());
            async move {
                matches!(http.get(&ready).send().await, Ok(r) if r.status().is_success())
                    .then_some(())
            }
        })
        .await?;
        Ok(q)
    }

    /// Peak resident memory so far, in KiB.
    fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .context("VmHWM in /proc/<pid>/status")?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .context("VmHWM value")?
            .parse()?)
    }
}

impl Drop for QueryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What an export streamed: its rows checked against the expected ids as they arrive (the
/// test holds no more of it than the service does), and the last row's cursor.
#[derive(Debug, Default)]
struct Walked {
    rows: usize,
    bytes: u64,
    last_cursor: Option<String>,
    first_line: Option<String>,
}

/// Streams `GET /v1/export?<query>` and checks each row is event `expected[i]` in turn;
/// with `cut_after`, stops reading once that many bytes arrived (a cut download) and
/// reports only the complete rows.
async fn walk(
    http: &reqwest::Client,
    url: &str,
    query: &str,
    csv: bool,
    expected: impl Iterator<Item = usize>,
    cut_after: Option<u64>,
) -> anyhow::Result<Walked> {
    let mut res = http.get(format!("{url}/v1/export?{query}")).send().await?;
    ensure!(res.status() == 200, "export {query}: {}", res.status());
    let content_type = res.headers()["content-type"].to_str()?.to_owned();
    ensure!(
        content_type
            == if csv {
                "text/csv; charset=utf-8"
            } else {
                "application/x-ndjson"
            },
        "{content_type}"
    );
    let mut expected = expected.map(|n| event_id(n).to_string());
    let mut walked = Walked::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut header_seen = !csv;
    loop {
        let chunk = res
            .chunk()
            .await
            .with_context(|| format!("export {query} cut after {} rows", walked.rows))?;
        let Some(chunk) = chunk else { break };
        walked.bytes += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        let complete = pending
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        for line in pending[..complete].split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let line = std::str::from_utf8(line)?.trim_end_matches('\r');
            if !header_seen {
                ensure!(line.starts_with("event_id,session_id,"), "header {line}");
                header_seen = true;
                continue;
            }
            let id = if csv {
                line.get(..36)
            } else {
                line.get(13..49)
            }
            .with_context(|| format!("row {line}"))?;
            let want = expected
                .next()
                .with_context(|| format!("more rows than expected: {line}"))?;
            ensure!(
                id == want,
                "row {} is {line}, want event {want}",
                walked.rows
            );
            if walked.first_line.is_none() {
                walked.first_line = Some(line.to_owned());
            }
            let cursor = if csv {
                line.rsplit(',').next()
            } else {
                line.rsplit_once(r#""cursor":""#)
                    .map(|(_, c)| c.trim_end_matches("\"}"))
            }
            .with_context(|| format!("no cursor in {line}"))?;
            if !csv && walked.rows.is_multiple_of(50_000) {
                let v: serde_json::Value = serde_json::from_str(line)?;
                ensure!(v["cursor"] == cursor, "{line}");
            }
            walked.last_cursor = Some(cursor.to_owned());
            walked.rows += 1;
        }
        pending.drain(..complete);
        if cut_after.is_some_and(|c| walked.bytes >= c) {
            return Ok(walked);
        }
    }
    ensure!(pending.is_empty(), "a partial last line: {pending:?}");
    ensure!(
        expected.next().is_none(),
        "export {query} ended after {} rows, fewer than expected",
        walked.rows
    );
    Ok(walked)
}

fn rfc3339(us: i64) -> String {
    EventTime::from_micros(us).to_rfc3339()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_events_export_complete_in_order_in_flat_memory() -> anyhow::Result<()> {
    let database = format!("eye_test_{}", unique("export"));
    let store = Store::connect(&clickhouse_config(&database)).await?;
    store.migrate().await?;
    // Two days ago, on a whole second: the events span 500 s.
    let now_us = chrono::Utc::now().timestamp_micros();
    let base_us = (now_us - 2 * 86_400_000_000) / 1_000_000 * 1_000_000;

    let started = Instant::now();
    for chunk in 0..EVENTS / 100_000 {
        let rows: Vec<EventRow> = (chunk * 100_000..(chunk + 1) * 100_000)
            .map(|n| event(base_us, n))
            .collect();
        store.insert_events(&rows).await?;
    }
    let copies: Vec<EventRow> = (0..DUPLICATES)
        .map(|k| event(base_us, k * DUPLICATE_STRIDE))
        .collect();
    store.insert_events(&copies).await?;
    println!(
        "stored {EVENTS} events and {DUPLICATES} second copies in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The first SMALL events end before this time.
    let small_to = rfc3339(base_us + (SMALL / 2) as i64 * 1_000);
    let small_query = format!("to={}", urlencode(&small_to));
    let http = eye_e2e::http_client();

    // 100,000 events, in a process of their own.
    let small = QueryProcess::spawn(&database).await?;
    let rss_start = small.peak_rss_kib()?;
    let t = Instant::now();
    let w = walk(&http, &small.url, &small_query, false, 0..SMALL, None).await?;
    let small_secs = t.elapsed().as_secs_f64();
    let rss_small = small.peak_rss_kib()?;
    ensure!(w.rows == SMALL, "{} rows", w.rows);
    let first: serde_json::Value =
        serde_json::from_str(w.first_line.as_deref().unwrap_or_default())?;
    ensure!(
        first["data"] == serde_json::json!({"n": 0, "note": "a,\"b"})
            && first["category"] == "page_interaction"
            && first["value"] == 0.0
            && first["timestamp"] == rfc3339(base_us).as_str(),
        "{first}"
    );
    println!(
        "ndjson, {SMALL} events: {} bytes in {small_secs:.1} s ({:.0} rows/s); \
         eye-query peak RSS {:.1} MiB (at start {:.1} MiB)",
        w.bytes,
        SMALL as f64 / small_secs,
        mib(rss_small),
        mib(rss_start)
    );

    // A download cut in the middle of a row, resumed from its last complete row.
    let cut = walk(
        &http,
        &small.url,
        &small_query,
        false,
        0..SMALL,
        Some(5_000_000),
    )
    .await?;
    let cursor = cut
        .last_cursor
        .clone()
        .context("a complete row before the cut")?;
    let rest = walk(
        &http,
        &small.url,
        &format!("{small_query}&cursor={cursor}"),
        false,
        cut.rows..SMALL,
        None,
    )
    .await?;
    ensure!(cut.rows + rest.rows == SMALL);
    println!(
        "resume: cut after {} complete rows, the resumed export gave the other {}",
        cut.rows, rest.rows
    );

    // The service's CSV and eye-admin's file of the same events are the same bytes; a file
    // cut mid-row and resumed is too.
    let csv_body = http
        .get(format!("{}/v1/export?format=csv&{small_query}", small.url))
        .send()
        .await?
        .bytes()
        .await?;
    drop(small);
    let dir = std::env::temp_dir().join(unique("eye-export"));
    std::fs::create_dir_all(&dir)?;
    let whole = dir.join("whole.csv");
    admin_export(&database, &whole, &small_to, false)?;
    let written = std::fs::read(&whole)?;
    ensure!(
        written == csv_body,
        "eye-admin's CSV differs from GET /v1/export's"
    );
    let cut_file = dir.join("cut.csv");
    std::fs::write(&cut_file, &written[..written.len() / 2 + 17])?;
    admin_export(&database, &cut_file, &small_to, true)?;
    ensure!(
        std::fs::read(&cut_file)? == written,
        "the resumed file differs from the whole one"
    );
    std::fs::remove_dir_all(&dir)?;
    println!(
        "eye-admin export: {} bytes, the same as the service's; a cut file resumed to them",
        written.len()
    );

    // 1,000,000 events in a fresh process: NDJSON, then CSV.
    let big = QueryProcess::spawn(&database).await?;
    let t = Instant::now();
    let w = walk(&http, &big.url, "", false, 0..EVENTS, None).await?;
    let big_secs = t.elapsed().as_secs_f64();
    let rss_big = big.peak_rss_kib()?;
    ensure!(w.rows == EVENTS);
    println!(
        "ndjson, {EVENTS} events: {} bytes in {big_secs:.1} s ({:.0} rows/s); \
         eye-query peak RSS {:.1} MiB",
        w.bytes,
        EVENTS as f64 / big_secs,
        mib(rss_big)
    );
    let t = Instant::now();
    let w = walk(&http, &big.url, "format=csv", true, 0..EVENTS, None).await?;
    let csv_secs = t.elapsed().as_secs_f64();
    let rss_csv = big.peak_rss_kib()?;
    println!(
        "csv, {EVENTS} events: {} bytes in {csv_secs:.1} s ({:.0} rows/s); \
         eye-query peak RSS {:.1} MiB",
        w.bytes,
        EVENTS as f64 / csv_secs,
        mib(rss_csv)
    );
    let ratio = rss_csv as f64 / rss_small as f64;
    println!(
        "peak RSS: {:.1} MiB for {SMALL} events, {:.1} MiB for {EVENTS}: ratio {ratio:.2} \
         for 10x the events",
        mib(rss_small),
        mib(rss_csv)
    );
    ensure!(
        ratio < 1.5,
        "memory grew with the export: {:.1} MiB -> {:.1} MiB",
        mib(rss_small),
        mib(rss_csv)
    );
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

/// `eye-admin export --format csv --to <to> --output <file> [--resume]`.
fn admin_export(database: &str, file: &Path, to: &str, resume: bool) -> anyhow::Result<()> {
    let ch = clickhouse_config(database);
    let mut cmd = Command::new(bin("eye-admin")?);
    cmd.args([
        "export", "--format", "csv", "--to", to, "--quiet", "--output",
    ])
    .arg(file)
    .env("EYE_CLICKHOUSE_URL", &ch.url)
    .env("EYE_CLICKHOUSE_DATABASE", database);
    if resume {
        cmd.arg("--resume");
    }
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "eye-admin export: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    Ok(())
}
