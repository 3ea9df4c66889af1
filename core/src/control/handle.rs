//! What shards hold of the control plane: the broker's identity and configuration (fixed at
//! start), the latest published [`ControlView`] (read without locks), and the command channel.
//!
//! Boundary: shards never touch control-plane state directly. They read the view — one atomic
//! load, no lock, no copy of a topic config — and they change things by sending a
//! [`Command`] and (usually) awaiting its answer. The control thread is the only writer of the
//! view and of every metadata file.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use ferromq_store::TagFilter;
use futures_channel::oneshot;

use super::command::{Command, Reply};
use crate::config::BrokerConfig;
use crate::error::{BrokerError, BrokerResult};
use crate::meta::topics::TopicConfig;

/// A registered subscription's store filter, or the error its pulls get.
pub type SubscriptionFilter = Result<Arc<TagFilter>, BrokerError>;

/// Who this broker is, as registered with name servers and stamped into message ids.
#[derive(Debug, Clone)]
pub struct BrokerIdentity {
    /// `brokerIP1:listenPort`.
    pub broker_addr: String,
    /// The same as a socket address (storeHost of every record).
    pub store_host: SocketAddr,
    pub broker_name: String,
    pub cluster_name: String,
    pub broker_id: u64,
}

/// A versioned, read-only snapshot of the control-plane state the data plane needs per request.
/// Published by the control thread after each batch of changes; never mutated.
#[derive(Debug, Default)]
pub struct ControlView {
    /// Increases with every publication.
    pub version: u64,
    /// The broker's permission bits (PERM_READ | PERM_WRITE …, §8.2).
    pub broker_permission: i32,
    pub topics: TopicViews,
    /// group → topic → the filter of the group's subscription (registered by heartbeats), or
    /// why its pulls are refused (an SQL92 subscription the broker does not serve).
    pub subscriptions: HashMap<String, HashMap<String, SubscriptionFilter>>,
    /// Every subscription group in the table (rebuilt only when the table changes).
    pub groups: Arc<HashSet<String>>,
    /// The groups whose read brokers are not the defaults (the brokers a pull answer suggests
    /// with `slaveReadEnable`, §7.6), rebuilt with [`Self::groups`].
    pub group_read_brokers: Arc<HashMap<String, ReadBrokers>>,
    /// Why an unknown group would not be created on first use (`autoCreateSubscriptionGroup`
    /// off, or `maxAutoCreatedSubscriptionGroups` / `maxAutoCreatedTopics` reached, with the
    /// counts); `None` when it would be.
    pub group_refusal: Option<Arc<str>>,
}

/// Shards of [`TopicViews`]: a change copies one shard's map, about 1/64 of the topics.
const TOPIC_VIEW_SHARDS: usize = 64;

/// The view's topics by name, split by name hash into [`TOPIC_VIEW_SHARDS`] maps that successive
/// views share: publishing a view after a change copies only the changed topics' shards, not
/// every topic (one whole-map copy per change, and its drop, were 53 % of the control thread's
/// time per sequential creation at 20,000 topics).
#[derive(Debug, Clone, Default)]
pub struct TopicViews {
    shards: Vec<Arc<HashMap<Arc<str>, Arc<TopicConfig>>>>,
    len: usize,
}

impl TopicViews {
    fn shard_of(name: &str) -> usize {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same shard for a name in every view.
        let mut hasher = std::hash::DefaultHasher::new();
        name.hash(&mut hasher);
        (hasher.finish() % TOPIC_VIEW_SHARDS as u64) as usize
    }

    pub fn from_map(topics: &HashMap<Arc<str>, Arc<TopicConfig>>) -> TopicViews {
        let mut shards = vec![HashMap::new(); TOPIC_VIEW_SHARDS];
        for (name, config) in topics {
            if let Some(shard) = shards.get_mut(Self::shard_of(name)) {
                shard.insert(name.clone(), config.clone());
            }
        }
        TopicViews { shards: shards.into_iter().map(Arc::new).collect(), len: topics.len() }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<TopicConfig>> {
        self.shards.get(Self::shard_of(name))?.get(name)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts or replaces a topic (copying its shard if an older view still shares it).
    pub fn insert(&mut self, name: Arc<str>, config: Arc<TopicConfig>) {
        if self.shards.is_empty() {
            self.shards = vec![Arc::default(); TOPIC_VIEW_SHARDS];
        }
        if let Some(shard) = self.shards.get_mut(Self::shard_of(&name))
            && Arc::make_mut(shard).insert(name, config).is_none()
        {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Some(shard) = self.shards.get_mut(Self::shard_of(name))
            && shard.contains_key(name)
            && Arc::make_mut(shard).remove(name).is_some()
        {
            self.len -= 1;
        }
    }
}

impl ControlView {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicConfig>> {
        self.topics.get(name)
    }

    /// The filter a pull without an inline subscription uses; `None` when the group has not
    /// subscribed the topic.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<&SubscriptionFilter> {
        self.subscriptions.get(group)?.get(topic)
    }

    /// Where the group's consumers read when `slaveReadEnable` lets them: its `brokerId` (0,
    /// the master, unless an operator set another) and its `whichBrokerWhenConsumeSlowly`.
    pub fn group_read_brokers(&self, group: &str) -> ReadBrokers {
        self.group_read_brokers.get(group).copied().unwrap_or_default()
    }

    /// Whether a pull or send-back for `group` may go on: the group exists, or it would be
    /// created on first use. Otherwise SUBSCRIPTION_GROUP_NOT_EXIST, as a Java broker answers
    /// with `autoCreateSubscriptionGroup=false`.
    pub fn check_group(&self, group: &str) -> BrokerResult<()> {
        match &self.group_refusal {
            Some(why) if !self.groups.contains(group) => {
                Err(BrokerError::new(ferromq_net::codes::response_code::SUBSCRIPTION_GROUP_NOT_EXIST, format!("subscription group [{group}] does not exist, {why}")))
            }
            _ => Ok(()),
        }
    }
}

/// A subscription group's read brokers (§7.6): `brokerId` and `whichBrokerWhenConsumeSlowly`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBrokers {
    pub usual: u64,
    /// For a consumer reading data no longer in memory.
    pub when_slow: u64,
}

impl Default for ReadBrokers {
    /// Java's defaults: the master, and broker 1 when consuming slowly.
    fn default() -> Self {
        ReadBrokers { usual: 0, when_slow: 1 }
    }
}

/// Something the control thread asks a shard to do with one of its connections.
#[derive(Debug, Clone)]
pub enum ShardEvent {
    /// Send NOTIFY_CONSUMER_IDS_CHANGED (one-way) for `group` on connection `connection`.
    NotifyConsumerIdsChanged { connection: u64, group: String },
    /// Send `request` one-way on connection `connection` (CHECK_TRANSACTION_STATE,
    /// RESET_CONSUMER_CLIENT_OFFSET).
    SendOneway { connection: u64, request: ferromq_net::RemotingCommand },
}

/// The control plane as shards see it. `Send + Sync`; shared as `Arc`.
pub struct ControlHandle {
    config: Arc<BrokerConfig>,
    /// `config` with the changes UPDATE_BROKER_CONFIG applied since start (written by the
    /// control thread only): what GET_BROKER_CONFIG shows and where the keys that can change
    /// at runtime are read (`runtime_config.rs`).
    live_config: ArcSwap<BrokerConfig>,
    identity: BrokerIdentity,
    view: ArcSwap<ControlView>,
    commands: async_channel::Sender<Command>,
    pub boot_timestamp_ms: i64,
    /// Metadata files (`topics.json`, `subscriptionGroup.json`) written since start, by the
    /// metadata writer or at stop (`ferromqMetadataFileWrites` in GET_BROKER_RUNTIME_INFO).
    pub metadata_file_writes: Arc<AtomicU64>,
    /// A slave's master as the control thread last learned it ([`MasterInfo`]).
    master: MasterInfo,
    /// `aclEnable=true`: the rules every request is checked against (`crate::acl`), reloaded
    /// by their watcher thread and replaced by the control thread (the ACL admin codes).
    acl: Option<Arc<ferromq_net::acl::AclFile>>,
    /// TLS of the connections to the name servers (registration), and to other brokers (a
    /// slave's metadata sync with its master); `None`: plain ([`ControlHandle::with_tls`]).
    namesrv_tls: Option<ferromq_net::tls::TlsConnector>,
    broker_tls: Option<ferromq_net::tls::TlsConnector>,
}

/// What a slave knows of its master (§7.2, §7.5), written by the control thread (registration
/// answers, metadata sync) and read from any thread: every field is an atomic or an
/// `arc-swap`, so readers take no lock.
#[derive(Default)]
struct MasterInfo {
    /// `masterAddr` of the last registration answer that said anything: the master's remoting
    /// address, where metadata is synced from; `None` when the name servers know no live master.
    remoting: ArcSwapOption<String>,
    /// The last `haServerAddr` a registration answer carried (kept when a later answer has
    /// none, as Java keeps it).
    ha_learned: ArcSwapOption<String>,
    /// Whether the last metadata sync with `remoting` succeeded (true until one fails, and
    /// again whenever a new address is learned).
    reachable: AtomicBool,
}

impl ControlHandle {
    pub fn new(config: Arc<BrokerConfig>, identity: BrokerIdentity, commands: async_channel::Sender<Command>) -> ControlHandle {
        ControlHandle {
            live_config: ArcSwap::new(config.clone()),
            config,
            identity,
            view: ArcSwap::from_pointee(ControlView::default()),
            commands,
            boot_timestamp_ms: ferromq_store::store::now_ms(),
            metadata_file_writes: Arc::new(AtomicU64::new(0)),
            master: MasterInfo::default(),
            acl: None,
            namesrv_tls: None,
            broker_tls: None,
        }
    }

    /// Checks requests against `acl` (`aclEnable=true`).
    pub fn with_acl(mut self, acl: Option<Arc<ferromq_net::acl::AclFile>>) -> ControlHandle {
        self.acl = acl;
        self
    }

    /// The ACL rules file, when `aclEnable=true`.
    pub fn acl(&self) -> Option<&Arc<ferromq_net::acl::AclFile>> {
        self.acl.as_ref()

    }

    /// Sets the TLS of the broker's own connections: to the name servers, and to other brokers.
    pub fn with_tls(
        mut self,
        namesrv: Option<ferromq_net::tls::TlsConnector>,
        broker: Option<ferromq_net::tls::TlsConnector>,
    ) -> ControlHandle {
        self.namesrv_tls = namesrv;
        self.broker_tls = broker;
        self
    }

    /// TLS of the connections to the name servers; `None`: plain.
    pub fn namesrv_tls(&self) -> Option<&ferromq_net::tls::TlsConnector> {
        self.namesrv_tls.as_ref()
    }

    /// TLS of the connections to other brokers (`tls.enable`); `None`: plain.
    pub fn broker_tls(&self) -> Option<&ferromq_net::tls::TlsConnector> {
        self.broker_tls.as_ref()
    }

    /// Whether this broker is a slave (`brokerRole=SLAVE`): it serves reads, refuses writes
    /// (§7.5) and copies its metadata from its master.
    pub fn is_slave(&self) -> bool {
        !self.config.broker.role.is_master()
    }

    /// A slave's master HA address (§7.2): `haMasterAddress` when configured, else the last
    /// `haServerAddr` a name server returned to this broker's registration; `None` before any.
    pub fn ha_master_addr(&self) -> Option<String> {
        if let Some(configured) = &self.config.ha.master_address {
            return Some(configured.clone());
        }
        self.master.ha_learned.load_full().map(|addr| (*addr).clone())
    }

    /// A slave's master remoting address (`masterAddr` of the last registration answer that
    /// carried one; `None` before any, and once the name servers answer without one: no live
    /// master). Metadata is synced from here (§7.5).
    pub fn master_addr(&self) -> Option<String> {
        self.master.remoting.load_full().map(|addr| (*addr).clone())
    }

    /// Whether a slave's master is known to be online: the name servers list a live master and
    /// the last metadata sync with it did not fail. A slave then steers pulls to the master
    /// (§7.6).
    pub fn master_online(&self) -> bool {
        self.master.remoting.load().is_some() && self.master.reachable.load(Ordering::Relaxed)
    }

    /// Records the master addresses of a registration round's answer (the control thread
    /// only); logs changes at INFO. Returns whether the remoting address changed.
    pub(crate) fn learn_master(&self, remoting: Option<String>, ha: Option<String>) -> bool {
        if let Some(ha) = ha.filter(|ha| !ha.is_empty()) {
            let previous = self.master.ha_learned.load_full();
            if previous.as_deref() != Some(&ha) {
                match &self.config.ha.master_address {
                    Some(configured) => tracing::info!(learned = %ha, configured = %configured, "master HA address learned from the name server; haMasterAddress overrides it"),
                    None => tracing::info!(previous = ?previous.as_deref(), ha_master_addr = %ha, "master HA address changed"),
                }
                self.master.ha_learned.store(Some(Arc::new(ha)));
            }
        }
        let remoting = remoting.filter(|addr| !addr.is_empty());
        let previous = self.master.remoting.load_full();
        if previous.as_deref() == remoting.as_ref() {
            return false;
        }
        match &remoting {
            Some(addr) => tracing::info!(previous = ?previous.as_deref(), master_addr = %addr, "master address changed"),
            None => tracing::info!(previous = ?previous.as_deref(), "master address unknown: the name servers list no live master"),
        }
        self.master.reachable.store(remoting.is_some(), Ordering::Relaxed);
        self.master.remoting.store(remoting.map(Arc::new));
        true
    }

    /// Records whether the last metadata sync with the master succeeded (the control thread
    /// only).
    pub(crate) fn set_master_reachable(&self, reachable: bool) {
        self.master.reachable.store(reachable, Ordering::Relaxed);
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The configuration as it stands now: [`Self::config`] with the runtime changes of
    /// UPDATE_BROKER_CONFIG. Only the keys `runtime_config::RUNTIME_KEYS` lists can differ.
    pub fn live_config(&self) -> Arc<BrokerConfig> {
        self.live_config.load_full()
    }

    /// Publishes a changed configuration (the control thread only).
    pub(super) fn set_live_config(&self, config: BrokerConfig) {
        self.live_config.store(Arc::new(config));
    }

    pub fn identity(&self) -> &BrokerIdentity {
        &self.identity
    }

    /// Metadata files written since start.
    pub fn metadata_file_writes(&self) -> u64 {
        self.metadata_file_writes.load(Ordering::Relaxed)
    }

    /// The latest published view.
    pub fn view(&self) -> Arc<ControlView> {
        self.view.load_full()
    }

    /// A topic's config from the latest view.
    pub fn topic(&self, name: &str) -> Option<Arc<TopicConfig>> {
        self.view.load().topic(name).cloned()
    }

    /// Publishes a new view (the control thread only).
    pub(super) fn publish(&self, view: ControlView) {
        self.view.store(Arc::new(view));
    }

    /// Sends a command and waits for its answer. A full channel makes the caller wait (the
    /// channel is the bound); a stopped control thread is SERVICE_NOT_AVAILABLE.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> BrokerResult<T> {
        let (reply, answer) = oneshot::channel();
        self.tell(make(reply)).await?;
        answer.await.map_err(|_| BrokerError::unavailable("the broker's control plane stopped"))
    }

    /// Sends a command that has no answer, waiting while the channel is full.
    pub async fn tell(&self, command: Command) -> BrokerResult<()> {
        self.commands.send(command).await.map_err(|_| BrokerError::unavailable("the broker's control plane stopped"))
    }

    /// Sends a command without waiting; `Err` gives it back when the channel is full or closed.
    pub fn try_tell(&self, command: Command) -> Result<(), Command> {
        self.commands.try_send(command).map_err(|e| e.into_inner())
    }

    /// Closes the command channel: the control thread applies what is queued and stops.
    pub fn close(&self) {
        self.commands.close();
    }
}
