//! The replication benchmark (`ferromq-bench replication`, bench/RESULTS.md) runs end to end in
//! tiny mode, so that it cannot rot: it starts a master and its slave per (master role, slave
//! flush mode), measures every point, fills a master for the catch-up of an empty slave, and
//! writes the report. The figures of a tiny run mean nothing and are not checked; that each was
//! measured is — both brokers' CPU per message among them — and that nothing failed.

use std::process::Command;

use ferromq_tests::{TempDir, binary};

#[test]
fn the_replication_benchmark_measures_every_pair_and_a_catch_up() {
    let work = TempDir::new("replbench");
    let out = work.path().join("results");
    let bin_dir = binary("mqbroker").parent().expect("binary folder").to_path_buf();
    let output = Command::new(binary("ferromq-bench"))
        .args(["replication", "--tiny", "--rounds", "1", "--duration-secs", "0.6", "--single-duration-secs", "0.4", "--warmup-ms", "100"])
        .args(["--catch-up-mib", "4", "--lag-sample-ms", "20"])
        .arg("--out")
        .arg(&out)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--dir")
        .arg(work.path())
        // As in bench_suite: the disk guard out of the way, small segments and index files.
        .args(["--set", "diskSpaceWarningLevelRatio=99", "--set", "diskSpaceCleanForciblyRatio=98"])
        .args(["--set", "mappedFileSizeCommitLog=67108864", "--set", "maxHashSlotNum=10000", "--set", "maxIndexNum=40000"])
        .output()
        .expect("run ferromq-bench replication");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "replication failed: {}\n{stderr}", output.status);

    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for section in [
        "## Probes",
        "## SYNC_MASTER ÷ ASYNC_MASTER throughput",
        "## Broker CPU per acknowledged message",
        "## Commit-log writes and fdatasyncs",
        "## Latency added by SYNC_MASTER",
        "## Slave lag",
        "## Catch-up of an empty slave",
        "## Every pair",
    ] {
        assert!(report.contains(section), "report lacks {section:?}:\n{report}");
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json")).expect("results.json is JSON");
    let positive = |what: &str, v: &serde_json::Value| {
        let x = v.as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x > 0.0, "{what} = {v}");
    };
    let runs = results["runs"].as_array().expect("runs");
    let mut pairs: Vec<String> = runs.iter().map(|r| format!("{}/{}", r["role"].as_str().unwrap(), r["slave_flush"].as_str().unwrap())).collect();
    pairs.sort();
    assert_eq!(pairs, ["async/async", "async/sync", "sync/async", "sync/sync"]);
    for run in runs {
        let name = format!("{}/{}", run["role"], run["slave_flush"]);
        assert_eq!(run["failures"].as_array().unwrap().len(), 0, "{name}: {}", run["failures"]);
        let mut kinds = vec!["load", "single"];
        if run["role"] == "async" {
            kinds.push("steady");
        } else {
            assert!(run["steady"].is_null(), "{name}: a steady point under SYNC_MASTER");
        }
        for kind in kinds {
            let p = &run[kind];
            positive(&format!("{name} {kind} messages_per_s"), &p["messages_per_s"]);
            assert_eq!(p["errors"], 0, "{name} {kind}: {}", p["codes"]);
            positive(&format!("{name} {kind} master µs"), &p["master_cpu"]["broker_us_per_message"]);
            positive(&format!("{name} {kind} slave µs"), &p["slave_cpu"]["broker_us_per_message"]);
            assert!(p["lag_bytes"]["count"].as_u64().unwrap_or(0) > 0, "{name} {kind}: no lag samples: {p}");
            assert!(p["slave_log"]["appended_bytes"].as_u64().unwrap() > 0, "{name} {kind}: the slave took nothing in: {p}");
        }
    }
    let figures = results["figures"].as_array().expect("figures");
    assert_eq!(figures.len(), 2);
    for f in figures {
        positive(&format!("{} SYNC ÷ ASYNC", f["slave_flush"]), &f["sync_vs_async"][0]);
    }
    let catch_up = &results["catch_up"];
    assert_eq!(catch_up["failures"].as_array().unwrap().len(), 0, "catch-up: {}", catch_up["failures"]);
    assert!(catch_up["master_bytes"].as_u64().unwrap() >= 4 << 20, "{catch_up}");
    let flushes: Vec<&str> = catch_up["runs"].as_array().unwrap().iter().map(|r| r["slave_flush"].as_str().unwrap()).collect();
    assert_eq!(flushes, ["async", "sync"]);
    for r in catch_up["runs"].as_array().unwrap() {
        assert!(r["replicated_bytes"].as_u64().unwrap() >= catch_up["master_bytes"].as_u64().unwrap(), "the slave took in less than the master held: {r}");
        positive("catch-up MiB/s", &r["mib_per_s"]);
        positive("catch-up ÷ sendfile", &r["vs_sendfile"]);
    }
    positive("sendfile MiB/s", &catch_up["sendfile"]["mib_per_s"]);
    // Every store was removed.
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != "results").collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
