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
    d_redis_key_prefix: String = "eye:rl".into();
    d_redis_timeout_ms: u64 = 100;
    d_redis_retry_interval_ms: u64 = 1_000;
    d_replicas: u32 = 1;
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
    /// `redis://[:password@]host:port[/db]`, or `rediss://` for TLS: the budgets above are
    /// shared by every replica of a service through this Redis (one GCRA script call per
    /// admission). Empty: each process keeps its own buckets. `Debug` prints it redacted
    /// (it may hold a password).
    #[serde(default)]
    pub redis_url: SecretString,
    /// PEM file of the CA that signs the Redis server's certificate (`rediss://` only).
    /// Empty: the system's roots, which is what a managed Redis with a public
    /// certificate needs.
    #[serde(default)]
    pub redis_ca_file: String,
    /// The start of every rate-limit key (`<prefix>:<service>:<client>:<budget>:…`), so
    /// that several deployments can share one Redis.
    #[serde(default = "d_redis_key_prefix")]
    pub redis_key_prefix: String,
    /// Longest wait for Redis per admission (connecting included); past it, the request is
    /// admitted by the replica's own fallback bucket.
    #[serde(default = "d_redis_timeout_ms")]
    pub redis_timeout_ms: u64,
    /// While Redis is unreachable, how often one admission tries it again.
    #[serde(default = "d_redis_retry_interval_ms")]
    pub redis_retry_interval_ms: u64,
    /// How many replicas share the budgets: while Redis is unreachable each keeps
    /// `1/replicas` of every budget in its own bucket, so that together they stay within it.
    #[serde(default = "d_replicas")]
    pub replicas: u32,
}

impl AuthConfig {
    /// Whether the budgets are shared through Redis.
    pub fn shares_limits(&self) -> bool {
        !secrecy::ExposeSecret::expose_secret(&self.redis_url)
            .trim()
            .is_empty()
    }
}

impl Group for AuthConfig {
    const PREFIX: &'static str = "EYE_AUTH_";

    fn check(&self) -> Result<(), String> {
        if self.replicas == 0 {
            return Err("EYE_AUTH_REPLICAS must be at least 1".into());
        }
        let tls = secrecy::ExposeSecret::expose_secret(&self.redis_url)
            .trim()
            .starts_with("rediss://");
        if !self.redis_ca_file.trim().is_empty() && !tls {
            return Err(
                "EYE_AUTH_REDIS_CA_FILE is set but EYE_AUTH_REDIS_URL is not a rediss:// URL"
                    .into(),
            );
        }
        if self.shares_limits() && self.redis_timeout_ms == 0 {
            return Err("EYE_AUTH_REDIS_TIMEOUT_MS must be at least 1".into());
        }
        Ok(())
    }
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

    #[test]
    fn a_redis_ca_file_needs_a_rediss_url() {
        let cases = [
            ("", "", true),
            ("redis://127.0.0.1:6379", "", true),
            ("rediss://redis.example:6380", "", true),
            ("rediss://redis.example:6380", "/etc/eye/redis-ca.pem", true),
            ("redis://127.0.0.1:6379", "/etc/eye/redis-ca.pem", false),
            ("", "/etc/eye/redis-ca.pem", false),
        ];
        for (url, ca, ok) in cases {
            let got: Result<AuthConfig, _> = eye_runtime::config::from_iter([
                ("EYE_AUTH_REDIS_URL".to_owned(), url.to_owned()),
                ("EYE_AUTH_REDIS_CA_FILE".to_owned(), ca.to_owned()),
            ]);
            assert_eq!(got.is_ok(), ok, "{url:?} {ca:?}: {got:?}");
            if let Err(e) = got {
                assert!(e.to_string().contains("EYE_AUTH_REDIS_CA_FILE"), "{e}");
            }
        }
    }
}
