//! `accept` table-driven against the in-memory sink: statuses, quarantine records and
//! partial delivery.

use super::*;
use crate::budget::Budget;
use crate::metrics::IngestMetrics;
use crate::sink::{MemorySink, Record, Topic};
use eye_http::error::HttpError;
use eye_kafka::wire;
use eye_model::event::Limits;
use eye_model::schema::{SharedRegistry, UnknownTypePolicy};
use prometheus::Registry;
use std::cell::Cell;
use std::time::Duration;

/// A client allowed `categories` (any when `None`) and `budget` events.
struct TestCaller {
    categories: Option<&'static [&'static str]>,
    budget: usize,
    stored: Cell<(usize, usize)>,
}

impl TestCaller {
    fn new(categories: Option<&'static [&'static str]>, budget: usize) -> Self {
        Self {
            categories,
            budget,
            stored: Cell::new((0, 0)),
        }
    }
}

impl Caller for TestCaller {
    fn client_id(&self) -> &str {
        "c1"
    }

    fn may_write(&self, category: &str) -> bool {
        self.categories.is_none_or(|c| c.contains(&category))
    }

    async fn admit_events(&self, events: usize) -> Result<(), IngestError> {
        match events <= self.budget {
            true => Ok(()),
            false => Err(IngestError::Auth(eye_auth::AuthError::RateLimited {
                limit: "events",
                retry_after: Duration::from_secs(1),
            })),
        }
    }

    fn stored(&self, events: usize, rejections: usize) {
        self.stored.set((events, rejections));
    }
}

fn state(sink: MemorySink, budget_bytes: u64) -> State<MemorySink> {
    let registry = Registry::new();
    let metrics = IngestMetrics::new(&registry);
    State {
        sink,
        budget: Budget::new(budget_bytes, budget_bytes, metrics.inflight_bytes.clone()),
        schemas: SharedRegistry::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas"))
            .expect("the repository's schemas"),
        limits: Limits {
            max_batch_events: 3,
            ..Limits::default()
        },
        unknown_types: UnknownTypePolicy::Reject,
        max_body_bytes: 1 << 20,
        max_decompressed_bytes: 1 << 20,
        segment: crate::segment::SegmentLimits::default(),
        quarantine: crate::replay::offline_store(),
        body_read_timeout: Duration::from_secs(5),
        metrics,
    }
}

const VIEW: &str = r#"{"event_id": "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10", "session_id": "s1", "category": "page_interaction", "name": "page_view", "data": {"host": "h", "path": "/"}, "timestamp": "2024-01-01T00:00:00Z"}"#;
const CPU: &str = r#"{"event_id": "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a11", "session_id": "s1", "category": "machine", "name": "cpu_load", "data": {"machine_id": "m", "unit": "percent"}, "value": 12.5, "timestamp": "2024-01-01T00:00:01Z"}"#;
/// Breaks page_view's schema: no `path`.
const BAD: &str = r#"{"event_id": "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a12", "session_id": "s1", "category": "page_interaction", "name": "page_view", "data": {"host": "h"}, "timestamp": "2024-01-01T00:00:02Z"}"#;

const VIEW_ID: &str = "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10";
const CPU_ID: &str = "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a11";

fn body(items: &[&str]) -> Vec<u8> {
    format!("[{}]", items.join(",")).into_bytes()
}

/// Refuses the record of the event `id`.
fn event(id: &'static str) -> impl Fn(&Record) -> bool + Send + Sync {
    move |r| r.topic == Topic::Events && r.id().map(|u| u.to_string()).as_deref() == Some(id)
}

fn quarantine(r: &Record) -> bool {
    r.topic == Topic::Rejected
}

/// What a request left: its status, the JSON of its answer (or error code), and the
/// records taken per topic (events, rejected).
#[derive(Debug, PartialEq)]
struct Outcome {
    status: u16,
    code_or_counts: String,
    items: Vec<&'static str>,
    taken: (usize, usize),
}

const MIB: u64 = 1 << 20;

/// Runs one request while other clients' requests hold `others_hold` of a MiB budget.
async fn run(
    sink: MemorySink,
    others_hold: u64,
    caller: &TestCaller,
    body: &[u8],
) -> (Outcome, State<MemorySink>) {
    let state = state(sink, MIB);
    let mut others = state.budget.open("others");
    others.grow_to(others_hold).expect("fits");
    let mut held = state.budget.open("c1");
    let result = accept(&state, caller, body, &mut held).await;
    drop(held);
    let taken = state.sink.taken();
    let count = |t: Topic| taken.iter().filter(|r| r.topic == t).count();
    let taken = (count(Topic::Events), count(Topic::Rejected));
    let outcome = match result {
        Ok(a) => {
            let json = serde_json::to_value(&a.body).expect("serialises");
            Outcome {
                status: a.status.as_u16(),
                code_or_counts: format!(
                    "accepted {} rejected {} failed {}",
                    json["accepted"],
                    json["rejected"],
                    json.get("failed").cloned().unwrap_or(0.into()),
                ),
                items: a.body.results.iter().map(|r| r.status.as_str()).collect(),
                taken,
            }
        }
        Err(e) => {
            let h = HttpError::from(e);
            Outcome {
                status: h.status.as_u16(),
                code_or_counts: h.body.code.into_owned(),
                items: Vec::new(),
                taken,
            }
        }
    };
    (outcome, state)
}

fn ok(status: u16, counts: &str, items: &[&'static str], taken: (usize, usize)) -> Outcome {
    Outcome {
        status,
        code_or_counts: counts.to_owned(),
        items: items.to_vec(),
        taken,
    }
}

fn refused(status: u16, code: &str, taken: (usize, usize)) -> Outcome {
    Outcome {
        status,
        code_or_counts: code.to_owned(),
        items: Vec::new(),
        taken,
    }
}

#[tokio::test]
async fn a_batch_is_answered_item_by_item() {
    type Case = (&'static str, MemorySink, u64, TestCaller, Vec<u8>, Outcome);
    // (case, sink, bytes other requests hold, caller, body, outcome)
    let any = || TestCaller::new(None, 100);
    let cases: Vec<Case> = vec![
        (
            "every event accepted",
            MemorySink::new(),
            0,
            any(),
            body(&[VIEW, CPU]),
            ok(
                202,
                "accepted 2 rejected 0 failed 0",
                &["accepted", "accepted"],
                (2, 0),
            ),
        ),
        (
            "one object, not an array",
            MemorySink::new(),
            0,
            any(),
            VIEW.as_bytes().to_vec(),
            ok(202, "accepted 1 rejected 0 failed 0", &["accepted"], (1, 0)),
        ),
        (
            "some rejected, and quarantined",
            MemorySink::new(),
            0,
            any(),
            body(&[VIEW, BAD]),
            ok(
                207,
                "accepted 1 rejected 1 failed 0",
                &["accepted", "rejected"],
                (1, 1),
            ),
        ),
        (
            "all rejected",
            MemorySink::new(),
            0,
            any(),
            body(&[BAD, BAD]),
            ok(
                400,
                "accepted 0 rejected 2 failed 0",
                &["rejected", "rejected"],
                (0, 2),
            ),
        ),
        (
            "a category the client may not write is quarantined",
            MemorySink::new(),
            0,
            TestCaller::new(Some(&["page_interaction"]), 100),
            body(&[VIEW, CPU]),
            ok(
                207,
                "accepted 1 rejected 1 failed 0",
                &["accepted", "rejected"],
                (1, 1),
            ),
        ),
        (
            "too many events: 413, the body quarantined whole",
            MemorySink::new(),
            0,
            any(),
            body(&[VIEW, VIEW, VIEW, VIEW]),
            refused(413, "too_many_events", (0, 1)),
        ),
        (
            "not JSON: 400, the body quarantined whole",
            MemorySink::new(),
            0,
            any(),
            b"[{".to_vec(),
            refused(400, "malformed_json", (0, 1)),
        ),
        (
            "a body quarantined whole that the sink did not take: 503",
            MemorySink::refusing(|_| true),
            0,
            any(),
            b"[{".to_vec(),
            refused(503, "broker_unavailable", (0, 0)),
        ),
        (
            "part delivered: the event not taken is failed",
            MemorySink::refusing(event(CPU_ID)),
            0,
            any(),
            body(&[VIEW, CPU]),
            ok(
                207,
                "accepted 1 rejected 0 failed 1",
                &["accepted", "failed"],
                (1, 0),
            ),
        ),
        (
            "part delivered: the rejection not quarantined is failed",
            MemorySink::refusing(quarantine),
            0,
            any(),
            body(&[VIEW, BAD]),
            ok(
                207,
                "accepted 1 rejected 0 failed 1",
                &["accepted", "failed"],
                (1, 0),
            ),
        ),
        (
            "part delivered: only rejections stored",
            MemorySink::refusing(event(VIEW_ID)),
            0,
            any(),
            body(&[VIEW, BAD]),
            ok(
                207,
                "accepted 0 rejected 1 failed 1",
                &["failed", "rejected"],
                (0, 1),
            ),
        ),
        (
            "nothing stored: 503",
            MemorySink::refusing(|_| true),
            0,
            any(),
            body(&[VIEW, BAD]),
            refused(503, "broker_unavailable", (0, 0)),
        ),
        (
            "the producer's queue full: 503",
            MemorySink::full(),
            0,
            any(),
            body(&[VIEW]),
            refused(503, "overloaded", (0, 0)),
        ),
        (
            "records beyond the in-flight budget: 503, nothing sent",
            MemorySink::new(),
            MIB - 64,
            any(),
            body(&[VIEW]),
            refused(503, "overloaded", (0, 0)),
        ),
        (
            "over the event budget: refused before anything is sent",
            MemorySink::new(),
            0,
            TestCaller::new(None, 1),
            body(&[VIEW, BAD]),
            refused(429, "rate_limited", (0, 0)),
        ),
    ];
    for (name, sink, others_hold, caller, body, want) in cases {
        let (got, _) = run(sink, others_hold, &caller, &body).await;
        assert_eq!(got, want, "{name}");
    }
}

#[tokio::test]
async fn failed_items_say_why_and_keep_their_ids_out_of_the_stored_ones() {
    let caller = TestCaller::new(None, 100);
    let state = state(MemorySink::refusing(event(CPU_ID)), MIB);
    let mut held = state.budget.open("c1");
    let a = accept(&state, &caller, &body(&[VIEW, CPU, BAD]), &mut held)
        .await
        .expect("part stored");
    let json = serde_json::to_value(&a.body).expect("serialises");
    assert_eq!(json["event_ids"], serde_json::json!([VIEW_ID]));
    let failed = &json["results"][1];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["event_id"], CPU_ID);
    assert_eq!(failed["errors"][0]["code"], "broker_unavailable");
    assert!(failed["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("record refused")));
    assert_eq!(json["results"][2]["status"], "rejected");
    assert!(json.get("error").is_none());
    // Stored: one event and one rejection; the client's counts say so.
    assert_eq!(caller.stored.get(), (1, 1));
    let m = &state.metrics;
    let events = |outcome: &str| m.events.with_label_values(&["v1", outcome]).get();
    assert_eq!(
        (events("produced"), events("quarantined"), events("failed")),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn quarantine_records_carry_the_client_and_the_reasons() {
    let caller = TestCaller::new(Some(&["page_interaction"]), 100);
    let (_, state) = run(MemorySink::new(), 0, &caller, &body(&[CPU, BAD])).await;
    let rejections: Vec<Rejection> = state
        .sink
        .taken()
        .iter()
        .map(|r| wire::decode_rejection(&r.payload).expect("a rejection"))
        .collect();
    let codes: Vec<Vec<&str>> = rejections
        .iter()
        .map(|r| r.reasons.iter().map(|x| x.code.as_str()).collect())
        .collect();
    assert_eq!(codes[0], ["category_not_allowed"]);
    assert_eq!(codes[1].len(), 1, "{codes:?}");
    assert!(rejections.iter().all(|r| r.client == "c1"));
    assert_eq!(rejections[0].event_id, CPU_ID);
    // Keyed by session, as accepted events are.
    assert!(state.sink.taken().iter().all(|r| r.key == "s1"));

    // A body that is not events is kept as it came.
    let (_, state) = run(MemorySink::new(), 0, &caller, b"{\"a\": ").await;
    let whole = state.sink.taken();
    let r = wire::decode_rejection(&whole[0].payload).expect("a rejection");
    assert_eq!(
        (r.raw.as_str(), r.reasons[0].code.as_str()),
        ("{\"a\": ", "malformed_json")
    );
}

#[test]
fn statuses_follow_what_was_stored() {
    // (accepted, rejected, failed, status)
    let cases = [
        (3, 0, 0, 202),
        (0, 2, 0, 400),
        (1, 1, 0, 207),
        (1, 0, 1, 207),
        (0, 1, 1, 207),
        (0, 0, 1, 207),
    ];
    for (accepted, rejected, failed, want) in cases {
        let a = answer(Settled {
            results: Vec::new(),
            event_ids: Vec::new(),
            accepted,
            rejected,
            failed,
        });
        assert_eq!(a.status.as_u16(), want, "{accepted} {rejected} {failed}");
        assert_eq!(a.body.error.is_some(), want == 400);
    }
}
