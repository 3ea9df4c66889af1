//! Wire types that the broker and the name server both speak: [`TopicConfig`] (PROTOCOL.md §4.6)
//! and [`DataVersion`] (§4.4), with their fastjson writers and lenient readers. One definition,
//! so that what a FerroMQ broker registers and what a FerroMQ name server reads back cannot
//! drift apart.
//!
//! Owns no state; plain data. Each crate keeps only its own rules around these types: the broker
//! validates and persists topics (`core/src/meta/topics.rs`), the name server decodes register
//! bodies in their Java shapes (`namesrv/src/register_body.rs`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use crate::fastjson::{
    lenient_bool, lenient_i32, lenient_i64, lenient_str_map, lenient_string, write_bool, write_key, write_num, write_str,
    write_str_map,
};

pub const PERM_PRIORITY: i32 = 8;
pub const PERM_READ: i32 = 4;
pub const PERM_WRITE: i32 = 2;
pub const PERM_INHERIT: i32 = 1;

/// Java `TopicConfig.defaultReadQueueNums` / `defaultWriteQueueNums`.
pub const DEFAULT_QUEUE_NUMS: i32 = 16;
/// Java `TopicFilterType.SINGLE_TAG`.
pub const SINGLE_TAG: &str = "SINGLE_TAG";
pub const MULTI_TAG: &str = "MULTI_TAG";

/// Version stamp of a config table (`{"counter":3,"stateVersion":0,"timestamp":...}`). Java's
/// `DataVersion`: `nextVersion()` increments the counter and sets the timestamp to now;
/// `stateVersion` (5.x; 0 from 4.x brokers) is left as is. Equality is Java's `equals`: all
/// three fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    pub counter: i64,
    pub state_version: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl DataVersion {
    /// A fresh version as Java creates one at start-up: counter 0, timestamp now.
    pub fn new() -> Self {
        DataVersion { counter: 0, state_version: 0, timestamp: now_ms() }
    }

    /// The version a slave's table takes when it copies its master's (PROTOCOL.md §7.5):
    /// `None` when the master's `master` equals this one (nothing to copy), else the master's —
    /// kept exactly, so that the next sync of an unchanged master copies nothing — or, for a
    /// master that sent none, this one bumped.
    pub fn copied_from(self, master: Option<DataVersion>) -> Option<DataVersion> {
        if master == Some(self) {
            return None;
        }
        Some(master.unwrap_or_else(|| {
            let mut next = self;
            next.bump();
            next
        }))
    }

    /// Java `nextVersion()`: counter + 1, timestamp now (never moving backwards).
    pub fn bump(&mut self) {
        self.counter = self.counter.saturating_add(1);
        self.timestamp = now_ms().max(self.timestamp);
    }

    /// `{"counter":..,"stateVersion":..,"timestamp":..}` (fastjson key order).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"counter\":");
        write_num(out, self.counter);
        out.extend_from_slice(b",\"stateVersion\":");
        write_num(out, self.state_version);
        out.extend_from_slice(b",\"timestamp\":");
        write_num(out, self.timestamp);
        out.push(b'}');
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write_json(&mut out);
        out
    }

    /// Reads a DataVersion object leniently; missing fields are 0, a non-object is `None`.
    pub fn from_value(v: Option<&Value>) -> Option<Self> {
        let obj = v?.as_object()?;
        Some(DataVersion {
            counter: lenient_i64(obj.get("counter")).unwrap_or(0),
            state_version: lenient_i64(obj.get("stateVersion")).unwrap_or(0),
            timestamp: lenient_i64(obj.get("timestamp")).unwrap_or(0),
        })
    }
}

/// A topic's configuration. Field names follow the JSON names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    /// `SINGLE_TAG` or `MULTI_TAG`; kept as text.
    pub topic_filter_type: String,
    pub topic_sys_flag: i32,
    pub order: bool,
    /// 5.x attributes (`{"message.type":"NORMAL"}`); empty for 4.x.
    pub attributes: BTreeMap<String, String>,
}

impl TopicConfig {
    /// Java `new TopicConfig(name)`: 16/16 queues, perm 6, SINGLE_TAG, sysFlag 0, not ordered.
    pub fn new(topic_name: impl Into<String>) -> Self {
        TopicConfig {
            topic_name: topic_name.into(),
            read_queue_nums: DEFAULT_QUEUE_NUMS,
            write_queue_nums: DEFAULT_QUEUE_NUMS,
            perm: PERM_READ | PERM_WRITE,
            topic_filter_type: SINGLE_TAG.to_owned(),
            topic_sys_flag: 0,
            order: false,
            attributes: BTreeMap::new(),
        }
    }

    /// Java `new TopicConfig(name, read, write, perm)`.
    pub fn with_queues(topic_name: impl Into<String>, read: i32, write: i32, perm: i32) -> Self {
        TopicConfig { read_queue_nums: read, write_queue_nums: write, perm, ..TopicConfig::new(topic_name) }
    }

    /// fastjson form (keys sorted), non-ASCII text kept as UTF-8:
    /// `{"attributes":{},"order":false,"perm":6,"readQueueNums":8,"topicFilterType":"SINGLE_TAG",
    /// "topicName":"T","topicSysFlag":0,"writeQueueNums":8}`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_with_perm(out, self.perm);
    }

    /// The GET_TOPIC_CONFIG (351) body.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        self.write_json(&mut out);
        out
    }

    /// [`TopicConfig::write_json`] with `perm` in place of the topic's own (a broker registers
    /// its topics masked by its own permission, §2.6).
    pub fn write_json_with_perm(&self, out: &mut Vec<u8>, perm: i32) {
        out.extend_from_slice(b"{\"attributes\":");
        write_str_map(out, &self.attributes, false);
        out.extend_from_slice(b",\"order\":");
        write_bool(out, self.order);
        out.extend_from_slice(b",\"perm\":");
        write_num(out, perm);
        out.extend_from_slice(b",\"readQueueNums\":");
        write_num(out, self.read_queue_nums);
        out.push(b',');
        write_key(out, "topicFilterType");
        write_str(out, &self.topic_filter_type, false);
        out.push(b',');
        write_key(out, "topicName");
        write_str(out, &self.topic_name, false);
        out.extend_from_slice(b",\"topicSysFlag\":");
        write_num(out, self.topic_sys_flag);
        out.extend_from_slice(b",\"writeQueueNums\":");
        write_num(out, self.write_queue_nums);
        out.push(b'}');
    }

    /// The compressed-registration text `name SP readQ SP writeQ SP perm SP filterType SP {}`
    /// (5.x `TopicConfig.encode()`; `topicSysFlag`, `order` and the attributes are not part of
    /// it).
    pub fn encode_text(&self) -> String {
        format!(
            "{} {} {} {} {} {{}}",
            self.topic_name, self.read_queue_nums, self.write_queue_nums, self.perm, self.topic_filter_type
        )
    }

    /// Reads a TopicConfig object leniently: missing fields take Java's defaults, numbers may be
    /// strings, unknown fields are ignored. `name` is used when `topicName` is absent. `None`
    /// if `v` is not an object.
    pub fn from_value(v: &Value, name: Option<&str>) -> Option<Self> {
        let obj = v.as_object()?;
        let topic_name =
            lenient_string(obj.get("topicName")).filter(|s| !s.is_empty()).or_else(|| name.map(str::to_owned))?;
        let d = TopicConfig::new(topic_name);
        Some(TopicConfig {
            read_queue_nums: lenient_i32(obj.get("readQueueNums")).unwrap_or(d.read_queue_nums),
            write_queue_nums: lenient_i32(obj.get("writeQueueNums")).unwrap_or(d.write_queue_nums),
            perm: lenient_i32(obj.get("perm")).unwrap_or(d.perm),
            topic_filter_type: lenient_string(obj.get("topicFilterType"))
                .filter(|s| !s.is_empty())
                .unwrap_or(d.topic_filter_type.clone()),
            topic_sys_flag: lenient_i32(obj.get("topicSysFlag")).unwrap_or(0),
            order: lenient_bool(obj.get("order")).unwrap_or(false),
            attributes: lenient_str_map(obj.get("attributes")),
            topic_name: d.topic_name,
        })
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn topic_config_json_round_trips_through_the_lenient_reader() {
        let mut tc = TopicConfig::with_queues("Tö", 8, 4, PERM_READ);
        tc.attributes.insert("message.type".into(), "NORMAL".into());
        tc.order = true;
        let json = tc.to_json();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"attributes":{"message.type":"NORMAL"},"order":true,"perm":4,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"Tö","topicSysFlag":0,"writeQueueNums":4}"#
        );
        let v: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(TopicConfig::from_value(&v, None), Some(tc));
        // Java's defaults for what is missing; numbers as strings; the map key as the name.
        let v: Value = serde_json::json!({"readQueueNums": "2"});
        let read = TopicConfig::from_value(&v, Some("K")).unwrap();
        assert_eq!(read, TopicConfig { read_queue_nums: 2, ..TopicConfig::new("K") });
        assert_eq!(TopicConfig::from_value(&serde_json::json!([]), Some("K")), None);
    }

    #[test]
    fn data_version_forms() {
        let mut v = DataVersion { counter: 3, state_version: 1, timestamp: 5 };
        assert_eq!(v.to_json(), br#"{"counter":3,"stateVersion":1,"timestamp":5}"#);
        let parsed: DataVersion = serde_json::from_slice(&v.to_json()).unwrap();
        assert_eq!(parsed, v);
        assert_eq!(DataVersion::from_value(Some(&serde_json::json!({"counter": "7"}))).unwrap().counter, 7);
        v.bump();
        assert_eq!(v.counter, 4);
        assert!(v.timestamp > 5);
    }
}
