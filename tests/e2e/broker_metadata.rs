//! Metadata growth and persistence against a real `mqbroker` (issue 10, item 7):
//!
//! 1. `maxAutoCreatedSubscriptionGroups`: heartbeats naming one group more than the limit
//!    create the first ones (group, retry topic, route) and not the last, whose pulls get
//!    SUBSCRIPTION_GROUP_NOT_EXIST; after a restart the loaded groups still count.
//! 2. Batched persistence: 2,000 topics created by UPDATE_AND_CREATE_TOPIC, pipelined on a few
//!    connections, all answered after their write, in far fewer file writes than topics; all
//!    survive a restart. Prints the time taken and the writes (no timing assert).
//! 3. Journaled persistence: 3,000 topics created one at a time (each answer awaited), then
//!    kill -9 and restart: all there; after a clean stop `topics.json` alone holds them all.
//!    Prints the time per creation (no timing assert).
//! 4. The metadata writer's retry: with injected write failures, an admin change is answered
//!    only once a retry succeeded, and survives kill -9.
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
        // Every answer came after its write: the file or its journal already holds every topic.
        let on_disk = ferromq_tests::persisted_metadata(&broker.store.path().join("config"), "topics.json");
        for name in &names {
            assert!(on_disk["topicConfigTable"][name]["topicName"] == name.as_str(), "{name} answered before it was written");
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

/// Creates `names` one at a time on one connection (each answer awaited before the next
/// request, as scripts and mqadmin do); prints the time per creation of every `report_every`.
fn create_sequentially(addr: SocketAddr, names: Vec<String>, report_every: usize) -> Duration {
    on_compio(move || async move {
        let client = Client::connect(addr, RPC_TIMEOUT).await.expect("connect");
        let started = Instant::now();
        let mut block = Instant::now();
        for (i, name) in names.iter().enumerate() {
            let answer = client.invoke(create_topic(name), RPC_TIMEOUT).await.expect("a response");
            assert_eq!(answer.code, response_code::SUCCESS, "{answer:?}");
            if (i + 1) % report_every == 0 {
                println!("  creations {}..{}: {:.2} ms each", i + 1 - report_every, i + 1, block.elapsed().as_secs_f64() * 1000.0 / report_every as f64);
                block = Instant::now();
            }
        }
        client.close();
        started.elapsed()
    })
}

#[test]
fn thousands_of_topics_created_one_at_a_time_are_journaled_and_survive_kill_and_restart() {
    // FERROMQ_TEST_METADATA_PRELOAD topics are created pipelined first (to measure at a given
    // table size), then FERROMQ_TEST_METADATA_SEQUENTIAL one at a time.
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (preload, sequential) = (env("FERROMQ_TEST_METADATA_PRELOAD", 0), env("FERROMQ_TEST_METADATA_SEQUENTIAL", 3000));
    let mut broker = BrokerProcess::start(&[]).expect("broker");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let addr = broker_addr(&broker);
        let preloaded: Vec<String> = (0..preload).map(|i| format!("MetaPre_{i:06}")).collect();
        for chunk in preloaded.chunks(500) {
            for answer in pipelined(addr, chunk.iter().map(|t| create_topic(t)).collect()) {
                assert_eq!(answer.code, response_code::SUCCESS, "{answer:?}");
            }
        }
        let names: Vec<String> = (0..sequential).map(|i| format!("MetaSeq_{i:06}")).collect();
        let writes_before = metadata_file_writes(addr);
        let elapsed = create_sequentially(addr, names.clone(), sequential.div_ceil(10).max(1));
        let writes = metadata_file_writes(addr) - writes_before;
        println!(
            "{sequential} topics created one at a time after {preload} in {:.3} s ({:.3} ms each), {writes} metadata file writes",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / sequential.max(1) as f64
        );

        // Every answered creation is on disk (file + journal) before the kill.
        let on_disk = ferromq_tests::persisted_metadata(&broker.store.path().join("config"), "topics.json");
        for name in &names {
            assert!(on_disk["topicConfigTable"][name]["topicName"] == name.as_str(), "{name} answered before it was written");
        }
        // kill -9: every answered creation is durable.
        broker.kill_and_restart().expect("restart after kill -9");
        let all_topics = |broker: &BrokerProcess| -> serde_json::Value {
            let all = rpc(broker_addr(broker), RemotingCommand::request(request_code::GET_ALL_TOPIC_CONFIG));
            assert_eq!(all.code, response_code::SUCCESS);
            serde_json::from_slice(&all.body).expect("JSON")
        };
        let body = all_topics(&broker);
        for name in preloaded.iter().chain(&names) {
            assert!(body["topicConfigTable"].get(name).is_some(), "{name} lost by kill -9");
        }

        // A clean stop leaves every topic in topics.json itself, in Java's format.
        assert!(broker.terminate().success());
        let file = config_file(&broker, "topics.json");
        for name in preloaded.iter().chain(&names) {
            assert!(file["topicConfigTable"][name]["topicName"] == name.as_str(), "{name} missing from topics.json after a clean stop");
        }
        broker.restart().expect("clean restart");
        let body = all_topics(&broker);
        for name in preloaded.iter().chain(&names) {
            assert!(body["topicConfigTable"].get(name).is_some(), "{name} lost by a clean restart");
        }
    }));
    print_log_on_panic(&broker, result);
}

#[test]
fn a_failed_metadata_write_is_retried_and_the_admin_answer_waits_for_the_retry() {
    // The writer's fault seam: its first two file writes fail (the journal append, then the
    // whole-file retry); the third, one WRITE_RETRY_PAUSE (1 s) later again, succeeds.
    let env = [("FERROMQ_TEST_METADATA_WRITE_FAILURES", "2")];
    let mut broker = BrokerProcess::start_in_with_env(ferromq_tests::TempDir::new("broker"), &[], &env).expect("broker");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let addr = broker_addr(&broker);
        let started = Instant::now();
        let answer = rpc(addr, create_topic("MetaRetried"));
        let waited = started.elapsed();
        assert_eq!(answer.code, response_code::SUCCESS, "{answer:?}");
        assert!(waited >= Duration::from_millis(1900), "answered after {waited:?}: before the retries succeeded");
        let failures = broker.process.log().iter().filter(|l| l.contains("cannot persist") && l.contains("topics.json")).count();
        assert_eq!(failures, 2, "two failed writes logged");
        // Answered only once durable: the retry rewrote the whole file.
        assert!(config_file(&broker, "topics.json")["topicConfigTable"].get("MetaRetried").is_some());
        // Writes work normally afterwards (journal appends), and nothing is lost by kill -9.
        assert_eq!(rpc(addr, create_topic("MetaAfterRetry")).code, response_code::SUCCESS);
        broker.kill_and_restart().expect("restart after kill -9");
        let all = rpc(broker_addr(&broker), RemotingCommand::request(request_code::GET_ALL_TOPIC_CONFIG));
        let body: serde_json::Value = serde_json::from_slice(&all.body).expect("JSON");
        for name in ["MetaRetried", "MetaAfterRetry"] {
            assert!(body["topicConfigTable"].get(name).is_some(), "{name} lost");
        }
    }));
    print_log_on_panic(&broker, result);
}
