//! Pull bodies over the wire: a pull of interleaved queues is many small log ranges, sent
//! copied (one buffer, one `writev`); a pull of large records keeps `sendfile`. Either way every
//! record must arrive whole, in queue order, with its own body — checked here record by record
//! against what each send stored, with pulls of several queues pipelined on one connection so
//! that copied bodies are coalesced with other frames.

use std::collections::BTreeMap;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::backend::runtime_from_env;
use ferromq_net::client::Client;
use ferromq_net::codes::response_code;
use ferromq_tests::BrokerProcess;

const TOPIC: &str = "PullBodyTopic";
const QUEUES: u32 = 4;
/// Queue whose records are large (its pulls go out with `sendfile`); the others are small.
const LARGE_QUEUE: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(20);

/// Body of the `i`-th send: distinct bytes, small (1–2000 bytes) or large (20–50 KB).
fn body_of(i: usize, large: bool) -> Vec<u8> {
    let len = if large { 20_000 + (i * 7919) % 30_000 } else { 1 + (i * 131) % 2000 };
    (0..len).map(|j| (i.wrapping_mul(31).wrapping_add(j * 7) % 251) as u8).collect()
}

fn send(queue_id: u32, body: Vec<u8>) -> RemotingCommand {
    ferromq_tests::send_v2_request("pull_body_producer", TOPIC, QUEUES, queue_id, "TAGS\u{1}T\u{2}", body)
}

fn pull(queue_id: u32, queue_offset: u64) -> RemotingCommand {
    ferromq_tests::pull_request("pull_body_group", TOPIC, queue_id, queue_offset)
}

/// Pulls `queue_id` from 0 to its end, checking each record's queue, offset and body.
async fn check_queue(client: &Client, queue_id: u32, stored: &BTreeMap<(u32, u64), Vec<u8>>) -> usize {
    let expected = stored.range((queue_id, 0)..(queue_id + 1, 0)).count() as u64;
    let mut offset = 0u64;
    while offset < expected {
        let response = client.invoke(pull(queue_id, offset), TIMEOUT).await.unwrap();
        assert_eq!(response.code, response_code::SUCCESS, "q{queue_id}@{offset}: {response:?}");
        let records = ferromq_store::record::decode_body_strict(&response.body)
            .unwrap_or_else(|(at, e)| panic!("q{queue_id}@{offset}: undecodable body at byte {at}: {e}"));
        assert!(!records.is_empty(), "q{queue_id}@{offset}: SUCCESS with no records");
        for record in records {
            assert_eq!((record.queue_id, record.queue_offset), (queue_id, offset as i64), "record out of place");
            assert!(stored.get(&(queue_id, offset)).is_some_and(|b| b[..] == *record.body), "q{queue_id}@{offset}: wrong body");
            offset += 1;
        }
    }
    offset as usize
}

#[test]
fn interleaved_pulls_return_every_record_intact() {
    // One shard: all queues interleave in one commit log, as on a busy broker.
    let broker = BrokerProcess::start(&[("flushDiskType", "ASYNC_FLUSH"), ("shards", "1")]).unwrap();
    let (runtime, _) = runtime_from_env().unwrap();
    runtime.block_on(async {
        let client = Client::connect(broker.process.addr, TIMEOUT).await.unwrap();
        assert_eq!(client.invoke(ferromq_tests::create_topic_request(TOPIC, QUEUES), TIMEOUT).await.unwrap().code, 0);

        // Round robin over the queues, with runs of consecutive sends to one queue now and
        // then (adjacent records, coalesced into one range by the store).
        let mut stored = BTreeMap::new();
        let mut i = 0usize;
        while i < 600 {
            let (queue_id, run) = if i.is_multiple_of(50) { ((i / 50) % QUEUES as usize, 5) } else { (i % QUEUES as usize, 1) };
            let queue_id = queue_id as u32;
            for _ in 0..run {
                let body = body_of(i, queue_id == LARGE_QUEUE);
                let response = client.invoke(send(queue_id, body.clone()), TIMEOUT).await.unwrap();
                assert_eq!(response.code, 0, "{response:?}");
                let at: u64 = response.ext("queueOffset").and_then(|v| v.parse().ok()).unwrap();
                stored.insert((queue_id, at), body);
                i += 1;
            }
        }
        // Every queue pulled at once on the one connection.
        let pulled = futures_util::future::join_all((0..QUEUES).map(|q| check_queue(&client, q, &stored))).await;
        assert_eq!(pulled.iter().sum::<usize>(), stored.len());
    });
}
