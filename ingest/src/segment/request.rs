//! A Segment request body: the messages it holds, what its batch says for all of them, and
//! its write key.

use super::message::Shared;
use super::SegmentError;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The route a request came by: `/v1/batch`, or one route per message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Batch,
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
}

impl Door {
    /// The type a single-message route implies; `None` for `/v1/batch`, whose messages each
    /// say theirs.
    pub fn implied_type(self) -> Option<&'static str> {
        match self {
            Self::Batch => None,
            Self::Track => Some("track"),
            Self::Identify => Some("identify"),
            Self::Page => Some("page"),
            Self::Screen => Some("screen"),
            Self::Group => Some("group"),
            Self::Alias => Some("alias"),
        }
    }
}

/// A body split into its messages' text, not yet looked into.
#[derive(Debug)]
pub struct Split<'a> {
    pub messages: Vec<&'a RawValue>,
    pub shared: Shared,
}

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(rename = "sentAt")]
    sent_at: Option<Value>,
    context: Option<Value>,
    integrations: Option<Value>,
}

/// Splits a body that came by `door`: `/v1/batch` takes `{"batch": [...], "sentAt"?,
/// "context"?, "integrations"?, "writeKey"?}`, the other routes one message object.
pub fn split(body: &[u8], door: Door) -> Result<Split<'_>, SegmentError> {
    let malformed = |e: serde_json::Error| SegmentError::MalformedJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    // Parsed in full first, so that malformed JSON is told from a wrong shape precisely.
    let value: &RawValue = serde_json::from_slice(body).map_err(malformed)?;
    if !value.get().starts_with('{') {
        return Err(SegmentError::NotAnObject);
    }
    if door != Door::Batch {
        return Ok(Split {
            messages: vec![value],
            shared: Shared::default(),
        });
    }
    let batch: Batch<'_> =
        serde_json::from_str(value.get()).map_err(|_| SegmentError::NotABatch)?;
    let messages = batch.batch.ok_or(SegmentError::NotABatch)?;
    if messages.is_empty() {
        return Err(SegmentError::EmptyBatch);
    }
    // A batch-level `context` or `integrations` that is not an object says nothing for
    // the messages; it is left out rather than failing every message for it.
    let object = |v: Option<Value>| match v {
        Some(Value::Object(m)) => Some(m),
        _ => None::<Map<String, Value>>,
    };
    Ok(Split {
        messages,
        shared: Shared {
            sent_at: batch.sent_at.filter(|v| !v.is_null()),
            context: object(batch.context),
            integrations: object(batch.integrations),
        },
    })
}

/// The `writeKey` at the top of a body, if it is a JSON object that has one: how
/// `analytics-python` authenticates. Anything else (not JSON, no key) is no credential.
pub fn write_key(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct WriteKey {
        #[serde(rename = "writeKey")]
        write_key: Option<Value>,
    }
    match serde_json::from_slice::<WriteKey>(body).ok()?.write_key? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_split_into_messages_by_their_route() {
        let batch =
            br#"{"batch": [{"type": "track"}, {"type": "page"}], "sentAt": "2026-12-01T00:00:00Z",
            "context": {"ip": "1.2.3.4"}, "integrations": {"All": false}, "writeKey": "k"}"#;
        let s = split(batch, Door::Batch).expect("a batch");
        let texts: Vec<&str> = s.messages.iter().map(|m| m.get()).collect();
        assert_eq!(texts, [r#"{"type": "track"}"#, r#"{"type": "page"}"#]);
        assert_eq!(s.shared.sent_at, Some(json!("2026-12-01T00:00:00Z")));
        assert_eq!(
            s.shared.context.map(Value::Object),
            Some(json!({"ip": "1.2.3.4"}))
        );
        assert_eq!(
            s.shared.integrations.map(Value::Object),
            Some(json!({"All": false}))
        );

        let odd = split(
            br#"{"batch": [{}], "context": "x", "sentAt": null}"#,
            Door::Batch,
        )
        .expect("a batch");
        assert_eq!(odd.shared, Shared::default());

        let one = br#" {"event": "E", "batch": 1} "#;
        let s = split(one, Door::Track).expect("a message");
        assert_eq!(s.messages.len(), 1);
        assert_eq!(s.messages[0].get(), r#"{"event": "E", "batch": 1}"#);
        assert_eq!(s.shared, Shared::default());
    }

    #[test]
    fn bodies_that_hold_no_messages_say_why() {
        let cases: [(&[u8], Door, &str); 9] = [
            (b"{\"batch\": [{},]}", Door::Batch, "malformed_json"),
            (b"", Door::Track, "malformed_json"),
            (b"[{}]", Door::Batch, "not_an_object"),
            (b"\"x\"", Door::Page, "not_an_object"),
            (b"{}", Door::Batch, "not_a_batch"),
            (b"{\"batch\": {}}", Door::Batch, "not_a_batch"),
            (b"{\"batch\": null}", Door::Batch, "not_a_batch"),
            (b"{\"batch\": []}", Door::Batch, "empty_batch"),
            (b"{\"type\": \"track\"} x", Door::Track, "malformed_json"),
        ];
        for (i, (body, door, code)) in cases.into_iter().enumerate() {
            let e = split(body, door).expect_err("refused");
            assert_eq!(e.code(), code, "case {i}: {e}");
        }
        let e = split(b"{\"batch\": [1,]}", Door::Batch).expect_err("refused");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn the_write_key_is_read_from_the_top_of_the_body() {
        let cases: [(&[u8], Option<&str>); 6] = [
            (br#"{"batch": [], "writeKey": "eye_a.b"}"#, Some("eye_a.b")),
            (
                br#"{"event": "E", "writeKey": "k", "properties": {"writeKey": "no"}}"#,
                Some("k"),
            ),
            (br#"{"properties": {"writeKey": "nested"}}"#, None),
            (br#"{"writeKey": 5}"#, None),
            (br#"[{"writeKey": "k"}]"#, None),
            (b"not json", None),
        ];
        for (body, want) in cases {
            assert_eq!(
                write_key(body).as_deref(),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
