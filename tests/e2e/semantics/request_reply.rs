//! Request-reply (RocketMQ 4.6+) end to end, through the third-party `rocketmq-client-rust`
//! 1.0.0 against a real `mqbroker` process (embedded name server, loopback only):
//!
//! `a_request_gets_its_reply_through_the_broker`: a requester producer calls `request(msg,
//! timeout)` (it stamps `CORRELATION_ID`, `REPLY_TO_CLIENT` = its client id and `TTL` on the
//! request, sends it to topic T and waits for the reply with that correlation id). A push
//! consumer of T answers each request with `MessageUtil::create_reply_message(request,
//! "reply:" + body)` (topic `<CLUSTER>_REPLY_TOPIC`, `MSG_TYPE=reply`), sent by a started
//! producer, which the client turns into SEND_REPLY_MESSAGE(_V2) (324/325). The broker pushes
//! the reply to the requester's connection as PUSH_REPLY_MESSAGE_TO_CLIENT (326) and stores it in
//! `DefaultCluster_REPLY_TOPIC`, answering the replier SEND_OK.
//!
//! Checked: several sequential requests and a few concurrent ones each get the reply to their own
//! body, carrying their own correlation id (as the replier saw it on the request); the requests
//! reached the replier with `CLUSTER` (stamped by the broker), `REPLY_TO_CLIENT` and `TTL`; each
//! reply send was stored in `DefaultCluster_REPLY_TOPIC` with SEND_OK; and a request that the
//! replier receives but never answers fails with the client's timeout error after its timeout,
//! not a hang.
//!
//! The client's listener is synchronous, so (as the client's own broker-backed request-reply
//! smoke test does) it builds the reply and hands it over a channel to a task that sends it with a
//! started producer: the Rust client has no public counterpart of Java's
//! `MQClientInstance.getDefaultMQProducer()`.
//!
//! The reply task answers no sooner than [`REPLY_DELAY`] after the listener got the request,
//! because of a lost wake-up in rocketmq-client-rust 1.0.0: `request` registers its correlation
//! id, sends, and only then starts waiting, and `RequestResponseFuture::put_response_message`
//! wakes the waiter with `tokio::sync::Notify::notify_waiters`, which stores no permit. A reply
//! pushed in between is stored in the future but never noticed, and the request fails with the
//! client's timeout although the broker delivered its reply (CI, 2026-12-07, epoll pass: `con-1`
//! timed out after 10 s, its reply sent with SEND_OK and pushed without a broker warning; Java's
//! client waits on a `CountDownLatch` and has no such window). An immediate replier wins that
//! race only when the requester's task is starved between its SEND_OK and its wait, which a
//! loaded 2-core machine running six test threads does now and then.
//!
//! Every wait has a deadline; a timeout fails with what was seen and the broker's log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_tests::BrokerProcess;
use rocketmq_client_rust::{
    ClientResult, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer,
    MessageListenerConcurrently, MessageUtil,
};
use rocketmq_model::common::message::MessageConst;
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;

use crate::common::{
    Clients, ConsumerOptions, Listen, SEND_TIMEOUT_MS, Trace, bounded_shutdown, create_topic, log_tail, message, unique, wait_for,
};

/// The timeout of every answered request, ms.
const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// The timeout of the request nobody answers, ms.
const SILENT_TIMEOUT_MS: u64 = 3_000;
/// How much longer than its own timeout a `request` may take before the test calls it a hang.
const HANG_MARGIN: Duration = Duration::from_secs(5);
/// The cluster of the test broker (its default) and so the reply topic.
const CLUSTER: &str = "DefaultCluster";
const SEQUENTIAL: usize = 4;
const CONCURRENT: usize = 4;
/// Requests whose key starts with this are received but never answered.
const SILENT_PREFIX: &str = "silent-";
/// How long after receiving a request the replier answers it at the earliest: time for the
/// requester to start waiting (see the module comment).
const REPLY_DELAY: Duration = Duration::from_millis(300);
const REPLY_PREFIX: &[u8] = b"reply:";

/// One request, as the replier's listener saw it.
#[derive(Debug, Clone)]
struct SeenRequest {
    key: String,
    body: Vec<u8>,
    /// The request-reply properties the requester (and the broker, for CLUSTER) stamped.
    props: BTreeMap<String, String>,
}

impl SeenRequest {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str)
    }
}

/// One reply send, as the replier saw its result.
#[derive(Debug, Clone)]
struct ReplySent {
    key: String,
    status: Option<SendStatus>,
    topic: Option<String>,
    error: Option<String>,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<SeenRequest>>,
    /// Listener-side failures (a reply that could not be built or handed over).
    errors: Mutex<Vec<String>>,
    replies: Mutex<Vec<ReplySent>>,
}

impl Shared {
    fn summary(&self) -> String {
        let requests: Vec<(String, Option<String>)> = self
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.key.clone(), r.prop(MessageConst::PROPERTY_CORRELATION_ID).map(str::to_owned)))
            .collect();
        format!(
            "requests seen by the replier (key, correlation id): {requests:?}\nreplier errors: {:?}\nreply sends: {:?}",
            self.errors.lock().unwrap(),
            self.replies.lock().unwrap()
        )
    }

    fn first_request(&self, key: &str) -> Option<SeenRequest> {
        self.requests.lock().unwrap().iter().find(|r| r.key == key).cloned()
    }
}

/// The replier: records each request and, unless its key is silent, builds the reply and hands it
/// to the reply task.
struct Replier {
    shared: Arc<Shared>,
    replies: async_channel::Sender<(String, Message, Instant)>,
}

const RECORDED_PROPS: [&str; 5] = [
    MessageConst::PROPERTY_CORRELATION_ID,
    MessageConst::PROPERTY_MESSAGE_REPLY_TO_CLIENT,
    MessageConst::PROPERTY_MESSAGE_TTL,
    MessageConst::PROPERTY_CLUSTER,
    MessageConst::PROPERTY_MESSAGE_TYPE,
];

impl MessageListenerConcurrently for Replier {
    fn consume_message(&self, messages: &[&MessageExt], _: &ConsumeConcurrentlyContext) -> ClientResult<ConsumeConcurrentlyStatus> {
        for message in messages {
            let inner = message.message_inner();
            let key = inner.keys().and_then(|k| k.first().cloned()).unwrap_or_default();
            let body = message.body().map(|b| b.to_vec()).unwrap_or_default();
            let props = RECORDED_PROPS.iter().filter_map(|p| inner.property(p).map(|v| ((*p).to_owned(), v.to_string()))).collect();
            self.shared.requests.lock().unwrap().push(SeenRequest { key: key.clone(), body: body.clone(), props });
            if key.starts_with(SILENT_PREFIX) {
                continue;
            }
            let reply_body = [REPLY_PREFIX, body.as_slice()].concat();
            match MessageUtil::create_reply_message(inner, &reply_body) {
                Ok(reply) => {
                    if let Err(e) = self.replies.try_send((key.clone(), reply, Instant::now())) {
                        self.shared.errors.lock().unwrap().push(format!("{key}: hand-over of the reply failed: {e}"));
                    }
                }
                Err(e) => self.shared.errors.lock().unwrap().push(format!("{key}: create_reply_message: {e:?}")),
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

impl Listen for Replier {
    fn register(self, consumer: &mut DefaultMQPushConsumer) {
        consumer.register_message_listener_concurrently(self);
    }
}

/// A request body: text naming it, then some binary bytes of a length of its own.
fn request_body(key: &str, i: usize) -> Vec<u8> {
    let mut body = format!("request {key}: ").into_bytes();
    body.extend((0..(40 + i * 29)).map(|b| (b * 7 + i * 3) as u8));
    body
}

/// `request`, bounded: its own timeout plus `HANG_MARGIN`, so that a hang fails the test.
async fn bounded_request(
    requester: &DefaultMQProducer,
    topic: &str,
    key: &str,
    body: &[u8],
    timeout_ms: u64,
) -> (ClientResult<Box<dyn MessageTrait + Send>>, Duration) {
    let started = Instant::now();
    let limit = Duration::from_millis(timeout_ms) + HANG_MARGIN;
    match tokio::time::timeout(limit, requester.request(message(topic, key, "RQ", &[], body), timeout_ms)).await {
        Ok(result) => (result, started.elapsed()),
        Err(_) => panic!("request {key} (timeout {timeout_ms} ms) neither answered nor failed within {limit:?}: it hangs"),
    }
}

/// Checks one answered request: the reply is the one to its own body, with its own correlation
/// id, in the reply topic, and the request reached the replier with the request-reply properties.
fn check_reply(broker: &BrokerProcess, shared: &Shared, key: &str, body: &[u8], result: ClientResult<Box<dyn MessageTrait + Send>>) {
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => panic!("request {key} got no reply: {e:?}\n{}\nbroker log (tail):\n{}", shared.summary(), log_tail(broker)),
    };
    let expected = [REPLY_PREFIX, body].concat();
    let got = reply.get_body().map(|b| b.to_vec()).unwrap_or_default();
    assert!(
        got == expected,
        "request {key}: the reply body is not the reply to this request\n got: {:?}\nwant: {:?}\n{}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected),
        shared.summary()
    );
    let reply_topic = format!("{CLUSTER}_REPLY_TOPIC");
    assert_eq!(reply.topic().as_str(), reply_topic, "request {key}: topic of the pushed reply");

    let seen = shared.first_request(key).unwrap_or_else(|| panic!("request {key} answered but never seen by the replier\n{}", shared.summary()));
    assert!(seen.body == body, "request {key}: the replier got a different body");
    let correlation = seen.prop(MessageConst::PROPERTY_CORRELATION_ID).filter(|c| !c.is_empty());
    let correlation = correlation.unwrap_or_else(|| panic!("request {key} reached the replier without a correlation id: {seen:?}"));
    let reply_correlation = reply.property(&MessageConst::PROPERTY_CORRELATION_ID.into()).map(|c| c.to_string());
    assert_eq!(reply_correlation.as_deref(), Some(correlation), "request {key}: correlation id of the reply");
    assert_eq!(seen.prop(MessageConst::PROPERTY_CLUSTER), Some(CLUSTER), "request {key}: CLUSTER (the broker stamps it on the stored request)");
    assert_eq!(
        seen.prop(MessageConst::PROPERTY_MESSAGE_TTL),
        Some(REQUEST_TIMEOUT_MS.to_string().as_str()),
        "request {key}: TTL (the requester stamps its timeout)"
    );
    assert_eq!(
        reply.property(&MessageConst::PROPERTY_MESSAGE_REPLY_TO_CLIENT.into()).map(|c| c.to_string()).as_deref(),
        seen.prop(MessageConst::PROPERTY_MESSAGE_REPLY_TO_CLIENT),
        "request {key}: REPLY_TO_CLIENT of the reply (copied from the request)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_gets_its_reply_through_the_broker() {
    let test_started = Instant::now();
    let broker = BrokerProcess::start(&[]).unwrap();
    let clients = Clients::new(&broker, "request-reply");
    let topic = unique("RequestTopic");
    let group = unique("replier_group");

    // Topic T, created by a producer of its own: the requester must find T's route unknown on its
    // first request, which is when the client heartbeats to the broker, and that heartbeat (its
    // client id) is how the broker finds the requester's connection for the push.
    let mut admin = clients.producer(&unique("rr_admin"), Trace::Off).await;
    create_topic(&broker, &mut admin, &topic, 2).await;

    // The reply task: sends each reply the listener built with a started producer.
    let shared = Arc::new(Shared::default());
    let (reply_tx, reply_rx) = async_channel::unbounded::<(String, Message, Instant)>();
    let reply_producer = clients.producer(&unique("rr_reply_producer"), Trace::Off).await;
    let reply_task = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Ok((key, reply, received)) = reply_rx.recv().await {
                tokio::time::sleep_until((received + REPLY_DELAY).into()).await;
                let sent = match reply_producer.send_with_timeout(reply, SEND_TIMEOUT_MS).await {
                    Ok(Some(result)) => ReplySent {
                        key,
                        status: Some(result.send_status),
                        topic: result.message_queue.as_ref().map(|mq| mq.topic().to_string()),
                        error: None,
                    },
                    Ok(None) => ReplySent { key, status: None, topic: None, error: Some("no send result".to_owned()) },
                    Err(e) => ReplySent { key, status: None, topic: None, error: Some(format!("{e:?}")) },
                };
                shared.replies.lock().unwrap().push(sent);
            }
            let mut reply_producer = reply_producer;
            reply_producer.shutdown().await;
        })
    };
    let mut consumer = clients
        .consumer(&broker, &group, &topic, Replier { shared: shared.clone(), replies: reply_tx.clone() }, ConsumerOptions::default())
        .await;

    let requester = clients.producer(&unique("rr_requester"), Trace::Off).await;
    let mut answered: Vec<String> = Vec::new();

    // 1. Sequential requests.
    for i in 0..SEQUENTIAL {
        let key = format!("seq-{i}");
        let body = request_body(&key, i);
        let (result, took) = bounded_request(&requester, &topic, &key, &body, REQUEST_TIMEOUT_MS).await;
        eprintln!("{key}: {} after {took:?}", if result.is_ok() { "answered" } else { "FAILED" });
        check_reply(&broker, &shared, &key, &body, result);
        answered.push(key);
    }

    // 2. Concurrent requests on the same requester: each must get its own reply.
    let keys: Vec<String> = (0..CONCURRENT).map(|i| format!("con-{i}")).collect();
    let bodies: Vec<Vec<u8>> = keys.iter().enumerate().map(|(i, key)| request_body(key, SEQUENTIAL + i)).collect();
    let results = futures_util::future::join_all(
        keys.iter().zip(&bodies).map(|(key, body)| bounded_request(&requester, &topic, key, body, REQUEST_TIMEOUT_MS)),
    )
    .await;
    for ((key, body), (result, took)) in keys.iter().zip(&bodies).zip(results) {
        eprintln!("{key}: {} after {took:?}", if result.is_ok() { "answered" } else { "FAILED" });
        check_reply(&broker, &shared, key, body, result);
        answered.push(key.clone());
    }

    // All requests came from the one requester: one REPLY_TO_CLIENT, one correlation id each.
    {
        let requests = shared.requests.lock().unwrap();
        let clients_seen: BTreeSet<Option<String>> =
            requests.iter().map(|r| r.prop(MessageConst::PROPERTY_MESSAGE_REPLY_TO_CLIENT).map(str::to_owned)).collect();
        assert_eq!(clients_seen.len(), 1, "requests of one requester carry different REPLY_TO_CLIENT: {clients_seen:?}");
        let first_of_key: BTreeMap<&str, &str> =
            requests.iter().rev().filter_map(|r| r.prop(MessageConst::PROPERTY_CORRELATION_ID).map(|c| (r.key.as_str(), c))).collect();
        let ids: BTreeSet<&str> = first_of_key.values().copied().collect();
        assert_eq!(ids.len(), first_of_key.len(), "two requests share a correlation id: {first_of_key:?}");
    }

    // 3. A request the replier receives but never answers fails with a timeout, in time.
    let silent_key = format!("{SILENT_PREFIX}0");
    let silent_body = request_body(&silent_key, 99);
    let (result, took) = bounded_request(&requester, &topic, &silent_key, &silent_body, SILENT_TIMEOUT_MS).await;
    eprintln!("{silent_key}: {result:?} after {took:?}");
    match result {
        Ok(reply) => panic!("the unanswered request {silent_key} got a reply: {reply:?}\n{}", shared.summary()),
        Err(e) => {
            assert_eq!(
                e.descriptor().code().to_string(),
                "core.operation.timed_out",
                "the unanswered request must fail with the client's timeout error, got {e:?}"
            );
        }
    }
    assert!(
        took >= Duration::from_millis(SILENT_TIMEOUT_MS) - Duration::from_millis(200),
        "the unanswered request failed after {took:?}, before its {SILENT_TIMEOUT_MS} ms timeout"
    );
    // It was delivered (so it is the replier that did not answer, not a lost request).
    wait_for(
        &broker,
        Duration::from_secs(5),
        || shared.first_request(&silent_key).is_some(),
        || format!("the unanswered request {silent_key} never reached the replier\n{}", shared.summary()),
    )
    .await;

    // 4. Every reply send was stored in the reply topic with SEND_OK (the replier's answer comes
    //    after the push, so it may trail the requester a little).
    let reply_topic = format!("{CLUSTER}_REPLY_TOPIC");
    wait_for(
        &broker,
        Duration::from_secs(10),
        || {
            let replies = shared.replies.lock().unwrap();
            answered.iter().all(|key| replies.iter().any(|r| &r.key == key))
        },
        || format!("not every reply send has a result yet\n{}", shared.summary()),
    )
    .await;
    for sent in shared.replies.lock().unwrap().iter() {
        assert!(
            sent.status == Some(SendStatus::SendOk) && sent.topic.as_deref() == Some(reply_topic.as_str()),
            "reply send of {} not stored in {reply_topic} with SEND_OK (error: {:?}): {sent:?}\nbroker log (tail):\n{}",
            sent.key,
            sent.error,
            log_tail(&broker)
        );
    }
    assert!(shared.errors.lock().unwrap().is_empty(), "replier errors: {}", shared.summary());
    assert!(!shared.replies.lock().unwrap().iter().any(|r| r.key == silent_key), "the silent request was answered");

    // Shut down, bounded.
    let mut requester = requester;
    let _ = tokio::time::timeout(Duration::from_secs(10), requester.shutdown()).await;
    bounded_shutdown(&broker, "replier consumer", consumer.shutdown()).await;
    reply_tx.close();
    assert!(tokio::time::timeout(Duration::from_secs(15), reply_task).await.is_ok(), "the reply task did not finish");
    let _ = tokio::time::timeout(Duration::from_secs(10), admin.shutdown()).await;
    clients.finish().await;
    eprintln!("request-reply test done in {:?}", test_started.elapsed());
}
