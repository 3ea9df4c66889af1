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
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
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
    pub topics: HashMap<Arc<str>, Arc<TopicConfig>>,
    /// group → topic → the filter of the group's subscription (registered by heartbeats), or
    /// why its pulls are refused (an SQL92 subscription the broker does not serve).
    pub subscriptions: HashMap<String, HashMap<String, SubscriptionFilter>>,
    /// Every subscription group in the table (rebuilt only when the table changes).
    pub groups: Arc<HashSet<String>>,
    /// Why an unknown group would not be created on first use (`autoCreateSubscriptionGroup`
    /// off, or `maxAutoCreatedSubscriptionGroups` / `maxAutoCreatedTopics` reached, with the
    /// counts); `None` when it would be.
    pub group_refusal: Option<Arc<str>>,
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
    identity: BrokerIdentity,
    view: ArcSwap<ControlView>,
    commands: async_channel::Sender<Command>,
    pub boot_timestamp_ms: i64,
    /// Metadata files (`topics.json`, `subscriptionGroup.json`) written since start, by the
    /// metadata writer or at stop (`ferromqMetadataFileWrites` in GET_BROKER_RUNTIME_INFO).
    pub metadata_file_writes: Arc<AtomicU64>,
}

impl ControlHandle {
    pub fn new(config: Arc<BrokerConfig>, identity: BrokerIdentity, commands: async_channel::Sender<Command>) -> ControlHandle {
        ControlHandle {
            config,
            identity,
            view: ArcSwap::from_pointee(ControlView::default()),
            commands,
            boot_timestamp_ms: ferromq_store::store::now_ms(),
            metadata_file_writes: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn identity(&self) -> &BrokerIdentity {
        &self.identity
    }

    /// A slave's master HA address: `haMasterAddress`. None before it is known.
    pub fn ha_master_addr(&self) -> Option<String> {
        self.config.ha.master_address.clone()
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
