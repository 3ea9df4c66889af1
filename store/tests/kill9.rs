//! kill -9 test: a child process (this test binary, re-executed) appends under SYNC_FLUSH from
//! several concurrent writers on the real file system and prints every acknowledged append to
//! stdout; the parent kills it with SIGKILL mid-stream, reopens the store and checks that every
//! acknowledged record reads back byte-identical at its queue offset.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::record::{self, MessageInput, Properties};
use ferromq_store::test_support::block_on;
use ferromq_store::{FlushMode, PullStatus, QueueId, QueueOffset, Store, StoreConfig, TagFilter};

const CHILD_ENV: &str = "FERROMQ_STORE_KILL9_DIR";
const WRITERS: usize = 8;

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    // The machine's shared disk may be nearly full: neither refuse nor delete this test's data.
    cfg.disk_max_used_space_ratio_pct = 95;
    cfg.disk_space_clean_forcibly_ratio_pct = 98;
    cfg.disk_space_warning_level_ratio_pct = 99;
    cfg.flush_mode = FlushMode::Sync;
    cfg.segment_size_bytes = 256 * 1024;
    cfg.cq_entries_per_file = 64;
    cfg.max_message_size_bytes = 64 * 1024;
    cfg.checkpoint_interval_ms = 50;
    // Two descriptors for three queues: entries are written through descriptors closed and
    // opened again between writes and checkpoints, and must still survive the kill.
    cfg.max_open_cq_files = 2;
    cfg.index_hash_slots = 1024;
    cfg.index_max_entries = 4096;
    cfg
}

fn body(writer: usize, seq: u64) -> Vec<u8> {
    let mut b = format!("w{writer}-s{seq}-").into_bytes();
    b.resize(1024, b'0' + (seq % 10) as u8);
    b
}

/// Child mode: append until killed. A no-op when run as an ordinary test.
#[test]
fn kill9_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    block_on(async move {
        let (store, _) = Store::open(CompioStorage, config(std::path::Path::new(&dir))).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            tasks.push(compio::runtime::spawn(async move {
                let mut seq = 0u64;
                loop {
                    let q = (w % 3) as u32;
                    let mut p = Properties::new();
                    p.insert("KEYS", &format!("w{w}s{seq}"));
                    let m = MessageInput::simple("KillTopic", QueueId(q), body(w, seq), &p);
                    let r = store.append(vec![m]).await.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {q} {} {w} {seq}", r.queue_offset.0).unwrap();
                    out.flush().unwrap();
                    seq += 1;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn kill9_loses_no_acknowledged_record() {
    let dir = std::env::temp_dir().join(format!("ferromq-store-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acks: Vec<(u32, u64, usize, u64)> = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args(["kill9_child_entry", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.push(line);
            }
            lines
        });
        // Let it run (and roll segments), then kill it without warning.
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(700 + 300 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let before = acks.len();
        for l in lines {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() == 5 && f[0] == "ACK" {
                acks.push((f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].parse().unwrap(), f[4].parse().unwrap()));
            }
        }
        assert!(acks.len() > before, "round {round}: child acknowledged nothing in {:?}", start.elapsed());
        // Reopen and verify every acknowledgement so far (across all rounds).
        let dir2 = dir.clone();
        let acks2 = acks.clone();
        block_on(async move {
            let (store, report) = Store::open(CompioStorage, config(&dir2)).await.unwrap();
            assert!(report.abnormal, "a killed process leaves the abort marker");
            for (q, qoff, w, seq) in &acks2 {
                let p = store.get_message("KillTopic", QueueId(*q), QueueOffset(*qoff), 1, &TagFilter::All).await.unwrap();
                assert_eq!(p.status, PullStatus::Found, "acknowledged {q}@{qoff} lost");
                let bytes = store.read_range(p.ranges[0]).await.unwrap();
                let recs = record::decode_body_strict(&bytes).unwrap();
                assert_eq!(recs.len(), 1);
                assert_eq!(recs[0].queue_offset as u64, *qoff);
                assert_eq!(recs[0].body, &body(*w, *seq)[..], "acknowledged {q}@{qoff} differs");
            }
            store.close().await.unwrap();
        });
        println!("round {round}: {} acknowledged appends verified", acks.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
