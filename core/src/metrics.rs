//! The broker's Prometheus endpoint (`metricsExporterType=PROM`): RocketMQ 5's metric names and
//! labels, so that dashboards built for a Java broker work, plus FerroMQ's own (`ferromq_*`).
//!
//! Who owns what: every counter on the request path is a plain per-shard counter owned by its
//! shard thread (`shard/metrics.rs`: messages and bytes in and out, sizes, dead letters,
//! cross-shard hops; `net::metrics`: RPC latency per thread; the store's group-commit
//! distributions). Nothing is shared, locked or atomic on that path.
//!
//! How a scrape travels: the endpoint's own thread (`net::metrics::http`) calls [`render`],
//! which asks the control thread for its figures (`Command::MetricsFigures`: table sizes, client
//! connections, committed offsets), then posts one job to every shard's mailbox (as
//! GET_BROKER_RUNTIME_INFO does); each job copies its shard's counters, the store's figures and
//! the lag of the committed offsets on the queues it owns, and sends the copy back over a
//! channel. The scrape thread sums the copies and encodes the text exposition. Every wait is
//! bounded by [`SCRAPE_TIMEOUT`]; a shard whose mailbox is full fails the scrape (500) rather
//! than queue without bound.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use ferromq_net::metrics::http::{Exporter, ExporterLimits, Render};
use ferromq_net::metrics::{Exposition, Family, Histogram, Labels, RpcLatency, Value, bool_label, labels};
use ferromq_net::codes::response_code;
use ferromq_store::flush_stats::{FlushStats, Log2Histogram};

use crate::clients::heartbeat::ConsumeType;
use crate::config::BrokerConfig;
use crate::control::{Command, ControlFigures, ControlHandle};
use crate::handlers::admin::ReplicationSnapshot;
use crate::meta::topics::{RETRY_GROUP_TOPIC_PREFIX, SYSTEM_TOPIC_PREFIX};
use crate::shard::ShardCtx;
use crate::shard::executor::ShardJob;
use crate::shard::metrics::{MessageType, MetricsSnapshot};
use crate::shard::router::Router;

/// How long a scrape waits for the control thread and every shard, in all. Prometheus's
/// default scrape timeout is 10 s.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// `ferromq_flush_batch_bytes` bucket bounds: 512 B to 64 MiB, powers of two (the store records
/// per power of two, so these are exact).
const FLUSH_BATCH_BOUNDS_BYTES: &[f64] = &[
    512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16_384.0, 32_768.0, 65_536.0, 131_072.0, 262_144.0, 524_288.0, 1_048_576.0,
    2_097_152.0, 4_194_304.0, 8_388_608.0, 16_777_216.0, 33_554_432.0, 67_108_864.0,
];
/// The power of two of the first bound above.
const FLUSH_BATCH_FIRST_POWER: usize = 9;

/// `ferromq_fdatasync_seconds` bucket bounds: 2^4 µs (16 µs) to 2^21 µs (~2.1 s).
const FDATASYNC_BOUNDS_SECONDS: &[f64] = &[
    0.000_016, 0.000_032, 0.000_064, 0.000_128, 0.000_256, 0.000_512, 0.001_024, 0.002_048, 0.004_096, 0.008_192,
    0.016_384, 0.032_768, 0.065_536, 0.131_072, 0.262_144, 0.524_288, 1.048_576, 2.097_152,
];
const FDATASYNC_FIRST_POWER: usize = 4;

/// Starts the endpoint on `addr` (`metricsPromExporterHost:metricsPromExporterPort`).
pub fn start(addr: SocketAddr, config: Arc<BrokerConfig>, control: Arc<ControlHandle>, router: Router<ShardCtx>) -> std::io::Result<Exporter> {
    let common = common_labels(&config).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("metricsLabel: {e}")))?;
    let scraper = Scraper { store_root: config.store.root_dir.clone(), common, control, router };
    let render: Render = Arc::new(move || scraper.render());
    Exporter::start(addr, ExporterLimits::default(), render).map_err(|e| std::io::Error::new(e.kind(), format!("metricsPromExporterHost / metricsPromExporterPort: {e}")))
}

/// Java's labels on every series: `cluster`, `node_type`, `node_id` (the broker name), then
/// `metricsLabel`'s.
fn common_labels(config: &BrokerConfig) -> Result<Labels, String> {
    let mut common = labels([
        ("cluster", Cow::Owned(config.broker.cluster_name.clone())),
        ("node_type", Cow::Borrowed("broker")),
        ("node_id", Cow::Owned(config.broker.name.clone())),
    ]);
    for (name, value) in config.metrics_labels()? {
        common.push((Cow::Owned(name), Cow::Owned(value)));
    }
    Ok(common)
}

/// What a scrape needs; shared by the endpoint's threads.
struct Scraper {
    store_root: PathBuf,
    common: Labels,
    control: Arc<ControlHandle>,
    router: Router<ShardCtx>,
}

/// What a scrape's job copies on one shard.
#[derive(Debug, Default)]
struct ShardScrape {
    counters: MetricsSnapshot,
    rpc: RpcLatency,
    flush: FlushStats,
    flush_behind_bytes: u64,
    dispatch_behind_bytes: u64,
    replication: ReplicationSnapshot,
    /// (group, topic) → messages not consumed yet, over this shard's queues.
    lag: HashMap<(String, String), u64>,
}

impl ShardScrape {
    fn of(ctx: &ShardCtx, offsets: &ControlFigures) -> ShardScrape {
        let store = &ctx.store;
        let write = store.write_offset().0;
        let mut lag: HashMap<(String, String), u64> = HashMap::new();
        for (group, topic, queues) in &offsets.offsets {
            let mut behind = 0u64;
            let mut owned = false;
            for &(queue, offset) in queues {
                if ctx.owner(topic, queue) != ctx.id {
                    continue;
                }
                owned = true;
                let (_, max) = store.queue_offsets(topic, queue);
                behind += max.0.saturating_sub(u64::try_from(offset).unwrap_or(0));
            }
            if owned {
                *lag.entry((group.clone(), topic.clone())).or_insert(0) += behind;
            }
        }
        ShardScrape {
            counters: ctx.metrics.snapshot(),
            rpc: ferromq_net::metrics::rpc_latency_snapshot(),
            flush: store.flush_stats(),
            flush_behind_bytes: write.saturating_sub(store.durable_offset().0),
            dispatch_behind_bytes: write.saturating_sub(store.dispatched_offset().0),
            replication: ReplicationSnapshot::of(ctx),
            lag,
        }
    }
}

impl Scraper {
    fn render(&self) -> Result<String, String> {
        let deadline = Instant::now() + SCRAPE_TIMEOUT;
        let control = self.control.clone();
        let figures = wait_until(async move { control.call(|reply| Command::MetricsFigures { reply }).await }, deadline)
            .ok_or("the control thread did not answer in time")?
            .map_err(|e| e.to_string())?;
        let figures = Arc::new(figures);
        let shard_count = self.router.shard_count();
        let (tx, rx) = std::sync::mpsc::channel::<(u16, ShardScrape)>();
        for shard in 0..shard_count {
            let (tx, figures) = (tx.clone(), figures.clone());
            let job: ShardJob<ShardCtx> = Box::new(move |ctx: Rc<ShardCtx>, _slot| {
                Box::pin(async move {
                    let _ = tx.send((shard, ShardScrape::of(&ctx, &figures)));
                })
            });
            self.router.post(shard, job).map_err(|e| format!("cannot gather shard {shard}'s figures: {e}"))?;
        }
        drop(tx);
        let mut shards: Vec<(u16, ShardScrape)> = Vec::with_capacity(usize::from(shard_count));
        while shards.len() < usize::from(shard_count) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(scrape) => shards.push(scrape),
                Err(_) => return Err(format!("{} of {shard_count} shards answered in time", shards.len())),
            }
        }
        shards.sort_by_key(|(shard, _)| *shard);
        let storage_used = ferromq_store::io::compio_fs::disk_used_bytes(&self.store_root).ok();
        let permission = self.control.view().broker_permission;
        exposition(&figures, &shards, permission, storage_used).encode(self.common.clone()).map_err(|e| format!("cannot encode the metrics: {e}"))
    }
}

/// Whether `topic` is a system topic (Java's `TopicValidator.isSystemTopic`).
fn is_system_topic(figures: &ControlFigures, topic: &str) -> bool {
    figures.system_topics.contains(topic) || topic.starts_with(SYSTEM_TOPIC_PREFIX)
}

/// Java's `BrokerMetricsManager.isSystemGroup`: the `CID_RMQ_SYS_` prefix, any case.
fn is_system_group(group: &str) -> bool {
    const PREFIX: &str = "CID_RMQ_SYS_";
    group.get(..PREFIX.len()).is_some_and(|head| head.eq_ignore_ascii_case(PREFIX))
}

fn text(value: &str) -> Cow<'static, str> {
    Cow::Owned(value.to_owned())
}

/// Every family of one scrape, from the control plane's figures and each shard's copy.
fn exposition(figures: &ControlFigures, shards: &[(u16, ShardScrape)], permission: i32, storage_used: Option<u64>) -> Exposition {
    let mut sum = MetricsSnapshot::default();
    let mut rpc = RpcLatency::default();
    let mut lag: HashMap<(String, String), u64> = HashMap::new();
    for (_, shard) in shards {
        sum.merge(&shard.counters);
        rpc.merge(&shard.rpc);
        for (key, behind) in &shard.lag {
            *lag.entry(key.clone()).or_insert(0) += behind;
        }
    }
    let mut out = Exposition::default();
    let no_labels = Labels::new;
    out.push(Family::new("rocketmq_broker_permission", "Broker permission").with(no_labels(), Value::Gauge(i64::from(permission))));
    out.push(Family::new("rocketmq_topic_number", "Active topic number").with(no_labels(), Value::Gauge(figures.topics as i64)));
    out.push(Family::new("rocketmq_consumer_group_number", "Active subscription group number").with(no_labels(), Value::Gauge(figures.groups as i64)));

    // Messages in: topic, message_type, is_system.
    let mut messages_in = Family::new("rocketmq_messages_in_total", "Total number of incoming messages");
    let mut throughput_in = Family::new("rocketmq_throughput_in_total", "Total traffic of incoming messages");
    let mut message_size = Family::new("rocketmq_message_size", "Incoming messages size");
    let mut topics: Vec<&String> = sum.messages_in.keys().collect();
    topics.sort();
    for topic in topics {
        let Some(kinds) = sum.messages_in.get(topic) else { continue };
        for (kind, counters) in MessageType::ALL.iter().zip(kinds) {
            let Some(counters) = counters else { continue };
            let labels = labels([
                ("topic", text(topic)),
                ("message_type", Cow::Borrowed(kind.label())),
                ("is_system", bool_label(is_system_topic(figures, topic))),
            ]);
            messages_in.push(labels.clone(), Value::Counter(counters.messages));
            throughput_in.push(labels.clone(), Value::Counter(counters.bytes));
            message_size.push(labels, Value::Histogram(counters.size.clone()));
        }
    }
    out.push(messages_in);
    out.push(throughput_in);
    out.push(message_size);

    // Messages out: topic, consumer_group, is_system.
    let mut messages_out = Family::new("rocketmq_messages_out_total", "Total number of outgoing messages");
    let mut throughput_out = Family::new("rocketmq_throughput_out_total", "Total traffic of outgoing messages");
    let mut pairs: Vec<(&String, &String)> = sum.messages_out.iter().flat_map(|(topic, groups)| groups.keys().map(move |group| (topic, group))).collect();
    pairs.sort();
    for (topic, group) in pairs {
        let Some(counters) = sum.messages_out.get(topic).and_then(|groups| groups.get(group)) else { continue };
        // Java: isSystemTopic(topic) || isSysConsumerGroup(group) (case-sensitive prefix).
        let system = is_system_topic(figures, topic) || group.starts_with("CID_RMQ_SYS_");
        let labels = labels([("topic", text(topic)), ("consumer_group", text(group)), ("is_system", bool_label(system))]);
        messages_out.push(labels.clone(), Value::Counter(counters.messages));
        throughput_out.push(labels, Value::Counter(counters.bytes));
    }
    out.push(messages_out);
    out.push(throughput_out);

    let mut dlq = Family::new("rocketmq_send_to_dlq_messages_total", "Consumer send to DLQ messages");
    let mut pairs: Vec<(&String, &String)> = sum.send_to_dlq.iter().flat_map(|(group, topics)| topics.keys().map(move |topic| (group, topic))).collect();
    pairs.sort();
    for (group, topic) in pairs {
        let Some(count) = sum.send_to_dlq.get(group).and_then(|topics| topics.get(topic)) else { continue };
        let system = is_system_topic(figures, topic) || is_system_group(group);
        dlq.push(labels([("consumer_group", text(group)), ("topic", text(topic)), ("is_system", bool_label(system))]), Value::Counter(*count));
    }
    out.push(dlq);

    let mut producers = Family::new("rocketmq_producer_connections", "Producer connections");
    for ((language, version), count) in &figures.producer_connections {
        producers.push(client_labels(None, language, *version), Value::Gauge(*count as i64));
    }
    out.push(producers);
    let mut consumers = Family::new("rocketmq_consumer_connections", "Consumer connections");
    for ((group, language, version, consume_type), count) in &figures.consumer_connections {
        let mut labels = client_labels(Some(group), language, *version);
        labels.push((Cow::Borrowed("consume_mode"), Cow::Borrowed(consume_mode(*consume_type))));
        labels.push((Cow::Borrowed("is_system"), bool_label(is_system_group(group))));
        consumers.push(labels, Value::Gauge(*count as i64));
    }
    out.push(consumers);

    let mut lag_family = Family::new("rocketmq_consumer_lag_messages", "Consumer lag messages");
    let mut keys: Vec<&(String, String)> = lag.keys().collect();
    keys.sort();
    for key in keys {
        let (group, topic) = key;
        let behind = lag.get(key).copied().unwrap_or(0);
        let labels = labels([
            ("consumer_group", text(group)),
            ("topic", text(topic)),
            ("is_retry", bool_label(topic.starts_with(RETRY_GROUP_TOPIC_PREFIX))),
            ("is_system", bool_label(is_system_topic(figures, topic) || is_system_group(group))),
        ]);
        lag_family.push(labels, Value::Gauge(i64::try_from(behind).unwrap_or(i64::MAX)));
    }
    out.push(lag_family);

    // The store: Java's labels storage_type / storage_medium.
    let storage = || labels([("storage_type", Cow::Borrowed("local")), ("storage_medium", Cow::Borrowed("disk"))]);
    let mut size = Family::new("rocketmq_storage_size", "Broker storage size in bytes (used space of the file system holding storePathRootDir)");
    if let Some(used) = storage_used {
        size.push(storage(), Value::Gauge(i64::try_from(used).unwrap_or(i64::MAX)));
    }
    out.push(size);
    let flush_behind: u64 = shards.iter().map(|(_, s)| s.flush_behind_bytes).sum();
    let dispatch_behind: u64 = shards.iter().map(|(_, s)| s.dispatch_behind_bytes).sum();
    out.push(Family::new("rocketmq_storage_flush_behind_bytes", "Commit-log bytes written and not yet durable, over all shards").with(storage(), Value::Gauge(i64::try_from(flush_behind).unwrap_or(i64::MAX))));
    out.push(Family::new("rocketmq_storage_dispatch_behind_bytes", "Commit-log bytes not yet dispatched to consume queues, over all shards").with(storage(), Value::Gauge(i64::try_from(dispatch_behind).unwrap_or(i64::MAX))));

    for family in rpc.families() {
        out.push(family);
    }

    // FerroMQ's own, per shard.
    let mut batch = Family::new("ferromq_flush_batch_bytes", "Commit-log bytes made durable by each fdatasync (group-commit batch), per shard");
    let mut sync = Family::new("ferromq_fdatasync_seconds", "Duration of each commit-log fdatasync, per shard");
    let mut hops = Family::new("ferromq_cross_shard_jobs_total", "Requests this shard handed to the shard owning their queue");
    let mut busy = Family::new("ferromq_system_busy_answers_total", "Requests answered SYSTEM_BUSY (a full mailbox or in-flight limit), per shard and request code");
    let mut repl_bytes = Family::new("ferromq_replication_lag_bytes", "Master: bytes the slowest slave is behind; slave: bytes behind its master, per shard");
    let mut repl_ms = Family::new("ferromq_replication_lag_milliseconds", "How long the replication stream has been behind, per shard");
    let mut repl_streams = Family::new("ferromq_replication_streams", "Connected replication streams, per shard");
    for (shard, scrape) in shards {
        let shard_label = || labels([("shard", Cow::Owned(shard.to_string()))]);
        let bytes = &scrape.flush.sync_bytes;
        let micros = &scrape.flush.sync_micros;
        if let Some(h) = log2_histogram(bytes, FLUSH_BATCH_BOUNDS_BYTES, FLUSH_BATCH_FIRST_POWER, bytes.sum as f64) {
            batch.push(shard_label(), Value::Histogram(h));
        }
        if let Some(h) = log2_histogram(micros, FDATASYNC_BOUNDS_SECONDS, FDATASYNC_FIRST_POWER, micros.sum as f64 / 1e6) {
            sync.push(shard_label(), Value::Histogram(h));
        }
        hops.push(shard_label(), Value::Counter(scrape.counters.cross_shard_jobs));
        let mut by_code: Vec<(i32, u64)> = scrape.rpc.answers_with(response_code::SYSTEM_BUSY).into_iter().collect();
        by_code.sort_unstable();
        for (code, count) in by_code {
            let mut labels = shard_label();
            labels.push((Cow::Borrowed("request_code"), ferromq_net::metrics::code_label(ferromq_net::metrics::request_code_name(code), code)));
            busy.push(labels, Value::Counter(count));
        }
        let r = scrape.replication;
        repl_bytes.push(shard_label(), Value::Gauge(i64::try_from(r.lag_bytes).unwrap_or(i64::MAX)));
        repl_ms.push(shard_label(), Value::Gauge(i64::try_from(r.lag_ms).unwrap_or(i64::MAX)));
        repl_streams.push(shard_label(), Value::Gauge(i64::try_from(r.streams).unwrap_or(i64::MAX)));
    }
    for family in [batch, sync, hops, busy, repl_bytes, repl_ms, repl_streams] {
        out.push(family);
    }
    out.push(
        Family::new("ferromq_metrics_dropped_observations_total", "Observations not recorded: their label set was new and the shard already held metricsOtelCardinalityLimit")
            .with(no_labels(), Value::Counter(sum.dropped)),
    );
    out
}

/// `language`, `version` (Java's lower-cased names) and `protocol_type`, after `consumer_group`
/// for consumers.
fn client_labels(group: Option<&String>, language: &str, version: i32) -> Labels {
    let mut out = Labels::new();
    if let Some(group) = group {
        out.push((Cow::Borrowed("consumer_group"), text(group)));
    }
    out.push((Cow::Borrowed("language"), Cow::Owned(language.to_ascii_lowercase())));
    let version = ferromq_net::metrics::code_label(ferromq_net::metrics::version_name(version), version);
    out.push((Cow::Borrowed("version"), version));
    out.push((Cow::Borrowed("protocol_type"), Cow::Borrowed(ferromq_net::metrics::PROTOCOL_TYPE_REMOTING)));
    out
}

/// Java's `ConsumeType.getTypeCN()`, lower-cased.
fn consume_mode(consume_type: ConsumeType) -> &'static str {
    match consume_type {
        ConsumeType::ConsumeActively => "pull",
        ConsumeType::ConsumePassively => "push",
        ConsumeType::ConsumePop => "pop",
    }
}

/// A store's power-of-two histogram with the bounds `2^first_power ..` exposed (`bounds`, each
/// the next power of two); what lies below the first bound is counted in it, what lies above
/// the last in `+Inf`. `None` before the first observation.
fn log2_histogram(source: &Log2Histogram, bounds: &'static [f64], first_power: usize, sum: f64) -> Option<Histogram> {
    if source.count == 0 {
        return None;
    }
    let mut counts = vec![0u64; bounds.len() + 1];
    for (power, count) in source.counts.iter().enumerate() {
        let index = power.saturating_sub(first_power).min(bounds.len());
        if let Some(slot) = counts.get_mut(index) {
            *slot += count;
        }
    }
    Histogram::from_parts(bounds, counts, sum)
}

/// Wakes the scrape thread parked in [`wait_until`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` on this (plain, non-runtime) thread until it completes or `deadline` passes:
/// the scrape thread's way to await a control-plane answer.
fn wait_until<F: Future>(future: F, deadline: Instant) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::park_timeout(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::metrics::ShardMetrics;

    /// Figures naming `names` as system topics.
    fn figures_with_system_topics(names: &[&str]) -> ControlFigures {
        ControlFigures { system_topics: names.iter().map(|n| (*n).to_owned()).collect(), ..ControlFigures::default() }
    }

    fn scrape_of(metrics: &ShardMetrics) -> ShardScrape {
        ShardScrape { counters: metrics.snapshot(), ..ShardScrape::default() }
    }

    #[test]
    fn shards_are_summed_into_javas_families_and_labels() {
        let (a, b) = (ShardMetrics::new(true, 100), ShardMetrics::new(true, 100));
        a.count_in("T", MessageType::Normal, 3, 300);
        b.count_in("T", MessageType::Normal, 2, 4000);
        b.count_in("TBW102", MessageType::Delay, 1, 10);
        a.count_out("T", "g", 4, 400);
        b.count_out("T", "g", 1, 100);
        b.count_out("T", "CID_RMQ_SYS_x", 1, 100);
        a.count_dlq("g", "T");
        a.count_cross_shard_job();
        let mut figures = figures_with_system_topics(&["TBW102"]);
        figures.topics = 7;
        figures.groups = 3;
        figures.producer_connections.insert(("JAVA".to_owned(), 413), 2);
        figures.consumer_connections.insert(("g".to_owned(), "RUST".to_owned(), 100_000, ConsumeType::ConsumePassively), 1);
        let mut sa = scrape_of(&a);
        sa.lag.insert(("g".to_owned(), "T".to_owned()), 5);
        sa.flush.sync_bytes.record(4096);
        sa.flush.sync_micros.record(1500);
        let mut sb = scrape_of(&b);
        sb.lag.insert(("g".to_owned(), "T".to_owned()), 2);
        sb.lag.insert(("g".to_owned(), "%RETRY%g".to_owned()), 1);
        sb.dispatch_behind_bytes = 10;
        sa.dispatch_behind_bytes = 5;
        let text = exposition(&figures, &[(0, sa), (1, sb)], 6, Some(12_345)).encode(Labels::new()).unwrap();
        for line in [
            "rocketmq_broker_permission 6",
            "rocketmq_topic_number 7",
            "rocketmq_consumer_group_number 3",
            "rocketmq_messages_in_total{topic=\"T\",message_type=\"normal\",is_system=\"false\"} 5",
            "rocketmq_throughput_in_total{topic=\"T\",message_type=\"normal\",is_system=\"false\"} 4300",
            "rocketmq_messages_in_total{topic=\"TBW102\",message_type=\"delay\",is_system=\"true\"} 1",
            "rocketmq_message_size_count{topic=\"T\",message_type=\"normal\",is_system=\"false\"} 2",
            "rocketmq_message_size_bucket{topic=\"T\",message_type=\"normal\",is_system=\"false\",le=\"1024\"} 1",
            "rocketmq_messages_out_total{topic=\"T\",consumer_group=\"g\",is_system=\"false\"} 5",
            "rocketmq_messages_out_total{topic=\"T\",consumer_group=\"CID_RMQ_SYS_x\",is_system=\"true\"} 1",
            "rocketmq_throughput_out_total{topic=\"T\",consumer_group=\"g\",is_system=\"false\"} 500",
            "rocketmq_send_to_dlq_messages_total{consumer_group=\"g\",topic=\"T\",is_system=\"false\"} 1",
            "rocketmq_producer_connections{language=\"java\",version=\"v5_0_0\",protocol_type=\"remoting\"} 2",
            "rocketmq_consumer_connections{consumer_group=\"g\",language=\"rust\",version=\"higher_version\",protocol_type=\"remoting\",consume_mode=\"push\",is_system=\"false\"} 1",
            "rocketmq_consumer_lag_messages{consumer_group=\"g\",topic=\"T\",is_retry=\"false\",is_system=\"false\"} 7",
            "rocketmq_consumer_lag_messages{consumer_group=\"g\",topic=\"%RETRY%g\",is_retry=\"true\",is_system=\"false\"} 1",
            "rocketmq_storage_size{storage_type=\"local\",storage_medium=\"disk\"} 12345",
            "rocketmq_storage_dispatch_behind_bytes{storage_type=\"local\",storage_medium=\"disk\"} 15",
            "ferromq_cross_shard_jobs_total{shard=\"0\"} 1",
            "ferromq_cross_shard_jobs_total{shard=\"1\"} 0",
            "ferromq_flush_batch_bytes_bucket{shard=\"0\",le=\"4096\"} 1",
            "ferromq_flush_batch_bytes_bucket{shard=\"0\",le=\"2048\"} 0",
            "ferromq_fdatasync_seconds_bucket{shard=\"0\",le=\"0.002048\"} 1",
            "ferromq_fdatasync_seconds_bucket{shard=\"0\",le=\"0.001024\"} 0",
            "ferromq_metrics_dropped_observations_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("ferromq_flush_batch_bytes_count{shard=\"1\"}"), "no histogram before the first fdatasync");
    }

    #[test]
    fn log2_buckets_fold_into_the_exposed_bounds() {
        let mut source = Log2Histogram::default();
        for v in [1, 300, 512, 513, 70_000_000, 1 << 40] {
            source.record(v);
        }
        let h = log2_histogram(&source, FLUSH_BATCH_BOUNDS_BYTES, FLUSH_BATCH_FIRST_POWER, 0.0).unwrap();
        assert_eq!(h.count(), 6);
        let text = {
            let mut e = Exposition::default();
            e.push(Family::new("x", "x").with(Labels::new(), Value::Histogram(h)));
            e.encode(Labels::new()).unwrap()
        };
        assert!(text.contains("x_bucket{le=\"512\"} 3\n"), "1, 300 and 512 are ≤ 512:\n{text}");
        assert!(text.contains("x_bucket{le=\"1024\"} 4\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"6.7108864e+07\"} 4\n"), "{text}");
        assert!(text.contains("x_bucket{le=\"+Inf\"} 6\n"), "{text}");
    }

    #[test]
    fn system_groups_are_javas_prefix_in_any_case() {
        assert!(is_system_group("CID_RMQ_SYS_TRANS"));
        assert!(is_system_group("cid_rmq_sys_x"));
        assert!(!is_system_group("CID_RMQ"));
        assert!(!is_system_group("g"));
    }

    #[test]
    fn a_future_is_awaited_on_a_plain_thread_until_its_deadline() {
        let (tx, rx) = futures_channel::oneshot::channel::<u32>();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let _ = tx.send(7);
        });
        assert_eq!(wait_until(rx, Instant::now() + Duration::from_secs(5)), Some(Ok(7)));
        sender.join().unwrap();
        let (_tx, rx) = futures_channel::oneshot::channel::<u32>();
        assert_eq!(wait_until(rx, Instant::now() + Duration::from_millis(20)), None);
    }
}
