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
    for member in ["net", "store", "repl", "namesrv"] {
        let deps = ferromq_dependencies(member);
        assert!(
            deps.iter().all(|d| d == "ferromq-net"),
            "{member} depends on {deps:?}; only core may combine net, store, repl and namesrv"
        );
    }
    // The bench measures the codec and the store directly, but never builds a broker.
    let bench = ferromq_dependencies("bench");
    assert!(bench.iter().all(|d| d == "ferromq-net" || d == "ferromq-store"), "bench depends on {bench:?}");
    let core = ferromq_dependencies("core");
    for needed in ["ferromq-net", "ferromq-namesrv", "ferromq-store"] {
        assert!(core.iter().any(|d| d == needed), "core does not depend on {needed}");
    }
}
