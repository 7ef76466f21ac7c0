//! The command's errors, for people: each prints as an `error: ...` line and, for the
//! common failures, a `hint: ...` line saying what to do. Never Rust's `Debug` output.
//!
//! The HTTP variants hold plain values (status, code, message, URL) so that the client's
//! errors map onto them without this crate knowing the client.

use crate::input::InputError;
use eye_model::schema::SchemaLoadError;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when events were rejected (by `eye check`, or by ingest).
pub const EXIT_REJECTED: u8 = 1;
/// Exit status when the command could not do its work: usage, files, network, settings.
pub const EXIT_FAILURE: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// 401 or 403 from a service.
    #[error("{url} answered {status} {code}: {message}")]
    Unauthorized {
        status: u16,
        code: String,
        message: String,
        url: String,
    },
    /// The service could not be reached: connection refused, no route, DNS, timeout.
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    /// Any other error answer of a service.
    #[error("{url} answered {status} {code}: {message}")]
    Http {
        status: u16,
        code: String,
        message: String,
        url: String,
    },
    /// Events broke the event contract (schema or other rules).
    #[error("{rejected} of {total} events were rejected")]
    Rejected { rejected: u64, total: u64 },
    /// The named profile is not in the profiles file, and the environment does not stand in.
    #[error("no profile {name:?} in {}", path.display())]
    MissingProfile { name: String, path: PathBuf },
    /// A setting the command needs is set neither in the profile nor in the environment.
    #[error("profile {profile:?} has no {setting}")]
    MissingSetting {
        profile: String,
        setting: &'static str,
        env: &'static str,
    },
    /// The profiles file exists but cannot be read as TOML.
    #[error("{}: {message}", path.display())]
    BadProfiles { path: PathBuf, message: String },
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Schemas(#[from] SchemaLoadError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Arguments that clap cannot refuse alone.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// A service's error answer: 401 and 403 become [`CliError::Unauthorized`], anything
    /// else [`CliError::Http`].
    pub fn from_status(status: u16, code: &str, message: &str, url: &str) -> Self {
        let (code, message, url) = (code.to_owned(), message.to_owned(), url.to_owned());
        match status {
            401 | 403 => Self::Unauthorized {
                status,
                code,
                message,
                url,
            },
            _ => Self::Http {
                status,
                code,
                message,
                url,
            },
        }
    }

    /// Output cut short by its reader (`eye ... | head`): nothing to report.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// What to do about it, for the common failures.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Unauthorized { status: 403, .. } => {
                "the credentials are valid but lack the scope for this: check the API key's scopes (`eye-admin clients`), or run `eye login` with another".into()
            }
            Self::Unauthorized { .. } => {
                "check the API key or scopes; run `eye login` to store working credentials".into()
            }
            Self::Unreachable { url, .. } => {
                format!("is the service running at {url}? `make up` starts it; `eye login` sets the URLs")
            }
            Self::Rejected { .. } => {
                "run `eye check FILE` to list every rejected event with its line, field and code, without sending anything".into()
            }
            Self::MissingProfile { .. } => {
                "run `eye login` to create it, or set EYE_INGEST_URL, EYE_QUERY_URL and EYE_API_KEY".into()
            }
            Self::MissingSetting { profile, env, .. } => {
                format!("run `eye login --profile {profile}` to set it, or set {env}")
            }
            Self::BadProfiles { .. } => {
                "fix the file, or remove it and run `eye login` again".into()
            }
            Self::Input(InputError::MalformedArray { .. }) => {
                "a file of events is a JSON array, or NDJSON: one event object per line".into()
            }
            Self::Schemas(_) => {
                "`--schemas DIR` names a directory of `<category>/<name>.json` files; by default `schemas` in the working directory".into()
            }
            _ => return None,
        })
    }

    /// The process's exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Rejected { .. } | Self::Input(InputError::MalformedArray { .. }) => EXIT_REJECTED,
            _ => EXIT_FAILURE,
        }
    }

    /// What is printed on stderr: `error: ...`, then `hint: ...` when there is one.
    pub fn report(&self) -> String {
        let mut out = format!("error: {self}\n");
        if let Some(hint) = self.hint() {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }

    /// Prints the report on stderr and gives the exit status.
    pub fn exit(&self) -> ExitCode {
        if self.is_broken_pipe() {
            return ExitCode::from(self.exit_code());
        }
        eprint!("{}", self.report());
        ExitCode::from(self.exit_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_common_failure_has_its_hint() {
        let cases: Vec<(CliError, &str, &str, u8)> = vec![
            (
                CliError::Unauthorized {
                    status: 401,
                    code: "unauthorized".into(),
                    message: "invalid API key".into(),
                    url: "http://127.0.0.1:8080/v1/events".into(),
                },
                "error: http://127.0.0.1:8080/v1/events answered 401 unauthorized: invalid API key",
                "hint: check the API key or scopes; run `eye login`",
                2,
            ),
            (
                CliError::Unauthorized {
                    status: 403,
                    code: "forbidden".into(),
                    message: "missing scope events:read".into(),
                    url: "http://q/v1/events".into(),
                },
                "error: http://q/v1/events answered 403 forbidden: missing scope events:read",
                "hint: the credentials are valid but lack the scope",
                2,
            ),
            (
                CliError::Unreachable {
                    url: "http://127.0.0.1:8080".into(),
                    message: "connection refused".into(),
                },
                "error: cannot reach http://127.0.0.1:8080: connection refused",
                "hint: is the service running at http://127.0.0.1:8080? `make up` starts it",
                2,
            ),
            (
                CliError::Rejected {
                    rejected: 2,
                    total: 10,
                },
                "error: 2 of 10 events were rejected",
                "hint: run `eye check FILE`",
                1,
            ),
            (
                CliError::MissingProfile {
                    name: "prod".into(),
                    path: "/home/u/.config/eye/profiles.toml".into(),
                },
                "error: no profile \"prod\" in /home/u/.config/eye/profiles.toml",
                "hint: run `eye login`",
                2,
            ),
            (
                CliError::MissingSetting {
                    profile: "default".into(),
                    setting: "query URL",
                    env: "EYE_QUERY_URL",
                },
                "error: profile \"default\" has no query URL",
                "hint: run `eye login --profile default` to set it, or set EYE_QUERY_URL",
                2,
            ),
        ];
        for (err, error, hint, code) in cases {
            let report = err.report();
            let lines: Vec<&str> = report.lines().collect();
            assert_eq!(lines.len(), 2, "{report}");
            assert_eq!(lines[0], error);
            assert!(lines[1].starts_with(hint), "{report}");
            assert_eq!(err.exit_code(), code, "{report}");
        }
    }

    #[test]
    fn statuses_map_to_their_variants() {
        let cases = [
            (401, true),
            (403, true),
            (400, false),
            (404, false),
            (503, false),
        ];
        for (status, unauthorized) in cases {
            let e = CliError::from_status(status, "c", "m", "http://u");
            assert_eq!(
                matches!(e, CliError::Unauthorized { .. }),
                unauthorized,
                "{status}"
            );
            assert_eq!(e.to_string(), format!("http://u answered {status} c: m"));
        }
        let pipe = CliError::Io {
            path: "<stdout>".into(),
            source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
        };
        assert!(pipe.is_broken_pipe());
        assert!(!CliError::Usage("x".into()).is_broken_pipe());
    }

    #[test]
    fn other_errors_print_without_a_hint_and_without_debug_output() {
        let err = CliError::Http {
            status: 500,
            code: "internal".into(),
            message: "boom".into(),
            url: "http://q/v1/aggregate".into(),
        };
        assert_eq!(
            err.report(),
            "error: http://q/v1/aggregate answered 500 internal: boom\n"
        );
        let err = CliError::Io {
            path: "out.csv".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let report = err.report();
        assert_eq!(report, "error: out.csv: permission denied\n");
        assert!(!report.contains("Kind("), "{report}");
    }
}
