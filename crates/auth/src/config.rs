//! `EYE_AUTH_*`: the clients file, token signing and default rate limits.

use eye_runtime::config::Group;
use secrecy::SecretString;
use serde::Deserialize;

eye_runtime::defaults! {
    d_clients_file: std::path::PathBuf = "clients.toml".into();
    d_token_ttl_s: u64 = 900;
    d_auth_reload_interval_ms: u64 = 1_000;
    d_requests_per_s: u32 = 1_000;
    d_requests_burst: u32 = 2_000;
    d_events_per_s: u32 = 50_000;
    d_events_burst: u32 = 100_000;
}

/// `EYE_AUTH_*`: who may call ingest and query (see the README's security section).
#[derive(Debug, Clone, Deserialize)]
pub struct AuthConfig {
    /// The declared clients (TOML), written by `eye-admin clients`; re-read when it changes.
    #[serde(default = "d_clients_file")]
    pub clients_file: std::path::PathBuf,
    /// HMAC key signing OAuth2 bearer tokens; every service that must accept a token needs
    /// the same one. Empty: a random key per process (tokens work only where issued).
    /// `Debug` prints it redacted.
    #[serde(default)]
    pub token_secret: SecretString,
    /// Lifetime of an issued bearer token.
    #[serde(default = "d_token_ttl_s")]
    pub token_ttl_s: u64,
    /// How often the clients file is checked for changes (revocations take effect then).
    #[serde(default = "d_auth_reload_interval_ms")]
    pub reload_interval_ms: u64,
    /// Default per-client request rate and burst; a client in the file may override them.
    #[serde(default = "d_requests_per_s")]
    pub requests_per_s: u32,
    #[serde(default = "d_requests_burst")]
    pub requests_burst: u32,
    /// Default per-client event rate and burst (ingest).
    #[serde(default = "d_events_per_s")]
    pub events_per_s: u32,
    #[serde(default = "d_events_burst")]
    pub events_burst: u32,
}

impl Group for AuthConfig {
    const PREFIX: &'static str = "EYE_AUTH_";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token_secret() {
        let secret = "a-token-key-nobody-may-read-in-a-log";
        let c: AuthConfig = eye_runtime::config::from_iter([(
            "EYE_AUTH_TOKEN_SECRET".to_owned(),
            secret.to_owned(),
        )])
        .expect("config");
        let shown = format!("{c:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("token_secret"), "{shown}");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&c.token_secret),
            secret
        );
    }
}
