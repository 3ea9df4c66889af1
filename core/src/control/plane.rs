//! The control-plane state and how each command changes it.
//!
//! Ownership: one [`ControlPlane`] per broker, owned by the control thread (`service.rs`) and
//! touched by nothing else. It holds the topic, subscription-group, client, offset and lock
//! tables, has the metadata files (`topics.json`, `subscriptionGroup.json`,
//! `consumerOffset.json` under `<storePathRootDir>/config`) written, and publishes the
//! [`ControlView`] shards read. Everything here is synchronous: a command is applied, its answer
//! and its side effects (a new view, a file write, a notification to a shard) are collected in
//! a [`Batch`], and [`ControlPlane::finish`] carries them out once per batch of commands.
//!
//! Persistence of topics and groups is batched and journaled: `finish` serializes the changed
//! entries of each table (journal records, `meta/journal.rs`) only when the metadata writer
//! (`writer.rs`) is idle and hands them over; changes made while a write is in flight wait,
//! coalesced, for the next one. The whole file is serialized only to compact the journal (once
//! it outgrows the file, [`journal::compaction_due`]), after a failed write, for changes that
//! are not per entry, and at stop — so a change costs O(1), not O(table). An admin change
//! (UPDATE_AND_CREATE_TOPIC, DELETE_TOPIC_IN_BROKER, UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
//! DELETE_SUBSCRIPTIONGROUP) is answered only once a write containing it is on disk — group
//! commit, as the commit log does for messages; auto-creations (sends, heartbeats,
//! send-backs) are answered once visible in the view, and reach the file with the next write.
//!
//! Limits: a topic or group the broker would create on its own is refused beyond
//! `maxAutoCreatedTopics` / `maxAutoCreatedSubscriptionGroups` (see [`ControlPlane::auto_group`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::codes::request_code;
use ferromq_store::{QueueId, TagFilter};
use tracing::{error, info, warn};

use super::command::{Command, ControlFigures, GroupOffsets, OffsetKey, RetryGroup};
use super::handle::{ControlHandle, ControlView, ReadBrokers, ShardEvent, SubscriptionFilter, TopicViews};
use super::writer::{FileWrite, MetaFile, MetaWriter, WriteFaults, WriteJob, WriteOutcome};
use crate::clients::consumers::ConsumerManager;
use crate::clients::heartbeat::{HeartbeatData, SubscriptionData};
use crate::clients::locks::LockTable;
use crate::clients::producers::ProducerManager;
use crate::clients::{ChannelId, ClientInfo};
use crate::error::{BrokerError, BrokerResult};
use crate::meta::journal::{self, JournalSize};
use crate::meta::journal::JournaledTable;
use crate::meta::{DataVersion, PersistedTable};
use crate::meta::groups::{GroupWrapper, SubscriptionGroupConfig, SubscriptionGroupTable};
use crate::meta::delay_offsets::DelayOffsets;
use crate::meta::offsets::ConsumerOffsets;
use crate::meta::topics::{self, TopicConfig, TopicConfigTable, TopicWrapper};

/// The control-plane files under `<storePathRootDir>/config`, named as the Java broker names them.
pub const TOPICS_FILE: &str = "topics.json";
pub const GROUPS_FILE: &str = "subscriptionGroup.json";
pub const OFFSETS_FILE: &str = "consumerOffset.json";
pub const DELAY_OFFSETS_FILE: &str = "delayOffset.json";

type Answer = Box<dyn FnOnce() + Send>;

/// [`ControlPlane::group_refusal`]'s flag: refused only by the topic limit.
const TOPIC_LIMIT: bool = true;

/// How often a refused auto-creation is logged at most (the rest are counted).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The side effects of a batch of commands, carried out by [`ControlPlane::finish`].
#[derive(Default)]
pub struct Batch {
    /// Answers, sent once the view is published.
    replies: Vec<Answer>,
    /// Answers of admin changes, sent once a file write containing the change completed.
    durable_replies: Vec<Answer>,
    /// Groups to send NOTIFY_CONSUMER_IDS_CHANGED to.
    notify: BTreeSet<String>,
    topics_changed: bool,
    subscriptions_changed: bool,
    /// Offsets were dropped (a topic deleted): written before the answer, not at the next
    /// periodic flush, so a crash cannot bring them back for a topic created again.
    offsets_dropped: bool,
}

impl Batch {
    fn reply<T: Send + 'static>(&mut self, reply: super::command::Reply<T>, value: T) {
        self.replies.push(Box::new(move || {
            let _ = reply.send(value);
        }));
    }

    /// An answer that waits until the change it confirms is in `topics.json` /
    /// `subscriptionGroup.json` (group commit with the other changes of the same write).
    fn reply_when_written<T: Send + 'static>(&mut self, reply: super::command::Reply<T>, value: T) {
        self.durable_replies.push(Box::new(move || {
            let _ = reply.send(value);
        }));
    }

    /// Whether the topic set changed (the name servers must hear of it).
    pub fn topics_changed(&self) -> bool {
        self.topics_changed
    }
}

/// A slave's copy of its master's metadata (§7.5): the answers to GET_ALL_TOPIC_CONFIG,
/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG, GET_ALL_CONSUMER_OFFSET and GET_ALL_DELAY_OFFSET, parsed
/// (`slave_sync.rs` fetches them; [`ControlPlane::apply_master_metadata`] applies them).
pub struct MasterMetadata {
    pub topics: TopicWrapper,
    pub groups: GroupWrapper,
    pub offsets: ConsumerOffsets,
    pub delay_offsets: DelayOffsets,
    /// Offsets this slave pushed back to the master before the copy (committed here while
    /// the master was unreachable, and larger than the master's): they stay as they are.
    pub pushed: Vec<(OffsetKey, i64)>,
}

/// What applying a [`MasterMetadata`] changed, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MasterSyncOutcome {
    pub topics_replaced: bool,
    pub groups_replaced: bool,
    pub offsets_changed: bool,
    pub delay_offsets_changed: bool,
}

/// The tables the control thread owns.
pub struct ControlPlane {
    handle: Arc<ControlHandle>,
    config_dir: PathBuf,
    topics: TopicConfigTable,
    groups: SubscriptionGroupTable,
    consumers: ConsumerManager,
    producers: ProducerManager,
    offsets: ConsumerOffsets,
    delay_offsets: DelayOffsets,
    locks: LockTable,
    /// The topic configs of the last view, reused while unchanged.
    topic_views: HashMap<Arc<str>, Arc<TopicConfig>>,
    /// The last view's topics, updated per changed topic (shares its shards with the view).
    published_topics: TopicViews,
    view_version: u64,
    /// One sender per shard, for [`ShardEvent`]s.
    shard_events: Vec<async_channel::Sender<ShardEvent>>,
    /// The group table's version in the last view (the group set is rebuilt when it moves).
    groups_version: DataVersion,
    persistence: Persistence,
    refusals: RefusalLog,
    /// A slave: the offsets committed here (UPDATE_CONSUMER_OFFSET) since its last successful
    /// sync with its master, latest per queue — what goes back to the master after it was
    /// unreachable (`slave_sync.rs`). At most one entry per queue of the offset table; empty
    /// on a master.
    local_commits: HashMap<OffsetKey, i64>,
    /// ACL on: the account of the command being applied (sends and heartbeats carry it), and
    /// what each account auto-created since start — bounded by the accounts of the rules
    /// file. `maxAutoCreatedTopicsPerAccount` / `…SubscriptionGroupsPerAccount` cap it.
    account: Option<Arc<str>>,
    created_by_account: HashMap<Arc<str>, AccountCreations>,
}

/// Topics and groups one account had the broker auto-create since start.
#[derive(Debug, Default, Clone, Copy)]
struct AccountCreations {
    topics: usize,
    groups: usize,
}

/// The metadata writer and the admin answers waiting for it.
struct Persistence {
    writer: MetaWriter,
    /// A job is with the writer; its outcome has not been handled yet.
    in_flight: bool,
    /// Answers whose change is not in any write yet.
    waiting: Vec<Answer>,
    /// Answers whose change is in the write in flight.
    in_write: Vec<Answer>,
    /// The journal sizes of `topics.json` and `subscriptionGroup.json` as on disk.
    topics_journal: JournalSize,
    groups_journal: JournalSize,
    /// The sizes each file of the write in flight will have once written.
    in_write_sizes: Vec<(MetaFile, JournalSize)>,
    /// The tests' fault seam (no failures in production).
    faults: WriteFaults,
}

/// Rate-limits the WARN line of refused auto-creations.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RefusalLog {
    fn warn(&mut self, what: &str) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_INTERVAL) {
            self.suppressed += 1;
            return;
        }
        warn!(suppressed_since_last = self.suppressed, "{what}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

impl ControlPlane {
    /// The control plane's part of a metrics scrape (`crate::metrics`): one pass over the
    /// client tables and the offset table, copied.
    fn metrics_figures(&self) -> ControlFigures {
        let mut figures = ControlFigures {
            topics: self.topics.len(),
            groups: self.groups.len(),
            system_topics: self.topics.system_topic_names().into_iter().collect(),
            ..ControlFigures::default()
        };
        for client in self.producers.connections() {
            *figures.producer_connections.entry((client.language.clone(), client.version)).or_insert(0) += 1;
        }
        for group in self.consumers.groups() {
            for client in group.connections() {
                let key = (group.group().to_owned(), client.language.clone(), client.version, group.consume_type());
                *figures.consumer_connections.entry(key).or_insert(0) += 1;
            }
        }
        let mut offsets: std::collections::BTreeMap<(&str, &str), Vec<(QueueId, i64)>> = std::collections::BTreeMap::new();
        for (group, topic, queue_id, offset) in self.offsets.entries() {
            offsets.entry((group, topic)).or_default().push((queue_id, offset));
        }
        figures.offsets = offsets.into_iter().map(|((group, topic), queues)| (group.to_owned(), topic.to_owned(), queues)).collect();
        figures
    }
}

impl ControlPlane {
    /// Loads the metadata files from `config_dir` (missing files: defaults) and publishes the
    /// first view.
    pub fn load(handle: Arc<ControlHandle>, config_dir: PathBuf, shard_events: Vec<async_channel::Sender<ShardEvent>>) -> std::io::Result<ControlPlane> {
        std::fs::create_dir_all(&config_dir)?;
        let config = handle.config();
        let settings = topics::TopicTableSettings {
            cluster_name: config.broker.cluster_name.clone(),
            broker_name: config.broker.name.clone(),
            auto_create_topic_enable: config.topics.auto_create_topic_enable,
            default_topic_queue_nums: config.topics.default_topic_queue_nums as i32,
            cluster_topic_enable: config.topics.cluster_topic_enable,
            broker_topic_enable: config.topics.broker_topic_enable,
            trace_topic: config.topics.trace_topic_enable.then(|| config.topics.trace_topic_name.clone()),
            timer_topic_enable: config.timer.wheel_enable,
        };
        let load_error = |what: &str, e: &dyn std::fmt::Display| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("cannot load {what}: {e}"));
        let topics = TopicConfigTable::load(&config_dir.join(TOPICS_FILE), settings).map_err(|e| load_error(TOPICS_FILE, &e))?;
        let offsets = ConsumerOffsets::load(&config_dir.join(OFFSETS_FILE)).map_err(|e| load_error(OFFSETS_FILE, &e))?;
        let delay_offsets = DelayOffsets::load(&config_dir.join(DELAY_OFFSETS_FILE)).map_err(|e| load_error(DELAY_OFFSETS_FILE, &e))?;
        let mut groups = SubscriptionGroupTable::load(&config_dir.join(GROUPS_FILE), config.topics.auto_create_subscription_group)
            .map_err(|e| load_error(GROUPS_FILE, &e))?;
        let mut topics = topics;
        let topics_journal = journal::load_journal(&config_dir.join(TOPICS_FILE), &mut topics).map_err(|e| load_error(TOPICS_FILE, &e))?;
        let groups_journal = journal::load_journal(&config_dir.join(GROUPS_FILE), &mut groups).map_err(|e| load_error(GROUPS_FILE, &e))?;
        let faults = WriteFaults::from_env();
        let writer = MetaWriter::spawn(handle.metadata_file_writes.clone(), faults.clone())?;
        let mut plane = ControlPlane {
            handle,
            config_dir,
            topics,
            groups,
            consumers: ConsumerManager::default(),
            producers: ProducerManager::default(),
            offsets,
            delay_offsets,
            locks: LockTable::default(),
            topic_views: HashMap::new(),
            published_topics: TopicViews::default(),
            view_version: 0,
            shard_events,
            groups_version: DataVersion::default(),
            persistence: Persistence {
                writer,
                in_flight: false,
                waiting: Vec::new(),
                in_write: Vec::new(),
                topics_journal,
                groups_journal,
                in_write_sizes: Vec::new(),
                faults,
            },
            refusals: RefusalLog::default(),
            local_commits: HashMap::new(),
            account: None,
            created_by_account: HashMap::new(),
        };
        plane.publish(true, true);
        Ok(plane)
    }

    pub fn handle(&self) -> &Arc<ControlHandle> {
        &self.handle
    }

    /// Applies one command, collecting its answer and side effects in `batch`.
    pub fn apply(&mut self, command: Command, batch: &mut Batch) {
        match command {
            Command::TopicForSend { topic, default_topic, queue_nums, account, reply } => {
                self.account = account;
                let result = self.topic_for_send(&topic, &default_topic, queue_nums, batch);
                self.account = None;
                batch.reply(reply, result);
            }
            Command::UpdateTopic { config, reply } => {
                let result = self.update_topic(config, batch);
                batch.reply_when_written(reply, result);
            }
            Command::DeleteTopic { topic, reply } => {
                let removed = self.topics.delete(&topic).is_some();
                batch.offsets_dropped |= self.offsets.remove_topic(&topic);
                batch.topics_changed = true;
                batch.reply_when_written(reply, removed);
            }
            Command::AllTopicConfigJson { reply } => batch.reply(reply, self.topics.to_wrapper_json()),
            Command::RetryGroup { group, account, reply } => {
                self.account = account;
                let result = self.retry_group(&group, batch);
                self.account = None;
                batch.reply(reply, result);
            }
            Command::InternalTopic { topic, queue_nums, reply } => {
                let result = self.internal_topic(&topic, queue_nums, batch);
                batch.reply(reply, result);
            }
            Command::DelayOffsets { reply } => batch.reply(reply, self.delay_offsets.all()),
            Command::CommitDelayOffset { level, offset } => self.delay_offsets.set(level, offset),
            Command::DelayOffsetsJson { reply } => batch.reply(reply, self.delay_offsets.to_json()),
            Command::AllConsumerOffsetJson { reply } => batch.reply(reply, self.offsets.to_json()),
            Command::AllSubscriptionGroupJson { reply } => batch.reply(reply, self.groups.to_wrapper_json()),
            Command::NotifyConsumers { group, request, reply } => {
                // One connection per client (its most recently heard one), as Java picks.
                let channels = self.consumers.channels_to_notify(&group);
                let sent = channels.into_iter().filter(|channel| self.send_oneway(*channel, (*request).clone())).count();
                batch.reply(reply, sent);
            }
            Command::CloneGroupOffset { src, dest, topic, reply } => {
                self.offsets.clone_group(&src, &dest, topic.as_deref());
                batch.reply(reply, ());
            }
            Command::DeleteGroup { group, clean_offset, reply } => {
                let existed = self.groups.delete(&group).is_some();
                if clean_offset {
                    self.offsets.remove_group(&group);
                }
                batch.reply_when_written(reply, existed);
            }
            Command::ConsumerChannel { group, client_id, reply } => {
                let channel = self.consumers.find_client(&group, &client_id).map(|c| c.channel);
                batch.reply(reply, channel);
            }
            Command::ConsumerClients { group, reply } => {
                let clients = self.consumers.group(&group).map(|g| g.clients().cloned().collect()).unwrap_or_default();
                batch.reply(reply, clients);
            }
            Command::ProducerChannel { client_id, reply } => {
                let channel = self.producers.find_client(&client_id).map(|c| c.channel);
                batch.reply(reply, channel);
            }
            Command::TopicConsumers { topic, reply } => {
                let mut groups: BTreeSet<String> = self.consumers.groups_subscribing(&topic).into_iter().collect();
                groups.extend(self.offsets.groups_of_topic(&topic));
                batch.reply(reply, groups.into_iter().collect());
            }
            Command::SystemTopicNames { reply } => {
                let mut names = self.topics.system_topic_names();
                names.sort();
                batch.reply(reply, names);
            }
            Command::UpdateBrokerConfig { body, reply } => {
                let result = self.update_broker_config(&body, batch);
                batch.reply(reply, result);
            }
            Command::MetricsFigures { reply } => batch.reply(reply, self.metrics_figures()),
            Command::ChangeAcl { change, reply } => {
                let result = match self.handle.acl() {
                    Some(file) => crate::acl::apply_change(file, *change, ferromq_store::store::now_ms().max(0) as u64),
                    None => Err(crate::acl::acl_disabled()),
                };
                batch.reply(reply, result);
            }
            Command::CheckTransaction { producer_group, request, reply } => {
                let sent = self.check_transaction(&producer_group, *request);
                batch.reply(reply, sent);
            }
            Command::UpdateSubscriptionGroup { body, reply } => {
                let result = self.groups.create_or_update_from_json(&body).map(|(name, _)| name).map_err(|e| BrokerError::system(e.to_string()));
                batch.reply_when_written(reply, result);
            }
            Command::CommitOffsets { commits } => {
                let slave = self.handle.is_slave();
                for (key, offset) in commits {
                    self.offsets.commit(&key.group, &key.topic, key.queue_id, offset);
                    if slave {
                        self.local_commits.insert(key, offset);
                    }
                }
            }
            Command::QueryOffset { key, reply } => {
                let offset = self.offsets.query(&key.group, &key.topic, key.queue_id);
                batch.reply(reply, offset);
            }
            Command::GroupOffsets { group, topic, reply } => {
                let topics = match topic {
                    Some(topic) => vec![topic],
                    None => self.offsets.topics_of_group(&group),
                };
                let offsets: GroupOffsets = topics
                    .into_iter()
                    .map(|topic| {
                        let queues = self.offsets.queues_of(&group, &topic).map(|q| q.iter().map(|(q, o)| (*q, *o)).collect()).unwrap_or_default();
                        (topic, queues)
                    })
                    .collect();
                batch.reply(reply, offsets);
            }
            Command::Heartbeat { client, data, account, reply } => {
                self.account = account;
                self.heartbeat(*client, &data, batch);
                self.account = None;
                batch.reply(reply, ());
            }
            Command::UnregisterClient { client_id, producer_group, consumer_group, reply } => {
                if let Some(group) = producer_group.filter(|g| !g.is_empty()) {
                    self.producers.unregister_client(&group, &client_id);
                }
                if let Some(group) = consumer_group.filter(|g| !g.is_empty())
                    && self.consumers.unregister_client(&group, &client_id)
                {
                    batch.subscriptions_changed = true;
                    self.notify_if_enabled(&group, batch);
                }
                batch.reply(reply, ());
            }
            Command::ChannelClosed { channel } => {
                self.producers.channel_closed(channel);
                let changed = self.consumers.channel_closed(channel);
                if !changed.is_empty() {
                    batch.subscriptions_changed = true;
                }
                for group in changed {
                    self.notify_if_enabled(&group, batch);
                }
            }
            Command::ConsumerIds { group, reply } => batch.reply(reply, self.consumers.consumer_ids(&group)),
            Command::ConsumerConnectionListJson { group, reply } => batch.reply(reply, self.consumers.connection_list_json(&group)),
            Command::ProducerConnectionListJson { group, reply } => batch.reply(reply, self.producers.connection_list_json(&group)),
            Command::LockBatch { group, client_id, queues, reply } => {
                let locked = self.locks.try_lock_batch(&group, &client_id, &queues, ferromq_store::store::now_ms());
                batch.reply(reply, locked);
            }
            Command::UnlockBatch { group, client_id, queues, reply } => {
                self.locks.unlock_batch(&group, &client_id, &queues);
                batch.reply(reply, ());
            }
        }
    }

    /// Carries out a batch: publishes a new view if it changed, answers the commands (admin
    /// changes once their write completed), hands the changed topic and group files to the
    /// writer if it is idle, and sends the notifications.
    pub fn finish(&mut self, batch: Batch) {
        let groups_changed = self.groups.data_version() != self.groups_version;
        if batch.topics_changed || batch.subscriptions_changed || groups_changed {
            self.publish(batch.topics_changed, batch.subscriptions_changed);
        }
        // A deleted topic's consumer offsets are written before its delete is answered, so a
        // kill -9 cannot bring them back (the offsets file is the control thread's own).
        if batch.offsets_dropped {
            self.flush_offsets();
        }
        for reply in batch.replies {
            reply();
        }
        self.persistence.waiting.extend(batch.durable_replies);
        self.start_write();
        for group in batch.notify {
            self.notify_consumer_ids_changed(&group);
        }
    }

    /// Where the metadata writer reports each job's outcome ([`Self::write_finished`]).
    pub fn write_completions(&self) -> async_channel::Receiver<WriteOutcome> {
        self.persistence.writer.completions()
    }

    /// The dirty tables' writes as one job (clearing the dirty flags and change sets); the
    /// sizes each file will have once written go to `in_write_sizes`.
    fn snapshot(&mut self) -> WriteJob {
        let mut job = Vec::new();
        self.persistence.in_write_sizes.clear();
        if let Some((write, size)) = table_write(&mut self.topics, self.persistence.topics_journal) {
            job.push((MetaFile::Topics, self.config_dir.join(TOPICS_FILE), write));
            self.persistence.in_write_sizes.push((MetaFile::Topics, size));
        }
        if let Some((write, size)) = table_write(&mut self.groups, self.persistence.groups_journal) {
            job.push((MetaFile::Groups, self.config_dir.join(GROUPS_FILE), write));
            self.persistence.in_write_sizes.push((MetaFile::Groups, size));
        }
        job
    }

    /// A table whose write failed: dirty again, and written whole next time — its journal
    /// records are gone from the change set, and a whole-file write also resets a journal the
    /// failure may have left in doubt.
    fn write_failed(&mut self, file: MetaFile) {
        match file {
            MetaFile::Topics => {
                self.topics.mark_dirty();
                self.topics.changes_mut().whole();
            }
            MetaFile::Groups => {
                self.groups.mark_dirty();
                self.groups.changes_mut().whole();
            }
        }
    }

    /// The written files' new journal sizes (those not in `failed`).
    fn note_written(&mut self, failed: &WriteOutcome) {
        for (file, size) in std::mem::take(&mut self.persistence.in_write_sizes) {
            if failed.contains(&file) {
                continue;
            }
            match file {
                MetaFile::Topics => self.persistence.topics_journal = size,
                MetaFile::Groups => self.persistence.groups_journal = size,
            }
        }
    }

    /// If the writer is idle: hands it the changed files, and the answers waiting for them
    /// now wait for this write. With nothing to write, the waiting answers go at once. While a
    /// write is in flight, nothing happens: its completion calls this again.
    pub fn start_write(&mut self) {
        if self.persistence.in_flight {
            return;
        }
        let job = self.snapshot();
        if job.is_empty() {
            for reply in self.persistence.waiting.drain(..) {
                reply();
            }
            return;
        }
        match self.persistence.writer.submit(job) {
            Ok(()) => {
                self.persistence.in_flight = true;
                self.persistence.in_write = std::mem::take(&mut self.persistence.waiting);
            }
            Err(job) => {
                // The writer is gone (it only stops at shutdown): write here.
                let failed = super::writer::write_job(job, &self.handle.metadata_file_writes, &self.persistence.faults);
                self.persistence.in_write = std::mem::take(&mut self.persistence.waiting);
                self.persistence.in_flight = true;
                self.write_finished(failed);
            }
        }
    }

    /// The writer's outcome of the job in flight: written files confirm the answers that
    /// waited for them and the next write starts if anything changed meanwhile; a file that
    /// failed makes its table dirty again and its answers wait for the retry. Returns whether
    /// something failed (the caller retries after a pause; the next batch retries too).
    pub fn write_finished(&mut self, failed: WriteOutcome) -> bool {
        self.persistence.in_flight = false;
        self.note_written(&failed);
        for file in &failed {
            self.write_failed(*file);
        }
        let in_write = std::mem::take(&mut self.persistence.in_write);
        if failed.is_empty() {
            for reply in in_write {
                reply();
            }
            self.start_write();
            false
        } else {
            // Keep their order: the older answers first.
            let later = std::mem::replace(&mut self.persistence.waiting, in_write);
            self.persistence.waiting.extend(later);
            true
        }
    }

    /// At stop: waits for the write in flight, writes what changed since on this thread, and
    /// answers every waiting admin change (logged if its write failed), then stops the writer.
    pub fn close_persistence(&mut self) {
        if self.persistence.in_flight {
            let outcome = self.persistence.writer.completions().recv_blocking().unwrap_or_default();
            self.persistence.in_flight = false;
            self.note_written(&outcome);
            for file in &outcome {
                self.write_failed(*file);
            }
            let in_write = std::mem::take(&mut self.persistence.in_write);
            let later = std::mem::replace(&mut self.persistence.waiting, in_write);
            self.persistence.waiting.extend(later);
        }
        self.persistence.writer.stop();
        // A clean stop leaves each file complete and its journal empty (a compaction), so that
        // the files alone hold the tables, as the Java broker's tools expect.
        if self.persistence.topics_journal.journal_bytes > journal::BASE_RECORD_BYTES || self.topics.is_dirty() {
            self.topics.mark_dirty();
            self.topics.changes_mut().whole();
        }
        if self.persistence.groups_journal.journal_bytes > journal::BASE_RECORD_BYTES || self.groups.is_dirty() {
            self.groups.mark_dirty();
            self.groups.changes_mut().whole();
        }
        let job = self.snapshot();
        let failed = super::writer::write_job(job, &self.handle.metadata_file_writes, &self.persistence.faults);
        if !failed.is_empty() {
            error!(files = ?failed, "metadata not persisted at stop: the changes since the last write are lost");
        }
        for reply in self.persistence.waiting.drain(..) {
            reply();
        }
        info!(files_written = self.handle.metadata_file_writes(), "metadata files written since start (topics.json, subscriptionGroup.json)");
    }

    /// §2.1 step 2: the existing topic; else a retry topic (1 queue, RW); else a topic
    /// auto-created from `default_topic` when that is allowed; else TOPIC_NOT_EXIST.
    fn topic_for_send(&mut self, topic: &str, default_topic: &str, queue_nums: u32, batch: &mut Batch) -> BrokerResult<Arc<TopicConfig>> {
        if let Some(existing) = self.topics.get(topic) {
            let existing = existing.clone();
            return Ok(self.topic_arc(existing));
        }
        let retry_of_group = topic.strip_prefix(topics::RETRY_GROUP_TOPIC_PREFIX);
        if retry_of_group.is_none() && default_topic.is_empty() {
            return Err(BrokerError::topic_not_exist(topic));
        }
        // A slave's topics are its master's copy (§7.5): it creates none of its own.
        if self.handle.is_slave() {
            return Err(BrokerError::new(
                ferromq_net::codes::response_code::TOPIC_NOT_EXIST,
                format!("topic[{topic}] not exist, and this broker is a slave: topics are created on its master"),
            ));
        }
        // The retry topic of an existing group follows from the group (bounded by the group
        // count); anything else is an auto-created topic, and counts.
        if retry_of_group.is_none_or(|group| self.groups.get(group).is_none()) {
            self.check_topic_room(topic)?;
        }
        let created = if let Some(group) = retry_of_group {
            self.topics.create_retry_topic(group, 1, false)
        } else {
            let queue_nums = i32::try_from(queue_nums).unwrap_or(i32::MAX);
            self.topics.auto_create(topic, default_topic, queue_nums, 0)
        };
        match created {
            Ok(ensured) => {
                if ensured.created {
                    info!(topic, queues = ensured.config.write_queue_nums, account = self.account.as_deref().unwrap_or("-"), "topic auto-created");
                    batch.topics_changed = true;
                    if let Some(account) = &self.account {
                        self.created_by_account.entry(account.clone()).or_default().topics += 1;
                    }
                }
                Ok(self.topic_arc(ensured.config))
            }
            Err(e) => Err(BrokerError::new(
                ferromq_net::codes::response_code::TOPIC_NOT_EXIST,
                format!("topic[{topic}] not exist, apply first please! ({e})"),
            )),
        }
    }

    /// TOPIC_NOT_EXIST naming `maxAutoCreatedTopics` when the topic table is full for topics
    /// the broker creates on its own.
    fn check_topic_room(&mut self, topic: &str) -> BrokerResult<()> {
        if let Some(remark) = self.account_refusal(topic, "topic", |c| c.topics, |config| config.acl.max_auto_created_topics_per_account, "maxAutoCreatedTopicsPerAccount") {
            self.refusals.warn(&remark);
            return Err(BrokerError::new(ferromq_net::codes::response_code::TOPIC_NOT_EXIST, remark));
        }
        let max = self.handle.live_config().topics.max_auto_created_topics;
        let count = self.topics.non_system_count();
        if count < max {
            return Ok(());
        }
        let remark = format!(
            "topic[{topic}] not exist and not auto-created: the broker holds {count} topics besides system topics, the limit for auto-creation (maxAutoCreatedTopics={max}); create it with UPDATE_AND_CREATE_TOPIC"
        );
        self.refusals.warn(&remark);
        Err(BrokerError::new(ferromq_net::codes::response_code::TOPIC_NOT_EXIST, remark))
    }

    /// With ACL on, why the current command's account may not have the broker auto-create
    /// one more `what` (its count read by `count`, its limit by `limit`), or `None`.
    fn account_refusal(
        &self,
        name: &str,
        what: &str,
        count: impl Fn(&AccountCreations) -> usize,
        limit: impl Fn(&crate::config::BrokerConfig) -> usize,
        key: &str,
    ) -> Option<String> {
        let account = self.account.as_deref()?;
        let max = limit(self.handle.config());
        let made = self.created_by_account.get(account).map_or(0, &count);
        (made >= max).then(|| {
            format!("{what}[{name}] not exist and not auto-created: account {account} had {made} {what}s auto-created since the broker started, the limit ({key}={max}); an admin can create it")
        })
    }

    /// Java `findSubscriptionGroupConfig` with FerroMQ's limits: the group; else, with
    /// `autoCreateSubscriptionGroup`, a new group with Java's defaults — unless the table
    /// already holds `maxAutoCreatedSubscriptionGroups` groups besides the pre-created ones,
    /// or the group's retry topic would have to be created and the topic table holds
    /// `maxAutoCreatedTopics` (a group is never created without room for its retry topic).
    /// Counted: everything in the tables, loaded from the files or created by an admin
    /// included — the simplest rule that bounds the files whatever their history; admin
    /// requests themselves are never refused. Refusals are SUBSCRIPTION_GROUP_NOT_EXIST,
    /// logged at WARN at most every 10 s. Returns the config and whether it was created.
    pub fn auto_group(&mut self, group: &str) -> BrokerResult<(SubscriptionGroupConfig, bool)> {
        if let Some(existing) = self.groups.get(group) {
            return Ok((existing.clone(), false));
        }
        let not_exist = |why: String| BrokerError::new(ferromq_net::codes::response_code::SUBSCRIPTION_GROUP_NOT_EXIST, format!("subscription group [{group}] does not exist, {why}"));
        // A group whose retry topic already exists needs no topic room.
        let refusal = match self.group_refusal() {
            Some((TOPIC_LIMIT, _)) if self.topics.contains(&topics::retry_topic(group)) => None,
            refusal => refusal,
        };
        if let Some((_, why)) = refusal {
            let error = not_exist(why);
            self.refusals.warn(&error.remark);
            return Err(error);
        }
        if let Some(remark) = self.account_refusal(
            group,
            "subscription group",
            |c| c.groups,
            |config| config.acl.max_auto_created_subscription_groups_per_account,
            "maxAutoCreatedSubscriptionGroupsPerAccount",
        ) {
            self.refusals.warn(&remark);
            return Err(BrokerError::new(ferromq_net::codes::response_code::SUBSCRIPTION_GROUP_NOT_EXIST, remark));
        }
        match self.groups.find_or_create(group) {
            Ok(Some((config, created))) => {
                if created && let Some(account) = &self.account {
                    self.created_by_account.entry(account.clone()).or_default().groups += 1;
                }
                Ok((config, created))
            }
            Ok(None) => Err(not_exist("and autoCreateSubscriptionGroup is off".to_owned())),
            Err(e) => Err(BrokerError::system(format!("subscription group {group}: {e}"))),
        }
    }

    /// Why a new group would not be created now (whether only for want of room for its
    /// retry topic, and the remark of its refusal), or `None`.
    fn group_refusal(&self) -> Option<(bool, String)> {
        if self.handle.is_slave() {
            return Some((false, "and this broker is a slave: groups are created on its master and copied from it".to_owned()));
        }
        if !self.groups.auto_create() {
            return Some((false, "and autoCreateSubscriptionGroup is off".to_owned()));
        }
        let config = self.handle.live_config();
        let (max_groups, max_topics) = (config.topics.max_auto_created_subscription_groups, config.topics.max_auto_created_topics);
        let groups = self.groups.non_system_count();
        if groups >= max_groups {
            return Some((false, format!("and is not auto-created: the broker holds {groups} groups, the limit (maxAutoCreatedSubscriptionGroups={max_groups})")));
        }
        let topics = self.topics.non_system_count();
        if topics >= max_topics {
            return Some((TOPIC_LIMIT, format!("and is not auto-created: its retry topic would exceed the topic limit ({topics} topics, maxAutoCreatedTopics={max_topics})")));
        }
        None
    }

    /// The shared form of a topic config: the view's `Arc` when it is the same config, else a
    /// new one, remembered so that the next published view reuses it.
    fn topic_arc(&mut self, config: TopicConfig) -> Arc<TopicConfig> {
        if let Some(existing) = self.topic_views.get(config.topic_name.as_str())
            && **existing == config
        {
            return existing.clone();
        }
        let arc = Arc::new(config);
        self.topic_views.insert(Arc::from(arc.topic_name.as_str()), arc.clone());
        arc
    }

    fn update_topic(&mut self, config: TopicConfig, batch: &mut Batch) -> BrokerResult<()> {
        self.topics.validate_user_topic(&config.topic_name).map_err(|e| BrokerError::system(e.to_string()))?;
        self.topics.create_or_update(config).map_err(|e| BrokerError::system(e.to_string()))?;
        batch.topics_changed = true;
        Ok(())
    }

    /// HEART_BEAT: producers and consumers of one connection; groups and retry topics created
    /// as needed; groups whose membership changed are told.
    fn heartbeat(&mut self, client: ClientInfo, data: &HeartbeatData, batch: &mut Batch) {
        let now = client.last_update_ms;
        for group in &data.producer_groups {
            self.producers.register(group, client.clone(), now);
        }
        let slave = self.handle.is_slave();
        for consumer in &data.consumers {
            if slave {
                // A slave registers the consumer (its pulls need the subscription) but creates
                // neither the group nor its retry topic: both come from the master (§7.5).
            } else {
                // A refusal was logged (rate-limited); the consumer is not registered, so its
                // pulls and send-backs are refused as well.
                if self.auto_group(&consumer.group_name).is_err() {
                    continue;
                }
                let order = consumer.subscriptions.iter().any(|s| self.topics.is_order(&s.topic));
                if let Ok(ensured) = self.topics.create_retry_topic(&consumer.group_name, 1, order) {
                    batch.topics_changed |= ensured.created;
                }
            }
            let outcome = self.consumers.register_consumer_data(consumer, client.clone(), data.without_sub, now);
            if outcome.subscriptions_changed || outcome.filter_changed || outcome.ids_changed {
                batch.subscriptions_changed = true;
            }
            if outcome.should_notify() {
                self.notify_if_enabled(&consumer.group_name, batch);
            }
        }
    }

    fn notify_if_enabled(&self, group: &str, batch: &mut Batch) {
        if self.handle.live_config().consumer.notify_consumer_ids_changed_enable {
            batch.notify.insert(group.to_owned());
        }
    }

    /// Sends NOTIFY_CONSUMER_IDS_CHANGED to each consumer of `group`, through the shard that
    /// holds its connection. Best effort, as in Java: a consumer that misses it rebalances on
    /// its own within 20 s.
    fn notify_consumer_ids_changed(&self, group: &str) {
        for channel in self.consumers.channels_to_notify(group) {
            let event = ShardEvent::NotifyConsumerIdsChanged { connection: channel.connection, group: group.to_owned() };
            match self.shard_events.get(usize::from(channel.shard)) {
                Some(events) => {
                    if let Err(e) = events.try_send(event) {
                        warn!(%channel, group, "cannot notify consumer: shard event queue {}", if e.is_full() { "full" } else { "closed" });
                    }
                }
                None => warn!(%channel, "notification for an unknown shard"),
            }
        }
    }

    /// Hands a CHECK_TRANSACTION_STATE to the shard of one live connection of `group`.
    fn check_transaction(&self, group: &str, request: RemotingCommand) -> bool {
        let Some(channel) = self.producers.channel_for_group(group) else { return false };
        self.send_oneway(channel, request)
    }

    /// Hands a one-way request to the shard of `channel`; false when its event queue is full.
    fn send_oneway(&self, channel: ChannelId, request: RemotingCommand) -> bool {
        let event = ShardEvent::SendOneway { connection: channel.connection, request };
        match self.shard_events.get(usize::from(channel.shard)) {
            Some(events) => match events.try_send(event) {
                Ok(()) => true,
                Err(e) => {
                    warn!(%channel, "cannot send a one-way request: shard event queue {}", if e.is_full() { "full" } else { "closed" });
                    false
                }
            },
            None => false,
        }
    }

    /// Drops clients whose heartbeats stopped (every 10 s); their groups are told.
    pub fn scan_expired_clients(&mut self) -> Batch {
        let mut batch = Batch::default();
        let timeout_ms = self.handle.live_config().consumer.channel_expired_timeout_ms as i64;
        let now = ferromq_store::store::now_ms();
        let report = self.consumers.scan_expired(now, timeout_ms);
        self.producers.scan_expired(now, timeout_ms);
        if !report.changed_groups.is_empty() {
            batch.subscriptions_changed = true;
        }
        for group in report.changed_groups {
            self.notify_if_enabled(&group, &mut batch);
        }
        batch
    }

    /// Builds and publishes a new view; unchanged topic configs keep their `Arc`.
    fn publish(&mut self, topics_changed: bool, subscriptions_changed: bool) {
        let previous = self.handle.view();
        let changes = self.topics.take_view_changes();
        // A change the batch did not flag still reaches the view.
        let topics_changed = topics_changed || changes.whole || !changes.names.is_empty();
        let topics = if self.view_version > 0 && !changes.whole && topics_changed {
            // Only the changed topics: a change costs O(changed) here plus the map's copy (a
            // rebuild compared and hashed every topic: 25 % of the control thread's time per
            // sequential creation at 3,000 topics).
            for name in &changes.names {
                match self.topics.get(name).cloned() {
                    Some(config) => {
                        let arc = self.topic_arc(config);
                        self.published_topics.insert(Arc::from(name.as_str()), arc);
                    }
                    None => {
                        self.topic_views.remove(name.as_str());
                        self.published_topics.remove(name);
                    }
                }
            }
            self.published_topics.clone()
        } else if topics_changed || self.view_version == 0 {
            let mut next = HashMap::with_capacity(self.topics.len());
            for config in self.topics.iter() {
                let reused = self.topic_views.get_key_value(config.topic_name.as_str()).filter(|(_, old)| ***old == *config);
                let (name, arc) = match reused {
                    Some((name, old)) => (name.clone(), old.clone()),
                    None => (Arc::<str>::from(config.topic_name.as_str()), Arc::new(config.clone())),
                };
                next.insert(name, arc);
            }
            self.published_topics = TopicViews::from_map(&next);
            self.topic_views = next;
            self.published_topics.clone()
        } else {
            previous.topics.clone()
        };
        let subscriptions = if subscriptions_changed || self.view_version == 0 { self.subscription_view() } else { previous.subscriptions.clone() };
        let (groups, group_read_brokers) = if self.groups.data_version() != self.groups_version || self.view_version == 0 {
            self.groups_version = self.groups.data_version();
            let read_brokers = self
                .groups
                .iter()
                .map(|g| (g.group_name.clone(), ReadBrokers { usual: g.broker_id.max(0) as u64, when_slow: g.which_broker_when_consume_slowly.max(0) as u64 }))
                .filter(|(_, r)| *r != ReadBrokers::default())
                .collect::<HashMap<String, ReadBrokers>>();
            (Arc::new(self.groups.names().map(str::to_owned).collect::<HashSet<String>>()), Arc::new(read_brokers))
        } else {
            (previous.groups.clone(), previous.group_read_brokers.clone())
        };
        let group_refusal = self.group_refusal().map(|(_, why)| Arc::from(why));
        self.view_version += 1;
        self.handle.publish(ControlView {
            version: self.view_version,
            broker_permission: self.handle.live_config().broker.permission as i32,
            topics,
            subscriptions,
            groups,
            group_read_brokers,
            group_refusal,
        });
    }

    fn subscription_view(&self) -> HashMap<String, HashMap<String, SubscriptionFilter>> {
        let sql_enabled = self.handle.config().consumer.enable_property_filter;
        let mut view: HashMap<String, HashMap<String, SubscriptionFilter>> = HashMap::new();
        for group in self.consumers.groups() {
            let topics = group.subscriptions().iter().map(|(topic, sub)| (topic.clone(), filter_of(sub, sql_enabled).map(Arc::new))).collect();
            view.insert(group.group().to_owned(), topics);
        }
        view
    }

    /// Writes `consumerOffset.json` and `delayOffset.json` if they changed (every
    /// `flushConsumerOffsetInterval` and at stop).
    pub fn flush_offsets(&mut self) {
        let dir = self.config_dir.clone();
        persist(&mut self.offsets, &dir, OFFSETS_FILE);
        persist(&mut self.delay_offsets, &dir, DELAY_OFFSETS_FILE);
    }

    /// §9.2 steps 1–2: the group (found or auto-created) and its retry topic with the group's
    /// `retryQueueNums` queues; and whether the group holds orderly locks (§2.1 step 4).
    fn retry_group(&mut self, group: &str, batch: &mut Batch) -> BrokerResult<RetryGroup> {
        let (config, _created) = self.auto_group(group)?;
        let orderly_locked = !self.locks.all_expired(group, ferromq_store::store::now_ms());
        if config.retry_queue_nums <= 0 {
            return Ok(RetryGroup { retry_topic: None, retry_max_times: config.retry_max_times, orderly_locked });
        }
        if self.handle.is_slave() {
            let retry = topics::retry_topic(group);
            let existing = self.topics.get(&retry).cloned().ok_or_else(|| BrokerError::topic_not_exist(&retry))?;
            return Ok(RetryGroup { retry_topic: Some(self.topic_arc(existing)), retry_max_times: config.retry_max_times, orderly_locked });
        }
        let ensured = self
            .topics
            .create_retry_topic(group, config.retry_queue_nums, false)
            .map_err(|e| BrokerError::system(format!("retry topic of {group}: {e}")))?;
        if ensured.created {
            info!(group, queues = ensured.config.write_queue_nums, "retry topic created");
            batch.topics_changed = true;
        }
        Ok(RetryGroup { retry_topic: Some(self.topic_arc(ensured.config)), retry_max_times: config.retry_max_times, orderly_locked })
    }

    /// A topic the broker writes itself (perm 6), created on first use.
    fn internal_topic(&mut self, topic: &str, queue_nums: i32, batch: &mut Batch) -> BrokerResult<Arc<TopicConfig>> {
        if self.handle.is_slave() {
            let existing = self.topics.get(topic).cloned().ok_or_else(|| BrokerError::topic_not_exist(topic))?;
            return Ok(self.topic_arc(existing));
        }
        let ensured = self
            .topics
            .ensure_topic(topic, queue_nums, topics::PERM_READ | topics::PERM_WRITE, false, 0)
            .map_err(|e| BrokerError::system(format!("topic {topic}: {e}")))?;
        if ensured.created {
            info!(topic, queues = queue_nums, "topic created");
            batch.topics_changed = true;
        }
        Ok(self.topic_arc(ensured.config))
    }

    /// A slave: the offsets committed here since the last successful sync that are larger
    /// than the master's (or that the master lacks) — what goes back to the master when it
    /// returns (the rule: ARCHITECTURE.md, "A slave").
    pub fn offsets_to_push(&self, master: &ConsumerOffsets) -> Vec<(OffsetKey, i64)> {
        let mut pushes: Vec<(OffsetKey, i64)> = self
            .local_commits
            .iter()
            .filter(|(key, offset)| master.query(&key.group, &key.topic, key.queue_id).is_none_or(|theirs| **offset > theirs))
            .map(|(key, offset)| (key.clone(), *offset))
            .collect();
        pushes.sort_by(|a, b| (&a.0.group, &a.0.topic, a.0.queue_id).cmp(&(&b.0.group, &b.0.topic, b.0.queue_id)));
        pushes
    }

    /// A slave's copy of its master's metadata (§7.5), applied as one batch: the topic and
    /// group tables are replaced when the master's version differs (written by the metadata
    /// writer, like any change), the master's consumer offsets are merged over the local ones
    /// (except those just pushed back, which stay), the delay offsets are overwritten (both
    /// written by the next offset flush), and the offsets committed here since the last sync
    /// are forgotten. The caller hands the batch to [`Self::finish`].
    pub fn apply_master_metadata(&mut self, master: MasterMetadata) -> (Batch, MasterSyncOutcome) {
        let mut batch = Batch::default();
        let mut outcome = MasterSyncOutcome { topics_replaced: self.topics.replace_with_master(master.topics), ..MasterSyncOutcome::default() };
        batch.topics_changed = outcome.topics_replaced;
        outcome.groups_replaced = self.groups.replace_with_master(master.groups);
        outcome.offsets_changed = self.offsets.merge_from_master(&master.offsets);
        for (key, offset) in master.pushed {
            self.offsets.commit(&key.group, &key.topic, key.queue_id, offset);
        }
        outcome.delay_offsets_changed = self.delay_offsets.replace_with_master(master.delay_offsets);
        self.local_commits.clear();
        (batch, outcome)
    }

    /// UPDATE_BROKER_CONFIG: checks every key first (all or none, `runtime_config.rs`), writes
    /// the runtime file, then publishes the change. A new permission is registered at once,
    /// with a new topic-table version so that the name servers rebuild the broker's queue
    /// permissions (as Java's `registerBrokerAll` after `nextVersion`); a name server's
    /// `wipeWritePerm` stays until then.
    fn update_broker_config(&mut self, body: &[u8], batch: &mut Batch) -> BrokerResult<Vec<(String, String)>> {
        let live = self.handle.live_config();
        let (changed, changes) = super::runtime_config::parse_changes(&live, body)
            .map_err(|why| BrokerError::new(ferromq_net::codes::response_code::INVALID_PARAMETER, why))?;
        let path = super::runtime_config::runtime_file(&self.config_dir);
        crate::meta::persist::write_atomic(&path, super::runtime_config::runtime_text(&changed).as_bytes())
            .map_err(|e| BrokerError::system(format!("configuration not changed: {e}")))?;
        let permission_changed = changed.broker.permission != live.broker.permission;
        self.handle.set_live_config(changed);
        info!(?changes, file = %path.display(), "broker configuration changed at runtime");
        // A new view: it carries the permission, and why an unknown group would not be created
        // (the auto-creation limits).
        batch.subscriptions_changed = true;
        if permission_changed {
            self.topics.bump_data_version();
            batch.topics_changed = true;
        }
        Ok(changes)
    }

    /// The REGISTER_BROKER request for every name server (§2.6): the whole topic table, as
    /// JSON, or in RegisterBrokerBody's compressed form with `compressedRegister` (4.x: header
    /// `compressed=true`, `bodyCrc32` over the compressed bytes).
    pub fn register_request(&self) -> RemotingCommand {
        let identity = self.handle.identity();
        let config = self.handle.config();
        let json = self.topics.to_register_body_json(self.handle.live_config().broker.permission as i32);
        let (body, compressed) = if config.namesrv.compressed_register {
            match ferromq_namesrv::register_body::RegisterBrokerBody::parse_json(&json) {
                Ok(parsed) => (parsed.to_compressed(), true),
                Err(e) => {
                    // Our own JSON always parses; if it ever does not, the plain form still registers.
                    error!("cannot compress the registration body, sending it uncompressed: {e}");
                    (json, false)
                }
            }
        } else {
            (json, false)
        };
        RemotingCommand::request(request_code::REGISTER_BROKER)
            .with_ext("brokerName", &identity.broker_name)
            .with_ext("brokerAddr", &identity.broker_addr)
            .with_ext("clusterName", &identity.cluster_name)
            .with_ext("haServerAddr", config.ha_server_addr())
            .with_ext("brokerId", identity.broker_id)
            .with_ext("compressed", compressed)
            .with_ext("bodyCrc32", ferromq_namesrv::register_body::body_crc32(&body))
            .with_body(body)
    }

    /// QUERY_DATA_VERSION (322): asks a name server whether it holds this broker's current
    /// topic-table version (a periodic round with `forceRegister=false` registers only when
    /// one does not).
    pub fn query_data_version_request(&self) -> RemotingCommand {
        let identity = self.handle.identity();
        let mut version = Vec::with_capacity(64);
        self.topics.data_version().write_json(&mut version);
        RemotingCommand::request(request_code::QUERY_DATA_VERSION)
            .with_ext("brokerName", &identity.broker_name)
            .with_ext("brokerAddr", &identity.broker_addr)
            .with_ext("clusterName", &identity.cluster_name)
            .with_ext("brokerId", identity.broker_id)
            .with_body(version)
    }

    pub fn unregister_request(&self) -> RemotingCommand {
        let identity = self.handle.identity();
        RemotingCommand::request(request_code::UNREGISTER_BROKER)
            .with_ext("brokerName", &identity.broker_name)
            .with_ext("brokerAddr", &identity.broker_addr)
            .with_ext("clusterName", &identity.cluster_name)
            .with_ext("brokerId", identity.broker_id)
    }

    /// Applies the order-topic table a name server returned (`{"table":{topic: conf}}`).
    pub fn apply_order_topics(&mut self, body: &[u8]) {
        // A slave's order flags are its master's, copied with the topics (§7.5); applying them
        // here too would move its table's version away from the master's at every round.
        if self.handle.is_slave() {
            return;
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return };
        let Some(table) = value.get("table").and_then(|t| t.as_object()) else { return };
        let order: BTreeSet<String> = table.keys().cloned().collect();
        if self.topics.update_order_topics(&order) {
            self.publish(true, false);
            self.start_write();
        }
    }
}

/// A subscription as the store's filter: tags hashes for TAG (every message for `*`), the
/// compiled selector for SQL92; an SQL92 subscription the broker does not serve is the error
/// its pulls get.
fn filter_of(subscription: &SubscriptionData, sql_enabled: bool) -> Result<TagFilter, BrokerError> {
    if !subscription.is_tag_type() {
        return crate::selector::expression_filter(&subscription.expression_type, &subscription.sub_string, sql_enabled);
    }
    if subscription.is_all() {
        return Ok(TagFilter::All);
    }
    Ok(TagFilter::Codes(subscription.code_set.iter().copied().collect()))
}

/// What to write for a journaled table, if it changed (clearing its dirty flag and change set),
/// and the sizes its file and journal will have once written: the changed entries as journal
/// records (upserts, deletes, and the data version), or the whole body when the change is not
/// per entry or the journal is due for compaction.
fn table_write<T: JournaledTable>(table: &mut T, size: JournalSize) -> Option<(FileWrite, JournalSize)> {
    if !table.is_dirty() {
        return None;
    }
    table.set_dirty(false);
    let changes = table.take_changes();
    if changes.whole || journal::compaction_due(size.journal_bytes, size.file_bytes) {
        let body = table.file_json();
        let size = JournalSize { journal_bytes: journal::BASE_RECORD_BYTES, file_bytes: body.len() as u64 };
        return Some((FileWrite::Whole(body), size));
    }
    let mut records = Vec::with_capacity(changes.names.len() * 256 + 64);
    for name in &changes.names {
        match table.entry_json(name) {
            Some(json) => journal::encode_upsert(&mut records, name, &json),
            None => journal::encode_delete(&mut records, name),
        }
    }
    journal::encode_version(&mut records, &table.version_json());
    let size = JournalSize { journal_bytes: size.journal_bytes + records.len() as u64, ..size };
    Some((FileWrite::Append(records), size))
}

/// Writes one table's file if it changed; on failure it stays dirty and the next batch or
/// tick tries again.
fn persist<T: PersistedTable>(table: &mut T, dir: &Path, file_name: &str) {
    if let Some(bytes) = table.snapshot_if_dirty() {
        let path = dir.join(file_name);
        if let Err(e) = crate::meta::write_atomic(&path, &bytes) {
            error!("cannot persist {}: {e}", path.display());
            table.mark_dirty();
        }
    }
}

/// The channel id of a connection: (shard, connection id).
pub fn channel_of(shard: ferromq_store::ShardId, connection: u64) -> ChannelId {
    ChannelId::new(u16::from(shard.0), connection)
}

/// An offset key from its parts.
pub fn offset_key(group: &str, topic: &str, queue_id: QueueId) -> OffsetKey {
    OffsetKey { group: group.to_owned(), topic: topic.to_owned(), queue_id }
}
