//! `EYE_CLICKHOUSE_*`: where ClickHouse is, how to sign in, which CA to trust over HTTPS and
//! whether to compress.

use eye_runtime::config::Group;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;

eye_runtime::defaults! {
    d_ch_url: String = "http://127.0.0.1:8123".into();
    d_ch_database: String = "eye".into();
    d_ch_user: String = "default".into();
    d_max_execution_time_ms: u64 = 10_000;
}

/// `EYE_CLICKHOUSE_*`: the ClickHouse server, shared by the consumer, query and eye-admin.
#[derive(Debug, Clone, Deserialize)]
pub struct ClickHouseConfig {
    /// HTTP interface URL.
    #[serde(default = "d_ch_url")]
    pub url: String,
    #[serde(default = "d_ch_database")]
    pub database: String,
    #[serde(default = "d_ch_user")]
    pub user: String,
    /// `Debug` prints it redacted.
    #[serde(default)]
    pub password: SecretString,
    /// Upper bound on any read; ClickHouse counts it in whole seconds (at least 1).
    #[serde(default = "d_max_execution_time_ms")]
    pub max_execution_time_ms: u64,
    /// A cluster of `remote_servers`: tables laid out replicated and `Distributed` across
    /// it, DDL `ON CLUSTER` (docs/cluster.md). Unset or empty: one server.
    #[serde(default)]
    pub cluster: Option<String>,
    /// PEM file of the CA certificate(s) that sign the server's certificate, for an
    /// `https://` URL; unset: the system's roots (Debian: /etc/ssl/certs).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// LZ4 on the HTTP interface: `auto` asks the server at start-up, `lz4` or `none`.
    #[serde(default)]
    pub compression: CompressionSetting,
}

/// `EYE_CLICKHOUSE_COMPRESSION`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionSetting {
    /// Inserts compressed everywhere; reads compressed where a compressed `SELECT` comes back
    /// whole (not on 18.16, whose compressed answers are empty), decided at start-up.
    #[default]
    Auto,
    /// Inserts and reads compressed, unasked.
    Lz4,
    /// Nothing compressed.
    None,
}

impl Group for ClickHouseConfig {
    const PREFIX: &'static str = "EYE_CLICKHOUSE_";

    fn check(&self) -> Result<(), String> {
        if self.ca_file.is_some() && !self.url.starts_with("https://") {
            return Err(format!(
                "EYE_CLICKHOUSE_CA_FILE is set but EYE_CLICKHOUSE_URL ({}) is not https://",
                self.url
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let password = "a-password-nobody-may-read-in-a-log";
        let c: ClickHouseConfig = eye_runtime::config::from_iter([(
            "EYE_CLICKHOUSE_PASSWORD".to_owned(),
            password.to_owned(),
        )])
        .expect("config");
        let shown = format!("{c:?}");
        assert!(!shown.contains(password), "{shown}");
        assert!(shown.contains("password"), "{shown}");
        assert_eq!(secrecy::ExposeSecret::expose_secret(&c.password), password);
    }
}
