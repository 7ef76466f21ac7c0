//! The front doors of ingest. Each speaks one protocol (`/v1`, Segment's tracking API, each
//! seed's API) and translates its requests into events for the one core (`batch`), so that
//! validation, quarantine, delivery and metrics are the same whatever the door.

/// The door a request came in by: the `adapter` label of its metrics, and the `source` of
/// its quarantine records.
// Until each adapter lands with its routes.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// The Eye's own API, `POST /v1/events`.
    V1,
    /// Segment's HTTP tracking API (`/v1/batch`, `/v1/track`, ...), also spoken by
    /// RudderStack's and Jitsu's SDKs.
    Segment,
    /// Machine sessions: `/start_session`, `/add_event`, `/end_session`.
    Tracker,
    /// One event per `POST /events`, in the event shape.
    RestEvents,
    /// Numeric measurements: `POST /api/track/` (`namespace`, `name`, `value`).
    Measurements,
    /// One event per `POST /eye/collector`, token-authenticated.
    Collector,
    /// Records of the quarantine run through the rules again (`POST /v1/rejected/replay`).
    Replay,
}

#[allow(dead_code)]
impl Adapter {
    pub const ALL: [Adapter; 7] = [
        Self::V1,
        Self::Segment,
        Self::Tracker,
        Self::RestEvents,
        Self::Measurements,
        Self::Collector,
        Self::Replay,
    ];

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::Segment => "segment",
            Self::Tracker => "tracker",
            Self::RestEvents => "rest_events",
            Self::Measurements => "measurements",
            Self::Collector => "collector",
            Self::Replay => "replay",
        }
    }

    /// The `source` of the quarantine records of requests that came in by this door:
    /// `ingest` for `/v1` (as before adapters existed), `ingest/<adapter>` for the others.
    pub fn source(self) -> &'static str {
        match self {
            Self::V1 => eye_kafka::wire::SOURCE_INGEST,
            Self::Segment => "ingest/segment",
            Self::Tracker => "ingest/tracker",
            Self::RestEvents => "ingest/rest_events",
            Self::Measurements => "ingest/measurements",
            Self::Collector => "ingest/collector",
            Self::Replay => "ingest/replay",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_door_has_its_own_label_and_source() {
        let labels: std::collections::BTreeSet<_> =
            Adapter::ALL.iter().map(|a| a.as_str()).collect();
        let sources: std::collections::BTreeSet<_> =
            Adapter::ALL.iter().map(|a| a.source()).collect();
        assert_eq!(labels.len(), Adapter::ALL.len());
        assert_eq!(sources.len(), Adapter::ALL.len());
        for a in Adapter::ALL {
            assert!(
                a == Adapter::V1 || a.source().ends_with(a.as_str()),
                "{a:?}"
            );
        }
    }
}
