//! Per-event-type validation of an event's `data` object against JSON Schema files.
//!
//! # Layout
//!
//! A schema directory (by default [`DEFAULT_SCHEMA_DIR`], `schemas/` at the repository root)
//! holds one JSON Schema per event type, named after the event's `(category, name)`:
//!
//! ```text
//! schemas/
//!   page_interaction/
//!     page_view.json      validates `data` of category "page_interaction", name "page_view"
//!     cta_click.json
//!   form_interaction/
//!     submit.json
//! ```
//!
//! Only `<category>/<name>.json`, exactly two levels deep, is read. Hidden entries (a name
//! starting with `.`, e.g. editor swap files or Kubernetes' `..data`), files that do not end
//! in `.json` (a README), and directories below a category are ignored. A `.json` file
//! directly in the schema directory is an error, since it names no category.
//!
//! Schemas are JSON Schema; without a `"$schema"` keyword draft 2020-12 is assumed. They must
//! be self-contained: `$ref` may point inside the same file, but nothing is ever fetched from
//! the network or the file system while compiling. `format` is an assertion here (not only an
//! annotation as the 2020-12 default would have it), and an unknown `format` name is a load
//! error so a typo cannot silently disable a check.
//!
//! # Life cycle
//!
//! The ingest service loads the directory at start-up ([`SchemaRegistry::load`], or
//! [`SharedRegistry::load`] for a reloadable set) and refuses to start if any file is broken.
//! On SIGHUP it calls [`SharedRegistry::reload`]: the whole directory is read and compiled
//! again and swapped in atomically only if every file loaded; otherwise the error is reported
//! and the previous set keeps serving. Ingest wires the signal; this module only provides the
//! reload API. Every schema is compiled once per load, and the compiled validator is reused
//! for every event.
//!
//! # Violations
//!
//! [`SchemaRegistry::validate`] reports every violation (at most [`MAX_VIOLATIONS`]) as a
//! [`SchemaViolation`] whose `pointer` is a JSON Pointer *inside `data`* (`""` for `data`
//! itself; the caller prefixes it with the event's location in the request) and whose `code`
//! is stable:
//!
//! | code | failing keyword |
//! |---|---|
//! | `schema_required` | `required`; the pointer names the missing property (`/element`) |
//! | `schema_type` | `type` |
//! | `schema_additional_property` | `additionalProperties`, `unevaluatedProperties`; one violation per extra property, pointing at it |
//! | `schema_enum` | `enum`, `const` |
//! | `schema_format` | `format` |
//! | `schema_pattern` | `pattern` |
//! | `schema_length` | `minLength`, `maxLength` |
//! | `schema_range` | `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` |
//! | `schema_violation` | anything else |
//!
//! Messages never quote the offending value (it may be personal data, or large); they name
//! the property, the type or the limit instead.

use arc_swap::{ArcSwap, Guard};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The schema directory used when none is configured, relative to the working directory.
pub const DEFAULT_SCHEMA_DIR: &str = "schemas";

/// Most violations reported for one `data` object.
pub const MAX_VIOLATIONS: usize = 20;

/// Why a schema directory could not be loaded. Every variant names the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum SchemaLoadError {
    /// The directory (or a category directory in it) is missing or cannot be listed.
    #[error("schema directory {} cannot be read: {source}", path.display())]
    Dir { path: PathBuf, source: io::Error },
    /// A schema file cannot be read.
    #[error("schema file {} cannot be read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// A schema file is not JSON.
    #[error("schema file {} is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A schema file is JSON but not a valid JSON Schema (or uses an unknown draft, format or
    /// an unresolvable `$ref`).
    #[error("schema file {} is not a valid JSON Schema: {message}", path.display())]
    Schema { path: PathBuf, message: String },
    /// A file or directory breaks the `<category>/<name>.json` layout.
    #[error("schema file {}: {reason}", path.display())]
    Layout { path: PathBuf, reason: &'static str },
}

/// How ingest treats an event whose `(category, name)` has no schema file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownTypePolicy {
    /// Refuse the event: only event types with a schema are collected.
    #[default]
    Reject,
    /// Accept the event with its `data` unchecked.
    Accept,
}

/// The outcome of [`SchemaRegistry::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// `data` satisfies the event type's schema.
    Valid,
    /// No schema file exists for this `(category, name)`; see [`UnknownTypePolicy`].
    UnknownType,
    /// `data` breaks the schema; never empty, at most [`MAX_VIOLATIONS`] entries.
    Invalid(Vec<SchemaViolation>),
}

/// One rule of a schema that `data` broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaViolation {
    /// JSON Pointer of the offending value inside `data` (`""` for `data` itself). For a
    /// missing required property it names that property.
    pub pointer: String,
    /// Stable machine code, see the module documentation.
    pub code: &'static str,
    /// Human-readable explanation; never quotes the offending value.
    pub message: String,
}

/// Compiled schemas for every event type found in a schema directory. Immutable: reloading
/// builds a new registry (see [`SharedRegistry`]).
pub struct SchemaRegistry {
    /// category -> name -> validator. Nested so a lookup borrows the `&str`s it is given
    /// instead of allocating a `(String, String)` key per event.
    validators: HashMap<String, HashMap<String, Validator>>,
    len: usize,
    digest: String,
}

impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("types", &self.types())
            .field("digest", &self.digest)
            .finish()
    }
}

/// A registry with no schemas: every type is unknown (see [`UnknownTypePolicy`]).
impl Default for SchemaRegistry {
    fn default() -> Self {
        Self {
            validators: HashMap::new(),
            len: 0,
            digest: hex_digest(Sha256::new()),
        }
    }
}

impl SchemaRegistry {
    /// Reads and compiles every `<category>/<name>.json` under `dir`.
    ///
    /// Fails on the first file that cannot be read, is not JSON or is not a valid schema, and
    /// when `dir` itself is missing. Blocking file I/O: from async code, call it through
    /// `tokio::task::spawn_blocking` unless at start-up.
    pub fn load(dir: &Path) -> Result<SchemaRegistry, SchemaLoadError> {
        let mut validators: HashMap<String, HashMap<String, Validator>> = HashMap::new();
        let mut len = 0;
        let mut digest = Sha256::new();
        for file in schema_files(dir)? {
            let bytes = read(&file.path)?;
            // `<category>/<name>.json`, its length, its bytes: files in sorted order.
            digest.update(format!(
                "{}/{}.json\n{}\n",
                file.category,
                file.name,
                bytes.len()
            ));
            digest.update(&bytes);
            let validator = compile(&file.path, &bytes)?;
            validators
                .entry(file.category)
                .or_default()
                .insert(file.name, validator);
            len += 1;
        }
        Ok(SchemaRegistry {
            validators,
            len,
            digest: hex_digest(digest),
        })
    }

    /// SHA-256 (hex) of the set as loaded: every file's `<category>/<name>.json`, length and
    /// bytes, in sorted order. Two processes that loaded the same files report the same
    /// digest, whatever their directory is called; a changed, added or removed file changes
    /// it. Ingest exposes it as `eye_ingest_schema_set_info{digest}`, so that replicas can be
    /// checked to validate against one set.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Number of event types with a schema.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no event type has a schema.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every `(category, name)` with a schema, sorted.
    pub fn types(&self) -> Vec<(String, String)> {
        let mut types: Vec<(String, String)> = self
            .validators
            .iter()
            .flat_map(|(category, names)| {
                names
                    .keys()
                    .map(move |name| (category.clone(), name.clone()))
            })
            .collect();
        types.sort_unstable();
        types
    }

    /// Checks `data` against the schema of `(category, name)`.
    pub fn validate(&self, category: &str, name: &str, data: &Value) -> Validation {
        let Some(validator) = self.validators.get(category).and_then(|n| n.get(name)) else {
            return Validation::UnknownType;
        };
        // `is_valid` stops at the first failure and builds no errors: the common case of a
        // valid event pays only for that. Errors are collected only for refused events.
        if validator.is_valid(data) {
            return Validation::Valid;
        }
        let mut violations = Vec::new();
        for error in validator.iter_errors(data) {
            push_violations(&error, &mut violations);
            if violations.len() >= MAX_VIOLATIONS {
                break;
            }
        }
        violations.truncate(MAX_VIOLATIONS);
        if violations.is_empty() {
            // Unreachable as long as `is_valid` and `iter_errors` agree; never answer
            // `Invalid` with nothing to show.
            violations.push(SchemaViolation {
                pointer: String::new(),
                code: "schema_violation",
                message: "data does not match the schema".to_owned(),
            });
        }
        Validation::Invalid(violations)
    }
}

/// A [`SchemaRegistry`] that can be replaced while requests are validated against it.
///
/// Readers call [`current`](Self::current) per event (or per request); a reload swaps the
/// whole registry at once, so a reader sees either the old set or the new one, never a mix.
pub struct SharedRegistry {
    dir: PathBuf,
    current: ArcSwap<SchemaRegistry>,
    /// Serialises reloads, so two overlapping ones cannot store the older read last.
    reloading: Mutex<()>,
}

impl fmt::Debug for SharedRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRegistry")
            .field("dir", &self.dir)
            .field("current", &*self.current.load())
            .finish_non_exhaustive()
    }
}

impl SharedRegistry {
    /// Loads `dir` as [`SchemaRegistry::load`] does and remembers it for [`reload`](Self::reload).
    pub fn load(dir: impl Into<PathBuf>) -> Result<Self, SchemaLoadError> {
        let dir = dir.into();
        let registry = SchemaRegistry::load(&dir)?;
        Ok(SharedRegistry {
            dir,
            current: ArcSwap::from_pointee(registry),
            reloading: Mutex::new(()),
        })
    }

    /// The schema directory this registry is loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The registry currently serving.
    ///
    /// Returns `ArcSwap::load`'s `Guard` rather than an `Arc` from `load_full`: `load` is the
    /// hot-path read, it usually takes one of a few per-thread debt slots instead of touching
    /// the shared reference count, so concurrent requests on many cores do not contend on one
    /// cache line. Keep the guard short-lived (validate, then drop it; do not hold it across
    /// long `.await`s or keep many at once): a thread holding many guards falls back to full
    /// reference counting, and a held guard keeps an old registry alive after a reload. Call
    /// `Guard::into_inner(guard)` for an owned `Arc` when one is needed for longer.
    pub fn current(&self) -> Guard<Arc<SchemaRegistry>> {
        self.current.load()
    }

    /// Loads the directory again and, only if every file loaded and compiled, swaps the new
    /// registry in atomically; returns the number of event types now served.
    ///
    /// On error nothing changes: the previous registry keeps serving and no request is ever
    /// validated against a half-loaded set. Blocking file I/O: from async code, call it through
    /// `tokio::task::spawn_blocking`.
    pub fn reload(&self) -> Result<usize, SchemaLoadError> {
        // A poisoned lock only means another reload panicked; it guards no data.
        let _reloading = self
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let registry = SchemaRegistry::load(&self.dir)?;
        let len = registry.len();
        self.current.store(Arc::new(registry));
        Ok(len)
    }
}

/// The entries of `dir`, sorted so that loading (and the first error reported) is
/// deterministic.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, SchemaLoadError> {
    let dir_error = |source| SchemaLoadError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = fs::read_dir(dir)
        .map_err(dir_error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(dir_error)?;
    entries.sort();
    Ok(entries)
}

/// The entry's file name, or `None` for a hidden entry; a name that is not UTF-8 cannot name
/// an event type and is an error.
fn visible_name(path: &Path) -> Result<Option<&str>, SchemaLoadError> {
    let Some(name) = path.file_name() else {
        return Ok(None);
    };
    let Some(name) = name.to_str() else {
        return Err(SchemaLoadError::Layout {
            path: path.to_path_buf(),
            reason: "the name is not UTF-8",
        });
    };
    Ok((!name.starts_with('.')).then_some(name))
}

/// Whether `path` is a directory, following symbolic links.
fn is_dir(path: &Path) -> Result<bool, SchemaLoadError> {
    fs::metadata(path)
        .map(|m| m.is_dir())
        .map_err(|source| SchemaLoadError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// One `<category>/<name>.json` file of a schema directory.
struct SchemaFile {
    category: String,
    name: String,
    path: PathBuf,
}

/// Every schema file under `dir`, sorted by category then name; the layout rules of
/// [`SchemaRegistry::load`] apply.
fn schema_files(dir: &Path) -> Result<Vec<SchemaFile>, SchemaLoadError> {
    let mut files = Vec::new();
    for entry in sorted_entries(dir)? {
        let Some(category) = visible_name(&entry)? else {
            continue;
        };
        if !is_dir(&entry)? {
            if category.ends_with(".json") {
                return Err(SchemaLoadError::Layout {
                    path: entry,
                    reason: "a schema must be <category>/<name>.json, one directory deep",
                });
            }
            continue;
        }
        for file in sorted_entries(&entry)? {
            let Some(file_name) = visible_name(&file)? else {
                continue;
            };
            let Some(name) = file_name.strip_suffix(".json") else {
                continue;
            };
            if is_dir(&file)? {
                continue;
            }
            files.push(SchemaFile {
                category: category.to_owned(),
                name: name.to_owned(),
                path: file.clone(),
            });
        }
    }
    // By event name, not file name: `page-view.json` sorts before `page.json`.
    files.sort_by(|a, b| (&a.category, &a.name).cmp(&(&b.category, &b.name)));
    Ok(files)
}

/// An event type's JSON Schema as its file holds it, for showing to people.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SchemaDocument {
    pub category: String,
    pub name: String,
    pub schema: Value,
}

/// Every schema document under `dir` (the layout of [`SchemaRegistry::load`]), sorted by
/// category then name. Files are parsed as JSON but not compiled: a reader shows what
/// ingest enforces, and ingest refuses to start on a schema that does not compile.
/// Blocking file I/O.
pub fn documents(dir: &Path) -> Result<Vec<SchemaDocument>, SchemaLoadError> {
    schema_files(dir)?
        .into_iter()
        .map(|file| {
            Ok(SchemaDocument {
                schema: read_json(&file.path)?,
                category: file.category,
                name: file.name,
            })
        })
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, SchemaLoadError> {
    fs::read(path).map_err(|source| SchemaLoadError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_json(path: &Path, text: &[u8]) -> Result<Value, SchemaLoadError> {
    serde_json::from_slice(text).map_err(|source| SchemaLoadError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json(path: &Path) -> Result<Value, SchemaLoadError> {
    parse_json(path, &read(path)?)
}

fn hex_digest(digest: Sha256) -> String {
    digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn compile(path: &Path, text: &[u8]) -> Result<Validator, SchemaLoadError> {
    let schema = parse_json(path, text)?;
    jsonschema::options()
        // Never fetch a `$ref` target; schemas are self-contained.
        .offline()
        // Make `format` an assertion, and a misspelt format a load error.
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .build(&schema)
        .map_err(|error| SchemaLoadError::Schema {
            path: path.to_path_buf(),
            // For a build error the instance path is the location in the schema at fault.
            message: if error.instance_path().is_empty() {
                error.to_string()
            } else {
                format!("{} (at {})", error, error.instance_path().as_str())
            },
        })
}

/// Turns one `jsonschema` error into violations: usually one, one per property for
/// `additionalProperties` / `unevaluatedProperties`.
fn push_violations(error: &ValidationError<'_>, out: &mut Vec<SchemaViolation>) {
    let at = error.instance_path();
    let mut push = |pointer: String, code: &'static str, message: String| {
        out.push(SchemaViolation {
            pointer,
            code,
            message,
        });
    };
    match error.kind() {
        // The error sits on the object that lacks the property; point at the property itself.
        ValidationErrorKind::Required {
            property: Value::String(property),
        } => push(
            at.join(property).as_str().to_owned(),
            "schema_required",
            format!("{property} is required"),
        ),
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for property in unexpected {
                push(
                    at.join(property).as_str().to_owned(),
                    "schema_additional_property",
                    format!("{property} is not allowed"),
                );
            }
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(ts) => ts
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            push(
                at.as_str().to_owned(),
                "schema_type",
                format!(
                    "must be of type {expected}, not {}",
                    json_type(error.instance())
                ),
            );
        }
        kind => push(
            at.as_str().to_owned(),
            code_of(kind),
            // The masked form replaces the instance with "value" but keeps limits, types,
            // formats and patterns, which come from the schema.
            error.masked().to_string(),
        ),
    }
}

/// The stable code of a failing keyword; see the module documentation.
fn code_of(kind: &ValidationErrorKind) -> &'static str {
    match kind {
        ValidationErrorKind::Required { .. } => "schema_required",
        ValidationErrorKind::Type { .. } => "schema_type",
        ValidationErrorKind::AdditionalProperties { .. }
        | ValidationErrorKind::UnevaluatedProperties { .. } => "schema_additional_property",
        ValidationErrorKind::Enum { .. } | ValidationErrorKind::Constant { .. } => "schema_enum",
        ValidationErrorKind::Format { .. } => "schema_format",
        ValidationErrorKind::Pattern { .. }
        | ValidationErrorKind::BacktrackLimitExceeded { .. }
        | ValidationErrorKind::RegexEngineFailure { .. } => "schema_pattern",
        ValidationErrorKind::MinLength { .. } | ValidationErrorKind::MaxLength { .. } => {
            "schema_length"
        }
        ValidationErrorKind::Minimum { .. }
        | ValidationErrorKind::Maximum { .. }
        | ValidationErrorKind::ExclusiveMinimum { .. }
        | ValidationErrorKind::ExclusiveMaximum { .. } => "schema_range",
        _ => "schema_violation",
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
