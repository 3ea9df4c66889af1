//! What one shard counts for the metrics endpoint (`crate::metrics`): RocketMQ 5's message
//! counters (`rocketmq_messages_in_total`, `…_out_total`, `rocketmq_throughput_*`,
//! `rocketmq_message_size`, `rocketmq_send_to_dlq_messages_total`) and FerroMQ's cross-shard
//! hops, by the labels Java gives them.
//!
//! Plain counters in `RefCell`/`Cell`: the shard is their only writer and reader, so the send
//! and pull paths take no lock and touch no atomic. A scrape runs a job on every shard that
//! copies them ([`ShardMetrics::snapshot`]); the copies are summed off the shards. With metrics
//! off (`metricsExporterType=DISABLE`) every `count_*` returns at its first branch.
//!
//! Label sets are bounded per shard and per metric by `metricsOtelCardinalityLimit` (Java's
//! OpenTelemetry cardinality limit): an observation of a new label set beyond it is only
//! counted as dropped (`ferromq_metrics_dropped_observations_total`).
//!
//! Shard-resident: one [`ShardMetrics`] per shard, in its `ShardCtx`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use ferromq_net::metrics::Histogram;

use crate::meta::topics::{DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX};

/// `rocketmq_message_size`'s bucket bounds in bytes (Java's `messageSizeBuckets`: 1 KiB, 4 KiB,
/// 512 KiB, 1 MiB, 2 MiB, 4 MiB).
pub const MESSAGE_SIZE_BUCKETS_BYTES: &[f64] = &[1024.0, 4096.0, 524_288.0, 1_048_576.0, 2_097_152.0, 4_194_304.0];

/// Java's `TopicMessageType` of a send, as its `message_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Normal,
    Fifo,
    Delay,
    Transaction,
}

impl MessageType {
    pub const ALL: [MessageType; 4] = [MessageType::Normal, MessageType::Fifo, MessageType::Delay, MessageType::Transaction];

    /// `TopicMessageType.getMetricsValue()`.
    pub fn label(self) -> &'static str {
        match self {
            MessageType::Normal => "normal",
            MessageType::Fifo => "fifo",
            MessageType::Delay => "delay",
            MessageType::Transaction => "transaction",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Java's `BrokerMetricsManager.getMessageType` over a send's properties: a prepared
    /// transaction (`TRAN_MSG=true`), else a sharding key (`__SHARDINGKEY`: FIFO), else any
    /// delay (`__STARTDELIVERTIME`, `DELAY`, `TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`), else normal.
    pub fn of<'a>(properties: impl IntoIterator<Item = (&'a str, &'a str)>) -> MessageType {
        let (mut transaction, mut fifo, mut delay) = (false, false, false);
        for (name, value) in properties {
            match name {
                "TRAN_MSG" => transaction = value.eq_ignore_ascii_case("true"),
                "__SHARDINGKEY" => fifo = true,
                "__STARTDELIVERTIME" | "DELAY" | "TIMER_DELIVER_MS" | "TIMER_DELAY_SEC" => delay = true,
                _ => {}
            }
        }
        if transaction {
            MessageType::Transaction
        } else if fifo {
            MessageType::Fifo
        } else if delay {
            MessageType::Delay
        } else {
            MessageType::Normal
        }
    }
}

/// Java leaves retry and dead-letter topics out of the message counters.
pub fn is_retry_or_dlq_topic(topic: &str) -> bool {
    topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) || topic.starts_with(DLQ_GROUP_TOPIC_PREFIX)
}

/// Messages stored for one (topic, message type).
#[derive(Debug, Clone, PartialEq)]
pub struct InCounters {
    pub messages: u64,
    pub bytes: u64,
    /// Bytes per message, one observation per send (a batch's mean), as Java records it.
    pub size: Histogram,
}

impl InCounters {
    fn new() -> InCounters {
        InCounters { messages: 0, bytes: 0, size: Histogram::new(MESSAGE_SIZE_BUCKETS_BYTES) }
    }

    fn merge(&mut self, other: &InCounters) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.size.merge(&other.size);
    }
}

/// Messages pulled for one (topic, group).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutCounters {
    pub messages: u64,
    pub bytes: u64,
}

/// Per topic, the counters of each [`MessageType`] (by [`MessageType::ALL`] index).
pub type TopicIn = [Option<InCounters>; 4];

/// A copy of one shard's counters, or the sum of several shards'.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// topic → counters per message type.
    pub messages_in: HashMap<String, TopicIn>,
    /// topic → group → counters.
    pub messages_out: HashMap<String, HashMap<String, OutCounters>>,
    /// group → original topic → messages sent to the group's dead-letter queue.
    pub send_to_dlq: HashMap<String, HashMap<String, u64>>,
    /// Jobs this shard sent to another shard (a send, pull or query for a queue it does not own).
    pub cross_shard_jobs: u64,
    /// Observations of new label sets refused by the cardinality limit.
    pub dropped: u64,
}

impl MetricsSnapshot {
    /// Adds another shard's counters.
    pub fn merge(&mut self, other: &MetricsSnapshot) {
        for (topic, kinds) in &other.messages_in {
            let mine = self.messages_in.entry(topic.clone()).or_default();
            for (slot, theirs) in mine.iter_mut().zip(kinds) {
                if let Some(theirs) = theirs {
                    slot.get_or_insert_with(InCounters::new).merge(theirs);
                }
            }
        }
        for (topic, groups) in &other.messages_out {
            let mine = self.messages_out.entry(topic.clone()).or_default();
            for (group, theirs) in groups {
                let counters = mine.entry(group.clone()).or_default();
                counters.messages += theirs.messages;
                counters.bytes += theirs.bytes;
            }
        }
        for (group, topics) in &other.send_to_dlq {
            let mine = self.send_to_dlq.entry(group.clone()).or_default();
            for (topic, count) in topics {
                *mine.entry(topic.clone()).or_insert(0) += count;
            }
        }
        self.cross_shard_jobs += other.cross_shard_jobs;
        self.dropped += other.dropped;
    }
}

/// One shard's counters.
#[derive(Debug)]
pub struct ShardMetrics {
    /// `metricsExporterType=PROM`: off, nothing is counted.
    enabled: bool,
    /// Label sets kept per metric (`metricsOtelCardinalityLimit`).
    series_limit: usize,
    counters: RefCell<MetricsSnapshot>,
    /// Label sets in `messages_out` and `send_to_dlq` (nested maps: their outer `len` is not it).
    out_series: Cell<usize>,
    dlq_series: Cell<usize>,
}

impl ShardMetrics {
    pub fn new(enabled: bool, series_limit: usize) -> ShardMetrics {
        ShardMetrics { enabled, series_limit, counters: RefCell::default(), out_series: Cell::new(0), dlq_series: Cell::new(0) }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A send stored `messages` records of `bytes` in all in `topic` (the topic the producer
    /// named, or the dead-letter queue it was redirected to).
    pub fn count_in(&self, topic: &str, kind: MessageType, messages: u64, bytes: u64) {
        if !self.enabled || messages == 0 || is_retry_or_dlq_topic(topic) {
            return;
        }
        let mut counters = self.counters.borrow_mut();
        let limit = self.series_limit;
        let series = counters.messages_in.len();
        let kinds = match counters.messages_in.get_mut(topic) {
            Some(kinds) => kinds,
            None if series < limit => counters.messages_in.entry(topic.to_owned()).or_default(),
            None => {
                counters.dropped += 1;
                return;
            }
        };
        let Some(slot) = kinds.get_mut(kind.index()) else { return };
        let entry = slot.get_or_insert_with(InCounters::new);
        entry.messages += messages;
        entry.bytes += bytes;
        entry.size.observe((bytes / messages) as f64);
    }

    /// A pull of `group` on `topic` answered `messages` records of `bytes`.
    pub fn count_out(&self, topic: &str, group: &str, messages: u64, bytes: u64) {
        if !self.enabled || messages == 0 || is_retry_or_dlq_topic(topic) {
            return;
        }
        let mut counters = self.counters.borrow_mut();
        if let Some(entry) = counters.messages_out.get_mut(topic).and_then(|groups| groups.get_mut(group)) {
            entry.messages += messages;
            entry.bytes += bytes;
            return;
        }
        if self.out_series.get() >= self.series_limit {
            counters.dropped += 1;
            return;
        }
        self.out_series.set(self.out_series.get() + 1);
        counters.messages_out.entry(topic.to_owned()).or_default().insert(group.to_owned(), OutCounters { messages, bytes });
    }

    /// A message of `group`, consumed from `topic`, went to the group's dead-letter queue.
    pub fn count_dlq(&self, group: &str, topic: &str) {
        if !self.enabled {
            return;
        }
        let mut counters = self.counters.borrow_mut();
        if let Some(count) = counters.send_to_dlq.get_mut(group).and_then(|topics| topics.get_mut(topic)) {
            *count += 1;
            return;
        }
        if self.dlq_series.get() >= self.series_limit {
            counters.dropped += 1;
            return;
        }
        self.dlq_series.set(self.dlq_series.get() + 1);
        counters.send_to_dlq.entry(group.to_owned()).or_default().insert(topic.to_owned(), 1);
    }

    /// This shard handed a job to another shard.
    pub fn count_cross_shard_job(&self) {
        if self.enabled {
            self.counters.borrow_mut().cross_shard_jobs += 1;
        }
    }

    /// A copy of the counters (a scrape's job on this shard).
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.counters.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_javas_labels_and_exclusions() {
        let m = ShardMetrics::new(true, 100);
        m.count_in("T", MessageType::Normal, 1, 100);
        m.count_in("T", MessageType::Normal, 16, 16 * 2000);
        m.count_in("T", MessageType::Delay, 1, 10);
        m.count_in("%RETRY%g", MessageType::Normal, 1, 10);
        m.count_in("%DLQ%g", MessageType::Normal, 1, 10);
        m.count_out("T", "g", 32, 3200);
        m.count_out("T", "g", 0, 0);
        m.count_out("%RETRY%g", "g", 5, 50);
        m.count_dlq("g", "T");
        m.count_dlq("g", "T");
        m.count_cross_shard_job();
        let s = m.snapshot();
        assert_eq!(s.messages_in.len(), 1, "retry and DLQ topics are not counted");
        let normal = s.messages_in["T"][0].as_ref().unwrap();
        assert_eq!((normal.messages, normal.bytes, normal.size.count()), (17, 32_100, 2), "one size observation per send");
        assert_eq!(s.messages_in["T"][MessageType::Delay.index()].as_ref().unwrap().messages, 1);
        assert_eq!(s.messages_out["T"]["g"], OutCounters { messages: 32, bytes: 3200 });
        assert_eq!(s.messages_out.len(), 1);
        assert_eq!(s.send_to_dlq["g"]["T"], 2);
        assert_eq!(s.cross_shard_jobs, 1);
        let mut sum = s.clone();
        sum.merge(&s);
        assert_eq!(sum.messages_in["T"][0].as_ref().unwrap().messages, 34);
        assert_eq!(sum.messages_out["T"]["g"].messages, 64);
        assert_eq!((sum.send_to_dlq["g"]["T"], sum.cross_shard_jobs), (4, 2));
    }

    #[test]
    fn disabled_metrics_count_nothing_and_label_sets_are_bounded() {
        let off = ShardMetrics::new(false, 100);
        off.count_in("T", MessageType::Normal, 1, 1);
        off.count_out("T", "g", 1, 1);
        off.count_dlq("g", "T");
        off.count_cross_shard_job();
        assert_eq!(off.snapshot(), MetricsSnapshot::default());

        let m = ShardMetrics::new(true, 2);
        for topic in ["A", "B", "C"] {
            m.count_in(topic, MessageType::Normal, 1, 1);
            m.count_out(topic, "g", 1, 1);
            m.count_dlq("g", topic);
        }
        m.count_in("A", MessageType::Normal, 1, 1);
        let s = m.snapshot();
        assert_eq!((s.messages_in.len(), s.messages_out.len(), s.send_to_dlq["g"].len()), (2, 2, 2));
        assert_eq!(s.messages_in["A"][0].as_ref().unwrap().messages, 2, "known label sets still count");
        assert_eq!(s.dropped, 3);
    }

    #[test]
    fn message_types_are_read_from_properties_as_java_does() {
        assert_eq!(MessageType::of([("TAGS", "a")]), MessageType::Normal);
        assert_eq!(MessageType::of([("DELAY", "3")]), MessageType::Delay);
        assert_eq!(MessageType::of([("TIMER_DELIVER_MS", "1")]), MessageType::Delay);
        assert_eq!(MessageType::of([("__SHARDINGKEY", "k"), ("DELAY", "3")]), MessageType::Fifo);
        assert_eq!(MessageType::of([("TRAN_MSG", "true"), ("__SHARDINGKEY", "k")]), MessageType::Transaction);
        assert_eq!(MessageType::of([("TRAN_MSG", "false")]), MessageType::Normal);
    }
}
