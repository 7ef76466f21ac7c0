//! `EYE_QUERY_*`: the query service's listener and read limits.

use eye_runtime::config::Group;
use serde::Deserialize;
use std::net::SocketAddr;

eye_runtime::defaults! {
    d_query_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8081));
    d_session_events_max: u32 = 10_000;
    d_query_deduplicate: bool = true;
    d_schema_dir: std::path::PathBuf = eye_model::schema::DEFAULT_SCHEMA_DIR.into();
    d_ingest_metrics_url: String = "http://127.0.0.1:8080/metrics".into();
    d_consumer_metrics_url: String = "http://127.0.0.1:8082/metrics".into();
    d_metrics_timeout_ms: u64 = 2_000;
    d_export_page_rows: u32 = 10_000;
    d_export_page_time_limit_ms: u64 = 60_000;
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
    /// The schema directory ingest validates against, shown by `GET /v1/schemas`.
    #[serde(default = "d_schema_dir")]
    pub schema_dir: std::path::PathBuf,
    /// Ingest's and the consumer's `/metrics`, summed up by `GET /v1/pipeline` (the
    /// explorer's pipeline view). Empty: not shown.
    #[serde(default = "d_ingest_metrics_url")]
    pub ingest_metrics_url: String,
    #[serde(default = "d_consumer_metrics_url")]
    pub consumer_metrics_url: String,
    /// How long `GET /v1/pipeline` waits for each of those.
    #[serde(default = "d_metrics_timeout_ms")]
    pub metrics_timeout_ms: u64,
    /// Serve the explorer's files from this directory instead of those built into the
    /// binary: for working on the explorer without rebuilding the service.
    #[serde(default)]
    pub ui_dir: Option<std::path::PathBuf>,
    /// `GET /v1/export` reads its rows in keyset pages of this many (1 to 100,000, the
    /// store's result limit): the most rows the service holds for one export.
    #[serde(default = "d_export_page_rows")]
    pub export_page_rows: u32,
    /// The time limit of each of those pages, instead of
    /// `EYE_CLICKHOUSE_MAX_EXECUTION_TIME_MS` (whole seconds, at least 1). An export as a
    /// whole has none.
    #[serde(default = "d_export_page_time_limit_ms")]
    pub export_page_time_limit_ms: u64,
}

impl Group for QueryConfig {
    const PREFIX: &'static str = "EYE_QUERY_";

    fn check(&self) -> Result<(), String> {
        let max = eye_store::MAX_RESULT_ROWS;
        if !(1..=max).contains(&u64::from(self.export_page_rows)) {
            return Err(format!(
                "EYE_QUERY_EXPORT_PAGE_ROWS must be from 1 to {max}, not {}",
                self.export_page_rows
            ));
        }
        Ok(())
    }
}

eye_runtime::defaults! {
    d_suppression_days: u32 = 30;
    d_settle_ms: u64 = 5_000;
    d_mutation_timeout_ms: u64 = 3_600_000;
}

/// `EYE_DELETION_*`: how the query service deletes a subject's data
/// (docs/lifecycle-deletion.md).
#[derive(Debug, Clone, Deserialize)]
pub struct DeletionConfig {
    /// How long the consumer keeps dropping a deleted subject's rows: at least the events
    /// topic's retention, so nothing still in Kafka comes back.
    #[serde(default = "d_suppression_days")]
    pub suppression_days: u32,
    /// How long a deletion waits between storing its suppressions and deleting, so that
    /// every consumer has read them first: at least `EYE_CONSUMER_SUPPRESSION_REFRESH_MS`
    /// plus `EYE_CONSUMER_BATCH_MAX_WAIT_MS`.
    #[serde(default = "d_settle_ms")]
    pub settle_ms: u64,
    /// How long a deletion waits for ClickHouse to finish its mutations before failing.
    #[serde(default = "d_mutation_timeout_ms")]
    pub mutation_timeout_ms: u64,
    /// The ClickHouse user deletions write as, when the service reads as a read-only one
    /// (`eye_query`); unset: `EYE_CLICKHOUSE_USER`.
    #[serde(default)]
    pub clickhouse_user: Option<String>,
    /// Its password (`Debug` prints it redacted).
    #[serde(default)]
    pub clickhouse_password: secrecy::SecretString,
}

impl Group for DeletionConfig {
    const PREFIX: &'static str = "EYE_DELETION_";

    fn check(&self) -> Result<(), String> {
        if self.suppression_days == 0 {
            return Err("EYE_DELETION_SUPPRESSION_DAYS must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_runtime::config::from_pairs;

    #[test]
    fn export_pages_fit_the_store_result_limit() {
        let q: QueryConfig = from_pairs(&[]).expect("defaults");
        assert_eq!(
            (q.export_page_rows, q.export_page_time_limit_ms),
            (10_000, 60_000)
        );
        for bad in ["0", "100001"] {
            let e = from_pairs::<QueryConfig>(&[("EYE_QUERY_EXPORT_PAGE_ROWS", bad)]);
            assert!(e.is_err(), "{bad}");
        }
        assert!(from_pairs::<QueryConfig>(&[("EYE_QUERY_EXPORT_PAGE_ROWS", "100000")]).is_ok());
    }

    #[test]
    fn deletion_defaults_and_bounds() {
        let d: DeletionConfig = from_pairs(&[]).expect("defaults");
        assert_eq!((d.suppression_days, d.settle_ms), (30, 5_000));
        assert_eq!(d.clickhouse_user, None);
        assert!(from_pairs::<DeletionConfig>(&[("EYE_DELETION_SUPPRESSION_DAYS", "0")]).is_err());
        let d: DeletionConfig = from_pairs(&[
            ("EYE_DELETION_CLICKHOUSE_USER", "writer"),
            ("EYE_DELETION_CLICKHOUSE_PASSWORD", "a-secret-never-shown"),
        ])
        .expect("set");
        assert_eq!(d.clickhouse_user.as_deref(), Some("writer"));
        assert!(!format!("{d:?}").contains("a-secret-never-shown"));
    }

    #[test]
    fn ops_address_is_optional() {
        let q: QueryConfig = from_pairs(&[]).expect("defaults");
        assert_eq!(q.ops_listen_addr, None);
        let q: QueryConfig =
            from_pairs(&[("EYE_QUERY_OPS_LISTEN_ADDR", "127.0.0.1:9181")]).expect("set");
        assert_eq!(
            q.ops_listen_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9181)))
        );
    }
}
