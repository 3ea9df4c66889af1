//! `route` mode: closed-loop GET_ROUTEINFO_BY_TOPIC requests from `connections` connections
//! spread over `threads` threads (one compio runtime each), each connection keeping
//! `in_flight` requests outstanding. Latency is measured per request, from just before it is
//! queued to its response, into one histogram per thread, merged at the end.
//!
//! With `--register-topics N` the bench first registers N topics as a fake broker (and keeps
//! re-registering every 20 s so the name server does not expire them), so it can run against
//! an empty name server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::backend::{IoBackend, build_runtime};
use ferromq_net::client::Client;
use ferromq_net::codes::request_code;
use hdrhistogram::Histogram;

#[derive(clap::Args, Debug, Clone)]
pub struct RouteArgs {
    /// Name server address.
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv: SocketAddr,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests outstanding per connection.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Client threads (each runs one runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Measured duration, seconds (after a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Register this many topics (`bench-topic-00000`…) as a fake broker before the run; 0 to
    /// query topics that already exist (`--topic`).
    #[arg(long, default_value_t = 1000)]
    register_topics: usize,
    /// Topic to query when `--register-topics 0`.
    #[arg(long, default_value = "TopicTest")]
    topic: String,
    /// Request version ordinal (479 = 5.3.3: standard JSON; below 401: fastjson form).
    #[arg(long, default_value_t = 479)]
    version: i32,
    /// I/O backend of the client: auto, io_uring or epoll.
    #[arg(long, default_value = "auto")]
    io_backend: String,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// Per-request timeout; a timeout counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(args: RouteArgs) -> Result<(), String> {
    let backend: IoBackend = IoBackend::resolve(args.io_backend.parse()?)?;
    let topics: Arc<Vec<String>> = Arc::new(if args.register_topics == 0 {
        vec![args.topic.clone()]
    } else {
        (0..args.register_topics).map(|i| format!("bench-topic-{i:05}")).collect()
    });
    let stop_registering = Arc::new(AtomicBool::new(false));
    let registrar = if args.register_topics > 0 {
        Some(start_registrar(args.namesrv, topics.clone(), backend, stop_registering.clone())?)
    } else {
        None
    };

    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let threads = args.threads.max(1);
    let mut workers = Vec::new();
    for t in 0..threads {
        let connections = (args.connections / threads) + usize::from(t < args.connections % threads);
        let (topics, measuring, stop, completed, errors) =
            (topics.clone(), measuring.clone(), stop.clone(), completed.clone(), errors.clone());
        let args = args.clone();
        workers.push(std::thread::spawn(move || -> Result<Histogram<u64>, String> {
            let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
            runtime.block_on(worker(args, connections, t, topics, measuring, stop, completed, errors))
        }));
    }

    std::thread::sleep(Duration::from_secs(1));
    measuring.store(true, Ordering::SeqCst);
    let start_count = completed.load(Ordering::SeqCst);
    let started = Instant::now();
    let mut last = (started, start_count);
    while started.elapsed() < Duration::from_secs(args.duration_secs) {
        std::thread::sleep(Duration::from_secs(1));
        let now = (Instant::now(), completed.load(Ordering::SeqCst));
        let rate = (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64();
        eprintln!("[{:>3.0}s] {:>10.0} lookups/s  errors {}", started.elapsed().as_secs_f64(), rate, errors.load(Ordering::SeqCst));
        last = now;
    }
    let elapsed = started.elapsed();
    let total = completed.load(Ordering::SeqCst) - start_count;
    stop.store(true, Ordering::SeqCst);
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    for w in workers {
        let h = w.join().map_err(|_| "worker panicked".to_string())??;
        histogram.add(h).map_err(|e| e.to_string())?;
    }
    stop_registering.store(true, Ordering::SeqCst);
    if let Some(r) = registrar {
        let _ = r.join();
    }

    let rate = total as f64 / elapsed.as_secs_f64();
    let pct = |q: f64| histogram.value_at_quantile(q);
    println!(
        "route: {rate:.0} lookups/s over {:.1} s, {} connections x {} in flight, {} threads, {} topics, version {}",
        elapsed.as_secs_f64(), args.connections, args.in_flight, threads, topics.len(), args.version
    );
    println!(
        "latency us: p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {}  (errors {})",
        pct(0.5), pct(0.9), pct(0.99), pct(0.999), pct(0.9999), histogram.max(), errors.load(Ordering::SeqCst)
    );
    if let Some(path) = &args.json {
        let summary = serde_json::json!({
            "mode": "route",
            "namesrv": args.namesrv.to_string(),
            "connections": args.connections,
            "in_flight": args.in_flight,
            "threads": threads,
            "topics": topics.len(),
            "version": args.version,
            "duration_s": elapsed.as_secs_f64(),
            "lookups": total,
            "lookups_per_s": rate,
            "errors": errors.load(Ordering::SeqCst),
            "latency_us": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "p99_9": pct(0.999),
                           "p99_99": pct(0.9999), "max": histogram.max()},
        });
        std::fs::write(path, serde_json::to_vec_pretty(&summary).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    args: RouteArgs,
    connections: usize,
    thread_index: usize,
    topics: Arc<Vec<String>>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    completed: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) -> Result<Histogram<u64>, String> {
    let histogram = std::rc::Rc::new(std::cell::RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let client = Client::connect(args.namesrv, Duration::from_secs(5)).await.map_err(|e| e.to_string())?;
        for lane in 0..args.in_flight.max(1) {
            let (client, topics, measuring, stop, completed, errors, histogram) = (
                client.clone(), topics.clone(), measuring.clone(), stop.clone(), completed.clone(), errors.clone(), histogram.clone(),
            );
            let version = args.version;
            let mut next = thread_index * 7919 + c * 131 + lane;
            tasks.push(compio::runtime::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    next = (next + 1) % topics.len();
                    let mut request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC)
                        .with_ext("topic", &topics[next]);
                    request.version = version;
                    let sent = Instant::now();
                    let ok = matches!(client.invoke(request, REQUEST_TIMEOUT).await, Ok(r) if r.code == 0);
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            let micros = sent.elapsed().as_micros().max(1) as u64;
                            let _ = histogram.borrow_mut().record(micros);
                            completed.fetch_add(1, Ordering::Relaxed);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let histogram = histogram.borrow().clone();
    Ok(histogram)
}

/// A fake broker that registers `topics` now and every 20 s until `stop`.
fn start_registrar(
    namesrv: SocketAddr,
    topics: Arc<Vec<String>>,
    backend: IoBackend,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let table: serde_json::Map<String, serde_json::Value> = topics
        .iter()
        .map(|t| {
            (t.clone(), serde_json::json!({"order": false, "perm": 6, "readQueueNums": 8, "topicFilterType": "SINGLE_TAG",
                "topicName": t, "topicSysFlag": 0, "writeQueueNums": 8}))
        })
        .collect();
    let body = serde_json::json!({"filterServerList": [], "topicConfigSerializeWrapper": {
        "dataVersion": {"counter": 1, "timestamp": 0}, "topicConfigTable": table}});
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let request = RemotingCommand::request(request_code::REGISTER_BROKER)
        .with_ext("brokerName", "bench-broker")
        .with_ext("brokerAddr", "127.0.0.1:10911")
        .with_ext("clusterName", "BenchCluster")
        .with_ext("haServerAddr", "127.0.0.1:10912")
        .with_ext("brokerId", 0)
        .with_body(body);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let handle = std::thread::spawn(move || {
        let runtime = match build_runtime(backend) {
            Ok((runtime, _)) => runtime,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        runtime.block_on(async move {
            let client = match Client::connect(namesrv, Duration::from_secs(5)).await {
                Ok(client) => client,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot connect to {namesrv}: {e}")));
                    return;
                }
            };
            let mut first = true;
            while !stop.load(Ordering::Relaxed) {
                let result = match client.invoke(request.clone(), REQUEST_TIMEOUT).await {
                    Ok(r) if r.code == 0 => Ok(()),
                    Ok(r) => Err(format!("REGISTER_BROKER answered {}: {:?}", r.code, r.remark)),
                    Err(e) => Err(e.to_string()),
                };
                if first {
                    let _ = ready_tx.send(result);
                    first = false;
                }
                for _ in 0..200 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    compio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    });
    ready_rx.recv().map_err(|_| "registrar thread ended".to_string())??;
    Ok(handle)
}
