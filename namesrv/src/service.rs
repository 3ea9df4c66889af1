//! The name server's request handlers: one function per request code (PROTOCOL.md §2.6),
//! dispatched by [`NamesrvService::handle`]. Typed errors from the route table and the KV
//! store become RocketMQ response codes here, at the handler boundary.
//!
//! Shard-resident: one `NamesrvService` lives on the name server's thread; its state is in
//! `RefCell`s that are never borrowed across an `.await` (handlers are synchronous).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ferromq_net::RemotingCommand;
use ferromq_net::acl::addr::AddrPattern;
use ferromq_net::acl::watch::RefusalLog;
use ferromq_net::acl::{ACCESS_KEY, AclFile, Denied};
use ferromq_net::codes::{request_code as rc, response_code};
use ferromq_net::conn::{Connection, RequestHandler, Response, not_supported};
use tracing::{info, warn};

use crate::config::NamesrvConfig;
use crate::fastjson::JsonFlavour;
use crate::kv::{KvConfig, kv_table_json};
use crate::register_body::{RegisterBrokerBody, check_body_crc32};
use crate::route::{RegisterBrokerRequest, RemovedBroker, RouteError, RouteTable, RouteTableConfig, TopicList, TopicRouteData};

/// KV namespace whose `topic → "brokerName:queues;…"` entries mark order topics (§8.3).
pub const ORDER_TOPIC_CONFIG_NAMESPACE: &str = "ORDER_TOPIC_CONFIG";

/// The name server's state and handlers.
pub struct NamesrvService {
    /// Changed only by UPDATE_NAMESRV_CONFIG (its runtime keys).
    config: RefCell<NamesrvConfig>,
    routes: RefCell<RouteTable>,
    kv: RefCell<KvConfig>,
    /// Who may send the change codes.
    guard: ChangeGuard,
}

/// The codes that change the name server's state (beyond Java, which lets anyone send them):
/// the brokers' registrations and their liveness refreshes (QUERY_DATA_VERSION and
/// BROKER_HEARTBEAT keep a broker's routes alive, so an impostor refreshing a dead broker
/// would keep clients sending to it), write permissions, topics, the KV config and the
/// configuration. Every other code only reads and stays open.
pub fn is_change_code(code: i32) -> bool {
    matches!(
        code,
        rc::REGISTER_BROKER
            | rc::UNREGISTER_BROKER
            | rc::QUERY_DATA_VERSION
            | rc::BROKER_HEARTBEAT
            | rc::WIPE_WRITE_PERM_OF_BROKER
            | rc::ADD_WRITE_PERM_OF_BROKER
            | rc::DELETE_TOPIC_IN_NAMESRV
            | rc::REGISTER_TOPIC_IN_NAMESRV
            | rc::PUT_KV_CONFIG
            | rc::DELETE_KV_CONFIG
            | rc::UPDATE_NAMESRV_CONFIG
    )
}

/// Who may send the change codes ([`crate::config::ChangeAccess`]).
#[derive(Debug)]
pub enum ChangeGuard {
    /// Everyone (the default, as Java).
    Open,
    /// `aclEnable=true`: what `plain_acl.yml` grants as if every change code were admin-only:
    /// a request signed by an admin account, or one from a white-listed address (Java's
    /// rules, `AclRules::authorize`).
    Acl(Arc<AclFile>),
    /// `changeWhiteRemoteAddresses` with ACL off: peers matching one of the patterns.
    AllowList(Vec<AddrPattern>),
}

impl ChangeGuard {
    /// The guard `config` asks for; with ACL on, reads the rules file (an error naming it when
    /// it is missing or does not parse) and starts its watcher.
    pub fn from_config(config: &NamesrvConfig) -> Result<ChangeGuard, String> {
        let access = &config.change_access;
        if access.acl_enable {
            let file = AclFile::load(&access.acl_plain_file).map_err(|e| format!("aclEnable=true: {e}"))?;
            let file = Arc::new(file);
            AclFile::watch(&file).map_err(|e| format!("aclEnable=true: cannot start the ACL file watcher: {e}"))?;
            return Ok(ChangeGuard::Acl(file));
        }
        if access.change_white.is_empty() {
            Ok(ChangeGuard::Open)
        } else {
            Ok(ChangeGuard::AllowList(access.change_white.clone()))
        }
    }

    /// Whether `request` from `peer` may run; a refusal is the answer to send (SYSTEM_ERROR
    /// with Java's `AclException` remark, or NO_PERMISSION for the allow-list) and is logged,
    /// at most once a second.
    pub fn check(&self, request: &RemotingCommand, peer: SocketAddr) -> Result<(), Box<RemotingCommand>> {
        if !is_change_code(request.code) {
            return Ok(());
        }
        let (denied, answer) = match self {
            ChangeGuard::Open => return Ok(()),
            ChangeGuard::Acl(file) => match file.rules().authorize(request, peer.ip(), |_| true) {
                Ok(_) => return Ok(()),
                Err(denied) => {
                    let remark = denied.remark();
                    (denied, request.error_response(response_code::SYSTEM_ERROR, remark))
                }
            },
            ChangeGuard::AllowList(patterns) => {
                if patterns.iter().any(|p| p.matches(peer.ip())) {
                    return Ok(());
                }
                let reason = format!(
                    "the name server accepts request code {} only from the addresses in changeWhiteRemoteAddresses, not from {}",
                    request.code,
                    peer.ip()
                );
                let answer = request.error_response(response_code::NO_PERMISSION, reason.clone());
                (Denied { access_key: request.ext_fields.get(ACCESS_KEY).map(str::to_owned), reason }, answer)
            }
        };
        REFUSALS.with(|log| log.refused(request.code, peer, &denied));
        Err(Box::new(answer))
    }
}

thread_local! {
    static REFUSALS: RefusalLog = RefusalLog::default();
}

/// Milliseconds since the Unix epoch, the clock of broker liveness.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl NamesrvService {
    /// Reads the KV config and, with `aclEnable=true`, the ACL rules file; an error names what
    /// could not be read.
    pub fn new(config: NamesrvConfig) -> Result<NamesrvService, String> {
        let guard = ChangeGuard::from_config(&config)?;
        let kv = KvConfig::load(config.kv_config_path.clone()).map_err(|e| e.to_string())?;
        let routes = RouteTable::new(RouteTableConfig {
            default_broker_timeout_ms: config.broker_expiry.as_millis() as u64,
            ..RouteTableConfig::default()
        });
        Ok(NamesrvService { config: RefCell::new(config), routes: RefCell::new(routes), kv: RefCell::new(kv), guard })
    }

    /// Drops brokers not heard from within their timeout; called by the scan task.
    pub fn scan_not_active_brokers(&self) {
        let removed = self.routes.borrow_mut().scan_not_active(now_ms());
        log_removed("expired", &removed);
    }

    fn dispatch(&self, conn: &Connection, request: &RemotingCommand) -> RemotingCommand {
        match request.code {
            rc::REGISTER_BROKER => self.register_broker(conn, request),
            rc::UNREGISTER_BROKER => self.unregister_broker(request),
            rc::GET_ROUTEINFO_BY_TOPIC => self.get_route_info_by_topic(request),
            rc::GET_BROKER_CLUSTER_INFO => self.get_broker_cluster_info(request),
            rc::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => self.get_all_topic_list(request),
            rc::GET_TOPICS_BY_CLUSTER => self.get_topics_by_cluster(request),
            rc::GET_SYSTEM_TOPIC_LIST_FROM_NS => self.get_system_topic_list(request),
            rc::GET_UNIT_TOPIC_LIST => self.unit_topic_list(request, RouteTable::unit_topics),
            rc::GET_HAS_UNIT_SUB_TOPIC_LIST => self.unit_topic_list(request, RouteTable::has_unit_sub_topics),
            rc::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => {
                self.unit_topic_list(request, RouteTable::has_unit_sub_ununit_topics)
            }
            rc::DELETE_TOPIC_IN_NAMESRV => self.delete_topic(request),
            rc::REGISTER_TOPIC_IN_NAMESRV => self.register_topic(request),
            rc::WIPE_WRITE_PERM_OF_BROKER => self.wipe_write_perm(request),
            rc::ADD_WRITE_PERM_OF_BROKER => self.add_write_perm(request),
            rc::QUERY_DATA_VERSION => self.query_data_version(request),
            rc::BROKER_HEARTBEAT => self.broker_heartbeat(request),
            rc::GET_BROKER_MEMBER_GROUP => self.get_broker_member_group(request),
            rc::PUT_KV_CONFIG => self.put_kv_config(request),
            rc::GET_KV_CONFIG => self.get_kv_config(request),
            rc::DELETE_KV_CONFIG => self.delete_kv_config(request),
            rc::GET_KVLIST_BY_NAMESPACE => self.get_kv_list_by_namespace(request),
            rc::GET_NAMESRV_CONFIG => self.get_namesrv_config(request),
            rc::UPDATE_NAMESRV_CONFIG => self.update_namesrv_config(request),
            _ => not_supported(request),
        }
    }

    // ---- brokers -------------------------------------------------------------------------

    /// 103 REGISTER_BROKER.
    fn register_broker(&self, conn: &Connection, request: &RemotingCommand) -> RemotingCommand {
        let header = match RegisterHeader::parse(request) {
            Ok(header) => header,
            Err(refusal) => return *refusal,
        };
        if let Some(crc) = header.body_crc32.filter(|crc| *crc != 0)
            && let Err(e) = check_body_crc32(&request.body, crc) {
                warn!(broker = %header.broker_addr, "registration body CRC mismatch: {e}");
                return request.error_response(response_code::SYSTEM_ERROR, "crc32 not match");
            }
        let body = if request.body.is_empty() {
            Ok(RegisterBrokerBody::default())
        } else if header.compressed {
            RegisterBrokerBody::parse_compressed(&request.body, self.config.borrow().max_inflated_register_body_bytes)
        } else {
            RegisterBrokerBody::parse_json(&request.body)
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => return route_error(request, &e),
        };
        let broker_addr = header.broker_addr.clone();
        let topics = body.topics.len();
        let registration = RegisterBrokerRequest {
            cluster_name: header.cluster_name,
            broker_name: header.broker_name,
            broker_addr: header.broker_addr,
            broker_id: header.broker_id,
            ha_server_addr: header.ha_server_addr,
            enable_acting_master: header.enable_acting_master,
            heartbeat_timeout_ms: header.heartbeat_timeout_ms,
            zone_name: request.ext("__ZONE_NAME").map(str::to_owned),
            body,
            connection_id: conn.id(),
        };
        let outcome = match self.routes.borrow_mut().register(registration, now_ms()) {
            Ok(outcome) => outcome,
            Err(e) => return route_error(request, &e),
        };
        tracing::debug!(broker = %broker_addr, topics, "broker registered");
        let mut response = request.success_response();
        if let Some(master) = outcome.master_addr {
            response = response.with_ext("masterAddr", master);
        }
        if let Some(ha) = outcome.ha_server_addr {
            response = response.with_ext("haServerAddr", ha);
        }
        if self.config.borrow().return_order_topic_config_to_broker
            && let Some(table) = self.kv.borrow().namespace_table_json(ORDER_TOPIC_CONFIG_NAMESPACE) {
                response = response.with_body(table);
            }
        response
    }

    /// 104 UNREGISTER_BROKER.
    fn unregister_broker(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(cluster), Some(addr), Some(name)) =
            (request.ext("clusterName"), request.ext("brokerAddr"), request.ext("brokerName"))
        else {
            return missing_fields(request, "clusterName, brokerAddr and brokerName");
        };
        let removed = self.routes.borrow_mut().unregister(cluster, addr, name);
        log_removed("unregistered", removed.as_slice());
        request.success_response()
    }

    /// 322 QUERY_DATA_VERSION: body is the broker's DataVersion.
    fn query_data_version(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(cluster), Some(addr)) = (request.ext("clusterName"), request.ext("brokerAddr")) else {
            return missing_fields(request, "clusterName and brokerAddr");
        };
        let version = match crate::register_body::parse_data_version(&request.body) {
            Ok(version) => version,
            Err(e) => return route_error(request, &e),
        };
        let answer = self.routes.borrow_mut().query_data_version(cluster, addr, &version, now_ms());
        let mut response = request.success_response().with_ext("changed", answer.changed);
        if let Some(stored) = answer.stored {
            response = response.with_body(stored.to_json());
        }
        response
    }

    /// 904 BROKER_HEARTBEAT (5.x lightweight liveness refresh).
    fn broker_heartbeat(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(cluster), Some(addr)) = (request.ext("clusterName"), request.ext("brokerAddr")) else {
            return missing_fields(request, "clusterName and brokerAddr");
        };
        let timeout_ms = request.ext("heartbeatTimeoutMills").and_then(|t| t.parse().ok());
        self.routes.borrow_mut().refresh_liveness(cluster, addr, timeout_ms, now_ms());
        request.success_response()
    }

    /// 901 GET_BROKER_MEMBER_GROUP.
    fn get_broker_member_group(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(cluster), Some(name)) = (request.ext("clusterName"), request.ext("brokerName")) else {
            return missing_fields(request, "clusterName and brokerName");
        };
        let group = self.routes.borrow().broker_member_group(cluster, name);
        request.success_response().with_body(group.to_json(flavour(request)))
    }

    // ---- routes and topics ---------------------------------------------------------------

    /// 105 GET_ROUTEINFO_BY_TOPIC.
    fn get_route_info_by_topic(&self, request: &RemotingCommand) -> RemotingCommand {
        let Some(topic) = request.ext("topic") else {
            return missing_fields(request, "topic");
        };
        let Some(mut route) = self.routes.borrow().route(topic) else {
            return request.error_response(
                response_code::TOPIC_NOT_EXIST,
                format!("No topic route info in name server for the topic: {topic}"),
            );
        };
        if self.config.borrow().order_message_enable {
            route.order_topic_conf = self.kv.borrow().order_topic_conf(topic).map(str::to_owned);
        }
        request.success_response().with_body(route.to_json(flavour(request)))
    }

    /// 106 GET_BROKER_CLUSTER_INFO.
    fn get_broker_cluster_info(&self, request: &RemotingCommand) -> RemotingCommand {
        let info = self.routes.borrow().cluster_info();
        request.success_response().with_body(info.to_json(flavour(request)))
    }

    /// 206 GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
    fn get_all_topic_list(&self, request: &RemotingCommand) -> RemotingCommand {
        if !self.config.borrow().enable_all_topic_list {
            return request.error_response(response_code::SYSTEM_ERROR, "disable");
        }
        let topics = self.routes.borrow().all_topics();
        request.success_response().with_body(TopicList::new(topics).to_json())
    }

    /// 224 GET_TOPICS_BY_CLUSTER.
    fn get_topics_by_cluster(&self, request: &RemotingCommand) -> RemotingCommand {
        if !self.config.borrow().enable_topic_list {
            return request.error_response(response_code::SYSTEM_ERROR, "disable");
        }
        let Some(cluster) = request.ext("cluster") else {
            return missing_fields(request, "cluster");
        };
        let topics = self.routes.borrow().topics_by_cluster(cluster);
        request.success_response().with_body(TopicList::new(topics).to_json())
    }

    /// 304 GET_SYSTEM_TOPIC_LIST_FROM_NS.
    fn get_system_topic_list(&self, request: &RemotingCommand) -> RemotingCommand {
        let list = self.routes.borrow().system_topic_list();
        request.success_response().with_body(list.to_json())
    }

    /// 311 / 312 / 313: topics selected by their unit flags.
    fn unit_topic_list(&self, request: &RemotingCommand, select: fn(&RouteTable) -> Vec<String>) -> RemotingCommand {
        if !self.config.borrow().enable_topic_list {
            return request.error_response(response_code::SYSTEM_ERROR, "disable");
        }
        let topics = select(&self.routes.borrow());
        request.success_response().with_body(TopicList::new(topics).to_json())
    }

    /// 216 DELETE_TOPIC_IN_NAMESRV.
    fn delete_topic(&self, request: &RemotingCommand) -> RemotingCommand {
        let Some(topic) = request.ext("topic") else {
            return missing_fields(request, "topic");
        };
        let cluster = request.ext("clusterName").filter(|c| !c.is_empty());
        if self.routes.borrow_mut().delete_topic(topic, cluster) {
            info!(topic, cluster, "topic deleted from the name server");
        }
        request.success_response()
    }

    /// 217 REGISTER_TOPIC_IN_NAMESRV: body is a TopicRouteData whose queueDatas are applied.
    fn register_topic(&self, request: &RemotingCommand) -> RemotingCommand {
        let Some(topic) = request.ext("topic") else {
            return missing_fields(request, "topic");
        };
        let result = TopicRouteData::parse_queue_datas(&request.body)
            .and_then(|queue_datas| self.routes.borrow_mut().register_topic(topic, queue_datas));
        match result {
            Ok(()) => request.success_response(),
            Err(e) => route_error(request, &e),
        }
    }

    /// 205 WIPE_WRITE_PERM_OF_BROKER.
    fn wipe_write_perm(&self, request: &RemotingCommand) -> RemotingCommand {
        let Some(name) = request.ext("brokerName") else {
            return missing_fields(request, "brokerName");
        };
        let count = self.routes.borrow_mut().wipe_write_perm(name);
        info!(broker = name, topics = count, "write permission wiped");
        request.success_response().with_ext("wipeTopicCount", count)
    }

    /// 327 ADD_WRITE_PERM_OF_BROKER.
    fn add_write_perm(&self, request: &RemotingCommand) -> RemotingCommand {
        let Some(name) = request.ext("brokerName") else {
            return missing_fields(request, "brokerName");
        };
        let count = self.routes.borrow_mut().add_write_perm(name);
        info!(broker = name, topics = count, "write permission added");
        request.success_response().with_ext("addTopicCount", count)
    }

    // ---- KV config -----------------------------------------------------------------------

    /// 100 PUT_KV_CONFIG.
    fn put_kv_config(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(ns), Some(key), Some(value)) = (request.ext("namespace"), request.ext("key"), request.ext("value")) else {
            return missing_fields(request, "namespace, key and value");
        };
        match self.kv.borrow_mut().put(ns, key, value) {
            Ok(()) => request.success_response(),
            Err(e) => request.error_response(response_code::SYSTEM_ERROR, e.to_string()),
        }
    }

    /// 101 GET_KV_CONFIG.
    fn get_kv_config(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(ns), Some(key)) = (request.ext("namespace"), request.ext("key")) else {
            return missing_fields(request, "namespace and key");
        };
        match self.kv.borrow().get(ns, key) {
            Some(value) => request.success_response().with_ext("value", value),
            None => request.error_response(
                response_code::QUERY_NOT_FOUND,
                format!("No config item, Namespace: {ns} Key: {key}"),
            ),
        }
    }

    /// 102 DELETE_KV_CONFIG.
    fn delete_kv_config(&self, request: &RemotingCommand) -> RemotingCommand {
        let (Some(ns), Some(key)) = (request.ext("namespace"), request.ext("key")) else {
            return missing_fields(request, "namespace and key");
        };
        match self.kv.borrow_mut().delete(ns, key) {
            Ok(_) => request.success_response(),
            Err(e) => request.error_response(response_code::SYSTEM_ERROR, e.to_string()),
        }
    }

    /// 219 GET_KVLIST_BY_NAMESPACE.
    fn get_kv_list_by_namespace(&self, request: &RemotingCommand) -> RemotingCommand {
        let Some(ns) = request.ext("namespace") else {
            return missing_fields(request, "namespace");
        };
        match self.kv.borrow().namespace(ns) {
            Some(table) => request.success_response().with_body(kv_table_json(table)),
            None => request.error_response(response_code::QUERY_NOT_FOUND, format!("No config item, Namespace: {ns}")),
        }
    }

    /// 318 UPDATE_NAMESRV_CONFIG: a properties body of runtime keys (`RUNTIME_KEYS`), applied
    /// all or none and kept in the runtime file beside the KV config before the answer;
    /// INVALID_PARAMETER naming the first key that cannot be applied.
    fn update_namesrv_config(&self, request: &RemotingCommand) -> RemotingCommand {
        let changes = match java_properties::read(request.body.as_ref()) {
            Ok(map) => {
                let mut changes: Vec<(String, String)> = map.into_iter().collect();
                changes.sort();
                changes
            }
            Err(e) => return request.error_response(response_code::INVALID_PARAMETER, format!("the body is not a properties text: {e}")),
        };
        let mut changed = self.config.borrow().clone();
        if let Err(why) = changed.apply_runtime(&changes) {
            return request.error_response(response_code::INVALID_PARAMETER, why);
        }
        let path = changed.runtime_file();
        if let Err(e) = crate::kv::write_atomically(&path, changed.runtime_text().as_bytes()) {
            return request.error_response(response_code::SYSTEM_ERROR, format!("configuration not changed: cannot write {}: {e}", path.display()));
        }
        info!(?changes, file = %path.display(), "name server configuration changed at runtime");
        *self.config.borrow_mut() = changed;
        request.success_response()
    }

    /// 319 GET_NAMESRV_CONFIG: the effective settings as properties text.
    fn get_namesrv_config(&self, request: &RemotingCommand) -> RemotingCommand {
        let c = self.config.borrow();
        let text = format!(
            "listenPort={}\nkvConfigPath={}\norderMessageEnable={}\nreturnOrderTopicConfigToBroker={}\n\
             enableAllTopicList={}\nenableTopicList={}\nscanNotActiveBrokerInterval={}\nbrokerChannelExpiredTime={}\n\
             aclEnable={}\nrocketmq.acl.plain.file={}\nchangeWhiteRemoteAddresses={}\n",
            c.listen.port(),
            c.kv_config_path.display(),
            c.order_message_enable,
            c.return_order_topic_config_to_broker,
            c.enable_all_topic_list,
            c.enable_topic_list,
            c.scan_interval.as_millis(),
            c.broker_expiry.as_millis(),
            c.change_access.acl_enable,
            c.change_access.acl_plain_file.display(),
            c.change_access.change_white_addrs,
        );
        request.success_response().with_body(text.into_bytes())
    }
}

impl RequestHandler for NamesrvService {
    async fn handle(&self, conn: &Connection, request: RemotingCommand) -> Option<Response> {
        // A refused one-way request is logged by the check; the connection sends no answer.
        if let Err(refusal) = self.guard.check(&request, conn.peer()) {
            return Some((*refusal).into());
        }
        Some(self.dispatch(conn, &request).into())
    }

    /// A broker's connection closed: its addresses leave the routes at once (§8.1).
    fn on_close(&self, conn: &Connection) {
        let removed = self.routes.borrow_mut().connection_closed(conn.id());
        log_removed("connection closed", &removed);
    }
}

/// The REGISTER_BROKER header (§2.6).
struct RegisterHeader {
    broker_name: String,
    broker_addr: String,
    cluster_name: String,
    ha_server_addr: String,
    broker_id: u64,
    enable_acting_master: Option<bool>,
    heartbeat_timeout_ms: Option<u64>,
    compressed: bool,
    body_crc32: Option<u32>,
}

impl RegisterHeader {
    fn parse(request: &RemotingCommand) -> Result<RegisterHeader, Box<RemotingCommand>> {
        let text = |key: &str| request.ext(key).map(str::to_owned);
        let (Some(broker_name), Some(broker_addr), Some(cluster_name)) =
            (text("brokerName"), text("brokerAddr"), text("clusterName"))
        else {
            return Err(Box::new(missing_fields(request, "brokerName, brokerAddr and clusterName")));
        };
        let Some(broker_id) = request.ext("brokerId").and_then(|id| id.parse::<u64>().ok()) else {
            return Err(Box::new(request.error_response(
                response_code::SYSTEM_ERROR,
                format!("brokerId must be a non-negative integer, got {:?}", request.ext("brokerId")),
            )));
        };
        Ok(RegisterHeader {
            broker_name,
            broker_addr,
            cluster_name,
            ha_server_addr: text("haServerAddr").unwrap_or_default(),
            broker_id,
            enable_acting_master: request.ext("enableActingMaster").map(|b| b == "true"),
            heartbeat_timeout_ms: request.ext("heartbeatTimeoutMillis").and_then(|t| t.parse().ok()),
            compressed: request.ext("compressed") == Some("true"),
            // Java sends the masked CRC as a signed int; accept either spelling.
            body_crc32: request
                .ext("bodyCrc32")
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c as u32),
        })
    }
}

/// Route JSON flavour for this request: standard JSON from V4_9_4 on or when asked (§4.2).
fn flavour(request: &RemotingCommand) -> JsonFlavour {
    JsonFlavour::for_request(request.version, request.ext("acceptStandardJsonOnly") == Some("true"))
}

fn missing_fields(request: &RemotingCommand, fields: &str) -> RemotingCommand {
    request.error_response(
        response_code::SYSTEM_ERROR,
        format!("request code {} requires header fields {fields}", request.code),
    )
}

fn route_error(request: &RemotingCommand, error: &RouteError) -> RemotingCommand {
    request.error_response(response_code::SYSTEM_ERROR, error.to_string())
}

fn log_removed(why: &str, removed: &[RemovedBroker]) {
    for broker in removed {
        info!(
            cluster = %broker.cluster,
            broker = %broker.broker_name,
            addr = %broker.broker_addr,
            group_removed = broker.group_removed,
            "broker removed: {why}"
        );
    }
}
