//! eye-chaos: the fault-injection suite behind `make chaos` (full size) and
//! `chaos/tests/chaos.rs` (scaled down, inside `make test`).
//!
//! Each scenario ([`Scenario`]) runs the real service binaries against the suite's own
//! broker and ClickHouse ([`servers`]), drives them with `eye-loadgen`, injects its fault
//! mid-load, repairs it, and then checks through the query API ([`check`]) that every
//! event answered 2xx is listed exactly once. The negative control runs a scenario that
//! certainly replays with deduplication switched off, and must report duplicates.

pub mod canary;
pub mod check;
pub mod report;
pub mod scenario;
pub mod servers;
pub mod services;

pub use scenario::{Outcome, Scenario, Size};

use eye_auth::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Suite {
    pub root: PathBuf,
    pub servers: servers::Servers,
    pub bins: PathBuf,
    pub log_dir: PathBuf,
    pub api_key: String,
    clients_file: PathBuf,
    token_secret: String,
    pub seed: u64,
}

impl Suite {
    /// Starts the suite's servers (installing them if missing) and writes its client.
    pub fn start(root: &Path) -> anyhow::Result<Self> {
        let servers = servers::Servers::new(root);
        servers.reset_broker_storage()?;
        servers.start()?;
        let bins = services::bin_dir()?;
        let stamp = chrono_free_stamp();
        let log_dir = servers.home.join("log").join(format!("run-{stamp}"));
        std::fs::create_dir_all(&log_dir)?;
        let auth_dir = servers.home.join("auth");
        std::fs::create_dir_all(&auth_dir)?;
        let clients_file = auth_dir.join("clients.toml");
        let creds = NewCredentials::generate()?;
        ClientsFile {
            clients: vec![ClientRecord {
                rate_limits: RateLimits::unlimited(),
                ..creds.record("chaos", Scope::ALL.to_vec())
            }],
        }
        .save(&clients_file)?;
        Ok(Self {
            root: root.to_owned(),
            servers,
            bins,
            log_dir,
            api_key: creds.api_key(),
            clients_file,
            token_secret: uuid::Uuid::new_v4().simple().to_string().repeat(2),
            seed: 1,
        })
    }

    /// What every service process gets, before its scenario's topics and database.
    fn base_env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "EYE_AUTH_CLIENTS_FILE".into(),
                self.clients_file.display().to_string(),
            ),
            ("EYE_AUTH_TOKEN_SECRET".into(), self.token_secret.clone()),
            (
                "EYE_INGEST_SCHEMA_DIR".into(),
                self.root.join("schemas").display().to_string(),
            ),
        ])
    }

    pub async fn run(
        &self,
        scenario: Scenario,
        size: &Size,
        negative_control: bool,
    ) -> anyhow::Result<Outcome> {
        // Dropping the scenario kills its service processes (kill_on_drop) and its generator.
        tokio::time::timeout(
            size.scenario_timeout,
            scenario::run(self, scenario, size, negative_control),
        )
        .await
        .map_err(|_| anyhow::anyhow!("still running after {:?}", size.scenario_timeout))?
    }

    /// Stops the suite's own servers (never those of `make up`: other ports, other pid files).
    pub fn finish(&self) -> anyhow::Result<()> {
        self.servers.stop_all()
    }
}

/// Seconds since the epoch: unique enough for a run's log folder.
fn chrono_free_stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
