//! `store` mode: `ferromq-store` driven directly, on real files (`CompioStorage`), without the
//! network: what the storage engine alone sustains, reported as ratios to the machine's physical
//! limits measured in the same run (DESIGN.md, "Physical limits").
//!
//! For each writer count N (`--writers 1,16,64,256`) and each flush mode (SYNC_FLUSH, then
//! ASYNC_FLUSH, so that the two runs of one N are adjacent in time on a noisy machine), a fresh
//! store is opened with RocketMQ's default configuration (`--segment-mib` aside) and N tasks on one shard runtime append
//! single messages in a closed loop (one append outstanding per writer) for `--duration-secs`
//! after a warm-up. Each point records appends/s, MB/s of message bodies, append latency
//! percentiles, fdatasyncs, mean bytes per fdatasync and the most flushes ever in flight (the
//! store's invariant: 1).
//!
//! After each SYNC_FLUSH point the fdatasync-bound probe ([`probe::fdatasync_bound`]) runs at the
//! batch size the store just averaged, idle and ticking (see [`probe::Wakeups`]). The faster of
//! the two rates of back-to-back `write(B) + fdatasync` rounds, times the appends the store packed
//! into each fdatasync, is the most appends/s a group-committed log can acknowledge at that batch
//! size on this machine; the store's rate divided by it is the "sync ÷ fdatasync-bound" ratio
//! (target ≥ 0.8). The bound uses the
//! measured appends per fdatasync rather than `B / message_bytes` because a 1 KiB message is
//! stored as a ~1.1 KiB record and each batch carries a 24-byte commit marker.
//!
//! Finally the read path's lookup cost: a queue is filled (by concurrent writers on all queues,
//! so its records are interleaved in the log as a broker's are) and `get_message` of 32 messages
//! is timed at offsets spread over it (ns/op; the log ranges are not read). That store is then
//! closed and opened again, timed: what a clean restart costs (`Store::open` verifies the newest
//! segments' batches, as Java's `recoverNormally` checks its last three files).
//!
//! Messages look like a Java producer's: a `--message-bytes` body, properties `UNIQ_KEY` (unique
//! per message, so the index does its usual work), `WAIT=true` and `TAGS`.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ferromq_net::backend::{IoBackend, build_runtime};
use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::record::{MessageInput, Properties};
use ferromq_store::{FlushMode, QueueId, QueueOffset, Store, StoreConfig, StoreStats, TagFilter};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::probe::{self, LatencySummary, ProbeReport, ProbeSizes, ScratchDir, SyncBoundRate, Wakeups};

/// Topic every bench message goes to.
pub const BENCH_TOPIC: &str = "BenchTopic";
/// Messages per `get_message` in the lookup-cost measurement (a consumer's default batch).
pub const PULL_BATCH_MESSAGES: u32 = 32;
/// Target of sync appends/s ÷ fdatasync-bound appends/s at the same batch size.
pub const TARGET_SYNC_VS_BOUND: f64 = 0.8;
/// Target of SYNC_FLUSH appends/s ÷ ASYNC_FLUSH appends/s at the largest writer count.
pub const TARGET_SYNC_VS_ASYNC: f64 = 0.8;

#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Measured seconds per point (after the warm-up).
    #[arg(long, default_value_t = 3)]
    duration_secs: u64,
    /// Unmeasured warm-up per point, milliseconds (covers segment creation).
    #[arg(long, default_value_t = 500)]
    warmup_ms: u64,
    /// Concurrent writers (tasks on the one shard runtime), comma-separated; one point each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    writers: Vec<usize>,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// Queues of the bench topic; writer i appends to queue i mod queues.
    #[arg(long, default_value_t = 8)]
    queues: u32,
    /// Commit-log segment size in MiB (preallocated; RocketMQ's default is 1024).
    #[arg(long, default_value_t = 1024)]
    segment_mib: u64,
    /// Directory for the store and probe files (a fresh subdirectory is created and removed).
    /// Default: the system temp directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// I/O backend of the shard runtime: auto, io_uring or epoll (`FERROMQ_IO_BACKEND` wins).
    #[arg(long, default_value = "auto")]
    io_backend: String,
    /// Milliseconds each fdatasync-bound probe (idle, then ticking) runs after each SYNC_FLUSH point.
    #[arg(long, default_value_t = 1000)]
    probe_ms: u64,
    /// Messages per queue written before the lookup-cost measurement.
    #[arg(long, default_value_t = 4096)]
    pull_fill_messages: u64,
    /// `get_message` calls timed in the lookup-cost measurement.
    #[arg(long, default_value_t = 20_000)]
    pull_ops: u64,
    /// Also write every number (probes and machine included) as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What one `store` run does (the CLI's arguments, resolved; tests build tiny ones).
#[derive(Debug, Clone, Serialize)]
pub struct StorePlan {
    pub duration_ms: u64,
    pub warmup_ms: u64,
    pub writers: Vec<usize>,
    pub message_bytes: usize,
    pub queues: u32,
    pub segment_size_bytes: u64,
    pub probe_ms: u64,
    pub probe_sizes: ProbeSizes,
    pub pull_fill_messages: u64,
    pub pull_ops: u64,
    /// Print a progress line each second.
    pub progress: bool,
}

impl StorePlan {
    fn from_args(args: &StoreArgs) -> Result<StorePlan, String> {
        if args.writers.is_empty() || args.writers.contains(&0) {
            return Err("--writers needs one or more counts, each at least 1".into());
        }
        if args.message_bytes == 0 || args.queues == 0 || args.duration_secs == 0 {
            return Err("--message-bytes, --queues and --duration-secs must be at least 1".into());
        }
        Ok(StorePlan {
            duration_ms: args.duration_secs * 1_000,
            warmup_ms: args.warmup_ms,
            writers: args.writers.clone(),
            message_bytes: args.message_bytes,
            queues: args.queues,
            segment_size_bytes: args.segment_mib.max(8) << 20,
            probe_ms: args.probe_ms.max(1),
            probe_sizes: ProbeSizes::quick(),
            pull_fill_messages: args.pull_fill_messages.max(u64::from(PULL_BATCH_MESSAGES) + 1),
            pull_ops: args.pull_ops.max(1),
            progress: true,
        })
    }
}

/// The store's sync rate against the machine's at the same batch size.
#[derive(Debug, Clone, Serialize)]
pub struct SyncBoundComparison {
    /// The fdatasync-bound probes (idle, ticking) at the point's mean bytes per fdatasync.
    pub probes: Vec<SyncBoundRate>,
    /// The faster of the probes' syncs/s.
    pub bound_syncs_per_s: f64,
    /// `bound_syncs_per_s × appends per fdatasync` of the point.
    pub bound_appends_per_s: f64,
    /// Appends/s of the point ÷ `bound_appends_per_s`.
    pub ratio: f64,
}

/// One (flush mode, writers) point.
#[derive(Debug, Clone, Serialize)]
pub struct PointResult {
    pub flush_mode: &'static str,
    pub writers: usize,
    pub duration_s: f64,
    pub appends: u64,
    pub appends_per_s: f64,
    /// Message-body megabytes (10^6 bytes) per second.
    pub body_mb_per_s: f64,
    /// Stored bytes per append (the record: header, topic, properties and body).
    pub stored_bytes_per_append: f64,
    pub latency: LatencySummary,
    /// Commit-log fdatasyncs during the measured window.
    pub log_syncs: u64,
    pub syncs_per_s: f64,
    pub mean_bytes_per_sync: f64,
    pub appends_per_sync: f64,
    /// Most commit-log flushes ever in flight in this store (must be 1).
    pub max_flushes_in_flight: u64,
    /// SYNC_FLUSH points only.
    pub sync_bound: Option<SyncBoundComparison>,
}

/// SYNC_FLUSH against ASYNC_FLUSH at one writer count.
#[derive(Debug, Clone, Serialize)]
pub struct ModeComparison {
    pub writers: usize,
    pub sync_appends_per_s: f64,
    pub async_appends_per_s: f64,
    pub sync_async_ratio: f64,
    pub sync_vs_bound_ratio: Option<f64>,
}

/// Lookup cost of the read path.
#[derive(Debug, Clone, Serialize)]
pub struct PullCost {
    pub messages_in_queue: u64,
    pub messages_per_op: u32,
    pub ops: u64,
    pub ns_per_op: f64,
    /// Log ranges per result (adjacent records coalesce into one range).
    pub mean_ranges_per_op: f64,
}

/// What a clean restart of the lookup-cost store costs: `Store::open` after `Store::close`,
/// which verifies the newest segments' batches (`VERIFY_NEWEST_SEGMENTS`) as Java's
/// `recoverNormally` checks its last three files.
#[derive(Debug, Clone, Serialize)]
pub struct RestartCost {
    /// Bytes of log the store held (its end after the restart).
    pub log_bytes: u64,
    pub open_ms: f64,
    /// CPU of the whole process (every thread) during the open, milliseconds.
    pub cpu_ms: f64,
    /// Log megabytes (10^6 bytes) per second of open time.
    pub log_mb_per_s: f64,
    /// Records replayed into consume queues (0 after a clean stop).
    pub records_replayed: u64,
}

/// How the results stand against the targets.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub sync_vs_bound_target: f64,
    /// Lowest sync ÷ fdatasync-bound ratio over the SYNC_FLUSH points.
    pub sync_vs_bound_min: Option<f64>,
    /// Writer counts whose SYNC_FLUSH point is below the target.
    pub sync_vs_bound_missed_at_writers: Vec<usize>,
    pub sync_async_target: f64,
    pub sync_async_writers: usize,
    pub sync_async_ratio: Option<f64>,
    pub sync_async_met: bool,
    /// Every point kept exactly one flush in flight.
    pub one_flush_in_flight: bool,
}

/// Everything one `store` run measured.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    pub mode: &'static str,
    pub backend: String,
    pub plan: StorePlan,
    pub store_config: StoreConfigSummary,
    pub probes: ProbeReport,
    pub points: Vec<PointResult>,
    pub comparisons: Vec<ModeComparison>,
    pub pull: PullCost,
    pub restart: RestartCost,
    pub targets: TargetCheck,
}

/// The store settings that shape the results (RocketMQ defaults from `StoreConfig::new`, but
/// for the segment size, which the plan sets).
#[derive(Debug, Clone, Serialize)]
pub struct StoreConfigSummary {
    pub segment_size_bytes: u64,
    pub max_flush_batch_bytes: usize,
    pub async_flush_least_bytes: u64,
    pub async_flush_interval_ms: u64,
    pub checkpoint_interval_ms: u64,
    pub index_enable: bool,
}

/// `store` mode entry point.
pub fn run(args: StoreArgs) -> Result<(), String> {
    let backend = IoBackend::resolve(args.io_backend.parse()?)?;
    let plan = StorePlan::from_args(&args)?;
    let report = run_plan(args.dir.as_deref(), backend, &plan)?;
    print_summary(&report);
    if let Some(path) = &args.json {
        let json = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        probe::write_json(path, &json)?;
    }
    Ok(())
}

/// Runs the probes, every point, and the lookup-cost measurement, in a scratch directory under
/// `dir` that is removed afterwards.
pub fn run_plan(dir: Option<&Path>, backend: IoBackend, plan: &StorePlan) -> Result<StoreReport, String> {
    if plan.progress {
        eprintln!("probing the machine (fdatasync, sequential write, loopback) ...");
    }
    let probes = probe::run_probes(dir, &plan.probe_sizes)?;
    let scratch = ScratchDir::create(dir, "store")?;
    let (runtime, active) = build_runtime(backend).map_err(|e| e.to_string())?;
    let defaults = store_config(scratch.path(), FlushMode::Sync, plan);
    let store_config = StoreConfigSummary {
        segment_size_bytes: defaults.segment_size_bytes,
        max_flush_batch_bytes: defaults.max_flush_batch_bytes,
        async_flush_least_bytes: defaults.flush_least_bytes,
        async_flush_interval_ms: defaults.flush_interval_ms,
        checkpoint_interval_ms: defaults.checkpoint_interval_ms,
        index_enable: defaults.index_enable,
    };

    let mut points = Vec::new();
    let mut comparisons = Vec::new();
    for &writers in &plan.writers {
        let mut sync = runtime.block_on(run_point(scratch.path(), FlushMode::Sync, writers, plan))?;
        if sync.log_syncs > 0 {
            let batch_bytes = sync.mean_bytes_per_sync.round().max(1.0) as usize;
            let probes = Wakeups::BOTH
                .iter()
                .map(|w| probe::fdatasync_bound(scratch.path(), batch_bytes, Duration::from_millis(plan.probe_ms), *w))
                .collect::<Result<Vec<_>, _>>()?;
            let bound_syncs_per_s = probes.iter().map(|p| p.syncs_per_s).fold(0.0, f64::max);
            let bound_appends_per_s = bound_syncs_per_s * sync.appends_per_sync;
            let ratio = if bound_appends_per_s > 0.0 { sync.appends_per_s / bound_appends_per_s } else { 0.0 };
            if plan.progress {
                let rates: Vec<String> =
                    probes.iter().map(|p| format!("{} {:.0}", p.wakeups.name(), p.syncs_per_s)).collect();
                eprintln!(
                    "       fdatasync-bound at {batch_bytes} B: {} syncs/s; bound {:.0} x {:.1} appends/sync = {:.0} appends/s; store/bound {:.2}",
                    rates.join(", "),
                    bound_syncs_per_s,
                    sync.appends_per_sync,
                    bound_appends_per_s,
                    ratio
                );
            }
            sync.sync_bound = Some(SyncBoundComparison { probes, bound_syncs_per_s, bound_appends_per_s, ratio });
        }
        let asynchronous = runtime.block_on(run_point(scratch.path(), FlushMode::Async, writers, plan))?;
        comparisons.push(ModeComparison {
            writers,
            sync_appends_per_s: sync.appends_per_s,
            async_appends_per_s: asynchronous.appends_per_s,
            sync_async_ratio: if asynchronous.appends_per_s > 0.0 {
                sync.appends_per_s / asynchronous.appends_per_s
            } else {
                0.0
            },
            sync_vs_bound_ratio: sync.sync_bound.as_ref().map(|b| b.ratio),
        });
        points.push(sync);
        points.push(asynchronous);
    }
    let (pull, restart) = runtime.block_on(pull_cost(scratch.path(), plan))?;
    drop(runtime);
    drop(scratch);

    let targets = check_targets(&points, &comparisons);
    Ok(StoreReport {
        mode: "store",
        backend: active.to_string(),
        plan: plan.clone(),
        store_config,
        probes,
        points,
        comparisons,
        pull,
        restart,
        targets,
    })
}

fn check_targets(points: &[PointResult], comparisons: &[ModeComparison]) -> TargetCheck {
    let bound_ratios: Vec<(usize, f64)> = comparisons
        .iter()
        .filter_map(|c| c.sync_vs_bound_ratio.map(|r| (c.writers, r)))
        .collect();
    let sync_vs_bound_min = bound_ratios.iter().map(|(_, r)| *r).reduce(f64::min);
    let largest = comparisons.iter().max_by_key(|c| c.writers);
    TargetCheck {
        sync_vs_bound_target: TARGET_SYNC_VS_BOUND,
        sync_vs_bound_min,
        sync_vs_bound_missed_at_writers: bound_ratios
            .iter()
            .filter(|(_, r)| *r < TARGET_SYNC_VS_BOUND)
            .map(|(w, _)| *w)
            .collect(),
        sync_async_target: TARGET_SYNC_VS_ASYNC,
        sync_async_writers: largest.map(|c| c.writers).unwrap_or(0),
        sync_async_ratio: largest.map(|c| c.sync_async_ratio),
        sync_async_met: largest.is_some_and(|c| c.sync_async_ratio >= TARGET_SYNC_VS_ASYNC),
        one_flush_in_flight: points.iter().all(|p| p.max_flushes_in_flight == 1),
    }
}

/// RocketMQ's defaults, with the plan's segment size and the given flush mode.
fn store_config(dir: &Path, flush_mode: FlushMode, plan: &StorePlan) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.flush_mode = flush_mode;
    cfg.segment_size_bytes = plan.segment_size_bytes;
    cfg
}

fn mode_name(mode: FlushMode) -> &'static str {
    match mode {
        FlushMode::Sync => "sync",
        FlushMode::Async => "async",
    }
}

/// State shared by the writer tasks of one point (all on one thread).
struct Shared {
    stop: Cell<bool>,
    measuring: Cell<bool>,
    completed: Cell<u64>,
    histogram: RefCell<Histogram<u64>>,
    first_error: RefCell<Option<String>>,
}

impl Shared {
    fn record(&self, nanos: u64) {
        self.completed.set(self.completed.get() + 1);
        self.histogram.borrow_mut().saturating_record(nanos);
    }

    fn fail(&self, error: String) {
        let mut first = self.first_error.borrow_mut();
        if first.is_none() {
            *first = Some(error);
        }
        self.stop.set(true);
    }

    fn failed(&self) -> bool {
        self.first_error.borrow().is_some()
    }
}

/// A message as a Java producer sends it: body, UNIQ_KEY, WAIT and TAGS.
pub fn bench_message(body: &[u8], queue_id: u32, writer_index: usize, sequence: u64) -> MessageInput {
    let mut properties = Properties::new();
    properties.insert("UNIQ_KEY", &format!("{:08X}{:08X}{:016X}", std::process::id(), writer_index, sequence));
    properties.insert("WAIT", "true");
    properties.insert("TAGS", "bench");
    let mut message = MessageInput::simple(BENCH_TOPIC, QueueId(queue_id), body.to_vec(), &properties);
    message.born_timestamp_ms = ferromq_store::store::now_ms();
    message
}

/// One writer: appends single messages in a closed loop until told to stop; the first error
/// stops the whole point.
async fn writer(store: Store<CompioStorage>, shared: Rc<Shared>, writer_index: usize, message_bytes: usize, queues: u32) {
    let body = vec![b'm'; message_bytes];
    let queue_id = (writer_index % queues.max(1) as usize) as u32;
    let mut sequence = 0u64;
    while !shared.stop.get() {
        let message = bench_message(&body, queue_id, writer_index, sequence);
        sequence += 1;
        let start = Instant::now();
        match store.append(vec![message]).await {
            Ok(_) => {
                if shared.measuring.get() {
                    shared.record(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1));
                }
            }
            Err(e) => {
                // Returning also yields to the other tasks: an error never spins the loop.
                shared.fail(e.to_string());
                return;
            }
        }
    }
}

async fn run_point(root: &Path, flush_mode: FlushMode, writers: usize, plan: &StorePlan) -> Result<PointResult, String> {
    let name = mode_name(flush_mode);
    let dir = root.join(format!("{name}-{writers}w"));
    let cfg = store_config(&dir, flush_mode, plan);
    let (store, _) =
        Store::open(CompioStorage, cfg).await.map_err(|e| format!("cannot open a store in {}: {e}", dir.display()))?;
    let shared = Rc::new(Shared {
        stop: Cell::new(false),
        measuring: Cell::new(false),
        completed: Cell::new(0),
        histogram: RefCell::new(probe::nanos_histogram()?),
        first_error: RefCell::new(None),
    });
    let tasks: Vec<_> = (0..writers)
        .map(|w| compio::runtime::spawn(writer(store.clone(), shared.clone(), w, plan.message_bytes, plan.queues)))
        .collect();

    compio::time::sleep(Duration::from_millis(plan.warmup_ms)).await;
    let before = store.stats();
    let duration = Duration::from_millis(plan.duration_ms);
    let start = Instant::now();
    shared.measuring.set(true);
    let mut last = (start, 0u64, before);
    while start.elapsed() < duration && !shared.failed() {
        let left = duration.saturating_sub(start.elapsed());
        compio::time::sleep(left.min(Duration::from_secs(1))).await;
        if plan.progress {
            let now = (Instant::now(), shared.completed.get(), store.stats());
            let secs = (now.0 - last.0).as_secs_f64().max(1e-9);
            let syncs = now.2.log_syncs - last.2.log_syncs;
            let synced = now.2.synced_bytes - last.2.synced_bytes;
            eprintln!(
                "[{:>4.1}s] {name:<5} {writers:>4} writers: {:>9.0} appends/s {:>7.0} syncs/s {:>7.1} KiB/sync",
                start.elapsed().as_secs_f64(),
                (now.1 - last.1) as f64 / secs,
                syncs as f64 / secs,
                if syncs == 0 { 0.0 } else { synced as f64 / syncs as f64 / 1024.0 },
            );
            last = now;
        }
    }
    shared.measuring.set(false);
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let after = store.stats();
    let appends = shared.completed.get();
    shared.stop.set(true);
    let mut panicked = false;
    for task in tasks {
        panicked |= task.await.is_err();
    }
    let closed = store.close().await;
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("ferromq-bench: cannot remove {}: {e}", dir.display());
    }
    if panicked {
        return Err(format!("{name} {writers} writers: a writer task panicked"));
    }
    if let Some(e) = shared.first_error.borrow_mut().take() {
        return Err(format!("{name} {writers} writers: append failed: {e}"));
    }
    closed.map_err(|e| format!("{name} {writers} writers: closing the store failed: {e}"))?;
    let latency = LatencySummary::from_nanos(&shared.histogram.borrow());
    Ok(point_result(name, writers, elapsed, appends, plan.message_bytes, &before, &after, latency))
}

#[allow(clippy::too_many_arguments)]
fn point_result(
    flush_mode: &'static str,
    writers: usize,
    duration_s: f64,
    appends: u64,
    message_bytes: usize,
    before: &StoreStats,
    after: &StoreStats,
    latency: LatencySummary,
) -> PointResult {
    let stored_appends = after.appends - before.appends;
    let stored_bytes = after.appended_bytes - before.appended_bytes;
    let log_syncs = after.log_syncs - before.log_syncs;
    let synced_bytes = after.synced_bytes - before.synced_bytes;
    let per = |num: f64, den: u64| if den == 0 { 0.0 } else { num / den as f64 };
    PointResult {
        flush_mode,
        writers,
        duration_s,
        appends,
        appends_per_s: appends as f64 / duration_s,
        body_mb_per_s: appends as f64 * message_bytes as f64 / duration_s / 1e6,
        stored_bytes_per_append: per(stored_bytes as f64, stored_appends),
        latency,
        log_syncs,
        syncs_per_s: log_syncs as f64 / duration_s,
        mean_bytes_per_sync: per(synced_bytes as f64, log_syncs),
        appends_per_sync: per(stored_appends as f64, log_syncs),
        max_flushes_in_flight: after.max_flushes_in_flight,
        sync_bound: None,
    }
}

/// Fills every queue with `pull_fill_messages` (one writer per queue, so records of different
/// queues interleave in the log), then times `pull_ops` calls of `get_message(32)` on queue 0;
/// then closes the store and times opening it again.
async fn pull_cost(root: &Path, plan: &StorePlan) -> Result<(PullCost, RestartCost), String> {
    let dir = root.join("pull");
    let cfg = store_config(&dir, FlushMode::Async, plan);
    let result = async {
        let (store, _) =
            Store::open(CompioStorage, cfg.clone()).await.map_err(|e| format!("cannot open a store in {}: {e}", dir.display()))?;
        let cost = measure_pulls(&store, plan).await;
        let closed = store.close().await;
        let cost = cost?;
        closed.map_err(|e| format!("lookup cost: closing the store failed: {e}"))?;
        let restart = restart_cost(&cfg).await?;
        Ok((cost, restart))
    }
    .await;
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("ferromq-bench: cannot remove {}: {e}", dir.display());
    }
    result
}

/// Opens the (cleanly closed) store of `cfg` again, timed, and closes it.
async fn restart_cost(cfg: &StoreConfig) -> Result<RestartCost, String> {
    let (cpu_before, started) = (crate::cpu::self_cpu_ns(), Instant::now());
    let (store, report) = Store::open(CompioStorage, cfg.clone()).await.map_err(|e| format!("restart: reopening the store failed: {e}"))?;
    let open = started.elapsed();
    let cpu_ns = crate::cpu::self_cpu_ns().saturating_sub(cpu_before);
    store.close().await.map_err(|e| format!("restart: closing the store failed: {e}"))?;
    let open_s = open.as_secs_f64();
    Ok(RestartCost {
        log_bytes: report.log_end,
        open_ms: open_s * 1e3,
        cpu_ms: cpu_ns as f64 / 1e6,
        log_mb_per_s: if open_s > 0.0 { report.log_end as f64 / 1e6 / open_s } else { 0.0 },
        records_replayed: report.records_replayed,
    })
}

async fn measure_pulls(store: &Store<CompioStorage>, plan: &StorePlan) -> Result<PullCost, String> {
    let fillers: Vec<_> = (0..plan.queues)
        .map(|queue_id| {
            let store = store.clone();
            let (count, message_bytes) = (plan.pull_fill_messages, plan.message_bytes);
            compio::runtime::spawn(async move {
                let body = vec![b'p'; message_bytes];
                for sequence in 0..count {
                    let message = bench_message(&body, queue_id, queue_id as usize, sequence);
                    store.append(vec![message]).await.map_err(|e| format!("filling queue {queue_id}: {e}"))?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for filler in fillers {
        filler.await.map_err(|_| "a filler task panicked".to_string())??;
    }
    store.wait_dispatched().await.map_err(|e| e.to_string())?;
    let (min, max) = store.queue_offsets(BENCH_TOPIC, QueueId(0));
    let span = max.0 - min.0;
    let batch = u64::from(PULL_BATCH_MESSAGES);
    if span < batch {
        return Err(format!("lookup cost: queue 0 holds {span} messages, fewer than {batch}"));
    }
    let positions = span - batch + 1;
    let mut ranges = 0u64;
    let warmup_ops = (plan.pull_ops / 10).clamp(1, 1_000);
    let mut start = Instant::now();
    for op in 0..warmup_ops + plan.pull_ops {
        if op == warmup_ops {
            ranges = 0;
            start = Instant::now();
        }
        // A stride coprime with most spans walks the whole queue rather than a cached corner.
        let offset = min.0 + (op * 7 * batch + op) % positions;
        let result = store
            .get_message(BENCH_TOPIC, QueueId(0), QueueOffset(offset), PULL_BATCH_MESSAGES, &TagFilter::All)
            .await
            .map_err(|e| format!("get_message at {offset}: {e}"))?;
        if result.message_count != PULL_BATCH_MESSAGES {
            return Err(format!(
                "get_message at {offset} returned {} messages ({:?}), expected {PULL_BATCH_MESSAGES}",
                result.message_count, result.status
            ));
        }
        ranges += result.ranges.len() as u64;
    }
    let elapsed = start.elapsed();
    Ok(PullCost {
        messages_in_queue: span,
        messages_per_op: PULL_BATCH_MESSAGES,
        ops: plan.pull_ops,
        ns_per_op: elapsed.as_nanos() as f64 / plan.pull_ops as f64,
        mean_ranges_per_op: ranges as f64 / plan.pull_ops as f64,
    })
}

/// Prints the probes, the table of points, the comparisons and the targets.
pub fn print_summary(report: &StoreReport) {
    let plan = &report.plan;
    println!();
    probe::print_report(&report.probes, plan.message_bytes);
    println!();
    println!(
        "store: backend {}, {} B bodies, {} queues, {:.1} s per point after {} ms warm-up, RocketMQ default config with {} MiB segments",
        report.backend,
        plan.message_bytes,
        plan.queues,
        plan.duration_ms as f64 / 1_000.0,
        plan.warmup_ms,
        plan.segment_size_bytes >> 20
    );
    println!(
        "{:<6}{:>8}{:>12}{:>9}{:>10}{:>10}{:>10}{:>11}{:>10}{:>11}{:>12}{:>8}",
        "mode", "writers", "appends/s", "MB/s", "p50 us", "p99 us", "syncs/s", "B/sync", "app/sync", "in flight", "bound/s", "ratio"
    );
    for p in &report.points {
        let (bound, ratio) = match &p.sync_bound {
            Some(b) => (format!("{:.0}", b.bound_appends_per_s), format!("{:.2}", b.ratio)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<6}{:>8}{:>12.0}{:>9.1}{:>10.0}{:>10.0}{:>10.0}{:>11.0}{:>10.1}{:>11}{:>12}{:>8}",
            p.flush_mode,
            p.writers,
            p.appends_per_s,
            p.body_mb_per_s,
            p.latency.p50_us,
            p.latency.p99_us,
            p.syncs_per_s,
            p.mean_bytes_per_sync,
            p.appends_per_sync,
            p.max_flushes_in_flight,
            bound,
            ratio
        );
    }
    println!("(ratio = sync appends/s / fdatasync-bound appends/s at the point's mean batch, probed right after it)");
    for c in &report.comparisons {
        println!("sync/async at {:>4} writers: {:.2}", c.writers, c.sync_async_ratio);
    }
    let t = &report.targets;
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    match t.sync_vs_bound_min {
        Some(min) => println!(
            "target sync / fdatasync-bound >= {:.1}: min {:.2} -> {}{}",
            t.sync_vs_bound_target,
            min,
            verdict(t.sync_vs_bound_missed_at_writers.is_empty()),
            if t.sync_vs_bound_missed_at_writers.is_empty() {
                String::new()
            } else {
                format!(" (below at {:?} writers)", t.sync_vs_bound_missed_at_writers)
            }
        ),
        None => println!("target sync / fdatasync-bound: no SYNC_FLUSH point synced"),
    }
    if let Some(ratio) = t.sync_async_ratio {
        println!(
            "target sync / async at {} writers >= {:.1}: {:.2} -> {}",
            t.sync_async_writers,
            t.sync_async_target,
            ratio,
            verdict(t.sync_async_met)
        );
    }
    println!("one flush in flight at every point: {}", if t.one_flush_in_flight { "yes" } else { "NO" });
    let p = &report.pull;
    println!(
        "get_message of {} from a queue of {} messages: {:.0} ns/op over {} ops ({:.1} log ranges per result)",
        p.messages_per_op, p.messages_in_queue, p.ns_per_op, p.ops, p.mean_ranges_per_op
    );
    let r = &report.restart;
    println!(
        "restart after a clean stop: {:.1} MB of log opened in {:.0} ms ({:.0} MB/s, {:.0} ms CPU, {} records replayed)",
        r.log_bytes as f64 / 1e6,
        r.open_ms,
        r.log_mb_per_s,
        r.cpu_ms,
        r.records_replayed
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_run_measures_every_point_with_one_flush_in_flight() {
        let base = std::env::temp_dir().join(format!("ferromq-bench-store-test-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let plan = StorePlan {
            duration_ms: 300,
            warmup_ms: 50,
            writers: vec![1, 8],
            message_bytes: 256,
            queues: 4,
            segment_size_bytes: 16 << 20,
            probe_ms: 30,
            probe_sizes: ProbeSizes::tiny(),
            pull_fill_messages: 64,
            pull_ops: 50,
            progress: false,
        };
        let backend = IoBackend::resolve(IoBackend::Auto).unwrap();
        let report = run_plan(Some(&base), backend, &plan).unwrap();
        assert_eq!(report.points.len(), 4);
        for p in &report.points {
            assert!(p.appends > 0, "{p:?}");
            assert!(p.latency.p50_us > 0.0, "{p:?}");
            assert_eq!(p.max_flushes_in_flight, 1, "{p:?}");
            assert!(p.stored_bytes_per_append > 256.0, "{p:?}");
        }
        let sync_8 = &report.points[2];
        assert_eq!((sync_8.flush_mode, sync_8.writers), ("sync", 8));
        let bound = sync_8.sync_bound.as_ref().expect("sync points are compared with the probe");
        assert!(bound.ratio > 0.0 && bound.bound_appends_per_s > 0.0);
        assert!(report.points[3].sync_bound.is_none());
        assert_eq!(report.comparisons.len(), 2);
        assert!(report.targets.one_flush_in_flight);
        assert_eq!(report.targets.sync_async_writers, 8);
        assert_eq!(report.pull.messages_in_queue, 64);
        assert_eq!(report.pull.ops, 50);
        assert!(report.pull.ns_per_op > 0.0);
        // The restart reopened the lookup store's log: 4 queues of 64 records of 256-byte bodies.
        assert!(report.restart.log_bytes > 4 * 64 * 256, "{:?}", report.restart);
        assert!(report.restart.open_ms > 0.0);
        // The JSON carries every number, and the scratch directories are gone.
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["probes"]["fdatasync_latency"][0]["latency"]["p99_us"].is_number());
        assert_eq!(bound.probes.len(), 2);
        assert_eq!(json["points"].as_array().unwrap().len(), 4);
        assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0);
        std::fs::remove_dir(&base).unwrap();
    }
}
