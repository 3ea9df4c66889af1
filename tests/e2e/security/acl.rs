//! `aclEnable=true` with a `plain_acl.yml` of three accounts: an admin, a producer that may
//! only publish to topic A, and a consumer that may only consume A in group G.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::acl::Credentials;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::{BrokerProcess, TempDir, create_topic_request, on_compio, pull_request, send_v2_request};
use rocketmq_client_rust::{
    AclClientRPCHook, ClientResult, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently, SessionCredentials, TelemetryHandle,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_runtime::RuntimeOwner;

const ADMIN: (&str, &str) = ("admin-ak", "admin-secret");
const PRODUCER: (&str, &str) = ("producer-ak", "producer-secret");
const CONSUMER: (&str, &str) = ("consumer-ak", "consumer-secret");

fn rules(producer_topics: &str) -> String {
    format!(
        "accounts:\n\
         \x20 - accessKey: {}\n    secretKey: {}\n    admin: true\n\
         \x20 - accessKey: {}\n    secretKey: {}\n    defaultTopicPerm: DENY\n    defaultGroupPerm: DENY\n    topicPerms:\n{producer_topics}\
         \x20 - accessKey: {}\n    secretKey: {}\n    defaultTopicPerm: DENY\n    defaultGroupPerm: DENY\n    topicPerms:\n      - AclA=SUB\n    groupPerms:\n      - AclG=SUB\n",
        ADMIN.0, ADMIN.1, PRODUCER.0, PRODUCER.1, CONSUMER.0, CONSUMER.1
    )
}

/// Writes the rules file so that its watcher sees a new content (a temporary file renamed
/// over it, as editors do).
fn write_rules(path: &Path, text: &str) {
    let tmp = path.with_extension("edit");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Collect(Arc<Mutex<Vec<Vec<u8>>>>);

impl MessageListenerConcurrently for Collect {
    fn consume_message(&self, messages: &[&MessageExt], _: &ConsumeConcurrentlyContext) -> ClientResult<ConsumeConcurrentlyStatus> {
        let mut seen = self.0.lock().unwrap();
        for message in messages {
            seen.push(message.body().map(|b| b.to_vec()).unwrap_or_default());
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

fn hook(account: (&str, &str)) -> Arc<AclClientRPCHook> {
    Arc::new(AclClientRPCHook::new(SessionCredentials::with_keys(account.0, account.1)))
}

fn message(topic: &str, body: &[u8]) -> Message {
    Message::builder().topic(topic).body_slice(body).build_unchecked()
}

/// Sends `request` to the broker, signed by `account` if given, and returns the answer.
fn call(broker: &BrokerProcess, request: RemotingCommand, account: Option<(&str, &str)>) -> RemotingCommand {
    let addr = broker.process.addr;
    let credentials = account.map(|(ak, sk)| Credentials::new(ak, sk));
    on_compio(move || async move {
        let client = Client::connect(addr, Duration::from_secs(5)).await.unwrap().signed_by(credentials);
        client.invoke(request, Duration::from_secs(10)).await.unwrap()
    })
}

fn assert_refused(response: &RemotingCommand, why: &str) {
    assert_eq!(response.code, response_code::SYSTEM_ERROR, "{response:?}");
    let remark = response.remark.clone().unwrap_or_default();
    assert!(remark.contains("AclException") && remark.contains(why), "remark {remark:?} lacks {why:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_accounts_get_exactly_what_plain_acl_yml_gives_them() {
    let dir = TempDir::new("acl");
    let file = dir.path().join("plain_acl.yml");
    write_rules(&file, &rules("      - AclA=PUB\n"));
    let path = file.display().to_string();
    // The broker signs its own registrations (its embedded name server may check them).
    let broker = BrokerProcess::start(&[
        ("aclEnable", "true"),
        ("rocketmq.acl.plain.file", path.as_str()),
        ("accessKey", ADMIN.0),
        ("secretKey", ADMIN.1),
    ])
    .unwrap();
    let namesrv = broker.namesrv.to_string();
    let owner = RuntimeOwner::new().expect("runtime owner");
    let runtime = ClientRuntime::try_new(owner.root_context().component("acl"), ClientRuntimeConfig::default(), TelemetryHandle::default())
        .expect("client runtime");

    // The admin creates the topics; the others cannot.
    for topic in ["AclA", "AclB"] {
        assert_refused(&call(&broker, create_topic_request(topic, 4), Some(PRODUCER)), "Need admin permission for request code=17");
        assert_eq!(call(&broker, create_topic_request(topic, 4), Some(ADMIN)).code, response_code::SUCCESS);
    }

    // The producer account publishes to A, and is refused on B.
    let mut producer =
        DefaultMQProducer::builder(runtime.clone()).producer_group("acl_producer").name_server_addr(namesrv.as_str()).rpc_hook(hook(PRODUCER)).build();
    producer.start().await.expect("producer start");
    let bodies: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    for body in &bodies {
        producer.send_with_timeout(message("AclA", body), 10_000).await.expect("send to A").expect("a send result");
    }
    let on_b = producer.send_with_timeout(message("AclB", b"no"), 10_000).await;
    assert!(on_b.is_err(), "a send to B must be refused: {on_b:?}");

    // The consumer account consumes A in G, byte-identical.
    let received = Arc::new(Mutex::new(Vec::new()));
    let mut consumer = DefaultMQPushConsumer::builder(runtime.clone())
        .consumer_group("AclG")
        .name_server_addr(namesrv.as_str())
        .rpc_hook(Some(hook(CONSUMER)))
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer.subscribe("AclA", "*").await.expect("subscribe");
    consumer.register_message_listener_concurrently(Collect(received.clone()));
    consumer.start().await.expect("consumer start");
    crate::common::route_into_consumer(&broker, &mut consumer, "AclA", Duration::from_secs(20), "the producer account sent to it").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.lock().unwrap().len() < bodies.len() {
        assert!(Instant::now() < deadline, "consumed {} of {}; broker log:\n{}", received.lock().unwrap().len(), bodies.len(), broker.process.log().join("\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut got = received.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, bodies);
    consumer.shutdown().await;

    // The consumer account may not send, nor consume in another group.
    let mut consumer_sending =
        DefaultMQProducer::builder(runtime.clone()).producer_group("acl_wrong").name_server_addr(namesrv.as_str()).rpc_hook(hook(CONSUMER)).build();
    consumer_sending.start().await.expect("producer start");
    assert!(consumer_sending.send_with_timeout(message("AclA", b"no"), 10_000).await.is_err(), "the consumer account must not send");
    consumer_sending.shutdown().await;
    assert_refused(&call(&broker, pull_request("OtherGroup", "AclA", 0, 0), Some(CONSUMER)), "No default permission for group=OtherGroup");
    assert_eq!(call(&broker, pull_request("AclG", "AclA", 0, 0), Some(CONSUMER)).code, response_code::SUCCESS);

    // A wrong secret, a missing signature, and a captured request replayed with a field altered.
    let send = || send_v2_request("acl_producer", "AclA", 4, 0, "", b"raw".to_vec());
    assert_refused(&call(&broker, send(), Some((PRODUCER.0, "guessed-secret"))), "Check signature failed");
    assert_refused(&call(&broker, send(), None), "No accessKey is configured");
    let mut unsigned = send().with_ext("AccessKey", PRODUCER.0);
    unsigned.ext_fields.retain(|k, _| k != "Signature");
    assert_refused(&call(&broker, unsigned, None), "Check signature failed");
    let mut captured = send();
    Credentials::new(PRODUCER.0, PRODUCER.1).sign(&mut captured);
    assert_eq!(call(&broker, captured.clone(), None).code, response_code::SUCCESS, "the captured request itself passes");
    let replayed = captured.with_ext("e", 1);
    assert_refused(&call(&broker, replayed, None), "Check signature failed");

    // Only the admin deletes topics.
    let delete = || RemotingCommand::request(request_code::DELETE_TOPIC_IN_BROKER).with_ext("topic", "AclB");
    assert_refused(&call(&broker, delete(), Some(PRODUCER)), "Need admin permission");
    assert_eq!(call(&broker, delete(), Some(ADMIN)).code, response_code::SUCCESS);
    assert_eq!(call(&broker, create_topic_request("AclB", 4), Some(ADMIN)).code, response_code::SUCCESS);

    // Editing the file changes the rules within seconds, without a restart.
    write_rules(&file, &rules("      - AclA=PUB\n      - AclB=PUB\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match producer.send_with_timeout(message("AclB", b"now allowed"), 10_000).await {
            Ok(Some(_)) => break,
            other => assert!(Instant::now() < deadline, "the edited rules were not applied: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(broker.process.log().iter().any(|l| l.contains("ACL refused a request") && l.contains(PRODUCER.0)), "refusals are logged with the account");

    producer.shutdown().await;
    let _ = runtime.shutdown().await;
    let _ = owner.shutdown_tasks().await;
    let _ = owner.shutdown_background();
}
