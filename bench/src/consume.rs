//! `consume` and `e2e` modes.
//!
//! `consume` pulls every queue of a topic with PULL_MESSAGE (subscription inline, `*`), decodes
//! each body strictly ([`ferromq_store::record::decode_body_strict`], BODYCRC checked) and
//! reports messages/s, MiB/s of bodies and MiB/s on the wire (whole records, what `sendfile`
//! moves):
//! - `--catch-up`: reads the existing backlog from each queue's offset 0 up to its max offset as
//!   read at the start, without suspension; the rate is over the time until every queue is
//!   drained (pre-fill with `produce`).
//! - `--tail` (default): starts at each queue's current max offset and long-polls (suspend flag)
//!   for `--duration-secs`, alongside a producer run elsewhere.
//!
//! `e2e` runs a producer ([`crate::produce::ProducerSet`]) and a tail consumer in one process;
//! each body carries its send time (ns since an in-process epoch; open loop: the scheduled
//! time) and the consumer records send → receive latency.
//!
//! Queue offsets are checked as they arrive: a record whose queue offset is not the next
//! expected one counts as a gap.
//!
//! With `--pid` of the broker, both modes report its CPU over the measured window (all its
//! threads) per consumed record (`consume`) or per produced message (`e2e`), next to this
//! process's own ([`crate::cpu`]).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferromq_net::backend::build_runtime;
use ferromq_net::codes::response_code;
use hdrhistogram::Histogram;

use crate::broker::{self, Counts};
use crate::cpu::CpuWindow;
use crate::produce::{self, ProducerArgs, ProducerSet};

#[derive(clap::Args, Debug, Clone)]
pub struct ConsumerArgs {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:10911")]
    pub broker: SocketAddr,
    /// Topic.
    #[arg(long, default_value = "BenchTopic")]
    pub topic: String,
    /// Queues of the topic (every one is pulled).
    #[arg(long, default_value_t = 8)]
    pub queues: u32,
    /// Consumer connections; queue q is pulled on connection q mod N.
    #[arg(long, default_value_t = 1)]
    pub consumer_connections: usize,
    /// maxMsgNums per pull.
    #[arg(long, default_value_t = 32)]
    pub pull_batch: u32,
    /// Long-poll hold (suspendTimeoutMillis) of tail pulls.
    #[arg(long, default_value_t = 1000)]
    pub suspend_ms: u64,
    /// Consumer group named in the pulls.
    #[arg(long, default_value = "ferromq-bench-consumer")]
    pub consumer_group: String,
    /// The pulls' inline subscription: a TAG expression (`*`: every message) or an SQL92
    /// selector (with --expression-type SQL92; the broker needs enablePropertyFilter=true).
    /// With a filter, queue offsets skip what it left out: only offsets going back count as gaps.
    #[arg(long, default_value = "*")]
    pub subscription: String,
    /// TAG or SQL92.
    #[arg(long, default_value = "TAG", value_parser = ["TAG", "SQL92"])]
    pub expression_type: String,
    /// I/O backend of the consumer's client thread.
    #[arg(long, default_value = "auto")]
    pub consumer_io_backend: String,
    /// Pull over TLS (a broker with tls.server.mode=permissive or enforcing; any server
    /// certificate is accepted).
    #[arg(long)]
    pub consumer_tls: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub consumer: ConsumerArgs,
    /// Read the existing backlog from offset 0 (no suspension), then stop.
    #[arg(long, conflicts_with = "tail")]
    pub catch_up: bool,
    /// Follow the queues' ends with long polling for --duration-secs (default).
    #[arg(long)]
    pub tail: bool,
    /// Tail: measured seconds. Catch-up: give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// PID of the broker (same machine): report its CPU per consumed record (all its threads).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    #[command(flatten)]
    pub producer: ProducerArgs,
    /// Connections of the tail consumer.
    #[arg(long, default_value_t = 1)]
    pub consumer_connections: usize,
    /// maxMsgNums per pull.
    #[arg(long, default_value_t = 32)]
    pub pull_batch: u32,
    /// Long-poll hold of the consumer's pulls.
    #[arg(long, default_value_t = 1000)]
    pub suspend_ms: u64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Unmeasured warm-up, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub warmup_ms: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Live counters of a consumer.
#[derive(Debug, Default)]
pub struct ConsumeCounters {
    pub go: AtomicBool,
    pub measuring: AtomicBool,
    pub stop: AtomicBool,
    pub messages: AtomicU64,
    pub body_bytes: AtomicU64,
    pub wire_bytes: AtomicU64,
    pub pulls: AtomicU64,
    /// Queues drained (catch-up).
    pub drained: AtomicU64,
}

/// What a consumer measured.
#[derive(Debug, Clone)]
pub struct ConsumeResult {
    /// Pull round trips, µs.
    pub pull_latency: Histogram<u64>,
    /// Send → receive of stamped bodies, µs.
    pub e2e_latency: Histogram<u64>,
    pub codes: Counts,
    pub gaps: u64,
    pub errors: Vec<String>,
}

/// A consumer thread pulling every queue; started before [`ConsumerSet::go`].
pub struct ConsumerSet {
    pub counters: Arc<ConsumeCounters>,
    thread: std::thread::JoinHandle<Result<ConsumeResult, String>>,
    /// Backlog to read (catch-up): sum over queues of max − start.
    pub backlog: u64,
}

impl ConsumerSet {
    /// Connects, reads the queues' offsets: catch-up reads [0, max), tail starts at max.
    pub fn start(args: &ConsumerArgs, catch_up: bool) -> Result<ConsumerSet, String> {
        let backend = broker::resolve_backend(&args.consumer_io_backend)?;
        if args.consumer_tls {
            broker::connect_over_tls()?;
        }
        let counters = Arc::new(ConsumeCounters::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<u64, String>>();
        let (args, c2) = (args.clone(), counters.clone());
        let thread = std::thread::spawn(move || -> Result<ConsumeResult, String> {
            let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
            runtime.block_on(consumer_thread(args, catch_up, c2, ready_tx))
        });
        match ready_rx.recv() {
            Ok(Ok(backlog)) => Ok(ConsumerSet { counters, thread, backlog }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(match thread.join() {
                Ok(Err(e)) => e,
                _ => "consumer thread ended early".into(),
            }),
        }
    }

    pub fn go(&self) {
        self.counters.go.store(true, Ordering::SeqCst);
    }

    pub fn finished(&self) -> bool {
        self.thread.is_finished()
    }

    pub fn stop_and_join(self) -> Result<ConsumeResult, String> {
        self.counters.stop.store(true, Ordering::SeqCst);
        self.counters.go.store(true, Ordering::SeqCst);
        self.thread.join().map_err(|_| "consumer thread panicked".to_string())?
    }
}

async fn consumer_thread(
    args: ConsumerArgs,
    catch_up: bool,
    counters: Arc<ConsumeCounters>,
    ready: std::sync::mpsc::Sender<Result<u64, String>>,
) -> Result<ConsumeResult, String> {
    let setup = async {
        let mut clients = Vec::new();
        for _ in 0..args.consumer_connections.max(1) {
            clients.push(broker::connect(args.broker).await.map_err(|e| format!("cannot connect to {}: {e}", args.broker))?);
        }
        let max = broker::max_offsets(&clients[0], &args.topic, args.queues).await;
        Ok::<_, String>((clients, max))
    };
    let (clients, max) = match setup.await {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    let backlog = if catch_up { max.iter().sum() } else { 0 };
    let _ = ready.send(Ok(backlog));
    while !counters.go.load(Ordering::SeqCst) {
        compio::time::sleep(Duration::from_millis(1)).await;
    }
    let filtered = args.subscription.trim() != "*" || args.expression_type != "TAG";
    let state = Rc::new(RefCell::new(ConsumeResult {
        pull_latency: broker::micros_histogram(),
        e2e_latency: broker::micros_histogram(),
        codes: Counts::new(),
        gaps: 0,
        errors: Vec::new(),
    }));
    let mut tasks = Vec::new();
    for q in 0..args.queues {
        let client = clients[q as usize % clients.len()].clone();
        let (args, counters, state) = (args.clone(), counters.clone(), state.clone());
        let target = max.get(q as usize).copied().unwrap_or(0);
        let mut offset = if catch_up { 0 } else { target };
        tasks.push(compio::runtime::spawn(async move {
            let suspend = if catch_up { 0 } else { args.suspend_ms };
            let mut expected: Option<i64> = None;
            while !counters.stop.load(Ordering::Relaxed) {
                if catch_up && offset >= target {
                    counters.drained.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                let request =
                    broker::pull_request_with(&args.consumer_group, &args.topic, q, offset, args.pull_batch, suspend, &args.subscription, &args.expression_type);
                let sent = Instant::now();
                let timeout = broker::REQUEST_TIMEOUT + Duration::from_millis(suspend);
                let response = match client.invoke(request, timeout).await {
                    Ok(r) => r,
                    Err(e) => {
                        note_error(&state, broker::rpc_error_name(&e), format!("queue {q}: {e}"));
                        compio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let received_ns = broker::nanos_at(Instant::now());
                let measuring = counters.measuring.load(Ordering::Relaxed);
                let Some(outcome) = record_pull(&state, &counters, &response, q, offset, sent, received_ns, measuring, filtered, &mut expected) else {
                    return;
                };
                if ![response_code::SUCCESS, response_code::PULL_NOT_FOUND, response_code::PULL_RETRY_IMMEDIATELY, response_code::PULL_OFFSET_MOVED]
                    .contains(&outcome.code)
                {
                    // Not one of the four normal answers: no offsets to follow; keep ours.
                    let remark = response.remark.clone().unwrap_or_default();
                    note_error(&state, "error_detail".into(), format!("queue {q} offset {offset}: code {} {remark}", outcome.code));
                    compio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                if outcome.next_begin_offset < offset && outcome.code != response_code::PULL_OFFSET_MOVED {
                    note_error(&state, "offset_went_back".into(), format!("queue {q}: nextBeginOffset {} went back from {offset}", outcome.next_begin_offset));
                }
                if catch_up && outcome.code != response_code::SUCCESS && outcome.next_begin_offset <= offset {
                    // Nothing more below the target: the queue is done.
                    counters.drained.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                offset = outcome.next_begin_offset;
            }
        }));
    }
    if catch_up {
        for task in tasks {
            let _ = task.await;
        }
    } else {
        while !counters.stop.load(Ordering::Relaxed) {
            compio::time::sleep(Duration::from_millis(5)).await;
        }
        // Held pulls are abandoned with the runtime.
    }
    let result = state.borrow().clone();
    Ok(result)
}

/// Counts `name` and keeps the first few error messages.
fn note_error(state: &RefCell<ConsumeResult>, name: String, message: String) {
    let mut s = state.borrow_mut();
    *s.codes.entry(name).or_default() += 1;
    if s.errors.len() < 10 {
        s.errors.push(message);
    }
}

/// Records one pull answer; `None` when its body is corrupt (the queue's task stops).
#[allow(clippy::too_many_arguments)]
fn record_pull(
    state: &RefCell<ConsumeResult>,
    counters: &ConsumeCounters,
    response: &ferromq_net::RemotingCommand,
    q: u32,
    offset: u64,
    sent: Instant,
    received_ns: u64,
    measuring: bool,
    filtered: bool,
    expected: &mut Option<i64>,
) -> Option<broker::PullOutcome> {
    let outcome = match broker::parse_pull_response(response) {
        Ok(o) => o,
        Err(e) => {
            note_error(state, "corrupt_body".into(), format!("queue {q} offset {offset}: {e}"));
            return None;
        }
    };
    let mut s = state.borrow_mut();
    *s.codes.entry(broker::code_name(response.code)).or_default() += 1;
    counters.pulls.fetch_add(1, Ordering::Relaxed);
    if outcome.code == response_code::SUCCESS {
        if measuring {
            let _ = s.pull_latency.record(broker::micros_since(sent));
            counters.messages.fetch_add(outcome.messages, Ordering::Relaxed);
            counters.body_bytes.fetch_add(outcome.body_bytes, Ordering::Relaxed);
            counters.wire_bytes.fetch_add(outcome.wire_bytes, Ordering::Relaxed);
            for stamp in &outcome.stamps {
                let _ = s.e2e_latency.record((received_ns.saturating_sub(*stamp) / 1_000).max(1));
            }
        }
        for qo in &outcome.queue_offsets {
            // A filter skips offsets; without one, every offset comes.
            if expected.is_some_and(|e| if filtered { *qo < e } else { *qo != e }) {
                s.gaps += 1;
            }
            *expected = Some(qo + 1);
        }
    }
    Some(outcome)
}

fn consume_json(counters: &ConsumeCounters, result: &ConsumeResult, elapsed: Duration) -> serde_json::Value {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let messages = counters.messages.load(Ordering::SeqCst);
    let body = counters.body_bytes.load(Ordering::SeqCst) as f64;
    let wire = counters.wire_bytes.load(Ordering::SeqCst) as f64;
    serde_json::json!({
        "duration_s": secs,
        "messages": messages,
        "messages_per_s": messages as f64 / secs,
        "body_mib_per_s": body / 1_048_576.0 / secs,
        "wire_mib_per_s": wire / 1_048_576.0 / secs,
        "pulls": counters.pulls.load(Ordering::SeqCst),
        "mean_messages_per_pull": messages as f64 / (result.pull_latency.len().max(1)) as f64,
        "codes": result.codes,
        "gaps": result.gaps,
        "errors": result.errors,
        "pull_latency_us": broker::percentiles_json(&result.pull_latency),
        "e2e_latency_us": broker::percentiles_json(&result.e2e_latency),
        "e2e_latency_cdf_us": broker::cdf_json(&result.e2e_latency),
    })
}

fn progress(started: Instant, last: &mut (Instant, u64, u64), counters: &ConsumeCounters, extra: &str) {
    let now = (Instant::now(), counters.messages.load(Ordering::Relaxed), counters.wire_bytes.load(Ordering::Relaxed));
    let secs = (now.0 - last.0).as_secs_f64().max(1e-9);
    eprintln!(
        "[{:>4.1}s] consumed {:>9.0} msg/s {:>7.1} MiB/s (wire){extra}",
        started.elapsed().as_secs_f64(),
        (now.1 - last.1) as f64 / secs,
        (now.2 - last.2) as f64 / 1_048_576.0 / secs
    );
    *last = now;
}

/// `consume` mode.
pub fn run_consume(args: &ConsumeArgs) -> Result<serde_json::Value, String> {
    let catch_up = args.catch_up;
    let set = ConsumerSet::start(&args.consumer, catch_up)?;
    let counters = set.counters.clone();
    let blocks_before = block_cache(&args.consumer);
    let cpu = CpuWindow::start(args.pid);
    counters.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    set.go();
    let limit = Duration::from_secs_f64(args.duration_secs.max(0.0));
    let mut last = (started, 0, 0);
    let mut next_print = started + Duration::from_secs(1);
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let done = if catch_up { set.finished() || started.elapsed() >= limit } else { started.elapsed() >= limit };
        if Instant::now() >= next_print {
            progress(started, &mut last, &counters, "");
            next_print += Duration::from_secs(1);
        }
        if done {
            break;
        }
    }
    let elapsed = started.elapsed();
    counters.measuring.store(false, Ordering::SeqCst);
    let cpu = cpu.finish(counters.messages.load(Ordering::SeqCst));
    let backlog = set.backlog;
    let result = set.stop_and_join()?;
    let mut summary = consume_json(&counters, &result, elapsed);
    summary["cpu"] = cpu.to_json();
    let blocks = blocks_before.zip(block_cache(&args.consumer)).map(|((reads0, bytes0), (reads1, bytes1))| (reads1.saturating_sub(reads0), bytes1.saturating_sub(bytes0)));
    if let Some((reads, read_bytes)) = blocks {
        summary["block_cache"] = serde_json::json!({ "reads": reads, "read_bytes": read_bytes });
    }
    if let Some(obj) = summary.as_object_mut() {
        obj.insert("mode".into(), if catch_up { "consume-catch-up" } else { "consume-tail" }.into());
        obj.insert("broker".into(), args.consumer.broker.to_string().into());
        obj.insert("topic".into(), args.consumer.topic.clone().into());
        obj.insert("queues".into(), args.consumer.queues.into());
        obj.insert("pull_batch".into(), args.consumer.pull_batch.into());
        obj.insert("backlog".into(), backlog.into());
    }
    print_consume(&summary, &result);
    if let Some((reads, read_bytes)) = blocks {
        let pulls = counters.pulls.load(Ordering::SeqCst).max(1) as f64;
        let body = counters.body_bytes.load(Ordering::SeqCst).max(1) as f64;
        println!("broker block cache: {reads} reads ({:.2} per pull), {:.2} bytes read per body byte (all the broker's pulls meanwhile)", reads as f64 / pulls, read_bytes as f64 / body);
    }
    println!("{}", cpu.line());
    if let Some(path) = &args.json {
        crate::probe::write_json(path, &summary)?;
    }
    Ok(summary)
}

/// The broker's block-cache counters (reads, bytes read; GET_BROKER_RUNTIME_INFO, summed over
/// its shards): how many bytes its copied pull bodies read. `None` from a broker without them.
fn block_cache(args: &ConsumerArgs) -> Option<(u64, u64)> {
    let keys = ["ferromqBlockCacheReads", "ferromqBlockCacheReadBytes"];
    let values = broker::runtime_max(args.broker, &args.consumer_io_backend, &keys).ok()?;
    Some((values.first().copied().flatten()?, values.get(1).copied().flatten()?))
}

fn print_consume(summary: &serde_json::Value, result: &ConsumeResult) {
    let f = |k: &str| summary.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    println!(
        "{}: {:.0} msg/s, {:.1} MiB/s bodies, {:.1} MiB/s wire over {:.2} s ({} messages, {:.1} per pull, gaps {})",
        summary.get("mode").and_then(serde_json::Value::as_str).unwrap_or("consume"),
        f("messages_per_s"),
        f("body_mib_per_s"),
        f("wire_mib_per_s"),
        f("duration_s"),
        summary.get("messages").and_then(serde_json::Value::as_u64).unwrap_or(0),
        f("mean_messages_per_pull"),
        result.gaps
    );
    println!("pull latency us (FOUND): {}", broker::percentile_line(&result.pull_latency));
    if !result.e2e_latency.is_empty() {
        println!("end-to-end latency us: {}", broker::percentile_line(&result.e2e_latency));
    }
    println!("responses: {:?}", result.codes);
    for e in &result.errors {
        println!("error: {e}");
    }
}

/// `e2e` mode: producer + tail consumer in one process.
pub fn run_e2e(args: &E2eArgs) -> Result<serde_json::Value, String> {
    let p = &args.producer;
    if p.topics > 1 {
        return Err("e2e follows one topic: --topics must be 1".into());
    }
    let backend = broker::resolve_backend(&p.io_backend)?;
    produce::prepare_topic(p, backend)?;
    let consumer_args = ConsumerArgs {
        broker: p.broker,
        topic: p.topic.clone(),
        queues: p.queues,
        consumer_connections: args.consumer_connections,
        pull_batch: args.pull_batch,
        suspend_ms: args.suspend_ms,
        consumer_group: "ferromq-bench-e2e".into(),
        subscription: "*".into(),
        expression_type: "TAG".into(),
        consumer_io_backend: p.io_backend.clone(),
        consumer_tls: p.tls,
    };
    let consumer = ConsumerSet::start(&consumer_args, false)?;
    let producer = ProducerSet::start(p, true, None)?;
    let (pc, cc) = (producer.counters.clone(), consumer.counters.clone());
    consumer.go();
    producer.go();
    std::thread::sleep(Duration::from_millis(args.warmup_ms));
    let cpu = CpuWindow::start(p.pid);
    pc.measuring.store(true, Ordering::SeqCst);
    cc.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let mut last = (started, 0, 0);
    let mut last_p = 0u64;
    let duration = Duration::from_secs_f64(args.duration_secs.max(0.0));
    while started.elapsed() < duration {
        std::thread::sleep((duration - started.elapsed()).min(Duration::from_secs(1)));
        let acked = pc.acked.load(Ordering::Relaxed);
        let extra = format!("  produced {} msgs in the last second, errors {}", acked - last_p, pc.failed.load(Ordering::Relaxed));
        last_p = acked;
        progress(started, &mut last, &cc, &extra);
    }
    let elapsed = started.elapsed();
    pc.measuring.store(false, Ordering::SeqCst);
    let acked = pc.acked.load(Ordering::SeqCst);
    // Per produced message; the window holds both sides' work (send, store, deliver, receive).
    let cpu = cpu.finish(acked);
    let produced = producer.stop_and_join()?;
    // Let the consumer catch the last messages (bounded), still measuring.
    let drain_deadline = Instant::now() + Duration::from_secs(2);
    while cc.messages.load(Ordering::SeqCst) < acked && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    cc.measuring.store(false, Ordering::SeqCst);
    let consumed = consumer.stop_and_join()?;
    let produce_summary = produce::summarize_produce(p, &produced, acked, elapsed, None);
    let consume_summary = consume_json(&cc, &consumed, elapsed);
    println!(
        "e2e: produced {:.0} msg/s (send latency us: {}), consumed {} of {acked} measured messages",
        produce_summary.get("messages_per_s").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
        broker::percentile_line(&produced.histogram),
        cc.messages.load(Ordering::SeqCst)
    );
    print_consume(&consume_summary, &consumed);
    println!("{}", cpu.line());
    let summary = serde_json::json!({"mode": "e2e", "producer": produce_summary, "consumer": consume_summary, "cpu": cpu.to_json()});
    if let Some(path) = &args.json {
        crate::probe::write_json(path, &summary)?;
    }
    Ok(summary)
}
