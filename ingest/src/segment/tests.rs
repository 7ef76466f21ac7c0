//! `accept` against the in-memory sink: what each request stores, quarantines and answers.

use super::*;
use crate::budget::Budget;
use crate::metrics::IngestMetrics;
use crate::sink::{MemorySink, Topic};
use eye_http::error::HttpError;
use eye_model::schema::{SharedRegistry, UnknownTypePolicy};
use prometheus::Registry;
use serde_json::json;
use std::time::Duration;

/// A client with its own unknown-type policy, or none.
struct TestCaller(Option<UnknownTypePolicy>);

impl Caller for TestCaller {
    fn client_id(&self) -> &str {
        "c1"
    }

    fn may_write(&self, _: &str) -> bool {
        true
    }

    async fn admit_events(&self, _: usize) -> Result<(), IngestError> {
        Ok(())
    }

    fn stored(&self, _: usize, _: usize) {}

    fn unknown_types(&self) -> Option<UnknownTypePolicy> {
        self.0
    }
}

/// The service's policy is `reject`, as by default; the repository's schemas are in force.
fn state(sink: MemorySink, segment: SegmentLimits) -> State<MemorySink> {
    let registry = Registry::new();
    let metrics = IngestMetrics::new(&registry);
    State {
        sink,
        budget: Budget::new(1 << 22, 1 << 22, metrics.inflight_bytes.clone()),
        schemas: SharedRegistry::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas"))
            .expect("the repository's schemas"),
        limits: Limits {
            max_batch_events: 4,
            ..Limits::default()
        },
        unknown_types: UnknownTypePolicy::Reject,
        max_body_bytes: 1 << 22,
        max_decompressed_bytes: 1 << 22,
        segment,
        quarantine: crate::replay::offline_store(),
        body_read_timeout: Duration::from_secs(5),
        metrics,
    }
}

const ACCEPT: TestCaller = TestCaller(Some(UnknownTypePolicy::Accept));

/// What a request left: its status and error code (`""` on success), the events and the
/// quarantine records the sink took (as JSON).
#[derive(Debug)]
struct Outcome {
    status: u16,
    code: String,
    details: Vec<String>,
    events: Vec<Value>,
    quarantined: Vec<Value>,
}

async fn run_with(
    sink: MemorySink,
    segment: SegmentLimits,
    caller: &TestCaller,
    door: Door,
    body: &Value,
) -> Outcome {
    let state = state(sink, segment);
    let body = serde_json::to_vec(body).expect("JSON");
    let mut held = state.budget.open("c1");
    let result = accept(&state, caller, door, &body, &mut held).await;
    drop(held);
    let taken = state.sink.taken();
    let of = |t: Topic| -> Vec<Value> {
        taken
            .iter()
            .filter(|r| r.topic == t)
            .map(|r| serde_json::from_slice(&r.payload).expect("a JSON record"))
            .collect()
    };
    let (status, code, details) = match result {
        Ok(res) => (res.status().as_u16(), String::new(), Vec::new()),
        Err(e) => {
            let h = HttpError::from(e);
            let details = h
                .body
                .details
                .iter()
                .map(|d| format!("{} {}", d.field, d.code))
                .collect();
            (h.status.as_u16(), h.body.code.into_owned(), details)
        }
    };
    Outcome {
        status,
        code,
        details,
        events: of(Topic::Events),
        quarantined: of(Topic::Rejected),
    }
}

async fn run(caller: &TestCaller, door: Door, body: Value) -> Outcome {
    run_with(
        MemorySink::new(),
        SegmentLimits::default(),
        caller,
        door,
        &body,
    )
    .await
}

fn track(event: &str, message_id: &str) -> Value {
    json!({"type": "track", "event": event, "userId": "u1", "anonymousId": "a1",
           "messageId": message_id, "timestamp": "2026-12-01T00:00:00Z",
           "properties": {"price": 9.5}})
}

#[tokio::test]
async fn a_batch_stores_the_valid_messages_and_quarantines_the_rest() {
    let body = json!({
        "batch": [
            track("Product Viewed", "m1"),
            {"type": "page", "name": "Home", "messageId": "m2"},
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m3"},
        ],
        "sentAt": "2026-12-01T00:00:00Z",
        "writeKey": "eye_never.stored",
    });
    let o = run(&ACCEPT, Door::Batch, body).await;
    assert_eq!((o.status, o.code.as_str()), (200, ""));
    let names: Vec<&Value> = o.events.iter().map(|e| &e["name"]).collect();
    assert_eq!(names, [&json!("Product Viewed"), &json!("identify")]);
    assert_eq!(o.events[0]["category"], "track");
    assert_eq!(o.events[0]["session_id"], "a1");
    assert_eq!(
        o.events[0]["event_id"],
        message::event_id("c1", "m1").to_string()
    );
    assert_eq!(o.events[0]["data"]["properties"]["price"], 9.5);
    assert_eq!(o.quarantined.len(), 1);
    let q = &o.quarantined[0];
    assert_eq!(q["source"], "ingest/segment");
    assert!(
        q["raw"].as_str().unwrap_or_default().contains("\"Home\""),
        "{q}"
    );
    assert_eq!(q["reasons"][0]["field"], "/anonymousId");
    let all = serde_json::to_string(&(&o.events, &o.quarantined)).expect("JSON");
    assert!(
        !all.contains("eye_never.stored"),
        "the write key is never stored"
    );
}

#[tokio::test]
async fn requests_nothing_of_which_can_succeed_are_400_and_say_why() {
    type Case = (
        &'static str,
        Door,
        Value,
        u16,
        &'static str,
        Vec<&'static str>,
        usize,
    );
    // (case, door, body, status, code, details, quarantined)
    let cases: Vec<Case> = vec![
        (
            "every message invalid",
            Door::Batch,
            json!({"batch": [{"type": "track", "userId": "u"}, {"type": "bogus", "userId": "u"}]}),
            400,
            "invalid_messages",
            vec!["/batch/0/event required", "/batch/1/type unknown_type"],
            2,
        ),
        (
            "a single message invalid",
            Door::Track,
            json!({"event": "E"}),
            400,
            "invalid_messages",
            vec!["/anonymousId required"],
            1,
        ),
        (
            "a bad time names the message's field",
            Door::Identify,
            json!({"userId": "u", "originalTimestamp": "yesterday"}),
            400,
            "invalid_messages",
            vec!["/originalTimestamp invalid_timestamp"],
            1,
        ),
        (
            "not a batch",
            Door::Batch,
            json!({"messages": []}),
            400,
            "not_a_batch",
            vec![],
            1,
        ),
        (
            "an empty batch",
            Door::Batch,
            json!({"batch": []}),
            400,
            "empty_batch",
            vec![],
            1,
        ),
        (
            "not an object",
            Door::Page,
            json!([1]),
            400,
            "not_an_object",
            vec![],
            1,
        ),
        (
            "more messages than a request may hold",
            Door::Batch,
            json!({"batch": [track("E", "1"), track("E", "2"), track("E", "3"), track("E", "4"), track("E", "5")]}),
            413,
            "too_many_events",
            vec![],
            0,
        ),
    ];
    for (case, door, body, status, code, details, quarantined) in cases {
        let o = run(&ACCEPT, door, body).await;
        assert_eq!((o.status, o.code.as_str()), (status, code), "{case}");
        assert_eq!(o.details, details, "{case}");
        assert_eq!(
            (o.events.len(), o.quarantined.len()),
            (0, quarantined),
            "{case}"
        );
    }
}

#[tokio::test]
async fn malformed_json_is_refused_and_quarantined_whole() {
    let state = state(MemorySink::new(), SegmentLimits::default());
    let mut held = state.budget.open("c1");
    let result = accept(
        &state,
        &ACCEPT,
        Door::Batch,
        b"{\"batch\": [{},]}",
        &mut held,
    )
    .await;
    let h = HttpError::from(result.expect_err("refused"));
    assert_eq!(
        (h.status.as_u16(), h.body.code.as_ref()),
        (400, "malformed_json")
    );
    assert!(h.body.message.contains("line 1"), "{}", h.body.message);
    let taken = state.sink.taken();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].topic, Topic::Rejected);
}

#[tokio::test]
async fn each_client_decides_what_becomes_of_types_without_a_schema() {
    let schemaless = || json!({"batch": [track("Never Declared", "m1")]});
    // The repository's example: `properties.order_id` (a string) and `properties.revenue`.
    let planned = |order_id: Value| {
        json!({"type": "track", "event": "Order Completed", "userId": "u", "messageId": "m2",
               "properties": {"order_id": order_id, "revenue": 10}})
    };
    type Case = (&'static str, TestCaller, Value, u16, usize, usize);
    let cases: Vec<Case> = vec![
        (
            "the client accepts",
            TestCaller(Some(UnknownTypePolicy::Accept)),
            schemaless(),
            200,
            1,
            0,
        ),
        (
            "the client rejects",
            TestCaller(Some(UnknownTypePolicy::Reject)),
            schemaless(),
            400,
            0,
            1,
        ),
        (
            "no policy of its own: the service's (reject)",
            TestCaller(None),
            schemaless(),
            400,
            0,
            1,
        ),
        (
            "a planned event is checked whatever the policy",
            TestCaller(Some(UnknownTypePolicy::Reject)),
            json!({"batch": [planned(json!("o-1"))]}),
            200,
            1,
            0,
        ),
        (
            "a violation of the plan is quarantined",
            TestCaller(Some(UnknownTypePolicy::Accept)),
            json!({"batch": [planned(json!(17))]}),
            400,
            0,
            1,
        ),
    ];
    for (case, caller, body, status, events, quarantined) in cases {
        let o = run(&caller, Door::Batch, body).await;
        assert_eq!(o.status, status, "{case}: {o:?}");
        assert_eq!(
            (o.events.len(), o.quarantined.len()),
            (events, quarantined),
            "{case}"
        );
    }
    let o = run(
        &TestCaller(Some(UnknownTypePolicy::Accept)),
        Door::Batch,
        json!({"batch": [planned(json!(17))]}),
    )
    .await;
    assert_eq!(o.details, ["/batch/0/properties/order_id schema_type"]);
}

#[tokio::test]
async fn limits_refuse_a_large_message_alone_and_a_large_batch_whole() {
    let small = SegmentLimits {
        max_message_bytes: 400,
        max_batch_bytes: 2_000,
    };
    let big = json!({"type": "track", "event": "E", "userId": "u", "properties": {"pad": "x".repeat(500)}});
    let body = json!({"batch": [track("E", "m1"), big]});
    let o = run_with(MemorySink::new(), small, &ACCEPT, Door::Batch, &body).await;
    assert_eq!(o.status, 200);
    assert_eq!((o.events.len(), o.quarantined.len()), (1, 1));
    assert_eq!(o.quarantined[0]["reasons"][0]["code"], "message_too_large");

    let body = json!({"batch": [track("E", "m1")], "context": {"pad": "x".repeat(2_000)}});
    let o = run_with(MemorySink::new(), small, &ACCEPT, Door::Batch, &body).await;
    assert_eq!((o.status, o.code.as_str()), (413, "payload_too_large"));
    assert_eq!((o.events.len(), o.quarantined.len()), (0, 0));

    // A batch context larger than a message is copied into each message without
    // making it too large.
    let body = json!({"batch": [track("E", "m1")], "context": {"pad": "x".repeat(1_000)}});
    let o = run_with(MemorySink::new(), small, &ACCEPT, Door::Batch, &body).await;
    assert_eq!((o.status, o.events.len()), (200, 1), "{o:?}");
    assert_eq!(o.events[0]["data"]["context"]["pad"], "x".repeat(1_000));
}

#[tokio::test]
async fn a_request_the_broker_took_only_part_of_is_503_to_be_sent_again() {
    let m1 = message::event_id("c1", "m1").to_string();
    let sink = MemorySink::refusing(move |r| {
        r.topic == Topic::Events && r.id().map(|u| u.to_string()) == Some(m1.clone())
    });
    let body = json!({"batch": [track("E", "m1"), track("E", "m2")]});
    let o = run_with(sink, SegmentLimits::default(), &ACCEPT, Door::Batch, &body).await;
    assert_eq!((o.status, o.code.as_str()), (503, "broker_unavailable"));
    assert_eq!(o.events.len(), 1, "the other message was stored");
    let h = HttpError::from(IngestError::Segment(SegmentError::PartlyStored {
        failed: 1,
    }));
    assert!(h.retry_after_secs.is_some(), "a 503 says when to retry");
}

#[test]
fn write_keys_are_taken_out_of_what_is_quarantined() {
    let cases = [
        (r#"{"writeKey":"k","event":"E"}"#, r#"{"event":"E"}"#),
        (r#"{"event": "E"}"#, r#"{"event": "E"}"#),
        (
            r#"{"properties":{"writeKey":"x"}}"#,
            r#"{"properties":{"writeKey":"x"}}"#,
        ),
        ("{not json writeKey", "{not json writeKey"),
    ];
    for (text, want) in cases {
        assert_eq!(without_write_key(text), want, "{text}");
    }
}
