//! The broker's admin codes (PROTOCOL.md §2.3, §2.7, §4.7, §4.8) driven by a client nobody here
//! wrote: `rocketmq-client-rust` 1.0.0's `DefaultMQAdminExt` against a real `mqbroker` process
//! with two shards and its embedded name server. Every check compares values (queue counts,
//! offsets, keys, bodies, connection details), not just response codes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_store::record::decode_offset_msg_id;
use ferromq_tests::BrokerProcess;
use rocketmq_client_rust::{
    BrokerAdmin, ClientConfig, ClientResult, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    ConsumerAdmin, DefaultMQAdminExt, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, MessageListenerConcurrently,
    TelemetryHandle, TopicAdmin,
};
use rocketmq_model::common::config::TopicConfig;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_runtime::RuntimeOwner;

/// How long a pushed registration may take to reach the name server's route.
const ROUTE_DEADLINE: Duration = Duration::from_secs(5);

/// A client runtime and the owner that must outlive it.
struct Client {
    owner: RuntimeOwner,
    runtime: Arc<ClientRuntime>,
}

impl Client {
    fn new() -> Client {
        let owner = RuntimeOwner::new().expect("runtime owner");
        let runtime = ClientRuntime::try_new(owner.root_context().component("e2e-admin"), ClientRuntimeConfig::default(), TelemetryHandle::default())
            .expect("client runtime");
        Client { owner, runtime }
    }

    async fn admin(&self, namesrv: &str) -> DefaultMQAdminExt {
        let mut admin = DefaultMQAdminExt::new(self.runtime.clone());
        admin.set_namesrv_addr(namesrv);
        admin.start().await.expect("admin start");
        admin
    }

    async fn producer(&self, namesrv: &str, group: &str) -> DefaultMQProducer {
        let mut producer = DefaultMQProducer::builder(self.runtime.clone()).producer_group(group).name_server_addr(namesrv).build();
        producer.start().await.expect("producer start");
        producer
    }

    async fn shutdown(self) {
        let _ = self.runtime.shutdown().await;
        let _ = self.owner.shutdown_tasks().await;
        let _ = self.owner.shutdown_background();
    }
}

/// What one send returned.
#[derive(Debug, Clone)]
struct Sent {
    key: String,
    body: Vec<u8>,
    queue_id: i32,
    queue_offset: i64,
    /// UNIQ_KEY, the client-generated id.
    msg_id: String,
    offset_msg_id: String,
}

async fn send(producer: &mut DefaultMQProducer, topic: &str, i: usize, extra_key: Option<&str>) -> Sent {
    let key = format!("{topic}-key-{i:03}");
    let body: Vec<u8> = format!("{topic} body {i} ").bytes().cycle().take(50 + i * 13).collect();
    let mut keys = vec![key.clone()];
    keys.extend(extra_key.map(str::to_owned));
    let message = Message::builder().topic(topic).tags("TagA").keys(keys).body_slice(&body).build_unchecked();
    let result = producer.send_with_timeout(message, 10_000).await.expect("send").expect("a send result");
    let queue = result.message_queue.as_ref().expect("the queue sent to");
    assert_eq!(queue.topic_str(), topic);
    Sent {
        key,
        body,
        queue_id: queue.queue_id(),
        queue_offset: result.queue_offset as i64,
        msg_id: result.msg_id.as_ref().expect("UNIQ_KEY msgId").to_string(),
        offset_msg_id: result.offset_msg_id.clone().expect("offsetMsgId"),
    }
}

/// Messages per queue id.
fn per_queue(sent: &[Sent]) -> BTreeMap<i32, i64> {
    let mut counts = BTreeMap::new();
    for s in sent {
        *counts.entry(s.queue_id).or_insert(0) += 1;
    }
    counts
}

/// Polls the name server until `topic`'s route shows (read, write) queue counts.
async fn wait_for_route(admin: &DefaultMQAdminExt, topic: &str, read: u32, write: u32) -> String {
    let deadline = Instant::now() + ROUTE_DEADLINE;
    loop {
        let route = TopicAdmin::examine_topic_route_info(admin, topic.into()).await.ok().flatten();
        if let Some([queues]) = route.as_ref().map(|r| r.queue_datas.as_slice())
            && queues.read_queue_nums == read
            && queues.write_queue_nums == write
        {
            assert_eq!(queues.perm, 6, "{route:?}");
            return queues.broker_name.to_string();
        }
        assert!(Instant::now() < deadline, "route of {topic} not {read}/{write} after {ROUTE_DEADLINE:?}: {route:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn message_key_list(message: &MessageExt) -> Vec<String> {
    message.keys().unwrap_or_default().into_iter().map(|k| k.to_string()).collect()
}

fn uniq_key(message: &MessageExt) -> Option<String> {
    message.property("UNIQ_KEY").map(str::to_owned)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// UPDATE_AND_CREATE_TOPIC (17), GET_ALL_TOPIC_CONFIG (21), GET_TOPIC_STATS_INFO (202),
/// GET_BROKER_RUNTIME_INFO (28), DELETE_TOPIC_IN_BROKER (215).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_admin_create_update_stats_runtime_delete() {
    let boot_floor = now_ms() - 1_000;
    let broker = BrokerProcess::start(&[("shards", "2")]).unwrap();
    let namesrv = broker.namesrv.to_string();
    let addr = format!("127.0.0.1:{}", broker.process.addr.port());
    let client = Client::new();
    let admin = client.admin(&namesrv).await;

    // 17: create; the broker pushes a registration, so the route follows within seconds.
    const TOPIC: &str = "AdminTopic";
    const KEPT: &str = "AdminKeptTopic";
    TopicAdmin::create_and_update_topic_config(&admin, addr.as_str().into(), TopicConfig::with_queues(TOPIC, 4, 4)).await.expect("create topic");
    let broker_name = wait_for_route(&admin, TOPIC, 4, 4).await;
    let mut kept = TopicConfig::with_queues(KEPT, 2, 3);
    kept.order = true;
    TopicAdmin::create_and_update_topic_config(&admin, addr.as_str().into(), kept).await.expect("create second topic");
    wait_for_route(&admin, KEPT, 2, 3).await;

    // 17 again: an update of the queue counts reaches the route too.
    TopicAdmin::create_and_update_topic_config(&admin, addr.as_str().into(), TopicConfig::with_queues(TOPIC, 8, 6)).await.expect("update topic");
    assert_eq!(wait_for_route(&admin, TOPIC, 8, 6).await, broker_name);

    // 21: the broker's table holds both topics with the values sent.
    let wrapper = TopicAdmin::get_all_topic_config(&admin, addr.as_str().into(), 5_000).await.expect("GET_ALL_TOPIC_CONFIG");
    let table = wrapper.topic_config_table().expect("topicConfigTable");
    let topic = table.get(TOPIC).unwrap_or_else(|| panic!("{TOPIC} missing from {:?}", table.keys().collect::<Vec<_>>()));
    assert_eq!((topic.read_queue_nums, topic.write_queue_nums, topic.perm, topic.order), (8, 6, 6, false), "{topic:?}");
    assert_eq!(topic.topic_name.as_ref().map(|n| n.as_str()), Some(TOPIC));
    assert_eq!(topic.topic_filter_type.as_str(), "SINGLE_TAG");
    let kept = table.get(KEPT).expect("second topic");
    assert_eq!((kept.read_queue_nums, kept.write_queue_nums, kept.order), (2, 3, true), "{kept:?}");
    assert!(table.contains_key("TBW102"), "the auto-create template topic is listed: {:?}", table.keys().collect::<Vec<_>>());
    assert!(wrapper.data_version().is_some(), "dataVersion present");

    // Produce: the producer spreads sends over the 6 writable queues.
    let mut producer = client.producer(&namesrv, "admin_topic_producer").await;
    let mut sent = Vec::new();
    for i in 0..30 {
        sent.push(send(&mut producer, TOPIC, i, None).await);
    }
    let counts = per_queue(&sent);
    assert!(counts.keys().all(|q| (0..6).contains(q)), "sends only to writable queues: {counts:?}");
    // Queue offsets the sends got are dense per queue (0..count).
    for (queue, count) in &counts {
        let offsets: BTreeSet<i64> = sent.iter().filter(|s| s.queue_id == *queue).map(|s| s.queue_offset).collect();
        assert_eq!(offsets, (0..*count).collect(), "queue {queue}");
    }

    // 202: one entry per queue id 0..max(read, write) = 8, maxOffset = messages produced there.
    for broker_addr in [Some(addr.as_str().into()), None] {
        let via_route = broker_addr.is_none();
        let stats = TopicAdmin::examine_topic_stats(&admin, TOPIC.into(), broker_addr).await.expect("GET_TOPIC_STATS_INFO");
        let table = stats.get_offset_table();
        assert_eq!(table.len(), 8, "via route {via_route}: {table:?}");
        for (queue, offset) in table {
            assert_eq!(queue.topic_str(), TOPIC);
            assert_eq!(queue.broker_name().as_str(), broker_name);
            let produced = counts.get(&queue.queue_id()).copied().unwrap_or(0);
            assert_eq!(offset.get_max_offset(), produced, "maxOffset of queue {}", queue.queue_id());
            assert_eq!(offset.get_min_offset(), 0, "minOffset of queue {}", queue.queue_id());
            if produced > 0 {
                let last = offset.get_last_update_timestamp();
                assert!(last >= boot_floor && last <= now_ms(), "lastUpdateTimestamp {last} of queue {}", queue.queue_id());
            } else {
                assert_eq!(offset.get_last_update_timestamp(), 0, "empty queue {}", queue.queue_id());
            }
        }
    }
    let unknown = TopicAdmin::examine_topic_stats(&admin, "NoSuchTopic".into(), Some(addr.as_str().into())).await;
    assert!(unknown.is_err(), "stats of an unknown topic: {unknown:?}");

    // 28: the runtime table, numbers where tools parse numbers.
    let runtime = BrokerAdmin::fetch_broker_runtime_stats(&admin, addr.as_str().into()).await.expect("GET_BROKER_RUNTIME_INFO");
    let get = |key: &str| runtime.table.get(key).map(|v| v.to_string()).unwrap_or_else(|| panic!("{key} missing from {:?}", runtime.table));
    assert_eq!(get("msgPutTotalTodayNow"), sent.len().to_string());
    assert_eq!(get("shards"), "2");
    assert_eq!(get("brokerActive"), "true");
    assert!(get("brokerVersionDesc").starts_with('V'), "{}", get("brokerVersionDesc"));
    let boot: i64 = get("bootTimestamp").parse().expect("bootTimestamp is a number");
    assert!(boot >= boot_floor && boot <= now_ms(), "bootTimestamp {boot}");
    let first_tps: f64 = get("putTps").split(' ').next().unwrap().parse().expect("putTps triple");
    assert!(first_tps >= 0.0);
    for key in ["commitLogMinOffset", "commitLogMaxOffset", "dispatchBehindBytes", "remainHowManyDataToFlush", "msgGetTotalTodayNow", "earliestMessageTimeStamp"] {
        let _: i64 = get(key).parse().unwrap_or_else(|_| panic!("{key}={} is not a number", get(key)));
    }
    let min: i64 = get("commitLogMinOffset").parse().unwrap();
    let max: i64 = get("commitLogMaxOffset").parse().unwrap();
    assert!(max >= min, "commit log {min}..{max}");

    // 215: the topic goes from the broker's table; the other topic stays.
    let addrs: HashSet<_> = [addr.as_str().into()].into_iter().collect();
    TopicAdmin::delete_topic_in_broker(&admin, addrs, TOPIC.into()).await.expect("DELETE_TOPIC_IN_BROKER");
    let wrapper = TopicAdmin::get_all_topic_config(&admin, addr.as_str().into(), 5_000).await.expect("GET_ALL_TOPIC_CONFIG");
    let table = wrapper.topic_config_table().expect("topicConfigTable");
    assert!(!table.contains_key(TOPIC), "{TOPIC} still configured after delete");
    assert_eq!(table.get(KEPT).map(|t| (t.read_queue_nums, t.write_queue_nums)), Some((2, 3)));
    let gone = TopicAdmin::examine_topic_stats(&admin, TOPIC.into(), Some(addr.as_str().into())).await;
    assert!(gone.is_err(), "stats of a deleted topic: {gone:?}");

    producer.shutdown().await;
    let mut admin = admin;
    admin.shutdown().await;
    client.shutdown().await;
}

struct Count(Arc<AtomicUsize>);

impl MessageListenerConcurrently for Count {
    fn consume_message(&self, messages: &[&MessageExt], _: &ConsumeConcurrentlyContext) -> ClientResult<ConsumeConcurrentlyStatus> {
        self.0.fetch_add(messages.len(), Ordering::SeqCst);
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

async fn push_consumer(client: &Client, namesrv: &str, group: &str, topic: &str, seen: Arc<AtomicUsize>) -> DefaultMQPushConsumer {
    let mut config = ClientConfig::new();
    // Commit offsets every second instead of every 5 s, so that progress shows quickly.
    config.set_persist_consumer_offset_interval(1_000);
    let mut consumer = DefaultMQPushConsumer::builder(client.runtime.clone())
        .client_config(config)
        .name_server_addr(namesrv)
        .consumer_group(group)
        .build();
    consumer.subscribe(topic, "*").await.expect("subscribe");
    consumer.register_message_listener_concurrently(Count(seen));
    consumer.start().await.expect("consumer start");
    consumer
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200), GET_CONSUMER_CONNECTION_LIST (203),
/// GET_CONSUME_STATS (208), on a broker that creates no group by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_admin_groups_connections_and_progress() {
    let broker = BrokerProcess::start(&[("shards", "2"), ("autoCreateSubscriptionGroup", "false")]).unwrap();
    let namesrv = broker.namesrv.to_string();
    let addr = format!("127.0.0.1:{}", broker.process.addr.port());
    let client = Client::new();
    let admin = client.admin(&namesrv).await;

    const TOPIC: &str = "ProgressTopic";
    const GROUP: &str = "admin_created_group";
    const UNKNOWN_GROUP: &str = "never_created_group";
    TopicAdmin::create_and_update_topic_config(&admin, addr.as_str().into(), TopicConfig::with_queues(TOPIC, 4, 4)).await.expect("create topic");
    let broker_name = wait_for_route(&admin, TOPIC, 4, 4).await;

    // 200: the group is created with the values sent, and persisted in the Java format.
    let group_config = serde_json::from_value(serde_json::json!({
        "groupName": GROUP, "consumeEnable": true, "consumeFromMinEnable": true, "consumeBroadcastEnable": false,
        "retryQueueNums": 1, "retryMaxTimes": 3, "brokerId": 0, "whichBrokerWhenConsumeSlowly": 1,
        "consumeTimeoutMinute": 7, "notifyConsumerIdsChangedEnable": true, "groupSysFlag": 0,
    }))
    .expect("a SubscriptionGroupConfig");
    ConsumerAdmin::create_and_update_subscription_group_config(&admin, addr.as_str().into(), group_config)
        .await
        .expect("UPDATE_AND_CREATE_SUBSCRIPTIONGROUP");
    // In subscriptionGroup.json or its journal (entries in the same Java format).
    let persisted = ferromq_tests::persisted_metadata(&broker.store.path().join("config"), "subscriptionGroup.json");
    let stored = &persisted["subscriptionGroupTable"][GROUP];
    assert_eq!(stored["groupName"], GROUP, "{persisted}");
    assert_eq!(stored["retryMaxTimes"], 3, "{stored}");
    assert_eq!(stored["consumeTimeoutMinute"], 7, "{stored}");
    assert_eq!(stored["consumeBroadcastEnable"], false, "{stored}");
    assert!(persisted["subscriptionGroupTable"].get(UNKNOWN_GROUP).is_none());

    let mut producer = client.producer(&namesrv, "admin_progress_producer").await;
    let mut sent = Vec::new();
    for i in 0..40 {
        sent.push(send(&mut producer, TOPIC, i, None).await);
    }
    let counts = per_queue(&sent);

    // The created group's consumer is admitted; the uncreated group's heartbeat is refused.
    let seen = Arc::new(AtomicUsize::new(0));
    let mut consumer = push_consumer(&client, &namesrv, GROUP, TOPIC, seen.clone()).await;
    let mut stranger = push_consumer(&client, &namesrv, UNKNOWN_GROUP, TOPIC, Arc::new(AtomicUsize::new(0))).await;

    // 208: after consuming, committed offset = queue max offset = what was produced, per queue.
    let deadline = Instant::now() + Duration::from_secs(60);
    let stats = loop {
        let stats = ConsumerAdmin::examine_consume_stats(&admin, GROUP.into(), Some(TOPIC.into()), None, Some(addr.as_str().into()), None)
            .await
            .expect("GET_CONSUME_STATS");
        let caught_up = stats.get_offset_table().len() == 4
            && stats.get_offset_table().values().all(|o| o.get_consumer_offset() == o.get_broker_offset());
        if caught_up && seen.load(Ordering::SeqCst) >= sent.len() {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "consumer not caught up: consumed {} of {}; stats {:?}; broker log:\n{}",
            seen.load(Ordering::SeqCst),
            sent.len(),
            stats.get_offset_table(),
            broker.process.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut total = 0;
    for (queue, offsets) in stats.get_offset_table() {
        assert_eq!((queue.topic_str(), queue.broker_name().as_str()), (TOPIC, broker_name.as_str()));
        let produced = counts.get(&queue.queue_id()).copied().unwrap_or(0);
        assert_eq!(offsets.get_broker_offset(), produced, "brokerOffset of queue {}", queue.queue_id());
        assert_eq!(offsets.get_consumer_offset(), produced, "consumerOffset of queue {}", queue.queue_id());
        assert!(offsets.get_pull_offset() >= offsets.get_consumer_offset(), "pullOffset of queue {}", queue.queue_id());
        if produced > 0 {
            assert!(offsets.get_last_timestamp() > 0, "lastTimestamp of queue {}", queue.queue_id());
        }
        total += offsets.get_broker_offset();
    }
    assert_eq!(total, sent.len() as i64);
    assert_eq!(stats.compute_total_diff(), 0);
    // Without a broker address the client finds the broker through the group's retry topic,
    // which the heartbeat created and the broker registered.
    let via_route = ConsumerAdmin::examine_consume_stats(&admin, GROUP.into(), Some(TOPIC.into()), None, None, None)
        .await
        .expect("GET_CONSUME_STATS via the retry topic's route");
    let route_offsets: BTreeMap<i32, (i64, i64)> =
        via_route.get_offset_table().iter().map(|(q, o)| (q.queue_id(), (o.get_broker_offset(), o.get_consumer_offset()))).collect();
    let direct_offsets: BTreeMap<i32, (i64, i64)> =
        stats.get_offset_table().iter().map(|(q, o)| (q.queue_id(), (o.get_broker_offset(), o.get_consumer_offset()))).collect();
    assert_eq!(route_offsets, direct_offsets);
    // A group with no offsets on this topic has none to report.
    let stranger_stats =
        ConsumerAdmin::examine_consume_stats(&admin, UNKNOWN_GROUP.into(), Some(TOPIC.into()), None, Some(addr.as_str().into()), None).await;
    if let Ok(stats) = &stranger_stats {
        assert!(stats.get_offset_table().values().all(|o| o.get_consumer_offset() == 0), "{stats:?}");
    }

    // 203: the one consumer of the group, with its subscriptions.
    for broker_addr in [Some(addr.as_str().into()), None] {
        let connections = ConsumerAdmin::examine_consumer_connection_info(&admin, GROUP.into(), broker_addr)
            .await
            .expect("GET_CONSUMER_CONNECTION_LIST");
        let set = connections.get_connection_set();
        assert_eq!(set.len(), 1, "{connections:?}");
        let connection = set.iter().next().unwrap();
        assert!(connection.get_client_addr().starts_with("127.0.0.1:"), "{connection:?}");
        assert!(!connection.get_client_id().is_empty(), "{connection:?}");
        assert_eq!(connection.get_language().to_string(), "RUST");
        assert_eq!(connection.get_version(), rocketmq_model::version::CURRENT_VERSION as i32);
        let subscriptions = connections.get_subscription_table();
        let topic_sub = subscriptions.get(TOPIC).unwrap_or_else(|| panic!("no {TOPIC} subscription: {subscriptions:?}"));
        assert_eq!(topic_sub.sub_string.as_str(), "*");
        assert!(subscriptions.contains_key(format!("%RETRY%{GROUP}").as_str()), "{subscriptions:?}");
        assert_eq!(connections.get_consume_type().map(|t| format!("{t:?}")).as_deref(), Some("ConsumePassively"));
        assert_eq!(connections.get_message_model().map(|m| m.to_string()).as_deref(), Some("CLUSTERING"));
    }
    let refused = ConsumerAdmin::examine_consumer_connection_info(&admin, UNKNOWN_GROUP.into(), Some(addr.as_str().into())).await;
    assert!(refused.is_err(), "a group the broker refused is not online: {refused:?}");

    // The consumer leaves: the group is no longer online.
    consumer.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ConsumerAdmin::examine_consumer_connection_info(&admin, GROUP.into(), Some(addr.as_str().into())).await.is_ok() {
        assert!(Instant::now() < deadline, "group still online after its consumer shut down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    stranger.shutdown().await;
    producer.shutdown().await;
    let mut admin = admin;
    admin.shutdown().await;
    client.shutdown().await;
}

/// VIEW_MESSAGE_BY_ID (33) by the offsetMsgId of each send, across both shards, and
/// QUERY_MESSAGE (12) by KEYS and by UNIQ_KEY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_by_offset_id_key_and_unique_key() {
    let broker = BrokerProcess::start(&[("shards", "2")]).unwrap();
    let namesrv = broker.namesrv.to_string();
    let addr = format!("127.0.0.1:{}", broker.process.addr.port());
    let client = Client::new();
    let admin = client.admin(&namesrv).await;

    const TOPIC: &str = "LookupTopic";
    const SHARED_KEY: &str = "shared-batch-key";
    TopicAdmin::create_and_update_topic_config(&admin, addr.as_str().into(), TopicConfig::with_queues(TOPIC, 8, 8)).await.expect("create topic");
    wait_for_route(&admin, TOPIC, 8, 8).await;

    let begin = now_ms() - 60_000;
    let mut producer = client.producer(&namesrv, "admin_lookup_producer").await;
    let mut sent = Vec::new();
    for i in 0..24 {
        sent.push(send(&mut producer, TOPIC, i, Some(SHARED_KEY)).await);
    }
    let end = now_ms() + 60_000;

    // 33: each offsetMsgId names this broker and an offset of the broker's one offset space
    // (8 queues over 2 shards: both logs); viewing it returns that very record.
    let mut offsets = BTreeSet::new();
    for s in &sent {
        let (host, offset) = decode_offset_msg_id(&s.offset_msg_id).unwrap_or_else(|| panic!("bad offsetMsgId {}", s.offset_msg_id));
        assert_eq!(host.to_string(), addr, "store host of {}", s.offset_msg_id);
        assert!(offset.0 >= 0 && offset.0 < 1 << 53 && (offset.0 as f64) as i64 == offset.0, "offset {} is not exact as a double", offset.0);
        offsets.insert(offset.0);
        let message = ConsumerAdmin::query_message(&admin, "DefaultCluster".into(), TOPIC.into(), s.offset_msg_id.as_str().into())
            .await
            .unwrap_or_else(|e| panic!("VIEW_MESSAGE_BY_ID {}: {e}", s.offset_msg_id));
        assert_eq!(message.topic().as_str(), TOPIC);
        assert_eq!(message.body().as_deref(), Some(s.body.as_slice()), "body of {}", s.key);
        assert_eq!(message_key_list(&message), [s.key.clone(), SHARED_KEY.to_owned()]);
        assert_eq!(message.queue_id(), s.queue_id, "queue of {}", s.key);
        assert_eq!(message.queue_offset(), s.queue_offset, "queue offset of {}", s.key);
        assert_eq!(message.commit_log_offset(), offset.0, "physical offset of {}", s.key);
        assert_eq!(uniq_key(&message).as_deref(), Some(s.msg_id.as_str()), "UNIQ_KEY of {}", s.key);
        assert_eq!(message.tags().map(|t| t.to_string()).as_deref(), Some("TagA"));
    }
    assert_eq!(offsets.len(), sent.len(), "every record has its own offset");

    // 12 by KEYS: one message per own key, every message for the shared key. The index is
    // written by each shard's dispatcher after the append is acknowledged (as in Java), so the
    // last sends may take a moment to become findable on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let result = admin
            .inner()
            .query_message_by_key(None, TOPIC.into(), SHARED_KEY.into(), 64, begin, end, "K".into(), None)
            .await
            .expect("QUERY_MESSAGE by the shared key");
        if result.message_list().len() >= sent.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in sent.iter().step_by(5) {
        let result = admin
            .inner()
            .query_message_by_key(None, TOPIC.into(), s.key.as_str().into(), 32, begin, end, "K".into(), None)
            .await
            .expect("QUERY_MESSAGE by key");
        let found = result.message_list();
        assert_eq!(found.len(), 1, "by key {}: {:?}", s.key, found.iter().map(message_key_list).collect::<Vec<_>>());
        assert_eq!(found[0].body().as_deref(), Some(s.body.as_slice()));
        assert_eq!(uniq_key(&found[0]).as_deref(), Some(s.msg_id.as_str()));
        assert!(result.index_last_update_timestamp() > 0);
    }
    let result = admin
        .inner()
        .query_message_by_key(None, TOPIC.into(), SHARED_KEY.into(), 64, begin, end, "K".into(), None)
        .await
        .expect("QUERY_MESSAGE by the shared key");
    let found: BTreeSet<String> = result.message_list().iter().filter_map(uniq_key).collect();
    let expected: BTreeSet<String> = sent.iter().map(|s| s.msg_id.clone()).collect();
    assert_eq!(result.message_list().len(), sent.len(), "no duplicates");
    assert_eq!(found, expected, "every message with the shared key, from both shards");
    // maxNum caps the answer.
    let capped = admin
        .inner()
        .query_message_by_key(None, TOPIC.into(), SHARED_KEY.into(), 5, begin, end, "K".into(), None)
        .await
        .expect("QUERY_MESSAGE capped");
    assert_eq!(capped.message_list().len(), 5);
    // A time range before the sends finds nothing; so does an unknown key.
    let early = admin
        .inner()
        .query_message_by_key(None, TOPIC.into(), SHARED_KEY.into(), 64, begin - 3_600_000, begin, "K".into(), None)
        .await
        .expect("QUERY_MESSAGE out of range");
    assert!(early.message_list().is_empty(), "{} found before they were sent", early.message_list().len());
    let none = admin
        .inner()
        .query_message_by_key(None, TOPIC.into(), "no-such-key".into(), 32, begin, end, "K".into(), None)
        .await
        .expect("QUERY_MESSAGE unknown key");
    assert!(none.message_list().is_empty());

    // 12 by UNIQ_KEY (`_UNIQUE_KEY_QUERY`): exactly the message with that client id.
    for s in sent.iter().step_by(3) {
        let result = admin
            .inner()
            .query_message_by_unique_key(None, TOPIC.into(), s.msg_id.as_str().into(), 32, begin, end)
            .await
            .expect("QUERY_MESSAGE by unique key");
        let found = result.message_list();
        assert_eq!(found.len(), 1, "by UNIQ_KEY {}", s.msg_id);
        assert_eq!(uniq_key(&found[0]).as_deref(), Some(s.msg_id.as_str()));
        assert_eq!(message_key_list(&found[0])[0], s.key);
        assert_eq!(found[0].body().as_deref(), Some(s.body.as_slice()));
        assert_eq!((found[0].queue_id(), found[0].queue_offset()), (s.queue_id, s.queue_offset));
    }

    producer.shutdown().await;
    let mut admin = admin;
    admin.shutdown().await;
    client.shutdown().await;
}
