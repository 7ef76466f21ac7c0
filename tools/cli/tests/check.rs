//! `eye check` as a user runs it: exit codes, and messages naming the line, the field and
//! the code, worded exactly as ingest words them (computed here with `eye_model` itself).

use assert_cmd::Command;
use eye_model::event::{parse_batch, FieldError, Item, Limits, Rules};
use eye_model::schema::{SchemaRegistry, UnknownTypePolicy};
use eye_model::time::EventTime;
use predicates::str::contains;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn eye() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eye"));
    cmd.current_dir(repo());
    cmd
}

/// What ingest answers for `event`, sent alone, with the schemas of `dir`.
fn ingest_errors(event: &str, dir: &Path, policy: UnknownTypePolicy) -> Vec<FieldError> {
    let schemas = SchemaRegistry::load(dir).expect("schemas");
    let limits = Limits::default();
    let rules = Rules {
        limits: &limits,
        schemas: &schemas,
        unknown_types: policy,
    };
    match parse_batch(event.as_bytes(), EventTime::now(), rules)
        .expect("a request")
        .remove(0)
    {
        Item::Accepted(_) => Vec::new(),
        Item::Rejected(r) => r.errors,
    }
}

fn line(n: usize, e: &FieldError) -> String {
    let field = if e.field.is_empty() {
        "(event)"
    } else {
        &e.field
    };
    format!("line {n}: {field}: {}: {}\n", e.code, e.message)
}

const VIEW: &str = r#"{"session_id":"s-1","category":"page_interaction","name":"page_view","timestamp":"2024-05-01T10:00:00Z","data":{"host":"example.com","path":"/"}}"#;

fn without_name() -> String {
    VIEW.replace(r#""name":"page_view","#, "")
}

fn empty_path() -> String {
    VIEW.replace(r#""path":"/""#, r#""path":"""#)
}

fn unknown_type() -> String {
    VIEW.replace("page_view", "page_leave")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn valid_files_pass_with_exit_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ndjson = write(dir.path(), "ok.ndjson", &format!("{VIEW}\n\n{VIEW}\n"));
    let array = write(
        dir.path(),
        "ok.json",
        &format!("[\n  {VIEW},\n  {VIEW}\n]\n"),
    );
    for file in [&ndjson, &array] {
        eye()
            .arg("check")
            .arg(file)
            .assert()
            .code(0)
            .stdout("checked 2, valid 2, rejected 0\n");
    }
}

#[test]
fn rejected_events_are_named_by_line_field_and_code_with_ingests_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schemas = repo().join("schemas");
    let policy = UnknownTypePolicy::Reject;
    // NDJSON: line 3 is blank and skipped; the numbers are the file's own lines.
    let text = format!(
        "{VIEW}\n{}\n\n{}\n{VIEW}\n{}\n",
        without_name(),
        empty_path(),
        unknown_type()
    );
    let file = write(dir.path(), "mixed.ndjson", &text);
    let mut want = String::new();
    for (n, event) in [(2, without_name()), (4, empty_path()), (6, unknown_type())] {
        let errors = ingest_errors(&event, &schemas, policy);
        assert!(!errors.is_empty(), "ingest rejects line {n}");
        for e in &errors {
            want.push_str(&line(n, e));
        }
    }
    want.push_str("checked 5, valid 2, rejected 3\n");
    let out = eye().arg("check").arg(&file).assert().code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(stdout, want);
    assert!(
        stdout.contains("line 2: /name: required: name is required\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 4: /data/path: schema_length: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 6: (event): unknown_event_type: "),
        "{stdout}"
    );

    // A JSON array: each item's line is where it starts.
    let text = format!("[\n  {VIEW},\n  {},\n  {VIEW}\n]\n", without_name());
    let file = write(dir.path(), "mixed.json", &text);
    let e = &ingest_errors(&without_name(), &schemas, policy)[0];
    eye()
        .arg("check")
        .arg(&file)
        .assert()
        .code(1)
        .stdout(format!("{}checked 3, valid 2, rejected 1\n", line(3, e)));
}

#[test]
fn unknown_types_can_be_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "u.ndjson", &format!("{}\n", unknown_type()));
    eye()
        .args(["check", "--unknown-types", "accept"])
        .arg(&file)
        .assert()
        .code(0)
        .stdout("checked 1, valid 1, rejected 0\n");
    assert!(ingest_errors(
        &unknown_type(),
        &repo().join("schemas"),
        UnknownTypePolicy::Accept
    )
    .is_empty());
}

#[test]
fn a_schemas_directory_of_ones_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(schemas.join("shop")).expect("mkdir");
    std::fs::write(
        schemas.join("shop/order.json"),
        r#"{"type":"object","properties":{"total":{"type":"number","minimum":0}},"required":["total"]}"#,
    )
    .expect("schema");
    let good = r#"{"session_id":"s","category":"shop","name":"order","timestamp":1714557600,"data":{"total":12.5}}"#;
    let bad = r#"{"session_id":"s","category":"shop","name":"order","timestamp":1714557600,"data":{"total":-1}}"#;
    let file = write(
        dir.path(),
        "orders.ndjson",
        &format!("{good}\n{bad}\n{VIEW}\n"),
    );
    let mut want = String::new();
    for (n, event) in [(2, bad), (3, VIEW)] {
        for e in ingest_errors(event, &schemas, UnknownTypePolicy::Reject) {
            want.push_str(&line(n, &e));
        }
    }
    want.push_str("checked 3, valid 1, rejected 2\n");
    eye()
        .arg("check")
        .arg("--schemas")
        .arg(&schemas)
        .arg(&file)
        .assert()
        .code(1)
        .stdout(want)
        .stdout(contains("line 2: /data/total: schema_range: "))
        .stdout(contains(
            "line 3: (event): unknown_event_type: no schema for category ",
        ))
        .stdout(contains("; known types: shop/order\n"));
}

#[test]
fn json_output_and_stdin() {
    let input = format!("{VIEW}\n{}\n", without_name());
    let out = eye()
        .args(["check", "--json", "-"])
        .write_stdin(input)
        .assert()
        .code(1);
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("JSON");
    assert_eq!(report["checked"], 2);
    assert_eq!(report["valid"], 1);
    assert_eq!(report["rejected"], 1);
    assert_eq!(report["rejections"][0]["line"], 2);
    assert_eq!(report["rejections"][0]["errors"][0]["field"], "/name");
    assert_eq!(report["rejections"][0]["errors"][0]["code"], "required");
    assert_eq!(
        report["rejections"][0]["errors"][0]["message"],
        "name is required"
    );
}

#[test]
fn broken_input_and_missing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A line that is not JSON is rejected on its own; the others are still checked.
    let file = write(
        dir.path(),
        "broken.ndjson",
        &format!("{VIEW}\n{{\"a\": 1,}}\n"),
    );
    eye()
        .arg("check")
        .arg(&file)
        .assert()
        .code(1)
        .stdout(contains(
            "line 2: (event): malformed_json: not valid JSON: trailing comma",
        ))
        .stdout(contains("checked 2, valid 1, rejected 1\n"));
    // An array that is not JSON cannot be split: an error naming the line, exit 1.
    let file = write(
        dir.path(),
        "broken.json",
        &format!("[\n{VIEW},\n{VIEW},\n]\n"),
    );
    eye()
        .arg("check")
        .arg(&file)
        .assert()
        .code(1)
        .stderr(contains("not valid JSON: trailing comma"))
        .stderr(contains("at line 4, column 1"))
        .stderr(contains("hint: "));
    // A missing file or schema directory: exit 2, error and hint, no Debug output.
    let out = eye()
        .args(["check", "/nonexistent/events.ndjson"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.starts_with("error: /nonexistent/events.ndjson: No such file"),
        "{stderr}"
    );
    assert!(!stderr.contains("Os {"), "{stderr}");
    eye()
        .args(["check", "--schemas", "/nonexistent/schemas"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(contains(
            "error: schema directory /nonexistent/schemas cannot be read",
        ))
        .stderr(contains("hint: `--schemas DIR`"));
    // Usage errors: exit 2.
    eye()
        .args(["check", "--csv"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr("error: `eye check` prints lines for people, or one report with --json\n");
    eye().args(["check"]).assert().code(2);
    eye()
        .args(["check", "--unknown-types", "maybe", "x"])
        .assert()
        .code(2);
}
