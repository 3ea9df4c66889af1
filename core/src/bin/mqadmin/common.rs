//! What every subcommand shares: the `-n` name server flag, one connection per address (signed
//! with `${ROCKETMQ_HOME}/conf/tools.yml`'s keys when that file exists), the error type printed
//! as one line, and the route and cluster lookups.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::acl::Credentials;
use ferromq_net::backend::runtime_from_env;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_net::fastjson::{self, lenient_i32, lenient_string};
use serde_json::{Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// How long one request may take (Java's admin default is 5 s; a broker may take longer to
/// walk a large store for `queryMsgByKey`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// `-n`: name server addresses, `host:port;host:port`, as the Java tool takes them. Falls back
/// to the `NAMESRV_ADDR` environment variable, as the Java tool does.
#[derive(clap::Args, Debug, Clone)]
pub struct NameServer {
    /// Name server address list, eg: '192.168.0.1:9876;192.168.0.2:9876'
    #[arg(short = 'n', long = "namesrvAddr")]
    pub namesrv_addr: Option<String>,
}

/// A failed subcommand, printed as one line by `main`.
#[derive(Debug)]
pub enum AdminError {
    /// A flag's value is missing or malformed (the user's mistake).
    Usage(String),
    /// A server could not be reached or did not answer.
    Unreachable(String),
    /// A server answered with an error code.
    Refused { server: String, code: i32, remark: String },
    /// A server answered something this tool cannot read.
    BadAnswer(String),
    /// Anything else (a local file, a missing topic or group…).
    Other(String),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Usage(s) => write!(f, "{s}"),
            AdminError::Unreachable(s) => write!(f, "{s}"),
            AdminError::Refused { server, code, remark } => {
                write!(f, "{server} answered {} ({code}): {remark}", code_name(*code))
            }
            AdminError::BadAnswer(s) => write!(f, "unreadable answer: {s}"),
            AdminError::Other(s) => write!(f, "{s}"),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// The name of a response code for error lines.
pub fn code_name(code: i32) -> &'static str {
    use response_code::*;
    match code {
        SUCCESS => "SUCCESS",
        SYSTEM_ERROR => "SYSTEM_ERROR",
        SYSTEM_BUSY => "SYSTEM_BUSY",
        REQUEST_CODE_NOT_SUPPORTED => "REQUEST_CODE_NOT_SUPPORTED",
        NO_PERMISSION => "NO_PERMISSION",
        TOPIC_NOT_EXIST => "TOPIC_NOT_EXIST",
        QUERY_NOT_FOUND => "QUERY_NOT_FOUND",
        SUBSCRIPTION_GROUP_NOT_EXIST => "SUBSCRIPTION_GROUP_NOT_EXIST",
        INVALID_PARAMETER => "INVALID_PARAMETER",
        CONSUMER_NOT_ONLINE => "CONSUMER_NOT_ONLINE",
        MESSAGE_ILLEGAL => "MESSAGE_ILLEGAL",
        SERVICE_NOT_AVAILABLE => "SERVICE_NOT_AVAILABLE",
        UPDATE_AND_CREATE_ACL_CONFIG_FAILED => "UPDATE_AND_CREATE_ACL_CONFIG_FAILED",
        DELETE_ACL_CONFIG_FAILED => "DELETE_ACL_CONFIG_FAILED",
        UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED => "UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED",
        _ => "error",
    }
}

/// Runs one subcommand's future on a compio runtime (the backend `FERROMQ_IO_BACKEND` picks).
pub fn run<F: Future<Output = AdminResult<()>>>(future: F) -> AdminResult<()> {
    let (runtime, _) = runtime_from_env().map_err(|e| AdminError::Other(format!("cannot start the I/O runtime: {e}")))?;
    runtime.block_on(future)
}

/// Java's `MixAll.ACL_CONF_TOOLS_FILE`, under `ROCKETMQ_HOME`.
const TOOLS_FILE: &str = "conf/tools.yml";

/// The keys every request is signed with, read once by [`load_tools_credentials`].
static CREDENTIALS: OnceLock<Option<Credentials>> = OnceLock::new();

/// `${ROCKETMQ_HOME}/conf/tools.yml`, when `ROCKETMQ_HOME` is set.
pub fn tools_file() -> Option<PathBuf> {
    std::env::var_os("ROCKETMQ_HOME").filter(|home| !home.is_empty()).map(|home| Path::new(&home).join(TOOLS_FILE))
}

/// Reads the keys `mqadmin` signs with, as Java's `MQAdminStartup` does
/// (`AclUtils.getAclRPCHook(rocketmqHome + "/conf/tools.yml")`), and keeps them for every
/// connection of this run. No `ROCKETMQ_HOME`, no file or an empty file: requests go unsigned,
/// silently, as in Java. A file that exists but cannot be read, is not YAML, or lacks a
/// non-blank `accessKey` or `secretKey` is an error (Java logs it and goes on unsigned, so the
/// broker's refusal would hide the cause).
pub fn load_tools_credentials() -> AdminResult<()> {
    let credentials = match tools_file() {
        Some(path) => read_tools_file(&path)?,
        None => None,
    };
    let _ = CREDENTIALS.set(credentials);
    Ok(())
}

/// The keys of the tools file at `path`; `None` when it does not exist or is empty.
pub fn read_tools_file(path: &Path) -> AdminResult<Option<Credentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AdminError::Other(format!("cannot read {}: {e}", path.display()))),
    };
    tools_credentials(&text).map_err(|why| AdminError::Other(format!("{}: {why}", path.display())))
}

/// The `accessKey` and `secretKey` of a `tools.yml` text; `None` for an empty document.
pub fn tools_credentials(text: &str) -> Result<Option<Credentials>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let map = match docs.first() {
        None | Some(Yaml::Null) => return Ok(None),
        Some(Yaml::Hash(map)) => map,
        Some(_) => return Err("expected a mapping with accessKey and secretKey".to_owned()),
    };
    let key = |name: &str| match map.get(&Yaml::String(name.to_owned())) {
        Some(Yaml::String(s) | Yaml::Real(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Yaml::Integer(i)) => Ok(i.to_string()),
        _ => Err(format!("{name} is missing or blank (give accessKey and secretKey of an account of the brokers' plain_acl.yml)")),
    };
    Ok(Some(Credentials::new(key("accessKey")?, key("secretKey")?)))
}

/// Connections to the name servers and brokers one subcommand talks to, opened on first use,
/// each signing its requests when `tools.yml` gives keys.
pub struct Admin {
    namesrv: Vec<String>,
    clients: RefCell<HashMap<String, Client>>,
    credentials: Option<Credentials>,
}

impl Admin {
    /// The name servers from `-n` or `NAMESRV_ADDR`; commands that only talk to a broker (`-b`)
    /// may go without.
    pub fn new(namesrv: &NameServer) -> Admin {
        let namesrv = namesrv
            .namesrv_addr
            .clone()
            .or_else(|| std::env::var("NAMESRV_ADDR").ok())
            .as_deref()
            .map(|list| list.split(';').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        let credentials = CREDENTIALS.get().cloned().flatten();
        Admin { namesrv, clients: RefCell::new(HashMap::new()), credentials }
    }

    /// The name server addresses given (possibly none).
    pub fn namesrv_addrs(&self) -> &[String] {
        &self.namesrv
    }

    /// Sends `request` to `addr` (`host:port`) and returns the response, whatever its code.
    pub async fn invoke(&self, addr: &str, request: RemotingCommand) -> AdminResult<RemotingCommand> {
        let client = self.client(addr).await?;
        match client.invoke(request, REQUEST_TIMEOUT).await {
            Ok(response) => Ok(response),
            Err(e) => {
                self.clients.borrow_mut().remove(addr);
                Err(AdminError::Unreachable(format!("{addr}: {e}")))
            }
        }
    }

    /// Sends `request` to `addr` and returns the response when it is SUCCESS, or the error.
    pub async fn invoke_ok(&self, addr: &str, request: RemotingCommand) -> AdminResult<RemotingCommand> {
        let response = self.invoke(addr, request).await?;
        expect_success(addr, response)
    }

    /// Sends `request` to the name servers in turn until one answers SUCCESS; returns the
    /// first refusal if all refuse, or the last failure if none answers.
    pub async fn namesrv(&self, request: RemotingCommand) -> AdminResult<RemotingCommand> {
        if self.namesrv.is_empty() {
            return Err(AdminError::Usage(
                "no name server: give -n host:port or set NAMESRV_ADDR".to_owned(),
            ));
        }
        let mut failure = None;
        for addr in &self.namesrv {
            match self.invoke_ok(addr, request.clone()).await {
                Ok(response) => return Ok(response),
                Err(e @ AdminError::Refused { .. }) => return Err(e),
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.unwrap_or_else(|| AdminError::Other("no name server answered".to_owned())))
    }

    /// Sends `request` to every name server given; fails on the first that fails (as the Java
    /// tool does for config and KV updates).
    pub async fn every_namesrv(&self, request: RemotingCommand) -> AdminResult<()> {
        if self.namesrv.is_empty() {
            return Err(AdminError::Usage("no name server: give -n host:port or set NAMESRV_ADDR".to_owned()));
        }
        for addr in &self.namesrv {
            self.invoke_ok(addr, request.clone()).await?;
        }
        Ok(())
    }

    /// GET_ROUTEINFO_BY_TOPIC from the name servers.
    pub async fn route(&self, topic: &str) -> AdminResult<TopicRoute> {
        let request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
        let response = self.namesrv(request).await?;
        TopicRoute::parse(&response.body)
    }

    /// GET_BROKER_CLUSTER_INFO from the name servers.
    pub async fn cluster(&self) -> AdminResult<ClusterInfo> {
        let response = self.namesrv(RemotingCommand::request(request_code::GET_BROKER_CLUSTER_INFO)).await?;
        ClusterInfo::parse(&response.body)
    }

    async fn client(&self, addr: &str) -> AdminResult<Client> {
        if let Some(client) = self.clients.borrow().get(addr)
            && !client.is_closed()
        {
            return Ok(client.clone());
        }
        let socket = resolve(addr)?;
        let client = Client::connect(socket, CONNECT_TIMEOUT)
            .await
            .map_err(|e| AdminError::Unreachable(format!("cannot connect to {addr}: {e}")))?
            .signed_by(self.credentials.clone());
        self.clients.borrow_mut().insert(addr.to_owned(), client.clone());
        Ok(client)
    }
}

/// `host:port` to a socket address.
pub fn resolve(addr: &str) -> AdminResult<SocketAddr> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut all| all.next())
        .ok_or_else(|| AdminError::Usage(format!("'{addr}' is not a host:port address")))
}

/// `response` when it is SUCCESS; otherwise the error naming `server`, the code and remark.
pub fn expect_success(server: &str, response: RemotingCommand) -> AdminResult<RemotingCommand> {
    if response.code == response_code::SUCCESS {
        Ok(response)
    } else {
        Err(AdminError::Refused {
            server: server.to_owned(),
            code: response.code,
            remark: response.remark.clone().unwrap_or_default(),
        })
    }
}

/// A JSON object body, read tolerantly (fastjson's bare integer keys are accepted).
pub fn json_object(body: &[u8]) -> AdminResult<Map<String, Value>> {
    fastjson::parse_object_tolerant(body).map_err(|e| AdminError::BadAnswer(e.to_string()))
}

/// One broker group of a route or of the cluster table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerGroup {
    pub cluster: String,
    pub broker_name: String,
    /// broker id (0 = master) → `host:port`.
    pub addrs: BTreeMap<u64, String>,
}

impl BrokerGroup {
    fn parse(v: &Value) -> Option<BrokerGroup> {
        let addrs = v
            .get("brokerAddrs")?
            .as_object()?
            .iter()
            .filter_map(|(id, addr)| Some((id.parse().ok()?, addr.as_str()?.to_owned())))
            .collect();
        Some(BrokerGroup {
            cluster: lenient_string(v.get("cluster")).unwrap_or_default(),
            broker_name: lenient_string(v.get("brokerName"))?,
            addrs,
        })
    }

    /// The master's address (broker id 0), if a master is registered.
    pub fn master(&self) -> Option<&str> {
        self.addrs.get(&0).map(String::as_str)
    }

    /// The address to ask in this group: its master, else its first slave (Java's
    /// `BrokerData.selectBrokerAddr` picks a random slave).
    pub fn serving_addr(&self) -> Option<&str> {
        self.master().or_else(|| self.addrs.values().next().map(String::as_str))
    }
}

/// One broker group's queues of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
}

/// A topic's route (GET_ROUTEINFO_BY_TOPIC body, PROTOCOL.md §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoute {
    pub brokers: Vec<BrokerGroup>,
    pub queues: Vec<QueueData>,
    /// The body as the name server sent it, for `topicRoute`'s JSON output.
    pub raw: Value,
}

impl TopicRoute {
    pub fn parse(body: &[u8]) -> AdminResult<TopicRoute> {
        let raw = Value::Object(json_object(body)?);
        let brokers = raw
            .get("brokerDatas")
            .and_then(Value::as_array)
            .map(|all| all.iter().filter_map(BrokerGroup::parse).collect())
            .unwrap_or_default();
        let queues = raw
            .get("queueDatas")
            .and_then(Value::as_array)
            .map(|all| {
                all.iter()
                    .filter_map(|q| {
                        Some(QueueData {
                            broker_name: lenient_string(q.get("brokerName"))?,
                            read_queue_nums: lenient_i32(q.get("readQueueNums")).unwrap_or(0),
                            write_queue_nums: lenient_i32(q.get("writeQueueNums")).unwrap_or(0),
                            perm: lenient_i32(q.get("perm")).unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(TopicRoute { brokers, queues, raw })
    }

    /// The masters' addresses of the route's broker groups, by broker name.
    pub fn masters(&self) -> Vec<(String, String)> {
        self.brokers
            .iter()
            .filter_map(|b| Some((b.broker_name.clone(), b.master()?.to_owned())))
            .collect()
    }
}

/// The name server's cluster table (GET_BROKER_CLUSTER_INFO body, PROTOCOL.md §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// broker name → group.
    pub brokers: BTreeMap<String, BrokerGroup>,
    /// cluster name → broker names.
    pub clusters: BTreeMap<String, Vec<String>>,
}

impl ClusterInfo {
    pub fn parse(body: &[u8]) -> AdminResult<ClusterInfo> {
        let raw = json_object(body)?;
        let brokers = raw
            .get("brokerAddrTable")
            .and_then(Value::as_object)
            .map(|all| all.iter().filter_map(|(name, v)| Some((name.clone(), BrokerGroup::parse(v)?))).collect())
            .unwrap_or_default();
        let clusters = raw
            .get("clusterAddrTable")
            .and_then(Value::as_object)
            .map(|all| {
                all.iter()
                    .map(|(cluster, names)| {
                        let mut names: Vec<String> = names
                            .as_array()
                            .map(|n| n.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                            .unwrap_or_default();
                        names.sort();
                        (cluster.clone(), names)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ClusterInfo { brokers, clusters })
    }

    /// The masters' addresses of every broker group of `cluster`, by broker name.
    pub fn masters_of(&self, cluster: &str) -> AdminResult<Vec<(String, String)>> {
        let names = self
            .clusters
            .get(cluster)
            .ok_or_else(|| AdminError::Other(format!("cluster '{cluster}' is not registered with the name server")))?;
        Ok(names
            .iter()
            .filter_map(|name| Some((name.clone(), self.brokers.get(name)?.master()?.to_owned())))
            .collect())
    }
}

// ---- Helpers of the metadata subcommands (shared by any subcommand that needs them) ------

impl Admin {
    /// The brokers a `-b` / `-c` subcommand acts on: the address given with `-b`, else the
    /// masters of cluster `-c` (with their slaves when `with_slaves`), in broker-name order.
    /// Neither flag is a usage error, as is a cluster the name servers do not know.
    pub async fn brokers_of(&self, broker: Option<&str>, cluster: Option<&str>, with_slaves: bool) -> AdminResult<Vec<String>> {
        if let Some(addr) = broker {
            return Ok(vec![addr.trim().to_owned()]);
        }
        let Some(cluster) = cluster else {
            return Err(AdminError::Usage("give a broker address with -b or a cluster name with -c".to_owned()));
        };
        let info = self.cluster().await?;
        if !with_slaves {
            return Ok(info.masters_of(cluster.trim())?.into_iter().map(|(_, addr)| addr).collect());
        }
        let names = info
            .clusters
            .get(cluster.trim())
            .ok_or_else(|| AdminError::Other(format!("cluster '{}' is not registered with the name server", cluster.trim())))?;
        Ok(names.iter().filter_map(|name| info.brokers.get(name)).flat_map(|group| group.addrs.values().cloned()).collect())
    }
}

/// Java's `PermName.perm2String`: `R`, `W`, `X` (inherit) or `-` in three places.
pub fn perm_text(perm: i32) -> String {
    let bit = |mask: i32, c: char| if perm & mask == mask { c } else { '-' };
    [bit(4, 'R'), bit(2, 'W'), bit(1, 'X')].iter().collect()
}

/// A double as Java's `String.valueOf(double)` writes the usual values (`0.0`, `12.5`).
pub fn java_double(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e7 {
        format!("{value:.1}")
    } else {
        value.to_string()
    }
}

/// Java's `UtilAll.frontStringAtLeast`: at most `chars` characters of `s`.
pub fn front(s: &str, chars: usize) -> &str {
    match s.char_indices().nth(chars) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Java's `UtilAll.timeMillisToHumanString2`: `yyyy-MM-dd HH:mm:ss,SSS` in local time.
pub fn human_time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: `tm` is plain data for which all-zero bytes are valid; `localtime_r` only writes it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call; localtime_r is thread-safe.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return ms.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        ms.rem_euclid(1000)
    )
}

/// The `key=value` pairs of a properties body in the order they appear (comments and blank
/// lines skipped; values unescaped as `java.util.Properties` does).
pub fn properties_in_order(body: &[u8]) -> AdminResult<Vec<(String, String)>> {
    let map = java_properties::read(body).map_err(|e| AdminError::BadAnswer(format!("not a properties text: {e}")))?;
    let mut pairs: Vec<(String, String)> = map.into_iter().collect();
    let text = String::from_utf8_lossy(body);
    let position = |key: &str| {
        text.lines().position(|line| {
            let line = line.trim_start();
            line.starts_with(key) && line[key.len()..].trim_start().starts_with(['=', ':'])
        })
    };
    pairs.sort_by_key(|(key, _)| (position(key).unwrap_or(usize::MAX), key.clone()));
    Ok(pairs)
}

/// A Java `HashMap<Long, String>`'s `toString` (`{0=10.0.0.1:10911, 1=10.0.0.2:10911}`).
pub fn java_map_text(map: &BTreeMap<u64, String>) -> String {
    let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", entries.join(", "))
}

/// A MessageQueue as a map key (`{"brokerName":..,"queueId":..,"topic":..}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueKey {
    /// Java's `MessageQueue.compareTo` order: topic, broker name, queue id.
    pub topic: String,
    pub broker_name: String,
    pub queue_id: i64,
}

/// The table `table` of a body whose map is keyed by MessageQueue objects (TopicStatsTable's
/// and ConsumeStats' `offsetTable`, PROTOCOL.md §4.1 point 3: keys no standard JSON parser
/// reads), with the body's other top-level fields as JSON values.
pub fn queue_table(body: &[u8], table: &str) -> AdminResult<(BTreeMap<QueueKey, Value>, Map<String, Value>)> {
    let bad = |e: &dyn fmt::Display| AdminError::BadAnswer(e.to_string());
    let mut rows = BTreeMap::new();
    let mut rest = Map::new();
    for (key, value) in fastjson::object_entries(body).map_err(|e| bad(&e))? {
        let name: String = serde_json::from_slice(key).map_err(|e| bad(&e))?;
        if name != table {
            rest.insert(name, fastjson::parse_tolerant(value).map_err(|e| bad(&e))?);
            continue;
        }
        for (queue, figures) in fastjson::object_entries(value).map_err(|e| bad(&e))? {
            let queue: Value = fastjson::parse_tolerant(queue).map_err(|e| bad(&e))?;
            let key = QueueKey {
                topic: lenient_string(queue.get("topic")).unwrap_or_default(),
                broker_name: lenient_string(queue.get("brokerName")).unwrap_or_default(),
                queue_id: fastjson::lenient_i64(queue.get("queueId")).unwrap_or_default(),
            };
            rows.insert(key, fastjson::parse_tolerant(figures).map_err(|e| bad(&e))?);
        }
    }
    Ok((rows, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_yml_gives_the_keys_or_nothing_or_a_clear_error() {
        let keys = tools_credentials("accessKey: RocketMQ\nsecretKey: 12345678\n").unwrap().unwrap();
        assert_eq!((keys.access_key.as_str(), keys.secret_key.as_str()), ("RocketMQ", "12345678"));
        // Empty: unsigned, as Java.
        assert_eq!(tools_credentials("").unwrap(), None);
        assert_eq!(tools_credentials("# nothing\n").unwrap(), None);
        // Present but unusable: an error naming what is wrong.
        assert!(tools_credentials("accessKey: [unclosed\n").unwrap_err().contains("not YAML"));
        assert!(tools_credentials("- a\n- b\n").unwrap_err().contains("mapping"));
        assert!(tools_credentials("accessKey: ak\n").unwrap_err().contains("secretKey"));
        assert!(tools_credentials("accessKey: ' '\nsecretKey: sk\n").unwrap_err().contains("accessKey"));
        // A file that does not exist: unsigned.
        assert_eq!(read_tools_file(Path::new("/nonexistent/ferromq/conf/tools.yml")).unwrap(), None);
    }
}
