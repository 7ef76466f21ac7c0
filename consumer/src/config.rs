//! `EYE_CONSUMER_*`: the consumer's batching, retries and ops listener.

use eye_runtime::config::Group;
use serde::Deserialize;
use std::net::SocketAddr;

eye_runtime::defaults! {
    d_consumer_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8082));
    d_group_id: String = "eye-consumer".into();
    d_session_timeout_ms: u64 = 10_000;
    d_batch_max_rows: usize = 10_000;
    d_batch_max_bytes: usize = 16 * 1024 * 1024;
    d_batch_max_wait_ms: u64 = 500;
    d_insert_backoff_max_ms: u64 = 5_000;
    d_migrate_on_start: bool = true;
    d_suppression_refresh_ms: u64 = 1_000;
    d_retention_interval_ms: u64 = 3_600_000;
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
    /// How old the suppression list (subjects whose data was deleted) may be when a batch
    /// is written; older, the rows added since are read first. A deletion waits at least
    /// this plus the batch wait before it deletes (`EYE_DELETION_SETTLE_MS`).
    #[serde(default = "d_suppression_refresh_ms")]
    pub suppression_refresh_ms: u64,
    /// How often the consumer removes expired data (`EYE_RETENTION_*`,
    /// docs/lifecycle-retention.md); no runs when no retention is configured.
    #[serde(default = "d_retention_interval_ms")]
    pub retention_interval_ms: u64,
    #[serde(default)]
    pub fault: Option<ConsumerFault>,
}

impl Group for ConsumerConfig {
    const PREFIX: &'static str = "EYE_CONSUMER_";

    fn check(&self) -> Result<(), String> {
        if self.retention_interval_ms == 0 {
            return Err("EYE_CONSUMER_RETENTION_INTERVAL_MS must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_runtime::config::from_pairs;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c: ConsumerConfig = from_pairs(&[]).expect("defaults");
        assert_eq!((c.batch_max_rows, c.batch_max_wait_ms), (10_000, 500));
        assert_eq!(c.fault, None);
        assert_eq!(c.retention_interval_ms, 3_600_000);
    }

    #[test]
    fn a_retention_interval_of_zero_is_refused() {
        let err = from_pairs::<ConsumerConfig>(&[("EYE_CONSUMER_RETENTION_INTERVAL_MS", "0")])
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("EYE_CONSUMER_RETENTION_INTERVAL_MS"), "{err}");
    }

    #[test]
    fn reads_prefixed_variables_only() {
        let c: ConsumerConfig = from_pairs(&[
            ("EYE_CONSUMER_BATCH_MAX_ROWS", "50"),
            ("EYE_CONSUMER_FAULT", "abort_after_insert"),
            ("EYE_INGEST_BATCH_MAX_ROWS", "7"),
            ("EYE_CONSUMER_LISTEN_ADDR", "0.0.0.0:9999"),
        ])
        .expect("valid");
        assert_eq!(c.batch_max_rows, 50);
        assert_eq!(c.fault, Some(ConsumerFault::AbortAfterInsert));
        assert_eq!(c.listen_addr.port(), 9999);
    }

    #[test]
    fn bad_values_name_the_variable_group() {
        let err = from_pairs::<ConsumerConfig>(&[("EYE_CONSUMER_BATCH_MAX_ROWS", "many")])
            .expect_err("must fail")
            .to_string();
        assert!(err.contains("EYE_CONSUMER_BATCH_MAX_ROWS"), "{err}");
        assert!(err.contains("'many'"), "{err}");
    }
}
