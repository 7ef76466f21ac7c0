//! Seed-shaped events: what the applications behind the seeds send.
//!
//! Web sessions produce page views, CTA clicks and form submits on one host; machine
//! sessions produce CPU and memory measurements. Every event carries a client-chosen
//! `event_id` (so a retry is recognisably the same event) and is valid under the shipped
//! `schemas/`. Generation is seeded: the same seed gives the same sessions, types and ids.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use uuid::Uuid;

/// The event types generated, as `(category, name)`: the seeds' types.
pub const TYPES: [(&str, &str); 5] = [
    ("page_interaction", "page_view"),
    ("page_interaction", "cta_click"),
    ("form_interaction", "submit"),
    ("machine", "cpu_load"),
    ("machine", "memory_used"),
];

const HOSTS: [&str; 4] = [
    "www.consumeraffairs.com",
    "shop.example.com",
    "news.example.org",
    "app.example.net",
];
const PATHS: [&str; 8] = [
    "/",
    "/reviews/cars",
    "/reviews/insurance/home",
    "/pricing",
    "/checkout/step-2",
    "/account/settings",
    "/blog/2026/11/ten-things-about-event-pipelines",
    "/search?q=dishwasher",
];
const ELEMENTS: [&str; 5] = [
    "signup-button",
    "hero-cta",
    "read-more",
    "add-to-cart",
    "newsletter-email",
];
const FORMS: [&str; 3] = ["contact", "signup", "checkout"];

/// One event as the client sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub event_id: Uuid,
    pub session_id: String,
    pub category: &'static str,
    pub name: &'static str,
    pub data: serde_json::Value,
    /// RFC 3339, microseconds, UTC.
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

#[derive(Debug, Clone)]
enum Kind {
    Web { host: &'static str },
    Machine { machine_id: String },
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    kind: Kind,
}

/// Produces batches of events over a pool of sessions.
#[derive(Debug)]
pub struct Generator {
    rng: StdRng,
    sessions: Vec<Session>,
}

impl Generator {
    /// `sessions` live sessions (at least one), a quarter of them machine sessions.
    pub fn new(seed: u64, sessions: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let sessions = (0..sessions.max(1))
            .map(|i| {
                let id = random_uuid(&mut rng).to_string();
                let kind = if i % 4 == 3 {
                    Kind::Machine {
                        machine_id: format!("host-{:04}", rng.random_range(0..10_000u32)),
                    }
                } else {
                    Kind::Web {
                        host: HOSTS[rng.random_range(0..HOSTS.len())],
                    }
                };
                Session { id, kind }
            })
            .collect();
        Self { rng, sessions }
    }

    /// `n` events, each from a session picked at random, stamped `now` (RFC 3339).
    pub fn batch(&mut self, n: usize, now: &str) -> Vec<Event> {
        (0..n).map(|_| self.event(now)).collect()
    }

    fn event(&mut self, now: &str) -> Event {
        let s = self.rng.random_range(0..self.sessions.len());
        let event_id = random_uuid(&mut self.rng);
        let roll = self.rng.random_range(0..100u32);
        let session = &self.sessions[s];
        let ((category, name), data, value) = match &session.kind {
            Kind::Web { host } => {
                let path = PATHS[self.rng.random_range(0..PATHS.len())];
                if roll < 60 {
                    let load_ms = f64::from(self.rng.random_range(80..3_000u32));
                    (
                        TYPES[0],
                        serde_json::json!({"host": host, "path": path}),
                        Some(load_ms),
                    )
                } else if roll < 90 {
                    let element = ELEMENTS[self.rng.random_range(0..ELEMENTS.len())];
                    (
                        TYPES[1],
                        serde_json::json!({"host": host, "path": path, "element": element}),
                        None,
                    )
                } else {
                    let form = FORMS[self.rng.random_range(0..FORMS.len())];
                    let fields = self.rng.random_range(2..=6u32);
                    (
                        TYPES[2],
                        serde_json::json!({"host": host, "path": path,
                            "form": {"name": form, "fields": fields, "newsletter": roll % 2 == 0}}),
                        None,
                    )
                }
            }
            Kind::Machine { machine_id } => {
                if roll < 50 {
                    let cpu = f64::from(self.rng.random_range(0..1_000u32)) / 10.0;
                    (
                        TYPES[3],
                        serde_json::json!({"machine_id": machine_id, "unit": "percent"}),
                        Some(cpu),
                    )
                } else {
                    let bytes = f64::from(self.rng.random_range(1..64u32)) * 1_073_741_824.0;
                    (
                        TYPES[4],
                        serde_json::json!({"machine_id": machine_id, "unit": "bytes"}),
                        Some(bytes),
                    )
                }
            }
        };
        Event {
            event_id,
            session_id: session.id.clone(),
            category,
            name,
            data,
            timestamp: now.to_owned(),
            value,
        }
    }
}

/// A version-4 UUID from the seeded generator, so runs are reproducible.
fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// The current time as ingest's RFC 3339 form, to the microsecond.
pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_model::event::{parse_batch, Item, Limits, Rules};
    use eye_model::schema::SchemaRegistry;
    use eye_model::time::EventTime;

    #[test]
    fn same_seed_same_events() {
        let a = Generator::new(7, 50).batch(200, "2026-01-01T00:00:00Z");
        let b = Generator::new(7, 50).batch(200, "2026-01-01T00:00:00Z");
        let ids = |v: &[Event]| v.iter().map(|e| e.event_id).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        let c = Generator::new(8, 50).batch(200, "2026-01-01T00:00:00Z");
        assert_ne!(ids(&a), ids(&c));
    }

    #[test]
    fn every_type_appears_and_ids_are_unique() {
        let events = Generator::new(1, 400).batch(5_000, &now_rfc3339());
        for t in TYPES {
            assert!(
                events.iter().any(|e| (e.category, e.name) == t),
                "{t:?} never generated"
            );
        }
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len(), events.len());
    }

    /// What the generator sends must be what ingest accepts: the shipped schemas and the
    /// common rules, through the same parser ingest runs.
    #[test]
    fn every_generated_event_passes_ingest_checks() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let registry = SchemaRegistry::load(&dir).expect("schemas load");
        let events = Generator::new(3, 100).batch(1_000, &now_rfc3339());
        let body = serde_json::to_vec(&events).expect("serialise");
        let limits = Limits::default();
        let rules = Rules {
            limits: &limits,
            schemas: &registry,
            unknown_types: Default::default(),
        };
        let items = parse_batch(&body, EventTime::now(), rules).expect("a valid batch");
        let rejected: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Item::Rejected(r) => Some(r),
                Item::Accepted(_) => None,
            })
            .collect();
        assert!(rejected.is_empty(), "rejected: {rejected:?}");
        assert_eq!(items.len(), 1_000);
    }
}
