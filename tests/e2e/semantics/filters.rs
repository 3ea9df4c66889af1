//! SQL92 message selectors (`enablePropertyFilter`) and message trace end to end, through the
//! third-party `rocketmq-client-rust` 1.0.0 against a real `mqbroker` process (embedded name
//! server, loopback only):
//!
//! 1. `sql92_subscription_receives_exactly_the_matching_messages`: a push consumer subscribed
//!    with `a > 5 AND b IN ('x','y')` receives exactly the messages whose properties match by
//!    RocketMQ's rules (numeric reading of string properties, NULL for absent ones), computed
//!    here independently; nothing more arrives afterwards; a TAG group on the same topic gets
//!    everything.
//! 2. `an_invalid_selector_is_refused_at_subscription_time`: with the filter on, a selector that
//!    does not parse fails the consumer's start (the client's CHECK_CLIENT_CONFIG gets 23
//!    SUBSCRIPTION_PARSE_FAILED, asserted again over the raw protocol); with the filter off
//!    (the default), an SQL92 consumer is refused at start (SYSTEM_ERROR), and one that got
//!    past the check (started before its topic existed) never receives a message — its pulls
//!    are answered SYSTEM_ERROR — while a TAG group on the same topic gets them all.
//! 3. `message_trace_records_reach_the_trace_topic`: a producer and a consumer with the client's
//!    message trace on (`ClientConfig::enable_trace`) write Pub, SubBefore and SubAfter records
//!    to RMQ_SYS_TRACE_TOPIC, which the first trace send creates through TBW102; a plain
//!    consumer of the trace topic reads them, and they name the business messages' ids, keys,
//!    topic and stored offsets.
//!
//! Every wait has a deadline; a timeout fails with what was seen and the broker's log.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::BrokerProcess;
use rocketmq_client_rust::{ClientResult, DefaultMQProducer, MessageSelector};

use crate::common::{
    Clients, ConsumerOptions, Seen, Sub, Trace, broker_answer, counts, create_topic, keys_of, log_tail, message, raw_request, route_into_consumer, send,
    stop_consumer, unique, wait_for,
};

/// The selector of tests 1 and 2.
const SELECTOR: &str = "a > 5 AND b IN ('x','y')";

/// Java's default trace topic (`TopicValidator.RMQ_SYS_TRACE_TOPIC`).
const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// How long a raw request (CHECK_CLIENT_CONFIG, PULL_MESSAGE without suspension) may take.
const RAW_TIMEOUT: Duration = Duration::from_secs(5);

/// Asserts that a consumer's start failed with the broker's response code `want` (`want_name`),
/// panicking with `started_although` and the log if it started; returns the error as seen.
fn refused_with(broker: &BrokerProcess, started: &ClientResult<()>, want: i32, want_name: &str, started_although: &str) -> String {
    let Err(e) = started else { panic!("{started_although}\nbroker log (tail):\n{}", log_tail(broker)) };
    let (answer, text) = (broker_answer(e), e.to_string());
    assert_eq!(
        answer.as_ref().map(|a| a.0),
        Some(want),
        "the consumer's start failed, but not with the broker's {want_name}: {text} / {answer:?}"
    );
    format!("{text} / {answer:?}")
}

/// CHECK_CLIENT_CONFIG (46) for an SQL92 subscription, as Java's client sends it; returns the
/// response's (code, remark).
async fn check_client_config(broker: &BrokerProcess, group: &str, topic: &str, selector: &str) -> (i32, String) {
    let body = serde_json::json!({
        "clientId": "127.0.0.1@raw-check",
        "group": group,
        "subscriptionData": {
            "classFilterMode": false,
            "topic": topic,
            "subString": selector,
            "tagsSet": [],
            "codeSet": [],
            "subVersion": 0,
            "expressionType": "SQL92",
        }
    });
    let request = RemotingCommand::request(request_code::CHECK_CLIENT_CONFIG).with_body(serde_json::to_vec(&body).unwrap());
    match raw_request(broker, request, RAW_TIMEOUT).await {
        Ok(response) => (response.code, response.remark.unwrap_or_default()),
        Err(e) => panic!("CHECK_CLIENT_CONFIG {selector:?}: {e}\nbroker log (tail):\n{}", log_tail(broker)),
    }
}

/// PULL_MESSAGE (11) of queue `queue_id` from offset 0, without suspension. With
/// `inline_sql`, the subscription travels in the request (FLAG_SUBSCRIPTION, expressionType
/// SQL92); without, the broker uses the group's subscription from its heartbeat. Returns
/// (code, remark, number of records found).
async fn raw_pull(broker: &BrokerProcess, group: &str, topic: &str, queue_id: i32, inline_sql: Option<&str>) -> (i32, String, usize) {
    let mut request = RemotingCommand::request(request_code::PULL_MESSAGE)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("queueOffset", 0)
        .with_ext("maxMsgNums", 32)
        .with_ext("sysFlag", if inline_sql.is_some() { 4 } else { 0 })
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", 0)
        .with_ext("subVersion", 0);
    request = match inline_sql {
        Some(selector) => request.with_ext("subscription", selector).with_ext("expressionType", "SQL92"),
        None => request.with_ext("subscription", "*"),
    };
    match raw_request(broker, request, RAW_TIMEOUT).await {
        Ok(response) => {
            let records = if response.code == response_code::SUCCESS {
                ferromq_store::record::decode_body_strict(&response.body).map(|r| r.len()).unwrap_or(usize::MAX)
            } else {
                0
            };
            (response.code, response.remark.unwrap_or_default(), records)
        }
        Err(e) => panic!("PULL_MESSAGE {group}/{topic}/{queue_id}: {e}\nbroker log (tail):\n{}", log_tail(broker)),
    }
}

// ---- 1. an SQL92 subscription gets exactly the matching messages ------------------------------

const MIXED: usize = 60;

/// Message `i`'s property `a`: integers either side of 5 (10 and 12 compare as numbers, not as
/// text), a negative one, one that is not an integer, one that is not a number, and absent.
fn a_of(i: usize) -> Option<&'static str> {
    const A: [Option<&str>; 16] = [
        Some("0"),
        Some("1"),
        Some("2"),
        Some("3"),
        Some("4"),
        Some("5"),
        Some("6"),
        Some("7"),
        Some("8"),
        Some("9"),
        Some("10"),
        Some("12"),
        Some("-3"),
        Some("abc"),
        Some("6.5"),
        None,
    ];
    A[i % A.len()]
}

/// Message `i`'s property `b`: x, y, z in turn, absent now and then.
fn b_of(i: usize) -> Option<&'static str> {
    if i % 20 == 19 { None } else { Some(["x", "y", "z"][i % 3]) }
}

fn mixed_key(i: usize) -> String {
    format!("m{i:02}")
}

/// `a > 5 AND b IN ('x','y')` as RocketMQ evaluates it: `a` is compared with the integer 5, so
/// it is read as an integer; absent (NULL) makes the comparison UNKNOWN, and a value that does
/// not read as an integer makes it fail; either way the message does not match. `b IN (...)`
/// compares text; absent is UNKNOWN. Only TRUE matches.
fn selector_matches(a: Option<&str>, b: Option<&str>) -> bool {
    let a_gt_5 = a.and_then(|a| a.parse::<i64>().ok()).is_some_and(|a| a > 5);
    let b_in = b.is_some_and(|b| b == "x" || b == "y");
    a_gt_5 && b_in
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_subscription_receives_exactly_the_matching_messages() {
    let broker = BrokerProcess::start(&[("enablePropertyFilter", "true")]).unwrap();
    let clients = Clients::new(&broker, "sql92");
    let topic = unique("SqlTopic");
    let mut producer = clients.producer(&unique("sql_producer"), Trace::Off).await;
    create_topic(&broker, &mut producer, &topic, 4).await;

    // Both groups run before anything is sent (the topic is routed, so the SQL92 consumer's
    // start includes the client's CHECK_CLIENT_CONFIG, which must pass).
    let sql_seen: Seen = Default::default();
    let tag_seen: Seen = Default::default();
    let mut sql_consumer = clients
        .consumer(&broker, &unique("sql_group"), &topic, sql_seen.clone(), ConsumerOptions { sub: Sub::Sql(SELECTOR), ..Default::default() })
        .await;
    let mut tag_consumer = clients.consumer(&broker, &unique("tag_group"), &topic, tag_seen.clone(), ConsumerOptions::default()).await;

    let mut sent_props = BTreeMap::new();
    for i in 0..MIXED {
        let (key, a, b) = (mixed_key(i), a_of(i), b_of(i));
        let mut props = Vec::new();
        props.extend(a.map(|a| ("a", a)));
        props.extend(b.map(|b| ("b", b)));
        send(&broker, &producer, message(&topic, &key, "T", &props, format!("mixed {i}").as_bytes()), &key).await;
        sent_props.insert(key, (a, b));
    }
    let expected: BTreeSet<String> = sent_props.iter().filter(|(_, (a, b))| selector_matches(*a, *b)).map(|(k, _)| k.clone()).collect();
    let all: BTreeSet<String> = sent_props.keys().cloned().collect();
    // The mix is worth testing only if both sides are well populated.
    assert!(expected.len() >= 8 && expected.len() <= MIXED - 20, "expected set {expected:?}");

    let describe = |seen: &Seen, want: &BTreeSet<String>| {
        let got = keys_of(seen);
        let missing: Vec<&String> = want.difference(&got).collect();
        let extra: Vec<String> = got
            .difference(want)
            .map(|k| format!("{k}(a={:?}, b={:?})", sent_props.get(k).and_then(|p| p.0), sent_props.get(k).and_then(|p| p.1)))
            .collect();
        format!("missing {missing:?}; extra {extra:?}; {} deliveries", seen.lock().unwrap().len())
    };
    wait_for(
        &broker,
        Duration::from_secs(20),
        || keys_of(&sql_seen).is_superset(&expected) && keys_of(&tag_seen).is_superset(&all),
        || format!("SQL92 group: {}; TAG group: {}", describe(&sql_seen, &expected), describe(&tag_seen, &all)),
    )
    .await;
    // Time for anything more (a non-matching message, a duplicate) to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(
        keys_of(&sql_seen),
        expected,
        "the SQL92 group ({SELECTOR}) must get exactly the matching messages: {}",
        describe(&sql_seen, &expected)
    );
    let duplicates: Vec<(String, usize)> = counts(&sql_seen).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(duplicates.is_empty(), "the SQL92 group got messages more than once: {duplicates:?}");
    for got in sql_seen.lock().unwrap().iter() {
        let (a, b) = sent_props[&got.key];
        assert_eq!((got.prop("a"), got.prop("b")), (a, b), "{}: properties as delivered", got.key);
        assert_eq!(got.topic, topic, "{}: topic", got.key);
    }
    assert_eq!(keys_of(&tag_seen), all, "the TAG group (*) must get every message: {}", describe(&tag_seen, &all));
    let tag_duplicates: Vec<(String, usize)> = counts(&tag_seen).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(tag_duplicates.is_empty(), "the TAG group got messages more than once: {tag_duplicates:?}");
    eprintln!("SQL92 group got exactly the {} matching messages of {MIXED}: {expected:?}; TAG group got all {MIXED}", expected.len());

    stop_consumer(&broker, &mut sql_consumer, "SQL92 consumer").await;
    stop_consumer(&broker, &mut tag_consumer, "TAG consumer").await;
    producer.shutdown().await;
    clients.finish().await;
}

// ---- 2. invalid selectors and a broker without the filter ------------------------------------

/// Messages that match [`SELECTOR`]: if a refused SQL92 consumer got anything, it would be these.
const MATCHING: usize = 12;

async fn send_matching(broker: &BrokerProcess, producer: &DefaultMQProducer, topic: &str, prefix: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for i in 0..MATCHING {
        let key = format!("{prefix}{i:02}");
        send(broker, producer, message(topic, &key, "T", &[("a", "9"), ("b", "x")], key.as_bytes()), &key).await;
        keys.insert(key);
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_selector_is_refused_at_subscription_time() {
    // Part A: enablePropertyFilter=true, a selector that does not parse.
    {
        let broker = BrokerProcess::start(&[("enablePropertyFilter", "true")]).unwrap();
        let clients = Clients::new(&broker, "invalid-sql");
        let topic = unique("BadSqlTopic");
        let mut producer = clients.producer(&unique("bad_sql_producer"), Trace::Off).await;
        create_topic(&broker, &mut producer, &topic, 4).await;
        let tag_seen: Seen = Default::default();
        let mut tag_consumer = clients.consumer(&broker, &unique("tag_group"), &topic, tag_seen.clone(), ConsumerOptions::default()).await;

        // The broker's answer, over the raw protocol: 23 for the bad selector, 0 for a good one.
        let bad_group = unique("bad_sql_group");
        let (code, remark) = check_client_config(&broker, &bad_group, &topic, "a >").await;
        assert_eq!(code, response_code::SUBSCRIPTION_PARSE_FAILED, "CHECK_CLIENT_CONFIG of `a >` (remark {remark:?})");
        let (good_code, good_remark) = check_client_config(&broker, &bad_group, &topic, SELECTOR).await;
        assert_eq!(good_code, response_code::SUCCESS, "CHECK_CLIENT_CONFIG of `{SELECTOR}` (remark {good_remark:?})");

        // The client: its start sends CHECK_CLIENT_CONFIG for SQL92 subscriptions of routed
        // topics and fails on an error answer (an MQClientException, as Java's does).
        let bad_clients = Clients::new(&broker, "invalid-sql-consumer");
        let bad_seen: Seen = Default::default();
        let (mut bad_consumer, started) =
            bad_clients.try_consumer(&bad_group, &topic, bad_seen.clone(), ConsumerOptions { sub: Sub::Sql("a >"), ..Default::default() }).await;
        let started_although = format!("a consumer subscribing `a >` started although the broker answers CHECK_CLIENT_CONFIG with {code} ({remark:?})");
        let refused = refused_with(&broker, &started, response_code::SUBSCRIPTION_PARSE_FAILED, "SUBSCRIPTION_PARSE_FAILED", &started_although);
        eprintln!("part A: CHECK_CLIENT_CONFIG `a >` -> {code} {remark:?}; the client's start -> {refused}");

        // Nothing reaches the refused consumer; the TAG group gets everything.
        let keys = send_matching(&broker, &producer, &topic, "bad-").await;
        wait_for(
            &broker,
            Duration::from_secs(20),
            || keys_of(&tag_seen).is_superset(&keys),
            || format!("TAG group got {:?} of {keys:?}", keys_of(&tag_seen)),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(bad_seen.lock().unwrap().is_empty(), "the consumer of `a >` received {:?}", counts(&bad_seen));
        assert_eq!(keys_of(&tag_seen), keys);

        if started.is_ok() {
            stop_consumer(&broker, &mut bad_consumer, "invalid-selector consumer").await;
        }
        bad_clients.finish().await;
        stop_consumer(&broker, &mut tag_consumer, "TAG consumer").await;
        producer.shutdown().await;
        clients.finish().await;
    }

    // Part B: enablePropertyFilter=false (the default), a valid selector.
    let broker = BrokerProcess::start(&[]).unwrap();
    let clients = Clients::new(&broker, "sql-off");
    let topic = unique("SqlOffTopic");
    let mut producer = clients.producer(&unique("sql_off_producer"), Trace::Off).await;

    // An SQL92 consumer started before its topic exists: the client can route nothing, so its
    // start skips CHECK_CLIENT_CONFIG and succeeds; it pulls once the topic is routed to it.
    let early_clients = Clients::new(&broker, "sql-off-early");
    let early_group = unique("sql_off_early");
    let early_seen: Seen = Default::default();
    let mut early_consumer = early_clients
        .consumer(&broker, &early_group, &topic, early_seen.clone(), ConsumerOptions { sub: Sub::Sql(SELECTOR), ..Default::default() })
        .await;
    let tag_group = unique("tag_group");
    let tag_seen: Seen = Default::default();
    let mut tag_consumer = clients.consumer(&broker, &tag_group, &topic, tag_seen.clone(), ConsumerOptions::default()).await;

    create_topic(&broker, &mut producer, &topic, 4).await;
    route_into_consumer(&broker, &mut early_consumer, &topic, Duration::from_secs(15), "created after the consumer started").await;
    route_into_consumer(&broker, &mut tag_consumer, &topic, Duration::from_secs(15), "created after the consumer started").await;
    // Subscribing again sends a heartbeat at once (now that the client knows the broker), so
    // the broker holds the group's SQL92 subscription for the raw pull below.
    early_consumer.subscribe_with_selector(&topic, Some(MessageSelector::by_sql(SELECTOR))).await.expect("subscribe again");

    // The broker: CHECK_CLIENT_CONFIG answers SYSTEM_ERROR.
    let (code, remark) = check_client_config(&broker, &early_group, &topic, SELECTOR).await;
    assert_eq!(code, response_code::SYSTEM_ERROR, "CHECK_CLIENT_CONFIG of an SQL92 selector without enablePropertyFilter (remark {remark:?})");

    // The client: an SQL92 consumer started once the topic is routed fails its start.
    let late_clients = Clients::new(&broker, "sql-off-late");
    let late_seen: Seen = Default::default();
    let (mut late_consumer, late_started) = late_clients
        .try_consumer(&unique("sql_off_late"), &topic, late_seen.clone(), ConsumerOptions { sub: Sub::Sql(SELECTOR), ..Default::default() })
        .await;
    let started_although =
        format!("an SQL92 consumer started on a broker without enablePropertyFilter (CHECK_CLIENT_CONFIG answers {code}, {remark:?})");
    let refused = refused_with(&broker, &late_started, response_code::SYSTEM_ERROR, "SYSTEM_ERROR", &started_although);
    eprintln!("part B: CHECK_CLIENT_CONFIG -> {code} {remark:?}; an SQL92 consumer's start -> {refused}");

    let keys = send_matching(&broker, &producer, &topic, "off-").await;
    wait_for(
        &broker,
        Duration::from_secs(20),
        || keys_of(&tag_seen).is_superset(&keys),
        || format!("TAG group got {:?} of {keys:?}; the SQL92 group got {:?}", keys_of(&tag_seen), keys_of(&early_seen)),
    )
    .await;

    // The broker refuses the SQL92 group's pulls (its heartbeat subscription, and the same
    // selector inline) with SYSTEM_ERROR, never serving them unfiltered; the TAG group's pull
    // of the same queue finds messages.
    let mut refused = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    for queue_id in 0..4 {
        let tag = raw_pull(&broker, &tag_group, &topic, queue_id, None).await;
        let inline = raw_pull(&broker, &early_group, &topic, queue_id, Some(SELECTOR)).await;
        let by_heartbeat = loop {
            let result = raw_pull(&broker, &early_group, &topic, queue_id, None).await;
            // Until the heartbeat is processed the broker knows no subscription for the group.
            if result.0 != response_code::SUBSCRIPTION_NOT_EXIST || Instant::now() > deadline {
                break result;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(inline.0, response_code::SYSTEM_ERROR, "q{queue_id}: pull with inline SQL92 subscription: {inline:?}");
        assert_eq!(
            by_heartbeat.0,
            response_code::SYSTEM_ERROR,
            "q{queue_id}: pull by the SQL92 group (heartbeat subscription): {by_heartbeat:?}"
        );
        assert!(tag.0 == response_code::SUCCESS || tag.0 == response_code::PULL_NOT_FOUND, "q{queue_id}: pull by the TAG group: {tag:?}");
        refused.push((queue_id, tag.2, by_heartbeat.1));
    }
    let tag_found: usize = refused.iter().map(|r| r.1).sum();
    assert_eq!(tag_found, MATCHING, "the TAG group's raw pulls of the 4 queues: {refused:?}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        early_seen.lock().unwrap().is_empty(),
        "the SQL92 consumer received messages from a broker without enablePropertyFilter: {:?}",
        counts(&early_seen)
    );
    assert!(late_seen.lock().unwrap().is_empty(), "the refused SQL92 consumer received {:?}", counts(&late_seen));
    assert_eq!(keys_of(&tag_seen), keys);
    eprintln!("part B: SQL92 pulls refused: {:?}; the TAG group got all {MATCHING}", refused.first().map(|r| &r.2));

    if late_started.is_ok() {
        stop_consumer(&broker, &mut late_consumer, "late SQL92 consumer").await;
    }
    late_clients.finish().await;
    stop_consumer(&broker, &mut early_consumer, "early SQL92 consumer").await;
    early_clients.finish().await;
    stop_consumer(&broker, &mut tag_consumer, "TAG consumer").await;
    producer.shutdown().await;
    clients.finish().await;
}

// ---- 3. message trace ----------------------------------------------------------------------

const TRACED: usize = 5;

/// One record of a trace message body: type and fields (`\u{1}` between fields, `\u{2}` after
/// each record, as Java's `TraceDataEncoder` writes them).
fn trace_records(body: &[u8]) -> Vec<Vec<String>> {
    String::from_utf8_lossy(body)
        .split('\u{2}')
        .filter(|r| !r.trim().is_empty())
        .map(|r| r.split('\u{1}').map(str::to_owned).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_trace_records_reach_the_trace_topic() {
    let broker = BrokerProcess::start(&[]).unwrap();
    let clients = Clients::new(&broker, "trace");
    let topic = unique("TracedTopic");
    let producer_group = unique("traced_producer");
    let consumer_group = unique("traced_group");
    let mut producer = clients.producer(&producer_group, Trace::On).await;
    create_topic(&broker, &mut producer, &topic, 4).await;

    let seen: Seen = Default::default();
    let mut consumer =
        clients.consumer(&broker, &consumer_group, &topic, seen.clone(), ConsumerOptions { trace: Trace::On, ..Default::default() }).await;
    // A plain group reading the trace topic, which does not exist yet.
    let trace_seen: Seen = Default::default();
    let mut trace_reader = clients.consumer(&broker, &unique("trace_reader"), TRACE_TOPIC, trace_seen.clone(), ConsumerOptions::default()).await;

    let mut sent = BTreeMap::new();
    for i in 0..TRACED {
        let key = format!("traced-{i}");
        let result = send(&broker, &producer, message(&topic, &key, "T", &[], format!("traced body {i}").as_bytes()), &key).await;
        let msg_id = result.msg_id.as_ref().map(|id| id.to_string()).expect("UNIQ_KEY msgId");
        let offset_msg_id = result.offset_msg_id.clone().expect("offsetMsgId");
        sent.insert(key, (msg_id, offset_msg_id));
    }
    let keys: BTreeSet<String> = sent.keys().cloned().collect();
    wait_for(&broker, Duration::from_secs(20), || keys_of(&seen).is_superset(&keys), || format!("consumed {:?} of {keys:?}", keys_of(&seen)))
        .await;
    // The ids the trace records are keyed by: the client's UNIQ_KEY, the send result's msgId.
    for got in seen.lock().unwrap().iter() {
        assert_eq!(got.prop("UNIQ_KEY"), sent.get(&got.key).map(|s| s.0.as_str()), "{}: UNIQ_KEY as delivered", got.key);
    }

    // The client flushes trace data every 5 s (or per 10 records); the first trace send creates
    // the trace topic through TBW102.
    let queues =
        route_into_consumer(&broker, &mut trace_reader, TRACE_TOPIC, Duration::from_secs(20), "created by the clients' first trace send").await;
    let ids: BTreeSet<String> = sent.values().map(|(id, _)| id.clone()).collect();
    let records_of = |kind: &str| -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for got in trace_seen.lock().unwrap().iter() {
            for record in trace_records(&got.body) {
                let id_field = match record[0].as_str() {
                    "Pub" | "SubBefore" => 5,
                    "SubAfter" => 2,
                    _ => continue,
                };
                if record[0] == kind
                    && let Some(id) = record.get(id_field)
                {
                    out.insert(id.clone(), record.clone());
                }
            }
        }
        out
    };
    let complete = |kind: &str| records_of(kind).keys().cloned().collect::<BTreeSet<_>>().is_superset(&ids);
    wait_for(
        &broker,
        Duration::from_secs(25),
        || complete("Pub") && complete("SubBefore") && complete("SubAfter"),
        || {
            let have = |kind: &str| records_of(kind).keys().filter(|id| ids.contains(*id)).count();
            format!(
                "trace records for the {TRACED} messages {ids:?}: Pub {}, SubBefore {}, SubAfter {}; {} trace messages read: {:?}",
                have("Pub"),
                have("SubBefore"),
                have("SubAfter"),
                trace_seen.lock().unwrap().len(),
                trace_seen.lock().unwrap().iter().map(|g| String::from_utf8_lossy(&g.body).replace(['\u{1}', '\u{2}'], "|")).collect::<Vec<_>>()
            )
        },
    )
    .await;

    // Pub: [Pub, timestamp, region, group, topic, msgId, tags, keys, storeHost, bodyLength,
    // costTime, msgType, offsetMsgId, success, clientHost].
    let pubs = records_of("Pub");
    let before = records_of("SubBefore");
    let after = records_of("SubAfter");
    for (key, (msg_id, offset_msg_id)) in &sent {
        let record = &pubs[msg_id];
        let what = format!("Pub record of {key}: {record:?}");
        assert!(record.len() >= 14, "{what}");
        assert_eq!(record[2], "DefaultRegion", "{what}: region (the broker's MSG_REGION)");
        assert_eq!(record[3], producer_group, "{what}: group");
        assert_eq!(record[4], topic, "{what}: topic");
        assert_eq!(record[6], "T", "{what}: tags");
        assert_eq!(&record[7], key, "{what}: keys");
        assert_eq!(record[12].to_ascii_uppercase(), offset_msg_id.to_ascii_uppercase(), "{what}: offsetMsgId");
        assert_eq!(record[13], "true", "{what}: success");
        // SubBefore: [SubBefore, timestamp, region, group, requestId, msgId, retryTimes, keys].
        let record = &before[msg_id];
        let what = format!("SubBefore record of {key}: {record:?}");
        assert!(record.len() >= 8, "{what}");
        assert_eq!(record[2], "DefaultRegion", "{what}: region (the stored message's MSG_REGION)");
        assert_eq!(record[3], consumer_group, "{what}: group");
        assert_eq!(record[6], "0", "{what}: retry times");
        assert_eq!(&record[7], key, "{what}: keys");
        // SubAfter: [SubAfter, requestId, msgId, costTime, success, keys, contextCode, ...].
        let record = &after[msg_id];
        let what = format!("SubAfter record of {key}: {record:?}");
        assert!(record.len() >= 7, "{what}");
        assert_eq!(record[4], "true", "{what}: success");
        assert_eq!(&record[5], key, "{what}: keys");
    }
    // The trace messages' keys name the traced messages (msgId and keys), for queries by key.
    let trace_keys: BTreeSet<String> = trace_seen.lock().unwrap().iter().flat_map(|g| g.keys.clone()).collect();
    for (key, (msg_id, _)) in &sent {
        assert!(trace_keys.contains(msg_id) && trace_keys.contains(key), "trace message keys {trace_keys:?} lack {key} / {msg_id}");
    }
    let topics: BTreeSet<String> = trace_seen.lock().unwrap().iter().map(|g| g.topic.clone()).collect();
    assert_eq!(topics, BTreeSet::from([TRACE_TOPIC.to_owned()]));
    eprintln!(
        "trace: {} trace messages on {} queues of {TRACE_TOPIC} with Pub, SubBefore and SubAfter records for all {TRACED} messages",
        trace_seen.lock().unwrap().len(),
        queues.len()
    );

    stop_consumer(&broker, &mut trace_reader, "trace reader").await;
    stop_consumer(&broker, &mut consumer, "traced consumer").await;
    producer.shutdown().await;
    clients.finish().await;
}
