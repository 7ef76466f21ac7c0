//! The event contract end to end: per-item results, the quarantine, limits, gzip,
//! idempotency, session lifecycle and schema reload, on the real broker and ClickHouse.

use eye_e2e::{
    create_topics, ingest_config, kafka_config, start_ingest_with, unique, wait_for, Stack,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

fn page_view(session: &str, ts: &str) -> Value {
    json!({
        "session_id": session,
        "category": "page_interaction",
        "name": "page_view",
        "data": {"host": "www.consumeraffairs.com", "path": "/"},
        "timestamp": ts,
    })
}

/// Every page of `/v1/rejected` with `limit` and the extra `filter`, in order.
async fn all_rejected(stack: &Stack, filter: &str, limit: usize) -> anyhow::Result<Vec<Value>> {
    stack
        .walk_pages(&format!("/v1/rejected?limit={limit}{filter}"), "rejected")
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_batches_land_in_events_and_quarantine_with_nothing_lost_or_doubled(
) -> anyhow::Result<()> {
    let stack = Stack::start("mixed").await?;
    let session = unique("mixed");
    let mut batch = Vec::new();
    let mut want_rejected = Vec::new();
    for i in 0..30 {
        let mut ev = page_view(&session, &format!("2023-01-01 00:00:{i:02}"));
        match i % 3 {
            0 => {}
            1 => {
                ev["timestamp"] = json!("31/12/2022");
                want_rejected.push((i, "invalid_timestamp"));
            }
            _ => {
                ev["data"] = json!({"host": "h"});
                want_rejected.push((i, "schema_required"));
            }
        }
        batch.push(ev);
    }
    let res = stack.post_events(&Value::Array(batch.clone())).await?;
    assert_eq!(res.status(), 207);
    let body: Value = res.json().await?;
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(10), Some(20))
    );
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 30);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
        if i % 3 == 0 {
            assert_eq!(r["status"], "accepted");
            assert!(r["event_id"].is_string());
        } else {
            assert_eq!(r["status"], "rejected");
            let want = if i % 3 == 1 {
                ("/timestamp", "invalid_timestamp")
            } else {
                ("/data/path", "schema_required")
            };
            assert_eq!(
                (
                    r["errors"][0]["field"].as_str(),
                    r["errors"][0]["code"].as_str()
                ),
                (Some(want.0), Some(want.1)),
                "{r}"
            );
        }
    }

    // Sent twice: the accepted events are stored once, the rejections quarantined per request.
    assert_eq!(
        stack
            .post_events(&Value::Array(batch.clone()))
            .await?
            .status(),
        207
    );

    let events = wait_for(Duration::from_secs(60), "events stored", || async {
        match stack.session(&session).await {
            Ok((200, b)) if b["events"].as_array().map(Vec::len) == Some(20) => Some(b),
            _ => None,
        }
    })
    .await;
    // Two posts without client event_ids: each accepted event got a fresh id each time.
    assert!(
        events.is_ok(),
        "both posts' accepted events are stored: {events:?}"
    );

    let filter = "&reason=invalid_timestamp";
    let quarantined = wait_for(Duration::from_secs(60), "rejections stored", || async {
        let all = all_rejected(&stack, "", 7).await.ok()?;
        (all.len() == 40).then_some(all)
    })
    .await?;
    let ids: HashSet<&str> = quarantined
        .iter()
        .filter_map(|r| r["rejection_id"].as_str())
        .collect();
    assert_eq!(
        ids.len(),
        40,
        "each rejection listed exactly once across pages"
    );
    let times: Vec<&str> = quarantined
        .iter()
        .filter_map(|r| r["received_at"].as_str())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "arrival order");
    for r in &quarantined {
        assert_eq!(r["source"], "ingest");
        assert_eq!(r["session_id"], session.as_str());
        assert_eq!(r["category"], "page_interaction");
        // The raw payload is the event exactly as sent.
        let raw: Value = serde_json::from_str(r["raw"].as_str().expect("raw"))?;
        assert!(batch.contains(&raw), "{raw} was not sent");
    }
    let by_reason = all_rejected(&stack, filter, 100).await?;
    assert_eq!(by_reason.len(), 20);
    assert!(by_reason
        .iter()
        .all(|r| r["reasons"][0]["code"] == "invalid_timestamp"));
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_id_sent_again_later_is_stored_once() -> anyhow::Result<()> {
    let stack = Stack::start("idem").await?;
    let session = unique("idem");
    let id = uuid::Uuid::now_v7().to_string();
    let mut ev = page_view(&session, "2023-01-01 00:00:00");
    ev["event_id"] = json!(id);
    assert_eq!(stack.post_events(&ev).await?.status(), 202);
    wait_for(Duration::from_secs(30), "first copy stored", || async {
        matches!(stack.session(&session).await, Ok((200, _))).then_some(())
    })
    .await?;
    // Later, in another batch, next to a new event.
    let other = page_view(&session, "2023-01-01 00:00:01");
    assert_eq!(stack.post_events(&json!([other, ev])).await?.status(), 202);
    let store = stack.store()?;
    // The copy travels in one request, and so one batch, with the new event: once that is
    // stored, the copy has been settled too. It is not stored again at all.
    wait_for(Duration::from_secs(30), "second batch stored", || async {
        matches!(store.event_counts().await, Ok(c) if c.distinct_events >= 2).then_some(())
    })
    .await?;
    assert_eq!(store.event_counts().await?.stored_rows, 2);
    let (_, body) = stack.session(&session).await?;
    let ids: Vec<&str> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{body}");
    assert_eq!(ids.iter().filter(|x| **x == id).count(), 1);
    assert_eq!(store.event_counts().await?.distinct_events, 2);
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn media_type_size_and_gzip_rules() -> anyhow::Result<()> {
    let id = unique("limits");
    let kafka = kafka_config(&format!("eye.test.{id}"));
    create_topics(&kafka).await?;
    let ingest = start_ingest_with(
        ingest_config(&[
            ("MAX_BODY_BYTES", "20000"),
            ("MAX_DECOMPRESSED_BYTES", "100000"),
            ("MAX_BATCH_EVENTS", "10"),
        ]),
        kafka,
    )
    .await?;
    let http = eye_e2e::http_client();
    let url = ingest.url("/v1/events");
    let ev = page_view("s", "2023-01-01 00:00:00").to_string();
    let gzip = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).and_then(|()| e.finish())
    };
    let big_batch = Value::Array(vec![page_view("s", "2023-01-01 00:00:00"); 11]).to_string();

    // (content-type, content-encoding, body, status, code)
    let cases: Vec<(Option<&str>, Option<&str>, Vec<u8>, u16, Option<&str>)> = vec![
        (
            Some("application/json"),
            None,
            ev.clone().into_bytes(),
            202,
            None,
        ),
        (
            Some("application/json; charset=utf-8"),
            Some("gzip"),
            gzip(ev.as_bytes())?,
            202,
            None,
        ),
        (
            Some("text/plain"),
            None,
            ev.clone().into_bytes(),
            415,
            Some("unsupported_media_type"),
        ),
        (
            None,
            None,
            ev.clone().into_bytes(),
            415,
            Some("unsupported_media_type"),
        ),
        (
            Some("application/json"),
            Some("br"),
            ev.clone().into_bytes(),
            415,
            Some("unsupported_encoding"),
        ),
        (
            Some("application/json"),
            None,
            vec![b' '; 20_001],
            413,
            Some("payload_too_large"),
        ),
        (
            Some("application/json"),
            Some("gzip"),
            gzip(&vec![b' '; 10_000_000])?,
            413,
            Some("decompressed_too_large"),
        ),
        (
            Some("application/json"),
            Some("gzip"),
            b"not gzip".to_vec(),
            400,
            Some("invalid_gzip"),
        ),
        (
            Some("application/json"),
            Some("gzip"),
            gzip(big_batch.as_bytes())?,
            413,
            Some("too_many_events"),
        ),
    ];
    for (ct, ce, body, status, code) in cases {
        let mut req = http.post(&url).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if let Some(ce) = ce {
            req = req.header("content-encoding", ce);
        }
        let res = req.send().await?;
        assert_eq!(res.status().as_u16(), status, "{ct:?} {ce:?} {code:?}");
        let body: Value = res.json().await?;
        if let Some(code) = code {
            assert_eq!(body["error"]["code"], code, "{body}");
        }
    }
    drop(http);
    ingest.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn session_lifecycle_in_any_order() -> anyhow::Result<()> {
    let stack = Stack::start("sessions").await?;
    let session = unique("machine");
    let post = |path: String, body: Value| {
        let http = stack.http.clone();
        let url = stack.ingest.url(&path);
        async move { http.post(url).json(&body).send().await }
    };
    // Events first, then the end, then the start: arrival order must not matter.
    assert_eq!(
        stack
            .post_events(&page_view(&session, "2023-02-02 16:30:00"))
            .await?
            .status(),
        202
    );
    let res = post(
        format!("/v1/sessions/{session}/end"),
        json!({"ended_at": "2023-02-02 17:00:00"}),
    )
    .await?;
    assert_eq!(res.status(), 202);
    let res = post(
        "/v1/sessions".into(),
        json!({"session_id": session, "user_id": "asfla-asdf-asdfa", "machine_id": "2343-asdf-fads", "org_id": 11232, "started_at": "2023-02-02 16:22:15"}),
    )
    .await?;
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await?["session_id"], session.as_str());

    let body = wait_for(Duration::from_secs(60), "session metadata", || async {
        match stack.session(&session).await {
            Ok((200, b))
                if b["session"]["started_at"].is_string()
                    && b["session"]["ended_at"].is_string()
                    && b["events"].as_array().map(Vec::len) == Some(1) =>
            {
                Some(b)
            }
            _ => None,
        }
    })
    .await?;
    assert_eq!(
        body["session"],
        json!({"user_id": "asfla-asdf-asdfa", "machine_id": "2343-asdf-fads", "org_id": "11232",
               "started_at": "2023-02-02T16:22:15.000000Z", "ended_at": "2023-02-02T17:00:00.000000Z"})
    );
    assert_eq!(body["events"].as_array().map(Vec::len), Some(1));

    // A start without session_id gets one; bad fields are named.
    let res = post(
        "/v1/sessions".into(),
        json!({"user_id": "u", "machine_id": "m", "org_id": "o", "started_at": 1675354935}),
    )
    .await?;
    assert_eq!(res.status(), 202);
    assert!(res.json::<Value>().await?["session_id"]
        .as_str()
        .is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()));
    let res = post(
        "/v1/sessions".into(),
        json!({"user_id": "u", "machine_id": "m", "started_at": "never"}),
    )
    .await?;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await?;
    assert_eq!(body["error"]["code"], "invalid_session");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, ["/org_id", "/started_at"]);
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_messages_are_quarantined_and_never_block_their_partition() -> anyhow::Result<()>
{
    let stack = Stack::start("poison").await?;
    let session = unique("poison");
    let producer: FutureProducer = eye_kafka::client::producer_config(&stack.kafka).create()?;
    for payload in [&b"\xff\xfe not json"[..], br#"{"v": 9}"#] {
        let record = FutureRecord::to(&stack.kafka.events_topic)
            .key(session.as_str())
            .payload(payload);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    // A valid event behind them, on the same key and so the same partition.
    assert_eq!(
        stack
            .post_events(&page_view(&session, "2023-01-01 00:00:00"))
            .await?
            .status(),
        202
    );
    wait_for(
        Duration::from_secs(60),
        "the event behind the poison",
        || async { matches!(stack.session(&session).await, Ok((200, _))).then_some(()) },
    )
    .await?;
    let quarantined = wait_for(Duration::from_secs(60), "poison quarantined", || async {
        let all = all_rejected(&stack, "&reason=undecodable", 100)
            .await
            .ok()?;
        (all.len() == 2).then_some(all)
    })
    .await?;
    for r in &quarantined {
        assert_eq!(r["source"], "consumer");
        assert_eq!(r["session_id"], session.as_str());
        assert!(r["reasons"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains(&stack.kafka.events_topic));
    }
    assert!(quarantined.iter().any(|r| r["raw"] == r#"{"v": 9}"#));
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_schemas_without_dropping_requests() -> anyhow::Result<()> {
    let id = unique("hup");
    let dir = std::env::temp_dir().join(format!("eye-schemas-{id}"));
    std::fs::create_dir_all(dir.join("page_interaction"))?;
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/page_interaction/page_view.json"
        ),
        dir.join("page_interaction/page_view.json"),
    )?;
    let kafka = kafka_config(&format!("eye.test.{id}"));
    create_topics(&kafka).await?;
    let dir_text = dir.to_string_lossy().into_owned();
    let ingest = start_ingest_with(ingest_config(&[("SCHEMA_DIR", &dir_text)]), kafka).await?;
    let http = eye_e2e::http_client();
    let url = ingest.url("/v1/events");
    let mut hover = page_view("s", "2023-01-01 00:00:00");
    hover["name"] = json!("hover");
    let post = {
        let (http, url) = (http.clone(), url.clone());
        move |body: Value| {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.post(url)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        }
    };
    assert_eq!(post(hover.clone()).await?, 400, "no schema for hover yet");

    // Requests keep flowing while the schemas are swapped.
    let flow = {
        let post = post.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..40 {
                statuses
                    .push(post(page_view("s", &format!("2023-01-01 00:00:{:02}", i % 60))).await);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            statuses
        })
    };
    std::fs::write(
        dir.join("page_interaction/hover.json"),
        r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "required": ["host"]}"#,
    )?;
    let pid = std::process::id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()?
        .success());
    wait_for(
        Duration::from_secs(10),
        "hover accepted after SIGHUP",
        || {
            let post = post.clone();
            let hover = hover.clone();
            async move { matches!(post(hover).await, Ok(202)).then_some(()) }
        },
    )
    .await?;
    let statuses = flow.await?;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(202))),
        "{statuses:?}"
    );

    // A broken file is refused as a whole: the previous schemas keep serving.
    std::fs::write(dir.join("page_interaction/broken.json"), "{not json")?;
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()?
        .success());
    let metrics = wait_for(Duration::from_secs(10), "reload error counted", || {
        let http = http.clone();
        let url = ingest.url("/metrics");
        async move {
            let text = http.get(url).send().await.ok()?.text().await.ok()?;
            text.contains("eye_ingest_schema_reloads_total{result=\"error\"} 1")
                .then_some(text)
        }
    })
    .await?;
    assert!(
        metrics.contains("eye_ingest_schema_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert_eq!(post(hover).await?, 202, "the previous schemas still serve");
    drop((http, post));
    std::fs::remove_dir_all(&dir)?;
    ingest.stop().await
}
