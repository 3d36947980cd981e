//! stratad links no HTTP server or client: administration over HTTP is the manager's job
//! (`stratactl serve`), and the data plane shares only the control socket's wire types
//! (`control-protocol`) with it. Checked on the workspace's Cargo.lock, which lists every
//! package's dependencies: everything `dataplane` can reach from there (dev-dependencies
//! too, so the check errs on the strict side) must leave these out.

use std::collections::{BTreeSet, HashMap};

/// The manager crate and the HTTP crates it brings.
const NOT_IN_THE_DATA_PLANE: &[&str] = &["control", "tiny_http", "ureq", "hyper", "reqwest"];

/// Package name → the names of its dependencies, for every package in the lock file.
fn lock_graph() -> HashMap<String, Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    let text = std::fs::read_to_string(path).expect("the workspace's Cargo.lock");
    let lock: toml::Table = text.parse().expect("Cargo.lock is TOML");
    let packages = lock
        .get("package")
        .and_then(toml::Value::as_array)
        .expect("[[package]] entries");
    let mut graph: HashMap<String, Vec<String>> = HashMap::new();
    for p in packages {
        let name = p.get("name").and_then(toml::Value::as_str).expect("name");
        // Entries are "name", or "name version [(source)]" when versions differ.
        let deps = p
            .get("dependencies")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
            .filter_map(|d| d.split_whitespace().next())
            .map(str::to_string);
        // Two versions of one package: their dependencies together.
        graph.entry(name.to_string()).or_default().extend(deps);
    }
    graph
}

fn reachable(graph: &HashMap<String, Vec<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(name) = todo.pop() {
        if seen.insert(name.clone()) {
            todo.extend(graph.get(&name).into_iter().flatten().cloned());
        }
    }
    seen
}

#[test]
fn the_data_plane_links_no_http_server_or_client() {
    let graph = lock_graph();
    let linked = reachable(&graph, "dataplane");
    assert!(
        linked.contains("control-protocol"),
        "dataplane shares the wire types through control-protocol: {linked:?}"
    );
    let found: Vec<&&str> = NOT_IN_THE_DATA_PLANE
        .iter()
        .filter(|name| linked.contains(**name))
        .collect();
    assert!(found.is_empty(), "dataplane reaches {found:?}");
    // The check can fail: the manager does reach them.
    let manager = reachable(&graph, "control");
    assert!(manager.contains("tiny_http") && manager.contains("ureq"));
}
