//! Metadata growth and persistence against a real `mqbroker` (issue 10, item 7):
//!
//! 1. `maxAutoCreatedSubscriptionGroups`: heartbeats naming one group more than the limit
//!    create the first ones (group, retry topic, route) and not the last, whose pulls get
//!    SUBSCRIPTION_GROUP_NOT_EXIST; after a restart the loaded groups still count.
//! 2. Batched persistence: 2,000 topics created by UPDATE_AND_CREATE_TOPIC, pipelined on a few
//!    connections, all answered after their write, in far fewer file writes than topics; all
//!    survive a restart. Prints the time taken and the writes (no timing assert).
//!
//! Both run on the backend FERROMQ_IO_BACKEND picks (run them with io_uring and with epoll).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::{BrokerProcess, on_compio};

const RPC_TIMEOUT: Duration = Duration::from_secs(30);


/// Requests on one connection, all in flight at once; their responses in order.
fn pipelined(addr: SocketAddr, requests: Vec<RemotingCommand>) -> Vec<RemotingCommand> {
    on_compio(move || async move {
        let client = Client::connect(addr, RPC_TIMEOUT).await.expect("connect");
        let responses = futures_util::future::join_all(requests.into_iter().map(|r| client.invoke(r, RPC_TIMEOUT))).await;
        client.close();
        responses.into_iter().map(|r| r.expect("a response")).collect()
    })
}

fn rpc(addr: SocketAddr, request: RemotingCommand) -> RemotingCommand {
    pipelined(addr, vec![request]).remove(0)
}

fn broker_addr(broker: &BrokerProcess) -> SocketAddr {
    broker.process.addr
}

fn heartbeat(group: &str, topic: &str) -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"meta-client@{group}","consumerDataSet":[{{"groupName":"{group}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{{"topic":"{topic}","subString":"*","tagsSet":[],"codeSet":[],"subVersion":0,"expressionType":"TAG"}}],"unitMode":false}}],"producerDataSet":[]}}"#
    );
    RemotingCommand::request(request_code::HEART_BEAT).with_body(body.into_bytes())
}

fn pull(group: &str, topic: &str) -> RemotingCommand {
    [
        ("consumerGroup", group),
        ("topic", topic),
        ("queueId", "0"),
        ("queueOffset", "0"),
        ("maxMsgNums", "32"),
        ("sysFlag", "4"),
        ("commitOffset", "0"),
        ("suspendTimeoutMillis", "0"),
        ("subscription", "*"),
    ]
    .iter()
    .fold(RemotingCommand::request(request_code::PULL_MESSAGE), |r, (k, v)| r.with_ext(k, v))
}

fn create_topic(topic: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("readQueueNums", "1")
        .with_ext("writeQueueNums", "1")
        .with_ext("perm", "6")
}

fn route_found(namesrv: SocketAddr, topic: &str) -> bool {
    rpc(namesrv, RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic)).code == response_code::SUCCESS
}

fn config_file(broker: &BrokerProcess, name: &str) -> serde_json::Value {
    let bytes = std::fs::read(broker.store.path().join("config").join(name)).expect(name);
    serde_json::from_slice(&bytes).expect("JSON")
}

/// `ferromqMetadataFileWrites` of GET_BROKER_RUNTIME_INFO.
fn metadata_file_writes(addr: SocketAddr) -> u64 {
    let info = rpc(addr, RemotingCommand::request(request_code::GET_BROKER_RUNTIME_INFO));
    assert_eq!(info.code, response_code::SUCCESS, "{info:?}");
    let body: serde_json::Value = serde_json::from_slice(&info.body).expect("runtime info JSON");
    body["table"]["ferromqMetadataFileWrites"].as_str().expect("ferromqMetadataFileWrites").parse().expect("a count")
}

fn print_log_on_panic(broker: &BrokerProcess, result: std::thread::Result<()>) {
    if let Err(panic) = result {
        eprintln!("--- broker log ---\n{}", broker.process.log().join("\n"));
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn heartbeats_beyond_the_group_limit_create_nothing_and_the_count_survives_a_restart() {
    const LIMIT: usize = 5;
    let mut broker = BrokerProcess::start(&[("maxAutoCreatedSubscriptionGroups", "5")]).expect("broker");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let addr = broker_addr(&broker);
        let groups: Vec<String> = (0..=LIMIT).map(|i| format!("meta_group_{i}")).collect();
        for group in &groups {
            let answer = rpc(addr, heartbeat(group, "MetaTopic"));
            assert_eq!(answer.code, response_code::SUCCESS, "{answer:?}");
        }
        let last = &groups[LIMIT];
        let refused = rpc(addr, pull(last, "%RETRY%meta_group_0"));
        assert_eq!(refused.code, response_code::SUBSCRIPTION_GROUP_NOT_EXIST, "{refused:?}");
        assert!(refused.remark.as_deref().unwrap_or("").contains("maxAutoCreatedSubscriptionGroups=5"), "{refused:?}");
        // Routes: the created groups' retry topics are registered, the refused one's is not.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !route_found(broker.namesrv, &format!("%RETRY%{}", groups[LIMIT - 1])) {
            assert!(Instant::now() < deadline, "the retry topics were never registered");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!route_found(broker.namesrv, &format!("%RETRY%{last}")));

        // Files after a clean stop: the first LIMIT groups and their retry topics only.
        assert!(broker.terminate().success());
        let file = config_file(&broker, "subscriptionGroup.json");
        let topics = config_file(&broker, "topics.json");
        for group in &groups[..LIMIT] {
            assert!(file["subscriptionGroupTable"].get(group).is_some(), "{group} missing: {file}");
            assert!(topics["topicConfigTable"].get(format!("%RETRY%{group}")).is_some(), "retry topic of {group} missing");
        }
        assert!(file["subscriptionGroupTable"].get(last).is_none(), "{last} was created: {file}");
        assert!(topics["topicConfigTable"].get(format!("%RETRY%{last}")).is_none());

        // After a restart the loaded groups count: still no room.
        broker.restart().expect("restart");
        let addr = broker_addr(&broker);
        assert_eq!(rpc(addr, heartbeat("meta_group_late", "MetaTopic")).code, response_code::SUCCESS);
        assert_eq!(rpc(addr, pull("meta_group_late", "%RETRY%meta_group_0")).code, response_code::SUBSCRIPTION_GROUP_NOT_EXIST);
        let served = rpc(addr, pull(&groups[0], "%RETRY%meta_group_0"));
        assert_ne!(served.code, response_code::SUBSCRIPTION_GROUP_NOT_EXIST, "{served:?}");
        assert!(broker.process.log().iter().any(|l| l.contains("WARN") && l.contains("maxAutoCreatedSubscriptionGroups")), "no WARN line");
    }));
    print_log_on_panic(&broker, result);
}

#[test]
fn thousands_of_pipelined_topic_creations_are_written_in_batches_and_survive_a_restart() {
    // FERROMQ_TEST_METADATA_TOPICS measures other counts (e.g. 20000); 500 requests in flight
    // per connection stay under maxInFlightRequestsPerConnection (1024).
    let topics: usize = std::env::var("FERROMQ_TEST_METADATA_TOPICS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let connections = topics.div_ceil(500);
    let mut broker = BrokerProcess::start(&[]).expect("broker");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let addr = broker_addr(&broker);
        let writes_before = metadata_file_writes(addr);
        let names: Vec<String> = (0..topics).map(|i| format!("MetaBatch_{i:05}")).collect();
        let started = Instant::now();
        let workers: Vec<_> = names
            .chunks(500)
            .map(|chunk| {
                let requests: Vec<RemotingCommand> = chunk.iter().map(|t| create_topic(t)).collect();
                std::thread::spawn(move || pipelined(addr, requests))
            })
            .collect();
        for worker in workers {
            for answer in worker.join().expect("worker") {
                assert_eq!(answer.code, response_code::SUCCESS, "{answer:?}");
            }
        }
        let elapsed = started.elapsed();
        let writes = metadata_file_writes(addr) - writes_before;
        println!(
            "{topics} topics created on {connections} pipelined connections in {:.3} s with {writes} metadata file writes (backend {})",
            elapsed.as_secs_f64(),
            std::env::var("FERROMQ_IO_BACKEND").unwrap_or_else(|_| "auto".into())
        );
        assert!(writes < topics as u64, "{writes} file writes for {topics} topics: not batched");
        // Every answer came after its write: the file already holds every topic.
        let file = config_file(&broker, "topics.json");
        for name in &names {
            assert!(file["topicConfigTable"].get(name).is_some(), "{name} answered before it was written");
        }

        assert!(broker.terminate().success());
        broker.restart().expect("restart");
        let all = rpc(broker_addr(&broker), RemotingCommand::request(request_code::GET_ALL_TOPIC_CONFIG));
        assert_eq!(all.code, response_code::SUCCESS);
        let body: serde_json::Value = serde_json::from_slice(&all.body).expect("JSON");
        for name in &names {
            assert!(body["topicConfigTable"].get(name).is_some(), "{name} lost by the restart");
        }
    }));
    print_log_on_panic(&broker, result);
}
