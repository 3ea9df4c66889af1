//! `produce` mode: N producer connections × in-flight sends each, against any RocketMQ-compatible
//! broker (plain remoting: SEND_MESSAGE_V2, or SEND_BATCH_MESSAGE with `--batch` > 1; two-way
//! or one-way).
//!
//! Closed loop (default): every connection keeps `--in-flight` sends outstanding; latency is
//! from just before a send is queued to its response. Open loop (`--open-loop --rate R`):
//! each connection sends at fixed intervals (R messages/s in all), up to `--in-flight`
//! outstanding, and latency is measured from the *scheduled* time, so a stalled broker shows
//! up as latency instead of as fewer samples (no coordinated omission).
//!
//! Queue choice: each connection goes round robin over the (topic, queue) pairs it may send to
//! (its lanes share one cursor; connections start at evenly spread points). `--topics N` spreads
//! the sends over N topics `<topic>-0` … `<topic>-(N-1)` of `--queues` queues each (topics first,
//! so consecutive sends go to different topics). With `--pid` of a FerroMQ broker and
//! `--affinity owner|cross`, each connection first finds which shard serves it
//! ([`broker::connection_shard`]; connections are opened until they spread evenly over the
//! shards) and then sends only to queues that shard owns (`owner`: no cross-shard hop) or only
//! to queues another shard owns (`cross`: every send hops).
//!
//! Besides client-side figures, the topic's max offsets are read before and after the run
//! (GET_MAX_OFFSET; one topic only), so messages actually stored are reported too — the only
//! check one-way sends get. With `--pid`, the broker's CPU over the measured window is reported
//! per acknowledged message next to this process's own ([`crate::cpu`]).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferromq_net::backend::{IoBackend, build_runtime};
use ferromq_net::client::Client;
use ferromq_net::codes::response_code;
use hdrhistogram::Histogram;

use crate::broker::{self, Counts, SendTemplate};
use crate::cpu::CpuWindow;

#[derive(clap::Args, Debug, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub producer: ProducerArgs,
    /// Measured duration, seconds (after the warm-up); ignored with --count.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Send this many messages in all instead of running for a duration (no warm-up).
    #[arg(long)]
    pub count: Option<u64>,
    /// Unmeasured warm-up, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub warmup_ms: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// PID of a second broker process on this machine — the master's slave — whose CPU over
    /// the same measured window is reported too, per acknowledged message (`cpu_slave`).
    #[arg(long)]
    pub slave_pid: Option<u32>,
}

/// The producer side, shared by `produce` and `e2e`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProducerArgs {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:10911")]
    pub broker: SocketAddr,
    /// Producer connections.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Sends outstanding per connection (closed loop), or at most outstanding (open loop).
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
    /// Client threads (one runtime each); connections are spread over them.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Message body size, bytes.
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// Topic (created with --queues queues unless --no-create-topic; auto-created through TBW102 otherwise).
    #[arg(long, default_value = "BenchTopic")]
    pub topic: String,
    /// Queues of the topic (of each topic).
    #[arg(long, default_value_t = 8)]
    pub queues: u32,
    /// Topics: above 1, sends go round robin over `<topic>-0` … `<topic>-(N-1)`, each with
    /// --queues queues (created first, several requests in flight, unless --no-create-topic).
    #[arg(long, default_value_t = 1)]
    pub topics: u32,
    /// Do not send UPDATE_AND_CREATE_TOPIC first; rely on auto-creation (defaultTopic TBW102).
    #[arg(long)]
    pub no_create_topic: bool,
    /// sync: two-way sends (SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE); oneway: one-way.
    #[arg(long, default_value = "sync", value_parser = ["sync", "oneway"])]
    pub send_mode: String,
    /// Messages per send (> 1: SEND_BATCH_MESSAGE).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Open loop: schedule sends at fixed intervals (needs --rate).
    #[arg(long)]
    pub open_loop: bool,
    /// Open-loop rate, messages/s over all connections.
    #[arg(long)]
    pub rate: Option<f64>,
    /// FerroMQ only (needs --pid): any, owner (send only to queues the connection's shard owns)
    /// or cross (only to queues another shard owns).
    #[arg(long, default_value = "any", value_parser = ["any", "owner", "cross"])]
    pub affinity: String,
    /// PID of the broker (same machine): for --affinity, and to report the broker's CPU per
    /// acknowledged message (all its threads, from its process CPU clock).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Producer group.
    #[arg(long, default_value = "ferromq-bench-producer")]
    pub producer_group: String,
    /// I/O backend of the client: auto, io_uring or epoll.
    #[arg(long, default_value = "auto")]
    pub io_backend: String,
    /// Sign every request as this account (a broker with aclEnable=true; with --secret-key).
    #[arg(long, requires = "secret_key")]
    pub access_key: Option<String>,
    /// The secret of --access-key.
    #[arg(long, requires = "access_key")]
    pub secret_key: Option<String>,
    /// Connect over TLS (a broker with tls.server.mode=permissive or enforcing; any server
    /// certificate is accepted). In `e2e`, the consumer's connections too.
    #[arg(long)]
    pub tls: bool,
}

/// Live counters of a producer set.
#[derive(Debug, Default)]
pub struct ProduceCounters {
    pub measuring: AtomicBool,
    pub go: AtomicBool,
    pub stop: AtomicBool,
    /// Messages acknowledged with SUCCESS (or sent, one-way) while measuring.
    pub acked: AtomicU64,
    /// Sends that failed (any non-SUCCESS code or client error) while measuring.
    pub failed: AtomicU64,
    /// Messages claimed so far (for a fixed count).
    pub claimed: AtomicU64,
    /// Sends outstanding now (open loop).
    pub outstanding: AtomicU64,
}

/// What one producer thread measured.
struct ThreadResult {
    histogram: Histogram<u64>,
    codes: Counts,
}

/// The merged result of a producer set.
#[derive(Debug, Clone)]
pub struct ProduceResult {
    pub histogram: Histogram<u64>,
    pub codes: Counts,
    /// Connections per shard (with --affinity), else empty.
    pub shard_split: Vec<usize>,
}

/// Producer threads, connected and waiting for [`ProducerSet::go`].
pub struct ProducerSet {
    pub counters: Arc<ProduceCounters>,
    threads: Vec<std::thread::JoinHandle<Result<ThreadResult, String>>>,
    pub shard_split: Vec<usize>,
}

impl ProducerSet {
    /// Starts `args.threads` threads, opens and (with --affinity) classifies every connection.
    /// `stamp`: bodies carry their send time (e2e). `count`: messages to send in all.
    pub fn start(args: &ProducerArgs, stamp: bool, count: Option<u64>) -> Result<ProducerSet, String> {
        if args.open_loop && args.rate.is_none_or(|r| r <= 0.0) {
            return Err("--open-loop needs --rate R (messages/s, > 0)".into());
        }
        if args.connections == 0 || args.queues == 0 || args.message_bytes == 0 {
            return Err("--connections, --queues and --message-bytes must be at least 1".into());
        }
        let shards = match (args.affinity.as_str(), args.pid) {
            ("any", _) => None,
            (_, None) => return Err("--affinity owner|cross needs --pid of a FerroMQ broker".into()),
            (_, Some(pid)) => Some((pid, broker::shard_threads(pid)?)),
        };
        let backend = broker::resolve_backend(&args.io_backend)?;
        let counters = Arc::new(ProduceCounters::default());
        let threads = args.threads.clamp(1, args.connections);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Vec<usize>, String>>();
        let turn = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        let mut first_conn = 0;
        for t in 0..threads {
            let conns = broker::share(args.connections, threads, t);
            let (args, counters, ready_tx, shards, turn) = (args.clone(), counters.clone(), ready_tx.clone(), shards.clone(), turn.clone());
            let first = first_conn;
            first_conn += conns;
            handles.push(std::thread::spawn(move || -> Result<ThreadResult, String> {
                let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
                runtime.block_on(producer_thread(args, t, first, conns, stamp, count, shards, counters, ready_tx, turn))
            }));
        }
        drop(ready_tx);
        let mut shard_split = Vec::new();
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok(Ok(split)) => {
                    if shard_split.len() < split.len() {
                        shard_split.resize(split.len(), 0);
                    }
                    for (i, n) in split.iter().enumerate() {
                        shard_split[i] += n;
                    }
                }
                Ok(Err(e)) => {
                    counters.stop.store(true, Ordering::SeqCst);
                    counters.go.store(true, Ordering::SeqCst);
                    return Err(e);
                }
                Err(_) => {
                    counters.stop.store(true, Ordering::SeqCst);
                    counters.go.store(true, Ordering::SeqCst);
                    // A thread ended without reporting: surface its error.
                    for h in handles {
                        if let Ok(Err(e)) = h.join() {
                            return Err(e);
                        }
                    }
                    return Err("a producer thread ended early".into());
                }
            }
        }
        Ok(ProducerSet { counters, threads: handles, shard_split })
    }

    /// Releases the producers.
    pub fn go(&self) {
        self.counters.go.store(true, Ordering::SeqCst);
    }

    /// Whether every thread has ended (a fixed count is done).
    pub fn finished(&self) -> bool {
        self.threads.iter().all(|h| h.is_finished())
    }

    /// Stops the producers and merges what they measured.
    pub fn stop_and_join(self) -> Result<ProduceResult, String> {
        self.counters.stop.store(true, Ordering::SeqCst);
        self.counters.go.store(true, Ordering::SeqCst);
        let mut histogram = broker::micros_histogram();
        let mut codes = Counts::new();
        for h in self.threads {
            let r = h.join().map_err(|_| "producer thread panicked".to_string())??;
            histogram.add(r.histogram).map_err(|e| e.to_string())?;
            broker::merge_counts(&mut codes, &r.codes);
        }
        Ok(ProduceResult { histogram, codes, shard_split: self.shard_split })
    }
}

/// The topics a producer sends to: `topic` alone, or `topic-0` … `topic-(N-1)` with `--topics N`.
pub fn topic_names(args: &ProducerArgs) -> Vec<String> {
    if args.topics <= 1 { vec![args.topic.clone()] } else { (0..args.topics).map(|i| format!("{}-{i}", args.topic)).collect() }
}

/// Creates the topics (unless told not to) and returns the max offsets of a single topic's
/// queues (`None` with several topics: reading every queue's offset would be a run of its own).
pub fn prepare_topic(args: &ProducerArgs, backend: IoBackend) -> Result<Option<Vec<u64>>, String> {
    if let (Some(access_key), Some(secret_key)) = (&args.access_key, &args.secret_key) {
        broker::sign_requests_with(ferromq_net::acl::Credentials::new(access_key, secret_key));
    }
    if args.tls {
        broker::connect_over_tls()?;
    }
    let topics = topic_names(args);
    if !args.no_create_topic {
        let started = Instant::now();
        let failures = pipelined(args.broker, backend, topics.len(), CREATE_TOPICS_IN_FLIGHT, |i| broker::create_topic_request(&topics[i], args.queues))?;
        if let Some((name, n)) = failures.iter().next() {
            return Err(format!("creating {} topics: {n} × {name} ({} kinds of failure)", topics.len(), failures.len()));
        }
        if topics.len() > 1 {
            eprintln!("[produce] created {} topics × {} queues in {:.1} s", topics.len(), args.queues, started.elapsed().as_secs_f64());
        }
    }
    if topics.len() > 1 {
        return Ok(None);
    }
    topic_offsets(args.broker, &args.topic, args.queues, backend).map(Some)
}

/// UPDATE_AND_CREATE_TOPIC requests in flight while creating many topics.
pub const CREATE_TOPICS_IN_FLIGHT: usize = 16;

/// Sends `request(0)` … `request(n-1)` over one connection with up to `in_flight` outstanding
/// (a setup step: topic creation, touching every queue once). Returns the failures by name
/// (non-SUCCESS codes with their first remark, client errors); empty when all succeeded.
pub fn pipelined(
    broker_addr: SocketAddr,
    backend: IoBackend,
    n: usize,
    in_flight: usize,
    request: impl Fn(usize) -> ferromq_net::RemotingCommand,
) -> Result<Counts, String> {
    let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = broker::connect(broker_addr).await.map_err(|e| format!("cannot connect to {broker_addr}: {e}"))?;
        Ok(pipeline(&client, n, in_flight, request, |_, _, _| {}).await)
    })
}

/// Sends `request(0)` … `request(n-1)` over `client` with up to `in_flight` outstanding, and
/// hands every SUCCESS answer to `on_success` with its index and round trip. Returns the
/// failures as [`pipelined`] does.
pub async fn pipeline(
    client: &Client,
    n: usize,
    in_flight: usize,
    request: impl Fn(usize) -> ferromq_net::RemotingCommand,
    on_success: impl Fn(usize, &ferromq_net::RemotingCommand, Duration),
) -> Counts {
    let next = Cell::new(0usize);
    let failures = RefCell::new(Counts::new());
    let lane = || async {
        loop {
            let i = next.get();
            if i >= n {
                break;
            }
            next.set(i + 1);
            let sent = Instant::now();
            let name = match client.invoke(request(i), broker::REQUEST_TIMEOUT).await {
                Ok(r) if r.code == response_code::SUCCESS => {
                    on_success(i, &r, sent.elapsed());
                    continue;
                }
                Ok(r) => format!("{}: {}", broker::code_name(r.code), r.remark.unwrap_or_default().chars().take(120).collect::<String>()),
                Err(e) => broker::rpc_error_name(&e),
            };
            let mut failures = failures.borrow_mut();
            let key = failures.keys().find(|k| k.split(':').next() == name.split(':').next()).cloned().unwrap_or(name);
            *failures.entry(key).or_default() += 1;
        }
    };
    futures_join_all((0..in_flight.max(1)).map(|_| lane())).await;
    failures.into_inner()
}

/// Runs `futures` concurrently on the current task and waits for all of them.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pending.is_empty() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
}

/// The topic's max offsets now.
pub fn topic_offsets(broker_addr: SocketAddr, topic: &str, queues: u32, backend: IoBackend) -> Result<Vec<u64>, String> {
    let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = broker::connect(broker_addr).await.map_err(|e| e.to_string())?;
        Ok(broker::max_offsets(&client, topic, queues).await)
    })
}

/// The (topic index, queue) pairs of `topics` × `queues`, topics first: consecutive pairs name
/// different topics.
pub fn send_pairs(topics: usize, queues: u32) -> Vec<(usize, u32)> {
    (0..queues).flat_map(|q| (0..topics).map(move |t| (t, q))).collect()
}

#[allow(clippy::too_many_arguments)]
async fn producer_thread(
    args: ProducerArgs,
    thread_index: usize,
    first_conn: usize,
    connections: usize,
    stamp: bool,
    count: Option<u64>,
    shards: Option<(u32, Vec<(usize, u32)>)>,
    counters: Arc<ProduceCounters>,
    ready: std::sync::mpsc::Sender<Result<Vec<usize>, String>>,
    turn: Arc<AtomicU64>,
) -> Result<ThreadResult, String> {
    let setup = async {
        let connect = || async { broker::connect(args.broker).await.map_err(|e| format!("cannot connect to {}: {e}", args.broker)) };
        let mut clients = Vec::new();
        if shards.is_none() {
            for _ in 0..connections {
                clients.push(connect().await?);
            }
        }
        // Which (topic, queue) pairs each connection sends to.
        let topics = topic_names(&args);
        let all = send_pairs(topics.len(), args.queues);
        let mut pair_sets = vec![all.clone(); connections];
        let mut split = Vec::new();
        if let Some((pid, threads)) = &shards {
            // One thread at a time: classification reads shard CPU times.
            while turn.load(Ordering::SeqCst) != thread_index as u64 {
                compio::time::sleep(Duration::from_millis(2)).await;
            }
            let classified = async {
                // Helper threads a shard spawns inherit its name: count distinct shard numbers.
                let shard_count = threads.iter().map(|(n, _)| n + 1).max().unwrap_or(1);
                split = vec![0usize; shard_count];
                // Spread the connections evenly over the shards (the broker places a new
                // connection where it likes): an uneven split would compare one busy shard
                // with two, not a local send with a hop. Extra connections are closed; after
                // `max_attempts` the split is taken as it comes (and reported).
                let per_shard = connections.div_ceil(shard_count);
                let max_attempts = 8 * connections + 8;
                let mut attempts = 0;
                while clients.len() < connections {
                    let client = connect().await?;
                    attempts += 1;
                    let shard = broker::connection_shard(&client, *pid, threads).await?;
                    if split[shard] >= per_shard && attempts < max_attempts {
                        client.close();
                        continue;
                    }
                    split[shard] += 1;
                    let owner = args.affinity == "owner";
                    let pairs: Vec<(usize, u32)> = all.iter().copied().filter(|(t, q)| (broker::owner_of(&topics[*t], *q, shard_count) == shard) == owner).collect();
                    if pairs.is_empty() {
                        return Err(format!("no queue of {} fits --affinity {} for a connection on shard {shard}", args.topic, args.affinity));
                    }
                    pair_sets[clients.len()] = pairs;
                    clients.push(client);
                }
                Ok(())
            }
            .await;
            turn.fetch_add(1, Ordering::SeqCst);
            classified?;
        }
        Ok::<_, String>((clients, pair_sets, topics, split))
    };
    let (clients, pair_sets, topics, split) = match setup.await {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return Err(e);
        }
    };
    let _ = ready.send(Ok(split));
    while !counters.go.load(Ordering::SeqCst) {
        compio::time::sleep(Duration::from_millis(1)).await;
    }
    let histogram = Rc::new(RefCell::new(broker::micros_histogram()));
    let codes = Rc::new(RefCell::new(Counts::new()));
    let template = Rc::new(SendTemplate::new(&args.producer_group, &args.topic, args.queues, args.message_bytes, args.batch));
    let topics: Rc<[String]> = topics.into();
    let recorder = Recorder { histogram: histogram.clone(), codes: codes.clone(), counters: counters.clone(), batch: template.batch as u64 };
    let oneway = args.send_mode == "oneway";
    let mut tasks = Vec::new();
    for (c, (client, pairs)) in clients.into_iter().zip(pair_sets).enumerate() {
        let global_conn = first_conn + c;
        // The connection's round-robin cursor, shared by its lanes; connections start at evenly
        // spread points so that together they cover every pair early.
        let cursor = Cell::new(global_conn * pairs.len() / args.connections.max(1));
        let next_pair = Rc::new(move || {
            let pair = pairs[cursor.get() % pairs.len()];
            cursor.set(cursor.get().wrapping_add(1));
            pair
        });
        if let Some(rate) = args.rate.filter(|_| args.open_loop) {
            let interval_ns = 1e9 * args.connections as f64 * template.batch as f64 / rate;
            let (template, recorder, counters, topics) = (template.clone(), recorder.clone(), counters.clone(), topics.clone());
            let cap = args.in_flight.max(1) as u64;
            tasks.push(compio::runtime::spawn(async move {
                let outstanding = Rc::new(Cell::new(0u64));
                // Stagger connections over one interval.
                let start = Instant::now() + Duration::from_nanos((interval_ns * global_conn as f64 / args.connections as f64) as u64);
                let mut i = 0u64;
                while !counters.stop.load(Ordering::Relaxed) && claim(&counters, count, template.batch as u64) {
                    let scheduled = start + Duration::from_nanos((interval_ns * i as f64) as u64);
                    i += 1;
                    if scheduled > Instant::now() {
                        compio::time::sleep_until(scheduled).await;
                    }
                    while outstanding.get() >= cap && !counters.stop.load(Ordering::Relaxed) {
                        compio::time::sleep(Duration::from_micros(100)).await;
                    }
                    let (t, q) = next_pair();
                    let request = template.request_to(&topics[t], q, stamp.then(|| broker::nanos_at(scheduled)));
                    outstanding.set(outstanding.get() + 1);
                    counters.outstanding.fetch_add(1, Ordering::Relaxed);
                    let (client, recorder, outstanding, counters) = (client.clone(), recorder.clone(), outstanding.clone(), counters.clone());
                    compio::runtime::spawn(async move {
                        recorder.send(&client, request, oneway, scheduled).await;
                        outstanding.set(outstanding.get() - 1);
                        counters.outstanding.fetch_sub(1, Ordering::Relaxed);
                    })
                    .detach();
                }
                // Let the last sends finish (bounded).
                let deadline = Instant::now() + broker::REQUEST_TIMEOUT;
                while outstanding.get() > 0 && Instant::now() < deadline {
                    compio::time::sleep(Duration::from_millis(1)).await;
                }
            }));
        } else {
            for _lane in 0..args.in_flight.max(1) {
                let (client, template, recorder, counters, next_pair, topics) =
                    (client.clone(), template.clone(), recorder.clone(), counters.clone(), next_pair.clone(), topics.clone());
                tasks.push(compio::runtime::spawn(async move {
                    while !counters.stop.load(Ordering::Relaxed) && claim(&counters, count, template.batch as u64) {
                        let (t, q) = next_pair();
                        let now = Instant::now();
                        let request = template.request_to(&topics[t], q, stamp.then(|| broker::nanos_at(now)));
                        recorder.send(&client, request, oneway, now).await;
                    }
                }));
            }
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let histogram = histogram.borrow().clone();
    let codes = codes.borrow().clone();
    Ok(ThreadResult { histogram, codes })
}

/// Claims a send of `batch` messages against a fixed total; always true without one.
fn claim(counters: &ProduceCounters, count: Option<u64>, batch: u64) -> bool {
    match count {
        None => true,
        Some(limit) => counters.claimed.fetch_add(batch, Ordering::Relaxed) < limit,
    }
}

#[derive(Clone)]
struct Recorder {
    histogram: Rc<RefCell<Histogram<u64>>>,
    codes: Rc<RefCell<Counts>>,
    counters: Arc<ProduceCounters>,
    batch: u64,
}

impl Recorder {
    /// Sends and records latency from `since` (queued or scheduled time) and the outcome.
    async fn send(&self, client: &Client, request: ferromq_net::RemotingCommand, oneway: bool, since: Instant) {
        let outcome = if oneway {
            client.invoke_oneway(request).await.map(|()| response_code::SUCCESS)
        } else {
            client.invoke(request, broker::REQUEST_TIMEOUT).await.map(|r| {
                if r.code != response_code::SUCCESS && self.codes.borrow().len() < 16 {
                    let remark: String = r.remark.unwrap_or_default().chars().take(160).collect();
                    self.codes.borrow_mut().entry(format!("remark {}: {remark}", r.code)).or_insert(0);
                }
                r.code
            })
        };
        if !self.counters.measuring.load(Ordering::Relaxed) {
            return;
        }
        let name = match &outcome {
            Ok(code) => broker::code_name(*code),
            Err(e) => broker::rpc_error_name(e),
        };
        if let Err(e) = &outcome {
            self.codes.borrow_mut().entry(format!("first error: {e}")).or_insert(0);
        }
        *self.codes.borrow_mut().entry(name).or_default() += 1;
        if outcome.as_ref().is_ok_and(|c| *c == response_code::SUCCESS) {
            let _ = self.histogram.borrow_mut().record(broker::micros_since(since));
            self.counters.acked.fetch_add(self.batch, Ordering::Relaxed);
        } else {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `produce` and returns the JSON summary.
pub fn run_produce(args: &ProduceArgs) -> Result<serde_json::Value, String> {
    let p = &args.producer;
    let backend = broker::resolve_backend(&p.io_backend)?;
    let before = prepare_topic(p, backend)?;
    let set = ProducerSet::start(p, false, args.count)?;
    let counters = set.counters.clone();
    let warmup = if args.count.is_some() { Duration::ZERO } else { Duration::from_millis(args.warmup_ms) };
    let mut cpu = None;
    if warmup.is_zero() {
        cpu = Some(CpuWindow::start(p.pid));
        counters.measuring.store(true, Ordering::SeqCst);
    }
    set.go();
    std::thread::sleep(warmup);
    // Stored messages are counted from the end of the warm-up.
    let before = match before {
        Some(_) if !warmup.is_zero() => Some(topic_offsets(p.broker, &p.topic, p.queues, backend)?),
        before => before,
    };
    let cpu = cpu.unwrap_or_else(|| CpuWindow::start(p.pid));
    let slave_cpu = args.slave_pid.map(|pid| CpuWindow::start(Some(pid)));
    counters.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let duration = Duration::from_secs_f64(args.duration_secs.max(0.0));
    let mut last = (started, 0u64);
    let mut next_print = started + Duration::from_secs(1);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let done = match args.count {
            Some(_) => set.finished(),
            None => started.elapsed() >= duration,
        };
        if Instant::now() >= next_print || done {
            let now = (Instant::now(), counters.acked.load(Ordering::Relaxed));
            let rate = (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64().max(1e-9);
            eprintln!(
                "[{:>4.1}s] {:>9.0} msg/s {:>7.1} MiB/s  errors {}  outstanding {}",
                started.elapsed().as_secs_f64(),
                rate,
                rate * p.message_bytes as f64 / 1_048_576.0,
                counters.failed.load(Ordering::Relaxed),
                counters.outstanding.load(Ordering::Relaxed)
            );
            last = now;
            next_print += Duration::from_secs(1);
        }
        if done {
            break;
        }
    }
    let elapsed = started.elapsed();
    counters.measuring.store(false, Ordering::SeqCst);
    let acked = counters.acked.load(Ordering::SeqCst);
    let cpu = cpu.finish(acked);
    let slave_cpu = slave_cpu.map(|w| w.finish(acked));
    let result = set.stop_and_join()?;
    let stored = match before {
        Some(before) => {
            let after = topic_offsets(p.broker, &p.topic, p.queues, backend)?;
            Some(after.iter().zip(&before).map(|(a, b)| a.saturating_sub(*b)).sum())
        }
        None => None,
    };
    let mut summary = summarize_produce(p, &result, acked, elapsed, stored);
    summary["cpu"] = cpu.to_json();
    print_produce(p, &summary, &result);
    println!("{}", cpu.line());
    if let Some(slave) = slave_cpu {
        summary["cpu_slave"] = slave.to_json();
        let per = slave.broker_us_per_message.map_or("—".to_owned(), |v| format!("{v:.2} µs/msg"));
        println!("cpu: slave {per} ({:.2} CPUs)", slave.broker_cpus().unwrap_or(0.0));
    }
    if let Some(path) = &args.json {
        crate::probe::write_json(path, &summary)?;
    }
    Ok(summary)
}

/// The JSON summary of a producer run.
pub fn summarize_produce(p: &ProducerArgs, result: &ProduceResult, acked: u64, elapsed: Duration, stored: Option<u64>) -> serde_json::Value {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let tps = acked as f64 / secs;
    serde_json::json!({
        "mode": "produce",
        "broker": p.broker.to_string(),
        "connections": p.connections,
        "in_flight": p.in_flight,
        "threads": p.threads,
        "message_bytes": p.message_bytes,
        "topic": p.topic,
        "topics": p.topics,
        "queues": p.queues,
        "send_mode": p.send_mode,
        "batch": p.batch,
        "open_loop": p.open_loop,
        "rate": p.rate,
        "affinity": p.affinity,
        "shard_split": result.shard_split,
        "duration_s": secs,
        "messages_acked": acked,
        "messages_per_s": tps,
        "mib_per_s": tps * p.message_bytes as f64 / 1_048_576.0,
        "messages_stored_by_max_offset": stored,
        "codes": result.codes,
        "latency_us": broker::percentiles_json(&result.histogram),
        "latency_cdf_us": broker::cdf_json(&result.histogram),
    })
}

fn print_produce(p: &ProducerArgs, summary: &serde_json::Value, result: &ProduceResult) {
    let f = |k: &str| summary.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    println!(
        "produce: {:.0} msg/s, {:.1} MiB/s over {:.1} s; {} conns x {} in flight, {} B, batch {}, {}{}, {} topic(s) x {} queues, affinity {} (shard split {:?}); stored (max offsets) {}",
        f("messages_per_s"),
        f("mib_per_s"),
        f("duration_s"),
        p.connections,
        p.in_flight,
        p.message_bytes,
        p.batch,
        p.send_mode,
        if p.open_loop { format!(", open loop {} msg/s", p.rate.unwrap_or(0.0)) } else { String::new() },
        p.topics.max(1),
        p.queues,
        p.affinity,
        result.shard_split,
        summary.get("messages_stored_by_max_offset").and_then(serde_json::Value::as_u64).map_or("not read".to_owned(), |n| n.to_string())
    );
    println!("latency us{}: {}", if p.open_loop { " (from scheduled time)" } else { "" }, broker::percentile_line(&result.histogram));
    println!("responses: {:?}", result.codes);
}
