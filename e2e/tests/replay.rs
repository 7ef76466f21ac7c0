//! End-to-end: `POST /v1/rejected/replay` on the real broker and ClickHouse.
//!
//! Ingest starts with a page_view schema stricter than the shipped one (it also requires a
//! `title`), so good page views are quarantined beside records that stay bad whatever the
//! schema: malformed bodies, and a page view without its `path`. The schema is then fixed
//! and reloaded as in production (SIGHUP). A dry run must report, per original reason,
//! what would pass and what would not, and store nothing; the replay must store exactly
//! the records that now pass, once, keeping the client's event_id or deriving one from the
//! rejection id; a second replay must store nothing more (direct ClickHouse count); the
//! records still failing keep their new reasons; every outcome shows in `/v1/rejected`; and
//! a client without the `replay` (or `admin`) scope is refused, one with only `replay` is not. `eye-admin rejected replay --dry-run`
//! then reports, through the same endpoint, only the records that still fail.

use anyhow::{ensure, Context};
use eye_auth::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};
use eye_e2e::{bin, test_auth, wait_for, Stack, SCHEMA_DIR};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const STRICT_PAGE_VIEW: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {"host": {"type": "string"}, "path": {"type": "string"}, "title": {"type": "string"}},
  "required": ["host", "path", "title"]
}"#;

/// Good page views: the first three carry their own event_id.
const GOOD: usize = 6;

fn given_id(n: usize) -> String {
    format!("0191e4e5-6a38-7d2c-9d3e-{n:012x}")
}

/// A copy of the shipped schemas, with page_view made too strict.
fn strict_schemas(dir: &Path) -> anyhow::Result<()> {
    for entry in walk(Path::new(SCHEMA_DIR))? {
        let rel = entry.strip_prefix(SCHEMA_DIR)?;
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().context("a parent")?)?;
        std::fs::copy(&entry, &to)?;
    }
    std::fs::write(page_view(dir), STRICT_PAGE_VIEW)?;
    Ok(())
}

fn page_view(dir: &Path) -> PathBuf {
    dir.join("page_interaction").join("page_view.json")
}

fn walk(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// A single-value ClickHouse answer, asked directly.
async fn clickhouse(stack: &Stack, sql: &str) -> anyhow::Result<String> {
    let res = reqwest::Client::new()
        .post(&stack.clickhouse.url)
        .query(&[("database", stack.clickhouse.database.as_str())])
        .body(sql.to_owned())
        .send()
        .await?;
    let status = res.status();
    let text = res.text().await?;
    ensure!(status.is_success(), "{sql}: {status} {text}");
    Ok(text.trim().to_owned())
}

/// Rows of `events` of the test's sessions, every stored copy counted.
async fn stored_rows(stack: &Stack, session: &str) -> anyhow::Result<u64> {
    Ok(clickhouse(
        stack,
        &format!("SELECT count() FROM events WHERE session_id = '{session}'"),
    )
    .await?
    .parse()?)
}

/// Runs a replay; returns its NDJSON lines, the last of which is the summary.
async fn replay(stack: &Stack, body: Value) -> anyhow::Result<Vec<Value>> {
    let res = stack
        .http
        .post(stack.ingest.url("/v1/rejected/replay"))
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await?;
    ensure!(status == 200, "replay: {status} {text}");
    ensure!(ctype == "application/x-ndjson", "{ctype}");
    let lines: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let last = lines.last().context("a summary line")?;
    ensure!(last["type"] == "summary", "{text}");
    Ok(lines)
}

fn counts(summary: &Value) -> (u64, u64, u64, u64, u64) {
    let c = &summary["counts"];
    let n = |k: &str| c[k].as_u64().unwrap_or(u64::MAX);
    (
        n("scanned"),
        n("replayed"),
        n("rejected"),
        n("skipped"),
        n("failed"),
    )
}

fn by_reason(summary: &Value) -> BTreeMap<String, (u64, u64)> {
    summary["by_reason"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let n = |f: &str| v[f].as_u64().unwrap_or(u64::MAX);
                    (k.clone(), (n("pass"), n("fail")))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_schema_fix_then_a_replay_stores_what_now_passes_once() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(eye_e2e::unique("eye-replay-schemas"));
    strict_schemas(&dir)?;
    let dir_text = dir.display().to_string();
    let stack = Stack::start_with("replay", &[], &[("SCHEMA_DIR", &dir_text)]).await?;
    let session = eye_e2e::unique("replay-session");

    // Quarantined: six good page views (too strict a schema), one page view with no path
    // (bad under either schema), and two bodies that are not JSON.
    for n in 0..GOOD {
        let mut ev = json!({
            "session_id": session,
            "category": "page_interaction",
            "name": "page_view",
            "data": {"host": "example.com", "path": format!("/p{n}")},
            "timestamp": format!("2024-03-01T10:00:0{n}Z"),
            "sent_at": "2024-03-01T10:00:30Z",
        });
        if n < 3 {
            ev["event_id"] = json!(given_id(n));
        }
        let res = stack.post_events(&ev).await?;
        ensure!(res.status() == 400, "strict schema: {}", res.text().await?);
    }
    let pathless = json!({
        "session_id": session, "category": "page_interaction", "name": "page_view",
        "data": {"host": "example.com"}, "timestamp": "2024-03-01T10:00:09Z",
        "sent_at": "2024-03-01T10:00:30Z",
    });
    ensure!(stack.post_events(&pathless).await?.status() == 400);
    for _ in 0..2 {
        let res = stack
            .http
            .post(stack.ingest.url("/v1/events"))
            .header("content-type", "application/json")
            .body("[{\"session_id\": ")
            .send()
            .await?;
        ensure!(res.status() == 400);
    }
    let quarantined = wait_for(Duration::from_secs(30), "9 quarantined records", || async {
        let rows = stack
            .walk_pages("/v1/rejected?limit=100", "rejected")
            .await
            .ok()?;
        (rows.len() == 9).then_some(rows)
    })
    .await?;
    let codes: Vec<String> = quarantined
        .iter()
        .map(|r| r["reasons"][0]["code"].as_str().unwrap_or("").to_owned())
        .collect();
    ensure!(
        codes.iter().filter(|c| *c == "schema_required").count() == 7,
        "{codes:?}"
    );

    // The schema is fixed and reloaded, as an operator does: the file, then SIGHUP.
    std::fs::copy(
        Path::new(SCHEMA_DIR).join("page_interaction/page_view.json"),
        page_view(&dir),
    )?;
    let pid = std::process::id().to_string();
    ensure!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()?
        .success());
    wait_for(Duration::from_secs(10), "the schemas reloaded", || async {
        let metrics = reqwest::get(stack.ingest.url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metrics
            .lines()
            .any(|l| l.starts_with("eye_ingest_schema_reloads_total{result=\"ok\"} 1"))
            .then_some(())
    })
    .await?;

    // Replaying takes the `replay` scope (or `admin`): a writer is refused, a client holding
    // only `replay` may.
    let writer = NewCredentials::generate()?;
    let replayer = NewCredentials::generate()?;
    let clients_dir = std::env::temp_dir().join(eye_e2e::unique("eye-replay-clients"));
    std::fs::create_dir_all(&clients_dir)?;
    let clients = clients_dir.join("clients.toml");
    ClientsFile {
        clients: vec![
            ClientRecord {
                rate_limits: RateLimits::unlimited(),
                ..writer.record("writer", vec![Scope::EventsWrite])
            },
            ClientRecord {
                rate_limits: RateLimits::unlimited(),
                ..replayer.record("replayer", vec![Scope::Replay])
            },
        ],
    }
    .save(&clients)?;
    let guarded = eye_e2e::start_ingest_replaying_authed(
        eye_e2e::ingest_config(&[]),
        stack.kafka.clone(),
        eye_e2e::auth_config(&clients),
        stack.clickhouse.clone(),
    )
    .await?;
    let dry_run_as = |key: String| {
        reqwest::Client::new()
            .post(guarded.url("/v1/rejected/replay"))
            .bearer_auth(key)
            .json(&json!({"dry_run": true}))
            .send()
    };
    let refused = dry_run_as(writer.api_key()).await?;
    ensure!(refused.status() == 403, "{}", refused.status());
    let body: Value = refused.json().await?;
    ensure!(body["error"]["code"] == "insufficient_scope", "{body}");
    let allowed = dry_run_as(replayer.api_key()).await?;
    let status = allowed.status();
    let text = allowed.text().await?;
    ensure!(status == 200, "a replay-scoped dry run: {status} {text}");
    let summary: Value = serde_json::from_str(text.lines().last().unwrap_or_default())?;
    ensure!(summary["dry_run"] == true, "{summary}");
    guarded.stop().await?;

    // Bad input names its field.
    let bad = stack
        .http
        .post(stack.ingest.url("/v1/rejected/replay"))
        .json(&json!({"from": "yesterday"}))
        .send()
        .await?;
    ensure!(bad.status() == 400);
    let body: Value = bad.json().await?;
    ensure!(
        body["error"]["code"] == "invalid_replay"
            && body["error"]["details"][0]["field"] == "/from",
        "{body}"
    );

    // The dry run: per reason, what would pass; nothing produced, no outcome recorded.
    let dry = replay(&stack, json!({"dry_run": true})).await?;
    let summary = dry.last().context("summary")?;
    ensure!(summary["dry_run"] == true);
    ensure!(counts(summary) == (9, 6, 3, 0, 0), "{summary}");
    let want: BTreeMap<String, (u64, u64)> = [
        ("malformed_json".to_owned(), (0, 2)),
        ("schema_required".to_owned(), (6, 1)),
    ]
    .into();
    ensure!(by_reason(summary) == want, "{summary}");
    // A filter: only the bodies that are not JSON.
    let only = replay(&stack, json!({"dry_run": true, "reason": "malformed_json"})).await?;
    ensure!(counts(only.last().context("summary")?) == (2, 0, 2, 0, 0));
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(stored_rows(&stack, &session).await? == 0);
    let listed = stack
        .walk_pages("/v1/rejected?limit=100", "rejected")
        .await?;
    ensure!(listed.iter().all(|r| r.get("replay").is_none()));

    // The replay: exactly the six that now pass are stored, once.
    let first = replay(&stack, json!({"client": test_auth().client_id})).await?;
    let summary = first.last().context("summary")?;
    ensure!(counts(summary) == (9, 6, 3, 0, 0), "{summary}");
    ensure!(by_reason(summary) == want, "{summary}");
    let events = wait_for(Duration::from_secs(30), "6 replayed events", || async {
        let (_, page) = stack.session(&session).await.ok()?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        (events.len() == GOOD).then_some(events)
    })
    .await?;
    ensure!(stored_rows(&stack, &session).await? == GOOD as u64);
    // The client's ids kept; the others derived, and so the same on every replay.
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    for n in 0..3 {
        ensure!(ids.contains(&given_id(n).as_str()), "{ids:?}");
    }
    // Received at the original time of receipt (the skew correction is computed from it).
    let received: Vec<&str> = events
        .iter()
        .filter_map(|e| e["received_at"].as_str())
        .collect();
    let originals: Vec<&str> = quarantined
        .iter()
        .filter(|r| r["reasons"][0]["code"] == "schema_required")
        .filter_map(|r| r["received_at"].as_str())
        .collect();
    ensure!(
        received.iter().all(|t| originals.contains(t)),
        "{received:?} vs {originals:?}"
    );

    // Again: nothing more is stored; the still-failing are judged again.
    let second = replay(&stack, json!({})).await?;
    let summary = second.last().context("summary")?;
    ensure!(counts(summary) == (9, 0, 3, 6, 0), "{summary}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(stored_rows(&stack, &session).await? == GOOD as u64);

    // Every record shows its latest outcome; the still-failing with their new reasons.
    let listed = stack
        .walk_pages("/v1/rejected?limit=100", "rejected")
        .await?;
    ensure!(listed.len() == 9);
    let mut results = BTreeMap::<String, usize>::new();
    for r in &listed {
        let o = r.get("replay").context("an outcome")?;
        ensure!(o["replayed_by"] == test_auth().client_id.as_str(), "{o}");
        *results
            .entry(o["result"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
        match o["result"].as_str() {
            Some("replayed") => ensure!(o["reasons"] == json!([]), "{o}"),
            Some("rejected") => {
                let now: Vec<&str> = o["reasons"]
                    .as_array()
                    .context("reasons")?
                    .iter()
                    .filter_map(|x| x["field"].as_str())
                    .collect();
                let code = r["reasons"][0]["code"].as_str().unwrap_or("");
                // The pathless page view was missing `title` and `path`; now only `path`.
                if code == "schema_required" {
                    ensure!(now == ["/data/path"], "{o}");
                } else {
                    ensure!(o["reasons"][0]["code"] == "malformed_json", "{o}");
                }
            }
            other => anyhow::bail!("result {other:?}"),
        }
    }
    ensure!(
        results == BTreeMap::from([("rejected".to_owned(), 3), ("replayed".to_owned(), 6)]),
        "{results:?}"
    );

    // eye-admin runs the same endpoint: a dry run now finds only the still-failing.
    // Off the runtime's thread: the ingest it calls runs on it.
    let mut cmd = std::process::Command::new(bin("eye-admin")?);
    cmd.args(["rejected", "replay", "--dry-run", "--quiet"])
        .env("EYE_INGEST_URL", stack.ingest.url(""))
        .env("EYE_API_KEY", &test_auth().api_key);
    let admin = tokio::task::spawn_blocking(move || cmd.output()).await??;
    let out = String::from_utf8_lossy(&admin.stdout);
    ensure!(
        admin.status.success(),
        "eye-admin: {out} {}",
        String::from_utf8_lossy(&admin.stderr)
    );
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(
        out.starts_with("dry run ")
            && out.contains("9 scanned · 0 replayed · 3 still failing · 6 skipped")
            && rows.contains(&vec!["malformed_json", "0", "2"])
            && rows.contains(&vec!["schema_required", "0", "1"]),
        "{out}"
    );

    let metrics = reqwest::get(stack.ingest.url("/metrics"))
        .await?
        .text()
        .await?;
    for want in [
        "eye_ingest_replay_records_total{result=\"replayed\"} 6",
        "eye_ingest_replay_records_total{result=\"skipped\"} 6",
        "eye_ingest_replay_records_total{result=\"rejected\"} 6",
        "eye_ingest_events_total{adapter=\"replay\",outcome=\"produced\"} 6",
    ] {
        ensure!(metrics.contains(want), "{want} missing");
    }
    stack.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&clients_dir);
    Ok(())
}
