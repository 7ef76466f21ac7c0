//! The event contract: the model and the parser that builds it from a request body.
//!
//! Parse, don't validate: every field of [`Event`] is a newtype that only its parser can
//! build, so code holding an `Event` never re-checks it. A request is parsed once into
//! raw items; each item is then checked on its own, so one bad event never costs the
//! others their place. Every broken rule becomes a [`FieldError`] with a JSON Pointer into
//! the item (`/timestamp`, `/data/host`) and a stable code. The rules, their codes and
//! their defaults are listed in the README's "Event contract" section.

use crate::schema::{SchemaRegistry, UnknownTypePolicy};
use crate::time::{EventTime, TimeBounds};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;
use uuid::Uuid;

mod fields;
mod parse;

pub(crate) use parse::escape_pointer;
pub use parse::{
    json_error_message, parse_again, parse_batch, parse_events, parse_mapped, ParseEventsError,
    KNOWN_FIELDS,
};

/// Longest `session_id`, in characters.
pub const MAX_SESSION_ID_CHARS: usize = 128;
/// Longest `category` and `name`, in characters.
pub const MAX_TYPE_CHARS: usize = 64;

/// One rule a field broke. `field` is a JSON Pointer into the event (`""`: the event itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    /// One of the codes the README's event contract lists; owned only when read back from
    /// an answer.
    pub code: Cow<'static, str>,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code: Cow::Borrowed(code),
            message: message.into(),
        }
    }

    /// The code as a parser wrote it, for tests that compare it with literals.
    #[cfg(test)]
    pub(crate) fn static_code(&self) -> &'static str {
        match self.code {
            Cow::Borrowed(code) => code,
            Cow::Owned(_) => panic!("a parser's codes are static"),
        }
    }
}

/// Why a request body as a whole was refused (no event of it was looked at).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is not valid JSON: {message} at line {line}, column {column}")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("request body must be one event object or a non-empty array of event objects")]
    NotEvents,
    #[error("request holds {count} events; at most {max} are accepted per request")]
    TooManyEvents { count: usize, max: usize },
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson { .. } => "malformed_json",
            Self::NotEvents => "not_events",
            Self::TooManyEvents { .. } => "too_many_events",
        }
    }
}

/// Builds the error type of a text rule: `(code, message)`.
type RuleError = (&'static str, String);

/// A session's id: 1 to 128 characters, none of them a control character.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(s: &str) -> Result<Self, RuleError> {
        if s.is_empty() {
            return Err(("empty", "session_id must not be empty".into()));
        }
        if s.chars().count() > MAX_SESSION_ID_CHARS {
            return Err((
                "too_long",
                format!("session_id must be at most {MAX_SESSION_ID_CHARS} characters"),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err((
                "control_character",
                "session_id must be printable: no control characters".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh id for a session whose client did not choose one.
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters allowed in `category` and `name` besides ASCII letters and digits. Space is
/// allowed inside (clients send types such as "form interaction"), not at either end.
pub const TYPE_PUNCTUATION: &str = "_-.:/ ";

fn check_type_text(s: &str, field: &str) -> Result<(), RuleError> {
    if s.is_empty() {
        return Err(("empty", format!("{field} must not be empty")));
    }
    if s.chars().count() > MAX_TYPE_CHARS {
        return Err((
            "too_long",
            format!("{field} must be at most {MAX_TYPE_CHARS} characters"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || TYPE_PUNCTUATION.contains(c);
    if !s.chars().all(allowed) || s.starts_with(' ') || s.ends_with(' ') {
        return Err((
            "invalid_characters",
            format!(
                "{field} may hold ASCII letters, digits, '_', '-', '.', ':', '/' and inner spaces"
            ),
        ));
    }
    Ok(())
}

macro_rules! type_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// 1 to [`MAX_TYPE_CHARS`] characters: ASCII letters, digits, [`TYPE_PUNCTUATION`].
            pub fn parse(s: &str) -> Result<Self, RuleError> {
                check_type_text(s, $field).map(|()| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

type_newtype!(
    /// The kind of event, e.g. `page_interaction`.
    Category,
    "category"
);
type_newtype!(
    /// The event's name within its category, e.g. `page_view`.
    EventName,
    "name"
);

/// A validated event, ready to be produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: Uuid,
    pub session_id: SessionId,
    pub category: Category,
    pub name: EventName,
    /// The event's time, corrected for client clock skew when `sent_at` was given.
    pub timestamp: EventTime,
    /// The event's time as the client sent it.
    pub client_timestamp: EventTime,
    pub sent_at: Option<EventTime>,
    pub received_at: EventTime,
    pub data: Map<String, Value>,
    pub value: Option<f64>,
}

/// Size and shape limits of the contract.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_event_bytes: usize,
    pub max_batch_events: usize,
    pub max_data_depth: usize,
    pub max_data_keys: usize,
    pub time: TimeBounds,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 32 * 1024,
            max_batch_events: 1_000,
            max_data_depth: 16,
            max_data_keys: 1_000,
            time: TimeBounds::default(),
        }
    }
}

/// Everything an event is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub limits: &'a Limits,
    pub schemas: &'a SchemaRegistry,
    pub unknown_types: UnknownTypePolicy,
}

/// Identifying fields of a rejected item, read best-effort for the quarantine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    pub event_id: String,
    pub session_id: String,
    pub category: String,
    pub name: String,
}

/// An item the rules refused, with its text exactly as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub raw: String,
    pub errors: Vec<FieldError>,
    pub hints: Hints,
}

/// One item of a request, in request order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Accepted(Event),
    Rejected(Rejected),
}

#[cfg(test)]
mod tests;
