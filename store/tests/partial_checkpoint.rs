//! Partial checkpoints (`cq_flush_least_entries`, Java's `flushConsumeQueueLeastPages`): a
//! queue with few unsynced entries keeps them in memory, unwritten, and the checkpoint names it
//! at its synced end; a power loss then loses them from the files, and recovery rebuilds them
//! from the commit log from the checkpoint's replay start. The memory they take is bounded.

use std::path::Path;

use ferromq_store::io::mem::{CrashOdds, MemStorage};
use ferromq_store::io::{Storage, StorageFile};
use ferromq_store::record::{self, MessageInput, Properties};
use ferromq_store::test_support::block_on;
use ferromq_store::{PullStatus, QueueId, QueueOffset, Store, StoreConfig, Sweep, TagFilter};

fn msg(topic: &str, q: u32, body: &str) -> MessageInput {
    let mut p = Properties::new();
    p.insert("KEYS", body);
    MessageInput::simple(topic, QueueId(q), body.as_bytes().to_vec(), &p)
}

async fn bodies<S: Storage>(store: &Store<S>, topic: &str, q: u32) -> Vec<String> {
    let mut out = Vec::new();
    let (_, max) = store.queue_offsets(topic, QueueId(q));
    let mut at = 0;
    while at < max.0 {
        let r = store.get_message(topic, QueueId(q), QueueOffset(at), 32, &TagFilter::All).await.unwrap();
        assert_eq!(r.status, PullStatus::Found, "{topic}:{q}@{at}");
        for range in &r.ranges {
            for rec in record::decode_body_strict(&store.read_range(*range).await.unwrap()).unwrap() {
                assert_eq!(rec.queue_offset as u64, at, "{topic}:{q}: dense queue offsets");
                out.push(String::from_utf8(rec.body.to_vec()).unwrap());
                at += 1;
            }
        }
    }
    out
}

/// Index entries the checkpoint at `root` names (its active file's count).
async fn checkpointed_index_entries(mem: &MemStorage, root: &str) -> u32 {
    let path = Path::new(root).join("checkpoint");
    let file = mem.open(&path, false).await.unwrap();
    let bytes = file.read_at(1 << 20, 0).await.unwrap();
    ferromq_store::checkpoint::Checkpoint::decode(&bytes, &path).unwrap().index_entry_count
}

fn config(root: &str) -> StoreConfig {
    let mut cfg = StoreConfig::test_min(root);
    cfg.cq_entries_per_file = 64;
    cfg.cq_flush_least_entries = 4;
    // Checkpoints only when the test asks.
    cfg.checkpoint_interval_ms = 3_600_000;
    cfg
}

#[test]
fn a_partial_checkpoint_keeps_light_queues_in_memory_and_a_power_loss_rebuilds_them() {
    block_on(async {
        let mem = MemStorage::new();
        let cfg = config("/p");
        let (store, _) = Store::open(mem.clone(), cfg.clone()).await.unwrap();
        let hot: Vec<String> = (0..10).map(|i| format!("hot-{i}")).collect();
        let cold: Vec<String> = (0..2).map(|i| format!("cold-{i}")).collect();
        // Interleaved, so the cold queue's first entry lies below most of the hot queue's.
        store.append(vec![msg("Cold", 0, &cold[0])]).await.unwrap();
        for b in &hot {
            store.append(vec![msg("Hot", 0, b)]).await.unwrap();
        }
        store.append(vec![msg("Cold", 0, &cold[1])]).await.unwrap();
        store.wait_dispatched().await.unwrap();

        // The hot queue reached the threshold: written (by the dispatcher) and synced. The
        // cold one has two entries: never written, named at 0, replayed from its first record.
        store.checkpoint_with(Sweep::Partial).await.unwrap();
        let index_entries = checkpointed_index_entries(&mem, "/p").await;
        let stats = store.stats();
        assert_eq!(stats.cq_unsynced_entries, 2, "{stats:?}");
        assert!(stats.checkpoint_replay_behind_bytes > 0, "{stats:?}");
        assert!(mem.exists(Path::new("/p/consumequeue/Hot/0")).await.unwrap());
        assert!(!mem.exists(Path::new("/p/consumequeue/Cold")).await.unwrap(), "a light queue costs no file write");
        // Served from memory meanwhile.
        assert_eq!(bodies(&store, "Cold", 0).await, cold);
        assert_eq!(bodies(&store, "Hot", 0).await, hot);
        // Acknowledged after the checkpoint (in the synced log): their queue and index entries
        // exist only in memory until the next checkpoint.
        let late: Vec<String> = (0..3).map(|i| format!("late-{i}")).collect();
        for b in &late {
            store.append(vec![msg("Late", 0, b)]).await.unwrap();
        }
        store.wait_dispatched().await.unwrap();

        // Power loss: every write not synced is gone. The log is synced (SYNC_FLUSH), the cold
        // queue's entries only ever lived in memory.
        mem.crash(CrashOdds { keep_pct: 0, torn_pct: 0 }, &mut |_| 0);
        let (store, report) = Store::open(mem.clone(), cfg.clone()).await.unwrap();
        assert!(report.abnormal);
        assert!(report.scanned_from < report.log_end && report.records_replayed >= 2, "{report:?}");
        assert_eq!(bodies(&store, "Cold", 0).await, cold, "rebuilt from the log");
        assert_eq!(bodies(&store, "Hot", 0).await, hot, "records already in their queue are skipped, not appended twice");
        assert_eq!(store.queue_offsets("Hot", QueueId(0)).1, QueueOffset(10));
        assert_eq!(bodies(&store, "Late", 0).await, late, "rebuilt past the checkpoint's dispatch point");
        // Keys of records replayed below the dispatch point are found once, and so are those of
        // records past it (the index is recovered to the last record: `messageIndexSafe`).
        for k in cold.iter().chain(&hot).chain(&late) {
            let topic = if k.starts_with("cold") {
                "Cold"
            } else if k.starts_with("late") {
                "Late"
            } else {
                "Hot"
            };
            let found = ferromq_store::index::query(&store, topic, k, 16, 0, i64::MAX).await.unwrap();
            assert_eq!(found.len(), 1, "{k}");
        }
        // The open's checkpoint is thorough: nothing is left to replay.
        assert_eq!(store.stats().cq_unsynced_entries, 0);
        store.close().await.unwrap();
        // Replay added no index entry twice: those of records below the dispatch point were
        // in the index files already (queries above deduplicate, so only the count tells); the
        // late records' entries were added once each.
        assert_eq!(checkpointed_index_entries(&mem, "/p").await, index_entries + late.len() as u32);
        let (store, report) = Store::open(mem.clone(), cfg.clone()).await.unwrap();
        assert!(!report.abnormal);
        assert_eq!(report.records_replayed, 0, "{report:?}");
        assert_eq!(bodies(&store, "Cold", 0).await, cold);
        store.close().await.unwrap();
    });
}

/// `close` writes and syncs its final checkpoint's files several at a time (an eighth of the
/// descriptor budget, here 32): every light queue's entries, held only in memory until then,
/// survive a power loss right after it, with nothing to replay.
#[test]
fn close_syncs_every_light_queue_with_several_files_in_flight() {
    block_on(async {
        const QUEUES: u32 = 120;
        let mem = MemStorage::new();
        let mut cfg = config("/c");
        cfg.cq_flush_least_entries = 1_000;
        cfg.max_open_cq_files = 256;
        let (store, _) = Store::open(mem.clone(), cfg.clone()).await.unwrap();
        let body = |q: u32, i: u32| format!("q{q}-{i}");
        for i in 0..3 {
            for q in 0..QUEUES {
                store.append(vec![msg(&format!("T{}", q / 8), q % 8, &body(q, i))]).await.unwrap();
            }
        }
        store.wait_dispatched().await.unwrap();
        assert_eq!(store.stats().cq_unsynced_entries, 3 * u64::from(QUEUES));
        store.close().await.unwrap();
        mem.crash(CrashOdds { keep_pct: 0, torn_pct: 0 }, &mut |_| 0);
        let (store, report) = Store::open(mem.clone(), cfg.clone()).await.unwrap();
        assert!(!report.abnormal, "{report:?}");
        assert_eq!(report.records_replayed, 0, "{report:?}");
        for q in 0..QUEUES {
            let expected: Vec<String> = (0..3).map(|i| body(q, i)).collect();
            assert_eq!(bodies(&store, &format!("T{}", q / 8), q % 8).await, expected, "queue {q}");
        }
        store.close().await.unwrap();
    });
}

#[test]
fn unsynced_entries_in_memory_are_bounded() {
    block_on(async {
        use ferromq_store::io::faulty::{Fault, FaultyStorage};
        let st = FaultyStorage::new(MemStorage::new());
        let mut cfg = config("/b");
        cfg.cq_flush_least_entries = 1_000;
        cfg.cq_max_unsynced_entries = 8;
        // 40 queues of one entry each: above twice the bound the dispatcher waits for a
        // checkpoint, which the bound makes thorough. Slow opens make each such checkpoint
        // slower than the appends, which the dispatcher would otherwise keep taking.
        let (store, _) = Store::open(st.clone(), cfg.clone()).await.unwrap();
        st.faults().add(Fault::SlowOpens { ms: 5 });
        for q in 0..40 {
            store.append(vec![msg("Wide", q, &format!("w{q}"))]).await.unwrap();
            // Twice the bound, plus one round of at most the bound (these batches hold one record).
            assert!(store.stats().cq_unsynced_entries <= 3 * 8, "{:?}", store.stats());
        }
        store.wait_dispatched().await.unwrap();
        let stats = store.stats();
        assert!(stats.thorough_checkpoints >= 2, "{stats:?}");
        assert!(stats.cq_unsynced_entries <= 3 * 8, "{stats:?}");
        for q in 0..40 {
            assert_eq!(bodies(&store, "Wide", q).await, vec![format!("w{q}")]);
        }
        store.close().await.unwrap();
    });
}

#[test]
fn retention_keeps_the_log_a_crash_would_replay() {
    use ferromq_store::io::faulty::{Fault, FaultyStorage};
    // A power loss at every operation of a retention pass, in turn: whatever the pass got
    // through, recovery finds the cold queue's entry (a partial checkpoint left it unsynced,
    // pointing into the oldest segment) or the segment it points into.
    let mut crash_at = 1;
    loop {
        let done = block_on(async {
            let mem = MemStorage::new();
            let st = FaultyStorage::new(mem.clone());
            let mut cfg = config("/r");
            cfg.cq_flush_least_entries = 1_000;
            let (store, _) = Store::open(st.clone(), cfg.clone()).await.unwrap();
            store.append(vec![msg("Cold", 0, "cold-0")]).await.unwrap();
            for i in 0..40 {
                store.append(vec![msg("Bulk", 0, &format!("b{i}-{}", "y".repeat(200)))]).await.unwrap();
            }
            store.wait_dispatched().await.unwrap();
            store.checkpoint_with(Sweep::Partial).await.unwrap();
            assert!(store.stats().checkpoint_replay_behind_bytes > 0);
            st.faults().add(Fault::CrashAt(st.faults().ops() + crash_at));
            let now = ferromq_store::store::now_ms();
            let out = store.run_retention(now + 73 * 3_600_000, 4, false).await;
            let finished = out.as_ref().is_ok_and(|o| o.segments_deleted > 0);
            store.abandon().await;
            mem.crash(CrashOdds { keep_pct: 0, torn_pct: 0 }, &mut |_| 0);
            st.faults().clear();
            let (store, _) = Store::open(st.clone(), cfg.clone()).await.unwrap();
            let (min, max) = store.queue_offsets("Cold", QueueId(0));
            assert_eq!(max, QueueOffset(1), "crash at op {crash_at}: the cold queue keeps its end");
            // Its record is served, or its segment is gone (retention got that far).
            let r = store.get_message("Cold", QueueId(0), min, 1, &TagFilter::All).await.unwrap();
            match r.status {
                PullStatus::Found => {
                    let recs = store.read_range(r.ranges[0]).await.unwrap();
                    assert_eq!(record::decode_body_strict(&recs).unwrap()[0].body, b"cold-0", "crash at op {crash_at}");
                }
                PullStatus::MessageWasRemoving | PullStatus::OffsetTooSmall => {}
                PullStatus::OffsetOverflowOne | PullStatus::NoMessageInQueue if min == max => {}
                other => panic!("crash at op {crash_at}: {other:?}"),
            }
            assert_eq!(store.queue_offsets("Bulk", QueueId(0)).1, QueueOffset(40));
            store.close().await.unwrap();
            finished
        });
        if done {
            break;
        }
        crash_at += 1;
        assert!(crash_at < 10_000, "the retention pass never completed");
    }
    assert!(crash_at > 3, "the pass took only {crash_at} operations");
}
