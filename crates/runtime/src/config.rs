//! Configuration from `EYE_*` environment variables: the reader every group uses.
//!
//! Each group has its own prefix (`EYE_KAFKA_`, `EYE_CLICKHOUSE_`, `EYE_INGEST_`,
//! `EYE_CONSUMER_`, `EYE_QUERY_`); a field `batch_max_rows` of the consumer group is read
//! from `EYE_CONSUMER_BATCH_MAX_ROWS`. Names carry their units. Every default is listed in
//! `docs/configuration.md`; `e2e/tests/config_docs.rs` keeps that table and the groups in
//! step. Each group lives with the crate it configures.

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// envy names the variable without our prefix; put it back so the message names the
    /// variable the operator actually set.
    fn new(prefix: &str, e: envy::Error) -> Self {
        let msg = match e {
            envy::Error::MissingValue(field) => {
                format!("{prefix}{} is required", field.to_uppercase())
            }
            envy::Error::Custom(msg) => {
                msg.replace("provided by ", &format!("provided by {prefix}"))
            }
        };
        Self(msg)
    }
}

/// Reads one configuration group from the process environment.
pub fn from_env<T: DeserializeOwned + Group>() -> Result<T, ConfigError> {
    from_iter(std::env::vars())
}

/// Reads one configuration group from the given variables (tests pass their own).
pub fn from_iter<T: DeserializeOwned + Group>(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let prefix = T::PREFIX;
    let vars: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_owned(), v)))
        .collect();
    let mut group: T =
        envy::from_iter(vars.iter().cloned()).map_err(|e| ConfigError::new(prefix, e))?;
    group.read_families(&vars).map_err(ConfigError)?;
    group.check().map_err(ConfigError)?;
    Ok(group)
}

/// Reads one configuration group from `(variable, value)` pairs, for tests and tools that
/// set a few variables by hand.
pub fn from_pairs<T: DeserializeOwned + Group>(pairs: &[(&str, &str)]) -> Result<T, ConfigError> {
    from_iter(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
}

/// A configuration group and its environment prefix.
pub trait Group {
    const PREFIX: &'static str;

    /// Reads a family of variables that no field can name (e.g. `EYE_KAFKA_PROPERTY_*`,
    /// one variable per librdkafka property) from the group's variables, prefix removed.
    fn read_families(&mut self, _vars: &[(String, String)]) -> Result<(), String> {
        Ok(())
    }

    /// Rules a value's type cannot express (ranges, formats), checked once the group is
    /// read so that a bad value stops start-up; the message names the variable.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// `fn name() -> T { value }` for each line: the `#[serde(default = "...")]` functions of a
/// configuration group, listed together so that each default is written once.
#[macro_export]
macro_rules! defaults {
    ($($name:ident: $ty:ty = $value:expr;)*) => {
        $(fn $name() -> $ty { $value })*
    };
}
