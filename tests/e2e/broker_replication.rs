//! Master–slave replication (issue 9, PROTOCOL.md §7) between two real `mqbroker` processes:
//! a SYNC_MASTER acknowledges a send only once its slave holds it; every acknowledged message
//! is then read back, byte-identical, from the slave after the master was killed with -9 and
//! its store deleted; the slave refuses sends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_tests::{BrokerProcess, free_port, on_compio};

const TOPIC: &str = "ReplicatedTopic";
const QUEUES: u32 = 4;
const GROUP: &str = "replication_group";
const TIMEOUT: Duration = Duration::from_secs(20);

fn send(queue_id: u32, body: Vec<u8>) -> RemotingCommand {
    RemotingCommand::request(request_code::SEND_MESSAGE_V2)
        .with_ext("a", "replication_producer")
        .with_ext("b", TOPIC)
        .with_ext("c", "TBW102")
        .with_ext("d", QUEUES)
        .with_ext("e", queue_id)
        .with_ext("f", 0)
        .with_ext("g", 0)
        .with_ext("h", 0)
        .with_ext("i", "TAGS\u{1}T\u{2}")
        .with_body(body)
}

fn create_topic() -> RemotingCommand {
    RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", TOPIC)
        .with_ext("readQueueNums", QUEUES)
        .with_ext("writeQueueNums", QUEUES)
        .with_ext("perm", 6)
}

/// Distinct bytes per message, some large enough to span several 32 KiB transfer units.
fn body_of(i: usize) -> Vec<u8> {
    let len = if i.is_multiple_of(10) { 40_000 + i } else { 10 + (i * 131) % 3000 };
    (0..len).map(|j| (i.wrapping_mul(31).wrapping_add(j * 7) % 251) as u8).collect()
}

/// Every record of every queue of `TOPIC` on the broker at `addr`, by (queue, offset).
async fn read_all(client: &Client) -> BTreeMap<(u32, u64), Vec<u8>> {
    let mut out = BTreeMap::new();
    for queue_id in 0..QUEUES {
        let mut offset = 0u64;
        loop {
            let response = client.invoke(ferromq_tests::pull_request(GROUP, TOPIC, queue_id, offset), TIMEOUT).await.unwrap();
            if response.code != response_code::SUCCESS {
                break;
            }
            let records = ferromq_store::record::decode_body_strict(&response.body).unwrap_or_else(|(at, e)| panic!("undecodable body at {at}: {e}"));
            for record in records {
                out.insert((queue_id, record.queue_offset as u64), record.body.to_vec());
                offset = record.queue_offset as u64 + 1;
            }
        }
    }
    out
}

#[test]
fn sync_master_acknowledges_only_what_its_slave_holds_and_the_slave_keeps_it_all() {
    let ha_port = free_port();
    let mut master = BrokerProcess::start(&[
        ("brokerName", "broker-r"),
        ("brokerRole", "SYNC_MASTER"),
        ("flushDiskType", "SYNC_FLUSH"),
        ("haListenPort", &ha_port.to_string()),
        ("slaveTimeout", "3000"),
    ])
    .unwrap();
    let master_addr = master.process.addr;
    let ha_addr = format!("127.0.0.1:{ha_port}");

    // Without a slave a SYNC_MASTER says so (stored on the master only).
    let refused = on_compio(move || async move {
        let client = Client::connect(master_addr, TIMEOUT).await.unwrap();
        assert_eq!(client.invoke(create_topic(), TIMEOUT).await.unwrap().code, 0);
        client.invoke(send(0, b"before the slave".to_vec()), TIMEOUT).await.unwrap().code
    });
    assert_eq!(refused, response_code::SLAVE_NOT_AVAILABLE);

    let slave = BrokerProcess::start(&[
        ("brokerName", "broker-r"),
        ("brokerRole", "SLAVE"),
        ("brokerId", "1"),
        ("flushDiskType", "SYNC_FLUSH"),
        ("haMasterAddress", &ha_addr),
    ])
    .unwrap();
    let slave_addr = slave.process.addr;

    let acknowledged = on_compio(move || async move {
        let client = Client::connect(master_addr, TIMEOUT).await.unwrap();
        // The slave connects within a second or two: sends succeed from then on.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let code = client.invoke(send(1, b"probe".to_vec()), TIMEOUT).await.unwrap().code;
            if code == response_code::SUCCESS {
                break;
            }
            assert_eq!(code, response_code::SLAVE_NOT_AVAILABLE, "before the slave follows");
            assert!(Instant::now() < deadline, "the slave never caught up");
            compio::time::sleep(Duration::from_millis(100)).await;
        }
        // Sends from several connections at once, as a loaded producer makes them.
        let clients: Vec<Client> = futures_util::future::join_all((0..4).map(|_| Client::connect(master_addr, TIMEOUT))).await.into_iter().map(Result::unwrap).collect();
        let sends = (0..400usize).map(|i| {
            let client = &clients[i % clients.len()];
            async move {
                let queue_id = (i % QUEUES as usize) as u32;
                let body = body_of(i);
                let response = client.invoke(send(queue_id, body.clone()), TIMEOUT).await.unwrap();
                assert_eq!(response.code, response_code::SUCCESS, "send {i}: {response:?}");
                let at: u64 = response.ext("queueOffset").and_then(|v| v.parse().ok()).unwrap();
                ((queue_id, at), body)
            }
        });
        let mut acknowledged: BTreeMap<(u32, u64), Vec<u8>> = futures_util::future::join_all(sends).await.into_iter().collect();
        let all = read_all(&client).await;
        // The probes and the first (unreplicated) send are the master's too.
        for (k, v) in &all {
            if !acknowledged.contains_key(k) {
                acknowledged.insert(*k, v.clone());
            }
        }
        assert_eq!(all, acknowledged, "the master serves what it acknowledged");
        acknowledged
    });

    // The master's machine is lost: kill -9 and its store deleted.
    master.process.kill();
    let _ = std::fs::remove_dir_all(master.store.path());

    on_compio(move || async move {
        let client = Client::connect(slave_addr, TIMEOUT).await.unwrap();
        // A slave takes its topics from the master; this one was never synced (the master is
        // gone), so it learns the topic here, as an operator would create it.
        let created = client.invoke(create_topic(), TIMEOUT).await.unwrap();
        assert!(created.code == 0 || created.code == response_code::SYSTEM_ERROR, "{created:?}");
        let on_slave = read_all(&client).await;
        let acked_count = acknowledged.len();
        for (k, body) in &acknowledged {
            match on_slave.get(k) {
                Some(b) => assert!(b == body, "queue {} offset {}: different bytes on the slave", k.0, k.1),
                None => panic!("queue {} offset {}: acknowledged by the SYNC_MASTER, missing on the slave ({} of {acked_count} there)", k.0, k.1, on_slave.len()),
            }
        }
        println!("{acked_count} acknowledged messages all read back from the slave after the master's loss");
        // A slave refuses sends (4.x: SERVICE_NOT_AVAILABLE), so producers go elsewhere.
        let refused = client.invoke(send(0, b"to the slave".to_vec()), TIMEOUT).await.unwrap();
        assert_eq!(refused.code, response_code::SERVICE_NOT_AVAILABLE, "{refused:?}");
    });
}
