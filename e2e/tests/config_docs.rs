//! The configuration reference (`docs/configuration.md`) against the configuration groups
//! themselves: every `EYE_*` variable a group reads is documented, and nothing documented is
//! unread. Each group lives with the crate it configures, so the test reads them all.

use std::path::{Path, PathBuf};

/// Every `config.rs` of the workspace that defines a group, checked against the list below
/// so that a new group cannot hide from the table.
const GROUPS: [&str; 8] = [
    "crates/kafka/src/config.rs",
    "crates/store/src/config.rs",
    "crates/auth/src/config.rs",
    "crates/http/src/config.rs",
    "ingest/src/config.rs",
    "consumer/src/config.rs",
    "query/src/config.rs",
    "crates/store/src/retention/config.rs",
];

/// The `eye` command's variables are no group (the command reads them itself, over its
/// profiles): they are the string constants of this file's `env` module.
const CLI_VARS: &str = "tools/cli/src/profile.rs";

fn cli_vars() -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(root().join(CLI_VARS))
        .unwrap_or_else(|e| panic!("{CLI_VARS}: {e}"))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| l.split('"').nth(1))
        .filter(|v| v.starts_with("EYE_"))
        .map(str::to_owned)
        .collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn config_sources() -> Vec<String> {
    GROUPS
        .iter()
        .map(|p| std::fs::read_to_string(root().join(p)).unwrap_or_else(|e| panic!("{p}: {e}")))
        .collect()
}

/// Files under `dir` (skipping `target`) whose text holds an `impl Group for`.
fn group_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                group_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && std::fs::read_to_string(&path).is_ok_and(|s| s.contains("impl Group for"))
        {
            let rel = path.strip_prefix(root()).expect("under the root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[test]
fn every_group_is_listed() {
    let mut found = Vec::new();
    for top in ["crates", "ingest", "consumer", "query", "tools", "e2e/src"] {
        group_files(&root().join(top), &mut found);
    }
    found.sort();
    let mut listed: Vec<String> = GROUPS.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

/// Every variable documented, and nothing documented that does not exist.
#[test]
fn docs_table_matches_the_config_structs() {
    use std::collections::BTreeSet;
    let doc = include_str!("../../docs/configuration.md");
    let sources = config_sources();
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|v| v.starts_with("EYE_"))
        .map(str::to_owned)
        .collect();
    // Fields of each struct are pending until its `impl Group` names the prefix.
    let mut defined = BTreeSet::new();
    let mut pending = Vec::new();
    for line in sources.iter().flat_map(|s| s.lines()).map(str::trim) {
        if let Some(prefix) = line
            .strip_prefix("const PREFIX: &'static str = \"")
            .and_then(|r| r.strip_suffix("\";"))
        {
            for field in pending.drain(..) {
                defined.insert(format!("{prefix}{field}"));
            }
        } else if let Some(family) = line
            .strip_prefix("pub const ")
            .filter(|r| r.contains("_FAMILY: &str = \""))
            .and_then(|r| r.split('"').nth(1))
        {
            // A family of variables, one per name (`EYE_KAFKA_PROPERTY_<NAME>`).
            defined.insert(format!("{family}<NAME>"));
        } else if let Some((field, _)) = line.strip_prefix("pub ").and_then(|r| r.split_once(':')) {
            if field.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                pending.push(field.to_uppercase());
            }
        }
    }
    assert!(defined.len() > 20, "parsed only {defined:?}");
    let cli = cli_vars();
    assert!(cli.len() >= 6, "parsed only {cli:?} from {CLI_VARS}");
    defined.extend(cli);
    let env_only: Vec<_> = documented
        .difference(&defined)
        .filter(|v| !v.starts_with("EYE_LOG"))
        .collect();
    assert!(
        env_only.is_empty(),
        "documented but not defined: {env_only:?}"
    );
    let undocumented: Vec<_> = defined.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "defined but not documented: {undocumented:?}"
    );
}
