//! Delayed delivery, consumer retries and the dead-letter queue end to end (PROTOCOL.md §9, code
//! 36 CONSUMER_SEND_MSG_BACK in §2.2), through the third-party `rocketmq-client-rust` 1.0.0
//! against a real `mqbroker` process (embedded name server, loopback only), with short
//! `messageDelayLevel` tables so that the tests run in seconds:
//!
//! 1. `failed_messages_come_back_after_their_delay_level_then_land_in_the_dlq`: a CLUSTERING
//!    push consumer with `maxReconsumeTimes` 2 fails every test message. Each comes back from
//!    `%RETRY%<group>` after its level's delay (level 3 after the first failure, level 4 after
//!    the second), with `reconsumeTimes` 0, 1, 2; the third failure dead-letters it to
//!    `%DLQ%<group>`, where a second group reads it byte-identical with `RETRY_TOPIC` and
//!    `ORIGIN_MESSAGE_ID`; it never comes back to the failing group.
//! 2. `delayed_messages_arrive_after_their_level_even_across_a_kill_9`: messages with delay
//!    level 2 (3 s here) reach a running consumer no earlier than their due time and soon after
//!    it (and the broker stores them into the real topic no earlier: store time − born time),
//!    while undelayed ones arrive at once; delayed messages that are pending when the broker is
//!    killed with SIGKILL still arrive, on time or later, after a restart on the same store.
//!
//! Every wait has a deadline; a timeout fails with what was seen and the broker's log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ferromq_tests::BrokerProcess;
use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_model::result::SendResult;

use crate::common::{
    CASE_PROP, Clients, ConsumerOptions, Delivery, EARLY_TOLERANCE, Record, Seen, Trace, counts, create_topic, deliveries_of,
    kill_9_and_restart, message, route_into_consumer, send, stop_consumer, unique, wait_for,
};

/// One sent message and when it was sent.
#[derive(Debug, Clone)]
struct Sent {
    key: String,
    case: String,
    body: Vec<u8>,
    /// Just before the send call: the broker stores the message no earlier.
    started: Instant,
    /// When the broker's SEND_OK came back.
    acked: Instant,
    result: SendResult,
}

/// Sends `body` as message `key` with user property [`CASE_PROP`], delayed by `delay_level` if
/// given (property DELAY, §9.3).
async fn send_case(broker: &BrokerProcess, producer: &DefaultMQProducer, topic: &str, key: &str, body: Vec<u8>, delay_level: Option<i32>) -> Sent {
    let case = format!("case of {key}");
    let mut message = message(topic, key, "T", &[(CASE_PROP, &case)], &body);
    if let Some(level) = delay_level {
        message.set_delay_time_level(level);
    }
    let started = Instant::now();
    let result = send(broker, producer, message, &format!("{key} (delay level {delay_level:?})")).await;
    let acked = Instant::now();
    Sent { key: key.to_owned(), case, body, started, acked, result }
}

/// Checks that a delivery carries what was sent: body, key, user property and UNIQ_KEY.
fn check_payload(what: &str, got: &Delivery, sent: &Sent) {
    assert!(got.body == sent.body, "{what}: body differs ({} bytes received, {} sent)", got.body.len(), sent.body.len());
    assert_eq!(got.key, sent.key, "{what}: key");
    assert_eq!(got.prop(CASE_PROP), Some(sent.case.as_str()), "{what}: user property {CASE_PROP:?}");
    assert_eq!(
        got.prop("UNIQ_KEY"),
        sent.result.msg_id.as_ref().map(|id| id.as_str()),
        "{what}: UNIQ_KEY (the producer's message id) must be kept"
    );
}

// ---- 1. retries after their delay level, then the DLQ -----------------------------------------

/// Levels 1..18: level 3 (after the first failure) 1 s, level 4 (after the second) 2 s.
const RETRY_LEVELS: &str = "1s 1s 1s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s";
const MAX_RECONSUME: i32 = 2;
const FAILING: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_messages_come_back_after_their_delay_level_then_land_in_the_dlq() {
    let broker = BrokerProcess::start(&[("messageDelayLevel", RETRY_LEVELS)]).unwrap();
    let clients = Clients::new(&broker, "retry-dlq");
    let topic = unique("RetryTopic");
    let group = unique("retry_group");
    let retry_topic = format!("%RETRY%{group}");
    let dlq_topic = format!("%DLQ%{group}");
    let mut producer = clients.producer(&unique("retry_producer"), Trace::Off).await;
    create_topic(&broker, &mut producer, &topic, 2).await;

    let failing: Seen = Default::default();
    let options = ConsumerOptions { max_reconsume_times: Some(MAX_RECONSUME), ..Default::default() };
    let mut consumer = clients.consumer(&broker, &group, &topic, Record::failing(failing.clone(), "dlq-"), options).await;
    // The broker creates %RETRY%<group> on the group's heartbeat (§9.1) and registers it.
    let retry_queues = route_into_consumer(&broker, &mut consumer, &retry_topic, Duration::from_secs(15), "created on the group's first heartbeat").await;
    eprintln!("{retry_topic} routed with {} queue(s)", retry_queues.len());

    let mut sent = Vec::new();
    for i in 0..FAILING {
        let mut body = format!("dead letter {i}: ").into_bytes();
        body.extend((0..(100 + i * 37)).map(|b| (b * 13 + i) as u8));
        sent.push(send_case(&broker, &producer, &topic, &format!("dlq-{i}"), body, None).await);
    }
    let expected_keys: BTreeSet<String> = sent.iter().map(|s| s.key.clone()).collect();

    // Three deliveries each: the original, then after level 3 (1 s), then after level 4 (2 s).
    wait_for(
        &broker,
        Duration::from_secs(25),
        || sent.iter().all(|s| deliveries_of(&failing, &s.key).len() > MAX_RECONSUME as usize),
        || format!("deliveries per key so far (want {} each): {:?}", MAX_RECONSUME + 1, counts(&failing)),
    )
    .await;

    // A second group reads the DLQ, which the broker creates on the first dead letter.
    let dlq_group = unique("dlq_reader");
    let dead: Seen = Default::default();
    let mut dlq_consumer = clients.consumer(&broker, &dlq_group, &dlq_topic, dead.clone(), ConsumerOptions::default()).await;
    let dlq_queues = route_into_consumer(&broker, &mut dlq_consumer, &dlq_topic, Duration::from_secs(15), "created on the first dead letter, perm 6").await;
    assert_eq!(dlq_queues.len(), 1, "{dlq_topic} has one queue (§9.1): {dlq_queues:?}");
    wait_for(
        &broker,
        Duration::from_secs(20),
        || counts(&dead).keys().cloned().collect::<BTreeSet<_>>().is_superset(&expected_keys),
        || format!("the DLQ reader got {:?}; the failing group got {:?}", counts(&dead), counts(&failing)),
    )
    .await;
    let dlq_complete = Instant::now();
    // Time for a 4th delivery to the failing group, or a duplicate dead letter, to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The failing group: exactly three deliveries per key, reconsumeTimes 0, 1, 2, spaced by the
    // delay of level 3 + reconsumeTimes; the same message each time.
    let mut report = Vec::new();
    for s in &sent {
        let got = deliveries_of(&failing, &s.key);
        let times: Vec<i32> = got.iter().map(|d| d.reconsume_times).collect();
        assert_eq!(
            times,
            (0..=MAX_RECONSUME).collect::<Vec<_>>(),
            "{}: reconsumeTimes of each delivery to the failing group, in arrival order (a 4th delivery means the \
             message was not dead-lettered once reconsumeTimes reached maxReconsumeTimes {MAX_RECONSUME}); \
             arrivals after the first: {:?}",
            s.key,
            got.iter().map(|d| d.at.duration_since(got[0].at)).collect::<Vec<_>>()
        );
        for (k, d) in got.iter().enumerate() {
            let what = format!("{} delivery {k} to the failing group", s.key);
            check_payload(&what, d, s);
            assert_eq!(d.topic, topic, "{what}: the topic the listener sees");
            // CONSUMER_SEND_MSG_BACK keeps the born timestamp (§9.2 step 7), and so does the
            // delay service (§9.3); the client's fallback (a fresh send to %RETRY%) would not:
            // a different one means code 36 failed and the client resent the message itself.
            assert_eq!(
                d.born_timestamp, got[0].born_timestamp,
                "{what}: born timestamp changed (the client's fallback resend instead of CONSUMER_SEND_MSG_BACK?)"
            );
        }
        let mut gaps = Vec::new();
        for k in 1..got.len() {
            let level = 3 + got[k - 1].reconsume_times;
            let delay = Duration::from_secs(if level == 3 { 1 } else { 2 });
            let gap = got[k].at.duration_since(got[k - 1].at);
            assert!(
                gap + EARLY_TOLERANCE >= delay,
                "{}: delivery {k} came {gap:?} after delivery {}, before level {level}'s delay of {delay:?}",
                s.key,
                k - 1
            );
            assert!(gap < Duration::from_secs(15), "{}: delivery {k} came {gap:?} after delivery {} (level {level} is {delay:?})", s.key, k - 1);
            gaps.push(gap);
        }
        report.push(format!("{}: gaps {gaps:?}", s.key));
    }
    let extra: Vec<String> = counts(&failing).into_iter().filter(|(k, _)| !expected_keys.contains(k)).map(|(k, n)| format!("{k}×{n}")).collect();
    assert!(extra.is_empty(), "the failing group got messages nobody sent to it: {extra:?}");

    // The DLQ: each message once, byte-identical, queue 0, with RETRY_TOPIC = the original
    // topic, ORIGIN_MESSAGE_ID = the original record's offset message id, reconsumeTimes
    // incremented past the last failure, and the original born timestamp.
    let dead_counts = counts(&dead);
    assert_eq!(
        dead_counts,
        expected_keys.iter().map(|k| (k.clone(), 1)).collect::<BTreeMap<_, _>>(),
        "the DLQ holds each dead message exactly once"
    );
    for s in &sent {
        let d = &deliveries_of(&dead, &s.key)[0];
        let first = &deliveries_of(&failing, &s.key)[0];
        let what = format!("{} in {dlq_topic}", s.key);
        check_payload(&what, d, s);
        assert_eq!(d.topic, dlq_topic, "{what}: topic");
        assert_eq!(d.queue_id, 0, "{what}: queue (§9.2 step 6: queue 0)");
        assert_eq!(d.prop("RETRY_TOPIC"), Some(topic.as_str()), "{what}: property RETRY_TOPIC");
        let origin = d.prop("ORIGIN_MESSAGE_ID").map(str::to_ascii_uppercase);
        assert_eq!(
            origin,
            s.result.offset_msg_id.as_ref().map(|id| id.to_ascii_uppercase()),
            "{what}: property ORIGIN_MESSAGE_ID must be the original record's offset message id (the send result's)"
        );
        assert_eq!(d.reconsume_times, MAX_RECONSUME + 1, "{what}: reconsumeTimes (the last failure's + 1, §9.2 step 7)");
        assert_eq!(d.born_timestamp, first.born_timestamp, "{what}: born timestamp of the original");
    }
    eprintln!(
        "retries and DLQ ok: {}; all {FAILING} in the DLQ {:?} after the last send; no 4th delivery in the 2 s after",
        report.join("; "),
        dlq_complete.duration_since(sent.last().unwrap().acked)
    );

    stop_consumer(&broker, &mut dlq_consumer, "DLQ reader").await;
    stop_consumer(&broker, &mut consumer, "failing consumer").await;
    producer.shutdown().await;
    clients.finish().await;
}

// ---- 2. delay levels, and across a kill -9 ----------------------------------------------------

/// 18 levels; level 2 is 3 s.
const DELAY_LEVELS: &str = "1s 3s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s";
const LEVEL: i32 = 2;
const LEVEL_DELAY: Duration = Duration::from_secs(3);
const PER_KIND: usize = 5;

/// The first delivery of each sent message, checked against what was sent and its due time
/// (`None`: not delayed). Returns each one's first arrival after its send started.
fn check_arrivals(seen: &Seen, sent: &[Sent], topic: &str, due_after: Option<Duration>) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for s in sent {
        let got = deliveries_of(seen, &s.key);
        assert!(!got.is_empty(), "{} was never delivered", s.key);
        for (k, d) in got.iter().enumerate() {
            let what = format!("{} (delivery {k})", s.key);
            check_payload(&what, d, s);
            assert_eq!(d.topic, topic, "{what}: delivered to the real topic");
            let sent_queue = s.result.message_queue.as_ref().map(|mq| mq.queue_id());
            assert_eq!(Some(d.queue_id), sent_queue, "{what}: delivered to the queue it was sent to (REAL_QID)");
            if let Some(due) = due_after {
                let after = d.at.duration_since(s.started);
                assert!(after + EARLY_TOLERANCE >= due, "{what}: arrived {after:?} after its send started, before its delay of {due:?}");
                // The broker's side of the same rule, whatever the consumer's timing: the delay
                // service appends the message to the real topic no earlier than its due time.
                let held_ms = d.store_timestamp - d.born_timestamp;
                assert!(
                    held_ms + EARLY_TOLERANCE.as_millis() as i64 >= due.as_millis() as i64,
                    "{what}: stored in {topic} {held_ms} ms after it was born (born {}, stored {}), before its delay of {due:?}",
                    d.born_timestamp,
                    d.store_timestamp
                );
                assert_eq!(d.prop("DELAY"), None, "{what}: the delay service removes DELAY from the delivered message (§9.3)");
            }
        }
        latencies.push(got[0].at.duration_since(s.started));
    }
    latencies
}

/// How long the broker held `key` back: its first delivery's store time minus its born time, ms.
fn held_ms(seen: &Seen, key: &str) -> i64 {
    deliveries_of(seen, key).first().map_or(-1, |d| d.store_timestamp - d.born_timestamp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_arrive_after_their_level_even_across_a_kill_9() {
    let mut broker = BrokerProcess::start(&[("messageDelayLevel", DELAY_LEVELS)]).unwrap();
    let clients = Clients::new(&broker, "delay");
    let topic = unique("DelayTopic");
    let group = unique("delay_group");
    let mut producer = clients.producer(&unique("delay_producer"), Trace::Off).await;
    create_topic(&broker, &mut producer, &topic, 4).await;

    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &group, &topic, seen.clone(), ConsumerOptions::default()).await;
    // The consumer is running (queues assigned, pulls parked) before anything is timed.
    let warmup = send_case(&broker, &producer, &topic, "warmup", b"warm up".to_vec(), None).await;
    wait_for(&broker, Duration::from_secs(20), || !deliveries_of(&seen, &warmup.key).is_empty(), || format!("warm-up message not consumed; seen {:?}", counts(&seen))).await;

    // Part 1: five delayed by level 2 (3 s), then five undelayed.
    let mut delayed = Vec::new();
    for i in 0..PER_KIND {
        let body = format!("delayed {i} ").repeat(i + 1).into_bytes();
        delayed.push(send_case(&broker, &producer, &topic, &format!("d1-{i}"), body, Some(LEVEL)).await);
    }
    let mut undelayed = Vec::new();
    for i in 0..PER_KIND {
        let body = format!("at once {i} ").repeat(i + 1).into_bytes();
        undelayed.push(send_case(&broker, &producer, &topic, &format!("n-{i}"), body, None).await);
    }
    let part1_keys: BTreeSet<String> = delayed.iter().chain(&undelayed).map(|s| s.key.clone()).collect();
    wait_for(
        &broker,
        LEVEL_DELAY + Duration::from_secs(8),
        || counts(&seen).keys().cloned().collect::<BTreeSet<_>>().is_superset(&part1_keys),
        || {
            let got = counts(&seen);
            let missing: Vec<&String> = part1_keys.iter().filter(|k| !got.contains_key(*k)).collect();
            format!("missing {missing:?}; delivered so far {got:?}")
        },
    )
    .await;
    // The undelayed ones arrived promptly, and not after the delayed ones' due time.
    for (s, latency) in undelayed.iter().zip(check_arrivals(&seen, &undelayed, &topic, None)) {
        let after_ack = latency.saturating_sub(s.acked.duration_since(s.started));
        assert!(after_ack < Duration::from_secs(2), "{} (no delay) arrived {after_ack:?} after its SEND_OK", s.key);
    }
    let latencies = check_arrivals(&seen, &delayed, &topic, Some(LEVEL_DELAY));
    for (s, latency) in delayed.iter().zip(&latencies) {
        assert!(*latency <= LEVEL_DELAY * 2, "{} (level {LEVEL}, {LEVEL_DELAY:?}) arrived only {latency:?} after its send", s.key);
    }
    let held: Vec<i64> = delayed.iter().map(|s| held_ms(&seen, &s.key)).collect();
    eprintln!("part 1: delayed messages put into the topic {held:?} ms after their sends, consumed {latencies:?} after them");

    // Part 2: five more delayed by level 2, then SIGKILL at once and a restart on the same store.
    // The clients keep running and reconnect.
    let mut pending = Vec::new();
    for i in 0..PER_KIND {
        let body = format!("survivor {i} ").repeat(i + 2).into_bytes();
        pending.push(send_case(&broker, &producer, &topic, &format!("d2-{i}"), body, Some(LEVEL)).await);
    }
    let seen_before_kill = seen.lock().unwrap().len();
    let restart = kill_9_and_restart(&mut broker);
    let (killed_at, restarted_in) = (restart.killed_at, restart.restarted_in);
    let part2_keys: BTreeSet<String> = pending.iter().map(|s| s.key.clone()).collect();
    // The deadline counts from the kill. Besides the restart (a store recovering from an
    // unclean stop), the client needs time: pulls it had parked on the killed broker can hang
    // until its own long-poll timeout (30 s, CONSUMER_TIMEOUT_MILLIS_WHEN_SUSPEND, not
    // configurable) and it pulls again 3 s after a failed pull.
    wait_for(
        &broker,
        Duration::from_secs(45).saturating_sub(restarted_in),
        || counts(&seen).keys().cloned().collect::<BTreeSet<_>>().is_superset(&part2_keys),
        || {
            let got = counts(&seen);
            let missing: Vec<&String> = part2_keys.iter().filter(|k| !got.contains_key(*k)).collect();
            format!(
                "{:?} after the SIGKILL (restart took {restarted_in:?}), delayed messages {missing:?} have not arrived; delivered so far {got:?}",
                killed_at.elapsed()
            )
        },
    )
    .await;
    // Let duplicates show up before counting them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let latencies = check_arrivals(&seen, &pending, &topic, Some(LEVEL_DELAY));
    let got = counts(&seen);
    let duplicates: usize = part2_keys.iter().map(|k| got[k] - 1).sum();
    let again_after_restart: BTreeMap<String, usize> = {
        let all = seen.lock().unwrap();
        let mut out = BTreeMap::new();
        for d in all[seen_before_kill..].iter().filter(|d| !part2_keys.contains(&d.key)) {
            *out.entry(d.key.clone()).or_default() += 1;
        }
        out
    };
    let held: Vec<i64> = pending.iter().map(|s| held_ms(&seen, &s.key)).collect();
    eprintln!(
        "part 2: restart took {restarted_in:?}; the {PER_KIND} pending delayed messages were put into the topic {held:?} ms after \
         their sends and reached the consumer {latencies:?} after them, with {duplicates} duplicate deliveries; earlier messages \
         delivered again after the restart (allowed: progress persisted periodically, as Java's): {again_after_restart:?}"
    );

    stop_consumer(&broker, &mut consumer, "delay consumer").await;
    producer.shutdown().await;
    clients.finish().await;
}
