//! The name server's route registry (PROTOCOL.md §2.6, §8.0–8.2): the four in-memory tables
//! rebuilt from broker registrations — topicQueueTable, brokerAddrTable, clusterAddrTable and
//! brokerLiveTable — with registration, unregistration, connection-close and expiry removal,
//! route and cluster-info queries, the admin operations of the "Other name-server codes" table,
//! and the hand-written JSON encoders of the bodies built from these tables (TopicRouteData,
//! ClusterInfo, TopicList, BrokerMemberGroup).
//!
//! Pure and synchronous: no I/O, no clock (callers pass `now_ms`), no networking (a broker's
//! connection is an opaque `connection_id`). One `RouteTable` is owned by the name server's
//! single route-owning task; handlers send it typed requests.
//!
//! Invariants kept by every method:
//! * every `BrokerData` in brokerAddrTable has at least one address;
//! * every broker group's name is in the set of its cluster in clusterAddrTable;
//! * every topic in topicQueueTable has at least one `QueueData`;
//! * an address appears under at most one broker id within its group.
//!
//! QueueData of a group that disappears are removed from every topic at once, so routes never
//! name a broker group that is gone. (REGISTER_TOPIC_IN_NAMESRV refuses unknown groups.)

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::fastjson::{
    JsonFlavour, null_as_default, parse_tolerant_object, write_key, write_num, write_str,
    write_str_array,
};
use crate::register_body::RegisterBrokerBody;
use ferromq_net::wire::{DataVersion, TopicConfig};

/// Default broker expiry when the registration names none (Java `DEFAULT_BROKER_CHANNEL_EXPIRED_TIME`).
pub const DEFAULT_BROKER_TIMEOUT_MS: u64 = 120_000;
/// Broker id of a master.
pub const MASTER_ID: u64 = 0;
/// PermName bits (§8.2), as the broker's topic configs carry them.
pub use ferromq_net::wire::{PERM_INHERIT, PERM_PRIORITY, PERM_READ, PERM_WRITE};
/// TopicSysFlag bits (Java `TopicSysFlag`).
pub const TOPIC_SYS_FLAG_UNIT: i32 = 1 << 0;
pub const TOPIC_SYS_FLAG_UNIT_SUB: i32 = 1 << 1;

pub use crate::error::RouteError;

/// Per-topic, per-broker-group queue layout (`QueueData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

impl QueueData {
    fn write_json(&self, out: &mut Vec<u8>, ascii_only: bool) {
        out.push(b'{');
        write_key(out, "brokerName");
        write_str(out, &self.broker_name, ascii_only);
        out.extend_from_slice(b",\"perm\":");
        write_num(out, self.perm);
        out.extend_from_slice(b",\"readQueueNums\":");
        write_num(out, self.read_queue_nums);
        out.extend_from_slice(b",\"topicSysFlag\":");
        write_num(out, self.topic_sys_flag);
        out.extend_from_slice(b",\"writeQueueNums\":");
        write_num(out, self.write_queue_nums);
        out.push(b'}');
    }
}

/// A broker group (`BrokerData`): all addresses registered under one broker name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    /// broker id (0 = master) → `ip:port` of the broker's main port.
    pub broker_addrs: BTreeMap<u64, String>,
    /// From the last registration's `enableActingMaster` header (false when absent).
    pub enable_acting_master: bool,
    /// From the last registration's `__ZONE_NAME` (5.x).
    pub zone_name: Option<String>,
}

impl BrokerData {
    fn new(cluster: &str, broker_name: &str) -> Self {
        BrokerData {
            cluster: cluster.to_owned(),
            broker_name: broker_name.to_owned(),
            broker_addrs: BTreeMap::new(),
            enable_acting_master: false,
            zone_name: None,
        }
    }

    /// `{"brokerAddrs":{..},"brokerName":..,"cluster":..[,"enableActingMaster":..][,"zoneName":..]}`.
    fn write_json(&self, out: &mut Vec<u8>, flavour: JsonFlavour) {
        let ascii = flavour.ascii_only();
        out.push(b'{');
        write_key(out, "brokerAddrs");
        write_broker_addrs(out, &self.broker_addrs, flavour);
        out.push(b',');
        write_key(out, "brokerName");
        write_str(out, &self.broker_name, ascii);
        out.push(b',');
        write_key(out, "cluster");
        write_str(out, &self.cluster, ascii);
        if flavour == JsonFlavour::Standard {
            out.extend_from_slice(b",\"enableActingMaster\":");
            out.extend_from_slice(if self.enable_acting_master {
                b"true"
            } else {
                b"false"
            });
        }
        if let Some(zone) = &self.zone_name {
            out.push(b',');
            write_key(out, "zoneName");
            write_str(out, zone, ascii);
        }
        out.push(b'}');
    }
}

/// `{0:"a",1:"b"}` (fastjson) or `{"0":"a","1":"b"}` (standard), ids ascending, no whitespace:
/// the Go client splits this text on `,` and `:`.
fn write_broker_addrs(out: &mut Vec<u8>, addrs: &BTreeMap<u64, String>, flavour: JsonFlavour) {
    out.push(b'{');
    for (i, (id, addr)) in addrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match flavour {
            JsonFlavour::Fastjson => write_num(out, id),
            JsonFlavour::Standard => {
                out.push(b'"');
                write_num(out, id);
                out.push(b'"');
            }
        }
        out.push(b':');
        write_str(out, addr, flavour.ascii_only());
    }
    out.push(b'}');
}

/// GET_ROUTEINFO_BY_TOPIC body (§4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRouteData {
    /// Sorted by broker name.
    pub queue_datas: Vec<QueueData>,
    /// The groups named by `queue_datas`, sorted by broker name.
    pub broker_datas: Vec<BrokerData>,
    /// `brokerName:queueCount;...` from KV namespace ORDER_TOPIC_CONFIG. `RouteTable::route`
    /// leaves it `None`; the handler sets it when the name server has `orderMessageEnable=true`.
    pub order_topic_conf: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawQueueData {
    broker_name: String,
    #[serde(default)]
    read_queue_nums: i32,
    #[serde(default)]
    write_queue_nums: i32,
    #[serde(default)]
    perm: i32,
    /// Spelled `topicSynFlag` by clients <= 4.8.
    #[serde(default, alias = "topicSynFlag")]
    topic_sys_flag: i32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTopicRouteData {
    #[serde(default, deserialize_with = "null_as_default")]
    queue_datas: Vec<RawQueueData>,
}

impl TopicRouteData {
    /// Encodes without whitespace, keys in fastjson order. `filterServerTable` is always `{}`
    /// (Java always sets an empty map); `orderTopicConf` only when set; `topicQueueMappingByBroker`
    /// (static topics) is never written.
    pub fn to_json(&self, flavour: JsonFlavour) -> Vec<u8> {
        let ascii = flavour.ascii_only();
        let mut out = Vec::with_capacity(128 + 160 * self.broker_datas.len());
        out.extend_from_slice(b"{\"brokerDatas\":[");
        for (i, bd) in self.broker_datas.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            bd.write_json(&mut out, flavour);
        }
        out.extend_from_slice(b"],\"filterServerTable\":{}");
        if let Some(conf) = &self.order_topic_conf {
            out.extend_from_slice(b",\"orderTopicConf\":");
            write_str(&mut out, conf, ascii);
        }
        out.extend_from_slice(b",\"queueDatas\":[");
        for (i, qd) in self.queue_datas.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            qd.write_json(&mut out, ascii);
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// Reads the `queueDatas` of a TopicRouteData body (REGISTER_TOPIC_IN_NAMESRV, code 217).
    /// A Java admin tool writes it with fastjson defaults, i.e. unquoted `brokerAddrs` keys;
    /// both forms are accepted. Everything but `queueDatas` is ignored.
    pub fn parse_queue_datas(body: &[u8]) -> Result<Vec<QueueData>, RouteError> {
        let raw: RawTopicRouteData = parse_tolerant_object(body)
            .map_err(|e| RouteError::MalformedBody(format!("TopicRouteData: {e}")))?;
        Ok(raw
            .queue_datas
            .into_iter()
            .map(|q| QueueData {
                broker_name: q.broker_name,
                read_queue_nums: q.read_queue_nums,
                write_queue_nums: q.write_queue_nums,
                perm: q.perm,
                topic_sys_flag: q.topic_sys_flag,
            })
            .collect())
    }
}

/// GET_BROKER_CLUSTER_INFO body (§4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

impl ClusterInfo {
    /// The Java name server always answers code 106 in the fastjson form (unquoted numeric
    /// keys, and from 5.x with `enableActingMaster`). FerroMQ applies the route rule instead
    /// (`JsonFlavour::for_request(version, false)`): Java tools parse both forms, a client that
    /// reads fastjson literally (and knows no `true`/`false`) sends old versions and gets the
    /// 4.x-looking form, and clients with modern versions get standard JSON they can parse
    /// with any JSON library.
    pub fn to_json(&self, flavour: JsonFlavour) -> Vec<u8> {
        let ascii = flavour.ascii_only();
        let mut out = Vec::with_capacity(64 + 200 * self.broker_addr_table.len());
        out.extend_from_slice(b"{\"brokerAddrTable\":{");
        for (i, (name, bd)) in self.broker_addr_table.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&mut out, name, ascii);
            out.push(b':');
            bd.write_json(&mut out, flavour);
        }
        out.extend_from_slice(b"},\"clusterAddrTable\":{");
        for (i, (cluster, names)) in self.cluster_addr_table.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&mut out, cluster, ascii);
            out.push(b':');
            write_str_array(&mut out, names, ascii);
        }
        out.extend_from_slice(b"}}");
        out
    }
}

/// TopicList body (§4.4): `{"brokerAddr":"ip:port","topicList":[..]}`, `brokerAddr` optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicList {
    pub topic_list: Vec<String>,
    pub broker_addr: Option<String>,
}

impl TopicList {
    pub fn new(topic_list: Vec<String>) -> Self {
        TopicList {
            topic_list,
            broker_addr: None,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 24 * self.topic_list.len());
        out.push(b'{');
        if let Some(addr) = &self.broker_addr {
            write_key(&mut out, "brokerAddr");
            write_str(&mut out, addr, false);
            out.push(b',');
        }
        write_key(&mut out, "topicList");
        write_str_array(&mut out, &self.topic_list, false);
        out.push(b'}');
        out
    }
}

/// GET_BROKER_MEMBER_GROUP result (code 901).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMemberGroup {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addrs: BTreeMap<u64, String>,
}

impl BrokerMemberGroup {
    /// `{"brokerMemberGroup":{"brokerAddrs":{..},"brokerName":..,"cluster":..}}`
    /// (GetBrokerMemberGroupResponseBody). Only 5.x Java brokers ask; they parse either flavour.
    pub fn to_json(&self, flavour: JsonFlavour) -> Vec<u8> {
        let ascii = flavour.ascii_only();
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"{\"brokerMemberGroup\":{");
        write_key(&mut out, "brokerAddrs");
        write_broker_addrs(&mut out, &self.broker_addrs, flavour);
        out.push(b',');
        write_key(&mut out, "brokerName");
        write_str(&mut out, &self.broker_name, ascii);
        out.push(b',');
        write_key(&mut out, "cluster");
        write_str(&mut out, &self.cluster, ascii);
        out.extend_from_slice(b"}}");
        out
    }
}

/// A decoded REGISTER_BROKER request (header fields + body).
#[derive(Debug, Clone)]
pub struct RegisterBrokerRequest {
    pub cluster_name: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: u64,
    pub ha_server_addr: String,
    /// 5.x header; `None` marks a 4.x ("old version") broker.
    pub enable_acting_master: Option<bool>,
    /// 5.x `heartbeatTimeoutMillis`; overrides the table's default expiry for this broker.
    pub heartbeat_timeout_ms: Option<u64>,
    /// `__ZONE_NAME` ext field.
    pub zone_name: Option<String>,
    pub body: RegisterBrokerBody,
    /// The connection the registration arrived on; `connection_closed` removes by it.
    pub connection_id: u64,
}

/// REGISTER_BROKER response header values. Both are `None` for a master, and for a slave whose
/// group has no live master.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOutcome {
    pub master_addr: Option<String>,
    pub ha_server_addr: Option<String>,
}

/// A broker address removed by unregistration, connection close or expiry (for logging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedBroker {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    /// True when this was the group's last address, so the group and its QueueData are gone.
    pub group_removed: bool,
}

/// QUERY_DATA_VERSION answer (code 322).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataVersionQuery {
    /// Header `changed`: true when the name server has no version for the broker or a different one.
    pub changed: bool,
    /// Response body (`DataVersion::to_json`), absent when the broker is not registered.
    pub stored: Option<DataVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct BrokerAddrKey {
    cluster: String,
    broker_addr: String,
}

impl BrokerAddrKey {
    fn new(cluster: &str, broker_addr: &str) -> Self {
        BrokerAddrKey {
            cluster: cluster.to_owned(),
            broker_addr: broker_addr.to_owned(),
        }
    }
}

/// brokerLiveTable entry.
#[derive(Debug, Clone)]
struct BrokerLiveInfo {
    last_update_ms: u64,
    timeout_ms: u64,
    data_version: DataVersion,
    connection_id: u64,
    ha_server_addr: String,
    /// The group this address last registered under, so expiry and connection close can find it.
    broker_name: String,
}

/// Settings of a [`RouteTable`] (name-server config keys of §11.4 that concern it).
#[derive(Debug, Clone)]
pub struct RouteTableConfig {
    /// Expiry of a broker address without a registration, unless the registration carried
    /// `heartbeatTimeoutMillis`. Default 120 000 ms; tests use small values.
    pub default_broker_timeout_ms: u64,
    /// Java rejects a registration carrying exactly one topic from a broker id not yet in its
    /// group (a 5.x incremental registration racing ahead of the first full one). Caution: a
    /// broker whose whole table is a single topic can then never register; Java brokers always
    /// have system topics. Default true (Java behaviour).
    pub reject_single_topic_before_full_registration: bool,
    /// 5.x `deleteTopicWithBrokerRegistration`: a registration from the topic-applying broker
    /// replaces the group's topic set (topics absent from it lose this group's QueueData).
    /// Default false: registrations may be partial.
    pub delete_topic_with_broker_registration: bool,
}

impl Default for RouteTableConfig {
    fn default() -> Self {
        RouteTableConfig {
            default_broker_timeout_ms: DEFAULT_BROKER_TIMEOUT_MS,
            reject_single_topic_before_full_registration: true,
            delete_topic_with_broker_registration: false,
        }
    }
}

/// The route registry. See the module doc for the invariants.
#[derive(Debug, Default)]
pub struct RouteTable {
    config: RouteTableConfig,
    /// topic → brokerName → QueueData.
    topic_queue_table: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// brokerName → BrokerData.
    broker_addr_table: BTreeMap<String, BrokerData>,
    /// clusterName → brokerNames.
    cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
    /// (clusterName, brokerAddr) → liveness.
    broker_live_table: BTreeMap<BrokerAddrKey, BrokerLiveInfo>,
}

impl RouteTable {
    pub fn new(config: RouteTableConfig) -> Self {
        RouteTable {
            config,
            ..RouteTable::default()
        }
    }

    /// REGISTER_BROKER (§2.6 steps 1–5, Java 5.x `RouteInfoManager.registerBroker`).
    ///
    /// Topics are applied only from the master (id 0) or, for 5.x brokers (header
    /// `enableActingMaster` present), from the lowest registered id while no id 0 is registered
    /// (the "prime slave"; its topics lose PERM_WRITE when `enableActingMaster=true`). A topic is
    /// (re)applied only when the address registers for the first time, its DataVersion changed
    /// or the topic lacks this group's QueueData — as in Java. This is what keeps a
    /// WIPE_WRITE_PERM_OF_BROKER in force across the broker's periodic registrations.
    /// Topics absent from the body are kept (partial registration) unless
    /// `delete_topic_with_broker_registration` is on.
    pub fn register(
        &mut self,
        req: RegisterBrokerRequest,
        now_ms: u64,
    ) -> Result<RegisterOutcome, RouteError> {
        let RegisterBrokerRequest {
            cluster_name,
            broker_name,
            broker_addr,
            broker_id,
            ha_server_addr,
            enable_acting_master,
            heartbeat_timeout_ms,
            zone_name,
            body,
            connection_id,
        } = req;

        let id_known = self
            .broker_addr_table
            .get(&broker_name)
            .is_some_and(|g| g.broker_addrs.contains_key(&broker_id));
        if self.config.reject_single_topic_before_full_registration
            && !id_known
            && body.topics.len() == 1
        {
            return Err(RouteError::SingleTopicBeforeFullRegistration {
                broker_name,
                broker_id,
                broker_addr,
            });
        }

        // Step 4's key, and step 3's "did the DataVersion change" before step 4 overwrites it.
        let live_key = BrokerAddrKey::new(&cluster_name, &broker_addr);
        let version_changed = self
            .broker_live_table
            .get(&live_key)
            .is_none_or(|live| live.data_version != body.data_version);

        // Step 1.
        self.cluster_addr_table
            .entry(cluster_name.clone())
            .or_default()
            .insert(broker_name.clone());
        let group = self
            .broker_addr_table
            .entry(broker_name.clone())
            .or_insert_with(|| BrokerData::new(&cluster_name, &broker_name));
        group.enable_acting_master = enable_acting_master.unwrap_or(false);
        group.zone_name = zone_name;

        // Step 2: one id per address (a slave promoted to master re-registers as id 0).
        group
            .broker_addrs
            .retain(|id, addr| *id == broker_id || *addr != broker_addr);
        let old_addr = group.broker_addrs.insert(broker_id, broker_addr.clone());
        let register_first = old_addr.is_none_or(|a| a.is_empty());

        // Step 3.
        let is_master = broker_id == MASTER_ID;
        let is_prime_slave = enable_acting_master.is_some()
            && !is_master
            && group.broker_addrs.keys().next() == Some(&broker_id);
        let wipe_write = is_prime_slave && group.enable_acting_master;
        if is_master || is_prime_slave {
            if self.config.delete_topic_with_broker_registration {
                let keep: BTreeSet<&str> =
                    body.topics.iter().map(|t| t.topic_name.as_str()).collect();
                self.topic_queue_table.retain(|topic, per_group| {
                    if !keep.contains(topic.as_str()) {
                        per_group.remove(&broker_name);
                    }
                    !per_group.is_empty()
                });
            }
            for tc in &body.topics {
                let apply = register_first
                    || version_changed
                    || !self
                        .topic_queue_table
                        .get(&tc.topic_name)
                        .is_some_and(|per_group| per_group.contains_key(&broker_name));
                if apply {
                    self.put_queue_data(&broker_name, tc, wipe_write);
                }
            }
        }

        // Step 4.
        self.broker_live_table.insert(
            live_key,
            BrokerLiveInfo {
                last_update_ms: now_ms,
                timeout_ms: heartbeat_timeout_ms.unwrap_or(self.config.default_broker_timeout_ms),
                data_version: body.data_version,
                connection_id,
                ha_server_addr,
                broker_name: broker_name.clone(),
            },
        );

        // Step 5.
        let mut outcome = RegisterOutcome::default();
        if !is_master {
            let master_addr = self
                .broker_addr_table
                .get(&broker_name)
                .and_then(|g| g.broker_addrs.get(&MASTER_ID));
            if let Some(master_addr) = master_addr {
                let master_live = self
                    .broker_live_table
                    .get(&BrokerAddrKey::new(&cluster_name, master_addr));
                if let Some(live) = master_live {
                    outcome.master_addr = Some(master_addr.clone());
                    outcome.ha_server_addr = Some(live.ha_server_addr.clone());
                }
            }
        }
        Ok(outcome)
    }

    fn put_queue_data(&mut self, broker_name: &str, tc: &TopicConfig, wipe_write: bool) {
        let perm = if wipe_write {
            tc.perm & !PERM_WRITE
        } else {
            tc.perm
        };
        let qd = QueueData {
            broker_name: broker_name.to_owned(),
            read_queue_nums: tc.read_queue_nums,
            write_queue_nums: tc.write_queue_nums,
            perm,
            topic_sys_flag: tc.topic_sys_flag,
        };
        self.topic_queue_table
            .entry(tc.topic_name.clone())
            .or_default()
            .insert(broker_name.to_owned(), qd);
    }

    /// UNREGISTER_BROKER (code 104). Removes `broker_addr` from group `broker_name` (by address,
    /// whatever id it is under, as Java 5.x does — so the header's `brokerId` is not needed) and
    /// its live entry; the group goes when empty (§2.6). Returns `None` when the address was
    /// neither live nor in the group.
    pub fn unregister(
        &mut self,
        cluster: &str,
        broker_addr: &str,
        broker_name: &str,
    ) -> Option<RemovedBroker> {
        self.remove_broker_addr(cluster, broker_addr, broker_name)
    }

    /// A broker's connection closed: remove at once every address whose latest registration
    /// came through `connection_id` (a re-registration on a new connection moves the entry).
    pub fn connection_closed(&mut self, connection_id: u64) -> Vec<RemovedBroker> {
        let victims: Vec<(String, String, String)> = self
            .broker_live_table
            .iter()
            .filter(|(_, live)| live.connection_id == connection_id)
            .map(|(k, live)| {
                (
                    k.cluster.clone(),
                    k.broker_addr.clone(),
                    live.broker_name.clone(),
                )
            })
            .collect();
        victims
            .into_iter()
            .filter_map(|(cluster, addr, name)| self.remove_broker_addr(&cluster, &addr, &name))
            .collect()
    }

    /// Expires every address with `last_update + timeout < now` (§8.1). Call every
    /// `scanNotActiveBrokerInterval` (5 s).
    pub fn scan_not_active(&mut self, now_ms: u64) -> Vec<RemovedBroker> {
        let victims: Vec<(String, String, String)> = self
            .broker_live_table
            .iter()
            .filter(|(_, live)| live.last_update_ms.saturating_add(live.timeout_ms) < now_ms)
            .map(|(k, live)| {
                (
                    k.cluster.clone(),
                    k.broker_addr.clone(),
                    live.broker_name.clone(),
                )
            })
            .collect();
        victims
            .into_iter()
            .filter_map(|(cluster, addr, name)| self.remove_broker_addr(&cluster, &addr, &name))
            .collect()
    }

    /// The one removal path (unregister, connection close, expiry).
    fn remove_broker_addr(
        &mut self,
        cluster: &str,
        broker_addr: &str,
        broker_name: &str,
    ) -> Option<RemovedBroker> {
        let was_live = self
            .broker_live_table
            .remove(&BrokerAddrKey::new(cluster, broker_addr))
            .is_some();
        let mut in_group = false;
        let mut group_removed = false;
        let mut group_cluster = None;
        if let Some(group) = self.broker_addr_table.get_mut(broker_name) {
            let before = group.broker_addrs.len();
            group.broker_addrs.retain(|_, addr| addr != broker_addr);
            in_group = group.broker_addrs.len() != before;
            if group.broker_addrs.is_empty() {
                group_cluster = Some(group.cluster.clone());
                self.broker_addr_table.remove(broker_name);
                group_removed = true;
            } else if in_group
                && group.enable_acting_master
                && !group.broker_addrs.contains_key(&MASTER_ID)
            {
                // 5.x acting-master mode: a group left without its master stops taking writes
                // (Java `cleanTopicByUnRegisterRequests`).
                for per_group in self.topic_queue_table.values_mut() {
                    if let Some(qd) = per_group.get_mut(broker_name) {
                        qd.perm &= !PERM_WRITE;
                    }
                }
            }
        }
        if group_removed {
            for c in [Some(cluster), group_cluster.as_deref()]
                .into_iter()
                .flatten()
            {
                if let Some(names) = self.cluster_addr_table.get_mut(c) {
                    names.remove(broker_name);
                    if names.is_empty() {
                        self.cluster_addr_table.remove(c);
                    }
                }
            }
            self.topic_queue_table.retain(|_, per_group| {
                per_group.remove(broker_name);
                !per_group.is_empty()
            });
        }
        (was_live || in_group).then(|| RemovedBroker {
            cluster: cluster.to_owned(),
            broker_name: broker_name.to_owned(),
            broker_addr: broker_addr.to_owned(),
            group_removed,
        })
    }

    /// GET_ROUTEINFO_BY_TOPIC: the topic's QueueData whose group exists plus those groups'
    /// BrokerData, both sorted by broker name; `None` (17 TOPIC_NOT_EXIST) when either is empty.
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let per_group = self.topic_queue_table.get(topic)?;
        let mut queue_datas = Vec::with_capacity(per_group.len());
        let mut broker_datas = Vec::with_capacity(per_group.len());
        for (broker_name, qd) in per_group {
            if let Some(bd) = self.broker_addr_table.get(broker_name) {
                queue_datas.push(qd.clone());
                broker_datas.push(bd.clone());
            }
        }
        if queue_datas.is_empty() {
            return None;
        }
        Some(TopicRouteData {
            queue_datas,
            broker_datas,
            order_topic_conf: None,
        })
    }

    /// GET_BROKER_CLUSTER_INFO.
    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.broker_addr_table.clone(),
            cluster_addr_table: self.cluster_addr_table.clone(),
        }
    }

    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206), sorted.
    pub fn all_topics(&self) -> Vec<String> {
        self.topic_queue_table.keys().cloned().collect()
    }

    /// GET_TOPICS_BY_CLUSTER (224): topics with QueueData on any group of `cluster`, sorted.
    pub fn topics_by_cluster(&self, cluster: &str) -> Vec<String> {
        let Some(names) = self.cluster_addr_table.get(cluster) else {
            return Vec::new();
        };
        self.topic_queue_table
            .iter()
            .filter(|(_, per_group)| per_group.keys().any(|name| names.contains(name)))
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS (304): every cluster name and broker name (each broker
    /// group has a topic of its name; clusters do too), `brokerAddr` = an address of the first
    /// group (lowest id). Sorted and de-duplicated.
    pub fn system_topic_list(&self) -> TopicList {
        let mut names: BTreeSet<String> = BTreeSet::new();
        for (cluster, brokers) in &self.cluster_addr_table {
            names.insert(cluster.clone());
            names.extend(brokers.iter().cloned());
        }
        let broker_addr = self
            .broker_addr_table
            .values()
            .find_map(|g| g.broker_addrs.values().next().cloned());
        TopicList {
            topic_list: names.into_iter().collect(),
            broker_addr,
        }
    }

    /// The topicSysFlag Java consults for unit queries: the first QueueData's (here: the lowest
    /// broker name's; Java takes whichever its hash map yields first).
    fn topics_by_sys_flag(&self, pred: impl Fn(i32) -> bool) -> Vec<String> {
        self.topic_queue_table
            .iter()
            .filter(|(_, per_group)| {
                per_group
                    .values()
                    .next()
                    .is_some_and(|qd| pred(qd.topic_sys_flag))
            })
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// GET_UNIT_TOPIC_LIST (311).
    pub fn unit_topics(&self) -> Vec<String> {
        self.topics_by_sys_flag(|f| f & TOPIC_SYS_FLAG_UNIT != 0)
    }

    /// GET_HAS_UNIT_SUB_TOPIC_LIST (312).
    pub fn has_unit_sub_topics(&self) -> Vec<String> {
        self.topics_by_sys_flag(|f| f & TOPIC_SYS_FLAG_UNIT_SUB != 0)
    }

    /// GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST (313): unit-sub flag without the unit flag.
    pub fn has_unit_sub_ununit_topics(&self) -> Vec<String> {
        self.topics_by_sys_flag(|f| {
            f & TOPIC_SYS_FLAG_UNIT == 0 && f & TOPIC_SYS_FLAG_UNIT_SUB != 0
        })
    }

    /// DELETE_TOPIC_IN_NAMESRV (216). Without a cluster (absent or empty header) the topic goes
    /// entirely; with one only that cluster's groups lose their QueueData (an unknown cluster
    /// changes nothing, as in Java). Returns whether anything was removed.
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) -> bool {
        match cluster.filter(|c| !c.is_empty()) {
            None => self.topic_queue_table.remove(topic).is_some(),
            Some(cluster) => {
                let Some(names) = self.cluster_addr_table.get(cluster) else {
                    return false;
                };
                let Some(per_group) = self.topic_queue_table.get_mut(topic) else {
                    return false;
                };
                let before = per_group.len();
                per_group.retain(|name, _| !names.contains(name));
                let removed = per_group.len() != before;
                if per_group.is_empty() {
                    self.topic_queue_table.remove(topic);
                }
                removed
            }
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER (205): clears PERM_WRITE on every QueueData of the group;
    /// returns `wipeTopicCount` (QueueData touched, whether or not the bit was set).
    pub fn wipe_write_perm(&mut self, broker_name: &str) -> u32 {
        self.update_perm_of_group(broker_name, |perm| perm & !PERM_WRITE)
    }

    /// ADD_WRITE_PERM_OF_BROKER (327): sets PERM_WRITE back; returns `addTopicCount`.
    /// Other bits are kept, as §2.6 says ("re-adds PERM_WRITE"). Unverified: Java 5.x may instead
    /// set perm to READ|WRITE, which would drop PERM_INHERIT of TBW102.
    pub fn add_write_perm(&mut self, broker_name: &str) -> u32 {
        self.update_perm_of_group(broker_name, |perm| perm | PERM_WRITE)
    }

    fn update_perm_of_group(&mut self, broker_name: &str, f: impl Fn(i32) -> i32) -> u32 {
        let mut count = 0u32;
        for per_group in self.topic_queue_table.values_mut() {
            if let Some(qd) = per_group.get_mut(broker_name) {
                qd.perm = f(qd.perm);
                count = count.saturating_add(1);
            }
        }
        count
    }

    /// QUERY_DATA_VERSION (322): compares the broker's version with the stored one and
    /// refreshes the address's liveness (if it is registered).
    pub fn query_data_version(
        &mut self,
        cluster: &str,
        broker_addr: &str,
        version: &DataVersion,
        now_ms: u64,
    ) -> DataVersionQuery {
        match self
            .broker_live_table
            .get_mut(&BrokerAddrKey::new(cluster, broker_addr))
        {
            Some(live) => {
                live.last_update_ms = now_ms;
                DataVersionQuery {
                    changed: live.data_version != *version,
                    stored: Some(live.data_version),
                }
            }
            None => DataVersionQuery {
                changed: true,
                stored: None,
            },
        }
    }

    /// BROKER_HEARTBEAT (904, 5.x): refreshes liveness, optionally with a new timeout. Returns
    /// false when the address is not registered (nothing to refresh).
    pub fn refresh_liveness(
        &mut self,
        cluster: &str,
        broker_addr: &str,
        heartbeat_timeout_ms: Option<u64>,
        now_ms: u64,
    ) -> bool {
        match self
            .broker_live_table
            .get_mut(&BrokerAddrKey::new(cluster, broker_addr))
        {
            Some(live) => {
                live.last_update_ms = now_ms;
                if let Some(timeout_ms) = heartbeat_timeout_ms {
                    live.timeout_ms = timeout_ms;
                }
                true
            }
            None => false,
        }
    }

    /// REGISTER_TOPIC_IN_NAMESRV (217): sets the given QueueData for `topic`. All named groups
    /// must be registered, otherwise nothing changes (Java stops at the first unknown group,
    /// having applied the ones before it). An empty list changes nothing.
    pub fn register_topic(
        &mut self,
        topic: &str,
        queue_datas: Vec<QueueData>,
    ) -> Result<(), RouteError> {
        if let Some(unknown) = queue_datas
            .iter()
            .find(|qd| !self.broker_addr_table.contains_key(&qd.broker_name))
        {
            return Err(RouteError::UnknownBrokerGroup {
                broker_name: unknown.broker_name.clone(),
            });
        }
        if queue_datas.is_empty() {
            return Ok(());
        }
        let per_group = self.topic_queue_table.entry(topic.to_owned()).or_default();
        for qd in queue_datas {
            per_group.insert(qd.broker_name.clone(), qd);
        }
        Ok(())
    }

    /// GET_BROKER_MEMBER_GROUP (901): the group's addresses (empty when unknown).
    pub fn broker_member_group(&self, cluster: &str, broker_name: &str) -> BrokerMemberGroup {
        BrokerMemberGroup {
            cluster: cluster.to_owned(),
            broker_name: broker_name.to_owned(),
            broker_addrs: self
                .broker_addr_table
                .get(broker_name)
                .map(|g| g.broker_addrs.clone())
                .unwrap_or_default(),
        }
    }

    /// Number of live broker addresses (for metrics and tests).
    pub fn live_broker_count(&self) -> usize {
        self.broker_live_table.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn topic(name: &str, queues: i32) -> TopicConfig {
        let mut tc = TopicConfig::new(name);
        tc.read_queue_nums = queues;
        tc.write_queue_nums = queues;
        tc
    }

    fn req(
        name: &str,
        addr: &str,
        id: u64,
        topics: &[TopicConfig],
        conn: u64,
    ) -> RegisterBrokerRequest {
        RegisterBrokerRequest {
            cluster_name: "DefaultCluster".into(),
            broker_name: name.into(),
            broker_addr: addr.into(),
            broker_id: id,
            ha_server_addr: addr.replace(":10911", ":10912"),
            enable_acting_master: None,
            heartbeat_timeout_ms: None,
            zone_name: None,
            body: RegisterBrokerBody {
                data_version: DataVersion {
                    counter: 1,
                    state_version: 0,
                    timestamp: 1,
                },
                topics: topics.to_vec(),
                filter_server_list: vec![],
            },
            connection_id: conn,
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(RouteTableConfig::default())
    }

    fn std_json(rt: &RouteTable, t: &str) -> String {
        String::from_utf8(rt.route(t).unwrap().to_json(JsonFlavour::Standard)).unwrap()
    }

    fn fast_json(rt: &RouteTable, t: &str) -> String {
        String::from_utf8(rt.route(t).unwrap().to_json(JsonFlavour::Fastjson)).unwrap()
    }

    #[test]
    fn register_then_route_round_trip() {
        let mut rt = table();
        let out = rt
            .register(
                req(
                    "broker-a",
                    "127.0.0.1:10911",
                    0,
                    &[topic("TopicTest", 4), topic("T2", 8)],
                    1,
                ),
                0,
            )
            .unwrap();
        assert_eq!(out, RegisterOutcome::default());
        let route = rt.route("TopicTest").unwrap();
        assert_eq!(
            route.queue_datas,
            vec![QueueData {
                broker_name: "broker-a".into(),
                read_queue_nums: 4,
                write_queue_nums: 4,
                perm: 6,
                topic_sys_flag: 0
            }]
        );
        assert_eq!(route.broker_datas.len(), 1);
        assert_eq!(route.broker_datas[0].broker_addrs[&0], "127.0.0.1:10911");
        assert_eq!(route.broker_datas[0].cluster, "DefaultCluster");
        assert!(rt.route("Missing").is_none());
        assert_eq!(
            rt.all_topics(),
            vec!["T2".to_string(), "TopicTest".to_string()]
        );
    }

    #[test]
    fn route_json_is_byte_exact_in_both_flavours() {
        let mut rt = table();
        rt.register(
            req(
                "broker-a",
                "127.0.0.1:10911",
                0,
                &[topic("TopicTest", 4), topic("x", 1)],
                1,
            ),
            0,
        )
        .unwrap();
        rt.register(req("broker-a", "127.0.0.2:10911", 1, &[], 2), 0)
            .unwrap();
        assert_eq!(
            std_json(&rt, "TopicTest"),
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
        assert_eq!(
            fast_json(&rt, "TopicTest"),
            r#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
        // Standard flavour is valid JSON; the fastjson one parses after the tolerant pre-pass.
        let v: serde_json::Value = serde_json::from_str(&std_json(&rt, "TopicTest")).unwrap();
        assert_eq!(v["brokerDatas"][0]["brokerAddrs"]["1"], "127.0.0.2:10911");
        let fast = fast_json(&rt, "TopicTest");
        assert!(serde_json::from_str::<serde_json::Value>(&fast).is_err());
        let v: serde_json::Value = crate::fastjson::parse_tolerant(fast.as_bytes()).unwrap();
        assert_eq!(v["brokerDatas"][0]["brokerAddrs"]["0"], "127.0.0.1:10911");
    }

    #[test]
    fn route_json_with_order_conf_zone_and_acting_master() {
        let mut rt = table();
        let mut r = req(
            "broker-a",
            "127.0.0.1:10911",
            0,
            &[topic("Ord", 4), topic("x", 1)],
            1,
        );
        r.enable_acting_master = Some(true);
        r.zone_name = Some("zone-1".into());
        rt.register(r, 0).unwrap();
        let mut route = rt.route("Ord").unwrap();
        route.order_topic_conf = Some("broker-a:4".into());
        assert_eq!(
            String::from_utf8(route.to_json(JsonFlavour::Standard)).unwrap(),
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":true,"zoneName":"zone-1"}],"filterServerTable":{},"orderTopicConf":"broker-a:4","queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
        assert_eq!(
            String::from_utf8(route.to_json(JsonFlavour::Fastjson)).unwrap(),
            r#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","zoneName":"zone-1"}],"filterServerTable":{},"orderTopicConf":"broker-a:4","queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        );
    }

    #[test]
    fn standard_flavour_escapes_non_ascii() {
        let mut rt = table();
        rt.register(
            req(
                "brökér",
                "127.0.0.1:10911",
                0,
                &[topic("t", 1), topic("u", 1)],
                1,
            ),
            0,
        )
        .unwrap();
        assert!(std_json(&rt, "t").contains(r#""brokerName":"br\u00f6k\u00e9r""#));
        assert!(fast_json(&rt, "t").contains(r#""brokerName":"brökér""#));
    }

    #[test]
    fn slave_gets_master_and_ha_addresses() {
        let mut rt = table();
        // A slave before its master: nothing to report.
        let out = rt
            .register(
                req(
                    "broker-a",
                    "10.0.0.2:10911",
                    1,
                    &[topic("t", 4), topic("u", 4)],
                    2,
                ),
                0,
            )
            .unwrap();
        assert_eq!(out, RegisterOutcome::default());
        // Slave topics are not applied (4.x broker, no acting master).
        assert!(rt.route("t").is_none());
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("u", 4)],
                1,
            ),
            0,
        )
        .unwrap();
        let out = rt
            .register(
                req(
                    "broker-a",
                    "10.0.0.2:10911",
                    1,
                    &[topic("t", 4), topic("u", 4)],
                    2,
                ),
                1,
            )
            .unwrap();
        assert_eq!(
            out,
            RegisterOutcome {
                master_addr: Some("10.0.0.1:10911".into()),
                ha_server_addr: Some("10.0.0.1:10912".into())
            }
        );
        // A master gets neither.
        let out = rt
            .register(
                req(
                    "broker-a",
                    "10.0.0.1:10911",
                    0,
                    &[topic("t", 4), topic("u", 4)],
                    1,
                ),
                2,
            )
            .unwrap();
        assert_eq!(out, RegisterOutcome::default());
    }

    #[test]
    fn promoted_slave_replaces_its_old_id() {
        let mut rt = table();
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("u", 4)],
                1,
            ),
            0,
        )
        .unwrap();
        rt.register(
            req(
                "broker-a",
                "10.0.0.2:10911",
                1,
                &[topic("t", 4), topic("u", 4)],
                2,
            ),
            0,
        )
        .unwrap();
        rt.unregister("DefaultCluster", "10.0.0.1:10911", "broker-a");
        rt.register(
            req(
                "broker-a",
                "10.0.0.2:10911",
                0,
                &[topic("t", 4), topic("u", 4)],
                2,
            ),
            1,
        )
        .unwrap();
        let route = rt.route("t").unwrap();
        assert_eq!(
            route.broker_datas[0].broker_addrs,
            BTreeMap::from([(0, "10.0.0.2:10911".to_string())])
        );
    }

    #[test]
    fn acting_master_applies_topics_read_only_while_no_master() {
        let mut rt = table();
        let mut slave = req(
            "broker-a",
            "10.0.0.2:10911",
            1,
            &[topic("t", 4), topic("u", 4)],
            2,
        );
        slave.enable_acting_master = Some(true);
        rt.register(slave.clone(), 0).unwrap();
        assert_eq!(rt.route("t").unwrap().queue_datas[0].perm, PERM_READ);
        // 5.x broker without acting-master mode: applied, perm kept.
        slave.enable_acting_master = Some(false);
        slave.body.data_version.counter = 2;
        rt.register(slave.clone(), 0).unwrap();
        assert_eq!(rt.route("t").unwrap().queue_datas[0].perm, 6);
        // With a master present the slave's table is ignored.
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 8), topic("u", 8)],
                1,
            ),
            0,
        )
        .unwrap();
        let mut slave3 = slave;
        slave3.body.topics = vec![topic("t", 2), topic("u", 2)];
        slave3.body.data_version.counter = 3;
        rt.register(slave3, 0).unwrap();
        assert_eq!(rt.route("t").unwrap().queue_datas[0].write_queue_nums, 8);
    }

    #[test]
    fn master_loss_in_acting_master_mode_wipes_write_perm() {
        let mut rt = table();
        let mut m = req(
            "broker-a",
            "10.0.0.1:10911",
            0,
            &[topic("t", 4), topic("u", 4)],
            1,
        );
        m.enable_acting_master = Some(true);
        rt.register(m, 0).unwrap();
        let mut s = req(
            "broker-a",
            "10.0.0.2:10911",
            1,
            &[topic("t", 4), topic("u", 4)],
            2,
        );
        s.enable_acting_master = Some(true);
        rt.register(s, 0).unwrap();
        rt.connection_closed(1);
        assert_eq!(rt.route("t").unwrap().queue_datas[0].perm, PERM_READ);
    }

    #[test]
    fn unregister_last_address_removes_group_cluster_and_topics() {
        let mut rt = table();
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("shared", 4)],
                1,
            ),
            0,
        )
        .unwrap();
        rt.register(
            req(
                "broker-a",
                "10.0.0.2:10911",
                1,
                &[topic("t", 4), topic("shared", 4)],
                2,
            ),
            0,
        )
        .unwrap();
        let mut b = req(
            "broker-b",
            "10.0.1.1:10911",
            0,
            &[topic("shared", 2), topic("b-only", 2)],
            3,
        );
        b.cluster_name = "OtherCluster".into();
        rt.register(b, 0).unwrap();

        let removed = rt
            .unregister("DefaultCluster", "10.0.0.1:10911", "broker-a")
            .unwrap();
        assert!(!removed.group_removed);
        assert!(rt.route("t").is_some());
        let removed = rt
            .unregister("DefaultCluster", "10.0.0.2:10911", "broker-a")
            .unwrap();
        assert!(removed.group_removed);
        assert!(rt.route("t").is_none());
        assert_eq!(
            rt.all_topics(),
            vec!["b-only".to_string(), "shared".to_string()]
        );
        let shared = rt.route("shared").unwrap();
        assert_eq!(shared.queue_datas.len(), 1);
        assert_eq!(shared.queue_datas[0].broker_name, "broker-b");
        let info = rt.cluster_info();
        assert!(!info.cluster_addr_table.contains_key("DefaultCluster"));
        assert!(!info.broker_addr_table.contains_key("broker-a"));
        assert_eq!(
            rt.unregister("DefaultCluster", "10.0.0.2:10911", "broker-a"),
            None
        );
    }

    #[test]
    fn expiry_removes_stale_brokers_with_per_registration_timeout() {
        let mut rt = RouteTable::new(RouteTableConfig {
            default_broker_timeout_ms: 2 * MIN,
            ..RouteTableConfig::default()
        });
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("a", 4), topic("x", 1)],
                1,
            ),
            0,
        )
        .unwrap();
        let mut b = req(
            "broker-b",
            "10.0.0.2:10911",
            0,
            &[topic("b", 4), topic("x", 1)],
            2,
        );
        b.heartbeat_timeout_ms = Some(10_000);
        rt.register(b, 0).unwrap();
        // Boundary: expired only when last_update + timeout < now.
        assert!(rt.scan_not_active(10_000).is_empty());
        let removed = rt.scan_not_active(10_001);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].broker_addr, "10.0.0.2:10911");
        assert!(rt.route("b").is_none());
        assert_eq!(rt.route("x").unwrap().queue_datas.len(), 1);
        // A re-registration keeps broker-a alive past its first deadline.
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("a", 4), topic("x", 1)],
                1,
            ),
            MIN,
        )
        .unwrap();
        assert!(rt.scan_not_active(2 * MIN + 1).is_empty());
        assert_eq!(rt.scan_not_active(3 * MIN + 1).len(), 1);
        assert!(rt.all_topics().is_empty());
        assert!(rt.cluster_info().broker_addr_table.is_empty());
        assert_eq!(rt.live_broker_count(), 0);
    }

    #[test]
    fn connection_close_removes_only_that_connections_brokers() {
        let mut rt = table();
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("a", 4), topic("x", 1)],
                7,
            ),
            0,
        )
        .unwrap();
        rt.register(
            req(
                "broker-b",
                "10.0.0.2:10911",
                0,
                &[topic("b", 4), topic("x", 1)],
                8,
            ),
            0,
        )
        .unwrap();
        assert!(rt.connection_closed(99).is_empty());
        let removed = rt.connection_closed(7);
        assert_eq!(removed.len(), 1);
        assert!(removed[0].group_removed);
        assert!(rt.route("a").is_none());
        assert!(rt.route("b").is_some());
        // Re-registered through a new connection: closing the old one removes nothing.
        rt.register(
            req(
                "broker-b",
                "10.0.0.2:10911",
                0,
                &[topic("b", 4), topic("x", 1)],
                9,
            ),
            1,
        )
        .unwrap();
        assert!(rt.connection_closed(8).is_empty());
        assert!(rt.route("b").is_some());
    }

    #[test]
    fn partial_registration_keeps_other_topics() {
        let mut rt = table();
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("a", 4), topic("b", 4)],
                1,
            ),
            0,
        )
        .unwrap();
        let mut inc = req("broker-a", "10.0.0.1:10911", 0, &[topic("c", 2)], 1);
        inc.body.data_version.counter = 2;
        rt.register(inc, 1).unwrap();
        assert_eq!(rt.all_topics(), vec!["a", "b", "c"]);
        assert_eq!(rt.route("c").unwrap().queue_datas[0].read_queue_nums, 2);
    }

    #[test]
    fn delete_topic_with_broker_registration_replaces_topic_set() {
        let mut rt = RouteTable::new(RouteTableConfig {
            delete_topic_with_broker_registration: true,
            ..RouteTableConfig::default()
        });
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("a", 4), topic("b", 4)],
                1,
            ),
            0,
        )
        .unwrap();
        rt.register(
            req(
                "broker-b",
                "10.0.0.2:10911",
                0,
                &[topic("a", 4), topic("z", 4)],
                2,
            ),
            0,
        )
        .unwrap();
        let mut full = req(
            "broker-a",
            "10.0.0.1:10911",
            0,
            &[topic("b", 4), topic("c", 4)],
            1,
        );
        full.body.data_version.counter = 2;
        rt.register(full, 1).unwrap();
        assert_eq!(rt.all_topics(), vec!["a", "b", "c", "z"]);
        assert_eq!(
            rt.route("a").unwrap().queue_datas[0].broker_name,
            "broker-b"
        );
    }

    #[test]
    fn single_topic_registration_before_full_one_is_rejected() {
        let mut rt = table();
        let err = rt.register(req("broker-a", "10.0.0.1:10911", 0, &[topic("a", 4)], 1), 0);
        assert!(matches!(
            err,
            Err(RouteError::SingleTopicBeforeFullRegistration { .. })
        ));
        assert!(rt.cluster_info().broker_addr_table.is_empty());
        rt.register(req("broker-a", "10.0.0.1:10911", 0, &[], 1), 0)
            .unwrap();
        rt.register(req("broker-a", "10.0.0.1:10911", 0, &[topic("a", 4)], 1), 0)
            .unwrap();
        assert!(rt.route("a").is_some());
        // The check can be switched off.
        let mut rt = RouteTable::new(RouteTableConfig {
            reject_single_topic_before_full_registration: false,
            ..RouteTableConfig::default()
        });
        rt.register(req("broker-a", "10.0.0.1:10911", 0, &[topic("a", 4)], 1), 0)
            .unwrap();
        assert!(rt.route("a").is_some());
    }

    #[test]
    fn two_broker_groups_on_one_topic() {
        let mut rt = table();
        rt.register(
            req(
                "broker-b",
                "10.0.0.2:10911",
                0,
                &[topic("t", 2), topic("x", 1)],
                2,
            ),
            0,
        )
        .unwrap();
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("x", 1)],
                1,
            ),
            0,
        )
        .unwrap();
        let route = rt.route("t").unwrap();
        let names: Vec<_> = route
            .queue_datas
            .iter()
            .map(|q| q.broker_name.as_str())
            .collect();
        assert_eq!(names, ["broker-a", "broker-b"]);
        let names: Vec<_> = route
            .broker_datas
            .iter()
            .map(|b| b.broker_name.as_str())
            .collect();
        assert_eq!(names, ["broker-a", "broker-b"]);
        assert_eq!(
            fast_json(&rt, "t"),
            r#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"},{"brokerAddrs":{0:"10.0.0.2:10911"},"brokerName":"broker-b","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4},{"brokerName":"broker-b","perm":6,"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":2}]}"#
        );
    }

    #[test]
    fn delete_topic_everywhere_or_by_cluster() {
        let mut rt = table();
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("u", 4)],
                1,
            ),
            0,
        )
        .unwrap();
        let mut b = req(
            "broker-b",
            "10.0.0.2:10911",
            0,
            &[topic("t", 4), topic("u", 4)],
            2,
        );
        b.cluster_name = "C2".into();
        rt.register(b, 0).unwrap();

        assert!(!rt.delete_topic("t", Some("NoSuchCluster")));
        assert!(rt.delete_topic("t", Some("C2")));
        let route = rt.route("t").unwrap();
        assert_eq!(route.queue_datas.len(), 1);
        assert_eq!(route.queue_datas[0].broker_name, "broker-a");
        assert!(rt.delete_topic("t", Some("DefaultCluster")));
        assert!(rt.route("t").is_none());
        assert!(!rt.all_topics().contains(&"t".to_string()));

        assert!(rt.delete_topic("u", Some("")));
        assert!(rt.route("u").is_none());
        assert!(!rt.delete_topic("u", None));
    }

    #[test]
    fn wipe_and_add_write_perm_counts_and_survive_reregistration() {
        let mut rt = table();
        let mut tbw = topic("TBW102", 8);
        tbw.perm = 7;
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("u", 4), tbw.clone()],
                1,
            ),
            0,
        )
        .unwrap();
        rt.register(
            req(
                "broker-b",
                "10.0.0.2:10911",
                0,
                &[topic("t", 4), topic("u", 4)],
                2,
            ),
            0,
        )
        .unwrap();
        assert_eq!(rt.wipe_write_perm("broker-a"), 3);
        assert_eq!(rt.wipe_write_perm("nobody"), 0);
        let perms = |rt: &RouteTable, t: &str| -> Vec<i32> {
            rt.route(t)
                .unwrap()
                .queue_datas
                .iter()
                .map(|q| q.perm)
                .collect()
        };
        assert_eq!(perms(&rt, "t"), vec![4, 6]);
        assert_eq!(perms(&rt, "TBW102"), vec![5]);
        // The periodic registration with an unchanged DataVersion does not undo the wipe ...
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("u", 4), tbw.clone()],
                1,
            ),
            30_000,
        )
        .unwrap();
        assert_eq!(perms(&rt, "t"), vec![4, 6]);
        // ... ADD_WRITE_PERM does.
        assert_eq!(rt.add_write_perm("broker-a"), 3);
        assert_eq!(perms(&rt, "t"), vec![6, 6]);
        assert_eq!(perms(&rt, "TBW102"), vec![7]);
        // And a changed DataVersion re-applies the broker's own perms.
        rt.wipe_write_perm("broker-a");
        let mut changed = req(
            "broker-a",
            "10.0.0.1:10911",
            0,
            &[topic("t", 4), topic("u", 4), tbw],
            1,
        );
        changed.body.data_version.counter = 2;
        rt.register(changed, 60_000).unwrap();
        assert_eq!(perms(&rt, "t"), vec![6, 6]);
    }

    #[test]
    fn query_data_version_compares_and_refreshes() {
        let mut rt = RouteTable::new(RouteTableConfig {
            default_broker_timeout_ms: 1000,
            ..Default::default()
        });
        let dv = DataVersion {
            counter: 1,
            state_version: 0,
            timestamp: 1,
        };
        let q = rt.query_data_version("DefaultCluster", "10.0.0.1:10911", &dv, 0);
        assert_eq!(
            q,
            DataVersionQuery {
                changed: true,
                stored: None
            }
        );
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("u", 4)],
                1,
            ),
            0,
        )
        .unwrap();
        let q = rt.query_data_version("DefaultCluster", "10.0.0.1:10911", &dv, 900);
        assert_eq!(
            q,
            DataVersionQuery {
                changed: false,
                stored: Some(dv)
            }
        );
        let newer = DataVersion { counter: 2, ..dv };
        assert!(
            rt.query_data_version("DefaultCluster", "10.0.0.1:10911", &newer, 1800)
                .changed
        );
        // Liveness was refreshed at 1800: still alive at 2800, gone at 2801.
        assert!(rt.scan_not_active(2800).is_empty());
        assert!(rt.refresh_liveness("DefaultCluster", "10.0.0.1:10911", Some(5000), 2800));
        assert!(rt.scan_not_active(7800).is_empty());
        assert_eq!(rt.scan_not_active(7801).len(), 1);
        assert!(!rt.refresh_liveness("DefaultCluster", "10.0.0.1:10911", None, 7802));
    }

    #[test]
    fn register_topic_from_admin_body() {
        let mut rt = table();
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("u", 4)],
                1,
            ),
            0,
        )
        .unwrap();
        // A fastjson-form body as a Java admin tool writes it (unquoted brokerAddrs keys).
        let body = br#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":2,"topicSynFlag":0,"writeQueueNums":2}]}"#;
        let qds = TopicRouteData::parse_queue_datas(body).unwrap();
        rt.register_topic("static-topic", qds).unwrap();
        assert_eq!(
            rt.route("static-topic").unwrap().queue_datas[0].write_queue_nums,
            2
        );

        let unknown = vec![QueueData {
            broker_name: "broker-z".into(),
            read_queue_nums: 1,
            write_queue_nums: 1,
            perm: 6,
            topic_sys_flag: 0,
        }];
        assert_eq!(
            rt.register_topic("other", unknown),
            Err(RouteError::UnknownBrokerGroup {
                broker_name: "broker-z".into()
            })
        );
        assert!(rt.route("other").is_none());
        rt.register_topic("empty", vec![]).unwrap();
        assert!(!rt.all_topics().contains(&"empty".to_string()));
        assert!(TopicRouteData::parse_queue_datas(b"{").is_err());
    }

    #[test]
    fn cluster_info_json_both_flavours() {
        let mut rt = table();
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("u", 4)],
                1,
            ),
            0,
        )
        .unwrap();
        rt.register(req("broker-a", "10.0.0.2:10911", 1, &[], 2), 0)
            .unwrap();
        let info = rt.cluster_info();
        assert_eq!(
            String::from_utf8(info.to_json(JsonFlavour::Fastjson)).unwrap(),
            r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#
        );
        assert_eq!(
            String::from_utf8(info.to_json(JsonFlavour::Standard)).unwrap(),
            r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#
        );
        assert_eq!(
            String::from_utf8(table().cluster_info().to_json(JsonFlavour::Standard)).unwrap(),
            r#"{"brokerAddrTable":{},"clusterAddrTable":{}}"#
        );
    }

    #[test]
    fn admin_topic_lists() {
        let mut rt = table();
        let mut unit = topic("unit", 1);
        unit.topic_sys_flag = TOPIC_SYS_FLAG_UNIT;
        let mut unit_sub = topic("unit-sub", 1);
        unit_sub.topic_sys_flag = TOPIC_SYS_FLAG_UNIT | TOPIC_SYS_FLAG_UNIT_SUB;
        let mut sub_only = topic("sub-only", 1);
        sub_only.topic_sys_flag = TOPIC_SYS_FLAG_UNIT_SUB;
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("plain", 4), unit, unit_sub, sub_only],
                1,
            ),
            0,
        )
        .unwrap();
        let mut b = req(
            "broker-b",
            "10.0.0.2:10911",
            0,
            &[topic("b-topic", 4), topic("plain", 4)],
            2,
        );
        b.cluster_name = "C2".into();
        rt.register(b, 0).unwrap();

        assert_eq!(rt.unit_topics(), vec!["unit", "unit-sub"]);
        assert_eq!(rt.has_unit_sub_topics(), vec!["sub-only", "unit-sub"]);
        assert_eq!(rt.has_unit_sub_ununit_topics(), vec!["sub-only"]);
        assert_eq!(rt.topics_by_cluster("C2"), vec!["b-topic", "plain"]);
        assert_eq!(
            rt.topics_by_cluster("DefaultCluster"),
            vec!["plain", "sub-only", "unit", "unit-sub"]
        );
        assert!(rt.topics_by_cluster("none").is_empty());

        let sys = rt.system_topic_list();
        assert_eq!(
            sys.topic_list,
            vec!["C2", "DefaultCluster", "broker-a", "broker-b"]
        );
        assert_eq!(
            String::from_utf8(sys.to_json()).unwrap(),
            r#"{"brokerAddr":"10.0.0.1:10911","topicList":["C2","DefaultCluster","broker-a","broker-b"]}"#
        );
        assert_eq!(
            String::from_utf8(TopicList::new(rt.all_topics()).to_json()).unwrap(),
            r#"{"topicList":["b-topic","plain","sub-only","unit","unit-sub"]}"#
        );
        assert_eq!(
            table().system_topic_list().to_json(),
            br#"{"topicList":[]}"#
        );
    }

    #[test]
    fn broker_member_group_json() {
        let mut rt = table();
        rt.register(
            req(
                "broker-a",
                "10.0.0.1:10911",
                0,
                &[topic("t", 4), topic("u", 4)],
                1,
            ),
            0,
        )
        .unwrap();
        rt.register(req("broker-a", "10.0.0.2:10911", 2, &[], 2), 0)
            .unwrap();
        let g = rt.broker_member_group("DefaultCluster", "broker-a");
        assert_eq!(
            String::from_utf8(g.to_json(JsonFlavour::Fastjson)).unwrap(),
            r#"{"brokerMemberGroup":{"brokerAddrs":{0:"10.0.0.1:10911",2:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}}"#
        );
        assert_eq!(
            String::from_utf8(
                rt.broker_member_group("DefaultCluster", "nope")
                    .to_json(JsonFlavour::Standard)
            )
            .unwrap(),
            r#"{"brokerMemberGroup":{"brokerAddrs":{},"brokerName":"nope","cluster":"DefaultCluster"}}"#
        );
    }

    /// Checks the module-level invariants.
    fn check_invariants(rt: &RouteTable) {
        for (name, group) in &rt.broker_addr_table {
            assert!(!group.broker_addrs.is_empty(), "empty group {name}");
            assert!(
                rt.cluster_addr_table
                    .get(&group.cluster)
                    .is_some_and(|s| s.contains(name)),
                "group {name} missing from cluster {}",
                group.cluster
            );
            let addrs: BTreeSet<&String> = group.broker_addrs.values().collect();
            assert_eq!(
                addrs.len(),
                group.broker_addrs.len(),
                "duplicate address in {name}"
            );
        }
        for (cluster, names) in &rt.cluster_addr_table {
            assert!(!names.is_empty(), "empty cluster {cluster}");
        }
        for (topic, per_group) in &rt.topic_queue_table {
            assert!(!per_group.is_empty(), "empty topic {topic}");
            for name in per_group.keys() {
                assert!(
                    rt.broker_addr_table.contains_key(name),
                    "{topic} names gone group {name}"
                );
            }
            assert!(rt.route(topic).is_some());
        }
    }

    /// Random register / unregister / close / expire / admin sequences keep the invariants.
    /// Deterministic (fixed seeds, xorshift), so a failure reproduces.
    #[test]
    fn random_operations_keep_invariants() {
        for seed in 1..=20u64 {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = move |n: u64| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state % n
            };
            let mut rt = RouteTable::new(RouteTableConfig {
                default_broker_timeout_ms: 50,
                reject_single_topic_before_full_registration: next(2) == 0,
                delete_topic_with_broker_registration: next(2) == 0,
            });
            let mut now_ms = 0u64;
            let mut max_topics_seen = 0usize;
            for _ in 0..400 {
                now_ms += next(10);
                let group = next(3);
                let name = format!("broker-{group}");
                let addr = format!("10.0.{group}.{}:10911", next(3));
                let id = next(3);
                match next(8) {
                    0..=3 => {
                        let topics: Vec<TopicConfig> = (0..next(4))
                            .map(|_| topic(&format!("t{}", next(6)), 4))
                            .collect();
                        let mut r = req(&name, &addr, id, &topics, next(4));
                        r.cluster_name = format!("C{}", group % 2);
                        r.enable_acting_master = [None, Some(false), Some(true)][next(3) as usize];
                        r.body.data_version.counter = i64::try_from(next(3)).unwrap();
                        let _ = rt.register(r, now_ms);
                    }
                    4 => {
                        rt.unregister(&format!("C{}", group % 2), &addr, &name);
                    }
                    5 => {
                        rt.connection_closed(next(4));
                    }
                    6 => {
                        rt.scan_not_active(now_ms);
                    }
                    _ => match next(4) {
                        0 => {
                            rt.delete_topic(
                                &format!("t{}", next(6)),
                                Some(&format!("C{}", next(2))),
                            );
                        }
                        1 => {
                            rt.wipe_write_perm(&name);
                        }
                        2 => {
                            let qd = QueueData {
                                broker_name: name.clone(),
                                read_queue_nums: 1,
                                write_queue_nums: 1,
                                perm: 6,
                                topic_sys_flag: 0,
                            };
                            let _ = rt.register_topic(&format!("t{}", next(6)), vec![qd]);
                        }
                        _ => {
                            rt.delete_topic(&format!("t{}", next(6)), None);
                        }
                    },
                }
                check_invariants(&rt);
                max_topics_seen = max_topics_seen.max(rt.all_topics().len());
            }
            assert!(max_topics_seen >= 3, "seed {seed} exercised too little");
            // Everything expires eventually.
            rt.scan_not_active(now_ms + 1000);
            check_invariants(&rt);
            assert_eq!(rt.live_broker_count(), 0);
            assert!(rt.all_topics().is_empty(), "seed {seed}");
            assert!(rt.broker_addr_table.is_empty(), "seed {seed}");
        }
    }

    #[test]
    fn ten_thousand_topics_from_one_broker() {
        const N: usize = 10_000;
        let topics: Vec<TopicConfig> = (1..=N)
            .map(|i| topic(&format!("topic-{i:05}"), 8))
            .collect();
        let body = RegisterBrokerBody {
            data_version: DataVersion {
                counter: 1,
                state_version: 0,
                timestamp: 1,
            },
            topics,
            filter_server_list: vec![],
        };
        // Through the wire form, as the handler will do it.
        let parsed = RegisterBrokerBody::parse_json(&body.to_json()).unwrap();
        let mut r = req("broker-a", "10.0.0.1:10911", 0, &[], 1);
        r.body = parsed;
        rt_register_and_check(r, N);
    }

    fn rt_register_and_check(r: RegisterBrokerRequest, n: usize) {
        let mut rt = table();
        rt.register(r.clone(), 0).unwrap();
        // The periodic re-registration (same DataVersion) is cheap and changes nothing.
        rt.register(r, 30_000).unwrap();
        assert_eq!(rt.all_topics().len(), n);
        for i in 1..=n {
            let name = format!("topic-{i:05}");
            let route = rt.route(&name).unwrap();
            assert_eq!(route.queue_datas.len(), 1);
            assert_eq!(route.queue_datas[0].write_queue_nums, 8);
            assert_eq!(route.broker_datas[0].broker_addrs[&0], "10.0.0.1:10911");
        }
        assert_eq!(rt.topics_by_cluster("DefaultCluster").len(), n);
        assert_eq!(rt.wipe_write_perm("broker-a"), u32::try_from(n).unwrap());
        rt.connection_closed(1);
        assert!(rt.all_topics().is_empty());
    }
}
