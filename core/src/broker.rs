//! The broker: start-up, the control plane shared by the shards, name-server registration,
//! background tasks and shutdown.
//!
//! Threads:
//! - one thread per shard (see [`crate::shard`]): data plane, pinned, one runtime each;
//! - one control thread: registration with every name server (at start, every
//!   `registerNameServerPeriod`, and at once when topics change), consumer-offset flushing
//!   (`flushConsumerOffsetInterval`), client-channel expiry (every 10 s);
//! - with no name server configured, an embedded name server thread on 127.0.0.1:9876.
//!
//! [`Control`] holds the control-plane state (topics, groups, clients, offsets) behind
//! mutexes: handlers take them briefly and never across an `.await`. The data plane (send,
//! pull, flush) touches only shard-local state plus a topic lookup.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferromq_namesrv::{NamesrvConfig, NamesrvHandle};
use ferromq_net::RemotingCommand;
use ferromq_net::backend::{ActiveBackend, IoBackend, build_runtime_on};
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_net::conn::Connection;
use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::{ShardId, Store, TagFilter};
use tracing::{error, info, warn};

use crate::clients::consumers::ConsumerManager;
use crate::clients::heartbeat::HeartbeatData;
use crate::clients::producers::ProducerManager;
use crate::clients::{ChannelId, ClientInfo};
use crate::config::{BrokerConfig, FlushDiskType};
use crate::handlers::BrokerService;
use crate::handlers::locks::{LockTable, MessageQueue};
use crate::meta::groups::SubscriptionGroupTable;
use crate::meta::PersistedTable;
use crate::meta::offsets::ConsumerOffsets;
use crate::meta::topics::{TopicConfig, TopicConfigTable, TopicTableSettings};
use crate::shard::{HeldPulls, Router, ShardCtx, ShardJob};

/// The control-plane files under `<storePathRootDir>/config`, named as the Java broker names them.
const TOPICS_FILE: &str = "topics.json";
const GROUPS_FILE: &str = "subscriptionGroup.json";
const OFFSETS_FILE: &str = "consumerOffset.json";

/// How often clients without a heartbeat are looked for (Java: 10 s).
const CLIENT_SCAN_INTERVAL: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests after closing connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Control-plane state shared by every shard (`Send + Sync`).
pub struct Control {
    pub config: BrokerConfig,
    /// `brokerIP1:listenPort`: the address registered with name servers and in message ids.
    pub broker_addr: String,
    store_host: SocketAddr,
    pub router: Router,
    topics: Mutex<TopicConfigTable>,
    groups: Mutex<SubscriptionGroupTable>,
    consumers: Mutex<ConsumerManager>,
    producers: Mutex<ProducerManager>,
    offsets: Mutex<ConsumerOffsets>,
    /// Orderly consumers' queue locks (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ), in memory only.
    locks: Mutex<LockTable>,
    config_dir: PathBuf,
    /// Wakes the registration task when topics changed (capacity 1: changes coalesce).
    topics_changed: async_channel::Sender<()>,
    pub boot_timestamp_ms: i64,
    pub messages_put: AtomicU64,
}

/// Locks a control-plane mutex; a poisoned lock (a panic elsewhere) still gives the data,
/// which stays consistent because every critical section is a single table operation.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> i64 {
    ferromq_store::store::now_ms()
}

impl Control {
    pub fn broker_name(&self) -> &str {
        &self.config.broker.name
    }
    pub fn cluster_name(&self) -> &str {
        &self.config.broker.cluster_name
    }
    pub fn broker_permission(&self) -> i32 {
        self.config.broker.permission as i32
    }
    pub fn store_host(&self) -> SocketAddr {
        self.store_host
    }
    pub fn max_message_size_bytes(&self) -> usize {
        self.config.store.max_message_size_bytes
    }
    pub fn sync_flush_timeout(&self) -> Duration {
        Duration::from_millis(self.config.flush.sync_flush_timeout_ms)
    }
    pub fn is_sync_flush(&self) -> bool {
        self.config.flush.disk_type == FlushDiskType::SyncFlush
    }

    /// How long a pull may be held: the client's suspension, or the short-polling time when
    /// long polling is off.
    pub fn long_poll_duration(&self, requested: Duration) -> Duration {
        if self.config.consumer.long_polling_enable {
            requested
        } else {
            Duration::from_millis(self.config.consumer.short_polling_time_ms)
        }
    }

    pub fn topic(&self, topic: &str) -> Option<TopicConfig> {
        lock(&self.topics).get(topic).cloned()
    }

    pub fn topic_names(&self) -> Vec<String> {
        lock(&self.topics).iter().map(|t| t.topic_name.clone()).collect()
    }

    /// The topic a send goes to, auto-created from `default_topic` when allowed (§2.1 step 2).
    /// Errors are (response code, remark).
    pub fn topic_for_send(&self, topic: &str, default_topic: &str, queue_nums: u32) -> Result<TopicConfig, (i32, String)> {
        let mut topics = lock(&self.topics);
        if let Some(existing) = topics.get(topic) {
            return Ok(existing.clone());
        }
        let created = if let Some(group) = topic.strip_prefix(crate::meta::topics::RETRY_GROUP_TOPIC_PREFIX) {
            topics.create_retry_topic(group, 1, false)
        } else if default_topic.is_empty() {
            return Err((response_code::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist, apply first please!")));
        } else {
            topics.auto_create(topic, default_topic, queue_nums as i32, 0)
        };
        match created {
            Ok(ensured) => {
                drop(topics);
                info!(topic, queues = ensured.config.write_queue_nums, "topic auto-created");
                self.persist(&self.topics, TOPICS_FILE);
                self.signal_topics_changed();
                Ok(ensured.config)
            }
            Err(e) => Err((response_code::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist, apply first please! ({e})"))),
        }
    }

    /// Creates or updates a topic from an admin request; persists and re-registers.
    pub fn update_topic(&self, config: TopicConfig) -> Result<(), String> {
        let mut topics = lock(&self.topics);
        topics.validate_user_topic(&config.topic_name).map_err(|e| e.to_string())?;
        topics.create_or_update(config).map_err(|e| e.to_string())?;
        drop(topics);
        self.persist(&self.topics, TOPICS_FILE);
        self.signal_topics_changed();
        Ok(())
    }

    /// Deletes a topic's config and its consumer offsets; persists and re-registers.
    pub fn delete_topic(&self, topic: &str) -> bool {
        let mut topics = lock(&self.topics);
        let removed = topics.delete(topic).is_some();
        drop(topics);
        lock(&self.offsets).remove_topic(topic);
        self.persist(&self.topics, TOPICS_FILE);
        self.signal_topics_changed();
        removed
    }

    pub fn topics_wrapper_json(&self) -> Vec<u8> {
        lock(&self.topics).to_wrapper_json()
    }

    /// Writes `table` to `config_dir/file_name` if it changed: snapshot under the lock, write
    /// outside it, and mark it dirty again if the write fails (the next change or offset flush
    /// retries).
    fn persist<T: PersistedTable>(&self, table: &Mutex<T>, file_name: &str) {
        let snapshot = lock(table).snapshot_if_dirty();
        if let Some(bytes) = snapshot {
            let path = self.config_dir.join(file_name);
            if let Err(e) = crate::meta::write_atomic(&path, &bytes) {
                error!("cannot persist {}: {e}", path.display());
                lock(table).mark_dirty();
            }
        }
    }

    fn signal_topics_changed(&self) {
        let _ = self.topics_changed.try_send(());
    }

    pub fn update_subscription_group(&self, body: &[u8]) -> Result<String, String> {
        let mut groups = lock(&self.groups);
        let (name, _changed) = groups.create_or_update_from_json(body).map_err(|e| e.to_string())?;
        drop(groups);
        self.persist(&self.groups, GROUPS_FILE);
        Ok(name)
    }

    // ---- consumer offsets ----------------------------------------------------------------

    pub fn commit_offset(&self, group: &str, topic: &str, queue_id: u32, offset: i64) {
        if let Err(e) = lock(&self.offsets).commit(group, topic, queue_id as i32, offset) {
            warn!(group, topic, queue_id, "offset not committed: {e}");
        }
    }

    pub fn query_offset(&self, group: &str, topic: &str, queue_id: u32) -> Option<i64> {
        lock(&self.offsets).query(group, topic, queue_id as i32)
    }

    pub fn offsets_of(&self, group: &str, topic: &str) -> Vec<(i32, i64)> {
        lock(&self.offsets)
            .queues_of(group, topic)
            .map(|queues| queues.iter().map(|(q, o)| (*q, *o)).collect())
            .unwrap_or_default()
    }

    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        lock(&self.offsets).topics_of_group(group)
    }

    /// Writes `consumerOffset.json` if offsets changed since the last flush.
    pub fn flush_offsets(&self) {
        self.persist(&self.offsets, OFFSETS_FILE);
    }

    // ---- orderly queue locks --------------------------------------------------------------

    /// LOCK_BATCH_MQ: the queues `client_id` holds after trying to lock `queues` (§2.2).
    pub fn try_lock_batch(&self, group: &str, client_id: &str, queues: &[MessageQueue]) -> BTreeSet<MessageQueue> {
        lock(&self.locks).try_lock_batch(group, client_id, queues, now_ms())
    }

    /// UNLOCK_BATCH_MQ: releases the queues `client_id` holds among `queues`.
    pub fn unlock_batch(&self, group: &str, client_id: &str, queues: &[MessageQueue]) {
        lock(&self.locks).unlock_batch(group, client_id, queues);
    }

    // ---- clients -------------------------------------------------------------------------

    /// HEART_BEAT: registers producers and consumers of one connection; creates subscription
    /// groups and retry topics as needed; tells groups whose membership changed.
    pub fn heartbeat(&self, shard: ShardId, conn: &Connection, request: &RemotingCommand, data: HeartbeatData) {
        let channel = ChannelId::new(u16::from(shard.0), conn.id());
        let client = ClientInfo {
            channel,
            client_id: data.client_id.clone(),
            client_addr: conn.peer().to_string(),
            language: request.language.name().to_owned(),
            version: request.version,
            last_update_ms: now_ms(),
        };
        let now = now_ms();
        for group in &data.producer_groups {
            lock(&self.producers).register(group, client.clone(), now);
        }
        let mut to_notify = Vec::new();
        let mut topics_created = false;
        for consumer in &data.consumers {
            let group_ok = match lock(&self.groups).find_or_create(&consumer.group_name) {
                Ok(Some(_)) => true,
                Ok(None) => {
                    warn!(group = %consumer.group_name, "heartbeat for an unknown group (autoCreateSubscriptionGroup is off)");
                    false
                }
                Err(e) => {
                    warn!(group = %consumer.group_name, "heartbeat refused for group: {e}");
                    false
                }
            };
            if !group_ok {
                continue;
            }
            {
                let mut topics = lock(&self.topics);
                let order = consumer.subscriptions.iter().any(|s| topics.is_order(&s.topic));
                if let Ok(ensured) = topics.create_retry_topic(&consumer.group_name, 1, order) {
                    topics_created |= ensured.created;
                }
            }
            let outcome = lock(&self.consumers).register_consumer_data(consumer, client.clone(), data.without_sub, now);
            if outcome.should_notify() && self.config.consumer.notify_consumer_ids_changed_enable {
                to_notify.push(consumer.group_name.clone());
            }
        }
        if topics_created {
            self.persist(&self.topics, TOPICS_FILE);
            self.signal_topics_changed();
        }
        self.persist(&self.groups, GROUPS_FILE);
        for group in to_notify {
            self.notify_consumer_ids_changed(&group);
        }
    }

    pub fn unregister_client(&self, client_id: &str, producer_group: Option<&str>, consumer_group: Option<&str>) {
        if let Some(group) = producer_group.filter(|g| !g.is_empty()) {
            lock(&self.producers).unregister_client(group, client_id);
        }
        if let Some(group) = consumer_group.filter(|g| !g.is_empty()) {
            let changed = lock(&self.consumers).unregister_client(group, client_id);
            if changed {
                self.notify_consumer_ids_changed(group);
            }
        }
    }

    /// A connection closed on `shard`.
    pub fn channel_closed(&self, shard: ShardId, connection: u64) {
        let channel = ChannelId::new(u16::from(shard.0), connection);
        lock(&self.producers).channel_closed(channel);
        let changed = lock(&self.consumers).channel_closed(channel);
        for group in changed {
            self.notify_consumer_ids_changed(&group);
        }
    }

    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        lock(&self.consumers).consumer_ids(group)
    }

    pub fn consumer_connection_list_json(&self, group: &str) -> Option<Vec<u8>> {
        lock(&self.consumers).connection_list_json(group)
    }

    /// The tag filter a pull without an inline subscription uses: the one registered by the
    /// group's heartbeat, `None` when the group has not subscribed the topic.
    pub fn subscription_filter(&self, group: &str, topic: &str) -> Option<TagFilter> {
        let consumers = lock(&self.consumers);
        let subscription = consumers.subscription(group, topic)?;
        if subscription.is_all() || !subscription.is_tag_type() {
            return Some(TagFilter::All);
        }
        Some(TagFilter::Codes(subscription.code_set.iter().copied().collect()))
    }

    /// Sends NOTIFY_CONSUMER_IDS_CHANGED (one-way) to each consumer of `group`, on the shard
    /// that holds its connection.
    pub fn notify_consumer_ids_changed(&self, group: &str) {
        let channels = lock(&self.consumers).channels_to_notify(group);
        for channel in channels {
            let group = group.to_owned();
            let job: ShardJob = Box::new(move |ctx: Rc<ShardCtx>| {
                Box::pin(async move {
                    let conn = ctx.connections.borrow().get(&channel.connection).cloned();
                    if let Some(conn) = conn {
                        let notify = RemotingCommand::request(request_code::NOTIFY_CONSUMER_IDS_CHANGED).with_ext("consumerGroup", &group);
                        let _ = conn.invoke_oneway(notify).await;
                    }
                })
            });
            if let Err(e) = self.router.post(channel.shard, job) {
                warn!(%channel, "cannot notify consumer: {e}");
            }
        }
    }

    /// Drops clients whose heartbeats stopped; their groups are told.
    fn scan_expired_clients(&self) {
        let timeout_ms = self.config.consumer.channel_expired_timeout_ms as i64;
        let now = now_ms();
        let report = lock(&self.consumers).scan_expired(now, timeout_ms);
        lock(&self.producers).scan_expired(now, timeout_ms);
        for group in report.changed_groups {
            self.notify_consumer_ids_changed(&group);
        }
    }

    /// The REGISTER_BROKER request for every name server (§2.6).
    fn register_request(&self) -> RemotingCommand {
        let body = lock(&self.topics).to_register_body_json(self.broker_permission());
        let ha = format!("{}:{}", self.store_host.ip(), self.config.ha_listen_port());
        RemotingCommand::request(request_code::REGISTER_BROKER)
            .with_ext("brokerName", self.broker_name())
            .with_ext("brokerAddr", &self.broker_addr)
            .with_ext("clusterName", self.cluster_name())
            .with_ext("haServerAddr", ha)
            .with_ext("brokerId", self.config.broker.id)
            .with_ext("compressed", false)
            .with_ext("bodyCrc32", ferromq_namesrv::register_body::body_crc32(&body))
            .with_body(body)
    }

    fn unregister_request(&self) -> RemotingCommand {
        RemotingCommand::request(request_code::UNREGISTER_BROKER)
            .with_ext("brokerName", self.broker_name())
            .with_ext("brokerAddr", &self.broker_addr)
            .with_ext("clusterName", self.cluster_name())
            .with_ext("brokerId", self.config.broker.id)
    }

    /// Applies the order-topic table a name server returned (`{"table":{topic: conf}}`).
    fn apply_order_topics(&self, body: &[u8]) {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let Some(table) = value.get("table").and_then(|t| t.as_object()) else {
            return;
        };
        let order: BTreeSet<String> = table.keys().cloned().collect();
        let mut topics = lock(&self.topics);
        if topics.update_order_topics(&order) {
            drop(topics);
            self.persist(&self.topics, TOPICS_FILE);
        }
    }
}

/// A running broker. [`BrokerHandle::shutdown`] stops it cleanly.
pub struct BrokerHandle {
    pub control: Arc<Control>,
    pub listen_addr: SocketAddr,
    pub backend: ActiveBackend,
    shards: Vec<JoinHandle<()>>,
    stop_shards: async_channel::Sender<()>,
    control_thread: Option<JoinHandle<()>>,
    stop_control: async_channel::Sender<()>,
    namesrv: Option<NamesrvHandle>,
}

impl BrokerHandle {
    /// Stops accepting, finishes in-flight work, flushes every store and the consumer
    /// offsets, unregisters from the name servers, and returns once everything has stopped.
    pub fn shutdown(mut self) {
        info!("broker shutting down");
        self.stop_shards.close();
        for shard in self.shards.drain(..) {
            let _ = shard.join();
        }
        self.control.router.close();
        self.control.flush_offsets();
        self.stop_control.close();
        if let Some(thread) = self.control_thread.take() {
            let _ = thread.join();
        }
        if let Some(namesrv) = self.namesrv.take() {
            namesrv.shutdown();
        }
        info!("broker stopped");
    }
}

/// The shard count is pinned by the store: a queue's data lives in its owner shard's log, so
/// changing the count would move queues away from their data. The first start records the
/// count; later starts use the recorded one (and warn if the config asks for another).
fn pin_shard_count(root: &Path, configured: u32) -> io::Result<u32> {
    std::fs::create_dir_all(root)?;
    let path = root.join("ferromq-shards");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let pinned: u32 = text.trim().parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{} is corrupt", path.display())))?;
            if pinned != configured {
                warn!(pinned, configured, "this store was created with {pinned} shards; using {pinned}");
            }
            Ok(pinned)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            crate::meta::write_atomic(&path, configured.to_string().as_bytes()).map_err(|e| io::Error::other(e.to_string()))?;
            Ok(configured)
        }
        Err(e) => Err(e),
    }
}

/// How long the embedded name server retries a port that is still in use at start.
///
/// After a crash the dead process's listening socket can outlive it briefly: io_uring tears a
/// dead process's ring down asynchronously, and the ring's pending accept keeps the socket in
/// LISTEN until then (measured ~40 ms on Linux 6.18; ~5 ms with epoll). A restart right after
/// kill -9 (a supervisor, the kill -9 tests) then failed with "Address already in use" on the
/// name-server port, even with SO_REUSEADDR. The shard listeners use SO_REUSEPORT and are not
/// affected. A port held by another live server still fails the start, after this wait.
const EMBEDDED_NAMESRV_REBIND_PATIENCE: Duration = Duration::from_secs(3);

fn start_embedded_namesrv(namesrv_config: NamesrvConfig) -> io::Result<NamesrvHandle> {
    let deadline = Instant::now() + EMBEDDED_NAMESRV_REBIND_PATIENCE;
    let mut warned = false;
    loop {
        match ferromq_namesrv::start(namesrv_config.clone()) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                if !warned {
                    warn!(addr = %namesrv_config.listen, "embedded name server port still in use (a previous process's socket?); retrying for {EMBEDDED_NAMESRV_REBIND_PATIENCE:?}");
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Starts the broker: embedded name server if none is configured, the shards, the control
/// thread. Returns when every shard serves, or with the error that stopped the start.
pub fn start(mut config: BrokerConfig) -> io::Result<BrokerHandle> {
    config.resolve_namesrv_addr();
    config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    // A SLAVE would otherwise start as a writable broker registered under a slave id, with no
    // master to copy from: clients would see a route without a master and writes nobody
    // replicates. Refuse until `repl/` exists (the file's other keys are still validated above).
    if !config.broker.role.is_master() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "brokerRole={} (brokerName={}, brokerId={}): replication is not supported yet; \
                 run this broker group's master (ASYNC_MASTER or SYNC_MASTER, brokerId=0) only",
                config.broker.role, config.broker.name, config.broker.id
            ),
        ));
    }
    let backend = IoBackend::resolve(config.io.backend).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;

    let embedded = config.uses_embedded_namesrv();
    let namesrv = if embedded {
        let namesrv_config = NamesrvConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), config.namesrv.embedded_port),
            kv_config_path: config.store.root_dir.join("namesrv").join("kvConfig.json"),
            io_backend: backend,
            ..NamesrvConfig::default()
        };
        let handle = start_embedded_namesrv(namesrv_config)?;
        info!(addr = %handle.local_addr(), "embedded name server started (no namesrvAddr configured)");
        Some(handle)
    } else {
        None
    };
    let namesrv_addrs: Vec<String> = match &namesrv {
        Some(handle) => vec![handle.local_addr().to_string()],
        None => config.namesrv.addr.clone(),
    };

    let shard_count = pin_shard_count(&config.store.root_dir, config.effective_shards())?;
    // Bind every shard's listener here, so that "address in use" fails the start at once. With
    // port 0 the first bind picks the port and the other shards join it.
    let mut listen_addr = SocketAddr::new(config.broker.bind_address, config.broker.listen_port);
    let mut listeners = Vec::new();
    for _ in 0..shard_count {
        let listener = ferromq_net::server::bind_reuse_port(listen_addr)?;
        listen_addr = listener.local_addr()?;
        listeners.push(listener);
    }
    let advertised = config.advertised_ip(embedded);
    let store_host = SocketAddr::new(advertised, listen_addr.port());
    let broker_addr = store_host.to_string();

    let mut mailboxes = Vec::new();
    let mut inboxes = Vec::new();
    for _ in 0..shard_count {
        let (tx, rx) = async_channel::bounded::<ShardJob>(config.limits.cross_shard_queue_depth.max(1));
        mailboxes.push(tx);
        inboxes.push(rx);
    }
    let router = Router::new(mailboxes);
    let config_dir = config.store.root_dir.join("config");
    std::fs::create_dir_all(&config_dir)?;
    let settings = TopicTableSettings {
        cluster_name: config.broker.cluster_name.clone(),
        broker_name: config.broker.name.clone(),
        auto_create_topic_enable: config.topics.auto_create_topic_enable,
        default_topic_queue_nums: config.topics.default_topic_queue_nums as i32,
        cluster_topic_enable: config.topics.cluster_topic_enable,
        broker_topic_enable: config.topics.broker_topic_enable,
        trace_topic: None,
    };
    let load_error = |what: &str, e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidData, format!("cannot load {what}: {e}"));
    let topics = TopicConfigTable::load(&config_dir.join(TOPICS_FILE), settings).map_err(|e| load_error(TOPICS_FILE, &e))?;
    let offsets = ConsumerOffsets::load(&config_dir.join(OFFSETS_FILE)).map_err(|e| load_error(OFFSETS_FILE, &e))?;
    let groups = SubscriptionGroupTable::load(&config_dir.join(GROUPS_FILE), config.topics.auto_create_subscription_group)
        .map_err(|e| load_error(GROUPS_FILE, &e))?;
    let (topics_changed, topics_changed_rx) = async_channel::bounded(1);
    let control = Arc::new(Control {
        broker_addr: broker_addr.clone(),
        store_host,
        router: router.clone(),
        topics: Mutex::new(topics),
        groups: Mutex::new(groups),
        consumers: Mutex::new(ConsumerManager::default()),
        producers: Mutex::new(ProducerManager::default()),
        offsets: Mutex::new(offsets),
        locks: Mutex::new(LockTable::default()),
        config_dir,
        topics_changed,
        boot_timestamp_ms: now_ms(),
        messages_put: AtomicU64::new(0),
        config,
    });

    let (stop_shards, shards_stopped) = async_channel::bounded::<()>(1);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<ActiveBackend>>();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut shards = Vec::new();
    for (index, (listener, inbox)) in listeners.into_iter().zip(inboxes).enumerate() {
        let shard = ShardId(index as u8);
        let (control, router, ready_tx, stopped) = (control.clone(), router.clone(), ready_tx.clone(), shards_stopped.clone());
        let cpu = index % cpus;
        let thread = std::thread::Builder::new().name(format!("shard-{index}")).spawn(move || {
            run_shard(shard, cpu, backend, control, router, listener, inbox, stopped, ready_tx);
        })?;
        shards.push(thread);
    }
    drop(ready_tx);
    let mut active = None;
    for _ in 0..shard_count {
        match ready_rx.recv() {
            Ok(Ok(backend)) => active = Some(backend),
            Ok(Err(e)) => {
                stop_shards.close();
                router.close();
                for shard in shards {
                    let _ = shard.join();
                }
                return Err(e);
            }
            Err(_) => return Err(io::Error::other("a shard thread ended during start-up")),
        }
    }
    let backend = active.unwrap_or(ActiveBackend::Epoll);

    let (stop_control, control_stopped) = async_channel::bounded::<()>(1);
    let control_thread = {
        let control = control.clone();
        std::thread::Builder::new().name("control".into()).spawn(move || {
            run_control(control, backend_of(backend), namesrv_addrs, topics_changed_rx, control_stopped);
        })?
    };
    info!(
        local_addr = %listen_addr,
        broker_addr = %broker_addr,
        shards = shard_count,
        %backend,
        flush = control.config.flush.disk_type.as_java_str(),
        "The broker[{}, {}] boot success. serializeType=JSON",
        control.broker_name(),
        broker_addr
    );
    Ok(BrokerHandle {
        control,
        listen_addr,
        backend,
        shards,
        stop_shards,
        control_thread: Some(control_thread),
        stop_control,
        namesrv,
    })
}

fn backend_of(active: ActiveBackend) -> IoBackend {
    match active {
        ActiveBackend::IoUring => IoBackend::IoUring,
        ActiveBackend::Epoll => IoBackend::Epoll,
    }
}

/// One shard's thread: open the store, serve the listener and the mailbox, and on stop flush
/// and close the store.
#[allow(clippy::too_many_arguments)]
fn run_shard(
    shard: ShardId,
    cpu: usize,
    backend: IoBackend,
    control: Arc<Control>,
    router: Router,
    listener: std::net::TcpListener,
    inbox: async_channel::Receiver<ShardJob>,
    stopped: async_channel::Receiver<()>,
    ready: std::sync::mpsc::Sender<io::Result<ActiveBackend>>,
) {
    let (runtime, active) = match build_runtime_on(backend, Some(cpu)) {
        Ok(pair) => pair,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let store_config = control.config.store_config(shard);
        let store = match Store::open(CompioStorage, store_config).await {
            Ok((store, report)) => {
                if report.abnormal {
                    warn!(shard = shard.0, ?report, "store recovered after an unclean stop");
                }
                store
            }
            Err(e) => {
                let _ = ready.send(Err(io::Error::other(format!("shard {}: cannot open the store: {e}", shard.0))));
                return;
            }
        };
        let listener = match compio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        // Held pulls wake when their queue's new entries are visible (dispatched), not merely
        // appended: a pull woken earlier would find nothing and wait out its whole suspension.
        let held = Rc::new(HeldPulls::new(control.config.limits.max_held_pulls_per_shard));
        {
            let held = held.clone();
            store.on_dispatched(move |topic, queue_id| held.notify(topic, queue_id));
        }
        let ctx = Rc::new(ShardCtx {
            id: shard,
            store,
            held,
            control: control.clone(),
            router,
            connections: Default::default(),
        });
        let mailbox = {
            let ctx = ctx.clone();
            compio::runtime::spawn(async move {
                while let Ok(job) = inbox.recv().await {
                    compio::runtime::spawn(job(ctx.clone())).detach();
                }
            })
        };
        let _ = ready.send(Ok(active));
        let service = Rc::new(BrokerService { ctx: ctx.clone() });
        let shutdown = async move {
            let _ = stopped.recv().await;
        };
        if let Err(e) = ferromq_net::server::serve(listener, service, control.config.server_limits(), shutdown).await {
            error!(shard = shard.0, "listener failed: {e}");
        }
        // Stop: close connections, let in-flight requests finish, then make the log durable.
        let open: Vec<Connection> = ctx.connections.borrow().values().cloned().collect();
        for conn in open {
            conn.close();
        }
        ctx.held.stop();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline && Rc::strong_count(&ctx) > 2 {
            compio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(mailbox);
        // Dropping the handle cancels the mailbox loop, but its future (holding a `ctx` clone)
        // is only dropped on a later turn of the runtime. Without this wait `Rc::try_unwrap`
        // below always failed, the store was never closed, and every clean stop was recovered
        // as a crash on the next start (a full scan of the open segment: over 30 s in a debug
        // build with 1 GiB segments).
        let dropped_by = Instant::now() + Duration::from_secs(1);
        while Instant::now() < dropped_by && Rc::strong_count(&ctx) > 1 {
            compio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Err(e) = ctx.store.flush().await {
            error!(shard = shard.0, "final flush failed: {e}");
        }
        match Rc::try_unwrap(ctx) {
            Ok(ctx) => {
                if let Err(e) = ctx.store.close().await {
                    error!(shard = shard.0, "store close failed: {e}");
                }
            }
            Err(ctx) => {
                if let Err(e) = ctx.store.checkpoint().await {
                    error!(shard = shard.0, "final checkpoint failed: {e}");
                }
                warn!(shard = shard.0, "requests still running at shutdown; the store was flushed and checkpointed but not closed");
            }
        }
    });
}

/// The control thread: registration, offset flushing and client expiry; unregisters on stop.
fn run_control(
    control: Arc<Control>,
    backend: IoBackend,
    namesrv_addrs: Vec<String>,
    topics_changed: async_channel::Receiver<()>,
    stopped: async_channel::Receiver<()>,
) {
    let runtime = match build_runtime_on(backend, None) {
        Ok((runtime, _)) => runtime,
        Err(e) => {
            error!("control thread cannot start: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let registrar = Rc::new(Registrar { control: control.clone(), addrs: namesrv_addrs, clients: Default::default() });
        let period = Duration::from_millis(control.config.namesrv.register_period_ms.clamp(10_000, 60_000));
        let offset_flush = Duration::from_millis(control.config.consumer.flush_consumer_offset_interval_ms.max(100));
        let flusher = {
            let control = control.clone();
            compio::runtime::spawn(async move {
                let mut ticks = compio::time::interval(offset_flush);
                loop {
                    ticks.tick().await;
                    control.flush_offsets();
                }
            })
        };
        let scanner = {
            let control = control.clone();
            compio::runtime::spawn(async move {
                let mut ticks = compio::time::interval(CLIENT_SCAN_INTERVAL);
                loop {
                    ticks.tick().await;
                    control.scan_expired_clients();
                }
            })
        };
        loop {
            registrar.register_all().await;
            let wait_changed = async {
                let _ = topics_changed.recv().await;
                false
            };
            let wait_stop = async {
                let _ = stopped.recv().await;
                true
            };
            let stop = futures_util::select_biased! {
                stop = Box::pin(futures_util::FutureExt::fuse(wait_stop)) => stop,
                changed = Box::pin(futures_util::FutureExt::fuse(wait_changed)) => changed,
                _ = Box::pin(futures_util::FutureExt::fuse(compio::time::sleep(period))) => false,
            };
            if stop {
                break;
            }
        }
        drop(flusher);
        drop(scanner);
        control.flush_offsets();
        registrar.unregister_all().await;
    });
}

/// Keeps one connection per name server and registers through it.
struct Registrar {
    control: Arc<Control>,
    addrs: Vec<String>,
    clients: std::cell::RefCell<std::collections::HashMap<String, Client>>,
}

/// Timeout of one registration call (Java 4.x: 6 s).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(6);

impl Registrar {
    async fn client(&self, addr: &str) -> Option<Client> {
        if let Some(client) = self.clients.borrow().get(addr).filter(|c| !c.is_closed()) {
            return Some(client.clone());
        }
        let socket = addr.to_socket_addrs().ok()?.next()?;
        match Client::connect(socket, REGISTER_TIMEOUT).await {
            Ok(client) => {
                self.clients.borrow_mut().insert(addr.to_owned(), client.clone());
                Some(client)
            }
            Err(e) => {
                warn!(namesrv = addr, "cannot connect to the name server: {e}");
                None
            }
        }
    }

    async fn register_all(&self) {
        let request = self.control.register_request();
        for addr in &self.addrs {
            let Some(client) = self.client(addr).await else { continue };
            match client.invoke(request.clone(), REGISTER_TIMEOUT).await {
                Ok(response) if response.code == response_code::SUCCESS => {
                    if !response.body.is_empty() {
                        self.control.apply_order_topics(&response.body);
                    }
                }
                Ok(response) => warn!(namesrv = addr, code = response.code, remark = ?response.remark, "registration refused"),
                Err(e) => {
                    warn!(namesrv = addr, "registration failed: {e}");
                    client.close();
                }
            }
        }
    }

    async fn unregister_all(&self) {
        let request = self.control.unregister_request();
        for addr in &self.addrs {
            let Some(client) = self.client(addr).await else { continue };
            if let Err(e) = client.invoke(request.clone(), REGISTER_TIMEOUT).await {
                warn!(namesrv = addr, "unregistration failed: {e}");
            }
            client.close();
        }
    }
}
