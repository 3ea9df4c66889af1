//! Handler tests at the protocol boundary, without processes: a one-shard broker (store on a
//! temp dir, the control plane's service on the same runtime) and [`dispatch`] called with
//! requests as clients send them. Every request code the broker serves has a test of its
//! success response and of at least one error response ([`SERVED`] lists them; a test checks
//! the list against the dispatcher).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use ferromq_net::RemotingCommand;
use ferromq_net::codec::{WireLimits, decode_frame};
use ferromq_net::codes::{request_code as rc, response_code as code};
use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::record::{Properties, decode_body_strict};
use ferromq_store::{QueueId, ShardId, Store};

use super::{Origin, Reply, dispatch};
use crate::config::BrokerConfig;
use crate::control::{BrokerIdentity, ControlHandle, ControlPlane};
use crate::shard::ShardCtx;
use crate::shard::router::Router;

/// Every code the dispatcher serves, with the error its error test provokes (or why it has
/// none).
const SERVED: &[(i32, &str)] = &[
    (rc::SEND_MESSAGE, "missing topic"),
    (rc::SEND_MESSAGE_V2, "queueId out of range, forbidden topic, body too large"),
    (rc::SEND_BATCH_MESSAGE, "malformed batch"),
    (rc::PULL_MESSAGE, "unknown topic, no subscription, bad number"),
    (rc::LITE_PULL_MESSAGE, "illegal queue id"),
    (rc::QUERY_CONSUMER_OFFSET, "no offset and the queue does not start at 0"),
    (rc::UPDATE_CONSUMER_OFFSET, "unknown topic"),
    (rc::GET_MAX_OFFSET, "negative queueId"),
    (rc::GET_MIN_OFFSET, "missing queueId"),
    (rc::GET_EARLIEST_MSG_STORETIME, "missing topic"),
    (rc::SEARCH_OFFSET_BY_TIMESTAMP, "bad boundaryType"),
    (rc::HEART_BEAT, "malformed body"),
    (rc::UNREGISTER_CLIENT, "missing clientID"),
    (rc::GET_CONSUMER_LIST_BY_GROUP, "no consumer online"),
    (rc::LOCK_BATCH_MQ, "malformed body"),
    (rc::UNLOCK_BATCH_MQ, "body without group"),
    (rc::UPDATE_AND_CREATE_TOPIC, "system topic name"),
    (rc::DELETE_TOPIC_IN_BROKER, "missing topic"),
    (rc::GET_ALL_TOPIC_CONFIG, "control plane stopped"),
    (rc::GET_BROKER_RUNTIME_INFO, "none: it reports what it can (a busy shard is left out), as Java"),
    (rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, "malformed body"),
    (rc::GET_CONSUMER_CONNECTION_LIST, "group not online"),
    (rc::GET_TOPIC_STATS_INFO, "unknown topic"),
    (rc::GET_CONSUME_STATS, "missing consumerGroup"),
    (rc::VIEW_MESSAGE_BY_ID, "no record at the offset"),
    (rc::QUERY_MESSAGE, "no match"),
    (rc::GET_BROKER_CONFIG, "none: the configuration is always there, as in Java"),
    (rc::CONSUMER_SEND_MSG_BACK, "no record at the offset, missing group"),
    (rc::GET_ALL_DELAY_OFFSET, "none: the table is always there (empty at first), as in Java"),
    (rc::GET_ALL_CONSUMER_OFFSET, "control plane stopped"),
    (rc::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, "control plane stopped"),
    (rc::END_TRANSACTION, "wrong producer group, no half message at the offset"),
    (rc::CHECK_CLIENT_CONFIG, "selector does not parse, SQL92 disabled"),
    (rc::INVOKE_BROKER_TO_RESET_OFFSET, "unknown topic"),
    (rc::INVOKE_BROKER_TO_GET_CONSUMER_STATUS, "no consumer online, client too old"),
    (rc::CLONE_GROUP_OFFSET, "missing destGroup"),
    (rc::DELETE_SUBSCRIPTIONGROUP, "missing groupName"),
    (rc::GET_CONSUMER_RUNNING_INFO, "consumer not online"),
    (rc::SEND_REPLY_MESSAGE, "no REPLY_TO_CLIENT property"),
    (rc::SEND_REPLY_MESSAGE_V2, "no REPLY_TO_CLIENT property"),
    (rc::QUERY_TOPIC_CONSUME_BY_WHO, "missing topic"),
    (rc::QUERY_TOPICS_BY_CONSUMER, "missing group"),
    (rc::GET_TOPIC_CONFIG, "unknown topic"),
    (rc::GET_SYSTEM_TOPIC_LIST_FROM_BROKER, "control plane stopped"),
    (rc::UPDATE_BROKER_CONFIG, "a key that cannot change at runtime, an unknown key, a bad value"),
    (rc::CLEAN_EXPIRED_CONSUMEQUEUE, "on a slave"),
    (rc::VIEW_BROKER_STATS_DATA, "unknown stats name, unknown topic, key without '@'"),
    (rc::UPDATE_AND_CREATE_ACL_CONFIG, "ACL off, not an admin, secret too short"),
    (rc::DELETE_ACL_CONFIG, "no such account"),
    (rc::GET_BROKER_CLUSTER_ACL_INFO, "ACL off"),
    (rc::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG, "another ACL file"),
    (rc::GET_BROKER_CLUSTER_ACL_CONFIG, "ACL off"),
];

struct TestDir(PathBuf);

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A one-shard broker in this runtime.
struct Broker {
    ctx: Rc<ShardCtx>,
    control: Arc<ControlHandle>,
    _dir: TestDir,
}

const PEER: &str = "127.0.0.1:40000";

impl Broker {
    async fn start() -> Broker {
        Broker::start_with(|_| {}).await
    }

    /// A broker whose configuration `edit` changes first; its delay-level deliverers run.
    async fn start_with(edit: impl FnOnce(&mut BrokerConfig)) -> Broker {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ferromq-handlers-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = BrokerConfig::test_min(dir.join("store"));
        config.io.shards = 1;
        edit(&mut config);
        let config = Arc::new(config);
        let store_host: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let identity = BrokerIdentity {
            broker_addr: store_host.to_string(),
            store_host,
            broker_name: config.broker.name.clone(),
            cluster_name: config.broker.cluster_name.clone(),
            broker_id: config.broker.id,
        };
        let (commands, inbox) = async_channel::bounded(config.limits.control_queue_depth);
        let acl = crate::acl::load(&config).unwrap();
        let control = Arc::new(ControlHandle::new(config.clone(), identity, commands).with_acl(acl));
        let (events, _events_rx) = async_channel::bounded(16);
        let plane = ControlPlane::load(control.clone(), dir.join("store").join("config"), vec![events]).unwrap();
        compio::runtime::spawn(crate::control::service::run(plane, inbox, Vec::new(), None)).detach();
        let (mailbox, jobs) = async_channel::bounded(16);
        let (store, _) = Store::open(ferromq_store::io::faulty::FaultyStorage::new(CompioStorage), config.store_config(ShardId(0))).await.unwrap();
        let ctx = ShardCtx::new(ShardId(0), store, control.clone(), Router::new(vec![mailbox]));
        compio::runtime::spawn(crate::shard::executor::run(ctx.clone(), jobs, ctx.executor.clone())).detach();
        {
            let ctx = ctx.clone();
            compio::runtime::spawn(async move { ctx.offsets.run_flusher(&ctx.control).await }).detach();
        }
        crate::shard::delay::spawn(&ctx).detach();
        if let Some(task) = crate::shard::timer::spawn(&ctx) {
            task.detach();
        }
        if let Some(task) = crate::shard::transaction::spawn(&ctx) {
            task.detach();
        }
        Broker { ctx, control, _dir: TestDir(dir) }
    }

    async fn reply(&self, request: RemotingCommand) -> Reply {
        dispatch(&self.ctx, Origin { connection: 7, peer: PEER.parse().unwrap() }, request).await
    }

    /// The response of a request answered with a plain response.
    async fn call(&self, request: RemotingCommand) -> RemotingCommand {
        match self.reply(request).await {
            Reply::Response(response) => response,
            // Encoded responses are checked as a client reads them.
            Reply::Frame(frame) => {
                let (response, used) = decode_frame(&frame, &WireLimits::default()).unwrap().unwrap();
                assert_eq!(used, frame.len());
                assert!(response.is_response());
                response
            }
            Reply::Messages(response, _) => panic!("unexpected messages: {response:?}"),
        }
    }

    /// Asserts the response code, and that the remark mentions `remark_has`.
    async fn check(&self, request: RemotingCommand, expected: i32, remark_has: &str) -> RemotingCommand {
        let request_code = request.code;
        let response = self.call(request).await;
        assert_eq!(response.code, expected, "code {request_code}: {response:?}");
        let remark = response.remark.clone().unwrap_or_default();
        assert!(remark.contains(remark_has), "code {request_code}: remark {remark:?} lacks {remark_has:?}");
        response
    }

    async fn send(&self, topic: &str, queue_id: i32, body: &str, keys: &str) -> RemotingCommand {
        self.call(send_v2(topic, queue_id, body, keys)).await
    }

    async fn heartbeat(&self, group: &str, topic: &str) {
        let body = format!(
            r#"{{"clientID":"client-1","consumerDataSet":[{{"groupName":"{group}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{{"topic":"{topic}","subString":"*","tagsSet":[],"codeSet":[],"subVersion":0,"expressionType":"TAG"}}],"unitMode":false}}],"producerDataSet":[{{"groupName":"pg"}}]}}"#
        );
        let response = self.call(RemotingCommand::request(rc::HEART_BEAT).with_body(body.into_bytes())).await;
        assert_eq!(response.code, code::SUCCESS, "{response:?}");
    }
}

fn run<F: std::future::Future<Output = ()>>(test: impl FnOnce() -> F) {
    compio::runtime::Runtime::new().unwrap().block_on(test());
}

fn request(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    fields.iter().fold(RemotingCommand::request(code), |r, (k, v)| r.with_ext(k, v))
}

fn send_v2(topic: &str, queue_id: i32, body: &str, keys: &str) -> RemotingCommand {
    let mut props = Properties::new();
    props.insert("KEYS", keys);
    props.insert("TAGS", "TagA");
    let props = String::from_utf8(props.encode()).unwrap();
    request(
        rc::SEND_MESSAGE_V2,
        &[("a", "pg"), ("b", topic), ("c", "TBW102"), ("d", "4"), ("e", &queue_id.to_string()), ("f", "0"), ("g", "1"), ("h", "0"), ("i", &props), ("j", "0"), ("k", "false"), ("m", "false")],
    )
    .with_body(body.as_bytes().to_vec())
}

fn pull(code: i32, group: &str, topic: &str, queue_id: &str, offset: &str, sys_flag: &str) -> RemotingCommand {
    request(
        code,
        &[
            ("consumerGroup", group),
            ("topic", topic),
            ("queueId", queue_id),
            ("queueOffset", offset),
            ("maxMsgNums", "32"),
            ("sysFlag", sys_flag),
            ("commitOffset", "0"),
            ("suspendTimeoutMillis", "0"),
            ("subscription", "*"),
            ("subVersion", "0"),
        ],
    )
}

/// The records of a pull answered with messages.
fn pulled_bodies(reply: Reply) -> Vec<Vec<u8>> {
    let Reply::Messages(response, segments) = reply else { panic!("no messages: {reply:?}") };
    assert_eq!(response.code, code::SUCCESS);
    let mut bytes = Vec::new();
    for segment in &segments {
        let mut part = vec![0u8; segment.len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&*segment.file, &mut part, segment.offset).unwrap();
        bytes.extend(part);
    }
    decode_body_strict(&bytes).unwrap().iter().map(|r| r.body.to_vec()).collect()
}

#[test]
fn every_served_code_is_dispatched_and_others_are_not_supported() {
    run(|| async {
        let broker = Broker::start().await;
        for (served, _) in SERVED {
            let response = broker.call(RemotingCommand::request(*served)).await;
            assert_ne!(response.code, code::REQUEST_CODE_NOT_SUPPORTED, "code {served} is listed as served");
        }
        // UPDATE_NAMESRV_CONFIG is a name-server code.
        for unserved in [rc::UPDATE_NAMESRV_CONFIG, 9999] {
            let response = broker.call(RemotingCommand::request(unserved)).await;
            assert_eq!(response.code, code::REQUEST_CODE_NOT_SUPPORTED, "code {unserved}");
        }
    });
}

#[test]
fn sends_store_and_refuse_with_the_right_code() {
    run(|| async {
        let broker = Broker::start().await;
        // 310: auto-created through TBW102, stored, every field clients read.
        let ok = broker.send("Orders", 1, "hello", "k1").await;
        assert_eq!(ok.code, code::SUCCESS, "{ok:?}");
        for field in ["msgId", "queueId", "queueOffset", "MSG_REGION", "TRACE_ON", "transactionId"] {
            assert!(ok.ext(field).is_some(), "send response lacks {field}");
        }
        assert_eq!(ok.ext("queueId"), Some("1"));
        assert_eq!(ok.ext("queueOffset"), Some("0"));
        // 10 with long names.
        let long = request(
            rc::SEND_MESSAGE,
            &[("producerGroup", "pg"), ("topic", "Orders"), ("defaultTopic", "TBW102"), ("defaultTopicQueueNums", "4"), ("queueId", "1"), ("sysFlag", "0"), ("bornTimestamp", "1"), ("flag", "0")],
        )
        .with_body(b"long".to_vec());
        let ok = broker.check(long, code::SUCCESS, "").await;
        assert_eq!(ok.ext("queueOffset"), Some("1"));
        // Errors: each names what is wrong.
        broker.check(request(rc::SEND_MESSAGE, &[("queueId", "1")]), code::SYSTEM_ERROR, "topic").await;
        broker.check(send_v2("Orders", 99, "x", "k"), code::SYSTEM_ERROR, "queueId[99] is illegal").await;
        broker.check(send_v2("SCHEDULE_TOPIC_XXXX", 0, "x", "k"), code::NO_PERMISSION, "forbidden").await;
        let huge = send_v2("Orders", 0, &"x".repeat(2048), "k");
        broker.check(huge, code::MESSAGE_ILLEGAL, "body size").await;
        let truncated = send_v2("Orders", 0, "x", "k").with_ext("e", "4294967296");
        broker.check(truncated, code::SYSTEM_ERROR, "queueId").await;
        let no_default = send_v2("Fresh", 0, "x", "k").with_ext("c", "");
        broker.check(no_default, code::TOPIC_NOT_EXIST, "Fresh").await;
    });
}

#[test]
fn batch_sends_store_every_message_and_refuse_garbage() {
    run(|| async {
        let broker = Broker::start().await;
        let entry = |body: &[u8]| {
            let props = b"KEYS\x01b\x02";
            let total = 20 + body.len() + 2 + props.len();
            let mut out = Vec::new();
            for v in [total as i32, 0, 0, 0, body.len() as i32] {
                out.extend(v.to_be_bytes());
            }
            out.extend(body);
            out.extend((props.len() as u16).to_be_bytes());
            out.extend(props);
            out
        };
        let body = [entry(b"one"), entry(b"two")].concat();
        let batch = send_v2("Batch", 0, "", "").with_ext("m", "true");
        let mut batch = RemotingCommand { code: rc::SEND_BATCH_MESSAGE, ..batch };
        batch.body = body.into();
        let ok = broker.check(batch.clone(), code::SUCCESS, "").await;
        // One offsetMsgId per message, comma-joined, each naming its own record.
        let ids: Vec<&str> = ok.ext("msgId").unwrap().split(',').collect();
        assert_eq!(ids.len(), 2);
        let offsets: Vec<i64> = ids.iter().map(|id| ferromq_store::record::decode_offset_msg_id(id).expect("an offsetMsgId").1.0).collect();
        assert!(offsets[0] < offsets[1], "{ids:?}");
        batch.body = bytes::Bytes::from_static(&[0, 0, 0, 9, 1]);
        broker.check(batch, code::MESSAGE_ILLEGAL, "batch").await;
    });
}

#[test]
fn pulls_find_messages_and_refuse_bad_requests() {
    run(|| async {
        let broker = Broker::start().await;
        for i in 0..3 {
            assert_eq!(broker.send("Pulled", 2, &format!("m{i}"), "k").await.code, code::SUCCESS);
        }
        broker.ctx.store.wait_dispatched().await.unwrap();
        // With an inline subscription (sysFlag 4).
        let bodies = pulled_bodies(broker.reply(pull(rc::PULL_MESSAGE, "g", "Pulled", "2", "0", "4")).await);
        assert_eq!(bodies, vec![b"m0".to_vec(), b"m1".to_vec(), b"m2".to_vec()]);
        let bodies = pulled_bodies(broker.reply(pull(rc::LITE_PULL_MESSAGE, "g", "Pulled", "2", "1", "4")).await);
        assert_eq!(bodies.len(), 2);
        // Caught up: PULL_NOT_FOUND with the offsets clients unbox.
        let caught_up = broker.check(pull(rc::PULL_MESSAGE, "g", "Pulled", "2", "3", "4"), code::PULL_NOT_FOUND, "").await;
        assert_eq!(caught_up.ext("nextBeginOffset"), Some("3"));
        assert_eq!(caught_up.ext("maxOffset"), Some("3"));
        // Errors.
        broker.check(pull(rc::PULL_MESSAGE, "g", "Nope", "0", "0", "4"), code::TOPIC_NOT_EXIST, "Nope").await;
        broker.check(pull(rc::PULL_MESSAGE, "g", "Pulled", "2", "0", "0"), code::SUBSCRIPTION_NOT_EXIST, "g").await;
        broker.check(pull(rc::PULL_MESSAGE, "g", "Pulled", "2", "zero", "4"), code::SYSTEM_ERROR, "queueOffset").await;
        broker.check(pull(rc::LITE_PULL_MESSAGE, "g", "Pulled", "99", "0", "4"), code::SYSTEM_ERROR, "queueId[99] is illegal").await;
        // With the group's registered subscription (sysFlag 0) after a heartbeat.
        broker.heartbeat("g", "Pulled").await;
        let bodies = pulled_bodies(broker.reply(pull(rc::PULL_MESSAGE, "g", "Pulled", "2", "0", "0")).await);
        assert_eq!(bodies.len(), 3);
    });
}

#[test]
fn offsets_commit_query_and_queue_bounds() {
    run(|| async {
        let broker = Broker::start().await;
        broker.send("Offs", 0, "a", "k").await;
        broker.send("Offs", 0, "b", "k").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        let q = |code, extra: &[(&str, &str)]| {
            let mut fields = vec![("topic", "Offs"), ("queueId", "0"), ("consumerGroup", "g")];
            fields.extend_from_slice(extra);
            request(code, &fields)
        };
        // No commit yet, queue starts at 0: offset 0.
        let none = broker.check(q(rc::QUERY_CONSUMER_OFFSET, &[]), code::SUCCESS, "").await;
        assert_eq!(none.ext("offset"), Some("0"));
        broker.check(q(rc::UPDATE_CONSUMER_OFFSET, &[("commitOffset", "2")]), code::SUCCESS, "").await;
        let committed = broker.check(q(rc::QUERY_CONSUMER_OFFSET, &[]), code::SUCCESS, "").await;
        assert_eq!(committed.ext("offset"), Some("2"));
        // Still 2 once the commit has reached the control plane.
        broker.ctx.offsets.flush(&broker.control).await;
        let committed = broker.check(q(rc::QUERY_CONSUMER_OFFSET, &[]), code::SUCCESS, "").await;
        assert_eq!(committed.ext("offset"), Some("2"));
        let not_found = request(rc::QUERY_CONSUMER_OFFSET, &[("topic", "Offs"), ("queueId", "0"), ("consumerGroup", "other"), ("setZeroIfNotFound", "false")]);
        broker.check(not_found, code::QUERY_NOT_FOUND, "Not found").await;
        let unknown = request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "Nope"), ("queueId", "0"), ("consumerGroup", "g"), ("commitOffset", "1")]);
        broker.check(unknown, code::TOPIC_NOT_EXIST, "Nope").await;

        let max = broker.check(request(rc::GET_MAX_OFFSET, &[("topic", "Offs"), ("queueId", "0")]), code::SUCCESS, "").await;
        assert_eq!(max.ext("offset"), Some("2"));
        broker.check(request(rc::GET_MAX_OFFSET, &[("topic", "Offs"), ("queueId", "-1")]), code::SYSTEM_ERROR, "queueId").await;
        let min = broker.check(request(rc::GET_MIN_OFFSET, &[("topic", "Offs"), ("queueId", "0")]), code::SUCCESS, "").await;
        assert_eq!(min.ext("offset"), Some("0"));
        broker.check(request(rc::GET_MIN_OFFSET, &[("topic", "Offs")]), code::SYSTEM_ERROR, "queueId").await;
        let earliest = broker.check(request(rc::GET_EARLIEST_MSG_STORETIME, &[("topic", "Offs"), ("queueId", "0")]), code::SUCCESS, "").await;
        assert!(earliest.ext("timestamp").unwrap().parse::<i64>().unwrap() > 0);
        broker.check(request(rc::GET_EARLIEST_MSG_STORETIME, &[("queueId", "0")]), code::SYSTEM_ERROR, "topic").await;
        let search = request(rc::SEARCH_OFFSET_BY_TIMESTAMP, &[("topic", "Offs"), ("queueId", "0"), ("timestamp", "0")]);
        let found = broker.check(search.clone(), code::SUCCESS, "").await;
        assert_eq!(found.ext("offset"), Some("0"));
        broker.check(search.with_ext("boundaryType", "MIDDLE"), code::SYSTEM_ERROR, "boundaryType").await;
    });
}

#[test]
fn clients_heartbeat_list_unregister_and_lock() {
    run(|| async {
        let broker = Broker::start().await;
        broker.heartbeat("cg", "T").await;
        let list = broker.check(request(rc::GET_CONSUMER_LIST_BY_GROUP, &[("consumerGroup", "cg")]), code::SUCCESS, "").await;
        assert_eq!(std::str::from_utf8(&list.body).unwrap(), r#"{"consumerIdList":["client-1"]}"#);
        // The heartbeat created the group's retry topic.
        assert!(broker.control.topic("%RETRY%cg").is_some());
        let connections = broker.check(request(rc::GET_CONSUMER_CONNECTION_LIST, &[("consumerGroup", "cg")]), code::SUCCESS, "").await;
        assert!(std::str::from_utf8(&connections.body).unwrap().contains(PEER));
        broker.check(RemotingCommand::request(rc::HEART_BEAT).with_body(b"{not json".to_vec()), code::SYSTEM_ERROR, "heartbeat").await;

        let body = br#"{"consumerGroup":"cg","clientId":"client-1","mqSet":[{"topic":"T","brokerName":"b","queueId":0}]}"#;
        let locked = broker.check(RemotingCommand::request(rc::LOCK_BATCH_MQ).with_body(body.to_vec()), code::SUCCESS, "").await;
        assert!(std::str::from_utf8(&locked.body).unwrap().contains(r#""queueId":0"#));
        broker.check(RemotingCommand::request(rc::LOCK_BATCH_MQ).with_body(b"[]".to_vec()), code::SYSTEM_ERROR, "lock batch body").await;
        broker.check(RemotingCommand::request(rc::UNLOCK_BATCH_MQ).with_body(body.to_vec()), code::SUCCESS, "").await;
        broker.check(RemotingCommand::request(rc::UNLOCK_BATCH_MQ).with_body(br#"{"mqSet":[]}"#.to_vec()), code::SYSTEM_ERROR, "consumerGroup").await;

        broker.check(request(rc::UNREGISTER_CLIENT, &[("clientID", "client-1"), ("consumerGroup", "cg")]), code::SUCCESS, "").await;
        broker.check(request(rc::GET_CONSUMER_LIST_BY_GROUP, &[("consumerGroup", "cg")]), code::SYSTEM_ERROR, "no consumer").await;
        broker.check(request(rc::GET_CONSUMER_CONNECTION_LIST, &[("consumerGroup", "cg")]), 206, "not online").await;
        broker.check(request(rc::UNREGISTER_CLIENT, &[("consumerGroup", "cg")]), code::SYSTEM_ERROR, "clientID").await;
    });
}

#[test]
fn admin_codes_answer_and_refuse() {
    run(|| async {
        let broker = Broker::start().await;
        let create = request(rc::UPDATE_AND_CREATE_TOPIC, &[("topic", "Admin"), ("readQueueNums", "2"), ("writeQueueNums", "2"), ("perm", "6")]);
        broker.check(create, code::SUCCESS, "").await;
        assert_eq!(broker.control.topic("Admin").unwrap().write_queue_nums, 2);
        broker.check(request(rc::UPDATE_AND_CREATE_TOPIC, &[("topic", "TBW102")]), code::SYSTEM_ERROR, "TBW102").await;
        broker.check(request(rc::UPDATE_AND_CREATE_TOPIC, &[("topic", "A"), ("perm", "rw")]), code::SYSTEM_ERROR, "perm").await;

        let all = broker.check(RemotingCommand::request(rc::GET_ALL_TOPIC_CONFIG), code::SUCCESS, "").await;
        assert!(std::str::from_utf8(&all.body).unwrap().contains(r#""topicName":"Admin""#));

        broker.send("Admin", 1, "x", "key-1").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        let stats = broker.check(request(rc::GET_TOPIC_STATS_INFO, &[("topic", "Admin")]), code::SUCCESS, "").await;
        assert!(std::str::from_utf8(&stats.body).unwrap().contains(r#""maxOffset":1"#));
        broker.check(request(rc::GET_TOPIC_STATS_INFO, &[("topic", "Nope")]), code::TOPIC_NOT_EXIST, "Nope").await;
        let consume = broker.check(request(rc::GET_CONSUME_STATS, &[("consumerGroup", "g"), ("topic", "Admin")]), code::SUCCESS, "").await;
        assert!(std::str::from_utf8(&consume.body).unwrap().contains(r#""brokerOffset":1"#));
        broker.check(request(rc::GET_CONSUME_STATS, &[("topic", "Admin")]), code::SYSTEM_ERROR, "consumerGroup").await;

        let group = br#"{"groupName":"sg","retryMaxTimes":3}"#;
        broker.check(RemotingCommand::request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(group.to_vec()), code::SUCCESS, "").await;
        broker.check(RemotingCommand::request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(b"{".to_vec()), code::SYSTEM_ERROR, "").await;

        let found = broker.check(request(rc::QUERY_MESSAGE, &[("topic", "Admin"), ("key", "key-1"), ("maxNum", "4")]), code::SUCCESS, "").await;
        assert_eq!(decode_body_strict(&found.body).unwrap().len(), 1);
        broker.check(request(rc::QUERY_MESSAGE, &[("topic", "Admin"), ("key", "absent"), ("maxNum", "4")]), code::QUERY_NOT_FOUND, "absent").await;

        let sent = broker.send("Admin", 0, "viewed", "k").await;
        let msg_id = sent.ext("msgId").unwrap();
        let (_, offset) = ferromq_store::record::decode_offset_msg_id(msg_id).unwrap();
        let viewed = broker.check(request(rc::VIEW_MESSAGE_BY_ID, &[("offset", &offset.0.to_string())]), code::SUCCESS, "").await;
        assert_eq!(decode_body_strict(&viewed.body).unwrap()[0].body, b"viewed");
        broker.check(request(rc::VIEW_MESSAGE_BY_ID, &[("offset", "3")]), code::SYSTEM_ERROR, "offset 3").await;

        let info = broker.check(RemotingCommand::request(rc::GET_BROKER_RUNTIME_INFO), code::SUCCESS, "").await;
        let info = std::str::from_utf8(&info.body).unwrap();
        for key in ["msgPutTotalTodayNow", "ferromqResidentReadBodies", "ferromqColdReadBodies", "ferromqColdReadsMaxInFlight", "ferromqBlockCacheReads", "ferromqMetadataFileWrites"] {
            assert!(info.contains(key), "{key} missing: {info}");
        }
        let config = broker.check(RemotingCommand::request(rc::GET_BROKER_CONFIG), code::SUCCESS, "").await;
        assert!(std::str::from_utf8(&config.body).unwrap().contains("brokerName="));

        broker.check(request(rc::DELETE_TOPIC_IN_BROKER, &[("topic", "Admin")]), code::SUCCESS, "").await;
        assert!(broker.control.topic("Admin").is_none());
        broker.check(RemotingCommand::request(rc::DELETE_TOPIC_IN_BROKER), code::SYSTEM_ERROR, "topic").await;

        // With the control plane stopped, what needs it is SERVICE_NOT_AVAILABLE.
        broker.control.close();
        broker.check(RemotingCommand::request(rc::GET_ALL_TOPIC_CONFIG), code::SERVICE_NOT_AVAILABLE, "control plane").await;
    });
}

#[test]
fn the_served_list_names_an_error_case_for_every_code() {
    let mut codes: Vec<i32> = SERVED.iter().map(|(c, _)| *c).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), SERVED.len(), "a code is listed twice");
    assert!(SERVED.iter().all(|(_, why)| !why.is_empty()));
}

/// A send (310) to queue 0 of `topic` with the given extra properties.
fn send_with(topic: &str, body: &str, extra: &[(&str, &str)]) -> RemotingCommand {
    let mut props = Properties::new();
    props.insert("KEYS", "k");
    for (name, value) in extra {
        props.insert(name, value);
    }
    let props = String::from_utf8(props.encode()).unwrap();
    request(
        rc::SEND_MESSAGE_V2,
        &[("a", "pg"), ("b", topic), ("c", "TBW102"), ("d", "4"), ("e", "0"), ("f", "0"), ("g", "1"), ("h", "0"), ("i", &props), ("j", "0"), ("k", "false"), ("m", "false")],
    )
    .with_body(body.as_bytes().to_vec())
}

/// One pulled record, owned: (body, properties, reconsumeTimes, physical offset).
type Pulled = (Vec<u8>, Properties, i32, i64);

/// Polls queue `queue_id` of `topic` from offset 0 (inline subscription) until it holds
/// `count` records or 5 s pass; returns them.
async fn wait_records(broker: &Broker, topic: &str, queue_id: u32, count: usize) -> Vec<Pulled> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    let mut records: Vec<Pulled> = Vec::new();
    loop {
        // A pull is capped (maxTransferCountOnMessageInMemory): read on from what we have.
        let reply = broker.reply(pull(rc::PULL_MESSAGE, "probe", topic, &queue_id.to_string(), &records.len().to_string(), "4")).await;
        let mut got = false;
        if let Reply::Messages(_, segments) = reply {
            let mut bytes = Vec::new();
            for segment in &segments {
                let mut part = vec![0u8; segment.len as usize];
                std::os::unix::fs::FileExt::read_exact_at(&*segment.file, &mut part, segment.offset).unwrap();
                bytes.extend(part);
            }
            let decoded = decode_body_strict(&bytes).unwrap();
            got = !decoded.is_empty();
            records.extend(decoded.iter().map(|r| (r.body.to_vec(), r.properties(), r.reconsume_times, r.physical_offset)));
        }
        if records.len() >= count {
            return records;
        }
        if got {
            continue;
        }
        assert!(std::time::Instant::now() < deadline, "{topic}:{queue_id} has {} of {count} records: {:?}", records.len(), records.iter().map(|r| String::from_utf8_lossy(&r.0).into_owned()).collect::<Vec<_>>());
        compio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn max_offset(broker: &Broker, topic: &str, queue_id: u32) -> String {
    let response = broker.check(request(rc::GET_MAX_OFFSET, &[("topic", topic), ("queueId", &queue_id.to_string())]), code::SUCCESS, "").await;
    response.ext("offset").unwrap().to_owned()
}

/// QUERY_MESSAGE returns at most `maxMsgsNumBatch` records whatever its maxNum, and that many
/// when it names none.
#[test]
fn query_message_is_capped_by_max_msgs_num_batch() {
    run(|| async {
        let broker = Broker::start_with(|c| c.store.query_max_messages = 2).await;
        for i in 0..3 {
            broker.send("Capped", 0, &format!("m{i}"), "same-key").await;
        }
        broker.ctx.store.wait_dispatched().await.unwrap();
        for max_num in [Some("10"), None] {
            let mut fields = vec![("topic", "Capped"), ("key", "same-key")];
            fields.extend(max_num.map(|n| ("maxNum", n)));
            let found = broker.check(request(rc::QUERY_MESSAGE, &fields), code::SUCCESS, "").await;
            assert_eq!(decode_body_strict(&found.body).unwrap().len(), 2, "maxNum {max_num:?}");
        }
        let one = broker.check(request(rc::QUERY_MESSAGE, &[("topic", "Capped"), ("key", "same-key"), ("maxNum", "1")]), code::SUCCESS, "").await;
        assert_eq!(decode_body_strict(&one.body).unwrap().len(), 1);
    });
}

#[test]
fn delayed_sends_wait_for_their_level_then_reach_their_queue() {
    run(|| async {
        let broker = Broker::start_with(|c| c.store.message_delay_level = "1s 2s".into()).await;
        let sent_at = std::time::Instant::now();
        let ok = broker.check(send_with("Later", "soon", &[("DELAY", "1")]), code::SUCCESS, "").await;
        assert_eq!(ok.ext("queueId"), Some("0"));
        // A level above the count is clamped to the last (2 s).
        broker.check(send_with("Later", "later", &[("DELAY", "9")]), code::SUCCESS, "").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert_eq!(max_offset(&broker, "Later", 0).await, "0", "a delayed message is visible before its time");
        assert_eq!(broker.ctx.store.queue_offsets(crate::meta::topics::SCHEDULE_TOPIC, QueueId(0)).1.0, 1);
        assert_eq!(broker.ctx.store.queue_offsets(crate::meta::topics::SCHEDULE_TOPIC, QueueId(1)).1.0, 1);
        let first = wait_records(&broker, "Later", 0, 1).await;
        assert!(sent_at.elapsed() >= std::time::Duration::from_millis(950), "level 1 delivered after {:?}", sent_at.elapsed());
        assert_eq!(first[0].0, b"soon");
        assert_eq!(first[0].1.get("DELAY"), None);
        assert_eq!(first[0].1.get("REAL_TOPIC"), Some("Later"));
        let both = wait_records(&broker, "Later", 0, 2).await;
        assert!(sent_at.elapsed() >= std::time::Duration::from_millis(1950), "level 2 delivered after {:?}", sent_at.elapsed());
        assert_eq!(both[1].0, b"later");
        // The progress is served to slaves (and persisted as delayOffset.json).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let body = broker.check(RemotingCommand::request(rc::GET_ALL_DELAY_OFFSET), code::SUCCESS, "").await.body;
            if body.as_ref() == b"{\"offsetTable\":{1:1,2:1}}" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "delay offsets: {}", String::from_utf8_lossy(&body));
            compio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Runtime info reports each level's progress as Java does.
        let info = broker.check(RemotingCommand::request(rc::GET_BROKER_RUNTIME_INFO), code::SUCCESS, "").await;
        let info = String::from_utf8(info.body.to_vec()).unwrap();
        assert!(info.contains("\"scheduleMessageOffset_1\":\"1,1\"") && info.contains("\"scheduleMessageOffset_2\":\"1,1\""), "{info}");
    });
}

#[test]
fn timer_messages_wait_for_their_own_time_then_reach_their_queue() {
    run(|| async {
        let broker = Broker::start().await;
        let sent_at = std::time::Instant::now();
        let now = ferromq_store::store::now_ms();
        broker.check(send_with("Timed", "ms", &[("TIMER_DELAY_MS", "700")]), code::SUCCESS, "").await;
        broker.check(send_with("Timed", "at", &[("TIMER_DELIVER_MS", &(now + 1_300).to_string())]), code::SUCCESS, "").await;
        broker.check(send_with("Timed", "sec", &[("TIMER_DELAY_SEC", "1")]), code::SUCCESS, "").await;
        // OpenMessaging's and Aliyun's start-deliver time is a timer too (the Apache broker would
        // store it at once while its producer believes it delayed).
        broker.check(send_with("Started", "start", &[("__STARTDELIVERTIME", &(now + 1_200).to_string())]), code::SUCCESS, "").await;
        // Already due: stored at once, as Java does; a delay level wins over timer properties.
        broker.check(send_with("Now", "past", &[("TIMER_DELIVER_MS", "5")]), code::SUCCESS, "").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert_eq!(max_offset(&broker, "Now", 0).await, "1");
        assert_eq!(max_offset(&broker, "Timed", 0).await, "0", "a timer message is visible before its time");
        assert_eq!(max_offset(&broker, "Started", 0).await, "0", "a start-deliver-time message is visible before its time");
        assert_eq!(broker.ctx.store.queue_offsets(crate::meta::topics::TIMER_TOPIC, crate::meta::topics::TIMER_QUEUE).1.0, 4);
        let started = wait_records(&broker, "Started", 0, 1).await;
        assert!(sent_at.elapsed() >= std::time::Duration::from_millis(1_150), "delivered after {:?}", sent_at.elapsed());
        assert_eq!(started[0].1.get("__STARTDELIVERTIME"), None, "delivered, not parked again");
        let got = wait_records(&broker, "Timed", 0, 3).await;
        let order: Vec<&[u8]> = got.iter().map(|r| r.0.as_slice()).collect();
        assert_eq!(order, [&b"ms"[..], b"sec", b"at"], "delivered in due order");
        assert!(sent_at.elapsed() >= std::time::Duration::from_millis(1_250), "all three after {:?}", sent_at.elapsed());
        let props = &got[0].1;
        assert_eq!(props.get("TIMER_DELAY_MS"), None, "delivered, not parked again");
        assert_eq!(props.get("REAL_TOPIC"), Some("Timed"));
        let due: i64 = props.get("TIMER_OUT_MS").unwrap().parse().unwrap();
        assert!(due >= now + 700, "TIMER_OUT_MS {due} is the due time");
        // Runtime info: all three taken into the index, none held in memory any more.
        let info = broker.check(RemotingCommand::request(rc::GET_BROKER_RUNTIME_INFO), code::SUCCESS, "").await;
        let info = String::from_utf8(info.body.to_vec()).unwrap();
        for key in ["\"timerOffsetBehind\":\"0\"", "\"timerCongestNum\":\"0\"", "\"timerReadBehind\":\"0\"", "\"timerEnqueueTps\":", "\"timerDequeueTps\":"] {
            assert!(info.contains(key), "{key} in {info}");
        }
    });
}

/// A SEND_BATCH_MESSAGE (320) to queue 0 of `topic` holding one message with body `b` and the
/// encoded properties `props`.
fn batch_of_one(topic: &str, props: &[u8]) -> RemotingCommand {
    let body = b"b";
    let mut entry = Vec::new();
    for v in [(20 + body.len() + 2 + props.len()) as i32, 0, 0, 0, body.len() as i32] {
        entry.extend(v.to_be_bytes());
    }
    entry.extend(body);
    entry.extend((props.len() as u16).to_be_bytes());
    entry.extend(props);
    let mut batch = RemotingCommand { code: rc::SEND_BATCH_MESSAGE, ..send_v2(topic, 0, "", "").with_ext("m", "true") };
    batch.body = entry.into();
    batch
}

#[test]
fn timer_messages_are_refused_when_the_wheel_is_off_or_in_a_batch() {
    run(|| async {
        let broker = Broker::start_with(|c| c.timer.wheel_enable = false).await;
        broker.check(send_with("Kinds", "t", &[("TIMER_DELAY_SEC", "5")]), code::SYSTEM_ERROR, "timerWheelEnable").await;
        // With a delay level the level wins (Java drops the timer properties).
        broker.check(send_with("Kinds", "t", &[("TIMER_DELAY_SEC", "5"), ("DELAY", "1")]), code::SUCCESS, "").await;
        let broker = Broker::start().await;
        broker.check(batch_of_one("Kinds", b"TIMER_DELAY_SEC\x015\x02"), code::MESSAGE_ILLEGAL, "batch").await;
    });
}

#[test]
fn unserved_message_kinds_are_refused_not_ignored() {
    run(|| async {
        let broker = Broker::start().await;
        // Timer messages beyond timerMaxDelaySec, or with a value that is not a time (Java: 13).
        broker.check(send_with("Kinds", "t", &[("TIMER_DELIVER_MS", "99999999999999")]), code::MESSAGE_ILLEGAL, "timerMaxDelaySec").await;
        broker.check(send_with("Kinds", "t", &[("TIMER_DELAY_MS", "soon")]), code::MESSAGE_ILLEGAL, "TIMER_DELAY_MS").await;
        // Cancelling a pending timer message (5.x) is not served: refused, not stored as a message.
        broker.check(send_with("Kinds", "t", &[("TIMER_DEL_UNIQKEY", "x"), ("TIMER_DELAY_SEC", "5")]), code::SYSTEM_ERROR, "TIMER_DEL_UNIQKEY").await;
        // A transactional message cannot also be a timer message (FerroMQ would not apply it).
        broker.check(send_with("Kinds", "t", &[("TRAN_MSG", "true"), ("PGROUP", "pg"), ("TIMER_DELAY_SEC", "5")]), code::SYSTEM_ERROR, "transactional").await;
        // A half message names its producer group, or no check-back could reach it.
        broker.check(send_with("Kinds", "t", &[("TRAN_MSG", "true")]), code::MESSAGE_ILLEGAL, "PGROUP").await;
        let prepared = send_with("Kinds", "t", &[]).with_ext("f", "4");
        broker.check(prepared, code::MESSAGE_ILLEGAL, "PGROUP").await;
        // A batch member with a delay level (Java: 13).
        broker.check(batch_of_one("Kinds", b"DELAY\x012\x02"), code::MESSAGE_ILLEGAL, "batching").await;
        // Nothing was stored by the refused sends.
        assert_eq!(max_offset(&broker, "Kinds", 0).await, "0");
    });
}

#[test]
fn a_sync_master_without_a_slave_never_answers_send_ok() {
    run(|| async {
        let broker = Broker::start_with(|c| c.broker.role = crate::config::BrokerRole::SyncMaster).await;
        let stored = broker.check(send_with("Sync", "b", &[]), code::SLAVE_NOT_AVAILABLE, "").await;
        // Stored on the master: the response carries what clients read.
        assert_eq!(stored.ext("queueOffset"), Some("0"));
        // WAIT=false asks for no replication: SEND_OK.
        broker.check(send_with("Sync", "b", &[("WAIT", "false")]), code::SUCCESS, "").await;
    });
}

#[test]
fn send_backs_retry_with_the_next_level_then_dead_letter() {
    run(|| async {
        let broker = Broker::start_with(|c| c.store.message_delay_level = "1s 1s 1s 1s 1s".into()).await;
        broker.heartbeat("g", "Work").await;
        let sent = broker.check(send_with("Work", "job", &[("TAGS", "t1")]), code::SUCCESS, "").await;
        let (_, offset) = ferromq_store::record::decode_offset_msg_id(sent.ext("msgId").unwrap()).unwrap();
        let back = |offset: i64| {
            request(rc::CONSUMER_SEND_MSG_BACK, &[("offset", &offset.to_string()), ("group", "g"), ("delayLevel", "0"), ("maxReconsumeTimes", "1")])
        };
        // Errors: no record there; no group named.
        broker.check(back(offset.0 + 1), code::SYSTEM_ERROR, "offset").await;
        broker.check(request(rc::CONSUMER_SEND_MSG_BACK, &[("offset", "0"), ("delayLevel", "0")]), code::SYSTEM_ERROR, "group").await;
        // First failure: level 3 + 0, then %RETRY%g with reconsumeTimes 1.
        broker.check(back(offset.0), code::SUCCESS, "").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert_eq!(broker.ctx.store.queue_offsets(crate::meta::topics::SCHEDULE_TOPIC, QueueId(2)).1.0, 1, "not parked at level 3");
        let retried = wait_records(&broker, "%RETRY%g", 0, 1).await;
        let (body, props, reconsume, retry_offset) = &retried[0];
        assert_eq!((body.as_slice(), *reconsume), (&b"job"[..], 1));
        assert_eq!(props.get("RETRY_TOPIC"), Some("Work"));
        assert_eq!(props.get("TAGS"), Some("t1"));
        assert_eq!(props.get("ORIGIN_MESSAGE_ID"), sent.ext("msgId"));
        // Second failure: reconsumeTimes 1 ≥ max 1 → %DLQ%g at once, no delay.
        broker.check(back(*retry_offset), code::SUCCESS, "").await;
        let dead = wait_records(&broker, "%DLQ%g", 0, 1).await;
        let (body, props, reconsume, _) = &dead[0];
        assert_eq!((body.as_slice(), *reconsume), (&b"job"[..], 2));
        assert_eq!(props.get("RETRY_TOPIC"), Some("Work"));
        assert_eq!(props.get("ORIGIN_MESSAGE_ID"), sent.ext("msgId"));
        assert_eq!(props.get("UNIQ_KEY"), Some(sent.ext("transactionId").unwrap()));
        // A client's own resend past the limit goes to the DLQ too (§2.1 step 4).
        let resend = send_with("%RETRY%g", "again", &[("DELAY", "3")]).with_ext("j", "5").with_ext("l", "4");
        broker.check(resend, code::SUCCESS, "").await;
        let dead = wait_records(&broker, "%DLQ%g", 0, 2).await;
        assert_eq!(dead[1].0, b"again");
    });
}

#[test]
fn an_orderly_groups_resend_to_its_retry_topic_is_dead_lettered_while_it_holds_locks() {
    run(|| async {
        // Level 5 (3 + 2) is one minute: nothing parked there comes back during the test.
        let broker = Broker::start_with(|c| c.store.message_delay_level = "1s 1s 1s 1s 1m".into()).await;
        broker.heartbeat("og", "Ordered").await;
        // What an orderly consumer sends once a message has failed maxReconsumeTimes (2) times
        // locally: Java's client reconsumeTimes = 2 (rocketmq-client-rust 1.0.0: 3), with
        // RETRY_TOPIC and DELAY = 3 + 2.
        let resend = |body: &str, reconsume: &str| {
            send_with("%RETRY%og", body, &[("DELAY", "5"), ("RETRY_TOPIC", "Ordered"), ("ORIGIN_MESSAGE_ID", "ID0")])
                .with_ext("j", reconsume)
                .with_ext("l", "2")
        };
        let lock = br#"{"consumerGroup":"og","clientId":"client-1","mqSet":[{"topic":"Ordered","brokerName":"b","queueId":0}]}"#;
        broker.check(RemotingCommand::request(rc::LOCK_BATCH_MQ).with_body(lock.to_vec()), code::SUCCESS, "").await;

        // reconsumeTimes 2 is not above max 2, but the group holds a lock: %DLQ%og at once.
        let stored = broker.check(resend("java", "2"), code::SUCCESS, "").await;
        assert_eq!(stored.ext("queueId"), Some("0"));
        broker.check(resend("rust", "3"), code::SUCCESS, "").await;
        let dead = wait_records(&broker, "%DLQ%og", 0, 2).await;
        for ((body, props, reconsume, _), (want_body, want_reconsume)) in dead.iter().zip([(&b"java"[..], 2), (&b"rust"[..], 3)]) {
            assert_eq!((body.as_slice(), *reconsume), (want_body, want_reconsume));
            assert_eq!(props.get("DELAY"), Some("-1"), "never scheduled");
            assert_eq!(props.get("RETRY_TOPIC"), Some("Ordered"));
            assert_eq!(props.get("ORIGIN_MESSAGE_ID"), Some("ID0"));
        }
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert_eq!(max_offset(&broker, "%RETRY%og", 0).await, "0", "nothing went to the retry topic");
        assert_eq!(broker.ctx.store.queue_offsets(crate::meta::topics::SCHEDULE_TOPIC, QueueId(4)).1.0, 0, "nothing parked at level 5");

        // Once the group holds no lock, the same resend is an ordinary retry (level 5).
        broker.check(RemotingCommand::request(rc::UNLOCK_BATCH_MQ).with_body(lock.to_vec()), code::SUCCESS, "").await;
        broker.check(resend("later", "2"), code::SUCCESS, "").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert_eq!(broker.ctx.store.queue_offsets(crate::meta::topics::SCHEDULE_TOPIC, QueueId(4)).1.0, 1, "parked at level 5");
        assert_eq!(max_offset(&broker, "%DLQ%og", 0).await, "2");
        // A group that never locked is not affected by another group's locks.
        broker.check(RemotingCommand::request(rc::LOCK_BATCH_MQ).with_body(lock.to_vec()), code::SUCCESS, "").await;
        broker.heartbeat("cg", "Ordered").await;
        let concurrent = send_with("%RETRY%cg", "plain", &[]).with_ext("j", "1").with_ext("l", "2");
        broker.check(concurrent, code::SUCCESS, "").await;
        assert_eq!(wait_records(&broker, "%RETRY%cg", 0, 1).await[0].0, b"plain");
        assert_eq!(max_offset(&broker, "%DLQ%cg", 0).await, "0");
    });
}

#[test]
fn transactions_commit_roll_back_and_are_checked_back() {
    run(|| async {
        let broker = Broker::start_with(|c| {
            c.transaction.check_interval_ms = 1000;
            c.transaction.timeout_ms = 1;
            c.transaction.check_max = 2;
        })
        .await;
        let half = |body: &str| send_with("Pay", body, &[("TRAN_MSG", "true"), ("PGROUP", "pg")]);
        let end = |sent: &RemotingCommand, group: &str, resolution: &str| {
            let (_, offset) = ferromq_store::record::decode_offset_msg_id(sent.ext("msgId").unwrap()).unwrap();
            request(
                rc::END_TRANSACTION,
                &[
                    ("producerGroup", group),
                    ("tranStateTableOffset", sent.ext("queueOffset").unwrap()),
                    ("commitLogOffset", &offset.0.to_string()),
                    ("commitOrRollback", resolution),
                    ("msgId", sent.ext("transactionId").unwrap()),
                ],
            )
        };
        let a = broker.check(half("a"), code::SUCCESS, "").await;
        let b = broker.check(half("b"), code::SUCCESS, "").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert_eq!(max_offset(&broker, "Pay", 0).await, "0", "a half message is visible");
        // Mismatches are refused and change nothing.
        broker.check(end(&a, "other", "8"), code::SYSTEM_ERROR, "producer group").await;
        let mut wrong = end(&a, "pg", "8");
        wrong.ext_fields.insert("commitLogOffset", "1");
        broker.check(wrong, code::SYSTEM_ERROR, "").await;
        // Commit: delivered to the real queue, once; rollback: never.
        broker.check(end(&a, "pg", "8"), code::SUCCESS, "").await;
        broker.check(end(&b, "pg", "12"), code::SUCCESS, "").await;
        broker.check(end(&b, "pg", "0"), code::SUCCESS, "").await;
        let delivered = wait_records(&broker, "Pay", 0, 1).await;
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].0, b"a");
        assert_eq!(delivered[0].1.get("TRAN_MSG"), None);
        // An unresolved half message is checked back (a copy with TRANSACTION_CHECK_TIMES),
        // then discarded after check_max checks.
        broker.check(half("c"), code::SUCCESS, "").await;
        let half_records = wait_records(&broker, crate::meta::topics::TRANS_HALF_TOPIC, 0, 5).await;
        let checks: Vec<Option<&str>> = half_records.iter().map(|r| r.1.get("TRANSACTION_CHECK_TIMES")).collect();
        assert_eq!(checks, vec![None, None, None, Some("1"), Some("2")], "the half queue holds a, b, c and c's two check copies");
        let discarded = wait_records(&broker, crate::meta::topics::TRANS_CHECK_MAX_TIME_TOPIC, 0, 1).await;
        assert_eq!(discarded[0].0, b"c");
        assert_eq!(max_offset(&broker, "Pay", 0).await, "1", "only the committed message reached its topic");
    });
}

#[test]
fn the_trace_topic_is_created_by_config_or_by_the_first_trace_send() {
    run(|| async {
        // Clients with message trace on send to RMQ_SYS_TRACE_TOPIC through TBW102.
        let broker = Broker::start().await;
        assert!(broker.control.topic("RMQ_SYS_TRACE_TOPIC").is_none());
        broker.check(send_with("RMQ_SYS_TRACE_TOPIC", "trace", &[]), code::SUCCESS, "").await;
        assert!(broker.control.topic("RMQ_SYS_TRACE_TOPIC").is_some());
        // traceTopicEnable creates msgTraceTopicName at start.
        let broker = Broker::start_with(|c| {
            c.topics.trace_topic_enable = true;
            c.topics.trace_topic_name = "MyTrace".into();
        })
        .await;
        let trace = broker.control.topic("MyTrace").expect("the trace topic exists at start");
        assert_eq!(trace.write_queue_nums, 1);
    });
}

#[test]
fn sql92_subscriptions_get_exactly_the_matching_messages() {
    run(|| async {
        let broker = Broker::start_with(|c| c.consumer.enable_property_filter = true).await;
        for (i, (a, b)) in [("6", "x"), ("4", "x"), ("9", "z"), ("7", "y"), ("x", "y")].into_iter().enumerate() {
            broker.check(send_with("Sql", &format!("m{i}"), &[("a", a), ("b", b)]), code::SUCCESS, "").await;
        }
        broker.check(send_with("Sql", "m5", &[("b", "x")]), code::SUCCESS, "").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        let selector = "a > 5 AND b IN ('x','y')";
        let sql_pull = |expression: &str| pull(rc::PULL_MESSAGE, "g", "Sql", "0", "0", "4").with_ext("subscription", expression).with_ext("expressionType", "SQL92");
        let bodies = pulled_bodies(broker.reply(sql_pull(selector)).await);
        assert_eq!(bodies, vec![b"m0".to_vec(), b"m3".to_vec()]);
        broker.check(sql_pull("a >"), code::SUBSCRIPTION_PARSE_FAILED, "does not parse").await;
        // Registered by a heartbeat, used by pulls without an inline subscription.
        let body = format!(
            r#"{{"clientID":"c","consumerDataSet":[{{"groupName":"sqlg","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{{"topic":"Sql","subString":"{selector}","expressionType":"SQL92","tagsSet":[],"codeSet":[],"subVersion":1}}],"unitMode":false}}],"producerDataSet":[]}}"#
        );
        broker.check(RemotingCommand::request(rc::HEART_BEAT).with_body(body.into_bytes()), code::SUCCESS, "").await;
        let bodies = pulled_bodies(broker.reply(pull(rc::PULL_MESSAGE, "sqlg", "Sql", "0", "0", "0")).await);
        assert_eq!(bodies, vec![b"m0".to_vec(), b"m3".to_vec()]);
        // CHECK_CLIENT_CONFIG refuses a selector that does not parse, at subscription time.
        let check = |expression: &str, kind: &str| {
            RemotingCommand::request(rc::CHECK_CLIENT_CONFIG).with_body(
                format!(r#"{{"clientId":"c","group":"g","subscriptionData":{{"topic":"Sql","subString":"{expression}","expressionType":"{kind}"}}}}"#).into_bytes(),
            )
        };
        broker.check(check(selector, "SQL92"), code::SUCCESS, "").await;
        broker.check(check("*", "TAG"), code::SUCCESS, "").await;
        broker.check(check("a = NULL", "SQL92"), code::SUBSCRIPTION_PARSE_FAILED, "IS NULL").await;
        broker.check(RemotingCommand::request(rc::CHECK_CLIENT_CONFIG), code::SYSTEM_ERROR, "body").await;
        // Without enablePropertyFilter, SQL92 is refused everywhere, never served unfiltered.
        let off = Broker::start().await;
        off.check(check(selector, "SQL92"), code::SYSTEM_ERROR, "enablePropertyFilter").await;
        off.check(send_with("Sql", "m", &[("a", "9")]), code::SUCCESS, "").await;
        off.check(sql_pull(selector), code::SYSTEM_ERROR, "enablePropertyFilter").await;
    });
}

#[test]
fn consume_stats_pull_offset_is_where_the_last_pull_left_off() {
    run(|| async {
        let broker = Broker::start().await;
        for body in ["m0", "m1", "m2"] {
            broker.check(send_with("Pulled", body, &[]), code::SUCCESS, "").await;
        }
        broker.ctx.store.wait_dispatched().await.unwrap();
        broker.check(request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "Pulled"), ("queueId", "0"), ("consumerGroup", "g"), ("commitOffset", "1")]), code::SUCCESS, "").await;
        broker.ctx.offsets.flush(&broker.control).await;
        // (brokerOffset, consumerOffset, pullOffset) of queue 0 in GET_CONSUME_STATS.
        let broker = &broker;
        let offsets = |group: &str| {
            let stats = request(rc::GET_CONSUME_STATS, &[("consumerGroup", group), ("topic", "Pulled")]);
            async move {
                let body = broker.check(stats, code::SUCCESS, "").await.body;
                let text = String::from_utf8(body.to_vec()).unwrap();
                let key = r#"{"brokerName":"#;
                let entry = text.split(key).find(|e| e.contains(r#""queueId":0,"topic":"Pulled"}:"#)).unwrap_or_else(|| panic!("{text}"));
                let wrapper = entry.split_once("}:").unwrap().1;
                let wrapper: serde_json::Value = serde_json::from_str(&wrapper[..=wrapper.find('}').unwrap()]).unwrap();
                let n = |k: &str| wrapper[k].as_i64().unwrap();
                (n("brokerOffset"), n("consumerOffset"), n("pullOffset"))
            }
        };
        // Nothing pulled yet: the committed offset.
        assert_eq!(offsets("g").await, (3, 1, 1));
        // A pull from 1 hands out 1 and 2 and tells the consumer to go on at 3: 2 in flight.
        let Reply::Messages(pulled, _) = broker.reply(pull(rc::PULL_MESSAGE, "g", "Pulled", "0", "1", "4")).await else { panic!("no messages pulled") };
        assert_eq!(pulled.ext("nextBeginOffset"), Some("3"));
        assert_eq!(offsets("g").await, (3, 1, 3));
        assert_eq!(offsets("other").await, (3, 0, 0), "another group's pulls are its own");
        // The latest pull counts (one message from 0: go on at 1), but never below the
        // committed offset.
        let one = pull(rc::PULL_MESSAGE, "g", "Pulled", "0", "0", "4").with_ext("maxMsgNums", 1);
        assert!(matches!(broker.reply(one).await, Reply::Messages(..)));
        assert_eq!(offsets("g").await, (3, 1, 1));
        broker.check(request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "Pulled"), ("queueId", "0"), ("consumerGroup", "g"), ("commitOffset", "3")]), code::SUCCESS, "").await;
        broker.ctx.offsets.flush(&broker.control).await;
        assert_eq!(offsets("g").await, (3, 3, 3));
    });
}

#[test]
fn a_reset_of_one_queue_moves_that_queue_to_the_offset_given() {
    run(|| async {
        let broker = Broker::start().await;
        for body in ["m0", "m1", "m2"] {
            broker.check(send_with("One", body, &[]), code::SUCCESS, "").await;
        }
        broker.ctx.store.wait_dispatched().await.unwrap();
        broker.check(request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "One"), ("queueId", "0"), ("consumerGroup", "g"), ("commitOffset", "3")]), code::SUCCESS, "").await;
        broker.ctx.offsets.flush(&broker.control).await;
        let query = request(rc::QUERY_CONSUMER_OFFSET, &[("topic", "One"), ("queueId", "0"), ("consumerGroup", "g"), ("setZeroIfNotFound", "false")]);
        // mqadmin resetOffsetByTime -b -q -o: timestamp 0, queue 0, offset 1.
        let reset = |queue: &str, offset: &str| {
            request(rc::INVOKE_BROKER_TO_RESET_OFFSET, &[("topic", "One"), ("group", "g"), ("timestamp", "0"), ("isForce", "true"), ("queueId", queue), ("offset", offset)])
        };
        let answer = broker.check(reset("0", "1"), code::SUCCESS, "").await;
        let body = String::from_utf8(answer.body.to_vec()).unwrap();
        assert_eq!(body, r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"One"}:1}}"#.replace("broker-a", &broker.ctx.control.identity().broker_name), "only queue 0, at the offset given");
        assert_eq!(broker.check(query.clone(), code::SUCCESS, "").await.ext("offset"), Some("1"));
        // Without an offset (-1), the time decides: -1 is the end of the queue.
        let to_end = request(rc::INVOKE_BROKER_TO_RESET_OFFSET, &[("topic", "One"), ("group", "g"), ("timestamp", "-1"), ("isForce", "true"), ("queueId", "0"), ("offset", "-1")]);
        broker.check(to_end, code::SUCCESS, "").await;
        assert_eq!(broker.check(query.clone(), code::SUCCESS, "").await.ext("offset"), Some("3"));
        // Outside [min, max + 1], or a queue the topic does not have: refused, nothing moves.
        broker.check(reset("0", "5"), code::SYSTEM_ERROR, "not in consume queue range [0-3]").await;
        broker.check(reset("99", "1"), code::INVALID_PARAMETER, "queueId 99").await;
        assert_eq!(broker.check(query, code::SUCCESS, "").await.ext("offset"), Some("3"));
    });
}

#[test]
fn operators_reset_clone_and_delete_group_offsets() {
    run(|| async {
        let broker = Broker::start().await;
        broker.check(send_with("Reset", "old", &[]), code::SUCCESS, "").await;
        compio::time::sleep(std::time::Duration::from_millis(30)).await;
        let from_ms = ferromq_store::store::now_ms();
        compio::time::sleep(std::time::Duration::from_millis(5)).await;
        broker.check(send_with("Reset", "new1", &[]), code::SUCCESS, "").await;
        broker.check(send_with("Reset", "new2", &[]), code::SUCCESS, "").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        let query = |group: &str| request(rc::QUERY_CONSUMER_OFFSET, &[("topic", "Reset"), ("queueId", "0"), ("consumerGroup", group), ("setZeroIfNotFound", "false")]);
        broker.check(request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "Reset"), ("queueId", "0"), ("consumerGroup", "g"), ("commitOffset", "3")]), code::SUCCESS, "").await;
        broker.ctx.offsets.flush(&broker.control).await;
        // Back to the first message stored at or after `from_ms`.
        let reset = |timestamp: String, force: &str| {
            request(rc::INVOKE_BROKER_TO_RESET_OFFSET, &[("topic", "Reset"), ("group", "g"), ("timestamp", &timestamp), ("isForce", force)])
        };
        let answer = broker.check(reset(from_ms.to_string(), "true"), code::SUCCESS, "").await;
        let body = String::from_utf8(answer.body.to_vec()).unwrap();
        assert!(body.contains("\"queueId\":0,\"topic\":\"Reset\"}:1"), "{body}");
        assert_eq!(broker.check(query("g"), code::SUCCESS, "").await.ext("offset"), Some("1"));
        // Not forced: a group already behind the time keeps its offset.
        broker.check(request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "Reset"), ("queueId", "0"), ("consumerGroup", "g"), ("commitOffset", "0")]), code::SUCCESS, "").await;
        broker.ctx.offsets.flush(&broker.control).await;
        broker.check(reset(from_ms.to_string(), "false"), code::SUCCESS, "").await;
        assert_eq!(broker.check(query("g"), code::SUCCESS, "").await.ext("offset"), Some("0"));
        // -1: the end of every queue.
        broker.check(reset("-1".into(), "true"), code::SUCCESS, "").await;
        assert_eq!(broker.check(query("g"), code::SUCCESS, "").await.ext("offset"), Some("3"));
        broker.check(request(rc::INVOKE_BROKER_TO_RESET_OFFSET, &[("topic", "Nope"), ("group", "g"), ("timestamp", "0")]), code::TOPIC_NOT_EXIST, "Nope").await;
        // Clone, then delete with the offsets.
        broker.check(request(rc::CLONE_GROUP_OFFSET, &[("srcGroup", "g"), ("destGroup", "g2"), ("topic", "Reset")]), code::SUCCESS, "").await;
        assert_eq!(broker.check(query("g2"), code::SUCCESS, "").await.ext("offset"), Some("3"));
        broker.check(request(rc::CLONE_GROUP_OFFSET, &[("srcGroup", "g")]), code::SYSTEM_ERROR, "destGroup").await;
        broker.check(request(rc::DELETE_SUBSCRIPTIONGROUP, &[("groupName", "g2"), ("cleanOffset", "true")]), code::SUCCESS, "").await;
        broker.check(query("g2"), code::QUERY_NOT_FOUND, "").await;
        broker.check(RemotingCommand::request(rc::DELETE_SUBSCRIPTIONGROUP), code::SYSTEM_ERROR, "groupName").await;
        // Running info is the client's: a consumer that is not online cannot answer.
        let info = request(rc::GET_CONSUMER_RUNNING_INFO, &[("consumerGroup", "g"), ("clientId", "nobody")]);
        broker.check(info, code::CONSUMER_NOT_ONLINE, "not online").await;
    });
}

/// A consumer client on a real connection: answers GET_CONSUMER_STATUS_FROM_CLIENT (221) with
/// `body` and keeps the requests it got.
struct StatusClient {
    body: &'static str,
    got: std::cell::RefCell<Vec<RemotingCommand>>,
}

impl ferromq_net::conn::RequestHandler for StatusClient {
    async fn handle(&self, _conn: &ferromq_net::conn::Connection, request: RemotingCommand) -> Option<ferromq_net::conn::Response> {
        self.got.borrow_mut().push(request.clone());
        Some(request.success_response().with_body(self.body.as_bytes().to_vec()).into())
    }
}

fn consumer_heartbeat(client_id: &str, group: &str, version: i32) -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"{client_id}","consumerDataSet":[{{"groupName":"{group}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{{"topic":"T","subString":"*","tagsSet":[],"codeSet":[],"subVersion":0,"expressionType":"TAG"}}],"unitMode":false}}],"producerDataSet":[]}}"#
    );
    RemotingCommand { version, ..RemotingCommand::request(rc::HEART_BEAT).with_body(body.into_bytes()) }
}

#[test]
fn consumer_status_asks_each_online_client_and_leaves_out_those_that_fail() {
    run(|| async {
        let broker = Broker::start().await;
        // client-1 is connected for real (the broker's end of its connection is in the shard's
        // table); client-2's connection is gone, so asking it fails.
        let listener = ferromq_net::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = Rc::new(StatusClient {
            body: r#"{"consumerTable":{},"messageQueueTable":{{"topic":"T","brokerName":"b","queueId":1}:7, {"brokerName":"b","queueId":0,"topic":"T"}:3}}"#,
            got: Default::default(),
        });
        let timeout = std::time::Duration::from_secs(5);
        let (accepted, connected) =
            futures_util::future::join(listener.accept(), ferromq_net::client::Client::connect_with(addr, timeout, client.clone(), Default::default())).await;
        let _client_end = connected.unwrap();
        let conn = ferromq_net::conn::Connection::spawn(accepted.unwrap().0, Rc::new(ferromq_net::conn::NotSupported), Default::default());
        broker.ctx.connections.borrow_mut().insert(conn.id(), conn.clone());
        let live = Origin { connection: conn.id(), peer: PEER.parse().unwrap() };
        let gone = Origin { connection: u64::MAX - 1, peer: PEER.parse().unwrap() };
        for (origin, client_id) in [(live, "client-1"), (gone, "client-2")] {
            let Reply::Response(r) = dispatch(&broker.ctx, origin, consumer_heartbeat(client_id, "g", 473)).await else { panic!() };
            assert_eq!(r.code, code::SUCCESS, "{r:?}");
        }
        let status = |only: Option<&str>| {
            let r = request(rc::INVOKE_BROKER_TO_GET_CONSUMER_STATUS, &[("topic", "T"), ("group", "g")]);
            match only {
                Some(id) => r.with_ext("clientAddr", id),
                None => r,
            }
        };
        let one = r#"{"consumerTable":{"client-1":{{"brokerName":"b","queueId":0,"topic":"T"}:3,{"brokerName":"b","queueId":1,"topic":"T"}:7}},"messageQueueTable":{}}"#;
        // Every client asked; the one that failed is left out, and the answer is still SUCCESS.
        for only in [None, Some(""), Some(" ")] {
            let answer = broker.check(status(only), code::SUCCESS, "").await;
            assert_eq!(String::from_utf8_lossy(&answer.body), one, "clientAddr {only:?}");
        }
        // What the client got: 221 with the topic and the group, nothing else.
        let got = client.got.borrow().clone();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].code, got[0].ext("topic"), got[0].ext("group"), got[0].ext("clientAddr")), (rc::GET_CONSUMER_STATUS_FROM_CLIENT, Some("T"), Some("g"), None));
        // Only the client named: the failing one alone gives an empty table.
        assert_eq!(String::from_utf8_lossy(&broker.check(status(Some("client-1")), code::SUCCESS, "").await.body), one);
        let empty = r#"{"consumerTable":{},"messageQueueTable":{}}"#;
        assert_eq!(String::from_utf8_lossy(&broker.check(status(Some("client-2")), code::SUCCESS, "").await.body), empty);
        assert_eq!(client.got.borrow().len(), 4);
        // A group nobody of is online; a missing header field.
        broker.check(request(rc::INVOKE_BROKER_TO_GET_CONSUMER_STATUS, &[("topic", "T"), ("group", "nobody")]), code::SYSTEM_ERROR, "No Any Consumer online in the consumer group: [nobody]").await;
        broker.check(request(rc::INVOKE_BROKER_TO_GET_CONSUMER_STATUS, &[("topic", "T")]), code::SYSTEM_ERROR, "group").await;
        // A client older than 3.0.7 (V3_0_6 = 27) cannot answer: the whole request fails.
        let Reply::Response(r) = dispatch(&broker.ctx, gone, consumer_heartbeat("client-old", "old", 27)).await else { panic!() };
        assert_eq!(r.code, code::SUCCESS, "{r:?}");
        let old = request(rc::INVOKE_BROKER_TO_GET_CONSUMER_STATUS, &[("topic", "T"), ("group", "old")]);
        broker.check(old, code::SYSTEM_ERROR, "the client does not support this feature. version=V3_0_6").await;
        // A client whose answer does not parse is left out too.
        assert!(super::operator::client_queue_table(b"{\"messageQueueTable\":{{\"topic\":\"T\"}:1}}").is_err());
        conn.close();
    });
}

#[test]
fn replies_are_stored_in_the_reply_topic_and_need_a_requester() {
    run(|| async {
        let broker = Broker::start().await;
        let reply_topic = format!("{}_REPLY_TOPIC", broker.control.identity().cluster_name);
        let reply = |props: &[(&str, &str)]| RemotingCommand { code: rc::SEND_REPLY_MESSAGE_V2, ..send_with(&reply_topic, "answer", props) };
        broker.check(reply(&[("MSG_TYPE", "reply")]), code::SYSTEM_ERROR, "REPLY_TO_CLIENT").await;
        // A requester not connected here does not get it (logged), but the reply is stored.
        broker.check(reply(&[("MSG_TYPE", "reply"), ("REPLY_TO_CLIENT", "gone@1")]), code::SUCCESS, "").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert_eq!(max_offset(&broker, &reply_topic, 0).await, "1");
    });
}

#[test]
fn sends_into_system_topics_are_refused_by_one_rule() {
    run(|| async {
        let broker = Broker::start().await;
        // SELF_TEST_TOPIC and OFFSET_MOVED_EVENT exist (perm 6) and were accepted before; so
        // did TBW102 and 5.x `rmq_sys_` topics.
        let beyond_java = [crate::meta::topics::AUTO_CREATE_TOPIC_KEY_TOPIC, "rmq_sys_anything"];
        for topic in crate::meta::topics::NOT_ALLOWED_SEND_TOPICS.into_iter().chain(beyond_java) {
            let expected = format!("Sending message to topic[{topic}] is forbidden.");
            broker.check(send_v2(topic, 0, "x", "k"), code::NO_PERMISSION, &expected).await;
            let long = request(
                rc::SEND_MESSAGE,
                &[("producerGroup", "pg"), ("topic", topic), ("defaultTopic", "TBW102"), ("defaultTopicQueueNums", "4"), ("queueId", "0"), ("sysFlag", "0"), ("bornTimestamp", "1"), ("flag", "0")],
            )
            .with_body(b"x".to_vec());
            broker.check(long, code::NO_PERMISSION, &expected).await;
            let batch = RemotingCommand { code: rc::SEND_BATCH_MESSAGE, ..send_v2(topic, 0, "", "").with_ext("m", "true") };
            broker.check(batch, code::NO_PERMISSION, &expected).await;
            let reply = RemotingCommand { code: rc::SEND_REPLY_MESSAGE_V2, ..send_with(topic, "answer", &[("MSG_TYPE", "reply"), ("REPLY_TO_CLIENT", "gone@1")]) };
            broker.check(reply, code::NO_PERMISSION, &expected).await;
        }
        broker.ctx.store.wait_dispatched().await.unwrap();
        for topic in [crate::meta::topics::SELF_TEST_TOPIC, crate::meta::topics::OFFSET_MOVED_EVENT] {
            assert_eq!(max_offset(&broker, topic, 0).await, "0", "{topic} was written");
        }
        // Clients still write the trace topic and BenchmarkTest.
        assert_eq!(broker.send("BenchmarkTest", 0, "b", "k").await.code, code::SUCCESS);
    });
}

#[test]
fn a_send_without_a_queue_id_is_refused_naming_the_field() {
    run(|| async {
        let broker = Broker::start().await;
        // 310/320 with the short keys: `e` absent, or empty (absent by §1.4).
        let short = request(rc::SEND_MESSAGE_V2, &[("a", "pg"), ("b", "Orders"), ("c", "TBW102"), ("d", "4"), ("f", "0"), ("g", "1"), ("h", "0")]).with_body(b"x".to_vec());
        broker.check(short.clone(), code::SYSTEM_ERROR, "the request header has no queueId").await;
        broker.check(RemotingCommand { code: rc::SEND_BATCH_MESSAGE, ..short.with_ext("m", "true") }, code::SYSTEM_ERROR, "queueId").await;
        broker.check(send_v2("Orders", 0, "x", "k").with_ext("e", ""), code::SYSTEM_ERROR, "queueId").await;
        // 10 with the long keys.
        let long = request(
            rc::SEND_MESSAGE,
            &[("producerGroup", "pg"), ("topic", "Orders"), ("defaultTopic", "TBW102"), ("defaultTopicQueueNums", "4"), ("sysFlag", "0"), ("bornTimestamp", "1"), ("flag", "0")],
        )
        .with_body(b"x".to_vec());
        broker.check(long, code::SYSTEM_ERROR, "the request header has no queueId").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        for queue in 0..4 {
            assert_eq!(max_offset(&broker, "Orders", queue).await, "0", "queue {queue} was written");
        }
    });
}

#[test]
fn pulls_below_the_min_offset_are_told_where_the_queue_starts() {
    run(|| async {
        let broker = Broker::start().await;
        for i in 0..3 {
            assert_eq!(broker.send("Early", 1, &format!("m{i}"), "k").await.code, code::SUCCESS);
        }
        broker.ctx.store.wait_dispatched().await.unwrap();
        // Java: OFFSET_TOO_SMALL → 21 with nextBeginOffset = min offset (a master), for every
        // negative offset, with or without long polling (sysFlag 2).
        for (offset, flag) in [("-1", "4"), ("-1", "6"), ("-9223372036854775808", "4")] {
            let moved = broker.check(pull(rc::PULL_MESSAGE, "g", "Early", "1", offset, flag), code::PULL_OFFSET_MOVED, "").await;
            assert_eq!((moved.ext("nextBeginOffset"), moved.ext("minOffset"), moved.ext("maxOffset")), (Some("0"), Some("0"), Some("3")), "offset {offset}");
        }
        broker.check(pull(rc::LITE_PULL_MESSAGE, "g", "Early", "1", "-1", "4"), code::PULL_OFFSET_MOVED, "").await;
        // An empty queue: NO_MESSAGE_IN_QUEUE at a non-zero offset is 21 too, next 0.
        let empty = broker.check(pull(rc::PULL_MESSAGE, "g", "Early", "0", "-1", "4"), code::PULL_OFFSET_MOVED, "").await;
        assert_eq!(empty.ext("nextBeginOffset"), Some("0"));
        // Offset 0 still finds the messages.
        assert_eq!(pulled_bodies(broker.reply(pull(rc::PULL_MESSAGE, "g", "Early", "1", "0", "4")).await).len(), 3);
    });
}

/// maxAutoCreatedTopics / maxAutoCreatedSubscriptionGroups: sends, heartbeats and send-backs
/// create nothing beyond them (TOPIC_NOT_EXIST, SUBSCRIPTION_GROUP_NOT_EXIST naming the key);
/// admin requests are never refused; the retry topic of an existing group is still created.
#[test]
fn auto_creation_stops_at_the_limits_and_admin_creation_does_not() {
    run(|| async {
        let broker = Broker::start_with(|c| {
            c.topics.max_auto_created_topics = 3;
            c.topics.max_auto_created_subscription_groups = 2;
        })
        .await;
        let topics = |broker: &Broker| broker.control.view().topics.len();
        let system_topics = topics(&broker);
        // Topic 1 by a send, 2 = %RETRY%g1 with group g1, topic 3 by a send.
        broker.check(send_v2("Auto1", 0, "x", "k"), code::SUCCESS, "").await;
        broker.heartbeat("g1", "Auto1").await;
        assert!(broker.control.view().groups.contains("g1"));
        assert!(broker.control.topic("%RETRY%g1").is_some());
        broker.check(send_v2("Auto2", 0, "x", "k"), code::SUCCESS, "").await;
        assert_eq!(topics(&broker), system_topics + 3);
        // The fourth is refused, and so is a new group whose retry topic would be the fourth.
        broker.check(send_v2("Auto3", 0, "x", "k"), code::TOPIC_NOT_EXIST, "maxAutoCreatedTopics=3").await;
        assert!(broker.control.topic("Auto3").is_none());
        broker.heartbeat("g2", "Auto1").await;
        assert!(!broker.control.view().groups.contains("g2"));
        assert!(broker.control.topic("%RETRY%g2").is_none());
        // Its pulls and send-backs: SUBSCRIPTION_GROUP_NOT_EXIST; g1's pulls are served.
        broker.check(pull(rc::PULL_MESSAGE, "g2", "Auto1", "0", "0", "4"), code::SUBSCRIPTION_GROUP_NOT_EXIST, "g2").await;
        let back = request(rc::CONSUMER_SEND_MSG_BACK, &[("offset", "0"), ("group", "g2"), ("delayLevel", "0")]);
        broker.check(back, code::SUBSCRIPTION_GROUP_NOT_EXIST, "maxAutoCreatedTopics").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert_eq!(pulled_bodies(broker.reply(pull(rc::PULL_MESSAGE, "g1", "Auto1", "0", "0", "4")).await).len(), 1);
        // Admin creations go beyond the limits.
        let create = request(rc::UPDATE_AND_CREATE_TOPIC, &[("topic", "ByAdmin"), ("readQueueNums", "2"), ("writeQueueNums", "2"), ("perm", "6")]);
        broker.check(create, code::SUCCESS, "").await;
        for group in ["ag1", "ag2"] {
            let body = format!(r#"{{"groupName":"{group}"}}"#);
            broker.check(RemotingCommand::request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(body.into_bytes()), code::SUCCESS, "").await;
        }
        // An admin-created group's retry topic follows from the group, whatever the count.
        broker.heartbeat("ag1", "ByAdmin").await;
        assert!(broker.control.topic("%RETRY%ag1").is_some());
        // Three groups now (g1, ag1, ag2) ≥ 2: a new group is refused for the group limit.
        broker.check(send_v2("%RETRY%g3", 0, "x", "k"), code::TOPIC_NOT_EXIST, "maxAutoCreatedTopics").await;
        let back = request(rc::CONSUMER_SEND_MSG_BACK, &[("offset", "0"), ("group", "g3"), ("delayLevel", "0")]);
        broker.check(back, code::SUBSCRIPTION_GROUP_NOT_EXIST, "maxAutoCreatedSubscriptionGroups=2").await;
        // Admin changes are answered once on disk: in the file or its journal.
        let on_disk = |name: &str| {
            let path = broker._dir.0.join("store/config").join(name);
            let mut bytes = std::fs::read(&path).unwrap_or_default();
            bytes.extend(std::fs::read(crate::meta::journal::journal_path(&path)).unwrap_or_default());
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let file = on_disk("subscriptionGroup.json");
        assert!(file.contains("\"ag2\"") && !file.contains("\"g2\"") && !file.contains("\"g3\""), "{file}");
        let file = on_disk("topics.json");
        assert!(file.contains("\"ByAdmin\"") && !file.contains("\"Auto3\""), "{file}");
    });
}

/// With autoCreateSubscriptionGroup off, pulls of a group nobody created are refused as Java
/// refuses them; a created group's are served.
#[test]
fn pulls_of_a_group_never_created_are_refused_when_groups_are_not_auto_created() {
    run(|| async {
        let broker = Broker::start_with(|c| c.topics.auto_create_subscription_group = false).await;
        broker.check(send_v2("T", 0, "x", "k"), code::SUCCESS, "").await;
        broker.check(pull(rc::PULL_MESSAGE, "nobody", "T", "0", "0", "4"), code::SUBSCRIPTION_GROUP_NOT_EXIST, "nobody").await;
        broker.check(RemotingCommand::request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(br#"{"groupName":"made"}"#.to_vec()), code::SUCCESS, "").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert_eq!(pulled_bodies(broker.reply(pull(rc::PULL_MESSAGE, "made", "T", "0", "0", "4")).await).len(), 1);
    });
}

// ------------------------------------------------------------------------------------------
// Slaves (issue 9, PROTOCOL.md §7.5, §7.6)
// ------------------------------------------------------------------------------------------

/// A slave broker: `brokerRole=SLAVE`, `brokerId=1`.
async fn slave() -> Broker {
    Broker::start_with(|c| {
        c.broker.role = crate::config::BrokerRole::Slave;
        c.broker.id = 1;
    })
    .await
}

/// GET_ALL_CONSUMER_OFFSET (43) and GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201): the tables a slave
/// copies, as their files hold them.
#[test]
fn the_offset_and_group_tables_a_slave_copies_are_served() {
    run(|| async {
        let broker = Broker::start().await;
        broker.send("Tables", 0, "a", "k").await;
        let commit = request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "Tables"), ("queueId", "0"), ("consumerGroup", "tg"), ("commitOffset", "1")]);
        broker.check(commit, code::SUCCESS, "").await;
        broker.ctx.offsets.flush(&broker.control).await;
        let offsets = broker.check(RemotingCommand::request(rc::GET_ALL_CONSUMER_OFFSET), code::SUCCESS, "").await;
        assert_eq!(std::str::from_utf8(&offsets.body).unwrap(), r#"{"offsetTable":{"Tables@tg":{0:1}}}"#);
        let group = br#"{"groupName":"copied","brokerId":1}"#;
        broker.check(RemotingCommand::request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(group.to_vec()), code::SUCCESS, "").await;
        let groups = broker.check(RemotingCommand::request(rc::GET_ALL_SUBSCRIPTIONGROUP_CONFIG), code::SUCCESS, "").await;
        let parsed = crate::meta::groups::GroupWrapper::parse(&groups.body).unwrap();
        assert_eq!(parsed.groups["copied"].broker_id, 1);
        assert!(parsed.groups.contains_key("TOOLS_CONSUMER") && parsed.data_version.is_some(), "{parsed:?}");
        // Both need the control plane.
        broker.control.close();
        broker.check(RemotingCommand::request(rc::GET_ALL_CONSUMER_OFFSET), code::SERVICE_NOT_AVAILABLE, "control plane").await;
        broker.check(RemotingCommand::request(rc::GET_ALL_SUBSCRIPTIONGROUP_CONFIG), code::SERVICE_NOT_AVAILABLE, "control plane").await;
    });
}

/// §7.5: a slave stores no message and changes no table of its own; it says why.
#[test]
fn a_slave_refuses_writes_and_says_it_is_a_slave() {
    run(|| async {
        let broker = slave().await;
        // Sends: 14, whatever the form, even to a topic that exists.
        broker.check(send_v2("SELF_TEST_TOPIC", 0, "x", "k"), code::SERVICE_NOT_AVAILABLE, "slave").await;
        broker.check(send_v2("BenchmarkTest", 0, "x", "k"), code::SERVICE_NOT_AVAILABLE, "is a slave").await;
        for send_code in [rc::SEND_MESSAGE, rc::SEND_BATCH_MESSAGE, rc::SEND_REPLY_MESSAGE_V2] {
            let send = RemotingCommand { code: send_code, ..send_v2("BenchmarkTest", 0, "x", "k") };
            broker.check(send, code::SERVICE_NOT_AVAILABLE, "slave").await;
        }
        // END_TRANSACTION: 11; CONSUMER_SEND_MSG_BACK: 1 (the client resends to the master).
        let end = request(rc::END_TRANSACTION, &[("producerGroup", "pg"), ("tranStateTableOffset", "0"), ("commitLogOffset", "0"), ("commitOrRollback", "8")]);
        broker.check(end, code::SLAVE_NOT_AVAILABLE, "slave").await;
        let back = request(rc::CONSUMER_SEND_MSG_BACK, &[("offset", "0"), ("group", "TOOLS_CONSUMER"), ("delayLevel", "0")]);
        broker.check(back, code::SYSTEM_ERROR, "slave").await;
        // Admin changes of topics, groups and group offsets: 1, with Java 5.x's remark.
        let admin = [
            request(rc::UPDATE_AND_CREATE_TOPIC, &[("topic", "OnSlave"), ("readQueueNums", "1"), ("writeQueueNums", "1"), ("perm", "6")]),
            request(rc::DELETE_TOPIC_IN_BROKER, &[("topic", "BenchmarkTest")]),
            RemotingCommand::request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(br#"{"groupName":"onslave"}"#.to_vec()),
            request(rc::DELETE_SUBSCRIPTIONGROUP, &[("groupName", "TOOLS_CONSUMER")]),
            request(rc::INVOKE_BROKER_TO_RESET_OFFSET, &[("topic", "BenchmarkTest"), ("group", "TOOLS_CONSUMER"), ("timestamp", "0"), ("isForce", "true")]),
            request(rc::CLONE_GROUP_OFFSET, &[("srcGroup", "TOOLS_CONSUMER"), ("destGroup", "other")]),
        ];
        for change in admin {
            broker.check(change, code::SYSTEM_ERROR, super::slave::ADMIN_ON_SLAVE).await;
        }
        assert!(broker.control.topic("OnSlave").is_none() && broker.control.topic("BenchmarkTest").is_some());
        assert!(!broker.control.view().groups.contains("onslave") && broker.control.view().groups.contains("TOOLS_CONSUMER"));
        // A heartbeat registers the consumer but creates neither its group nor its retry topic.
        broker.heartbeat("fresh", "BenchmarkTest").await;
        let list = broker.check(request(rc::GET_CONSUMER_LIST_BY_GROUP, &[("consumerGroup", "fresh")]), code::SUCCESS, "").await;
        assert_eq!(std::str::from_utf8(&list.body).unwrap(), r#"{"consumerIdList":["client-1"]}"#);
        assert!(broker.control.topic("%RETRY%fresh").is_none(), "a slave created a retry topic");
        assert!(!broker.control.view().groups.contains("fresh"), "a slave created a group");
        // ... so a group its master never had is not served here.
        broker.check(pull(rc::PULL_MESSAGE, "fresh", "BenchmarkTest", "0", "0", "4"), code::SUBSCRIPTION_GROUP_NOT_EXIST, "slave").await;
        // Reads and offsets are served. An explicit commit is stored (the master's copy
        // overwrites it at the next sync); a pull's piggy-backed commit is not (§7.5).
        let commit = request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "BenchmarkTest"), ("queueId", "1"), ("consumerGroup", "TOOLS_CONSUMER"), ("commitOffset", "7")]);
        broker.check(commit, code::SUCCESS, "").await;
        let piggy_back = pull(rc::PULL_MESSAGE, "TOOLS_CONSUMER", "BenchmarkTest", "2", "0", "5").with_ext("commitOffset", "9");
        broker.check(piggy_back, code::PULL_NOT_FOUND, "").await;
        broker.ctx.offsets.flush(&broker.control).await;
        let offsets = broker.check(RemotingCommand::request(rc::GET_ALL_CONSUMER_OFFSET), code::SUCCESS, "").await;
        assert_eq!(std::str::from_utf8(&offsets.body).unwrap(), r#"{"offsetTable":{"BenchmarkTest@TOOLS_CONSUMER":{1:7}}}"#);
        broker.check(RemotingCommand::request(rc::GET_ALL_TOPIC_CONFIG), code::SUCCESS, "").await;
    });
}

/// §7.6: `suggestWhichBrokerId` on a master (0 unless slaveReadEnable lets the group's
/// brokerId through) and on a slave (0, and PULL_RETRY_IMMEDIATELY at once instead of holding,
/// while its master is online; served as usual without one).
#[test]
fn pull_answers_suggest_the_broker_section_7_6_names() {
    run(|| async {
        let reading_from_1 = br#"{"groupName":"reads1","brokerId":1}"#;
        let suggested = |response: &RemotingCommand| response.ext("suggestWhichBrokerId").map(str::to_owned);
        for (slave_read_enable, expected) in [(false, "0"), (true, "1")] {
            let master = Broker::start_with(|c| c.consumer.slave_read_enable = slave_read_enable).await;
            let moved = master.check(pull(rc::PULL_MESSAGE, "TOOLS_CONSUMER", "BenchmarkTest", "0", "5", "4"), code::PULL_OFFSET_MOVED, "").await;
            assert_eq!(moved.ext("nextBeginOffset"), Some("0"));
            master.check(RemotingCommand::request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(reading_from_1.to_vec()), code::SUCCESS, "").await;
            master.check(send_v2("Steer", 0, "x", "k"), code::SUCCESS, "").await;
            master.ctx.store.wait_dispatched().await.unwrap();
            let Reply::Messages(found, _) = master.reply(pull(rc::PULL_MESSAGE, "reads1", "Steer", "0", "0", "4")).await else { panic!("no messages") };
            assert_eq!(suggested(&found).as_deref(), Some(expected), "slaveReadEnable={slave_read_enable}");
            // A group at its default brokerId (0) is always sent to the master.
            let other = master.check(pull(rc::PULL_MESSAGE, "other", "Steer", "0", "1", "4"), code::PULL_NOT_FOUND, "").await;
            assert_eq!(suggested(&other).as_deref(), Some("0"));
        }

        let broker = slave().await;
        let held = || pull(rc::PULL_MESSAGE, "TOOLS_CONSUMER", "BenchmarkTest", "0", "0", "6").with_ext("suspendTimeoutMillis", "300");
        // No master known: the slave serves (a caught-up pull is held as usual).
        assert!(!broker.control.master_online());
        let started = std::time::Instant::now();
        let served = broker.check(held(), code::PULL_NOT_FOUND, "").await;
        assert_eq!(suggested(&served).as_deref(), Some("0"));
        assert!(started.elapsed() >= std::time::Duration::from_millis(250), "not held: {:?}", started.elapsed());
        // An offset the slave's replica does not hold (it may lag, or start later) is not moved:
        // retry at the same offset (a master answers PULL_OFFSET_MOVED to 0 here).
        let beyond = broker.check(pull(rc::PULL_MESSAGE, "TOOLS_CONSUMER", "BenchmarkTest", "0", "5", "4"), code::PULL_RETRY_IMMEDIATELY, "").await;
        assert_eq!((beyond.ext("nextBeginOffset"), suggested(&beyond).as_deref()), (Some("5"), Some("0")));
        // Master online: back to the master at once.
        broker.control.learn_master(Some("127.0.0.1:1".to_owned()), Some("127.0.0.1:2".to_owned()));
        assert!(broker.control.master_online());
        assert_eq!(broker.control.master_addr().as_deref(), Some("127.0.0.1:1"));
        assert_eq!(broker.control.ha_master_addr().as_deref(), Some("127.0.0.1:2"));
        let started = std::time::Instant::now();
        let steered = broker.check(held(), code::PULL_RETRY_IMMEDIATELY, "").await;
        assert_eq!(suggested(&steered).as_deref(), Some("0"));
        assert!(started.elapsed() < std::time::Duration::from_millis(250), "held for {:?}", started.elapsed());
        // The master stops answering: the slave serves again.
        broker.control.set_master_reachable(false);
        broker.check(held().with_ext("suspendTimeoutMillis", "0"), code::PULL_NOT_FOUND, "").await;
    });
}

/// With `slaveReadEnable`, a consumer reading further behind its shard's log head than
/// `accessMessageInMemoryMaxRatio` of memory is suggested its group's
/// `whichBrokerWhenConsumeSlowly` (Java's `suggestPullingFromSlave`); one reading at the head
/// its `brokerId`.
#[test]
fn a_consumer_reading_cold_data_is_steered_to_its_slow_consumer_broker() {
    run(|| async {
        // A ratio of 0: a record with anything written after it (its batch's commit marker at
        // least) counts as far behind; 100: nothing does on a machine with this little log.
        for (ratio_pct, expected) in [(0, "2"), (100, "0")] {
            let master = Broker::start_with(|c| {
                c.consumer.slave_read_enable = true;
                c.consumer.access_message_in_memory_max_ratio_pct = ratio_pct;
            })
            .await;
            let group = br#"{"groupName":"cold","brokerId":0,"whichBrokerWhenConsumeSlowly":2}"#;
            master.check(RemotingCommand::request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(group.to_vec()), code::SUCCESS, "").await;
            master.check(send_v2("Cold", 0, "first", "k1"), code::SUCCESS, "").await;
            master.ctx.store.wait_dispatched().await.unwrap();
            let Reply::Messages(found, _) = master.reply(pull(rc::PULL_MESSAGE, "cold", "Cold", "0", "0", "4")).await else { panic!("no messages") };
            assert_eq!(found.ext("suggestWhichBrokerId"), Some(expected), "accessMessageInMemoryMaxRatio={ratio_pct}");
        }
    });
}

/// `haMasterAddress` overrides the learned HA address; the remoting address is learned only.
#[test]
fn the_configured_ha_master_address_wins_over_the_learned_one() {
    run(|| async {
        let broker = Broker::start_with(|c| {
            c.broker.role = crate::config::BrokerRole::Slave;
            c.broker.id = 1;
            c.ha.master_address = Some("10.0.0.9:10912".to_owned());
        })
        .await;
        assert_eq!((broker.control.master_addr(), broker.control.ha_master_addr().as_deref()), (None, Some("10.0.0.9:10912")));
        assert!(broker.control.learn_master(Some("10.0.0.1:10911".to_owned()), Some("10.0.0.1:10912".to_owned())));
        assert_eq!(broker.control.ha_master_addr().as_deref(), Some("10.0.0.9:10912"));
        assert_eq!(broker.control.master_addr().as_deref(), Some("10.0.0.1:10911"));
        // The same answer again changes nothing; an answer without a master forgets it.
        assert!(!broker.control.learn_master(Some("10.0.0.1:10911".to_owned()), Some("10.0.0.1:10912".to_owned())));
        assert!(broker.control.learn_master(None, None));
        assert_eq!(broker.control.master_addr(), None);
        assert!(!broker.control.master_online());
    });
}

/// The slave's sync task against a master served over TCP in this runtime: the four tables
/// are copied (topics and groups replaced only when the master's version moved), and offsets
/// committed on the slave while the master was unreachable go back to the master where larger.
#[test]
fn a_slave_copies_its_master_and_merges_its_own_commits_back() {
    run(|| async {
        use std::cell::RefCell;

        use crate::control::Command;
        use crate::control::plane::{Batch, offset_key};
        use crate::control::slave_sync::SlaveSync;

        // The master, serving on a loopback port.
        let master = Broker::start_with(|c| c.store.message_delay_level = "1s 2s".into()).await;
        let listener = ferromq_net::server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let master_addr = listener.local_addr().unwrap().to_string();
        let service = Rc::new(super::BrokerService { ctx: master.ctx.clone() });
        compio::runtime::spawn(ferromq_net::server::serve(listener, service, master.control.config().server_limits(), std::future::pending::<()>())).detach();
        let create = request(rc::UPDATE_AND_CREATE_TOPIC, &[("topic", "Synced"), ("readQueueNums", "2"), ("writeQueueNums", "2"), ("perm", "6")]);
        master.check(create, code::SUCCESS, "").await;
        master.check(RemotingCommand::request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(br#"{"groupName":"sg"}"#.to_vec()), code::SUCCESS, "").await;
        let commit = |queue: &str, offset: &str| request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "Synced"), ("queueId", queue), ("consumerGroup", "sg"), ("commitOffset", offset)]);
        master.check(commit("0", "5"), code::SUCCESS, "").await;
        master.check(commit("1", "8"), code::SUCCESS, "").await;
        master.ctx.offsets.flush(&master.control).await;
        // A delayed message delivered: the master's delay offsets move.
        master.check(send_with("Synced", "later", &[("DELAY", "1")]), code::SUCCESS, "").await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while master.call(RemotingCommand::request(rc::GET_ALL_DELAY_OFFSET)).await.body.as_ref() != b"{\"offsetTable\":{1:1}}" {
            assert!(std::time::Instant::now() < deadline, "the master's delay level 1 never moved");
            compio::time::sleep(std::time::Duration::from_millis(50)).await;
        }

        // The slave's control plane, driven by hand.
        let dir = std::env::temp_dir().join(format!("ferromq-slave-sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _cleanup = TestDir(dir.clone());
        let mut config = BrokerConfig::test_min(dir.join("store"));
        config.broker.role = crate::config::BrokerRole::Slave;
        config.broker.id = 1;
        let store_host: SocketAddr = "127.0.0.1:10921".parse().unwrap();
        let identity = BrokerIdentity { broker_addr: store_host.to_string(), store_host, broker_name: config.broker.name.clone(), cluster_name: config.broker.cluster_name.clone(), broker_id: 1 };
        let (commands, _inbox) = async_channel::bounded(16);
        let handle = Arc::new(ControlHandle::new(Arc::new(config), identity, commands));
        let (events, _events_rx) = async_channel::bounded(16);
        let plane = Rc::new(RefCell::new(ControlPlane::load(handle.clone(), dir.join("store").join("config"), vec![events]).unwrap()));
        let sync = SlaveSync::new(handle.clone());
        let register_now = event_listener::Event::new();
        let local_commit = |queue: u32, offset: i64| {
            let mut plane = plane.borrow_mut();
            let mut batch = Batch::default();
            plane.apply(Command::CommitOffsets { commits: vec![(offset_key("sg", "Synced", QueueId(queue)), offset)] }, &mut batch);
            plane.finish(batch);
        };
        let query = |plane: &Rc<RefCell<ControlPlane>>, queue: u32| {
            let mut batch = Batch::default();
            let (reply, mut answer) = futures_channel::oneshot::channel();
            plane.borrow_mut().apply(Command::QueryOffset { key: offset_key("sg", "Synced", QueueId(queue)), reply }, &mut batch);
            plane.borrow_mut().finish(batch);
            answer.try_recv().unwrap().unwrap()
        };

        // No master known: nothing happens.
        sync.round(&plane, &register_now).await;
        assert!(handle.topic("Synced").is_none());
        // The master's address learned: everything is copied, and the view republished.
        handle.learn_master(Some(master_addr.clone()), None);
        sync.round(&plane, &register_now).await;
        assert!(handle.master_online());
        assert_eq!(handle.topic("Synced").map(|t| t.read_queue_nums), Some(2));
        assert!(handle.view().groups.contains("sg"));
        assert_eq!((query(&plane, 0), query(&plane, 1)), (Some(5), Some(8)));
        let (reply, mut delay_offsets) = futures_channel::oneshot::channel();
        let mut batch = Batch::default();
        plane.borrow_mut().apply(Command::DelayOffsetsJson { reply }, &mut batch);
        plane.borrow_mut().finish(batch);
        assert_eq!(delay_offsets.try_recv().unwrap().unwrap(), b"{\"offsetTable\":{1:1}}");
        let slave_topics = plane.borrow().handle().view().version;
        // An unchanged master changes nothing on the next round.
        sync.round(&plane, &register_now).await;
        assert_eq!(plane.borrow().handle().view().version, slave_topics, "an unchanged master republished the view");

        // The master becomes unreachable (its address stops answering); commits land on the
        // slave meanwhile: queue 0 moves past the master's, queue 1 stays behind it.
        handle.learn_master(Some("127.0.0.1:1".to_owned()), None);
        sync.round(&plane, &register_now).await;
        assert!(!handle.master_online());
        local_commit(0, 12);
        local_commit(1, 3);
        // The master is back: queue 0 goes back to it, queue 1 takes the master's offset.
        handle.learn_master(Some(master_addr.clone()), None);
        sync.round(&plane, &register_now).await;
        assert!(handle.master_online());
        assert_eq!((query(&plane, 0), query(&plane, 1)), (Some(12), Some(8)));
        let on_master = |queue: &str| request(rc::QUERY_CONSUMER_OFFSET, &[("topic", "Synced"), ("queueId", queue), ("consumerGroup", "sg")]);
        assert_eq!(master.call(on_master("0")).await.ext("offset"), Some("12"), "the slave's larger offset reached the master");
        assert_eq!(master.call(on_master("1")).await.ext("offset"), Some("8"), "the master's larger offset stayed");
        // A commit made while the master is reachable is not pushed: the master's copy wins.
        local_commit(1, 20);
        sync.round(&plane, &register_now).await;
        assert_eq!(query(&plane, 1), Some(8));
        assert_eq!(master.call(on_master("1")).await.ext("offset"), Some("8"));

        // The copies reach the slave's files through the control plane's own writers.
        plane.borrow_mut().flush_offsets();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let topics = std::fs::read_to_string(dir.join("store/config/topics.json")).unwrap_or_default();
            if topics.contains("\"Synced\"") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "topics.json never got the master's topic");
            compio::time::sleep(std::time::Duration::from_millis(20)).await;
            let completions = plane.borrow().write_completions();
            if let Ok(outcome) = completions.try_recv() {
                plane.borrow_mut().write_finished(outcome);
            }
        }
        let offsets = std::fs::read_to_string(dir.join("store/config/consumerOffset.json")).unwrap();
        assert!(offsets.contains(r#""Synced@sg":{0:12,1:8}"#), "{offsets}");
    });
}

/// GET_BROKER_RUNTIME_INFO reports the partial checkpoints: consume-queue entries held unsynced
/// in memory (fewer than flushConsumeQueueLeastPages' worth per queue), the log a crash would
/// replay for them, and the thorough checkpoint that syncs them all.
#[test]
fn runtime_info_reports_unsynced_consume_queue_entries_until_a_thorough_checkpoint() {
    run(|| async {
        let broker = Broker::start().await;
        let thorough_before = number(&runtime_info(&broker).await, "ferromqThoroughCheckpoints");
        for i in 0..3 {
            broker.send("Light", 0, &format!("m{i}"), "k").await;
        }
        let store = &broker.ctx.store;
        store.wait_dispatched().await.unwrap();
        // A periodic checkpoint leaves a queue with 3 of its 409 entries unsynced.
        store.checkpoint_with(ferromq_store::store::Sweep::Partial).await.unwrap();
        let info = runtime_info(&broker).await;
        assert!(number(&info, "ferromqCqUnsyncedEntries") >= 3.0, "{info:?}");
        assert!(number(&info, "ferromqCheckpointReplayBehindBytes") > 0.0, "{info:?}");
        assert!(number(&info, "ferromqCheckpoints") >= 1.0, "{info:?}");
        store.checkpoint().await.unwrap();
        let info = runtime_info(&broker).await;
        assert_eq!(info["ferromqCqUnsyncedEntries"], "0");
        assert_eq!(info["ferromqCheckpointReplayBehindBytes"], "0");
        assert!(number(&info, "ferromqThoroughCheckpoints") > thorough_before, "{info:?}");
    });
}

/// GET_BROKER_RUNTIME_INFO's table, as mqadmin reads it.
async fn runtime_info(broker: &Broker) -> serde_json::Map<String, serde_json::Value> {
    let info = broker.check(RemotingCommand::request(rc::GET_BROKER_RUNTIME_INFO), code::SUCCESS, "").await;
    let mut body: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    let serde_json::Value::Object(table) = body["table"].take() else { panic!("no table: {body}") };
    for (key, value) in &table {
        assert!(value.is_string(), "{key} is not a string: {value}");
    }
    table
}

fn number(table: &serde_json::Map<String, serde_json::Value>, key: &str) -> f64 {
    let text = table.get(key).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("{key} missing"));
    text.parse().unwrap_or_else(|_| panic!("{key} is not a number: {text:?}"))
}

#[test]
fn sizes_read_as_java_writes_them() {
    use crate::handlers::admin::human_readable_bytes;
    assert_eq!(human_readable_bytes(0), "0 B");
    assert_eq!(human_readable_bytes(1023), "1023 B");
    assert_eq!(human_readable_bytes(1024), "1.0 KiB");
    assert_eq!(human_readable_bytes(1536), "1.5 KiB");
    assert_eq!(human_readable_bytes(105_548_627_968), "98.3 GiB");
    assert_eq!(human_readable_bytes(1 << 40), "1.0 TiB");
    assert_eq!(human_readable_bytes(u64::MAX), "16.0 EiB");
}

#[test]
fn runtime_figures_are_measured_not_made_up() {
    run(|| async {
        let broker = Broker::start().await;
        let stats = &broker.ctx.runtime_stats;
        let appended = || broker.ctx.store.stats().appended_messages;
        let before = runtime_info(&broker).await;
        // The version is the one every response announces.
        let announced = broker.call(RemotingCommand::request(rc::GET_BROKER_RUNTIME_INFO)).await.version;
        assert_eq!(before["brokerVersion"], announced.to_string());
        assert_eq!(before["brokerVersionDesc"], "V5_3_3", "the name of ordinal {announced}");
        assert_eq!(before["bootTimestamp"], broker.control.boot_timestamp_ms.to_string());
        assert!(before["runtime"].as_str().unwrap().starts_with("[ 0 days, 0 hours, "), "{:?}", before["runtime"]);
        assert_eq!(before["putTps"], "0.0 0.0 0.0", "no samples yet");
        assert_eq!(before["earliestMessageTimeStamp"], "-1", "an empty log");

        // A sample 10 s ago, four messages (test_min's most per pull), one read that finds them and one that misses, a
        // sample now: every rate is over those 10 s.
        let t0 = ferromq_store::store::now_ms() - 10_000;
        stats.sample(t0, appended());
        let sent_from = ferromq_store::store::now_ms();
        let mut offsets = Vec::new();
        for i in 0..4 {
            let ok = broker.send("Figures", 0, &format!("m{i}"), "k").await;
            assert_eq!(ok.code, code::SUCCESS, "{ok:?}");
            offsets.push(ferromq_store::record::decode_offset_msg_id(ok.ext("msgId").unwrap()).unwrap().1.0);
        }
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert_eq!(pulled_bodies(broker.reply(pull(rc::PULL_MESSAGE, "g", "Figures", "0", "0", "4")).await).len(), 4);
        broker.check(pull(rc::PULL_MESSAGE, "g", "Figures", "0", "4", "4"), code::PULL_NOT_FOUND, "").await;
        stats.sample(t0 + 10_000, appended());
        let info = runtime_info(&broker).await;
        assert_eq!(info["putTps"], "0.4 0.4 0.4");
        assert_eq!(info["getFoundTps"], "0.1 0.1 0.1");
        assert_eq!(info["getMissTps"], "0.1 0.1 0.1");
        assert_eq!(info["getTotalTps"], "0.2 0.2 0.2");
        assert_eq!(info["getTransferredTps"], "0.4 0.4 0.4");
        assert_eq!(info["getTransferedTps"], info["getTransferredTps"]);
        assert_eq!(info["msgPutTotalTodayNow"], "4");
        assert_eq!(info["msgGetTotalTodayNow"], "4");

        // The commit log's client-visible range is the store's, and holds every message sent.
        let (min, max) = (number(&info, "commitLogMinOffset") as i64, number(&info, "commitLogMaxOffset") as i64);
        let store = &broker.ctx.store;
        assert_eq!(Some(min), store.client_offset(store.min_log_offset()).map(|o| o.0));
        assert_eq!(Some(max), store.client_offset(store.write_offset()).map(|o| o.0));
        assert!(min <= offsets[0] && offsets[3] < max, "{min}..{max} lacks {offsets:?}");
        broker.send("Figures", 1, "more", "k").await;
        broker.ctx.store.wait_dispatched().await.unwrap();
        assert!(number(&runtime_info(&broker).await, "commitLogMaxOffset") as i64 > max, "the end moves with appends");

        // Java's "Total : 98.3 GiB, Free : 93.5 GiB." of the store's file system.
        let capacity = info["commitLogDirCapacity"].as_str().unwrap_or_default();
        let sizes: Vec<&str> = capacity.strip_prefix("Total : ").and_then(|rest| rest.strip_suffix('.')).map(|rest| rest.split(", Free : ").collect()).unwrap_or_default();
        assert_eq!(sizes.len(), 2, "commitLogDirCapacity {capacity:?}");
        for size in sizes {
            let (figure, unit) = size.split_once(' ').unwrap_or_default();
            assert!(figure.parse::<f64>().is_ok() && ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"].contains(&unit), "{capacity:?}");
        }
        for key in ["commitLogDiskRatio", "consumeQueueDiskRatio"] {
            let ratio = number(&info, key);
            assert!((0.0..=1.0).contains(&ratio) && ratio > 0.0, "{key} {ratio}: a disk holding a store is not empty");
        }
        let earliest = number(&info, "earliestMessageTimeStamp") as i64;
        assert!(earliest >= sent_from && earliest <= ferromq_store::store::now_ms(), "earliest {earliest}, sent from {sent_from}");
        // Everything mqadmin parses as a number is one.
        for key in [
            "msgPutTotalTodayMorning", "msgPutTotalYesterdayMorning", "msgGetTotalTodayMorning", "msgGetTotalYesterdayMorning",
            "dispatchBehindBytes", "remainHowManyDataToFlush", "pageCacheLockTimeMills", "sendThreadPoolQueueSize", "pullThreadPoolQueueSize",
        ] {
            number(&info, key);
        }

        // GET_TOPIC_STATS_INFO: all five messages were stored within the last minute.
        let topic = broker.check(request(rc::GET_TOPIC_STATS_INFO, &[("topic", "Figures")]), code::SUCCESS, "").await;
        let topic = String::from_utf8(topic.body.to_vec()).unwrap();
        let tps: f64 = topic.rsplit("\"topicPutTps\":").next().unwrap().trim_end_matches('}').parse().unwrap();
        assert!((tps - 5.0 / 60.0).abs() < 1e-9, "topicPutTps {tps} in {topic}");
        let last: i64 = topic.split("\"lastUpdateTimestamp\":").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        assert!(last >= sent_from, "queue 0's last store time {last} in {topic}");

        // GET_CONSUME_STATS: the group pulled four messages in those 10 s; its committed
        // offset 2 was stored with the second message.
        let commit = request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "Figures"), ("queueId", "0"), ("consumerGroup", "g"), ("commitOffset", "2")]);
        broker.check(commit, code::SUCCESS, "").await;
        let second = broker.ctx.store.store_time_at("Figures", QueueId(0), ferromq_store::QueueOffset(1)).await.unwrap().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let consume = broker.check(request(rc::GET_CONSUME_STATS, &[("consumerGroup", "g"), ("topic", "Figures")]), code::SUCCESS, "").await;
            let consume = String::from_utf8(consume.body.to_vec()).unwrap();
            assert!(consume.starts_with("{\"consumeTps\":0.4,"), "{consume}");
            if consume.contains(&format!("\"consumerOffset\":2,\"lastTimestamp\":{second},")) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{consume}");
            compio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn every_shard_samples_its_figures_once_a_second() {
    run(|| async {
        let broker = Broker::start().await;
        let _sampler = crate::shard::run::spawn_stats_sampler(&broker.ctx);
        broker.send("Sampled", 0, "m", "k").await;
        compio::time::sleep(std::time::Duration::from_millis(2_300)).await;
        assert!(broker.ctx.runtime_stats.sample_count() >= 2, "{} samples", broker.ctx.runtime_stats.sample_count());
    });
}

/// The body of a response as JSON.
fn json_body(response: &RemotingCommand) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&response.body)))
}

/// Names in a GroupList / TopicList body.
fn names_in(response: &RemotingCommand, key: &str) -> Vec<String> {
    json_body(response)[key].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[test]
fn metadata_codes_answer_who_consumes_what_and_topic_configs() {
    run(|| async {
        let broker = Broker::start().await;
        broker.check(request(rc::UPDATE_AND_CREATE_TOPIC, &[("topic", "Meta"), ("readQueueNums", "3"), ("writeQueueNums", "2"), ("perm", "6")]), code::SUCCESS, "").await;
        // 351: the topic's config as clients parse it.
        let config = json_body(&broker.check(request(rc::GET_TOPIC_CONFIG, &[("topic", "Meta")]), code::SUCCESS, "").await);
        assert_eq!((config["topicName"].as_str(), config["readQueueNums"].as_i64(), config["writeQueueNums"].as_i64()), (Some("Meta"), Some(3), Some(2)));
        broker.check(request(rc::GET_TOPIC_CONFIG, &[("topic", "Nope")]), code::TOPIC_NOT_EXIST, "topic: Nope").await;
        // 300: an online subscriber and a group with offsets both consume it.
        broker.heartbeat("online-group", "Meta").await;
        let commit = request(rc::UPDATE_CONSUMER_OFFSET, &[("topic", "Meta"), ("queueId", "1"), ("consumerGroup", "offset-group"), ("commitOffset", "0")]);
        broker.check(commit, code::SUCCESS, "").await;
        // Commits reach the control plane with the shard's next flush.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let groups = loop {
            let groups = names_in(&broker.check(request(rc::QUERY_TOPIC_CONSUME_BY_WHO, &[("topic", "Meta")]), code::SUCCESS, "").await, "groupList");
            if groups.len() == 2 || std::time::Instant::now() > deadline {
                break groups;
            }
            compio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(groups, ["offset-group", "online-group"]);
        assert!(names_in(&broker.check(request(rc::QUERY_TOPIC_CONSUME_BY_WHO, &[("topic", "Other")]), code::SUCCESS, "").await, "groupList").is_empty());
        broker.check(RemotingCommand::request(rc::QUERY_TOPIC_CONSUME_BY_WHO), code::SYSTEM_ERROR, "topic").await;
        // 343: the topics a group has offsets for, with the broker's address.
        let topics = broker.check(request(rc::QUERY_TOPICS_BY_CONSUMER, &[("group", "offset-group")]), code::SUCCESS, "").await;
        assert_eq!(names_in(&topics, "topicList"), ["Meta"]);
        assert_eq!(json_body(&topics)["brokerAddr"], "127.0.0.1:10911");
        broker.check(RemotingCommand::request(rc::QUERY_TOPICS_BY_CONSUMER), code::SYSTEM_ERROR, "group").await;
        // 305: the system topics, user topics not among them.
        let system = names_in(&broker.check(RemotingCommand::request(rc::GET_SYSTEM_TOPIC_LIST_FROM_BROKER), code::SUCCESS, "").await, "topicList");
        assert!(system.iter().any(|t| t == "TBW102") && system.iter().any(|t| t == "SCHEDULE_TOPIC_XXXX"), "{system:?}");
        assert!(!system.iter().any(|t| t == "Meta"), "{system:?}");
        broker.control.close();
        broker.check(RemotingCommand::request(rc::GET_SYSTEM_TOPIC_LIST_FROM_BROKER), code::SERVICE_NOT_AVAILABLE, "control plane").await;
    });
}

#[test]
fn broker_config_changes_apply_at_once_all_or_none_and_are_kept() {
    run(|| async {
        let broker = Broker::start().await;
        let update = |body: &str| RemotingCommand::request(rc::UPDATE_BROKER_CONFIG).with_body(body.as_bytes().to_vec());
        let config_text = |response: RemotingCommand| String::from_utf8(response.body.to_vec()).unwrap();
        assert_eq!(broker.send("Perm", 0, "before", "k").await.code, code::SUCCESS);
        broker.check(update("brokerPermission=4"), code::SUCCESS, "").await;
        // Sends are refused at once, and GET_BROKER_CONFIG says why.
        broker.check(send_v2("Perm", 0, "drained", "k"), code::NO_PERMISSION, "").await;
        let shown = config_text(broker.check(RemotingCommand::request(rc::GET_BROKER_CONFIG), code::SUCCESS, "").await);
        assert!(shown.lines().any(|l| l == "brokerPermission=4"), "{shown}");
        let kept = std::fs::read_to_string(broker._dir.0.join("store/config/brokerRuntime.properties")).unwrap();
        assert!(kept.lines().any(|l| l == "brokerPermission=4"), "{kept}");
        // All or none: a key read only at start fails the request naming it, and the valid key
        // beside it is not applied.
        broker.check(update("brokerPermission=6\nlistenPort=10999"), code::INVALID_PARAMETER, "\"listenPort\" cannot be changed while the broker runs").await;
        broker.check(send_v2("Perm", 0, "still drained", "k"), code::NO_PERMISSION, "").await;
        broker.check(update("noSuchKey=1"), code::INVALID_PARAMETER, "unknown configuration key \"noSuchKey\"").await;
        broker.check(update("brokerPermission=99"), code::INVALID_PARAMETER, "brokerPermission").await;
        broker.check(update(""), code::INVALID_PARAMETER, "no key").await;
        broker.check(update("configBlackList=x"), code::INVALID_PARAMETER, "configBlackList").await;
        broker.check(update("brokerPermission=6"), code::SUCCESS, "").await;
        assert_eq!(broker.send("Perm", 0, "after", "k").await.code, code::SUCCESS);
        // The auto-creation limits: a send to a new topic is refused at once, then allowed.
        broker.check(update("maxAutoCreatedTopics=0"), code::SUCCESS, "").await;
        broker.check(send_v2("Fresh", 0, "refused", "k"), code::TOPIC_NOT_EXIST, "maxAutoCreatedTopics=0").await;
        broker.check(update("maxAutoCreatedTopics=20000"), code::SUCCESS, "").await;
        assert_eq!(broker.send("Fresh", 0, "created", "k").await.code, code::SUCCESS);
        let kept = std::fs::read_to_string(broker._dir.0.join("store/config/brokerRuntime.properties")).unwrap();
        assert!(kept.lines().any(|l| l == "maxAutoCreatedTopics=20000") && kept.lines().any(|l| l == "brokerPermission=6"), "{kept}");
        // The kept change is applied at the next start, over the configured value.
        let mut config = BrokerConfig::test_min(broker._dir.0.join("store"));
        config.broker.permission = 2;
        std::fs::write(broker._dir.0.join("store/config/brokerRuntime.properties"), "brokerPermission=4\n").unwrap();
        let overridden = crate::control::runtime_config::apply_saved(&mut config, &broker._dir.0.join("store/config")).unwrap();
        assert_eq!((config.broker.permission, overridden), (4, vec![("brokerPermission".to_owned(), "4".to_owned())]));
        std::fs::write(broker._dir.0.join("store/config/brokerRuntime.properties"), "listenPort=1\n").unwrap();
        let refused = crate::control::runtime_config::apply_saved(&mut config, &broker._dir.0.join("store/config")).unwrap_err();
        assert!(refused.contains("listenPort"), "{refused}");
    });
}

/// A runtime key named in `configBlackList` cannot be changed remotely, and the request says why.
#[test]
fn config_black_list_forbids_remote_changes_of_its_keys() {
    run(|| async {
        let broker = Broker::start_with(|c| c.broker.config_black_list = "configBlackList;brokerConfigPath; brokerPermission".into()).await;
        let update = |body: &str| RemotingCommand::request(rc::UPDATE_BROKER_CONFIG).with_body(body.as_bytes().to_vec());
        broker.check(update("brokerPermission=4"), code::INVALID_PARAMETER, "\"brokerPermission\" is in configBlackList").await;
        assert_eq!(broker.send("Listed", 0, "still writable", "k").await.code, code::SUCCESS);
        broker.check(update("maxAutoCreatedTopics=10"), code::SUCCESS, "").await;
    });
}

#[test]
fn clean_expired_consume_queue_removes_only_unconfigured_topics_queues() {
    run(|| async {
        let broker = Broker::start().await;
        assert_eq!(broker.send("Kept", 0, "x", "k").await.code, code::SUCCESS);
        assert_eq!(broker.send("Orphan", 1, "x", "k").await.code, code::SUCCESS);
        broker.ctx.store.wait_dispatched().await.unwrap();
        // The topic leaves the configuration alone (as a topic deleted by an older broker whose
        // queues stayed would): its queue is an orphan.
        broker.control.call(|reply| crate::control::Command::DeleteTopic { topic: "Orphan".to_owned(), reply }).await.unwrap();
        let clean = RemotingCommand::request(rc::CLEAN_EXPIRED_CONSUMEQUEUE);
        let cleaned = broker.check(clean.clone(), code::SUCCESS, "").await;
        assert_eq!(cleaned.ext("cleanedQueues"), Some("1"));
        let queues = broker.ctx.store.queues();
        assert!(!queues.iter().any(|(t, _)| t == "Orphan"), "{queues:?}");
        assert_eq!(broker.ctx.store.queue_offsets("Kept", QueueId(0)).1 .0, 1, "a configured topic's queue stays");
        assert_eq!(broker.check(clean, code::SUCCESS, "").await.ext("cleanedQueues"), Some("0"));
        let slave = slave().await;
        slave.check(RemotingCommand::request(rc::CLEAN_EXPIRED_CONSUMEQUEUE), code::SYSTEM_ERROR, "slave").await;
    });
}

#[test]
fn broker_stats_data_counts_the_topics_puts_per_window() {
    run(|| async {
        let broker = Broker::start().await;
        for i in 0..3 {
            assert_eq!(broker.send("Counted", i % 2, "x", "k").await.code, code::SUCCESS);
        }
        broker.ctx.store.wait_dispatched().await.unwrap();
        let stats = |name: &str, key: &str| request(rc::VIEW_BROKER_STATS_DATA, &[("statsName", name), ("statsKey", key)]);
        let data = json_body(&broker.check(stats("TOPIC_PUT_NUMS", "Counted"), code::SUCCESS, "").await);
        for window in ["statsMinute", "statsHour", "statsDay"] {
            assert_eq!(data[window]["sum"], 3, "{window}: {data}");
        }
        assert_eq!(data["statsMinute"]["tps"], 0.05, "{data}");
        broker.check(stats("TOPIC_PUT_NUMS", "Nope"), code::SYSTEM_ERROR, "The stats <TOPIC_PUT_NUMS> <Nope> not exist").await;
        broker.check(stats("SNDBCK_PUT_NUMS", "Counted"), code::SYSTEM_ERROR, "not exist").await;
        let gets = json_body(&broker.check(stats("GROUP_GET_NUMS", "Counted@g"), code::SUCCESS, "").await);
        assert_eq!(gets["statsMinute"]["sum"], 0, "{gets}");
        assert!(gets.get("statsDay").is_none(), "no day figure is kept for a group: {gets}");
        broker.check(stats("GROUP_GET_NUMS", "no-at-sign"), code::SYSTEM_ERROR, "not exist").await;
        broker.check(request(rc::VIEW_BROKER_STATS_DATA, &[("statsName", "TOPIC_PUT_NUMS")]), code::SYSTEM_ERROR, "statsKey").await;
    });
}


/// aclEnable: every request is checked before its handler; the ACL admin codes change the
/// file, which is then in force (`ferromq_net::acl` documents the rules).
#[test]
fn acl_checks_every_request_and_its_admin_codes_rewrite_the_rules() {
    use ferromq_net::acl::Credentials;
    run(|| async {
        let dir = std::env::temp_dir().join(format!("ferromq-handlers-acl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plain_acl.yml");
        std::fs::write(&file, "accounts:\n  - accessKey: admin-ak\n    secretKey: admin-sk\n    admin: true\n  - accessKey: producer\n    secretKey: producer-sk\n    topicPerms:\n      - A=PUB\n").unwrap();
        let path = file.display().to_string();
        let broker = Broker::start_with(|c| {
            c.acl.enable = true;
            c.acl.plain_file = path.clone();
        })
        .await;
        let signed = |mut request: RemotingCommand, ak: &str, sk: &str| {
            Credentials::new(ak, sk).sign(&mut request);
            request
        };
        broker.check(send_v2("A", 0, "x", "k"), code::SYSTEM_ERROR, "AclException: No accessKey is configured").await;
        broker.check(signed(send_v2("A", 0, "x", "k"), "producer", "producer-sk"), code::SUCCESS, "").await;
        broker.check(signed(send_v2("B", 0, "x", "k"), "producer", "producer-sk"), code::SYSTEM_ERROR, "No default permission for topic=B").await;
        broker.check(signed(send_v2("A", 0, "x", "k"), "producer", "wrong-sk"), code::SYSTEM_ERROR, "Check signature failed").await;
        let create = |secret: &str| {
            request(rc::UPDATE_AND_CREATE_ACL_CONFIG, &[("accessKey", "consumer1"), ("secretKey", secret), ("admin", "false"), ("topicPerms", "A=SUB"), ("groupPerms", "G=SUB, H=DENY")])
        };
        broker.check(signed(create("consumer-sk"), "producer", "producer-sk"), code::SYSTEM_ERROR, "Need admin permission for request code=50").await;
        broker.check(signed(create("short"), "admin-ak", "admin-sk"), code::UPDATE_AND_CREATE_ACL_CONFIG_FAILED, "shorter than 6").await;
        broker.check(signed(create("consumer-sk"), "admin-ak", "admin-sk"), code::SUCCESS, "").await;
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(written.contains("consumer1") && written.contains("G=SUB") && written.contains("H=DENY"), "{written}");
        // In force at once: the new account pulls as its rules say.
        let pull = |group: &str| signed(request(rc::PULL_MESSAGE, &[("consumerGroup", group), ("topic", "A"), ("queueId", "0"), ("queueOffset", "0"), ("maxMsgNums", "1"), ("sysFlag", "0"), ("commitOffset", "0"), ("suspendTimeoutMillis", "0"), ("subscription", "*"), ("subVersion", "0")]), "consumer1", "consumer-sk");
        broker.check(pull("H"), code::SYSTEM_ERROR, "No default permission for group=H").await;
        assert_ne!(broker.call(pull("G")).await.code, code::SYSTEM_ERROR);
        let info = broker.check(signed(request(rc::GET_BROKER_CLUSTER_ACL_INFO, &[]), "admin-ak", "admin-sk"), code::SUCCESS, "").await;
        assert!(info.ext("version").unwrap().contains("\"counter\":1"), "{info:?}");
        assert!(info.ext("allAclFileVersion").unwrap().contains("plain_acl.yml"), "{info:?}");
        let config = broker.check(signed(request(rc::GET_BROKER_CLUSTER_ACL_CONFIG, &[]), "admin-ak", "admin-sk"), code::SUCCESS, "").await;
        let body: serde_json::Value = serde_json::from_slice(&config.body).unwrap();
        assert_eq!(body["plainAccessConfigs"].as_array().unwrap().len(), 3, "{body}");
        let white = |addrs: &str, path: &str| request(rc::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG, &[("globalWhiteAddrs", addrs), ("aclFileFullPath", path)]);
        broker.check(signed(white("10.0.0.*", "/elsewhere/plain_acl.yml"), "admin-ak", "admin-sk"), code::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED, "one ACL file").await;
        // The test's peer (127.0.0.1) becomes white: unsigned requests pass.
        broker.check(signed(white("10.0.0.*,127.0.0.1", ""), "admin-ak", "admin-sk"), code::SUCCESS, "").await;
        broker.check(send_v2("B", 0, "x", "k"), code::SUCCESS, "").await;
        broker.check(white("", ""), code::SUCCESS, "").await;
        broker.check(send_v2("B", 0, "x", "k"), code::SYSTEM_ERROR, "No accessKey").await;
        let delete = |ak: &str| signed(request(rc::DELETE_ACL_CONFIG, &[("accessKey", ak)]), "admin-ak", "admin-sk");
        broker.check(delete("nobody"), code::DELETE_ACL_CONFIG_FAILED, "no such account").await;
        broker.check(delete("consumer1"), code::SUCCESS, "").await;
        broker.check(pull("G"), code::SYSTEM_ERROR, "No acl config for consumer1").await;
        let reread = ferromq_net::acl::AclRules::parse_yaml(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(reread.accounts.len(), 2);
        assert_eq!(reread.global_white_addrs, Vec::<String>::new());
        assert_eq!(reread.data_version.0, 4);
        // Without ACL, the admin codes say so.
        let plain = Broker::start().await;
        for code_ in [rc::UPDATE_AND_CREATE_ACL_CONFIG, rc::GET_BROKER_CLUSTER_ACL_INFO, rc::GET_BROKER_CLUSTER_ACL_CONFIG] {
            plain.check(request(code_, &[("accessKey", "someone")]), code::SYSTEM_ERROR, "aclEnable=false").await;
        }
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// maxAutoCreatedTopicsPerAccount / maxAutoCreatedSubscriptionGroupsPerAccount: with ACL on,
/// what one account's sends and heartbeats make the broker create is capped per account.
#[test]
fn acl_bounds_what_each_account_auto_creates() {
    use ferromq_net::acl::Credentials;
    run(|| async {
        let dir = std::env::temp_dir().join(format!("ferromq-handlers-acl-bound-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plain_acl.yml");
        let account = |ak: &str| format!("  - accessKey: {ak}\n    secretKey: {ak}-secret\n    defaultTopicPerm: PUB|SUB\n    defaultGroupPerm: SUB\n");
        std::fs::write(&file, format!("accounts:\n{}{}", account("first-ak"), account("second-ak"))).unwrap();
        let path = file.display().to_string();
        let broker = Broker::start_with(|c| {
            c.acl.enable = true;
            c.acl.plain_file = path.clone();
            c.acl.max_auto_created_topics_per_account = 2;
            c.acl.max_auto_created_subscription_groups_per_account = 1;
        })
        .await;
        let signed = |mut request: RemotingCommand, ak: &str| {
            Credentials::new(ak, format!("{ak}-secret")).sign(&mut request);
            request
        };
        broker.check(signed(send_v2("Own1", 0, "x", "k"), "first-ak"), code::SUCCESS, "").await;
        broker.check(signed(send_v2("Own2", 0, "x", "k"), "first-ak"), code::SUCCESS, "").await;
        broker.check(signed(send_v2("Own3", 0, "x", "k"), "first-ak"), code::TOPIC_NOT_EXIST, "maxAutoCreatedTopicsPerAccount=2").await;
        // Existing topics take no room; another account has its own.
        broker.check(signed(send_v2("Own1", 0, "y", "k"), "first-ak"), code::SUCCESS, "").await;
        broker.check(signed(send_v2("Own3", 0, "x", "k"), "second-ak"), code::SUCCESS, "").await;
        let heartbeat = |group: &str, ak: &str| {
            let body = format!(r#"{{"clientID":"c-{ak}","consumerDataSet":[{{"groupName":"{group}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{{"topic":"Own1","subString":"*","tagsSet":[],"codeSet":[],"subVersion":0,"expressionType":"TAG"}}],"unitMode":false}}],"producerDataSet":[]}}"#);
            signed(RemotingCommand::request(rc::HEART_BEAT).with_body(body.into_bytes()), ak)
        };
        broker.check(heartbeat("GroupOne", "first-ak"), code::SUCCESS, "").await;
        // Accepted (a heartbeat is not refused), but the group is not created: its send-back is.
        broker.check(heartbeat("GroupTwo", "first-ak"), code::SUCCESS, "").await;
        let groups = |body: &[u8]| String::from_utf8_lossy(body).into_owned();
        let all = broker.check(signed(RemotingCommand::request(rc::GET_ALL_SUBSCRIPTIONGROUP_CONFIG), "first-ak"), code::SUCCESS, "").await;
        assert!(groups(&all.body).contains("GroupOne") && !groups(&all.body).contains("GroupTwo"), "{}", groups(&all.body));
        broker.check(heartbeat("GroupTwo", "second-ak"), code::SUCCESS, "").await;
        let all = broker.check(signed(RemotingCommand::request(rc::GET_ALL_SUBSCRIPTIONGROUP_CONFIG), "first-ak"), code::SUCCESS, "").await;
        assert!(groups(&all.body).contains("GroupTwo"), "{}", groups(&all.body));
        std::fs::remove_dir_all(&dir).unwrap();
    });
}
