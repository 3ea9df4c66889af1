//! `ferromq-bench`: FerroMQ's load generator. It speaks the plain RocketMQ remoting protocol, so
//! it can be pointed at any RocketMQ-compatible name server or broker for comparison.
//!
//! Modes so far:
//! - `route`: GET_ROUTEINFO_BY_TOPIC load against a name server, closed loop, N connections.
//! - `probe`: the machine's physical limits (fdatasync latency, sequential write bandwidth,
//!   fdatasync-bound append rate, loopback RTT and sendfile bandwidth).
//! - `store`: `ferromq-store` driven directly with N concurrent writers under SYNC_FLUSH and
//!   ASYNC_FLUSH, reported as ratios to the probes measured in the same run.
//! - `produce`, `consume`, `e2e`: a broker under load (any RocketMQ-compatible address).
//! - `rss`: a broker's resident memory per idle connection.
//! - `suite`: the benchmark suite: starts name server + broker per profile (SYNC/ASYNC flush ×
//!   io_uring/epoll), runs the matrix, writes a Markdown report with SVG plots.
//! - `replication`: master and slave brokers started here; SYNC_MASTER ÷ ASYNC_MASTER, both
//!   brokers' CPU per message, added latency, slave lag, catch-up ÷ loopback sendfile.
//! - `semantics`: a broker started here; retry / dead-letter send-backs/s, transaction commits/s,
//!   SQL92 vs tag filter cost per examined record, each with the broker's CPU per operation.
//!
//! Every load mode prints a progress line each second and a final summary with hdrhistogram
//! percentiles; `--json` writes the summary as JSON as well.

use clap::{Parser, Subcommand};
use ferromq_bench::{broker, consume, probe, produce, replication, route, semantics, store, suite};

#[derive(Parser, Debug)]
#[command(name = "ferromq-bench", version, about = "FerroMQ load generator (RocketMQ remoting protocol)")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Route lookups (GET_ROUTEINFO_BY_TOPIC) against a name server.
    Route(route::RouteArgs),
    /// The machine's physical limits: fdatasync, disk bandwidth, loopback RTT and sendfile.
    Probe(probe::ProbeArgs),
    /// The store alone: appends/s with N writers under SYNC_FLUSH and ASYNC_FLUSH, pull lookups.
    Store(store::StoreArgs),
    /// Producers against a broker: SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE, sync or one-way,
    /// closed or open loop.
    Produce(produce::ProduceArgs),
    /// Pull consumers on every queue of a topic: --catch-up (backlog from 0) or --tail.
    Consume(consume::ConsumeArgs),
    /// Producer + tail consumer in one process: send -> receive latency.
    E2e(consume::E2eArgs),
    /// Broker RSS per idle connection (reads /proc/<pid>/status).
    Rss(broker::RssArgs),
    /// The benchmark suite: name server + broker per profile (SYNC/ASYNC flush x io_uring/epoll),
    /// the whole matrix, a Markdown report with SVG plots in a results folder.
    Suite(suite::SuiteArgs),
    /// Master–slave replication: a master and its slave started here (stores in a scratch
    /// folder), SYNC_MASTER ÷ ASYNC_MASTER throughput, both brokers' CPU per message, the
    /// latency SYNC_MASTER adds, slave lag, an empty slave's catch-up ÷ loopback sendfile.
    Replication(replication::ReplicationArgs),
    /// Messaging semantics (issue 15): a broker started here (store in a scratch folder);
    /// CONSUMER_SEND_MSG_BACK to %RETRY% and %DLQ%, half messages and END_TRANSACTION commits,
    /// SQL92 vs tag vs no filter per examined record, with the broker's CPU per operation.
    Semantics(semantics::SemanticsArgs),
}

fn main() -> std::process::ExitCode {
    keep_freed_heap_memory();
    ferromq_net::logging::init();
    let cli = Cli::parse();
    let result = match cli.mode {
        Mode::Route(args) => route::run(args),
        Mode::Probe(args) => probe::run(args),
        Mode::Store(args) => store::run(args),
        Mode::Produce(args) => produce::run_produce(&args).map(drop),
        Mode::Consume(args) => consume::run_consume(&args).map(drop),
        Mode::E2e(args) => consume::run_e2e(&args).map(drop),
        Mode::Rss(args) => broker::run_rss(args),
        Mode::Suite(args) => suite::run(args).map(drop),
        Mode::Replication(args) => replication::run(args).map(drop),
        Mode::Semantics(args) => semantics::run(args).map(drop),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferromq-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The load generator keeps the heap memory it frees instead of giving it back to the kernel.
/// Its read buffers come and go by the megabyte (hundreds of pulls in flight, each answer tens
/// of KiB), and glibc returns a freed heap top above 128 KiB at once. On a VM with free page
/// reporting (virtio-balloon; this project's 2-vCPU machine reports free memory to its host at
/// once), every page given back costs a host fault when touched again: 38 µs a page measured,
/// against 2 µs for a page reused. The consumer then spent 39 % of its CPU zeroing pages at 600
/// queues, and the width ratio measured the generator (bench/RESULTS.md, 2026-12-06). Keeping
/// the memory costs at most the generator's peak heap. Broker figures are unaffected: this is
/// the generator's own process.
fn keep_freed_heap_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const TRIM_THRESHOLD_BYTES: i32 = 1 << 30;
        // Allocations above this are mmapped (and unmapped when freed); 32 MiB is glibc's most.
        const MMAP_THRESHOLD_BYTES: i32 = 32 << 20;
        // SAFETY: mallopt only changes the allocator's parameters; called before any thread.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        }
    }
}
