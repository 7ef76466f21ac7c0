//! Who a service says sent a request, on a real socket: the peer address of the
//! connection, and the client named in `X-Forwarded-For` only when that peer is one of
//! `EYE_HTTP_TRUSTED_PROXIES`. What the query service tells is the log line of a refused
//! credential, which names the client for an operator; the services' log is captured, as
//! `tests/auth.rs` does. Only ClickHouse's address is needed, and nothing is read.

use eye_e2e::{
    clickhouse_config, config, http_config, start_query_config, test_auth, LogBuffer, Service,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn query(trusted_proxies: &str) -> anyhow::Result<Service> {
    start_query_config(eye_query::Config {
        query: config(&[("LISTEN_ADDR", "127.0.0.1:0")]),
        clickhouse: clickhouse_config("eye"),
        auth: test_auth().config.clone(),
        http: http_config(&[("TRUSTED_PROXIES", trusted_proxies)]),
        deletion: eye_e2e::config(&[]),
        retention: Default::default(),
    })
    .await
}

/// Sends a request with a wrong credential and `forwarded` as its `X-Forwarded-For`;
/// returns the status line and the local port the request came from.
async fn refused(svc: &Service, forwarded: &str) -> anyhow::Result<(String, u16)> {
    let mut tcp = TcpStream::connect(svc.addr).await?;
    let port = tcp.local_addr()?.port();
    let request = format!(
        "GET /v1/categories HTTP/1.1\r\nhost: eye\r\nauthorization: Bearer not-a-key\r\n\
         x-forwarded-for: {forwarded}\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut seen)).await??;
    let status = seen.lines().next().unwrap_or_default().to_owned();
    Ok((status, port))
}

/// The log line about the request from `port`, once it is written.
async fn logged(log: &LogBuffer, port: u16) -> anyhow::Result<String> {
    let peer = format!("peer=127.0.0.1:{port} ");
    for _ in 0..50 {
        if let Some(line) = log.text().lines().find(|l| l.contains(&peer)) {
            return Ok(line.to_owned());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("no log line names {peer}:\n{}", log.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_peer_is_the_client_unless_it_is_a_trusted_proxy() -> anyhow::Result<()> {
    let log = LogBuffer::install(tracing_subscriber::filter::LevelFilter::INFO)?;
    let forwarded = "198.51.100.1, 203.0.113.7";
    for (trusted, client) in [
        // Nobody trusted: what the client wrote in the header is ignored.
        ("", "127.0.0.1"),
        // Another proxy trusted, not this peer: ignored too.
        ("10.0.0.0/8", "127.0.0.1"),
        // The peer is a trusted proxy: the address it received the request from.
        ("127.0.0.1", "203.0.113.7"),
        // Two trusted hops: the address the farther proxy received it from.
        ("127.0.0.0/8,203.0.113.0/24", "198.51.100.1"),
    ] {
        let svc = query(trusted).await?;
        let (status, port) = refused(&svc, forwarded).await?;
        assert!(status.starts_with("HTTP/1.1 401"), "{trusted:?}: {status}");
        let line = logged(&log, port).await?;
        println!("trusted {trusted:?}: {line}");
        assert!(line.contains("credentials refused"), "{trusted:?}: {line}");
        assert!(
            line.contains(&format!("client_ip={client} ")),
            "{trusted:?}: {line}"
        );
        svc.stop().await?;
    }
    Ok(())
}
