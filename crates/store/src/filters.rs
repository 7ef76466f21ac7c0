//! What a read asks for: the filters the query service builds from a request, which
//! [`crate::sql`] turns into statements.

use eye_model::aggregate::{Aggregation, Granularity};
use uuid::Uuid;

/// Who started a session, as recorded by its start record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    User,
    Machine,
    Org,
}

impl OwnerKind {
    /// The `owner_kind` stored in `sessions_by_owner` (migration 0006).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Machine => "machine",
            Self::Org => "org",
        }
    }
}

/// An owner's sessions, newest start first.
#[derive(Debug, Clone)]
pub struct OwnerSessionsFilter {
    pub kind: OwnerKind,
    pub owner_id: String,
    /// Keyset cursor: the last `(started_at_us, session_id)` already returned.
    pub after: Option<(i64, String)>,
    pub limit: u32,
}

/// A bucketed aggregation of one event type's values.
#[derive(Debug, Clone)]
pub struct AggregateFilter {
    pub category: String,
    pub name: String,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub granularity: Granularity,
    pub aggregation: Aggregation,
    /// An IANA zone name, checked by the caller.
    pub tz: String,
    pub limit: u32,
}

/// A filter on events, in time order.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub session_id: Option<String>,
    /// Events of every session this owner started.
    pub owner: Option<(OwnerKind, String)>,
    pub category: Option<String>,
    pub name: Option<String>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// Keyset cursor: the last `(ts_us, event_id, session_id)` already returned.
    pub after: Option<(i64, Uuid, String)>,
    pub descending: bool,
    /// Matches to skip before the first returned: numbered pages (`?page=N`) of the
    /// seed APIs. Keyset cursors (`after`) are the way to walk a large listing.
    pub offset: u64,
    pub limit: u32,
}

/// Quarantined events refused for their time, newest first.
#[derive(Debug, Clone, Default)]
pub struct RefusedTimeFilter {
    /// Rejection codes of the event time, any of which selects a record.
    pub codes: Vec<String>,
    pub session_id: Option<String>,
    pub limit: u32,
}

/// A filter on the quarantine, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct RejectedFilter {
    pub reason: Option<String>,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    /// The client the record came from (a replay's selection).
    pub client: Option<String>,
    /// The category and name the record said it was (a replay's selection).
    pub category: Option<String>,
    pub name: Option<String>,
    /// Keyset cursor: the last `(received_at_us, rejection_id)` already returned.
    pub after: Option<(i64, Uuid)>,
    pub limit: u32,
}

/// A page of the events of a set of ids (a user and the ids linked to it), in the event
/// listings' order.
#[derive(Debug, Clone, Default)]
pub struct IdentityEventsFilter {
    /// Every id whose events are wanted; not empty.
    pub actor_ids: Vec<String>,
    /// Keyset cursor: the last `(ts_us, event_id, session_id)` already returned.
    pub after: Option<(i64, Uuid, String)>,
    pub descending: bool,
    pub limit: u32,
}
