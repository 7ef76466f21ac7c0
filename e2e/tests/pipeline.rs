//! End-to-end: HTTP in, Kafka, consumer, ClickHouse, HTTP out, on real servers.

use eye_e2e::{kafka_config, start_ingest, unique, wait_for, Stack};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

fn event(session: &str, ts: &str, name: &str) -> Value {
    json!({
        "session_id": session,
        "category": "page_interaction",
        "name": name,
        "data": {"host": "www.consumeraffairs.com", "path": format!("/{name}")},
        "timestamp": ts,
    })
}

async fn wait_for_session(stack: &Stack, session: &str, want: usize) -> anyhow::Result<Value> {
    wait_for(
        Duration::from_secs(60),
        "session events queryable",
        || async {
            match stack.session(session).await {
                Ok((200, body)) if body["events"].as_array().map(Vec::len) == Some(want) => {
                    Some(body)
                }
                _ => None,
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn events_come_back_in_time_order_exactly_once() -> anyhow::Result<()> {
    let stack = Stack::start("order").await?;
    let session = unique("session");
    let client_id = uuid::Uuid::now_v7().to_string();

    // Out of time order, in three requests; one event twice with the client's event_id.
    let mut late = event(&session, "2022-01-09 09:15:29.000001", "cta_click");
    late["data"]["element"] = json!("chat bubble");
    late["event_id"] = json!(client_id);
    late["value"] = json!(1.5);
    let res = stack.post_events(&late).await?;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await?;
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["event_ids"], json!([client_id]));

    let batch = json!([
        event(&session, "2022-01-09T09:15:28Z", "page_view"),
        event(&session, "2022-01-09 09:15:27.243860", "page_view"),
    ]);
    let res = stack.post_events(&batch).await?;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await?;
    assert_eq!(body["accepted"], 2);
    let ids = body["event_ids"].as_array().expect("event_ids");
    assert_eq!(ids.len(), 2);
    for id in ids {
        let id = uuid::Uuid::parse_str(id.as_str().expect("string")).expect("uuid");
        assert_eq!(id.get_version_num(), 7, "server-assigned ids are UUIDv7");
    }

    // The client retries the first event: same event_id, delivered twice.
    assert_eq!(stack.post_events(&late).await?.status(), 202);

    let body = wait_for_session(&stack, &session, 3).await?;
    let events = body["events"].as_array().expect("events");
    let times: Vec<&str> = events
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        times,
        [
            "2022-01-09T09:15:27.243860Z",
            "2022-01-09T09:15:28.000000Z",
            "2022-01-09T09:15:29.000001Z"
        ]
    );
    assert_eq!(body["session_id"], session.as_str());
    assert_eq!(events[2]["event_id"], client_id.as_str());
    assert_eq!(events[2]["value"], 1.5);
    assert_eq!(
        events[2]["data"],
        json!({"host": "www.consumeraffairs.com", "path": "/cta_click", "element": "chat bubble"})
    );
    assert_eq!(events[0]["category"], "page_interaction");
    assert!(events[0].get("value").is_none());

    // The duplicate is stored (twice, until a merge) but never read twice.
    let counts = stack.store()?.event_counts().await?;
    assert_eq!(counts.distinct_events, 3);

    stack.stop().await
}

/// 10,000 events as 100 batches of 100 across 500 sessions, each session's events posted
/// out of time order: every one comes back exactly once, each session in time order.
#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_events_across_500_sessions() -> anyhow::Result<()> {
    const SESSIONS: usize = 500;
    const PER_SESSION: usize = 20;
    let stack = Stack::start("tenk").await?;
    let prefix = unique("s");
    let sessions: Vec<String> = (0..SESSIONS).map(|i| format!("{prefix}-{i:03}")).collect();

    // Event k of session s has second (PER_SESSION - 1 - k): posting order is reverse time.
    let mut all = Vec::with_capacity(SESSIONS * PER_SESSION);
    for k in 0..PER_SESSION {
        for s in &sessions {
            let ts = format!("2023-02-02 16:22:{:02}.{:06}", PER_SESSION - 1 - k, k);
            all.push(event(s, &ts, "page_view"));
        }
    }
    let batches: Vec<Value> = all.chunks(100).map(|c| Value::Array(c.to_vec())).collect();
    assert_eq!(batches.len(), 100);

    let started = Instant::now();
    let results: Vec<anyhow::Result<(u16, Value)>> = futures::stream::iter(batches.iter())
        .map(|b| async {
            let res = stack.post_events(b).await?;
            Ok((res.status().as_u16(), res.json::<Value>().await?))
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut accepted_ids = HashSet::new();
    for r in results {
        let (status, body) = r?;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], 100);
        for id in body["event_ids"].as_array().expect("ids") {
            accepted_ids.insert(id.as_str().expect("str").to_owned());
        }
    }
    assert_eq!(accepted_ids.len(), SESSIONS * PER_SESSION);
    let posted = started.elapsed();

    let store = stack.store()?;
    wait_for(Duration::from_secs(120), "10,000 events stored", || async {
        matches!(store.event_counts().await, Ok(c) if c.distinct_events as usize == SESSIONS * PER_SESSION)
            .then_some(())
    })
    .await?;
    let stored = started.elapsed();

    let mut seen = HashSet::new();
    let checks: Vec<anyhow::Result<(String, u16, Value)>> = futures::stream::iter(sessions.iter())
        .map(|s| async {
            let (status, body) = stack.session(s).await?;
            Ok((s.clone(), status, body))
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut per_session = HashMap::new();
    for c in checks {
        let (s, status, body) = c?;
        assert_eq!(status, 200, "{s}: {body}");
        let events = body["events"].as_array().expect("events");
        let times: Vec<&str> = events
            .iter()
            .map(|e| e["timestamp"].as_str().unwrap_or(""))
            .collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted, "{s} is not in time order");
        for e in events {
            assert_eq!(e["session_id"], s.as_str());
            let id = e["event_id"].as_str().expect("id").to_owned();
            assert!(accepted_ids.contains(&id), "{id} was never accepted");
            assert!(seen.insert(id), "an event came back twice");
        }
        per_session.insert(s, events.len());
    }
    let queryable = started.elapsed();
    assert!(
        per_session.values().all(|n| *n == PER_SESSION),
        "{per_session:?}"
    );
    assert_eq!(seen.len(), SESSIONS * PER_SESSION);
    println!(
        "10,000 events / 500 sessions: posted in {:.2}s, all stored after {:.2}s, all read back and checked after {:.2}s; {} of {} came back exactly once",
        posted.as_secs_f64(),
        stored.as_secs_f64(),
        queryable.as_secs_f64(),
        seen.len(),
        SESSIONS * PER_SESSION
    );
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_json_error_naming_the_field() -> anyhow::Result<()> {
    let stack = Stack::start("bad").await?;
    let url = stack.ingest.url("/v1/events");

    // (body, status, code, field of the first error)
    let trailing_comma = "{\"session_id\": \"s\", \"category\": \"party\", \"name\": \"AppName\", \"data\": {\"host\": \"www.party.com\", \"path\": \"/\",}, \"timestamp\": \"2021-09-26 09:15:27.243860\"}";
    let mut missing = event("s", "2021-09-26 09:15:27", "page_view");
    missing.as_object_mut().map(|o| o.remove("session_id"));
    let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
        (trailing_comma.to_owned(), 400, "malformed_json", None),
        (
            missing.to_string(),
            400,
            "invalid_events",
            Some("/session_id"),
        ),
        ("[]".to_owned(), 400, "not_events", None),
    ];
    for (body, status, code, field) in cases {
        let res = stack
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(res.status().as_u16(), status, "{body}");
        let got: Value = res.json().await?;
        assert_eq!(got["error"]["code"], code, "{body} -> {got}");
        assert!(got["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if let Some(field) = field {
            assert_eq!(got["results"][0]["errors"][0]["field"], field, "{got}");
            assert_eq!(got["results"][0]["status"], "rejected");
            assert_eq!(got["accepted"], 0);
        }
        if code == "malformed_json" {
            let msg = got["error"]["message"].as_str().unwrap_or("");
            assert!(
                msg.contains("trailing comma") && msg.contains("line 1"),
                "{msg}"
            );
        }
    }

    // Query side: unknown session, bad limit, unknown route.
    let (status, body) = stack.session("no-such-session").await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("session_not_found"))
    );
    let res = stack
        .http
        .get(stack.query.url("/v1/sessions/x/events?limit=0"))
        .send()
        .await?;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await?;
    assert_eq!(body["error"]["details"][0]["field"], "limit");
    let res = stack
        .http
        .get(stack.query.url("/v2/nothing"))
        .send()
        .await?;
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await?["error"]["code"], "not_found");
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_serves_health_readiness_and_metrics() -> anyhow::Result<()> {
    let stack = Stack::start("ops").await?;
    let session = unique("ops");
    assert_eq!(
        stack
            .post_events(&event(&session, "2022-01-01 00:00:00", "page_view"))
            .await?
            .status(),
        202
    );
    wait_for_session(&stack, &session, 1).await?;

    let expectations: [(&eye_e2e::Service, &[&str]); 3] = [
        (
            &stack.ingest,
            &[
                "eye_http_requests_total{method=\"POST\",route=\"/v1/events\",status=\"202\"} 1",
                "eye_ingest_events_total{adapter=\"v1\",outcome=\"produced\"} 1",
                "eye_ingest_produce_duration_seconds_count 1",
            ],
        ),
        (
            &stack.consumer,
            &[
                "eye_consumer_rows_inserted_total 1",
                "eye_consumer_messages_total{outcome=\"decoded\"} 1",
                "eye_consumer_batch_rows_count 1",
                "eye_consumer_insert_duration_seconds_count 1",
            ],
        ),
        (
            &stack.query,
            &["eye_http_requests_total{method=\"GET\",route=\"/v1/sessions/{session_id}/events\",status=\"200\"}"],
        ),
    ];
    for (svc, wanted) in expectations {
        for (path, status) in [("/healthz", 200), ("/readyz", 200)] {
            let res = stack.http.get(svc.url(path)).send().await?;
            assert_eq!(res.status().as_u16(), status, "{path}");
        }
        let metrics = stack
            .http
            .get(svc.url("/metrics"))
            .send()
            .await?
            .text()
            .await?;
        for line in wanted {
            assert!(metrics.contains(line), "missing {line:?} in:\n{metrics}");
        }
    }
    stack.stop().await
}

/// With no broker to acknowledge, ingest answers 503 and says nothing was accepted.
#[tokio::test(flavor = "multi_thread")]
async fn unacknowledged_produce_answers_503() -> anyhow::Result<()> {
    let mut kafka = kafka_config("eye.unreachable");
    kafka.brokers = "127.0.0.1:1".into();
    kafka.message_timeout_ms = 1_000;
    let ingest = start_ingest(kafka).await?;
    let http = eye_e2e::http_client();

    let started = Instant::now();
    let res = http
        .post(ingest.url("/v1/events"))
        .json(&event("s", "2022-01-01 00:00:00", "page_view"))
        .send()
        .await?;
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = res.json().await?;
    assert_eq!(body["error"]["code"], "broker_unavailable");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("nothing was accepted"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    let res = http.get(ingest.url("/readyz")).send().await?;
    assert_eq!(res.status(), 503);
    assert_eq!(res.json::<Value>().await?["error"]["code"], "not_ready");
    ingest.stop().await
}

/// The query service's ClickHouse user reads but can neither write nor change the schema.
#[tokio::test(flavor = "multi_thread")]
async fn the_query_user_is_read_only() -> anyhow::Result<()> {
    let stack = Stack::start("readonly").await?;
    let session = unique("ro");
    assert_eq!(
        stack
            .post_events(&event(&session, "2022-01-01 00:00:00", "page_view"))
            .await?
            .status(),
        202
    );
    wait_for_session(&stack, &session, 1).await?;

    let readonly = eye_store::Store::new(&eye_e2e::readonly_clickhouse_config(
        &stack.clickhouse.database,
    ))?;
    assert_eq!(
        readonly.event_counts().await?.distinct_events,
        1,
        "it reads"
    );
    let err = readonly
        .migrate()
        .await
        .expect_err("DDL must be refused")
        .to_string();
    assert!(err.contains("readonly"), "{err}");
    let rows = stack
        .store()?
        .session_events(
            &eye_model::event::SessionId::parse(&session).map_err(|(_, m)| anyhow::anyhow!(m))?,
            10,
        )
        .await?;
    let err = readonly
        .insert_events(&rows)
        .await
        .expect_err("inserts must be refused")
        .to_string();
    assert!(err.contains("readonly"), "{err}");
    assert_eq!(
        stack.store()?.event_counts().await?.stored_rows,
        1,
        "nothing was written"
    );
    stack.stop().await
}

/// `GET /v1/events`: filters, both orders, and keyset pages that return each match once.
#[tokio::test(flavor = "multi_thread")]
async fn event_listing_pages_return_each_match_once() -> anyhow::Result<()> {
    let stack = Stack::start("listing").await?;
    let session = unique("list");
    let mut batch = Vec::new();
    for i in 0..25 {
        let mut ev = event(
            &session,
            &format!("2023-03-01 00:00:{i:02}"),
            if i % 5 == 0 { "cta_click" } else { "page_view" },
        );
        if i % 5 == 0 {
            ev["data"]["element"] = json!("button");
        }
        batch.push(ev);
    }
    // One event sent twice with its id: listed once.
    let mut twice = event(&session, "2023-03-01 00:00:30", "page_view");
    twice["event_id"] = json!(uuid::Uuid::now_v7().to_string());
    batch.push(twice.clone());
    assert_eq!(stack.post_events(&Value::Array(batch)).await?.status(), 202);
    assert_eq!(stack.post_events(&twice).await?.status(), 202);
    wait_for_session(&stack, &session, 26).await?;

    let walk = |query: String| {
        let stack = &stack;
        async move {
            let events = stack
                .walk_pages(&format!("/v1/events?{query}&limit=4"), "events")
                .await?;
            let seen: Vec<(String, String)> = events
                .iter()
                .map(|e| {
                    (
                        e["timestamp"].as_str().unwrap_or("").to_owned(),
                        e["event_id"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            anyhow::Ok(seen)
        }
    };
    // (query, expected count, descending)
    let cases = [
        (format!("session_id={session}"), 26, false),
        (format!("session_id={session}&order=desc"), 26, true),
        (
            format!("session_id={session}&category=page_interaction&name=cta_click"),
            5,
            false,
        ),
        (
            format!("session_id={session}&from=2023-03-01T00:00:10Z&to=2023-03-01T00:00:20Z"),
            10,
            false,
        ),
        (
            "category=page_interaction&name=page_view&order=desc".to_owned(),
            21,
            true,
        ),
    ];
    for (query, want, desc) in cases {
        let seen = walk(query.clone()).await?;
        assert_eq!(seen.len(), want, "{query}");
        let ids: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), want, "{query}: an event was listed twice");
        let mut sorted = seen.clone();
        sorted.sort();
        if desc {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "{query}: not in order");
    }

    // Categories count each event_id once, the duplicate included.
    let body: Value = stack
        .http
        .get(stack.query.url("/v1/categories"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        body["categories"],
        json!([
            {"category": "page_interaction", "name": "cta_click", "events": 5,
             "first_seen": "2023-03-01T00:00:00.000000Z", "last_seen": "2023-03-01T00:00:20.000000Z"},
            {"category": "page_interaction", "name": "page_view", "events": 21,
             "first_seen": "2023-03-01T00:00:01.000000Z", "last_seen": "2023-03-01T00:00:30.000000Z"},
        ])
    );

    for (query, field) in [
        ("order=sideways", "order"),
        ("limit=1001", "limit"),
        ("cursor=nope", "cursor"),
        ("category=a%27b", "category"),
        ("from=2023-01-02T00:00:00Z&to=2023-01-01T00:00:00Z", "from"),
        ("colour=red", "colour"),
    ] {
        let res = stack
            .http
            .get(stack.query.url(&format!("/v1/events?{query}")))
            .send()
            .await?;
        assert_eq!(res.status(), 400, "{query}");
        let body: Value = res.json().await?;
        assert_eq!(
            body["error"]["details"][0]["field"], field,
            "{query}: {body}"
        );
    }
    stack.stop().await
}
