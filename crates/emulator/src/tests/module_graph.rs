//! The emulator's modules form a DAG: shared helpers live in leaf modules
//! (`util`, `http`, `options`, `tokens`, ...), and no module reaches back
//! into the crate root or into a module that depends on it. Read from the
//! sources: every `crate::<module>` path is an edge, and `super::` outside a
//! test module is refused (it would name the crate root).

use std::collections::{BTreeMap, BTreeSet};

/// `module -> modules it names`, from `src/*.rs` (tests and the root excluded).
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("src readable") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 name")
                .to_owned();
            if stem != "lib" && stem != "tests" {
                let text = std::fs::read_to_string(&path).expect("readable");
                files.insert(stem, text);
            }
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (module, text) in &files {
        // Code only: up to the inline test module, comments dropped.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            !code.contains("super::"),
            "{module}.rs names `super::`; use `crate::<module>` paths"
        );
        let mut deps = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end]
                    .split(',')
                    .map(|s| s.trim().split("::").next().unwrap_or("").to_owned())
                    .collect()
            } else {
                vec![
                    rest.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect(),
                ]
            };
            deps.extend(
                names
                    .into_iter()
                    .filter(|n| modules.contains(n) && n != module),
            );
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

#[test]
fn modules_form_a_dag() {
    let graph = edges();
    assert!(graph.len() > 10, "found the modules: {graph:?}");
    // Depth-first search; a grey node seen again closes a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) {
        match state.get(node).copied().unwrap_or(0) {
            2 => return,
            1 => panic!("module cycle: {} -> {node}", path.join(" -> ")),
            _ => {}
        }
        state.insert(node.to_owned(), 1);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, state, path);
        }
        path.pop();
        state.insert(node.to_owned(), 2);
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        visit(node, &graph, &mut state, &mut Vec::new());
    }
    // The leaves stay leaves.
    for leaf in ["util", "options", "http"] {
        assert_eq!(
            graph[leaf],
            BTreeSet::new(),
            "{leaf} must not depend on other modules"
        );
    }
}
