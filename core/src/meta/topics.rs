//! The broker's topic table: topic → [`TopicConfig`] with a [`DataVersion`] bumped on every
//! change; the system topics a Java broker creates at start-up; the auto-create rules of the
//! send path (TBW102 inheritance) and of retry/DLQ topics; topic-name validation; the
//! REGISTER_BROKER body sent to name servers (§2.6), the TopicConfigSerializeWrapper of
//! GET_ALL_TOPIC_CONFIG and `topics.json` (§4.6, §6.6), and its atomic persistence.
//!
//! Ownership: one table per broker, in the control plane behind the shared mutex. Every change
//! returns whether it changed anything so the caller can persist and re-register.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::json::{parse_object_tolerant, write_key};
use super::journal::{ChangeSet, JournaledTable};
use super::persist::{NameError, PersistError, PersistedTable, overlay_config_file, validate_name};
use ferromq_net::wire::DataVersion;
use ferromq_store::QueueId;

pub use ferromq_net::wire::{
    DEFAULT_QUEUE_NUMS, MULTI_TAG, PERM_INHERIT, PERM_PRIORITY, PERM_READ, PERM_WRITE, SINGLE_TAG, TopicConfig,
};

/// The auto-create template topic (`TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
pub const AUTO_CREATE_TOPIC_KEY_TOPIC: &str = "TBW102";
pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
pub const BENCHMARK_TOPIC: &str = "BenchmarkTest";
pub const OFFSET_MOVED_EVENT: &str = "OFFSET_MOVED_EVENT";
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Delay levels 1..=18, one queue each (§9.3).
pub const SCHEDULE_TOPIC_QUEUE_NUMS: i32 = 18;
pub const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub const TRANS_OP_HALF_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
pub const TRANS_CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
pub const DEFAULT_TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";
/// 5.x timer topic (`TopicValidator.RMQ_SYS_SCHEDULE_TOPIC_V2`). FerroMQ has no timer service
/// and never creates it; the name is reserved as in Java.
pub const SCHEDULE_TOPIC_V2: &str = "SCHEDULE_TOPIC_XXXX_V2";
/// 5.x timer topic (`TimerMessageStore.TIMER_TOPIC`): timer messages wait in its one queue
/// (§9.3). Created at start when `timerWheelEnable`.
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// The timer topic's one queue.
pub const TIMER_QUEUE: QueueId = QueueId(0);
/// Suffix of the request/reply topic `<clusterName>_REPLY_TOPIC`.
pub const REPLY_TOPIC_POSTFIX: &str = "REPLY_TOPIC";
/// 5.x `TopicValidator.SYSTEM_TOPIC_PREFIX`.
pub const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// Java `DLQ_NUMS_PER_GROUP`.
pub const DLQ_QUEUE_NUMS: i32 = 1;
/// The queue dead letters go to (Java's `DLQ_NUMS_PER_GROUP` of 1 leaves one).
pub const DLQ_QUEUE: QueueId = QueueId(0);

/// The fixed system topics (Java `TopicValidator.SYSTEM_TOPIC_SET`). A broker adds its
/// cluster-name, broker-name and reply topics and a configured trace topic
/// ([`TopicConfigTable::is_system_topic`]); `rmq_sys_*` names are system topics too.
pub const SYSTEM_TOPICS: [&str; 10] = [
    AUTO_CREATE_TOPIC_KEY_TOPIC,
    SELF_TEST_TOPIC,
    BENCHMARK_TOPIC,
    OFFSET_MOVED_EVENT,
    SCHEDULE_TOPIC,
    SCHEDULE_TOPIC_V2,
    TRANS_HALF_TOPIC,
    TRANS_OP_HALF_TOPIC,
    TRANS_CHECK_MAX_TIME_TOPIC,
    DEFAULT_TRACE_TOPIC,
];

/// The system topics no client may send to (Java `TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET`):
/// every fixed system topic except TBW102, BenchmarkTest and the trace topic, which clients
/// do write. Sends to them answer 16 NO_PERMISSION ([`is_not_allowed_send_topic`]).
pub const NOT_ALLOWED_SEND_TOPICS: [&str; 8] = [
    SCHEDULE_TOPIC,
    TIMER_TOPIC,
    SCHEDULE_TOPIC_V2,
    TRANS_HALF_TOPIC,
    TRANS_OP_HALF_TOPIC,
    TRANS_CHECK_MAX_TIME_TOPIC,
    SELF_TEST_TOPIC,
    OFFSET_MOVED_EVENT,
];

/// Whether a client's send to `topic` is refused outright (SEND_MESSAGE, SEND_MESSAGE_V2,
/// SEND_BATCH_MESSAGE and the reply sends): Java's `TopicValidator.isNotAllowedSendTopic`, and
/// beyond it TBW102 (the template auto-created topics copy; a message there reaches no one)
/// and every 5.x `rmq_sys_` topic. The only system topics a client may write are
/// `BenchmarkTest` and the trace topic.
pub fn is_not_allowed_send_topic(topic: &str) -> bool {
    NOT_ALLOWED_SEND_TOPICS.contains(&topic) || topic == AUTO_CREATE_TOPIC_KEY_TOPIC || topic.starts_with(SYSTEM_TOPIC_PREFIX)
}

/// Longest topic a client may create or send to (Appendix B; 4.x and 5.0–5.3.3 brokers).
pub const MAX_TOPIC_NAME_LEN: usize = 127;
/// Longest retry/DLQ topic the broker creates for a group (newest Java limit, Appendix B).
pub const MAX_GROUP_TOPIC_NAME_LEN: usize = 255;
/// Upper bound on read/write queue counts accepted from admin requests and files. Java sets
/// none; each queue costs a consume-queue file set, so FerroMQ names one. `BenchmarkTest`
/// (1024 queues) is the largest topic Java itself creates.
pub const MAX_QUEUE_NUMS: i32 = 1024;

/// `%RETRY%<group>`.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// `%DLQ%<group>`.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
}

/// Whether `perm` has the bit.
pub fn perm_readable(perm: i32) -> bool {
    perm & PERM_READ != 0
}
pub fn perm_writeable(perm: i32) -> bool {
    perm & PERM_WRITE != 0
}
pub fn perm_inherited(perm: i32) -> bool {
    perm & PERM_INHERIT != 0
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("invalid topic name: {0}")]
    InvalidName(#[from] NameError),
    #[error("the topic [{0}] is conflict with a system topic")]
    SystemTopic(String),
    #[error("topic {topic}: invalid queue numbers read={read} write={write} (0..={max})")]
    InvalidQueueNums {
        topic: String,
        read: i32,
        write: i32,
        max: i32,
    },
    #[error("topic {topic}: invalid perm {perm}")]
    InvalidPerm { topic: String, perm: i32 },
    #[error("default topic {0} does not exist")]
    DefaultTopicMissing(String),
    #[error("default topic {0} has no inherit permission")]
    NoInheritPermission(String),
}

/// Checks a topic's name charset/length, queue counts and perm (0..=15): the broker's rules
/// for a topic it creates or loads (the shared wire type itself accepts anything).
pub fn validate_topic(config: &TopicConfig, max_name_len: usize) -> Result<(), TopicError> {
    validate_name(&config.topic_name, max_name_len)?;
    let ok = |n: i32| (0..=MAX_QUEUE_NUMS).contains(&n);
    if !ok(config.read_queue_nums) || !ok(config.write_queue_nums) {
        return Err(TopicError::InvalidQueueNums {
            topic: config.topic_name.clone(),
            read: config.read_queue_nums,
            write: config.write_queue_nums,
            max: MAX_QUEUE_NUMS,
        });
    }
    if !(0..=15).contains(&config.perm) {
        return Err(TopicError::InvalidPerm { topic: config.topic_name.clone(), perm: config.perm });
    }
    Ok(())
}

/// The broker settings the topic table depends on (§11.1, §11.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTableSettings {
    pub cluster_name: String,
    pub broker_name: String,
    /// `autoCreateTopicEnable` (true): keep TBW102 with PERM_INHERIT.
    pub auto_create_topic_enable: bool,
    /// `defaultTopicQueueNums` (8): TBW102's queue count.
    pub default_topic_queue_nums: i32,
    /// `clusterTopicEnable` (true).
    pub cluster_topic_enable: bool,
    /// `brokerTopicEnable` (true).
    pub broker_topic_enable: bool,
    /// `msgTraceTopicName` when `traceTopicEnable`; `None` (Java's default) creates no trace
    /// topic.
    pub trace_topic: Option<String>,
    /// `timerWheelEnable`: keep `rmq_sys_wheel_timer` (1 queue) for timer messages.
    pub timer_topic_enable: bool,
}

impl Default for TopicTableSettings {
    fn default() -> Self {
        TopicTableSettings {
            cluster_name: "DefaultCluster".to_owned(),
            broker_name: "broker-a".to_owned(),
            auto_create_topic_enable: true,
            default_topic_queue_nums: 8,
            cluster_topic_enable: true,
            broker_topic_enable: true,
            trace_topic: None,
            timer_topic_enable: false,
        }
    }
}

/// Result of [`TopicConfigTable::auto_create`] and the other create-if-absent calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    pub config: TopicConfig,
    /// True if the topic was created by this call (persist and register it).
    pub created: bool,
}

/// The topic table. `Send`; plain data.
#[derive(Debug, Clone)]
pub struct TopicConfigTable {
    settings: TopicTableSettings,
    topics: BTreeMap<String, TopicConfig>,
    /// Names of the system topics (fixed set + cluster/broker-name topics).
    system_topics: BTreeSet<String>,
    data_version: DataVersion,
    dirty: bool,
    /// What changed since the last write, for the journal (`journal.rs`).
    changes: ChangeSet,
    /// What changed since the last view was built (`ControlPlane::publish`), so that a change
    /// updates the view's map instead of rebuilding it from every topic.
    view_changes: ChangeSet,
}

impl TopicConfigTable {
    /// A table holding the system topics of a Java broker's `TopicConfigManager` constructor
    /// (4.9/5.x, see §6.6): SELF_TEST_TOPIC (1 queue), TBW102 (only if auto-create is on; perm 7,
    /// `defaultTopicQueueNums` queues), BenchmarkTest (1024), `<clusterName>` (16 queues, perm
    /// 1 | RW if clusterTopicEnable), `<brokerName>` (1 queue, perm 1 | RW if brokerTopicEnable),
    /// OFFSET_MOVED_EVENT (1), SCHEDULE_TOPIC_XXXX (18), the trace topic if configured (1),
    /// `<clusterName>_REPLY_TOPIC` (1), RMQ_SYS_TRANS_HALF_TOPIC and RMQ_SYS_TRANS_OP_HALF_TOPIC
    /// (1 each), and `rmq_sys_wheel_timer` (1) when `timerWheelEnable`. 5.x pop topics
    /// (`rmq_sys_REVIVE_LOG_*`, `rmq_sys_SYNC_BROKER_MEMBER_*`) are left out: FerroMQ has no
    /// pop service.
    pub fn new(settings: TopicTableSettings) -> Self {
        let mut system_topics: BTreeSet<String> = SYSTEM_TOPICS.into_iter().map(str::to_owned).collect();
        let rw = PERM_READ | PERM_WRITE;
        let mut initial = vec![TopicConfig::with_queues(SELF_TEST_TOPIC, 1, 1, rw)];
        if settings.auto_create_topic_enable {
            let n = settings.default_topic_queue_nums;
            initial.push(TopicConfig::with_queues(
                AUTO_CREATE_TOPIC_KEY_TOPIC,
                n,
                n,
                PERM_INHERIT | rw,
            ));
        }
        initial.push(TopicConfig::with_queues(BENCHMARK_TOPIC, 1024, 1024, rw));
        let cluster_perm = PERM_INHERIT | if settings.cluster_topic_enable { rw } else { 0 };
        initial.push(TopicConfig {
            perm: cluster_perm,
            ..TopicConfig::new(settings.cluster_name.clone())
        });
        let broker_perm = PERM_INHERIT | if settings.broker_topic_enable { rw } else { 0 };
        initial.push(TopicConfig::with_queues(
            settings.broker_name.clone(),
            1,
            1,
            broker_perm,
        ));
        initial.push(TopicConfig::with_queues(OFFSET_MOVED_EVENT, 1, 1, rw));
        initial.push(TopicConfig::with_queues(
            SCHEDULE_TOPIC,
            SCHEDULE_TOPIC_QUEUE_NUMS,
            SCHEDULE_TOPIC_QUEUE_NUMS,
            rw,
        ));
        if settings.timer_topic_enable {
            initial.push(TopicConfig::with_queues(TIMER_TOPIC, 1, 1, rw));
            system_topics.insert(TIMER_TOPIC.to_owned());
        }
        if let Some(trace) = &settings.trace_topic {
            initial.push(TopicConfig::with_queues(trace.clone(), 1, 1, rw));
            system_topics.insert(trace.clone());
        }
        let reply = format!("{}_{REPLY_TOPIC_POSTFIX}", settings.cluster_name);
        initial.push(TopicConfig::with_queues(reply.clone(), 1, 1, rw));
        initial.push(TopicConfig::with_queues(TRANS_HALF_TOPIC, 1, 1, rw));
        initial.push(TopicConfig::with_queues(TRANS_OP_HALF_TOPIC, 1, 1, rw));
        system_topics.insert(settings.cluster_name.clone());
        system_topics.insert(settings.broker_name.clone());
        system_topics.insert(reply);
        let topics = initial
            .into_iter()
            .map(|t| (t.topic_name.clone(), t))
            .collect();
        TopicConfigTable {
            settings,
            topics,
            system_topics,
            data_version: DataVersion::new(),
            dirty: false,
            changes: ChangeSet::default(),
            view_changes: ChangeSet::default(),
        }
    }

    pub fn settings(&self) -> &TopicTableSettings {
        &self.settings
    }

    pub fn data_version(&self) -> DataVersion {
        self.data_version
    }

    pub fn get(&self, topic: &str) -> Option<&TopicConfig> {
        self.topics.get(topic)
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// All topics, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &TopicConfig> {
        self.topics.values()
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Topics besides the system topics the broker itself creates (the fixed set, the
    /// cluster/broker-name and reply topics): what `maxAutoCreatedTopics` counts, whoever
    /// created them. A few lookups, not a scan.
    pub fn non_system_count(&self) -> usize {
        let system = self.system_topics.iter().filter(|t| self.topics.contains_key(t.as_str())).count();
        self.topics.len() - system
    }

    /// Whether `topic` is a system topic: the fixed set, the cluster/broker-name and reply
    /// topics, or a 5.x `rmq_sys_` topic (Java `TopicValidator.isSystemTopic`).
    pub fn is_system_topic(&self, topic: &str) -> bool {
        self.system_topics.contains(topic) || topic.starts_with(SYSTEM_TOPIC_PREFIX)
    }

    /// Names of the system topics (GET_SYSTEM_TOPIC_LIST_FROM_BROKER, 305).
    pub fn system_topic_names(&self) -> Vec<String> {
        self.system_topics.iter().cloned().collect()
    }

    /// Validation for a topic named by a client or admin (UPDATE_AND_CREATE_TOPIC, send):
    /// charset and length ≤ 127, and not a system topic (5.x
    /// `validateSystemTopicWhenUpdateTopic`; 4.x refused only TBW102).
    pub fn validate_user_topic(&self, topic: &str) -> Result<(), TopicError> {
        validate_name(topic, MAX_TOPIC_NAME_LEN)?;
        if self.is_system_topic(topic) {
            return Err(TopicError::SystemTopic(topic.to_owned()));
        }
        Ok(())
    }

    /// Inserts or replaces a topic (UPDATE_AND_CREATE_TOPIC after [`Self::validate_user_topic`],
    /// name-server order updates, slave sync). Validates the config (not the system-topic rule,
    /// which is the admin handler's). Returns whether anything changed; the version is bumped
    /// and the table marked dirty only then.
    pub fn create_or_update(&mut self, config: TopicConfig) -> Result<bool, TopicError> {
        validate_topic(&config, MAX_GROUP_TOPIC_NAME_LEN)?;
        if self.topics.get(&config.topic_name) == Some(&config) {
            return Ok(false);
        }
        let name = config.topic_name.clone();
        self.topics.insert(config.topic_name.clone(), config);
        self.changed(Some(&name));
        Ok(true)
    }

    /// Removes a topic (DELETE_TOPIC_IN_BROKER). The caller also drops its offsets and queues.
    pub fn delete(&mut self, topic: &str) -> Option<TopicConfig> {
        let removed = self.topics.remove(topic);
        if removed.is_some() {
            self.changed(Some(topic));
        }
        removed
    }

    /// The send path's auto-creation (Java `createTopicInSendMessageMethod`): an existing topic
    /// is returned as is. Otherwise `default_topic` (the request's `defaultTopic`, normally
    /// TBW102) must exist and carry PERM_INHERIT — TBW102 counts as RW only (no inherit) when
    /// `autoCreateTopicEnable` is off. The new topic gets `min(requested_queue_nums, default
    /// topic's writeQueueNums)` read and write queues (a `requested_queue_nums` ≤ 0 — Java
    /// would create a topic with 0 queues — takes the default topic's count), the default
    /// topic's perm without PERM_INHERIT, its filter type, and `topic_sys_flag`.
    /// The topic name is validated as a user topic first.
    pub fn auto_create(
        &mut self,
        topic: &str,
        default_topic: &str,
        requested_queue_nums: i32,
        topic_sys_flag: i32,
    ) -> Result<Ensured, TopicError> {
        if let Some(existing) = self.topics.get(topic) {
            return Ok(Ensured {
                config: existing.clone(),
                created: false,
            });
        }
        if topic == DEFAULT_TRACE_TOPIC {
            // Clients with message trace on create the trace topic by sending to it, as with
            // a Java broker (whose send path does not refuse system topics).
            validate_name(topic, MAX_TOPIC_NAME_LEN)?;
        } else {
            self.validate_user_topic(topic)?;
        }
        let Some(template) = self.topics.get(default_topic) else {
            return Err(TopicError::DefaultTopicMissing(default_topic.to_owned()));
        };
        let mut template_perm = template.perm;
        if default_topic == AUTO_CREATE_TOPIC_KEY_TOPIC && !self.settings.auto_create_topic_enable {
            template_perm = PERM_READ | PERM_WRITE;
        }
        if !perm_inherited(template_perm) {
            return Err(TopicError::NoInheritPermission(default_topic.to_owned()));
        }
        let queue_nums = if requested_queue_nums <= 0 {
            template.write_queue_nums
        } else {
            requested_queue_nums.min(template.write_queue_nums)
        }
        .max(0);
        let config = TopicConfig {
            topic_filter_type: template.topic_filter_type.clone(),
            topic_sys_flag,
            ..TopicConfig::with_queues(topic, queue_nums, queue_nums, template_perm & !PERM_INHERIT)
        };
        self.topics.insert(topic.to_owned(), config.clone());
        self.changed(Some(topic));
        Ok(Ensured {
            config,
            created: true,
        })
    }

    /// Creates `topic` with the given shape if absent (Java
    /// `createTopicInSendMessageBackMethod`); an existing topic is returned unchanged. Used for
    /// retry, DLQ and transaction topics. The name is checked for charset and length ≤ 255.
    pub fn ensure_topic(
        &mut self,
        topic: &str,
        queue_nums: i32,
        perm: i32,
        order: bool,
        topic_sys_flag: i32,
    ) -> Result<Ensured, TopicError> {
        if let Some(existing) = self.topics.get(topic) {
            return Ok(Ensured {
                config: existing.clone(),
                created: false,
            });
        }
        let config = TopicConfig {
            order,
            topic_sys_flag,
            ..TopicConfig::with_queues(topic, queue_nums, queue_nums, perm)
        };
        validate_topic(&config, MAX_GROUP_TOPIC_NAME_LEN)?;
        self.topics.insert(topic.to_owned(), config.clone());
        self.changed(Some(topic));
        Ok(Ensured {
            config,
            created: true,
        })
    }

    /// `%RETRY%<group>` with `retry_queue_nums` queues (the group's `retryQueueNums`, 1 by
    /// default), perm 6; `order` when the group subscribes an order topic (HEART_BEAT, §2.1).
    pub fn create_retry_topic(
        &mut self,
        group: &str,
        retry_queue_nums: i32,
        order: bool,
    ) -> Result<Ensured, TopicError> {
        self.ensure_topic(
            &retry_topic(group),
            retry_queue_nums,
            PERM_READ | PERM_WRITE,
            order,
            0,
        )
    }

    /// Applies the name server's ORDER_TOPIC_CONFIG KV table (REGISTER_BROKER response, §8.3;
    /// Java `updateOrderTopicConfig`): topics named there become `order=true`, other order
    /// topics become `order=false`. Returns whether anything changed.
    pub fn update_order_topics(&mut self, order_topics: &BTreeSet<String>) -> bool {
        let mut changed = false;
        for (name, config) in self.topics.iter_mut() {
            let order = order_topics.contains(name);
            if config.order != order {
                config.order = order;
                changed = true;
            }
        }
        if changed {
            // Rare (the name server's order table moved): the whole file is rewritten.
            self.changed(None);
        }
        changed
    }

    /// The topics changed since the last call (names, or `whole` for any number), cleared.
    pub fn take_view_changes(&mut self) -> ChangeSet {
        std::mem::take(&mut self.view_changes)
    }

    /// Whether `topic` is an order topic.
    pub fn is_order(&self, topic: &str) -> bool {
        self.topics.get(topic).is_some_and(|t| t.order)
    }

    /// A new data version without a change of any topic: the name servers rebuild this
    /// broker's queue data from its next registration (the broker's permission changed).
    pub fn bump_data_version(&mut self) {
        self.data_version.bump();
    }

    /// A change of the topic `name` (`None`: of many at once, written as a whole file).
    fn changed(&mut self, name: Option<&str>) {
        self.data_version.bump();
        self.dirty = true;
        match name {
            Some(name) => {
                self.changes.entry(name);
                self.view_changes.entry(name);
            }
            None => {
                self.changes.whole();
                self.view_changes.whole();
            }
        }
    }

    /// The REGISTER_BROKER body (§2.6) with every topic, as a 5.x Java broker sends it:
    /// `{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{..},
    /// "mappingDataVersion":{..},"topicConfigTable":{..},"topicQueueMappingDetailMap":{},
    /// "topicQueueMappingInfoMap":{}}}`. When `broker_permission` lacks read or write, each
    /// topic's perm is ANDed with it (Java `registerBrokerAll`).
    pub fn to_register_body_json(&self, broker_permission: i32) -> Vec<u8> {
        self.register_body(self.topics.values(), broker_permission)
    }

    /// The incremental registration body for the named topics only (Java registers a created
    /// or updated topic on its own); unknown names are skipped. Carries the full data version.
    pub fn to_register_body_json_for(&self, topics: &[&str], broker_permission: i32) -> Vec<u8> {
        let selected: BTreeSet<&str> = topics.iter().copied().collect();
        self.register_body(
            selected.into_iter().filter_map(|t| self.topics.get(t)),
            broker_permission,
        )
    }

    fn register_body<'a>(
        &self,
        topics: impl Iterator<Item = &'a TopicConfig>,
        broker_permission: i32,
    ) -> Vec<u8> {
        let mask = if perm_readable(broker_permission) && perm_writeable(broker_permission) {
            None
        } else {
            Some(broker_permission)
        };
        let mut out = Vec::with_capacity(256 + self.topics.len() * 200);
        out.extend_from_slice(
            b"{\"filterServerList\":[],\"topicConfigSerializeWrapper\":{\"dataVersion\":",
        );
        self.data_version.write_json(&mut out);
        out.extend_from_slice(b",\"mappingDataVersion\":");
        DataVersion::default().write_json(&mut out);
        out.extend_from_slice(b",\"topicConfigTable\":");
        write_topic_table(&mut out, topics, mask);
        out.extend_from_slice(
            b",\"topicQueueMappingDetailMap\":{},\"topicQueueMappingInfoMap\":{}}}",
        );
        out
    }

    /// TopicConfigSerializeWrapper: `{"dataVersion":{..},"topicConfigTable":{..}}` — the
    /// GET_ALL_TOPIC_CONFIG body and the `topics.json` content.
    pub fn to_wrapper_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.topics.len() * 200);
        out.extend_from_slice(b"{\"dataVersion\":");
        self.data_version.write_json(&mut out);
        out.extend_from_slice(b",\"topicConfigTable\":");
        write_topic_table(&mut out, self.topics.values(), None);
        out.push(b'}');
        out
    }

    /// Builds the start-up table: the system topics of [`Self::new`], overlaid with the topics
    /// of `path` (a file written by FerroMQ or by a Java broker; stored topics win, as in Java,
    /// where the file is loaded after the constructor). Missing file = system topics only;
    /// corrupt file = error naming it. The stored data version is kept and then bumped once,
    /// like Java's start-up, so name servers see a new version. TBW102 keeps its stored config
    /// even when `autoCreateTopicEnable` is now off; [`Self::auto_create`] ignores its inherit
    /// bit then.
    pub fn load(path: &Path, settings: TopicTableSettings) -> Result<Self, PersistError> {
        overlay_config_file(path, Self::new(settings), Self::merge_wrapper_json)
    }

    /// Overlays the topics of a TopicConfigSerializeWrapper body (topics.json, or a master's
    /// GET_ALL_TOPIC_CONFIG answer) onto the table and adopts its data version (then bumped).
    /// Returns one warning per skipped entry. Only a body that is not an object or whose
    /// `topicConfigTable` is not an object is an error.
    pub fn merge_wrapper_json(&mut self, body: &[u8]) -> Result<Vec<String>, String> {
        let parsed = TopicWrapper::parse(body)?;
        self.topics.extend(parsed.topics);
        if let Some(v) = parsed.data_version {
            self.data_version = v;
        }
        self.data_version.bump();
        Ok(parsed.warnings)
    }

    /// A slave's copy of its master's table (§7.5, Java `syncTopicConfig`): when the master's
    /// data version differs from this table's, the table becomes the master's topics and
    /// version exactly (not bumped, so the next sync of an unchanged master changes nothing)
    /// and is marked dirty. Returns whether it changed.
    pub fn replace_with_master(&mut self, master: TopicWrapper) -> bool {
        let Some(version) = self.data_version.copied_from(master.data_version) else { return false };
        self.topics = master.topics;
        self.data_version = version;
        self.dirty = true;
        self.changes.whole();
        self.view_changes.whole();
        true
    }
}

/// A TopicConfigSerializeWrapper as read (topics.json, a master's GET_ALL_TOPIC_CONFIG answer).
#[derive(Debug, Clone, Default)]
pub struct TopicWrapper {
    pub data_version: Option<DataVersion>,
    pub topics: BTreeMap<String, TopicConfig>,
    /// One per skipped entry.
    pub warnings: Vec<String>,
}

impl TopicWrapper {
    /// Reads the body leniently: unreadable or invalid entries are skipped with a warning; only
    /// a body that is not an object or whose `topicConfigTable` is not an object is an error.
    pub fn parse(body: &[u8]) -> Result<TopicWrapper, String> {
        let root = parse_object_tolerant(body).map_err(|e| e.to_string())?;
        let mut parsed = TopicWrapper { data_version: DataVersion::from_value(root.get("dataVersion")), ..TopicWrapper::default() };
        match root.get("topicConfigTable") {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                for (name, value) in entries {
                    match TopicConfig::from_value(value, Some(name)) {
                        Some(mut config) => {
                            // The map key is authoritative, as in Java's table.
                            config.topic_name.clone_from(name);
                            match validate_topic(&config, MAX_GROUP_TOPIC_NAME_LEN) {
                                Ok(()) => {
                                    parsed.topics.insert(name.clone(), config);
                                }
                                Err(e) => parsed.warnings.push(format!("topic {name:?} skipped: {e}")),
                            }
                        }
                        None if value.is_null() => {}
                        None => parsed.warnings.push(format!("topic {name:?} is not an object; skipped")),
                    }
                }
            }
            Some(_) => return Err("topicConfigTable is not an object".to_owned()),
        }
        Ok(parsed)
    }
}

impl JournaledTable for TopicConfigTable {
    fn changes_mut(&mut self) -> &mut ChangeSet {
        &mut self.changes
    }
    fn entry_json(&self, name: &str) -> Option<Vec<u8>> {
        let config = self.topics.get(name)?;
        let mut out = Vec::with_capacity(256);
        config.write_json_with_perm(&mut out, config.perm);
        Some(out)
    }
    fn version_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.data_version.write_json(&mut out);
        out
    }
    fn apply_journal(&mut self, changes: super::journal::JournalChanges) -> Result<Vec<String>, String> {
        let warnings = self.merge_wrapper_json(&super::journal::journal_wrapper("topicConfigTable", &changes))?;
        for (name, entry) in &changes.entries {
            if entry.is_none() {
                self.topics.remove(name);
            }
        }
        Ok(warnings)
    }
}

impl PersistedTable for TopicConfigTable {
    fn file_json(&self) -> Vec<u8> {
        self.to_wrapper_json()
    }
    fn is_dirty(&self) -> bool {
        self.dirty
    }
    fn set_dirty(&mut self, dirty: bool) {
        self.dirty = dirty;
    }
}

fn write_topic_table<'a>(
    out: &mut Vec<u8>,
    topics: impl Iterator<Item = &'a TopicConfig>,
    perm_mask: Option<i32>,
) {
    out.push(b'{');
    for (i, t) in topics.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_key(out, &t.topic_name);
        t.write_json_with_perm(out, perm_mask.map_or(t.perm, |m| t.perm & m));
    }
    out.push(b'}');
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::meta::test_util::temp_dir;

    fn table() -> TopicConfigTable {
        TopicConfigTable::new(TopicTableSettings {
            cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            ..TopicTableSettings::default()
        })
    }

    #[test]
    fn system_topics() {
        let t = table();
        let tbw = t.get("TBW102").unwrap();
        assert_eq!(
            (tbw.read_queue_nums, tbw.write_queue_nums, tbw.perm),
            (8, 8, 7)
        );
        assert_eq!(t.get(SCHEDULE_TOPIC).unwrap().write_queue_nums, 18);
        assert_eq!(t.get("DefaultCluster").unwrap().perm, 7);
        assert_eq!(t.get("DefaultCluster").unwrap().write_queue_nums, 16);
        let b = t.get("broker-a").unwrap();
        assert_eq!((b.write_queue_nums, b.perm), (1, 7));
        for name in [
            SELF_TEST_TOPIC,
            BENCHMARK_TOPIC,
            OFFSET_MOVED_EVENT,
            TRANS_HALF_TOPIC,
            TRANS_OP_HALF_TOPIC,
            "DefaultCluster_REPLY_TOPIC",
        ] {
            assert!(t.contains(name), "{name}");
            assert!(t.is_system_topic(name), "{name}");
        }
        assert!(!t.contains(DEFAULT_TRACE_TOPIC));
        assert!(t.is_system_topic("rmq_sys_anything"));
        assert!(!t.is_system_topic("TopicTest"));
        assert!(!t.is_dirty());

        let off = TopicConfigTable::new(TopicTableSettings {
            auto_create_topic_enable: false,
            cluster_topic_enable: false,
            broker_topic_enable: false,
            trace_topic: Some(DEFAULT_TRACE_TOPIC.into()),
            ..TopicTableSettings::default()
        });
        assert!(!off.contains("TBW102"));
        assert_eq!(off.get("DefaultCluster").unwrap().perm, 1);
        assert_eq!(off.get("broker-a").unwrap().perm, 1);
        assert_eq!(off.get(DEFAULT_TRACE_TOPIC).unwrap().write_queue_nums, 1);
    }

    #[test]
    fn auto_create_rules() {
        let mut t = table();
        let v0 = t.data_version();
        let e = t.auto_create("TopicTest", "TBW102", 4, 0).unwrap();
        assert!(e.created);
        assert_eq!(
            (
                e.config.read_queue_nums,
                e.config.write_queue_nums,
                e.config.perm
            ),
            (4, 4, 6)
        );
        assert_eq!(t.data_version().counter, v0.counter + 1);
        assert!(t.is_dirty());
        // Existing: returned unchanged, no version bump.
        let again = t.auto_create("TopicTest", "TBW102", 2, 0).unwrap();
        assert!(!again.created);
        assert_eq!(again.config.write_queue_nums, 4);
        assert_eq!(t.data_version().counter, v0.counter + 1);
        // More queues requested than TBW102 has: capped at 8; <= 0 takes 8.
        assert_eq!(
            t.auto_create("Big", "TBW102", 64, 0)
                .unwrap()
                .config
                .write_queue_nums,
            8
        );
        assert_eq!(
            t.auto_create("Zero", "TBW102", 0, 0)
                .unwrap()
                .config
                .write_queue_nums,
            8
        );
        // Inherit from the cluster topic (perm 7, 16 queues) works too.
        assert_eq!(
            t.auto_create("ViaCluster", "DefaultCluster", 12, 0)
                .unwrap()
                .config
                .write_queue_nums,
            12
        );
        // A template without inherit permission, or missing.
        assert_eq!(
            t.auto_create("X", SELF_TEST_TOPIC, 4, 0),
            Err(TopicError::NoInheritPermission(SELF_TEST_TOPIC.into()))
        );
        assert_eq!(
            t.auto_create("X", "Nope", 4, 0),
            Err(TopicError::DefaultTopicMissing("Nope".into()))
        );
        // Bad and reserved names.
        assert!(matches!(
            t.auto_create("bad topic", "TBW102", 4, 0),
            Err(TopicError::InvalidName(_))
        ));
        assert!(matches!(
            t.auto_create(&"a".repeat(128), "TBW102", 4, 0),
            Err(TopicError::InvalidName(NameError::TooLong { .. }))
        ));
        assert!(matches!(
            t.auto_create("rmq_sys_x", "TBW102", 4, 0),
            Err(TopicError::SystemTopic(_))
        ));
    }

    #[test]
    fn auto_create_disabled_ignores_stored_tbw102_inherit() {
        let mut t = TopicConfigTable::new(TopicTableSettings {
            auto_create_topic_enable: false,
            ..TopicTableSettings::default()
        });
        // As if loaded from an old topics.json.
        t.create_or_update(TopicConfig::with_queues("TBW102", 8, 8, 7))
            .unwrap();
        assert_eq!(
            t.auto_create("T", "TBW102", 4, 0),
            Err(TopicError::NoInheritPermission("TBW102".into()))
        );
    }

    #[test]
    fn retry_dlq_and_updates() {
        let mut t = table();
        let r = t.create_retry_topic("g1", 1, true).unwrap();
        assert!(r.created);
        assert_eq!(r.config.topic_name, "%RETRY%g1");
        assert_eq!(
            (r.config.write_queue_nums, r.config.perm, r.config.order),
            (1, 6, true)
        );
        assert!(!t.create_retry_topic("g1", 3, false).unwrap().created);
        let d = t.ensure_topic(&dlq_topic("g1"), DLQ_QUEUE_NUMS, PERM_READ | PERM_WRITE, false, 0).unwrap();
        assert_eq!(
            (d.config.topic_name.as_str(), d.config.write_queue_nums),
            ("%DLQ%g1", 1)
        );
        assert!(t.create_retry_topic(&"g".repeat(249), 1, false).is_err());

        assert!(t.validate_user_topic("TBW102").is_err());
        assert!(t.validate_user_topic("broker-a").is_err());
        assert!(t.validate_user_topic("%RETRY%g1").is_ok());

        let mut cfg = TopicConfig::with_queues("T", 4, 4, 6);
        assert!(t.create_or_update(cfg.clone()).unwrap());
        let v = t.data_version();
        assert!(!t.create_or_update(cfg.clone()).unwrap());
        assert_eq!(t.data_version(), v);
        cfg.attributes
            .insert("+message.type".into(), "NORMAL".into());
        assert!(t.create_or_update(cfg).unwrap());
        assert!(
            t.create_or_update(TopicConfig::with_queues("T", 4, 5000, 6))
                .is_err()
        );
        assert!(
            t.create_or_update(TopicConfig::with_queues("T", 4, 4, 16))
                .is_err()
        );

        let order: BTreeSet<String> = ["T".to_owned()].into();
        assert!(t.update_order_topics(&order));
        assert!(t.is_order("T"));
        assert!(!t.is_order("%RETRY%g1"));
        assert!(!t.update_order_topics(&order));

        assert!(t.delete("T").is_some());
        assert!(t.delete("T").is_none());
        assert!(!t.contains("T"));
        for name in NOT_ALLOWED_SEND_TOPICS {
            assert!(is_not_allowed_send_topic(name), "{name}");
            assert!(t.is_system_topic(name), "{name}: every refused topic is a system topic");
        }
        for name in ["T", BENCHMARK_TOPIC, DEFAULT_TRACE_TOPIC, "DefaultCluster"] {
            assert!(!is_not_allowed_send_topic(name), "{name}");
        }
        // Beyond Java: the auto-create template and 5.x rmq_sys_ topics.
        for name in [AUTO_CREATE_TOPIC_KEY_TOPIC, "rmq_sys_any"] {
            assert!(is_not_allowed_send_topic(name) && t.is_system_topic(name), "{name}");
        }
    }

    #[test]
    fn register_body_parses_and_masks_perm() {
        let mut t = table();
        t.auto_create("TopicTest", "TBW102", 4, 0).unwrap();
        let body = t.to_register_body_json(6);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["filterServerList"], serde_json::json!([]));
        let w = &v["topicConfigSerializeWrapper"];
        assert_eq!(w["dataVersion"]["counter"], t.data_version().counter);
        let tt = &w["topicConfigTable"]["TopicTest"];
        assert_eq!(
            *tt,
            serde_json::json!({"attributes":{},"order":false,"perm":6,"readQueueNums":4,
                "topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,
                "writeQueueNums":4})
        );
        assert_eq!(w["topicConfigTable"]["TBW102"]["perm"], 7);
        assert_eq!(w["topicConfigTable"].as_object().unwrap().len(), t.len());
        // Exact bytes of one entry (fastjson key order).
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(
            r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":"#
        ));
        assert!(text.contains(r#""TopicTest":{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":4}"#));
        // Read-only broker: perms masked.
        let ro: Value = serde_json::from_slice(&t.to_register_body_json(4)).unwrap();
        assert_eq!(
            ro["topicConfigSerializeWrapper"]["topicConfigTable"]["TopicTest"]["perm"],
            4
        );
        assert_eq!(
            ro["topicConfigSerializeWrapper"]["topicConfigTable"]["TBW102"]["perm"],
            4
        );
        // Incremental.
        let one: Value =
            serde_json::from_slice(&t.to_register_body_json_for(&["TopicTest", "nope"], 6))
                .unwrap();
        let table = one["topicConfigSerializeWrapper"]["topicConfigTable"]
            .as_object()
            .unwrap();
        assert_eq!(table.keys().collect::<Vec<_>>(), vec!["TopicTest"]);
    }

    #[test]
    fn wrapper_and_persistence_round_trip() {
        let dir = temp_dir("topics");
        let path = dir.join("topics.json");
        let settings = TopicTableSettings::default();
        let t0 = TopicConfigTable::load(&path, settings.clone()).unwrap();
        assert_eq!(t0.len(), table().len());
        let mut t = table();
        t.auto_create("TopicTest", "TBW102", 4, 0).unwrap();
        let mut custom = TopicConfig::with_queues("Ordered", 2, 3, 6);
        custom.order = true;
        custom.topic_sys_flag = 1;
        custom.topic_filter_type = MULTI_TAG.into();
        custom
            .attributes
            .insert("message.type".into(), "FIFO".into());
        t.create_or_update(custom.clone()).unwrap();
        t.persist(&path).unwrap();
        assert!(!t.is_dirty());
        let back = TopicConfigTable::load(&path, settings).unwrap();
        assert_eq!(back.get("Ordered"), Some(&custom));
        assert_eq!(back.get("TopicTest"), t.get("TopicTest"));
        assert_eq!(back.len(), t.len());
        assert_eq!(back.data_version().counter, t.data_version().counter + 1);
        let wrapper: Value = serde_json::from_slice(&t.to_wrapper_json()).unwrap();
        assert!(wrapper["dataVersion"].is_object());
        assert!(wrapper["topicConfigTable"]["Ordered"].is_object());
        std::fs::write(&path, b"{\"topicConfigTable\":{\"A\":").unwrap();
        let err = TopicConfigTable::load(&path, TopicTableSettings::default()).unwrap_err();
        assert!(err.to_string().contains("topics.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tolerant_load_of_java_file() {
        // A Java 5.x topics.json: pretty, 5.x mapping fields with unquoted keys, a topic with
        // string numbers and missing fields, a broken entry, a null entry.
        let java = "{\n\t\"dataVersion\":{\"counter\":41,\"stateVersion\":0,\"timestamp\":1700000000000},\n\t\"mappingDataVersion\":{\"counter\":0,\"timestamp\":0},\n\t\"topicConfigTable\":{\n\t\t\"TopicTest\":{\"attributes\":{},\"order\":false,\"perm\":6,\"readQueueNums\":4,\"topicFilterType\":\"SINGLE_TAG\",\"topicName\":\"TopicTest\",\"topicSysFlag\":0,\"writeQueueNums\":4},\n\t\t\"Lazy\":{\"readQueueNums\":\"2\",\"writeQueueNums\":2},\n\t\t\"Broken\":[1,2],\n\t\t\"BadQ\":{\"readQueueNums\":-5},\n\t\t\"Nothing\":null\n\t},\n\t\"topicQueueMappingInfoMap\":{},\n\t\"topicQueueMappingDetailMap\":{\"x\":{0:1}}\n}";
        let mut t = table();
        let warnings = t.merge_wrapper_json(java.as_bytes()).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(t.get("TopicTest").unwrap().write_queue_nums, 4);
        let lazy = t.get("Lazy").unwrap();
        assert_eq!(
            (
                lazy.read_queue_nums,
                lazy.perm,
                lazy.topic_filter_type.as_str()
            ),
            (2, 6, "SINGLE_TAG")
        );
        assert!(!t.contains("Broken") && !t.contains("BadQ") && !t.contains("Nothing"));
        assert_eq!(t.data_version().counter, 42);
        assert!(t.contains("TBW102"));
        assert!(t.merge_wrapper_json(b"{\"topicConfigTable\":[]}").is_err());
        assert!(t.merge_wrapper_json(b"nope").is_err());
    }
}
