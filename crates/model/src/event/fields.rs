//! The top level of one event, read in a single pass.
//!
//! Each known field is kept as a JSON value, so its type is checked afterwards with a
//! precise error, and unknown names are collected. This replaces a `Map` of the whole
//! object: the profile of ingest at full load showed building, searching and tearing down
//! a tree for eight keys, per event, among its top costs.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// The fields of an event object. A name given twice keeps its last value, as a JSON
/// object read into a map does.
#[derive(Debug, Default)]
pub(super) struct Fields {
    pub event_id: Option<Value>,
    pub session_id: Option<Value>,
    pub category: Option<Value>,
    pub name: Option<Value>,
    pub data: Option<Value>,
    pub timestamp: Option<Value>,
    pub sent_at: Option<Value>,
    pub value: Option<Value>,
    /// Names outside [`KNOWN_FIELDS`](super::KNOWN_FIELDS), sorted and each once.
    pub unknown: Vec<String>,
}

/// One item of a batch: an object's fields, or something that is not an object.
#[derive(Debug)]
// Boxing the fields would add an allocation per event, which is what this module saves.
#[allow(clippy::large_enum_variant)]
pub(super) enum Item {
    Object(Fields),
    NotAnObject,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut f = Fields::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let slot = match key {
                Key::EventId => &mut f.event_id,
                Key::SessionId => &mut f.session_id,
                Key::Category => &mut f.category,
                Key::Name => &mut f.name,
                Key::Data => &mut f.data,
                Key::Timestamp => &mut f.timestamp,
                Key::SentAt => &mut f.sent_at,
                Key::Value => &mut f.value,
                Key::Unknown(name) => {
                    map.next_value::<de::IgnoredAny>()?;
                    f.unknown.push(name);
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        f.unknown.sort_unstable();
        f.unknown.dedup();
        Ok(Item::Object(f))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Item::NotAnObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }

    fn visit_unit<E>(self) -> Result<Item, E> {
        Ok(Item::NotAnObject)
    }
}

/// A name of [`KNOWN_FIELDS`](super::KNOWN_FIELDS), or another.
#[derive(Debug, PartialEq)]
enum Key {
    EventId,
    SessionId,
    Category,
    Name,
    Data,
    Timestamp,
    SentAt,
    Value,
    Unknown(String),
}

/// Reads a key without allocating unless it is unknown.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, s: &str) -> Result<Key, E> {
        Ok(match s {
            "event_id" => Key::EventId,
            "session_id" => Key::SessionId,
            "category" => Key::Category,
            "name" => Key::Name,
            "data" => Key::Data,
            "timestamp" => Key::Timestamp,
            "sent_at" => Key::SentAt,
            "value" => Key::Value,
            other => Key::Unknown(other.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::KNOWN_FIELDS;
    use serde_json::json;

    fn fields(text: &str) -> Fields {
        match serde_json::from_str::<Item>(text).expect("parses") {
            Item::Object(f) => f,
            Item::NotAnObject => panic!("{text} is an object"),
        }
    }

    #[test]
    fn known_fields_land_in_their_slots() {
        let f = fields(
            r#"{"event_id":"e","session_id":"s","category":"c","name":"n","data":{"a":[1]},
                "timestamp":1,"sent_at":2,"value":3.5}"#,
        );
        let got = [
            &f.event_id,
            &f.session_id,
            &f.category,
            &f.name,
            &f.data,
            &f.timestamp,
            &f.sent_at,
            &f.value,
        ];
        let want = [
            json!("e"),
            json!("s"),
            json!("c"),
            json!("n"),
            json!({"a": [1]}),
            json!(1),
            json!(2),
            json!(3.5),
        ];
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g.as_ref(), Some(&w), "field {i}");
        }
        assert!(f.unknown.is_empty());
    }

    #[test]
    fn every_known_field_has_a_slot() {
        for name in KNOWN_FIELDS {
            let key: Result<Key, de::value::Error> = KeySeed.visit_str(name);
            assert!(!matches!(key, Ok(Key::Unknown(_))), "{name}");
        }
        let key: Result<Key, de::value::Error> = KeySeed.visit_str("Name");
        assert_eq!(key.ok(), Some(Key::Unknown("Name".into())));
    }

    #[test]
    fn the_last_of_a_repeated_name_wins_and_unknown_names_are_sorted_once() {
        let f = fields(r#"{"name":"a","zz":1,"name":"b","aa":{"x":[1,2]},"zz":2,"n\u0061me":"c"}"#);
        // An escaped key is the same name.
        assert_eq!(f.name, Some(json!("c")));
        assert_eq!(f.unknown, ["aa", "zz"]);
        assert_eq!(f.data, None);
    }

    #[test]
    fn anything_but_an_object_is_not_an_object() {
        for text in [
            "[1,{\"a\":2}]",
            "true",
            "-1",
            "18446744073709551615",
            "1.5",
            "\"x\"",
            "null",
        ] {
            assert!(
                matches!(serde_json::from_str::<Item>(text), Ok(Item::NotAnObject)),
                "{text}"
            );
        }
        // Well-formed but out of f64's range stays a parse error, as with a Value.
        assert!(serde_json::from_str::<Item>(r#"{"value":1e400}"#).is_err());
    }
}
