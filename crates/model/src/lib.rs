//! The Eye's domain: what an event is and how a request body becomes one, time and its
//! bounds, session starts and ends, the schema registry, and the calendar of aggregation
//! buckets, and the HTTP APIs' bodies as types (`api`). Nothing here talks to a network or
//! a database.

pub mod aggregate;
pub mod api;
pub mod event;
pub mod schema;
pub mod session;
pub mod time;
