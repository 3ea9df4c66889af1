//! The benchmark suite (`ferromq-bench suite`, README "Benchmarks") runs end to end in tiny
//! mode, so that it cannot rot: it starts a name server and a broker per profile (SYNC and
//! ASYNC flush × io_uring and epoll), runs every measurement — the batch and cross-shard
//! points and the width runs at tiny sizes included — and writes the report with its plots.
//! The figures of a tiny run mean nothing and are not checked; that each was measured is,
//! and that every CPU-per-message figure is a positive, finite number.

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
        .args(["suite", "--tiny", "--concurrency", "1,4", "--duration-secs", "0.6", "--warmup-ms", "100", "--rss-connections", "20"])
        .args(["--batch-concurrency", "4", "--affinity-concurrency", "4"])
        .args(["--width", "--width-warmup-ms", "100", "--width-consume-queues", "4,12", "--width-backlog", "1200", "--width-topics", "2,20", "--width-topic-queues", "2"])
        .arg("--out")
        .arg(&out)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--dir")
        .arg(work.path())
        // The suite measures the engine, not the disk guard: a nearly full test machine must
        // not turn every send into SERVICE_NOT_AVAILABLE, nor delete unexpired segments under
        // the catch-up read.
        .args(["--set", "diskSpaceWarningLevelRatio=99", "--set", "diskSpaceCleanForciblyRatio=98"])
        // Small commit-log segments and index files: removing a store with a 1 GiB segment and
        // a sparse 400 MB index file takes seconds on a disk mounted with `discard`, and the
        // tiny run starts six brokers.
        .args(["--set", "mappedFileSizeCommitLog=67108864", "--set", "maxHashSlotNum=10000", "--set", "maxIndexNum=40000"])
        .output()
        .expect("run ferromq-bench suite");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "suite failed: {}\n{stderr}", output.status);

    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for section in [
        "## Physical probes",
        "## Targets (issue 14)",
        "## Targets\n",
        "## Produce",
        "## CPU per message",
        "## Batches and cross-shard sends",
        "## Flush batches",
        "## Consume and end-to-end",
        "## Width: many queues, many topics",
        "## Errors and fallbacks",
    ] {
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
    // Every CPU report: the broker's and the generator's CPU per message, positive and finite.
    let check_cpu = |what: &str, cpu: &serde_json::Value| {
        for key in ["broker_us_per_message", "generator_us_per_message", "broker_per_generator", "broker_cpu_s", "generator_cpu_s"] {
            let v = cpu[key].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v > 0.0, "{what}: cpu.{key} = {v} in {cpu}");
        }
        assert!(cpu["messages"].as_u64().unwrap() > 0, "{what}: no messages in {cpu}");
    };
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
            check_cpu(&format!("{name} produce"), &p["cpu"]);
            // The broker's dispatch backlog after the window (RocketMQ's dispatchBehindBytes).
            assert!(p["dispatch_behind_bytes"].is_u64(), "{name}: no dispatch figure in {p}");
        }
        check_cpu(&format!("{name} catch-up"), &run["consume"]["cpu"]);
        check_cpu(&format!("{name} e2e"), &run["e2e"]["cpu"]);
        assert_eq!(run["failures"].as_array().unwrap().len(), 0, "{name}: {}", run["failures"]);
        if run["profile"]["backend"] == "io_uring" {
            // --extra-backends io_uring (the default): the batch point and the cross-shard pair.
            let batch = &run["batch"];
            assert_eq!(batch["batch"], 16, "{name}: {batch}");
            assert!(batch["messages_per_s"].as_f64().unwrap() > 0.0, "{name}: {batch}");
            check_cpu(&format!("{name} batch"), &batch["cpu"]);
            let sides: Vec<&str> = run["affinity"].as_array().unwrap().iter().map(|p| p["affinity"].as_str().unwrap()).collect();
            assert_eq!(sides, ["owner", "cross"], "{name}");
            for p in run["affinity"].as_array().unwrap() {
                assert_eq!(p["shard_split"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).sum::<u64>(), 4, "{name}: {p}");
                check_cpu(&format!("{name} {}", p["affinity"]), &p["cpu"]);
            }
        } else {
            assert!(run["batch"].is_null() && run["affinity"].as_array().unwrap().is_empty(), "{name}: extra points on epoll");
        }
        let consume = &run["consume"];
        assert!(consume["messages"].as_u64().unwrap() > 0, "{name}: catch-up consumed nothing: {consume}");
        assert_eq!(consume["gaps"], 0, "{name}: gaps");
        let e2e = &run["e2e"]["consumer"];
        assert!(e2e["e2e_latency_us"]["count"].as_u64().unwrap() > 0, "{name}: no end-to-end latency: {e2e}");
        assert!(run["rss"]["kib_per_connection"].is_number(), "{name}: no RSS figure");
    }
    let width = &results["width"];
    assert_eq!(width["failures"].as_array().unwrap().len(), 0, "width: {}", width["failures"]);
    let consumed: Vec<u64> = width["consume"].as_array().unwrap().iter().map(|c| c["queues"].as_u64().unwrap()).collect();
    assert_eq!(consumed, [4, 12]);
    for c in width["consume"].as_array().unwrap() {
        assert!(c["summary"]["backlog"].as_u64().unwrap() >= 1200, "same backlog over every width: {c}");
        assert_eq!(c["summary"]["messages"], c["summary"]["backlog"], "{c}");
        check_cpu(&format!("width consume {}", c["queues"]), &c["summary"]["cpu"]);
    }
    let produced: Vec<u64> = width["produce"].as_array().unwrap().iter().map(|p| p["topics"].as_u64().unwrap()).collect();
    assert_eq!(produced, [2, 20]);
    for p in width["produce"].as_array().unwrap() {
        assert_eq!(p["point"]["topics"], p["topics"]);
        assert!(p["broker_open_files"].as_u64().unwrap() > 0, "{p}");
        assert!(p["dispatch_wait_s"].as_f64().unwrap() >= 0.0, "{p}");
        check_cpu(&format!("width produce {}", p["topics"]), &p["point"]["cpu"]);
    }
    // The targets, as data: every one measured here has a verdict.
    let targets = results["targets_issue14"].as_array().expect("targets_issue14");
    for t in targets {
        assert!(t["met"].is_boolean(), "target not measured: {t}");
        assert!(report.contains(t["target"].as_str().unwrap()), "report lacks {t}");
    }
    for expected in ["Broker CPU per acknowledged", "Broker CPU per message in batches", "Cross-shard penalty", "Width: consume", "Width: produce", "Pull p50"] {
        assert!(targets.iter().any(|t| t["target"].as_str().unwrap().starts_with(expected)), "no {expected:?} target in {targets:?}");
    }
    let bounds = results["bounds"].as_array().expect("bounds");
    assert_eq!(bounds.len(), 4, "one fdatasync bound per SYNC point: {bounds:?}");
    assert!(bounds.iter().all(|b| b["bound_syncs_per_s"].as_f64().unwrap() > 0.0));
}
