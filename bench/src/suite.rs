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
//!    - one producer → tail consumer end-to-end latency run,
//!    - a catch-up consume of everything the producers stored (hot in the page cache),
//!
//!    and both processes are stopped with SIGTERM.
//! 3. With the brokers stopped: the fdatasync-bound rate at each SYNC_FLUSH point's own mean
//!    batch size (the ratio the durability target is stated in).
//! 4. `report.md`, five SVG plots, `results.json` (everything), `raw/` (each run's JSON summary)
//!    and `logs/` (every process's log) in the results folder.
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
use crate::probe::{self, ProbeReport, ProbeSizes, ScratchDir, SyncBoundRate, Wakeups};
use crate::produce::{self, ProduceArgs, ProducerArgs};
use crate::report;

/// How long a server may take to log that it is serving.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to exit after SIGTERM before it is killed.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Topic of the produce points (the catch-up consume reads it back).
const PRODUCE_TOPIC: &str = "BenchTopic";
/// Topic of the end-to-end run.
const E2E_TOPIC: &str = "BenchE2e";

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
    /// min(N, --max-connections) connections.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
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
    #[arg(long, default_value_t = 5)]
    pub duration_secs: u64,
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
}

impl ProducePoint {
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
    /// The `e2e` summary (1 connection, 1 in flight, tail consumer).
    pub e2e: Option<serde_json::Value>,
    /// The catch-up `consume` summary.
    pub consume: Option<serde_json::Value>,
    /// The `rss` summary (first round only).
    pub rss: Option<serde_json::Value>,
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
    pub probes: ProbeReport,
    pub runs: Vec<ProfileRun>,
    pub bounds: Vec<BoundPoint>,
}

/// Runs the suite and writes the report; returns the results folder.
pub fn run(args: SuiteArgs) -> Result<PathBuf, String> {
    let started_at = Instant::now();
    let started = utc_timestamp(SystemTime::now());
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("results").join(format!("suite-{}", started.replace(':', "-"))));
    for sub in ["raw", "logs"] {
        std::fs::create_dir_all(out.join(sub)).map_err(|e| format!("cannot create {}: {e}", out.join(sub).display()))?;
    }
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .map(Path::to_path_buf)
            .ok_or("cannot find this executable's folder")?,
    };
    let mqbroker = bin_dir.join("mqbroker");
    let mqnamesrv = bin_dir.join("mqnamesrv");
    for binary in [&mqbroker, &mqnamesrv] {
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
    let profiles: Vec<Profile> = args
        .flush
        .iter()
        .flat_map(|flush| args.backends.iter().map(move |backend| Profile { flush: flush.clone(), backend: backend.clone() }))
        .collect();
    if profiles.is_empty() {
        return Err("no profiles: --flush and --backends must name at least one each".into());
    }
    eprintln!("[suite] results folder {}", out.display());
    let store_base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let disk_at_start = disk_used_pct(&store_base);
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
            runs.push(run_profile(&args, profile, round, &mqbroker, &mqnamesrv, &out)?);
        }
    }

    eprintln!("[suite] fdatasync-bound rates at the brokers' batch sizes");
    let bounds = measure_bounds(&args, &runs)?;
    let settings = serde_json::json!({
        "flush": args.flush, "backends": args.backends, "concurrency": args.concurrency,
        "max_connections": args.max_connections, "message_bytes": args.message_bytes, "queues": args.queues,
        "duration_secs": args.duration_secs, "warmup_ms": args.warmup_ms, "rounds": args.rounds,
        "shards": args.shards, "rss_connections": args.rss_connections, "bound_ms": args.bound_ms,
        "config": args.config, "broker_settings": args.broker_settings, "tiny": args.tiny,
        "elapsed_s": started_at.elapsed().as_secs_f64(),
    });
    let results = SuiteResults {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started,
        finished: utc_timestamp(SystemTime::now()),
        settings,
        disk_used_pct: (disk_at_start, disk_used_pct(&store_base)),
        probes,
        runs,
        bounds,
    };
    let json = serde_json::to_value(&results).map_err(|e| e.to_string())?;
    probe::write_json(&out.join("results.json"), &json)?;
    report::write(&results, &out)?;
    eprintln!("[suite] done in {:.0} s: {}", started_at.elapsed().as_secs_f64(), out.join("report.md").display());
    println!("{}", out.join("report.md").display());
    Ok(out)
}

/// Starts name server + broker for `profile`, runs every measurement, stops both.
fn run_profile(args: &SuiteArgs, profile: &Profile, round: usize, mqbroker: &Path, mqnamesrv: &Path, out: &Path) -> Result<ProfileRun, String> {
    let scratch = ScratchDir::create(args.dir.as_deref(), &format!("suite-{}-{}", profile.flush, profile.backend))?;
    let tag = format!("r{}-{}-{}", round + 1, profile.flush, profile.backend);
    let namesrv_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let namesrv = Server::start(
        mqnamesrv,
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
    set(format!("storePathRootDir={}", scratch.path().join("store").display()));
    set(format!("listenPort={}", broker_addr.port()));
    set("brokerIP1=127.0.0.1".to_owned());
    set(format!("flushDiskType={}", profile.flush_disk_type()));
    if let Some(shards) = args.shards {
        set(format!("shards={shards}"));
    }
    for kv in &args.broker_settings {
        set(kv.clone());
    }
    let broker_server = Server::start(mqbroker, &broker_args, &profile.backend, "boot success", &out.join("logs").join(format!("{tag}-broker.log")))?;
    let result = measure_profile(args, profile, round, broker_addr, broker_server.pid(), out, &tag);
    let backend_logged = broker_server.backend_logged.clone();
    broker_server.stop()?;
    namesrv.stop()?;
    drop(scratch);
    let mut run = result?;
    run.backend_logged = backend_logged;
    Ok(run)
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
        let connections = concurrency.min(args.max_connections.max(1));
        let in_flight = concurrency.div_ceil(connections);
        let producer = producer_args(args, profile, broker_addr, PRODUCE_TOPIC, connections, in_flight);
        let before = read_flush_counters(broker_addr, &profile.backend)?;
        let window = Instant::now();
        let summary = produce::run_produce(&ProduceArgs {
            producer,
            duration_secs: args.duration_secs.max(1),
            count: None,
            warmup_ms: args.warmup_ms,
            json: raw(&format!("produce-c{concurrency}")),
        })?;
        let flush_window_s = window.elapsed().as_secs_f64();
        let after = read_flush_counters(broker_addr, &profile.backend)?;
        let codes = summary.get("codes").cloned().unwrap_or(serde_json::Value::Null);
        produce_points.push(ProducePoint {
            concurrency,
            connections,
            in_flight_per_connection: in_flight,
            messages_per_s: summary.get("messages_per_s").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
            latency_us: summary.get("latency_us").cloned().unwrap_or(serde_json::Value::Null),
            latency_cdf_us: cdf_points(summary.get("latency_cdf_us")),
            errors: error_count(&codes),
            codes,
            flush: before.zip(after).map(|(b, a)| a.since(&b)),
            flush_window_s,
        });
    }

    let e2e = consume::run_e2e(&E2eArgs {
        producer: producer_args(args, profile, broker_addr, E2E_TOPIC, 1, 1),
        consumer_connections: 1,
        pull_batch: 32,
        suspend_ms: 1000,
        duration_secs: args.duration_secs.max(1),
        warmup_ms: args.warmup_ms,
        json: raw("e2e"),
    })?;

    let consume = consume::run_consume(&ConsumeArgs {
        consumer: ConsumerArgs {
            broker: broker_addr,
            topic: PRODUCE_TOPIC.into(),
            queues: args.queues,
            consumer_connections: 1,
            pull_batch: 32,
            suspend_ms: 1000,
            consumer_group: "ferromq-bench-suite".into(),
            consumer_io_backend: profile.backend.clone(),
        },
        catch_up: true,
        tail: false,
        duration_secs: (args.duration_secs * 3).max(5),
        json: raw("consume-catch-up"),
    })?;

    Ok(ProfileRun { profile: profile.clone(), round, backend_logged: None, produce: produce_points, e2e: Some(e2e), consume: Some(consume), rss })
}

fn producer_args(args: &SuiteArgs, profile: &Profile, broker: SocketAddr, topic: &str, connections: usize, in_flight: usize) -> ProducerArgs {
    ProducerArgs {
        broker,
        connections,
        in_flight,
        threads: 1,
        message_bytes: args.message_bytes,
        topic: topic.into(),
        queues: args.queues,
        no_create_topic: false,
        send_mode: "sync".into(),
        batch: 1,
        open_loop: false,
        rate: None,
        affinity: "any".into(),
        pid: None,
        producer_group: "ferromq-bench-suite".into(),
        io_backend: profile.backend.clone(),
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
fn disk_used_pct(dir: &Path) -> Option<f64> {
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

/// A free loopback port (bound, read and released; another process could take it in between,
/// which the server start would then report).
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A child server process whose stderr goes to a log file.
struct Server {
    child: Child,
    name: String,
    backend_logged: Option<String>,
}

impl Server {
    /// Starts `program` with FERROMQ_IO_BACKEND=`backend` and waits for a log line containing
    /// `ready_marker`.
    fn start(program: &Path, args: &[String], backend: &str, ready_marker: &str, log_path: &Path) -> Result<Server, String> {
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL if it has not exited in [`SERVER_STOP_TIMEOUT`].
    fn stop(mut self) -> Result<(), String> {
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
    fn error_count_skips_success() {
        let codes = serde_json::json!({"SUCCESS": 10, "SYSTEM_BUSY [OVERLOAD]": 2, "timeout": 1});
        assert_eq!(error_count(&codes), 3);
        assert_eq!(error_count(&serde_json::Value::Null), 0);
    }
}
