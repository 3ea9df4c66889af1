//! Topics, groups, clusters, brokers, name servers and configuration: every metadata
//! subcommand of `mqadmin` against a live broker (and its embedded name server), checked by the
//! values it prints. Two brokers in all: one for topics and groups, one for configuration.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::{AdminOutput, BrokerProcess, mqadmin, on_compio};

/// One request to `addr`, its response.
fn raw(addr: SocketAddr, request: RemotingCommand) -> RemotingCommand {
    on_compio(move || async move {
        let client = Client::connect(addr, Duration::from_secs(5)).await.expect("connect");
        client.invoke(request, Duration::from_secs(10)).await.expect("answer")
    })
}

/// Runs `mqadmin` until `done` accepts its output (routes and offsets reach the name server
/// and the control plane a moment after the change), failing after 20 s.
fn until(namesrv: SocketAddr, args: &[&str], done: impl Fn(&AdminOutput) -> bool) -> AdminOutput {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = mqadmin(Some(namesrv), args);
        if done(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "mqadmin {args:?} never printed what was expected: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A failure: exit status 1 and exactly one line on stderr, naming the subcommand and `what`.
fn assert_one_line_error(out: &AdminOutput, subcommand: &str, what: &str) {
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.starts_with(&format!("mqadmin: {subcommand}: ")) && out.stderr.contains(what), "{out:?}");
}

/// The whitespace-separated fields of the first line of `text` that contains `needle`.
fn row<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}")).split_whitespace().collect()
}

/// The address the broker registers (brokerIP1 127.0.0.1, its listen port).
fn advertised(broker: &BrokerProcess) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], broker.process.addr.port()))
}

fn send(addr: SocketAddr, topic: &str, queues: u32, queue_id: u32) -> RemotingCommand {
    raw(addr, ferromq_tests::send_v2_request("admin-pg", topic, queues, queue_id, "", b"body".to_vec()))
}

#[test]
fn topics_and_groups_are_created_routed_listed_and_deleted() {
    let broker = BrokerProcess::start(&[]).expect("broker");
    let (ns, addr) = (broker.namesrv, advertised(&broker));
    let addr_text = addr.to_string();

    // clusterList: the broker, its address, id 0 and ACTIVATED true.
    let clusters = mqadmin(Some(ns), &["clusterList"]).ok();
    assert!(clusters.starts_with("#Cluster Name"), "{clusters}");
    let fields = row(&clusters, &addr_text);
    assert_eq!((fields[0], fields[2], fields[3], *fields.last().unwrap()), ("DefaultCluster", "0", addr_text.as_str(), "true"), "{clusters}");
    let broker_name = fields[1].to_owned();
    let more = mqadmin(Some(ns), &["clusterList", "-m", "-c", "DefaultCluster"]).ok();
    assert_eq!(row(&more, &broker_name)[..2], ["DefaultCluster", broker_name.as_str()], "{more}");

    // updateTopic -c: created on every master, Java's lines.
    let created = mqadmin(Some(ns), &["updateTopic", "-c", "DefaultCluster", "-t", "AdminTopic", "-r", "3", "-w", "3"]).ok();
    assert_eq!(
        created.lines().collect::<Vec<_>>(),
        [
            format!("create topic to {addr_text} success."),
            "TopicConfig [topicName=AdminTopic, readQueueNums=3, writeQueueNums=3, perm=RW-, topicFilterType=SINGLE_TAG, topicSysFlag=0, order=false, attributes={}]".to_owned()
        ]
    );
    // topicRoute: routed to this broker with its queues, as JSON and as a table.
    let route = until(ns, &["topicRoute", "-t", "AdminTopic"], |o| o.code == Some(0)).stdout;
    let route: serde_json::Value = serde_json::from_str(&route).expect("topicRoute prints JSON");
    assert_eq!(route["brokerDatas"][0]["brokerAddrs"]["0"], addr_text.as_str(), "{route}");
    assert_eq!((route["queueDatas"][0]["readQueueNums"].as_i64(), route["queueDatas"][0]["perm"].as_i64()), (Some(3), Some(6)), "{route}");
    let listed = mqadmin(Some(ns), &["topicRoute", "-t", "AdminTopic", "-l"]).ok();
    assert_eq!(row(&listed, &broker_name), ["DefaultCluster", broker_name.as_str(), &format!("{{0={addr_text}}}"), "3", "3", "6"], "{listed}");
    assert_eq!(row(&listed, "Total:"), ["Total:", "1", "3", "3"], "{listed}");
    assert_eq!(mqadmin(Some(ns), &["topicClusterList", "-t", "AdminTopic"]).ok(), "DefaultCluster\n");
    assert!(mqadmin(Some(ns), &["topicList"]).ok().lines().any(|l| l == "AdminTopic"));

    // topicStatus: every queue with its offsets; the queue written to has a store time.
    for _ in 0..2 {
        assert_eq!(send(addr, "AdminTopic", 3, 1).code, response_code::SUCCESS);
    }
    // A SEND_OK precedes the consume-queue entry (dispatch is asynchronous): wait for both.
    let queue_row = |status: &str| -> Vec<String> {
        status
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .find(|f| f.first() == Some(&broker_name) && f.get(1).map(String::as_str) == Some("1"))
            .unwrap_or_default()
    };
    let status = until(ns, &["topicStatus", "-t", "AdminTopic"], |out| queue_row(&out.stdout).get(3).map(String::as_str) == Some("2")).ok();
    assert_eq!(status.lines().filter(|l| l.starts_with(&broker_name)).count(), 3, "{status}");
    let queue_1 = queue_row(&status);
    let queue_1: Vec<&str> = queue_1.iter().map(String::as_str).collect();
    assert_eq!(queue_1[..4], [broker_name.as_str(), "1", "0", "2"], "{status}");
    assert!(queue_1.get(4).is_some_and(|date| date.len() == 10 && date.starts_with("20")), "a last-updated time: {status}");
    assert!(status.lines().any(|l| l.starts_with("Topic Put TPS: ")), "{status}");

    // A group that committed an offset consumes the topic: topicList -c and statsAll say so.
    let commit = RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "AdminGroup")
        .with_ext("topic", "AdminTopic")
        .with_ext("queueId", 1)
        .with_ext("commitOffset", 1);
    assert_eq!(raw(addr, commit).code, response_code::SUCCESS);
    let with_clusters = until(ns, &["topicList", "-c"], |o| o.stdout.lines().any(|l| l.contains("AdminTopic") && l.contains("AdminGroup")));
    assert_eq!(row(&with_clusters.stdout, "AdminGroup"), ["DefaultCluster", "AdminTopic", "AdminGroup"]);
    assert!(with_clusters.stdout.starts_with("#Cluster Name"), "{with_clusters:?}");
    let stats = mqadmin(Some(ns), &["statsAll", "-t", "AdminTopic"]).ok();
    // Backlog 1 (2 stored, 1 committed), 2 messages in today, none pulled.
    // InTPS: 2 messages over the last minute.
    assert_eq!(row(&stats, "AdminGroup"), ["AdminTopic", "AdminGroup", "1", "0.03", "0.00", "2", "0"], "{stats}");
    assert_eq!(stats.lines().count(), 2, "only the selected topic: {stats}");

    // updateSubGroup -b: the group exists with the values given; deleteSubGroup -c removes it
    // and its retry topic.
    let group = mqadmin(Some(ns), &["updateSubGroup", "-b", &addr_text, "-g", "AdminSub", "-r", "5", "-q", "2"]).ok();
    assert!(group.starts_with(&format!("create subscription group to {addr_text} success.\nSubscriptionGroupConfig{{groupName=AdminSub, ")), "{group}");
    let groups = |addr| -> serde_json::Value {
        let table = raw(addr, RemotingCommand::request(request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG));
        serde_json::from_slice::<serde_json::Value>(&table.body).expect("groups JSON")["subscriptionGroupTable"].clone()
    };
    let table = groups(addr);
    assert_eq!((table["AdminSub"]["retryMaxTimes"].as_i64(), table["AdminSub"]["retryQueueNums"].as_i64()), (Some(5), Some(2)), "{table}");
    assert_eq!(table["AdminSub"]["consumeBroadcastEnable"], false, "the Java tool's default: {table}");
    let deleted = mqadmin(Some(ns), &["deleteSubGroup", "-c", "DefaultCluster", "-g", "AdminSub"]).ok();
    assert_eq!(deleted, format!("delete subscription group [AdminSub] from broker [{addr_text}] in cluster [DefaultCluster] success.\n"));
    assert!(groups(addr).get("AdminSub").is_none());

    // deleteTopic: gone from the broker and the name server; asking for its route is one
    // line and exit 1.
    let gone = mqadmin(Some(ns), &["deleteTopic", "-c", "DefaultCluster", "-t", "AdminTopic"]).ok();
    assert_eq!(gone, "delete topic [AdminTopic] from cluster [DefaultCluster] success.\ndelete topic [AdminTopic] from NameServer success.\n");
    assert_one_line_error(&mqadmin(Some(ns), &["topicRoute", "-t", "AdminTopic"]), "topicRoute", "TOPIC_NOT_EXIST");
    assert_one_line_error(&mqadmin(Some(ns), &["topicStatus", "-t", "AdminTopic"]), "topicStatus", "AdminTopic");

    // Usage errors are one line too.
    assert_one_line_error(&mqadmin(Some(ns), &["updateTopic", "-t", "NoTarget"]), "updateTopic", "-b");
    assert_one_line_error(&mqadmin(Some(ns), &["updateTopic", "-c", "NoSuchCluster", "-t", "X"]), "updateTopic", "NoSuchCluster");
    assert_one_line_error(&mqadmin(None, &["topicList"]), "topicList", "no name server");
}

#[test]
fn broker_and_name_server_configuration_is_read_changed_and_kept() {
    let mut broker = BrokerProcess::start(&[]).expect("broker");
    let (ns, addr) = (broker.namesrv, advertised(&broker));
    let addr_text = addr.to_string();
    let permission = |ns| {
        let config = mqadmin(Some(ns), &["getBrokerConfig", "-c", "DefaultCluster"]).ok();
        assert!(config.starts_with(&format!("============Master: {addr_text}============\n")), "{config}");
        row(&config, "brokerPermission ")[2].to_owned()
    };
    assert_eq!(permission(ns), "6");
    assert_eq!(row(&mqadmin(Some(ns), &["brokerStatus", "-b", &addr_text]).ok(), "brokerActive "), ["brokerActive", ":", "true"]);
    assert_eq!(row(&mqadmin(Some(ns), &["brokerStatus", "-c", "DefaultCluster"]).ok(), "brokerActive "), [addr_text.as_str(), "brokerActive", ":", "true"]);
    assert_eq!(send(addr, "ConfigTopic", 4, 0).code, response_code::SUCCESS);
    let broker_name = row(&mqadmin(Some(ns), &["clusterList"]).ok(), &addr_text)[1].to_owned();

    // wipeWritePerm: the name server's route no longer lets clients write; addWritePerm
    // gives it back.
    let perm_in_route = |ns| row(&until(ns, &["topicRoute", "-t", "ConfigTopic", "-l"], |o| o.code == Some(0)).stdout, &broker_name)[5].to_owned();
    // The registration that carried the new topic has reached the name server (a later one
    // with a new topic-table version would rebuild the route, wiping undone, as in Java).
    assert_eq!(perm_in_route(ns), "6");
    let wiped = mqadmin(Some(ns), &["wipeWritePerm", "-b", &broker_name]).ok();
    assert!(wiped.starts_with(&format!("wipe write perm of broker[{broker_name}] in name server[{ns}] OK, ")), "{wiped}");
    assert_eq!(perm_in_route(ns), "4");
    let added = mqadmin(Some(ns), &["addWritePerm", "-b", &broker_name]).ok();
    assert!(added.starts_with(&format!("add write perm of broker[{broker_name}] in name server[{ns}] OK, ")), "{added}");
    assert_eq!(perm_in_route(ns), "6");

    // updateBrokerConfig brokerPermission=4: the broker refuses sends at once, registers the
    // read-only permission, and keeps it across a restart.
    assert_eq!(mqadmin(Some(ns), &["updateBrokerConfig", "-b", &addr_text, "-k", "brokerPermission", "-v", "4"]).ok(), format!("update broker config success, {addr_text}\n"));
    assert_eq!(send(addr, "ConfigTopic", 4, 0).code, response_code::NO_PERMISSION);
    assert_eq!(permission(ns), "4");
    until(ns, &["topicRoute", "-t", "ConfigTopic", "-l"], |o| o.stdout.lines().any(|l| l.contains(&broker_name) && l.split_whitespace().nth(5) == Some("4")));
    broker.terminate();
    broker.restart().expect("restart");
    let ns = broker.namesrv;
    assert_eq!(permission(ns), "4", "kept across the restart");
    assert_eq!(send(addr, "ConfigTopic", 4, 0).code, response_code::NO_PERMISSION);
    assert_eq!(mqadmin(Some(ns), &["updateBrokerConfig", "-c", "DefaultCluster", "-k", "brokerPermission", "-v", "6"]).ok(), format!("update broker config success, {addr_text}\n"));
    assert_eq!(send(addr, "ConfigTopic", 4, 0).code, response_code::SUCCESS);
    // A key that cannot change while the broker runs, or an unknown one: one line naming it.
    assert_one_line_error(&mqadmin(Some(ns), &["updateBrokerConfig", "-b", &addr_text, "-k", "listenPort", "-v", "1"]), "updateBrokerConfig", "\"listenPort\" cannot be changed");
    assert_one_line_error(&mqadmin(Some(ns), &["updateBrokerConfig", "-c", "DefaultCluster", "-k", "noSuchKey", "-v", "1"]), "updateBrokerConfig", "unknown configuration key \"noSuchKey\"");

    // updateNamesrvConfig: applied at once (the topic list is refused), shown by
    // getNamesrvConfig, refused for a key fixed at start.
    let namesrv_value = |ns, key: &str| row(&mqadmin(Some(ns), &["getNamesrvConfig"]).ok(), &format!("{key} "))[2].to_owned();
    let changed = mqadmin(Some(ns), &["updateNamesrvConfig", "-k", "enableAllTopicList", "-v", "false"]).ok();
    assert_eq!(changed, format!("update name server config success![{ns}]\nenableAllTopicList : false\n"));
    assert_eq!(namesrv_value(ns, "enableAllTopicList"), "false");
    assert_one_line_error(&mqadmin(Some(ns), &["topicList"]), "topicList", "disable");
    mqadmin(Some(ns), &["updateNamesrvConfig", "-k", "enableAllTopicList", "-v", "true"]).ok();
    assert!(mqadmin(Some(ns), &["topicList"]).ok().lines().any(|l| l == "ConfigTopic"));
    assert_one_line_error(&mqadmin(Some(ns), &["updateNamesrvConfig", "-k", "listenPort", "-v", "1"]), "updateNamesrvConfig", "\"listenPort\" cannot be changed");

    // updateKvConfig / deleteKvConfig: the name server holds the value, then does not.
    let kv = |ns| raw(ns, RemotingCommand::request(request_code::GET_KV_CONFIG).with_ext("namespace", "AdminNs").with_ext("key", "k1"));
    assert_eq!(mqadmin(Some(ns), &["updateKvConfig", "-s", "AdminNs", "-k", "k1", "-v", "v1"]).ok(), "create or update kv config to namespace success.\n");
    assert_eq!(kv(ns).ext("value"), Some("v1"));
    assert_eq!(mqadmin(Some(ns), &["deleteKvConfig", "-s", "AdminNs", "-k", "k1"]).ok(), "delete kv config from namespace success.\n");
    assert_eq!(kv(ns).code, response_code::QUERY_NOT_FOUND);

    // cleanExpiredCQ: nothing to clean on a broker whose queues all belong to topics; the two
    // messages stored in queue 0 stay.
    let queue_0_max = |ns| {
        let status = mqadmin(Some(ns), &["topicStatus", "-t", "ConfigTopic"]).ok();
        status.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|f| f.get(1) == Some(&"0")).map(|f| f[3].to_owned()).unwrap_or_default()
    };
    assert_eq!(queue_0_max(ns), "2");
    assert_eq!(mqadmin(Some(ns), &["cleanExpiredCQ", "-c", "DefaultCluster"]).ok(), "success\n");
    assert_eq!(mqadmin(Some(ns), &["cleanExpiredCQ"]).ok(), "success\n");
    assert_eq!(queue_0_max(ns), "2");
}
