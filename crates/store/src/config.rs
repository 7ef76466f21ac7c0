//! `EYE_CLICKHOUSE_*`: where ClickHouse is and how to sign in.

use eye_runtime::config::Group;
use secrecy::SecretString;
use serde::Deserialize;

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
}

impl Group for ClickHouseConfig {
    const PREFIX: &'static str = "EYE_CLICKHOUSE_";
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
