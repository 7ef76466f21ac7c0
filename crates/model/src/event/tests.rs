use super::parse::shape;
use super::*;
use serde_json::json;

// 2023-11-14T22:13:20Z
const NOW: EventTime = EventTime::from_micros(1_700_000_000_000_000);

fn registry() -> SchemaRegistry {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas"));
    SchemaRegistry::load(dir).expect("shipped schemas load")
}

fn seed_event() -> Value {
    json!({
        "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
        "category": "page_interaction",
        "name": "page_view",
        "data": {"host": "www.consumeraffairs.com", "path": "/"},
        "timestamp": "2021-09-26 09:15:27.243860"
    })
}

fn with(patch: impl Fn(&mut Value)) -> Value {
    let mut v = seed_event();
    patch(&mut v);
    v
}

fn run(body: &[u8], policy: UnknownTypePolicy) -> Result<Vec<Item>, RequestError> {
    let schemas = registry();
    let limits = Limits::default();
    parse_batch(
        body,
        NOW,
        Rules {
            limits: &limits,
            schemas: &schemas,
            unknown_types: policy,
        },
    )
}

fn one(v: &Value) -> Item {
    let mut items = run(v.to_string().as_bytes(), UnknownTypePolicy::Reject).expect("request ok");
    assert_eq!(items.len(), 1);
    items.remove(0)
}

fn errors(v: &Value) -> Vec<(String, &'static str)> {
    match one(v) {
        Item::Rejected(r) => r
            .errors
            .into_iter()
            .map(|e| {
                let code = e.static_code();
                (e.field, code)
            })
            .collect(),
        Item::Accepted(ev) => panic!("expected rejection of {v}, accepted {ev:?}"),
    }
}

#[test]
fn accepts_the_seed_events() {
    let cases = [
        seed_event(),
        with(|v| {
            v["name"] = json!("cta_click");
            v["data"]["element"] = json!("chat bubble");
        }),
        with(|v| {
            v["category"] = json!("form_interaction");
            v["name"] = json!("submit");
            v["data"]["form"] = json!({"first_name": "John", "last_name": "Doe"});
        }),
        with(|v| v["timestamp"] = json!(1_632_647_727.243_86)),
        with(|v| v["timestamp"] = json!(1_632_647_727_243_i64)),
        with(|v| v["event_id"] = json!("0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10")),
        with(|v| v["value"] = json!(-2.5)),
        with(|v| v["session_id"] = json!("x".repeat(128))),
    ];
    for v in cases {
        match one(&v) {
            Item::Accepted(ev) => {
                assert_eq!(ev.received_at, NOW);
                assert_eq!(
                    ev.timestamp, ev.client_timestamp,
                    "no sent_at: no correction"
                );
            }
            Item::Rejected(r) => panic!("{v} rejected: {:?}", r.errors),
        }
    }
}

#[test]
fn every_rule_has_its_code_and_pointer() {
    let deep = (0..16).fold(json!(1), |acc, _| json!({ "k": acc }));
    let many: Map<String, Value> = (0..1_001).map(|i| (format!("k{i}"), json!(i))).collect();
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            with(|v| {
                v.as_object_mut().map(|o| o.remove("session_id"));
            }),
            vec![("/session_id", "required")],
        ),
        (
            with(|v| v["session_id"] = json!("")),
            vec![("/session_id", "empty")],
        ),
        (
            with(|v| v["session_id"] = json!("x".repeat(129))),
            vec![("/session_id", "too_long")],
        ),
        (
            with(|v| v["session_id"] = json!("a\u{7}b")),
            vec![("/session_id", "control_character")],
        ),
        (
            with(|v| v["session_id"] = json!(42)),
            vec![("/session_id", "wrong_type")],
        ),
        (
            with(|v| v["category"] = json!("page interaction!")),
            vec![("/category", "invalid_characters")],
        ),
        (
            with(|v| v["category"] = json!(" page")),
            vec![("/category", "invalid_characters")],
        ),
        (
            with(|v| v["name"] = json!("n".repeat(65))),
            vec![("/name", "too_long")],
        ),
        (with(|v| v["name"] = json!("")), vec![("/name", "empty")]),
        (
            with(|v| v["timestamp"] = json!("yesterday")),
            vec![("/timestamp", "invalid_timestamp")],
        ),
        (
            with(|v| v["timestamp"] = json!("1999-12-31T23:59:59Z")),
            vec![("/timestamp", "timestamp_too_old")],
        ),
        (
            with(|v| v["timestamp"] = json!("2023-11-16T00:00:00Z")),
            vec![("/timestamp", "timestamp_in_future")],
        ),
        (
            with(|v| v["timestamp"] = json!(1e15)),
            vec![("/timestamp", "epoch_out_of_range")],
        ),
        (
            with(|v| v["timestamp"] = json!(true)),
            vec![("/timestamp", "wrong_type")],
        ),
        (
            with(|v| v["sent_at"] = json!("soon")),
            vec![("/sent_at", "invalid_timestamp")],
        ),
        (
            with(|v| v["data"] = json!([1])),
            vec![("/data", "wrong_type")],
        ),
        (
            with(|v| v["data"] = json!({"host": "h", "path": "/", "d": deep.clone()})),
            vec![("/data", "too_deep")],
        ),
        (
            with(|v| v["data"] = Value::Object(many.clone())),
            vec![
                ("/data", "too_many_keys"),
                ("/data/host", "schema_required"),
                ("/data/path", "schema_required"),
            ],
        ),
        (
            with(|v| v["data"] = json!({"host": "h"})),
            vec![("/data/path", "schema_required")],
        ),
        (
            with(|v| v["data"]["host"] = json!(7)),
            vec![("/data/host", "schema_type")],
        ),
        (
            with(|v| v["value"] = json!("3")),
            vec![("/value", "wrong_type")],
        ),
        (
            with(|v| v["event_id"] = json!("not-a-uuid")),
            vec![("/event_id", "invalid_uuid")],
        ),
        (
            with(|v| v["event_id"] = json!(5)),
            vec![("/event_id", "wrong_type")],
        ),
        (
            with(|v| v["colour"] = json!("red")),
            vec![("/colour", "unknown_field")],
        ),
        (
            with(|v| v["a/b"] = json!(1)),
            vec![("/a~1b", "unknown_field")],
        ),
        (
            with(|v| v["name"] = json!("hover")),
            vec![("", "unknown_event_type")],
        ),
    ];
    for (input, want) in cases {
        let got = errors(&input);
        let got: Vec<(&str, &str)> = got.iter().map(|(f, c)| (f.as_str(), *c)).collect();
        assert_eq!(got, want, "input {input}");
    }
}

#[test]
fn sent_at_corrects_client_clock_skew() {
    // The client's clock is 1 h behind: it sent at 21:13:20 while the server received at 22:13:20.
    let v = with(|v| {
        v["timestamp"] = json!("2023-11-14T21:13:19Z");
        v["sent_at"] = json!("2023-11-14T21:13:20Z");
    });
    match one(&v) {
        Item::Accepted(ev) => {
            assert_eq!(
                ev.client_timestamp.to_rfc3339(),
                "2023-11-14T21:13:19.000000Z"
            );
            assert_eq!(ev.timestamp.to_rfc3339(), "2023-11-14T22:13:19.000000Z");
            assert_eq!(
                ev.sent_at.map(EventTime::to_rfc3339).as_deref(),
                Some("2023-11-14T21:13:20.000000Z")
            );
        }
        Item::Rejected(r) => panic!("{:?}", r.errors),
    }
    // Correction brings a far-future client time back into bounds, or out of them.
    let v = with(|v| {
        v["timestamp"] = json!("2023-11-20T00:00:00Z");
        v["sent_at"] = json!("2023-11-20T00:00:01Z");
    });
    assert!(matches!(one(&v), Item::Accepted(_)));
}

#[test]
fn unknown_types_follow_the_policy() {
    let v = with(|v| v["category"] = json!("machine"));
    let body = v.to_string();
    let rejected = run(body.as_bytes(), UnknownTypePolicy::Reject).expect("ok");
    assert!(matches!(&rejected[0], Item::Rejected(r) if r.errors[0].code == "unknown_event_type"));
    let accepted = run(body.as_bytes(), UnknownTypePolicy::Accept).expect("ok");
    assert!(matches!(&accepted[0], Item::Accepted(_)));
}

#[test]
fn a_batch_keeps_its_order_and_rejects_items_on_their_own() {
    let bad = with(|v| v["timestamp"] = json!("nope"));
    let big = with(|v| v["data"]["pad"] = json!("x".repeat(33 * 1024)));
    let body = json!([seed_event(), bad, 5, big, seed_event()]).to_string();
    let items = run(body.as_bytes(), UnknownTypePolicy::Reject).expect("ok");
    let kinds: Vec<&str> = items
        .iter()
        .map(|i| match i {
            Item::Accepted(_) => "accepted",
            Item::Rejected(r) => r.errors[0].static_code(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "accepted",
            "invalid_timestamp",
            "not_an_object",
            "event_too_large",
            "accepted"
        ]
    );
    // The raw text of a rejected item is kept exactly as received, with its hints.
    let raw_body = r#"[{"session_id":"s","category":"page_interaction","name":"page_view","data":{},  "timestamp":"x"}]"#;
    let items = run(raw_body.as_bytes(), UnknownTypePolicy::Reject).expect("ok");
    match &items[0] {
        Item::Rejected(r) => {
            assert_eq!(r.raw, &raw_body[1..raw_body.len() - 1]);
            assert_eq!(r.hints.session_id, "s");
            assert_eq!(r.hints.name, "page_view");
        }
        Item::Accepted(_) => panic!("must be rejected"),
    }
}

#[test]
fn request_level_errors() {
    let many = Value::Array(vec![seed_event(); 1_001]).to_string();
    let cases: Vec<(&[u8], &str)> = vec![
        (b"[]", "not_events"),
        (b"5", "not_events"),
        (b"\"event\"", "not_events"),
        (b"null", "not_events"),
        (b"", "malformed_json"),
        (b"{\"a\": }", "malformed_json"),
        (b"[1, 2", "malformed_json"),
        (many.as_bytes(), "too_many_events"),
    ];
    for (body, code) in cases {
        let err = run(body, UnknownTypePolicy::Reject).expect_err("must fail");
        assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn malformed_json_names_line_column_and_the_trailing_comma() {
    // The seeds' own example: a trailing comma after "path": "/".
    let body = "{\n\"session_id\": \"e2085be5\",\n\"category\": \"party\",\n\"name\": \"AppName\",\n\"data\": {\n\"host\": \"www.party.com\",\n\"path\": \"/\",\n},\n\"timestamp\": \"2021-09-26 09:15:27.243860\"\n}";
    match run(body.as_bytes(), UnknownTypePolicy::Reject) {
        Err(RequestError::MalformedJson {
            line,
            column,
            message,
        }) => {
            assert_eq!((line, column), (8, 1));
            assert!(message.contains("trailing comma"), "{message}");
            assert!(message.contains("remove the comma"), "{message}");
        }
        other => panic!("expected malformed JSON, got {other:?}"),
    }
}

#[test]
fn out_of_range_numbers_are_named() {
    let body = br#"[{"session_id": "s", "value": 1e400}]"#;
    let items = run(body, UnknownTypePolicy::Reject).expect("ok");
    match &items[0] {
        Item::Rejected(r) => {
            assert_eq!(r.errors[0].code, "invalid_json");
            assert!(
                r.errors[0].message.contains("number out of range"),
                "{}",
                r.errors[0].message
            );
        }
        Item::Accepted(_) => panic!("must be rejected"),
    }
}

#[test]
fn server_assigns_uuid_v7_when_absent() {
    match one(&seed_event()) {
        Item::Accepted(ev) => assert_eq!(ev.event_id.get_version_num(), 7),
        Item::Rejected(r) => panic!("{:?}", r.errors),
    }
}

#[test]
fn shape_counts_depth_and_keys() {
    let cases = [
        (json!({}), (1, 0)),
        (json!({"a": 1, "b": 2}), (1, 2)),
        (json!({"a": {"b": {"c": 1}}}), (3, 3)),
        (json!({"a": [{"b": 1}, {"c": [1, 2]}]}), (4, 3)),
    ];
    for (v, want) in cases {
        assert_eq!(shape(&v), want, "{v}");
    }
}

/// A replay of a quarantined text: items without an id take the one derived for their
/// place, items with one keep it, and parsing it twice gives the very same events (the
/// skew correction reads the original time of receipt).
#[test]
fn parse_again_is_deterministic_and_keeps_the_clients_ids() {
    let schemas = registry();
    let limits = Limits::default();
    let rules = Rules {
        limits: &limits,
        schemas: &schemas,
        unknown_types: UnknownTypePolicy::Reject,
    };
    let given = Uuid::from_u128(7);
    let body = json!([
        with(|v| v["sent_at"] = json!("2021-09-26 09:15:30")),
        with(|v| v["event_id"] = json!(given.to_string())),
        with(|v| v["data"] = json!({})),
    ])
    .to_string();
    let derived = |i: usize| Uuid::from_u128(100 + i as u128);
    let parse = || parse_again(body.as_bytes(), NOW, rules, derived).expect("items");
    let (first, second) = (parse(), parse());
    assert_eq!(first, second);
    let ids: Vec<Option<Uuid>> = first
        .iter()
        .map(|i| match i {
            Item::Accepted(ev) => Some(ev.event_id),
            Item::Rejected(_) => None,
        })
        .collect();
    assert_eq!(ids, [Some(Uuid::from_u128(100)), Some(given), None]);
    let Item::Accepted(ev) = &first[0] else {
        unreachable!()
    };
    assert_eq!(ev.received_at, NOW);
    assert!(matches!(
        parse_again(b"[{", NOW, rules, derived),
        Err(RequestError::MalformedJson { .. })
    ));
}
