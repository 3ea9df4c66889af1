//! The broker's subscription-group table: groupName → [`SubscriptionGroupConfig`] with Java's
//! defaults (§4.6), auto-created on first use when `autoCreateSubscriptionGroup` is on (the
//! default), updated by UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200) from its JSON body, listed by
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201) and persisted as `subscriptionGroup.json` (§6.6).
//!
//! Ownership: one table per broker, in the control plane behind the shared mutex.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::json::{
    lenient_bool, lenient_i32, lenient_i64, lenient_str_map, lenient_string, parse_object_tolerant,
    write_bool, write_key, write_num, write_str, write_str_map,
};
use super::topics::MAX_QUEUE_NUMS;
use super::journal::{ChangeSet, JournaledTable};
use super::persist::{NameError, PersistError, PersistedTable, overlay_config_file, validate_name};
use ferromq_net::wire::DataVersion;

/// Longest group name accepted. Java brokers before 5.3.3 set no broker-side limit and the Java
/// client caps groups at 255 (Appendix B), so 255 keeps every working client working.
pub const MAX_GROUP_NAME_LEN: usize = 255;

/// Groups a Java broker pre-creates (`SubscriptionGroupManager.init`).
pub const TOOLS_CONSUMER_GROUP: &str = "TOOLS_CONSUMER";
pub const FILTERSRV_CONSUMER_GROUP: &str = "FILTERSRV_CONSUMER";
pub const SELF_TEST_CONSUMER_GROUP: &str = "SELF_TEST_C_GROUP";
pub const ONS_HTTP_PROXY_GROUP: &str = "CID_ONS-HTTP-PROXY";
pub const ONSAPI_PULL_GROUP: &str = "CID_ONSAPI_PULL";
pub const ONSAPI_PERMISSION_GROUP: &str = "CID_ONSAPI_PERMISSION";
pub const ONSAPI_OWNER_GROUP: &str = "CID_ONSAPI_OWNER";
/// The transaction checker's internal group.
pub const TRANS_CHECK_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// Every group the broker pre-creates.
pub const SYSTEM_GROUPS: [&str; 8] = [
    TOOLS_CONSUMER_GROUP,
    FILTERSRV_CONSUMER_GROUP,
    SELF_TEST_CONSUMER_GROUP,
    ONS_HTTP_PROXY_GROUP,
    ONSAPI_PULL_GROUP,
    ONSAPI_PERMISSION_GROUP,
    ONSAPI_OWNER_GROUP,
    TRANS_CHECK_GROUP,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("invalid group name: {0}")]
    InvalidName(#[from] NameError),
    #[error("malformed subscription group body: {0}")]
    MalformedBody(String),
    #[error("group {group}: invalid {field} {value}")]
    InvalidValue {
        group: String,
        field: &'static str,
        value: i64,
    },
}

/// A subscription group's configuration (§4.6). Unknown 5.x structures
/// (`groupRetryPolicy`, `subscriptionDataSet`) are kept as raw JSON and written back as read.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub consume_broadcast_enable: bool,
    pub consume_message_orderly: bool,
    pub retry_queue_nums: i32,
    pub retry_max_times: i32,
    pub broker_id: i64,
    pub which_broker_when_consume_slowly: i64,
    pub notify_consumer_ids_changed_enable: bool,
    pub group_sys_flag: i32,
    pub consume_timeout_minute: i32,
    /// 5.x `groupRetryPolicy`; `None` is written as `{"type":"CUSTOMIZED"}` (Java's default).
    pub group_retry_policy: Option<Value>,
    /// 5.x `subscriptionDataSet`; omitted when `None` (Java's null).
    pub subscription_data_set: Option<Value>,
    pub attributes: BTreeMap<String, String>,
}

impl SubscriptionGroupConfig {
    /// A group with Java's defaults.
    pub fn new(group_name: impl Into<String>) -> Self {
        SubscriptionGroupConfig {
            group_name: group_name.into(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            consume_message_orderly: false,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
            group_sys_flag: 0,
            consume_timeout_minute: 15,
            group_retry_policy: None,
            subscription_data_set: None,
            attributes: BTreeMap::new(),
        }
    }

    /// Reads a config leniently (defaults for missing fields, numbers/bools may be strings,
    /// unknown fields ignored). `name` is used when `groupName` is absent.
    pub fn from_value(v: &Value, name: Option<&str>) -> Option<Self> {
        let obj = v.as_object()?;
        let group_name = lenient_string(obj.get("groupName"))
            .filter(|s| !s.is_empty())
            .or_else(|| name.map(str::to_owned))?;
        let d = SubscriptionGroupConfig::new(group_name);
        let b = |k: &str, def: bool| lenient_bool(obj.get(k)).unwrap_or(def);
        let i = |k: &str, def: i32| lenient_i32(obj.get(k)).unwrap_or(def);
        let l = |k: &str, def: i64| lenient_i64(obj.get(k)).unwrap_or(def);
        let raw = |k: &str| obj.get(k).filter(|v| !v.is_null()).cloned();
        Some(SubscriptionGroupConfig {
            consume_enable: b("consumeEnable", d.consume_enable),
            consume_from_min_enable: b("consumeFromMinEnable", d.consume_from_min_enable),
            consume_broadcast_enable: b("consumeBroadcastEnable", d.consume_broadcast_enable),
            consume_message_orderly: b("consumeMessageOrderly", d.consume_message_orderly),
            retry_queue_nums: i("retryQueueNums", d.retry_queue_nums),
            retry_max_times: i("retryMaxTimes", d.retry_max_times),
            broker_id: l("brokerId", d.broker_id),
            which_broker_when_consume_slowly: l(
                "whichBrokerWhenConsumeSlowly",
                d.which_broker_when_consume_slowly,
            ),
            notify_consumer_ids_changed_enable: b(
                "notifyConsumerIdsChangedEnable",
                d.notify_consumer_ids_changed_enable,
            ),
            group_sys_flag: i("groupSysFlag", d.group_sys_flag),
            consume_timeout_minute: i("consumeTimeoutMinute", d.consume_timeout_minute),
            group_retry_policy: raw("groupRetryPolicy"),
            subscription_data_set: raw("subscriptionDataSet"),
            attributes: lenient_str_map(obj.get("attributes")),
            group_name: d.group_name,
        })
    }

    /// Name charset/length, and `retryQueueNums` in 1..=[`MAX_QUEUE_NUMS`] (the retry topic is
    /// created with it; 0 would make send-back impossible).
    pub fn validate(&self) -> Result<(), GroupError> {
        validate_name(&self.group_name, MAX_GROUP_NAME_LEN)?;
        if !(1..=MAX_QUEUE_NUMS).contains(&self.retry_queue_nums) {
            return Err(GroupError::InvalidValue {
                group: self.group_name.clone(),
                field: "retryQueueNums",
                value: i64::from(self.retry_queue_nums),
            });
        }
        Ok(())
    }

    /// fastjson form, keys sorted, nulls omitted.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"attributes\":");
        write_str_map(out, &self.attributes);
        out.extend_from_slice(b",\"brokerId\":");
        write_num(out, self.broker_id);
        out.extend_from_slice(b",\"consumeBroadcastEnable\":");
        write_bool(out, self.consume_broadcast_enable);
        out.extend_from_slice(b",\"consumeEnable\":");
        write_bool(out, self.consume_enable);
        out.extend_from_slice(b",\"consumeFromMinEnable\":");
        write_bool(out, self.consume_from_min_enable);
        out.extend_from_slice(b",\"consumeMessageOrderly\":");
        write_bool(out, self.consume_message_orderly);
        out.extend_from_slice(b",\"consumeTimeoutMinute\":");
        write_num(out, self.consume_timeout_minute);
        out.push(b',');
        write_key(out, "groupName");
        write_str(out, &self.group_name);
        out.extend_from_slice(b",\"groupRetryPolicy\":");
        match &self.group_retry_policy {
            // serde_json's Map is a BTreeMap here: keys come out sorted, like fastjson's.
            Some(v) => out.extend_from_slice(v.to_string().as_bytes()),
            None => out.extend_from_slice(b"{\"type\":\"CUSTOMIZED\"}"),
        }
        out.extend_from_slice(b",\"groupSysFlag\":");
        write_num(out, self.group_sys_flag);
        out.extend_from_slice(b",\"notifyConsumerIdsChangedEnable\":");
        write_bool(out, self.notify_consumer_ids_changed_enable);
        out.extend_from_slice(b",\"retryMaxTimes\":");
        write_num(out, self.retry_max_times);
        out.extend_from_slice(b",\"retryQueueNums\":");
        write_num(out, self.retry_queue_nums);
        if let Some(v) = &self.subscription_data_set {
            out.extend_from_slice(b",\"subscriptionDataSet\":");
            out.extend_from_slice(v.to_string().as_bytes());
        }
        out.extend_from_slice(b",\"whichBrokerWhenConsumeSlowly\":");
        write_num(out, self.which_broker_when_consume_slowly);
        out.push(b'}');
    }

    /// The GET_SUBSCRIPTIONGROUP_CONFIG (352) body.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        self.write_json(&mut out);
        out
    }
}

/// The group table. `Send`; plain data.
#[derive(Debug, Clone)]
pub struct SubscriptionGroupTable {
    auto_create: bool,
    groups: BTreeMap<String, SubscriptionGroupConfig>,
    /// 5.x `forbiddenTable` (group → topic → forbidden bits), kept and written back.
    forbidden: BTreeMap<String, BTreeMap<String, i32>>,
    data_version: DataVersion,
    dirty: bool,
    /// What changed since the last write, for the journal (`journal.rs`).
    changes: ChangeSet,
}

impl SubscriptionGroupTable {
    /// A table with Java's pre-created groups. `auto_create` = `autoCreateSubscriptionGroup`.
    pub fn new(auto_create: bool) -> Self {
        let mut groups = BTreeMap::new();
        for name in SYSTEM_GROUPS {
            groups.insert(name.to_owned(), SubscriptionGroupConfig::new(name));
        }
        SubscriptionGroupTable {
            auto_create,
            groups,
            forbidden: BTreeMap::new(),
            data_version: DataVersion::new(),
            dirty: false,
            changes: ChangeSet::default(),
        }
    }

    pub fn auto_create(&self) -> bool {
        self.auto_create
    }

    pub fn data_version(&self) -> DataVersion {
        self.data_version
    }

    pub fn get(&self, group: &str) -> Option<&SubscriptionGroupConfig> {
        self.groups.get(group)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SubscriptionGroupConfig> {
        self.groups.values()
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Groups besides the ones the broker pre-creates: what `maxAutoCreatedSubscriptionGroups`
    /// counts, whoever created them.
    pub fn non_system_count(&self) -> usize {
        let system = SYSTEM_GROUPS.iter().filter(|g| self.groups.contains_key(**g)).count();
        self.groups.len() - system
    }

    /// The names of every group.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// Java `findSubscriptionGroupConfig`: the group's config; if absent and auto-create is on,
    /// a default config is created (validating the name) and `created` is true (persist).
    /// `Ok(None)`: absent and auto-create off (the caller answers SUBSCRIPTION_GROUP_NOT_EXIST).
    pub fn find_or_create(
        &mut self,
        group: &str,
    ) -> Result<Option<(SubscriptionGroupConfig, bool)>, GroupError> {
        if let Some(existing) = self.groups.get(group) {
            return Ok(Some((existing.clone(), false)));
        }
        if !self.auto_create {
            return Ok(None);
        }
        let config = SubscriptionGroupConfig::new(group);
        config.validate()?;
        self.groups.insert(group.to_owned(), config.clone());
        self.changed(Some(group));
        Ok(Some((config, true)))
    }

    /// Inserts or replaces a group config. Returns whether anything changed.
    pub fn create_or_update(
        &mut self,
        config: SubscriptionGroupConfig,
    ) -> Result<bool, GroupError> {
        config.validate()?;
        if self.groups.get(&config.group_name) == Some(&config) {
            return Ok(false);
        }
        let name = config.group_name.clone();
        self.groups.insert(config.group_name.clone(), config);
        self.changed(Some(&name));
        Ok(true)
    }

    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200): parses the SubscriptionGroupConfig body
    /// (missing fields take Java's defaults) and stores it. Returns the group name and whether
    /// anything changed.
    pub fn create_or_update_from_json(
        &mut self,
        body: &[u8],
    ) -> Result<(String, bool), GroupError> {
        let obj =
            parse_object_tolerant(body).map_err(|e| GroupError::MalformedBody(e.to_string()))?;
        let config = SubscriptionGroupConfig::from_value(&Value::Object(obj), None)
            .ok_or_else(|| GroupError::MalformedBody("groupName is missing".to_owned()))?;
        let name = config.group_name.clone();
        let changed = self.create_or_update(config)?;
        Ok((name, changed))
    }

    /// DELETE_SUBSCRIPTIONGROUP (207). The caller drops offsets when `cleanOffset`.
    pub fn delete(&mut self, group: &str) -> Option<SubscriptionGroupConfig> {
        let removed = self.groups.remove(group);
        let forbidden = self.forbidden.remove(group).is_some();
        if forbidden {
            // The journal holds groups only: a forbidden-table change rewrites the whole file.
            self.changed(None);
        } else if removed.is_some() {
            self.changed(Some(group));
        }
        removed
    }

    /// A change of the group `name` (`None`: of more than its entry, written as a whole file).
    fn changed(&mut self, name: Option<&str>) {
        self.data_version.bump();
        self.dirty = true;
        match name {
            Some(name) => self.changes.entry(name),
            None => self.changes.whole(),
        }
    }

    /// `{"dataVersion":{..},"forbiddenTable":{..},"subscriptionGroupTable":{..}}` — the
    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG body and `subscriptionGroup.json`.
    pub fn to_wrapper_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.groups.len() * 400);
        out.extend_from_slice(b"{\"dataVersion\":");
        self.data_version.write_json(&mut out);
        out.extend_from_slice(b",\"forbiddenTable\":{");
        for (i, (group, topics)) in self.forbidden.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(&mut out, group);
            out.push(b'{');
            for (j, (topic, bits)) in topics.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                write_key(&mut out, topic);
                write_num(&mut out, bits);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"},\"subscriptionGroupTable\":{");
        for (i, (name, config)) in self.groups.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(&mut out, name);
            config.write_json(&mut out);
        }
        out.extend_from_slice(b"}}");
        out
    }

    /// The pre-created groups overlaid with `path` (ours or a Java broker's file). Missing file =
    /// defaults; corrupt file = error naming it; unreadable entries are skipped with a warning.
    pub fn load(path: &Path, auto_create: bool) -> Result<Self, PersistError> {
        overlay_config_file(path, Self::new(auto_create), Self::merge_wrapper_json)
    }

    /// Overlays a `subscriptionGroup.json` / GET_ALL_SUBSCRIPTIONGROUP_CONFIG body and adopts its
    /// data version. Returns one warning per skipped entry.
    pub fn merge_wrapper_json(&mut self, body: &[u8]) -> Result<Vec<String>, String> {
        let parsed = GroupWrapper::parse(body)?;
        self.groups.extend(parsed.groups);
        self.forbidden.extend(parsed.forbidden);
        if let Some(v) = parsed.data_version {
            self.data_version = v;
        }
        self.data_version.bump();
        Ok(parsed.warnings)
    }

    /// A slave's copy of its master's table (§7.5, Java `syncSubscriptionGroupConfig`): when
    /// the master's data version differs from this table's, the table becomes the master's
    /// groups, forbidden table and version exactly (not bumped) and is marked dirty. Returns
    /// whether it changed.
    pub fn replace_with_master(&mut self, master: GroupWrapper) -> bool {
        let Some(version) = self.data_version.copied_from(master.data_version) else { return false };
        self.groups = master.groups;
        self.forbidden = master.forbidden;
        self.data_version = version;
        self.dirty = true;
        self.changes.whole();
        true
    }
}

/// A `subscriptionGroup.json` / GET_ALL_SUBSCRIPTIONGROUP_CONFIG body as read.
#[derive(Debug, Clone, Default)]
pub struct GroupWrapper {
    pub data_version: Option<DataVersion>,
    pub groups: BTreeMap<String, SubscriptionGroupConfig>,
    pub forbidden: BTreeMap<String, BTreeMap<String, i32>>,
    /// One per skipped entry.
    pub warnings: Vec<String>,
}

impl GroupWrapper {
    /// Reads the body leniently: unreadable or invalid groups are skipped with a warning; only a
    /// body that is not an object or whose `subscriptionGroupTable` is not an object is an error.
    pub fn parse(body: &[u8]) -> Result<GroupWrapper, String> {
        let root = parse_object_tolerant(body).map_err(|e| e.to_string())?;
        let mut parsed = GroupWrapper { data_version: DataVersion::from_value(root.get("dataVersion")), ..GroupWrapper::default() };
        match root.get("subscriptionGroupTable") {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                for (name, value) in entries {
                    match SubscriptionGroupConfig::from_value(value, Some(name)) {
                        Some(mut config) => {
                            config.group_name.clone_from(name);
                            match config.validate() {
                                Ok(()) => {
                                    parsed.groups.insert(name.clone(), config);
                                }
                                Err(e) => parsed.warnings.push(format!("group {name:?} skipped: {e}")),
                            }
                        }
                        None if value.is_null() => {}
                        None => parsed.warnings.push(format!("group {name:?} is not an object; skipped")),
                    }
                }
            }
            Some(_) => return Err("subscriptionGroupTable is not an object".to_owned()),
        }
        if let Some(Value::Object(groups)) = root.get("forbiddenTable") {
            for (group, topics) in groups {
                let Some(topics) = topics.as_object() else {
                    continue;
                };
                let entry: BTreeMap<String, i32> = topics
                    .iter()
                    .filter_map(|(t, bits)| Some((t.clone(), lenient_i32(Some(bits))?)))
                    .collect();
                if !entry.is_empty() {
                    parsed.forbidden.insert(group.clone(), entry);
                }
            }
        }
        Ok(parsed)
    }
}

impl JournaledTable for SubscriptionGroupTable {
    fn changes_mut(&mut self) -> &mut ChangeSet {
        &mut self.changes
    }
    fn entry_json(&self, name: &str) -> Option<Vec<u8>> {
        Some(self.groups.get(name)?.to_json())
    }
    fn version_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.data_version.write_json(&mut out);
        out
    }
    fn apply_journal(&mut self, changes: super::journal::JournalChanges) -> Result<Vec<String>, String> {
        let warnings = self.merge_wrapper_json(&super::journal::journal_wrapper("subscriptionGroupTable", &changes))?;
        for (name, entry) in &changes.entries {
            if entry.is_none() {
                self.groups.remove(name);
            }
        }
        Ok(warnings)
    }
}

impl PersistedTable for SubscriptionGroupTable {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::meta::test_util::temp_dir;

    #[test]
    fn defaults_and_json() {
        let c = SubscriptionGroupConfig::new("g");
        let text = String::from_utf8(c.to_json()).unwrap();
        assert_eq!(
            text,
            r#"{"attributes":{},"brokerId":0,"consumeBroadcastEnable":true,"consumeEnable":true,"consumeFromMinEnable":true,"consumeMessageOrderly":false,"consumeTimeoutMinute":15,"groupName":"g","groupRetryPolicy":{"type":"CUSTOMIZED"},"groupSysFlag":0,"notifyConsumerIdsChangedEnable":true,"retryMaxTimes":16,"retryQueueNums":1,"whichBrokerWhenConsumeSlowly":1}"#
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let back = SubscriptionGroupConfig::from_value(&v, None).unwrap();
        // The default policy is written explicitly, so it comes back as a value.
        assert_eq!(
            back.group_retry_policy,
            Some(serde_json::json!({"type":"CUSTOMIZED"}))
        );
        assert_eq!(
            SubscriptionGroupConfig {
                group_retry_policy: None,
                ..back
            },
            c
        );
    }

    #[test]
    fn auto_create_on_first_use() {
        let mut t = SubscriptionGroupTable::new(true);
        assert!(t.get(TOOLS_CONSUMER_GROUP).is_some());
        assert!(t.get(TRANS_CHECK_GROUP).is_some());
        assert!(!t.is_dirty());
        let (c, created) = t.find_or_create("cg").unwrap().unwrap();
        assert!(created);
        assert_eq!(c.retry_queue_nums, 1);
        assert!(t.is_dirty());
        let v = t.data_version();
        let (_, created) = t.find_or_create("cg").unwrap().unwrap();
        assert!(!created);
        assert_eq!(t.data_version(), v);
        assert!(matches!(
            t.find_or_create("bad group"),
            Err(GroupError::InvalidName(_))
        ));

        let mut off = SubscriptionGroupTable::new(false);
        assert!(off.find_or_create("cg").unwrap().is_none());
        assert!(off.get("cg").is_none());
    }

    #[test]
    fn admin_body() {
        let mut t = SubscriptionGroupTable::new(true);
        // mqadmin updateSubGroup body (4.x, no 5.x fields), some values as strings.
        let body = br#"{"brokerId":0,"consumeBroadcastEnable":"false","consumeEnable":true,"consumeFromMinEnable":false,"consumeMessageOrderly":true,"groupName":"orderly_g","groupSysFlag":0,"notifyConsumerIdsChangedEnable":true,"retryMaxTimes":"3","retryQueueNums":2,"whichBrokerWhenConsumeSlowly":1,"unknown":{"x":1}}"#;
        let (name, changed) = t.create_or_update_from_json(body).unwrap();
        assert_eq!(name, "orderly_g");
        assert!(changed);
        let c = t.get("orderly_g").unwrap();
        assert!(c.consume_message_orderly && !c.consume_broadcast_enable);
        assert_eq!(
            (
                c.retry_max_times,
                c.retry_queue_nums,
                c.consume_timeout_minute
            ),
            (3, 2, 15)
        );
        assert!(!t.create_or_update_from_json(body).unwrap().1);
        assert!(matches!(
            t.create_or_update_from_json(b"{}"),
            Err(GroupError::MalformedBody(_))
        ));
        assert!(matches!(
            t.create_or_update_from_json(b"{"),
            Err(GroupError::MalformedBody(_))
        ));
        assert!(matches!(
            t.create_or_update_from_json(br#"{"groupName":"g","retryQueueNums":0}"#),
            Err(GroupError::InvalidValue { .. })
        ));
        assert!(t.delete("orderly_g").is_some());
        assert!(t.delete("orderly_g").is_none());
    }

    #[test]
    fn persistence_round_trip_and_java_file() {
        let dir = temp_dir("groups");
        let path = dir.join("subscriptionGroup.json");
        let mut t = SubscriptionGroupTable::load(&path, true).unwrap();
        assert_eq!(t.len(), 8);
        t.find_or_create("cg").unwrap();
        let mut c = SubscriptionGroupConfig::new("x");
        c.group_retry_policy = Some(
            serde_json::json!({"type":"EXPONENTIAL","exponentialRetryPolicy":{"initial":1000,"max":60000,"multiplier":2}}),
        );
        c.subscription_data_set = Some(serde_json::json!([{"topic":"T","expression":"*"}]));
        c.attributes.insert("k".into(), "v".into());
        t.create_or_update(c.clone()).unwrap();
        assert!(t.snapshot_if_dirty().is_some());
        t.persist(&path).unwrap();
        let back = SubscriptionGroupTable::load(&path, true).unwrap();
        assert_eq!(back.get("x"), Some(&c));
        assert!(back.get("cg").is_some());
        assert_eq!(back.len(), t.len());
        assert_eq!(back.data_version().counter, t.data_version().counter + 1);

        // A Java 4.x file: pretty, forbiddenTable, a broken entry.
        let java = "{\n\t\"dataVersion\":{\"counter\":5,\"timestamp\":1},\n\t\"forbiddenTable\":{\"g\":{\"T\":1}},\n\t\"subscriptionGroupTable\":{\n\t\t\"g\":{\"groupName\":\"g\",\"retryMaxTimes\":5},\n\t\t\"bad\":7\n\t}\n}";
        std::fs::write(&path, java).unwrap();
        let j = SubscriptionGroupTable::load(&path, true).unwrap();
        assert_eq!(j.get("g").unwrap().retry_max_times, 5);
        assert!(j.get("bad").is_none());
        let w: Value = serde_json::from_slice(&j.to_wrapper_json()).unwrap();
        assert_eq!(w["forbiddenTable"]["g"]["T"], 1);
        assert_eq!(w["dataVersion"]["counter"], 6);
        std::fs::write(&path, "{\"subscriptionGroupTable\":[").unwrap();
        assert!(
            SubscriptionGroupTable::load(&path, true)
                .unwrap_err()
                .to_string()
                .contains("subscriptionGroup.json")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
