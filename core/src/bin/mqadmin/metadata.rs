//! Topics, subscription groups, clusters, brokers, name servers and their configuration.
//!
//! Each subcommand keeps the Java tool's name, option letters and long names, and prints what
//! the Java tool prints, format for format (`tools/command/{topic,consumer,cluster,broker,
//! namesrv,stats}` in apache/rocketmq), so that scripts parsing it keep working. Where the
//! Java tool prints a stack trace and goes on (one broker of a cluster failing), this one
//! prints the other brokers' lines and then fails with one line and exit status 1.

use std::collections::BTreeMap;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::codes::request_code;
use serde_json::Value;

use crate::common::{
    Admin, AdminError, AdminResult, ClusterInfo, NameServer, TopicRoute, front, human_time_ms, java_double, java_map_text, json_object, perm_text,
    properties_in_order, queue_table,
};

/// Java's `MixAll` prefixes of a group's retry and dead-letter topics.
const RETRY_PREFIX: &str = "%RETRY%";
const DLQ_PREFIX: &str = "%DLQ%";
/// The KV namespace of order topics (`NamesrvUtil.NAMESPACE_ORDER_TOPIC_CONFIG`).
const ORDER_TOPIC_NAMESPACE: &str = "ORDER_TOPIC_CONFIG";

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Update or create topic
    #[command(name = "updateTopic")]
    UpdateTopic {
        #[command(flatten)]
        ns: NameServer,
        /// create topic to which broker
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// create topic to which cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        /// topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// set read queue nums
        #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
        read_queue_nums: i32,
        /// set write queue nums
        #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
        write_queue_nums: i32,
        /// set topic's permission(2|4|6), intro[2:W 4:R; 6:RW]
        #[arg(short = 'p', long = "perm", default_value_t = 6)]
        perm: i32,
        /// set topic's order(true|false)
        #[arg(short = 'o', long = "order", default_value = "false")]
        order: String,
        /// is unit topic (true|false)
        #[arg(short = 'u', long = "unit", default_value = "false")]
        unit: String,
        /// has unit sub (true|false)
        #[arg(short = 's', long = "hasUnitSub", default_value = "false")]
        has_unit_sub: String,
        /// attribute(+a=b,+c=d,-e): refused, FerroMQ has no topic attributes
        #[arg(short = 'a', long = "attributes")]
        attributes: Option<String>,
    },
    /// Delete topic from broker and NameServer.
    #[command(name = "deleteTopic")]
    DeleteTopic {
        #[command(flatten)]
        ns: NameServer,
        /// topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// delete topic from which cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// Fetch all topic list from name server
    #[command(name = "topicList")]
    TopicList {
        #[command(flatten)]
        ns: NameServer,
        /// with cluster info
        #[arg(short = 'c', long = "clusterModel")]
        cluster_model: bool,
    },
    /// Examine topic route info
    #[command(name = "topicRoute")]
    TopicRoute {
        #[command(flatten)]
        ns: NameServer,
        /// topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Use list format to print data
        #[arg(short = 'l', long = "list")]
        list: bool,
    },
    /// Examine topic Status info
    #[command(name = "topicStatus")]
    TopicStatus {
        #[command(flatten)]
        ns: NameServer,
        /// topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// cluster name, whose route is used to find the brokers
        #[arg(short = 'c', long = "cluster")]
        cluster: Option<String>,
    },
    /// Get cluster info for topic
    #[command(name = "topicClusterList")]
    TopicClusterList {
        #[command(flatten)]
        ns: NameServer,
        /// topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// Update or create subscription group
    #[command(name = "updateSubGroup")]
    UpdateSubGroup {
        #[command(flatten)]
        ns: NameServer,
        #[command(flatten)]
        group: SubGroupArgs,
    },
    /// Delete subscription group from broker.
    #[command(name = "deleteSubGroup")]
    DeleteSubGroup {
        #[command(flatten)]
        ns: NameServer,
        /// delete subscription group from which broker
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// delete subscription group from which cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        /// subscription group name
        #[arg(short = 'g', long = "groupName")]
        group: String,
        /// remove offset
        #[arg(short = 'r', long = "removeOffset", default_value = "false")]
        remove_offset: String,
    },
    /// List cluster infos
    #[command(name = "clusterList")]
    ClusterList {
        #[command(flatten)]
        ns: NameServer,
        /// Print more stats
        #[arg(short = 'm', long = "moreStats")]
        more_stats: bool,
        /// specify intervals numbers, it is in seconds
        #[arg(short = 'i', long = "interval")]
        interval_secs: Option<u64>,
        /// which cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// Fetch broker runtime status data
    #[command(name = "brokerStatus")]
    BrokerStatus {
        #[command(flatten)]
        ns: NameServer,
        /// Broker address
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// which cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// Get broker config by cluster or special broker!
    #[command(name = "getBrokerConfig")]
    GetBrokerConfig {
        #[command(flatten)]
        ns: NameServer,
        /// get which broker
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// get which cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
    },
    /// Update broker's config
    #[command(name = "updateBrokerConfig")]
    UpdateBrokerConfig {
        #[command(flatten)]
        ns: NameServer,
        /// update which broker
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// update which cluster
        #[arg(short = 'c', long = "clusterName")]
        cluster: Option<String>,
        /// update all brokers include slave
        #[arg(short = 'a', long = "updateAllBroker")]
        update_all: Option<String>,
        /// config key
        #[arg(short = 'k', long = "key")]
        key: String,
        /// config value
        #[arg(short = 'v', long = "value")]
        value: String,
    },
    /// Get configs of name server.
    #[command(name = "getNamesrvConfig")]
    GetNamesrvConfig {
        #[command(flatten)]
        ns: NameServer,
    },
    /// Update configs of name server.
    #[command(name = "updateNamesrvConfig")]
    UpdateNamesrvConfig {
        #[command(flatten)]
        ns: NameServer,
        /// config key
        #[arg(short = 'k', long = "key")]
        key: String,
        /// config value
        #[arg(short = 'v', long = "value")]
        value: String,
    },
    /// Create or update KV config.
    #[command(name = "updateKvConfig")]
    UpdateKvConfig {
        #[command(flatten)]
        ns: NameServer,
        /// set the namespace
        #[arg(short = 's', long = "namespace")]
        namespace: String,
        /// set the key name
        #[arg(short = 'k', long = "key")]
        key: String,
        /// set the key value
        #[arg(short = 'v', long = "value")]
        value: String,
    },
    /// Delete KV config.
    #[command(name = "deleteKvConfig")]
    DeleteKvConfig {
        #[command(flatten)]
        ns: NameServer,
        /// set the namespace
        #[arg(short = 's', long = "namespace")]
        namespace: String,
        /// set the key name
        #[arg(short = 'k', long = "key")]
        key: String,
    },
    /// Wipe write perm of broker in all name server you defined in the -n param
    #[command(name = "wipeWritePerm")]
    WipeWritePerm {
        #[command(flatten)]
        ns: NameServer,
        /// broker name
        #[arg(short = 'b', long = "brokerName")]
        broker_name: String,
    },
    /// Add write perm of broker in all name server you defined in the -n param
    #[command(name = "addWritePerm")]
    AddWritePerm {
        #[command(flatten)]
        ns: NameServer,
        /// broker name
        #[arg(short = 'b', long = "brokerName")]
        broker_name: String,
    },
    /// Clean expired ConsumeQueue on broker.
    #[command(name = "cleanExpiredCQ")]
    CleanExpiredCq {
        #[command(flatten)]
        ns: NameServer,
        /// Broker address
        #[arg(short = 'b', long = "brokerAddr")]
        broker: Option<String>,
        /// clustername
        #[arg(short = 'c', long = "cluster")]
        cluster: Option<String>,
    },
    /// Topic and Consumer tps stats
    #[command(name = "statsAll")]
    StatsAll {
        #[command(flatten)]
        ns: NameServer,
        /// print active topic only
        #[arg(short = 'a', long = "activeTopic")]
        active_topic: bool,
        /// print select topic only
        #[arg(short = 't', long = "topic")]
        topic: Option<String>,
    },
}

/// `updateSubGroup`'s options.
#[derive(clap::Args, Debug)]
pub struct SubGroupArgs {
    /// create subscription group to which broker
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
    /// create subscription group to which cluster
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
    /// consumer group name
    #[arg(short = 'g', long = "groupName")]
    group: String,
    /// consume enable
    #[arg(short = 's', long = "consumeEnable")]
    consume_enable: Option<String>,
    /// from min offset
    #[arg(short = 'm', long = "consumeFromMinEnable")]
    consume_from_min_enable: Option<String>,
    /// broadcast
    #[arg(short = 'd', long = "consumeBroadcastEnable")]
    consume_broadcast_enable: Option<String>,
    /// consume message orderly
    #[arg(short = 'o', long = "consumeMessageOrderly")]
    consume_message_orderly: Option<String>,
    /// retry queue nums
    #[arg(short = 'q', long = "retryQueueNums")]
    retry_queue_nums: Option<i32>,
    /// retry max times
    #[arg(short = 'r', long = "retryMaxTimes")]
    retry_max_times: Option<i32>,
    /// the json string of retry policy
    #[arg(short = 'p', long = "groupRetryPolicy")]
    group_retry_policy: Option<String>,
    /// consumer from which broker id
    #[arg(short = 'i', long = "brokerId")]
    broker_id: Option<i64>,
    /// which broker id when consume slowly
    #[arg(short = 'w', long = "whichBrokerWhenConsumeSlowly")]
    which_broker_when_consume_slowly: Option<i64>,
    /// notify consumerId changed
    #[arg(short = 'a', long = "notifyConsumerIdsChanged")]
    notify_consumer_ids_changed: Option<String>,
    /// attribute(+a=b,+c=d,-e)
    #[arg(long = "attributes")]
    attributes: Option<String>,
}

impl Command {
    /// The Java name of the subcommand, for error lines.
    pub fn name(&self) -> &'static str {
        match self {
            Command::UpdateTopic { .. } => "updateTopic",
            Command::DeleteTopic { .. } => "deleteTopic",
            Command::TopicList { .. } => "topicList",
            Command::TopicRoute { .. } => "topicRoute",
            Command::TopicStatus { .. } => "topicStatus",
            Command::TopicClusterList { .. } => "topicClusterList",
            Command::UpdateSubGroup { .. } => "updateSubGroup",
            Command::DeleteSubGroup { .. } => "deleteSubGroup",
            Command::ClusterList { .. } => "clusterList",
            Command::BrokerStatus { .. } => "brokerStatus",
            Command::GetBrokerConfig { .. } => "getBrokerConfig",
            Command::UpdateBrokerConfig { .. } => "updateBrokerConfig",
            Command::GetNamesrvConfig { .. } => "getNamesrvConfig",
            Command::UpdateNamesrvConfig { .. } => "updateNamesrvConfig",
            Command::UpdateKvConfig { .. } => "updateKvConfig",
            Command::DeleteKvConfig { .. } => "deleteKvConfig",
            Command::WipeWritePerm { .. } => "wipeWritePerm",
            Command::AddWritePerm { .. } => "addWritePerm",
            Command::CleanExpiredCq { .. } => "cleanExpiredCQ",
            Command::StatsAll { .. } => "statsAll",
        }
    }

    pub async fn run(self) -> AdminResult<()> {
        match self {
            Command::UpdateTopic { ns, broker, cluster, topic, read_queue_nums, write_queue_nums, perm, order, unit, has_unit_sub, attributes } => {
                if attributes.is_some() {
                    return Err(AdminError::Usage("-a/--attributes: FerroMQ has no topic attributes (5.x message types); leave it out".to_owned()));
                }
                let topic = TopicArgs {
                    topic: topic.trim().to_owned(),
                    read_queue_nums,
                    write_queue_nums,
                    perm,
                    order: java_bool(&order),
                    sys_flag: i32::from(java_bool(&unit)) | (i32::from(java_bool(&has_unit_sub)) << 1),
                };
                update_topic(&Admin::new(&ns), broker.as_deref(), cluster.as_deref(), &topic).await
            }
            Command::DeleteTopic { ns, topic, cluster } => {
                let cluster = cluster.ok_or_else(|| AdminError::Usage("give the cluster to delete the topic from with -c".to_owned()))?;
                delete_topic(&Admin::new(&ns), topic.trim(), cluster.trim()).await
            }
            Command::TopicList { ns, cluster_model } => topic_list(&Admin::new(&ns), cluster_model).await,
            Command::TopicRoute { ns, topic, list } => topic_route(&Admin::new(&ns), topic.trim(), list).await,
            Command::TopicStatus { ns, topic, cluster } => topic_status(&Admin::new(&ns), topic.trim(), cluster.as_deref()).await,
            Command::TopicClusterList { ns, topic } => topic_cluster_list(&Admin::new(&ns), topic.trim()).await,
            Command::UpdateSubGroup { ns, group } => update_sub_group(&Admin::new(&ns), group).await,
            Command::DeleteSubGroup { ns, broker, cluster, group, remove_offset } => {
                delete_sub_group(&Admin::new(&ns), broker.as_deref(), cluster.as_deref(), group.trim(), java_bool(&remove_offset)).await
            }
            Command::ClusterList { ns, more_stats, interval_secs, cluster } => cluster_list(&Admin::new(&ns), more_stats, interval_secs, cluster.as_deref()).await,
            Command::BrokerStatus { ns, broker, cluster } => broker_status(&Admin::new(&ns), broker.as_deref(), cluster.as_deref()).await,
            Command::GetBrokerConfig { ns, broker, cluster } => get_broker_config(&Admin::new(&ns), broker.as_deref(), cluster.as_deref()).await,
            Command::UpdateBrokerConfig { ns, broker, cluster, update_all, key, value } => {
                update_broker_config(&Admin::new(&ns), broker.as_deref(), cluster.as_deref(), update_all.is_some(), key.trim(), value.trim()).await
            }
            Command::GetNamesrvConfig { ns } => get_namesrv_config(&Admin::new(&ns)).await,
            Command::UpdateNamesrvConfig { ns, key, value } => update_namesrv_config(&Admin::new(&ns), ns.namesrv_addr.is_some(), key.trim(), value.trim()).await,
            Command::UpdateKvConfig { ns, namespace, key, value } => {
                let request = RemotingCommand::request(request_code::PUT_KV_CONFIG)
                    .with_ext("namespace", namespace.trim())
                    .with_ext("key", key.trim())
                    .with_ext("value", value.trim());
                Admin::new(&ns).every_namesrv(request).await?;
                println!("create or update kv config to namespace success.");
                Ok(())
            }
            Command::DeleteKvConfig { ns, namespace, key } => {
                let request = RemotingCommand::request(request_code::DELETE_KV_CONFIG).with_ext("namespace", namespace.trim()).with_ext("key", key.trim());
                Admin::new(&ns).every_namesrv(request).await?;
                println!("delete kv config from namespace success.");
                Ok(())
            }
            Command::WipeWritePerm { ns, broker_name } => write_perm(&Admin::new(&ns), broker_name.trim(), false).await,
            Command::AddWritePerm { ns, broker_name } => write_perm(&Admin::new(&ns), broker_name.trim(), true).await,
            Command::CleanExpiredCq { ns, broker, cluster } => clean_expired_cq(&Admin::new(&ns), broker.as_deref(), cluster.as_deref()).await,
            Command::StatsAll { ns, active_topic, topic } => stats_all(&Admin::new(&ns), active_topic, topic.as_deref()).await,
        }
    }
}

/// Java's `Boolean.parseBoolean`: "true" in any case is true, anything else false.
fn java_bool(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case("true")
}

/// What `updateTopic` creates.
struct TopicArgs {
    topic: String,
    read_queue_nums: i32,
    write_queue_nums: i32,
    perm: i32,
    order: bool,
    sys_flag: i32,
}

impl TopicArgs {
    /// Java's `TopicConfig.toString()`.
    fn java_text(&self) -> String {
        format!(
            "TopicConfig [topicName={}, readQueueNums={}, writeQueueNums={}, perm={}, topicFilterType=SINGLE_TAG, topicSysFlag={}, order={}, attributes={{}}]",
            self.topic,
            self.read_queue_nums,
            self.write_queue_nums,
            perm_text(self.perm),
            self.sys_flag,
            self.order
        )
    }

    fn request(&self) -> RemotingCommand {
        RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", &self.topic)
            .with_ext("defaultTopic", "TBW102")
            .with_ext("readQueueNums", self.read_queue_nums)
            .with_ext("writeQueueNums", self.write_queue_nums)
            .with_ext("perm", self.perm)
            .with_ext("topicFilterType", "SINGLE_TAG")
            .with_ext("topicSysFlag", self.sys_flag)
            .with_ext("order", self.order)
    }
}

/// UPDATE_AND_CREATE_TOPIC on one broker (`-b`) or every master of a cluster (`-c`); an order
/// topic also gets its `brokerName:writeQueueNums` entries in the name servers' order-topic KV
/// namespace, as the Java tool writes them.
async fn update_topic(admin: &Admin, broker: Option<&str>, cluster: Option<&str>, topic: &TopicArgs) -> AdminResult<()> {
    if let Some(addr) = broker {
        let addr = addr.trim();
        admin.invoke_ok(addr, topic.request()).await?;
        if topic.order {
            let info = admin.cluster().await?;
            let name = info
                .brokers
                .values()
                .find(|group| group.addrs.values().any(|a| a == addr))
                .map(|group| group.broker_name.clone())
                .ok_or_else(|| AdminError::Other(format!("broker {addr} is not registered with the name server")))?;
            // This broker's entry replaces its old one; other brokers' entries stay.
            let old = kv_value(admin, ORDER_TOPIC_NAMESPACE, &topic.topic).await?;
            let mut entries: Vec<String> = old.iter().flat_map(|v| v.split(';')).filter(|e| !e.is_empty() && e.split(':').next() != Some(name.as_str())).map(str::to_owned).collect();
            let conf = format!("{name}:{}", topic.write_queue_nums);
            entries.push(conf.clone());
            put_kv(admin, ORDER_TOPIC_NAMESPACE, &topic.topic, &entries.join(";")).await?;
            println!("set broker orderConf. isOrder={}, orderConf=[{conf}]", topic.order);
        }
        println!("create topic to {addr} success.");
        println!("{}", topic.java_text());
        return Ok(());
    }
    let Some(cluster) = cluster else {
        return Err(AdminError::Usage("give a broker address with -b or a cluster name with -c".to_owned()));
    };
    let info = admin.cluster().await?;
    let masters = info.masters_of(cluster.trim())?;
    for (_, addr) in &masters {
        admin.invoke_ok(addr, topic.request()).await?;
        println!("create topic to {addr} success.");
    }
    if topic.order {
        let conf: Vec<String> = masters.iter().map(|(name, _)| format!("{name}:{}", topic.write_queue_nums)).collect();
        put_kv(admin, ORDER_TOPIC_NAMESPACE, &topic.topic, &conf.join(";")).await?;
        println!("set cluster orderConf. isOrder={}, orderConf=[{}]", topic.order, conf.join(";"));
    }
    println!("{}", topic.java_text());
    Ok(())
}

/// GET_KV_CONFIG: the value, or `None` when the name server has none.
async fn kv_value(admin: &Admin, namespace: &str, key: &str) -> AdminResult<Option<String>> {
    let request = RemotingCommand::request(request_code::GET_KV_CONFIG).with_ext("namespace", namespace).with_ext("key", key);
    match admin.namesrv(request).await {
        Ok(response) => Ok(response.ext("value").map(str::to_owned)),
        Err(AdminError::Refused { code: ferromq_net::codes::response_code::QUERY_NOT_FOUND, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// PUT_KV_CONFIG on every name server.
async fn put_kv(admin: &Admin, namespace: &str, key: &str, value: &str) -> AdminResult<()> {
    let request = RemotingCommand::request(request_code::PUT_KV_CONFIG).with_ext("namespace", namespace).with_ext("key", key).with_ext("value", value);
    admin.every_namesrv(request).await
}

/// DELETE_TOPIC_IN_BROKER on every master of the cluster, then DELETE_TOPIC_IN_NAMESRV (for
/// that cluster) on every name server, as the Java tool does.
async fn delete_topic(admin: &Admin, topic: &str, cluster: &str) -> AdminResult<()> {
    delete_topic_quietly(admin, topic, cluster).await?;
    println!("delete topic [{topic}] from cluster [{cluster}] success.");
    println!("delete topic [{topic}] from NameServer success.");
    Ok(())
}

async fn delete_topic_quietly(admin: &Admin, topic: &str, cluster: &str) -> AdminResult<()> {
    for addr in admin.brokers_of(None, Some(cluster), false).await? {
        admin.invoke_ok(&addr, RemotingCommand::request(request_code::DELETE_TOPIC_IN_BROKER).with_ext("topic", topic)).await?;
    }
    let request = RemotingCommand::request(request_code::DELETE_TOPIC_IN_NAMESRV).with_ext("topic", topic).with_ext("clusterName", cluster);
    admin.every_namesrv(request).await
}

/// GET_ALL_TOPIC_LIST_FROM_NAMESERVER: one topic per line, or with `-c` Java's table of
/// cluster, topic and consumer group (retry and dead-letter topics left out; a topic nobody
/// consumes gets one line with an empty group).
async fn topic_list(admin: &Admin, cluster_model: bool) -> AdminResult<()> {
    let topics = all_topics(admin).await?;
    if !cluster_model {
        for topic in topics {
            println!("{topic}");
        }
        return Ok(());
    }
    let info = admin.cluster().await?;
    println!("{:<20}  {:<48}  {:<48}", "#Cluster Name", "#Topic", "#Consumer Group");
    for topic in topics {
        if topic.starts_with(RETRY_PREFIX) || topic.starts_with(DLQ_PREFIX) {
            continue;
        }
        // As Java: a topic whose route or consumers cannot be read is listed without them.
        let (cluster, groups) = match admin.route(&topic).await {
            Ok(route) => (topic_cluster(&route, &info).unwrap_or_default(), consumers_of(admin, &topic, &route).await.unwrap_or_default()),
            Err(_) => (String::new(), Vec::new()),
        };
        let groups = if groups.is_empty() { vec![String::new()] } else { groups };
        for group in groups {
            println!("{:<20}  {:<64}  {:<64}", front(&cluster, 20), front(&topic, 64), front(&group, 64));
        }
    }
    Ok(())
}

/// Every topic the name servers know, sorted.
async fn all_topics(admin: &Admin) -> AdminResult<Vec<String>> {
    let response = admin.namesrv(RemotingCommand::request(request_code::GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).await?;
    let body = json_object(&response.body)?;
    let mut topics: Vec<String> = body
        .get("topicList")
        .and_then(Value::as_array)
        .ok_or_else(|| AdminError::BadAnswer("no topicList in the name server's answer".to_owned()))?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    topics.sort();
    Ok(topics)
}

/// The cluster of the route's first broker group (Java's `findTopicBelongToWhichCluster`).
fn topic_cluster(route: &TopicRoute, info: &ClusterInfo) -> Option<String> {
    let name = &route.brokers.first()?.broker_name;
    info.clusters.iter().find(|(_, names)| names.contains(name)).map(|(cluster, _)| cluster.clone())
}

/// QUERY_TOPIC_CONSUME_BY_WHO on the first broker of the route that has an address (as Java:
/// the first answer is the answer), sorted.
async fn consumers_of(admin: &Admin, topic: &str, route: &TopicRoute) -> AdminResult<Vec<String>> {
    let Some(addr) = route.brokers.iter().find_map(|b| b.master().or_else(|| b.addrs.values().next().map(String::as_str))) else {
        return Ok(Vec::new());
    };
    let response = admin.invoke_ok(addr, RemotingCommand::request(request_code::QUERY_TOPIC_CONSUME_BY_WHO).with_ext("topic", topic)).await?;
    let body = json_object(&response.body)?;
    let mut groups: Vec<String> = body.get("groupList").and_then(Value::as_array).map(|g| g.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    groups.sort();
    Ok(groups)
}

/// GET_ROUTEINFO_BY_TOPIC: the route as JSON, or with `-l` Java's table of broker groups.
async fn topic_route(admin: &Admin, topic: &str, list: bool) -> AdminResult<()> {
    let route = admin.route(topic).await?;
    if !list {
        let text = serde_json::to_string_pretty(&route.raw).map_err(|e| AdminError::BadAnswer(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    let line = |a: &str, b: &str, c: &str, d: &str, e: &str, f: &str| println!("{a:<45} {b:<32} {c:<50} {d:<10} {e:<11} {f:<5}");
    line("#ClusterName", "#BrokerName", "#BrokerAddrs", "#ReadQueue", "#WriteQueue", "#Perm");
    let queues: BTreeMap<&str, &crate::common::QueueData> = route.queues.iter().map(|q| (q.broker_name.as_str(), q)).collect();
    let mut brokers: Vec<_> = route.brokers.iter().collect();
    brokers.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let (mut read, mut write) = (0, 0);
    for broker in brokers {
        let Some(q) = queues.get(broker.broker_name.as_str()) else { continue };
        read += q.read_queue_nums;
        write += q.write_queue_nums;
        line(&broker.cluster, &broker.broker_name, &java_map_text(&broker.addrs), &q.read_queue_nums.to_string(), &q.write_queue_nums.to_string(), &q.perm.to_string());
    }
    println!("{}", "-".repeat(158));
    line("Total:", &queues.len().to_string(), "", &read.to_string(), &write.to_string(), "");
    Ok(())
}

/// GET_TOPIC_STATS_INFO on each broker of the topic's route (or, with `-c`, of the cluster's
/// route): Java's table of queues with their offsets and last store time, then the put rate
/// summed over the brokers.
async fn topic_status(admin: &Admin, topic: &str, cluster: Option<&str>) -> AdminResult<()> {
    let route = admin.route(cluster.map(str::trim).unwrap_or(topic)).await?;
    // (brokerName, queueId) → (min, max, last update).
    let mut queues = QueueOffsets::new();
    let mut tps = 0.0;
    for broker in &route.brokers {
        let Some(addr) = broker.master().or_else(|| broker.addrs.values().next().map(String::as_str)) else { continue };
        let response = admin.invoke_ok(addr, RemotingCommand::request(request_code::GET_TOPIC_STATS_INFO).with_ext("topic", topic)).await?;
        let (table, put_tps) = parse_topic_stats(&response.body)?;
        queues.extend(table);
        tps += put_tps;
    }
    println!("{:<32}  {:<4}  {:<20}  {:<20}    #Last Updated", "#Broker Name", "#QID", "#Min Offset", "#Max Offset");
    for ((broker, queue_id), (min, max, last)) in &queues {
        let when = if *last > 0 { human_time_ms(*last) } else { String::new() };
        println!("{:<32}  {:<4}  {:<20}  {:<20}    {when}", front(broker, 32), queue_id, min, max);
    }
    println!();
    println!("Topic Put TPS: {}", java_double(tps));
    Ok(())
}

/// (brokerName, queueId) → (min offset, max offset, last store time in ms).
type QueueOffsets = BTreeMap<(String, i64), (i64, i64, i64)>;

/// A TopicStatsTable body: its offset table by (brokerName, queueId), and `topicPutTps`.
fn parse_topic_stats(body: &[u8]) -> AdminResult<(QueueOffsets, f64)> {
    let (rows, rest) = queue_table(body, "offsetTable")?;
    let table = rows
        .into_iter()
        .map(|(queue, figures)| {
            let num = |k: &str| figures.get(k).and_then(Value::as_i64).unwrap_or_default();
            ((queue.broker_name, queue.queue_id), (num("minOffset"), num("maxOffset"), num("lastUpdateTimestamp")))
        })
        .collect();
    Ok((table, rest.get("topicPutTps").and_then(Value::as_f64).unwrap_or_default()))
}

/// The clusters holding the topic's first broker group (Java's `getTopicClusterList`).
async fn topic_cluster_list(admin: &Admin, topic: &str) -> AdminResult<()> {
    let info = admin.cluster().await?;
    let route = admin.route(topic).await?;
    let name = &route.brokers.first().ok_or_else(|| AdminError::Other(format!("topic '{topic}' has no broker in its route")))?.broker_name;
    for (cluster, _) in info.clusters.iter().filter(|(_, names)| names.contains(name)) {
        println!("{cluster}");
    }
    Ok(())
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP with the Java tool's defaults (not broadcast, not from
/// the min offset) and the options given.
async fn update_sub_group(admin: &Admin, args: SubGroupArgs) -> AdminResult<()> {
    if args.attributes.is_some() {
        return Err(AdminError::Usage("--attributes: FerroMQ has no subscription-group attributes; leave it out".to_owned()));
    }
    let flag = |v: &Option<String>, default: bool| v.as_deref().map_or(default, java_bool);
    let retry_policy = match &args.group_retry_policy {
        Some(text) => Some(serde_json::from_str::<Value>(text.trim()).map_err(|e| AdminError::Usage(format!("-p: not a JSON retry policy: {e}")))?),
        None => None,
    };
    let group = args.group.trim().to_owned();
    let mut config = serde_json::Map::new();
    config.insert("groupName".into(), group.clone().into());
    config.insert("consumeEnable".into(), flag(&args.consume_enable, true).into());
    config.insert("consumeFromMinEnable".into(), flag(&args.consume_from_min_enable, false).into());
    config.insert("consumeBroadcastEnable".into(), flag(&args.consume_broadcast_enable, false).into());
    config.insert("consumeMessageOrderly".into(), flag(&args.consume_message_orderly, false).into());
    config.insert("retryQueueNums".into(), args.retry_queue_nums.unwrap_or(1).into());
    config.insert("retryMaxTimes".into(), args.retry_max_times.unwrap_or(16).into());
    config.insert("brokerId".into(), args.broker_id.unwrap_or(0).into());
    config.insert("whichBrokerWhenConsumeSlowly".into(), args.which_broker_when_consume_slowly.unwrap_or(1).into());
    config.insert("notifyConsumerIdsChangedEnable".into(), flag(&args.notify_consumer_ids_changed, true).into());
    config.insert("groupSysFlag".into(), 0.into());
    config.insert("consumeTimeoutMinute".into(), 15.into());
    if let Some(policy) = &retry_policy {
        config.insert("groupRetryPolicy".into(), policy.clone());
    }
    let body = serde_json::to_vec(&config).map_err(|e| AdminError::Other(e.to_string()))?;
    let request = RemotingCommand::request(request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(body);
    let targets = admin.brokers_of(args.broker.as_deref(), args.cluster.as_deref(), false).await?;
    for addr in &targets {
        admin.invoke_ok(addr, request.clone()).await?;
        println!("create subscription group to {addr} success.");
    }
    // Java's `SubscriptionGroupConfig.toString()` (Guava's toStringHelper).
    let b = |k: &str| config.get(k).map(Value::to_string).unwrap_or_default();
    let policy = match &retry_policy {
        Some(p) => p.to_string(),
        None => "GroupRetryPolicy{type=CUSTOMIZED, exponentialRetryPolicy=null, customizedRetryPolicy=null}".to_owned(),
    };
    println!(
        "SubscriptionGroupConfig{{groupName={group}, consumeEnable={}, consumeFromMinEnable={}, consumeBroadcastEnable={}, consumeMessageOrderly={}, retryQueueNums={}, retryMaxTimes={}, groupRetryPolicy={policy}, brokerId={}, whichBrokerWhenConsumeSlowly={}, notifyConsumerIdsChangedEnable={}, groupSysFlag=0, consumeTimeoutMinute=15, subscriptionDataSet=null, attributes={{}}}}",
        b("consumeEnable"),
        b("consumeFromMinEnable"),
        b("consumeBroadcastEnable"),
        b("consumeMessageOrderly"),
        b("retryQueueNums"),
        b("retryMaxTimes"),
        b("brokerId"),
        b("whichBrokerWhenConsumeSlowly"),
        b("notifyConsumerIdsChangedEnable"),
    );
    Ok(())
}

/// DELETE_SUBSCRIPTIONGROUP on one broker, or on every master of a cluster followed by the
/// group's retry and dead-letter topics (as the Java tool does with `-c`).
async fn delete_sub_group(admin: &Admin, broker: Option<&str>, cluster: Option<&str>, group: &str, remove_offset: bool) -> AdminResult<()> {
    let request = RemotingCommand::request(request_code::DELETE_SUBSCRIPTIONGROUP).with_ext("groupName", group).with_ext("cleanOffset", remove_offset);
    if let Some(addr) = broker {
        admin.invoke_ok(addr.trim(), request).await?;
        println!("delete subscription group [{group}] from broker [{}] success.", addr.trim());
        return Ok(());
    }
    let Some(cluster) = cluster.map(str::trim) else {
        return Err(AdminError::Usage("give a broker address with -b or a cluster name with -c".to_owned()));
    };
    for addr in admin.brokers_of(None, Some(cluster), false).await? {
        admin.invoke_ok(&addr, request.clone()).await?;
        println!("delete subscription group [{group}] from broker [{addr}] in cluster [{cluster}] success.");
    }
    delete_topic_quietly(admin, &format!("{RETRY_PREFIX}{group}"), cluster).await?;
    delete_topic_quietly(admin, &format!("{DLQ_PREFIX}{group}"), cluster).await
}

/// GET_BROKER_RUNTIME_INFO's table.
async fn runtime_info(admin: &Admin, addr: &str) -> AdminResult<BTreeMap<String, String>> {
    let response = admin.invoke_ok(addr, RemotingCommand::request(request_code::GET_BROKER_RUNTIME_INFO)).await?;
    let body = json_object(&response.body)?;
    let table = body.get("table").and_then(Value::as_object).ok_or_else(|| AdminError::BadAnswer(format!("{addr}: no table in the runtime info")))?;
    Ok(table.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
}

/// The cluster table, each broker's runtime figures in Java's layout; with `-i` again every
/// that many seconds, until interrupted.
async fn cluster_list(admin: &Admin, more_stats: bool, interval_secs: Option<u64>, cluster: Option<&str>) -> AdminResult<()> {
    loop {
        let info = admin.cluster().await?;
        let clusters: Vec<String> = match cluster {
            Some(c) => vec![c.trim().to_owned()],
            None => info.clusters.keys().cloned().collect(),
        };
        if more_stats {
            print_cluster_more_stats(admin, &info, &clusters).await;
        } else {
            print_cluster_base(admin, &info, &clusters).await;
        }
        match interval_secs {
            Some(secs) => compio::time::sleep(Duration::from_secs(secs.max(1))).await,
            None => return Ok(()),
        }
    }
}

/// Every (cluster, broker name, broker id, address) of `clusters`, in Java's order.
fn cluster_members<'a>(info: &'a ClusterInfo, clusters: &'a [String]) -> impl Iterator<Item = (&'a str, &'a str, u64, &'a str)> {
    clusters.iter().flat_map(move |cluster| {
        info.clusters.get(cluster).into_iter().flatten().filter_map(|name| info.brokers.get(name)).flat_map(move |group| {
            group.addrs.iter().map(move |(id, addr)| (cluster.as_str(), group.broker_name.as_str(), *id, addr.as_str()))
        })
    })
}

async fn print_cluster_base(admin: &Admin, info: &ClusterInfo, clusters: &[String]) {
    println!(
        "{:<22}  {:<22}  {:<4}  {:<22} {:<16}  {:>16}  {:>30}  {:<22}  {:<11}  {:<12}  {:<8}  {:<10}",
        "#Cluster Name", "#Broker Name", "#BID", "#Addr", "#Version", "#InTPS(LOAD)", "#OutTPS(LOAD)", "#Timer(Progress)", "#PCWait(ms)", "#Hour", "#SPACE", "#ACTIVATED"
    );
    let now_ms = ferromq_store::store::now_ms();
    for (cluster, name, id, addr) in cluster_members(info, clusters) {
        // As Java: a broker whose figures cannot be read is listed with empty ones.
        let t = match runtime_info(admin, addr).await {
            Ok(table) => table,
            Err(e) => {
                eprintln!("mqadmin: clusterList: {addr}: {e}");
                BTreeMap::new()
            }
        };
        let get = |k: &str| t.get(k).cloned().unwrap_or_default();
        let first_f64 = |k: &str| get(k).split(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let num = |k: &str| get(k).parse::<f64>().unwrap_or(0.0);
        let (in_tps, out_tps) = (first_f64("putTps"), first_f64("getTransferredTps"));
        let ack = |k: &str| t.get(k).cloned().unwrap_or_else(|| "N".to_owned());
        let hour = get("earliestMessageTimeStamp").parse::<i64>().map_or(0.0, |ts| (now_ms - ts) as f64 / 1000.0 / 60.0 / 60.0);
        println!(
            "{:<22}  {:<22}  {:<4}  {:<22} {:<16}  {:>16}  {:>30}  {:<22}  {:>11}  {:<12}  {:<8}  {:>10}",
            cluster,
            name,
            id,
            addr,
            get("brokerVersionDesc"),
            format!("{in_tps:9.2}({},{}ms)", get("sendThreadPoolQueueSize"), get("sendThreadPoolQueueHeadWaitTimeMills")),
            format!(
                "{out_tps:9.2}({},{}ms|{},{}ms)",
                get("pullThreadPoolQueueSize"),
                get("pullThreadPoolQueueHeadWaitTimeMills"),
                ack("ackThreadPoolQueueSize"),
                ack("ackThreadPoolQueueHeadWaitTimeMills")
            ),
            format!(
                "{}-{}({:.1}w, {:.1}, {:.1})",
                num("timerReadBehind") as i64,
                num("timerOffsetBehind") as i64,
                num("timerCongestNum") / 10000.0,
                num("timerEnqueueTps"),
                num("timerDequeueTps")
            ),
            get("pageCacheLockTimeMills"),
            format!("{hour:2.2}"),
            format!("{:.4}", num("commitLogDiskRatio")),
            get("brokerActive") == "true",
        );
    }
}

async fn print_cluster_more_stats(admin: &Admin, info: &ClusterInfo, clusters: &[String]) {
    println!("{:<16}  {:<32} {:>14} {:>14} {:>14} {:>14}", "#Cluster Name", "#Broker Name", "#InTotalYest", "#OutTotalYest", "#InTotalToday", "#OutTotalToday");
    for (cluster, name, _, addr) in cluster_members(info, clusters) {
        let t = runtime_info(admin, addr).await.unwrap_or_default();
        let n = |k: &str| t.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        println!(
            "{:<16}  {:<32} {:>14} {:>14} {:>14} {:>14}",
            cluster,
            name,
            n("msgPutTotalTodayMorning") - n("msgPutTotalYesterdayMorning"),
            n("msgGetTotalTodayMorning") - n("msgGetTotalYesterdayMorning"),
            n("msgPutTotalTodayNow") - n("msgPutTotalTodayMorning"),
            n("msgGetTotalTodayNow") - n("msgGetTotalTodayMorning"),
        );
    }
}

/// GET_BROKER_RUNTIME_INFO, sorted by key; with `-c` every broker of the cluster (masters and
/// slaves), each line prefixed with its address.
async fn broker_status(admin: &Admin, broker: Option<&str>, cluster: Option<&str>) -> AdminResult<()> {
    let prefixed = broker.is_none();
    for addr in admin.brokers_of(broker, cluster, true).await? {
        for (key, value) in runtime_info(admin, &addr).await? {
            if prefixed {
                println!("{addr:<24} {key:<32}: {value}");
            } else {
                println!("{key:<32}: {value}");
            }
        }
    }
    Ok(())
}

/// GET_BROKER_CONFIG of one broker, or of every master of a cluster followed by its slaves.
async fn get_broker_config(admin: &Admin, broker: Option<&str>, cluster: Option<&str>) -> AdminResult<()> {
    if let Some(addr) = broker {
        return print_broker_config(admin, &format!("============{}============", addr.trim()), addr.trim()).await;
    }
    let Some(cluster) = cluster.map(str::trim) else {
        return Err(AdminError::Usage("give a broker address with -b or a cluster name with -c".to_owned()));
    };
    let info = admin.cluster().await?;
    let names = info.clusters.get(cluster).ok_or_else(|| AdminError::Other(format!("cluster '{cluster}' is not registered with the name server")))?;
    for group in names.iter().filter_map(|name| info.brokers.get(name)) {
        let Some(master) = group.master() else { continue };
        print_broker_config(admin, &format!("============Master: {master}============"), master).await?;
        for (_, slave) in group.addrs.iter().filter(|(id, _)| **id != 0) {
            print_broker_config(admin, &format!("============My Master: {master}=====Slave: {slave}============"), slave).await?;
        }
    }
    Ok(())
}

async fn print_broker_config(admin: &Admin, title: &str, addr: &str) -> AdminResult<()> {
    let response = admin.invoke_ok(addr, RemotingCommand::request(request_code::GET_BROKER_CONFIG)).await?;
    println!("{title}");
    for (key, value) in properties_in_order(&response.body)? {
        println!("{key:<50}=  {value}");
    }
    println!();
    Ok(())
}

/// UPDATE_BROKER_CONFIG with one `key=value`, on one broker or on a cluster's masters (and
/// slaves with `-a`). Every broker is tried; the first refusal is the error.
async fn update_broker_config(admin: &Admin, broker: Option<&str>, cluster: Option<&str>, all: bool, key: &str, value: &str) -> AdminResult<()> {
    let body = format!("{}={}\n", escape_property(key), escape_property(value));
    let request = RemotingCommand::request(request_code::UPDATE_BROKER_CONFIG).with_body(body.into_bytes());
    let mut failure = None;
    for addr in admin.brokers_of(broker, cluster, all).await? {
        match admin.invoke_ok(&addr, request.clone()).await {
            Ok(_) => println!("update broker config success, {addr}"),
            // Every broker is tried; the first failure is the error line, the others are said too.
            Err(e) if broker.is_none() => match &failure {
                None => failure = Some(e),
                Some(_) => eprintln!("mqadmin: updateBrokerConfig: {e}"),
            },
            Err(e) => return Err(e),
        }
    }
    failure.map_or(Ok(()), Err)
}

/// A key or value for a properties body (`\`, line breaks, and in keys `=` `:` and spaces,
/// escaped as `java.util.Properties` reads them).
fn escape_property(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '=' | ':' | ' ' | '#' | '!' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out
}

/// GET_NAMESRV_CONFIG of every name server given.
async fn get_namesrv_config(admin: &Admin) -> AdminResult<()> {
    if admin.namesrv_addrs().is_empty() {
        return Err(AdminError::Usage("no name server: give -n host:port or set NAMESRV_ADDR".to_owned()));
    }
    for addr in admin.namesrv_addrs() {
        let response = admin.invoke_ok(addr, RemotingCommand::request(request_code::GET_NAMESRV_CONFIG)).await?;
        println!("============{addr}============");
        for (key, value) in properties_in_order(&response.body)? {
            println!("{key:<50}=  {value}");
        }
    }
    Ok(())
}

/// UPDATE_NAMESRV_CONFIG with one `key=value` on every name server.
async fn update_namesrv_config(admin: &Admin, from_flag: bool, key: &str, value: &str) -> AdminResult<()> {
    let body = format!("{}={}\n", escape_property(key), escape_property(value));
    admin.every_namesrv(RemotingCommand::request(request_code::UPDATE_NAMESRV_CONFIG).with_body(body.into_bytes())).await?;
    // Java prints the `-n` list as a Java List, and nothing when the address came from the
    // environment.
    let servers = if from_flag { format!("[{}]", admin.namesrv_addrs().join(", ")) } else { String::new() };
    println!("update name server config success!{servers}\n{key} : {value}");
    Ok(())
}

/// WIPE_WRITE_PERM_OF_BROKER / ADD_WRITE_PERM_OF_BROKER on every name server: one line each,
/// OK with the number of topics changed, or Failed (and then the first failure is the error).
async fn write_perm(admin: &Admin, broker_name: &str, add: bool) -> AdminResult<()> {
    if admin.namesrv_addrs().is_empty() {
        return Err(AdminError::Usage("no name server: give -n host:port or set NAMESRV_ADDR".to_owned()));
    }
    let (code, count_key, verb) = if add {
        (request_code::ADD_WRITE_PERM_OF_BROKER, "addTopicCount", "add")
    } else {
        (request_code::WIPE_WRITE_PERM_OF_BROKER, "wipeTopicCount", "wipe")
    };
    let mut failure = None;
    for addr in admin.namesrv_addrs() {
        match admin.invoke_ok(addr, RemotingCommand::request(code).with_ext("brokerName", broker_name)).await {
            Ok(response) => {
                let count = response.ext(count_key).unwrap_or("0");
                println!("{verb} write perm of broker[{broker_name}] in name server[{addr}] OK, {count}");
            }
            Err(e) => {
                println!("{verb} write perm of broker[{broker_name}] in name server[{addr}] Failed");
                failure.get_or_insert(e);
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// CLEAN_EXPIRED_CONSUMEQUEUE on one broker, a cluster's masters, or every cluster's masters
/// (slaves follow their master's queues and refuse it).
async fn clean_expired_cq(admin: &Admin, broker: Option<&str>, cluster: Option<&str>) -> AdminResult<()> {
    let targets = match (broker, cluster) {
        (None, None) => {
            let info = admin.cluster().await?;
            let mut all = Vec::new();
            for cluster in info.clusters.keys() {
                all.extend(info.masters_of(cluster)?.into_iter().map(|(_, addr)| addr));
            }
            all
        }
        _ => admin.brokers_of(broker, cluster, false).await?,
    };
    // Only Java's line is printed; each broker logs how many queues it removed
    // (`cleanedQueues` in its answer).
    for addr in targets {
        admin.invoke_ok(&addr, RemotingCommand::request(request_code::CLEAN_EXPIRED_CONSUMEQUEUE)).await?;
    }
    println!("success");
    Ok(())
}

/// Java's `statsAll`: per topic (retry and dead-letter topics left out) and consumer group,
/// the backlog, the put and pull rates of the last minute and the messages of the last day.
async fn stats_all(admin: &Admin, active_only: bool, only_topic: Option<&str>) -> AdminResult<()> {
    let topics = all_topics(admin).await?;
    println!("{:<64}  {:<64} {:>12} {:>11} {:>11} {:>14} {:>14}", "#Topic", "#Consumer Group", "#Accumulation", "#InTPS", "#OutTPS", "#InMsg24Hour", "#OutMsg24Hour");
    for topic in topics {
        if topic.starts_with(RETRY_PREFIX) || topic.starts_with(DLQ_PREFIX) || only_topic.is_some_and(|t| !t.is_empty() && t != topic) {
            continue;
        }
        // As Java: a topic whose figures cannot be read is skipped.
        if let Err(e) = print_topic_stats(admin, &topic, active_only).await {
            eprintln!("mqadmin: statsAll: {topic}: {e}");
        }
    }
    Ok(())
}

async fn print_topic_stats(admin: &Admin, topic: &str, active_only: bool) -> AdminResult<()> {
    let route = admin.route(topic).await?;
    let groups = consumers_of(admin, topic, &route).await?;
    let masters: Vec<String> = route.masters().into_iter().map(|(_, addr)| addr).collect();
    let (mut in_tps, mut in_day) = (0.0, 0i64);
    for addr in &masters {
        if let Ok((tps, day)) = broker_stats(admin, addr, "TOPIC_PUT_NUMS", topic).await {
            in_tps += tps;
            in_day += day;
        }
    }
    if groups.is_empty() {
        if !active_only || in_day > 0 {
            println!("{:<64}  {:<64} {:>12} {:>11.2} {:>11} {:>14} {:>14}", front(topic, 64), "", 0, in_tps, "", in_day, "NO_CONSUMER");
        }
        return Ok(());
    }
    for group in groups {
        let (mut out_tps, mut out_day) = (0.0, 0i64);
        for addr in &masters {
            if let Ok((tps, day)) = broker_stats(admin, addr, "GROUP_GET_NUMS", &format!("{topic}@{group}")).await {
                out_tps += tps;
                out_day += day;
            }
        }
        let mut backlog = 0i64;
        for addr in &masters {
            let request = RemotingCommand::request(request_code::GET_CONSUME_STATS).with_ext("consumerGroup", &group).with_ext("topic", topic);
            if let Ok(response) = admin.invoke_ok(addr, request).await {
                backlog += consume_backlog(&response.body)?;
            }
        }
        if !active_only || in_day > 0 || out_day > 0 {
            println!(
                "{:<64}  {:<64} {:>12} {:>11.2} {:>11.2} {:>14} {:>14}",
                front(topic, 64),
                front(&group, 64),
                backlog.max(0),
                in_tps,
                out_tps,
                in_day,
                out_day
            );
        }
    }
    Ok(())
}

/// VIEW_BROKER_STATS_DATA: the last minute's rate and the messages of the last day (Java's
/// `compute24HourSum`: the day's sum, else the hour's, else the minute's — FerroMQ answers no
/// hour or day figure for a group's pulls).
async fn broker_stats(admin: &Admin, addr: &str, name: &str, key: &str) -> AdminResult<(f64, i64)> {
    let request = RemotingCommand::request(request_code::VIEW_BROKER_STATS_DATA).with_ext("statsName", name).with_ext("statsKey", key);
    let body = json_object(&admin.invoke_ok(addr, request).await?.body)?;
    let field = |window: &str, k: &str| body.get(window).and_then(|w| w.get(k)).and_then(Value::as_f64);
    let tps = field("statsMinute", "tps").unwrap_or(0.0);
    let day = ["statsDay", "statsHour", "statsMinute"].iter().filter_map(|w| field(w, "sum")).find(|sum| *sum != 0.0).unwrap_or(0.0);
    Ok((tps, day as i64))
}

/// ConsumeStats' `computeTotalDiff`: the sum over queues of brokerOffset − consumerOffset.
fn consume_backlog(body: &[u8]) -> AdminResult<i64> {
    let (rows, _) = queue_table(body, "offsetTable")?;
    Ok(rows
        .values()
        .map(|q| q.get("brokerOffset").and_then(Value::as_i64).unwrap_or(0) - q.get("consumerOffset").and_then(Value::as_i64).unwrap_or(0))
        .sum())
}
