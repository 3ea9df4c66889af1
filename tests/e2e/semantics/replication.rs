//! A `2m-2s-sync` cluster on one host (one name server, two SYNC_MASTERs, each with a SLAVE)
//! driven by `rocketmq-client-rust` (issue 9's acceptance): a producer's SEND_OKs, then master
//! a is killed with -9 *and its store deleted*; every message broker-a acknowledged is consumed,
//! byte-identical, from its slave by a push consumer that was never told about the slave (it
//! knows the name server only), and the producer carries on through broker b. Then a master
//! and slave pair: a consumer reads from the slave while the master is down and, after the
//! master returns, does not re-read what it consumed meanwhile.

use std::collections::BTreeMap;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_tests::{BrokerProcess, free_port, start_namesrv};

use crate::common::*;

/// Messages sent before master a is lost.
const BEFORE: usize = 120;
/// Messages sent after.
const AFTER: usize = 40;

fn body(i: usize) -> Vec<u8> {
    let len = 16 + (i * 977) % 5000;
    (0..len).map(|j| (i.wrapping_mul(131).wrapping_add(j * 17) % 253) as u8).collect()
}

/// A broker of the layout: a SYNC_MASTER (`id` 0) or a SLAVE of group `name`; a slave learns
/// its master's addresses from the name server and copies its metadata every 300 ms.
fn broker(namesrv: &str, name: &str, id: u32, ha_port: u16) -> BrokerProcess {
    let ha = ha_port.to_string();
    let id_text = id.to_string();
    let mut settings = vec![
        ("namesrvAddr", namesrv),
        ("brokerClusterName", "DefaultCluster"),
        ("brokerName", name),
        ("brokerId", id_text.as_str()),
        ("flushDiskType", "SYNC_FLUSH"),
        ("haListenPort", ha.as_str()),
        ("shards", "2"),
    ];
    if id == 0 {
        settings.push(("brokerRole", "SYNC_MASTER"));
    } else {
        settings.extend([("brokerRole", "SLAVE"), ("slaveSyncIntervalMillis", "300")]);
    }
    BrokerProcess::start(&settings).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_cluster_keeps_every_acknowledged_message_of_a_master_lost_with_its_store() {
    let (namesrv, _namesrv_dir) = start_namesrv(&[], &[]).unwrap();
    let ns = namesrv.addr.to_string();
    let (ha_a, ha_b) = (free_port(), free_port());
    let mut master_a = broker(&ns, "broker-a", 0, ha_a);
    let slave_a = broker(&ns, "broker-a", 1, free_port());
    let master_b = broker(&ns, "broker-b", 0, ha_b);
    let _slave_b = broker(&ns, "broker-b", 1, free_port());

    let clients = Clients::with_namesrv(namesrv.addr, "sync_cluster");
    let topic = unique("SyncClusterTopic");
    let mut producer = clients.producer(&unique("sync_cluster_producer"), Trace::Off).await;
    // Four queues on each master (the client's admin path creates the topic on every broker of
    // TBW102's route): eight routed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Err(e) = producer.create_topic("TBW102", &topic, 4, std::collections::HashMap::new()).await {
        assert!(std::time::Instant::now() < deadline, "create topic: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        match producer.fetch_publish_message_queues(&topic).await {
            Ok(mqs) if mqs.len() == 8 => break,
            other => assert!(std::time::Instant::now() < deadline, "topic not routed on both masters: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The consumer group exists on the masters before the failure (a slave copies groups from
    // its master and creates none itself); the consumer itself starts only after it.
    let group = unique("sync_cluster_group");
    for master in [&master_a, &master_b] {
        let create = RemotingCommand::request(ferromq_net::codes::request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
            .with_body(format!("{{\"groupName\":\"{group}\"}}").into_bytes());
        let response = raw_request(master, create, Duration::from_secs(5)).await.unwrap();
        assert_eq!(response.code, 0, "{response:?}");
    }

    // SEND_OK from a SYNC_MASTER means its slave holds the message. The slaves need a moment to
    // connect; until then a send is answered SLAVE_NOT_AVAILABLE, which the client reports as
    // a non-OK status: those are sent again.
    let mut acknowledged: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    let mut i = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acknowledged.len() < BEFORE {
        let key = format!("before-{i}");
        let sent = producer.send_with_timeout(message(&topic, &key, "T", &[], &body(i)), SEND_TIMEOUT_MS).await;
        match sent {
            Ok(Some(r)) if r.send_status == rocketmq_model::result::SendStatus::SendOk => {
                let broker_name = r.message_queue.as_ref().map(|q| q.broker_name().to_string()).unwrap_or_default();
                acknowledged.insert(key, (broker_name, body(i)));
            }
            other => {
                assert!(std::time::Instant::now() < deadline, "send {key}: {other:?}\nbroker-a log:\n{}", log_tail(&master_a));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        i += 1;
    }
    let on_a = acknowledged.values().filter(|(b, _)| b == "broker-a").count();
    assert!((10..BEFORE).contains(&on_a), "both masters must take sends: {on_a} of {BEFORE} on broker-a");

    // Slave a has copied the topic and the group.
    for (code, name) in [(ferromq_net::codes::request_code::GET_ALL_TOPIC_CONFIG, &topic), (ferromq_net::codes::request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, &group)] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let response = raw_request(&slave_a, RemotingCommand::request(code), Duration::from_secs(5)).await.unwrap();
            if String::from_utf8_lossy(&response.body).contains(name.as_str()) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "slave a never copied {name}\nslave log:\n{}", log_tail(&slave_a));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Master a's machine is lost: kill -9, store gone.
    master_a.process.kill();
    let _ = std::fs::remove_dir_all(master_a.store.path());

    // Producers continue through broker b. Until its next route refresh this client still
    // picks broker-a's queues now and then, and a send to a dead broker fails without a retry
    // elsewhere in this client (Java's retries on another broker): the application sends again.
    let mut failed_attempts = 0;
    for j in 0..AFTER {
        let key = format!("after-{j}");
        let mut attempts = 0;
        let r = loop {
            match producer.send_with_timeout(message(&topic, &key, "T", &[], &body(10_000 + j)), SEND_TIMEOUT_MS).await {
                Ok(Some(r)) if r.send_status == rocketmq_model::result::SendStatus::SendOk => break r,
                other => {
                    attempts += 1;
                    failed_attempts += 1;
                    assert!(attempts < 10, "send {key} after broker-a's loss: {other:?}\nbroker-b log:\n{}", log_tail(&master_b));
                }
            }
        };
        let broker_name = r.message_queue.as_ref().map(|q| q.broker_name().to_string()).unwrap_or_default();
        assert_eq!(broker_name, "broker-b", "{key} after broker-a's loss");
        acknowledged.insert(key, (broker_name, body(10_000 + j)));
    }
    eprintln!("after broker-a's loss: {AFTER} sends acknowledged by broker-b ({failed_attempts} attempts had picked dead broker-a)");

    // A consumer that knows only the name server reads everything: broker-a's messages from
    // its slave, broker-b's from its master.
    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&master_b, &group, &topic, seen.clone(), ConsumerOptions::default()).await;
    wait_for(
        &master_b,
        Duration::from_secs(60),
        || keys_of(&seen).len() >= acknowledged.len(),
        || {
            let got = keys_of(&seen);
            let missing: Vec<&String> = acknowledged.keys().filter(|k| !got.contains(*k)).take(10).collect();
            format!("{} of {} consumed; missing e.g. {missing:?}", got.len(), acknowledged.len())
        },
    )
    .await;
    let delivered: BTreeMap<String, Vec<u8>> = seen.lock().unwrap().iter().map(|d| (d.key.clone(), d.body.clone())).collect();
    for (key, (broker_name, body)) in &acknowledged {
        assert!(delivered.get(key) == Some(body), "{key} (acknowledged by {broker_name}): not delivered byte-identical");
    }
    eprintln!("{} acknowledged messages consumed after broker-a's loss ({on_a} of them from broker-a's slave)", acknowledged.len());
    stop_consumer(&master_b, &mut consumer, "consumer").await;
    producer.shutdown().await;
    clients.finish().await;
}

/// Issue 9: consumers keep receiving while their master is down (from its slave), and do not
/// re-read after the master returns what they consumed meanwhile: the offsets they committed to
/// the slave are handed back to the master (larger wins).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_read_from_the_slave_while_the_master_is_down_and_do_not_reread_after_it_returns() {
    let (namesrv, _namesrv_dir) = start_namesrv(&[], &[]).unwrap();
    let ns = namesrv.addr.to_string();
    let ha = free_port();
    let mut master = broker(&ns, "broker-o", 0, ha);
    let slave = broker(&ns, "broker-o", 1, free_port());
    let clients = Clients::with_namesrv(namesrv.addr, "outage");
    let topic = unique("OutageTopic");
    let group = unique("outage_group");
    let mut producer = clients.producer(&unique("outage_producer"), Trace::Off).await;
    create_topic(&master, &mut producer, &topic, 4).await;
    let create = RemotingCommand::request(ferromq_net::codes::request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
        .with_body(format!("{{\"groupName\":\"{group}\"}}").into_bytes());
    assert_eq!(raw_request(&master, create, Duration::from_secs(5)).await.unwrap().code, 0);

    // Sent while the master is up (a SYNC_MASTER: once acknowledged, on the slave too).
    let mut first = std::collections::BTreeSet::new();
    let mut i = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while first.len() < 40 {
        let key = format!("first-{i}");
        i += 1;
        match producer.send_with_timeout(message(&topic, &key, "T", &[], &body(i)), SEND_TIMEOUT_MS).await {
            Ok(Some(r)) if r.send_status == rocketmq_model::result::SendStatus::SendOk => {
                first.insert(key);
            }
            other => {
                assert!(std::time::Instant::now() < deadline, "send {key}: {other:?}\nmaster log:\n{}", log_tail(&master));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // The slave has the group (its metadata copy) before the master goes down.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response =
            raw_request(&slave, RemotingCommand::request(ferromq_net::codes::request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG), Duration::from_secs(5)).await.unwrap();
        if String::from_utf8_lossy(&response.body).contains(&group) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slave never copied {group}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The master is down: a consumer of the group reads everything from the slave, commits its
    // offsets there (the client commits to the slave when no master is listed), and stops.
    master.process.kill();
    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&slave, &group, &topic, seen.clone(), ConsumerOptions::default()).await;
    wait_for(&slave, Duration::from_secs(60), || keys_of(&seen).is_superset(&first), || format!("{} of {} read from the slave", keys_of(&seen).len(), first.len())).await;
    stop_consumer(&slave, &mut consumer, "consumer during the outage").await;

    // The master returns (same store); the slave hands the group's offsets back to it.
    master.restart().unwrap();
    let mut later = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while later.len() < 10 {
        let key = format!("later-{i}");
        i += 1;
        match producer.send_with_timeout(message(&topic, &key, "T", &[], &body(i)), SEND_TIMEOUT_MS).await {
            Ok(Some(r)) if r.send_status == rocketmq_model::result::SendStatus::SendOk => {
                later.insert(key);
            }
            other => {
                assert!(std::time::Instant::now() < deadline, "send {key} after the master returned: {other:?}\nmaster log:\n{}", log_tail(&master));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // A new consumer of the group (offsets from the master now) gets only what is new.
    let seen_after: Seen = Default::default();
    let mut consumer = clients.consumer(&master, &group, &topic, seen_after.clone(), ConsumerOptions::default()).await;
    wait_for(&master, Duration::from_secs(60), || keys_of(&seen_after).is_superset(&later), || format!("{} of {} new messages", keys_of(&seen_after).len(), later.len())).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reread: Vec<String> = keys_of(&seen_after).intersection(&first).cloned().collect();
    assert!(reread.is_empty(), "after the master returned the group re-read {} messages it had consumed from the slave: {reread:?}", reread.len());
    eprintln!("{} messages read from the slave during the outage, none re-read after the master returned; {} new ones read", first.len(), later.len());
    stop_consumer(&master, &mut consumer, "consumer after the outage").await;
    producer.shutdown().await;
    clients.finish().await;
}
