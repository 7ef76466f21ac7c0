//! The `eye` command against the whole pipeline, as a person or a script runs it: `login`,
//! `send` (refused events named by line and rule, the exit status), then every read in
//! table and JSON form, `tail`, and the errors people meet first (a wrong key, a service
//! that is not running), each with its hint.

use eye_e2e::{test_auth, unique, wait_for, Stack};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The `eye` binary of this build (`cargo test --workspace` and `make test` build it).
fn eye_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join("eye");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p eye-cli`",
        bin.display()
    );
    bin
}

struct Eye {
    config_home: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Eye {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = assert_cmd::Command::new(eye_binary());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("XDG_CONFIG_HOME", &self.config_home)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .write_stdin(stdin.unwrap_or_default());
        cmd.output().expect("eye runs")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", text(&o.stdout), text(&o.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_works_against_the_stack() -> anyhow::Result<()> {
    let stack = Stack::start("cli").await?;
    let home = std::env::temp_dir().join(unique("eye-cli-home"));
    std::fs::create_dir_all(&home)?;
    let eye = Eye {
        config_home: home.clone(),
        env: Vec::new(),
    };

    // login: the key from stdin, never echoed.
    let key = test_auth().api_key.clone();
    let out = eye.run(
        &[
            "login",
            "--ingest-url",
            &stack.ingest.url(""),
            "--query-url",
            &stack.query.url(""),
            "--api-key",
            "-",
        ],
        Some(&format!("{key}\n")),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(&key) && !text(&out.stderr).contains(&key));

    // A file of 300 events, two of them refused (lines 2 and 5).
    let session = unique("cli");
    let now = chrono::Utc::now();
    let mut lines = Vec::new();
    for i in 0..302 {
        let at = (now - chrono::Duration::milliseconds(302 - i)).to_rfc3339();
        let event = match i {
            1 => json!({"session_id": session, "category": "page_interaction", "name": "page_view",
                        "data": {"host": "h", "path": "/"}, "timestamp": "yesterday"}),
            4 => json!({"session_id": session, "category": "page_interaction", "name": "cta_click",
                        "data": {"host": "h", "path": "/"}, "timestamp": at}),
            _ => json!({"session_id": session, "category": "page_interaction", "name": "page_view",
                        "data": {"host": "h", "path": format!("/{i}")}, "timestamp": at,
                        "value": i}),
        };
        lines.push(event.to_string());
    }
    let file = home.join("events.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n")?;
    let refused_file = home.join("refused.ndjson");
    let out = eye.run(
        &[
            "send",
            file.to_str().unwrap_or_default(),
            "--rejected-out",
            refused_file.to_str().unwrap_or_default(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("accepted 300, rejected or failed 2"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: run `eye check FILE`"), "{stderr}");
    assert!(
        !stderr.contains('█'),
        "no bar when stderr is not a terminal"
    );
    let refused: Vec<Value> = std::fs::read_to_string(&refused_file)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let mut named: Vec<(u64, String, String)> = refused
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap_or(0),
                r["reasons"][0]["field"].as_str().unwrap_or("").to_owned(),
                r["reasons"][0]["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        vec![
            (2, "/timestamp".into(), "invalid_timestamp".into()),
            (5, "/data/element".into(), "schema_required".into()),
        ]
    );

    // Reads, once the consumer stored the 300.
    let listing = wait_for(Duration::from_secs(60), "the events stored", || async {
        let out = eye.run(&["events", "--session", &session, "--json"], None);
        let v = json_of(&out);
        (v.as_array().map(Vec::len) == Some(300)).then_some(v)
    })
    .await?;
    assert_eq!(listing[0]["data"]["path"], "/0");

    let out = eye.run(&["session", &session, "--json"], None);
    let v = json_of(&out);
    assert_eq!(v["events"].as_array().map(Vec::len), Some(300));
    let out = eye.run(&["session", &session, "--table"], None);
    let table = text(&out.stdout);
    assert!(
        table.contains(&session) && table.contains("page_view"),
        "{table}"
    );

    let out = eye.run(
        &["events", "--session", &session, "--limit", "3", "--csv"],
        None,
    );
    let csv = text(&out.stdout);
    assert_eq!(csv.lines().count(), 4, "a header and 3 rows: {csv}");
    let out = eye.run(
        &["events", "--session", &session, "--limit", "3", "--table"],
        None,
    );
    assert!(text(&out.stdout).contains("/2"), "{}", text(&out.stdout));

    let agg = [
        "agg",
        "--category",
        "page_interaction",
        "--name",
        "page_view",
        "--agg",
        "count",
        "--granularity",
        "year",
    ];
    let out = eye.run(&[&agg[..], &["--json"]].concat(), None);
    let v = json_of(&out);
    let counted: u64 = v["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["count"].as_u64())
        .sum();
    assert_eq!(counted, 300);
    let out = eye.run(&[&agg[..], &["--table"]].concat(), None);
    let table = text(&out.stdout);
    assert!(table.contains('█') && table.contains("300"), "{table}");

    let out = eye.run(&["categories", "--table"], None);
    let table = text(&out.stdout);
    assert!(
        table.contains("page_interaction") && table.contains("300"),
        "{table}"
    );
    let out = eye.run(&["categories", "--json"], None);
    let v = json_of(&out);
    assert!(v["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["name"] == "page_view" && c["events"] == 300));

    let out = eye.run(
        &["rejected", "--reason", "invalid_timestamp", "--json"],
        None,
    );
    let v = json_of(&out);
    assert!(v
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["session_id"] == session.as_str()));
    let out = eye.run(&["rejected", "--table"], None);
    assert!(text(&out.stdout).contains("invalid_timestamp"));

    // tail: the recent events, each once, as lines.
    let out = eye.run(
        &[
            "tail",
            "--session",
            &session,
            "--polls",
            "2",
            "--interval-ms",
            "50",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 300);

    // Errors people meet first: a wrong key, a service that is not running.
    let wrong = Eye {
        config_home: home.clone(),
        env: vec![("EYE_API_KEY", format!("{key}x"))],
    };
    let out = wrong.run(&["categories"], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("401 invalid_credentials"), "{stderr}");
    assert!(
        stderr.contains("hint:") && stderr.contains("eye login"),
        "{stderr}"
    );
    assert!(!stderr.contains("Api {"), "no Debug output: {stderr}");
    let down = Eye {
        config_home: home.clone(),
        env: vec![("EYE_QUERY_URL", "http://127.0.0.1:9".into())],
    };
    let out = down.run(&["categories"], None);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot reach") && stderr.contains("make up"),
        "{stderr}"
    );

    let _ = std::fs::remove_dir_all(&home);
    stack.stop().await
}

/// The `eye` lines of the README's quick start, as written.
fn quick_start_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let start = readme.find("## Quick start").expect("a quick start");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end]
        .lines()
        .filter(|l| l.starts_with("eye "))
        .map(|l| {
            let command = l.split('#').next().unwrap_or("");
            command
                .split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e sits in the workspace")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_quick_start_works_as_written() -> anyhow::Result<()> {
    let commands = quick_start_commands();
    let names: Vec<&str> = commands
        .iter()
        .filter_map(|c| c.first().map(String::as_str))
        .collect();
    assert_eq!(names, ["send", "session"], "{commands:?}");
    let stack = Stack::start("cli_readme").await?;
    let home = std::env::temp_dir().join(unique("eye-readme-home"));
    std::fs::create_dir_all(&home)?;
    // What `source .eye/dev-credentials` exports.
    let env = [
        ("EYE_API_KEY", test_auth().api_key.clone()),
        ("EYE_CLIENT_ID", test_auth().client_id.clone()),
        ("EYE_CLIENT_SECRET", test_auth().client_secret.clone()),
        ("EYE_INGEST_URL", stack.ingest.url("")),
        ("EYE_QUERY_URL", stack.query.url("")),
    ];
    let run = |args: &[String]| {
        let out = Command::new(eye_binary())
            .args(args)
            .current_dir(repo_root())
            .env("XDG_CONFIG_HOME", &home)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("eye runs");
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let (code, _, stderr) = run(&commands[0]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("sent 4, accepted 4, rejected or failed 0"),
        "{stderr}"
    );
    // "A second later": the consumer's batch interval.
    let session = wait_for(
        Duration::from_secs(30),
        "the quick start's session",
        || async {
            let (code, stdout, _) = run(&commands[1]);
            let v: Value = serde_json::from_str(&stdout).ok()?;
            (code == Some(0) && v["events"].as_array().map(Vec::len) == Some(4)).then_some(v)
        },
    )
    .await?;
    assert_eq!(session["session_id"], "quickstart-1");
    let _ = std::fs::remove_dir_all(&home);
    stack.stop().await
}
