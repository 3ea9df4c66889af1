//! Committed consumer offsets: (topic, group) → queueId → next offset to consume, as stored by
//! UPDATE_CONSUMER_OFFSET (15), the commit bit of PULL_MESSAGE, and read by
//! QUERY_CONSUMER_OFFSET (14), GET_CONSUME_STATS (208) and GET_ALL_CONSUMER_OFFSET (43)
//! (PROTOCOL.md §2.2, §2.7), persisted in the Java broker's `consumerOffset.json` (§6.6).
//!
//! Ownership: one table per broker, in the control plane behind the shared mutex.
//!
//! File format, written by [`ConsumerOffsets::to_json`] byte for byte as fastjson writes a
//! `Map<Integer,Long>` (compact, integer keys unquoted, keys `<topic>@<group>`):
//! `{"offsetTable":{"TopicTest@group":{0:12,1:7}}}`. The loader also accepts quoted keys, the
//! pretty-printed form, string-valued offsets and the 5.x extra fields (`dataVersion`,
//! `groupTopicMap`), and skips (with a warning) entries it cannot read.
//!
//! Flushing: every change sets a dirty flag; the broker's flush task (every
//! `flushConsumerOffsetInterval` = 5 s) calls [`ConsumerOffsets::snapshot_if_dirty`] under the
//! lock and [`crate::meta::write_atomic`] outside it, so no fsync happens while the lock is held;
//! [`ConsumerOffsets::persist`] does both for callers without that concern.

use std::collections::BTreeMap;
use std::path::Path;

use ferromq_store::QueueId;
use serde_json::Value;

use super::json::{lenient_i64, parse_object_tolerant, write_key, write_num};
use super::persist::{PersistError, PersistedTable, overlay_config_file};

/// Java `TOPIC_GROUP_SEPARATOR`: the file key is `<topic>@<group>`.
pub const TOPIC_GROUP_SEPARATOR: char = '@';

/// queueId → committed offset.
pub type QueueOffsets = BTreeMap<QueueId, i64>;

/// The offset table. `Send`; plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerOffsets {
    /// topic → group → queueId → offset.
    table: BTreeMap<String, BTreeMap<String, QueueOffsets>>,
    dirty: bool,
}

impl ConsumerOffsets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `offset` for the queue (Java `commitOffset`: unconditional put, also backwards).
    /// Marks the table dirty only if the value changed. (A negative queue id cannot reach it:
    /// the header reader refuses one before it becomes a [`QueueId`].)
    pub fn commit(&mut self, group: &str, topic: &str, queue_id: QueueId, offset: i64) {
        let queues = self
            .table
            .entry(topic.to_owned())
            .or_default()
            .entry(group.to_owned())
            .or_default();
        if queues.insert(queue_id, offset) != Some(offset) {
            self.dirty = true;
        }
    }

    /// The committed offset, if any.
    pub fn query(&self, group: &str, topic: &str, queue_id: QueueId) -> Option<i64> {
        self.queues_of(group, topic)?.get(&queue_id).copied()
    }

    /// All committed queues of (group, topic).
    pub fn queues_of(&self, group: &str, topic: &str) -> Option<&QueueOffsets> {
        self.table.get(topic)?.get(group)
    }

    /// Topics the group has offsets for, sorted (GET_CONSUME_STATS without a topic, 343).
    pub fn topics_of_group(&self, group: &str) -> Vec<String> {
        self.table
            .iter()
            .filter(|(_, groups)| groups.contains_key(group))
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// Groups with offsets on the topic, sorted (QUERY_TOPIC_CONSUME_BY_WHO, 300).
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        self.table
            .get(topic)
            .map(|groups| groups.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Drops every group's offsets on the topic (DELETE_TOPIC_IN_BROKER). True if any existed.
    pub fn remove_topic(&mut self, topic: &str) -> bool {
        let removed = self.table.remove(topic).is_some();
        self.dirty |= removed;
        removed
    }

    /// Drops the group's offsets on every topic (DELETE_SUBSCRIPTIONGROUP with cleanOffset).
    pub fn remove_group(&mut self, group: &str) -> bool {
        let mut removed = false;
        self.table.retain(|_, groups| {
            removed |= groups.remove(group).is_some();
            !groups.is_empty()
        });
        self.dirty |= removed;
        removed
    }

    /// Copies `src`'s offsets to `dest`, for one topic or all (CLONE_GROUP_OFFSET, 314).
    pub fn clone_group(&mut self, src: &str, dest: &str, topic: Option<&str>) {
        for (t, groups) in self.table.iter_mut() {
            if topic.is_some_and(|only| only != t) {
                continue;
            }
            if let Some(queues) = groups.get(src).cloned()
                && groups.insert(dest.to_owned(), queues.clone()) != Some(queues)
            {
                self.dirty = true;
            }
        }
    }

    /// A slave's merge of its master's offsets (§7.5): every queue the master has takes the
    /// master's offset; queues only this table has keep theirs. Marks the table dirty if
    /// anything changed; returns whether it did.
    pub fn merge_from_master(&mut self, master: &ConsumerOffsets) -> bool {
        let mut changed = false;
        for (topic, groups) in &master.table {
            let local = self.table.entry(topic.clone()).or_default();
            for (group, queues) in groups {
                let local = local.entry(group.clone()).or_default();
                for (queue_id, offset) in queues {
                    changed |= local.insert(*queue_id, *offset) != Some(*offset);
                }
            }
        }
        self.dirty |= changed;
        changed
    }

    /// Every committed queue as (group, topic, queueId, offset).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, QueueId, i64)> {
        self.table.iter().flat_map(|(topic, groups)| {
            groups.iter().flat_map(move |(group, queues)| queues.iter().map(move |(q, o)| (group.as_str(), topic.as_str(), *q, *o)))
        })
    }

    /// Number of (topic, group) pairs.
    pub fn len(&self) -> usize {
        self.table.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The `consumerOffset.json` body (also the GET_ALL_CONSUMER_OFFSET body):
    /// `{"offsetTable":{"<topic>@<group>":{<queueId>:<offset>,...},...}}`, compact, queue ids
    /// unquoted and ascending, entries ordered by topic then group.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.len() * 64);
        out.extend_from_slice(b"{\"offsetTable\":{");
        let mut first = true;
        for (topic, groups) in &self.table {
            for (group, queues) in groups {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_key(&mut out, &format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}"));
                out.push(b'{');
                for (i, (queue_id, offset)) in queues.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_num(&mut out, queue_id.0);
                    out.push(b':');
                    write_num(&mut out, offset);
                }
                out.push(b'}');
            }
        }
        out.extend_from_slice(b"}}");
        out
    }

    /// Parses a `consumerOffset.json` body (Java's or ours). Returns the table (not dirty) and
    /// one warning per skipped entry. Only a body that is not a JSON object, or whose
    /// `offsetTable` is neither an object nor null, is an error.
    pub fn from_json(body: &[u8]) -> Result<(Self, Vec<String>), String> {
        let root = parse_object_tolerant(body).map_err(|e| e.to_string())?;
        let mut out = ConsumerOffsets::new();
        let mut warnings = Vec::new();
        let entries = match root.get("offsetTable") {
            None | Some(Value::Null) => return Ok((out, warnings)),
            Some(Value::Object(entries)) => entries,
            Some(_) => return Err("offsetTable is not an object".to_owned()),
        };
        for (key, queues) in entries {
            let Some((topic, group)) = key.split_once(TOPIC_GROUP_SEPARATOR) else {
                warnings.push(format!(
                    "offset key {key:?} is not <topic>@<group>; skipped"
                ));
                continue;
            };
            if topic.is_empty() || group.is_empty() || group.contains(TOPIC_GROUP_SEPARATOR) {
                warnings.push(format!(
                    "offset key {key:?} is not <topic>@<group>; skipped"
                ));
                continue;
            }
            let Some(queues) = queues.as_object() else {
                if !queues.is_null() {
                    warnings.push(format!("offsets of {key:?} are not an object; skipped"));
                }
                continue;
            };
            for (queue_id, offset) in queues {
                let queue_id = queue_id.trim().parse::<i32>().ok().and_then(|q| QueueId::try_from(q).ok());
                match (queue_id, lenient_i64(Some(offset))) {
                    (Some(q), Some(o)) => {
                        out.table
                            .entry(topic.to_owned())
                            .or_default()
                            .entry(group.to_owned())
                            .or_default()
                            .insert(q, o);
                    }
                    _ => warnings.push(format!("bad queue offset in {key:?}; skipped")),
                }
            }
        }
        Ok((out, warnings))
    }

    /// Loads `path` (missing file = empty table; corrupt file = error naming it). Skipped
    /// entries are logged as warnings.
    pub fn load(path: &Path) -> Result<Self, PersistError> {
        overlay_config_file(path, Self::new(), |table, bytes| {
            let (parsed, warnings) = Self::from_json(bytes)?;
            *table = parsed;
            Ok(warnings)
        })
    }

}

impl PersistedTable for ConsumerOffsets {
    fn file_json(&self) -> Vec<u8> {
        self.to_json()
    }
    fn is_dirty(&self) -> bool {
        self.dirty
    }
    fn set_dirty(&mut self, dirty: bool) {
        self.dirty = dirty;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::meta::test_util::temp_dir;

    #[test]
    fn commit_query_and_dirty() {
        let mut o = ConsumerOffsets::new();
        assert!(!o.is_dirty());
        assert_eq!(o.query("g", "T", QueueId(0)), None);
        o.commit("g", "T", QueueId(0), 12);
        assert!(o.is_dirty());
        assert_eq!(o.query("g", "T", QueueId(0)), Some(12));
        // Backwards commits are stored (admin resets, Java does the same).
        o.commit("g", "T", QueueId(0), 5);
        assert_eq!(o.query("g", "T", QueueId(0)), Some(5));
        assert!(o.snapshot_if_dirty().is_some());
        assert!(o.snapshot_if_dirty().is_none());
        // Same value again: still clean.
        o.commit("g", "T", QueueId(0), 5);
        assert!(!o.is_dirty());
        o.commit("g", "T", QueueId(1), 7);
        assert_eq!(
            o.queues_of("g", "T").unwrap().iter().collect::<Vec<_>>(),
            vec![(&QueueId(0), &5), (&QueueId(1), &7)]
        );
    }

    #[test]
    fn file_format_is_byte_exact() {
        let mut o = ConsumerOffsets::new();
        o.commit("group", "TopicTest", QueueId(1), 7);
        o.commit("group", "TopicTest", QueueId(0), 12);
        assert_eq!(
            String::from_utf8(o.to_json()).unwrap(),
            r#"{"offsetTable":{"TopicTest@group":{0:12,1:7}}}"#
        );
        o.commit("g2", "%RETRY%g2", QueueId(0), 3);
        o.commit("g1", "TopicTest", QueueId(10), -1);
        assert_eq!(
            String::from_utf8(o.to_json()).unwrap(),
            r#"{"offsetTable":{"%RETRY%g2@g2":{0:3},"TopicTest@g1":{10:-1},"TopicTest@group":{0:12,1:7}}}"#
        );
        assert_eq!(
            ConsumerOffsets::new().to_json(),
            br#"{"offsetTable":{}}"#.to_vec()
        );
    }

    #[test]
    fn tolerant_load() {
        // Java 5.x pretty form with dataVersion and groupTopicMap, unquoted keys.
        let java = "{\n\t\"dataVersion\":{\"counter\":2,\"stateVersion\":0,\"timestamp\":1},\n\t\"offsetTable\":{\n\t\t\"TopicTest@please_rename\":{0:250,1:251,2:249,3:250},\n\t\t\"%RETRY%please_rename@please_rename\":{0:0}\n\t}\n}";
        let (o, warnings) = ConsumerOffsets::from_json(java.as_bytes()).unwrap();
        assert!(warnings.is_empty());
        assert!(!o.is_dirty());
        assert_eq!(o.query("please_rename", "TopicTest", QueueId(2)), Some(249));
        assert_eq!(o.query("please_rename", "%RETRY%please_rename", QueueId(0)), Some(0));
        // Quoted keys and string offsets.
        let (o, _) =
            ConsumerOffsets::from_json(br#"{"offsetTable":{"T@g":{"0":"5","1":6}}}"#).unwrap();
        assert_eq!(o.query("g", "T", QueueId(0)), Some(5));
        assert_eq!(o.query("g", "T", QueueId(1)), Some(6));
        // Bad entries are skipped, good ones kept.
        let (o, warnings) = ConsumerOffsets::from_json(
            br#"{"offsetTable":{"nosep":{0:1},"T@g":{0:1,"x":2,1:"y",-3:4},"U@g":[1],"V@g":null,"W@h":{0:9}}}"#,
        )
        .unwrap();
        assert_eq!(warnings.len(), 5, "{warnings:?}");
        assert_eq!(o.query("g", "T", QueueId(0)), Some(1));
        assert_eq!(o.query("h", "W", QueueId(0)), Some(9));
        assert_eq!(o.len(), 2);
        // Empty object, null table.
        assert!(ConsumerOffsets::from_json(b"{}").unwrap().0.is_empty());
        assert!(
            ConsumerOffsets::from_json(br#"{"offsetTable":null}"#)
                .unwrap()
                .0
                .is_empty()
        );
        // Corrupt.
        assert!(ConsumerOffsets::from_json(b"{\"offsetTable\":{").is_err());
        assert!(ConsumerOffsets::from_json(b"[]").is_err());
        assert!(ConsumerOffsets::from_json(br#"{"offsetTable":[]}"#).is_err());
    }

    #[test]
    fn persistence_round_trip() {
        let dir = temp_dir("offsets");
        let path = dir.join("config").join("consumerOffset.json");
        let mut o = ConsumerOffsets::load(&path).unwrap();
        assert!(o.is_empty());
        assert!(!o.persist_if_dirty(&path).unwrap());
        assert!(!path.exists());
        o.commit("g", "T", QueueId(0), 42);
        o.commit("g", "T", QueueId(3), 7);
        assert!(o.persist_if_dirty(&path).unwrap());
        assert!(!o.is_dirty());
        assert!(!o.persist_if_dirty(&path).unwrap());
        let back = ConsumerOffsets::load(&path).unwrap();
        assert_eq!(back, o);
        // Corrupt file: an error naming the path.
        std::fs::write(&path, b"{\"offsetTable\":{\"T@g\":{0:").unwrap();
        let err = ConsumerOffsets::load(&path).unwrap_err();
        assert!(err.to_string().contains("consumerOffset.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn removal_and_lookups() {
        let mut o = ConsumerOffsets::new();
        o.commit("g1", "A", QueueId(0), 1);
        o.commit("g2", "A", QueueId(0), 2);
        o.commit("g1", "B", QueueId(0), 3);
        assert_eq!(o.groups_of_topic("A"), vec!["g1", "g2"]);
        assert_eq!(o.topics_of_group("g1"), vec!["A", "B"]);
        o.clone_group("g1", "g3", Some("B"));
        assert_eq!(o.query("g3", "B", QueueId(0)), Some(3));
        assert_eq!(o.query("g3", "A", QueueId(0)), None);
        let _ = o.snapshot_if_dirty();
        assert!(o.remove_topic("A"));
        assert!(o.is_dirty());
        assert!(!o.remove_topic("A"));
        assert!(o.remove_group("g1"));
        assert_eq!(o.topics_of_group("g1"), Vec::<String>::new());
        assert_eq!(o.query("g3", "B", QueueId(0)), Some(3));
        assert!(!o.remove_group("nope"));
    }
}
