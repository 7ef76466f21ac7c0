//! End-to-end: what the delivery contract promises under retries and oversized input.
//! - A retried event is stored once, with the time of its first accepted copy, in every
//!   read, paged or not, even when the retry's corrected time lies in another month and
//!   the retry arrives after the first copy is stored.
//! - An `event_id` names an event within its session: the same id in two sessions is two
//!   events, in every read, counts and aggregations included.
//! - Every rejection reaches the quarantine whatever its size, cut to 64 KiB with the
//!   original's length and SHA-256; a client's error is never a 503, and a request part of
//!   which was stored is never answered 503.

use eye_e2e::{unique, wait_for, Stack};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

fn page_view(session: &str, id: &str, ts: &str, sent_at: Option<&str>, path: &str) -> Value {
    let mut e = json!({
        "event_id": id,
        "session_id": session,
        "category": "page_interaction",
        "name": "page_view",
        "data": {"host": "example.com", "path": path},
        "timestamp": ts,
    });
    if let Some(s) = sent_at {
        e["sent_at"] = json!(s);
    }
    e
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn get(stack: &Stack, path: &str) -> anyhow::Result<Value> {
    let res = stack.http.get(stack.query.url(path)).send().await?;
    anyhow::ensure!(res.status() == 200, "GET {path}: {}", res.status());
    Ok(res.json().await?)
}

/// Every page of a listing with `limit=1`, as (event_id, session_id, timestamp).
async fn walk(
    stack: &Stack,
    path: &str,
    key: &str,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let rows = stack.walk_pages(path, key).await?;
    Ok(rows
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap_or("").to_owned(),
                e["session_id"].as_str().unwrap_or("").to_owned(),
                e["timestamp"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect())
}

/// Ids of a listing, each with how often it appeared.
fn counted(rows: &[(String, String, String)]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for (id, session, _) in rows {
        *out.entry((id.clone(), session.clone())).or_insert(0) += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_with_a_new_sent_at_is_one_event_in_every_read() -> anyhow::Result<()> {
    let stack = Stack::start("retry").await?;
    let session = unique("retry");
    // The last second of a month long past: a copy whose clock-skew correction moves it a
    // day later lands in the next month's partition.
    let first_ts = "2026-10-31T23:59:59.500000Z";
    let late = uuid::Uuid::now_v7().to_string();
    let quick = uuid::Uuid::now_v7().to_string();
    let other = uuid::Uuid::now_v7().to_string();
    let now = chrono::Utc::now();
    let send = |id: &str, sent_at: chrono::DateTime<chrono::Utc>| {
        json!([page_view(
            &session,
            id,
            first_ts,
            Some(&rfc3339(sent_at)),
            "/"
        )])
    };
    // First copies, sent now (no skew); a neighbour so that pages have something around.
    for body in [
        send(&late, now),
        send(&quick, now),
        json!([page_view(
            &session,
            &other,
            "2026-10-31T23:59:58Z",
            None,
            "/n"
        )]),
    ] {
        assert_eq!(stack.post_events(&body).await?.status(), 202);
    }
    // `quick` is retried at once, as if its client's clock were a day behind: its copy
    // comes right behind the first, likely in the same consumer batch.
    let behind = now - chrono::Duration::days(1);
    assert_eq!(
        stack.post_events(&send(&quick, behind)).await?.status(),
        202
    );
    // `late` is retried only once its first copy is stored, with the same skew.
    wait_for(PATIENCE, "first copies stored", || async {
        let s = get(&stack, &format!("/v1/sessions/{session}")).await.ok()?;
        (s["events"].as_array()?.len() == 3).then_some(())
    })
    .await?;
    let before = get(&stack, &format!("/v1/sessions/{session}")).await?;
    let late_time = before["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["event_id"] == late.as_str())
        .map(|e| e["timestamp"].clone())
        .expect("the first copy of late is stored");
    assert_eq!(stack.post_events(&send(&late, behind)).await?.status(), 202);
    // Let both retries reach the consumer: a canary after them, on the same partition.
    let canary = uuid::Uuid::now_v7().to_string();
    let body = json!([page_view(
        &session,
        &canary,
        "2026-11-02T00:00:00Z",
        None,
        "/c"
    )]);
    assert_eq!(stack.post_events(&body).await?.status(), 202);
    wait_for(PATIENCE, "canary stored", || async {
        let s = get(&stack, &format!("/v1/sessions/{session}")).await.ok()?;
        s["events"]
            .as_array()?
            .iter()
            .any(|e| e["event_id"] == canary.as_str())
            .then_some(())
    })
    .await?;

    let first_second = "2026-10-31T23:59:59.";
    let want: BTreeMap<(String, String), usize> = [&late, &quick, &other, &canary]
        .iter()
        .map(|id| (((*id).clone(), session.clone()), 1))
        .collect();
    let listings = [
        (format!("/v1/events?session_id={session}&limit=1"), "events"),
        (
            format!("/v1/events?session_id={session}&limit=1&order=desc"),
            "events",
        ),
        (format!("/v1/sessions/{session}?limit=1"), "events"),
        (
            "/v1/events?category=page_interaction&name=page_view&limit=1".to_owned(),
            "events",
        ),
        (
            "/v1/events?category=page_interaction&name=page_view&limit=1&order=desc".to_owned(),
            "events",
        ),
    ];
    for (path, key) in &listings {
        let rows = walk(&stack, path, key).await?;
        assert_eq!(counted(&rows), want, "{path}: each event once");
        for (id, _, ts) in &rows {
            if id == &late {
                assert_eq!(ts, &late_time, "{path}: late keeps its first copy's time");
            }
            if id == &quick || id == &late {
                // The first copy's correction is the request's transit, milliseconds; the
                // retry's is a day.
                assert!(ts.starts_with(first_second), "{path}: {id} at {ts}");
            }
        }
        println!("{path}: {} events, each once", rows.len());
    }
    let whole = get(&stack, &format!("/v1/sessions/{session}/events?limit=100")).await?;
    assert_eq!(whole["events"].as_array().map(Vec::len), Some(4));
    let detail = get(&stack, &format!("/v1/sessions/{session}")).await?;
    assert_eq!(detail["event_count"], 4, "{detail}");
    let cats = get(&stack, "/v1/categories").await?;
    assert_eq!(cats["categories"][0]["events"], 4, "{cats}");
    let agg = get(
        &stack,
        "/v1/aggregate?category=page_interaction&name=page_view&granularity=month&agg=count",
    )
    .await?;
    let buckets: Vec<(String, f64)> = agg["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["start"].as_str().unwrap_or("").to_owned(),
                b["value"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    assert_eq!(
        buckets,
        vec![
            ("2026-10-01T00:00:00Z".to_owned(), 3.0),
            ("2026-11-01T00:00:00Z".to_owned(), 1.0)
        ],
        "the retries' month holds only the canary"
    );
    let store = stack.store()?;
    let counts = store.event_counts().await?;
    assert_eq!(
        (counts.stored_rows, counts.distinct_events),
        (4, 4),
        "no later copy is stored at all"
    );
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_id_names_an_event_within_its_session() -> anyhow::Result<()> {
    let stack = Stack::start("idscope").await?;
    let (s1, s2) = (unique("scope_a"), unique("scope_b"));
    let id = uuid::Uuid::now_v7().to_string();
    let ts = "2026-11-15T10:00:00Z";
    for (session, path) in [(&s1, "/first"), (&s2, "/second")] {
        let body = json!([page_view(session, &id, ts, None, path)]);
        assert_eq!(stack.post_events(&body).await?.status(), 202);
    }
    wait_for(PATIENCE, "both sessions stored", || async {
        let a = get(&stack, &format!("/v1/sessions/{s1}")).await.ok()?;
        let b = get(&stack, &format!("/v1/sessions/{s2}")).await.ok()?;
        (a["events"].as_array()?.len() == 1 && b["events"].as_array()?.len() == 1).then_some(())
    })
    .await?;
    for (session, path) in [(&s1, "/first"), (&s2, "/second")] {
        let s = get(&stack, &format!("/v1/sessions/{session}")).await?;
        assert_eq!(
            s["events"][0]["data"]["path"], path,
            "{session} keeps its own data"
        );
    }
    let want: BTreeMap<(String, String), usize> =
        [((id.clone(), s1.clone()), 1), ((id.clone(), s2.clone()), 1)].into();
    for order in ["asc", "desc"] {
        let path =
            format!("/v1/events?category=page_interaction&name=page_view&limit=1&order={order}");
        let rows = walk(&stack, &path, "events").await?;
        assert_eq!(counted(&rows), want, "{path}: the id once per session");
    }
    let cats = get(&stack, "/v1/categories").await?;
    assert_eq!(cats["categories"][0]["events"], 2, "{cats}");
    let agg = get(
        &stack,
        "/v1/aggregate?category=page_interaction&name=page_view&granularity=none&agg=count",
    )
    .await?;
    assert_eq!(agg["buckets"][0]["value"], 2.0, "{agg}");
    let counts = stack.store()?.event_counts().await?;
    assert_eq!(counts.distinct_events, 2);
    stack.stop().await
}

/// An oversized rejection the test sent, and what the quarantine must say of it.
struct Sent {
    what: &'static str,
    body: Vec<u8>,
    /// The quarantined payload's bytes: the whole body, or the one rejected item.
    quarantined: Vec<u8>,
    status: u16,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rejection_reaches_the_quarantine_whatever_its_size() -> anyhow::Result<()> {
    let stack = Stack::start("oversize").await?;
    let session = unique("oversize");
    let ts = "2026-11-20T10:00:00Z";
    let mut cases = Vec::new();

    // 2 MB that is not JSON: the whole body is quarantined.
    let garbage = vec![b'{'; 2_000_000];
    cases.push(Sent {
        what: "2 MB malformed body",
        body: garbage.clone(),
        quarantined: garbage,
        status: 400,
    });
    // One 2 MB event.
    let big = serde_json::to_vec(&page_view(
        &session,
        &uuid::Uuid::now_v7().to_string(),
        ts,
        None,
        &"p".repeat(2_000_000),
    ))?;
    cases.push(Sent {
        what: "2 MB event",
        body: [b"[", &big[..], b"]"].concat(),
        quarantined: big,
        status: 400,
    });
    // An event with 100,000 tiny keys in its data.
    let mut keys = String::from(r#"{"host":"h","path":"/""#);
    for i in 0..100_000 {
        keys.push_str(&format!(r#","k{i}":0"#));
    }
    keys.push('}');
    let many = format!(
        r#"{{"session_id":"{session}","category":"page_interaction","name":"page_view","timestamp":"{ts}","data":{keys}}}"#
    )
    .into_bytes();
    cases.push(Sent {
        what: "100,000 keys",
        body: [b"[", &many[..], b"]"].concat(),
        quarantined: many,
        status: 400,
    });
    // 1,001 events of 1.2 KiB: too many for one request, quarantined whole.
    let items: Vec<Value> = (0..1001)
        .map(|i| {
            page_view(
                &session,
                &uuid::Uuid::now_v7().to_string(),
                ts,
                None,
                &format!("/{i}{}", "x".repeat(1150)),
            )
        })
        .collect();
    let batch = serde_json::to_vec(&items)?;
    cases.push(Sent {
        what: "1,001 events",
        body: batch.clone(),
        quarantined: batch,
        status: 413,
    });
    // One valid event beside one of 1.2 MB: the valid one is stored, the other quarantined.
    let valid_id = uuid::Uuid::now_v7().to_string();
    let valid = page_view(&session, &valid_id, ts, None, "/ok");
    let huge = serde_json::to_vec(&page_view(
        &session,
        &uuid::Uuid::now_v7().to_string(),
        ts,
        None,
        &"q".repeat(1_200_000),
    ))?;
    let mixed = [
        b"[",
        &serde_json::to_vec(&valid)?[..],
        b",",
        &huge[..],
        b"]",
    ]
    .concat();
    cases.push(Sent {
        what: "valid + 1.2 MB",
        body: mixed,
        quarantined: huge,
        status: 207,
    });

    for case in &cases {
        // Sent three times, as a client retrying would: never a 503.
        for attempt in 0..3 {
            let res = stack
                .http
                .post(stack.ingest.url("/v1/events"))
                .header("content-type", "application/json")
                .body(case.body.clone())
                .send()
                .await?;
            let status = res.status().as_u16();
            let answer: Value = res.json().await.unwrap_or(Value::Null);
            assert_eq!(
                status, case.status,
                "{} (attempt {attempt}): {}",
                case.what, answer
            );
        }
        println!(
            "{}: {} bytes, answered {} three times",
            case.what,
            case.body.len(),
            case.status
        );
    }

    // Each oversized payload is in the quarantine three times, cut, with its digest.
    let quarantined = wait_for(PATIENCE, "every rejection quarantined", || async {
        let all = stack
            .walk_pages("/v1/rejected?limit=100", "rejected")
            .await
            .ok()?;
        (all.len() >= 3 * cases.len()).then_some(all)
    })
    .await?;
    for case in &cases {
        let digest = sha256_hex(&case.quarantined);
        let found: Vec<&Value> = quarantined
            .iter()
            .filter(|r| r["raw_sha256"] == digest.as_str())
            .collect();
        assert_eq!(
            found.len(),
            3,
            "{}: quarantined once per attempt",
            case.what
        );
        for r in found {
            assert_eq!(r["raw_bytes"], case.quarantined.len(), "{}", case.what);
            assert_eq!(r["raw_truncated"], true, "{}", case.what);
            let raw = r["raw"].as_str().unwrap_or("");
            assert!(
                raw.len() <= 65_536,
                "{}: {} bytes kept",
                case.what,
                raw.len()
            );
            assert!(
                case.quarantined.starts_with(raw.as_bytes()),
                "{}: the kept text is the payload's beginning",
                case.what
            );
        }
    }
    // The valid event of the mixed request: stored once, though it was sent three times.
    let stored = wait_for(PATIENCE, "the valid event", || async {
        let s = get(&stack, &format!("/v1/sessions/{session}")).await.ok()?;
        let events = s["events"].as_array()?.clone();
        (!events.is_empty()).then_some(events)
    })
    .await?;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["event_id"], valid_id.as_str());
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumers_dead_letters_fit_the_broker_whatever_their_size() -> anyhow::Result<()> {
    let stack = Stack::start("bigpoison").await?;
    let session = unique("bigpoison");
    let producer: FutureProducer = eye_kafka::client::producer_config(&stack.kafka).create()?;
    // 900 KB of quotes: under the broker's limit as it is, twice over it once escaped into a
    // dead-letter record's JSON.
    let poison = vec![b'"'; 900_000];
    let record = FutureRecord::to(&stack.kafka.events_topic)
        .key(session.as_str())
        .payload(&poison);
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)?;
    // A valid event behind it on the same partition must still be stored.
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!([page_view(&session, &id, "2026-11-20T10:00:00Z", None, "/")]);
    assert_eq!(stack.post_events(&body).await?.status(), 202);
    let digest = sha256_hex(&poison);
    let found = wait_for(PATIENCE, "the dead letter quarantined", || async {
        let all = stack
            .walk_pages("/v1/rejected?limit=100&reason=undecodable", "rejected")
            .await
            .ok()?;
        all.into_iter().find(|r| r["raw_sha256"] == digest.as_str())
    })
    .await?;
    assert_eq!(found["raw_bytes"], 900_000);
    assert_eq!(found["raw_truncated"], true);
    assert_eq!(found["source"], "consumer");
    wait_for(PATIENCE, "the event behind the poison", || async {
        let s = get(&stack, &format!("/v1/sessions/{session}")).await.ok()?;
        (s["events"].as_array()?.len() == 1).then_some(())
    })
    .await?;
    stack.stop().await
}
