//! Deleting a topic (DELETE_TOPIC_IN_BROKER): its consume queues and index entries go, a topic
//! created again under the same name starts empty at queue offset 0, and neither a crash nor a
//! clean restart brings the old queues back — including records of the old topic that were
//! still in flight when it was deleted and that recovery replays from the log.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use ferromq_store::io::Storage;
use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::io::mem::{CrashOdds, MemStorage};
use ferromq_store::record::{self, MessageInput, Properties};
use ferromq_store::test_support::block_on;
use ferromq_store::{PullStatus, QueueId, QueueOffset, Store, StoreConfig, StoreError, TagFilter};

fn msg(topic: &str, q: u32, body: &str, key: &str) -> MessageInput {
    let mut p = Properties::new();
    p.insert("KEYS", key);
    MessageInput::simple(topic, QueueId(q), body.as_bytes().to_vec(), &p)
}

fn cfg(root: &str) -> StoreConfig {
    // No periodic checkpoint in the way: the only checkpoints are the ones the test names.
    StoreConfig { checkpoint_interval_ms: 3_600_000, ..StoreConfig::test_min(root) }
}

async fn bodies<S: Storage>(store: &Store<S>, topic: &str, q: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut off = store.queue_offsets(topic, QueueId(q)).0.0;
    loop {
        let r = store.get_message(topic, QueueId(q), QueueOffset(off), 32, &TagFilter::All).await.unwrap();
        if r.status != PullStatus::Found {
            return out;
        }
        for range in &r.ranges {
            for rec in record::decode_body_strict(&store.read_range(*range).await.unwrap()).unwrap() {
                out.push(String::from_utf8(rec.body.to_vec()).unwrap());
            }
        }
        off = r.next_begin_offset.0;
    }
}

async fn by_key<S: Storage>(store: &Store<S>, topic: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for offset in ferromq_store::index::query(store, topic, key, 64, 0, i64::MAX).await.unwrap() {
        let rec = store.read_record(offset).await.unwrap();
        out.push(String::from_utf8(record::decode_record(&rec, false).unwrap().body.to_vec()).unwrap());
    }
    out
}

/// What the deleted topic must look like: nothing of the old incarnation anywhere.
async fn assert_old_gone<S: Storage>(store: &Store<S>, when: &str) {
    for q in 0..2 {
        let (min, max) = store.queue_offsets("T", QueueId(q));
        assert_eq!((min.0, max.0), (0, 0), "{when}: queue {q} of the deleted topic must be empty");
        let r = store.get_message("T", QueueId(q), QueueOffset(0), 32, &TagFilter::All).await.unwrap();
        assert_ne!(r.status, PullStatus::Found, "{when}: a pull must find nothing");
    }
    assert!(by_key(store, "T", "old").await.is_empty(), "{when}: a query by key must not find old messages");
    // The other topic is untouched.
    assert_eq!(bodies(store, "Other", 0).await, vec!["keep-0", "keep-1"], "{when}");
}

/// Delete, then crash (only synced bytes survive) and a clean restart: the old queues stay
/// gone, a record of the old topic still in flight at the deletion is never dispatched (not
/// live, not on replay), and the topic created again starts at queue offset 0.
/// `replayed_at_least`: records recovery must replay (the in-memory file system completes the
/// deletion before the flusher writes the in-flight record, so both it and the new record are
/// replayed; on disk the timing varies).
async fn delete_then_crash_and_restart<S: Storage>(storage: S, crash: impl Fn(), root: &str, replayed_at_least: u64) {
    let (store, _) = Store::open(storage.clone(), cfg(root)).await.unwrap();
    for i in 0..20 {
        let r = store.append(vec![msg("T", i % 2, &format!("old-{i}"), "old")]).await.unwrap();
        assert_eq!(r.queue_offset.0, u64::from(i / 2));
    }
    for i in 0..2 {
        store.append(vec![msg("Other", 0, &format!("keep-{i}"), "keep")]).await.unwrap();
    }
    store.wait_dispatched().await.unwrap();
    assert_eq!(store.queue_offsets("T", QueueId(0)).1.0, 10);
    assert_eq!(by_key(&store, "T", "old").await.len(), 20);

    // One more record of the old topic, appended (offsets assigned) but not yet flushed or
    // dispatched when the deletion starts: it lies below the fence, past the dispatch point
    // the deletion's checkpoint records, so recovery replays it.
    {
        let mut in_flight = pin!(store.append(vec![msg("T", 0, "old-in-flight", "old")]));
        assert!(matches!(in_flight.as_mut().poll(&mut Context::from_waker(Waker::noop())), Poll::Pending));

        let deleted = store.delete_topic("T").await.unwrap();
        assert_eq!(deleted.queues, 2);
        assert_eq!(deleted.entries, 20);
        let r = in_flight.await.unwrap();
        assert_eq!(r.queue_offset.0, 10, "assigned before the deletion");
    }
    store.wait_dispatched().await.unwrap();
    assert_old_gone(&store, "after the deletion").await;
    assert!(store.queues().iter().all(|(t, _)| t != "T"), "{:?}", store.queues());

    // The topic again, under the same name: queue offsets restart at 0.
    let r = store.append(vec![msg("T", 0, "new-0", "new")]).await.unwrap();
    assert_eq!(r.queue_offset.0, 0);
    store.wait_dispatched().await.unwrap();
    assert_eq!(bodies(&store, "T", 0).await, vec!["new-0"]);
    assert_eq!(by_key(&store, "T", "new").await, vec!["new-0"]);
    assert!(by_key(&store, "T", "old").await.is_empty());

    // Crash: no checkpoint since the deletion's; recovery replays the in-flight old record and
    // the new one.
    store.abandon().await;
    crash();
    let (store, report) = Store::open(storage.clone(), cfg(root)).await.unwrap();
    assert!(report.abnormal);
    assert!(report.records_replayed >= replayed_at_least, "{report:?}");
    assert_eq!(store.queue_offsets("T", QueueId(0)).1.0, 1, "only the new record after the crash");
    assert_eq!(bodies(&store, "T", 0).await, vec!["new-0"]);
    assert_eq!(store.queue_offsets("T", QueueId(1)).1.0, 0);
    assert!(by_key(&store, "T", "old").await.is_empty(), "after the crash: a query by key must not find old messages");
    assert_eq!(bodies(&store, "Other", 0).await, vec!["keep-0", "keep-1"]);
    let r = store.append(vec![msg("T", 1, "new-1", "new")]).await.unwrap();
    assert_eq!(r.queue_offset.0, 0);
    store.close().await.unwrap();

    // Clean restart.
    let (store, report) = Store::open(storage.clone(), cfg(root)).await.unwrap();
    assert!(!report.abnormal);
    assert_eq!(bodies(&store, "T", 0).await, vec!["new-0"]);
    assert_eq!(bodies(&store, "T", 1).await, vec!["new-1"]);
    assert!(by_key(&store, "T", "old").await.is_empty());

    // Deleting again, then a clean restart with nothing re-created.
    store.delete_topic("T").await.unwrap();
    store.close().await.unwrap();
    let (store, _) = Store::open(storage, cfg(root)).await.unwrap();
    assert_old_gone(&store, "after a second deletion and a restart").await;
    assert!(store.queues().iter().all(|(t, _)| t != "T"), "{:?}", store.queues());
    store.close().await.unwrap();
}

#[test]
fn deleted_topic_stays_deleted_across_crash_and_restart_in_memory() {
    block_on(async {
        let mem = MemStorage::new();
        let crash_mem = mem.clone();
        let crash = move || crash_mem.crash(CrashOdds { keep_pct: 0, torn_pct: 0 }, &mut |_| 0);
        delete_then_crash_and_restart(mem, crash, "/del", 2).await;
    });
}

#[test]
fn deleted_topic_stays_deleted_across_crash_and_restart_on_disk() {
    let dir = std::env::temp_dir().join(format!("ferromq-delete-topic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    block_on(delete_then_crash_and_restart(CompioStorage, || {}, dir.to_str().unwrap(), 1));
    // The deleted topic's consume-queue directory is gone from disk; the other topic's stays.
    assert!(!dir.join("consumequeue").join("T").exists());
    assert!(dir.join("consumequeue").join("Other").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn appends_wait_while_the_deletion_is_made_durable() {
    block_on(async {
        let mem = MemStorage::new();
        let (store, _) = Store::open(mem.clone(), cfg("/busy")).await.unwrap();
        store.append(vec![msg("T", 0, "old", "k")]).await.unwrap();
        {
            let mut deleting = pin!(store.delete_topic("T"));
            assert!(matches!(deleting.as_mut().poll(&mut Context::from_waker(Waker::noop())), Poll::Pending));
            // The fence is set but not yet durable: the topic refuses appends, others do not.
            let refused = store.append(vec![msg("T", 0, "too-early", "k")]).await;
            assert!(matches!(refused, Err(StoreError::TopicDeleting(ref t)) if t == "T"), "{refused:?}");
            store.append(vec![msg("U", 0, "fine", "k")]).await.unwrap();
            deleting.await.unwrap();
        }
        assert_eq!(store.append(vec![msg("T", 0, "new", "k")]).await.unwrap().queue_offset.0, 0);
        // A topic this store never held: nothing to do, no fence.
        assert_eq!(store.delete_topic("Never").await.unwrap().queues, 0);
        store.append(vec![msg("Never", 0, "x", "k")]).await.unwrap();
        store.close().await.unwrap();
    });
}
