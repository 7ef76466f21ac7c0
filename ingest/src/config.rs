//! `EYE_INGEST_*`: the ingest service's listener and limits.

use eye_model::event::Limits;
use eye_model::time::TimeBounds;
use eye_runtime::config::Group;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

eye_runtime::defaults! {
    d_ingest_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
    d_max_body_bytes: u64 = 5 * 1024 * 1024;
    d_max_decompressed_bytes: u64 = 5 * 1024 * 1024;
    d_max_inflight_bytes: u64 = 32 * 1024 * 1024;
    d_max_event_bytes: usize = 32 * 1024;
    d_max_batch_events: usize = 1_000;
    d_max_data_depth: usize = 16;
    d_max_data_keys: usize = 1_000;
    d_max_future_skew_ms: u64 = 24 * 3600 * 1000;
    d_schema_dir: std::path::PathBuf = "schemas".into();
    d_segment_max_message_bytes: usize = crate::segment::SegmentLimits::default().max_message_bytes;
    d_segment_max_batch_bytes: u64 = crate::segment::SegmentLimits::default().max_batch_bytes;
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
    pub unknown_type_policy: eye_model::schema::UnknownTypePolicy,
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
    /// Largest Segment message, as its JSON text; a larger one is rejected on its own.
    #[serde(default = "d_segment_max_message_bytes")]
    pub segment_max_message_bytes: usize,
    /// Largest Segment request body once decompressed; a larger one gets 413.
    #[serde(default = "d_segment_max_batch_bytes")]
    pub segment_max_batch_bytes: u64,
}

impl IngestConfig {
    /// The event contract's limits as configured.
    pub fn limits(&self) -> Limits {
        Limits {
            max_event_bytes: self.max_event_bytes,
            max_batch_events: self.max_batch_events,
            max_data_depth: self.max_data_depth,
            max_data_keys: self.max_data_keys,
            time: TimeBounds {
                max_future_skew: Duration::from_millis(self.max_future_skew_ms),
            },
        }
    }

    /// Segment's limits as configured.
    pub fn segment_limits(&self) -> crate::segment::SegmentLimits {
        crate::segment::SegmentLimits {
            max_message_bytes: self.segment_max_message_bytes,
            max_batch_bytes: self.segment_max_batch_bytes,
        }
    }

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
        if self.segment_max_message_bytes == 0 {
            return Err("EYE_INGEST_SEGMENT_MAX_MESSAGE_BYTES must be at least 1".into());
        }
        if self.segment_max_batch_bytes == 0 {
            return Err("EYE_INGEST_SEGMENT_MAX_BATCH_BYTES must be at least 1".into());
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
        let i: IngestConfig = from_pairs(&[]).expect("defaults");
        assert_eq!(
            (i.max_event_bytes, i.max_batch_events, i.max_data_depth),
            (32 * 1024, 1_000, 16)
        );
        assert_eq!(
            i.unknown_type_policy,
            eye_model::schema::UnknownTypePolicy::Reject
        );
    }

    #[test]
    fn backpressure_settings() {
        let i: IngestConfig = from_pairs(&[]).expect("defaults");
        assert_eq!(i.max_inflight_bytes, 33_554_432);
        let i: IngestConfig =
            from_pairs(&[("EYE_INGEST_MAX_INFLIGHT_BYTES", "1")]).expect("the minimum");
        assert_eq!(i.max_inflight_bytes, 1);
        let e = from_pairs::<IngestConfig>(&[("EYE_INGEST_MAX_INFLIGHT_BYTES", "0")])
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
            let i: IngestConfig = from_pairs(&v).expect("valid");
            assert_eq!(i.inflight_bytes_per_client(), want, "{total:?} {share:?}");
        }
        let e = from_pairs::<IngestConfig>(&[("EYE_INGEST_MAX_INFLIGHT_BYTES_PER_CLIENT", "0")])
            .expect_err("zero refuses everything")
            .to_string();
        assert!(
            e.contains("EYE_INGEST_MAX_INFLIGHT_BYTES_PER_CLIENT"),
            "{e}"
        );
    }

    #[test]
    fn segment_limits_default_to_segments_own() {
        let i: IngestConfig = from_pairs(&[]).expect("defaults");
        assert_eq!(
            i.segment_limits(),
            crate::segment::SegmentLimits {
                max_message_bytes: 32_768,
                max_batch_bytes: 512_000,
            }
        );
        let i: IngestConfig = from_pairs(&[
            ("EYE_INGEST_SEGMENT_MAX_MESSAGE_BYTES", "65536"),
            ("EYE_INGEST_SEGMENT_MAX_BATCH_BYTES", "1048576"),
        ])
        .expect("larger ones");
        assert_eq!(
            (
                i.segment_limits().max_message_bytes,
                i.segment_limits().max_batch_bytes
            ),
            (65_536, 1_048_576)
        );
        for var in [
            "EYE_INGEST_SEGMENT_MAX_MESSAGE_BYTES",
            "EYE_INGEST_SEGMENT_MAX_BATCH_BYTES",
        ] {
            let e = from_pairs::<IngestConfig>(&[(var, "0")])
                .expect_err("zero refuses everything")
                .to_string();
            assert!(e.contains(var), "{e}");
        }
    }

    #[test]
    fn ops_address_is_optional() {
        let i: IngestConfig = from_pairs(&[]).expect("defaults");
        assert_eq!(i.ops_listen_addr, None);
    }
}
