//! The workspace's layering, read from its manifests: each crate depends only on crates of
//! lower layers, so that the tree shows the architecture and no library reaches up. The
//! services must not pull in the adapters they do not use: query never links librdkafka.
//! Ingest links the ClickHouse client for one door only, the replay of the quarantine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Layers from the bottom: a crate may depend on crates of strictly lower layers only.
const LAYERS: [&[&str]; 6] = [
    &["eye-model", "eye-runtime"],
    &["eye-kafka", "eye-store", "eye-auth", "eye-client"],
    &["eye-http"],
    &["eye-ingest", "eye-consumer", "eye-query"],
    &["eye-loadgen"],
    &["eye-admin", "eye-bench", "eye-chaos", "eye-cli", "eye-e2e"],
];

struct Manifest {
    name: String,
    /// Every dependency of every kind (normal, dev, build), by package name.
    deps: BTreeSet<String>,
    /// The normal dependencies only: what the built binary links.
    normal: BTreeSet<String>,
}

fn manifests() -> Vec<Manifest> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workspace: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .expect("workspace manifest")
        .parse()
        .expect("TOML");
    let members = workspace["workspace"]["members"]
        .as_array()
        .expect("members");
    members
        .iter()
        .map(|m| {
            let path = root.join(m.as_str().expect("a path")).join("Cargo.toml");
            let t: toml::Table = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .parse()
                .expect("TOML");
            let name = t["package"]["name"].as_str().expect("name").to_owned();
            let keys = |kinds: &[&str]| -> BTreeSet<String> {
                kinds
                    .iter()
                    .filter_map(|k| t.get(*k).and_then(|v| v.as_table()))
                    .flat_map(|d| d.keys().cloned())
                    .collect()
            };
            Manifest {
                name,
                deps: keys(&["dependencies", "dev-dependencies", "build-dependencies"]),
                normal: keys(&["dependencies"]),
            }
        })
        .collect()
}

fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&name))
}

/// Names of the crates that break the rule, with the dependency that breaks it.
fn upward(manifests: &[Manifest]) -> Vec<String> {
    let mut bad = Vec::new();
    for m in manifests {
        let Some(own) = layer_of(&m.name) else {
            bad.push(format!("{} has no layer", m.name));
            continue;
        };
        for d in m.deps.iter().filter(|d| d.starts_with("eye-")) {
            match layer_of(d) {
                Some(l) if l < own => {}
                _ => bad.push(format!("{} -> {d}", m.name)),
            }
        }
    }
    bad
}

#[test]
fn every_crate_depends_only_on_lower_layers() {
    let manifests = manifests();
    assert!(manifests.len() >= 12, "read {} manifests", manifests.len());
    assert_eq!(upward(&manifests), Vec::<String>::new());
}

#[test]
fn the_rule_catches_an_upward_or_sideways_dependency() {
    let m = |name: &str, deps: &[&str]| Manifest {
        name: name.into(),
        deps: deps.iter().map(|d| (*d).to_owned()).collect(),
        normal: BTreeSet::new(),
    };
    let cases = [
        (
            m("eye-model", &["eye-store"]),
            vec!["eye-model -> eye-store"],
        ),
        (
            m("eye-store", &["eye-kafka"]),
            vec!["eye-store -> eye-kafka"],
        ),
        (
            m("eye-query", &["eye-ingest"]),
            vec!["eye-query -> eye-ingest"],
        ),
        (m("eye-new", &[]), vec!["eye-new has no layer"]),
        (m("eye-http", &["eye-auth", "serde"]), vec![]),
    ];
    for (manifest, want) in cases {
        assert_eq!(
            upward(std::slice::from_ref(&manifest)),
            want,
            "{}",
            manifest.name
        );
    }
}

/// Every crate a service reaches through normal dependencies, external ones included.
fn reaches(service: &str, manifests: &[Manifest]) -> BTreeSet<String> {
    let by_name: BTreeMap<&str, &BTreeSet<String>> = manifests
        .iter()
        .map(|m| (m.name.as_str(), &m.normal))
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo = vec![service.to_owned()];
    while let Some(n) = todo.pop() {
        for d in by_name.get(n.as_str()).into_iter().copied().flatten() {
            if seen.insert(d.clone()) && by_name.contains_key(d.as_str()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn services_link_only_the_adapters_they_use() {
    let manifests = manifests();
    let query = reaches("eye-query", &manifests);
    let ingest = reaches("eye-ingest", &manifests);
    let consumer = reaches("eye-consumer", &manifests);
    assert!(
        query.contains("clickhouse") && !query.contains("rdkafka"),
        "{query:?}"
    );
    // Ingest reads the quarantine, and records what its replays did, through eye-store:
    // `POST /v1/rejected/replay` only. The store connects lazily, so ingest starts and
    // takes events with ClickHouse down (a replay then answers 503); no other door uses it.
    assert!(
        ingest.contains("rdkafka") && ingest.contains("clickhouse"),
        "{ingest:?}"
    );
    assert!(
        consumer.contains("rdkafka") && consumer.contains("clickhouse"),
        "{consumer:?}"
    );
    // The client library is for producers' programs: no server dependency.
    let client = reaches("eye-client", &manifests);
    assert!(
        client.contains("reqwest")
            && ![
                "rdkafka",
                "clickhouse",
                "warp",
                "eye-store",
                "eye-kafka",
                "eye-http"
            ]
            .iter()
            .any(|s| client.contains(*s)),
        "{client:?}"
    );
}

/// The `eye` command is for users' machines: it reaches the model (and, once it sends and
/// reads, the client), never a service, an adapter or a server library.
#[test]
fn the_command_line_tool_links_no_server_crate() {
    let manifests = manifests();
    let cli = reaches("eye-cli", &manifests);
    assert!(cli.contains("eye-model"), "{cli:?}");
    let servers: Vec<&String> = cli
        .iter()
        .filter(|d| {
            ["rdkafka", "clickhouse", "warp", "hyper", "hyper-util"].contains(&d.as_str())
                || (d.starts_with("eye-") && !["eye-model", "eye-client"].contains(&d.as_str()))
        })
        .collect();
    assert!(servers.is_empty(), "eye-cli reaches {servers:?}");
}
