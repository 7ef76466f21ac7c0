//! Segment's tracking API end to end: requests as Segment's SDKs send them, to an ingest on
//! the real broker, read back through the query API.

use eye_auth::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};
use eye_e2e::*;
use eye_model::schema::UnknownTypePolicy;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

/// A client of `policy` for types without a schema; its write key.
fn client(records: &mut Vec<ClientRecord>, policy: Option<UnknownTypePolicy>) -> String {
    let c = NewCredentials::generate().expect("random bytes");
    records.push(ClientRecord {
        rate_limits: RateLimits::unlimited(),
        unknown_types: policy,
        ..c.record("segment", vec![Scope::EventsWrite])
    });
    c.api_key()
}

struct Sent {
    status: u16,
    body: Value,
}

/// Posts `body` to `route` the way the SDKs do: the write key by Basic (`analytics-node`,
/// `rudder-sdk-python`), or in the body (`analytics-python`), gzipped or not.
async fn send(url: String, key: Option<&str>, body: &Value, gzip: bool) -> anyhow::Result<Sent> {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    if let Some(k) = key {
        req = req.basic_auth(k, Some(""));
    }
    let bytes = serde_json::to_vec(body)?;
    req = if gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes)?;
        req.header("content-encoding", "gzip").body(gz.finish()?)
    } else {
        req.body(bytes)
    };
    let res = req.send().await?;
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    Ok(Sent { status, body })
}

/// The events of `session` once there are `n`, by name.
async fn events(stack: &Stack, session: &str, n: usize) -> anyhow::Result<Vec<Value>> {
    wait_for(Duration::from_secs(60), "events stored", || async {
        let (status, body) = stack.session(session).await.ok()?;
        let list = body["events"].as_array()?.clone();
        (status == 200 && list.len() >= n).then_some(list)
    })
    .await
}

#[tokio::test]
async fn segment_messages_become_events_once_each() -> anyhow::Result<()> {
    let stack = Stack::start("segment").await?;
    let mut records = Vec::new();
    let accepting = client(&mut records, Some(UnknownTypePolicy::Accept));
    let rejecting = client(&mut records, Some(UnknownTypePolicy::Reject));
    let dir = std::env::temp_dir().join(unique("eye-e2e-segment"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("clients.toml");
    ClientsFile { clients: records }.save(&path)?;
    let ingest =
        start_ingest_authed(ingest_config(&[]), stack.kafka.clone(), auth_config(&path)).await?;
    wait_ready(&[&ingest]).await?;
    let url = |route: &str| ingest.url(route);

    // Every type alone, by Basic, the write key in the body, gzipped or not.
    let alone = unique("alone");
    let t = "2026-12-01T10:00:00Z";
    let singles = [
        (
            "/v1/track",
            json!({"event": "Product Viewed", "properties": {"sku": "a-1"}}),
        ),
        (
            "/v1/page",
            json!({"name": "Home", "properties": {"path": "/"}}),
        ),
        ("/v1/screen", json!({"name": "Login"})),
        ("/v1/identify", json!({"traits": {"plan": "pro"}})),
        (
            "/v1/group",
            json!({"groupId": "g-1", "traits": {"size": 3}}),
        ),
        ("/v1/alias", json!({"previousId": "old-id"})),
    ];
    for (i, (route, mut message)) in singles.into_iter().enumerate() {
        message["userId"] = json!("u-1");
        message["anonymousId"] = json!(alone);
        message["messageId"] = json!(format!("{alone}-{i}"));
        message["timestamp"] = json!(t);
        let by_body = i % 2 == 1;
        if by_body {
            message["writeKey"] = json!(accepting);
        }
        let key = (!by_body).then_some(accepting.as_str());
        let sent = send(url(route), key, &message, i % 3 == 0).await?;
        anyhow::ensure!(
            sent.status == 200 && sent.body == json!({"success": true}),
            "{route}: {} {}",
            sent.status,
            sent.body
        );
    }
    let stored = events(&stack, &alone, 6).await?;
    let mut kinds: Vec<String> = stored
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["category"].as_str().unwrap_or(""),
                e["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "alias/alias",
            "group/group",
            "identify/identify",
            "page/Home",
            "screen/Login",
            "track/Product Viewed"
        ]
    );
    let track = stored
        .iter()
        .find(|e| e["category"] == "track")
        .expect("the track event");
    assert_eq!(track["data"]["properties"]["sku"], "a-1");
    assert_eq!(track["data"]["userId"], "u-1");
    let all = serde_json::to_string(&stored)?;
    assert!(!all.contains(&accepting), "the write key is never stored");

    // Every type in one batch, analytics-python's way (key in the body, sentAt on the
    // batch); sent twice, as an SDK retries: each message is one event. Non-UUID and UUID
    // messageIds alike.
    let batched = unique("batched");
    let uuid = uuid::Uuid::now_v7().to_string();
    let types = ["track", "page", "screen", "identify", "group", "alias"];
    let batch: Vec<Value> = types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            json!({"type": ty, "event": "Signed Up", "anonymousId": batched,
                   "messageId": if i == 0 { uuid.clone() } else { format!("{batched}-{i}") },
                   "timestamp": t, "properties": {"i": i}})
        })
        .collect();
    let body = json!({"batch": batch, "sentAt": t, "writeKey": accepting});
    for attempt in 0..2 {
        let sent = send(url("/v1/batch"), None, &body, attempt == 1).await?;
        anyhow::ensure!(sent.status == 200, "attempt {attempt}: {}", sent.body);
    }
    let stored = events(&stack, &batched, 6).await?;
    // The consumer settles copies in the batch that carries them; give a late copy time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored_again = events(&stack, &batched, 6).await?;
    assert_eq!(
        (stored.len(), stored_again.len()),
        (6, 6),
        "each message once"
    );
    assert!(
        stored.iter().any(|e| e["event_id"] == json!(uuid)),
        "a UUID messageId is the id"
    );

    // A partial batch: the valid message is stored, the other quarantined and listed.
    let partial = unique("partial");
    let body = json!({"batch": [
        {"type": "track", "event": "Kept", "anonymousId": partial, "messageId": "p-1", "timestamp": t},
        {"type": "track", "event": "Orphan", "messageId": "p-2", "timestamp": t},
    ]});
    let sent = send(url("/v1/batch"), Some(&accepting), &body, false).await?;
    assert_eq!(sent.status, 200);
    assert_eq!(sent.body["rejected"][0]["index"], 1, "{}", sent.body);
    assert_eq!(
        sent.body["rejected"][0]["errors"][0]["field"],
        "/anonymousId"
    );
    events(&stack, &partial, 1).await?;
    let quarantined = wait_for(Duration::from_secs(60), "the rejection stored", || async {
        let listed = stack
            .walk_pages("/v1/rejected?limit=1000", "rejected")
            .await
            .ok()?;
        listed
            .into_iter()
            .find(|r| r["raw"].as_str().is_some_and(|s| s.contains("Orphan")))
    })
    .await?;
    assert_eq!(quarantined["source"], "ingest/segment");

    // The client's policy for types without a schema, both ways; a planned type is checked.
    let policy = unique("policy");
    let message = |event: &str, order_id: Value| {
        json!({"type": "track", "event": event, "userId": policy, "messageId": format!("{policy}-{event}-{order_id}"),
               "timestamp": t, "properties": {"order_id": order_id, "revenue": 5}})
    };
    let cases = [
        (
            &rejecting,
            message("Unplanned", json!("o")),
            400,
            "invalid_messages",
        ),
        (&accepting, message("Unplanned", json!("o")), 200, ""),
        (
            &rejecting,
            message("Order Completed", json!("o-1")),
            200,
            "",
        ),
        (
            &accepting,
            message("Order Completed", json!(1)),
            400,
            "invalid_messages",
        ),
    ];
    for (i, (key, m, status, code)) in cases.into_iter().enumerate() {
        let sent = send(url("/v1/track"), Some(key), &m, false).await?;
        assert_eq!(sent.status, status, "case {i}: {}", sent.body);
        if !code.is_empty() {
            assert_eq!(sent.body["error"]["code"], code, "case {i}");
        }
    }
    let names: Vec<Value> = events(&stack, &policy, 2)
        .await?
        .into_iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names.len(), 2);

    // Credentials: a wrong key by Basic or in the body, and none, are 401 and store nothing.
    let nobody = unique("nobody");
    let m = json!({"event": "E", "userId": nobody, "timestamp": t});
    let mut in_body = m.clone();
    in_body["writeKey"] = json!("eye_0000000000000000.wrong");
    for (i, (key, body)) in [
        (Some("eye_0000000000000000.wrong"), &m),
        (None, &in_body),
        (None, &m),
    ]
    .into_iter()
    .enumerate()
    {
        let sent = send(url("/v1/track"), key, body, false).await?;
        assert_eq!(sent.status, 401, "case {i}: {}", sent.body);
    }

    // Limits: a message over 32 KB is refused alone; a body over 500 KB whole (413).
    let big = json!({"type": "track", "event": "Big", "userId": "u", "properties": {"pad": "x".repeat(40_000)}});
    let body =
        json!({"batch": [big, {"type": "track", "event": "Small", "userId": "u", "timestamp": t}]});
    let sent = send(url("/v1/batch"), Some(&accepting), &body, false).await?;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(
        sent.body["rejected"][0]["errors"][0]["code"],
        "message_too_large"
    );
    let huge: Vec<Value> = (0..20)
        .map(|_| json!({"type": "track", "event": "E", "userId": "u", "properties": {"pad": "x".repeat(30_000)}}))
        .collect();
    let sent = send(
        url("/v1/batch"),
        Some(&accepting),
        &json!({"batch": huge}),
        true,
    )
    .await?;
    assert_eq!(
        (sent.status, sent.body["error"]["code"].clone()),
        (413, json!("payload_too_large"))
    );

    ingest.stop().await?;
    stack.stop().await
}
