//! Orderly consumers' retries end to end (issue 15), through the third-party
//! `rocketmq-client-rust` 1.0.0 against a real `mqbroker` process.
//!
//! An orderly push consumer (MessageListenerOrderly) does not send a failed message back with
//! CONSUMER_SEND_MSG_BACK: SUSPEND_CURRENT_QUEUE_A_MOMENT puts it back into the client's process
//! queue with `reconsumeTimes + 1` and consumes the queue again after
//! `suspendCurrentQueueTimeMillis`, so nothing behind it in that queue is consumed meanwhile.
//! Once `reconsumeTimes` reaches `maxReconsumeTimes`, the client produces the message itself to
//! `%RETRY%<group>` through its inner producer (CLIENT_INNER_PRODUCER), with header
//! `reconsumeTimes` = its reconsumeTimes + 1 and `maxReconsumeTimes`, and properties
//! `RETRY_TOPIC`, `ORIGIN_MESSAGE_ID` and `DELAY` = 3 + reconsumeTimes
//! (`consume_message_orderly_service.rs`, `check_reconsume_times` / `send_message_back`). The
//! broker must dead-letter that send to `%DLQ%<group>` (PROTOCOL.md §2.1 step 4:
//! `reconsumeTimes > maxReconsumeTimes`, or the group holds orderly locks; DELAY=-1), then the
//! client commits past it and the queue moves on.
//!
//! `orderly_consumer_suspends_and_retries_locally_then_dead_letters`: queue 0 holds `head`,
//! `poison` and four more; the listener fails `poison` every time. It is consumed
//! `maxReconsumeTimes` + 1 = 3 times from the client's memory (reconsumeTimes 0, 1, 2; the same
//! record; at least the suspend time apart), and nothing after it in queue 0 is consumed before
//! the last of those, while queue 1 goes on meanwhile; then it is in `%DLQ%<group>` exactly once
//! (a second group reads it byte-identical, with its UNIQ_KEY, `RETRY_TOPIC`,
//! `ORIGIN_MESSAGE_ID`, DELAY=-1), the rest of queue 0 is consumed once each in order, and
//! `%RETRY%<group>` and SCHEDULE_TOPIC_XXXX stay empty: it never comes back through the broker.
//!
//! Every wait has a deadline; a timeout fails with what was seen and the broker's log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::codes::request_code;
use ferromq_tests::BrokerProcess;
use rocketmq_client_rust::{
    ClientResult, ConsumeOrderlyContext, ConsumeOrderlyStatus, DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, MessageListenerOrderly,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::result::{SendResult, SendStatus};

use crate::common::{
    CASE_PROP, Clients, ConsumerOptions, Delivery, EARLY_TOLERANCE, Listen, SEND_TIMEOUT_MS, Seen, Trace, counts, create_topic, deliveries_of,
    log_tail, message, raw_request, route_into_consumer, stop_consumer, unique, wait_for,
};

const MAX_RECONSUME: i32 = 2;
/// `suspendCurrentQueueTimeMillis`: how long queue 0 waits after each failure.
const SUSPEND: Duration = Duration::from_millis(500);
/// Messages behind `poison` in queue 0.
const AFTER: usize = 4;
/// Messages in queue 1, all consumed at once.
const SIDE: usize = 3;
const POISON: &str = "poison";

/// An orderly listener that records every delivery and answers SUSPEND_CURRENT_QUEUE_A_MOMENT
/// for a batch holding [`POISON`], SUCCESS otherwise.
struct FailPoison {
    seen: Seen,
    /// How many messages each call got (the client's default batch is 1).
    batch_sizes: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

impl MessageListenerOrderly for FailPoison {
    fn consume_message(&self, messages: &[&MessageExt], _: &mut ConsumeOrderlyContext) -> ClientResult<ConsumeOrderlyStatus> {
        let got: Vec<Delivery> = messages.iter().map(|m| Delivery::of(m)).collect();
        let fail = got.iter().any(|d| d.key == POISON);
        self.batch_sizes.lock().unwrap().push(got.len());
        self.seen.lock().unwrap().extend(got);
        Ok(if fail { ConsumeOrderlyStatus::SuspendCurrentQueueAMoment } else { ConsumeOrderlyStatus::Success })
    }
}

impl Listen for FailPoison {
    fn register(self, consumer: &mut DefaultMQPushConsumer) {
        consumer.register_message_listener_orderly(self);
    }
}

/// One sent message.
#[derive(Debug, Clone)]
struct Sent {
    key: String,
    body: Vec<u8>,
    result: SendResult,
}

/// Sends message `key` (tag T, user property [`CASE_PROP`]) to queue `mq`; must be SEND_OK.
async fn send_to(broker: &BrokerProcess, producer: &DefaultMQProducer, mq: &MessageQueue, key: &str) -> Sent {
    let mut body = format!("orderly {key}: ").into_bytes();
    body.extend((0..(64 + key.len() * 29)).map(|b| (b * 7 + key.len()) as u8));
    let msg = message(mq.topic().as_str(), key, "T", &[(CASE_PROP, &format!("case of {key}"))], &body);
    match producer.send_to_queue_with_timeout(msg, mq.clone(), SEND_TIMEOUT_MS).await {
        Ok(Some(result)) if result.send_status == SendStatus::SendOk => Sent { key: key.to_owned(), body, result },
        other => panic!("send {key} to {mq:?}: {other:?}\nbroker log (tail):\n{}", log_tail(broker)),
    }
}

/// Checks that a delivery carries what was sent: body, key, user property and UNIQ_KEY.
fn check_payload(what: &str, got: &Delivery, sent: &Sent) {
    assert!(got.body == sent.body, "{what}: body differs ({} bytes received, {} sent)", got.body.len(), sent.body.len());
    assert_eq!(got.key, sent.key, "{what}: key");
    assert_eq!(got.prop(CASE_PROP), Some(format!("case of {}", sent.key).as_str()), "{what}: user property {CASE_PROP:?}");
    assert_eq!(
        got.prop("UNIQ_KEY"),
        sent.result.msg_id.as_ref().map(|id| id.as_str()),
        "{what}: UNIQ_KEY (the producer's message id) must be kept"
    );
}

/// GET_MAX_OFFSET (30) of `topic` queue `queue_id`: how many entries it ever had.
async fn max_offset(broker: &BrokerProcess, topic: &str, queue_id: i32) -> i64 {
    let request = RemotingCommand::request(request_code::GET_MAX_OFFSET).with_ext("topic", topic).with_ext("queueId", queue_id);
    match raw_request(broker, request, Duration::from_secs(5)).await {
        Ok(response) if response.code == 0 => match response.ext("offset").map(str::parse::<i64>) {
            Some(Ok(offset)) => offset,
            other => panic!("GET_MAX_OFFSET {topic}/{queue_id}: offset {other:?}"),
        },
        other => panic!("GET_MAX_OFFSET {topic}/{queue_id}: {other:?}\nbroker log (tail):\n{}", log_tail(broker)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_consumer_suspends_and_retries_locally_then_dead_letters() {
    let started = Instant::now();
    // Default delay levels: were the last send routed to %RETRY% with its DELAY (3 + 2 = level
    // 5, 1 minute) it would not come back within the test's deadlines.
    let broker = BrokerProcess::start(&[]).unwrap();
    let clients = Clients::new(&broker, "orderly");
    let topic = unique("OrderlyTopic");
    let group = unique("orderly_group");
    let retry_topic = format!("%RETRY%{group}");
    let dlq_topic = format!("%DLQ%{group}");
    let mut producer = clients.producer(&unique("orderly_producer"), Trace::Off).await;
    let queues = create_topic(&broker, &mut producer, &topic, 2).await;

    let failing: Seen = Default::default();
    let batch_sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let options = ConsumerOptions {
        max_reconsume_times: Some(MAX_RECONSUME),
        suspend_current_queue_time_millis: Some(SUSPEND.as_millis() as u64),
        ..Default::default()
    };
    let listener = FailPoison { seen: failing.clone(), batch_sizes: batch_sizes.clone() };
    let mut consumer = clients.consumer(&broker, &group, &topic, listener, options).await;
    // The client's last-resort send goes to %RETRY%<group> (created on the group's heartbeat,
    // §9.1): its inner producer needs the route, or it keeps failing and suspending.
    let retry_queues = route_into_consumer(&broker, &mut consumer, &retry_topic, Duration::from_secs(15), "created on the group's first heartbeat").await;
    let routed = started.elapsed();

    // Queue 0: head, poison, then AFTER more; queue 1: SIDE messages.
    let mut in_order = vec![send_to(&broker, &producer, &queues[0], "head").await, send_to(&broker, &producer, &queues[0], POISON).await];
    for i in 0..AFTER {
        in_order.push(send_to(&broker, &producer, &queues[0], &format!("after-{i}")).await);
    }
    let mut side = Vec::new();
    for i in 0..SIDE {
        side.push(send_to(&broker, &producer, &queues[1], &format!("side-{i}")).await);
    }
    let all: Vec<&Sent> = in_order.iter().chain(&side).collect();
    let sent_of = |key: &str| all.iter().find(|s| s.key == key).copied().unwrap();

    // Everything behind the poison is consumed once the poison is resolved (dead-lettered); if
    // the client cannot get rid of it, queue 0 stays suspended and this times out.
    wait_for(
        &broker,
        Duration::from_secs(20),
        || all.iter().filter(|s| s.key != POISON).all(|s| !deliveries_of(&failing, &s.key).is_empty()),
        || format!("deliveries per key so far: {:?}", counts(&failing)),
    )
    .await;
    let drained = started.elapsed();

    // A second group reads the DLQ, which the broker creates on the first dead letter.
    let dead: Seen = Default::default();
    let mut dlq_consumer = clients.consumer(&broker, &unique("orderly_dlq_reader"), &dlq_topic, dead.clone(), ConsumerOptions::default()).await;
    let dlq_queues = route_into_consumer(&broker, &mut dlq_consumer, &dlq_topic, Duration::from_secs(15), "created on the first dead letter, perm 6").await;
    assert_eq!(dlq_queues.len(), 1, "{dlq_topic} has one queue (§9.1): {dlq_queues:?}");
    wait_for(
        &broker,
        Duration::from_secs(20),
        || !deliveries_of(&dead, POISON).is_empty(),
        || format!("the DLQ reader got {:?}; the orderly group got {:?}", counts(&dead), counts(&failing)),
    )
    .await;
    let dead_read = started.elapsed();
    // Time for a 4th delivery of the poison, a duplicate, or a duplicate dead letter to show up.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // ---- the orderly group ----
    let sizes = batch_sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|&n| n == 1), "one message per orderly consume call (the client's default batch): {sizes:?}");
    let seen: Vec<Delivery> = failing.lock().unwrap().clone();
    let unknown: Vec<&str> = seen.iter().map(|d| d.key.as_str()).filter(|k| !all.iter().any(|s| s.key == *k)).collect();
    assert!(unknown.is_empty(), "the orderly group got messages nobody sent to it: {unknown:?}");
    // Queue 0, in consumption order: the poison three times in a row (reconsumeTimes counted by
    // the client), and nothing behind it before its last failure.
    let queue0: Vec<&Delivery> = seen.iter().filter(|d| in_order.iter().any(|s| s.key == d.key)).collect();
    let order: Vec<(&str, i32)> = queue0.iter().map(|d| (d.key.as_str(), d.reconsume_times)).collect();
    let mut expected: Vec<(&str, i32)> = vec![("head", 0)];
    expected.extend((0..=MAX_RECONSUME).map(|n| (POISON, n)));
    expected.extend(in_order[2..].iter().map(|s| (s.key.as_str(), 0)));
    assert_eq!(
        order, expected,
        "queue 0's deliveries (key, reconsumeTimes) in consumption order: the poison is retried locally \
         maxReconsumeTimes = {MAX_RECONSUME} times before anything behind it, then never again"
    );
    let poison = deliveries_of(&failing, POISON);
    let sent_poison = sent_of(POISON);
    let mut gaps = Vec::new();
    for (k, d) in poison.iter().enumerate() {
        let what = format!("poison delivery {k}");
        check_payload(&what, d, sent_poison);
        assert_eq!(d.topic, topic, "{what}: topic (a local retry, not a %RETRY% delivery)");
        // The same record every time, from the client's process queue: a redelivery through the
        // broker (%RETRY% or the delay service) would be another record.
        assert_eq!((d.queue_id, d.queue_offset), (poison[0].queue_id, poison[0].queue_offset), "{what}: queue and offset");
        assert_eq!((d.born_timestamp, d.store_timestamp), (poison[0].born_timestamp, poison[0].store_timestamp), "{what}: born and store time");
        assert_eq!(d.msg_id, poison[0].msg_id, "{what}: message id");
        if k > 0 {
            let gap = d.at.duration_since(poison[k - 1].at);
            assert!(gap + EARLY_TOLERANCE >= SUSPEND, "{what} came {gap:?} after the previous one, before the suspend time {SUSPEND:?}");
            assert!(gap < Duration::from_secs(10), "{what} came {gap:?} after the previous one (suspend time {SUSPEND:?})");
            gaps.push(gap);
        }
    }
    for s in &in_order {
        let got = deliveries_of(&failing, &s.key);
        if s.key != POISON {
            assert_eq!(got.len(), 1, "{} is consumed exactly once: {:?}", s.key, got.iter().map(|d| d.reconsume_times).collect::<Vec<_>>());
        }
        check_payload(&format!("{} in the orderly group", s.key), &got[0], s);
        assert_eq!((got[0].topic.as_str(), got[0].queue_id), (topic.as_str(), queues[0].queue_id()), "{}: topic and queue", s.key);
    }
    // Queue 1 is not held up by queue 0's suspension: consumed once each, in order, before the
    // poison's last failure (at least 2 × the suspend time after its first).
    let side_got: Vec<Delivery> = seen.iter().filter(|d| side.iter().any(|s| s.key == d.key)).cloned().collect();
    assert_eq!(
        side_got.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
        side.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
        "queue 1's deliveries, in order, once each"
    );
    for (d, s) in side_got.iter().zip(&side) {
        check_payload(&format!("{} in the orderly group", s.key), d, s);
    }
    let last_poison = poison.last().unwrap().at;
    assert!(
        side_got.iter().all(|d| d.at < last_poison),
        "queue 1 waited for queue 0's poison: its deliveries at {:?} after the poison's first, the poison's last at {:?}",
        side_got.iter().map(|d| d.at.duration_since(poison[0].at)).collect::<Vec<_>>(),
        last_poison.duration_since(poison[0].at)
    );

    // ---- the DLQ ----
    assert_eq!(counts(&dead), BTreeMap::from([(POISON.to_owned(), 1)]), "{dlq_topic} holds the poison exactly once, and nothing else");
    let d = &deliveries_of(&dead, POISON)[0];
    let what = format!("the poison in {dlq_topic}");
    eprintln!("{what}: reconsumeTimes {}, msgId {}, properties {:?}", d.reconsume_times, d.msg_id, d.props);
    check_payload(&what, d, sent_poison);
    assert_eq!((d.topic.as_str(), d.queue_id), (dlq_topic.as_str(), 0), "{what}: topic and queue (§2.1 step 4: queue 0)");
    assert_eq!(d.prop("RETRY_TOPIC"), Some(topic.as_str()), "{what}: property RETRY_TOPIC");
    // The client's id of a pulled message is its offset message id (Java's: the UNIQ_KEY); the
    // client's resend names the original by it.
    assert_eq!(
        d.prop("ORIGIN_MESSAGE_ID").map(str::to_ascii_uppercase),
        sent_poison.result.offset_msg_id.as_ref().map(|id| id.to_ascii_uppercase()),
        "{what}: property ORIGIN_MESSAGE_ID must be the original record's offset message id (the send result's)"
    );
    assert_eq!(d.prop("ORIGIN_MESSAGE_ID"), Some(poison[0].msg_id.as_str()), "{what}: ORIGIN_MESSAGE_ID is the id the orderly consumer saw");
    // rocketmq-client-rust sends reconsumeTimes = the last failure's + 1 (Java's client: the
    // last failure's, which a 5.x broker dead-letters because the group holds orderly locks;
    // §2.1 step 4). The client encodes the properties before it moves RECONSUME_TIME and
    // MAX_RECONSUME_TIMES into the header, as Java's does, so they are stored as well.
    assert_eq!(d.reconsume_times, MAX_RECONSUME + 1, "{what}: reconsumeTimes (the request header's)");
    let (reconsume_prop, max_prop) = ((MAX_RECONSUME + 1).to_string(), MAX_RECONSUME.to_string());
    assert_eq!(
        (d.prop("RECONSUME_TIME"), d.prop("MAX_RECONSUME_TIMES")),
        (Some(reconsume_prop.as_str()), Some(max_prop.as_str())),
        "{what}: properties RECONSUME_TIME and MAX_RECONSUME_TIMES as the client sent them"
    );
    assert_eq!(d.prop("DELAY"), Some("-1"), "{what}: DELAY (the client asked for level 3 + {MAX_RECONSUME}; 5.x marks a dead letter as never scheduled)");
    assert!(d.born_timestamp >= poison[0].born_timestamp, "{what}: born timestamp (a fresh send by the client's inner producer)");

    // ---- never through the broker's retry path ----
    for mq in &retry_queues {
        assert_eq!(max_offset(&broker, &retry_topic, mq.queue_id()).await, 0, "{retry_topic} queue {} must stay empty", mq.queue_id());
    }
    for queue_id in 0..18 {
        assert_eq!(max_offset(&broker, "SCHEDULE_TOPIC_XXXX", queue_id).await, 0, "SCHEDULE_TOPIC_XXXX queue {queue_id}: nothing was delayed");
    }
    eprintln!(
        "orderly retries ok ({} backend): poison consumed {} times, gaps {gaps:?} (suspend {SUSPEND:?}), then dead-lettered; queue 0 resumed \
         {:?} after the poison's last failure; at {routed:?} {retry_topic} routed, at {drained:?} queue 0 drained, at \
         {dead_read:?} the DLQ read, test took {:?}",
        broker.process.backend,
        poison.len(),
        deliveries_of(&failing, "after-0")[0].at.duration_since(last_poison),
        started.elapsed()
    );

    stop_consumer(&broker, &mut dlq_consumer, "DLQ reader").await;
    stop_consumer(&broker, &mut consumer, "orderly consumer").await;
    producer.shutdown().await;
    clients.finish().await;
}
