//! One client cannot starve the others, and request bodies are read as HTTP says, on the
//! real broker:
//! - a client holding connections whose heads declare the whole in-flight budget and
//!   whose bodies never come holds nothing: another client's requests all succeed
//!   meanwhile;
//! - a client that sends nearly all of such bodies and stalls holds at most its share
//!   (`EYE_INGEST_MAX_INFLIGHT_BYTES_PER_CLIENT`), on every write route: the other
//!   client's requests all succeed meanwhile;
//! - repeated `Content-Encoding` lines are one list: two `gzip` lines on a body gzipped
//!   twice is that body, and the decompressed limit applies to what comes out last.
//!
//! Raw TCP where the point is what a misbehaving client sends byte for byte.

use eye_auth::{ClientsFile, NewCredentials, RateLimits, Scope};
use eye_e2e::{
    auth_config, create_topics, http_config, ingest_config, kafka_config, unique, wait_for,
    wait_ready, Service,
};
use eye_kafka::config::KafkaConfig;
use futures::StreamExt;
use serde_json::{json, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: u64 = 1024 * 1024;
/// `EYE_INGEST_MAX_INFLIGHT_BYTES` and `EYE_INGEST_MAX_BODY_BYTES` at their defaults.
const BUDGET: u64 = 32 * MIB;
const MAX_BODY: u64 = 5 * MIB;
/// The default share: a quarter of the budget.
const SHARE: u64 = BUDGET / 4;
/// What the greedy client declares: six largest bodies and one of 2 MiB, the whole budget.
const DECLARED: [u64; 7] = [
    MAX_BODY,
    MAX_BODY,
    MAX_BODY,
    MAX_BODY,
    MAX_BODY,
    MAX_BODY,
    2 * MIB,
];
/// The other client's requests while the greedy one holds its connections.
const REQUESTS: usize = 40;

/// Two clients that may write, each with its own API key.
struct Clients {
    greedy: NewCredentials,
    other: NewCredentials,
    auth: eye_auth::config::AuthConfig,
}

fn clients(id: &str) -> anyhow::Result<Clients> {
    let greedy = NewCredentials::generate()?;
    let other = NewCredentials::generate()?;
    let record = |c: &NewCredentials, name: &str| eye_auth::ClientRecord {
        rate_limits: RateLimits::unlimited(),
        ..c.record(name, vec![Scope::EventsWrite])
    };
    let dir = std::env::temp_dir().join(format!("eye-e2e-{id}"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("clients.toml");
    ClientsFile {
        clients: vec![record(&greedy, "greedy"), record(&other, "other")],
    }
    .save(&path)?;
    Ok(Clients {
        greedy,
        other,
        auth: auth_config(&path),
    })
}

/// Ingest at its default limits, with `clients` and `overrides` of `EYE_INGEST_*`.
async fn start_ingest(
    kafka: KafkaConfig,
    clients: &Clients,
    overrides: &[(&str, &str)],
) -> anyhow::Result<Service> {
    let ingest = eye_e2e::start_ingest_config(eye_ingest::Config {
        ingest: ingest_config(overrides),
        kafka,
        auth: clients.auth.clone(),
        http: http_config(&[]),
        // Replay only; never reached here.
        clickhouse: eye_e2e::clickhouse_config("default"),
    })
    .await?;
    wait_ready(&[&ingest]).await?;
    Ok(ingest)
}

fn bearer(c: &NewCredentials) -> String {
    format!("Bearer {}", c.api_key())
}

fn client_for(c: &NewCredentials) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .default_headers(
            [(reqwest::header::AUTHORIZATION, bearer(c).parse()?)]
                .into_iter()
                .collect(),
        )
        .build()?)
}

fn events(session: &str, n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "session_id": session,
                "category": "page_interaction",
                "name": "page_view",
                "data": {"host": "www.consumeraffairs.com", "path": format!("/fair/{i}")},
                "timestamp": "2024-05-01T12:00:00Z",
            })
        })
        .collect();
    Value::Array(items)
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

/// The other client's requests, four at a time: how many got each status.
async fn other_client_posts(
    ingest: &Service,
    other: &NewCredentials,
) -> anyhow::Result<std::collections::BTreeMap<u16, usize>> {
    let http = client_for(other)?;
    let url = ingest.url("/v1/events");
    let session = unique("other");
    let statuses: Vec<anyhow::Result<u16>> = futures::stream::iter(0..REQUESTS)
        .map(|_| {
            let (http, url, body) = (http.clone(), url.clone(), events(&session, 10));
            async move {
                let res = http.post(&url).json(&body).send().await?;
                let status = res.status().as_u16();
                let body: Value = res.json().await?;
                if status != 202 {
                    println!("other client: {status} {body}");
                }
                anyhow::Ok(status)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut counts = std::collections::BTreeMap::new();
    for s in statuses {
        *counts.entry(s?).or_default() += 1;
    }
    Ok(counts)
}

/// A request head of the greedy client on `path`, declaring `length` bytes of body.
fn head(addr: SocketAddr, path: &str, key: &str, length: u64) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Whether `conn` is still waiting, unanswered: nothing to read and not closed.
/// The first line of what the server sent on `conn` (the byte `unanswered` saw is lost,
/// so the line may start one character late), for the test's output.
async fn status_line(conn: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    let status = text.split(' ').nth(1).unwrap_or("closed");
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("{status} {code}")
}

async fn unanswered(conn: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_millis(50), conn.read(&mut byte))
        .await
        .is_err()
}

/// The exact attack: seven connections whose heads declare 32 MiB in all (the whole
/// budget at its default), and not one byte of body. Were declared bytes reserved, every
/// other client would get 503 until the 30 s body timeout.
#[tokio::test(flavor = "multi_thread")]
async fn bodies_declared_and_never_sent_hold_nothing() -> anyhow::Result<()> {
    let id = unique("slowloris");
    let kafka = kafka_config(&format!("eye.test.{id}"));
    create_topics(&kafka).await?;
    let clients = clients(&id)?;
    let ingest = start_ingest(kafka, &clients, &[]).await?;
    let addr = ingest.addr;
    let key = bearer(&clients.greedy);
    assert_eq!(DECLARED.iter().sum::<u64>(), BUDGET);

    // Every write route, so that none is a way around.
    let session = unique("greedy");
    let paths = [
        "/v1/events".to_owned(),
        "/v1/sessions".to_owned(),
        format!("/v1/sessions/{session}/end"),
    ];
    let mut greedy = Vec::new();
    for (i, length) in DECLARED.into_iter().enumerate() {
        let mut conn = TcpStream::connect(addr).await?;
        let path = &paths[i % paths.len()];
        conn.write_all(head(addr, path, &key, length).as_bytes())
            .await?;
        conn.flush().await?;
        greedy.push(conn);
    }
    // All seven are past authentication, where their bodies are read.
    let metrics = ingest.url("/metrics");
    let label = format!("client=\"{}\"", clients.greedy.id);
    wait_for(
        Duration::from_secs(10),
        "7 greedy requests admitted",
        || {
            let (metrics, label) = (metrics.clone(), label.clone());
            async move {
                let n = metric(&metrics, "eye_client_requests_total", &label)
                    .await
                    .ok()?;
                (n >= DECLARED.len() as f64).then_some(())
            }
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = metric(&metrics, "eye_ingest_inflight_bytes", "").await?;
    println!(
        "greedy: {} connections declaring {BUDGET} bytes; ingest holds {held} bytes",
        greedy.len()
    );

    let started = Instant::now();
    let counts = other_client_posts(&ingest, &clients.other).await?;
    println!(
        "other client, meanwhile: {counts:?} of {REQUESTS} in {:?}",
        started.elapsed()
    );
    for conn in &mut greedy {
        assert!(unanswered(conn).await, "a greedy connection was answered");
    }
    assert_eq!(counts.get(&202), Some(&REQUESTS), "{counts:?}");
    assert_eq!(held, 0.0, "declared bytes are not held");

    drop(greedy);
    ingest.stop().await
}

/// A greedy client sends all but the last bytes of each body and stalls, on one route;
/// returns what ingest held once it had read all it would.
async fn greedy_sends_and_stalls(
    ingest: &Service,
    greedy_key: &str,
    path: &str,
) -> anyhow::Result<(Vec<TcpStream>, f64)> {
    /// Bytes each body keeps back: seven of them are far less than a request of the
    /// other client, so without shares the budget would be full.
    const KEPT_BACK: u64 = 100;
    let addr = ingest.addr;
    let writers: Vec<_> = DECLARED
        .into_iter()
        .map(|length| {
            let head = head(addr, path, greedy_key, length);
            tokio::spawn(async move {
                let mut conn = TcpStream::connect(addr).await?;
                conn.write_all(head.as_bytes()).await?;
                let body = vec![b' '; (length - KEPT_BACK) as usize];
                // A request refused mid-body is answered and closed; the rest of its body
                // then has nowhere to go.
                let sent = tokio::time::timeout(Duration::from_secs(20), async {
                    conn.write_all(&body).await?;
                    conn.flush().await
                })
                .await;
                anyhow::Ok((conn, matches!(sent, Ok(Ok(())))))
            })
        })
        .collect();
    let mut conns = Vec::new();
    let mut complete = 0;
    for w in writers {
        let (conn, sent) = w.await??;
        complete += usize::from(sent);
        conns.push(conn);
    }
    // Ingest reads what it admits as it comes: wait until it holds something and that
    // stops changing.
    let metrics = ingest.url("/metrics");
    let mut held = metric(&metrics, "eye_ingest_inflight_bytes", "").await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = metric(&metrics, "eye_ingest_inflight_bytes", "").await?;
        // Nothing held yet means ingest has not read the bodies yet (a loaded machine).
        if (now == held && now > 0.0) || Instant::now() > deadline {
            break;
        }
        held = now;
    }
    let mut waiting = 0;
    let mut answers = Vec::new();
    for conn in &mut conns {
        if unanswered(conn).await {
            waiting += 1;
        } else {
            answers.push(status_line(conn).await);
        }
    }
    println!("greedy on {path}: answered {answers:?}");
    println!(
        "greedy on {path}: {complete} of {} bodies sent but {KEPT_BACK} bytes, \
         {waiting} requests still waiting; ingest holds {held} bytes",
        DECLARED.len()
    );
    Ok((conns, held))
}

/// The same client sends nearly all of those bodies and stalls: what has arrived is held,
/// but one client holds at most its share of the budget, whichever write route it uses,
/// and the other client keeps the rest.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_stalling_mid_body_holds_at_most_its_share() -> anyhow::Result<()> {
    let id = unique("share");
    let kafka = kafka_config(&format!("eye.test.{id}"));
    create_topics(&kafka).await?;
    let clients = clients(&id)?;
    let ingest = start_ingest(kafka, &clients, &[]).await?;
    let key = bearer(&clients.greedy);
    let metrics = ingest.url("/metrics");
    let session = unique("greedy");

    for path in [
        "/v1/events".to_owned(),
        "/v1/sessions".to_owned(),
        format!("/v1/sessions/{session}/end"),
    ] {
        let (greedy, held) = greedy_sends_and_stalls(&ingest, &key, &path).await?;
        let counts = other_client_posts(&ingest, &clients.other).await?;
        println!("other client, meanwhile: {counts:?} of {REQUESTS}");
        assert!(held > 0.0, "{path}: the greedy client holds what arrived");
        assert!(held <= SHARE as f64, "{path}: held {held}, share {SHARE}");
        assert_eq!(counts.get(&202), Some(&REQUESTS), "{path}: {counts:?}");
        drop(greedy);
        wait_for(Duration::from_secs(10), "greedy bytes released", || {
            let metrics = metrics.clone();
            async move {
                let n = metric(&metrics, "eye_ingest_inflight_bytes", "")
                    .await
                    .ok()?;
                (n == 0.0).then_some(())
            }
        })
        .await?;
    }
    ingest.stop().await
}

fn gzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data)?;
    Ok(e.finish()?)
}

/// Sends `body` with each of `encodings` as its own `Content-Encoding` line; returns the
/// status and JSON body of the answer.
async fn post_raw(
    addr: SocketAddr,
    key: &str,
    encodings: &[&str],
    body: &[u8],
) -> anyhow::Result<(u16, Value)> {
    let mut head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for e in encodings {
        head.push_str(&format!("Content-Encoding: {e}\r\n"));
    }
    head.push_str("\r\n");
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8(answer)?;
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .map(str::parse)
        .transpose()?
        .unwrap_or(0);
    let json = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok((status, serde_json::from_str(json)?))
}

/// RFC 9110 §5.3: repeated field lines are one comma-separated list, so two
/// `Content-Encoding: gzip` lines say the body was gzipped twice, as `gzip, gzip` does.
/// Reading only the first line would undo one layer and leave gzip: `400 malformed_json`.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_content_encoding_lines_are_one_list() -> anyhow::Result<()> {
    let id = unique("encodings");
    let kafka = kafka_config(&format!("eye.test.{id}"));
    create_topics(&kafka).await?;
    let clients = clients(&id)?;
    // Room for the events below once decompressed, not for the padded one.
    const LIMIT: usize = 20_000;
    let limit = LIMIT.to_string();
    let ingest = start_ingest(
        kafka.clone(),
        &clients,
        &[("MAX_DECOMPRESSED_BYTES", &limit)],
    )
    .await?;
    let key = bearer(&clients.other);
    let session = unique("gzip2");
    let twice = |body: &[u8]| gzip(&gzip(body)?);

    let mut produced = Vec::new();
    for encodings in [
        &["gzip", "gzip"][..],
        &["gzip, gzip"],
        &["x-gzip", "identity", "GZIP"],
    ] {
        let body = serde_json::to_vec(&events(&session, 1))?;
        let (status, answer) = post_raw(ingest.addr, &key, encodings, &twice(&body)?).await?;
        println!("{encodings:?}: {status} {answer}");
        assert_eq!(status, 202, "{encodings:?}: {answer}");
        let ids = answer["event_ids"].as_array().cloned().unwrap_or_default();
        assert_eq!(ids.len(), 1, "{answer}");
        produced.extend(ids.iter().filter_map(|v| v.as_str().map(str::to_owned)));
    }

    // The limit applies to what comes out of the last layer: the body gzipped twice is
    // small, the middle layer too, the JSON is not.
    let mut padded = serde_json::to_vec(&events(&session, 1))?;
    padded.resize(LIMIT + 1, b' ');
    let compressed = twice(&padded)?;
    assert!(gzip(&padded)?.len() < LIMIT && compressed.len() < LIMIT);
    let (status, answer) = post_raw(ingest.addr, &key, &["gzip", "gzip"], &compressed).await?;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(
        answer["error"]["code"], "decompressed_too_large",
        "{answer}"
    );

    // Three layers are more than any client has a reason to send.
    let three = gzip(&twice(&serde_json::to_vec(&events(&session, 1))?)?)?;
    let (status, answer) = post_raw(ingest.addr, &key, &["gzip", "gzip", "gzip"], &three).await?;
    assert_eq!(status, 415, "{answer}");
    assert_eq!(answer["error"]["code"], "unsupported_encoding", "{answer}");
    assert_eq!(
        answer["error"]["message"],
        "Content-Encoding must be gzip or identity, gzip at most 2 times \
         (got \"gzip, gzip, gzip\")",
        "{answer}"
    );

    // The accepted events were produced, and nothing else.
    let mut stored = eye_e2e::read_topic(&kafka, &kafka.events_topic).await?;
    stored.sort();
    produced.sort();
    assert_eq!(stored, produced);
    ingest.stop().await
}
