//! The shard's mailbox executor: runs the jobs other shards send (see `router.rs`) with a cap on
//! how many run at once.
//!
//! Two limits bound cross-shard work, and both are named in the config: the mailbox holds at
//! most `crossShardQueueDepth` waiting jobs (beyond it senders get SYSTEM_BUSY at once), and at
//! most `crossShardMaxRunningJobs` jobs run at a time — the executor takes the next job out of
//! the mailbox only when a slot is free, so a burst waits in the bounded mailbox instead of
//! becoming an unbounded crowd of tasks.
//!
//! A job that parks (a held pull, waiting up to its suspension for messages) gives its slot back
//! with [`JobSlot::release`]: held pulls are bounded separately (`maxHeldPullsPerShard`), and a
//! few hundred long-polling consumers must not stop sends from crossing shards.
//!
//! Shard-resident: one executor per shard, on its thread.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;

use event_listener::Event;

/// Work sent to a shard: a closure run on that shard's thread with its context and the slot it
/// occupies in the shard's executor (see [`JobSlot`]).
pub type ShardJob<C> = Box<dyn FnOnce(Rc<C>, JobSlot) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Counters of one shard's executor.
pub struct ExecutorState {
    /// Jobs holding a slot.
    running: Cell<usize>,
    /// Jobs started and not finished (parked ones included); shutdown waits for 0.
    alive: Cell<usize>,
    max_running: usize,
    /// Signalled when a slot frees.
    slot_freed: Event,
    /// Signalled when `alive` drops to 0.
    idle: Event,
}

impl ExecutorState {
    pub fn new(max_running: usize) -> Rc<ExecutorState> {
        Rc::new(ExecutorState {
            running: Cell::new(0),
            alive: Cell::new(0),
            max_running: max_running.max(1),
            slot_freed: Event::new(),
            idle: Event::new(),
        })
    }

    pub fn running(&self) -> usize {
        self.running.get()
    }

    pub fn alive(&self) -> usize {
        self.alive.get()
    }

    async fn wait_for_slot(&self) {
        while self.running.get() >= self.max_running {
            let listener = self.slot_freed.listen();
            if self.running.get() < self.max_running {
                break;
            }
            listener.await;
        }
    }

    /// Waits until every started job has finished.
    pub async fn wait_idle(&self) {
        while self.alive.get() > 0 {
            let listener = self.idle.listen();
            if self.alive.get() == 0 {
                break;
            }
            listener.await;
        }
    }

    fn finished(&self) {
        self.alive.set(self.alive.get().saturating_sub(1));
        if self.alive.get() == 0 {
            self.idle.notify(usize::MAX);
        }
    }
}

/// The executor slot a job occupies. Cloned into the job; the executor releases it when the job
/// ends, the job may release it earlier ([`JobSlot::release`]). Releasing twice is harmless.
#[derive(Clone)]
pub struct JobSlot(Option<Rc<SlotInner>>);

struct SlotInner {
    released: Cell<bool>,
    executor: Rc<ExecutorState>,
}

impl JobSlot {
    /// The slot of a job run inline on its own shard: it occupies nothing.
    pub fn inline() -> JobSlot {
        JobSlot(None)
    }

    /// Gives the slot back (the job goes on, no longer counted against the cap).
    pub fn release(&self) {
        if let Some(inner) = &self.0
            && !inner.released.replace(true)
        {
            let executor = &inner.executor;
            executor.running.set(executor.running.get().saturating_sub(1));
            executor.slot_freed.notify(1);
        }
    }
}

/// Takes jobs out of `inbox` while a slot is free and runs each as its own task, until the
/// mailbox is closed and empty. Jobs still running when it returns are tracked by
/// [`ExecutorState::alive`].
pub async fn run<C: 'static>(ctx: Rc<C>, inbox: async_channel::Receiver<ShardJob<C>>, state: Rc<ExecutorState>) {
    loop {
        state.wait_for_slot().await;
        let Ok(job) = inbox.recv().await else { break };
        state.running.set(state.running.get() + 1);
        state.alive.set(state.alive.get() + 1);
        let slot = JobSlot(Some(Rc::new(SlotInner { released: Cell::new(false), executor: state.clone() })));
        let (ctx, state) = (ctx.clone(), state.clone());
        compio::runtime::spawn(async move {
            job(ctx, slot.clone()).await;
            slot.release();
            state.finished();
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn at_most_max_running_jobs_run_and_released_slots_make_room() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let state = ExecutorState::new(2);
            let (tx, rx) = async_channel::bounded::<ShardJob<()>>(16);
            let peak = Rc::new(Cell::new(0usize));
            let (gate_tx, gate_rx) = async_channel::bounded::<()>(16);
            // Two jobs that block until the gate opens, one job that releases its slot at once
            // and then blocks too, and two plain jobs.
            for release_early in [false, false, true, false, false] {
                let gate = gate_rx.clone();
                let job: ShardJob<()> = Box::new(move |_ctx, slot| {
                    Box::pin(async move {
                        if release_early {
                            slot.release();
                        }
                        let _ = gate.recv().await;
                    })
                });
                tx.try_send(job).unwrap();
            }
            let executor = compio::runtime::spawn(run(Rc::new(()), rx, state.clone()));
            {
                let (state, peak) = (state.clone(), peak.clone());
                compio::runtime::spawn(async move {
                    loop {
                        peak.set(peak.get().max(state.running()));
                        compio::time::sleep(Duration::from_millis(1)).await;
                    }
                })
                .detach();
            }
            compio::time::sleep(Duration::from_millis(30)).await;
            // Two slots: the two blocking jobs hold them; the early-release job never does.
            assert_eq!(state.running(), 2);
            assert_eq!(state.alive(), 2, "the third job waits in the mailbox");
            for _ in 0..5 {
                gate_tx.send(()).await.unwrap();
            }
            tx.close();
            state.wait_idle().await;
            let _ = executor.await;
            assert!(peak.get() <= 2, "peak running {}", peak.get());
            assert_eq!(state.running(), 0);
        });
    }
}
