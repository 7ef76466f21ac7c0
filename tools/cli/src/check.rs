//! `eye check`: every event of a file checked offline with ingest's own parser, rules,
//! limits and messages (`eye_model::event`), against the same schema directory.
//!
//! Each event is checked as ingest checks one item of a batch
//! ([`eye_model::event::parse_mapped`]), with the contract's default limits and time bounds
//! (ingest's defaults: `EYE_INGEST_MAX_*`, a future skew of 24 hours) and the event's time
//! of receipt taken as now. What ingest refuses for a whole request (a body over 5 MiB,
//! more than 1,000 events) does not apply: a file is sent in as many requests as it needs.

use crate::input::RawEvent;
use eye_model::event::{parse_mapped, FieldError, Item, Limits, Rules};
use eye_model::schema::{SchemaLoadError, SchemaRegistry, UnknownTypePolicy};
use eye_model::time::EventTime;
use serde::Serialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::path::Path;

/// The rules events are checked against.
pub struct Checker {
    limits: Limits,
    schemas: SchemaRegistry,
    unknown_types: UnknownTypePolicy,
}

impl Checker {
    /// Loads the schema directory as ingest does at start-up.
    pub fn load(
        schema_dir: &Path,
        unknown_types: UnknownTypePolicy,
    ) -> Result<Self, SchemaLoadError> {
        Ok(Self::new(SchemaRegistry::load(schema_dir)?, unknown_types))
    }

    pub fn new(schemas: SchemaRegistry, unknown_types: UnknownTypePolicy) -> Self {
        Self {
            limits: Limits::default(),
            schemas,
            unknown_types,
        }
    }

    /// The event types the schemas know, as `category/name`.
    pub fn types(&self) -> Vec<String> {
        self.schemas
            .types()
            .into_iter()
            .map(|(c, n)| format!("{c}/{n}"))
            .collect()
    }

    /// Checks one event's text, received now. The errors are ingest's, in its order.
    pub fn check(&self, text: &str) -> Result<(), Vec<FieldError>> {
        self.check_at(text, EventTime::now())
    }

    /// Checks one event's text as if received at `received_at`.
    pub fn check_at(&self, text: &str, received_at: EventTime) -> Result<(), Vec<FieldError>> {
        let raw: &RawValue = serde_json::from_str(text).map_err(|e| {
            // Skipping reports some errors vaguely; a full parse words them precisely.
            let e = serde_json::from_str::<serde_json::Value>(text)
                .err()
                .unwrap_or(e);
            vec![FieldError {
                field: String::new(),
                code: Cow::Borrowed("malformed_json"),
                message: format!(
                    "not valid JSON: {} at column {}",
                    eye_model::event::json_error_message(&e),
                    e.column()
                ),
            }]
        })?;
        let rules = Rules {
            limits: &self.limits,
            schemas: &self.schemas,
            unknown_types: self.unknown_types,
        };
        match parse_mapped(raw, text, received_at, rules) {
            Item::Accepted(_) => Ok(()),
            Item::Rejected(r) => Err(r.errors),
        }
    }
}

/// A rejected event: where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub line: usize,
    pub errors: Vec<FieldError>,
}

impl Rejection {
    pub fn new(event: &RawEvent, errors: Vec<FieldError>) -> Self {
        Self {
            line: event.line,
            errors,
        }
    }

    /// One line per error: `line N: <field>: <code>: <message>`, the field a JSON Pointer
    /// into the event, `(event)` for the event itself.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.errors.iter().map(move |e| {
            let field = if e.field.is_empty() {
                "(event)"
            } else {
                e.field.as_str()
            };
            format!("line {}: {field}: {}: {}", self.line, e.code, e.message)
        })
    }
}

/// What a check found.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub checked: u64,
    pub valid: u64,
    pub rejected: u64,
}

impl Summary {
    pub fn line(&self) -> String {
        format!(
            "checked {}, valid {}, rejected {}",
            self.checked, self.valid, self.rejected
        )
    }
}

/// `--json`'s report: the summary and every rejection.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    #[serde(flatten)]
    pub summary: &'a Summary,
    pub rejections: &'a [Rejection],
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_model::event::parse_batch;

    fn repo_schemas() -> SchemaRegistry {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        SchemaRegistry::load(&dir).expect("the shipped schemas load")
    }

    /// What ingest answers for this one event, as a batch of one.
    fn ingest(
        text: &str,
        at: EventTime,
        schemas: &SchemaRegistry,
        policy: UnknownTypePolicy,
    ) -> Vec<FieldError> {
        let limits = Limits::default();
        let rules = Rules {
            limits: &limits,
            schemas,
            unknown_types: policy,
        };
        match parse_batch(format!("[{text}]").as_bytes(), at, rules)
            .expect("a batch")
            .remove(0)
        {
            Item::Accepted(_) => Vec::new(),
            Item::Rejected(r) => r.errors,
        }
    }

    #[test]
    fn the_same_verdicts_and_messages_as_ingest() {
        let at = EventTime::parse("2024-05-01T12:00:00Z").expect("time");
        let view = r#"{"session_id":"s","category":"page_interaction","name":"page_view","timestamp":"2024-05-01T11:00:00Z","data":{"host":"a","path":"/"}}"#;
        let cases = [
            view.to_owned(),
            view.replace(r#""path":"/""#, r#""path":"""#),
            view.replace(r#""name":"page_view","#, ""),
            view.replace("page_view", "nope"),
            view.replace("2024-05-01T11:00:00Z", "1999-12-31T23:59:59Z"),
            view.replace("2024-05-01T11:00:00Z", "2024-05-03T12:00:01Z"),
            view.replace(r#""data""#, r#""dta""#),
            r#"[1]"#.to_owned(),
            format!(r#"{{"session_id":"s","pad":"{}"}}"#, "x".repeat(40_000)),
        ];
        for policy in [UnknownTypePolicy::Reject, UnknownTypePolicy::Accept] {
            let checker = Checker::new(repo_schemas(), policy);
            for text in &cases {
                let want = ingest(text, at, &repo_schemas(), policy);
                let got = checker.check_at(text, at).err().unwrap_or_default();
                assert_eq!(got, want, "{policy:?} {}", &text[..text.len().min(120)]);
            }
        }
        // Every case but the first is rejected under the default policy.
        let checker = Checker::new(repo_schemas(), UnknownTypePolicy::Reject);
        let verdicts: Vec<bool> = cases
            .iter()
            .map(|t| checker.check_at(t, at).is_ok())
            .collect();
        assert_eq!(
            verdicts,
            [true, false, false, false, false, false, false, false, false]
        );
    }

    #[test]
    fn a_line_that_is_not_json_is_rejected_with_its_column() {
        let checker = Checker::new(SchemaRegistry::default(), UnknownTypePolicy::Accept);
        let errors = checker.check(r#"{"a": 1,}"#).expect_err("rejected");
        assert_eq!(
            errors,
            [FieldError::new(
                "",
                "malformed_json",
                "not valid JSON: trailing comma: remove the comma after the last member of the object or array at column 9"
            )]
        );
    }

    #[test]
    fn rejections_print_line_field_code_and_message() {
        let r = Rejection {
            line: 7,
            errors: vec![
                FieldError::new("/name", "required", "name is required"),
                FieldError::new("", "unknown_event_type", "no schema"),
            ],
        };
        let lines: Vec<String> = r.lines().collect();
        assert_eq!(
            lines,
            [
                "line 7: /name: required: name is required",
                "line 7: (event): unknown_event_type: no schema"
            ]
        );
        let s = Summary {
            checked: 3,
            valid: 2,
            rejected: 1,
        };
        assert_eq!(s.line(), "checked 3, valid 2, rejected 1");
        let json = serde_json::to_string(&Report {
            summary: &s,
            rejections: &[r],
        })
        .expect("JSON");
        assert!(json.starts_with(r#"{"checked":3,"valid":2,"rejected":1,"rejections":[{"line":7,"errors":[{"field":"/name""#), "{json}");
    }
}
