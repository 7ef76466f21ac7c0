//! End-to-end: what the explorer reads about the pipeline itself, on the real stack.
//!
//! `GET /v1/pipeline` must show what really went through ingest, Kafka and the consumer,
//! read by the query service from their own `/metrics`, and say so when one of them does
//! not answer; `GET /v1/schemas` must show exactly the schema directory's files, read here
//! from disk independently of `eye_model::schema`.

use anyhow::{ensure, Context};
use eye_e2e::{
    query_config, readonly_clickhouse_config, start_query_with, test_auth, unique, wait_for,
    wait_ready, Service, Stack, SCHEMA_DIR,
};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Events sent that ingest accepts.
const VALID: usize = 7;

/// A port nothing listens on.
const CLOSED: &str = "127.0.0.1:1";

fn page_view(session: &str, second: usize) -> Value {
    json!({
        "session_id": session,
        "category": "page_interaction",
        "name": "page_view",
        "data": {"host": "example.com", "path": format!("/{second}")},
        "timestamp": format!("2024-03-01T10:00:{second:02}Z"),
    })
}

/// Events ingest refuses one by one (quarantining each), each for another reason.
fn refused(session: &str) -> Vec<Value> {
    let mut no_path = page_view(session, 50);
    no_path["data"] = json!({"host": "example.com"});
    let mut no_time = page_view(session, 51);
    no_time["timestamp"] = json!("never");
    let mut unknown = page_view(session, 52);
    unknown["category"] = json!("no_such_category");
    vec![no_path, no_time, unknown]
}

async fn get(stack: &Stack, svc: &Service, path: &str) -> anyhow::Result<(u16, Value)> {
    let res = stack.http.get(svc.url(path)).send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    let body = serde_json::from_str(&text).with_context(|| format!("{path}: {text}"))?;
    Ok((status, body))
}

/// A figure of a pipeline answer, at a JSON Pointer; 0 when absent.
fn figure(pipeline: &Value, pointer: &str) -> f64 {
    pipeline
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_view_shows_what_went_through() -> anyhow::Result<()> {
    // Statistics (the consumer's lag among them) every half second, so the lag is seen to
    // drain within the test.
    let stack =
        Stack::start_with("pipeline_view", &[("STATISTICS_INTERVAL_MS", "500")], &[]).await?;
    // The harness's query service reads no metrics; these two read this stack's ingest
    // and consumer, the second with an ingest URL nothing answers at.
    let ingest_url = stack.ingest.url("/metrics");
    let consumer_url = stack.consumer.url("/metrics");
    let closed_url = format!("http://{CLOSED}/metrics");
    let ro = readonly_clickhouse_config(&stack.clickhouse.database);
    let query = start_query_with(
        query_config(&[
            ("INGEST_METRICS_URL", &ingest_url),
            ("CONSUMER_METRICS_URL", &consumer_url),
        ]),
        ro.clone(),
        test_auth().config.clone(),
    )
    .await?;
    let blind = start_query_with(
        query_config(&[
            ("INGEST_METRICS_URL", &closed_url),
            ("CONSUMER_METRICS_URL", &consumer_url),
            ("METRICS_TIMEOUT_MS", "500"),
        ]),
        ro,
        test_auth().config.clone(),
    )
    .await?;
    wait_ready(&[&query, &blind]).await?;

    // Before anything is sent: both up, nothing counted by this stack's fresh ingest.
    let (status, before) = get(&stack, &query, "/v1/pipeline").await?;
    ensure!(status == 200, "{status}: {before}");
    ensure!(
        before["ingest"]["up"] == true
            && before["ingest"]["url"] == ingest_url.as_str()
            && before["ingest"]["error"].is_null()
            && before["consumer"]["up"] == true
            && before["consumer"]["url"] == consumer_url.as_str(),
        "{before}"
    );
    ensure!(
        ["produced", "quarantined", "failed"]
            .iter()
            .all(|outcome| before["ingest"]["events"][outcome].as_f64() == Some(0.0)),
        "a fresh ingest has counted nothing: {before}"
    );

    // One batch: VALID events accepted, the others refused one by one (207).
    let session = unique("pipeline-view");
    let refused = refused(&session);
    let mut batch: Vec<Value> = (0..VALID).map(|i| page_view(&session, i)).collect();
    batch.extend(refused.iter().cloned());
    let res = stack.post_events(&Value::Array(batch)).await?;
    let status = res.status().as_u16();
    let answer: Value = res.json().await?;
    ensure!(status == 207, "{status}: {answer}");

    // Stored, as the query API shows it.
    wait_for(Duration::from_secs(60), "the events stored", || async {
        match stack.session(&session).await {
            Ok((200, body)) if body["events"].as_array().map(Vec::len) == Some(VALID) => Some(()),
            _ => None,
        }
    })
    .await?;

    // Ingest's counts are exact (this ingest saw nothing else); the consumer's arrive as
    // it confirms inserts, and its lag drains to 0. A lag nobody reported also sums to 0,
    // so the consumer's own /metrics must show it reported (its statistics come every
    // EYE_KAFKA_STATISTICS_INTERVAL_MS) before the view's 0 counts.
    let rejected = refused.len() as f64;
    let valid = VALID as f64;
    let last = std::sync::Mutex::new(Value::Null);
    let settled = wait_for(Duration::from_secs(60), "the pipeline view", || async {
        let metrics = stack.http.get(&consumer_url).send().await.ok()?;
        let lag_reported = metrics
            .text()
            .await
            .ok()?
            .contains("eye_consumer_lag_messages{");
        let (status, body) = get(&stack, &query, "/v1/pipeline").await.ok()?;
        *last.lock().expect("not poisoned") = body.clone();
        (status == 200
            && lag_reported
            && figure(&body, "/consumer/rows_inserted_total") >= valid
            && figure(&body, "/consumer/quarantined_total") >= rejected
            && figure(&body, "/consumer/freshness_seconds/count") >= valid
            && body["consumer"]["lag_messages"].as_f64() == Some(0.0))
        .then_some(body)
    })
    .await
    .with_context(|| format!("last answer: {}", last.lock().expect("not poisoned")))?;
    let events = &settled["ingest"]["events"];
    ensure!(
        figure(events, "/produced") == valid
            && figure(events, "/quarantined") == rejected
            && figure(events, "/failed") == 0.0,
        "ingest's counts: {settled}"
    );
    ensure!(
        settled["ingest"]["up"] == true && settled["consumer"]["up"] == true,
        "{settled}"
    );
    ensure!(
        figure(&settled, "/consumer/freshness_seconds/sum") > 0.0,
        "freshness is measured: {settled}"
    );

    // An ingest that does not answer: down, with the reason and without figures; the
    // consumer is still read.
    let (status, body) = get(&stack, &blind, "/v1/pipeline").await?;
    ensure!(status == 200, "{status}: {body}");
    let ingest = &body["ingest"];
    ensure!(
        ingest["up"] == false
            && ingest["url"] == closed_url.as_str()
            && ingest["error"].as_str().is_some_and(|e| !e.is_empty())
            && ingest.get("events").is_none(),
        "ingest down: {body}"
    );
    ensure!(
        body["consumer"]["up"] == true && figure(&body, "/consumer/rows_inserted_total") >= valid,
        "consumer still read: {body}"
    );

    query.stop().await?;
    blind.stop().await?;
    stack.stop().await?;
    Ok(())
}

/// `(category, name, schema)` of every `<category>/<name>.json` under `dir`, read here from
/// disk: hidden entries and files not ending in `.json` are not schemas.
fn schemas_on_disk(dir: &Path) -> anyhow::Result<Vec<(String, String, Value)>> {
    let visible = |e: &std::fs::DirEntry| !e.file_name().to_string_lossy().starts_with('.');
    let mut out = Vec::new();
    for category in std::fs::read_dir(dir)? {
        let category = category?;
        if !visible(&category) || !category.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(category.path())? {
            let file = file?;
            let file_name = file.file_name().to_string_lossy().into_owned();
            let Some(name) = file_name.strip_suffix(".json") else {
                continue;
            };
            if !visible(&file) || file.path().is_dir() {
                continue;
            }
            let text = std::fs::read_to_string(file.path())?;
            out.push((
                category.file_name().to_string_lossy().into_owned(),
                name.to_owned(),
                serde_json::from_str(&text).with_context(|| file_name.clone())?,
            ));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn schemas_are_the_schema_directory() -> anyhow::Result<()> {
    let stack = Stack::start("schemas_view").await?;
    let (status, body) = get(&stack, &stack.query, "/v1/schemas").await?;
    ensure!(status == 200, "{status}: {body}");
    let on_disk = schemas_on_disk(Path::new(SCHEMA_DIR))?;
    ensure!(on_disk.len() >= 5, "read only {on_disk:?}");
    let served: Vec<(String, String, Value)> = body["schemas"]
        .as_array()
        .context("schemas")?
        .iter()
        .map(|s| {
            ensure!(
                s.as_object().map(|o| o.len()) == Some(3),
                "category, name and schema only: {s}"
            );
            Ok((
                s["category"].as_str().context("category")?.to_owned(),
                s["name"].as_str().context("name")?.to_owned(),
                s["schema"].clone(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    ensure!(
        served == on_disk,
        "served {:?}, on disk {:?}",
        served.iter().map(|s| (&s.0, &s.1)).collect::<Vec<_>>(),
        on_disk.iter().map(|s| (&s.0, &s.1)).collect::<Vec<_>>()
    );
    // Every type ingest validates against is listed.
    let ingest_types = eye_model::schema::SchemaRegistry::load(Path::new(SCHEMA_DIR))?.types();
    let listed: Vec<(String, String)> = served.into_iter().map(|s| (s.0, s.1)).collect();
    ensure!(listed == ingest_types, "{listed:?} vs {ingest_types:?}");
    stack.stop().await?;
    Ok(())
}
