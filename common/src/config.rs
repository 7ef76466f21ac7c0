//! Configuration from `EYE_*` environment variables.
//!
//! Each group has its own prefix (`EYE_KAFKA_`, `EYE_CLICKHOUSE_`, `EYE_INGEST_`,
//! `EYE_CONSUMER_`, `EYE_QUERY_`); a field `batch_max_rows` of the consumer group is read
//! from `EYE_CONSUMER_BATCH_MAX_ROWS`. Names carry their units. Every default is listed in
//! `docs/configuration.md`; the test at the bottom keeps that table and this file in step.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// envy names the variable without our prefix; put it back so the message names the
    /// variable the operator actually set.
    fn new(prefix: &str, e: envy::Error) -> Self {
        let msg = match e {
            envy::Error::MissingValue(field) => {
                format!("{prefix}{} is required", field.to_uppercase())
            }
            envy::Error::Custom(msg) => {
                msg.replace("provided by ", &format!("provided by {prefix}"))
            }
        };
        Self(msg)
    }
}

/// Reads one configuration group from the process environment.
pub fn from_env<T: DeserializeOwned + Group>() -> Result<T, ConfigError> {
    from_iter(std::env::vars())
}

/// Reads one configuration group from the given variables (tests pass their own).
pub fn from_iter<T: DeserializeOwned + Group>(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let prefix = T::PREFIX;
    let vars = vars
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_owned(), v)));
    let group: T = envy::from_iter(vars).map_err(|e| ConfigError::new(prefix, e))?;
    group.check().map_err(ConfigError)?;
    Ok(group)
}

/// A configuration group and its environment prefix.
pub trait Group {
    const PREFIX: &'static str;

    /// Rules a value's type cannot express (ranges, formats), checked once the group is
    /// read so that a bad value stops start-up; the message names the variable.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

macro_rules! defaults {
    ($($name:ident: $ty:ty = $value:expr;)*) => {
        $(fn $name() -> $ty { $value })*
    };
}

defaults! {
    d_brokers: String = "127.0.0.1:9092".into();
    d_events_topic: String = "eye.events".into();
    d_rejected_topic: String = "eye.rejected".into();
    d_sessions_topic: String = "eye.sessions".into();
    d_events_partitions: i32 = 6;
    d_message_timeout_ms: u64 = 5_000;
    d_linger_ms: u64 = 5;
    d_queue_max_messages: u64 = 1_000_000;
    d_statistics_interval_ms: u64 = 5_000;
    d_ch_url: String = "http://127.0.0.1:8123".into();
    d_ch_database: String = "eye".into();
    d_ch_user: String = "default".into();
    d_max_execution_time_ms: u64 = 10_000;
    d_ingest_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
    d_query_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8081));
    d_consumer_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8082));
    d_max_body_bytes: u64 = 5 * 1024 * 1024;
    d_max_decompressed_bytes: u64 = 5 * 1024 * 1024;
    d_max_inflight_bytes: u64 = 32 * 1024 * 1024;
    d_max_event_bytes: usize = 32 * 1024;
    d_max_batch_events: usize = 1_000;
    d_max_data_depth: usize = 16;
    d_max_data_keys: usize = 1_000;
    d_max_future_skew_ms: u64 = 24 * 3600 * 1000;
    d_schema_dir: std::path::PathBuf = "schemas".into();
    d_group_id: String = "eye-consumer".into();
    d_session_timeout_ms: u64 = 10_000;
    d_batch_max_rows: usize = 10_000;
    d_batch_max_bytes: usize = 16 * 1024 * 1024;
    d_batch_max_wait_ms: u64 = 500;
    d_insert_backoff_max_ms: u64 = 5_000;
    d_migrate_on_start: bool = true;
    d_session_events_max: u32 = 10_000;
    d_query_deduplicate: bool = true;
    d_clients_file: std::path::PathBuf = "clients.toml".into();
    d_token_ttl_s: u64 = 900;
    d_auth_reload_interval_ms: u64 = 1_000;
    d_requests_per_s: u32 = 1_000;
    d_requests_burst: u32 = 2_000;
    d_events_per_s: u32 = 50_000;
    d_events_burst: u32 = 100_000;
}

/// `EYE_KAFKA_*`: the broker and topics, shared by ingest, the consumer and eye-admin.
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    #[serde(default = "d_brokers")]
    pub brokers: String,
    #[serde(default = "d_events_topic")]
    pub events_topic: String,
    /// Dead-letter topic: rejected events and undecodable messages, with their reasons.
    #[serde(default = "d_rejected_topic")]
    pub rejected_topic: String,
    /// Session lifecycle records (start, end).
    #[serde(default = "d_sessions_topic")]
    pub sessions_topic: String,
    /// Partitions given to the events topic when eye-admin creates it.
    #[serde(default = "d_events_partitions")]
    pub events_partitions: i32,
    /// How long a produce may wait for the broker's acknowledgement before ingest answers 503.
    #[serde(default = "d_message_timeout_ms")]
    pub message_timeout_ms: u64,
    #[serde(default = "d_linger_ms")]
    pub linger_ms: u64,
    /// librdkafka debug contexts for the consumer (e.g. `cgrp,fetch`), logged at debug level.
    #[serde(default)]
    pub debug: String,
    /// Messages the producer may hold in flight before ingest answers 503.
    #[serde(default = "d_queue_max_messages")]
    pub queue_max_messages: u64,
    /// How often ingest's producer and the consumer report librdkafka statistics (queue
    /// depth, batch fill, consumer lag per partition) into their metrics; 0 turns them off.
    #[serde(default = "d_statistics_interval_ms")]
    pub statistics_interval_ms: u64,
}

impl Group for KafkaConfig {
    const PREFIX: &'static str = "EYE_KAFKA_";
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
    #[serde(default)]
    pub password: String,
    /// Upper bound on any read; ClickHouse counts it in whole seconds (at least 1).
    #[serde(default = "d_max_execution_time_ms")]
    pub max_execution_time_ms: u64,
}

impl Group for ClickHouseConfig {
    const PREFIX: &'static str = "EYE_CLICKHOUSE_";
}

defaults! {
    d_max_header_bytes: usize = 32 * 1024;
    d_header_read_timeout_ms: u64 = 10_000;
    d_body_read_timeout_ms: u64 = 30_000;
    d_idle_timeout_ms: u64 = 60_000;
}

/// The smallest head buffer hyper accepts (it panics below it).
pub const MIN_HEADER_BYTES: usize = 8192;

/// `EYE_HTTP_*`: limits and CORS shared by every HTTP listener (ingest, query, consumer).
#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// Bytes of a request head (request line and headers) the server buffers before
    /// answering 431; a head arriving in one piece may pass it by up to one read.
    #[serde(default = "d_max_header_bytes")]
    pub max_header_bytes: usize,
    /// How long a client may take to send a request head before its connection is closed,
    /// from the connection's start or a later request's first byte (idle keep-alive
    /// connections are bounded by `idle_timeout_ms` instead).
    #[serde(default = "d_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// How long ingest waits for a whole request body before answering 408.
    #[serde(default = "d_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// How long a connection may go without sending a byte while the server waits to read
    /// (between keep-alive requests, or inside a request) before it is closed.
    #[serde(default = "d_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Browser origins (`scheme://host[:port]`) allowed to call the APIs, comma-separated,
    /// or `*` for any; empty turns CORS off.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// How long a service keeps serving after SIGTERM while `/readyz` answers 503
    /// `draining`, so that load balancers stop sending to it before it stops accepting.
    #[serde(default)]
    pub drain_delay_ms: u64,
}

impl Group for HttpConfig {
    const PREFIX: &'static str = "EYE_HTTP_";

    fn check(&self) -> Result<(), String> {
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(format!(
                "EYE_HTTP_MAX_HEADER_BYTES must be at least {MIN_HEADER_BYTES} (got {})",
                self.max_header_bytes
            ));
        }
        let origins = &self.cors_allowed_origins;
        if origins.iter().any(|o| o == "*") {
            return match origins.len() {
                1 => Ok(()),
                _ => Err("EYE_HTTP_CORS_ALLOWED_ORIGINS: `*` must stand alone".into()),
            };
        }
        // Browsers send `Origin` in exactly this serialization and CORS compares it as
        // text, so anything else (a trailing slash, a path, a default port) never matches.
        for origin in origins {
            let canonical = url::Url::parse(origin)
                .ok()
                .map(|u| u.origin())
                .filter(url::Origin::is_tuple)
                .map(|o| o.ascii_serialization());
            if canonical.as_deref() != Some(origin.as_str()) {
                let hint = canonical.map_or(String::new(), |c| format!("; did you mean {c:?}?"));
                return Err(format!(
                    "EYE_HTTP_CORS_ALLOWED_ORIGINS: {origin:?} is not an origin \
                     (scheme://host[:port], nothing after){hint}"
                ));
            }
        }
        Ok(())
    }
}

/// `EYE_INGEST_*`.
#[derive(Debug, Clone, Deserialize)]
pub struct IngestConfig {
    #[serde(default = "d_ingest_addr")]
    pub listen_addr: SocketAddr,
    /// When set, health and metrics are served here and no longer on `listen_addr`.
    #[serde(default)]
    pub ops_listen_addr: Option<SocketAddr>,
    /// Largest request body as sent (compressed or not); a larger one gets 413.
    #[serde(default = "d_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Largest body after gzip decompression; past it the request gets 413 (bomb guard).
    #[serde(default = "d_max_decompressed_bytes")]
    pub max_decompressed_bytes: u64,
    /// Largest single event, as JSON text; a larger one is rejected on its own.
    #[serde(default = "d_max_event_bytes")]
    pub max_event_bytes: usize,
    /// Most events in one request; more gets 413.
    #[serde(default = "d_max_batch_events")]
    pub max_batch_events: usize,
    /// Deepest nesting of `data` (the object itself is depth 1).
    #[serde(default = "d_max_data_depth")]
    pub max_data_depth: usize,
    /// Most keys in `data`, counted over every nested object.
    #[serde(default = "d_max_data_keys")]
    pub max_data_keys: usize,
    /// How far past the time of receipt an event's time may lie.
    #[serde(default = "d_max_future_skew_ms")]
    pub max_future_skew_ms: u64,
    /// Directory of JSON Schemas, `<category>/<name>.json`; reloaded on SIGHUP.
    #[serde(default = "d_schema_dir")]
    pub schema_dir: std::path::PathBuf,
    /// What to do with a `(category, name)` that has no schema: `reject` or `accept`.
    #[serde(default)]
    pub unknown_type_policy: crate::schema::UnknownTypePolicy,
    /// Bytes ingest holds at once for requests in flight (bodies and encoded records), from
    /// before a body is read until the broker has acknowledged its records; a request that
    /// does not fit gets 503 `overloaded` at once. Twice it bounds the producer's own queue.
    #[serde(default = "d_max_inflight_bytes")]
    pub max_inflight_bytes: u64,
    /// Most of `max_inflight_bytes` one client's requests hold together, so that no client
    /// can spend the budget of all; unset, a quarter of it. See
    /// [`IngestConfig::inflight_bytes_per_client`].
    #[serde(default)]
    pub max_inflight_bytes_per_client: Option<u64>,
}

impl IngestConfig {
    /// Each client's share of the in-flight budget: `max_inflight_bytes_per_client`, or a
    /// quarter of `max_inflight_bytes` (at least one byte), never more than the budget.
    pub fn inflight_bytes_per_client(&self) -> u64 {
        self.max_inflight_bytes_per_client
            .unwrap_or((self.max_inflight_bytes / 4).max(1))
            .min(self.max_inflight_bytes)
    }
}

impl Group for IngestConfig {
    const PREFIX: &'static str = "EYE_INGEST_";

    fn check(&self) -> Result<(), String> {
        // Zero would refuse every request with 503, which no one means.
        if self.max_inflight_bytes == 0 {
            return Err("EYE_INGEST_MAX_INFLIGHT_BYTES must be at least 1".into());
        }
        if self.max_inflight_bytes_per_client == Some(0) {
            return Err("EYE_INGEST_MAX_INFLIGHT_BYTES_PER_CLIENT must be at least 1".into());
        }
        Ok(())
    }
}

/// A deliberate crash, for the tests that prove a crash loses nothing. Never set it in
/// production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerFault {
    /// Abort the process after ClickHouse confirmed an insert, before offsets are committed.
    AbortAfterInsert,
}

/// `EYE_CONSUMER_*`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerConfig {
    /// Address of the consumer's health and metrics endpoints.
    #[serde(default = "d_consumer_addr")]
    pub listen_addr: SocketAddr,
    #[serde(default = "d_group_id")]
    pub group_id: String,
    /// How long the broker waits for a silent consumer before rebalancing its partitions.
    #[serde(default = "d_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// A batch is inserted when it holds this many rows...
    #[serde(default = "d_batch_max_rows")]
    pub batch_max_rows: usize,
    /// ...or this many bytes...
    #[serde(default = "d_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// ...or when its first row has waited this long.
    #[serde(default = "d_batch_max_wait_ms")]
    pub batch_max_wait_ms: u64,
    /// Longest pause between retries of a failed insert.
    #[serde(default = "d_insert_backoff_max_ms")]
    pub insert_backoff_max_ms: u64,
    /// Apply ClickHouse migrations at start-up.
    #[serde(default = "d_migrate_on_start")]
    pub migrate_on_start: bool,
    #[serde(default)]
    pub fault: Option<ConsumerFault>,
}

impl Group for ConsumerConfig {
    const PREFIX: &'static str = "EYE_CONSUMER_";
}

/// `EYE_QUERY_*`.
#[derive(Debug, Clone, Deserialize)]
pub struct QueryConfig {
    #[serde(default = "d_query_addr")]
    pub listen_addr: SocketAddr,
    /// When set, health and metrics are served here and no longer on `listen_addr`.
    #[serde(default)]
    pub ops_listen_addr: Option<SocketAddr>,
    /// Largest `limit` a session read accepts.
    #[serde(default = "d_session_events_max")]
    pub session_events_max: u32,
    /// Read-time deduplication of `/v1/events`. Off only for the fault-injection suite's
    /// negative control, which must see replays to prove its check can fail.
    #[serde(default = "d_query_deduplicate")]
    pub deduplicate: bool,
}

impl Group for QueryConfig {
    const PREFIX: &'static str = "EYE_QUERY_";
}

/// `EYE_AUTH_*`: who may call ingest and query (see the README's security section).
#[derive(Debug, Clone, Deserialize)]
pub struct AuthConfig {
    /// The declared clients (TOML), written by `eye-admin clients`; re-read when it changes.
    #[serde(default = "d_clients_file")]
    pub clients_file: std::path::PathBuf,
    /// HMAC key signing OAuth2 bearer tokens; every service that must accept a token needs
    /// the same one. Empty: a random key per process (tokens work only where issued).
    #[serde(default)]
    pub token_secret: String,
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

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let k: KafkaConfig = from_iter(vars(&[])).expect("defaults");
        assert_eq!(k.brokers, "127.0.0.1:9092");
        assert_eq!(k.events_topic, "eye.events");
        assert_eq!(k.rejected_topic, "eye.rejected");
        let i: IngestConfig = from_iter(vars(&[])).expect("defaults");
        assert_eq!(
            (i.max_event_bytes, i.max_batch_events, i.max_data_depth),
            (32 * 1024, 1_000, 16)
        );
        assert_eq!(
            i.unknown_type_policy,
            crate::schema::UnknownTypePolicy::Reject
        );
        let c: ConsumerConfig = from_iter(vars(&[])).expect("defaults");
        assert_eq!((c.batch_max_rows, c.batch_max_wait_ms), (10_000, 500));
        assert_eq!(c.fault, None);
    }

    #[test]
    fn reads_prefixed_variables_only() {
        let c: ConsumerConfig = from_iter(vars(&[
            ("EYE_CONSUMER_BATCH_MAX_ROWS", "50"),
            ("EYE_CONSUMER_FAULT", "abort_after_insert"),
            ("EYE_INGEST_BATCH_MAX_ROWS", "7"),
            ("EYE_CONSUMER_LISTEN_ADDR", "0.0.0.0:9999"),
        ]))
        .expect("valid");
        assert_eq!(c.batch_max_rows, 50);
        assert_eq!(c.fault, Some(ConsumerFault::AbortAfterInsert));
        assert_eq!(c.listen_addr.port(), 9999);
    }

    #[test]
    fn bad_values_name_the_variable_group() {
        let err = from_iter::<ConsumerConfig>(vars(&[("EYE_CONSUMER_BATCH_MAX_ROWS", "many")]))
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("EYE_CONSUMER_BATCH_MAX_ROWS"), "{err}");
        assert!(err.contains("'many'"), "{err}");
    }

    /// Every variable documented, and nothing documented that does not exist.
    #[test]
    fn docs_table_matches_the_config_structs() {
        use std::collections::BTreeSet;
        let doc = include_str!("../../docs/configuration.md");
        let documented: BTreeSet<String> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter(|v| v.starts_with("EYE_"))
            .map(str::to_owned)
            .collect();
        // Fields of each struct are pending until its `impl Group` names the prefix.
        let mut defined = BTreeSet::new();
        let mut pending = Vec::new();
        for line in include_str!("config.rs").lines().map(str::trim) {
            if let Some(prefix) = line
                .strip_prefix("const PREFIX: &'static str = \"")
                .and_then(|r| r.strip_suffix("\";"))
            {
                for field in pending.drain(..) {
                    defined.insert(format!("{prefix}{field}"));
                }
            } else if let Some((field, _)) =
                line.strip_prefix("pub ").and_then(|r| r.split_once(':'))
            {
                if field.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    pending.push(field.to_uppercase());
                }
            }
        }
        assert!(defined.len() > 20, "parsed only {defined:?}");
        let env_only: Vec<_> = documented
            .difference(&defined)
            .filter(|v| !v.starts_with("EYE_LOG"))
            .collect();
        assert!(
            env_only.is_empty(),
            "documented but not defined: {env_only:?}"
        );
        let undocumented: Vec<_> = defined.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "defined but not documented: {undocumented:?}"
        );
    }

    #[test]
    fn http_defaults_and_lists() {
        let h: HttpConfig = from_iter(vars(&[])).expect("defaults");
        assert_eq!(
            (
                h.max_header_bytes,
                h.header_read_timeout_ms,
                h.body_read_timeout_ms
            ),
            (32 * 1024, 10_000, 30_000)
        );
        assert!(h.cors_allowed_origins.is_empty());
        let h: HttpConfig = from_iter(vars(&[(
            "EYE_HTTP_CORS_ALLOWED_ORIGINS",
            "https://app.example.com,http://localhost:3000",
        )]))
        .expect("two origins");
        assert_eq!(
            h.cors_allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        let any: HttpConfig =
            from_iter(vars(&[("EYE_HTTP_CORS_ALLOWED_ORIGINS", "*")])).expect("any origin");
        assert_eq!(any.cors_allowed_origins, ["*"]);
    }

    /// Values hyper or warp would panic on, or that could never match, stop start-up with
    /// a message naming the variable.
    #[test]
    fn http_values_are_checked() {
        let err = |pairs: &[(&str, &str)]| {
            from_iter::<HttpConfig>(vars(pairs))
                .expect_err("must fail")
                .to_string()
        };
        let e = err(&[("EYE_HTTP_MAX_HEADER_BYTES", "8191")]);
        assert!(
            e.contains("EYE_HTTP_MAX_HEADER_BYTES") && e.contains("8192"),
            "{e}"
        );
        from_iter::<HttpConfig>(vars(&[("EYE_HTTP_MAX_HEADER_BYTES", "8192")]))
            .expect("the minimum itself");
        for (origins, hint) in [
            ("https://app.example.com/", "\"https://app.example.com\""),
            ("https://app.example.com:443", "\"https://app.example.com\""),
            ("https://App.example.com", "\"https://app.example.com\""),
            (
                "https://a.example.com, https://b.example.com",
                "\"https://b.example.com\"",
            ),
            ("app.example.com", "scheme://host"),
            ("null", "scheme://host"),
            ("*,https://app.example.com", "alone"),
        ] {
            let e = err(&[("EYE_HTTP_CORS_ALLOWED_ORIGINS", origins)]);
            assert!(
                e.contains("EYE_HTTP_CORS_ALLOWED_ORIGINS"),
                "{origins}: {e}"
            );
            assert!(e.contains(hint), "{origins}: {e}");
        }
    }

    #[test]
    fn backpressure_and_drain_settings() {
        let i: IngestConfig = from_iter(vars(&[])).expect("defaults");
        assert_eq!(i.max_inflight_bytes, 33_554_432);
        let h: HttpConfig = from_iter(vars(&[])).expect("defaults");
        assert_eq!(h.drain_delay_ms, 0);
        let i: IngestConfig =
            from_iter(vars(&[("EYE_INGEST_MAX_INFLIGHT_BYTES", "1")])).expect("the minimum");
        assert_eq!(i.max_inflight_bytes, 1);
        let h: HttpConfig =
            from_iter(vars(&[("EYE_HTTP_DRAIN_DELAY_MS", "5000")])).expect("typical");
        assert_eq!(h.drain_delay_ms, 5_000);
        let e = from_iter::<IngestConfig>(vars(&[("EYE_INGEST_MAX_INFLIGHT_BYTES", "0")]))
            .expect_err("zero refuses everything")
            .to_string();
        assert!(e.contains("EYE_INGEST_MAX_INFLIGHT_BYTES"), "{e}");
    }

    #[test]
    fn inflight_share_per_client() {
        // (EYE_INGEST_MAX_INFLIGHT_BYTES, _PER_CLIENT, each client's share)
        let cases = [
            (None, None, 8 * 1024 * 1024),
            (Some("1000"), None, 250),
            (Some("3"), None, 1),
            (Some("1"), None, 1),
            (None, Some("1048576"), 1_048_576),
            // More than the budget is the budget: no share.
            (Some("1000"), Some("5000"), 1000),
        ];
        for (total, share, want) in cases {
            let mut v = Vec::new();
            if let Some(t) = total {
                v.push(("EYE_INGEST_MAX_INFLIGHT_BYTES", t));
            }
            if let Some(s) = share {
                v.push(("EYE_INGEST_MAX_INFLIGHT_BYTES_PER_CLIENT", s));
            }
            let i: IngestConfig = from_iter(vars(&v)).expect("valid");
            assert_eq!(i.inflight_bytes_per_client(), want, "{total:?} {share:?}");
        }
        let e =
            from_iter::<IngestConfig>(vars(&[("EYE_INGEST_MAX_INFLIGHT_BYTES_PER_CLIENT", "0")]))
                .expect_err("zero refuses everything")
                .to_string();
        assert!(
            e.contains("EYE_INGEST_MAX_INFLIGHT_BYTES_PER_CLIENT"),
            "{e}"
        );
    }

    #[test]
    fn ops_addresses_are_optional() {
        let i: IngestConfig = from_iter(vars(&[])).expect("defaults");
        assert_eq!(i.ops_listen_addr, None);
        let q: QueryConfig =
            from_iter(vars(&[("EYE_QUERY_OPS_LISTEN_ADDR", "127.0.0.1:9181")])).expect("set");
        assert_eq!(
            q.ops_listen_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9181)))
        );
    }
}
