//! End-to-end: each seed's read API on the query service, on events written through the
//! `/v1` APIs in the shapes the seeds' write doors store (see the table in the README's
//! front doors section), read back through the seed routes with the seed documents'
//! examples: the session tracker (`/get_session`, `/get_machine_events`), the REST event
//! pages (`GET /events`), the measurement aggregation (`/api/events/{namespace}/{name}`)
//! and the collector's listings (`/eye/...`).

use eye_auth::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};
use eye_e2e::{
    auth_config, readonly_clickhouse_config, start_query_authed, start_query_config, unique,
    wait_for, wait_ready, Stack,
};
use serde_json::{json, Value};
use std::time::Duration;

/// The seed types have no schema in `schemas/`: ingest accepts them, as under a seed's door.
async fn stack(name: &str) -> anyhow::Result<Stack> {
    Stack::start_with(name, &[], &[("UNKNOWN_TYPE_POLICY", "accept")]).await
}

async fn answer(req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let res = req.send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn query_get(stack: &Stack, path: &str) -> anyhow::Result<(u16, Value)> {
    answer(stack.http.get(stack.query.url(path))).await
}

async fn query_post(stack: &Stack, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    answer(stack.http.post(stack.query.url(path)).json(body)).await
}

async fn ingest(stack: &Stack, path: &str, body: &Value) -> anyhow::Result<()> {
    let (status, body) = answer(stack.http.post(stack.ingest.url(path)).json(body)).await?;
    anyhow::ensure!(status == 202, "{path}: {status} {body}");
    Ok(())
}

/// Polls until `ready` holds for the answer; returns it.
async fn until<F, Fut>(
    what: &str,
    probe: F,
    ready: impl Fn(u16, &Value) -> bool,
) -> anyhow::Result<Value>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(u16, Value)>>,
{
    wait_for(Duration::from_secs(60), what, || async {
        match probe().await {
            Ok((status, body)) if ready(status, &body) => Some(body),
            _ => None,
        }
    })
    .await
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

fn error_field(body: &Value) -> (String, String) {
    let detail = &body["error"]["details"][0];
    (
        detail["field"].as_str().unwrap_or_default().to_owned(),
        detail["code"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A clients file of one client per scope set, for a second query service on the same
/// database; their API keys in the order given.
fn scoped_clients(
    id: &str,
    sets: &[Vec<Scope>],
) -> anyhow::Result<(eye_auth::config::AuthConfig, Vec<String>)> {
    let dir = std::env::temp_dir().join(format!("eye-e2e-{id}"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("clients.toml");
    let mut records: Vec<ClientRecord> = Vec::new();
    let mut keys = Vec::new();
    for scopes in sets {
        let c = NewCredentials::generate()?;
        records.push(ClientRecord {
            rate_limits: RateLimits::unlimited(),
            ..c.record("seed-reads", scopes.clone())
        });
        keys.push(c.api_key());
    }
    ClientsFile { clients: records }.save(&path)?;
    Ok((auth_config(&path), keys))
}

#[tokio::test(flavor = "multi_thread")]
async fn tracker_sessions_and_machines_read_as_the_tracker_answers() -> anyhow::Result<()> {
    let stack = stack("tracker_reads").await?;
    let id = unique("t");
    let machine = format!("2343-asdf-fads-{id}");
    let (s1, s2) = (
        format!("y25v9-jbyr-kyigb-{id}"),
        format!("32342-234s-42343-{id}"),
    );
    // The seed's two sessions, as the tracker's writes store them.
    for (session, start, end) in [
        (&s1, "2023-02-02 16:22:15", "2023-02-02 16:22:15"),
        (&s2, "2016-01-01 10:20:05.123", "2023-02-02 16:22:15"),
    ] {
        let record = json!({"session_id": session, "user_id": "asfla-asdf-asdfa",
                            "machine_id": machine, "org_id": "11232", "started_at": start});
        ingest(&stack, "/v1/sessions", &record).await?;
        ingest(
            &stack,
            &format!("/v1/sessions/{session}/end"),
            &json!({"ended_at": end}),
        )
        .await?;
    }
    let event = |session: &str, at: &str, name: &str, data: Value| {
        json!({"session_id": session, "category": "machine", "name": name, "data": data,
               "timestamp": at})
    };
    let info = || json!({"info": "someInfo"});
    ingest(
        &stack,
        "/v1/events",
        &json!([
            event(&s1, "2023-02-09 01:08:55", "exe", info()),
            event(&s1, "2023-02-02 16:22:15", "applicationStarted", info()),
            // An eventType that is no valid name: stored as its slug, kept as sent.
            event(
                &s1,
                "2023-02-09 01:05:23",
                "data_feed_",
                json!({"_eventType": "data feed!", "info": "someInfo"})
            ),
            event(
                &s2,
                "2016-01-01 11:20:05.123",
                "eventType",
                json!({"info": "some info"})
            ),
        ]),
    )
    .await?;

    let ask_s1 = json!({"sessionId": s1});
    let get_session = || query_post(&stack, "/get_session", &ask_s1);
    let body = until("the session with its events", get_session, |status, b| {
        status == 200 && len(&b["events"]) == 3
    })
    .await?;
    assert_eq!(
        body,
        json!({
            "endAt": "2023-02-02 16:22:15",
            "events": [
                {"eventAt": "2023-02-02 16:22:15", "eventType": "applicationStarted", "payload": {"info": "someInfo"}},
                {"eventAt": "2023-02-09 01:05:23", "eventType": "data feed!", "payload": {"info": "someInfo"}},
                {"eventAt": "2023-02-09 01:08:55", "eventType": "exe", "payload": {"info": "someInfo"}},
            ],
            "machineId": machine,
            "orgId": 11232,
            "sessionId": s1,
            "startAt": "2023-02-02 16:22:15",
            "userId": "asfla-asdf-asdfa",
        })
    );

    // s2's event is on another partition than s1's: wait for it as well.
    let ask_machine = json!({"machineId": machine});
    let body = until(
        "the machine's events",
        || query_post(&stack, "/get_machine_events", &ask_machine),
        |status, b| status == 200 && len(&b["events"]) == 4,
    )
    .await?;
    assert_eq!(
        body,
        json!({
            "events": [
                {"eventAt": "2016-01-01 11:20:05.123000", "eventType": "eventType", "payload": {"info": "some info"}, "sessionId": s2},
                {"eventAt": "2023-02-02 16:22:15", "eventType": "applicationStarted", "payload": {"info": "someInfo"}, "sessionId": s1},
                {"eventAt": "2023-02-09 01:05:23", "eventType": "data feed!", "payload": {"info": "someInfo"}, "sessionId": s1},
                {"eventAt": "2023-02-09 01:08:55", "eventType": "exe", "payload": {"info": "someInfo"}, "sessionId": s1},
            ],
            "machineId": machine,
        })
    );

    // A session started and never ended, without events: endAt null, events [].
    let open = format!("open-{id}");
    ingest(
        &stack,
        "/v1/sessions",
        &json!({"session_id": open, "user_id": "u", "machine_id": "m", "org_id": "org-7",
                "started_at": 1675354935.5}),
    )
    .await?;
    let ask_open = json!({"sessionId": open});
    let body = until(
        "the open session",
        || query_post(&stack, "/get_session", &ask_open),
        |s, _| s == 200,
    )
    .await?;
    assert_eq!(
        (
            &body["endAt"],
            &body["events"],
            &body["orgId"],
            &body["startAt"]
        ),
        (
            &Value::Null,
            &json!([]),
            &json!("org-7"),
            &json!("2023-02-02 16:22:15.500000")
        )
    );

    // The seed's own request examples, as written: nothing stored under those ids.
    let (status, body) = query_post(
        &stack,
        "/get_session",
        &json!({"sessionId": "y25v9-jbyr-kyigb"}),
    )
    .await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("session_not_found"))
    );
    let (status, body) = query_post(
        &stack,
        "/get_machine_events",
        &json!({"machineId": "2343-asdf-fads"}),
    )
    .await?;
    assert_eq!(
        (status, body),
        (200, json!({"events": [], "machineId": "2343-asdf-fads"}))
    );

    // Questions that can never be answered name their field.
    for (path, body, field, code) in [
        ("/get_session", json!({}), "sessionId", "required"),
        (
            "/get_session",
            json!({"sessionId": ""}),
            "sessionId",
            "empty",
        ),
        (
            "/get_machine_events",
            json!({"machineId": {"id": 1}}),
            "machineId",
            "wrong_type",
        ),
    ] {
        let (status, answer) = query_post(&stack, path, &body).await?;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(
            error_field(&answer),
            (field.to_owned(), code.to_owned()),
            "{path} {body}"
        );
    }
    let (status, malformed) = answer(
        stack
            .http
            .post(stack.query.url("/get_session"))
            .header("content-type", "application/json")
            .body(r#"{"sessionId": "s",}"#),
    )
    .await?;
    assert_eq!(
        (status, malformed["error"]["code"].as_str()),
        (400, Some("malformed_json")),
        "{malformed}"
    );

    // Unpaged answers are bounded: past the bound, a refusal, not a cut.
    let bounded = eye_query::Config {
        query: eye_e2e::config(&[("LISTEN_ADDR", "127.0.0.1:0"), ("SESSION_EVENTS_MAX", "3")]),
        clickhouse: readonly_clickhouse_config(&stack.clickhouse.database),
        auth: eye_e2e::test_auth().config.clone(),
        http: eye_e2e::http_config(&[]),
        deletion: eye_e2e::config(&[]),
        retention: Default::default(),
    };
    let small = start_query_config(bounded).await?;
    wait_ready(&[&small]).await?;
    let (status, body) = answer(
        stack
            .http
            .post(small.url("/get_session"))
            .json(&json!({"sessionId": s1})),
    )
    .await?;
    assert_eq!(status, 200, "three events fit a bound of three: {body}");
    let (status, body) = answer(
        stack
            .http
            .post(small.url("/get_machine_events"))
            .json(&json!({"machineId": machine})),
    )
    .await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_field(&body),
        ("machineId".to_owned(), "too_many_events".to_owned())
    );
    small.stop().await?;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_events_pages_filter_and_link_like_drf() -> anyhow::Result<()> {
    let stack = stack("rest_reads").await?;
    let id = unique("r");
    let (a, b) = (format!("a-{id}"), format!("b-{id}"));
    // Eleven page views in session a on 2022-01-01, a minute apart; two submits in b.
    let mut events: Vec<Value> = (0..11)
        .map(|i| {
            json!({"event_id": uuid::Uuid::now_v7().to_string(), "session_id": a,
                   "category": "page_interaction", "name": "page_view",
                   "data": {"host": "www.consumeraffairs.com", "path": format!("/{i}")},
                   "timestamp": format!("2022-01-01 00:{i:02}:00.000000")})
        })
        .collect();
    for at in ["2022-02-01T10:00:00", "2022-02-02 00:00:00.000000"] {
        events.push(
            json!({"event_id": uuid::Uuid::now_v7().to_string(), "session_id": b,
                           "category": "form_interaction", "name": "submit",
                           "data": {"host": "h", "path": "/", "form": {"first_name": "John"}},
                           "timestamp": at}),
        );
    }
    ingest(&stack, "/v1/events", &Value::Array(events.clone())).await?;
    // A retry of the whole batch: still each event once.
    ingest(&stack, "/v1/events", &Value::Array(events.clone())).await?;

    let host = stack.query.addr.to_string();
    let url = |q: &str| format!("http://{host}/events{q}");
    let page1 = until(
        "13 events",
        || query_get(&stack, "/events"),
        |s, b| s == 200 && b["count"] == 13,
    )
    .await?;
    let results = page1["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 10);
    assert_eq!(
        (&page1["next"], &page1["previous"]),
        (&json!(url("?page=2")), &Value::Null)
    );
    // Newest first, each as sent.
    let mut newest = events.clone();
    newest.sort_by_key(|e| {
        std::cmp::Reverse(
            e["timestamp"]
                .as_str()
                .unwrap_or_default()
                .replace('T', " "),
        )
    });
    assert_eq!(results[0]["event_id"], newest[0]["event_id"]);
    assert_eq!(
        results[0],
        json!({"event_id": newest[0]["event_id"], "session_id": b, "category": "form_interaction",
               "name": "submit", "data": {"host": "h", "path": "/", "form": {"first_name": "John"}},
               "timestamp": "2022-02-02T00:00:00.000000Z"})
    );
    let shown: Vec<&Value> = results.iter().map(|r| &r["event_id"]).collect();
    let want: Vec<&Value> = newest.iter().take(10).map(|e| &e["event_id"]).collect();
    assert_eq!(shown, want);

    let (status, page2) = query_get(&stack, "/events?page=2").await?;
    assert_eq!(status, 200);
    assert_eq!(len(&page2["results"]), 3);
    assert_eq!(
        (&page2["next"], &page2["previous"]),
        (&Value::Null, &json!(url("")))
    );
    assert_eq!(page2["results"][2]["event_id"], newest[12]["event_id"]);
    let (status, past) = query_get(&stack, "/events?page=3").await?;
    assert_eq!(
        (
            status,
            past["error"]["code"].as_str(),
            past["error"]["message"].as_str()
        ),
        (404, Some("invalid_page"), Some("Invalid page."))
    );

    // (query, count, results on this page, next, previous)
    let cases: Vec<(String, u64, usize, Option<String>, Option<String>)> = vec![
        // Eleven: a second page of one, links keeping the filter.
        (
            format!("?session_id={a}"),
            11,
            10,
            Some(url(&format!("?session_id={a}&page=2"))),
            None,
        ),
        (
            format!("?session_id={a}&page=2"),
            11,
            1,
            None,
            Some(url(&format!("?session_id={a}"))),
        ),
        // Exactly ten: one page.
        (
            format!("?session_id={a}&end_time=2022-01-01T00:09:00"),
            10,
            10,
            None,
            None,
        ),
        ("?category=form_interaction".into(), 2, 2, None, None),
        // A date is its whole day; an instant is inclusive.
        (
            "?start_time=2022-02-01&end_time=2022-02-01".into(),
            1,
            1,
            None,
            None,
        ),
        (
            "?start_time=2022-02-01T10:00:00&end_time=2022-02-02 00:00:00.000000".into(),
            2,
            2,
            None,
            None,
        ),
        (
            "?start_time=2022-01-01 00:10:00&end_time=2022-02-01".into(),
            2,
            2,
            None,
            None,
        ),
        (
            format!("?session_id={b}&category=form_interaction&start_time=2022-02-02"),
            1,
            1,
            None,
            None,
        ),
        (
            format!("?session_id={a}&category=form_interaction"),
            0,
            0,
            None,
            None,
        ),
        // The seed's own examples, as written: nothing stored under those values.
        ("?session_id=abc123".into(), 0, 0, None, None),
        ("?category=name".into(), 0, 0, None, None),
        (
            "?start_time=2022-01-01&end_time=2022-02-01".into(),
            12,
            10,
            Some(url("?start_time=2022-01-01&end_time=2022-02-01&page=2")),
            None,
        ),
        (
            "?session_id=abc123&category=name&start_time=2022-01-01&end_time=2022-02-01".into(),
            0,
            0,
            None,
            None,
        ),
    ];
    for (q, count, on_page, next, previous) in cases {
        let (status, body) = query_get(&stack, &format!("/events{q}")).await?;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(
            (
                body["count"].as_u64(),
                len(&body["results"]),
                body["next"].as_str(),
                body["previous"].as_str()
            ),
            (Some(count), on_page, next.as_deref(), previous.as_deref()),
            "{q}"
        );
    }

    // The time range as a JSON body on the GET; the next page keeps it in its link.
    let with_body = |q: &str, body: Value| {
        answer(
            stack
                .http
                .get(stack.query.url(&format!("/events{q}")))
                .json(&body),
        )
    };
    let (status, body) = with_body(
        "",
        json!({"start_time": "2022-01-01", "end_time": "2022-01-01"}),
    )
    .await?;
    assert_eq!((status, body["count"].as_u64()), (200, Some(11)), "{body}");
    assert_eq!(
        body["next"],
        json!(url("?start_time=2022-01-01&end_time=2022-01-01&page=2"))
    );
    let (status, body) = with_body(
        "?category=form_interaction",
        json!({"start_time": "2022-02-02"}),
    )
    .await?;
    assert_eq!((status, body["count"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) = with_body(
        "?start_time=2022-01-02",
        json!({"start_time": "2022-01-01"}),
    )
    .await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_field(&body),
        ("start_time".to_owned(), "conflicting_values".to_owned())
    );
    for (q, field, code) in [
        ("?start_time=yesterday", "start_time", "invalid_timestamp"),
        (
            "?start_time=2022-02-02&end_time=2022-02-01",
            "start_time",
            "start_after_end",
        ),
        ("?page=0", "page", "invalid_page"),
        ("?limit=5", "limit", "unknown_parameter"),
    ] {
        let (status, body) = query_get(&stack, &format!("/events{q}")).await?;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(
            error_field(&body),
            (field.to_owned(), code.to_owned()),
            "{q}"
        );
    }
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn measurements_aggregate_per_calendar_group() -> anyhow::Result<()> {
    let stack = stack("measure_reads").await?;
    let id = unique("m");
    let namespace = format!("this is namespace {}", &id[id.len() - 8..]);
    let name = "this is a name";
    // (time, value): 2020-11-09 and 2020-11-16 are Mondays; 2020-11-15 a Sunday.
    let points = [
        ("2020-11-09T00:00:00", 3.0),
        ("2020-11-12T11:10:00", 1.0),
        ("2020-11-15T23:59:59", 5.0),
        ("2020-11-16T00:00:00", 7.0),
        ("2020-12-01T12:30:00", 9.0),
    ];
    let events: Vec<Value> = points
        .iter()
        .map(|(at, v)| {
            json!({"session_id": format!("measurements:{namespace}:{name}"), "category": namespace,
                              "name": name, "data": {}, "timestamp": at, "value": v})
        })
        .collect();
    ingest(&stack, "/v1/events", &Value::Array(events)).await?;
    let enc = |s: &str| s.replace(' ', "%20");
    let path = |q: &str| format!("/api/events/{}/{}?{q}", enc(&namespace), enc(name));
    let max_path = path("aggregationType=max");
    until(
        "the measurements",
        || query_get(&stack, &max_path),
        |s, b| s == 200 && b[0]["value"] == 9.0,
    )
    .await?;
    let group = |at: &str, v: f64| json!({"aggregatedTimestamp": at, "value": v});
    let cases = [
        // The default: one group, at the first event, avg.
        ("", vec![group("2020-11-09T00:00:00Z", 5.0)]),
        (
            "granularity=week",
            vec![
                group("2020-11-09T00:00:00Z", 3.0),
                group("2020-11-16T00:00:00Z", 7.0),
                group("2020-11-30T00:00:00Z", 9.0),
            ],
        ),
        (
            "granularity=month&aggregationType=max",
            vec![
                group("2020-11-01T00:00:00Z", 7.0),
                group("2020-12-01T00:00:00Z", 9.0),
            ],
        ),
        (
            "granularity=month&aggregationType=min",
            vec![
                group("2020-11-01T00:00:00Z", 1.0),
                group("2020-12-01T00:00:00Z", 9.0),
            ],
        ),
        (
            "granularity=year&aggregationType=avg",
            vec![group("2020-01-01T00:00:00Z", 5.0)],
        ),
        (
            "granularity=day&tsMin=1605139200&tsMax=1605484800",
            vec![
                group("2020-11-12T00:00:00Z", 1.0),
                group("2020-11-15T00:00:00Z", 5.0),
                group("2020-11-16T00:00:00Z", 7.0),
            ],
        ),
        (
            "granularity=hour&tsMin=1605484800&tsMax=1606825800",
            vec![
                group("2020-11-16T00:00:00Z", 7.0),
                group("2020-12-01T12:00:00Z", 9.0),
            ],
        ),
        // Equal bounds: the one second they name.
        (
            "granularity=minute&tsMin=1605484799&tsMax=1605484799",
            vec![group("2020-11-15T23:59:00Z", 5.0)],
        ),
        (
            "granularity=minute&tsMin=1605484740&tsMax=1605484800",
            vec![
                group("2020-11-15T23:59:00Z", 5.0),
                group("2020-11-16T00:00:00Z", 7.0),
            ],
        ),
        (
            "granularity=none&tsMin=1605179400&tsMax=1605484800&aggregationType=max",
            vec![group("2020-11-12T11:10:00Z", 7.0)],
        ),
        // The seed's example, as written: a window in 1970, so nothing.
        (
            "tsMin=42&tsMax=69&granularity=month&aggregationType=avg",
            vec![],
        ),
    ];
    for (q, want) in cases {
        let (status, body) = query_get(&stack, &path(q)).await?;
        assert_eq!((status, body), (200, Value::Array(want)), "{q}");
    }
    for (q, field) in [
        ("granularity=fortnight", "granularity"),
        ("aggregationType=sum", "aggregationType"),
        ("tsMin=soon", "tsMin"),
    ] {
        let (status, body) = query_get(&stack, &path(q)).await?;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(error_field(&body).0, field, "{q}");
    }

    // Scopes: events:read reads events but no aggregation; aggregations:read reads it.
    let (auth, keys) = scoped_clients(
        &id,
        &[vec![Scope::EventsRead], vec![Scope::AggregationsRead]],
    )?;
    let scoped =
        start_query_authed(readonly_clickhouse_config(&stack.clickhouse.database), auth).await?;
    wait_ready(&[&scoped]).await?;
    let plain = reqwest::Client::new();
    let as_client = |key: &str, p: &str| plain.get(scoped.url(p)).bearer_auth(key);
    let (status, body) = answer(as_client(&keys[0], &path(""))).await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{body}"
    );
    let (status, _) = answer(as_client(&keys[0], "/eye/event?session_id=s")).await?;
    assert_eq!(status, 200, "events:read reads the collector's listings");
    let (status, _) = answer(as_client(&keys[1], &path("granularity=month"))).await?;
    assert_eq!(status, 200);
    for p in ["/events", "/eye/invalid-time"] {
        let (status, _) = answer(as_client(&keys[1], p)).await?;
        assert_eq!(status, 403, "{p} needs events:read");
    }
    let (status, _) = answer(
        plain
            .post(scoped.url("/get_session"))
            .bearer_auth(&keys[1])
            .json(&json!({"sessionId": "s"})),
    )
    .await?;
    assert_eq!(status, 403);
    let (status, _) = answer(plain.get(scoped.url("/events"))).await?;
    assert_eq!(status, 401);
    scoped.stop().await?;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn collector_lists_events_and_refused_times_newest_first() -> anyhow::Result<()> {
    let stack = stack("collector_reads").await?;
    let id = unique("c");
    let (s, other) = (
        format!("e2085be5-9137-4e4e-80b5-f1ffddc25424-{id}"),
        format!("other-{id}"),
    );
    // The seed's example event, then a later one of the same session, and one of another.
    let example = json!({
        "session_id": s, "category": "form interaction", "name": "submit",
        "data": {"host": "www.consumeraffairs.com", "path": "/",
                 "form": {"first_name": "George", "last_name": "Doe"}},
        "timestamp": "2022-01-09 09:15:27.243860"
    });
    let later = json!({"session_id": s, "category": "page interaction", "name": "view",
                       "data": {"host": "h", "path": "/p"}, "timestamp": "2022-01-10T08:00:00Z"});
    let elsewhere = json!({"session_id": other, "category": "form interaction", "name": "submit",
                           "data": {"host": "h", "path": "/", "form": {}}, "timestamp": "2022-01-09 23:59:59.999999"});
    ingest(&stack, "/v1/events", &json!([example, later, elsewhere])).await?;
    // Refused for their time: impossible, unreadable, in the future; and one refused for
    // something else, which is no time refusal.
    let refused: Vec<Value> = ["2022-13-45 09:15:27", "yesterday", "2999-01-01 00:00:00"]
        .iter()
        .map(|t| {
            json!({"session_id": s, "category": "form interaction", "name": "submit",
                        "data": {"host": "h", "path": "/", "form": {}}, "timestamp": t})
        })
        .collect();
    let not_time = json!({"session_id": s, "category": "bad\ncategory", "name": "submit", "data": {},
                          "timestamp": "2022-01-09 09:15:27"});
    let other_refused =
        json!({"session_id": other, "category": "c", "name": "n", "data": {}, "timestamp": 1e15});
    let mut batch = refused.clone();
    batch.extend([not_time, other_refused.clone()]);
    let (status, body) =
        answer(stack.http.post(stack.ingest.url("/v1/events")).json(&batch)).await?;
    assert_eq!(status, 400, "every event refused: {body}");

    let as_sent = |v: &Value| {
        let mut v = v.clone();
        let t = v["timestamp"]
            .as_str()
            .unwrap_or_default()
            .replace(' ', "T");
        let t = if t.ends_with('Z') { t } else { format!("{t}Z") };
        v["timestamp"] = json!(eye_model::time::EventTime::parse(&t)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default());
        v
    };
    let strip = |mut listing: Value| {
        for e in listing.as_array_mut().into_iter().flatten() {
            e.as_object_mut().map(|m| m.remove("event_id"));
        }
        listing
    };
    let session_path = format!("/eye/event?session_id={s}");
    let body = until(
        "the session",
        || query_get(&stack, &session_path),
        |st, b| st == 200 && len(b) == 2,
    )
    .await?;
    assert_eq!(strip(body), json!([as_sent(&later), as_sent(&example)]));

    // (path, events expected, newest first)
    let cases = [
        (
            "/eye/category-events?category=form%20interaction".to_owned(),
            vec![as_sent(&elsewhere), as_sent(&example)],
        ),
        (
            format!("/eye/category-events?category=form+interaction&session_id={s}"),
            vec![as_sent(&example)],
        ),
        (
            "/eye/range-events?start_time=2022-01-09&end_time=2022-01-09".to_owned(),
            vec![as_sent(&elsewhere), as_sent(&example)],
        ),
        (
            "/eye/range-events?start_time=2022-01-09 09:15:27.243861&end_time=2022-01-10T08:00:00"
                .to_owned(),
            vec![as_sent(&later), as_sent(&elsewhere)],
        ),
        (
            format!(
                "/eye/range-events?start_time=2022-01-01&end_time=2022-12-31&session_id={other}"
            ),
            vec![as_sent(&elsewhere)],
        ),
        (
            "/eye/event?session_id=e2085be5-9137-4e4e-80b5-f1ffddc25424".to_owned(),
            vec![],
        ),
    ];
    for (path, want) in cases {
        let (status, body) = query_get(&stack, &path).await?;
        assert_eq!((status, strip(body)), (200, Value::Array(want)), "{path}");
    }

    let invalid = until(
        "the time refusals",
        || query_get(&stack, "/eye/invalid-time"),
        |st, b| st == 200 && len(b) == 4,
    )
    .await?;
    // One batch, one arrival time: the order among them is the rejection ids'.
    let mut got = invalid.as_array().cloned().unwrap_or_default();
    let mut want = refused.clone();
    want.push(other_refused.clone());
    let key = |v: &Value| v.to_string();
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want);
    let (status, body) =
        query_get(&stack, &format!("/eye/invalid-time?session_id={other}")).await?;
    assert_eq!((status, body), (200, json!([other_refused])));

    // The seed's clients send DRF's `Authorization: Token <token>`: each listing takes it,
    // and answers as with a bearer key. `/v1` reads keep to `Bearer`.
    let plain = reqwest::Client::new();
    let token = format!("Token {}", eye_e2e::test_auth().api_key);
    for path in [
        session_path.clone(),
        "/eye/category-events?category=form%20interaction".to_owned(),
        "/eye/range-events?start_time=2022-01-09&end_time=2022-01-09".to_owned(),
        "/eye/invalid-time".to_owned(),
    ] {
        let url = stack.query.url(&path);
        let by_token = answer(plain.get(&url).header("authorization", &token)).await?;
        let by_bearer = query_get(&stack, &path).await?;
        assert_eq!(by_token.0, 200, "{path}: {}", by_token.1);
        assert_eq!(by_token, by_bearer, "{path}");
        let (status, _) = answer(plain.get(&url)).await?;
        assert_eq!(status, 401, "{path} without a credential");
    }
    let v1 = stack.query.url(&format!("/v1/sessions/{s}/events"));
    let (status, body) = answer(plain.get(&v1).header("authorization", &token)).await?;
    assert_eq!(status, 401, "a /v1 read with the Token scheme: {body}");

    for (path, field, code) in [
        ("/eye/event", "session_id", "required"),
        ("/eye/category-events?session_id=s", "category", "required"),
        (
            "/eye/range-events?start_time=2022-01-09",
            "end_time",
            "required",
        ),
        (
            "/eye/range-events?start_time=2022-01-10&end_time=2022-01-09",
            "start_time",
            "start_after_end",
        ),
        (
            "/eye/invalid-time?category=c",
            "category",
            "unknown_parameter",
        ),
    ] {
        let (status, body) = query_get(&stack, path).await?;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(
            error_field(&body),
            (field.to_owned(), code.to_owned()),
            "{path}"
        );
    }
    stack.stop().await
}

/// A seed's client, moved over with only its base URL and credential changed, reads back
/// what it wrote: each seed's write door, then its read route, with the seeds' own
/// shapes on both sides (and each seed's own auth scheme).
#[tokio::test(flavor = "multi_thread")]
async fn each_seed_client_reads_back_what_it_wrote() -> anyhow::Result<()> {
    let stack = stack("seed_round_trip").await?;
    let id = unique("rt");
    let plain = reqwest::Client::new();
    let key = &eye_e2e::test_auth().api_key;

    // Seed 000: start, add an event, end; then get the session and the machine's events.
    let (machine, session) = (format!("m-{id}"), format!("s-{id}"));
    for (path, body) in [
        (
            "/start_session",
            json!({"userId": "u", "machineId": machine, "startAt": "2023-02-02 16:22:15",
                   "orgId": 11232, "sessionId": session}),
        ),
        (
            "/add_event",
            json!({"sessionId": session, "events": [{"eventAt": 1675355000,
                   "eventType": "applicationStarted", "payload": {"info": "someInfo"}}]}),
        ),
        (
            "/end_session",
            json!({"sessionId": session, "endAt": "2023-02-02 17:00:00"}),
        ),
    ] {
        let res = stack
            .http
            .post(stack.ingest.url(path))
            .json(&body)
            .send()
            .await?;
        assert_eq!(res.status().as_u16(), 200, "{path}");
    }
    let ask = json!({"sessionId": session});
    let got = until(
        "the tracker session, ended",
        || query_post(&stack, "/get_session", &ask),
        |st, b| st == 200 && len(&b["events"]) == 1 && !b["endAt"].is_null(),
    )
    .await?;
    assert_eq!(
        got,
        json!({"endAt": "2023-02-02 17:00:00", "machineId": machine, "orgId": 11232,
               "sessionId": session, "startAt": "2023-02-02 16:22:15", "userId": "u",
               "events": [{"eventAt": "2023-02-02 16:23:20", "eventType": "applicationStarted",
                           "payload": {"info": "someInfo"}}]})
    );
    let (status, got) = query_post(
        &stack,
        "/get_machine_events",
        &json!({"machineId": machine}),
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(got["events"][0]["sessionId"], json!(session));

    // Seeds 001 and 004: POST /events, then the DRF listing of that session.
    let rest_session = format!("rest-{id}");
    let event = json!({"session_id": rest_session, "category": "page interaction",
                       "name": "pageview", "data": {"host": "h", "path": "/"},
                       "timestamp": "2022-01-09 09:15:27.243860"});
    let res = stack
        .http
        .post(stack.ingest.url("/events"))
        .json(&event)
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 201);
    let listing = format!("/events?session_id={rest_session}");
    let got = until(
        "the REST event",
        || query_get(&stack, &listing),
        |st, b| st == 200 && b["count"] == 1,
    )
    .await?;
    assert_eq!(got["results"][0]["name"], "pageview");
    assert_eq!(
        got["results"][0]["timestamp"],
        "2022-01-09T09:15:27.243860Z"
    );

    // Seed 002: a toolkit token, a measurement tracked with it, then aggregated.
    let res = plain
        .post(stack.query.url("/o/token/"))
        .basic_auth(
            &eye_e2e::test_auth().client_id,
            Some(&eye_e2e::test_auth().client_secret),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "read write aggregation"),
        ])
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 200);
    let token = res.json::<Value>().await?["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let namespace = format!("ns {id}");
    for (at, value) in [("2020-11-12T11:10:00", 1.0), ("2020-11-12T11:10:30", 3.0)] {
        let res = plain
            .post(stack.ingest.url("/api/track/"))
            .bearer_auth(&token)
            .json(&json!({"namespace": namespace, "name": "cpu", "timestamp": at, "value": value}))
            .send()
            .await?;
        assert_eq!(res.status().as_u16(), 201);
    }
    let aggregation = stack.query.url(&format!(
        "/api/events/{}/cpu?tsMin=1605179400&tsMax=1605179459&granularity=minute",
        namespace.replace(' ', "%20")
    ));
    let got = until(
        "the measurements",
        || answer(plain.get(&aggregation).bearer_auth(&token)),
        |st, b| {
            st == 200
                && b.as_array()
                    .is_some_and(|a| a.first().is_some_and(|g| g["value"] == 2.0))
        },
    )
    .await?;
    assert_eq!(
        got,
        json!([{"aggregatedTimestamp": "2020-11-12T11:10:00Z", "value": 2.0}])
    );

    // Seed 003: the collector, then its session listing, both with the Token scheme.
    let token_scheme = format!("Token {key}");
    let collected = format!("e2085be5-{id}");
    let event = json!({"session_id": collected, "category": "form interaction", "name": "submit",
                       "data": {"host": "www.consumeraffairs.com", "path": "/", "form": {}},
                       "timestamp": "2022-01-09 09:15:27.243860"});
    let res = plain
        .post(stack.ingest.url("/eye/collector"))
        .header("authorization", &token_scheme)
        .json(&event)
        .send()
        .await?;
    assert_eq!(res.status().as_u16(), 201);
    let listing = stack
        .query
        .url(&format!("/eye/event?session_id={collected}"));
    let got = until(
        "the collected event",
        || answer(plain.get(&listing).header("authorization", &token_scheme)),
        |st, b| st == 200 && len(b) == 1,
    )
    .await?;
    assert_eq!(got[0]["category"], "form interaction");
    assert_eq!(got[0]["timestamp"], "2022-01-09T09:15:27.243860Z");
    stack.stop().await
}
