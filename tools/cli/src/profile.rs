//! Named profiles: where the services are and how to authenticate, kept in
//! `<config dir>/eye/profiles.toml` (on Linux `$XDG_CONFIG_HOME/eye/profiles.toml`, else
//! `~/.config/eye/profiles.toml`), written with mode 0600 since it holds secrets.
//!
//! ```toml
//! [profiles.default]
//! ingest_url = "http://127.0.0.1:8080"
//! query_url = "http://127.0.0.1:8081"
//! api_key = "..."
//!
//! [profiles.prod]
//! ingest_url = "https://ingest.example.com"
//! query_url = "https://query.example.com"
//! client_id = "..."
//! client_secret = "..."
//! ```
//!
//! [`resolve`] picks a profile (`--profile`, else `EYE_PROFILE`, else `default`) and lets
//! the environment override each field ([`env`]). The credentials are an API key, or a
//! client id and secret: `EYE_API_KEY` wins over a profile's client credentials, and
//! `EYE_CLIENT_ID`/`EYE_CLIENT_SECRET` over a profile's API key.

use crate::error::CliError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variables the command reads; `docs/configuration.md` lists them.
pub mod env {
    /// The profile used when `--profile` is not given.
    pub const PROFILE: &str = "EYE_PROFILE";
    pub const INGEST_URL: &str = "EYE_INGEST_URL";
    pub const QUERY_URL: &str = "EYE_QUERY_URL";
    pub const API_KEY: &str = "EYE_API_KEY";
    pub const CLIENT_ID: &str = "EYE_CLIENT_ID";
    pub const CLIENT_SECRET: &str = "EYE_CLIENT_SECRET";
}

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// A secret: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One profile as the file holds it; every field optional, so the environment can fill in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
}

/// The profiles file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// How the command authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    ApiKey(Secret),
    ClientCredentials {
        client_id: String,
        client_secret: Secret,
    },
}

/// The settings a command runs with: a profile with the environment's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The profile's name.
    pub profile: String,
    pub ingest_url: Option<String>,
    pub query_url: Option<String>,
    pub credentials: Option<Credentials>,
}

impl Resolved {
    pub fn ingest_url(&self) -> Result<&str, CliError> {
        self.ingest_url
            .as_deref()
            .ok_or_else(|| self.missing("ingest URL", env::INGEST_URL))
    }

    pub fn query_url(&self) -> Result<&str, CliError> {
        self.query_url
            .as_deref()
            .ok_or_else(|| self.missing("query URL", env::QUERY_URL))
    }

    pub fn credentials(&self) -> Result<&Credentials, CliError> {
        self.credentials
            .as_ref()
            .ok_or_else(|| self.missing("API key or client credentials", env::API_KEY))
    }

    fn missing(&self, setting: &'static str, env: &'static str) -> CliError {
        CliError::MissingSetting {
            profile: self.profile.clone(),
            setting,
            env,
        }
    }

    /// For `eye config`: each setting on a line, secrets never shown.
    pub fn describe(&self) -> String {
        let or_unset = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        let credentials = match &self.credentials {
            None => "(unset)".to_owned(),
            Some(Credentials::ApiKey(_)) => "API key (set, not shown)".to_owned(),
            Some(Credentials::ClientCredentials { client_id, .. }) => {
                format!("client {client_id}, secret set, not shown")
            }
        };
        format!(
            "profile: {}\ningest_url: {}\nquery_url: {}\ncredentials: {credentials}\n",
            self.profile,
            or_unset(&self.ingest_url),
            or_unset(&self.query_url),
        )
    }
}

/// `<config dir>/eye/profiles.toml`.
pub fn default_path() -> Result<PathBuf, CliError> {
    let base = directories::BaseDirs::new().ok_or_else(|| {
        CliError::Usage("no home directory: set HOME (or XDG_CONFIG_HOME)".into())
    })?;
    Ok(base.config_dir().join("eye").join("profiles.toml"))
}

/// Reads the profiles file; a missing file is no profiles.
pub fn load(path: &Path) -> Result<Profiles, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profiles::default()),
        Err(source) => {
            return Err(CliError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    toml::from_str(&text).map_err(|e| CliError::BadProfiles {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })
}

/// Writes the profiles file with mode 0600 (its directory 0700 when created): into a new
/// file beside it, then renamed over it, so a reader never sees half a file and an existing
/// file of wider mode is replaced by one of 0600.
pub fn save(path: &Path, profiles: &Profiles) -> Result<(), CliError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| CliError::Io { path, source }
    };
    let text = toml::to_string(profiles).map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            create_private_dir(dir).map_err(io_err(dir))?;
        }
    }
    let tmp = path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = create_private_file(&tmp).map_err(io_err(&tmp))?;
    file.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    restrict(path).map_err(io_err(path))
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Mode 0600, whatever the umask or an earlier file had.
#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The profile `name` with the environment's overrides; `var` reads a variable (empty
/// counts as unset). Fails when the profile does not exist and the environment gives no
/// setting either.
pub fn resolve(
    profiles: &Profiles,
    path: &Path,
    name: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, CliError> {
    let var = |k: &str| var(k).filter(|v| !v.is_empty());
    let found = profiles.profiles.get(name);
    let from_env = [
        env::INGEST_URL,
        env::QUERY_URL,
        env::API_KEY,
        env::CLIENT_ID,
        env::CLIENT_SECRET,
    ]
    .iter()
    .any(|k| var(k).is_some());
    if found.is_none() && !from_env {
        return Err(CliError::MissingProfile {
            name: name.to_owned(),
            path: path.to_owned(),
        });
    }
    let p = found.cloned().unwrap_or_default();
    let env_key = var(env::API_KEY).map(Secret::new);
    let env_id = var(env::CLIENT_ID);
    let env_secret = var(env::CLIENT_SECRET).map(Secret::new);
    let client = |id: Option<String>, secret: Option<Secret>| match (id, secret) {
        (Some(client_id), Some(client_secret)) => Some(Credentials::ClientCredentials {
            client_id,
            client_secret,
        }),
        _ => None,
    };
    let credentials = if let Some(key) = env_key {
        Some(Credentials::ApiKey(key))
    } else if env_id.is_some() || env_secret.is_some() {
        client(env_id.or(p.client_id), env_secret.or(p.client_secret))
    } else if let Some(key) = p.api_key {
        Some(Credentials::ApiKey(key))
    } else {
        client(p.client_id, p.client_secret)
    };
    Ok(Resolved {
        profile: name.to_owned(),
        ingest_url: var(env::INGEST_URL).or(p.ingest_url),
        query_url: var(env::QUERY_URL).or(p.query_url),
        credentials,
    })
}

/// Checks a service URL as `eye login` takes it: `http://` or `https://`, then a host.
pub fn check_url(flag: &str, url: &str) -> Result<String, CliError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !url.contains(char::is_whitespace) => {
            Ok(url.trim_end_matches('/').to_owned())
        }
        _ => Err(CliError::Usage(format!(
            "{flag} must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080; got {url:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> Profiles {
        let mut p = Profiles::default();
        p.profiles.insert(
            "default".into(),
            Profile {
                ingest_url: Some("http://i".into()),
                query_url: Some("http://q".into()),
                api_key: Some(Secret::new("key-1")),
                ..Profile::default()
            },
        );
        p.profiles.insert(
            "prod".into(),
            Profile {
                ingest_url: Some("https://pi".into()),
                query_url: Some("https://pq".into()),
                client_id: Some("cid".into()),
                client_secret: Some(Secret::new("cs-1")),
                ..Profile::default()
            },
        );
        p
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn key(k: &str) -> Option<Credentials> {
        Some(Credentials::ApiKey(Secret::new(k)))
    }

    fn client(id: &str, s: &str) -> Option<Credentials> {
        Some(Credentials::ClientCredentials {
            client_id: id.into(),
            client_secret: Secret::new(s),
        })
    }

    #[test]
    fn the_environment_overrides_each_field() {
        type Case = (
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
            Option<Credentials>,
        );
        let cases: Vec<Case> = vec![
            ("default", &[], "http://i", "http://q", key("key-1")),
            (
                "prod",
                &[],
                "https://pi",
                "https://pq",
                client("cid", "cs-1"),
            ),
            (
                "default",
                &[("EYE_QUERY_URL", "http://env-q")],
                "http://i",
                "http://env-q",
                key("key-1"),
            ),
            (
                "default",
                &[("EYE_INGEST_URL", "http://env-i"), ("EYE_API_KEY", "")],
                "http://env-i",
                "http://q",
                key("key-1"),
            ),
            (
                "prod",
                &[("EYE_API_KEY", "env-key")],
                "https://pi",
                "https://pq",
                key("env-key"),
            ),
            (
                "prod",
                &[("EYE_CLIENT_SECRET", "env-cs")],
                "https://pi",
                "https://pq",
                client("cid", "env-cs"),
            ),
            (
                "default",
                &[("EYE_CLIENT_ID", "x"), ("EYE_CLIENT_SECRET", "y")],
                "http://i",
                "http://q",
                client("x", "y"),
            ),
            // A client id from the environment without any secret is no credentials.
            (
                "default",
                &[("EYE_CLIENT_ID", "x")],
                "http://i",
                "http://q",
                None,
            ),
            // No such profile, but the environment gives settings.
            (
                "ci",
                &[("EYE_INGEST_URL", "http://e")],
                "http://e",
                "",
                None,
            ),
        ];
        for (name, vars, ingest, query, credentials) in cases {
            let got =
                resolve(&profiles(), Path::new("p.toml"), name, &env_of(vars)).expect("resolves");
            assert_eq!(got.profile, name);
            assert_eq!(
                got.ingest_url.as_deref().unwrap_or(""),
                ingest,
                "{name} {vars:?}"
            );
            assert_eq!(
                got.query_url.as_deref().unwrap_or(""),
                query,
                "{name} {vars:?}"
            );
            assert_eq!(got.credentials, credentials, "{name} {vars:?}");
        }
    }

    #[test]
    fn a_missing_profile_or_setting_says_so() {
        let err =
            resolve(&profiles(), Path::new("p.toml"), "nope", &env_of(&[])).expect_err("missing");
        assert!(
            matches!(err, CliError::MissingProfile { ref name, .. } if name == "nope"),
            "{err}"
        );
        let r = resolve(
            &profiles(),
            Path::new("p.toml"),
            "ci",
            &env_of(&[("EYE_API_KEY", "k")]),
        )
        .expect("resolves");
        let err = r.query_url().expect_err("no query URL");
        assert_eq!(err.to_string(), "profile \"ci\" has no query URL");
        assert!(err.hint().unwrap_or_default().contains("EYE_QUERY_URL"));
        assert!(r.credentials().is_ok());
    }

    #[test]
    fn secrets_are_never_shown() {
        let r = resolve(&profiles(), Path::new("p.toml"), "prod", &env_of(&[])).expect("resolves");
        let debug = format!("{r:?} {:?}", profiles());
        let described = r.describe();
        for shown in [&debug, &described] {
            assert!(
                !shown.contains("cs-1") && !shown.contains("key-1"),
                "{shown}"
            );
        }
        assert!(debug.contains("<redacted>"), "{debug}");
        assert_eq!(
            described,
            "profile: prod\ningest_url: https://pi\nquery_url: https://pq\ncredentials: client cid, secret set, not shown\n"
        );
    }

    #[test]
    fn the_file_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eye").join("profiles.toml");
        assert_eq!(load(&path).expect("missing is empty"), Profiles::default());
        save(&path, &profiles()).expect("saves");
        assert_eq!(load(&path).expect("loads"), profiles());
        let text = std::fs::read_to_string(&path).expect("text");
        assert!(text.contains("[profiles.prod]"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().expect("dir")), 0o700);
            // A file left readable by others is narrowed on the next save.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            save(&path, &profiles()).expect("saves");
            assert_eq!(mode(&path), 0o600);
        }
        std::fs::write(&path, "[profiles.x]\napi_kee = 1\n").expect("write");
        let err = load(&path).expect_err("bad");
        assert!(err.to_string().contains("unknown field `api_kee`"), "{err}");
    }

    #[test]
    fn urls_are_checked() {
        let cases = [
            ("http://127.0.0.1:8080", Some("http://127.0.0.1:8080")),
            ("https://q.example.com/", Some("https://q.example.com")),
            ("127.0.0.1:8080", None),
            ("http://", None),
            ("ftp://x", None),
            ("http://a b", None),
        ];
        for (url, want) in cases {
            assert_eq!(
                check_url("--ingest-url", url).ok().as_deref(),
                want,
                "{url}"
            );
        }
    }
}
