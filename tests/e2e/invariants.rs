//! Architectural boundaries (ARCHITECTURE.md), checked by reading the manifests and sources:
//! the store never sees a request code, the codec does no I/O, the name server does not depend
//! on the store, and only the broker wires the crates together.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `ferromq-*` crates a member's `[dependencies]` section names.
fn ferromq_dependencies(member: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join(member).join("Cargo.toml")).unwrap();
    let mut in_dependencies = false;
    let mut found = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && line.starts_with("ferromq-") {
            found.push(line.split(['.', ' ', '=']).next().unwrap().to_owned());
        }
    }
    found
}

fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn store_depends_on_no_ferromq_crate_and_sees_no_request_code() {
    assert_eq!(ferromq_dependencies("store"), Vec::<String>::new());
    for file in rust_sources(&root().join("store/src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in ["request_code", "RequestCode", "ferromq_net"] {
            assert!(!text.contains(needle), "{} mentions {needle}", file.display());
        }
    }
}

#[test]
fn codec_does_no_io() {
    for file in rust_sources(&root().join("net/src/codec")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in ["compio", "std::net", "std::fs", "std::io::Read", "std::io::Write", "async fn", ".await", "tokio"] {
            assert!(!text.contains(needle), "{} uses {needle}", file.display());
        }
    }
}

#[test]
fn namesrv_does_not_depend_on_the_store() {
    assert_eq!(ferromq_dependencies("namesrv"), ["ferromq-net"]);
    assert_eq!(ferromq_dependencies("net"), Vec::<String>::new());
}

#[test]
fn only_core_wires_the_crates_together() {
    for member in ["net", "store", "namesrv"] {
        let deps = ferromq_dependencies(member);
        assert!(
            deps.iter().all(|d| d == "ferromq-net"),
            "{member} depends on {deps:?}; only core may combine net, store, repl and namesrv"
        );
    }
    // Replication moves a store's log over the network, so it uses both (the store's replica
    // API, net's zero-copy send); it never builds a broker nor touches the name server.
    let repl = ferromq_dependencies("repl");
    assert_eq!(repl, ["ferromq-net", "ferromq-store"], "repl depends on {repl:?}");
    // The bench measures the codec and the store directly, but never builds a broker.
    let bench = ferromq_dependencies("bench");
    assert!(bench.iter().all(|d| d == "ferromq-net" || d == "ferromq-store"), "bench depends on {bench:?}");
    let core = ferromq_dependencies("core");
    for needed in ["ferromq-net", "ferromq-namesrv", "ferromq-store"] {
        assert!(core.iter().any(|d| d == needed), "core does not depend on {needed}");
    }
}

/// The files of `crate_src` (a crate's `src/`) and the files each one imports, from `use`
/// statements, inline `crate::`/`super::`/`self::` paths and `mod` declarations. Test modules
/// (`tests.rs` files and `#[cfg(test)] mod tests { .. }` at the end of a file) are left out:
/// they may look at anything.
fn import_graph(crate_src: &Path) -> std::collections::BTreeMap<PathBuf, std::collections::BTreeSet<PathBuf>> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut graph = BTreeMap::new();
    for file in rust_sources(crate_src) {
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let text = without_comments(&text[..test_code_start(&text)]);
        let text = text.as_str();
        let here = module_path_of(crate_src, &file);
        let mut targets = BTreeSet::new();
        for path in referenced_paths(text) {
            let absolute = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("self") => [here.clone(), path[1..].to_vec()].concat(),
                Some("super") => {
                    let mut base = here.clone();
                    let mut rest = &path[..];
                    while rest.first().map(String::as_str) == Some("super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    [base, rest.to_vec()].concat()
                }
                _ => continue,
            };
            if let Some(target) = file_of_module(crate_src, &absolute)
                && target != file
            {
                targets.insert(target);
            }
        }
        // `mod child;` declarations.
        for line in text.lines() {
            let line = line.trim();
            let declared = line.strip_prefix("pub mod ").or_else(|| line.strip_prefix("mod ")).and_then(|rest| rest.strip_suffix(';'));
            if let Some(child) = declared
                && child != "tests"
            {
                let mut module = here.clone();
                module.push(child.to_owned());
                if let Some(target) = file_of_module(crate_src, &module) {
                    targets.insert(target);
                }
            }
        }
        graph.insert(file, targets);
    }
    graph
}

/// Where a file's test code starts: the first `#[cfg(test)]` whose item (after any further
/// attributes) is an inline module (`mod tests { .. }`, `pub(crate) mod test_util { .. }`);
/// the project keeps such modules at the end of a file.
fn test_code_start(text: &str) -> usize {
    let mut offset = 0;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == "#[cfg(test)]" {
            let item = lines[i + 1..].iter().map(|l| l.trim()).find(|l| !l.starts_with("#["));
            if item.is_some_and(|l| l.contains("mod ") && l.ends_with('{')) {
                return offset;
            }
        }
        offset += line.len();
    }
    text.len()
}

/// `text` with every `//` comment (doc comments included) cut from its line: a doc link names a
/// module without importing it.
fn without_comments(text: &str) -> String {
    text.lines().map(|line| line.split_once("//").map_or(line, |(code, _)| code)).collect::<Vec<_>>().join("\n")
}

/// `src/a/b.rs` and `src/a/b/mod.rs` → `["a", "b"]`; `src/lib.rs` → `[]`.
fn module_path_of(crate_src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(crate_src).unwrap();
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_owned());
    }
    parts
}

/// The file of the longest prefix of `module` that is a module file.
fn file_of_module(crate_src: &Path, module: &[String]) -> Option<PathBuf> {
    for len in (1..=module.len()).rev() {
        let dir: PathBuf = module[..len].iter().collect();
        for candidate in [crate_src.join(&dir).with_extension("rs"), crate_src.join(&dir).join("mod.rs")] {
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Every `crate::…`, `super::…` and `self::…` path in `text`, `use` groups expanded.
fn referenced_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let starts_path = ["crate::", "super::", "self::"].iter().any(|p| rest.starts_with(p));
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        if starts_path && boundary {
            let simple = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            let end = if rest[simple..].starts_with('{') { balanced_end(rest) } else { simple };
            expand_use_tree(&rest[..end], &mut Vec::new(), &mut paths);
            i += end.max(1);
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    paths
}

/// The end of a path whose `{…}` groups are balanced.
fn balanced_end(text: &str) -> usize {
    let mut depth = 0i32;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            c if depth == 0 && !(c.is_ascii_alphanumeric() || c == '_' || c == ':') => return i,
            _ => {}
        }
    }
    text.len()
}

/// `a::b::{c, d::e}` → `[a,b,c]`, `[a,b,d,e]`.
fn expand_use_tree(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let mut path = prefix.clone();
        path.extend(tree.split("::").map(str::trim).filter(|s| !s.is_empty() && *s != "*" && *s != "self").map(str::to_owned));
        out.push(path);
        return;
    };
    let head: Vec<String> = tree[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let depth_before = prefix.len();
    prefix.extend(head);
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand_use_tree(&inner[start..i], prefix, out);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner[start..].trim().is_empty() {
        expand_use_tree(&inner[start..], prefix, out);
    }
    prefix.truncate(depth_before);
}

/// One import cycle of `graph`, if any, as the files around it.
fn find_cycle(graph: &std::collections::BTreeMap<PathBuf, std::collections::BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    fn visit(
        node: &PathBuf,
        graph: &std::collections::BTreeMap<PathBuf, std::collections::BTreeSet<PathBuf>>,
        state: &mut std::collections::BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    return Some(stack[from..].to_vec());
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = std::collections::BTreeMap::new();
    for node in graph.keys() {
        if state.get(node).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_broker_has_no_import_cycle() {
    let src = root().join("core/src");
    let graph = import_graph(&src);
    // The graph must see the known edges, or the check would pass on an empty graph.
    let edge = |from: &str, to: &str| graph.get(&src.join(from)).is_some_and(|t| t.contains(&src.join(to)));
    assert!(edge("handlers/send.rs", "shard/ctx.rs") || edge("handlers/send.rs", "shard/mod.rs"), "handlers/send.rs → shard not seen");
    assert!(edge("shard/ctx.rs", "control/handle.rs") || edge("shard/ctx.rs", "control/mod.rs"), "shard/ctx.rs → control not seen");
    assert!(edge("handlers/mod.rs", "handlers/send.rs"), "mod declarations not seen");
    if let Some(cycle) = find_cycle(&graph) {
        let names: Vec<String> = cycle.iter().map(|p| p.strip_prefix(&src).unwrap().display().to_string()).collect();
        panic!("import cycle in core/src: {}", names.join(" → "));
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let a = PathBuf::from("a.rs");
    let b = PathBuf::from("b.rs");
    let c = PathBuf::from("c.rs");
    let mut graph = std::collections::BTreeMap::new();
    graph.insert(a.clone(), [b.clone()].into_iter().collect());
    graph.insert(b.clone(), [c.clone()].into_iter().collect());
    graph.insert(c.clone(), std::collections::BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
    graph.insert(c.clone(), [a.clone()].into_iter().collect());
    assert_eq!(find_cycle(&graph).map(|c| c.len()), Some(3));
    let mut paths = referenced_paths("use crate::shard::{ctx::ShardCtx, router::{Router, owner_of}};\nlet x = super::reply::Origin;");
    paths.sort();
    assert_eq!(
        paths,
        vec![
            vec!["crate".to_owned(), "shard".into(), "ctx".into(), "ShardCtx".into()],
            vec!["crate".into(), "shard".into(), "router".into(), "Router".into()],
            vec!["crate".into(), "shard".into(), "router".into(), "owner_of".into()],
            vec!["super".into(), "reply".into(), "Origin".into()],
        ]
    );
}
