//! The typed commands shards send to the control thread, one variant per change or question,
//! each with the oneshot its answer comes back on.
//!
//! Commands travel over one bounded channel (`controlQueueDepth`); the control thread applies
//! every command it finds waiting as one batch, publishes the new view and persists the changed
//! files once for the batch, and only then answers — so an answer means "visible to every shard
//! and on disk" (group commit for metadata).

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
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
    pub queue_id: u32,
}

/// One queue's committed offsets of a group, per topic: (topic, [(queueId, offset)]).
pub type GroupOffsets = Vec<(String, Vec<(i32, i64)>)>;

/// Everything shards ask of the control thread.
pub enum Command {
    /// The topic a send goes to: the existing one, or one auto-created from `default_topic`
    /// (or a retry topic) as PROTOCOL.md §2.1 step 2 says.
    TopicForSend { topic: String, default_topic: String, queue_nums: u32, reply: Reply<BrokerResult<Arc<TopicConfig>>> },
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
    /// HEART_BEAT: registers the producers and consumers of one connection.
    Heartbeat { client: ClientInfo, data: Box<HeartbeatData>, reply: Reply<()> },
    UnregisterClient { client_id: String, producer_group: Option<String>, consumer_group: Option<String>, reply: Reply<()> },
    /// A connection closed: its client leaves every group at once. No answer.
    ChannelClosed { channel: ChannelId },
    ConsumerIds { group: String, reply: Reply<Vec<String>> },
    ConsumerConnectionListJson { group: String, reply: Reply<Option<Vec<u8>>> },
    /// LOCK_BATCH_MQ: answers the queues `client_id` holds afterwards.
    LockBatch { group: String, client_id: String, queues: Vec<MessageQueue>, reply: Reply<BTreeSet<MessageQueue>> },
    UnlockBatch { group: String, client_id: String, queues: Vec<MessageQueue>, reply: Reply<()> },
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
            Command::LockBatch { .. } => "LockBatch",
            Command::UnlockBatch { .. } => "UnlockBatch",
        }
    }
}
