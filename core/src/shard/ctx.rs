//! What one shard owns: its store (its own commit log, consume queues and index), its held
//! pulls, its open connections, its coalesced offset commits — plus its handles on the rest of
//! the broker (the router to other shards, the control plane).
//!
//! Shard-resident: a [`ShardCtx`] lives on its shard's thread only (`!Send`, shared as `Rc`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use event_listener::Event;
use ferromq_net::conn::Connection;
use ferromq_store::io::compio_fs::CompioStorage;
use ferromq_store::io::faulty::FaultyStorage;
use ferromq_net::RemotingCommand;
use ferromq_repl::acks::SlaveAcks;
use ferromq_repl::slave::FollowerState;
use ferromq_store::{ClientPhysicalOffset, QueueId, ShardId, Store};

use super::executor::{ExecutorState, JobSlot};
use super::held::HeldPulls;
use super::offsets::OffsetCommits;
use super::router::{RouteError, Router};
use super::metrics::ShardMetrics;
use super::stats::RuntimeStats;
use crate::clients::ChannelId;
use crate::control::ControlHandle;
use crate::error::{BrokerError, BrokerResult};
use crate::meta::topics::{SCHEDULE_TOPIC, TIMER_TOPIC};

/// The store type every shard runs: real files behind the fault seam, which injects nothing
/// unless a test turns it on (`FERROMQ_FAULT_INJECTION_FILE`); when off, each file operation
/// pays one branch.
pub type ShardStore = Store<FaultyStorage<CompioStorage>>;

/// The router between shard contexts.
pub type ShardRouter = Router<ShardCtx>;

/// What the timer deliverer (`timer.rs`) reports to GET_BROKER_RUNTIME_INFO (Java's `timer*`
/// keys), updated at every step; all zero on a shard without the deliverer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerStats {
    /// The next timer-queue offset the index has not taken yet.
    pub next_offset: u64,
    /// Every parked message due before this was delivered (epoch ms).
    pub delivered_through_ms: i64,
    /// Entries held in memory for delivery.
    pub loaded: u64,
    /// Parked messages taken into the index per second, over the last second or so.
    pub enqueue_per_sec: u64,
    /// Messages delivered per second, over the last second or so.
    pub dequeue_per_sec: u64,
}

/// Everything a shard owns.
pub struct ShardCtx {
    pub id: ShardId,
    pub store: ShardStore,
    pub control: Arc<ControlHandle>,
    pub router: ShardRouter,
    /// Pulls parked by long polling, by queue; woken when new entries of their queue become
    /// visible.
    pub held: HeldPulls,
    /// Open client connections on this shard, by connection id (to send them requests).
    pub connections: RefCell<HashMap<u64, Connection>>,
    /// Consumer-offset commits waiting to go to the control thread.
    pub offsets: OffsetCommits,
    /// Requests being served on this shard's connections (shutdown waits for 0).
    pub requests: Gauge,
    /// The executor of jobs other shards send here.
    pub executor: Rc<ExecutorState>,
    /// The delay of each delay level in ms (index 0 = level 1), from `messageDelayLevel`.
    pub delay_levels_ms: Vec<u64>,
    /// Woken when `SCHEDULE_TOPIC_XXXX` entries of this shard become visible, and at stop: the
    /// delay-level deliverers (`delay.rs`) wait on it when their queue is empty.
    pub schedule_wake: Event,
    /// Woken when `rmq_sys_wheel_timer` entries of this shard become visible, and at stop: the
    /// timer deliverer (`timer.rs`) waits on it.
    pub timer_wake: Event,
    /// The timer deliverer's progress, for GET_BROKER_RUNTIME_INFO.
    pub timer_stats: Cell<TimerStats>,
    /// Pull counters and the sampler's once-a-second samples, for the admin answers' TPS
    /// figures (`stats.rs`).
    pub runtime_stats: RuntimeStats,
    /// Counters for the metrics endpoint (`metrics.rs`); inert with metrics off.
    pub metrics: ShardMetrics,
    /// Set when the shard begins to stop; long-running shard tasks end at their next step.
    pub stopping: Cell<bool>,
    /// On a master: what this shard's slaves acknowledged (SYNC_MASTER sends wait on it).
    pub slave_acks: Rc<SlaveAcks>,
    /// On a slave: this shard's stream from its master.
    pub follower: Rc<FollowerState>,
}

impl ShardCtx {
    /// A shard's context around its open store; held pulls are woken by the store's dispatcher.
    pub fn new(id: ShardId, store: ShardStore, control: Arc<ControlHandle>, router: ShardRouter) -> Rc<ShardCtx> {
        let config = control.config();
        let ctx = Rc::new(ShardCtx {
            id,
            store,
            router,
            held: HeldPulls::new(config.limits.max_held_pulls_per_shard),
            connections: RefCell::new(HashMap::new()),
            offsets: OffsetCommits::new(config.limits.max_pending_offset_commits_per_shard),
            requests: Gauge::default(),
            executor: ExecutorState::new(config.limits.cross_shard_max_running_jobs),
            // Validated at start (BrokerConfig::validate), so the fallback is never used.
            delay_levels_ms: config.delay_levels_ms().unwrap_or_default(),
            schedule_wake: Event::new(),
            timer_wake: Event::new(),
            timer_stats: Cell::new(Default::default()),
            runtime_stats: RuntimeStats::default(),
            metrics: ShardMetrics::new(config.metrics_enabled(), config.metrics.otel_cardinality_limit),
            stopping: Cell::new(false),
            slave_acks: Rc::new(SlaveAcks::new()),
            follower: Rc::new(FollowerState::default()),
            control: control.clone(),
        });
        // Held pulls wake when their queue's new entries are visible (dispatched), not merely
        // appended: a pull woken earlier would find nothing and wait out its whole suspension.
        // Weak: the store belongs to the context.
        let weak = Rc::downgrade(&ctx);
        ctx.store.on_dispatched(move |topic, queue_id| {
            if let Some(ctx) = weak.upgrade() {
                if topic == SCHEDULE_TOPIC {
                    ctx.schedule_wake.notify(usize::MAX);
                } else if topic == TIMER_TOPIC {
                    ctx.timer_wake.notify(usize::MAX);
                }
                ctx.held.notify(topic, queue_id);
            }
        });
        ctx
    }

    /// The shard that owns (topic, queueId).
    pub fn owner(&self, topic: &str, queue_id: QueueId) -> ShardId {
        self.router.owner(topic, queue_id)
    }

    /// Runs `job` on `shard` (inline when it is this one) and returns its result; a full or
    /// stopped mailbox is the error the client gets.
    pub async fn on<T, F, Fut>(self: &Rc<Self>, shard: ShardId, job: F) -> BrokerResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Rc<ShardCtx>, JobSlot) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        if shard != self.id {
            self.metrics.count_cross_shard_job();
        }
        self.router.invoke_on((self.id, self), shard, job).await.map_err(route_error)
    }

    /// The stored record at a client-visible physical offset (an offsetMsgId's, a send-back's,
    /// an END_TRANSACTION's), read on the shard whose log holds it. `Err` says why not, for the
    /// caller's remark.
    pub async fn record_at(self: &Rc<Self>, offset: i64) -> BrokerResult<Result<Vec<u8>, String>> {
        let Some((shard, local)) = self.store.offset_space().locate(ClientPhysicalOffset(offset)) else {
            return Ok(Err("no commit-log segment holds it".to_owned()));
        };
        let read = self.on(shard, move |owner, _| async move { owner.store.read_record(local).await }).await?;
        Ok(read.map_err(|e| e.to_string()))
    }

    /// Sends `request` on a client's connection (on the shard that holds it) and returns the
    /// client's answer: a request the broker forwards (GET_CONSUMER_RUNNING_INFO) or pushes
    /// (PUSH_REPLY_MESSAGE_TO_CLIENT).
    pub async fn invoke_client(self: &Rc<Self>, channel: ChannelId, request: RemotingCommand, timeout: Duration) -> BrokerResult<Result<RemotingCommand, String>> {
        let shard = ShardId(u8::try_from(channel.shard).map_err(|_| BrokerError::system(format!("no shard {}", channel.shard)))?);
        self.on(shard, move |owner, _| async move {
            let conn = owner.connections.borrow().get(&channel.connection).cloned();
            match conn {
                Some(conn) => conn.invoke(request, timeout).await.map_err(|e| e.to_string()),
                None => Err("the client's connection closed".to_owned()),
            }
        })
        .await
    }
}

/// A full mailbox is back-pressure (SYSTEM_BUSY, the client retries); a stopped shard means the
/// broker is stopping (SERVICE_NOT_AVAILABLE, the client tries another broker).
pub fn route_error(error: RouteError) -> BrokerError {
    match error {
        RouteError::Busy(_) => BrokerError::busy(error),
        RouteError::Stopped(_) => BrokerError::unavailable(error.to_string()),
    }
}

/// A count of things in progress that can be waited down to zero.
#[derive(Default)]
pub struct Gauge {
    count: Cell<usize>,
    zero: Event,
}

/// Holds one unit of a [`Gauge`] until dropped.
pub struct GaugeGuard<'a>(&'a Gauge);

impl Gauge {
    pub fn enter(&self) -> GaugeGuard<'_> {
        self.count.set(self.count.get() + 1);
        GaugeGuard(self)
    }

    pub fn get(&self) -> usize {
        self.count.get()
    }

    /// Waits until the count is 0.
    pub async fn wait_zero(&self) {
        while self.count.get() > 0 {
            let listener = self.zero.listen();
            if self.count.get() == 0 {
                break;
            }
            listener.await;
        }
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        let count = self.0.count.get().saturating_sub(1);
        self.0.count.set(count);
        if count == 0 {
            self.0.zero.notify(usize::MAX);
        }
    }
}
