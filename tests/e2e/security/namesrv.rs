//! A name server only brokers can change (issue 12, beyond Java): a standalone `mqnamesrv` with
//! `aclEnable=true` accepts the registrations of a broker that signs them with an admin
//! account of its `plain_acl.yml` (`accessKey`/`secretKey`), serves routes to a client nobody
//! here wrote (`rocketmq-client-rust` 1.0.0, unsigned), and refuses an unsigned impostor's
//! REGISTER_BROKER and WIPE_WRITE_PERM_OF_BROKER, the routes unchanged. Runs on the backend
//! chosen by `FERROMQ_IO_BACKEND`.

use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::{BrokerProcess, FakeTopic, ServerProcess, TempDir, on_compio, register_broker_request, start_namesrv};
use rocketmq_client_rust::{ClientRuntime, ClientRuntimeConfig, DefaultMQProducer, TelemetryHandle};
use rocketmq_model::common::message::message_single::Message;
use rocketmq_runtime::RuntimeOwner;

const TIMEOUT: Duration = Duration::from_secs(10);
const TOPIC: &str = "AclRoutedTopic";
const BROKER: &str = "broker-acl";
const ACL: &str = "accounts:\n  - accessKey: broker-admin\n    secretKey: broker-admin-secret\n    admin: true\n";

/// Prints a process's log if the test panics while it is in scope.
struct PrintLogOnPanic<'a>(&'a ServerProcess, &'static str);

impl Drop for PrintLogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("======== {} log ========\n{}", self.1, self.0.log().join("\n"));
        }
    }
}

/// One request to `addr` from an unsigned client.
fn call(addr: std::net::SocketAddr, request: RemotingCommand) -> RemotingCommand {
    call_signed(addr, request, None)
}

/// One request to `addr`, signed by `credentials` when given.
fn call_signed(addr: std::net::SocketAddr, request: RemotingCommand, credentials: Option<ferromq_net::acl::Credentials>) -> RemotingCommand {
    on_compio(move || async move {
        let client = Client::connect(addr, TIMEOUT).await.unwrap_or_else(|e| panic!("connect {addr}: {e}")).signed_by(credentials);
        let response = client.invoke(request, TIMEOUT).await.unwrap_or_else(|e| panic!("invoke on {addr}: {e}"));
        client.close();
        response
    })
}

/// The topic's route as the name server answers it: (broker address of id 0, queue perm).
fn route(namesrv: std::net::SocketAddr) -> Option<(String, i64)> {
    let mut request = RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", TOPIC);
    request.version = 479;
    let r = call(namesrv, request);
    if r.code != response_code::SUCCESS {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&r.body).expect("route JSON");
    let addr = json["brokerDatas"][0]["brokerAddrs"]["0"].as_str()?.to_owned();
    Some((addr, json["queueDatas"][0]["perm"].as_i64()?))
}

fn refused_by_acl(r: &RemotingCommand) {
    assert_eq!(r.code, response_code::SYSTEM_ERROR, "{r:?}");
    let remark = r.remark.as_deref().unwrap_or_default();
    assert!(remark.contains("AclException") && remark.contains("No accessKey"), "{remark}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_signed_admin_broker_changes_a_name_server_with_acl_on() {
    let dir = TempDir::new("namesrv-acl");
    let acl_file = dir.path().join("plain_acl.yml");
    std::fs::write(&acl_file, ACL).unwrap();
    let properties = dir.path().join("namesrv.properties");
    std::fs::write(&properties, format!("aclEnable=true\nrocketmq.acl.plain.file={}\n", acl_file.display())).unwrap();
    let (namesrv, _namesrv_dir) = start_namesrv(&["-c", properties.to_str().unwrap()], &[]).expect("mqnamesrv");
    let _namesrv_log = PrintLogOnPanic(&namesrv, "namesrv");
    let ns = namesrv.addr.to_string();
    let broker = BrokerProcess::start(&[
        ("namesrvAddr", ns.as_str()),
        ("brokerName", BROKER),
        ("shards", "1"),
        ("accessKey", "broker-admin"),
        ("secretKey", "broker-admin-secret"),
    ])
    .expect("mqbroker");
    let _broker_log = PrintLogOnPanic(&broker.process, "broker");
    let broker_addr = format!("127.0.0.1:{}", broker.process.addr.port());

    // The broker's topic reaches the name server through its signed registrations.
    assert_eq!(call(broker.process.addr, ferromq_tests::create_topic_request(TOPIC, 4)).code, response_code::SUCCESS);
    let deadline = Instant::now() + Duration::from_secs(15);
    while route(namesrv.addr).is_none() {
        assert!(Instant::now() < deadline, "the broker's topic never reached the name server");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(route(namesrv.addr), Some((broker_addr.clone(), 6)));

    // A client nobody here wrote finds the broker through that name server, unsigned.
    let owner = RuntimeOwner::new().expect("runtime owner");
    let runtime = ClientRuntime::try_new(owner.root_context().component("e2e"), ClientRuntimeConfig::default(), TelemetryHandle::default())
        .expect("client runtime");
    let mut producer = DefaultMQProducer::builder(runtime.clone()).producer_group("acl_ns_producer").name_server_addr(ns.as_str()).build();
    producer.start().await.expect("producer start");
    let message = Message::builder().topic(TOPIC).body_slice(b"routed by a guarded name server").build_unchecked();
    let sent = producer.send_with_timeout(message, 10_000).await.expect("send").expect("a send result");
    assert!(sent.offset_msg_id.is_some(), "{sent:?}");

    // An unsigned impostor taking the broker's name at another address: refused.
    let topics = [FakeTopic { name: TOPIC.into(), read_queues: 4, write_queues: 4 }, FakeTopic { name: "Other".into(), read_queues: 1, write_queues: 1 }];
    refused_by_acl(&call(namesrv.addr, register_broker_request("DefaultCluster", BROKER, "127.0.0.1:1", &topics)));
    // Its attempt to stop the broker's writes: refused.
    refused_by_acl(&call(namesrv.addr, RemotingCommand::request(request_code::WIPE_WRITE_PERM_OF_BROKER).with_ext("brokerName", BROKER)));
    assert_eq!(route(namesrv.addr), Some((broker_addr, 6)), "the route still names the real broker, writable");
    assert!(
        namesrv.log().iter().any(|l| l.contains("ACL refused a request") && l.contains("code=103") && l.contains("peer=127.0.0.1")),
        "the refusal is logged with code and peer"
    );

    producer.shutdown().await;
    let _ = runtime.shutdown().await;
    let _ = owner.shutdown_tasks().await;
}

/// The embedded name server (no `namesrvAddr`) follows the broker's `aclEnable` and file: the
/// broker's own signed registrations pass, an unsigned one does not.
#[test]
fn the_embedded_name_server_follows_the_brokers_acl() {
    let dir = TempDir::new("embedded-acl");
    let acl_file = dir.path().join("plain_acl.yml");
    std::fs::write(&acl_file, ACL).unwrap();
    let file = acl_file.to_str().unwrap();
    let broker = BrokerProcess::start(&[
        ("shards", "1"),
        ("brokerName", BROKER),
        ("aclEnable", "true"),
        ("rocketmq.acl.plain.file", file),
        ("accessKey", "broker-admin"),
        ("secretKey", "broker-admin-secret"),
    ])
    .expect("mqbroker");
    let _broker_log = PrintLogOnPanic(&broker.process, "broker");
    let admin = Some(ferromq_net::acl::Credentials::new("broker-admin", "broker-admin-secret"));
    assert_eq!(call_signed(broker.process.addr, ferromq_tests::create_topic_request(TOPIC, 4), admin).code, response_code::SUCCESS);
    let broker_addr = format!("127.0.0.1:{}", broker.process.addr.port());
    let deadline = Instant::now() + Duration::from_secs(15);
    while route(broker.namesrv).is_none() {
        assert!(Instant::now() < deadline, "the broker's topic never reached its embedded name server");
        std::thread::sleep(Duration::from_millis(100));
    }
    let topics = [FakeTopic { name: TOPIC.into(), read_queues: 4, write_queues: 4 }, FakeTopic { name: "Other".into(), read_queues: 1, write_queues: 1 }];
    refused_by_acl(&call(broker.namesrv, register_broker_request("DefaultCluster", BROKER, "127.0.0.1:1", &topics)));
    assert_eq!(route(broker.namesrv), Some((broker_addr, 6)));
}
