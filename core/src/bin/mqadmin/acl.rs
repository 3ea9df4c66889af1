//! The 4.x plain ACL subcommands (`tools/command/acl` in apache/rocketmq 4.9.x):
//! `updateAclConfig`, `deleteAclConfig`, `updateGlobalWhiteAddr`, `clusterAclConfigVersion`
//! and `getAclConfig` (4.9.7's name; `getAccessConfigSubCommand` before it). They send the
//! broker's ACL admin codes 50–54, which only an admin account may send: the keys come from
//! `${ROCKETMQ_HOME}/conf/tools.yml` ([`crate::common::load_tools_credentials`]).
//!
//! `-b` acts on one broker; `-c` on every broker of the cluster, slaves included, for the three
//! changes, and on its masters for the two reads, as the Java tool does.

use ferromq_net::RemotingCommand;
use ferromq_net::codes::request_code;
use ferromq_net::fastjson::{lenient_i64, lenient_string};
use serde_json::Value;

use crate::common::{Admin, AdminError, AdminResult, NameServer, human_time_ms, json_object};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Update acl config yaml file in broker
    #[command(name = "updateAclConfig")]
    UpdateAclConfig {
        #[command(flatten)]
        ns: NameServer,
        /// update acl config file to which broker
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// update acl config file to which cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        /// set accessKey in acl config file
        #[arg(short = 'a', long = "accessKey")]
        access_key: String,
        /// set secretKey in acl config file
        #[arg(short = 's', long = "secretKey")]
        secret_key: String,
        /// set white ip Address for account in acl config file
        #[arg(short = 'w', long = "whiteRemoteAddress")]
        white_remote_address: Option<String>,
        /// set default topicPerm in acl config file
        #[arg(short = 'i', long = "defaultTopicPerm")]
        default_topic_perm: Option<String>,
        /// set default GroupPerm in acl config file
        #[arg(short = 'u', long = "defaultGroupPerm")]
        default_group_perm: Option<String>,
        /// set topicPerms list,eg: topicA=DENY,topicD=SUB
        #[arg(short = 't', long = "topicPerms")]
        topic_perms: Option<String>,
        /// set groupPerms list,eg: groupD=DENY,groupD=SUB
        #[arg(short = 'g', long = "groupPerms")]
        group_perms: Option<String>,
        /// set admin flag in acl config file
        #[arg(short = 'm', long = "admin")]
        admin: Option<String>,
    },
    /// Delete Acl Config Account in broker
    #[command(name = "deleteAclConfig", visible_alias = "deleteAccessConfig")]
    DeleteAclConfig {
        #[command(flatten)]
        ns: NameServer,
        /// delete acl config account from which broker
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// delete acl config account from which cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        /// set accessKey in acl config file for deleting which account
        #[arg(short = 'a', long = "accessKey")]
        access_key: String,
    },
    /// Update global white address for acl Config File in broker
    #[command(name = "updateGlobalWhiteAddr")]
    UpdateGlobalWhiteAddr {
        #[command(flatten)]
        ns: NameServer,
        /// update global white address to which broker
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// update global white address to which cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        /// set globalWhiteRemoteAddress list,eg: 10.10.103.*,192.168.0.*
        #[arg(short = 'g', long = "globalWhiteRemoteAddresses")]
        addresses: String,
        /// update global white address of specified acl file,eg: /xxx/plain_test.yml
        #[arg(short = 'p', long = "aclFileFullPath")]
        acl_file: Option<String>,
    },
    /// List all of acl config version information in cluster
    #[command(name = "clusterAclConfigVersion")]
    ClusterAclConfigVersion {
        #[command(flatten)]
        ns: NameServer,
        /// query acl config version for which broker
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// query acl config version for specified cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// List all of acl config information in cluster
    #[command(name = "getAclConfig", visible_alias = "getAccessConfigSubCommand")]
    GetAclConfig {
        #[command(flatten)]
        ns: NameServer,
        /// query acl config version for which broker
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// query acl config version for specified cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
}

/// What `updateAclConfig` sends (Java's `PlainAccessConfig`; `None`: not given).
#[derive(Debug, Default)]
struct AccessConfig {
    access_key: String,
    secret_key: String,
    white_remote_address: Option<String>,
    admin: Option<bool>,
    default_topic_perm: Option<String>,
    default_group_perm: Option<String>,
    topic_perms: Option<Vec<String>>,
    group_perms: Option<Vec<String>>,
}

impl AccessConfig {
    /// UPDATE_AND_CREATE_ACL_CONFIG (Java `CreateAccessConfigRequestHeader`; lists joined with
    /// commas, as `MQClientAPIImpl.createPlainAccessConfig` sends them).
    fn request(&self) -> RemotingCommand {
        let mut request = RemotingCommand::request(request_code::UPDATE_AND_CREATE_ACL_CONFIG)
            .with_ext("accessKey", &self.access_key)
            .with_ext("secretKey", &self.secret_key);
        // Java always sends `admin` (false without -m), which demotes an admin account whose
        // other fields are being updated; sent only when given, the broker keeps the flag.
        let optional = [
            ("admin", self.admin.map(|a| a.to_string())),
            ("whiteRemoteAddress", self.white_remote_address.clone()),
            ("defaultTopicPerm", self.default_topic_perm.clone()),
            ("defaultGroupPerm", self.default_group_perm.clone()),
            ("topicPerms", self.topic_perms.as_ref().map(|l| l.join(","))),
            ("groupPerms", self.group_perms.as_ref().map(|l| l.join(","))),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                request = request.with_ext(key, value);
            }
        }
        request
    }

    /// 5.x's `PlainAccessConfig.toString()` (4.9's has none and prints the object's hash);
    /// the secret key is left out, as there.
    fn java_text(&self) -> String {
        let quoted = |v: &Option<String>| v.as_ref().map_or_else(|| "'null'".to_owned(), |v| format!("'{v}'"));
        let list = |v: &Option<Vec<String>>| v.as_ref().map_or_else(|| "null".to_owned(), |l| format!("[{}]", l.join(", ")));
        format!(
            "PlainAccessConfig{{accessKey='{}', whiteRemoteAddress={}, admin={}, defaultTopicPerm={}, defaultGroupPerm={}, topicPerms={}, groupPerms={}}}",
            self.access_key,
            quoted(&self.white_remote_address),
            self.admin.unwrap_or(false),
            quoted(&self.default_topic_perm),
            quoted(&self.default_group_perm),
            list(&self.topic_perms),
            list(&self.group_perms)
        )
    }
}

/// Java's `String.split(",")` of a trimmed option value (trailing empty entries dropped).
fn java_split(text: &str) -> Vec<String> {
    let mut parts: Vec<String> = text.trim().split(',').map(str::to_owned).collect();
    while parts.len() > 1 && parts.last().is_some_and(String::is_empty) {
        parts.pop();
    }
    parts
}

impl Command {
    /// The Java name of the subcommand, for error lines.
    pub fn name(&self) -> &'static str {
        match self {
            Command::UpdateAclConfig { .. } => "updateAclConfig",
            Command::DeleteAclConfig { .. } => "deleteAclConfig",
            Command::UpdateGlobalWhiteAddr { .. } => "updateGlobalWhiteAddr",
            Command::ClusterAclConfigVersion { .. } => "clusterAclConfigVersion",
            Command::GetAclConfig { .. } => "getAclConfig",
        }
    }

    pub async fn run(self) -> AdminResult<()> {
        match self {
            Command::UpdateAclConfig {
                ns,
                broker,
                cluster,
                access_key,
                secret_key,
                white_remote_address,
                default_topic_perm,
                default_group_perm,
                topic_perms,
                group_perms,
                admin,
            } => {
                let config = AccessConfig {
                    access_key: access_key.trim().to_owned(),
                    secret_key: secret_key.trim().to_owned(),
                    white_remote_address: white_remote_address.map(|v| v.trim().to_owned()),
                    admin: admin.map(|v| v.trim().eq_ignore_ascii_case("true")),
                    default_topic_perm: default_topic_perm.map(|v| v.trim().to_owned()),
                    default_group_perm: default_group_perm.map(|v| v.trim().to_owned()),
                    topic_perms: topic_perms.as_deref().map(java_split),
                    group_perms: group_perms.as_deref().map(java_split),
                };
                let admin = Admin::new(&ns);
                for addr in admin.brokers_of(broker.as_deref(), cluster.as_deref(), true).await? {
                    admin.invoke_ok(&addr, config.request()).await?;
                    println!("create or update plain access config to {addr} success.");
                }
                println!("{}", config.java_text());
                Ok(())
            }
            Command::DeleteAclConfig { ns, broker, cluster, access_key } => {
                let access_key = access_key.trim();
                let admin = Admin::new(&ns);
                for addr in admin.brokers_of(broker.as_deref(), cluster.as_deref(), true).await? {
                    let request = RemotingCommand::request(request_code::DELETE_ACL_CONFIG).with_ext("accessKey", access_key);
                    admin.invoke_ok(&addr, request).await?;
                    println!("delete plain access config account from {addr} success.");
                }
                println!("account's accesskey is:{access_key}");
                Ok(())
            }
            Command::UpdateGlobalWhiteAddr { ns, broker, cluster, addresses, acl_file } => {
                let admin = Admin::new(&ns);
                for addr in admin.brokers_of(broker.as_deref(), cluster.as_deref(), true).await? {
                    let mut request =
                        RemotingCommand::request(request_code::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG).with_ext("globalWhiteAddrs", addresses.trim());
                    if let Some(path) = &acl_file {
                        request = request.with_ext("aclFileFullPath", path.trim());
                    }
                    admin.invoke_ok(&addr, request).await?;
                    println!("update global white remote addresses to {addr} success.");
                }
                Ok(())
            }
            Command::ClusterAclConfigVersion { ns, broker, cluster } => {
                let admin = Admin::new(&ns);
                let by_cluster = broker.is_none();
                let addrs = admin.brokers_of(broker.as_deref(), cluster.as_deref(), false).await?;
                // As Java: the header line with -c only.
                if by_cluster {
                    println!(
                        "{:<16}  {:<22}  {:<22}  {:<20}  {:<22}  {:<22}",
                        "#Cluster Name", "#Broker Name", "#Broker Addr", "#AclFilePath", "#AclConfigVersionNum", "#AclLastUpdateTime"
                    );
                }
                for addr in addrs {
                    acl_version_lines(&admin, &addr).await?;
                }
                if by_cluster {
                    println!("get cluster's plain access config version success.");
                } else {
                    println!("get broker's plain access config version success.");
                }
                Ok(())
            }
            Command::GetAclConfig { ns, broker, cluster } => {
                let admin = Admin::new(&ns);
                for addr in admin.brokers_of(broker.as_deref(), cluster.as_deref(), false).await? {
                    acl_config_lines(&admin, &addr).await?;
                }
                Ok(())
            }
        }
    }
}

/// GET_BROKER_CLUSTER_ACL_INFO: one line per ACL file of the broker (Java's
/// `ClusterAclConfigVersionListSubCommand.printClusterBaseInfo`).
async fn acl_version_lines(admin: &Admin, addr: &str) -> AdminResult<()> {
    let response = admin.invoke_ok(addr, RemotingCommand::request(request_code::GET_BROKER_CLUSTER_ACL_INFO)).await?;
    let field = |key: &str| response.ext(key).unwrap_or_default().to_owned();
    let files = match response.ext("allAclFileVersion") {
        Some(all) => json_object(all.as_bytes())?,
        None => serde_json::Map::new(),
    };
    for (path, version) in &files {
        let counter = lenient_i64(version.get("counter")).unwrap_or(0);
        let timestamp = lenient_i64(version.get("timestamp")).unwrap_or(0);
        // Java's `yyyy-MM-dd HH:mm:ss`: the milliseconds of the common format cut off.
        let time = human_time_ms(timestamp);
        let time = time.split(',').next().unwrap_or_default();
        println!(
            "{:<16}  {:<22}  {:<22}  {:<20}  {:<22}  {:<22}",
            field("clusterName"),
            field("brokerName"),
            field("brokerAddr"),
            path,
            counter,
            time
        );
    }
    Ok(())
}

/// A value as Java's `toString` prints it in `getAclConfig` (null: empty; a list: `[a, b]`).
fn java_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::Array(items)) => {
            let items: Vec<String> = items.iter().map(|v| lenient_string(Some(v)).unwrap_or_else(|| v.to_string())).collect();
            format!("[{}]", items.join(", "))
        }
        Some(v) => lenient_string(Some(v)).unwrap_or_else(|| v.to_string()),
    }
}

/// GET_BROKER_CLUSTER_ACL_CONFIG: the global white list and every account, field by field in
/// `PlainAccessConfig`'s declaration order (Java's `GetAccessConfigSubCommand`).
async fn acl_config_lines(admin: &Admin, addr: &str) -> AdminResult<()> {
    let response = admin.invoke_ok(addr, RemotingCommand::request(request_code::GET_BROKER_CLUSTER_ACL_CONFIG)).await?;
    let body = json_object(&response.body)?;
    let global = java_value(Some(body.get("globalWhiteAddrs").unwrap_or(&Value::Array(Vec::new()))));
    println!();
    println!("{:<20}: {global}", "globalWhiteRemoteAddresses");
    println!();
    println!("accounts:");
    let accounts = body.get("plainAccessConfigs").and_then(Value::as_array).cloned().unwrap_or_default();
    for account in &accounts {
        let Some(account) = account.as_object() else {
            return Err(AdminError::BadAnswer(format!("{addr}: an account is not a JSON object")));
        };
        for field in ["accessKey", "secretKey", "whiteRemoteAddress", "admin", "defaultTopicPerm", "defaultGroupPerm", "topicPerms", "groupPerms"] {
            let value = match (field, account.get(field)) {
                // A primitive boolean in Java: never null.
                ("admin", None | Some(Value::Null)) => "false".to_owned(),
                (_, value) => java_value(value),
            };
            println!("{:<1} {field:<18}: {value}", "");
        }
        println!();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[test]
    fn flags_are_javas_and_do_not_clash() {
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("mqadmin").chain(args.iter().copied())).map(|cli| cli.command);
        let args = ["updateAclConfig", "-b", "h:1", "-a", "ak", "-s", "sk", "-w", "10.*", "-i", "PUB", "-u", "SUB", "-t", "A=PUB", "-g", "G=SUB", "-m", "true"];
        match parse(&args) {
            Ok(Command::UpdateAclConfig { access_key, secret_key, admin, topic_perms, group_perms, .. }) => {
                assert_eq!((access_key.as_str(), secret_key.as_str(), admin.as_deref()), ("ak", "sk", Some("true")));
                assert_eq!((topic_perms.as_deref(), group_perms.as_deref()), (Some("A=PUB"), Some("G=SUB")));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["updateAclConfig", "-b", "h:1", "-a", "ak"]).is_err(), "-s is required, as in Java");
        assert!(matches!(parse(&["getAccessConfigSubCommand", "-b", "h:1"]), Ok(Command::GetAclConfig { .. })), "4.9.0's name");
        assert!(matches!(parse(&["deleteAccessConfig", "-c", "C", "-a", "ak"]), Ok(Command::DeleteAclConfig { .. })), "Java's alias");
        assert!(matches!(parse(&["updateGlobalWhiteAddr", "-b", "h:1", "-g", "10.*", "-p", "/x.yml"]), Ok(Command::UpdateGlobalWhiteAddr { .. })));
    }

    #[test]
    fn update_sends_java_header_fields_and_prints_the_5x_text() {
        let config = AccessConfig {
            access_key: "ak".to_owned(),
            secret_key: "sk".to_owned(),
            topic_perms: Some(java_split("A=PUB,B=SUB,")),
            ..AccessConfig::default()
        };
        let request = config.request();
        assert_eq!(request.code, request_code::UPDATE_AND_CREATE_ACL_CONFIG);
        assert_eq!(
            (request.ext("accessKey"), request.ext("secretKey"), request.ext("admin"), request.ext("topicPerms"), request.ext("groupPerms")),
            (Some("ak"), Some("sk"), None, Some("A=PUB,B=SUB"), None)
        );
        assert_eq!(
            config.java_text(),
            "PlainAccessConfig{accessKey='ak', whiteRemoteAddress='null', admin=false, defaultTopicPerm='null', defaultGroupPerm='null', topicPerms=[A=PUB, B=SUB], groupPerms=null}"
        );
    }

    #[test]
    fn values_print_as_java_to_string() {
        assert_eq!(java_value(None), "");
        assert_eq!(java_value(Some(&serde_json::json!(["a", "b"]))), "[a, b]");
        assert_eq!(java_value(Some(&serde_json::json!(true))), "true");
        assert_eq!(java_value(Some(&serde_json::json!("x"))), "x");
    }
}
