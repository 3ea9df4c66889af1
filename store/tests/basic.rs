//! End-to-end behaviour of one store on the in-memory and the real (compio) storage.

use ferromq_store::io::{Storage, StorageFile};
use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::io::mem::MemStorage;
use ferromq_store::record::{self, MessageInput, Properties};
use ferromq_store::test_support::block_on;
use ferromq_store::{FlushMode, PullStatus, QueueId, QueueOffset, Store, StoreConfig, TagFilter};

fn msg(topic: &str, q: u32, body: &str, tag: Option<&str>, keys: Option<&str>) -> MessageInput {
    let mut p = Properties::new();
    if let Some(t) = tag {
        p.insert("TAGS", t);
    }
    if let Some(k) = keys {
        p.insert("KEYS", k);
    }
    MessageInput::simple(topic, QueueId(q), body.as_bytes().to_vec(), &p)
}

async fn pull_bodies<S: Storage>(store: &Store<S>, topic: &str, q: u32, from: u64, n: u32) -> (Vec<String>, ferromq_store::PullResult) {
    let r = store.get_message(topic, QueueId(q), QueueOffset(from), n, &TagFilter::All).await.unwrap();
    let mut out = Vec::new();
    for range in &r.ranges {
        let bytes = store.read_range(*range).await.unwrap();
        let recs = record::decode_body_strict(&bytes).unwrap();
        for rec in recs {
            out.push(String::from_utf8(rec.body.to_vec()).unwrap());
        }
    }
    (out, r)
}

async fn roundtrip<S: Storage>(storage: S, cfg: StoreConfig) {
    let (store, report) = Store::open(storage.clone(), cfg.clone()).await.unwrap();
    assert!(!report.abnormal);
    let mut expect = Vec::new();
    for i in 0..200 {
        let body = format!("message-{i}-{}", "x".repeat(i % 50));
        let r = store.append(vec![msg("T", 1, &body, Some(if i % 2 == 0 { "even" } else { "odd" }), Some(&format!("k{i}")))]).await.unwrap();
        assert_eq!(r.queue_offset, QueueOffset(i as u64));
        expect.push(body);
    }
    // A batch lands contiguously with consecutive queue offsets.
    let batch: Vec<_> = (0..5).map(|i| msg("T", 1, &format!("batch-{i}"), None, None)).collect();
    let r = store.append(batch).await.unwrap();
    assert_eq!(r.queue_offset, QueueOffset(200));
    assert_eq!(r.message_count, 5);
    expect.extend((0..5).map(|i| format!("batch-{i}")));
    store.wait_dispatched().await.unwrap();
    let stats = store.stats();
    assert!(stats.segments_created > 1, "tiny segments must roll: {stats:?}");
    assert_eq!(stats.max_flushes_in_flight, 1);

    let mut got = Vec::new();
    let mut off = 0;
    loop {
        let (bodies, r) = pull_bodies(&store, "T", 1, off, 32).await;
        if r.status != PullStatus::Found {
            assert_eq!(r.status, PullStatus::OffsetOverflowOne);
            break;
        }
        got.extend(bodies);
        off = r.next_begin_offset.0;
    }
    assert_eq!(got, expect);

    // Tag filter by hash.
    let even = TagFilter::Codes(vec![record::java_string_hash("even")]);
    let r = store.get_message("T", QueueId(1), QueueOffset(0), 4, &even).await.unwrap();
    assert_eq!(r.message_count, 4);
    assert_eq!(r.next_begin_offset, QueueOffset(7), "filtered entries are consumed");

    // Status cases of §6.3.
    let r = store.get_message("T", QueueId(1), QueueOffset(10_000), 4, &TagFilter::All).await.unwrap();
    assert_eq!((r.status, r.next_begin_offset), (PullStatus::OffsetOverflowBadly, QueueOffset(205)));
    let r = store.get_message("nope", QueueId(0), QueueOffset(0), 4, &TagFilter::All).await.unwrap();
    assert_eq!(r.status, PullStatus::NoMatchedLogicQueue);
    let none = TagFilter::Codes(vec![12345]);
    let r = store.get_message("T", QueueId(1), QueueOffset(0), 4, &none).await.unwrap();
    assert_eq!(r.status, PullStatus::NoMatchedMessage);
    assert!(r.next_begin_offset.0 > 0);

    // Index and timestamp search.
    let now = ferromq_store::store::now_ms();
    let hits = ferromq_store::index::query(&store, "T", "k17", 10, 0, now + 1000).await.unwrap();
    assert_eq!(hits.len(), 1);
    let rec = store.read_record(hits[0]).await.unwrap();
    let v = record::decode_record(&rec, true).unwrap();
    assert_eq!(v.queue_offset, 17);
    assert_eq!(store.search_offset_by_timestamp("T", QueueId(1), 0, false).await.unwrap(), QueueOffset(0));
    assert_eq!(store.search_offset_by_timestamp("T", QueueId(1), now + 100_000, false).await.unwrap(), QueueOffset(205));
    assert!(store.earliest_store_time("T", QueueId(1)).await.unwrap() > 0);

    store.close().await.unwrap();

    // Clean reopen: everything is still there, no replay needed beyond the checkpoint.
    let (store, report) = Store::open(storage, cfg).await.unwrap();
    assert!(!report.abnormal);
    assert_eq!(store.queue_offsets("T", QueueId(1)), (QueueOffset(0), QueueOffset(205)));
    let (bodies, _) = pull_bodies(&store, "T", 1, 200, 32).await;
    assert_eq!(bodies, (0..5).map(|i| format!("batch-{i}")).collect::<Vec<_>>());
    let r = store.append(vec![msg("T", 1, "after-reopen", None, None)]).await.unwrap();
    assert_eq!(r.queue_offset, QueueOffset(205));
    // Every key is found after a clean reopen (the active file's slots are rebuilt from its
    // checkpointed entries; its slot table on disk is written only when the file is sealed).
    for i in 0..200 {
        let hits = ferromq_store::index::query(&store, "T", &format!("k{i}"), 10, 0, i64::MAX / 2).await.unwrap();
        assert_eq!(hits.len(), 1, "k{i}");
    }
    store.close().await.unwrap();
}

#[test]
fn roundtrip_in_memory() {
    block_on(roundtrip(MemStorage::new(), StoreConfig::test_min("/s")));
}

#[test]
fn roundtrip_on_disk_sync_flush() {
    let dir = tempdir("rt-sync");
    let mut cfg = StoreConfig::test_min(&dir);
    cfg.segment_size_bytes = 16 * 1024;
    block_on(roundtrip(CompioStorage, cfg));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn roundtrip_on_disk_async_flush() {
    let dir = tempdir("rt-async");
    let mut cfg = StoreConfig::test_min(&dir);
    cfg.flush_mode = FlushMode::Async;
    block_on(roundtrip(CompioStorage, cfg));
    let _ = std::fs::remove_dir_all(&dir);
}

/// ASYNC_FLUSH timed (`flushCommitLogTimed`, the default) syncs on the timer only: however many
/// bytes are dirty, nothing is synced before the interval, and what is dirty is synced once it
/// passes. Untimed, the log is synced as soon as `flush_least_bytes` are dirty. (A loaded
/// machine can only make a sync late, never early.)
#[test]
fn async_flush_timed_syncs_on_the_timer_and_untimed_once_enough_is_dirty() {
    use std::time::{Duration, Instant};
    for timed in [true, false] {
        block_on(async move {
            let interval = Duration::from_millis(if timed { 1_000 } else { 600_000 });
            let mut cfg = StoreConfig::test_min("/t");
            cfg.segment_size_bytes = 1 << 20;
            cfg.flush_mode = FlushMode::Async;
            cfg.flush_timed = timed;
            cfg.flush_interval_ms = interval.as_millis() as u64;
            cfg.flush_least_bytes = 1024;
            // A checkpoint makes the log durable as far as it names (its own timer): not here.
            cfg.checkpoint_interval_ms = 600_000;
            let opened = Instant::now();
            let (store, _) = Store::open(MemStorage::new(), cfg).await.unwrap();
            // 16 KiB dirty: sixteen times flush_least_bytes.
            for i in 0..64 {
                store.append(vec![msg("T", i % 4, &"d".repeat(256), None, None)]).await.unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while store.stats().log_syncs == 0 {
                assert!(Instant::now() < deadline, "timed {timed}: 16 KiB dirty and never synced");
                compio::time::sleep(Duration::from_millis(20)).await;
            }
            if timed {
                assert!(opened.elapsed() >= interval, "timed: synced {:?} after opening, before the interval", opened.elapsed());
            }
            store.close().await.unwrap();
        });
    }
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ferromq-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn retention_deletes_expired_segments_but_never_the_active_one() {
    block_on(async {
        let mem = MemStorage::new();
        let (store, _) = Store::open(mem.clone(), StoreConfig::test_min("/r")).await.unwrap();
        for i in 0..120 {
            store.append(vec![msg("T", 0, &format!("m{i}-{}", "y".repeat(200)), None, Some(&format!("k{i}")))]).await.unwrap();
        }
        store.wait_dispatched().await.unwrap();
        let segs_before = mem.list_dir(std::path::Path::new("/r/commitlog")).await.unwrap().len();
        assert!(segs_before > 3);
        let now = ferromq_store::store::now_ms();
        // Not the deletion hour, disk not full: nothing happens.
        let out = store.run_retention(now + 100 * 3_600_000, 5, false).await.unwrap();
        assert!(!out.ran);
        // Nothing is old enough yet.
        let out = store.run_retention(now, 4, false).await.unwrap();
        assert_eq!(out.segments_deleted, 0);
        // 73 hours later at 04:00: every segment but the active one goes (batch max 10).
        let out = store.run_retention(now + 73 * 3_600_000, 4, false).await.unwrap();
        assert!(out.segments_deleted > 0);
        let segs_after = mem.list_dir(std::path::Path::new("/r/commitlog")).await.unwrap();
        assert_eq!(segs_after.len(), (segs_before - out.segments_deleted).max(1));
        assert!(!segs_after.is_empty(), "the active segment stays");
        let (min, max) = store.queue_offsets("T", QueueId(0));
        assert!(min.0 > 0 && max.0 == 120, "min {min:?} max {max:?}");
        assert!(out.cq_files_deleted > 0);
        let r = store.get_message("T", QueueId(0), QueueOffset(0), 4, &TagFilter::All).await.unwrap();
        assert_eq!(r.status, PullStatus::OffsetTooSmall);
        assert_eq!(r.next_begin_offset, min);
        let (bodies, r) = pull_bodies(&store, "T", 0, min.0, 4).await;
        assert_eq!(r.status, PullStatus::Found);
        assert!(bodies[0].starts_with(&format!("m{}-", min.0)));
        // Appends continue, and the store reopens from the retained files.
        store.append(vec![msg("T", 0, "after", None, None)]).await.unwrap();
        store.close().await.unwrap();
        let (store, _) = Store::open(mem.clone(), StoreConfig::test_min("/r")).await.unwrap();
        assert_eq!(store.queue_offsets("T", QueueId(0)), (min, QueueOffset(121)));
        store.close().await.unwrap();
    });
}

#[test]
fn forced_clean_up_reports_what_it_destroys_and_counts_it() {
    block_on(async {
        let mem = MemStorage::new();
        // The in-memory disk reports 0 % used: ratios of 0 make every pass run, and run forced.
        let cfg = StoreConfig { disk_space_clean_forcibly_ratio_pct: 0, disk_max_used_space_ratio_pct: 0, ..StoreConfig::test_min("/forced") };
        // Written with the default ratios: at 0 % the flusher's own usage readings would wake
        // the retention task while the segments are still being written.
        let (store, _) = Store::open(mem.clone(), StoreConfig::test_min("/forced")).await.unwrap();
        for i in 0..90 {
            let (topic, q) = [("A", 0), ("A", 1), ("B", 3)][i % 3];
            store.append(vec![msg(topic, q, &format!("m{i}-{}", "z".repeat(200)), None, Some(&format!("k{i}")))]).await.unwrap();
        }
        store.close().await.unwrap();
        let (store, _) = Store::open(mem.clone(), cfg.clone()).await.unwrap();
        let now = ferromq_store::store::now_ms();
        // Nothing has expired (72 h retention), it is not the deletion hour, and nobody consumed
        // anything: only the nearly full disk deletes.
        let out = store.run_retention(now, 5, false).await.unwrap();
        assert!(out.ran && out.segments_deleted > 0, "{out:?}");
        let forced = out.forced.clone().expect("a forced clean-up is reported");
        assert_eq!(forced.segments, out.segments_deleted);
        assert_eq!(forced.log_range.0, 0);
        assert_eq!(forced.log_range.1, store.min_log_offset().0);
        assert!(forced.client_range.is_some_and(|(a, b)| b - a == forced.log_range.1 as i64 - forced.log_range.0 as i64), "{forced:?}");
        // Exactly the entries whose records went: each queue's new minimum.
        let mut expected = std::collections::BTreeMap::new();
        for (topic, q) in [("A", QueueId(0)), ("A", QueueId(1)), ("B", QueueId(3))] {
            let min = store.queue_offsets(topic, q).0.0;
            assert!(min > 0);
            expected.entry(topic.to_owned()).or_insert_with(std::collections::BTreeMap::new).insert(q, min);
        }
        assert_eq!(forced.entries, expected);
        let stats = store.stats();
        assert_eq!(stats.forced_cleanups, 1);
        assert_eq!(stats.forced_segments_deleted, forced.segments as u64);
        assert_eq!(stats.forced_entries_deleted, forced.total_entries());
        store.close().await.unwrap();

        // Expired segments deleted at the deletion hour are not forced deletions.
        let cfg = StoreConfig::test_min("/expired");
        let (store, _) = Store::open(mem.clone(), cfg).await.unwrap();
        for i in 0..60 {
            store.append(vec![msg("A", 0, &format!("m{i}-{}", "z".repeat(200)), None, None)]).await.unwrap();
        }
        store.wait_dispatched().await.unwrap();
        let out = store.run_retention(now + 73 * 3_600_000, 4, false).await.unwrap();
        assert!(out.segments_deleted > 0 && out.forced.is_none(), "{out:?}");
        assert_eq!(store.stats().forced_cleanups, 0);
        store.close().await.unwrap();
    });
}

#[test]
fn fault_injection_fails_the_log_and_recovery_keeps_acknowledged_data() {
    use ferromq_store::io::faulty::{Fault, FaultyStorage};
    for fault_kind in 0..3 {
        block_on(async move {
            let mem = MemStorage::new();
            let st = FaultyStorage::new(mem.clone());
            let (store, _) = Store::open(st.clone(), StoreConfig::test_min("/f")).await.unwrap();
            let mut acked = Vec::new();
            for i in 0..10 {
                acked.push(store.append(vec![msg("T", 0, &format!("ok{i}"), None, None)]).await.unwrap().queue_offset);
            }
            let next = st.faults().ops() + 1;
            st.faults().add(match fault_kind {
                0 => Fault::FailOp(next),
                1 => Fault::TornWrite { op: next, keep_bytes: 30 },
                _ => Fault::FailOp(next + 1),
            });
            // The next append's write (or sync) fails: the append errors and the log refuses more.
            let r = store.append(vec![msg("T", 0, "doomed", None, None)]).await;
            assert!(r.is_err(), "kind {fault_kind}: a failed flush must not acknowledge");
            let r2 = store.append(vec![msg("T", 0, "after", None, None)]).await;
            assert!(matches!(r2, Err(ferromq_store::StoreError::LogFailed(_))), "kind {fault_kind}: {r2:?}");
            assert!(st.faults().injected() > 0);
            store.abandon().await;
            st.faults().clear();
            let (store, report) = Store::open(st.clone(), StoreConfig::test_min("/f")).await.unwrap();
            assert!(report.abnormal);
            for q in acked {
                let (b, _) = pull_bodies(&store, "T", 0, q.0, 1).await;
                assert_eq!(b, vec![format!("ok{}", q.0)]);
            }
            store.close().await.unwrap();
        });
    }
}

#[test]
fn read_errors_surface_as_errors() {
    use ferromq_store::io::faulty::{Fault, FaultyStorage};
    block_on(async {
        let st = FaultyStorage::new(MemStorage::new());
        let (store, _) = Store::open(st.clone(), StoreConfig::test_min("/e")).await.unwrap();
        store.append(vec![msg("T", 0, "x", None, None)]).await.unwrap();
        store.wait_dispatched().await.unwrap();
        // Synced: the entry is read from its file (unsynced ones are served from memory).
        store.checkpoint().await.unwrap();
        st.faults().add(Fault::ReadErrorsFrom(st.faults().ops() + 1));
        assert!(store.get_message("T", QueueId(0), QueueOffset(0), 1, &TagFilter::All).await.is_err());
        st.faults().clear();
        assert_eq!(store.get_message("T", QueueId(0), QueueOffset(0), 1, &TagFilter::All).await.unwrap().status, PullStatus::Found);
        store.close().await.unwrap();
    });
}

#[test]
fn forced_backend_is_the_one_running() {
    let rt = ferromq_store::test_support::runtime().unwrap();
    if let Some(t) = ferromq_store::test_support::requested_backend() {
        assert_eq!(rt.driver_type(), t, "FERROMQ_IO_BACKEND was not honoured");
    }
}

#[test]
fn group_commit_batches_concurrent_writers_with_one_flush_in_flight() {
    let dir = tempdir("group");
    let mut cfg = StoreConfig::test_min(&dir);
    cfg.segment_size_bytes = 1 << 20;
    cfg.max_flush_batch_bytes = 256 * 1024;
    let d2 = dir.clone();
    block_on(async move {
        let (store, _) = Store::open(CompioStorage, cfg).await.unwrap();
        let writers = 64;
        let per_writer = 10;
        let start = std::time::Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let store = store.clone();
            tasks.push(compio::runtime::spawn(async move {
                for i in 0..per_writer {
                    store.append(vec![msg("G", w % 4, &format!("{w}-{i}-{}", "z".repeat(900)), None, None)]).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed();
        let s = store.stats();
        println!(
            "{} appends by {writers} writers in {elapsed:?}: {} fdatasyncs, {:.0} bytes/sync, max in flight {}",
            s.appends, s.log_syncs, s.mean_bytes_per_sync(), s.max_flushes_in_flight
        );
        assert_eq!(s.max_flushes_in_flight, 1);
        assert!(s.log_syncs < s.appends / 2, "group commit did not batch: {s:?}");
        store.close().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&d2);
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncate,
    ZeroFill,
    GarbageBody,
    OverwrittenTotalSize,
}

const DAMAGES: [Damage; 4] = [Damage::Truncate, Damage::ZeroFill, Damage::GarbageBody, Damage::OverwrittenTotalSize];

/// The segment under `<root>/commitlog` holding the record whose body contains `needle`, and
/// where that record starts in it.
async fn record_holding(mem: &MemStorage, root: &str, needle: &[u8]) -> (std::path::PathBuf, usize) {
    let log = std::path::Path::new(root).join("commitlog");
    let mut segments: Vec<_> = mem.list_dir(&log).await.unwrap();
    segments.sort();
    segments
        .iter()
        .find_map(|name| {
            let path = log.join(name);
            let bytes = mem.file_bytes(&path)?;
            let body_at = bytes.windows(needle.len()).position(|w| w == needle)?;
            // Walk the batches' records from the segment start to the one holding it (a
            // commit marker is skipped by its length, as a record is).
            let mut pos = 0usize;
            loop {
                let total = i32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
                if pos + total > body_at {
                    return Some((path, pos));
                }
                pos += total;
            }
        })
        .unwrap_or_else(|| panic!("{:?} is stored", String::from_utf8_lossy(needle)))
}

/// Damages the record starting at `at` of `path` (its body is `body`).
async fn apply_damage(mem: &MemStorage, path: &std::path::Path, at: usize, body: &[u8], damage: Damage) {
    match damage {
        Damage::Truncate => {
            let f = mem.open(path, false).await.unwrap();
            f.set_len(at as u64 + 10).await.unwrap();
        }
        Damage::ZeroFill => assert!(mem.corrupt(path, at as u64, &[0u8; 40])),
        Damage::GarbageBody => {
            let bytes = mem.file_bytes(path).unwrap();
            let body_at = at + bytes[at..].windows(body.len()).position(|w| w == body).unwrap();
            assert!(mem.corrupt(path, body_at as u64, b"XXXX"));
        }
        Damage::OverwrittenTotalSize => assert!(mem.corrupt(path, at as u64, &9999i32.to_be_bytes())),
    }
}

/// Every record of `topic`:0 the store serves, by queue offset, pulling past refused ones;
/// every byte served decodes (CRCs included). Also the queue offsets whose pull was refused.
async fn served_records<S: Storage>(store: &Store<S>, topic: &str, end: u64) -> (Vec<(u64, String)>, Vec<u64>) {
    let (mut served, mut refused) = (Vec::new(), Vec::new());
    let mut off = 0;
    while off < end {
        match store.get_message(topic, QueueId(0), QueueOffset(off), 32, &TagFilter::All).await {
            Ok(r) if r.status == PullStatus::Found => {
                let mut at = off;
                for range in &r.ranges {
                    let bytes = store.read_range(*range).await.unwrap();
                    for m in record::decode_body_strict(&bytes).unwrap() {
                        served.push((at, String::from_utf8_lossy(m.body).into_owned()));
                        at += 1;
                    }
                }
                off = r.next_begin_offset.0;
            }
            Ok(r) if r.status == PullStatus::OffsetOverflowOne => break,
            Ok(r) => panic!("{topic} pull at {off}: {:?}", r.status),
            Err(ferromq_store::StoreError::Damaged { .. } | ferromq_store::StoreError::LostRecord { .. }) => {
                refused.push(off);
                off += 1;
            }
            Err(e) => panic!("{topic} pull at {off}: {e}"),
        }
    }
    (served, refused)
}

/// Damage done to the log while the store was closed (cleanly, or abandoned as by kill -9 after
/// a checkpoint): it opens, reports each damaged range with its file, refuses every read that
/// touches one (the pull that starts there fails; one that reaches it stops before it), and
/// serves everything else, the other queue's records in the same segment included.
#[test]
fn damage_found_at_open_is_reported_and_never_served() {
    for clean in [true, false] {
        for damage in DAMAGES {
            block_on(async move {
                let mem = MemStorage::new();
                let cfg = StoreConfig::test_min("/d");
                let (store, _) = Store::open(mem.clone(), cfg.clone()).await.unwrap();
                for i in 0..20 {
                    store.append(vec![msg("A", 0, &format!("a-{i:02}-payload"), None, None)]).await.unwrap();
                    store.append(vec![msg("B", 0, &format!("b-{i:02}-payload"), None, None)]).await.unwrap();
                }
                store.wait_dispatched().await.unwrap();
                store.checkpoint().await.unwrap();
                if clean {
                    store.close().await.unwrap();
                } else {
                    store.abandon().await;
                }
                let (path, at) = record_holding(&mem, "/d", b"a-15-payload").await;
                apply_damage(&mem, &path, at, b"a-15", damage).await;

                let (store, report) = Store::open(mem.clone(), cfg.clone()).await.unwrap_or_else(|e| panic!("{damage:?} (clean {clean}): {e}"));
                assert!(!report.damaged.is_empty(), "{damage:?} (clean {clean}): damage not found");
                assert!(report.damaged.iter().all(|d| d.path == path), "{:?}", report.damaged);
                // A: records before 15 are served, the pull stops before the damage, a pull at
                // the damage fails with it.
                let before = store.get_message("A", QueueId(0), QueueOffset(10), 32, &TagFilter::All).await.unwrap();
                assert_eq!(before.status, PullStatus::Found);
                assert_eq!(before.message_count, 5, "{damage:?}: a-10..a-14 then stop");
                match store.get_message("A", QueueId(0), QueueOffset(15), 32, &TagFilter::All).await {
                    Err(ferromq_store::StoreError::Damaged { path: p, .. }) => assert_eq!(p, path),
                    other => panic!("{damage:?} (clean {clean}): a pull at the damaged record must fail, got {other:?}"),
                }
                // B is served wherever its records are intact; every byte served decodes.
                let (served, _) = served_records(&store, "B", 20).await;
                assert!(served.len() >= 15, "{damage:?} (clean {clean}): B served {} of 20", served.len());
                if !matches!(damage, Damage::Truncate) {
                    assert_eq!(served.len(), 20, "{damage:?} (clean {clean}): B's records are intact and must all be served");
                }
                // New appends still work.
                store.append(vec![msg("B", 0, "after", None, None)]).await.unwrap();
                store.close().await.unwrap();
            });
        }
    }
}

/// Issue 10: damage in the part of the log a crash recovery replays (above the last
/// checkpoint, followed by batches synced after it) no longer stops the start. Recovery
/// records it, replays every batch after it, and keeps the damaged records' queue offsets as
/// lost entries: the records after them keep the offsets clients were told, reads of the lost
/// ones fail (also after later restarts), and nothing else is lost. (Record a-15 ends the first
/// 4 KiB segment, so a truncated file is followed by the next segment's durable batches: damage
/// too. A truncation of the last segment looks exactly like a torn tail and is cut as one.)
#[test]
fn damage_in_the_crash_replay_window_is_skipped_and_its_queue_offsets_stay_lost() {
    for damage in DAMAGES {
        block_on(async move {
            let mem = MemStorage::new();
            // No checkpoint after the one `open` writes: every record below is replayed.
            let cfg = StoreConfig { checkpoint_interval_ms: 3_600_000, ..StoreConfig::test_min("/w") };
            let (store, _) = Store::open(mem.clone(), cfg.clone()).await.unwrap();
            for i in 0..20 {
                store.append(vec![msg("A", 0, &format!("a-{i:02}-payload"), None, None)]).await.unwrap();
                store.append(vec![msg("B", 0, &format!("b-{i:02}-payload"), None, None)]).await.unwrap();
            }
            store.abandon().await;
            let (path, at) = record_holding(&mem, "/w", b"a-15-payload").await;
            apply_damage(&mem, &path, at, b"a-15", damage).await;

            let (store, report) = Store::open(mem.clone(), cfg.clone()).await.unwrap_or_else(|e| panic!("{damage:?}: recovery refused: {e}"));
            assert!(report.abnormal && report.records_replayed >= 30, "{damage:?}: {report:?}");
            let (a, a_refused) = served_records(&store, "A", 20).await;
            let (b, b_refused) = served_records(&store, "B", 20).await;
            let expected = |topic: &str, range: std::ops::Range<u64>| -> Vec<(u64, String)> {
                range.map(|i| (i, format!("{}-{i:02}-payload", topic.to_lowercase()))).collect()
            };
            assert_eq!(report.damaged.len(), 1, "{damage:?}: {:?}", report.damaged);
            assert!(report.damaged[0].path == path && report.damaged[0].offset <= at as u64 + 4096, "{:?}", report.damaged);
            // A's record 15 (and any record that shared its batch) is refused; every other
            // record keeps its queue offset.
            assert!(a_refused.contains(&15), "{damage:?}: refused {a_refused:?}");
            let a_lost: Vec<u64> = (0..20).filter(|i| !a.iter().any(|(at, _)| at == i)).collect();
            assert_eq!(a_lost, a_refused, "{damage:?}: every record not served is refused");
            assert_eq!(a, expected("A", 0..20).into_iter().filter(|(i, _)| !a_refused.contains(i)).collect::<Vec<_>>());
            assert_eq!(b, expected("B", 0..20).into_iter().filter(|(i, _)| !b_refused.contains(i)).collect::<Vec<_>>());
            assert!(a_refused.len() + b_refused.len() <= 2, "{damage:?}: only the damaged batch is lost: A {a_refused:?}, B {b_refused:?}");
            // New appends continue the queues.
            store.append(vec![msg("A", 0, "a-20-payload", None, None)]).await.unwrap();
            store.wait_dispatched().await.unwrap();

            // The lost entries stay lost, on a clean restart and after another crash.
            let mut store = store;
            for clean in [true, false] {
                if clean {
                    store.close().await.unwrap();
                } else {
                    store.abandon().await;
                }
                let (reopened, _) = Store::open(mem.clone(), cfg.clone()).await.unwrap_or_else(|e| panic!("{damage:?} (clean {clean}): {e}"));
                let (again, refused) = served_records(&reopened, "A", 21).await;
                assert_eq!(refused, a_refused, "{damage:?} (clean {clean})");
                assert_eq!(again.len(), 21 - a_refused.len(), "{damage:?} (clean {clean})");
                assert_eq!(again.last().map(|(i, _)| *i), Some(20));
                store = reopened;
            }
            store.close().await.unwrap();
        });
    }
}

/// Issue 10, item 2: running out of descriptors or disk space stalls the log (appends refused
/// with `Stalled`), never fails it; once the cause is gone it resumes by itself, and every
/// acknowledged append — before, during and after — is readable exactly once, also after a
/// reopen.
#[test]
fn transient_faults_stall_the_log_and_it_resumes_without_loss() {
    use ferromq_store::StoreError;
    use ferromq_store::io::faulty::{Fault, FaultyStorage, OpClass};
    for (on, errno) in [(OpClass::Write, libc::ENOSPC), (OpClass::Open, libc::EMFILE)] {
        block_on(async move {
            let mem = MemStorage::new();
            let st = FaultyStorage::new(mem.clone());
            let (store, _) = Store::open(st.clone(), StoreConfig::test_min("/t")).await.unwrap();
            let mut acked: Vec<String> = Vec::new();
            let mut n = 0;
            let mut send = async |store: &Store<FaultyStorage<MemStorage>>, acked: &mut Vec<String>| {
                n += 1;
                let body = format!("m{n}-{}", "y".repeat(200));
                let r = store.append(vec![msg("T", (n % 3) as u32, &body, None, Some(&format!("k{n}")))]).await;
                if r.is_ok() {
                    acked.push(body);
                }
                r
            };
            for _ in 0..20 {
                send(&store, &mut acked).await.unwrap();
            }
            st.faults().add(Fault::Errno { on, errno });
            // Keep sending until the fault bites (a roll needs an open; every write needs space).
            let mut refused = 0;
            for _ in 0..200 {
                match send(&store, &mut acked).await {
                    Ok(_) => {}
                    Err(StoreError::Stalled(why) | StoreError::StalledQueued(why)) => {
                        assert!(why.contains("os error"), "{on:?}: the remark names the OS error: {why}");
                        refused += 1;
                        if refused >= 5 {
                            break;
                        }
                    }
                    Err(e) => panic!("{on:?}: a transient fault must stall the log, not {e:?}"),
                }
            }
            assert!(refused >= 5, "{on:?}: the fault never stalled the log");
            assert!(store.stats().stalls >= 1 && store.stats().transient_faults >= 1, "{:?}", store.stats());
            // The cause goes away: the log resumes on its own.
            st.faults().clear();
            let mut resumed = false;
            for _ in 0..200 {
                compio::time::sleep(std::time::Duration::from_millis(20)).await;
                if send(&store, &mut acked).await.is_ok() {
                    resumed = true;
                    break;
                }
            }
            assert!(resumed, "{on:?}: the log did not resume after the fault cleared");
            for _ in 0..30 {
                send(&store, &mut acked).await.unwrap();
            }
            store.wait_dispatched().await.unwrap();
            store.checkpoint().await.unwrap();
            let check = async |store: &Store<FaultyStorage<MemStorage>>| {
                let mut stored = Vec::new();
                for q in 0..3 {
                    let mut from = 0;
                    loop {
                        let (bodies, r) = pull_bodies(store, "T", q, from, 32).await;
                        if r.status != PullStatus::Found {
                            break;
                        }
                        from = r.next_begin_offset.0;
                        stored.extend(bodies);
                    }
                }
                for body in &acked {
                    assert_eq!(stored.iter().filter(|b| *b == body).count(), 1, "{on:?}: acknowledged {body} stored once");
                }
            };
            check(&store).await;
            store.close().await.unwrap();
            let (store, _) = Store::open(st.clone(), StoreConfig::test_min("/t")).await.unwrap();
            check(&store).await;
            store.close().await.unwrap();
        });
    }
}

/// A dispatch round whose records interleave several queues (concurrent appends), one of them
/// new, meets EMFILE creating that queue's directory part way through: the round is dispatched
/// again once the fault clears, and every queue holds each of its records once, in order.
#[test]
fn a_dispatch_round_that_fails_part_way_is_dispatched_again_without_loss_or_duplicates() {
    use ferromq_store::io::faulty::{Fault, FaultyStorage, OpClass};
    block_on(async {
        let mem = MemStorage::new();
        let st = FaultyStorage::new(mem.clone());
        let (store, _) = Store::open(st.clone(), StoreConfig::test_min("/t")).await.unwrap();
        let body = |q: u32, i: u32| format!("q{q}-{i}-{}", "z".repeat(100));
        // Queues 0 and 1 have their files; queue 2 has none yet.
        for q in 0..2 {
            store.append(vec![msg("T", q, &body(q, 0), None, None)]).await.unwrap();
        }
        store.wait_dispatched().await.unwrap();
        st.faults().add(Fault::Errno { on: OpClass::Open, errno: libc::EMFILE });
        // One round: q0, q1, q2, q0, q1, q2, ... (the appends run together, one batch).
        let mut tasks = Vec::new();
        for i in 1..=6 {
            for q in 0..3 {
                let (store, body) = (store.clone(), body(q, i));
                tasks.push(compio::runtime::spawn(async move { store.append(vec![msg("T", q, &body, None, None)]).await }));
            }
        }
        // An append waiting on the stalled dispatcher may be told so (its record is stored or
        // not); an acknowledged one must be stored.
        let mut acked = Vec::new();
        for (n, task) in tasks.into_iter().enumerate() {
            let (i, q) = (n as u32 / 3 + 1, n as u32 % 3);
            match task.await.unwrap() {
                Ok(_) => acked.push((q, i)),
                Err(ferromq_store::StoreError::Stalled(_) | ferromq_store::StoreError::StalledQueued(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        // The dispatcher stalls on queue 2's directory, then resumes once the fault clears
        // (up to 5 s for the stall to show: a loaded CI machine).
        for _ in 0..500 {
            if store.stats().stalls > 0 {
                break;
            }
            compio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(store.stats().stalls > 0, "the dispatcher never met the fault: {:?}", store.stats());
        st.faults().clear();
        let mut dispatched = false;
        for _ in 0..250 {
            if store.wait_dispatched().await.is_ok() {
                dispatched = true;
                break;
            }
            compio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(dispatched, "the dispatcher did not resume: {:?}", store.stats());
        for q in 0..3 {
            let (bodies, _) = pull_bodies(&store, "T", q, 0, 32).await;
            // In order, each once, and every acknowledged one.
            let all: Vec<String> = (0..=6).map(|i| body(q, i)).collect();
            let mut at = 0;
            for b in &bodies {
                let found = all.iter().skip(at).position(|x| x == b);
                assert!(found.is_some(), "queue {q}: {b} out of order or twice in {bodies:?}");
                at += found.unwrap_or_default() + 1;
            }
            for &(_, i) in acked.iter().filter(|(aq, _)| *aq == q) {
                assert!(bodies.contains(&body(q, i)), "queue {q}: acknowledged {i} lost");
            }
            if q < 2 {
                assert!(bodies.contains(&body(q, 0)), "queue {q}: the record before the fault");
            }
        }
        store.close().await.unwrap();
    });
}

/// A failed fdatasync is not retried even when its errno is a "transient" one: the kernel may
/// have dropped the pages it could not write, so the log fails loudly (recovery on reopen).
#[test]
fn failed_fdatasync_fails_the_log_even_with_enospc() {
    use ferromq_store::StoreError;
    use ferromq_store::io::faulty::{Fault, FaultyStorage, OpClass};
    block_on(async {
        let st = FaultyStorage::new(MemStorage::new());
        let (store, _) = Store::open(st.clone(), StoreConfig::test_min("/s")).await.unwrap();
        store.append(vec![msg("T", 0, "ok", None, None)]).await.unwrap();
        st.faults().add(Fault::Errno { on: OpClass::Sync, errno: libc::ENOSPC });
        assert!(store.append(vec![msg("T", 0, "doomed", None, None)]).await.is_err());
        let r = store.append(vec![msg("T", 0, "after", None, None)]).await;
        assert!(matches!(r, Err(StoreError::LogFailed(_))), "{r:?}");
        store.abandon().await;
    });
}

/// The control text of [`ExternalFaults`]: one `class=ERRNO` per line, unnamed classes
/// cleared, anything else refused with the plan left as it was.
#[test]
fn external_fault_plan_is_applied_and_cleared() {
    use ferromq_store::io::faulty::{ExternalFaults, FaultyStorage, OpClass};
    let faults = std::sync::Arc::new(ExternalFaults::default());
    faults.apply("open=EMFILE\nwrite = ENOSPC\n").unwrap();
    assert_eq!(faults.errno(OpClass::Open), Some(libc::EMFILE));
    assert_eq!(faults.errno(OpClass::Write), Some(libc::ENOSPC));
    assert_eq!(faults.errno(OpClass::Sync), None);
    assert!(faults.apply("read=EIO").is_err());
    assert!(faults.apply("open=EAGAIN").is_err());
    assert_eq!(faults.errno(OpClass::Open), Some(libc::EMFILE), "a bad plan changes nothing");
    let st = FaultyStorage::with_external(MemStorage::new(), Some(faults.clone()));
    block_on(async {
        st.inner().create_dir_all(std::path::Path::new("/d")).await.unwrap();
        let e = st.open(std::path::Path::new("/d/x"), true).await.expect_err("open fails");
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
        faults.apply("").unwrap();
        st.open(std::path::Path::new("/d/x"), true).await.expect("open works once cleared");
    });
}

/// Issue 10, item 4: the flusher reads the disk usage as it writes (every quarter segment, at
/// most 4 MiB, and at every new segment), so writes stop near `diskSpaceWarningLevelRatio`
/// without waiting for the 10 s retention pass; once space is freed they resume within a
/// second or two.
#[test]
fn disk_usage_is_read_on_the_write_path() {
    use ferromq_store::StoreError;
    block_on(async {
        let mem = MemStorage::new();
        let (store, _) = Store::open(mem.clone(), StoreConfig::test_min("/d")).await.unwrap();
        store.append(vec![msg("T", 0, "first", None, None)]).await.unwrap();
        mem.set_disk_usage_ratio(0.995);
        let mut refused = None;
        for i in 0..200 {
            match store.append(vec![msg("T", 0, &format!("m{i}-{}", "z".repeat(100)), None, None)]).await {
                Ok(_) => {}
                Err(e) => {
                    refused = Some((i, e));
                    break;
                }
            }
        }
        let (after, e) = refused.expect("writes stop once the disk is nearly full");
        assert!(matches!(e, StoreError::DiskFull { .. }), "{e:?}");
        // test_min: 4 KiB segments, so a check every 1 KiB: a handful of appends, not 10 s.
        assert!(after <= 12, "refused only after {after} appends");
        mem.set_disk_usage_ratio(0.5);
        let started = std::time::Instant::now();
        loop {
            if store.append(vec![msg("T", 0, "again", None, None)]).await.is_ok() {
                break;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(5), "writes did not resume after space was freed");
            compio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        store.close().await.unwrap();
    });
}

/// A dispatcher slower than the writes — every consume-queue reopen waits 20 ms, and one
/// descriptor serves eight queues — is a bounded backlog: once `max_dispatch_behind_bytes` of
/// the log waits for it, appends are refused (`DispatchBehind`, SYSTEM_BUSY at the broker), and
/// once it has caught up they are taken again; every acknowledged record reads back.
#[test]
fn a_slow_dispatcher_is_a_bounded_backlog() {
    use ferromq_store::StoreError;
    use ferromq_store::io::faulty::{Fault, FaultyStorage};
    block_on(async {
        let storage = FaultyStorage::new(MemStorage::new());
        let mut cfg = StoreConfig::test_min("/s");
        cfg.flush_mode = FlushMode::Async;
        cfg.max_open_cq_files = 1;
        cfg.max_pending_bytes = 4096;
        cfg.max_dispatch_behind_bytes = 16 * 1024;
        let (store, _) = Store::open(storage.clone(), cfg).await.unwrap();
        storage.faults().add(Fault::SlowOpens { ms: 20 });
        let mut acked = [0u64; 8];
        let mut refused = None;
        for i in 0..5_000u32 {
            let q = i % 8;
            match store.append(vec![msg("T", q, &format!("{i:0>200}"), None, None)]).await {
                Ok(r) => {
                    assert_eq!(r.queue_offset.0, acked[q as usize]);
                    acked[q as usize] += 1;
                }
                Err(StoreError::DispatchBehind { behind_bytes, limit_bytes }) => {
                    refused = Some((behind_bytes, limit_bytes));
                    break;
                }
                Err(e) => panic!("append {i}: {e}"),
            }
        }
        let (behind, limit) = refused.expect("appends outran a dispatcher that opens a file every 20 ms, and were never refused");
        assert!(behind <= limit && limit == 16 * 1024, "{behind} of {limit}");
        storage.faults().clear();
        store.wait_dispatched().await.unwrap();
        let r = store.append(vec![msg("T", 0, "after", None, None)]).await.expect("taken again once dispatched");
        assert_eq!(r.queue_offset.0, acked[0]);
        acked[0] += 1;
        store.wait_dispatched().await.unwrap();
        for (q, &count) in acked.iter().enumerate() {
            let mut read = 0;
            while read < count {
                let (bodies, _) = pull_bodies(&store, "T", q as u32, read, 32).await;
                assert!(!bodies.is_empty(), "queue {q}: {read} of {count}");
                read += bodies.len() as u64;
            }
            assert_eq!(read, count, "queue {q}");
        }
        store.close().await.unwrap();
    });
}
