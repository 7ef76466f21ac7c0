//! Realistic events: what web applications and machine monitors send. The workspace's one
//! event generator, in two shapes that draw every event the same way ([`Session`]):
//!
//! - [`Generator`], live traffic: a pool of sessions, each event from one picked at random
//!   and stamped with the time of sending, as ingest receives it (the load generator, the
//!   pipeline benchmark's records);
//! - [`History`], a year of whole sessions laid end to end, each event with what ingest
//!   adds to it and each session with its start and end (the query benchmark's data set).
//!
//! Web sessions (three in four) open with a page view, then view pages (with their load
//! time as `value`), click calls to action and form fields, and submit forms, all on one
//! host. Machine sessions send a `cpu_load` (percent, busier in the working day) and a
//! `memory_used` (bytes, drifting) measurement a minute. Every event carries a
//! client-chosen `event_id` (so a retry is recognisably the same event) and is valid under
//! the shipped `schemas/`. Generation is seeded: the same seed gives the same sessions,
//! types, values and ids.

mod history;

pub use history::{Chunk, History, Lifecycle, Owner, Recorded, Span};

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

const HOSTS: [&str; 5] = [
    "www.consumeraffairs.com",
    "shop.example.com",
    "docs.example.com",
    "news.example.org",
    "app.example.net",
];
const PATHS: [&str; 16] = [
    "/",
    "/pricing",
    "/reviews",
    "/reviews/cars",
    "/reviews/insurance/home",
    "/compare",
    "/signup",
    "/login",
    "/account/settings",
    "/checkout/step-2",
    "/blog",
    "/blog/2026/11/ten-things-about-event-pipelines",
    "/search?q=dishwasher",
    "/contact",
    "/help",
    "/about",
];
const CTA_ELEMENTS: [&str; 8] = [
    "signup-button",
    "hero-cta",
    "read-more",
    "add-to-cart",
    "get-a-quote",
    "compare-now",
    "chat-bubble",
    "newsletter-email",
];
const FORM_FIELDS: [&str; 5] = ["email", "first_name", "last_name", "zip", "phone"];
const FORMS: [&str; 4] = ["signup", "contact", "quote", "checkout"];

/// An event's `data`, in the shape its type's schema asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Data {
    Page {
        host: &'static str,
        path: &'static str,
    },
    Element {
        host: &'static str,
        path: &'static str,
        element: &'static str,
    },
    Form {
        host: &'static str,
        path: &'static str,
        form: Form,
    },
    Measure {
        machine_id: String,
        unit: &'static str,
    },
}

/// A submitted form: free-form under its schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Form {
    pub name: &'static str,
    pub fields: u8,
    pub newsletter: bool,
}

/// One event as the client sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub event_id: Uuid,
    pub session_id: String,
    pub category: &'static str,
    pub name: &'static str,
    pub data: Data,
    /// RFC 3339, microseconds, UTC.
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// What one session does next: its type, data and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub category: &'static str,
    pub name: &'static str,
    pub data: Data,
    pub value: Option<f64>,
}

#[derive(Debug, Clone)]
enum Activity {
    Web {
        host: &'static str,
        /// The page the visitor is on: a page view moves it, clicks stay on it.
        path: &'static str,
    },
    Machine {
        machine_id: String,
        base_cpu: f64,
        mem_total: f64,
        mem_used: f64,
    },
}

/// One session and the state its events follow.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    activity: Activity,
    /// Events drawn so far.
    drawn: u32,
}

impl Session {
    fn new(rng: &mut StdRng, machine: bool) -> Self {
        let id = random_uuid(rng).to_string();
        let activity = if machine {
            let mem_total = f64::from(rng.random_range(4u32..=64)) * 1_073_741_824.0;
            Activity::Machine {
                machine_id: format!("machine-{:05}", rng.random_range(0..2_000u32)),
                base_cpu: rng.random_range(5.0..60.0),
                mem_total,
                mem_used: mem_total * rng.random_range(0.2..0.6),
            }
        } else {
            Activity::Web {
                host: HOSTS[rng.random_range(0..HOSTS.len())],
                path: PATHS[0],
            }
        };
        Self {
            id,
            activity,
            drawn: 0,
        }
    }

    pub fn machine_id(&self) -> Option<&str> {
        match &self.activity {
            Activity::Machine { machine_id, .. } => Some(machine_id),
            Activity::Web { .. } => None,
        }
    }

    /// The session's next event, happening at `ts_us` (Unix microseconds, UTC).
    pub fn next(&mut self, rng: &mut StdRng, ts_us: i64) -> Action {
        let first = self.drawn == 0;
        let nth = self.drawn;
        self.drawn += 1;
        match &mut self.activity {
            Activity::Web { host, path } => web_action(rng, host, path, first),
            Activity::Machine {
                machine_id,
                base_cpu,
                mem_total,
                mem_used,
            } => {
                // A measurement pair per minute: cpu_load, then memory_used.
                let (name, unit, value) = if nth.is_multiple_of(2) {
                    let hour = (ts_us.rem_euclid(86_400_000_000) / 3_600_000_000) as f64;
                    // Busier in the working day (UTC), plus noise.
                    let diurnal = 15.0 * (std::f64::consts::PI * (hour - 6.0) / 12.0).sin();
                    let cpu =
                        (*base_cpu + diurnal + rng.random_range(-10.0..10.0)).clamp(0.0, 100.0);
                    ("cpu_load", "percent", (cpu * 10.0).round() / 10.0)
                } else {
                    *mem_used = (*mem_used + rng.random_range(-0.02..0.02) * *mem_total)
                        .clamp(0.05 * *mem_total, 0.98 * *mem_total);
                    ("memory_used", "bytes", mem_used.round())
                };
                Action {
                    category: "machine",
                    name,
                    data: Data::Measure {
                        machine_id: machine_id.clone(),
                        unit,
                    },
                    value: Some(value),
                }
            }
        }
    }

    /// Time from an event of this session to its next one: a visitor reads for seconds;
    /// an agent sends its pair a few ms apart, then waits a minute.
    fn gap_us(&self, rng: &mut StdRng) -> i64 {
        match self.activity {
            Activity::Web { .. } => rng.random_range(1_000_000..45_000_000),
            Activity::Machine { .. } if self.drawn % 2 == 1 => rng.random_range(1_000..20_000),
            Activity::Machine { .. } => rng.random_range(59_000_000..61_000_000),
        }
    }
}

fn web_action(
    rng: &mut StdRng,
    host: &'static str,
    path: &mut &'static str,
    first: bool,
) -> Action {
    let roll = rng.random_range(0..100u32);
    let page = |path| Data::Page { host, path };
    // Every session opens with a page view.
    if first || roll < 55 {
        *path = PATHS[rng.random_range(0..PATHS.len())];
        // Load times: mostly a few hundred ms, with a long tail.
        let u: f64 = rng.random();
        let load_ms = (150.0 + 2_500.0 * u.powi(4) + rng.random_range(0.0..80.0))
            .round()
            .max(1.0);
        return Action {
            category: "page_interaction",
            name: "page_view",
            data: page(*path),
            value: Some(load_ms),
        };
    }
    let (category, name, data) = if roll < 90 {
        // A click on a call to action, or (roll 75..90) into a form field: the shipped
        // cta_click type either way.
        let element = if roll < 75 {
            CTA_ELEMENTS[rng.random_range(0..CTA_ELEMENTS.len())]
        } else {
            FORM_FIELDS[rng.random_range(0..FORM_FIELDS.len())]
        };
        let path = *path;
        (
            "page_interaction",
            "cta_click",
            Data::Element {
                host,
                path,
                element,
            },
        )
    } else {
        let form = Form {
            name: FORMS[rng.random_range(0..FORMS.len())],
            fields: rng.random_range(2..=6u8),
            newsletter: rng.random_bool(0.5),
        };
        let path = *path;
        (
            "form_interaction",
            "submit",
            Data::Form { host, path, form },
        )
    };
    Action {
        category,
        name,
        data,
        value: None,
    }
}

/// Live traffic: events of a pool of sessions, interleaved as their clients send them.
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
            .map(|i| Session::new(&mut rng, i % 4 == 3))
            .collect();
        Self { rng, sessions }
    }

    /// `n` events, each from a session picked at random, all sent at `now_us`.
    pub fn batch(&mut self, n: usize, now_us: i64) -> Vec<Event> {
        let timestamp = rfc3339_us(now_us);
        (0..n)
            .map(|_| {
                let s = self.rng.random_range(0..self.sessions.len());
                let event_id = random_uuid(&mut self.rng);
                let session = &mut self.sessions[s];
                let a = session.next(&mut self.rng, now_us);
                Event {
                    event_id,
                    session_id: session.id.clone(),
                    category: a.category,
                    name: a.name,
                    data: a.data,
                    timestamp: timestamp.clone(),
                    value: a.value,
                }
            })
            .collect()
    }
}

/// A version-4 UUID from the seeded generator, so runs are reproducible.
fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// A UUIDv7 of the time `at_us`, its random part from the seeded generator.
fn uuid_v7(rng: &mut StdRng, at_us: i64) -> Uuid {
    let random: [u8; 10] = rng.random();
    uuid::Builder::from_unix_timestamp_millis((at_us / 1000) as u64, &random).into_uuid()
}

/// The current time in Unix microseconds.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// `us` as ingest's RFC 3339 form, to the microsecond.
pub fn rfc3339_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The current time as ingest's RFC 3339 form, to the microsecond.
pub fn now_rfc3339() -> String {
    rfc3339_us(now_us())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_model::event::{parse_batch, Item, Limits, Rules};
    use eye_model::schema::SchemaRegistry;
    use eye_model::time::EventTime;

    /// 2026-01-01T00:00:00Z.
    pub(super) const NOW_US: i64 = 1_767_225_600_000_000;
    pub(super) const YEAR: Span = Span {
        end_us: NOW_US,
        days: 365,
    };

    pub(super) fn registry() -> SchemaRegistry {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        SchemaRegistry::load(&dir).expect("schemas load")
    }

    pub(super) fn history(seed: u64, events: u64) -> Vec<Chunk> {
        let mut h = History::new(seed, events, YEAR);
        std::iter::from_fn(|| h.next_chunk(1_000)).collect()
    }

    #[test]
    fn same_seed_same_events() {
        let ids = |seed| {
            Generator::new(seed, 50)
                .batch(200, NOW_US)
                .iter()
                .map(|e| e.event_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(7), ids(7));
        assert_ne!(ids(7), ids(8));
        let events = |seed| -> Vec<Recorded> {
            history(seed, 5_000)
                .into_iter()
                .flat_map(|c| c.events)
                .collect()
        };
        let a = events(7);
        assert_eq!(a.len(), 5_000);
        assert_eq!(a, events(7));
        assert_ne!(a, events(8));
    }

    #[test]
    fn every_type_appears_and_ids_are_unique() {
        let live = Generator::new(1, 400).batch(5_000, NOW_US);
        let history: Vec<Recorded> = history(1, 20_000)
            .into_iter()
            .flat_map(|c| c.events)
            .collect();
        for (shape, types, ids) in [
            (
                "live",
                live.iter()
                    .map(|e| (e.category, e.name))
                    .collect::<Vec<_>>(),
                live.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            ),
            (
                "history",
                history
                    .iter()
                    .map(|e| (e.action.category, e.action.name))
                    .collect(),
                history.iter().map(|e| e.event_id).collect(),
            ),
        ] {
            for t in TYPES {
                assert!(types.contains(&t), "{shape}: {t:?} never generated");
            }
            let distinct: std::collections::HashSet<_> = ids.iter().collect();
            assert_eq!(distinct.len(), ids.len(), "{shape}");
        }
    }

    /// What the generator sends must be what ingest accepts: the shipped schemas and the
    /// common rules, through the same parser ingest runs.
    #[test]
    fn every_live_event_passes_ingest_checks() {
        let registry = registry();
        let events = Generator::new(3, 100).batch(1_000, now_us());
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

    #[test]
    fn timestamps_to_the_microsecond() {
        // (Unix µs, text)
        let cases: &[(i64, &str)] = &[
            (0, "1970-01-01T00:00:00.000000Z"),
            (NOW_US + 1, "2026-01-01T00:00:00.000001Z"),
            (1_735_689_599_999_999, "2024-12-31T23:59:59.999999Z"),
        ];
        for (us, text) in cases {
            assert_eq!(rfc3339_us(*us), *text);
        }
    }
}
