//! The broker end to end with a client nobody here wrote: `rocketmq-client-rust` 1.0.0
//! producers and push consumers against a real `mqbroker` process (embedded name server).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_tests::BrokerProcess;
use rocketmq_client_rust::{
    ClientResult, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQProducer,
    DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently, TelemetryHandle,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_runtime::RuntimeOwner;

// The helpers the messaging-semantics tests share (tests/e2e/semantics); one is used here.
#[allow(dead_code)]
#[path = "semantics/common.rs"]
mod common;

/// What a consumer saw: message key → (tags, body).
type Received = Arc<Mutex<BTreeMap<String, (String, Vec<u8>)>>>;

struct Collect(Received);

impl MessageListenerConcurrently for Collect {
    fn consume_message(&self, messages: &[&MessageExt], _: &ConsumeConcurrentlyContext) -> ClientResult<ConsumeConcurrentlyStatus> {
        let mut seen = self.0.lock().unwrap();
        for message in messages {
            let key = message.keys().and_then(|k| k.first().map(|k| k.to_string())).unwrap_or_default();
            let tags = message.tags().map(|t| t.to_string()).unwrap_or_default();
            let body = message.body().map(|b| b.to_vec()).unwrap_or_default();
            seen.insert(key, (tags, body));
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

fn body_of(i: usize) -> Vec<u8> {
    // The client refuses empty bodies itself ("the message body length is zero", as Java).
    let sizes = [1usize, 17, 1000, 4096, 4097, 65_536, 300_000, 1024 * 1024];
    let size = sizes[i % sizes.len()];
    (0..size).map(|b| (b * 31 + i) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_and_push_consumers_round_trip() {
    let broker = BrokerProcess::start(&[("shards", "2")]).unwrap();
    let namesrv = broker.namesrv.to_string();

    let owner = RuntimeOwner::new().expect("runtime owner");
    let runtime = ClientRuntime::try_new(owner.root_context().component("e2e"), ClientRuntimeConfig::default(), TelemetryHandle::default())
        .expect("client runtime");

    let mut producer = DefaultMQProducer::builder(runtime.clone()).producer_group("e2e_producer").name_server_addr(namesrv.as_str()).build();
    producer.start().await.expect("producer start");

    const COUNT: usize = 200;
    let mut expected = BTreeMap::new();
    for i in 0..COUNT {
        let tags = if i % 2 == 0 { "TagA" } else { "TagB" };
        let key = format!("key-{i:04}");
        let message = Message::builder()
            .topic("E2eTopic")
            .tags(tags)
            .key(key.as_str())
            .raw_property("userProp", format!("value-{i}"))
            .unwrap()
            .body_slice(&body_of(i))
            .build_unchecked();
        let sent = producer.send_with_timeout(message, 10_000).await.expect("send").expect("a send result");
        assert!(sent.offset_msg_id.is_some(), "{sent:?}");
        expected.insert(key, (tags.to_owned(), body_of(i)));
    }

    let all: Received = Default::default();
    let mut everything = DefaultMQPushConsumer::builder(runtime.clone()).consumer_group("e2e_all").name_server_addr(namesrv.as_str()).build();
    everything.subscribe("E2eTopic", "*").await.expect("subscribe");
    everything.register_message_listener_concurrently(Collect(all.clone()));
    everything.start().await.expect("consumer start");
    // Route and rebalance now rather than at the client's first rebalance round (up to 20 s).
    common::route_into_consumer(&broker, &mut everything, "E2eTopic", Duration::from_secs(20), "200 messages were sent to it").await;

    let tag_a: Received = Default::default();
    let mut only_a = DefaultMQPushConsumer::builder(runtime.clone()).consumer_group("e2e_tag_a").name_server_addr(namesrv.as_str()).build();
    only_a.subscribe("E2eTopic", "TagA").await.expect("subscribe");
    only_a.register_message_listener_concurrently(Collect(tag_a.clone()));
    only_a.start().await.expect("consumer start");
    common::route_into_consumer(&broker, &mut only_a, "E2eTopic", Duration::from_secs(20), "200 messages were sent to it").await;

    let deadline = Instant::now() + Duration::from_secs(60);
    while all.lock().unwrap().len() < COUNT || tag_a.lock().unwrap().len() < COUNT / 2 {
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {COUNT} messages, {} of {} TagA; broker log:\n{}",
            all.lock().unwrap().len(),
            tag_a.lock().unwrap().len(),
            COUNT / 2,
            broker.process.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(*all.lock().unwrap(), expected, "every message, byte-identical");
    let tag_a_keys: BTreeSet<String> = tag_a.lock().unwrap().keys().cloned().collect();
    let expected_a: BTreeSet<String> = expected.iter().filter(|(_, (t, _))| t == "TagA").map(|(k, _)| k.clone()).collect();
    assert_eq!(tag_a_keys, expected_a, "a TagA subscription gets exactly TagA");

    everything.shutdown().await;
    only_a.shutdown().await;
    producer.shutdown().await;
    let _ = runtime.shutdown().await;
    let _ = owner.shutdown_tasks().await;
    let _ = owner.shutdown_background();
}
