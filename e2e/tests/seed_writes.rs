//! End-to-end: each seed's write API on ingest, run with the seed documents' own request
//! examples (`shared/seeds/`), and read back through the `/v1` query API: what was stored,
//! what was quarantined (with its door as `source`), and the metrics by door. Where a
//! document writes a placeholder for a time (`"timestamp"`), the example is sent as written
//! and must be refused naming the field, then sent again with a real time.

use eye_e2e::{test_auth, unique, wait_for, Stack};
use serde_json::{json, Value};
use std::time::Duration;

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    /// `Authorization: <scheme> <credential>`.
    Scheme(&'a str, &'a str),
}

fn key() -> &'static str {
    &test_auth().api_key
}

/// A status, the answer's media type, headers and body (JSON, or the text as a string).
struct Answer {
    status: u16,
    media: String,
    session_header: Option<String>,
    body: Value,
}

async fn post(url: String, body: &str, auth: Auth<'_>) -> anyhow::Result<Answer> {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Auth::Scheme(scheme, credential) = auth {
        req = req.header("authorization", format!("{scheme} {credential}"));
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let media = header("content-type").unwrap_or_default();
    let session_header = header("x-session-id");
    let text = res.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer {
        status,
        media,
        session_header,
        body,
    })
}

async fn post_json(url: String, body: &Value, auth: Auth<'_>) -> anyhow::Result<Answer> {
    post(url, &body.to_string(), auth).await
}

/// `GET` on the query service as the harness's client.
async fn get(stack: &Stack, path: &str) -> anyhow::Result<(u16, Value)> {
    let res = stack.http.get(stack.query.url(path)).send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await.unwrap_or(Value::Null)))
}

/// Polls `path` until its 200 body satisfies `ready`.
async fn wait_body(
    stack: &Stack,
    path: &str,
    ready: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    wait_for(Duration::from_secs(60), path, || async {
        match get(stack, path).await {
            Ok((200, body)) if ready(&body) => Some(body),
            _ => None,
        }
    })
    .await
}

/// A time the query service rendered (or this test wrote), as an instant.
fn at(v: &Value) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The error details' fields of an error answer.
fn fields(body: &Value) -> Vec<&str> {
    body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["field"].as_str())
        .collect()
}

/// The quarantined records that came in by `source` and whose text holds `marker`, once
/// `want` of them are stored.
async fn quarantined(
    stack: &Stack,
    source: &str,
    marker: &str,
    want: usize,
) -> anyhow::Result<Vec<Value>> {
    wait_for(Duration::from_secs(60), "quarantined records", || async {
        let all = stack
            .walk_pages("/v1/rejected?limit=500", "rejected")
            .await
            .ok()?;
        let mine: Vec<Value> = all
            .into_iter()
            .filter(|r| {
                r["source"] == source && r["raw"].as_str().is_some_and(|t| t.contains(marker))
            })
            .collect();
        (mine.len() >= want).then_some(mine)
    })
    .await
}

/// `eye_ingest_events_total{adapter, outcome}` as ingest's `/metrics` says it.
async fn counted(stack: &Stack, adapter: &str, outcome: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(stack.ingest.url("/metrics"))
        .await?
        .text()
        .await?;
    let labels = [
        format!("adapter=\"{adapter}\""),
        format!("outcome=\"{outcome}\""),
    ];
    Ok(text
        .lines()
        .filter(|l| l.starts_with("eye_ingest_events_total{"))
        .filter(|l| labels.iter().all(|x| l.contains(x.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Seed 000's trackers: sessions started (with and without an id), events added (resent
/// once), sessions ended; its examples' placeholders refused naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn tracker_examples_record_sessions_and_events() -> anyhow::Result<()> {
    let stack =
        Stack::start_with("seed_tracker", &[], &[("UNKNOWN_TYPE_POLICY", "accept")]).await?;
    let auth = Auth::Scheme("Bearer", key());
    let id = unique("trk");
    let session = format!("y25v9-jbyr-{id}");
    let machine = format!("2343-asdf-{id}");
    let url = |path: &str| stack.ingest.url(path);

    // The documented start, as written: its time is a placeholder.
    let example = json!({"userId": "asfla-asdf-asdfa", "machineId": machine, "startAt": "timestamp", "orgId": 11232});
    let a = post_json(url("/start_session"), &example, auth).await?;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(fields(&a.body), ["/startAt"], "{}", a.body);

    // With a real time and no session id: the server names the session.
    let mut start = example.clone();
    start["startAt"] = json!("2023-02-02 16:22:15");
    let a = post_json(url("/start_session"), &start, auth).await?;
    assert_eq!((a.status, a.body.as_str()), (200, Some("request received")));
    assert_eq!(a.media, "text/html; charset=utf-8");
    let generated = a.session_header.expect("the generated session id");
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");

    // With its own id, the time as epoch seconds in text.
    start["sessionId"] = json!(session);
    start["startAt"] = json!("1675354935");
    let a = post_json(url("/start_session"), &start, auth).await?;
    assert_eq!(
        (a.status, a.session_header.as_deref()),
        (200, Some(session.as_str()))
    );

    // The documented add_event, as written, then with real times.
    let example = json!({"sessionId": session, "events": [{"eventAt": "timestamp", "eventType": "{event_type}", "payload": {}}]});
    let a = post_json(url("/add_event"), &example, auth).await?;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(fields(&a.body), ["/events/0/eventAt"], "{}", a.body);
    let events = json!({"sessionId": session, "events": [
        {"eventAt": "2023-02-02 16:22:15", "eventType": "applicationStarted", "payload": {"info": "someInfo"}},
        {"eventAt": 1675904935, "eventType": "exe", "payload": {"info": "someInfo"}},
        {"eventAt": "2023-02-09 01:05:23.250", "eventType": "{event_type}", "payload": {}},
    ]});
    for _ in 0..2 {
        // Sent twice, as a client retrying a lost answer would: stored once.
        let a = post_json(url("/add_event"), &events, auth).await?;
        assert_eq!((a.status, a.body.as_str()), (200, Some("request received")));
    }
    let empty = json!({"sessionId": session, "events": []});
    assert_eq!(
        post_json(url("/add_event"), &empty, auth).await?.status,
        200
    );

    // The documented end, as written, then with a real time.
    let example = json!({"sessionId": "32342-234s-42343", "endAt": "timestamp"});
    let a = post_json(url("/end_session"), &example, auth).await?;
    assert_eq!(
        (a.status, fields(&a.body)),
        (400, vec!["/endAt"]),
        "{}",
        a.body
    );
    let end = json!({"sessionId": session, "endAt": "2023-02-09 02:00:00"});
    let a = post_json(url("/end_session"), &end, auth).await?;
    assert_eq!((a.status, a.body.as_str()), (200, Some("request received")));

    // Malformed JSON and a missing credential.
    let a = post(url("/add_event"), r#"{"sessionId": "s",}"#, auth).await?;
    assert_eq!(
        (a.status, &a.body["error"]["code"]),
        (400, &json!("malformed_json"))
    );
    assert_eq!(
        post_json(url("/end_session"), &end, Auth::None)
            .await?
            .status,
        401
    );

    let path = format!("/v1/sessions/{}/events", encode(&session));
    let body = wait_body(&stack, &path, |b| {
        len(&b["events"]) == 3 && !b["session"]["ended_at"].is_null()
    })
    .await?;
    let meta = &body["session"];
    assert_eq!(
        (&meta["user_id"], &meta["machine_id"], &meta["org_id"]),
        (&json!("asfla-asdf-asdfa"), &json!(machine), &json!("11232"))
    );
    assert_eq!(at(&meta["started_at"]), at(&json!("2023-02-02T16:22:15Z")));
    assert_eq!(at(&meta["ended_at"]), at(&json!("2023-02-09T02:00:00Z")));
    assert!(at(&meta["ended_at"]).is_some(), "{meta}");
    let got: Vec<(&Value, &Value, &Value, &Value)> = body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (&e["category"], &e["name"], &e["timestamp"], &e["data"]))
        .collect();
    let want = [
        (
            json!("machine"),
            json!("applicationStarted"),
            json!("2023-02-02T16:22:15Z"),
            json!({"info": "someInfo"}),
        ),
        (
            json!("machine"),
            json!("_event_type_"),
            json!("2023-02-09T01:05:23.250Z"),
            json!({"_eventType": "{event_type}"}),
        ),
        (
            json!("machine"),
            json!("exe"),
            json!("2023-02-09T01:08:55Z"),
            json!({"info": "someInfo"}),
        ),
    ];
    assert_eq!(got.len(), want.len(), "{body}");
    for (i, ((c, n, t, d), (wc, wn, wt, wd))) in got.into_iter().zip(&want).enumerate() {
        assert_eq!((c, n, d), (wc, wn, wd), "event {i}: {body}");
        assert_eq!(at(t), at(wt), "event {i}: {body}");
    }

    // The generated session was stored under the id the header named.
    let path = format!("/v1/sessions/{}/events", encode(&generated));
    wait_body(&stack, &path, |b| {
        b["session"]["machine_id"] == json!(machine)
    })
    .await?;

    // Every refusal is in the quarantine, by this door; the metrics count by door.
    let rejected = quarantined(&stack, "ingest/tracker", "timestamp", 3).await?;
    let mut codes: Vec<&str> = rejected
        .iter()
        .flat_map(|r| r["reasons"].as_array().into_iter().flatten())
        .filter_map(|r| r["code"].as_str())
        .collect();
    codes.sort();
    assert!(
        codes.contains(&"invalid_fields") && codes.contains(&"invalid_timestamp"),
        "{codes:?}"
    );
    assert!(counted(&stack, "tracker", "produced").await? >= 6.0);
    assert!(counted(&stack, "tracker", "quarantined").await? >= 4.0);
    stack.stop().await
}

/// Seeds 001 and 003: one event per request in the `/v1` shape, answered with the event as
/// sent; seed 003's clients authenticate with `Token <key>`.
#[tokio::test(flavor = "multi_thread")]
async fn single_event_examples_answer_the_event_as_sent() -> anyhow::Result<()> {
    let stack = Stack::start_with("seed_single", &[], &[("UNKNOWN_TYPE_POLICY", "accept")]).await?;
    let bearer = Auth::Scheme("Bearer", key());
    let id = unique("one");
    let url = |path: &str| stack.ingest.url(path);

    // Seed 001's first example as its author sent it, with the trailing comma.
    let sent = format!(
        "{{\n\"session_id\": \"e2085be5-9137-4e4e-80b5-{id}\",\n\"category\": \"party\",\n\"name\": \"AppName\",\n\"data\": {{\n\"host\": \"www.party.com\",\n\"path\": \"/\",\n}},\n\"timestamp\": \"2021-09-26 09:15:27.243860\"\n}}"
    );
    let a = post(url("/events"), &sent, bearer).await?;
    assert_eq!(
        (a.status, &a.body["error"]["code"]),
        (400, &json!("malformed_json"))
    );
    let message = a.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("trailing comma") && message.contains("line 8"),
        "{message}"
    );

    let party_session = format!("e2085be5-9137-4e4e-80b5-{id}");
    let party = json!({"session_id": party_session, "category": "party", "name": "AppName",
        "data": {"host": "www.party.com", "path": "/"}, "timestamp": "2021-09-26 09:15:27.243860"});
    let a = post_json(url("/events"), &party, bearer).await?;
    assert_eq!(a.status, 201, "{}", a.body);
    let event_id = a.body["event_id"].as_str().expect("an event_id").to_owned();
    let mut answered = a.body.clone();
    answered.as_object_mut().map(|m| m.remove("event_id"));
    assert_eq!(answered, party);

    // An invalid time stamp: refused naming the field, with the event as sent.
    let mut bad = party.clone();
    bad["timestamp"] = json!(format!("2021-09-26 25:15:27 {id}"));
    let a = post_json(url("/events"), &bad, bearer).await?;
    assert_eq!(
        (a.status, fields(&a.body)),
        (400, vec!["/timestamp"]),
        "{}",
        a.body
    );
    assert_eq!(a.body["event"], bad);

    // An array is a batch, which this door does not take.
    let a = post_json(url("/events"), &json!([party]), bearer).await?;
    assert_eq!(
        (a.status, &a.body["error"]["code"]),
        (400, &json!("not_one_event"))
    );

    // Seed 003's example, with its Token scheme, and with a bearer key.
    let form_session = format!("e2085be5-9137-4e4e-80b5-f1{id}");
    let form = json!({"session_id": form_session, "category": "form interaction", "name": "submit",
        "data": {"host": "www.consumeraffairs.com", "path": "/", "form": {"first_name": "George", "last_name": "Doe"}},
        "timestamp": "2022-01-09 09:15:27.243860"});
    let a = post_json(url("/eye/collector"), &form, Auth::Scheme("Token", key())).await?;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["category"], "form interaction");
    assert!(uuid::Uuid::parse_str(a.body["event_id"].as_str().unwrap_or("")).is_ok());
    let mut second = form.clone();
    second["timestamp"] = json!("2022-01-09 09:16:27");
    assert_eq!(
        post_json(url("/eye/collector"), &second, bearer)
            .await?
            .status,
        201
    );
    let a = post_json(url("/eye/collector"), &form, Auth::None).await?;
    assert_eq!(a.status, 401);
    let a = post_json(
        url("/eye/collector"),
        &form,
        Auth::Scheme("Token", "eye_nope.nope"),
    )
    .await?;
    assert_eq!(a.status, 401);
    let mut future = form.clone();
    future["timestamp"] = json!("2999-01-01 00:00:00");
    let a = post_json(url("/eye/collector"), &future, bearer).await?;
    assert_eq!(
        (a.status, fields(&a.body)),
        (400, vec!["/timestamp"]),
        "{}",
        a.body
    );

    let path = format!(
        "/v1/events?category=party&session_id={}",
        encode(&party_session)
    );
    let body = wait_body(&stack, &path, |b| len(&b["events"]) == 1).await?;
    assert_eq!(body["events"][0]["event_id"], json!(event_id));
    assert_eq!(body["events"][0]["data"], party["data"]);
    let path = format!(
        "/v1/events?category={}&session_id={}",
        encode("form interaction"),
        encode(&form_session)
    );
    let body = wait_body(&stack, &path, |b| len(&b["events"]) == 2).await?;
    assert_eq!(body["events"][0]["data"], form["data"]);

    quarantined(&stack, "ingest/rest_events", &id, 3).await?;
    quarantined(&stack, "ingest/collector", "2999-01-01", 1).await?;
    assert_eq!(counted(&stack, "rest_events", "produced").await?, 1.0);
    assert_eq!(counted(&stack, "collector", "produced").await?, 2.0);
    assert_eq!(counted(&stack, "collector", "quarantined").await?, 1.0);
    stack.stop().await
}

/// Seed 004: with the shipped schemas and the `reject` policy, `POST /events` takes its
/// three typed payloads and nothing else, and stores nothing it refused.
#[tokio::test(flavor = "multi_thread")]
async fn typed_events_are_taken_and_others_refused() -> anyhow::Result<()> {
    let stack = Stack::start_with("seed_typed", &[], &[("UNKNOWN_TYPE_POLICY", "reject")]).await?;
    let bearer = Auth::Scheme("Bearer", key());
    let session = unique("typed");
    let event = |category: &str, name: &str, data: Value, ts: &str| json!({"session_id": session, "category": category, "name": name, "data": data, "timestamp": ts});
    let host = "www.consumeraffairs.com";
    let taken = [
        event(
            "page_interaction",
            "page_view",
            json!({"host": host, "path": "/"}),
            "2022-01-01 00:00:00.000000",
        ),
        event(
            "page_interaction",
            "cta_click",
            json!({"host": host, "path": "/", "element": "chat bubble"}),
            "2022-04-11T01:08:01.407119",
        ),
        event(
            "form_interaction",
            "submit",
            json!({"host": host, "path": "/", "form": {"first_name": "John", "last_name": "Doe"}}),
            "2022-04-11 01:08:02.407119",
        ),
    ];
    for e in &taken {
        let a = post_json(stack.ingest.url("/events"), e, bearer).await?;
        assert_eq!(a.status, 201, "{e}: {}", a.body);
    }
    // (event, the field the refusal names)
    let refused = [
        (
            event(
                "party",
                "AppName",
                json!({"host": host, "path": "/"}),
                "2022-01-01 00:00:00",
            ),
            "",
        ),
        (
            event(
                "page_interaction",
                "page_view",
                json!({"host": host}),
                "2022-01-01 00:00:00",
            ),
            "/data/path",
        ),
        (
            event(
                "page_interaction",
                "cta_click",
                json!({"host": host, "path": "/"}),
                "2022-01-01 00:00:00",
            ),
            "/data/element",
        ),
    ];
    for (e, field) in &refused {
        let a = post_json(stack.ingest.url("/events"), e, bearer).await?;
        assert_eq!(a.status, 400, "{e}: {}", a.body);
        assert_eq!(fields(&a.body), [*field], "{e}: {}", a.body);
        assert_eq!(&a.body["event"], e);
    }
    let path = format!("/v1/events?session_id={}", encode(&session));
    let body = wait_body(&stack, &path, |b| len(&b["events"]) >= 3).await?;
    // The quarantined ones arrived before the page was read; none of them is an event.
    quarantined(&stack, "ingest/rest_events", &session, 3).await?;
    let body = get(&stack, &path).await.map(|(_, b)| b).unwrap_or(body);
    let names: Vec<&str> = body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["page_view", "cta_click", "submit"], "{body}");
    stack.stop().await
}

/// Seed 002: tokens from `POST /o/token/` (by Basic and by form fields, on both services),
/// measurements tracked with them, and the aggregation scope enforced.
#[tokio::test(flavor = "multi_thread")]
async fn measurements_with_toolkit_tokens() -> anyhow::Result<()> {
    let stack =
        Stack::start_with("seed_measure", &[], &[("UNKNOWN_TYPE_POLICY", "accept")]).await?;
    let auth = test_auth();
    let http = reqwest::Client::new();
    let token = |base: String, scope: &'static str, basic: bool| {
        let http = http.clone();
        async move {
            let mut form = vec![
                ("grant_type", "client_credentials".to_owned()),
                ("scope", scope.to_owned()),
            ];
            let mut req = http.post(format!("{base}/o/token/"));
            if basic {
                req = req.basic_auth(&auth.client_id, Some(&auth.client_secret));
            } else {
                form.push(("client_id", auth.client_id.clone()));
                form.push(("client_secret", auth.client_secret.clone()));
            }
            let res = req.form(&form).send().await?;
            let status = res.status().as_u16();
            anyhow::Ok((status, res.json::<Value>().await?))
        }
    };
    let all = "read write aggregation";
    for (base, basic) in [(stack.ingest.url(""), true), (stack.query.url(""), false)] {
        let (status, body) = token(base, all, basic).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (&body["token_type"], &body["scope"]),
            (&json!("Bearer"), &json!(all))
        );
        assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0));
    }
    let (_, body) = token(stack.ingest.url(""), all, true).await?;
    let full = body["access_token"].as_str().expect("a token").to_owned();
    let (_, body) = token(stack.query.url(""), "read write", false).await?;
    let no_aggregation = body["access_token"].as_str().expect("a token").to_owned();

    // OAuth2's errors.
    let res = http
        .post(stack.ingest.url("/o/token/"))
        .form(&[("grant_type", "password")])
        .basic_auth(&auth.client_id, Some(&auth.client_secret))
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(
        res.json::<Value>().await?["error"],
        "unsupported_grant_type"
    );
    let (status, body) = token(stack.ingest.url(""), "read telepathy", true).await?;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_scope")));
    let res = http
        .post(stack.query.url("/o/token/"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(res.json::<Value>().await?["error"], "invalid_client");

    // The documented example, and one with unix seconds; both with a token.
    let id = unique("ns");
    let namespace = format!("this is namespace {id}");
    let example = json!({"namespace": namespace, "name": "this is a name", "timestamp": "2020-11-12T11:10:00", "value": 1});
    let a = post_json(
        stack.ingest.url("/api/track/"),
        &example,
        Auth::Scheme("Bearer", &full),
    )
    .await?;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(
        (
            &a.body["namespace"],
            &a.body["name"],
            &a.body["timestamp"],
            &a.body["value"]
        ),
        (
            &json!(namespace),
            &json!("this is a name"),
            &json!("2020-11-12T11:10:00.000000Z"),
            &json!(1)
        )
    );
    let later = json!({"namespace": namespace, "name": "this is a name", "timestamp": 1605179460, "value": 3.5});
    let a = post_json(
        stack.ingest.url("/api/track/"),
        &later,
        Auth::Scheme("Bearer", &no_aggregation),
    )
    .await?;
    assert_eq!(a.status, 201, "{}", a.body);
    let no_value =
        json!({"namespace": namespace, "name": "this is a name", "timestamp": 1605179460});
    let a = post_json(
        stack.ingest.url("/api/track/"),
        &no_value,
        Auth::Scheme("Bearer", &full),
    )
    .await?;
    assert_eq!(
        (a.status, fields(&a.body)),
        (400, vec!["/value"]),
        "{}",
        a.body
    );
    let (_, body) = token(stack.ingest.url(""), "read", true).await?;
    let reader = body["access_token"].as_str().expect("a token").to_owned();
    let a = post_json(
        stack.ingest.url("/api/track/"),
        &example,
        Auth::Scheme("Bearer", &reader),
    )
    .await?;
    assert_eq!(a.status, 403);

    // Stored as events whose value aggregation reads.
    let path = format!("/v1/events?category={}", encode(&namespace));
    let body = wait_body(&stack, &path, |b| len(&b["events"]) == 2).await?;
    let values: Vec<&Value> = body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["value"])
        .collect();
    assert_eq!(values, [&json!(1.0), &json!(3.5)], "{body}");
    assert_eq!(
        body["events"][0]["session_id"],
        json!(format!("measurements:{namespace}:this is a name"))
    );

    // The aggregation scope: a token without it is refused, one with it is not.
    let aggregate = format!(
        "/v1/aggregate?category={}&name={}&granularity=day&from=2020-11-12T00:00:00Z&to=2020-11-13T00:00:00Z",
        encode(&namespace),
        encode("this is a name")
    );
    for (token, status) in [(&no_aggregation, 403), (&full, 200)] {
        let res = http
            .get(stack.query.url(&aggregate))
            .bearer_auth(token)
            .send()
            .await?;
        assert_eq!(res.status().as_u16(), status, "{}", res.text().await?);
    }

    quarantined(&stack, "ingest/measurements", &id, 1).await?;
    assert_eq!(counted(&stack, "measurements", "produced").await?, 2.0);
    stack.stop().await
}
