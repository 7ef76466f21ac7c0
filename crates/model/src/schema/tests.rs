use super::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");

fn shipped() -> SchemaRegistry {
    SchemaRegistry::load(Path::new(SHIPPED)).expect("shipped schemas load")
}

/// `(pointer, code)` of every violation, or a panic naming what came back instead.
fn violations(
    registry: &SchemaRegistry,
    category: &str,
    name: &str,
    data: &Value,
) -> Vec<(String, &'static str)> {
    match registry.validate(category, name, data) {
        Validation::Invalid(v) => v.into_iter().map(|v| (v.pointer, v.code)).collect(),
        other => panic!("expected violations for {category}/{name} {data}, got {other:?}"),
    }
}

/// A fresh, empty directory under the system temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "eye-schema-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().expect("has a parent")).expect("create dir");
        fs::write(&path, contents).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const OBJECT_WITH_ID: &str = r#"{
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["id"]
}"#;

#[test]
fn loads_every_shipped_type() {
    let registry = shipped();
    assert_eq!(
        registry.types(),
        [
            ("form_interaction", "submit"),
            ("machine", "cpu_load"),
            ("machine", "memory_used"),
            ("page_interaction", "cta_click"),
            ("page_interaction", "page_view"),
            // A Segment tracking-plan example; a name may hold spaces.
            ("track", "Order Completed"),
        ]
        .map(|(c, n)| (c.to_owned(), n.to_owned()))
    );
    assert_eq!(registry.len(), 6);
    assert!(!registry.is_empty());
}

#[test]
fn every_shipped_schema_documents_itself() {
    let registry = shipped();
    for (category, name) in registry.types() {
        let path = Path::new(SHIPPED)
            .join(&category)
            .join(format!("{name}.json"));
        let schema: Value = serde_json::from_slice(&fs::read(&path).expect("read")).expect("json");
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{path:?}"
        );
        assert_eq!(schema["type"], "object", "{path:?}");
        for key in ["title", "description"] {
            assert!(
                schema[key].as_str().is_some_and(|s| !s.is_empty()),
                "{path:?} lacks {key}"
            );
        }
    }
}

const VIEW: &str = "page_interaction/page_view";
const CLICK: &str = "page_interaction/cta_click";
const SUBMIT: &str = "form_interaction/submit";

fn validate(registry: &SchemaRegistry, event_type: &str, data: &Value) -> Validation {
    let (category, name) = event_type.split_once('/').expect("category/name");
    registry.validate(category, name, data)
}

#[test]
fn accepts_valid_data() {
    let registry = shipped();
    #[rustfmt::skip]
    let cases = [
        (VIEW, json!({"host": "www.consumeraffairs.com", "path": "/"})),
        (VIEW, json!({"host": "a", "path": "/", "extra": [1, 2]})),
        (CLICK, json!({"host": "a.com", "path": "/p", "element": "signup"})),
        (SUBMIT, json!({"host": "a.com", "path": "/p", "form": {}})),
        (SUBMIT, json!({"host": "a", "path": "/", "form": {"email": "x", "n": [1]}})),
    ];
    for (event_type, data) in cases {
        let outcome = validate(&registry, event_type, &data);
        assert_eq!(outcome, Validation::Valid, "{event_type} {data}");
    }
}

#[test]
fn rejects_invalid_data_with_pointer_and_code() {
    let registry = shipped();
    #[rustfmt::skip]
    let cases = [
        // Each required field missing: the pointer names the missing property.
        (VIEW, json!({"path": "/"}), "/host", "schema_required"),
        (VIEW, json!({"host": "a"}), "/path", "schema_required"),
        (CLICK, json!({"path": "/", "element": "e"}), "/host", "schema_required"),
        (CLICK, json!({"host": "a", "element": "e"}), "/path", "schema_required"),
        (CLICK, json!({"host": "a", "path": "/"}), "/element", "schema_required"),
        (SUBMIT, json!({"path": "/", "form": {}}), "/host", "schema_required"),
        (SUBMIT, json!({"host": "a", "form": {}}), "/path", "schema_required"),
        (SUBMIT, json!({"host": "a", "path": "/"}), "/form", "schema_required"),
        // Wrong types.
        (VIEW, json!({"host": 42, "path": "/"}), "/host", "schema_type"),
        (CLICK, json!({"host": "a", "path": "/", "element": null}), "/element", "schema_type"),
        (SUBMIT, json!({"host": "a", "path": ["/"], "form": {}}), "/path", "schema_type"),
        // `form` must be an object.
        (SUBMIT, json!({"host": "a", "path": "/", "form": "x"}), "/form", "schema_type"),
        (SUBMIT, json!({"host": "a", "path": "/", "form": [{}]}), "/form", "schema_type"),
        // Empty strings.
        (VIEW, json!({"host": "", "path": "/"}), "/host", "schema_length"),
        (CLICK, json!({"host": "a", "path": "/", "element": ""}), "/element", "schema_length"),
        (SUBMIT, json!({"host": "a", "path": "", "form": {}}), "/path", "schema_length"),
        // `data` itself of the wrong type.
        (VIEW, json!([]), "", "schema_type"),
        (SUBMIT, json!("form"), "", "schema_type"),
    ];
    for (event_type, data, pointer, code) in cases {
        let outcome = validate(&registry, event_type, &data);
        let Validation::Invalid(found) = outcome else {
            panic!("{event_type} {data}: expected violations, got {outcome:?}");
        };
        let found: Vec<_> = found.iter().map(|v| (v.pointer.as_str(), v.code)).collect();
        assert_eq!(found, [(pointer, code)], "{event_type} {data}");
    }
}

#[test]
fn reports_every_violation_with_readable_messages() {
    let registry = shipped();
    let Validation::Invalid(found) = registry.validate(
        "page_interaction",
        "cta_click",
        &json!({"host": 7, "path": ""}),
    ) else {
        panic!("expected violations");
    };
    let mut found: Vec<_> = found
        .into_iter()
        .map(|v| (v.pointer, v.code, v.message))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("/element", "schema_required", "element is required"),
            (
                "/host",
                "schema_type",
                "must be of type string, not integer"
            ),
            (
                "/path",
                "schema_length",
                "value is shorter than 1 character"
            ),
        ]
        .map(|(p, c, m)| (p.to_owned(), c, m.to_owned()))
    );
}

#[test]
fn maps_keywords_to_codes_and_caps_the_count() {
    let dir = TempDir::new("codes");
    dir.write(
        "test/all.json",
        r#"{
            "type": "object",
            "properties": {
                "color": {"enum": ["red", "blue"]},
                "kind": {"const": "x"},
                "mail": {"type": "string", "format": "email"},
                "code": {"type": "string", "pattern": "^[A-Z]+$"},
                "short": {"type": "string", "maxLength": 2},
                "n": {"type": "integer", "minimum": 1, "exclusiveMaximum": 10},
                "tags": {"type": "array", "minItems": 1},
                "a~b/c": {"type": "string"}
            },
            "additionalProperties": false
        }"#,
    );
    let registry = SchemaRegistry::load(&dir.0).expect("load");
    let data = json!({
        "color": "green",
        "kind": "y",
        "mail": "not an email",
        "code": "abc",
        "short": "abc",
        "n": 10,
        "tags": [],
        "a~b/c": 1,
        "extra1": 1,
        "extra2": 2
    });
    let mut found = violations(&registry, "test", "all", &data);
    found.sort();
    let mut expected = vec![
        ("/a~0b~1c", "schema_type"),
        ("/code", "schema_pattern"),
        ("/color", "schema_enum"),
        ("/extra1", "schema_additional_property"),
        ("/extra2", "schema_additional_property"),
        ("/kind", "schema_enum"),
        ("/mail", "schema_format"),
        ("/n", "schema_range"),
        ("/short", "schema_length"),
        ("/tags", "schema_violation"),
    ];
    expected.sort();
    let expected: Vec<(String, &str)> = expected
        .into_iter()
        .map(|(p, c)| (p.to_owned(), c))
        .collect();
    assert_eq!(found, expected);

    // More violations than the cap: only MAX_VIOLATIONS are reported.
    let many: serde_json::Map<String, Value> = (0..50)
        .map(|i| (format!("extra{i:02}"), json!(i)))
        .collect();
    assert_eq!(
        violations(&registry, "test", "all", &Value::Object(many)).len(),
        MAX_VIOLATIONS
    );
}

#[test]
fn unknown_types_are_reported_as_such() {
    let registry = shipped();
    let data = json!({"host": "a", "path": "/"});
    for (category, name) in [
        ("page_interaction", "scroll"),
        ("nope", "page_view"),
        ("form_interaction", "page_view"),
        ("", ""),
    ] {
        assert_eq!(
            registry.validate(category, name, &data),
            Validation::UnknownType,
            "{category}/{name}"
        );
    }
}

#[test]
fn unknown_type_policy_reads_snake_case_and_defaults_to_reject() {
    assert_eq!(UnknownTypePolicy::default(), UnknownTypePolicy::Reject);
    let parse = |s: &str| serde_json::from_value::<UnknownTypePolicy>(json!(s));
    assert_eq!(parse("reject").expect("reject"), UnknownTypePolicy::Reject);
    assert_eq!(parse("accept").expect("accept"), UnknownTypePolicy::Accept);
    assert!(parse("Accept").is_err());
}

#[test]
fn load_errors_name_the_file_and_the_problem() {
    let cases = [
        ("broken/json.json", "{\"type\": ", "is not valid JSON"),
        (
            "broken/schema.json",
            r#"{"type": 5}"#,
            "is not a valid JSON Schema",
        ),
        (
            "broken/format.json",
            r#"{"format": "emial"}"#,
            "is not a valid JSON Schema",
        ),
        (
            "broken/remote.json",
            r#"{"$ref": "https://example.com/other.json"}"#,
            "is not a valid JSON Schema",
        ),
        ("top.json", "{}", "<category>/<name>.json"),
    ];
    for (relative, contents, problem) in cases {
        let dir = TempDir::new("broken");
        dir.write("ok/fine.json", OBJECT_WITH_ID);
        let path = dir.write(relative, contents);
        let error = SchemaRegistry::load(&dir.0)
            .expect_err(relative)
            .to_string();
        assert!(
            error.contains(&path.display().to_string()) && error.contains(problem),
            "{relative}: {error}"
        );
    }
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let dir = TempDir::new("missing");
    let missing = dir.0.join("does-not-exist");
    let error = SchemaRegistry::load(&missing).expect_err("missing dir");
    assert!(matches!(error, SchemaLoadError::Dir { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );
}

#[test]
fn ignores_entries_outside_the_layout() {
    let dir = TempDir::new("layout");
    dir.write("README.md", "# schemas");
    dir.write(".hidden/x.json", "not json");
    dir.write("cat/.swap.json", "not json");
    dir.write("cat/notes.txt", "not json");
    dir.write("cat/deeper/x.json", "not json");
    dir.write("cat/real.json", OBJECT_WITH_ID);
    fs::create_dir_all(dir.0.join("empty")).expect("mkdir");
    let registry = SchemaRegistry::load(&dir.0).expect("load");
    assert_eq!(registry.types(), [("cat".to_owned(), "real".to_owned())]);

    let empty = TempDir::new("empty");
    let registry = SchemaRegistry::load(&empty.0).expect("load");
    assert!(registry.is_empty());
    assert_eq!(registry.len(), 0);
}

#[test]
fn reload_swaps_only_a_fully_loaded_directory() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SharedRegistry>();

    let dir = TempDir::new("reload");
    dir.write("app/one.json", OBJECT_WITH_ID);
    let shared = SharedRegistry::load(&dir.0).expect("initial load");
    assert_eq!(shared.dir(), dir.0);
    assert_eq!(shared.current().len(), 1);
    let before = Guard::into_inner(shared.current());

    // A new valid type next to a broken file: the reload fails and nothing changes.
    dir.write("app/two.json", OBJECT_WITH_ID);
    let broken = dir.write("app/three.json", "{ not json");
    let error = shared.reload().expect_err("broken file");
    assert!(
        error.to_string().contains(&broken.display().to_string()),
        "{error}"
    );
    let current = shared.current();
    assert!(Arc::ptr_eq(&current, &before), "old registry still serves");
    assert_eq!(current.types(), [("app".to_owned(), "one".to_owned())]);
    assert_eq!(
        current.validate("app", "two", &json!({"id": 1})),
        Validation::UnknownType
    );
    drop(current);

    // Fixed: the reload swaps in the whole new set.
    dir.write("app/three.json", OBJECT_WITH_ID);
    assert_eq!(shared.reload().expect("fixed"), 3);
    let current = shared.current();
    assert!(!Arc::ptr_eq(&current, &before));
    assert_eq!(current.len(), 3);
    assert_eq!(
        current.validate("app", "two", &json!({"id": 1})),
        Validation::Valid
    );
    // A reader that took the old registry before the swap keeps a consistent view.
    assert_eq!(
        before.validate("app", "two", &json!({})),
        Validation::UnknownType
    );

    // The directory disappearing is a failed reload too, not an empty registry.
    fs::remove_dir_all(&dir.0).expect("remove");
    assert!(matches!(shared.reload(), Err(SchemaLoadError::Dir { .. })));
    assert_eq!(shared.current().len(), 3);
}

#[test]
fn documents_are_every_schema_as_written_sorted_by_category_then_name() {
    let dir = TempDir::new("documents");
    // Written out of order, so the sort is the function's, not the file system's.
    dir.write("zeta/b.json", r#"{"type": "object", "title": "zeta b"}"#);
    dir.write("alpha/z.json", OBJECT_WITH_ID);
    dir.write("zeta/a.json", r#"{"type": "string"}"#);
    dir.write("alpha/a.json", r#"{"$comment": "not compiled", "type": 5}"#);
    // By event name: `a-b.json` sorts before `a.json` as a file name, after `a` as a name.
    dir.write("beta/a-b.json", r#"{}"#);
    dir.write("beta/a.json", r#"{}"#);
    // Outside the layout: hidden, not JSON, a README.
    dir.write("alpha/.a.json.swp", "not json");
    dir.write("alpha/.hidden.json", "not json");
    dir.write(".git/x.json", "not json");
    dir.write("zeta/notes.txt", "not json");
    dir.write("README.md", "# schemas");

    let docs = documents(&dir.0).expect("documents");
    let names: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| (d.category.as_str(), d.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("alpha", "a"),
            ("alpha", "z"),
            ("beta", "a"),
            ("beta", "a-b"),
            ("zeta", "a"),
            ("zeta", "b")
        ]
    );
    // Each schema is the file's JSON as written: parsed, not compiled (a `type` of 5 would
    // not compile) nor changed.
    assert_eq!(
        docs[0].schema,
        json!({"$comment": "not compiled", "type": 5})
    );
    assert_eq!(
        docs[1].schema,
        serde_json::from_str::<Value>(OBJECT_WITH_ID).expect("JSON")
    );
    assert_eq!(docs[5].schema, json!({"type": "object", "title": "zeta b"}));
    // The shape `GET /v1/schemas` answers with.
    assert_eq!(
        serde_json::to_value(&docs[4]).expect("serialises"),
        json!({"category": "zeta", "name": "a", "schema": {"type": "string"}})
    );

    // One file that is not JSON fails the whole read, naming the file.
    let broken = dir.write("zeta/c.json", "{\"type\": ");
    let error = documents(&dir.0).expect_err("broken file");
    assert!(
        matches!(&error, SchemaLoadError::Json { path, .. } if *path == broken),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&broken.display().to_string()),
        "{error}"
    );

    // A missing directory is an error, not an empty list.
    let missing = dir.0.join("does-not-exist");
    assert!(matches!(
        documents(&missing),
        Err(SchemaLoadError::Dir { .. })
    ));
    // An empty one is an empty list.
    let empty = TempDir::new("documents-empty");
    assert_eq!(documents(&empty.0).expect("empty"), []);
}

/// The digest names the set, not the directory: equal files give equal digests wherever
/// they are; a changed byte, an added or a renamed file changes it; a failed reload keeps
/// the digest of the set still serving.
#[test]
fn digest_tells_sets_apart() {
    let a = TempDir::new("digest-a");
    let b = TempDir::new("digest-b");
    for d in [&a, &b] {
        d.write("app/one.json", OBJECT_WITH_ID);
        d.write("app/README.md", "not part of the set");
    }
    let da = SchemaRegistry::load(&a.0).expect("a").digest().to_owned();
    assert_eq!(da.len(), 64, "{da}");
    assert_eq!(SchemaRegistry::load(&b.0).expect("b").digest(), da);
    assert_ne!(SchemaRegistry::default().digest(), da);

    b.write("app/one.json", &format!("{OBJECT_WITH_ID} "));
    let changed = SchemaRegistry::load(&b.0).expect("b").digest().to_owned();
    assert_ne!(changed, da, "one more byte");
    b.write("app/one.json", OBJECT_WITH_ID);
    b.write("app/two.json", OBJECT_WITH_ID);
    assert_ne!(
        SchemaRegistry::load(&b.0).expect("b").digest(),
        da,
        "a file more"
    );
    fs::remove_file(b.0.join("app/two.json")).expect("rm");
    fs::rename(b.0.join("app/one.json"), b.0.join("app/uno.json")).expect("mv");
    assert_ne!(
        SchemaRegistry::load(&b.0).expect("b").digest(),
        da,
        "renamed"
    );

    let shared = SharedRegistry::load(&a.0).expect("a");
    a.write("app/broken.json", "{");
    assert!(shared.reload().is_err());
    assert_eq!(shared.current().digest(), da);
}
