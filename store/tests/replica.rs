//! A replica (a slave's store) follows its master byte for byte: the bytes a master's sender
//! reads, cut anywhere as the network may cut them, become the same segment files, the same
//! consume queues and the same client offsets on the replica; what the replica acknowledges
//! under SYNC_FLUSH survives a crash; a unit out of step or damaged changes nothing.

mod replica_common;

use ferromq_store::io::mem::{CrashOdds, MemStorage};
use ferromq_store::test_support::block_on;
use ferromq_store::{FlushMode, QueueId, ReplicaFramer, ReplicaUnit, Store, StoreError};
use replica_common::*;

/// The bodies of a queue's messages, in queue order.
async fn bodies<S: ferromq_store::io::Storage>(store: &Store<S>, topic: &str, q: u32) -> Vec<String> {
    records(store, topic, q).await.into_iter().map(|(_, body)| body).collect()
}

#[test]
fn replica_copies_the_master_byte_for_byte_and_keeps_what_it_acknowledged() {
    block_on(async {
        let (mem_m, mem_r) = (MemStorage::new(), MemStorage::new());
        let (master, _) = Store::open(mem_m.clone(), master_cfg()).await.unwrap();
        let (replica, _) = Store::open(mem_r.clone(), replica_cfg(FlushMode::Sync)).await.unwrap();

        let offsets = produce(&master, 0, 60).await;
        let mut framer = ReplicaFramer::new(replica.replica_next_offset(), 4096);
        // Network-sized cuts of every kind: 1 byte, odd sizes, whole 32 KiB transfer units.
        let units: Vec<ReplicaUnit> = copy(&master, &replica, &mut framer, &[1, 7, 333, 32 * 1024, 5, 1000]).await.into_iter().map(|(_, kind)| kind).collect();
        assert!(units.contains(&ReplicaUnit::SegmentEnd), "the test must roll segments: {units:?}");
        assert_eq!(replica.replica_next_offset(), master.written_offset().0);
        assert_eq!(replica.replica_acked_offset(), master.written_offset().0, "SYNC_FLUSH replica: acknowledged = durable");
        assert_same_queues(&master, &replica, "after the copy").await;
        master.flush().await.unwrap();
        assert_eq!(segment_files(&mem_m, "/m"), segment_files(&mem_r, "/r"), "segment files must be byte-identical");

        // Offsets clients got from the master name the same records on the replica.
        for offset in &offsets {
            let (shard, local) = replica.offset_space().locate(*offset).expect("the replica knows the master's client offsets");
            assert_eq!(master.offset_space().locate(*offset), Some((shard, local)));
            assert_eq!(master.read_record(local).await.unwrap(), replica.read_record(local).await.unwrap());
        }

        // A replica takes no local appends.
        let refused = replica.append(vec![msg("A", 0, "local".into())]).await;
        assert!(matches!(refused, Err(StoreError::Replica)), "{refused:?}");

        // More traffic, then the replica's machine loses power: only synced bytes survive, and
        // everything it acknowledged is among them.
        produce(&master, 60, 90).await;
        copy(&master, &replica, &mut framer, &[4096]).await;
        let acked = replica.replica_acked_offset();
        replica.abandon().await;
        mem_r.crash(CrashOdds::default(), &mut |b| b / 2);
        let (replica, report) = Store::open(mem_r.clone(), replica_cfg(FlushMode::Sync)).await.unwrap();
        assert!(report.abnormal);
        assert!(replica.replica_next_offset() >= acked, "recovered to {}, acknowledged {acked}", replica.replica_next_offset());
        assert_same_queues(&master, &replica, "after the replica's crash").await;

        // It follows on from where it is, across more segment rolls.
        produce(&master, 90, 140).await;
        let mut framer = ReplicaFramer::new(replica.replica_next_offset(), 4096);
        copy(&master, &replica, &mut framer, &[100, 32 * 1024]).await;
        assert_same_queues(&master, &replica, "after following on").await;
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}

#[test]
fn empty_replica_starts_at_the_masters_oldest_segment() {
    block_on(async {
        let (master, _) = Store::open(MemStorage::new(), master_cfg()).await.unwrap();
        let (replica, _) = Store::open(MemStorage::new(), replica_cfg(FlushMode::Async)).await.unwrap();
        produce(&master, 0, 80).await;
        // As if retention had deleted the master's first segments: start at the third one.
        let start = 2 * 4096;
        assert!(master.written_offset().0 > start + 4096, "the test needs more than three segments");
        replica.replica_start_at(start).unwrap();
        assert!(replica.replica_start_at(0).is_err(), "only an empty replica can be moved");
        let mut framer = ReplicaFramer::new(start, 4096);
        copy(&master, &replica, &mut framer, &[513]).await;
        replica.wait_dispatched().await.unwrap();
        for topic in ["A", "B", "C"] {
            for q in 0..2 {
                let (min, max) = replica.queue_offsets(topic, QueueId(q));
                assert_eq!(max, master.queue_offsets(topic, QueueId(q)).1, "{topic}:{q}");
                assert!(min.0 > 0, "{topic}:{q} begins mid-queue on the replica");
                let want: Vec<String> = bodies(&master, topic, q).await.split_off(min.0 as usize);
                assert_eq!(bodies(&replica, topic, q).await, want, "{topic}:{q}");
            }
        }
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}

#[test]
fn units_out_of_step_or_damaged_change_nothing() {
    block_on(async {
        let (master, _) = Store::open(MemStorage::new(), master_cfg()).await.unwrap();
        let (replica, _) = Store::open(MemStorage::new(), replica_cfg(FlushMode::Sync)).await.unwrap();
        produce(&master, 0, 3).await;
        let first = master.replication_bytes(0, 4096).await.unwrap().unwrap();

        // The framer refuses bytes that do not continue the stream.
        let mut framer = ReplicaFramer::new(0, 4096);
        assert!(matches!(framer.push(10, &first), Err(StoreError::ReplicaMismatch(_))));
        framer.push(0, &first).unwrap();
        let (at, unit) = framer.next_unit().unwrap().expect("a whole batch");

        // A unit that is not where the replica's log continues.
        let refused = replica.append_replica(at + 8, unit.clone()).await.map(|(kind, _)| kind);
        assert!(matches!(refused, Err(StoreError::ReplicaMismatch(_))), "{refused:?}");
        // A damaged unit (one body byte flipped: the marker's CRC no longer matches).
        let mut bad = unit.clone();
        let last_body_byte = bad.len() - 30;
        bad[last_body_byte] ^= 0xff;
        let refused = replica.append_replica(at, bad).await.map(|(kind, _)| kind);
        assert!(matches!(refused, Err(StoreError::Corruption { .. })), "{refused:?}");
        assert_eq!(replica.replica_next_offset(), 0, "nothing was taken");

        // The good unit still fits.
        let (kind, ack) = replica.append_replica(at, unit).await.unwrap();
        assert!(matches!(kind, ReplicaUnit::Batch { records: 1 }), "{kind:?}");
        ack.await.unwrap();
        assert!(replica.replica_acked_offset() > 0);
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}

#[test]
fn a_topic_the_master_deletes_and_recreates_is_deleted_on_the_replica_too() {
    block_on(async {
        let (master, _) = Store::open(MemStorage::new(), master_cfg()).await.unwrap();
        let (replica, _) = Store::open(MemStorage::new(), replica_cfg(FlushMode::Sync)).await.unwrap();
        produce(&master, 0, 12).await;
        let mut framer = ReplicaFramer::new(0, 4096);
        copy(&master, &replica, &mut framer, &[700]).await;
        assert_same_queues(&master, &replica, "before the deletion").await;

        // DELETE_TOPIC_IN_BROKER on the master, then the topic again: its queues restart at 0.
        master.delete_topic("A").await.unwrap();
        let r = master.append(vec![msg("A", 0, "A again".into())]).await.unwrap();
        assert_eq!(r.queue_offset.0, 0);
        produce(&master, 12, 20).await;

        // The replica refuses the first record of the new incarnation until it has deleted the
        // topic itself (durably), then takes it like the master did.
        let mut refusals = 0;
        loop {
            let mut framer = ReplicaFramer::new(replica.replica_next_offset(), 4096);
            let at = framer.next_offset();
            let Some(bytes) = master.replication_bytes(at, 4096).await.unwrap() else { break };
            framer.push(at, &bytes).unwrap();
            let mut refused = false;
            while let Some((start, unit)) = framer.next_unit().unwrap() {
                match replica.append_replica(start, unit).await {
                    Ok((_, ack)) => ack.await.unwrap(),
                    Err(StoreError::TopicDeleting(topic)) => {
                        assert_eq!(topic, "A");
                        refusals += 1;
                        refused = true;
                        break;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            if refused {
                assert!(refusals < 200, "the replica never finished deleting the topic");
                compio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        assert!(refusals > 0, "the recreated topic must have been noticed");
        assert_eq!(bodies(&replica, "A", 0).await.first().map(String::as_str), Some("A again"), "the new incarnation starts at 0");
        assert_same_queues(&master, &replica, "after the recreation").await;
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}

/// A SYNC_FLUSH replica takes its master's batches one by one; the ones queued together share
/// one fdatasync (group commit), or a replica could never keep up with a master that writes
/// more often than the disk syncs.
#[test]
fn a_sync_replica_group_commits_the_batches_it_takes() {
    block_on(async {
        let (mem_r, mem_m) = (MemStorage::new(), MemStorage::new());
        let (master, _) = Store::open(mem_m, master_cfg()).await.unwrap();
        let (replica, _) = Store::open(mem_r.clone(), replica_cfg(FlushMode::Sync)).await.unwrap();
        // Small bodies: 60 batches (one per awaited append) within one 4 KiB segment or two.
        for i in 0..60 {
            master.append(vec![msg("A", 0, format!("s{i}"))]).await.unwrap();
        }
        let syncs_before = mem_r.sync_count();
        let mut framer = ReplicaFramer::new(0, 4096);
        let units = copy(&master, &replica, &mut framer, &[64 * 1024]).await;
        let batches = units.iter().filter(|(_, u)| matches!(u, ReplicaUnit::Batch { .. })).count();
        let syncs = mem_r.sync_count() - syncs_before;
        assert!(batches >= 50, "{batches} batches");
        assert!(syncs * 5 < batches as u64, "{syncs} fdatasyncs for {batches} batches taken together: no group commit");
        assert_same_queues(&master, &replica, "after the group commit").await;
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}

/// A replica whose dispatcher is slower than its master's stream holds at most
/// `max_dispatch_behind_bytes` of undispatched log (plus the padding of one segment end): the
/// follower waits before taking more, so its stream stalls instead of the backlog growing, and
/// everything still arrives.
#[test]
fn a_slow_replica_dispatcher_holds_the_stream_back() {
    use ferromq_store::io::faulty::{Fault, FaultyStorage};
    block_on(async {
        let (master, _) = Store::open(MemStorage::new(), master_cfg()).await.unwrap();
        let storage = FaultyStorage::new(MemStorage::new());
        let limit = 8 * 1024;
        let cfg = ferromq_store::StoreConfig {
            max_open_cq_files: 1,
            max_pending_bytes: 4096,
            max_dispatch_behind_bytes: limit,
            ..replica_cfg(FlushMode::Async)
        };
        let (replica, _) = Store::open(storage.clone(), cfg).await.unwrap();
        produce(&master, 0, 200).await;
        // Six queues through one descriptor: nearly every dispatched entry reopens a file.
        storage.faults().add(Fault::SlowOpens { ms: 5 });
        let mut framer = ReplicaFramer::new(replica.replica_next_offset(), SEGMENT);
        let mut most_behind = 0;
        loop {
            let at = framer.next_offset();
            let Some(bytes) = master.replication_bytes(at, 32 * 1024).await.unwrap() else { break };
            framer.push(at, &bytes).unwrap();
            while let Some((start, unit)) = framer.next_unit().unwrap() {
                // Each unit written before the next (the follower's pending-bytes bound is not
                // what this test is about).
                let (_, written) = replica.append_replica(start, unit).await.unwrap();
                written.await.unwrap();
                most_behind = most_behind.max(replica.write_offset().0 - replica.dispatched_offset().0);
            }
        }
        assert!(most_behind <= limit + SEGMENT, "{most_behind} bytes waited for dispatch (limit {limit})");
        assert!(replica.stats().replica_dispatch_waits > 0, "the stream never waited: the test's dispatcher was not slow enough");
        storage.faults().clear();
        assert_same_queues(&master, &replica, "after a slow dispatch").await;
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}

/// A replica whose flusher is behind its master's stream waits for it before taking more (its
/// follower stops reading) instead of refusing the unit, which would drop the stream and
/// send the same bytes again; a unit larger than the whole limit still goes through, alone.
#[test]
fn a_replica_behind_on_writes_waits_instead_of_refusing() {
    block_on(async {
        let (master, _) = Store::open(MemStorage::new(), master_cfg()).await.unwrap();
        let cfg = ferromq_store::StoreConfig { max_pending_bytes: 600, max_flush_batch_bytes: 600, ..replica_cfg(FlushMode::Async) };
        let (replica, _) = Store::open(MemStorage::new(), cfg).await.unwrap();
        produce(&master, 0, 200).await;
        let mut framer = ReplicaFramer::new(replica.replica_next_offset(), SEGMENT);
        // Every unit taken without waiting for the previous one to be written (as the follower
        // takes a whole read's worth), several over the limit on their own.
        let units = copy(&master, &replica, &mut framer, &[32 * 1024]).await;
        assert!(units.len() > 50, "{} units", units.len());
        assert!(replica.stats().replica_flush_waits > 0, "never waited: the flusher kept up with the test");
        assert_same_queues(&master, &replica, "after waiting for the flusher").await;
        master.close().await.unwrap();
        replica.close().await.unwrap();
    });
}
