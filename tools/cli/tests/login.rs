//! `eye login` and `eye config`: profiles written 0600 in the config directory (here a
//! temporary `XDG_CONFIG_HOME`), picked with `--profile` or `EYE_PROFILE`, overridden by
//! the `EYE_*` variables, and secrets never printed.

use assert_cmd::Command;
use predicates::str::contains;
use std::path::{Path, PathBuf};

const VARS: [&str; 6] = [
    "EYE_PROFILE",
    "EYE_INGEST_URL",
    "EYE_QUERY_URL",
    "EYE_API_KEY",
    "EYE_CLIENT_ID",
    "EYE_CLIENT_SECRET",
];

fn eye(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eye"));
    cmd.env("XDG_CONFIG_HOME", config).env("HOME", config);
    for v in VARS {
        cmd.env_remove(v);
    }
    cmd
}

fn profiles_file(config: &Path) -> PathBuf {
    config.join("eye").join("profiles.toml")
}

/// Runs and checks that nothing printed holds `secret`.
fn run_without_showing(cmd: &mut Command, secret: &str, code: i32) -> String {
    let out = cmd.assert().code(code);
    let o = out.get_output();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "{stdout}{stderr}"
    );
    stdout
}

#[test]
fn two_profiles_written_0600_picked_by_flag_or_variable() {
    let config = tempfile::tempdir().expect("tempdir");
    let c = config.path();
    let stdout = run_without_showing(
        eye(c).args([
            "login",
            "--ingest-url",
            "http://127.0.0.1:8080",
            "--query-url",
            "http://127.0.0.1:8081/",
            "--api-key",
            "sekret-key-1",
        ]),
        "sekret-key-1",
        0,
    );
    assert!(
        stdout.starts_with("saved profile \"default\" in "),
        "{stdout}"
    );
    assert!(stdout.contains("API key (not shown)"), "{stdout}");
    // The secret read from stdin stays out of the command line.
    run_without_showing(
        eye(c)
            .args([
                "--profile",
                "prod",
                "login",
                "--ingest-url",
                "https://ingest.example.com",
                "--query-url",
                "https://query.example.com",
                "--client-id",
                "cid-7",
                "--client-secret",
                "-",
            ])
            .write_stdin("sekret-cs-2\n"),
        "sekret-cs-2",
        0,
    );

    let file = profiles_file(c);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&file).expect("text");
    let stored: toml::Table = text.parse().expect("TOML");
    assert_eq!(
        stored["profiles"]["default"]["api_key"].as_str(),
        Some("sekret-key-1")
    );
    assert_eq!(
        stored["profiles"]["default"]["query_url"].as_str(),
        Some("http://127.0.0.1:8081")
    );
    assert_eq!(
        stored["profiles"]["prod"]["client_secret"].as_str(),
        Some("sekret-cs-2")
    );

    let show = |cmd: &mut Command| {
        let s1 = run_without_showing(cmd, "sekret-key-1", 0);
        assert!(!s1.contains("sekret-cs-2"), "{s1}");
        s1
    };
    let default = show(eye(c).arg("config"));
    assert!(default.starts_with("profile: default\ningest_url: http://127.0.0.1:8080\nquery_url: http://127.0.0.1:8081\ncredentials: API key (set, not shown)\n"), "{default}");
    let prod = show(eye(c).args(["config", "--profile", "prod"]));
    assert!(
        prod.contains("ingest_url: https://ingest.example.com\n"),
        "{prod}"
    );
    assert!(
        prod.contains("credentials: client cid-7, secret set, not shown\n"),
        "{prod}"
    );
    let by_var = show(eye(c).arg("config").env("EYE_PROFILE", "prod"));
    assert_eq!(by_var, prod);
    // The flag wins over the variable.
    let flag = show(
        eye(c)
            .args(["--profile", "default", "config"])
            .env("EYE_PROFILE", "prod"),
    );
    assert_eq!(flag, default);

    // The environment overrides each field.
    let env = show(
        eye(c)
            .args(["config", "--profile", "prod"])
            .env("EYE_QUERY_URL", "http://other:9000")
            .env("EYE_API_KEY", "sekret-key-1"),
    );
    assert!(
        env.contains("ingest_url: https://ingest.example.com\n"),
        "{env}"
    );
    assert!(env.contains("query_url: http://other:9000\n"), "{env}");
    assert!(
        env.contains("credentials: API key (set, not shown)\n"),
        "{env}"
    );

    // Logging in again replaces the profile; the file stays 0600 even if it was widened.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        run_without_showing(
            eye(c).args(["login", "--api-key", "sekret-key-3"]),
            "sekret-key-3",
            0,
        );
        let mode = std::fs::metadata(&file)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = show(eye(c).arg("config"));
        assert!(
            again.contains("ingest_url: http://127.0.0.1:8080\n"),
            "{again}"
        );
    }
}

#[test]
fn missing_profiles_and_bad_arguments_are_explained() {
    let config = tempfile::tempdir().expect("tempdir");
    let c = config.path();
    eye(c)
        .args(["config", "--profile", "staging"])
        .assert()
        .code(2)
        .stderr(contains("error: no profile \"staging\" in "))
        .stderr(contains("hint: run `eye login`"));
    // The environment alone is enough.
    eye(c)
        .arg("config")
        .env("EYE_INGEST_URL", "http://i:1")
        .assert()
        .code(0)
        .stdout(contains(
            "ingest_url: http://i:1\nquery_url: (unset)\ncredentials: (unset)\n",
        ));
    eye(c)
        .args(["login", "--ingest-url", "localhost:8080", "--api-key", "k"])
        .assert()
        .code(2)
        .stderr(contains(
            "error: --ingest-url must be an http:// or https:// URL",
        ));
    // Credentials are required, and an API key excludes client credentials.
    eye(c).args(["login"]).assert().code(2);
    eye(c)
        .args([
            "login",
            "--api-key",
            "k",
            "--client-id",
            "i",
            "--client-secret",
            "s",
        ])
        .assert()
        .code(2);
    eye(c).args(["login", "--client-id", "i"]).assert().code(2);
    eye(c)
        .args(["login", "--api-key", "-"])
        .write_stdin("")
        .assert()
        .code(2)
        .stderr(contains("error: --api-key: stdin held no line"));
    assert!(!profiles_file(c).exists());
}
