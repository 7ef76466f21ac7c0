//! The three services as real processes (the `eye-ingest`, `eye-consumer` and `eye-query`
//! binaries), so that a kill is a real SIGKILL and a restart a real start-up.

use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Where the service binaries are: beside this executable (`target/<profile>/`), or one
/// level up when it is a test (`target/<profile>/deps/`).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe
        .parent()
        .context("executable without a folder")?
        .to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    for name in ["eye-ingest", "eye-consumer", "eye-query"] {
        anyhow::ensure!(
            dir.join(name).exists(),
            "{name} is not built in {}: run `cargo build --bins` (make chaos and make test do)",
            dir.display()
        );
    }
    Ok(dir)
}

/// A service process and how to start it again, identically, on the same port.
pub struct Service {
    pub name: String,
    exe: PathBuf,
    env: BTreeMap<String, String>,
    log: PathBuf,
    pub port: u16,
    child: Option<Child>,
    /// Highest peak RSS (VmHWM) seen over every process this service has run as.
    peak_rss_kib: u64,
}

impl Service {
    pub fn new(
        name: &str,
        exe: PathBuf,
        env: BTreeMap<String, String>,
        log_dir: &Path,
        port: u16,
    ) -> Self {
        Self {
            name: name.to_owned(),
            exe,
            env,
            log: log_dir.join(format!("{name}.log")),
            port,
            child: None,
            peak_rss_kib: 0,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_owned(), value.to_owned());
    }

    pub fn remove_env(&mut self, key: &str) {
        self.env.remove(key);
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(&self.exe)
            // Only what the suite sets: nothing of the caller's EYE_* leaks in.
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls `/readyz` until it answers 200.
    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    anyhow::bail!(
                        "{} exited during start-up: {status} (see {})",
                        self.name,
                        self.log.display()
                    );
                }
            }
            let ok = http
                .get(self.url("/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} not ready within {within:?} (see {})",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Reads the process's peak RSS so far into the running maximum.
    pub fn sample_rss(&mut self) {
        if let Some(kib) = self.pid().and_then(peak_rss_kib) {
            self.peak_rss_kib = self.peak_rss_kib.max(kib);
        }
    }

    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }

    /// SIGKILL, then reap.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.sample_rss();
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// SIGTERM, then wait for the process to drain and exit.
    pub async fn terminate(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        self.sample_rss();
        let mut child = self.child.take().context("not running")?;
        let pid = child.id().context("already reaped")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {pid}: {status}");
        match tokio::time::timeout(within, child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                child.kill().await?;
                anyhow::bail!("{} did not exit within {within:?} of SIGTERM", self.name)
            }
        }
    }

    /// Waits for the process to exit on its own (a fault-injected abort).
    pub async fn wait_exit(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let child = self.child.as_mut().context("not running")?;
        let status = tokio::time::timeout(within, child.wait())
            .await
            .with_context(|| format!("{} still running after {within:?}", self.name))??;
        self.child = None;
        Ok(status)
    }
}

/// `VmHWM` from /proc: the most resident memory the process has had.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A free local port, for a service that must come back on the same one after a restart.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
