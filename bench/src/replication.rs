//! `replication` mode: master–slave replication (issue 9) measured on one machine, recorded
//! beside the machine's probes, not asserted.
//!
//! The mode starts the brokers itself — `mqbroker` from `--bin-dir` (default: this
//! executable's folder), like `suite` — each on a store in a scratch folder removed afterwards.
//! A master (`brokerRole=ASYNC_MASTER` or `SYNC_MASTER`, flush mode `--master-flush`) runs its
//! embedded name server; its slave (`brokerRole=SLAVE`, `brokerId=1`, the same `brokerName` and
//! `shards`) registers there and follows the master at `haMasterAddress=127.0.0.1:<haListenPort>`.
//!
//! 1. The physical probes (as `suite` prints them).
//! 2. For every round and every slave flush mode (`--slave-flush`): an ASYNC_MASTER pair and a
//!    SYNC_MASTER pair, back to back (both orders alternate between rounds), each a fresh
//!    master and slave that are in sync (every shard's stream connected, no lag) before:
//!    - the load point: `--connections` × `--in-flight` closed-loop sends of `--message-bytes`,
//!      with the master's CPU and the slave's over the same window, per acknowledged message;
//!    - under ASYNC_MASTER, the steady point: an open loop at `--steady-fraction` of the load
//!      point's rate;
//!    - the single point: one connection, one send in flight.
//!
//!    During every point the master's GET_BROKER_RUNTIME_INFO is sampled every
//!    `--lag-sample-ms` for `ferromqReplicationLagBytes` / `ferromqReplicationLagMs` (from the end
//!    of the warm-up to the end of the point).
//! 3. Catch-up: one ASYNC_MASTER filled alone to `--catch-up-mib` (batches), flushed and synced,
//!    then for each `--catch-up-slave-flush` a slave with an empty store started against it and
//!    timed until the master reports every shard's stream connected and no lag; bytes/s of that
//!    against a loopback `sendfile` probe of the same bytes (a file written and synced first,
//!    sent to a reader that discards it).
//! 4. `report.md`, `results.json`, `raw/` (every point's `produce` summary) and `logs/` (every
//!    broker's log) in the results folder.
//!
//! Ratios and added latencies are paired: the SYNC_MASTER run of a round against the
//! ASYNC_MASTER run next to it in time, then the median over rounds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ferromq_net::backend::build_runtime;
use ferromq_net::client::Client;
use serde::Serialize;

use crate::broker::{self, ReplicationStatus};
use crate::cpu::{CpuReport, CpuWindow};
use crate::probe::{self, MIB, ProbeReport, ProbeSizes, ScratchDir, SendfileBandwidth};
use crate::produce::{self, ProduceArgs, ProducerArgs};
use crate::report::{Spread, opt, spread};
use crate::suite::{self, BROKER_READY, LogProblems, Server};

/// Target of issue 9: SYNC_MASTER ÷ ASYNC_MASTER throughput at the load point.
pub const TARGET_SYNC_VS_ASYNC_MASTER: f64 = 0.8;
/// Target of issue 9: catch-up replication bytes/s ÷ loopback sendfile bytes/s.
pub const TARGET_CATCH_UP_VS_SENDFILE: f64 = 0.8;
/// `brokerName` of every pair.
const BROKER_NAME: &str = "ferromq-bench-repl";
/// Topic of the measured points.
const TOPIC: &str = "ReplBench";
/// Topic the catch-up master is filled with.
const CATCH_UP_TOPIC: &str = "ReplCatchUp";
/// How long a fresh pair may take to be in sync.
const IN_SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the filled master may take to flush and dispatch what it holds.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Poll interval of the catch-up.
const CATCH_UP_POLL: Duration = Duration::from_millis(20);

#[derive(clap::Args, Debug, Clone)]
pub struct ReplicationArgs {
    /// Results folder (created). Default: results/replication-<UTC time> under the current directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Folder holding `mqbroker`. Default: the folder of this executable.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Base folder for the stores and the probe files: put it on the disk the brokers will use.
    /// Default: the system temp folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Slave flush modes: each is measured against an ASYNC_MASTER and a SYNC_MASTER.
    #[arg(long, value_delimiter = ',', default_value = "sync,async", value_parser = ["sync", "async"])]
    pub slave_flush: Vec<String>,
    /// The master's flush mode, the same for every pair (RocketMQ's 2m-2s-sync layout flushes
    /// asynchronously on both sides).
    #[arg(long, default_value = "async", value_parser = ["sync", "async"])]
    pub master_flush: String,
    /// I/O backend of both brokers and of the load generator.
    #[arg(long, default_value = "io_uring", value_parser = ["io_uring", "epoll"])]
    pub backend: String,
    /// Shards of both brokers (a slave must have its master's).
    #[arg(long, default_value_t = 2)]
    pub shards: u16,
    /// Producer connections of the load and steady points.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Sends in flight per connection of the load point (at most, at the steady point).
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// Message body size, bytes.
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// Queues of the bench topics.
    #[arg(long, default_value_t = 8)]
    pub queues: u32,
    /// Measured seconds of the load and steady points.
    #[arg(long, default_value_t = 8.0)]
    pub duration_secs: f64,
    /// Measured seconds of the single point (one send in flight).
    #[arg(long, default_value_t = 5.0)]
    pub single_duration_secs: f64,
    /// Unmeasured warm-up of every point, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub warmup_ms: u64,
    /// Rounds: each measures every slave flush mode with both master roles (0: only the
    /// catch-up).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Rate of the steady point (ASYNC_MASTER only) as a fraction of that pair's load-point
    /// throughput, open loop (0: no steady point).
    #[arg(long, default_value_t = 0.5)]
    pub steady_fraction: f64,
    /// Interval between two samples of the master's replication lag, milliseconds.
    #[arg(long, default_value_t = 50)]
    pub lag_sample_ms: u64,
    /// MiB of commit log the catch-up master holds before its slave starts (0: no catch-up).
    #[arg(long, default_value_t = 1024)]
    pub catch_up_mib: u64,
    /// Slave flush modes of the catch-up, one fresh empty slave each, against the same master,
    /// in this order (a mode may repeat).
    #[arg(long, value_delimiter = ',', default_value = "async,sync", value_parser = ["sync", "async"])]
    pub catch_up_slave_flush: Vec<String>,
    /// Longest a catch-up may take, seconds.
    #[arg(long, default_value_t = 600)]
    pub catch_up_timeout_secs: u64,
    /// Extra settings for both brokers, KEY=VALUE (passed as `mqbroker --set`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub broker_settings: Vec<String>,
    /// Tiny probe sizes (a quick check that everything runs; the probes mean nothing then).
    #[arg(long)]
    pub tiny: bool,
}

/// `SYNC_FLUSH` or `ASYNC_FLUSH` for `sync` or `async`.
fn flush_disk_type(flush: &str) -> &'static str {
    if flush == "sync" { "SYNC_FLUSH" } else { "ASYNC_FLUSH" }
}

/// `SYNC_MASTER` or `ASYNC_MASTER` for `sync` or `async`.
fn master_role(role: &str) -> &'static str {
    if role == "sync" { "SYNC_MASTER" } else { "ASYNC_MASTER" }
}

/// p50, p99 and max of a set of samples (nearest rank: the smallest sample with at least that
/// share of the samples at or below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quantiles {
    pub count: usize,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Quantiles {
    /// `None` without samples.
    pub fn of(values: impl IntoIterator<Item = u64>) -> Option<Quantiles> {
        let mut v: Vec<u64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let n = v.len();
        let rank = |q: f64| ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        Some(Quantiles { count: n, p50: v[rank(0.5)], p99: v[rank(0.99)], max: v[n - 1] })
    }
}

/// One sample of the master's replication figures, `at_s` seconds after the sampler started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LagSample {
    pub at_s: f64,
    #[serde(flatten)]
    pub status: ReplicationStatus,
}

/// The lag quantiles of the samples taken within `[from_s, to_s]`.
pub fn lag_in_window(samples: &[LagSample], from_s: f64, to_s: f64) -> (Option<Quantiles>, Option<Quantiles>) {
    let inside: Vec<&LagSample> = samples.iter().filter(|s| s.at_s >= from_s && s.at_s <= to_s).collect();
    (Quantiles::of(inside.iter().map(|s| s.status.lag_bytes)), Quantiles::of(inside.iter().map(|s| s.status.lag_ms)))
}

/// `numerator ÷ denominator`, `None` unless both are finite and the denominator positive.
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (numerator.is_finite() && denominator.is_finite() && denominator > 0.0).then(|| numerator / denominator)
}

/// One produce point against a master with its slave.
#[derive(Debug, Clone, Serialize)]
pub struct PairPoint {
    /// `load`, `steady` or `single`.
    pub kind: String,
    pub connections: usize,
    pub in_flight: usize,
    /// The open-loop rate (messages/s), `None` for a closed loop.
    pub rate: Option<f64>,
    /// Acknowledged (SEND_OK) messages per second.
    pub messages_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Sends answered otherwise (FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE, …) or failed.
    pub errors: u64,
    pub codes: serde_json::Value,
    /// The master's CPU over the measured window (and the generator's, the machine's).
    pub master_cpu: Option<CpuReport>,
    /// The slave's CPU over the same window.
    pub slave_cpu: Option<CpuReport>,
    /// Mean bytes the master's log grew by per message over the point (record headers included).
    pub stored_bytes_per_message: Option<f64>,
    /// Seconds since the previous point ended until the slave held everything again (the
    /// point starts only then).
    pub drain_s: f64,
    /// The master's and the slave's commit-log counters over warm-up + point (appends,
    /// fdatasyncs and the bytes they made durable), and the seconds they cover.
    pub master_log: Option<broker::FlushCounters>,
    pub slave_log: Option<broker::FlushCounters>,
    pub log_window_s: f64,
    /// `ferromqReplicationLagBytes` / `ferromqReplicationLagMs` sampled on the master.
    pub lag_bytes: Option<Quantiles>,
    pub lag_ms: Option<Quantiles>,
}

impl PairPoint {
    pub fn master_us(&self) -> Option<f64> {
        self.master_cpu.as_ref()?.broker_us_per_message
    }

    pub fn slave_us(&self) -> Option<f64> {
        self.slave_cpu.as_ref()?.broker_us_per_message
    }

    /// Master + slave CPU per acknowledged message.
    pub fn total_us(&self) -> Option<f64> {
        Some(self.master_us()? + self.slave_us()?)
    }

    /// The p99 lag in bytes as time at the point's rate: p99 bytes ÷ (messages/s × stored
    /// bytes per message), in ms.
    pub fn lag_p99_as_ms(&self) -> Option<f64> {
        let bytes_per_s = self.messages_per_s * self.stored_bytes_per_message?;
        ratio(self.lag_bytes?.p99 as f64 * 1e3, bytes_per_s)
    }
}

/// One master role with one slave flush mode in one round: a fresh pair.
#[derive(Debug, Clone, Serialize)]
pub struct PairRun {
    /// `async` (ASYNC_MASTER) or `sync` (SYNC_MASTER).
    pub role: String,
    /// The slave's flush mode, `sync` or `async`.
    pub slave_flush: String,
    pub round: usize,
    pub load: Option<PairPoint>,
    pub steady: Option<PairPoint>,
    pub single: Option<PairPoint>,
    /// Seconds the fresh pair took to be in sync (from the slave's start).
    pub in_sync_s: Option<f64>,
    pub failures: Vec<String>,
}

impl PairRun {
    pub fn name(&self) -> String {
        format!("{} / slave {}", master_role(&self.role), flush_disk_type(&self.slave_flush))
    }
}

/// The paired figures of one slave flush mode: one entry per round that measured both roles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlushFigures {
    pub slave_flush: String,
    pub rounds: Vec<usize>,
    pub async_rate: Vec<f64>,
    pub sync_rate: Vec<f64>,
    /// SYNC_MASTER ÷ ASYNC_MASTER messages/s at the load point, per round.
    pub sync_vs_async: Vec<f64>,
    /// SYNC_MASTER − ASYNC_MASTER p50 and p99, µs, at the single point and the load point.
    pub added_p50_single_us: Vec<f64>,
    pub added_p99_single_us: Vec<f64>,
    pub added_p50_load_us: Vec<f64>,
    pub added_p99_load_us: Vec<f64>,
}

/// Pairs each round's SYNC_MASTER run with its ASYNC_MASTER run, per slave flush mode (in the
/// order the modes first appear).
pub fn pair_figures(runs: &[PairRun]) -> Vec<FlushFigures> {
    let mut flushes: Vec<&str> = Vec::new();
    for r in runs {
        if !flushes.contains(&r.slave_flush.as_str()) {
            flushes.push(&r.slave_flush);
        }
    }
    let mut out = Vec::new();
    for flush in flushes {
        let mut f = FlushFigures { slave_flush: flush.to_owned(), ..FlushFigures::default() };
        let mut rounds: Vec<usize> = runs.iter().filter(|r| r.slave_flush == flush).map(|r| r.round).collect();
        rounds.sort_unstable();
        rounds.dedup();
        for round in rounds {
            let find = |role: &str| runs.iter().find(|r| r.slave_flush == flush && r.round == round && r.role == role);
            let (Some(a), Some(s)) = (find("async"), find("sync")) else { continue };
            let (Some(al), Some(sl)) = (&a.load, &s.load) else { continue };
            f.rounds.push(round);
            f.async_rate.push(al.messages_per_s);
            f.sync_rate.push(sl.messages_per_s);
            f.sync_vs_async.push(ratio(sl.messages_per_s, al.messages_per_s).unwrap_or(f64::NAN));
            f.added_p50_load_us.push(sl.p50_us - al.p50_us);
            f.added_p99_load_us.push(sl.p99_us - al.p99_us);
            if let (Some(a1), Some(s1)) = (&a.single, &s.single) {
                f.added_p50_single_us.push(s1.p50_us - a1.p50_us);
                f.added_p99_single_us.push(s1.p99_us - a1.p99_us);
            }
        }
        out.push(f);
    }
    out
}

/// One catch-up: a fresh, empty slave against the filled master.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUpRun {
    pub slave_flush: String,
    /// Commit-log bytes the slave took in (`ferromqAppendedBytes` of the slave, every shard).
    pub replicated_bytes: u64,
    /// From starting the slave's process to its being ready (`boot success`).
    pub start_s: f64,
    /// From starting the slave's process to every shard's stream connected (first sample).
    pub connected_s: Option<f64>,
    /// From starting the slave's process to the master reporting no lag on any shard.
    pub caught_up_s: Option<f64>,
    /// `replicated_bytes ÷ caught_up_s` (slave start included), MiB/s.
    pub mib_per_s: Option<f64>,
    /// The same from the slave's `boot success` on.
    pub mib_per_s_from_ready: Option<f64>,
    /// `mib_per_s ÷` the loopback sendfile probe's MiB/s.
    pub vs_sendfile: Option<f64>,
    /// The master's and the slave's CPU seconds over the catch-up (master: from the slave's
    /// start; slave: from its `boot success`), and per MiB replicated (ms).
    pub master_cpu_s: Option<f64>,
    pub slave_cpu_s: Option<f64>,
    pub master_ms_per_mib: Option<f64>,
    pub slave_ms_per_mib: Option<f64>,
    /// Busy CPUs of the machine over the catch-up.
    pub machine_busy_cpus: Option<f64>,
    /// The largest lag the master reported during the catch-up (one shard's share).
    pub max_lag_bytes: u64,
}

/// The catch-up measurement.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUpResults {
    /// Commit-log bytes the master held (`ferromqAppendedBytes`, every shard).
    pub master_bytes: u64,
    pub fill_s: f64,
    /// Seconds until the master had flushed and dispatched everything (then `sync`).
    pub settle_s: f64,
    pub runs: Vec<CatchUpRun>,
    /// The loopback sendfile probe of the same bytes (a synced file, sent once).
    pub sendfile: Option<SendfileBandwidth>,
    pub failures: Vec<String>,
}

/// What a replication run measured (`results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationResults {
    pub command: String,
    pub started: String,
    pub finished: String,
    pub settings: serde_json::Value,
    pub disk_used_pct: (Option<f64>, Option<f64>),
    pub load_avg: (Option<[f64; 3]>, Option<[f64; 3]>),
    pub probes: ProbeReport,
    pub runs: Vec<PairRun>,
    pub figures: Vec<FlushFigures>,
    pub catch_up: Option<CatchUpResults>,
    pub log_problems: Vec<LogProblems>,
}

/// What every broker start needs.
struct Ctx<'a> {
    args: &'a ReplicationArgs,
    mqbroker: PathBuf,
    out: PathBuf,
}

/// A master and (once started) its slave, on stores under one scratch folder.
struct Pair {
    master: Server,
    master_addr: SocketAddr,
    ha_port: u16,
    namesrv_port: u16,
    slave: Option<(Server, SocketAddr)>,
    scratch: ScratchDir,
}

impl Ctx<'_> {
    fn common(&self, store: &Path, port: u16, flush: &str) -> Vec<String> {
        let mut args = Vec::new();
        let mut set = |kv: String| {
            args.push("--set".to_owned());
            args.push(kv);
        };
        set(format!("storePathRootDir={}", store.display()));
        set(format!("listenPort={port}"));
        // Java's fast port (listenPort - 2) may be taken here: not needed for measuring.
        set("fastListenPortEnable=false".to_owned());
        set("brokerIP1=127.0.0.1".to_owned());
        set(format!("brokerName={BROKER_NAME}"));
        set(format!("flushDiskType={}", flush_disk_type(flush)));
        set(format!("shards={}", self.args.shards));
        args
    }

    fn user_settings(&self, args: &mut Vec<String>) {
        for kv in &self.args.broker_settings {
            args.push("--set".to_owned());
            args.push(kv.clone());
        }
    }

    /// Starts a master (`role`: async or sync) on a fresh store, with its embedded name server.
    fn start_master(&self, role: &str, tag: &str) -> Result<Pair, String> {
        let scratch = ScratchDir::create(self.args.dir.as_deref(), &format!("repl-{tag}"))?;
        let (port, ha_port, namesrv_port) = (suite::free_port()?, suite::free_port()?, suite::free_port()?);
        let mut args = self.common(&scratch.path().join("master"), port, &self.args.master_flush);
        for kv in [
            format!("brokerRole={}", master_role(role)),
            "brokerId=0".to_owned(),
            format!("haListenPort={ha_port}"),
            format!("embeddedNamesrvPort={namesrv_port}"),
        ] {
            args.push("--set".to_owned());
            args.push(kv);
        }
        self.user_settings(&mut args);
        let log = self.out.join("logs").join(format!("{tag}-master.log"));
        let master = Server::start(&self.mqbroker, &args, &self.args.backend, BROKER_READY, &log)?;
        Ok(Pair { master, master_addr: SocketAddr::from(([127, 0, 0, 1], port)), ha_port, namesrv_port, slave: None, scratch })
    }

    /// Starts a slave (flush `flush`) of `pair`'s master on the fresh store `store_name`.
    fn start_slave(&self, pair: &mut Pair, flush: &str, store_name: &str, tag: &str) -> Result<(), String> {
        let port = suite::free_port()?;
        let mut args = vec!["-n".to_owned(), format!("127.0.0.1:{}", pair.namesrv_port)];
        args.extend(self.common(&pair.scratch.path().join(store_name), port, flush));
        for kv in ["brokerRole=SLAVE".to_owned(), "brokerId=1".to_owned(), format!("haMasterAddress=127.0.0.1:{}", pair.ha_port)] {
            args.push("--set".to_owned());
            args.push(kv);
        }
        self.user_settings(&mut args);
        let log = self.out.join("logs").join(format!("{tag}-slave.log"));
        let slave = Server::start(&self.mqbroker, &args, &self.args.backend, BROKER_READY, &log)?;
        pair.slave = Some((slave, SocketAddr::from(([127, 0, 0, 1], port))));
        Ok(())
    }
}

impl Pair {
    /// Stops the slave (first: it would log the master's going) and the master, then removes
    /// their stores.
    fn stop(mut self) -> Result<(), String> {
        let slave = self.stop_slave();
        let master = self.master.stop();
        drop(self.scratch);
        slave.and(master)
    }

    /// Stops the slave, if any (its store stays until the pair's scratch folder goes).
    fn stop_slave(&mut self) -> Result<(), String> {
        match self.slave.take() {
            Some((slave, _)) => slave.stop(),
            None => Ok(()),
        }
    }
}

/// The master's replication figures now (one GET_BROKER_RUNTIME_INFO).
async fn replication_status(client: &Client) -> Result<ReplicationStatus, String> {
    let table = broker::runtime_table(client).await?;
    ReplicationStatus::from_table(&table).ok_or_else(|| "the broker reports no ferromqReplication* figures".to_owned())
}

/// Waits until the master reports `streams` slave streams and no lag; returns the seconds waited.
fn wait_in_sync(addr: SocketAddr, backend: &str, streams: u64, limit: Duration) -> Result<f64, String> {
    let backend = broker::resolve_backend(backend)?;
    let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = Client::connect(addr, broker::CONNECT_TIMEOUT).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let started = Instant::now();
        loop {
            let status = replication_status(&client).await?;
            if status.streams >= streams && status.lag_bytes == 0 {
                return Ok(started.elapsed().as_secs_f64());
            }
            if started.elapsed() >= limit {
                return Err(format!("not in sync after {limit:?}: {status:?}"));
            }
            compio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Samples the master's replication figures on a thread of its own until finished.
struct LagSampler {
    stop: Arc<AtomicBool>,
    started: Instant,
    thread: std::thread::JoinHandle<Result<Vec<LagSample>, String>>,
}

impl LagSampler {
    fn start(addr: SocketAddr, backend: &str, interval: Duration) -> Result<LagSampler, String> {
        let backend = broker::resolve_backend(backend)?;
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let client = Client::connect(addr, broker::CONNECT_TIMEOUT).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
                let mut samples = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    let status = replication_status(&client).await?;
                    samples.push(LagSample { at_s: started.elapsed().as_secs_f64(), status });
                    compio::time::sleep(interval).await;
                }
                Ok(samples)
            })
        });
        Ok(LagSampler { stop, started, thread })
    }

    fn finish(self) -> Result<Vec<LagSample>, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| "lag sampler panicked".to_string())?
    }
}

/// The broker's commit-log counters now (`None` from a broker without them).
fn counters(addr: SocketAddr, backend: &str) -> Result<Option<broker::FlushCounters>, String> {
    let backend = broker::resolve_backend(backend)?;
    let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = Client::connect(addr, broker::CONNECT_TIMEOUT).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        broker::flush_counters(&client).await
    })
}

/// What one point sends.
struct PointSpec {
    /// `load`, `steady` or `single`.
    kind: &'static str,
    connections: usize,
    in_flight: usize,
    /// Open loop at this many messages/s; closed loop without.
    rate: Option<f64>,
    duration_secs: f64,
}

/// Runs one produce point against `pair`, sampling the lag; `raw` names its JSON summary.
fn pair_point(ctx: &Ctx, pair: &Pair, spec: &PointSpec, raw: &str) -> Result<PairPoint, String> {
    let args = ctx.args;
    let PointSpec { kind, connections, in_flight, rate, duration_secs } = *spec;
    let slave_pid = pair.slave.as_ref().map(|(s, _)| s.pid());
    let producer = ProducerArgs {
        broker: pair.master_addr,
        connections,
        in_flight,
        threads: 1,
        message_bytes: args.message_bytes,
        topic: TOPIC.into(),
        queues: args.queues,
        topics: 1,
        no_create_topic: false,
        send_mode: "sync".into(),
        batch: 1,
        open_loop: rate.is_some(),
        rate,
        affinity: "any".into(),
        pid: Some(pair.master.pid()),
        producer_group: "ferromq-bench-replication".into(),
        io_backend: args.backend.clone(),
        access_key: None,
        secret_key: None,
        tls: false,
    };
    // What an earlier point left for the slave to copy is not this point's lag.
    let drain_s = wait_in_sync(pair.master_addr, &args.backend, u64::from(args.shards), IN_SYNC_TIMEOUT)?;
    let slave_addr = pair.slave.as_ref().map(|(_, a)| *a);
    let slave_counters = |addr: Option<SocketAddr>| addr.map(|a| counters(a, &args.backend)).transpose().map(Option::flatten);
    let before = counters(pair.master_addr, &args.backend)?;
    let slave_before = slave_counters(slave_addr)?;
    let window = Instant::now();
    let sampler = LagSampler::start(pair.master_addr, &args.backend, Duration::from_millis(args.lag_sample_ms.max(1)))?;
    let json = Some(ctx.out.join("raw").join(format!("{raw}.json")));
    let produced = produce::run_produce(&ProduceArgs { producer, duration_secs, count: None, warmup_ms: args.warmup_ms, json, slave_pid });
    let to_s = sampler.started.elapsed().as_secs_f64();
    let samples = sampler.finish();
    let summary = produced?;
    let samples = samples?;
    let after = counters(pair.master_addr, &args.backend)?;
    let slave_after = slave_counters(slave_addr)?;
    let log_window_s = window.elapsed().as_secs_f64();
    // From the end of the warm-up (the producers' connecting and the topic's creation come
    // first, so a few warm-up samples may be in) to the end of the point.
    let (lag_bytes, lag_ms) = lag_in_window(&samples, args.warmup_ms as f64 / 1e3, to_s);
    let codes = summary.get("codes").cloned().unwrap_or(serde_json::Value::Null);
    let percentile = |key: &str| summary.get("latency_us").and_then(|l| l.get(key)).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let cpu = |key: &str| summary.get(key).and_then(|v| serde_json::from_value::<CpuReport>(v.clone()).ok());
    Ok(PairPoint {
        kind: kind.into(),
        connections,
        in_flight,
        rate,
        messages_per_s: summary.get("messages_per_s").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
        p50_us: percentile("p50"),
        p99_us: percentile("p99"),
        errors: suite::error_count(&codes),
        codes,
        master_cpu: cpu("cpu"),
        slave_cpu: cpu("cpu_slave"),
        stored_bytes_per_message: before.zip(after).map(|(b, a)| a.since(&b).mean_stored_bytes_per_message()).filter(|v| *v > 0.0),
        drain_s,
        master_log: before.zip(after).map(|(b, a)| a.since(&b)),
        slave_log: slave_before.zip(slave_after).map(|(b, a)| a.since(&b)),
        log_window_s,
        lag_bytes,
        lag_ms,
    })
}

/// One fresh pair: master `role`, slave flush `slave_flush`; every point of it.
fn run_pair(ctx: &Ctx, role: &str, slave_flush: &str, round: usize) -> Result<PairRun, String> {
    let args = ctx.args;
    let tag = format!("r{}-{}-master-{}-slave", round + 1, role, slave_flush);
    eprintln!("[replication] round {} {} / slave {}", round + 1, master_role(role), flush_disk_type(slave_flush));
    let mut pair = ctx.start_master(role, &tag)?;
    let mut run = PairRun { role: role.into(), slave_flush: slave_flush.into(), round, load: None, steady: None, single: None, in_sync_s: None, failures: Vec::new() };
    let measured = (|| -> Result<(), String> {
        let slave_started = Instant::now();
        ctx.start_slave(&mut pair, slave_flush, "slave", &tag)?;
        wait_in_sync(pair.master_addr, &args.backend, u64::from(args.shards), IN_SYNC_TIMEOUT)?;
        run.in_sync_s = Some(slave_started.elapsed().as_secs_f64());
        let spec = |kind, connections, in_flight, rate, duration_secs| PointSpec { kind, connections, in_flight, rate, duration_secs };
        let load = pair_point(ctx, &pair, &spec("load", args.connections, args.in_flight, None, args.duration_secs), &format!("{tag}-load"))?;
        let steady_rate = load.messages_per_s * args.steady_fraction;
        run.load = Some(load);
        if role == "async" && steady_rate >= 1.0 {
            match pair_point(ctx, &pair, &spec("steady", args.connections, args.in_flight, Some(steady_rate.round()), args.duration_secs), &format!("{tag}-steady")) {
                Ok(p) => run.steady = Some(p),
                Err(e) => run.failures.push(format!("{}: steady point: {e}", run.name())),
            }
        }
        match pair_point(ctx, &pair, &spec("single", 1, 1, None, args.single_duration_secs), &format!("{tag}-single")) {
            Ok(p) => run.single = Some(p),
            Err(e) => run.failures.push(format!("{}: single point: {e}", run.name())),
        }
        Ok(())
    })();
    let stopped = pair.stop();
    if let Err(e) = measured {
        run.failures.push(format!("{}: {e}", run.name()));
    }
    if let Err(e) = stopped {
        run.failures.push(format!("{}: stopping: {e}", run.name()));
    }
    Ok(run)
}

/// Fills an ASYNC_MASTER to `--catch-up-mib`, then times an empty slave of each flush mode
/// catching up with it; the sendfile probe of the same bytes last.
fn run_catch_up(ctx: &Ctx) -> Result<CatchUpResults, String> {
    let args = ctx.args;
    let target = args.catch_up_mib * MIB;
    let mut pair = ctx.start_master("async", "catch-up")?;
    let mut results = CatchUpResults { master_bytes: 0, fill_s: 0.0, settle_s: 0.0, runs: Vec::new(), sendfile: None, failures: Vec::new() };
    let measured = (|| -> Result<(), String> {
        let fill = Instant::now();
        eprintln!("[replication] catch-up: filling the master to {} MiB", args.catch_up_mib);
        loop {
            let held = counters(pair.master_addr, &args.backend)?.map_or(0, |c| c.appended_bytes);
            results.master_bytes = held;
            if held >= target {
                break;
            }
            // Slightly more than the body per message is stored (header, properties).
            let count = (target - held).div_ceil(args.message_bytes as u64 + 128).max(16);
            let producer = ProducerArgs {
                broker: pair.master_addr,
                connections: args.connections,
                in_flight: 16,
                threads: 1,
                message_bytes: args.message_bytes,
                topic: CATCH_UP_TOPIC.into(),
                queues: args.queues,
                topics: 1,
                no_create_topic: false,
                send_mode: "sync".into(),
                batch: 16,
                open_loop: false,
                rate: None,
                affinity: "any".into(),
                pid: None,
                producer_group: "ferromq-bench-replication".into(),
                io_backend: args.backend.clone(),
                access_key: None,
                secret_key: None,
                tls: false,
            };
            produce::run_produce(&ProduceArgs { producer, duration_secs: 0.0, count: Some(count), warmup_ms: 0, json: None, slave_pid: None })?;
        }
        results.fill_s = fill.elapsed().as_secs_f64();
        // What the slave reads should be on disk and cached, as an older log is; no writeback
        // of the fill should run under the catch-up.
        let settle = Instant::now();
        broker::wait_settled(pair.master_addr, &args.backend, SETTLE_TIMEOUT)?;
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        results.settle_s = settle.elapsed().as_secs_f64();
        for (i, flush) in args.catch_up_slave_flush.iter().enumerate() {
            match catch_up_once(ctx, &mut pair, flush, i) {
                Ok(run) => results.runs.push(run),
                Err(e) => results.failures.push(format!("catch-up, slave {}: {e}", flush_disk_type(flush))),
            }
        }
        Ok(())
    })();
    let stopped = pair.stop();
    if let Err(e) = measured {
        results.failures.push(format!("catch-up: {e}"));
    }
    if let Err(e) = stopped {
        results.failures.push(format!("catch-up: stopping: {e}"));
    }
    // The probe with the brokers gone and their stores removed, on the same file system.
    let bytes = results.runs.iter().map(|r| r.replicated_bytes).max().unwrap_or(results.master_bytes);
    if bytes > 0 {
        eprintln!("[replication] loopback sendfile of {} MiB", bytes.div_ceil(MIB));
        let probed = ScratchDir::create(args.dir.as_deref(), "repl-sendfile").and_then(|dir| probe::loopback_sendfile_with(dir.path(), bytes.div_ceil(MIB), true));
        match probed {
            Ok(s) => {
                for run in &mut results.runs {
                    run.vs_sendfile = run.mib_per_s.and_then(|m| ratio(m, s.mib_per_s));
                }
                results.sendfile = Some(s);
            }
            Err(e) => results.failures.push(format!("loopback sendfile probe: {e}")),
        }
    }
    Ok(results)
}

/// One empty slave (flush `flush`) started against the filled master and timed to no lag.
fn catch_up_once(ctx: &Ctx, pair: &mut Pair, flush: &str, i: usize) -> Result<CatchUpRun, String> {
    let args = ctx.args;
    eprintln!("[replication] catch-up: empty slave, {}", flush_disk_type(flush));
    let backend = broker::resolve_backend(&args.backend)?;
    let master_cpu = CpuWindow::start(Some(pair.master.pid()));
    let spawned = Instant::now();
    ctx.start_slave(pair, flush, &format!("catch-up-slave-{i}"), &format!("catch-up-{flush}"))?;
    let start_s = spawned.elapsed().as_secs_f64();
    let (slave_pid, slave_addr) = pair.slave.as_ref().map(|(s, a)| (s.pid(), *a)).ok_or("no slave")?;
    let slave_cpu = CpuWindow::start(Some(slave_pid));
    let shards = u64::from(args.shards);
    let limit = Duration::from_secs(args.catch_up_timeout_secs.max(1));
    let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
    let master_addr = pair.master_addr;
    let polled = runtime.block_on(async {
        let client = Client::connect(master_addr, broker::CONNECT_TIMEOUT).await.map_err(|e| format!("cannot connect to {master_addr}: {e}"))?;
        let (mut connected_s, mut max_lag) = (None, 0u64);
        loop {
            let status = replication_status(&client).await?;
            let at = spawned.elapsed();
            max_lag = max_lag.max(status.lag_bytes);
            if status.streams >= shards {
                connected_s.get_or_insert(at.as_secs_f64());
                if status.lag_bytes == 0 {
                    return Ok::<_, String>((connected_s, at.as_secs_f64(), max_lag));
                }
            }
            if at >= limit {
                return Err(format!("not caught up after {limit:?}: {status:?}"));
            }
            compio::time::sleep(CATCH_UP_POLL).await;
        }
    });
    let (master_cpu, slave_cpu) = (master_cpu.finish(0), slave_cpu.finish(0));
    let replicated = counters(slave_addr, &args.backend).map(|c| c.map_or(0, |c| c.appended_bytes));
    let removed = pair.stop_slave().and_then(|()| {
        let store = pair.scratch.path().join(format!("catch-up-slave-{i}"));
        std::fs::remove_dir_all(&store).map_err(|e| format!("cannot remove {}: {e}", store.display()))
    });
    let (connected_s, caught_up_s, max_lag_bytes) = polled?;
    let replicated_bytes = replicated?;
    removed?;
    let mib = replicated_bytes as f64 / MIB as f64;
    let per_mib = |cpu: Option<f64>| cpu.and_then(|s| ratio(s * 1e3, mib));
    let run = CatchUpRun {
        slave_flush: flush.into(),
        replicated_bytes,
        start_s,
        connected_s,
        caught_up_s: Some(caught_up_s),
        mib_per_s: ratio(mib, caught_up_s),
        mib_per_s_from_ready: ratio(mib, caught_up_s - start_s),
        vs_sendfile: None,
        master_cpu_s: master_cpu.broker_cpu_s,
        slave_cpu_s: slave_cpu.broker_cpu_s,
        master_ms_per_mib: per_mib(master_cpu.broker_cpu_s),
        slave_ms_per_mib: per_mib(slave_cpu.broker_cpu_s),
        machine_busy_cpus: master_cpu.machine_busy_cpus,
        max_lag_bytes,
    };
    eprintln!(
        "[replication] catch-up, slave {}: {:.0} MiB in {:.2} s ({:.0} MiB/s; slave ready after {:.2} s)",
        flush_disk_type(flush),
        mib,
        caught_up_s,
        run.mib_per_s.unwrap_or(0.0),
        start_s
    );
    Ok(run)
}

/// Runs the replication measurements and writes the report; returns the results folder.
pub fn run(args: ReplicationArgs) -> Result<PathBuf, String> {
    let started_at = Instant::now();
    let started = suite::utc_timestamp(SystemTime::now());
    let out = suite::results_folder(args.out.as_deref(), "replication", &started)?;
    let bin_dir = suite::bin_dir(args.bin_dir.as_deref())?;
    let mqbroker = bin_dir.join("mqbroker");
    if !mqbroker.exists() {
        return Err(format!("{} not found: build it first (cargo build --release -p ferromq-core) or pass --bin-dir", mqbroker.display()));
    }
    if args.shards == 0 || args.connections == 0 || args.in_flight == 0 {
        return Err("--shards, --connections and --in-flight need positive values".into());
    }
    eprintln!("[replication] results folder {}", out.display());
    let store_base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let disk_at_start = suite::disk_used_pct(&store_base);
    let load_at_start = suite::load_avg();
    eprintln!("[replication] probes");
    let sizes = if args.tiny { ProbeSizes::tiny() } else { ProbeSizes::quick() };
    let probes = probe::run_probes(args.dir.as_deref(), &sizes)?;
    probe::print_report(&probes, args.message_bytes);

    let ctx = Ctx { args: &args, mqbroker, out: out.clone() };
    let mut runs = Vec::new();
    for round in 0..args.rounds {
        // Both orders alternate, so that neither role nor flush mode always comes first.
        let mut flushes = args.slave_flush.clone();
        let mut roles = vec!["async", "sync"];
        if round % 2 == 1 {
            flushes.reverse();
            roles.reverse();
        }
        for flush in &flushes {
            for role in &roles {
                runs.push(run_pair(&ctx, role, flush, round)?);
            }
        }
    }
    let catch_up = if args.catch_up_mib > 0 && !args.catch_up_slave_flush.is_empty() { Some(run_catch_up(&ctx)?) } else { None };
    let figures = pair_figures(&runs);
    let settings = serde_json::json!({
        "slave_flush": args.slave_flush, "master_flush": flush_disk_type(&args.master_flush), "backend": args.backend,
        "shards": args.shards, "connections": args.connections, "in_flight": args.in_flight,
        "message_bytes": args.message_bytes, "queues": args.queues, "duration_secs": args.duration_secs,
        "single_duration_secs": args.single_duration_secs, "warmup_ms": args.warmup_ms, "rounds": args.rounds,
        "steady_fraction": args.steady_fraction, "lag_sample_ms": args.lag_sample_ms,
        "catch_up_mib": args.catch_up_mib, "catch_up_slave_flush": args.catch_up_slave_flush,
        "broker_settings": args.broker_settings, "tiny": args.tiny, "bin_dir": bin_dir,
        "cpu_source": "each broker: its process CPU clock (clock_getcpuclockid), all threads incl. exited; generator: CLOCK_PROCESS_CPUTIME_ID",
        "elapsed_s": started_at.elapsed().as_secs_f64(),
    });
    let results = ReplicationResults {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started,
        finished: suite::utc_timestamp(SystemTime::now()),
        settings,
        disk_used_pct: (disk_at_start, suite::disk_used_pct(&store_base)),
        load_avg: (load_at_start, suite::load_avg()),
        probes,
        runs,
        figures,
        catch_up,
        log_problems: suite::scan_logs(&out.join("logs")),
    };
    let json = serde_json::to_value(&results).map_err(|e| e.to_string())?;
    probe::write_json(&out.join("results.json"), &json)?;
    let report = markdown(&results);
    std::fs::write(out.join("report.md"), &report).map_err(|e| format!("cannot write {}: {e}", out.join("report.md").display()))?;
    eprintln!("[replication] done in {:.0} s", started_at.elapsed().as_secs_f64());
    println!("{report}");
    println!("{}", out.join("report.md").display());
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Report

fn verdict(value: Option<f64>, at_least: f64) -> &'static str {
    match value {
        Some(v) if v >= at_least => "met",
        Some(_) => "**missed**",
        None => "not measured",
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// The figures of every run of `slave_flush`, `role`, point `kind`.
fn points<'a>(runs: &'a [PairRun], slave_flush: &'a str, role: &'a str, kind: &'a str) -> impl Iterator<Item = &'a PairPoint> + 'a {
    runs.iter().filter(move |r| r.slave_flush == slave_flush && r.role == role).filter_map(move |r| match kind {
        "load" => r.load.as_ref(),
        "steady" => r.steady.as_ref(),
        _ => r.single.as_ref(),
    })
}

/// `report.md`.
pub fn markdown(r: &ReplicationResults) -> String {
    let mut md = String::new();
    let mut line = |s: String| {
        md.push_str(&s);
        md.push('\n');
    };
    let s = &r.settings;
    let setting = |k: &str| s.get(k).map(|v| v.to_string().trim_matches('"').to_owned()).unwrap_or_default();
    line("# FerroMQ replication benchmark (issue 9; recorded, not asserted)".into());
    line(String::new());
    line(format!("```\n{}\n```", r.command));
    line(String::new());
    line(format!(
        "{} → {}; master {}, {} shards each, backend {}, {} B messages, load point {} × {}, {} s per point ({} s single), warm-up {} ms, {} round(s); disk used {} → {} %; load average {} → {}.",
        r.started,
        r.finished,
        setting("master_flush"),
        setting("shards"),
        setting("backend"),
        setting("message_bytes"),
        setting("connections"),
        setting("in_flight"),
        setting("duration_secs"),
        setting("single_duration_secs"),
        setting("warmup_ms"),
        setting("rounds"),
        opt(r.disk_used_pct.0, 1),
        opt(r.disk_used_pct.1, 1),
        r.load_avg.0.map_or("—".into(), |l| format!("{:.2}", l[0])),
        r.load_avg.1.map_or("—".into(), |l| format!("{:.2}", l[0])),
    ));
    line(String::new());
    for l in probe::markdown_section(&r.probes, setting("message_bytes").parse().unwrap_or(1024)) {
        line(l);
    }

    line(format!("## SYNC_MASTER ÷ ASYNC_MASTER throughput at the load point (target ≥ {TARGET_SYNC_VS_ASYNC_MASTER})"));
    line(String::new());
    line("Paired per round (each SYNC_MASTER pair against the ASYNC_MASTER pair next to it in time); median (range) over rounds.".into());
    line(String::new());
    line("| slave flush | ASYNC_MASTER msg/s | SYNC_MASTER msg/s | SYNC ÷ ASYNC | per round | verdict |".into());
    line("|---|---|---|---|---|---|".into());
    for f in &r.figures {
        let median = Spread::of(f.sync_vs_async.clone()).map(|s| s.median);
        line(format!(
            "| {} | {} | {} | {} | {} | {} |",
            flush_disk_type(&f.slave_flush),
            spread(&f.async_rate, 0),
            spread(&f.sync_rate, 0),
            spread(&f.sync_vs_async, 2),
            f.sync_vs_async.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(", "),
            verdict(median, TARGET_SYNC_VS_ASYNC_MASTER)
        ));
    }
    line(String::new());

    line("## Broker CPU per acknowledged message (master, slave, both)".into());
    line(String::new());
    line("Each broker's process CPU clock over the measured window ÷ acknowledged messages; median (range) over rounds. CPUs: average busy CPUs of each process and of the rest of the machine (others) over the window.".into());
    line(String::new());
    line("| slave flush | master role | point | msg/s | master µs | slave µs | master + slave µs | master CPUs | slave CPUs | generator CPUs | others' CPUs |".into());
    line("|---|---|---|---|---|---|---|---|---|---|---|".into());
    for f in &r.figures {
        for kind in ["load", "steady", "single"] {
            for role in ["async", "sync"] {
                let ps: Vec<&PairPoint> = points(&r.runs, &f.slave_flush, role, kind).collect();
                if ps.is_empty() {
                    continue;
                }
                let col = |g: &dyn Fn(&PairPoint) -> Option<f64>, d: usize| spread(&ps.iter().filter_map(|p| g(p)).collect::<Vec<_>>(), d);
                let shape = match ps[0].rate {
                    Some(rate) => format!("steady {rate:.0} msg/s (≤ {} × {})", ps[0].connections, ps[0].in_flight),
                    None => format!("{} × {}", ps[0].connections, ps[0].in_flight),
                };
                line(format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    flush_disk_type(&f.slave_flush),
                    master_role(role),
                    shape,
                    col(&|p| Some(p.messages_per_s), 0),
                    col(&|p| p.master_us(), 2),
                    col(&|p| p.slave_us(), 2),
                    col(&|p| p.total_us(), 2),
                    col(&|p| p.master_cpu.as_ref()?.broker_cpus(), 2),
                    col(&|p| p.slave_cpu.as_ref()?.broker_cpus(), 2),
                    col(&|p| Some(p.master_cpu.as_ref()?.generator_cpus()), 2),
                    col(&|p| Some((p.master_cpu.as_ref()?.other_cpus()? - p.slave_cpu.as_ref()?.broker_cpus()?).max(0.0)), 2),
                ));
            }
        }
    }
    line(String::new());

    line("## Commit-log writes and fdatasyncs of both brokers".into());
    line(String::new());
    line("From each broker's `ferromq*` counters over warm-up + point (first round): commit-log writes and fdatasyncs per second, KiB made durable per fdatasync; for the slave, MiB/s it took in. With the slave under SYNC_FLUSH a SYNC_MASTER send waits for one of its fdatasyncs.".into());
    line(String::new());
    line("| slave flush | master role | point | msg/s | master writes/s | master syncs/s | master KiB/sync | slave MiB/s | slave writes/s | slave syncs/s | slave KiB/sync | drained before (s) |".into());
    line("|---|---|---|---|---|---|---|---|---|---|---|---|".into());
    for f in &r.figures {
        for kind in ["load", "steady", "single"] {
            for role in ["async", "sync"] {
                let Some(p) = points(&r.runs, &f.slave_flush, role, kind).next() else { continue };
                let per_s = |c: &Option<broker::FlushCounters>, g: &dyn Fn(&broker::FlushCounters) -> f64| c.as_ref().and_then(|c| ratio(g(c), p.log_window_s));
                let kib_per_sync = |c: &Option<broker::FlushCounters>| c.as_ref().and_then(|c| ratio(c.synced_bytes as f64 / 1024.0, c.log_syncs as f64));
                let shape = match p.rate {
                    Some(rate) => format!("steady {rate:.0} msg/s"),
                    None => format!("{} × {}", p.connections, p.in_flight),
                };
                line(format!(
                    "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.2} |",
                    flush_disk_type(&f.slave_flush),
                    master_role(role),
                    shape,
                    p.messages_per_s,
                    opt(per_s(&p.master_log, &|c| c.log_writes as f64).filter(|w| *w > 0.0), 0),
                    opt(per_s(&p.master_log, &|c| c.log_syncs as f64), 0),
                    opt(kib_per_sync(&p.master_log), 0),
                    opt(per_s(&p.slave_log, &|c| c.appended_bytes as f64 / MIB as f64), 1),
                    opt(per_s(&p.slave_log, &|c| c.log_writes as f64).filter(|w| *w > 0.0), 0),
                    opt(per_s(&p.slave_log, &|c| c.log_syncs as f64), 0),
                    opt(kib_per_sync(&p.slave_log), 0),
                    p.drain_s
                ));
            }
        }
    }
    line(String::new());

    line("## Latency added by SYNC_MASTER".into());
    line(String::new());
    line("Send latency (µs, from queueing the send to its answer) of each role, first round's percentiles shown per round; added = SYNC_MASTER − ASYNC_MASTER of the same round, median (range) over rounds.".into());
    line(String::new());
    line("| slave flush | point | ASYNC_MASTER p50 / p99 | SYNC_MASTER p50 / p99 | added p50 | added p99 |".into());
    line("|---|---|---|---|---|---|".into());
    for f in &r.figures {
        for (kind, label, add50, add99) in [
            ("single", "1 × 1", &f.added_p50_single_us, &f.added_p99_single_us),
            ("load", "load", &f.added_p50_load_us, &f.added_p99_load_us),
        ] {
            let pcts = |role: &str| {
                points(&r.runs, &f.slave_flush, role, kind).map(|p| format!("{:.0} / {:.0}", p.p50_us, p.p99_us)).collect::<Vec<_>>().join("; ")
            };
            line(format!("| {} | {} | {} | {} | {} | {} |", flush_disk_type(&f.slave_flush), label, pcts("async"), pcts("sync"), spread(add50, 0), spread(add99, 0)));
        }
    }
    line(String::new());

    line("## Slave lag (the master's ferromqReplicationLagBytes / LagMs, sampled)".into());
    line(String::new());
    line(format!(
        "Sampled every {} ms on the master from the end of the warm-up to the end of the point. \"p99 as time\": p99 bytes ÷ (msg/s × stored bytes per message).",
        setting("lag_sample_ms")
    ));
    line(String::new());
    line("| slave flush | master role | point | round | msg/s | samples | lag bytes p50 / p99 / max | lag ms p50 / p99 / max | p99 as time |".into());
    line("|---|---|---|---|---|---|---|---|---|".into());
    for f in &r.figures {
        for role in ["async", "sync"] {
            for kind in ["load", "steady", "single"] {
                for run in r.runs.iter().filter(|x| x.slave_flush == f.slave_flush && x.role == role) {
                    let p = match kind {
                        "load" => run.load.as_ref(),
                        "steady" => run.steady.as_ref(),
                        _ => run.single.as_ref(),
                    };
                    let Some(p) = p else { continue };
                    let q = |q: Option<Quantiles>| q.map_or("—".to_owned(), |q| format!("{} / {} / {}", q.p50, q.p99, q.max));
                    let shape = match p.rate {
                        Some(rate) => format!("steady {rate:.0} msg/s"),
                        None => format!("{} × {}", p.connections, p.in_flight),
                    };
                    line(format!(
                        "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} ms |",
                        flush_disk_type(&f.slave_flush),
                        master_role(role),
                        shape,
                        run.round + 1,
                        p.messages_per_s,
                        p.lag_bytes.map_or(0, |q| q.count),
                        q(p.lag_bytes),
                        q(p.lag_ms),
                        opt(p.lag_p99_as_ms(), 2)
                    ));
                }
            }
        }
    }
    line(String::new());

    if let Some(c) = &r.catch_up {
        line(format!("## Catch-up of an empty slave (target ≥ {TARGET_CATCH_UP_VS_SENDFILE} × loopback sendfile)"));
        line(String::new());
        line(format!(
            "An ASYNC_MASTER ({}) filled alone with {} of commit log in {:.1} s (batches of 16), flushed and dispatched ({:.1} s, then `sync`); then for each slave flush mode an empty slave started against it, timed from starting its process to the master reporting every stream connected and no lag (polled every {} ms). Loopback sendfile of the same bytes (a synced file, one stream): {}.",
            setting("master_flush"),
            mib(c.master_bytes),
            c.fill_s,
            c.settle_s,
            CATCH_UP_POLL.as_millis(),
            c.sendfile.as_ref().map_or("not measured".to_owned(), |s| format!("{} in {:.2} s = {:.0} MiB/s", mib(s.bytes), s.duration_s, s.mib_per_s))
        ));
        line(String::new());
        line("| slave flush | replicated | slave ready | all streams | caught up | MiB/s (from start) | MiB/s (from ready) | ÷ sendfile | verdict | master CPU | slave CPU | machine busy CPUs |".into());
        line("|---|---|---|---|---|---|---|---|---|---|---|---|".into());
        for run in &c.runs {
            line(format!(
                "| {} | {} | {:.2} s | {} s | {} s | {} | {} | {} | {} | {} s ({} ms/MiB) | {} s ({} ms/MiB) | {} |",
                flush_disk_type(&run.slave_flush),
                mib(run.replicated_bytes),
                run.start_s,
                opt(run.connected_s, 2),
                opt(run.caught_up_s, 2),
                opt(run.mib_per_s, 0),
                opt(run.mib_per_s_from_ready, 0),
                opt(run.vs_sendfile, 2),
                verdict(run.vs_sendfile, TARGET_CATCH_UP_VS_SENDFILE),
                opt(run.master_cpu_s, 2),
                opt(run.master_ms_per_mib, 2),
                opt(run.slave_cpu_s, 2),
                opt(run.slave_ms_per_mib, 2),
                opt(run.machine_busy_cpus, 2),
            ));
        }
        line(String::new());
        for failure in &c.failures {
            line(format!("- catch-up failure: {failure}"));
        }
    }

    line("## Every pair".into());
    line(String::new());
    line("| round | pair | in sync after | load msg/s (errors) | steady msg/s | single msg/s (errors) | failures |".into());
    line("|---|---|---|---|---|---|---|".into());
    for run in &r.runs {
        let p = |p: &Option<PairPoint>| p.as_ref().map_or("—".to_owned(), |p| format!("{:.0} ({})", p.messages_per_s, p.errors));
        line(format!(
            "| {} | {} | {} s | {} | {} | {} | {} |",
            run.round + 1,
            run.name(),
            opt(run.in_sync_s, 2),
            p(&run.load),
            p(&run.steady),
            p(&run.single),
            if run.failures.is_empty() { "—".to_owned() } else { run.failures.join("; ") }
        ));
    }
    line(String::new());
    for l in suite::log_problems_markdown("ERROR and WARN lines in the brokers' logs", &r.log_problems) {
        line(l);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let q = Quantiles::of(1..=100).unwrap();
        assert_eq!((q.count, q.p50, q.p99, q.max), (100, 50, 99, 100));
        // Order does not matter; with 10 samples p99 is the largest.
        let q = Quantiles::of([7, 3, 9, 1, 5, 2, 8, 4, 6, 10]).unwrap();
        assert_eq!((q.p50, q.p99, q.max), (5, 10, 10));
        assert_eq!(Quantiles::of([42]).unwrap(), Quantiles { count: 1, p50: 42, p99: 42, max: 42 });
        assert!(Quantiles::of(std::iter::empty()).is_none());
    }

    fn sample(at_s: f64, lag_bytes: u64, lag_ms: u64) -> LagSample {
        LagSample { at_s, status: ReplicationStatus { streams: 2, lag_bytes, lag_ms } }
    }

    #[test]
    fn lag_window_keeps_only_samples_inside_it() {
        let samples = [sample(0.1, 1_000_000, 900), sample(1.0, 10, 1), sample(1.5, 30, 2), sample(2.0, 20, 3), sample(2.6, 0, 0)];
        let (bytes, ms) = lag_in_window(&samples, 1.0, 2.5);
        assert_eq!(bytes.unwrap(), Quantiles { count: 3, p50: 20, p99: 30, max: 30 });
        assert_eq!(ms.unwrap().max, 3);
        assert_eq!(lag_in_window(&samples, 3.0, 4.0), (None, None));
    }

    #[test]
    fn ratios_need_a_positive_finite_denominator() {
        assert_eq!(ratio(8.0, 10.0), Some(0.8));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(ratio(1.0, f64::INFINITY), None);
    }

    fn point(kind: &str, rate: f64, p50: f64, p99: f64) -> PairPoint {
        PairPoint {
            kind: kind.into(),
            connections: 4,
            in_flight: 64,
            rate: None,
            messages_per_s: rate,
            p50_us: p50,
            p99_us: p99,
            errors: 0,
            codes: serde_json::Value::Null,
            master_cpu: None,
            slave_cpu: None,
            stored_bytes_per_message: Some(1200.0),
            drain_s: 0.0,
            master_log: None,
            slave_log: None,
            log_window_s: 0.0,
            lag_bytes: Quantiles::of([0, 12_000, 120_000]),
            lag_ms: None,
        }
    }

    fn pair(role: &str, flush: &str, round: usize, load: f64, single_p50: f64) -> PairRun {
        PairRun {
            role: role.into(),
            slave_flush: flush.into(),
            round,
            load: Some(point("load", load, 4000.0, 9000.0)),
            steady: None,
            single: Some(point("single", 2000.0, single_p50, single_p50 * 2.0)),
            in_sync_s: Some(0.5),
            failures: Vec::new(),
        }
    }

    #[test]
    fn figures_pair_each_round_by_flush_mode() {
        let runs = vec![
            pair("async", "sync", 0, 40_000.0, 300.0),
            pair("sync", "sync", 0, 30_000.0, 700.0),
            pair("async", "async", 0, 50_000.0, 300.0),
            pair("sync", "async", 0, 45_000.0, 400.0),
            // Round 2 in the other order; the async slave's SYNC_MASTER run is missing.
            pair("async", "async", 1, 48_000.0, 310.0),
            pair("sync", "sync", 1, 38_000.0, 650.0),
            pair("async", "sync", 1, 40_000.0, 310.0),
        ];
        let figures = pair_figures(&runs);
        assert_eq!(figures.iter().map(|f| f.slave_flush.as_str()).collect::<Vec<_>>(), ["sync", "async"]);
        let sync_slave = &figures[0];
        assert_eq!(sync_slave.rounds, [0, 1]);
        assert_eq!(sync_slave.sync_vs_async, [0.75, 0.95]);
        assert_eq!(sync_slave.added_p50_single_us, [400.0, 340.0]);
        assert_eq!(sync_slave.added_p99_single_us, [800.0, 680.0]);
        assert_eq!(sync_slave.added_p50_load_us, [0.0, 0.0]);
        let async_slave = &figures[1];
        assert_eq!(async_slave.rounds, [0]);
        assert_eq!(async_slave.sync_vs_async, [0.9]);
        // The point's p99 lag as time: 120,000 B ÷ (40,000 msg/s × 1,200 B) = 2.5 ms.
        assert_eq!(runs[0].load.as_ref().unwrap().lag_p99_as_ms(), Some(2.5));
        // And the report shows them.
        let md = markdown(&ReplicationResults {
            command: "ferromq-bench replication".into(),
            started: "s".into(),
            finished: "f".into(),
            settings: serde_json::json!({"master_flush": "ASYNC_FLUSH", "message_bytes": 1024, "lag_sample_ms": 50}),
            disk_used_pct: (None, None),
            load_avg: (None, None),
            probes: crate::probe::run_probes(None, &ProbeSizes::tiny()).unwrap(),
            runs,
            figures,
            catch_up: None,
            log_problems: Vec::new(),
        });
        assert!(md.contains("| SYNC_FLUSH | 40000 | 34000 (30000–38000) | 0.85 (0.75–0.95) | 0.75, 0.95 | met |"), "{md}");
        assert!(md.contains("| ASYNC_FLUSH | 1 × 1 | 300 / 600; 310 / 620 | 400 / 800 | 100 | 200 |"), "{md}");
    }
}
