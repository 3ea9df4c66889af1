//! What the replica tests share: the stores' configurations, a deterministic message stream,
//! the sender/follower loop between a master and its replica, and queue comparisons.
#![allow(dead_code)] // each test file uses its own part

use std::future::Future;
use std::pin::Pin;

use ferromq_store::io::Storage;
use ferromq_store::io::mem::MemStorage;
use ferromq_store::record::{self, MessageInput, Properties};
use ferromq_store::test_support::block_on;
use ferromq_store::{ClientPhysicalOffset, FlushMode, PullStatus, QueueId, QueueOffset, ReplicaFramer, ReplicaUnit, Store, StoreConfig, TagFilter};

pub type AckFuture = Pin<Box<dyn Future<Output = ferromq_store::Result<()>>>>;

pub const SEGMENT: u64 = 4096;
pub const TOPICS: [&str; 3] = ["A", "B", "C"];

pub fn msg(topic: &str, q: u32, body: String) -> MessageInput {
    let mut p = Properties::new();
    p.insert("KEYS", &body);
    MessageInput::simple(topic, QueueId(q), body.into_bytes(), &p)
}

pub fn master_cfg() -> StoreConfig {
    StoreConfig::test_min("/m")
}

/// An ASYNC_FLUSH master that syncs only when told to (or when a segment ends): what it wrote
/// since its last `flush` is what a crash takes.
pub fn lossy_master_cfg() -> StoreConfig {
    StoreConfig {
        flush_mode: FlushMode::Async,
        flush_interval_ms: 3_600_000,
        flush_least_bytes: u64::MAX,
        checkpoint_interval_ms: 3_600_000,
        ..StoreConfig::test_min("/m")
    }
}

pub fn replica_cfg(mode: FlushMode) -> StoreConfig {
    StoreConfig { replica: true, flush_mode: mode, ..StoreConfig::test_min("/r") }
}

pub fn body(i: usize) -> String {
    format!("m{i}-{}", "x".repeat((i * 37) % 300))
}

pub fn topic_of(i: usize) -> (&'static str, u32) {
    (TOPICS[i % 3], (i % 2) as u32)
}

/// Messages `from..to` (body `body(i)`, key = body), one append each.
pub async fn produce<S: Storage>(master: &Store<S>, from: usize, to: usize) -> Vec<ClientPhysicalOffset> {
    let mut offsets = Vec::new();
    for i in from..to {
        let (topic, q) = topic_of(i);
        offsets.push(master.append(vec![msg(topic, q, body(i))]).await.unwrap().client_offset);
    }
    offsets
}

/// Sender and follower: everything `source` has written past the framer's position, cut in
/// chunks of the given sizes, into `replica`; waits for every acknowledgement. Returns each
/// unit's start and kind.
pub async fn copy<S: Storage, R: Storage>(source: &Store<S>, replica: &Store<R>, framer: &mut ReplicaFramer, chunks: &[u32]) -> Vec<(u64, ReplicaUnit)> {
    let mut units = Vec::new();
    let mut acks: Vec<AckFuture> = Vec::new();
    let mut i = 0;
    loop {
        let at = framer.next_offset();
        let Some(bytes) = source.replication_bytes(at, chunks[i % chunks.len()]).await.unwrap() else { break };
        i += 1;
        framer.push(at, &bytes).unwrap();
        while let Some((start, unit)) = framer.next_unit().unwrap() {
            let (kind, ack) = replica.append_replica(start, unit).await.unwrap();
            units.push((start, kind));
            acks.push(Box::pin(ack));
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
    units
}

/// `(local offset, body)` of every message of a queue, in queue order.
pub async fn records<S: Storage>(store: &Store<S>, topic: &str, q: u32) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut off = store.queue_offsets(topic, QueueId(q)).0.0;
    loop {
        let r = store.get_message(topic, QueueId(q), QueueOffset(off), 1, &TagFilter::All).await.unwrap();
        if r.status != PullStatus::Found {
            return out;
        }
        for range in &r.ranges {
            for rec in record::decode_body_strict(&store.read_range(*range).await.unwrap()).unwrap() {
                out.push((range.offset.0, String::from_utf8(rec.body.to_vec()).unwrap()));
            }
        }
        off = r.next_begin_offset.0;
    }
}

/// Every queue of `replica` holds exactly the records of `master`'s queue that lie below
/// `limit`, at the same queue offsets.
pub async fn assert_queues_below<S: Storage, R: Storage>(master: &Store<S>, replica: &Store<R>, limit: u64, when: &str) {
    for topic in TOPICS {
        for q in 0..2 {
            let want: Vec<(u64, String)> = records(master, topic, q).await.into_iter().filter(|(at, _)| *at < limit).collect();
            assert_eq!(records(replica, topic, q).await, want, "{when}: records of {topic}:{q}");
            let (min, _) = master.queue_offsets(topic, QueueId(q));
            assert_eq!(replica.queue_offsets(topic, QueueId(q)), (min, QueueOffset(min.0 + want.len() as u64)), "{when}: offsets of {topic}:{q}");
        }
    }
}

pub async fn assert_same_queues<S: Storage, R: Storage>(master: &Store<S>, replica: &Store<R>, when: &str) {
    replica.wait_dispatched().await.unwrap();
    assert_queues_below(master, replica, u64::MAX, when).await;
    for topic in TOPICS {
        for q in 0..2 {
            assert_eq!(master.queue_offsets(topic, QueueId(q)), replica.queue_offsets(topic, QueueId(q)), "{when}: offsets of {topic}:{q}");
        }
    }
}

pub fn segment_files(mem: &MemStorage, root: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(root).join("commitlog");
    let mut names = block_on(mem.list_dir(&dir)).unwrap();
    names.sort();
    names.into_iter().map(|n| (n.clone(), mem.file_bytes(&dir.join(&n)).unwrap())).collect()
}

