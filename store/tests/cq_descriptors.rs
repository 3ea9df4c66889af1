//! The consume-queue descriptor budget (`StoreConfig::max_open_cq_files`) on real files: a
//! store whose queues have many more files than it may keep open writes, checkpoints, reads,
//! closes and recovers them all, and the process never holds more than the budget of them.
//! One test in its own binary: it counts the process's descriptors, which parallel tests would
//! disturb.

use std::collections::BTreeMap;

use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::record::{self, MessageInput, Properties};
use ferromq_store::test_support::block_on;
use ferromq_store::{FlushMode, PullStatus, QueueId, QueueOffset, Store, StoreConfig, TagFilter};

const TOPICS: u32 = 30;
const QUEUES_PER_TOPIC: u32 = 10;
/// Per queue: with 8 entries per file (`test_min`), three files each, 900 files in all.
const MESSAGES_PER_QUEUE: u64 = 20;
const DESCRIPTOR_BUDGET: usize = 16;
/// What else the store holds open besides consume queues: a commit-log segment or two, the
/// index files, the abort marker, and whatever the runtime opens meanwhile.
const OTHER_DESCRIPTORS: usize = 16;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn body(topic: u32, queue: u32, at: u64) -> String {
    format!("w{topic}-q{queue}-{at}")
}

/// Every queue's bodies, by (topic, queue), read through pulls.
async fn read_all(store: &Store<CompioStorage>) -> BTreeMap<(u32, u32), Vec<String>> {
    let mut out = BTreeMap::new();
    for t in 0..TOPICS {
        for q in 0..QUEUES_PER_TOPIC {
            let mut bodies = Vec::new();
            let mut offset = 0;
            loop {
                let r = store.get_message(&format!("W{t}"), QueueId(q), QueueOffset(offset), 32, &TagFilter::All).await.unwrap();
                if r.status != PullStatus::Found {
                    assert_eq!(r.status, PullStatus::OffsetOverflowOne, "W{t}:{q}@{offset}");
                    break;
                }
                for range in &r.ranges {
                    let bytes = store.read_range(*range).await.unwrap();
                    bodies.extend(record::decode_body_strict(&bytes).unwrap().iter().map(|rec| String::from_utf8(rec.body.to_vec()).unwrap()));
                }
                offset = r.next_begin_offset.0;
            }
            out.insert((t, q), bodies);
        }
    }
    out
}

#[test]
fn nine_hundred_consume_queue_files_are_served_through_sixteen_descriptors() {
    let dir = std::env::temp_dir().join(format!("ferromq-store-cq-descriptors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = StoreConfig::test_min(&dir);
    cfg.max_open_cq_files = DESCRIPTOR_BUDGET;
    cfg.flush_mode = FlushMode::Async;
    // One segment for the whole run: segments keep their own descriptors.
    cfg.segment_size_bytes = 4 << 20;
    let expected: BTreeMap<(u32, u32), Vec<String>> = (0..TOPICS)
        .flat_map(|t| (0..QUEUES_PER_TOPIC).map(move |q| ((t, q), (0..MESSAGES_PER_QUEUE).map(|i| body(t, q, i)).collect())))
        .collect();
    block_on(async {
        let before = open_descriptors();
        let mut peak = before;
        let (store, _) = Store::open(CompioStorage, cfg.clone()).await.unwrap();
        // Round robin over every queue, as a producer spread over many topics writes them.
        for i in 0..MESSAGES_PER_QUEUE {
            for t in 0..TOPICS {
                for q in 0..QUEUES_PER_TOPIC {
                    let message = MessageInput::simple(&format!("W{t}"), QueueId(q), body(t, q, i).into_bytes(), &Properties::new());
                    store.append(vec![message]).await.unwrap();
                }
            }
            store.wait_dispatched().await.unwrap();
            peak = peak.max(open_descriptors());
        }
        store.checkpoint().await.unwrap();
        peak = peak.max(open_descriptors());
        let stats = store.stats();
        assert!(stats.cq_files_held <= DESCRIPTOR_BUDGET as u64, "{stats:?}");
        assert!(stats.cq_file_opens >= 900, "every file was opened at least once: {stats:?}");
        assert_eq!(read_all(&store).await, expected);
        peak = peak.max(open_descriptors());
        assert!(
            peak - before <= DESCRIPTOR_BUDGET + OTHER_DESCRIPTORS,
            "the store held {} descriptors at its peak (budget {DESCRIPTOR_BUDGET} for consume queues)",
            peak - before
        );
        store.close().await.unwrap();

        // Recovery checks every file (its length against the checkpoint) through the budget too.
        let (store, report) = Store::open(CompioStorage, cfg.clone()).await.unwrap();
        assert!(!report.abnormal);
        assert_eq!(read_all(&store).await, expected);
        assert!(store.stats().cq_files_held <= DESCRIPTOR_BUDGET as u64);
        assert!(open_descriptors() - before <= DESCRIPTOR_BUDGET + OTHER_DESCRIPTORS);
        store.close().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}
