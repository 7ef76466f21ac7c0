//! librdkafka properties passed through as they are: `EYE_KAFKA_PROPERTY_<NAME>=value`, one
//! variable per property, so that each secret can come from its own secret store entry.
//!
//! `<NAME>` is the property name upper-cased, with `.` written `_`, `_` written `__` and
//! `-` written `___` (the convention of Confluent's and Kafka UI's container images):
//! `EYE_KAFKA_PROPERTY_SECURITY_PROTOCOL=SASL_SSL` is `security.protocol=SASL_SSL`.

use std::collections::BTreeMap;
use std::fmt;

/// Properties The Eye sets itself because its guarantees depend on them (or that have their
/// own `EYE_KAFKA_*` variable); passing them through is refused at start-up.
const OWNED: [(&str, &str); 9] = [
    ("bootstrap.servers", "set EYE_KAFKA_BROKERS instead"),
    ("metadata.broker.list", "set EYE_KAFKA_BROKERS instead"),
    (
        "group.id",
        "the consumer names its group (EYE_CONSUMER_GROUP_ID)",
    ),
    (
        "enable.auto.commit",
        "offsets are committed only after ClickHouse confirms the insert",
    ),
    (
        "enable.auto.offset.store",
        "offsets are committed only after ClickHouse confirms the insert",
    ),
    (
        "enable.idempotence",
        "a retried produce must never be written twice",
    ),
    (
        "acks",
        "an acknowledged event must be on every in-sync replica",
    ),
    (
        "request.required.acks",
        "an acknowledged event must be on every in-sync replica",
    ),
    (
        "partitioner",
        "every copy of a session's events must land on one partition",
    ),
];

/// Parts of property names whose values are secrets: `Debug` never prints them.
const SECRET_PARTS: [&str; 6] = [
    "password",
    "secret",
    "jaas",
    "sasl.oauthbearer.config",
    "ssl.key.pem",
    "ssl_key",
];

/// Whether the value of property `name` is a secret (passwords, private keys, tokens).
pub fn is_secret(name: &str) -> bool {
    SECRET_PARTS.iter().any(|p| name.contains(p))
}

/// The passed-through properties, by name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Properties(BTreeMap<String, String>);

impl Properties {
    /// Reads `(NAME, value)` pairs, `NAME` being what follows `EYE_KAFKA_PROPERTY_`.
    pub fn from_vars<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for (var, value) in vars {
            let name = property_name(var)
                .ok_or_else(|| format!("EYE_KAFKA_PROPERTY_{var}: not a property name (write `.` as `_`, `_` as `__`, `-` as `___`)"))?;
            if let Some((_, why)) = OWNED.iter().find(|(n, _)| *n == name) {
                return Err(format!(
                    "EYE_KAFKA_PROPERTY_{var} ({name}) cannot be passed through: {why}"
                ));
            }
            out.insert(name, value.to_owned());
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each property and its value, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether `name` is passed through.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if is_secret(k) {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

/// `SASL_MECHANISM` → `sasl.mechanism`; `None` for a name no property can have.
fn property_name(var: &str) -> Option<String> {
    if var.is_empty() || var.starts_with('_') || var.ends_with('_') {
        return None;
    }
    let mut out = String::with_capacity(var.len());
    let mut underscores = 0;
    for c in var.chars().chain(std::iter::once('\0')) {
        if c == '_' {
            underscores += 1;
            continue;
        }
        match underscores {
            0 => {}
            1 => out.push('.'),
            2 => out.push('_'),
            3 => out.push('-'),
            _ => return None,
        }
        underscores = 0;
        if c == '\0' {
            break;
        }
        if !c.is_ascii_alphanumeric() {
            return None;
        }
        out.push(c.to_ascii_lowercase());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_container_image_convention() {
        assert_eq!(
            property_name("SSL_CA_LOCATION").as_deref(),
            Some("ssl.ca.location")
        );
        assert_eq!(
            property_name("SSL_ENDPOINT_IDENTIFICATION_ALGORITHM").as_deref(),
            Some("ssl.endpoint.identification.algorithm")
        );
        assert_eq!(property_name("SSL__KEY").as_deref(), Some("ssl_key"));
        assert_eq!(
            property_name("CLIENT___RACK").as_deref(),
            Some("client-rack")
        );
        assert_eq!(property_name("A____B"), None);
        assert_eq!(property_name("_X"), None);
        assert_eq!(property_name(""), None);
        assert_eq!(property_name("SASL.MECHANISM"), None);
    }

    #[test]
    fn secrets_are_redacted() {
        for n in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
        ] {
            assert!(is_secret(n), "{n}");
        }
        for n in ["sasl.username", "ssl.ca.location", "security.protocol"] {
            assert!(!is_secret(n), "{n}");
        }
    }
}
