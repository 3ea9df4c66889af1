//! `suite` mode: the benchmark suite users run before they trust a broker.
//!
//! One command runs the whole matrix and writes a report:
//!
//! 1. The physical probes (fdatasync latency, sequential write, loopback RTT and sendfile) on the
//!    file system the stores use.
//! 2. For every profile — flush mode (SYNC_FLUSH, ASYNC_FLUSH) × I/O backend (io_uring, epoll) —
//!    and every round: a fresh `mqnamesrv` and `mqbroker` (the broker registered with that name
//!    server, store in a scratch folder), then
//!    - broker RSS per idle connection (first round only),
//!    - closed-loop producers at each concurrency (sends in flight in all), 1 KiB by default,
//!      with the broker's commit-log counters (GET_BROKER_RUNTIME_INFO) read before and after,
//!      which give the flush batches,
//!    - on the `--extra-backends` profiles: batches of `--batch-messages` at
//!      `--batch-concurrency`, and the cross-shard pair (every connection sends only to queues
//!      its own shard owns, then only to queues another shard owns) at `--affinity-concurrency`,
//!    - one producer → tail consumer end-to-end latency run,
//!    - a catch-up consume of everything the producers stored (hot in the page cache),
//!
//!    and both processes are stopped with SIGTERM. Every produce, consume and end-to-end window
//!    also records the broker's CPU (all its threads) and this process's own, per message
//!    ([`crate::cpu`]).
//! 3. With the brokers stopped: the fdatasync-bound rate at each SYNC_FLUSH point's own mean
//!    batch size (the ratio the durability target is stated in).
//! 4. Width (with `--width`), ASYNC_FLUSH on the first backend, a fresh broker per topic
//!    count: steady sends spread over few and many topics (written into the broker's
//!    `topics.json` before it starts, every queue touched once before measuring), and on the
//!    first of those brokers, catch-up consume of the same backlog spread over few and many
//!    queues. Their stores are removed only after the report is written.
//! 5. `report.md`, the SVG plots, `results.json` (everything, and the targets of issue 14 with
//!    their verdicts), `raw/` (each run's JSON summary) and `logs/` (every process's log) in the
//!    results folder.
//!
//! Profiles of one round run back to back and the order rotates between rounds, so a variant
//! is compared with its neighbours in time — this machine is shared and noisy.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferromq_net::backend::build_runtime;
use ferromq_net::client::Client;
use serde::Serialize;

use crate::broker::{self, FlushCounters};
use crate::consume::{self, ConsumeArgs, ConsumerArgs, E2eArgs};
use crate::cpu::CpuReport;
use crate::probe::{self, ProbeReport, ProbeSizes, ScratchDir, SyncBoundRate, Wakeups};
use crate::produce::{self, ProduceArgs, ProducerArgs};
use crate::report;

/// How long a server may take to log that it is serving.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to exit after SIGTERM before it is killed (a broker with 80,000
/// queues took 10 s).
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Topic of the produce points (the catch-up consume reads it back).
const PRODUCE_TOPIC: &str = "BenchTopic";
/// Topic of the end-to-end run.
const E2E_TOPIC: &str = "BenchE2e";
/// Topic of the batch point (kept out of the catch-up consume's backlog).
const BATCH_TOPIC: &str = "BenchBatch";
/// Topic of the cross-shard points.
const AFFINITY_TOPIC: &str = "BenchAffinity";
/// How long the width runs wait for the broker to dispatch the touch of every queue.
const DISPATCH_WAIT: Duration = Duration::from_secs(120);

#[derive(clap::Args, Debug, Clone)]
pub struct SuiteArgs {
    /// Results folder (created). Default: results/suite-<UTC time> under the current directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Folder holding `mqbroker` and `mqnamesrv`. Default: the folder of this executable.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Base folder for the stores and the probe files: put it on the disk the broker will use.
    /// Default: the system temp folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Flush modes to run: sync (SYNC_FLUSH), async (ASYNC_FLUSH).
    #[arg(long, value_delimiter = ',', default_value = "sync,async", value_parser = ["sync", "async"])]
    pub flush: Vec<String>,
    /// I/O backends of the broker and name server (FERROMQ_IO_BACKEND of each process).
    #[arg(long, value_delimiter = ',', default_value = "io_uring,epoll", value_parser = ["io_uring", "epoll"])]
    pub backends: Vec<String>,
    /// Concurrency points: sends in flight in all (closed loop), spread over
    /// min(N, --max-connections) connections (256 = 4 connections × 64 by default).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256")]
    pub concurrency: Vec<usize>,
    /// Most producer connections of a point.
    #[arg(long, default_value_t = 4)]
    pub max_connections: usize,
    /// Message body size, bytes.
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// Queues of the bench topics.
    #[arg(long, default_value_t = 8)]
    pub queues: u32,
    /// Measured seconds of each produce point and of the end-to-end run.
    #[arg(long, default_value_t = 5.0)]
    pub duration_secs: f64,
    /// Unmeasured warm-up of each produce point, milliseconds.
    #[arg(long, default_value_t = 500)]
    pub warmup_ms: u64,
    /// Rounds over all profiles (the order of profiles rotates each round); tables show the
    /// median and the range.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Broker shards (threads); default: the broker's own default (one per CPU).
    #[arg(long)]
    pub shards: Option<u16>,
    /// Idle connections of the RSS measurement (0: skip it).
    #[arg(long, default_value_t = 1000)]
    pub rss_connections: usize,
    /// Milliseconds each fdatasync-bound measurement at a point's batch size runs (idle and ticking).
    #[arg(long, default_value_t = 1000)]
    pub bound_ms: u64,
    /// A broker configuration file for every profile (`mqbroker -c`: a tuning/*.toml profile or
    /// a broker.properties); the suite's own settings (ports, store folder, flush mode, shards,
    /// --set) override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Extra broker settings for every profile, KEY=VALUE (passed as `mqbroker --set`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub broker_settings: Vec<String>,
    /// Messages per SEND_BATCH_MESSAGE of the batch point (0 or 1: no batch point).
    #[arg(long, default_value_t = 16)]
    pub batch_messages: usize,
    /// Sends in flight in all at the batch point (spread like --concurrency).
    #[arg(long, default_value_t = 256)]
    pub batch_concurrency: usize,
    /// Sends in flight in all at the cross-shard pair (owner, then cross; 0: skip it).
    #[arg(long, default_value_t = 64)]
    pub affinity_concurrency: usize,
    /// Backends whose profiles also run the batch point and the cross-shard pair.
    #[arg(long, value_delimiter = ',', default_value = "io_uring", value_parser = ["io_uring", "epoll"])]
    pub extra_backends: Vec<String>,
    /// Also run the width comparisons (many queues, many topics; ASYNC_FLUSH on the first
    /// backend, after everything else). Their stores — 80,000 queue files at the default size —
    /// are removed after the report is written: minutes on a disk mounted with `discard`.
    #[arg(long)]
    pub width: bool,
    /// Width, consume: queue counts of the catch-up reads compared (few,many); the same backlog
    /// is spread over each.
    #[arg(long, value_delimiter = ',', default_value = "72,600")]
    pub width_consume_queues: Vec<u32>,
    /// Width, consume: catch-up reads of each backlog, alternating between the queue counts
    /// (the comparison uses the median; one read is a 2–3 s window on a shared machine).
    #[arg(long, default_value_t = 3)]
    pub width_reads: usize,
    /// Width, consume: records in each backlog (at ~300k records/s, a window of 2–3 s).
    #[arg(long, default_value_t = 768_000)]
    pub width_backlog: u64,
    /// Width, produce: topic counts compared (few,many), each topic with --width-topic-queues.
    #[arg(long, value_delimiter = ',', default_value = "64,10000")]
    pub width_topics: Vec<u32>,
    /// Width, produce: queues per topic.
    #[arg(long, default_value_t = 8)]
    pub width_topic_queues: u32,
    /// Width, produce: unmeasured warm-up of the steady-send points, milliseconds (a broker
    /// that has just started is still allocating its first segments).
    #[arg(long, default_value_t = 2000)]
    pub width_warmup_ms: u64,
    /// Width, produce: how the topics come to exist. seed: written into the fresh broker's
    /// `<store>/config/topics.json` (RocketMQ's file, read at start by FerroMQ and Java brokers)
    /// before it starts; request: UPDATE_AND_CREATE_TOPIC each, several in flight (each one
    /// rewrites and syncs topics.json: minutes for 10,000 topics). Not measured either way.
    #[arg(long, default_value = "seed", value_parser = ["seed", "request"])]
    pub width_setup: String,
    /// Tiny probes and settle times: checks that the suite works end to end, measures nothing
    /// meaningful (the tests use it).
    #[arg(long)]
    pub tiny: bool,
}

/// One broker configuration of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// `sync` or `async`.
    pub flush: String,
    /// `io_uring` or `epoll` (what the processes were told; see [`ProfileRun::backend_logged`]).
    pub backend: String,
}

impl Profile {
    pub fn name(&self) -> String {
        format!("{}/{}", self.flush, self.backend)
    }

    fn flush_disk_type(&self) -> &'static str {
        if self.flush == "sync" { "SYNC_FLUSH" } else { "ASYNC_FLUSH" }
    }
}

/// One closed-loop produce point.
#[derive(Debug, Clone, Serialize)]
pub struct ProducePoint {
    pub concurrency: usize,
    pub connections: usize,
    pub in_flight_per_connection: usize,
    /// Messages per send (> 1: SEND_BATCH_MESSAGE).
    pub batch: usize,
    /// Topics the sends were spread over.
    pub topics: u32,
    /// `any`, `owner` or `cross` (see `produce --affinity`).
    pub affinity: String,
    /// Producer connections per broker shard (with an affinity).
    pub shard_split: Vec<usize>,
    /// Acknowledged messages per second (a batch counts its messages).
    pub messages_per_s: f64,
    pub latency_us: serde_json::Value,
    /// `[[quantile, µs], ...]`.
    pub latency_cdf_us: Vec<(f64, f64)>,
    /// Responses other than SUCCESS (and client-side failures), by name.
    pub errors: u64,
    pub codes: serde_json::Value,
    /// The broker's commit-log counters over warm-up + run (FerroMQ brokers only).
    pub flush: Option<FlushCounters>,
    /// Seconds those counters cover.
    pub flush_window_s: f64,
    /// Broker and load-generator CPU over the measured window, per acknowledged message.
    pub cpu: Option<CpuReport>,
    /// `dispatchBehindBytes` right after the window (the largest of several connections' answers,
    /// so of every shard): acknowledged work the broker had not finished — consume-queue and index
    /// entries — which the window's CPU does not include.
    pub dispatch_behind_bytes: Option<u64>,
}

impl ProducePoint {
    /// The point of a `produce` summary.
    fn from_summary(concurrency: usize, producer: &ProducerArgs, summary: &serde_json::Value, flush: Option<FlushCounters>, flush_window_s: f64) -> ProducePoint {
        let codes = summary.get("codes").cloned().unwrap_or(serde_json::Value::Null);
        ProducePoint {
            concurrency,
            connections: producer.connections,
            in_flight_per_connection: producer.in_flight,
            batch: producer.batch.max(1),
            topics: producer.topics.max(1),
            affinity: producer.affinity.clone(),
            shard_split: summary
                .get("shard_split")
                .and_then(serde_json::Value::as_array)
                .map(|a| a.iter().filter_map(|n| n.as_u64().map(|n| n as usize)).collect())
                .unwrap_or_default(),
            messages_per_s: summary.get("messages_per_s").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
            latency_us: summary.get("latency_us").cloned().unwrap_or(serde_json::Value::Null),
            latency_cdf_us: cdf_points(summary.get("latency_cdf_us")),
            errors: error_count(&codes),
            codes,
            flush,
            flush_window_s,
            cpu: CpuReport::from_summary(summary),
            dispatch_behind_bytes: None,
        }
    }

    /// `connections × in flight per connection`.
    pub fn shape(&self) -> String {
        format!("{} × {}", self.connections, self.in_flight_per_connection)
    }

    pub fn p50_us(&self) -> f64 {
        self.latency_us.get("p50").and_then(serde_json::Value::as_f64).unwrap_or(0.0)
    }

    pub fn p99_us(&self) -> f64 {
        self.latency_us.get("p99").and_then(serde_json::Value::as_f64).unwrap_or(0.0)
    }

    /// Messages made durable per fdatasync (0 without counters or syncs).
    pub fn messages_per_sync(&self) -> f64 {
        match &self.flush {
            Some(f) if f.log_syncs > 0 => f.appended_messages as f64 / f.log_syncs as f64,
            _ => 0.0,
        }
    }

    /// fdatasyncs per second over the counters' window.
    pub fn syncs_per_s(&self) -> f64 {
        match &self.flush {
            Some(f) if self.flush_window_s > 0.0 => f.log_syncs as f64 / self.flush_window_s,
            _ => 0.0,
        }
    }
}

/// Everything measured with one profile in one round.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileRun {
    pub profile: Profile,
    pub round: usize,
    /// The backend the broker logged at start (`io_uring` or `epoll`; a fallback shows here).
    pub backend_logged: Option<String>,
    pub produce: Vec<ProducePoint>,
    /// The batch point (`--batch-messages` per send; `--extra-backends` profiles).
    pub batch: Option<ProducePoint>,
    /// The cross-shard pair: `owner` then `cross` (`--extra-backends` profiles).
    pub affinity: Vec<ProducePoint>,
    /// The `e2e` summary (1 connection, 1 in flight, tail consumer).
    pub e2e: Option<serde_json::Value>,
    /// The catch-up `consume` summary.
    pub consume: Option<serde_json::Value>,
    /// The `rss` summary (first round only).
    pub rss: Option<serde_json::Value>,
    /// Measurements that failed without stopping the suite (shown under "Errors").
    pub failures: Vec<String>,
}

/// One catch-up read of the width runs.
#[derive(Debug, Clone, Serialize)]
pub struct WidthConsume {
    pub queues: u32,
    /// Seconds the fill (unmeasured; batches of `--batch-messages`) took.
    pub fill_s: f64,
    /// The catch-up `consume` summary of the read with the median rate (backlog, records/s,
    /// pull latency, cpu).
    pub summary: serde_json::Value,
    /// Records/s of every read (`--width-reads`, alternating between the queue counts).
    pub rates: Vec<f64>,
}

/// One steady-send point of the width runs.
#[derive(Debug, Clone, Serialize)]
pub struct WidthProduce {
    pub topics: u32,
    pub queues_per_topic: u32,
    /// `seed` or `request` (see `--width-setup`).
    pub setup: String,
    /// Seconds the topics took to exist (writing topics.json, or the requests).
    pub setup_s: f64,
    /// Seconds one send to every (topic, queue) took before measuring (first-touch costs).
    pub touch_s: f64,
    /// Seconds the broker then took to dispatch them (consume-queue files created), and what it
    /// still had not dispatched when the suite stopped waiting.
    pub dispatch_wait_s: f64,
    pub dispatch_behind_before_bytes: Option<u64>,
    /// The broker's open file descriptors after the point (`/proc/PID/fd`).
    pub broker_open_files: Option<usize>,
    pub point: ProducePoint,
}

/// The width runs (ASYNC_FLUSH on the first backend, fresh brokers).
#[derive(Debug, Clone, Serialize)]
pub struct WidthResults {
    pub profile: Profile,
    pub consume: Vec<WidthConsume>,
    pub produce: Vec<WidthProduce>,
    pub failures: Vec<String>,
}

/// The fdatasync-bound rate at one SYNC_FLUSH point's mean batch size.
#[derive(Debug, Clone, Serialize)]
pub struct BoundPoint {
    pub profile: String,
    pub round: usize,
    pub concurrency: usize,
    pub batch_bytes: usize,
    pub idle: SyncBoundRate,
    pub ticking: SyncBoundRate,
    /// The faster of the two, in syncs/s: the bound.
    pub bound_syncs_per_s: f64,
    /// The broker's fdatasyncs/s at that point (over warm-up + run).
    pub broker_syncs_per_s: f64,
    /// Messages/s the bound allows at the point's messages per sync.
    pub bound_messages_per_s: f64,
    /// The point's acknowledged messages/s ÷ `bound_messages_per_s`.
    pub ratio: f64,
}

/// The ERROR and WARN lines of one server log.
#[derive(Debug, Clone, Serialize)]
pub struct LogProblems {
    pub file: String,
    pub errors: usize,
    pub warnings: usize,
    /// The first few of them.
    pub first: Vec<String>,
}

/// A report's section listing `problems` under `heading` (nothing when there are none).
pub(crate) fn log_problems_markdown(heading: &str, problems: &[LogProblems]) -> Vec<String> {
    if problems.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!("## {heading}"), String::new()];
    for p in problems {
        let first = p.first.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ");
        lines.push(format!("- `{}`: {} errors, {} warnings; first: {first}", p.file, p.errors, p.warnings));
    }
    lines.push(String::new());
    lines
}

/// The ERROR and WARN lines of every `*.log` in `dir` (files without any are left out).
pub(crate) fn scan_logs(dir: &Path) -> Vec<LogProblems> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "log")).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let (mut errors, mut warnings, mut first) = (0, 0, Vec::new());
            for line in text.lines() {
                let level = line.split_whitespace().nth(1);
                match level {
                    Some("ERROR") => errors += 1,
                    Some("WARN") => warnings += 1,
                    _ => continue,
                }
                if first.len() < 3 {
                    first.push(line.chars().take(240).collect());
                }
            }
            let file = path.file_name()?.to_string_lossy().into_owned();
            (errors + warnings > 0).then_some(LogProblems { file, errors, warnings, first })
        })
        .collect()
}

/// What a suite run measured (`results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SuiteResults {
    /// The command line.
    pub command: String,
    /// UTC start and end, RFC 3339.
    pub started: String,
    pub finished: String,
    pub settings: serde_json::Value,
    /// Used space (%) of the file system holding the stores, at the start and the end: the
    /// broker refuses sends above `diskSpaceWarningLevelRatio` (90 % by default).
    pub disk_used_pct: (Option<f64>, Option<f64>),
    /// `/proc/loadavg` (1, 5, 15 minutes) at the start and the end: other work on the machine.
    pub load_avg: (Option<[f64; 3]>, Option<[f64; 3]>),
    pub probes: ProbeReport,
    pub runs: Vec<ProfileRun>,
    pub width: Option<WidthResults>,
    pub bounds: Vec<BoundPoint>,
    /// ERROR and WARN lines of the servers' logs, by log file.
    pub log_problems: Vec<LogProblems>,
    /// The targets of issue 14 with their measured values and verdicts (as in `report.md`).
    pub targets_issue14: Vec<report::TargetRow>,
}

/// Runs the suite and writes the report; returns the results folder.
pub fn run(args: SuiteArgs) -> Result<PathBuf, String> {
    let started_at = Instant::now();
    let started = utc_timestamp(SystemTime::now());
    let out = results_folder(args.out.as_deref(), "suite", &started)?;
    let bin_dir = bin_dir(args.bin_dir.as_deref())?;
    let binaries = Binaries { mqbroker: bin_dir.join("mqbroker"), mqnamesrv: bin_dir.join("mqnamesrv") };
    for binary in [&binaries.mqbroker, &binaries.mqnamesrv] {
        if !binary.exists() {
            return Err(format!(
                "{} not found: build it first (cargo build --release --bins) or pass --bin-dir",
                binary.display()
            ));
        }
    }
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        return Err("--concurrency needs positive values".into());
    }
    if args.width && (args.width_consume_queues.contains(&0) || args.width_topics.contains(&0) || args.width_topic_queues == 0) {
        return Err("--width-consume-queues, --width-topics and --width-topic-queues need positive values".into());
    }
    let profiles: Vec<Profile> = args
        .flush
        .iter()
        .flat_map(|flush| args.backends.iter().map(move |backend| Profile { flush: flush.clone(), backend: backend.clone() }))
        .collect();
    if profiles.is_empty() {
        return Err("no profiles: --flush and --backends must name at least one each".into());
    }
    eprintln!("[suite] results folder {}", out.display());
    // The servers inherit it: a broker with 80,000 queues may keep a file open per queue.
    let nofile_limit = broker::raise_nofile_limit();
    let store_base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let disk_at_start = disk_used_pct(&store_base);
    let load_at_start = load_avg();
    if let Some(pct) = disk_at_start.filter(|p| *p >= 80.0) {
        eprintln!(
            "[suite] WARNING: {} is {pct:.0}% full; the broker refuses sends above 90% (diskSpaceWarningLevelRatio) and a run writes a few GiB"
        , store_base.display());
    }
    eprintln!("[suite] probes");
    let sizes = if args.tiny { ProbeSizes::tiny() } else { ProbeSizes::quick() };
    let probes = probe::run_probes(args.dir.as_deref(), &sizes)?;
    probe::print_report(&probes, args.message_bytes);

    let mut runs = Vec::new();
    for round in 0..args.rounds.max(1) {
        // Rotate the order so that no profile always runs first (cold machine) or last.
        let n = profiles.len();
        for i in 0..n {
            let profile = &profiles[(i + round) % n];
            eprintln!("[suite] round {} profile {}", round + 1, profile.name());
            runs.push(run_profile(&args, profile, round, &binaries, &out)?);
        }
    }
    // The bounds before the width runs: those leave stores behind until the very end (removing
    // them would load the disk under the fdatasync probes).
    eprintln!("[suite] fdatasync-bound rates at the brokers' batch sizes");
    let bounds = measure_bounds(&args, &runs)?;
    let (width, width_stores) = if args.width {
        eprintln!("[suite] width");
        let (width, stores) = run_width(&args, &binaries, &out)?;
        (Some(width), stores)
    } else {
        (None, Vec::new())
    };
    let settings = serde_json::json!({
        "flush": args.flush, "backends": args.backends, "concurrency": args.concurrency,
        "max_connections": args.max_connections, "message_bytes": args.message_bytes, "queues": args.queues,
        "duration_secs": args.duration_secs, "warmup_ms": args.warmup_ms, "rounds": args.rounds,
        "shards": args.shards, "rss_connections": args.rss_connections, "bound_ms": args.bound_ms,
        "config": args.config, "broker_settings": args.broker_settings, "tiny": args.tiny,
        "batch_messages": args.batch_messages, "batch_concurrency": args.batch_concurrency,
        "affinity_concurrency": args.affinity_concurrency, "extra_backends": args.extra_backends,
        "width": args.width, "width_warmup_ms": args.width_warmup_ms, "width_consume_queues": args.width_consume_queues, "width_backlog": args.width_backlog, "width_reads": args.width_reads,
        "width_topics": args.width_topics, "width_topic_queues": args.width_topic_queues, "width_setup": args.width_setup,
        "bin_dir": bin_dir, "nofile_limit": nofile_limit, "cpu_source": "broker: process CPU clock (clock_getcpuclockid), all threads incl. exited; generator: CLOCK_PROCESS_CPUTIME_ID",
        "elapsed_s": started_at.elapsed().as_secs_f64(),
    });
    let mut results = SuiteResults {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started,
        finished: utc_timestamp(SystemTime::now()),
        settings,
        disk_used_pct: (disk_at_start, disk_used_pct(&store_base)),
        load_avg: (load_at_start, load_avg()),
        probes,
        runs,
        width,
        bounds,
        log_problems: scan_logs(&out.join("logs")),
        targets_issue14: Vec::new(),
    };
    results.targets_issue14 = report::issue14_targets(&results);
    let json = serde_json::to_value(&results).map_err(|e| e.to_string())?;
    probe::write_json(&out.join("results.json"), &json)?;
    report::write(&results, &out)?;
    eprintln!("[suite] report written after {:.0} s: {}", started_at.elapsed().as_secs_f64(), out.join("report.md").display());
    if !width_stores.is_empty() {
        let removing = Instant::now();
        drop(width_stores);
        eprintln!("[suite] width stores removed in {:.0} s", removing.elapsed().as_secs_f64());
    }
    eprintln!("[suite] done in {:.0} s", started_at.elapsed().as_secs_f64());
    println!("{}", out.join("report.md").display());
    Ok(out)
}

/// Where the servers' binaries are.
struct Binaries {
    mqbroker: PathBuf,
    mqnamesrv: PathBuf,
}

/// A name server and a broker registered with it, on a scratch store.
struct Servers {
    namesrv: Server,
    broker: Server,
    broker_addr: SocketAddr,
    scratch: ScratchDir,
}

impl Servers {
    /// Starts both for `profile`; `seed_topics` (names, queues each) are written into the
    /// store's `config/topics.json` first.
    fn start(args: &SuiteArgs, profile: &Profile, binaries: &Binaries, out: &Path, tag: &str, seed_topics: Option<(&[String], u32)>) -> Result<Servers, String> {
        let scratch = ScratchDir::create(args.dir.as_deref(), &format!("suite-{}-{}", profile.flush, profile.backend))?;
        let store = scratch.path().join("store");
        if let Some((topics, queues)) = seed_topics {
            write_topics_json(&store.join("config").join("topics.json"), topics, queues)?;
        }
        let namesrv_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let namesrv = Server::start(
            &binaries.mqnamesrv,
            &[
                "--listen".to_owned(),
                namesrv_addr.to_string(),
                "--kv-config-path".to_owned(),
                scratch.path().join("kvConfig.json").display().to_string(),
            ],
            &profile.backend,
            "boot success",
            &out.join("logs").join(format!("{tag}-namesrv.log")),
        )?;
        let broker_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut broker_args = vec!["-n".to_owned(), namesrv_addr.to_string()];
        if let Some(config) = &args.config {
            broker_args.push("-c".to_owned());
            broker_args.push(config.display().to_string());
        }
        let mut set = |kv: String| {
            broker_args.push("--set".to_owned());
            broker_args.push(kv);
        };
        set(format!("storePathRootDir={}", store.display()));
        set(format!("listenPort={}", broker_addr.port()));
        // A master also listens on its HA port (default listenPort + 1, which may be in use
        // here, e.g. by the load generator's own connections): a free one of its own.
        set(format!("haListenPort={}", free_port()?));
        // Java's fast port (listenPort - 2) may be taken here: not needed for measuring.
        set("fastListenPortEnable=false".to_owned());
        set("brokerIP1=127.0.0.1".to_owned());
        set(format!("flushDiskType={}", profile.flush_disk_type()));
        if let Some(shards) = args.shards {
            set(format!("shards={shards}"));
        }
        for kv in &args.broker_settings {
            set(kv.clone());
        }
        let broker = Server::start(&binaries.mqbroker, &broker_args, &profile.backend, "boot success", &out.join("logs").join(format!("{tag}-broker.log")))?;
        Ok(Servers { namesrv, broker, broker_addr, scratch })
    }

    fn pid(&self) -> u32 {
        self.broker.pid()
    }

    /// SIGTERM to both (broker first), then removes the scratch store.
    fn stop(self) -> Result<(), String> {
        let (stopped, store) = self.stop_keeping_store();
        let removing = Instant::now();
        drop(store);
        eprintln!("[suite] store removed in {:.1} s", removing.elapsed().as_secs_f64());
        stopped
    }

    /// SIGTERM to both (broker first); the scratch store is returned, to be dropped later.
    fn stop_keeping_store(self) -> (Result<(), String>, ScratchDir) {
        let started = Instant::now();
        let broker = self.broker.stop();
        let broker_s = started.elapsed().as_secs_f64();
        let namesrv = self.namesrv.stop();
        eprintln!("[suite] stopped: broker in {broker_s:.1} s, name server in {:.1} s", started.elapsed().as_secs_f64() - broker_s);
        (broker.and(namesrv), self.scratch)
    }
}

/// Writes a RocketMQ `topics.json` (TopicConfigSerializeWrapper) holding `topics`, each with
/// `queues` read and write queues, perm RW: what a broker that had created them would load.
fn write_topics_json(path: &Path, topics: &[String], queues: u32) -> Result<(), String> {
    let table: serde_json::Map<String, serde_json::Value> = topics
        .iter()
        .map(|t| {
            let config = serde_json::json!({
                "topicName": t, "readQueueNums": queues, "writeQueueNums": queues, "perm": 6,
                "topicFilterType": "SINGLE_TAG", "topicSysFlag": 0, "order": false, "attributes": {},
            });
            (t.clone(), config)
        })
        .collect();
    let wrapper = serde_json::json!({"dataVersion": {"counter": 1, "stateVersion": 0, "timestamp": 0}, "topicConfigTable": table});
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    probe::write_json(path, &wrapper)
}

/// Starts name server + broker for `profile`, runs every measurement, stops both.
fn run_profile(args: &SuiteArgs, profile: &Profile, round: usize, binaries: &Binaries, out: &Path) -> Result<ProfileRun, String> {
    let tag = format!("r{}-{}-{}", round + 1, profile.flush, profile.backend);
    let servers = Servers::start(args, profile, binaries, out, &tag, None)?;
    let result = measure_profile(args, profile, round, servers.broker_addr, servers.pid(), out, &tag);
    let backend_logged = servers.broker.backend_logged.clone();
    servers.stop()?;
    let mut run = result?;
    run.backend_logged = backend_logged;
    Ok(run)
}

/// Connections and in flight per connection of a point with `concurrency` sends in flight.
fn shape(args: &SuiteArgs, concurrency: usize) -> (usize, usize) {
    let connections = concurrency.min(args.max_connections.max(1)).max(1);
    (connections, concurrency.div_ceil(connections))
}

/// One closed-loop produce point with the broker's commit-log counters around it.
fn produce_point(args: &SuiteArgs, profile: &Profile, concurrency: usize, producer: ProducerArgs, json: Option<PathBuf>) -> Result<ProducePoint, String> {
    let before = read_flush_counters(producer.broker, &profile.backend)?;
    let window = Instant::now();
    let summary = produce::run_produce(&ProduceArgs { producer: producer.clone(), duration_secs: args.duration_secs.max(0.1), count: None, warmup_ms: args.warmup_ms, json, slave_pid: None })?;
    let flush_window_s = window.elapsed().as_secs_f64();
    let dispatch_behind_bytes = dispatch_behind(producer.broker, &profile.backend)?;
    let after = read_flush_counters(producer.broker, &profile.backend)?;
    let mut point = ProducePoint::from_summary(concurrency, &producer, &summary, before.zip(after).map(|(b, a)| a.since(&b)), flush_window_s);
    point.dispatch_behind_bytes = dispatch_behind_bytes;
    Ok(point)
}

/// Connections [`dispatch_behind`] asks on: a FerroMQ broker answers for the connection's shard,
/// and 8 connections miss one of 2 shards with probability 1/128.
const DISPATCH_PROBE_CONNECTIONS: usize = 8;

/// The broker's `dispatchBehindBytes`, the largest answer over several connections.
fn dispatch_behind(broker_addr: SocketAddr, backend: &str) -> Result<Option<u64>, String> {
    let backend = broker::resolve_backend(backend)?;
    let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut largest = None;
        for _ in 0..DISPATCH_PROBE_CONNECTIONS {
            let client = Client::connect(broker_addr, broker::CONNECT_TIMEOUT).await.map_err(|e| format!("cannot connect to {broker_addr}: {e}"))?;
            let behind = broker::dispatch_behind_bytes(&client).await?;
            client.close();
            largest = largest.max(behind);
        }
        Ok(largest)
    })
}

/// Waits (at most `limit`) until the broker has dispatched all but 1 MiB of what it stored;
/// returns the seconds waited and the last figure.
fn wait_for_dispatch(broker_addr: SocketAddr, backend: &str, limit: Duration) -> Result<(f64, Option<u64>), String> {
    let started = Instant::now();
    loop {
        let behind = dispatch_behind(broker_addr, backend)?;
        if behind.is_none_or(|b| b < 1 << 20) || started.elapsed() >= limit {
            return Ok((started.elapsed().as_secs_f64(), behind));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn measure_profile(args: &SuiteArgs, profile: &Profile, round: usize, broker_addr: SocketAddr, pid: u32, out: &Path, tag: &str) -> Result<ProfileRun, String> {
    let raw = |name: &str| Some(out.join("raw").join(format!("{tag}-{name}.json")));
    let rss = if round == 0 && args.rss_connections > 0 {
        let rss_args = broker::RssArgs {
            broker: broker_addr,
            pid,
            connections: args.rss_connections,
            send: "heartbeat".into(),
            settle_ms: if args.tiny { 200 } else { 1500 },
            io_backend: profile.backend.clone(),
            json: raw("rss"),
        };
        Some(broker::measure_rss(&rss_args)?)
    } else {
        None
    };

    let mut produce_points = Vec::new();
    for &concurrency in &args.concurrency {
        let (connections, in_flight) = shape(args, concurrency);
        let producer = producer_args(args, profile, broker_addr, pid, PRODUCE_TOPIC, connections, in_flight);
        produce_points.push(produce_point(args, profile, concurrency, producer, raw(&format!("produce-c{concurrency}")))?);
    }

    let mut failures = Vec::new();
    let extras = args.extra_backends.contains(&profile.backend);
    // The cross-shard pair before the batch point, whose write-back keeps the shards busy for
    // seconds (finding each connection's shard needs them quiet).
    let mut affinity = Vec::new();
    if extras && args.affinity_concurrency > 0 {
        let (connections, in_flight) = shape(args, args.affinity_concurrency);
        for side in ["owner", "cross"] {
            let producer = ProducerArgs { affinity: side.into(), ..producer_args(args, profile, broker_addr, pid, AFFINITY_TOPIC, connections, in_flight) };
            let name = format!("produce-{side}-c{}", args.affinity_concurrency);
            // Finding each connection's shard needs a FerroMQ broker that is otherwise idle;
            // a failure here is reported, not fatal.
            match produce_point(args, profile, args.affinity_concurrency, producer, raw(&name)) {
                Ok(point) => affinity.push(point),
                Err(e) => failures.push(format!("cross-shard point ({side}): {e}")),
            }
        }
    }

    let batch = if extras && args.batch_messages > 1 && args.batch_concurrency > 0 {
        let (connections, in_flight) = shape(args, args.batch_concurrency);
        let producer = ProducerArgs { batch: args.batch_messages, ..producer_args(args, profile, broker_addr, pid, BATCH_TOPIC, connections, in_flight) };
        let name = format!("produce-batch{}-c{}", args.batch_messages, args.batch_concurrency);
        Some(produce_point(args, profile, args.batch_concurrency, producer, raw(&name))?)
    } else {
        None
    };
    let e2e = consume::run_e2e(&E2eArgs {
        producer: producer_args(args, profile, broker_addr, pid, E2E_TOPIC, 1, 1),
        consumer_connections: 1,
        pull_batch: 32,
        suspend_ms: 1000,
        duration_secs: args.duration_secs.max(0.1),
        warmup_ms: args.warmup_ms,
        json: raw("e2e"),
    })?;

    let consume = catch_up(broker_addr, pid, profile, PRODUCE_TOPIC, args.queues, (args.duration_secs * 3.0).max(5.0), raw("consume-catch-up"))?;

    Ok(ProfileRun {
        profile: profile.clone(),
        round,
        backend_logged: None,
        produce: produce_points,
        batch,
        affinity,
        e2e: Some(e2e),
        consume: Some(consume),
        rss,
        failures,
    })
}

/// A catch-up read of `topic` from offset 0: one connection, one 32-message pull in flight per
/// queue, broker CPU measured.
fn catch_up(broker_addr: SocketAddr, pid: u32, profile: &Profile, topic: &str, queues: u32, limit_s: f64, json: Option<PathBuf>) -> Result<serde_json::Value, String> {
    consume::run_consume(&ConsumeArgs {
        consumer: ConsumerArgs {
            broker: broker_addr,
            topic: topic.into(),
            queues,
            consumer_connections: 1,
            pull_batch: 32,
            suspend_ms: 1000,
            consumer_group: "ferromq-bench-suite".into(),
            subscription: "*".into(),
            expression_type: "TAG".into(),
            consumer_io_backend: profile.backend.clone(),
            consumer_tls: false,
        },
        catch_up: true,
        tail: false,
        duration_secs: limit_s,
        pid: Some(pid),
        json,
    })
}

/// The width runs: ASYNC_FLUSH (the broker's default) on the first backend. One fresh broker
/// per topic count, the topics in place before it starts; the first one also runs the consume
/// comparison, after its produce point (so that both produce points see a fresh store).
/// Returns the brokers' stores too, still on disk (see [`SuiteArgs::width`]).
fn run_width(args: &SuiteArgs, binaries: &Binaries, out: &Path) -> Result<(WidthResults, Vec<ScratchDir>), String> {
    let profile = Profile { flush: "async".into(), backend: args.backends.first().cloned().unwrap_or_else(|| "io_uring".into()) };
    let mut results = WidthResults { profile: profile.clone(), consume: Vec::new(), produce: Vec::new(), failures: Vec::new() };
    let (connections, in_flight) = shape(args, args.concurrency.iter().copied().max().unwrap_or(1));
    let mut stores = Vec::new();
    let topic_counts: Vec<Option<u32>> = if args.width_topics.is_empty() { vec![None] } else { args.width_topics.iter().copied().map(Some).collect() };
    for (i, topics) in topic_counts.into_iter().enumerate() {
        let consume_here = i == 0 && !args.width_consume_queues.is_empty();
        if topics.is_none() && !consume_here {
            continue;
        }
        let prefix = topics.map(|t| format!("Width{t}T")).unwrap_or_default();
        let template = ProducerArgs {
            topics: topics.unwrap_or(1),
            queues: args.width_topic_queues,
            connections,
            in_flight,
            ..producer_args(args, &profile, SocketAddr::from(([127, 0, 0, 1], 0)), 0, &prefix, 1, 1)
        };
        let names = if topics.is_some() { produce::topic_names(&template) } else { Vec::new() };
        let setup = Instant::now();
        let seed = (topics.is_some() && args.width_setup == "seed").then_some((names.as_slice(), args.width_topic_queues));
        let tag = topics.map_or_else(|| "width-consume".to_owned(), |t| format!("width-t{t}"));
        let servers = Servers::start(args, &profile, binaries, out, &tag, seed)?;
        let (addr, pid) = (servers.broker_addr, servers.pid());
        if let Some(topics) = topics {
            let producer = ProducerArgs { broker: addr, pid: Some(pid), ..template };
            match width_produce(args, &profile, producer, &names, setup, out) {
                Ok(p) => results.produce.push(p),
                Err(e) => results.failures.push(format!("width produce over {topics} topics: {e}")),
            }
        }
        if consume_here {
            width_consume(args, &profile, addr, pid, out, &mut results);
        }
        let (stopped, store) = servers.stop_keeping_store();
        stores.push(store);
        stopped?;
    }
    Ok((results, stores))
}

/// Touches every (topic, queue) of `producer` once, then measures steady sends over all of them.
fn width_produce(args: &SuiteArgs, profile: &Profile, producer: ProducerArgs, names: &[String], setup: Instant, out: &Path) -> Result<WidthProduce, String> {
    let backend = broker::resolve_backend(&profile.backend)?;
    if args.width_setup == "request" {
        produce::prepare_topic(&producer, backend)?;
    }
    let setup_s = setup.elapsed().as_secs_f64();
    // One send to every (topic, queue) first: creating queue files is not the steady state.
    let touch = Instant::now();
    let pairs = produce::send_pairs(names.len(), producer.queues);
    let sends = broker::SendTemplate::new(&producer.producer_group, &producer.topic, producer.queues, args.message_bytes, 1);
    let failed = produce::pipelined(producer.broker, backend, pairs.len(), 64, |i| sends.request_to(&names[pairs[i].0], pairs[i].1, None))?;
    if !failed.is_empty() {
        return Err(format!("touching {} queues: {failed:?}", pairs.len()));
    }
    let touch_s = touch.elapsed().as_secs_f64();
    // Acknowledged is not dispatched: the broker may still be creating consume-queue files.
    let (dispatch_wait_s, dispatch_behind_before_bytes) = wait_for_dispatch(producer.broker, &profile.backend, DISPATCH_WAIT)?;
    let concurrency = producer.connections * producer.in_flight;
    let pid = producer.pid;
    let (topics, queues_per_topic) = (producer.topics, producer.queues);
    let json = Some(out.join("raw").join(format!("width-produce-t{topics}.json")));
    let warm = SuiteArgs { warmup_ms: args.width_warmup_ms, ..args.clone() };
    let point = produce_point(&warm, profile, concurrency, ProducerArgs { no_create_topic: true, ..producer }, json)?;
    Ok(WidthProduce {
        topics,
        queues_per_topic,
        setup: args.width_setup.clone(),
        setup_s,
        touch_s,
        dispatch_wait_s,
        dispatch_behind_before_bytes,
        broker_open_files: pid.and_then(broker::open_files),
        point,
    })
}

/// The same backlog written over few and over many queues (batches, not measured), then each
/// read back by a catch-up consumer (measured).
fn width_consume(args: &SuiteArgs, profile: &Profile, addr: SocketAddr, pid: u32, out: &Path, results: &mut WidthResults) {
    let (connections, in_flight) = shape(args, args.concurrency.iter().copied().max().unwrap_or(1));
    let mut filled = Vec::new();
    for &queues in &args.width_consume_queues {
        let topic = format!("WidthQ{queues}");
        let fill = Instant::now();
        let producer = ProducerArgs { queues, batch: args.batch_messages.max(1), ..producer_args(args, profile, addr, pid, &topic, connections, in_flight) };
        match produce::run_produce(&ProduceArgs { producer, duration_secs: 0.0, count: Some(args.width_backlog.max(1)), warmup_ms: 0, json: None, slave_pid: None }) {
            Ok(_) => filled.push((queues, topic, fill.elapsed().as_secs_f64())),
            Err(e) => results.failures.push(format!("width consume: filling {queues} queues: {e}")),
        }
    }
    let mut reads: Vec<Vec<serde_json::Value>> = vec![Vec::new(); filled.len()];
    for read in 0..args.width_reads.max(1) {
        for (i, (queues, topic, _)) in filled.iter().enumerate() {
            let json = Some(out.join("raw").join(format!("width-consume-q{queues}-read{}.json", read + 1)));
            match catch_up(addr, pid, profile, topic, *queues, 120.0, json) {
                Ok(summary) => reads[i].push(summary),
                Err(e) => results.failures.push(format!("width consume over {queues} queues, read {}: {e}", read + 1)),
            }
        }
    }
    for ((queues, _, fill_s), mut summaries) in filled.into_iter().zip(reads) {
        let rate = |s: &serde_json::Value| s.get("messages_per_s").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        let rates: Vec<f64> = summaries.iter().map(rate).collect();
        summaries.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
        if let Some(summary) = summaries.get(summaries.len() / 2).cloned() {
            results.consume.push(WidthConsume { queues, fill_s, summary, rates });
        }
    }
}

fn producer_args(args: &SuiteArgs, profile: &Profile, broker: SocketAddr, pid: u32, topic: &str, connections: usize, in_flight: usize) -> ProducerArgs {
    ProducerArgs {
        broker,
        connections,
        in_flight,
        threads: 1,
        message_bytes: args.message_bytes,
        topic: topic.into(),
        queues: args.queues,
        topics: 1,
        no_create_topic: false,
        send_mode: "sync".into(),
        batch: 1,
        open_loop: false,
        rate: None,
        affinity: "any".into(),
        pid: (pid != 0).then_some(pid),
        producer_group: "ferromq-bench-suite".into(),
        io_backend: profile.backend.clone(),
        access_key: None,
        secret_key: None,
        tls: false,
    }
}

/// The broker's commit-log counters (`None` from a broker that does not report them).
fn read_flush_counters(broker_addr: SocketAddr, backend: &str) -> Result<Option<FlushCounters>, String> {
    let backend = broker::resolve_backend(backend)?;
    let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = Client::connect(broker_addr, broker::CONNECT_TIMEOUT).await.map_err(|e| format!("cannot connect to {broker_addr}: {e}"))?;
        broker::flush_counters(&client).await
    })
}

/// The fdatasync-bound rate at each SYNC_FLUSH point's mean batch size, brokers stopped.
fn measure_bounds(args: &SuiteArgs, runs: &[ProfileRun]) -> Result<Vec<BoundPoint>, String> {
    let scratch = ScratchDir::create(args.dir.as_deref(), "suite-bound")?;
    let duration = Duration::from_millis(if args.tiny { 20 } else { args.bound_ms.max(50) });
    let mut bounds = Vec::new();
    for run in runs.iter().filter(|r| r.profile.flush == "sync") {
        for point in &run.produce {
            let Some(flush) = &point.flush else { continue };
            if flush.log_syncs == 0 {
                continue;
            }
            let batch_bytes = flush.mean_bytes_per_sync().round().max(1.0) as usize;
            let idle = probe::fdatasync_bound(scratch.path(), batch_bytes, duration, Wakeups::Idle)?;
            let ticking = probe::fdatasync_bound(scratch.path(), batch_bytes, duration, Wakeups::Ticking)?;
            let bound_syncs_per_s = idle.syncs_per_s.max(ticking.syncs_per_s);
            let bound_messages_per_s = bound_syncs_per_s * point.messages_per_sync();
            let ratio = if bound_messages_per_s > 0.0 { point.messages_per_s / bound_messages_per_s } else { 0.0 };
            bounds.push(BoundPoint {
                profile: run.profile.name(),
                round: run.round,
                concurrency: point.concurrency,
                batch_bytes,
                idle,
                ticking,
                bound_syncs_per_s,
                broker_syncs_per_s: point.syncs_per_s(),
                bound_messages_per_s,
                ratio,
            });
        }
    }
    Ok(bounds)
}

/// Used space of the file system holding `dir`, in % of what non-root users can use (as `df`
/// and the broker count it).
pub(crate) fn disk_used_pct(dir: &Path) -> Option<f64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `path` is a NUL-terminated string and `stat` a plain struct statvfs fills.
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        stat
    };
    let block = stat.f_frsize as f64;
    let used = (stat.f_blocks.saturating_sub(stat.f_bfree)) as f64 * block;
    let usable = used + stat.f_bavail as f64 * block;
    (usable > 0.0).then(|| 100.0 * used / usable)
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`).
pub(crate) fn load_avg() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// Sum of the non-SUCCESS entries of a `codes` object (`{"SUCCESS": n, "SYSTEM_BUSY ...": m}`).
pub fn error_count(codes: &serde_json::Value) -> u64 {
    codes
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| !k.starts_with("SUCCESS")).filter_map(|(_, v)| v.as_u64()).sum())
        .unwrap_or(0)
}

fn cdf_points(value: Option<&serde_json::Value>) -> Vec<(f64, f64)> {
    value
        .and_then(serde_json::Value::as_array)
        .map(|points| {
            points
                .iter()
                .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The results folder of a run that started at `started`: `out`, or
/// `results/<mode>-<started>` under the current directory; created, with its `raw/` and
/// `logs/` sub-folders.
pub(crate) fn results_folder(out: Option<&Path>, mode: &str, started: &str) -> Result<PathBuf, String> {
    let out = out.map_or_else(|| PathBuf::from("results").join(format!("{mode}-{}", started.replace(':', "-"))), Path::to_path_buf);
    for sub in ["raw", "logs"] {
        std::fs::create_dir_all(out.join(sub)).map_err(|e| format!("cannot create {}: {e}", out.join(sub).display()))?;
    }
    Ok(out)
}

/// The folder holding the server binaries: `bin_dir` (`--bin-dir`), or this executable's.
pub(crate) fn bin_dir(bin_dir: Option<&Path>) -> Result<PathBuf, String> {
    match bin_dir {
        Some(dir) => Ok(dir.to_path_buf()),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| "cannot find this executable's folder".to_owned()),
    }
}

/// What a broker logs once it serves: `The broker[<name>, <addr>] boot success` (a broker
/// that runs its embedded name server logs that one's own `boot success` first).
pub(crate) const BROKER_READY: &str = "] boot success";

/// A free loopback port (bound, read and released; another process could take it in between,
/// which the server start would then report).
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A child server process whose stderr goes to a log file.
pub(crate) struct Server {
    child: Child,
    name: String,
    backend_logged: Option<String>,
}

impl Server {
    /// Starts `program` with FERROMQ_IO_BACKEND=`backend` and waits for a log line containing
    /// `ready_marker`.
    pub(crate) fn start(program: &Path, args: &[String], backend: &str, ready_marker: &str, log_path: &Path) -> Result<Server, String> {
        let name = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut child = Command::new(program)
            .args(args)
            .env("FERROMQ_IO_BACKEND", backend)
            .env("FERROMQ_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let mut log = std::fs::File::create(log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
        // Copies the log to its file for the process's whole life; the first lines also go to
        // the starter, which waits for the ready marker.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                let _ = lines_tx.send(line);
            }
        });
        let mut server = Server { child, name, backend_logged: None };
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(b) = line.split_whitespace().find_map(|w| w.strip_prefix("backend=")) {
                        server.backend_logged = Some(b.trim_matches('"').to_owned());
                    }
                    if line.contains(ready_marker) {
                        return Ok(server);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if left > Duration::ZERO => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        return Err(format!("{} exited ({status}) before serving; see {}", server.name, log_path.display()));
                    }
                }
                Err(_) => {
                    let _ = server.child.kill();
                    return Err(format!("{} did not log {ready_marker:?} in time; see {}", server.name, log_path.display()));
                }
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The I/O backend the server logged at start (`backend=`), if it did.
    pub(crate) fn backend_logged(&self) -> Option<&str> {
        self.backend_logged.as_deref()
    }

    /// SIGTERM, then SIGKILL if it has not exited in [`SERVER_STOP_TIMEOUT`].
    pub(crate) fn stop(mut self) -> Result<(), String> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(|e| e.to_string())?;
        // SAFETY: kill(2) with a pid this process spawned and has not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + SERVER_STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!("{} did not stop within {:?} of SIGTERM (killed)", self.name, SERVER_STOP_TIMEOUT))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only reached without stop() (an error on the way): never leave a server behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `2026-11-21T10:19:00Z` for `t` (UTC, whole seconds).
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (year, month, day, hour, minute, second) = ferromq_store::index::utc_civil(i64::try_from(secs).unwrap_or(i64::MAX));
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_661)), "2000-02-29T01:01:01Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(1_795_256_340)), "2026-11-21T10:19:00Z");
    }

    #[test]
    fn log_scan_counts_errors_and_warnings_per_file() {
        let dir = ScratchDir::create(None, "logscan").unwrap();
        std::fs::write(
            dir.path().join("a-broker.log"),
            "2026-12-02T09:16:35Z  INFO boot success\n2026-12-02T09:16:55Z ERROR dispatch failed error=EMFILE\n2026-12-02T09:16:56Z  WARN slow\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b-namesrv.log"), "2026-12-02T09:16:35Z  INFO boot success (ERROR in a message is not a level)\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x ERROR y\n").unwrap();
        let found = scan_logs(dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].file.as_str(), found[0].errors, found[0].warnings), ("a-broker.log", 1, 1));
        assert!(found[0].first[0].contains("dispatch failed"));
    }

    #[test]
    fn error_count_skips_success() {
        let codes = serde_json::json!({"SUCCESS": 10, "SYSTEM_BUSY [OVERLOAD]": 2, "timeout": 1});
        assert_eq!(error_count(&codes), 3);
        assert_eq!(error_count(&serde_json::Value::Null), 0);
    }
}
