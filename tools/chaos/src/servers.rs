//! The suite's own broker and ClickHouse, started, stopped and killed by the project's
//! script (`deploy/stack.sh`) under their own `EYE_HOME` and ports.
//!
//! Own servers, because the faults are real: the broker is SIGKILLed and ClickHouse is
//! stopped, which must never hit the servers of `make up` or of the rest of the test suite.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
pub struct Servers {
    root: PathBuf,
    pub home: PathBuf,
    pub kafka_port: u16,
    pub clickhouse_http_port: u16,
    pub clickhouse_tcp_port: u16,
}

/// A server the script manages, by its pid-file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Broker,
    ClickHouse,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Broker => "broker",
            Server::ClickHouse => "clickhouse",
        }
    }
}

impl Servers {
    /// Servers under `<checkout>/.eye/chaos` on ports 19092 (Kafka), 18123 and 19000
    /// (ClickHouse HTTP and native), away from the defaults `make up` uses.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            home: root.join(".eye/chaos"),
            kafka_port: 19092,
            clickhouse_http_port: 18123,
            clickhouse_tcp_port: 19000,
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    pub fn clickhouse_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.clickhouse_http_port)
    }

    fn script(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = Command::new(self.root.join("deploy/stack.sh"))
            .args(args)
            .env("EYE_HOME", &self.home)
            .env("EYE_STACK_KAFKA_PORT", self.kafka_port.to_string())
            .env(
                "EYE_STACK_CLICKHOUSE_HTTP_PORT",
                self.clickhouse_http_port.to_string(),
            )
            .env(
                "EYE_STACK_CLICKHOUSE_TCP_PORT",
                self.clickhouse_tcp_port.to_string(),
            )
            .status()
            .with_context(|| format!("running deploy/stack.sh {args:?}"))?;
        anyhow::ensure!(status.success(), "deploy/stack.sh {args:?}: {status}");
        Ok(())
    }

    /// Starts whichever of the two is not running (installing them if missing) and waits
    /// until both answer.
    pub fn start(&self) -> anyhow::Result<()> {
        self.script(&["servers"])
    }

    /// Graceful stop (SIGTERM, then wait).
    pub fn stop(&self, s: Server) -> anyhow::Result<()> {
        self.script(&["stop", s.name()])
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(&self, s: Server) -> anyhow::Result<()> {
        self.script(&["kill", s.name()])
    }

    pub fn stop_all(&self) -> anyhow::Result<()> {
        self.script(&["stop-servers"])
    }

    /// Whether the script's pid file names a live process of this server.
    pub fn running(&self, s: Server) -> bool {
        let pidfile = self.home.join("run").join(format!("{}.pid", s.name()));
        std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
    }

    /// Forgets the broker's stored messages before a run, when the broker is not running:
    /// no retention was observed in tansu, and a million events per scenario adds up.
    pub fn reset_broker_storage(&self) -> anyhow::Result<()> {
        if self.running(Server::Broker) {
            return Ok(());
        }
        let dir = self.home.join("broker");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {dir:?}"))?;
        }
        Ok(())
    }

    /// One statement over ClickHouse's HTTP interface, as the operator would type it.
    pub async fn sql(&self, http: &reqwest::Client, statement: &str) -> anyhow::Result<String> {
        let res = http
            .post(self.clickhouse_url())
            .body(statement.to_owned())
            .send()
            .await?;
        let status = res.status();
        let text = res.text().await?;
        anyhow::ensure!(status.is_success(), "{statement}: {status}: {text}");
        Ok(text)
    }
}
