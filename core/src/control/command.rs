//! The typed commands shards send to the control thread, one variant per change or question,
//! each with the oneshot its answer comes back on.
//!
//! Commands travel over one bounded channel (`controlQueueDepth`); the control thread applies
//! every command it finds waiting as one batch, publishes the new view and persists the changed
//! files once for the batch, and only then answers — so an answer means "visible to every shard
//! and on disk" (group commit for metadata).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use ferromq_store::QueueId;
use futures_channel::oneshot;

use crate::clients::ClientInfo;
use crate::clients::ChannelId;
use crate::clients::heartbeat::HeartbeatData;
use crate::clients::locks::MessageQueue;
use crate::error::BrokerResult;
use crate::meta::topics::TopicConfig;

/// Where a command's answer goes.
pub type Reply<T> = oneshot::Sender<T>;

/// A committed consumer offset: (group, topic, queue) → next offset to consume.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub queue_id: QueueId,
}

/// One queue's committed offsets of a group, per topic: (topic, [(queueId, offset)]).
pub type GroupOffsets = Vec<(String, Vec<(QueueId, i64)>)>;

/// Everything shards ask of the control thread.
pub enum Command {
    /// The topic a send goes to: the existing one, or one auto-created from `default_topic`
    /// (or a retry topic) as PROTOCOL.md §2.1 step 2 says.
    /// `account`: with ACL on, the sender's (`maxAutoCreatedTopicsPerAccount`).
    TopicForSend { topic: String, default_topic: String, queue_nums: u32, account: Option<Arc<str>>, reply: Reply<BrokerResult<Arc<TopicConfig>>> },
    /// UPDATE_AND_CREATE_TOPIC.
    UpdateTopic { config: TopicConfig, reply: Reply<BrokerResult<()>> },
    /// DELETE_TOPIC_IN_BROKER: the config and the topic's consumer offsets go; answers whether
    /// the topic existed.
    DeleteTopic { topic: String, reply: Reply<bool> },
    /// GET_ALL_TOPIC_CONFIG body (TopicConfigSerializeWrapper).
    AllTopicConfigJson { reply: Reply<Vec<u8>> },
    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP body; answers the group's name.
    UpdateSubscriptionGroup { body: Bytes, reply: Reply<BrokerResult<String>> },
    /// Offsets committed by pulls and UPDATE_CONSUMER_OFFSET, coalesced per shard. No answer.
    CommitOffsets { commits: Vec<(OffsetKey, i64)> },
    QueryOffset { key: OffsetKey, reply: Reply<Option<i64>> },
    /// The committed offsets of `group`, for one topic or every topic it has offsets for.
    GroupOffsets { group: String, topic: Option<String>, reply: Reply<GroupOffsets> },
    /// HEART_BEAT: registers the producers and consumers of one connection. Boxed parts keep
    /// every command small (one heartbeat per client every 30 s).
    Heartbeat { client: Box<ClientInfo>, data: Box<HeartbeatData>, account: Option<Arc<str>>, reply: Reply<()> },
    UnregisterClient { client_id: String, producer_group: Option<String>, consumer_group: Option<String>, reply: Reply<()> },
    /// A connection closed: its client leaves every group at once. No answer.
    ChannelClosed { channel: ChannelId },
    ConsumerIds { group: String, reply: Reply<Vec<String>> },
    ConsumerConnectionListJson { group: String, reply: Reply<Option<Vec<u8>>> },
    ProducerConnectionListJson { group: String, reply: Reply<Option<Vec<u8>>> },
    /// LOCK_BATCH_MQ: answers the queues `client_id` holds afterwards.
    LockBatch { group: String, client_id: String, queues: Vec<MessageQueue>, reply: Reply<BTreeSet<MessageQueue>> },
    UnlockBatch { group: String, client_id: String, queues: Vec<MessageQueue>, reply: Reply<()> },
    /// A consumer group's retry settings and its `%RETRY%` topic, created if missing (§9.2
    /// steps 1–2, §2.1 step 4): the group is found or auto-created (SUBSCRIPTION_GROUP_NOT_EXIST
    /// when neither).
    RetryGroup { group: String, account: Option<Arc<str>>, reply: Reply<BrokerResult<RetryGroup>> },
    /// A topic the broker writes itself, created if missing with `queue_nums` queues, perm 6:
    /// `%DLQ%<group>` on the first dead letter, `TRANS_CHECK_MAX_TIME_TOPIC` on the first
    /// discarded half message.
    InternalTopic { topic: String, queue_nums: i32, reply: Reply<BrokerResult<Arc<TopicConfig>>> },
    /// Every delay level's next offset to deliver (`delayOffset.json`), read by the delivering
    /// shards at start.
    DelayOffsets { reply: Reply<BTreeMap<u32, i64>> },
    /// A delay level's delivery progress. No answer.
    CommitDelayOffset { level: u32, offset: i64 },
    /// GET_ALL_DELAY_OFFSET body (`delayOffset.json`).
    DelayOffsetsJson { reply: Reply<Vec<u8>> },
    /// GET_ALL_CONSUMER_OFFSET body (`consumerOffset.json`).
    AllConsumerOffsetJson { reply: Reply<Vec<u8>> },
    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG body (`subscriptionGroup.json`).
    AllSubscriptionGroupJson { reply: Reply<Vec<u8>> },
    /// Send a CHECK_TRANSACTION_STATE to one live producer of `producer_group`; answers
    /// whether one was found.
    CheckTransaction { producer_group: String, request: Box<ferromq_net::RemotingCommand>, reply: Reply<bool> },
    /// Send `request` one-way to every online consumer of `group` (RESET_CONSUMER_CLIENT_OFFSET);
    /// answers how many connections it was handed to.
    NotifyConsumers { group: String, request: Box<ferromq_net::RemotingCommand>, reply: Reply<usize> },
    /// CLONE_GROUP_OFFSET: `dest` gets `src`'s committed offsets (of `topic`, or of every topic).
    CloneGroupOffset { src: String, dest: String, topic: Option<String>, reply: Reply<()> },
    /// DELETE_SUBSCRIPTIONGROUP: the group's config goes (and its offsets with `clean_offset`);
    /// answers whether it existed.
    DeleteGroup { group: String, clean_offset: bool, reply: Reply<bool> },
    /// The connection of consumer `client_id` of `group`, if it is online.
    ConsumerChannel { group: String, client_id: String, reply: Reply<Option<ChannelId>> },
    /// Every online consumer of `group`, one connection each (its most recently heard one), in
    /// client-id order: where INVOKE_BROKER_TO_GET_CONSUMER_STATUS asks.
    ConsumerClients { group: String, reply: Reply<Vec<ClientInfo>> },
    /// The connection of producer `client_id` (any group), if it is online: where a reply
    /// message is pushed.
    ProducerChannel { client_id: String, reply: Reply<Option<ChannelId>> },
    /// QUERY_TOPIC_CONSUME_BY_WHO: the groups with an online consumer subscribed to `topic`
    /// or with committed offsets for it, sorted.
    TopicConsumers { topic: String, reply: Reply<Vec<String>> },
    /// GET_SYSTEM_TOPIC_LIST_FROM_BROKER: the broker's system topic names, sorted.
    SystemTopicNames { reply: Reply<Vec<String>> },
    /// UPDATE_BROKER_CONFIG: a properties body of runtime keys, applied all or none; answers
    /// the keys applied, once the runtime file holds them.
    UpdateBrokerConfig { body: Bytes, reply: Reply<BrokerResult<Vec<(String, String)>>> },
    /// What a metrics scrape reads of the control plane (`crate::metrics`).
    MetricsFigures { reply: Reply<ControlFigures> },
    /// The ACL admin codes (50, 51, 53): changes the rules file (`crate::acl::apply_change`).
    /// Boxed: the largest change would make every command larger.
    ChangeAcl { change: Box<crate::acl::AclChange>, reply: Reply<BrokerResult<()>> },
}

/// The control plane's part of a metrics scrape: table sizes, client connections, committed
/// offsets. A copy, so that the scrape encodes it off the control thread.
#[derive(Debug, Clone, Default)]
pub struct ControlFigures {
    /// Topics in the topic table (`rocketmq_topic_number`).
    pub topics: usize,
    /// Groups in the subscription-group table (`rocketmq_consumer_group_number`).
    pub groups: usize,
    /// The names `TopicValidator.isSystemTopic` treats as system topics besides the `rmq_sys_`
    /// prefix (for the `is_system` labels).
    pub system_topics: BTreeSet<String>,
    /// Producer connections by (language, version ordinal), counted per group as Java does.
    pub producer_connections: BTreeMap<(String, i32), u64>,
    /// Consumer connections by (group, language, version ordinal, consume type).
    pub consumer_connections: BTreeMap<(String, String, i32, crate::clients::heartbeat::ConsumeType), u64>,
    /// Committed offsets: (group, topic, [(queueId, next offset to consume)]).
    pub offsets: Vec<GroupTopicOffsets>,
}

/// One group's committed offsets on one topic: (group, topic, [(queueId, offset)]).
pub type GroupTopicOffsets = (String, String, Vec<(QueueId, i64)>);

/// What a send-back needs of its consumer group.
#[derive(Debug, Clone)]
pub struct RetryGroup {
    /// The group's `%RETRY%` topic; `None` when the group's `retryQueueNums` is 0 or less
    /// (Java then drops send-backs, answering SUCCESS).
    pub retry_topic: Option<Arc<TopicConfig>>,
    /// The group's `retryMaxTimes`.
    pub retry_max_times: i32,
    /// Whether some client of the group holds an unexpired orderly queue lock (LOCK_BATCH_MQ):
    /// Java's `!isLockAllExpired(group)`, under which a 5.x broker dead-letters every send to the
    /// group's `%RETRY%` topic (§2.1 step 4).
    pub orderly_locked: bool,
}

impl Command {
    /// The command's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::TopicForSend { .. } => "TopicForSend",
            Command::UpdateTopic { .. } => "UpdateTopic",
            Command::DeleteTopic { .. } => "DeleteTopic",
            Command::AllTopicConfigJson { .. } => "AllTopicConfigJson",
            Command::UpdateSubscriptionGroup { .. } => "UpdateSubscriptionGroup",
            Command::CommitOffsets { .. } => "CommitOffsets",
            Command::QueryOffset { .. } => "QueryOffset",
            Command::GroupOffsets { .. } => "GroupOffsets",
            Command::Heartbeat { .. } => "Heartbeat",
            Command::UnregisterClient { .. } => "UnregisterClient",
            Command::ChannelClosed { .. } => "ChannelClosed",
            Command::ConsumerIds { .. } => "ConsumerIds",
            Command::ConsumerConnectionListJson { .. } => "ConsumerConnectionListJson",
            Command::ProducerConnectionListJson { .. } => "ProducerConnectionListJson",
            Command::LockBatch { .. } => "LockBatch",
            Command::UnlockBatch { .. } => "UnlockBatch",
            Command::RetryGroup { .. } => "RetryGroup",
            Command::InternalTopic { .. } => "InternalTopic",
            Command::DelayOffsets { .. } => "DelayOffsets",
            Command::CommitDelayOffset { .. } => "CommitDelayOffset",
            Command::DelayOffsetsJson { .. } => "DelayOffsetsJson",
            Command::AllConsumerOffsetJson { .. } => "AllConsumerOffsetJson",
            Command::AllSubscriptionGroupJson { .. } => "AllSubscriptionGroupJson",
            Command::CheckTransaction { .. } => "CheckTransaction",
            Command::NotifyConsumers { .. } => "NotifyConsumers",
            Command::CloneGroupOffset { .. } => "CloneGroupOffset",
            Command::DeleteGroup { .. } => "DeleteGroup",
            Command::ConsumerChannel { .. } => "ConsumerChannel",
            Command::ConsumerClients { .. } => "ConsumerClients",
            Command::ProducerChannel { .. } => "ProducerChannel",
            Command::TopicConsumers { .. } => "TopicConsumers",
            Command::SystemTopicNames { .. } => "SystemTopicNames",
            Command::UpdateBrokerConfig { .. } => "UpdateBrokerConfig",
            Command::MetricsFigures { .. } => "MetricsFigures",
            Command::ChangeAcl { .. } => "ChangeAcl",
        }
    }
}
