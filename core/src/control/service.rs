//! The control thread: the one owner of the [`ControlPlane`].
//!
//! Named tasks on its runtime:
//! - **commands** — takes every command waiting on the channel (at most
//!   [`MAX_COMMANDS_PER_BATCH`]), applies them as one batch, publishes the new view, answers
//!   them (admin changes once on disk) and hands the changed metadata files to the writer
//!   thread when it is idle (`plane.rs`, `writer.rs`);
//! - **metadata writes** — takes each outcome of the writer thread: answers the admin changes
//!   it made durable and starts the next write if anything changed meanwhile; after a failed
//!   write, tries again after [`WRITE_RETRY_PAUSE`] (or at the next batch, if sooner);
//! - **registration** — REGISTER_BROKER to every name server at start, every
//!   `registerNameServerPeriod` (clamped to 10–60 s), and after a batch changed topics — at
//!   once, or [`REGISTER_AFTER_CHANGE_PAUSE`] after the previous round at the soonest;
//! - **offset flush** — writes `consumerOffset.json` every `flushConsumerOffsetInterval`;
//! - **client expiry** — every 10 s, drops clients whose heartbeats stopped;
//! - **slave sync** (a slave only) — every `slaveSyncIntervalMillis` (10 s), and at once when
//!   registration learns a new master address, copies the master's topics, groups and offsets
//!   (`slave_sync.rs`, PROTOCOL.md §7.5).
//!
//! It stops when the command channel is closed (after the shards stopped): it applies what is
//! still queued, waits for the write in flight and writes the final topics and groups,
//! flushes the offsets and unregisters from the name servers.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use event_listener::Event;
use ferromq_net::backend::{IoBackend, build_runtime_on};
use futures_util::FutureExt;
use tracing::error;

use super::command::Command;
use super::plane::{Batch, ControlPlane};
use super::registrar::Registrar;
use super::slave_sync::SlaveSync;

/// Most commands applied as one batch (one view publication, one file write).
pub const MAX_COMMANDS_PER_BATCH: usize = 1024;
/// Pause before a failed metadata write is tried again (unless a batch comes first).
pub const WRITE_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Least time between the start of a registration round and that of the next one triggered by
/// topic changes. Each round serializes the whole topic table on this thread and the name
/// server parses it: per change, that was the O(table) cost left once the files were journaled
/// (measured at 3,000 topics, debug build: a third of this thread's time and as much again on
/// the embedded name server's). Changes during the pause are coalesced into one round; a new
/// topic's route reaches the name servers at most this much later.
pub const REGISTER_AFTER_CHANGE_PAUSE: Duration = Duration::from_millis(500);
/// How often clients without a heartbeat are looked for (Java: 10 s).
const CLIENT_SCAN_INTERVAL: Duration = Duration::from_secs(10);

/// Starts the control thread; it runs until `commands` is closed. `registered` is signalled
/// once the first registration round has ended (registered, refused or timed out with every
/// name server), so the broker can report `boot success` only when clients can find it — as
/// Java's `BrokerController.start()` registers before returning.
pub fn spawn(
    plane: ControlPlane,
    commands: async_channel::Receiver<Command>,
    backend: IoBackend,
    namesrv_addrs: Vec<String>,
    registered: std::sync::mpsc::Sender<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("control".into()).spawn(move || {
        let runtime = match build_runtime_on(backend, None) {
            Ok((runtime, _)) => runtime,
            Err(e) => {
                error!("control thread cannot start: {e}");
                return;
            }
        };
        runtime.block_on(run(plane, commands, namesrv_addrs, Some(registered)));
    })
}

/// The control thread's work, on the current runtime (tests run it on theirs).
pub async fn run(
    plane: ControlPlane,
    commands: async_channel::Receiver<Command>,
    namesrv_addrs: Vec<String>,
    mut registered: Option<std::sync::mpsc::Sender<()>>,
) {
    let config = plane.handle().config().clone();
    let register_period = Duration::from_millis(config.namesrv.register_period_ms.clamp(10_000, 60_000));
    let register_timeout = config.register_timeout();
    let offset_flush_interval = Duration::from_millis(config.consumer.flush_consumer_offset_interval_ms.max(100));
    // Periodic rounds register in full unless `forceRegister=false`, which asks each name server
    // for its version of the topic table first; rounds after a topic change always register.
    let force_register = config.namesrv.force_register;
    let plane = Rc::new(RefCell::new(plane));
    let registrar = Rc::new(Registrar::new(namesrv_addrs, register_timeout, plane.borrow().handle().namesrv_tls().cloned(), config.acl_credentials()));
    let register_now = Rc::new(Event::new());
    // Fired by batches that changed topics: a round at most every REGISTER_AFTER_CHANGE_PAUSE
    // (`register_now`, fired by a slave's sync to learn its master again, is never paused).
    let register_after_change = Rc::new(Event::new());
    // A slave: fired when registration learns a new master address (the sync starts at once).
    let master_learned = Rc::new(Event::new());
    let handle = plane.borrow().handle().clone();

    let registration = compio::runtime::spawn({
        let (plane, registrar, register_now, register_after_change, master_learned, handle) =
            (plane.clone(), registrar.clone(), register_now.clone(), register_after_change.clone(), master_learned.clone(), handle.clone());
        async move {
            let (mut forced, mut paused) = (true, false);
            let mut last_round: Option<std::time::Instant> = None;
            loop {
                // Listen first, so a change during a registration round triggers the next.
                let changed = register_now.listen();
                let topics_changed = register_after_change.listen();
                if paused && let Some(last) = last_round {
                    let due = last + REGISTER_AFTER_CHANGE_PAUSE;
                    let now = std::time::Instant::now();
                    if due > now {
                        compio::time::sleep(due - now).await;
                    }
                }
                if forced || force_register || registrar.needs_register(&plane).await {
                    last_round = Some(std::time::Instant::now());
                    let answer = registrar.register_all(&plane).await;
                    // A slave learns its master from the answers (§7.2); a round no name server
                    // answered says nothing.
                    if handle.is_slave() && answer.answered && handle.learn_master(answer.master_addr, answer.ha_server_addr) {
                        master_learned.notify(1);
                    }
                }
                if let Some(first_round) = registered.take() {
                    let _ = first_round.send(());
                }
                (forced, paused) = futures_util::select_biased! {
                    () = changed.fuse() => (true, false),
                    () = topics_changed.fuse() => (true, true),
                    () = compio::time::sleep(register_period).fuse() => (false, false),
                };
            }
        }
    });
    let offset_flush = compio::runtime::spawn({
        let plane = plane.clone();
        async move {
            let mut ticks = compio::time::interval(offset_flush_interval);
            loop {
                ticks.tick().await;
                plane.borrow_mut().flush_offsets();
            }
        }
    });
    let metadata_writes = compio::runtime::spawn({
        let plane = plane.clone();
        let completions = plane.borrow().write_completions();
        async move {
            while let Ok(outcome) = completions.recv().await {
                let failed = plane.borrow_mut().write_finished(outcome);
                if failed {
                    compio::time::sleep(WRITE_RETRY_PAUSE).await;
                    plane.borrow_mut().start_write();
                }
            }
        }
    });
    let slave_sync = handle.is_slave().then(|| {
        let sync = SlaveSync::new(handle.clone());
        compio::runtime::spawn(sync.run(plane.clone(), master_learned.clone(), register_now.clone()))
    });
    let client_expiry = compio::runtime::spawn({
        let plane = plane.clone();
        async move {
            let mut ticks = compio::time::interval(CLIENT_SCAN_INTERVAL);
            loop {
                ticks.tick().await;
                let mut plane = plane.borrow_mut();
                let batch = plane.scan_expired_clients();
                plane.finish(batch);
            }
        }
    });

    while let Ok(first) = commands.recv().await {
        let mut batch = Batch::default();
        let topics_changed = {
            let mut plane = plane.borrow_mut();
            plane.apply(first, &mut batch);
            for _ in 1..MAX_COMMANDS_PER_BATCH {
                match commands.try_recv() {
                    Ok(command) => plane.apply(command, &mut batch),
                    Err(_) => break,
                }
            }
            let topics_changed = batch.topics_changed();
            plane.finish(batch);
            topics_changed
        };
        if topics_changed {
            register_after_change.notify(1);
        }
    }

    // Dropping the handles cancels the periodic tasks.
    drop(registration);
    drop(offset_flush);
    drop(client_expiry);
    drop(slave_sync);
    drop(metadata_writes);
    plane.borrow_mut().close_persistence();
    plane.borrow_mut().flush_offsets();
    registrar.unregister_all(&plane).await;
}
