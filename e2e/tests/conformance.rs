//! The request-head rules of RFC 9112 and RFC 9110 every listener applies before any route
//! (`web/src/conformance.rs`), and credentials that are not ASCII, on raw sockets against
//! ingest and query:
//! - a request with both `Content-Length` and `Transfer-Encoding` is refused, its
//!   connection closed, and the request hidden in its body never runs (nothing reaches
//!   Kafka);
//! - an HTTP/1.1 request with no `Host`, or two, is refused 400 `invalid_host` and its
//!   connection closed; HTTP/1.0 may leave `Host` out;
//! - an `Authorization` value with bytes outside visible ASCII is a bad credential: 401
//!   `invalid_credentials` with the Bearer challenge, like an ASCII one that is wrong.

use eye_e2e::{
    clickhouse_config, config, create_topics, http_client, http_config, ingest_config,
    kafka_config, start_ingest_config, start_query_config, test_auth, unique, wait_ready, Service,
};
use eye_kafka::config::KafkaConfig;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any test waits for an answer or a close; a connection the server keeps open
/// after its answers stays open far longer than this.
const PATIENCE: Duration = Duration::from_secs(5);

async fn ingest(kafka: KafkaConfig) -> anyhow::Result<Service> {
    start_ingest_config(eye_ingest::Config {
        ingest: ingest_config(&[]),
        kafka,
        auth: test_auth().config.clone(),
        http: http_config(&[]),
        // Replay only; never reached here.
        clickhouse: eye_e2e::clickhouse_config("default"),
    })
    .await
}

/// Query, on a database it never reads: these tests stop at the head or the guard.
async fn query() -> anyhow::Result<Service> {
    start_query_config(eye_query::Config {
        query: config(&[("LISTEN_ADDR", "127.0.0.1:0")]),
        clickhouse: clickhouse_config("eye"),
        auth: test_auth().config.clone(),
        http: http_config(&[]),
        deletion: eye_e2e::config(&[]),
        retention: Default::default(),
    })
    .await
}

/// What a raw connection saw: every byte until the server closed it or `PATIENCE` ran out.
struct Seen {
    bytes: Vec<u8>,
    closed: bool,
}

impl Seen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status of every response on the connection, in order. A status line is
    /// `HTTP/1.x` and three digits, which tells it from a message that names the version.
    fn statuses(&self) -> Vec<u16> {
        let text = self.text();
        text.match_indices("HTTP/1.")
            .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
            .collect()
    }

    /// The first response's header `name` (lower case), if present.
    fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let (head, _) = text.split_once("\r\n\r\n")?;
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The first response's body, as JSON.
    fn body_json(&self) -> Option<Value> {
        let text = self.text();
        let (head, rest) = text.split_once("\r\n\r\n")?;
        let length: usize = head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })?;
        serde_json::from_str(rest.get(..length)?).ok()
    }
}

/// Sends `request` on a new connection and reads until the server closes it.
async fn send(addr: SocketAddr, request: &[u8]) -> anyhow::Result<Seen> {
    let mut tcp = TcpStream::connect(addr).await?;
    // A server that refused the request may close before the client is done sending;
    // what it answered is what counts.
    let _ = tcp.write_all(request).await;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let closed = loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) => break true,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Ok(Err(e)) => return Err(e.into()),
        }
    };
    Ok(Seen { bytes, closed })
}

/// One valid event with a client-chosen id, in `session`.
fn event(id: &str, session: &str) -> Value {
    json!([{
        "event_id": id,
        "session_id": session,
        "category": "page_interaction",
        "name": "page_view",
        "data": {"host": "www.consumeraffairs.com", "path": "/conformance"},
        "timestamp": "2024-05-01T12:00:00Z",
    }])
}

/// A complete `POST /v1/events` carrying `body`, with the harness's credential.
fn post_events(body: &str, extra_head: &str) -> String {
    format!(
        "POST /v1/events HTTP/1.1\r\nhost: eye\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\n{extra_head}content-length: {}\r\n\r\n{body}",
        test_auth().api_key,
        body.len()
    )
}

/// A proxy that frames by `Content-Length` would forward the hidden request inside the
/// first one's body; a server that frames by the chunked body alone and keeps the
/// connection would run it as a second request. Both orders of the two headers are sent:
/// hyper keeps a `Content-Length` that comes first and drops one that follows.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_with_content_length_and_transfer_encoding_is_refused_and_what_it_hides_never_runs(
) -> anyhow::Result<()> {
    let kafka = kafka_config(&format!("eye.test.{}", unique("smuggling")));
    create_topics(&kafka).await?;
    let svc = ingest(kafka.clone()).await?;
    wait_ready(&[&svc]).await?;
    let session = unique("smuggling");

    let mut hidden_ids = Vec::new();
    for (order, framing) in [
        ("content-length first", None),
        (
            "transfer-encoding first",
            Some("transfer-encoding: chunked\r\n"),
        ),
    ] {
        let hidden_id = uuid::Uuid::now_v7().to_string();
        let hidden = post_events(&event(&hidden_id, &session).to_string(), "");
        // An empty chunked body, then the hidden request.
        let body = format!("0\r\n\r\n{hidden}");
        let outer = match framing {
            None => post_events(&body, "").replacen(
                "\r\n\r\n",
                "\r\ntransfer-encoding: chunked\r\n\r\n",
                1,
            ),
            Some(te) => post_events(&body, te),
        };
        let seen = send(svc.addr, outer.as_bytes()).await?;
        println!(
            "{order}: statuses {:?}, closed {}, connection: {:?}, body {:?}",
            seen.statuses(),
            seen.closed,
            seen.header("connection"),
            seen.body_json()
        );
        assert_eq!(seen.statuses().len(), 1, "{order}: {}", seen.text());
        assert!(seen.closed, "{order}: the connection stayed open");
        assert_eq!(
            seen.header("connection").as_deref(),
            Some("close"),
            "{order}"
        );
        assert!(
            !seen.text().contains(&hidden_id),
            "{order}: {}",
            seen.text()
        );
        if framing.is_none() {
            // Both headers seen: refused before the route, in the error shape.
            assert_eq!(seen.statuses(), [400], "{order}");
            let body = seen.body_json().expect("a JSON error body");
            assert_eq!(body["error"]["code"], "invalid_framing", "{body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("Content-Length") && message.contains("Transfer-Encoding"),
                "{message}"
            );
        }
        hidden_ids.push(hidden_id);
    }

    // A control event in the same session (so on the same partition, after anything the
    // hidden requests would have produced): it is there, and they are not.
    let control_id = uuid::Uuid::now_v7().to_string();
    let res = http_client()
        .post(svc.url("/v1/events"))
        .json(&event(&control_id, &session))
        .send()
        .await?;
    assert_eq!(res.status(), 202, "{}", res.text().await?);
    let produced = eye_e2e::read_topic(&kafka, &kafka.events_topic).await?;
    println!("produced to {}: {produced:?}", kafka.events_topic);
    assert_eq!(produced, [control_id]);
    for id in &hidden_ids {
        assert!(!produced.contains(id), "the hidden event {id} was produced");
    }
    svc.stop().await
}

/// RFC 9112 §3.2, on health and on the API of both services. A second request follows
/// each refused one on its connection and must not be answered.
#[tokio::test(flavor = "multi_thread")]
async fn http_1_1_without_exactly_one_host_is_refused_and_http_1_0_may_omit_it(
) -> anyhow::Result<()> {
    // Nothing is produced or read: the topics need not exist.
    let ingest = ingest(kafka_config(&format!("eye.test.{}", unique("host")))).await?;
    let query = query().await?;
    let follow_up = "GET /healthz HTTP/1.1\r\nhost: eye\r\n\r\n";

    for svc in [&ingest, &query] {
        let name = svc.name;
        for path in ["/healthz", "/openapi.json"] {
            for (case, hosts) in [
                ("no Host", ""),
                ("two Host lines", "host: a\r\nhost: b\r\n"),
            ] {
                let request = format!("GET {path} HTTP/1.1\r\n{hosts}\r\n{follow_up}");
                let seen = send(svc.addr, request.as_bytes()).await?;
                println!(
                    "{name} {path} {case}: statuses {:?}, closed {}, body {:?}",
                    seen.statuses(),
                    seen.closed,
                    seen.body_json()
                );
                assert_eq!(
                    seen.statuses(),
                    [400],
                    "{name} {path} {case}: {}",
                    seen.text()
                );
                let body = seen.body_json().expect("a JSON error body");
                assert_eq!(body["error"]["code"], "invalid_host", "{body}");
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains("Host") && message.contains("RFC 9112"),
                    "{message}"
                );
                assert_eq!(seen.header("connection").as_deref(), Some("close"));
                assert!(
                    seen.closed,
                    "{name} {path} {case}: the connection stayed open"
                );
            }

            // HTTP/1.0 needs no Host; with one Host, HTTP/1.1 is served as before.
            for request in [
                format!("GET {path} HTTP/1.0\r\n\r\n"),
                format!("GET {path} HTTP/1.1\r\nhost: eye\r\nconnection: close\r\n\r\n"),
            ] {
                let seen = send(svc.addr, request.as_bytes()).await?;
                let first_line = seen.text().lines().next().unwrap_or_default().to_owned();
                println!("{name} {:?}: {first_line}", request.lines().next());
                assert_eq!(seen.statuses(), [200], "{name}: {}", seen.text());
            }
        }
    }
    ingest.stop().await?;
    query.stop().await
}

/// RFC 9110 §11.6.2 and RFC 6750 §3: a credential that cannot be read is as wrong as one
/// that does not match, so it is not left to warp's typed header parsing (400 `invalid_header`).
#[tokio::test(flavor = "multi_thread")]
async fn authorization_with_bytes_outside_ascii_gets_401_invalid_credentials_and_the_challenge(
) -> anyhow::Result<()> {
    // The admitted control reaches ingest's handler, which needs its topics.
    let kafka = kafka_config(&format!("eye.test.{}", unique("auth-bytes")));
    create_topics(&kafka).await?;
    let ingest = ingest(kafka).await?;
    let query = query().await?;
    // The guard runs before the body is read: ingest's body is malformed, so the admitted
    // control is answered without producing anything (400 `malformed_json`).
    let routes = [
        (&ingest, "POST /v1/events", "{"),
        (&query, "GET /v1/categories", ""),
    ];
    let request = |route: &str, body: &str, credential: &[u8]| {
        let mut bytes = format!("{route} HTTP/1.1\r\nhost: eye\r\nauthorization: ").into_bytes();
        bytes.extend_from_slice(credential);
        bytes.extend_from_slice(
            format!(
                "\r\ncontent-type: application/json\r\nconnection: close\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        bytes
    };

    for (svc, route, body) in routes {
        let name = svc.name;
        for credential in [
            &b"Bearer \x80\x81\xfe\xff"[..],
            b"Bearer caf\xe9-\xc3\xa9",
            // An ASCII credential that is just as wrong: the answers must be the same.
            b"Bearer eye_wrong",
        ] {
            let shown = String::from_utf8_lossy(credential).into_owned();
            let seen = send(svc.addr, &request(route, body, credential)).await?;
            let challenge = seen.header("www-authenticate");
            println!(
                "{name} {route} {shown:?}: statuses {:?}, www-authenticate {challenge:?}, body {:?}",
                seen.statuses(),
                seen.body_json()
            );
            assert_eq!(seen.statuses(), [401], "{name} {shown:?}: {}", seen.text());
            let body = seen.body_json().expect("a JSON error body");
            assert_eq!(body["error"]["code"], "invalid_credentials", "{body}");
            if !credential.is_ascii() {
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains("Authorization header must be visible ASCII"),
                    "{message}"
                );
            }
            assert!(
                challenge
                    .as_deref()
                    .unwrap_or_default()
                    .starts_with("Bearer realm=\"the-eye\", error=\"invalid_token\""),
                "{name} {shown:?}: {challenge:?}"
            );
        }
        // The same request with the right credential gets past the guard.
        let key = format!("Bearer {}", test_auth().api_key);
        let seen = send(svc.addr, &request(route, body, key.as_bytes())).await?;
        let code = seen.body_json().map(|b| b["error"]["code"].clone());
        println!(
            "{name} {route} with the key: statuses {:?}, error code {code:?}",
            seen.statuses()
        );
        let admitted = seen.statuses();
        assert!(
            admitted.len() == 1 && ![401, 403].contains(&admitted[0]),
            "{name}: {}",
            seen.text()
        );
        assert_ne!(code, Some(json!("invalid_header")), "{name}");
    }
    ingest.stop().await?;
    query.stop().await
}
