//! The benchmark suite (`ferromq-bench suite`, README "Benchmarks") runs end to end in tiny
//! mode, so that it cannot rot: it starts a name server and a broker per profile (SYNC and
//! ASYNC flush × io_uring and epoll), runs every measurement, and writes the report with its
//! plots. The figures of a tiny run mean nothing and are not checked; that each was measured is.

use std::process::Command;

use ferromq_tests::{TempDir, binary};

#[test]
fn the_suite_runs_every_profile_and_writes_the_report_with_plots() {
    let work = TempDir::new("suite");
    let out = work.path().join("results");
    // The suite starts mqbroker and mqnamesrv from one folder.
    let bin_dir = binary("mqbroker").parent().expect("binary folder").to_path_buf();
    assert_eq!(binary("mqnamesrv").parent(), Some(bin_dir.as_path()), "mqbroker and mqnamesrv in different folders");
    let output = Command::new(binary("ferromq-bench"))
        .args(["suite", "--tiny", "--concurrency", "1,4", "--duration-secs", "1", "--warmup-ms", "100", "--rss-connections", "20"])
        .arg("--out")
        .arg(&out)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--dir")
        .arg(work.path())
        // The suite measures the engine, not the disk guard: a nearly full test machine must
        // not turn every send into SERVICE_NOT_AVAILABLE.
        .args(["--set", "diskSpaceWarningLevelRatio=99"])
        .output()
        .expect("run ferromq-bench suite");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "suite failed: {}\n{stderr}", output.status);

    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for section in ["## Physical probes", "## Targets", "## Produce", "## Flush batches", "## Consume and end-to-end", "## Errors and fallbacks"] {
        assert!(report.contains(section), "report lacks {section:?}:\n{report}");
    }
    for (file, _) in ferromq_bench::report::PLOTS {
        let svg = std::fs::read_to_string(out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{file} is not an SVG");
        assert!(report.contains(file), "report does not show {file}");
    }
    assert!(report.contains("None: every send was answered SUCCESS"), "errors in the run:\n{report}");

    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).expect("results.json")).expect("results.json is JSON");
    let runs = results["runs"].as_array().expect("runs");
    let mut profiles: Vec<String> = runs.iter().map(|r| format!("{}/{}", r["profile"]["flush"].as_str().unwrap(), r["profile"]["backend"].as_str().unwrap())).collect();
    profiles.sort();
    assert_eq!(profiles, ["async/epoll", "async/io_uring", "sync/epoll", "sync/io_uring"]);
    for run in runs {
        let name = &run["profile"];
        assert_eq!(run["backend_logged"], run["profile"]["backend"], "{name}: the broker ran on another backend");
        let points = run["produce"].as_array().expect("produce points");
        assert_eq!(points.iter().map(|p| p["concurrency"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 4], "{name}");
        for p in points {
            assert!(p["messages_per_s"].as_f64().unwrap() > 0.0, "{name}: no throughput at {p}");
            assert!(!p["latency_cdf_us"].as_array().unwrap().is_empty(), "{name}: no CDF");
            // The broker's commit-log counters (GET_BROKER_RUNTIME_INFO ferromq* keys) moved.
            assert!(p["flush"]["appended_messages"].as_u64().unwrap() > 0, "{name}: no flush counters in {p}");
            assert!(p["flush"]["log_syncs"].as_u64().unwrap() > 0, "{name}: no syncs in {p}");
        }
        let consume = &run["consume"];
        assert!(consume["messages"].as_u64().unwrap() > 0, "{name}: catch-up consumed nothing: {consume}");
        assert_eq!(consume["gaps"], 0, "{name}: gaps");
        let e2e = &run["e2e"]["consumer"];
        assert!(e2e["e2e_latency_us"]["count"].as_u64().unwrap() > 0, "{name}: no end-to-end latency: {e2e}");
        assert!(run["rss"]["kib_per_connection"].is_number(), "{name}: no RSS figure");
    }
    let bounds = results["bounds"].as_array().expect("bounds");
    assert_eq!(bounds.len(), 4, "one fdatasync bound per SYNC point: {bounds:?}");
    assert!(bounds.iter().all(|b| b["bound_syncs_per_s"].as_f64().unwrap() > 0.0));
}
