//! The HTTP limits every listener applies (`EYE_HTTP_*`), on real sockets: head size and
//! header count, the head and body read timeouts, CORS, and health and metrics on their own
//! address. Raw TCP where the point is what a misbehaving client sees byte for byte.
//!
//! Only ingest needs the broker's address (nothing is produced) and only query ClickHouse's
//! (nothing is read), so these tests create no topics or databases.

use eye_e2e::{
    clickhouse_config, config, http_client, http_config, ingest_config, kafka_config,
    start_ingest_config, start_query_config, test_auth, unique, wait_for, Service,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any test waits for the server to act; the configured limits are far shorter,
/// so reaching this means the limit was not applied.
const PATIENCE: Duration = Duration::from_secs(5);

async fn ingest(http: &[(&str, &str)], ingest: &[(&str, &str)]) -> anyhow::Result<Service> {
    start_ingest_config(eye_ingest::Config {
        ingest: ingest_config(ingest),
        kafka: kafka_config(&format!("eye.test.{}", unique("hardening"))),
        auth: test_auth().config.clone(),
        http: http_config(http),
        // Replay only; never reached here.
        clickhouse: eye_e2e::clickhouse_config("default"),
    })
    .await
}

async fn query(http: &[(&str, &str)], query: &[(&str, &str)]) -> anyhow::Result<Service> {
    let mut all = vec![("LISTEN_ADDR", "127.0.0.1:0")];
    all.extend_from_slice(query);
    start_query_config(eye_query::Config {
        query: config(&all),
        clickhouse: clickhouse_config("eye"),
        auth: test_auth().config.clone(),
        http: http_config(http),
        deletion: eye_e2e::config(&[]),
        retention: Default::default(),
    })
    .await
}

/// What a raw connection saw.
struct Seen {
    bytes: Vec<u8>,
    /// The server closed (or reset) the connection before `PATIENCE` ran out.
    closed: bool,
    /// From the start of waiting to the close, or to giving up.
    after: Duration,
}

impl Seen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status code of the first response, if one arrived.
    fn status(&self) -> Option<u16> {
        let text = self.text();
        let line = text.lines().next()?;
        line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }

    /// Statuses of every response on the connection, in order.
    fn statuses(&self) -> Vec<u16> {
        self.text()
            .match_indices("HTTP/1.1 ")
            .filter_map(|(i, m)| self.text().get(i + m.len()..i + m.len() + 3)?.parse().ok())
            .collect()
    }

    fn body_json(&self) -> Option<Value> {
        let text = self.text();
        let (_, body) = text.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    }
}

/// A raw client connection.
struct Raw(TcpStream);

impl Raw {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self(TcpStream::connect(addr).await?))
    }

    /// Write errors are ignored: a server that has refused the request may close before
    /// the client is done sending, and what it answered is what counts.
    async fn write(&mut self, bytes: &[u8]) {
        let _ = self.0.write_all(bytes).await;
    }

    /// Reads until the server closes the connection or `patience` passes.
    async fn wait(&mut self, patience: Duration) -> anyhow::Result<Seen> {
        let started = Instant::now();
        let mut bytes = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let deadline = tokio::time::Instant::now() + patience;
        let closed = loop {
            match tokio::time::timeout_at(deadline, self.0.read(&mut buf)).await {
                Err(_) => break false,
                Ok(Ok(0)) => break true,
                Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
                // Closing with the rest of an over-long request unread makes the kernel
                // reset the connection; that is a close too.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Ok(Err(e)) => return Err(e.into()),
            }
        };
        Ok(Seen {
            bytes,
            closed,
            after: started.elapsed(),
        })
    }
}

/// Sends `request` on a new connection and waits for the server to close it.
async fn send(addr: SocketAddr, request: &[u8]) -> anyhow::Result<Seen> {
    let mut raw = Raw::open(addr).await?;
    raw.write(request).await;
    raw.wait(PATIENCE).await
}

/// `GET /healthz` with `extra` header lines (each ending in CRLF) after `host`.
fn healthz_with(extra: &str) -> Vec<u8> {
    format!("GET /healthz HTTP/1.1\r\nhost: eye\r\nconnection: close\r\n{extra}\r\n").into_bytes()
}

/// A header line padding the head to about `bytes`.
fn padding(bytes: usize) -> String {
    format!("x-padding: {}\r\n", "a".repeat(bytes))
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    // Bound and released: another process could take the port in between, which would
    // make the service fail to start with an error naming the address, not pass wrongly.
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// hyper refuses a head once it has buffered `EYE_HTTP_MAX_HEADER_BYTES` without finding
/// its end. It checks between reads, so the limit is exact for what the server has read,
/// while a head arriving in one piece can pass it by up to one read (docs/configuration.md).
#[tokio::test(flavor = "multi_thread")]
async fn a_head_over_the_configured_size_gets_431_and_a_closed_connection() -> anyhow::Result<()> {
    // Every head here is far below hyper's own default (about 400 KiB), so each 431 proves
    // the configured limit is the one applied.
    let limits = [
        ("MAX_HEADER_BYTES", "16384"),
        ("HEADER_READ_TIMEOUT_MS", "500"),
    ];
    let svc = ingest(&limits, &[]).await?;

    let fits = send(svc.addr, &healthz_with(&padding(12 * 1024))).await?;
    assert_eq!(fits.status(), Some(200), "{}", fits.text());

    // 17 KiB of a head that has not ended: refused as soon as it is read, long before the
    // head timeout (which would close without an answer).
    let unfinished = |kib: usize| {
        let mut head = healthz_with(&padding(kib * 1024));
        head.truncate(head.len() - 4);
        head
    };
    let over = send(svc.addr, &unfinished(17)).await?;
    assert_eq!(over.status(), Some(431), "{}", over.text());
    // hyper answers before any route runs: no body, not the JSON error shape.
    assert!(
        over.text()
            .to_ascii_lowercase()
            .contains("content-length: 0\r\n"),
        "{}",
        over.text()
    );
    assert_eq!(over.statuses(), [431]);
    assert!(over.closed, "the connection stayed open after 431");

    // Control: 15 KiB of an unfinished head is not refused for its size; it waits for the
    // rest until the head timeout closes it, without an answer.
    let under = send(svc.addr, &unfinished(15)).await?;
    assert!(under.closed && under.bytes.is_empty(), "{}", under.text());
    assert!(
        under.after >= Duration::from_millis(400),
        "{:?}",
        under.after
    );

    // A complete head well past the limit, sent in one piece, is refused too.
    let huge = send(svc.addr, &healthz_with(&padding(40 * 1024))).await?;
    assert_eq!(huge.status(), Some(431), "{}", huge.text());
    assert!(huge.closed, "the connection stayed open after 431");
    svc.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn more_than_100_headers_get_431() -> anyhow::Result<()> {
    let svc = ingest(&[], &[]).await?;
    // `host` and `connection` are two; the rest are numbered, each a few bytes, so the head
    // stays far below the size limit and only the count matters.
    let numbered = |n: usize| {
        (0..n)
            .map(|i| format!("x-h{i}: {i}\r\n"))
            .collect::<String>()
    };

    let hundred = send(svc.addr, &healthz_with(&numbered(98))).await?;
    assert_eq!(hundred.status(), Some(200), "{}", hundred.text());

    let over = send(svc.addr, &healthz_with(&numbered(99))).await?;
    assert_eq!(over.status(), Some(431), "{}", over.text());
    assert!(over.closed, "the connection stayed open after 431");
    svc.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_stalling_mid_head_is_disconnected_after_the_header_timeout() -> anyhow::Result<()>
{
    let svc = query(&[("HEADER_READ_TIMEOUT_MS", "500")], &[]).await?;
    // Half a head: no blank line, so the request never completes.
    let seen = send(svc.addr, b"GET /healthz HTTP/1.1\r\nhost: eye\r\nx-slow: ").await?;
    assert!(seen.closed, "still open after {:?}", PATIENCE);
    assert!(
        seen.bytes.is_empty(),
        "hyper closes without an answer: {}",
        seen.text()
    );
    assert!(
        seen.after >= Duration::from_millis(400),
        "closed after {:?}, before the timeout",
        seen.after
    );
    svc.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_sends_nothing_is_disconnected_after_the_header_timeout() -> anyhow::Result<()>
{
    let svc = query(&[("HEADER_READ_TIMEOUT_MS", "500")], &[]).await?;
    let seen = Raw::open(svc.addr).await?.wait(PATIENCE).await?;
    assert!(seen.closed, "still open after {PATIENCE:?}");
    assert!(seen.bytes.is_empty(), "{}", seen.text());
    assert!(seen.after >= Duration::from_millis(400), "{:?}", seen.after);
    svc.stop().await
}

/// On a keep-alive connection hyper 0.14 starts the head timer at the first byte of each
/// later request, so an idle connection between requests is not closed by it (there is no
/// idle timeout in hyper 0.14), but a later request that stalls mid-head is.
#[tokio::test(flavor = "multi_thread")]
async fn on_keep_alive_the_header_timeout_runs_from_the_next_requests_first_byte(
) -> anyhow::Result<()> {
    let svc = query(
        &[
            ("HEADER_READ_TIMEOUT_MS", "500"),
            ("IDLE_TIMEOUT_MS", "1500"),
        ],
        &[],
    )
    .await?;
    let mut raw = Raw::open(svc.addr).await?;
    raw.write(b"GET /healthz HTTP/1.1\r\nhost: eye\r\n\r\n")
        .await;
    // Idle for longer than the head timeout but not the idle timeout: still open.
    let idle = raw.wait(Duration::from_millis(800)).await?;
    assert_eq!(idle.statuses(), [200], "{}", idle.text());
    assert!(!idle.closed, "closed before the idle timeout");

    raw.write(b"GET /healthz HTTP/1.1\r\nhost: eye\r\n").await;
    let stalled = raw.wait(PATIENCE).await?;
    assert!(stalled.closed, "a stalled second head kept its connection");
    assert!(stalled.bytes.is_empty(), "{}", stalled.text());
    assert!(
        stalled.after >= Duration::from_millis(400),
        "{:?}",
        stalled.after
    );
    svc.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> anyhow::Result<()> {
    let svc = query(&[("IDLE_TIMEOUT_MS", "700")], &[]).await?;
    let mut raw = Raw::open(svc.addr).await?;
    raw.write(b"GET /healthz HTTP/1.1\r\nhost: eye\r\n\r\n")
        .await;
    let seen = raw.wait(PATIENCE).await?;
    assert_eq!(seen.statuses(), [200], "{}", seen.text());
    assert!(
        seen.closed,
        "an idle keep-alive connection was never closed"
    );
    assert!(
        seen.after >= Duration::from_millis(600),
        "closed after {:?}, before the idle timeout",
        seen.after
    );
    svc.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_stalling_mid_body_gets_408_after_the_body_timeout() -> anyhow::Result<()> {
    // The head timeout stays at its default (10 s): what ends the request is the body's.
    let svc = ingest(&[("BODY_READ_TIMEOUT_MS", "500")], &[]).await?;
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nhost: eye\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n[{{\"session_id\"",
        test_auth().api_key
    );
    let seen = send(svc.addr, request.as_bytes()).await?;
    assert_eq!(seen.status(), Some(408), "{}", seen.text());
    let body = seen.body_json().expect("a JSON error body");
    assert_eq!(body["error"]["code"], "body_timeout", "{body}");
    assert!(
        seen.after >= Duration::from_millis(400),
        "answered after {:?}, before the timeout",
        seen.after
    );
    // The rest of the body never came, so the connection cannot carry another request.
    assert!(seen.closed, "the connection stayed open after 408");

    let metrics = http_client()
        .get(svc.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains(r#"eye_ingest_rejected_requests_total{code="body_timeout"} 1"#),
        "{metrics}"
    );
    svc.stop().await
}

/// Sends a CORS preflight (no credentials, as browsers send it) and returns the answer.
async fn preflight(
    http: &reqwest::Client,
    url: &str,
    origin: &str,
    method: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(http
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type, content-encoding",
        )
        .send()
        .await?)
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap_or_default().to_ascii_lowercase())
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflight_is_answered_for_configured_origins_only() -> anyhow::Result<()> {
    const ALLOWED: &str = "https://app.example.com";
    const OTHER: &str = "https://evil.example.com";
    let cors = [(
        "CORS_ALLOWED_ORIGINS",
        "http://localhost:3000,https://app.example.com",
    )];
    let ingest = ingest(&cors, &[]).await?;
    let query = query(&cors, &[]).await?;
    // No credentials on preflights: browsers never send them there.
    let anonymous = reqwest::Client::new();

    for (url, method) in [
        (ingest.url("/v1/events"), "POST"),
        (query.url("/v1/events"), "GET"),
    ] {
        let res = preflight(&anonymous, &url, ALLOWED, method).await?;
        assert_eq!(res.status(), 200, "{url}");
        assert_eq!(
            header(&res, "access-control-allow-origin").as_deref(),
            Some(ALLOWED)
        );
        let methods = header(&res, "access-control-allow-methods").unwrap_or_default();
        for m in ["get", "post", "options"] {
            assert!(methods.contains(m), "{url}: {methods}");
        }
        let headers = header(&res, "access-control-allow-headers").unwrap_or_default();
        for h in ["authorization", "content-type", "content-encoding"] {
            assert!(headers.contains(h), "{url}: {headers}");
        }

        let res = preflight(&anonymous, &url, OTHER, method).await?;
        assert_eq!(res.status(), 403, "{url}");
        assert_eq!(header(&res, "access-control-allow-origin"), None, "{url}");
        let body: Value = res.json().await?;
        assert_eq!(body["error"]["code"], "cors_forbidden", "{url}: {body}");

        // A method outside the policy is refused even from an allowed origin.
        let res = preflight(&anonymous, &url, ALLOWED, "DELETE").await?;
        assert_eq!(res.status(), 403, "{url}");
    }

    // The actual request, made with credentials, carries the grant so the page can read
    // the answer; from another origin it is refused before any route runs.
    let authed = http_client();
    let res = authed
        .get(query.url("/v1/categories"))
        .header("origin", ALLOWED)
        .send()
        .await?;
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(ALLOWED),
        "status {}",
        res.status()
    );
    assert_eq!(
        header(&res, "access-control-expose-headers").as_deref(),
        Some("retry-after")
    );
    let res = authed
        .post(ingest.url("/v1/events"))
        .header("origin", OTHER)
        .json(&serde_json::json!([]))
        .send()
        .await?;
    assert_eq!(res.status(), 403);
    assert_eq!(header(&res, "access-control-allow-origin"), None);

    // Health and metrics are not under CORS: a foreign origin still reads them.
    let res = anonymous
        .get(ingest.url("/healthz"))
        .header("origin", OTHER)
        .send()
        .await?;
    assert_eq!(res.status(), 200);

    ingest.stop().await?;
    query.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn without_configured_origins_there_is_no_cors() -> anyhow::Result<()> {
    let svc = ingest(&[], &[]).await?;
    let anonymous = reqwest::Client::new();
    let res = preflight(
        &anonymous,
        &svc.url("/v1/events"),
        "https://app.example.com",
        "POST",
    )
    .await?;
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_ne!(res.status(), 200);
    // Requests carrying an Origin are served as before CORS existed.
    let res = anonymous
        .get(svc.url("/healthz"))
        .header("origin", "https://app.example.com")
        .send()
        .await?;
    assert_eq!(res.status(), 200);
    svc.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_move_to_the_ops_address() -> anyhow::Result<()> {
    let ingest_ops = free_addr()?;
    let query_ops = free_addr()?;
    let ingest_ops_s = ingest_ops.to_string();
    let query_ops_s = query_ops.to_string();
    let ingest = ingest(&[], &[("OPS_LISTEN_ADDR", &ingest_ops_s)]).await?;
    let query = query(&[], &[("OPS_LISTEN_ADDR", &query_ops_s)]).await?;
    let http = http_client();

    for (svc, ops) in [(&ingest, ingest_ops), (&query, query_ops)] {
        let name = svc.name;
        let ops_url = |path: &str| format!("http://{ops}{path}");
        // The ops listener is bound when the service starts, a moment after spawning.
        wait_for(Duration::from_secs(10), "the ops listener", || {
            let http = http.clone();
            let url = ops_url("/healthz");
            async move {
                matches!(http.get(&url).send().await, Ok(r) if r.status() == 200).then_some(())
            }
        })
        .await?;
        let metrics = http.get(ops_url("/metrics")).send().await?;
        assert_eq!(metrics.status(), 200, "{name}");
        assert!(
            metrics.text().await?.contains("eye_http_requests_total"),
            "{name}"
        );
        let ready = http.get(ops_url("/readyz")).send().await?.status();
        assert_ne!(ready, 404, "{name}");

        // The main listener no longer answers them, in any spelling...
        for path in ["/metrics", "/healthz", "/readyz", "/metrics/", "//metrics"] {
            let res = http.get(svc.url(path)).send().await?;
            assert_eq!(res.status(), 404, "{name} {path}");
            let body: Value = res.json().await?;
            assert_eq!(body["error"]["code"], "not_found", "{name} {path}");
        }
        // ...and the ops listener serves nothing else.
        for path in ["/openapi.json", "/v1/events"] {
            let res = http.get(ops_url(path)).send().await?;
            assert_eq!(res.status(), 404, "{name} {path} on the ops address");
        }
        let res = http.get(svc.url("/openapi.json")).send().await?;
        assert_eq!(
            res.status(),
            200,
            "{name}: the API description stays on the API"
        );
    }
    ingest.stop().await?;
    query.stop().await
}
