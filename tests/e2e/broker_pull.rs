//! Pull bodies over the wire: a pull of interleaved queues is many small log ranges, sent
//! copied (one buffer, one `writev`, through the thread's block cache); a pull of large
//! records keeps `sendfile`. Either way every record must arrive whole, in queue order, with
//! its own body — checked here record by record against what each send stored, with pulls of
//! several queues pipelined on one connection so that copied bodies are coalesced with other
//! frames.

use std::collections::BTreeMap;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::backend::runtime_from_env;
use ferromq_net::client::Client;
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

/// Pulls `queue_id` from 0 to its end, checking each record's queue, offset and body.
async fn check_queue(client: &Client, queue_id: u32, stored: &BTreeMap<(u32, u64), Vec<u8>>) -> usize {
    let expected: Vec<&Vec<u8>> = stored.range((queue_id, 0)..(queue_id + 1, 0)).map(|(_, body)| body).collect();
    let bodies = ferromq_tests::pull_bodies(client, "pull_body_group", TOPIC, queue_id, 0, expected.len(), TIMEOUT).await;
    assert!(bodies.iter().eq(expected.iter().copied()), "q{queue_id}: wrong bodies");
    bodies.len()
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
        // The small records went through the shard's block cache (`net/src/conn/blocks.rs`),
        // each block read once for the interleaved queues and served again from it.
        let (hits, reads) = (ferromq_tests::runtime_number(&client, "ferromqBlockCacheHits").await, ferromq_tests::runtime_number(&client, "ferromqBlockCacheReads").await);
        assert!(reads > 0 && hits > reads, "block cache: {hits} hits, {reads} reads");
    });
}

/// More queues than the broker may keep consume-queue files open for
/// (`maxOpenConsumeQueueFiles`, split over the shards the broker picks itself): every record
/// is written and pulled back through descriptors closed and opened again, and the broker never
/// holds more than the budget (GET_BROKER_RUNTIME_INFO `ferromqCqFilesOpen`).
#[test]
fn more_queues_than_the_descriptor_budget_are_all_served() {
    const BUDGET: u64 = 64;
    const WIDE: &str = "PullWideTopic";
    const WIDE_QUEUES: u32 = 200;
    // `shards` left automatic: the split must use the shards that run, not the one CPU a pinned
    // shard thread may use.
    // Every queue's entries written at once (`flushConsumeQueueLeastPages=0`): with Java's
    // default, two entries a queue stay in memory and no file would be written or reopened.
    let broker = BrokerProcess::start(&[("flushDiskType", "ASYNC_FLUSH"), ("maxOpenConsumeQueueFiles", "64"), ("flushConsumeQueueLeastPages", "0")]).unwrap();
    let (runtime, _) = runtime_from_env().unwrap();
    runtime.block_on(async {
        let client = Client::connect(broker.process.addr, TIMEOUT).await.unwrap();
        assert_eq!(client.invoke(ferromq_tests::create_topic_request(WIDE, WIDE_QUEUES), TIMEOUT).await.unwrap().code, 0);
        for round in 0..2 {
            for queue_id in 0..WIDE_QUEUES {
                let body = format!("q{queue_id}-r{round}").into_bytes();
                let response = client.invoke(ferromq_tests::send_v2_request("wide_producer", WIDE, WIDE_QUEUES, queue_id, "", body), TIMEOUT).await.unwrap();
                assert_eq!(response.code, 0, "{response:?}");
            }
        }
        for queue_id in 0..WIDE_QUEUES {
            let bodies = ferromq_tests::pull_bodies(&client, "wide_group", WIDE, queue_id, 0, 2, TIMEOUT).await;
            assert_eq!(bodies, [format!("q{queue_id}-r0").into_bytes(), format!("q{queue_id}-r1").into_bytes()]);
        }
        let held = ferromq_tests::runtime_number(&client, "ferromqCqFilesOpen").await;
        let opens = ferromq_tests::runtime_number(&client, "ferromqCqFileOpens").await;
        assert!(held <= BUDGET, "{held} consume-queue files held open, budget {BUDGET}");
        assert!(opens > u64::from(WIDE_QUEUES), "{opens} opens: the files were closed and opened again");
    });
}
