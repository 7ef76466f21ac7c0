//! Property tests of the request parser, `parse_batch`: it never panics, whatever the body,
//! and it accepts an event exactly when every rule of the event contract holds.
//!
//! The oracle here is written from the contract, not from the parser: it restates each rule
//! as plain code over the generated inputs and never calls the parser's helpers
//! (`SessionId::parse`, `EventTime::parse`, `TimeBounds::check`, ...). Timestamps are
//! generated from known instants and written in one of the documented forms, so the oracle
//! knows the exact instant each one must be read as; the shipped schemas' requirements are
//! restated directly (`schema_verdict`).
//!
//! Generated cases are not persisted (`failure_persistence: None`): a failure prints its
//! minimal input instead of writing a regression file next to this one.
//!
//! Long by design: the oracle restates every rule of the contract next to the generators that exercise it.

use chrono::DateTime;
use eye_model::event::{parse_batch, Event, Item, Limits, Rejected, RequestError, Rules};
use eye_model::schema::{SchemaRegistry, UnknownTypePolicy};
use eye_model::time::EventTime;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value};
use std::ops::RangeInclusive;
use std::sync::OnceLock;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// The contract, restated
// ---------------------------------------------------------------------------------------

const SECOND: i64 = 1_000_000;
const DAY: i64 = 86_400 * SECOND;
/// 2023-11-14T22:13:20Z: the `received_at` of every request here.
const RECEIVED_US: i64 = 1_700_000_000 * SECOND;
const RECEIVED_AT: EventTime = EventTime::from_micros(RECEIVED_US);
/// 2000-01-01T00:00:00Z: the earliest event time accepted.
const EARLIEST_US: i64 = 946_684_800 * SECOND;
/// `received_at` plus the default 24 hours of future skew: the latest event time accepted.
const LATEST_US: i64 = RECEIVED_US + DAY;
/// 1906-08-16T20:26:40Z: the start of the generated far past.
const FAR_PAST_US: i64 = -2_000_000_000 * SECOND;
/// 2100-01-01T00:00:00Z: the end of the generated far future.
const YEAR_2100_US: i64 = 4_102_444_800 * SECOND;

const MAX_EVENT_BYTES: usize = 32 * 1024;
const MAX_SESSION_ID_CHARS: usize = 128;
const MAX_TYPE_CHARS: usize = 64;
const MAX_DATA_DEPTH: usize = 16;
const MAX_DATA_KEYS: usize = 1_000;

/// The fields an event may carry.
const FIELDS: [&str; 8] = [
    "event_id",
    "session_id",
    "category",
    "name",
    "data",
    "timestamp",
    "sent_at",
    "value",
];

/// The event types shipped in /schemas, whose `data` rules the oracle models. The machine
/// measurement types are shipped too; the generators never name them, so the oracle needs
/// no model of them.
const SHIPPED_TYPES: [(&str, &str); 3] = [
    ("page_interaction", "page_view"),
    ("page_interaction", "cta_click"),
    ("form_interaction", "submit"),
];

const POLICIES: [UnknownTypePolicy; 2] = [UnknownTypePolicy::Reject, UnknownTypePolicy::Accept];

/// Unicode general category Cc, which `char::is_control` also tests; spelled out here.
fn is_control(c: char) -> bool {
    matches!(u32::from(c), 0x00..=0x1f | 0x7f..=0x9f)
}

/// 1 to 128 characters, none of them a control character.
fn session_id_ok(s: &str) -> bool {
    let chars = s.chars().count();
    (1..=MAX_SESSION_ID_CHARS).contains(&chars) && !s.chars().any(is_control)
}

/// 1 to 64 characters: ASCII letters, digits, `_-.:/` and spaces, but no space at either end.
fn type_text_ok(s: &str) -> bool {
    let chars = s.chars().count();
    (1..=MAX_TYPE_CHARS).contains(&chars)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:/ ".contains(c))
        && !s.starts_with(' ')
        && !s.ends_with(' ')
}

/// Nesting depth: an object or array is one level more than its deepest child.
fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Keys of every object, at any level (inside arrays too).
fn key_count(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.len() + m.values().map(key_count).sum::<usize>(),
        Value::Array(items) => items.iter().map(key_count).sum(),
        _ => 0,
    }
}

/// The shipped schemas restated: `Some(satisfied)` for a shipped type, `None` for others.
fn schema_verdict(category: &str, name: &str, data: &Map<String, Value>) -> Option<bool> {
    let text = |k: &str| matches!(data.get(k), Some(Value::String(s)) if !s.is_empty());
    let page = text("host") && text("path");
    match (category, name) {
        ("page_interaction", "page_view") => Some(page),
        ("page_interaction", "cta_click") => Some(page && text("element")),
        ("form_interaction", "submit") => {
            Some(page && matches!(data.get("form"), Some(Value::Object(_))))
        }
        _ => None,
    }
}

/// RFC 6901: the pointer to a top-level key.
fn pointer_to(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

// ---------------------------------------------------------------------------------------
// Running the parser
// ---------------------------------------------------------------------------------------

fn shipped_schemas() -> &'static SchemaRegistry {
    static REGISTRY: OnceLock<SchemaRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas"));
        SchemaRegistry::load(dir).expect("the shipped schemas load")
    })
}

fn parse(
    body: &[u8],
    policy: UnknownTypePolicy,
    limits: &Limits,
) -> Result<Vec<Item>, RequestError> {
    parse_batch(
        body,
        RECEIVED_AT,
        Rules {
            limits,
            schemas: shipped_schemas(),
            unknown_types: policy,
        },
    )
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every error of a rejected item is a JSON Pointer into the item (or `""`, the item).
fn check_rejected(r: &Rejected) -> Result<(), TestCaseError> {
    prop_assert!(!r.errors.is_empty(), "rejected without an error: {}", r.raw);
    for e in &r.errors {
        prop_assert!(
            e.field.is_empty() || e.field.starts_with('/'),
            "field {:?} of {:?} is not a JSON Pointer",
            e.field,
            e
        );
    }
    Ok(())
}

/// The rules that can be checked on an accepted event alone, whatever the input was.
fn check_accepted(ev: &Event, policy: UnknownTypePolicy) -> Result<(), TestCaseError> {
    prop_assert!(session_id_ok(ev.session_id.as_str()), "{:?}", ev.session_id);
    prop_assert!(type_text_ok(ev.category.as_str()), "{:?}", ev.category);
    prop_assert!(type_text_ok(ev.name.as_str()), "{:?}", ev.name);
    prop_assert_eq!(ev.received_at, RECEIVED_AT);
    let t = ev.timestamp.as_micros();
    prop_assert!(
        (EARLIEST_US..=LATEST_US).contains(&t),
        "accepted timestamp {} out of bounds",
        ev.timestamp
    );
    let corrected = match ev.sent_at {
        None => ev.client_timestamp.as_micros(),
        Some(sent) => ev.client_timestamp.as_micros() + (RECEIVED_US - sent.as_micros()),
    };
    prop_assert_eq!(t, corrected, "timestamp is client time + (received - sent)");
    let data = Value::Object(ev.data.clone());
    prop_assert!(depth(&data) <= MAX_DATA_DEPTH, "accepted data too deep");
    prop_assert!(
        key_count(&data) <= MAX_DATA_KEYS,
        "accepted data with too many keys"
    );
    prop_assert!(ev.value.is_none_or(f64::is_finite));
    let verdict = schema_verdict(ev.category.as_str(), ev.name.as_str(), &ev.data);
    match policy {
        UnknownTypePolicy::Reject => prop_assert_eq!(verdict, Some(true), "{:?}", ev),
        UnknownTypePolicy::Accept => prop_assert_ne!(verdict, Some(false), "{:?}", ev),
    }
    Ok(())
}

/// An accepted event carries the values of the JSON item it came from.
fn check_accepted_matches(ev: &Event, item: &Value) -> Result<(), TestCaseError> {
    let Value::Object(obj) = item else {
        return Err(TestCaseError::fail(format!(
            "accepted a non-object: {item}"
        )));
    };
    for key in obj.keys() {
        prop_assert!(
            FIELDS.contains(&key.as_str()),
            "accepted unknown field {:?}",
            key
        );
    }
    prop_assert_eq!(obj.get("session_id"), Some(&json!(ev.session_id.as_str())));
    prop_assert_eq!(obj.get("category"), Some(&json!(ev.category.as_str())));
    prop_assert_eq!(obj.get("name"), Some(&json!(ev.name.as_str())));
    prop_assert_eq!(obj.get("data"), Some(&Value::Object(ev.data.clone())));
    prop_assert!(obj.get("timestamp").is_some_and(|t| !t.is_null()));
    let value = obj.get("value").filter(|v| !v.is_null()).map(Value::as_f64);
    prop_assert_eq!(value, ev.value.map(Some));
    Ok(())
}

/// What must hold for any body: a request error, or one outcome per item where every
/// rejection names its fields by JSON Pointer and every accepted event obeys the rules.
fn check_any(
    body: &[u8],
    policy: UnknownTypePolicy,
    limits: &Limits,
    result: &Result<Vec<Item>, RequestError>,
) -> Result<(), TestCaseError> {
    let Ok(items) = result else {
        return Ok(());
    };
    prop_assert!(!items.is_empty());
    prop_assert!(items.len() <= limits.max_batch_events);
    let values = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(values)) => Some(values),
        Ok(v @ Value::Object(_)) => Some(vec![v]),
        _ => None,
    };
    if let Some(values) = &values {
        prop_assert_eq!(values.len(), items.len());
    }
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Rejected(r) => check_rejected(r)?,
            Item::Accepted(ev) => {
                check_accepted(ev, policy)?;
                if let Some(values) = &values {
                    check_accepted_matches(ev, &values[i])?;
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Generated fields
// ---------------------------------------------------------------------------------------

/// A text field (`session_id`, `category`, `name`) as generated.
#[derive(Debug, Clone)]
enum StrField {
    Absent,
    Null,
    Str(String),
    /// JSON text of a value that is not a string.
    Other(&'static str),
}

impl StrField {
    fn json(&self) -> Option<String> {
        match self {
            Self::Absent => None,
            Self::Null => Some("null".into()),
            Self::Str(s) => Some(json_string(s)),
            Self::Other(raw) => Some((*raw).into()),
        }
    }
}

/// A time field (`timestamp`, `sent_at`) as generated.
#[derive(Debug, Clone)]
enum TimeField {
    Absent,
    Null,
    /// Written in a documented form that must be read as exactly `us`.
    At {
        json: String,
        us: i64,
    },
    /// JSON text that is no readable time (garbage text, out-of-range number, wrong type).
    Bad(String),
}

impl TimeField {
    fn json(&self) -> Option<String> {
        match self {
            Self::Absent => None,
            Self::Null => Some("null".into()),
            Self::At { json, .. } | Self::Bad(json) => Some(json.clone()),
        }
    }
}

#[derive(Debug, Clone)]
enum DataField {
    Absent,
    Json(Value),
}

#[derive(Debug, Clone)]
enum NumField {
    Absent,
    Null,
    Number { json: String, value: f64 },
    Bad(&'static str),
}

#[derive(Debug, Clone)]
enum IdField {
    Absent,
    Null,
    Uuid { json: String, id: Uuid },
    Bad(String),
}

#[derive(Debug, Clone)]
struct GenEvent {
    session_id: StrField,
    category: StrField,
    name: StrField,
    timestamp: TimeField,
    sent_at: TimeField,
    data: DataField,
    value: NumField,
    event_id: IdField,
    /// A field outside the contract: key and JSON text.
    extra: Option<(String, &'static str)>,
    /// Position of each of the nine slots above in the written object.
    order: Vec<usize>,
    spaced: bool,
}

impl GenEvent {
    fn render(&self) -> String {
        let mut members: Vec<(usize, String, String)> = Vec::new();
        let fields = [
            ("session_id", self.session_id.json()),
            ("category", self.category.json()),
            ("name", self.name.json()),
            ("timestamp", self.timestamp.json()),
            ("sent_at", self.sent_at.json()),
            (
                "data",
                match &self.data {
                    DataField::Absent => None,
                    DataField::Json(v) => Some(v.to_string()),
                },
            ),
            (
                "value",
                match &self.value {
                    NumField::Absent => None,
                    NumField::Null => Some("null".into()),
                    NumField::Number { json, .. } => Some(json.clone()),
                    NumField::Bad(raw) => Some((*raw).into()),
                },
            ),
            (
                "event_id",
                match &self.event_id {
                    IdField::Absent => None,
                    IdField::Null => Some("null".into()),
                    IdField::Uuid { json, .. } | IdField::Bad(json) => Some(json.clone()),
                },
            ),
        ];
        for (slot, (key, json)) in fields.into_iter().enumerate() {
            if let Some(json) = json {
                members.push((slot, key.to_owned(), json));
            }
        }
        if let Some((key, json)) = &self.extra {
            members.push((8, key.clone(), (*json).to_owned()));
        }
        members.sort_by_key(|(slot, ..)| self.order[*slot]);
        let (colon, comma) = if self.spaced {
            (": ", ", ")
        } else {
            (":", ",")
        };
        let members: Vec<String> = members
            .iter()
            .map(|(_, key, json)| format!("{}{colon}{json}", json_string(key)))
            .collect();
        format!("{{{}}}", members.join(comma))
    }
}

#[derive(Debug, Clone)]
enum GenItem {
    Event(Box<GenEvent>),
    /// JSON text of an item that is not an object.
    NotAnObject(&'static str),
}

#[derive(Debug, Clone)]
struct GenBatch {
    items: Vec<GenItem>,
    /// A single event sent as a bare object rather than in an array.
    bare: bool,
    separator: &'static str,
}

impl GenBatch {
    /// The body and the exact text of each item in it.
    fn render(&self) -> (String, Vec<String>) {
        let texts: Vec<String> = self
            .items
            .iter()
            .map(|item| match item {
                GenItem::Event(ev) => ev.render(),
                GenItem::NotAnObject(raw) => (*raw).to_owned(),
            })
            .collect();
        let body = match self.items.as_slice() {
            [GenItem::Event(_)] if self.bare => texts[0].clone(),
            _ => format!("[{}]", texts.join(self.separator)),
        };
        (body, texts)
    }
}

// ---------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------

/// What an accepted event must carry.
#[derive(Debug)]
struct Expected {
    session_id: String,
    category: String,
    name: String,
    client_us: i64,
    sent_us: Option<i64>,
    timestamp_us: i64,
    data: Map<String, Value>,
    value: Option<f64>,
    /// `None`: none given, the server assigns a UUIDv7.
    event_id: Option<Uuid>,
}

/// A broken rule and where it must be reported: at the pointer `at`, or at or below it
/// when `below` is set (schema violations point inside `/data`).
#[derive(Debug)]
struct Broken {
    at: String,
    below: bool,
    rule: &'static str,
}

fn broken(at: &str, rule: &'static str) -> Broken {
    Broken {
        at: at.to_owned(),
        below: false,
        rule,
    }
}

fn required_text(
    field: &StrField,
    at: &str,
    ok: fn(&str) -> bool,
    out: &mut Vec<Broken>,
) -> Option<String> {
    match field {
        StrField::Str(s) if ok(s) => Some(s.clone()),
        StrField::Str(_) => {
            out.push(broken(at, "text breaks its rule"));
            None
        }
        StrField::Absent | StrField::Null => {
            out.push(broken(at, "required"));
            None
        }
        StrField::Other(_) => {
            out.push(broken(at, "must be a string"));
            None
        }
    }
}

/// Decides from the generated inputs alone whether the event, written as `text`, meets
/// every rule.
fn oracle(ev: &GenEvent, text: &str, policy: UnknownTypePolicy) -> Result<Expected, Vec<Broken>> {
    if text.len() > MAX_EVENT_BYTES {
        return Err(vec![broken("", "event larger than 32 KiB")]);
    }
    let mut out = Vec::new();
    let session_id = required_text(&ev.session_id, "/session_id", session_id_ok, &mut out);
    let category = required_text(&ev.category, "/category", type_text_ok, &mut out);
    let name = required_text(&ev.name, "/name", type_text_ok, &mut out);

    let client = match &ev.timestamp {
        TimeField::At { us, .. } => Some(*us),
        TimeField::Absent | TimeField::Null => {
            out.push(broken("/timestamp", "required"));
            None
        }
        TimeField::Bad(_) => {
            out.push(broken("/timestamp", "not a readable time"));
            None
        }
    };
    let sent = match &ev.sent_at {
        TimeField::Absent | TimeField::Null => Some(None),
        TimeField::At { us, .. } => Some(Some(*us)),
        TimeField::Bad(_) => {
            out.push(broken("/sent_at", "not a readable time"));
            None
        }
    };
    let timestamp = match (client, sent) {
        (Some(client), Some(sent)) => {
            // Clock-skew correction: timestamp + (received_at - sent_at).
            let t = sent.map_or(client, |sent| client + (RECEIVED_US - sent));
            if (EARLIEST_US..=LATEST_US).contains(&t) {
                Some(t)
            } else {
                out.push(broken(
                    "/timestamp",
                    "outside 2000-01-01 .. received_at + 24 h",
                ));
                None
            }
        }
        _ => None,
    };

    let data = match &ev.data {
        DataField::Json(Value::Object(m)) => {
            let whole = Value::Object(m.clone());
            if depth(&whole) > MAX_DATA_DEPTH {
                out.push(broken("/data", "nests deeper than 16"));
            }
            if key_count(&whole) > MAX_DATA_KEYS {
                out.push(broken("/data", "more than 1000 keys"));
            }
            Some(m)
        }
        DataField::Absent | DataField::Json(Value::Null) => {
            out.push(broken("/data", "required"));
            None
        }
        DataField::Json(_) => {
            out.push(broken("/data", "must be an object"));
            None
        }
    };
    let value = match &ev.value {
        NumField::Absent | NumField::Null => Some(None),
        NumField::Number { value, .. } => Some(Some(*value)),
        NumField::Bad(_) => {
            out.push(broken("/value", "must be a number"));
            None
        }
    };
    let event_id = match &ev.event_id {
        IdField::Absent | IdField::Null => Some(None),
        IdField::Uuid { id, .. } => Some(Some(*id)),
        IdField::Bad(_) => {
            out.push(broken("/event_id", "must be a UUID string"));
            None
        }
    };
    if let Some((key, _)) = &ev.extra {
        out.push(broken(&pointer_to(key), "unknown field"));
    }
    if let (Some(category), Some(name), Some(data)) = (&category, &name, data) {
        match schema_verdict(category, name, data) {
            Some(true) => {}
            Some(false) => out.push(Broken {
                at: "/data".into(),
                below: true,
                rule: "data breaks its type's schema",
            }),
            None if policy == UnknownTypePolicy::Reject => {
                out.push(broken("", "unknown event type"));
            }
            None => {}
        }
    }

    let (
        Some(session_id),
        Some(category),
        Some(name),
        Some(client_us),
        Some(sent_us),
        Some(timestamp_us),
        Some(data),
        Some(value),
        Some(event_id),
    ) = (
        session_id, category, name, client, sent, timestamp, data, value, event_id,
    )
    else {
        assert!(
            !out.is_empty(),
            "oracle bug: a field failed without a reason"
        );
        return Err(out);
    };
    if !out.is_empty() {
        return Err(out);
    }
    Ok(Expected {
        session_id,
        category,
        name,
        client_us,
        sent_us,
        timestamp_us,
        data: data.clone(),
        value,
        event_id,
    })
}

fn check_item(
    item: &Item,
    generated: &GenItem,
    text: &str,
    policy: UnknownTypePolicy,
) -> Result<(), TestCaseError> {
    let ev = match generated {
        GenItem::NotAnObject(_) => {
            let Item::Rejected(r) = item else {
                return Err(TestCaseError::fail(format!("accepted non-object {text}")));
            };
            check_rejected(r)?;
            prop_assert!(r.errors.iter().any(|e| e.field.is_empty()));
            return Ok(());
        }
        GenItem::Event(ev) => ev,
    };
    match (oracle(ev, text, policy), item) {
        (Ok(want), Item::Accepted(got)) => {
            prop_assert_eq!(got.session_id.as_str(), want.session_id.as_str());
            prop_assert_eq!(got.category.as_str(), want.category.as_str());
            prop_assert_eq!(got.name.as_str(), want.name.as_str());
            prop_assert_eq!(
                got.client_timestamp.as_micros(),
                want.client_us,
                "client timestamp of {}",
                text
            );
            prop_assert_eq!(got.sent_at.map(EventTime::as_micros), want.sent_us);
            prop_assert_eq!(got.timestamp.as_micros(), want.timestamp_us);
            prop_assert_eq!(got.received_at, RECEIVED_AT);
            prop_assert_eq!(&got.data, &want.data);
            prop_assert_eq!(got.value, want.value);
            match want.event_id {
                Some(id) => prop_assert_eq!(got.event_id, id),
                None => prop_assert_eq!(got.event_id.get_version_num(), 7),
            }
            check_accepted(got, policy)
        }
        (Err(reasons), Item::Rejected(r)) => {
            check_rejected(r)?;
            prop_assert_eq!(r.raw.as_str(), text, "raw text kept exactly");
            for reason in &reasons {
                let reported = r.errors.iter().any(|e| {
                    if reason.below {
                        e.field == reason.at || e.field.starts_with(&format!("{}/", reason.at))
                    } else {
                        e.field == reason.at
                    }
                });
                prop_assert!(
                    reported,
                    "broken rule ({}) not reported at {:?}; errors {:?}; event {}",
                    reason.rule,
                    reason.at,
                    r.errors,
                    text
                );
            }
            Ok(())
        }
        (Ok(want), Item::Rejected(r)) => Err(TestCaseError::fail(format!(
            "the rules allow this event but it was rejected ({policy:?})\n  event: {text}\n  errors: {:?}\n  expected: {want:?}",
            r.errors
        ))),
        (Err(reasons), Item::Accepted(got)) => Err(TestCaseError::fail(format!(
            "accepted an event that breaks {reasons:?} ({policy:?})\n  event: {text}\n  got: {got:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn printable_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range(' ', '~'),
        2 => any::<char>().prop_filter("a control character", |c| !is_control(*c)),
        1 => select(&['é', 'ß', '日', '😀', '\u{a0}', '\u{200b}', '\u{2028}', '\u{feff}'][..]),
    ]
}

fn printable(len: RangeInclusive<usize>) -> impl Strategy<Value = String> {
    vec(printable_char(), len).prop_map(String::from_iter)
}

fn control_char() -> impl Strategy<Value = char> {
    prop_oneof![
        proptest::char::range('\0', '\u{1f}'),
        proptest::char::range('\u{7f}', '\u{9f}'),
        select(&['\0', '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}'][..]),
    ]
}

fn wrong_type() -> impl Strategy<Value = &'static str> {
    select(
        &[
            "42",
            "-1.5",
            "true",
            "false",
            "[]",
            "[\"a\"]",
            "{}",
            "{\"a\":1}",
        ][..],
    )
}

fn session_id() -> impl Strategy<Value = StrField> {
    prop_oneof![
        16 => printable(1..=MAX_SESSION_ID_CHARS).prop_map(StrField::Str),
        2 => printable(MAX_SESSION_ID_CHARS..=MAX_SESSION_ID_CHARS + 1).prop_map(StrField::Str),
        1 => Just(StrField::Str(String::new())),
        1 => printable(MAX_SESSION_ID_CHARS + 1..=300).prop_map(StrField::Str),
        1 => (printable(0..=40), control_char(), printable(0..=40))
            .prop_map(|(a, c, b)| StrField::Str(format!("{a}{c}{b}"))),
        1 => wrong_type().prop_map(StrField::Other),
        1 => Just(StrField::Null),
        1 => Just(StrField::Absent),
    ]
}

/// Text that meets the type rule: 1 to 64 allowed characters, no space at either end.
fn type_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:/-]([A-Za-z0-9_.:/ -]{0,62}[A-Za-z0-9_.:/-])?"
}

fn type_field(known: &'static [&'static str]) -> impl Strategy<Value = StrField> {
    let bad_char = select(
        &[
            '!', '#', '"', '\\', '+', '@', ',', '{', 'é', '日', '\t', '\n', '\0', '\u{a0}',
        ][..],
    );
    prop_oneof![
        6 => select(known).prop_map(|s| StrField::Str(s.to_owned())),
        4 => type_text().prop_map(StrField::Str),
        1 => Just(StrField::Str(String::new())),
        1 => "[a-z_]{65,90}".prop_map(StrField::Str),
        1 => (type_text(), bad_char, type_text())
            .prop_map(|(a, c, b)| StrField::Str(format!("{a}{c}{b}"))),
        1 => (type_text(), 0..3)
            .prop_map(|(s, at)| StrField::Str(match at {
                0 => format!(" {s}"),
                1 => format!("{s} "),
                _ => format!(" {s} "),
            })),
        1 => wrong_type().prop_map(StrField::Other),
        1 => prop_oneof![Just(StrField::Null), Just(StrField::Absent)],
    ]
}

fn type_pair() -> impl Strategy<Value = (StrField, StrField)> {
    prop_oneof![
        3 => select(&SHIPPED_TYPES[..])
            .prop_map(|(c, n)| (StrField::Str(c.into()), StrField::Str(n.into()))),
        2 => (
            type_field(&["page_interaction", "form_interaction", "Page_Interaction", "machine", "form interaction"]),
            type_field(&["page_view", "cta_click", "submit", "hover", "AppName", "page view"]),
        ),
    ]
}

/// A zone suffix, with the offset in minutes east of UTC where it has one.
#[derive(Debug, Clone, Copy)]
enum Zone {
    /// No zone: UTC.
    Bare,
    Z,
    LowerZ,
    /// `±hh:mm`
    Colon(i64),
    /// `±hhmm`
    Compact(i64),
    /// `±hh`
    Hours(i64),
}

impl Zone {
    fn offset_minutes(self) -> i64 {
        match self {
            Self::Bare | Self::Z | Self::LowerZ => 0,
            Self::Colon(m) | Self::Compact(m) => m,
            Self::Hours(h) => h * 60,
        }
    }

    fn suffix(self) -> String {
        let m = self.offset_minutes();
        let sign = if m < 0 { '-' } else { '+' };
        let (h, mm) = (m.abs() / 60, m.abs() % 60);
        match self {
            Self::Bare => String::new(),
            Self::Z => "Z".into(),
            Self::LowerZ => "z".into(),
            Self::Colon(_) => format!("{sign}{h:02}:{mm:02}"),
            Self::Compact(_) => format!("{sign}{h:02}{mm:02}"),
            Self::Hours(_) => format!("{sign}{h:02}"),
        }
    }
}

/// A documented way to write an instant.
#[derive(Debug, Clone)]
enum TimeForm {
    /// `YYYY-MM-DD` sep `HH:MM:SS` [`.` digits] [zone], surrounded by `pad`. `extra` gives
    /// the digits past the sixth, which must be truncated.
    Text {
        sep: char,
        digits: usize,
        extra: u32,
        zone: Zone,
        pad: &'static str,
    },
    /// `YYYY-MM-DDT23:59:60Z`: the first instant of the next day.
    LeapSecond,
    EpochSeconds,
    EpochMillis,
    /// `seconds.micros`, trailing zeros trimmed when `trim`.
    EpochSecondsFraction {
        trim: bool,
    },
    /// `millis.micros`
    EpochMillisFraction,
}

fn micros_to_text(us: i64, sep: char) -> (String, String, i64) {
    let dt = DateTime::from_timestamp_micros(us)
        .expect("generated instants are in chrono's range")
        .naive_utc();
    (
        dt.format("%Y-%m-%d").to_string(),
        format!("{sep}{}", dt.format("%H:%M:%S")),
        us.rem_euclid(SECOND),
    )
}

/// Writes `us` in `form`: the JSON text and the instant it must be read as (`us`, or `us`
/// truncated to what the form can carry).
fn render_time(us: i64, form: &TimeForm) -> (String, i64) {
    match *form {
        TimeForm::Text {
            sep,
            digits,
            extra,
            zone,
            pad,
        } => {
            let unit = 10_i64.pow(6 - digits.min(6) as u32);
            let t = us.div_euclid(unit) * unit;
            let local = t + zone.offset_minutes() * 60 * SECOND;
            let (date, time, micros) = micros_to_text(local, sep);
            let mut s = format!("{date}{time}");
            if digits > 0 {
                let micros = format!("{micros:06}");
                s.push('.');
                s.push_str(&micros[..digits.min(6)]);
                if digits > 6 {
                    s.push_str(&format!("{extra:03}")[..digits - 6]);
                }
            }
            s.push_str(&zone.suffix());
            (json_string(&format!("{pad}{s}{pad}")), t)
        }
        TimeForm::LeapSecond => {
            let next_day = us.div_euclid(DAY) * DAY;
            let (date, time, _) = micros_to_text(next_day - SECOND, 'T');
            assert_eq!(time, "T23:59:59");
            (json_string(&format!("{date}T23:59:60Z")), next_day)
        }
        TimeForm::EpochSeconds => {
            let s = us.div_euclid(SECOND);
            (s.to_string(), s * SECOND)
        }
        TimeForm::EpochMillis => {
            let ms = us.div_euclid(1_000);
            // Below 1e11 a number is read as seconds: write seconds then.
            if ms.abs() < 100_000_000_000 {
                return render_time(us, &TimeForm::EpochSeconds);
            }
            (ms.to_string(), ms * 1_000)
        }
        TimeForm::EpochSecondsFraction { trim } => {
            if us < 0 {
                return render_time(us, &TimeForm::EpochSeconds);
            }
            let mut fraction = format!("{:06}", us % SECOND);
            if trim {
                while fraction.len() > 1 && fraction.ends_with('0') {
                    fraction.pop();
                }
            }
            (format!("{}.{fraction}", us / SECOND), us)
        }
        TimeForm::EpochMillisFraction => {
            if us / 1_000 < 100_000_000_000 {
                return render_time(us, &TimeForm::EpochSecondsFraction { trim: false });
            }
            (format!("{}.{:03}", us / 1_000, us % 1_000), us)
        }
    }
}

fn zone() -> impl Strategy<Value = Zone> {
    let minutes = -(23 * 60 + 59)..=(23_i64 * 60 + 59);
    prop_oneof![
        2 => Just(Zone::Bare),
        2 => Just(Zone::Z),
        1 => Just(Zone::LowerZ),
        2 => minutes.clone().prop_map(Zone::Colon),
        1 => minutes.prop_map(Zone::Compact),
        1 => (-23_i64..=23).prop_map(Zone::Hours),
    ]
}

fn time_form() -> impl Strategy<Value = TimeForm> {
    prop_oneof![
        8 => (
            select(&['T', 't', ' '][..]),
            0_usize..=9,
            0_u32..1_000,
            zone(),
            select(&["", "", "", " ", "\t", "\n ", "  "][..]),
        )
            .prop_map(|(sep, digits, extra, zone, pad)| TimeForm::Text {
                sep,
                digits,
                extra,
                zone,
                pad,
            }),
        1 => Just(TimeForm::LeapSecond),
        2 => Just(TimeForm::EpochSeconds),
        2 => Just(TimeForm::EpochMillis),
        1 => any::<bool>().prop_map(|trim| TimeForm::EpochSecondsFraction { trim }),
        1 => Just(TimeForm::EpochMillisFraction),
    ]
}

/// Instants around the accepted window and its two ends.
fn instant() -> impl Strategy<Value = i64> {
    prop_oneof![
        16 => EARLIEST_US..=LATEST_US,
        2 => FAR_PAST_US..EARLIEST_US,
        2 => (LATEST_US + 1)..=YEAR_2100_US,
        1 => select(&[EARLIEST_US, EARLIEST_US - 1, LATEST_US, LATEST_US + 1, RECEIVED_US][..]),
        1 => (LATEST_US - 5 * SECOND)..=(LATEST_US + 5 * SECOND),
        1 => (EARLIEST_US - 5 * SECOND)..=(EARLIEST_US + 5 * SECOND),
    ]
}

fn readable_time(instants: impl Strategy<Value = i64>) -> impl Strategy<Value = TimeField> {
    prop_oneof![
        12 => (instants, time_form()).prop_map(|(us, form)| {
            let (json, us) = render_time(us, &form);
            TimeField::At { json, us }
        }),
        // Epoch numbers at the edges of the seconds/milliseconds ranges.
        1 => select(&[
            ("99999999999", 99_999_999_999 * SECOND),
            ("-99999999999", -99_999_999_999 * SECOND),
            ("100000000000", 100_000_000_000_000),
            ("99999999999999", 99_999_999_999_999_000),
            ("946684800", EARLIEST_US),
            ("946684799", EARLIEST_US - SECOND),
        ][..])
        .prop_map(|(json, us)| TimeField::At { json: json.into(), us }),
    ]
}

/// JSON that is no readable time.
fn unreadable_time() -> impl Strategy<Value = TimeField> {
    let text = select(
        &[
            "",
            "   ",
            "yesterday",
            "now",
            "2021-09-26",
            "2021-09-26T09:15Z",
            "2021-09-26T09:15",
            "2021-02-30T00:00:00Z",
            "2021-09-26T25:00:00Z",
            "2021-9-26T09:15:27Z",
            "21-09-26T09:15:27Z",
            "20210926T091527Z",
            "2021-09-26X09:15:27Z",
            "2021-09-26  09:15:27",
            "2021-09-26T09:15:27.Z",
            "2021-09-26T09:15:27.1234567890Z",
            "2021-09-26 09:15:27.2438601234",
            "2021-09-26T09:15:27+24:00",
            "1632647727",
        ][..],
    );
    let number = select(
        &[
            "100000000000000",
            "-100000000000000",
            "1e14",
            "100000000000000.0",
            "1e15",
            "1.7e15",
            "-1e16",
            "1e300",
            "1700000000000000",
            "1700000000000000000",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
        ][..],
    );
    prop_oneof![
        4 => text.prop_map(|s| TimeField::Bad(json_string(s))),
        2 => "[a-zA-Z ]{1,12}".prop_map(|s| TimeField::Bad(json_string(&s))),
        2 => number.prop_map(|s| TimeField::Bad(s.into())),
        1 => (100_000_000_000_000_i64..=i64::MAX).prop_map(|n| TimeField::Bad(n.to_string())),
        1 => (i64::MIN..=-100_000_000_000_000).prop_map(|n| TimeField::Bad(n.to_string())),
        2 => select(&["true", "false", "[]", "{}", "[1700000000]", "{\"t\":1}"][..])
            .prop_map(|s| TimeField::Bad(s.into())),
    ]
}

fn timestamp() -> impl Strategy<Value = TimeField> {
    prop_oneof![
        16 => readable_time(instant()),
        2 => unreadable_time(),
        1 => Just(TimeField::Null),
        1 => Just(TimeField::Absent),
    ]
}

fn sent_at() -> impl Strategy<Value = TimeField> {
    let near = (RECEIVED_US - 30 * DAY)..=(RECEIVED_US + 30 * DAY);
    prop_oneof![
        10 => Just(TimeField::Absent),
        1 => Just(TimeField::Null),
        5 => readable_time(prop_oneof![3 => near, 1 => instant()]),
        1 => unreadable_time(),
    ]
}

/// A property of a shipped schema (`host`, `path`, `element`): `None` is absent.
fn schema_text() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        24 => printable(1..=20).prop_map(|s| Some(Value::String(s))),
        1 => Just(Some(json!(""))),
        1 => select(&[0_u8, 1, 2, 3][..]).prop_map(|i| Some(match i {
            0 => json!(7),
            1 => Value::Null,
            2 => json!(true),
            _ => json!(["a"]),
        })),
        1 => Just(None),
    ]
}

fn form() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        14 => vec(("[a-z_]{1,10}", printable(0..=10)), 0..5)
            .prop_map(|kv| Some(Value::Object(kv.into_iter().map(|(k, v)| (k, json!(v))).collect()))),
        1 => Just(Some(json!("form"))),
        1 => Just(Some(json!([{}]))),
        1 => Just(Some(Value::Null)),
        2 => Just(None),
    ]
}

/// A `data` object: the schema properties, extra properties, and optionally a deep chain
/// of containers or about a thousand padding keys.
fn data_object() -> impl Strategy<Value = Map<String, Value>> {
    (
        schema_text(),
        schema_text(),
        prop_oneof![3 => schema_text(), 1 => Just(None)],
        form(),
        vec(
            (
                "x_[a-z]{1,6}",
                prop_oneof![Just(json!(1)), Just(json!("v")), Just(json!([1, 2]))],
            ),
            0..3,
        ),
        prop_oneof![
            16 => Just(Vec::new()),
            3 => vec(any::<bool>(), 1..=14),
            1 => vec(any::<bool>(), 15..=20),
        ],
        prop_oneof![30 => Just(0_usize), 1 => 990_usize..=1_000],
    )
        .prop_map(|(host, path, element, form, extras, nest, pad)| {
            let mut m = Map::new();
            for (key, v) in [
                ("host", host),
                ("path", path),
                ("element", element),
                ("form", form),
            ] {
                if let Some(v) = v {
                    m.insert(key.into(), v);
                }
            }
            for (key, v) in extras {
                m.insert(key, v);
            }
            if !nest.is_empty() {
                // Each level an object or an array; the innermost holds a number.
                let chain = nest.iter().rev().fold(json!(1), |inner, &object| {
                    if object {
                        json!({ "n": inner })
                    } else {
                        json!([inner])
                    }
                });
                m.insert("nest".into(), chain);
            }
            for i in 0..pad {
                m.insert(format!("k{i:04}"), json!(i));
            }
            m
        })
}

fn data() -> impl Strategy<Value = DataField> {
    prop_oneof![
        16 => data_object().prop_map(|m| DataField::Json(Value::Object(m))),
        1 => select(&[0_u8, 1, 2, 3, 4][..]).prop_map(|i| DataField::Json(match i {
            0 => json!([1]),
            1 => json!([]),
            2 => json!("data"),
            3 => json!(3),
            _ => json!(true),
        })),
        1 => Just(DataField::Json(Value::Null)),
        1 => Just(DataField::Absent),
    ]
}

fn value() -> impl Strategy<Value = NumField> {
    prop_oneof![
        6 => Just(NumField::Absent),
        1 => Just(NumField::Null),
        2 => any::<i64>().prop_map(|i| NumField::Number { json: i.to_string(), value: i as f64 }),
        1 => any::<u64>().prop_map(|u| NumField::Number { json: u.to_string(), value: u as f64 }),
        3 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| NumField::Number {
                json: serde_json::to_string(&f).expect("a finite number serializes"),
                value: f,
            }),
        1 => select(&["\"3\"", "\"\"", "\"NaN\"", "true", "[]", "{}", "[1]"][..]).prop_map(NumField::Bad),
    ]
}

fn event_id() -> impl Strategy<Value = IdField> {
    let valid = (any::<u128>(), any::<bool>()).prop_map(|(n, upper)| {
        let id = Uuid::from_u128(n);
        let s = id.hyphenated().to_string();
        let s = if upper { s.to_uppercase() } else { s };
        IdField::Uuid {
            json: json_string(&s),
            id,
        }
    });
    // A hyphenated UUID with one character replaced by 'g' or dropped: no UUID form.
    let broken = (any::<u128>(), any::<Index>(), any::<bool>()).prop_map(|(n, at, drop)| {
        let mut chars: Vec<char> = Uuid::from_u128(n)
            .hyphenated()
            .to_string()
            .chars()
            .collect();
        let i = at.index(chars.len());
        if drop {
            chars.remove(i);
        } else {
            chars[i] = 'g';
        }
        IdField::Bad(json_string(&String::from_iter(chars)))
    });
    prop_oneof![
        5 => Just(IdField::Absent),
        1 => Just(IdField::Null),
        5 => valid,
        1 => broken,
        1 => select(&["\"\"", "\"not-a-uuid\"", "5", "true", "{}", "[]"][..])
            .prop_map(|s| IdField::Bad(s.into())),
    ]
}

fn extra_field() -> impl Strategy<Value = Option<(String, &'static str)>> {
    let key = prop_oneof![
        "[a-z_]{1,12}",
        "[a-zA-Z/~_]{0,8}",
        select(
            &[
                "Session_id",
                "eventId",
                "timeStamp",
                "data ",
                " name",
                "/",
                "~1"
            ][..]
        )
        .prop_map(String::from),
    ]
    .prop_filter("a known field", |k| !FIELDS.contains(&k.as_str()));
    prop_oneof![
        20 => Just(None),
        1 => (key, select(&["1", "\"red\"", "null", "{}"][..])).prop_map(Some),
    ]
}

fn event() -> impl Strategy<Value = GenEvent> {
    (
        session_id(),
        type_pair(),
        timestamp(),
        sent_at(),
        data(),
        value(),
        event_id(),
        extra_field(),
        Just((0..9).collect::<Vec<usize>>()).prop_shuffle(),
        any::<bool>(),
        prop_oneof![
            40 => Just(None),
            3 => (MAX_EVENT_BYTES - 3..=MAX_EVENT_BYTES + 3).prop_map(Some),
            1 => (31_000_usize..=34_000).prop_map(Some),
        ],
    )
        .prop_map(
            |(
                session_id,
                (category, name),
                timestamp,
                sent_at,
                data,
                value,
                event_id,
                extra,
                order,
                spaced,
                size,
            )| {
                let ev = GenEvent {
                    session_id,
                    category,
                    name,
                    timestamp,
                    sent_at,
                    data,
                    value,
                    event_id,
                    extra,
                    order,
                    spaced,
                };
                match size {
                    Some(size) => padded_to(ev, size),
                    None => ev,
                }
            },
        )
}

/// Pads an event whose `data` is an object to exactly `size` bytes as written, with a
/// string `data.blob` (unless it is longer already): probes the 32 KiB limit at the byte.
fn padded_to(mut ev: GenEvent, size: usize) -> GenEvent {
    fn set_blob(ev: &mut GenEvent, len: usize) {
        if let DataField::Json(Value::Object(m)) = &mut ev.data {
            m.insert("blob".into(), json!("x".repeat(len)));
        }
    }
    if !matches!(ev.data, DataField::Json(Value::Object(_))) {
        return ev;
    }
    set_blob(&mut ev, 0);
    let fill = size.saturating_sub(ev.render().len());
    set_blob(&mut ev, fill);
    ev
}

fn batch() -> impl Strategy<Value = GenBatch> {
    let item = prop_oneof![
        14 => event().prop_map(|e| GenItem::Event(Box::new(e))),
        1 => select(&["5", "\"event\"", "null", "true", "[]", "[{}]"][..]).prop_map(GenItem::NotAnObject),
    ];
    (
        vec(item, 1..=20),
        any::<bool>(),
        select(&[",", ", ", " ,\n\t"][..]),
    )
        .prop_map(|(items, bare, separator)| GenBatch {
            items,
            bare,
            separator,
        })
}

/// JSON values leaning towards event-shaped objects.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        (1_600_000_000_i64..1_800_000_000).prop_map(|s| json!(s)),
        ".{0,20}".prop_map(Value::String),
        select(
            &[
                "page_interaction",
                "page_view",
                "form_interaction",
                "submit",
                "cta_click",
                "e2085be5-9137-4e4e-80b5-f1ffddc25423",
                "2021-09-26 09:15:27.243860",
                "2023-11-14T22:13:20Z",
                "2023-11-15T22:13:20.000001Z",
                "1999-12-31T23:59:59.999999Z",
                "www.example.com",
                "/",
            ][..]
        )
        .prop_map(|s| json!(s)),
    ];
    let key = prop_oneof![
        4 => select(&FIELDS[..]).prop_map(String::from),
        2 => select(&["host", "path", "element", "form"][..]).prop_map(String::from),
        1 => "[a-z/~]{0,5}",
    ];
    leaf.prop_recursive(5, 96, 10, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            vec((key.clone(), inner), 0..10).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A valid event: a page view at `received_at`.
fn seed_event() -> Value {
    json!({
        "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
        "category": "page_interaction",
        "name": "page_view",
        "data": {"host": "www.example.com", "path": "/"},
        "timestamp": "2023-11-14T22:13:20Z"
    })
}

/// Mutates `s` at character level: replace, insert or delete.
fn mutate_chars(s: &str, edits: &[(Index, char, u8)]) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for (at, c, op) in edits {
        let i = at.index(chars.len() + 1);
        match op {
            0 if i < chars.len() => chars[i] = *c,
            1 => chars.insert(i, *c),
            _ if i < chars.len() => {
                chars.remove(i);
            }
            _ => chars.push(*c),
        }
    }
    String::from_iter(chars)
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// Property 1a: any bytes at all.
    #[test]
    fn arbitrary_bytes_never_panic(body in vec(any::<u8>(), 0..4096)) {
        let limits = Limits::default();
        for policy in POLICIES {
            let result = parse(&body, policy, &limits);
            check_any(&body, policy, &limits, &result)?;
        }
    }

    /// Property 1b: JSON-looking token soup, mostly malformed.
    #[test]
    fn jsonish_text_never_panics(tokens in vec(prop_oneof![
        6 => select(&[
            "{", "}", "[", "]", ",", ":", " ", "\n", "null", "true", "false", "0", "-1",
            "1e400", "-0.0", "1.5", "\"", "\\", "\"\\u0000\"", "\"\\ud800\"", "\"\\x\"",
            "\"session_id\"", "\"category\"", "\"name\"", "\"timestamp\"", "\"sent_at\"",
            "\"data\"", "\"value\"", "\"event_id\"", "\"page_interaction\"", "\"page_view\"",
            "\"2021-09-26 09:15:27.243860\"", "1632647727243", "\"host\"", "\"path\"",
            "{\"host\":\"h\",\"path\":\"/\"}", "\u{feff}", "\u{0}",
        ][..]).prop_map(String::from),
        1 => "\"[^\"\\\\]{0,12}\"",
        1 => any::<i64>().prop_map(|i| i.to_string()),
    ], 0..200)) {
        let body = tokens.concat();
        let limits = Limits::default();
        for policy in POLICIES {
            let result = parse(body.as_bytes(), policy, &limits);
            check_any(body.as_bytes(), policy, &limits, &result)?;
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Property 1c: well-formed JSON of any shape: an object is one item, a non-empty
    /// array is one item per element, anything else is not events.
    #[test]
    fn any_json_value_is_classified_and_never_panics(value in prop_oneof![
        json_value(),
        vec(vec((select(&FIELDS[..]), json_value()), 0..9)
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())), 0..6)
            .prop_map(Value::Array),
    ]) {
        let body = serde_json::to_vec(&value).expect("serializes");
        let limits = Limits::default();
        for policy in POLICIES {
            let result = parse(&body, policy, &limits);
            match &value {
                Value::Array(items) if !items.is_empty() => {
                    prop_assert_eq!(result.as_ref().map(Vec::len), Ok(items.len()));
                }
                Value::Object(_) => prop_assert_eq!(result.as_ref().map(Vec::len), Ok(1)),
                _ => prop_assert_eq!(&result, &Err(RequestError::NotEvents)),
            }
            check_any(&body, policy, &limits, &result)?;
        }
    }

    /// Property 1d: generated batches with a few bytes overwritten, inserted, deleted or
    /// the body cut short.
    #[test]
    fn mutated_batches_never_panic(
        batch in batch(),
        edits in vec((any::<Index>(), any::<u8>(), 0_u8..4), 1..4),
    ) {
        let mut body = batch.render().0.into_bytes();
        for (at, byte, op) in edits {
            if body.is_empty() {
                break;
            }
            let i = at.index(body.len());
            match op {
                0 => body[i] = byte,
                1 => body.insert(i, byte),
                2 => {
                    body.remove(i);
                }
                _ => body.truncate(i),
            }
        }
        let limits = Limits::default();
        for policy in POLICIES {
            let result = parse(&body, policy, &limits);
            check_any(&body, policy, &limits, &result)?;
        }
    }

    /// Property 1e: near-miss timestamps: a documented form with a few characters
    /// replaced, inserted or deleted, as `timestamp` and as `sent_at`. Whatever is
    /// accepted must still lie in bounds.
    #[test]
    fn near_miss_timestamps_never_panic(
        us in instant(),
        form in time_form(),
        edits in vec((any::<Index>(), prop_oneof![
            4 => select(&['0', '9', ':', '-', '+', '.', 'T', 'Z', ' ', '1', '2'][..]),
            1 => any::<char>(),
        ], 0_u8..3), 1..4),
        as_sent_at in any::<bool>(),
    ) {
        let (json, _) = render_time(us, &form);
        let text = match serde_json::from_str::<Value>(&json).expect("rendered JSON") {
            Value::String(s) => s,
            number => number.to_string(),
        };
        let mutated = mutate_chars(&text, &edits);
        let mut event = seed_event();
        let field = if as_sent_at { "sent_at" } else { "timestamp" };
        // Still a number when the mutation left one (an epoch form), else a string.
        event[field] = match serde_json::from_str::<Value>(&mutated) {
            Ok(number @ Value::Number(_)) => number,
            _ => json!(mutated),
        };
        let body = event.to_string();
        let limits = Limits::default();
        for policy in POLICIES {
            let result = parse(body.as_bytes(), policy, &limits);
            prop_assert_eq!(result.as_ref().map(Vec::len), Ok(1));
            check_any(body.as_bytes(), policy, &limits, &result)?;
        }
    }

    /// Property 2: events built field by field from valid and invalid values are accepted
    /// exactly when the oracle finds every rule met, with exactly the values given; each
    /// rejection reports every broken rule at its JSON Pointer and keeps the raw text.
    #[test]
    fn structured_events_are_accepted_exactly_when_the_rules_allow(batch in batch()) {
        let (body, texts) = batch.render();
        let limits = Limits::default();
        for policy in POLICIES {
            let items = match parse(body.as_bytes(), policy, &limits) {
                Ok(items) => items,
                Err(e) => return Err(TestCaseError::fail(format!("request refused: {e}\n{body}"))),
            };
            prop_assert_eq!(items.len(), batch.items.len());
            for ((item, generated), text) in items.iter().zip(&batch.items).zip(&texts) {
                check_item(item, generated, text, policy)?;
            }
        }
    }

    /// Property 3: request-level limits, with at most 5 events per request: an empty
    /// array is `NotEvents`, more than 5 items is `TooManyEvents` whatever the items are,
    /// and up to 5 give one outcome per item.
    #[test]
    fn batch_size_limits(
        items in vec(prop_oneof![
            4 => Just(seed_event().to_string()),
            1 => select(&["5", "{}", "null", "[]", "{\"session_id\":1}"][..]).prop_map(String::from),
        ], 0..=12),
        pad in select(&["", " ", "\n\t ", "\r\n"][..]),
    ) {
        let limits = Limits { max_batch_events: 5, ..Limits::default() };
        let body = format!("{pad}[{pad}{}{pad}]{pad}", items.join(","));
        for policy in POLICIES {
            let result = parse(body.as_bytes(), policy, &limits);
            match items.len() {
                0 => prop_assert_eq!(&result, &Err(RequestError::NotEvents)),
                n @ 1..=5 => prop_assert_eq!(result.as_ref().map(Vec::len), Ok(n)),
                n => prop_assert_eq!(
                    &result,
                    &Err(RequestError::TooManyEvents { count: n, max: 5 })
                ),
            }
            check_any(body.as_bytes(), policy, &limits, &result)?;
        }
    }

    /// The oracle's own footing: every text form written here is read back by chrono (which
    /// the parser does not see here) as the instant the oracle expects.
    #[test]
    fn rendered_text_times_mean_what_the_oracle_expects(
        us in instant(),
        digits in 0_usize..=9,
        extra in 0_u32..1_000,
        offset in -(23 * 60 + 59)..=(23_i64 * 60 + 59),
    ) {
        let form = TimeForm::Text { sep: 'T', digits, extra, zone: Zone::Colon(offset), pad: "" };
        let (json, want) = render_time(us, &form);
        let text: String = serde_json::from_str(&json).expect("a JSON string");
        let got = DateTime::parse_from_rfc3339(&text).expect("RFC 3339").timestamp_micros();
        // chrono keeps nanoseconds; the contract truncates them to the microsecond.
        prop_assert_eq!(got, want, "{}", text);
    }
}

#[test]
fn oracle_constants_are_the_documented_instants() {
    let us = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .expect("literal")
            .timestamp_micros()
    };
    assert_eq!(EARLIEST_US, us("2000-01-01T00:00:00Z"));
    assert_eq!(RECEIVED_US, us("2023-11-14T22:13:20Z"));
    assert_eq!(LATEST_US, us("2023-11-15T22:13:20Z"));
    assert_eq!(YEAR_2100_US, us("2100-01-01T00:00:00Z"));
    assert_eq!(EventTime::MIN_ACCEPTED.as_micros(), EARLIEST_US);
    let shipped = shipped_schemas().types();
    for (category, name) in SHIPPED_TYPES {
        assert!(
            shipped.contains(&(category.to_owned(), name.to_owned())),
            "{category}/{name} is not shipped"
        );
    }
    let unmodelled: Vec<_> = shipped
        .iter()
        .filter(|(c, n)| !SHIPPED_TYPES.contains(&(c.as_str(), n.as_str())))
        .collect();
    // Machine measurements and Segment's tracking plan (a message's envelope, not a
    // browser event's data) are outside the oracle's model.
    assert!(
        unmodelled
            .iter()
            .all(|(c, _)| c == "machine" || c == "track"),
        "the oracle models every shipped type but machine/* and track/*: {unmodelled:?}"
    );

    // The shipped event is accepted under both policies.
    for policy in POLICIES {
        let items = parse(
            seed_event().to_string().as_bytes(),
            policy,
            &Limits::default(),
        )
        .expect("request ok");
        assert!(matches!(&items[..], [Item::Accepted(_)]), "{items:?}");
    }
}
