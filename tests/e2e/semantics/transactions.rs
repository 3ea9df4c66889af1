//! Transactional messages end to end (PROTOCOL.md §10, codes 37 END_TRANSACTION and 39
//! CHECK_TRANSACTION_STATE in §2.4), through the third-party `rocketmq-client-rust` 1.0.0
//! `TransactionMQProducer` against a real `mqbroker` process (embedded name server, loopback
//! only), with a 1 s `transactionCheckInterval`, a 1 s `transactionTimeOut` and a 1 s
//! `flushConsumerOffsetInterval` so that the tests run in seconds:
//!
//! 1. `commit_delivers_once_rollback_never_unknown_is_checked_back`: a producer whose local
//!    transaction commits `commit-*`, rolls back `rollback-*` and answers UNKNOWN for
//!    `unknown-*`, and whose check listener answers COMMIT to every check. Each `commit-*` reaches
//!    a CLUSTERING consumer exactly once, byte-identical, with its user property, without
//!    `TRAN_MSG` / `REAL_TOPIC` / `REAL_QID`, with transaction type COMMIT and the half's physical
//!    offset as PREPARED_TRANSACTION_OFFSET; it is never checked. No `rollback-*` is ever
//!    delivered (a check of one would be answered COMMIT and show up). Each `unknown-*` is checked
//!    no earlier than `transactionTimeOut` after its send, with the message (real topic, body,
//!    UNIQ_KEY, PGROUP, TRANSACTION_CHECK_TIMES 1, 2, ...) in the check, and is delivered only
//!    after its first check, at most once per COMMIT answer.
//! 2. `a_second_producer_answers_checks_when_the_first_is_gone`: producer B of group G connects
//!    first; producer A of G connects after it (so A is the group's most recently heard
//!    producer), sends half messages answering UNKNOWN and shuts down. The checks go to B, whose
//!    COMMIT answers deliver the messages.
//! 3. `unanswered_halves_are_discarded_after_check_max`: with `transactionCheckMax` 2 and a
//!    check listener that always answers UNKNOWN, each half message is checked exactly twice,
//!    then logged as "discarded to TRANS_CHECK_MAX_TIME_TOPIC" (once), and never delivered to its
//!    topic; a reader of TRANS_CHECK_MAX_TIME_TOPIC gets each one, byte-identical.
//! 4. `kill_9_loses_no_commit_and_revives_no_rollback`: phase A commits and rolls back messages
//!    and waits until all are resolved (and the checker's progress flushed); phase B does the same
//!    and the broker is killed with SIGKILL right after the last send, then restarted on the same
//!    store. A fresh group reading the topic from its first offset gets every committed message
//!    (A, B and one sent after the restart) and no rolled-back one, several check passes after
//!    the restart. Phase A's messages are never checked (the check listener would answer COMMIT
//!    for a phase A rollback, so a broker that forgot a resolution would deliver it); phase B's
//!    are answered truthfully (their END_TRANSACTION may have been lost with the process).
//!
//! Client notes (rocketmq-client-rust 1.0.0): one `TransactionListener` serves both the local
//! transaction and the check (`set_transaction_check_listener` stores a listener that nothing
//! calls); END_TRANSACTION is one-way; a producer builds its own client instance (instance name
//! `<pid>#<nanos>`), so two producers of one group in one process are two broker connections; a
//! producer only heartbeats to brokers it has a route to (on a new connection, then every 30 s),
//! so every transactional producer here is built with `topics([topic])` (route at start) and sends
//! before it is expected to answer checks.
//!
//! Every wait has a deadline; a timeout fails with what was seen and the broker's log.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_tests::BrokerProcess;
use rocketmq_client_rust::{DefaultMQProducer, LocalTransactionState, TransactionListener, TransactionMQProducer};
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::{SendResult, SendStatus};

use crate::common::{
    CASE_PROP, Clients, ConsumerOptions, Delivery, EARLY_TOLERANCE, Seen, Trace, bounded_shutdown, counts, create_topic, deliveries_of,
    kill_9_and_restart, log_tail, message, props_of, route_into_consumer, send, stop_consumer, try_route_into_consumer, unique, wait_for,
};

/// `transactionCheckInterval` and `transactionTimeOut` of every test broker.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(1);

/// Broker settings of every test (`flushConsumerOffsetInterval`: how often the checker's
/// progress, the offsets of `CID_RMQ_SYS_TRANS`, reaches consumerOffset.json).
const TX_SETTINGS: [(&str, &str); 3] =
    [("transactionCheckInterval", "1000"), ("transactionTimeOut", "1000"), ("flushConsumerOffsetInterval", "1000")];

/// sysFlag transaction type bits and COMMIT (§5.3).
const TRANSACTION_MASK: i32 = 0xC;
const TRANSACTION_COMMIT: i32 = 0x8;

/// One CHECK_TRANSACTION_STATE, as a producer's check listener saw it.
#[derive(Debug, Clone)]
struct Check {
    at: Instant,
    /// Which producer was asked.
    who: &'static str,
    key: String,
    topic: String,
    body: Vec<u8>,
    props: BTreeMap<String, String>,
    answer: LocalTransactionState,
}

impl Check {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str)
    }
}

type Checks = Arc<Mutex<Vec<Check>>>;

/// The checks of `key`, in arrival order.
fn checks_of(checks: &Checks, key: &str) -> Vec<Check> {
    checks.lock().unwrap().iter().filter(|c| c.key == key).cloned().collect()
}

/// Who was asked about what, how often: `key: [who answer, ...]`.
fn check_summary(checks: &Checks) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in checks.lock().unwrap().iter() {
        out.entry(c.key.clone()).or_default().push(format!("{} {}", c.who, c.answer));
    }
    out
}

/// A decision by message key.
type Decide = fn(&str) -> LocalTransactionState;

/// COMMIT for keys containing "commit", ROLLBACK for "rollback", UNKNOWN otherwise.
fn by_key(key: &str) -> LocalTransactionState {
    if key.contains("rollback") {
        LocalTransactionState::RollbackMessage
    } else if key.contains("commit") {
        LocalTransactionState::CommitMessage
    } else {
        LocalTransactionState::Unknown
    }
}

/// A producer's transaction listener: `local` answers the local transaction (after the half
/// send), `check` the broker's checks, which it records.
struct TxListener {
    who: &'static str,
    checks: Checks,
    local: Decide,
    check: Decide,
}

impl TransactionListener for TxListener {
    fn execute_local_transaction(&self, msg: &dyn MessageTrait, _: Option<&(dyn Any + Send + Sync)>) -> LocalTransactionState {
        (self.local)(msg.get_keys().map(|k| k.to_string()).unwrap_or_default().as_str())
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let key = msg.message_inner().keys().and_then(|k| k.first().cloned()).unwrap_or_default();
        let answer = (self.check)(&key);
        self.checks.lock().unwrap().push(Check {
            at: Instant::now(),
            who: self.who,
            key,
            topic: msg.topic().to_string(),
            body: msg.body().map(|b| b.to_vec()).unwrap_or_default(),
            props: props_of(msg.properties().iter()),
            answer,
        });
        answer
    }
}

/// Message `key` with user property [`CASE_PROP`] `case`.
fn case_message(topic: &str, key: &str, case: &str, body: &[u8]) -> Message {
    message(topic, key, "T", &[(CASE_PROP, case)], body)
}

/// A body particular to `key`, with every byte value in it.
fn body_of(key: &str) -> Vec<u8> {
    let mut body = format!("body of {key}: ").into_bytes();
    let seed = key.bytes().fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    body.extend((0..(300 + seed % 200)).map(|i| (i * 7 + seed) as u8));
    body
}

/// One transactional send: what was sent and what the producer got back.
#[derive(Debug, Clone)]
struct TxSent {
    key: String,
    case: String,
    body: Vec<u8>,
    /// Just before the send call: the half message is born no earlier.
    started: Instant,
    /// What the local transaction answered (and END_TRANSACTION carried).
    state: LocalTransactionState,
    /// The half send's result: `msg_id` = UNIQ_KEY, `offset_msg_id` = the half record's offset
    /// message id, `message_queue` = the real queue the producer picked.
    result: SendResult,
}

impl TxSent {
    /// The half record's physical offset, from its offset message id (§5.6: the last 16 hex
    /// digits).
    fn half_offset(&self) -> Option<i64> {
        let id = self.result.offset_msg_id.as_deref()?;
        i64::from_str_radix(id.get(id.len().checked_sub(16)?..)?, 16).ok()
    }

    fn queue_id(&self) -> Option<i32> {
        self.result.message_queue.as_ref().map(|mq| mq.queue_id())
    }
}

async fn send_tx(broker: &BrokerProcess, producer: &TransactionMQProducer, topic: &str, key: &str) -> TxSent {
    let case = format!("case of {key}");
    let body = body_of(key);
    let started = Instant::now();
    let result = producer.send_message_in_transaction::<(), _>(case_message(topic, key, &case, &body), None).await;
    match result {
        Ok(r) => match (r.local_transaction_state, r.send_result) {
            (Some(state), Some(result)) if result.send_status == SendStatus::SendOk => {
                assert_eq!(
                    result.transaction_id.as_deref(),
                    result.msg_id.as_ref().map(|id| id.as_str()),
                    "{key}: the half send's transactionId must be the message's UNIQ_KEY (§10.2 step 1)"
                );
                TxSent { key: key.to_owned(), case, body, started, state, result }
            }
            other => panic!("transactional send {key}: {other:?}\nbroker log (tail):\n{}", log_tail(broker)),
        },
        Err(e) => panic!("transactional send {key}: {e}\nbroker log (tail):\n{}", log_tail(broker)),
    }
}

/// Sends a plain message and waits until `seen` has it: the consumer is pulling.
async fn warm_up(broker: &BrokerProcess, producer: &DefaultMQProducer, topic: &str, seen: &Seen) {
    send(broker, producer, case_message(topic, "warmup", "plain", &body_of("warmup")), "warmup").await;
    wait_for(
        broker,
        Duration::from_secs(20),
        || !deliveries_of(seen, "warmup").is_empty(),
        || format!("warm-up message not consumed; seen {:?}", counts(seen)),
    )
    .await;
}

/// Checks that a delivery of a committed transactional message is the message that was sent,
/// in its real queue, without the half message's bookkeeping, marked COMMIT (§10.2 step 4).
fn check_committed(what: &str, d: &Delivery, s: &TxSent, topic: &str) {
    assert!(d.body == s.body, "{what}: body differs ({} bytes received, {} sent)", d.body.len(), s.body.len());
    assert_eq!(d.topic, topic, "{what}: topic");
    assert_eq!(Some(d.queue_id), s.queue_id(), "{what}: delivered to the queue the producer picked (REAL_QID)");
    assert_eq!(d.prop(CASE_PROP), Some(s.case.as_str()), "{what}: user property {CASE_PROP:?}; properties {:?}", d.props);
    assert_eq!(d.prop("UNIQ_KEY"), s.result.msg_id.as_ref().map(|id| id.as_str()), "{what}: UNIQ_KEY (the producer's message id) must be kept");
    for gone in ["TRAN_MSG", "REAL_TOPIC", "REAL_QID"] {
        assert_eq!(d.prop(gone), None, "{what}: property {gone} must be removed from the committed message; properties {:?}", d.props);
    }
    assert_eq!(d.sys_flag & TRANSACTION_MASK, TRANSACTION_COMMIT, "{what}: sysFlag {:#x} must carry transaction type COMMIT (0x8)", d.sys_flag);
}

/// Checks that a CHECK_TRANSACTION_STATE carried the half message as it was sent: the real
/// topic, the body, the user property, UNIQ_KEY and PGROUP (§2.4), and that the checks of one
/// message count up from 1 (TRANSACTION_CHECK_TIMES, §10.2 step 6).
fn check_checks(what: &str, checks: &[Check], s: &TxSent, topic: &str, group: &str) {
    for (k, c) in checks.iter().enumerate() {
        let what = format!("{what}, check {k}");
        assert!(c.body == s.body, "{what}: body in the check differs ({} bytes, {} sent)", c.body.len(), s.body.len());
        assert_eq!(c.topic, topic, "{what}: the check must carry the real topic (REAL_TOPIC), not the half topic");
        assert_eq!(c.prop(CASE_PROP), Some(s.case.as_str()), "{what}: user property; properties {:?}", c.props);
        assert_eq!(c.prop("UNIQ_KEY"), s.result.msg_id.as_ref().map(|id| id.as_str()), "{what}: UNIQ_KEY");
        assert_eq!(c.prop("PGROUP"), Some(group), "{what}: PGROUP");
        let times = (k + 1).to_string();
        assert_eq!(
            c.prop("TRANSACTION_CHECK_TIMES"),
            Some(times.as_str()),
            "{what}: TRANSACTION_CHECK_TIMES of the message's check number {}",
            k + 1
        );
    }
}

// ---- 1. commit, rollback, unknown + check-back -------------------------------------------------

const PER_KIND: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_delivers_once_rollback_never_unknown_is_checked_back() {
    let broker = BrokerProcess::start(&TX_SETTINGS).unwrap();
    let clients = Clients::new(&broker, "tx-basic");
    let topic = unique("TxTopic");
    let group = unique("tx_consumer");
    let producer_group = unique("tx_producer");
    let mut admin = clients.producer(&unique("tx_admin"), Trace::Off).await;
    create_topic(&broker, &mut admin, &topic, 4).await;

    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &group, &topic, seen.clone(), ConsumerOptions::default()).await;
    warm_up(&broker, &admin, &topic, &seen).await;

    let checks: Checks = Default::default();
    let listener = TxListener { who: "producer", checks: checks.clone(), local: by_key, check: |_| LocalTransactionState::CommitMessage };
    let mut producer = clients.tx_producer(&producer_group, &topic, listener).await;

    let mut sent: BTreeMap<String, TxSent> = BTreeMap::new();
    for i in 0..PER_KIND {
        for kind in ["commit", "rollback", "unknown"] {
            let key = format!("{kind}-{i}");
            let s = send_tx(&broker, &producer, &topic, &key).await;
            assert_eq!(s.state, by_key(&key), "{key}: the local transaction's answer");
            sent.insert(key, s);
        }
    }
    let keys_of = |kind: &str| sent.keys().filter(|k| k.starts_with(kind)).cloned().collect::<Vec<_>>();
    let (commits, rollbacks, unknowns) = (keys_of("commit-"), keys_of("rollback-"), keys_of("unknown-"));
    let expected: BTreeSet<String> = commits.iter().chain(&unknowns).cloned().collect();

    // Commits at once; unknowns after transactionTimeOut plus at most one check interval.
    wait_for(
        &broker,
        Duration::from_secs(20),
        || counts(&seen).keys().cloned().collect::<BTreeSet<_>>().is_superset(&expected),
        || {
            let got = counts(&seen);
            let missing: Vec<&String> = expected.iter().filter(|k| !got.contains_key(*k)).collect();
            format!("missing {missing:?}; delivered {got:?}; checks {:?}", check_summary(&checks))
        },
    )
    .await;
    let all_delivered = Instant::now();
    // Three more check passes: time for a check of a resolved message, a redelivery, a revived
    // rollback to show up.
    tokio::time::sleep(CHECK_INTERVAL * 3 + Duration::from_millis(500)).await;
    let got = counts(&seen);
    let check_report = check_summary(&checks);

    // Rollbacks: never delivered (a check of one would have been answered COMMIT).
    let delivered_rollbacks: Vec<(&String, usize)> = rollbacks.iter().filter_map(|k| got.get(k).map(|n| (k, *n))).collect();
    assert!(
        delivered_rollbacks.is_empty(),
        "rolled-back messages were delivered: {delivered_rollbacks:?}; checks (answered COMMIT): {check_report:?}\nbroker log (tail):\n{}",
        log_tail(&broker)
    );
    // Commits: exactly once, as sent, never checked (END_TRANSACTION resolved them at once).
    for key in &commits {
        let s = &sent[key];
        let ds = deliveries_of(&seen, key);
        assert_eq!(ds.len(), 1, "{key} (committed) must be delivered exactly once; checks of it: {:?}", check_report.get(key));
        check_committed(key, &ds[0], s, &topic);
        assert_eq!(
            Some(ds[0].prepared_transaction_offset),
            s.half_offset(),
            "{key}: PREPARED_TRANSACTION_OFFSET must be the half record's physical offset (the send result's offsetMsgId {:?})",
            s.result.offset_msg_id
        );
        assert!(
            checks_of(&checks, key).is_empty(),
            "{key} was checked back although its END_TRANSACTION (commit) had resolved it: {:?}",
            check_report.get(key)
        );
    }
    for key in &rollbacks {
        assert!(
            checks_of(&checks, key).is_empty(),
            "{key} was checked back although its END_TRANSACTION (rollback) had resolved it: {:?}",
            check_report.get(key)
        );
    }
    // Unknowns: checked no earlier than transactionTimeOut after the send, delivered only after
    // their first check, at most once per COMMIT answer.
    let mut report = Vec::new();
    for key in &unknowns {
        let s = &sent[key];
        let cs = checks_of(&checks, key);
        let ds = deliveries_of(&seen, key);
        assert!(!cs.is_empty(), "{key} (UNKNOWN) was delivered without being checked back: {} deliveries", ds.len());
        check_checks(key, &cs, s, &topic, &producer_group);
        let first_check = cs[0].at.duration_since(s.started);
        assert!(
            first_check + EARLY_TOLERANCE >= TRANSACTION_TIMEOUT,
            "{key}: first checked {first_check:?} after its send, before transactionTimeOut {TRANSACTION_TIMEOUT:?}"
        );
        assert!(first_check < Duration::from_secs(10), "{key}: first checked only {first_check:?} after its send");
        for (k, d) in ds.iter().enumerate() {
            let what = format!("{key} (delivery {k})");
            check_committed(&what, d, s, &topic);
            assert!(d.at >= cs[0].at, "{what}: delivered {:?} before its first check", cs[0].at.duration_since(d.at));
        }
        assert!(
            ds.len() <= cs.len(),
            "{key}: {} deliveries but only {} COMMIT answers (each check's COMMIT commits one copy; more deliveries are unexplained)",
            ds.len(),
            cs.len()
        );
        report.push(format!("{key}: {} check(s), first {first_check:?} after the send, {} deliveries", cs.len(), ds.len()));
    }
    let extra: Vec<String> =
        got.iter().filter(|(k, _)| !sent.contains_key(*k) && k.as_str() != "warmup").map(|(k, n)| format!("{k}×{n}")).collect();
    assert!(extra.is_empty(), "deliveries of messages nobody sent: {extra:?}");
    eprintln!(
        "transactions ok: {PER_KIND} commits delivered once each, {PER_KIND} rollbacks never, unknowns: {}; no new delivery in the {:?} after the last expected one",
        report.join("; "),
        all_delivered.elapsed()
    );

    stop_consumer(&broker, &mut consumer, "consumer").await;
    bounded_shutdown(&broker, "transactional producer", producer.shutdown()).await;
    admin.shutdown().await;
    clients.finish().await;
}

// ---- 2. another producer of the group answers -------------------------------------------------

const ORPHANS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_answers_checks_when_the_first_is_gone() {
    let broker = BrokerProcess::start(&TX_SETTINGS).unwrap();
    let clients = Clients::new(&broker, "tx-takeover");
    let topic = unique("TxTakeoverTopic");
    let consumer_group = unique("tx_takeover_consumer");
    let producer_group = unique("tx_shared_group");
    let mut admin = clients.producer(&unique("tx_admin"), Trace::Off).await;
    create_topic(&broker, &mut admin, &topic, 4).await;
    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &consumer_group, &topic, seen.clone(), ConsumerOptions::default()).await;
    warm_up(&broker, &admin, &topic, &seen).await;

    // B first, with a message of its own: its send opens its connection, on which the client
    // heartbeats, so the broker knows B as a producer of the group.
    let checks: Checks = Default::default();
    let listener_b = TxListener {
        who: "B",
        checks: checks.clone(),
        local: |_| LocalTransactionState::CommitMessage,
        check: |_| LocalTransactionState::CommitMessage,
    };
    let mut b = clients.tx_producer(&producer_group, &topic, listener_b).await;
    send_tx(&broker, &b, &topic, "b-own-commit").await;
    wait_for(
        &broker,
        Duration::from_secs(10),
        || !deliveries_of(&seen, "b-own-commit").is_empty(),
        || format!("B's own commit not delivered; seen {:?}", counts(&seen)),
    )
    .await;

    // A joins the group after B (its heartbeat is the group's latest), sends half messages it
    // cannot decide, and leaves. It answers UNKNOWN should a check reach it before it is gone.
    let listener_a =
        TxListener { who: "A", checks: checks.clone(), local: |_| LocalTransactionState::Unknown, check: |_| LocalTransactionState::Unknown };
    let mut a = clients.tx_producer(&producer_group, &topic, listener_a).await;
    // Past A's first timed heartbeat (1 s after its start).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut sent = Vec::new();
    for i in 0..ORPHANS {
        let s = send_tx(&broker, &a, &topic, &format!("orphan-{i}")).await;
        assert_eq!(s.state, LocalTransactionState::Unknown, "{}: A's local transaction answer", s.key);
        sent.push(s);
    }
    bounded_shutdown(&broker, "producer A", a.shutdown()).await;
    let a_gone = Instant::now();
    eprintln!("producer A sent {ORPHANS} undecided half messages and shut down");

    wait_for(
        &broker,
        Duration::from_secs(20),
        || sent.iter().all(|s| !deliveries_of(&seen, &s.key).is_empty()),
        || format!("{:?} after A left: delivered {:?}; checks {:?}", a_gone.elapsed(), counts(&seen), check_summary(&checks)),
    )
    .await;
    tokio::time::sleep(CHECK_INTERVAL * 2).await;

    let mut report = Vec::new();
    for s in &sent {
        let cs = checks_of(&checks, &s.key);
        let by_b: Vec<Check> = cs.iter().filter(|c| c.who == "B").cloned().collect();
        let ds = deliveries_of(&seen, &s.key);
        assert!(!by_b.is_empty(), "{}: delivered, but B was never asked; checks {:?}", s.key, check_summary(&checks).get(&s.key));
        check_checks(&s.key, &cs, s, &topic, &producer_group);
        for (k, d) in ds.iter().enumerate() {
            let what = format!("{} (delivery {k})", s.key);
            check_committed(&what, d, s, &topic);
            assert!(d.at >= by_b[0].at, "{what}: delivered before B's first COMMIT answer");
        }
        assert!(ds.len() <= by_b.len(), "{}: {} deliveries, {} COMMIT answers from B", s.key, ds.len(), by_b.len());
        report.push(format!("{}: checks {:?}, {} deliveries", s.key, cs.iter().map(|c| c.who).collect::<Vec<_>>(), ds.len()));
    }
    eprintln!("takeover ok: {}", report.join("; "));

    stop_consumer(&broker, &mut consumer, "consumer").await;
    bounded_shutdown(&broker, "producer B", b.shutdown()).await;
    admin.shutdown().await;
    clients.finish().await;
}

// ---- 3. never answered: discarded after transactionCheckMax -----------------------------------

const CHECK_MAX: usize = 2;
const NEVER: usize = 3;
const DISCARD_LINE: &str = "discarded to TRANS_CHECK_MAX_TIME_TOPIC";

/// The broker's log lines that report `msg_id` discarded.
fn discard_lines(broker: &BrokerProcess, msg_id: &str) -> Vec<String> {
    broker.process.log().into_iter().filter(|l| l.contains(DISCARD_LINE) && l.contains(msg_id)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_halves_are_discarded_after_check_max() {
    let check_max = CHECK_MAX.to_string();
    let mut settings = TX_SETTINGS.to_vec();
    settings.push(("transactionCheckMax", check_max.as_str()));
    let broker = BrokerProcess::start(&settings).unwrap();
    let clients = Clients::new(&broker, "tx-discard");
    let topic = unique("TxDiscardTopic");
    let group = unique("tx_discard_consumer");
    let producer_group = unique("tx_undecided");
    let mut admin = clients.producer(&unique("tx_admin"), Trace::Off).await;
    create_topic(&broker, &mut admin, &topic, 2).await;
    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &group, &topic, seen.clone(), ConsumerOptions::default()).await;
    warm_up(&broker, &admin, &topic, &seen).await;

    let checks: Checks = Default::default();
    let listener = TxListener {
        who: "producer",
        checks: checks.clone(),
        local: |_| LocalTransactionState::Unknown,
        check: |_| LocalTransactionState::Unknown,
    };
    let mut producer = clients.tx_producer(&producer_group, &topic, listener).await;
    let mut sent = Vec::new();
    for i in 0..NEVER {
        sent.push(send_tx(&broker, &producer, &topic, &format!("undecided-{i}")).await);
    }
    let uniq = |s: &TxSent| s.result.msg_id.as_ref().map(|id| id.to_string()).unwrap_or_default();

    // Check 1 and 2, then the discard: about transactionTimeOut + 3 check intervals.
    wait_for(
        &broker,
        Duration::from_secs(20),
        || sent.iter().all(|s| !discard_lines(&broker, &uniq(s)).is_empty()),
        || {
            let discarded: Vec<&String> = sent.iter().filter(|s| !discard_lines(&broker, &uniq(s)).is_empty()).map(|s| &s.key).collect();
            format!("no {DISCARD_LINE:?} log line for every message yet; discarded {discarded:?}; checks {:?}", check_summary(&checks))
        },
    )
    .await;
    let discarded_at = Instant::now();
    // Two more passes: no further check, no second discard, no delivery.
    tokio::time::sleep(CHECK_INTERVAL * 2 + Duration::from_millis(500)).await;

    for s in &sent {
        let cs = checks_of(&checks, &s.key);
        assert_eq!(
            cs.len(),
            CHECK_MAX,
            "{}: checked {} times; transactionCheckMax is {CHECK_MAX}: {:?}",
            s.key,
            cs.len(),
            check_summary(&checks).get(&s.key)
        );
        check_checks(&s.key, &cs, s, &topic, &producer_group);
        let lines = discard_lines(&broker, &uniq(s));
        assert_eq!(lines.len(), 1, "{}: discarded once, not {}: {lines:#?}", s.key, lines.len());
        assert!(deliveries_of(&seen, &s.key).is_empty(), "{}: an unresolved, discarded half message was delivered to {topic}", s.key);
    }
    let extra: Vec<String> = counts(&seen).into_iter().filter(|(k, _)| k != "warmup").map(|(k, n)| format!("{k}×{n}")).collect();
    assert!(extra.is_empty(), "deliveries to {topic}: {extra:?}");

    // The discarded copies, from TRANS_CHECK_MAX_TIME_TOPIC (5.x; created on the first discard).
    let dead: Seen = Default::default();
    let mut reader =
        clients.consumer(&broker, &unique("tx_discard_reader"), "TRANS_CHECK_MAX_TIME_TOPIC", dead.clone(), ConsumerOptions::default()).await;
    let note = match try_route_into_consumer(&mut reader, "TRANS_CHECK_MAX_TIME_TOPIC", Duration::from_secs(10)).await {
        Ok(queues) => {
            wait_for(
                &broker,
                Duration::from_secs(15),
                || sent.iter().all(|s| !deliveries_of(&dead, &s.key).is_empty()),
                || format!("TRANS_CHECK_MAX_TIME_TOPIC ({} queue(s)) gave {:?}", queues.len(), counts(&dead)),
            )
            .await;
            for s in &sent {
                let d = &deliveries_of(&dead, &s.key)[0];
                assert!(d.body == s.body, "{} in TRANS_CHECK_MAX_TIME_TOPIC: body differs", s.key);
                assert_eq!(d.prop("UNIQ_KEY"), Some(uniq(s).as_str()), "{} in TRANS_CHECK_MAX_TIME_TOPIC: UNIQ_KEY", s.key);
                assert_eq!(d.prop("REAL_TOPIC"), Some(topic.as_str()), "{} in TRANS_CHECK_MAX_TIME_TOPIC: REAL_TOPIC", s.key);
            }
            format!("each discarded copy read back from TRANS_CHECK_MAX_TIME_TOPIC: {:?}", counts(&dead))
        }
        Err(last) => format!("TRANS_CHECK_MAX_TIME_TOPIC is not routed by the name server (last lookup {last}): copies not read back"),
    };
    eprintln!(
        "discard ok: each of {NEVER} checked {CHECK_MAX} times (TRANSACTION_CHECK_TIMES 1..{CHECK_MAX}), discarded once, never delivered in the {:?} after; {note}",
        discarded_at.elapsed()
    );

    stop_consumer(&broker, &mut reader, "discard reader").await;
    stop_consumer(&broker, &mut consumer, "consumer").await;
    bounded_shutdown(&broker, "transactional producer", producer.shutdown()).await;
    admin.shutdown().await;
    clients.finish().await;
}

// ---- 4. kill -9 -------------------------------------------------------------------------------

const PER_PHASE: usize = 4;

/// Phase A's messages were resolved long before the kill: any check of one is answered COMMIT,
/// so that a broker that forgot a rollback delivers it. Others are answered truthfully.
fn kill_test_check(key: &str) -> LocalTransactionState {
    if key.starts_with("a-") { LocalTransactionState::CommitMessage } else { by_key(key) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_commit_and_revives_no_rollback() {
    let mut broker = BrokerProcess::start(&TX_SETTINGS).unwrap();
    let clients = Clients::new(&broker, "tx-kill");
    let topic = unique("TxKillTopic");
    let producer_group = unique("tx_kill_producer");
    let mut admin = clients.producer(&unique("tx_admin"), Trace::Off).await;
    create_topic(&broker, &mut admin, &topic, 4).await;
    let before: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &unique("tx_kill_before"), &topic, before.clone(), ConsumerOptions::default()).await;
    warm_up(&broker, &admin, &topic, &before).await;

    let checks: Checks = Default::default();
    let listener = TxListener { who: "producer", checks: checks.clone(), local: by_key, check: kill_test_check };
    let mut producer = clients.tx_producer(&producer_group, &topic, listener).await;
    let mut sent: BTreeMap<String, TxSent> = BTreeMap::new();

    // Phase A: resolved, delivered, and the checker's progress flushed before the kill.
    for i in 0..PER_PHASE {
        for kind in ["commit", "rollback"] {
            let key = format!("a-{kind}-{i}");
            let s = send_tx(&broker, &producer, &topic, &key).await;
            assert_eq!(s.state, by_key(&key), "{key}: the local transaction's answer");
            sent.insert(key, s);
        }
    }
    let a_commits: Vec<String> = sent.keys().filter(|k| k.contains("commit")).cloned().collect();
    wait_for(
        &broker,
        Duration::from_secs(10),
        || a_commits.iter().all(|k| !deliveries_of(&before, k).is_empty()),
        || format!("phase A commits not all delivered: {:?}", counts(&before)),
    )
    .await;
    // transactionTimeOut + 2 passes: an unresolved phase A message would have been checked;
    // + a flush of consumerOffset.json (the checker's progress).
    tokio::time::sleep(TRANSACTION_TIMEOUT + CHECK_INTERVAL * 2 + Duration::from_millis(1500)).await;
    let checked_before_kill = check_summary(&checks);
    assert!(
        checked_before_kill.is_empty(),
        "phase A: messages resolved by END_TRANSACTION were checked back: {checked_before_kill:?}\nbroker log (tail):\n{}",
        log_tail(&broker)
    );
    let a_rollbacks_delivered: Vec<String> = counts(&before).into_keys().filter(|k| k.contains("rollback")).collect();
    assert!(a_rollbacks_delivered.is_empty(), "phase A: rolled-back messages delivered before the kill: {a_rollbacks_delivered:?}");
    stop_consumer(&broker, &mut consumer, "consumer before the kill").await;

    // Phase B: sent, and SIGKILL right after the last send (its END_TRANSACTION, one-way, may
    // not have been read yet).
    for i in 0..PER_PHASE {
        for kind in ["commit", "rollback"] {
            let key = format!("b-{kind}-{i}");
            let s = send_tx(&broker, &producer, &topic, &key).await;
            assert_eq!(s.state, by_key(&key), "{key}: the local transaction's answer");
            sent.insert(key, s);
        }
    }
    let restart = kill_9_and_restart(&mut broker);
    let (killed_at, restarted_in) = (restart.killed_at, restart.restarted_in);
    let checks_at_restart = checks.lock().unwrap().len();

    // The producer's next send reconnects it, and the client heartbeats on a new connection:
    // from then on the broker can check back with it. Retried: the restarted broker registers
    // with its name server just after it starts.
    let probe_key = "c-commit-after-restart";
    let deadline = Instant::now() + Duration::from_secs(20);
    let probe = loop {
        let case = format!("case of {probe_key}");
        let body = body_of(probe_key);
        let started = Instant::now();
        match producer.send_message_in_transaction::<(), _>(case_message(&topic, probe_key, &case, &body), None).await {
            Ok(r) => match (r.local_transaction_state, r.send_result) {
                (Some(state), Some(result)) if result.send_status == SendStatus::SendOk => {
                    break TxSent { key: probe_key.to_owned(), case, body, started, state, result };
                }
                other => assert!(Instant::now() < deadline, "send after the restart: {other:?}\nbroker log (tail):\n{}", log_tail(&broker)),
            },
            Err(e) => assert!(Instant::now() < deadline, "send after the restart: {e}\nbroker log (tail):\n{}", log_tail(&broker)),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(probe.state, LocalTransactionState::CommitMessage);
    sent.insert(probe_key.to_owned(), probe);

    // A new group reads the whole topic from its first offset.
    let after: Seen = Default::default();
    let mut reader = clients.consumer(&broker, &unique("tx_kill_after"), &topic, after.clone(), ConsumerOptions::default()).await;
    route_into_consumer(
        &broker,
        &mut reader,
        &topic,
        Duration::from_secs(15),
        "routed before the SIGKILL; the restarted broker registers it again",
    )
    .await;
    let commits: BTreeSet<String> = sent.keys().filter(|k| k.contains("commit")).cloned().collect();
    let rollbacks: BTreeSet<String> = sent.keys().filter(|k| k.contains("rollback")).cloned().collect();
    wait_for(
        &broker,
        Duration::from_secs(25),
        || counts(&after).keys().cloned().collect::<BTreeSet<_>>().is_superset(&commits),
        || {
            let got = counts(&after);
            let missing: Vec<&String> = commits.iter().filter(|k| !got.contains_key(*k)).collect();
            format!(
                "{:?} after the SIGKILL (restart took {restarted_in:?}): committed {missing:?} not delivered; delivered {got:?}; checks {:?}",
                killed_at.elapsed(),
                check_summary(&checks)
            )
        },
    )
    .await;
    // Several check passes after the restart: a revived rollback would be checked and, for
    // phase A, committed by now.
    tokio::time::sleep(TRANSACTION_TIMEOUT + CHECK_INTERVAL * 3).await;

    let got = counts(&after);
    let revived: Vec<(&String, usize)> = rollbacks.iter().filter_map(|k| got.get(k).map(|n| (k, *n))).collect();
    assert!(
        revived.is_empty(),
        "rolled-back messages delivered after the SIGKILL and restart: {revived:?}; checks {:?}\nbroker log (tail):\n{}",
        check_summary(&checks),
        log_tail(&broker)
    );
    for key in &commits {
        let s = &sent[key];
        let ds = deliveries_of(&after, key);
        assert!(!ds.is_empty(), "{key}: committed, never delivered");
        for (k, d) in ds.iter().enumerate() {
            check_committed(&format!("{key} (delivery {k} after the restart)"), d, s, &topic);
        }
    }
    let a_checked: Vec<String> = check_summary(&checks).into_keys().filter(|k| k.starts_with("a-")).collect();
    assert!(
        a_checked.is_empty(),
        "phase A messages, resolved and passed by the checker seconds before the kill, were checked back after the restart: {a_checked:?} \
         (the checker's progress or the op records were lost)\nbroker log (tail):\n{}",
        log_tail(&broker)
    );
    let extra: Vec<String> =
        got.iter().filter(|(k, _)| !sent.contains_key(*k) && k.as_str() != "warmup").map(|(k, n)| format!("{k}×{n}")).collect();
    assert!(extra.is_empty(), "deliveries of messages nobody sent: {extra:?}");
    let after_restart: Vec<String> = checks.lock().unwrap()[checks_at_restart..].iter().map(|c| format!("{} {}", c.key, c.answer)).collect();
    let duplicates: BTreeMap<&String, usize> = got.iter().filter(|(_, n)| **n > 1).map(|(k, n)| (k, *n)).collect();
    eprintln!(
        "kill -9 ok: restart took {restarted_in:?}; {} commits all delivered, {} rollbacks never; checks after the restart \
         (phase B messages whose END_TRANSACTION died with the process): {after_restart:?}; duplicate deliveries {duplicates:?}",
        commits.len(),
        rollbacks.len()
    );

    stop_consumer(&broker, &mut reader, "consumer after the restart").await;
    bounded_shutdown(&broker, "transactional producer", producer.shutdown()).await;
    admin.shutdown().await;
    clients.finish().await;
}
