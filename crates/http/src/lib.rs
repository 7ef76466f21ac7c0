//! The HTTP kit every service is served with. The libraries below it never import warp;
//! this crate is where the services' common HTTP behaviour lives:
//! - [`config`]: the `EYE_HTTP_*` limits, timeouts, CORS origins and trusted proxies;
//! - [`client`]: who sent a request (the peer, or the client behind trusted proxies);
//! - [`auth`]: the credential filter, its 401/403/429 mapping and `POST /oauth/token`;
//! - [`error`]: the one JSON error shape, and the `recover` that maps every rejection to it;
//! - [`ops`]: `/healthz`, `/readyz` and `/metrics`;
//! - [`drain`]: the draining state `/readyz` reports and [`serve`] acts on at shutdown;
//! - [`metrics`]: request counts and latencies by route and status;
//! - [`openapi`]: `GET /openapi.json`, the OpenAPI description of the ingest and query APIs;
//! - [`serve`]: running a service's routes until shutdown, with the `EYE_HTTP_*` limits,
//!   the request-head rules of RFC 9112 (`conformance`), CORS, and the operational routes
//!   on their own listener when configured.

pub mod auth;
pub mod client;
pub mod config;
mod conformance;
mod conn;
pub mod drain;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod ops;
mod server;

pub use client::{client, client_ip, Client};
pub use drain::Drain;
pub use server::{serve, Listeners, DRAIN_TIMEOUT};
