//! Consumers, producers, messages and offsets, each test over one live broker (embedded name
//! server), each subcommand checked by the values it prints:
//!
//! 1. `messages_are_sent_found_and_printed`: sendMessage, then queryMsgByKey,
//!    queryMsgByUniqueKey, queryMsgByOffset, queryMsgById (by offset id and by unique key),
//!    printMsg and consumeMessage find and print what was sent (body, keys, tags, queue);
//!    queryMsgById -s sends a message again; a key nobody sent and bad flags are one-line errors
//!    with exit status 1.
//! 2. `progress_clone_and_reset_of_an_offline_group`: offsets committed over the wire — 10
//!    messages, 4 committed — show as a lag of 6 in consumerProgress; cloneGroupOffset copies
//!    them; resetOffsetByTime to a time between two batches moves the offsets back to the second
//!    batch, which a consumer resuming from the committed offsets reads again; `-b -q -o` moves
//!    one queue.
//! 3. `live_clients_are_listed_and_a_reset_group_reconsumes`: with a third-party producer and
//!    push consumer (rocketmq-client-rust), producerConnection, consumerConnection and
//!    consumerStatus show them, consumerProgress shows the group's queues (with `-s true`, the
//!    client's IP) and, once it stops, that it caught up; after resetOffsetByTime the group's
//!    next consumer receives exactly the messages stored since.

#[allow(dead_code)]
#[path = "../semantics/common.rs"]
mod clients;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::{AdminOutput, BrokerProcess, TempDir, create_topic_request, mqadmin, mqadmin_in, pull_request, send_v2_request};

use clients::{Clients, ConsumerOptions, Seen, Trace, counts, create_topic, log_tail, message, stop_consumer, unique, wait_for};

/// How long a raw request may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One request to `addr` over a fresh connection.
fn call(addr: SocketAddr, request: impl FnOnce() -> RemotingCommand + Send + 'static) -> RemotingCommand {
    ferromq_tests::on_compio(move || async move {
        let client = Client::connect(addr, CALL_TIMEOUT).await.expect("connect");
        client.invoke(request(), CALL_TIMEOUT).await.expect("invoke")
    })
}

/// Waits until the name server routes `topic` (a created topic is registered within a moment).
fn wait_routed(broker: &BrokerProcess, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = topic.to_owned();
        let route = call(broker.namesrv, move || RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", t));
        if route.code == response_code::SUCCESS {
            return;
        }
        assert!(Instant::now() < deadline, "{topic} never routed\nbroker log (tail):\n{}", log_tail(broker));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates `topic` with `queues` queues on the broker and waits until it is routed.
fn create_routed_topic(broker: &BrokerProcess, topic: &str, queues: u32) {
    let t = topic.to_owned();
    let created = call(broker.process.addr, move || create_topic_request(&t, queues));
    assert_eq!(created.code, response_code::SUCCESS, "create {topic}: {:?}", created.remark);
    wait_routed(broker, topic);
}

/// The value printed after `label` on its line of a detail listing (`Label:   value`).
fn detail<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{out}"))
}

/// A failed run: exit status 1 and one line on stderr, starting `mqadmin: <subcommand>: `.
fn assert_one_line_error(out: &AdminOutput, subcommand: &str, says: &str) {
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let prefix = format!("mqadmin: {subcommand}: ");
    assert!(out.stderr.starts_with(&prefix) && out.stderr.contains(says), "expected {prefix}…{says}…: {out:?}");
}

/// The queue rows of `consumerProgress -g`: (topic, queue id) → (broker offset, consumer offset,
/// diff).
fn progress_rows(out: &str, topic: &str) -> Vec<(i32, i64, i64, i64)> {
    let mut rows: Vec<(i32, i64, i64, i64)> = out
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(topic))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<i64>().unwrap_or_else(|_| panic!("column {i} of {l:?}"));
            (n(2) as i32, n(3), n(4), n(5))
        })
        .collect();
    rows.sort();
    rows
}

/// `Consume Diff Total: N` of a `consumerProgress -g` output.
fn diff_total(out: &str) -> i64 {
    detail(out, "Consume Diff Total:").parse().expect("a number")
}

/// The committed offset of (group, topic, queue) as a consumer that starts asks for it.
fn committed(broker: &BrokerProcess, group: &str, topic: &str, queue_id: u32) -> Option<i64> {
    let (g, t) = (group.to_owned(), topic.to_owned());
    let answer = call(broker.process.addr, move || {
        RemotingCommand::request(request_code::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", g)
            .with_ext("topic", t)
            .with_ext("queueId", queue_id)
            .with_ext("setZeroIfNotFound", false)
    });
    (answer.code == response_code::SUCCESS).then(|| answer.ext("offset").and_then(|o| o.parse().ok()).expect("offset"))
}

#[test]
fn messages_are_sent_found_and_printed() {
    let broker = BrokerProcess::start(&[]).expect("broker");
    let ns = Some(broker.namesrv);
    let topic = "AdminMessages";
    create_routed_topic(&broker, topic, 4);

    // sendMessage: the header, then broker name, queue, SEND_OK and the message's unique id.
    let sent = mqadmin(ns, &["sendMessage", "-t", topic, "-p", "hello admin", "-k", "order-17", "-c", "TagA"]).ok();
    let lines: Vec<&str> = sent.lines().collect();
    assert_eq!(lines.len(), 2, "{sent}");
    assert!(lines[0].starts_with("#Broker Name") && lines[0].contains("#Send Result"), "{sent}");
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    let (broker_name, first_queue, first_id) = (first[0], first[1], first[3]);
    assert_eq!(first[2], "SEND_OK", "{sent}");
    assert!(first_id.len() == 32 && first_id.chars().all(|c| c.is_ascii_hexdigit()), "{sent}");
    // The second to the next queue, by -b and -i.
    let next_queue = ((first_queue.parse::<u32>().expect("a queue id") + 1) % 4).to_string();
    let next_queue = next_queue.as_str();
    let to_next = mqadmin(ns, &["sendMessage", "-t", topic, "-p", "second body", "-k", "order-18", "-b", broker_name, "-i", next_queue]).ok();
    let second: Vec<&str> = to_next.lines().nth(1).expect("a result line").split_whitespace().collect();
    assert_eq!((second[0], second[1], second[2]), (broker_name, next_queue, "SEND_OK"), "{to_next}");
    let second_id = second[3];

    // A topic nobody created goes by TBW102's route, on the queues the broker creates it with
    // (4 of TBW102's 8: a send to queue 4–7 would be refused; four sends would likely meet one).
    for i in 0..4 {
        let auto = mqadmin(ns, &["sendMessage", "-t", "AdminAutoCreated", "-p", &format!("auto {i}")]).ok();
        let fields: Vec<&str> = auto.lines().nth(1).unwrap_or_default().split_whitespace().collect();
        assert_eq!(fields.get(2), Some(&"SEND_OK"), "{auto}");
        assert!(fields[1].parse::<u32>().is_ok_and(|q| q < 4), "{auto}");
    }

    // queryMsgByKey: the message with that key, by id, queue and offset.
    let by_key = mqadmin(ns, &["queryMsgByKey", "-t", topic, "-k", "order-17"]).ok();
    let rows: Vec<Vec<&str>> = by_key.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, vec![vec![first_id, first_queue, "0"]], "{by_key}");
    assert!(by_key.starts_with("#Message ID"), "{by_key}");

    // queryMsgByUniqueKey: the detail, with the body written where the Java tool writes it.
    let by_unique = mqadmin(ns, &["queryMsgByUniqueKey", "-t", topic, "-i", first_id]).ok();
    assert_eq!(detail(&by_unique, "Topic:"), topic);
    assert_eq!(detail(&by_unique, "Tags:"), "[TagA]");
    assert_eq!(detail(&by_unique, "Keys:"), "[order-17]");
    assert_eq!(detail(&by_unique, "Queue ID:"), first_queue);
    assert_eq!(detail(&by_unique, "Queue Offset:"), "0");
    assert!(detail(&by_unique, "Properties:").contains(&format!("UNIQ_KEY={first_id}")), "{by_unique}");
    let body_path = detail(&by_unique, "Message Body Path:");
    assert_eq!(body_path, format!("/tmp/rocketmq/msgbodys/{first_id}"));
    assert_eq!(std::fs::read(body_path).expect("the body file"), b"hello admin");

    // queryMsgByOffset: offset 0 of the next queue is the second message; its offset id leads
    // back to it.
    let by_offset = mqadmin(ns, &["queryMsgByOffset", "-t", topic, "-b", broker_name, "-i", next_queue, "-o", "0", "-f", "UTF-8"]).ok();
    assert_eq!(detail(&by_offset, "Message Body:"), "second body");
    assert_eq!(detail(&by_offset, "Keys:"), "[order-18]");
    let offset_id = detail(&by_offset, "OffsetID:").to_owned();
    assert_eq!(offset_id.len(), 32, "{by_offset}");
    assert_ne!(offset_id, second_id, "the offset id is the store host and log offset, not the unique key");
    let by_id = mqadmin(ns, &["queryMsgById", "-t", topic, "-i", &offset_id, "-f", "UTF-8"]).ok();
    assert_eq!(detail(&by_id, "OffsetID:"), offset_id);
    assert_eq!(detail(&by_id, "Message Body:"), "second body");
    assert_eq!(detail(&by_id, "Queue ID:"), next_queue);
    assert_eq!(detail(&by_id, "CommitLog Offset:"), detail(&by_offset, "CommitLog Offset:"));
    // An id that is not an offset id is looked up as a unique key, as Java's tool does.
    let by_unique_id = mqadmin(ns, &["queryMsgById", "-t", topic, "-i", first_id, "-f", "UTF-8"]).ok();
    assert_eq!(detail(&by_unique_id, "Message Body:"), "hello admin");

    // printMsg: every message of every queue, each with its id and body.
    let printed = mqadmin(ns, &["printMsg", "-t", topic]).ok();
    let msgs: Vec<&str> = printed.lines().filter(|l| l.starts_with("MSGID: ")).collect();
    assert_eq!(msgs.len(), 2, "{printed}");
    assert!(msgs.iter().any(|l| l.starts_with(&format!("MSGID: {first_id} MessageExt [brokerName={broker_name}")) && l.ends_with("BODY: hello admin")), "{printed}");
    assert!(msgs.iter().any(|l| l.starts_with(&format!("MSGID: {second_id} ")) && l.ends_with("BODY: second body")), "{printed}");
    assert!(printed.contains(&format!("minOffset=0, maxOffset=1, MessageQueue [topic={topic}, brokerName={broker_name}, queueId={next_queue}]")), "{printed}");
    assert_eq!(printed.lines().filter(|l| l.starts_with("-----")).count(), 4, "one block per queue: {printed}");

    // consumeMessage: one queue, then every queue; what sendMessage sent comes back.
    let one_queue = mqadmin(ns, &["consumeMessage", "-t", topic, "-b", broker_name, "-i", next_queue]).ok();
    assert!(one_queue.contains("Consume ok"), "{one_queue}");
    let bodies: Vec<&str> = one_queue.lines().filter_map(|l| l.strip_prefix("MSGID: ")).filter_map(|l| l.rsplit_once(" BODY: ")).map(|(_, b)| b).collect();
    assert_eq!(bodies, vec!["second body"], "{one_queue}");
    assert!(one_queue.contains("print msg finished. status=NO_NEW_MSG, offset=1"), "{one_queue}");
    let all = mqadmin(ns, &["consumeMessage", "-t", topic, "-c", "10"]).ok();
    let mut bodies: Vec<&str> = all.lines().filter_map(|l| l.rsplit_once(" BODY: ")).map(|(_, b)| b).collect();
    bodies.sort();
    assert_eq!(bodies, vec!["hello admin", "second body"], "{all}");

    // queryMsgById -s true: sent again, with the same unique key; the key now finds both.
    let resent = mqadmin(ns, &["queryMsgById", "-t", topic, "-i", &offset_id, "-s", "true"]).ok();
    let expected = format!("prepare resend msg. originalMsgId={offset_id}SendResult [sendStatus=SEND_OK, msgId={second_id}, offsetMsgId=");
    assert!(resent.starts_with(&expected), "{resent}");
    let both = mqadmin(ns, &["queryMsgByKey", "-t", topic, "-k", "order-18"]).ok();
    let ids: Vec<&str> = both.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(ids, [second_id, second_id], "{both}");

    // Errors: one line, exit status 1.
    assert_one_line_error(&mqadmin(ns, &["queryMsgByKey", "-t", topic, "-k", "nobody-sent-this"]), "queryMsgByKey", "but no message");
    assert_one_line_error(&mqadmin(ns, &["sendMessage", "-t", topic, "-p", "x", "-i", "1"]), "sendMessage", "Broker name must be set");
    assert_one_line_error(&mqadmin(ns, &["consumeMessage", "-t", topic, "-c", "0"]), "consumeMessage", "positive");
    assert_one_line_error(&mqadmin(ns, &["printMsg", "-t", topic, "-b", "yesterday"]), "printMsg", "yesterday");
    assert_one_line_error(&mqadmin(ns, &["queryMsgByOffset", "-t", topic, "-b", "no-such-broker", "-i", "0", "-o", "0"]), "queryMsgByOffset", "no-such-broker");
}

#[test]
fn progress_clone_and_reset_of_an_offline_group() {
    let broker = BrokerProcess::start(&[]).expect("broker");
    let ns = Some(broker.namesrv);
    let addr = broker.process.addr;
    let (topic, group, copy) = ("AdminProgress", "progress_group", "progress_copy");
    create_routed_topic(&broker, topic, 2);

    // 10 messages over 2 queues: batch A (4), then, a moment later, batch B (6).
    let send_one = |i: u32| {
        let reply = call(addr, move || send_v2_request("pg", "AdminProgress", 2, i % 2, &format!("KEYS\u{1}k{i}\u{2}"), format!("m{i}").into_bytes()));
        assert_eq!(reply.code, response_code::SUCCESS, "send m{i}: {:?}", reply.remark);
    };
    (0..4).for_each(send_one);
    std::thread::sleep(Duration::from_millis(50));
    // The broker runs on this host: its store clock is this clock.
    let between_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    std::thread::sleep(Duration::from_millis(50));
    (4..10).for_each(send_one);

    // 4 consumed (2 per queue), committed over the wire: a lag of 3 per queue, 6 in all.
    let commit = |queue: u32, offset: i64| {
        let reply = call(addr, move || {
            RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET)
                .with_ext("consumerGroup", "progress_group")
                .with_ext("topic", "AdminProgress")
                .with_ext("queueId", queue)
                .with_ext("commitOffset", offset)
        });
        assert_eq!(reply.code, response_code::SUCCESS);
    };
    commit(0, 2);
    commit(1, 2);
    let progress = |g: &str| mqadmin(ns, &["consumerProgress", "-g", g, "-t", topic]).ok();
    // Commits reach the offset table a moment after they are answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = progress(group);
        if progress_rows(&out, topic) == vec![(0, 5, 2, 3), (1, 5, 2, 3)] || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(progress_rows(&out, topic), vec![(0, 5, 2, 3), (1, 5, 2, 3)], "(queue, broker offset, consumer offset, diff):\n{out}");
    assert_eq!(diff_total(&out), 6, "{out}");
    assert!(out.starts_with("#Topic"), "{out}");
    assert!(!out.lines().filter(|l| l.starts_with(topic)).any(|l| l.ends_with("N/A")), "the last consumed message's time is known: {out}");

    // cloneGroupOffset: the copy has the same offsets, so the same lag.
    let cloned = mqadmin(ns, &["cloneGroupOffset", "-s", group, "-d", copy, "-t", topic]).ok();
    assert_eq!(cloned, format!("clone group offset success. srcGroup[{group}], destGroup=[{copy}], topic[{topic}]"));
    let out = progress(copy);
    assert_eq!(progress_rows(&out, topic), vec![(0, 5, 2, 3), (1, 5, 2, 3)], "{out}");

    // Everything consumed, then reset to the time between the batches: batch B is due again.
    commit(0, 5);
    commit(1, 5);
    let deadline = Instant::now() + Duration::from_secs(10);
    while diff_total(&progress(group)) != 0 {
        assert!(Instant::now() < deadline, "the commits to the end never showed: {}", progress(group));
        std::thread::sleep(Duration::from_millis(100));
    }
    let reset = mqadmin(ns, &["resetOffsetByTime", "-g", group, "-t", topic, "-s", &between_ms.to_string()]).ok();
    assert!(reset.starts_with(&format!("start reset consumer offset by specified, group[{group}], topic[{topic}], force[true], timestamp(string)[{between_ms}]")), "{reset}");
    let table: Vec<Vec<&str>> = reset.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    let broker_name = table.first().map(|r| r[0]).unwrap_or_else(|| panic!("no rows: {reset}"));
    assert_eq!(table, vec![vec![broker_name, "0", "2"], vec![broker_name, "1", "2"]], "batch B starts at offset 2 of each queue: {reset}");
    let out = progress(group);
    assert_eq!(progress_rows(&out, topic), vec![(0, 5, 2, 3), (1, 5, 2, 3)], "{out}");
    assert_eq!(diff_total(&out), 6, "{out}");
    // A consumer of the group resumes from the committed offsets and reads batch B again.
    let mut reread = Vec::new();
    for queue in 0..2u32 {
        let from = committed(&broker, group, topic, queue).expect("a committed offset");
        let pulled = call(addr, move || pull_request("progress_group", "AdminProgress", queue, from as u64));
        assert_eq!(pulled.code, response_code::SUCCESS, "pull queue {queue} from {from}");
        let records = ferromq_store::record::decode_body(&pulled.body).0;
        reread.extend(records.iter().map(|r| String::from_utf8_lossy(r.body).into_owned()));
    }
    reread.sort();
    assert_eq!(reread, ["m4", "m5", "m6", "m7", "m8", "m9"], "batch B, read again");
    // Pulled up to the end, committed at 2: 3 in flight on each queue.
    let out = progress(group);
    assert_eq!(detail(&out, "Consume Inflight Total:"), "6", "{out}");

    // -b -q -o: one queue to an explicit offset; the other stays.
    let one = mqadmin(ns, &["resetOffsetByTime", "-g", group, "-t", topic, "-s", "now", "-b", &addr.to_string(), "-q", "1", "-o", "4"]).ok();
    assert!(one.lines().any(|l| l == "reset consumer offset to 4"), "{one}");
    assert_eq!((committed(&broker, group, topic, 0), committed(&broker, group, topic, 1)), (Some(2), Some(4)));

    // Errors: one line, exit status 1.
    // A group nobody runs has no retry topic to find its brokers by (with -t, Java's tool lists
    // the topic's queues at offset 0, as here).
    assert_one_line_error(&mqadmin(ns, &["consumerProgress", "-g", "nobody_group"]), "consumerProgress", "TOPIC_NOT_EXIST");
    assert_one_line_error(&mqadmin(ns, &["resetOffsetByTime", "-g", group, "-t", topic, "-s", "yesterday"]), "resetOffsetByTime", "yesterday");
    assert_one_line_error(&mqadmin(ns, &["cloneGroupOffset", "-s", group, "-d", copy, "-t", "NoSuchTopic"]), "cloneGroupOffset", "TOPIC_NOT_EXIST");
}

/// `mqadmin` off the async test's threads (it blocks until the process exits).
async fn admin(ns: SocketAddr, args: &[&str]) -> AdminOutput {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || mqadmin(Some(ns), &args.iter().map(String::as_str).collect::<Vec<_>>())).await.expect("mqadmin thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_clients_are_listed_and_a_reset_group_reconsumes() {
    let broker = BrokerProcess::start(&[]).expect("broker");
    let ns = broker.namesrv;
    let clients = Clients::new(&broker, "mqadmin-live");
    let (topic, group, producer_group) = (unique("AdminLive"), unique("live_group"), unique("live_producer"));
    let mut producer = clients.producer(&producer_group, Trace::Off).await;
    let mqs = create_topic(&broker, &mut producer, &topic, 2).await;
    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &group, &topic, seen.clone(), ConsumerOptions::default()).await;
    let send_batch = |prefix: &'static str| {
        let (broker, producer, mqs, topic) = (&broker, &producer, &mqs, &topic);
        async move {
            let mut keys = Vec::new();
            for i in 0..4 {
                let key = format!("{prefix}-{i}");
                let mq = mqs[i % mqs.len()].clone();
                let m = message(topic, &key, "T", &[], key.as_bytes());
                let result = producer.send_to_queue_with_timeout(m, mq, clients::SEND_TIMEOUT_MS).await;
                assert!(matches!(result, Ok(Some(_))), "send {key}: {result:?}\nbroker log (tail):\n{}", log_tail(broker));
                keys.push(key);
            }
            keys
        }
    };
    let batch_a = send_batch("a").await;
    wait_for(&broker, Duration::from_secs(30), || batch_a.iter().all(|k| counts(&seen).contains_key(k)), || format!("batch A: {:?}", counts(&seen))).await;

    // producerConnection: the producer, numbered from 0001.
    let out = admin(ns, &["producerConnection", "-g", &producer_group, "-t", &topic]).await.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one producer: {out}");
    assert!(lines[0].starts_with("0001  ") && lines[0].contains('@'), "{out}");

    // consumerConnection: the consumer, its subscription and how it consumes.
    let out = admin(ns, &["consumerConnection", "-g", &group]).await.ok();
    assert!(out.starts_with("#ClientId"), "{out}");
    let client_id = out.lines().nth(1).and_then(|l| l.split_whitespace().next()).expect("a client line").to_owned();
    assert!(client_id.contains('@'), "{out}");
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [topic.as_str(), "*"]), "the subscription: {out}");
    assert!(out.contains("ConsumeType: CONSUME_PASSIVELY\nMessageModel: CLUSTERING\nConsumeFromWhere: CONSUME_FROM_FIRST_OFFSET"), "{out}");

    // consumerStatus -i: what the consumer says of itself; without -i: a file per client.
    let out = admin(ns, &["consumerStatus", "-g", &group, "-i", &client_id]).await.ok();
    assert!(out.starts_with("#Consumer Properties#"), "{out}");
    assert!(out.lines().any(|l| l.contains(" Topic: ") && l.contains(&format!("{topic} ")) && l.ends_with("SubExpression: *")), "{out}");
    let offsets = out.split("#Consumer Offset#").nth(1).and_then(|s| s.split("#Consumer MQ Detail#").next()).expect("an offset section");
    assert_eq!(offsets.lines().filter(|l| l.starts_with(topic.as_str())).count(), 2, "both queues: {out}");
    let dir = TempDir::new("consumer-status");
    let (group_arg, ns_arg) = (group.clone(), ns);
    let dir_path = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || mqadmin_in(&dir_path, Some(ns_arg), &["consumerStatus", "-g", &group_arg])).await.unwrap().ok();
    let row: Vec<&str> = out.lines().nth(1).expect("a client row").split_whitespace().collect();
    assert_eq!((row[0], row[1]), ("1", client_id.as_str()), "{out}");
    let file = std::fs::read_to_string(dir.path().join(row[3])).expect("the running info file");
    assert!(file.starts_with("#Consumer Properties#") && file.contains(&topic), "{file}");
    assert!(out.contains("Same subscription in the same group of consumer") && out.contains("Rebalance OK"), "{out}");

    // consumerProgress -t: both queues, 2 messages each (how far the group is — it commits
    // every 5 s — is checked once it has stopped, below; without -t only queues with a
    // committed offset are listed, as Java's broker does).
    let out = admin(ns, &["consumerProgress", "-g", &group, "-t", &topic]).await.ok();
    let brokers: Vec<(i32, i64)> = progress_rows(&out, &topic).iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(brokers, [(0, 2), (1, 2)], "(queue, broker offset): {out}");
    // -s true: the IP of the client each queue is assigned to, from its running info.
    let with_ip = admin(ns, &["consumerProgress", "-g", &group, "-t", &topic, "-s", "true"]).await.ok();
    let ip = client_id.split('@').next().expect("the client's IP");
    let ips: Vec<&str> = with_ip.lines().filter(|l| l.starts_with(topic.as_str())).map(|l| l.split_whitespace().nth(5).unwrap_or_default()).collect();
    assert_eq!(ips, [ip, ip], "{with_ip}");
    assert!(with_ip.starts_with("#Topic") && with_ip.lines().next().unwrap().contains("#Client IP"), "{with_ip}");
    let all = admin(ns, &["consumerProgress"]).await.ok();
    let line: Vec<&str> = all.lines().find(|l| l.starts_with(group.as_str())).unwrap_or_else(|| panic!("{group} not listed: {all}")).split_whitespace().collect();
    assert_eq!((line[1], line[3], line[4]), ("1", "PUSH", "CLUSTERING"), "count, type, model: {all}");
    assert!(line[6].parse::<i64>().is_ok_and(|diff| (0..=4).contains(&diff)), "diff total: {all}");

    // Batch B a moment after A; the group goes offline and is reset to the time between.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let between_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let batch_b = send_batch("b").await;
    wait_for(&broker, Duration::from_secs(30), || batch_b.iter().all(|k| counts(&seen).contains_key(k)), || format!("batch B: {:?}", counts(&seen))).await;
    stop_consumer(&broker, &mut consumer, "the first consumer").await;
    // Caught up: a consumer persists its offsets as it stops (one-way; they arrive a moment later).
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = admin(ns, &["consumerProgress", "-g", &group, "-t", &topic]).await.ok();
        if progress_rows(&out, &topic) == vec![(0, 4, 4, 0), (1, 4, 4, 0)] || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(progress_rows(&out, &topic), vec![(0, 4, 4, 0), (1, 4, 4, 0)], "(queue, broker offset, consumer offset, diff): {out}");
    let reset = admin(ns, &["resetOffsetByTime", "-g", &group, "-t", &topic, "-s", &between_ms.to_string()]).await.ok();
    let offsets: Vec<&str> = reset.lines().skip(2).map(|l| l.split_whitespace().last().unwrap_or_default()).collect();
    assert_eq!(offsets, ["2", "2"], "batch B starts at offset 2 of both queues: {reset}");
    let out = admin(ns, &["consumerProgress", "-g", &group, "-t", &topic]).await.ok();
    assert_eq!(diff_total(&out), 4, "batch B is due again: {out}");

    // The group's next consumer receives batch B again, once each, and nothing of batch A.
    let again: Seen = Default::default();
    let mut consumer = clients.consumer(&broker, &group, &topic, again.clone(), ConsumerOptions::default()).await;
    wait_for(&broker, Duration::from_secs(30), || batch_b.iter().all(|k| counts(&again).contains_key(k)), || format!("batch B again: {:?}", counts(&again))).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let expected: std::collections::BTreeMap<String, usize> = batch_b.iter().map(|k| (k.clone(), 1)).collect();
    assert_eq!(counts(&again), expected, "exactly batch B, once each");
    stop_consumer(&broker, &mut consumer, "the second consumer").await;
}
