//! A `2m-2s-sync` cluster on one host (one name server, two SYNC_MASTERs, each with a SLAVE)
//! driven by `rocketmq-client-rust` (issue 9's acceptance): a producer's SEND_OKs, then master
//! a is killed with -9 *and its store deleted*; every message broker-a acknowledged is consumed,
//! byte-identical, from its slave by a push consumer that was never told about the slave (it
//! knows the name server only), and the producer carries on through broker b.

use std::collections::BTreeMap;
use std::time::Duration;

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

/// A broker of the layout: `role` with `id` in group `name`, following `master_ha` if a slave.
fn broker(namesrv: &str, name: &str, id: u32, ha_port: u16, master_ha: Option<u16>) -> BrokerProcess {
    let ha = ha_port.to_string();
    let master = master_ha.map(|p| format!("127.0.0.1:{p}"));
    let id = id.to_string();
    let mut settings = vec![
        ("namesrvAddr", namesrv),
        ("brokerClusterName", "DefaultCluster"),
        ("brokerName", name),
        ("brokerId", id.as_str()),
        ("flushDiskType", "SYNC_FLUSH"),
        ("haListenPort", ha.as_str()),
        ("shards", "2"),
    ];
    match &master {
        Some(addr) => settings.extend([("brokerRole", "SLAVE"), ("haMasterAddress", addr.as_str())]),
        None => settings.push(("brokerRole", "SYNC_MASTER")),
    }
    BrokerProcess::start(&settings).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_cluster_keeps_every_acknowledged_message_of_a_master_lost_with_its_store() {
    let (namesrv, _namesrv_dir) = start_namesrv(&[], &[]).unwrap();
    let ns = namesrv.addr.to_string();
    let (ha_a, ha_b) = (free_port(), free_port());
    let mut master_a = broker(&ns, "broker-a", 0, ha_a, None);
    let _slave_a = broker(&ns, "broker-a", 1, free_port(), Some(ha_a));
    let master_b = broker(&ns, "broker-b", 0, ha_b, None);
    let _slave_b = broker(&ns, "broker-b", 1, free_port(), Some(ha_b));

    let clients = Clients::with_namesrv(namesrv.addr, "sync_cluster");
    let topic = unique("SyncClusterTopic");
    let mut producer = clients.producer(&unique("sync_cluster_producer"), Trace::Off).await;
    let queues = create_topic(&master_b, &mut producer, &topic, 4).await;
    assert!(queues.len() >= 4, "{queues:?}");

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
    assert!(on_a >= 10 && on_a < BEFORE, "both masters must take sends: {on_a} of {BEFORE} on broker-a");

    // Master a's machine is lost: kill -9, store gone.
    master_a.process.kill();
    let _ = std::fs::remove_dir_all(master_a.store.path());

    // Producers continue through broker b.
    for j in 0..AFTER {
        let key = format!("after-{j}");
        let r = send(&master_b, &producer, message(&topic, &key, "T", &[], &body(10_000 + j)), &key).await;
        let broker_name = r.message_queue.as_ref().map(|q| q.broker_name().to_string()).unwrap_or_default();
        assert_eq!(broker_name, "broker-b", "{key} after broker-a's loss");
        acknowledged.insert(key, (broker_name, body(10_000 + j)));
    }

    // A consumer that knows only the name server reads everything: broker-a's messages from
    // its slave, broker-b's from its master.
    let seen: Seen = Default::default();
    let mut consumer = clients.consumer(&master_b, &unique("sync_cluster_group"), &topic, seen.clone(), ConsumerOptions::default()).await;
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
