//! The messaging-semantics benchmark (`ferromq-bench semantics`, bench/RESULTS.md) runs end to
//! end in tiny mode, so that it cannot rot: it starts a broker on the backend this test runs
//! on (`FERROMQ_IO_BACKEND`, as every e2e test), sends messages back to %RETRY% and %DLQ%,
//! commits half messages two-way and one-way, reads a mixed stream with a TAG, an SQL92 and no
//! filter, and writes the report. The figures of a tiny run mean nothing and are not checked;
//! that each was measured is — the broker's CPU per operation among them — and that every count
//! the run checks (messages dead-lettered, parked, delivered, committed, matched) came out right.

use std::process::Command;

use ferromq_net::backend::{IoBackend, build_runtime};
use ferromq_tests::{TempDir, binary};

/// The backend the broker and the load generator use: the one this test's own runtime gets
/// (`FERROMQ_IO_BACKEND`, else io_uring where the kernel has it).
fn backend() -> String {
    let requested = IoBackend::resolve(IoBackend::Auto).expect("FERROMQ_IO_BACKEND");
    build_runtime(requested).expect("an I/O runtime").1.to_string()
}

#[test]
fn the_semantics_benchmark_measures_send_backs_transactions_filters_and_timers() {
    let work = TempDir::new("semanticsbench");
    let out = work.path().join("results");
    let bin_dir = binary("mqbroker").parent().expect("binary folder").to_path_buf();
    let started = std::time::Instant::now();
    let output = Command::new(binary("ferromq-bench"))
        .args(["semantics", "--tiny", "--messages", "120", "--in-flight", "1,8", "--filter-messages", "2000", "--filter-rounds", "2"])
        .args(["--backend", &backend(), "--wait-secs", "30"])
        .arg("--out")
        .arg(&out)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--dir")
        .arg(work.path())
        // As in bench_suite: the disk guard out of the way, small segments and index files.
        .args(["--set", "diskSpaceWarningLevelRatio=99", "--set", "diskSpaceCleanForciblyRatio=98"])
        .args(["--set", "mappedFileSizeCommitLog=67108864", "--set", "maxHashSlotNum=10000", "--set", "maxIndexNum=40000"])
        // Short waits: retries due after 1 s (level 3), a check-back pass every second.
        .args(["--set", "messageDelayLevel=1s 1s 1s", "--set", "transactionCheckInterval=1000"])
        .output()
        .expect("run ferromq-bench semantics");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "semantics failed: {}\n{stderr}", output.status);
    eprintln!("ferromq-bench semantics --tiny ran in {:.1} s", started.elapsed().as_secs_f64());

    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for section in [
        "## Probes",
        "## Retry and dead-letter send-backs (CONSUMER_SEND_MSG_BACK)",
        "## Transactions (half message, then END_TRANSACTION commit)",
        "## SQL92 vs tag filter: cost per examined record",
        "**SQL92 ÷ TAG, broker CPU per examined record**",
        "## Timer delivery lateness",
        "None: every request was answered SUCCESS and every count checked matched.",
    ] {
        assert!(report.contains(section), "report lacks {section:?}:\n{report}");
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json")).expect("results.json is JSON");
    assert_eq!(results["failures"].as_array().unwrap().len(), 0, "failures: {}", results["failures"]);
    assert_eq!(results["settings"]["backend"], backend().as_str());
    assert_eq!(results["backend_logged"], backend().as_str(), "the broker ran on another backend");
    let positive = |what: &str, v: &serde_json::Value| {
        let x = v.as_f64().unwrap_or(f64::NAN);
        assert!(x.is_finite() && x > 0.0, "{what} = {v}");
    };
    // Every point: all requests answered, a rate, the broker's CPU per operation, every check right.
    let check_point = |p: &serde_json::Value| {
        let name = format!("{} {} {}", p["step"], p["variant"], p["in_flight"]);
        assert_eq!(p["ok"], p["requests"], "{name}: {p}");
        assert!(p["failures"].as_object().unwrap().is_empty(), "{name}: {}", p["failures"]);
        positive(&format!("{name} per_s"), &p["per_s"]);
        positive(&format!("{name} broker µs"), &p["cpu"]["broker_us_per_message"]);
        positive(&format!("{name} generator µs"), &p["cpu"]["generator_us_per_message"]);
        for c in p["checks"].as_array().unwrap() {
            assert_eq!(c["found"], c["expected"], "{name}: {c}");
        }
        name
    };
    let shape = |points: &serde_json::Value| -> Vec<String> {
        points.as_array().unwrap().iter().map(|p| format!("{}/{}/{}", p["step"].as_str().unwrap(), p["variant"].as_str().unwrap(), p["in_flight"])).collect()
    };
    assert_eq!(shape(&results["send_backs"]), ["send-back/dlq/1", "send-back/retry/1", "send-back/dlq/8", "send-back/retry/8"]);
    for p in results["send_backs"].as_array().unwrap() {
        let name = check_point(p);
        assert_eq!(p["requests"], 120, "{name}");
        let checks: Vec<&str> = p["checks"].as_array().unwrap().iter().map(|c| c["what"].as_str().unwrap()).collect();
        if p["variant"] == "dlq" {
            assert!(checks.iter().any(|c| c.starts_with("stored in %DLQ%")) && checks.iter().any(|c| c.starts_with("pulled from %DLQ%")), "{name}: {checks:?}");
        } else {
            for expected in ["parked in SCHEDULE_TOPIC_XXXX", "delivered to %RETRY%", "pulled from %RETRY%"] {
                assert!(checks.iter().any(|c| c.starts_with(expected)), "{name}: no {expected:?} in {checks:?}");
            }
            assert!(p["follow_up"]["cpu"]["broker_cpu_s"].as_f64().unwrap() > 0.0, "{name}: {}", p["follow_up"]);
        }
    }
    assert_eq!(
        shape(&results["transactions"]),
        ["half/two-way/1", "commit/two-way/1", "half/two-way/8", "commit/two-way/8", "half/one-way/8", "commit/one-way/null"]
    );
    for p in results["transactions"].as_array().unwrap() {
        let name = check_point(p);
        let checks: Vec<&str> = p["checks"].as_array().unwrap().iter().map(|c| c["what"].as_str().unwrap()).collect();
        if p["step"] == "commit" {
            // Committed messages are consumable: counted by pulling them.
            assert!(checks.iter().any(|c| c.starts_with("pulled from SemTx-")), "{name}: {checks:?}");
        } else {
            assert!(checks.iter().any(|c| c.contains("before any commit")), "{name}: {checks:?}");
        }
    }
    assert_eq!(results["check_back"]["cpu"]["messages"], 360, "{}", results["check_back"]);
    // Filters: two rounds of the three reads, each through every record, matching what it should.
    let filters = results["filters"].as_array().unwrap();
    let mut variants: Vec<&str> = filters.iter().map(|f| f["variant"].as_str().unwrap()).collect();
    variants.sort_unstable();
    assert_eq!(variants, ["none", "none", "sql92", "sql92", "tag", "tag"]);
    for f in filters {
        let name = format!("filter {} round {}", f["variant"], f["round"]);
        assert_eq!(f["examined"], 2000, "{name}");
        assert_eq!(f["matched"], f["expected_matched"], "{name}");
        assert_eq!(f["matched"], if f["variant"] == "none" { 2000 } else { 400 }, "{name}");
        assert_eq!(f["gaps"], 0, "{name}");
        positive(&format!("{name} examined/s"), &f["examined_per_s"]);
        positive(&format!("{name} broker µs per examined"), &f["broker_us_per_examined"]);
    }
    let figures = &results["filter_figures"];
    assert_eq!(figures["rounds"].as_array().unwrap().len(), 2, "{figures}");
    for r in figures["sql_vs_tag_cpu"].as_array().unwrap() {
        positive("SQL92 ÷ TAG", r);
    }
    // Timer: 300 messages pending at once, every one delivered, none early, lateness measured.
    let timer = results["timer"].as_array().unwrap();
    assert_eq!(timer.len(), 1, "{}", results["timer"]);
    let t = &timer[0];
    assert_eq!(t["pending"], 300, "{t}");
    assert_eq!(t["delivered"], 300, "{t}");
    assert_eq!(t["early"], 0, "{t}");
    check_point(&t["park"]);
    assert_eq!(t["lateness_ms"].as_array().map(Vec::len), Some(5), "{t}");
    positive("timer broker µs per delivered", &t["delivery"]["cpu"]["broker_us_per_message"]);
    // The store was removed.
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != "results").collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
