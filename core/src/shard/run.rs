//! A shard's thread, from start to stop.
//!
//! Start: build the pinned runtime, open (and if needed recover) the shard's store in the
//! broker's shared offset space, report ready, then wait for the broker's go — given once every
//! shard's store is open, so that no shard appends (and takes a new range of client-visible
//! offsets) before the offset space knows every shard's segments. Then the named
//! tasks start:
//! - **server** — the SO_REUSEPORT listener and its connections (`net::server`);
//! - **executor** — jobs from other shards, capped (`executor.rs`);
//! - **events** — notifications the control thread asks this shard to send on its connections;
//! - **offset flusher** — coalesced offset commits to the control thread (`offsets.rs`);
//! - **delay levels** — delivery of due delayed messages of the levels this shard owns
//!   (`delay.rs`);
//! - **transaction check-back** — on the shard that owns the half queue (`transaction.rs`);
//! - **stats sampler** — once a second, a sample of the shard's counters for the admin
//!   answers' TPS figures ([`spawn_stats_sampler`], `stats.rs`);
//! - **replication** — on a master, the streams to this shard's slaves; on a slave, the
//!   stream from the master's shard of the same index (`replication.rs`).
//!
//! Stop (the broker closes `stop`): stop accepting and close the connections, wake every held
//! pull, let the delay-level deliverers and the check-back finish the message in hand, wait for the requests still
//! being served (at most [`SHUTDOWN_GRACE`]), close the mailbox and wait for the running jobs, hand the last offset commits to the control thread,
//! then close the store (flush, checkpoint, remove the abort marker). Every wait is on an
//! event, none polls.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::backend::{ActiveBackend, IoBackend, build_runtime_on};
use ferromq_net::codes::request_code;
use ferromq_net::conn::RequestHandler;
use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::io::faulty::{ExternalFaults, FaultyStorage};
use ferromq_store::{OffsetSpace, ShardId, Store};
use futures_util::FutureExt;
use tracing::{error, warn};

use super::ctx::{ShardCtx, ShardRouter};
use super::executor;
use super::executor::ShardJob;
use crate::control::{ControlHandle, ShardEvent};

/// How long shutdown waits for requests in progress, and then for running cross-shard jobs.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long one notification may wait for room in its connection's write queue.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// What a shard thread needs from the broker.
pub struct ShardSetup {
    pub id: ShardId,
    /// The CPU to pin the thread to.
    pub cpu: usize,
    pub backend: IoBackend,
    pub control: Arc<ControlHandle>,
    pub router: ShardRouter,
    pub listener: std::net::TcpListener,
    /// The fast ("VIP") port's listener (`listenPort − 2`), served like `listener`; `None`
    /// when `fastListenPortEnable` is off.
    pub fast_listener: Option<std::net::TcpListener>,
    /// The broker's one client-visible offset space, shared by every shard's store.
    pub offset_space: Arc<OffsetSpace>,
    /// The listeners' TLS (`tls.server.mode`); `None`: plain only.
    pub tls: Option<ferromq_net::tls::TlsAcceptor>,
    /// Storage faults injected from outside ([`crate::broker::FAULT_INJECTION_ENV`]); `None`
    /// in production.
    pub faults: Option<Arc<ExternalFaults>>,
    pub inbox: async_channel::Receiver<ShardJob<ShardCtx>>,
    pub events: async_channel::Receiver<ShardEvent>,
    /// On a master: slave connections for this shard from the HA port's acceptor.
    pub ha_inbox: Option<async_channel::Receiver<ferromq_repl::acceptor::Handoff>>,
    /// Reports the start outcome (the backend in use, or why the shard cannot start).
    pub ready: std::sync::mpsc::Sender<io::Result<ActiveBackend>>,
    /// One message: start serving. Closed without a message: give up (another shard failed).
    pub go: async_channel::Receiver<()>,
    /// Closed by the broker to stop the shard.
    pub stop: async_channel::Receiver<()>,
}

/// Starts the shard's thread; `make_service` builds the request handler for its connections.
pub fn spawn<H, M>(setup: ShardSetup, make_service: M) -> io::Result<std::thread::JoinHandle<()>>
where
    H: RequestHandler,
    M: FnOnce(Rc<ShardCtx>) -> Rc<H> + Send + 'static,
{
    std::thread::Builder::new().name(format!("shard-{}", setup.id.0)).spawn(move || {
        let (runtime, active) = match build_runtime_on(setup.backend, Some(setup.cpu)) {
            Ok(pair) => pair,
            Err(e) => {
                let _ = setup.ready.send(Err(e));
                return;
            }
        };
        runtime.block_on(run(setup, active, make_service));
    })
}

async fn run<H, M>(setup: ShardSetup, active: ActiveBackend, make_service: M)
where
    H: RequestHandler,
    M: FnOnce(Rc<ShardCtx>) -> Rc<H>,
{
    let ShardSetup { id, control, router, listener, fast_listener, offset_space, faults, tls, inbox, events, ha_inbox, ready, go, stop, .. } =
        setup;
    let config = control.config();
    let storage = FaultyStorage::with_external(CompioStorage, faults);
    let store = match Store::open_in(storage, config.store_config(id), offset_space).await {
        Ok((store, report)) => {
            if report.abnormal {
                warn!(shard = id.0, ?report, "store recovered after an unclean stop");
            }
            if !report.damaged.is_empty() {
                tracing::error!(
                    shard = id.0,
                    ranges = report.damaged.len(),
                    "the commit log has damaged ranges (logged above with file and position): pulls and reads touching them \
                     are refused with SYSTEM_ERROR; everything else is served"
                );
            }
            store
        }
        Err(e) => {
            let _ = ready.send(Err(io::Error::other(format!("shard {}: cannot open the store: {e}", id.0))));
            return;
        }
    };
    let listeners = compio::net::TcpListener::from_std(listener)
        .and_then(|main| Ok((main, fast_listener.map(compio::net::TcpListener::from_std).transpose()?)));
    let (listener, fast_listener) = match listeners {
        Ok(pair) => pair,
        Err(e) => {
            let _ = ready.send(Err(e));
            let _ = store.close().await;
            return;
        }
    };
    let _ = ready.send(Ok(active));
    if go.recv().await.is_err() {
        // Another shard failed to start: leave the store as a clean stop would.
        let _ = store.close().await;
        return;
    }

    let ctx = ShardCtx::new(id, store, control.clone(), router);
    let executor_task = compio::runtime::spawn(executor::run(ctx.clone(), inbox.clone(), ctx.executor.clone()));
    let events_task = compio::runtime::spawn(serve_events(ctx.clone(), events));
    let flusher_task = compio::runtime::spawn({
        let ctx = ctx.clone();
        async move { ctx.offsets.run_flusher(&ctx.control).await }
    });
    let replication_task = super::replication::spawn(&ctx, ha_inbox);
    let delay_task = super::delay::spawn(&ctx);
    let timer_task = super::timer::spawn(&ctx);
    let check_task = super::transaction::spawn(&ctx);
    let stats_task = spawn_stats_sampler(&ctx);

    let service = make_service(ctx.clone());
    // Both ports serve the same service until `stop` closes; each listener applies the
    // connection limit to its own connections.
    let fast = fast_listener.map(|fast_listener| {
        let (service, limits, stop, tls) = (service.clone(), config.server_limits(), stop.clone(), tls.clone());
        compio::runtime::spawn(async move {
            let shutdown = async move {
                let _ = stop.recv().await;
            };
            if let Err(e) = ferromq_net::server::serve_with_tls(fast_listener, service, limits, tls, shutdown).await {
                error!(shard = id.0, "fast-port listener failed: {e}");
            }
        })
    });
    let shutdown = async move {
        let _ = stop.recv().await;
    };
    if let Err(e) = ferromq_net::server::serve_with_tls(listener, service, config.server_limits(), tls, shutdown).await {
        error!(shard = id.0, "listener failed: {e}");
    }
    if let Some(fast) = fast {
        let _ = fast.await;
    }

    // Stop.
    let open: Vec<_> = ctx.connections.borrow().values().cloned().collect();
    for conn in open {
        conn.close();
    }
    ctx.held.stop();
    if compio::time::timeout(SHUTDOWN_GRACE, super::delay::stop(&ctx, delay_task)).await.is_err() {
        warn!(shard = id.0, "delay-level deliverers still running after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    ctx.timer_wake.notify(usize::MAX);
    if let Some(timer_task) = timer_task
        && compio::time::timeout(SHUTDOWN_GRACE, timer_task).await.is_err()
    {
        warn!(shard = id.0, "timer deliverer still running after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    if let Some(check_task) = check_task
        && compio::time::timeout(SHUTDOWN_GRACE, check_task).await.is_err()
    {
        warn!(shard = id.0, "transaction check-back still running after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    if compio::time::timeout(SHUTDOWN_GRACE, ctx.requests.wait_zero()).await.is_err() {
        warn!(shard = id.0, in_flight = ctx.requests.get(), "requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    inbox.close();
    let _ = executor_task.await;
    if compio::time::timeout(SHUTDOWN_GRACE, ctx.executor.wait_idle()).await.is_err() {
        warn!(shard = id.0, jobs = ctx.executor.alive(), "cross-shard jobs still running after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    drop(events_task);
    drop(stats_task);
    drop(flusher_task);
    // The streams to slaves (or from the master) end here; SYNC_MASTER sends still waiting
    // answer FLUSH_SLAVE_TIMEOUT.
    drop(replication_task);
    ctx.offsets.flush(&ctx.control).await;
    if let Err(e) = ctx.store.clone().close().await {
        error!(shard = id.0, "store close failed: {e}");
    }
}

/// Starts the shard's stats sampler: one sample a second until the shard stops. Its cost is a
/// copy of four counters, plus, every 10 s, one pass over the (group, topic) pairs pulled on
/// this shard in the last 10 minutes.
pub fn spawn_stats_sampler(ctx: &Rc<ShardCtx>) -> compio::runtime::JoinHandle<()> {
    let ctx = ctx.clone();
    compio::runtime::spawn(async move {
        while !ctx.stopping.get() {
            compio::time::sleep(super::stats::SAMPLE_PERIOD).await;
            ctx.runtime_stats.sample(ferromq_store::store::now_ms(), ctx.store.stats().appended_messages);
        }
    })
}

/// Carries out what the control thread asks of this shard's connections.
async fn serve_events(ctx: Rc<ShardCtx>, events: async_channel::Receiver<ShardEvent>) {
    while let Ok(event) = events.recv().await {
        match event {
            ShardEvent::NotifyConsumerIdsChanged { connection, group } => {
                let Some(conn) = ctx.connections.borrow().get(&connection).cloned() else { continue };
                let notify = RemotingCommand::request(request_code::NOTIFY_CONSUMER_IDS_CHANGED).with_ext("consumerGroup", &group);
                // A client that does not read must not hold up the others' notifications.
                compio::runtime::spawn(async move {
                    let sent = compio::time::timeout(NOTIFY_TIMEOUT, conn.invoke_oneway(notify)).map(|r| r.map_err(|_| ()).and_then(|r| r.map_err(|_| ())));
                    if sent.await.is_err() {
                        tracing::debug!(conn = conn.id(), group, "NOTIFY_CONSUMER_IDS_CHANGED not sent");
                    }
                })
                .detach();
            }
            ShardEvent::SendOneway { connection, request } => {
                let Some(conn) = ctx.connections.borrow().get(&connection).cloned() else { continue };
                compio::runtime::spawn(async move {
                    let sent = compio::time::timeout(NOTIFY_TIMEOUT, conn.invoke_oneway(request)).map(|r| r.map_err(|_| ()).and_then(|r| r.map_err(|_| ())));
                    if sent.await.is_err() {
                        tracing::debug!(conn = conn.id(), "one-way request not sent");
                    }
                })
                .detach();
            }
        }
    }
}
