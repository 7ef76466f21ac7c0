//! The clients file: who may call The Eye, with what scopes, categories and limits.
//!
//! Secrets are never stored: a client's record holds the SHA-256 of its secret. A secret
//! is 32 random bytes, so a single hash is enough (a password KDF would only add cost to
//! every request); verification compares digests in constant time.

use eye_model::schema::UnknownTypePolicy;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;

/// What a client may do. `admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "events:write")]
    EventsWrite,
    #[serde(rename = "events:read")]
    EventsRead,
    #[serde(rename = "aggregations:read")]
    AggregationsRead,
    /// Deleting a user's, session's or machine's data, and reading how a deletion went.
    #[serde(rename = "delete")]
    Delete,
    /// Replaying quarantined records: producing events in the names of the clients that sent
    /// them, so it is granted apart from `events:write`.
    #[serde(rename = "replay")]
    Replay,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Self::EventsWrite,
        Self::EventsRead,
        Self::AggregationsRead,
        Self::Delete,
        Self::Replay,
        Self::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventsWrite => "events:write",
            Self::EventsRead => "events:read",
            Self::AggregationsRead => "aggregations:read",
            Self::Delete => "delete",
            Self::Replay => "replay",
            Self::Admin => "admin",
        }
    }

    /// A scope by its name, or by the short OAuth2 names older clients ask for (`write`,
    /// `read`, `aggregation`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "write" => Some(Self::EventsWrite),
            "read" => Some(Self::EventsRead),
            "aggregation" => Some(Self::AggregationsRead),
            _ => Self::ALL.into_iter().find(|x| x.as_str() == s),
        }
    }
}

/// Token-bucket limits; in the file every field is optional and falls back to the
/// service's `EYE_AUTH_*` defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_burst: Option<u32>,
}

impl RateLimits {
    /// Budgets far above anything a test, benchmark or fault suite sends, for the clients
    /// those tools create: what they measure must never be the client's own limit.
    pub fn unlimited() -> Self {
        Self {
            requests_per_s: Some(1_000_000),
            requests_burst: Some(1_000_000),
            events_per_s: Some(100_000_000),
            events_burst: Some(100_000_000),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRecord {
    /// Public identifier: the OAuth2 `client_id`, and part of the API key.
    pub id: String,
    pub name: String,
    /// Lower-case hex SHA-256 of the secret.
    pub secret_sha256: String,
    pub scopes: Vec<Scope>,
    /// Categories the client may write; absent means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub rate_limits: RateLimits,
    /// What becomes of this client's events of a type without a schema (`accept` or
    /// `reject`); absent means the service's `EYE_INGEST_UNKNOWN_TYPE_POLICY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_types: Option<UnknownTypePolicy>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

fn is_default(l: &RateLimits) -> bool {
    *l == RateLimits::default()
}

impl ClientRecord {
    /// Whether `secret` is this client's, compared in constant time.
    pub fn secret_matches(&self, secret: &str) -> bool {
        let Ok(stored) = hex::decode(&self.secret_sha256) else {
            return false;
        };
        Sha256::digest(secret.as_bytes())
            .as_slice()
            .ct_eq(&stored)
            .into()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientsFile {
    #[serde(default)]
    pub clients: Vec<ClientRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientsFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid clients file: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: client id {id} appears twice")]
    DuplicateId { path: String, id: String },
    #[error("{path}: client {id}: secret_sha256 must be 64 hex digits")]
    BadDigest { path: String, id: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Serialize {
        path: String,
        source: toml::ser::Error,
    },
}

impl ClientsFile {
    pub fn load(path: &Path) -> Result<Self, ClientsFileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ClientsFileError::Read {
            path: name.clone(),
            source,
        })?;
        let file: Self = toml::from_str(&text).map_err(|source| ClientsFileError::Parse {
            path: name.clone(),
            source: Box::new(source),
        })?;
        let mut ids = std::collections::HashSet::new();
        for c in &file.clients {
            if !ids.insert(c.id.as_str()) {
                return Err(ClientsFileError::DuplicateId {
                    path: name,
                    id: c.id.clone(),
                });
            }
            if c.secret_sha256.len() != 64 || hex::decode(&c.secret_sha256).is_err() {
                return Err(ClientsFileError::BadDigest {
                    path: name,
                    id: c.id.clone(),
                });
            }
        }
        Ok(file)
    }

    /// Writes the file atomically (a temporary file renamed over it), readable by its
    /// owner only: a reader never sees half a file.
    pub fn save(&self, path: &Path) -> Result<(), ClientsFileError> {
        let name = path.display().to_string();
        let err = |source| ClientsFileError::Write {
            path: name.clone(),
            source,
        };
        let text = toml::to_string_pretty(self).map_err(|source| ClientsFileError::Serialize {
            path: name.clone(),
            source,
        })?;
        let tmp = path.with_extension("toml.tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(err)?;
            f.write_all(HEADER.as_bytes()).map_err(err)?;
            f.write_all(text.as_bytes()).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)
    }
}

const HEADER: &str =
    "# The Eye's clients. Written by `eye-admin clients`; secrets are stored as SHA-256 only.\n\n";

/// A new client's credentials: its id and its secret, shown once. `Debug` leaves the
/// secret out.
#[derive(Clone)]
pub struct NewCredentials {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for NewCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredentials")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl NewCredentials {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id)?;
        getrandom::fill(&mut secret)?;
        Ok(Self {
            id: hex::encode(id),
            secret: hex::encode(secret),
        })
    }

    /// The API key: `eye_<id>.<secret>`, usable as `Authorization: Bearer <key>`.
    pub fn api_key(&self) -> String {
        format!("{API_KEY_PREFIX}{}.{}", self.id, self.secret)
    }

    pub fn secret_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }

    /// The record declaring these credentials: active, any category, default limits.
    pub fn record(&self, name: &str, scopes: Vec<Scope>) -> ClientRecord {
        ClientRecord {
            id: self.id.clone(),
            name: name.to_owned(),
            secret_sha256: self.secret_sha256(),
            scopes,
            categories: None,
            rate_limits: RateLimits::default(),
            unknown_types: None,
            created_at: eye_model::time::EventTime::now().to_rfc3339(),
            revoked_at: None,
        }
    }
}

pub const API_KEY_PREFIX: &str = "eye_";

/// `(id, secret)` of an API key, or `None` when the text is not shaped like one (a bearer
/// token, for instance).
pub fn split_api_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(API_KEY_PREFIX)?.split_once('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_secrets_verify() {
        let creds = NewCredentials::generate().expect("random");
        assert_eq!(creds.id.len(), 16);
        assert_eq!(creds.secret.len(), 64);
        let key = creds.api_key();
        assert_eq!(
            split_api_key(&key),
            Some((creds.id.as_str(), creds.secret.as_str()))
        );
        let record = ClientRecord {
            id: creds.id.clone(),
            name: "n".into(),
            secret_sha256: creds.secret_sha256(),
            scopes: vec![Scope::EventsWrite],
            categories: None,
            rate_limits: RateLimits::default(),
            unknown_types: None,
            created_at: "2026-11-25T00:00:00Z".into(),
            revoked_at: None,
        };
        assert!(record.secret_matches(&creds.secret));
        assert!(!record.secret_matches(&creds.secret[1..]));
        assert!(!record.secret_matches(""));
        assert!(!key.contains(&record.secret_sha256));
        for not_a_key in ["", "eye_", "eye_abc", "eyJhbGciOi.x.y", "Eye_a.b"] {
            assert_eq!(split_api_key(not_a_key), None, "{not_a_key}");
        }
        let shown = format!("{creds:?}");
        assert!(
            shown.contains(&creds.id) && !shown.contains(&creds.secret),
            "{shown}"
        );
    }

    #[test]
    fn scopes_by_name_and_by_short_name() {
        let cases = [
            ("events:write", Some(Scope::EventsWrite)),
            ("write", Some(Scope::EventsWrite)),
            ("read", Some(Scope::EventsRead)),
            ("aggregation", Some(Scope::AggregationsRead)),
            ("aggregations:read", Some(Scope::AggregationsRead)),
            ("admin", Some(Scope::Admin)),
            ("delete", Some(Scope::Delete)),
            ("replay", Some(Scope::Replay)),
            ("root", None),
            ("", None),
        ];
        for (name, want) in cases {
            assert_eq!(Scope::parse(name), want, "{name}");
        }
    }

    #[test]
    fn file_round_trips_and_refuses_bad_records() {
        let dir = std::env::temp_dir().join(format!("eye-clients-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("clients.toml");
        let file = ClientsFile {
            clients: vec![ClientRecord {
                id: "0123456789abcdef".into(),
                name: "web".into(),
                secret_sha256: "a".repeat(64),
                scopes: vec![Scope::EventsWrite, Scope::EventsRead],
                categories: Some(vec!["page_interaction".into()]),
                rate_limits: RateLimits {
                    requests_per_s: Some(5),
                    ..RateLimits::default()
                },
                unknown_types: Some(UnknownTypePolicy::Accept),
                created_at: "2026-11-25T00:00:00Z".into(),
                revoked_at: None,
            }],
        };
        file.save(&path).expect("save");
        assert_eq!(ClientsFile::load(&path).expect("load"), file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bad = [
            ("[[clients]]\nid = \"a\"\n", "missing fields"),
            (
                "[[clients]]\nid = \"a\"\nname = \"n\"\nsecret_sha256 = \"zz\"\nscopes = []\ncreated_at = \"t\"\n",
                "64 hex digits",
            ),
            (
                "[[clients]]\nid = \"a\"\nname = \"n\"\nsecret_sha256 = \"zz\"\nscopes = [\"root\"]\ncreated_at = \"t\"\n",
                "unknown variant",
            ),
            ("secret = \"clear\"\n", "unknown field"),
        ];
        let one = format!(
            "[[clients]]\nid = \"a\"\nname = \"n\"\nsecret_sha256 = \"{}\"\nscopes = []\ncreated_at = \"t\"\n",
            "a".repeat(64)
        );
        let twice = format!("{one}{one}");
        let unknown_policy = format!("{one}unknown_types = \"maybe\"\n");
        for (text, want) in bad.into_iter().chain([
            (twice.as_str(), "appears twice"),
            (unknown_policy.as_str(), "unknown variant"),
        ]) {
            std::fs::write(&path, text).expect("write");
            let e = ClientsFile::load(&path).expect_err(text).to_string();
            assert!(e.contains(want) || e.contains("missing field"), "{e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
