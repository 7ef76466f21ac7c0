//! `eye-client` against the whole pipeline: sends that survive an ingest restart (each
//! event stored once), rejections reported per item, a 401 never retried, a token fetched
//! again before it expires, and the paging `Stream`s walking every page once.

use eye_client::{
    AggregateQuery, Client, ClientError, Credentials, EventQuery, NewEvent, Outcome, OutcomeKind,
    RejectedQuery, RetryPolicy,
};
use eye_e2e::{
    config, ingest_config, start_ingest_at, start_ingest_authed, test_auth, unique, wait_for,
    wait_ready, Stack, TEST_TOKEN_SECRET,
};
use futures::TryStreamExt;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

fn key() -> Credentials {
    Credentials::api_key(test_auth().api_key.clone())
}

fn data(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn page_view(session: &str, i: usize) -> NewEvent {
    NewEvent::new(
        session,
        "page_interaction",
        "page_view",
        format!(
            "2024-05-01T10:{:02}:{:02}.{:06}Z",
            i / 3600 % 60,
            i / 60 % 60,
            i % 60
        ),
    )
    .with_data(data(
        json!({"host": "example.com", "path": format!("/{i}")}),
    ))
}

/// Collects every outcome the client reports.
fn recorder() -> (
    Arc<Mutex<Vec<Outcome>>>,
    impl Fn(&Outcome) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (seen, move |o: &Outcome| {
        sink.lock().expect("outcomes").push(o.clone())
    })
}

/// Waits until the session holds `n` events; returns their ids.
async fn stored_ids(client: &Client, session: &str, n: usize) -> anyhow::Result<Vec<Uuid>> {
    let query = EventQuery {
        session_id: Some(session.to_owned()),
        page_size: Some(1_000),
        ..EventQuery::default()
    };
    wait_for(Duration::from_secs(60), "the events stored", || async {
        let events: Vec<_> = client.events(&query).try_collect().await.ok()?;
        (events.len() >= n).then(|| events.iter().map(|e| e.event_id).collect())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_survive_an_ingest_restart_and_are_stored_once() -> anyhow::Result<()> {
    let Stack {
        kafka,
        clickhouse,
        group,
        ingest,
        consumer,
        query,
        ..
    } = Stack::start("client_restart").await?;
    let addr = ingest.addr;
    let client = Client::builder(format!("http://{addr}"), key())
        .query_url(query.url(""))
        .linger(Duration::from_millis(20))
        .max_batch_events(100)
        .retry(RetryPolicy {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            deadline: Duration::from_secs(60),
        })
        .build()?;
    let session = unique("restart");
    let total = 3_000;
    let sender = {
        let (client, session) = (client.clone(), session.clone());
        tokio::spawn(async move {
            for i in 0..total {
                client.send(page_view(&session, i)).await?;
                if i % 100 == 99 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            anyhow::Ok(())
        })
    };
    // Ingest goes away mid-run and comes back where it was.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ingest.stop().await?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let ingest = start_ingest_at(addr, ingest_config(&[]), kafka.clone()).await?;
    wait_ready(&[&ingest]).await?;
    sender.await??;
    client.flush().await;

    let stats = client.stats();
    assert_eq!(
        (stats.accepted, stats.rejected, stats.failed, stats.queued),
        (total as u64, 0, 0, 0),
        "{stats:?}"
    );
    assert!(stats.retries > 0, "the restart cost no retry: {stats:?}");
    let ids = stored_ids(&client, &session, total).await?;
    let distinct: HashSet<_> = ids.iter().collect();
    assert_eq!(
        (ids.len(), distinct.len()),
        (total, total),
        "each event once"
    );
    println!(
        "client across an ingest restart: {total} events, {} requests, {} retries, stored once each",
        stats.requests, stats.retries
    );
    client.shutdown().await;
    for s in [ingest, consumer, query] {
        s.stop().await?;
    }
    drop((clickhouse, group));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rejections_reach_the_caller_per_item_and_a_401_is_not_retried() -> anyhow::Result<()> {
    let stack = Stack::start("client_rejections").await?;
    let (seen, record) = recorder();
    let client = Client::builder(stack.ingest.url(""), key())
        .query_url(stack.query.url(""))
        .linger(Duration::from_millis(10))
        .on_outcome(record)
        .build()?;
    let session = unique("rejections");
    let good = client.send(page_view(&session, 1)).await?;
    let mut late = page_view(&session, 2);
    late.timestamp = "2024-13-45T00:00:00Z".into();
    let late = client.send(late).await?;
    let mut odd = data(serde_json::to_value(page_view(&session, 3))?);
    odd.insert("colour".into(), json!("red"));
    let odd = client.send_json(odd).await?;
    client.flush().await;

    let outcomes = seen.lock().expect("outcomes").clone();
    let of = |id: Uuid| {
        outcomes
            .iter()
            .find(|o| o.event_id == id)
            .map(|o| o.kind.clone())
    };
    assert_eq!(of(good), Some(OutcomeKind::Accepted));
    let fields = |kind: Option<OutcomeKind>| match kind {
        Some(OutcomeKind::Rejected(errors)) => errors
            .into_iter()
            .map(|e| (e.field, e.code.into_owned()))
            .collect(),
        other => vec![("not rejected".to_owned(), format!("{other:?}"))],
    };
    assert_eq!(
        fields(of(late)),
        vec![("/timestamp".to_owned(), "invalid_timestamp".to_owned())]
    );
    assert_eq!(
        fields(of(odd)),
        vec![("/colour".to_owned(), "unknown_field".to_owned())]
    );
    // The rejected event's outcome carries it as sent.
    let sent = outcomes
        .iter()
        .find(|o| o.event_id == odd)
        .map(|o| o.event.to_string())
        .unwrap_or_default();
    assert!(sent.contains("\"colour\":\"red\""), "{sent}");
    let stats = client.stats();
    assert_eq!((stats.accepted, stats.rejected, stats.failed), (1, 2, 0));

    // A wrong key is refused once, and the caller told why.
    let (seen, record) = recorder();
    let wrong = Client::builder(
        stack.ingest.url(""),
        Credentials::api_key(format!("{}x", test_auth().api_key)),
    )
    .on_outcome(record)
    .build()?;
    wrong.send(page_view(&session, 4)).await?;
    wrong.flush().await;
    let stats = wrong.stats();
    assert_eq!((stats.failed, stats.requests, stats.retries), (1, 1, 0));
    let outcomes = seen.lock().expect("outcomes").clone();
    match &outcomes[..] {
        [Outcome {
            kind: OutcomeKind::Failed(why),
            ..
        }] => assert!(why.contains("401 invalid_credentials"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Reads say the same.
    let reader = Client::builder(
        stack.ingest.url(""),
        Credentials::api_key(format!("{}x", test_auth().api_key)),
    )
    .query_url(stack.query.url(""))
    .build()?;
    match reader.categories().await {
        Err(ClientError::Api { status: 401, .. }) => {}
        other => panic!("{other:?}"),
    }
    stack.stop().await
}

/// The metric line's value for a route and status, 0 when absent.
fn requests(metrics: &str, route: &str, status: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("eye_http_requests_total{"))
        .filter(|l| {
            l.contains(&format!("route=\"{route}\"")) && l.contains(&format!("status=\"{status}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_fetched_again_before_it_expires() -> anyhow::Result<()> {
    let stack = Stack::start("client_tokens").await?;
    // An ingest whose tokens live 8 s: the client uses each for 3 s (the last 5 s are its
    // margin), so 10 s of sending takes several.
    let clients_file = test_auth().config.clients_file.clone();
    let auth = config(&[
        ("CLIENTS_FILE", &clients_file.display().to_string()),
        ("TOKEN_SECRET", TEST_TOKEN_SECRET),
        ("TOKEN_TTL_S", "8"),
    ]);
    let ingest = start_ingest_authed(ingest_config(&[]), stack.kafka.clone(), auth).await?;
    wait_ready(&[&ingest]).await?;
    let client = Client::builder(
        ingest.url(""),
        Credentials::client_credentials(&test_auth().client_id, &test_auth().client_secret),
    )
    .query_url(stack.query.url(""))
    .linger(Duration::from_millis(5))
    .build()?;
    let session = unique("tokens");
    let n = 40;
    for i in 0..n {
        client.send(page_view(&session, i)).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    client.flush().await;
    let stats = client.stats();
    assert_eq!((stats.accepted, stats.failed), (n as u64, 0), "{stats:?}");

    let metrics = reqwest::get(ingest.url("/metrics")).await?.text().await?;
    let tokens = requests(&metrics, "/oauth/token", "200");
    let refused = requests(&metrics, "/v1/events", "401");
    assert!(tokens >= 3.0, "{tokens} tokens in 10 s of 8 s tokens");
    assert_eq!(refused, 0.0, "a request carried an expired token");
    // The reads take the same token.
    assert_eq!(stored_ids(&client, &session, n).await?.len(), n);
    println!("client tokens: {tokens} fetched over {n} sends in 10 s, none refused");
    ingest.stop().await?;
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_reads_and_streams_walk_every_page_once() -> anyhow::Result<()> {
    let stack = Stack::start("client_reads").await?;
    let client = Client::builder(stack.ingest.url(""), key())
        .query_url(stack.query.url(""))
        .linger(Duration::from_millis(10))
        .build()?;
    let session = unique("reads");
    let n = 250;
    let mut sent = Vec::new();
    for i in 0..n {
        let e = page_view(&session, i).with_value(i as f64);
        sent.push(client.send(e).await?);
    }
    let mut bad = page_view(&session, n);
    bad.timestamp = "yesterday".into();
    client.send(bad).await?;
    client.flush().await;
    stored_ids(&client, &session, n).await?;

    for descending in [false, true] {
        let query = EventQuery {
            session_id: Some(session.clone()),
            descending,
            page_size: Some(20),
            ..EventQuery::default()
        };
        let events: Vec<_> = client.events(&query).try_collect().await?;
        let mut ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        if descending {
            ids.reverse();
        }
        assert_eq!(
            ids, sent,
            "every page once, in time order (descending: {descending})"
        );
    }

    let detail = client.session(&session, Some(5)).await?;
    assert_eq!(detail.summary.event_count, n as u64);
    assert_eq!(detail.events.len(), 5);
    assert!(detail.next_cursor.is_some());
    let all = client.session_events(&session).await?;
    assert_eq!(all.events.len(), n);

    let agg = client
        .aggregate(&AggregateQuery {
            agg: Some("sum".into()),
            from: Some("2024-05-01T00:00:00Z".into()),
            to: Some("2024-05-02T00:00:00Z".into()),
            ..AggregateQuery::new("page_interaction", "page_view")
        })
        .await?;
    let total: f64 = agg.buckets.iter().filter_map(|b| b.value).sum();
    assert_eq!(total, (0..n).sum::<usize>() as f64);

    let categories = client.categories().await?;
    assert!(categories
        .categories
        .iter()
        .any(|c| c.category == "page_interaction"
            && c.name == "page_view"
            && c.events == n as u64));

    let rejected: Vec<_> = client
        .rejected(&RejectedQuery {
            reason: Some("invalid_timestamp".into()),
            page_size: Some(1),
            ..RejectedQuery::default()
        })
        .try_collect()
        .await?;
    assert!(
        rejected.iter().any(|r| r.session_id == session),
        "{} quarantined records, none of the session",
        rejected.len()
    );
    stack.stop().await
}
