//! Backpressure and graceful drain, on the real broker and ClickHouse:
//! - ingest with a tiny in-flight budget, flooded, refuses some requests with 503
//!   `overloaded` and `Retry-After`, and every event it answered 202 for is in Kafka, and
//!   nothing else is;
//! - after the shutdown signal, `/readyz` says `draining` while requests are still served,
//!   the listener closes only after `EYE_HTTP_DRAIN_DELAY_MS`, and a request in flight
//!   then still gets its 202;
//! - the consumer's and the query service's `/readyz` say `draining` too, and the consumer
//!   inserts and commits the batch in hand before it stops.

use eye_e2e::{
    clickhouse_config, config, consumer_config, create_topics, http_client, http_config,
    ingest_config, kafka_config, readonly_clickhouse_config, test_auth, unique, wait_for,
    wait_ready, Service,
};
use eye_kafka::config::KafkaConfig;
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DRAIN_DELAY: Duration = Duration::from_millis(3000);

fn events(session: &str, n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "session_id": session,
                "category": "page_interaction",
                "name": "page_view",
                "data": {"host": "www.consumeraffairs.com", "path": format!("/drain/{i}")},
                "timestamp": "2024-05-01T12:00:00Z",
            })
        })
        .collect();
    Value::Array(items)
}

fn ids(body: &Value) -> Vec<String> {
    body["event_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn start_ingest(
    kafka: KafkaConfig,
    ingest: &[(&str, &str)],
    http: &[(&str, &str)],
) -> anyhow::Result<Service> {
    let config = eye_ingest::Config {
        ingest: ingest_config(ingest),
        kafka,
        auth: test_auth().config.clone(),
        http: http_config(http),
        // Replay only; never reached here.
        clickhouse: eye_e2e::clickhouse_config("default"),
    };
    eye_e2e::start_ingest_config(config).await
}

/// The value of an unlabelled metric, or of the series whose labels are `labels` exactly.
async fn metric(url: &str, name: &str, labels: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(url).await?.text().await?;
    let series = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.strip_prefix(' '))
        .map(str::parse)
        .transpose()?;
    Ok(value.unwrap_or(0.0))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_over_the_inflight_budget_is_refused_and_nothing_acknowledged_is_lost(
) -> anyhow::Result<()> {
    let kafka = kafka_config(&format!("eye.test.{}", unique("budget")));
    create_topics(&kafka).await?;
    // One request of 10 events is about 1.9 KB, and its records about twice that: the
    // budget holds a handful at once.
    let ingest = start_ingest(kafka.clone(), &[("MAX_INFLIGHT_BYTES", "32768")], &[]).await?;
    wait_ready(&[&ingest]).await?;
    let http = http_client();
    let session = unique("flood");
    let body = events(&session, 10);
    let length = serde_json::to_vec(&body)?.len();
    assert!((1024..2048).contains(&length), "request of {length} bytes");

    const REQUESTS: usize = 300;
    let url = ingest.url("/v1/events");
    let answers = join_all((0..REQUESTS).map(|_| {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        async move {
            let res = http.post(&url).json(&body).send().await?;
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: Value = res.json().await?;
            anyhow::Ok((status, retry_after, body))
        }
    }))
    .await;

    let mut accepted = HashSet::new();
    let mut refused = 0;
    for answer in answers {
        let (status, retry_after, body) = answer?;
        match status {
            202 => {
                let got = ids(&body);
                assert_eq!(got.len(), 10, "{body}");
                accepted.extend(got);
            }
            503 => {
                refused += 1;
                assert_eq!(body["error"]["code"], "overloaded", "{body}");
                assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let accepted_requests = accepted.len() / 10;
    println!("{REQUESTS} concurrent requests: {accepted_requests} accepted, {refused} refused");
    assert!(refused > 0, "the budget never filled");
    assert!(accepted_requests > 0, "nothing was accepted");
    assert_eq!(accepted_requests + refused, REQUESTS);

    // Exactly the acknowledged events are in Kafka: a refused request produced nothing.
    let stored = eye_e2e::read_topic(&kafka, &kafka.events_topic).await?;
    let stored_set: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "duplicates on the topic");
    assert_eq!(stored_set, accepted);

    let metrics = ingest.url("/metrics");
    let counted = metric(
        &metrics,
        "eye_ingest_unavailable_total",
        "reason=\"inflight_bytes\"",
    )
    .await?;
    assert_eq!(counted, refused as f64);
    // The budget refused first, never the producer's queue (which refuses mid-request).
    let queue_full = metric(
        &metrics,
        "eye_ingest_unavailable_total",
        "reason=\"producer_queue\"",
    )
    .await?;
    assert_eq!(queue_full, 0.0);
    assert_eq!(
        metric(&metrics, "eye_ingest_inflight_bytes", "").await?,
        0.0
    );

    // With the flood over, the whole budget is free again.
    let res = http.post(&url).json(&body).send().await?;
    assert_eq!(res.status(), 202);
    drop(http);
    ingest.stop().await
}

async fn readyz(http: &reqwest::Client, addr: SocketAddr) -> anyhow::Result<(u16, Value)> {
    let res = http.get(format!("http://{addr}/readyz")).send().await?;
    Ok((res.status().as_u16(), res.json().await?))
}

/// Polls until connecting to `addr` is refused; fails if it is still accepting at `until`.
async fn wait_closed(addr: SocketAddr, until: Instant) -> anyhow::Result<Instant> {
    loop {
        if TcpStream::connect(addr).await.is_err() {
            return Ok(Instant::now());
        }
        anyhow::ensure!(Instant::now() < until, "{addr} still accepts connections");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_drains_readyz_first_then_the_listener_and_answers_requests_in_flight(
) -> anyhow::Result<()> {
    let kafka = kafka_config(&format!("eye.test.{}", unique("drain")));
    create_topics(&kafka).await?;
    let delay_ms = DRAIN_DELAY.as_millis().to_string();
    let ingest = start_ingest(kafka.clone(), &[], &[("DRAIN_DELAY_MS", &delay_ms)]).await?;
    wait_ready(&[&ingest]).await?;
    let addr = ingest.addr;
    let session = unique("drain");

    // A request in flight across the whole drain: its head and half its body now, the rest
    // once the listener has closed.
    let body = serde_json::to_vec(&events(&session, 3))?;
    let (first, rest) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        test_auth().api_key,
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await?;
    in_flight.write_all(first).await?;
    in_flight.flush().await?;

    // Not draining yet.
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    assert_eq!(readyz(&probe, addr).await?.0, 200);

    let signalled = Instant::now();
    let stopping = tokio::spawn(ingest.stop());

    // Draining at once, while the API is still served.
    let (status, body) = wait_for(Duration::from_secs(2), "readyz draining", || async {
        readyz(&probe, addr).await.ok().filter(|(s, _)| *s == 503)
    })
    .await?;
    assert_eq!(body["error"]["code"], "draining", "{body}");
    assert!(signalled.elapsed() < DRAIN_DELAY, "draining came too late");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", test_auth().api_key).parse()?,
            )]
            .into_iter()
            .collect(),
        )
        .build()?;
    let res = http
        .post(format!("http://{addr}/v1/events"))
        .json(&events(&session, 2))
        .send()
        .await?;
    assert_eq!(res.status(), 202, "served while draining");
    let mut acknowledged: HashSet<String> = ids(&res.json().await?).into_iter().collect();
    assert_eq!(status, 503);
    let health = probe.get(format!("http://{addr}/healthz")).send().await?;
    assert_eq!(health.status(), 200, "alive while draining");
    assert!(
        signalled.elapsed() < DRAIN_DELAY,
        "the checks took too long"
    );

    // The listener closes once the delay has passed, not before.
    let closed = wait_closed(addr, signalled + DRAIN_DELAY + Duration::from_secs(5)).await?;
    let after = closed - signalled;
    println!("listener closed {after:?} after the signal (delay {DRAIN_DELAY:?})");
    assert!(after >= DRAIN_DELAY, "closed after {after:?}");

    // The request in flight is still answered, in full.
    in_flight.write_all(rest).await?;
    let mut answer = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        in_flight.read_to_string(&mut answer),
    )
    .await??;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let json_body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json_body: Value = serde_json::from_str(json_body)?;
    acknowledged.extend(ids(&json_body));
    assert_eq!(acknowledged.len(), 5);

    stopping.await??;
    // Everything acknowledged during the drain reached the broker.
    let stored: HashSet<String> = eye_e2e::read_topic(&kafka, &kafka.events_topic)
        .await?
        .into_iter()
        .collect();
    assert_eq!(stored, acknowledged);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_and_query_say_draining_and_the_consumer_commits_its_batch() -> anyhow::Result<()>
{
    let id = unique("drainc");
    let kafka = kafka_config(&format!("eye.test.{id}"));
    let clickhouse = clickhouse_config(&format!("eye_test_{id}"));
    let group = format!("eye-test-{id}");
    create_topics(&kafka).await?;
    let delay_ms = DRAIN_DELAY.as_millis().to_string();
    let http_settings = http_config(&[("DRAIN_DELAY_MS", &delay_ms)]);

    // A batch that is never due on its own: only shutdown writes it.
    let mut consumer_settings = consumer_config(&group);
    consumer_settings.batch_max_wait_ms = 600_000;
    let consumer_cfg = eye_consumer::Config {
        consumer: consumer_settings,
        kafka: kafka.clone(),
        clickhouse: clickhouse.clone(),
        http: http_settings.clone(),
        retention: Default::default(),
    };
    let consumer = Service::spawn("consumer", |l, rx| {
        eye_consumer::run(consumer_cfg, l, async move {
            let _ = rx.await;
        })
    })
    .await?;
    let query_cfg = eye_query::Config {
        query: config(&[("LISTEN_ADDR", "127.0.0.1:0")]),
        clickhouse: readonly_clickhouse_config(&clickhouse.database),
        auth: test_auth().config.clone(),
        http: http_settings,
        deletion: eye_e2e::config(&[]),
        retention: Default::default(),
    };
    let query = eye_e2e::start_query_config(query_cfg).await?;
    let ingest = start_ingest(kafka.clone(), &[], &[]).await?;
    wait_ready(&[&consumer, &query, &ingest]).await?;

    let http = http_client();
    let session = unique("batch");
    let res = http
        .post(ingest.url("/v1/events"))
        .json(&events(&session, 7))
        .send()
        .await?;
    assert_eq!(res.status(), 202);
    let decoded = consumer.url("/metrics");
    wait_for(
        Duration::from_secs(30),
        "the consumer holds 7 events",
        || {
            let decoded = decoded.clone();
            async move {
                let n = metric(
                    &decoded,
                    "eye_consumer_messages_total",
                    "outcome=\"decoded\"",
                )
                .await
                .ok()?;
                (n >= 7.0).then_some(())
            }
        },
    )
    .await?;
    let store = eye_store::Store::new(&clickhouse)?;
    assert_eq!(
        store.event_counts().await?.distinct_events,
        0,
        "batch not due"
    );

    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let (consumer_addr, query_addr) = (consumer.addr, query.addr);
    let signalled = Instant::now();
    let consumer_stopping = tokio::spawn(consumer.stop());
    let query_stopping = tokio::spawn(query.stop());
    for (name, addr) in [("consumer", consumer_addr), ("query", query_addr)] {
        let (_, body) = wait_for(Duration::from_secs(2), "readyz draining", || async {
            readyz(&probe, addr).await.ok().filter(|(s, _)| *s == 503)
        })
        .await?;
        assert_eq!(body["error"]["code"], "draining", "{name}: {body}");
    }
    assert!(signalled.elapsed() < DRAIN_DELAY, "draining came too late");
    // The consumer's shutdown flush (look-up, then insert) makes the session readable; the
    // query API must answer it while draining, before its listener closes.
    let url = format!("http://{query_addr}/v1/sessions/{session}/events");
    let status = wait_for(
        DRAIN_DELAY / 2,
        "the session readable while draining",
        || async {
            let s = http.get(&url).send().await.ok()?.status().as_u16();
            (s == 200).then_some(s)
        },
    )
    .await;
    assert!(
        matches!(status, Ok(200)),
        "the query API is served while draining: {status:?}"
    );
    assert!(
        signalled.elapsed() < DRAIN_DELAY,
        "answered after the drain delay"
    );

    let until = signalled + DRAIN_DELAY + Duration::from_secs(20);
    for (name, addr) in [("consumer", consumer_addr), ("query", query_addr)] {
        let after = wait_closed(addr, until).await? - signalled;
        println!("{name} listener closed {after:?} after the signal");
        assert!(after >= DRAIN_DELAY, "{name} closed after {after:?}");
    }
    consumer_stopping.await??;
    query_stopping.await??;

    // The batch in hand was inserted at shutdown, and its offsets committed.
    assert_eq!(store.event_counts().await?.distinct_events, 7);
    let committed = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = eye_kafka::client::consumer_config(&kafka, &group).create()?;
        let md = c.fetch_metadata(Some(&kafka.events_topic), Duration::from_secs(10))?;
        let mut tpl = TopicPartitionList::new();
        let mut high_total = 0;
        for p in md
            .topics()
            .first()
            .map(|t| t.partitions())
            .unwrap_or_default()
        {
            tpl.add_partition(&kafka.events_topic, p.id());
            high_total += c
                .fetch_watermarks(&kafka.events_topic, p.id(), Duration::from_secs(10))?
                .1;
        }
        let committed: i64 = c
            .committed_offsets(tpl, Duration::from_secs(10))?
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            })
            .sum();
        anyhow::Ok((committed, high_total))
    })
    .await??;
    assert_eq!(
        committed.0, committed.1,
        "committed offsets (sum) vs end of topic"
    );
    assert_eq!(committed.1, 7);
    drop(http);
    ingest.stop().await
}
