//! The ClickHouse store: the rows, the migrations, every SQL statement built together with
//! its bound values ([`sql`], with the builder of [`statement`]), and the [`Store`] that
//! runs them.

pub mod config;
pub mod deletion;
pub mod export;
pub mod filters;
mod http;
pub mod migrations;
pub mod retention;
pub mod rows;
pub mod sql;
pub mod statement;
mod store;

pub use filters::{
    AggregateFilter, EventFilter, IdentityEventsFilter, OwnerKind, OwnerSessionsFilter,
    RefusedTimeFilter, RejectedFilter,
};
pub use http::TlsError;
pub use rows::{
    ActorRow, BucketRow, CategoryRow, EventCounts, EventKey, EventRow, EventSpan, LinkRow,
    OwnerSessionRow, RejectedRow, ReplayRow, SessionMeta, SessionRow, SessionStats, StoredCopy,
};
pub use store::{Compressed, Store, StoreError, MAX_RESULT_ROWS};
