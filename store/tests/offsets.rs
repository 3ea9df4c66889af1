//! Client-visible offsets in the broker-wide offset space (`offset_space.rs`): shards share one
//! space below 2^53, every record's PHYSICALOFFSET locates back to its shard and position, the
//! ranges are derived again from the records after a restart or a crash at any step of a segment
//! roll, stores written with the legacy shard-in-the-top-bits encoding stay readable by the
//! offsets clients hold, and what would break those rules is refused at open.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferromq_store::io::faulty::{Fault, FaultyStorage};
use ferromq_store::io::mem::{CrashOdds, MemStorage};
use ferromq_store::io::{Storage, StorageFile};
use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::record::{self, MessageInput, Properties};
use ferromq_store::test_support::block_on;
use ferromq_store::{
    AppendResult, CLIENT_OFFSET_EXACT_LIMIT, ClientPhysicalOffset, CommitLogOffset, FlushMode, OffsetSpace,
    QueueId, QueueOffset, ShardId, Store, StoreConfig, StoreError, TagFilter,
};

fn msg(topic: &str, q: u32, body: &str) -> MessageInput {
    let mut p = Properties::new();
    p.insert("KEYS", &format!("k-{body}"));
    MessageInput::simple(topic, QueueId(q), body.as_bytes().to_vec(), &p)
}

fn cfg(root: impl Into<PathBuf>, shard: u8) -> StoreConfig {
    let mut c = StoreConfig::test_min(root);
    c.shard = ShardId(shard);
    // Checkpoints only when a test asks, so crash points are deterministic.
    c.checkpoint_interval_ms = 3_600_000;
    c
}

fn exact_in_a_double(x: i64) -> bool {
    (x as f64) as i64 == x
}

/// Checks that the record at `local` of `store` carries `client` as PHYSICALOFFSET, and that
/// the offset space and the store translate between the two.
async fn assert_addressable<S: Storage>(space: &OffsetSpace, store: &Store<S>, local: CommitLogOffset, client: i64) {
    let shard = store.config().shard;
    assert_eq!(space.locate(ClientPhysicalOffset(client)), Some((shard, local)), "locate({client:#x})");
    assert_eq!(store.client_offset(local), Some(ClientPhysicalOffset(client)), "client_offset({local})");
    let bytes = store.read_record(local).await.unwrap_or_else(|e| panic!("{shard} record at {local}: {e}"));
    let view = record::decode_record(&bytes, true).unwrap();
    assert_eq!(view.physical_offset, client, "{shard} record at {local}");
}

/// Checks an append's offsets: below 2^53, exact as doubles, each message's PHYSICALOFFSET and
/// offsetMsgId naming itself.
async fn assert_fresh_append<S: Storage>(space: &OffsetSpace, store: &Store<S>, r: &AppendResult) {
    assert!((r.client_offset.0 as u64) < CLIENT_OFFSET_EXACT_LIMIT, "{r:?}");
    assert!(exact_in_a_double(r.client_offset.0), "{r:?}");
    let mut local = r.offset;
    for id in &r.offset_msg_ids {
        let (_, client) = record::decode_offset_msg_id(&id.to_string()).unwrap();
        assert!(exact_in_a_double(client.0));
        assert_addressable(space, store, local, client.0).await;
        let len = record::decode_record(&store.read_record(local).await.unwrap(), false).unwrap().total_size;
        local = CommitLogOffset(local.0 + len as u64);
    }
}

/// Every registered range is disjoint from every other.
fn assert_disjoint(space: &OffsetSpace) {
    let ranges = space.ranges();
    for pair in ranges.windows(2) {
        assert!(pair[0].client_end() <= pair[1].client_base, "overlap: {:?} / {:?}", pair[0], pair[1]);
    }
}

/// Every record of every queue of a store: (local offset, record bytes).
async fn all_records<S: Storage>(store: &Store<S>) -> Vec<(CommitLogOffset, Vec<u8>)> {
    let mut out = Vec::new();
    for (topic, q) in store.queues() {
        let (min, max) = store.queue_offsets(&topic, q);
        let mut off = min.0;
        while off < max.0 {
            let p = store.get_message(&topic, q, QueueOffset(off), 32, &TagFilter::All).await.unwrap();
            assert!(p.message_count > 0, "{topic}:{q}@{off}: {p:?}");
            for range in &p.ranges {
                let bytes = store.read_range(*range).await.unwrap();
                let mut pos = 0usize;
                for rec in record::decode_body_strict(&bytes).unwrap() {
                    out.push((CommitLogOffset(range.offset.0 + pos as u64), bytes[pos..pos + rec.total_size].to_vec()));
                    pos += rec.total_size;
                }
            }
            off = p.next_begin_offset.0;
        }
    }
    out
}

#[test]
fn shards_share_one_space_below_2_pow_53() {
    block_on(async {
        let space = Arc::new(OffsetSpace::new());
        let (mem0, mem1) = (MemStorage::new(), MemStorage::new());
        let (s0, _) = Store::open_in(mem0.clone(), cfg("/s0", 0), space.clone()).await.unwrap();
        let (s1, _) = Store::open_in(mem1.clone(), cfg("/s1", 1), space.clone()).await.unwrap();
        let mut acked: Vec<(u8, AppendResult)> = Vec::new();
        for i in 0..150 {
            let body = format!("m{i}-{}", "x".repeat(i % 120));
            let (shard, store) = if i % 3 == 0 { (1, &s1) } else { (0, &s0) };
            let r = store.append(vec![msg("T", shard.into(), &body)]).await.unwrap();
            assert_fresh_append(&space, store, &r).await;
            acked.push((shard, r));
        }
        assert!(s0.stats().segments_created > 2 && s1.stats().segments_created > 2);
        // The shards' segments interleave in the one space: it grows at their combined rate.
        let ranges = space.ranges();
        let shards: Vec<u8> = ranges.iter().map(|r| r.shard.0).collect();
        assert!(shards.windows(2).any(|w| w[0] != w[1]), "{ranges:?}");
        assert!(ranges.iter().any(|r| r.shard == ShardId(1) && r.client_base != r.local_base.0), "{ranges:?}");
        assert_disjoint(&space);
        let clients: BTreeSet<i64> = acked.iter().map(|(_, r)| r.client_offset.0).collect();
        assert_eq!(clients.len(), acked.len(), "every append has its own client offset");
        let end = space.allocated_end();
        assert!(end <= ranges.len() as u64 * 4096, "no range skipped: end {end}, {} ranges", ranges.len());

        // A second store for an open shard is refused.
        match Store::open_in(MemStorage::new(), cfg("/other", 1), space.clone()).await {
            Err(StoreError::Config(e)) => assert!(e.contains("shard-1"), "{e}"),
            other => panic!("a second shard-1 opened: {:?}", other.map(|_| ())),
        }

        // Restart: a fresh space is rebuilt from the records alone.
        s0.close().await.unwrap();
        s1.close().await.unwrap();
        assert!(space.ranges().is_empty(), "closed stores leave the space");
        let space = Arc::new(OffsetSpace::new());
        let (s0, _) = Store::open_in(mem0.clone(), cfg("/s0", 0), space.clone()).await.unwrap();
        let (s1, _) = Store::open_in(mem1.clone(), cfg("/s1", 1), space.clone()).await.unwrap();
        assert_eq!(space.ranges(), ranges);
        for (shard, r) in &acked {
            let store = if *shard == 1 { &s1 } else { &s0 };
            assert_addressable(&space, store, r.offset, r.client_offset.0).await;
        }
        for (i, store) in [&s0, &s1].into_iter().enumerate() {
            for j in 0..20 {
                let r = store.append(vec![msg("T", i as u32, &format!("after-{j}-{}", "y".repeat(100)))]).await.unwrap();
                assert_fresh_append(&space, store, &r).await;
                assert!(!clients.contains(&r.client_offset.0));
            }
        }
        assert_disjoint(&space);
        s0.close().await.unwrap();
        s1.close().await.unwrap();
    });
}

/// Overwrites the PHYSICALOFFSET field (@28) of the record at the start of a segment file.
fn set_first_physical_offset(mem: &MemStorage, segment: &Path, value: i64) {
    assert!(mem.corrupt(segment, record::PHYSICALOFFSET_POS as u64, &value.to_be_bytes()));
}

#[test]
fn implausible_or_overlapping_ranges_are_corruption_at_open() {
    block_on(async {
        // Two shards opened in spaces of their own both start at client offset 0: opening them
        // together is refused, naming both.
        let (mem0, mem1) = (MemStorage::new(), MemStorage::new());
        for (mem, root, shard) in [(&mem0, "/s0", 0), (&mem1, "/s1", 1)] {
            let (s, _) = Store::open(mem.clone(), cfg(root, shard)).await.unwrap();
            for i in 0..40 {
                s.append(vec![msg("T", 0, &format!("{i}-{}", "z".repeat(150)))]).await.unwrap();
            }
            s.close().await.unwrap();
        }
        let space = Arc::new(OffsetSpace::new());
        let (s0, _) = Store::open_in(mem0.clone(), cfg("/s0", 0), space.clone()).await.unwrap();
        match Store::open_in(mem1.clone(), cfg("/s1", 1), space.clone()).await {
            Err(StoreError::Corruption { reason, .. }) => {
                assert!(reason.contains("shard-0") && reason.contains("shard-1") && reason.contains("overlaps"), "{reason}");
            }
            other => panic!("overlapping shards opened: {:?}", other.map(|_| ())),
        }
        // The refused open left nothing behind: shard 1 can still be opened elsewhere.
        assert!(space.ranges().iter().all(|r| r.shard == ShardId(0)));
        s0.close().await.unwrap();

        // A durable first record whose PHYSICALOFFSET no allocator produced (not aligned, not
        // legacy), or that breaks the order of the shard's segments, is corruption.
        let seg1 = Path::new("/s0/commitlog/00000000000000004096");
        let original = i64::from_be_bytes(mem0.file_bytes(seg1).unwrap()[28..36].try_into().unwrap());
        assert_eq!(original, 4096);
        for (bad, what) in [(4096 + 8, "aligned"), (0, "does not follow"), (1 << 40, "does not follow")] {
            set_first_physical_offset(&mem0, seg1, bad);
            match Store::open(mem0.clone(), cfg("/s0", 0)).await {
                Err(StoreError::Corruption { reason, .. }) => assert!(reason.contains(what), "{bad}: {reason}"),
                other => panic!("PHYSICALOFFSET {bad} accepted: {:?}", other.map(|_| ())),
            }
        }
        // Legacy form for shard 0 is the identity, so a shard-1 legacy value is not one either.
        set_first_physical_offset(&mem0, seg1, (1 << 55) | 4096);
        assert!(matches!(Store::open(mem0.clone(), cfg("/s0", 0)).await, Err(StoreError::Corruption { .. })));
        set_first_physical_offset(&mem0, seg1, original);
        let (s0, _) = Store::open(mem0.clone(), cfg("/s0", 0)).await.unwrap();
        s0.close().await.unwrap();
    });
}

/// Appends to `store` until the next append of `body_len` bytes rolls into a new segment.
async fn fill_to_roll<S: Storage>(store: &Store<S>, acked: &mut Vec<AppendResult>, body_len: usize) {
    let seg = store.config().segment_size_bytes;
    loop {
        let before = store.write_offset().0 / seg;
        let probe = msg("T", 0, &"p".repeat(body_len));
        let need = probe.encoded_len().unwrap() as u64 + 32;
        let pos = store.write_offset().0;
        if pos % seg + need + 24 + 8 > seg {
            return;
        }
        let r = store.append(vec![probe]).await.unwrap();
        assert_eq!(r.offset.0 / seg, before);
        acked.push(r);
    }
}

/// A crash at every I/O step of a segment roll (filler, create, preallocate, syncs, the first
/// batch's write and sync), with unsynced writes lost, kept or torn; recovery reopens in the
/// same space (the process survived) or in a fresh one (a restart) and every acknowledged record
/// keeps its client offset, the new segment's range is allocated again only when its first
/// record did not survive, and nothing overlaps the other shard.
#[test]
fn crash_at_every_step_of_a_roll_keeps_offsets_consistent() {
    let odds = [
        CrashOdds { keep_pct: 0, torn_pct: 0 },
        CrashOdds { keep_pct: 100, torn_pct: 0 },
        CrashOdds { keep_pct: 0, torn_pct: 100 },
        CrashOdds::default(),
    ];
    let mut outcomes = BTreeSet::new();
    for crash_step in 1..=12u64 {
        for (oi, odd) in odds.iter().enumerate() {
            for same_space in [true, false] {
                let seed = crash_step * 100 + oi as u64 * 10 + u64::from(same_space);
                outcomes.insert(block_on(roll_crash_case(crash_step, *odd, same_space, seed)));
            }
        }
    }
    // The sweep saw the roll fail before its first record was durable and succeed, and saw the
    // new segment's range both re-allocated and recovered from the record.
    assert!(outcomes.contains(&(false, false)) && outcomes.contains(&(true, true)), "{outcomes:?}");
    assert!(outcomes.contains(&(false, true)), "an unacknowledged first record survived: {outcomes:?}");
}

/// Returns (whether the rolling append was acknowledged, whether its segment's range survived).
async fn roll_crash_case(crash_step: u64, odds: CrashOdds, same_space: bool, seed: u64) -> (bool, bool) {
    let ctx = format!("crash step {crash_step}, odds {odds:?}, same space {same_space}");
    let mut rnd = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rand = move |bound: u64| {
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        rnd % bound.max(1)
    };
    let space = Arc::new(OffsetSpace::new());
    let mem = MemStorage::new();
    let st = FaultyStorage::new(mem.clone());
    let mem1 = MemStorage::new();
    let (other, _) = Store::open_in(mem1.clone(), cfg("/other", 1), space.clone()).await.unwrap();
    let (store, _) = Store::open_in(st.clone(), cfg("/s", 0), space.clone()).await.unwrap();
    let mut acked = Vec::new();
    let mut other_acked = Vec::new();
    // Interleave the other shard's rolls so this shard's client bases differ from its local ones.
    for round in 0..2 {
        fill_to_roll(&store, &mut acked, 200).await;
        fill_to_roll(&other, &mut other_acked, 200).await;
        other_acked.push(other.append(vec![msg("T", 0, &format!("other-roll-{round}"))]).await.unwrap());
        if round == 0 {
            acked.push(store.append(vec![msg("T", 0, &"r".repeat(200))]).await.unwrap());
        }
    }
    let seg = store.config().segment_size_bytes;
    let roll_base = (store.write_offset().0 / seg + 1) * seg;
    st.faults().add(Fault::CrashAt(st.faults().ops() + crash_step));
    let rolled = store.append(vec![msg("T", 0, &"n".repeat(200))]).await;
    // The other shard keeps rolling while this one is down.
    other_acked.push(other.append(vec![msg("T", 0, &"o".repeat(900))]).await.unwrap());
    let rolled_ok = match rolled {
        Ok(r) => {
            assert_eq!(r.offset.0, roll_base, "{ctx}");
            acked.push(r);
            true
        }
        Err(_) => false,
    };
    store.abandon().await;
    mem.crash(odds, &mut rand);
    st.faults().clear();

    let (space, other) = if same_space {
        (space, other)
    } else {
        // A restart: every shard reopens in a fresh space before any appends.
        other.close().await.unwrap();
        let fresh = Arc::new(OffsetSpace::new());
        let (other, _) = Store::open_in(mem1.clone(), cfg("/other", 1), fresh.clone()).await.unwrap();
        (fresh, other)
    };
    let (store, _) = Store::open_in(st.clone(), cfg("/s", 0), space.clone()).await.unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let survived = store.client_offset(CommitLogOffset(roll_base));
    for r in &acked {
        assert_addressable(&space, &store, r.offset, r.client_offset.0).await;
    }
    for r in &other_acked {
        assert_addressable(&space, &other, r.offset, r.client_offset.0).await;
    }
    assert!(!rolled_ok || survived.is_some(), "{ctx}: an acknowledged first record lost its range");
    // Appends continue; the roll's segment gets a range again if it had lost it, above the other
    // shard's and disjoint from everything acknowledged.
    let mut fresh = Vec::new();
    for j in 0..12 {
        let r = store.append(vec![msg("T", 0, &format!("after-{j}-{}", "a".repeat(300)))]).await.unwrap();
        assert_fresh_append(&space, &store, &r).await;
        fresh.push(r);
    }
    let r = other.append(vec![msg("T", 0, "other-after")]).await.unwrap();
    assert_fresh_append(&space, &other, &r).await;
    fresh.push(r);
    assert_disjoint(&space);
    let mut seen = BTreeSet::new();
    for r in acked.iter().chain(&other_acked).chain(&fresh) {
        assert!(seen.insert(r.client_offset.0), "{ctx}: client offset {:#x} handed out twice", r.client_offset.0);
    }
    if let Some(g) = survived {
        assert_eq!(store.client_offset(CommitLogOffset(roll_base)), Some(g), "{ctx}: a surviving range is kept");
    }
    store.close().await.unwrap();
    other.close().await.unwrap();
    (rolled_ok, survived.is_some())
}

#[test]
fn retention_unregisters_segments_but_keeps_the_highest_range() {
    block_on(async {
        let mem = MemStorage::new();
        let mut c = cfg("/r", 0);
        // Disk "full" enough for forcible deletion of unexpired segments (MemStorage reports 0%).
        c.disk_max_used_space_ratio_pct = 0;
        c.disk_space_clean_forcibly_ratio_pct = 0;
        // Written with the default ratios: at 0 % the flusher's own usage readings would wake
        // the retention task while the segments are still being written.
        let (store, _) = Store::open(mem.clone(), cfg("/r", 0)).await.unwrap();
        let mut acked = Vec::new();
        for i in 0..60 {
            acked.push(store.append(vec![msg("T", 0, &format!("{i}-{}", "q".repeat(200)))]).await.unwrap());
        }
        store.close().await.unwrap();
        // A roll interrupted after the filler and the new (empty) segment became durable.
        let seg = c.segment_size_bytes;
        let last = acked.last().unwrap();
        let end = last.offset.0 + u64::from(last.wrote_bytes) + 24;
        let last_base = end - end % seg;
        let f = mem.open(Path::new(&format!("/r/commitlog/{:020}", last_base)), false).await.unwrap();
        f.write_all_at(ferromq_store::commitlog::encode_blank(seg, end - last_base).to_vec(), end - last_base).await.unwrap();
        f.sync_data().await.unwrap();
        let empty = Path::new("/r/commitlog").join(format!("{:020}", last_base + seg));
        let f = mem.open(&empty, true).await.unwrap();
        f.preallocate(seg).await.unwrap();
        f.sync_data().await.unwrap();
        mem.sync_dir(Path::new("/r/commitlog")).await.unwrap();

        let (store, _) = Store::open(mem.clone(), c.clone()).await.unwrap();
        let space = store.offset_space().clone();
        let high = acked.iter().map(|r| r.client_offset.0).max().unwrap();
        let out = store.run_retention(ferromq_store::store::now_ms(), 0, true).await.unwrap();
        assert!(out.segments_deleted > 0, "{out:?}");
        // Deleted segments leave the space; the segment holding the highest range stays even
        // though it is not the last file (the empty one after it has no range yet).
        let first_kept = store.min_log_offset().0;
        assert_eq!(first_kept, last_base, "only the highest range and the empty segment remain");
        for r in &acked {
            if r.offset.0 < first_kept {
                assert_eq!(space.locate(r.client_offset), None);
                assert!(store.read_record(r.offset).await.is_err());
            } else {
                assert_addressable(&space, &store, r.offset, r.client_offset.0).await;
            }
        }
        store.close().await.unwrap();
        // After a restart the allocator starts above every offset ever handed out.
        let (store, _) = Store::open(mem.clone(), c).await.unwrap();
        let r = store.append(vec![msg("T", 0, "after-restart")]).await.unwrap();
        assert!(r.client_offset.0 > high, "{:#x} reuses a range (highest acked {high:#x})", r.client_offset.0);
        assert_fresh_append(store.offset_space(), &store, &r).await;
        store.close().await.unwrap();
    });
}

fn fixture_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferromq-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tarball = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/legacy-store-2shards.tar.gz");
    let status = std::process::Command::new("tar").arg("xzf").arg(&tarball).arg("-C").arg(&dir).status().unwrap();
    assert!(status.success(), "cannot extract {}", tarball.display());
    dir
}

/// The configuration the fixture was written with (tests/fixtures/README.md).
fn legacy_cfg(dir: &Path, shard: u8) -> StoreConfig {
    let mut c = StoreConfig::new(dir.join(format!("store/shard-{shard}")));
    // The machine's shared disk may be nearly full: neither refuse nor delete this test's data.
    c.disk_max_used_space_ratio_pct = 95;
    c.disk_space_clean_forcibly_ratio_pct = 98;
    c.disk_space_warning_level_ratio_pct = 99;
    c.shard = ShardId(shard);
    c.segment_size_bytes = 4096;
    c.max_message_size_bytes = 1024;
    c.cq_entries_per_file = 160 / 20;
    c.index_hash_slots = 64;
    c.index_max_entries = 256;
    c.flush_mode = FlushMode::Sync;
    c
}

#[test]
fn legacy_store_stays_readable_and_new_offsets_are_exact() {
    let dir = fixture_dir("legacy");
    let d = dir.clone();
    block_on(async move {
        let space = Arc::new(OffsetSpace::new());
        let mut stores = Vec::new();
        for shard in [0u8, 1] {
            let (s, report) = Store::open_in(CompioStorage, legacy_cfg(&d, shard), space.clone()).await.unwrap();
            assert!(!report.abnormal, "the fixture was stopped cleanly");
            stores.push(s);
        }
        assert_disjoint(&space);
        // Every old record is found by the offset clients already hold.
        let mut old = Vec::new();
        for (shard, store) in stores.iter().enumerate() {
            let records = all_records(store).await;
            assert_eq!(records.len(), 60, "shard {shard}: 2 queues of 30 messages");
            for (local, bytes) in records {
                let client = record::decode_record(&bytes, true).unwrap().physical_offset;
                let legacy = ((shard as i64) << 55) | local.0 as i64;
                assert_eq!(client, legacy, "shard {shard} record at {local}");
                assert_addressable(&space, store, local, client).await;
                assert_eq!(store.read_record(local).await.unwrap(), bytes);
                old.push((shard, local, client));
            }
        }
        assert!(old.iter().any(|(_, _, c)| *c as u64 >= CLIENT_OFFSET_EXACT_LIMIT), "shard 1's old offsets are above 2^53");
        // New records of both shards go below 2^53 at once: shard 1's legacy active segment is
        // closed, shard 0's (identical to the new scheme) continues.
        let ends: Vec<u64> = stores.iter().map(|s| s.write_offset().0).collect();
        let mut new = Vec::new();
        for round in 0..40 {
            for (shard, store) in stores.iter().enumerate() {
                let r = store.append(vec![msg("LegacyTopic", shard as u32, &format!("new-{round}-{}", "n".repeat(100)))]).await.unwrap();
                assert_fresh_append(&space, store, &r).await;
                new.push((shard, r));
            }
        }
        let first1 = &new.iter().find(|(s, _)| *s == 1).unwrap().1;
        assert_eq!(first1.offset.0, ends[1] - ends[1] % 4096 + 4096, "shard 1 starts a new segment");
        let first0 = &new.iter().find(|(s, _)| *s == 0).unwrap().1;
        assert_eq!(first0.offset.0, ends[0], "shard 0 continues its segment");
        assert_disjoint(&space);
        for s in stores.drain(..) {
            s.close().await.unwrap();
        }

        // Restart: old and new records are found, and more appends stay low.
        let space = Arc::new(OffsetSpace::new());
        for shard in [0u8, 1] {
            let (s, _) = Store::open_in(CompioStorage, legacy_cfg(&d, shard), space.clone()).await.unwrap();
            stores.push(s);
        }
        assert_disjoint(&space);
        for (shard, local, client) in &old {
            assert_addressable(&space, &stores[*shard], *local, *client).await;
        }
        for (shard, r) in &new {
            assert_addressable(&space, &stores[*shard], r.offset, r.client_offset.0).await;
        }
        for (shard, store) in stores.iter().enumerate() {
            let r = store.append(vec![msg("LegacyTopic", shard as u32, "after-restart")]).await.unwrap();
            assert_fresh_append(&space, store, &r).await;
            assert!(new.iter().all(|(_, n)| n.client_offset != r.client_offset));
        }
        for s in stores {
            s.close().await.unwrap();
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
