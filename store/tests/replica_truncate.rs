//! A replica holding bytes its master no longer has (an ASYNC master that crashed before
//! syncing a tail it had already sent) cuts its log back to the master's end
//! (`Store::truncate_replica`), then copies what the master writes there instead, ending up
//! byte for byte the new master's; nothing it dropped is served, located or found by key,
//! before or after a crash of the replica at any step; a point that is no batch boundary is
//! refused and changes nothing.

mod replica_common;

use ferromq_store::index;
use ferromq_store::io::Storage;
use ferromq_store::io::faulty::{Fault, FaultyStorage};
use ferromq_store::io::mem::{CrashOdds, MemStorage};
use ferromq_store::test_support::block_on;
use ferromq_store::{CommitLogOffset, FlushMode, QueueId, ReplicaFramer, ReplicaUnit, Store, StoreError};
use replica_common::*;

async fn hits<S: Storage>(store: &Store<S>, i: usize) -> Vec<CommitLogOffset> {
    index::query(store, topic_of(i).0, &body(i), 16, 0, i64::MAX / 2).await.unwrap()
}

/// A small deterministic stream of "random" numbers for the crash model.
fn lcg(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed;
    move |bound| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % bound.max(1)
    }
}

/// The master writes A, the replica copies all of it, the master crashes and comes back
/// without the tail of A it never synced, then writes B at those offsets: the replica cuts
/// back to the master's end, takes B, and is the new master's exact copy; what it dropped is
/// found by no query, even once B's records lie at the same offsets.
#[test]
fn replica_truncates_to_a_master_that_lost_its_tail_then_copies_the_new_bytes() {
    block_on(async {
        let (mem_m, mem_r) = (MemStorage::new(), MemStorage::new());
        let (master, _) = Store::open(mem_m.clone(), lossy_master_cfg()).await.unwrap();
        let (replica, _) = Store::open(mem_r.clone(), replica_cfg(FlushMode::Sync)).await.unwrap();

        // A: synced up to a point early in a segment, then a tail that stays in that segment.
        let mut n = 0;
        while n < 40 || master.write_offset().0 % SEGMENT > 1200 {
            produce(&master, n, n + 1).await;
            n += 1;
        }
        master.flush().await.unwrap();
        let synced_end = master.write_offset().0;
        let mut tail = Vec::new();
        for i in n..n + 5 {
            let (topic, q) = topic_of(i);
            // Short bodies: the tail stays in the segment (a roll would sync it).
            let r = master.append(vec![msg(topic, q, format!("tail{i}"))]).await.unwrap();
            tail.push((i, r));
        }
        master.wait_dispatched().await.unwrap();
        let lost_end = master.write_offset().0;
        assert_eq!(synced_end / SEGMENT, (lost_end - 1) / SEGMENT, "the lost tail must stay in one segment");

        let mut framer = ReplicaFramer::new(replica.replica_next_offset(), SEGMENT);
        copy(&master, &replica, &mut framer, &[333, 32 * 1024]).await;
        assert_eq!(replica.replica_next_offset(), lost_end);
        replica.wait_dispatched().await.unwrap();
        for (i, r) in &tail {
            let found = index::query(&replica, topic_of(*i).0, &format!("tail{i}"), 16, 0, i64::MAX / 2).await.unwrap();
            assert_eq!(found, vec![r.offset], "before the truncation the replica finds tail{i}");
        }

        // The master crashes: every unsynced write is lost.
        master.abandon().await;
        mem_m.crash(CrashOdds { keep_pct: 0, torn_pct: 0 }, &mut |_| 0);
        let (master, _) = Store::open(mem_m.clone(), lossy_master_cfg()).await.unwrap();
        let w = master.written_offset().0;
        assert_eq!(w, synced_end, "the master came back at its last sync");
        assert!(w < replica.replica_next_offset());

        let report = replica.truncate_replica(w).await.unwrap();
        assert_eq!((report.from, report.to, report.bytes), (lost_end, w, lost_end - w));
        assert_eq!(report.records, tail.len() as u64);
        assert_eq!(report.queue_entries, tail.len() as u64);
        assert_eq!(report.segments_removed, 0);
        assert_eq!(replica.replica_next_offset(), w);
        assert_eq!(replica.written_offset().0, w);
        assert_eq!(replica.dispatched_offset().0, w);
        assert_queues_below(&master, &replica, w, "after the truncation").await;
        for (i, r) in &tail {
            assert!(replica.read_record(r.offset).await.is_err(), "tail{i} is not served");
            let found = index::query(&replica, topic_of(*i).0, &format!("tail{i}"), 16, 0, i64::MAX / 2).await.unwrap();
            assert!(found.is_empty(), "tail{i} is found no more: {found:?}");
        }
        for i in 0..n {
            assert_eq!(hits(&replica, i).await.len(), 1, "m{i} is still found");
        }

        // B: new records at the lost offsets; one of them reuses a lost key.
        let mut b = Vec::new();
        for i in 1000..1012 {
            let (topic, q) = topic_of(i);
            let key = if i == 1000 { format!("tail{}", tail[0].0) } else { body(i) };
            let topic = if i == 1000 { topic_of(tail[0].0).0 } else { topic };
            b.push((key.clone(), topic, master.append(vec![msg(topic, q, key)]).await.unwrap()));
        }
        master.wait_dispatched().await.unwrap();
        assert!(b.iter().filter(|(_, _, r)| r.offset.0 < lost_end).count() > 1, "B lies at the lost offsets");
        let mut framer = ReplicaFramer::new(replica.replica_next_offset(), SEGMENT);
        copy(&master, &replica, &mut framer, &[100, 7, 32 * 1024]).await;
        assert_same_queues(&master, &replica, "after B").await;
        master.flush().await.unwrap();
        assert_eq!(segment_files(&mem_m, "/m"), segment_files(&mem_r, "/r"), "segment files are byte-identical");
        for (key, topic, r) in &b {
            let found = index::query(&replica, topic, key, 16, 0, i64::MAX / 2).await.unwrap();
            assert_eq!(found, vec![r.offset], "{key} is found once, at its new record");
            let (shard, local) = replica.offset_space().locate(r.client_offset).expect("the master's client offsets locate");
            assert_eq!(master.offset_space().locate(r.client_offset), Some((shard, local)));
            assert_eq!(master.read_record(local).await.unwrap(), replica.read_record(local).await.unwrap());
        }
        for (i, _) in tail.iter().skip(1) {
            let found = index::query(&replica, topic_of(*i).0, &format!("tail{i}"), 16, 0, i64::MAX / 2).await.unwrap();
            assert!(found.is_empty(), "tail{i} stays lost once B lies at its offset: {found:?}");
        }

        // And the replica's own restart keeps it that way.
        replica.close().await.unwrap();
        let (replica, _) = Store::open(mem_r.clone(), replica_cfg(FlushMode::Sync)).await.unwrap();
        assert_same_queues(&master, &replica, "after the replica's restart").await;
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}

/// Batch boundaries of the replica's log to truncate to: a segment base, a filler's position
/// (the end of a segment's last batch), the starts of batches mid-segment, the last batch.
fn boundaries(units: &[(u64, ReplicaUnit)]) -> Vec<u64> {
    let base = units.iter().map(|(s, _)| *s).find(|s| *s > 0 && s % SEGMENT == 0).expect("a segment base");
    let filler = units.iter().find(|(_, k)| *k == ReplicaUnit::SegmentEnd).map(|(s, _)| *s).expect("a filler");
    let mids: Vec<u64> = units.iter().map(|(s, _)| *s).filter(|s| s % SEGMENT > 500).collect();
    let mut out = vec![units.last().unwrap().0, mids[mids.len() / 2], filler, base, mids[1]];
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    out
}

/// Truncating to any batch boundary and copying the master again from there gives back the
/// master's log byte for byte (segment bases and mid-segment points, SYNC and ASYNC replicas).
#[test]
fn truncation_to_any_boundary_then_copying_again_gives_the_same_log() {
    for mode in [FlushMode::Sync, FlushMode::Async] {
        block_on(async {
            let (mem_m, mem_r) = (MemStorage::new(), MemStorage::new());
            let (master, _) = Store::open(mem_m.clone(), master_cfg()).await.unwrap();
            let (replica, _) = Store::open(mem_r.clone(), replica_cfg(mode)).await.unwrap();
            produce(&master, 0, 90).await;
            let end = master.written_offset().0;
            let mut framer = ReplicaFramer::new(0, SEGMENT);
            let units = copy(&master, &replica, &mut framer, &[513]).await;
            for to in boundaries(&units) {
                replica.replica_settle().await.unwrap();
                let report = replica.truncate_replica(to).await.unwrap();
                assert_eq!((report.from, report.to), (end, to), "{mode:?}");
                let removed = ((end - 1) / SEGMENT + 1).saturating_sub(to.div_ceil(SEGMENT));
                assert_eq!(report.segments_removed as u64, removed, "{mode:?}: segments removed truncating to {to}");
                assert_queues_below(&master, &replica, to, &format!("{mode:?}: truncated to {to}")).await;
                for i in 0..90 {
                    let on_master = hits(&master, i).await;
                    let want: Vec<CommitLogOffset> = on_master.into_iter().filter(|o| o.0 < to).collect();
                    assert_eq!(hits(&replica, i).await, want, "{mode:?}: m{i} after truncating to {to}");
                }
                let mut framer = ReplicaFramer::new(to, SEGMENT);
                copy(&master, &replica, &mut framer, &[100, 32 * 1024]).await;
                assert_same_queues(&master, &replica, &format!("{mode:?}: copied again from {to}")).await;
                replica.flush().await.unwrap();
                assert_eq!(segment_files(&mem_m, "/m"), segment_files(&mem_r, "/r"), "{mode:?}: segment files after copying again from {to}");
            }
            master.close().await.unwrap();
            replica.close().await.unwrap();
        });
    }
}

/// A point that is no batch boundary (inside a record, inside a marker, in a segment's
/// padding), past the end, or below the oldest segment is refused, and nothing changes.
#[test]
fn truncation_at_a_non_boundary_is_refused_and_changes_nothing() {
    block_on(async {
        let (mem_m, mem_r) = (MemStorage::new(), MemStorage::new());
        let (master, _) = Store::open(mem_m.clone(), master_cfg()).await.unwrap();
        let (replica, _) = Store::open(mem_r.clone(), replica_cfg(FlushMode::Sync)).await.unwrap();
        produce(&master, 0, 60).await;
        let mut framer = ReplicaFramer::new(0, SEGMENT);
        let units = copy(&master, &replica, &mut framer, &[4096]).await;
        let end = replica.replica_next_offset();
        let filler = units.iter().find(|(_, k)| *k == ReplicaUnit::SegmentEnd).map(|(s, _)| *s).unwrap();
        let mid = units.iter().map(|(s, _)| *s).filter(|s| s % SEGMENT > 500).nth(2).unwrap();
        replica.wait_dispatched().await.unwrap();
        let before = segment_files(&mem_r, "/r");
        for to in [mid + 1, mid + 8, mid - 8, mid - 1, filler + 8, filler + 100, end + 1] {
            let refused = replica.truncate_replica(to).await;
            assert!(matches!(refused, Err(StoreError::ReplicaMismatch(_))), "{to}: {refused:?}");
            assert_eq!(replica.replica_next_offset(), end, "{to}");
            assert_same_queues(&master, &replica, &format!("refused {to}")).await;
        }
        assert_eq!(segment_files(&mem_r, "/r"), before, "the refusals wrote nothing");
        // Not a replica.
        assert!(matches!(master.truncate_replica(mid).await, Err(StoreError::ReplicaMismatch(_))));
        // Truncating to the end changes nothing either.
        assert_eq!(replica.truncate_replica(end).await.unwrap().bytes, 0);
        // The store still works: a real boundary is taken.
        assert_eq!(replica.truncate_replica(mid).await.unwrap().to, mid);
        assert_queues_below(&master, &replica, mid, "after the boundary").await;
        master.close().await.unwrap();
        replica.close().await.unwrap();

        // Below the oldest segment of a replica that began mid-log.
        let (master, _) = Store::open(MemStorage::new(), master_cfg()).await.unwrap();
        let (replica, _) = Store::open(MemStorage::new(), replica_cfg(FlushMode::Sync)).await.unwrap();
        produce(&master, 0, 60).await;
        replica.replica_start_at(2 * SEGMENT).unwrap();
        let mut framer = ReplicaFramer::new(2 * SEGMENT, SEGMENT);
        copy(&master, &replica, &mut framer, &[4096]).await;
        let refused = replica.truncate_replica(SEGMENT).await;
        assert!(matches!(refused, Err(StoreError::ReplicaMismatch(_))), "{refused:?}");
        // Down to its oldest segment base: everything goes, and it copies it again.
        let report = replica.truncate_replica(2 * SEGMENT).await.unwrap();
        assert!(report.records > 0);
        assert_eq!(replica.replica_next_offset(), 2 * SEGMENT);
        let mut framer = ReplicaFramer::new(2 * SEGMENT, SEGMENT);
        copy(&master, &replica, &mut framer, &[4096]).await;
        replica.wait_dispatched().await.unwrap();
        for topic in TOPICS {
            for q in 0..2 {
                assert_eq!(replica.queue_offsets(topic, QueueId(q)).1, master.queue_offsets(topic, QueueId(q)).1, "{topic}:{q}");
            }
        }
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}

/// The replica's machine loses power right after `truncate_replica` returned: it comes back
/// truncated, not with the dropped records.
#[test]
fn a_crash_right_after_the_truncation_recovers_the_truncated_state() {
    block_on(async {
        let (mem_m, mem_r) = (MemStorage::new(), MemStorage::new());
        let (master, _) = Store::open(mem_m.clone(), master_cfg()).await.unwrap();
        let (mut replica, _) = Store::open(mem_r.clone(), replica_cfg(FlushMode::Async)).await.unwrap();
        produce(&master, 0, 90).await;
        let mut framer = ReplicaFramer::new(0, SEGMENT);
        let units = copy(&master, &replica, &mut framer, &[700]).await;
        for (seed, to) in boundaries(&units).into_iter().enumerate() {
            replica.replica_settle().await.unwrap();
            replica.truncate_replica(to).await.unwrap();
            replica.abandon().await;
            mem_r.crash(CrashOdds::default(), &mut lcg(seed as u64));
            let (reopened, recovery) = Store::open(mem_r.clone(), replica_cfg(FlushMode::Async)).await.unwrap();
            assert!(recovery.abnormal);
            assert_eq!(reopened.replica_next_offset(), to, "recovered to the truncation point");
            reopened.wait_dispatched().await.unwrap();
            assert_queues_below(&master, &reopened, to, &format!("recovered after truncating to {to}")).await;
            for i in 0..90 {
                let want: Vec<CommitLogOffset> = hits(&master, i).await.into_iter().filter(|o| o.0 < to).collect();
                assert_eq!(hits(&reopened, i).await, want, "m{i} after the crash at {to}");
            }
            let mut framer = ReplicaFramer::new(to, SEGMENT);
            copy(&master, &reopened, &mut framer, &[4096]).await;
            assert_same_queues(&master, &reopened, &format!("copied again from {to}")).await;
            replica = reopened;
        }
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}

/// The replica's machine loses power at every operation of a truncation in turn: it always
/// comes back either as it was before (and truncates again) or truncated, never refusing to
/// open, and then copies the master again to the same log.
#[test]
fn a_crash_at_any_step_of_the_truncation_leaves_the_old_or_the_truncated_log() {
    block_on(async {
        let mem_m = MemStorage::new();
        let (master, _) = Store::open(mem_m.clone(), master_cfg()).await.unwrap();
        produce(&master, 0, 70).await;
        master.flush().await.unwrap();
        let end = master.written_offset().0;
        let (mut old, mut new, mut completed_by_recovery) = (0, 0, 0);
        let mut completed = false;
        for k in 1..400u64 {
            let mem_r = MemStorage::new();
            let faulty = FaultyStorage::new(mem_r.clone());
            let (replica, _) = Store::open(faulty.clone(), replica_cfg(FlushMode::Sync)).await.unwrap();
            let mut framer = ReplicaFramer::new(0, SEGMENT);
            let units = copy(&master, &replica, &mut framer, &[4096]).await;
            // Two segments back, mid-segment: a removed segment, a zeroed tail, cut queues.
            let to = units.iter().map(|(s, _)| *s).rfind(|s| *s < end - 2 * SEGMENT && s % SEGMENT > 500).unwrap();
            replica.wait_dispatched().await.unwrap();
            faulty.faults().add(Fault::CrashAt(faulty.faults().ops() + k));
            let outcome = replica.truncate_replica(to).await;
            replica.abandon().await;
            mem_r.crash(CrashOdds::default(), &mut lcg(k));
            let (replica, recovery) = Store::open(mem_r.clone(), replica_cfg(FlushMode::Sync))
                .await
                .unwrap_or_else(|e| panic!("crash at operation {k} of the truncation: the replica does not open: {e}"));
            if let Some(at) = recovery.completed_truncation {
                assert_eq!(at, to);
                completed_by_recovery += 1;
            }
            replica.wait_dispatched().await.unwrap();
            let at = replica.replica_next_offset();
            if at == end {
                old += 1;
                assert!(outcome.is_err(), "a truncation that returned is durable (crash at operation {k})");
                assert_same_queues(&master, &replica, &format!("old log after a crash at operation {k}")).await;
                replica.truncate_replica(to).await.unwrap();
            } else {
                new += 1;
                assert_eq!(at, to, "crash at operation {k}");
            }
            assert_queues_below(&master, &replica, to, &format!("truncated after a crash at operation {k}")).await;
            let mut framer = ReplicaFramer::new(to, SEGMENT);
            copy(&master, &replica, &mut framer, &[4096]).await;
            assert_same_queues(&master, &replica, &format!("copied again after a crash at operation {k}")).await;
            replica.flush().await.unwrap();
            assert_eq!(segment_files(&mem_m, "/m"), segment_files(&mem_r, "/r"), "crash at operation {k}");
            replica.close().await.unwrap();
            if outcome.is_ok() {
                completed = true;
                break;
            }
        }
        assert!(completed, "the truncation never completed within the crash points tried");
        assert!(old > 0 && new > 0, "crashes left both states: old {old}, truncated {new}");
        assert!(completed_by_recovery > 0, "some crashes fell between the two checkpoints");
        master.close().await.unwrap();
    });
}

/// A master that lost an unsynced tail and then wrote *more* than it lost: its log is longer
/// than the replica's, so lengths alone (Java's protocol) would let the replica follow on at
/// its own end, in the middle of different bytes. The replica's resume points (the commit
/// markers of its last segment) tell the two apart: the master agrees only with a point at or
/// before its recovered end, and the replica, cut back there, ends up byte for byte the master.
#[test]
fn resume_points_tell_apart_a_master_that_wrote_more_than_it_lost() {
    block_on(async {
        let (mem_m, mem_r) = (MemStorage::new(), MemStorage::new());
        let (master, _) = Store::open(mem_m.clone(), lossy_master_cfg()).await.unwrap();
        let (replica, _) = Store::open(mem_r.clone(), replica_cfg(FlushMode::Sync)).await.unwrap();
        let mut n = 0;
        while n < 40 || master.write_offset().0 % SEGMENT > 1200 {
            produce(&master, n, n + 1).await;
            n += 1;
        }
        master.flush().await.unwrap();
        let synced_end = master.write_offset().0;
        for i in n..n + 5 {
            let (topic, q) = topic_of(i);
            master.append(vec![msg(topic, q, format!("tail{i}"))]).await.unwrap();
        }
        master.wait_dispatched().await.unwrap();
        let lost_end = master.write_offset().0;
        let mut framer = ReplicaFramer::new(0, SEGMENT);
        copy(&master, &replica, &mut framer, &[32 * 1024]).await;
        assert_eq!(replica.replica_next_offset(), lost_end);

        master.abandon().await;
        mem_m.crash(CrashOdds { keep_pct: 0, torn_pct: 0 }, &mut |_| 0);
        let (master, _) = Store::open(mem_m.clone(), lossy_master_cfg()).await.unwrap();
        assert_eq!(master.written_offset().0, synced_end);
        // More than was lost, at the same offsets and beyond.
        produce(&master, 2000, 2040).await;
        assert!(master.written_offset().0 > lost_end, "the master's log must now be the longer one");

        let points = replica.replica_resume_points(63).await.unwrap();
        assert_eq!(points.first().map(|p| p.end), Some(lost_end), "newest first: the replica's end");
        assert!(points.last().is_some_and(|p| p.marker.is_none() && p.end % SEGMENT == 0), "the last point is the segment base: {points:?}");
        let mut agreed = None;
        for p in &points {
            let matches = master.matches_resume_point(p).await.unwrap();
            if p.end > synced_end {
                assert!(!matches, "the master must not agree with the replica past its recovered end: {p:?}");
            }
            if matches && agreed.is_none() {
                agreed = Some(p.end);
            }
        }
        let agreed = agreed.expect("the segment base at least agrees");
        assert!(agreed <= synced_end);
        replica.truncate_replica(agreed).await.unwrap();
        let mut framer = ReplicaFramer::new(agreed, SEGMENT);
        copy(&master, &replica, &mut framer, &[500, 32 * 1024]).await;
        assert_same_queues(&master, &replica, "after following the longer master").await;
        master.flush().await.unwrap();
        assert_eq!(segment_files(&mem_m, "/m"), segment_files(&mem_r, "/r"), "segment files are byte-identical");
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}

/// Senders copy pull bodies through a per-thread cache of file blocks that knows bytes by the
/// shared descriptor they were read through, and only below its settled end (`net`'s
/// `FileSegment::settled_end`). A truncation makes the replica write other bytes where it had
/// some: the segment holding the cut must come with a new descriptor from then on, and the
/// settled end must follow the written end. On disk, where segments have descriptors.
#[test]
fn a_truncated_segment_is_shared_through_a_new_descriptor() {
    let dir = std::env::temp_dir().join(format!("ferromq-store-reshare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    block_on(async {
        use ferromq_store::LogRange;
        use ferromq_store::io::compio_fs::CompioStorage;
        let (master, _) = Store::open(MemStorage::new(), master_cfg()).await.unwrap();
        let cfg = ferromq_store::StoreConfig { replica: true, flush_mode: FlushMode::Sync, ..ferromq_store::StoreConfig::test_min(&dir) };
        let (replica, _) = Store::open(CompioStorage, cfg).await.unwrap();
        let mut n = 0;
        while n < 40 || master.write_offset().0 % SEGMENT < 1500 {
            produce(&master, n, n + 1).await;
            n += 1;
        }
        master.flush().await.unwrap();
        let mut framer = ReplicaFramer::new(replica.replica_next_offset(), SEGMENT);
        let units = copy(&master, &replica, &mut framer, &[32 * 1024]).await;
        let end = replica.written_offset().0;
        // A batch boundary inside the last segment, past its start.
        let to = units.iter().map(|(s, _)| *s).filter(|s| s / SEGMENT == (end - 1) / SEGMENT && s % SEGMENT > 0).min().expect("a boundary mid-segment");
        let earlier_offset = CommitLogOffset(to - to % SEGMENT - SEGMENT);
        let earlier = replica.log_file(LogRange { offset: earlier_offset, len: 1 }).unwrap();
        let before = replica.log_file(LogRange { offset: CommitLogOffset(to), len: 1 }).unwrap();
        assert_eq!(before.settled_end, end % SEGMENT, "settled up to the written end");
        replica.truncate_replica(to).await.unwrap();
        produce(&master, n, n + 1).await;
        master.flush().await.unwrap();
        let mut framer = ReplicaFramer::new(replica.replica_next_offset(), SEGMENT);
        copy(&master, &replica, &mut framer, &[32 * 1024]).await;
        let after = replica.log_file(LogRange { offset: CommitLogOffset(to), len: 1 }).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&before.file, &after.file), "the cut segment is shared through a new descriptor");
        assert_eq!(after.settled_end, replica.written_offset().0 - (to - to % SEGMENT));
        let earlier_after = replica.log_file(LogRange { offset: earlier_offset, len: 1 }).unwrap();
        assert!(std::sync::Arc::ptr_eq(&earlier.file, &earlier_after.file), "segments before the cut keep theirs");
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}
