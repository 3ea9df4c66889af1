//! What the end-to-end tests that drive a real `mqbroker` through the third-party
//! `rocketmq-client-rust` 1.0.0 share: the client side of a test ([`Clients`]: a client runtime
//! with deep lane queues, and its producers and push consumers), what a listener saw
//! ([`Delivery`], [`Seen`]), bounded waits that fail with the broker's log ([`wait_for`],
//! [`route_into_consumer`], [`create_topic`], [`bounded_shutdown`]), a SIGKILL and restart that
//! keeps the killed process's log for a failure ([`kill_9_and_restart`]), and single requests over
//! the raw remoting protocol ([`raw_request`]).
//!
//! Nothing here is global to the test process: every test starts its own broker (own ports,
//! own store) and its own [`Clients`], and names its topics and groups with [`unique`], so the
//! tests of one binary run in parallel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_tests::BrokerProcess;
use rocketmq_client_rust::{
    ClientConfig, ClientResult, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQProducer,
    DefaultMQPushConsumer, MQClientException, MQPushConsumer, MessageListenerConcurrently, MessageSelector, TelemetryHandle, TransactionListener,
    TransactionMQProducer,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::{SendResult, SendStatus};
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

/// The broker's answer inside a client error: the response code and remark of the
/// `MQClientException` the client builds from an error response (its `Display` redacts them).
pub fn broker_answer(error: &rocketmq_client_rust::ClientError) -> Option<(i32, String)> {
    error.source_ref::<MQClientException>().map(|e| (e.response_code(), e.error_message().unwrap_or_default().to_owned()))
}

/// RPC timeout of every send, ms.
pub const SEND_TIMEOUT_MS: u64 = 10_000;

/// How much earlier than its due time a test may see something happen (a delayed message
/// arrive, a half message be checked): the broker's timestamps are whole milliseconds of a wall
/// clock (its own, or the producer's born timestamp), the tests measure with a monotonic clock.
pub const EARLY_TOLERANCE: Duration = Duration::from_millis(100);

/// The user property the delay and transaction tests' messages carry (`case of <key>`).
pub const CASE_PROP: &str = "case";

// ---- names, logs, waits -------------------------------------------------------------------------

/// A name unique to this run (group and topic names; a broadcasting consumer's local offset file
/// is named by its group, so a rerun must not find an old one). The counter keeps two names asked
/// for in the same nanosecond by parallel tests of one process apart.
pub fn unique(base: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{base}_{}_{nanos}_{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The last lines of the broker's log, for failure messages.
pub fn log_tail(broker: &BrokerProcess) -> String {
    let log = broker.process.log();
    let skip = log.len().saturating_sub(300);
    log[skip..].join("\n")
}

/// Polls `done` every 50 ms until it holds, saying what it still waits for every 5 s; panics
/// after `limit` with `what()` and the log.
pub async fn wait_for(broker: &BrokerProcess, limit: Duration, mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    let mut next_report = Instant::now() + Duration::from_secs(5);
    while !done() {
        if Instant::now() > next_report {
            eprintln!("still waiting: {}", what());
            next_report += Duration::from_secs(5);
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?}: {}\nbroker log (tail):\n{}", what(), log_tail(broker));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Awaits a client's `shutdown()` (a consumer persists its offsets and unregisters; a producer
/// unregisters), bounded: panics with `what` and the log after 20 s.
pub async fn bounded_shutdown(broker: &BrokerProcess, what: &str, shutdown: impl Future<Output = ()>) {
    if tokio::time::timeout(Duration::from_secs(20), shutdown).await.is_err() {
        panic!("{what}: shutdown did not finish in 20 s\nbroker log (tail):\n{}", log_tail(broker));
    }
}

/// Shuts a consumer down cleanly, bounded (see [`bounded_shutdown`]).
pub async fn stop_consumer(broker: &BrokerProcess, consumer: &mut DefaultMQPushConsumer, what: &str) {
    bounded_shutdown(broker, what, consumer.shutdown()).await;
}

/// Prints the log of a broker process that is gone (before a kill) if the test panics later.
struct EarlierLog(Vec<String>);

impl Drop for EarlierLog {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.0.is_empty() {
            eprintln!(
                "======== broker log before the SIGKILL ========\n{}\n======== (end of the killed process's log) ========",
                self.0.join("\n")
            );
        }
    }
}

/// A SIGKILL and a restart on the same store and ports, from [`kill_9_and_restart`]. Keep it
/// until the end of the test: should the test fail, dropping it prints the killed process's log.
pub struct Restarted {
    _earlier_log: EarlierLog,
    /// When the SIGKILL was sent.
    pub killed_at: Instant,
    /// How long the kill and the restart took.
    pub restarted_in: Duration,
}

/// SIGKILL, then a restart on the same store and ports; panics if the restart fails.
pub fn kill_9_and_restart(broker: &mut BrokerProcess) -> Restarted {
    let earlier = EarlierLog(broker.process.log());
    let killed_at = Instant::now();
    if let Err(e) = broker.kill_and_restart() {
        panic!("restart after SIGKILL failed: {e}");
    }
    Restarted { _earlier_log: earlier, killed_at, restarted_in: killed_at.elapsed() }
}

// ---- what a listener saw ------------------------------------------------------------------------

/// Every property of a message, by name.
pub fn props_of<K: std::fmt::Display, V: std::fmt::Display>(pairs: impl Iterator<Item = (K, V)>) -> BTreeMap<String, String> {
    pairs.map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// One delivery, as a consumer's listener saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// When the listener got it.
    pub at: Instant,
    /// The first of its keys.
    pub key: String,
    /// The id the client gives the message (`MessageExt::msg_id`).
    pub msg_id: String,
    /// All its keys (trace messages carry many).
    pub keys: Vec<String>,
    /// The topic the client hands the listener (for `%RETRY%` deliveries the client puts the
    /// `RETRY_TOPIC` back, as Java's does).
    pub topic: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub reconsume_times: i32,
    /// Producer wall clock at the original send (kept through retries and delays), ms.
    pub born_timestamp: i64,
    /// Broker wall clock when this record was appended (for a delayed message: when the delay
    /// service put it into the real topic), ms.
    pub store_timestamp: i64,
    pub sys_flag: i32,
    pub prepared_transaction_offset: i64,
    pub body: Vec<u8>,
    /// Every property: the user's, TAGS and KEYS, and the broker's bookkeeping.
    pub props: BTreeMap<String, String>,
}

impl Delivery {
    pub fn of(message: &MessageExt) -> Delivery {
        let keys: Vec<String> = message.message_inner().keys().unwrap_or_default();
        Delivery {
            at: Instant::now(),
            key: keys.first().cloned().unwrap_or_default(),
            msg_id: message.msg_id().to_string(),
            keys,
            topic: message.topic().to_string(),
            queue_id: message.queue_id(),
            queue_offset: message.queue_offset(),
            reconsume_times: message.reconsume_times(),
            born_timestamp: message.born_timestamp(),
            store_timestamp: message.store_timestamp(),
            sys_flag: message.sys_flag(),
            prepared_transaction_offset: message.prepared_transaction_offset(),
            body: message.body().map(|b| b.to_vec()).unwrap_or_default(),
            props: props_of(message.properties().iter()),
        }
    }

    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str)
    }
}

/// Every delivery, in arrival order (duplicates kept, so the tests can count them).
pub type Seen = Arc<Mutex<Vec<Delivery>>>;

/// The deliveries of `key`, in arrival order.
pub fn deliveries_of(seen: &Seen, key: &str) -> Vec<Delivery> {
    seen.lock().unwrap().iter().filter(|d| d.key == key).cloned().collect()
}

/// How many times each key was delivered, among the deliveries from index `from` on.
pub fn counts_since(seen: &Seen, from: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for d in seen.lock().unwrap().iter().skip(from) {
        *out.entry(d.key.clone()).or_default() += 1;
    }
    out
}

/// How many times each key was delivered.
pub fn counts(seen: &Seen) -> BTreeMap<String, usize> {
    counts_since(seen, 0)
}

/// The keys delivered.
pub fn keys_of(seen: &Seen) -> BTreeSet<String> {
    seen.lock().unwrap().iter().map(|d| d.key.clone()).collect()
}

/// A concurrent listener that records every delivery in its [`Seen`] and fails
/// (RECONSUME_LATER) the batches with a key that starts with `fail_prefix`.
pub struct Record {
    seen: Seen,
    fail_prefix: Option<&'static str>,
}

impl Record {
    pub fn failing(seen: Seen, fail_prefix: &'static str) -> Record {
        Record { seen, fail_prefix: Some(fail_prefix) }
    }
}

impl MessageListenerConcurrently for Record {
    fn consume_message(&self, messages: &[&MessageExt], _: &ConsumeConcurrentlyContext) -> ClientResult<ConsumeConcurrentlyStatus> {
        let got: Vec<Delivery> = messages.iter().map(|m| Delivery::of(m)).collect();
        // The context's delay level stays 0: the broker picks 3 + reconsumeTimes (§9.2 step 6).
        let fail = self.fail_prefix.is_some_and(|prefix| got.iter().any(|d| d.key.starts_with(prefix)));
        self.seen.lock().unwrap().extend(got);
        Ok(if fail { ConsumeConcurrentlyStatus::ReconsumeLater } else { ConsumeConcurrentlyStatus::ConsumeSuccess })
    }
}

/// What a push consumer is built with to hear its messages: a [`Seen`] (recorded by a [`Record`]
/// that fails nothing), a [`Record`], or a test's own listener.
pub trait Listen {
    fn register(self, consumer: &mut DefaultMQPushConsumer);
}

impl Listen for Seen {
    fn register(self, consumer: &mut DefaultMQPushConsumer) {
        consumer.register_message_listener_concurrently(Record { seen: self, fail_prefix: None });
    }
}

impl Listen for Record {
    fn register(self, consumer: &mut DefaultMQPushConsumer) {
        consumer.register_message_listener_concurrently(self);
    }
}

// ---- the client side of a test ------------------------------------------------------------------

/// Whether a client's message trace is on (`ClientConfig::enable_trace`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trace {
    Off,
    On,
}

impl Trace {
    /// The client options: defaults (those the client's builders start from), with the message
    /// trace as asked. `client_config` replaces a builder's whole client configuration, name
    /// server included, so it goes first.
    fn client_config(self) -> ClientConfig {
        let mut config = ClientConfig::default();
        config.set_enable_trace(self == Trace::On);
        config
    }
}

/// What a push consumer subscribes to.
#[derive(Clone, Copy, Debug)]
pub enum Sub<'a> {
    /// A TAG expression (`"*"`: everything).
    Tag(&'a str),
    /// An SQL92 selector (`MessageSelector::by_sql`).
    Sql(&'a str),
}

/// How a push consumer is built; [`Default`]: CLUSTERING, every tag, the client's default
/// `maxReconsumeTimes` and `suspendCurrentQueueTimeMillis`, no trace.
#[derive(Clone, Copy, Debug)]
pub struct ConsumerOptions<'a> {
    pub sub: Sub<'a>,
    /// BROADCASTING rather than CLUSTERING.
    pub broadcasting: bool,
    /// `maxReconsumeTimes`; `None`: the client's default (-1, meaning 16).
    pub max_reconsume_times: Option<i32>,
    /// `suspendCurrentQueueTimeMillis` (orderly listeners: how long a queue waits after
    /// SUSPEND_CURRENT_QUEUE_A_MOMENT); `None`: the client's default (1 000 ms).
    pub suspend_current_queue_time_millis: Option<u64>,
    pub trace: Trace,
}

impl Default for ConsumerOptions<'_> {
    fn default() -> Self {
        ConsumerOptions { sub: Sub::Tag("*"), broadcasting: false, max_reconsume_times: None, suspend_current_queue_time_millis: None, trace: Trace::Off }
    }
}

/// The client side of one test: a client runtime and the name server to use.
///
/// A client runtime holds one client instance per client id, and that instance's
/// CHECK_CLIENT_CONFIG at a consumer's start covers every SQL92 subscription of every consumer it
/// holds: a consumer whose selector the broker refuses is therefore given its own `Clients`, so
/// that it cannot fail the start of the others. Each producer is a client instance of its own,
/// with its own client id.
pub struct Clients {
    owner: RuntimeOwner,
    runtime: Arc<ClientRuntime>,
    namesrv: String,
}

impl Clients {
    pub fn new(broker: &BrokerProcess, name: &'static str) -> Clients {
        Self::with_namesrv(broker.namesrv, name)
    }

    /// [`Clients::new`] for brokers that register with the name server at `namesrv` (a cluster
    /// of several brokers).
    pub fn with_namesrv(namesrv: SocketAddr, name: &'static str) -> Clients {
        // The client logs through `tracing`: `FERROMQ_LOG=warn cargo test ...` shows it.
        if std::env::var_os("FERROMQ_LOG").is_some() {
            ferromq_net::logging::init();
        }
        // The client runs each consume request (and each local transaction and transaction
        // check) as a task of a blocking lane of its runtime; the "metadata-io" lane's default
        // admission queue holds 8 × cores tasks (16 on 2 cores). One pull brings up to 32
        // messages, one consume request each, so under load most requests are refused
        // ("runtime.capacity.exhausted") and the client counts them as consume failures: a
        // BROADCASTING consumer drops them, a CLUSTERING one sends them back to the retry topic
        // (re-delivered: duplicates, or retries the tests cannot explain). Java queues consume
        // requests without bound, so give every lane a deep queue: what is tested is the broker,
        // not this client default.
        let mut config = RuntimeConfig::default();
        for lane in [
            &mut config.blocking_lane_policies.storage_io,
            &mut config.blocking_lane_policies.metadata_io,
            &mut config.blocking_lane_policies.cpu_crypto,
        ] {
            lane.max_queue_depth = lane.max_queue_depth.max(1 << 16);
        }
        let owner = RuntimeOwner::plan(config).expect("runtime config").build().expect("runtime owner");
        let runtime = ClientRuntime::try_new(owner.root_context().component(name), ClientRuntimeConfig::default(), TelemetryHandle::default())
            .expect("client runtime");
        Clients { owner, runtime, namesrv: namesrv.to_string() }
    }

    /// A started producer of `group`.
    pub async fn producer(&self, group: &str, trace: Trace) -> DefaultMQProducer {
        let mut producer = DefaultMQProducer::builder(self.runtime.clone())
            .client_config(trace.client_config())
            .producer_group(group)
            .name_server_addr(self.namesrv.as_str())
            .send_msg_timeout(SEND_TIMEOUT_MS as u32)
            .build();
        producer.start().await.expect("producer start");
        producer
    }

    /// A started transactional producer of `group` that publishes to `topic`. `topics` makes it
    /// look up the route of `topic` as it starts, so that its first heartbeat (1 s after the
    /// start; the client heartbeats only to brokers it has a route to) reaches the broker: the
    /// broker sends checks only to producers that heartbeated.
    pub async fn tx_producer(&self, group: &str, topic: &str, listener: impl TransactionListener + 'static) -> TransactionMQProducer {
        let mut producer = TransactionMQProducer::builder(self.runtime.clone())
            .producer_group(group)
            .name_server_addr(self.namesrv.as_str())
            .send_msg_timeout(SEND_TIMEOUT_MS as u32)
            .topics(vec![topic.to_owned()])
            .transaction_listener(listener)
            .build();
        producer.start().await.expect("transactional producer start");
        producer
    }

    /// A push consumer of `topic` that starts from the first offset of queues its group has no
    /// offset of, built as `options` say, and what its `start` returned (the client's
    /// CHECK_CLIENT_CONFIG runs in `start`, for SQL92 subscriptions of topics it can route).
    pub async fn try_consumer(
        &self,
        group: &str,
        topic: &str,
        listener: impl Listen,
        options: ConsumerOptions<'_>,
    ) -> (DefaultMQPushConsumer, ClientResult<()>) {
        // MessageModel lives in rocketmq-protocol, which the client does not re-export; its
        // serde form is the Java name, so let the builder's parameter type pick the enum.
        let model = serde_json::from_str(if options.broadcasting { "\"BROADCASTING\"" } else { "\"CLUSTERING\"" }).expect("message model");
        let mut builder = DefaultMQPushConsumer::builder(self.runtime.clone())
            .client_config(options.trace.client_config())
            .consumer_group(group)
            .name_server_addr(self.namesrv.as_str())
            .message_model(model)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset);
        if let Some(max) = options.max_reconsume_times {
            builder = builder.max_reconsume_times(max);
        }
        if let Some(millis) = options.suspend_current_queue_time_millis {
            builder = builder.suspend_current_queue_time_millis(millis);
        }
        let mut consumer = builder.build();
        match options.sub {
            Sub::Tag(expression) => consumer.subscribe(topic, expression).await.expect("subscribe"),
            Sub::Sql(selector) => {
                consumer.subscribe_with_selector(topic, Some(MessageSelector::by_sql(selector))).await.expect("subscribe with selector")
            }
        }
        listener.register(&mut consumer);
        let started = consumer.start().await;
        (consumer, started)
    }

    /// [`Clients::try_consumer`], which must start.
    pub async fn consumer(
        &self,
        broker: &BrokerProcess,
        group: &str,
        topic: &str,
        listener: impl Listen,
        options: ConsumerOptions<'_>,
    ) -> DefaultMQPushConsumer {
        let (consumer, started) = self.try_consumer(group, topic, listener, options).await;
        if let Err(e) = started {
            panic!("consumer {group} start: {e} ({e:?})\nbroker log (tail):\n{}", log_tail(broker));
        }
        consumer
    }

    pub async fn finish(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.runtime.shutdown()).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.owner.shutdown_tasks()).await;
        let _ = self.owner.shutdown_background();
    }
}

// ---- topics and routes --------------------------------------------------------------------------

/// Creates `topic` with `queues` queues through the client's admin path (UPDATE_AND_CREATE_TOPIC
/// to the brokers of `TBW102`) and waits until the name server routes all of them.
pub async fn create_topic(broker: &BrokerProcess, producer: &mut DefaultMQProducer, topic: &str, queues: usize) -> Vec<MessageQueue> {
    let deadline = Instant::now() + Duration::from_secs(20);
    // The broker registers with its name server just after it logs that it started: until then
    // the route of TBW102 (the key topic) is unknown.
    while let Err(e) = producer.create_topic("TBW102", topic, queues as i32, HashMap::new()).await {
        assert!(Instant::now() < deadline, "create topic {topic}: {e}\nbroker log (tail):\n{}", log_tail(broker));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        match producer.fetch_publish_message_queues(topic).await {
            Ok(mut mqs) if mqs.len() == queues => {
                mqs.sort_by_key(|mq| mq.queue_id());
                return mqs;
            }
            other => assert!(
                Instant::now() < deadline,
                "topic {topic} not routed with {queues} queues: {other:?}\nbroker log (tail):\n{}",
                log_tail(broker)
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the name server routes `topic` with readable queues and puts that route into
/// `consumer`'s client, then has the consumer rebalance at once; `Err` with the last lookup
/// after `limit`.
///
/// Why: a push consumer looks up the routes of its subscriptions once when it starts and then
/// only every 30 s (`pollNameServerInterval`, at least 10 s), and rebalances every 20 s. A topic
/// the broker creates later (`%RETRY%<group>` on the group's first heartbeat, which comes after
/// that first lookup; `%DLQ%<group>` on the first dead letter; a topic created after the
/// consumer started), or a route the name server of a restarted broker did not have yet, would
/// reach the consumer only that much later. `fetch_subscribe_message_queues` asks the name server
/// and stores the route for every consumer of the client that subscribes the topic; `resume` (on
/// a consumer that is not paused) rebalances it, as Java's `resume()` does.
pub async fn try_route_into_consumer(consumer: &mut DefaultMQPushConsumer, topic: &str, limit: Duration) -> Result<Vec<MessageQueue>, String> {
    let deadline = Instant::now() + limit;
    loop {
        match consumer.fetch_subscribe_message_queues(topic).await {
            Ok(mut mqs) if !mqs.is_empty() => {
                consumer.resume().await;
                mqs.sort_by_key(|mq| mq.queue_id());
                return Ok(mqs);
            }
            other if Instant::now() >= deadline => return Err(format!("{other:?}")),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`try_route_into_consumer`], which must succeed: panics with `why` the topic should be
/// routed, the last lookup and the log.
pub async fn route_into_consumer(
    broker: &BrokerProcess,
    consumer: &mut DefaultMQPushConsumer,
    topic: &str,
    limit: Duration,
    why: &str,
) -> Vec<MessageQueue> {
    match try_route_into_consumer(consumer, topic, limit).await {
        Ok(mqs) => mqs,
        Err(last) => {
            panic!(
                "{topic} is not routed with readable queues after {limit:?} ({why}); last lookup: {last}\nbroker log (tail):\n{}",
                log_tail(broker)
            )
        }
    }
}

// ---- messages -----------------------------------------------------------------------------------

/// A message to `topic` with key `key`, tags `tags` and the user properties `props`.
pub fn message(topic: &str, key: &str, tags: &str, props: &[(&str, &str)], body: &[u8]) -> Message {
    let mut builder = Message::builder().topic(topic).tags(tags).key(key);
    for (name, value) in props {
        builder = builder.raw_property(*name, (*value).to_owned()).expect("user property");
    }
    builder.body_slice(body).build_unchecked()
}

/// A synchronous send that must come back SEND_OK; panics with `what` and the log otherwise.
pub async fn send(broker: &BrokerProcess, producer: &DefaultMQProducer, message: Message, what: &str) -> SendResult {
    match producer.send_with_timeout(message, SEND_TIMEOUT_MS).await {
        Ok(Some(r)) if r.send_status == SendStatus::SendOk => r,
        other => panic!("send {what}: {other:?}\nbroker log (tail):\n{}", log_tail(broker)),
    }
}

// ---- the raw remoting protocol ------------------------------------------------------------------

/// The broker's remoting address, on loopback.
pub fn broker_addr(broker: &BrokerProcess) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], broker.process.addr.port()))
}

/// One request over a connection of its own to the broker (FerroMQ's client, not the third-party
/// one), answered within `timeout`. FerroMQ's client runs on a compio runtime: each request gets
/// a fresh thread with a fresh runtime (of the backend `FERROMQ_IO_BACKEND` picks), joined on
/// tokio's blocking pool so that the test's runtime keeps running.
pub async fn raw_request(broker: &BrokerProcess, request: RemotingCommand, timeout: Duration) -> Result<RemotingCommand, String> {
    let addr = broker_addr(broker);
    tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || -> Result<RemotingCommand, String> {
            let (runtime, _) = ferromq_net::backend::runtime_from_env().map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let client = ferromq_net::client::Client::connect(addr, Duration::from_secs(5)).await.map_err(|e| e.to_string())?;
                let response = client.invoke(request, timeout).await.map_err(|e| e.to_string());
                client.close();
                response
            })
        })
        .join()
        .map_err(|_| "raw request thread panicked".to_owned())?
    })
    .await
    .map_err(|e| format!("raw request task: {e}"))?
}
