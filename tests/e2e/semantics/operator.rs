//! What an operator does to consumer groups (mqadmin resetOffsetByTime, cloneGroupOffset,
//! deleteSubGroup, consumerStatus), end to end: producers and push consumers are the third-party
//! `rocketmq-client-rust` 1.0.0, the admin side is played over the raw remoting protocol with
//! `ferromq_net`'s client, against a real `mqbroker` process (embedded name server, loopback):
//!
//! 1. `reset_by_time_reconsumes_exactly_what_was_stored_from_then_on`: a running CLUSTERING
//!    consumer has consumed batch A, then (a pause later) batch B. INVOKE_BROKER_TO_RESET_OFFSET
//!    (222) to a time T between A's last store time and B's first (the broker's clock: the store
//!    timestamps the consumer saw) answers every queue's first offset of B, and the broker's
//!    RESET_CONSUMER_CLIENT_OFFSET (220) makes the consumer receive exactly batch B again, once
//!    each, and nothing of A. A reset to -1 (the end) redelivers nothing: messages sent after
//!    it arrive, and only they.
//! 2. `reset_applies_to_an_offline_group_on_its_next_start`: the group consumed everything and
//!    left; 222 to T commits the first offsets of B on the broker (a non-forced reset to the end
//!    then keeps them, the group being behind); a new consumer of the group receives exactly B.
//! 3. `clone_and_delete_group_offsets`: CLONE_GROUP_OFFSET (314) gives a new group the source
//!    group's offsets, so its consumer (CONSUME_FROM_FIRST_OFFSET) gets only messages sent later;
//!    DELETE_SUBSCRIPTIONGROUP (207) with cleanOffset drops them, so the next consumer of that
//!    group starts from the first offset and gets everything.
//! 4. `running_info_is_forwarded_to_the_consumer`: GET_CONSUMER_RUNNING_INFO (307) for the
//!    clientId that GET_CONSUMER_CONNECTION_LIST (203) lists is answered by that client (its
//!    ConsumerRunningInfo: name server, consume type, subscriptions, the queues it pulls, the
//!    jstack when asked); an unknown client, or a known client under another group, is 206.
//! 5. `consumer_status_lists_each_client_with_its_offsets`: INVOKE_BROKER_TO_GET_CONSUMER_STATUS
//!    (223) as mqadmin getConsumerStatus sends it is answered with the consumer's own
//!    GET_CONSUMER_STATUS_FROM_CLIENT (221) answer: its clientId with the offsets it holds for
//!    each queue it consumes (the end of each queue once it has consumed everything); with
//!    `clientAddr` naming it, the same; naming nobody, an empty table; once the group is
//!    offline, SYSTEM_ERROR.
//!
//! The client handles 220 as Java's does: it drops its process queues, sleeps 10 s
//! (`RESET_OFFSET_MAX_WAIT`, not configurable) to let consume threads finish, then takes the new
//! offsets and rebalances. Redeliveries after a live reset therefore come 10 s or more later.
//!
//! Every wait has a deadline; a timeout fails with what was seen and the broker's log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::BrokerProcess;
use rocketmq_client_rust::{DefaultMQProducer, DefaultMQPushConsumer};
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::result::SendStatus;

use crate::common::{
    Clients, ConsumerOptions, SEND_TIMEOUT_MS, Seen, Trace, counts_since, create_topic, log_tail, message, raw_request, stop_consumer, unique,
    wait_for,
};

/// Timeout of one raw admin call (307 waits up to 10 s for the client).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// Queues of every test topic.
const QUEUES: usize = 4;
/// Messages per batch, spread evenly over the queues.
const BATCH: usize = 20;
/// Between two batches, so that their store timestamps (whole ms) differ.
const BATCH_PAUSE: Duration = Duration::from_millis(400);
/// How long a live consumer may take to act on a reset: the client sleeps 10 s before it
/// takes the new offsets, then rebalances and pulls.
const LIVE_RESET_DEADLINE: Duration = Duration::from_secs(30);
/// How long to keep watching for deliveries that must not come.
const SETTLE: Duration = Duration::from_millis(1_500);

// ---- deliveries ---------------------------------------------------------------------------------

fn delivered_len(seen: &Seen) -> usize {
    seen.lock().unwrap().len()
}

/// The keys of `sent` not delivered from index `from` on.
fn missing_since(seen: &Seen, from: usize, sent: &[Sent]) -> Vec<String> {
    let got = counts_since(seen, from);
    sent.iter().filter(|s| !got.contains_key(&s.key)).map(|s| s.key.clone()).collect()
}

/// Waits until every message of `sent` was delivered at least once from index `from` on; a
/// timeout after `limit` names `what` was awaited, the keys missing and what did arrive.
async fn wait_delivered_since(broker: &BrokerProcess, limit: Duration, seen: &Seen, from: usize, sent: &[Sent], what: &str) {
    let started = Instant::now();
    wait_for(
        broker,
        limit,
        || missing_since(seen, from, sent).is_empty(),
        || format!("{what}, {:?} on: missing {:?}; received {:?}", started.elapsed(), missing_since(seen, from, sent), counts_since(seen, from)),
    )
    .await;
}

/// Asserts that the deliveries from index `from` on are exactly `expected`, each once.
fn assert_exactly_once_since(broker: &BrokerProcess, seen: &Seen, from: usize, expected: &[Sent], what: &str) {
    let got = counts_since(seen, from);
    let want: BTreeMap<String, usize> = expected.iter().map(|s| (s.key.clone(), 1)).collect();
    if got != want {
        let unexpected: BTreeMap<&String, &usize> = got.iter().filter(|(k, _)| !want.contains_key(*k)).collect();
        let duplicated: BTreeMap<&String, &usize> = got.iter().filter(|(k, n)| want.contains_key(*k) && **n > 1).collect();
        let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
        panic!(
            "{what}: expected exactly {} messages, each once; not expected: {unexpected:?}; more than once: {duplicated:?}; \
             missing: {missing:?}\nbroker log (tail):\n{}",
            want.len(),
            log_tail(broker)
        );
    }
}

/// Asserts that every delivery of a message of `sent` from index `from` on came from the queue
/// and queue offset its send result named.
fn assert_positions_since(seen: &Seen, from: usize, sent: &[Sent], what: &str) {
    let by_key: HashMap<&str, &Sent> = sent.iter().map(|s| (s.key.as_str(), s)).collect();
    for d in seen.lock().unwrap().iter().skip(from) {
        if let Some(s) = by_key.get(d.key.as_str()) {
            assert_eq!(
                (d.queue_id, d.queue_offset),
                (s.queue_id, s.queue_offset),
                "{what}: {} delivered from another position than it was sent to",
                d.key
            );
        }
    }
}

/// The store timestamps of the first delivery of each of `sent`.
fn store_times(seen: &Seen, sent: &[Sent]) -> Vec<i64> {
    let all = seen.lock().unwrap();
    sent.iter().filter_map(|s| all.iter().find(|d| d.key == s.key).map(|d| d.store_timestamp)).collect()
}

/// One sent message: its key and where the broker put it.
#[derive(Debug, Clone)]
struct Sent {
    key: String,
    queue_id: i32,
    queue_offset: i64,
}

/// Sends `count` messages `<prefix>-NNN`, round robin over `mqs` (each to its queue).
async fn send_batch(broker: &BrokerProcess, producer: &DefaultMQProducer, mqs: &[MessageQueue], prefix: &str, count: usize) -> Vec<Sent> {
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        let mq = &mqs[i % mqs.len()];
        let key = format!("{prefix}-{i:03}");
        let message = message(mq.topic_str(), &key, "T", &[], format!("body of {key}").as_bytes());
        let result = producer.send_to_queue_with_timeout(message, mq.clone(), SEND_TIMEOUT_MS).await;
        let result = match result {
            Ok(Some(r)) if r.send_status == SendStatus::SendOk => r,
            other => panic!("send {key} to queue {}: {other:?}\nbroker log (tail):\n{}", mq.queue_id(), log_tail(broker)),
        };
        let queue = result.message_queue.as_ref().map(|q| q.queue_id());
        assert_eq!(queue, Some(mq.queue_id()), "{key}: the send result names another queue");
        sent.push(Sent { key, queue_id: mq.queue_id(), queue_offset: result.queue_offset as i64 });
    }
    sent
}

/// Per queue id: the number of messages in `sent` (the max offset of a topic that holds only
/// these, as every queue starts at 0).
fn max_offsets(sent: &[&[Sent]]) -> BTreeMap<i32, i64> {
    let mut out: BTreeMap<i32, i64> = (0..QUEUES as i32).map(|q| (q, 0)).collect();
    for s in sent.iter().flat_map(|b| b.iter()) {
        let e = out.entry(s.queue_id).or_default();
        *e = (*e).max(s.queue_offset + 1);
    }
    out
}

/// Per queue id: the first offset of `batch` there (`fallback`'s value where it has none).
fn first_offsets(batch: &[Sent], fallback: &BTreeMap<i32, i64>) -> BTreeMap<i32, i64> {
    let mut out = fallback.clone();
    for q in out.keys().copied().collect::<Vec<_>>() {
        if let Some(first) = batch.iter().filter(|s| s.queue_id == q).map(|s| s.queue_offset).min() {
            out.insert(q, first);
        }
    }
    out
}

/// Sends batch A, waits until `seen` has it, pauses [`BATCH_PAUSE`], sends batch B and waits
/// until `seen` has that too.
async fn send_a_pause_b(broker: &BrokerProcess, producer: &DefaultMQProducer, mqs: &[MessageQueue], seen: &Seen) -> (Vec<Sent>, Vec<Sent>) {
    let batch_a = send_batch(broker, producer, mqs, "a", BATCH).await;
    wait_delivered_since(broker, Duration::from_secs(30), seen, 0, &batch_a, "batch A").await;
    tokio::time::sleep(BATCH_PAUSE).await;
    let batch_b = send_batch(broker, producer, mqs, "b", BATCH).await;
    wait_delivered_since(broker, Duration::from_secs(20), seen, 0, &batch_b, "batch B").await;
    (batch_a, batch_b)
}

/// A time between batch `a`'s last store time and batch `b`'s first, from the store timestamps
/// the consumer saw (the broker's clock): every message of `a` was stored before it, every
/// message of `b` at or after it.
fn time_between(seen: &Seen, a: &[Sent], b: &[Sent]) -> i64 {
    let (ta, tb) = (store_times(seen, a), store_times(seen, b));
    assert_eq!((ta.len(), tb.len()), (a.len(), b.len()), "every message of both batches was delivered");
    let last_a = *ta.iter().max().unwrap();
    let first_b = *tb.iter().min().unwrap();
    assert!(
        last_a < first_b,
        "batch A's last store time {last_a} is not before batch B's first {first_b} although they were sent {BATCH_PAUSE:?} apart"
    );
    let t = last_a + ((first_b - last_a) / 2).max(1);
    eprintln!("batch A stored until {last_a}, batch B from {first_b}: reset time T = {t}");
    t
}

// ---- the admin side: raw remoting requests -------------------------------------------------------

/// Sends `request` to the broker on a connection of its own and returns the response.
async fn admin(broker: &BrokerProcess, request: RemotingCommand) -> RemotingCommand {
    let code = request.code;
    match raw_request(broker, request, ADMIN_TIMEOUT).await {
        Ok(response) => response,
        Err(e) => panic!("request code {code}: {e}\nbroker log (tail):\n{}", log_tail(broker)),
    }
}

fn describe(response: &RemotingCommand) -> String {
    format!("code {} remark {:?} body {:?}", response.code, response.remark, String::from_utf8_lossy(&response.body))
}

/// The end of the JSON value that starts at `i` (fastjson's object keys included).
fn value_end(s: &[u8], mut i: usize) -> Result<usize, String> {
    match s.get(i) {
        Some(b'"') => {
            i += 1;
            while i < s.len() {
                match s[i] {
                    b'\\' => i += 2,
                    b'"' => return Ok(i + 1),
                    _ => i += 1,
                }
            }
            Err("unterminated string".into())
        }
        Some(b'{') | Some(b'[') => {
            let mut depth = 0usize;
            while i < s.len() {
                match s[i] {
                    b'"' => {
                        i = value_end(s, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err("unterminated object".into())
        }
        Some(_) => {
            while i < s.len() && !matches!(s[i], b',' | b'}' | b']') && !s[i].is_ascii_whitespace() {
                i += 1;
            }
            Ok(i)
        }
        None => Err("value expected at the end".into()),
    }
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The raw text of top-level field `field` of a JSON object body.
fn field_text<'a>(body: &'a str, field: &str) -> Result<&'a str, String> {
    let s = body.as_bytes();
    let needle = format!("\"{field}\":");
    let start = body.find(&needle).ok_or_else(|| format!("no {field:?} in {body}"))? + needle.len();
    let start = skip_ws(s, start);
    let end = value_end(s, start)?;
    Ok(&body[start..end])
}

/// The entries of a map written by fastjson with object keys (`{{"brokerName":..}:v,...}`), as
/// (key parsed as JSON, raw value text).
fn object_keyed_entries(map: &str) -> Result<Vec<(serde_json::Value, String)>, String> {
    let s = map.as_bytes();
    let mut i = skip_ws(s, 0);
    if s.get(i) != Some(&b'{') {
        return Err(format!("not an object: {map}"));
    }
    i += 1;
    let mut out = Vec::new();
    loop {
        i = skip_ws(s, i);
        match s.get(i) {
            Some(b'}') => return Ok(out),
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(_) => {}
            None => return Err(format!("unterminated map: {map}")),
        }
        let key_end = value_end(s, i)?;
        let key: serde_json::Value = serde_json::from_str(&map[i..key_end]).map_err(|e| format!("key {}: {e}", &map[i..key_end]))?;
        i = skip_ws(s, key_end);
        if s.get(i) != Some(&b':') {
            return Err(format!("':' expected after key {key} in {map}"));
        }
        i = skip_ws(s, i + 1);
        let value_end = value_end(s, i)?;
        out.push((key, map[i..value_end].to_owned()));
        i = value_end;
    }
}

/// INVOKE_BROKER_TO_RESET_OFFSET as mqadmin resetOffsetByTime sends it; on success, the offset
/// table of the response's ResetOffsetBody by queue id, each key checked to name this topic
/// and broker.
async fn reset_offset(broker: &BrokerProcess, broker_name: &str, topic: &str, group: &str, timestamp: i64, force: bool) -> BTreeMap<i32, i64> {
    let request = RemotingCommand::request(request_code::INVOKE_BROKER_TO_RESET_OFFSET)
        .with_ext("topic", topic)
        .with_ext("group", group)
        .with_ext("timestamp", timestamp)
        .with_ext("isForce", force);
    let response = admin(broker, request).await;
    assert_eq!(
        response.code,
        response_code::SUCCESS,
        "222 (timestamp {timestamp}, isForce {force}): {}\nbroker log (tail):\n{}",
        describe(&response),
        log_tail(broker)
    );
    let body = String::from_utf8(response.body.to_vec()).expect("ResetOffsetBody is UTF-8");
    let entries = field_text(&body, "offsetTable").and_then(object_keyed_entries).unwrap_or_else(|e| panic!("ResetOffsetBody {body}: {e}"));
    let mut table = BTreeMap::new();
    for (key, value) in entries {
        assert_eq!(key["topic"], topic, "ResetOffsetBody key {key}: {body}");
        assert_eq!(key["brokerName"], broker_name, "ResetOffsetBody key {key}: {body}");
        let queue_id = key["queueId"].as_i64().unwrap_or_else(|| panic!("queueId of {key}: {body}")) as i32;
        let offset: i64 = value.parse().unwrap_or_else(|_| panic!("offset {value:?} of {key}: {body}"));
        assert!(table.insert(queue_id, offset).is_none(), "queue {queue_id} twice in {body}");
    }
    table
}

/// QUERY_CONSUMER_OFFSET without setZeroIfNotFound: the broker's committed offset, None when
/// it has none (QUERY_NOT_FOUND).
async fn committed_offset(broker: &BrokerProcess, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
    let request = RemotingCommand::request(request_code::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("setZeroIfNotFound", false);
    let response = admin(broker, request).await;
    match response.code {
        response_code::SUCCESS => {
            Some(response.ext("offset").and_then(|o| o.parse().ok()).unwrap_or_else(|| panic!("14: {}", describe(&response))))
        }
        response_code::QUERY_NOT_FOUND => None,
        _ => panic!("QUERY_CONSUMER_OFFSET {group} {topic}:{queue_id}: {}\nbroker log (tail):\n{}", describe(&response), log_tail(broker)),
    }
}

/// The committed offsets of every queue of `topic`.
async fn committed_offsets(broker: &BrokerProcess, group: &str, topic: &str) -> BTreeMap<i32, Option<i64>> {
    let mut out = BTreeMap::new();
    for q in 0..QUEUES as i32 {
        out.insert(q, committed_offset(broker, group, topic, q).await);
    }
    out
}

/// GET_CONSUMER_CONNECTION_LIST: the clientIds of the group's connections, or the error code
/// (206 when the group is not online).
async fn connected_clients(broker: &BrokerProcess, group: &str) -> Result<Vec<String>, i32> {
    let response = admin(broker, RemotingCommand::request(request_code::GET_CONSUMER_CONNECTION_LIST).with_ext("consumerGroup", group)).await;
    if response.code != response_code::SUCCESS {
        return Err(response.code);
    }
    let body: serde_json::Value =
        ferromq_net::fastjson::parse_tolerant(&response.body).unwrap_or_else(|e| panic!("203 body: {e}: {}", describe(&response)));
    let set = body["connectionSet"].as_array().unwrap_or_else(|| panic!("no connectionSet: {body}"));
    Ok(set.iter().map(|c| c["clientId"].as_str().unwrap_or_default().to_owned()).collect())
}

/// Waits until the group has no online consumer on the broker (its last client unregistered).
async fn wait_offline(broker: &BrokerProcess, group: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match connected_clients(broker, group).await {
            Err(response_code::CONSUMER_NOT_ONLINE) => return,
            other => assert!(
                Instant::now() < deadline,
                "group {group} still online 10 s after its consumer shut down: {other:?}\nbroker log (tail):\n{}",
                log_tail(broker)
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the broker's committed offsets of `group` are `want` on every queue (the
/// consumer's last commits are one-way requests).
async fn wait_committed(broker: &BrokerProcess, group: &str, topic: &str, want: &BTreeMap<i32, i64>, why: &str) {
    let want: BTreeMap<i32, Option<i64>> = want.iter().map(|(q, o)| (*q, Some(*o))).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = committed_offsets(broker, group, topic).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{why}: committed offsets of {group} are {got:?}, expected {want:?}\nbroker log (tail):\n{}",
            log_tail(broker)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints the broker's log lines about offset resets (how many consumers it notified).
fn show_reset_log(broker: &BrokerProcess) {
    for line in broker.process.log().iter().filter(|l| l.contains("reset by time")) {
        eprintln!("broker: {line}");
    }
}

/// A consumer that has consumed `everything` and shut down: its offsets are the end of every
/// queue on the broker, and the group is offline.
async fn consume_all_and_leave(
    broker: &BrokerProcess,
    consumer: &mut DefaultMQPushConsumer,
    group: &str,
    topic: &str,
    end: &BTreeMap<i32, i64>,
) {
    stop_consumer(broker, consumer, group).await;
    wait_offline(broker, group).await;
    wait_committed(broker, group, topic, end, "after a clean shutdown of a consumer that consumed everything").await;
}

// ---- 1. reset by time, consumer running ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_by_time_reconsumes_exactly_what_was_stored_from_then_on() {
    let broker = BrokerProcess::start(&[]).unwrap();
    let clients = Clients::new(&broker, "reset-live");
    let topic = unique("ResetLiveTopic");
    let group = unique("reset_live_group");
    let mut producer = clients.producer(&unique("reset_live_producer"), Trace::Off).await;
    let mqs = create_topic(&broker, &mut producer, &topic, QUEUES).await;
    let broker_name = mqs[0].broker_name().to_string();

    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &group, &topic, seen.clone(), ConsumerOptions::default()).await;
    let (batch_a, batch_b) = send_a_pause_b(&broker, &producer, &mqs, &seen).await;
    let a_and_b = [batch_a.clone(), batch_b.clone()].concat();
    assert_exactly_once_since(&broker, &seen, 0, &a_and_b, "first consumption of A and B");
    assert_positions_since(&seen, 0, &a_and_b, "first consumption");
    let t = time_between(&seen, &batch_a, &batch_b);
    let end = max_offsets(&[&batch_a, &batch_b]);

    // Reset to T while the consumer runs: every queue back to its first message of B.
    let before_reset = delivered_len(&seen);
    let reset_at = Instant::now();
    let table = reset_offset(&broker, &broker_name, &topic, &group, t, true).await;
    let expected = first_offsets(&batch_b, &end);
    assert_eq!(
        table,
        expected,
        "222 to T={t}: the first offset stored at or after T, per queue (end offsets {end:?})\nbroker log (tail):\n{}",
        log_tail(&broker)
    );
    wait_delivered_since(&broker, LIVE_RESET_DEADLINE, &seen, before_reset, &batch_b, "batch B again after the reset to T").await;
    let redelivered_in = reset_at.elapsed();
    tokio::time::sleep(SETTLE).await;
    assert_exactly_once_since(&broker, &seen, before_reset, &batch_b, "after the reset to T (B again, nothing of A)");
    assert_positions_since(&seen, before_reset, &batch_b, "after the reset to T");
    eprintln!("reset to T: {table:?}; batch B re-received {redelivered_in:?} after the request");

    // Reset to the end (-1): nothing is redelivered. Messages sent after it are the marker that
    // the consumer took the new offsets (the client waits 10 s before it does).
    let before_reset = delivered_len(&seen);
    let table = reset_offset(&broker, &broker_name, &topic, &group, -1, true).await;
    assert_eq!(table, end, "222 to -1: the end of every queue\nbroker log (tail):\n{}", log_tail(&broker));
    // Let the one-way RESET_CONSUMER_CLIENT_OFFSET reach the client before anything new is sent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let batch_c = send_batch(&broker, &producer, &mqs, "c", QUEUES).await;
    wait_delivered_since(&broker, LIVE_RESET_DEADLINE, &seen, before_reset, &batch_c, "batch C after the reset to -1").await;
    tokio::time::sleep(SETTLE).await;
    let after = counts_since(&seen, before_reset);
    let old: BTreeMap<&String, &usize> = after.iter().filter(|(k, _)| !k.starts_with("c-")).collect();
    assert!(
        old.is_empty(),
        "after the reset to -1, messages from before it were delivered again: {old:?}\nbroker log (tail):\n{}",
        log_tail(&broker)
    );
    eprintln!("reset to -1: {table:?}; afterwards only the {} new messages arrived: {after:?}", batch_c.len());
    show_reset_log(&broker);

    stop_consumer(&broker, &mut consumer, "consumer").await;
    producer.shutdown().await;
    clients.finish().await;
}

// ---- 2. reset by time, group offline -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_applies_to_an_offline_group_on_its_next_start() {
    let broker = BrokerProcess::start(&[]).unwrap();
    let clients = Clients::new(&broker, "reset-offline");
    let topic = unique("ResetOfflineTopic");
    let group = unique("reset_offline_group");
    let mut producer = clients.producer(&unique("reset_offline_producer"), Trace::Off).await;
    let mqs = create_topic(&broker, &mut producer, &topic, QUEUES).await;
    let broker_name = mqs[0].broker_name().to_string();

    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &group, &topic, seen.clone(), ConsumerOptions::default()).await;
    let (batch_a, batch_b) = send_a_pause_b(&broker, &producer, &mqs, &seen).await;
    let t = time_between(&seen, &batch_a, &batch_b);
    let end = max_offsets(&[&batch_a, &batch_b]);
    consume_all_and_leave(&broker, &mut consumer, &group, &topic, &end).await;

    // Forced reset to T: committed on the broker although nobody of the group is online.
    let first_b = first_offsets(&batch_b, &end);
    let table = reset_offset(&broker, &broker_name, &topic, &group, t, true).await;
    assert_eq!(table, first_b, "222 to T={t} for the offline group\nbroker log (tail):\n{}", log_tail(&broker));
    wait_committed(&broker, &group, &topic, &first_b, "after the reset to T").await;
    // Not forced, to the end: the group is behind the end, so its offsets stay (Java's rule:
    // without isForce a reset only moves a group back).
    let table = reset_offset(&broker, &broker_name, &topic, &group, -1, false).await;
    assert_eq!(
        table,
        first_b,
        "222 to -1 with isForce=false keeps the offsets of a group that is behind\nbroker log (tail):\n{}",
        log_tail(&broker)
    );
    wait_committed(&broker, &group, &topic, &first_b, "after a non-forced reset to -1").await;

    // The group's next consumer starts from the committed offsets: exactly B.
    let again: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &group, &topic, again.clone(), ConsumerOptions::default()).await;
    let started = Instant::now();
    wait_delivered_since(&broker, Duration::from_secs(20), &again, 0, &batch_b, "batch B by the group's next consumer").await;
    let took = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    assert_exactly_once_since(&broker, &again, 0, &batch_b, "the group's next consumer after the reset to T");
    eprintln!("offline reset to T: {table:?}; the next consumer got exactly batch B in {took:?}");
    show_reset_log(&broker);

    stop_consumer(&broker, &mut consumer, "second consumer").await;
    producer.shutdown().await;
    clients.finish().await;
}

// ---- 3. clone and delete group offsets ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_and_delete_group_offsets() {
    let broker = BrokerProcess::start(&[]).unwrap();
    let clients = Clients::new(&broker, "clone-delete");
    let topic = unique("CloneTopic");
    let src = unique("clone_src_group");
    let dest = unique("clone_dest_group");
    let mut producer = clients.producer(&unique("clone_producer"), Trace::Off).await;
    let mqs = create_topic(&broker, &mut producer, &topic, QUEUES).await;

    // The source group consumes batch A and leaves.
    let seen_src: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &src, &topic, seen_src.clone(), ConsumerOptions::default()).await;
    let batch_a = send_batch(&broker, &producer, &mqs, "a", BATCH).await;
    wait_delivered_since(&broker, Duration::from_secs(30), &seen_src, 0, &batch_a, "batch A").await;
    let end_a = max_offsets(&[&batch_a]);
    consume_all_and_leave(&broker, &mut consumer, &src, &topic, &end_a).await;

    // 314: the new group gets the source's offsets.
    let request = RemotingCommand::request(request_code::CLONE_GROUP_OFFSET)
        .with_ext("srcGroup", &src)
        .with_ext("destGroup", &dest)
        .with_ext("topic", &topic);
    let response = admin(&broker, request).await;
    assert_eq!(response.code, response_code::SUCCESS, "CLONE_GROUP_OFFSET: {}\nbroker log (tail):\n{}", describe(&response), log_tail(&broker));
    wait_committed(&broker, &dest, &topic, &end_a, "the cloned group's offsets (the source's)").await;

    // Its consumer, CONSUME_FROM_FIRST_OFFSET, gets nothing old: only what is sent now.
    let seen_dest: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &dest, &topic, seen_dest.clone(), ConsumerOptions::default()).await;
    let batch_c = send_batch(&broker, &producer, &mqs, "c", QUEUES * 2).await;
    wait_delivered_since(&broker, Duration::from_secs(20), &seen_dest, 0, &batch_c, "batch C by the cloned group's consumer").await;
    tokio::time::sleep(SETTLE).await;
    assert_exactly_once_since(&broker, &seen_dest, 0, &batch_c, "the cloned group (CONSUME_FROM_FIRST_OFFSET) after CLONE_GROUP_OFFSET");
    let end_ac = max_offsets(&[&batch_a, &batch_c]);
    consume_all_and_leave(&broker, &mut consumer, &dest, &topic, &end_ac).await;

    // 207 with cleanOffset: the group and its offsets go; the source keeps its own.
    let request = RemotingCommand::request(request_code::DELETE_SUBSCRIPTIONGROUP).with_ext("groupName", &dest).with_ext("cleanOffset", true);
    let response = admin(&broker, request).await;
    assert_eq!(
        response.code,
        response_code::SUCCESS,
        "DELETE_SUBSCRIPTIONGROUP: {}\nbroker log (tail):\n{}",
        describe(&response),
        log_tail(&broker)
    );
    let left = committed_offsets(&broker, &dest, &topic).await;
    assert!(
        left.values().all(Option::is_none),
        "offsets of {dest} after DELETE_SUBSCRIPTIONGROUP with cleanOffset: {left:?}\nbroker log (tail):\n{}",
        log_tail(&broker)
    );
    wait_committed(&broker, &src, &topic, &end_a, "the source group's offsets after the other group was deleted").await;

    // The next consumer of the deleted group starts from the first offset: everything.
    let seen_new: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &dest, &topic, seen_new.clone(), ConsumerOptions::default()).await;
    let everything = [batch_a.clone(), batch_c.clone()].concat();
    wait_delivered_since(&broker, Duration::from_secs(20), &seen_new, 0, &everything, "everything by the deleted group's new consumer").await;
    tokio::time::sleep(SETTLE).await;
    assert_exactly_once_since(&broker, &seen_new, 0, &everything, "the deleted group's new consumer (from the first offset)");
    eprintln!("clone: the new group got only the {} later messages; after delete+cleanOffset all {}", batch_c.len(), everything.len());

    stop_consumer(&broker, &mut consumer, "consumer of the recreated group").await;
    producer.shutdown().await;
    clients.finish().await;
}

// ---- 4. consumer running info --------------------------------------------------------------------

async fn running_info(broker: &BrokerProcess, group: &str, client_id: &str, jstack: bool) -> RemotingCommand {
    let request = RemotingCommand::request(request_code::GET_CONSUMER_RUNNING_INFO)
        .with_ext("consumerGroup", group)
        .with_ext("clientId", client_id)
        .with_ext("jstackEnable", jstack);
    admin(broker, request).await
}

/// The queues of `topic` in a ConsumerRunningInfo body's mqTable.
fn running_info_queues(body: &str, topic: &str) -> Result<BTreeSet<i64>, String> {
    let entries = object_keyed_entries(field_text(body, "mqTable")?)?;
    Ok(entries.iter().filter(|(k, _)| k["topic"] == topic).filter_map(|(k, _)| k["queueId"].as_i64()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_info_is_forwarded_to_the_consumer() {
    let broker = BrokerProcess::start(&[]).unwrap();
    let clients = Clients::new(&broker, "running-info");
    let topic = unique("InfoTopic");
    let group = unique("info_group");
    let mut producer = clients.producer(&unique("info_producer"), Trace::Off).await;
    let mqs = create_topic(&broker, &mut producer, &topic, QUEUES).await;
    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &group, &topic, seen.clone(), ConsumerOptions::default()).await;
    let batch = send_batch(&broker, &producer, &mqs, "m", QUEUES).await;
    wait_delivered_since(&broker, Duration::from_secs(30), &seen, 0, &batch, "the batch").await;

    // The client id, as mqadmin consumerStatus finds it: GET_CONSUMER_CONNECTION_LIST.
    let client_ids = connected_clients(&broker, &group)
        .await
        .unwrap_or_else(|code| panic!("203 for a live group answered {code}\nbroker log (tail):\n{}", log_tail(&broker)));
    assert_eq!(client_ids.len(), 1, "one connection: {client_ids:?}");
    let client_id = client_ids[0].clone();
    assert!(!client_id.is_empty(), "{client_ids:?}");

    // 307: the client's own answer, relayed. It pulls all 4 queues by now.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (response, body) = loop {
        let response = running_info(&broker, &group, &client_id, false).await;
        assert_eq!(
            response.code,
            response_code::SUCCESS,
            "307 for {client_id}: {}\nbroker log (tail):\n{}",
            describe(&response),
            log_tail(&broker)
        );
        let body = String::from_utf8(response.body.to_vec()).expect("ConsumerRunningInfo is UTF-8");
        let queues = running_info_queues(&body, &topic).unwrap_or_else(|e| panic!("ConsumerRunningInfo {body}: {e}"));
        if queues == (0..QUEUES as i64).collect() {
            break (response, body);
        }
        assert!(
            Instant::now() < deadline,
            "the consumer's running info never listed all {QUEUES} queues of {topic}: {body}\nbroker log (tail):\n{}",
            log_tail(&broker)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(!response.body.is_empty());
    let properties: serde_json::Value =
        serde_json::from_str(field_text(&body, "properties").unwrap()).unwrap_or_else(|e| panic!("properties of {body}: {e}"));
    assert_eq!(properties["PROP_CONSUME_TYPE"], "CONSUME_PASSIVELY", "{body}");
    assert_eq!(properties["PROP_NAMESERVER_ADDR"], format!("{};", broker.namesrv), "the client's name server: {body}");
    let subscriptions: serde_json::Value =
        serde_json::from_str(field_text(&body, "subscriptionSet").unwrap()).unwrap_or_else(|e| panic!("subscriptionSet of {body}: {e}"));
    let subscribed: BTreeSet<&str> =
        subscriptions.as_array().map(|a| a.iter().filter_map(|s| s["topic"].as_str()).collect()).unwrap_or_default();
    assert!(subscribed.contains(topic.as_str()), "subscriptionSet {subscribed:?} lacks {topic}: {body}");
    assert!(!body.contains("\"jstack\""), "no jstack was asked for: {body}");

    // jstackEnable is forwarded: the client adds its stack.
    let response = running_info(&broker, &group, &client_id, true).await;
    assert_eq!(
        response.code,
        response_code::SUCCESS,
        "307 with jstackEnable: {}\nbroker log (tail):\n{}",
        describe(&response),
        log_tail(&broker)
    );
    let with_stack = String::from_utf8_lossy(&response.body).into_owned();
    let jstack = field_text(&with_stack, "jstack").unwrap_or_else(|e| panic!("307 with jstackEnable=true: {e}"));
    assert!(jstack.contains("Rust client diagnostic stack"), "jstack {jstack}");

    // Unknown client, and a known client under a group it is not in: CONSUMER_NOT_ONLINE.
    let response = running_info(&broker, &group, "127.0.0.1@nobody", false).await;
    assert_eq!(
        response.code,
        response_code::CONSUMER_NOT_ONLINE,
        "307 for an unknown clientId: {}\nbroker log (tail):\n{}",
        describe(&response),
        log_tail(&broker)
    );
    let response = running_info(&broker, &unique("other_group"), &client_id, false).await;
    assert_eq!(
        response.code,
        response_code::CONSUMER_NOT_ONLINE,
        "307 for {client_id} under another group: {}\nbroker log (tail):\n{}",
        describe(&response),
        log_tail(&broker)
    );

    // Once the consumer has left, its clientId is unknown too.
    stop_consumer(&broker, &mut consumer, "consumer").await;
    wait_offline(&broker, &group).await;
    let response = running_info(&broker, &group, &client_id, false).await;
    assert_eq!(
        response.code,
        response_code::CONSUMER_NOT_ONLINE,
        "307 for {client_id} after it shut down: {}\nbroker log (tail):\n{}",
        describe(&response),
        log_tail(&broker)
    );
    eprintln!("running info of {client_id}: {} bytes, properties {properties}", body.len());

    producer.shutdown().await;
    clients.finish().await;
}

// ---- 5. consumer status ---------------------------------------------------------------------------

/// INVOKE_BROKER_TO_GET_CONSUMER_STATUS as mqadmin getConsumerStatus sends it (`clientAddr` is
/// the `-i originClientId` option, "" when not given).
async fn consumer_status(broker: &BrokerProcess, topic: &str, group: &str, client_id: &str) -> RemotingCommand {
    let request = RemotingCommand::request(request_code::INVOKE_BROKER_TO_GET_CONSUMER_STATUS)
        .with_ext("topic", topic)
        .with_ext("group", group)
        .with_ext("clientAddr", client_id);
    admin(broker, request).await
}

/// The consumerTable of a GetConsumerStatusBody: clientId → queue id → offset, each
/// MessageQueue key checked to name this topic and broker.
fn consumer_table(body: &str, topic: &str, broker_name: &str) -> Result<BTreeMap<String, BTreeMap<i32, i64>>, String> {
    if field_text(body, "messageQueueTable")? != "{}" {
        return Err(format!("the broker's own messageQueueTable is not empty: {body}"));
    }
    let mut out = BTreeMap::new();
    for (client_id, queues) in object_keyed_entries(field_text(body, "consumerTable")?)? {
        let client_id = client_id.as_str().ok_or_else(|| format!("clientId key {client_id} is not a string"))?.to_owned();
        let mut offsets = BTreeMap::new();
        for (key, value) in object_keyed_entries(&queues)? {
            if key["topic"] != topic || key["brokerName"] != broker_name {
                return Err(format!("MessageQueue {key} is not of {topic} on {broker_name}"));
            }
            let queue_id = key["queueId"].as_i64().ok_or_else(|| format!("queueId of {key}"))? as i32;
            let offset: i64 = value.parse().map_err(|_| format!("offset {value:?} of {key}"))?;
            offsets.insert(queue_id, offset);
        }
        out.insert(client_id, offsets);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_status_lists_each_client_with_its_offsets() {
    let broker = BrokerProcess::start(&[]).unwrap();
    let clients = Clients::new(&broker, "consumer-status");
    let topic = unique("StatusTopic");
    let group = unique("status_group");
    let mut producer = clients.producer(&unique("status_producer"), Trace::Off).await;
    let mqs = create_topic(&broker, &mut producer, &topic, QUEUES).await;
    let broker_name = mqs[0].broker_name().to_string();
    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &group, &topic, seen.clone(), ConsumerOptions::default()).await;
    let batch = send_batch(&broker, &producer, &mqs, "m", BATCH).await;
    wait_delivered_since(&broker, Duration::from_secs(30), &seen, 0, &batch, "the batch").await;
    let end = max_offsets(&[&batch]);

    let client_ids = connected_clients(&broker, &group)
        .await
        .unwrap_or_else(|code| panic!("203 for a live group answered {code}\nbroker log (tail):\n{}", log_tail(&broker)));
    assert_eq!(client_ids.len(), 1, "one connection: {client_ids:?}");
    let client_id = client_ids[0].clone();

    // 223: the client's own offsets, by its id. The client moves an offset on once the
    // listener has returned, so wait for the end of every queue.
    let want: BTreeMap<String, BTreeMap<i32, i64>> = [(client_id.clone(), end.clone())].into();
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let response = consumer_status(&broker, &topic, &group, "").await;
        assert_eq!(response.code, response_code::SUCCESS, "223: {}\nbroker log (tail):\n{}", describe(&response), log_tail(&broker));
        let body = String::from_utf8(response.body.to_vec()).expect("GetConsumerStatusBody is UTF-8");
        let table = consumer_table(&body, &topic, &broker_name).unwrap_or_else(|e| panic!("GetConsumerStatusBody {body}: {e}"));
        if table == want {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "223 never listed {client_id} with the end offsets {end:?}: {table:?} ({body})\nbroker log (tail):\n{}",
            log_tail(&broker)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    // Naming the client (mqadmin -i): the same; naming nobody: an empty table.
    let response = consumer_status(&broker, &topic, &group, &client_id).await;
    assert_eq!(response.code, response_code::SUCCESS, "223 for {client_id}: {}", describe(&response));
    assert_eq!(String::from_utf8_lossy(&response.body), body, "223 for {client_id} alone");
    let response = consumer_status(&broker, &topic, &group, "127.0.0.1@nobody").await;
    assert_eq!(response.code, response_code::SUCCESS, "223 for an unknown clientId: {}", describe(&response));
    assert_eq!(String::from_utf8_lossy(&response.body), r#"{"consumerTable":{},"messageQueueTable":{}}"#, "223 for an unknown clientId");

    // Once the group is offline nobody can answer: SYSTEM_ERROR, Java's remark.
    stop_consumer(&broker, &mut consumer, "consumer").await;
    wait_offline(&broker, &group).await;
    let response = consumer_status(&broker, &topic, &group, "").await;
    assert_eq!(
        (response.code, response.remark.clone().unwrap_or_default()),
        (response_code::SYSTEM_ERROR, format!("No Any Consumer online in the consumer group: [{group}]")),
        "223 for an offline group: {}",
        describe(&response)
    );
    eprintln!("consumer status of {client_id}: {body}");

    producer.shutdown().await;
    clients.finish().await;
}
